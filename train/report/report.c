// train/report/report.c: report.md and its SVG plots from a loaded run directory. Every output is
// written to a temporary file and renamed into place, so a reader never sees half a report.
#include "train/report/report.h"
#include "common/check.h"
#include "train/report/mdtable.h"
#include "train/report/plot.h"
#include "train/report/report-impl.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// Curves on each stage's loss plot, when the stage logs them.
static const char *const LOSS_KEYS[] = {"loss", "loss/policy", "loss/value"};
#define N_LOSS_KEYS ((int)(sizeof(LOSS_KEYS) / sizeof(LOSS_KEYS[0])))

typedef struct {
    const char *dir; // the run directory
    FILE *md;        // report.md (its temporary file) being written
    ReportSummary *sum;
    char *err;
    size_t errlen;
} Report;

static int fail(Report *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

// ---- output files --------------------------------------------------------------------------

// Opens RUN_DIR/rel's temporary file (its path goes to tmp).
static FILE *out_open(Report *r, const char *rel, char *tmp, size_t n) {
    snprintf(tmp, n, "%s/%s.tmp", r->dir, rel);
    FILE *f = fopen(tmp, "w");
    if (!f) fail(r, "%s: cannot write: %s", tmp, strerror(errno));
    return f;
}

// Closes f and renames its temporary file to RUN_DIR/rel.
static int out_commit(Report *r, FILE *f, const char *tmp, const char *rel) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", r->dir, rel);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        return fail(r, "%s: cannot write (disk full or not writable?)", path);
    }
    return 0;
}

// "plots/<kind>_<stage>.svg" with characters other than [A-Za-z0-9._-] in the stage name
// replaced by '_', so the name is a safe file name and Markdown link.
static void plot_rel(char *buf, size_t n, const char *kind, const char *stage) {
    int k = snprintf(buf, n, "plots/%s_", kind);
    for (const char *s = stage; *s && k + 5 < (int)n; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        buf[k++] = ok ? c : '_';
    }
    snprintf(buf + k, n - (size_t)k, ".svg");
}

// Commits a written plot and links it in report.md, its title as the alt text.
static int plot_done(Report *r, FILE *f, const char *tmp, const char *rel, const PlotFrame *fr) {
    if (out_commit(r, f, tmp, rel)) return -1;
    r->sum->plots++;
    fprintf(r->md, "![%s](%s)\n\n", fr->title, rel);
    return 0;
}

static int write_panels(Report *r, const char *rel, const PlotFrame *fr, const PlotPanel *p,
                        int n) {
    char tmp[4096];
    FILE *f = out_open(r, rel, tmp, sizeof(tmp));
    if (!f) return -1;
    plot_panels(f, fr, p, n);
    return plot_done(r, f, tmp, rel, fr);
}

static int write_lines(Report *r, const char *rel, const PlotFrame *fr, const PlotSeries *s,
                       int n) {
    PlotPanel one = {fr->ylabel, s, n};
    return write_panels(r, rel, fr, &one, 1);
}

static int write_scatter(Report *r, const char *rel, const PlotFrame *fr, const PlotPoint *p, int n,
                         const PlotChain *c, int n_chains) {
    char tmp[4096];
    FILE *f = out_open(r, rel, tmp, sizeof(tmp));
    if (!f) return -1;
    plot_scatter_chains(f, fr, p, n, c, n_chains);
    return plot_done(r, f, tmp, rel, fr);
}

static int write_bars(Report *r, const char *rel, const PlotFrame *fr, const PlotBar *b, int n,
                      double base) {
    char tmp[4096];
    FILE *f = out_open(r, rel, tmp, sizeof(tmp));
    if (!f) return -1;
    plot_bars(f, fr, b, n, base);
    return plot_done(r, f, tmp, rel, fr);
}

// ---- training stages -----------------------------------------------------------------------

// The last finite value of a column, or NAN.
static double last_value(const MetricTable *t, const char *key) {
    const double *c = metric_column(t, key);
    for (int i = c ? t->n_rows - 1 : -1; i >= 0; i--)
        if (isfinite(c[i])) return c[i];
    return NAN;
}

static void value_cell(MdTable *t, int col, double v) {
    if (!isfinite(v))
        mdtable_set(t, col, "-");
    else if (fabs(v) >= 1e4 && fabs(v) < 1e15) // steps, tokens/s: whole numbers read better
        mdtable_set(t, col, "%.0f", v);
    else
        mdtable_set(t, col, "%.4g", v);
}

static void metrics_row(MdTable *t, const ReportStage *st, const char *key) {
    mdtable_add_row(t);
    mdtable_set(t, 0, "%s", key);
    value_cell(t, 1, last_value(&st->train, key));
    value_cell(t, 2, last_value(&st->val, key));
}

// Metric | train | val: each key's last value, in the order the rows first name them.
static void metrics_table(Report *r, const ReportStage *st) {
    const char *header[] = {"Metric", "Train", "Validation"};
    MdTable t;
    mdtable_init(&t, 3, header, "lrr");
    mdtable_add_row(&t);
    mdtable_set(&t, 0, "step");
    value_cell(&t, 1, st->train.n_rows ? st->train.step[st->train.n_rows - 1] : NAN);
    value_cell(&t, 2, st->val.n_rows ? st->val.step[st->val.n_rows - 1] : NAN);
    for (int k = 0; k < st->train.n_keys; k++) metrics_row(&t, st, st->train.keys[k]);
    for (int k = 0; k < st->val.n_keys; k++)
        if (!metric_column(&st->train, st->val.keys[k])) metrics_row(&t, st, st->val.keys[k]);
    mdtable_print(&t, r->md);
    fputc('\n', r->md);
    mdtable_free(&t);
}

// Adds the series of key in t (if any row has it) to s[*n]. Validation curves are dashed and
// not smoothed (a few evaluations on many batches each); training curves, per-step and noisy,
// get a moving average over the faint raw curve.
// Whether columns a and b of t hold the same values (missing in the same rows).
static int same_column(const MetricTable *t, const double *a, const double *b) {
    for (int i = 0; i < t->n_rows; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) return 0;
    return 1;
}

// A key whose values repeat a curve already added (GRPO's loss is its loss/policy) is not
// drawn again, where it would hide that curve; its name joins that curve's label.
static void series_add(PlotSeries *s, int *n, char labels[][64], const MetricTable *t,
                       const char *key, const char *split, int color, int val) {
    const double *y = metric_column(t, key);
    if (!y) return;
    for (int k = 0; k < *n; k++)
        if (s[k].x == t->step && same_column(t, s[k].y, y)) {
            size_t len = strlen(labels[k]);
            snprintf(labels[k] + len, 64 - len, " = %s", key);
            return;
        }
    snprintf(labels[*n], 64, "%s %s", split, key);
    s[*n] = (PlotSeries){labels[*n], t->step, y, t->n_rows, color, val, !val};
    (*n)++;
}

static int loss_plot(Report *r, const ReportStage *st) {
    PlotSeries s[2 * N_LOSS_KEYS];
    char labels[2 * N_LOSS_KEYS][64], title[256], rel[512];
    int n = 0;
    for (int k = 0; k < N_LOSS_KEYS; k++) {
        series_add(s, &n, labels, &st->train, LOSS_KEYS[k], "train", 2 * k, 0);
        series_add(s, &n, labels, &st->val, LOSS_KEYS[k], "val", 2 * k + 1, 1);
    }
    if (n == 0) return 0;
    snprintf(title, sizeof(title), "%s: loss", st->name);
    PlotFrame fr = {title, "step", "loss", 0, 0};
    plot_rel(rel, sizeof(rel), "loss", st->name);
    return write_lines(r, rel, &fr, s, n);
}

static int stage_section(Report *r, const ReportStage *st) {
    FILE *md = r->md;
    fprintf(md, "### %s\n\n", st->name);
    fprintf(md, "Kind: %s%s. %d training row%s, %d validation row%s.\n\n", st->kind,
            st->kind_guessed ? " (guessed: no stage.json)" : "", st->train.n_rows,
            st->train.n_rows == 1 ? "" : "s", st->val.n_rows, st->val.n_rows == 1 ? "" : "s");
    if (st->train.n_rows + st->val.n_rows == 0) return 0;
    metrics_table(r, st);
    return loss_plot(r, st);
}

// Whether an RL stage scores its rollouts with a gold reward function: train/stages/rl.c logs
// objective/accuracy only then; otherwise objective/scores is a reward model's score, on
// another scale (a reward model's scores are logits, a gold reward is in [0, 1]).
static int scores_gold(const ReportStage *st) {
    return metric_column(&st->train, "objective/accuracy") != NULL;
}

// Appends to s[*n] a smoothed curve of key against the iteration for every RL stage that logs
// it and whose scores_gold is gold (-1: any); the stage's index picks its colour, so a stage
// has the same colour on every RL plot.
static void rl_series(const ReportRun *run, const char *key, int gold, PlotSeries *s, int *n) {
    for (int i = 0; i < run->n_stages; i++) {
        const ReportStage *st = &run->stages[i];
        const double *y = metric_column(&st->train, key);
        if (y && (gold < 0 || gold == scores_gold(st)))
            s[(*n)++] = (PlotSeries){st->name, st->train.step, y, st->train.n_rows, i, 0, 1};
    }
}

// objective/scores per iteration: one panel for the stages judged by gold rewards and one for
// those judged by a reward model, each with its own y range, sharing the iteration axis.
static int rl_reward_plot(Report *r, const ReportRun *run) {
    PlotSeries *s = lc_calloc((size_t)run->n_stages + 1, sizeof(*s));
    int n_gold = 0, n = 0, np = 0, rc = 0;
    rl_series(run, "objective/scores", 1, s, &n_gold);
    n = n_gold;
    rl_series(run, "objective/scores", 0, s, &n);
    PlotPanel pn[2];
    if (n_gold > 0) pn[np++] = (PlotPanel){"mean gold reward", s, n_gold};
    if (n > n_gold) pn[np++] = (PlotPanel){"mean reward-model score", s + n_gold, n - n_gold};
    PlotFrame fr = {"Mean reward per RL iteration", "iteration", NULL, 0, np > 1 ? 640 : 0};
    if (n > 0) rc = write_panels(r, "plots/rl_reward.svg", &fr, pn, np);
    free(s);
    return rc;
}

static int rl_kl_plot(Report *r, const ReportRun *run) {
    PlotSeries *s = lc_calloc((size_t)run->n_stages + 1, sizeof(*s));
    int n = 0, rc = 0;
    rl_series(run, "objective/kl", -1, s, &n);
    PlotFrame fr = {"KL to the reference per RL iteration", "iteration", "KL (nats)", 0, 0};
    if (n > 0) rc = write_lines(r, "plots/rl_kl.svg", &fr, s, n);
    free(s);
    return rc;
}

static int is_rl(const ReportStage *st) {
    return metric_column(&st->train, "objective/scores") ||
           metric_column(&st->train, "objective/kl");
}

static int training_sections(Report *r, const ReportRun *run) {
    int rl = 0;
    fprintf(r->md, "## Training\n\n");
    for (int i = 0; i < run->n_stages; i++) {
        rl |= is_rl(&run->stages[i]);
        if (!run->stages[i].has_results && stage_section(r, &run->stages[i])) return -1;
    }
    if (!rl) return 0;
    fprintf(r->md, "## Reinforcement learning: reward and KL per iteration\n\n");
    return rl_reward_plot(r, run) || rl_kl_plot(r, run) ? -1 : 0;
}

// ---- evaluation ----------------------------------------------------------------------------

// The best-of-n curves of the frontier plot: per model sampled by best-of-n entries, the model
// (n = 1) when it was evaluated, then its entries by n. chains has n_models entries, idx twice
// that (each chain's points); returns the count of chains.
static int bon_chains(const ArenaResults *res, PlotChain *chains, int *idx) {
    int n_chains = 0, used = 0;
    for (int i = 0; i < res->n_models; i++) {
        const ArenaModel *m = &res->models[i];
        int seen = 0;
        for (int k = 0; k < i && m->bon_n; k++)
            seen |= strcmp(res->models[k].bon_model, m->bon_model) == 0;
        if (!m->bon_n || seen) continue;
        int *c = idx + used, len = 0;
        for (int k = 0; k < res->n_models; k++)
            if (strcmp(res->models[k].name, m->bon_model) == 0) c[len++] = k;
        for (int k = 0; k < res->n_models; k++) { // insertion by n: few entries
            if (strcmp(res->models[k].bon_model, m->bon_model) != 0 || !res->models[k].bon_n)
                continue;
            int j = len++;
            for (; j > 0 && res->models[c[j - 1]].bon_n > res->models[k].bon_n; j--)
                c[j] = c[j - 1];
            c[j] = k;
        }
        chains[n_chains++] = (PlotChain){c, len};
        used += len;
    }
    return n_chains;
}

// Reward (gold if measured, else the reward model's) against KL to SFT, one point per model;
// best-of-n entries are joined by a dashed curve, the reference frontier.
static int frontier_plot(Report *r, const ReportStage *st) {
    const ArenaResults *res = &st->results;
    PlotPoint *p = lc_calloc((size_t)res->n_models, sizeof(*p));
    int gold = 0, n = 0, rc = 0;
    for (int i = 0; i < res->n_models; i++) gold |= isfinite(res->models[i].gold_reward);
    for (int i = 0; i < res->n_models; i++) {
        const ArenaModel *m = &res->models[i];
        p[i] = (PlotPoint){m->name, m->kl_to_sft, gold ? m->gold_reward : m->rm_score};
        n += isfinite(p[i].x) && isfinite(p[i].y);
    }
    char title[256], rel[512];
    snprintf(title, sizeof(title), "%s: %s reward vs KL to SFT", st->name,
             gold ? "gold" : "reward-model");
    PlotFrame fr = {title, "KL(model || SFT), nats per response",
                    gold ? "mean gold reward" : "mean reward-model score", 960, 520};
    plot_rel(rel, sizeof(rel), "frontier", st->name);
    PlotChain *chains = lc_calloc((size_t)res->n_models, sizeof(*chains));
    int *idx = lc_calloc(2 * (size_t)res->n_models, sizeof(*idx));
    int n_chains = bon_chains(res, chains, idx);
    if (n > 0) rc = write_scatter(r, rel, &fr, p, res->n_models, chains, n_chains);
    free(p), free(chains), free(idx);
    return rc;
}

static int leaderboard_plot(Report *r, const ReportStage *st) {
    const ArenaResults *res = &st->results;
    int *order = lc_calloc((size_t)res->n_models, sizeof(*order));
    PlotBar *b = lc_calloc((size_t)res->n_models, sizeof(*b));
    arena_order_by_elo(res, order);
    for (int k = 0; k < res->n_models; k++) {
        const ArenaModel *m = &res->models[order[k]];
        // coloured by its place in the results, as on the frontier plot
        b[k] = (PlotBar){m->name, m->rating.elo, m->rating.lo, m->rating.hi, order[k]};
    }
    char title[256], xlabel[ARENA_NAME_MAX + 64], rel[512];
    snprintf(title, sizeof(title), "%s: Bradley-Terry Elo, %.0f%% CI", st->name,
             100 * res->opts.level);
    snprintf(xlabel, sizeof(xlabel), "Elo (%s = %.0f)", res->reference, ARENA_ELO_BASE);
    PlotFrame fr = {title, xlabel, NULL, 0, 0};
    plot_rel(rel, sizeof(rel), "leaderboard", st->name);
    int rc = write_bars(r, rel, &fr, b, res->n_models, ARENA_ELO_BASE);
    free(b);
    free(order);
    return rc;
}

static int eval_section(Report *r, const ReportStage *st) {
    const ArenaResults *res = &st->results;
    const ArenaOptions *o = &res->opts;
    fprintf(r->md, "## Evaluation: %s\n\n", st->name);
    fprintf(r->md,
            "%d models on %d prompts, judged by the %s scores. Win rates are against %s, which "
            "is also held at %.0f Elo. A tie (half a win) is a score difference of at most %g. "
            "Intervals: %.0f%% bootstrap percentile intervals over prompts (%d resamples). "
            "Ratings: Bradley-Terry maximum likelihood with a prior of %g virtual ties per "
            "pair; rank = 1 + the models whose interval lies entirely above "
            "(docs/report.md).\n\n",
            res->n_models, res->prompts, res->judge, res->reference, ARENA_ELO_BASE, o->tie_tol,
            100 * o->level, o->n_boot, o->prior);
    fprintf(r->md, "Gold reward, accuracy, RM score, KL and length are means over sampled "
                   "responses, and the win rates and ratings compare each prompt's mean sampled "
                   "score; the greedy columns are means over greedy responses (docs/eval.md).\n\n");
    int bon = 0;
    for (int i = 0; i < res->n_models; i++) bon |= res->models[i].bon_n > 0;
    if (bon)
        fprintf(r->md, "`bon(<model>, <n>)` is best-of-n: each answer the best of n samples of the "
                       "model by the judge, greedy not measured. Its KL is estimated from the "
                       "scores of its samples (tie-exact; lower than the analytic log n - (n-1)/n "
                       "when many scores tie), and its best-of-n entries are joined by a dashed "
                       "line on the frontier plot (docs/eval.md).\n\n");
    fprintf(r->md, "### Comparison\n\n");
    arena_print_table(r->md, res);
    fprintf(r->md, "\n### Leaderboard\n\n");
    arena_print_leaderboard(r->md, res);
    fputc('\n', r->md);
    r->sum->evals++;
    return frontier_plot(r, st) || leaderboard_plot(r, st) ? -1 : 0;
}

// ---- the report ----------------------------------------------------------------------------

// The resolved recipe, folded away.
static void recipe_section(Report *r) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/recipe.yaml", r->dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    fprintf(r->md, "<details><summary>Resolved recipe (recipe.yaml)</summary>\n\n````yaml\n");
    char buf[4096];
    size_t n;
    int last = '\n';
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        fwrite(buf, 1, n, r->md);
        last = (unsigned char)buf[n - 1];
    }
    fclose(f);
    fprintf(r->md, "%s````\n\n</details>\n", last == '\n' ? "" : "\n");
}

// The run's name: the directory's last component.
static void run_name(const char *dir, char *buf, size_t n) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(buf, n, "%.*s", (int)(len - start), dir + start);
}

static int report_write(Report *r, const ReportRun *run) {
    char name[1024];
    run_name(r->dir, name, sizeof(name));
    fprintf(r->md, "# Run report: %s\n\n", name);
    fprintf(r->md, "Built by `layercake report` from `%s`: %d stage%s", r->dir, run->n_stages,
            run->n_stages == 1 ? "" : "s");
    for (int i = 0; i < run->n_stages; i++)
        fprintf(r->md, "%s%s", i ? ", " : " (", run->stages[i].name);
    fprintf(r->md, "%s.\n\n", run->n_stages ? ")" : "");
    for (int i = 0; i < run->n_stages; i++)
        if (run->stages[i].has_results && eval_section(r, &run->stages[i])) return -1;
    if (training_sections(r, run)) return -1;
    recipe_section(r);
    return 0;
}

int report_build(const char *dir, FILE *log, ReportSummary *sum, char *err, size_t errlen) {
    struct stat sb;
    *sum = (ReportSummary){0};
    Report r = {dir, NULL, sum, err, errlen};
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fail(&r, "%s: no such run directory", dir);
    ReportRun run; // read first: a folder that is not a run gets no plots/ folder
    if (report_run_load(&run, dir, log, err, errlen)) return -1;
    char plots[4096], tmp[4096];
    snprintf(plots, sizeof(plots), "%s/plots", dir);
    if (mkdir(plots, 0755) != 0 && errno != EEXIST) {
        report_run_free(&run);
        return fail(&r, "%s: cannot create: %s", plots, strerror(errno));
    }
    sum->stages = run.n_stages;
    sum->warnings = run.warnings;
    int rc = -1;
    r.md = out_open(&r, "report.md", tmp, sizeof(tmp));
    if (r.md && report_write(&r, &run) == 0)
        rc = out_commit(&r, r.md, tmp, "report.md");
    else if (r.md) {
        fclose(r.md);
        remove(tmp);
    }
    report_run_free(&run);
    return rc;
}
