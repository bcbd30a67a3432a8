// Causal multi-head self-attention with segment masking, and its KV-cache decode step.
// Shapes in kernels/kernels.h. Scores use scale 1/sqrt(hs); the softmax subtracts the row
// maximum, so it never overflows; masked entries of att are exactly 0.
#include "kernels/cpu/cpu.h"
#include "kernels/vmath.h"
#include <math.h>

// Rows of one (b, h) slice as BLAS sees them: q, k, v are (T, hs) blocks of qkv with row
// stride 3C; out is (T, hs) with row stride C.
#define QKV_ROW(qkv, b, t, part, h) ((qkv) + ((size_t)(b)*T + (t)) * 3 * C + (part)*C + (h)*hs)

// Masks and normalises one row of scores in place: entries s > t or in another segment become
// 0, the rest softmax(scale * score).
static void softmax_row(float *a, int t, int T, const int *seg_row, float scale) {
    float maxv = -INFINITY;
    for (int s = 0; s <= t; s++) {
        int vis = !seg_row || seg_row[s] == seg_row[t];
        a[s] = vis ? a[s] * scale : -INFINITY;
        maxv = a[s] > maxv ? a[s] : maxv;
    }
    float sum = 0.0f;
    for (int s = 0; s <= t; s++) {
        a[s] = lc_expf(a[s] - maxv) * (a[s] != -INFINITY); // exp(-inf) is exactly 0
        sum += a[s];
    }
    float inv = 1.0f / sum; // s == t is always visible, so sum >= 1
    for (int s = 0; s <= t; s++) a[s] *= inv;
    for (int s = t + 1; s < T; s++) a[s] = 0.0f;
}

// out (B,T,C) written; att (B,NH,T,T) written; qkv (B,T,3C); seg (B,T) or NULL.
// Per (b, h): scores = q k^T (one sgemm), masked softmax per row, out = att v (one sgemm).
void cpu_attention_forward(float *out, float *att, const float *qkv, const int *seg, int B, int T,
                           int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *a = att + ((size_t)b * NH + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f,
                        QKV_ROW(qkv, b, 0, 0, h), 3 * C, QKV_ROW(qkv, b, 0, 1, h), 3 * C, 0.0f, a,
                        T);
            for (int t = 0; t < T; t++)
                softmax_row(a + (size_t)t * T, t, T, seg ? seg + (size_t)b * T : NULL, scale);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T,
                        QKV_ROW(qkv, b, 0, 2, h), 3 * C, 0.0f, out + (size_t)b * T * C + h * hs, C);
        }
}

// With P = att[b,h] (T,T) and dO = dout's (T,hs) block:
//   dV = P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(P * dP)) * scale;  dQ = dS K;  dK = dS^T Q
// dqkv (B,T,3C) written; datt (B,NH,T,T) scratch, overwritten. Each (b,h) slice is one thread's,
// so every sum has a fixed order.
void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, const int *seg, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *p = att + ((size_t)b * NH + h) * T * T;
            float *dp = datt + ((size_t)b * NH + h) * T * T;
            const float *d = dout + (size_t)b * T * C + h * hs;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, d, C, 0.0f,
                        (float *)QKV_ROW(dqkv, b, 0, 2, h), 3 * C);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, d, C,
                        QKV_ROW(qkv, b, 0, 2, h), 3 * C, 0.0f, dp, T);
            for (int t = 0; t < T; t++) {
                const float *pr = p + (size_t)t * T;
                float *dr = dp + (size_t)t * T, dot = 0.0f;
                for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
                for (int s = 0; s < T; s++) dr[s] = s <= t ? pr[s] * (dr[s] - dot) * scale : 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T,
                        QKV_ROW(qkv, b, 0, 1, h), 3 * C, 0.0f, (float *)QKV_ROW(dqkv, b, 0, 0, h),
                        3 * C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T,
                        QKV_ROW(qkv, b, 0, 0, h), 3 * C, 0.0f, (float *)QKV_ROW(dqkv, b, 0, 1, h),
                        3 * C);
        }
    (void)seg; // masked entries have att == 0 exactly, so their dS is 0
}

// kcache, vcache (B,maxT,C): positions start[b]+t (start NULL = 0) receive k, v of qkv (B,T,3C).
void cpu_kvcache_write(float *kcache, float *vcache, const float *qkv, const int *start, int B,
                       int T, int maxT, int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int p = (start ? start[b] : 0) + t;
            if (p >= maxT) continue;
            const float *src = qkv + ((size_t)b * T + t) * 3 * C;
            float *kd = kcache + ((size_t)b * maxT + p) * C,
                  *vd = vcache + ((size_t)b * maxT + p) * C;
            for (int c = 0; c < C; c++) {
                kd[c] = src[C + c];
                vd[c] = src[2 * C + c];
            }
        }
}

// out (B,C) written: one query per row attending to cached positions 0..pos[b].
void cpu_attention_decode(float *out, const float *qkv, const float *kcache, const float *vcache,
                          const int *pos, int B, int maxT, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float a[maxT];
            const float *q = qkv + (size_t)b * 3 * C + h * hs;
            int last = pos[b];
            float maxv = -INFINITY;
            for (int s = 0; s <= last; s++) {
                const float *k = kcache + ((size_t)b * maxT + s) * C + h * hs;
                float dot = 0.0f;
                for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                a[s] = dot * scale;
                if (a[s] > maxv) maxv = a[s];
            }
            float sum = 0.0f;
            for (int s = 0; s <= last; s++) {
                a[s] = lc_expf(a[s] - maxv);
                sum += a[s];
            }
            float inv = 1.0f / sum, *o = out + (size_t)b * C + h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0.0f;
            for (int s = 0; s <= last; s++) {
                const float *v = vcache + ((size_t)b * maxT + s) * C + h * hs;
                float w = a[s] * inv;
                for (int i = 0; i < hs; i++) o[i] += w * v[i];
            }
        }
}
