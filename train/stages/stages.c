// train/stages/stages.c: which function runs a stage of each kind.
#include "train/stages/stages.h"
#include <stdbool.h>
#include <stdio.h>

static const StageFn STAGE_FNS[STAGE_KIND_COUNT] = {
    [STAGE_PRETRAIN] = stage_lm, [STAGE_SFT] = stage_lm,    [STAGE_REWARD] = stage_reward,
    [STAGE_DPO] = stage_dpo,     [STAGE_PPO] = stage_rl,    [STAGE_GRPO] = stage_rl,
    [STAGE_RLOO] = stage_rl,     [STAGE_EVAL] = stage_eval,
};

// The kinds that train data-parallel over several processes (docs/distributed.md).
static const bool DATA_PARALLEL[STAGE_KIND_COUNT] = {
    [STAGE_PRETRAIN] = true, [STAGE_SFT] = true,  [STAGE_REWARD] = true, [STAGE_DPO] = true,
    [STAGE_PPO] = true,      [STAGE_GRPO] = true, [STAGE_RLOO] = true,   [STAGE_EVAL] = true};

int stage_run(StageRun *sr) {
    StageKind kind = sr->stage->kind;
    if ((unsigned)kind < STAGE_KIND_COUNT && sr->run->world > 1 && !DATA_PARALLEL[kind]) {
        fprintf(stderr,
                "layercake: stage '%s': kind '%s' does not run over %d processes yet (data "
                "parallelism covers pretrain, sft, reward, dpo, ppo, grpo, rloo and eval; "
                "docs/distributed.md): run this stage as one process (`layercake run RECIPE "
                "--only %s`, without mpirun or srun)\n",
                sr->stage->name, stage_kind_name(kind), sr->run->world, sr->stage->name);
        return 1;
    }
    if ((unsigned)kind < STAGE_KIND_COUNT && STAGE_FNS[kind]) return STAGE_FNS[kind](sr);
    fprintf(stderr, "layercake: stage '%s': kind '%s' is not implemented in this build\n",
            sr->stage->name, stage_kind_name(kind));
    return 1;
}
