// train/stages/dpo.h: the pieces of the dpo stage that tests drive directly.
#pragma once
#include "model/model.h"
#include "train/objectives/preference.h"
#include "train/run/metrics.h"
#include "train/run/run.h"

// The DPO-family loss of a micro-batch of pairs (rows 2i chosen, 2i+1 rejected) for policy
// and the reference log-probs ref (B) (NULL for reference-free losses), divided by
// pairs_total. With dlogp (B*T scratch) it also runs the policy's backward; with st it adds
// the per-pair statistics. Returns the loss.
double dpo_micro_loss(Model *policy, const Batch *b, const double *ref, const DpoParams *p,
                      double pairs_total, float *dlogp, Stats *st);

// Runs stage sr as a dpo stage whose frozen reference is `reference` (a stage name or
// checkpoint; NULL: the stage's init, as stage_dpo does). iterative_dpo's rounds start from
// the previous round's policy and may keep the stage's first model as their reference.
int dpo_train(StageRun *sr, const char *reference);

// The KTO loss of a micro-batch of unpaired examples (one per row of b; empty rows skipped) for
// policy, the reference log-probs ref (B), the labels desirable (B: 1 desirable, 0 not) and the
// reference point z0 (a constant: no gradient), divided by examples_total. With dlogp (B*T
// scratch) it also runs the policy's backward; with st it adds loss, rewards/desirable,
// rewards/undesirable, kl (z0) and desirable (the share of desirable examples). Returns the loss.
double kto_micro_loss(Model *policy, const Batch *b, const double *ref, const uint8_t *desirable,
                      double z0, const KtoParams *p, double examples_total, float *dlogp,
                      Stats *st);
