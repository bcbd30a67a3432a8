#!/usr/bin/env bash
# tests/test_cuda_build.sh: the CUDA backend's build gate and its no-GPU path (docs/cuda.md).
#   test_cuda_build.sh LAYERCAKE SOURCE_DIR BUILD_DIR SCRATCH_DIR HAVE_CUDA [NVCC [ARCHS]]
# With the backend built (HAVE_CUDA on):
#   - `layercake version` lists cuda with its versions and, without a usable GPU, the cause;
#     the toolkit's stub libcuda is reported as such, not crashed on;
#   - `backend: cuda` in a recipe and `bench --backend cuda` exit 1 with that cause (no crash);
#   - every .cu of the build, recompiled with its own flags plus -Xptxas -v, passes
#     scripts/check_ptxas.sh (no spills, no local-memory stack frames).
# Without it: version says cuda is not built in, and both refusals say so.
# Either way, where nvcc exists: check_ptxas.sh rejects a seeded spilling kernel and a
# local-array kernel, and accepts a clean one.
set -uo pipefail
LC=$(realpath "$1") SRC=$2 BUILD=$3 TMP=$4 HAVE=$5 NVCC=${6:-} ARCHS=${7:-80;90}
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
rm -rf "$TMP" && mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
has() { # has DESCRIPTION TEXT PATTERN...: every pattern is in TEXT
  local d=$1 t=$2; shift 2
  for p in "$@"; do case "$t" in *"$p"*) ;; *) fail "$d: no [$p] in [$t]" ;; esac; done
}

# A refusal: exit 1 (not a signal: no crash, no core dump) with the message.
refused() { # refused DESCRIPTION PATTERN COMMAND...
  local d=$1 p=$2 out rc; shift 2
  out=$(cd "$TMP" && ulimit -c 0 && "$@" 2>&1); rc=$?
  [ "$rc" = 1 ] || fail "$d: exit $rc, not 1: $out"
  has "$d" "$out" "$p"
}

cp "$SRC/tests/fixtures/run/tiny.yaml" "$TMP/tiny.yaml"
version=$("$LC" version); rc=$?
[ "$rc" = 0 ] || fail "version exits $rc"
json=$("$LC" version --json) || fail "version --json exits $?"
echo "$json" | python3 -c 'import json, sys; json.load(sys.stdin)' 2>/dev/null ||
  fail "version --json is not JSON: $json"
has "version" "$version" "layercake " "backend cpu: built in; usable"

if [ "$HAVE" = ON ] || [ "$HAVE" = 1 ] || [ "$HAVE" = TRUE ]; then
  line=$(grep '^backend cuda:' <<<"$version")
  has "version lists cuda" "$line" "backend cuda: built in (CUDA runtime " "cuBLASLt " "cuDNN "
  has "version --json" "$json" '"name": "cuda", "built": true'
  if [[ "$line" == *"; usable"* ]]; then
    echo "note: a GPU is usable here; the no-GPU checks are skipped"
  else
    why=${line#*not usable: }
    has "version says why cuda is not usable" "$line" "not usable: "
    if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then # no driver, as in CI
      has "no driver named" "$why" "CUDA backend: no usable GPU (CUDA driver version is insufficient" \
        "no NVIDIA driver is installed"
    fi
    stub=$(find "$(dirname "$(dirname "$NVCC")")/" -path '*stubs/libcuda.so' 2>/dev/null | head -1)
    if [ -n "$stub" ] && ! ldconfig -p | grep -q 'libcuda\.so\.1'; then
      mkdir -p "$TMP/stub" && ln -sf "$stub" "$TMP/stub/libcuda.so.1"
      out=$(LD_LIBRARY_PATH="$TMP/stub" "$LC" version 2>&1); rc=$?
      [ "$rc" = 0 ] || fail "version with the stub libcuda exits $rc"
      has "the stub libcuda is named" "$out" "no usable GPU (CUDA driver is a stub library" "stub libcuda.so"
    fi
    refused "recipe with backend=cuda" "tiny.yaml: backend 'cuda': $why" \
      "$LC" run tiny.yaml backend=cuda
    refused "bench --backend cuda" "layercake bench: --backend cuda: $why" \
      "$LC" bench --backend cuda --model tiny --steps 1
  fi

  # Every .cu of the build through ptxas -v, with the build's own flags.
  n=0
  while IFS= read -r -d '' cmd; do
    n=$((n + 1))
    (eval "$cmd") >"$TMP/ptxas-$n.log" 2>&1 || { fail "nvcc -Xptxas -v: $(cat "$TMP/ptxas-$n.log")"; continue; }
    out=$("$SRC/scripts/check_ptxas.sh" "$TMP/ptxas-$n.log") || fail "check_ptxas on the build: $out"
  done < <(python3 - "$BUILD/compile_commands.json" "$TMP" <<'PY'
import json, shlex, sys
for i, e in enumerate(json.load(open(sys.argv[1]))):
    if not e["file"].endswith(".cu"):
        continue
    args = shlex.split(e["command"])
    o = args.index("-o")
    args[o + 1] = f"{sys.argv[2]}/cu-{i}.o"
    cmd = "cd " + shlex.quote(e["directory"]) + " && " + shlex.join(args + ["-Xptxas", "-v"])
    sys.stdout.write(cmd + "\0")
PY
)
  [ "$n" -gt 0 ] || fail "compile_commands.json names no .cu file"
else
  not_built="the CUDA backend is not built into this binary"
  has "version without cuda" "$version" "backend cuda: not built in"
  has "version --json without cuda" "$json" '"name": "cuda", "built": false'
  refused "recipe with backend=cuda" "tiny.yaml: backend 'cuda': $not_built" \
    "$LC" run tiny.yaml backend=cuda
  refused "bench --backend cuda" "--backend cuda: $not_built" "$LC" bench --backend cuda
fi

# check_ptxas.sh itself, on seeded kernels, for the build's architectures.
if [ -n "$NVCC" ] && [ -x "$NVCC" ]; then
  gencode=()
  for a in ${ARCHS//;/ }; do gencode+=(-gencode "arch=compute_${a%-*},code=sm_${a%-*}"); done
  cat >"$TMP/seeded.cu" <<'CU'
// Spills: 64 live values squared under a 64-register budget.
__global__ __launch_bounds__(1024) void seeded_spill(float *out, const float *in) {
    float r[64];
#pragma unroll
    for (int i = 0; i < 64; i++) r[i] = in[i * 1024 + threadIdx.x];
    float s = 0;
#pragma unroll
    for (int i = 0; i < 64; i++)
#pragma unroll
        for (int j = 0; j < 64; j++) s += r[i] * r[j];
    out[threadIdx.x] = s;
}
// A local array indexed by data: a local-memory stack frame.
__global__ void seeded_local(float *out, const int *idx, int n) {
    float a[256];
    for (int i = 0; i < 256; i++) a[i] = out[i * n + threadIdx.x];
    out[threadIdx.x] = a[idx[threadIdx.x] & 255];
}
CU
  cat >"$TMP/clean.cu" <<'CU'
__global__ void seeded_clean(float *out, const float *in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 2.0f * in[i];
}
CU
  "$NVCC" -c -O3 -std=c++17 "${gencode[@]}" -Xptxas -v "$TMP/seeded.cu" -o "$TMP/seeded.o" \
    >"$TMP/seeded.log" 2>&1 || fail "nvcc seeded.cu: $(cat "$TMP/seeded.log")"
  out=$("$SRC/scripts/check_ptxas.sh" "$TMP/seeded.log"); rc=$?
  [ "$rc" = 1 ] || fail "check_ptxas accepts a spilling kernel (exit $rc): $out"
  has "check_ptxas names the spill" "$out" "FAIL: seeded_spill(float*, float const*) (sm_" \
    "bytes spill stores"
  has "check_ptxas names the stack frame" "$out" "FAIL: seeded_local(float*, int const*, int) (sm_"
  "$NVCC" -c -O3 -std=c++17 "${gencode[@]}" -Xptxas -v "$TMP/clean.cu" -o "$TMP/clean.o" \
    >"$TMP/clean.log" 2>&1 || fail "nvcc clean.cu: $(cat "$TMP/clean.log")"
  out=$("$SRC/scripts/check_ptxas.sh" <"$TMP/clean.log") || fail "check_ptxas rejects a clean kernel: $out"
  has "check_ptxas checks the clean kernel once per arch" "$out" \
    "check_ptxas: $((${#gencode[@]} / 2)) function(s), no spills"
else
  echo "note: no nvcc; check_ptxas.sh is not exercised"
fi

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all CUDA build checks passed"
