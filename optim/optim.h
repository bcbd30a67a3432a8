// optim/optim.h: AdamW with decoupled weight decay, global-norm gradient clipping and
// learning-rate schedules. The optimiser works on flat arenas described by a tensor table
// (kernels/tensor.h), so it never needs to know the model.
#pragma once
#include "kernels/kernels.h"
#include "kernels/tensor.h"

typedef struct {
    float lr;           // peak learning rate
    float beta1, beta2; // moment decay rates
    float eps;          // denominator floor
    float weight_decay; // decoupled decay, applied to tensors with decay = true only
    float grad_clip;    // clip the global gradient norm to this; 0 = off
} AdamWConfig;

typedef struct {
    AdamWConfig cfg;
    const Backend *be;
    const TensorTable *table; // the parameter table the moments mirror
    float *m;                 // (table->numel) first moments, device
    float *v;                 // (table->numel) second moments, device
    long step;                // updates taken so far
} AdamW;

void adamw_init(AdamW *opt, const Backend *be, const TensorTable *table, AdamWConfig cfg);
void adamw_free(AdamW *opt);

// One update of params (table->numel) from grads at learning rate lr; weights (table->numel,
// the backend's activation type), when not NULL, receive the updated params (the compute copy
// of a bf16 backend: Model.weights_mem). Clips grads in place first when cfg.grad_clip > 0. Returns
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
