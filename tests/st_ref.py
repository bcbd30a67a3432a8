#!/usr/bin/env python3
"""tests/st_ref.py: a reference safetensors writer and reader, by hand with json, struct and
numpy (no safetensors package), for tests/test_safetensors.c to check common/safetensors.c
against in both directions.

    st_ref.py write PREFIX SEED...
        For each SEED writes PREFIX-SEED.safetensors: F32, F16 and BF16 tensors drawn from SEED
        (F16 from random bit patterns, so every class of value occurs; BF16 by shifting float32
        bits right by 16), laid out in an order other than the header's; and PREFIX-SEED.json:
        {name: {"dtype", "shape", "bits": [float32 bit patterns of the values]}}.
    st_ref.py check SOURCE DIR DTYPE [DIR DTYPE]...
        SOURCE and each DIR are what st_write made from the same tensors, as F32 and as DTYPE.
        Checks DIR's layout (aligned header, {"format": "pt"}, contiguous data in header order,
        the index of a sharded folder) and that every value is SOURCE's rounded to DTYPE
        (nearest even; numpy's astype for F16). Prints a line per DIR; exits 1 at the first
        disagreement.
(One process for many files: numpy takes a third of a second to import.)
"""
import json
import os
import struct
import sys

import numpy as np

NP_DTYPE = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}
SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def fail(msg):
    print("st_ref.py: FAIL:", msg)
    sys.exit(1)


# ---- writing ---------------------------------------------------------------------------------


def make_tensors(seed):
    """[(name, dtype, array)]: the array float32 or float16, or for BF16 its uint16 bits."""
    rng = np.random.default_rng(seed)
    out = []
    a = rng.standard_normal((3, 5)).astype(np.float32)
    a.flat[:6] = [np.inf, -np.inf, -0.0, 1e-45, 3.4e38, np.nan]
    out.append(("model.a.weight", "F32", a))
    out.append(("scalar", "F32", np.array(rng.standard_normal(), dtype=np.float32)))
    bits16 = rng.integers(0, 65536, size=(2, 3, 7), dtype=np.uint16)
    bits16.flat[:4] = [0x0001, 0x83FF, 0x7BFF, 0x7E01]  # subnormals, max, NaN with payload
    out.append(("blocks.0.f16", "F16", bits16.view(np.float16)))
    scale = 10.0 ** rng.integers(-30, 30, size=(4, 6))
    f = (rng.standard_normal((4, 6)) * scale).astype(np.float32)
    out.append(("blocks.0.bf16", "BF16", (f.view(np.uint32) >> 16).astype(np.uint16)))
    out.append(("empty", "F16", np.zeros((0, 4), dtype=np.float16)))
    return out


def as_float32(dtype, arr):
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32)


def write(path, expect_path, seed):
    tensors = make_tensors(seed)
    order = list(range(len(tensors)))
    np.random.default_rng(seed + 1).shuffle(order)  # data order differs from the header's
    header, data, expect = {"__metadata__": {"format": "np", "seed": str(seed)}}, b"", {}
    begins = {}
    for i in order:
        name, dtype, arr = tensors[i]
        raw = np.ascontiguousarray(arr).astype(NP_DTYPE[dtype]).tobytes()
        begins[name] = (len(data), len(data) + len(raw))
        data += raw
    for name, dtype, arr in tensors:
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": list(begins[name])}
        bits = as_float32(dtype, arr).view(np.uint32).ravel()
        expect[name] = {"dtype": dtype, "shape": list(arr.shape), "bits": [int(b) for b in bits]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    with open(expect_path, "w") as f:
        json.dump(expect, f)


# ---- reading ---------------------------------------------------------------------------------


def read_file(path):
    """{name: (dtype, shape, raw bytes)}, checking the layout st_write promises."""
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    if (8 + n) % 8:
        fail(f"{path}: header of {n} bytes leaves the data unaligned")
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    if header.pop("__metadata__", None) != {"format": "pt"}:
        fail(f"{path}: metadata is not {{'format': 'pt'}}")
    out, at = {}, 0
    for name, e in header.items():
        begin, end = e["data_offsets"]
        count = int(np.prod(e["shape"], dtype=np.int64))
        if begin != at or end - begin != count * SIZE[e["dtype"]]:
            fail(f"{path}: tensor {name}: data_offsets {begin, end} not contiguous from {at}")
        out[name] = (e["dtype"], tuple(e["shape"]), data[begin:end])
        at = end
    if at != len(data):
        fail(f"{path}: {len(data) - at} bytes after the last tensor")
    return out


def read_folder(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_file(os.path.join(folder, "model.safetensors"))
    idx = json.load(open(index))
    out = {}
    for shard in sorted(set(idx["weight_map"].values())):
        for name, t in read_file(os.path.join(folder, shard)).items():
            if idx["weight_map"].get(name) != shard:
                fail(f"{index}: {name} is in {shard}, the index says {idx['weight_map'].get(name)}")
            out[name] = t
    if set(out) != set(idx["weight_map"]):
        fail(f"{index}: weight_map lists other tensors than the shards hold")
    total = sum(len(t[2]) for t in out.values())
    if idx["metadata"]["total_size"] != total:
        fail(f"{index}: total_size {idx['metadata']['total_size']}, the shards hold {total}")
    return out


def values(dtype, shape, raw):
    return np.frombuffer(raw, dtype=NP_DTYPE[dtype]).reshape(shape)


def bf16_round(x):
    """float32 -> bfloat16 bits, nearest even, in integers; NaN -> a quiet NaN."""
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), ((u >> 16) | 0x40).astype(np.uint16), r)


def check(source, folder, dtype):
    src, got = read_folder(source), read_folder(folder)
    if list(src) != list(got):
        fail(f"{folder}: tensors {list(got)}, the source has {list(src)}")
    count = 0
    for name, (sd, shape, raw) in src.items():
        gd, gshape, graw = got[name]
        if sd != "F32" or gd != dtype or gshape != shape:
            fail(f"{folder}: tensor {name}: {gd} {gshape}, want {dtype} {shape}")
        x = values("F32", shape, raw).ravel()
        y = values(gd, shape, graw).ravel()
        if dtype == "F32":
            want, have = x.view(np.uint32), y.view(np.uint32)
        elif dtype == "F16":
            with np.errstate(over="ignore"):  # overflow to inf is what is wanted
                want, have = x.astype(np.float16).view(np.uint16), y.view(np.uint16)
            # numpy does not set the quiet bit of a NaN it narrows: compare a NaN by its sign
            sign = (x.view(np.uint32) >> 16 & 0x8000).astype(np.uint16)
            want = np.where(np.isnan(x), 0x7E00 | sign, want)
            have = np.where(np.isnan(y), 0x7E00 | (have & 0x8000), have)
        else:
            want, have = bf16_round(x), y
        bad = np.nonzero(want != have)[0]
        if len(bad):
            i = bad[0]
            fail(f"{folder}: tensor {name}[{i}]: {x[i]!r} stored as {int(have[i]):#06x}, "
                 f"want {int(want[i]):#06x}")
        count += len(x)
    print(f"st_ref.py: {folder}: {len(src)} tensors, {count} values agree as {dtype}")


def main():
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "write":
        for seed in args[2:]:
            write(f"{args[1]}-{seed}.safetensors", f"{args[1]}-{seed}.json", int(seed))
    elif len(args) >= 4 and len(args) % 2 == 0 and args[0] == "check":
        for i in range(2, len(args), 2):
            check(args[1], args[i], args[i + 1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
