// train/stages/pairs.h: preference pairs made from a model's own samples. For each prompt of a
// stage's data.prompts, the stage's start model samples rollout.group_size responses; the
// best and the worst by the gold reward become chosen and rejected when the best is correct
// (other prompts are left out), and a share label_noise of pairs have their labels swapped, like
// raters who disagree. This is how InstructGPT's labellers made comparisons: on the outputs of
// the model being aligned. Reward and dpo stages given data.prompts train on these pairs.
#pragma once
#include "train/run/run.h"

// Writes (or, when both exist, reuses) <stage>/pairs.h5 and <stage>/pairs-val.h5 (a tenth of
// the prompts, by a hash of their index) and returns their paths. 0, or 1 after printing.
int pairs_sample(StageRun *sr, char *train_path, char *val_path, size_t len);
