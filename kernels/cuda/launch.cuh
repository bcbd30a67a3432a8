// kernels/cuda/launch.cuh: the project macros every CUDA kernel file uses, so that one kernel
// source compiles both under nvcc (for the GPU) and under the CPU emulation harness
// (tests/cuda_emu/cuemu.h, docs/cuda-emulation.md).
//
// The contract:
//   LC_LAUNCH(kernel, grid, block, smem, stream, args...)
//       launches kernel<<<grid, block, smem, stream>>>(args...). `kernel` must be one token
//       sequence without top-level commas: for a template write `auto k = kern<T, 256>;` first
//       and launch k. grid and block are dim3 or integers; smem is the dynamic shared memory in
//       bytes; stream a cudaStream_t (0: the default stream). At least one argument.
//   LC_DYN_SHARED(T, name)
//       declares the block's dynamic shared memory as `name`, usable as an array of T, at
//       statement scope inside a kernel (extern __shared__ __align__(16) T name[] under nvcc).
//       Every use in one kernel refers to the same bytes, as in CUDA.
//   LC_LAUNCH_CHECK()
//       after a launch: under nvcc, dies naming file:line and the error string if
//       cudaGetLastError() reports one (an invalid configuration, a missing device); a no-op
//       under the harness, which counts launch errors itself (cuemu_errors()).
// Kernel source otherwise uses plain CUDA: __global__, __device__, __shared__ (static sizes),
// threadIdx/blockIdx/blockDim/gridDim, __syncthreads, __syncwarp, the *_sync shuffles and votes,
// atomicAdd, bf16 from cuda_bf16.h, and the math library. Not available under the harness:
// inline PTX, cooperative groups, cp.async/TMA/mma, textures, device-side printf limits.
//
// Under the harness (LC_CUDA_EMULATED defined: cuemu.h was included first) the macros come from
// cuemu.h; this header then only adds the common includes.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(LC_CUDA_EMULATED)
// LC_LAUNCH, LC_DYN_SHARED and LC_LAUNCH_CHECK are cuemu.h's.
#elif defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>

#define LC_LAUNCH(kernel, grid, block, smem, stream, ...)                                          \
    kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define LC_DYN_SHARED(T, name) extern __shared__ __align__(16) T name[]
#define LC_LAUNCH_CHECK()                                                                          \
    do {                                                                                           \
        cudaError_t lc_launch_err_ = cudaGetLastError();                                           \
        if (lc_launch_err_ != cudaSuccess) {                                                       \
            fprintf(stderr, "%s:%d: CUDA launch failed: %s\n", __FILE__, __LINE__,                 \
                    cudaGetErrorString(lc_launch_err_));                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#else
#error "kernels/cuda/*.cuh: compile with nvcc, or include tests/cuda_emu/cuemu.h first"
#endif
