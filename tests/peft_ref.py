#!/usr/bin/python3
"""A PEFT LoRA adapter applied to a Hugging Face model folder by PyTorch, for tests/test_peft.c.

usage: peft_ref.py BASE_DIR ADAPTER_DIR LOGITS.bin TARGET_MODULES

Reads BASE_DIR (config.json, model.safetensors as model/hf.c writes them) and ADAPTER_DIR
(adapter_config.json, adapter_model.safetensors as model/peft.c writes them), checks the
adapter's files against what Hugging Face PEFT saves and loads (the config's keys and values,
TARGET_MODULES (comma-separated) as target_modules, every tensor's name and shape against the
base module it adapts, GPT-2's c_attn blocks), then runs the base model of tests/hf_ref.py in
float64 with each adapted module's output increased by scaling * lora_B(lora_A(x)), scaling =
lora_alpha / r with rank_pattern and alpha_pattern matched as PEFT matches them (PEFT's
LoraLayer forward; transformers and peft are not used). LOGITS.bin (int32 T, int32 V, T int32
ids, T*V float32 logits) holds layercake's logits of the unmerged LoRA model: their log-softmax
must agree within 1e-4, and differ from the base model's (the adapter must matter).
Exit status 0 when everything agrees, 1 otherwise.
"""
import json
import os
import re
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_ref  # noqa: E402

DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        if e["dtype"] == "BF16":
            u = np.frombuffer(data[b:end], dtype=np.uint16).astype(np.uint32) << 16
            a = u.view(np.float32)
        else:
            a = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]])
        out[name] = a.astype(np.float64).reshape(e["shape"])
    return out


def pattern_key(keys, name):
    """PEFT's get_pattern_key: the first key k with re.match(rf"(.*\\.)?({k})$", name)."""
    return next((k for k in keys if re.match(rf"(.*\.)?({k})$", name)), None)


FAILS = []


def expect(ok, what):
    if not ok:
        print(f"peft_ref.py: FAIL: {what}")
        FAILS.append(what)


def main():
    base, adapter, logits_path, targets = sys.argv[1:5]
    c = json.load(open(os.path.join(base, "config.json")))
    gpt2 = c["model_type"] == "gpt2"
    P = {k: torch.tensor(v) for k, v in read_safetensors(os.path.join(base, "model.safetensors")).items()}
    cfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
    A = read_safetensors(os.path.join(adapter, "adapter_model.safetensors"))

    # the config as PEFT's LoraConfig reads it
    want = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "lora_dropout": 0.0, "bias": "none",
            "fan_in_fan_out": gpt2, "base_model_name_or_path": "", "inference_mode": True,
            "use_rslora": False, "use_dora": False, "modules_to_save": None,
            "layers_to_transform": None, "init_lora_weights": True}
    for k, v in want.items():
        expect(k in cfg and cfg[k] == v and type(cfg[k]) is type(v), f"{k}: {cfg.get(k)!r} != {v!r}")
    expect(sorted(cfg["target_modules"]) == sorted(targets.split(",")),
           f"target_modules {cfg['target_modules']} != {targets}")
    r0, alpha0 = cfg["r"], cfg["lora_alpha"]
    rp, ap = cfg["rank_pattern"], cfg["alpha_pattern"]

    # every tensor: base_model.model.<module>.lora_{A,B}.weight of a targeted module of the base
    mods = {}
    for name, x in A.items():
        m = re.fullmatch(r"base_model\.model\.(.*)\.lora_([AB])\.weight", name)
        expect(m is not None, f"tensor name {name}")
        if not m:
            continue
        mod, ab = m.group(1), m.group(2)
        expect(any(mod.endswith("." + t) for t in cfg["target_modules"]),
               f"{mod} is not matched by target_modules")
        w = P.get(mod + ".weight")
        expect(w is not None, f"{mod}: no such module in the base")
        if w is None:
            continue
        fin, fout = (w.shape[0], w.shape[1]) if gpt2 else (w.shape[1], w.shape[0])  # Conv1D (in, out)
        key = pattern_key(rp.keys(), mod)
        r = rp[key] if key else r0
        expect(x.shape == ((r, fin) if ab == "A" else (fout, r)), f"{name}: shape {x.shape}")
        mods.setdefault(mod, {})[ab] = torch.tensor(x)
    n_layer = c["n_layer"] if gpt2 else c["num_hidden_layers"]
    per_layer = len(cfg["target_modules"])
    expect(len(mods) == n_layer * per_layer, f"{len(mods)} modules, want {n_layer * per_layer}")
    for mod, d in mods.items():
        expect(set(d) == {"A", "B"}, f"{mod}: has {sorted(d)}")
    if gpt2 and "transformer.h.0.attn.c_attn" in mods:  # q and v adapted, not k
        C = c["n_embd"]
        B = mods["transformer.h.0.attn.c_attn"]["B"]
        r = B.shape[1] // 2
        expect(float(B[C:2 * C].abs().max()) == 0.0, "c_attn B: the k rows are not zero")
        expect(float(B[:C, r:].abs().max()) == 0.0 and float(B[2 * C:, :r].abs().max()) == 0.0,
               "c_attn B: not block-structured")
        expect(float(B[:C, :r].abs().max()) > 0 and float(B[2 * C:, r:].abs().max()) > 0,
               "c_attn B: a block is zero")

    def scaling(mod):
        kr, ka = pattern_key(rp.keys(), mod), pattern_key(ap.keys(), mod)
        return (ap[ka] if ka else alpha0) / (rp[kr] if kr else r0)

    def lora(mod, x):
        if mod not in mods:
            return 0.0
        return (x @ mods[mod]["A"].T @ mods[mod]["B"].T) * scaling(mod)

    with open(logits_path, "rb") as f:
        T, V = struct.unpack("<ii", f.read(8))
        ids = np.frombuffer(f.read(4 * T), dtype=np.int32).astype(np.int64)
        ours = np.frombuffer(f.read(4 * T * V), dtype=np.float32).reshape(T, V).astype(np.float64)
    fwd = hf_ref.gpt2_forward if gpt2 else hf_ref.llama_logits
    with torch.no_grad():
        ref = fwd(P, c, torch.tensor(ids), lora).log_softmax(-1).numpy()
        plain = fwd(P, c, torch.tensor(ids)).log_softmax(-1).numpy()
    ours = torch.tensor(ours).log_softmax(-1).numpy()
    err = np.abs(ours - ref).max()
    off = np.abs(plain - ref).max()
    print(f"peft_ref.py: {c['model_type']}: log-probs max |ours - PEFT reference| {err:.3g} "
          f"(the adapter moves them by {off:.3g})")
    expect(err <= 1e-4, f"log-probs differ by {err:.3g} > 1e-4")
    expect(off > 1e-2, f"the adapter changes the log-probs by only {off:.3g}")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
