// optim/optim.h: AdamW with decoupled weight decay, global-norm gradient clipping and
// learning-rate schedules. The optimiser works on flat arenas described by a tensor table
// (kernels/tensor.h), so it never needs to know the model.
#pragma once
#include "kernels/collective.h"
#include "kernels/kernels.h"
#include "kernels/tensor.h"
#include <stdbool.h>

typedef struct {
    float lr;           // peak learning rate
    float beta1, beta2; // moment decay rates
    float eps;          // denominator floor
    float weight_decay; // decoupled decay, applied to tensors with decay = true only
    float grad_clip;    // clip the global gradient norm to this; 0 = off
} AdamWConfig;

// Data parallelism (docs/distributed.md). With a communicator of several processes the
// optimiser reduces the gradients itself: ZeRO-0 all-reduces them and every rank updates every
// weight; ZeRO-1 reduce-scatters them, each rank updates its slice [begin, end) of the master
// weights (comm_slice_begin) and holds only that slice of the moments, then the weights are
// all-gathered. Both give every rank the same weights.
typedef struct {
    AdamWConfig cfg;
    const Backend *be;
    const TensorTable *table; // the parameter table the moments mirror
    Comm *comm;               // the run's processes; NULL (or world 1): this process alone
    bool zero1;               // shard the moments and the update over comm
    size_t begin, end;        // the slice of the table this rank updates ([0, numel) unsharded)
    float *m;                 // (end - begin) first moments, device
    float *v;                 // (end - begin) second moments, device
    long step;                // updates taken so far
} AdamW;

void adamw_init(AdamW *opt, const Backend *be, const TensorTable *table, AdamWConfig cfg);
// adamw_init over comm's processes: ZeRO-1 when zero1 (and comm has several), else ZeRO-0.
void adamw_init_parallel(AdamW *opt, const Backend *be, const TensorTable *table, AdamWConfig cfg,
                         Comm *comm, bool zero1);
void adamw_free(AdamW *opt);

// One update of params (table->numel) from grads at learning rate lr; weights (table->numel,
// the backend's activation type), when not NULL, receive the updated params (the compute copy
// of a bf16 backend: Model.weights_mem). With a communicator of several processes the
// gradients are first summed over them (all-reduced, or reduce-scattered under ZeRO-1: grads
// then holds the sum only on this rank's slice). Clips grads in place first when cfg.grad_clip
// > 0, by the norm of the summed gradient. Returns
// the global gradient norm before clipping. A norm that is not finite (NaN or Inf gradients) leaves
// params, moments and the step count untouched: the caller sees it and stops or skips the step, and
// the weights never take a NaN.
float adamw_step(AdamW *opt, float *params, float *grads, Act *weights, float lr);

// Global L2 norm of grads (table->numel).
float grad_global_norm(const Backend *be, const float *grads, size_t n);

typedef enum { SCHEDULE_CONSTANT, SCHEDULE_COSINE, SCHEDULE_LINEAR } ScheduleKind;

typedef struct {
    ScheduleKind kind;
    int warmup_steps;   // linear warmup from lr/warmup_steps to lr over these steps
    int total_steps;    // decay ends here
    float min_lr_ratio; // the floor the decay reaches, as a fraction of lr
} Schedule;

// Learning rate for update number step (0-based) at peak lr.
float schedule_lr(const Schedule *s, float lr, long step);
