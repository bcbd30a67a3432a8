// kernels/cuda/attention.cuh: causal grouped-query self-attention with segment masking
// (kernels/kernels.h: attention_forward, attention_backward), fp32. The Backend contract writes
// the (B,NH,T,T) probabilities, so this is the plain materialising form, not flash-style: one
// block per query row, the row's scores in dynamic shared memory. Every sum has a fixed order
// (block reductions, partials added in sequence), and nothing uses atomics, so the results are
// the same bits under any schedule.
#pragma once
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kvcache.cuh"

// Threads per block of the attention kernels (whole warps).
#define LC_ATT_BLOCK 128

// Whether query t of row b sees key s: s <= t and, with seg (B,T), the same segment.
static __device__ __forceinline__ bool lc_att_visible(const int *seg, int b, int T, int t, int s) {
    return s <= t && (!seg || seg[(size_t)b * T + s] == seg[(size_t)b * T + t]);
}

// acc[i] (i < hs) = sum over s in 0..n-1 of w[s] * x[s*stride + i], written to dst[i]: thread
// (g, i) = (threadIdx / hs, threadIdx % hs) sums the positions g, g + G, ... (G = blockDim / hs
// groups) into part[g*hs + i], then threads i < hs add the G partials in order. For hs >
// blockDim each thread takes channels i, i + blockDim, ... over all positions. w and part in
// shared memory (part blockDim floats); every thread of the block must call it.
static __device__ void lc_att_weighted_sum(float *dst, const float *w, const float *x,
                                           size_t stride, int n, int hs, float *part) {
    if (hs > (int)blockDim.x) {
        for (int i = threadIdx.x; i < hs; i += blockDim.x) {
            float acc = 0.0f;
            for (int s = 0; s < n; s++) acc += w[s] * x[(size_t)s * stride + i];
            dst[i] = acc;
        }
        return;
    }
    int G = blockDim.x / hs, g = threadIdx.x / hs, i = threadIdx.x % hs;
    if (g < G) {
        float acc = 0.0f;
        for (int s = g; s < n; s += G) acc += w[s] * x[(size_t)s * stride + i];
        part[g * hs + i] = acc;
    }
    __syncthreads();
    if ((int)threadIdx.x < hs) {
        float acc = 0.0f;
        for (int gg = 0; gg < G; gg++) acc += part[gg * hs + threadIdx.x];
        dst[threadIdx.x] = acc;
    }
}

// out (B,T,NH*hs) written; att (B,NH,T,T) written; qkv (B,T,(NH+2NKV)hs); seg (B,T) or NULL.
// One block per (t, h, b): each warp takes every nwarps-th key s <= t, its lanes splitting the
// dot product; scores scaled by 1/sqrt(hs), masked ones -inf; softmax with the row maximum
// subtracted (block reductions); the att row written in full (0 for masked keys and s > t); out
// row = sum_s att[s] v_s. Dynamic shared memory: T scores, then blockDim partials.
static __global__ void attention_forward_kernel(float *out, float *att, const float *qkv,
                                                const int *seg, int T, int NH, int NKV, int hs) {
    LC_DYN_SHARED(float, smem);
    float *p = smem, *part = smem + T;
    int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    size_t row = (size_t)(NH + 2 * NKV) * hs;
    int kv = h / (NH / NKV);
    const float *base = qkv + (size_t)b * T * row;
    const float *q = base + (size_t)t * row + (size_t)h * hs;
    const float *kb = base + (size_t)(NH + kv) * hs, *vb = base + (size_t)(NH + NKV + kv) * hs;
    float scale = 1.0f / sqrtf((float)hs);

    for (int s = warp; s <= t; s += nwarps) {
        const float *k = kb + (size_t)s * row;
        float dot = 0.0f;
        for (int i = lane; i < hs; i += 32) dot += q[i] * k[i];
        dot = lc_warp_sum(dot);
        if (lane == 0) p[s] = lc_att_visible(seg, b, T, t, s) ? dot * scale : -INFINITY;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int s = threadIdx.x; s <= t; s += blockDim.x) m = fmaxf(m, p[s]);
    m = lc_block_max(m); // finite: s == t is always visible
    float sum = 0.0f;
    for (int s = threadIdx.x; s <= t; s += blockDim.x) {
        float e = expf(p[s] - m); // exactly 0 for the masked -inf
        p[s] = e;
        sum += e;
    }
    float inv = 1.0f / lc_block_sum(sum); // its barriers also publish the exponentials
    float *a = att + (((size_t)b * NH + h) * T + t) * T;
    for (int s = threadIdx.x; s < T; s += blockDim.x) {
        float v = s <= t ? p[s] * inv : 0.0f;
        if (s <= t) p[s] = v;
        a[s] = v;
    }
    __syncthreads();
    float *o = out + ((size_t)b * T + t) * NH * hs + (size_t)h * hs;
    lc_att_weighted_sum(o, p, vb, row, t + 1, hs, part);
}

// Backward, first pass. One block per (t, h, b): dP[s] = dO_t . v_s (s <= t), then
// dS[s] = P[s] (dP[s] - sum_s' P[s'] dP[s']) / sqrt(hs) written to datt's row (0 for s > t;
// masked keys have P == 0, so dS == 0), and dQ_t = sum_s dS[s] k_s written to dqkv's query head.
// Dynamic shared memory: T floats of dS, then blockDim partials.
static __global__ void attention_backward_dq_kernel(float *dqkv, float *datt, const float *dout,
                                                    const float *qkv, const float *att, int T,
                                                    int NH, int NKV, int hs) {
    LC_DYN_SHARED(float, smem);
    float *ds = smem, *part = smem + T;
    int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    size_t row = (size_t)(NH + 2 * NKV) * hs;
    int kv = h / (NH / NKV);
    const float *base = qkv + (size_t)b * T * row;
    const float *kb = base + (size_t)(NH + kv) * hs, *vb = base + (size_t)(NH + NKV + kv) * hs;
    const float *d = dout + ((size_t)b * T + t) * NH * hs + (size_t)h * hs;
    size_t arow = (((size_t)b * NH + h) * T + t) * T;
    const float *pr = att + arow;
    float scale = 1.0f / sqrtf((float)hs);

    for (int s = warp; s <= t; s += nwarps) {
        const float *v = vb + (size_t)s * row;
        float dot = 0.0f;
        for (int i = lane; i < hs; i += 32) dot += d[i] * v[i];
        dot = lc_warp_sum(dot);
        if (lane == 0) ds[s] = dot;
    }
    __syncthreads();
    float pd = 0.0f;
    for (int s = threadIdx.x; s <= t; s += blockDim.x) pd += pr[s] * ds[s];
    pd = lc_block_sum(pd);
    float *dr = datt + arow;
    for (int s = threadIdx.x; s < T; s += blockDim.x) {
        float v = s <= t ? pr[s] * (ds[s] - pd) * scale : 0.0f;
        if (s <= t) ds[s] = v;
        dr[s] = v;
    }
    __syncthreads();
    float *dq = dqkv + ((size_t)b * T + t) * row + (size_t)h * hs;
    lc_att_weighted_sum(dq, ds, kb, row, t + 1, hs, part);
}

// Backward, second pass. One block per (s, kv, b): key/value head kv at position s gathers
// dK_s = sum_j sum_{t >= s} dS[h_j, t, s] q_{t, h_j} and dV_s = sum_j sum_{t >= s} P[h_j, t, s]
// dO_{t, h_j} over the NH/NKV query heads h_j of its group, the (j, t) terms enumerated as
// n = j*(T-s) + (t-s) and summed as lc_att_weighted_sum does (fixed order, no atomics). Writes
// dqkv's key and value heads. Static shared memory: 2*LC_ATT_BLOCK partials.
static __global__ void attention_backward_dkv_kernel(float *dqkv, const float *datt,
                                                     const float *dout, const float *qkv,
                                                     const float *att, int T, int NH, int NKV,
                                                     int hs) {
    __shared__ float part[2 * LC_ATT_BLOCK];
    int s = blockIdx.x, kv = blockIdx.y, b = blockIdx.z;
    int group = NH / NKV, rows = T - s, n = group * rows;
    size_t row = (size_t)(NH + 2 * NKV) * hs, C = (size_t)NH * hs;
    const float *base = qkv + (size_t)b * T * row;
    float *dk = dqkv + ((size_t)b * T + s) * row + (size_t)(NH + kv) * hs;
    float *dv = dqkv + ((size_t)b * T + s) * row + (size_t)(NH + NKV + kv) * hs;
    if (hs > (int)blockDim.x) {
        for (int i = threadIdx.x; i < hs; i += blockDim.x) {
            float ak = 0.0f, av = 0.0f;
            for (int e = 0; e < n; e++) {
                int h = kv * group + e / rows, t = s + e % rows; // e = j*rows + (t - s)
                size_t ai = (((size_t)b * NH + h) * T + t) * T + s;
                ak += datt[ai] * base[(size_t)t * row + (size_t)h * hs + i];
                av += att[ai] * dout[((size_t)b * T + t) * C + (size_t)h * hs + i];
            }
            dk[i] = ak;
            dv[i] = av;
        }
        return;
    }
    int G = blockDim.x / hs, g = threadIdx.x / hs, i = threadIdx.x % hs;
    if (g < G) {
        float ak = 0.0f, av = 0.0f;
        for (int e = g; e < n; e += G) {
            int h = kv * group + e / rows, t = s + e % rows;
            size_t ai = (((size_t)b * NH + h) * T + t) * T + s;
            ak += datt[ai] * base[(size_t)t * row + (size_t)h * hs + i];
            av += att[ai] * dout[((size_t)b * T + t) * C + (size_t)h * hs + i];
        }
        part[g * hs + i] = ak;
        part[LC_ATT_BLOCK + g * hs + i] = av;
    }
    __syncthreads();
    if ((int)threadIdx.x < hs) {
        float ak = 0.0f, av = 0.0f;
        for (int gg = 0; gg < G; gg++) {
            ak += part[gg * hs + threadIdx.x];
            av += part[LC_ATT_BLOCK + gg * hs + threadIdx.x];
        }
        dk[threadIdx.x] = ak;
        dv[threadIdx.x] = av;
    }
}

// The dynamic shared memory of the forward and first backward kernel for T positions, in bytes.
static inline size_t cuda_attention_smem(int T) {
    return ((size_t)T + LC_ATT_BLOCK) * sizeof(float);
}

// Whether a kernel may use smem bytes of dynamic shared memory (opting in past the default 48
// KiB, up to the device's limit).
template <class K> static inline bool lc_att_allow_smem(K kernel, size_t smem) {
#if defined(LC_CUDA_EMULATED)
    (void)kernel;
    return smem <= 227 * 1024;
#else
    if (smem <= 48 * 1024) return true;
    int dev = 0, optin = 0;
    return cudaGetDevice(&dev) == cudaSuccess &&
           cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) ==
               cudaSuccess &&
           smem <= (size_t)optin &&
           cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) ==
               cudaSuccess;
#endif
}

// Launches attention_forward (shapes above); false (nothing launched) when T positions of scores
// do not fit the device's shared memory per block. NH a multiple of NKV.
static inline bool cuda_attention_forward(float *out, float *att, const float *qkv, const int *seg,
                                          int B, int T, int NH, int NKV, int hs,
                                          cudaStream_t stream) {
    if (B <= 0 || T <= 0 || NH <= 0) return true;
    size_t smem = cuda_attention_smem(T);
    if (!lc_att_allow_smem(attention_forward_kernel, smem)) return false;
    LC_LAUNCH(attention_forward_kernel, dim3(T, NH, B), LC_ATT_BLOCK, smem, stream, out, att, qkv,
              seg, T, NH, NKV, hs);
    LC_LAUNCH_CHECK();
    return true;
}

// Launches attention_backward: dqkv (B,T,(NH+2NKV)hs) written, datt (B,NH,T,T) overwritten with
// dS; dout (B,T,NH*hs); qkv, att as in the forward (seg is not needed: masked entries of att are
// exactly 0). False (nothing launched) when the shared memory does not fit, as the forward.
static inline bool cuda_attention_backward(float *dqkv, float *datt, const float *dout,
                                           const float *qkv, const float *att, int B, int T, int NH,
                                           int NKV, int hs, cudaStream_t stream) {
    if (B <= 0 || T <= 0 || NH <= 0) return true;
    size_t smem = cuda_attention_smem(T);
    if (!lc_att_allow_smem(attention_backward_dq_kernel, smem)) return false;
    LC_LAUNCH(attention_backward_dq_kernel, dim3(T, NH, B), LC_ATT_BLOCK, smem, stream, dqkv, datt,
              dout, qkv, att, T, NH, NKV, hs);
    LC_LAUNCH_CHECK();
    LC_LAUNCH(attention_backward_dkv_kernel, dim3(T, NKV, B), LC_ATT_BLOCK, 0, stream, dqkv, datt,
              dout, qkv, att, T, NH, NKV, hs);
    LC_LAUNCH_CHECK();
    return true;
}
