// train/recipe/schema.c: the recipe schema, one table of every key (path, type, default, range,
// stage kinds, meaning, storage), and lookups over it. Adding a key is one line here plus its
// field in recipe.h; loading, printing, comparing, freeing and docs/recipes.md follow the table.
#include "train/recipe/recipe-impl.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

const char *const STAGE_KIND_NAMES[] = {
    "pretrain", "sft",           "reward",          "dpo",   "ppo",           "grpo", "rloo",
    "eval",     "self_instruct", "critique_revise", "label", "iterative_dpo", NULL};
static const char *const BACKENDS[] = {"cpu", "cuda", NULL};
static const char *const PRECISIONS[] = {"auto", "fp32", "bf16", NULL};       // PrecisionKind order
static const char *const ATTENTIONS[] = {"builtin", "cudnn", "flash", NULL};  // AttentionKind order
static const char *const RECOMPUTES[] = {"none", "attention", "layer", NULL}; // ModelRecompute
static const char *const FAMILIES[] = {"gpt2", "llama", NULL};                // ModelFamily order
static const char *const OPTIMS[] = {"adamw", NULL};
static const char *const SCHEDULES[] = {"constant", "cosine", "linear", NULL};
static const char *const DPO_LOSSES[] = {"sigmoid", "ipo",  "robust", "hinge",
                                         "simpo",   "orpo", "kto",    NULL};
static const char *const REFERENCES[] = {"cached", "live", NULL};
static const char *const VALUE_INITS[] = {"reward_model", "policy", NULL};
static const char *const LORA_INITS[] = {"kaiming", "gaussian", NULL}; // LoraInitKind order
static const char *const KL_ESTIMATORS[] = {"k1", "k3", NULL};
static const char *const LABEL_PAIRS[] = {"best_worst", "best_random", "all_pairs", NULL};
static const char *const ITERATIVE_REFERENCES[] = {"init", "round", NULL};
static const char *const JUDGE_KINDS[] = {"none", "match", "command", "model", NULL}; // JudgeKind

_Static_assert(sizeof(StageKind) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(ModelRecompute) == sizeof(int) && MODEL_RECOMPUTE_NONE == 0 &&
                   MODEL_RECOMPUTE_ATTENTION == 1 && MODEL_RECOMPUTE_LAYER == 2,
               "recompute is stored as an int in RECOMPUTES order");

// The path, scope and storage of a key, from one field designator so they cannot drift apart.
#define TOP(f) #f, SCOPE_RECIPE, offsetof(Recipe, f), sizeof(((Recipe *)0)->f)
#define STG(f) #f, SCOPE_STAGE, offsetof(Stage, f), sizeof(((Stage *)0)->f)

#define REQUIRED NULL // no default: the key must be given
#define ANY                                                                                        \
    { -INFINITY, INFINITY, false, false }
#define ATLEAST(x)                                                                                 \
    { (x), INFINITY, false, false }
#define ABOVE(x)                                                                                   \
    { (x), INFINITY, true, false }
#define IN(a, b)                                                                                   \
    { (a), (b), false, false }
#define IN_CO(a, b)                                                                                \
    { (a), (b), false, true } // [a, b)
#define IN_OC(a, b)                                                                                \
    { (a), (b), true, false } // (a, b]
#define IN_OO(a, b)                                                                                \
    { (a), (b), true, true } // (a, b)

// clang-format off
const Key SCHEMA[] = {
    // ---- top level --------------------------------------------------------------------------
    {TOP(name), KEY_STRING, 0, REQUIRED, .doc = "run name ([A-Za-z0-9_.-]+)"},
    {TOP(seed), KEY_INT, 0, "1234", ATLEAST(0), .doc = "seed of every random stream in the run"},
    {TOP(output_dir), KEY_STRING, 0, "\"\"", .flags = KEY_OUTPUT_PATH,
     .doc = "run directory, relative to the working directory; \"\" = runs/<name>"},
    {TOP(backend), KEY_ENUM, 0, "cpu", .names = BACKENDS, .doc = "kernel backend"},
    {TOP(precision), KEY_ENUM, 0, "auto", .names = PRECISIONS,
     .doc = "the backend's storage and arithmetic: auto = the backend's own (fp32 on cpu, bf16 "
            "on cuda); bf16 = bf16 activations and compute weights, matrix products on bf16 "
            "tensor cores with fp32 accumulation, fp32 master weights, gradients and optimiser "
            "state, fp32 losses, log-probs, KL and advantages (cuda); fp32 = fp32 everywhere "
            "(cuda: for debugging)"},
    {TOP(attention), KEY_ENUM, 0, "builtin", .names = ATTENTIONS,
     .doc = "attention kernels: builtin = the backend's own (cpu: exact softmax saving the "
            "B x n_head x T x T probabilities; cuda: flash-style, no T x T matrix in memory); "
            "cudnn = cuDNN's fused scaled-dot-product attention (cuda); flash = blocked "
            "online-softmax kernels saving only a logsumexp per query row (cpu; on cuda the "
            "same as builtin)"},
    {TOP(recompute), KEY_ENUM, 0, "none", .names = RECOMPUTES,
     .doc = "activation recomputation of the models a stage trains, trading compute for "
            "memory with unchanged gradients: none = keep every layer's activations for the "
            "backward; attention = keep all but the attention's output and state (cpu: the "
            "B x n_head x T x T probabilities), which get one layer's room and are recomputed "
            "from the saved q, k, v before each layer's backward; layer = keep only each "
            "layer's input (the residual stream), and re-run each layer's forward into one "
            "layer's room before its backward (about one more forward pass per step)"},
    {TOP(threads), KEY_INT, 0, "0", ATLEAST(0), .doc = "CPU threads; 0 = all cores"},
    {TOP(zero), KEY_INT, 0, "0", IN(0, 1),
     .doc = "data parallelism over the processes mpirun or srun started (docs/distributed.md): "
            "0 = gradients all-reduced, every process updates every weight; 1 = ZeRO-1: "
            "gradients reduce-scattered, each process updates its slice of the fp32 master "
            "weights and holds only that slice of the AdamW moments; one process: no effect"},
    {TOP(tokenizer), KEY_STRING, 0, REQUIRED, .flags = KEY_INPUT_PATH,
     .doc = "a tokenizer: layercake's or Hugging Face's .json, SentencePiece's .model, "
            "llama2.c's .bin, or a folder holding one (tokenizer.json, tokenizer.model, or "
            "GPT-2's encoder.json and vocab.bpe)"},
    {TOP(prepare), KEY_STRINGS, 0, "[]", ANY,
     .doc = "layercake commands that make the recipe's tokenizer and datasets (e.g. \"data "
            "synth --task arithmetic --out data/arith\"), run in order from the recipe's folder "
            "before the stages; a command whose --out path exists is skipped"},
    {TOP(model.from), KEY_STRING, 0, "\"\"", .flags = KEY_INPUT_PATH,
     .doc = "a .h5 checkpoint or a Hugging Face model folder: the model's family and shape are "
            "read from it (the other model keys stay unset) and stages without init start from "
            "its weights; it must exist when the recipe loads (prepare runs later)"},
    {TOP(model.family), KEY_ENUM, 0, "gpt2", .names = FAMILIES, .doc = "transformer family"},
    {TOP(model.n_layer), KEY_INT, 0, "4", IN(1, 256), .doc = "transformer blocks"},
    {TOP(model.n_head), KEY_INT, 0, "4", ATLEAST(1), .doc = "attention heads per block"},
    {TOP(model.n_kv_head), KEY_INT, 0, "0", ATLEAST(0),
     .doc = "key/value heads, dividing n_head (grouped-query attention; llama); 0 = n_head"},
    {TOP(model.d_model), KEY_INT, 0, "128", ATLEAST(1),
     .doc = "residual stream width; divisible by n_head"},
    {TOP(model.d_ff), KEY_INT, 0, "0", ATLEAST(0),
     .doc = "MLP hidden width; 0 = the family's: 4 d_model (gpt2), 8 d_model / 3 rounded up to "
            "a multiple of 32 (llama)"},
    {TOP(model.vocab_size), KEY_INT, 0, "0", ATLEAST(0),
     .doc = "token embedding rows; 0 = the tokenizer's vocabulary size"},
    {TOP(model.max_seq_len), KEY_INT, 0, "256", ATLEAST(1),
     .doc = "positions the model has (its context length)"},
    {TOP(model.norm_eps), KEY_FLOAT, 0, "1.0e-5", IN_OO(0, 1),
     .doc = "RMSNorm epsilon (llama; gpt2's LayerNorm uses 1e-5)"},
    {TOP(model.rope_theta), KEY_FLOAT, 0, "10000", ABOVE(1),
     .doc = "rotary position embedding base (llama)"},
    {TOP(model.tied), KEY_BOOL, 0, "true", ANY,
     .doc = "the output layer shares the token embedding (gpt2: always)"},
    {TOP(model.qkv_bias), KEY_BOOL, 0, "false", ANY,
     .doc = "biases on the q, k, v projections (llama, as Qwen2; gpt2 always has them)"},

    // ---- every stage ------------------------------------------------------------------------
    {STG(name), KEY_STRING, K_ALL, REQUIRED, .flags = KEY_IDENTITY,
     .doc = "unique stage name ([A-Za-z0-9_-]+); later stages and overrides use it"},
    {STG(kind), KEY_ENUM, K_ALL, REQUIRED, .names = STAGE_KIND_NAMES, .flags = KEY_IDENTITY,
     .doc = "what the stage trains or measures"},
    {STG(init), KEY_STRING, K_TRAIN | K_SELF | KIND(STAGE_LABEL), "\"\"", .flags = KEY_STAGE_REF,
     .ref_kinds = K_ALL & ~K_EVAL & ~K_SELF & ~KIND(STAGE_LABEL),
     .doc = "starting weights: an earlier stage, a .h5 checkpoint, or a Hugging Face model "
            "folder (a path with a '/', e.g. ./SmolLM-135M); \"\" = from scratch (pretrain only)"},
    {STG(data.train), KEY_STRING, K_STEPS & ~K_ITER, "\"\"",
     .flags = KEY_INPUT_PATH | KEY_STAGE_DATA,
     .doc = "training dataset (.h5): lm (pretrain), sft (sft), preference (reward, dpo), "
            "unpaired (dpo with loss kto); required, except that reward and dpo may sample their pairs (data.prompts); or the "
            "name of an earlier stage that makes one: label (pref.h5, sft.h5), critique_revise "
            "(pref.h5, sft.h5), self_instruct (sft.h5), read from its folder of the run"},
    {STG(data.val), KEY_STRING, K_STEPS & ~K_ITER, "\"\"",
     .flags = KEY_INPUT_PATH | KEY_STAGE_DATA,
     .doc = "validation dataset of the same kind, or an earlier label stage (its "
            "pref-val.h5); \"\" = no validation"},
    {STG(data.prompts), KEY_STRING, K_ROLL | K_PREF | K_CR, "\"\"", .flags = KEY_INPUT_PATH,
     .doc = "prompt dataset (.h5, kind prompt); required for ppo, grpo, rloo, eval, label, "
            "iterative_dpo and critique_revise; reward and dpo given prompts instead of "
            "data.train train on pairs of their start model's own samples labelled by their "
            "judge, as raters label model outputs"},
    {STG(data.seeds), KEY_STRING, K_SI, "\"\"", .flags = KEY_INPUT_PATH,
     .doc = "self_instruct: the seed tasks, JSONL in Self-Instruct's format ({\"instruction\", "
            "\"instances\": [{\"input\", \"output\"}], ...} a line); required"},
    {STG(steps), KEY_INT, K_STEPS, "100", ATLEAST(1),
     .doc = "optimizer steps (iterative_dpo: per round)"},
    {STG(iterations), KEY_INT, K_RL, "100", ATLEAST(1),
     .doc = "RL iterations: one rollout batch, then epochs x minibatches optimizer steps"},
    {STG(batch_size), KEY_INT, K_STEPS, "16", ATLEAST(1),
     .doc = "sequences (pretrain, sft), preference pairs (reward, dpo) or unpaired examples "
            "(kto) per optimizer step"},
    {STG(micro_batch_size), KEY_INT, K_TRAIN, "0", ATLEAST(0),
     .doc = "sequences or pairs per forward/backward pass, gradients accumulating over the "
            "batch; must divide it; 0 = the whole batch (RL: a whole minibatch)"},
    {STG(seq_len), KEY_INT, K_ALL, "0", ATLEAST(0),
     .doc = "tokens per sequence (RL, eval: prompt and response); 0 = model.max_seq_len"},
    {STG(optim.name), KEY_ENUM, K_TRAIN, "adamw", .names = OPTIMS, .doc = "optimiser"},
    {STG(optim.lr), KEY_FLOAT, K_TRAIN, "3.0e-4", ABOVE(0), .doc = "peak learning rate"},
    {STG(optim.betas), KEY_FLOATS, K_TRAIN, "[0.9, 0.95]", IN_CO(0, 1), .len = 2,
     .doc = "AdamW moment decay rates [beta1, beta2]"},
    {STG(optim.eps), KEY_FLOAT, K_TRAIN, "1.0e-8", ABOVE(0), .doc = "AdamW epsilon"},
    {STG(optim.weight_decay), KEY_FLOAT, K_TRAIN, "0.1", ATLEAST(0),
     .doc = "decoupled weight decay on matrices and embeddings (not biases or norm gains)"},
    {STG(optim.grad_clip), KEY_FLOAT, K_TRAIN, "1.0", ATLEAST(0),
     .doc = "clip the global gradient norm to this; 0 = off"},
    {STG(lora.rank), KEY_INT, K_TRAIN, "0", ATLEAST(0),
     .doc = "LoRA: rank of low-rank adapters trained over the frozen model (its reference, in dpo "
            "and the RL stages, is the model with the adapters off; a scalar head is trained in "
            "full); 0 = train every weight"},
    {STG(lora.alpha), KEY_FLOAT, K_TRAIN, "16.0", ABOVE(0),
     .doc = "LoRA: the adapters' output is scaled by alpha / rank"},
    {STG(lora.targets), KEY_STRINGS, K_TRAIN, "[q, v]", ATLEAST(1),
     .doc = "LoRA: projections with an adapter: q, k, v, o (attention), gate, up, down (MLP; gate "
            "only in the llama family)"},
    {STG(lora.init), KEY_ENUM, K_TRAIN, "kaiming", .names = LORA_INITS,
     .doc = "LoRA: A's initialisation, kaiming = uniform with bound 1/sqrt(fan_in) (PEFT's "
            "default), gaussian = N(0, 1/rank^2) (PEFT's gaussian); B starts at zero"},
    {STG(lora.lr), KEY_FLOAT, K_TRAIN, "0.0", ATLEAST(0),
     .doc = "LoRA: the adapters' peak learning rate (the schedule scales it); 0 = optim.lr"},
    {STG(schedule.kind), KEY_ENUM, K_TRAIN, "cosine", .names = SCHEDULES,
     .doc = "learning rate after warmup: constant, or cosine or linear decay to min_lr_ratio"},
    {STG(schedule.warmup_steps), KEY_INT, K_TRAIN, "0", ATLEAST(0),
     .doc = "linear warmup from 0 over this many optimizer steps"},
    {STG(schedule.min_lr_ratio), KEY_FLOAT, K_TRAIN, "0.1", IN(0, 1),
     .doc = "final learning rate as a fraction of optim.lr"},
    {STG(checkpoint.every), KEY_INT, K_TRAIN, "0", ATLEAST(0),
     .doc = "write a checkpoint every this many steps (RL: iterations); 0 = only the final one"},
    {STG(checkpoint.keep), KEY_INT, K_TRAIN, "3", ATLEAST(1),
     .doc = "periodic checkpoints kept, oldest deleted first; the final one is always kept"},
    {STG(skip_bad_steps), KEY_INT, K_TRAIN, "0", ATLEAST(0),
     .doc = "steps (RL: iterations) with a non-finite loss, gradient norm, reward, KL or "
            "advantage skipped without an update before the stage stops; 0 = stop at the first"},
    {STG(log.every), KEY_INT, K_TRAIN, "10", ATLEAST(1),
     .doc = "record and print metrics every this many steps (RL: iterations)"},
    {STG(val.every), KEY_INT, K_STEPS, "100", ATLEAST(0),
     .doc = "validation loss every this many steps when data.val is set; 0 = never"},
    {STG(val.batches), KEY_INT, K_STEPS, "8", ATLEAST(1), .doc = "batches per validation"},
    {STG(sample.every), KEY_INT, K_GEN, "0", ATLEAST(0),
     .doc = "print samples every this many steps (RL: iterations); 0 = never"},
    {STG(sample.prompts), KEY_STRINGS, K_GEN, "[]", ANY,
     .doc = "prompts to continue; [] = one unconditional sample"},
    {STG(sample.max_new_tokens), KEY_INT, K_GEN, "64", ATLEAST(1),
     .doc = "tokens generated per sample"},
    {STG(sample.temperature), KEY_FLOAT, K_GEN, "0.8", ATLEAST(0),
     .doc = "sampling temperature; 0 = greedy"},
    {STG(sample.top_k), KEY_INT, K_GEN, "0", ATLEAST(0),
     .doc = "sample among the k most likely tokens; 0 = off"},
    {STG(sample.top_p), KEY_FLOAT, K_GEN, "1.0", IN_OC(0, 1),
     .doc = "nucleus sampling: the smallest set of tokens with this much mass; 1 = off"},

    // ---- kind-specific ----------------------------------------------------------------------
    {STG(packing), KEY_BOOL, K_SFT, "false",
     .doc = "pack several examples into each sequence (attention stays within each) instead "
            "of padding"},
    {STG(margin), KEY_FLOAT, K_RM, "0.0", ATLEAST(0),
     .doc = "Bradley-Terry margin: loss = -log sigmoid(r_chosen - r_rejected - margin)"},
    {STG(center_coef), KEY_FLOAT, K_RM, "0.0", ATLEAST(0),
     .doc = "reward centering: adds center_coef * (r_chosen + r_rejected)^2 to the loss"},
    {STG(loss), KEY_ENUM, K_DPO, "sigmoid", .names = DPO_LOSSES,
     .doc = "preference loss: sigmoid (DPO; cDPO when label_smoothing > 0), ipo, robust "
            "(rDPO), hinge, simpo, orpo on preference pairs; kto (KTO, Ethayarajh et al. 2024) "
            "on unpaired data: lambda_D (1 - sigmoid(beta (r - z0))) per desirable example, "
            "lambda_U (1 - sigmoid(beta (z0 - r))) per undesirable one, r the completion's "
            "log-ratio to the reference, z0 the step's detached KL estimate (docs/design.md)"},
    {STG(beta), KEY_FLOAT, K_DPO, "0.1", ABOVE(0),
     .doc = "inverse temperature of the implicit reward (ipo: the regulariser tau)"},
    {STG(label_smoothing), KEY_FLOAT, K_DPO, "0.0", IN_CO(0, 0.5),
     .doc = "assumed fraction e of flipped labels; 0 = plain DPO. With z = beta * (chosen minus "
            "rejected log-ratio to the reference): sigmoid is conservative DPO (cDPO, Mitchell "
            "2023), -(1-e) log sigmoid(z) - e log sigmoid(-z); robust is robust DPO (rDPO, "
            "Chowdhury et al. 2024), the unbiased [-(1-e) log sigmoid(z) + e log sigmoid(-z)] / "
            "(1-2e); other losses ignore it"},
    {STG(simpo_gamma), KEY_FLOAT, K_DPO, "0.5", ATLEAST(0),
     .doc = "simpo: target reward margin gamma"},
    {STG(orpo_lambda), KEY_FLOAT, K_DPO, "0.1", ATLEAST(0),
     .doc = "orpo: weight of the odds-ratio term added to the SFT loss"},
    {STG(rpo_alpha), KEY_FLOAT, K_DPO, "0.0", ATLEAST(0),
     .doc = "weight of an NLL term on the chosen response (mean over its tokens) added to the "
            "loss (RPO, Pang et al. 2024; TRL's rpo_alpha): keeps DPO from lowering the "
            "likelihood of chosen answers that differ from rejected ones in a few tokens"},
    {STG(desirable_weight), KEY_FLOAT, K_DPO, "1.0", ABOVE(0),
     .doc = "kto: lambda_D, weight of the desirable examples' loss (TRL advises lambda_D n_D / "
            "(lambda_U n_U) in [1, 4/3]; the stage warns outside it)"},
    {STG(undesirable_weight), KEY_FLOAT, K_DPO, "1.0", ABOVE(0),
     .doc = "kto: lambda_U, weight of the undesirable examples' loss"},
    {STG(reference), KEY_ENUM, K_DPO, "cached", .names = REFERENCES,
     .doc = "reference log-probs: cached (computed once before training) or live (a frozen "
            "model run each step); unused by simpo and orpo"},
    {STG(reward_model), KEY_STRING, K_ROLL, "\"\"", .flags = KEY_STAGE_REF, .ref_kinds = K_RM,
     .doc = "a reward model: an earlier reward stage or a .h5 checkpoint with a scalar head (RL, "
            "label, iterative_dpo: the reward, set exactly one of reward_model, gold_reward and "
            "judge.kind; eval: scores every response alongside gold_reward, or judges the arena "
            "without it)"},
    {STG(gold_reward), KEY_STRING, K_ROLL | K_PREF, "\"\"",
     .doc = "a built-in gold reward function by name; \"\" = none (RL: the reward instead of "
            "reward_model or judge.kind; eval: judges win rates and the arena, reward_model or "
            "judge.kind then scores alongside; reward, dpo, label, iterative_dpo: labels the "
            "sampled pairs)"},
    {STG(label_noise), KEY_FLOAT, K_PREF | K_LABEL, "0.0", IN_CO(0, 0.5),
     .doc = "reward, dpo with sampled pairs, label, iterative_dpo: the share of pairs whose "
            "labels are swapped, like human raters' disagreement"},
    {STG(label.pairs), KEY_ENUM, K_PREF | K_LABEL, "best_worst", .names = LABEL_PAIRS,
     .doc = "which pairs of a prompt's sampled responses are written: best_worst = the best "
            "and the worst; best_random = the best and a uniformly drawn response that scored "
            "lower; all_pairs = every two responses with different scores"},
    {STG(label.require_correct), KEY_BOOL, K_PREF | K_LABEL, "true",
     .doc = "with a judge that knows correctness (gold_reward, match): a pair's chosen "
            "response, and an sft example, must be correct (between two wrong answers partial "
            "credit would teach a nearer wrong answer)"},
    {STG(iterative.rounds), KEY_INT, K_ITER, "3", ATLEAST(1),
     .doc = "online DPO rounds: label samples of the current policy, then steps of DPO"},
    {STG(iterative.prompts_per_round), KEY_INT, K_ITER, "0", ATLEAST(0),
     .doc = "prompts labelled per round, a disjoint slice of a seeded shuffle (wrapping "
            "around); 0 = every prompt each round"},
    {STG(iterative.reference), KEY_ENUM, K_ITER, "init", .names = ITERATIVE_REFERENCES,
     .doc = "the DPO reference of every round: init = the stage's init model; round = the "
            "round's start policy"},
    {STG(value.init), KEY_ENUM, K_PPO, "reward_model", .names = VALUE_INITS,
     .doc = "value model's starting weights: the reward model's or the policy's"},
    {STG(value.coef), KEY_FLOAT, K_PPO, "0.1", ATLEAST(0), .doc = "weight of the value loss"},
    {STG(value.clip), KEY_FLOAT, K_PPO, "0.2", ATLEAST(0),
     .doc = "value clipping range around the rollout's values; 0 = off"},
    {STG(rollout.batch), KEY_INT, K_ROLL | K_PREF | K_SELF, "32", ATLEAST(1),
     .doc = "prompts per rollout (RL: per iteration; reward, dpo: per sampling batch; "
            "self_instruct, critique_revise: texts continued per sampler call)"},
    {STG(rollout.group_size), KEY_INT, K_ROLL | K_PREF, "1", ATLEAST(1),
     .doc = "responses sampled per prompt (grpo, rloo, label, iterative_dpo: at least 2; eval: "
            "their scores are averaged per prompt; reward, dpo, label, iterative_dpo: "
            "label.pairs of them make pairs)"},
    {STG(rollout.max_new_tokens), KEY_INT, K_ROLL | K_PREF | K_SELF, "32", ATLEAST(1),
     .doc = "response length limit in tokens"},
    {STG(rollout.temperature), KEY_FLOAT, K_ROLL | K_PREF | K_SELF, "1.0", ABOVE(0),
     .doc = "sampling temperature"},
    {STG(rollout.top_k), KEY_INT, K_ROLL | K_PREF | K_SELF, "0", ATLEAST(0),
     .doc = "sample among the k most likely tokens; 0 = off"},
    {STG(rollout.top_p), KEY_FLOAT, K_ROLL | K_PREF | K_SELF, "1.0", IN_OC(0, 1),
     .doc = "nucleus sampling mass; 1 = off"},
    {STG(kl.coef), KEY_FLOAT, K_RL, "0.05", ATLEAST(0),
     .doc = "weight of the KL penalty against the reference (the init weights, frozen); with "
            "kl.target, its starting value"},
    {STG(kl.target), KEY_FLOAT, K_RL, "null", ABOVE(0),
     .doc = "target KL per response for the adaptive controller; null = fixed coefficient"},
    {STG(kl.horizon), KEY_INT, K_RL, "10000", ATLEAST(1),
     .doc = "adaptive controller horizon, in responses"},
    {STG(kl.estimator), KEY_ENUM, K_RL, "k1", .names = KL_ESTIMATORS,
     .doc = "per-token KL estimator: k1 = log(p/p_ref), k3 = p_ref/p - 1 - log(p_ref/p)"},
    {STG(kl.in_reward), KEY_BOOL, K_RL, "true",
     .doc = "true: subtract the penalty from the reward; false: add it to the loss (GRPO "
            "style)"},
    {STG(gae.gamma), KEY_FLOAT, K_PPO, "1.0", IN(0, 1), .doc = "discount"},
    {STG(gae.lambda), KEY_FLOAT, K_PPO, "0.95", IN(0, 1), .doc = "GAE lambda"},
    {STG(epochs), KEY_INT, K_RL, "4", ATLEAST(1), .doc = "passes over each rollout batch"},
    {STG(minibatches), KEY_INT, K_RL, "4", ATLEAST(1),
     .doc = "optimizer steps per epoch: the rollout's responses split this many ways"},
    {STG(clip_range), KEY_FLOAT, K_RL, "0.2", ABOVE(0),
     .doc = "policy ratio clipping epsilon"},
    {STG(entropy_coef), KEY_FLOAT, K_RL, "0.0", ATLEAST(0), .doc = "entropy bonus weight"},
    {STG(max_approx_kl), KEY_FLOAT, K_RL, "0.0", ATLEAST(0),
     .doc = "end an iteration's epochs early once the approximate KL to the rollout policy "
            "exceeds this; 0 = never"},
    {STG(whiten_advantages), KEY_BOOL, K_RL, "true",
     .doc = "normalise advantages to zero mean and unit variance over the batch"},
    {STG(reward_clip), KEY_FLOAT, K_RL, "0.0", ATLEAST(0),
     .doc = "clip rewards to [-reward_clip, reward_clip]; 0 = off"},
    {STG(whiten_rewards), KEY_BOOL, K_RL, "false",
     .doc = "normalise rewards over the batch before computing advantages"},
    {STG(missing_eos_penalty), KEY_FLOAT, K_RL, "0.0", ATLEAST(0),
     .doc = "subtracted from the reward of responses that end without an end-of-text token; "
            "0 = off"},
    {STG(models), KEY_STRINGS, K_EVAL, REQUIRED, ATLEAST(1), .flags = KEY_STAGE_REF | KEY_BON,
     .ref_kinds = K_GEN,
     .doc = "models to compare: earlier stages or .h5 checkpoints, or `bon(<model>, <n>)`, the "
            "best of n samples of a model by the judge (n >= 2); reference_model is added first "
            "when not listed"},
    {STG(judge.kind), KEY_ENUM, K_JUDGE, "none", .names = JUDGE_KINDS,
     .doc = "a judge (docs/judges.md): none = gold_reward or reward_model; match = the answer "
            "judge.regex extracts against the prompt's reference answer (score 1 or 0); command "
            "= an external program scoring JSONL lines; model = an LLM judge's verdict "
            "log-probabilities"},
    {STG(judge.regex), KEY_STRING, K_JUDGE, "\"\"",
     .doc = "match: a PCRE2 pattern applied to the response; the first capture group (or the "
            "whole match) is the answer; \"\" = the whole response"},
    {STG(judge.normalize), KEY_BOOL, K_JUDGE, "true",
     .doc = "match: compare after lowercasing, trimming, collapsing whitespace and stripping "
            "trailing . , ! ?; false = exactly"},
    {STG(judge.command), KEY_STRING, K_JUDGE, "\"\"",
     .doc = "command: a shell command (/bin/sh -c, run from the recipe's folder) reading "
            "{\"prompt\", \"response\"} JSON lines and printing one score per line"},
    {STG(judge.timeout), KEY_FLOAT, K_JUDGE, "30", ABOVE(0),
     .doc = "command: seconds one batch of responses may take before the stage fails"},
    {STG(judge.model), KEY_STRING, K_JUDGE, "\"\"", .flags = KEY_STAGE_REF, .ref_kinds = K_GEN,
     .doc = "model: the judge, an earlier stage with a language-model head or a .h5 checkpoint"},
    {STG(judge.template), KEY_STRING, K_JUDGE, "\"\"",
     .doc = "model: the judge's prompt with {prompt} and {response} (pairwise: {prompt}, "
            "{response_a} and {response_b}); the verdict is the next token after it"},
    {STG(judge.verdicts), KEY_STRINGS, K_JUDGE, "[\" Yes\", \" No\"]", IN(2, 2),
     .doc = "model: the good and the bad verdict (pairwise: A better, B better), each one token; "
            "the score is log p(first) - log p(second)"},
    {STG(judge.pairwise), KEY_BOOL, K_JUDGE, "false",
     .doc = "model: judge pairs of responses to one prompt in both orders; a response's score is "
            "its mean probability of being preferred over the others of its group"},
    {STG(reference_model), KEY_STRING, K_EVAL, "sft", .flags = KEY_STAGE_REF, .ref_kinds = K_GEN,
     .doc = "the model the others' win rates and KL are measured against (not a bon entry)"},
    {STG(bootstrap), KEY_INT, K_EVAL, "1000", ATLEAST(0),
     .doc = "bootstrap resamples for confidence intervals; 0 = none"},
    {STG(self_instruct.target), KEY_INT, K_SI, "100", ATLEAST(1),
     .doc = "stop once this many generated instructions (seeds not counted) joined the pool; "
            "the round under way is finished"},
    {STG(self_instruct.prompt_tasks), KEY_INT, K_SI, "8", ATLEAST(1),
     .doc = "in-context tasks per prompt: a quarter (2 of 8) from the generated instructions "
            "when there are any, the rest from the seeds, as the paper"},
    {STG(self_instruct.per_round), KEY_INT, K_SI, "32", ATLEAST(1),
     .doc = "prompts per round, each proposing one instruction"},
    {STG(self_instruct.max_rounds), KEY_INT, K_SI, "10", ATLEAST(1), .doc = "rounds at most"},
    {STG(self_instruct.rouge_threshold), KEY_FLOAT, K_SI, "0.7", IN(0, 1),
     .doc = "a proposal whose ROUGE-L F1 with any pool instruction (seeds, kept ones, earlier "
            "ones of its round) exceeds this is dropped as similar"},
    {STG(self_instruct.min_words), KEY_INT, K_SI, "3", ATLEAST(1),
     .doc = "a proposal with fewer whitespace-separated words is dropped (too_short)"},
    {STG(self_instruct.max_words), KEY_INT, K_SI, "150", ATLEAST(1),
     .doc = "a proposal with more words is dropped (too_long)"},
    {STG(self_instruct.blocklist), KEY_STRINGS, K_SI,
     "[image, images, graph, graphs, picture, pictures, file, files, map, maps, draw, plot, "
     "go to, video, audio, music, flowchart, diagram]", ANY,
     .doc = "words and phrases a language model cannot act on: a proposal containing one as a "
            "whole word (any case) is dropped (blocklist); the default is the paper's"},
    {STG(self_instruct.min_yield), KEY_FLOAT, K_SI, "0.0", IN(0, 1),
     .doc = "stop after a round that keeps less than this share of its proposals; 0 = never"},
    {STG(self_instruct.instances), KEY_INT, K_SI, "1", ATLEAST(1),
     .doc = "input/output instances generated for each kept instruction (those without an "
            "output are dropped); each kept one is an sft example"},
    {STG(critique_revise.critiques), KEY_STRINGS, K_CR, REQUIRED, ATLEAST(1),
     .doc = "critique requests, one per principle (\"Identify ways in which the answer is "
            "harmful or wrong.\")"},
    {STG(critique_revise.revisions), KEY_STRINGS, K_CR, REQUIRED, ATLEAST(1),
     .doc = "revision requests, the i-th for the i-th critique (\"Rewrite the answer to remove "
            "what is harmful or wrong.\")"},
    {STG(critique_revise.revisions_per_prompt), KEY_INT, K_CR, "1", ATLEAST(1),
     .doc = "rounds of critique then revision per prompt, each with a principle drawn anew and "
            "each critiquing the previous round's revision"},
};
// clang-format on
const int SCHEMA_COUNT = (int)(sizeof(SCHEMA) / sizeof(SCHEMA[0]));

const Key *schema_find(KeyScope scope, const char *path) {
    for (int i = 0; i < SCHEMA_COUNT; i++)
        if (SCHEMA[i].scope == scope && strcmp(SCHEMA[i].path, path) == 0) return &SCHEMA[i];
    return NULL;
}

bool schema_is_map(KeyScope scope, const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < SCHEMA_COUNT; i++)
        if (SCHEMA[i].scope == scope && strncmp(SCHEMA[i].path, path, n) == 0 &&
            SCHEMA[i].path[n] == '.')
            return true;
    return false;
}

bool key_applies(const Key *k, StageKind kind) {
    return (k->kinds & KIND(kind)) != 0;
}

void *key_field(const Key *k, void *base) {
    return (char *)base + k->offset;
}

const void *key_field_const(const Key *k, const void *base) {
    return (const char *)base + k->offset;
}

const char *stage_kind_name(StageKind kind) {
    return kind >= 0 && kind < STAGE_KIND_COUNT ? STAGE_KIND_NAMES[kind] : "?";
}

const char *backend_kind_name(BackendKind kind) {
    return kind >= 0 && kind <= BACKEND_KIND_CUDA ? BACKENDS[kind] : "?";
}

void key_format_range(const Key *k, char *buf, size_t len) {
    const Range *r = &k->range;
    bool lo = isfinite(r->lo), hi = isfinite(r->hi);
    buf[0] = '\0';
    if (k->type == KEY_INT && lo && hi)
        snprintf(buf, len, "%g..%g", r->lo, r->hi);
    else if (lo && hi)
        snprintf(buf, len, "%c%g, %g%c", r->lo_open ? '(' : '[', r->lo, r->hi,
                 r->hi_open ? ')' : ']');
    else if (lo)
        snprintf(buf, len, "%s %g", r->lo_open ? ">" : ">=", r->lo);
    else if (hi)
        snprintf(buf, len, "%s %g", r->hi_open ? "<" : "<=", r->hi);
}

void kinds_format(unsigned kinds, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    if (kinds == K_ALL) {
        snprintf(buf, len, "all");
        return;
    }
    for (int i = 0; i < STAGE_KIND_COUNT && used < len; i++)
        if (kinds & KIND(i))
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                                     STAGE_KIND_NAMES[i]);
}

// ---- suggestions --------------------------------------------------------------------------------

static int min3(int a, int b, int c) {
    int m = a < b ? a : b;
    return m < c ? m : c;
}

// Edit distance between a and b counting insertions, deletions, substitutions and swaps of
// adjacent characters ("modle" is one edit from "model"); at most 255 characters of each.
static int edit_distance(const char *a, const char *b) {
    int rows[3][256];
    int *before = rows[0], *prev = rows[1], *cur = rows[2];
    size_t m = strlen(a) > 255 ? 255 : strlen(a), n = strlen(b) > 255 ? 255 : strlen(b);
    for (size_t j = 0; j <= n; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= m; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= n; j++) {
            cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]));
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                before[j - 2] + 1 < cur[j])
                cur[j] = before[j - 2] + 1;
        }
        int *t = before;
        before = prev;
        prev = cur;
        cur = t;
    }
    return prev[n];
}

static const char *leaf(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

void suggest_init(Suggest *s, const char *typed) {
    s->typed = typed;
    s->best[0] = '\0';
    int n = (int)strlen(leaf(typed));
    s->dist = 2 * (n / 3 > 1 ? n / 3 : 1) + 2; // accept distances up to a third of the name
}

// Scores count half-edits. A candidate is close when its path is a few edits away, or when its
// last name is a few edits from the typed one in another map ("lr" for "optim.lr"): that
// counts one edit more, plus a half so that a path as close wins.
void suggest_consider(Suggest *s, const char *candidate) {
    int d = 2 * edit_distance(s->typed, candidate);
    int dl = 2 * (edit_distance(leaf(s->typed), leaf(candidate)) + 1) + 1;
    if (dl < d) d = dl;
    if (d < s->dist) {
        s->dist = d;
        snprintf(s->best, sizeof(s->best), "%s", candidate);
    }
}

void suggest_keys(Suggest *s, KeyScope scope, const char *prepend) {
    char cand[256];
    for (int i = 0; i < SCHEMA_COUNT; i++) {
        if (SCHEMA[i].scope != scope) continue;
        snprintf(cand, sizeof(cand), "%s%s", prepend, SCHEMA[i].path);
        suggest_consider(s, cand);
        for (char *dot = strrchr(cand, '.'); dot && dot > cand + strlen(prepend);
             dot = strrchr(cand, '.')) {
            *dot = '\0'; // the maps on the way: "optim" for "optim.lr"
            suggest_consider(s, cand);
        }
    }
}

void suggest_append(const Suggest *s, const char *strip, char *buf, size_t len) {
    size_t used = strlen(buf), n = strlen(strip);
    const char *shown = strncmp(s->best, strip, n) == 0 ? s->best + n : s->best;
    if (s->best[0] && used < len) snprintf(buf + used, len - used, "; did you mean '%s'?", shown);
}
