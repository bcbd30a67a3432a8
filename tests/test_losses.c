// tests/test_losses.c: every alignment loss and its gradient against values computed by hand
// (the expected numbers are written out below with how they were obtained), saturated inputs
// included, and against finite differences of the loss itself.
#include "tests/testutil.h"
#include "train/objectives/preference.h"
#include <math.h>

#define TOL 1e-9

// d/dx of f by a central difference in double.
static double fd(double (*f)(double, void *), double x, void *ctx) {
    double h = 1e-6;
    return (f(x + h, ctx) - f(x - h, ctx)) / (2 * h);
}

START_TEST(test_log_sigmoid_stable) {
    ck_assert_double_eq_tol(neg_log_sigmoid(0.0), log(2.0), TOL);
    ck_assert_double_eq_tol(neg_log_sigmoid(1000.0), 0.0, TOL);     // exp(-1000) underflows
    ck_assert_double_eq_tol(neg_log_sigmoid(-1000.0), 1000.0, TOL); // no overflow
    ck_assert_double_eq_tol(sigmoid(-1000.0), 0.0, TOL);
    ck_assert_double_eq_tol(sigmoid(1000.0), 1.0, TOL);
    ck_assert_double_eq_tol(sigmoid(2.0), 1.0 / (1.0 + exp(-2.0)), TOL);
}
END_TEST

// ---- Bradley-Terry ----------------------------------------------------------------------------

START_TEST(test_bradley_terry_by_hand) {
    // rc = 1, rr = 0: loss = log(1 + e^-1) = 0.313261687518; dloss/drc = -sigmoid(-1) =
    // -0.268941421370, dloss/drr = +0.268941421370
    PairLoss a = bradley_terry_loss(1.0, 0.0, 0.0, 0.0);
    ck_assert_double_eq_tol(a.loss, 0.313261687518, 1e-11);
    ck_assert_double_eq_tol(a.d_chosen, -0.268941421370, 1e-11);
    ck_assert_double_eq_tol(a.d_rejected, 0.268941421370, 1e-11);
    // margin 0.5, centering 0.01: z = 0.5, s = 1: loss = log(1 + e^-0.5) + 0.01 =
    // 0.474076984180 + 0.01; d_chosen = -sigmoid(-0.5) + 0.02 = -0.377540668798 + 0.02
    PairLoss b = bradley_terry_loss(1.0, 0.0, 0.5, 0.01);
    ck_assert_double_eq_tol(b.loss, 0.484076984180, 1e-11);
    ck_assert_double_eq_tol(b.d_chosen, -0.357540668798, 1e-11);
    ck_assert_double_eq_tol(b.d_rejected, 0.397540668798, 1e-11);
    // saturated: a margin of +100 costs nothing and has no gradient; -100 costs 100, gradient 1
    PairLoss c = bradley_terry_loss(50.0, -50.0, 0.0, 0.0);
    ck_assert(isfinite(c.loss) && c.loss < 1e-40 && fabs(c.d_chosen) < 1e-40);
    PairLoss d = bradley_terry_loss(-50.0, 50.0, 0.0, 0.0);
    ck_assert_double_eq_tol(d.loss, 100.0, 1e-9);
    ck_assert_double_eq_tol(d.d_chosen, -1.0, 1e-12);
    ck_assert_double_eq_tol(d.d_rejected, 1.0, 1e-12);
}
END_TEST

typedef struct {
    double other, margin, center;
    int wrt_chosen;
} BtCtx;

static double bt_of(double x, void *p) {
    BtCtx *c = p;
    return c->wrt_chosen ? bradley_terry_loss(x, c->other, c->margin, c->center).loss
                         : bradley_terry_loss(c->other, x, c->margin, c->center).loss;
}

START_TEST(test_bradley_terry_gradient) {
    const double pts[][2] = {{0.3, -1.2}, {2.0, 2.5}, {-4.0, 3.0}};
    for (int i = 0; i < 3; i++) {
        double rc = pts[i][0], rr = pts[i][1];
        PairLoss l = bradley_terry_loss(rc, rr, 0.2, 0.05);
        BtCtx cc = {rr, 0.2, 0.05, 1}, cr = {rc, 0.2, 0.05, 0};
        ck_assert_double_eq_tol(l.d_chosen, fd(bt_of, rc, &cc), 1e-7);
        ck_assert_double_eq_tol(l.d_rejected, fd(bt_of, rr, &cr), 1e-7);
    }
}
END_TEST

// ---- the DPO family -----------------------------------------------------------------------------

// Pair: policy pc = -10 (5 tokens), pr = -12 (4 tokens); reference rc = rr = -11, so
// h = (pc - rc) - (pr - rr) = 2. Expected values from the formulas in train/objectives/preference.h
// evaluated step by step in Python's math module (e.g. sigmoid: z = beta h = 0.2, loss = log(1 +
// e^-0.2), dloss/dpc = -sigmoid(-0.2) beta). e is the label smoothing.
static DpoPairLoss pair_e(DpoLoss kind, double beta, double e) {
    DpoParams p = {kind, beta, e, 0.5, 0.1, 0.0};
    return dpo_pair_loss(&p, -10.0, -12.0, -11.0, -11.0, 5, 4);
}

static DpoPairLoss pair(DpoLoss kind, double beta) {
    return pair_e(kind, beta, 0.0);
}

static void expect(DpoPairLoss l, double loss, double dc, double dr) {
    ck_assert_double_eq_tol(l.loss, loss, 1e-10);
    ck_assert_double_eq_tol(l.d_chosen, dc, 1e-10);
    ck_assert_double_eq_tol(l.d_rejected, dr, 1e-10);
}

START_TEST(test_dpo_family_by_hand) {
    DpoPairLoss s = pair(DPO_SIGMOID, 0.1);
    expect(s, 0.598138869382, -0.045016600269, 0.045016600269);
    ck_assert_double_eq_tol(s.reward_chosen, 0.1, 1e-12); // beta (pc - rc)
    ck_assert_double_eq_tol(s.reward_rejected, -0.1, 1e-12);
    // conservative DPO (sigmoid with label smoothing 0.1): 0.9 log(1+e^-0.2) + 0.1 log(1+e^0.2)
    // = 0.598138869382 + 0.1 * 0.2 (log(1+e^z) = z + log(1+e^-z)); gradient -sigmoid(-0.2) beta
    // + 0.1 beta
    expect(pair_e(DPO_SIGMOID, 0.1, 0.1), 0.618138869382, -0.035016600269, 0.035016600269);
    // robust DPO, e = 0.1: (0.9 log(1+e^-0.2) - 0.1 log(1+e^0.2)) / 0.8 = 0.598138869382 - 0.1 *
    // 0.2 / 0.8; gradient (-sigmoid(-0.2) - 0.1 / 0.8) beta
    expect(pair_e(DPO_ROBUST, 0.1, 0.1), 0.573138869382, -0.057516600269, 0.057516600269);
    expect(pair(DPO_IPO, 0.1), 9.0, -6.0, 6.0);   // (2 - 1/0.2)^2, 2 (2 - 5)
    expect(pair(DPO_HINGE, 0.1), 0.8, -0.1, 0.1); // 1 - 0.2
    // SimPO, beta 2, gamma 0.5: averages -2 and -3, z = 2 (1) - 0.5 = 1.5
    DpoPairLoss sp = pair(DPO_SIMPO, 2.0);
    expect(sp, 0.201413277983, -0.072970209523, 0.091212761903);
    ck_assert_double_eq_tol(sp.reward_chosen, -4.0, 1e-12); // beta * average log-prob
    // ORPO, lambda 0.1: log odds(-2) - log odds(-3) = 1.094344276926; loss = 2 + 0.1 log(1 +
    // e^-1.0943...); the chosen side also carries the NLL's -1 per average log-prob
    expect(pair(DPO_ORPO, 2.0), 2.028875078434, -0.205801118073, 0.006598550110);
    ck_assert(dpo_needs_reference(DPO_SIGMOID) && !dpo_needs_reference(DPO_ORPO) &&
              !dpo_needs_reference(DPO_SIMPO));
}
END_TEST

// Label-smoothed losses, worked by hand. beta = 0.5, h = 2 (the pair above), so z = beta h = 1,
// and e = 0.2. With a = -log sigmoid(1) = log(1 + e^-1) = 0.313261687518223 and s = sigmoid(-1)
// = 0.268941421369995 (python3, double), using -log sigmoid(-z) = z + a and sigmoid(z) = 1 - s:
//   DPO:  loss = a = 0.313261687518223,  dloss/dz = -s = -0.268941421369995
//   cDPO: loss = (1 - e) a + e (z + a) = a + e z = 0.313261687518223 + 0.2
//                                       = 0.513261687518223
//         dloss/dz = -(1 - e) s + e (1 - s) = -s + e = -0.068941421369995
//   rDPO: loss = ((1 - e) a - e (z + a)) / (1 - 2e) = a - e z / (1 - 2e)
//              = 0.313261687518223 - 0.2 / 0.6 = -0.020071645815110
//         dloss/dz = (-(1 - e) s - e (1 - s)) / (1 - 2e) = -s - e / (1 - 2e)
//                  = -0.268941421369995 - 0.333333333333333 = -0.602274754703328
// and dloss/dpc = beta dloss/dz = -dloss/dpr (h = (pc - rc) - (pr - rr)).
START_TEST(test_cdpo_by_hand) {
    expect(pair_e(DPO_SIGMOID, 0.5, 0.0), 0.313261687518223, -0.134470710684998, 0.134470710684998);
    expect(pair_e(DPO_SIGMOID, 0.5, 0.2), 0.513261687518223, -0.034470710684998, 0.034470710684998);
}
END_TEST

START_TEST(test_rdpo_by_hand) {
    DpoPairLoss r = pair_e(DPO_ROBUST, 0.5, 0.2);
    expect(r, -0.020071645815110, -0.301137377351664, 0.301137377351664);
    ck_assert_double_eq_tol(r.reward_chosen, 0.5, 1e-12); // beta (pc - rc), as for DPO
    ck_assert_double_eq_tol(r.reward_rejected, -0.5, 1e-12);
    // e = 0: robust DPO is DPO, to the bit
    DpoPairLoss r0 = pair_e(DPO_ROBUST, 0.5, 0.0), d0 = pair_e(DPO_SIGMOID, 0.5, 0.0);
    ck_assert(r0.loss == d0.loss && r0.d_chosen == d0.d_chosen && r0.d_rejected == d0.d_rejected);
}
END_TEST

// rDPO's defining property (Chowdhury et al. 2024, Lemma 3.1): if each label is flipped with
// probability e, its expected loss over the flip is the DPO loss of the true label:
//   (1 - e) L_rdpo(h) + e L_rdpo(-h) = -log sigmoid(beta h).
// cDPO does not: its expectation is -log sigmoid(beta h) + 2 e (1 - e) beta h.
START_TEST(test_rdpo_unbiased) {
    const double hs[] = {-3.0, 0.5, 2.0, 7.0}, es[] = {0.05, 0.2, 0.4};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            DpoParams r = {DPO_ROBUST, 0.5, es[j], 0, 0, 0}, d = {DPO_SIGMOID, 0.5, 0, 0, 0, 0};
            double h = hs[i], e = es[j];
            double kept = dpo_pair_loss(&r, h, 0.0, 0.0, 0.0, 1, 1).loss;    // label as given
            double flipped = dpo_pair_loss(&r, 0.0, h, 0.0, 0.0, 1, 1).loss; // h -> -h
            double dpo = dpo_pair_loss(&d, h, 0.0, 0.0, 0.0, 1, 1).loss;
            ck_assert_double_eq_tol(((1 - e) * kept + e * flipped), dpo, 1e-12);
        }
}
END_TEST

// Margins of +-50 in beta h: finite losses and gradients.
START_TEST(test_dpo_saturated) {
    for (int k = DPO_SIGMOID; k <= DPO_ORPO; k++)
        for (int sign = -1; sign <= 1; sign += 2) {
            DpoParams p = {(DpoLoss)k, 0.1, 0.1, 0.5, 0.1, 0.0};
            DpoPairLoss l = dpo_pair_loss(&p, sign * 250.0 - 300.0, -sign * 250.0 - 300.0, -300.0,
                                          -300.0, 50, 50);
            ck_assert_msg(isfinite(l.loss) && isfinite(l.d_chosen) && isfinite(l.d_rejected),
                          "loss %d at margin %d: %g %g %g", k, sign * 50, l.loss, l.d_chosen,
                          l.d_rejected);
        }
    DpoParams p = {DPO_SIGMOID, 0.1, 0, 0, 0, 0};
    DpoPairLoss up = dpo_pair_loss(&p, -50.0, -550.0, -300.0, -300.0, 1, 1); // beta h = +50
    ck_assert_double_eq_tol(up.loss, 1.9287498479639e-22, 1e-30);
    DpoPairLoss down = dpo_pair_loss(&p, -550.0, -50.0, -300.0, -300.0, 1, 1); // beta h = -50
    ck_assert_double_eq_tol(down.loss, 50.0, 1e-9);
    ck_assert_double_eq_tol(down.d_chosen, -0.1, 1e-12);
    // e = 0.1, with a = -log sigmoid(z), a(50) = 1.9e-22 ~ 0, a(-50) = 50, sigmoid(-50) ~ 0:
    // cDPO z = +50: a + e z = 5,  dloss/dpc = beta (-sigmoid(-z) + e) = 0.01
    //      z = -50: a + e z = 45, dloss/dpc = beta (-1 + 0.1) = -0.09
    // rDPO z = +50: a - e z / 0.8 = -6.25, dloss/dpc = beta (-sigmoid(-z) - e / 0.8) = -0.0125
    //      z = -50: 50 + 6.25 = 56.25,     dloss/dpc = beta (-1 - 0.125) = -0.1125
    const struct {
        DpoLoss kind;
        double pc, pr, loss, dc;
    } sat[] = {{DPO_SIGMOID, -50.0, -550.0, 5.0, 0.01},
               {DPO_SIGMOID, -550.0, -50.0, 45.0, -0.09},
               {DPO_ROBUST, -50.0, -550.0, -6.25, -0.0125},
               {DPO_ROBUST, -550.0, -50.0, 56.25, -0.1125}};
    for (int i = 0; i < 4; i++) {
        DpoParams q = {sat[i].kind, 0.1, 0.1, 0, 0, 0};
        DpoPairLoss l = dpo_pair_loss(&q, sat[i].pc, sat[i].pr, -300.0, -300.0, 1, 1);
        ck_assert_double_eq_tol(l.loss, sat[i].loss, 1e-9);
        ck_assert_double_eq_tol(l.d_chosen, sat[i].dc, 1e-12);
        ck_assert_double_eq_tol(l.d_rejected, -sat[i].dc, 1e-12);
    }
}
END_TEST

typedef struct {
    DpoParams p;
    double pc, pr;
    int wrt_chosen;
} DpoCtx;

static double dpo_of(double x, void *ctx) {
    DpoCtx *c = ctx;
    return c->wrt_chosen ? dpo_pair_loss(&c->p, x, c->pr, -11, -12, 5, 4).loss
                         : dpo_pair_loss(&c->p, c->pc, x, -11, -12, 5, 4).loss;
}

START_TEST(test_dpo_gradients) {
    const double es[] = {0.0, 0.1, 0.3}; // label smoothing (sigmoid: cDPO; robust: rDPO)
    for (int k = DPO_SIGMOID; k <= DPO_ORPO; k++)
        for (int j = 0; j < 3; j++) {
            if (k == DPO_HINGE) continue; // piecewise linear: checked by hand above
            DpoCtx c = {{(DpoLoss)k, 0.5, es[j], 0.5, 0.2, 0.0}, -9.0, -13.0, 1};
            DpoPairLoss l = dpo_pair_loss(&c.p, c.pc, c.pr, -11, -12, 5, 4);
            ck_assert_double_eq_tol(l.d_chosen, fd(dpo_of, c.pc, &c), 1e-6);
            c.wrt_chosen = 0;
            ck_assert_double_eq_tol(l.d_rejected, fd(dpo_of, c.pr, &c), 1e-6);
        }
}
END_TEST

// ---- KTO --------------------------------------------------------------------------------------

// beta 0.1, lambda_D 1, lambda_U 1.5; logp -10, ref -13 (r = 3), z0 = 1. By hand (Python's math):
//   desirable    x = beta (r - z0) = 0.2: loss = 1 - sigmoid(0.2) = 0.450166002688,
//                dloss/dlogp = -lambda_D beta sigmoid(0.2) sigmoid(-0.2) = -0.024751657271
//   undesirable  y = beta (z0 - r) = -0.2: loss = 1.5 (1 - sigmoid(-0.2)) = 0.824750995969,
//                dloss/dlogp = +lambda_U beta sigmoid(-0.2) sigmoid(0.2) = 0.037127485907
// The implicit reward is beta r = 0.3 either way.
START_TEST(test_kto_by_hand) {
    KtoParams p = {0.1, 1.0, 1.5};
    KtoLoss d = kto_example_loss(&p, -10.0, -13.0, 1.0, 1);
    ck_assert_double_eq_tol(d.loss, 0.450166002688, 1e-11);
    ck_assert_double_eq_tol(d.d_logp, -0.024751657271, 1e-11);
    ck_assert_double_eq_tol(d.reward, 0.3, 1e-12);
    KtoLoss u = kto_example_loss(&p, -10.0, -13.0, 1.0, 0);
    ck_assert_double_eq_tol(u.loss, 0.824750995969, 1e-11);
    ck_assert_double_eq_tol(u.d_logp, 0.037127485907, 1e-11);
    ck_assert_double_eq_tol(u.reward, 0.3, 1e-12);
    // the weights scale loss and gradient alone: lambda_U = 3 doubles the undesirable one
    KtoParams q = {0.1, 1.0, 3.0};
    KtoLoss u2 = kto_example_loss(&q, -10.0, -13.0, 1.0, 0);
    ck_assert_double_eq_tol(u2.loss, 2 * u.loss, 1e-12);
    ck_assert_double_eq_tol(u2.d_logp, 2 * u.d_logp, 1e-12);
    // saturated (beta |r - z0| = 100): finite, 1 - sigmoid(100) = sigmoid(-100) = 3.72e-44, no
    // cancellation to 0; the wrong side costs lambda and has no gradient left either
    KtoParams h = {0.1, 1.0, 1.0};
    KtoLoss far = kto_example_loss(&h, 500.0, -500.0, 0.0, 1);
    ck_assert_double_eq_tol(far.loss, 3.7200759760208e-44, 1e-55);
    ck_assert(isfinite(far.d_logp) && fabs(far.d_logp) < 1e-44);
    KtoLoss wrong = kto_example_loss(&h, 500.0, -500.0, 0.0, 0);
    ck_assert_double_eq_tol(wrong.loss, 1.0, 1e-15);
    ck_assert(isfinite(wrong.d_logp) && fabs(wrong.d_logp) < 1e-44);
}
END_TEST

// z0 = max(0, mean of the mismatched log-ratios); 0 with nothing to average. With z0 clamped
// to 0 (mean -2.5): desirable, beta 0.5, r = -2: x = -1, loss = 1 - sigmoid(-1) = 0.731058578630,
// dloss/dlogp = -0.5 sigmoid(-1) sigmoid(1) = -0.098305966621.
START_TEST(test_kto_reference_point) {
    ck_assert_double_eq_tol(kto_reference_point(6.0, 3.0), 2.0, 1e-15);
    ck_assert(kto_reference_point(-5.0, 2.0) == 0.0); // clamped
    ck_assert(kto_reference_point(1.0, 0.0) == 0.0);  // no mismatched row
    double z0 = kto_reference_point(-5.0, 2.0);
    KtoParams p = {0.5, 1.0, 1.0};
    KtoLoss l = kto_example_loss(&p, -12.0, -10.0, z0, 1);
    ck_assert_double_eq_tol(l.loss, 0.731058578630, 1e-11);
    ck_assert_double_eq_tol(l.d_logp, -0.098305966621, 1e-11);
}
END_TEST

typedef struct {
    KtoParams p;
    double ref, z0;
    int desirable;
} KtoCtx;

static double kto_of(double logp, void *ctx) {
    KtoCtx *c = ctx;
    return kto_example_loss(&c->p, logp, c->ref, c->z0, c->desirable).loss;
}

// d loss / d logp against finite differences with z0 held constant (detached) and against the
// closed form -+lambda beta s (1 - s); and that the detached gradient is not the gradient of
// the loss with z0 moving with logp (as it would if the example were its own mismatched row).
static double kto_coupled(double logp, void *ctx) {
    KtoCtx *c = ctx;
    double z0 = kto_reference_point(logp - c->ref + c->z0, 2.0); // the example and one other row
    return kto_example_loss(&c->p, logp, c->ref, z0, c->desirable).loss;
}

START_TEST(test_kto_gradients) {
    const double logps[] = {-14.0, -11.0, -9.5, -6.0};
    for (int i = 0; i < 4; i++)
        for (int d = 0; d <= 1; d++) {
            KtoCtx c = {{0.5, 1.2, 0.8}, -11.0, 0.7, d};
            KtoLoss l = kto_example_loss(&c.p, logps[i], c.ref, c.z0, d);
            ck_assert_double_eq_tol(l.d_logp, fd(kto_of, logps[i], &c), 1e-7);
            double x = c.p.beta * (d ? logps[i] - c.ref - c.z0 : c.z0 - logps[i] + c.ref);
            double s = 1.0 / (1.0 + exp(-x));
            double closed =
                (d ? -c.p.desirable_weight : c.p.undesirable_weight) * c.p.beta * s * (1 - s);
            ck_assert_double_eq_tol(l.d_logp, closed, 1e-12);
            // where the coupled reference point is above 0 its slope differs by the z0 path
            double z = (logps[i] - c.ref + c.z0) / 2.0;
            if (z > 0.05) ck_assert(fabs(l.d_logp - fd(kto_coupled, logps[i], &c)) > 1e-4);
        }
}
END_TEST

int main(void) {
    Suite *s = suite_create("losses");
    TCase *tc = tcase_create("by hand");
    tcase_add_test(tc, test_log_sigmoid_stable);
    tcase_add_test(tc, test_bradley_terry_by_hand);
    tcase_add_test(tc, test_bradley_terry_gradient);
    tcase_add_test(tc, test_dpo_family_by_hand);
    tcase_add_test(tc, test_cdpo_by_hand);
    tcase_add_test(tc, test_rdpo_by_hand);
    tcase_add_test(tc, test_rdpo_unbiased);
    tcase_add_test(tc, test_dpo_saturated);
    tcase_add_test(tc, test_dpo_gradients);
    tcase_add_test(tc, test_kto_by_hand);
    tcase_add_test(tc, test_kto_reference_point);
    tcase_add_test(tc, test_kto_gradients);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
