// train/report/arena.c: win rates, the Bradley-Terry fit and the bootstrap (method:
// docs/report.md).
#include "train/report/arena.h"
#include "common/check.h"
#include "common/error.h"
#include "common/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BT_MAX_ITERS 200   // Newton steps; a fit that has a maximum needs about 5 to 20
#define BT_TOL       1e-10 // convergence: the largest change of a log-strength in one step

static const char DIVERGE[] = "ratings diverge: some models win (or lose) every match against "
                              "the rest; use a prior > 0";

ArenaOptions arena_options_default(void) {
    return (ArenaOptions){
        .tie_tol = 0.0, .n_boot = 1000, .level = 0.95, .prior = 1.0, .anchor = 0, .seed = 0};
}

static int options_check(const ArenaOptions *o, char *err, size_t errlen) {
    if (!(o->tie_tol >= 0))
        return lc_error(err, errlen, "tie tolerance %g is negative", o->tie_tol);
    if (o->n_boot < 0) return lc_error(err, errlen, "bootstrap resamples %d < 0", o->n_boot);
    if (!(o->level > 0 && o->level < 1))
        return lc_error(err, errlen, "confidence level %g is not in (0, 1)", o->level);
    if (!(o->prior >= 0 && isfinite(o->prior)))
        return lc_error(err, errlen, "prior %g is not a finite count >= 0", o->prior);
    return 0;
}

static int scores_check(const double *s, int n, const char *what, char *err, size_t errlen) {
    for (int i = 0; i < n; i++)
        if (!isfinite(s[i])) return lc_error(err, errlen, "%s score %d is %g", what, i, s[i]);
    return 0;
}

// 1 if a beats b, 1/2 for a tie (|a - b| <= tol), 0 if b beats a.
static double outcome(double a, double b, double tol) {
    double d = a - b;
    return d > tol ? 1.0 : d < -tol ? 0.0 : 0.5;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The q-quantile of x[0..n) by linear interpolation between order statistics (Hyndman-Fan
// type 7, as numpy's default). Sorts x.
static double quantile(double *x, int n, double q) {
    qsort(x, (size_t)n, sizeof(*x), cmp_double);
    double h = (n - 1) * q;
    int k = (int)floor(h);
    if (k + 1 >= n) return x[n - 1];
    return x[k] + (h - k) * (x[k + 1] - x[k]);
}

// The central interval of x[0..n) that holds a share `level` of it.
static void percentile_interval(double *x, int n, double level, double *lo, double *hi) {
    double tail = (1.0 - level) / 2.0;
    *lo = quantile(x, n, tail);
    *hi = quantile(x, n, 1.0 - tail);
}

// Bootstrap weights: how often each of n prompts is drawn in n draws with replacement.
static void resample_counts(Rng *r, int n, int *counts) {
    memset(counts, 0, (size_t)n * sizeof(*counts));
    for (int k = 0; k < n; k++) counts[rng_below(r, (uint64_t)n)]++;
}

// ---- win rate ------------------------------------------------------------------------------

int arena_win_rate(const double *a, const double *b, int n, const ArenaOptions *o,
                   ArenaWinRate *out, char *err, size_t errlen) {
    if (n < 1) return lc_error(err, errlen, "win rate needs at least one prompt");
    if (options_check(o, err, errlen) || scores_check(a, n, "model A", err, errlen) ||
        scores_check(b, n, "model B", err, errlen))
        return -1;
    double *res = lc_malloc((size_t)n * sizeof(*res));
    double total = 0.0;
    *out = (ArenaWinRate){0};
    for (int p = 0; p < n; p++) {
        res[p] = outcome(a[p], b[p], o->tie_tol);
        total += res[p];
        out->wins += res[p] == 1.0;
        out->ties += res[p] == 0.5;
        out->losses += res[p] == 0.0;
    }
    out->rate = out->lo = out->hi = total / n;
    if (o->n_boot > 0) {
        double *stat = lc_malloc((size_t)o->n_boot * sizeof(*stat));
        Rng rng = rng_init(o->seed);
        for (int s = 0; s < o->n_boot; s++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++) sum += res[rng_below(&rng, (uint64_t)n)];
            stat[s] = sum / n;
        }
        percentile_interval(stat, o->n_boot, o->level, &out->lo, &out->hi);
        free(stat);
    }
    free(res);
    return 0;
}

// ---- Bradley-Terry -------------------------------------------------------------------------
// Model i has log-strength th_i and beats j with probability sigma(th_i - th_j). The prior adds
// prior/2 wins to each side of every pair, so the fit sees v_ij = wins_ij + prior/2 (i != j)
// and maximises
//     L(th) = sum_{i != j} v_ij log sigma(th_i - th_j),
// which is concave and unchanged by adding a constant to every th: the last model's th stays
// fixed while Newton's method (with a backtracking line search) moves the others.

// log sigma(x), without overflow for large |x|.
static double log_sigmoid(double x) {
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

static double bt_loglik(const double *w, int n, double prior, const double *th) {
    double ll = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (j != i) ll += (w[i * n + j] + prior / 2) * log_sigmoid(th[i] - th[j]);
    return ll;
}

// The gradient g (n) and the negated Hessian h of the log-likelihood over the first n - 1
// models ((n - 1, n - 1), positive definite when the likelihood has a maximum).
static void bt_derivatives(const double *w, int n, double prior, const double *th, double *g,
                           double *h) {
    int k = n - 1;
    memset(h, 0, (size_t)k * k * sizeof(*h));
    for (int i = 0; i < n; i++) {
        g[i] = 0.0;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double games = w[i * n + j] + w[j * n + i] + prior;
            double p = 1.0 / (1.0 + exp(th[j] - th[i])); // P(i beats j)
            g[i] += w[i * n + j] + prior / 2 - games * p;
            if (i == k) continue;
            h[i * k + i] += games * p * (1 - p);
            if (j < k) h[i * k + j] -= games * p * (1 - p);
        }
    }
}

// Solves a x = b in place (x over b) for a symmetric positive definite (n, n) (Cholesky;
// a is overwritten). Returns -1 if a is not positive definite.
static int cholesky_solve(double *a, int n, double *b) {
    for (int j = 0; j < n; j++) {
        for (int k = 0; k < j; k++) a[j * n + j] -= a[j * n + k] * a[j * n + k];
        if (!(a[j * n + j] > 0)) return -1;
        a[j * n + j] = sqrt(a[j * n + j]);
        for (int i = j + 1; i < n; i++) {
            for (int k = 0; k < j; k++) a[i * n + j] -= a[i * n + k] * a[j * n + k];
            a[i * n + j] /= a[j * n + j];
        }
    }
    for (int i = 0; i < n; i++) { // L y = b
        for (int k = 0; k < i; k++) b[i] -= a[i * n + k] * b[k];
        b[i] /= a[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) { // L^T x = y
        for (int k = i + 1; k < n; k++) b[i] -= a[k * n + i] * b[k];
        b[i] /= a[i * n + i];
    }
    return 0;
}

// One damped Newton step on th; returns the largest change of a log-strength, or -1 when the
// Hessian is not positive definite (only when no maximum exists or strengths underflow).
static double bt_newton_step(const double *w, int n, double prior, double *th, double *work) {
    int k = n - 1;
    double *g = work, *h = work + n, *step = h + k * k, *trial = step + k;
    bt_derivatives(w, n, prior, th, g, h);
    memcpy(step, g, (size_t)k * sizeof(*step));
    if (cholesky_solve(h, k, step) < 0) return -1;
    double ll = bt_loglik(w, n, prior, th), slope = 0.0, t = 1.0, delta = 0.0;
    for (int i = 0; i < k; i++) slope += g[i] * step[i];
    trial[k] = th[k];
    for (; t > 1e-12; t /= 2) { // Armijo: accept once the likelihood rises enough
        for (int i = 0; i < k; i++) trial[i] = th[i] + t * step[i];
        if (bt_loglik(w, n, prior, trial) >= ll + 1e-4 * t * slope) break;
    }
    for (int i = 0; i < k; i++) {
        delta = fmax(delta, fabs(t * step[i]));
        th[i] += t * step[i];
    }
    return delta;
}

// Marks in seen[] the models reachable from model 0 along "i beat j at least once" edges
// (reversed: "j beat i").
static void bt_reach(const double *w, int n, int reversed, int i, char *seen) {
    seen[i] = 1;
    for (int j = 0; j < n; j++) {
        double won = reversed ? w[j * n + i] : w[i * n + j];
        if (j != i && !seen[j] && won > 0) bt_reach(w, n, reversed, j, seen);
    }
}

// Whether the likelihood has a maximum (Zermelo 1929, Ford 1957): with a prior every pair has
// a virtual tie, so always; without one, iff every model can be reached from every other along
// "beat at least once" edges (otherwise some group's ratings run off to infinity).
static int bt_has_maximum(const double *w, int n, double prior) {
    if (prior > 0) return 1;
    char *seen = lc_calloc(2 * (size_t)n, 1);
    bt_reach(w, n, 0, 0, seen);
    bt_reach(w, n, 1, 0, seen + n);
    int all = 1;
    for (int i = 0; i < 2 * n; i++) all &= seen[i];
    free(seen);
    return all;
}

// Fits log-strengths th[0..n), starting from the th given (a warm start). Returns the Newton
// steps taken, or -1 when no maximum exists.
static int bt_fit(const double *w, int n, double prior, double *th) {
    if (n == 1) return 0;
    if (!bt_has_maximum(w, n, prior)) return -1;
    size_t k = (size_t)n - 1;
    double *work = lc_malloc((n + k * k + 2 * k + 1) * sizeof(*work));
    int iters = -1;
    for (int it = 1; it <= BT_MAX_ITERS; it++) {
        double delta = bt_newton_step(w, n, prior, th, work);
        if (!(delta >= 0 && isfinite(delta))) break;
        if (delta < BT_TOL) {
            iters = it;
            break;
        }
    }
    free(work);
    return iters;
}

// Elo = 400 log10 strength = th * 400 / ln 10, shifted so that the anchor (or the mean, anchor
// -1) is at ARENA_ELO_BASE; the anchor's own rating is exactly the base.
static void bt_to_elo(const double *th, int n, int anchor, double *elo) {
    double ref = 0.0;
    for (int i = 0; i < n; i++) ref += th[i] / n;
    if (anchor >= 0) ref = th[anchor];
    for (int i = 0; i < n; i++) elo[i] = ARENA_ELO_BASE + 400.0 / M_LN10 * (th[i] - ref);
}

int arena_bt_elo(const double *wins, int n, const ArenaOptions *o, double *elo) {
    LC_ASSERT(n >= 1 && o->anchor >= -1 && o->anchor < n);
    double *th = lc_calloc((size_t)n, sizeof(*th));
    int iters = bt_fit(wins, n, o->prior, th);
    if (iters >= 0) bt_to_elo(th, n, o->anchor, elo);
    free(th);
    return iters;
}

// ---- the arena -----------------------------------------------------------------------------

// One match per pair and prompt, decided once; resamples only reweight prompts.
typedef struct {
    int n_models, n_prompts;
    double *outcome; // (n_prompts, n_models, n_models): 1, 1/2 or 0 for row model vs column
} Matches;

static Matches matches_decide(const double *scores, int m, int np, double tie_tol) {
    Matches t = {m, np, lc_calloc((size_t)np * m * m, sizeof(double))};
    for (int p = 0; p < np; p++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
                if (i != j)
                    t.outcome[((size_t)p * m + i) * m + j] =
                        outcome(scores[i * np + p], scores[j * np + p], tie_tol);
    return t;
}

// The match table wins (m, m) with prompt p counted counts[p] times (all once if NULL).
static void matches_table(const Matches *t, const int *counts, double *wins) {
    size_t mm = (size_t)t->n_models * t->n_models;
    memset(wins, 0, mm * sizeof(*wins));
    for (int p = 0; p < t->n_prompts; p++) {
        double c = counts ? counts[p] : 1;
        if (c == 0) continue;
        for (size_t k = 0; k < mm; k++) wins[k] += c * t->outcome[p * mm + k];
    }
}

static void matches_record(const Matches *t, ArenaRating *out) {
    int m = t->n_models;
    for (int p = 0; p < t->n_prompts; p++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                if (i == j) continue;
                double r = t->outcome[((size_t)p * m + i) * m + j];
                out[i].wins += r == 1.0;
                out[i].ties += r == 0.5;
                out[i].losses += r == 0.0;
            }
}

static int arena_check(const double *scores, int m, int np, const ArenaOptions *o, char *err,
                       size_t errlen) {
    if (m < 1 || np < 1)
        return lc_error(err, errlen, "the arena needs a model and a prompt (got %d, %d)", m, np);
    if (o->anchor < -1 || o->anchor >= m)
        return lc_error(err, errlen, "anchor %d is not a model index (0..%d) or -1", o->anchor,
                        m - 1);
    if (options_check(o, err, errlen)) return -1;
    return scores_check(scores, m * np, "arena", err, errlen);
}

// Bootstrap: refits on o->n_boot resamples of the prompts, warm-started from the point fit th;
// writes each model's interval. Returns 0 or -1 (a resample whose fit diverges).
static int arena_bootstrap(const Matches *t, const ArenaOptions *o, const double *th,
                           ArenaRating *out, char *err, size_t errlen) {
    int m = t->n_models, rc = 0;
    double *elo = lc_malloc((size_t)o->n_boot * m * sizeof(*elo));
    double *wins = lc_malloc((size_t)m * m * sizeof(*wins));
    double *q = lc_malloc((size_t)m * sizeof(*q));
    int *counts = lc_malloc((size_t)t->n_prompts * sizeof(*counts));
    Rng rng = rng_init(o->seed);
    for (int s = 0; s < o->n_boot && rc == 0; s++) {
        resample_counts(&rng, t->n_prompts, counts);
        matches_table(t, counts, wins);
        memcpy(q, th, (size_t)m * sizeof(*q));
        if (bt_fit(wins, m, o->prior, q) < 0)
            rc = lc_error(err, errlen, "resample %d: %s", s + 1, DIVERGE);
        else
            bt_to_elo(q, m, o->anchor, elo + (size_t)s * m);
    }
    double *col = lc_malloc((size_t)o->n_boot * sizeof(*col));
    for (int i = 0; i < m && rc == 0; i++) {
        for (int s = 0; s < o->n_boot; s++) col[s] = elo[(size_t)s * m + i];
        percentile_interval(col, o->n_boot, o->level, &out[i].lo, &out[i].hi);
    }
    free(col);
    free(counts);
    free(q);
    free(wins);
    free(elo);
    return rc;
}

// Rank 1 + the models whose interval lies entirely above this one's (as Chatbot Arena does).
static void arena_rank(ArenaRating *out, int m) {
    for (int i = 0; i < m; i++) {
        out[i].rank = 1;
        for (int j = 0; j < m; j++) out[i].rank += out[j].lo > out[i].hi;
    }
}

int arena_fit(const double *scores, int m, int np, const ArenaOptions *o, ArenaRating *out,
              char *err, size_t errlen) {
    if (arena_check(scores, m, np, o, err, errlen)) return -1;
    Matches t = matches_decide(scores, m, np, o->tie_tol);
    double *wins = lc_malloc((size_t)m * m * sizeof(*wins));
    double *th = lc_calloc((size_t)m, sizeof(*th));
    double *elo = lc_malloc((size_t)m * sizeof(*elo));
    matches_table(&t, NULL, wins);
    int rc = 0;
    if (bt_fit(wins, m, o->prior, th) < 0) {
        rc = lc_error(err, errlen, "%s", DIVERGE);
    } else {
        bt_to_elo(th, m, o->anchor, elo);
        for (int i = 0; i < m; i++)
            out[i] = (ArenaRating){.elo = elo[i], .lo = elo[i], .hi = elo[i]};
        matches_record(&t, out);
        if (o->n_boot > 0) rc = arena_bootstrap(&t, o, th, out, err, errlen);
        arena_rank(out, m);
    }
    free(elo);
    free(th);
    free(wins);
    free(t.outcome);
    return rc;
}
