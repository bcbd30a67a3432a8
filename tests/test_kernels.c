// tests/test_kernels.c: every CPU kernel's backward against central finite differences (every
// input and parameter gradient, tiny shapes), forward values against direct double-precision
// formulas, and the masking guarantees of attention and the classifier.
//
// Each check differentiates a scalar probe L = sum_i w_i * out_i with fixed random weights w,
// so the analytic gradient is the kernel's backward with dout = w.
#include "kernels/kernels.h"
#include "kernels/vmath.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const Backend *be;

// Step and tolerance: fp32 forwards give finite-difference noise of 1e-5..2e-4 (normwise);
// 5e-4 stays clear of that and still fails a 1% error in any one backward term.
#define FD_EPS 1e-2f
#define FD_TOL 5e-4

static float *rand_vec(size_t n, Rng *r, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    fill_uniform(x, n, r, lo, hi);
    return x;
}

static float *zeros(size_t n) {
    return calloc(n, sizeof(float));
}

static double dot(const float *a, const float *w, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * w[i];
    return s;
}

// ---- encoder ------------------------------------------------------------------------------------

typedef struct {
    int B, T, C, Vp, maxT;
    int *tokens, *pos;
    float *wte, *wpe, *out, *w;
} EncCtx;

static double enc_loss(void *p) {
    EncCtx *c = p;
    be->encoder_forward(c->out, c->tokens, c->pos, c->wte, c->wpe, c->B, c->T, c->C);
    return dot(c->out, c->w, (size_t)c->B * c->T * c->C);
}

static void check_encoder(int with_pos) {
    Rng r = rng_init(1);
    EncCtx c = {.B = 2, .T = 5, .C = 6, .Vp = 64, .maxT = 8};
    int N = c.B * c.T;
    int tokens[10] = {3, 7, 3, 0, 63, 7, 7, 1, 2, 3}; // repeats exercise accumulation
    int pos[10] = {0, 1, 2, 0, 1, 4, 5, 6, 7, 0};
    c.tokens = tokens;
    c.pos = with_pos ? pos : NULL;
    c.wte = rand_vec((size_t)c.Vp * c.C, &r, -1, 1);
    c.wpe = rand_vec((size_t)c.maxT * c.C, &r, -1, 1);
    c.out = zeros((size_t)N * c.C);
    c.w = rand_vec((size_t)N * c.C, &r, -1, 1);
    float *dwte = zeros((size_t)c.Vp * c.C), *dwpe = zeros((size_t)c.maxT * c.C);
    enc_loss(&c);
    for (int n = 0; n < N; n++) // forward value
        for (int k = 0; k < c.C; k++) {
            int p = with_pos ? pos[n] : n % c.T;
            ck_assert_float_eq(c.out[n * c.C + k], c.wte[tokens[n] * c.C + k] + c.wpe[p * c.C + k]);
        }
    be->encoder_backward(dwte, dwpe, c.w, c.tokens, c.pos, c.B, c.T, c.C);
    grad_check("encoder dwte", c.wte, (size_t)c.Vp * c.C, dwte, enc_loss, &c, FD_EPS, FD_TOL, 400);
    grad_check("encoder dwpe", c.wpe, (size_t)c.maxT * c.C, dwpe, enc_loss, &c, FD_EPS, FD_TOL,
               400);
    free(c.wte), free(c.wpe), free(c.out), free(c.w), free(dwte), free(dwpe);
}

// The vectorised exp against libm's, at its clamps and past them; a NaN stays NaN (a diverged
// model must stay visible) and is never converted to an integer (undefined; UBSan checks).
START_TEST(test_vmath_exp) {
    const float xs[] = {-100.0f, -87.3f, -10.0f, -1.0f, -1e-3f, 0.0f,
                        1e-3f,   1.0f,   10.0f,  80.0f, 88.3f,  100.0f};
    for (size_t i = 0; i < sizeof(xs) / sizeof(*xs); i++) {
        float x = xs[i] < -87.3f ? -87.3f : xs[i] > 88.3f ? 88.3f : xs[i], want = expf(x);
        ck_assert_msg(fabsf(lc_expf(xs[i]) - want) <= 3e-7f * want, "exp(%g)", xs[i]);
    }
    ck_assert(isnan(lc_expf(NAN)));
    ck_assert(isfinite(lc_expf(INFINITY)) && isfinite(lc_expf(-INFINITY)));
    ck_assert(isnan(lc_tanhf(NAN)));
}
END_TEST

START_TEST(test_encoder) {
    check_encoder(0);
    check_encoder(1);
}
END_TEST

// ---- layernorm ----------------------------------------------------------------------------------

typedef struct {
    int N, C;
    float *inp, *weight, *bias, *out, *mean, *rstd, *w;
} LnCtx;

static double ln_loss(void *p) {
    LnCtx *c = p;
    be->layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->weight, c->bias, c->N, c->C);
    return dot(c->out, c->w, (size_t)c->N * c->C);
}

START_TEST(test_layernorm) {
    Rng r = rng_init(2);
    LnCtx c = {.N = 7, .C = 12};
    size_t NC = (size_t)c.N * c.C;
    c.inp = rand_vec(NC, &r, -2, 2);
    c.weight = rand_vec(c.C, &r, 0.5, 1.5);
    c.bias = rand_vec(c.C, &r, -0.5, 0.5);
    c.out = zeros(NC), c.mean = zeros(c.N), c.rstd = zeros(c.N);
    c.w = rand_vec(NC, &r, -1, 1);
    ln_loss(&c);
    for (int n = 0; n < c.N; n++) { // forward against the formula in double
        double m = 0, v = 0;
        for (int k = 0; k < c.C; k++) m += c.inp[n * c.C + k];
        m /= c.C;
        for (int k = 0; k < c.C; k++) v += pow(c.inp[n * c.C + k] - m, 2);
        v /= c.C;
        for (int k = 0; k < c.C; k++) {
            double want = (c.inp[n * c.C + k] - m) / sqrt(v + 1e-5) * c.weight[k] + c.bias[k];
            ck_assert_double_eq_tol(c.out[n * c.C + k], want, 1e-5);
        }
    }
    float *dinp = rand_vec(NC, &r, -1, 1), *dinp0 = malloc(NC * sizeof(float));
    memcpy(dinp0, dinp, NC * sizeof(float)); // dinp accumulates: start from a nonzero value
    float *dw = zeros(c.C), *db = zeros(c.C);
    be->layernorm_backward(dinp, dw, db, c.w, c.inp, c.weight, c.mean, c.rstd, c.N, c.C);
    for (size_t i = 0; i < NC; i++) dinp[i] -= dinp0[i];
    grad_check("layernorm dinp", c.inp, NC, dinp, ln_loss, &c, FD_EPS, FD_TOL, 400);
    grad_check("layernorm dweight", c.weight, c.C, dw, ln_loss, &c, FD_EPS, FD_TOL, 400);
    grad_check("layernorm dbias", c.bias, c.C, db, ln_loss, &c, FD_EPS, FD_TOL, 400);
    free(c.inp), free(c.weight), free(c.bias), free(c.out), free(c.mean), free(c.rstd);
    free(c.w), free(dinp), free(dinp0), free(dw), free(db);
}
END_TEST

// ---- matmul -------------------------------------------------------------------------------------

typedef struct {
    int N, C, OC;
    float *inp, *weight, *bias, *out, *w;
} MmCtx;

static double mm_loss(void *p) {
    MmCtx *c = p;
    be->matmul_forward(c->out, c->inp, c->weight, c->bias, c->N, c->C, c->OC);
    return dot(c->out, c->w, (size_t)c->N * c->OC);
}

START_TEST(test_matmul) {
    Rng r = rng_init(3);
    MmCtx c = {.N = 6, .C = 5, .OC = 7};
    c.inp = rand_vec((size_t)c.N * c.C, &r, -1, 1);
    c.weight = rand_vec((size_t)c.OC * c.C, &r, -1, 1);
    c.bias = rand_vec(c.OC, &r, -1, 1);
    c.out = zeros((size_t)c.N * c.OC);
    c.w = rand_vec((size_t)c.N * c.OC, &r, -1, 1);
    mm_loss(&c);
    for (int n = 0; n < c.N; n++)
        for (int o = 0; o < c.OC; o++) {
            double want = c.bias[o];
            for (int k = 0; k < c.C; k++)
                want += (double)c.inp[n * c.C + k] * c.weight[o * c.C + k];
            ck_assert_double_eq_tol(c.out[n * c.OC + o], want, 1e-5);
        }
    float *dinp = rand_vec((size_t)c.N * c.C, &r, -1, 1); // written: garbage must not leak
    float *dw = zeros((size_t)c.OC * c.C), *db = zeros(c.OC);
    be->matmul_backward(dinp, dw, db, c.w, c.inp, c.weight, c.N, c.C, c.OC);
    grad_check("matmul dinp", c.inp, (size_t)c.N * c.C, dinp, mm_loss, &c, FD_EPS, FD_TOL, 400);
    grad_check("matmul dweight", c.weight, (size_t)c.OC * c.C, dw, mm_loss, &c, FD_EPS, FD_TOL,
               400);
    grad_check("matmul dbias", c.bias, c.OC, db, mm_loss, &c, FD_EPS, FD_TOL, 400);
    free(c.inp), free(c.weight), free(c.bias), free(c.out), free(c.w), free(dinp), free(dw),
        free(db);
}
END_TEST

// ---- attention ----------------------------------------------------------------------------------

typedef struct {
    int B, T, C, NH;
    int *seg;
    float *qkv, *out, *att, *w;
} AttCtx;

static double att_loss(void *p) {
    AttCtx *c = p;
    be->attention_forward(c->out, c->att, c->qkv, c->seg, c->B, c->T, c->NH, c->NH, c->C / c->NH);
    return dot(c->out, c->w, (size_t)c->B * c->T * c->C);
}

static AttCtx att_make(int with_seg, Rng *r) {
    static int seg[2 * 6] = {0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1, 1};
    AttCtx c = {.B = 2, .T = 6, .C = 8, .NH = 2, .seg = with_seg ? seg : NULL};
    size_t N = (size_t)c.B * c.T;
    c.qkv = rand_vec(N * 3 * c.C, r, -1.5, 1.5);
    c.out = zeros(N * c.C);
    c.att = zeros((size_t)c.B * c.NH * c.T * c.T);
    c.w = rand_vec(N * c.C, r, -1, 1);
    return c;
}

static void att_free(AttCtx *c) {
    free(c->qkv), free(c->out), free(c->att), free(c->w);
}

// out against a direct double-precision softmax attention with the same mask.
static void att_check_forward(const AttCtx *c) {
    int hs = c->C / c->NH;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < c->T; t++) {
                double sc[16], mx = -1e30, sum = 0;
                for (int s = 0; s <= t; s++) {
                    int vis = !c->seg || c->seg[b * c->T + s] == c->seg[b * c->T + t];
                    double d = 0;
                    for (int i = 0; i < hs; i++)
                        d += (double)c->qkv[(b * c->T + t) * 3 * c->C + h * hs + i] *
                             c->qkv[(b * c->T + s) * 3 * c->C + c->C + h * hs + i];
                    sc[s] = vis ? d / sqrt(hs) : -INFINITY;
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s <= t; s++) sum += exp(sc[s] - mx);
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++)
                        o += exp(sc[s] - mx) / sum *
                             c->qkv[(b * c->T + s) * 3 * c->C + 2 * c->C + h * hs + i];
                    ck_assert_double_eq_tol(c->out[(b * c->T + t) * c->C + h * hs + i], o, 1e-5);
                }
            }
}

START_TEST(test_attention) {
    for (int with_seg = 0; with_seg < 2; with_seg++) {
        Rng r = rng_init(4 + with_seg);
        AttCtx c = att_make(with_seg, &r);
        size_t n = (size_t)c.B * c.T * 3 * c.C;
        att_loss(&c);
        att_check_forward(&c);
        float *dqkv = rand_vec(n, &r, -1, 1); // written
        float *scratch = rand_vec((size_t)c.B * c.NH * c.T * c.T, &r, -1, 1);
        be->attention_backward(dqkv, scratch, c.w, c.qkv, c.att, c.seg, c.B, c.T, c.NH, c.NH,
                               c.C / c.NH);
        free(scratch);
        grad_check(with_seg ? "attention dqkv (segments)" : "attention dqkv", c.qkv, n, dqkv,
                   att_loss, &c, FD_EPS, FD_TOL, 1000);
        free(dqkv);
        att_free(&c);
    }
}
END_TEST

// Changing any token of another segment, or a later (padding) position, leaves out unchanged
// bit for bit.
START_TEST(test_attention_no_leak) {
    Rng r = rng_init(6);
    AttCtx c = att_make(1, &r);
    size_t N = (size_t)c.B * c.T;
    att_loss(&c);
    float *ref = malloc(N * c.C * sizeof(float));
    memcpy(ref, c.out, N * c.C * sizeof(float));
    // row 0: segments {0,1,2} {3,4} {5}; perturb token 3 (segment 1) of row 0
    for (int k = 0; k < 3 * c.C; k++) c.qkv[3 * 3 * c.C + k] += 10.0f;
    att_loss(&c);
    for (int t = 0; t < 3; t++) // segment 0 of row 0 and all of row 1 are untouched
        for (int k = 0; k < c.C; k++) ck_assert_float_eq(c.out[t * c.C + k], ref[t * c.C + k]);
    for (int k = 0; k < c.C; k++) ck_assert_float_eq(c.out[5 * c.C + k], ref[5 * c.C + k]);
    for (size_t i = (size_t)c.T * c.C; i < N * c.C; i++) ck_assert_float_eq(c.out[i], ref[i]);
    // rows without segments: a change at position 5 (right padding) never reaches t < 5
    AttCtx d = att_make(0, &r);
    att_loss(&d);
    memcpy(ref, d.out, N * d.C * sizeof(float));
    for (int k = 0; k < 3 * d.C; k++) d.qkv[5 * 3 * d.C + k] = 1e3f;
    att_loss(&d);
    for (int t = 0; t < 5; t++)
        for (int k = 0; k < d.C; k++) ck_assert_float_eq(d.out[t * d.C + k], ref[t * d.C + k]);
    free(ref);
    att_free(&c);
    att_free(&d);
}
END_TEST

// The decode step over a KV cache equals the full attention's row at that position.
START_TEST(test_attention_decode) {
    Rng r = rng_init(7);
    AttCtx c = att_make(0, &r);
    int maxT = 9, B = c.B, T = c.T, C = c.C;
    att_loss(&c);
    float *kc = zeros((size_t)B * maxT * C), *vc = zeros((size_t)B * maxT * C);
    be->kvcache_write(kc, vc, c.qkv, NULL, B, T, maxT, c.NH, c.NH,
                      C / c.NH); // prefill: positions 0..T-1
    // decode step for position T-1: rows' qkv for the last token
    float *last = zeros((size_t)B * 3 * C), *out = zeros((size_t)B * C);
    for (int b = 0; b < B; b++)
        memcpy(last + b * 3 * C, c.qkv + ((size_t)b * T + T - 1) * 3 * C, 3 * C * sizeof(float));
    int pos[2] = {T - 1, T - 1};
    be->kvcache_write(kc, vc, last, pos, B, 1, maxT, c.NH, c.NH, C / c.NH);
    be->attention_decode(out, last, kc, vc, pos, B, maxT, c.NH, c.NH, C / c.NH);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < C; k++)
            ck_assert_double_eq_tol(out[b * C + k], c.out[((size_t)b * T + T - 1) * C + k], 1e-6);
    free(kc), free(vc), free(last), free(out);
    att_free(&c);
}
END_TEST

// ---- GELU and residual --------------------------------------------------------------------------

typedef struct {
    size_t n;
    float *inp, *out, *w;
} GeluCtx;

static double gelu_loss(void *p) {
    GeluCtx *c = p;
    be->gelu_forward(c->out, c->inp, c->n);
    return dot(c->out, c->w, c->n);
}

START_TEST(test_gelu) {
    Rng r = rng_init(8);
    GeluCtx c = {.n = 64};
    c.inp = rand_vec(c.n, &r, -4, 4);
    c.out = zeros(c.n);
    c.w = rand_vec(c.n, &r, -1, 1);
    gelu_loss(&c);
    for (size_t i = 0; i < c.n; i++) {
        double x = c.inp[i];
        double want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        ck_assert_double_eq_tol(c.out[i], want, 1e-6);
    }
    float *dinp = zeros(c.n);
    be->gelu_backward(dinp, c.inp, c.w, c.n);
    grad_check("gelu dinp", c.inp, c.n, dinp, gelu_loss, &c, 1e-3f, FD_TOL, 64);
    free(c.inp), free(c.out), free(c.w), free(dinp);
}
END_TEST

START_TEST(test_residual) {
    float a[5] = {1, -2, 3.5f, 0, 1e-7f}, b[5] = {0.5f, 2, -1, 0, 1}, out[5];
    be->residual_forward(out, a, b, 5);
    for (int i = 0; i < 5; i++) ck_assert_float_eq(out[i], a[i] + b[i]);
}
END_TEST

// ---- classifier ---------------------------------------------------------------------------------

typedef struct {
    int N, C, V, Vp;
    float inv_temp;
    int *targets;
    float *x, *wte, *logits, *lse, *logp, *ent, *a, *e; // a, e: weights on logp and entropy
} ClsCtx;

static double cls_loss(void *p) {
    ClsCtx *c = p;
    be->classifier_forward(c->logp, c->ent, c->lse, c->logits, c->x, c->wte, c->targets, c->N, c->C,
                           c->V, c->Vp, c->inv_temp);
    return dot(c->logp, c->a, c->N) + dot(c->ent, c->e, c->N);
}

static ClsCtx cls_make(Rng *r) {
    static int targets[6] = {0, 5, 69, -1, 12, 3};
    ClsCtx c = {.N = 6, .C = 8, .V = 70, .Vp = 128, .inv_temp = 1.25f, .targets = targets};
    c.x = rand_vec((size_t)c.N * c.C, r, -1, 1);
    c.wte = rand_vec((size_t)c.Vp * c.C, r, -1, 1);
    for (int i = c.V * c.C; i < c.Vp * c.C; i++) c.wte[i] = 0.0f; // padded rows
    c.logits = zeros((size_t)c.N * c.Vp);
    c.lse = zeros(c.N), c.logp = zeros(c.N), c.ent = zeros(c.N);
    c.a = rand_vec(c.N, r, -1, 1);
    c.e = rand_vec(c.N, r, -1, 1);
    c.a[1] = 0.0f, c.e[1] = 0.0f; // a masked row
    return c;
}

START_TEST(test_classifier) {
    Rng r = rng_init(9);
    ClsCtx c = cls_make(&r);
    cls_loss(&c);
    for (int n = 0; n < c.N; n++) { // logp, entropy, lse against double formulas
        double z[70], mx = -1e30, sum = 0, ent = 0;
        for (int v = 0; v < c.V; v++) {
            z[v] = 0;
            for (int k = 0; k < c.C; k++) z[v] += (double)c.x[n * c.C + k] * c.wte[v * c.C + k];
            z[v] *= c.inv_temp;
            mx = fmax(mx, z[v]);
        }
        for (int v = 0; v < c.V; v++) sum += exp(z[v] - mx);
        double lse = mx + log(sum);
        for (int v = 0; v < c.V; v++) ent -= exp(z[v] - lse) * (z[v] - lse);
        ck_assert_double_eq_tol(c.lse[n], lse, 1e-5);
        ck_assert_double_eq_tol(c.ent[n], ent, 1e-5);
        ck_assert_double_eq_tol(c.logp[n], c.targets[n] >= 0 ? z[c.targets[n]] - lse : 0.0, 1e-5);
    }
    size_t nx = (size_t)c.N * c.C, nw = (size_t)c.Vp * c.C;
    float *dx = rand_vec(nx, &r, -1, 1), *dwte = zeros(nw);
    be->classifier_backward(dx, dwte, c.logits, c.x, c.wte, c.lse, c.ent, c.targets, c.a, c.e, c.N,
                            c.C, c.V, c.Vp, c.inv_temp);
    for (int v = 0; v < c.Vp; v++) // the masked row contributes exactly zero dlogits
        ck_assert_float_eq(c.logits[1 * c.Vp + v], 0.0f);
    for (size_t i = (size_t)c.V * c.C; i < nw; i++) ck_assert_float_eq(dwte[i], 0.0f);
    grad_check("classifier dx", c.x, nx, dx, cls_loss, &c, FD_EPS, FD_TOL, 400);
    grad_check("classifier dwte", c.wte, (size_t)c.V * c.C, dwte, cls_loss, &c, FD_EPS, FD_TOL,
               600);
    free(c.x), free(c.wte), free(c.logits), free(c.lse), free(c.logp), free(c.ent), free(c.a);
    free(c.e), free(dx), free(dwte);
}
END_TEST

// Huge logits never overflow: log-probs stay finite and the true argmax has logp ~ 0.
START_TEST(test_classifier_stable) {
    int N = 1, C = 2, V = 3, Vp = 64, target = 2;
    float x[2] = {1000.0f, -1000.0f}, wte[64 * 2] = {0};
    wte[0] = 1, wte[2] = -1, wte[4] = 2; // logits 1000, -1000, 2000
    float logits[64], lse, logp, ent;
    be->classifier_forward(&logp, &ent, &lse, logits, x, wte, &target, N, C, V, Vp, 1.0f);
    ck_assert(isfinite(logp) && isfinite(lse) && isfinite(ent));
    ck_assert_double_eq_tol(logp, 0.0, 1e-6);
    ck_assert_double_eq_tol(lse, 2000.0, 1e-3);
}
END_TEST

// ---- optimiser kernels --------------------------------------------------------------------------

// One AdamW step against the formula written out by hand.
START_TEST(test_adamw_update) {
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.1f, -0.3f, 0.0f};
    float m[3] = {0.01f, 0.0f, -0.02f}, v[3] = {1e-4f, 0.0f, 4e-4f};
    float lr = 0.01f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    int t = 3;
    float bc1 = 1 - powf(b1, t), bc2 = 1 - powf(b2, t);
    double want[3];
    for (int i = 0; i < 3; i++) {
        double mi = b1 * m[i] + (1 - b1) * g[i], vi = b2 * v[i] + (1 - b2) * g[i] * g[i];
        want[i] = p[i] - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + wd * p[i]);
    }
    be->adamw_update(p, g, m, v, 3, lr, b1, b2, eps, wd, bc1, bc2);
    for (int i = 0; i < 3; i++) ck_assert_double_eq_tol(p[i], want[i], 1e-6);
    ck_assert_double_eq_tol(m[0], 0.9 * 0.01 + 0.1 * 0.1, 1e-7);
    ck_assert_double_eq_tol(v[1], 0.05 * 0.09, 1e-8);
}
END_TEST

START_TEST(test_sum_squares_scale) {
    size_t n = 100003;
    float *x = malloc(n * sizeof(float));
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)((i % 7) - 3) * 0.5f;
        want += (double)x[i] * x[i];
    }
    ck_assert_double_eq_tol(be->sum_squares(x, n), want, 1e-9 * want);
    ck_assert(be->sum_squares(x, n) == be->sum_squares(x, n)); // deterministic
    be->scale(x, 2.0f, n);
    ck_assert_double_eq_tol(be->sum_squares(x, n), 4 * want, 1e-9 * want);
    free(x);
}
END_TEST

int main(void) {
    be = backend_cpu();
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, test_vmath_exp);
    tcase_add_test(tc, test_encoder);
    tcase_add_test(tc, test_layernorm);
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_attention_no_leak);
    tcase_add_test(tc, test_attention_decode);
    tcase_add_test(tc, test_gelu);
    tcase_add_test(tc, test_residual);
    tcase_add_test(tc, test_classifier);
    tcase_add_test(tc, test_classifier_stable);
    tcase_add_test(tc, test_adamw_update);
    tcase_add_test(tc, test_sum_squares_scale);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
