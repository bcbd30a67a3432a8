// train/stages/rl.c: reinforcement learning from a reward: PPO with a critic (Schulman et al.
// 2017, as applied to language models by Ziegler et al. 2019 and InstructGPT), and the
// critic-free GRPO (Shao et al. 2024) and RLOO (Ahmadian et al. 2024). One iteration:
//   1. rollout  rollout.batch prompts, group_size samples each, from the policy with the KV
//               cache (temperature, top-k/p, a stop token, max_new_tokens);
//   2. score    the stage's judge (train/stages/judge.h: a gold task, a reward model, a regex
//               match, a command or an LLM judge); minus missing_eos_penalty when no stop token;
//   3. prepare  one no-gradient forward each for the policy's log-probs (at the sampling
//               temperature), the reference's, and (PPO) the value model's estimates; per-token
//               KL; rewards, then GAE (PPO) or group-relative advantages (GRPO, RLOO);
//   4. update   `epochs` passes over the responses in `minibatches` shuffled minibatches: the
//               clipped policy objective, (PPO) the clipped value loss, an optional entropy
//               bonus and (kl.in_reward false) a k3 KL loss term; early stop on approximate KL.
// All per-token arrays are (R, T) over the full sequences (prompt + response); the mask marks
// the targets that are response tokens. The math lives in train/objectives/rl.h.
//
// Data parallelism (docs/distributed.md): rollout.batch is the iteration's prompts over all the
// processes; each of the W processes generates, scores and trains on its rollout.batch / W of
// them (the prompt loader's share), a prompt's whole group on one process, so GRPO/RLOO group
// baselines and PPO's per-sequence GAE stay local. Everything one process computes over the
// whole batch is summed over the processes instead: reward and advantage whitening, the mean
// KL the adaptive controller reads, each minibatch's token count (the loss normaliser), the
// early-stop KL, every finite check (so all stop or skip together) and every logged metric.
// The optimisers reduce the gradients themselves (adamw_init_parallel). Every process takes
// the same epochs x minibatches optimizer steps over its own rollouts. Random streams: with one
// process the checkpointed stream rl->rng samples and shuffles as it always did; with several,
// each iteration draws one number from it (the same on every process, so the checkpoint of
// rank 0's stream resumes every rank) and derives the process's stream from it and the rank
// (rng_derive), so the ranks sample different tokens and a run is reproducible for a given
// number of processes.
//
// Test hook: LC_DUMP_ROLLOUTS=dir makes each process write the scores of its rollouts of
// iteration i (after the missing-EOS penalty, one per line) to dir/<stage>-rank<r>-iter<i>.txt,
// so a test can check the logged objective/scores against the union of the ranks' rollouts.
#include "train/stages/stages.h"
#include "common/check.h"
#include "common/timer.h"
#include "data/chat.h"
#include "data/loader.h"
#include "model/sample.h"
#include "optim/optim.h"
#include "train/run/metrics.h"
#include "train/run/progress.h"
#include "train/objectives/rl.h"
#include "train/run/lifecycle.h"
#include "train/run/memory.h"
#include "train/stages/judge.h"
#include "train/stages/readouts.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    StageRun *sr;
    StageKind kind; // STAGE_PPO, STAGE_GRPO or STAGE_RLOO

    // sizes: this process's share of the iteration (the whole of it with one process)
    int rank, world; // this process among the run's (Run)
    int P;           // prompts per iteration and process (rollout.batch / world)
    int G;           // samples per prompt (rollout.group_size)
    int R;           // responses per iteration and process, P * G
    int R_global;    // responses per iteration over every process, R * world
    int T;           // row length: prompt + response (seq_len)
    int max_prompt;  // T - rollout.max_new_tokens
    int mb;          // responses per minibatch, R / minibatches
    int micro;       // responses per forward/backward pass

    // models: each in its own arenas; frozen ones in inference mode without gradients
    Model *policy;      // trained; + a scalar head when value.init = policy
    Model *policy_view; // inference view of the policy over all R rows (no-gradient passes)
    Model *ref;         // frozen copy of the start (reference for the KL)
    Model *value;       // trained critic (PPO with value.init = reward_model), or NULL
    Model *value_view;  // inference view of the critic over R rows
    Judge *judge;       // the reward (train/stages/judge.h)
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
    Chat chat;       // the template the prompts were rendered with (run_dataset_chat)
    long rollout_tokens;
    int *tokens;    // (R, T) prompt + response, right-padded
    int *targets;   // (R, T) next tokens, -1 past the row
    float *mask;    // (R, T) 1 on targets that are response tokens
    float *scores;  // (R) reward per response (after the missing-EOS penalty)
    float *correct; // (R) exact correctness (NAN where the judge does not know it)
    int *example;   // (R) each row's prompt: its index in data.prompts

    // per token (R, T), response targets only
    float *old_logp, *ref_logp, *old_values, *kl, *rewards, *adv, *ret, *entropy;
    float *seq_adv; // (R) group-relative advantage of each response
    float inv_temp; // 1 / rollout.temperature: log-probs of the distribution that sampled

    // the update
    int *order;                    // (R) shuffled response order
    JudgeItem *items;              // (R) the responses as the judge reads them
    double *jscores, *jcorrect;    // (R) the judge's scores and correctness
    float *seq_rewards;            // (R) GRPO/RLOO: each response's reward for its group
    int *mb_tokens, *mb_targets;   // (micro, T) gathered micro-batch
    float *mb_mask;                // (micro, T)
    float *dlogp, *dent, *dvalues; // (micro, T) objective gradients
    float grad_norm;
    int epochs_run;
    double iter_kl, klc_before;
    double logp_diff; // max |sampler log-prob - forward log-prob| over the rollout

    Rng rng;        // sampling and minibatch shuffles (checkpointed; the same on every rank)
    Rng rank_rng;   // several processes: this iteration's stream of this rank (from rng)
    Rng *srng;      // the stream this iteration samples and shuffles with
    RlReduce sum;   // sums over the run's processes (train/objectives/rl.h)
    Lifecycle lc;   // resume, checkpoints, metrics, progress; lc.step = iterations done
    void *host;     // the one allocation every host array above is carved from
    double t_start; // when this process's first iteration began (metric "elapsed")
} RlRun;

// ---- setup --------------------------------------------------------------------------------------

static void comm_sum(void *ctx, double *v, size_t k) {
    Comm *c = ctx;
    c->all_reduce_sum_host(c, v, k);
}

// v (k) <- its sum over the run's processes (the identity with one).
static void global_sum(const RlRun *rl, double *v, size_t k) {
    rl->sum.sum(rl->sum.ctx, v, k);
}

// The sizes of this process's share; nonzero (after printing why) when the global batch does
// not split evenly over the processes.
static int sizes(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    const Run *run = rl->sr->run;
    rl->rank = run->rank, rl->world = run->world;
    rl->sum = (RlReduce){.sum = comm_sum, .ctx = run->comm};
    if (st->rollout.batch % rl->world) {
        fprintf(stderr,
                "layercake: stage '%s': rollout.batch %d (the prompts of an iteration over all "
                "processes) is not a multiple of the %d processes\n",
                st->name, st->rollout.batch, rl->world);
        return 1;
    }
    rl->P = st->rollout.batch / rl->world;
    rl->G = st->rollout.group_size;
    rl->R = rl->P * rl->G;
    rl->R_global = rl->R * rl->world;
    rl->T = st->seq_len;
    rl->max_prompt = rl->T - st->rollout.max_new_tokens;
    if (rl->R % st->minibatches) {
        fprintf(stderr,
                "layercake: stage '%s': minibatches %d does not divide the %d responses of each "
                "of the %d processes (rollout.batch %d / %d x rollout.group_size %d)\n",
                st->name, st->minibatches, rl->R, rl->world, st->rollout.batch, rl->world, rl->G);
        return 1;
    }
    rl->mb = rl->R / st->minibatches;
    // the recipe's micro-batch fits a whole process's minibatch at most
    rl->micro = st->micro_batch_size < rl->mb ? st->micro_batch_size : rl->mb;
    if (rl->mb % rl->micro) {
        fprintf(stderr,
                "layercake: stage '%s': micro_batch_size %d does not divide the %d responses of "
                "a minibatch on each of the %d processes\n",
                st->name, rl->micro, rl->mb, rl->world);
        return 1;
    }
    return 0;
}

// The next 64-byte aligned piece of `bytes` from the block at base (NULL while measuring).
static void *take(char *base, size_t *off, size_t bytes) {
    void *p = base ? base + *off : NULL;
    *off += (bytes + 63) & ~(size_t)63;
    return p;
}

#define COUNT(a) (sizeof(a) / sizeof(*(a)))

// Points every host array of the stage into one block at base and returns the block's size in
// bytes; with base NULL it only measures. Arrays sized by the rollout live here, never on the
// stack, so a large rollout.batch x group_size cannot overflow it.
static size_t carve_buffers(RlRun *rl, char *base) {
    size_t off = 0, R = (size_t)rl->R, RT = R * (size_t)rl->T, MT = (size_t)rl->micro * rl->T;
    size_t RN = R * (size_t)rl->sr->stage->rollout.max_new_tokens;
    int **ints_R[] = {&rl->len, &rl->plen, &rl->rlen, &rl->ended, &rl->example, &rl->order};
    float **floats_R[] = {&rl->scores, &rl->correct, &rl->seq_adv, &rl->seq_rewards};
    float **floats_RT[] = {&rl->mask,    &rl->old_logp, &rl->ref_logp, &rl->old_values,
                           &rl->kl,      &rl->rewards,  &rl->adv,      &rl->ret,
                           &rl->entropy, &rl->dlogp,    &rl->dent,     &rl->dvalues};
    for (size_t i = 0; i < COUNT(ints_R); i++) *ints_R[i] = take(base, &off, R * sizeof(int));
    for (size_t i = 0; i < COUNT(floats_R); i++) *floats_R[i] = take(base, &off, R * sizeof(float));
    for (size_t i = 0; i < COUNT(floats_RT); i++)
        *floats_RT[i] = take(base, &off, RT * sizeof(float));
    rl->tokens = take(base, &off, RT * sizeof(int));
    rl->targets = take(base, &off, RT * sizeof(int));
    rl->prompts = take(base, &off, R * (size_t)rl->max_prompt * sizeof(int));
    rl->out = take(base, &off, RN * sizeof(int));
    rl->out_logp = take(base, &off, RN * sizeof(float));
    rl->mb_tokens = take(base, &off, MT * sizeof(int));
    rl->mb_targets = take(base, &off, MT * sizeof(int));
    rl->mb_mask = take(base, &off, MT * sizeof(float));
    rl->items = take(base, &off, R * sizeof(JudgeItem));
    rl->jscores = take(base, &off, R * sizeof(double));
    rl->jcorrect = take(base, &off, R * sizeof(double));
    return off;
}

static void alloc_buffers(RlRun *rl) {
    size_t bytes = carve_buffers(rl, NULL);
    rl->host = lc_calloc(bytes, 1);
    carve_buffers(rl, rl->host);
}

// The memory report (train/run/memory.h): every model, view, the sampler and the host buffers.
static void report_memory(const RlRun *rl) {
    MemoryPlan plan;
    memory_plan_init(&plan);
    memory_plan_add_model(&plan, "policy", rl->policy, &rl->opt);
    memory_plan_add_model(&plan, "policy view", rl->policy_view, NULL);
    memory_plan_add_model(&plan, "reference", rl->ref, NULL);
    if (rl->value) {
        memory_plan_add_model(&plan, "value", rl->value, &rl->value_opt);
        memory_plan_add_model(&plan, "value view", rl->value_view, NULL);
    }
    if (judge_model(rl->judge))
        memory_plan_add_model(&plan, rl->sr->stage->reward_model[0] ? "reward model" : "judge",
                              judge_model(rl->judge), NULL);
    memory_plan_add_model(&plan, "sampler", sampler_view(rl->sampler), NULL);
    memory_plan_add(&plan, "sampler", MEM_KV_CACHE, sampler_kv_bytes(rl->sampler));
    RlRun probe = *rl; // measuring points the arrays at NULL: on a copy
    memory_plan_add(&plan, "rollout buffers", MEM_OTHER, carve_buffers(&probe, NULL));
    memory_plan_report(&plan, rl->sr);
}

// The value model: a separate trunk + scalar head started from the reward model (or, without
// one, from the policy's start), or a scalar head on the policy's own trunk. With LoRA it is a
// second adapter set and a scalar head on a trunk already held: the reward model's (its head
// the starting one) or, with value.init: policy, the policy's.
static int make_value(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    bool lora = st->lora.rank > 0;
    if (rl->kind != STAGE_PPO || (st->value.init == VALUE_INIT_POLICY && !lora)) return 0;
    if (lora) {
        const Model *rm = st->reward_model[0] ? judge_model(rl->judge) : NULL;
        const Model *trunk = st->value.init == VALUE_INIT_POLICY || !rm ? rl->policy : rm;
        rl->value = stage_adapter_view(rl->sr, trunk, MODEL_HEAD_SCALAR, rl->micro, rl->T);
    } else {
        const char *from = st->reward_model[0] ? st->reward_model : st->init;
        rl->value = stage_model(rl->sr, from, MODEL_HEAD_SCALAR, MODEL_TRAIN, rl->micro, rl->T);
    }
    if (!rl->value) return 1;
    rl->value_view = model_create_view(rl->value, MODEL_INFER, rl->R, rl->T);
    const Run *run = rl->sr->run;
    adamw_init_parallel(&rl->value_opt, run->be, &rl->value->train_table, stage_adamw_config(st),
                        run->comm, run->recipe->zero == 1);
    return 0;
}

static int make_models(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    bool lora = st->lora.rank > 0;
    int value_head = rl->kind == STAGE_PPO && st->value.init == VALUE_INIT_POLICY && !lora;
    int heads = MODEL_HEAD_LM | (value_head ? MODEL_HEAD_SCALAR : 0);
    rl->policy = stage_train_model(rl->sr, st->init, heads, rl->micro, rl->T);
    if (!rl->policy) return 1;
    if (lora) { // the reference is the policy with its adapters off: no second model
        rl->ref = model_create_base_view(rl->policy, rl->R, rl->T);
    } else {
        rl->ref = stage_model(rl->sr, st->init, MODEL_HEAD_LM, MODEL_INFER, rl->R, rl->T);
    }
    if (!rl->ref) return 1;
    rl->policy_view = model_create_view(rl->policy, MODEL_INFER, rl->R, rl->T);
    const Run *run = rl->sr->run;
    adamw_init_parallel(&rl->opt, run->be, &rl->policy->train_table, stage_adamw_config(st),
                        run->comm, run->recipe->zero == 1);
    // the judge's models: with LoRA, a checkpoint of adapters over the policy's base weights
    // loads on the policy's trunk
    JudgeOptions jo = {.which = JUDGE_ANY, .trunk = lora ? rl->policy : NULL};
    rl->judge = judge_open_with(rl->sr, rl->R, rl->T, &jo);
    if (!rl->judge) return 1;
    if (make_value(rl)) return 1;
    rl->sampler = sampler_create(rl->policy, rl->R, rl->T, 1);
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
    rl->chat = run_dataset_chat(sr->run, sr->stage->data.prompts);
    if (!rl->prompts_loader) {
        fprintf(stderr, "layercake: stage '%s': %s\n", sr->stage->name, err);
        return 1;
    }
    return 0;
}

// ---- rollout and scoring ----------------------------------------------------------------------

// The token that ends a response: the chat template's end of turn when prompts end with its
// assistant header, the end-of-text token otherwise.
static int stop_token(const RlRun *rl, const int *prompt, int n) {
    return chat_stop_token(&rl->chat, prompt, n);
}

// Fills the R rows of prompts (each prompt of the batch repeated group_size times). Empty rows
// (the last step of an epoch) repeat the first prompt; a process whose whole share of that step
// is empty repeats rank 0's first prompt (every step gives rank 0 one), so every process
// generates, steps and reduces alike. Returns nonzero on every process when one failed to read.
static int next_prompts(RlRun *rl) {
    Batch b;
    int got = loader_next(rl->prompts_loader, &b);
    if (got < 0) fprintf(stderr, "layercake: %s\n", loader_error(rl->prompts_loader));
    double flags[2] = {got < 0, got == 0}; // failed, empty: on how many processes
    global_sum(rl, flags, 2);
    if (flags[0] > 0) return 1;
    const int *first = b.tokens;
    int first_len = b.len[0], *shared = NULL;
    int64_t first_example = got > 0 ? loader_example_index(rl->prompts_loader, 0, 0) : -1;
    if (flags[1] > 0) {
        Comm *comm = rl->sr->run->comm;
        // tokens, then the length and the example's index
        shared = lc_calloc((size_t)rl->max_prompt + 2, sizeof(int));
        if (rl->rank == 0) {
            memcpy(shared, b.tokens, sizeof(int) * (size_t)b.len[0]);
            shared[rl->max_prompt] = b.len[0];
            shared[rl->max_prompt + 1] = (int)first_example;
        }
        comm->broadcast_host(comm, shared, sizeof(int) * ((size_t)rl->max_prompt + 2), 0);
        if (got == 0)
            first = shared, first_len = shared[rl->max_prompt],
            first_example = shared[rl->max_prompt + 1];
    }
    for (int p = 0; p < rl->P; p++)
        for (int g = 0; g < rl->G; g++) {
            int r = p * rl->G + g, n = b.len[p] > 0 ? b.len[p] : first_len; // refill empty rows
            const int *src = b.len[p] > 0 ? b.tokens + (size_t)p * b.T : first;
            memcpy(rl->prompts + (size_t)r * rl->max_prompt, src, sizeof(int) * (size_t)n);
            rl->plen[r] = n;
            rl->example[r] = (int)(b.len[p] > 0 ? loader_example_index(rl->prompts_loader, p, 0)
                                                : first_example);
        }
    free(shared);
    return 0;
}

static void rollout(RlRun *rl) {
    const RolloutConfig *ro = &rl->sr->stage->rollout;
    SampleParams sp = rollout_sample_params(ro, stop_token(rl, rl->prompts, rl->plen[0]));
    rl->stop = sp.stop_token;
    rl->rollout_tokens = sampler_generate(rl->sampler, rl->prompts, rl->max_prompt, rl->plen, rl->R,
                                          &sp, rl->srng, rl->out, rl->out_logp, rl->rlen);
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

// The prompt's reference answer (a malloc'd string), or NULL when the dataset has none.
static char *reference(const RlRun *rl, int r) {
    if (rl->example[r] < 0) return NULL;
    Example ex = dataset_example(loader_dataset(rl->prompts_loader), rl->example[r]);
    if (!ex.reference_text || ex.n_reference_text <= 0) return NULL;
    char *s = lc_malloc((size_t)ex.n_reference_text + 1);
    memcpy(s, ex.reference_text, (size_t)ex.n_reference_text);
    s[ex.n_reference_text] = '\0';
    return s;
}

// The rollout as the judge reads it: decoded text (the response without its stop token), ids
// (the response's with it), and the prompt's reference answer.
static void judge_items(RlRun *rl) {
    Tokenizer *tok = rl->sr->run->tok;
    for (int r = 0; r < rl->R; r++) {
        size_t pn, rn;
        const int *row = rl->tokens + (size_t)r * rl->T;
        char *p = tokenizer_decode(tok, row, rl->plen[r], &pn);
        char *s = tokenizer_decode(tok, row + rl->plen[r], rl->rlen[r] - rl->ended[r], &rn);
        LC_ASSERT(p && s);
        rl->items[r] = (JudgeItem){.prompt = p,
                                   .response = s,
                                   .prompt_ids = row,
                                   .prompt_len = rl->plen[r],
                                   .response_ids = row + rl->plen[r],
                                   .response_len = rl->rlen[r],
                                   .reference = reference(rl, r)};
    }
}

static void judge_items_free(RlRun *rl) {
    for (int r = 0; r < rl->R; r++) {
        free((char *)rl->items[r].prompt), free((char *)rl->items[r].response);
        free((char *)rl->items[r].reference);
    }
}

// The judge's scores of the rollout (a prompt's group_size responses are consecutive rows).
// Nonzero after the judge printed why.
static int score(RlRun *rl) {
    judge_items(rl);
    int rc = judge_score(rl->judge, rl->items, rl->R, rl->G, rl->jscores, rl->jcorrect);
    judge_items_free(rl);
    if (rc) return rc;
    for (int r = 0; r < rl->R; r++) {
        rl->scores[r] = (float)rl->jscores[r];
        rl->correct[r] = (float)rl->jcorrect[r];
    }
    double penalty = rl->sr->stage->missing_eos_penalty;
    for (int r = 0; r < rl->R; r++)
        if (!rl->ended[r]) rl->scores[r] -= (float)penalty;
    return 0;
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
    model_forward(rl->policy_view, &b, rl->inv_temp);
    memcpy(rl->old_logp, rl->policy_view->host_logp, RT * sizeof(float));
    memcpy(rl->entropy, rl->policy_view->host_entropy, RT * sizeof(float));
    if (rl->policy->heads & MODEL_HEAD_SCALAR)
        memcpy(rl->old_values, rl->policy_view->host_values, RT * sizeof(float));
    model_forward(rl->ref, &b, rl->inv_temp);
    memcpy(rl->ref_logp, rl->ref->host_logp, RT * sizeof(float));
    if (rl->value_view) {
        model_forward(rl->value_view, &b, 1.0f);
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

// Sum of the per-token KL of each response, averaged over the responses of every process.
static double mean_seq_kl(const RlRun *rl) {
    double sum = 0.0;
    for (size_t i = 0; i < (size_t)rl->R * rl->T; i++) sum += rl->kl[i];
    global_sum(rl, &sum, 1);
    return sum / rl->R_global;
}

static void advantages_ppo(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    size_t RT = (size_t)rl->R * rl->T;
    double coef = st->kl.in_reward ? rl->klc.coef : 0.0;
    rl_token_rewards(rl->scores, rl->kl, rl->mask, rl->R, rl->T, coef, st->reward_clip,
                     rl->rewards);
    if (st->whiten_rewards) rl_whiten_global(rl->rewards, rl->mask, RT, false, &rl->sum);
    // GAE's V(s_t) for response token t sits at its input position, the target's index (per
    // sequence: local to the process that generated it)
    rl_gae(rl->rewards, rl->old_values, rl->mask, rl->R, rl->T, st->gae.gamma, st->gae.lambda,
           rl->adv, rl->ret);
    if (st->whiten_advantages) rl_whiten_global(rl->adv, rl->mask, RT, true, &rl->sum);
}

// GRPO and RLOO: each response's reward (clipped, minus kl.coef times its summed KL when the
// penalty is in the reward) against its group, the same advantage for every response token.
static void advantages_group(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    double kl_coef = st->kl.in_reward ? rl->klc.coef : 0.0;
    rl_sequence_rewards(rl->scores, rl->kl, rl->R, rl->T, kl_coef, st->reward_clip,
                        rl->seq_rewards);
    // a prompt's group_size responses are rows p*G .. p*G+G-1 of one process (next_prompts)
    rl_group_advantages(rl->seq_rewards, rl->P, rl->G,
                        rl->kind == STAGE_GRPO ? RL_GROUP_GRPO : RL_GROUP_RLOO, rl->seq_adv);
    size_t RT = (size_t)rl->R * rl->T;
    for (size_t i = 0; i < RT; i++) rl->adv[i] = rl->mask[i] ? rl->seq_adv[i / rl->T] : 0.0f;
    if (st->whiten_advantages) rl_whiten_global(rl->adv, rl->mask, RT, true, &rl->sum);
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
    model_forward(rl->policy, &b, rl->inv_temp);
    int value_head = (rl->policy->heads & MODEL_HEAD_SCALAR) != 0;
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
    model_backward(rl->policy, rl->dlogp, st->entropy_coef > 0 ? rl->dent : NULL,
                   value_head ? rl->dvalues : NULL);
}

// Value-model gradients of one micro-batch (a separate critic).
static void value_micro(RlRun *rl, int from, int n, double mb_tokens, UpdateStats *u) {
    const Stage *st = rl->sr->stage;
    Batch b = gather(rl, from, n);
    model_forward(rl->value, &b, 1.0f);
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
    model_backward(rl->value, NULL, NULL, rl->dvalues);
}

// Whether the losses summed so far on every process are finite (else nothing more is
// applied); every process learns the same answer.
static bool losses_finite(RlRun *rl, const UpdateStats *u) {
    double loss = u->pg_loss + u->v_loss + u->kl_loss;
    global_sum(rl, &loss, 1);
    return lifecycle_finite(&rl->lc, "the loss", loss);
}

// One optimizer step on minibatch rows order[from .. from + mb). Returns false, with nothing
// applied for the model concerned, when a loss or a gradient norm is not finite.
static bool minibatch_step(RlRun *rl, int from, UpdateStats *u) {
    const Stage *st = rl->sr->stage;
    double local = 0.0, tokens;
    for (int i = 0; i < rl->mb; i++)
        for (int t = 0; t < rl->T; t++) local += rl->mask[(size_t)rl->order[from + i] * rl->T + t];
    tokens = local; // the loss normaliser: the minibatch's tokens over every process
    global_sum(rl, &tokens, 1);
    if (tokens == 0.0) return true; // on every process alike
    u->tokens += local;
    float lr = schedule_lr(&rl->sched, (float)st->optim.lr, rl->opt.step);
    model_zero_grad(rl->policy);
    for (int m = 0; m < rl->mb; m += rl->micro) policy_micro(rl, from + m, rl->micro, tokens, u);
    if (!losses_finite(rl, u)) return false;
    rl->grad_norm = adamw_step(&rl->opt, rl->policy->params_mem, rl->policy->grads_mem,
                               rl->policy->weights_mem, lr);
    if (!lifecycle_finite(&rl->lc, "the policy's gradient norm", rl->grad_norm)) return false;
    if (!rl->value) return true;
    model_zero_grad(rl->value);
    for (int m = 0; m < rl->mb; m += rl->micro) value_micro(rl, from + m, rl->micro, tokens, u);
    if (!losses_finite(rl, u)) return false;
    float norm = adamw_step(&rl->value_opt, rl->value->params_mem, rl->value->grads_mem,
                            rl->value->weights_mem, lr);
    return lifecycle_finite(&rl->lc, "the value model's gradient norm", norm);
}

static void update_stats_sum(const RlRun *rl, UpdateStats *u) {
    double v[] = {u->pg_loss, u->v_loss,  u->approx_kl, u->clipfrac,
                  u->entropy, u->kl_loss, u->tokens};
    global_sum(rl, v, COUNT(v));
    *u = (UpdateStats){.pg_loss = v[0],
                       .v_loss = v[1],
                       .approx_kl = v[2],
                       .clipfrac = v[3],
                       .entropy = v[4],
                       .kl_loss = v[5],
                       .tokens = v[6]};
}

// The epochs of minibatch steps; false at the first non-finite loss or gradient norm.
static bool update(RlRun *rl, UpdateStats *total) {
    const Stage *st = rl->sr->stage;
    rl->epochs_run = 0;
    for (int e = 0; e < st->epochs; e++) {
        for (int r = 0; r < rl->R; r++) rl->order[r] = r;
        rng_shuffle(rl->srng, rl->order, rl->R);
        UpdateStats u = {0};
        for (int m = 0; m < st->minibatches; m++)
            if (!minibatch_step(rl, m * rl->mb, &u)) return false;
        rl->epochs_run++;
        update_stats_sum(rl, &u); // the epoch's sums over every process: the same early stop
        total->pg_loss += u.pg_loss, total->v_loss += u.v_loss, total->approx_kl += u.approx_kl;
        total->clipfrac += u.clipfrac, total->entropy += u.entropy, total->kl_loss += u.kl_loss;
        total->tokens += u.tokens;
        // stop the epochs once the policy has moved too far from the one that sampled
        if (st->max_approx_kl > 0 && u.tokens > 0 && u.approx_kl / u.tokens > st->max_approx_kl)
            break;
    }
    return true;
}

// ---- one iteration ----------------------------------------------------------------------------

// The rollout's columns of an iteration's metrics row: what the policy sampled and scored, over
// the rollouts of every process.
static double log_rollout(RlRun *rl, Metrics *m) {
    size_t RT = (size_t)rl->R * rl->T;
    double v[6] = {0}; // score, accuracy, length, ended, entropy sum, entropy count
    for (int r = 0; r < rl->R; r++)
        v[0] += rl->scores[r], v[1] += rl->correct[r], v[2] += rl->rlen[r], v[3] += rl->ended[r];
    for (size_t i = 0; i < RT; i++)
        if (rl->mask[i]) v[4] += rl->entropy[i], v[5] += 1.0;
    global_sum(rl, v, COUNT(v));
    double n = rl->R_global;
    metrics_add(m, "objective/scores", v[0] / n);
    if (judge_knows_correct(rl->judge)) metrics_add(m, "objective/accuracy", v[1] / n);
    metrics_add(m, "objective/kl", rl->iter_kl);
    metrics_add(m, "objective/entropy", v[5] > 0 ? v[4] / v[5] : NAN);
    metrics_add(m, "response_length", v[2] / n);
    metrics_add(m, "response_ended", v[3] / n);
    return v[0] / n;
}

// The update's columns: losses and the policy's movement, per response token.
static void log_update(RlRun *rl, Metrics *m, const UpdateStats *u, double n) {
    const Stage *st = rl->sr->stage;
    metrics_add(m, "policy/approxkl", u->approx_kl / n);
    metrics_add(m, "policy/clipfrac", u->clipfrac / n);
    metrics_add(m, "loss/policy", u->pg_loss / n);
    if (rl->kind == STAGE_PPO) {
        metrics_add(m, "loss/value", u->v_loss / n);
        metrics_add(m, "val/explained_variance",
                    rl_explained_variance_global(rl->old_values, rl->ret, rl->mask,
                                                 (size_t)rl->R * rl->T, &rl->sum));
    }
    if (!st->kl.in_reward) metrics_add(m, "loss/kl", u->kl_loss / n);
    metrics_add(m, "beta", rl->klc_before);
    metrics_add(m, "epochs", rl->epochs_run);
    metrics_add(m, "lr", schedule_lr(&rl->sched, (float)st->optim.lr, rl->opt.step));
    metrics_add(m, "grad_norm", rl->grad_norm);
}

static void log_iteration(RlRun *rl, int64_t it, const UpdateStats *u, const double *times) {
    const Stage *st = rl->sr->stage;
    double n = u->tokens > 0 ? u->tokens : 1, loss = (u->pg_loss + st->value.coef * u->v_loss) / n;
    Metrics *m = rl->lc.metrics;
    metrics_begin(m, it);
    metrics_add(m, "loss", loss);
    double score = log_rollout(rl, m);
    log_update(rl, m, u, n);
    // the largest sampler/forward log-prob gap of any process; tokens sampled by all of them
    double *gap = lc_calloc((size_t)rl->world + 1, sizeof(double));
    gap[rl->rank] = rl->logp_diff, gap[rl->world] = (double)rl->rollout_tokens;
    global_sum(rl, gap, (size_t)rl->world + 1);
    double logp_diff = 0.0, rollout_tokens = gap[rl->world];
    for (int r = 0; r < rl->world; r++) logp_diff = gap[r] > logp_diff ? gap[r] : logp_diff;
    free(gap);
    metrics_add(m, "time/rollout", times[0]);
    metrics_add(m, "time/score", times[1]);
    metrics_add(m, "time/update", times[2]);
    metrics_add(m, "rollout_tokens_per_s", rollout_tokens / times[0]);
    metrics_add(m, "rollout/logp_diff", logp_diff);
    metrics_add(m, "tokens_per_s", rollout_tokens / (times[0] + times[1] + times[2]));
    metrics_add(m, "elapsed", time_now() - rl->t_start);
    metrics_end(m);
    char extra[256];
    snprintf(extra, sizeof(extra),
             "score %.3f  kl %.3f  beta %.4f  rollout/score/update %.1f/%.1f/%.1f s", score,
             rl->iter_kl, rl->klc_before, times[0], times[1], times[2]);
    progress_update(&rl->lc.progress, it, loss, rollout_tokens / times[0], extra);
}

// The sum of x over the response tokens (mask 1): finite exactly when every such x is.
static double masked_sum(const float *x, const float *mask, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (mask[i]) sum += x[i];
    return sum;
}

// Computes the scored rollout's advantages, then adapts the KL coefficient. Returns false (the
// coefficient untouched) when the rewards, the KL or the advantages are not finite.
static bool prepare(RlRun *rl) {
    size_t RT = (size_t)rl->R * rl->T;
    double sum = 0.0;
    for (int r = 0; r < rl->R; r++) sum += rl->scores[r];
    global_sum(rl, &sum, 1); // every check on every process's sum: all skip or none
    if (!lifecycle_finite(&rl->lc, "the reward", sum)) return false;
    forward_rollout(rl);
    rl->iter_kl = mean_seq_kl(rl);
    if (!lifecycle_finite(&rl->lc, "the KL to the reference", rl->iter_kl)) return false;
    rl->klc_before = rl->klc.coef;
    if (rl->kind == STAGE_PPO)
        advantages_ppo(rl);
    else
        advantages_group(rl);
    double adv = masked_sum(rl->adv, rl->mask, RT);
    global_sum(rl, &adv, 1);
    if (!lifecycle_finite(&rl->lc, "the advantage", adv)) return false;
    kl_controller_update(&rl->klc, rl->iter_kl, rl->R_global);
    return true;
}

// The sum of the log-probs every process's sampler drew the responses with (NaN once the
// policy is).
static double rollout_logp_sum(const RlRun *rl) {
    int maxnew = rl->sr->stage->rollout.max_new_tokens;
    double sum = 0.0;
    for (int r = 0; r < rl->R; r++)
        for (int i = 0; i < rl->rlen[r]; i++) sum += rl->out_logp[(size_t)r * maxnew + i];
    global_sum(rl, &sum, 1);
    return sum;
}

// The stream iteration samples and shuffles with: the checkpointed one with one process; with
// several, one drawn from it (alike on every rank) and derived with the rank, so the ranks
// sample differently and a resumed run continues as the uninterrupted one did.
static Rng *iteration_rng(RlRun *rl) {
    if (rl->world == 1) return &rl->rng;
    rl->rank_rng = rng_derive(rng_u64(&rl->rng), (uint64_t)rl->rank);
    return &rl->rank_rng;
}

// The LC_DUMP_ROLLOUTS test hook (see the top of this file).
static void dump_rollouts(const RlRun *rl, int64_t it) {
    const char *dir = getenv("LC_DUMP_ROLLOUTS");
    if (!dir || !dir[0]) return;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s-rank%d-iter%lld.txt", dir, rl->sr->stage->name, rl->rank,
             (long long)it);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "layercake: LC_DUMP_ROLLOUTS: cannot write %s\n", path);
        return;
    }
    for (int r = 0; r < rl->R; r++) fprintf(f, "%.9g\n", (double)rl->scores[r]);
    fclose(f);
}

// One iteration (the lifecycle's step): rollout, scoring and advantages, the update.
static int iteration_hook(void *ctx, int64_t it) {
    RlRun *rl = ctx;
    double t0 = time_now(), times[3];
    rl->srng = iteration_rng(rl);
    if (next_prompts(rl)) return 1;
    rollout(rl);
    times[0] = time_now() - t0;
    if (!lifecycle_finite(&rl->lc, "a sampled log-probability", rollout_logp_sum(rl)))
        return LIFECYCLE_BAD_STEP;
    t0 = time_now();
    // a judge that fails (a command that timed out, ...) stops the stage on every process
    if (run_agree(rl->sr->run, score(rl))) return 1;
    bool prepared = prepare(rl);
    dump_rollouts(rl, it);
    if (!prepared) return LIFECYCLE_BAD_STEP;
    times[1] = time_now() - t0;
    t0 = time_now();
    UpdateStats u = {0};
    if (!update(rl, &u)) return LIFECYCLE_BAD_STEP;
    times[2] = time_now() - t0;
    log_iteration(rl, it, &u, times);
    return 0;
}

static int models_hook(void *ctx, StateModel *sm, bool final) {
    RlRun *rl = ctx;
    sm[0] = (StateModel){.name = "policy", .model = rl->policy, .opt = final ? NULL : &rl->opt};
    if (!rl->value) return 1;
    sm[1] = (StateModel){.name = "value", .model = rl->value, .opt = final ? NULL : &rl->value_opt};
    return 2;
}

static int start_hook(void *ctx) {
    RlRun *rl = ctx;
    rl->t_start = time_now();
    return 0;
}

// ---- the stage
// ------------------------------------------------------------------------------------

static int setup(RlRun *rl) {
    const Stage *st = rl->sr->stage;
    if (sizes(rl)) return 1;
    if (make_models(rl) || open_prompts(rl)) return 1;
    alloc_buffers(rl);
    rl->inv_temp = 1.0f / (float)st->rollout.temperature;
    rl->klc = kl_controller_init(st->kl.coef, st->kl.target, st->kl.horizon);
    rl->rng = rng_init(stage_seed(rl->sr, "rl"));
    rl->sched = stage_schedule(st, st->iterations * st->epochs * st->minibatches);
    rl->lc = lifecycle_init(rl->sr, st->iterations, &rl->rng, rl->prompts_loader);
    rl->lc.unit = "iteration";
    lifecycle_add_scalar(&rl->lc, "kl_coef", &rl->klc.coef);
    printf("[%s] %s: %d iterations of %d prompts x %d samples = %d responses (<= %d new tokens, "
           "rows of %d); %d epochs x %d minibatches of %d (micro-batches of %d); reward: %s\n",
           st->name, stage_kind_name(st->kind), st->iterations, rl->P * rl->world, rl->G,
           rl->R_global, st->rollout.max_new_tokens, rl->T, st->epochs, st->minibatches,
           rl->mb * rl->world, rl->micro, judge_name(rl->judge));
    if (rl->world > 1)
        printf("[%s] %d processes: each generates and trains on %d prompts x %d samples = %d "
               "responses per iteration, minibatches of %d\n",
               st->name, rl->world, rl->P, rl->G, rl->R, rl->mb);
    report_memory(rl);
    return 0;
}

static void teardown(RlRun *rl) {
    sampler_free(rl->sampler);
    model_free(rl->policy_view), model_free(rl->value_view);
    if (rl->value) adamw_free(&rl->value_opt);
    if (rl->policy) adamw_free(&rl->opt);
    model_free(rl->policy), model_free(rl->value), model_free(rl->ref);
    judge_close(rl->judge);
    loader_free(rl->prompts_loader);
    free(rl->host);
}

int stage_rl(StageRun *sr) {
    static const LifecycleHooks hooks = {
        .start = start_hook,
        .step = iteration_hook,
        .models = models_hook,
    };
    RlRun rl = {.sr = sr, .kind = sr->stage->kind};
    int rc = setup(&rl);
    if (!rc) rc = lifecycle_run(&rl.lc, &hooks, &rl);
    teardown(&rl);
    return rc;
}
