// The CPU backend's `attention: flash` kernels (kernels/cpu/attention_flash.c) against the exact
// kernel (attention.c): forward and backward at odd shapes (T not a multiple of the blocks,
// T = 1, several segments per row with padding, grouped-query heads, odd and even head sizes),
// a finite-difference check of the flash backward, determinism, the state's size, and that
// backend_open selects the table.
#include "common/rng.h"
#include "kernels/kernels.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Backend *exact, *flash;

typedef struct {
    int B, T, NH, NKV, hs;
    bool segs;
} Shape;

// One problem: qkv (B,T,QKV), seg (B,T) or NULL, w (B,T,C) the upstream gradient.
typedef struct {
    Shape s;
    size_t nqkv, nout;
    int *seg;
    float *qkv, *w;
} Problem;

static float *rand_vec(size_t n, Rng *r, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    fill_uniform(x, n, r, lo, hi);
    return x;
}

// Segments of random length 1..12 per row, the last stretch of a row (when it has one) a
// padding segment of id -1, as the packed loader lays them out.
static int *segments(int B, int T, Rng *r) {
    int *seg = malloc(sizeof(int) * B * T);
    for (int b = 0; b < B; b++) {
        int id = 0, left = 1 + (int)rng_below(r, 12), pad = T > 4 ? T - T / 5 : T;
        for (int t = 0; t < T; t++) {
            if (--left == 0) id++, left = 1 + (int)rng_below(r, 12);
            seg[b * T + t] = t >= pad ? -1 : id;
        }
    }
    return seg;
}

static Problem problem(Shape s, uint64_t seed) {
    Rng r = rng_init(seed);
    Problem p = {.s = s};
    p.nqkv = (size_t)s.B * s.T * (s.NH + 2 * s.NKV) * s.hs;
    p.nout = (size_t)s.B * s.T * s.NH * s.hs;
    p.qkv = rand_vec(p.nqkv, &r, -1.5f, 1.5f);
    p.w = rand_vec(p.nout, &r, -1, 1);
    p.seg = s.segs ? segments(s.B, s.T, &r) : NULL;
    return p;
}

static void problem_free(Problem *p) {
    free(p->qkv), free(p->w), free(p->seg);
}

// Forward then backward (dout = w) with backend be: out (nout) and dqkv (nqkv) written.
static void run(const Backend *be, const Problem *p, float *out, float *dqkv) {
    Shape s = p->s;
    float *state = malloc(be->attention_state_floats(s.B, s.T, s.NH) * sizeof(float));
    float *scratch = malloc(be->attention_scratch_floats(s.B, s.T, s.NH) * sizeof(float));
    be->attention_forward(out, state, p->qkv, p->seg, s.B, s.T, s.NH, s.NKV, s.hs);
    be->attention_backward(dqkv, scratch, p->w, out, p->qkv, state, p->seg, s.B, s.T, s.NH, s.NKV,
                           s.hs);
    free(state), free(scratch);
}

// Elementwise: fails where |got - want| > rel |want| + abs; returns max |got - want|.
static double close_to(const char *what, const float *got, const float *want, size_t n, double rel,
                       double abs_tol) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > worst) worst = d;
        ck_assert_msg(d <= rel * fabs(want[i]) + abs_tol, "%s[%zu]: %.9g, exact %.9g", what, i,
                      got[i], want[i]);
    }
    return worst;
}

static const Shape SHAPES[] = {
    {2, 37, 4, 2, 5, true},  {1, 1, 4, 1, 8, false},  {1, 1, 2, 2, 3, true},
    {2, 70, 4, 4, 6, true},  {3, 100, 4, 1, 7, true}, {1, 64, 2, 2, 16, false},
    {2, 129, 4, 2, 8, true}, {1, 33, 4, 1, 4, false},
};

START_TEST(test_flash_matches_exact) {
    Shape s = SHAPES[_i];
    Problem p = problem(s, 100 + (uint64_t)_i);
    float *o0 = malloc(p.nout * sizeof(float)), *o1 = malloc(p.nout * sizeof(float));
    float *g0 = malloc(p.nqkv * sizeof(float)), *g1 = malloc(p.nqkv * sizeof(float));
    run(exact, &p, o0, g0);
    run(flash, &p, o1, g1);
    double eo = close_to("out", o1, o0, p.nout, 1e-5, 1e-6);
    double eg = close_to("dqkv", g1, g0, p.nqkv, 1e-5, 1e-5);
    printf("flash vs exact B%d T%d NH%d NKV%d hs%d%s: out max |diff| %.3g, dqkv max |diff| %.3g\n",
           s.B, s.T, s.NH, s.NKV, s.hs, s.segs ? " segments" : "", eo, eg);
    free(o0), free(o1), free(g0), free(g1);
    problem_free(&p);
}
END_TEST

typedef struct {
    Problem *p;
    float *out, *lse;
} FdCtx;

static double fd_loss(void *v) {
    FdCtx *c = v;
    Shape s = c->p->s;
    flash->attention_forward(c->out, c->lse, c->p->qkv, c->p->seg, s.B, s.T, s.NH, s.NKV, s.hs);
    double sum = 0.0;
    for (size_t i = 0; i < c->p->nout; i++) sum += (double)c->out[i] * c->p->w[i];
    return sum;
}

// The flash backward against central differences of sum(w * out), with segments and GQA.
START_TEST(test_flash_finite_differences) {
    Shape s = {2, 21, 4, 2, 5, true};
    Problem p = problem(s, 7);
    float *out = malloc(p.nout * sizeof(float)), *dqkv = malloc(p.nqkv * sizeof(float));
    run(flash, &p, out, dqkv);
    FdCtx c = {&p, out, malloc(flash->attention_state_floats(s.B, s.T, s.NH) * sizeof(float))};
    double e = grad_check("flash dqkv", p.qkv, p.nqkv, dqkv, fd_loss, &c, 1e-2f, 5e-4, 400);
    printf("flash finite differences: normwise error %.3g\n", e);
    free(out), free(dqkv), free(c.lse);
    problem_free(&p);
}
END_TEST

// Two runs give the same bits.
START_TEST(test_flash_deterministic) {
    Shape s = {2, 150, 4, 2, 8, true};
    Problem p = problem(s, 9);
    float *o0 = malloc(p.nout * sizeof(float)), *o1 = malloc(p.nout * sizeof(float));
    float *g0 = malloc(p.nqkv * sizeof(float)), *g1 = malloc(p.nqkv * sizeof(float));
    run(flash, &p, o0, g0);
    run(flash, &p, o1, g1);
    ck_assert_mem_eq(o0, o1, p.nout * sizeof(float));
    ck_assert_mem_eq(g0, g1, p.nqkv * sizeof(float));
    free(o0), free(o1), free(g0), free(g1);
    problem_free(&p);
}
END_TEST

// The state is the logsumexp (B,NH,T): linear in T; the exact kernel's is (B,NH,T,T). The state
// is the natural log of the row's softmax denominator: for T = 1 the single scaled score.
START_TEST(test_flash_state) {
    ck_assert_uint_eq(flash->attention_state_floats(2, 1024, 12), (size_t)2 * 12 * 1024);
    ck_assert_uint_eq(flash->attention_scratch_floats(2, 1024, 12), (size_t)2 * 12 * 1024);
    ck_assert_uint_eq(exact->attention_state_floats(2, 1024, 12), (size_t)2 * 12 * 1024 * 1024);
    Shape s = {1, 1, 1, 1, 4, false};
    Problem p = problem(s, 11);
    float out[4], lse;
    flash->attention_forward(out, &lse, p.qkv, NULL, 1, 1, 1, 1, 4);
    double d = 0;
    for (int i = 0; i < 4; i++) d += (double)p.qkv[i] * p.qkv[4 + i];
    ck_assert_double_eq_tol(lse, d / 2.0, 1e-6);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(out[i], p.qkv[8 + i]);
    problem_free(&p);
}
END_TEST

// backend_open: `flash` selects the flash table on the CPU, the default the exact one.
START_TEST(test_flash_selected) {
    BackendOptions o = {.attention = BACKEND_ATTENTION_FLASH};
    char why[256];
    ck_assert_ptr_eq(backend_open("cpu", &o, why, sizeof(why)), flash);
    ck_assert_ptr_eq(backend_open("cpu", NULL, why, sizeof(why)), exact);
    ck_assert_str_eq(flash->name, "cpu");
    ck_assert_ptr_eq(flash->matmul_forward, exact->matmul_forward);
    ck_assert_ptr_ne(flash->attention_forward, exact->attention_forward);
}
END_TEST

int main(void) {
    exact = backend_cpu();
    flash = backend_cpu_flash();
    Suite *s = suite_create("attention_flash");
    TCase *tc = tcase_create("cpu");
    tcase_add_loop_test(tc, test_flash_matches_exact, 0, (int)(sizeof(SHAPES) / sizeof(SHAPES[0])));
    tcase_add_test(tc, test_flash_finite_differences);
    tcase_add_test(tc, test_flash_deterministic);
    tcase_add_test(tc, test_flash_state);
    tcase_add_test(tc, test_flash_selected);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
