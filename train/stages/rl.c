// train/stages/rl.c: reinforcement learning from a reward: PPO with a critic (Schulman et al.
// 2017, as applied to language models by Ziegler et al. 2019 and InstructGPT), and the
// critic-free GRPO (Shao et al. 2024) and RLOO (Ahmadian et al. 2024). One iteration:
//   1. rollout  rollout.batch prompts, group_size samples each, from the policy with the KV
//               cache (temperature, top-k/p, a stop token, max_new_tokens);
//   2. score    the reward model's score at the last response token, or a gold reward
//               function on the decoded text; minus missing_eos_penalty when no stop token;
//   3. prepare  one no-gradient forward each for the policy's log-probs (at the sampling
//               temperature), the reference's, and (PPO) the value model's estimates; per-token
//               KL; rewards, then GAE (PPO) or group-relative advantages (GRPO, RLOO);
//   4. update   `epochs` passes over the responses in `minibatches` shuffled minibatches: the
//               clipped policy objective, (PPO) the clipped value loss, an optional entropy
//               bonus and (kl.in_reward false) a k3 KL loss term; early stop on approximate KL.
// All per-token arrays are (R, T) over the full sequences (prompt + response); the mask marks
// the targets that are response tokens. The math lives in train/objectives/rl.h.
#include "train/stages/stages.h"
#include "common/check.h"
#include "common/timer.h"
#include "data/chat.h"
#include "data/loader.h"
#include "data/synth.h"
#include "model/sample.h"
#include "optim/optim.h"
#include "train/run/metrics.h"
#include "train/run/progress.h"
#include "train/stages/readouts.h"
#include "train/objectives/rl.h"
#include "train/stages/rl.h"
#include "train/run/state.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(LoaderState) <= sizeof(int64_t) * STATE_MAX_CURSOR,
               "the loader cursor must fit a checkpoint's cursor array");

// ---- setup --------------------------------------------------------------------------------------

static void sizes(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    rl->P = st->rollout.batch;
    rl->G = st->rollout.group_size;
    rl->R = rl->P * rl->G;
    rl->T = st->seq_len ? st->seq_len : rl->sr->run->recipe->model.max_seq_len;
    rl->max_prompt = rl->T - st->rollout.max_new_tokens;
    rl->mb = rl->R / st->minibatches;
    rl->micro = st->micro_batch_size ? st->micro_batch_size : rl->mb;
}

static void alloc_buffers(RlRun *rl) {
    size_t RT = (size_t)rl->R * rl->T, R = (size_t)rl->R;
    int maxnew = rl->sr->stage->rollout.max_new_tokens;
    rl->tokens = lc_calloc(RT, sizeof(int));
    rl->targets = lc_calloc(RT, sizeof(int));
    rl->mask = lc_calloc(RT, sizeof(float));
    rl->len = lc_calloc(R, sizeof(int));
    rl->plen = lc_calloc(R, sizeof(int));
    rl->rlen = lc_calloc(R, sizeof(int));
    rl->ended = lc_calloc(R, sizeof(int));
    rl->prompts = lc_calloc(R * (size_t)rl->max_prompt, sizeof(int));
    rl->out = lc_calloc(R * (size_t)maxnew, sizeof(int));
    rl->out_logp = lc_calloc(R * (size_t)maxnew, sizeof(float));
    rl->scores = lc_calloc(R, sizeof(float));
    rl->correct = lc_calloc(R, sizeof(float));
    rl->seq_adv = lc_calloc(R, sizeof(float));
    float **per_token[] = {&rl->old_logp, &rl->ref_logp, &rl->old_values, &rl->kl,
                           &rl->rewards,  &rl->adv,      &rl->ret,        &rl->entropy,
                           &rl->dlogp,    &rl->dent,     &rl->dvalues};
    for (size_t i = 0; i < sizeof(per_token) / sizeof(*per_token); i++)
        *per_token[i] = lc_calloc(RT, sizeof(float));
    rl->order = lc_calloc(R, sizeof(int));
    size_t mt = (size_t)rl->micro * rl->T;
    rl->mb_tokens = lc_calloc(mt, sizeof(int));
    rl->mb_targets = lc_calloc(mt, sizeof(int));
    rl->mb_mask = lc_calloc(mt, sizeof(float));
}

static void free_buffers(RlRun *rl) {
    void *p[] = {rl->tokens,     rl->targets,    rl->mask,    rl->len,      rl->plen,
                 rl->rlen,       rl->ended,      rl->prompts, rl->out,      rl->out_logp,
                 rl->scores,     rl->correct,    rl->seq_adv, rl->old_logp, rl->ref_logp,
                 rl->old_values, rl->kl,         rl->rewards, rl->adv,      rl->ret,
                 rl->entropy,    rl->dlogp,      rl->dent,    rl->dvalues,  rl->order,
                 rl->mb_tokens,  rl->mb_targets, rl->mb_mask};
    for (size_t i = 0; i < sizeof(p) / sizeof(*p); i++) free(p[i]);
}

static AdamWConfig adamw_config(const Stage *st) {
    return (AdamWConfig){(float)st->optim.lr,           (float)st->optim.betas[0],
                         (float)st->optim.betas[1],     (float)st->optim.eps,
                         (float)st->optim.weight_decay, (float)st->optim.grad_clip};
}

static void print_model(const RlRun *rl, const char *role, const GPT2 *m, int trained) {
    printf("[%s] %-9s %6.2fM params: params %.1f MB, grads %.1f MB, AdamW %.1f MB, "
           "activations %.1f MB%s\n",
           rl->sr->stage->name, role, (double)m->table.numel / 1e6, gpt2_param_bytes(m) / 1e6,
           gpt2_grad_bytes(m) / 1e6, trained ? 2 * gpt2_param_bytes(m) / 1e6 : 0.0,
           gpt2_act_bytes(m) / 1e6, trained ? "" : " (frozen)");
}

// The value model: a separate trunk + scalar head started from the reward model (or, without
// one, from the policy's start), or a scalar head on the policy's own trunk.
static int make_value(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    if (rl->kind != STAGE_PPO || st->value.init == VALUE_INIT_POLICY) return 0;
    const char *from = st->reward_model[0] ? st->reward_model : st->init;
    rl->value = stage_model(rl->sr, from, GPT2_HEAD_SCALAR, GPT2_TRAIN, rl->micro, rl->T);
    if (!rl->value) return 1;
    rl->value_view = gpt2_create_view(rl->value, GPT2_INFER, rl->R, rl->T);
    adamw_init(&rl->value_opt, rl->sr->run->be, &rl->value->table, adamw_config(st));
    return 0;
}

static int make_models(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    int value_head = rl->kind == STAGE_PPO && st->value.init == VALUE_INIT_POLICY;
    int heads = GPT2_HEAD_LM | (value_head ? GPT2_HEAD_SCALAR : 0);
    rl->policy = stage_model(rl->sr, st->init, heads, GPT2_TRAIN, rl->micro, rl->T);
    rl->ref = stage_model(rl->sr, st->init, GPT2_HEAD_LM, GPT2_INFER, rl->R, rl->T);
    if (!rl->policy || !rl->ref) return 1;
    rl->policy_view = gpt2_create_view(rl->policy, GPT2_INFER, rl->R, rl->T);
    adamw_init(&rl->opt, rl->sr->run->be, &rl->policy->table, adamw_config(st));
    if (st->reward_model[0]) {
        // heads 0: the file's own, so a checkpoint without a trained scalar head is refused
        rl->rm = stage_model(rl->sr, st->reward_model, 0, GPT2_INFER, rl->R, rl->T);
        if (!rl->rm) return 1;
        if (!(rl->rm->heads & GPT2_HEAD_SCALAR)) {
            fprintf(stderr, "layercake: stage '%s': reward_model '%s' has no scalar head\n",
                    st->name, st->reward_model);
            return 1;
        }
    }
    if (make_value(rl)) return 1;
    rl->sampler = sampler_create(rl->policy, rl->R, rl->T, 1);
    print_model(rl, "policy", rl->policy, 1);
    print_model(rl, "reference", rl->ref, 0);
    if (rl->value) print_model(rl, "value", rl->value, 1);
    if (rl->rm) print_model(rl, "reward", rl->rm, 0);
    printf("[%s] %-9s %6.1f MB of KV cache and activations\n", st->name, "sampler",
           sampler_bytes(rl->sampler) / 1e6);
    return 0;
}

static int open_prompts(RlRun *rl) {
    const StageRun *sr = rl->sr;
    char err[1024];
    LoaderOptions o = {.batch = rl->P,
                       .T = rl->max_prompt,
                       .rank = sr->run->rank,
                       .world = sr->run->world,
                       .seed = stage_seed(sr, "prompts"),
                       .shuffle = 1,
                       .vocab_size = rl->policy->cfg.vocab_size,
                       .fingerprint = sr->run->fingerprint,
                       .drop_long = 1};
    rl->prompts_loader = loader_open(sr->stage->data.prompts, DATA_PROMPT, &o, err, sizeof(err));
    if (!rl->prompts_loader) {
        fprintf(stderr, "layercake: stage '%s': %s\n", sr->stage->name, err);
        return 1;
    }
    return 0;
}

static int find_gold(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    if (!st->gold_reward[0]) return 0;
    rl->gold = synth_task_find(st->gold_reward);
    if (rl->gold) return 0;
    fprintf(stderr, "layercake: stage '%s': gold_reward '%s' is not a built-in task (tasks: %s)\n",
            st->name, st->gold_reward, synth_task_names());
    return 1;
}

// ---- rollout and scoring ----------------------------------------------------------------------

// The token that ends a response: the chat template's end of turn when prompts end with its
// assistant header, the end-of-text token otherwise.
static int stop_token(const RlRun *rl, const int *prompt, int n) {
    Chat chat = chat_init(rl->sr->run->tok);
    if (chat.roles && n > 0 && prompt[n - 1] == chat.role_id[CHAT_ASSISTANT]) return chat.end;
    return tokenizer_eot(rl->sr->run->tok);
}

// Fills the R rows of prompts (each prompt of the batch repeated group_size times).
static int next_prompts(RlRun *rl) {
    Batch b;
    if (loader_next(rl->prompts_loader, &b) < 0) {
        fprintf(stderr, "layercake: %s\n", loader_error(rl->prompts_loader));
        return 1;
    }
    for (int p = 0; p < rl->P; p++)
        for (int g = 0; g < rl->G; g++) {
            int r = p * rl->G + g, n = b.len[p] > 0 ? b.len[p] : b.len[0]; // refill empty rows
            const int *src = b.tokens + (size_t)(b.len[p] > 0 ? p : 0) * b.T;
            memcpy(rl->prompts + (size_t)r * rl->max_prompt, src, sizeof(int) * (size_t)n);
            rl->plen[r] = n;
        }
    return 0;
}

static void rollout(RlRun *rl) {
    const RolloutConfig *ro = &rl->sr->stage->rollout;
    SampleParams sp = {(float)ro->temperature, ro->top_k, (float)ro->top_p,
                       stop_token(rl, rl->prompts, rl->plen[0]), ro->max_new_tokens};
    rl->stop = sp.stop_token;
    rl->rollout_tokens = sampler_generate(rl->sampler, rl->prompts, rl->max_prompt, rl->plen, rl->R,
                                          &sp, &rl->rng, rl->out, rl->out_logp, rl->rlen);
    // the training rows: prompt + response, targets one ahead, the mask on response targets
    memset(rl->tokens, 0, sizeof(int) * (size_t)rl->R * rl->T);
    memset(rl->mask, 0, sizeof(float) * (size_t)rl->R * rl->T);
    for (int r = 0; r < rl->R; r++) {
        int *row = rl->tokens + (size_t)r * rl->T, pl = rl->plen[r], n = rl->rlen[r];
        memcpy(row, rl->prompts + (size_t)r * rl->max_prompt, sizeof(int) * (size_t)pl);
        memcpy(row + pl, rl->out + (size_t)r * ro->max_new_tokens, sizeof(int) * (size_t)n);
        rl->len[r] = pl + n;
        rl->ended[r] = n > 0 && row[pl + n - 1] == rl->stop;
        for (int t = 0; t < rl->T; t++) {
            rl->targets[(size_t)r * rl->T + t] = t + 1 < rl->len[r] ? row[t + 1] : -1;
            rl->mask[(size_t)r * rl->T + t] = t >= pl - 1 && t + 1 < rl->len[r];
        }
    }
}

// Gold scores on decoded text (the response with its stop token, as the task defines).
static void score_gold(RlRun *rl) {
    Tokenizer *tok = rl->sr->run->tok;
    for (int r = 0; r < rl->R; r++) {
        size_t pn, rn;
        const int *row = rl->tokens + (size_t)r * rl->T;
        char *p = tokenizer_decode(tok, row, rl->plen[r], &pn);
        char *s = tokenizer_decode(tok, row + rl->plen[r], rl->rlen[r], &rn);
        LC_ASSERT(p && s);
        rl->scores[r] = (float)synth_gold_reward(rl->gold, p, pn, s, rn);
        rl->correct[r] = synth_correct(rl->gold, p, pn, s, rn);
        free(p), free(s);
    }
}

// Reward-model scores: rows hold prompt + response without a final stop token
// (train/stages/readouts.h).
static void score_rm(RlRun *rl) {
    int len[rl->R];
    for (int r = 0; r < rl->R; r++) len[r] = rl->len[r] - rl->ended[r];
    Batch b = {.B = rl->R, .T = rl->T, .tokens = rl->tokens, .len = len};
    reward_scores(rl->rm, &b, rl->scores);
    for (int r = 0; r < rl->R; r++) rl->correct[r] = NAN;
}

static void score(RlRun *rl) {
    if (rl->gold)
        score_gold(rl);
    else
        score_rm(rl);
    double penalty = rl->sr->stage->missing_eos_penalty;
    for (int r = 0; r < rl->R; r++)
        if (!rl->ended[r]) rl->scores[r] -= (float)penalty;
}

// ---- advantages -------------------------------------------------------------------------------

static Batch full_batch(RlRun *rl) {
    return (Batch){.B = rl->R,
                   .T = rl->T,
                   .tokens = rl->tokens,
                   .targets = rl->targets,
                   .mask = rl->mask,
                   .len = rl->len};
}

// Old log-probs, entropies, reference log-probs and values: one forward each.
static void forward_rollout(RlRun *rl) {
    Batch b = full_batch(rl);
    size_t RT = (size_t)rl->R * rl->T;
    gpt2_forward(rl->policy_view, &b, rl->inv_temp);
    memcpy(rl->old_logp, rl->policy_view->host_logp, RT * sizeof(float));
    memcpy(rl->entropy, rl->policy_view->host_entropy, RT * sizeof(float));
    if (rl->policy->heads & GPT2_HEAD_SCALAR)
        memcpy(rl->old_values, rl->policy_view->host_values, RT * sizeof(float));
    gpt2_forward(rl->ref, &b, rl->inv_temp);
    memcpy(rl->ref_logp, rl->ref->host_logp, RT * sizeof(float));
    if (rl->value_view) {
        gpt2_forward(rl->value_view, &b, 1.0f);
        memcpy(rl->old_values, rl->value_view->host_values, RT * sizeof(float));
    }
    const KlConfig *kc = &rl->sr->stage->kl;
    for (size_t i = 0; i < RT; i++)
        rl->kl[i] = rl->mask[i] ? (float)rl_kl(rl->old_logp[i], rl->ref_logp[i], kc->estimator) : 0;
    // the sampler's log-probs of the tokens it drew against this forward's: they must agree
    // (the same model and temperature), else the PPO ratio starts away from 1
    int maxnew = rl->sr->stage->rollout.max_new_tokens;
    rl->logp_diff = 0.0;
    for (int r = 0; r < rl->R; r++)
        for (int i = 0; i < rl->rlen[r]; i++) {
            double d = fabs(rl->out_logp[(size_t)r * maxnew + i] -
                            rl->old_logp[(size_t)r * rl->T + rl->plen[r] - 1 + i]);
            rl->logp_diff = d > rl->logp_diff ? d : rl->logp_diff;
        }
}

// Sum of the per-token KL of each response, averaged over responses.
static double mean_seq_kl(const RlRun *rl) {
    double sum = 0.0;
    for (size_t i = 0; i < (size_t)rl->R * rl->T; i++) sum += rl->kl[i];
    return sum / rl->R;
}

static void advantages_ppo(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    size_t RT = (size_t)rl->R * rl->T;
    double coef = st->kl.in_reward ? rl->klc.coef : 0.0;
    rl_token_rewards(rl->scores, rl->kl, rl->mask, rl->R, rl->T, coef, st->reward_clip,
                     rl->rewards);
    if (st->whiten_rewards) rl_whiten(rl->rewards, rl->mask, RT, false);
    // GAE's V(s_t) for response token t sits at its input position, the target's index
    rl_gae(rl->rewards, rl->old_values, rl->mask, rl->R, rl->T, st->gae.gamma, st->gae.lambda,
           rl->adv, rl->ret);
    if (st->whiten_advantages) rl_whiten(rl->adv, rl->mask, RT, true);
}

// GRPO and RLOO: the sequence's reward (minus beta times its KL when in_reward) against its
// group, the same advantage for every response token.
static void advantages_group(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    float seq[rl->R];
    for (int r = 0; r < rl->R; r++) {
        double s = st->reward_clip > 0
                       ? fmax(-st->reward_clip, fmin(st->reward_clip, rl->scores[r]))
                       : rl->scores[r];
        if (st->kl.in_reward)
            for (int t = 0; t < rl->T; t++) s -= rl->klc.coef * rl->kl[(size_t)r * rl->T + t];
        seq[r] = (float)s;
    }
    rl_group_advantages(seq, rl->P, rl->G, rl->kind == STAGE_GRPO ? RL_GROUP_GRPO : RL_GROUP_RLOO,
                        rl->seq_adv);
    size_t RT = (size_t)rl->R * rl->T;
    for (size_t i = 0; i < RT; i++) rl->adv[i] = rl->mask[i] ? rl->seq_adv[i / rl->T] : 0.0f;
    if (st->whiten_advantages) rl_whiten(rl->adv, rl->mask, RT, true);
}

// ---- the update
// -----------------------------------------------------------------------------------

// Copies rows order[from .. from+n) of the rollout into the micro-batch buffers.
static Batch gather(RlRun *rl, int from, int n) {
    size_t T = (size_t)rl->T;
    for (int i = 0; i < n; i++) {
        size_t src = (size_t)rl->order[from + i] * T;
        memcpy(rl->mb_tokens + i * T, rl->tokens + src, T * sizeof(int));
        memcpy(rl->mb_targets + i * T, rl->targets + src, T * sizeof(int));
        memcpy(rl->mb_mask + i * T, rl->mask + src, T * sizeof(float));
    }
    return (Batch){.B = n,
                   .T = rl->T,
                   .tokens = rl->mb_tokens,
                   .targets = rl->mb_targets,
                   .mask = rl->mb_mask};
}

typedef struct {
    double pg_loss, v_loss, approx_kl, clipfrac, entropy, kl_loss, tokens;
} UpdateStats;

// Policy (and value-head) gradients of one micro-batch, divided by the minibatch's tokens.
static void policy_micro(RlRun *rl, int from, int n, double mb_tokens, UpdateStats *u) {
    const Stage *st = rl->sr->stage;
    Batch b = gather(rl, from, n);
    gpt2_forward(rl->policy, &b, rl->inv_temp);
    int value_head = (rl->policy->heads & GPT2_HEAD_SCALAR) != 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < rl->T; t++) {
            size_t mi = (size_t)i * rl->T + t, ri = (size_t)rl->order[from + i] * rl->T + t;
            rl->dlogp[mi] = rl->dent[mi] = rl->dvalues[mi] = 0.0f;
            if (!rl->mb_mask[mi]) continue;
            double lp = rl->policy->host_logp[mi];
            PolicyLoss pl = rl_policy_loss(lp, rl->old_logp[ri], rl->adv[ri], st->clip_range);
            double d = pl.dlogp;
            if (!st->kl.in_reward) { // KL as a loss term, GRPO style
                u->kl_loss += rl->klc.coef * rl_kl(lp, rl->ref_logp[ri], st->kl.estimator);
                d += rl->klc.coef * rl_kl_grad(lp, rl->ref_logp[ri], st->kl.estimator);
            }
            rl->dlogp[mi] = (float)(d / mb_tokens);
            rl->dent[mi] = (float)(-st->entropy_coef / mb_tokens);
            u->pg_loss += pl.loss, u->approx_kl += pl.approx_kl, u->clipfrac += pl.clipped;
            u->entropy += rl->policy->host_entropy[mi];
            if (value_head) {
                ValueLoss vl = rl_value_loss(rl->policy->host_values[mi], rl->old_values[ri],
                                             rl->ret[ri], st->value.clip);
                u->v_loss += vl.loss;
                rl->dvalues[mi] = (float)(st->value.coef * vl.dvalue / mb_tokens);
            }
        }
    gpt2_backward(rl->policy, rl->dlogp, st->entropy_coef > 0 ? rl->dent : NULL,
                  value_head ? rl->dvalues : NULL);
}

// Value-model gradients of one micro-batch (a separate critic).
static void value_micro(RlRun *rl, int from, int n, double mb_tokens, UpdateStats *u) {
    const Stage *st = rl->sr->stage;
    Batch b = gather(rl, from, n);
    gpt2_forward(rl->value, &b, 1.0f);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < rl->T; t++) {
            size_t mi = (size_t)i * rl->T + t, ri = (size_t)rl->order[from + i] * rl->T + t;
            rl->dvalues[mi] = 0.0f;
            if (!rl->mb_mask[mi]) continue;
            ValueLoss vl = rl_value_loss(rl->value->host_values[mi], rl->old_values[ri],
                                         rl->ret[ri], st->value.clip);
            u->v_loss += vl.loss;
            rl->dvalues[mi] = (float)(st->value.coef * vl.dvalue / mb_tokens);
        }
    gpt2_backward(rl->value, NULL, NULL, rl->dvalues);
}

// One optimizer step on minibatch rows order[from .. from + mb).
static void minibatch_step(RlRun *rl, int from, UpdateStats *u) {
    const Stage *st = rl->sr->stage;
    double tokens = 0.0;
    for (int i = 0; i < rl->mb; i++)
        for (int t = 0; t < rl->T; t++) tokens += rl->mask[(size_t)rl->order[from + i] * rl->T + t];
    if (tokens == 0.0) return;
    u->tokens += tokens;
    float lr = schedule_lr(&rl->sched, (float)st->optim.lr, rl->opt.step);
    gpt2_zero_grad(rl->policy);
    for (int m = 0; m < rl->mb; m += rl->micro) policy_micro(rl, from + m, rl->micro, tokens, u);
    rl->grad_norm = adamw_step(&rl->opt, rl->policy->params_mem, rl->policy->grads_mem, lr);
    if (!rl->value) return;
    gpt2_zero_grad(rl->value);
    for (int m = 0; m < rl->mb; m += rl->micro) value_micro(rl, from + m, rl->micro, tokens, u);
    adamw_step(&rl->value_opt, rl->value->params_mem, rl->value->grads_mem, lr);
}

static void update(RlRun *rl, UpdateStats *total) {
    const Stage *st = rl->sr->stage;
    rl->epochs_run = 0;
    for (int e = 0; e < st->epochs; e++) {
        for (int r = 0; r < rl->R; r++) rl->order[r] = r;
        rng_shuffle(&rl->rng, rl->order, rl->R);
        UpdateStats u = {0};
        for (int m = 0; m < st->minibatches; m++) minibatch_step(rl, m * rl->mb, &u);
        rl->epochs_run++;
        total->pg_loss += u.pg_loss, total->v_loss += u.v_loss, total->approx_kl += u.approx_kl;
        total->clipfrac += u.clipfrac, total->entropy += u.entropy, total->kl_loss += u.kl_loss;
        total->tokens += u.tokens;
        // stop the epochs once the policy has moved too far from the one that sampled
        if (st->max_approx_kl > 0 && u.tokens > 0 && u.approx_kl / u.tokens > st->max_approx_kl)
            break;
    }
}

// ---- one iteration ----------------------------------------------------------------------------

static double masked_mean(const float *x, const float *mask, size_t n) {
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < n; i++)
        if (mask[i]) s += x[i], c += 1.0;
    return c > 0 ? s / c : NAN;
}

static void log_iteration(RlRun *rl, const UpdateStats *u, const double *times, double t_start) {
    const Stage *st = rl->sr->stage;
    size_t RT = (size_t)rl->R * rl->T;
    double score = 0, acc = 0, len = 0, ended = 0;
    for (int r = 0; r < rl->R; r++)
        score += rl->scores[r], acc += rl->correct[r], len += rl->rlen[r], ended += rl->ended[r];
    double n = u->tokens > 0 ? u->tokens : 1, loss = (u->pg_loss + st->value.coef * u->v_loss) / n;
    Metrics *m = rl->metrics;
    metrics_begin(m, rl->iteration);
    metrics_add(m, "loss", loss);
    metrics_add(m, "objective/scores", score / rl->R);
    if (rl->gold) metrics_add(m, "objective/accuracy", acc / rl->R);
    metrics_add(m, "objective/kl", rl->iter_kl);
    metrics_add(m, "objective/entropy", masked_mean(rl->entropy, rl->mask, RT));
    metrics_add(m, "response_length", len / rl->R);
    metrics_add(m, "response_ended", ended / rl->R);
    metrics_add(m, "policy/approxkl", u->approx_kl / n);
    metrics_add(m, "policy/clipfrac", u->clipfrac / n);
    metrics_add(m, "loss/policy", u->pg_loss / n);
    if (rl->kind == STAGE_PPO) {
        metrics_add(m, "loss/value", u->v_loss / n);
        metrics_add(m, "val/explained_variance",
                    rl_explained_variance(rl->old_values, rl->ret, rl->mask, RT));
    }
    if (!st->kl.in_reward) metrics_add(m, "loss/kl", u->kl_loss / n);
    metrics_add(m, "beta", rl->klc_before);
    metrics_add(m, "epochs", rl->epochs_run);
    metrics_add(m, "lr", schedule_lr(&rl->sched, (float)st->optim.lr, rl->opt.step));
    metrics_add(m, "grad_norm", rl->grad_norm);
    metrics_add(m, "time/rollout", times[0]);
    metrics_add(m, "time/score", times[1]);
    metrics_add(m, "time/update", times[2]);
    metrics_add(m, "rollout_tokens_per_s", rl->rollout_tokens / times[0]);
    metrics_add(m, "rollout/logp_diff", rl->logp_diff);
    metrics_add(m, "tokens_per_s", (double)rl->rollout_tokens / (times[0] + times[1] + times[2]));
    metrics_add(m, "elapsed", time_now() - t_start);
    metrics_end(m);
    char extra[256];
    snprintf(extra, sizeof(extra),
             "score %.3f  kl %.3f  beta %.4f  rollout/score/update %.1f/%.1f/%.1f s", score / rl->R,
             rl->iter_kl, rl->klc_before, times[0], times[1], times[2]);
    progress_update(&rl->progress, rl->iteration, loss, rl->rollout_tokens / times[0], extra);
}

static int iteration(RlRun *rl, double t_start) {
    double t0 = time_now(), times[3];
    if (next_prompts(rl)) return 1;
    rollout(rl);
    times[0] = time_now() - t0;
    t0 = time_now();
    score(rl);
    forward_rollout(rl);
    rl->iter_kl = mean_seq_kl(rl);
    rl->klc_before = rl->klc.coef;
    if (rl->kind == STAGE_PPO)
        advantages_ppo(rl);
    else
        advantages_group(rl);
    kl_controller_update(&rl->klc, rl->iter_kl, rl->R);
    times[1] = time_now() - t0;
    t0 = time_now();
    UpdateStats u = {0};
    update(rl, &u);
    times[2] = time_now() - t0;
    rl->iteration++;
    log_iteration(rl, &u, times, t_start);
    return 0;
}

// ---- checkpoints --------------------------------------------------------------------------------

static int state_models(RlRun *rl, StateModel *sm, int final) {
    sm[0] = (StateModel){"policy", rl->policy, final ? NULL : &rl->opt};
    if (!rl->value) return 1;
    sm[1] = (StateModel){"value", rl->value, final ? NULL : &rl->value_opt};
    return 2;
}

static TrainState rl_state(RlRun *rl, int complete) {
    TrainState ts = {.step = rl->iteration,
                     .rng = rl->rng.state,
                     .complete = complete,
                     .tokenizer = rl->sr->run->fingerprint,
                     .recipe = rl->sr->run->recipe_text,
                     .tokenizer_path = rl->sr->run->recipe->tokenizer,
                     .n_cursor = (int)(sizeof(LoaderState) / sizeof(int64_t)),
                     .n_scalars = 1,
                     .scalar_names = {"kl_coef"},
                     .scalars = {rl->klc.coef}};
    LoaderState ls = loader_state(rl->prompts_loader);
    memcpy(ts.cursor, &ls, sizeof(ls));
    return ts;
}

static int save(RlRun *rl, const char *path, int complete) {
    StateModel sm[2];
    int n = state_models(rl, sm, complete);
    TrainState ts = rl_state(rl, complete);
    char err[1024];
    if (state_save(path, sm, n, &ts, err, sizeof(err)) == 0) return 0;
    fprintf(stderr, "layercake: stage '%s': checkpoint failed: %s\n", rl->sr->stage->name, err);
    return 1;
}

static void resume(RlRun *rl) {
    char *paths[64], err[1024];
    int n = state_list_periodic(rl->sr->dir, paths, 64), done = 0;
    for (int i = 0; i < n && !done; i++) {
        StateModel sm[2];
        int nm = state_models(rl, sm, 0);
        TrainState ts = rl_state(rl, 0);
        LoaderState ls;
        int rc = state_load(paths[i], sm, nm, &ts, err, sizeof(err));
        memcpy(&ls, ts.cursor, sizeof(ls));
        if (!rc) rc = loader_restore(rl->prompts_loader, &ls, err, sizeof(err));
        if (rc) {
            printf("[%s] warning: %s; trying the previous checkpoint\n", rl->sr->stage->name, err);
            continue;
        }
        rl->iteration = ts.step, rl->rng.state = ts.rng, rl->klc.coef = ts.scalars[0];
        printf("[%s] resuming from %s (iteration %lld)\n", rl->sr->stage->name, paths[i],
               (long long)rl->iteration);
        done = 1;
    }
    for (int i = 0; i < n; i++) free(paths[i]);
}

// ---- the stage
// ------------------------------------------------------------------------------------

static int setup(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    sizes(rl);
    if (find_gold(rl) || make_models(rl) || open_prompts(rl)) return 1;
    alloc_buffers(rl);
    rl->inv_temp = 1.0f / (float)st->rollout.temperature;
    rl->klc = kl_controller_init(st->kl.coef, st->kl.target, st->kl.horizon);
    rl->rng = rng_init(stage_seed(rl->sr, "rl"));
    long updates = (long)st->iterations * st->epochs * st->minibatches;
    rl->sched = (Schedule){st->schedule.kind, st->schedule.warmup_steps, (int)updates,
                           (float)st->schedule.min_lr_ratio};
    printf("[%s] %s: %d iterations of %d prompts x %d samples = %d responses (<= %d new tokens, "
           "rows of %d); %d epochs x %d minibatches of %d (micro-batches of %d); reward: %s\n",
           st->name, stage_kind_name(st->kind), st->iterations, rl->P, rl->G, rl->R,
           st->rollout.max_new_tokens, rl->T, st->epochs, st->minibatches, rl->mb, rl->micro,
           rl->gold ? st->gold_reward : st->reward_model);
    return 0;
}

static void teardown(RlRun *rl) {
    sampler_free(rl->sampler);
    gpt2_free(rl->policy_view), gpt2_free(rl->value_view);
    if (rl->value) adamw_free(&rl->value_opt);
    if (rl->policy) adamw_free(&rl->opt);
    gpt2_free(rl->policy), gpt2_free(rl->value), gpt2_free(rl->ref), gpt2_free(rl->rm);
    loader_free(rl->prompts_loader);
    metrics_close(rl->metrics);
    free_buffers(rl);
}

static int64_t fault_kill_iteration(void) {
    const char *v = getenv("LC_FAULT_KILL_AT_STEP"); // see train/stages/supervised.c
    return v ? strtoll(v, NULL, 10) : -1;
}

static int loop(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    double t_start = time_now();
    int64_t kill_at = fault_kill_iteration();
    progress_init(&rl->progress, st->name, st->iterations, rl->iteration, st->log.every);
    while (rl->iteration < st->iterations) {
        if (iteration(rl, t_start)) return 1;
        int last = rl->iteration == st->iterations;
        if (st->checkpoint.every > 0 && rl->iteration % st->checkpoint.every == 0 && !last) {
            char path[4200];
            state_periodic_path(path, sizeof(path), rl->sr->dir, rl->iteration);
            if (save(rl, path, 0)) return 1;
            state_prune(rl->sr->dir, st->checkpoint.keep);
        }
        if (rl->iteration == kill_at) raise(SIGKILL);
    }
    progress_done(&rl->progress);
    char final[4200];
    snprintf(final, sizeof(final), "%s/final.h5", rl->sr->dir);
    if (save(rl, final, 1)) return 1;
    printf("[%s] done: %s\n", st->name, final);
    return 0;
}

int stage_rl(StageRun *sr) {
    RlRun rl = {.sr = sr, .kind = sr->stage->kind};
    char err[1024];
    int rc = setup(&rl);
    if (!rc) {
        resume(&rl);
        rl.metrics = metrics_open(sr->dir, rl.iteration > 0 ? rl.iteration : -1, err, sizeof(err));
        if (!rl.metrics) {
            fprintf(stderr, "layercake: stage '%s': %s\n", sr->stage->name, err);
            rc = 1;
        }
    }
    if (!rc) rc = loop(&rl);
    teardown(&rl);
    return rc;
}
