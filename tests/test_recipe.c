// tests/test_recipe.c: recipe loading. Every error class on a fixture (the message must name
// the line, column and key path), command-line overrides and their precedence, the documented
// defaults against the code's, docs/recipes.md against the generator, the --print-config round
// trip, path resolution, the file checks, the schema table itself, and the `validate` command.
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "tests/data_fixtures.h"
#include "tests/testutil.h"
#include "train/recipe/recipe.h"
#include "train/recipe/recipe-impl.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIXTURES LC_SOURCE_DIR "/tests/fixtures/recipes/"
#define NOV(a)   ((int)(sizeof(a) / sizeof((a)[0])))

static char err[4096];

static RecipeError load(const char *fixture, char **ov, int n, Recipe *r) {
    char path[PATH_MAX];
    snprintf(path, sizeof(path), FIXTURES "%s", fixture);
    return recipe_load(path, ov, n, r, err, sizeof(err));
}

static void load_ok(const char *fixture, char **ov, int n, Recipe *r) {
    RecipeError rc = load(fixture, ov, n, r);
    ck_assert_msg(rc == RECIPE_OK, "%s: %s", fixture, err);
}

static const Stage *stage(const Recipe *r, const char *name) {
    int i = recipe_stage_index(r, name);
    ck_assert_msg(i >= 0, "no stage '%s'", name);
    return &r->stages[i];
}

typedef struct {
    const char *fixture;  // recipe file under tests/fixtures/recipes/
    const char *override; // one override, or NULL
    RecipeError status;   // expected error
    const char *want;     // expected text of the message
} ErrorCase;

static void expect_error(const ErrorCase *c) {
    Recipe r;
    char *ov[] = {(char *)c->override};
    RecipeError rc = load(c->fixture, ov, c->override ? 1 : 0, &r);
    ck_assert_msg(rc == c->status, "%s %s: status %d, want %d; message: %s", c->fixture,
                  c->override ? c->override : "", rc, c->status, err);
    ck_assert_msg(strstr(err, c->want), "message\n  %s\nlacks\n  %s", err, c->want);
    ck_assert_int_eq(r.n_stages, 0); // a failed load leaves nothing to free
}

// ---- errors in recipe files ---------------------------------------------------------------------

static const ErrorCase FILE_ERRORS[] = {
    {"missing.yaml", NULL, RECIPE_ERR_IO, "missing.yaml: cannot read: No such file or directory"},
    {"err_syntax.yaml", NULL, RECIPE_ERR_SYNTAX,
     "err_syntax.yaml:5:3: YAML syntax error: did not find expected ',' or '}' (while parsing a "
     "flow mapping at line 4)"},
    {"err_two_docs.yaml", NULL, RECIPE_ERR_SYNTAX,
     "err_two_docs.yaml:5:1: a second YAML document; a recipe is one document"},
    {"err_not_a_list.yaml", NULL, RECIPE_ERR_TYPE,
     "err_not_a_list.yaml:4:3: stages: expected a list of stages"},
    {"err_unknown_key.yaml", NULL, RECIPE_ERR_UNKNOWN_KEY,
     "err_unknown_key.yaml:9:7: pretrain.schedule.warmup_step: unknown key; did you mean "
     "'warmup_steps'?"},
    {"err_misplaced_key.yaml", NULL, RECIPE_ERR_UNKNOWN_KEY,
     "err_misplaced_key.yaml:4:60: pretrain.lr: unknown key; did you mean 'optim.lr'?"},
    {"err_unknown_top.yaml", NULL, RECIPE_ERR_UNKNOWN_KEY,
     "err_unknown_top.yaml:3:1: modle: unknown key; did you mean 'model'?"},
    {"err_defaults.yaml", NULL, RECIPE_ERR_UNKNOWN_KEY,
     "err_defaults.yaml:4:3: defaults.batch_sise: unknown key; did you mean 'batch_size'?"},
    {"err_type.yaml", NULL, RECIPE_ERR_TYPE,
     "err_type.yaml:7:17: pretrain.optim.lr: expected a number, got 'abc'"},
    {"err_range.yaml", NULL, RECIPE_ERR_RANGE,
     "err_range.yaml:4:12: model.n_layer: value 0 is out of range: must be in 1..256"},
    {"err_enum.yaml", NULL, RECIPE_ERR_RANGE,
     "err_enum.yaml:4:28: pretrain.kind: expected one of pretrain, sft, reward, dpo, ppo, grpo, "
     "rloo, eval, got 'pretrian'; did you mean 'pretrain'?"},
    {"err_missing_top.yaml", NULL, RECIPE_ERR_MISSING,
     "err_missing_top.yaml:1:1: tokenizer: required key is missing"},
    {"err_missing_stage.yaml", NULL, RECIPE_ERR_MISSING,
     "err_missing_stage.yaml:5:11: sft.data.train: required for a stage of kind 'sft'"},
    {"err_init.yaml", NULL, RECIPE_ERR_MISSING,
     "err_init.yaml:5:12: sft.init: required for a stage of kind 'sft'"},
    {"err_duplicate_key.yaml", NULL, RECIPE_ERR_DUPLICATE,
     "err_duplicate_key.yaml:6:3: model.n_layer: duplicate key (first at line 4)"},
    {"err_duplicate_stage.yaml", NULL, RECIPE_ERR_DUPLICATE,
     "err_duplicate_stage.yaml:6:12: stages[3].name: duplicate stage name 'sft' (first at line "
     "5)"},
    {"err_not_applicable.yaml", NULL, RECIPE_ERR_NOT_APPLICABLE,
     "err_not_applicable.yaml:11:5: sft.beta: 'beta' does not apply to a stage of kind 'sft' "
     "(only to dpo)"},
    {"err_unknown_stage.yaml", NULL, RECIPE_ERR_REFERENCE,
     "err_unknown_stage.yaml:6:34: dpo.init: no stage named 'sfft' (a checkpoint is a path "
     "ending in .h5, a Hugging Face folder a path with a '/', e.g. ./SmolLM-135M); did you mean "
     "'sft'?"},
    {"err_later_stage.yaml", NULL, RECIPE_ERR_REFERENCE,
     "err_later_stage.yaml:5:34: sft.init: stage 'dpo' does not come before this one"},
    {"err_ref_kind.yaml", NULL, RECIPE_ERR_REFERENCE,
     "err_ref_kind.yaml:9:19: ppo.reward_model: 'sft' is a sft stage; expected a stage of kind "
     "reward"},
    {"err_rule.yaml", NULL, RECIPE_ERR_RULE,
     "err_rule.yaml:8:23: pretrain.micro_batch_size: 5 does not divide batch_size = 16"},
    {"err_heads.yaml", NULL, RECIPE_ERR_RULE,
     "err_heads.yaml:3:29: model.d_model: 128 is not divisible by model.n_head = 3"},
    {"err_precision.yaml", NULL, RECIPE_ERR_RULE,
     "err_precision.yaml:4:12: precision: bf16 needs backend: cuda (the CPU backend computes in "
     "fp32)"},
    {"err_attention.yaml", NULL, RECIPE_ERR_RULE,
     "err_attention.yaml:3:12: attention: cudnn needs backend: cuda"},
    {"err_reward.yaml", NULL, RECIPE_ERR_RULE,
     "err_reward.yaml:10:18: grpo.gold_reward: set exactly one of reward_model, gold_reward and "
     "judge.kind"},
    {"err_group_size.yaml", NULL, RECIPE_ERR_RULE,
     "err_group_size.yaml:5:12: grpo.rollout.group_size: grpo compares responses to one prompt, "
     "so it needs at least 2; got 1"},
    {"err_stage_name.yaml", NULL, RECIPE_ERR_RULE,
     "err_stage_name.yaml:4:12: stages[1].name: 'pre train' may hold only letters, digits, '_' "
     "and '-'"},
    {"err_reserved_name.yaml", NULL, RECIPE_ERR_RULE,
     "err_reserved_name.yaml:4:12: stages[1].name: 'model' is a top-level key"},
    // a folder is not a recipe (it used to read as a YAML syntax error)
    {"paths", NULL, RECIPE_ERR_IO, "recipes/paths: is a folder, not a recipe file"},
    // explicit YAML tags: !!str makes a string even of digits; unknown tags are errors
    {"err_tag_str.yaml", NULL, RECIPE_ERR_TYPE,
     "err_tag_str.yaml:8:12: pretrain.steps: expected an integer, got the !!str '5'"},
    {"err_tag_unknown.yaml", NULL, RECIPE_ERR_TYPE,
     "err_tag_unknown.yaml:3:7: seed: unknown tag '!seed'"},
    {"err_tag_mismatch.yaml", NULL, RECIPE_ERR_TYPE, "pretrain.batch_size: '2.5' is not an !!int"},
    // a prepare command that loads a recipe would run prepare commands again, without end
    {"err_prepare_run.yaml", NULL, RECIPE_ERR_RULE,
     "err_prepare_run.yaml:5:3: prepare: item 2, 'run err_prepare_run.yaml': a prepare command "
     "cannot run or validate a recipe"},
    // every count fits an int, but one batch's attention scores could never be held
    {"err_huge_attention.yaml", NULL, RECIPE_ERR_RULE,
     "pretrain.seq_len: one micro-batch of 1 x 1073741824 tokens needs"},
    // each layer's attention probabilities fit, 256 layers of them do not (test_recompute)
    {"err_deep_attention.yaml", NULL, RECIPE_ERR_RULE,
     "pretrain.seq_len: one micro-batch of 1 x 131072 tokens needs"},
};

START_TEST(test_file_errors) {
    expect_error(&FILE_ERRORS[_i]);
}
END_TEST

// ---- overrides ----------------------------------------------------------------------------------

START_TEST(test_override_values) {
    char *ov[] = {"seed=3",
                  "model.n_layer=2",
                  "pretrain.steps=200",
                  "pretrain.optim.lr=1e-3",
                  "dpo.optim.betas=[0.8, 0.99]",
                  "ppo.kl={coef: 0.02, target: 6}",
                  "sft={steps: 7, packing: false}",
                  "eval.models=[sft, dpo]",
                  "grpo.kl.target=null",
                  "backend=cpu"};
    Recipe r;
    load_ok("full.yaml", ov, NOV(ov), &r);
    ck_assert_int_eq(r.seed, 3);
    ck_assert_int_eq(r.model.n_layer, 2);
    ck_assert_int_eq(stage(&r, "pretrain")->steps, 200);
    ck_assert_double_eq(stage(&r, "pretrain")->optim.lr, 1e-3);
    ck_assert_double_eq(stage(&r, "sft")->optim.lr, 1e-4); // other stages untouched
    ck_assert_double_eq(stage(&r, "dpo")->optim.betas[0], 0.8);
    ck_assert_double_eq(stage(&r, "dpo")->optim.betas[1], 0.99);
    ck_assert_double_eq(stage(&r, "ppo")->kl.coef, 0.02);
    ck_assert_double_eq(stage(&r, "ppo")->kl.target, 6.0);
    ck_assert_int_eq(stage(&r, "sft")->steps, 7);
    ck_assert(!stage(&r, "sft")->packing);
    ck_assert_int_eq(stage(&r, "eval")->models.n, 2);
    ck_assert_str_eq(stage(&r, "eval")->models.items[1], "dpo");
    ck_assert(isnan(stage(&r, "grpo")->kl.target));
    ck_assert_str_eq(recipe_where(&r, -1, "seed"), "command line 'seed=3'");
    ck_assert_str_eq(recipe_where(&r, recipe_stage_index(&r, "ppo"), "kl.coef"),
                     "command line 'ppo.kl={coef: 0.02, target: 6}'");
    recipe_free(&r);
}
END_TEST

// `attention: flash` is accepted on the CPU, and the memory rule counts its linear state: the
// recipe whose T x T probabilities could never be held loads with it.
START_TEST(test_attention_flash) {
    char *ov[] = {"attention=flash"};
    Recipe r;
    load_ok("full.yaml", ov, 1, &r);
    ck_assert_int_eq(r.attention, ATTENTION_FLASH);
    recipe_free(&r);
    load_ok("err_huge_attention.yaml", ov, 1, &r);
    recipe_free(&r);
}
END_TEST

// `recompute` defaults to none and takes none, attention or layer; the memory rule counts the
// recomputed activations once: the recipe whose 256 layers of attention probabilities could
// never be held loads when they are recomputed.
START_TEST(test_recompute) {
    Recipe r;
    load_ok("full.yaml", NULL, 0, &r);
    ck_assert_int_eq(r.recompute, MODEL_RECOMPUTE_NONE);
    recipe_free(&r);
    const char *names[] = {"none", "attention", "layer"};
    for (int k = 0; k < 3; k++) {
        char o[64];
        snprintf(o, sizeof(o), "recompute=%s", names[k]);
        char *ov[] = {o};
        load_ok("full.yaml", ov, 1, &r);
        ck_assert_int_eq(r.recompute, k);
        recipe_free(&r);
        if (k == 0) continue; // none: err_deep_attention.yaml's error (FILE_ERRORS)
        load_ok("err_deep_attention.yaml", ov, 1, &r);
        ck_assert_int_eq(r.recompute, k);
        recipe_free(&r);
    }
}
END_TEST

START_TEST(test_override_defaults) {
    char *ov[] = {"defaults.batch_size=8", "defaults.beta=0.5", "defaults.optim={lr: 2e-4}"};
    Recipe r;
    load_ok("full.yaml", ov, NOV(ov), &r);
    ck_assert_int_eq(stage(&r, "pretrain")->batch_size, 8);
    ck_assert_int_eq(stage(&r, "reward")->batch_size, 8);
    ck_assert_int_eq(stage(&r, "sft")->batch_size, 32); // the stage's own value wins
    ck_assert_double_eq(stage(&r, "dpo")->beta, 0.5);
    ck_assert_double_eq(stage(&r, "pretrain")->optim.lr, 2e-4);
    ck_assert_double_eq(stage(&r, "sft")->optim.lr, 1e-4);
    ck_assert_double_eq(stage(&r, "pretrain")->optim.weight_decay, 0.1); // merged key by key
    recipe_free(&r);
}
END_TEST

// built-in default < defaults: < the stage's own keys < command line
START_TEST(test_precedence) {
    Recipe r;
    load_ok("precedence.yaml", NULL, 0, &r);
    const Stage *plain = stage(&r, "plain"), *own = stage(&r, "own");
    ck_assert_double_eq(plain->schedule.min_lr_ratio, 0.1); // built-in
    ck_assert_int_eq(plain->schedule.warmup_steps, 50);     // defaults
    ck_assert_int_eq(own->schedule.warmup_steps, 10);       // stage
    ck_assert_double_eq(own->optim.lr, 1e-3);               // defaults, map merged
    ck_assert_double_eq(own->optim.betas[0], 0.8);          // stage, in the same map
    ck_assert_double_eq(plain->optim.betas[0], 0.9);        // built-in
    ck_assert_str_eq(recipe_where(&r, 0, "schedule.warmup_steps"), FIXTURES "precedence.yaml:5:28");
    ck_assert_str_eq(recipe_where(&r, 1, "schedule.warmup_steps"),
                     FIXTURES "precedence.yaml:16:30");
    ck_assert_ptr_null(recipe_where(&r, 0, "steps"));
    recipe_free(&r);

    char *ov[] = {"defaults.schedule.warmup_steps=20", "seed=1", "seed=2", "own.optim.lr=null"};
    load_ok("precedence.yaml", ov, NOV(ov), &r);
    ck_assert_int_eq(stage(&r, "plain")->schedule.warmup_steps, 20); // command-line defaults
    ck_assert_int_eq(stage(&r, "own")->schedule.warmup_steps, 10);   // stage beats defaults
    ck_assert_int_eq(r.seed, 2);                                     // the later override wins
    ck_assert_double_eq(stage(&r, "own")->optim.lr, 3e-4);           // null: built-in default
    recipe_free(&r);

    char *top[] = {"own.schedule.warmup_steps=7"};
    load_ok("precedence.yaml", top, NOV(top), &r);
    ck_assert_int_eq(stage(&r, "own")->schedule.warmup_steps, 7); // command line beats stage
    ck_assert_int_eq(stage(&r, "plain")->schedule.warmup_steps, 50);
    recipe_free(&r);
}
END_TEST

static const ErrorCase OVERRIDE_ERRORS[] = {
    {"full.yaml", "sft.optim.lrr=3", RECIPE_ERR_UNKNOWN_KEY,
     "command line 'sft.optim.lrr=3': sft.optim.lrr: unknown key; did you mean 'sft.optim.lr'?"},
    {"full.yaml", "ppo2.kl.coef=0.1", RECIPE_ERR_UNKNOWN_KEY,
     "command line 'ppo2.kl.coef=0.1': ppo2.kl.coef: unknown key; did you mean 'ppo.kl.coef'?"},
    {"full.yaml", "modle.n_layer=2", RECIPE_ERR_UNKNOWN_KEY, "did you mean 'model.n_layer'?"},
    {"full.yaml", "defaults.batch_sise=8", RECIPE_ERR_UNKNOWN_KEY,
     "command line 'defaults.batch_sise=8': defaults.batch_sise: unknown key; did you mean "
     "'defaults.batch_size'?"},
    {"full.yaml", "seed=abc", RECIPE_ERR_TYPE,
     "command line 'seed=abc': seed: expected an integer, got 'abc'"},
    {"full.yaml", "seed=1.5", RECIPE_ERR_TYPE, "seed: expected an integer, got '1.5'"},
    {"full.yaml", "seed=\"3\"", RECIPE_ERR_TYPE,
     "seed: expected an integer, got the quoted string '3'"},
    {"full.yaml", "seed=99999999999", RECIPE_ERR_RANGE, "seed: value does not fit in an int"},
    {"full.yaml", "seed=-1", RECIPE_ERR_RANGE, "seed: value -1 is out of range: must be >= 0"},
    {"full.yaml", "sft.packing=yes", RECIPE_ERR_TYPE,
     "sft.packing: expected true or false, got 'yes'"},
    {"full.yaml", "sft.optim.betas=[0.9]", RECIPE_ERR_TYPE,
     "sft.optim.betas: expected a list of 2 numbers, got 1"},
    {"full.yaml", "sft.optim.betas=[0.9, 1.5]", RECIPE_ERR_RANGE,
     "sft.optim.betas: item 2: value 1.5 is out of range: must be in [0, 1)"},
    {"full.yaml", "sft.optim.lr=1e999", RECIPE_ERR_RANGE, "sft.optim.lr: value 1e999 is out"},
    {"full.yaml", "sft.optim={lr: 0}", RECIPE_ERR_RANGE,
     "sft.optim.lr: value 0 is out of range: must be > 0"},
    {"full.yaml", "eval.models=[]", RECIPE_ERR_RANGE, "eval.models: expected >= 1 items, got 0"},
    {"full.yaml", "backend=gpu", RECIPE_ERR_RANGE,
     "backend: expected one of cpu, cuda, got 'gpu'; did you mean 'cpu'?"},
    {"full.yaml", "recompute=layers", RECIPE_ERR_RANGE,
     "command line 'recompute=layers': recompute: expected one of none, attention, layer, got "
     "'layers'"},
    {"full.yaml", "sft.lora={rank: 4, targets: [q, c_attn]}", RECIPE_ERR_RULE,
     "sft.lora.targets: 'c_attn' is not a projection (q, k, v, o, gate, up, down)"},
    {"full.yaml", "sft.lora={rank: 4, targets: [q, gate]}", RECIPE_ERR_RULE,
     "sft.lora.targets: gpt2's MLP has no gate projection"},
    {"full.yaml", "sft.lora.rank=-1", RECIPE_ERR_RANGE,
     "sft.lora.rank: value -1 is out of range: must be >= 0"},
    {"full.yaml", "sft.lora.alpha=0", RECIPE_ERR_RANGE,
     "sft.lora.alpha: value 0 is out of range: must be > 0"},
    {"full.yaml", "sft.lora.init=normal", RECIPE_ERR_RANGE,
     "sft.lora.init: expected one of kaiming, gaussian, got 'normal'"},
    {"full.yaml", "eval.lora.rank=4", RECIPE_ERR_NOT_APPLICABLE,
     "eval.lora.rank: 'lora.rank' does not apply to a stage of kind 'eval'"},
    {"full.yaml", "sft.beta=0.1", RECIPE_ERR_NOT_APPLICABLE,
     "command line 'sft.beta=0.1': sft.beta: 'beta' does not apply to a stage of kind 'sft' "
     "(only to dpo)"},
    {"full.yaml", "sft.name=x", RECIPE_ERR_NOT_APPLICABLE,
     "sft.name: a stage's name and kind are set only in the stage itself"},
    {"full.yaml", "defaults.kind=sft", RECIPE_ERR_NOT_APPLICABLE,
     "defaults.kind: a stage's name and kind are set only in the stage itself"},
    {"full.yaml", "seed", RECIPE_ERR_OVERRIDE, "command line 'seed': expected key.path=value"},
    {"full.yaml", "stages.sft.steps=1", RECIPE_ERR_OVERRIDE,
     "address a stage by its name: <stage-name>.<key>=value"},
    {"full.yaml", "sft.optim.betas=[0.9", RECIPE_ERR_SYNTAX,
     "command line 'sft.optim.betas=[0.9': YAML syntax error in the value"},
    {"full.yaml", "sft.init=dpo", RECIPE_ERR_REFERENCE,
     "command line 'sft.init=dpo': sft.init: stage 'dpo' does not come before this one"},
    {"full.yaml", "tokenizer=null", RECIPE_ERR_MISSING,
     "command line 'tokenizer=null': tokenizer: required, got null"},
    {"full.yaml", "model.n_head=3", RECIPE_ERR_RULE,
     "full.yaml:5:55: model.d_model: 128 is not divisible by model.n_head = 3"},
    {"full.yaml", "ppo.gold_reward=length", RECIPE_ERR_RULE,
     "command line 'ppo.gold_reward=length': ppo.gold_reward: set exactly one of reward_model, "
     "gold_reward and judge.kind"},
    {"full.yaml", "ppo.minibatches=5", RECIPE_ERR_RULE,
     "ppo.minibatches: 5 does not divide the 32 responses of a rollout"},
    {"full.yaml", "eval.seq_len=300", RECIPE_ERR_RULE,
     "eval.seq_len: 300 exceeds model.max_seq_len = 256"},
    {"full.yaml", "eval.reward_model=sft", RECIPE_ERR_REFERENCE,
     "eval.reward_model: 'sft' is a sft stage; expected a stage of kind reward"},
    {"full.yaml", "seed=!!str 3", RECIPE_ERR_TYPE,
     "command line 'seed=!!str 3': seed: expected an integer, got the !!str '3'"},
    {"full.yaml", "sft.packing=!!str true", RECIPE_ERR_TYPE,
     "sft.packing: expected true or false, got the !!str 'true'"},
    {"full.yaml", "sft.optim.lr=!!bool true", RECIPE_ERR_TYPE,
     "sft.optim.lr: expected a number, got the !!bool 'true'"},
    {"full.yaml", "sft.optim={lr: !binary 1}", RECIPE_ERR_TYPE,
     "sft.optim.lr: unknown tag '!binary'"},
    {"full.yaml", "sft.optim=!!seq [1]", RECIPE_ERR_TYPE, "sft.optim: expected a map of keys"},
    // shapes whose sizes overflow the ints the model and kernels compute with, or that no
    // 64-bit process could hold (they used to pass and hit an assertion in the model)
    {"full.yaml", "model.d_model=2147483644", RECIPE_ERR_RULE,
     "command line 'model.d_model=2147483644': model.d_model: the MLP would be 8589934576 wide, "
     "more than the 2147483647 the kernels count with an int"},
    {"full.yaml", "model.vocab_size=2147483647", RECIPE_ERR_RULE,
     "model.vocab_size: 2147483647 rounds up to 2147483648 embedding rows (a multiple of 64), "
     "more than the 2147483647"},
    {"full.yaml", "model={n_layer: 256, d_model: 65536}", RECIPE_ERR_RULE,
     "model.d_model: a model of 13194374610945 parameters needs 192.0 TiB for its weights, "
     "gradients and AdamW moments, more than the 128 TiB a 64-bit process can address"},
    {"full.yaml", "defaults.batch_size=2147483647", RECIPE_ERR_RULE,
     "pretrain.batch_size: one micro-batch of 2147483647 x 256 tokens is 549755813632 "
     "positions, more than the 2147483647 the kernels count with an int"},
    {"full.yaml", "model.max_seq_len=2147483647", RECIPE_ERR_RULE,
     "pretrain.seq_len: one micro-batch of 16 x 2147483647 tokens is 34359738352 positions"},
    {"full.yaml", "dpo.batch_size=1073741824", RECIPE_ERR_RULE,
     "dpo.batch_size: one micro-batch of 2147483648 x 256 tokens"},
    {"full.yaml", "ppo={minibatches: 1, rollout: {batch: 65536, group_size: 65536}}",
     RECIPE_ERR_RULE,
     "ppo.rollout.batch: 65536 prompts x rollout.group_size 65536 = 4294967296 responses, more "
     "than the 2147483647"},
};

START_TEST(test_override_errors) {
    expect_error(&OVERRIDE_ERRORS[_i]);
}
END_TEST

// ---- defaults and docs --------------------------------------------------------------------------

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(text, 1, (size_t)n, f), n);
    text[n] = '\0';
    fclose(f);
    return text;
}

// Cell `col` (0-based) of a markdown table row, without backticks, into buf.
static const char *md_cell(const char *row, int col, char *buf, size_t len) {
    for (int i = 0; i < col; i++) row = strchr(row + 1, '|');
    size_t n = strcspn(row + 1, "|");
    snprintf(buf, len, "%.*s", (int)n, row + 1);
    char *s = buf, *e = buf + strlen(buf);
    while (*s == ' ' || *s == '`') s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '`')) e--;
    *e = '\0';
    memmove(buf, s, strlen(s) + 1);
    return buf;
}

// Whether a "kinds" cell ("all", "ppo, grpo, rloo") includes kind.
static bool kinds_include(const char *cell, const char *kind) {
    char padded[256];
    snprintf(padded, sizeof(padded), ", %s,", cell);
    char want[32];
    snprintf(want, sizeof(want), ", %s,", kind);
    return strcmp(cell, "all") == 0 || strstr(padded, want);
}

// Adds an override setting key to its documented default, in every stage it applies to and
// that does not set it itself (or at the top level).
static int add_documented(const Recipe *r, const char *line, bool stage_key, char **ov, int n) {
    char key[128], def[128], kinds[256];
    md_cell(line, 0, key, sizeof(key));
    md_cell(line, 2, def, sizeof(def));
    if (strcmp(def, "required") == 0 || !strcmp(key, "defaults") || !strcmp(key, "stages"))
        return n;
    for (int i = stage_key ? 0 : -1; i < (stage_key ? r->n_stages : 0); i++) {
        if (recipe_where(r, i, key)) continue; // the fixture sets it
        if (i >= 0 && !kinds_include(md_cell(line, 4, kinds, sizeof(kinds)),
                                     stage_kind_name(r->stages[i].kind)))
            continue;
        ov[n] = malloc(512);
        snprintf(ov[n++], 512, "%s%s%s=%s", i >= 0 ? r->stages[i].name : "", i >= 0 ? "." : "", key,
                 def);
    }
    return n;
}

// Setting every key to the default docs/recipes.md gives it changes nothing.
START_TEST(test_documented_defaults) {
    Recipe plain, documented;
    load_ok("minimal.yaml", NULL, 0, &plain);
    char *docs = read_text(LC_SOURCE_DIR "/docs/recipes.md"), *ov[1024];
    int n = 0, rows = 0;
    bool stage_keys = false;
    for (char *line = strtok(docs, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "## ", 3) == 0) stage_keys = strcmp(line, "## Stage keys") == 0;
        if (strncmp(line, "| `", 3) != 0) continue;
        n = add_documented(&plain, line, stage_keys, ov, n);
        rows++;
        ck_assert_int_lt(n, 1024 - 64);
    }
    ck_assert_int_eq(rows, SCHEMA_COUNT + 2); // every key, and `defaults` and `stages`
    ck_assert_int_gt(n, 200);
    load_ok("minimal.yaml", ov, n, &documented);
    char path[256];
    ck_assert_msg(recipe_diff(&plain, &documented, path, sizeof(path)) == 0,
                  "documented default of %s differs from the code's", path);
    for (int i = 0; i < n; i++) free(ov[i]);
    free(docs);
    recipe_free(&plain);
    recipe_free(&documented);
}
END_TEST

START_TEST(test_docs_up_to_date) {
    char *want = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    ck_assert_int_eq(recipe_docs(f), 0);
    fclose(f);
    char *have = read_text(LC_SOURCE_DIR "/docs/recipes.md");
    int line = 1;
    size_t i = 0;
    for (; have[i] && have[i] == want[i]; i++) line += have[i] == '\n';
    ck_assert_msg(have[i] == want[i],
                  "docs/recipes.md differs from the schema at line %d; regenerate it with "
                  "`build/layercake recipe docs > docs/recipes.md`",
                  line);
    free(have);
    free(want);
}
END_TEST

// ---- printing -----------------------------------------------------------------------------------

// Prints r to a file, loads it back and checks both recipes, and both printouts, are equal.
static void round_trip(const Recipe *r, const char *name) {
    const char *path = test_tmp_path(name);
    FILE *f = fopen(path, "w");
    ck_assert_int_eq(recipe_print(f, r), 0);
    fclose(f);
    Recipe back;
    RecipeError rc = recipe_load(path, NULL, 0, &back, err, sizeof(err));
    ck_assert_msg(rc == RECIPE_OK, "the printed recipe does not load: %s", err);
    char key[256];
    ck_assert_msg(recipe_diff(r, &back, key, sizeof(key)) == 0, "%s differs after printing", key);
    char *once = read_text(path);
    f = fopen(path, "w");
    ck_assert_int_eq(recipe_print(f, &back), 0);
    fclose(f);
    char *twice = read_text(path);
    ck_assert_str_eq(once, twice);
    free(once);
    free(twice);
    recipe_free(&back);
}

START_TEST(test_print_round_trip) {
    char *ov[] = {"sft.sample.prompts=[\"null\", \"3\", \"a: b\", \"\", \"#x\", \"é\"]",
                  "grpo.kl.target=null",
                  "ppo.kl.target=0.1",
                  "dpo.optim.eps=1e-12",
                  "pretrain.optim.lr=0.1",
                  "grpo.gold_reward=\"123\""};
    Recipe r;
    load_ok("full.yaml", NULL, 0, &r);
    round_trip(&r, "full-printed.yaml");
    recipe_free(&r);
    load_ok("full.yaml", ov, NOV(ov), &r);
    ck_assert_str_eq(stage(&r, "sft")->sample.prompts.items[0], "null");
    ck_assert_str_eq(stage(&r, "grpo")->gold_reward, "123");
    round_trip(&r, "full-overridden.yaml");
    recipe_free(&r);
    load_ok("minimal.yaml", NULL, 0, &r);
    round_trip(&r, "minimal-printed.yaml");
    recipe_free(&r);
}
END_TEST

// Explicit core-schema tags are fine where they fit the key's type.
START_TEST(test_tags) {
    Recipe r;
    load_ok("tags.yaml", NULL, 0, &r);
    ck_assert_str_eq(r.name, "tags");
    ck_assert_int_eq(r.seed, 7); // !!int "7": the tag wins over the quotes
    ck_assert_int_eq(r.model.n_layer, 2);
    const Stage *pre = stage(&r, "pretrain"), *ppo = stage(&r, "ppo");
    ck_assert_int_eq(pre->steps, 5);
    ck_assert_double_eq(pre->optim.lr, 1e-3);
    ck_assert_double_eq(pre->optim.grad_clip, 2.0);
    ck_assert_double_eq(pre->optim.betas[1], 0.99);
    ck_assert_str_eq(pre->sample.prompts.items[0], "123");
    ck_assert_int_eq(pre->checkpoint.every, 0); // !!null: the default
    ck_assert(ppo->whiten_rewards);
    ck_assert(isnan(ppo->kl.target));
    recipe_free(&r);
}
END_TEST

START_TEST(test_diff) {
    Recipe a, b;
    char *ov[] = {"rloo.kl.coef=0.5"}, path[256] = "";
    load_ok("minimal.yaml", NULL, 0, &a);
    load_ok("minimal.yaml", ov, 1, &b);
    ck_assert_int_eq(recipe_diff(&a, &b, path, sizeof(path)), 1);
    ck_assert_str_eq(path, "rloo.kl.coef");
    ck_assert_int_eq(recipe_diff(&a, &a, path, sizeof(path)), 0);
    recipe_free(&a);
    recipe_free(&b);
}
END_TEST

START_TEST(test_summary) {
    Recipe r;
    char line[512];
    load_ok("full.yaml", NULL, 0, &r);
    recipe_stage_summary(&r, recipe_stage_index(&r, "sft"), line, sizeof(line));
    ck_assert_msg(strstr(line, "500 steps x 32 sequences of 256 tokens") &&
                      strstr(line, "from pretrain"),
                  "%s", line);
    recipe_stage_summary(&r, recipe_stage_index(&r, "ppo"), line, sizeof(line));
    ck_assert_msg(strstr(line, "100 iterations x 32 prompts x 1 responses, reward reward"), "%s",
                  line);
    recipe_stage_summary(&r, recipe_stage_index(&r, "eval"), line, sizeof(line));
    ck_assert_msg(strstr(line, "4 models against sft, judge reward"), "%s", line);
    ck_assert_int_eq(recipe_stage_index(&r, "dpo-ckpt"), 6);
    ck_assert_int_eq(recipe_stage_index(&r, "nope"), -1);
    recipe_free(&r);
}
END_TEST

// ---- paths --------------------------------------------------------------------------------------

START_TEST(test_paths) {
    char cwd[PATH_MAX], want[PATH_MAX + 64], old[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(old, sizeof(old)));
    ck_assert_int_eq(chdir(LC_SOURCE_DIR "/tests"), 0);
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    char *ov[] = {"sft.data.train=rel/x.h5"};
    Recipe r;
    RecipeError rc = recipe_load("fixtures/recipes/paths/recipe.yaml", ov, 1, &r, err, sizeof(err));
    ck_assert_msg(rc == RECIPE_OK, "%s", err);
    const Stage *pre = stage(&r, "pretrain"), *sft = stage(&r, "sft");
    snprintf(want, sizeof(want), "%.*s/samples/gpt2-tokenizer", (int)(strrchr(cwd, '/') - cwd),
             cwd); // tests/../samples
    ck_assert_str_eq(r.tokenizer, want);
    snprintf(want, sizeof(want), "%s/fixtures/recipes/paths/lm.h5", cwd);
    ck_assert_str_eq(pre->data.train, want);
    ck_assert_str_eq(pre->data.val, "/abs/val.h5");
    snprintf(want, sizeof(want), "%s/fixtures/recipes/paths/ckpt/start.h5", cwd);
    ck_assert_str_eq(sft->init, want);
    snprintf(want, sizeof(want), "%s/rel/x.h5", cwd); // command line: the working directory
    ck_assert_str_eq(sft->data.train, want);
    snprintf(want, sizeof(want), "%s/out/run", cwd);
    ck_assert_str_eq(r.output_dir, want);
    recipe_free(&r);

    char *dflt[] = {"output_dir=null"};
    rc = recipe_load("fixtures/recipes/paths/recipe.yaml", dflt, 1, &r, err, sizeof(err));
    ck_assert_msg(rc == RECIPE_OK, "%s", err);
    snprintf(want, sizeof(want), "%s/runs/paths", cwd);
    ck_assert_str_eq(r.output_dir, want);
    recipe_free(&r);
    ck_assert_int_eq(chdir(old), 0);

    char *p = path_resolve("/a/b", "../../../c/./d//e/..");
    ck_assert_str_eq(p, "/c/d");
    free(p);
}
END_TEST

// A data key naming a stage: the dataset that earlier stage makes, or an error naming the key.
START_TEST(test_stage_data) {
    static const ErrorCase cases[] = {
        {"minimal.yaml", "dpo.data.train=sft", RECIPE_ERR_REFERENCE,
         "dpo.data.train: stage 'sft' (sft) makes no preference dataset for a dpo stage"},
        {"minimal.yaml", "dpo.data.train=nosuch", RECIPE_ERR_REFERENCE,
         "dpo.data.train: 'nosuch' is neither an earlier stage nor a file path (write ./nosuch"},
        {"minimal.yaml", "sft.data.val=ppo", RECIPE_ERR_REFERENCE,
         "sft.data.val: stage 'ppo' does not come before this one"},
        {"minimal.yaml", "dpo.data.val=reward", RECIPE_ERR_REFERENCE,
         "stage 'reward' (reward) makes no validation preference dataset"},
    };
    for (int i = 0; i < NOV(cases); i++) expect_error(&cases[i]);
}
END_TEST

// ---- files --------------------------------------------------------------------------------------

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

// A recipe with every kind of file in a fresh folder; returns the recipe's path.
static const char *files_recipe(const char *dir) {
    static char path[PATH_MAX];
    char text[2048], file[PATH_MAX];
    mkdir(dir, 0755);
    snprintf(text, sizeof(text),
             "name: files\n"
             "tokenizer: %s/gpt2-tokenizer\n"
             "stages:\n"
             "  - {name: pretrain, kind: pretrain, data: {train: lm.h5}}\n"
             "  - {name: sft, kind: sft, init: ckpt.h5, data: {train: sft.h5, val: v.h5}}\n"
             "  - {name: ppo, kind: ppo, init: sft, gold_reward: length,\n"
             "     value: {init: policy}, data: {prompts: p.h5}}\n",
             LC_SAMPLES);
    snprintf(path, sizeof(path), "%s/r.yaml", dir);
    write_file(path, text);
    // real files, so the content checks of `layercake validate` pass: datasets recording the
    // GPT-2 tokenizer's fingerprint and a tiny GPT-2 checkpoint with its vocabulary
    snprintf(file, sizeof(file), "%s/gpt2-tokenizer", LC_SAMPLES);
    Tokenizer *tok = tokenizer_load(file, err, sizeof(err));
    ck_assert_msg(tok != NULL, "%s", err);
    uint64_t fp = tokenizer_fingerprint(tok);
    const char *names[] = {"lm.h5", "sft.h5", "v.h5", "p.h5"};
    const DataKind kinds[] = {DATA_LM, DATA_SFT, DATA_SFT, DATA_PROMPT};
    for (int i = 0; i < 4; i++) {
        snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
        fix_write_fp(file, kinds[i], 3, fp);
    }
    ModelConfig cfg = GPT2_CONFIG(1, 1, 8, tokenizer_vocab_size(tok),
                                  256); // the recipe's context: init must match it
    Model *m = model_create(backend_cpu(), cfg, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    snprintf(file, sizeof(file), "%s/ckpt.h5", dir);
    ck_assert_msg(model_save(m, file, err, sizeof(err)) == 0, "%s", err);
    model_free(m);
    tokenizer_free(tok);
    return path;
}

// A RecipeFileCheck that records "kind:name" of each file and refuses the kind in ctx.
typedef struct {
    char seen[1024];    // "kind:name" of each file checked, space-separated
    const char *refuse; // a kind to refuse, or NULL
} Seen;

static int record_file(void *ctx, const char *path, const char *kind, const char *tokenizer,
                       char *msg, size_t len) {
    Seen *s = ctx;
    size_t used = strlen(s->seen);
    snprintf(s->seen + used, sizeof(s->seen) - used, "%s%s:%s", used ? " " : "", kind,
             strrchr(path, '/') + 1);
    ck_assert_ptr_nonnull(strstr(tokenizer, "gpt2-tokenizer"));
    if (s->refuse && strcmp(kind, s->refuse) == 0) {
        snprintf(msg, len, "not a dataset of kind %s", kind);
        return 1;
    }
    return 0;
}

static RecipeError validate(const char *path, char **ov, int n, Seen *seen) {
    Recipe r;
    RecipeError rc = recipe_load(path, ov, n, &r, err, sizeof(err));
    ck_assert_msg(rc == RECIPE_OK, "%s", err);
    rc = recipe_validate_files(&r, record_file, seen, err, sizeof(err));
    recipe_free(&r);
    return rc;
}

START_TEST(test_files) {
    const char *dir = test_tmp_path("recipe-files");
    const char *path = files_recipe(dir);
    char want[3 * PATH_MAX], tok[PATH_MAX], ov[PATH_MAX + 32];
    Seen seen = {"", NULL};
    ck_assert_msg(validate(path, NULL, 0, &seen) == RECIPE_OK, "%s", err);
    ck_assert_str_eq(seen.seen, "tokenizer:gpt2-tokenizer lm:lm.h5 checkpoint:ckpt.h5 sft:sft.h5 "
                                "sft:v.h5 prompt:p.h5");

    seen = (Seen){"", "sft"}; // the checker refuses a file: its message, where the path was set
    ck_assert_int_eq(validate(path, NULL, 0, &seen), RECIPE_ERR_FILE);
    snprintf(want, sizeof(want), "%s:5:57: sft.data.train: not a dataset of kind sft", path);
    ck_assert_str_eq(err, want);

    snprintf(want, sizeof(want), "%s/p.h5", dir);
    remove(want);
    seen = (Seen){"", NULL};
    ck_assert_int_eq(validate(path, NULL, 0, &seen), RECIPE_ERR_FILE);
    snprintf(want, sizeof(want),
             "%s:7:45: ppo.data.prompts: cannot read '%s/p.h5': No such file "
             "or directory",
             path, dir);
    ck_assert_str_eq(err, want);

    snprintf(tok, sizeof(tok), "%s/tok", dir); // a folder with encoder.json but no vocab.bpe
    mkdir(tok, 0755);
    snprintf(want, sizeof(want), "%s/encoder.json", tok);
    write_file(want, "{}");
    snprintf(ov, sizeof(ov), "tokenizer=%s", tok);
    char *ovs[] = {ov};
    ck_assert_int_eq(validate(path, ovs, 1, &seen), RECIPE_ERR_FILE);
    snprintf(want, sizeof(want), "command line '%s': tokenizer: cannot read '%s/vocab.bpe'", ov,
             tok);
    ck_assert_msg(strstr(err, want), "%s", err);

    snprintf(ov, sizeof(ov), "pretrain.data.train=%s", dir); // a folder is not a dataset
    ck_assert_int_eq(validate(path, ovs, 1, &seen), RECIPE_ERR_FILE);
    ck_assert_msg(strstr(err, "pretrain.data.train: cannot read") && strstr(err, "it is a folder"),
                  "%s", err);
}
END_TEST

// ---- the schema itself --------------------------------------------------------------------------

static size_t type_size(const Key *k) {
    switch (k->type) {
    case KEY_INT:
    case KEY_ENUM:
        return sizeof(int);
    case KEY_FLOAT:
        return sizeof(double);
    case KEY_BOOL:
        return sizeof(bool);
    case KEY_STRING:
        return sizeof(char *);
    case KEY_STRINGS:
        return sizeof(StringList);
    case KEY_FLOATS:
        return (size_t)k->len * sizeof(double);
    }
    return 0;
}

START_TEST(test_schema) {
    for (int i = 0; i < SCHEMA_COUNT; i++) {
        const Key *k = &SCHEMA[i];
        ck_assert_msg(k->size == type_size(k), "%s: field size %zu does not fit its type", k->path,
                      k->size);
        ck_assert_msg(k->doc && *k->doc, "%s has no doc", k->path);
        ck_assert_msg((k->scope == SCOPE_STAGE) == (k->kinds != 0), "%s: kinds", k->path);
        ck_assert_msg((k->type == KEY_ENUM) == (k->names != NULL), "%s: enum names", k->path);
        ck_assert_msg(!(k->flags & KEY_STAGE_REF) || k->ref_kinds, "%s: ref kinds", k->path);
        bool numeric = k->type == KEY_INT || k->type == KEY_FLOAT || k->type == KEY_FLOATS;
        ck_assert_msg(!numeric || k->range.lo < k->range.hi, "%s: empty range", k->path);
        for (int j = 0; j < i; j++) {
            const Key *o = &SCHEMA[j];
            ck_assert_msg(o->scope != k->scope || strcmp(o->path, k->path), "%s twice", k->path);
            // a map's keys are adjacent, so printing opens each map once
            const char *dot = strchr(k->path, '.');
            size_t n = dot ? (size_t)(dot - k->path) + 1 : 0;
            bool same_map = n && o->scope == k->scope && strncmp(o->path, k->path, n) == 0;
            ck_assert_msg(!same_map || j == i - 1 || strncmp(SCHEMA[i - 1].path, k->path, n) == 0,
                          "%s is not next to the other keys of its map", k->path);
        }
    }
}
END_TEST

START_TEST(test_suggest) {
    Suggest s;
    suggest_init(&s, "warmup_step");
    suggest_consider(&s, "warmup_steps");
    suggest_consider(&s, "warmup");
    ck_assert_str_eq(s.best, "warmup_steps");
    suggest_init(&s, "modle");
    suggest_consider(&s, "model"); // a swap is one edit
    ck_assert_str_eq(s.best, "model");
    suggest_init(&s, "xyz");
    suggest_keys(&s, SCOPE_STAGE, "");
    ck_assert_str_eq(s.best, ""); // nothing close: no suggestion
    char msg[64] = "unknown key";
    suggest_append(&s, "", msg, sizeof(msg));
    ck_assert_str_eq(msg, "unknown key");
}
END_TEST

// model.from: the model keys take a checkpoint's configuration, stages may omit init, and a
// shape key given beside it or a file that cannot be read is refused by name.
START_TEST(test_model_from) {
    ModelConfig c = model_config_default(MODEL_FAMILY_LLAMA, 2, 4, 32, 300, 96);
    c.n_kv_head = 2;
    c.d_ff = 72;
    c.tied = false;
    c.rope_theta = 500000.0f;
    Model *m = model_create(backend_cpu(), c, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    const char *path = test_tmp_path("model-from.h5");
    char e[512], ov[PATH_MAX + 32];
    ck_assert_msg(model_save(m, path, e, sizeof(e)) == 0, "%s", e);
    model_free(m);
    snprintf(ov, sizeof(ov), "model.from=%s", path);
    char *ovs[] = {ov};
    Recipe r;
    load_ok("err_init.yaml", ovs, 1, &r); // sft has no init: it starts from model.from
    ck_assert_int_eq(r.model.family, MODEL_FAMILY_LLAMA);
    ck_assert_int_eq(r.model.n_layer, 2);
    ck_assert_int_eq(r.model.n_kv_head, 2);
    ck_assert_int_eq(r.model.d_ff, 72);
    ck_assert_int_eq(r.model.vocab_size, 300);
    ck_assert_int_eq(r.model.max_seq_len, 96);
    ck_assert(!r.model.tied);
    ck_assert_double_eq(r.model.rope_theta, 500000.0);
    ck_assert_int_eq(stage(&r, "sft")->seq_len, 96); // derived from the file's context
    recipe_free(&r);

    ErrorCase bad[] = {
        {"err_init.yaml", "model.from=/nonexistent/model.h5", RECIPE_ERR_FILE,
         "model.from: /nonexistent/model.h5"},
        {"full.yaml", ov, RECIPE_ERR_RULE, "model.family: is read from model.from"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) expect_error(&bad[i]);
}
END_TEST

// ---- the commands -------------------------------------------------------------------------------

// Runs the layercake binary with args, stdout and stderr to files; returns its exit status.
static int run_layercake(const char *args, const char *out, const char *errfile) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s/layercake %s >%s 2>%s", LC_BINARY_DIR, args, out, errfile);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(test_validate_command) {
    const char *path = files_recipe(test_tmp_path("recipe-cli"));
    const char *out = test_tmp_path("validate.out"), *errf = test_tmp_path("validate.err");
    char args[PATH_MAX + 128];
    snprintf(args, sizeof(args), "validate %s seed=7", path);
    ck_assert_int_eq(run_layercake(args, out, errf), 0);
    char *text = read_text(out);
    ck_assert_msg(strncmp(text, "ok: ", 4) == 0 && strstr(text, "\n  ppo "), "%s", text);
    free(text);

    snprintf(args, sizeof(args), "validate %s seed=7 --print-config", path);
    ck_assert_int_eq(run_layercake(args, out, errf), 0);
    Recipe printed, direct;
    char *ov[] = {"seed=7"}, key[256];
    ck_assert_msg(recipe_load(out, NULL, 0, &printed, err, sizeof(err)) == RECIPE_OK, "%s", err);
    ck_assert_msg(recipe_load(path, ov, 1, &direct, err, sizeof(err)) == RECIPE_OK, "%s", err);
    ck_assert_msg(recipe_diff(&printed, &direct, key, sizeof(key)) == 0, "%s differs", key);
    recipe_free(&printed);
    recipe_free(&direct);

    ck_assert_int_eq(run_layercake("validate " FIXTURES "err_type.yaml", out, errf), 1);
    text = read_text(errf);
    ck_assert_msg(strstr(text, "err_type.yaml:7:17: pretrain.optim.lr: expected a number, got "
                               "'abc'"),
                  "%s", text);
    free(text);
    ck_assert_int_eq(run_layercake("validate", out, errf), 2);
    ck_assert_int_eq(run_layercake("validate --bogus x.yaml", out, errf), 2);

    ck_assert_int_eq(run_layercake("recipe docs", out, errf), 0);
    char *docs = read_text(LC_SOURCE_DIR "/docs/recipes.md");
    text = read_text(out);
    ck_assert_msg(strcmp(text, docs) == 0, "`layercake recipe docs` differs from docs/recipes.md");
    free(text);
    free(docs);
}
END_TEST

static Suite *recipe_suite(void) {
    Suite *s = suite_create("recipe");
    TCase *t = tcase_create("errors");
    tcase_add_loop_test(t, test_file_errors, 0, NOV(FILE_ERRORS));
    tcase_add_loop_test(t, test_override_errors, 0, NOV(OVERRIDE_ERRORS));
    suite_add_tcase(s, t);
    t = tcase_create("values");
    tcase_add_test(t, test_override_values);
    tcase_add_test(t, test_attention_flash);
    tcase_add_test(t, test_recompute);
    tcase_add_test(t, test_override_defaults);
    tcase_add_test(t, test_precedence);
    tcase_add_test(t, test_paths);
    tcase_add_test(t, test_stage_data);
    tcase_add_test(t, test_files);
    tcase_add_test(t, test_model_from);
    tcase_add_test(t, test_diff);
    tcase_add_test(t, test_summary);
    tcase_add_test(t, test_tags);
    suite_add_tcase(s, t);
    t = tcase_create("schema");
    tcase_add_test(t, test_schema);
    tcase_add_test(t, test_suggest);
    tcase_add_test(t, test_documented_defaults);
    tcase_add_test(t, test_docs_up_to_date);
    tcase_add_test(t, test_print_round_trip);
    tcase_add_test(t, test_validate_command);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    return run_suite(recipe_suite());
}
