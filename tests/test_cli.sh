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
case "$msg" in *"--steps: 'ten' is not a number"*) ;; *) echo "FAIL: bad number message: $msg"; fails=$((fails + 1)) ;; esac

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

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all CLI checks passed"
