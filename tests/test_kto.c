// tests/test_kto.c: KTO in the dpo stage (`loss: kto`). The micro-batch loss differentiated
// through the model against finite differences with the reference point held constant
// (detached); accumulating two micro-batches gives the one-batch loss and gradient exactly;
// and end to end, `layercake data import --kind unpaired` on tests/fixtures/kto.jsonl then
// `layercake run` with a dpo stage of loss kto: the loss starts at lambda/2 (policy = reference),
// decreases, the cached and live references agree, the weights enter as documented and the
// stage warns when lambda_D n_D / (lambda_U n_U) leaves [1, 4/3].
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"
#include "train/stages/dpo.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const ModelConfig CFG = GPT2_CONFIG(2, 2, 32, 64, 16);

// ---- the micro-batch loss through the model
// ------------------------------------------------------

enum { B = 4, T = 8 };

typedef struct {
    int tokens[B * T], targets[B * T], len[B];
    float mask[B * T];
    Batch b;
} Rows;

// Four random rows; targets from position 2 are the completion.
static void rows_init(Rows *r, uint64_t seed) {
    Rng g = rng_init(seed);
    int len[B] = {7, 5, 8, 6};
    for (int i = 0; i < B * T; i++) r->tokens[i] = (int)rng_below(&g, CFG.vocab_size);
    for (int i = 0; i < B * T; i++) {
        int t = i % T, row = i / T;
        r->targets[i] = t < len[row] && i + 1 < B * T ? r->tokens[i + 1] : -1;
        r->mask[i] = t >= 2 && t < len[row] ? 1.0f : 0.0f;
    }
    memcpy(r->len, len, sizeof(len));
    r->b = (Batch){
        .B = B, .T = T, .tokens = r->tokens, .targets = r->targets, .mask = r->mask, .len = r->len};
}

// Rows [first, first + n) of r as a batch.
static Batch rows_part(Rows *r, int first, int n) {
    return (Batch){.B = n,
                   .T = T,
                   .tokens = r->tokens + first * T,
                   .targets = r->targets + first * T,
                   .mask = r->mask + first * T,
                   .len = r->len + first};
}

static const double REF[B] = {-20.0, -14.0, -25.0, -17.5};
static const uint8_t LABEL[B] = {1, 0, 1, 0};
static const KtoParams PARAMS = {0.5, 1.3, 0.7};

typedef struct {
    Model *m;
    Batch *b;
    double z0;
} FdCtx;

static double fd_loss(void *ctx) {
    FdCtx *c = ctx;
    return kto_micro_loss(c->m, c->b, REF, LABEL, c->z0, &PARAMS, B, NULL, NULL);
}

// z0 is an input of the loss, so the finite differences hold it constant: the analytic
// gradient must be that of the detached reference point.
START_TEST(test_kto_gradient_through_model) {
    Model *m = model_create(backend_cpu(), CFG, MODEL_HEAD_LM, MODEL_TRAIN, B, T);
    model_init_weights(m, 3);
    Rows r;
    rows_init(&r, 4);
    FdCtx c = {m, &r.b, 0.0};
    // z0 where the examples' log-ratios r_i = logp_i - REF_i fall on both sides of it
    Stats st;
    stats_reset(&st);
    kto_micro_loss(m, &r.b, REF, LABEL, 0.0, &PARAMS, B, NULL, &st);
    c.z0 = 0.5 * (stats_mean(&st, "rewards/desirable") + stats_mean(&st, "rewards/undesirable")) /
           PARAMS.beta;
    float dlogp[B * T];
    model_zero_grad(m);
    kto_micro_loss(m, &r.b, REF, LABEL, c.z0, &PARAMS, B, dlogp, NULL);
    float *grads = malloc(model_param_bytes(m));
    memcpy(grads, m->grads_mem, model_param_bytes(m));
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char what[64];
        snprintf(what, sizeof(what), "kto %s", ti->name);
        // the tolerance of test_dpo's check: fp32 noise of summed log-probs in the differences
        grad_check(what, m->params_mem + ti->offset, ti->numel, grads + ti->offset, fd_loss, &c,
                   2e-2f, 5e-3, 30);
    }
    free(grads);
    model_free(m);
}
END_TEST

// The step's loss is the mean over its examples: two micro-batches of two rows, each divided by
// the step's 4 examples, give the loss and the gradient of one micro-batch of four.
START_TEST(test_kto_accumulation_exact) {
    Model *m = model_create(backend_cpu(), CFG, MODEL_HEAD_LM, MODEL_TRAIN, B, T);
    model_init_weights(m, 5);
    Rows r;
    rows_init(&r, 6);
    float dlogp[B * T];
    size_t bytes = model_param_bytes(m);
    float *one = malloc(bytes);
    model_zero_grad(m);
    double whole = kto_micro_loss(m, &r.b, REF, LABEL, 0.8, &PARAMS, B, dlogp, NULL);
    memcpy(one, m->grads_mem, bytes);
    model_zero_grad(m);
    double parts = 0;
    for (int k = 0; k < 2; k++) {
        Batch h = rows_part(&r, 2 * k, 2);
        parts += kto_micro_loss(m, &h, REF + 2 * k, LABEL + 2 * k, 0.8, &PARAMS, B, dlogp, NULL);
    }
    printf("kto: one micro-batch of 4 vs two of 2: loss %.9f vs %.9f\n", whole, parts);
    ck_assert_double_eq_tol(whole, parts, 1e-6);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < bytes / sizeof(float); i++) {
        double d = fabs((double)one[i] - m->grads_mem[i]);
        worst = d > worst ? d : worst;
        scale = fabs(one[i]) > scale ? fabs(one[i]) : scale;
    }
    ck_assert_msg(scale > 0 && worst <= 1e-5 * scale, "gradients differ by %g (largest %g)", worst,
                  scale);
    free(one);
    model_free(m);
}
END_TEST

// ---- end to end ---------------------------------------------------------------------------------

static char dir[1024];

static void sh(const char *cmd) {
    int rc = system(cmd);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "failed: %s", cmd);
}

// A tokenizer trained on the fixture (its longest example is then 66 tokens), the fixture imported
// as an unpaired dataset through the command line, and a random start model.
static void setup_world(void) {
    snprintf(dir, sizeof(dir), "%s", test_tmp_path("kto"));
    char cmd[4096], path[1300], err[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
    sh(cmd);
    const char *files[] = {LC_SOURCE_DIR "/tests/fixtures/kto.jsonl"};
    Tokenizer *tok = tokenizer_train(files, 1, 300, NULL, 0, err, sizeof(err));
    ck_assert_msg(tok, "%s", err);
    snprintf(path, sizeof(path), "%s/tok.json", dir);
    ck_assert_msg(tokenizer_save(tok, path, err, sizeof(err)) == 0, "%s", err);
    int vocab = tokenizer_vocab_size(tok);
    tokenizer_free(tok);
    snprintf(cmd, sizeof(cmd),
             "%s/layercake data import --kind unpaired --tokenizer %s/tok.json --out "
             "%s/kto.h5 %s > %s/import.log 2>&1",
             LC_BINARY_DIR, dir, dir, files[0], dir);
    sh(cmd);
    ModelConfig c = GPT2_CONFIG(2, 2, 64, vocab, 72);
    Model *m = model_create(backend_cpu(), c, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(m, 6);
    snprintf(path, sizeof(path), "%s/init.h5", dir);
    ck_assert_msg(model_save(m, path, err, sizeof(err)) == 0, "%s", err);
    model_free(m);
}

// Runs `layercake run` on a recipe with one dpo stage on train with the given keys; returns the
// status.
static int run(const char *name, const char *train, const char *keys) {
    char recipe[1400], cmd[8192];
    snprintf(recipe, sizeof(recipe), "%s/%s.yaml", dir, name);
    FILE *f = fopen(recipe, "w");
    ck_assert(f);
    fprintf(f,
            "name: %s\nseed: 3\ntokenizer: tok.json\n"
            "model: {n_layer: 2, n_head: 2, d_model: 64, max_seq_len: 72}\n"
            "stages:\n"
            "  - {name: kto, kind: dpo, init: init.h5, data: {train: %s}, loss: kto,\n"
            "     batch_size: 8, micro_batch_size: 4, beta: 0.5, optim: {lr: 1.0e-3},\n"
            "     log: {every: 1}, %s}\n",
            name, train, keys);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s/layercake run %s output_dir=%s/runs/%s > %s/%s.log 2>&1",
             LC_BINARY_DIR, recipe, dir, name, dir, name);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static json_t *metrics_row(const char *name, int step, int val) {
    char path[1400], *line = NULL;
    size_t cap = 0;
    snprintf(path, sizeof(path), "%s/runs/%s/kto/metrics.jsonl", dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "no %s", path);
    json_t *found = NULL;
    while (!found && getline(&line, &cap, f) > 0) {
        json_t *row = json_loads(line, 0, NULL);
        if (row && json_integer_value(json_object_get(row, "step")) == step &&
            !json_object_get(row, "split") == !val)
            found = row;
        else
            json_decref(row);
    }
    free(line);
    fclose(f);
    ck_assert_msg(found, "%s: no row for step %d", path, step);
    return found;
}

static double num_split(const char *name, int step, int val, const char *key) {
    json_t *row = metrics_row(name, step, val);
    json_t *v = json_object_get(row, key);
    ck_assert_msg(v && json_is_number(v), "%s step %d: no '%s'", name, step, key);
    double x = json_number_value(v);
    json_decref(row);
    return x;
}

static double num(const char *name, int step, const char *key) {
    return num_split(name, step, 0, key);
}

// Whether the run's log holds text.
static int log_has(const char *name, const char *text) {
    char path[1400], buf[1 << 16];
    snprintf(path, sizeof(path), "%s/%s.log", dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "no %s", path);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

START_TEST(test_kto_end_to_end) {
    setup_world();
    // the dataset: 16 examples, 9 desirable (docs/datasets.md's layout)
    char path[1300], err[512];
    snprintf(path, sizeof(path), "%s/kto.h5", dir);
    Dataset *ds = dataset_open(path, DATA_UNPAIRED, err, sizeof(err));
    ck_assert_msg(ds && dataset_load(ds, 0, err, sizeof(err)) == 0, "%s", err);
    int nd = 0;
    for (int64_t e = 0; e < ds->n; e++) nd += ds->label[e];
    ck_assert_int_eq(ds->n, 16);
    ck_assert_int_eq(nd, 9);
    dataset_free(ds);

    // cached reference, 40 steps (20 epochs): at step 1 the policy is the reference, so every
    // r = 0, z0 = 0 and each example costs lambda (1 - sigmoid(0)) = 0.5
    const char *data = "kto.h5, val: kto.h5", *val = "val: {every: 1, batches: 2}";
    char keys[512];
    snprintf(keys, sizeof(keys), "steps: 16, reference: cached, %s", val);
    ck_assert_int_eq(run("cached", data, keys), 0);
    double first = num("cached", 1, "loss"), last = 0;
    for (int s = 13; s <= 16; s++) last += num("cached", s, "loss") / 4;
    printf("kto, cached reference: loss step 1 %.6f, mean of steps 13-16 %.6f; kl step 16 %.4f, "
           "rewards step 16: desirable %.4f undesirable %.4f\n",
           first, last, num("cached", 16, "kl"), num("cached", 16, "rewards/desirable"),
           num("cached", 16, "rewards/undesirable"));
    ck_assert_double_eq_tol(first, 0.5, 1e-6);
    ck_assert_double_eq_tol(num("cached", 1, "kl"), 0.0, 1e-6);
    ck_assert_msg(last < first - 0.05, "the loss did not decrease: %.4f -> %.4f", first, last);
    ck_assert(num("cached", 16, "rewards/desirable") > num("cached", 16, "rewards/undesirable"));
    ck_assert_msg(!log_has("cached", "left out"), "an example did not fit seq_len");
    ck_assert_msg(!log_has("cached", "warning: desirable_weight"), "9/7 is inside [1, 4/3]");

    // live reference: the same losses, reference points and rewards (step 2: after one update,
    // at the learning rate both schedules start from)
    snprintf(keys, sizeof(keys), "steps: 2, reference: live, %s", val);
    ck_assert_int_eq(run("live", data, keys), 0);
    const char *metric[] = {"loss", "kl", "rewards/desirable", "rewards/undesirable"};
    for (int s = 1; s <= 2; s++)
        for (int v = 0; v < 3 - s; v++)   // steps 1, 2 and validation after step 1 (z0 of
            for (int k = 0; k < 4; k++) { // the pass), at the learning rates both runs share
                double a = num_split("cached", s, v, metric[k]);
                double b = num_split("live", s, v, metric[k]);
                ck_assert_msg(fabs(a - b) <= 1e-5, "step %d%s %s: cached %.9f live %.9f", s,
                              v ? " val" : "", metric[k], a, b);
            }
    ck_assert_msg(num("live", 2, "kl") > 0 && num_split("live", 1, 1, "kl") > 0, "z0 stayed 0");

    // LoRA: the reference is the policy with its adapters off, cached or live alike
    const char *lora = "steps: 2, lora: {rank: 4, targets: [q, v, o], lr: 1.0e-2}";
    snprintf(keys, sizeof(keys), "%s, reference: cached", lora);
    ck_assert_int_eq(run("lora-cached", "kto.h5", keys), 0);
    snprintf(keys, sizeof(keys), "%s, reference: live", lora);
    ck_assert_int_eq(run("lora-live", "kto.h5", keys), 0);
    ck_assert_double_eq_tol(num("lora-cached", 1, "loss"), 0.5, 1e-6); // B = 0: policy = base
    for (int k = 0; k < 4; k++) {
        double a = num("lora-cached", 2, metric[k]), b = num("lora-live", 2, metric[k]);
        ck_assert_msg(fabs(a - b) <= 1e-5, "lora step 2 %s: cached %.9f live %.9f", metric[k], a,
                      b);
    }
    ck_assert_msg(fabs(num("lora-cached", 2, "rewards/desirable")) > 1e-4, "the adapters did not "
                                                                           "move");

    // weights: with lambda_D = 2 the first loss is 2 d / 2 + (1 - d) / 2 for the batch's share d
    // of desirable examples, and 2 x 9 / 7 = 2.57 is outside [1, 4/3]: a warning
    ck_assert_int_eq(run("weighted", "kto.h5", "steps: 1, desirable_weight: 2.0"), 0);
    double d = num("weighted", 1, "desirable");
    ck_assert_double_eq_tol(num("weighted", 1, "loss"), d + (1 - d) * 0.5, 1e-6);
    ck_assert_msg(d > 0 && d < 1, "the batch holds one label only (%g)", d);
    ck_assert(log_has("weighted", "warning: desirable_weight x desirable / (undesirable_weight x "
                                  "undesirable) = 2 x 9 / (1 x 7) = 2.571 is outside [1, 4/3]"));

    // a preference dataset is not the data of loss kto: refused before the run, naming the key
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "%s/layercake data import --kind preference --tokenizer %s/tok.json --out "
             "%s/pref.h5 %s/tests/fixtures/pref.jsonl > /dev/null 2>&1",
             LC_BINARY_DIR, dir, dir, LC_SOURCE_DIR);
    sh(cmd);
    ck_assert_int_ne(run("pairs", "pref.h5", "steps: 1"), 0);
    ck_assert_msg(log_has("pairs", "data.train") && log_has("pairs", "unpaired"),
                  "see %s/pairs.log", dir);
    // nor are pairs sampled from prompts, nor is there a chosen response for rpo_alpha
    ck_assert_int_ne(run("sampled", "kto.h5, prompts: kto.h5", "steps: 1"), 0);
    ck_assert(log_has("sampled", "kto.data.prompts: loss kto trains on an unpaired dataset"));
    ck_assert_int_ne(run("rpo", "kto.h5", "steps: 1, rpo_alpha: 0.5"), 0);
    ck_assert(log_has("rpo", "kto.rpo_alpha: loss kto has no chosen response"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("kto");
    TCase *tc = tcase_create("kto");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_kto_gradient_through_model);
    tcase_add_test(tc, test_kto_accumulation_exact);
    tcase_add_test(tc, test_kto_end_to_end);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
