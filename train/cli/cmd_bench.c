// train/cli/cmd_bench.c: `layercake bench`: the speed of a training step (forward, backward, AdamW)
// and of rollouts (KV-cache sampling against full recomputation) for a named model shape.
//
// Model FLOPs per token of a training step (forward x 3, the usual convention):
//   forward = 2 * (P_blocks + C Vp)   matrix products of the blocks (P_blocks = their matrices'
//                                      parameters: 12 L C^2 for GPT-2) and the LM head
//           + 2 L T C                  causal attention (QK^T and AV over T/2 keys on average)
// MFU = achieved model FLOP/s / the peak: on the CPU the one the bench measures with a 2048^3
// matrix product through the backend's own matmul (OpenBLAS sgemm); on CUDA the device's dense
// bf16 tensor-core peak (SMs x clock x FLOP per SM per clock), the usual reference for GPU MFU.
// Peak memory: the process's peak RSS, and on CUDA the device memory the backend held at most.
// Under mpirun or srun the training bench is data-parallel (docs/distributed.md): each process
// steps its own batch of B rows, the optimiser sums the gradients (--zero 0 or 1), tokens/s
// counts every process's tokens, and the bytes a process sends per step are those of a ring
// all-reduce (or reduce-scatter + all-gather) of the fp32 gradients: 2 (W-1)/W x 4 x params.
// With --lora-rank the step trains LoRA adapters over the frozen model (the FLOPs counted stay
// the model's forward x 3: the adapters' own are a few percent at rank 16). --ppo times one PPO
// update of the four roles (policy and value trained; reference and reward model forward only)
// held as four models, or with --lora-rank as one trunk: the policy's adapters, the reference as
// the adapters switched off, the value and the reward model as adapter sets of their own.
// --compare runs several configurations, each in a process of its own (this program again,
// with --json), so every figure, peak RSS included, is that configuration's alone.
#include "common/check.h"
#include "common/error.h"
#include "common/rng.h"
#include "common/timer.h"
#include "model/model.h"
#include "model/sample.h"
#include "kernels/collective.h"
#include "optim/optim.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include "train/run/memory.h"
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    ModelFamily family;
    int L, NH, C, V, maxT;
    int NKV, F; // 0: the family's default
    bool untied;
} Shape;

// GPT-2 shapes and two Llama-family ones: SmolLM-135M's, and TinyLlama-1.1B's with 4 of its
// 22 layers (the bench times steps, and 22 layers of it do not fit a laptop's patience).
static const Shape SHAPES[] = {
    {"tiny", MODEL_FAMILY_GPT2, 4, 4, 128, 4096, 256, 0, 0, false},
    {"small", MODEL_FAMILY_GPT2, 6, 6, 384, 8192, 512, 0, 0, false},
    {"gpt2-124m", MODEL_FAMILY_GPT2, 12, 12, 768, 50257, 1024, 0, 0, false},
    {"gpt2-350m", MODEL_FAMILY_GPT2, 24, 16, 1024, 50257, 1024, 0, 0, false},
    {"llama-smollm-135m", MODEL_FAMILY_LLAMA, 30, 9, 576, 49152, 2048, 3, 1536, false},
    {"llama-tinyllama-4l", MODEL_FAMILY_LLAMA, 4, 32, 2048, 32000, 2048, 4, 5632, true},
};

static ModelConfig shape_config(const Shape *s) {
    ModelConfig c = model_config_default(s->family, s->L, s->NH, s->C, s->V, s->maxT);
    if (s->NKV) c.n_kv_head = s->NKV;
    if (s->F) c.d_ff = s->F;
    c.tied = !s->untied;
    return c;
}

typedef struct {
    const Shape *shape;
    int B, T, steps, warmup, threads, prompt_len, new_tokens;
    bool json, rollout;
    const char *backend;      // "cpu" (default) or "cuda"
    const char *precision;    // "auto" (default), "fp32" or "bf16"
    const char *attention;    // "builtin" (default), "cudnn" or "flash"
    BackendOptions opts;      // the two above, parsed
    const char *recompute;    // the training model's: "none" (default), "attention" or "layer"
    ModelRecompute rc;        // recompute, parsed
    int zero;                 // data parallelism's ZeRO stage (0 or 1)
    int lora_rank;            // train LoRA adapters of this rank over the frozen model; 0: all
    const char *lora_targets; // the adapted projections, comma-separated ("all": every one)
    LoraConfig lora;          // the two above, parsed
    bool ppo;                 // time a PPO update of its four roles
    const char *compare;      // configurations to run side by side, or NULL
    Comm *comm;               // the processes mpirun or srun started (one: single)
} BenchArgs;

static const char DESCRIPTION[] =
    "Times training steps (forward, backward, AdamW) or, with --rollout, sampling with a KV\n"
    "cache against sampling by full recomputation, and reports ms/step, tokens/s, model-FLOPs\n"
    "utilisation (against the measured matmul peak on the CPU, the device's bf16 peak on CUDA),\n"
    "and peak RSS (and peak GPU memory on CUDA). --lora-rank trains adapters over the frozen\n"
    "model; --ppo times a PPO update of policy, reference, value and reward model (with\n"
    "--lora-rank: one trunk); --compare full,lora16,lora16+recompute runs configurations side\n"
    "by side, each in its own process (tokens: full, lora<R>, recompute[-attention], flash).\n"
    "models: tiny, small, gpt2-124m, gpt2-350m, llama-smollm-135m, llama-tinyllama-4l\n";

// Finds the shape and checks the sizes against its context; OPTIONS_CONTINUE or 2.
static int shape_check(const OptionsCommand *cmd, const char *model, BenchArgs *a) {
    for (size_t i = 0; i < sizeof(SHAPES) / sizeof(SHAPES[0]); i++)
        if (strcmp(model, SHAPES[i].name) == 0) a->shape = &SHAPES[i];
    if (!a->shape) return options_usage_error(cmd, "--model: unknown model '%s'", model);
    int maxT = a->shape->maxT;
    if (a->T > maxT)
        return options_usage_error(cmd, "--seq: %d is longer than %s's context (%d)", a->T, model,
                                   maxT);
    if (a->prompt_len + a->new_tokens > maxT)
        return options_usage_error(cmd,
                                   "--prompt-len + --new-tokens = %d is longer than %s's "
                                   "context (%d)",
                                   a->prompt_len + a->new_tokens, model, maxT);
    if (a->B == 0) a->B = a->rollout ? 16 : 4; // batch not given
    return OPTIONS_CONTINUE;
}

// --lora-rank and --lora-targets into a->lora (checked against the family by shape_check's
// caller); 0, or 2 after a usage error.
static int lora_parse(const OptionsCommand *cmd, BenchArgs *a) {
    a->lora = (LoraConfig){.rank = a->lora_rank, .alpha = 2.0f * (float)a->lora_rank};
    if (strcmp(a->lora_targets, "all") == 0) {
        a->lora.targets = (1u << LORA_TARGETS) - 1; // gate dropped for GELU families below
        return 0;
    }
    char bad[64];
    if (lora_targets_parse(a->lora_targets, &a->lora.targets, bad, sizeof(bad)) == 0) return 0;
    options_usage_error(
        cmd, "--lora-targets: '%s' is not a projection (q, k, v, o, gate, up, down)", bad);
    return 2;
}

static int parse(int argc, char **argv, BenchArgs *a) {
    *a = (BenchArgs){.T = 64,
                     .steps = 5,
                     .warmup = 1,
                     .prompt_len = 32,
                     .new_tokens = 64,
                     .backend = "cpu",
                     .precision = "auto",
                     .attention = "builtin",
                     .recompute = "none",
                     .lora_targets = "all"};
    const char *model = "gpt2-124m";
    const Option opts[] = {
        {"model", 'm', OPT_STRING, &model, 0, 0, false, "NAME", "model shape (default gpt2-124m)"},
        {"batch", 'b', OPT_INT, &a->B, 1, INFINITY, false, "B", "rows (default 4; rollout 16)"},
        {"seq", 0, OPT_INT, &a->T, 1, INFINITY, false, "T", "sequence length (default 64)"},
        {"steps", 0, OPT_INT, &a->steps, 1, INFINITY, false, "N", "timed steps (default 5)"},
        {"warmup", 0, OPT_INT, &a->warmup, 0, INFINITY, false, "N",
         "untimed steps first (default 1)"},
        {"threads", 'j', OPT_INT, &a->threads, 0, INFINITY, false, "N",
         "threads; 0: all cores (default 0)"},
        {"backend", 0, OPT_STRING, &a->backend, 0, 0, false, "NAME",
         "kernel backend: cpu or cuda (default cpu)"},
        {"precision", 0, OPT_STRING, &a->precision, 0, 0, false, "P",
         "auto, fp32 or bf16 (default auto: the backend's own)"},
        {"attention", 0, OPT_STRING, &a->attention, 0, 0, false, "A",
         "builtin, cudnn or flash (default builtin)"},
        {"recompute", 0, OPT_STRING, &a->recompute, 0, 0, false, "R",
         "recompute activations: none, attention or layer (default none)"},
        {"lora-rank", 0, OPT_INT, &a->lora_rank, 0, INFINITY, false, "R",
         "train LoRA adapters of rank R over the frozen model (alpha 2R); 0: every weight"},
        {"lora-targets", 0, OPT_STRING, &a->lora_targets, 0, 0, false, "LIST",
         "adapted projections, e.g. q,v (default all: q,k,v,o,up,down and gate when it has one)"},
        {"ppo", 0, OPT_FLAG, &a->ppo, 0, 0, false, NULL,
         "time a PPO update of policy, reference, value and reward model"},
        {"compare", 0, OPT_STRING, &a->compare, 0, 0, false, "CONFIGS",
         "run configurations side by side, each in its own process: comma-separated, each a "
         "+-joined set of full, lora<R>, recompute, recompute-attention, flash"},
        {"zero", 0, OPT_INT, &a->zero, 0, 1, false, "Z",
         "under mpirun/srun: ZeRO stage of data parallelism, 0 or 1 (default 0)"},
        {"json", 0, OPT_FLAG, &a->json, 0, 0, false, NULL, "print one JSON object"},
        {"rollout", 0, OPT_FLAG, &a->rollout, 0, 0, false, NULL, "time sampling instead"},
        {"prompt-len", 0, OPT_INT, &a->prompt_len, 1, INFINITY, false, "P",
         "rollout: prompt tokens (default 32)"},
        {"new-tokens", 0, OPT_INT, &a->new_tokens, 1, INFINITY, false, "N",
         "rollout: tokens to generate (default 64)"},
        {0}};
    const OptionsCommand cmd = {.name = "bench",
                                .synopsis = "[--rollout] [options]",
                                .summary =
                                    "measure training-step and rollout speed, MFU and memory",
                                .description = DESCRIPTION,
                                .options = opts};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    if (strcmp(a->backend, "cpu") != 0 && strcmp(a->backend, "cuda") != 0)
        return options_usage_error(&cmd, "--backend: unknown backend '%s' (cpu or cuda)",
                                   a->backend);
    const char *precisions[] = {"auto", "fp32", "bf16"},
               *attentions[] = {"builtin", "cudnn", "flash"};
    int p = -1, at = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(a->precision, precisions[i]) == 0) p = i;
    for (int i = 0; i < 3; i++)
        if (strcmp(a->attention, attentions[i]) == 0) at = i;
    if (p < 0)
        return options_usage_error(&cmd, "--precision: '%s' (auto, fp32 or bf16)", a->precision);
    if (at < 0)
        return options_usage_error(&cmd, "--attention: '%s' (builtin, cudnn or flash)",
                                   a->attention);
    a->opts = (BackendOptions){(BackendPrecision)p, (BackendAttention)at};
    const char *recomputes[] = {"none", "attention", "layer"}; // ModelRecompute order
    int rc_kind = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(a->recompute, recomputes[i]) == 0) rc_kind = i;
    if (rc_kind < 0)
        return options_usage_error(&cmd, "--recompute: '%s' (none, attention or layer)",
                                   a->recompute);
    a->rc = (ModelRecompute)rc_kind;
    if (lora_parse(&cmd, a)) return 2;
    if (a->compare && (a->rollout || a->json))
        return options_usage_error(&cmd, "--compare runs training benchmarks and prints a table: "
                                         "without --rollout and --json");
    return shape_check(&cmd, model, a);
}

static bool is_cuda(const Backend *be) {
    return strcmp(be->name, "cuda") == 0;
}

// Waits for the backend's queued work (a GPU runs it asynchronously): a tiny copy to the host.
static void device_sync(const Backend *be, const Model *m) {
    float x;
    be->to_host(&x, m->params_mem, sizeof(x));
}

// Best of a few 2048^3 products through the backend: the peak FLOP/s the MFU is relative to; on
// CUDA the device's bf16 peak instead.
static double measure_peak_once(const Backend *be) {
    if (is_cuda(be)) {
        char name[256];
        double peak = backend_cuda_bf16_peak(name, sizeof(name));
        if (peak > 0) return peak;
    }
    int n = 2048;
    size_t bytes = (size_t)n * n * be->act_size;
    Act *a = be->alloc(bytes), *b = be->alloc(bytes), *c = be->alloc(bytes);
    double best = 0.0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = time_now();
        be->matmul_forward(c, a, b, NULL, n, n, n);
        double dt = time_now() - t0;
        if (rep > 0 && 2.0 * n * n * (double)n / dt > best) best = 2.0 * n * n * (double)n / dt;
    }
    be->free(a), be->free(b), be->free(c);
    return best;
}

// The device the figures are for ("cpu", or the GPU's name) and the device memory the CUDA
// backend held at most (MB; 0 on the CPU, where peak RSS says it).
static double device_figures(const Backend *be, char *name, size_t len) {
    snprintf(name, len, "cpu");
    if (!is_cuda(be)) return 0.0;
    backend_cuda_bf16_peak(name, len);
    size_t peak = 0;
    backend_cuda_memory(&peak);
    return peak / 1e6;
}

// The best of measurements before (`before`) and after the timed run: a burst of load from
// other processes during one of them cannot inflate the MFU.
static double measure_peak(const Backend *be, double before) {
    double after = measure_peak_once(be);
    return after > before ? after : before;
}

// Parameters of the blocks' matrices: what a token multiplies through below the LM head.
static double block_matrix_params(const Model *m) {
    double L = m->cfg.n_layer, C = m->cfg.d_model;
    return L * C * (m->qkv_dim + C + m->fc_dim + m->cfg.d_ff);
}

static double flops_per_token(const Model *m, int T) {
    double L = m->cfg.n_layer, C = m->cfg.d_model, Vp = m->Vp;
    return 3.0 * (2.0 * (block_matrix_params(m) + C * Vp) + 2.0 * L * T * C);
}

static void random_batch(Batch *b, int B, int T, int V, Rng *r) {
    *b = (Batch){.B = B, .T = T};
    b->tokens = lc_malloc(sizeof(int) * (size_t)B * (T + 1));
    b->targets = lc_malloc(sizeof(int) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) b->tokens[i] = (int)rng_below(r, V);
    for (int i = 0; i < B * T; i++) b->targets[i] = (int)rng_below(r, V);
}

// The adapters of --lora-rank for the family of cfg (gate only where the MLP has one).
static LoraConfig bench_lora(const BenchArgs *a, const ModelConfig *cfg) {
    LoraConfig c = a->lora;
    if (cfg->family == MODEL_FAMILY_GPT2) c.targets &= ~(1u << LORA_GATE);
    return c;
}

// A trained model of the bench's shape with its recomputation and, with --lora-rank, adapters.
static Model *train_model(const BenchArgs *a, const Backend *be, int heads) {
    Model *m = model_create(be, shape_config(a->shape), heads, MODEL_TRAIN, a->B, a->T);
    model_init_weights(m, 1);
    model_set_recompute(m, a->rc);
    char err[256];
    LoraConfig c = bench_lora(a, &m->cfg);
    if (c.rank > 0 && model_lora_attach(m, &c, 2, err, sizeof(err)) != 0)
        LC_DIE("--lora-rank: %s", err);
    return m;
}

static int bench_train(const BenchArgs *a, const Backend *be, double peak) {
    Model *m = train_model(a, be, MODEL_HEAD_LM);
    AdamW opt;
    Comm *comm = a->comm;
    int W = comm->world;
    adamw_init_parallel(&opt, be, &m->train_table,
                        (AdamWConfig){3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f}, comm, a->zero == 1);
    Rng r = rng_init(2 + (uint64_t)comm->rank); // each process its own rows
    Batch b;
    random_batch(&b, a->B, a->T, a->shape->V, &r);
    double t0 = 0.0, loss = 0.0;
    for (int s = 0; s < a->warmup + a->steps; s++) {
        if (s == a->warmup) comm->barrier(comm), t0 = time_now();
        model_zero_grad(m);
        loss = model_forward(m, &b, 1.0f);
        model_backward_ce(m, model_mask_sum(m) * W);
        adamw_step(&opt, m->params_mem, m->grads_mem, m->weights_mem, 3e-4f);
    }
    device_sync(be, m);
    comm->barrier(comm);
    double step = (time_now() - t0) / a->steps, tps = (double)W * a->B * a->T / step;
    double comm_mb = W > 1 ? 2.0 * (W - 1) / W * 4.0 * (double)m->train_table.numel / 1e6 : 0.0;
    peak = measure_peak(be, peak);
    double mfu = tps * flops_per_token(m, a->T) / (peak * W); // W processes, each its peak
    double params_m = (double)m->table.numel / 1e6;
    char dev[256];
    double gpu_mb = device_figures(be, dev, sizeof(dev));
    if (a->json)
        printf("{\"bench\": \"train\", \"model\": \"%s\", \"params_m\": %.2f, \"batch\": %d, "
               "\"seq\": %d, \"threads\": %d, \"ms_per_step\": %.2f, \"tokens_per_s\": %.1f, "
               "\"mfu\": %.4f, \"peak_gflops\": %.1f, \"peak_rss_mb\": %.1f, \"loss\": %.4f, "
               "\"backend\": \"%s\", \"precision\": \"%s\", \"device\": \"%s\", "
               "\"peak_gpu_mb\": %.1f, \"processes\": %d, \"zero\": %d, "
               "\"comm_mb_per_step\": %.2f, \"recompute\": \"%s\", \"activation_mb\": %.1f, "
               "\"lora_rank\": %d, \"trained_params_m\": %.3f, \"weights_mb\": %.1f, "
               "\"grads_mb\": %.1f, \"optim_mb\": %.1f}\n",
               a->shape->name, params_m, a->B, a->T, be->threads(0), step * 1e3, tps, mfu,
               peak / 1e9, peak_rss_mb(), loss, be->name, a->precision, dev, gpu_mb, W, a->zero,
               comm_mb, a->recompute, model_act_bytes(m) / 1e6, a->lora.rank,
               (double)m->train_table.numel / 1e6, model_weight_bytes(m) / 1e6,
               model_grad_bytes(m) / 1e6, memory_adamw_bytes(&opt) / 1e6);
    else
        printf("bench train %s (%.1fM params) batch %d x %d, %d threads, %d steps\n"
               "  %.1f ms/step  %.1f tokens/s  MFU %.1f%% of %.1f GFLOP/s measured peak\n"
               "  arenas: params %.1f MB, grads %.1f MB, AdamW %.1f MB, activations %.1f MB "
               "(%zu bytes, recompute %s); peak RSS %.1f MB\n",
               a->shape->name, params_m, a->B, a->T, be->threads(0), a->steps, step * 1e3, tps,
               100 * mfu, peak / 1e9, model_param_bytes(m) / 1e6, model_grad_bytes(m) / 1e6,
               2.0 * (double)(opt.end - opt.begin) * sizeof(float) / 1e6, model_act_bytes(m) / 1e6,
               model_act_bytes(m), a->recompute, peak_rss_mb());
    if (!a->json && a->lora.rank > 0)
        printf("  LoRA rank %d over the frozen model: %.3fM trained parameters\n", a->lora.rank,
               (double)m->train_table.numel / 1e6);
    if (!a->json && is_cuda(be))
        printf("  device %s, precision %s; peak GPU memory %.1f MB\n", dev, a->precision, gpu_mb);
    if (!a->json && W > 1)
        printf("  %d processes x batch %d (ZeRO-%d): tokens/s counts all of them; each sends "
               "%.2f MB of gradients and weights per step\n",
               W, a->B, a->zero, comm_mb);
    free(b.tokens), free(b.targets);
    adamw_free(&opt);
    model_free(m);
    return 0;
}

// ---- PPO's four roles ---------------------------------------------------------------------------

typedef struct {
    Model *policy, *ref, *value, *rm;
    AdamW policy_opt, value_opt;
    MemoryPlan plan;
} PpoModels;

// The four roles as four models (policy and value trained, reference and reward model frozen),
// or with --lora-rank on one trunk: the policy's adapters over it, the reference the adapters
// off, the value (trained) and the reward model (frozen) adapter sets with scalar heads of their
// own.
static void ppo_models(const BenchArgs *a, const Backend *be, PpoModels *p) {
    ModelConfig cfg = shape_config(a->shape);
    AdamWConfig oc = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    p->policy = train_model(a, be, MODEL_HEAD_LM);
    if (a->lora.rank > 0) {
        LoraConfig c = bench_lora(a, &cfg);
        p->ref = model_create_base_view(p->policy, a->B, a->T);
        p->value =
            model_create_adapter_view(p->policy, MODEL_HEAD_SCALAR, MODEL_TRAIN, a->B, a->T, &c, 3);
        model_set_recompute(p->value, a->rc);
        p->rm =
            model_create_adapter_view(p->policy, MODEL_HEAD_SCALAR, MODEL_INFER, a->B, a->T, &c, 4);
    } else {
        p->ref = model_create(be, cfg, MODEL_HEAD_LM, MODEL_INFER, a->B, a->T);
        model_init_weights(p->ref, 1);
        p->value = train_model(a, be, MODEL_HEAD_SCALAR);
        p->rm = model_create(be, cfg, MODEL_HEAD_SCALAR, MODEL_INFER, a->B, a->T);
        model_init_weights(p->rm, 4);
    }
    adamw_init(&p->policy_opt, be, &p->policy->train_table, oc);
    adamw_init(&p->value_opt, be, &p->value->train_table, oc);
    memory_plan_init(&p->plan);
    memory_plan_add_model(&p->plan, "policy", p->policy, &p->policy_opt);
    memory_plan_add_model(&p->plan, "reference", p->ref, NULL);
    memory_plan_add_model(&p->plan, "value", p->value, &p->value_opt);
    memory_plan_add_model(&p->plan, "reward model", p->rm, NULL);
}

static void ppo_models_free(PpoModels *p) {
    adamw_free(&p->policy_opt), adamw_free(&p->value_opt);
    model_free(p->rm), model_free(p->value), model_free(p->ref); // views before their trunk
    model_free(p->policy);
}

// One update on batch b: the reference's and the reward model's forward passes, then a policy
// and a value step (cross-entropy and a mean-value objective stand in for PPO's losses: the
// same passes at the same sizes). Returns the policy's loss.
static float ppo_update(PpoModels *p, const Batch *b, float *dvalues) {
    model_forward(p->ref, b, 1.0f);
    model_forward(p->rm, b, 1.0f);
    model_zero_grad(p->value);
    model_forward(p->value, b, 1.0f);
    model_backward(p->value, NULL, NULL, dvalues);
    adamw_step(&p->value_opt, p->value->params_mem, p->value->grads_mem, p->value->weights_mem,
               3e-4f);
    model_zero_grad(p->policy);
    float loss = model_forward(p->policy, b, 1.0f);
    model_backward_ce(p->policy, model_mask_sum(p->policy));
    adamw_step(&p->policy_opt, p->policy->params_mem, p->policy->grads_mem, p->policy->weights_mem,
               3e-4f);
    return loss;
}

static int bench_ppo(const BenchArgs *a, const Backend *be) {
    PpoModels p;
    ppo_models(a, be, &p);
    Rng r = rng_init(2);
    Batch b;
    random_batch(&b, a->B, a->T, a->shape->V, &r);
    float *dv = lc_malloc(sizeof(float) * (size_t)a->B * a->T);
    for (int i = 0; i < a->B * a->T; i++) dv[i] = 1.0f / (float)(a->B * a->T);
    double t0 = 0.0, loss = 0.0;
    for (int s = 0; s < a->warmup + a->steps; s++) {
        if (s == a->warmup) t0 = time_now();
        loss = ppo_update(&p, &b, dv);
    }
    device_sync(be, p.policy);
    double step = (time_now() - t0) / a->steps, tps = (double)a->B * a->T / step;
    size_t total = memory_plan_total(&p.plan);
    if (a->json)
        printf("{\"bench\": \"ppo\", \"model\": \"%s\", \"batch\": %d, \"seq\": %d, "
               "\"threads\": %d, \"ms_per_step\": %.2f, \"tokens_per_s\": %.1f, "
               "\"peak_rss_mb\": %.1f, \"loss\": %.4f, \"backend\": \"%s\", \"recompute\": "
               "\"%s\", \"lora_rank\": %d, \"trunks\": %d, \"planned_mb\": %.1f, "
               "\"weights_mb\": %.1f, \"grads_mb\": %.1f, \"optim_mb\": %.1f, "
               "\"activation_mb\": %.1f, \"trained_params_m\": %.3f}\n",
               a->shape->name, a->B, a->T, be->threads(0), step * 1e3, tps, peak_rss_mb(), loss,
               be->name, a->recompute, a->lora.rank, a->lora.rank > 0 ? 1 : 4, total / 1e6,
               memory_plan_column_total(&p.plan, MEM_WEIGHTS) / 1e6,
               memory_plan_column_total(&p.plan, MEM_GRADIENTS) / 1e6,
               memory_plan_column_total(&p.plan, MEM_OPTIMISER) / 1e6,
               memory_plan_column_total(&p.plan, MEM_ACTIVATIONS) / 1e6,
               (double)(p.policy->train_table.numel + p.value->train_table.numel) / 1e6);
    else {
        printf("bench ppo %s batch %d x %d, %d threads, %d updates: %s\n"
               "  %.1f ms/update  %.1f tokens/s; planned %.1f MB; peak RSS %.1f MB\n",
               a->shape->name, a->B, a->T, be->threads(0), a->steps,
               a->lora.rank > 0 ? "one trunk (LoRA: reference = adapters off, value and reward "
                                  "model adapter sets)"
                                : "four models",
               step * 1e3, tps, total / 1e6, peak_rss_mb());
        memory_plan_print(&p.plan, "ppo", stdout);
    }
    free(dv), free(b.tokens), free(b.targets);
    ppo_models_free(&p);
    return 0;
}

// ---- configurations side by side ----------------------------------------------------------------

// Appends the options of one --compare configuration ("lora16+recompute") to argv; 0, or -1 on
// an unknown token (named in err).
static int config_args(char *spec, char **argv, int *argc, char *err, size_t errlen) {
    static char ranks[8][16];
    static int nranks;
    for (char *save = NULL, *tok = strtok_r(spec, "+", &save); tok;
         tok = strtok_r(NULL, "+", &save)) {
        if (strcmp(tok, "full") == 0) continue;
        if (strncmp(tok, "lora", 4) == 0 && atoi(tok + 4) > 0 && nranks < 8) {
            snprintf(ranks[nranks], sizeof(ranks[0]), "%d", atoi(tok + 4));
            argv[(*argc)++] = "--lora-rank", argv[(*argc)++] = ranks[nranks++];
        } else if (strcmp(tok, "recompute") == 0 || strcmp(tok, "recompute-layer") == 0) {
            argv[(*argc)++] = "--recompute", argv[(*argc)++] = "layer";
        } else if (strcmp(tok, "recompute-attention") == 0) {
            argv[(*argc)++] = "--recompute", argv[(*argc)++] = "attention";
        } else if (strcmp(tok, "flash") == 0) {
            argv[(*argc)++] = "--attention", argv[(*argc)++] = "flash";
        } else {
            return lc_error(err, errlen,
                            "--compare: '%s' is not a configuration token (full, lora<R>, "
                            "recompute, recompute-attention, flash)",
                            tok);
        }
    }
    return 0;
}

// Runs `layercake bench --json` with argv's options (without --compare) plus the configuration's
// in a child process and parses its one line; NULL (after a message) when it fails.
static json_t *run_config(int argc, char **argv, const char *spec) {
    char buf[256], err[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    char **args = lc_calloc((size_t)argc + 16, sizeof(char *));
    int n = 0;
    args[n++] = "layercake";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--compare") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--compare=", 10) == 0) continue;
        args[n++] = argv[i];
    }
    args[n++] = "--json";
    json_t *row = NULL;
    if (config_args(buf, args, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake bench: %s\n", err);
        free(args);
        return NULL;
    }
    int fd[2];
    pid_t pid;
    posix_spawn_file_actions_t fa;
    if (pipe(fd) != 0) LC_DIE("bench --compare: pipe failed");
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    extern char **environ;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    char out[8192];
    size_t len = 0;
    ssize_t got;
    while (rc == 0 && (got = read(fd[0], out + len, sizeof(out) - 1 - len)) > 0) len += (size_t)got;
    out[len] = 0;
    close(fd[0]);
    int status = 0;
    if (rc == 0) waitpid(pid, &status, 0);
    json_error_t je;
    if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        !(row = json_loads(out, JSON_DISABLE_EOF_CHECK, &je)))
        fprintf(stderr, "layercake bench: configuration '%s' failed (%s)\n", spec,
                rc ? "cannot start" : "see above");
    free(args);
    return row;
}

static double num(const json_t *row, const char *key) {
    return json_number_value(json_object_get(row, key));
}

static int bench_compare(const BenchArgs *a, int argc, char **argv) {
    char list[512];
    snprintf(list, sizeof(list), "%s", a->compare);
    json_t *rows[16];
    const char *names[16];
    int n = 0;
    for (char *save = NULL, *spec = strtok_r(list, ",", &save); spec && n < 16;
         spec = strtok_r(NULL, ",", &save)) {
        names[n] = spec;
        if (!(rows[n] = run_config(argc, argv, spec))) {
            for (int i = 0; i < n; i++) json_decref(rows[i]);
            return 1;
        }
        n++;
    }
    printf("bench %s %s batch %d x %d, %d steps per configuration, each in its own process\n",
           a->ppo ? "ppo" : "train", a->shape->name, a->B, a->T, a->steps);
    printf("  %-24s %10s %10s %10s %8s %12s %12s %10s %8s\n", "configuration", "trained M",
           "ms/step", "tokens/s", "time", "planned MB", "activ. MB", "peak RSS", "memory");
    double t0 = num(rows[0], "ms_per_step"), m0 = num(rows[0], "peak_rss_mb");
    for (int i = 0; i < n; i++) {
        double planned = a->ppo ? num(rows[i], "planned_mb")
                                : num(rows[i], "weights_mb") + num(rows[i], "grads_mb") +
                                      num(rows[i], "optim_mb") + num(rows[i], "activation_mb");
        printf("  %-24s %10.3f %10.1f %10.1f %7.2fx %12.1f %12.1f %10.1f %7.2fx\n", names[i],
               num(rows[i], "trained_params_m"), num(rows[i], "ms_per_step"),
               num(rows[i], "tokens_per_s"), num(rows[i], "ms_per_step") / t0, planned,
               num(rows[i], "activation_mb"), num(rows[i], "peak_rss_mb"),
               num(rows[i], "peak_rss_mb") / m0);
        json_decref(rows[i]);
    }
    printf("  (time and memory relative to the first configuration; peak RSS in MB)\n");
    return 0;
}

// Tokens per second of generating new_tokens for B prompts, with or without the cache.
static double time_rollout(const Model *m, const BenchArgs *a, int use_cache, const int *prompts,
                           const int *plen) {
    int len = a->prompt_len + a->new_tokens;
    Sampler *s = sampler_create(m, a->B, len, use_cache);
    SampleParams p = {.temperature = 1.0f,
                      .top_k = 0,
                      .top_p = 1.0f,
                      .stop_token = -1,
                      .max_new_tokens = a->new_tokens};
    int *out = lc_malloc(sizeof(int) * (size_t)a->B * a->new_tokens),
        *olen = lc_malloc(sizeof(int) * a->B);
    float *lp = lc_malloc(sizeof(float) * (size_t)a->B * a->new_tokens);
    Rng r = rng_init(3);
    double t0 = time_now();
    long n = sampler_generate(s, prompts, a->prompt_len, plen, a->B, &p, &r, out, lp, olen);
    double tps = (double)n / (time_now() - t0);
    free(out), free(olen), free(lp);
    sampler_free(s);
    return tps;
}

static int bench_rollout(const BenchArgs *a, const Backend *be, double peak) {
    int len = a->prompt_len + a->new_tokens;
    Model *m = model_create(be, shape_config(a->shape), MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(m, 1);
    Rng r = rng_init(4);
    int *prompts = lc_malloc(sizeof(int) * (size_t)a->B * a->prompt_len),
        *plen = lc_malloc(sizeof(int) * a->B);
    for (int i = 0; i < a->B * a->prompt_len; i++) prompts[i] = (int)rng_below(&r, a->shape->V);
    for (int b = 0; b < a->B; b++) plen[b] = a->prompt_len;
    double cached = time_rollout(m, a, 1, prompts, plen);
    double recompute = time_rollout(m, a, 0, prompts, plen);
    peak = measure_peak(be, peak);
    double decode_flops = 2.0 * (block_matrix_params(m) + (double)m->cfg.d_model * m->Vp);
    char dev[256];
    double gpu_mb = device_figures(be, dev, sizeof(dev));
    if (a->json)
        printf("{\"bench\": \"rollout\", \"model\": \"%s\", \"batch\": %d, \"prompt_len\": %d, "
               "\"new_tokens\": %d, \"threads\": %d, \"kv_cache_tokens_per_s\": %.1f, "
               "\"recompute_tokens_per_s\": %.1f, \"speedup\": %.2f, \"mfu\": %.4f, "
               "\"peak_gflops\": %.1f, \"peak_rss_mb\": %.1f, \"backend\": \"%s\", "
               "\"precision\": \"%s\", \"device\": \"%s\", \"peak_gpu_mb\": %.1f}\n",
               a->shape->name, a->B, a->prompt_len, a->new_tokens, be->threads(0), cached,
               recompute, cached / recompute, cached * decode_flops / peak, peak / 1e9,
               peak_rss_mb(), be->name, a->precision, dev, gpu_mb);
    else
        printf("bench rollout %s batch %d, prompt %d + %d new tokens (%d positions), %d threads\n"
               "  KV cache:       %.1f tokens/s (MFU %.1f%%)\n"
               "  recompute all:  %.1f tokens/s\n"
               "  speedup %.1fx; peak RSS %.1f MB\n",
               a->shape->name, a->B, a->prompt_len, a->new_tokens, len, be->threads(0), cached,
               100 * cached * decode_flops / peak, recompute, cached / recompute, peak_rss_mb());
    if (!a->json && is_cuda(be))
        printf("  device %s, precision %s; peak GPU memory %.1f MB\n", dev, a->precision, gpu_mb);
    free(prompts), free(plen);
    model_free(m);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    BenchArgs a;
    int rc = parse(argc, argv, &a);
    if (rc != OPTIONS_CONTINUE) return rc;
    if (a.compare) return bench_compare(&a, argc, argv);
    char why[1024];
    const Backend *be = backend_open(a.backend, &a.opts, why, sizeof(why));
    if (!be) { // not built in, no usable GPU, kernels missing, or an unknown name
        fprintf(stderr, "layercake bench: --backend %s: %s\n", a.backend, why);
        return 1;
    }
    be->threads(a.threads);
    a.comm = comm_open(be, why, sizeof(why));
    if (!a.comm) {
        fprintf(stderr, "layercake bench: %s\n", why);
        return 1;
    }
    if (a.comm->rank != 0 && !freopen("/dev/null", "w", stdout)) // rank 0 reports
        fprintf(stderr, "layercake bench: rank %d: cannot silence stdout\n", a.comm->rank);
    double peak = measure_peak_once(be);
    rc = a.rollout ? bench_rollout(&a, be, peak)
         : a.ppo   ? bench_ppo(&a, be)
                   : bench_train(&a, be, peak);
    comm_close(a.comm);
    return rc;
}
