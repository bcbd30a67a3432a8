// The output layer fused with softmax and cross-entropy. The logits buffer is the only
// (N,Vp) tensor: the forward fills it, the backward overwrites it with dlogits in place.
// Shapes in kernels/kernels.h. Row reductions accumulate in double (vectorised in a fixed
// order chosen at compile time, so results do not depend on the thread count).
#include "kernels/cpu/cpu.h"
#include "kernels/vmath.h"
#include <math.h>
#include <string.h>

// logits (N,Vp) = inv_temp * x @ wte^T; per row over the V real columns:
//   lse = log sum_v exp(z_v);  logp = z_target - lse;  entropy = lse - sum_v p_v z_v.
void cpu_classifier_forward(float *logp, float *entropy, float *lse, float *logits, const float *x,
                            const float *wte, const int *targets, int N, int C, int V, int Vp,
                            float inv_temp) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Vp, C, inv_temp, x, C, wte, C, 0.0f,
                logits, Vp);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * Vp;
        float maxv = -INFINITY;
        for (int v = 0; v < V; v++) maxv = z[v] > maxv ? z[v] : maxv;
        double sum = 0.0, sum_pz = 0.0;
#pragma omp simd reduction(+ : sum, sum_pz)
        for (int v = 0; v < V; v++) {
            float e = lc_expf(z[v] - maxv);
            sum += e;
            sum_pz += (double)e * (z[v] - maxv);
        }
        double l = log(sum); // lse relative to maxv
        lse[n] = maxv + (float)l;
        logp[n] = targets[n] >= 0 ? (float)((double)(z[targets[n]] - maxv) - l) : 0.0f;
        if (entropy) entropy[n] = (float)(l - sum_pz / sum);
    }
}

// With p_v = exp(z_v - lse) and H = entropy[n]:
//   dz_v = inv_temp * ( dlogp (1[v = target] - p_v) - dent p_v (log p_v + H) )
// logits (N,Vp) overwritten with dlogits (padded columns 0); dx (N,C) written; dwte (Vp,C) +=
// (skipped when NULL: a frozen output layer).
void cpu_classifier_backward(float *dx, float *dwte, float *logits, const float *x,
                             const float *wte, const float *lse, const float *entropy,
                             const int *targets, const float *dlogp, const float *dent, int N,
                             int C, int V, int Vp, float inv_temp) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * Vp;
        float gl = targets[n] >= 0 ? dlogp[n] : 0.0f;
        float ge = dent ? dent[n] : 0.0f;
        if (gl == 0.0f && ge == 0.0f) {
            memset(z, 0, sizeof(float) * (size_t)Vp);
            continue;
        }
        float l = lse[n], H = entropy ? entropy[n] : 0.0f;
#pragma omp simd
        for (int v = 0; v < V; v++) {
            float logpv = z[v] - l;
            float p = lc_expf(logpv);
            z[v] = inv_temp * (-gl * p - ge * p * (logpv + H));
        }
        if (gl != 0.0f) z[targets[n]] += inv_temp * gl;
        for (int v = V; v < Vp; v++) z[v] = 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, Vp, 1.0f, logits, Vp, wte, C, 0.0f,
                dx, C);
    if (dwte)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Vp, C, N, 1.0f, logits, Vp, x, C, 1.0f,
                    dwte, C);
}
