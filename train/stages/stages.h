// train/stages/stages.h: the stage kinds. Each runs one stage of a recipe to completion (or
// resumes it) and returns 0 when its final.h5 is written, nonzero after printing what went
// wrong. stage_run picks the one for the stage's kind; `layercake run` hands it to run_stages.
#pragma once
#include "train/run/run.h"

int stage_run(StageRun *sr); // dispatches on sr->stage->kind

int stage_lm(StageRun *sr);              // pretrain and sft (train/stages/lm.c)
int stage_reward(StageRun *sr);          // reward (train/stages/reward.c)
int stage_dpo(StageRun *sr);             // dpo and its family (train/stages/dpo.c)
int stage_rl(StageRun *sr);              // ppo, grpo, rloo (train/stages/rl.c)
int stage_eval(StageRun *sr);            // eval (train/stages/eval.c)
int stage_self_instruct(StageRun *sr);   // self_instruct (train/stages/self_instruct.c)
int stage_critique_revise(StageRun *sr); // critique_revise (train/stages/critique_revise.c)
int stage_label(StageRun *sr);           // label (train/stages/label.c)
int stage_iterative_dpo(StageRun *sr);   // iterative_dpo (train/stages/iterdpo.c)
