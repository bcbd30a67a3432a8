#!/usr/bin/env bash
# tests/test_selfgen.sh: the self_instruct and critique_revise stages end to end on a tiny model
# (1 layer, d_model 32, pretrained a few dozen steps on text in the stages' prompt formats):
# sft.h5 and pref.h5 are datasets of the right kind and size; pool.jsonl and rounds.jsonl parse
# and add up (per round: generated = kept + every drop; the pool's lines match the rounds);
# every kept instruction's ROUGE-L against the pool before it, recomputed here, is at most the
# threshold; samples.jsonl has one line per prompt with every field; a second run skips both
# stages; the same seed gives the same files; unequal principle lists are refused.
#   test_selfgen.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4
rm -rf "$TMP"
mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The pretraining text, in the two prompt formats self_instruct uses: small task families (so a
# model this small learns the layout in seconds) and the fixture's seeds; six prompts.
"$PY" - "$SRC/tests/fixtures/self_instruct.jsonl" "$TMP" <<'PY' || fail "corpus"
import json, random, sys
rng = random.Random(5)
words = "hot cold up down big small fast slow light dark old new early late wet dry".split()
pairs = dict(zip(words[::2], words[1::2]))
pairs.update({b: a for a, b in list(pairs.items())})
families = [("Give an antonym of the word", lambda w: pairs[w]),
            ("Write the word in capital letters", str.upper),
            ("Spell the word backwards", lambda w: w[::-1]),
            ("Repeat the word twice", lambda w: w + " " + w)]
tasks = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for t in tasks:
    families.append((t["instruction"], None))
out = []
for _ in range(400):
    shown = rng.sample(families, 3)
    out.append("Come up with a series of tasks:\n" +
               "".join(f"Task {i + 1}: {f[0]}\n" for i, f in enumerate(shown)))
    name, fn = rng.choice(families[:4])
    w = rng.choice(words)
    out.append(f"Task: {name}\nInput: {w}\nOutput: {fn(w)}\n")
open(sys.argv[2] + "/corpus.txt", "w").write("\n".join(out))
with open(sys.argv[2] + "/prompts.jsonl", "w") as f:
    for w in words[:6]:
        f.write(json.dumps({"prompt": f"Give an antonym of the word {w}."}) + "\n")
PY

cat >"$TMP/selfgen.yaml" <<EOF
name: selfgen
seed: 3
prepare:
  - tokenizer train --vocab-size 320 --out tok.json corpus.txt
  - data import --kind lm --tokenizer tok.json --max-len 128 --out lm.h5 corpus.txt
  - data import --kind prompt --tokenizer tok.json --out prompts.h5 prompts.jsonl
tokenizer: tok.json
model: {n_layer: 1, n_head: 2, d_model: 32, max_seq_len: 256}
stages:
  - {name: pretrain, kind: pretrain, data: {train: lm.h5}, steps: 60, batch_size: 8, seq_len: 128, optim: {lr: 1.0e-2}, log: {every: 20}}
  - name: si
    kind: self_instruct
    init: pretrain
    data: {seeds: $SRC/tests/fixtures/self_instruct.jsonl}
    self_instruct: {target: 1000, prompt_tasks: 4, per_round: 12, max_rounds: 3, min_words: 2, instances: 2, blocklist: [backwards, go to]}
    rollout: {batch: 8, max_new_tokens: 32, temperature: 0.8}
  - name: cr
    kind: critique_revise
    init: pretrain
    data: {prompts: prompts.h5}
    critique_revise:
      critiques: ["Identify ways in which the answer is wrong.", "Point out what is unclear."]
      revisions: ["Rewrite the answer to fix what is wrong.", "Rewrite the answer clearly."]
      revisions_per_prompt: 2
    rollout: {batch: 4, max_new_tokens: 24}
  # a later stage trains on what an earlier one wrote (validated before the file exists)
  - {name: sft_cr, kind: sft, init: pretrain, data: {train: $TMP/a/cr/sft.h5}, steps: 2, batch_size: 3, seq_len: 256}
EOF
t0=$(date +%s)
"$LC" run "$TMP/selfgen.yaml" output_dir="$TMP/a" >"$TMP/a.log" 2>&1 || fail "run failed: $(tail -5 "$TMP/a.log")"
echo "run: $(($(date +%s) - t0)) s"
grep -Eq "^\[si\] round 1: 12 proposed, [0-9]+ kept" "$TMP/a.log" || fail "no round summary: $(grep '^\[si\]' "$TMP/a.log")"
grep -q "^\[cr\] 6 prompts of" "$TMP/a.log" || fail "no critique_revise summary"
grep -q "^\[sft_cr\] done" "$TMP/a.log" || fail "sft on critique_revise's sft.h5 did not finish"

"$PY" - "$TMP/a" "$SRC/tests/fixtures/self_instruct.jsonl" <<'PY' || fail "outputs"
import json, re, sys, h5py
run, seeds_path = sys.argv[1], sys.argv[2]

def tokens(s):  # rouge-score's default tokenizer, no stemming
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).split()

def rouge_l(a, b):
    a, b = tokens(a), tokens(b)
    if not a or not b:
        return 0.0
    row = [0] * (len(b) + 1)
    for x in a:
        diag = 0
        for j in range(1, len(b) + 1):
            up = row[j]
            row[j] = diag + 1 if x == b[j - 1] else max(up, row[j - 1])
            diag = up
    lcs = row[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)

def dataset(path, kind):
    f = h5py.File(path, "r")
    fmt, k = (a.decode() if isinstance(a, bytes) else a for a in (f.attrs["format"], f.attrs["kind"]))
    assert fmt == "layercake-dataset" and k == kind, (path, fmt, k)
    return f

def count(f, field="offsets"):
    return len(f[field]) - 1

# self_instruct
seeds = [json.loads(l)["instruction"] for l in open(seeds_path) if l.strip()]
pool = [json.loads(l) for l in open(f"{run}/si/pool.jsonl")]
rounds = [json.loads(l) for l in open(f"{run}/si/rounds.jsonl")]
assert [p["instruction"] for p in pool if p["origin"] == "seed"] == seeds
assert len(rounds) == 3, rounds  # target and min_yield never stop it: max_rounds does
assert len(pool) == len(seeds) + sum(r["generated"] for r in rounds)
reasons = {"empty", "too_short", "too_long", "blocklist", "bad_start", "similar"}
instructions = list(seeds)
kept_examples = 0
for r in rounds:
    assert set(r["dropped"]) == reasons, r
    assert r["generated"] == 12 and r["generated"] == r["kept"] + sum(r["dropped"].values()), r
    assert abs(r["yield"] - r["kept"] / r["generated"]) < 1e-9, r
    lines = [p for p in pool if p["origin"] == "generated" and p["round"] == r["round"]]
    assert len(lines) == r["generated"], (r, len(lines))
    for v in reasons | {"kept"}:
        want = r["kept"] if v == "kept" else r["dropped"][v]
        assert sum(p["verdict"] == v for p in lines) == want, (r, v)
    for p in lines:
        ins = p["instruction"]
        best = max(rouge_l(ins, q) for q in instructions)
        assert abs(best - p["rouge_l"]) < 1e-9, (ins, best, p["rouge_l"])
        if ins:
            assert rouge_l(ins, p["most_similar"]) == best, p
        if p["verdict"] == "kept":
            assert p["rouge_l"] <= 0.7 + 1e-12, p
            assert len(ins.split()) >= 2 and not re.search(r"(?i)\b(backwards|go to)\b", ins), p
            instructions.append(ins)
        if p["verdict"] == "blocklist":
            assert re.search(r"(?i)(^|[^a-z0-9])(backwards|go to)([^a-z0-9]|$)", ins), p
        if p["verdict"] == "similar":
            assert p["rouge_l"] > 0.7, p
    assert r["pool"] == len(instructions), (r, len(instructions))
    inst = r["instances"]
    assert inst["generated"] == 2 * r["kept"], r
    assert inst["generated"] == inst["kept"] + inst["no_output"] + inst["too_long"], r
    assert sum(p["instances"] for p in lines) == inst["kept"], r
    kept_examples += inst["kept"]
f = dataset(f"{run}/si/sft.h5", "sft")
n = count(f)
assert n == kept_examples, (n, kept_examples)
assert len(f["tokens"]) == f["offsets"][-1] == len(f["loss_mask"])
for i in range(n):
    m = f["loss_mask"][f["offsets"][i]:f["offsets"][i + 1]]
    assert m.sum() > 0 and m[0] == 0, i  # the response is trained, the prompt is not
print(f"self_instruct: {len(rounds)} rounds, {len(instructions) - len(seeds)} kept, "
      f"{n} examples, drops {[r['dropped'] for r in rounds]}")

# critique_revise
samples = [json.loads(l) for l in open(f"{run}/cr/samples.jsonl")]
assert len(samples) == 6, len(samples)
fields = {"index", "prompt", "principles", "answer", "critiques", "revisions", "dropped"}
for i, s in enumerate(samples):
    assert set(s) == fields and s["index"] == i and s["dropped"] is None, s
    assert len(s["principles"]) == len(s["critiques"]) == len(s["revisions"]) == 2, s
    assert all(p in (0, 1) for p in s["principles"]), s
    assert all(isinstance(t, str) for t in s["critiques"] + s["revisions"] + [s["answer"]]), s
f = dataset(f"{run}/cr/sft.h5", "sft")
assert count(f) == 6, count(f)
changed = sum(s["revisions"][-1] != s["answer"] for s in samples)
g = dataset(f"{run}/cr/pref.h5", "preference")
n = count(g, "prompt_offsets")
assert n == count(g, "chosen_offsets") == count(g, "rejected_offsets") == changed, (n, changed)
ends = {int(g[k + "_tokens"][g[k + "_offsets"][i + 1] - 1]) for k in ("chosen", "rejected")
        for i in range(n)}
assert len(ends) == 1, ends  # every response ends with the one end-of-turn token
print(f"critique_revise: 6 sft examples, {changed} pairs, "
      f"principles {[s['principles'] for s in samples]}")
PY

"$LC" data info "$TMP/a/si/sft.h5" >"$TMP/info.log" 2>&1 || fail "data info sft.h5: $(cat "$TMP/info.log")"
"$LC" data info "$TMP/a/cr/pref.h5" >>"$TMP/info.log" 2>&1 || fail "data info pref.h5: $(cat "$TMP/info.log")"
for s in si cr; do [ -f "$TMP/a/$s/final.h5" ] || fail "$s: no final.h5"; done

# A rerun skips both stages; a fresh run with the same seed writes the same files.
"$LC" run "$TMP/selfgen.yaml" output_dir="$TMP/a" >"$TMP/a2.log" 2>&1 || fail "rerun failed"
for s in si cr sft_cr; do grep -q "^\[$s\] already complete" "$TMP/a2.log" || fail "$s: not skipped on a rerun"; done
mkdir -p "$TMP/b" && cp -r "$TMP/a/pretrain" "$TMP/b/"
"$LC" run "$TMP/selfgen.yaml" output_dir="$TMP/b" >"$TMP/b.log" 2>&1 || fail "second run failed"
for f in si/pool.jsonl si/rounds.jsonl cr/samples.jsonl; do
  cmp -s "$TMP/a/$f" "$TMP/b/$f" || fail "$f differs between two runs with one seed"
done

# Contexts that outgrow seq_len - rollout.max_new_tokens drop their prompt, counted: with
# seq_len 90 a prompt (about 35 tokens) and its answer leave no room for a critique request.
mkdir -p "$TMP/c" && cp -r "$TMP/a/pretrain" "$TMP/c/"
"$LC" run "$TMP/selfgen.yaml" output_dir="$TMP/c" --only cr cr.seq_len=90 >"$TMP/c.log" 2>&1 || fail "short run failed: $(tail -3 "$TMP/c.log")"
"$PY" - "$TMP/c/cr" <<'PY' || fail "dropped prompts"
import json, sys, h5py
d = sys.argv[1]
samples = [json.loads(l) for l in open(f"{d}/samples.jsonl")]
dropped = sum(s["dropped"] == "too_long" for s in samples)
assert len(samples) == 6 and dropped > 0, samples
kept = 6 - dropped
assert all(s["revisions"][-1] is not None for s in samples if s["dropped"] is None)
assert len(h5py.File(f"{d}/sft.h5")["offsets"]) - 1 == kept
print(f"critique_revise at seq_len 90: {dropped} of 6 prompts dropped")
PY
grep -Eq "^\[cr\] .* [1-6] prompts left out" "$TMP/c.log" || fail "no count of prompts left out: $(grep '^\[cr\]' "$TMP/c.log")"

# Principles come in pairs: lists of different lengths are refused, naming both keys.
sed 's/revisions: \["Rewrite the answer to fix what is wrong.", /revisions: [/' "$TMP/selfgen.yaml" >"$TMP/bad.yaml"
"$LC" validate "$TMP/bad.yaml" >"$TMP/bad.log" 2>&1 && fail "unequal principle lists accepted"
grep -q "cr.critique_revise.revisions: 1 revision requests for 2 critique requests.*critique_revise.critiques" "$TMP/bad.log" ||
  fail "unequal principle lists: $(cat "$TMP/bad.log")"

# self_instruct needs its seeds; a stage that makes data has no model for a later init.
sed 's|    data: {seeds: .*}|    data: {}|' "$TMP/selfgen.yaml" >"$TMP/noseeds.yaml"
"$LC" validate "$TMP/noseeds.yaml" >"$TMP/noseeds.log" 2>&1 && fail "self_instruct without seeds accepted"
grep -q "si.data.seeds: required for a stage of kind 'self_instruct'" "$TMP/noseeds.log" ||
  fail "missing seeds: $(cat "$TMP/noseeds.log")"
sed 's|{name: sft_cr, kind: sft, init: pretrain,|{name: sft_cr, kind: sft, init: cr,|' "$TMP/selfgen.yaml" >"$TMP/initcr.yaml"
"$LC" validate "$TMP/initcr.yaml" >"$TMP/initcr.log" 2>&1 && fail "init from a critique_revise stage accepted"
grep -q "sft_cr.init: 'cr' is a critique_revise stage" "$TMP/initcr.log" || fail "init from cr: $(cat "$TMP/initcr.log")"

[ $fails -eq 0 ] && echo "PASS" || echo "$fails failure(s)"
[ $fails -eq 0 ]
