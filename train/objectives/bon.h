// train/objectives/bon.h: the math of best-of-n sampling as a policy (the eval stage's
// `bon(<model>, <n>)` entries): pick the best of n samples of a model by a judge's score, and
// measure how far that moves from the model. Pure functions of scores; checked by hand in
// tests/test_bon.c. docs/eval.md has the formulas and why the estimator is the one used.
//
// For continuous scores, best-of-n has density ratio pi_bon(y) / pi(y) = n F(s(y))^(n-1)
// (F the score's CDF under pi), and KL(pi_bon || pi) = log n - (n-1)/n (Stiennon et al. 2020;
// Beirami et al. 2024 show it is an upper bound when scores tie). With the empirical score
// distribution of a pool of M samples, F(s) = #{pool <= s} / M and F-(s) = #{pool < s} / M, the
// ratio of a response with score s is exactly, ties included,
//   w(s) = (F(s)^n - F-(s)^n) / (F(s) - F-(s)) = F^(n-1) * sum_{k<n} (F- / F)^k,
// and the KL estimate is the mean of log w over the best-of-n picks. The picks are maxima of
// groups of the pool that rates them, so a small pool reads high (continuous scores, n = 4:
// 0.73 at m = 16, 0.66 at m = 64, against 0.64); ties read low.
#pragma once

// log n - (n-1)/n, the KL in nats of best-of-n from its base policy for continuous scores
// (0 at n = 1). n >= 1.
double bon_kl_analytic(int n);

// The index of the best of scores[0..n) (n >= 1): the first maximum, so ties go to the
// earliest sample.
int bon_best(const double *scores, int n);

// log w(s) for a response with score s, against the empirical distribution of pool[0..m)
// (m >= 1, every value finite), for best-of-n (n >= 1). O(m). s is normally one of the pool's
// values; otherwise F = F- and w is the limit n F^(n-1) (-inf when no pool value is below s).
double bon_log_ratio(const double *pool, int m, int n, double s);

// The sum of bon_log_ratio over picks[0..k) against one prompt's pool: the KL estimate's sum
// for that prompt (divide the sum over prompts by the picks' total). O(k m).
double bon_log_ratio_sum(const double *pool, int m, int n, const double *picks, int k);
