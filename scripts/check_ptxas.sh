#!/usr/bin/env bash
# scripts/check_ptxas.sh: fails on register spills and local-memory stack frames in CUDA kernels,
# read from ptxas's resource report (nvcc -Xptxas -v, printed on stderr while compiling).
#   check_ptxas.sh [LOG ...]      reads the logs, or stdin without any
# A kernel (or a non-inlined device function) with "N bytes stack frame" or "N bytes spill
# stores/loads" above 0, for any architecture, is one line of the failure report. Exit 0: no
# spill and no stack frame (prints how many functions it checked, 0 for host-only sources);
# 1: at least one; 2: the input has a ptxas error.
set -uo pipefail
demangle=cat
command -v c++filt >/dev/null && demangle=c++filt

cat "$@" | awk '
  /ptxas (error|fatal)/ { print "check_ptxas: ptxas reported an error: " $0; err = 1 }
  /Compiling entry function/ {
    match($0, /function .([^'"'"']+)/); fn = substr($0, RSTART + 10, RLENGTH - 10)
    arch = $0; sub(/.* for ./, "", arch); sub(/.$/, "", arch)
  }
  /Function properties for/ { prop = $0; sub(/.*Function properties for /, "", prop) }
  /bytes stack frame, .* bytes spill stores, .* bytes spill loads/ {
    n++
    stack = $1; stores = $5; loads = $9
    name = prop != "" ? prop : fn
    if (stack + 0 > 0 || stores + 0 > 0 || loads + 0 > 0) {
      printf "FAIL: %s (%s): %d bytes stack frame, %d bytes spill stores, %d bytes spill loads\n",
             name, arch, stack, stores, loads
      bad++
    }
    prop = ""
  }
  END {
    if (err) exit 2
    if (bad) { printf "check_ptxas: %d of %d function(s) spill or use a local-memory stack frame\n", bad, n; exit 1 }
    printf "check_ptxas: %d function(s), no spills, no stack frames\n", n
  }' | $demangle
exit "${PIPESTATUS[1]}"
