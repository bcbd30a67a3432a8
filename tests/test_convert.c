// tests/test_convert.c: real model formats <-> layercake (model/hf.h, model/llama2c.h, the
// import/export/logits commands) against PyTorch. tests/hf_ref.py writes Hugging Face folders
// by hand (GPT-2 F32 in Conv1D layout, Llama BF16 with grouped-query attention, Qwen2 F16 with
// q/k/v biases, a Llama reward model, stories260K converted from llama2.c) and computes
// references with its own model definitions; this suite imports them and checks weights
// (exact), logits, values, loss, gradients and an SGD step, greedy generation, the round trips
// through export, and every refusal's message.
#include "common/safetensors.h"
#include "model/checkpoint.h"
#include "model/hf.h"
#include "model/llama2c.h"
#include "model/model.h"
#include "model/sample.h"
#include "tests/testutil.h"
#include <hdf5.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOL 1e-4 // normwise, as tests/test_parity.c

static char REF[1024]; // hf_ref.py's output folder

static const char *ref_path(const char *name) {
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 4096, "%s/%s", REF, name);
    return p;
}

static const char *stories_bin(void) {
    return LC_SAMPLES "/tinyllamas/stories260K.bin";
}

// ---- reference files ---------------------------------------------------------------------------

// Dataset `name` of an HDF5 file as floats (or ints), its element count in *n.
static void *ref_read(hid_t f, const char *name, hid_t type, size_t *n) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(ds >= 0, "reference lacks %s", name);
    hid_t sp = H5Dget_space(ds);
    *n = (size_t)H5Sget_simple_extent_npoints(sp);
    void *x = malloc(*n * 4 + 4);
    ck_assert(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Sclose(sp);
    H5Dclose(ds);
    return x;
}

static float *ref_floats(hid_t f, const char *name, size_t *n) {
    return ref_read(f, name, H5T_NATIVE_FLOAT, n);
}

static int *ref_ints(hid_t f, const char *name, size_t *n) {
    return ref_read(f, name, H5T_NATIVE_INT, n);
}

static hid_t ref_open(const char *name) {
    hid_t f = H5Fopen(ref_path(name), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", ref_path(name));
    return f;
}

static float *host_copy(const Model *m, const float *dev) {
    float *h = malloc(m->table.numel * sizeof(float));
    m->be->to_host(h, dev, m->table.numel * sizeof(float));
    return h;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

// Every tensor of m (but a scalar head) equals /group/<name> of the reference bit for bit.
static void check_params_exact(const Model *m, hid_t ref, const char *group) {
    float *p = host_copy(m, m->params_mem);
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        if (strncmp(ti->name, "head", 4) == 0) continue;
        char name[128];
        size_t n;
        snprintf(name, sizeof(name), "%s/%s", group, ti->name);
        float *want = ref_floats(ref, name, &n);
        ck_assert_uint_eq(n, ti->numel);
        ck_assert_msg(memcmp(p + ti->offset, want, n * sizeof(float)) == 0,
                      "%s differs from the reference's float32 values", ti->name);
        free(want);
    }
    free(p);
}

// Normwise error of ours against the reference's dataset `name`; fails above TOL.
static double check_close(hid_t ref, const char *name, const float *ours, size_t n) {
    size_t rn;
    float *want = ref_floats(ref, name, &rn);
    ck_assert_uint_eq(rn, n);
    double e = max_norm_err(name, ours, want, n, 1e-12, TOL);
    fprintf(stderr, "  %-22s normwise %.3g, max |diff| %.3g\n", name, e,
            max_abs_diff(ours, want, n));
    ck_assert_msg(e <= TOL, "%s: normwise error %.3g > %.3g against PyTorch", name, e, TOL);
    free(want);
    return e;
}

// The logits (T, V) of one forward of m over ids.
static float *forward_logits(Model *m, int *ids, int T) {
    Batch b = {.B = 1, .T = T, .tokens = ids};
    model_forward(m, &b, 1.0f);
    float *full = malloc(sizeof(float) * (size_t)T * m->Vp),
          *out = malloc(sizeof(float) * (size_t)T * m->cfg.vocab_size);
    m->be->to_host(full, m->acts.logits, sizeof(float) * (size_t)T * m->Vp);
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * m->cfg.vocab_size, full + (size_t)t * m->Vp,
               sizeof(float) * (size_t)m->cfg.vocab_size);
    free(full);
    return out;
}

static Model *load_ok(const char *dir, int heads, ModelMode mode, int B, int T) {
    char err[2048];
    Model *m = hf_model_load(backend_cpu(), dir, heads, mode, B, T, 5, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    return m;
}

static void export_ok(const Model *m, const char *dir, StDtype dtype, uint64_t shard) {
    char err[2048], note[1024];
    HfExportOptions o = {.dtype = dtype, .shard_bytes = shard, .bos_id = -1, .eos_id = -1};
    ck_assert_msg(hf_export(m, dir, &o, note, sizeof(note), err, sizeof(err)) == 0, "%s", err);
}

static void check_same_params(const Model *a, const Model *b) {
    ck_assert(model_config_equal(&a->cfg, &b->cfg));
    ck_assert_int_eq(a->heads, b->heads);
    ck_assert_uint_eq(a->table.numel, b->table.numel);
    float *pa = host_copy(a, a->params_mem), *pb = host_copy(b, b->params_mem);
    ck_assert_msg(memcmp(pa, pb, a->table.numel * sizeof(float)) == 0, "parameters differ");
    free(pa), free(pb);
}

// ---- raw safetensors bytes ---------------------------------------------------------------------

// The header of a safetensors file (a JSON object) and the data section's offset.
static json_t *st_header(const char *path, long *data_at) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    uint64_t hl;
    ck_assert(fread(&hl, 8, 1, f) == 1);
    char *h = malloc(hl + 1);
    ck_assert(fread(h, 1, hl, f) == hl);
    h[hl] = 0;
    json_t *j = json_loads(h, 0, NULL);
    ck_assert(j != NULL);
    free(h);
    fclose(f);
    *data_at = 8 + (long)hl;
    return j;
}

// The stored bytes of tensor name of a safetensors file, and its dtype.
static unsigned char *raw_tensor(const char *path, const char *name, size_t *n, char *dtype) {
    long at;
    json_t *j = st_header(path, &at);
    json_t *e = json_object_get(j, name);
    ck_assert_msg(e != NULL, "%s lacks %s", path, name);
    snprintf(dtype, 8, "%s", json_string_value(json_object_get(e, "dtype")));
    json_t *off = json_object_get(e, "data_offsets");
    long b = (long)json_integer_value(json_array_get(off, 0));
    *n = (size_t)(json_integer_value(json_array_get(off, 1)) - b);
    unsigned char *buf = malloc(*n + 1);
    FILE *f = fopen(path, "rb");
    ck_assert(fseek(f, at + b, SEEK_SET) == 0 && fread(buf, 1, *n, f) == *n);
    fclose(f);
    json_decref(j);
    return buf;
}

// Every tensor of src's model.safetensors (but rotary buffers) is in dst's with the same dtype
// and bytes, and dst holds no other.
static void check_same_bytes(const char *src_dir, const char *dst_dir) {
    char src[4096], dst[4096];
    snprintf(src, sizeof(src), "%s/model.safetensors", src_dir);
    snprintf(dst, sizeof(dst), "%s/model.safetensors", dst_dir);
    long at;
    json_t *hs = st_header(src, &at), *hd = st_header(dst, &at);
    const char *name;
    json_t *v;
    int compared = 0;
    json_object_foreach(hs, name, v) {
        if (strcmp(name, "__metadata__") == 0 || strstr(name, "inv_freq")) continue;
        size_t na, nb;
        char da[8], db[8];
        unsigned char *a = raw_tensor(src, name, &na, da), *b = raw_tensor(dst, name, &nb, db);
        ck_assert_str_eq(da, db);
        ck_assert_uint_eq(na, nb);
        ck_assert_msg(memcmp(a, b, na) == 0, "%s: the exported bytes differ", name);
        free(a), free(b);
        compared++;
    }
    ck_assert_int_eq(compared + 1, (int)json_object_size(hd)); // + __metadata__
    json_decref(hs), json_decref(hd);
}

static json_t *config_of(const char *dir) {
    char p[4096];
    snprintf(p, sizeof(p), "%s/config.json", dir);
    json_t *j = json_load_file(p, 0, NULL);
    ck_assert_msg(j != NULL, "cannot read %s", p);
    return j;
}

static void check_architecture(const char *dir, const char *arch, const char *model_type) {
    json_t *j = config_of(dir);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "architectures"), 0)),
                     arch);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model_type")), model_type);
    json_decref(j);
}

// ---- GPT-2: training parity, export ------------------------------------------------------------

START_TEST(test_gpt2_training_matches_pytorch) {
    hid_t ref = ref_open("gpt2.ref.h5");
    size_t n;
    int *tokens = ref_ints(ref, "batch/tokens", &n), *targets = ref_ints(ref, "batch/targets", &n);
    int B = 3, T = (int)n / 3;
    Model *m = load_ok(ref_path("gpt2"), MODEL_HEAD_LM, MODEL_TRAIN, B, T);
    check_params_exact(m, ref, "params");
    Batch b = {.B = B, .T = T, .tokens = tokens, .targets = targets};
    float loss = model_forward(m, &b, 1.0f);
    model_zero_grad(m);
    model_backward_ce(m, model_mask_sum(m));
    fprintf(stderr, "gpt2 (F32, Conv1D) against PyTorch:\n");
    check_close(ref, "loss", &loss, 1);
    float *g = host_copy(m, m->grads_mem), *w = host_copy(m, m->params_mem);
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char name[64];
        snprintf(name, sizeof(name), "grads/%s", ti->name);
        check_close(ref, name, g + ti->offset, ti->numel);
    }
    double lr;
    hid_t a = H5Aopen(ref, "lr", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_DOUBLE, &lr);
    H5Aclose(a);
    for (size_t j = 0; j < m->table.numel; j++) w[j] -= (float)lr * g[j]; // one SGD step
    for (int i = 0; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        char name[64];
        snprintf(name, sizeof(name), "after/%s", ti->name);
        check_close(ref, name, w + ti->offset, ti->numel);
    }
    free(g), free(w), free(tokens), free(targets);
    model_free(m);
    H5Fclose(ref);
}
END_TEST

static uint16_t *bf16_ref(size_t *n) {
    hid_t ref = ref_open("gpt2.ref.h5");
    uint16_t *bits = ref_read(ref, "bf16_c_attn", H5T_NATIVE_UINT16, n);
    H5Fclose(ref);
    return bits;
}

START_TEST(test_gpt2_export_round_trip) {
    char err[2048];
    Model *m = load_ok(ref_path("gpt2"), 0, MODEL_INFER, 1, 1);
    // through a layercake weights file, then out as f32 and back: bit-exact
    const char *ckpt = test_tmp_path("convert-gpt2.h5");
    ck_assert_msg(model_save(m, ckpt, err, sizeof(err)) == 0, "%s", err);
    Model *c = model_load(backend_cpu(), ckpt, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    const char *f32 = test_tmp_path("convert-gpt2-f32");
    export_ok(c, f32, ST_F32, 0);
    check_architecture(f32, "GPT2LMHeadModel", "gpt2");
    Model *back = load_ok(f32, 0, MODEL_INFER, 1, 1);
    check_same_params(m, back);
    // the exported tensors are the source's, bytes and all (the source has buffers and a tied
    // lm_head copy besides, which save_pretrained leaves out)
    char src[4096], dst[4096];
    snprintf(src, sizeof(src), "%s/model.safetensors", ref_path("gpt2"));
    snprintf(dst, sizeof(dst), "%s/model.safetensors", f32);
    long at;
    json_t *hd = st_header(dst, &at);
    const char *name;
    json_t *v;
    json_object_foreach(hd, name, v) {
        if (strcmp(name, "__metadata__") == 0) continue;
        size_t na, nb;
        char da[8], db[8];
        unsigned char *a = raw_tensor(src, name, &na, da), *b = raw_tensor(dst, name, &nb, db);
        ck_assert(na == nb && memcmp(a, b, na) == 0);
        free(a), free(b);
    }
    ck_assert_int_eq((int)json_object_size(hd), 1 + 2 + 2 * 12 + 2);
    json_decref(hd);
    // bf16: every value of h.0.attn.c_attn.weight is numpy's bfloat16 rounding
    const char *bf16 = test_tmp_path("convert-gpt2-bf16");
    export_ok(m, bf16, ST_BF16, 0);
    snprintf(dst, sizeof(dst), "%s/model.safetensors", bf16);
    size_t n, nw;
    char dt[8];
    uint16_t *got = (uint16_t *)raw_tensor(dst, "transformer.h.0.attn.c_attn.weight", &n, dt),
             *want = bf16_ref(&nw);
    ck_assert_str_eq(dt, "BF16");
    ck_assert_uint_eq(n, 2 * nw);
    ck_assert_msg(memcmp(got, want, n) == 0, "bf16 bits differ from numpy's");
    fprintf(stderr,
            "gpt2 bf16 export: %zu values of h.0.attn.c_attn.weight equal numpy's bits "
            "(first 0x%04x)\n",
            nw, want[0]);
    free(got), free(want);
    // sharded: several files and an index, read back the same
    const char *sh = test_tmp_path("convert-gpt2-sharded");
    export_ok(m, sh, ST_F32, 20000);
    snprintf(dst, sizeof(dst), "%s/model.safetensors.index.json", sh);
    ck_assert(access(dst, F_OK) == 0);
    Model *sharded = load_ok(sh, 0, MODEL_INFER, 1, 1);
    check_same_params(m, sharded);
    model_free(sharded), model_free(back), model_free(c), model_free(m);
}
END_TEST

// ---- Llama BF16, Qwen2 F16, a reward model ---------------------------------------------------

// Import exact, logits against PyTorch, export in the source's dtype byte for byte, re-import.
static void check_llama_folder(const char *name, StDtype dtype, const char *arch,
                               const char *model_type) {
    char refname[64], out[64];
    snprintf(refname, sizeof(refname), "%s.ref.h5", name);
    snprintf(out, sizeof(out), "convert-%s-out", name);
    hid_t ref = ref_open(refname);
    size_t n;
    int *ids = ref_ints(ref, "ids", &n);
    Model *m = load_ok(ref_path(name), 0, MODEL_INFER, 1, (int)n);
    ck_assert_int_eq(m->heads, MODEL_HEAD_LM);
    check_params_exact(m, ref, "params");
    float *logits = forward_logits(m, ids, (int)n);
    fprintf(stderr, "%s against PyTorch:\n", name);
    check_close(ref, "logits", logits, n * (size_t)m->cfg.vocab_size);
    const char *dir = test_tmp_path(out);
    export_ok(m, dir, dtype, 0);
    check_architecture(dir, arch, model_type);
    check_same_bytes(ref_path(name), dir);
    Model *back = load_ok(dir, 0, MODEL_INFER, 1, 1);
    check_same_params(m, back);
    free(ids), free(logits);
    model_free(back), model_free(m);
    H5Fclose(ref);
}

START_TEST(test_llama_bf16) {
    check_llama_folder("llama-bf16", ST_BF16, "LlamaForCausalLM", "llama");
}
END_TEST

START_TEST(test_qwen2_f16) {
    check_llama_folder("qwen2-f16", ST_F16, "Qwen2ForCausalLM", "qwen2");
}
END_TEST

START_TEST(test_reward_model) {
    hid_t ref = ref_open("llama-rm.ref.h5");
    size_t n;
    int *ids = ref_ints(ref, "ids", &n);
    Model *m = load_ok(ref_path("llama-rm"), 0, MODEL_INFER, 1, (int)n);
    ck_assert_int_eq(m->heads, MODEL_HEAD_SCALAR);
    Batch b = {.B = 1, .T = (int)n, .tokens = ids};
    model_forward(m, &b, 1.0f);
    fprintf(stderr, "llama reward model against PyTorch:\n");
    check_close(ref, "values", m->host_values, n);
    float *p = host_copy(m, m->params_mem);
    ck_assert(p[m->table.info[tensor_table_find(&m->table, "headb")].offset] == 0.0f);
    free(p);
    const char *dir = test_tmp_path("convert-rm-out");
    export_ok(m, dir, ST_F32, 0);
    check_architecture(dir, "LlamaForSequenceClassification", "llama");
    json_t *j = config_of(dir);
    ck_assert_int_eq((int)json_object_size(json_object_get(j, "id2label")), 1);
    json_decref(j);
    check_same_bytes(ref_path("llama-rm"), dir);
    Model *back = load_ok(dir, 0, MODEL_INFER, 1, 1);
    check_same_params(m, back);
    // a causal LM loaded with a scalar head: the head comes from the seed
    char err[2048];
    Model *a =
        hf_model_load(backend_cpu(), ref_path("llama-bf16"), MODEL_HEAD_LM | MODEL_HEAD_SCALAR,
                      MODEL_INFER, 1, 1, 5, err, sizeof(err));
    Model *c = model_create(backend_cpu(), a->cfg, a->heads, MODEL_INFER, 1, 1);
    model_init_weights(c, 5);
    float *pa = host_copy(a, a->params_mem), *pc = host_copy(c, c->params_mem);
    int hw = tensor_table_find(&a->table, "headw");
    ck_assert(hw >= 0 && memcmp(pa + a->table.info[hw].offset, pc + c->table.info[hw].offset,
                                sizeof(float) * (size_t)a->cfg.d_model) == 0);
    free(pa), free(pc), free(ids);
    model_free(a), model_free(c), model_free(back), model_free(m);
    H5Fclose(ref);
}
END_TEST

// ---- stories260K: llama2.c and Hugging Face agree, and with llama2.c's forward --------------

START_TEST(test_stories260k) {
    char err[2048];
    hid_t ref = ref_open("stories.ref.h5");
    size_t np, ng;
    int *prompt = ref_ints(ref, "ids", &np), *greedy = ref_ints(ref, "greedy", &ng);
    int len = (int)(np + ng);
    Model *a = llama2c_model_load(backend_cpu(), stories_bin(), 0, MODEL_INFER, 1, len, 0, err,
                                  sizeof(err));
    ck_assert_msg(a != NULL, "%s", err);
    Model *b = load_ok(ref_path("stories"), 0, MODEL_INFER, 1, len);
    check_same_params(a, b); // the .bin and the converted folder: the same model, bit for bit
    ck_assert(a->cfg.tied && a->cfg.n_kv_head == 4 && a->cfg.max_seq_len == 512);
    float *logits = forward_logits(a, prompt, (int)np);
    size_t nl;
    float *want = ref_floats(ref, "logits", &nl);
    ck_assert_uint_eq(nl, np * (size_t)a->cfg.vocab_size);
    double d = max_abs_diff(logits, want, nl);
    fprintf(stderr, "stories260K prompt logits against llama2.c's forward: max |diff| %.3g\n", d);
    ck_assert_msg(d <= 1e-4, "prompt logits differ by %.3g", d);
    Sampler *s = sampler_create(a, 1, len, 1);
    SampleParams sp = {.temperature = 0, .top_p = 1, .stop_token = -1, .max_new_tokens = (int)ng};
    int *out = malloc(sizeof(int) * ng), olen, plen = (int)np;
    float *lp = malloc(sizeof(float) * ng);
    Rng rng = rng_init(1);
    sampler_generate(s, prompt, (int)np, &plen, 1, &sp, &rng, out, lp, &olen);
    ck_assert_int_eq(olen, (int)ng);
    for (size_t i = 0; i < ng; i++)
        ck_assert_msg(out[i] == greedy[i], "greedy token %zu: %d, the reference %d", i, out[i],
                      greedy[i]);
    fprintf(stderr, "stories260K greedy: %zu tokens equal the reference\n", ng);
    sampler_free(s);
    free(out), free(lp), free(logits), free(want), free(prompt), free(greedy);
    model_free(a), model_free(b);
    H5Fclose(ref);
}
END_TEST

// `layercake logits --ids ... --json` on the imported checkpoint and on the folder.
START_TEST(test_logits_command) {
    char err[2048], cmd[8192];
    Model *m =
        llama2c_model_load(backend_cpu(), stories_bin(), 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    const char *ckpt = test_tmp_path("convert-stories.h5");
    ck_assert_msg(model_save(m, ckpt, err, sizeof(err)) == 0, "%s", err);
    int V = m->cfg.vocab_size;
    model_free(m);
    hid_t ref = ref_open("stories.ref.h5");
    size_t nl;
    float *want = ref_floats(ref, "logits", &nl);
    H5Fclose(ref);
    const char *models[2] = {ckpt, ref_path("stories")};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof(cmd), "%s/layercake logits %s --ids 1,403,407 --json", LC_BINARY_DIR,
                 models[k]);
        FILE *p = popen(cmd, "r");
        json_error_t je;
        json_t *j = json_loadf(p, 0, &je);
        ck_assert_int_eq(pclose(p), 0);
        ck_assert_msg(j != NULL, "%s: %s", cmd, je.text);
        json_t *ids = json_object_get(j, "ids"), *lg = json_object_get(j, "logits"),
               *lp = json_object_get(j, "logprobs");
        ck_assert_int_eq((int)json_array_size(ids), 3);
        ck_assert_int_eq((int)json_integer_value(json_array_get(ids, 1)), 403);
        double dl = 0, dp = 0;
        for (int t = 0; t < 3; t++) {
            json_t *row = json_array_get(lg, (size_t)t), *prow = json_array_get(lp, (size_t)t);
            ck_assert_int_eq((int)json_array_size(row), V);
            ck_assert_int_eq((int)json_array_size(prow), V);
            const float *w = want + (size_t)t * V;
            double mx = -INFINITY, s = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, w[v]);
            for (int v = 0; v < V; v++) s += exp(w[v] - mx);
            for (int v = 0; v < V; v++) {
                dl = fmax(dl, fabs(json_number_value(json_array_get(row, (size_t)v)) - w[v]));
                double lpw = w[v] - mx - log(s);
                dp = fmax(dp, fabs(json_number_value(json_array_get(prow, (size_t)v)) - lpw));
            }
        }
        fprintf(stderr, "layercake logits %s: max |diff| logits %.3g, logprobs %.3g\n",
                k ? "(folder)" : "(checkpoint)", dl, dp);
        ck_assert_msg(dl <= 1e-4 && dp <= 1e-4, "logits %.3g, logprobs %.3g", dl, dp);
        json_decref(j);
    }
    free(want);
}
END_TEST

// ---- refusals ----------------------------------------------------------------------------------

typedef void (*ConfigEdit)(json_t *config);

// A copy of folder src (config.json edited; model.safetensors linked) named name.
static const char *variant(const char *name, const char *src, ConfigEdit edit) {
    static char dir[2048];
    char from[4096], to[4096], cmd[8192];
    snprintf(dir, sizeof(dir), "%s/variants/%s", REF, name);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    ck_assert(system(cmd) == 0);
    json_t *j = config_of(ref_path(src));
    if (edit) edit(j);
    snprintf(to, sizeof(to), "%s/config.json", dir);
    ck_assert(json_dump_file(j, to, JSON_INDENT(2)) == 0);
    json_decref(j);
    snprintf(from, sizeof(from), "%s/model.safetensors", ref_path(src));
    snprintf(to, sizeof(to), "%s/model.safetensors", dir);
    ck_assert(symlink(from, to) == 0);
    return dir;
}

// Edits of a folder's tensors (each NULL for none).
typedef struct {
    const char *drop;    // removed
    const char *reshape; // given 16 more rows
    const char *extra;   // added, 4 zeros
    const char *twice;   // values doubled
    const char *strip;   // a prefix taken off every name that has it
} TensorEdits;

// A copy of folder src whose tensors are rewritten as F32 with edits e.
static const char *tensor_variant(const char *name, const char *src, TensorEdits e) {
    const char *dir = variant(name, src, NULL);
    char err[1024], path[4096];
    SafeTensors *st = st_open(ref_path(src), err, sizeof(err));
    ck_assert_msg(st != NULL, "%s", err);
    int n = st_count(st), k = 0;
    StWriteTensor *w = calloc((size_t)n + 1, sizeof(StWriteTensor));
    float **data = calloc((size_t)n + 1, sizeof(float *));
    size_t skip = e.strip ? strlen(e.strip) : 0;
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_tensor(st, i);
        if (e.drop && strcmp(t->name, e.drop) == 0) continue;
        size_t numel = (size_t)t->numel;
        bool grow = e.reshape && strcmp(t->name, e.reshape) == 0;
        data[k] = calloc(numel + (grow ? 16 * (size_t)t->shape[1] : 0) + 1, sizeof(float));
        ck_assert(st_read_f32(st, t, data[k], err, sizeof(err)) == 0);
        if (e.twice && strcmp(t->name, e.twice) == 0)
            for (size_t j = 0; j < numel; j++) data[k][j] *= 2.0f;
        bool strip = skip && strncmp(t->name, e.strip, skip) == 0;
        w[k] =
            (StWriteTensor){.name = t->name + (strip ? skip : 0), .ndim = t->ndim, .data = data[k]};
        memcpy(w[k].shape, t->shape, sizeof(t->shape));
        if (grow) w[k].shape[0] += 16;
        k++;
    }
    if (e.extra) {
        data[k] = calloc(4, sizeof(float));
        w[k++] = (StWriteTensor){.name = e.extra, .ndim = 1, .shape = {4}, .data = data[k - 1]};
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    ck_assert_msg(st_write(dir, w, k, ST_F32, 0, err, sizeof(err)) == 0, "%s", err);
    for (int i = 0; i < k; i++) free(data[i]);
    free(data), free(w);
    st_close(st);
    return dir;
}

static void expect_refusal(const char *dir, const char *want) {
    char err[2048] = "";
    Model *m = hf_model_load(backend_cpu(), dir, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    ck_assert_msg(m == NULL, "%s was accepted", dir);
    ck_assert_msg(strstr(err, want) != NULL, "message [%s] lacks [%s]", err, want);
    ck_assert_msg(strstr(err, dir) != NULL, "message [%s] does not name the folder", err);
    fprintf(stderr, "refused: %s\n", err);
}

static void edit_bert(json_t *j) {
    json_t *a = json_array();
    json_array_append_new(a, json_string("BertForMaskedLM"));
    json_object_set_new(j, "architectures", a);
}

START_TEST(test_refuses_unknown_architecture) {
    expect_refusal(variant("bert", "gpt2", edit_bert),
                   "architecture 'BertForMaskedLM' is not supported");
}
END_TEST

static void edit_rope_scaling(json_t *j) {
    json_object_set_new(j, "rope_scaling",
                        json_pack("{s:s, s:f}", "type", "linear", "factor", 2.0));
}

START_TEST(test_refuses_rope_scaling) {
    expect_refusal(variant("rope-scaling", "llama-bf16", edit_rope_scaling),
                   "rope_scaling is set ({\"factor\": 2.0, \"type\": \"linear\"})");
}
END_TEST

static void edit_mistral(json_t *j, json_t *window) {
    json_t *a = json_array();
    json_array_append_new(a, json_string("MistralForCausalLM"));
    json_object_set_new(j, "architectures", a);
    json_object_set_new(j, "sliding_window", window);
}
static void edit_mistral_16(json_t *j) {
    edit_mistral(j, json_integer(16));
}
static void edit_mistral_null(json_t *j) {
    edit_mistral(j, json_null());
}
static void edit_qwen_window(json_t *j) {
    json_object_set_new(j, "use_sliding_window", json_true());
}

START_TEST(test_refuses_sliding_window) {
    expect_refusal(variant("mistral-window", "llama-bf16", edit_mistral_16),
                   "sliding_window 16 is shorter than max_position_embeddings 32");
    expect_refusal(variant("qwen2-window", "qwen2-f16", edit_qwen_window),
                   "sliding_window 4096 with use_sliding_window true");
    // the same folder without a window: a Mistral model layercake runs
    Model *m =
        load_ok(variant("mistral-nowindow", "llama-bf16", edit_mistral_null), 0, MODEL_INFER, 1, 1);
    model_free(m);
}
END_TEST

static void edit_head_dim(json_t *j) {
    json_object_set_new(j, "head_dim", json_integer(16));
}

START_TEST(test_refuses_bad_head_dim) {
    expect_refusal(variant("head-dim", "llama-bf16", edit_head_dim),
                   "head_dim 16 differs from hidden_size / num_attention_heads = 8");
}
END_TEST

static void edit_attention_bias(json_t *j) {
    json_object_set_new(j, "attention_bias", json_true());
}
static void edit_mlp_bias(json_t *j) {
    json_object_set_new(j, "mlp_bias", json_true());
}

START_TEST(test_refuses_biases) {
    expect_refusal(variant("attention-bias", "llama-bf16", edit_attention_bias),
                   "attention_bias is true");
    expect_refusal(variant("mlp-bias", "llama-bf16", edit_mlp_bias), "mlp_bias is true");
}
END_TEST

START_TEST(test_refuses_missing_tensor) {
    expect_refusal(tensor_variant("missing", "llama-bf16",
                                  (TensorEdits){.drop = "model.layers.1.mlp.up_proj.weight"}),
                   "tensor model.layers.1.mlp.up_proj.weight is missing");
}
END_TEST

START_TEST(test_refuses_wrong_shape) {
    expect_refusal(
        tensor_variant("shape", "llama-bf16",
                       (TensorEdits){.reshape = "model.layers.0.self_attn.k_proj.weight"}),
        "tensor model.layers.0.self_attn.k_proj.weight has shape (32, 32); "
        "config.json makes it (16, 32)");
}
END_TEST

START_TEST(test_refuses_unexpected_tensor) {
    expect_refusal(tensor_variant("unexpected", "llama-bf16",
                                  (TensorEdits){.extra = "model.layers.0.mlp.extra.weight"}),
                   "1 unexpected tensor for LlamaForCausalLM with this config.json: "
                   "model.layers.0.mlp.extra.weight");
    // lm_head.weight beside a tied embedding must be a copy of it
    expect_refusal(tensor_variant("untied-copy", "gpt2", (TensorEdits){.twice = "lm_head.weight"}),
                   "lm_head.weight differs from the token embedding, but config.json ties them");
    expect_refusal(
        tensor_variant("no-wte", "gpt2", (TensorEdits){.drop = "transformer.wte.weight"}),
        "tensor transformer.wte.weight is missing (GPT2LMHeadModel needs it)");
}
END_TEST

// A copy of stories260K.bin with bytes cut (delta < 0) or added.
static const char *bin_variant(const char *name, long delta) {
    static char path[4096];
    snprintf(path, sizeof(path), "%s/%s", REF, name);
    FILE *in = fopen(stories_bin(), "rb"), *out = fopen(path, "wb");
    ck_assert(in && out);
    static char buf[1 << 21];
    size_t n = fread(buf, 1, sizeof(buf), in);
    ck_assert_uint_eq(n, 1056540);
    size_t keep = delta < 0 ? n - (size_t)-delta : n;
    ck_assert(fwrite(buf, 1, keep, out) == keep);
    for (long i = 0; i < delta; i++) fputc(0, out);
    fclose(in), fclose(out);
    return path;
}

START_TEST(test_refuses_truncated_llama2c) {
    char err[2048];
    const char *p = bin_variant("short.bin", -4);
    ck_assert(llama2c_model_load(backend_cpu(), p, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err)) ==
              NULL);
    fprintf(stderr, "refused: %s\n", err);
    ck_assert_msg(strstr(err, "has 1056536 bytes") && strstr(err, "needs exactly 1056540") &&
                      strstr(err, "truncated") && strstr(err, p),
                  "%s", err);
    p = bin_variant("long.bin", 8);
    ck_assert(llama2c_model_load(backend_cpu(), p, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err)) ==
              NULL);
    ck_assert_msg(strstr(err, "has 1056548 bytes") && strstr(err, "extra bytes"), "%s", err);
    p = bin_variant("header.bin", -(1056540 - 20));
    ck_assert(llama2c_model_load(backend_cpu(), p, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err)) ==
              NULL);
    ck_assert_msg(strstr(err, "shorter than the 28-byte header"), "%s", err);
}
END_TEST

static void edit_no_architectures(json_t *j) {
    json_object_del(j, "architectures");
}

// GPT-2 as GPT2Model saves it (openai-community/gpt2): names without "transformer."; and an
// older config.json without architectures (model_type names the causal LM).
START_TEST(test_gpt2_without_prefix) {
    Model *a = load_ok(ref_path("gpt2"), 0, MODEL_INFER, 1, 1);
    Model *b = load_ok(tensor_variant("gpt2-bare", "gpt2", (TensorEdits){.strip = "transformer."}),
                       0, MODEL_INFER, 1, 1);
    check_same_params(a, b);
    Model *c = load_ok(variant("gpt2-noarch", "gpt2", edit_no_architectures), 0, MODEL_INFER, 1, 1);
    check_same_params(a, c);
    model_free(a), model_free(b), model_free(c);
}
END_TEST

int main(void) {
    int rc = require_torch();
    if (rc) return rc;
    snprintf(REF, sizeof(REF), "%s", test_tmp_path("hf-ref"));
    char args[8192];
    snprintf(args, sizeof(args), "%s %s", REF, stories_bin());
    if (run_torch_script("hf_ref.py", args) != 0) {
        fprintf(stderr, "tests/hf_ref.py failed\n");
        return 1;
    }
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gpt2_training_matches_pytorch);
    tcase_add_test(tc, test_gpt2_export_round_trip);
    tcase_add_test(tc, test_gpt2_without_prefix);
    tcase_add_test(tc, test_llama_bf16);
    tcase_add_test(tc, test_qwen2_f16);
    tcase_add_test(tc, test_reward_model);
    tcase_add_test(tc, test_stories260k);
    tcase_add_test(tc, test_logits_command);
    suite_add_tcase(s, tc);
    TCase *refuse = tcase_create("refusals");
    tcase_add_test(refuse, test_refuses_unknown_architecture);
    tcase_add_test(refuse, test_refuses_rope_scaling);
    tcase_add_test(refuse, test_refuses_sliding_window);
    tcase_add_test(refuse, test_refuses_bad_head_dim);
    tcase_add_test(refuse, test_refuses_biases);
    tcase_add_test(refuse, test_refuses_missing_tensor);
    tcase_add_test(refuse, test_refuses_wrong_shape);
    tcase_add_test(refuse, test_refuses_unexpected_tensor);
    tcase_add_test(refuse, test_refuses_truncated_llama2c);
    suite_add_tcase(s, refuse);
    return run_suite(s);
}
