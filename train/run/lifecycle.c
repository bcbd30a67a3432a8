// train/run/lifecycle.c: the stage lifecycle (see train/run/lifecycle.h).
#include "train/run/lifecycle.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int save(const Lifecycle *lc, const LifecycleHooks *h, void *ctx, const char *path,
                bool complete) {
    StateModel sm[STATE_MAX_MODELS];
    int n = h->models(ctx, sm, complete);
    TrainState ts = state_template(lc, complete);
    char err[1024];
    if (state_save(path, sm, n, &ts, err, sizeof(err)) == 0) return 0;
    fprintf(stderr, "layercake: stage '%s': checkpoint failed: %s\n", lc->sr->stage->name, err);
    return 1;
}

// Loads one checkpoint into the stage's models, loader and lifecycle; 0, or -1 with err set.
static int restore(Lifecycle *lc, const LifecycleHooks *h, void *ctx, const char *path, char *err,
                   size_t errlen) {
    StateModel sm[STATE_MAX_MODELS];
    int n = h->models(ctx, sm, false);
    TrainState ts = state_template(lc, false);
    if (state_load(path, sm, n, &ts, err, errlen) != 0) return -1;
    if (ts.tokenizer != lc->sr->run->fingerprint) {
        snprintf(err, errlen, "%s: made with another tokenizer", path);
        return -1;
    }
    LoaderState ls;
    memcpy(&ls, ts.cursor, sizeof(ls));
    if (loader_restore(lc->cursor, &ls, err, errlen) != 0) return -1;
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

// Fault injection for the resume tests: LC_FAULT_KILL_AT_STEP=N makes the process SIGKILL
// itself right after step N (and any checkpoint due then), like a job killed by a scheduler.
static int64_t fault_kill_step(void) {
    const char *v = getenv("LC_FAULT_KILL_AT_STEP");
    return v ? strtoll(v, NULL, 10) : -1;
}

static int periodic_checkpoint(Lifecycle *lc, const LifecycleHooks *h, void *ctx) {
    const CheckpointConfig *cc = &lc->sr->stage->checkpoint;
    char path[4200];
    state_periodic_path(path, sizeof(path), lc->sr->dir, lc->step);
    if (save(lc, h, ctx, path, false) != 0) return 1;
    state_prune(lc->sr->dir, cc->keep);
    return 0;
}

static int loop(Lifecycle *lc, const LifecycleHooks *h, void *ctx) {
    const Stage *st = lc->sr->stage;
    int64_t kill_at = fault_kill_step();
    while (lc->step < lc->total) {
        int64_t step = lc->step + 1;
        if (h->step(ctx, step) != 0) return 1;
        lc->step = step;
        bool last = step == lc->total;
        if (h->after_step) h->after_step(ctx, step, last);
        if (lifecycle_every(st->checkpoint.every, step) && !last &&
            periodic_checkpoint(lc, h, ctx) != 0)
            return 1;
        if (step == kill_at) raise(SIGKILL);
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
    bool resumed = resume(lc, h, ctx);
    lc->metrics = metrics_open(lc->sr->dir, resumed ? lc->step : -1, err, sizeof(err));
    if (!lc->metrics) {
        fprintf(stderr, "layercake: stage '%s': %s\n", st->name, err);
        return 1;
    }
    int rc = h->start ? h->start(ctx) : 0;
    if (!rc) {
        progress_init(&lc->progress, st->name, lc->total, lc->step, st->log.every);
        rc = loop(lc, h, ctx);
    }
    metrics_close(lc->metrics);
    lc->metrics = NULL;
    return rc;
}
