// kernels/cuda/gelu.cuh: GELU, tanh approximation as GPT-2 (kernels/kernels.h: gelu_forward,
// gelu_backward): gelu(x) = 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi).
#pragma once
#include "kernels/cuda/common.cuh"

#define LC_GELU_K 0.7978845608028654f // sqrt(2/pi)

__device__ __forceinline__ float lc_gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(LC_GELU_K * (x + 0.044715f * x * x * x)));
}

// d/dx gelu = 0.5 (1 + th) + 0.5 x (1 - th^2) k (1 + 3*0.044715 x^2), th = tanh(k(x + 0.044715x^3))
__device__ __forceinline__ float lc_gelu_grad(float x) {
    float th = tanhf(LC_GELU_K * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) +
           0.5f * x * (1.0f - th * th) * LC_GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}

// out (N) written; inp (N). One thread per 4 consecutive elements, float4 accesses when vec.
static __global__ void gelu_forward_kernel(float *out, const float *inp, size_t N, bool vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= N) return;
    if (vec && i + 4 <= N) {
        float x[4];
        lc_load<4>(x, inp + i);
        for (int k = 0; k < 4; k++) x[k] = lc_gelu(x[k]);
        lc_store<4>(out + i, x);
    } else {
        for (size_t k = i; k < N && k < i + 4; k++) out[k] = lc_gelu(inp[k]);
    }
}

// dinp (N) written = gelu'(inp) * dout; inp, dout (N). Layout as the forward.
static __global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout,
                                            size_t N, bool vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= N) return;
    if (vec && i + 4 <= N) {
        float x[4], d[4];
        lc_load<4>(x, inp + i);
        lc_load<4>(d, dout + i);
        for (int k = 0; k < 4; k++) x[k] = lc_gelu_grad(x[k]) * d[k];
        lc_store<4>(dinp + i, x);
    } else {
        for (size_t k = i; k < N && k < i + 4; k++) dinp[k] = lc_gelu_grad(inp[k]) * dout[k];
    }
}

static inline void cuda_gelu_forward(float *out, const float *inp, size_t N, cudaStream_t stream) {
    if (N == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(N, 4), LC_CUDA_BLOCK);
    bool vec = lc_aligned16(out) && lc_aligned16(inp);
    LC_LAUNCH(gelu_forward_kernel, grid, LC_CUDA_BLOCK, 0, stream, out, inp, N, vec);
    LC_LAUNCH_CHECK();
}

static inline void cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N,
                                      cudaStream_t stream) {
    if (N == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(N, 4), LC_CUDA_BLOCK);
    bool vec = lc_aligned16(dinp) && lc_aligned16(inp) && lc_aligned16(dout);
    LC_LAUNCH(gelu_backward_kernel, grid, LC_CUDA_BLOCK, 0, stream, dinp, inp, dout, N, vec);
    LC_LAUNCH_CHECK();
}
