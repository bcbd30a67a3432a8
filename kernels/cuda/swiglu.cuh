// kernels/cuda/swiglu.cuh: SwiGLU, Llama's MLP activation (kernels/kernels.h: swiglu_forward,
// swiglu_backward): out = silu(g) * u, silu(x) = x sigmoid(x).
#pragma once
#include "kernels/cuda/common.cuh"

__device__ __forceinline__ float lc_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

// out (N,F) written; inp (N,2F) holds per row the gate g (F) then the up projection u (F).
// One thread per 4 consecutive outputs i of the flat (N*F) range, each at row i / F, column
// i % F. vec (F a multiple of 4 and the pointers 16-byte aligned, so 4 outputs share a row and
// every row start stays aligned): float4 accesses.
static __global__ void swiglu_forward_kernel(float *out, const float *inp, int N, int F, bool vec) {
    size_t total = (size_t)N * F;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= total) return;
    if (vec) {
        size_t n = i / F, f = i % F;
        float g[4], u[4];
        lc_load<4>(g, inp + n * 2 * F + f);
        lc_load<4>(u, inp + n * 2 * F + F + f);
        for (int k = 0; k < 4; k++) g[k] = g[k] * lc_sigmoid(g[k]) * u[k];
        lc_store<4>(out + i, g);
    } else {
        for (size_t k = i; k < total && k < i + 4; k++) {
            size_t n = k / F, f = k % F;
            float g = inp[n * 2 * F + f], u = inp[n * 2 * F + F + f];
            out[k] = g * lc_sigmoid(g) * u;
        }
    }
}

// dinp (N,2F) written: dg = dout * u * silu'(g), du = dout * silu(g), silu'(g) = s (1 + g (1 - s)),
// s = sigmoid(g); inp (N,2F); dout (N,F). Layout as the forward.
static __global__ void swiglu_backward_kernel(float *dinp, const float *inp, const float *dout,
                                              int N, int F, bool vec) {
    size_t total = (size_t)N * F;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= total) return;
    if (vec) {
        size_t n = i / F, f = i % F, r = n * 2 * F + f;
        float g[4], u[4], d[4], dg[4], du[4];
        lc_load<4>(g, inp + r);
        lc_load<4>(u, inp + r + F);
        lc_load<4>(d, dout + i);
        for (int k = 0; k < 4; k++) {
            float s = lc_sigmoid(g[k]);
            du[k] = d[k] * g[k] * s;
            dg[k] = d[k] * u[k] * s * (1.0f + g[k] * (1.0f - s));
        }
        lc_store<4>(dinp + r, dg);
        lc_store<4>(dinp + r + F, du);
    } else {
        for (size_t k = i; k < total && k < i + 4; k++) {
            size_t n = k / F, f = k % F, r = n * 2 * F + f;
            float g = inp[r], u = inp[r + F], d = dout[k], s = lc_sigmoid(g);
            dinp[r + F] = d * g * s;
            dinp[r] = d * u * s * (1.0f + g * (1.0f - s));
        }
    }
}

static inline void cuda_swiglu_forward(float *out, const float *inp, int N, int F,
                                       cudaStream_t stream) {
    if (N <= 0 || F <= 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div((size_t)N * F, 4), LC_CUDA_BLOCK);
    bool vec = F % 4 == 0 && lc_aligned16(out) && lc_aligned16(inp);
    LC_LAUNCH(swiglu_forward_kernel, grid, LC_CUDA_BLOCK, 0, stream, out, inp, N, F, vec);
    LC_LAUNCH_CHECK();
}

static inline void cuda_swiglu_backward(float *dinp, const float *inp, const float *dout, int N,
                                        int F, cudaStream_t stream) {
    if (N <= 0 || F <= 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div((size_t)N * F, 4), LC_CUDA_BLOCK);
    bool vec = F % 4 == 0 && lc_aligned16(dinp) && lc_aligned16(inp) && lc_aligned16(dout);
    LC_LAUNCH(swiglu_backward_kernel, grid, LC_CUDA_BLOCK, 0, stream, dinp, inp, dout, N, F, vec);
    LC_LAUNCH_CHECK();
}
