#!/usr/bin/env bash
# tests/test_diskfull.sh: `layercake run` on a full disk (a small tmpfs). A checkpoint that does
# not fit stops the run with a message saying "disk full" and naming the file, a non-zero exit
# and no crash; no .tmp is left, the earlier checkpoints still load, and the run resumes once
# there is room: after moving the run directory to a big disk (periodic checkpoint case) and
# after remounting the tmpfs bigger (final checkpoint case). A run that starts on a disk with
# no room for metrics.jsonl stops too, and so does a `data import` whose output does not fit.
# Mounting needs root; elsewhere the test is skipped (exit 77), except where CI=true.
#   test_diskfull.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR
set -uo pipefail
LC=$1 SRC=$2 TMP=$3
RECIPE=$SRC/tests/fixtures/run/tiny.yaml
MNT=$TMP/mnt
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $* (CI=true, so not skipping)"
    exit 1
  fi
  echo "skipping: $*"
  exit 77
}

rm -rf "$TMP"
mkdir -p "$MNT"
[ "$(id -u)" -eq 0 ] || skip "not root: cannot mount a tmpfs"
mount -t tmpfs -o size=900k tmpfs "$MNT" 2>"$TMP/mount.err" || skip "cannot mount a tmpfs: $(cat "$TMP/mount.err")"
trap 'umount "$MNT" 2>/dev/null' EXIT

# The data the recipe's prepare commands make, outside the tmpfs (a run that makes them fills it).
"$LC" run "$RECIPE" output_dir="$TMP/warm" pretrain.steps=1 >"$TMP/warm.log" 2>&1 || fail "warm-up run failed: $(tail -3 "$TMP/warm.log")"

# A failed run: exit status 1-127 (no signal, no sanitizer report), "disk full" naming file $2,
# no .tmp left in directory $3.
stopped_cleanly() {
  local log=$1 file=$2 dir=$3 status=$4
  [ "$status" -ne 0 ] || fail "$log: the run on a full disk exited 0"
  [ "$status" -lt 128 ] || fail "$log: the run crashed (exit $status)"
  grep -q "AddressSanitizer\|LeakSanitizer\|runtime error" "$log" && fail "$log: sanitizer report"
  grep -q "disk full" "$log" || fail "$log: no 'disk full' message: $(tail -2 "$log")"
  grep -q "$file" "$log" || fail "$log: the message does not name $file: $(tail -2 "$log")"
  [ -z "$(find "$dir" -name '*.tmp')" ] || fail "$log: .tmp files left: $(find "$dir" -name '*.tmp')"
}

# A checkpoint loads (every byte verified) if `generate` can sample from it.
loads() {
  "$LC" generate "$1" --prompt "the" --max-new-tokens 2 --seed 1 >"$TMP/gen.log" 2>&1 || fail "$1 does not load: $(tail -2 "$TMP/gen.log")"
}

# A: checkpoints every 10 steps; two (~375 KiB each) fit in 900 KiB, the third does not.
"$LC" run "$RECIPE" output_dir="$MNT/a" pretrain.checkpoint.every=10 >"$TMP/a1.log" 2>&1
stopped_cleanly "$TMP/a1.log" "$MNT/a/pretrain/ckpt-00000030.h5" "$MNT/a" $?
loads "$MNT/a/pretrain/ckpt-00000010.h5"
loads "$MNT/a/pretrain/ckpt-00000020.h5"
mv "$MNT/a" "$TMP/a"
"$LC" run "$RECIPE" output_dir="$TMP/a" pretrain.checkpoint.every=10 >"$TMP/a2.log" 2>&1 || fail "resume on a big disk failed: $(tail -3 "$TMP/a2.log")"
grep -q "resuming from .*ckpt-00000020.h5 (step 20)" "$TMP/a2.log" || fail "did not resume from step 20: $(grep -m2 pretrain "$TMP/a2.log")"
[ -e "$TMP/a/pretrain/final.h5" ] && loads "$TMP/a/pretrain/final.h5"

# B: checkpoints at 20 and 40 fit, the final model does not; then the tmpfs grows.
"$LC" run "$RECIPE" output_dir="$MNT/b" >"$TMP/b1.log" 2>&1
stopped_cleanly "$TMP/b1.log" "$MNT/b/pretrain/final.h5" "$MNT/b" $?
[ -e "$MNT/b/pretrain/final.h5" ] && fail "a final.h5 exists after its save failed"
loads "$MNT/b/pretrain/ckpt-00000040.h5"
mount -o remount,size=4m "$MNT" || fail "cannot remount the tmpfs bigger"
"$LC" run "$RECIPE" output_dir="$MNT/b" >"$TMP/b2.log" 2>&1 || fail "resume after remounting failed: $(tail -3 "$TMP/b2.log")"
grep -q "resuming from .*ckpt-00000040.h5 (step 40)" "$TMP/b2.log" || fail "did not resume from step 40: $(grep -m2 pretrain "$TMP/b2.log")"
loads "$MNT/b/pretrain/final.h5"

# C: a disk with room for recipe.yaml and stage.json only (two pages): metrics.jsonl gets no
# byte. The run must stop with "disk full" at the first metrics row (the lifecycle checks
# metrics_check after every step).
umount "$MNT"
mount -t tmpfs -o size=300k tmpfs "$MNT" || fail "cannot mount the small tmpfs"
dd if=/dev/zero of="$MNT/filler" bs=4k >/dev/null 2>&1
truncate -s -8K "$MNT/filler"
"$LC" run "$RECIPE" output_dir="$MNT/c" >"$TMP/c.log" 2>&1
status=$?
[ -s "$MNT/c/pretrain/metrics.jsonl" ] && fail "the setup failed: metrics.jsonl got bytes on a full disk"
stopped_cleanly "$TMP/c.log" "$MNT/c/pretrain" "$MNT/c" "$status"
grep -q "metrics.jsonl.*disk full" "$TMP/c.log" || fail "metrics.jsonl's write error was not reported: $(tail -1 "$TMP/c.log")"

# D: `data import` whose output does not fit: "disk full", exit 1, no crash at exit (HDF5's
# exit handler used to segfault closing the file whose write failed), no partial file left.
umount "$MNT"
mount -t tmpfs -o size=64k tmpfs "$MNT" || fail "cannot mount the small tmpfs"
"$LC" data import --kind lm --tokenizer "$SRC/samples/gpt2-tokenizer" --out "$MNT/lm.h5" \
  "$SRC/samples/tinyshakespeare/input.txt" >"$TMP/d.log" 2>&1
status=$?
[ "$status" -eq 1 ] || fail "data import on a full disk: exit $status, want 1: $(tail -1 "$TMP/d.log")"
grep -q "lm.h5.partial: cannot write 'tokens': disk full" "$TMP/d.log" ||
  fail "data import on a full disk: no 'disk full' message: $(tail -1 "$TMP/d.log")"
[ -z "$(ls -A "$MNT")" ] || fail "data import on a full disk left files: $(ls "$MNT")"

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all disk-full checks passed"
