// train/run/memory.h: the memory report every stage prints at its start (docs/report.md, "The
// memory report at each stage's start"): the bytes each role of the stage (the policy, a frozen
// reference, the sampler, ...) holds, in five columns: weights, gradients, optimiser, activations,
// KV cache (and "other", shown only when a stage adds to it), with a total per role and per column.
// Sizes are read through the model's and the optimiser's own functions (model_weight_bytes,
// model_grad_bytes, model_act_bytes, the AdamW slice), so the report follows them when the
// model's storage changes. Everything is per process: a ZeRO-1 optimiser counts its slice.
#pragma once
#include "model/model.h"
#include "optim/optim.h"
#include "train/run/run.h"
#include <stddef.h>
#include <stdio.h>

typedef enum {
    MEM_WEIGHTS,     // parameters and their compute copy (a view's are its source's: 0)
    MEM_GRADIENTS,   // gradient arena
    MEM_OPTIMISER,   // AdamW's two moments over this process's slice
    MEM_ACTIVATIONS, // activation arena (with its backward scratch)
    MEM_KV_CACHE,    // the sampler's key/value cache
    MEM_OTHER,       // other buffers of the stage (e.g. cached reference log-probs)
    MEM_COLUMNS
} MemColumn;

#define MEMORY_MAX_ROWS 16
#define MEMORY_ROLE_LEN 32

typedef struct {
    char role[MEMORY_ROLE_LEN];
    size_t bytes[MEM_COLUMNS];
} MemoryRow;

typedef struct {
    int n;
    MemoryRow rows[MEMORY_MAX_ROWS]; // in the order the roles were first added
} MemoryPlan;

void memory_plan_init(MemoryPlan *p);

// Adds bytes to the role's column, creating the row (after the others) on the role's first use.
void memory_plan_add(MemoryPlan *p, const char *role, MemColumn col, size_t bytes);

// Adds a model's arenas to the role: weights (model_weight_bytes: 0 for a view of another
// model, whose weights its source's row counts), gradients, activations, and opt's moments
// when opt is not NULL.
void memory_plan_add_model(MemoryPlan *p, const char *role, const Model *m, const AdamW *opt);

// Bytes of AdamW's moments on this process: two fp32 values per element of its slice.
size_t memory_adamw_bytes(const AdamW *opt);

// The row of a role, or NULL.
const MemoryRow *memory_plan_row(const MemoryPlan *p, const char *role);
size_t memory_row_total(const MemoryRow *r);
size_t memory_plan_column_total(const MemoryPlan *p, MemColumn col);
size_t memory_plan_total(const MemoryPlan *p);

// "weights", "gradients", "optimiser", "activations", "KV cache", "other".
const char *memory_column_name(MemColumn col);

// The table, one line per role then the total row, every line prefixed "[stage] ", in MB
// (1e6 bytes) with two decimals; an empty cell is "-".
void memory_plan_print(const MemoryPlan *p, const char *stage, FILE *f);

// The plan as JSON (bytes): {"stage", "unit": "bytes", "roles": [{"role", "weights", ...,
// "total"}], "total": {...}}. Returns 0, or -1 with a message in err.
int memory_plan_write_json(const MemoryPlan *p, const char *stage, const char *path, char *err,
                           size_t errlen);

// What a stage calls at its start: prints the table to stdout and writes <stage dir>/memory.json
// (rank 0; a failed write is a warning, not an error).
void memory_plan_report(const MemoryPlan *p, const StageRun *sr);
