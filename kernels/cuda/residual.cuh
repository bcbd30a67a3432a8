// kernels/cuda/residual.cuh: the residual add (kernels/kernels.h: residual_forward).
#pragma once
#include "kernels/cuda/common.cuh"

// out (N) written = a + b. One thread per 4 consecutive elements: a float4 load of each input and
// a float4 store when vec (all three pointers 16-byte aligned), else 4 scalar ones; the tail
// thread of an N that is not a multiple of 4 stops at N.
static __global__ void residual_forward_kernel(float *out, const float *a, const float *b, size_t N,
                                               bool vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= N) return;
    if (vec && i + 4 <= N) {
        float x[4], y[4];
        lc_load<4>(x, a + i);
        lc_load<4>(y, b + i);
        for (int k = 0; k < 4; k++) x[k] += y[k];
        lc_store<4>(out + i, x);
    } else {
        for (size_t k = i; k < N && k < i + 4; k++) out[k] = a[k] + b[k];
    }
}

static inline void cuda_residual_forward(float *out, const float *a, const float *b, size_t N,
                                         cudaStream_t stream) {
    if (N == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(N, 4), LC_CUDA_BLOCK);
    bool vec = lc_aligned16(out) && lc_aligned16(a) && lc_aligned16(b);
    LC_LAUNCH(residual_forward_kernel, grid, LC_CUDA_BLOCK, 0, stream, out, a, b, N, vec);
    LC_LAUNCH_CHECK();
}
