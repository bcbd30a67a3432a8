// tests/test_parity.c: the whole model (GPT-2 and Llama families) against PyTorch
// (tests/torch_ref.py, float64). At a tiny configuration with rows of unequal length, right
// padding, a packed row, a loss mask, a temperature and both heads, compares the loss, per-token
// log-probs, entropies, values and every parameter gradient; then the losses of 10 AdamW steps with
// clipping and a warmup + cosine schedule.
//
// Errors are normwise per tensor: max_i |ours_i - torch_i| / max_i |torch_i| <= 1e-4.
#include "model/checkpoint.h"
#include "model/model.h"
#include "optim/optim.h"
#include "tests/testutil.h"
#include "train/stages/dpo.h"
#include "train/objectives/preference.h"
#include "train/stages/readouts.h"
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NB  3
#define NT  12
#define TOL 1e-4

static const ModelConfig CFG = GPT2_CONFIG(2, 4, 32, 67, 16);

typedef struct {
    int tokens[NB * NT], targets[NB * NT], pos[NB * NT], seg[NB * NT];
    float mask[NB * NT], value_w[NB * NT], ent_w[NB * NT];
    Batch batch;
} Fixture;

// Row 0: 12 tokens, the first 4 targets unmasked (a prompt). Row 1: 9 tokens then padding.
// Row 2: two packed examples of 7 and 5 tokens (segments 0 and 1, positions restarting).
static void make_batch(Fixture *f, Rng *r) {
    int len0[NB] = {12, 9, 7};
    for (int b = 0; b < NB; b++)
        for (int t = 0; t < NT; t++) {
            int i = b * NT + t;
            f->tokens[i] = (int)rng_below(r, CFG.vocab_size);
            f->pos[i] = t;
            f->seg[i] = 0;
            f->mask[i] = 1.0f;
        }
    for (int b = 0; b < NB; b++)
        for (int t = 0; t < NT; t++) {
            int i = b * NT + t;
            int end = b == 2 ? (t < len0[2] ? len0[2] : NT) : len0[b]; // example end (exclusive)
            if (b == 2 && t >= len0[2]) {
                f->seg[i] = 1;
                f->pos[i] = t - len0[2];
            }
            if (b == 1 && t >= len0[1]) f->tokens[i] = 0; // padding
            f->targets[i] = t + 1 < end ? f->tokens[i + 1] : -1;
            if (b == 0 && t < 4) f->mask[i] = 0.0f;
            int real = f->targets[i] >= 0;
            f->value_w[i] = real ? 0.2f * (float)(rng_uniform(r) - 0.5) : 0.0f;
            f->ent_w[i] = real ? 0.05f * (float)(rng_uniform(r) - 0.5) : 0.0f;
        }
    f->batch = (Batch){.B = NB,
                       .T = NT,
                       .tokens = f->tokens,
                       .targets = f->targets,
                       .mask = f->mask,
                       .pos = f->pos,
                       .seg = f->seg};
}

// Randomises every weight a little beyond GPT-2's init (biases 0 and gains 1 would hide
// errors that only show with nonzero values), keeping padded vocabulary rows zero.
static void perturb(Model *m, Rng *r) {
    size_t n = m->table.numel, V = (size_t)m->cfg.vocab_size, C = (size_t)m->cfg.d_model;
    float *w = malloc(n * sizeof(float));
    m->be->to_host(w, m->params_mem, n * sizeof(float));
    for (size_t i = 0; i < n; i++) w[i] += 0.05f * (float)(rng_uniform(r) - 0.5);
    memset(w + V * C, 0, (size_t)(m->Vp - V) * C * sizeof(float));
    int lm = tensor_table_find(&m->table, "lmw"); // an untied output layer: padded rows too
    if (lm >= 0) memset(w + m->table.info[lm].offset + V * C, 0, (m->Vp - V) * C * sizeof(float));
    m->be->to_device(m->params_mem, w, n * sizeof(float));
    model_weights_changed(m);
    free(w);
}

static void write_ints_shape(hid_t g, const char *name, const int *x, int ndim, hsize_t d0,
                             hsize_t d1) {
    hsize_t dims[2] = {d0, d1};
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(g, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void write_ints(hid_t g, const char *name, const int *x) {
    write_ints_shape(g, name, x, 2, NB, NT);
}

static void write_floats_shape(hid_t g, const char *name, const float *x, hsize_t d0, hsize_t d1) {
    hsize_t dims[2] = {d0, d1};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(g, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void write_floats(hid_t g, const char *name, const float *x) {
    write_floats_shape(g, name, x, NB, NT);
}

static void write_attr(hid_t obj, const char *name, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    H5Sclose(sp);
}

static const AdamWConfig OPT = {.lr = 1e-2f,
                                .beta1 = 0.9f,
                                .beta2 = 0.95f,
                                .eps = 1e-8f,
                                .weight_decay = 0.1f,
                                .grad_clip = 0.5f};
static const Schedule SCHED = {SCHEDULE_COSINE, 3, 10, 0.1f};
#define TRAJ_STEPS 10
#define INV_TEMP   0.8f

static void write_fixture(const char *path, const Model *m, const Fixture *f) {
    char err[256];
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(model_write_h5(m, file, err, sizeof(err)) == 0, "%s", err);
    hid_t g = H5Gcreate2(file, "batch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_ints(g, "tokens", f->tokens);
    write_ints(g, "targets", f->targets);
    write_ints(g, "pos", f->pos);
    write_ints(g, "seg", f->seg);
    write_floats(g, "mask", f->mask);
    H5Gclose(g);
    g = H5Gcreate2(file, "objective", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_floats(g, "value_w", f->value_w);
    write_floats(g, "ent_w", f->ent_w);
    write_attr(g, "inv_temp", INV_TEMP);
    H5Gclose(g);
    g = H5Gcreate2(file, "trajectory", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_attr(g, "steps", TRAJ_STEPS);
    write_attr(g, "lr", OPT.lr);
    write_attr(g, "beta1", OPT.beta1);
    write_attr(g, "beta2", OPT.beta2);
    write_attr(g, "eps", OPT.eps);
    write_attr(g, "weight_decay", OPT.weight_decay);
    write_attr(g, "grad_clip", OPT.grad_clip);
    write_attr(g, "warmup_steps", SCHED.warmup_steps);
    write_attr(g, "total_steps", SCHED.total_steps);
    write_attr(g, "min_lr_ratio", SCHED.min_lr_ratio);
    H5Gclose(g);
    H5Fclose(file);
}

// Reads dataset `name` of the reference output (n floats or doubles) as floats.
static float *read_ref(hid_t file, const char *name, size_t n) {
    float *x = malloc(n * sizeof(float));
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    ck_assert_msg(ds >= 0, "reference output lacks %s", name);
    hid_t sp = H5Dget_space(ds);
    ck_assert_int_eq((long)H5Sget_simple_extent_npoints(sp), (long)n);
    ck_assert(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Sclose(sp);
    H5Dclose(ds);
    return x;
}

static void check_tensor(hid_t ref, const char *name, const float *ours, size_t n) {
    float *want = read_ref(ref, name, n);
    double e = max_norm_err(name, ours, want, n, 1e-12, TOL);
    if (getenv("LC_VERBOSE")) fprintf(stderr, "%-24s normwise error %.3g\n", name, e);
    ck_assert_msg(e <= TOL, "%s: normwise error %.3g > %.3g against PyTorch", name, e, TOL);
    free(want);
}

// Our side of the objective: CE over the mask + sum(value_w * values) + sum(ent_w * entropy).
static float run_ours(Model *m, const Fixture *f) {
    float loss = model_forward(m, &f->batch, INV_TEMP);
    double wsum = model_mask_sum(m);
    float dlogp[NB * NT];
    for (int i = 0; i < NB * NT; i++)
        dlogp[i] = f->targets[i] >= 0 ? (float)(-f->mask[i] / wsum) : 0.0f;
    model_zero_grad(m);
    model_backward(m, dlogp, f->ent_w, f->value_w);
    return loss;
}

static void trajectory(Model *m, const Fixture *f, float *losses) {
    AdamW opt;
    adamw_init(&opt, m->be, &m->table, OPT);
    for (int t = 0; t < TRAJ_STEPS; t++) {
        model_zero_grad(m);
        losses[t] = model_forward(m, &f->batch, 1.0f);
        model_backward_ce(m, model_mask_sum(m));
        adamw_step(&opt, m->params_mem, m->grads_mem, m->weights_mem,
                   schedule_lr(&SCHED, OPT.lr, t));
    }
    adamw_free(&opt);
}

// The whole model of configuration cfg against PyTorch: loss, log-probs, entropies, values, every
// parameter gradient, then 10 AdamW steps of the LM head's cross-entropy.
static void check_parity(ModelConfig cfg, const char *tag) {
    const Backend *be = backend_cpu();
    Rng r = rng_init(42);
    Model *m = model_create(be, cfg, MODEL_HEAD_LM | MODEL_HEAD_SCALAR, MODEL_TRAIN, NB, NT);
    model_init_weights(m, 7);
    perturb(m, &r);
    Fixture f;
    make_batch(&f, &r);
    char fixname[64], outname[64];
    snprintf(fixname, sizeof(fixname), "parity-%s-fixture.h5", tag);
    snprintf(outname, sizeof(outname), "parity-%s-out.h5", tag);
    const char *fix = test_tmp_path(fixname), *out = test_tmp_path(outname);
    write_fixture(fix, m, &f);

    char args[4096];
    snprintf(args, sizeof(args), "%s %s", fix, out);
    ck_assert_int_eq(run_torch_script("torch_ref.py", args), 0);

    float loss = run_ours(m, &f);
    float *grads = malloc(m->table.numel * sizeof(float));
    be->to_host(grads, m->grads_mem, m->table.numel * sizeof(float));
    hid_t ref = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(ref >= 0);
    check_tensor(ref, "loss", &loss, 1);
    check_tensor(ref, "logp", m->host_logp, NB * NT);
    check_tensor(ref, "entropy", m->host_entropy, NB * NT);
    check_tensor(ref, "values", m->host_values, NB * NT);
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char name[64];
        snprintf(name, sizeof(name), "grads/%s", ti->name);
        check_tensor(ref, name, grads + ti->offset, ti->numel);
    }
    free(grads);
    model_free(m);

    // 10 AdamW steps from the same weights, LM head only
    Model *lm = model_create(be, cfg, MODEL_HEAD_LM, MODEL_TRAIN, NB, NT);
    model_init_weights(lm, 7);
    Rng r2 = rng_init(42);
    perturb(lm, &r2); // same stream as above: the same weights
    float losses[TRAJ_STEPS];
    trajectory(lm, &f, losses);
    check_tensor(ref, "trajectory/losses", losses, TRAJ_STEPS);
    ck_assert_msg(losses[TRAJ_STEPS - 1] < losses[0], "training did not lower the loss");
    H5Fclose(ref);
    model_free(lm);
}

START_TEST(test_gpt2_matches_pytorch) {
    check_parity(CFG, "gpt2");
}
END_TEST

// Llama at odd shapes: grouped-query attention with 2 key/value heads for 4 query heads, head
// size 6 (not a power of two), q/k/v biases (Qwen2) and an untied output layer.
START_TEST(test_llama_gqa_matches_pytorch) {
    ModelConfig c = model_config_default(MODEL_FAMILY_LLAMA, 2, 4, 24, 67, NT);
    c.n_kv_head = 2;
    c.d_ff = 40;
    c.qkv_bias = true;
    c.tied = false;
    check_parity(c, "llama-gqa");
}
END_TEST

// Multi-query attention (one key/value head), head size 10, tied output, another eps and theta.
START_TEST(test_llama_mqa_matches_pytorch) {
    ModelConfig c = model_config_default(MODEL_FAMILY_LLAMA, 2, 4, 40, 67, NT);
    c.n_kv_head = 1;
    c.d_ff = 56;
    c.norm_eps = 1e-6f;
    c.rope_theta = 500000.0f;
    check_parity(c, "llama-mqa");
}
END_TEST

// ---- the reward model ------------------------------------------------------------------------

#define RB 4  // rows: pairs (0,1) and (2,3)
#define RT 10 // tokens per row

static void write_str_attr(hid_t obj, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

// The trunk + scalar head under the Bradley-Terry loss (train/objectives/preference.c, margin and
// centering on), each row scored at its last real token, against the same loss in PyTorch.
START_TEST(test_reward_model_matches_pytorch) {
    const Backend *be = backend_cpu();
    Rng r = rng_init(43);
    Model *m = model_create(be, CFG, MODEL_HEAD_SCALAR, MODEL_TRAIN, RB, RT);
    model_init_weights(m, 8);
    perturb(m, &r);
    int tokens[RB * RT], targets[RB * RT], pos[RB * RT], seg[RB * RT], len[RB] = {10, 7, 5, 9};
    float mask[RB * RT];
    for (int i = 0; i < RB * RT; i++) {
        int t = i % RT, row = i / RT;
        tokens[i] = t < len[row] ? (int)rng_below(&r, CFG.vocab_size) : 0;
        targets[i] = -1, pos[i] = t, seg[i] = 0, mask[i] = 0.0f;
    }
    const double margin = 0.3, center = 0.05;
    const char *fix = test_tmp_path("parity-rm-fixture.h5"),
               *out = test_tmp_path("parity-rm-out.h5");
    char err[256];
    hid_t file = H5Fcreate(fix, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(model_write_h5(m, file, err, sizeof(err)) == 0, "%s", err);
    hid_t g = H5Gcreate2(file, "batch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_ints_shape(g, "tokens", tokens, 2, RB, RT);
    write_ints_shape(g, "targets", targets, 2, RB, RT);
    write_ints_shape(g, "pos", pos, 2, RB, RT);
    write_ints_shape(g, "seg", seg, 2, RB, RT);
    write_ints_shape(g, "len", len, 1, RB, 0);
    write_floats_shape(g, "mask", mask, RB, RT);
    H5Gclose(g);
    g = H5Gcreate2(file, "objective", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_attr(g, "inv_temp", 1.0);
    write_attr(g, "margin", margin);
    write_attr(g, "center_coef", center);
    write_str_attr(g, "kind", "bt");
    H5Gclose(g);
    H5Fclose(file);
    char args[4096];
    snprintf(args, sizeof(args), "%s %s", fix, out);
    ck_assert_int_eq(run_torch_script("torch_ref.py", args), 0);

    Batch b = {
        .B = RB, .T = RT, .tokens = tokens, .targets = targets, .pos = pos, .seg = seg, .len = len};
    float scores[RB], dvalues[RB * RT] = {0};
    reward_scores(m, &b, scores);
    float loss = 0.0f;
    for (int p = 0; p < RB / 2; p++) {
        PairLoss pl = bradley_terry_loss(scores[2 * p], scores[2 * p + 1], margin, center);
        loss += (float)pl.loss / (RB / 2);
        dvalues[2 * p * RT + len[2 * p] - 1] = (float)pl.d_chosen / (RB / 2);
        dvalues[(2 * p + 1) * RT + len[2 * p + 1] - 1] = (float)pl.d_rejected / (RB / 2);
    }
    model_zero_grad(m);
    model_backward(m, NULL, NULL, dvalues);
    hid_t ref = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(ref >= 0);
    check_tensor(ref, "loss", &loss, 1);
    float *values = malloc(sizeof(float) * RB * RT), *grads = malloc(model_param_bytes(m));
    memcpy(values, m->host_values, sizeof(float) * RB * RT);
    be->to_host(grads, m->grads_mem, model_param_bytes(m));
    // padding positions carry garbage values in both; compare every real position
    float *want = read_ref(ref, "values", RB * RT);
    for (int i = 0; i < RB * RT; i++)
        if (i % RT >= len[i / RT]) values[i] = want[i];
    check_tensor(ref, "values", values, RB * RT);
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char name[64];
        snprintf(name, sizeof(name), "grads/%s", ti->name);
        check_tensor(ref, name, grads + ti->offset, ti->numel);
    }
    free(want), free(values), free(grads);
    H5Fclose(ref);
    model_free(m);
}
END_TEST

// ---- the DPO family
// -------------------------------------------------------------------------------

static void write_doubles_1d(hid_t g, const char *name, const double *x, hsize_t n) {
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t ds = H5Dcreate2(g, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

// DPO (sigmoid) or ORPO through the whole model: pairs of rows sharing a 3-token prompt, the
// loss mask on the responses (of different lengths), fixed reference log-probs.
static void check_dpo(DpoLoss loss, const char *name) {
    const Backend *be = backend_cpu();
    Rng r = rng_init(44 + loss);
    Model *m = model_create(be, CFG, MODEL_HEAD_LM, MODEL_TRAIN, RB, RT);
    model_init_weights(m, 9);
    perturb(m, &r);
    int tokens[RB * RT], targets[RB * RT], pos[RB * RT], seg[RB * RT], len[RB] = {8, 6, 9, 4};
    float mask[RB * RT];
    for (int i = 0; i < RB * RT; i++) {
        int t = i % RT, row = i / RT;
        tokens[i] = t < len[row] + 1 ? (int)rng_below(&r, CFG.vocab_size) : 0;
        if (row % 2 && t < 3) tokens[i] = tokens[i - RT]; // the pair's shared prompt
        pos[i] = t, seg[i] = 0;
    }
    for (int i = 0; i < RB * RT; i++) {
        int t = i % RT, row = i / RT;
        targets[i] = t < len[row] ? tokens[i + 1] : -1; // row holds len inputs, len targets
        mask[i] = t >= 2 && t < len[row] ? 1.0f : 0.0f; // targets from position 2: responses
    }
    double ref[RB] = {-31.5, -24.0, -35.2, -16.1};
    DpoParams p = {loss, 0.5, 0.0, 0.0, 0.3, 0.0};
    const char *fix = test_tmp_path("parity-dpo-fixture.h5"),
               *out = test_tmp_path("parity-dpo-out.h5");
    char err[256];
    hid_t file = H5Fcreate(fix, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(model_write_h5(m, file, err, sizeof(err)) == 0, "%s", err);
    hid_t g = H5Gcreate2(file, "batch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_ints_shape(g, "tokens", tokens, 2, RB, RT);
    write_ints_shape(g, "targets", targets, 2, RB, RT);
    write_ints_shape(g, "pos", pos, 2, RB, RT);
    write_ints_shape(g, "seg", seg, 2, RB, RT);
    write_floats_shape(g, "mask", mask, RB, RT);
    H5Gclose(g);
    g = H5Gcreate2(file, "objective", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_attr(g, "inv_temp", 1.0);
    write_attr(g, "beta", p.beta);
    write_attr(g, "lambda", p.orpo_lambda);
    write_str_attr(g, "kind", "dpo");
    write_str_attr(g, "loss", name);
    write_doubles_1d(g, "ref", ref, RB);
    H5Gclose(g);
    H5Fclose(file);
    char args[4096];
    snprintf(args, sizeof(args), "%s %s", fix, out);
    ck_assert_int_eq(run_torch_script("torch_ref.py", args), 0);

    Batch b = {.B = RB,
               .T = RT,
               .tokens = tokens,
               .targets = targets,
               .mask = mask,
               .pos = pos,
               .seg = seg,
               .len = len};
    float dlogp[RB * RT];
    model_zero_grad(m);
    float lossv = (float)dpo_micro_loss(m, &b, ref, &p, RB / 2, dlogp, NULL);
    float *grads = malloc(model_param_bytes(m));
    be->to_host(grads, m->grads_mem, model_param_bytes(m));
    hid_t refh = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(refh >= 0);
    check_tensor(refh, "loss", &lossv, 1);
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char tname[64];
        snprintf(tname, sizeof(tname), "grads/%s", ti->name);
        check_tensor(refh, tname, grads + ti->offset, ti->numel);
    }
    free(grads);
    H5Fclose(refh);
    model_free(m);
}

START_TEST(test_dpo_matches_pytorch) {
    check_dpo(DPO_SIGMOID, "sigmoid");
    check_dpo(DPO_ORPO, "orpo");
}
END_TEST

// ---- KTO
// ---------------------------------------------------------------------------------------------

// KTO through the whole model: rows 0, 1 are a desirable and an undesirable example, rows 2, 3
// their mismatched rows (the same prompts, each with the other's completion); z0 from rows 2, 3
// (detached in PyTorch, never differentiated here), the loss from rows 0, 1.
static void check_kto(void) {
    const Backend *be = backend_cpu();
    Rng r = rng_init(51);
    Model *m = model_create(be, CFG, MODEL_HEAD_LM, MODEL_TRAIN, RB, RT);
    model_init_weights(m, 9);
    perturb(m, &r);
    int tokens[RB * RT], targets[RB * RT], pos[RB * RT], seg[RB * RT], len[RB] = {8, 6, 6, 8};
    float mask[RB * RT];
    for (int i = 0; i < RB * RT; i++) {
        int t = i % RT;
        tokens[i] = (int)rng_below(&r, CFG.vocab_size);
        pos[i] = t, seg[i] = 0;
    }
    for (int t = 0; t < RT; t++) { // row 2: prompt of 0 + completion of 1; row 3: the converse
        tokens[2 * RT + t] = t < 3 ? tokens[t] : tokens[RT + t];
        tokens[3 * RT + t] = t < 3 ? tokens[RT + t] : tokens[t];
    }
    for (int i = 0; i < RB * RT; i++) {
        int t = i % RT, row = i / RT;
        targets[i] = t < len[row] ? tokens[i + 1] : -1;
        mask[i] = t >= 2 && t < len[row] ? 1.0f : 0.0f;
    }
    Batch b = {RB, RT, tokens, targets, mask, pos, seg, len};
    Batch ex = b, mis = b;
    ex.B = mis.B = 2;
    mis.tokens += 2 * RT, mis.targets += 2 * RT, mis.mask += 2 * RT, mis.pos += 2 * RT;
    mis.seg += 2 * RT, mis.len += 2;
    // reference log-probs a fixed distance from the policy's: mismatched log-ratios 1 and 2
    // (z0 = 1.5), examples' 2.5 and 0.5, so r - z0 takes both signs
    double lp[RB], ref[RB];
    model_forward(m, &b, 1.0f);
    sequence_logps(m, &b, lp, NULL);
    const double ratio[RB] = {2.5, 0.5, 1.0, 2.0};
    for (int i = 0; i < RB; i++) ref[i] = lp[i] - ratio[i];
    const uint8_t label[2] = {1, 0};
    const KtoParams p = {0.5, 1.3, 0.7};
    const char *fix = test_tmp_path("parity-kto-fixture.h5"),
               *out = test_tmp_path("parity-kto-out.h5");
    char err[256];
    hid_t file = H5Fcreate(fix, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(model_write_h5(m, file, err, sizeof(err)) == 0, "%s", err);
    hid_t g = H5Gcreate2(file, "batch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_ints_shape(g, "tokens", tokens, 2, RB, RT);
    write_ints_shape(g, "targets", targets, 2, RB, RT);
    write_ints_shape(g, "pos", pos, 2, RB, RT);
    write_ints_shape(g, "seg", seg, 2, RB, RT);
    write_floats_shape(g, "mask", mask, RB, RT);
    H5Gclose(g);
    g = H5Gcreate2(file, "objective", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_attr(g, "inv_temp", 1.0);
    write_attr(g, "beta", p.beta);
    write_attr(g, "desirable_weight", p.desirable_weight);
    write_attr(g, "undesirable_weight", p.undesirable_weight);
    write_str_attr(g, "kind", "kto");
    write_doubles_1d(g, "ref", ref, RB);
    const double labels[2] = {label[0], label[1]};
    write_doubles_1d(g, "label", labels, 2);
    H5Gclose(g);
    H5Fclose(file);
    char args[4096];
    snprintf(args, sizeof(args), "%s %s", fix, out);
    ck_assert_int_eq(run_torch_script("torch_ref.py", args), 0);

    // the stage's order: the mismatched rows' forward (no backward), then the examples'
    double lpm[2];
    model_forward(m, &mis, 1.0f);
    sequence_logps(m, &mis, lpm, NULL);
    double z0 = kto_reference_point((lpm[0] - ref[2]) + (lpm[1] - ref[3]), 2);
    ck_assert_double_eq_tol(z0, 1.5, 1e-5); // fp32 rows forwarded in another batch shape
    float dlogp[RB * RT];
    model_zero_grad(m);
    float lossv = (float)kto_micro_loss(m, &ex, ref, label, z0, &p, 2, dlogp, NULL);
    float *grads = malloc(model_param_bytes(m));
    be->to_host(grads, m->grads_mem, model_param_bytes(m));
    hid_t refh = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(refh >= 0);
    check_tensor(refh, "loss", &lossv, 1);
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char tname[64];
        snprintf(tname, sizeof(tname), "grads/%s", ti->name);
        check_tensor(refh, tname, grads + ti->offset, ti->numel);
    }
    free(grads);
    H5Fclose(refh);
    model_free(m);
}

START_TEST(test_kto_matches_pytorch) {
    check_kto();
}
END_TEST

int main(void) {
    int rc = require_torch();
    if (rc) return rc;
    Suite *s = suite_create("parity");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_gpt2_matches_pytorch);
    tcase_add_test(tc, test_llama_gqa_matches_pytorch);
    tcase_add_test(tc, test_llama_mqa_matches_pytorch);
    tcase_add_test(tc, test_reward_model_matches_pytorch);
    tcase_add_test(tc, test_dpo_matches_pytorch);
    tcase_add_test(tc, test_kto_matches_pytorch);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
