#!/usr/bin/env bash
# Sets up layercake and runs its test suite twice: a Release build with warnings as errors
# (every test), then a build under AddressSanitizer + UndefinedBehaviorSanitizer (every test
# but the long end-to-end training runs labelled `recipe`, which would take several times
# longer there; the short end-to-end tests, kill-and-resume included, do run under it).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"

LC_CMAKE_ARGS="-DLC_WERROR=ON" scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$jobs"

LC_SKIP_APT=1 LC_BUILD_DIR=build-asan LC_CMAKE_ARGS="-DLC_WERROR=ON -DLC_SANITIZE=ON" scripts/setup.sh
# OpenMP's runtime keeps thread-local pools alive at exit; LeakSanitizer reports them as leaks.
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --label-exclude recipe
echo "test: all suites passed (release and sanitizers)"
