// tests/test_peft.c: LoRA adapters as Hugging Face PEFT adapters (model/peft.h) and the export
// and import commands around them. Per family (GPT-2 with q and v but not k adapted, so c_attn is
// block-structured; Llama with grouped-query attention, untied, SwiGLU): the exported adapter on
// the exported base, applied by tests/peft_ref.py as PEFT applies it, gives our unmerged logits;
// importing it back (peft_apply and `layercake import hf --adapter`) gives them again; the
// `export --format hf --merge-lora` folder loads back with them; alpha_pattern is folded exactly;
// and the refusals name the file and the key.
#include "common/safetensors.h"
#include "model/checkpoint.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/peft.h"
#include "tests/testutil.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

enum { T = 8 };
static const int IDS[T] = {3, 17, 42, 5, 9, 31, 0, 48};

typedef struct {
    ModelConfig cfg;
    LoraConfig lora;
    const char *name, *target_modules; // target_modules as peft_ref.py expects it
} Case;

static Case family_case(int i) {
    Case c;
    if (i == 0) {
        c.cfg = (ModelConfig)GPT2_CONFIG(2, 2, 16, 50, 32);
        c.lora = (LoraConfig){.rank = 2,
                              .alpha = 8.0f,
                              .targets = 1u << LORA_Q | 1u << LORA_V | 1u << LORA_O |
                                         1u << LORA_UP | 1u << LORA_DOWN,
                              .init = LORA_INIT_KAIMING};
        c.name = "gpt2";
        c.target_modules = "c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj";
    } else {
        c.cfg = model_config_default(MODEL_FAMILY_LLAMA, 2, 4, 16, 50, 32);
        c.cfg.n_kv_head = 2;
        c.cfg.d_ff = 40;
        c.cfg.tied = false;
        c.lora = (LoraConfig){.rank = 3,
                              .alpha = 6.0f,
                              .targets = (1u << LORA_TARGETS) - 1,
                              .init = LORA_INIT_KAIMING};
        c.name = "llama";
        c.target_modules = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
    }
    return c;
}

static const char *path_of(const Case *c, const char *what) {
    char name[256];
    snprintf(name, sizeof(name), "peft-%s-%s", c->name, what);
    return test_tmp_path(name);
}

// The logits (T, V) of one forward over IDS.
static float *logits(Model *m) {
    Batch b = {.B = 1, .T = T, .tokens = (int *)IDS};
    model_forward(m, &b, 1.0f);
    int V = m->cfg.vocab_size;
    float *full = malloc(sizeof(float) * T * (size_t)m->Vp), *out = malloc(sizeof(float) * T * V);
    model_logits_to_host(m, full, T);
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * V, full + (size_t)t * m->Vp, sizeof(float) * V);
    free(full);
    return out;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0.0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

// Random B (A is already random): the adapters change the model.
static void randomise_b(Model *m, uint64_t seed) {
    float *host = malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    Rng r = rng_init(seed);
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        if (strncmp(ti->name, "lora_", 5) == 0 && strstr(ti->name, "_b"))
            fill_uniform(host + ti->offset, ti->numel, &r, -0.3f, 0.3f);
    }
    model_params_from_host(m, host);
    free(host);
}

// The base folder, the LoRA model (returned), its checkpoint and its PEFT adapter.
static Model *setup(const Case *c) {
    char err[2048], note[512];
    Model *m = model_create(backend_cpu(), c->cfg, MODEL_HEAD_LM, MODEL_INFER, 1, T);
    model_init_weights(m, 21);
    HfExportOptions o = {.dtype = ST_F32, .bos_id = -1, .eos_id = -1};
    ck_assert_msg(hf_export(m, path_of(c, "base"), &o, note, sizeof(note), err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_msg(model_lora_attach(m, &c->lora, 5, err, sizeof(err)) == 0, "%s", err);
    randomise_b(m, 9);
    ck_assert_msg(model_save(m, path_of(c, "lora.h5"), err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(
        peft_export(m, path_of(c, "adapter"), ST_F32, note, sizeof(note), err, sizeof(err)) == 0,
        "%s", err);
    ck_assert_str_eq(note, "");
    return m;
}

static Model *load_base(const Case *c) {
    char err[2048];
    Model *m =
        hf_model_load(backend_cpu(), path_of(c, "base"), 0, MODEL_INFER, 1, T, 0, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    return m;
}

static int run_cli(const char *args, const char *log) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s/layercake %s >%s 2>&1", LC_BINARY_DIR, args, log);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp_n(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return s;
}

static char *slurp(const char *path) {
    return slurp_n(path, NULL);
}

// (a) the adapter's files and its effect against PEFT's rules in PyTorch.
START_TEST(test_peft_against_pytorch) {
    Case c = family_case(_i);
    Model *m = setup(&c);
    float *want = logits(m);
    const char *bin = path_of(&c, "logits.bin");
    FILE *f = fopen(bin, "wb");
    int hdr[2] = {T, m->cfg.vocab_size};
    fwrite(hdr, sizeof(int), 2, f);
    fwrite(IDS, sizeof(int), T, f);
    fwrite(want, sizeof(float), (size_t)T * m->cfg.vocab_size, f);
    fclose(f);
    char args[4096];
    snprintf(args, sizeof(args), "%s %s %s %s", path_of(&c, "base"), path_of(&c, "adapter"), bin,
             c.target_modules);
    ck_assert_msg(run_torch_script("peft_ref.py", args) == 0, "tests/peft_ref.py failed (%s)",
                  c.name);
    free(want);
    model_free(m);
}
END_TEST

// (b) import round trip: peft_apply and `layercake import hf BASE --adapter` give our logits.
START_TEST(test_peft_import_round_trip) {
    Case c = family_case(_i);
    char err[2048];
    Model *m = setup(&c);
    float *want = logits(m);
    size_t n = (size_t)T * m->cfg.vocab_size;
    Model *b = load_base(&c);
    float *base = logits(b);
    ck_assert_msg(peft_apply(b, path_of(&c, "adapter"), err, sizeof(err)) == 0, "%s", err);
    float *got = logits(b);
    double d = max_abs_diff(got, want, n), moved = max_abs_diff(base, want, n);
    fprintf(stderr, "%s: peft_apply logits max |diff| %.3g (the adapter moves them %.3g)\n", c.name,
            d, moved);
    ck_assert_msg(d <= 1e-5, "imported adapter logits differ by %.3g", d);
    ck_assert_msg(moved > 1e-2, "the adapter moves the logits by only %.3g", moved);
    // GPT-2: c_attn (rank 2 r) brings q, k and v at rank 2 r; Llama keeps its rank
    ck_assert_int_eq(b->lora.rank, _i == 0 ? 2 * c.lora.rank : c.lora.rank);
    ck_assert_uint_eq(b->lora.targets,
                      c.lora.targets | (_i == 0 ? 1u << LORA_K : 0u)); // c_attn is q|k|v
    ck_assert_float_eq(b->lora.alpha / (float)b->lora.rank, c.lora.alpha / (float)c.lora.rank);
    free(got);
    model_free(b);
    // the command, from the base folder, into a checkpoint with adapters
    char args[4096];
    snprintf(args, sizeof(args), "import hf %s --adapter %s --out %s", path_of(&c, "base"),
             path_of(&c, "adapter"), path_of(&c, "imported.h5"));
    ck_assert_msg(run_cli(args, path_of(&c, "import.log")) == 0, "%s",
                  slurp(path_of(&c, "import.log")));
    Model *l = model_load(backend_cpu(), path_of(&c, "imported.h5"), 0, MODEL_INFER, 1, T, 0, err,
                          sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_int_gt(l->lora.rank, 0);
    got = logits(l);
    d = max_abs_diff(got, want, n);
    fprintf(stderr, "%s: import hf --adapter logits max |diff| %.3g\n", c.name, d);
    ck_assert_msg(d <= 1e-5, "import --adapter logits differ by %.3g", d);
    free(got), free(base), free(want);
    model_free(l);
    model_free(m);
}
END_TEST

// (c) `export --format hf --merge-lora` loads back with the unmerged logits; `--format peft`
// from the checkpoint writes what peft_export wrote.
START_TEST(test_peft_merge_export) {
    Case c = family_case(_i);
    char err[2048], args[4096];
    Model *m = setup(&c);
    float *want = logits(m);
    snprintf(args, sizeof(args), "export %s --format hf --merge-lora --out %s",
             path_of(&c, "lora.h5"), path_of(&c, "merged"));
    ck_assert_msg(run_cli(args, path_of(&c, "merge.log")) == 0, "%s",
                  slurp(path_of(&c, "merge.log")));
    Model *g = hf_model_load(backend_cpu(), path_of(&c, "merged"), 0, MODEL_INFER, 1, T, 0, err,
                             sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_int_eq(g->lora.rank, 0);
    float *got = logits(g);
    double d = max_abs_diff(got, want, (size_t)T * m->cfg.vocab_size);
    fprintf(stderr, "%s: --merge-lora folder logits max |diff| %.3g\n", c.name, d);
    ck_assert_msg(d <= 1e-4, "merged export logits differ by %.3g", d);
    snprintf(args, sizeof(args), "export %s --format peft --out %s", path_of(&c, "lora.h5"),
             path_of(&c, "adapter-cli"));
    ck_assert_msg(run_cli(args, path_of(&c, "peft.log")) == 0, "%s",
                  slurp(path_of(&c, "peft.log")));
    const char *files[] = {"adapter_config.json", "adapter_model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char p1[2048], p2[2048];
        snprintf(p1, sizeof(p1), "%s/%s", path_of(&c, "adapter"), files[i]);
        snprintf(p2, sizeof(p2), "%s/%s", path_of(&c, "adapter-cli"), files[i]);
        size_t na, nb;
        char *a = slurp_n(p1, &na), *b = slurp_n(p2, &nb);
        ck_assert_msg(na == nb && memcmp(a, b, na) == 0, "%s differs", files[i]);
        free(a), free(b);
    }
    free(got), free(want);
    model_free(g);
    model_free(m);
}
END_TEST

// Rewrites dir's adapter_config.json with key set to v (NULL: removed).
static void config_set(const char *dir, const char *key, json_t *v) {
    char path[2048];
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(j);
    if (v)
        json_object_set_new(j, key, v);
    else
        json_object_del(j, key);
    ck_assert_int_eq(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
}

static void copy_adapter(const char *from, const char *to) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    ck_assert_int_eq(system(cmd), 0);
}

// An alpha_pattern entry scales its module: folded into B exactly (Llama's o_proj at half the
// scale equals the original model with lora_o_b halved).
START_TEST(test_peft_alpha_pattern_folded) {
    Case c = family_case(1);
    char err[2048];
    Model *m = setup(&c);
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s", path_of(&c, "adapter-alpha"));
    copy_adapter(path_of(&c, "adapter"), dir);
    json_t *ap = json_object();
    json_object_set_new(ap, "o_proj", json_real(c.lora.alpha / 2));
    config_set(dir, "alpha_pattern", ap);
    float *host = malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    const TensorInfo *ti = &m->table.info[tensor_table_find(&m->table, "lora_o_b")];
    for (size_t i = 0; i < ti->numel; i++) host[ti->offset + i] *= 0.5f;
    model_params_from_host(m, host);
    float *want = logits(m);
    Model *b = load_base(&c);
    ck_assert_msg(peft_apply(b, dir, err, sizeof(err)) == 0, "%s", err);
    float *got = logits(b);
    double d = max_abs_diff(got, want, (size_t)T * m->cfg.vocab_size);
    fprintf(stderr, "alpha_pattern folded: logits max |diff| %.3g\n", d);
    ck_assert_msg(d <= 1e-5, "alpha_pattern: logits differ by %.3g", d);
    free(got), free(want), free(host);
    model_free(b);
    model_free(m);
}
END_TEST

static void refused(const Case *c, const char *dir, const char *want1, const char *want2) {
    char err[2048];
    Model *b = load_base(c);
    ck_assert_int_eq(peft_apply(b, dir, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want1) && strstr(err, want2), "message '%s' lacks '%s' or '%s'", err,
                  want1, want2);
    ck_assert_int_eq(b->lora.rank, 0); // unchanged
    model_free(b);
}

// (d) the refusals: hf export of an adapter checkpoint without --merge-lora, bad adapters.
START_TEST(test_peft_refusals) {
    Case c = family_case(_i);
    char err[2048], note[512], args[4096];
    Model *m = setup(&c);
    HfExportOptions o = {.dtype = ST_F32, .bos_id = -1, .eos_id = -1};
    ck_assert_int_eq(hf_export(m, path_of(&c, "dropped"), &o, note, sizeof(note), err, sizeof(err)),
                     -1);
    ck_assert_msg(strstr(err, "LoRA adapters") && strstr(err, "--merge-lora"), "%s", err);
    snprintf(args, sizeof(args), "export %s --format hf --out %s", path_of(&c, "lora.h5"),
             path_of(&c, "dropped"));
    ck_assert_int_eq(run_cli(args, path_of(&c, "refuse.log")), 1);
    char *log = slurp(path_of(&c, "refuse.log"));
    ck_assert_msg(strstr(log, path_of(&c, "lora.h5")) && strstr(log, "--merge-lora"), "%s", log);
    free(log);
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s", path_of(&c, "adapter-bad"));
    char cfgname[2200];
    snprintf(cfgname, sizeof(cfgname), "%s/adapter_config.json", dir);
    struct {
        const char *key;
        json_t *v;
    } bad[] = {{"use_dora", json_true()},
               {"use_rslora", json_true()},
               {"lora_bias", json_true()},
               {"bias", json_string("all")},
               {"modules_to_save", json_pack("[s]", "score")},
               {"layers_to_transform", json_pack("[i]", 0)}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        copy_adapter(path_of(&c, "adapter"), dir);
        config_set(dir, bad[i].key, bad[i].v);
        char key[64];
        snprintf(key, sizeof(key), "key %s", bad[i].key);
        refused(&c, dir, cfgname, key);
    }
    // a rank_pattern that does not match the tensors
    copy_adapter(path_of(&c, "adapter"), dir);
    config_set(dir, "r", json_integer(c.lora.rank + 1));
    refused(&c, dir, cfgname, "key r");
    // a lora_A without its lora_B, and a module the architecture does not have
    char st[2200];
    snprintf(st, sizeof(st), "%s/adapter_model.safetensors", dir);
    float a[64 * 16] = {0};
    const char *pre = _i == 0 ? "transformer.h.0.mlp.c_proj" : "model.layers.0.mlp.down_proj";
    int in = _i == 0 ? 64 : 40;
    char name[256];
    snprintf(name, sizeof(name), "base_model.model.%s.lora_A.weight", pre);
    StWriteTensor w = {.name = name, .ndim = 2, .shape = {c.lora.rank, in}, .data = a};
    copy_adapter(path_of(&c, "adapter"), dir);
    char tmp[2200], cmd[8192];
    snprintf(tmp, sizeof(tmp), "%s/x", dir);
    ck_assert_msg(st_write(tmp, &w, 1, ST_F32, 0, err, sizeof(err)) == 0, "%s", err);
    snprintf(cmd, sizeof(cmd), "mv '%s/model.safetensors' '%s'", tmp, st);
    ck_assert_int_eq(system(cmd), 0);
    refused(&c, dir, st, "no lora_B");
    snprintf(name, sizeof(name), "base_model.model.%s.lora_A.weight",
             _i == 0 ? "transformer.h.0.attn.q_proj" : "model.layers.0.self_attn.c_attn");
    w.shape[1] = 16;
    ck_assert_msg(st_write(tmp, &w, 1, ST_F32, 0, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(system(cmd), 0);
    refused(&c, dir, st, "unknown module");
    // the command names the file and key too
    copy_adapter(path_of(&c, "adapter"), dir);
    config_set(dir, "use_dora", json_true());
    snprintf(args, sizeof(args), "import hf %s --adapter %s --out %s", path_of(&c, "base"), dir,
             path_of(&c, "bad.h5"));
    ck_assert_int_eq(run_cli(args, path_of(&c, "refuse.log")), 1);
    log = slurp(path_of(&c, "refuse.log"));
    ck_assert_msg(strstr(log, cfgname) && strstr(log, "key use_dora"), "%s", log);
    free(log);
    model_free(m);
}
END_TEST

int main(void) {
    int rc = require_torch();
    if (rc) return rc;
    Suite *s = suite_create("peft");
    TCase *tc = tcase_create("peft");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_peft_against_pytorch, 0, 2);
    tcase_add_loop_test(tc, test_peft_import_round_trip, 0, 2);
    tcase_add_loop_test(tc, test_peft_merge_export, 0, 2);
    tcase_add_test(tc, test_peft_alpha_pattern_folded);
    tcase_add_loop_test(tc, test_peft_refusals, 0, 2);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
