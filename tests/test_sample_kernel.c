// tests/test_sample_kernel.c: the CPU backend's sample_tokens (kernels/cpu/sample.c) against
// values worked out by hand: greedy with tied maxima, the kept sets of top-k and top-p (a tie in
// the order resolved by id, both limits together), a uniform landing in each kept token's slice
// of the inverse CDF in id order, a temperature, padded columns V..Vp-1 never chosen, zero-mass
// tokens never drawn, and the log-prob of the full softmax at the sampling temperature.
// The CUDA kernel is compared with this entry in tests/test_cuda_emu.cc (test_sample).
#include "kernels/kernels.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdio.h>

static const Backend *be;

// Row of the worked example: probabilities 0.1 0.4 0.2 0.2 0.1 (V = 5) as logits log q, then
// three padded columns holding a huge logit that must never be read. Sampling order: id 1, then
// ids 2 and 3 (equal logits: id 2 first), then ids 0 and 4.
#define V5  5
#define VP8 8
static const double Q[V5] = {0.1, 0.4, 0.2, 0.2, 0.1};

static void example_row(float *z) {
    for (int v = 0; v < VP8; v++) z[v] = v < V5 ? logf((float)Q[v]) : 1e4f;
}

// One draw from the example row; checks token and logp (log q[token] at temperature 1).
static void expect_draw(float u, int top_k, float top_p, int want) {
    float z[VP8];
    example_row(z);
    int tok = -1;
    float lp = 0.0f;
    be->sample_tokens(&tok, &lp, z, &u, 1, V5, VP8, 1.0f, top_k, top_p);
    ck_assert_msg(tok == want, "u %g top_k %d top_p %g: token %d, want %d", u, top_k, top_p, tok,
                  want);
    ck_assert_msg(fabs(lp - log(Q[want])) < 1e-6, "u %g: logp %g, want %g", u, lp, log(Q[want]));
}

START_TEST(test_untruncated) {
    // cumulative mass in id order: 0.1 0.5 0.7 0.9 1.0
    expect_draw(0.0f, 0, 1.0f, 0);
    expect_draw(0.05f, 0, 1.0f, 0);
    expect_draw(0.3f, 0, 1.0f, 1);
    expect_draw(0.6f, 0, 1.0f, 2);
    expect_draw(0.8f, 0, 1.0f, 3);
    expect_draw(0.95f, 0, 1.0f, 4);
    expect_draw(0.99999994f, 0, 1.0f, 4); // the largest float below 1
    // top_k >= V keeps everything
    expect_draw(0.6f, 5, 1.0f, 2);
    expect_draw(0.95f, 9, 1.0f, 4);
}
END_TEST

START_TEST(test_top_k) {
    // k = 1: the most likely token whatever u
    expect_draw(0.0f, 1, 1.0f, 1);
    expect_draw(0.99f, 1, 1.0f, 1);
    // k = 2 keeps ids 1, 2 (id 2 before id 3 at equal logits): mass 0.6, cumulative 0.4 0.6,
    // i.e. u below 2/3 -> 1, above -> 2
    expect_draw(0.5f, 2, 1.0f, 1);
    expect_draw(0.7f, 2, 1.0f, 2);
    // k = 3 keeps 1, 2, 3: cumulative 0.4 0.6 0.8 of 0.8 -> slices [0, .5) [.5, .75) [.75, 1)
    expect_draw(0.4f, 3, 1.0f, 1);
    expect_draw(0.6f, 3, 1.0f, 2);
    expect_draw(0.9f, 3, 1.0f, 3);
    // k = 4 adds id 0 (before id 4 at equal logits): cumulative 0.1 0.5 0.7 0.9 of 0.9
    expect_draw(0.1f, 4, 1.0f, 0);
    expect_draw(0.99f, 4, 1.0f, 3);
}
END_TEST

START_TEST(test_top_p) {
    // order masses 0.4, 0.6, 0.8, 0.9, 1.0: top_p 0.3 keeps {1}, 0.5 keeps {1, 2}, 0.7 keeps
    // {1, 2, 3}, 0.85 keeps {0, 1, 2, 3}
    expect_draw(0.99f, 0, 0.3f, 1);
    expect_draw(0.5f, 0, 0.5f, 1);
    expect_draw(0.7f, 0, 0.5f, 2);
    expect_draw(0.6f, 0, 0.7f, 2);
    expect_draw(0.9f, 0, 0.7f, 3);
    expect_draw(0.1f, 0, 0.85f, 0);
    expect_draw(0.5f, 0, 0.85f, 1);
    expect_draw(0.99f, 0, 0.85f, 3);
    // both limits: the shorter prefix wins
    expect_draw(0.9f, 2, 0.85f, 2); // k = 2 shorter than the nucleus of 4
    expect_draw(0.9f, 4, 0.5f, 2);  // nucleus of 2 shorter than k = 4
}
END_TEST

START_TEST(test_temperature) {
    // temperature 2: p proportional to sqrt(q); cumulative sqrt(q) in id order over S
    float z[VP8], u[2] = {0.42f, 0.45f};
    double r[V5], S = 0.0, cum = 0.0;
    for (int v = 0; v < V5; v++) S += r[v] = sqrt(Q[v]);
    // the slices: id 1 covers (0.1464, 0.4393), id 2 (0.4393, 0.6464)
    for (int v = 0; v < 2; v++) cum += r[v] / S;
    ck_assert(cum > 0.43 && cum < 0.44);
    float zz[2 * VP8];
    example_row(z);
    for (int b = 0; b < 2; b++)
        for (int v = 0; v < VP8; v++) zz[b * VP8 + v] = z[v];
    int tok[2] = {-1, -1};
    float lp[2];
    be->sample_tokens(tok, lp, zz, u, 2, V5, VP8, 2.0f, 0, 1.0f);
    ck_assert_int_eq(tok[0], 1);
    ck_assert_int_eq(tok[1], 2);
    ck_assert(fabs(lp[0] - log(r[1] / S)) < 1e-6);
    ck_assert(fabs(lp[1] - log(r[2] / S)) < 1e-6);
    // top-k at temperature 2 keeps the same ids (the order is the logits'), log-prob unchanged
    be->sample_tokens(tok, lp, zz, u, 2, V5, VP8, 2.0f, 2, 1.0f);
    // kept 1, 2: mass (r1 + r2), u 0.42 and 0.45 below r1 / (r1 + r2) = 0.586 -> id 1
    ck_assert_int_eq(tok[0], 1);
    ck_assert_int_eq(tok[1], 1);
    ck_assert(fabs(lp[1] - log(r[1] / S)) < 1e-6);
}
END_TEST

START_TEST(test_greedy) {
    // maxima tied at ids 1 and 2: the lowest id; padded column larger still, never read
    float z[2 * 4] = {1.0f, 3.0f, 3.0f, 2.0f, 0.5f, -1.0f, 0.5f, 1e30f};
    int tok[2];
    float lp[2];
    be->sample_tokens(tok, lp, z, NULL, 2, 3, 4, 0.0f, 2, 0.5f); // u NULL, top-k/p ignored
    ck_assert_int_eq(tok[0], 1);
    ck_assert_int_eq(tok[1], 0);
    double s0 = exp(-2.0) + 2.0, s1 = 2.0 + exp(-1.5);
    ck_assert(fabs(lp[0] - (0.0 - log(s0))) < 1e-6); // temperature 1 log-probs
    ck_assert(fabs(lp[1] - (0.0 - log(s1))) < 1e-6);
    // a negative temperature is greedy too
    be->sample_tokens(tok, lp, z, NULL, 1, 4, 4, -1.0f, 0, 1.0f);
    ck_assert_int_eq(tok[0], 1);
}
END_TEST

START_TEST(test_edges) {
    // V = 1: always token 0, log-prob 0
    float z1[64] = {0};
    z1[0] = -3.0f;
    for (int v = 1; v < 64; v++) z1[v] = 50.0f;
    float u = 0.7f, lp = 1.0f;
    int tok = -1;
    be->sample_tokens(&tok, &lp, z1, &u, 1, 1, 64, 1.0f, 0, 1.0f);
    ck_assert_int_eq(tok, 0);
    ck_assert(fabsf(lp) < 1e-7f);
    be->sample_tokens(&tok, &lp, z1, &u, 1, 1, 64, 0.7f, 3, 0.2f);
    ck_assert_int_eq(tok, 0);
    // zero-mass tokens (logit -inf) are never drawn, not even at u = 0 or just below 1
    float z[4] = {-INFINITY, 0.0f, -INFINITY, 0.0f};
    float us[3] = {0.0f, 0.49f, 0.99999994f};
    int want[3] = {1, 1, 3};
    for (int i = 0; i < 3; i++) {
        be->sample_tokens(&tok, &lp, z, &us[i], 1, 3, 4, 1.0f, 0, 1.0f);
        ck_assert_int_eq(tok, 1); // V = 3: id 3 is padding
        be->sample_tokens(&tok, &lp, z, &us[i], 1, 4, 4, 1.0f, 0, 1.0f);
        ck_assert_int_eq(tok, want[i]);
        ck_assert(fabs(lp - log(0.5)) < 1e-6);
        be->sample_tokens(&tok, &lp, z, &us[i], 1, 4, 4, 1.0f, 3, 1.0f); // keeps 1, 3 and 0
        ck_assert_int_eq(tok, want[i]);
    }
    // -0 and +0 are one logit: the tie goes to the lower id (top_k 1 keeps id 0)
    float zs[2] = {-0.0f, 0.0f};
    u = 0.9f;
    be->sample_tokens(&tok, &lp, zs, &u, 1, 2, 2, 1.0f, 1, 1.0f);
    ck_assert_int_eq(tok, 0);
}
END_TEST

int main(void) {
    be = backend_cpu();
    Suite *s = suite_create("sample_kernel");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, test_untruncated);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_temperature);
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_edges);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
