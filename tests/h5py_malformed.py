"""Writes broken layercake datasets (one defect each) into the folder argv[1], for the reader's
error tests in tests/test_dataset.c, plus one valid file whose attributes are fixed-length
byte strings (as older h5py code writes them), which the reader must accept."""
import os
import sys

import h5py
import numpy as np

FP = "0123456789abcdef"


def write(name, kind="sft", attrs=None, arrays=None, drop=()):
    a = {"format": "layercake-dataset", "version": 1, "kind": kind, "tokenizer": FP}
    a.update(attrs or {})
    d = {"tokens": np.array([1, 2, 3, 4], np.int32), "offsets": np.array([0, 2, 4], np.int64),
         "loss_mask": np.array([0, 1, 0, 1], np.uint8)}
    d.update(arrays or {})
    with h5py.File(os.path.join(sys.argv[1], name), "w") as f:
        for k, v in a.items():
            if k not in drop:
                f.attrs[k] = v
        for k, v in d.items():
            if k not in drop:
                f[k] = v


def pref_arrays():
    return {"prompt_tokens": np.array([1, 2], np.int32), "prompt_offsets": np.array([0, 1, 2]),
            "chosen_tokens": np.array([3, 4], np.int32), "chosen_offsets": np.array([0, 1, 2]),
            "rejected_tokens": np.array([5, 6], np.int32),
            "rejected_offsets": np.array([0, 1, 2])}


write("bad_version.h5", attrs={"version": 2})
write("bad_kind.h5", attrs={"kind": "chat"})
write("bad_format.h5", attrs={"format": "something-else"})
write("no_format.h5", drop=("format",))
write("bad_fingerprint.h5", attrs={"tokenizer": "xyz"})
write("decreasing.h5", arrays={"offsets": np.array([0, 3, 2, 4], np.int64)})
write("short_end.h5", arrays={"offsets": np.array([0, 2, 3], np.int64)})
write("float_tokens.h5", arrays={"tokens": np.array([1, 2, 3, 4], np.float32)})
write("two_d.h5", arrays={"tokens": np.array([[1, 2], [3, 4]], np.int32)})
write("bad_ids.h5", arrays={"tokens": np.array([1, -5, 3, 4], np.int32)})
write("bad_mask.h5", arrays={"loss_mask": np.array([0, 2, 0, 1], np.uint8)})
write("mask_length.h5", arrays={"loss_mask": np.array([0, 1, 0], np.uint8)})
p = pref_arrays()
del p["rejected_offsets"]
write("missing_array.h5", kind="preference", arrays=p, drop=("tokens", "offsets", "loss_mask"))
p = pref_arrays()
p["chosen_offsets"] = np.array([0, 2])
write("count_mismatch.h5", kind="preference", arrays=p, drop=("tokens", "offsets", "loss_mask"))
u = {"prompt_tokens": np.array([1, 2], np.int32), "prompt_offsets": np.array([0, 1, 2]),
     "completion_tokens": np.array([3, 4], np.int32), "completion_offsets": np.array([0, 1, 2]),
     "label": np.array([1, 0, 1], np.uint8)}
write("label_length.h5", kind="unpaired", arrays=u, drop=("tokens", "offsets", "loss_mask"))
write("fixed_strings.h5", attrs={"format": np.bytes_(b"layercake-dataset"),
                                 "kind": np.bytes_(b"sft"), "tokenizer": np.bytes_(FP.encode())})
