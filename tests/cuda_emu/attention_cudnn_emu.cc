// tests/cuda_emu/attention_cudnn_emu.cc: kernels/cuda/attention_cudnn.cu compiled with the host
// compiler over the shims (cuda_shims.h renames its runtime and cuDNN calls onto cudart_shim.cc
// and cudnn_shim.cc) and the kernel emulator, for tests/test_cuda_cudnn.cc.
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/attention_cudnn.cu"
