// kernels/cuda/common.cuh: device helpers shared by the kernel headers: index arithmetic,
// aligned vector loads, and deterministic warp and block reductions (fixed order, no atomics).
#pragma once
#include "kernels/cuda/launch.cuh"

// Threads per block of the one-dimensional kernels (a multiple of 32: the reductions need
// whole warps).
#define LC_CUDA_BLOCK 256

static inline size_t lc_ceil_div(size_t a, size_t b) {
    return (a + b - 1) / b;
}

// Whether a pointer allows 16-byte (float4) accesses.
static inline bool lc_aligned16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

// W consecutive floats (W = 1 or 4; for 4 the address is 16-byte aligned) into v.
template <int W> __device__ __forceinline__ void lc_load(float (&v)[W], const float *p) {
    if constexpr (W == 4) {
        float4 t = *reinterpret_cast<const float4 *>(p);
        v[0] = t.x;
        v[1] = t.y;
        v[2] = t.z;
        v[3] = t.w;
    } else {
        v[0] = *p;
    }
}

template <int W> __device__ __forceinline__ void lc_store(float *p, const float (&v)[W]) {
    if constexpr (W == 4) {
        *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
        *p = v[0];
    }
}

// The sum of v over the 32 lanes of a full warp, on every lane (butterfly: the same additions
// in the same order on every run).
template <class T> __device__ __forceinline__ T lc_warp_sum(T v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// The sum of v over a one-dimensional block (blockDim.x a multiple of 32, at most 1024), on
// every thread. Every thread of the block must call it (it holds two __syncthreads); it may be
// called again at once, the trailing barrier protecting its shared buffer.
template <class T> __device__ T lc_block_sum(T v) {
    __shared__ T partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = lc_warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < nwarps ? partial[lane] : T(0);
    v = lc_warp_sum(v);
    __syncthreads();
    return v;
}
