// kernels/cuda/residual.cuh: the residual add (kernels/kernels.h: residual_forward), for T = float
// or __nv_bfloat16 (fp32 arithmetic, the sum rounded to nearest even).
#pragma once
#include "kernels/cuda/common.cuh"

// out (N) written = a + b. One thread per V = 16 / sizeof(T) consecutive elements: one 16-byte
// load of each input and one store when vec (all three pointers 16-byte aligned), else V scalar
// ones; the tail thread of an N that is not a multiple of V stops at N.
template <class T>
static __global__ void residual_forward_kernel(T *out, const T *a, const T *b, size_t N, bool vec) {
    constexpr int V = lc_pack<T>::n;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= N) return;
    if (vec && i + V <= N) {
        float x[V], y[V];
        lc_load<V>(x, a + i);
        lc_load<V>(y, b + i);
        for (int k = 0; k < V; k++) x[k] += y[k];
        lc_store<V>(out + i, x);
    } else {
        for (size_t k = i; k < N && k < i + V; k++)
            out[k] = lc_from_float<T>(lc_to_float(a[k]) + lc_to_float(b[k]));
    }
}

template <class T>
static inline void cuda_residual_forward(T *out, const T *a, const T *b, size_t N,
                                         cudaStream_t stream) {
    if (N == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(N, lc_pack<T>::n), LC_CUDA_BLOCK);
    bool vec = lc_aligned16(out) && lc_aligned16(a) && lc_aligned16(b);
    auto k = residual_forward_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, out, a, b, N, vec);
    LC_LAUNCH_CHECK();
}
