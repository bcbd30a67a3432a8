#!/usr/bin/env bash
# tests/test_dp_rl.sh: data-parallel RL and evaluation with `mpirun -np 2` and one process
# (tests/fixtures/run/dp_rl.yaml: pretrain, sft, reward, then ppo, grpo and eval):
#   - two same-seed 2-process runs end with bit-identical ppo and grpo checkpoints (policy,
#     critic, optimiser state, RNG, KL coefficient) and identical metrics;
#   - each iteration's logged reward mean (objective/scores) equals the mean over the union of
#     both ranks' rollouts (LC_DUMP_ROLLOUTS, 1e-6), each rank holding half of them;
#   - a 2-process ppo stage killed after iteration 2 and resumed with 2 processes ends
#     bit-identical to the uninterrupted run; with ZeRO-1 it ends with ZeRO-0's weights (1e-6);
#   - eval over 2 processes evaluates as many prompts as one process, and over the 1-process
#     run's models writes exactly its samples.jsonl and results;
#   - an epoch's last step that leaves rank 1 no prompt (42 prompts, 4 per step) still runs;
#   - a rollout.batch that does not split over the processes is refused, naming the key.
#   test_dp_rl.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON MPIEXEC
FIXTURE=dp_rl.yaml
source "$(dirname "$0")/dp_lib.sh"

# A: one process; B, B2: two processes, the same seed (B dumps its rollouts' rewards)
run1 a || fail "1 process: $(tail -3 "$TMP/a.log")"
mkdir -p "$TMP/dump"
LC_DUMP_ROLLOUTS="$TMP/dump" run2 b || fail "2 processes: $(tail -5 "$TMP/b.log")"
run2 b2 || fail "2 processes again: $(tail -5 "$TMP/b2.log")"
grep -q "\[ppo\] 2 processes: each generates and trains on 2 prompts" "$TMP/b.log" ||
  fail "the 2-process ppo stage did not report its share"

# Z: the earlier stages of B, then ppo over 2 processes with ZeRO-1
mkdir -p "$TMP/z"
cp -r "$TMP/b/pretrain" "$TMP/b/sft" "$TMP/b/reward" "$TMP/z/"
run2 z1 --only ppo zero=1 output_dir="$TMP/z" || fail "ppo with ZeRO-1: $(tail -5 "$TMP/z1.log")"

# C: the earlier stages of B, then ppo killed after iteration 2 (checkpoint every iteration)
# and resumed, both with 2 processes
mkdir -p "$TMP/c"
cp -r "$TMP/b/pretrain" "$TMP/b/sft" "$TMP/b/reward" "$TMP/c/"
LC_FAULT_KILL_AT_STEP=2 run2 c1 --only ppo ppo.checkpoint.every=1 output_dir="$TMP/c"
[ -e "$TMP/c/ppo/final.h5" ] && fail "a killed ppo stage has a final.h5"
run2 c2 --only ppo ppo.checkpoint.every=1 output_dir="$TMP/c" ||
  fail "resume with 2 processes: $(tail -5 "$TMP/c2.log")"
grep -q "resuming from .*ckpt-00000002.h5" "$TMP/c2.log" || fail "ppo did not resume from iteration 2"

"$PY" - "$TMP" <<'PY' || fail "comparison"
import glob, json, sys, h5py, numpy as np
tmp = sys.argv[1]
timing = ("elapsed", "tokens_per_s", "rollout_tokens_per_s")
fails = []

def rows(run, stage):
    return [{k: v for k, v in json.loads(l).items() if k not in timing and not k.startswith("time/")}
            for l in open(f"{tmp}/{run}/{stage}/metrics.jsonl")]

def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out

def same_file(a, b, what):
    x, y = datasets(a), datasets(b)
    if x.keys() != y.keys():
        fails.append(f"{what}: different datasets")
        return
    bad = [n for n in x if n != "state/recipe" and not np.array_equal(x[n], y[n])]  # output_dir
    if bad:
        fails.append(f"{what}: differ in {bad[:5]}")

# (a) same seed, 2 processes: bit-identical checkpoints and metrics
for st in ("ppo", "grpo"):
    same_file(f"{tmp}/b/{st}/final.h5", f"{tmp}/b2/{st}/final.h5", f"{st}: two same-seed 2-process runs")
    if rows("b", st) != rows("b2", st):
        fails.append(f"{st}: two same-seed 2-process runs log different metrics")
same_file(f"{tmp}/b/ppo/final.h5", f"{tmp}/c/ppo/final.h5", "ppo: killed and resumed vs uninterrupted")
if rows("b", "ppo") != rows("c", "ppo"):
    fails.append("ppo: the resumed run logs different metrics")

with h5py.File(f"{tmp}/b/ppo/final.h5", "r") as f0, h5py.File(f"{tmp}/z/ppo/final.h5", "r") as f1:
    for grp in ("params", "models"):
        names = []
        f0[grp].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        bad = [n for n in names if not np.allclose(f0[grp][n][()], f1[grp][n][()], rtol=0, atol=1e-6)]
        if not names or bad:
            fails.append(f"ppo: ZeRO-1 weights differ from ZeRO-0 in {grp}: {bad[:5]}")

# (b) the logged reward mean is the mean over the union of the ranks' rollouts
worst = 0.0
for st, per_rank in (("ppo", 4), ("grpo", 8)):  # rollout.batch 4 / 2 ranks x group_size
    for r in rows("b", st):
        it = r["step"]
        scores = []
        for rank in (0, 1):
            v = [float(x) for x in open(f"{tmp}/dump/{st}-rank{rank}-iter{it}.txt")]
            if len(v) != per_rank:
                fails.append(f"{st} iteration {it}: rank {rank} dumped {len(v)} rollouts, not {per_rank}")
            scores += v
        d = abs(np.mean(scores) - r["objective/scores"])
        worst = max(worst, d)
        if d > 1e-6:
            fails.append(f"{st} iteration {it}: logged reward {r['objective/scores']} vs union mean {np.mean(scores)}")
print(f"reward mean vs union of the ranks' rollouts: worst difference {worst:.2e}")

# (c) eval over 2 processes: as many prompts as one process
a, b = rows("a", "eval")[0], rows("b", "eval")[0]
if a["prompts"] != b["prompts"] or a["prompts"] <= 0:
    fails.append(f"eval: {b['prompts']} prompts over 2 processes, {a['prompts']} over 1")
na, nb = (sum(1 for _ in open(f"{tmp}/{d}/eval/samples.jsonl")) for d in ("a", "b"))
if na != nb:
    fails.append(f"eval: samples.jsonl has {nb} lines over 2 processes, {na} over 1")
print(f"eval: {a['prompts']} prompts, {na} samples")
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
PY

# D: eval over 2 processes of the 1-process run's models: exactly the 1-process results
mkdir -p "$TMP/d"
cp -r "$TMP/a/pretrain" "$TMP/a/sft" "$TMP/a/reward" "$TMP/a/ppo" "$TMP/a/grpo" "$TMP/d/"
run2 d1 --only eval output_dir="$TMP/d" || fail "eval over 2 processes: $(tail -5 "$TMP/d1.log")"
cmp -s "$TMP/a/eval/samples.jsonl" "$TMP/d/eval/samples.jsonl" ||
  fail "eval over 2 processes: samples.jsonl differs from one process's"
"$PY" - "$TMP/a/eval" "$TMP/d/eval" <<'PY' || fail "eval over 2 processes: results differ from one process's"
import json, sys
timing = ("elapsed", "tokens_per_s")
a, b = ({k: v for k, v in json.loads(open(f"{d}/metrics.jsonl").readline()).items() if k not in timing}
        for d in sys.argv[1:3])
assert a == b, f"metrics {a} vs {b}"
assert json.load(open(f"{sys.argv[1]}/results.json")) == json.load(open(f"{sys.argv[2]}/results.json"))
PY

# G: grpo through a whole epoch of 42 prompts: its 11th iteration gives rank 1 no prompt
mkdir -p "$TMP/g"
cp -r "$TMP/b/pretrain" "$TMP/b/sft" "$TMP/b/reward" "$TMP/g/"
run2 g1 --only grpo grpo.iterations=12 output_dir="$TMP/g" ||
  fail "grpo over an epoch's end with 2 processes: $(tail -5 "$TMP/g1.log")"
[ "$(wc -l <"$TMP/g/grpo/metrics.jsonl")" -eq 12 ] || fail "grpo over an epoch's end: not 12 rows"

# E: rollout.batch must split over the processes, and the refusal names it
if run2 e --only grpo grpo.rollout.batch=3 output_dir="$TMP/c"; then
  fail "a rollout.batch of 3 over 2 processes was accepted"
fi
grep -q "rollout.batch 3 .* is not a multiple of the 2 processes" "$TMP/e.log" ||
  fail "no clear refusal of rollout.batch: $(tail -3 "$TMP/e.log")"

[ "$fails" -eq 0 ] && echo "test_dp_rl: all passed"
exit $((fails > 0))
