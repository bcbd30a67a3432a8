// train/stages/supervised.c: the supervised training loop (see train/stages/supervised.h).
#include "train/stages/supervised.h"
#include "common/check.h"
#include "common/timer.h"
#include "data/chat.h"
#include "model/sample.h"
#include "train/stages/pairs.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- batch copies ---------------------------------------------------------------------------

static void copy_alloc(BatchCopy *c, int rows, int T) {
    size_t n = (size_t)rows * T;
    c->tokens = lc_malloc(n * sizeof(int));
    c->targets = lc_malloc(n * sizeof(int));
    c->pos = lc_malloc(n * sizeof(int));
    c->seg = lc_malloc(n * sizeof(int));
    c->mask = lc_malloc(n * sizeof(float));
    c->len = lc_malloc((size_t)rows * sizeof(int));
    c->example = lc_malloc((size_t)rows * sizeof(int64_t));
}

static void copy_free(BatchCopy *c) {
    free(c->tokens), free(c->targets), free(c->pos), free(c->seg), free(c->mask), free(c->len);
    free(c->example);
}

// Copies src (whose optional arrays may be NULL) into c; c->b points at c's storage.
static void copy_batch(BatchCopy *c, const Batch *src) {
    size_t n = (size_t)src->B * src->T;
    c->b = (Batch){.B = src->B, .T = src->T, .tokens = c->tokens, .targets = c->targets};
    memcpy(c->tokens, src->tokens, n * sizeof(int));
    memcpy(c->targets, src->targets, n * sizeof(int));
#define COPY_OPT(field, count)                                                                     \
    if (src->field) {                                                                              \
        memcpy(c->field, src->field, (count) * sizeof(*c->field));                                 \
        c->b.field = c->field;                                                                     \
    }
    COPY_OPT(mask, n);
    COPY_OPT(pos, n);
    COPY_OPT(seg, n);
    COPY_OPT(len, (size_t)src->B);
#undef COPY_OPT
}

double supervised_pairs(Supervised *s, const Batch *b) {
    double pairs = 0;
    for (int i = 0; i < b->B / 2; i++) pairs += b->len[2 * i] > 0;
    return pairs;
}

void supervised_examples(const Loader *l, int rows, int64_t *example) {
    for (int r = 0; r < rows; r++) example[r] = loader_example_index(l, r, 0);
}

// Real (non-padding) tokens of a batch.
static long batch_tokens(const Batch *b) {
    if (!b->len) return (long)b->B * b->T;
    long n = 0;
    for (int i = 0; i < b->B; i++) n += b->len[i];
    return n;
}

// ---- setup ------------------------------------------------------------------------------------

// Whether the loader gives two rows per unit (a preference pair; an unpaired example and its
// mismatched row).
static bool two_rows(const Supervised *s) {
    return s->kind->data == DATA_PREFERENCE || s->kind->data == DATA_UNPAIRED;
}

// Rows of one micro-batch: sequences, or two per preference pair or unpaired example.
static int micro_rows(const Supervised *s) {
    int micro = s->sr->stage->micro_batch_size;
    return two_rows(s) ? 2 * micro : micro;
}

// Rows the model forwards at once: an unpaired batch goes through in halves (its examples,
// then their mismatched rows), so it needs room for one.
static int model_rows(const Supervised *s) {
    return s->kind->data == DATA_UNPAIRED ? s->sr->stage->micro_batch_size : micro_rows(s);
}

static Loader *open_loader(Supervised *s, const char *path, int shuffle, const char *purpose) {
    const StageRun *sr = s->sr;
    const Stage *st = sr->stage;
    char err[1024];
    LoaderOptions o = {
        .batch = st->micro_batch_size,
        .T = st->seq_len,
        .rank = sr->run->rank,
        .world = sr->run->world,
        .seed = stage_seed(sr, purpose),
        .shuffle = shuffle,
        .pack = st->packing,
        .vocab_size = s->model->cfg.vocab_size,
        .fingerprint = sr->run->fingerprint,
        .drop_long = 1,
    };
    Loader *l = loader_open(path, s->kind->data, &o, err, sizeof(err));
    if (!l)
        fprintf(stderr, "layercake: stage '%s': %s\n", st->name, err);
    else if (loader_dropped(l) > 0)
        printf("[%s] %s: %lld examples longer than seq_len %d are left out\n", st->name, path,
               (long long)loader_dropped(l), o.T);
    return l;
}

// Refuses sft data with examples no loss can see (train/stages/readouts.h's "trained target").
static int check_trained(const Supervised *s, const Loader *l, const char *path) {
    int64_t first, n = dataset_count_untrained(loader_dataset(l), &first);
    if (n == 0) return 0;
    fprintf(stderr,
            "layercake: stage '%s': %s: %lld of %lld examples have no trained token (the first "
            "is example %lld): every loss mask is 0 after the first token, or the example is one "
            "token long, so the loss cannot see them (hint: re-import with responses that are "
            "not empty)\n",
            s->sr->stage->name, path, (long long)n, (long long)loader_dataset(l)->n,
            (long long)first);
    return 1;
}

static void print_sizes(const Supervised *s) {
    const Stage *st = s->sr->stage;
    const Model *m = s->model;
    int micro = st->micro_batch_size;
    const char *unit = s->kind->data == DATA_PREFERENCE ? "pairs"
                       : s->kind->data == DATA_UNPAIRED ? "examples"
                                                        : "sequences";
    printf("[%s] %s from %s: %.2fM parameters\n", st->name, stage_kind_name(st->kind),
           stage_start_name(s->sr, st->init), (double)m->table.numel / 1e6);
    printf("[%s] global batch %d %s = %d micro-batches of %d x %d process(es) (accumulation %d), "
           "seq_len %d, up to %ld tokens per step; %d steps, %lld steps per epoch\n",
           st->name, st->batch_size, unit, s->accum, micro, s->sr->run->world, s->accum,
           st->seq_len, (long)st->batch_size * st->seq_len * (two_rows(s) ? 2 : 1), st->steps,
           (long long)(loader_steps_per_epoch(s->train) / s->accum));
}

// ---- validation and samples -------------------------------------------------------------------

static void validate(Supervised *s) {
    const Stage *st = s->sr->stage;
    char err[1024];
    if (loader_restore(s->val, &s->val_start, err, sizeof(err)) != 0) LC_DIE("%s", err);
    int64_t n = loader_steps_per_epoch(s->val);
    if (st->val.batches < n) n = st->val.batches;
    if (s->kind->val_begin) s->kind->val_begin(s, n);
    Stats vs;
    stats_reset(&vs);
    Batch b;
    BatchCopy *scratch = &s->micro_batches[0]; // its example array is free between steps
    for (int64_t i = 0; i < n; i++) {
        if (loader_next(s->val, &b) < 0) LC_DIE("%s", loader_error(s->val));
        supervised_examples(s->val, b.B, scratch->example);
        s->kind->micro(s, &b, scratch->example, 0.0, 0, &vs);
    }
    stats_all_reduce(&vs, s->sr->run->comm); // each process scored its share of the split
    metrics_begin(s->lc.metrics, s->lc.step);
    metrics_add_str(s->lc.metrics, "split", "val");
    stats_write(&vs, s->lc.metrics);
    double loss = stats_mean(&vs, "loss");
    if (!two_rows(s)) metrics_add(s->lc.metrics, "ppl", exp(loss));
    metrics_end(s->lc.metrics);
    char extra[128] = "";
    if (s->kind->progress_extra) s->kind->progress_extra(&vs, extra, sizeof(extra));
    progress_print(&s->lc.progress, "[%s] step %lld val loss %.4f%s%s", st->name,
                   (long long)s->lc.step, loss, extra[0] ? "  " : "", extra);
}

// Renders a sample prompt: raw text for pretraining, a user turn + assistant header otherwise.
static void render_prompt(const Supervised *s, const char *text, TokenBuf *out) {
    Tokenizer *tok = s->sr->run->tok;
    if (s->sr->stage->kind == STAGE_PRETRAIN) {
        int *ids = NULL;
        int n = tokenizer_encode(tok, text, strlen(text), 1, &ids);
        tokenbuf_push(out, ids, n, 0);
        free(ids);
        return;
    }
    Chat chat = chat_init(tok);
    ChatMessage msg = {CHAT_USER, text, strlen(text)};
    chat_render(&chat, &msg, 1, out);
    chat_header(&chat, out);
}

static void print_samples(Supervised *s) {
    const SampleConfig *sc = &s->sr->stage->sample;
    Tokenizer *tok = s->sr->run->tok;
    int n = sc->prompts.n > 0 ? sc->prompts.n : 1, maxT = s->model->cfg.max_seq_len;
    for (int i = 0; i < n; i++) {
        const char *text = sc->prompts.n > 0 ? sc->prompts.items[i] : "";
        TokenBuf p = {0};
        render_prompt(s, text, &p);
        if (p.n == 0) {
            int eot = tokenizer_eot(tok);
            tokenbuf_push(&p, &eot, 1, 0);
        }
        int len = (int)(p.n + sc->max_new_tokens < maxT ? p.n + sc->max_new_tokens : maxT);
        if (p.n >= len) {
            tokenbuf_free(&p);
            continue;
        }
        Sampler *smp = sampler_create(s->model, 1, len, 1);
        SampleParams sp = {.temperature = (float)sc->temperature,
                           .top_k = sc->top_k,
                           .top_p = (float)sc->top_p,
                           .stop_token = chat_init(tok).end,
                           .max_new_tokens = len - (int)p.n};
        int *out = lc_malloc(sizeof(int) * (size_t)sp.max_new_tokens), olen, plen = (int)p.n;
        float *lp = lc_malloc(sizeof(float) * (size_t)sp.max_new_tokens);
        sampler_generate(smp, p.ids, plen, &plen, 1, &sp, &s->rng, out, lp, &olen);
        size_t bytes;
        char *txt = tokenizer_decode(tok, out, olen, &bytes);
        progress_print(&s->lc.progress, "[%s] sample at step %lld: %s => %s", s->sr->stage->name,
                       (long long)s->lc.step, text, txt ? txt : "(undecodable)");
        free(txt), free(out), free(lp);
        sampler_free(smp);
        tokenbuf_free(&p);
    }
}

// ---- the step and its hooks
// ----------------------------------------------------------------------

// Reads the step's micro-batches; returns the step's loss weight and counts its real tokens.
static double read_step(Supervised *s, long *tokens) {
    double weight = 0.0;
    for (int i = 0; i < s->accum; i++) {
        Batch b;
        if (loader_next(s->train, &b) < 0) LC_DIE("%s", loader_error(s->train));
        copy_batch(&s->micro_batches[i], &b);
        supervised_examples(s->train, b.B, s->micro_batches[i].example);
        weight += s->kind->weight(s, &s->micro_batches[i].b);
        *tokens += batch_tokens(&b);
    }
    return weight;
}

static void log_step(Supervised *s, int64_t step, const Stats *ts, float lr, float norm,
                     double tokens_per_s) {
    Metrics *m = s->lc.metrics;
    metrics_begin(m, step);
    stats_write(ts, m);
    metrics_add(m, "lr", lr);
    metrics_add(m, "grad_norm", norm);
    metrics_add(m, "tokens_per_s", tokens_per_s);
    metrics_add(m, "elapsed", time_now() - s->t_start);
    metrics_end(m);
    char extra[128] = "";
    if (s->kind->progress_extra) s->kind->progress_extra(ts, extra, sizeof(extra));
    progress_update(&s->lc.progress, step, stats_mean(ts, "loss"), tokens_per_s,
                    extra[0] ? extra : NULL);
}

// A step whose batch has no trained token (every loss mask 0, or only one-token examples) has
// no loss to average: an error naming the data, never a NaN.
static int untrained_batch(const Supervised *s, int64_t step) {
    const Stage *st = s->sr->stage;
    fprintf(stderr,
            "layercake: stage '%s': step %lld: the batch holds no trained token (every loss mask "
            "is 0, or the examples have one token) in %s\n",
            st->name, (long long)step, st->data.train[0] ? st->data.train : "the sampled pairs");
    return 1;
}

static int step_hook(void *ctx, int64_t step) {
    Supervised *s = ctx;
    double t0 = time_now();
    long tokens = 0;
    double weight = read_step(s, &tokens);
    double global[2] = {weight, (double)tokens}; // the whole global batch's loss weight
    Comm *comm = s->sr->run->comm;
    comm->all_reduce_sum_host(comm, global, 2);
    weight = global[0], tokens = (long)global[1];
    if (weight <= 0.0) return untrained_batch(s, step);
    Stats ts;
    stats_reset(&ts);
    if (s->kind->step_begin) s->kind->step_begin(s);
    model_zero_grad(s->model);
    for (int i = 0; i < s->accum; i++) {
        BatchCopy *c = &s->micro_batches[i];
        s->kind->micro(s, &c->b, c->example, weight, 1, &ts);
    }
    stats_all_reduce(&ts, comm);
    if (!lifecycle_finite(&s->lc, "the loss", stats_mean(&ts, "loss"))) return LIFECYCLE_BAD_STEP;
    float lr = schedule_lr(&s->sched, (float)s->sr->stage->optim.lr, step - 1);
    float norm =
        adamw_step(&s->opt, s->model->params_mem, s->model->grads_mem, s->model->weights_mem, lr);
    if (!lifecycle_finite(&s->lc, "the gradient norm", norm)) return LIFECYCLE_BAD_STEP;
    log_step(s, step, &ts, lr, norm, (double)tokens / (time_now() - t0));
    return 0;
}

static void after_step_hook(void *ctx, int64_t step, bool last) {
    Supervised *s = ctx;
    const Stage *st = s->sr->stage;
    if (s->val && (lifecycle_every(st->val.every, step) || last)) validate(s);
    if (lifecycle_every(st->sample.every, step)) print_samples(s);
}

static int models_hook(void *ctx, StateModel *sm, bool final) {
    Supervised *s = ctx;
    sm[0] = (StateModel){.name = "model", .model = s->model, .opt = final ? NULL : &s->opt};
    return 1;
}

// The memory report (train/run/memory.h): the trained model, then the kind's own.
static void report_memory(Supervised *s) {
    StageKind k = s->sr->stage->kind;
    const char *role = k == STAGE_DPO ? "policy" : k == STAGE_REWARD ? "reward model" : "model";
    MemoryPlan plan;
    memory_plan_init(&plan);
    memory_plan_add_model(&plan, role, s->model, &s->opt);
    if (s->kind->memory) s->kind->memory(s, &plan);
    memory_plan_report(&plan, s->sr);
}

static int start_hook(void *ctx) {
    Supervised *s = ctx;
    int rc = s->kind->setup ? s->kind->setup(s) : 0;
    if (!rc) report_memory(s);
    s->t_start = time_now();
    return rc;
}

// ---- setup ------------------------------------------------------------------------------------

static int open_data(Supervised *s) {
    const Stage *st = s->sr->stage;
    const char *train = st->data.train, *val = st->data.val;
    char sampled[2][4200];
    if (st->data.prompts[0]) { // pairs sampled from the start model (reward, dpo)
        if (pairs_sample(s->sr, sampled[0], sampled[1], sizeof(sampled[0]))) return 1;
        train = sampled[0], val = sampled[1];
    }
    s->train = open_loader(s, train, 1, "train");
    if (!s->train || check_trained(s, s->train, train)) return 1;
    if (val[0]) {
        s->val = open_loader(s, val, 0, "val");
        if (!s->val || check_trained(s, s->val, val)) return 1;
        s->val_start = loader_state(s->val);
    }
    return 0;
}

static int setup(Supervised *s) {
    StageRun *sr = s->sr;
    const Stage *st = sr->stage;
    int micro = st->micro_batch_size;
    if (st->batch_size % (micro * sr->run->world) != 0) {
        fprintf(stderr,
                "layercake: stage '%s': batch_size %d is not a multiple of "
                "micro_batch_size %d x %d processes\n",
                st->name, st->batch_size, micro, sr->run->world);
        return 1;
    }
    s->accum = st->batch_size / (micro * sr->run->world);
    s->model = stage_train_model(sr, st->init, s->kind->heads, model_rows(s), st->seq_len);
    if (!s->model) return 1;
    adamw_init_parallel(&s->opt, sr->run->be, &s->model->train_table, stage_adamw_config(st),
                        sr->run->comm, sr->run->recipe->zero == 1);
    s->sched = stage_schedule(st, st->steps);
    s->rng = rng_init(stage_seed(sr, "sample"));
    if (open_data(s)) return 1;
    s->micro_batches = lc_calloc((size_t)s->accum, sizeof(BatchCopy));
    for (int i = 0; i < s->accum; i++) copy_alloc(&s->micro_batches[i], micro_rows(s), st->seq_len);
    s->lc = lifecycle_init(sr, st->steps, &s->rng, s->train);
    print_sizes(s);
    return 0;
}

static void teardown(Supervised *s) {
    if (s->kind->teardown) s->kind->teardown(s);
    for (int i = 0; s->micro_batches && i < s->accum; i++) copy_free(&s->micro_batches[i]);
    free(s->micro_batches);
    loader_free(s->train);
    loader_free(s->val);
    adamw_free(&s->opt);
    model_free(s->model);
}

int supervised_run(StageRun *sr, const SupervisedKind *kind, void *ctx) {
    static const LifecycleHooks hooks = {
        .start = start_hook,
        .step = step_hook,
        .after_step = after_step_hook,
        .models = models_hook,
    };
    Supervised s = {.sr = sr, .kind = kind, .ctx = ctx};
    int rc = setup(&s);
    if (!rc) rc = lifecycle_run(&s.lc, &hooks, &s);
    teardown(&s);
    return rc;
}
