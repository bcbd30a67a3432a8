// tests/test_dpo.c: the dpo stage. The DPO and ORPO losses differentiated through the whole
// model against finite differences; a cached and a live reference give the same loss; and on
// a synthetic preference rule, DPO (through `layercake run`) reaches >= 90% validation
// accuracy, moves the policy's samples toward the rule, and beta controls the KL from the
// reference.
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/sample.h"
#include "tests/testutil.h"
#include "optim/optim.h"
#include "train/stages/dpo.h"
#include "train/stages/readouts.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const ModelConfig CFG = GPT2_CONFIG(2, 2, 32, 64, 16);

// ---- finite differences through the model
// ---------------------------------------------------------

typedef struct {
    Model *m;
    Batch *b;
    const double *ref;
    DpoParams p;
} FdCtx;

static double fd_loss(void *ctx) {
    FdCtx *c = ctx;
    return dpo_micro_loss(c->m, c->b, c->ref, &c->p, 2, NULL, NULL);
}

static void grad_through_model(DpoLoss loss) {
    Model *m = model_create(backend_cpu(), CFG, MODEL_HEAD_LM, MODEL_TRAIN, 4, 8);
    model_init_weights(m, 3);
    Rng r = rng_init(4);
    int tokens[32], targets[32], len[4] = {7, 5, 8, 6};
    float mask[32];
    for (int i = 0; i < 32; i++) tokens[i] = (int)rng_below(&r, CFG.vocab_size);
    for (int i = 0; i < 32; i++) {
        int t = i % 8, row = i / 8;
        targets[i] = t < len[row] && i + 1 < 32 ? tokens[i + 1] : -1;
        mask[i] = t >= 2 && t < len[row] ? 1.0f : 0.0f;
    }
    Batch b = {.B = 4, .T = 8, .tokens = tokens, .targets = targets, .mask = mask, .len = len};
    double ref[4] = {-20.0, -14.0, -25.0, -17.5};
    FdCtx c = {m, &b, ref, {loss, 0.5, 0.0, 0.0, 0.3, 0.0}};
    float dlogp[32];
    model_zero_grad(m);
    dpo_micro_loss(m, &b, ref, &c.p, 2, dlogp, NULL);
    float *grads = malloc(model_param_bytes(m));
    memcpy(grads, m->grads_mem, model_param_bytes(m));
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char what[64];
        snprintf(what, sizeof(what), "%s %s", loss == DPO_ORPO ? "orpo" : "dpo", ti->name);
        // fp32 rounding of ~20 summed log-probs gives finite-difference noise near 1e-5, which
        // is 3e-3 of the smallest tensors' gradients (ln1w): tolerance 5e-3 (a 1% error in a
        // backward still fails)
        grad_check(what, m->params_mem + ti->offset, ti->numel, grads + ti->offset, fd_loss, &c,
                   2e-2f, 5e-3, 30);
    }
    free(grads);
    model_free(m);
}

START_TEST(test_dpo_gradient_through_model) {
    grad_through_model(DPO_SIGMOID);
    grad_through_model(DPO_ORPO);
}
END_TEST

// ---- LoRA: the reference is the policy with its adapters off --------------------------------

// DPO over LoRA adapters, three AdamW steps, with the reference as the policy's adapters-off view
// (explicit = false) or as an explicit frozen copy of the base model (true): the losses of every
// step, returned in loss (3).
static void lora_dpo_steps(bool explicit_copy, double *loss) {
    Model *base = model_create(backend_cpu(), CFG, MODEL_HEAD_LM, MODEL_INFER, 4, 8);
    model_init_weights(base, 5);
    Model *policy = model_create(backend_cpu(), CFG, MODEL_HEAD_LM, MODEL_TRAIN, 4, 8);
    model_init_weights(policy, 5);
    LoraConfig lc = {.rank = 4, .alpha = 8.0f, .targets = 0x7fu & ~(1u << LORA_GATE)};
    char err[256];
    ck_assert_int_eq(model_lora_attach(policy, &lc, 9, err, sizeof(err)), 0);
    Model *ref = base;
    if (!explicit_copy) {
        ref = model_create_view(policy, MODEL_INFER, 4, 8);
        ref->adapters_off = true;
    }
    Rng r = rng_init(6);
    int tokens[32], targets[32], len[4] = {8, 6, 7, 8};
    float mask[32], dlogp[32];
    for (int i = 0; i < 32; i++) tokens[i] = (int)rng_below(&r, CFG.vocab_size);
    for (int i = 0; i < 32; i++) {
        int t = i % 8, row = i / 8;
        targets[i] = t < len[row] && i + 1 < 32 ? tokens[i + 1] : -1;
        mask[i] = t >= 3 && t < len[row] ? 1.0f : 0.0f;
    }
    Batch b = {.B = 4, .T = 8, .tokens = tokens, .targets = targets, .mask = mask, .len = len};
    DpoParams p = {DPO_SIGMOID, 0.5, 0.0, 0.0, 0.0, 0.0};
    AdamW opt;
    adamw_init(&opt, policy->be, &policy->train_table,
               (AdamWConfig){3e-2f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f});
    double refl[4];
    for (int s = 0; s < 3; s++) {
        model_forward(ref, &b, 1.0f);
        sequence_logps(ref, &b, refl, NULL);
        model_zero_grad(policy);
        loss[s] = dpo_micro_loss(policy, &b, refl, &p, 2, dlogp, NULL);
        adamw_step(&opt, policy->params_mem, policy->grads_mem, policy->weights_mem, 3e-2f);
    }
    adamw_free(&opt);
    if (ref != base) model_free(ref);
    model_free(base);
    model_free(policy);
}

START_TEST(test_lora_reference_is_the_base) {
    double view[3], copy[3];
    lora_dpo_steps(false, view);
    lora_dpo_steps(true, copy);
    printf("lora dpo, reference = adapters off vs a frozen copy of the base: losses %.9f %.9f "
           "%.9f vs %.9f %.9f %.9f\n",
           view[0], view[1], view[2], copy[0], copy[1], copy[2]);
    for (int s = 0; s < 3; s++) ck_assert_double_eq(view[s], copy[s]);
    ck_assert(view[2] < view[0] - 1e-3); // the adapters learn (B = 0 at the start: loss log 2)
    ck_assert_double_eq_tol(view[0], log(2.0), 1e-6);
}
END_TEST

// ---- end to end on a known rule
// -------------------------------------------------------------------

static char dir[1024];
static uint64_t fp;
static int eot, vocab;

// Prompt: 3 ids in [10, 60); response: 3 content ids in [100, 150), then a style id. The rule
// the preferences encode: the style id is GOOD. Most SFT demonstrations (70%) use BAD, so the
// SFT model's greedy answers break the rule. A pair differs only in its last token (no end
// token follows), so the style choice is the one thing the preference can move.
#define GOOD 60
#define BAD  61
#define RESP 4

static void response(Rng *r, int *out, int good) {
    for (int k = 0; k < 3; k++) out[k] = 100 + (int)rng_below(r, 50);
    out[3] = good ? GOOD : BAD;
}

static int follows_rule(const int *resp, int n) {
    return n >= 4 && resp[3] == GOOD;
}

// noise: the share of training pairs whose labels are swapped, like human raters; with noisy
// labels the preference has a finite strength, so beta sets how far the policy moves.
static void write_data(DataKind kind, const char *name, int n, uint64_t seed, double noise) {
    char path[1300], err[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    DatasetWriter *w = dataset_create(path, kind, fp, err, sizeof(err));
    ck_assert_msg(w, "%s", err);
    Rng r = rng_init(seed);
    for (int i = 0; i < n; i++) {
        int p[3], c[RESP], j[RESP], seq[3 + RESP];
        uint8_t mask[3 + RESP] = {0, 0, 0, 1, 1, 1, 1};
        for (int k = 0; k < 3; k++) p[k] = 10 + (int)rng_below(&r, 50);
        response(&r, c, 1);
        memcpy(j, c, sizeof(c)); // the same answer in the other style
        j[3] = BAD;
        int swap = rng_uniform(&r) < noise;
        Example ex = {.tokens = p,
                      .n_tokens = 3,
                      .chosen = swap ? j : c,
                      .n_chosen = RESP,
                      .rejected = swap ? c : j,
                      .n_rejected = RESP};
        if (kind == DATA_SFT) { // 70% of the demonstrations break the rule
            memcpy(seq, p, sizeof(p));
            memcpy(seq + 3, rng_uniform(&r) < 0.7 ? j : c, sizeof(c));
            ex = (Example){.tokens = seq, .n_tokens = 3 + RESP, .loss_mask = mask};
        }
        ck_assert_msg(dataset_append(w, &ex, err, sizeof(err)) == 0, "%s", err);
    }
    ck_assert_msg(dataset_close(w, err, sizeof(err)) == 0, "%s", err);
}

static void setup_world(void) {
    snprintf(dir, sizeof(dir), "%s", test_tmp_path("dpo"));
    char clean[1100];
    snprintf(clean, sizeof(clean), "rm -rf %s", dir);
    ck_assert_int_eq(system(clean), 0); // finished stages of an earlier test run would be reused
    mkdir(dir, 0755);
    char path[1300], corpus[1300], err[512];
    snprintf(corpus, sizeof(corpus), "%s/tinyshakespeare/input.txt", LC_SAMPLES);
    const char *files[] = {corpus};
    Tokenizer *tok = tokenizer_train(files, 1, 300, NULL, 0, err, sizeof(err));
    ck_assert_msg(tok, "%s", err);
    snprintf(path, sizeof(path), "%s/tok.json", dir);
    ck_assert_msg(tokenizer_save(tok, path, err, sizeof(err)) == 0, "%s", err);
    fp = tokenizer_fingerprint(tok), eot = tokenizer_eot(tok), vocab = tokenizer_vocab_size(tok);
    tokenizer_free(tok);
    write_data(DATA_SFT, "sft.h5", 2000, 1, 0.0);
    write_data(DATA_PREFERENCE, "pref.h5", 2000, 2, 0.2);
    write_data(DATA_PREFERENCE, "pref-val.h5", 200, 3, 0.0);
    ModelConfig c = GPT2_CONFIG(2, 2, 64, vocab, 16);
    Model *m = model_create(backend_cpu(), c, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(m, 6);
    snprintf(path, sizeof(path), "%s/init.h5", dir);
    ck_assert_msg(model_save(m, path, err, sizeof(err)) == 0, "%s", err);
    model_free(m);
}

// Runs `layercake run` on a recipe of an sft stage and the given dpo stage; returns the status.
static int run(const char *name, const char *dpo_stage) {
    char recipe[1400], cmd[16384];
    snprintf(recipe, sizeof(recipe), "%s/%s.yaml", dir, name);
    FILE *f = fopen(recipe, "w");
    ck_assert(f);
    fprintf(f,
            "name: %s\nseed: 3\ntokenizer: tok.json\n"
            "model: {n_layer: 2, n_head: 2, d_model: 64, max_seq_len: 16}\n"
            "defaults: {batch_size: 32, log: {every: 100}}\n"
            "stages:\n"
            "  - {name: sft, kind: sft, init: init.h5, data: {train: sft.h5}, steps: 150,\n"
            "     optim: {lr: 3.0e-3}}\n"
            "  - %s\n",
            name, dpo_stage);
    fclose(f);
    // every run shares the sft stage: link it in so it trains once
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s/runs/%s && { [ -e %s/runs/shared-sft ] || mkdir -p %s/runs/shared-sft; } "
             "&& ln -sfn %s/runs/shared-sft %s/runs/%s/sft && "
             "%s/layercake run %s output_dir=%s/runs/%s > %s/%s.log 2>&1",
             dir, name, dir, dir, dir, dir, name, LC_BINARY_DIR, recipe, dir, name, dir, name);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static json_t *metrics_row(const char *name, int step, const char *split) {
    char path[1400], *line = NULL;
    size_t cap = 0;
    snprintf(path, sizeof(path), "%s/runs/%s/dpo/metrics.jsonl", dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "no %s", path);
    json_t *found = NULL;
    while (!found && getline(&line, &cap, f) > 0) {
        json_t *row = json_loads(line, 0, NULL);
        json_t *sp = json_object_get(row, "split");
        int want = json_integer_value(json_object_get(row, "step")) == step &&
                   ((split && sp && strcmp(json_string_value(sp), split) == 0) || (!split && !sp));
        if (want)
            found = row;
        else
            json_decref(row);
    }
    free(line);
    fclose(f);
    ck_assert_msg(found, "%s: no row for step %d", path, step);
    return found;
}

static double num(json_t *row, const char *key) {
    json_t *v = json_object_get(row, key);
    ck_assert_msg(v && json_is_number(v), "no '%s'", key);
    return json_number_value(v);
}

typedef struct {
    double follows; // share of greedy responses following the rule
    double kl;      // KL(policy || reference) per sampled response
} PolicyStats;

// On 200 prompts: how many greedy responses follow the rule, and the Monte-Carlo
// KL(policy || reference) per response of samples at temperature 1, from teacher-forced
// reference log-probs.
static PolicyStats policy_stats(const char *ckpt, Model *ref) {
    char err[512];
    Model *m =
        model_load(backend_cpu(), ckpt, MODEL_HEAD_LM, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    ck_assert_msg(m, "%s", err);
    Sampler *s = sampler_create(m, 1, 16, 1);
    SampleParams sp = {.temperature = 1, .top_p = 1, .stop_token = -1, .max_new_tokens = RESP};
    SampleParams greedy = sp;
    greedy.temperature = 0;
    Rng pr = rng_init(77), sr = rng_init(78);
    int n = 200, follows = 0;
    double kl = 0;
    for (int i = 0; i < n; i++) {
        int p[3], out[RESP], olen, plen = 3, tok[16] = {0}, tgt[16];
        float lp[RESP];
        for (int k = 0; k < 3; k++) p[k] = 10 + (int)rng_below(&pr, 50);
        sampler_generate(s, p, 3, &plen, 1, &greedy, &sr, out, lp, &olen);
        follows += follows_rule(out, olen);
        sampler_generate(s, p, 3, &plen, 1, &sp, &sr, out, lp, &olen);
        for (int t = 0; t < 16; t++) tgt[t] = -1;
        memcpy(tok, p, sizeof(p));
        for (int k = 0; k < olen; k++) tok[3 + k] = out[k], tgt[2 + k] = out[k];
        Batch b = {.B = 1, .T = 3 + olen, .tokens = tok, .targets = tgt};
        model_forward(ref, &b, 1.0f);
        for (int k = 0; k < olen; k++) kl += lp[k] - ref->host_logp[2 + k];
    }
    sampler_free(s);
    model_free(m);
    return (PolicyStats){(double)follows / n, kl / n};
}

START_TEST(test_dpo_end_to_end) {
    setup_world();
    const char *stage =
        "{name: dpo, kind: dpo, init: sft, data: {train: pref.h5, val: pref-val.h5}, "
        "steps: %d, loss: sigmoid, beta: %s, reference: %s, optim: {lr: 3.0e-4}, "
        "val: {every: %d, batches: 8}}";
    char a[512], b[512];
    // cached and live references: the same loss at the first step and in validation
    snprintf(a, sizeof(a), stage, 2, "0.1", "cached", 1);
    snprintf(b, sizeof(b), stage, 2, "0.1", "live", 1);
    ck_assert_int_eq(run("cached", a), 0);
    ck_assert_int_eq(run("live", b), 0);
    for (int split = 0; split < 2; split++) {
        json_t *x = metrics_row("cached", split ? 1 : 2, split ? "val" : NULL);
        json_t *y = metrics_row("live", split ? 1 : 2, split ? "val" : NULL);
        double dx = num(x, "loss"), dy = num(y, "loss");
        printf("cached vs live reference (%s): loss %.9f vs %.9f\n", split ? "val" : "step 2", dx,
               dy);
        ck_assert_msg(fabs(dx - dy) <= 1e-6, "cached %.9f live %.9f", dx, dy);
        json_decref(x), json_decref(y);
    }
    // the same with LoRA adapters: the cached reference (the adapters-off view, one pass at the
    // start) and the live one (the same view at every step) agree
    const char *lora =
        "{name: dpo, kind: dpo, init: sft, data: {train: pref.h5, val: pref-val.h5}, "
        "steps: 2, reference: %s, lora: {rank: 4, targets: [q, v, o]}, "
        "val: {every: 1, batches: 8}}";
    snprintf(a, sizeof(a), lora, "cached");
    snprintf(b, sizeof(b), lora, "live");
    ck_assert_int_eq(run("lora-cached", a), 0);
    ck_assert_int_eq(run("lora-live", b), 0);
    for (int split = 0; split < 2; split++) {
        json_t *x = metrics_row("lora-cached", split ? 1 : 2, split ? "val" : NULL);
        json_t *y = metrics_row("lora-live", split ? 1 : 2, split ? "val" : NULL);
        double dx = num(x, "loss"), dy = num(y, "loss");
        ck_assert_msg(fabs(dx - dy) <= 1e-6, "lora: cached %.9f live %.9f", dx, dy);
        json_decref(x), json_decref(y);
    }
    // DPO at two betas
    snprintf(a, sizeof(a), stage, 300, "0.1", "cached", 300);
    snprintf(b, sizeof(b), stage, 300, "1.0", "cached", 300);
    ck_assert_int_eq(run("beta01", a), 0);
    ck_assert_int_eq(run("beta1", b), 0);
    json_t *val = metrics_row("beta01", 300, "val");
    double acc = num(val, "rewards/accuracies");
    json_decref(val);
    char path[1400], err[512];
    snprintf(path, sizeof(path), "%s/runs/shared-sft/final.h5", dir);
    Model *ref =
        model_load(backend_cpu(), path, MODEL_HEAD_LM, MODEL_INFER, 1, 16, 0, err, sizeof(err));
    ck_assert_msg(ref, "%s", err);
    PolicyStats sft = policy_stats(path, ref);
    snprintf(path, sizeof(path), "%s/runs/beta01/dpo/final.h5", dir);
    PolicyStats lo = policy_stats(path, ref);
    snprintf(path, sizeof(path), "%s/runs/beta1/dpo/final.h5", dir);
    PolicyStats hi = policy_stats(path, ref);
    printf("dpo on the synthetic rule: val accuracy %.3f; greedy responses following the rule: "
           "sft %.2f, dpo beta 0.1 %.2f, beta 1.0 %.2f; KL to sft per sampled response: beta 0.1 "
           "%.3f, beta 1.0 %.3f, sft itself %.3f\n",
           acc, sft.follows, lo.follows, hi.follows, lo.kl, hi.kl, sft.kl);
    ck_assert_msg(acc >= 0.9, "validation accuracy %.3f < 0.9", acc);
    ck_assert_msg(lo.follows > sft.follows + 0.5 && hi.follows > sft.follows + 0.5,
                  "dpo did not move greedy outputs toward the rule");
    ck_assert_msg(lo.kl > 1.2 * hi.kl && hi.kl > 0, "beta does not control the KL");
    ck_assert_msg(fabs(sft.kl) < 1e-3, "the reference's KL to itself is %g", sft.kl);
    model_free(ref);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dpo");
    TCase *tc = tcase_create("dpo");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, test_dpo_gradient_through_model);
    tcase_add_test(tc, test_lora_reference_is_the_base);
    tcase_add_test(tc, test_dpo_end_to_end);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
