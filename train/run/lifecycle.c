// train/run/lifecycle.c: the stage lifecycle (see train/run/lifecycle.h).
#include "train/run/lifecycle.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(sizeof(LoaderState) <= sizeof(int64_t) * STATE_MAX_CURSOR,
               "the loader cursor must fit a checkpoint's cursor array");

#define CURSOR_WORDS ((int)(sizeof(LoaderState) / sizeof(int64_t)))

Lifecycle lifecycle_init(StageRun *sr, int64_t total, Rng *rng, Loader *cursor) {
    return (Lifecycle){.sr = sr, .unit = "step", .total = total, .rng = rng, .cursor = cursor};
}

void lifecycle_add_scalar(Lifecycle *lc, const char *name, double *value) {
    if (lc->n_scalars == STATE_MAX_SCALARS) {
        fprintf(stderr, "layercake: internal error: more than %d checkpointed scalars\n",
                STATE_MAX_SCALARS);
        abort();
    }
    lc->scalar_names[lc->n_scalars] = name;
    lc->scalars[lc->n_scalars++] = value;
}

bool lifecycle_finite(Lifecycle *lc, const char *quantity, double value) {
    if (lc->fault_nan) { // the divergence tests' fault injection
        lc->fault_nan = false;
        value = NAN;
    }
    if (isfinite(value)) return true;
    if (!lc->bad_quantity) lc->bad_quantity = quantity, lc->bad_value = value;
    return false;
}

bool lifecycle_every(int interval, int64_t step) {
    return interval > 0 && step % interval == 0;
}

AdamWConfig stage_adamw_config(const Stage *st) {
    return (AdamWConfig){.lr = (float)st->optim.lr,
                         .beta1 = (float)st->optim.betas[0],
                         .beta2 = (float)st->optim.betas[1],
                         .eps = (float)st->optim.eps,
                         .weight_decay = (float)st->optim.weight_decay,
                         .grad_clip = (float)st->optim.grad_clip};
}

Schedule stage_schedule(const Stage *st, int steps) {
    return (Schedule){.kind = st->schedule.kind,
                      .warmup_steps = st->schedule.warmup_steps,
                      .total_steps = steps,
                      .min_lr_ratio = (float)st->schedule.min_lr_ratio};
}

// ---- checkpoints ------------------------------------------------------------------------------

// The state a checkpoint holds besides the models; scalars only named (resume reads them).
static TrainState state_template(const Lifecycle *lc, bool complete) {
    const Run *run = lc->sr->run;
    TrainState ts = {.step = lc->step,
                     .rng = lc->rng->state,
                     .complete = complete,
                     .tokenizer = run->fingerprint,
                     .recipe = run->recipe_text,
                     .tokenizer_path = run->recipe->tokenizer,
                     .n_cursor = CURSOR_WORDS,
                     .n_scalars = lc->n_scalars};
    for (int i = 0; i < lc->n_scalars; i++) {
        ts.scalar_names[i] = lc->scalar_names[i];
        ts.scalars[i] = *lc->scalars[i];
    }
    LoaderState ls = loader_state(lc->cursor);
    memcpy(ts.cursor, &ls, sizeof(ls));
    return ts;
}

// Whether every model's weights and optimiser moments are finite (a sum of squares is finite
// exactly when every element is: |x| < 3.4e38 squares to < 1.2e77, far below double's range).
static bool models_finite(const StateModel *sm, int n, const char **which) {
    for (int i = 0; i < n; i++) {
        const Model *m = sm[i].model;
        const AdamW *o = sm[i].opt;
        bool ok = isfinite(m->be->sum_squares(m->params_mem, m->train_table.numel));
        if (ok && o) // this process's slice of the moments (all of them unless ZeRO-1)
            ok = isfinite(m->be->sum_squares(o->m, o->end - o->begin)) &&
                 isfinite(m->be->sum_squares(o->v, o->end - o->begin));
        if (!ok) {
            *which = sm[i].name;
            return false;
        }
    }
    return true;
}

// Under ZeRO-1 every process first writes its shard of the moments (state_save_shards); once
// all have, rank 0 writes the checkpoint itself (the weights, the cursor every rank shares, the
// number of shards), whose atomic rename marks the step's checkpoint whole. Every process learns
// whether it was written.
static int save(const Lifecycle *lc, const LifecycleHooks *h, void *ctx, const char *path,
                bool complete) {
    const Run *run = lc->sr->run;
    StateModel sm[STATE_MAX_MODELS];
    int n = h->models(ctx, sm, complete);
    const char *which = NULL;
    int rc = 0;
    if (!models_finite(sm, n, &which)) {
        fprintf(stderr,
                "layercake: stage '%s': %s %lld: the weights of '%s' are not finite; %s not "
                "written, the earlier checkpoints are kept (hint: lower optim.lr or "
                "optim.grad_clip)\n",
                lc->sr->stage->name, lc->unit, (long long)lc->step, which, path);
        rc = 1;
    }
    if (run_agree(run, rc)) return 1;
    char err[1024];
    if (state_save_shards(path, sm, n, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake: stage '%s': rank %d: checkpoint failed: %s\n",
                lc->sr->stage->name, run->rank, err);
        rc = 1;
    }
    if (run_agree(run, rc)) return 1;
    TrainState ts = state_template(lc, complete);
    if (run->rank == 0 && state_save(path, sm, n, &ts, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake: stage '%s': checkpoint failed: %s\n", lc->sr->stage->name, err);
        rc = 1;
    }
    return run_agree(run, rc);
}

// Loads one checkpoint into the stage's models, loader and lifecycle; 0, or -1 with err set.
static int restore(Lifecycle *lc, const LifecycleHooks *h, void *ctx, const char *path, char *err,
                   size_t errlen) {
    StateModel sm[STATE_MAX_MODELS];
    int n = h->models(ctx, sm, false);
    TrainState ts = state_template(lc, false);
    // the state alone first: a checkpoint this run cannot continue from (another tokenizer,
    // another data stream) is refused before it overwrites a model's weights
    if (state_load(path, sm, 0, &ts, err, errlen) != 0) return -1;
    if (ts.tokenizer != lc->sr->run->fingerprint) {
        snprintf(err, errlen, "%s: made with another tokenizer", path);
        return -1;
    }
    LoaderState ls;
    memcpy(&ls, ts.cursor, sizeof(ls));
    if (loader_restore(lc->cursor, &ls, err, errlen) != 0) return -1;
    if (state_load(path, sm, n, &ts, err, errlen) != 0) return -1;
    lc->step = ts.step;
    lc->rng->state = ts.rng;
    for (int i = 0; i < lc->n_scalars; i++) *lc->scalars[i] = ts.scalars[i];
    return 0;
}

// Restores the newest intact periodic checkpoint; returns whether one was.
static bool resume(Lifecycle *lc, const LifecycleHooks *h, void *ctx) {
    char *paths[64], err[1024];
    int n = state_list_periodic(lc->sr->dir, paths, 64);
    bool done = false;
    for (int i = 0; i < n && !done; i++) {
        done = restore(lc, h, ctx, paths[i], err, sizeof(err)) == 0;
        if (done)
            printf("[%s] resuming from %s (%s %lld)\n", lc->sr->stage->name, paths[i], lc->unit,
                   (long long)lc->step);
        else
            printf("[%s] warning: %s; trying the previous checkpoint\n", lc->sr->stage->name, err);
    }
    for (int i = 0; i < n; i++) free(paths[i]);
    return done;
}

// ---- the loop ---------------------------------------------------------------------------------

// Fault injection for the tests: LC_FAULT_KILL_AT_STEP=N makes the process SIGKILL itself
// right after step N (and any checkpoint due then), like a job killed by a scheduler;
// LC_FAULT_NAN_AT_STEP=N makes the first quantity step N checks read as NaN, like a
// divergence whose weights are still good; LC_FAULT_HANG_AT_STEP=N makes it stop forever after
// step N, like a process stuck outside any collective. LC_FAULT_RANK=R limits them to rank R of
// a data-parallel run (default: every rank).
static int64_t fault_step(const Lifecycle *lc, const char *name) {
    const char *v = getenv(name), *r = getenv("LC_FAULT_RANK");
    if (r && strtol(r, NULL, 10) != lc->sr->run->rank) return -1;
    return v ? strtoll(v, NULL, 10) : -1;
}

static int periodic_checkpoint(Lifecycle *lc, const LifecycleHooks *h, void *ctx) {
    const CheckpointConfig *cc = &lc->sr->stage->checkpoint;
    char path[4200];
    state_periodic_path(path, sizeof(path), lc->sr->dir, lc->step);
    if (save(lc, h, ctx, path, false) != 0) return 1;
    if (lc->sr->run->rank == 0) state_prune(lc->sr->dir, cc->keep);
    return 0;
}

// A value as printed in messages: NaN, +Inf or -Inf (printf's "-nan" says nothing more).
static const char *nonfinite_name(double v) {
    return isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
}

// A metrics.jsonl write that failed (a full disk): the stage stops rather than train on with
// a log that lies. Returns whether it did, after printing why.
static bool metrics_failed(const Lifecycle *lc) {
    char err[1024];
    if (metrics_check(lc->metrics, err, sizeof(err)) == 0) return false;
    fprintf(stderr, "layercake: stage '%s': %s\n", lc->sr->stage->name, err);
    return true;
}

// A step whose hook found a non-finite quantity: skipped (a metrics row says so) while the
// stage's skip_bad_steps allows, else the stage stops. Returns 0 to go on, 1 to stop.
static int bad_step(Lifecycle *lc, int64_t step) {
    const Stage *st = lc->sr->stage;
    const char *what = lc->bad_quantity ? lc->bad_quantity : "a quantity";
    if (lc->skipped < st->skip_bad_steps) {
        lc->skipped++;
        progress_print(&lc->progress, "[%s] %s %lld: %s is %s; skipped (%.0f of %d)", st->name,
                       lc->unit, (long long)step, what, nonfinite_name(lc->bad_value), lc->skipped,
                       st->skip_bad_steps);
        metrics_begin(lc->metrics, step);
        metrics_add(lc->metrics, "skipped", 1.0);
        metrics_end(lc->metrics);
        return 0;
    }
    progress_done(&lc->progress);
    fprintf(stderr,
            "layercake: stage '%s': %s %lld: %s is %s: training diverged; stopping. The newest "
            "checkpoint in %s (if any) holds the last good state and `run` resumes from it "
            "(hint: lower optim.lr, set optim.grad_clip, or allow skip_bad_steps)\n",
            st->name, lc->unit, (long long)step, what, nonfinite_name(lc->bad_value), lc->sr->dir);
    return 1;
}

static int loop(Lifecycle *lc, const LifecycleHooks *h, void *ctx) {
    const Stage *st = lc->sr->stage;
    int64_t kill_at = fault_step(lc, "LC_FAULT_KILL_AT_STEP"),
            nan_at = fault_step(lc, "LC_FAULT_NAN_AT_STEP"),
            hang_at = fault_step(lc, "LC_FAULT_HANG_AT_STEP");
    while (lc->step < lc->total) {
        int64_t step = lc->step + 1;
        lc->bad_quantity = NULL;
        lc->fault_nan = step == nan_at;
        int rc = h->step(ctx, step);
        if (rc == LIFECYCLE_BAD_STEP) rc = bad_step(lc, step);
        if (run_agree(lc->sr->run, rc)) return 1;
        lc->step = step;
        bool last = step == lc->total;
        if (h->after_step) h->after_step(ctx, step, last);
        if (run_agree(lc->sr->run, metrics_failed(lc))) return 1;
        if (lifecycle_every(st->checkpoint.every, step) && !last &&
            periodic_checkpoint(lc, h, ctx) != 0)
            return 1;
        if (step == kill_at) raise(SIGKILL);
        while (step == hang_at) pause();
    }
    progress_done(&lc->progress);
    char final[4200];
    snprintf(final, sizeof(final), "%s/final.h5", lc->sr->dir);
    if (save(lc, h, ctx, final, true) != 0) return 1;
    printf("[%s] done: %s\n", st->name, final);
    return 0;
}

int lifecycle_run(Lifecycle *lc, const LifecycleHooks *h, void *ctx) {
    const Stage *st = lc->sr->stage;
    char err[1024];
    lifecycle_add_scalar(lc, "skipped_steps", &lc->skipped); // here: lc is in its final place
    bool resumed = resume(lc, h, ctx);
    if (run_agree(lc->sr->run, 0)) return 1; // every rank has read before rank 0 writes
    if (lc->sr->run->rank == 0)
        lc->metrics = metrics_open(lc->sr->dir, resumed ? lc->step : -1, err, sizeof(err));
    else
        lc->metrics = metrics_discard(); // rank 0's rows are the run's
    if (run_agree(lc->sr->run, !lc->metrics)) {
        if (!lc->metrics) fprintf(stderr, "layercake: stage '%s': %s\n", st->name, err);
        metrics_close(lc->metrics);
        return 1;
    }
    int rc = h->start ? h->start(ctx) : 0;
    if (!rc) {
        progress_init(&lc->progress, st->name, lc->total, lc->step, st->log.every);
        rc = loop(lc, h, ctx);
    }
    if (rc == 0 && metrics_failed(lc)) rc = 1;
    metrics_close(lc->metrics);
    lc->metrics = NULL;
    return rc;
}
