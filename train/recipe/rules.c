// train/recipe/rules.c: what single keys cannot say: rules across keys, references between
// stages, and the values that follow from others (a seq_len of 0, the default output_dir).
// Each rule is a line of RULES with its one-line doc, listed in docs/recipes.md.
#include "train/recipe/recipe-impl.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

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
    const ModelConfig *m = &L->r->model;
    if (m->d_model % m->n_head == 0) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "model.d_model",
                     "%d is not divisible by model.n_head = %d", m->d_model, m->n_head);
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
    if (*s->init) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_MISSING, i, "init",
                     "required for a stage of kind '%s': an earlier stage or a .h5 checkpoint "
                     "(only pretrain starts from scratch)",
                     stage_kind_name(s->kind));
}

static RecipeError rule_reward(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if ((*s->reward_model != '\0') + (*s->gold_reward != '\0') == 1) return RECIPE_OK;
    return rule_fail(L, *s->reward_model ? RECIPE_ERR_RULE : RECIPE_ERR_MISSING, i,
                     *s->reward_model ? "gold_reward" : "reward_model",
                     "set exactly one of reward_model and gold_reward");
}

// pretrain and sft train on data.train; reward and dpo on data.train or on pairs sampled from
// data.prompts and labelled by gold_reward; RL and eval stages need data.prompts.
static RecipeError rule_data(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    int pref = s->kind == STAGE_REWARD || s->kind == STAGE_DPO;
    int rl_or_eval = s->kind >= STAGE_PPO;
    if (rl_or_eval && !*s->data.prompts)
        return rule_fail(L, RECIPE_ERR_MISSING, i, "data.prompts",
                         "required for a stage of kind '%s'", stage_kind_name(s->kind));
    if (rl_or_eval) return RECIPE_OK;
    if (pref && *s->data.train && *s->data.prompts)
        return rule_fail(L, RECIPE_ERR_RULE, i, "data.prompts",
                         "set one of data.train (a preference dataset) and data.prompts (pairs "
                         "sampled from the start model)");
    if (pref && *s->data.prompts && !*s->gold_reward)
        return rule_fail(L, RECIPE_ERR_MISSING, i, "gold_reward",
                         "sampled pairs (data.prompts) are labelled by a gold reward function");
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

static RecipeError rule_judge(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (*s->judge || *s->gold_reward) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_MISSING, i, "judge",
                     "an eval stage needs judge (a reward model), gold_reward, or both");
}

static RecipeError rule_value_init(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    if (s->value.init != VALUE_INIT_REWARD_MODEL || *s->reward_model) return RECIPE_OK;
    return rule_fail(L, RECIPE_ERR_RULE, i, "value.init",
                     "reward_model needs a reward_model to start from; with gold_reward use "
                     "value.init: policy");
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
        snprintf(msg, sizeof(msg), "no stage named '%s'%s (checkpoint paths end in .h5)", ref,
                 recipe_where(r, i, k->path) ? "" : ", the default");
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

static RecipeError rule_refs(RecipeLoader *L, int i) {
    const Stage *s = &L->r->stages[i];
    for (int n = 0; n < SCHEMA_COUNT; n++) {
        const Key *k = &SCHEMA[n];
        if (!(k->flags & KEY_STAGE_REF) || !key_applies(k, s->kind)) continue;
        for (int m = 0; m < value_string_count(k, s); m++) {
            RecipeError rc = ref_check(L, i, k, value_string(k, s, m));
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
    {K_STEPS, rule_micro_batch, "`micro_batch_size` divides `batch_size`"},
    {K_RL, rule_minibatches, "`minibatches` divides `rollout.batch` x `rollout.group_size`, "
                             "and `micro_batch_size` divides the resulting minibatch"},
    {K_ALL, rule_seq_len, "`seq_len` is at most `model.max_seq_len`"},
    {K_ROLL, rule_rollout_len, "`rollout.max_new_tokens` is less than `seq_len`"},
    {K_GEN, rule_sample_len, "`sample.max_new_tokens` is less than `model.max_seq_len`"},
    {K_TRAIN & ~KIND(STAGE_PRETRAIN), rule_init, "`init` is set: only pretrain starts from "
                                                 "scratch"},
    {K_RL, rule_reward, "exactly one of `reward_model` and `gold_reward` is set"},
    {K_ALL, rule_data, "the datasets a kind needs are set: `data.train` (pretrain, sft; reward and "
                       "dpo: or `data.prompts` with `gold_reward`), `data.prompts` (ppo, grpo, "
                       "rloo, eval)"},
    {KIND(STAGE_GRPO) | KIND(STAGE_RLOO), rule_group, "`rollout.group_size` is at least 2: the "
                                                      "responses to a prompt are compared"},
    {K_EVAL, rule_judge, "`judge`, `gold_reward` or both are set"},
    {K_PPO, rule_value_init, "`value.init: reward_model` needs `reward_model`"},
    {K_ALL, rule_refs, "`init`, `reward_model`, `judge`, `models` and `reference_model` name an "
                       "earlier stage of a kind their `allowed` column lists, or a .h5 checkpoint"},
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

void rules_resolve(RecipeLoader *L, int i) {
    Recipe *r = L->r;
    if (i < 0) {
        if (*r->output_dir) return;
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "runs/%s", r->name);
        free(r->output_dir);
        r->output_dir = path_resolve(L->cwd, dir);
        return;
    }
    Stage *s = &r->stages[i];
    unsigned kind = KIND(s->kind);
    long long responses = (long long)s->rollout.batch * s->rollout.group_size;
    if (s->seq_len == 0) s->seq_len = r->model.max_seq_len;
    if (s->micro_batch_size == 0 && (kind & K_STEPS)) s->micro_batch_size = s->batch_size;
    if (s->micro_batch_size == 0 && (kind & K_RL) && responses % s->minibatches == 0)
        s->micro_batch_size = (int)(responses / s->minibatches);
}
