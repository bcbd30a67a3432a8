// tests/test_arena.c: evaluation statistics. Win rates with ties (hand-computed), the
// Bradley-Terry fit (closed-form two-player cases, the likelihood equations, recovery of known
// strengths, anchoring, divergent and degenerate tables), the arena's bootstrap intervals and
// ranks, results.json round trips and errors, and the comparison and leaderboard tables.
#include "tests/testutil.h"
#include "train/report/arena.h"
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ELO_PER_NAT (400.0 / M_LN10) // Elo points per unit of log-strength

static char err[512];

static ArenaOptions opts(int n_boot, double prior, int anchor) {
    ArenaOptions o = arena_options_default();
    o.n_boot = n_boot;
    o.prior = prior;
    o.anchor = anchor;
    o.seed = 7;
    return o;
}

// ---- win rate ------------------------------------------------------------------------------

START_TEST(test_win_rate_ties) {
    // differences a - b: +1, -0.05 (tie), -0.5, 0 (tie), +4, +0.1 (tie: at the tolerance)
    const double a[] = {1, 2, 3, 4, 5, 1.1}, b[] = {0, 2.05, 3.5, 4, 1, 1.0};
    ArenaOptions o = opts(0, 1, 0);
    o.tie_tol = 0.1 + 1e-12;
    ArenaWinRate w;
    ck_assert_int_eq(arena_win_rate(a, b, 6, &o, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(w.wins, 2);
    ck_assert_int_eq(w.ties, 3);
    ck_assert_int_eq(w.losses, 1);
    ck_assert_double_eq_tol(w.rate, (2 + 1.5) / 6, 1e-15);
    ck_assert_double_eq(w.lo, w.rate); // no resamples: the interval collapses
    ck_assert_double_eq(w.hi, w.rate);
    o.tie_tol = 0; // now only the exact 0 is a tie: 3 wins, 1 tie, 2 losses
    ck_assert_int_eq(arena_win_rate(a, b, 6, &o, &w, err, sizeof(err)), 0);
    ck_assert_int_eq(w.wins, 3);
    ck_assert_int_eq(w.ties, 1);
    ck_assert_int_eq(w.losses, 2);
    ck_assert_double_eq_tol(w.rate, 3.5 / 6, 1e-15);
}
END_TEST

START_TEST(test_win_rate_bootstrap) {
    enum { N = 400 };
    double a[N], b[N];
    Rng r = rng_init(3);
    for (int i = 0; i < N; i++) {
        a[i] = rng_normal(&r) + 0.3;
        b[i] = rng_normal(&r);
    }
    ArenaOptions o = opts(2000, 1, 0);
    ArenaWinRate w, again;
    ck_assert_int_eq(arena_win_rate(a, b, N, &o, &w, err, sizeof(err)), 0);
    ck_assert(w.lo < w.rate && w.rate < w.hi);
    // Normal approximation of the interval's half-width: 1.96 sqrt(p (1 - p) / n).
    double half = 1.96 * sqrt(w.rate * (1 - w.rate) / N);
    ck_assert_double_eq_tol(w.hi - w.lo, 2 * half, 0.2 * half);
    ck_assert_int_eq(arena_win_rate(a, b, N, &o, &again, err, sizeof(err)), 0);
    ck_assert(again.lo == w.lo && again.hi == w.hi); // seeded: reproducible
    // A model against itself: every prompt a tie, the interval is exactly [1/2, 1/2].
    ck_assert_int_eq(arena_win_rate(a, a, N, &o, &w, err, sizeof(err)), 0);
    ck_assert(w.rate == 0.5 && w.lo == 0.5 && w.hi == 0.5 && w.ties == N);
}
END_TEST

START_TEST(test_win_rate_errors) {
    const double a[] = {1, NAN}, b[] = {0, 0};
    ArenaOptions o = opts(10, 1, 0);
    ArenaWinRate w;
    ck_assert_int_eq(arena_win_rate(a, b, 2, &o, &w, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "model A score 1 is nan"), "%s", err);
    ck_assert_int_eq(arena_win_rate(a, b, 0, &o, &w, err, sizeof(err)), -1);
    o.tie_tol = -1;
    ck_assert_int_eq(arena_win_rate(b, b, 2, &o, &w, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "tie tolerance"), "%s", err);
}
END_TEST

// ---- Bradley-Terry on match tables -----------------------------------------------------------

START_TEST(test_bt_two_players) {
    // 3 wins to 1: the MLE strength ratio is 3, so the Elo gap is 400 log10 3.
    const double wins[] = {0, 3, 1, 0};
    double elo[2];
    ArenaOptions o = opts(0, 0, 0);
    ck_assert_int_ge(arena_bt_elo(wins, 2, &o, elo), 1);
    ck_assert_double_eq_tol(elo[0], 1000.0, 1e-9);
    ck_assert_double_eq_tol(elo[1] - elo[0], -400.0 * log10(3.0), 1e-6);
    // A prior of 2 virtual ties adds one win to each side: ratio (3 + 1) / (1 + 1) = 2.
    o.prior = 2;
    ck_assert_int_ge(arena_bt_elo(wins, 2, &o, elo), 1);
    ck_assert_double_eq_tol(elo[0] - elo[1], 400.0 * log10(2.0), 1e-6);
    // Two ties and 3-1 count as 4 wins to 2.
    const double with_ties[] = {0, 3 + 1, 1 + 1, 0};
    o.prior = 0;
    ck_assert_int_ge(arena_bt_elo(with_ties, 2, &o, elo), 1);
    ck_assert_double_eq_tol(elo[0] - elo[1], 400.0 * log10(2.0), 1e-6);
}
END_TEST

// The fit is the MLE: for each model, its wins (with the prior's half wins) equal its
// expected wins sum_j N_ij sigma(theta_i - theta_j) under the fitted ratings.
START_TEST(test_bt_likelihood_equations) {
    enum { M = 4 };
    const double wins[M * M] = {0, 7, 2, 9, //
                                3, 0, 5, 1, //
                                8, 5, 0, 6, //
                                1, 9, 4, 0};
    double elo[M];
    ArenaOptions o = opts(0, 0.5, -1);
    ck_assert_int_ge(arena_bt_elo(wins, M, &o, elo), 1);
    double mean = 0;
    for (int i = 0; i < M; i++) mean += elo[i] / M;
    ck_assert_double_eq_tol(mean, 1000.0, 1e-9); // anchor -1: the mean is at 1000
    for (int i = 0; i < M; i++) {
        double won = 0, expected = 0;
        for (int j = 0; j < M; j++) {
            if (j == i) continue;
            double n = wins[i * M + j] + wins[j * M + i] + o.prior;
            won += wins[i * M + j] + o.prior / 2;
            expected += n / (1 + exp(-(elo[i] - elo[j]) / ELO_PER_NAT));
        }
        ck_assert_double_eq_tol(won, expected, 1e-6);
    }
}
END_TEST

// Outcomes drawn from known ratings, many matches per pair: the fit recovers them.
START_TEST(test_bt_recovers_known_ratings) {
    enum { M = 4, MATCHES = 20000 };
    const double truth[M] = {1000, 1100, 900, 1250};
    double wins[M * M] = {0}, elo[M];
    Rng r = rng_init(11);
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++) {
            double p = 1 / (1 + pow(10, (truth[j] - truth[i]) / 400));
            for (int k = 0; k < MATCHES; k++) wins[rng_uniform(&r) < p ? i * M + j : j * M + i]++;
        }
    ArenaOptions o = opts(0, 1, 0);
    ck_assert_int_ge(arena_bt_elo(wins, M, &o, elo), 1);
    for (int i = 0; i < M; i++) // standard error about 3 Elo with 20000 matches a pair
        ck_assert_msg(fabs(elo[i] - truth[i]) < 10, "model %d: %.1f, want %.0f", i, elo[i],
                      truth[i]);
    // Another anchor shifts every rating by the same amount.
    double shifted[M];
    o.anchor = 3;
    ck_assert_int_ge(arena_bt_elo(wins, M, &o, shifted), 1);
    ck_assert_double_eq_tol(shifted[3], 1000.0, 1e-9);
    for (int i = 0; i < M; i++) ck_assert_double_eq_tol(shifted[i] - elo[i], 1000.0 - elo[3], 1e-6);
}
END_TEST

START_TEST(test_bt_divergent) {
    // Model 0 beats everyone every time; model 2 loses every match.
    const double wins[] = {0, 50, 50, //
                           0, 0,  30, //
                           0, 20, 0};
    double elo[3];
    ArenaOptions o = opts(0, 1, 1);
    ck_assert_int_ge(arena_bt_elo(wins, 3, &o, elo), 1);
    for (int i = 0; i < 3; i++) ck_assert(isfinite(elo[i]));
    ck_assert(elo[0] > elo[1] && elo[1] > elo[2]);
    ck_assert(elo[0] - elo[1] > 400); // far ahead, but finite
    o.prior = 0;
    ck_assert_int_eq(arena_bt_elo(wins, 3, &o, elo), -1); // no MLE without the prior
    // {0, 1} always beat {2, 3}; within each group the games are split, so every model has a
    // win and a loss, yet the groups still drift apart without the prior.
    const double groups[] = {0, 5, 9, 9, //
                             5, 0, 9, 9, //
                             0, 0, 0, 4, //
                             0, 0, 6, 0};
    double g[4];
    ck_assert_int_eq(arena_bt_elo(groups, 4, &o, g), -1);
    o.prior = 1;
    ck_assert_int_ge(arena_bt_elo(groups, 4, &o, g), 1);
    ck_assert_double_eq_tol(g[0], g[1], 1e-6);
    ck_assert(g[1] > g[3] + 400 && g[3] > g[2]);
}
END_TEST

// ---- the arena on score tables ---------------------------------------------------------------

// Scores theta_m + Gumbel noise: the difference of two Gumbels is logistic, so model i beats
// model j on a prompt with the Bradley-Terry probability sigma(theta_i - theta_j).
static double *gumbel_scores(const double *elo, int m, int np, uint64_t seed) {
    double *s = malloc((size_t)m * np * sizeof(*s));
    Rng r = rng_init(seed);
    for (int i = 0; i < m; i++)
        for (int p = 0; p < np; p++)
            s[i * np + p] = elo[i] / ELO_PER_NAT - log(-log(rng_uniform(&r) + 1e-300));
    return s;
}

START_TEST(test_arena_recovers_and_intervals) {
    enum { M = 4 };
    const double truth[M] = {1000, 1150, 880, 1060};
    ArenaRating small[M], big[M];
    ArenaOptions o = opts(500, 1, 0);
    double *s100 = gumbel_scores(truth, M, 100, 5), *s1600 = gumbel_scores(truth, M, 1600, 6);
    ck_assert_int_eq(arena_fit(s100, M, 100, &o, small, err, sizeof(err)), 0);
    ck_assert_int_eq(arena_fit(s1600, M, 1600, &o, big, err, sizeof(err)), 0);
    for (int i = 0; i < M; i++) {
        ck_assert_msg(small[i].lo <= small[i].elo && small[i].elo <= small[i].hi,
                      "model %d: %.1f outside [%.1f, %.1f]", i, small[i].elo, small[i].lo,
                      small[i].hi);
        ck_assert(big[i].lo <= big[i].elo && big[i].elo <= big[i].hi);
        ck_assert_msg(fabs(big[i].elo - truth[i]) < 40, "model %d: %.1f, want %.0f", i, big[i].elo,
                      truth[i]);
        ck_assert_msg(big[i].lo <= truth[i] && truth[i] <= big[i].hi,
                      "model %d: %.0f outside [%.1f, %.1f]", i, truth[i], big[i].lo, big[i].hi);
        if (i != 0) // 16 times the prompts: intervals about 4 times narrower
            ck_assert_msg(big[i].hi - big[i].lo < 0.5 * (small[i].hi - small[i].lo),
                          "model %d: width %.1f with 1600 prompts, %.1f with 100", i,
                          big[i].hi - big[i].lo, small[i].hi - small[i].lo);
    }
    // The anchor is 1000 in every resample: its interval is a point.
    ck_assert(big[0].elo == 1000.0 && big[0].lo == 1000.0 && big[0].hi == 1000.0);
    // Ranks: 1150 is alone at the top; 880 is below every other interval.
    ck_assert_int_eq(big[1].rank, 1);
    ck_assert_int_eq(big[2].rank, 4);
    free(s100);
    free(s1600);
}
END_TEST

START_TEST(test_arena_counts_and_ranks) {
    // 3 models x 4 prompts. On each prompt every pair meets once.
    //   prompt:   0  1  2  3
    const double s[] = {1, 1, 2, 3,  // A
                        1, 0, 2, 1,  // B
                        0, 0, 0, 0}; // C
    // A-B: tie, win, tie, win  A-C: win x4  B-C: win, tie, win, win
    ArenaRating g[3];
    ArenaOptions o = opts(200, 1, 1);
    ck_assert_int_eq(arena_fit(s, 3, 4, &o, g, err, sizeof(err)), 0);
    ck_assert_int_eq(g[0].wins, 6);
    ck_assert_int_eq(g[0].ties, 2);
    ck_assert_int_eq(g[0].losses, 0);
    ck_assert_int_eq(g[1].wins, 3);
    ck_assert_int_eq(g[1].ties, 3);
    ck_assert_int_eq(g[1].losses, 2);
    ck_assert_int_eq(g[2].wins, 0);
    ck_assert_int_eq(g[2].ties, 1);
    ck_assert_int_eq(g[2].losses, 7);
    ck_assert_double_eq(g[1].elo, 1000.0);
    ck_assert(g[0].elo > g[1].elo && g[1].elo > g[2].elo);
    ck_assert_int_eq(g[0].rank, 1);
}
END_TEST

START_TEST(test_arena_degenerate) {
    ArenaRating g[3];
    ArenaOptions o = opts(100, 1, 0);
    // One model: rating 1000, no matches.
    const double one[] = {0.3, 0.1};
    ck_assert_int_eq(arena_fit(one, 1, 2, &o, g, err, sizeof(err)), 0);
    ck_assert(g[0].elo == 1000.0 && g[0].lo == 1000.0 && g[0].hi == 1000.0);
    ck_assert_int_eq(g[0].wins + g[0].ties + g[0].losses, 0);
    ck_assert_int_eq(g[0].rank, 1);
    // All ties: everyone at 1000, every interval a point.
    const double same[] = {1, 2, 1, 2, 1, 2};
    ck_assert_int_eq(arena_fit(same, 3, 2, &o, g, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(g[i].elo, 1000.0, 1e-6);
        ck_assert_double_eq_tol(g[i].hi - g[i].lo, 0, 1e-6);
        ck_assert_int_eq(g[i].ties, 4);
    }
    // Model 2 wins everything: finite with the prior, an error without it.
    const double sweep[] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
    ck_assert_int_eq(arena_fit(sweep, 3, 3, &o, g, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) ck_assert(isfinite(g[i].elo) && isfinite(g[i].lo));
    ck_assert(g[2].elo > g[1].elo && g[1].elo > g[0].elo);
    o.prior = 0;
    ck_assert_int_eq(arena_fit(sweep, 3, 3, &o, g, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "diverge"), "%s", err);
    o.prior = 1;
    o.anchor = 3;
    ck_assert_int_eq(arena_fit(sweep, 3, 3, &o, g, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "anchor 3"), "%s", err);
}
END_TEST

// ---- results -------------------------------------------------------------------------------

static const char *const NAMES[] = {"sft", "ppo", "dpo|v2"};

// Three models on 200 prompts, judged by gold scores and a reward model's.
static void results_make(ArenaResults *r) {
    enum { NP = 200 };
    const double truth[] = {1000, 1120, 1050};
    arena_results_init(r, 3, NAMES, NP);
    r->opts.n_boot = 200;
    double *gold = gumbel_scores(truth, 3, NP, 1), *rm = gumbel_scores(truth, 3, NP, 2);
    ck_assert_msg(arena_judge(r, gold, rm, err, sizeof(err)) == 0, "%s", err);
    for (int i = 0; i < 3; i++) {
        r->models[i].gold_reward = 0.25 * i;
        r->models[i].rm_score = -1.5 + i;
        r->models[i].kl_to_sft = 2.0 * i;
        r->models[i].response_length = 20 + i;
    }
    free(gold);
    free(rm);
}

START_TEST(test_results_judge) {
    ArenaResults r;
    results_make(&r);
    ck_assert_int_eq(r.opts.anchor, 0);
    const ArenaModel *sft = &r.models[0], *ppo = &r.models[1];
    ck_assert(sft->win.rate == 0.5 && sft->win.ties == 200 && sft->win_rate_rm == 0.5);
    ck_assert(sft->rating.elo == 1000.0);
    ck_assert(ppo->win.rate > 0.5 && ppo->win.lo < ppo->win.rate && ppo->win.rate < ppo->win.hi);
    ck_assert(ppo->win_rate_rm > 0.5);
    ck_assert_int_eq(ppo->rating.wins + ppo->rating.ties + ppo->rating.losses, 2 * 200);
    snprintf(r.reference, sizeof(r.reference), "nope");
    ck_assert_int_eq(arena_judge(&r, NULL, NULL, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "reference 'nope'"), "%s", err);
    arena_results_free(&r);
}
END_TEST

START_TEST(test_results_round_trip) {
    ArenaResults r, back;
    results_make(&r);
    r.models[2].accuracy = NAN; // not measured: null in the file
    r.models[1].accuracy = 0.625;
    for (int i = 0; i < 3; i++) r.models[i].gold_reward_greedy = 0.5 + 0.125 * i;
    const char *path = test_tmp_path("results.json");
    ck_assert_msg(arena_write_results(path, &r, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(arena_read_results(path, &back, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(back.n_models, 3);
    ck_assert_str_eq(back.reference, "sft");
    ck_assert_str_eq(back.judge, "gold");
    ck_assert_int_eq(back.prompts, 200);
    ck_assert_int_eq(back.opts.n_boot, 200);
    ck_assert_int_eq(back.opts.anchor, 0);
    for (int i = 0; i < 3; i++) {
        const ArenaModel *a = &r.models[i], *b = &back.models[i];
        ck_assert_str_eq(b->name, NAMES[i]); // in the order written
        ck_assert_double_eq_tol(b->rating.elo, a->rating.elo, 1e-6);
        ck_assert_double_eq_tol(b->rating.lo, a->rating.lo, 1e-6);
        ck_assert_double_eq_tol(b->win.hi, a->win.hi, 1e-9);
        ck_assert_double_eq_tol(b->kl_to_sft, a->kl_to_sft, 1e-9);
        ck_assert_double_eq_tol(b->gold_reward_greedy, a->gold_reward_greedy, 1e-9);
        ck_assert(isnan(b->accuracy_greedy) && isnan(b->rm_score_greedy));
        ck_assert_int_eq(b->rating.rank, a->rating.rank);
        ck_assert_int_eq(b->rating.losses, a->rating.losses);
        ck_assert_int_eq(b->win.wins, a->win.wins);
    }
    ck_assert(isnan(back.models[0].accuracy) && isnan(back.models[2].accuracy));
    ck_assert_double_eq(back.models[1].accuracy, 0.625);
    arena_results_free(&back);
    arena_results_free(&r);
}
END_TEST

// Reading `text` fails with a message containing want and the file's name.
static void read_fails(const char *text, const char *want) {
    const char *path = test_tmp_path("bad_results.json");
    FILE *f = fopen(path, "w");
    ck_assert(f);
    fputs(text, f);
    fclose(f);
    ArenaResults r;
    ck_assert_int_eq(arena_read_results(path, &r, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want) && strstr(err, path), "error '%s' lacks '%s'", err, want);
    ck_assert_ptr_null(r.models);
}

// A good results document with doc[path] set to value (path "model.key" or "key"; value NULL
// deletes the key), read back: fails with want.
static void edit_fails(json_t *good, const char *model, const char *key, json_t *value,
                       const char *want) {
    json_t *doc = json_deep_copy(good);
    json_t *obj = model ? json_object_get(json_object_get(doc, "models"), model) : doc;
    ck_assert_ptr_nonnull(obj);
    if (value)
        json_object_set_new(obj, key, value);
    else
        json_object_del(obj, key);
    char *text = json_dumps(doc, 0);
    read_fails(text, want);
    free(text);
    json_decref(doc);
}

START_TEST(test_results_read_errors) {
    ArenaResults r;
    results_make(&r);
    const char *path = test_tmp_path("good_results.json");
    ck_assert(arena_write_results(path, &r, err, sizeof(err)) == 0);
    json_t *good = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(good);
    read_fails("{\"version\": 1, \"models\": ", ":1:"); // truncated: the JSON error's line
    read_fails("[1, 2]", "expected an object");
    edit_fails(good, NULL, "version", json_integer(2), "version: expected 1");
    edit_fails(good, "ppo", "elo", json_string("x"), "models.ppo.elo: expected a number or null");
    edit_fails(good, "sft", "rank", NULL, "models.sft.rank: expected an integer");
    edit_fails(good, "sft", "elo_ci", json_pack("[f]", 1.0),
               "models.sft.elo_ci: expected [lo, hi]");
    edit_fails(good, NULL, "reference", json_string("zzz"),
               "reference: expected the name of one of the models");
    edit_fails(good, NULL, "models", json_object(), "models: expected an object with one entry");
    read_fails("{\"version\": 1, \"version\": 1}", "duplicate object key");
    json_decref(good);
    // Two models of one name would collapse into one JSON key: refused.
    snprintf(r.models[2].name, sizeof(r.models[2].name), "sft");
    ck_assert_int_eq(arena_write_results(path, &r, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "model 'sft' is listed twice"), "%s", err);
    arena_results_free(&r);
}
END_TEST

// What f wrote (malloc'd), f closed.
static char *memstream_text(FILE *f, char **buf) {
    fclose(f);
    return *buf;
}

START_TEST(test_tables) {
    ArenaResults r;
    results_make(&r);
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    arena_print_table(f, &r);
    char *table = memstream_text(f, &buf);
    // No model has an accuracy: no such column. A '|' in a name is escaped.
    ck_assert_msg(!strstr(table, "Accuracy"), "%s", table);
    ck_assert_msg(strstr(table, "| Model   | Gold reward | RM score | KL to SFT | Length |"), "%s",
                  table);
    ck_assert_msg(strstr(table, "Win rate vs sft [95% CI]"), "%s", table);
    ck_assert_msg(strstr(table, "| dpo\\|v2 |       0.500 |    0.500 |     4.000 |   22.0 |"), "%s",
                  table);
    ck_assert_msg(strstr(table,
                         "| sft     |       0.000 |   -1.500 |     0.000 |   20.0 |     0.500 "
                         "[0.500, 0.500] |                0.500 | 1000 [1000, 1000] |\n"),
                  "%s", table);
    free(table);

    f = open_memstream(&buf, &len);
    arena_print_leaderboard(f, &r);
    char *board = memstream_text(f, &buf);
    const char *ppo = strstr(board, "| ppo"), *dpo = strstr(board, "| dpo"),
               *sft = strstr(board, "| sft");
    ck_assert_msg(ppo && dpo && sft && ppo < dpo && dpo < sft, "%s", board); // by Elo
    ck_assert_msg(strstr(board, "| Rank | Model   |  Elo |  95% CI | Wins | Ties | Losses |"), "%s",
                  board);
    ck_assert_msg(strstr(board, "| sft     | 1000 |   +0/+0 |"), "%s", board); // the anchor
    char want[128];
    const ArenaRating *g = &r.models[1].rating;
    snprintf(want, sizeof(want), "| %.0f | %+.0f/%+.0f |", g->elo, g->hi - g->elo, g->lo - g->elo);
    ck_assert_msg(strstr(board, want), "'%s' not in\n%s", want, board);
    free(board);
    arena_results_free(&r);
}
END_TEST

static Suite *arena_suite(void) {
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, test_win_rate_ties);
    tcase_add_test(tc, test_win_rate_bootstrap);
    tcase_add_test(tc, test_win_rate_errors);
    tcase_add_test(tc, test_bt_two_players);
    tcase_add_test(tc, test_bt_likelihood_equations);
    tcase_add_test(tc, test_bt_recovers_known_ratings);
    tcase_add_test(tc, test_bt_divergent);
    tcase_add_test(tc, test_arena_recovers_and_intervals);
    tcase_add_test(tc, test_arena_counts_and_ranks);
    tcase_add_test(tc, test_arena_degenerate);
    tcase_add_test(tc, test_results_judge);
    tcase_add_test(tc, test_results_round_trip);
    tcase_add_test(tc, test_results_read_errors);
    tcase_add_test(tc, test_tables);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(arena_suite());
}
