// kernels/cuda/swiglu.cuh: SwiGLU, Llama's MLP activation (kernels/kernels.h: swiglu_forward,
// swiglu_backward): out = silu(g) * u, silu(x) = x sigmoid(x). For T = float or __nv_bfloat16
// (fp32 arithmetic, results rounded to nearest even).
#pragma once
#include "kernels/cuda/common.cuh"

__device__ __forceinline__ float lc_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

// out (N,F) written; inp (N,2F) holds per row the gate g (F) then the up projection u (F).
// One thread per V = 16 / sizeof(T) consecutive outputs i of the flat (N*F) range, each at row
// i / F, column i % F. vec (F a multiple of V and the pointers 16-byte aligned, so the V outputs
// share a row and every row start stays aligned): 16-byte accesses.
template <class T>
static __global__ void swiglu_forward_kernel(T *out, const T *inp, int N, int F, bool vec) {
    constexpr int V = lc_pack<T>::n;
    size_t total = (size_t)N * F;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= total) return;
    if (vec) {
        size_t n = i / F, f = i % F;
        float g[V], u[V];
        lc_load<V>(g, inp + n * 2 * F + f);
        lc_load<V>(u, inp + n * 2 * F + F + f);
        for (int k = 0; k < V; k++) g[k] = g[k] * lc_sigmoid(g[k]) * u[k];
        lc_store<V>(out + i, g);
    } else {
        for (size_t k = i; k < total && k < i + V; k++) {
            size_t n = k / F, f = k % F;
            float g = lc_to_float(inp[n * 2 * F + f]), u = lc_to_float(inp[n * 2 * F + F + f]);
            out[k] = lc_from_float<T>(g * lc_sigmoid(g) * u);
        }
    }
}

// dinp (N,2F) written: dg = dout * u * silu'(g), du = dout * silu(g), silu'(g) = s (1 + g (1 - s)),
// s = sigmoid(g); inp (N,2F); dout (N,F). Layout as the forward.
template <class T>
static __global__ void swiglu_backward_kernel(T *dinp, const T *inp, const T *dout, int N, int F,
                                              bool vec) {
    constexpr int V = lc_pack<T>::n;
    size_t total = (size_t)N * F;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= total) return;
    if (vec) {
        size_t n = i / F, f = i % F, r = n * 2 * F + f;
        float g[V], u[V], d[V], dg[V], du[V];
        lc_load<V>(g, inp + r);
        lc_load<V>(u, inp + r + F);
        lc_load<V>(d, dout + i);
        for (int k = 0; k < V; k++) {
            float s = lc_sigmoid(g[k]);
            du[k] = d[k] * g[k] * s;
            dg[k] = d[k] * u[k] * s * (1.0f + g[k] * (1.0f - s));
        }
        lc_store<V>(dinp + r, dg);
        lc_store<V>(dinp + r + F, du);
    } else {
        for (size_t k = i; k < total && k < i + V; k++) {
            size_t n = k / F, f = k % F, r = n * 2 * F + f;
            float g = lc_to_float(inp[r]), u = lc_to_float(inp[r + F]), d = lc_to_float(dout[k]);
            float s = lc_sigmoid(g);
            dinp[r + F] = lc_from_float<T>(d * g * s);
            dinp[r] = lc_from_float<T>(d * u * s * (1.0f + g * (1.0f - s)));
        }
    }
}

template <class T>
static inline void cuda_swiglu_forward(T *out, const T *inp, int N, int F, cudaStream_t stream) {
    if (N <= 0 || F <= 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div((size_t)N * F, lc_pack<T>::n), LC_CUDA_BLOCK);
    bool vec = F % lc_pack<T>::n == 0 && lc_aligned16(out) && lc_aligned16(inp);
    auto k = swiglu_forward_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, out, inp, N, F, vec);
    LC_LAUNCH_CHECK();
}

template <class T>
static inline void cuda_swiglu_backward(T *dinp, const T *inp, const T *dout, int N, int F,
                                        cudaStream_t stream) {
    if (N <= 0 || F <= 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div((size_t)N * F, lc_pack<T>::n), LC_CUDA_BLOCK);
    bool vec =
        F % lc_pack<T>::n == 0 && lc_aligned16(dinp) && lc_aligned16(inp) && lc_aligned16(dout);
    auto k = swiglu_backward_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, dinp, inp, dout, N, F, vec);
    LC_LAUNCH_CHECK();
}
