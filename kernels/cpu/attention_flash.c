// Causal grouped-query self-attention without the T x T matrix: the CPU backend's `attention:
// flash` kernels (docs/architecture.md "Attention on the CPU"). Same semantics as attention.c
// (shapes in kernels/kernels.h): query t sees key s iff s <= t and seg[b,s] == seg[b,t], scores
// scaled by 1/sqrt(hs). The forward walks the keys in blocks of BK with an online softmax (a
// running maximum and sum per query row) and saves only the logsumexp (B,NH,T) of the scaled,
// masked scores; the backward recomputes each (BQ, BK) tile of probabilities from qkv and that
// logsumexp. The largest buffers are per-thread tiles of BQ x BK and BQ x hs floats.
#include "common/check.h"
#include "kernels/cpu/cpu.h"
#include "kernels/vmath.h"
#include <math.h>
#include <stdlib.h>

enum { BQ = 32, BK = 64 }; // query rows and keys per tile

// Geometry of grouped-query attention (as in attention.c): a token's row of qkv holds q (NH
// heads), k (NKV heads), v (NKV heads) of hs floats; query head h reads key/value head h/group.
typedef struct {
    int NH, NKV, hs;
    int row;   // QKV = (NH + 2*NKV)*hs: the row stride of qkv
    int group; // NH / NKV
} Heads;

static Heads heads_of(int NH, int NKV, int hs) {
    return (Heads){NH, NKV, hs, (NH + 2 * NKV) * hs, NH / NKV};
}

// Position 0 of head `head` (counted over q | k | v) in row b of qkv (B,T,QKV); stride g.row.
static float *head_at(const float *qkv, Heads g, int T, int b, int head) {
    return (float *)qkv + (size_t)b * T * g.row + (size_t)head * g.hs;
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

// Whether query t sees key s; seg_row (T) or NULL.
static int visible(const int *seg_row, int t, int s) {
    return s <= t && (!seg_row || seg_row[s] == seg_row[t]);
}

// The tile S (nq, nk; stride BK) = q[q0..q0+nq) k[k0..k0+nk)^T, unscaled; q, k stride g.row.
static void scores(float *S, const float *q, const float *k, int q0, int nq, int k0, int nk,
                   Heads g) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, g.hs, 1.0f, q + (size_t)q0 * g.row,
                g.row, k + (size_t)k0 * g.row, g.row, 0.0f, S, BK);
}

// ---- forward ------------------------------------------------------------------------------

// One query row t's online-softmax step over keys k0..k0+nk: s (nk) the raw scores, turned into
// exp(scale*s - m_new) (0 where masked); acc (hs) and *l rescaled to the new running max *m.
static void online_row(float *s, float *acc, float *m, float *l, int t, int k0, int nk,
                       const int *seg_row, float scale, int hs) {
    float mx = -INFINITY;
    for (int j = 0; j < nk; j++) {
        s[j] = visible(seg_row, t, k0 + j) ? s[j] * scale : -INFINITY;
        mx = s[j] > mx ? s[j] : mx;
    }
    if (mx == -INFINITY) { // nothing visible in this block: the row is unchanged
        for (int j = 0; j < nk; j++) s[j] = 0.0f;
        return;
    }
    float mnew = mx > *m ? mx : *m;
    float alpha = *m == -INFINITY ? 0.0f : lc_expf(*m - mnew), sum = 0.0f;
    for (int j = 0; j < nk; j++) {
        s[j] = s[j] == -INFINITY ? 0.0f : lc_expf(s[j] - mnew);
        sum += s[j];
    }
    for (int i = 0; i < hs; i++) acc[i] *= alpha;
    *l = *l * alpha + sum;
    *m = mnew;
}

// Per-thread tiles of the forward: S (BQ, BK), acc (BQ, hs), m and l (BQ).
typedef struct {
    float *S, *acc, *m, *l;
} FwdTiles;

// Query rows q0..q0+nq of one (b, h): o (T, hs; stride C) rows written, lse (T) entries written;
// q, k, v (T, hs; stride g.row) this head's and its key/value head's blocks.
static void forward_block(float *o, int C, float *lse, const float *q, const float *k,
                          const float *v, const int *seg_row, int q0, int nq, Heads g, float scale,
                          FwdTiles w) {
    int hs = g.hs;
    for (int i = 0; i < nq; i++) {
        w.m[i] = -INFINITY;
        w.l[i] = 0.0f;
        for (int c = 0; c < hs; c++) w.acc[(size_t)i * hs + c] = 0.0f;
    }
    for (int k0 = 0; k0 < q0 + nq; k0 += BK) { // causal: keys up to the block's last query
        int nk = min_int(BK, q0 + nq - k0);
        scores(w.S, q, k, q0, nq, k0, nk, g);
        for (int i = 0; i < nq; i++)
            online_row(w.S + (size_t)i * BK, w.acc + (size_t)i * hs, &w.m[i], &w.l[i], q0 + i, k0,
                       nk, seg_row, scale, hs);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hs, nk, 1.0f, w.S, BK,
                    v + (size_t)k0 * g.row, g.row, 1.0f, w.acc, hs);
    }
    for (int i = 0; i < nq; i++) { // s == t is always visible, so l >= 1
        float inv = 1.0f / w.l[i], *orow = o + (size_t)(q0 + i) * C;
        for (int c = 0; c < hs; c++) orow[c] = w.acc[(size_t)i * hs + c] * inv;
        lse[q0 + i] = w.m[i] + logf(w.l[i]);
    }
}

// The saved state is the logsumexp (B,NH,T); the backward's scratch D = rowsum(dout*out) (B,NH,T).
size_t cpu_flash_attention_state_floats(int B, int T, int NH) {
    return (size_t)B * NH * T;
}
size_t cpu_flash_attention_scratch_floats(int B, int T, int NH) {
    return (size_t)B * NH * T;
}

// out (B,T,C) written; lse (B,NH,T) written; qkv (B,T,QKV); seg (B,T) or NULL. Parallel over
// (b, h, query block): each block's rows are one thread's, computed in a fixed order.
void cpu_flash_attention_forward(float *out, float *lse, const float *qkv, const int *seg, int B,
                                 int T, int NH, int NKV, int hs) {
    Heads g = heads_of(NH, NKV, hs);
    int C = NH * hs, nblocks = (T + BQ - 1) / BQ;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel
    {
        float *buf = lc_malloc(((size_t)BQ * BK + (size_t)BQ * hs + 2 * BQ) * sizeof(float));
        FwdTiles w = {buf, buf + BQ * BK, buf + BQ * BK + (size_t)BQ * hs,
                      buf + BQ * BK + (size_t)BQ * hs + BQ};
#pragma omp for collapse(3) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int qb = 0; qb < nblocks; qb++) {
                    int q0 = qb * BQ, kv = h / g.group;
                    forward_block(
                        out + (size_t)b * T * C + (size_t)h * hs, C, lse + ((size_t)b * NH + h) * T,
                        head_at(qkv, g, T, b, h), head_at(qkv, g, T, b, NH + kv),
                        head_at(qkv, g, T, b, NH + NKV + kv), seg ? seg + (size_t)b * T : NULL, q0,
                        min_int(BQ, T - q0), g, scale, w);
                }
        free(buf);
    }
}

// ---- backward -----------------------------------------------------------------------------

// D (B,NH,T) written: D[b,h,t] = sum_c dout[b,t,h,c] * out[b,t,h,c].
static void row_dots(float *D, const float *dout, const float *out, int B, int T, int NH, int hs) {
    int C = NH * hs;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *d = dout + ((size_t)b * T + t) * C + (size_t)h * hs,
                            *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                float dot = 0.0f;
                for (int c = 0; c < hs; c++) dot += d[c] * o[c];
                D[((size_t)b * NH + h) * T + t] = dot;
            }
}

// One query head's operands in row b: q, k, v (stride g.row), dout's block do_ (stride C), its
// gradients dq (this head), dk, dv (its key/value head; stride g.row), lse and D (T).
typedef struct {
    const float *q, *k, *v, *do_, *lse, *D;
    float *dq, *dk, *dv;
    const int *seg_row;
    int C;
} HeadView;

// P (nq, nk; stride BK) from the raw scores in place: exp(scale*s - lse[t]), 0 where masked.
static void probabilities(float *P, const HeadView *x, int q0, int nq, int k0, int nk,
                          float scale) {
    for (int i = 0; i < nq; i++) {
        int t = q0 + i;
        float *p = P + (size_t)i * BK;
        for (int j = 0; j < nk; j++)
            p[j] = visible(x->seg_row, t, k0 + j) ? lc_expf(p[j] * scale - x->lse[t]) : 0.0f;
    }
}

// One (query block, key block) tile: with P and dO of the tile,
//   dV += P^T dO;  dP = dO V^T;  dS = P * (dP - D) * scale;  dQ += dS K;  dK += dS^T Q.
// P, dP (BQ, BK) scratch tiles.
static void backward_tile(const HeadView *x, float *P, float *dP, int q0, int nq, int k0, int nk,
                          Heads g, float scale) {
    int hs = g.hs, row = g.row;
    scores(P, x->q, x->k, q0, nq, k0, nk, g);
    probabilities(P, x, q0, nq, k0, nk, scale);
    const float *dO = x->do_ + (size_t)q0 * x->C;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nq, 1.0f, P, BK, dO, x->C, 1.0f,
                x->dv + (size_t)k0 * row, row);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hs, 1.0f, dO, x->C,
                x->v + (size_t)k0 * row, row, 0.0f, dP, BK);
    for (int i = 0; i < nq; i++) {
        const float *p = P + (size_t)i * BK;
        float *d = dP + (size_t)i * BK, Dt = x->D[q0 + i];
        for (int j = 0; j < nk; j++) d[j] = p[j] * (d[j] - Dt) * scale;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hs, nk, 1.0f, dP, BK,
                x->k + (size_t)k0 * row, row, 1.0f, x->dq + (size_t)q0 * row, row);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nq, 1.0f, dP, BK,
                x->q + (size_t)q0 * row, row, 1.0f, x->dk + (size_t)k0 * row, row);
}

// T rows of hs floats at stride `row` set to 0.
static void zero_rows(float *p, int T, int hs, int row) {
    for (int t = 0; t < T; t++)
        for (int c = 0; c < hs; c++) p[(size_t)t * row + c] = 0.0f;
}

// One query head over all its tiles, query blocks outer, key blocks inner: dq written, dk and
// dv accumulated.
static void backward_head(const HeadView *x, float *P, float *dP, int T, Heads g, float scale) {
    zero_rows(x->dq, T, g.hs, g.row);
    for (int q0 = 0; q0 < T; q0 += BQ) {
        int nq = min_int(BQ, T - q0);
        for (int k0 = 0; k0 < q0 + nq; k0 += BK)
            backward_tile(x, P, dP, q0, nq, k0, min_int(BK, q0 + nq - k0), g, scale);
    }
}

// dqkv (B,T,QKV) written; D (B,NH,T) scratch, overwritten; dout, out (B,T,C); qkv (B,T,QKV);
// lse (B,NH,T) the forward's state; seg (B,T) or NULL. D = rowsum(dout*out) first; then each
// (b, key/value head) is one thread's, looping over its query heads in order, so the sums into
// the shared dk, dv have a fixed order (no atomics).
void cpu_flash_attention_backward(float *dqkv, float *D, const float *dout, const float *out,
                                  const float *qkv, const float *lse, const int *seg, int B, int T,
                                  int NH, int NKV, int hs) {
    Heads g = heads_of(NH, NKV, hs);
    int C = NH * hs;
    float scale = 1.0f / sqrtf((float)hs);
    row_dots(D, dout, out, B, T, NH, hs);
#pragma omp parallel
    {
        float *P = lc_malloc(2 * (size_t)BQ * BK * sizeof(float)), *dP = P + BQ * BK;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kv = 0; kv < NKV; kv++) {
                float *dk = head_at(dqkv, g, T, b, NH + kv),
                      *dv = head_at(dqkv, g, T, b, NH + NKV + kv);
                zero_rows(dk, T, hs, g.row);
                zero_rows(dv, T, hs, g.row);
                for (int h = kv * g.group; h < (kv + 1) * g.group; h++) {
                    HeadView x = {head_at(qkv, g, T, b, h),
                                  head_at(qkv, g, T, b, NH + kv),
                                  head_at(qkv, g, T, b, NH + NKV + kv),
                                  dout + (size_t)b * T * C + (size_t)h * hs,
                                  lse + ((size_t)b * NH + h) * T,
                                  D + ((size_t)b * NH + h) * T,
                                  head_at(dqkv, g, T, b, h),
                                  dk,
                                  dv,
                                  seg ? seg + (size_t)b * T : NULL,
                                  C};
                    backward_head(&x, P, dP, T, g, scale);
                }
            }
        free(P);
    }
}
