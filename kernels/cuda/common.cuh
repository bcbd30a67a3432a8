// kernels/cuda/common.cuh: device helpers shared by the kernel headers: index arithmetic,
// aligned vector loads, and deterministic warp and block reductions (fixed order, no atomics).
#pragma once
#include "kernels/cuda/launch.cuh"
#include <cstring>

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

// Element types of the kernels: float, or __nv_bfloat16 with fp32 arithmetic (converted with
// round-to-nearest-even on the way out).
__device__ __forceinline__ float lc_to_float(float x) {
    return x;
}
__device__ __forceinline__ float lc_to_float(__nv_bfloat16 x) {
    return __bfloat162float(x);
}
template <class T> __device__ __forceinline__ T lc_from_float(float x);
template <> __device__ __forceinline__ float lc_from_float<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ __nv_bfloat16 lc_from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

// Elements of T in one 16-byte access: 4 floats, 8 bf16.
template <class T> struct lc_pack { static constexpr int n = 16 / (int)sizeof(T); };

// W consecutive elements of T at p into v as floats: one 16-byte load when W fills 16 bytes (p
// then 16-byte aligned), else W == 1.
template <int W, class T> __device__ __forceinline__ void lc_load(float (&v)[W], const T *p) {
    if constexpr (W * sizeof(T) == 16) {
        int4 raw = *reinterpret_cast<const int4 *>(p);
        T e[W];
        memcpy(static_cast<void *>(e), &raw, 16);
        for (int k = 0; k < W; k++) v[k] = lc_to_float(e[k]);
    } else {
        static_assert(W == 1, "lc_load: one element or 16 bytes");
        v[0] = lc_to_float(*p);
    }
}

// v as W consecutive elements of T at p (the same access sizes as lc_load).
template <int W, class T> __device__ __forceinline__ void lc_store(T *p, const float (&v)[W]) {
    if constexpr (W * sizeof(T) == 16) {
        T e[W];
        for (int k = 0; k < W; k++) e[k] = lc_from_float<T>(v[k]);
        int4 raw;
        memcpy(&raw, static_cast<const void *>(e), 16);
        *reinterpret_cast<int4 *>(p) = raw;
    } else {
        static_assert(W == 1, "lc_store: one element or 16 bytes");
        *p = lc_from_float<T>(v[0]);
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

// The largest of v over the 32 lanes of a full warp, on every lane.
static __device__ __forceinline__ float lc_warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// The largest of v over a one-dimensional block, on every thread (as lc_block_sum).
static __device__ float lc_block_max(float v) {
    __shared__ float partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = lc_warp_max(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < nwarps ? partial[lane] : -INFINITY;
    v = lc_warp_max(v);
    __syncthreads();
    return v;
}
