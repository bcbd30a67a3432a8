// tests/test_rl.c: the reinforcement-learning math of train/objectives/rl.h against values worked
// out by hand (each expected number is written with the arithmetic that gives it), saturated inputs
// included, and every gradient against central finite differences of its own loss.
#include "tests/testutil.h"
#include "train/objectives/rl.h"
#include <math.h>
#include <string.h>

#define TOL   1e-12 // double-valued functions of exact inputs
#define FTOL  1e-6  // float outputs
#define FD_H  1e-6
#define FD_TO 1e-7

static void check_floats(const char *what, const float *got, const double *want, size_t n) {
    float w[16];
    ck_assert(n <= 16);
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    ck_assert_msg(max_norm_err(what, got, w, n, 1.0, FTOL) <= FTOL, "%s", what);
}

// d/dx of f(x, ctx) by a central difference in double.
static double fd(double (*f)(double, const void *), double x, const void *ctx) {
    return (f(x + FD_H, ctx) - f(x - FD_H, ctx)) / (2 * FD_H);
}

// ---- Rewards and advantages ------------------------------------------------------------------

START_TEST(test_token_rewards) {
    // kl_coef 0.5; row 0 has 3 real tokens, row 1 has 2 (its padding holds garbage kl 9).
    // row 0: -0.5 * [0.1, 0.2, 0.4] = [-0.05, -0.1, -0.2], score 2 added last: -0.2 + 2 = 1.8
    // row 1: -0.5 * [0.5, 1.0] = [-0.25, -0.5], score -8 clipped to -5: -0.5 - 5 = -5.5
    const float scores[2] = {2.0f, -8.0f};
    const float kl[6] = {0.1f, 0.2f, 0.4f, 0.5f, 1.0f, 9.0f};
    const float mask[6] = {1, 1, 1, 1, 1, 0};
    float r[6];
    rl_token_rewards(scores, kl, mask, 2, 3, 0.5, 5.0, r);
    check_floats("rewards clip 5", r, (double[]){-0.05, -0.1, 1.8, -0.25, -5.5, 0}, 6);
    // reward_clip 0 = off: -0.5 - 8 = -8.5
    rl_token_rewards(scores, kl, mask, 2, 3, 0.5, 0.0, r);
    check_floats("rewards no clip", r, (double[]){-0.05, -0.1, 1.8, -0.25, -8.5, 0}, 6);
    // a row without real tokens gets nothing, not its score
    const float none[3] = {0, 0, 0};
    rl_token_rewards(scores, kl, none, 1, 3, 0.5, 0.0, r);
    check_floats("rewards empty row", r, (double[]){0, 0, 0}, 3);
}
END_TEST

// GRPO/RLOO's reward of a whole response: clip(score) - kl_coef * sum_t kl[b,t]. Three rows,
// T = 3; the last position of rows 1 and 2 is not a response token (kl 0 there), and row 2's
// k1 estimates are partly negative. kl sums: row 0: 0.1 + 0.2 + 0.4 = 0.7; row 1: 0.5 + 1.0 =
// 1.5; row 2: -0.25 + 0.5 = 0.25.
static const float SEQ_S[3] = {6.0f, -8.0f, 0.5f};
static const float SEQ_KL[9] = {0.1f, 0.2f, 0.4f, 0.5f, 1.0f, 0.0f, -0.25f, 0.5f, 0.0f};

START_TEST(test_sequence_rewards) {
    float out[3];
    // kl_coef 0.5, clip 5: row 0: 5 (6 clipped) - 0.35 = 4.65; row 1: -5 (-8 clipped) - 0.75 =
    // -5.75; row 2: 0.5 (inside) - 0.125 = 0.375
    rl_sequence_rewards(SEQ_S, SEQ_KL, 3, 3, 0.5, 5.0, out);
    check_floats("seq clip 5", out, (double[]){4.65, -5.75, 0.375}, 3);
    // reward_clip 0 = no clipping: 6 - 0.35 = 5.65; -8 - 0.75 = -8.75; 0.375
    rl_sequence_rewards(SEQ_S, SEQ_KL, 3, 3, 0.5, 0.0, out);
    check_floats("seq no clip", out, (double[]){5.65, -8.75, 0.375}, 3);
    // kl_coef 0 = no penalty: the (clipped) scores themselves
    rl_sequence_rewards(SEQ_S, SEQ_KL, 3, 3, 0.0, 5.0, out);
    check_floats("seq no kl", out, (double[]){5.0, -5.0, 0.5}, 3);
    rl_sequence_rewards(SEQ_S, SEQ_KL, 3, 3, 0.0, 0.0, out);
    check_floats("seq raw", out, (double[]){6.0, -8.0, 0.5}, 3);
    // with kl_coef 0 the KL is not read: an overflowed k3 (inf) or no KL at all is no penalty
    const float inf_kl[3] = {INFINITY, 0.0f, 0.0f};
    rl_sequence_rewards(SEQ_S, inf_kl, 1, 3, 0.0, 0.0, out);
    check_floats("seq kl inf, coef 0", out, (double[]){6.0}, 1);
    rl_sequence_rewards(SEQ_S, NULL, 3, 3, 0.0, 5.0, out);
    check_floats("seq kl NULL, coef 0", out, (double[]){5.0, -5.0, 0.5}, 3);
    // T = 0: no tokens, no penalty
    rl_sequence_rewards(SEQ_S, SEQ_KL, 3, 0, 0.5, 5.0, out);
    check_floats("seq T 0", out, (double[]){5.0, -5.0, 0.5}, 3);
}
END_TEST

// A response's sequence reward is the sum of its PPO per-token rewards (rl_token_rewards with
// the response tokens as mask): the two shapings of the same score and KL agree.
START_TEST(test_sequence_rewards_match_token_rewards) {
    const float mask[9] = {1, 1, 1, 1, 1, 0, 1, 1, 0};
    float seq[3], tok[9];
    rl_sequence_rewards(SEQ_S, SEQ_KL, 3, 3, 0.3, 2.5, seq);
    rl_token_rewards(SEQ_S, SEQ_KL, mask, 3, 3, 0.3, 2.5, tok);
    const double want[3] = {(double)tok[0] + tok[1] + tok[2], (double)tok[3] + tok[4] + tok[5],
                            (double)tok[6] + tok[7] + tok[8]};
    check_floats("seq = sum of token rewards", seq, want, 3);
}
END_TEST

// Two rows, T = 3: row 0 is 3 tokens long; row 1 is 2 tokens long and its padding holds
// garbage (reward 7, value 9) that must not leak into the real steps.
static const float GAE_R[6] = {0.0f, 0.5f, 1.0f, 1.0f, 2.0f, 7.0f};
static const float GAE_V[6] = {0.5f, 0.25f, 0.5f, 0.5f, 1.0f, 9.0f};
static const float GAE_M[6] = {1, 1, 1, 1, 1, 0};

START_TEST(test_gae_by_hand) {
    // gamma 0.9, lambda 0.8, gamma * lambda = 0.72; V and A after a row's last token are 0.
    // row 0: t2: delta = 1 - 0.5 = 0.5                       A = 0.5     ret = 1.0
    //        t1: delta = 0.5 + 0.9 * 0.5 - 0.25 = 0.7        A = 0.7 + 0.72 * 0.5 = 1.06
    //                                                                    ret = 1.31
    //        t0: delta = 0 + 0.9 * 0.25 - 0.5 = -0.275      A = -0.275 + 0.72 * 1.06 = 0.4882
    //                                                                    ret = 0.9882
    // row 1: t2 padding: A = ret = 0
    //        t1: delta = 2 + 0.9 * 0 - 1 = 1.0               A = 1.0     ret = 2.0
    //        t0: delta = 1 + 0.9 * 1 - 0.5 = 1.4             A = 1.4 + 0.72 * 1 = 2.12
    //                                                                    ret = 2.62
    float adv[6], ret[6];
    rl_gae(GAE_R, GAE_V, GAE_M, 2, 3, 0.9, 0.8, adv, ret);
    check_floats("gae adv", adv, (double[]){0.4882, 1.06, 0.5, 2.12, 1.0, 0}, 6);
    check_floats("gae ret", ret, (double[]){0.9882, 1.31, 1.0, 2.62, 2.0, 0}, 6);
    // a NULL mask means every token is real: row 0 alone gives the same numbers
    rl_gae(GAE_R, GAE_V, NULL, 1, 3, 0.9, 0.8, adv, ret);
    check_floats("gae adv no mask", adv, (double[]){0.4882, 1.06, 0.5}, 3);
}
END_TEST

START_TEST(test_gae_reward_to_go) {
    // gamma = lambda = 1: A_t = sum_{s >= t} r_s - V_t, returns = reward-to-go
    // row 0: rtg = [1.5, 1.5, 1.0], A = rtg - [0.5, 0.25, 0.5] = [1.0, 1.25, 0.5]
    // row 1: rtg = [3.0, 2.0],      A = rtg - [0.5, 1.0] = [2.5, 1.0]
    float adv[6], ret[6];
    rl_gae(GAE_R, GAE_V, GAE_M, 2, 3, 1.0, 1.0, adv, ret);
    check_floats("rtg adv", adv, (double[]){1.0, 1.25, 0.5, 2.5, 1.0, 0}, 6);
    check_floats("rtg ret", ret, (double[]){1.5, 1.5, 1.0, 3.0, 2.0, 0}, 6);
}
END_TEST

START_TEST(test_whiten_by_hand) {
    // real entries 1, 2, 3, 6 (the 100 is padding): mean 12 / 4 = 3, deviations -2, -1, 0, 3,
    // population variance (4 + 1 + 0 + 9) / 4 = 3.5, 1 / sqrt(3.5) = 0.534522483825
    // (the 1e-8 in the root moves these by < 3e-9)
    float x[5] = {1, 2, 3, 100, 6};
    const float mask[5] = {1, 1, 1, 0, 1};
    rl_whiten(x, mask, 5, true);
    check_floats("whiten", x, (double[]){-1.069044967650, -0.534522483825, 0, 0, 1.603567451475},
                 5);
    double sum = 0, sq = 0; // mean 0 and variance 1 over the mask
    for (int i = 0; i < 5; i++) {
        sum += mask[i] * x[i];
        sq += mask[i] * x[i] * x[i];
    }
    ck_assert_double_eq_tol(sum / 4, 0.0, 1e-6);
    ck_assert_double_eq_tol(sq / 4, 1.0, 1e-6);
    // shift_mean false adds the mean 3 back: 3 - 1.069044967650 = 1.930955032350, ...
    float y[5] = {1, 2, 3, 100, 6};
    rl_whiten(y, mask, 5, false);
    check_floats("whiten keep mean", y,
                 (double[]){1.930955032350, 2.465477516175, 3, 0, 4.603567451475}, 5);
    // NULL mask: [1, 3] has mean 2 and variance 1: [-1, 1]
    float z[2] = {1, 3};
    rl_whiten(z, NULL, 2, true);
    check_floats("whiten no mask", z, (double[]){-1, 1}, 2);
}
END_TEST

START_TEST(test_whiten_degenerate) {
    // one real entry: variance 0, (7 - 7) / sqrt(1e-8) = 0; kept mean: 7; padding 0
    float x[2] = {5, 7}, y[2] = {5, 7};
    const float mask[2] = {0, 1};
    rl_whiten(x, mask, 2, true);
    check_floats("whiten one", x, (double[]){0, 0}, 2);
    rl_whiten(y, mask, 2, false);
    check_floats("whiten one keep mean", y, (double[]){0, 7}, 2);
    // no real entry: all padding, all 0, nothing NaN
    float z[2] = {5, 7};
    const float none[2] = {0, 0};
    rl_whiten(z, none, 2, true);
    check_floats("whiten none", z, (double[]){0, 0}, 2);
}
END_TEST

// A second process seen from the first: its half of the entries, summed into each reduction
// (rl_whiten_global's two: [sum, count], then the squared deviations from the global mean).
typedef struct {
    const float *x, *mask;
    size_t n;
    int call;
    double mean;
} OtherRank;

static void other_rank_sum(void *ctx, double *v, size_t k) {
    OtherRank *o = ctx;
    if (o->call++ == 0) {
        ck_assert_uint_eq(k, 2);
        for (size_t i = 0; i < o->n; i++)
            if (o->mask[i]) v[0] += o->x[i], v[1] += 1.0;
        o->mean = v[0] / v[1];
    } else {
        ck_assert_uint_eq(k, 1);
        for (size_t i = 0; i < o->n; i++)
            if (o->mask[i]) v[0] += (o->x[i] - o->mean) * (o->x[i] - o->mean);
    }
}

START_TEST(test_whiten_global) {
    // data parallelism: whitening one half with the other half's sums is whitening the whole
    const float x[8] = {1, 2, 3, 100, 6, -4, 9, 0.5f}, mask[8] = {1, 1, 1, 0, 1, 1, 1, 0};
    for (int keep = 0; keep < 2; keep++) {
        float whole[8], half[4];
        memcpy(whole, x, sizeof(whole));
        memcpy(half, x, sizeof(half));
        rl_whiten(whole, mask, 8, !keep);
        OtherRank o = {.x = x + 4, .mask = mask + 4, .n = 4};
        RlReduce red = {.sum = other_rank_sum, .ctx = &o};
        rl_whiten_global(half, mask, 4, !keep, &red);
        ck_assert_int_eq(o.call, 2);
        for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(half[i], whole[i], 1e-6f);
    }
}
END_TEST

START_TEST(test_grpo_advantages) {
    // group 0: 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 4.666667,
    // std 2.160246899469, + 1e-4 = 2.160346899469: A = (r - 3) / 2.160346899469
    //   = -0.925777244614, -0.462888622307, 0, 1.388665866920
    // group 1: all 0.5: std 0, A = 0 / 1e-4 = 0 (not NaN)
    const float s[8] = {1, 2, 3, 6, 0.5f, 0.5f, 0.5f, 0.5f};
    float a[8];
    rl_group_advantages(s, 2, 4, RL_GROUP_GRPO, a);
    check_floats("grpo", a,
                 (double[]){-0.925777244614, -0.462888622307, 0, 1.388665866920, 0, 0, 0, 0}, 8);
    // group of two, 0 and 1: mean 0.5, std sqrt(0.5 / 1) = 0.707106781187, + 1e-4:
    // A = -+0.5 / 0.707206781187 = -+0.707006795327
    const float p[2] = {0, 1};
    rl_group_advantages(p, 1, 2, RL_GROUP_GRPO, a);
    check_floats("grpo pair", a, (double[]){-0.707006795327, 0.707006795327}, 2);
}
END_TEST

START_TEST(test_rloo_advantages) {
    // group 0: 1, 2, 3, 6 (sum 12): A_i = r_i - (12 - r_i) / 3
    //   = 1 - 11/3, 2 - 10/3, 3 - 9/3, 6 - 6/3 = -2.666667, -1.333333, 0, 4
    //   (= 4/3 * (r_i - 3), the same numbers)
    // group 1: all 0.5: 0.5 - 1.5 / 3 = 0
    const float s[8] = {1, 2, 3, 6, 0.5f, 0.5f, 0.5f, 0.5f};
    float a[8];
    rl_group_advantages(s, 2, 4, RL_GROUP_RLOO, a);
    check_floats("rloo", a, (double[]){-8.0 / 3, -4.0 / 3, 0, 4, 0, 0, 0, 0}, 8);
    // group of two: each response's baseline is the other's reward: 0 - 1, 1 - 0
    const float p[2] = {0, 1};
    rl_group_advantages(p, 1, 2, RL_GROUP_RLOO, a);
    check_floats("rloo pair", a, (double[]){-1, 1}, 2);
}
END_TEST

// ---- KL against the reference -----------------------------------------------------------------

START_TEST(test_kl_by_hand) {
    // logp -1, logp_ref -1.5: d = logp_ref - logp = -0.5
    //   k1 = 0.5; k3 = e^-0.5 - 1 + 0.5 = 0.606530659713 - 0.5 = 0.106530659713
    //   dk1 = 1; dk3 = 1 - e^-0.5 = 0.393469340287
    ck_assert_double_eq_tol(rl_kl(-1.0, -1.5, KL_K1), 0.5, TOL);
    ck_assert_double_eq_tol(rl_kl(-1.0, -1.5, KL_K3), 0.106530659713, 1e-12);
    ck_assert_double_eq_tol(rl_kl_grad(-1.0, -1.5, KL_K1), 1.0, TOL);
    ck_assert_double_eq_tol(rl_kl_grad(-1.0, -1.5, KL_K3), 0.393469340287, 1e-12);
    // logp -2, logp_ref -1: d = 1: k1 = -1 (k1 can be negative); k3 = e - 2 = 0.718281828459;
    //   dk3 = 1 - e = -1.718281828459
    ck_assert_double_eq_tol(rl_kl(-2.0, -1.0, KL_K1), -1.0, TOL);
    ck_assert_double_eq_tol(rl_kl(-2.0, -1.0, KL_K3), 0.718281828459, 1e-12);
    ck_assert_double_eq_tol(rl_kl_grad(-2.0, -1.0, KL_K3), -1.718281828459, 1e-12);
    // the same token under both models: 0 and no pull
    ck_assert_double_eq_tol(rl_kl(-0.7, -0.7, KL_K3), 0.0, TOL);
    ck_assert_double_eq_tol(rl_kl_grad(-0.7, -0.7, KL_K3), 0.0, TOL);
}
END_TEST

START_TEST(test_k3_nonnegative) {
    // e^d - 1 - d >= 0 for every d (e^d lies above its tangent at 0), finite when saturated
    for (int i = -400; i <= 400; i++) {
        double d = i / 8.0; // -50 .. 50
        double k3 = rl_kl(0.0, d, KL_K3);
        ck_assert_msg(isfinite(k3) && k3 >= 0.0, "k3 at d = %g is %g", d, k3);
    }
    ck_assert_double_eq_tol(rl_kl(0.0, -50.0, KL_K3), 49.0, 1e-12); // e^-50 - 1 + 50
}
END_TEST

typedef struct {
    double other;
    KlEstimator est;
} KlCtx;

static double kl_of(double logp, const void *p) {
    const KlCtx *c = p;
    return rl_kl(logp, c->other, c->est);
}

START_TEST(test_kl_gradient) {
    const double pts[][2] = {{-1.0, -1.5}, {-2.0, -1.0}, {-0.3, -4.0}, {-6.0, -0.1}};
    for (int i = 0; i < 4; i++) {
        for (int e = 0; e < 2; e++) {
            KlCtx c = {pts[i][1], e ? KL_K3 : KL_K1};
            double g = rl_kl_grad(pts[i][0], pts[i][1], c.est);
            ck_assert_double_eq_tol(g, fd(kl_of, pts[i][0], &c), FD_TO * fmax(1.0, fabs(g)));
        }
    }
}
END_TEST

START_TEST(test_kl_controller) {
    // coef 0.2, target 6, horizon 10000, rollouts of 512 responses
    KlController c = {.coef = 0.2, .target = 6.0, .horizon = 10000.0};
    // kl 6.6: e = 6.6 / 6 - 1 = 0.1; coef = 0.2 * (1 + 0.1 * 512 / 10000) = 0.2 * 1.00512
    kl_controller_update(&c, 6.6, 512);
    ck_assert_double_eq_tol(c.coef, 0.201024, TOL);
    // kl 3: e = -0.5, clipped to -0.2: coef = 0.201024 * (1 - 0.01024) = 0.19896551424
    kl_controller_update(&c, 3.0, 512);
    ck_assert_double_eq_tol(c.coef, 0.19896551424, TOL);
    // kl 60: e = 9, clipped to 0.2: coef = 0.19896551424 * 1.01024 = 0.2010029211058176
    kl_controller_update(&c, 60.0, 512);
    ck_assert_double_eq_tol(c.coef, 0.2010029211058176, TOL);
    // a fixed coefficient (target NAN) never moves
    KlController f = {.coef = 0.05, .target = NAN, .horizon = 10000.0};
    kl_controller_update(&f, 100.0, 512);
    ck_assert_double_eq(f.coef, 0.05);
    // from a recipe's kl: block (coef, target, horizon)
    KlController r = kl_controller_init(0.2, 6.0, 10000);
    ck_assert(r.coef == 0.2 && r.target == 6.0 && r.horizon == 10000.0);
}
END_TEST

// ---- PPO losses -------------------------------------------------------------------------------

static void check_policy(PolicyLoss l, double loss, double dlogp, int clipped) {
    ck_assert_double_eq_tol(l.loss, loss, 1e-12 * fmax(1.0, fabs(loss)));
    ck_assert_double_eq_tol(l.dlogp, dlogp, 1e-12 * fmax(1.0, fabs(dlogp)));
    ck_assert_int_eq(l.clipped, clipped);
}

START_TEST(test_policy_loss_by_hand) {
    // eps 0.2: the ratio is clipped to [0.8, 1.2]
    // ratio 1 (first epoch): loss = -adv = -2, dlogp = -adv * 1 = -2, approx_kl 0
    PolicyLoss a = rl_policy_loss(-1.3, -1.3, 2.0, 0.2);
    check_policy(a, -2.0, -2.0, 0);
    ck_assert_double_eq_tol(a.ratio, 1.0, TOL);
    ck_assert_double_eq_tol(a.approx_kl, 0.0, TOL);
    // unclipped: log-ratio 0.1, ratio e^0.1 = 1.105170918076 in range; both terms are equal
    //   adv 2:  loss = dlogp = -2 * 1.105170918076 = -2.210341836151; approx_kl = 0.01 / 2
    //   adv -1: loss = dlogp = 1.105170918076
    PolicyLoss b = rl_policy_loss(-1.0, -1.1, 2.0, 0.2);
    check_policy(b, -2.2103418361512954, -2.2103418361512954, 0);
    ck_assert_double_eq_tol(b.approx_kl, 0.005, 1e-12);
    check_policy(rl_policy_loss(-1.0, -1.1, -1.0, 0.2), 1.1051709180756477, 1.1051709180756477, 0);
}
END_TEST

START_TEST(test_policy_loss_clipped) {
    // ratio e^0.5 = 1.648721270700 > 1.2
    //   adv 2: max(-3.297442541400, -2 * 1.2 = -2.4) = -2.4, clipped, dlogp exactly 0;
    //          approx_kl = 0.25 / 2 = 0.125
    PolicyLoss a = rl_policy_loss(-0.5, -1.0, 2.0, 0.2);
    check_policy(a, -2.4, 0.0, 1);
    ck_assert(a.dlogp == 0.0);
    ck_assert_double_eq_tol(a.approx_kl, 0.125, TOL);
    //   adv -1: max(1.648721270700, 1.2) = the unclipped term, dlogp = 1.648721270700
    check_policy(rl_policy_loss(-0.5, -1.0, -1.0, 0.2), 1.6487212707001282, 1.6487212707001282, 0);
    // ratio e^-0.5 = 0.606530659713 < 0.8
    //   adv -1: max(0.606530659713, 0.8) = 0.8, clipped, dlogp exactly 0
    PolicyLoss c = rl_policy_loss(-1.5, -1.0, -1.0, 0.2);
    check_policy(c, 0.8, 0.0, 1);
    ck_assert(c.dlogp == 0.0);
    //   adv 2: max(-1.213061319425, -1.6) = the unclipped term, dlogp = -1.213061319425
    check_policy(rl_policy_loss(-1.5, -1.0, 2.0, 0.2), -1.2130613194252668, -1.2130613194252668, 0);
}
END_TEST

START_TEST(test_policy_loss_saturated) {
    // log-ratio 1000 is clamped to 20: ratio e^20 = 485165195.4097903
    //   adv 1: max(-4.85e8, -1.2) = -1.2, clipped, dlogp 0; approx_kl = 1000^2 / 2
    PolicyLoss a = rl_policy_loss(0.0, -1000.0, 1.0, 0.2);
    check_policy(a, -1.2, 0.0, 1);
    ck_assert_double_eq_tol(a.approx_kl, 500000.0, TOL);
    //   adv -1: the unclipped term e^20, finite; constant beyond the clamp, so dlogp 0
    PolicyLoss b = rl_policy_loss(0.0, -1000.0, -1.0, 0.2);
    check_policy(b, 485165195.4097903, 0.0, 0);
    // log-ratio -1000 clamped to -20: ratio e^-20 = 2.061153622439e-09
    //   adv 1: max(-2.06e-9, -0.8) = -2.061153622439e-09, dlogp 0 beyond the clamp
    check_policy(rl_policy_loss(-1000.0, 0.0, 1.0, 0.2), -2.061153622438558e-09, 0.0, 0);
    // adv 0 with an overflowing ratio: 0, not NaN (0 * inf)
    PolicyLoss d = rl_policy_loss(0.0, -1000.0, 0.0, 0.2);
    ck_assert(isfinite(d.loss) && d.loss == 0.0 && d.dlogp == 0.0);
}
END_TEST

typedef struct {
    double old, adv;
} PgCtx;

static double pg_of(double logp, const void *p) {
    const PgCtx *c = p;
    return rl_policy_loss(logp, c->old, c->adv, 0.2).loss;
}

START_TEST(test_policy_loss_gradient) {
    // away from the kinks at ratio 0.8 and 1.2, in both branches and both signs
    const double diffs[] = {-0.5, -0.1, 0.0, 0.1, 0.15, 0.5, 1.5};
    const double advs[] = {2.0, -1.0, 0.3};
    for (int i = 0; i < 7; i++) {
        for (int j = 0; j < 3; j++) {
            PgCtx c = {-2.0, advs[j]};
            double g = rl_policy_loss(-2.0 + diffs[i], c.old, c.adv, 0.2).dlogp;
            double want = fd(pg_of, -2.0 + diffs[i], &c);
            ck_assert_msg(fabs(g - want) <= FD_TO * fmax(1.0, fabs(g)),
                          "log-ratio %g adv %g: dlogp %.10g, finite difference %.10g", diffs[i],
                          advs[j], g, want);
        }
    }
}
END_TEST

static void check_value(ValueLoss l, double loss, double dvalue, int clipped) {
    ck_assert_double_eq_tol(l.loss, loss, TOL);
    ck_assert_double_eq_tol(l.dvalue, dvalue, TOL);
    ck_assert_int_eq(l.clipped, clipped);
}

START_TEST(test_value_loss_by_hand) {
    // clip 0 = unclipped: v 1.5, ret 0.5: 0.5 * 1^2 = 0.5, dvalue = v - ret = 1
    check_value(rl_value_loss(1.5, 1.0, 0.5, 0.0), 0.5, 1.0, 0);
    // clip 0.2, v 1.5 from old 1.0: v_clipped = 1.2
    //   ret 2.0: max((1.5 - 2)^2 = 0.25, (1.2 - 2)^2 = 0.64) = 0.64: loss 0.32, clipped,
    //            dvalue exactly 0
    ValueLoss a = rl_value_loss(1.5, 1.0, 2.0, 0.2);
    check_value(a, 0.32, 0.0, 1);
    ck_assert(a.dvalue == 0.0);
    //   ret 0.5: max(1.0, 0.49) = 1.0: loss 0.5, dvalue 1
    check_value(rl_value_loss(1.5, 1.0, 0.5, 0.2), 0.5, 1.0, 0);
    // inside the range, v 1.1 from 1.0, ret 0.5: both terms 0.36: loss 0.18, dvalue 0.6
    check_value(rl_value_loss(1.1, 1.0, 0.5, 0.2), 0.18, 0.6, 0);
    // downwards, v 0.5 from 1.0: v_clipped = 0.8
    //   ret 0: max(0.25, 0.64) = 0.64: loss 0.32, clipped
    check_value(rl_value_loss(0.5, 1.0, 0.0, 0.2), 0.32, 0.0, 1);
    //   ret 1: max(0.25, 0.04) = 0.25: loss 0.125, dvalue -0.5
    check_value(rl_value_loss(0.5, 1.0, 1.0, 0.2), 0.125, -0.5, 0);
}
END_TEST

typedef struct {
    double old, ret, clip;
} VfCtx;

static double vf_of(double v, const void *p) {
    const VfCtx *c = p;
    return rl_value_loss(v, c->old, c->ret, c->clip).loss;
}

START_TEST(test_value_loss_gradient) {
    const double vs[] = {0.5, 0.9, 1.1, 1.5, 3.0};
    const double rets[] = {0.0, 1.0, 2.0};
    const double clips[] = {0.0, 0.2};
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 3; j++) {
            for (int k = 0; k < 2; k++) {
                VfCtx c = {1.0, rets[j], clips[k]};
                double g = rl_value_loss(vs[i], c.old, c.ret, c.clip).dvalue;
                ck_assert_double_eq_tol(g, fd(vf_of, vs[i], &c), FD_TO * fmax(1.0, fabs(g)));
            }
        }
    }
}
END_TEST

// ---- Diagnostics ------------------------------------------------------------------------------

START_TEST(test_explained_variance) {
    // real returns 1, 2, 3, 6 (mean 3, variance 14 / 4 = 3.5); values 1.5, 1.5, 3.5, 5;
    // errors ret - v = -0.5, 0.5, -0.5, 1 (mean 0.125), deviations -0.625, 0.375, -0.625,
    // 0.875, variance (0.390625 + 0.140625 + 0.390625 + 0.765625) / 4 = 0.421875;
    // 1 - 0.421875 / 3.5 = 0.879464285714. The padding entry (ret 100, v -100) is ignored.
    const float ret[5] = {1, 2, 100, 3, 6}, v[5] = {1.5f, 1.5f, -100, 3.5f, 5};
    const float mask[5] = {1, 1, 0, 1, 1};
    ck_assert_double_eq_tol(rl_explained_variance(v, ret, mask, 5), 0.8794642857142857, 1e-12);
    // a perfect critic explains everything; a constant at the mean of the returns nothing
    ck_assert_double_eq_tol(rl_explained_variance(ret, ret, mask, 5), 1.0, TOL);
    const float mean[5] = {3, 3, 3, 3, 3};
    ck_assert_double_eq_tol(rl_explained_variance(mean, ret, mask, 5), 0.0, TOL);
    // constant returns or no real entry: undefined
    ck_assert(isnan(rl_explained_variance(v, mean, NULL, 5)));
    const float none[5] = {0};
    ck_assert(isnan(rl_explained_variance(v, ret, none, 5)));
}
END_TEST

int main(void) {
    Suite *s = suite_create("rl");
    TCase *adv = tcase_create("advantages");
    tcase_add_test(adv, test_token_rewards);
    tcase_add_test(adv, test_sequence_rewards);
    tcase_add_test(adv, test_sequence_rewards_match_token_rewards);
    tcase_add_test(adv, test_gae_by_hand);
    tcase_add_test(adv, test_gae_reward_to_go);
    tcase_add_test(adv, test_whiten_by_hand);
    tcase_add_test(adv, test_whiten_degenerate);
    tcase_add_test(adv, test_whiten_global);
    tcase_add_test(adv, test_grpo_advantages);
    tcase_add_test(adv, test_rloo_advantages);
    suite_add_tcase(s, adv);
    TCase *kl = tcase_create("kl");
    tcase_add_test(kl, test_kl_by_hand);
    tcase_add_test(kl, test_k3_nonnegative);
    tcase_add_test(kl, test_kl_gradient);
    tcase_add_test(kl, test_kl_controller);
    suite_add_tcase(s, kl);
    TCase *ppo = tcase_create("ppo losses");
    tcase_add_test(ppo, test_policy_loss_by_hand);
    tcase_add_test(ppo, test_policy_loss_clipped);
    tcase_add_test(ppo, test_policy_loss_saturated);
    tcase_add_test(ppo, test_policy_loss_gradient);
    tcase_add_test(ppo, test_value_loss_by_hand);
    tcase_add_test(ppo, test_value_loss_gradient);
    tcase_add_test(ppo, test_explained_variance);
    suite_add_tcase(s, ppo);
    return run_suite(s);
}
