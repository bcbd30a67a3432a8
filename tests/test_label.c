// tests/test_label.c: the labeller's choice of preference pairs (train/stages/pairs.h) on
// hand-made scores: best_worst, best_random and all_pairs, ties, margins, require_correct, and
// the best-of-n pick.
#include "testutil.h"
#include "train/stages/pairs.h"
#include <math.h>

#define MAX_PAIRS 64

static void expect_pick(const PairPick *p, int chosen, int rejected, double margin) {
    ck_assert_int_eq(p->chosen, chosen);
    ck_assert_int_eq(p->rejected, rejected);
    ck_assert_double_eq_tol(p->margin, margin, 1e-12);
}

START_TEST(test_best_worst) {
    const double score[] = {0.25, 1.0, -0.5, 0.0};
    PairPick out[MAX_PAIRS];
    Rng rng = rng_init(1), before = rng;
    ck_assert_int_eq(pairs_select(score, NULL, 4, LABEL_BEST_WORST, true, &rng, out), 1);
    expect_pick(&out[0], 1, 2, 1.5);
    ck_assert_uint_eq(rng.state, before.state); // no draw
    // ties: the first of the highest is chosen, the first of the lowest rejected
    const double tied[] = {0.0, 2.0, 2.0, 0.0};
    ck_assert_int_eq(pairs_select(tied, NULL, 4, LABEL_BEST_WORST, true, &rng, out), 1);
    expect_pick(&out[0], 1, 0, 2.0);
    // all alike: no pair
    const double alike[] = {0.5, 0.5, 0.5};
    ck_assert_int_eq(pairs_select(alike, NULL, 3, LABEL_BEST_WORST, true, &rng, out), 0);
}
END_TEST

START_TEST(test_require_correct) {
    const double score[] = {0.9, 0.1, 0.4};
    const double wrong[] = {0, 0, 1}, right[] = {1, 0, 0}, unknown[] = {NAN, NAN, NAN};
    PairPick out[MAX_PAIRS];
    Rng rng = rng_init(2);
    // the best is known to be wrong: left out, unless correctness is not required
    ck_assert_int_eq(pairs_select(score, wrong, 3, LABEL_BEST_WORST, true, &rng, out), 0);
    ck_assert_int_eq(pairs_select(score, wrong, 3, LABEL_BEST_RANDOM, true, &rng, out), 0);
    ck_assert_int_eq(pairs_select(score, wrong, 3, LABEL_BEST_WORST, false, &rng, out), 1);
    expect_pick(&out[0], 0, 1, 0.8);
    ck_assert_int_eq(pairs_select(score, right, 3, LABEL_BEST_WORST, true, &rng, out), 1);
    expect_pick(&out[0], 0, 1, 0.8);
    // a judge that does not know correctness (NaN) never leaves a pair out
    ck_assert_int_eq(pairs_select(score, unknown, 3, LABEL_BEST_WORST, true, &rng, out), 1);
    expect_pick(&out[0], 0, 1, 0.8);
    // best-of-n: the best unless known wrong
    ck_assert_int_eq(pairs_best(score, right, 3), 0);
    ck_assert_int_eq(pairs_best(score, wrong, 3), -1);
    ck_assert_int_eq(pairs_best(score, unknown, 3), 0);
    ck_assert_int_eq(pairs_best(score, NULL, 3), 0);
    const double tied[] = {0.0, 1.0, 1.0};
    ck_assert_int_eq(pairs_best(tied, NULL, 3), 1);
}
END_TEST

START_TEST(test_best_random) {
    // the best (index 1) and the other top score (index 3) are never rejected; the three lower
    // ones are drawn uniformly, one draw per call
    const double score[] = {0.5, 2.0, -1.0, 2.0, 0.0};
    PairPick out[MAX_PAIRS];
    Rng rng = rng_init(3);
    int hits[5] = {0}, draws = 30000;
    for (int i = 0; i < draws; i++) {
        Rng copy = rng;
        (void)rng_below(&copy, 3);
        ck_assert_int_eq(pairs_select(score, NULL, 5, LABEL_BEST_RANDOM, true, &rng, out), 1);
        ck_assert_uint_eq(rng.state, copy.state);
        ck_assert_int_eq(out[0].chosen, 1);
        ck_assert_double_eq_tol(out[0].margin, 2.0 - score[out[0].rejected], 1e-12);
        hits[out[0].rejected]++;
    }
    ck_assert_int_eq(hits[1] + hits[3], 0);
    for (int i = 0; i < 5; i++)
        if (i != 1 && i != 3) ck_assert_double_eq_tol(hits[i] / (double)draws, 1.0 / 3, 0.015);
    // one lower response: always that one
    const double two[] = {1.0, 3.0};
    ck_assert_int_eq(pairs_select(two, NULL, 2, LABEL_BEST_RANDOM, true, &rng, out), 1);
    expect_pick(&out[0], 1, 0, 2.0);
}
END_TEST

START_TEST(test_all_pairs) {
    // pairs i < j in order, the higher one chosen; the tie (0, 2) is left out
    const double score[] = {1.0, 0.0, 1.0, 0.5};
    PairPick out[MAX_PAIRS];
    Rng rng = rng_init(4);
    ck_assert_int_eq(pairs_select(score, NULL, 4, LABEL_ALL_PAIRS, true, &rng, out), 5);
    expect_pick(&out[0], 0, 1, 1.0);
    expect_pick(&out[1], 0, 3, 0.5);
    expect_pick(&out[2], 2, 1, 1.0);
    expect_pick(&out[3], 3, 1, 0.5);
    expect_pick(&out[4], 2, 3, 0.5);
    // require_correct drops the pairs whose chosen answer is known wrong (index 2 here)
    const double correct[] = {1, 0, 0, 1};
    ck_assert_int_eq(pairs_select(score, correct, 4, LABEL_ALL_PAIRS, true, &rng, out), 3);
    expect_pick(&out[0], 0, 1, 1.0);
    expect_pick(&out[1], 0, 3, 0.5);
    expect_pick(&out[2], 3, 1, 0.5);
    ck_assert_int_eq(pairs_select(score, correct, 4, LABEL_ALL_PAIRS, false, &rng, out), 5);
    // every margin is positive; all alike gives none
    const double alike[] = {2.0, 2.0, 2.0, 2.0};
    ck_assert_int_eq(pairs_select(alike, NULL, 4, LABEL_ALL_PAIRS, true, &rng, out), 0);
    const double eight[] = {3, 1, 4, 1, 5, 9, 2, 6};
    int n = pairs_select(eight, NULL, 8, LABEL_ALL_PAIRS, true, &rng, out);
    ck_assert_int_eq(n, 28 - 1); // one tie (1, 1)
    for (int k = 0; k < n; k++) {
        ck_assert(out[k].margin > 0);
        ck_assert_double_eq_tol(out[k].margin, eight[out[k].chosen] - eight[out[k].rejected],
                                1e-12);
    }
}
END_TEST

static Suite *label_suite(void) {
    Suite *s = suite_create("label");
    TCase *tc = tcase_create("pairs");
    tcase_add_test(tc, test_best_worst);
    tcase_add_test(tc, test_require_correct);
    tcase_add_test(tc, test_best_random);
    tcase_add_test(tc, test_all_pairs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(label_suite());
}
