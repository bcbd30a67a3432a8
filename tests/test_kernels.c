// tests/test_kernels.c: every CPU kernel's backward against central finite differences (every
// input and parameter gradient, tiny shapes), forward values against direct double-precision
// formulas and hand computations, the masking guarantees of attention (multi-head and
// grouped-query) and the classifier, the KV-cache decode against the full attention, LoRA's
// accumulation, and frozen parameters (NULL gradients) changing no other output's bits.
// PyTorch parity of the Llama ops is tests/test_kernel_parity.c.
//
// Each check differentiates a scalar probe L = sum_i w_i * out_i with fixed random weights w,
// so the analytic gradient is the kernel's backward with dout = w.
#include "kernels/kernels.h"
#include "kernels/vmath.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdio.h>
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

// ---- RMSNorm ------------------------------------------------------------------------------------

typedef struct {
    int N, C;
    float eps;
    float *inp, *weight, *out, *rstd, *w;
} RmsCtx;

static double rms_loss(void *p) {
    RmsCtx *c = p;
    be->rmsnorm_forward(c->out, c->rstd, c->inp, c->weight, c->N, c->C, c->eps);
    return dot(c->out, c->w, (size_t)c->N * c->C);
}

// Forward against the formula in double; dinp and dweight by finite differences, both started
// from nonzero values (dinp is the residual stream's gradient and dweight a parameter gradient:
// both accumulate), and both accumulations checked against a backward into zeros.
START_TEST(test_rmsnorm) {
    Rng r = rng_init(20);
    RmsCtx c = {.N = 5, .C = 10, .eps = 1e-5f};
    size_t NC = (size_t)c.N * c.C;
    c.inp = rand_vec(NC, &r, -2, 2);
    c.weight = rand_vec(c.C, &r, 0.5, 1.5);
    c.out = zeros(NC), c.rstd = zeros(c.N);
    c.w = rand_vec(NC, &r, -1, 1);
    rms_loss(&c);
    for (int n = 0; n < c.N; n++) {
        double ms = 0;
        for (int k = 0; k < c.C; k++) ms += (double)c.inp[n * c.C + k] * c.inp[n * c.C + k];
        double rstd = 1.0 / sqrt(ms / c.C + c.eps);
        ck_assert_double_eq_tol(c.rstd[n], rstd, 1e-6 * rstd);
        for (int k = 0; k < c.C; k++)
            ck_assert_double_eq_tol(c.out[n * c.C + k], c.inp[n * c.C + k] * rstd * c.weight[k],
                                    1e-5);
    }
    float *dinp = rand_vec(NC, &r, -1, 1), *dinp0 = malloc(NC * sizeof(float));
    float *dw = rand_vec(c.C, &r, -1, 1), *dw0 = malloc(c.C * sizeof(float));
    memcpy(dinp0, dinp, NC * sizeof(float));
    memcpy(dw0, dw, c.C * sizeof(float));
    be->rmsnorm_backward(dinp, dw, c.w, c.inp, c.weight, c.rstd, c.N, c.C);
    float *fresh = zeros(NC), *fresh_dw = zeros(c.C); // the same backward into zeros
    be->rmsnorm_backward(fresh, fresh_dw, c.w, c.inp, c.weight, c.rstd, c.N, c.C);
    for (size_t i = 0; i < NC; i++) {
        ck_assert_double_eq_tol(dinp[i], (double)dinp0[i] + fresh[i], 1e-6);
        dinp[i] -= dinp0[i];
    }
    for (int k = 0; k < c.C; k++) {
        ck_assert_double_eq_tol(dw[k], (double)dw0[k] + fresh_dw[k], 1e-6);
        dw[k] -= dw0[k];
    }
    grad_check("rmsnorm dinp", c.inp, NC, dinp, rms_loss, &c, FD_EPS, FD_TOL, 400);
    grad_check("rmsnorm dweight", c.weight, c.C, dw, rms_loss, &c, FD_EPS, FD_TOL, 400);
    free(c.inp), free(c.weight), free(c.out), free(c.rstd), free(c.w), free(dinp), free(dinp0);
    free(dw), free(dw0), free(fresh), free(fresh_dw);
}
END_TEST

// One 1x4 row by hand, weight (0.5, 1, 1.5, 2), eps 1e-5:
//   x = (1, -2, 3, -4): mean(x^2) = 30/4 = 7.5, rstd = 1/sqrt(7.50001) = 0.36514812823810640;
//   x = 1e-3 (1, -2, 3, -4): mean(x^2) = 7.5e-6, so eps counts: rstd = 1/sqrt(1.75e-5)
//   = 239.04572186687875 (rstd = 1/sqrt(7.5e-6) = 365.148 would mean eps is misplaced);
// out = x * rstd * weight.
START_TEST(test_rmsnorm_by_hand) {
    const float weight[4] = {0.5f, 1.0f, 1.5f, 2.0f};
    const float x[2][4] = {{1, -2, 3, -4}, {1e-3f, -2e-3f, 3e-3f, -4e-3f}};
    const double rstd[2] = {0.36514812823810640, 239.04572186687875};
    const double out[2][4] = {
        {0.1825740641190532, -0.7302962564762128, 1.6431665770714787, -2.921185025904851},
        {0.11952286093343938, -0.4780914437337575, 1.0757057484009542, -1.91236577493503}};
    for (int row = 0; row < 2; row++) {
        float o[4], s;
        be->rmsnorm_forward(o, &s, x[row], weight, 1, 4, 1e-5f);
        ck_assert_double_eq_tol(s, rstd[row], 1e-6 * rstd[row]);
        for (int k = 0; k < 4; k++) ck_assert_double_eq_tol(o[k], out[row][k], 1e-6);
    }
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

// ---- RoPE ---------------------------------------------------------------------------------------

typedef struct {
    int B, T, NH, NKV, hs;
    float theta;
    const int *pos;
    float *x, *buf, *w; // x (B,T,QKV) the input; buf the rotated copy; w the probe weights
} RopeCtx;

static size_t rope_numel(const RopeCtx *c) {
    return (size_t)c->B * c->T * (c->NH + 2 * c->NKV) * c->hs;
}

// rope_forward works in place: the probe rotates a copy, so x keeps the perturbed values.
static double rope_loss(void *p) {
    RopeCtx *c = p;
    memcpy(c->buf, c->x, rope_numel(c) * sizeof(float));
    be->rope_forward(c->buf, c->pos, c->B, c->T, c->NH, c->NKV, c->hs, c->theta);
    return dot(c->buf, c->w, rope_numel(c));
}

// The rotation of pair (i, i + hs/2) at position p in double, from the angle as the contract
// says it is computed: inv_freq and the angle are fp32, as in transformers.
static void rope_expect(double *y0, double *y1, double x0, double x1, int p, int i, int hs,
                        float theta) {
    float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hs);
    double a = (double)((float)p * inv_freq);
    *y0 = x0 * cos(a) - x1 * sin(a);
    *y1 = x1 * cos(a) + x0 * sin(a);
}

// At (hs, NH, NKV) with positions odd, even, zero and large: forward values against the
// rotation in double, v untouched by both directions; <rope(x), y> == <x, rope_backward(y)>
// (the backward is the transpose); the backward by finite differences; backward(forward(x)) = x.
static void check_rope(int hs, int NH, int NKV, uint64_t seed) {
    static const int pos[2 * 5] = {1, 3, 5, 7, 9, 13, 0, 2, 101, 999};
    Rng r = rng_init(seed);
    RopeCtx c = {.B = 2, .T = 5, .NH = NH, .NKV = NKV, .hs = hs, .theta = 10000.0f, .pos = pos};
    size_t n = rope_numel(&c), row = (size_t)(NH + 2 * NKV) * hs;
    int half = hs / 2;
    c.x = rand_vec(n, &r, -1, 1);
    c.buf = zeros(n);
    c.w = rand_vec(n, &r, -1, 1);
    rope_loss(&c);
    for (int t = 0; t < c.B * c.T; t++) {
        const float *x = c.x + t * row, *y = c.buf + t * row;
        for (int h = 0; h < NH + NKV; h++) // q heads then k heads
            for (int i = 0; i < half; i++) {
                double y0, y1;
                int j = h * hs + i;
                rope_expect(&y0, &y1, x[j], x[j + half], pos[t], i, hs, c.theta);
                ck_assert_double_eq_tol(y[j], y0, 1e-6);
                ck_assert_double_eq_tol(y[j + half], y1, 1e-6);
            }
        for (size_t k = (size_t)(NH + NKV) * hs; k < row; k++) ck_assert_float_eq(y[k], x[k]);
    }
    // the transpose: <rope(x), y> == <x, rope_backward(y)>, y = w
    float *g = malloc(n * sizeof(float));
    memcpy(g, c.w, n * sizeof(float));
    be->rope_backward(g, pos, c.B, c.T, NH, NKV, hs, c.theta);
    double lhs = dot(c.buf, c.w, n), rhs = dot(c.x, g, n);
    ck_assert_msg(fabs(lhs - rhs) <= 1e-5 * sqrt(dot(c.x, c.x, n) * dot(c.w, c.w, n)),
                  "rope: <rope(x), y> = %.9g but <x, rope_backward(y)> = %.9g", lhs, rhs);
    for (int t = 0; t < c.B * c.T; t++) // backward leaves v of dqkv as it was
        for (size_t k = (size_t)(NH + NKV) * hs; k < row; k++)
            ck_assert_float_eq(g[t * row + k], c.w[t * row + k]);
    char what[64];
    snprintf(what, sizeof(what), "rope dqkv (hs %d, NH %d, NKV %d)", hs, NH, NKV);
    // every 7th element (7 is coprime with every row length here, so each channel of every q,
    // k and v head is checked at some token): rope is linear, its values are checked above
    grad_check(what, c.x, n, g, rope_loss, &c, FD_EPS, FD_TOL, (int)(n / 7));
    // orthogonal: the backward undoes the forward
    rope_loss(&c);
    be->rope_backward(c.buf, pos, c.B, c.T, NH, NKV, hs, c.theta);
    for (size_t i = 0; i < n; i++) ck_assert_double_eq_tol(c.buf[i], c.x[i], 1e-6);
    free(c.x), free(c.buf), free(c.w), free(g);
}

START_TEST(test_rope) {
    check_rope(6, 4, 2, 21);  // hs/2 = 3: odd
    check_rope(10, 2, 1, 22); // multi-query
    check_rope(8, 3, 3, 23);  // multi-head
}
END_TEST

// The definition, hs = 4, theta = 10000: inv_freq = (10000^0, 10000^(-2/4)) = (1, 0.01), so
// at position p channel 0 pairs with 2 at angle p and channel 1 with 3 at angle p/100:
//   (x0, x1, x2, x3) -> (x0 cos p - x2 sin p, x1 cos(p/100) - x3 sin(p/100),
//                        x2 cos p + x0 sin p, x3 cos(p/100) + x1 sin(p/100))
// in the q head and the k head; v stays. Positions 1 and 3, computed here in double.
START_TEST(test_rope_by_hand) {
    const float in[2][12] = {{0.5f, -1.25f, 2.0f, 0.75f, -0.3f, 1.1f, 0.9f, -2.2f, 7, 8, 9, 10},
                             {1.0f, 0.0f, 0.0f, 1.0f, 0.25f, -0.5f, 1.5f, 3.0f, -7, -8, -9, -10}};
    const int pos[2] = {1, 3};
    float qkv[2][12];
    memcpy(qkv, in, sizeof(qkv));
    be->rope_forward(&qkv[0][0], pos, 1, 2, 1, 1, 4, 10000.0f);
    for (int t = 0; t < 2; t++) {
        double a[2] = {pos[t] * 1.0, pos[t] * 0.01};
        for (int head = 0; head < 2; head++) {
            const float *x = in[t] + 4 * head;
            const float *y = qkv[t] + 4 * head;
            for (int i = 0; i < 2; i++) {
                ck_assert_double_eq_tol(y[i], x[i] * cos(a[i]) - x[i + 2] * sin(a[i]), 1e-6);
                ck_assert_double_eq_tol(y[i + 2], x[i + 2] * cos(a[i]) + x[i] * sin(a[i]), 1e-6);
            }
        }
        for (int k = 8; k < 12; k++) ck_assert_float_eq(qkv[t][k], in[t][k]);
    }
    // two values written out: cos 3 = -0.98999249660044542, sin 3 = 0.14112000805986721
    ck_assert_double_eq_tol(qkv[1][0], -0.98999249660044542, 1e-6); // x0 = 1, x2 = 0
    ck_assert_double_eq_tol(qkv[1][2], 0.14112000805986721, 1e-6);
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
        float *scratch = rand_vec(be->attention_scratch_floats(c.B, c.T, c.NH), &r, -1, 1);
        be->attention_backward(dqkv, scratch, c.w, c.out, c.qkv, c.att, c.seg, c.B, c.T, c.NH, c.NH,
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

// ---- grouped-query attention --------------------------------------------------------------------
// NH = 4 query heads over NKV = 1, 2 or 4 key/value heads of hs = 6 (not a power of two).

typedef struct {
    int B, T, NH, NKV, hs;
    const int *seg;
    float *qkv, *out, *att, *w;
} GqaCtx;

static size_t gqa_row(const GqaCtx *c) {
    return (size_t)(c->NH + 2 * c->NKV) * c->hs;
}

static double gqa_loss(void *p) {
    GqaCtx *c = p;
    be->attention_forward(c->out, c->att, c->qkv, c->seg, c->B, c->T, c->NH, c->NKV, c->hs);
    return dot(c->out, c->w, (size_t)c->B * c->T * c->NH * c->hs);
}

// Row 0: segments {0,1,2} {3,4} {5} (the last a padding segment); row 1: {0..3} {4,5}.
static const int GQA_SEG[2 * 6] = {0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1, 1};

static GqaCtx gqa_make(int NKV, int with_seg, Rng *r) {
    GqaCtx c = {.B = 2, .T = 6, .NH = 4, .NKV = NKV, .hs = 6, .seg = with_seg ? GQA_SEG : NULL};
    size_t N = (size_t)c.B * c.T, C = (size_t)c.NH * c.hs;
    c.qkv = rand_vec(N * gqa_row(&c), r, -1.5, 1.5);
    c.out = zeros(N * C);
    c.att = zeros((size_t)c.B * c.NH * c.T * c.T);
    c.w = rand_vec(N * C, r, -1, 1);
    return c;
}

static void gqa_free(GqaCtx *c) {
    free(c->qkv), free(c->out), free(c->att), free(c->w);
}

// dqkv of the probe (dout = w) into dqkv, from a fresh forward.
static void gqa_grad(GqaCtx *c, float *dqkv) {
    float *datt = rand_vec(be->attention_scratch_floats(c->B, c->T, c->NH), &(Rng){99}, -1, 1);
    gqa_loss(c);
    be->attention_backward(dqkv, datt, c->w, c->out, c->qkv, c->att, c->seg, c->B, c->T, c->NH,
                           c->NKV, c->hs);
    free(datt);
}

// out and att against softmax attention in double, query head h reading key/value head
// h / (NH/NKV) at offsets NH*hs (k) and (NH+NKV)*hs (v) of a token's row; masked entries of att
// exactly 0.
static void gqa_check_forward(const GqaCtx *c) {
    int T = c->T, hs = c->hs, C = c->NH * c->hs, group = c->NH / c->NKV;
    size_t row = gqa_row(c);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = c->qkv + (b * T + t) * row + h * hs;
                size_t koff = (size_t)(c->NH + h / group) * hs,
                       voff = (size_t)(c->NH + c->NKV + h / group) * hs;
                const float *a = c->att + (((size_t)b * c->NH + h) * T + t) * T;
                double sc[16], mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    int vis = !c->seg || c->seg[b * T + s] == c->seg[b * T + t];
                    double d = 0;
                    for (int i = 0; i < hs; i++)
                        d += (double)q[i] * c->qkv[(b * T + s) * row + koff + i];
                    sc[s] = vis ? d / sqrt(hs) : -INFINITY;
                    mx = fmax(mx, sc[s]);
                }
                for (int s = 0; s <= t; s++) sum += exp(sc[s] - mx);
                for (int s = 0; s < T; s++) {
                    if (s > t || sc[s] == -INFINITY)
                        ck_assert_float_eq(a[s], 0.0f);
                    else
                        ck_assert_double_eq_tol(a[s], exp(sc[s] - mx) / sum, 1e-6);
                }
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++)
                        o += exp(sc[s] - mx) / sum * c->qkv[(b * T + s) * row + voff + i];
                    ck_assert_double_eq_tol(c->out[(b * T + t) * C + h * hs + i], o, 1e-5);
                }
            }
}

// Forward values and dqkv by finite differences for NKV = 1, 2, 4 with and without segments.
// dqkv starts as garbage: it is written, and a key/value head's gradient sums its query heads.
START_TEST(test_attention_gqa) {
    const int nkv[3] = {1, 2, 4};
    for (int k = 0; k < 3; k++)
        for (int with_seg = 0; with_seg < 2; with_seg++) {
            Rng r = rng_init(30 + 2 * k + with_seg);
            GqaCtx c = gqa_make(nkv[k], with_seg, &r);
            size_t n = (size_t)c.B * c.T * gqa_row(&c);
            float *dqkv = rand_vec(n, &r, -1, 1);
            gqa_grad(&c, dqkv);
            gqa_check_forward(&c);
            char what[64];
            snprintf(what, sizeof(what), "attention dqkv (NH 4, NKV %d%s)", nkv[k],
                     with_seg ? ", segments" : "");
            // every 5th element: 5 is coprime with the row lengths 36, 48 and 72, so each
            // channel of every q, k and v head is checked at two or more tokens
            grad_check(what, c.qkv, n, dqkv, gqa_loss, &c, FD_EPS, FD_TOL, (int)(n / 5));
            free(dqkv);
            gqa_free(&c);
        }
}
END_TEST

// Perturbs token (pb, pt) and checks that the out and dqkv rows of every token it must not
// reach are unchanged bit for bit, and that it does change its own output. With segments the
// token's q, k, v and dout all change, and it must not reach other rows or other segments of
// its row. Without segments it is right padding: its dout is 0 (a padding token carries no
// loss, nor do the padding tokens after it) in both runs, and it must not reach other rows or
// earlier positions of its row.
static void gqa_leak(int NKV, int with_seg, int pb, int pt, uint64_t seed) {
    Rng r = rng_init(seed);
    GqaCtx c = gqa_make(NKV, with_seg, &r);
    int T = c.T, C = c.NH * c.hs;
    size_t N = (size_t)c.B * T, row = gqa_row(&c);
    float *out0 = malloc(N * C * sizeof(float)), *d0 = zeros(N * row), *d1 = zeros(N * row);
    if (!with_seg) // padding from pt to the row's end
        memset(c.w + (pb * T + pt) * C, 0, (size_t)(T - pt) * C * sizeof(float));
    gqa_grad(&c, d0);
    memcpy(out0, c.out, N * C * sizeof(float));
    for (size_t k = 0; k < row; k++) c.qkv[(pb * T + pt) * row + k] += (k % 2 ? 10.0f : -7.0f);
    if (with_seg)
        for (int k = 0; k < C; k++) c.w[(pb * T + pt) * C + k] = 5.0f - c.w[(pb * T + pt) * C + k];
    gqa_grad(&c, d1);
    int changed = 0;
    for (int b = 0; b < c.B; b++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            int apart = b != pb || (with_seg ? c.seg[i] != c.seg[pb * T + pt] : t < pt);
            if (!apart) {
                for (int k = 0; k < C; k++) changed += c.out[i * C + k] != out0[i * C + k];
                continue;
            }
            for (int k = 0; k < C; k++)
                ck_assert_msg(c.out[i * C + k] == out0[i * C + k],
                              "NKV %d: token (%d,%d) reached out of (%d,%d)", NKV, pb, pt, b, t);
            for (size_t k = 0; k < row; k++)
                ck_assert_msg(d1[i * row + k] == d0[i * row + k],
                              "NKV %d: token (%d,%d) reached dqkv of (%d,%d)", NKV, pb, pt, b, t);
        }
    ck_assert_msg(changed > 0, "the perturbation of (%d,%d) changed nothing", pb, pt);
    free(out0), free(d0), free(d1);
    gqa_free(&c);
}

START_TEST(test_attention_gqa_no_leak) {
    for (int NKV = 1; NKV <= 2; NKV++) {
        gqa_leak(NKV, 1, 0, 3, 40); // segment 1 of row 0, between segments 0 and 2
        gqa_leak(NKV, 1, 0, 5, 41); // row 0's padding segment
        gqa_leak(NKV, 1, 1, 4, 42); // segment 1 of row 1
        gqa_leak(NKV, 1, 1, 0, 43); // the first token of a row
        gqa_leak(NKV, 0, 0, 5, 44); // right padding without segments
        gqa_leak(NKV, 0, 1, 4, 45); // two padding positions: the first one
    }
}
END_TEST

// kvcache_write + attention_decode against attention_forward's row at the decoded position,
// NH = 4 over NKV key/value heads. Row 0 decodes position T-1, row 1 position T-3, so row 1's
// cache holds later tokens that the decode must ignore. The prefill writes positions 0..T-2; the
// decoded token's slot is poisoned first, so the decode reads what its own write put there.
// rotary: the full sequence is rotated at positions 0..T-1, the prefill at 0..T-2 and the
// decoded token alone at its position, so cached keys carry their own rotation.
static void check_gqa_decode(int NKV, int rotary) {
    Rng r = rng_init(50 + 2 * NKV + rotary);
    GqaCtx c = gqa_make(NKV, 0, &r);
    int B = c.B, T = c.T, NH = c.NH, hs = c.hs, C = NH * hs, maxT = 9, KV = NKV * hs;
    size_t row = gqa_row(&c);
    int full_pos[2 * 6], pos[2] = {T - 1, T - 3};
    for (int i = 0; i < B * T; i++) full_pos[i] = i % T;
    float *raw = malloc((size_t)B * T * row * sizeof(float));
    memcpy(raw, c.qkv, (size_t)B * T * row * sizeof(float));
    if (rotary) be->rope_forward(c.qkv, full_pos, B, T, NH, NKV, hs, 10000.0f);
    gqa_loss(&c);
    // prefill positions 0..T-2 of each row, rotated by themselves
    float *pre = malloc((size_t)B * (T - 1) * row * sizeof(float));
    int pre_pos[2 * 5];
    for (int b = 0; b < B; b++) {
        memcpy(pre + (size_t)b * (T - 1) * row, raw + (size_t)b * T * row,
               (T - 1) * row * sizeof(float));
        for (int t = 0; t < T - 1; t++) pre_pos[b * (T - 1) + t] = t;
    }
    if (rotary) be->rope_forward(pre, pre_pos, B, T - 1, NH, NKV, hs, 10000.0f);
    float *kc = zeros((size_t)B * maxT * KV), *vc = zeros((size_t)B * maxT * KV);
    be->kvcache_write(kc, vc, pre, NULL, B, T - 1, maxT, NH, NKV, hs);
    // the decoded tokens; cache slots from pos[b] (about to be written) and past T-1 poisoned
    float *tok = malloc((size_t)B * row * sizeof(float)), *out = zeros((size_t)B * C);
    for (int b = 0; b < B; b++) {
        memcpy(tok + b * row, raw + ((size_t)b * T + pos[b]) * row, row * sizeof(float));
        for (int p = 0; p < maxT; p++)
            if (p == pos[b] || p >= T - 1)
                for (int k = 0; k < KV; k++)
                    kc[((size_t)b * maxT + p) * KV + k] = vc[((size_t)b * maxT + p) * KV + k] =
                        1e3f;
    }
    if (rotary) be->rope_forward(tok, pos, B, 1, NH, NKV, hs, 10000.0f);
    be->kvcache_write(kc, vc, tok, pos, B, 1, maxT, NH, NKV, hs);
    be->attention_decode(out, tok, kc, vc, pos, B, maxT, NH, NKV, hs);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < C; k++)
            ck_assert_msg(fabsf(out[b * C + k] - c.out[((size_t)b * T + pos[b]) * C + k]) <= 2e-6f,
                          "decode NKV %d%s row %d [%d]: %.8g vs forward %.8g", NKV,
                          rotary ? " rotary" : "", b, k, out[b * C + k],
                          c.out[((size_t)b * T + pos[b]) * C + k]);
    free(raw), free(pre), free(kc), free(vc), free(tok), free(out);
    gqa_free(&c);
}

START_TEST(test_attention_gqa_decode) {
    for (int NKV = 1; NKV <= 2; NKV++) {
        check_gqa_decode(NKV, 0);
        check_gqa_decode(NKV, 1);
    }
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

// ---- SwiGLU -------------------------------------------------------------------------------------

typedef struct {
    int N, F;
    float *inp, *out, *w;
} SwiCtx;

static double swiglu_loss(void *p) {
    SwiCtx *c = p;
    be->swiglu_forward(c->out, c->inp, c->N, c->F);
    return dot(c->out, c->w, (size_t)c->N * c->F);
}

// Forward and backward against silu(g) * u and its derivatives in double, saturated gates
// included; dgate and dup (each row's halves of dinp, which starts as garbage: it is written)
// by finite differences.
START_TEST(test_swiglu) {
    Rng r = rng_init(60);
    SwiCtx c = {.N = 4, .F = 7};
    size_t n2 = (size_t)c.N * 2 * c.F, n = (size_t)c.N * c.F;
    c.inp = rand_vec(n2, &r, -4, 4);
    c.inp[0] = -30.0f, c.inp[1] = 30.0f, c.inp[2] = 0.0f; // sigmoid saturated both ways; silu(0)
    c.out = zeros(n);
    c.w = rand_vec(n, &r, -1, 1);
    swiglu_loss(&c);
    for (int i = 0; i < c.N; i++)
        for (int j = 0; j < c.F; j++) {
            double g = c.inp[i * 2 * c.F + j], u = c.inp[i * 2 * c.F + c.F + j];
            ck_assert_double_eq_tol(c.out[i * c.F + j], g / (1 + exp(-g)) * u, 1e-5);
        }
    float *dinp = rand_vec(n2, &r, -1, 1);
    be->swiglu_backward(dinp, c.inp, c.w, c.N, c.F);
    for (int i = 0; i < c.N; i++) // against the derivatives in double: saturation included
        for (int j = 0; j < c.F; j++) {
            double g = c.inp[i * 2 * c.F + j], u = c.inp[i * 2 * c.F + c.F + j];
            double s = 1 / (1 + exp(-g)), d = c.w[i * c.F + j];
            ck_assert_double_eq_tol(dinp[i * 2 * c.F + j], d * u * s * (1 + g * (1 - s)), 1e-5);
            ck_assert_double_eq_tol(dinp[i * 2 * c.F + c.F + j], d * g * s, 1e-5);
        }
    for (int i = 0; i < c.N; i++) {
        float *g = c.inp + i * 2 * c.F, *dg = dinp + i * 2 * c.F;
        grad_check("swiglu dgate", g, c.F, dg, swiglu_loss, &c, FD_EPS, FD_TOL, 64);
        grad_check("swiglu dup", g + c.F, c.F, dg + c.F, swiglu_loss, &c, FD_EPS, FD_TOL, 64);
    }
    free(c.inp), free(c.out), free(c.w), free(dinp);
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

// ---- LoRA ---------------------------------------------------------------------------------------

typedef struct {
    int N, C, OC, o0, OS, r;
    float scale;
    float *inp, *a, *b, *base, *out, *h, *w; // base: the frozen layer's output, out = base + LoRA
} LoraCtx;

static double lora_loss(void *p) {
    LoraCtx *c = p;
    size_t NO = (size_t)c->N * c->OC;
    memcpy(c->out, c->base, NO * sizeof(float));
    be->lora_forward(c->out, c->h, c->inp, c->a, c->b, c->N, c->C, c->OC, c->o0, c->OS, c->r,
                     c->scale);
    return dot(c->out, c->w, NO);
}

// An adapter on the output columns [3, 8) of an 11-column layer: r = 3, odd N and C, scale 0.75
// (alpha 2.25 over r).
static LoraCtx lora_make(Rng *r) {
    LoraCtx c = {.N = 5, .C = 7, .OC = 11, .o0 = 3, .OS = 5, .r = 3, .scale = 0.75f};
    c.inp = rand_vec((size_t)c.N * c.C, r, -1, 1);
    c.a = rand_vec((size_t)c.r * c.C, r, -1, 1);
    c.b = rand_vec((size_t)c.OS * c.r, r, -1, 1);
    c.base = rand_vec((size_t)c.N * c.OC, r, -1, 1);
    c.out = zeros((size_t)c.N * c.OC);
    c.h = zeros((size_t)c.N * c.r);
    c.w = rand_vec((size_t)c.N * c.OC, r, -1, 1);
    return c;
}

static void lora_free(LoraCtx *c) {
    free(c->inp), free(c->a), free(c->b), free(c->base), free(c->out), free(c->h), free(c->w);
}

// Forward values against double formulas (columns outside the block keep the base's bits), then
// every gradient against central differences.
START_TEST(test_lora) {
    Rng r = rng_init(31);
    LoraCtx c = lora_make(&r);
    lora_loss(&c);
    for (int n = 0; n < c.N; n++) {
        double h[3];
        for (int k = 0; k < c.r; k++) {
            h[k] = 0;
            for (int i = 0; i < c.C; i++) h[k] += (double)c.inp[n * c.C + i] * c.a[k * c.C + i];
            ck_assert_double_eq_tol(c.h[n * c.r + k], h[k], 1e-5);
        }
        for (int o = 0; o < c.OC; o++) {
            float got = c.out[n * c.OC + o], base = c.base[n * c.OC + o];
            if (o < c.o0 || o >= c.o0 + c.OS) {
                ck_assert_msg(got == base, "column %d outside the block changed", o);
                continue;
            }
            double want = 0;
            for (int k = 0; k < c.r; k++) want += h[k] * c.b[(o - c.o0) * c.r + k];
            ck_assert_double_eq_tol(got, base + c.scale * want, 1e-5);
        }
    }
    size_t nx = (size_t)c.N * c.C, na = (size_t)c.r * c.C, nb = (size_t)c.OS * c.r;
    float *dinp = zeros(nx), *da = zeros(na), *db = zeros(nb);
    float *dh = rand_vec((size_t)c.N * c.r, &r, -1, 1); // written: garbage must not leak
    be->lora_backward(dinp, da, db, dh, c.w, c.inp, c.h, c.a, c.b, c.N, c.C, c.OC, c.o0, c.OS, c.r,
                      c.scale);
    for (int n = 0; n < c.N; n++) // dh = scale * g @ b, g the block of dout
        for (int k = 0; k < c.r; k++) {
            double want = 0;
            for (int o = 0; o < c.OS; o++)
                want += (double)c.w[n * c.OC + c.o0 + o] * c.b[o * c.r + k];
            ck_assert_double_eq_tol(dh[n * c.r + k], c.scale * want, 1e-5);
        }
    double e[3] = {grad_check("lora dinp", c.inp, nx, dinp, lora_loss, &c, FD_EPS, FD_TOL, 400),
                   grad_check("lora da", c.a, na, da, lora_loss, &c, FD_EPS, FD_TOL, 400),
                   grad_check("lora db", c.b, nb, db, lora_loss, &c, FD_EPS, FD_TOL, 400)};
    if (getenv("LC_VERBOSE"))
        fprintf(stderr, "lora gradient check errors: dinp %.3g, da %.3g, db %.3g\n", e[0], e[1],
                e[2]);
    free(dinp), free(da), free(db), free(dh);
    lora_free(&c);
}
END_TEST

// dinp, da and db ACCUMULATE onto nonzero values (dinp holds the frozen layer's input gradient);
// with da and db NULL (frozen adapter halves) dinp and dh keep the same bits.
START_TEST(test_lora_accumulates) {
    Rng r = rng_init(32);
    LoraCtx c = lora_make(&r);
    lora_loss(&c);
    size_t nx = (size_t)c.N * c.C, na = (size_t)c.r * c.C, nb = (size_t)c.OS * c.r;
    size_t nh = (size_t)c.N * c.r;
    float *dinp0 = rand_vec(nx, &r, -1, 1), *da0 = rand_vec(na, &r, -1, 1);
    float *db0 = rand_vec(nb, &r, -1, 1);
    float *dinp = malloc(nx * sizeof(float)), *da = malloc(na * sizeof(float));
    float *db = malloc(nb * sizeof(float)), *dh = zeros(nh);
    memcpy(dinp, dinp0, nx * sizeof(float));
    memcpy(da, da0, na * sizeof(float));
    memcpy(db, db0, nb * sizeof(float));
    be->lora_backward(dinp, da, db, dh, c.w, c.inp, c.h, c.a, c.b, c.N, c.C, c.OC, c.o0, c.OS, c.r,
                      c.scale);
    // the same sums in double from dh (checked against its formula by test_lora)
    for (int n = 0; n < c.N; n++)
        for (int i = 0; i < c.C; i++) {
            double want = dinp0[n * c.C + i];
            for (int k = 0; k < c.r; k++) want += (double)dh[n * c.r + k] * c.a[k * c.C + i];
            ck_assert_double_eq_tol(dinp[n * c.C + i], want, 1e-5);
        }
    for (int k = 0; k < c.r; k++)
        for (int i = 0; i < c.C; i++) {
            double want = da0[k * c.C + i];
            for (int n = 0; n < c.N; n++) want += (double)dh[n * c.r + k] * c.inp[n * c.C + i];
            ck_assert_double_eq_tol(da[k * c.C + i], want, 1e-5);
        }
    for (int o = 0; o < c.OS; o++)
        for (int k = 0; k < c.r; k++) {
            double want = 0;
            for (int n = 0; n < c.N; n++)
                want += (double)c.w[n * c.OC + c.o0 + o] * c.h[n * c.r + k];
            ck_assert_double_eq_tol(db[o * c.r + k], db0[o * c.r + k] + c.scale * want, 1e-5);
        }
    // frozen a and b: the same dinp and dh bits, nothing else written
    float *dinp2 = malloc(nx * sizeof(float)), *dh2 = zeros(nh);
    memcpy(dinp2, dinp0, nx * sizeof(float));
    be->lora_backward(dinp2, NULL, NULL, dh2, c.w, c.inp, c.h, c.a, c.b, c.N, c.C, c.OC, c.o0, c.OS,
                      c.r, c.scale);
    ck_assert(memcmp(dinp2, dinp, nx * sizeof(float)) == 0);
    ck_assert(memcmp(dh2, dh, nh * sizeof(float)) == 0);
    free(dinp0), free(da0), free(db0), free(dinp), free(da), free(db), free(dh), free(dinp2);
    free(dh2);
    lora_free(&c);
}
END_TEST

// ---- frozen parameters: NULL parameter gradients
// --------------------------------------------------

// Each backward with its parameter gradients NULL (frozen) gives the input gradient, and every
// parameter gradient still given, bit for bit as the call with all of them.
static void expect_same(const char *what, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s[%zu]: %.9g, want %.9g",
                      what, i, got[i], want[i]);
}

START_TEST(test_null_param_grads) {
    Rng r = rng_init(33);
    int N = 7, C = 13, OC = 9;
    size_t NC = (size_t)N * C, NO = (size_t)N * OC;
    float *inp = rand_vec(NC, &r, -2, 2), *dout = rand_vec(NC, &r, -1, 1);
    float *dinp0 = rand_vec(NC, &r, -1, 1), *dinp = malloc(NC * sizeof(float));
    float *dinp2 = malloc(NC * sizeof(float));
    float *dw = zeros(C), *db = zeros(C), *dw2 = zeros(C), *db2 = zeros(C);

    // matmul: dweight NULL, with and without dbias
    float *x = rand_vec(NC, &r, -1, 1), *wt = rand_vec((size_t)OC * C, &r, -1, 1);
    float *mdout = rand_vec(NO, &r, -1, 1), *mdw = zeros((size_t)OC * C), *mdb = zeros(OC);
    float *mdb2 = zeros(OC);
    be->matmul_backward(dinp, mdw, mdb, mdout, x, wt, N, C, OC);
    be->matmul_backward(dinp2, NULL, mdb2, mdout, x, wt, N, C, OC);
    expect_same("matmul dinp (dweight NULL)", dinp2, dinp, NC);
    expect_same("matmul dbias (dweight NULL)", mdb2, mdb, OC);
    memset(dinp2, 0, NC * sizeof(float));
    be->matmul_backward(dinp2, NULL, NULL, mdout, x, wt, N, C, OC);
    expect_same("matmul dinp (dweight, dbias NULL)", dinp2, dinp, NC);

    // layernorm: each of dweight, dbias NULL, then both
    float *lw = rand_vec(C, &r, 0.5, 1.5), *lb = rand_vec(C, &r, -0.5, 0.5);
    float *out = zeros(NC), *mean = zeros(N), *rstd = zeros(N);
    be->layernorm_forward(out, mean, rstd, inp, lw, lb, N, C);
    memcpy(dinp, dinp0, NC * sizeof(float));
    be->layernorm_backward(dinp, dw, db, dout, inp, lw, mean, rstd, N, C);
    for (int v = 0; v < 3; v++) { // 0: dweight NULL, 1: dbias NULL, 2: both
        memcpy(dinp2, dinp0, NC * sizeof(float));
        memset(dw2, 0, C * sizeof(float)), memset(db2, 0, C * sizeof(float));
        be->layernorm_backward(dinp2, v == 1 ? dw2 : NULL, v == 0 ? db2 : NULL, dout, inp, lw, mean,
                               rstd, N, C);
        expect_same("layernorm dinp (frozen)", dinp2, dinp, NC);
        if (v == 0) expect_same("layernorm dbias (dweight NULL)", db2, db, C);
        if (v == 1) expect_same("layernorm dweight (dbias NULL)", dw2, dw, C);
    }

    // rmsnorm: dweight NULL
    be->rmsnorm_forward(out, rstd, inp, lw, N, C, 1e-5f);
    memcpy(dinp, dinp0, NC * sizeof(float));
    memcpy(dinp2, dinp0, NC * sizeof(float));
    be->rmsnorm_backward(dinp, dw, dout, inp, lw, rstd, N, C);
    be->rmsnorm_backward(dinp2, NULL, dout, inp, lw, rstd, N, C);
    expect_same("rmsnorm dinp (dweight NULL)", dinp2, dinp, NC);

    // classifier: dwte NULL (a frozen output layer): the same dx and dlogits
    ClsCtx c = cls_make(&r), c2 = cls_make(&r);
    size_t nx = (size_t)c.N * c.C, nw = (size_t)c.Vp * c.C, nl = (size_t)c.N * c.Vp;
    memcpy(c2.x, c.x, nx * sizeof(float)), memcpy(c2.wte, c.wte, nw * sizeof(float));
    memcpy(c2.a, c.a, c.N * sizeof(float)), memcpy(c2.e, c.e, c.N * sizeof(float));
    cls_loss(&c), cls_loss(&c2);
    float *dx = zeros(nx), *dx2 = zeros(nx), *dwte = zeros(nw);
    be->classifier_backward(dx, dwte, c.logits, c.x, c.wte, c.lse, c.ent, c.targets, c.a, c.e, c.N,
                            c.C, c.V, c.Vp, c.inv_temp);
    be->classifier_backward(dx2, NULL, c2.logits, c2.x, c2.wte, c2.lse, c2.ent, c2.targets, c2.a,
                            c2.e, c2.N, c2.C, c2.V, c2.Vp, c2.inv_temp);
    expect_same("classifier dx (dwte NULL)", dx2, dx, nx);
    expect_same("classifier dlogits (dwte NULL)", c2.logits, c.logits, nl);

    // encoder: dwte NULL with dwpe given; both NULL touches nothing
    int B = 2, T = 5, EC = 6, Vp = 64, maxT = 8, tokens[10] = {3, 7, 3, 0, 63, 7, 7, 1, 2, 3};
    float *edout = rand_vec((size_t)B * T * EC, &r, -1, 1);
    float *dwte1 = zeros((size_t)Vp * EC), *dwpe1 = zeros((size_t)maxT * EC);
    float *dwpe2 = zeros((size_t)maxT * EC);
    be->encoder_backward(dwte1, dwpe1, edout, tokens, NULL, B, T, EC);
    be->encoder_backward(NULL, dwpe2, edout, tokens, NULL, B, T, EC);
    expect_same("encoder dwpe (dwte NULL)", dwpe2, dwpe1, (size_t)maxT * EC);
    be->encoder_backward(NULL, NULL, edout, tokens, NULL, B, T, EC);

    free(inp), free(dout), free(dinp0), free(dinp), free(dinp2), free(dw), free(db), free(dw2);
    free(db2), free(x), free(wt), free(mdout), free(mdw), free(mdb), free(mdb2), free(lw), free(lb);
    free(out), free(mean), free(rstd), free(dx), free(dx2), free(dwte), free(edout), free(dwte1);
    free(dwpe1), free(dwpe2);
    ClsCtx *cs[2] = {&c, &c2};
    for (int i = 0; i < 2; i++)
        free(cs[i]->x), free(cs[i]->wte), free(cs[i]->logits), free(cs[i]->lse), free(cs[i]->logp),
            free(cs[i]->ent), free(cs[i]->a), free(cs[i]->e);
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
    float copy[3] = {0};
    be->adamw_update(p, copy, g, m, v, 3, lr, b1, b2, eps, wd, bc1, bc2);
    for (int i = 0; i < 3; i++) ck_assert_double_eq_tol(p[i], want[i], 1e-6);
    ck_assert_mem_eq(copy, p, sizeof(p)); // the compute copy: fp32 on the CPU, so exactly p
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
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rmsnorm_by_hand);
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_rope_by_hand);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_attention_no_leak);
    tcase_add_test(tc, test_attention_decode);
    tcase_add_test(tc, test_attention_gqa);
    tcase_add_test(tc, test_attention_gqa_no_leak);
    tcase_add_test(tc, test_attention_gqa_decode);
    tcase_add_test(tc, test_gelu);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_residual);
    tcase_add_test(tc, test_classifier);
    tcase_add_test(tc, test_classifier_stable);
    tcase_add_test(tc, test_lora);
    tcase_add_test(tc, test_lora_accumulates);
    tcase_add_test(tc, test_null_param_grads);
    tcase_add_test(tc, test_adamw_update);
    tcase_add_test(tc, test_sum_squares_scale);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
