// tests/test_bon.c: best-of-n as a policy. The math of train/objectives/bon.h against values
// worked out by hand (the analytical KL, the density ratio on a small pool with ties, an
// all-tied pool) and against the continuous formula on uniform scores; and the recipe's
// `bon(<model>, <n>)` entries in an eval stage's models: accepted, canonicalised, and the bad
// ones reported with the key.
#include "common/rng.h"
#include "tests/testutil.h"
#include "train/objectives/bon.h"
#include "train/recipe/recipe.h"
#include "train/report/arena.h"
#include "train/report/report.h"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOL      1e-12
#define FIXTURES LC_SOURCE_DIR "/tests/fixtures/recipes/"

START_TEST(test_analytic) {
    ck_assert_double_eq_tol(bon_kl_analytic(1), 0.0, TOL);                    // log 1 - 0
    ck_assert_double_eq_tol(bon_kl_analytic(2), 0.69314718056 - 0.5, 1e-10);  // log 2 - 1/2
    ck_assert_double_eq_tol(bon_kl_analytic(4), 1.38629436112 - 0.75, 1e-10); // log 4 - 3/4
}
END_TEST

START_TEST(test_best) {
    ck_assert_int_eq(bon_best((double[]){0.5, 2.0, -1.0, 2.0}, 4), 1); // ties: the first
    ck_assert_int_eq(bon_best((double[]){3.0}, 1), 0);
    ck_assert_int_eq(bon_best((double[]){-2.0, -1.0}, 2), 1);
}
END_TEST

// The pool {1, 2, 2, 3} (M = 4), with w(s) = (F^n - F-^n) / (F - F-):
//   s = 1: F = 1/4, F- = 0;   n = 2: (1/16 - 0) / (1/4) = 1/4
//   s = 2: F = 3/4, F- = 1/4; n = 2: (9/16 - 1/16) / (1/2) = 1;  n = 3: (27/64 - 1/64) / (1/2)
//          = 13/16
//   s = 3: F = 1, F- = 3/4;   n = 2: (1 - 9/16) / (1/4) = 7/4
START_TEST(test_ratio_by_hand) {
    const double pool[4] = {2.0, 3.0, 1.0, 2.0}; // any order
    ck_assert_double_eq_tol(bon_log_ratio(pool, 4, 2, 1.0), log(0.25), TOL);
    ck_assert_double_eq_tol(bon_log_ratio(pool, 4, 2, 2.0), 0.0, TOL);
    ck_assert_double_eq_tol(bon_log_ratio(pool, 4, 3, 2.0), log(13.0 / 16.0), TOL);
    ck_assert_double_eq_tol(bon_log_ratio(pool, 4, 2, 3.0), log(1.75), TOL);
    // picks {3, 2}: log(7/4) + 0
    ck_assert_double_eq_tol(bon_log_ratio_sum(pool, 4, 2, (double[]){3.0, 2.0}, 2), log(1.75), TOL);
    // a score the pool lacks: F = F- = 3/4, the limit n F^(n-1) = 2 * 3/4 for n = 2
    ck_assert_double_eq_tol(bon_log_ratio(pool, 4, 2, 2.5), log(1.5), TOL);
    ck_assert(isinf(bon_log_ratio(pool, 4, 2, 0.0)) && bon_log_ratio(pool, 4, 2, 0.0) < 0);
    // n = 1: the model itself, ratio 1 everywhere it has mass
    ck_assert_double_eq_tol(bon_log_ratio(pool, 4, 1, 2.0), 0.0, TOL);
}
END_TEST

// Every response scores the same: best-of-n picks what the model would, KL 0 for any n.
START_TEST(test_all_tied) {
    double pool[64];
    for (int i = 0; i < 64; i++) pool[i] = -0.25;
    for (int n = 2; n <= 64; n *= 2)
        ck_assert_double_eq_tol(bon_log_ratio_sum(pool, 64, n, pool, 64 / n), 0.0, TOL);
}
END_TEST

// Uniform scores (continuous: no ties): the estimator over prompts of M = 4096 samples each,
// split into M / n groups whose best is a pick, is within 3% of log n - (n-1)/n. 16 prompts:
// the estimate's standard error is about (n-1)/n / sqrt(16 M / n), under 1% of the formula for
// both n (so 3% is over three standard errors; the fixed seed makes the test deterministic).
static double uniform_estimate(int n, uint64_t seed) {
    enum { M = 4096, PROMPTS = 16 };
    double *pool = malloc(M * sizeof(double)), *picks = malloc(M * sizeof(double));
    Rng r = rng_init(seed);
    double sum = 0.0;
    int total = 0;
    for (int p = 0; p < PROMPTS; p++) {
        for (int i = 0; i < M; i++) pool[i] = rng_uniform(&r);
        int k = M / n;
        for (int g = 0; g < k; g++) picks[g] = pool[g * n + bon_best(pool + g * n, n)];
        sum += bon_log_ratio_sum(pool, M, n, picks, k);
        total += k;
    }
    free(pool), free(picks);
    return sum / total;
}

START_TEST(test_uniform) {
    const int ns[2] = {4, 16};
    for (int i = 0; i < 2; i++) {
        double want = bon_kl_analytic(ns[i]), got = uniform_estimate(ns[i], 17 + (uint64_t)i);
        printf("n %d: estimate %.4f, log n - (n-1)/n %.4f (%.2f%%)\n", ns[i], got, want,
               100 * (got - want) / want);
        ck_assert_msg(fabs(got - want) <= 0.03 * want, "n %d: %g vs %g", ns[i], got, want);
    }
}
END_TEST

// ---- the recipe --------------------------------------------------------------------------

START_TEST(test_parse) {
    char model[256], err[512];
    int n;
    ck_assert_int_eq(recipe_bon_parse("sft", model, sizeof(model), &n, err, sizeof(err)), 0);
    ck_assert_int_eq(recipe_bon_parse("bon( sft ,16 )", model, sizeof(model), &n, err, sizeof(err)),
                     1);
    ck_assert_str_eq(model, "sft");
    ck_assert_int_eq(n, 16);
    ck_assert_int_eq(recipe_bon_parse("bon(sft)", model, sizeof(model), &n, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "write bon(<model>, <n>)"));
    ck_assert_int_eq(recipe_bon_parse("bon(sft, 1)", model, sizeof(model), &n, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "at least 2"));
    ck_assert_int_eq(recipe_bon_parse("bon(sft, 4x)", model, sizeof(model), &n, err, sizeof(err)),
                     -1);
}
END_TEST

static RecipeError load(const char *override, Recipe *r, char *err, size_t len) {
    char *ov[] = {(char *) override};
    return recipe_load(FIXTURES "full.yaml", ov, 1, r, err, len);
}

// A flow list's commas split `bon(sft, 4)` in YAML; the loader joins it again, and every
// spelling is stored as "bon(<model>, <n>)".
START_TEST(test_recipe_ok) {
    Recipe r;
    char err[4096];
    ck_assert_msg(load("eval.models=[sft, bon(sft, 4), 'bon(sft,16)', bon( dpo ,2 )]", &r, err,
                       sizeof(err)) == RECIPE_OK,
                  "%s", err);
    const Stage *st = &r.stages[recipe_stage_index(&r, "eval")];
    ck_assert_int_eq(st->models.n, 4);
    ck_assert_str_eq(st->models.items[0], "sft");
    ck_assert_str_eq(st->models.items[1], "bon(sft, 4)");
    ck_assert_str_eq(st->models.items[2], "bon(sft, 16)");
    ck_assert_str_eq(st->models.items[3], "bon(dpo, 2)");
    recipe_free(&r);
}
END_TEST

typedef struct {
    const char *override;
    const char *want; // in the message
} BadCase;

static const BadCase BAD[] = {
    {"eval.models=[sft, bon(sft)]",
     "command line 'eval.models=[sft, bon(sft)]': eval.models: 'bon(sft)' is not a best-of-n "
     "entry: write bon(<model>, <n>), e.g. bon(sft, 4)"},
    {"eval.models=[bon(sft, 1)]",
     "eval.models: 'bon(sft, 1)': n must be an integer of at least 2 (the best of 1 sample is the "
     "model itself), got '1'"},
    {"eval.models=[bon(sft, 2.5)]", "n must be an integer of at least 2"},
    {"eval.models=[bon(nosuch, 4)]", "eval.models: no stage named 'nosuch'"},
    {"eval.models=[bon(reward, 4)]", "eval.models: 'reward' is a reward stage"},
    {"eval.models=['bon(, 4)']", "eval.models: 'bon(, 4)' names no model"},
    {"eval.reference_model=bon(sft, 4)",
     "eval.reference_model: 'bon(sft, 4)' is a best-of-n entry, which only `models` may list"},
    {"eval.reward_model=bon(reward, 4)",
     "eval.reward_model: 'bon(reward, 4)' is a best-of-n entry"},
};

START_TEST(test_recipe_errors) {
    const BadCase *c = &BAD[_i];
    Recipe r;
    char err[4096];
    RecipeError rc = load(c->override, &r, err, sizeof(err));
    ck_assert_msg(rc != RECIPE_OK, "%s loaded", c->override);
    ck_assert_msg(strstr(err, c->want), "%s:\n  %s\nlacks\n  %s", c->override, err, c->want);
}
END_TEST

// ---- results.json and the report -------------------------------------------------------

static const char *const MODELS[] = {"sft", "ppo", "bon(sft, 16)", "bon(sft, 4)"};

// results.json of an eval stage with sft, ppo and two best-of-n entries of sft (16 before 4:
// the report orders them by n), at KL 0, 2.5, 1.8 and 0.6.
static void write_results(const char *path) {
    enum { M = 4, NP = 40 };
    const double kl[M] = {0.0, 2.5, 1.8, 0.6}, gold[M] = {0.2, 0.7, 0.5, 0.35};
    double *s = malloc(M * NP * sizeof(*s));
    for (int i = 0; i < M; i++)
        for (int p = 0; p < NP; p++) s[i * NP + p] = gold[i] + 0.01 * ((p * 7 + i) % 5);
    ArenaResults res;
    char err[1024];
    arena_results_init(&res, M, MODELS, NP);
    res.opts.n_boot = 20;
    ck_assert_msg(arena_judge(&res, s, NULL, err, sizeof(err)) == 0, "%s", err);
    for (int i = 0; i < M; i++)
        res.models[i].kl_to_sft = kl[i], res.models[i].gold_reward = gold[i];
    for (int i = 2; i < M; i++) {
        res.models[i].bon_n = i == 2 ? 16 : 4;
        snprintf(res.models[i].bon_model, ARENA_NAME_MAX, "sft");
        res.models[i].kl_analytic = bon_kl_analytic(res.models[i].bon_n);
    }
    ck_assert_msg(arena_write_results(path, &res, err, sizeof(err)) == 0, "%s", err);
    arena_results_free(&res);
    free(s);
}

START_TEST(test_results_fields) {
    const char *path = test_tmp_path("bon_results.json");
    write_results(path);
    ArenaResults r;
    char err[1024];
    ck_assert_msg(arena_read_results(path, &r, err, sizeof(err)) == 0, "%s", err);
    ck_assert(isnan(r.models[0].kl_analytic) && r.models[0].bon_n == 0);
    ck_assert_str_eq(r.models[0].bon_model, "");
    ck_assert_int_eq(r.models[2].bon_n, 16);
    ck_assert_str_eq(r.models[2].bon_model, "sft");
    ck_assert_double_eq_tol(r.models[3].kl_analytic, log(4.0) - 0.75, 1e-9);
    arena_results_free(&r);
    // results.json of a layercake before best-of-n has none of the three fields
    FILE *f = fopen(path, "w");
    fputs("{\"version\": 1, \"reference\": \"sft\", \"judge\": \"gold\", \"prompts\": 1, "
          "\"options\": {\"tie_tol\": 0, \"bootstrap\": 0, \"level\": 0.95, \"prior\": 1, "
          "\"seed\": 1}, \"models\": {\"sft\": {\"gold_reward\": 0.5, \"accuracy\": null, "
          "\"rm_score\": null, \"gold_reward_greedy\": null, \"accuracy_greedy\": null, "
          "\"rm_score_greedy\": null, \"kl_to_sft\": 0, \"response_length\": 3, "
          "\"win_rate_vs_ref\": 0.5, \"win_rate_vs_ref_ci\": [0.5, 0.5], \"wins_vs_ref\": 0, "
          "\"ties_vs_ref\": 1, \"losses_vs_ref\": 0, \"win_rate_vs_ref_rm\": null, \"elo\": 1000, "
          "\"elo_ci\": [1000, 1000], \"rank\": 1, \"wins\": 0, \"ties\": 0, \"losses\": 0}}}\n",
          f);
    fclose(f);
    ck_assert_msg(arena_read_results(path, &r, err, sizeof(err)) == 0, "%s", err);
    ck_assert(isnan(r.models[0].kl_analytic) && r.models[0].bon_n == 0);
    arena_results_free(&r);
}
END_TEST

// The x coordinates of the dashed best-of-n segments in svg, in order (up to max).
static int chain_xs(const char *svg, double *x1, double *x2, int max) {
    int n = 0;
    for (const char *p = svg; n < max && (p = strstr(p, "class=\"chain\"")); p++, n++)
        ck_assert_int_eq(
            sscanf(p, "class=\"chain\" x1=\"%lf\" y1=\"%*f\" x2=\"%lf\"", &x1[n], &x2[n]), 2);
    return n;
}

// The report's frontier joins sft, bon(sft, 4) and bon(sft, 16) in that order (two segments in
// its first panel, each going right, the second starting where the first ends), and its table
// has the analytic KL column.
START_TEST(test_report_curve) {
    char run[2048], path[2200], cmd[4400], err[1024];
    snprintf(run, sizeof(run), "%s", test_tmp_path("bon_run"));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s/eval'", run, run);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/recipe.yaml", run);
    FILE *f = fopen(path, "w");
    fputs("name: bon\nseed: 1\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/eval/stage.json", run);
    f = fopen(path, "w");
    fputs("{\"name\": \"eval\", \"kind\": \"eval\"}\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/eval/results.json", run);
    write_results(path);
    ReportSummary sum;
    FILE *log = fopen("/dev/null", "w");
    ck_assert_msg(report_build(run, log, &sum, err, sizeof(err)) == 0, "%s", err);
    fclose(log);
    snprintf(path, sizeof(path), "%s/plots/frontier_eval.svg", run);
    f = fopen(path, "r");
    ck_assert_msg(f, "no %s", path);
    static char svg[1 << 20];
    size_t len = fread(svg, 1, sizeof(svg) - 1, f);
    svg[len] = '\0';
    fclose(f);
    double x1[4], x2[4];
    ck_assert_int_ge(chain_xs(svg, x1, x2, 4), 2); // a zoom panel may draw part of it again
    ck_assert(x1[0] < x2[0] && x2[0] == x1[1] && x1[1] < x2[1]);
    snprintf(path, sizeof(path), "%s/report.md", run);
    f = fopen(path, "r");
    len = fread(svg, 1, sizeof(svg) - 1, f);
    svg[len] = '\0';
    fclose(f);
    ck_assert_msg(strstr(svg, "KL, analytic"), "no analytic KL column in report.md");
    ck_assert(strstr(svg, "0.636")); // log 4 - 3/4
    ck_assert(strstr(svg, "`bon(<model>, <n>)` is best-of-n"));
}
END_TEST

static Suite *bon_suite(void) {
    Suite *s = suite_create("bon");
    TCase *t = tcase_create("math");
    tcase_add_test(t, test_analytic);
    tcase_add_test(t, test_best);
    tcase_add_test(t, test_ratio_by_hand);
    tcase_add_test(t, test_all_tied);
    tcase_add_test(t, test_uniform);
    suite_add_tcase(s, t);
    t = tcase_create("recipe");
    tcase_add_test(t, test_parse);
    tcase_add_test(t, test_recipe_ok);
    tcase_add_loop_test(t, test_recipe_errors, 0, (int)(sizeof(BAD) / sizeof(BAD[0])));
    suite_add_tcase(s, t);
    t = tcase_create("report");
    tcase_add_test(t, test_results_fields);
    tcase_add_test(t, test_report_curve);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    return run_suite(bon_suite());
}
