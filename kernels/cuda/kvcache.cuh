// kernels/cuda/kvcache.cuh: the key/value cache of incremental decoding (kernels/kernels.h:
// kvcache_write, attention_decode), for E = float or __nv_bfloat16 (the cache and qkv of E, the
// scores, softmax and weighted sum in fp32).
#pragma once
#include "kernels/cuda/common.cuh"

// kcache, vcache (B,maxT,NKV*hs): positions start[b] + t (start NULL: 0) written from the key
// and value heads of qkv (B,T,(NH+2NKV)hs), the row's NH query heads skipped; positions >= maxT
// dropped. One thread per (row, channel) of the KV = NKV*hs channels, writing both caches (a
// copy: the cache has qkv's type E).
template <class E>
static __global__ void kvcache_write_kernel(E *kcache, E *vcache, const E *qkv, const int *start,
                                            int B, int T, int maxT, int NH, int KV, int hs) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * KV) return;
    int c = (int)(i % KV);
    size_t bt = i / KV;
    int b = (int)(bt / T), t = (int)(bt % T);
    int p = (start ? start[b] : 0) + t;
    if (p >= maxT) return;
    const E *src = qkv + bt * (size_t)(NH * hs + 2 * KV) + (size_t)NH * hs;
    size_t dst = ((size_t)b * maxT + p) * KV + c;
    kcache[dst] = src[c];
    vcache[dst] = src[KV + c];
}

template <class E>
static inline void cuda_kvcache_write(E *kcache, E *vcache, const E *qkv, const int *start, int B,
                                      int T, int maxT, int NH, int NKV, int hs,
                                      cudaStream_t stream) {
    size_t n = (size_t)B * T * NKV * hs;
    if (n == 0 || maxT <= 0) return;
    auto k = kvcache_write_kernel<E>;
    LC_LAUNCH(k, lc_ceil_div(n, LC_CUDA_BLOCK), LC_CUDA_BLOCK, 0, stream, kcache, vcache, qkv,
              start, B, T, maxT, NH, NKV * hs, hs);
    LC_LAUNCH_CHECK();
}

// Threads per block of attention_decode (whole warps).
#define LC_DECODE_BLOCK 128

// out (B,NH*hs) written: query head h of row b (qkv (B,(NH+2NKV)hs)) attends to the cached
// positions 0..pos[b] of key/value head h / (NH/NKV) (kcache, vcache (B,maxT,NKV*hs)), scale
// 1/sqrt(hs), softmax with the maximum subtracted. One block per (h, b): each warp takes every
// nwarps-th position, its lanes splitting the dot product (a butterfly sum), and the scores
// stay in dynamic shared memory (maxT floats, then blockDim partial outputs). The weighted sum of
// values: thread t takes channel t % hs of the positions g, g + G, ... (g = t / hs, G =
// blockDim / hs groups), the groups' partials summed in order; for hs > blockDim each thread
// loops over channels t, t + blockDim, ... over all positions. out, qkv, caches of E.
template <class E>
static __global__ void attention_decode_kernel(E *out, const E *qkv, const E *kcache,
                                               const E *vcache, const int *pos, int maxT, int NH,
                                               int NKV, int hs) {
    LC_DYN_SHARED(float, smem);
    float *score = smem, *part = smem + maxT;
    int h = blockIdx.x, b = blockIdx.y, KV = NKV * hs;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    const E *q = qkv + (size_t)b * (NH + 2 * NKV) * hs + (size_t)h * hs;
    size_t koff = (size_t)(h / (NH / NKV)) * hs;
    const E *kb = kcache + (size_t)b * maxT * KV + koff;
    const E *vb = vcache + (size_t)b * maxT * KV + koff;
    int last = min(pos[b], maxT - 1);
    float scale = 1.0f / sqrtf((float)hs);

    for (int s = warp; s <= last; s += nwarps) {
        const E *k = kb + (size_t)s * KV;
        float dot = 0.0f;
        for (int i = lane; i < hs; i += 32) dot += lc_to_float(q[i]) * lc_to_float(k[i]);
        dot = lc_warp_sum(dot);
        if (lane == 0) score[s] = dot * scale;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int s = threadIdx.x; s <= last; s += blockDim.x) m = fmaxf(m, score[s]);
    m = lc_block_max(m);
    float sum = 0.0f;
    for (int s = threadIdx.x; s <= last; s += blockDim.x) {
        float e = expf(score[s] - m);
        score[s] = e;
        sum += e;
    }
    float inv = 1.0f / lc_block_sum(sum); // its barriers also publish the exponentials

    E *o = out + (size_t)b * NH * hs + (size_t)h * hs;
    if (hs > (int)blockDim.x) {
        for (int i = threadIdx.x; i < hs; i += blockDim.x) {
            float acc = 0.0f;
            for (int s = 0; s <= last; s++) acc += score[s] * lc_to_float(vb[(size_t)s * KV + i]);
            o[i] = lc_from_float<E>(acc * inv);
        }
        return;
    }
    int G = blockDim.x / hs, g = threadIdx.x / hs, i = threadIdx.x % hs;
    if (g < G) {
        float acc = 0.0f;
        for (int s = g; s <= last; s += G) acc += score[s] * lc_to_float(vb[(size_t)s * KV + i]);
        part[g * hs + i] = acc;
    }
    __syncthreads();
    if (threadIdx.x < hs) {
        float acc = 0.0f;
        for (int gg = 0; gg < G; gg++) acc += part[gg * hs + threadIdx.x];
        o[threadIdx.x] = lc_from_float<E>(acc * inv);
    }
}

// The dynamic shared memory attention_decode needs for maxT cached positions, in bytes.
static inline size_t cuda_attention_decode_smem(int maxT) {
    return ((size_t)maxT + LC_DECODE_BLOCK) * sizeof(float);
}

// Launches attention_decode; false (nothing launched) when maxT positions of scores do not fit
// the device's shared memory per block.
template <class E>
static inline bool cuda_attention_decode(E *out, const E *qkv, const E *kcache, const E *vcache,
                                         const int *pos, int B, int maxT, int NH, int NKV, int hs,
                                         cudaStream_t stream) {
    if (B <= 0 || NH <= 0 || maxT <= 0) return true;
    size_t smem = cuda_attention_decode_smem(maxT);
    auto kernel = attention_decode_kernel<E>;
#if defined(LC_CUDA_EMULATED)
    if (smem > 227 * 1024) return false;
#else
    if (smem > 48 * 1024) { // over the default: opt in, up to the device's limit
        int dev = 0, optin = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
                cudaSuccess ||
            smem > (size_t)optin ||
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
                cudaSuccess)
            return false;
    }
#endif
    LC_LAUNCH(kernel, dim3(NH, B), LC_DECODE_BLOCK, smem, stream, out, qkv, kcache, vcache, pos,
              maxT, NH, NKV, hs);
    LC_LAUNCH_CHECK();
    return true;
}
