// tests/test_rl_model.c: the PPO objective through the whole model at a tiny configuration:
// the clipped policy loss on per-token log-probs (some tokens in the clipped region), the
// clipped value loss on a scalar head sharing the trunk, and an entropy bonus, all as the ppo
// stage builds them from train/objectives/rl.h, against central finite differences of the same
// loss.
#include "model/model.h"
#include "tests/testutil.h"
#include "train/objectives/rl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NB 3
#define NT 10
static const ModelConfig CFG = GPT2_CONFIG(2, 2, 16, 40, 16);
static const double CLIP = 0.2, VCLIP = 0.2, VCOEF = 0.5, ENT = 0.01;

typedef struct {
    Model *m;
    Batch b;
    int tokens[NB * NT], targets[NB * NT];
    float mask[NB * NT], old_logp[NB * NT], adv[NB * NT], ret[NB * NT], old_v[NB * NT];
    double n; // response tokens
} Ppo;

// The PPO objective of the current weights; with grads != 0 also its per-token gradients.
static double ppo_loss(Ppo *p, float *dlogp, float *dent, float *dv, int *clipped) {
    model_forward(p->m, &p->b, 1.0f);
    double loss = 0.0;
    for (int i = 0; i < NB * NT; i++) {
        if (dlogp) dlogp[i] = dent[i] = dv[i] = 0.0f;
        if (!p->mask[i]) continue;
        PolicyLoss pl = rl_policy_loss(p->m->host_logp[i], p->old_logp[i], p->adv[i], CLIP);
        ValueLoss vl = rl_value_loss(p->m->host_values[i], p->old_v[i], p->ret[i], VCLIP);
        loss += (pl.loss + VCOEF * vl.loss - ENT * p->m->host_entropy[i]) / p->n;
        if (!dlogp) continue;
        dlogp[i] = (float)(pl.dlogp / p->n);
        dv[i] = (float)(VCOEF * vl.dvalue / p->n);
        dent[i] = (float)(-ENT / p->n);
        *clipped += pl.clipped + vl.clipped;
    }
    return loss;
}

static double fd_loss(void *ctx) {
    return ppo_loss(ctx, NULL, NULL, NULL, NULL);
}

START_TEST(test_ppo_gradient_through_model) {
    Ppo p = {.m = model_create(backend_cpu(), CFG, MODEL_HEAD_LM | MODEL_HEAD_SCALAR, MODEL_TRAIN,
                               NB, NT)};
    model_init_weights(p.m, 3);
    Rng r = rng_init(5);
    int plen[NB] = {3, 4, 2}, len[NB] = {9, 10, 6};
    for (int i = 0; i < NB * NT; i++) p.tokens[i] = (int)rng_below(&r, CFG.vocab_size);
    for (int i = 0; i < NB * NT; i++) {
        int row = i / NT, t = i % NT;
        p.targets[i] = t + 1 < len[row] ? p.tokens[i + 1] : -1;
        p.mask[i] = t >= plen[row] - 1 && t + 1 < len[row];
        p.n += p.mask[i];
    }
    p.b = (Batch){.B = NB, .T = NT, .tokens = p.tokens, .targets = p.targets, .mask = p.mask};
    // the rollout's log-probs and values: today's, moved so that some ratios and values sit
    // well inside the clip range and others well outside it (never near its edges, where a
    // finite difference would straddle the kink)
    model_forward(p.m, &p.b, 1.0f);
    for (int i = 0; i < NB * NT; i++) {
        double side = rng_uniform(&r) < 0.5 ? -1.0 : 1.0, far = rng_uniform(&r) < 0.5;
        p.old_logp[i] = p.m->host_logp[i] + (float)(side * (far ? 1.0 : 0.02));
        p.old_v[i] = p.m->host_values[i] + (float)(-side * (far ? 1.0 : 0.02));
        p.adv[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
        p.ret[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
    }
    float dlogp[NB * NT], dent[NB * NT], dv[NB * NT];
    int clipped = 0;
    model_zero_grad(p.m);
    ppo_loss(&p, dlogp, dent, dv, &clipped);
    ck_assert_msg(clipped > 0 && clipped < 2 * p.n,
                  "the example must mix clipped and unclipped "
                  "tokens (%d)",
                  clipped);
    model_backward(p.m, dlogp, dent, dv);
    float *grads = malloc(model_param_bytes(p.m));
    memcpy(grads, p.m->grads_mem, model_param_bytes(p.m));
    for (int i = 0; i < p.m->table.count; i++) {
        const TensorInfo *ti = &p.m->table.info[i];
        // tolerance 1e-2: the fp32 noise of ~20 summed exponentiated per-token terms reaches
        // 5e-3 of the smaller tensors' gradients at this step (smaller steps are noisier,
        // larger ones reach the clip kinks); the per-token losses are checked exactly in
        // tests/test_rl.c and the model's backward against PyTorch in tests/test_parity.c
        grad_check(ti->name, p.m->params_mem + ti->offset, ti->numel, grads + ti->offset, fd_loss,
                   &p, 5e-3f, 1e-2, 30);
    }
    free(grads);
    model_free(p.m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rl_model");
    TCase *tc = tcase_create("ppo");
    tcase_add_test(tc, test_ppo_gradient_through_model);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
