// data/loader.c: the batch loaders of data/loader.h. One epoch plan (permutation, and for
// packed sft the rows cut from it) is computed at each epoch start from (seed, epoch) alone,
// so any rank can recompute any epoch and a cursor of (epoch, step) restores exactly.
#include "data/loader.h"
#include "common/check.h"
#include "common/rng.h"
#include "common/error.h"
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Loader {
    Dataset *ds;         // lm: values streamed per window; other kinds: loaded at open
    DataKind kind;       // the dataset's kind
    LoaderOptions opt;   // as given to loader_open
    int rows;            // rows per Batch: batch, or 2*batch for preference and unpaired
    int n_items;         // units per epoch before packing (lm: windows; else kept examples)
    int *items;          // (n_items) dataset index of each kept example; NULL for lm
    int *perm;           // (n_items) this epoch's order of items
    int *row_start;      // (n_items+1) packed sft: row u holds perm[row_start[u]..row_start[u+1])
    int64_t *partner;    // (ds->n) unpaired: the example whose completion pairs with e's prompt
                         // in e's mismatched row
    int64_t n_units;     // units this epoch: packed rows, else n_items
    int64_t epoch, step; // cursor: step = batches returned in this epoch
    int64_t steps;       // steps in this epoch
    int64_t dropped;     // examples left out by drop_long
    int *tokens;         // (rows, T)
    int *targets;        // (rows, T)
    float *mask;         // (rows, T)
    int *pos;            // (rows, T)
    int *seg;            // (rows, T)
    int *len;            // (rows)
    int *resp_start;     // (rows)
    int64_t *example;    // (rows, T): dataset index of segment k of row r at [r*T + k], or -1
    int *scratch;        // (T+1) one sequence: an lm window, or a prompt+response
    char err[512];       // the last error of loader_next
};

// ---- rows ----------------------------------------------------------------------------------

static void rows_clear(Loader *l) {
    size_t n = (size_t)l->rows * (size_t)l->opt.T;
    for (size_t i = 0; i < n; i++) {
        l->tokens[i] = 0;
        l->targets[i] = -1;
        l->mask[i] = 0.0f;
        l->pos[i] = 0;
        l->seg[i] = -1;
        l->example[i] = -1;
    }
    for (int r = 0; r < l->rows; r++) l->len[r] = l->resp_start[r] = 0;
}

// Appends sequence s[0..n) to row r as segment seg: inputs s[0..n-1), targets s[1..n),
// positions from 0. The weight of target t is m[t+1] when m is given, else 1 for targets at
// sequence index >= trained_from. The caller has checked that n-1 positions fit.
static void row_put(Loader *l, int r, const int *s, int64_t n, const uint8_t *m,
                    int64_t trained_from, int seg) {
    int T = l->opt.T;
    int at = l->len[r];
    LC_ASSERT(n - 1 <= T - at);
    for (int64_t t = 0; t + 1 < n; t++) {
        size_t i = (size_t)r * T + (size_t)(at + t);
        l->tokens[i] = s[t];
        l->targets[i] = s[t + 1];
        l->mask[i] = m ? (float)m[t + 1] : (float)(t + 1 >= trained_from);
        l->pos[i] = (int)t;
        l->seg[i] = seg;
    }
    if (n > 1) l->len[r] = at + (int)(n - 1);
}

// A prompt row: the prompt's tokens and no targets.
static void row_prompt(Loader *l, int r, const int *s, int64_t n) {
    int T = l->opt.T;
    for (int64_t t = 0; t < n; t++) {
        size_t i = (size_t)r * T + (size_t)t;
        l->tokens[i] = s[t];
        l->pos[i] = (int)t;
        l->seg[i] = 0;
    }
    l->len[r] = (int)n;
}

static void row_response_start(Loader *l, int r) {
    const float *m = l->mask + (size_t)r * l->opt.T;
    int t = 0;
    while (t < l->len[r] && m[t] == 0.0f) t++;
    l->resp_start[r] = t;
}

// ---- units ---------------------------------------------------------------------------------

static int fill_window(Loader *l, int r, int64_t w) {
    int64_t T = l->opt.T, start = w * T;
    int64_t count = l->ds->n_tokens - start < T + 1 ? l->ds->n_tokens - start : T + 1;
    if (dataset_read_tokens(l->ds, start, count, l->scratch, l->opt.vocab_size, l->err,
                            sizeof(l->err)) < 0)
        return -1;
    row_put(l, r, l->scratch, count, NULL, 1, 0);
    l->example[(size_t)r * T] = w;
    return 0;
}

// Row r = the pair's prompt ++ one of its responses; mask on the response's targets.
static void fill_pair_row(Loader *l, int r, const Example *ex, const int *resp, int64_t n) {
    memcpy(l->scratch, ex->tokens, (size_t)ex->n_tokens * sizeof(int));
    memcpy(l->scratch + ex->n_tokens, resp, (size_t)n * sizeof(int));
    row_put(l, r, l->scratch, ex->n_tokens + n, NULL, ex->n_tokens, 0);
}

// Row r = prompt ++ another example's completion, cut to fit T: the mismatched pair of KTO's
// reference point. Every position is a target of the completion's tokens (mask 1 from the
// prompt's end).
static void fill_mismatched_row(Loader *l, int r, const Example *ex, const Example *other) {
    int64_t n = ex->n_tokens + other->n_completion, room = (int64_t)l->opt.T + 1;
    if (n > room) n = room;
    int64_t k = n - ex->n_tokens; // completion tokens kept (the prompt fits: the example does)
    memcpy(l->scratch, ex->tokens, (size_t)ex->n_tokens * sizeof(int));
    if (k > 0) memcpy(l->scratch + ex->n_tokens, other->completion, (size_t)k * sizeof(int));
    row_put(l, r, l->scratch, n, NULL, ex->n_tokens, 0);
}

// Fills the rows of unit u of this epoch into batch slot i.
static int fill_unit(Loader *l, int i, int64_t u) {
    int T = l->opt.T;
    if (l->kind == DATA_LM) return fill_window(l, i, l->perm[u]);
    if (l->kind == DATA_SFT && l->opt.pack) {
        for (int k = l->row_start[u]; k < l->row_start[u + 1]; k++) {
            int e = l->items[l->perm[k]], seg = k - l->row_start[u];
            Example ex = dataset_example(l->ds, e);
            row_put(l, i, ex.tokens, ex.n_tokens, ex.loss_mask, 0, seg);
            l->example[(size_t)i * T + seg] = e;
        }
        return 0;
    }
    int e = l->items[l->perm[u]];
    Example ex = dataset_example(l->ds, e);
    if (l->kind == DATA_PREFERENCE) {
        fill_pair_row(l, 2 * i, &ex, ex.chosen, ex.n_chosen);
        fill_pair_row(l, 2 * i + 1, &ex, ex.rejected, ex.n_rejected);
        l->example[(size_t)(2 * i) * T] = l->example[(size_t)(2 * i + 1) * T] = e;
        return 0;
    }
    if (l->kind == DATA_UNPAIRED) {
        Example other = dataset_example(l->ds, l->partner[e]);
        int k = l->opt.batch + i; // the mismatched half of the batch
        fill_pair_row(l, i, &ex, ex.completion, ex.n_completion);
        fill_mismatched_row(l, k, &ex, &other);
        l->example[(size_t)i * T] = l->example[(size_t)k * T] = e;
        return 0;
    }
    if (l->kind == DATA_SFT)
        row_put(l, i, ex.tokens, ex.n_tokens, ex.loss_mask, 0, 0);
    else
        row_prompt(l, i, ex.tokens, ex.n_tokens);
    l->example[(size_t)i * T] = e;
    return 0;
}

// ---- epochs --------------------------------------------------------------------------------

// Next-fit packing of the epoch's order into rows of at most T positions (an example of n
// tokens takes n-1) and at most T segments.
static void plan_packing(Loader *l) {
    int T = l->opt.T, used = 0, rows = 0;
    l->row_start[0] = 0;
    for (int k = 0; k < l->n_items; k++) {
        const int64_t *off = l->ds->tokens.off;
        int e = l->items[l->perm[k]];
        int need = (int)(off[e + 1] - off[e]) - 1;
        if (need < 0) need = 0;
        if (k > l->row_start[rows] && (used + need > T || k - l->row_start[rows] == T)) {
            l->row_start[++rows] = k;
            used = 0;
        }
        used += need;
    }
    l->row_start[++rows] = l->n_items;
    l->n_units = rows;
}

static void plan_epoch(Loader *l) {
    for (int i = 0; i < l->n_items; i++) l->perm[i] = i;
    if (l->opt.shuffle) {
        Rng r = rng_derive(l->opt.seed, (uint64_t)l->epoch);
        rng_shuffle(&r, l->perm, l->n_items);
    }
    if (l->kind == DATA_SFT && l->opt.pack)
        plan_packing(l);
    else
        l->n_units = l->n_items;
    int64_t per_step = (int64_t)l->opt.batch * l->opt.world;
    l->steps = (l->n_units + per_step - 1) / per_step;
}

int loader_next(Loader *l, Batch *b) {
    if (l->step == l->steps) {
        l->epoch++;
        l->step = 0;
        plan_epoch(l);
    }
    int64_t first = (l->step * l->opt.world + l->opt.rank) * l->opt.batch;
    rows_clear(l);
    int filled = 0;
    for (int i = 0; i < l->opt.batch && first + i < l->n_units; i++, filled++)
        if (fill_unit(l, i, first + i) < 0) return -1;
    for (int r = 0; r < l->rows; r++) row_response_start(l, r);
    l->step++;
    *b = (Batch){.B = l->rows,
                 .T = l->opt.T,
                 .tokens = l->tokens,
                 .targets = l->targets,
                 .mask = l->mask,
                 .pos = l->pos,
                 .seg = l->seg,
                 .len = l->len};
    return filled;
}

// ---- opening -------------------------------------------------------------------------------

// Positions example e needs in a row.
static int64_t example_need(const Dataset *ds, int64_t e) {
    int64_t p = ds->tokens.off[e + 1] - ds->tokens.off[e];
    if (ds->kind == DATA_PROMPT) return p;
    if (ds->kind == DATA_SFT) return p - 1;
    if (ds->kind == DATA_UNPAIRED) return p + ds->completion.off[e + 1] - ds->completion.off[e] - 1;
    int64_t c = ds->chosen.off[e + 1] - ds->chosen.off[e];
    int64_t r = ds->rejected.off[e + 1] - ds->rejected.off[e];
    return p + (c > r ? c : r) - 1;
}

// Keeps the examples that fit T (or fails if one does not and drop_long is off).
static int items_select(Loader *l, char *err, size_t errlen) {
    const Dataset *ds = l->ds;
    int64_t first_long = -1, need_long = 0;
    l->items = lc_malloc((size_t)ds->n * sizeof(int));
    for (int64_t e = 0; e < ds->n; e++) {
        int64_t need = example_need(ds, e);
        if (need <= l->opt.T) {
            l->items[l->n_items++] = (int)e;
        } else if (l->dropped++ == 0) {
            first_long = e;
            need_long = need;
        }
    }
    if (l->dropped && !l->opt.drop_long)
        return lc_error(err, errlen,
                        "%s: %" PRId64 " examples do not fit T = %d (the first, example %" PRId64
                        ", needs %" PRId64 " positions); re-import with a smaller --max-len or "
                        "let the loader leave them out",
                        ds->path, l->dropped, l->opt.T, first_long, need_long);
    return 0;
}

static int options_check(const char *path, DataKind kind, const LoaderOptions *o, char *err,
                         size_t errlen) {
    if (o->batch < 1 || o->T < 1)
        return lc_error(err, errlen, "%s: batch (%d) and T (%d) must be positive", path, o->batch,
                        o->T);
    if (o->world < 1 || o->rank < 0 || o->rank >= o->world)
        return lc_error(err, errlen, "%s: rank %d is not in 0..world-1 (world %d)", path, o->rank,
                        o->world);
    if (o->pack && kind != DATA_SFT)
        return lc_error(err, errlen, "%s: packing applies to sft data only, not %s", path,
                        data_kind_name(kind));
    return 0;
}

static int loader_items(Loader *l, char *err, size_t errlen) {
    Dataset *ds = l->ds;
    if (l->kind == DATA_LM) {
        int64_t windows = ds->n_tokens >= 2 ? (ds->n_tokens - 2) / l->opt.T + 1 : 0;
        if (windows > INT_MAX)
            return lc_error(err, errlen, "%s: %" PRId64 " windows of T = %d are too many", ds->path,
                            windows, l->opt.T);
        l->n_items = (int)windows;
        if (dataset_check_tokens(ds, l->opt.vocab_size, err, errlen) < 0) return -1;
    } else {
        if (ds->n > INT_MAX)
            return lc_error(err, errlen, "%s: %" PRId64 " examples are too many", ds->path, ds->n);
        if (dataset_load(ds, l->opt.vocab_size, err, errlen) < 0 ||
            items_select(l, err, errlen) < 0)
            return -1;
    }
    if (l->n_items == 0)
        return lc_error(err, errlen, "%s: no %s to load%s", ds->path,
                        l->kind == DATA_LM ? "windows (fewer than 2 tokens)" : "examples",
                        l->dropped ? " (all are longer than T)" : "");
    return 0;
}

// Unpaired: a fixed cyclic pairing over a permutation of the whole dataset (the same for every
// stage, epoch and number of processes, so a reference's log-probs of the mismatched rows can be
// cached per example): partner[perm[j]] = perm[j+1], the last wrapping to the first.
static void plan_partners(Loader *l) {
    int64_t n = l->ds->n;
    int *perm = lc_malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int64_t j = 0; j < n; j++) perm[j] = (int)j;
    Rng r = rng_derive(0x6b746f, (uint64_t)n); // "kto"
    rng_shuffle(&r, perm, (int)n);
    l->partner = lc_malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    for (int64_t j = 0; j < n; j++) l->partner[perm[j]] = perm[(j + 1) % n];
    free(perm);
}

static void loader_alloc(Loader *l) {
    size_t n = (size_t)l->rows * (size_t)l->opt.T;
    l->perm = lc_malloc((size_t)l->n_items * sizeof(int));
    if (l->opt.pack) l->row_start = lc_malloc(((size_t)l->n_items + 1) * sizeof(int));
    l->tokens = lc_malloc(n * sizeof(int));
    l->targets = lc_malloc(n * sizeof(int));
    l->mask = lc_malloc(n * sizeof(float));
    l->pos = lc_malloc(n * sizeof(int));
    l->seg = lc_malloc(n * sizeof(int));
    l->example = lc_malloc(n * sizeof(int64_t));
    l->len = lc_malloc((size_t)l->rows * sizeof(int));
    l->resp_start = lc_malloc((size_t)l->rows * sizeof(int));
    l->scratch = lc_malloc(((size_t)l->opt.T + 1) * sizeof(int));
}

Loader *loader_open(const char *path, DataKind kind, const LoaderOptions *opt, char *err,
                    size_t errlen) {
    if (options_check(path, kind, opt, err, errlen) < 0) return NULL;
    Dataset *ds = dataset_open(path, kind, err, errlen);
    if (!ds) return NULL;
    Loader *l = lc_calloc(1, sizeof(*l));
    l->ds = ds;
    l->kind = kind;
    l->opt = *opt;
    l->rows = kind == DATA_PREFERENCE || kind == DATA_UNPAIRED ? 2 * opt->batch : opt->batch;
    if ((opt->fingerprint && dataset_check_fingerprint(ds, opt->fingerprint, err, errlen) < 0) ||
        loader_items(l, err, errlen) < 0) {
        loader_free(l);
        return NULL;
    }
    loader_alloc(l);
    if (kind == DATA_UNPAIRED) plan_partners(l);
    plan_epoch(l);
    return l;
}

// ---- cursor and accessors ------------------------------------------------------------------

LoaderState loader_state(const Loader *l) {
    return (LoaderState){.epoch = l->epoch,
                         .step = l->step,
                         .seed = (int64_t)l->opt.seed,
                         .units = l->n_items,
                         .batch = l->opt.batch,
                         .world = l->opt.world};
}

// A cursor saved by a run of another number of processes, in this loader's steps: the units the
// whole run had consumed are the same, and a step boundary of both world sizes (an optimizer
// step's end always is one) converts exactly. -1 when it falls inside one of this loader's steps.
static int64_t convert_step(const Loader *l, const LoaderState *s) {
    int64_t old_steps = (s->units + s->batch * s->world - 1) / (s->batch * s->world);
    if (s->step >= old_steps) return l->steps; // the end of the epoch
    int64_t units = s->step * s->batch * s->world, per = s->batch * (int64_t)l->opt.world;
    return units % per == 0 ? units / per : -1;
}

int loader_restore(Loader *l, const LoaderState *s, char *err, size_t errlen) {
    LoaderState cur = loader_state(l);
    if (s->seed != cur.seed || s->units != cur.units || s->batch != cur.batch || s->world < 1)
        return lc_error(err, errlen,
                        "%s: the saved data cursor belongs to another stream (seed %" PRId64
                        ", %" PRId64 " units, batch %" PRId64 ", world %" PRId64
                        "; this loader has %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ")",
                        l->ds->path, s->seed, s->units, s->batch, s->world, cur.seed, cur.units,
                        cur.batch, cur.world);
    if (s->epoch < 0 || s->step < 0)
        return lc_error(err, errlen, "%s: the saved data cursor is negative", l->ds->path);
    l->epoch = s->epoch;
    plan_epoch(l);
    int64_t step = s->world == cur.world ? s->step : convert_step(l, s);
    if (step < 0)
        return lc_error(err, errlen,
                        "%s: the saved data cursor (step %" PRId64 " of %" PRId64
                        " processes) is not at a step boundary of %" PRId64 " processes",
                        l->ds->path, s->step, s->world, cur.world);
    if (step > l->steps)
        return lc_error(err, errlen,
                        "%s: the saved data cursor is at step %" PRId64 " of an epoch of %" PRId64,
                        l->ds->path, step, l->steps);
    l->step = step;
    return 0;
}

const char *loader_error(const Loader *l) {
    return l->err;
}

int loader_rows(const Loader *l) {
    return l->rows;
}

int64_t loader_steps_per_epoch(const Loader *l) {
    return l->steps;
}

int64_t loader_units(const Loader *l) {
    return l->n_items;
}

int64_t loader_dropped(const Loader *l) {
    return l->dropped;
}

const int *loader_response_start(const Loader *l) {
    return l->resp_start;
}

int64_t loader_example_index(const Loader *l, int row, int seg) {
    LC_ASSERT(row >= 0 && row < l->rows && seg >= 0 && seg < l->opt.T);
    return l->example[(size_t)row * l->opt.T + seg];
}

int64_t loader_partner(const Loader *l, int64_t e) {
    LC_ASSERT(l->partner && e >= 0 && e < l->ds->n);
    return l->partner[e];
}

const Dataset *loader_dataset(const Loader *l) {
    return l->ds;
}

void loader_free(Loader *l) {
    if (!l) return;
    dataset_free(l->ds);
    free(l->items);
    free(l->perm);
    free(l->row_start);
    free(l->partner);
    free(l->tokens);
    free(l->targets);
    free(l->mask);
    free(l->pos);
    free(l->seg);
    free(l->len);
    free(l->resp_start);
    free(l->example);
    free(l->scratch);
    free(l);
}
