// train/stages/stages.c: which function runs a stage of each kind.
#include "train/stages/stages.h"
#include <stdio.h>

static const StageFn STAGE_FNS[STAGE_KIND_COUNT] = {
    [STAGE_PRETRAIN] = stage_lm,
    [STAGE_SFT] = stage_lm,
    [STAGE_REWARD] = stage_reward,
    [STAGE_DPO] = stage_dpo,
    [STAGE_PPO] = stage_rl,
    [STAGE_GRPO] = stage_rl,
    [STAGE_RLOO] = stage_rl,
    [STAGE_EVAL] = stage_eval,
    [STAGE_SELF_INSTRUCT] = stage_self_instruct,
    [STAGE_CRITIQUE_REVISE] = stage_critique_revise,
    [STAGE_LABEL] = stage_label,
    [STAGE_ITERATIVE_DPO] = stage_iterative_dpo,
};

int stage_run(StageRun *sr) {
    StageKind kind = sr->stage->kind;
    if ((unsigned)kind < STAGE_KIND_COUNT && STAGE_FNS[kind]) return STAGE_FNS[kind](sr);
    fprintf(stderr, "layercake: stage '%s': kind '%s' is not implemented in this build\n",
            sr->stage->name, stage_kind_name(kind));
    return 1;
}
