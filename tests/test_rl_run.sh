#!/usr/bin/env bash
# tests/test_rl_run.sh: the ppo and grpo stages end to end on a tiny pipeline: two runs with one
# seed write bit-identical metrics; a ppo stage killed with SIGKILL mid-stage and resumed ends
# with the policy, the critic and their optimiser states bit-identical to an uninterrupted run
# (and the KL controller and RNG, through identical metrics); rollout log-probs equal the
# forward pass's; the log shows the time split; the sft, ppo and (in a recipe of its own) dpo
# stages with a live reference print the memory report with a row per role.
#   test_rl_run.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4
RECIPE=$SRC/tests/fixtures/run/rl.yaml
rm -rf "$TMP"
mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$LC" run "$RECIPE" output_dir="$TMP/a" >"$TMP/a.log" 2>&1 || fail "run failed: $(tail -5 "$TMP/a.log")"
# The memory report (train/run/memory.h) at each stage's start: its header, and a row per role.
# report_has LOG STAGE ROLE...: the stage's table is in the log with a number in every row.
report_has() {
  local log=$1 stage=$2
  shift 2
  grep -q "^\[$stage\] memory per process, MB (1e6 bytes):$" "$log" || fail "$stage: no memory report"
  grep -Eq "^\[$stage\]   role +weights +gradients +optimiser +activations +KV cache( +other)? +total$" "$log" ||
    fail "$stage: no memory report header"
  for role in "$@" total; do
    grep -Eq "^\[$stage\]   $role +([0-9]+\.[0-9]{2}|-)( +([0-9]+\.[0-9]{2}|-))* +[0-9]+\.[0-9]{2}$" "$log" ||
      fail "$stage: no '$role' row in the memory report: $(grep "^\[$stage\]   " "$log")"
  done
}
report_has "$TMP/a.log" sft model
report_has "$TMP/a.log" ppo policy "policy view" reference value "value view" "reward model" sampler
grep -Eq "^\[ppo\]   value +[0-9.]+ +[0-9.]+ +[0-9.]+ " "$TMP/a.log" || fail "ppo: the critic has no weights, gradients and optimiser"
grep -Eq "^\[ppo\]   reference +[0-9.]+ +- +- +[0-9.]+ " "$TMP/a.log" || fail "ppo: the frozen reference has gradients or moments"
grep -Eq "^\[ppo\]   sampler +- +- +- +[0-9.]+ +[0-9.]+ " "$TMP/a.log" || fail "ppo: the sampler has weights or no KV cache"
"$PY" - "$TMP/a/ppo/memory.json" <<'PY' || fail "ppo/memory.json"
import json, sys
m = json.load(open(sys.argv[1]))
roles = {r["role"]: r for r in m["roles"]}
assert {"policy", "reference", "value", "reward model", "sampler"} <= set(roles), roles
assert roles["policy view"]["weights"] == 0 and roles["sampler"]["kv_cache"] > 0
assert m["total"]["total"] == sum(r["total"] for r in m["roles"])
PY
# dpo with a live reference, from the sft stage's model (a two-step recipe of its own)
cat >"$TMP/dpo.yaml" <<EOF
name: dpo-live
seed: 11
tokenizer: $SRC/tests/fixtures/run/data/arith-tiny/tokenizer.json
model: {n_layer: 1, n_head: 2, d_model: 32, max_seq_len: 32}
stages:
  - {name: dpo, kind: dpo, init: $TMP/a/sft/final.h5, reference: live, data: {train: $SRC/tests/fixtures/run/data/arith-tiny/pref.h5}, steps: 2, batch_size: 4, seq_len: 24}
EOF
"$LC" run "$TMP/dpo.yaml" output_dir="$TMP/dpo" >"$TMP/dpo.log" 2>&1 || fail "dpo run failed: $(tail -5 "$TMP/dpo.log")"
report_has "$TMP/dpo.log" dpo policy "live reference"
grep -Eq "^\[dpo\]   live reference +[0-9.]+ +- +- +[0-9.]+ " "$TMP/dpo.log" || fail "dpo: the live reference has gradients or moments"
grep -q "rollout/score/update" "$TMP/a.log" || fail "no time split in the log"

# B: the same earlier stages, then ppo and grpo again from them (bit-identical metrics), and
# C: ppo killed after iteration 3 (checkpoints at 2 and 4) and resumed
for d in b c; do
  mkdir -p "$TMP/$d"
  cp -r "$TMP/a/pretrain" "$TMP/a/sft" "$TMP/a/reward" "$TMP/$d/"
done
"$LC" run "$RECIPE" output_dir="$TMP/b" >"$TMP/b.log" 2>&1 || fail "second run failed"
LC_FAULT_KILL_AT_STEP=3 "$LC" run "$RECIPE" output_dir="$TMP/c" --only ppo >"$TMP/c1.log" 2>&1
[ $? -eq 137 ] || fail "the killed run did not die by SIGKILL"
"$LC" run "$RECIPE" output_dir="$TMP/c" >"$TMP/c2.log" 2>&1 || fail "resumed run failed: $(tail -3 "$TMP/c2.log")"
grep -q "resuming from .*ckpt-00000002.h5 (iteration 2)" "$TMP/c2.log" || fail "did not resume from iteration 2"

"$PY" - "$TMP" <<'PY' || fail "comparison"
import json, sys, h5py, numpy as np
tmp = sys.argv[1]
timing = ("elapsed", "tokens_per_s", "rollout_tokens_per_s")
def rows(run, stage):
    out = []
    for l in open(f"{tmp}/{run}/{stage}/metrics.jsonl"):
        r = json.loads(l)
        out.append({k: v for k, v in r.items() if k not in timing and not k.startswith("time/")})
    return out
for stage in ("ppo", "grpo", "rloo"):
    a, b = rows("a", stage), rows("b", stage)
    assert a == b, f"{stage}: two runs with one seed differ"
    assert all(r["rollout/logp_diff"] < 1e-4 for r in a), f"{stage}: rollout log-probs differ from the forward pass"
assert rows("a", "ppo") == rows("c", "ppo"), "ppo resumed: metrics differ (KL controller, RNG, data)"
fa, fc = h5py.File(f"{tmp}/a/ppo/final.h5"), h5py.File(f"{tmp}/c/ppo/final.h5")
for group in ("params", "models/value/params"):
    for name in fa[group]:
        assert np.array_equal(fa[group][name][()], fc[group][name][()]), f"{group}/{name} differs after resume"
assert abs(fa["state"].attrs["kl_coef"] - fc["state"].attrs["kl_coef"]) == 0, "KL controller differs"
PY

# D, E: LoRA. The reward model and ppo train adapters (ppo's from the same sft): the reward
# model's checkpoint is adapters over the policy's very base, so ppo holds one trunk (the
# reference the adapters off, the value and the reward model adapter sets on it); E is killed
# after iteration 3 and resumed, and ends bit-identical to D.
LORA=(reward.lora.rank=4 ppo.lora.rank=4 "ppo.lora.targets=[q,v,o,up]" ppo.lora.lr=0.003 grpo.iterations=1 rloo.iterations=1)
for d in d e; do
  mkdir -p "$TMP/$d"
  cp -r "$TMP/a/pretrain" "$TMP/a/sft" "$TMP/$d/"
done
"$LC" run "$RECIPE" output_dir="$TMP/d" "${LORA[@]}" >"$TMP/d.log" 2>&1 || fail "lora run failed: $(tail -5 "$TMP/d.log")"
grep -q "^\[ppo\] reward: adapters over the policy's base weights, held on its trunk$" "$TMP/d.log" ||
  fail "lora: the reward model does not share the policy's trunk"
"$LC" run "$RECIPE" output_dir="$TMP/e" "${LORA[@]}" --only reward >"$TMP/e0.log" 2>&1 || fail "lora reward failed"
LC_FAULT_KILL_AT_STEP=3 "$LC" run "$RECIPE" output_dir="$TMP/e" "${LORA[@]}" --only ppo >"$TMP/e1.log" 2>&1
[ $? -eq 137 ] || fail "the killed lora run did not die by SIGKILL"
"$LC" run "$RECIPE" output_dir="$TMP/e" "${LORA[@]}" --only ppo >"$TMP/e2.log" 2>&1 || fail "resumed lora run failed: $(tail -3 "$TMP/e2.log")"
grep -q "resuming from .*ckpt-00000002.h5 (iteration 2)" "$TMP/e2.log" || fail "lora: did not resume from iteration 2"
"$PY" - "$TMP" <<'PY' || fail "lora comparison"
import json, sys, h5py, numpy as np
tmp = sys.argv[1]
m = json.load(open(f"{tmp}/d/ppo/memory.json"))
w = {r["role"]: r["weights"] for r in m["roles"]}
g = {r["role"]: r["gradients"] for r in m["roles"]}
assert w["reference"] == 0, w
for role in ("value", "reward model"):  # adapters and a head: no trunk of their own
    assert 0 < w[role] < w["policy"] / 10, (role, w)
assert g["policy"] < w["policy"] / 10, "lora: the policy's base has gradients"
timing = ("elapsed", "tokens_per_s", "rollout_tokens_per_s")
def rows(run):
    return [{k: v for k, v in json.loads(l).items() if k not in timing and not k.startswith("time/")}
            for l in open(f"{tmp}/{run}/ppo/metrics.jsonl")]
assert rows("d") == rows("e"), "lora ppo resumed: metrics differ"
fd, fe = h5py.File(f"{tmp}/d/ppo/final.h5"), h5py.File(f"{tmp}/e/ppo/final.h5")
assert fd.attrs["lora_rank"] == 4 and "lora_q_a" in fd["params"], "lora: the checkpoint lost its adapters"
for group in ("params", "models/value/params"):
    for name in fd[group]:
        assert np.array_equal(fd[group][name][()], fe[group][name][()]), f"lora: {group}/{name} differs after resume"
sft = h5py.File(f"{tmp}/d/sft/final.h5")
for name in sft["params"]:  # the frozen base is the sft model's, untouched by ppo
    assert np.array_equal(sft["params"][name][()], fd["params"][name][()]), f"lora: base {name} moved"
PY

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all rl checks passed"
