// train/stages/readouts.h: what stages read off a model's forward pass about whole sequences,
// shared by the stages that train on them (reward, dpo), score rollouts with them (ppo, grpo,
// rloo) and measure with them (eval).
//
// Row conventions (docs/datasets.md): a trained target is one with target >= 0 and mask != 0
// (a response token, the end token included). Reward-model rows hold a sequence's inputs
// (prompt + response without its final end token), so the score is read where the
// response's last token sits; rollouts are scored the same way.
#pragma once
#include "model/model.h"
#include <stdbool.h>

// Whether target i of b is trained: target >= 0 and (no mask, or mask != 0).
static inline bool batch_target_counts(const Batch *b, size_t i) {
    return b->targets[i] >= 0 && (!b->mask || b->mask[i] != 0.0f);
}

// The sum of m's per-token log-probs (from its last forward) over row r's trained targets, in
// double, and their count into *ntok (may be NULL).
double sequence_logp(const Model *m, const Batch *b, int r, int *ntok);

// The same for every row: logp (B), ntok (B) (ntok may be NULL).
void sequence_logps(const Model *m, const Batch *b, double *logp, int *ntok);

// out (B) = the scalar head at position len[b]-1 of each row of b (NAN for an empty row).
// b->len must be set. One forward pass of rm.
void reward_scores(Model *rm, const Batch *b, float *out);
