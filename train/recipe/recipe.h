// train/recipe/recipe.h: a training recipe (one YAML file) loaded into typed structs.
//
// A recipe names the run, the model and the tokenizer, then lists stages (pretrain, sft,
// reward, dpo, ppo, grpo, rloo, eval, label, iterative_dpo) in the order they run. Every stage kind
// shares one schema: a key means the same thing in every stage it applies to. `defaults:` holds
// stage keys merged into every stage, and command-line overrides (`sft.optim.lr=1e-4`) win over
// both. The schema (every key's type, default, range and meaning) is one table in recipe_schema.c;
// docs/recipes.md is generated from it by `layercake recipe docs`.
//
// Loading checks everything that can be checked without opening data files: types, ranges,
// unknown or inapplicable keys, duplicates, required keys, cross-key rules and references
// between stages. Errors name file:line:column (or the command-line override) and the key path.
// recipe_validate_files() then checks the files the recipe names.
#pragma once
#include "model/model.h"                 // ModelFamily, ModelRecompute
#include "optim/optim.h"                 // ScheduleKind
#include "train/objectives/preference.h" // DpoLoss
#include "train/objectives/rl.h"         // KlEstimator
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { BACKEND_KIND_CPU, BACKEND_KIND_CUDA } BackendKind;
// In the order of kernels/kernels.h's BackendPrecision and BackendAttention (run.c asserts it).
typedef enum { PRECISION_AUTO, PRECISION_FP32, PRECISION_BF16 } PrecisionKind;
typedef enum { ATTENTION_BUILTIN, ATTENTION_CUDNN, ATTENTION_FLASH } AttentionKind;
typedef enum {
    STAGE_PRETRAIN,
    STAGE_SFT,
    STAGE_REWARD,
    STAGE_DPO,
    STAGE_PPO,
    STAGE_GRPO,
    STAGE_RLOO,
    STAGE_EVAL,
    STAGE_SELF_INSTRUCT,
    STAGE_CRITIQUE_REVISE,
    STAGE_LABEL,
    STAGE_ITERATIVE_DPO,
    STAGE_KIND_COUNT
} StageKind;
typedef enum { OPTIM_ADAMW } OptimName;
typedef enum { REFERENCE_CACHED, REFERENCE_LIVE } ReferenceMode;
typedef enum { VALUE_INIT_REWARD_MODEL, VALUE_INIT_POLICY } ValueInit;
typedef enum { LABEL_BEST_WORST, LABEL_BEST_RANDOM, LABEL_ALL_PAIRS } LabelPairs;
typedef enum { ITERATIVE_REFERENCE_INIT, ITERATIVE_REFERENCE_ROUND } IterativeReference;

// What went wrong while loading or checking a recipe; the message says where and why.
typedef enum {
    RECIPE_OK = 0,
    RECIPE_ERR_IO,             // the recipe file cannot be read
    RECIPE_ERR_SYNTAX,         // YAML syntax error, or a structure that is not a recipe
    RECIPE_ERR_UNKNOWN_KEY,    // a key the schema does not have (with a suggestion)
    RECIPE_ERR_TYPE,           // a value of the wrong type
    RECIPE_ERR_RANGE,          // a value outside its range or enum
    RECIPE_ERR_MISSING,        // a required key is absent
    RECIPE_ERR_DUPLICATE,      // a key given twice in one map, or two stages with one name
    RECIPE_ERR_NOT_APPLICABLE, // a stage key that does not apply to the stage's kind
    RECIPE_ERR_REFERENCE,      // a stage reference to an unknown, later or wrong-kind stage
    RECIPE_ERR_RULE,           // a rule across keys is broken (e.g. micro_batch_size divides)
    RECIPE_ERR_OVERRIDE,       // a command-line override that is not key=value
    RECIPE_ERR_FILE,           // a file the recipe names is missing, unreadable or wrong
} RecipeError;

// A list of strings; both NULL/0 when empty.
typedef struct {
    char **items; // (n) owned strings
    int n;        // number of items
} StringList;

typedef struct {
    char *from;         // a checkpoint or Hugging Face folder whose configuration the keys
                        // below take (read at load time); "" = the keys as given
    ModelFamily family; // transformer family
    int n_layer;        // transformer blocks
    int n_head;         // attention heads per block
    int n_kv_head;      // key/value heads (grouped-query attention); 0 = n_head
    int d_model;        // residual stream width (divisible by n_head)
    int d_ff;           // MLP hidden width; 0 = the family's (GPT-2 4C, Llama about 8C/3)
    int vocab_size;     // embedding rows; 0 = the tokenizer's vocabulary size
    int max_seq_len;    // positions the model has (its context length)
    double norm_eps;    // RMSNorm epsilon (llama)
    double rope_theta;  // rotary embedding base (llama)
    bool tied;          // output layer shares the token embedding (llama may untie)
    bool qkv_bias;      // q/k/v projections have biases (llama: Qwen2-style)
} RecipeModel;

typedef struct {
    char *train;   // training dataset path (absolute), "" if unset
    char *val;     // validation dataset path (absolute), "" = no validation
    char *prompts; // prompt dataset path (absolute), "" if unset
    char *seeds;   // self_instruct: seed tasks (JSONL, absolute), "" if unset
} StageData;

typedef struct {
    OptimName name;      // optimiser
    double lr;           // peak learning rate
    double betas[2];     // AdamW moment decay rates (beta1, beta2)
    double eps;          // AdamW denominator epsilon
    double weight_decay; // decoupled weight decay on the tensors marked as decayed
    double grad_clip;    // global gradient-norm clip; 0 = off
} OptimConfig;

typedef struct {
    ScheduleKind kind;   // learning-rate shape after warmup
    int warmup_steps;    // linear warmup length in optimizer steps
    double min_lr_ratio; // final learning rate as a fraction of optim.lr
} ScheduleConfig;

typedef struct {
    int every; // steps (RL: iterations) between checkpoints; 0 = only the final one
    int keep;  // periodic checkpoints kept; the final one is always kept
} CheckpointConfig;

typedef struct {
    int every; // steps (RL: iterations) between metric lines
} LogConfig;

typedef struct {
    int every;   // steps between validations; 0 = never
    int batches; // batches per validation
} ValConfig;

typedef struct {
    int every;          // steps (RL: iterations) between printed samples; 0 = never
    StringList prompts; // prompts to continue; empty = one unconditional sample
    int max_new_tokens; // tokens generated per sample
    double temperature; // softmax temperature; 0 = greedy
    int top_k;          // sample among the k most likely tokens; 0 = off
    double top_p;       // nucleus sampling mass; 1 = off
} SampleConfig;

// Low-rank adapters over a frozen model (model/model.h, LoraConfig).
typedef enum { LORA_RECIPE_KAIMING, LORA_RECIPE_GAUSSIAN } LoraInitKind; // LoraInit's order

typedef struct {
    int rank;           // adapters' rank; 0 = no adapters: every weight is trained
    double alpha;       // the adapters' output is scaled by alpha / rank
    StringList targets; // adapted projections: q, k, v, o, gate, up, down
    LoraInitKind init;  // A's initialisation (B starts at zero)
    double lr;          // the adapters' peak learning rate; 0 = optim.lr
} LoraRecipe;

typedef struct {
    ValueInit init; // weights the value model starts from
    double coef;    // weight of the value loss
    double clip;    // value clipping range; 0 = off
} ValueConfig;

typedef struct {
    int batch;          // prompts per rollout (RL: per iteration)
    int group_size;     // responses sampled per prompt
    int max_new_tokens; // response length limit in tokens
    double temperature; // sampling temperature (> 0)
    int top_k;          // sample among the k most likely tokens; 0 = off
    double top_p;       // nucleus sampling mass; 1 = off
} RolloutConfig;

// How sampled responses become preference pairs (label, iterative_dpo, reward and dpo given
// data.prompts).
typedef struct {
    LabelPairs pairs;     // which pairs of a prompt's responses are written
    bool require_correct; // with a judge that knows correctness: the chosen response is correct
} LabelConfig;

// Online DPO: rounds of sampling, labelling and DPO (iterative_dpo).
typedef struct {
    int rounds;                   // rounds of label-then-DPO
    int prompts_per_round;        // prompts labelled per round (a disjoint slice); 0 = all
    IterativeReference reference; // DPO reference: the stage's init, or each round's start
} IterativeConfig;

typedef struct {
    double coef;           // KL penalty weight (with target: its starting value)
    double target;         // target KL of the adaptive controller; NAN = fixed coefficient
    int horizon;           // adaptive controller horizon, in rollout samples
    KlEstimator estimator; // per-token KL estimator
    bool in_reward;        // true: penalty in the reward; false: a loss term (GRPO style)
} KlConfig;

// What scores responses besides a gold task or a reward model (train/stages/judge.h).
typedef enum { JUDGE_KIND_NONE, JUDGE_KIND_MATCH, JUDGE_KIND_COMMAND, JUDGE_KIND_MODEL } JudgeKind;

typedef struct {
    JudgeKind kind;      // none: the stage's gold_reward or reward_model judges
    char *regex;         // match: PCRE2 pattern extracting the answer; "" = the whole response
    bool normalize;      // match: compare lowercased, trimmed, whitespace-collapsed answers
    char *command;       // command: run with /bin/sh -c from the recipe's folder
    double timeout;      // command: seconds each scoring call may take
    char *model;         // model: earlier stage or checkpoint prompted as the judge
    char *template;      // model: the judge's prompt, with {prompt} and {response} (pairwise:
                         // {response_a} and {response_b})
    StringList verdicts; // model: the two verdict strings, each one token: good/A, bad/B
    bool pairwise;       // model: compare two responses instead of scoring one
} JudgeConfig;

typedef struct {
    double gamma;  // discount
    double lambda; // GAE lambda
} GaeConfig;

// self_instruct: instructions bootstrapped from seed tasks (docs/feedback.md).
typedef struct {
    int target;             // generated instructions kept before the stage stops
    int prompt_tasks;       // in-context tasks per prompt
    int per_round;          // prompts (proposed instructions) per round
    int max_rounds;         // rounds at most
    double rouge_threshold; // a proposal this ROUGE-L-similar to a pool instruction is dropped
    int min_words;          // fewer words: dropped
    int max_words;          // more words: dropped
    StringList blocklist;   // words or phrases an instruction may not contain
    double min_yield;       // stop after a round that keeps less than this share
    int instances;          // input/output instances generated per kept instruction
} SelfInstructConfig;

// critique_revise: answers critiqued and revised against principles (docs/feedback.md).
typedef struct {
    StringList critiques;     // critique requests, one per principle
    StringList revisions;     // revision requests, parallel to critiques
    int revisions_per_prompt; // rounds of critique then revision per prompt
} CritiqueReviseConfig;

// One stage. Keys that do not apply to its kind hold their built-in defaults.
typedef struct {
    char *name;                  // unique name, [A-Za-z0-9_-]+
    StageKind kind;              // what the stage trains or measures
    char *init;                  // starting weights: earlier stage name or .h5 path; "" = scratch
    StageData data;              // dataset paths
    int steps;                   // optimizer steps (pretrain, sft, reward, dpo)
    int iterations;              // RL iterations (ppo, grpo, rloo)
    int batch_size;              // sequences or preference pairs per optimizer step
    int micro_batch_size;        // per forward/backward pass (0 in the file: the whole batch)
    int seq_len;                 // tokens per sequence (0 in the file: model.max_seq_len)
    OptimConfig optim;           // optimiser
    LoraRecipe lora;             // low-rank adapters (rank 0: full fine-tuning)
    ScheduleConfig schedule;     // learning-rate schedule
    CheckpointConfig checkpoint; // checkpointing
    int skip_bad_steps;          // non-finite steps skipped before the stage stops; 0 = none
    LogConfig log;               // metric logging
    ValConfig val;               // validation
    SampleConfig sample;         // samples printed while training
    bool packing;                // sft: pack examples into sequences instead of padding
    double margin;               // reward: Bradley-Terry margin
    double center_coef;          // reward: reward-centering coefficient
    DpoLoss loss;                // dpo: preference loss
    double beta;                 // dpo: inverse temperature of the implicit reward
    double label_smoothing;      // dpo: assumed fraction of flipped labels
    double simpo_gamma;          // dpo simpo: target reward margin
    double orpo_lambda;          // dpo orpo: weight of the odds-ratio term
    double rpo_alpha;            // dpo: weight of an NLL term on the chosen response
    double desirable_weight;     // dpo kto: lambda_D, weight of desirable examples
    double undesirable_weight;   // dpo kto: lambda_U, weight of undesirable examples
    ReferenceMode reference;     // dpo: cached reference log-probs or a live reference model
    char *reward_model;          // RL, eval: earlier reward stage or .h5 path; "" = none
    char *gold_reward;           // RL, eval: built-in gold reward function; "" = none
    double label_noise;          // reward, dpo with sampled pairs: share of labels swapped
    ValueConfig value;           // ppo: value model
    RolloutConfig rollout;       // RL, eval: response sampling
    KlConfig kl;                 // RL: KL penalty against the reference model
    GaeConfig gae;               // ppo: generalised advantage estimation
    int epochs;                  // RL: passes over each rollout batch
    int minibatches;             // RL: optimizer steps per epoch
    double clip_range;           // RL: policy ratio clipping epsilon
    double entropy_coef;         // RL: entropy bonus weight
    double max_approx_kl;        // RL: early-stop threshold on approximate KL; 0 = off
    bool whiten_advantages;      // RL: normalise advantages
    double reward_clip;          // RL: clip rewards to [-reward_clip, reward_clip]; 0 = off
    bool whiten_rewards;         // RL: normalise rewards over the batch
    double missing_eos_penalty;  // RL: penalty for responses without end-of-text; 0 = off
    JudgeConfig judge;           // RL, eval, reward, dpo: a judge other than gold or a reward model
    StringList models;           // eval: stage names or .h5 paths to compare
    char *reference_model;       // eval: stage name or .h5 path the others are compared to
    int bootstrap;               // eval: bootstrap resamples for confidence intervals
    SelfInstructConfig self_instruct;     // self_instruct: rounds and filters
    CritiqueReviseConfig critique_revise; // critique_revise: principles and rounds
    LabelConfig label;         // label, iterative_dpo, sampled pairs: how pairs are chosen
    IterativeConfig iterative; // iterative_dpo: rounds
} Stage;

// Where one key got its value (see recipe_where).
typedef struct {
    int stage;       // stage index, or -1 for a top-level key
    const char *key; // key path within its scope (points into the schema)
    char *where;     // "file:line:column" or "command line 'key=value'"
} RecipeOrigin;

typedef struct {
    char *name;               // run name
    int seed;                 // seed of every random stream in the run
    char *output_dir;         // run directory (absolute; unset in the file: runs/<name>)
    BackendKind backend;      // kernel backend
    PrecisionKind precision;  // the backend's arithmetic (auto: fp32 on cpu, bf16 on cuda)
    AttentionKind attention;  // the backend's attention kernels
    ModelRecompute recompute; // activations the training models recompute in the backward
    int threads;              // CPU threads; 0 = all cores
    int zero;                 // ZeRO stage of data parallelism: 0 or 1
    char *tokenizer;          // tokenizer .json file or GPT-2 folder (absolute)
    StringList
        prepare; // layercake commands making the tokenizer and datasets (train/recipe/prepare.h)
    RecipeModel model;     // model shape
    Stage *stages;         // (n_stages) in run order
    int n_stages;          // number of stages
    char *file;            // the recipe file, as given to recipe_load
    RecipeOrigin *origins; // (n_origins) where keys not at their defaults were set
    int n_origins;         // number of origins
} Recipe;

// Loads the recipe at path, applies overrides ("key.path=value", highest precedence) and
// checks it. Returns RECIPE_OK and fills *r (free with recipe_free), or an error with a
// message in err (and *r left empty, nothing to free).
RecipeError recipe_load(const char *path, char *const *overrides, int n_overrides, Recipe *r,
                        char *err, size_t errlen);
void recipe_free(Recipe *r);

// A best-of-n entry of an eval stage's `models`, "bon(<model>, <n>)": the best of n samples
// of model (docs/eval.md). Returns 1 when entry is one (model: its model reference, in len
// bytes; n >= 2), 0 when entry does not start with "bon(" (a plain reference), and -1 when it
// does but is malformed, with why in err; model is then "" unless the model part was read.
int recipe_bon_parse(const char *entry, char *model, size_t len, int *n, char *err, size_t errlen);

// Index of the stage with this name, or -1.
int recipe_stage_index(const Recipe *r, const char *name);

// Where a key's value came from: "file:line:column" or "command line 'key=value'", or NULL if
// neither set it (it holds its built-in default). stage is a stage index, or -1 for a top-level
// key; key is its path within the stage or the recipe ("optim.lr", "model.n_layer"). A stage's
// "name" always has an origin: use it to point at the stage itself.
const char *recipe_where(const Recipe *r, int stage, const char *key);

// Checks one file a recipe names, beyond existing and being readable: that `path` holds what
// `kind` says ("tokenizer", "checkpoint", or a dataset kind: "lm", "sft", "preference",
// "prompt") and matches the recipe's tokenizer. Returns 0, or nonzero with a message in err.
typedef int (*RecipeFileCheck)(void *ctx, const char *path, const char *kind, const char *tokenizer,
                               char *err, size_t errlen);

// Checks that every file the recipe names exists and is readable, then calls check (if not
// NULL) on each. Returns RECIPE_OK or RECIPE_ERR_FILE with a message naming where the path was
// set and its key.
RecipeError recipe_validate_files(const Recipe *r, RecipeFileCheck check, void *ctx, char *err,
                                  size_t errlen);

// Writes the resolved recipe (every key that applies, defaults filled, paths absolute) as
// YAML that loads back to an identical Recipe. Returns 0, or -1 on a write error.
int recipe_print(FILE *f, const Recipe *r);
// The same as a malloc'd string (recipe.yaml, and the copy every checkpoint stores), or NULL
// when out of memory.
char *recipe_text(const Recipe *r);

// Writes docs/recipes.md: every key with its type, default, range, stage kinds and meaning.
int recipe_docs(FILE *f);

// A one-line summary of stage i (kind, length, batch, learning rate, inputs) into buf.
void recipe_stage_summary(const Recipe *r, int i, char *buf, size_t len);

// Compares two recipes key by key. Returns 0 if every key holds the same value, else 1 with
// the first differing key path ("sft.optim.lr", "model.n_layer") in path.
int recipe_diff(const Recipe *a, const Recipe *b, char *path, size_t pathlen);

// The recipe names of a stage kind ("pretrain", "sft", ...) and of a backend ("cpu", "cuda").
const char *stage_kind_name(StageKind kind);
const char *backend_kind_name(BackendKind kind);
