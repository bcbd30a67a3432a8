// tests/cuda_emu/backend_emu.cc: the CUDA backend's host side (kernels/cuda/backend_cuda.cu),
// compiled with the host compiler over the shims (cuda_shims.h) and the kernel emulator
// (cuemu.h). Its entry point is lc_emu_backend_cuda (docs/cuda-emulation.md).
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/backend_cuda.cu"
