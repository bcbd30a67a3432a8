// train/stages/reward.c: the reward stage: a reward model (trunk + scalar head) trained on
// preference pairs with the Bradley-Terry loss (train/objectives/preference.h), optionally with a
// margin and a reward-centering term. Rows 2i and 2i+1 of a batch are pair i's chosen and rejected.
#include "train/stages/stages.h"
#include "common/check.h"
#include "train/objectives/preference.h"
#include "train/stages/readouts.h"
#include "train/stages/supervised.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *scores;  // (rows) per-row rewards of the current micro-batch
    float *dvalues; // (rows*T) gradient of the step's loss w.r.t. every value
} RewardCtx;

static void reward_micro(Supervised *s, const Batch *b, const int64_t *example, double pairs_total,
                         int train, Stats *st) {
    RewardCtx *c = s->ctx;
    const Stage *stg = s->sr->stage;
    reward_scores(s->model, b, c->scores);
    if (train) memset(c->dvalues, 0, sizeof(float) * (size_t)b->B * b->T);
    for (int i = 0; i < b->B / 2; i++) {
        int ch = 2 * i, rj = 2 * i + 1;
        if (b->len[ch] == 0) continue;
        double rc = c->scores[ch], rr = c->scores[rj];
        PairLoss pl = bradley_terry_loss(rc, rr, stg->margin, stg->center_coef);
        stats_add(st, "loss", pl.loss, 1.0);
        stats_add(st, "accuracy", rc > rr ? 1.0 : 0.0, 1.0);
        stats_add(st, "margin", rc - rr, 1.0);
        stats_add(st, "rewards/chosen", rc, 1.0);
        stats_add(st, "rewards/rejected", rr, 1.0);
        stats_add_dist(st, "rewards", rc, 1.0);
        stats_add_dist(st, "rewards", rr, 1.0);
        if (!train) continue;
        c->dvalues[(size_t)ch * b->T + b->len[ch] - 1] = (float)(pl.d_chosen / pairs_total);
        c->dvalues[(size_t)rj * b->T + b->len[rj] - 1] = (float)(pl.d_rejected / pairs_total);
    }
    if (train) model_backward(s->model, NULL, NULL, c->dvalues);
}

static void reward_extra(const Stats *st, char *buf, size_t len) {
    snprintf(buf, len, "acc %.3f  margin %.3f", stats_mean(st, "accuracy"),
             stats_mean(st, "margin"));
}

static int reward_setup(Supervised *s) {
    RewardCtx *c = s->ctx;
    size_t rows = (size_t)s->model->max_B, T = (size_t)s->model->max_T;
    c->scores = lc_calloc(rows, sizeof(float));
    c->dvalues = lc_calloc(rows * T, sizeof(float));
    return 0;
}

static void reward_teardown(Supervised *s) {
    RewardCtx *c = s->ctx;
    free(c->scores);
    free(c->dvalues);
}

int stage_reward(StageRun *sr) {
    RewardCtx ctx = {0};
    SupervisedKind kind = {
        .data = DATA_PREFERENCE,
        .heads = MODEL_HEAD_SCALAR,
        .setup = reward_setup,
        .teardown = reward_teardown,
        .weight = supervised_pairs,
        .micro = reward_micro,
        .progress_extra = reward_extra,
    };
    return supervised_run(sr, &kind, &ctx);
}
