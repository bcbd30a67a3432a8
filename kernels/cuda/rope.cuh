// kernels/cuda/rope.cuh: rotary position embedding, rotate-npair convention (kernels/kernels.h:
// rope_forward, rope_backward).
#pragma once
#include "kernels/cuda/common.cuh"

// Rotates, in place, the q and k heads of qkv (B*T rows of (NH + 2 NKV) hs) by +a (dir 1, the
// forward) or -a (dir -1, the backward: RoPE is orthogonal), a = pos[n] * theta^(-2i/hs), the
// frequency and angle computed in fp32 as transformers and the CPU backend do. One thread per
// (row, head, pair i < hs/2): consecutive threads take consecutive i, so a warp reads two
// contiguous runs of a head (x[i] and x[i + hs/2]). qkv of E (float or __nv_bfloat16), the
// rotation in fp32, each result rounded once.
template <class E>
static __global__ void rope_kernel(E *qkv, const int *pos, int BT, int NH, int NKV, int hs,
                                   float theta, float dir) {
    int npair = hs / 2, heads = NH + NKV;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)BT * heads * npair) return;
    int i = (int)(idx % npair);
    size_t nh = idx / npair;
    int h = (int)(nh % heads);
    size_t n = nh / heads;
    float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hs);
    float a = (float)pos[n] * inv_freq, sn, cs;
    // sincosf's slow path for large arguments uses a local-memory array (a stack frame the
    // build gate refuses): reduce the fp32 angle to [-pi, pi] in double, exactly enough, then
    // the fast intrinsic (absolute error about 4e-7 on that interval)
    double r = (double)a - 6.283185307179586 * rint((double)a * 0.15915494309189535);
    __sincosf((float)r, &sn, &cs);
    sn *= dir;
    E *x = qkv + n * (size_t)(NH + 2 * NKV) * hs + (size_t)h * hs;
    float x0 = lc_to_float(x[i]), x1 = lc_to_float(x[i + npair]);
    x[i] = lc_from_float<E>(x0 * cs - x1 * sn);
    x[i + npair] = lc_from_float<E>(x1 * cs + x0 * sn);
}

template <class E>
static inline void cuda_rope_apply(E *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                                   float theta, float dir, cudaStream_t stream) {
    size_t total = (size_t)B * T * (NH + NKV) * (hs / 2);
    if (total == 0) return;
    auto k = rope_kernel<E>;
    LC_LAUNCH(k, lc_ceil_div(total, LC_CUDA_BLOCK), LC_CUDA_BLOCK, 0, stream, qkv, pos, B * T, NH,
              NKV, hs, theta, dir);
    LC_LAUNCH_CHECK();
}

// qkv (B,T,QKV) of E rotated in place; pos (B,T); hs even.
template <class E>
static inline void cuda_rope_forward(E *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                                     float theta, cudaStream_t stream) {
    cuda_rope_apply(qkv, pos, B, T, NH, NKV, hs, theta, 1.0f, stream);
}

// dqkv (B,T,QKV) of E rotated back (by -a) in place.
template <class E>
static inline void cuda_rope_backward(E *dqkv, const int *pos, int B, int T, int NH, int NKV,
                                      int hs, float theta, cudaStream_t stream) {
    cuda_rope_apply(dqkv, pos, B, T, NH, NKV, hs, theta, -1.0f, stream);
}
