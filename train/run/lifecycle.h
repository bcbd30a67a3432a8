// train/run/lifecycle.h: the one lifecycle of a training stage, shared by every stage kind
// that updates weights (the supervised stages and the RL stages, and any added later):
//
//   resume      the newest intact periodic checkpoint: models, optimiser moments, step, RNG,
//               the data cursor and named scalars (a damaged one is reported and the
//               previous one tried; none: start at step 0)
//   metrics     <stage>/metrics.jsonl, truncated to the resumed step
//   start       the stage's optional hook (e.g. a frozen reference model)
//   loop        for step = resumed+1 .. total: the stage's step, its after-step hook
//               (validation, samples), a periodic checkpoint every checkpoint.every steps
//               (keeping checkpoint.keep), and the fault-injection hook for the resume tests
//   final       <stage>/final.h5 with the models but no optimiser state, marked complete
//
// A "step" is an optimizer step for the supervised stages and an iteration (rollout + update)
// for the RL ones. Every function here returns 0 on success and 1 after printing what went
// wrong (the stage's name and the cause): one failure convention for every stage.
#pragma once
#include "common/rng.h"
#include "data/loader.h"
#include "optim/optim.h"
#include "train/run/metrics.h"
#include "train/run/progress.h"
#include "train/run/run.h"
#include "train/run/state.h"
#include <stdbool.h>

typedef struct {
    // Optional: after resuming and before the first step (e.g. a frozen reference).
    int (*start)(void *ctx);
    // Runs step `step` (1-based; lifecycle.step still holds step - 1) and logs its metrics.
    int (*step)(void *ctx, int64_t step);
    // Optional: after step `step`; last is true after the final one (validation, samples).
    void (*after_step)(void *ctx, int64_t step, bool last);
    // The models a checkpoint holds into sm (at most STATE_MAX_MODELS), with their
    // optimisers unless final; returns how many.
    int (*models)(void *ctx, StateModel *sm, bool final);
} LifecycleHooks;

typedef struct {
    StageRun *sr;
    const char *unit; // what a step is called in messages: "step" (default) or "iteration"
    int64_t total;    // steps the stage runs
    int64_t step;     // steps done (restored by resume)
    Rng *rng;         // the stage's random stream, checkpointed
    Loader *cursor;   // the loader whose position is checkpointed
    int n_scalars;    // named scalars checkpointed with the state (e.g. the KL coefficient)
    const char *scalar_names[STATE_MAX_SCALARS]; // static strings
    double *scalars[STATE_MAX_SCALARS];          // where each lives in the stage
    Metrics *metrics;                            // open while the loop runs
    Progress progress;                           // the live line
} Lifecycle;

// A lifecycle for stage sr running `total` steps, with rng and the cursor of `cursor`
// checkpointed. Add scalars with lifecycle_add_scalar before lifecycle_run.
Lifecycle lifecycle_init(StageRun *sr, int64_t total, Rng *rng, Loader *cursor);
void lifecycle_add_scalar(Lifecycle *lc, const char *name, double *value);

// Runs the stage from its newest intact checkpoint (or from the start) to final.h5. ctx is
// handed to every hook. Returns 0, or 1 after printing why.
int lifecycle_run(Lifecycle *lc, const LifecycleHooks *hooks, void *ctx);

// Whether an interval (every N steps; 0 = never) falls on step.
bool lifecycle_every(int interval, int64_t step);

// The AdamW configuration and the learning-rate schedule over `steps` optimizer steps that a
// stage's optim: and schedule: keys describe.
AdamWConfig stage_adamw_config(const Stage *st);
Schedule stage_schedule(const Stage *st, int steps);
