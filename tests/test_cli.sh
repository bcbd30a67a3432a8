#!/usr/bin/env bash
# tests/test_cli.sh: the `layercake` command line end to end: exit codes, usage errors and the
# output of the tokenizer and data commands on the shipped samples.
#   test_cli.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR
set -uo pipefail
LC=$1 SRC=$2 TMP=$3
mkdir -p "$TMP"
fails=0
check() { # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1: expected [$2], got [$3]"
    fails=$((fails + 1))
  fi
}
status() { "$@" >/dev/null 2>&1; echo $?; }
GPT2=$SRC/samples/gpt2-tokenizer

check "help exits 0" 0 "$(status "$LC" --help)"
check "no command exits 2" 2 "$(status "$LC")"
check "unknown command exits 2" 2 "$(status "$LC" frobnicate)"
check "bench bad flag exits 2" 2 "$(status "$LC" bench --no-such-flag)"
check "bench unknown model exits 2" 2 "$(status "$LC" bench --model nope)"
check "bench non-number exits 2" 2 "$(status "$LC" bench --batch 4x)"
check "generate non-number exits 2" 2 "$(status "$LC" generate x.h5 --prompt a --temperature warm)"
msg=$("$LC" bench --steps ten 2>&1)
case "$msg" in *"--steps: 'ten' is not an integer"*) ;; *) echo "FAIL: bad number message: $msg"; fails=$((fails + 1)) ;; esac

# Usage errors of every command: exit 2 and a message that names the command and the option.
usage() { # usage EXPECTED_MESSAGE ARGS...
  local want=$1; shift
  local out; out=$("$LC" "$@" 2>&1 >/dev/null); local rc=$?
  case "$rc:$out" in "2:"*"$want"*) ;; *) echo "FAIL: layercake $*: exit $rc, expected 2 and [$want] in: $(echo "$out" | head -1)"; fails=$((fails + 1)) ;; esac
}
usage "layercake generate: --top-k: 'x' is not an integer" generate x.h5 --prompt a --top-k x
usage "layercake generate: --top-p: 1.5 is out of range" generate x.h5 --prompt a --top-p 1.5
usage "layercake generate: --prompt is required" generate x.h5
usage "layercake score: --batch: 0 is out of range" score x.h5 --data d.h5 --batch 0
# Range errors name the option (issue 12, item 6).
usage "layercake generate: --max-new-tokens: 0 is out of range" generate x.h5 --prompt a --max-new-tokens 0
usage "layercake generate: --temperature: -1 is out of range" generate x.h5 --prompt a --temperature -1
usage "layercake generate: --top-p: 0 is out of range" generate x.h5 --prompt a --top-p 0
usage "layercake generate: --top-p: 2 is out of range" generate x.h5 --prompt a --top-p 2
usage "layercake generate: --top-k: -5 is out of range" generate x.h5 --prompt a --top-k -5
usage "layercake generate: --samples: 0 is out of range" generate x.h5 --prompt a --samples 0
usage "layercake bench: --threads: -2 is out of range" bench --threads -2
usage "layercake bench: --seq: 2048 is longer" bench --model tiny --seq 2048
usage "layercake bench: --recompute: 'all' (none, attention or layer)" bench --recompute all
usage "layercake run: unknown option '--frobnicate'" run r.yaml --frobnicate
usage "layercake run: --only needs a value" run r.yaml --only
usage "layercake validate: missing RECIPE.yaml" validate
usage "layercake data import: --max-len: -3 is out of range" data import --kind sft --tokenizer t --out o --max-len -3 in
usage "layercake data import: --kind: 'chat' is not" data import --kind chat --tokenizer t --out o in
usage "layercake data import: --chat-template: 'vicuna' is not a chat template (auto, chatml, llama3, llama2, zephyr, hh, plain, roles)" data import --kind sft --tokenizer t --out o --chat-template vicuna in.jsonl
usage "layercake generate: --chat-template: 'vicuna' is not a chat template (auto, chatml," generate x.h5 --prompt a --chat --chat-template vicuna
usage "layercake generate: --chat-template needs --chat" generate x.h5 --prompt a --chat-template chatml
usage "layercake data show: --index: 'x' is not an integer" data show f.h5 --index x --tokenizer t
usage "layercake data synth: --label-noise: 2 is out of range" data synth --task arithmetic --out x --label-noise 2
usage "layercake tokenizer train: --vocab-size: 'big' is not an integer" tokenizer train --vocab-size big --out o c.txt
usage "layercake tokenizer: unknown subcommand 'frob'" tokenizer frob
usage "layercake report: expected one RUN_DIR" report
check "generate --help exits 0" 0 "$(status "$LC" generate --help)"
case "$("$LC" score --help)" in *"--truncate"*) ;; *) echo "FAIL: score --help does not list --truncate"; fails=$((fails + 1)) ;; esac

check "gpt2 encode" "15496 995" "$("$LC" tokenizer encode --tokenizer "$GPT2" "Hello world")"
check "gpt2 decode" "Hello world" "$("$LC" tokenizer decode --tokenizer "$GPT2" 15496 995)"
check "missing tokenizer exits 1" 1 "$(status "$LC" tokenizer encode --tokenizer "$TMP/none" hi)"
msg=$("$LC" tokenizer encode --tokenizer "$TMP/none" hi 2>&1)
case "$msg" in *"$TMP/none"*) ;; *) echo "FAIL: error does not name the file: $msg"; fails=$((fails + 1)) ;; esac

"$LC" tokenizer train --vocab-size 512 --out "$TMP/tok.json" "$SRC/samples/tinyshakespeare/input.txt" >/dev/null
check "trained tokenizer round trip" "To be, or not to be" \
  "$("$LC" tokenizer decode --tokenizer "$TMP/tok.json" $("$LC" tokenizer encode --tokenizer "$TMP/tok.json" "To be, or not to be"))"

"$LC" data import --kind lm --tokenizer "$TMP/tok.json" --out "$TMP/lm.h5" "$SRC/samples/tinyshakespeare/input.txt" >/dev/null
info=$("$LC" data info "$TMP/lm.h5" --json)
# 1.1 MB of text, one document, split into 1024-token examples at the default --max-len
case "$info" in *'"kind":"lm"'*'"examples":565'*) ;; *) echo "FAIL: data info: $info"; fails=$((fails + 1)) ;; esac
check "data import of a missing file exits 1" 1 "$(status "$LC" data import --kind lm --tokenizer "$TMP/tok.json" --out "$TMP/x.h5" "$TMP/missing.txt")"
check "data import without --kind exits 2" 2 "$(status "$LC" data import --tokenizer "$TMP/tok.json" --out "$TMP/x.h5" "$SRC/samples/tinyshakespeare/input.txt")"

# score: an example longer than the model's context is reported as skipped, or with
# --truncate scored by its last tokens. A 1-layer reward model with a 32-token context, trained
# two steps on short pairs, scores a file of two short pairs and one of ~130 tokens.
S=$TMP/score
mkdir -p "$S"
for i in 1 2 3 4 5 6 7 8; do echo "{\"prompt\": \"Q: $i+1?\\nA:\", \"chosen\": \" yes $i\", \"rejected\": \" no\"}"; done >"$S/short.jsonl"
{ head -2 "$S/short.jsonl"
  echo "{\"prompt\": \"Q: $(printf 'a very long question %.0s' $(seq 1 6))?\\nA:\", \"chosen\": \" yes\", \"rejected\": \" no\"}"
} >"$S/mixed.jsonl"
head -c 3000 "$SRC/samples/tinyshakespeare/input.txt" >"$S/lm.txt"
for f in short mixed; do
  "$LC" data import --kind preference --tokenizer "$TMP/tok.json" --out "$S/$f.h5" "$S/$f.jsonl" >/dev/null
done
"$LC" data import --kind lm --tokenizer "$TMP/tok.json" --out "$S/lm.h5" "$S/lm.txt" >/dev/null
cat >"$S/rm.yaml" <<EOF
name: rm
seed: 1
threads: 1
tokenizer: $TMP/tok.json
model: {n_layer: 1, n_head: 2, d_model: 32, max_seq_len: 32}
stages:
  - {name: pretrain, kind: pretrain, data: {train: $S/lm.h5}, steps: 1, batch_size: 2}
  - {name: reward, kind: reward, init: pretrain, data: {train: $S/short.h5}, steps: 2, batch_size: 4}
EOF
rm -rf "$S/runs"
"$LC" run "$S/rm.yaml" output_dir="$S/runs" >"$S/run.log" 2>&1 || { echo "FAIL: reward run: $(tail -3 "$S/run.log")"; fails=$((fails + 1)); }
RM=$S/runs/reward/final.h5
out=$("$LC" score "$RM" --data "$S/mixed.h5" --json)
case "$out" in *'"scored": 2, "skipped": 1, "truncated": 0'*) ;; *) echo "FAIL: score --json does not count the skipped pair: $out"; fails=$((fails + 1)) ;; esac
out=$("$LC" score "$RM" --data "$S/mixed.h5" --json --truncate)
case "$out" in *'"index": 2,'*'"scored": 3, "skipped": 0, "truncated": 1'*) ;; *) echo "FAIL: score --truncate does not score the long pair: $out"; fails=$((fails + 1)) ;; esac
out=$("$LC" score "$RM" --data "$S/mixed.h5")
case "$out" in *"2 examples scored"*"1 skipped"*) ;; *) echo "FAIL: score text summary: $out"; fails=$((fails + 1)) ;; esac
check "score without --data exits 2" 2 "$(status "$LC" score "$RM")"

# Chat templates: data import records the one it rendered with; generate --chat renders the
# prompt as a user turn and the assistant header (tok.json has the role tokens, and the other
# templates' markers as text; the model's context is 32 tokens).
C=$TMP/chat
mkdir -p "$C"
echo '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}' >"$C/m.jsonl"
"$LC" data import --kind sft --tokenizer "$TMP/tok.json" --out "$C/chatml.h5" --chat-template chatml "$C/m.jsonl" >/dev/null
case "$("$LC" data info "$C/chatml.h5" --json)" in *'"chat_template":"chatml"'*) ;; *) echo "FAIL: data info --json lacks the chat template"; fails=$((fails + 1)) ;; esac
case "$("$LC" data info "$C/chatml.h5")" in *"template    chatml"*) ;; *) echo "FAIL: data info lacks the chat template"; fails=$((fails + 1)) ;; esac
check "data show renders chatml" "$(printf 'example 0 of 1 (sft)\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n[[yo<|im_end|>]]')" \
  "$("$LC" data show "$C/chatml.h5" --index 0 --tokenizer "$TMP/tok.json" --color never)"
PRE=$S/runs/pretrain/final.h5
gen() { "$LC" generate "$PRE" --prompt hi --max-new-tokens 1 --temperature 0 --show-prompt "$@" 2>&1 | sed -n '/^--- prompt$/,/^--- sample 1$/p'; }
check "generate --chat --chat-template zephyr" "$(printf -- '--- prompt\n<|user|>\nhi</s>\n<|assistant|>\n\n--- sample 1')" "$(gen --chat --chat-template zephyr)"
check "generate --chat --chat-template llama2" "$(printf -- '--- prompt\n[INST] hi [/INST]\n--- sample 1')" "$(gen --chat --chat-template llama2)"
check "generate --chat (auto: roles)" "$(printf -- '--- prompt\n<|user|>hi<|end|><|assistant|>\n--- sample 1')" "$(gen --chat)"
check "generate without --chat" "$(printf -- '--- prompt\nhi\n--- sample 1')" "$(gen)"

# data import refuses an output that is an input (it used to overwrite it): a usage error.
cp "$S/lm.txt" "$TMP/same.txt"
usage "layercake data import: --out: $TMP/same.txt is the input" data import --kind lm --tokenizer "$TMP/tok.json" --out "$TMP/same.txt" "$TMP/same.txt"
cp "$S/lm.txt" "$TMP/same-val.h5"
usage "the validation file $TMP/same-val.h5 (from --out) is the input" data import --kind lm --tokenizer "$TMP/tok.json" --val-fraction 0.1 --out "$TMP/same.h5" "$TMP/same-val.h5"
check "data import leaves its input alone" "$(cat "$S/lm.txt")" "$(cat "$TMP/same.txt")"

# A folder given as the recipe is named as one (it used to read as a YAML syntax error).
for c in run validate; do
  out=$("$LC" $c "$TMP" 2>&1); rc=$?
  case "$rc:$out" in "1:"*"$TMP: is a folder, not a recipe file"*) ;; *) echo "FAIL: $c on a folder: exit $rc: $out"; fails=$((fails + 1)) ;; esac
done

# A recipe whose prepare runs itself is refused when it loads (it used to fork without end),
# and a prepare command run from inside a prepare command (LC_PREPARE_DEPTH) spawns nothing.
P=$TMP/prepare
rm -rf "$P"; mkdir -p "$P"
printf 'name: p\ntokenizer: tok.json\nprepare: ["run r.yaml"]\nstages: [{name: pre, kind: pretrain, data: {train: lm.h5}}]\n' >"$P/r.yaml"
out=$(cd "$P" && timeout 20 "$LC" run r.yaml 2>&1); rc=$?
case "$rc:$out" in "1:"*"prepare: item 1, 'run r.yaml': a prepare command cannot run or validate a recipe"*) ;; *) echo "FAIL: prepare running its recipe: exit $rc: $(echo "$out" | head -3)"; fails=$((fails + 1)) ;; esac
printf 'name: p\ntokenizer: tok.json\nprepare: ["tokenizer train --vocab-size 300 --out tok.json %s"]\nstages: [{name: pre, kind: pretrain, data: {train: lm.h5}}]\n' "$S/lm.txt" >"$P/d.yaml"
out=$(cd "$P" && LC_PREPARE_DEPTH=1 timeout 20 "$LC" run d.yaml 2>&1); rc=$?
case "$rc:$out" in "1:"*"refusing to run 'tokenizer train"*"LC_PREPARE_DEPTH=1"*) ;; *) echo "FAIL: prepare at depth 1: exit $rc: $(echo "$out" | head -3)"; fails=$((fails + 1)) ;; esac
check "no prepare command ran at depth 1" "" "$(ls "$P" | grep -x tok.json)"

# Model conversions and logits (docs/models.md): usage errors exit 2, a missing or truncated
# file exits 1 naming it, and stories260K imported from llama2.c predicts its own prompt.
M=$TMP/models
rm -rf "$M"; mkdir -p "$M"
usage "layercake logits: give one of --ids and --text" logits x.h5
usage "layercake logits: give one of --ids and --text" logits x.h5 --ids 1 --text hi
usage "layercake logits: --ids: 'x' is not a token id" logits x.h5 --ids 1,x,3
usage "layercake logits: --ids: '' is not a token id" logits x.h5 --ids 1,,3
usage "layercake export: --format: 'gguf' is not a format (hf, peft)" export x.h5 --format gguf --out d
usage "layercake export: --merge-lora: only with --format hf" export x.h5 --format peft --merge-lora --out d
usage "layercake export: --dtype: 'f64' is not f32, bf16 or f16" export x.h5 --format hf --out d --dtype f64
usage "layercake export: needs --format and --out (--format is missing)" export x.h5 --out d
usage "layercake import hf: --out is required" import hf d
usage "layercake import: unknown subcommand 'gguf'" import gguf x
check "import llama2c of a missing file exits 1" 1 "$(status "$LC" import llama2c "$M/none.bin" --out "$M/x.h5")"
head -c 1000 "$SRC/samples/tinyllamas/stories260K.bin" >"$M/cut.bin"
out=$("$LC" import llama2c "$M/cut.bin" --out "$M/x.h5" 2>&1); rc=$?
case "$rc:$out" in "1:"*"$M/cut.bin: the file has 1000 bytes"*"needs exactly 1056540 (truncated)"*) ;; *) echo "FAIL: truncated .bin: exit $rc: $out"; fails=$((fails + 1)) ;; esac
"$LC" import llama2c "$SRC/samples/tinyllamas/stories260K.bin" --tokenizer "$SRC/samples/tinyllamas/tok512.bin" --out "$M/s.h5" >/dev/null || { echo "FAIL: import llama2c"; fails=$((fails + 1)); }
usage "token id 512 (position 1) is outside the model's vocabulary [0, 512)" logits "$M/s.h5" --ids 1,512
usage "513 tokens are more than the model's context of 512" logits "$M/s.h5" --ids "$(seq -s, 1 513)"
check "logits top-1 after 'Once upon a'" "       261" "$("$LC" logits "$M/s.h5" --ids 1,403,407 --top 1 | sed -n 6p | cut -c1-10)"
"$LC" export "$M/s.h5" --format hf --out "$M/hf" --bos-id 1 --eos-id 2 >/dev/null 2>&1 || { echo "FAIL: export"; fails=$((fails + 1)); }
check "export writes the folder" "config.json generation_config.json model.safetensors" "$(ls "$M/hf" | xargs)"
check "logits of the exported folder equal the checkpoint's" "$("$LC" logits "$M/s.h5" --ids 1,403 --json)" "$("$LC" logits "$M/hf" --ids 1,403 --json)"
ids=$("$LC" tokenizer encode --tokenizer "$TMP/tok.json" "To be")
check "logits --text tokenizes as --ids" "$("$LC" logits "$M/s.h5" --ids "${ids// /,}" --json)" "$("$LC" logits "$M/s.h5" --text "To be" --tokenizer "$TMP/tok.json" --json)"
case "$("$LC" logits "$M/s.h5" --text "To be" --tokenizer "$TMP/tok.json" --top 1)" in "position 0, id ${ids%% *}  \"To\""*) ;; *) echo "FAIL: logits --text does not print the token"; fails=$((fails + 1)) ;; esac
check "logits --text without a tokenizer exits 1" 1 "$(status "$LC" logits "$M/s.h5" --text hi)"
# llama2.c's tokenizer: --text as run.c encodes it, exported beside the weights (as a
# SentencePiece tokenizer.model), and the folder's own tokenizer used by default
T512=$SRC/samples/tinyllamas/tok512.bin
check "logits --text with tok512.bin (BOS first)" "$("$LC" logits "$M/s.h5" --ids 1,403,407,261,378 --json)" "$("$LC" logits "$M/s.h5" --text "Once upon a time" --tokenizer "$T512" --json)"
"$LC" export "$M/s.h5" --format hf --out "$M/hf-tok" --tokenizer "$T512" >"$M/export.log" 2>&1 || { echo "FAIL: export --tokenizer: $(cat "$M/export.log")"; fails=$((fails + 1)); }
check "export --tokenizer writes its files" "config.json generation_config.json model.safetensors special_tokens_map.json tokenizer.model tokenizer_config.json" "$(ls "$M/hf-tok" | xargs)"
case "$(cat "$M/hf-tok/config.json")" in *'"bos_token_id": 1,'*'"eos_token_id": 2,'*) ;; *) echo "FAIL: export takes bos/eos from the tokenizer"; fails=$((fails + 1)) ;; esac
check "logits --text with the folder's own tokenizer" "$("$LC" logits "$M/s.h5" --ids 1,403,407,261,378 --json)" "$("$LC" logits "$M/hf-tok" --text "Once upon a time" --json)"
out=$("$LC" import llama2c "$SRC/samples/tinyllamas/stories260K.bin" --tokenizer "$GPT2" --out "$M/y.h5" 2>&1); rc=$?
case "$rc:$out" in "1:"*"--tokenizer $GPT2 has 50257 ids; the model's vocabulary 512"*) ;; *) echo "FAIL: import llama2c with GPT-2's tokenizer: exit $rc: $out"; fails=$((fails + 1)) ;; esac
out=$("$LC" export "$M/s.h5" --format hf --out "$M/hf-gpt2" --tokenizer "$GPT2" 2>&1); rc=$?
case "$rc:$out" in "1:"*"has 50257 ids"*) ;; *) echo "FAIL: export with GPT-2's tokenizer: exit $rc: $out"; fails=$((fails + 1)) ;; esac
usage "layercake export: --bos-id: 600 is outside the model's vocabulary [0, 512)" export "$M/s.h5" --format hf --out "$M/hf2" --bos-id 600
# LoRA adapters (tests/test_peft.c has the rest): a model without adapters has none to export
out=$("$LC" export "$M/s.h5" --format peft --out "$M/peft" 2>&1); rc=$?
case "$rc:$out" in "1:"*"has no LoRA adapters to export"*) ;; *) echo "FAIL: export --format peft without adapters: exit $rc: $out"; fails=$((fails + 1)) ;; esac
out=$("$LC" import hf "$M/hf" --adapter "$M/none" --out "$M/z.h5" 2>&1); rc=$?
case "$rc:$out" in "1:"*"$M/none/adapter_config.json"*) ;; *) echo "FAIL: import hf --adapter of a missing folder: exit $rc: $out"; fails=$((fails + 1)) ;; esac

# version: the backends built in (the CUDA ones: tests/test_cuda_build.sh)
check "version exits 0" 0 "$(status "$LC" version)"
check "version --json exits 0" 0 "$(status "$LC" version --json)"
case "$("$LC" version)" in "layercake "*"backend cpu: built in; usable"*"backend cuda: "*) ;; *) echo "FAIL: version lists the backends"; fails=$((fails + 1)) ;; esac
usage "layercake version: " version --frobnicate
usage "layercake bench: --backend: unknown backend 'tpu' (cpu or cuda)" bench --backend tpu

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all CLI checks passed"
