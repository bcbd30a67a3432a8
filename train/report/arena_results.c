// train/report/arena_results.c: the eval stage's results: filling them from score tables,
// results.json (schema in docs/report.md) and the comparison and leaderboard tables.
#include "common/check.h"
#include "common/error.h"
#include "train/report/arena.h"
#include "train/report/mdtable.h"
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define RESULTS_VERSION 1

void arena_results_init(ArenaResults *r, int n, const char *const *names, int prompts) {
    LC_ASSERT(n >= 1 && prompts >= 0);
    *r = (ArenaResults){.n_models = n, .prompts = prompts, .opts = arena_options_default()};
    r->models = lc_calloc((size_t)n, sizeof(*r->models));
    for (int i = 0; i < n; i++) {
        ArenaModel *m = &r->models[i];
        snprintf(m->name, sizeof(m->name), "%s", names[i]);
        m->gold_reward = m->accuracy = m->rm_score = m->kl_to_sft = m->response_length = NAN;
        m->kl_analytic = NAN;
        m->gold_reward_greedy = m->accuracy_greedy = m->rm_score_greedy = NAN;
        m->win = (ArenaWinRate){.rate = NAN, .lo = NAN, .hi = NAN};
        m->win_rate_rm = NAN;
        m->rating = (ArenaRating){.elo = NAN, .lo = NAN, .hi = NAN};
    }
    snprintf(r->reference, sizeof(r->reference), "%s", names[0]);
    snprintf(r->judge, sizeof(r->judge), "gold");
}

void arena_results_free(ArenaResults *r) {
    free(r->models);
    r->models = NULL;
    r->n_models = 0;
}

static int results_find(const ArenaResults *r, const char *name) {
    for (int i = 0; i < r->n_models; i++)
        if (strcmp(r->models[i].name, name) == 0) return i;
    return -1;
}

int arena_judge(ArenaResults *r, const double *judge, const double *rm, char *err, size_t errlen) {
    int ref = results_find(r, r->reference), np = r->prompts;
    if (ref < 0)
        return lc_error(err, errlen, "reference '%s' is not an evaluated model", r->reference);
    r->opts.anchor = ref;
    ArenaRating *rating = lc_malloc((size_t)r->n_models * sizeof(*rating));
    int rc = arena_fit(judge, r->n_models, np, &r->opts, rating, err, errlen);
    for (int i = 0; i < r->n_models && rc == 0; i++) {
        ArenaModel *m = &r->models[i];
        m->rating = rating[i];
        rc = arena_win_rate(judge + (size_t)i * np, judge + (size_t)ref * np, np, &r->opts, &m->win,
                            err, errlen);
        if (rc == 0 && rm) {
            ArenaWinRate w = {.rate = NAN};
            rc = arena_win_rate(rm + (size_t)i * np, rm + (size_t)ref * np, np, &r->opts, &w, err,
                                errlen);
            m->win_rate_rm = w.rate;
        }
    }
    free(rating);
    return rc;
}

// ---- results.json --------------------------------------------------------------------------

// A number, or null for NAN (JSON has no NaN).
static json_t *json_num(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *json_pair(double lo, double hi) {
    return json_pack("[o, o]", json_num(lo), json_num(hi));
}

static void set(json_t *obj, const char *key, json_t *value) {
    json_object_set_new(obj, key, value);
}

static json_t *model_to_json(const ArenaModel *m) {
    json_t *o = json_object();
    set(o, "gold_reward", json_num(m->gold_reward));
    set(o, "accuracy", json_num(m->accuracy));
    set(o, "rm_score", json_num(m->rm_score));
    set(o, "gold_reward_greedy", json_num(m->gold_reward_greedy));
    set(o, "accuracy_greedy", json_num(m->accuracy_greedy));
    set(o, "rm_score_greedy", json_num(m->rm_score_greedy));
    set(o, "kl_to_sft", json_num(m->kl_to_sft));
    set(o, "kl_analytic", json_num(m->kl_analytic));
    set(o, "bon_model", m->bon_n ? json_string(m->bon_model) : json_null());
    set(o, "bon_n", m->bon_n ? json_integer(m->bon_n) : json_null());
    set(o, "response_length", json_num(m->response_length));
    set(o, "win_rate_vs_ref", json_num(m->win.rate));
    set(o, "win_rate_vs_sft", json_num(m->win.rate)); // named like kl_to_sft (see report.md)
    set(o, "win_rate_vs_ref_ci", json_pair(m->win.lo, m->win.hi));
    set(o, "wins_vs_ref", json_integer(m->win.wins));
    set(o, "ties_vs_ref", json_integer(m->win.ties));
    set(o, "losses_vs_ref", json_integer(m->win.losses));
    set(o, "win_rate_vs_ref_rm", json_num(m->win_rate_rm));
    set(o, "elo", json_num(m->rating.elo));
    set(o, "elo_ci", json_pair(m->rating.lo, m->rating.hi));
    set(o, "rank", json_integer(m->rating.rank));
    set(o, "wins", json_integer(m->rating.wins));
    set(o, "ties", json_integer(m->rating.ties));
    set(o, "losses", json_integer(m->rating.losses));
    return o;
}

static json_t *results_to_json(const ArenaResults *r) {
    json_t *models = json_object();
    for (int i = 0; i < r->n_models; i++)
        set(models, r->models[i].name, model_to_json(&r->models[i]));
    const ArenaOptions *o = &r->opts;
    json_t *opts =
        json_pack("{s:f, s:i, s:f, s:f, s:I}", "tie_tol", o->tie_tol, "bootstrap", o->n_boot,
                  "level", o->level, "prior", o->prior, "seed", (json_int_t)o->seed);
    return json_pack("{s:i, s:s, s:s, s:i, s:o, s:o}", "version", RESULTS_VERSION, "reference",
                     r->reference, "judge", r->judge, "prompts", r->prompts, "options", opts,
                     "models", models);
}

int arena_write_results(const char *path, const ArenaResults *r, char *err, size_t errlen) {
    for (int i = 0; i < r->n_models; i++)
        if (results_find(r, r->models[i].name) != i)
            return lc_error(err, errlen, "%s: model '%s' is listed twice", path, r->models[i].name);
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return lc_error(err, errlen, "%s: path too long", path);
    json_t *doc = results_to_json(r);
    int rc = json_dump_file(doc, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(doc);
    if (rc == 0 && rename(tmp, path) == 0) return 0;
    remove(tmp);
    return lc_error(err, errlen, "%s: cannot write (does its folder exist, is it writable?)", path);
}

// Reading: each helper names the key it could not use.
typedef struct {
    const char *path;  // for messages
    const char *model; // the model being read, or NULL at the top level
    char *err;
    size_t errlen;
} Reader;

static int bad(const Reader *rd, const char *key, const char *want) {
    if (rd->model)
        return lc_error(rd->err, rd->errlen, "%s: models.%s.%s: expected %s", rd->path, rd->model,
                        key, want);
    return lc_error(rd->err, rd->errlen, "%s: %s: expected %s", rd->path, key, want);
}

static int read_num(const Reader *rd, json_t *obj, const char *key, double *out) {
    json_t *v = json_object_get(obj, key);
    if (json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v)) return bad(rd, key, "a number or null");
    *out = json_number_value(v);
    return 0;
}

static int read_int(const Reader *rd, json_t *obj, const char *key, int *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
        return bad(rd, key, "an integer >= 0");
    *out = (int)json_integer_value(v);
    return 0;
}

static int read_pair(const Reader *rd, json_t *obj, const char *key, double *lo, double *hi) {
    json_t *v = json_object_get(obj, key);
    json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !(json_is_number(a) || json_is_null(a)) ||
        !(json_is_number(b) || json_is_null(b)))
        return bad(rd, key, "[lo, hi] (numbers or null)");
    *lo = json_is_null(a) ? NAN : json_number_value(a);
    *hi = json_is_null(b) ? NAN : json_number_value(b);
    return 0;
}

static int read_string(const Reader *rd, json_t *obj, const char *key, char *out) {
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s || !*s || strlen(s) >= ARENA_NAME_MAX) return bad(rd, key, "a non-empty string");
    snprintf(out, ARENA_NAME_MAX, "%s", s);
    return 0;
}

// The best-of-n fields, absent from the results of layercake versions before them: kl_analytic
// a number or null, bon_model and bon_n both null (a model) or a name and an n >= 2.
static int bon_from_json(const Reader *rd, json_t *o, ArenaModel *m) {
    json_t *model = json_object_get(o, "bon_model"), *n = json_object_get(o, "bon_n");
    m->kl_analytic = NAN;
    if (json_object_get(o, "kl_analytic") && read_num(rd, o, "kl_analytic", &m->kl_analytic))
        return -1;
    if ((!model || json_is_null(model)) && (!n || json_is_null(n))) return 0;
    if (read_string(rd, o, "bon_model", m->bon_model) || read_int(rd, o, "bon_n", &m->bon_n))
        return -1;
    return m->bon_n >= 2 ? 0 : bad(rd, "bon_n", "an integer >= 2 or null");
}

static int model_from_json(const Reader *rd, json_t *o, ArenaModel *m) {
    ArenaWinRate *w = &m->win;
    ArenaRating *g = &m->rating;
    if (!json_is_object(o))
        return lc_error(rd->err, rd->errlen, "%s: models.%s: expected an object", rd->path,
                        rd->model);
    return read_num(rd, o, "gold_reward", &m->gold_reward) ||
           read_num(rd, o, "accuracy", &m->accuracy) || read_num(rd, o, "rm_score", &m->rm_score) ||
           read_num(rd, o, "gold_reward_greedy", &m->gold_reward_greedy) ||
           read_num(rd, o, "accuracy_greedy", &m->accuracy_greedy) ||
           read_num(rd, o, "rm_score_greedy", &m->rm_score_greedy) ||
           read_num(rd, o, "kl_to_sft", &m->kl_to_sft) ||
           read_num(rd, o, "response_length", &m->response_length) ||
           read_num(rd, o, "win_rate_vs_ref", &w->rate) ||
           read_pair(rd, o, "win_rate_vs_ref_ci", &w->lo, &w->hi) ||
           read_int(rd, o, "wins_vs_ref", &w->wins) || read_int(rd, o, "ties_vs_ref", &w->ties) ||
           read_int(rd, o, "losses_vs_ref", &w->losses) ||
           read_num(rd, o, "win_rate_vs_ref_rm", &m->win_rate_rm) ||
           read_num(rd, o, "elo", &g->elo) || read_pair(rd, o, "elo_ci", &g->lo, &g->hi) ||
           read_int(rd, o, "rank", &g->rank) || read_int(rd, o, "wins", &g->wins) ||
           read_int(rd, o, "ties", &g->ties) || read_int(rd, o, "losses", &g->losses) ||
           bon_from_json(rd, o, m);
}

static int options_from_json(const Reader *rd, json_t *o, ArenaOptions *opts) {
    json_t *seed = json_object_get(o, "seed");
    if (!json_is_object(o)) return bad(rd, "options", "an object");
    if (!json_is_integer(seed)) return bad(rd, "options.seed", "an integer");
    opts->seed = (uint64_t)json_integer_value(seed);
    opts->anchor = -1; // set from the reference by the caller
    return read_num(rd, o, "tie_tol", &opts->tie_tol) ||
           read_int(rd, o, "bootstrap", &opts->n_boot) || read_num(rd, o, "level", &opts->level) ||
           read_num(rd, o, "prior", &opts->prior);
}

static int results_from_json(Reader *rd, json_t *doc, ArenaResults *r) {
    json_t *models = json_object_get(doc, "models");
    json_t *version = json_object_get(doc, "version");
    if (!json_is_integer(version) || json_integer_value(version) != RESULTS_VERSION)
        return bad(rd, "version", "1 (written by a different layercake?)");
    if (!json_is_object(models) || json_object_size(models) == 0)
        return bad(rd, "models", "an object with one entry per model");
    r->n_models = (int)json_object_size(models);
    r->models = lc_calloc((size_t)r->n_models, sizeof(*r->models));
    if (read_string(rd, doc, "reference", r->reference) ||
        read_string(rd, doc, "judge", r->judge) || read_int(rd, doc, "prompts", &r->prompts) ||
        options_from_json(rd, json_object_get(doc, "options"), &r->opts))
        return -1;
    const char *name;
    json_t *m;
    int i = 0;
    json_object_foreach(models, name, m) {
        if (strlen(name) >= ARENA_NAME_MAX) return bad(rd, "models", "names under 256 bytes");
        snprintf(r->models[i].name, ARENA_NAME_MAX, "%s", name);
        rd->model = name;
        if (model_from_json(rd, m, &r->models[i++])) return -1;
    }
    rd->model = NULL;
    r->opts.anchor = results_find(r, r->reference);
    return r->opts.anchor < 0 ? bad(rd, "reference", "the name of one of the models") : 0;
}

int arena_read_results(const char *path, ArenaResults *r, char *err, size_t errlen) {
    json_error_t je;
    *r = (ArenaResults){0};
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc) return lc_error(err, errlen, "%s:%d: %s", path, je.line, je.text);
    Reader rd = {path, NULL, err, errlen};
    int rc = json_is_object(doc) ? results_from_json(&rd, doc, r) : bad(&rd, "(top)", "an object");
    json_decref(doc);
    if (rc) arena_results_free(r);
    return rc;
}

// ---- tables --------------------------------------------------------------------------------

enum {
    COL_GOLD,
    COL_GOLD_GREEDY,
    COL_ACC,
    COL_ACC_GREEDY,
    COL_RM,
    COL_RM_GREEDY,
    COL_KL,
    COL_KL_ANALYTIC,
    COL_LEN,
    COL_WIN,
    COL_WIN_RM,
    COL_ELO,
    N_COLS
};

// The value that decides whether a column is shown (some model has it).
static double column_value(const ArenaModel *m, int col) {
    switch (col) {
    case COL_GOLD:
        return m->gold_reward;
    case COL_GOLD_GREEDY:
        return m->gold_reward_greedy;
    case COL_ACC:
        return m->accuracy;
    case COL_ACC_GREEDY:
        return m->accuracy_greedy;
    case COL_RM:
        return m->rm_score;
    case COL_RM_GREEDY:
        return m->rm_score_greedy;
    case COL_KL:
        return m->kl_to_sft;
    case COL_KL_ANALYTIC:
        return m->kl_analytic;
    case COL_LEN:
        return m->response_length;
    case COL_WIN:
        return m->win.rate;
    case COL_WIN_RM:
        return m->win_rate_rm;
    default:
        return m->rating.elo;
    }
}

static void column_header(const ArenaResults *r, int col, char *buf, size_t n) {
    int pct = (int)lround(100 * r->opts.level);
    switch (col) {
    case COL_GOLD:
        snprintf(buf, n, "Gold reward");
        break;
    case COL_GOLD_GREEDY:
        snprintf(buf, n, "Gold, greedy");
        break;
    case COL_ACC:
        snprintf(buf, n, "Accuracy");
        break;
    case COL_ACC_GREEDY:
        snprintf(buf, n, "Accuracy, greedy");
        break;
    case COL_RM:
        snprintf(buf, n, "RM score");
        break;
    case COL_RM_GREEDY:
        snprintf(buf, n, "RM score, greedy");
        break;
    case COL_KL:
        snprintf(buf, n, "KL to SFT");
        break;
    case COL_KL_ANALYTIC:
        snprintf(buf, n, "KL, analytic");
        break;
    case COL_LEN:
        snprintf(buf, n, "Length");
        break;
    case COL_WIN:
        snprintf(buf, n, "Win rate vs %s [%d%% CI]", r->reference, pct);
        break;
    case COL_WIN_RM:
        snprintf(buf, n, "Win rate vs %s (RM)", r->reference);
        break;
    default:
        snprintf(buf, n, "Elo [%d%% CI]", pct);
        break;
    }
}

static void column_cell(MdTable *t, int k, const ArenaModel *m, int col) {
    double v = column_value(m, col);
    if (!isfinite(v))
        mdtable_set(t, k, "-");
    else if (col == COL_WIN)
        mdtable_set(t, k, "%.3f [%.3f, %.3f]", v, m->win.lo, m->win.hi);
    else if (col == COL_ELO)
        mdtable_set(t, k, "%.0f [%.0f, %.0f]", v, m->rating.lo, m->rating.hi);
    else if (col == COL_LEN)
        mdtable_set(t, k, "%.1f", v);
    else
        mdtable_set(t, k, "%.3f", v);
}

void arena_print_table(FILE *f, const ArenaResults *r) {
    int cols[N_COLS], n = 0;
    for (int c = 0; c < N_COLS; c++)
        for (int i = 0; i < r->n_models; i++)
            if (isfinite(column_value(&r->models[i], c))) {
                cols[n++] = c;
                break;
            }
    char headers[1 + N_COLS][2 * ARENA_NAME_MAX], align[2 + N_COLS] = "l";
    const char *hp[1 + N_COLS] = {"Model"};
    for (int k = 0; k < n; k++) {
        column_header(r, cols[k], headers[k + 1], sizeof(headers[k + 1]));
        hp[k + 1] = headers[k + 1];
        align[k + 1] = 'r';
    }
    align[n + 1] = '\0';
    MdTable t;
    mdtable_init(&t, n + 1, hp, align);
    for (int i = 0; i < r->n_models; i++) {
        mdtable_add_row(&t);
        mdtable_set(&t, 0, "%s", r->models[i].name);
        for (int k = 0; k < n; k++) column_cell(&t, k + 1, &r->models[i], cols[k]);
    }
    mdtable_print(&t, f);
    mdtable_free(&t);
}

// Whether model a goes above model b on the leaderboard: a higher Elo; no Elo goes last.
static int ranks_above(const ArenaModel *a, const ArenaModel *b) {
    return isfinite(a->rating.elo) && (!isfinite(b->rating.elo) || a->rating.elo > b->rating.elo);
}

void arena_order_by_elo(const ArenaResults *r, int *order) { // insertion sort: few models
    for (int i = 0; i < r->n_models; i++) order[i] = i;
    for (int i = 1; i < r->n_models; i++)
        for (int k = i; k > 0 && ranks_above(&r->models[order[k]], &r->models[order[k - 1]]); k--) {
            int tmp = order[k];
            order[k] = order[k - 1];
            order[k - 1] = tmp;
        }
}

void arena_print_leaderboard(FILE *f, const ArenaResults *r) {
    char ci[32];
    snprintf(ci, sizeof(ci), "%d%% CI", (int)lround(100 * r->opts.level));
    const char *header[] = {"Rank", "Model", "Elo", ci, "Wins", "Ties", "Losses"};
    int *order = lc_malloc((size_t)r->n_models * sizeof(*order));
    arena_order_by_elo(r, order);
    MdTable t;
    mdtable_init(&t, 7, header, "rlrrrrr");
    for (int k = 0; k < r->n_models; k++) {
        const ArenaRating *g = &r->models[order[k]].rating;
        mdtable_add_row(&t);
        mdtable_set(&t, 0, "%d", g->rank);
        mdtable_set(&t, 1, "%s", r->models[order[k]].name);
        if (isfinite(g->elo)) {
            mdtable_set(&t, 2, "%.0f", g->elo);
            mdtable_set(&t, 3, "%+.0f/%+.0f", g->hi - g->elo, g->lo - g->elo);
        }
        mdtable_set(&t, 4, "%d", g->wins);
        mdtable_set(&t, 5, "%d", g->ties);
        mdtable_set(&t, 6, "%d", g->losses);
    }
    mdtable_print(&t, f);
    mdtable_free(&t);
    free(order);
}
