// kernels/cuda/convert.cuh: conversions between fp32 and the activation type T (float or
// __nv_bfloat16) (kernels/kernels.h: act_from_float, act_to_float): the model engine's way in and
// out of Act storage (parameters' compute copies, inputs, logits read back).
#pragma once
#include "kernels/cuda/common.cuh"

// dst (n) of T written = src (n) fp32, rounded to nearest even for bf16. One thread per V = 16 /
// sizeof(T) consecutive elements: a 16-byte store (and 4 float4 loads for bf16) when vec (both
// pointers 16-byte aligned), else V scalar ones stopping at n.
template <class T>
static __global__ void act_from_float_kernel(T *dst, const float *src, size_t n, bool vec) {
    constexpr int V = lc_pack<T>::n;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= n) return;
    if (vec && i + V <= n) {
        float x[V];
        for (int k = 0; k < V; k += 4) {
            float f[4];
            lc_load<4>(f, src + i + k);
            for (int j = 0; j < 4; j++) x[k + j] = f[j];
        }
        lc_store<V>(dst + i, x);
    } else {
        for (size_t k = i; k < n && k < i + V; k++) dst[k] = lc_from_float<T>(src[k]);
    }
}

// dst (n) fp32 written = src (n) of T (exact). Layout as act_from_float_kernel.
template <class T>
static __global__ void act_to_float_kernel(float *dst, const T *src, size_t n, bool vec) {
    constexpr int V = lc_pack<T>::n;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= n) return;
    if (vec && i + V <= n) {
        float x[V];
        lc_load<V>(x, src + i);
        for (int k = 0; k < V; k += 4) {
            float f[4] = {x[k], x[k + 1], x[k + 2], x[k + 3]};
            lc_store<4>(dst + i + k, f);
        }
    } else {
        for (size_t k = i; k < n && k < i + V; k++) dst[k] = lc_to_float(src[k]);
    }
}

template <class T>
static inline void cuda_act_from_float(T *dst, const float *src, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(n, lc_pack<T>::n), LC_CUDA_BLOCK);
    auto k = act_from_float_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, dst, src, n,
              lc_aligned16(dst) && lc_aligned16(src));
    LC_LAUNCH_CHECK();
}

template <class T>
static inline void cuda_act_to_float(float *dst, const T *src, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(n, lc_pack<T>::n), LC_CUDA_BLOCK);
    auto k = act_to_float_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, dst, src, n,
              lc_aligned16(dst) && lc_aligned16(src));
    LC_LAUNCH_CHECK();
}
