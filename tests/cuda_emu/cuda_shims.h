// tests/cuda_emu/cuda_shims.h: CPU stand-ins for the CUDA runtime, cuBLASLt and cuDNN calls of the
// CUDA backend's host code (kernels/cuda/*.cu), so that the whole backend — its memory entries,
// its matrix products and its kernels — runs on the CPU in tests (docs/cuda-emulation.md).
//
// Include it FIRST (before cuemu.h and before any CUDA header) in a translation unit that then
// includes a backend .cu file. Every library function the backend calls is renamed here to an
// lc_emu_ name BEFORE NVIDIA's headers are included, so those headers declare the lc_emu_
// functions with the library's exact signatures; cudart_shim.cc, cublaslt_shim.cc (and the cuDNN
// shim) define them over host memory and check the rules of each call. Nothing links libcudart,
// libcublasLt or libcudnn, so the emulated backend can sit in one binary with the real one.
//
// The backend's own symbols move out of the way too: its extern "C" entry points get lc_emu_
// names below, and its C++ functions live in the namespace LC_CUDA_NAMESPACE opens
// (kernels/cuda/cuda.h), which is lc_emu under emulation.
#pragma once

// ---- the CUDA runtime
// ----------------------------------------------------------------------------
#define cudaMalloc             lc_emu_cudaMalloc
#define cudaFree               lc_emu_cudaFree
#define cudaMemset             lc_emu_cudaMemset
#define cudaMemcpy             lc_emu_cudaMemcpy
#define cudaMemsetAsync        lc_emu_cudaMemsetAsync
#define cudaMemcpyAsync        lc_emu_cudaMemcpyAsync
#define cudaGetLastError       lc_emu_cudaGetLastError
#define cudaPeekAtLastError    lc_emu_cudaPeekAtLastError
#define cudaGetErrorString     lc_emu_cudaGetErrorString
#define cudaGetErrorName       lc_emu_cudaGetErrorName
#define cudaSetDevice          lc_emu_cudaSetDevice
#define cudaGetDevice          lc_emu_cudaGetDevice
#define cudaGetDeviceCount     lc_emu_cudaGetDeviceCount
#define cudaDeviceGetAttribute lc_emu_cudaDeviceGetAttribute
#define cudaDriverGetVersion   lc_emu_cudaDriverGetVersion
#define cudaRuntimeGetVersion  lc_emu_cudaRuntimeGetVersion
#define cudaMemGetInfo         lc_emu_cudaMemGetInfo
#define cudaStreamSynchronize  lc_emu_cudaStreamSynchronize
#define cudaDeviceSynchronize  lc_emu_cudaDeviceSynchronize
#define cudaStreamQuery        lc_emu_cudaStreamQuery

// ---- cuBLASLt
// ------------------------------------------------------------------------------------
#define cublasLtGetVersion                   lc_emu_cublasLtGetVersion
#define cublasLtCreate                       lc_emu_cublasLtCreate
#define cublasLtDestroy                      lc_emu_cublasLtDestroy
#define cublasLtMatmulDescCreate             lc_emu_cublasLtMatmulDescCreate
#define cublasLtMatmulDescSetAttribute       lc_emu_cublasLtMatmulDescSetAttribute
#define cublasLtMatmulDescDestroy            lc_emu_cublasLtMatmulDescDestroy
#define cublasLtMatrixLayoutCreate           lc_emu_cublasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy          lc_emu_cublasLtMatrixLayoutDestroy
#define cublasLtMatmulPreferenceCreate       lc_emu_cublasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceSetAttribute lc_emu_cublasLtMatmulPreferenceSetAttribute
#define cublasLtMatmulPreferenceDestroy      lc_emu_cublasLtMatmulPreferenceDestroy
#define cublasLtMatmulAlgoGetHeuristic       lc_emu_cublasLtMatmulAlgoGetHeuristic
#define cublasLtMatmul                       lc_emu_cublasLtMatmul

// ---- cuDNN
// ---------------------------------------------------------------------------------------
#define cudnnGetVersion lc_emu_cudnnGetVersion
// -- the backend API of kernels/cuda/attention_cudnn.cu (tests/cuda_emu/cudnn_shim.cc) --
#define cudnnCreate                   lc_emu_cudnnCreate
#define cudnnDestroy                  lc_emu_cudnnDestroy
#define cudnnSetStream                lc_emu_cudnnSetStream
#define cudnnGetErrorString           lc_emu_cudnnGetErrorString
#define cudnnGetLastErrorString       lc_emu_cudnnGetLastErrorString
#define cudnnBackendCreateDescriptor  lc_emu_cudnnBackendCreateDescriptor
#define cudnnBackendDestroyDescriptor lc_emu_cudnnBackendDestroyDescriptor
#define cudnnBackendSetAttribute      lc_emu_cudnnBackendSetAttribute
#define cudnnBackendGetAttribute      lc_emu_cudnnBackendGetAttribute
#define cudnnBackendFinalize          lc_emu_cudnnBackendFinalize
#define cudnnBackendExecute           lc_emu_cudnnBackendExecute
// -- end of attention_cudnn.cu's renames --

// ---- NCCL (kernels/cuda/collective_nccl.cu): tests/cuda_emu/nccl_shim.cc, over MPI on host
// memory. nccl.h is not included here (the other shims do not need it): the translation units
// that use NCCL include it after this header.
#define ncclGetUniqueId       lc_emu_ncclGetUniqueId
#define ncclCommInitRank      lc_emu_ncclCommInitRank
#define ncclCommDestroy       lc_emu_ncclCommDestroy
#define ncclCommAbort         lc_emu_ncclCommAbort
#define ncclCommGetAsyncError lc_emu_ncclCommGetAsyncError
#define ncclGetErrorString    lc_emu_ncclGetErrorString
#define ncclGetLastError      lc_emu_ncclGetLastError
#define ncclAllReduce         lc_emu_ncclAllReduce
#define ncclReduceScatter     lc_emu_ncclReduceScatter
#define ncclAllGather         lc_emu_ncclAllGather

// ---- the backend's own entry points
// ---------------------------------------------------------------
#define backend_cuda           lc_emu_backend_cuda
#define backend_cuda_versions  lc_emu_backend_cuda_versions
#define backend_cuda_memory    lc_emu_backend_cuda_memory
#define backend_cuda_bf16_peak lc_emu_backend_cuda_bf16_peak
// the nccl collective implementation (tests/cuda_emu/collective_nccl_emu.cc)
#define comm_nccl_open  lc_emu_comm_nccl_open
#define comm_nccl_close lc_emu_comm_nccl_close

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>

// ---- the shims' own controls, for tests
// --------------------------------------------------------------
extern "C" {
// How many devices lc_emu_cudaGetDeviceCount reports (default 1; 0 makes it fail as without a
// driver, with cudaErrorNoDevice).
void lc_emu_set_device_count(int n);
// Device memory the shim holds now and at most since lc_emu_reset_peak (bytes).
size_t lc_emu_device_bytes(void);
size_t lc_emu_device_peak(void);
void lc_emu_reset_peak(void);
// cudaMalloc calls that succeeded since the start.
long lc_emu_allocations(void);
// Rule violations the shims found (each also printed to stderr with the call's name), and
// matrix products computed; both since the start.
long lc_emu_shim_errors(void);
long lc_emu_matmuls(void);
// Counts and prints one violation; the shims' common reporter.
void lc_emu_shim_error(const char *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Whether [p, p+bytes) lies inside one live device allocation.
int lc_emu_is_device(const void *p, size_t bytes);
}
