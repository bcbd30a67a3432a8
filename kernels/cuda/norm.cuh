// kernels/cuda/norm.cuh: layer normalisation and RMS normalisation over the channel dimension
// (kernels/kernels.h: layernorm_forward/backward, rmsnorm_forward/backward).
//
// Forward and the input gradient: one warp per row (LC_CUDA_BLOCK / 32 rows per block), the
// lanes striding over the channels (16-byte accesses when C is a multiple of 16 / sizeof(T) and
// the row pointers are 16-byte aligned), row statistics by warp-shuffle reductions. T, the type of
// the activations and weights, is float or __nv_bfloat16; statistics, parameter gradients and
// all arithmetic are fp32.
// Parameter gradients (dweight, dbias: sums over rows) without atomics, deterministic for a given
// N and C: column partial sums over fixed chunks of rows into `scratch`, then a fixed-order sum
// of the chunks added into the gradient.
#pragma once
#include "kernels/cuda/common.cuh"

#define LC_LN_EPS 1e-5f

// Rows of the chunks of the parameter-gradient reduction: at most 128 chunks, at least 32 rows
// each (short of N).
static inline int lc_norm_chunks(int N) {
    int chunks = (int)lc_ceil_div((size_t)N, 32);
    return chunks > 128 ? 128 : chunks;
}

// The floats of `scratch` that cuda_layernorm_backward needs (cuda_rmsnorm_backward: half).
static inline size_t cuda_norm_backward_scratch(int N, int C) {
    return 2 * (size_t)lc_norm_chunks(N) * (size_t)C;
}

// ---- layernorm --------------------------------------------------------------------------------

// out (N,C) written; mean, rstd (N) written (fp32); inp (N,C); weight, bias (C). T: float or
// __nv_bfloat16 (statistics and arithmetic in fp32); W: elements per access (1 or 16 bytes).
template <class T, int W>
static __global__ void layernorm_forward_kernel(T *out, float *mean, float *rstd, const T *inp,
                                                const T *weight, const T *bias, int N, int C) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return; // whole warps: row is the same on every lane
    const T *x = inp + (size_t)row * C;
    float sum = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W];
        lc_load<W>(v, x + c);
        for (int k = 0; k < W; k++) sum += v[k];
    }
    float m = lc_warp_sum(sum) / (float)C;
    float sq = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W];
        lc_load<W>(v, x + c);
        for (int k = 0; k < W; k++) sq += (v[k] - m) * (v[k] - m);
    }
    float s = 1.0f / sqrtf(lc_warp_sum(sq) / (float)C + LC_LN_EPS);
    T *o = out + (size_t)row * C;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W], w[W], b[W];
        lc_load<W>(v, x + c);
        lc_load<W>(w, weight + c);
        lc_load<W>(b, bias + c);
        for (int k = 0; k < W; k++) v[k] = (v[k] - m) * s * w[k] + b[k];
        lc_store<W>(o + c, v);
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}

// With xhat = (x - mean) rstd and dnorm = dout weight:
//   dinp (N,C) += rstd (dnorm - mean_c(dnorm) - xhat mean_c(dnorm xhat)),
// dinp read as T, the sum in fp32, rounded once; dout, inp (N,C), weight (C) of T; mean, rstd fp32.
template <class T, int W>
static __global__ void layernorm_backward_dinp_kernel(T *dinp, const T *dout, const T *inp,
                                                      const T *weight, const float *mean,
                                                      const float *rstd, int N, int C) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const T *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], s = rstd[row];
    float dsum = 0.0f, dxsum = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W], g[W], w[W];
        lc_load<W>(v, x + c);
        lc_load<W>(g, d + c);
        lc_load<W>(w, weight + c);
        for (int k = 0; k < W; k++) {
            float dnorm = g[k] * w[k];
            dsum += dnorm;
            dxsum += dnorm * (v[k] - m) * s;
        }
    }
    float dnorm_mean = lc_warp_sum(dsum) / (float)C;
    float dnorm_xhat_mean = lc_warp_sum(dxsum) / (float)C;
    T *di = dinp + (size_t)row * C;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W], g[W], w[W], o[W];
        lc_load<W>(v, x + c);
        lc_load<W>(g, d + c);
        lc_load<W>(w, weight + c);
        lc_load<W>(o, di + c);
        for (int k = 0; k < W; k++) {
            float xhat = (v[k] - m) * s;
            o[k] += s * (g[k] * w[k] - dnorm_mean - xhat * dnorm_xhat_mean);
        }
        lc_store<W>(di + c, o);
    }
}

// ---- rmsnorm ----------------------------------------------------------------------------------

// out (N,C) written = inp rstd weight; rstd (N) written = 1/sqrt(mean_c(inp^2) + eps).
// T, W as for layernorm_forward_kernel; rstd is fp32.
template <class T, int W>
static __global__ void rmsnorm_forward_kernel(T *out, float *rstd, const T *inp, const T *weight,
                                              int N, int C, float eps) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const T *x = inp + (size_t)row * C;
    float sq = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W];
        lc_load<W>(v, x + c);
        for (int k = 0; k < W; k++) sq += v[k] * v[k];
    }
    float s = 1.0f / sqrtf(lc_warp_sum(sq) / (float)C + eps);
    T *o = out + (size_t)row * C;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W], w[W];
        lc_load<W>(v, x + c);
        lc_load<W>(w, weight + c);
        for (int k = 0; k < W; k++) v[k] = v[k] * s * w[k];
        lc_store<W>(o + c, v);
    }
    if (lane == 0) rstd[row] = s;
}

// With xhat = x rstd: dinp (N,C) += rstd (dout weight - xhat mean_c(dout weight xhat)); types
// and the accumulation of dinp as layernorm_backward_dinp_kernel.
template <class T, int W>
static __global__ void rmsnorm_backward_dinp_kernel(T *dinp, const T *dout, const T *inp,
                                                    const T *weight, const float *rstd, int N,
                                                    int C) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const T *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float s = rstd[row], dot = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W], g[W], w[W];
        lc_load<W>(v, x + c);
        lc_load<W>(g, d + c);
        lc_load<W>(w, weight + c);
        for (int k = 0; k < W; k++) dot += g[k] * w[k] * v[k] * s;
    }
    dot = lc_warp_sum(dot) / (float)C;
    T *di = dinp + (size_t)row * C;
    for (int c = lane * W; c < C; c += 32 * W) {
        float v[W], g[W], w[W], o[W];
        lc_load<W>(v, x + c);
        lc_load<W>(g, d + c);
        lc_load<W>(w, weight + c);
        lc_load<W>(o, di + c);
        for (int k = 0; k < W; k++) o[k] += s * (g[k] * w[k] - v[k] * s * dot);
        lc_store<W>(di + c, o);
    }
}

// ---- parameter gradients of both ----------------------------------------------------------------

// Block (32, 8) at (column tile blockIdx.x, chunk blockIdx.y): for its 32 columns c, over the
// rows of its chunk, sums dout (dbias; LN only) and dout xhat (dweight), xhat = (x - mean) rstd
// (LN) or x rstd; the 8 row lanes' sums meet in shared memory and are added in lane order.
// scratch: dweight partials at [chunk][c], then for LN the dbias partials at [chunks + chunk][c].
// dout, inp (N,C) of T; mean, rstd (N) fp32.
template <class T, bool LN>
static __global__ void norm_param_partial_kernel(float *scratch, const T *dout, const T *inp,
                                                 const float *mean, const float *rstd, int N,
                                                 int C) {
    __shared__ float sw[8][33], sb[8][33];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.x * 32 + tx;
    int chunks = gridDim.y, rows = (N + chunks - 1) / chunks;
    int r0 = blockIdx.y * rows, r1 = min(N, r0 + rows);
    float dw = 0.0f, db = 0.0f;
    if (c < C)
        for (int n = r0 + ty; n < r1; n += 8) {
            size_t i = (size_t)n * C + c;
            float x = lc_to_float(inp[i]), d = lc_to_float(dout[i]);
            float xhat = LN ? (x - mean[n]) * rstd[n] : x * rstd[n];
            dw += d * xhat;
            db += d;
        }
    sw[ty][tx] = dw;
    sb[ty][tx] = db;
    __syncthreads();
    if (ty == 0 && c < C) {
        float w = 0.0f, b = 0.0f;
        for (int k = 0; k < 8; k++) {
            w += sw[k][tx];
            b += sb[k][tx];
        }
        scratch[(size_t)blockIdx.y * C + c] = w;
        if (LN) scratch[(size_t)(chunks + blockIdx.y) * C + c] = b;
    }
}

// dweight (C) += the chunks' partials in chunk order; dbias (C) likewise; each skipped when NULL
// (a frozen parameter).
static __global__ void norm_param_final_kernel(float *dweight, float *dbias, const float *scratch,
                                               int chunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float w = 0.0f, b = 0.0f;
    if (dweight) {
        for (int k = 0; k < chunks; k++) w += scratch[(size_t)k * C + c];
        dweight[c] += w;
    }
    if (dbias) {
        for (int k = 0; k < chunks; k++) b += scratch[(size_t)(chunks + k) * C + c];
        dbias[c] += b;
    }
}

// ---- launchers --------------------------------------------------------------------------------

// Whether rows of C elements, per16 of them to 16 bytes, allow 16-byte accesses at these pointers.
static inline bool lc_norm_vec(int C, int per16, const void *a, const void *b, const void *c,
                               const void *d, const void *e) {
    return C % per16 == 0 && lc_aligned16(a) && lc_aligned16(b) && lc_aligned16(c) &&
           lc_aligned16(d) && lc_aligned16(e);
}

// T: float or __nv_bfloat16 for out, inp, weight, bias; mean and rstd are fp32.
template <class T>
static inline void cuda_layernorm_forward(T *out, float *mean, float *rstd, const T *inp,
                                          const T *weight, const T *bias, int N, int C,
                                          cudaStream_t stream) {
    if (N <= 0 || C <= 0) return;
    constexpr int V = lc_pack<T>::n;
    size_t grid = lc_ceil_div((size_t)N, LC_CUDA_BLOCK / 32);
    auto k = lc_norm_vec(C, V, out, inp, weight, bias, out) ? layernorm_forward_kernel<T, V>
                                                            : layernorm_forward_kernel<T, 1>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, out, mean, rstd, inp, weight, bias, N, C);
    LC_LAUNCH_CHECK();
}

// dinp, dout, inp, weight of T (dinp accumulated); dweight, dbias, mean, rstd fp32 (dweight,
// dbias each skipped when NULL); scratch: cuda_norm_backward_scratch(N, C) floats of device
// memory.
template <class T>
static inline void cuda_layernorm_backward(T *dinp, float *dweight, float *dbias, const T *dout,
                                           const T *inp, const T *weight, const float *mean,
                                           const float *rstd, float *scratch, int N, int C,
                                           cudaStream_t stream) {
    if (N <= 0 || C <= 0) return;
    constexpr int V = lc_pack<T>::n;
    size_t grid = lc_ceil_div((size_t)N, LC_CUDA_BLOCK / 32);
    auto k = lc_norm_vec(C, V, dinp, dout, inp, weight, dinp)
                 ? layernorm_backward_dinp_kernel<T, V>
                 : layernorm_backward_dinp_kernel<T, 1>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, dinp, dout, inp, weight, mean, rstd, N, C);
    LC_LAUNCH_CHECK();
    if (!dweight && !dbias) return; // both frozen: no parameter-gradient work
    int chunks = lc_norm_chunks(N);
    auto kp = norm_param_partial_kernel<T, true>;
    LC_LAUNCH(kp, dim3((unsigned)lc_ceil_div((size_t)C, 32), (unsigned)chunks), dim3(32, 8), 0,
              stream, scratch, dout, inp, mean, rstd, N, C);
    LC_LAUNCH_CHECK();
    LC_LAUNCH(norm_param_final_kernel, lc_ceil_div((size_t)C, LC_CUDA_BLOCK), LC_CUDA_BLOCK, 0,
              stream, dweight, dbias, scratch, chunks, C);
    LC_LAUNCH_CHECK();
}

// T: float or __nv_bfloat16 for out, inp, weight; rstd is fp32.
template <class T>
static inline void cuda_rmsnorm_forward(T *out, float *rstd, const T *inp, const T *weight, int N,
                                        int C, float eps, cudaStream_t stream) {
    if (N <= 0 || C <= 0) return;
    constexpr int V = lc_pack<T>::n;
    size_t grid = lc_ceil_div((size_t)N, LC_CUDA_BLOCK / 32);
    auto k = lc_norm_vec(C, V, out, inp, weight, out, out) ? rmsnorm_forward_kernel<T, V>
                                                           : rmsnorm_forward_kernel<T, 1>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, out, rstd, inp, weight, N, C, eps);
    LC_LAUNCH_CHECK();
}

// Types as cuda_layernorm_backward (dweight skipped when NULL); scratch:
// cuda_norm_backward_scratch(N, C) / 2 floats.
template <class T>
static inline void cuda_rmsnorm_backward(T *dinp, float *dweight, const T *dout, const T *inp,
                                         const T *weight, const float *rstd, float *scratch, int N,
                                         int C, cudaStream_t stream) {
    if (N <= 0 || C <= 0) return;
    constexpr int V = lc_pack<T>::n;
    size_t grid = lc_ceil_div((size_t)N, LC_CUDA_BLOCK / 32);
    auto k = lc_norm_vec(C, V, dinp, dout, inp, weight, dinp) ? rmsnorm_backward_dinp_kernel<T, V>
                                                              : rmsnorm_backward_dinp_kernel<T, 1>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, dinp, dout, inp, weight, rstd, N, C);
    LC_LAUNCH_CHECK();
    if (!dweight) return; // frozen: no parameter-gradient work
    int chunks = lc_norm_chunks(N);
    auto kp = norm_param_partial_kernel<T, false>;
    LC_LAUNCH(kp, dim3((unsigned)lc_ceil_div((size_t)C, 32), (unsigned)chunks), dim3(32, 8), 0,
              stream, scratch, dout, inp, (const float *)nullptr, rstd, N, C);
    LC_LAUNCH_CHECK();
    LC_LAUNCH(norm_param_final_kernel, lc_ceil_div((size_t)C, LC_CUDA_BLOCK), LC_CUDA_BLOCK, 0,
              stream, dweight, (float *)nullptr, scratch, chunks, C);
    LC_LAUNCH_CHECK();
}
