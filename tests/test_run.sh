#!/usr/bin/env bash
# tests/test_run.sh: `layercake run` end to end on a tiny recipe: a run killed with SIGKILL
# mid-stage and resumed ends bit-identical to an uninterrupted one; a truncated checkpoint is
# rejected and the previous one used; a finished stage is skipped on rerun; metrics.jsonl
# parses and its training rows are monotone in step.
#   test_run.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4
RECIPE=$SRC/tests/fixtures/run/tiny.yaml
rm -rf "$TMP"
mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Compares every parameter tensor of two checkpoints bit for bit.
same_params() {
  "$PY" - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = sorted(a["params"])
assert names == sorted(b["params"]), "different tensors"
bad = [n for n in names if not np.array_equal(a["params"][n][()], b["params"][n][()])]
sys.exit(f"differ: {bad}" if bad else 0)
PY
}

# Training rows of metrics.jsonl must parse, be monotone in step and agree between runs.
check_metrics() {
  "$PY" - "$1" "$2" <<'PY'
import json, sys
rows = [[json.loads(l) for l in open(p)] for p in sys.argv[1:3]]
for r in rows:
    steps = [x["step"] for x in r if "split" not in x]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), f"not monotone: {steps}"
    assert all(k in r[0] for k in ("step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed"))
    assert any(x.get("split") == "val" for x in r), "no validation rows"
key = lambda x: (x["step"], x.get("split", ""), x["loss"])
a, b = (sorted(map(key, r)) for r in rows)
assert a == b, "losses differ between the runs"
PY
}

# A: uninterrupted
"$LC" run "$RECIPE" output_dir="$TMP/a" >"$TMP/a.log" 2>&1 || fail "uninterrupted run failed: $(tail -3 "$TMP/a.log")"

# B: killed after step 30 (checkpoints at 20 and 40), then resumed
LC_FAULT_KILL_AT_STEP=30 "$LC" run "$RECIPE" output_dir="$TMP/b" >"$TMP/b1.log" 2>&1
status=$?
[ "$status" -eq 137 ] || fail "the killed run exited $status, not 137 (SIGKILL)"
[ -e "$TMP/b/pretrain/final.h5" ] && fail "a killed stage has a final.h5"
touch "$TMP/b/pretrain/ckpt-00000040.h5.tmp" # a checkpoint write cut short must be ignored
"$LC" run "$RECIPE" output_dir="$TMP/b" >"$TMP/b2.log" 2>&1 || fail "resumed run failed: $(tail -3 "$TMP/b2.log")"
grep -q "resuming from .*ckpt-00000020.h5 (step 20)" "$TMP/b2.log" || fail "did not resume from step 20: $(grep -m1 pretrain "$TMP/b2.log")"
same_params "$TMP/a/pretrain/final.h5" "$TMP/b/pretrain/final.h5" || fail "resumed run differs from the uninterrupted one"
check_metrics "$TMP/a/pretrain/metrics.jsonl" "$TMP/b/pretrain/metrics.jsonl" || fail "metrics"

# C: killed after step 50 (checkpoints 20 and 40); the newest is truncated by hand
LC_FAULT_KILL_AT_STEP=50 "$LC" run "$RECIPE" output_dir="$TMP/c" >"$TMP/c1.log" 2>&1
truncate -s 2000 "$TMP/c/pretrain/ckpt-00000040.h5"
"$LC" run "$RECIPE" output_dir="$TMP/c" >"$TMP/c2.log" 2>&1 || fail "run after truncation failed: $(tail -3 "$TMP/c2.log")"
grep -q "warning: .*ckpt-00000040.h5.*trying the previous checkpoint" "$TMP/c2.log" || fail "truncated checkpoint not reported: $(head -5 "$TMP/c2.log")"
grep -q "resuming from .*ckpt-00000020.h5 (step 20)" "$TMP/c2.log" || fail "did not fall back to step 20"
same_params "$TMP/a/pretrain/final.h5" "$TMP/c/pretrain/final.h5" || fail "run resumed past a truncated checkpoint differs"

# D: a finished stage is skipped and its model left untouched
before=$(md5sum <"$TMP/a/pretrain/final.h5")
"$LC" run "$RECIPE" output_dir="$TMP/a" >"$TMP/a2.log" 2>&1 || fail "rerun failed"
grep -q "\[pretrain\] already complete" "$TMP/a2.log" || fail "finished stage not skipped: $(cat "$TMP/a2.log")"
[ "$before" = "$(md5sum <"$TMP/a/pretrain/final.h5")" ] || fail "rerun changed final.h5"

# E: bad input gets a clear error and a non-zero exit
"$LC" run "$RECIPE" output_dir="$TMP/e" pretrain.steps=abc >"$TMP/e.log" 2>&1 && fail "a bad override was accepted"
grep -q "command line 'pretrain.steps=abc'" "$TMP/e.log" || fail "bad override message: $(cat "$TMP/e.log")"

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all run checks passed"
