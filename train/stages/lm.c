// train/stages/lm.c: the pretrain and sft stages: next-token cross-entropy on a token stream
// (pretrain) or on the response tokens of instruction examples (sft, the loss mask; the end
// token is a response token and is trained).
#include "train/stages/stages.h"
#include "train/stages/supervised.h"

// Masked target tokens of a micro-batch: the cross-entropy's normaliser.
static double lm_weight(Supervised *s, const Batch *b) {
    double w = 0.0;
    for (int i = 0; i < b->B * b->T; i++)
        if (b->targets[i] >= 0) w += b->mask ? b->mask[i] : 1.0f;
    return w;
}

static void lm_micro(Supervised *s, const Batch *b, const int64_t *example, double weight_total,
                     int train, Stats *st) {
    float loss = model_forward(s->model, b, 1.0f);
    stats_add(st, "loss", loss, model_mask_sum(s->model));
    if (train) model_backward_ce(s->model, weight_total);
}

int stage_lm(StageRun *sr) {
    SupervisedKind kind = {
        .data = sr->stage->kind == STAGE_PRETRAIN ? DATA_LM : DATA_SFT,
        .heads = MODEL_HEAD_LM,
        .weight = lm_weight,
        .micro = lm_micro,
    };
    return supervised_run(sr, &kind, NULL);
}
