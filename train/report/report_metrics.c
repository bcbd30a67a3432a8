// train/report/report_metrics.c: reading a run directory for the report: stage folders, stage.json,
// metrics.jsonl (as columns) and results.json. Malformed input is warned about and skipped.
#include "common/check.h"
#include "train/report/report-impl.h"
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WARNINGS_PER_FILE 10 // printed; further malformed lines of a file are only counted

// The stage kinds of a recipe, which stage.json names.
static const char *const STAGE_KINDS[] = {
    "pretrain", "sft",  "reward", "dpo",           "ppo",           "grpo",
    "rloo",     "eval", "label",  "iterative_dpo", "self_instruct", "critique_revise"};
// The order of stages in the report: the pipeline's, with the kinds the report guesses when
// there is no stage.json ("lm": pretrain or sft; "rl": ppo, grpo or rloo) beside their kinds.
static const char *const ORDER[] = {"pretrain", "sft",    "lm",  "self_instruct", "critique_revise",
                                    "label",    "reward", "dpo", "iterative_dpo", "ppo",
                                    "grpo",     "rloo",   "rl",  "eval",          "unknown"};

static int is_stage_kind(const char *kind) {
    for (size_t i = 0; i < sizeof(STAGE_KINDS) / sizeof(STAGE_KINDS[0]); i++)
        if (strcmp(STAGE_KINDS[i], kind) == 0) return 1;
    return 0;
}

static int order_index(const char *kind) {
    int n = (int)(sizeof(ORDER) / sizeof(ORDER[0]));
    for (int i = 0; i < n; i++)
        if (strcmp(ORDER[i], kind) == 0) return i;
    return n;
}

// ---- warnings ------------------------------------------------------------------------------

typedef struct {
    const char *path;
    FILE *log;
    int line;   // 0: about the file as a whole
    int count;  // warnings about this file
    int *total; // the run's count
} Warn;

static void warn(Warn *w, const char *fmt, ...) {
    (*w->total)++;
    if (++w->count > WARNINGS_PER_FILE) return;
    va_list ap;
    va_start(ap, fmt);
    if (w->line > 0)
        fprintf(w->log, "%s:%d: warning: ", w->path, w->line);
    else
        fprintf(w->log, "%s: warning: ", w->path);
    vfprintf(w->log, fmt, ap);
    fputs("; skipped\n", w->log);
    va_end(ap);
}

static void warn_done(const Warn *w) {
    if (w->count > WARNINGS_PER_FILE)
        fprintf(w->log, "%s: warning: %d more malformed lines skipped\n", w->path,
                w->count - WARNINGS_PER_FILE);
}

// ---- metric tables -------------------------------------------------------------------------

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(lc_malloc(n), s, n);
}

static double *nan_column(int cap) {
    double *c = lc_malloc((size_t)cap * sizeof(*c));
    for (int i = 0; i < cap; i++) c[i] = NAN;
    return c;
}

const double *metric_column(const MetricTable *t, const char *key) {
    for (int k = 0; k < t->n_keys; k++)
        if (strcmp(t->keys[k], key) == 0) return t->cols[k];
    return NULL;
}

// The column of key, added (all NAN) if new.
static double *table_column(MetricTable *t, const char *key) {
    double *col = (double *)metric_column(t, key);
    if (col) return col;
    t->keys = realloc(t->keys, (size_t)(t->n_keys + 1) * sizeof(*t->keys));
    t->cols = realloc(t->cols, (size_t)(t->n_keys + 1) * sizeof(*t->cols));
    LC_ASSERT(t->keys && t->cols);
    t->keys[t->n_keys] = str_dup(key);
    return t->cols[t->n_keys++] = nan_column(t->cap);
}

static void table_grow(MetricTable *t) {
    int cap = t->cap ? 2 * t->cap : 64;
    t->step = realloc(t->step, (size_t)cap * sizeof(*t->step));
    LC_ASSERT(t->step);
    for (int k = 0; k < t->n_keys; k++) {
        t->cols[k] = realloc(t->cols[k], (size_t)cap * sizeof(double));
        LC_ASSERT(t->cols[k]);
        for (int i = t->cap; i < cap; i++) t->cols[k][i] = NAN;
    }
    t->cap = cap;
}

// Appends a row: its step and every numeric value but "step" (other values are ignored).
static void table_push(MetricTable *t, double step, json_t *row) {
    if (t->n_rows == t->cap) table_grow(t);
    int r = t->n_rows++;
    t->step[r] = step;
    const char *key;
    json_t *v;
    json_object_foreach(row, key, v) {
        if (json_is_number(v) && strcmp(key, "step") != 0)
            table_column(t, key)[r] = json_number_value(v);
    }
}

static void table_free(MetricTable *t) {
    for (int k = 0; k < t->n_keys; k++) {
        free(t->keys[k]);
        free(t->cols[k]);
    }
    free(t->keys);
    free(t->cols);
    free(t->step);
    *t = (MetricTable){0};
}

// ---- metrics.jsonl -------------------------------------------------------------------------

static void metrics_row(ReportStage *st, const char *text, Warn *w) {
    json_error_t je;
    json_t *row = json_loads(text, 0, &je);
    if (!row) {
        warn(w, "invalid JSON (%s)", je.text);
        return;
    }
    json_t *step = json_object_get(row, "step"), *split = json_object_get(row, "split");
    const char *s = json_string_value(split);
    if (!json_is_object(row))
        warn(w, "not a JSON object");
    else if (!json_is_number(step))
        warn(w, "no number \"step\"");
    else if (split && !(s && (strcmp(s, "train") == 0 || strcmp(s, "val") == 0)))
        warn(w, "\"split\" is neither \"train\" nor \"val\"");
    else
        table_push(s && strcmp(s, "val") == 0 ? &st->val : &st->train, json_number_value(step),
                   row);
    json_decref(row);
}

static int blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return 0;
    return 1;
}

static void metrics_read(ReportStage *st, const char *path, FILE *log, int *total) {
    FILE *f = fopen(path, "r");
    if (!f) return; // a stage without metrics (an eval stage)
    Warn w = {path, log, 0, 0, total};
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) != -1) {
        w.line++;
        if (!blank(line)) metrics_row(st, line, &w);
    }
    free(line);
    fclose(f);
    warn_done(&w);
}

// ---- stage.json, results.json, kinds -------------------------------------------------------

// The kind stage.json names, or "" (warned about when the file exists but is unusable).
static void stage_json_read(ReportStage *st, const char *path, FILE *log, int *total) {
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    Warn w = {path, log, 0, 0, total};
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    if (!doc) {
        w.line = je.line > 0 ? je.line : 0;
        warn(&w, "invalid JSON (%s)", je.text);
    } else if (!(kind && is_stage_kind(kind))) {
        warn(&w, "no \"kind\" that is a stage kind (pretrain, sft, reward, dpo, ppo, grpo, "
                 "rloo, eval, self_instruct, critique_revise, label, iterative_dpo)");
    } else {
        snprintf(st->kind, sizeof(st->kind), "%s", kind);
    }
    json_decref(doc);
}

// A kind from the stage's name or, failing that, from its metric keys (docs/report.md).
static const char *kind_guess(const ReportStage *st) {
    const MetricTable *t = &st->train;
    if (is_stage_kind(st->name)) return st->name;
    if (st->has_results) return "eval";
    if (metric_column(t, "objective/scores") || metric_column(t, "objective/kl")) return "rl";
    if (metric_column(t, "rewards/accuracies") || metric_column(t, "rewards/margins")) return "dpo";
    if (metric_column(t, "accuracy") && metric_column(t, "margin")) return "reward";
    if (metric_column(t, "loss")) return "lm";
    return "unknown";
}

static void results_read(ReportStage *st, const char *path, FILE *log, int *total) {
    char msg[1024];
    struct stat sb;
    if (stat(path, &sb) != 0) return;
    if (arena_read_results(path, &st->results, msg, sizeof(msg)) == 0) {
        st->has_results = 1;
        return;
    }
    (*total)++;
    fprintf(log, "warning: %s; skipped\n", msg);
}

// ---- the run -------------------------------------------------------------------------------

static int file_exists(const char *dir, const char *name, const char *file) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_stage_dir(const char *dir, const char *name) {
    return name[0] != '.' &&
           (file_exists(dir, name, "metrics.jsonl") || file_exists(dir, name, "stage.json") ||
            file_exists(dir, name, "results.json"));
}

static void stage_load(ReportStage *st, const char *dir, const char *name, FILE *log, int *total) {
    char path[4096];
    *st = (ReportStage){.name = str_dup(name)};
    snprintf(path, sizeof(path), "%s/%s/stage.json", dir, name);
    if (file_exists(dir, name, "stage.json")) stage_json_read(st, path, log, total);
    snprintf(path, sizeof(path), "%s/%s/metrics.jsonl", dir, name);
    metrics_read(st, path, log, total);
    snprintf(path, sizeof(path), "%s/%s/results.json", dir, name);
    results_read(st, path, log, total);
    if (!st->kind[0]) {
        st->kind_guessed = 1;
        snprintf(st->kind, sizeof(st->kind), "%s", kind_guess(st));
    }
}

static int stage_cmp(const void *pa, const void *pb) {
    const ReportStage *a = pa, *b = pb;
    int ka = order_index(a->kind), kb = order_index(b->kind);
    return ka != kb ? ka - kb : strcmp(a->name, b->name);
}

// Whether a folder entry is one a run directory or its report can hold without being a run:
// what `layercake report` itself writes into an empty folder.
static int report_output(const char *name) {
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "report.md") == 0 ||
           strcmp(name, "plots") == 0;
}

// A run directory holds recipe.yaml or a stage folder. An empty folder (or one holding only an
// earlier report) is a run that has not started; anything else is refused, so that a report is
// never written into a folder that is not a run.
static int run_check(const ReportRun *run, const char *dir, int others, char *err, size_t errlen) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/recipe.yaml", dir);
    if (run->n_stages > 0 || others == 0 || stat(path, &sb) == 0) return 0;
    snprintf(err, errlen,
             "%s: not a run directory: it holds no recipe.yaml and no stage folder (a folder "
             "with stage.json, metrics.jsonl or results.json)",
             dir);
    return -1;
}

int report_run_load(ReportRun *run, const char *dir, FILE *log, char *err, size_t errlen) {
    *run = (ReportRun){0};
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: not a readable directory", dir);
        return -1;
    }
    struct dirent *e;
    int cap = 0, others = 0;
    while ((e = readdir(d))) {
        others += !report_output(e->d_name);
        if (!is_stage_dir(dir, e->d_name)) continue;
        if (run->n_stages == cap) {
            cap = cap ? 2 * cap : 8;
            run->stages = realloc(run->stages, (size_t)cap * sizeof(*run->stages));
            LC_ASSERT(run->stages);
        }
        stage_load(&run->stages[run->n_stages++], dir, e->d_name, log, &run->warnings);
    }
    closedir(d);
    if (run_check(run, dir, others, err, errlen)) {
        report_run_free(run);
        return -1;
    }
    if (run->n_stages > 0) // qsort's base must not be NULL, even for no elements
        qsort(run->stages, (size_t)run->n_stages, sizeof(*run->stages), stage_cmp);
    return 0;
}

void report_run_free(ReportRun *run) {
    for (int i = 0; i < run->n_stages; i++) {
        ReportStage *st = &run->stages[i];
        table_free(&st->train);
        table_free(&st->val);
        if (st->has_results) arena_results_free(&st->results);
        free(st->name);
    }
    free(run->stages);
    *run = (ReportRun){0};
}
