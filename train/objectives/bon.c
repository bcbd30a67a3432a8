// train/objectives/bon.c: best-of-n's selection, its analytical KL and the density ratio of
// the empirical score distribution (train/objectives/bon.h).
#include "train/objectives/bon.h"
#include <math.h>

double bon_kl_analytic(int n) {
    return log((double)n) - (double)(n - 1) / n;
}

int bon_best(const double *scores, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (scores[i] > scores[best]) best = i;
    return best;
}

// log of (F^n - G^n) / (F - G) for F = a/m >= G = b/m: F^(n-1) times the geometric sum of
// r = b/a, which is n when a = b (the derivative, continuous there) and never cancels.
static double log_ratio_counts(int a, int b, int m, int n) {
    if (a == 0) return -INFINITY;
    double r = (double)b / a, sum = 1.0;
    for (int k = 1; k < n; k++) sum = 1.0 + r * sum;
    return (n - 1) * log((double)a / m) + log(sum);
}

double bon_log_ratio(const double *pool, int m, int n, double s) {
    int le = 0, lt = 0;
    for (int i = 0; i < m; i++) {
        le += pool[i] <= s;
        lt += pool[i] < s;
    }
    return log_ratio_counts(le, lt, m, n);
}

double bon_log_ratio_sum(const double *pool, int m, int n, const double *picks, int k) {
    double sum = 0.0;
    for (int i = 0; i < k; i++) sum += bon_log_ratio(pool, m, n, picks[i]);
    return sum;
}
