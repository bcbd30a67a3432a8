// kernels/cuda/classifier.cuh: the row-wise parts of the output layer fused with softmax and
// cross-entropy (kernels/kernels.h: classifier_forward/backward; the reference is
// kernels/cpu/classifier.c). The matrix products around them (logits = inv_temp x @ wte^T,
// dx = dlogits @ wte, dwte += dlogits^T @ x) are cuBLASLt's, in ops.cu.
//
// One block per row, its threads striding over the columns; the row statistics are fp32 block
// reductions in a fixed order (per-thread partials over a fixed stride, then lc_block_sum's warp
// butterflies), so a given row gives the same bits on every run. Max subtraction before exp.
// The logits (and the dlogits written over them) are of T, float or __nv_bfloat16; lse, logp,
// entropy and all arithmetic are fp32.
#pragma once
#include "kernels/cuda/common.cuh"

// Block n, per row of logits (N,Vp) (already scaled by inv_temp), over its V real columns
// (1 <= V <= Vp; columns V..Vp-1 are not read):
//   lse[n] = log sum_v exp(z_v);  logp[n] = z_target - lse (0 where targets[n] < 0);
//   entropy[n] = lse - sum_v p_v z_v  (entropy may be NULL).
// lse, logp, entropy (N) written; targets (N), each < V.
template <class T>
static __global__ void classifier_row_forward_kernel(float *logp, float *entropy, float *lse,
                                                     const T *logits, const int *targets, int V,
                                                     int Vp) {
    int n = blockIdx.x;
    const T *z = logits + (size_t)n * Vp;
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, lc_to_float(z[v]));
    m = lc_block_max(m);
    float s = 0.0f, spz = 0.0f; // sum e, sum e (z - m), e = exp(z - m)
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float d = lc_to_float(z[v]) - m, e = expf(d);
        s += e;
        spz += e * d;
    }
    s = lc_block_sum(s);
    spz = lc_block_sum(spz);
    if (threadIdx.x == 0) {
        float l = logf(s); // lse relative to m
        lse[n] = m + l;
        int t = targets[n];
        logp[n] = t >= 0 ? (lc_to_float(z[t]) - m) - l : 0.0f;
        if (entropy) entropy[n] = l - spz / s;
    }
}

// Block n, per row of logits (N,Vp) as the forward left it: OVERWRITTEN with dlogits,
// with p_v = exp(z_v - lse[n]), H = entropy[n] (0 when entropy is NULL), gl = dlogp[n] (0 where
// targets[n] < 0) and ge = dent[n] (0 when dent is NULL):
//   dz_v = inv_temp (gl (1[v = target] - p_v) - ge p_v (log p_v + H))  for v < V,
//   dz_v = 0 for V <= v < Vp, and the whole row 0 when gl = ge = 0 (no exp computed).
// lse, entropy, dlogp, dent, targets (N). Each dz_v rounded once to T.
template <class T>
static __global__ void classifier_row_backward_kernel(T *logits, const float *lse,
                                                      const float *entropy, const int *targets,
                                                      const float *dlogp, const float *dent, int V,
                                                      int Vp, float inv_temp) {
    int n = blockIdx.x;
    T *z = logits + (size_t)n * Vp;
    int t = targets[n];
    float gl = t >= 0 ? dlogp[n] : 0.0f, ge = dent ? dent[n] : 0.0f;
    if (gl == 0.0f && ge == 0.0f) {
        for (int v = threadIdx.x; v < Vp; v += blockDim.x) z[v] = lc_from_float<T>(0.0f);
        return;
    }
    float l = lse[n], H = entropy ? entropy[n] : 0.0f;
    for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
        float g = 0.0f;
        if (v < V) {
            float logpv = lc_to_float(z[v]) - l, p = expf(logpv);
            g = inv_temp * (-gl * p - ge * p * (logpv + H));
            if (v == t) g += inv_temp * gl;
        }
        z[v] = lc_from_float<T>(g);
    }
}

// ---- launchers --------------------------------------------------------------------------------

// logits (N,Vp) of T already inv_temp x @ wte^T; lse, logp (N) and entropy (N, or NULL) written.
template <class T>
static inline void cuda_classifier_rows_forward(float *logp, float *entropy, float *lse,
                                                const T *logits, const int *targets, int N, int V,
                                                int Vp, cudaStream_t stream) {
    if (N <= 0 || V <= 0) return;
    auto k = classifier_row_forward_kernel<T>;
    LC_LAUNCH(k, (unsigned)N, LC_CUDA_BLOCK, 0, stream, logp, entropy, lse, logits, targets, V, Vp);
    LC_LAUNCH_CHECK();
}

// logits (N,Vp) of T overwritten with dlogits; entropy and dent may be NULL.
template <class T>
static inline void cuda_classifier_rows_backward(T *logits, const float *lse, const float *entropy,
                                                 const int *targets, const float *dlogp,
                                                 const float *dent, int N, int V, int Vp,
                                                 float inv_temp, cudaStream_t stream) {
    if (N <= 0 || Vp <= 0) return;
    auto k = classifier_row_backward_kernel<T>;
    LC_LAUNCH(k, (unsigned)N, LC_CUDA_BLOCK, 0, stream, logits, lse, entropy, targets, dlogp, dent,
              V, Vp, inv_temp);
    LC_LAUNCH_CHECK();
}
