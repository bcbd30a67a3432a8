#!/usr/bin/env bash
# tests/test_mismatch.sh: files that do not belong together are refused, naming both, and a file
# that is not what a command needs is described (issue 12, items 3 and 6): generate with another
# tokenizer than the checkpoint's (GPT-2's ids on a small model were an out-of-bounds read), a
# stage's init, models or reward model of another tokenizer, vocabulary or context, score of a
# dataset of another tokenizer, and generate/report on a missing, truncated or wrong file.
#   test_mismatch.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR
set -uo pipefail
LC=$1 SRC=$2 TMP=$3
rm -rf "$TMP"
mkdir -p "$TMP"
cd "$TMP" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
GPT2=$SRC/samples/gpt2-tokenizer
SHAKE=$SRC/samples/tinyshakespeare/input.txt

# expect STATUS "TEXT..." -- COMMAND...: the exit status and every TEXT in its stderr.
expect() {
  local want=$1; shift
  local texts=()
  while [ "$1" != "--" ]; do texts+=("$1"); shift; done
  shift
  local out; out=$("$@" 2>&1 >/dev/null); local rc=$?
  [ "$rc" -eq "$want" ] || fail "$*: exit $rc, expected $want: $(echo "$out" | tail -2)"
  for t in "${texts[@]}"; do
    case "$out" in *"$t"*) ;; *) fail "$*: [$t] not in: $(echo "$out" | tail -2)" ;; esac
  done
}

# A small arithmetic world (261 ids) and a 512-id tokenizer with data of its own.
"$LC" data synth --task arithmetic --sizes pretrain=500,sft=50,pref=200,prompts=20,eval=20 \
  --out arith >setup.log 2>&1 || fail "data synth"
"$LC" tokenizer train --vocab-size 512 --out tok512.json "$SHAKE" >>setup.log 2>&1 || fail "tokenizer"
"$LC" data import --kind lm --tokenizer tok512.json --max-len 32 --out lm512.h5 "$SHAKE" \
  >>setup.log 2>&1 || fail "import lm"
printf '{"prompt": "1+2=", "completion": " 3"}\n{"prompt": "2+2=", "completion": " 4"}\n' >sft.jsonl
"$LC" data import --kind sft --tokenizer tok512.json --out sft512.h5 sft.jsonl >>setup.log 2>&1 ||
  fail "import sft"

recipe() { # recipe FILE TOKENIZER MODEL_EXTRA STAGES...
  local f=$1 tok=$2 extra=$3; shift 3
  { echo "name: ${f%.yaml}"; echo "seed: 3"; echo "threads: 1"; echo "tokenizer: $tok"
    echo "model: {n_layer: 1, n_head: 2, d_model: 32, max_seq_len: 32$extra}"
    echo "stages:"; for s in "$@"; do echo "  - $s"; done; } >"$f"
}
recipe base.yaml arith/tokenizer.json "" \
  "{name: pretrain, kind: pretrain, data: {train: arith/pretrain.h5}, steps: 6, batch_size: 4}" \
  "{name: reward, kind: reward, init: pretrain, data: {train: arith/pref.h5}, steps: 2, batch_size: 4}"
recipe t512.yaml tok512.json "" \
  "{name: pretrain, kind: pretrain, data: {train: lm512.h5}, steps: 2, batch_size: 4}"
"$LC" run base.yaml output_dir=base >base.log 2>&1 || fail "base run: $(tail -3 base.log)"
"$LC" run t512.yaml output_dir=t512 >t512.log 2>&1 || fail "t512 run: $(tail -3 t512.log)"
CKPT=base/pretrain/final.h5 RM=base/reward/final.h5 C512=t512/pretrain/final.h5

# ---- generate: the tokenizer must be the checkpoint's ----------------------------------------
expect 0 -- "$LC" generate "$CKPT" --prompt "1+2=" -n 4
expect 1 "$CKPT was trained with the tokenizer of fingerprint" "$GPT2 is another" -- \
  "$LC" generate "$CKPT" --prompt "The quick brown fox" --tokenizer "$GPT2"
expect 1 "$CKPT" "tok512.json is another" -- \
  "$LC" generate "$CKPT" --prompt "The quick brown fox" --tokenizer tok512.json
expect 1 "$C512" "arith/tokenizer.json is another" -- \
  "$LC" generate "$C512" --prompt "1+2=" --tokenizer arith/tokenizer.json

# ---- generate: what is wrong with a file that is not a checkpoint -----------------------------
head -c 3000 "$CKPT" >truncated.h5
: >empty.h5
expect 1 "/nonexistent.h5: no such file" -- "$LC" generate /nonexistent.h5 --prompt a
expect 1 "truncated.h5: truncated or extended: " -- \
  "$LC" generate truncated.h5 --prompt a
expect 1 "arith/sft.h5: a layercake dataset (kind 'sft'), not a checkpoint" -- \
  "$LC" generate arith/sft.h5 --prompt a
expect 1 "tok512.json: not an HDF5 file" -- "$LC" generate tok512.json --prompt a
expect 1 "empty.h5: an empty file" -- "$LC" generate empty.h5 --prompt a
expect 1 "arith: a folder, not a checkpoint" -- "$LC" generate arith --prompt a
expect 1 "arith/sft.h5: a layercake dataset (kind 'sft'), not a checkpoint" -- \
  "$LC" score arith/sft.h5 --data arith/pref.h5

# ---- stages: init, models and reward_model of another tokenizer, vocabulary or context -------
stage="{name: sft, kind: sft, init: $TMP/$C512, data: {train: arith/sft.h5}, steps: 2, batch_size: 4}"
recipe tok.yaml arith/tokenizer.json ", vocab_size: 512" "$stage"
stage="{name: sft, kind: sft, init: $TMP/$CKPT, data: {train: arith/sft.h5}, steps: 2, batch_size: 4, seq_len: 32}"
recipe ctx.yaml arith/tokenizer.json "" "$stage"
recipe vocab.yaml arith/tokenizer.json ", vocab_size: 512" "$stage"
recipe eval.yaml arith/tokenizer.json ", vocab_size: 512" \
  "{name: eval, kind: eval, models: [$TMP/$C512], reference_model: $TMP/$C512, reward_model: $TMP/$RM, data: {prompts: arith/eval.h5}, rollout: {batch: 4, max_new_tokens: 4}}"
for cmd in validate run; do
  expect 1 "sft.init: $TMP/$C512 was trained with the tokenizer of fingerprint" \
    "$TMP/arith/tokenizer.json is another" -- "$LC" $cmd tok.yaml output_dir=o-tok
  expect 1 "sft.init: $TMP/$CKPT has a context of 32 tokens; this run's model.max_seq_len is 64" -- \
    "$LC" $cmd ctx.yaml output_dir=o-ctx model.max_seq_len=64
  expect 1 "sft.init: $TMP/$CKPT has a vocabulary of 261 ids; this run's is 512" -- \
    "$LC" $cmd vocab.yaml output_dir=o-vocab
  expect 1 "$TMP/$C512 was trained with the tokenizer of fingerprint" -- \
    "$LC" $cmd eval.yaml output_dir=o-eval
done
[ -e o-tok/sft/final.h5 ] && fail "a stage started from another tokenizer's checkpoint trained"

# ---- score: the dataset must be of the reward model's tokenizer -------------------------------
expect 0 -- "$LC" score "$RM" --data arith/pref.h5
expect 1 "sft512.h5 was made with the tokenizer of fingerprint" "$RM was trained with another" -- \
  "$LC" score "$RM" --data sft512.h5

# ---- report: a folder that is not a run --------------------------------------------------------
mkdir -p notrun && echo x >notrun/notes.txt
expect 1 "notrun: not a run directory" -- "$LC" report notrun
[ -e notrun/report.md ] || [ -e notrun/plots ] && fail "report wrote into a folder that is not a run"
expect 0 -- "$LC" report base

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all mismatch checks passed"
