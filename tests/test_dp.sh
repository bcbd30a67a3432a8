#!/usr/bin/env bash
# tests/test_dp.sh: data-parallel training with `mpirun -np 2` against one process on the same
# global batch (tests/fixtures/run/dp.yaml: pretrain, sft, reward, dpo):
#   - every training row's loss of the 2-process run equals the 1-process run's to 1e-5
#     relative (the gradients are summed in another order, nothing else differs);
#   - ZeRO-1 (zero=1) ends with the same weights as ZeRO-0 (1e-6), and its memory report counts
#     rank 0's slice of the moments;
#   - two same-seed 2-process runs are bit-identical, and so is one killed and resumed with 2;
#   - a 2-process ZeRO-1 run killed mid-stage and resumed with 1 process, and a 1-process run
#     resumed with 2, end with the losses of the uninterrupted run (1e-5 relative);
#   - a rank killed mid-stage, or hanging, stops the run non-zero with a message naming it,
#     within the collective timeout (LC_COLLECTIVE_TIMEOUT), never a silent hang.
#   test_dp.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON MPIEXEC
FIXTURE=dp.yaml
source "$(dirname "$0")/dp_lib.sh"

# Training losses of two runs' stages: same steps, each within rtol relative.
same_losses() { # DIR_A DIR_B RTOL [STAGES...]
  "$PY" - "$@" <<'PY'
import json, sys
a, b, rtol = sys.argv[1], sys.argv[2], float(sys.argv[3])
stages = sys.argv[4:] or ["pretrain", "sft", "reward", "dpo"]
worst = 0.0
for st in stages:
    rows = []
    for d in (a, b):
        r = [json.loads(l) for l in open(f"{d}/{st}/metrics.jsonl")]
        rows.append({x["step"]: x["loss"] for x in r if "split" not in x and "loss" in x})
    assert rows[0].keys() == rows[1].keys() and rows[0], f"{st}: steps differ {sorted(rows[0])} {sorted(rows[1])}"
    for s in rows[0]:
        x, y = rows[0][s], rows[1][s]
        rel = abs(x - y) / max(abs(x), 1e-30)
        worst = max(worst, rel)
        assert rel <= rtol, f"{st} step {s}: loss {x!r} vs {y!r} (relative {rel:.2e})"
print(f"worst relative loss difference {worst:.2e}")
PY
}

# Every parameter of two checkpoints within atol (0: bit for bit).
same_params() { # A B ATOL
  "$PY" - "$@" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
atol = float(sys.argv[3])
names = sorted(a["params"])
assert names == sorted(b["params"]), "different tensors"
bad = [n for n in names if not np.allclose(a["params"][n][()], b["params"][n][()], rtol=0, atol=atol)
       or (atol == 0 and not np.array_equal(a["params"][n][()], b["params"][n][()]))]
sys.exit(f"differ: {bad}" if bad else 0)
PY
}


# A: one process; B, B2: two processes (ZeRO-0), twice; C: two processes, ZeRO-1
run1 a || fail "1 process: $(tail -3 "$TMP/a.log")"
run2 b || fail "2 processes: $(tail -5 "$TMP/b.log")"
run2 b2 || fail "2 processes again: $(tail -5 "$TMP/b2.log")"
run2 c zero=1 || fail "2 processes, ZeRO-1: $(tail -5 "$TMP/c.log")"
grep -q "x 2 process(es)" "$TMP/b.log" || fail "the 2-process run did not report 2 processes"
same_losses "$TMP/a" "$TMP/b" 1e-5 || fail "2 processes vs 1: losses"
same_losses "$TMP/b" "$TMP/c" 1e-5 || fail "ZeRO-1 vs ZeRO-0: losses"
for k in 0 1; do # ZeRO-1: each process's shard of the moments beside the checkpoint
  [ -s "$TMP/c/pretrain/ckpt-00000008.h5.optim-$k-of-2" ] || fail "no optimiser shard $k of 2"
done
# the memory report (memory.json, rank 0's): ZeRO-1 holds rank 0's slice of the moments, the
# first ceil(n/2) of the n parameters, ZeRO-0 all of them; one table per stage in the log
"$PY" - "$TMP/b" "$TMP/c" <<'PY' || fail "memory report under ZeRO-1"
import json, sys
for st in ("pretrain", "sft", "reward", "dpo"):
    b, c = (json.load(open(f"{d}/{st}/memory.json"))["roles"][0] for d in sys.argv[1:3])
    n = b["weights"] // 4
    assert b["optimiser"] == 8 * n, (st, b)
    assert c["optimiser"] == 8 * ((n + 1) // 2), (st, c)
PY
[ "$(grep -c "^\[pretrain\] memory per process" "$TMP/c.log")" = 1 ] || fail "not one memory report from 2 processes"
for st in pretrain sft reward dpo; do
  same_params "$TMP/b/$st/final.h5" "$TMP/c/$st/final.h5" 1e-6 || fail "$st: ZeRO-1 weights differ from ZeRO-0"
  same_params "$TMP/b/$st/final.h5" "$TMP/b2/$st/final.h5" 0 || fail "$st: two same-seed 2-process runs differ"
done

# D: 2 processes with ZeRO-1 killed after pretrain step 6 (checkpoint at 4), resumed as 1
LC_FAULT_KILL_AT_STEP=6 run2 d zero=1
[ -e "$TMP/d/pretrain/final.h5" ] && fail "a killed stage has a final.h5"
"$LC" run "$RECIPE" output_dir="$TMP/d" >"$TMP/d2.log" 2>&1 || fail "resume with 1 process: $(tail -3 "$TMP/d2.log")"
grep -q "resuming from .*ckpt-00000004.h5" "$TMP/d2.log" || fail "did not resume from step 4"
same_losses "$TMP/a" "$TMP/d" 1e-5 || fail "2 -> 1 process resume: losses"

# E: one process killed after step 6, resumed with 2 processes and ZeRO-1
LC_FAULT_KILL_AT_STEP=6 run1 e
"${MPI[@]}" "$LC" run "$RECIPE" output_dir="$TMP/e" zero=1 >"$TMP/e2.log" 2>&1 || fail "resume with 2 processes: $(tail -5 "$TMP/e2.log")"
same_losses "$TMP/a" "$TMP/e" 1e-5 || fail "1 -> 2 process resume: losses"

# H: 2 processes with ZeRO-1 killed after step 6 and resumed with 2: bit-identical to C
LC_FAULT_KILL_AT_STEP=6 run2 h zero=1
run2 h2 zero=1 output_dir="$TMP/h" || fail "resume with 2 processes: $(tail -5 "$TMP/h2.log")"
grep -q "resuming from .*ckpt-00000004.h5" "$TMP/h2.log" || fail "H did not resume from step 4"
for st in pretrain sft reward dpo; do
  same_params "$TMP/c/$st/final.h5" "$TMP/h/$st/final.h5" 0 || fail "$st: resumed 2-process run differs from the uninterrupted one"
done

# G: a rank killed mid-stage: the other stops, non-zero, within the timeout, the launcher naming
# the dead rank; a rank that hangs: the other's collective times out naming itself
start=$(date +%s)
LC_FAULT_KILL_AT_STEP=3 LC_FAULT_RANK=1 timeout 120 "${MPI[@]}" "$LC" run "$RECIPE" output_dir="$TMP/g1" >"$TMP/g1.log" 2>&1
status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "a run with a killed rank exited $status"
grep -q "rank 1 .*exited on signal 9" "$TMP/g1.log" || fail "the killed rank is not named: $(tail -3 "$TMP/g1.log")"
LC_COLLECTIVE_TIMEOUT=5 LC_FAULT_HANG_AT_STEP=3 LC_FAULT_RANK=1 timeout 120 "${MPI[@]}" "$LC" run "$RECIPE" output_dir="$TMP/g2" >"$TMP/g2.log" 2>&1
status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "a run with a hung rank exited $status"
grep -q "rank 0 of 2: collective .* did not complete within 5 s" "$TMP/g2.log" || fail "no timeout message: $(tail -3 "$TMP/g2.log")"
[ $(( $(date +%s) - start )) -lt 100 ] || fail "the failed runs took $(( $(date +%s) - start )) s to stop"

# LoRA adapters over 2 processes under ZeRO-1 (the adapters' moments and gradients, the
# trained table only, sharded and reduced) against 1 process: the same losses
LORA=(sft.lora.rank=4 reward.lora.rank=4 dpo.lora.rank=4 "dpo.lora.targets=[q,k,v,o,up,down]")
for d in la lb; do mkdir -p "$TMP/$d" && cp -r "$TMP/a/pretrain" "$TMP/$d/"; done
run1 la "${LORA[@]}" || fail "lora, 1 process: $(tail -3 "$TMP/la.log")"
run2 lb zero=1 "${LORA[@]}" || fail "lora, 2 processes: $(tail -5 "$TMP/lb.log")"
same_losses "$TMP/la" "$TMP/lb" 1e-5 sft reward dpo || fail "lora: 2 processes (ZeRO-1) vs 1: losses"

[ "$fails" -eq 0 ] && echo "test_dp: all passed"
exit $((fails > 0))
