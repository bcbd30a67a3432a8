#!/usr/bin/env bash
# tests/test_llama_run.sh: every stage kind (pretrain, sft, reward, dpo, ppo, grpo, rloo, eval) on
# a tiny Llama-family model (tests/fixtures/run/llama.yaml): each stage writes a llama checkpoint
# of the recipe's shape, pretraining lowers the loss, the rollouts' log-probs equal the forward
# pass's (RoPE positions across decode steps), a dpo stage killed mid-stage and resumed ends
# bit-identical to an uninterrupted run, and so does one with recompute: layer, and model.from (a
# checkpoint, or the same model exported to a Hugging Face folder) starts stages without init
# from it, identically.
#   test_llama_run.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4
RECIPE=$SRC/tests/fixtures/run/llama.yaml
rm -rf "$TMP"
mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$LC" run "$RECIPE" output_dir="$TMP/a" >"$TMP/a.log" 2>&1 || fail "run failed: $(tail -5 "$TMP/a.log")"
mkdir -p "$TMP/c"
cp -r "$TMP/a/pretrain" "$TMP/a/sft" "$TMP/c/"
LC_FAULT_KILL_AT_STEP=3 "$LC" run "$RECIPE" output_dir="$TMP/c" --only dpo >"$TMP/c1.log" 2>&1
[ $? -eq 137 ] || fail "the killed run did not die by SIGKILL"
"$LC" run "$RECIPE" output_dir="$TMP/c" --only dpo >"$TMP/c2.log" 2>&1 || fail "resumed run failed: $(tail -3 "$TMP/c2.log")"
grep -q "resuming from .*ckpt-00000002.h5" "$TMP/c2.log" || fail "did not resume from step 2"

# recompute: layer re-runs each layer's forward in the backward; the dpo stage's policy ends
# bit-identical to the run that kept every activation
mkdir -p "$TMP/r"
cp -r "$TMP/a/pretrain" "$TMP/a/sft" "$TMP/r/"
"$LC" run "$RECIPE" output_dir="$TMP/r" recompute=layer --only dpo >"$TMP/r.log" 2>&1 || fail "recompute=layer run failed: $(tail -3 "$TMP/r.log")"

# model.from: the pretrained model as a checkpoint and exported to a Hugging Face folder; stages
# without init start from it
FROM=$SRC/tests/fixtures/run/llama-from.yaml
"$LC" export "$TMP/a/pretrain/final.h5" --format hf --out "$TMP/hf" >"$TMP/export.log" 2>&1 || fail "export: $(tail -3 "$TMP/export.log")"
for src in "$TMP/a/pretrain/final.h5" "$TMP/hf"; do
  out=$TMP/from-$(basename "$src")
  "$LC" run "$FROM" model.from="$src" output_dir="$out" >"$out.log" 2>&1 || fail "model.from=$src: $(tail -3 "$out.log")"
  grep -q "\[sft\] sft from $src" "$out.log" || fail "model.from=$src: sft did not start from it"
  grep -q "\[dpo\] dpo from $src" "$out.log" || fail "model.from=$src: dpo did not start from it"
done

"$PY" - "$TMP" <<'PY' || fail "checks"
import json, sys, h5py, numpy as np
tmp = sys.argv[1]
stages = ("pretrain", "sft", "reward", "dpo", "ppo", "grpo", "rloo")
for s in stages:
    f = h5py.File(f"{tmp}/a/{s}/final.h5", "r")
    fam = f.attrs["family"]
    fam = fam.decode() if isinstance(fam, bytes) else fam
    assert fam == "llama", f"{s}: family {fam}"
    assert int(f.attrs["n_kv_head"]) == 2 and int(f.attrs["d_ff"]) == 48, f"{s}: shape"
    assert "lmw" in f["params"] or s == "reward", f"{s}: untied output layer missing"
    assert "wpe" not in f["params"] and "ln1b" not in f["params"], f"{s}: GPT-2 tensors in a llama"
def rows(run, stage):
    return [json.loads(l) for l in open(f"{tmp}/{run}/{stage}/metrics.jsonl")]
train = [r["loss"] for r in rows("a", "pretrain") if r.get("split") is None and "loss" in r]
assert train[-1] < 0.8 * train[0], f"pretrain loss {train[0]} -> {train[-1]}"
for s in ("ppo", "grpo", "rloo"):
    assert all(r["rollout/logp_diff"] < 1e-4 for r in rows("a", s) if "rollout/logp_diff" in r), \
        f"{s}: rollout log-probs differ from the forward pass"
res = json.load(open(f"{tmp}/a/eval/results.json"))["models"]
assert set(res) >= {"sft", "dpo", "ppo", "grpo", "rloo"}, sorted(res)
# the same start model through either path: the same sft step 1 loss
l1 = [json.loads(open(f"{tmp}/from-{s}/sft/metrics.jsonl").readline())["loss"] for s in ("final.h5", "hf")]
assert l1[0] == l1[1], f"model.from checkpoint vs HF folder: sft step-1 loss {l1}"
fa, fc = h5py.File(f"{tmp}/a/dpo/final.h5", "r"), h5py.File(f"{tmp}/c/dpo/final.h5", "r")
for name in fa["params"]:
    assert np.array_equal(fa["params"][name][()], fc["params"][name][()]), f"dpo {name} differs after resume"
fr = h5py.File(f"{tmp}/r/dpo/final.h5", "r")
for name in fa["params"]:
    assert np.array_equal(fa["params"][name][()], fr["params"][name][()]), f"dpo {name} differs with recompute=layer"
PY

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all llama checks passed"
