#!/usr/bin/env bash
# tests/test_diverge.sh: a run never reports success with a broken model. For every training
# stage kind (pretrain, sft, reward, dpo, ppo, grpo) on a tiny pipeline:
#   A. a learning rate that diverges (optim.lr=1e6) stops the stage non-zero at the step whose
#      loss, gradient norm, reward, KL or advantage is not finite, naming the step and the
#      quantity; no final.h5; every checkpoint kept holds finite values; `run` again resumes
#      from the newest of them;
#   B. a divergence injected at step 5 (LC_FAULT_NAN_AT_STEP) stops the stage with the
#      checkpoint of step 4 intact, and `run` again resumes from it and ends bit-identical to
#      an uninterrupted run;
# and: skip_bad_steps skips bad steps (counted, in metrics.jsonl) before stopping; sft data
# whose loss masks are all zero is refused before training, never a NaN loss.
#   test_diverge.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4
RECIPE=$SRC/tests/fixtures/run/diverge.yaml
rm -rf "$TMP"
mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Every float array of each checkpoint is finite.
all_finite() {
  "$PY" - "$@" <<'PY'
import sys, h5py, numpy as np
bad = []
for path in sys.argv[1:]:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and not np.isfinite(obj[()]).all():
            bad.append(f"{path}:{name}")
    with h5py.File(path, "r") as f:
        f.visititems(visit)
sys.exit(f"non-finite: {bad[:5]}" if bad else 0)
PY
}

# Every parameter tensor of two checkpoints is bit-identical.
same_params() {
  "$PY" - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
bad = [n for n in a["params"] if not np.array_equal(a["params"][n][()], b["params"][n][()])]
sys.exit(f"differ: {bad}" if bad else 0)
PY
}

# A run directory holding copies of the base run's stages that stage $1 starts from.
fresh() {
  local d=$TMP/$2
  mkdir -p "$d"
  for p in pretrain sft reward; do [ "$p" != "$1" ] && cp -r "$TMP/base/$p" "$d/"; done
  echo "$d"
}

"$LC" run "$RECIPE" output_dir="$TMP/base" >"$TMP/base.log" 2>&1 ||
  { echo "FAIL: the base run failed: $(tail -3 "$TMP/base.log")"; exit 1; }

for S in pretrain sft reward dpo ppo grpo; do
  # A: a real divergence
  d=$(fresh "$S" "$S-lr")
  "$LC" run "$RECIPE" output_dir="$d" --only "$S" "$S.optim.lr=1e6" >"$d.log" 2>&1
  rc=$?
  [ "$rc" -eq 1 ] || fail "$S: lr 1e6: exit $rc, want 1"
  grep -qE "stage '$S': (step|iteration) [0-9]+: .* is (NaN|\+Inf|-Inf): training diverged" "$d.log" ||
    fail "$S: lr 1e6: no message naming the step and the quantity: $(grep layercake: "$d.log" | head -2)"
  [ -e "$d/$S/final.h5" ] && fail "$S: lr 1e6: a final.h5 was written"
  ckpts=$(ls "$d/$S"/ckpt-*.h5 2>/dev/null)
  [ -n "$ckpts" ] || fail "$S: lr 1e6: no checkpoint before the divergence"
  # shellcheck disable=SC2086
  [ -n "$ckpts" ] && { all_finite $ckpts || fail "$S: lr 1e6: a checkpoint holds non-finite values"; }
  newest=$(ls "$d/$S"/ckpt-*.h5 2>/dev/null | tail -1)
  "$LC" run "$RECIPE" output_dir="$d" --only "$S" "$S.optim.lr=1e6" >"$d.2.log" 2>&1
  grep -q "resuming from $newest" "$d.2.log" || fail "$S: lr 1e6: the rerun did not resume from $newest"

  # B: an injected divergence at step 5, then an exact resume
  d=$(fresh "$S" "$S-fault")
  LC_FAULT_NAN_AT_STEP=5 "$LC" run "$RECIPE" output_dir="$d" --only "$S" >"$d.log" 2>&1
  rc=$?
  [ "$rc" -eq 1 ] || fail "$S: fault at 5: exit $rc, want 1"
  grep -qE "stage '$S': (step|iteration) 5: .* is NaN" "$d.log" || fail "$S: fault at 5: no message for step 5"
  "$LC" run "$RECIPE" output_dir="$d" --only "$S" >"$d.2.log" 2>&1 || fail "$S: resume after the fault failed"
  grep -q "resuming from .*ckpt-00000004.h5" "$d.2.log" || fail "$S: did not resume from step 4"
  same_params "$TMP/base/$S/final.h5" "$d/$S/final.h5" || fail "$S: resumed run differs from the uninterrupted one"
done

# skip_bad_steps: one injected bad step is skipped and counted; a real divergence is skipped
# twice, then the stage stops.
d=$(fresh pretrain skip1)
LC_FAULT_NAN_AT_STEP=5 "$LC" run "$RECIPE" output_dir="$d" --only pretrain pretrain.skip_bad_steps=1 >"$d.log" 2>&1 ||
  fail "skip_bad_steps=1: the run failed: $(tail -2 "$d.log")"
grep -q "step 5: .* is NaN; skipped (1 of 1)" "$d.log" || fail "skip_bad_steps=1: no skip message"
grep -q '"step":5,"skipped":1' "$d/pretrain/metrics.jsonl" || fail "skip_bad_steps=1: no metrics row for the skipped step"
d=$(fresh pretrain skip2)
"$LC" run "$RECIPE" output_dir="$d" --only pretrain pretrain.optim.lr=1e6 pretrain.skip_bad_steps=2 >"$d.log" 2>&1 &&
  fail "skip_bad_steps=2 with lr 1e6: the run succeeded"
grep -q "skipped (2 of 2)" "$d.log" || fail "skip_bad_steps=2: did not skip twice"
grep -q "training diverged" "$d.log" || fail "skip_bad_steps=2: did not stop after the skips"

# sft data whose loss masks are all zero: refused before the first step, naming the file
d=$(fresh sft untrained)
data=$SRC/tests/fixtures/run/data/arith-tiny
cp "$data/sft.h5" "$TMP/sft-untrained.h5"
"$PY" - "$TMP/sft-untrained.h5" <<'PY' || fail "cannot zero the loss masks"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["loss_mask"][...] = 0
PY
"$LC" run "$RECIPE" output_dir="$d" --only sft sft.data.train="$TMP/sft-untrained.h5" >"$d.log" 2>&1 &&
  fail "all-zero loss masks: the run succeeded"
grep -q "sft-untrained.h5: 300 of 300 examples have no trained token" "$d.log" ||
  fail "all-zero loss masks: no message naming the file: $(grep layercake: "$d.log" | head -2)"
grep -qi "loss nan\|loss -nan" "$d.log" && fail "all-zero loss masks: a NaN loss was printed"

# a checkpoint holding a NaN (written by an older build or another tool, without the seal the
# integrity checks add) is refused by generate, never sampled from
"$PY" - "$TMP/base/pretrain/final.h5" "$TMP/nan.h5" <<'PY' || fail "cannot write the NaN checkpoint"
import sys, h5py
with h5py.File(sys.argv[1], "r") as src, h5py.File(sys.argv[2], "w") as dst:
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    for name in src:
        src.copy(name, dst)
    w = dst["params/wte"][()]
    w[0, 0] = float("nan")
    dst["params/wte"][...] = w
PY
LC_ACCEPT_UNSEALED=1 "$LC" generate "$TMP/nan.h5" --prompt "1+1=" >"$TMP/nan.log" 2>&1 &&
  fail "generate sampled from a NaN checkpoint"
grep -q "params/wte holds a non-finite value" "$TMP/nan.log" ||
  fail "generate on a NaN checkpoint: no message naming the tensor: $(tail -2 "$TMP/nan.log")"

[ "$fails" -eq 0 ] && echo "all divergence checks passed"
exit $((fails > 0))
