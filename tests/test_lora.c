// tests/test_lora.c: LoRA adapters in the model engine: zero-initialised B gives exactly the base
// model, adapters off gives the base model, whole-model finite differences through the adapters,
// merged == unmerged, frozen base weights bit-identical after training, checkpoints round-trip
// with their adapters, and an adapter view sharing a trunk.
#include "model/checkpoint.h"
#include "model/model-impl.h"
#include "model/model.h"
#include "optim/optim.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ModelConfig TINY = GPT2_CONFIG(2, 2, 16, 50, 32);

// Loop tests run once per family: _i = 0 GPT-2, 1 Llama (grouped-query attention, untied output,
// SwiGLU of width 40).
static void use_family(int i) {
    if (i == 0) return;
    TINY = model_config_default(MODEL_FAMILY_LLAMA, 2, 4, 16, 50, 32);
    TINY.n_kv_head = 2;
    TINY.d_ff = 40;
    TINY.tied = false;
}

// Every target the family has.
static LoraConfig all_targets(int rank, float alpha) {
    unsigned t = (1u << LORA_TARGETS) - 1;
    if (TINY.family == MODEL_FAMILY_GPT2) t &= ~(1u << LORA_GATE);
    return (LoraConfig){.rank = rank, .alpha = alpha, .targets = t, .init = LORA_INIT_KAIMING};
}

typedef struct {
    int *tokens, *targets, *seg;
    Batch batch;
} Data;

// Random tokens, next-token targets; two packed segments per row.
static Data data_make(int B, int T, uint64_t seed) {
    Data d;
    Rng r = rng_init(seed);
    d.tokens = malloc(sizeof(int) * B * T);
    d.targets = malloc(sizeof(int) * B * T);
    d.seg = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) d.tokens[i] = (int)rng_below(&r, TINY.vocab_size);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            d.targets[i] = t + 1 < T ? d.tokens[i + 1] : -1;
            d.seg[i] = t < T / 2 ? 0 : 1;
        }
    d.batch = (Batch){.B = B, .T = T, .tokens = d.tokens, .targets = d.targets, .seg = d.seg};
    return d;
}

static void data_free(Data *d) {
    free(d->tokens), free(d->targets), free(d->seg);
}

static Model *tiny(int heads, ModelMode mode, uint64_t seed) {
    Model *m = model_create(backend_cpu(), TINY, heads, mode, 2, 8);
    model_init_weights(m, seed);
    return m;
}

// Fills B (and the head) with small random values so the adapters change the output.
static void randomise_trained(Model *m, uint64_t seed) {
    float *host = malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    Rng r = rng_init(seed);
    for (int i = m->first_trained; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        if (strstr(ti->name, "_b")) fill_uniform(host + ti->offset, ti->numel, &r, -0.3f, 0.3f);
    }
    model_params_from_host(m, host);
    free(host);
}

static float *logp_copy(const Model *m, int n) {
    float *x = malloc(sizeof(float) * n);
    memcpy(x, m->host_logp, sizeof(float) * n);
    return x;
}

START_TEST(test_attach_zero_b_is_base) {
    use_family(_i);
    Data d = data_make(2, 8, 3);
    Model *m = tiny(MODEL_HEAD_LM, MODEL_TRAIN, 11);
    float base = model_forward(m, &d.batch, 1.0f);
    float *want = logp_copy(m, 16);
    size_t grads_before = model_grad_bytes(m);
    LoraConfig c = all_targets(2, 8.0f);
    char err[256];
    ck_assert_int_eq(model_lora_attach(m, &c, 7, err, sizeof(err)), 0);
    ck_assert_float_eq(model_forward(m, &d.batch, 1.0f), base); // B = 0: exactly the base
    ck_assert_mem_eq(m->host_logp, want, sizeof(float) * 16);
    // the base is frozen: gradients only for the adapters, far fewer than before (the arena
    // comes at the first model_zero_grad)
    ck_assert_ptr_null(m->grads_mem);
    model_zero_grad(m);
    ck_assert_ptr_null(m->grads.qkvw);
    ck_assert_ptr_null(m->grads.wte);
    ck_assert_ptr_nonnull(m->grads.lora_q_a);
    ck_assert_uint_lt(model_grad_bytes(m), grads_before / 4);
    ck_assert_uint_eq(m->train_table.numel * sizeof(float), model_grad_bytes(m));
    // A is the kaiming-uniform init within its bound, B zero
    float *a = malloc(sizeof(float) * 2 * 2 * 16);
    m->be->to_host(a, m->params.lora_q_a, sizeof(float) * 2 * 2 * 16);
    float amax = 0.0f;
    for (int i = 0; i < 2 * 2 * 16; i++) amax = fmaxf(amax, fabsf(a[i]));
    ck_assert(amax > 0.5f / sqrtf(16.0f) && amax <= 1.0f / sqrtf(16.0f));
    free(a);
    free(want);
    model_free(m);
    data_free(&d);
}
END_TEST

START_TEST(test_adapters_off_is_base) {
    use_family(_i);
    Data d = data_make(2, 8, 4);
    Model *m = tiny(MODEL_HEAD_LM, MODEL_INFER, 12);
    float base = model_forward(m, &d.batch, 1.0f);
    float *want = logp_copy(m, 16);
    LoraConfig c = all_targets(3, 6.0f);
    char err[256];
    ck_assert_int_eq(model_lora_attach(m, &c, 7, err, sizeof(err)), 0);
    randomise_trained(m, 5);
    float on = model_forward(m, &d.batch, 1.0f);
    ck_assert(fabsf(on - base) > 1e-3f); // the adapters change the model
    m->adapters_off = true;
    ck_assert_float_eq(model_forward(m, &d.batch, 1.0f), base);
    ck_assert_mem_eq(m->host_logp, want, sizeof(float) * 16);
    free(want);
    model_free(m);
    data_free(&d);
}
END_TEST

START_TEST(test_merge_equals_unmerged) {
    use_family(_i);
    Data d = data_make(2, 8, 5);
    Model *m = tiny(MODEL_HEAD_LM, MODEL_INFER, 13);
    LoraConfig c = all_targets(4, 16.0f);
    char err[256];
    ck_assert_int_eq(model_lora_attach(m, &c, 9, err, sizeof(err)), 0);
    randomise_trained(m, 6);
    float unmerged = model_forward(m, &d.batch, 1.0f);
    float *want = logp_copy(m, 16);
    model_lora_merge(m);
    ck_assert_int_eq(m->lora.rank, 0);
    ck_assert_int_eq(m->first_trained, 0);
    float merged = model_forward(m, &d.batch, 1.0f);
    ck_assert(fabsf(merged - unmerged) < 1e-5f);
    max_norm_err("merged logp", m->host_logp, want, 16, 1.0, 1e-5);
    free(want);
    model_free(m);
    data_free(&d);
}
END_TEST

typedef struct {
    Model *m;
    const Batch *b;
} FdCtx;

static double fd_loss(void *ctx) {
    FdCtx *c = ctx;
    return model_forward(c->m, c->b, 1.0f);
}

// Whole-model finite differences through every adapter's A and B (B random so A's gradient is
// not zero), every base weight frozen.
START_TEST(test_adapter_gradients_fd) {
    use_family(_i);
    Data d = data_make(2, 8, 6);
    Model *m = tiny(MODEL_HEAD_LM, MODEL_TRAIN, 14);
    LoraConfig c = all_targets(3, 6.0f);
    char err[256];
    ck_assert_int_eq(model_lora_attach(m, &c, 10, err, sizeof(err)), 0);
    randomise_trained(m, 7);
    model_zero_grad(m);
    model_forward(m, &d.batch, 1.0f);
    model_backward_ce(m, model_mask_sum(m));
    FdCtx ctx = {m, &d.batch};
    for (int i = m->first_trained; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        float *p = m->params_mem + (ti->offset - m->frozen_numel);
        const float *g = m->grads_mem + (ti->offset - m->frozen_numel);
        grad_check(ti->name, p, ti->numel, g, fd_loss, &ctx, 1e-2f, 2e-2, 24);
    }
    model_free(m);
    data_free(&d);
}
END_TEST

// Training moves only the adapters: every frozen weight is bit-identical afterwards, the loss
// falls, and the optimiser's table is the adapters'.
START_TEST(test_training_keeps_base_bits) {
    use_family(_i);
    Data d = data_make(2, 8, 7);
    Model *m = tiny(MODEL_HEAD_LM, MODEL_TRAIN, 15);
    LoraConfig c = all_targets(4, 8.0f);
    char err[256];
    ck_assert_int_eq(model_lora_attach(m, &c, 11, err, sizeof(err)), 0);
    float *before = malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, before);
    AdamW opt;
    adamw_init(&opt, m->be, &m->train_table, (AdamWConfig){1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f});
    float first = 0.0f, last = 0.0f;
    for (int s = 0; s < 20; s++) {
        model_zero_grad(m);
        last = model_forward(m, &d.batch, 1.0f);
        if (s == 0) first = last;
        model_backward_ce(m, model_mask_sum(m));
        adamw_step(&opt, m->params_mem, m->grads_mem, m->weights_mem, 1e-2f);
    }
    ck_assert_msg(last < first - 0.05f, "loss %g -> %g", first, last);
    float *after = malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, after);
    ck_assert_mem_eq(after, before, m->frozen_numel * sizeof(float));
    int moved = 0;
    for (size_t j = m->frozen_numel; j < m->table.numel; j++) moved += after[j] != before[j];
    ck_assert_int_gt(moved, (int)(m->table.numel - m->frozen_numel) / 2);
    adamw_free(&opt);
    free(before), free(after);
    model_free(m);
    data_free(&d);
}
END_TEST

// A checkpoint keeps the adapters and their configuration; model_load gives them back.
START_TEST(test_checkpoint_round_trip) {
    use_family(_i);
    Data d = data_make(2, 8, 8);
    Model *m = tiny(MODEL_HEAD_LM, MODEL_INFER, 16);
    LoraConfig c = all_targets(2, 3.0f);
    c.targets &= ~(1u << LORA_K);
    c.init = LORA_INIT_GAUSSIAN;
    char err[256];
    ck_assert_int_eq(model_lora_attach(m, &c, 12, err, sizeof(err)), 0);
    randomise_trained(m, 8);
    float want = model_forward(m, &d.batch, 1.0f);
    const char *path = test_tmp_path("lora.h5");
    ck_assert_int_eq(model_save(m, path, err, sizeof(err)), 0);
    Model *back = model_load(backend_cpu(), path, 0, MODEL_INFER, 2, 8, 0, err, sizeof(err));
    ck_assert_msg(back != NULL, "%s", err);
    ck_assert_int_eq(back->lora.rank, 2);
    ck_assert_float_eq(back->lora.alpha, 3.0f);
    ck_assert_uint_eq(back->lora.targets, c.targets);
    ck_assert_int_eq(back->lora.init, LORA_INIT_GAUSSIAN);
    ck_assert_float_eq(model_forward(back, &d.batch, 1.0f), want);
    // an adapter-less model refuses the file rather than dropping its adapters
    Model *plain = tiny(MODEL_HEAD_LM, MODEL_INFER, 16);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ne(model_read_params_h5(plain, f, path, "", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "LoRA"));
    H5Fclose(f);
    model_free(plain);
    model_free(back);
    model_free(m);
    data_free(&d);
}
END_TEST

// A value model as a second adapter set on the policy's trunk: no copy of the base, its own
// adapters and head trained, the trunk's outputs untouched by its training.
START_TEST(test_adapter_view_shares_trunk) {
    use_family(_i);
    Data d = data_make(2, 8, 9);
    Model *policy = tiny(MODEL_HEAD_LM, MODEL_TRAIN, 17);
    LoraConfig c = all_targets(2, 4.0f);
    char err[256];
    ck_assert_int_eq(model_lora_attach(policy, &c, 13, err, sizeof(err)), 0);
    Model *value = model_create_adapter_view(policy, MODEL_HEAD_SCALAR, MODEL_TRAIN, 2, 8, &c, 21);
    ck_assert_ptr_eq(value->frozen_mem, policy->frozen_mem);
    ck_assert_ptr_eq(value->params.qkvw, policy->params.qkvw);
    ck_assert_ptr_nonnull(value->params.headw);
    ck_assert_ptr_ne(value->params.lora_q_a, policy->params.lora_q_a);
    float want = model_forward(policy, &d.batch, 1.0f);
    AdamW opt;
    adamw_init(&opt, value->be, &value->train_table,
               (AdamWConfig){1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f});
    float *dv = calloc(16, sizeof(float));
    for (int i = 0; i < 16; i++) dv[i] = -1.0f / 16; // the objective -mean(values)
    float v0 = 0.0f;
    for (int s = 0; s < 5; s++) {
        model_zero_grad(value);
        model_forward(value, &d.batch, 1.0f);
        if (s == 0) v0 = value->host_values[0];
        model_backward(value, NULL, NULL, dv); // raise the mean value
        adamw_step(&opt, value->params_mem, value->grads_mem, value->weights_mem, 1e-2f);
    }
    model_forward(value, &d.batch, 1.0f);
    ck_assert(value->host_values[0] > v0);
    ck_assert_float_eq(model_forward(policy, &d.batch, 1.0f), want);
    adamw_free(&opt);
    free(dv);
    model_free(value);
    model_free(policy);
    data_free(&d);
}
END_TEST

// lora.lr: the adapters' learning rate as a multiple of the optimiser's (TensorInfo.lr_scale):
// Adam's first step moves every element by its rate, so the adapters move twice as far as the
// scalar head (scale 1).
START_TEST(test_adapter_lr_scale) {
    Model *m = tiny(MODEL_HEAD_SCALAR, MODEL_TRAIN, 18);
    LoraConfig c = {.rank = 2, .alpha = 4.0f, .targets = 1u << LORA_Q};
    char err[256];
    ck_assert_int_eq(model_lora_attach(m, &c, 3, err, sizeof(err)), 0);
    model_lora_lr_scale(m, 2.0f);
    size_t n = m->train_table.numel;
    float *g = malloc(n * sizeof(float)), *before = malloc(n * sizeof(float)),
          *after = malloc(n * sizeof(float));
    for (size_t j = 0; j < n; j++) g[j] = (j % 2) ? 0.5f : -0.25f;
    model_zero_grad(m);
    m->be->to_device(m->grads_mem, g, n * sizeof(float));
    m->be->to_host(before, m->params_mem, n * sizeof(float));
    AdamW opt;
    adamw_init(&opt, m->be, &m->train_table, (AdamWConfig){1e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 0.0f});
    adamw_step(&opt, m->params_mem, m->grads_mem, m->weights_mem, 1e-3f);
    m->be->to_host(after, m->params_mem, n * sizeof(float));
    for (int i = 0; i < m->train_table.count; i++) {
        const TensorInfo *ti = &m->train_table.info[i];
        float want = strncmp(ti->name, "lora_", 5) == 0 ? 2e-3f : 1e-3f;
        for (size_t j = ti->offset; j < ti->offset + ti->numel; j++)
            ck_assert_float_eq_tol(fabsf(after[j] - before[j]), want, 1e-6f);
    }
    adamw_free(&opt);
    free(g), free(before), free(after);
    model_free(m);
}
END_TEST

START_TEST(test_config_checks) {
    LoraConfig c = {.rank = 4, .alpha = 8.0f, .targets = 1u << LORA_GATE};
    ck_assert_ptr_nonnull(lora_config_check(&c, &TINY)); // GPT-2 has no gate
    c.targets = 1u << LORA_Q;
    ck_assert_ptr_null(lora_config_check(&c, &TINY));
    c.rank = 0;
    ck_assert_ptr_nonnull(lora_config_check(&c, &TINY));
    c.rank = 4, c.alpha = 0.0f;
    ck_assert_ptr_nonnull(lora_config_check(&c, &TINY));
    LoraTarget t;
    ck_assert_int_eq(lora_target_parse("down", &t), 0);
    ck_assert_int_eq(t, LORA_DOWN);
    ck_assert_int_ne(lora_target_parse("c_attn", &t), 0);
    Model *m = tiny(MODEL_HEAD_LM, MODEL_INFER, 1);
    char err[256];
    c = (LoraConfig){.rank = 2, .alpha = 2.0f, .targets = 1u << LORA_GATE};
    ck_assert_int_ne(model_lora_attach(m, &c, 1, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "gate"));
    model_free(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_attach_zero_b_is_base, 0, 2);
    tcase_add_loop_test(tc, test_adapters_off_is_base, 0, 2);
    tcase_add_loop_test(tc, test_merge_equals_unmerged, 0, 2);
    tcase_add_loop_test(tc, test_adapter_gradients_fd, 0, 2);
    tcase_add_loop_test(tc, test_training_keeps_base_bits, 0, 2);
    tcase_add_loop_test(tc, test_checkpoint_round_trip, 0, 2);
    tcase_add_loop_test(tc, test_adapter_view_shares_trunk, 0, 2);
    tcase_add_test(tc, test_adapter_lr_scale);
    tcase_add_test(tc, test_config_checks);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
