// tests/cuda_emu/ops_emu.cc: the CUDA backend's kernel entries (kernels/cuda/ops.cu and the
// kernels it includes), compiled with the host compiler over the shims and the kernel emulator.
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/ops.cu"
