// tests/test_losses.c: every alignment loss and its gradient against values computed by hand
// (the expected numbers are written out below with how they were obtained), saturated inputs
// included, and against finite differences of the loss itself.
#include "tests/testutil.h"
#include "train/losses.h"
#include <math.h>

#define TOL 1e-9

// d/dx of f by a central difference in double.
static double fd(double (*f)(double, void *), double x, void *ctx) {
    double h = 1e-6;
    return (f(x + h, ctx) - f(x - h, ctx)) / (2 * h);
}

START_TEST(test_log_sigmoid_stable) {
    ck_assert_double_eq_tol(neg_log_sigmoid(0.0), log(2.0), TOL);
    ck_assert_double_eq_tol(neg_log_sigmoid(1000.0), 0.0, TOL);      // exp(-1000) underflows
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

int main(void) {
    Suite *s = suite_create("losses");
    TCase *tc = tcase_create("by hand");
    tcase_add_test(tc, test_log_sigmoid_stable);
    tcase_add_test(tc, test_bradley_terry_by_hand);
    tcase_add_test(tc, test_bradley_terry_gradient);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
