// kernels/cuda/gelu.cuh: GELU, tanh approximation as GPT-2 (kernels/kernels.h: gelu_forward,
// gelu_backward): gelu(x) = 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi). For T = float
// or __nv_bfloat16 (fp32 arithmetic, results rounded to nearest even).
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

// out (N) written; inp (N). One thread per V = 16 / sizeof(T) consecutive elements, 16-byte
// accesses when vec.
template <class T>
static __global__ void gelu_forward_kernel(T *out, const T *inp, size_t N, bool vec) {
    constexpr int V = lc_pack<T>::n;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= N) return;
    if (vec && i + V <= N) {
        float x[V];
        lc_load<V>(x, inp + i);
        for (int k = 0; k < V; k++) x[k] = lc_gelu(x[k]);
        lc_store<V>(out + i, x);
    } else {
        for (size_t k = i; k < N && k < i + V; k++)
            out[k] = lc_from_float<T>(lc_gelu(lc_to_float(inp[k])));
    }
}

// dinp (N) written = gelu'(inp) * dout; inp, dout (N). Layout as the forward.
template <class T>
static __global__ void gelu_backward_kernel(T *dinp, const T *inp, const T *dout, size_t N,
                                            bool vec) {
    constexpr int V = lc_pack<T>::n;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= N) return;
    if (vec && i + V <= N) {
        float x[V], d[V];
        lc_load<V>(x, inp + i);
        lc_load<V>(d, dout + i);
        for (int k = 0; k < V; k++) x[k] = lc_gelu_grad(x[k]) * d[k];
        lc_store<V>(dinp + i, x);
    } else {
        for (size_t k = i; k < N && k < i + V; k++)
            dinp[k] = lc_from_float<T>(lc_gelu_grad(lc_to_float(inp[k])) * lc_to_float(dout[k]));
    }
}

template <class T>
static inline void cuda_gelu_forward(T *out, const T *inp, size_t N, cudaStream_t stream) {
    if (N == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(N, lc_pack<T>::n), LC_CUDA_BLOCK);
    bool vec = lc_aligned16(out) && lc_aligned16(inp);
    auto k = gelu_forward_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, out, inp, N, vec);
    LC_LAUNCH_CHECK();
}

template <class T>
static inline void cuda_gelu_backward(T *dinp, const T *inp, const T *dout, size_t N,
                                      cudaStream_t stream) {
    if (N == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(N, lc_pack<T>::n), LC_CUDA_BLOCK);
    bool vec = lc_aligned16(dinp) && lc_aligned16(inp) && lc_aligned16(dout);
    auto k = gelu_backward_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, dinp, inp, dout, N, vec);
    LC_LAUNCH_CHECK();
}
