// Causal multi-head self-attention with segment masking, and its KV-cache decode step.
// Shapes in kernels/kernels.h. Scores use scale 1/sqrt(hs); the softmax subtracts the row
// maximum, so it never overflows; masked entries of att are exactly 0.
#include "kernels/cpu/cpu.h"
#include "kernels/vmath.h"
#include <math.h>

static inline int visible(const int *seg, int b, int T, int t, int s) {
    return s <= t && (!seg || seg[b * T + s] == seg[b * T + t]);
}

// out (B,T,C) written; att (B,NH,T,T) written; qkv (B,T,3C); seg (B,T) or NULL.
void cpu_attention_forward(float *out, float *att, const float *qkv, const int *seg, int B,
                           int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int s = 0; s < T; s++) {
                    a[s] = 0.0f;
                    if (!visible(seg, b, T, t, s)) continue;
                    const float *k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                    a[s] = dot * scale;
                    if (a[s] > maxv) maxv = a[s];
                }
                float sum = 0.0f;
                for (int s = 0; s <= t; s++)
                    if (visible(seg, b, T, t, s)) {
                        a[s] = lc_expf(a[s] - maxv);
                        sum += a[s];
                    }
                float inv = 1.0f / sum; // s == t is always visible, so sum >= 1
                float *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int s = 0; s <= t; s++) {
                    a[s] *= inv;
                    if (a[s] == 0.0f) continue;
                    const float *v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) o[i] += a[s] * v[i];
                }
            }
}

// For query t with probabilities a = att[b,h,t,:] and upstream gradient dout_t:
//   datt[s] = dout_t . v_s;  dv_s += a[s] dout_t;  dpre[s] = a[s] (datt[s] - sum_j a[j] datt[j])
//   dq_t += scale sum_s dpre[s] k_s;  dk_s += scale dpre[s] q_t
// dqkv (B,T,3C) written. Threads own whole (b,h) slices, so the dk/dv sums over t are race-free
// and in a fixed order.
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                            const int *seg, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float datt[T];
            for (int t = 0; t < T; t++)
                for (int part = 0; part < 3; part++) {
                    float *d = dqkv + ((size_t)b * T + t) * 3 * C + part * C + h * hs;
                    for (int i = 0; i < hs; i++) d[i] = 0.0f;
                }
            for (int t = 0; t < T; t++) {
                const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const float *dout_t = dout + ((size_t)b * T + t) * C + h * hs;
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float adatt = 0.0f;
                for (int s = 0; s <= t; s++) {
                    datt[s] = 0.0f;
                    if (a[s] == 0.0f) continue;
                    const float *v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hs;
                    float *dv = dqkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) {
                        datt[s] += dout_t[i] * v[i];
                        dv[i] += a[s] * dout_t[i];
                    }
                    adatt += a[s] * datt[s];
                }
                for (int s = 0; s <= t; s++) {
                    if (a[s] == 0.0f) continue;
                    float dpre = a[s] * (datt[s] - adatt) * scale;
                    const float *k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
                    float *dk = dqkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                    }
                }
            }
        }
    (void)seg; // masked entries have att == 0 exactly, which the loops above skip
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
            float *kd = kcache + ((size_t)b * maxT + p) * C, *vd = vcache + ((size_t)b * maxT + p) * C;
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
