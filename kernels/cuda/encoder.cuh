// kernels/cuda/encoder.cuh: the token + position embedding (kernels/kernels.h: encoder_forward,
// encoder_backward), for T = float or __nv_bfloat16 activations and tables (fp32 arithmetic);
// the backward reads dout of T and accumulates fp32 gradients.
#pragma once
#include "kernels/cuda/common.cuh"

// out (B,T,C) written = wte (Vp,C)[tokens[n]] + wpe (maxT,C)[pos[n]] for the N = B*T rows n;
// tokens, pos (B,T); pos NULL means pos = n % T; wpe NULL means no position table (rotary
// models). One thread per V = 16 / sizeof(T) consecutive channels of one row: 16-byte loads and
// one 16-byte store when vec (C a multiple of V and every table 16-byte aligned, so every row
// is), else V scalar ones stopping at C.
template <class T>
static __global__ void encoder_forward_kernel(T *out, const int *tokens, const int *pos,
                                              const T *wte, const T *wpe, int N, int Tlen, int C,
                                              bool vec) {
    constexpr int V = lc_pack<T>::n;
    int groups = (C + V - 1) / V;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * groups) return;
    int n = (int)(i / groups), c = (int)(i % groups) * V;
    const T *te = wte + (size_t)tokens[n] * C + c;
    const T *pe = wpe ? wpe + (size_t)(pos ? pos[n] : n % Tlen) * C + c : nullptr;
    T *o = out + (size_t)n * C + c;
    if (vec) {
        float x[V], y[V];
        lc_load<V>(x, te);
        if (pe) {
            lc_load<V>(y, pe);
            for (int k = 0; k < V; k++) x[k] += y[k];
        }
        lc_store<V>(o, x);
    } else {
        for (int k = 0; k < V && c + k < C; k++)
            o[k] = lc_from_float<T>(lc_to_float(te[k]) + (pe ? lc_to_float(pe[k]) : 0.0f));
    }
}

template <class T>
static inline void cuda_encoder_forward(T *out, const int *tokens, const int *pos, const T *wte,
                                        const T *wpe, int B, int Tlen, int C, cudaStream_t stream) {
    int N = B * Tlen;
    if (N <= 0 || C <= 0) return;
    constexpr int V = lc_pack<T>::n;
    size_t threads = (size_t)N * lc_ceil_div((size_t)C, V);
    bool vec = C % V == 0 && lc_aligned16(out) && lc_aligned16(wte) && (!wpe || lc_aligned16(wpe));
    auto k = encoder_forward_kernel<T>;
    LC_LAUNCH(k, lc_ceil_div(threads, LC_CUDA_BLOCK), LC_CUDA_BLOCK, 0, stream, out, tokens, pos,
              wte, wpe, N, Tlen, C, vec);
    LC_LAUNCH_CHECK();
}

// Threads per block of the backward: small, so that a model's few channels still spread over
// several multiprocessors.
#define LC_ENC_BWD_BLOCK 64

// dwte (Vp,C) +=, dwpe (maxT,C) += (each skipped if NULL); dout (B,T,C); tokens, pos (B,T) as in
// the forward. Deterministic without atomics: one thread per channel c walks the N rows in order,
// adding dout[n][c] into dwte[tokens[n]][c] (and dwpe[pos[n]][c]), so rows sharing a token or a
// position add in one fixed order -- the CPU backend's order, hence its bits. Adjacent threads
// touch adjacent channels: the loads and stores of a warp are coalesced. dout of T.
template <class T>
static __global__ void encoder_backward_kernel(float *dwte, float *dwpe, const T *dout,
                                               const int *tokens, const int *pos, int N, int Tlen,
                                               int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int n = 0; n < N; n++) {
        float d = lc_to_float(dout[(size_t)n * C + c]);
        if (dwte) dwte[(size_t)tokens[n] * C + c] += d;
        if (dwpe) dwpe[(size_t)(pos ? pos[n] : n % Tlen) * C + c] += d;
    }
}

template <class T>
static inline void cuda_encoder_backward(float *dwte, float *dwpe, const T *dout, const int *tokens,
                                         const int *pos, int B, int Tlen, int C,
                                         cudaStream_t stream) {
    int N = B * Tlen;
    if (N <= 0 || C <= 0 || (!dwte && !dwpe)) return; // both frozen: nothing to add
    auto k = encoder_backward_kernel<T>;
    LC_LAUNCH(k, lc_ceil_div((size_t)C, LC_ENC_BWD_BLOCK), LC_ENC_BWD_BLOCK, 0, stream, dwte, dwpe,
              dout, tokens, pos, N, Tlen, C);
    LC_LAUNCH_CHECK();
}
