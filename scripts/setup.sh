#!/usr/bin/env bash
# Installs layercake's dependencies (Debian 12 packages) and builds it into build/.
#   scripts/setup.sh            install + Release build
# Environment: LC_BUILD_DIR (default build), LC_CMAKE_ARGS (extra configure flags),
# LC_SKIP_APT=1 to skip the package step.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config          # compiler and build
  libopenblas-openmp-dev                    # BLAS on OpenMP (CPU matrix products)
  libyaml-dev                               # recipes
  libhdf5-dev                               # datasets and checkpoints
  libpcre2-dev libjansson-dev               # tokenizer pre-tokenisation, JSON/JSONL
  libsentencepiece-dev sentencepiece        # SentencePiece tokenizers; spm_train for their tests
  check libsubunit-dev clang-format         # unit tests, the style check
  openmpi-bin libopenmpi-dev                # MPI: the collective layer and its mpirun test
  clang libclang-rt-14-dev                  # the fuzzers (libFuzzer, tests/fuzz)
  python3-torch python3-h5py python3-numpy  # PyTorch reference for parity tests and benchmarks
)

if [ "${LC_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

BUILD_DIR="${LC_BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${LC_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "setup: built $BUILD_DIR/layercake"
