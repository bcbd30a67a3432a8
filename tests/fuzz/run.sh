#!/usr/bin/env bash
# tests/fuzz/run.sh: builds the libFuzzer harnesses with clang (tests/fuzz/CMakeLists.txt, a
# project of its own) and runs each for a fixed number of executions from its seed corpus with a
# fixed seed, so a run is repeatable. A crash, a sanitizer report or a failed check fails the
# test, with the crashing input printed. Without clang or libFuzzer's runtime (Debian:
# libclang-rt-14-dev) it skips (exit 77), except under CI=true, where it fails.
#   run.sh SOURCE_DIR WORK_DIR [CLANG] [FUZZER_RUNTIME]
# Environment: LC_FUZZ_RUNS_RECIPE, LC_FUZZ_RUNS_JSONL (executions; the defaults take 20-40 s
# each on the 2-core development machine), LC_FUZZ_SEED (default 1).
set -uo pipefail
SRC=$1 WORK=$2 CLANG=${3:-$(command -v clang || true)} RUNTIME=${4:-}
RUNS_recipe=${LC_FUZZ_RUNS_RECIPE:-5000} RUNS_jsonl=${LC_FUZZ_RUNS_JSONL:-400000}
SEED=${LC_FUZZ_SEED:-1}

unavailable() {
  if [ "${CI:-}" = true ]; then echo "FAIL: $1 (CI must run the fuzzers: scripts/setup.sh installs them)"; exit 1; fi
  echo "skip: $1"; exit 77
}
[ -n "$CLANG" ] && [ -x "$CLANG" ] || unavailable "clang not found"
[ -n "$RUNTIME" ] || RUNTIME=$("$CLANG" --print-file-name="libclang_rt.fuzzer-$(uname -m).a")
[ -f "$RUNTIME" ] || unavailable "libFuzzer's runtime libclang_rt.fuzzer-$(uname -m).a not found"

mkdir -p "$WORK"
CC=$CLANG cmake -S "$SRC/tests/fuzz" -B "$WORK/build" -DCMAKE_BUILD_TYPE= >"$WORK/configure.log" 2>&1 ||
  { cat "$WORK/configure.log"; echo "FAIL: cannot configure the fuzzers"; exit 1; }
cmake --build "$WORK/build" -j"$(nproc)" >"$WORK/build.log" 2>&1 ||
  { tail -30 "$WORK/build.log"; echo "FAIL: cannot build the fuzzers"; exit 1; }

# New inputs go to a scratch corpus (emptied each run, so runs repeat); the seeds stay read-only.
fails=0
for name in recipe jsonl; do
  scratch=$WORK/corpus-$name artifacts=$WORK/artifacts-$name/
  rm -rf "$scratch" "$artifacts"
  mkdir -p "$scratch" "$artifacts"
  runs_var=RUNS_$name start=$(date +%s%N)
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$WORK/build/fuzz_$name" -runs="${!runs_var}" -seed="$SEED" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" \
    "$scratch" "$SRC/tests/fuzz/corpus/$name" >"$WORK/fuzz_$name.log" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/fuzz_$name.log" | grep -o '[0-9]*$')
  echo "fuzz_$name: ${execs:-?} executions in $((ms / 1000)).$((ms % 1000 / 100)) s (exit $rc)"
  crashes=$(find "$artifacts" -type f)
  if [ "$rc" -ne 0 ] || [ -n "$crashes" ]; then
    fails=$((fails + 1))
    tail -60 "$WORK/fuzz_$name.log"
    for f in $crashes; do
      echo "FAIL: fuzz_$name: crashing input $f ($(wc -c <"$f") bytes; rerun: $WORK/build/fuzz_$name $f):"
      od -c "$f" | head -40
    done
    [ -z "$crashes" ] && echo "FAIL: fuzz_$name exited $rc"
  fi
done
[ "$fails" -eq 0 ] || exit 1
echo "fuzzers ran clean"
