// kernels/cuda/optim.cuh: the optimiser update and the reductions over flat arenas
// (kernels/kernels.h: adamw_update, scale, sum_squares).
#pragma once
#include "kernels/cuda/common.cuh"

// ---- AdamW ------------------------------------------------------------------------------------
// m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr * ((m/bc1) / (sqrt(v/bc2) + eps) + wd p)
__device__ __forceinline__ void lc_adamw_one(float &p, float g, float &m, float &v, float lr,
                                             float beta1, float beta2, float eps, float wd,
                                             float bc1, float bc2) {
    float mi = beta1 * m + (1.0f - beta1) * g;
    float vi = beta2 * v + (1.0f - beta2) * g * g;
    m = mi;
    v = vi;
    float mhat = mi / bc1, vhat = vi / bc2;
    p -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p);
}

// param, m, v (n) updated (fp32); grad (n) read (fp32); param_act (n) of T, when not NULL,
// written = the updated param rounded to T (the compute copy). One thread per 4 consecutive
// elements, float4 accesses when vec (the four fp32 pointers 16-byte aligned); the 4 elements
// of param_act stored one by one (8 bytes for bf16).
template <class T>
static __global__ void adamw_update_kernel(float *param, T *param_act, const float *grad, float *m,
                                           float *v, size_t n, float lr, float beta1, float beta2,
                                           float eps, float wd, float bc1, float bc2, bool vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= n) return;
    if (vec && i + 4 <= n) {
        float p[4], g[4], mm[4], vv[4];
        lc_load<4>(p, param + i);
        lc_load<4>(g, grad + i);
        lc_load<4>(mm, m + i);
        lc_load<4>(vv, v + i);
        for (int k = 0; k < 4; k++)
            lc_adamw_one(p[k], g[k], mm[k], vv[k], lr, beta1, beta2, eps, wd, bc1, bc2);
        lc_store<4>(param + i, p);
        lc_store<4>(m + i, mm);
        lc_store<4>(v + i, vv);
        if (param_act)
            for (int k = 0; k < 4; k++) param_act[i + k] = lc_from_float<T>(p[k]);
    } else {
        for (size_t k = i; k < n && k < i + 4; k++) {
            lc_adamw_one(param[k], grad[k], m[k], v[k], lr, beta1, beta2, eps, wd, bc1, bc2);
            if (param_act) param_act[k] = lc_from_float<T>(param[k]);
        }
    }
}

// param_act (n) of T or NULL; the rest fp32 (kernels/kernels.h: adamw_update).
template <class T>
static inline void cuda_adamw_update(float *param, T *param_act, const float *grad, float *m,
                                     float *v, size_t n, float lr, float beta1, float beta2,
                                     float eps, float weight_decay, float bc1, float bc2,
                                     cudaStream_t stream) {
    if (n == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(n, 4), LC_CUDA_BLOCK);
    bool vec = lc_aligned16(param) && lc_aligned16(grad) && lc_aligned16(m) && lc_aligned16(v);
    auto k = adamw_update_kernel<T>;
    LC_LAUNCH(k, grid, LC_CUDA_BLOCK, 0, stream, param, param_act, grad, m, v, n, lr, beta1, beta2,
              eps, weight_decay, bc1, bc2, vec);
    LC_LAUNCH_CHECK();
}

// ---- scale ------------------------------------------------------------------------------------
// x (n) *= s. One thread per 4 consecutive elements, a float4 access when vec.
static __global__ void scale_kernel(float *x, float s, size_t n, bool vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i >= n) return;
    if (vec && i + 4 <= n) {
        float v[4];
        lc_load<4>(v, x + i);
        for (int k = 0; k < 4; k++) v[k] *= s;
        lc_store<4>(x + i, v);
    } else {
        for (size_t k = i; k < n && k < i + 4; k++) x[k] *= s;
    }
}

static inline void cuda_scale(float *x, float s, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    size_t grid = lc_ceil_div(lc_ceil_div(n, 4), LC_CUDA_BLOCK);
    LC_LAUNCH(scale_kernel, grid, LC_CUDA_BLOCK, 0, stream, x, s, n, lc_aligned16(x));
    LC_LAUNCH_CHECK();
}

// ---- sum of squares ---------------------------------------------------------------------------
// Deterministic: two passes with a fixed grid for a given n and fixed-order reductions, no
// atomics, so a given n and input give the same bits on every run and every GPU.
#define LC_SSQ_BLOCKS 512 // the most partial sums of pass 1: the doubles of `scratch`

// Pass 1: block b writes partial[b] = sum of x[i]^2 (in double) over its grid-stride share.
// vec (x 16-byte aligned): the n/4 float4s grid-strided, the n%4 tail elements by the first
// threads of the grid.
static __global__ void sum_squares_partial_kernel(double *partial, const float *x, size_t n,
                                                  bool vec) {
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    double acc = 0.0;
    if (vec) {
        size_t n4 = n / 4;
        for (size_t i = tid; i < n4; i += stride) {
            float v[4];
            lc_load<4>(v, x + 4 * i);
            for (int k = 0; k < 4; k++) acc += (double)v[k] * v[k];
        }
        if (tid < n % 4) acc += (double)x[4 * n4 + tid] * x[4 * n4 + tid];
    } else {
        for (size_t i = tid; i < n; i += stride) acc += (double)x[i] * x[i];
    }
    acc = lc_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2, one block: out[0] = the sum of partial[0..nblocks) in a fixed order.
static __global__ void sum_squares_final_kernel(double *out, const double *partial, int nblocks) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < nblocks; i += blockDim.x) acc += partial[i];
    acc = lc_block_sum(acc);
    if (threadIdx.x == 0) out[0] = acc;
}

// out (1 double, device) written = sum of x[i]^2 over x (n); scratch: LC_SSQ_BLOCKS doubles.
static inline void cuda_sum_squares(double *out, double *scratch, const float *x, size_t n,
                                    cudaStream_t stream) {
    size_t nblocks = lc_ceil_div(n, (size_t)LC_CUDA_BLOCK * 8); // >= 8 elements per thread
    if (nblocks > LC_SSQ_BLOCKS) nblocks = LC_SSQ_BLOCKS;
    if (nblocks > 0) {
        LC_LAUNCH(sum_squares_partial_kernel, nblocks, LC_CUDA_BLOCK, 0, stream, scratch, x, n,
                  lc_aligned16(x));
        LC_LAUNCH_CHECK();
    }
    LC_LAUNCH(sum_squares_final_kernel, 1, LC_CUDA_BLOCK, 0, stream, out, scratch, (int)nblocks);
    LC_LAUNCH_CHECK();
}
