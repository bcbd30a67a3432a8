// Causal multi-head self-attention with segment masking, and its KV-cache decode step.
// Shapes in kernels/kernels.h. Scores use scale 1/sqrt(hs); the softmax subtracts the row
// maximum, so it never overflows; masked entries of att are exactly 0.
#include "kernels/cpu/cpu.h"
#include "kernels/vmath.h"
#include <math.h>

// Geometry of grouped-query attention: a token's row of qkv holds q (NH heads), k (NKV heads)
// and v (NKV heads), each head hs floats; query head h reads key/value head h / (NH/NKV).
typedef struct {
    int NH, NKV, hs;
    int row;   // QKV = (NH + 2*NKV)*hs: the row stride of qkv
    int group; // NH / NKV query heads per key/value head
} Heads;

static Heads heads_of(int NH, int NKV, int hs) {
    return (Heads){NH, NKV, hs, (NH + 2 * NKV) * hs, NH / NKV};
}

// The (T, hs) blocks of one row b as BLAS sees them (row stride g.row): query head h, and the
// key and value heads kv.
static const float *q_block(const float *qkv, Heads g, int T, int b, int h) {
    return qkv + (size_t)b * T * g.row + (size_t)h * g.hs;
}
static const float *k_block(const float *qkv, Heads g, int T, int b, int kv) {
    return qkv + (size_t)b * T * g.row + (size_t)(g.NH + kv) * g.hs;
}
static const float *v_block(const float *qkv, Heads g, int T, int b, int kv) {
    return qkv + (size_t)b * T * g.row + (size_t)(g.NH + g.NKV + kv) * g.hs;
}

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

// The saved state is the probabilities att (B,NH,T,T); the backward's scratch datt (B,NH,T,T).
size_t cpu_attention_state_floats(int B, int T, int NH) {
    return (size_t)B * NH * T * T;
}
size_t cpu_attention_scratch_floats(int B, int T, int NH) {
    return (size_t)B * NH * T * T;
}

// out (B,T,C) written; att (B,NH,T,T) written; qkv (B,T,QKV); seg (B,T) or NULL.
// Per (b, h): scores = q k^T (one sgemm), masked softmax per row, out = att v (one sgemm).
void cpu_attention_forward(float *out, float *att, const float *qkv, const int *seg, int B, int T,
                           int NH, int NKV, int hs) {
    Heads g = heads_of(NH, NKV, hs);
    int C = NH * hs;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *a = att + ((size_t)b * NH + h) * T * T;
            int kv = h / g.group;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f,
                        q_block(qkv, g, T, b, h), g.row, k_block(qkv, g, T, b, kv), g.row, 0.0f, a,
                        T);
            for (int t = 0; t < T; t++)
                softmax_row(a + (size_t)t * T, t, T, seg ? seg + (size_t)b * T : NULL, scale);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T,
                        v_block(qkv, g, T, b, kv), g.row, 0.0f, out + (size_t)b * T * C + h * hs,
                        C);
        }
}

// With P = att[b,h] (T,T) and dO = dout's (T,hs) block of query head h, key/value head kv:
//   dV_kv += P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(P * dP)) * scale;
//   dQ_h = dS K_kv;   dK_kv += dS^T Q_h
// summed over the query heads of each key/value head. dqkv (B,T,QKV) written; datt (B,NH,T,T)
// scratch, overwritten; out is not needed (P is saved). Each (b, kv) slice is one thread's, so
// every sum has a fixed order.
void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *out,
                            const float *qkv, const float *att, const int *seg, int B, int T,
                            int NH, int NKV, int hs) {
    Heads g = heads_of(NH, NKV, hs);
    int C = NH * hs;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int kv = 0; kv < NKV; kv++) {
            float *dk = (float *)k_block(dqkv, g, T, b, kv),
                  *dv = (float *)v_block(dqkv, g, T, b, kv);
            for (int j = 0; j < g.group; j++) {
                int h = kv * g.group + j;
                float beta = j == 0 ? 0.0f : 1.0f; // the first query head writes, the rest add
                const float *p = att + ((size_t)b * NH + h) * T * T;
                float *dp = datt + ((size_t)b * NH + h) * T * T;
                const float *d = dout + (size_t)b * T * C + h * hs;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, d, C,
                            beta, dv, g.row);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, d, C,
                            v_block(qkv, g, T, b, kv), g.row, 0.0f, dp, T);
                for (int t = 0; t < T; t++) {
                    const float *pr = p + (size_t)t * T;
                    float *dr = dp + (size_t)t * T, dot = 0.0f;
                    for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
                    for (int s = 0; s < T; s++)
                        dr[s] = s <= t ? pr[s] * (dr[s] - dot) * scale : 0.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T,
                            k_block(qkv, g, T, b, kv), g.row, 0.0f,
                            (float *)q_block(dqkv, g, T, b, h), g.row);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T,
                            q_block(qkv, g, T, b, h), g.row, beta, dk, g.row);
            }
        }
    (void)seg; // masked entries have att == 0 exactly, so their dS is 0
    (void)out;
}

// kcache, vcache (B,maxT,NKV*hs): positions start[b]+t (start NULL = 0) receive the k and v
// heads of qkv (B,T,QKV).
void cpu_kvcache_write(float *kcache, float *vcache, const float *qkv, const int *start, int B,
                       int T, int maxT, int NH, int NKV, int hs) {
    Heads g = heads_of(NH, NKV, hs);
    int KV = NKV * hs;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int p = (start ? start[b] : 0) + t;
            if (p >= maxT) continue;
            const float *src = qkv + ((size_t)b * T + t) * g.row + (size_t)NH * hs;
            float *kd = kcache + ((size_t)b * maxT + p) * KV,
                  *vd = vcache + ((size_t)b * maxT + p) * KV;
            for (int c = 0; c < KV; c++) {
                kd[c] = src[c];
                vd[c] = src[KV + c];
            }
        }
}

// out (B,C) written: one query per row attending to cached positions 0..pos[b].
void cpu_attention_decode(float *out, const float *qkv, const float *kcache, const float *vcache,
                          const int *pos, int B, int maxT, int NH, int NKV, int hs) {
    Heads g = heads_of(NH, NKV, hs);
    int C = NH * hs, KV = NKV * hs;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float a[maxT];
            const float *q = qkv + (size_t)b * g.row + h * hs;
            size_t koff = (size_t)(h / g.group) * hs;
            int last = pos[b];
            float maxv = -INFINITY;
            for (int s = 0; s <= last; s++) {
                const float *k = kcache + ((size_t)b * maxT + s) * KV + koff;
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
                const float *v = vcache + ((size_t)b * maxT + s) * KV + koff;
                float w = a[s] * inv;
                for (int i = 0; i < hs; i++) o[i] += w * v[i];
            }
        }
}
