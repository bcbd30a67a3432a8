// tests/cuda_emu/attention_cudnn_emu.cc: kernels/cuda/attention_cudnn.cu compiled by the host
// compiler for tests/test_cuda_cudnn.cc: the cuDNN calls renamed onto tests/cuda_emu/cudnn_shim.cc,
// the conversion kernels run by the emulation harness (tests/cuda_emu/cuemu.h).
//
// Stand-in until tests/cuda_emu/cuda_shims.h lands on main: the four runtime functions the file
// uses are renamed here and defined in tests/test_cuda_cudnn.cc over host memory; then this
// block becomes #include "tests/cuda_emu/cuda_shims.h".
#define cudaMalloc         lc_emu_cudaMalloc
#define cudaFree           lc_emu_cudaFree
#define cudaGetErrorString lc_emu_cudaGetErrorString
#define cudaGetErrorName   lc_emu_cudaGetErrorName
#include "tests/cuda_emu/cudnn_shim.h"
// NVIDIA's headers before the harness, which defines gridDim and friends as macros
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/attention_cudnn.cu"

// The backend's context (backend_cuda.cu is not part of this test): the legacy default stream.
static CudaContext g_emu_ctx;
CudaContext *cuda_context(void) {
    return &g_emu_ctx;
}
