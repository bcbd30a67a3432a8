#!/usr/bin/env bash
# tests/test_iterdpo.sh: the label and iterative_dpo stages end to end on a tiny arithmetic world
# judged by its gold reward: the label stage's pref.h5, pref-val.h5 and sft.h5 are well-formed
# and hold the pairs and best-of-n examples labels.jsonl lists (one line per prompt, chosen
# answers correct, margins the score differences); iterative_dpo labels disjoint prompt slices
# per round, writes rounds.jsonl (one line per round) and a final.h5 equal to its last round's;
# a rerun skips both; a run killed mid-round 1 and resumed skips round 0 and round 1's
# labelling, resumes round 1 from its checkpoint and ends bit-identical to the uninterrupted run.
#   test_iterdpo.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4
RECIPE=$SRC/tests/fixtures/run/iterdpo.yaml
DATA=$SRC/tests/fixtures/run/data/arith-tiny
rm -rf "$TMP"
mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# A: uninterrupted
"$LC" run "$RECIPE" output_dir="$TMP/a" >"$TMP/a.log" 2>&1 || fail "run failed: $(tail -5 "$TMP/a.log")"
grep -q "^\[label\] 4 responses to each of 200 prompts from 'sft', judged by gold arithmetic" "$TMP/a.log" ||
  fail "no label summary: $(grep '^\[label\]' "$TMP/a.log")"
for s in sft_bon dpo_label; do # trained on the label stage's sft.h5, pref.h5 and pref-val.h5
  [ -e "$TMP/a/$s/final.h5" ] || fail "$s did not train on the label stage's files"
done
grep -q "^\[dpo_label\] step 2 val loss" "$TMP/a.log" || fail "dpo_label did not validate on pref-val.h5"

"$PY" - "$TMP/a" "$DATA" <<'PY' || fail "label and iterative_dpo outputs"
import json, sys, h5py, numpy as np
run, data = sys.argv[1:3]
eot = int(h5py.File(f"{data}/sft.h5")["tokens"][-1])  # synth's sft examples end with it
prompts = h5py.File(f"{data}/prompts.h5")
n_prompts = len(prompts["prompt_offsets"]) - 1
def count(path, kind):
    f = h5py.File(path, "r")
    assert f.attrs["kind"] == kind, (path, f.attrs["kind"])
    key = "prompt_offsets" if kind == "preference" else "offsets"
    for k in [x for x in f if x.endswith("_offsets") or x == "offsets"]:
        off = f[k][()]
        assert off[0] == 0 and np.all(np.diff(off) >= 0), (path, k)
    return len(f[key]) - 1

# the label stage
summary = json.load(open(f"{run}/label/label.json"))
lines = [json.loads(l) for l in open(f"{run}/label/labels.jsonl")]
assert len(lines) == n_prompts == summary["prompts"], (len(lines), n_prompts, summary)
assert [l["prompt_index"] for l in lines] == list(range(n_prompts))
pairs = {s: sum(len(l["pairs"]) for l in lines if l["split"] == s) for s in ("train", "val")}
assert count(f"{run}/label/pref.h5", "preference") == pairs["train"] == summary["pairs"] > 0
assert count(f"{run}/label/pref-val.h5", "preference") == pairs["val"] == summary["val_pairs"]
kept = [l for l in lines if l["sft"] is not None]
assert count(f"{run}/label/sft.h5", "sft") == len(kept) == summary["sft"] > 0
correct = sum(sum(l["correct"]) for l in lines)
assert correct == summary["correct"] and summary["known"] == 4 * n_prompts
assert abs(summary["score_sum"] - sum(sum(l["scores"]) for l in lines)) < 1e-9
for l in lines:
    assert len(l["responses"]) == len(l["scores"]) == 4
    assert len(l["pairs"]) <= 1  # best_worst
    for p in l["pairs"]:
        s = l["scores"]
        assert abs(p["margin"] - (s[p["chosen"]] - s[p["rejected"]])) < 1e-12, l
        assert not p["swapped"] and p["margin"] > 0 and s[p["chosen"]] == max(s), l
        assert l["correct"][p["chosen"]], "require_correct: a wrong chosen answer"
    if l["sft"] is not None:
        assert l["correct"][l["sft"]] and l["scores"][l["sft"]] == max(l["scores"])
# the pairs of the training split, in order, are those labels.jsonl lists
pf = h5py.File(f"{run}/label/pref.h5")
po = prompts["prompt_offsets"][()]
train = [l for l in lines if l["split"] == "train" and l["pairs"]]
for i, l in enumerate(train):
    a, b = pf["prompt_offsets"][i], pf["prompt_offsets"][i + 1]
    want = prompts["prompt_tokens"][po[l["prompt_index"]]:po[l["prompt_index"] + 1]]
    assert np.array_equal(pf["prompt_tokens"][a:b], want), f"pair {i}: another prompt"
    c0, c1 = pf["chosen_offsets"][i], pf["chosen_offsets"][i + 1]
    assert pf["chosen_tokens"][c1 - 1] == eot, "a correct chosen answer ends with its end token"
# best-of-n sft: the prompt (mask 0), then the response and its end token (mask 1)
sf = h5py.File(f"{run}/label/sft.h5")
off, tok, mask = sf["offsets"][()], sf["tokens"][()], sf["loss_mask"][()]
for i, l in enumerate(kept):
    plen = po[l["prompt_index"] + 1] - po[l["prompt_index"]]
    m = mask[off[i]:off[i + 1]]
    assert not m[:plen].any() and m[plen:].all() and len(m) > plen, f"sft {i}: mask {m}"
    assert tok[off[i + 1] - 1] == eot, f"sft {i}: no end token"
st = h5py.File(f"{run}/label/final.h5")["state"].attrs
assert st["complete"] == 1

# iterative_dpo
rounds = [json.loads(l) for l in open(f"{run}/online/rounds.jsonl")]
assert [r["round"] for r in rounds] == [0, 1], rounds
seen = []
for r in rounds:
    d = f"{run}/online/round-{r['round']}"
    lines = [json.loads(l) for l in open(f"{d}/labels.jsonl")]
    assert len(lines) == r["prompts"] == 64, (len(lines), r)
    seen.append({l["prompt_index"] for l in lines})
    assert count(f"{d}/pref.h5", "preference") == r["pairs"] > 0
    assert count(f"{d}/pref-val.h5", "preference") == r["val_pairs"]
    assert r["pairs"] + r["val_pairs"] == sum(len(l["pairs"]) for l in lines)
    for l in lines:  # all_pairs: every two answers with different scores
        s = l["scores"]
        want = sum(1 for i in range(4) for j in range(i + 1, 4) if s[i] != s[j])
        assert len(l["pairs"]) == want, l
    m = [json.loads(x) for x in open(f"{d}/metrics.jsonl")]
    last = [x for x in m if "split" not in x][-1]
    assert last["step"] == 4 and abs(last["loss"] - r["dpo_loss"]) < 1e-6
    assert abs(last["rewards/accuracies"] - r["dpo_reward_accuracy"]) < 1e-6
    assert 0 <= r["accuracy"] <= 1 and r["mean_score"] is not None
assert len(seen[0]) == 64 and not seen[0] & seen[1], "round prompt slices overlap"
fa, fr = h5py.File(f"{run}/online/final.h5"), h5py.File(f"{run}/online/round-1/final.h5")
for n in fr["params"]:
    assert np.array_equal(fa["params"][n][()], fr["params"][n][()]), n
assert fa["state"].attrs["complete"] == 1
PY

# a rerun skips the finished stages
"$LC" run "$RECIPE" output_dir="$TMP/a" >"$TMP/a2.log" 2>&1 || fail "rerun failed"
for s in label sft_bon dpo_label online; do
  grep -q "^\[$s\] already complete" "$TMP/a2.log" || fail "rerun did not skip $s"
done

# C: round 0 done, killed after step 3 of round 1 (checkpoint at 2), then resumed
mkdir -p "$TMP/c/online"
cp -r "$TMP/a/pretrain" "$TMP/a/sft" "$TMP/a/label" "$TMP/c/"
cp -r "$TMP/a/online/round-0" "$TMP/c/online/"
LC_FAULT_KILL_AT_STEP=3 "$LC" run "$RECIPE" output_dir="$TMP/c" --only online >"$TMP/c1.log" 2>&1
[ $? -eq 137 ] || fail "the killed run did not die by SIGKILL: $(tail -3 "$TMP/c1.log")"
[ -e "$TMP/c/online/round-1/final.h5" ] && fail "a killed round has a final.h5"
[ -e "$TMP/c/online/final.h5" ] && fail "a killed stage has a final.h5"
"$LC" run "$RECIPE" output_dir="$TMP/c" --only online >"$TMP/c2.log" 2>&1 || fail "resumed run failed: $(tail -3 "$TMP/c2.log")"
grep -q "^\[online\] round 0 already complete" "$TMP/c2.log" || fail "round 0 not skipped"
grep -q "^\[online/round-1\] labelled samples from .*round-1/pref.h5" "$TMP/c2.log" || fail "round 1's labelling not reused"
grep -q "resuming from .*round-1/ckpt-00000002.h5 (step 2)" "$TMP/c2.log" || fail "did not resume round 1 from step 2"
"$PY" - "$TMP" <<'PY' || fail "resumed run differs from the uninterrupted one"
import sys, h5py, numpy as np
tmp = sys.argv[1]
a, c = (h5py.File(f"{tmp}/{d}/online/final.h5", "r") for d in ("a", "c"))
assert sorted(a["params"]) == sorted(c["params"])
bad = [n for n in a["params"] if not np.array_equal(a["params"][n][()], c["params"][n][()])]
assert not bad, bad
assert open(f"{tmp}/a/online/rounds.jsonl").read() == open(f"{tmp}/c/online/rounds.jsonl").read()
PY

# recipe errors name the key
"$LC" validate "$RECIPE" online.data.train=x.h5 >"$TMP/v1.log" 2>&1 && fail "iterative_dpo took data.train"
grep -q "online.data.train" "$TMP/v1.log" || fail "no key in the message: $(cat "$TMP/v1.log")"
"$LC" validate "$RECIPE" label.rollout.group_size=1 >"$TMP/v2.log" 2>&1 && fail "label took group_size 1"
grep -q "rollout.group_size" "$TMP/v2.log" || fail "no key in the message: $(cat "$TMP/v2.log")"
"$LC" validate "$RECIPE" online.init=label >"$TMP/v3.log" 2>&1 && fail "a label stage was taken as init"

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all label and iterative_dpo checks passed"
