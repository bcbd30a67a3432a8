// train/recipe/rules.c: what single keys cannot say: rules across keys, references between
// stages, and the values that follow from others (a seq_len of 0, the default output_dir).
// Each rule is a line of RULES with its one-line doc, listed in docs/recipes.md.
#include "model/hf.h"
#include "train/recipe/recipe-impl.h"
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Reports a broken rule at the place that set key (the stage itself if nothing did).
static RecipeError rule_fail(RecipeLoader *L, RecipeError status, int i, const char *key,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static RecipeError rule_fail(RecipeLoader *L, RecipeError status, int i, const char *key,
                             const char *fmt, ...) {
    char prefix[96] = "", msg[512];
    const char *where = recipe_where(L->r, i, key);
    if (!where) where = recipe_where(L->r, i, "name");
    if (i >= 0) snprintf(prefix, sizeof(prefix), "%s.", L->r->stages[i].name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return recipe_fail(L, status, where ? where : L->r->file, prefix, key, "%s", msg);
}

// ---- the top level ------------------------------------------------------------------------------

static RecipeError rule_run_name(RecipeLoader *L, int i) {
    const char *name = L->r->name;
    if (strspn(name, NAME_CHARS ".") == strlen(name) && name[0] != '.') return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "name",
                     "'%s' may hold only letters, digits, '_', '-' and '.' (not first)", name);
}

static RecipeError rule_heads(RecipeLoader *L, int i) {
    const RecipeModel *m = &L->r->model;
    bool gpt2 = m->family == MODEL_FAMILY_GPT2;
    if (m->d_model % m->n_head != 0)
        return rule_fail(L, RECIPE_ERR_RULE, i, "model.d_model",
                         "%d is not divisible by model.n_head = %d", m->d_model, m->n_head);
    if (m->n_kv_head > 0 && m->n_head % m->n_kv_head != 0)
        return rule_fail(L, RECIPE_ERR_RULE, i, "model.n_kv_head",
                         "%d does not divide model.n_head = %d", m->n_kv_head, m->n_head);
    if (gpt2 && m->n_kv_head > 0 && m->n_kv_head != m->n_head)
        return rule_fail(L, RECIPE_ERR_RULE, i, "model.n_kv_head",
                         "gpt2 has no grouped-query attention: leave it 0 or set it to n_head");
    if (gpt2 && !m->tied)
        return rule_fail(L, RECIPE_ERR_RULE, i, "model.tied", "gpt2's output layer is always tied");
    if (!gpt2 && (m->d_model / m->n_head) % 2 != 0)
        return rule_fail(L, RECIPE_ERR_RULE, i, "model.d_model",
                         "the head size d_model / n_head = %d must be even for rotary embeddings",
                         m->d_model / m->n_head);
    return RECIPE_OK;
}

// The CPU backend computes in fp32 with its own attention: asking it for more is an error, not a
// setting silently ignored.
static RecipeError rule_backend_options(RecipeLoader *L, int i) {
    const Recipe *r = L->r;
    if (r->backend != BACKEND_KIND_CPU) return RECIPE_OK;
    if (r->precision == PRECISION_BF16)
        return rule_fail(L, RECIPE_ERR_RULE, i, "precision",
                         "bf16 needs backend: cuda (the CPU backend computes in fp32)");
    if (r->attention == ATTENTION_CUDNN)
        return rule_fail(L, RECIPE_ERR_RULE, i, "attention", "cudnn needs backend: cuda");
    return RECIPE_OK;
}

// A prepare command that loads a recipe (`run`, `validate`) would run that recipe's prepare
// commands in turn, so a recipe that names itself there recurses without end.
static RecipeError rule_prepare(RecipeLoader *L, int i) {
    const StringList *p = &L->r->prepare;
    for (int n = 0; n < p->n; n++) {
        char word[16] = "";
        size_t w = 0;
        for (const char *c = p->items[n] + strspn(p->items[n], " \t");
             *c && *c != ' ' && *c != '\t' && w + 1 < sizeof(word); c++)
            if (*c != '"') word[w++] = *c; // prepare.c drops the quotes too
        word[w] = '\0';
        if (strcmp(word, "run") != 0 && strcmp(word, "validate") != 0) continue;
        return rule_fail(L, RECIPE_ERR_RULE, i, "prepare",
                         "item %d, '%.200s': a prepare command cannot run or validate a recipe "
                         "(its prepare commands would run again, without end); prepare makes "
                         "files: tokenizer train, data import, data synth",
                         n + 1, p->items[n]);
    }
    return RECIPE_OK;
}

// ---- sizes --------------------------------------------------------------------------------------

// The model (model/model.c) and the kernels count some sizes with int: the MLP's width 4C, the
// padded vocabulary, the positions B x T of one forward pass; their arenas are sized with
// size_t products. A shape that overflows either passes every other rule and then breaks
// inside the model, so every derived size is computed here in 64 bits, saturating, and
// refused past INT_MAX or past what a 64-bit process can address.
#define ADDRESSABLE (1ull << 47) // bytes: the user address space of x86-64 and AArch64 Linux
#define TIB(bytes)  ((double)(bytes) / (double)(1ull << 40))

static uint64_t mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t add(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

// Embedding rows: the vocabulary padded to a multiple of 64 (model_padded_vocab); 0 while the
// vocabulary is the tokenizer's, unknown until it loads.
static uint64_t padded_vocab(const RecipeModel *m) {
    return ((uint64_t)m->vocab_size + 63) / 64 * 64;
}

// The MLP's hidden width F and the width of its first projection (2F for SwiGLU's gate and up).
static uint64_t mlp_width(const RecipeModel *m) {
    if (m->d_ff > 0) return (uint64_t)m->d_ff;
    uint64_t C = (uint64_t)m->d_model;
    return m->family == MODEL_FAMILY_GPT2 ? mul(4, C) : add(mul(8, C) / 3, 31) / 32 * 32;
}

static uint64_t fc_width(const RecipeModel *m) {
    return m->family == MODEL_FAMILY_GPT2 ? mlp_width(m) : mul(2, mlp_width(m));
}

// The parameter table of model/model.c, counted in saturating 64 bits: wte Vp x C (twice when
// untied), wpe max_seq_len x C (GPT-2), per layer the q/k/v, output and MLP matrices and at
// most 6 C + QKV + FC of gains and biases, the final norm and a scalar head.
static uint64_t model_params(const RecipeModel *m, uint64_t parts[3]) {
    uint64_t C = (uint64_t)m->d_model, NH = (uint64_t)m->n_head;
    uint64_t NKV = m->n_kv_head > 0 ? (uint64_t)m->n_kv_head : NH;
    uint64_t QKV = mul(add(NH, mul(2, NKV)), C / NH), F = mlp_width(m), FC = fc_width(m);
    bool gpt2 = m->family == MODEL_FAMILY_GPT2;
    parts[0] = mul(padded_vocab(m), C);
    if (!gpt2 && !m->tied) parts[0] = mul(2, parts[0]);
    parts[1] = gpt2 ? mul((uint64_t)m->max_seq_len, C) : 0;
    uint64_t matrices = add(add(mul(QKV, C), mul(C, C)), add(mul(FC, C), mul(C, F)));
    parts[2] = mul((uint64_t)m->n_layer, add(matrices, add(mul(6, C), add(QKV, FC))));
    return add(add(parts[0], parts[1]), add(parts[2], 3 * C + 1));
}

// Bytes of the parameters, gradients and both AdamW moments: four floats a parameter.
static uint64_t model_bytes(const RecipeModel *m) {
    uint64_t parts[3];
    return mul(16, model_params(m, parts));
}

static RecipeError rule_model_size(RecipeLoader *L, int i) {
    const RecipeModel *m = &L->r->model;
    uint64_t parts[3], params = model_params(m, parts), bytes = model_bytes(m);
    if (fc_width(m) > INT_MAX)
        return rule_fail(L, RECIPE_ERR_RULE, i, m->d_ff > 0 ? "model.d_ff" : "model.d_model",
                         "the MLP would be %llu wide, more than the %d the kernels count with "
                         "an int",
                         (unsigned long long)fc_width(m), INT_MAX);
    if (padded_vocab(m) > INT_MAX)
        return rule_fail(L, RECIPE_ERR_RULE, i, "model.vocab_size",
                         "%d rounds up to %llu embedding rows (a multiple of 64), more than the "
                         "%d the kernels count with an int",
                         m->vocab_size, (unsigned long long)padded_vocab(m), INT_MAX);
    if (bytes <= ADDRESSABLE) return RECIPE_OK;
    const char *key = parts[0] >= parts[1] && parts[0] >= parts[2] ? "model.vocab_size"
                      : parts[1] >= parts[2]                       ? "model.max_seq_len"
                                                                   : "model.d_model";
    return rule_fail(L, RECIPE_ERR_RULE, i, key,
                     "a model of %llu parameters needs %.1f TiB for its weights, gradients and "
                     "AdamW moments, more than the 128 TiB a 64-bit process can address",
                     (unsigned long long)params, TIB(bytes));
}

// Rows of one forward pass of the model a stage trains (two per preference pair), and of the
// inference passes over a rollout (responses: rollout.batch x rollout.group_size), 0 if none.
static void stage_rows(const Stage *s, uint64_t *train, uint64_t *infer) {
    unsigned kind = KIND(s->kind);
    uint64_t micro = (uint64_t)s->micro_batch_size;
    *train = kind & K_PREF ? 2 * micro : kind & K_TRAIN ? micro : 0;
    bool samples = (kind & (K_ROLL | K_SELF)) || ((kind & K_PREF) && *s->data.prompts);
    *infer = samples ? mul((uint64_t)s->rollout.batch, (uint64_t)s->rollout.group_size) : 0;
}

// Floats of the activations of rows x T positions through `layers` layers (model/model.c
// acts_layout, roughly): per layer 16 N C and the attention state (B x NH x T x T probabilities,
// or with `attention: flash` a B x NH x T logsumexp), the logits, and with backward the
// gradients of one layer. What `recompute` recomputes has room for one layer only: the
// attention's output (N C) and state, or all of a layer but its output (N C, the residual
// stream).
static uint64_t acts_floats(const RecipeModel *m, uint64_t rows, uint64_t T, uint64_t layers,
                            bool backward, bool flash, ModelRecompute recompute) {
    uint64_t N = mul(rows, T), C = (uint64_t)m->d_model;
    uint64_t att = mul(mul(rows, (uint64_t)m->n_head), flash ? T : mul(T, T));
    uint64_t mlp = add(fc_width(m), mlp_width(m)); // about 8C for GPT-2's 16 N C below
    uint64_t layer = add(mul(N, add(mul(8, C), mlp)), att);
    uint64_t once = recompute == MODEL_RECOMPUTE_ATTENTION ? add(mul(N, C), att)
                    : recompute == MODEL_RECOMPUTE_LAYER   ? layer - mul(N, C)
                                                           : 0; // layer > N C: no wrap
    uint64_t kept = add(mul(layers, layer - once), once);     // layer - once: no wrap either
    uint64_t all = add(kept, mul(N, add(padded_vocab(m), C)));
    return backward ? add(all, add(mul(12, mul(N, C)), att)) : all;
}

// The key to blame for rows x T: the larger factor's.
static const char *rows_key(const RecipeLoader *L, int i, uint64_t rows) {
    const Stage *s = &L->r->stages[i];
    if ((uint64_t)s->seq_len >= rows) return "seq_len";
    return recipe_where(L->r, i, "micro_batch_size") ? "micro_batch_size" : "batch_size";
}

static RecipeError rule_stage_size(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    const RecipeModel *m = &L->r->model;
    uint64_t train, infer, T = (uint64_t)s->seq_len;
    stage_rows(s, &train, &infer);
    if (infer > INT_MAX)
        return rule_fail(L, RECIPE_ERR_RULE, i, "rollout.batch",
                         "%d prompts x rollout.group_size %d = %llu responses, more than the %d "
                         "the kernels count with an int",
                         s->rollout.batch, s->rollout.group_size, (unsigned long long)infer,
                         INT_MAX);
    if (mul(train, T) > INT_MAX)
        return rule_fail(L, RECIPE_ERR_RULE, i, rows_key(L, i, train),
                         "one micro-batch of %llu x %d tokens is %llu positions, more than the "
                         "%d the kernels count with an int",
                         (unsigned long long)train, s->seq_len, (unsigned long long)mul(train, T),
                         INT_MAX);
    if (mul(infer, T) > INT_MAX)
        return rule_fail(L, RECIPE_ERR_RULE, i, "rollout.batch",
                         "a rollout of %llu responses x %d tokens is %llu positions, more than "
                         "the %d the kernels count with an int",
                         (unsigned long long)infer, s->seq_len, (unsigned long long)mul(infer, T),
                         INT_MAX);
    bool flash = L->r->attention == ATTENTION_FLASH;
    uint64_t floats =
        add(acts_floats(m, train, T, (uint64_t)m->n_layer, true, flash, L->r->recompute),
            acts_floats(m, infer, T, 1, false, flash, MODEL_RECOMPUTE_NONE));
    uint64_t bytes = add(model_bytes(m), mul(4, floats));
    if (bytes <= ADDRESSABLE) return RECIPE_OK;
    uint64_t rows = train > infer ? train : infer;
    char state[96]; // the attention state's shape: rows x heads x T (flash) or x T x T
    snprintf(state, sizeof(state), "%llu rows x %d heads x %d", (unsigned long long)rows, m->n_head,
             s->seq_len);
    if (!flash) snprintf(state + strlen(state), sizeof(state) - strlen(state), " x %d", s->seq_len);
    return rule_fail(L, RECIPE_ERR_RULE, i, rows_key(L, i, rows),
                     "one micro-batch of %llu x %d tokens needs %.1f TiB for the model and its "
                     "activations (attention state alone: %s), more than the 128 TiB a 64-bit "
                     "process can address",
                     (unsigned long long)rows, s->seq_len, TIB(bytes), state);
}

// ---- batches and lengths ------------------------------------------------------------------------

static RecipeError rule_micro_batch(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->batch_size % s->micro_batch_size == 0) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "micro_batch_size",
                     "%d does not divide batch_size = %d", s->micro_batch_size, s->batch_size);
}

static RecipeError rule_minibatches(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    long long responses = (long long)s->rollout.batch * s->rollout.group_size;
    if (responses % s->minibatches)
        return rule_fail(L, RECIPE_ERR_RULE, i, "minibatches",
                         "%d does not divide the %lld responses of a rollout (rollout.batch x "
                         "rollout.group_size)",
                         s->minibatches, responses);
    if ((responses / s->minibatches) % s->micro_batch_size)
        return rule_fail(L, RECIPE_ERR_RULE, i, "micro_batch_size",
                         "%d does not divide a minibatch of %lld responses", s->micro_batch_size,
                         responses / s->minibatches);
    return RECIPE_OK;
}

static RecipeError rule_seq_len(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->seq_len <= L->r->model.max_seq_len) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "seq_len", "%d exceeds model.max_seq_len = %d",
                     s->seq_len, L->r->model.max_seq_len);
}

static RecipeError rule_rollout_len(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->rollout.max_new_tokens < s->seq_len) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "rollout.max_new_tokens",
                     "%d leaves no room for the prompt in seq_len = %d", s->rollout.max_new_tokens,
                     s->seq_len);
}

static RecipeError rule_sample_len(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    // only samples that are drawn need room
    if (s->sample.every == 0 || s->sample.max_new_tokens < L->r->model.max_seq_len)
        return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "sample.max_new_tokens",
                     "%d leaves no room for a prompt in model.max_seq_len = %d",
                     s->sample.max_new_tokens, L->r->model.max_seq_len);
}

// ---- where weights and rewards come from --------------------------------------------------------

static RecipeError rule_init(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (*s->init || *L->r->model.from) return RECIPE_OK; // model.from: its weights
    return rule_fail(L, RECIPE_ERR_MISSING, i, "init",
                     "required for a stage of kind '%s': an earlier stage, a .h5 checkpoint or "
                     "a Hugging Face folder, or set model.from (only pretrain starts from "
                     "scratch)",
                     stage_kind_name(s->kind));
}

// RL: exactly one reward, from the judge block, a reward model or a gold task.
static RecipeError rule_reward(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    int judge = s->judge.kind != JUDGE_KIND_NONE, rm = *s->reward_model != '\0';
    int gold = *s->gold_reward != '\0';
    if (judge + rm + gold == 1) return RECIPE_OK;
    const char *key = judge + rm + gold == 0 ? "reward_model"
                      : judge                ? "judge.kind"
                                             : "gold_reward";
    return rule_fail(L, judge + rm + gold ? RECIPE_ERR_RULE : RECIPE_ERR_MISSING, i, key,
                     "set exactly one of reward_model, gold_reward and judge.kind (the stage's "
                     "reward)");
}

// KTO learns from unpaired examples: neither sampled pairs nor a chosen response's NLL.
static RecipeError rule_kto(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->loss != DPO_KTO) return RECIPE_OK;
    if (*s->data.prompts)
        return rule_fail(L, RECIPE_ERR_RULE, i, "data.prompts",
                         "loss kto trains on an unpaired dataset (data.train); pairs sampled "
                         "from prompts are preference data");
    if (s->rpo_alpha > 0)
        return rule_fail(L, RECIPE_ERR_RULE, i, "rpo_alpha",
                         "loss kto has no chosen response to add the NLL of; set it to 0");
    return RECIPE_OK;
}

// pretrain and sft train on data.train; reward and dpo on data.train or on pairs sampled from
// data.prompts and labelled by gold_reward; RL, eval, label and iterative_dpo stages need
// data.prompts.
static RecipeError rule_data(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    int pref = s->kind == STAGE_REWARD || s->kind == STAGE_DPO;
    int rl_or_eval = (KIND(s->kind) & (K_ROLL | K_CR)) != 0; // and critique_revise
    if (s->kind == STAGE_SELF_INSTRUCT && !*s->data.seeds)
        return rule_fail(L, RECIPE_ERR_MISSING, i, "data.seeds",
                         "required for a stage of kind 'self_instruct': the seed tasks (JSONL)");
    if (s->kind == STAGE_SELF_INSTRUCT) return RECIPE_OK;
    if (rl_or_eval && !*s->data.prompts)
        return rule_fail(L, RECIPE_ERR_MISSING, i, "data.prompts",
                         "required for a stage of kind '%s'", stage_kind_name(s->kind));
    if (rl_or_eval) return RECIPE_OK;
    if (pref && *s->data.train && *s->data.prompts)
        return rule_fail(L, RECIPE_ERR_RULE, i, "data.prompts",
                         "set one of data.train (a preference dataset) and data.prompts (pairs "
                         "sampled from the start model)");
    if (pref && *s->data.prompts && !*s->gold_reward && s->judge.kind == JUDGE_KIND_NONE)
        return rule_fail(L, RECIPE_ERR_MISSING, i, "gold_reward",
                         "sampled pairs (data.prompts) are labelled by a judge: set gold_reward "
                         "or judge.kind");
    if (*s->data.train || (pref && *s->data.prompts)) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_MISSING, i, "data.train", "required for a stage of kind '%s'%s",
                     stage_kind_name(s->kind),
                     pref ? " (or data.prompts, to sample pairs from the start model)" : "");
}

static RecipeError rule_group(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->rollout.group_size >= 2) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "rollout.group_size",
                     "%s compares responses to one prompt, so it needs at least 2; got %d",
                     stage_kind_name(s->kind), s->rollout.group_size);
}

// eval: gold_reward and/or one other judge (reward_model or judge.kind).
static RecipeError rule_eval_judge(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    int judge = s->judge.kind != JUDGE_KIND_NONE, rm = *s->reward_model != '\0';
    if (judge && rm)
        return rule_fail(L, RECIPE_ERR_RULE, i, "reward_model",
                         "set one of reward_model and judge.kind: one judge scores alongside "
                         "gold_reward");
    if (judge || rm || *s->gold_reward) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_MISSING, i, "reward_model",
                     "an eval stage needs gold_reward, reward_model or judge.kind (or "
                     "gold_reward and one of the others)");
}

// Whether text holds the placeholder ph ("{prompt}").
static bool has_placeholder(const char *text, const char *ph) {
    return strstr(text, ph) != NULL;
}

// The keys each judge kind needs, and a regex that compiles.
static RecipeError rule_judge_keys(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    const JudgeConfig *j = &s->judge;
    if (j->kind == JUDGE_KIND_MATCH && *j->regex) {
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)j->regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF,
                                       &code, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof(msg));
            return rule_fail(L, RECIPE_ERR_RULE, i, "judge.regex",
                             "'%s' does not compile: %s at offset %zu", j->regex, (char *)msg,
                             (size_t)off);
        }
        pcre2_code_free(re);
    }
    if (j->kind == JUDGE_KIND_COMMAND && !*j->command)
        return rule_fail(L, RECIPE_ERR_MISSING, i, "judge.command",
                         "judge.kind: command needs the command to run");
    if (j->kind != JUDGE_KIND_MODEL) return RECIPE_OK;
    if (j->pairwise && (KIND(s->kind) & K_RL) && s->rollout.group_size < 2)
        return rule_fail(L, RECIPE_ERR_RULE, i, "judge.pairwise",
                         "a pairwise judge compares the responses to one prompt: it needs "
                         "rollout.group_size >= 2, got %d",
                         s->rollout.group_size);
    if (!*j->model)
        return rule_fail(L, RECIPE_ERR_MISSING, i, "judge.model",
                         "judge.kind: model needs the judge model (a stage or a .h5 checkpoint)");
    const char *need[3] = {"{prompt}", j->pairwise ? "{response_a}" : "{response}",
                           j->pairwise ? "{response_b}" : NULL};
    for (int k = 0; k < 3 && need[k]; k++)
        if (!has_placeholder(j->template, need[k]))
            return rule_fail(L, *j->template ? RECIPE_ERR_RULE : RECIPE_ERR_MISSING, i,
                             "judge.template", "the %s judge's template must contain %s",
                             j->pairwise ? "pairwise" : "pointwise", need[k]);
    for (int k = 0; k < j->verdicts.n; k++)
        if (!*j->verdicts.items[k])
            return rule_fail(L, RECIPE_ERR_RULE, i, "judge.verdicts", "verdict %d is empty", k + 1);
    if (strcmp(j->verdicts.items[0], j->verdicts.items[1]) == 0)
        return rule_fail(L, RECIPE_ERR_RULE, i, "judge.verdicts", "the two verdicts are both '%s'",
                         j->verdicts.items[0]);
    return RECIPE_OK;
}

// critique_revise's principles are pairs: the i-th revision request answers the i-th critique.
static RecipeError rule_principles(RecipeLoader *L, int i) {
    const CritiqueReviseConfig *c = &L->r->stages[i].critique_revise;
    if (c->critiques.n == c->revisions.n) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "critique_revise.revisions",
                     "%d revision requests for %d critique requests: critique_revise.critiques "
                     "and critique_revise.revisions are pairs (the i-th revision request "
                     "follows the i-th critique) and must have the same length",
                     c->revisions.n, c->critiques.n);
}

static RecipeError rule_value_init(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->value.init != VALUE_INIT_REWARD_MODEL || *s->reward_model) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "value.init",
                     "reward_model needs a reward_model to start from; with gold_reward use "
                     "value.init: policy");
}

static RecipeError rule_lora(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->lora.rank == 0) return RECIPE_OK;
    for (int k = 0; k < s->lora.targets.n; k++) {
        LoraTarget t;
        if (lora_target_parse(s->lora.targets.items[k], &t))
            return rule_fail(L, RECIPE_ERR_RULE, i, "lora.targets",
                             "'%s' is not a projection (q, k, v, o, gate, up, down)",
                             s->lora.targets.items[k]);
        if (t == LORA_GATE && L->r->model.family == MODEL_FAMILY_GPT2)
            return rule_fail(L, RECIPE_ERR_RULE, i, "lora.targets",
                             "gpt2's MLP has no gate projection (q, k, v, o, up, down)");
    }
    return RECIPE_OK;
}

// Checks one reference of stage i (key k): a .h5 path, or an earlier stage of a kind k allows.
static RecipeError ref_check(RecipeLoader *L, int i, const Key *k, const char *ref) {
    const Recipe *r = L->r;
    int j = recipe_stage_index(r, ref);
    char kinds[128], msg[512];
    if (!*ref || ref_is_path(ref)) return RECIPE_OK;
    if (j < 0) {
        Suggest sg;
        suggest_init(&sg, ref);
        for (j = 0; j < r->n_stages; j++) suggest_consider(&sg, r->stages[j].name);
        snprintf(msg, sizeof(msg),
                 "no stage named '%.200s'%s (a checkpoint is a path ending in .h5, a Hugging Face "
                 "folder a path with a '/', e.g. ./SmolLM-135M)",
                 ref, recipe_where(r, i, k->path) ? "" : ", the default");
        suggest_append(&sg, "", msg, sizeof(msg));
        return rule_fail(L, RECIPE_ERR_REFERENCE, i, k->path, "%s", msg);
    }
    if (j >= i)
        return rule_fail(L, RECIPE_ERR_REFERENCE, i, k->path,
                         "stage '%s' does not come before this one; a stage can only use "
                         "earlier stages",
                         ref);
    if (k->ref_kinds & KIND(r->stages[j].kind)) return RECIPE_OK;
    kinds_format(k->ref_kinds, kinds, sizeof(kinds));
    return rule_fail(L, RECIPE_ERR_REFERENCE, i, k->path,
                     "'%s' is a %s stage; expected a stage of kind %s", ref,
                     stage_kind_name(r->stages[j].kind), kinds);
}

// Checks a best-of-n entry of stage i's key k (bon(<model>, <n>)): allowed there, well formed,
// and its model a reference of the kinds k allows.
static RecipeError bon_check(RecipeLoader *L, int i, const Key *k, const char *ref) {
    char model[PATH_MAX], err[PATH_MAX + 256];
    int n;
    if (recipe_bon_parse(ref, model, sizeof(model), &n, err, sizeof(err)) < 0)
        return rule_fail(L, RECIPE_ERR_RULE, i, k->path, "%s", err);
    if (!(k->flags & KEY_BON))
        return rule_fail(L, RECIPE_ERR_RULE, i, k->path,
                         "'%s' is a best-of-n entry, which only `models` may list: %s names one "
                         "model (e.g. '%s'; list '%s' in models to evaluate it)",
                         ref, k->path, model, ref);
    return ref_check(L, i, k, model);
}

static RecipeError rule_refs(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    for (int n = 0; n < SCHEMA_COUNT; n++) {
        const Key *k = &SCHEMA[n];
        if (!(k->flags & KEY_STAGE_REF) || !key_applies(k, s->kind)) continue;
        for (int m = 0; m < value_string_count(k, s); m++) {
            const char *ref = value_string(k, s, m);
            RecipeError rc =
                strncmp(ref, "bon(", 4) == 0 ? bon_check(L, i, k, ref) : ref_check(L, i, k, ref);
            if (rc) return rc;
        }
    }
    return RECIPE_OK;
}

// clang-format off
const Rule RULES[] = {
    {0, rule_run_name, "`name` holds only letters, digits, `_`, `-` and `.`, and does not start "
                       "with `.`"},
    {0, rule_heads, "`model.d_model` is divisible by `model.n_head`"},
    {0, rule_backend_options, "`precision: bf16` and `attention: cudnn` need `backend: cuda`"},
    {0, rule_prepare, "`prepare` commands make files: none is `run` or `validate`, which would "
                      "run the recipe's prepare commands again"},
    {0, rule_model_size, "4 x `model.d_model` and `model.vocab_size` rounded up to a multiple of "
                         "64 fit an int, and the parameters, gradients and AdamW moments (16 "
                         "bytes a parameter) fit the 128 TiB a 64-bit process can address"},
    {K_ALL, rule_stage_size, "a forward pass's positions (micro-batch rows, two per preference "
                             "pair, x `seq_len`; a rollout's responses x `seq_len`) and "
                             "`rollout.batch` x `rollout.group_size` fit an int, and the model "
                             "with one batch's activations fits 128 TiB"},
    {K_STEPS, rule_micro_batch, "`micro_batch_size` divides `batch_size`"},
    {K_RL, rule_minibatches, "`minibatches` divides `rollout.batch` x `rollout.group_size`, "
                             "and `micro_batch_size` divides the resulting minibatch"},
    {K_ALL, rule_seq_len, "`seq_len` is at most `model.max_seq_len`"},
    {K_ROLL | K_SELF, rule_rollout_len, "`rollout.max_new_tokens` is less than `seq_len`"},
    {K_GEN, rule_sample_len, "`sample.max_new_tokens` is less than `model.max_seq_len`"},
    {(K_TRAIN & ~KIND(STAGE_PRETRAIN)) | K_SELF | KIND(STAGE_LABEL), rule_init,
     "`init` is set: only pretrain starts from scratch"},
    {K_RL | K_LABEL, rule_reward,
     "exactly one of `reward_model`, `gold_reward` and `judge.kind` is set"},
    {KIND(STAGE_DPO), rule_kto, "`loss: kto` trains on `data.train` (an unpaired dataset): "
                                "no `data.prompts`, no `rpo_alpha`"},
    {K_ALL, rule_data, "the datasets a kind needs are set: `data.train` (pretrain, sft; reward and "
                       "dpo: or `data.prompts` with `gold_reward` or `judge.kind`), "
                       "`data.prompts` (ppo, grpo, rloo, eval, label, iterative_dpo, "
                       "critique_revise), `data.seeds` (self_instruct)"},
    {KIND(STAGE_GRPO) | KIND(STAGE_RLOO) | K_LABEL, rule_group,
     "`rollout.group_size` is at least 2: the responses to a prompt are compared"},
    {K_CR, rule_principles, "`critique_revise.critiques` and `critique_revise.revisions` have "
                            "the same length"},
    {K_EVAL, rule_eval_judge, "`gold_reward`, `reward_model` or `judge.kind` is set; not both "
                              "`reward_model` and `judge.kind`"},
    {K_JUDGE, rule_judge_keys, "`judge.regex` compiles; `judge.kind: command` sets "
                               "`judge.command`; `judge.kind: model` sets `judge.model` and a "
                               "`judge.template` with its placeholders, and two different "
                               "`judge.verdicts`; a pairwise judge of an RL stage has "
                               "`rollout.group_size` >= 2"},
    {K_PPO, rule_value_init, "`value.init: reward_model` needs `reward_model`"},
    {K_TRAIN, rule_lora, "`lora.targets` are projections the family has"},
    {K_ALL, rule_refs, "`init`, `reward_model`, `judge.model`, `models` and `reference_model` name an "
                       "earlier stage of a kind their `allowed` column lists, or a .h5 checkpoint; "
                       "`models` may also hold `bon(<model>, <n>)` with such a model and an "
                       "integer n >= 2"},
};
// clang-format on
const int RULE_COUNT = (int)(sizeof(RULES) / sizeof(RULES[0]));

RecipeError rules_check(RecipeLoader *L, int i) {
    unsigned kind = i < 0 ? 0 : KIND(L->r->stages[i].kind);
    for (int n = 0; n < RULE_COUNT; n++) {
        if (i < 0 ? RULES[n].kinds != 0 : !(RULES[n].kinds & kind)) continue;
        RecipeError rc = RULES[n].check(L, i);
        if (rc) return rc;
    }
    return RECIPE_OK;
}

// model.from: the model keys take the file's configuration, and may not be given beside it.
static RecipeError resolve_model_from(RecipeLoader *L) {
    RecipeModel *m = &L->r->model;
    static const char *const shape_keys[] = {
        "model.family",   "model.n_layer",    "model.n_head",     "model.n_kv_head",
        "model.d_model",  "model.d_ff",       "model.vocab_size", "model.max_seq_len",
        "model.norm_eps", "model.rope_theta", "model.tied",       "model.qkv_bias"};
    for (size_t k = 0; k < sizeof(shape_keys) / sizeof(shape_keys[0]); k++)
        if (recipe_where(L->r, -1, shape_keys[k]))
            return rule_fail(L, RECIPE_ERR_RULE, -1, shape_keys[k],
                             "is read from model.from ('%s'); remove it", m->from);
    ModelConfig c;
    int heads;
    char err[1024];
    if (model_read_config_any(m->from, &c, &heads, err, sizeof(err)))
        return rule_fail(L, RECIPE_ERR_FILE, -1, "model.from", "%s", err);
    m->family = c.family, m->n_layer = c.n_layer, m->n_head = c.n_head;
    m->n_kv_head = c.n_kv_head, m->d_model = c.d_model, m->d_ff = c.d_ff;
    m->vocab_size = c.vocab_size, m->max_seq_len = c.max_seq_len, m->norm_eps = c.norm_eps;
    m->rope_theta = c.rope_theta, m->tied = c.tied, m->qkv_bias = c.qkv_bias;
    return RECIPE_OK;
}

RecipeError rules_resolve(RecipeLoader *L, int i) {
    Recipe *r = L->r;
    if (i < 0) {
        if (*r->model.from) {
            RecipeError rc = resolve_model_from(L);
            if (rc) return rc;
        }
        if (*r->output_dir) return RECIPE_OK;
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "runs/%s", r->name);
        free(r->output_dir);
        r->output_dir = path_resolve(L->cwd, dir);
        return RECIPE_OK;
    }
    Stage *s = &r->stages[i];
    unsigned kind = KIND(s->kind);
    RecipeError rc = outputs_resolve(L, i);
    if (rc) return rc;
    long long responses = (long long)s->rollout.batch * s->rollout.group_size;
    if (s->seq_len == 0) s->seq_len = r->model.max_seq_len;
    if (s->micro_batch_size == 0 && (kind & K_STEPS)) s->micro_batch_size = s->batch_size;
    if (s->micro_batch_size == 0 && (kind & K_RL) && responses % s->minibatches == 0)
        s->micro_batch_size = (int)(responses / s->minibatches);
    return RECIPE_OK;
}
