// train/stages/eval.c: the eval stage. Every model of `models` (and the reference model) answers
// every prompt of data.prompts greedily and, rollout.group_size times, by sampling at
// rollout.temperature. The task's gold reward and/or a judge (`reward_model` or the `judge`
// block: train/stages/judge.h) score the responses; the sampled ones also give each model's KL
// to the reference. From the per-prompt
// scores come win rates against the reference and a Bradley-Terry arena (train/report/arena.h). The
// stage writes results.json, samples.jsonl, one metrics.jsonl row and a final.h5 that only
// marks it complete, prints the comparison and the leaderboard, and rebuilds the run's report.
// A best-of-n entry bon(<model>, <n>) answers each prompt group_size times with the best of n
// samples of the model by the judge (gold when there is none), its KL estimated from the scores
// (train/objectives/bon.h). docs/eval.md describes what it measures and why.
//
// Data parallelism (docs/cluster.md): every process reads the whole prompt set (rank 0 writes
// every prompt's line), but the work is split by sampler call: call c (rows units of one
// decoding, the random stream rng_derive(seed, c)) is generated and scored by process
// c % world, so each call is exactly the one a single process makes and the results equal one
// process's. The processes then sum their units' tokens, lengths and scores into arrays where
// only the unit's owner has a value (responses_merge), so every process holds every unit, and
// rank 0 alone writes results.json, samples.jsonl, metrics.jsonl, final.h5 and the report.
#include "train/stages/stages.h"
#include "common/check.h"
#include "common/timer.h"
#include "data/chat.h"
#include "data/loader.h"
#include "data/synth.h"
#include "model/sample.h"
#include "train/report/arena.h"
#include "train/run/memory.h"
#include "train/run/metrics.h"
#include "train/report/report.h"
#include "train/stages/judge.h"
#include "train/stages/readouts.h"
#include "train/stages/stageio.h"
#include "train/objectives/bon.h"
#include "train/objectives/rl.h"
#include "train/run/run.h"
#include "train/run/state.h"
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The prompt set, read once: every model answers the same prompts.
typedef struct {
    int n;           // prompts
    int T;           // row stride: seq_len - max_new_tokens, the longest prompt kept
    int *tokens;     // (n, T) prompt ids, right-padded with 0
    int *len;        // (n) prompt lengths
    int64_t *index;  // (n) each prompt's example index in the dataset
    char **text;     // (n) decoded prompts
    char **ref;      // (n) their reference answers, or NULL where the dataset has none
    int64_t dropped; // prompts longer than T, left out
} Prompts;

// One model's responses under one decoding. Unit u answers prompt u / draws.
typedef struct {
    int units;       // prompts x draws
    int draws;       // responses per prompt
    int max_new;     // the longest response
    int *tokens;     // (units, max_new) generated ids, -1 after a response's end
    int *len;        // (units) tokens generated, the end token included
    double *gold;    // (units) gold reward; NAN without a task
    double *correct; // (units) 1 if the task's exact-match predicate holds, else 0; NAN without
    double *rm;      // (units) the judge's score (reward_model or judge block); NAN without
    double *kl;      // (units) log pi(y) - log pi_ref(y) summed over y's tokens; NAN if greedy
} Responses;

typedef struct {
    StageRun *sr;
    int rank, world;           // this process among the run's (Run)
    const SynthTask *task;     // the gold reward, or NULL
    Judge *gold;               // its judge, or NULL
    Judge *judge;              // the judge beside gold (reward_model or judge block), or NULL
    JudgeItem *items;          // (rows) responses as the judges read them
    double *jscores;           // (rows) a judge's scores of items
    Model *ref;                // the reference model, loaded for the whole stage
    int ref_index;             // its position among the models
    int n_models;              // models evaluated
    const char **names;        // (n_models) the stage's models, the reference first if omitted
    int *bon_n;                // (n_models) a best-of-n entry's n (bon(<model>, <n>)); 0: a model
    char **bon_model;          // (n_models) the model a best-of-n entry samples; NULL: a model
    Prompts p;                 // the prompts every model answers
    int stop;                  // the token that ends a response
    int rows, seq_len;         // rows per sampler call or forward; tokens per row
    SampleParams greedy_sp;    // temperature 0
    SampleParams sampled_sp;   // the stage's rollout settings
    Responses greedy, sampled; // the current model's, reused for every model
    int *prompt_rows;          // (rows, p.T) the prompts of one sampler call
    int *prompt_len;           // (rows) their lengths
    float *logp;               // (rows, max_new) the sampler's log-probs (KL recomputes them)
    Batch b;                   // (rows, seq_len) rows of teacher-forced forwards
    double *logp_model;        // (rows) log-prob of each response of b under the model
    double *logp_ref;          // (rows) and under the reference
    int *ntok;                 // (rows) response tokens of each row of b
    double *arena_gold;        // (n_models, p.n) mean gold reward of each prompt's samples
    double *arena_rm;          // (n_models, p.n) mean reward-model score of them
    FILE *samples;             // samples.jsonl (rank 0; NULL on the others)
    long generated;            // tokens sampled so far, for the throughput
} Eval;

// Prints "layercake: <where>: <message>". key NULL: where is the stage; else the place in the
// recipe that set the stage's key (the stage itself for a default), and the key.
static void vreport(const Eval *e, const char *key, const char *fmt, va_list ap) {
    const Recipe *r = e->sr->run->recipe;
    const char *name = e->sr->stage->name, *where = key ? recipe_where(r, e->sr->index, key) : NULL;
    if (!key)
        fprintf(stderr, "layercake: stage '%s': ", name);
    else {
        if (!where) where = recipe_where(r, e->sr->index, "name");
        fprintf(stderr, "layercake: %s: %s.%s: ", where ? where : r->file, name, key);
    }
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static int eval_fail(const Eval *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int eval_fail(const Eval *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(e, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

// Reports a bad value of one of the stage's keys, at the place in the recipe that set it.
static int key_fail(const Eval *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int key_fail(const Eval *e, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(e, key, fmt, ap);
    va_end(ap);
    return -1;
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

// Whether this process makes the sampler call (and the scoring forwards) of units u0.. (a
// multiple of rows).
static int owns(const Eval *e, int u0) {
    return (u0 / e->rows) % e->world == e->rank;
}

// ---- models ---------------------------------------------------------------------------------

// The evaluated models: the stage's `models`, with the reference first when they omit it.
static int models_list(Eval *e) {
    const Stage *st = e->sr->stage;
    const StringList *m = &st->models;
    e->ref_index = -1;
    for (int i = 0; i < m->n; i++) {
        for (int j = 0; j < i; j++)
            if (strcmp(m->items[i], m->items[j]) == 0)
                return key_fail(e, "models", "'%s' is listed twice", m->items[i]);
        if (strcmp(m->items[i], st->reference_model) == 0) e->ref_index = i;
    }
    int add = e->ref_index < 0;
    e->n_models = m->n + add;
    e->names = lc_malloc((size_t)e->n_models * sizeof(*e->names));
    e->names[0] = st->reference_model;
    for (int i = 0; i < m->n; i++) e->names[i + add] = m->items[i];
    if (add) e->ref_index = 0;
    e->bon_n = lc_calloc((size_t)e->n_models, sizeof(*e->bon_n));
    e->bon_model = lc_calloc((size_t)e->n_models, sizeof(*e->bon_model));
    for (int i = 0; i < e->n_models; i++) {
        char model[4096], err[512];
        if (recipe_bon_parse(e->names[i], model, sizeof(model), &e->bon_n[i], err, sizeof(err)) ==
            1)
            e->bon_model[i] = strdup(model);
        else
            e->bon_n[i] = 0; // a model (the recipe's rules rejected malformed entries)
    }
    return 0;
}

// Checks that a stage the key names has finished: a stage that has not run yet is the usual
// mistake with `--only`. (Checkpoint paths were checked when the recipe was loaded.)
static int model_check(const Eval *e, const char *key, const char *ref) {
    const Run *run = e->sr->run;
    char path[4096];
    run_resolve_model(run, ref, path, sizeof(path));
    if (recipe_stage_index(run->recipe, ref) >= 0 && state_is_complete(path) != 1)
        return key_fail(e, key,
                        "stage '%s' has not finished: %s is missing or incomplete (run the "
                        "stage first, or the recipe without --only)",
                        ref, path);
    return 0;
}

static int models_check(const Eval *e) {
    const Stage *st = e->sr->stage;
    for (int i = e->n_models - st->models.n; i < e->n_models; i++) // the listed ones
        if (model_check(e, "models", e->bon_n[i] ? e->bon_model[i] : e->names[i])) return -1;
    if (model_check(e, "reference_model", st->reference_model)) return -1;
    if (st->reward_model[0] && model_check(e, "reward_model", st->reward_model)) return -1;
    if (st->judge.kind == JUDGE_KIND_MODEL && model_check(e, "judge.model", st->judge.model))
        return -1;
    return 0;
}

// Loads a checked model for inference with the given heads (0: the file's), able to hold a
// batch of rows x seq_len.
static Model *model_load(Eval *e, const char *ref, int heads) {
    Model *m = stage_model(e->sr, ref, heads, MODEL_INFER, e->rows, e->seq_len);
    if (m && m->max_T < e->seq_len) {
        eval_fail(e, "'%s' has a context of %d tokens; seq_len is %d", ref, m->cfg.max_seq_len,
                  e->seq_len);
        model_free(m);
        return NULL;
    }
    return m;
}

// The judges: gold (the arena's when set) and the one beside it. A pairwise judge scores the
// sampled responses of a prompt against each other: a prompt's draws must share a scoring call.
static int judges_open(Eval *e) {
    const Stage *st = e->sr->stage;
    JudgeOptions gold = {.which = JUDGE_ONLY_GOLD}, other = {.which = JUDGE_NOT_GOLD};
    if (st->judge.kind == JUDGE_KIND_MODEL && st->judge.pairwise &&
        (st->rollout.group_size < 2 || e->rows % st->rollout.group_size))
        return key_fail(e, "judge.pairwise",
                        "a pairwise judge compares a prompt's sampled responses: it needs "
                        "rollout.group_size >= 2 dividing rollout.batch (%d, %d)",
                        st->rollout.group_size, e->rows);
    for (int i = 0; i < e->n_models; i++)
        if (e->bon_n[i] && st->judge.kind == JUDGE_KIND_MODEL && st->judge.pairwise)
            return key_fail(e, "models",
                            "'%s': best-of-n selects by scores comparable across a prompt's "
                            "samples; a pairwise judge's compare one group (use a pointwise "
                            "judge, a reward model or the gold reward)",
                            e->names[i]);
    if (e->task && !(e->gold = judge_open_with(e->sr, e->rows, e->seq_len, &gold))) return -1;
    bool other_set = st->reward_model[0] || st->judge.kind != JUDGE_KIND_NONE;
    if (other_set && !(e->judge = judge_open_with(e->sr, e->rows, e->seq_len, &other))) return -1;
    return 0;
}

// ---- prompts --------------------------------------------------------------------------------

static void prompt_add(Prompts *p, const Tokenizer *tok, const int *ids, int len, int64_t index,
                       const Example *ex) {
    size_t bytes;
    memcpy(p->tokens + (size_t)p->n * p->T, ids, (size_t)p->T * sizeof(int));
    p->len[p->n] = len;
    p->index[p->n] = index;
    p->text[p->n] = tokenizer_decode(tok, ids, len, &bytes);
    LC_ASSERT(p->text[p->n]); // the loader checked every id against the vocabulary
    p->ref[p->n] = NULL;
    if (ex->reference_text && ex->n_reference_text > 0) {
        p->ref[p->n] = lc_malloc((size_t)ex->n_reference_text + 1);
        memcpy(p->ref[p->n], ex->reference_text, (size_t)ex->n_reference_text);
        p->ref[p->n][ex->n_reference_text] = '\0';
    }
    p->n++;
}

// Reads every prompt that leaves room for max_new_tokens, in dataset order.
static int prompts_load(Eval *e) {
    const Run *run = e->sr->run;
    const Stage *st = e->sr->stage;
    Prompts *p = &e->p;
    char err[1024];
    LoaderOptions o = {.batch = e->rows,
                       .T = st->seq_len - st->rollout.max_new_tokens,
                       .world = 1,
                       .vocab_size = tokenizer_vocab_size(run->tok),
                       .fingerprint = run->fingerprint,
                       .drop_long = 1};
    Loader *l = loader_open(st->data.prompts, DATA_PROMPT, &o, err, sizeof(err));
    if (!l) return eval_fail(e, "%s", err);
    size_t cap = (size_t)loader_units(l) + 1; // + 1: an empty dataset still allocates
    p->T = o.T;
    p->tokens = lc_malloc(cap * (size_t)p->T * sizeof(int));
    p->len = lc_malloc(cap * sizeof(int));
    p->index = lc_malloc(cap * sizeof(int64_t));
    p->text = lc_calloc(cap, sizeof(char *));
    p->ref = lc_calloc(cap, sizeof(char *));
    Batch b;
    int rc = 0;
    for (int64_t s = 0; s < loader_steps_per_epoch(l) && !rc; s++) {
        if (loader_next(l, &b) < 0) rc = eval_fail(e, "%s", loader_error(l));
        for (int r = 0; !rc && r < b.B; r++)
            if (b.len[r] > 0) {
                int64_t index = loader_example_index(l, r, 0);
                Example ex = dataset_example(loader_dataset(l), index);
                prompt_add(p, run->tok, b.tokens + (size_t)r * b.T, b.len[r], index, &ex);
            }
    }
    p->dropped = loader_dropped(l);
    loader_free(l);
    if (!rc && p->n == 0)
        rc = key_fail(e, "data.prompts",
                      "%s holds no prompt of at most %d tokens (seq_len %d - "
                      "rollout.max_new_tokens %d)",
                      st->data.prompts, p->T, st->seq_len, st->rollout.max_new_tokens);
    return rc;
}

// Every prompt must be one of the task's, or its gold reward is meaningless.
static int prompts_check_task(const Eval *e) {
    char answer[256];
    for (int i = 0; i < e->p.n; i++)
        if (synth_answer(e->task, e->p.text[i], strlen(e->p.text[i]), answer, sizeof(answer)) < 0)
            return key_fail(e, "data.prompts",
                            "%s: prompt %lld (\"%s\") is not a problem of task '%s'; use "
                            "prompts from its world (layercake data synth --task %s)",
                            e->sr->stage->data.prompts, (long long)e->p.index[i], e->p.text[i],
                            synth_task_name(e->task), synth_task_name(e->task));
    return 0;
}

// The token that ends a response: the end of turn of the template the prompts were rendered
// with when every prompt ends with its assistant header, else end-of-text (plain prompts,
// task worlds).
static int stop_token(const Eval *e) {
    Chat c = run_dataset_chat(e->sr->run, e->sr->stage->data.prompts);
    int eot = tokenizer_eot(e->sr->run->tok);
    for (int i = 0; i < e->p.n; i++)
        if (chat_stop_token(&c, e->p.tokens + (size_t)i * e->p.T, e->p.len[i]) == eot) return eot;
    return c.end;
}

static void prompts_free(Prompts *p) {
    for (int i = 0; i < p->n; i++) free(p->text[i]), free(p->ref[i]);
    free(p->text), free(p->ref), free(p->tokens), free(p->len), free(p->index);
}

// ---- responses ------------------------------------------------------------------------------

static void responses_alloc(Responses *r, int prompts, int draws, int max_new) {
    size_t n = (size_t)prompts * draws;
    *r = (Responses){.units = (int)n, .draws = draws, .max_new = max_new};
    r->tokens = lc_malloc(n * (size_t)max_new * sizeof(int));
    r->len = lc_malloc(n * sizeof(int));
    double **fields[] = {&r->gold, &r->correct, &r->rm, &r->kl};
    for (int f = 0; f < 4; f++) {
        *fields[f] = lc_malloc(n * sizeof(double));
        for (size_t u = 0; u < n; u++) (*fields[f])[u] = NAN; // stays NAN where not measured
    }
}

static void responses_free(Responses *r) {
    free(r->tokens), free(r->len), free(r->gold), free(r->correct), free(r->rm), free(r->kl);
}

// Generates every unit of r with sampler s, rows at a time. Every model draws from the same
// random streams (one per call), so identical models give identical samples and similar ones
// mostly agree: common random numbers make the paired comparisons less noisy.
static void generate(Eval *e, Sampler *s, const SampleParams *sp, Responses *r) {
    uint64_t seed = stage_seed(e->sr, "sample");
    int T = e->p.T;
    for (int u0 = 0, call = 0; u0 < r->units; u0 += e->rows, call++) {
        if (!owns(e, u0)) continue;
        int B = min_int(e->rows, r->units - u0);
        for (int b = 0; b < B; b++) {
            int p = (u0 + b) / r->draws;
            memcpy(e->prompt_rows + (size_t)b * T, e->p.tokens + (size_t)p * T,
                   (size_t)T * sizeof(int));
            e->prompt_len[b] = e->p.len[p];
        }
        Rng rng = rng_derive(seed, (uint64_t)call);
        e->generated += sampler_generate(s, e->prompt_rows, T, e->prompt_len, B, sp, &rng,
                                         r->tokens + (size_t)u0 * r->max_new, e->logp, r->len + u0);
    }
}

// Token t of unit u's sequence, prompt then response.
static int seq_token(const Eval *e, const Responses *r, int u, int t) {
    int p = u / r->draws, plen = e->p.len[p];
    return t < plen ? e->p.tokens[(size_t)p * e->p.T + t]
                    : r->tokens[(size_t)u * r->max_new + t - plen];
}

// Units u0..u0+B-1 as rows of e->b: prompt + response as inputs, the response tokens as
// targets (mask 1): the inputs end before the last token, so that every response token is a
// target.
static void fill_rows(Eval *e, const Responses *r, int u0, int B) {
    Batch *x = &e->b;
    x->B = B;
    x->T = 1;
    for (int b = 0; b < B; b++) {
        int u = u0 + b, n = e->p.len[u / r->draws] + r->len[u];
        x->len[b] = n - 1;
        if (x->len[b] > x->T) x->T = x->len[b];
    }
    for (int b = 0; b < B; b++) {
        int u = u0 + b, plen = e->p.len[u / r->draws], n = plen + r->len[u];
        for (int t = 0; t < x->T; t++) {
            size_t i = (size_t)b * x->T + t;
            int in = t < x->len[b];
            x->tokens[i] = in ? seq_token(e, r, u, t) : 0;
            x->targets[i] = in && t >= plen - 1 && t + 1 < n ? seq_token(e, r, u, t + 1) : -1;
            x->mask[i] = x->targets[i] >= 0 ? 1.0f : 0.0f;
        }
    }
}

// Units u0..u0+B-1 as the judges read them (decoded text without the end token, ids with it,
// the prompt's reference answer) into e->items; free the texts with items_free.
static void items_fill(Eval *e, const Responses *r, int u0, int B) {
    const Tokenizer *tok = e->sr->run->tok;
    for (int b = 0; b < B; b++) {
        int u = u0 + b, p = u / r->draws, rlen = r->len[u];
        const int *resp = r->tokens + (size_t)u * r->max_new;
        int ends = rlen > 0 && resp[rlen - 1] == e->stop;
        size_t bytes;
        char *text = tokenizer_decode(tok, resp, rlen - ends, &bytes);
        LC_ASSERT(text); // the sampler draws ids of the model's vocabulary: the tokenizer's
        e->items[b] = (JudgeItem){.prompt = e->p.text[p],
                                  .response = text,
                                  .prompt_ids = e->p.tokens + (size_t)p * e->p.T,
                                  .prompt_len = e->p.len[p],
                                  .response_ids = resp,
                                  .response_len = rlen,
                                  .reference = e->p.ref[p]};
    }
}

static void items_free(Eval *e, int B) {
    for (int b = 0; b < B; b++) free((char *)e->items[b].response);
}

// The judge's scores of r (the units of this process's calls). A pairwise judge compares a
// prompt's draws: greedy responses (one per prompt) stay unscored. Returns 0 or -1 after the
// judge printed why.
static int score_judge(Eval *e, Responses *r) {
    if (e->sr->stage->judge.kind == JUDGE_KIND_MODEL && e->sr->stage->judge.pairwise &&
        r->draws < 2)
        return 0;
    for (int u0 = 0; u0 < r->units; u0 += e->rows) {
        if (!owns(e, u0)) continue;
        int B = min_int(e->rows, r->units - u0);
        items_fill(e, r, u0, B);
        // whole groups when rows holds whole prompts' draws (always with a pairwise judge)
        int group = e->rows % r->draws == 0 ? r->draws : 1;
        int rc = judge_score(e->judge, e->items, B, group, e->jscores, NULL);
        items_free(e, B);
        if (rc) return -1;
        for (int b = 0; b < B; b++) r->rm[u0 + b] = e->jscores[b];
    }
    return 0;
}

// KL(y) = log pi(y) - log pi_ref(y) of each sampled response y (the k1 estimator of
// train/objectives/rl.h on the whole response): both from teacher-forced forwards at the sampling
// temperature, so the reference's KL to itself is exactly 0 and the two terms share their
// rounding.
static void score_kl(Eval *e, Model *m, Responses *r) {
    float inv_temp = 1.0f / e->sampled_sp.temperature;
    for (int u0 = 0; u0 < r->units; u0 += e->rows) {
        if (!owns(e, u0)) continue;
        int B = min_int(e->rows, r->units - u0);
        fill_rows(e, r, u0, B);
        model_forward(m, &e->b, inv_temp);
        sequence_logps(m, &e->b, e->logp_model, e->ntok);
        model_forward(e->ref, &e->b, inv_temp);
        sequence_logps(e->ref, &e->b, e->logp_ref, e->ntok);
        for (int b = 0; b < B; b++) r->kl[u0 + b] = rl_kl(e->logp_model[b], e->logp_ref[b], KL_K1);
    }
}

// Data parallelism: each process generated and scored the units of its calls; afterwards
// every process holds every unit's tokens, length, KL and reward-model score. The others'
// entries are summed in from -0.0, the identity of the sum (NaN, never measured, stays NaN).
static void responses_merge(Eval *e, Responses *r) {
    if (e->world == 1) return;
    size_t units = (size_t)r->units, per = (size_t)r->max_new + 3; // tokens, len, kl, rm
    double *x = lc_malloc((units * per + 1) * sizeof(double));
    for (size_t i = 0; i < units * per; i++) x[i] = -0.0; // x + -0.0 is x, even a KL of -0.0
    for (size_t u = 0; u < units; u++) {
        if (!owns(e, (int)(u / (size_t)e->rows * (size_t)e->rows))) continue;
        double *row = x + u * per;
        for (int t = 0; t < r->max_new; t++) row[t] = r->tokens[u * (size_t)r->max_new + t];
        row[r->max_new] = r->len[u], row[r->max_new + 1] = r->kl[u], row[r->max_new + 2] = r->rm[u];
    }
    Comm *c = e->sr->run->comm;
    c->all_reduce_sum_host(c, x, units * per);
    for (size_t u = 0; u < units; u++) {
        const double *row = x + u * per;
        for (int t = 0; t < r->max_new; t++) r->tokens[u * (size_t)r->max_new + t] = (int)row[t];
        r->len[u] = (int)row[r->max_new], r->kl[u] = row[r->max_new + 1];
        r->rm[u] = row[r->max_new + 2];
    }
    free(x);
}

// ---- samples.jsonl --------------------------------------------------------------------------

static json_t *json_num(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

// Unit u's gold reward and exactness, from its decoded text (the end token included).
static int score_gold(Eval *e, Responses *r, int u, const char *text) {
    int p = u / r->draws;
    JudgeItem it = {.prompt = e->p.text[p],
                    .response = text,
                    .prompt_ids = e->p.tokens + (size_t)p * e->p.T,
                    .prompt_len = e->p.len[p],
                    .response_ids = r->tokens + (size_t)u * r->max_new,
                    .response_len = r->len[u],
                    .reference = e->p.ref[p]};
    return judge_score(e->gold, &it, 1, 1, &r->gold[u], &r->correct[u]);
}

// Decodes each response once: its gold reward and exactness, and its line in samples.jsonl.
static int responses_finish(Eval *e, const char *model, const char *decoding, Responses *r) {
    const Tokenizer *tok = e->sr->run->tok;
    int rc = 0;
    for (int u = 0; u < r->units && !rc; u++) {
        int p = u / r->draws;
        size_t bytes;
        char *text = tokenizer_decode(tok, r->tokens + (size_t)u * r->max_new, r->len[u], &bytes);
        LC_ASSERT(text); // the sampler draws ids of the model's vocabulary: the tokenizer's
        const char *prompt = e->p.text[p];
        if (e->gold && score_gold(e, r, u, text)) rc = -1;
        if (!e->samples) { // ranks other than 0 only score
            free(text);
            continue;
        }
        json_t *row = json_pack(
            "{s:s, s:s, s:I, s:o, s:o, s:i, s:o, s:o, s:o, s:o}", "model", model, "decoding",
            decoding, "prompt_index", (json_int_t)e->p.index[p], "prompt",
            stageio_json_text(prompt, strlen(prompt)), "response", stageio_json_text(text, bytes),
            "length", r->len[u], "gold_reward", json_num(r->gold[u]), "correct",
            e->task ? json_boolean(r->correct[u] > 0) : json_null(), "rm_score", json_num(r->rm[u]),
            "kl", json_num(r->kl[u]));
        if (!row || json_dumpf(row, e->samples, JSON_COMPACT) || fputc('\n', e->samples) == EOF)
            rc = eval_fail(e, "cannot write samples.jsonl (disk full?)");
        json_decref(row);
        free(text);
    }
    return rc;
}

// ---- one model ------------------------------------------------------------------------------

static double mean(const double *x, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

// out[p] = the mean of x over prompt p's draws.
static void prompt_means(const Responses *r, const double *x, double *out) {
    for (int p = 0; p < r->units / r->draws; p++) out[p] = mean(x + (size_t)p * r->draws, r->draws);
}

static void summarize(Eval *e, int i, ArenaModel *am) {
    const Responses *g = &e->greedy, *s = &e->sampled;
    double len = 0.0;
    for (int u = 0; u < s->units; u++) len += s->len[u];
    am->gold_reward = mean(s->gold, s->units);
    am->accuracy = mean(s->correct, s->units);
    am->rm_score = mean(s->rm, s->units);
    am->kl_to_sft = mean(s->kl, s->units);
    am->response_length = len / s->units;
    am->gold_reward_greedy = mean(g->gold, g->units);
    am->accuracy_greedy = mean(g->correct, g->units);
    am->rm_score_greedy = mean(g->rm, g->units);
    prompt_means(s, s->gold, e->arena_gold + (size_t)i * e->p.n);
    prompt_means(s, s->rm, e->arena_rm + (size_t)i * e->p.n);
}

static void print_model(const Eval *e, const ArenaModel *m, double seconds) {
    printf("[%s] %s:", e->sr->stage->name, m->name);
    if (e->task && isnan(m->gold_reward_greedy)) // best-of-n: no greedy decoding
        printf(" gold %.3f, accuracy %.3f,", m->gold_reward, m->accuracy);
    else if (e->task)
        printf(" gold %.3f (greedy %.3f), accuracy %.3f (greedy %.3f),", m->gold_reward,
               m->gold_reward_greedy, m->accuracy, m->accuracy_greedy);
    if (e->judge && isnan(m->rm_score_greedy))
        printf(" %s %.3f,", e->sr->stage->reward_model[0] ? "RM" : "judge", m->rm_score);
    else if (e->judge)
        printf(" %s %.3f (greedy %.3f),", e->sr->stage->reward_model[0] ? "RM" : "judge",
               m->rm_score, m->rm_score_greedy);
    printf(" KL %.3f, length %.1f (%.1f s)\n", m->kl_to_sft, m->response_length, seconds);
}

// Evaluates model i: greedy and sampled responses, their scores and the samples' KL.
static int model_evaluate(Eval *e, int i, ArenaModel *am) {
    double t0 = time_now();
    const Run *run = e->sr->run;
    Model *m = i == e->ref_index ? e->ref : model_load(e, e->names[i], MODEL_HEAD_LM);
    if (run_agree(run, !m)) { // every process stops, none waits at the merge
        if (m && m != e->ref) model_free(m);
        return -1;
    }
    Sampler *s = sampler_create(m, e->rows, e->seq_len, 1);
    generate(e, s, &e->greedy_sp, &e->greedy);
    generate(e, s, &e->sampled_sp, &e->sampled);
    sampler_free(s);
    score_kl(e, m, &e->sampled);
    if (m != e->ref) model_free(m);
    if (run_agree(run, e->judge && (score_judge(e, &e->greedy) || score_judge(e, &e->sampled))))
        return -1; // a judge failed (a command that timed out, ...): every process stops
    responses_merge(e, &e->greedy);
    responses_merge(e, &e->sampled);
    int rc = responses_finish(e, e->names[i], "greedy", &e->greedy) ||
             responses_finish(e, e->names[i], "sampled", &e->sampled);
    if (run_agree(run, rc)) return -1; // rank 0's samples.jsonl written, or all stop
    summarize(e, i, am);
    print_model(e, am, time_now() - t0);
    return 0;
}

// ---- best-of-n ------------------------------------------------------------------------------

// What best-of-n selects by: the judge beside gold when the stage has one, else gold.
static const double *bon_scores(const Eval *e, const Responses *r) {
    return e->judge ? r->rm : r->gold;
}

// The gold reward of every unit of r, on every process (selection needs them all).
static int score_gold_all(Eval *e, Responses *r) {
    const Tokenizer *tok = e->sr->run->tok;
    int rc = 0;
    for (int u = 0; u < r->units && !rc; u++) {
        size_t bytes;
        char *text = tokenizer_decode(tok, r->tokens + (size_t)u * r->max_new, r->len[u], &bytes);
        LC_ASSERT(text);
        rc = score_gold(e, r, u, text);
        free(text);
    }
    return rc;
}

// Best-of-n's answers into e->sampled: answer u (prompt u / draws) is the best by the selection
// score of pool units u*n .. u*n+n-1, which are prompt p's draws (u mod draws)*n.. (the pool
// has n x draws units per prompt). log_w[u]: log of its density ratio against the prompt's
// pool (train/objectives/bon.h). Returns how many answers' scores tie another of their pool.
static int bon_select(Eval *e, int n, const Responses *pool, double *log_w) {
    Responses *s = &e->sampled;
    const double *sc = bon_scores(e, pool);
    int m = pool->draws, ties = 0;
    for (int u = 0; u < s->units; u++) {
        const double *prompt_pool = sc + (size_t)(u / s->draws) * m;
        size_t best = (size_t)u * n + (size_t)bon_best(sc + (size_t)u * n, n);
        memcpy(s->tokens + (size_t)u * s->max_new, pool->tokens + best * pool->max_new,
               (size_t)s->max_new * sizeof(int));
        s->len[u] = pool->len[best];
        s->gold[u] = pool->gold[best], s->correct[u] = pool->correct[best];
        s->rm[u] = pool->rm[best];
        log_w[u] = bon_log_ratio(prompt_pool, m, n, sc[best]);
        int same = 0;
        for (int k = 0; k < m; k++) same += prompt_pool[k] == sc[best];
        ties += same > 1;
    }
    return ties;
}

// Marks every greedy measurement of the current entry as not measured.
static void responses_clear(Responses *r) {
    for (int u = 0; u < r->units; u++) r->gold[u] = r->correct[u] = r->rm[u] = r->kl[u] = NAN;
}

// The KL of each answer to the reference: log w (best-of-n against the model it samples) plus,
// when that model is not the reference, its k1 term log pi(y) - log pi_ref(y).
static void bon_kl(Eval *e, Model *m, const double *log_w) {
    Responses *s = &e->sampled;
    if (m != e->ref)
        score_kl(e, m, s);
    else
        for (int u = 0; u < s->units; u++) s->kl[u] = 0.0;
    responses_merge(e, s);
    for (int u = 0; u < s->units; u++) s->kl[u] += log_w[u];
}

static void print_bon(const Eval *e, const ArenaModel *am, int ties) {
    printf("[%s] %s: best of %d by %s; KL %.3f measured, %.3f analytic (log n - (n-1)/n); %.1f%% "
           "of its answers tie another sample of their prompt's pool\n",
           e->sr->stage->name, am->name, am->bon_n, e->judge ? judge_name(e->judge) : "gold",
           am->kl_to_sft, am->kl_analytic, 100.0 * ties / e->sampled.units);
}

// Evaluates best-of-n entry i: n x group_size samples of its model per prompt (the pool),
// scored by the selection judge (and gold); each answer the best of its n; no greedy decoding.
static int bon_evaluate(Eval *e, int i, ArenaModel *am) {
    double t0 = time_now();
    const Run *run = e->sr->run;
    int n = e->bon_n[i], ties = 0;
    const char *base = e->bon_model[i];
    Model *m =
        strcmp(base, e->names[e->ref_index]) == 0 ? e->ref : model_load(e, base, MODEL_HEAD_LM);
    if (run_agree(run, !m)) {
        if (m && m != e->ref) model_free(m);
        return -1;
    }
    Responses pool;
    responses_alloc(&pool, e->p.n, n * e->sampled.draws, e->sampled.max_new);
    double *log_w = lc_malloc((size_t)e->sampled.units * sizeof(double));
    Sampler *s = sampler_create(m, e->rows, e->seq_len, 1);
    generate(e, s, &e->sampled_sp, &pool);
    sampler_free(s);
    int rc = run_agree(run, e->judge && score_judge(e, &pool));
    if (!rc) {
        responses_merge(e, &pool);
        rc = run_agree(run, e->gold && score_gold_all(e, &pool));
    }
    if (!rc) {
        ties = bon_select(e, n, &pool, log_w);
        bon_kl(e, m, log_w);
        responses_clear(&e->greedy);
        rc = run_agree(run, responses_finish(e, e->names[i], "sampled", &e->sampled));
    }
    if (m != e->ref) model_free(m);
    responses_free(&pool);
    free(log_w);
    if (rc) return -1;
    summarize(e, i, am);
    am->kl_analytic = bon_kl_analytic(n);
    am->bon_n = n;
    snprintf(am->bon_model, sizeof(am->bon_model), "%s", base);
    print_model(e, am, time_now() - t0);
    print_bon(e, am, ties);
    return 0;
}

// ---- setup ----------------------------------------------------------------------------------

// A best-of-n entry's samples (prompts x n x group_size) must fit an int.
static int bon_check_size(const Eval *e) {
    long long g = e->sr->stage->rollout.group_size;
    for (int i = 0; i < e->n_models; i++)
        if (e->bon_n[i] && (long long)e->p.n * e->bon_n[i] * g > INT_MAX)
            return key_fail(e, "models",
                            "'%s': %d prompts x %d samples x rollout.group_size %lld is more "
                            "samples than one stage can hold; lower n",
                            e->names[i], e->p.n, e->bon_n[i], g);
    return 0;
}

static int task_find(Eval *e) {
    const char *name = e->sr->stage->gold_reward;
    if (!name[0]) return 0;
    e->task = synth_task_find(name);
    if (!e->task)
        return key_fail(e, "gold_reward", "'%s' is not a task; the tasks are: %s", name,
                        synth_task_names());
    return 0;
}

// Allocates what does not depend on the prompts' count.
static void buffers_alloc(Eval *e) {
    size_t rows = (size_t)e->rows, T = (size_t)e->seq_len;
    const RolloutConfig *ro = &e->sr->stage->rollout;
    e->prompt_rows = lc_malloc(rows * (size_t)e->p.T * sizeof(int));
    e->prompt_len = lc_malloc(rows * sizeof(int));
    e->logp = lc_malloc(rows * (size_t)ro->max_new_tokens * sizeof(float));
    e->b.tokens = lc_malloc(rows * T * sizeof(int));
    e->b.targets = lc_malloc(rows * T * sizeof(int));
    e->b.mask = lc_malloc(rows * T * sizeof(float));
    e->b.len = lc_malloc(rows * sizeof(int));
    e->items = lc_calloc(rows, sizeof(JudgeItem));
    e->jscores = lc_malloc(rows * sizeof(double));
    e->logp_model = lc_malloc(rows * sizeof(double));
    e->logp_ref = lc_malloc(rows * sizeof(double));
    e->ntok = lc_malloc(rows * sizeof(int));
    responses_alloc(&e->greedy, e->p.n, 1, ro->max_new_tokens);
    responses_alloc(&e->sampled, e->p.n, ro->group_size, ro->max_new_tokens);
    e->arena_gold = lc_malloc((size_t)e->n_models * e->p.n * sizeof(double));
    e->arena_rm = lc_malloc((size_t)e->n_models * e->p.n * sizeof(double));
}

static int eval_open(Eval *e) {
    const Stage *st = e->sr->stage;
    const RolloutConfig *ro = &st->rollout;
    e->rows = ro->batch;
    e->seq_len = st->seq_len;
    if (task_find(e) || models_list(e) || models_check(e)) return -1;
    if (prompts_load(e) || (e->task && prompts_check_task(e)) || bon_check_size(e)) return -1;
    e->stop = stop_token(e);
    e->sampled_sp = rollout_sample_params(ro, e->stop);
    e->greedy_sp = (SampleParams){.temperature = 0.0f,
                                  .top_k = 0,
                                  .top_p = 1.0f,
                                  .stop_token = e->stop,
                                  .max_new_tokens = ro->max_new_tokens};
    buffers_alloc(e);
    if (judges_open(e)) return -1;
    e->ref = model_load(e, e->names[e->ref_index], MODEL_HEAD_LM);
    if (!e->ref) return -1;
    if (e->rank != 0) return 0; // rank 0 writes the stage's files
    char path[4200];
    snprintf(path, sizeof(path), "%s/samples.jsonl", e->sr->dir);
    e->samples = fopen(path, "w");
    if (!e->samples) return eval_fail(e, "cannot write %s", path);
    return 0;
}

static void eval_close(Eval *e) {
    if (e->samples) fclose(e->samples);
    model_free(e->ref);
    judge_close(e->gold);
    judge_close(e->judge);
    responses_free(&e->greedy);
    responses_free(&e->sampled);
    free(e->prompt_rows), free(e->prompt_len), free(e->logp), free(e->items), free(e->jscores);
    free(e->logp_model), free(e->logp_ref), free(e->ntok);
    free(e->b.tokens), free(e->b.targets), free(e->b.mask), free(e->b.len);
    free(e->arena_gold), free(e->arena_rm);
    prompts_free(&e->p);
    for (int i = 0; e->bon_model && i < e->n_models; i++) free(e->bon_model[i]);
    free(e->bon_model), free(e->bon_n);
    free(e->names);
}

// ---- results --------------------------------------------------------------------------------

// The arena and win rates: judged by the gold reward when there is one, else by the reward
// model; with both, the reward model's win rates come alongside (a gap is reward hacking).
static int results_judge(Eval *e, ArenaResults *res) {
    const Stage *st = e->sr->stage;
    char err[1024];
    snprintf(res->reference, sizeof(res->reference), "%s", e->names[e->ref_index]);
    static const char *const kinds[] = {"reward", "match", "command", "model"};
    snprintf(res->judge, sizeof(res->judge), "%s", e->task ? "gold" : kinds[st->judge.kind]);
    res->opts.n_boot = st->bootstrap;
    res->opts.seed = stage_seed(e->sr, "bootstrap");
    const double *judge = e->task ? e->arena_gold : e->arena_rm;
    const double *rm = e->task && e->judge ? e->arena_rm : NULL;
    char path[4200];
    snprintf(path, sizeof(path), "%s/results.json", e->sr->dir);
    if (arena_judge(res, judge, rm, err, sizeof(err)) ||
        arena_write_results(path, res, err, sizeof(err)))
        return eval_fail(e, "%s", err);
    return 0;
}

// Adds "<key>/<model>" to the row being written, when v was measured.
static void metric_add_model(Metrics *m, const char *key, const char *model, double v) {
    char k[ARENA_NAME_MAX + 64];
    snprintf(k, sizeof(k), "%s/%s", key, model);
    if (isfinite(v)) metrics_add(m, k, v);
}

// One metrics.jsonl row (step 0): the prompt count, throughput, and "<quantity>/<model>" keys.
static int metrics_write(Eval *e, const ArenaResults *res, double elapsed) {
    char err[1024];
    Metrics *m = metrics_open(e->sr->dir, -1, err, sizeof(err));
    if (!m) return eval_fail(e, "%s", err);
    metrics_begin(m, 0);
    metrics_add(m, "prompts", e->p.n);
    metrics_add(m, "samples_per_prompt", e->sampled.draws);
    metrics_add(m, "tokens_per_s", (double)e->generated / elapsed);
    metrics_add(m, "elapsed", elapsed);
    for (int i = 0; i < res->n_models; i++) {
        const ArenaModel *a = &res->models[i];
        metric_add_model(m, "gold_reward", a->name, a->gold_reward);
        metric_add_model(m, "accuracy", a->name, a->accuracy);
        metric_add_model(m, "rm_score", a->name, a->rm_score);
        metric_add_model(m, "gold_reward_greedy", a->name, a->gold_reward_greedy);
        metric_add_model(m, "accuracy_greedy", a->name, a->accuracy_greedy);
        metric_add_model(m, "rm_score_greedy", a->name, a->rm_score_greedy);
        metric_add_model(m, "kl_to_sft", a->name, a->kl_to_sft);
        metric_add_model(m, "kl_analytic", a->name, a->kl_analytic);
        metric_add_model(m, "response_length", a->name, a->response_length);
        metric_add_model(m, "win_rate_vs_ref", a->name, a->win.rate);
        metric_add_model(m, "elo", a->name, a->rating.elo);
    }
    metrics_end(m);
    metrics_close(m);
    return 0;
}

// An eval stage has no model to save: its final.h5 only marks it complete, so a rerun skips it.
static int mark_complete(const Eval *e) {
    char err[1024];
    if (stageio_mark_complete(e->sr, err, sizeof(err))) return eval_fail(e, "%s", err);
    return 0;
}

static int report(const Eval *e) {
    const char *dir = e->sr->run->recipe->output_dir;
    char err[1024];
    ReportSummary sum;
    if (report_build(dir, stderr, &sum, err, sizeof(err)))
        return eval_fail(e, "the report failed: %s (rebuild it with `layercake report %s`)", err,
                         dir);
    printf("[%s] report: %s/report.md (%d plots in %s/plots)\n", e->sr->stage->name, dir, sum.plots,
           dir);
    return 0;
}

static int results_finish(Eval *e, ArenaResults *res, double elapsed) {
    const Stage *st = e->sr->stage;
    if (results_judge(e, res)) return -1;
    printf("\n[%s] %d prompts, %d sampled response(s) each at temperature %g; judged by %s '%s'; "
           "win rates and Elo against %s\n\n",
           st->name, e->p.n, e->sampled.draws, st->rollout.temperature,
           e->task ? "the gold reward of" : "the judge",
           e->task ? st->gold_reward : judge_name(e->judge), res->reference);
    arena_print_table(stdout, res);
    printf("\n");
    arena_print_leaderboard(stdout, res);
    printf("\n[%s] wrote %s/results.json and samples.jsonl\n", st->name, e->sr->dir);
    return metrics_write(e, res, elapsed) || mark_complete(e) || report(e) ? -1 : 0;
}

// ---- the stage ------------------------------------------------------------------------------

// The memory report (train/run/memory.h): the reference and the judge stay loaded; each other
// model is loaded in turn (not counted); the sampler is made for each model in turn and its
// view holds the same rows x seq_len in inference mode as the reference.
static void report_memory(const Eval *e) {
    MemoryPlan plan;
    memory_plan_init(&plan);
    memory_plan_add_model(&plan, "reference", e->ref, NULL);
    if (judge_model(e->judge)) memory_plan_add_model(&plan, "judge", judge_model(e->judge), NULL);
    memory_plan_add(&plan, "sampler", MEM_ACTIVATIONS, model_act_bytes(e->ref));
    memory_plan_add(&plan, "sampler", MEM_KV_CACHE,
                    sampler_kv_bytes_for(e->ref, e->rows, e->seq_len, 1));
    memory_plan_report(&plan, e->sr);
}

int stage_eval(StageRun *sr) {
    double t0 = time_now();
    Eval e = {.sr = sr, .rank = sr->run->rank, .world = sr->run->world};
    ArenaResults res = {0};
    int rc = run_agree(sr->run, eval_open(&e) ? 1 : 0);
    if (!rc) {
        printf("[%s] %d models on %d prompts of %s", sr->stage->name, e.n_models, e.p.n,
               sr->stage->data.prompts);
        if (e.p.dropped)
            printf(" (%lld longer than %d tokens left out)", (long long)e.p.dropped, e.p.T);
        printf("\n");
        report_memory(&e);
        arena_results_init(&res, e.n_models, e.names, e.p.n);
    }
    for (int i = 0; !rc && i < e.n_models; i++)
        rc = (e.bon_n[i] ? bon_evaluate(&e, i, &res.models[i])
                         : model_evaluate(&e, i, &res.models[i]))
                 ? 1
                 : 0;
    if (!rc) {
        double generated = (double)e.generated; // tokens sampled by every process
        sr->run->comm->all_reduce_sum_host(sr->run->comm, &generated, 1);
        e.generated = (long)generated;
        if (e.rank == 0) rc = results_finish(&e, &res, time_now() - t0) ? 1 : 0;
        rc = run_agree(sr->run, rc);
    }
    if (res.models) arena_results_free(&res);
    eval_close(&e);
    return rc;
}
