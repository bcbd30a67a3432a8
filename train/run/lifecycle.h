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
//
// Divergence: a step hook checks every quantity that can diverge (loss, gradient norm, reward,
// KL, advantage) with lifecycle_finite before it updates anything, and returns
// LIFECYCLE_BAD_STEP when one is not finite (AdamW itself refuses a non-finite gradient). The
// lifecycle then skips the step (up to the stage's skip_bad_steps, counted in the checkpoint)
// or stops the stage with the step and the quantity named. Before any checkpoint is written
// every model's weights and moments are checked: a non-finite one stops the stage instead, so
// no checkpoint holds a NaN and none rotates a good one away.
#pragma once
#include "common/rng.h"
#include "data/loader.h"
#include "optim/optim.h"
#include "train/run/metrics.h"
#include "train/run/progress.h"
#include "train/run/run.h"
#include "train/run/state.h"
#include <stdbool.h>

#define LIFECYCLE_BAD_STEP 2 // a step hook's return: a quantity was not finite, nothing applied

typedef struct {
    // Optional: after resuming and before the first step (e.g. a frozen reference).
    int (*start)(void *ctx);
    // Runs step `step` (1-based; lifecycle.step still holds step - 1) and logs its metrics.
    // Returns 0, 1 after printing a failure, or LIFECYCLE_BAD_STEP (see lifecycle_finite).
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
    double skipped;                              // bad steps skipped so far (a checkpointed scalar)
    const char *bad_quantity;                    // the step's first non-finite quantity, or NULL
    double bad_value;                            // its value
    bool fault_nan; // LC_FAULT_NAN_AT_STEP: the step's next check reads NaN
} Lifecycle;

// A lifecycle for stage sr running `total` steps, with rng and the cursor of `cursor`
// checkpointed. Add scalars with lifecycle_add_scalar before lifecycle_run.
Lifecycle lifecycle_init(StageRun *sr, int64_t total, Rng *rng, Loader *cursor);
void lifecycle_add_scalar(Lifecycle *lc, const char *name, double *value);

// Runs the stage from its newest intact checkpoint (or from the start) to final.h5. ctx is
// handed to every hook. Returns 0, or 1 after printing why.
int lifecycle_run(Lifecycle *lc, const LifecycleHooks *hooks, void *ctx);

// Whether value, the step's `quantity` ("loss", "gradient norm", ...), is finite. The first
// non-finite one of a step is kept for the message; the hook then returns LIFECYCLE_BAD_STEP.
bool lifecycle_finite(Lifecycle *lc, const char *quantity, double value);

// Whether an interval (every N steps; 0 = never) falls on step.
bool lifecycle_every(int interval, int64_t step);

// The AdamW configuration and the learning-rate schedule over `steps` optimizer steps that a
// stage's optim: and schedule: keys describe.
AdamWConfig stage_adamw_config(const Stage *st);
Schedule stage_schedule(const Stage *st, int steps);
