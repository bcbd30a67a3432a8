// train/stages/dpo.c: the dpo stage: direct preference optimisation and its family (losses in
// train/objectives/preference.h) on preference pairs. Rows 2i and 2i+1 of a batch are pair i's
// chosen and rejected responses after their shared prompt; a response's log-prob is the sum of the
// per-token log-probs of its targets under the loss mask (the end token included), in fp32
// per token and double over the sequence. With `loss: kto` it trains on unpaired examples
// instead (KTO, the end of this file).
//
// The frozen reference is either live (a second model in inference mode: parameters and one
// layer of activations, no gradients or optimiser state) or cached: its sequence log-probs
// over the training and validation sets computed once, before the first step, kept in
// <stage>/reference.h5 and looked up by example index. Reference-free losses load neither.
#include "train/stages/stages.h"
#include "train/stages/dpo.h"
#include "common/check.h"
#include "common/h5.h"
#include "train/objectives/preference.h"
#include "train/stages/readouts.h"
#include "train/stages/supervised.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double dpo_micro_loss(Model *policy, const Batch *b, const double *ref, const DpoParams *p,
                      double pairs_total, float *dlogp, Stats *st) {
    model_forward(policy, b, 1.0f);
    if (dlogp) memset(dlogp, 0, sizeof(float) * (size_t)b->B * b->T);
    double total = 0.0;
    for (int i = 0; i < b->B / 2; i++) {
        int c = 2 * i, r = 2 * i + 1, nc, nr;
        double pc = sequence_logp(policy, b, c, &nc), pr = sequence_logp(policy, b, r, &nr);
        if (nc == 0 || nr == 0) continue; // an empty row at the end of an epoch
        DpoPairLoss l = dpo_pair_loss(p, pc, pr, ref ? ref[c] : 0, ref ? ref[r] : 0, nc, nr);
        total += l.loss;
        if (st) {
            stats_add(st, "loss", l.loss, 1);
            stats_add(st, "rewards/chosen", l.reward_chosen, 1);
            stats_add(st, "rewards/rejected", l.reward_rejected, 1);
            stats_add(st, "rewards/margins", l.reward_chosen - l.reward_rejected, 1);
            stats_add(st, "rewards/accuracies", l.reward_chosen > l.reward_rejected, 1);
            stats_add(st, "logps/chosen", pc, 1);
            stats_add(st, "logps/rejected", pr, 1);
        }
        if (!dlogp) continue;
        for (int t = 0; t < b->T; t++) {
            size_t ic = (size_t)c * b->T + t, ir = (size_t)r * b->T + t;
            if (batch_target_counts(b, ic)) dlogp[ic] = (float)(l.d_chosen / pairs_total);
            if (batch_target_counts(b, ir)) dlogp[ir] = (float)(l.d_rejected / pairs_total);
        }
    }
    if (dlogp) model_backward(policy, dlogp, NULL, NULL);
    return total / pairs_total;
}

// ---- the reference ------------------------------------------------------------------------------

typedef struct {
    DpoParams params;
    const char *reference; // the frozen reference's weights: a stage name or checkpoint
    KtoParams kto;         // loss kto (params.kind DPO_KTO)
    Model *ref;            // live reference, or NULL
    double *cache[2]; // cached reference log-probs, 2 per example: [0] train, [1] val; (2n) each
                      // (pairs: chosen, rejected; unpaired: the example, its mismatched row)
    int64_t n[2];     // examples of the two datasets
    double *ref_rows; // (rows) reference log-probs of the micro-batch's rows
    float *dlogp;     // (rows*T) objective gradient
    // kto only
    double z0;        // the reference point of the current step (validation: micro-batch)
    double *pol_rows; // (rows) policy log-probs of the mismatched rows
    int *ntok;        // (rows) their trained targets
    uint8_t *labels;  // (rows) 1 where the row's example is desirable
} DpoCtx;

// Rows [first, first + n) of b as a batch of their own.
static Batch rows_view(const Batch *b, int first, int n) {
    size_t at = (size_t)first * b->T;
    Batch v = {.B = n, .T = b->T, .tokens = b->tokens + at, .targets = b->targets + at};
    if (b->mask) v.mask = b->mask + at;
    if (b->pos) v.pos = b->pos + at;
    if (b->seg) v.seg = b->seg + at;
    if (b->len) v.len = b->len + first;
    return v;
}

// The reference log-probs of every example of the loader's dataset, one pass in order: slot
// 2e + k of example e holds row k of its pair, or (unpaired, forwarded a half at a time) k = 0
// the example and k = 1 its mismatched row.
static double *reference_pass(Model *ref, Loader *l, int64_t *n) {
    const Dataset *d = loader_dataset(l);
    int halves = d->kind == DATA_UNPAIRED ? 2 : 1, rows = loader_rows(l) / halves;
    *n = d->n;
    double *out = lc_malloc(sizeof(double) * 2 * (size_t)(d->n > 0 ? d->n : 1));
    for (int64_t i = 0; i < 2 * d->n; i++) out[i] = NAN;
    Batch b;
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        if (loader_next(l, &b) < 0) LC_DIE("%s", loader_error(l));
        for (int h = 0; h < halves; h++) {
            Batch v = rows_view(&b, h * rows, rows);
            model_forward(ref, &v, 1.0f);
            for (int r = 0; r < rows; r++) {
                int64_t e = loader_example_index(l, h * rows + r, 0);
                if (e >= 0)
                    out[2 * e + (halves == 2 ? h : r % 2)] = sequence_logp(ref, &v, r, NULL);
            }
        }
    }
    return out;
}

// Data parallelism: each process computed the examples of its shares (the rest NaN); every
// process gets them all. An example no process saw (left out by the loader) stays NaN.
static void merge_ranks(Comm *comm, double *x, size_t n) {
    if (comm->world == 1) return;
    double *seen = lc_malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        seen[i] = isnan(x[i]) ? 0.0 : 1.0;
        if (isnan(x[i])) x[i] = 0.0;
    }
    comm->all_reduce_sum_host(comm, x, n);
    comm->all_reduce_sum_host(comm, seen, n);
    for (size_t i = 0; i < n; i++)
        if (seen[i] == 0.0) x[i] = NAN;
    free(seen);
}

// Loads <dir>/reference.h5 if it was made for this start point and data; 0 on success.
// Reads the cache if it is intact (sealed) and was made for this start point and data; 0, or
// -1 when it must be computed again.
static int cache_load(DpoCtx *c, const char *path, const char *init, int64_t n0, int64_t n1) {
    char err[1024];
    h5_quiet();
    if (access(path, F_OK) != 0) return -1;
    hid_t f = h5_open_verified(path, err, sizeof(err));
    if (f < 0) return -1;
    char made_from[4096] = "";
    int64_t a = -1, b = -1;
    int ok = h5_read_attr_str(f, "init", made_from, sizeof(made_from)) == 0 &&
             strcmp(made_from, init) == 0 && h5_read_attr_i64(f, "n_train", &a) == 0 &&
             h5_read_attr_i64(f, "n_val", &b) == 0 && a == n0 && b == n1;
    for (int k = 0; k < 2 && ok; k++) {
        c->n[k] = k ? n1 : n0;
        c->cache[k] = lc_malloc(sizeof(double) * 2 * (size_t)(c->n[k] > 0 ? c->n[k] : 1));
        ok = c->n[k] == 0 ||
             h5_read_f64(f, k ? "val" : "train", c->cache[k], 2 * (size_t)c->n[k]) == 0;
    }
    H5Fclose(f);
    return ok ? 0 : -1;
}

// Writes the cache sealed and atomically (built in memory, one checked write: a full disk is
// reported, never half a file); 0, or -1 with a message in err.
static int cache_save(const DpoCtx *c, const char *path, const char *init, char *err,
                      size_t errlen) {
    size_t bytes = 16 * (size_t)(c->n[0] + c->n[1]) + 4096;
    hid_t f = h5_image_create(bytes);
    if (f < 0) return snprintf(err, errlen, "%s: cannot create the file in memory", path), -1;
    int rc = h5_write_attr_str(f, "init", init) | h5_write_attr_i64(f, "n_train", c->n[0]) |
             h5_write_attr_i64(f, "n_val", c->n[1]);
    for (int k = 0; k < 2; k++) {
        hsize_t dims[2] = {(hsize_t)c->n[k], 2};
        if (c->n[k] > 0) rc |= h5_write_f64(f, k ? "val" : "train", 2, dims, c->cache[k]);
    }
    if (rc) {
        H5Fclose(f);
        return snprintf(err, errlen, "%s: cannot write the arrays", path), -1;
    }
    return h5_image_commit(f, path, err, errlen);
}

// The frozen reference: with LoRA and the start point as reference, the policy itself with its
// adapters off (a view: its weights, an inference arena of its own, no second model), else
// the reference's weights loaded (the start point again, or iterative_dpo's first model).
static Model *reference_model(Supervised *s, const DpoCtx *c) {
    const Model *p = s->model;
    if (p->lora.rank == 0 || strcmp(c->reference, s->sr->stage->init) != 0)
        return stage_model(s->sr, c->reference, MODEL_HEAD_LM, MODEL_INFER, p->max_B, p->max_T);
    return model_create_base_view(p, p->max_B, p->max_T);
}

// Cached mode: fills c->cache from <stage>/reference.h5, or computes and saves it.
static int cache_reference(Supervised *s, DpoCtx *c) {
    const Stage *st = s->sr->stage;
    char path[4200], init[4096];
    snprintf(path, sizeof(path), "%s/reference.h5", s->sr->dir);
    run_resolve_model(s->sr->run, c->reference, init, sizeof(init));
    int64_t n0 = loader_dataset(s->train)->n, n1 = s->val ? loader_dataset(s->val)->n : 0;
    if (cache_load(c, path, init, n0, n1) == 0) {
        printf("[%s] reference log-probs from %s\n", st->name, path);
        return 0;
    }
    free(c->cache[0]), free(c->cache[1]);
    c->cache[0] = c->cache[1] = NULL;
    Model *ref = reference_model(s, c);
    if (!ref) return 1;
    // one epoch of the training loader from its start (the same rows and length limits as
    // training; the order does not matter), then back to where training is
    LoaderState keep = loader_state(s->train), start = keep;
    start.epoch = 0, start.step = 0;
    char err[4400];
    if (loader_restore(s->train, &start, err, sizeof(err)) != 0) LC_DIE("%s", err);
    Comm *comm = s->sr->run->comm;
    c->cache[0] = reference_pass(ref, s->train, &c->n[0]);
    merge_ranks(comm, c->cache[0], 2 * (size_t)c->n[0]);
    if (loader_restore(s->train, &keep, err, sizeof(err)) != 0) LC_DIE("%s", err);
    if (s->val) {
        c->cache[1] = reference_pass(ref, s->val, &c->n[1]);
        merge_ranks(comm, c->cache[1], 2 * (size_t)c->n[1]);
        if (loader_restore(s->val, &s->val_start, err, sizeof(err)) != 0) LC_DIE("%s", err);
    }
    model_free(ref);
    if (s->sr->run->rank == 0 && cache_save(c, path, init, err, sizeof(err)) != 0)
        printf("[%s] warning: the reference cache is not kept: %s\n", st->name, err);
    run_agree(s->sr->run, 0); // the file is whole before any process could look for it again
    printf("[%s] reference log-probs of %lld + %lld %s cached in %s\n", st->name,
           (long long)c->n[0], (long long)c->n[1], c->params.kind == DPO_KTO ? "examples" : "pairs",
           path);
    return 0;
}

// ---- the stage
// ------------------------------------------------------------------------------------

// The reference log-probs of the micro-batch's rows, or NULL for reference-free losses.
static const double *reference_rows(Supervised *s, DpoCtx *c, const Batch *b,
                                    const int64_t *example, int train) {
    if (!dpo_needs_reference(c->params.kind)) return NULL;
    if (c->ref) {
        model_forward(c->ref, b, 1.0f);
        sequence_logps(c->ref, b, c->ref_rows, NULL);
        return c->ref_rows;
    }
    const double *cache = c->cache[train ? 0 : 1];
    for (int r = 0; r < b->B; r++)
        c->ref_rows[r] = example[r] >= 0 ? cache[2 * example[r] + (r % 2)] : 0.0;
    return c->ref_rows;
}

static void dpo_micro(Supervised *s, const Batch *b, const int64_t *example, double pairs_total,
                      int train, Stats *st) {
    DpoCtx *c = s->ctx;
    const double *ref = reference_rows(s, c, b, example, train);
    double pairs = supervised_pairs(s, b);
    dpo_micro_loss(s->model, b, ref, &c->params, train ? pairs_total : (pairs > 0 ? pairs : 1),
                   train ? c->dlogp : NULL, st);
}

static void dpo_extra(const Stats *st, char *buf, size_t len) {
    snprintf(buf, len, "acc %.3f  margin %.3f", stats_mean(st, "rewards/accuracies"),
             stats_mean(st, "rewards/margins"));
}

static void kto_warn_ratio(const Supervised *s);

static int dpo_setup(Supervised *s) {
    DpoCtx *c = s->ctx;
    const Stage *st = s->sr->stage;
    size_t rows = (size_t)s->model->max_B;
    c->ref_rows = lc_calloc(rows, sizeof(double));
    c->dlogp = lc_calloc(rows * s->model->max_T, sizeof(float));
    if (c->params.kind == DPO_KTO) {
        c->pol_rows = lc_calloc(rows, sizeof(double));
        c->ntok = lc_calloc(rows, sizeof(int));
        c->labels = lc_calloc(rows, 1);
        kto_warn_ratio(s);
    }
    if (!dpo_needs_reference(c->params.kind)) return 0;
    if (st->reference == REFERENCE_CACHED) return cache_reference(s, c);
    c->ref = reference_model(s, c); // with LoRA: the policy with its adapters off
    return c->ref ? 0 : 1;
}

// The reference's rows of the memory report: the live model (with LoRA a view: activations
// only), or the cached log-probs.
static void dpo_memory(Supervised *s, MemoryPlan *plan) {
    DpoCtx *c = s->ctx;
    if (c->ref)
        memory_plan_add_model(
            plan, c->ref->lora.rank > 0 ? "live reference (adapters off)" : "live reference",
            c->ref, NULL);
    if (c->cache[0] || c->cache[1])
        memory_plan_add(plan, "cached reference", MEM_OTHER,
                        2 * sizeof(double) * (size_t)(c->n[0] + c->n[1]));
}

static void dpo_teardown(Supervised *s) {
    DpoCtx *c = s->ctx;
    model_free(c->ref);
    free(c->cache[0]), free(c->cache[1]), free(c->ref_rows), free(c->dlogp);
    free(c->pol_rows), free(c->ntok), free(c->labels);
}

// ---- KTO: unpaired examples ---------------------------------------------------------------------
//
// A micro-batch of unpaired data has 2n rows (data/loader.h): rows [0, n) hold the examples and
// rows [n, 2n) their mismatched rows (the prompt with another example's completion). The model
// runs each half on its own; only the examples' half is differentiated. The reference point z0
// (train/objectives/preference.h) is estimated once per training step, from the mismatched rows
// of all its micro-batches on every process, before the first backward (kto_step_begin); it is a
// constant of the step's loss, which is then the exact mean over the step's examples however
// they are split into micro-batches and processes. A validation pass estimates it over all its
// batches on every process (kto_val_begin).

double kto_micro_loss(Model *policy, const Batch *b, const double *ref, const uint8_t *desirable,
                      double z0, const KtoParams *p, double examples_total, float *dlogp,
                      Stats *st) {
    static const char *const names[] = {"loss", "rewards/desirable", "rewards/undesirable", "kl",
                                        "desirable"};
    model_forward(policy, b, 1.0f);
    if (dlogp) memset(dlogp, 0, sizeof(float) * (size_t)b->B * b->T);
    // every name in a fixed order, whatever the rows hold (stats_all_reduce needs the same
    // names on every process)
    for (size_t i = 0; st && i < sizeof(names) / sizeof(names[0]); i++)
        stats_add(st, names[i], 0, 0);
    double total = 0.0;
    for (int r = 0; r < b->B; r++) {
        int n;
        double lp = sequence_logp(policy, b, r, &n);
        if (n == 0) continue; // an empty row at the end of an epoch
        KtoLoss l = kto_example_loss(p, lp, ref ? ref[r] : 0.0, z0, desirable[r]);
        total += l.loss;
        if (st) {
            stats_add(st, "loss", l.loss, 1);
            stats_add(st, "rewards/desirable", l.reward, desirable[r] ? 1 : 0);
            stats_add(st, "rewards/undesirable", l.reward, desirable[r] ? 0 : 1);
            stats_add(st, "kl", z0, 1);
            stats_add(st, "desirable", desirable[r], 1);
        }
        if (!dlogp) continue;
        for (int t = 0; t < b->T; t++) {
            size_t i = (size_t)r * b->T + t;
            if (batch_target_counts(b, i)) dlogp[i] = (float)(l.d_logp / examples_total);
        }
    }
    if (dlogp) model_backward(policy, dlogp, NULL, NULL);
    return total / examples_total;
}

// Examples of an unpaired micro-batch: rows of its first half with a trained target.
static double kto_examples(Supervised *s, const Batch *b) {
    (void)s;
    double n = 0;
    for (int r = 0; r < b->B / 2; r++)
        for (int t = 0; t < b->T; t++)
            if (batch_target_counts(b, (size_t)r * b->T + t)) {
                n++;
                break;
            }
    return n;
}

// The reference log-probs of half h (0: the examples, 1: their mismatched rows) of an unpaired
// micro-batch, whose rows are v, into c->ref_rows.
static const double *kto_reference(DpoCtx *c, const Batch *v, const int64_t *example, int h,
                                   int train) {
    if (c->ref) {
        model_forward(c->ref, v, 1.0f);
        sequence_logps(c->ref, v, c->ref_rows, NULL);
        return c->ref_rows;
    }
    const double *cache = c->cache[train ? 0 : 1];
    for (int r = 0; r < v->B; r++) {
        int64_t e = example[h * v->B + r];
        c->ref_rows[r] = e >= 0 ? cache[2 * e + h] : 0.0;
    }
    return c->ref_rows;
}

// Adds to kl[0] the sum of (policy - reference) log-probs over b's mismatched rows that have a
// trained target, and their count to kl[1].
static void kto_kl(Supervised *s, DpoCtx *c, const Batch *b, const int64_t *example, int train,
                   double kl[2]) {
    int n = b->B / 2;
    Batch v = rows_view(b, n, n);
    model_forward(s->model, &v, 1.0f);
    sequence_logps(s->model, &v, c->pol_rows, c->ntok);
    const double *ref = kto_reference(c, &v, example, 1, train);
    for (int r = 0; r < n; r++)
        if (c->ntok[r] > 0) {
            kl[0] += c->pol_rows[r] - ref[r];
            kl[1] += 1;
        }
}

// z0 of the training step: every micro-batch of every process.
static void kto_step_begin(Supervised *s) {
    DpoCtx *c = s->ctx;
    double kl[2] = {0.0, 0.0};
    for (int i = 0; i < s->accum; i++)
        kto_kl(s, c, &s->micro_batches[i].b, s->micro_batches[i].example, 1, kl);
    Comm *comm = s->sr->run->comm;
    comm->all_reduce_sum_host(comm, kl, 2);
    c->z0 = kto_reference_point(kl[0], kl[1]);
}

// z0 of a validation pass: its batches on every process, in one pass before the scoring one.
static void kto_val_begin(Supervised *s, int64_t batches) {
    DpoCtx *c = s->ctx;
    double kl[2] = {0.0, 0.0};
    int64_t *example = s->micro_batches[0].example; // free between steps
    Batch b;
    for (int64_t i = 0; i < batches; i++) {
        if (loader_next(s->val, &b) < 0) LC_DIE("%s", loader_error(s->val));
        supervised_examples(s->val, b.B, example);
        kto_kl(s, c, &b, example, 0, kl);
    }
    Comm *comm = s->sr->run->comm;
    comm->all_reduce_sum_host(comm, kl, 2);
    c->z0 = kto_reference_point(kl[0], kl[1]);
    char err[1024];
    if (loader_restore(s->val, &s->val_start, err, sizeof(err)) != 0) LC_DIE("%s", err);
}

static void kto_micro(Supervised *s, const Batch *b, const int64_t *example, double total,
                      int train, Stats *st) {
    DpoCtx *c = s->ctx;
    if (!train) { // validation: the mean over this micro-batch's examples (stats weigh them)
        total = kto_examples(s, b);
        if (total <= 0) total = 1;
    }
    int n = b->B / 2;
    const Dataset *d = loader_dataset(train ? s->train : s->val);
    for (int r = 0; r < n; r++) c->labels[r] = example[r] >= 0 ? d->label[example[r]] : 0;
    Batch v = rows_view(b, 0, n);
    const double *ref = kto_reference(c, &v, example, 0, train);
    kto_micro_loss(s->model, &v, ref, c->labels, c->z0, &c->kto, total, train ? c->dlogp : NULL,
                   st);
}

static void kto_extra(const Stats *st, char *buf, size_t len) {
    snprintf(buf, len, "kl %.3f  desirable %.3f  undesirable %.3f", stats_mean(st, "kl"),
             stats_mean(st, "rewards/desirable"), stats_mean(st, "rewards/undesirable"));
}

// TRL's advice (after the KTO paper): lambda_D n_D / (lambda_U n_U) in [1, 4/3].
static void kto_warn_ratio(const Supervised *s) {
    const Dataset *d = loader_dataset(s->train);
    const KtoParams *p = &((const DpoCtx *)s->ctx)->kto;
    int64_t nd = 0;
    for (int64_t e = 0; e < d->n; e++) nd += d->label[e];
    int64_t nu = d->n - nd;
    double ratio =
        nu > 0 ? p->desirable_weight * (double)nd / (p->undesirable_weight * (double)nu) : INFINITY;
    if (s->sr->run->rank != 0 || (ratio >= 1.0 && ratio <= 4.0 / 3.0)) return;
    printf("[%s] warning: desirable_weight x desirable / (undesirable_weight x undesirable) = "
           "%g x %lld / (%g x %lld) = %.3f is outside [1, 4/3], the range the KTO paper advises; "
           "set desirable_weight and undesirable_weight to bring it in\n",
           s->sr->stage->name, p->desirable_weight, (long long)nd, p->undesirable_weight,
           (long long)nu, ratio);
}

int dpo_train(StageRun *sr, const char *reference) {
    const Stage *st = sr->stage;
    DpoCtx ctx = {.reference = reference ? reference : st->init,
                  .params = {.kind = st->loss,
                             .beta = st->beta,
                             .label_smoothing = st->label_smoothing,
                             .simpo_gamma = st->simpo_gamma,
                             .orpo_lambda = st->orpo_lambda,
                             .rpo_alpha = st->rpo_alpha},
                  .kto = {.beta = st->beta,
                          .desirable_weight = st->desirable_weight,
                          .undesirable_weight = st->undesirable_weight}};
    if (st->loss == DPO_KTO) {
        SupervisedKind kto = {
            .data = DATA_UNPAIRED,
            .heads = MODEL_HEAD_LM,
            .setup = dpo_setup,
            .teardown = dpo_teardown,
            .weight = kto_examples,
            .micro = kto_micro,
            .step_begin = kto_step_begin,
            .val_begin = kto_val_begin,
            .progress_extra = kto_extra,
            .memory = dpo_memory,
        };
        return supervised_run(sr, &kto, &ctx);
    }
    SupervisedKind kind = {
        .data = DATA_PREFERENCE,
        .heads = MODEL_HEAD_LM,
        .setup = dpo_setup,
        .teardown = dpo_teardown,
        .weight = supervised_pairs,
        .micro = dpo_micro,
        .progress_extra = dpo_extra,
        .memory = dpo_memory,
    };
    return supervised_run(sr, &kind, &ctx);
}

int stage_dpo(StageRun *sr) {
    return dpo_train(sr, NULL);
}
