// train/stages/rl.h: the state of a PPO / GRPO / RLOO stage (train/stages/rl.c).
#pragma once
#include "data/loader.h"
#include "data/synth.h"
#include "model/sample.h"
#include "optim/optim.h"
#include "train/run/metrics.h"
#include "train/run/progress.h"
#include "train/objectives/rl.h"
#include "train/run/run.h"

typedef struct {
    StageRun *sr;
    StageKind kind; // STAGE_PPO, STAGE_GRPO or STAGE_RLOO

    // sizes
    int P;          // prompts per iteration (rollout.batch)
    int G;          // samples per prompt (rollout.group_size)
    int R;          // responses per iteration, P * G
    int T;          // row length: prompt + response (seq_len)
    int max_prompt; // T - rollout.max_new_tokens
    int mb;         // responses per minibatch, R / minibatches
    int micro;      // responses per forward/backward pass

    // models: each in its own arenas; frozen ones in inference mode without gradients
    GPT2 *policy;          // trained; + a scalar head when value.init = policy
    GPT2 *policy_view;     // inference view of the policy over all R rows (no-gradient passes)
    GPT2 *ref;             // frozen copy of the start (reference for the KL)
    GPT2 *value;           // trained critic (PPO with value.init = reward_model), or NULL
    GPT2 *value_view;      // inference view of the critic over R rows
    GPT2 *rm;              // frozen reward model, or NULL with a gold reward
    const SynthTask *gold; // gold reward function, or NULL
    AdamW opt, value_opt;
    Schedule sched; // over iterations * epochs * minibatches optimizer steps
    Sampler *sampler;
    Loader *prompts_loader;
    KlController klc;

    // the rollout (host)
    int *prompts;    // (R, max_prompt)
    int *out;        // (R, max_new_tokens) sampled tokens
    float *out_logp; // (R, max_new_tokens) their log-probs at sampling time
    int *plen;       // (R) prompt tokens
    int *rlen;       // (R) response tokens (the stop token included)
    int *len;        // (R) plen + rlen
    int *ended;      // (R) the response ends with the stop token
    int stop;        // the stop token
    long rollout_tokens;
    int *tokens;    // (R, T) prompt + response, right-padded
    int *targets;   // (R, T) next tokens, -1 past the row
    float *mask;    // (R, T) 1 on targets that are response tokens
    float *scores;  // (R) reward per response (after the missing-EOS penalty)
    float *correct; // (R) gold correctness (NAN with a reward model)

    // per token (R, T), response targets only
    float *old_logp, *ref_logp, *old_values, *kl, *rewards, *adv, *ret, *entropy;
    float *seq_adv; // (R) group-relative advantage of each response
    float inv_temp; // 1 / rollout.temperature: log-probs of the distribution that sampled

    // the update
    int *order;                    // (R) shuffled response order
    int *mb_tokens, *mb_targets;   // (micro, T) gathered micro-batch
    float *mb_mask;                // (micro, T)
    float *dlogp, *dent, *dvalues; // (micro, T) objective gradients
    float grad_norm;
    int epochs_run;
    double iter_kl, klc_before;
    double logp_diff; // max |sampler log-prob - forward log-prob| over the rollout

    Rng rng; // sampling and minibatch shuffles
    int64_t iteration;
    Metrics *metrics;
    Progress progress;
} RlRun;
