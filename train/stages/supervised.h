// train/stages/supervised.h: the training loop of the stages that learn from a fixed dataset
// (pretrain, sft, reward, dpo). One optimizer step takes batch_size rows (pairs for
// preference data, examples for unpaired data) as batch_size / micro_batch_size micro-batches
// whose gradients accumulate; the step's loss is the exact mean over all of them (each
// micro-batch is weighted by its share of the step's loss weight: masked tokens, pairs or
// examples). The loop owns checkpoints, exact
// resume, validation, sample generations, metrics and progress through the stage lifecycle
// (train/run/lifecycle.h); a stage kind supplies the loss through a SupervisedKind.
#pragma once
#include "data/loader.h"
#include "optim/optim.h"
#include "train/run/lifecycle.h"
#include "train/run/memory.h"

typedef struct Supervised Supervised;

typedef struct {
    DataKind data; // the dataset kind the stage trains on
    int heads;     // MODEL_HEAD_* of the trained model
    // Optional: after the model exists and before the first step (e.g. a frozen reference).
    int (*setup)(Supervised *s);
    void (*teardown)(Supervised *s);
    // The micro-batch's share of the loss normalisation (masked tokens, pairs).
    double (*weight)(Supervised *s, const Batch *b);
    // Forward (and, when train, backward with the step's total weight) of one micro-batch
    // whose rows hold dataset examples example[row] (-1 for an empty row); adds the statistics
    // it reports, weighted by its weight, to st.
    void (*micro)(Supervised *s, const Batch *b, const int64_t *example, double weight_total,
                  int train, Stats *st);
    // Optional: once per training step, after the step's micro-batches are read
    // (s->micro_batches) and before the first micro: a statistic of the whole step the loss
    // needs (KTO's reference point).
    void (*step_begin)(Supervised *s);
    // Optional: the same for a validation pass, before the first of its `batches` batches of
    // s->val, which is at s->val_start and must be left there.
    void (*val_begin)(Supervised *s, int64_t batches);
    // Optional: a few words for the progress line from the step's statistics.
    void (*progress_extra)(const Stats *st, char *buf, size_t len);
    // Optional: after setup, the memory the kind's own models and buffers hold (a reference).
    void (*memory)(Supervised *s, MemoryPlan *plan);
} SupervisedKind;

// A copy of one micro-batch (loaders reuse their arrays on the next call).
typedef struct {
    Batch b;
    int *tokens, *targets, *pos, *seg, *len; // (rows*T) or (rows) storage behind b
    float *mask;                             // (rows*T)
    int64_t *example;                        // (rows) dataset index of each row's example
} BatchCopy;

struct Supervised {
    StageRun *sr;
    const SupervisedKind *kind;
    Model *model;             // the trained model (unpaired data: micro rows, one half at a time)
    AdamW opt;                // its optimiser
    Schedule sched;           // learning rate per step
    Loader *train;            // training batches (micro-batch rows each)
    Loader *val;              // validation batches, or NULL
    LoaderState val_start;    // the validation loader rewinds here before each validation
    int accum;                // micro-batches per step
    BatchCopy *micro_batches; // (accum) loader batches: 2 rows per unit for preference, unpaired
    Rng rng;                  // the stage's random stream (sampling)
    Lifecycle lc;             // resume, checkpoints, metrics, progress; lc.step = steps done
    double t_start;           // when the first step of this process began (metric "elapsed")
    void *ctx;                // the kind's own state
};

// Pairs in a preference micro-batch (rows 2i, 2i+1; the last batch of an epoch may hold empty
// rows): the loss normaliser of the reward and dpo stages.
double supervised_pairs(Supervised *s, const Batch *b);

// Dataset indices of the rows of the loader's current batch into example (rows).
void supervised_examples(const Loader *l, int rows, int64_t *example);

// Runs a supervised stage to completion (or resumes it). Returns 0 on success.
int supervised_run(StageRun *sr, const SupervisedKind *kind, void *ctx);
