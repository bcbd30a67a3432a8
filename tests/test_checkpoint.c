// tests/test_checkpoint.c: checkpoint integrity. A byte-flip sweep over a small checkpoint
// (every byte that is not tensor data, and a sample of the data) must never load something
// different from what was saved, nor crash; edits of what is read back (steps, a shape
// attribute, the recipe text) are detected; dtypes and shapes are checked before any read;
// files without a digest are refused; metrics write errors are reported by metrics_check.
#include "common/h5.h"
#include "model/checkpoint.h"
#include "train/run/metrics.h"
#include "train/run/state.h"
#include "tests/testutil.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const ModelConfig TINY = GPT2_CONFIG(1, 2, 16, 64, 16);
#define N_CURSOR 6
static const char *RECIPE = "name: tiny\nseed: 7\nstages:\n  - {name: pretrain, kind: pretrain}\n";
static const char *TOKPATH = "/data/tok300.json";

// The checkpoint every test starts from, and host copies of what a load must give back.
typedef struct {
    char path[4096];
    Model *m;
    AdamW opt;
    TrainState st;
    size_t numel;
    float *params, *mom, *vel; // (numel) each
    unsigned char *bytes;      // the file as written
    size_t size;
} Saved;

static float *random_host(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    Rng r = rng_init(seed);
    fill_uniform(x, n, &r, -1.0f, 1.0f);
    return x;
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*size);
    ck_assert_uint_eq(fread(b, 1, *size, f), *size);
    fclose(f);
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t size) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f && fwrite(b, 1, size, f) == size && fclose(f) == 0, "cannot write %s", path);
}

static void saved_make(Saved *s, const char *name) {
    *s = (Saved){0};
    snprintf(s->path, sizeof(s->path), "%s", test_tmp_path(name));
    const Backend *be = backend_cpu();
    s->m = model_create(be, TINY, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(s->m, 11);
    adamw_init(&s->opt, be, &s->m->table, (AdamWConfig){.lr = 1e-3f});
    s->numel = s->m->table.numel;
    s->params = malloc(s->numel * sizeof(float));
    be->to_host(s->params, s->m->params_mem, s->numel * sizeof(float));
    s->mom = random_host(s->numel, 12);
    s->vel = random_host(s->numel, 13);
    be->to_device(s->opt.m, s->mom, s->numel * sizeof(float));
    be->to_device(s->opt.v, s->vel, s->numel * sizeof(float));
    s->opt.step = 7;
    s->st = (TrainState){.step = 123,
                         .rng = 0x0123456789abcdefull,
                         .tokenizer = 0xfeedfacecafebeefull,
                         .n_cursor = N_CURSOR,
                         .cursor = {1, 2, 3, 4, 5, 6},
                         .n_scalars = 1,
                         .scalar_names = {"kl_coef"},
                         .scalars = {0.05},
                         .recipe = RECIPE,
                         .tokenizer_path = TOKPATH};
    StateModel sm = {"policy", s->m, &s->opt};
    char err[1024];
    ck_assert_msg(state_save(s->path, &sm, 1, &s->st, err, sizeof(err)) == 0, "%s", err);
    s->bytes = read_all(s->path, &s->size);
}

static void saved_free(Saved *s) {
    adamw_free(&s->opt);
    model_free(s->m);
    free(s->params), free(s->mom), free(s->vel), free(s->bytes);
}

// ---- loading and comparing ----------------------------------------------------------------------

typedef enum { LOAD_FAILED, LOAD_SAME, LOAD_DIFFERENT } Outcome;

static int device_equal(const float *dev, const float *want, size_t n) {
    float *x = malloc(n * sizeof(float));
    backend_cpu()->to_host(x, dev, n * sizeof(float));
    int same = memcmp(x, want, n * sizeof(float)) == 0;
    free(x);
    return same;
}

// The recipe text and tokenizer path of a file that state_load accepted.
static int extras_equal(const char *path) {
    char tok[4096] = "";
    if (state_tokenizer_path(path, tok, sizeof(tok)) != 0 || strcmp(tok, TOKPATH) != 0) return 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = f < 0 ? -1 : H5Gopen2(f, "state", H5P_DEFAULT);
    char *text = g < 0 ? NULL : h5_read_text(g, "recipe");
    int same = text && strcmp(text, RECIPE) == 0;
    free(text);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    return same;
}

// A model and optimiser to load into, made once: the sweep loads thousands of times.
typedef struct {
    Model *m;
    AdamW opt;
} Target;

static Target target_make(void) {
    Target t = {.m = model_create(backend_cpu(), TINY, MODEL_HEAD_LM, MODEL_INFER, 1, 1)};
    adamw_init(&t.opt, backend_cpu(), &t.m->table, (AdamWConfig){.lr = 1e-3f});
    return t;
}

static void target_free(Target *t) {
    adamw_free(&t->opt);
    model_free(t->m);
}

// state_load into t, compared with everything saved.
static Outcome load_state(const Saved *s, Target *t, const char *path, char *err, size_t errlen) {
    StateModel sm = {"policy", t->m, &t->opt};
    TrainState st = {.n_cursor = N_CURSOR, .n_scalars = 1, .scalar_names = {"kl_coef"}};
    if (state_load(path, &sm, 1, &st, err, errlen) != 0) return LOAD_FAILED;
    int same = st.step == s->st.step && st.rng == s->st.rng && st.complete == s->st.complete &&
               st.tokenizer == s->st.tokenizer &&
               memcmp(st.cursor, s->st.cursor, sizeof(st.cursor)) == 0 &&
               st.scalars[0] == s->st.scalars[0] && t->opt.step == s->opt.step &&
               device_equal(t->m->params_mem, s->params, s->numel) &&
               device_equal(t->opt.m, s->mom, s->numel) &&
               device_equal(t->opt.v, s->vel, s->numel) && extras_equal(path);
    return same ? LOAD_SAME : LOAD_DIFFERENT;
}

// model_load (the plain weights loader of `init:` and `generate`), compared with the saved model.
static Outcome load_weights(const Saved *s, const char *path, char *err, size_t errlen) {
    Model *m = model_load(backend_cpu(), path, 0, MODEL_INFER, 1, 1, 0, err, errlen);
    if (!m) return LOAD_FAILED;
    int same = m->heads == s->m->heads && model_config_equal(&m->cfg, &TINY) &&
               m->table.numel == s->numel && device_equal(m->params_mem, s->params, s->numel);
    model_free(m);
    return same ? LOAD_SAME : LOAD_DIFFERENT;
}

// A failed load is a detection only if its message names the file.
static int detected(Outcome o, const char *err, const char *path) {
    return o == LOAD_FAILED && strstr(err, path) != NULL;
}

// ---- the byte-flip sweep
// --------------------------------------------------------------------------

typedef struct {
    unsigned char *is_data; // (file size) 1 where a byte is stored tensor data (a chunk)
    size_t size;
    int datasets;
} DataMap;

// Marks the chunks of one dataset (addresses are relative to the HDF5 part, after the seal).
static herr_t mark_chunks(hid_t loc, const char *name, const H5O_info_t *info, void *ctx) {
    DataMap *map = ctx;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t n = 0, offset[8], size = 0;
    haddr_t addr;
    unsigned mask;
    if (H5Dget_num_chunks(ds, sp, &n) >= 0)
        for (hsize_t i = 0; i < n; i++)
            if (H5Dget_chunk_info(ds, sp, i, offset, &mask, &addr, &size) >= 0)
                for (hsize_t b = 0; b < size && H5_SEAL_BYTES + addr + b < map->size; b++)
                    map->is_data[H5_SEAL_BYTES + addr + b] = 1;
    H5Sclose(sp);
    H5Dclose(ds);
    map->datasets++;
    return 0;
}

static DataMap data_map(const Saved *s) {
    DataMap map = {.is_data = calloc(s->size, 1), .size = s->size};
    hid_t f = H5Fopen(s->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, mark_chunks, &map, H5O_INFO_BASIC);
    H5Fclose(f);
    return map;
}

typedef struct {
    int tried, detected, harmless, bad;
} Counts;

// Flips one byte of the file at path (fd open on it), loads it both ways, restores the byte.
static void flip_one(const Saved *s, Target *t, int fd, size_t at, unsigned char mask, Counts *c) {
    unsigned char b = s->bytes[at] ^ mask;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)at), 1);
    char e1[1024] = "", e2[1024] = "";
    Outcome o1 = load_state(s, t, s->path, e1, sizeof(e1));
    Outcome o2 = load_weights(s, s->path, e2, sizeof(e2));
    int ok1 = o1 == LOAD_SAME || detected(o1, e1, s->path);
    int ok2 = o2 == LOAD_SAME || detected(o2, e2, s->path);
    c->tried++;
    if (!ok1 || !ok2) {
        if (c->bad++ < 10)
            fprintf(stderr, "BAD: byte %zu ^ 0x%02x: state_load %s (%s), model_load %s (%s)\n", at,
                    mask, o1 == LOAD_DIFFERENT ? "loaded a difference" : "ok", e1,
                    o2 == LOAD_DIFFERENT ? "loaded a difference" : "ok", e2);
    } else if (o1 == LOAD_FAILED && o2 == LOAD_FAILED)
        c->detected++;
    else
        c->harmless++;
    ck_assert_int_eq(pwrite(fd, &s->bytes[at], 1, (off_t)at), 1);
}

#if defined(__SANITIZE_ADDRESS__)
enum { META_STRIDE = 3, DATA_STRIDE = 97 }; // the sanitizer build is ~5x slower: a sample
#else
enum { META_STRIDE = 1, DATA_STRIDE = 13 }; // every metadata byte, every 13th data byte
#endif

START_TEST(byte_flip_sweep) {
    Saved s;
    saved_make(&s, "ckpt-sweep.h5");
    DataMap map = data_map(&s);
    size_t data_bytes = 0;
    for (size_t i = 0; i < s.size; i++) data_bytes += map.is_data[i];
    // the map must cover the tensors: m, v and the parameters, 4 bytes per float
    ck_assert_uint_ge(data_bytes, 3 * s.numel * sizeof(float));
    int fd = open(s.path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    Counts meta = {0}, data = {0};
    Target t = target_make();
    for (size_t i = 0; i < s.size; i++) {
        // alternate whole-byte inversions with single-bit flips
        unsigned char mask = i % 2 ? 0xff : (unsigned char)(1u << (i / 2 % 8));
        if (!map.is_data[i] && i % META_STRIDE == 0) flip_one(&s, &t, fd, i, mask, &meta);
        if (map.is_data[i] && i % DATA_STRIDE == 0) flip_one(&s, &t, fd, i, mask, &data);
    }
    close(fd);
    printf("byte-flip sweep over %s (%zu bytes, %zu of them tensor data in %d datasets):\n"
           "  metadata: %d flips, %d detected, %d harmless, %d BAD\n"
           "  data:     %d flips, %d detected, %d harmless, %d BAD\n",
           s.path, s.size, data_bytes, map.datasets, meta.tried, meta.detected, meta.harmless,
           meta.bad, data.tried, data.detected, data.harmless, data.bad);
    ck_assert_int_eq(meta.bad + data.bad, 0);
    // and the untouched file still loads
    char err[1024];
    ck_assert_msg(load_state(&s, &t, s.path, err, sizeof(err)) == LOAD_SAME, "%s", err);
    target_free(&t);
    free(map.is_data);
    saved_free(&s);
}
END_TEST

// ---- edits of what is read back -----------------------------------------------------------------

typedef void (*EditFn)(hid_t f);

static void edit_state_step(hid_t f) {
    hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
    ck_assert_int_eq(h5_write_attr_i64(g, "step", 124), 0);
    H5Gclose(g);
}

static void edit_optim_step(hid_t f) {
    hid_t g = H5Gopen2(f, "optim/policy", H5P_DEFAULT);
    ck_assert_int_eq(h5_write_attr_i64(g, "step", 8), 0);
    H5Gclose(g);
}

// vocab_size 63 pads to the same table as 64: only the digest can tell.
static void edit_vocab_size(hid_t f) {
    ck_assert_int_eq(h5_write_attr_i64(f, "vocab_size", 63), 0);
}

// heads = 3 would load a fresh scalar head beside the saved weights.
static void edit_heads(hid_t f) {
    ck_assert_int_eq(h5_write_attr_i64(f, "heads", 3), 0);
}

static void edit_recipe(hid_t f) {
    hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
    ck_assert_int_ge(H5Ldelete(g, "recipe", H5P_DEFAULT), 0);
    ck_assert_int_eq(h5_write_text(g, "recipe", "name: tiny\nseed: 8\n"), 0);
    H5Gclose(g);
}

START_TEST(edits_are_detected) {
    Saved s;
    saved_make(&s, "ckpt-edits.h5");
    const struct {
        const char *what;
        EditFn fn;
    } edits[] = {{"/state@step", edit_state_step},
                 {"/optim/policy@step", edit_optim_step},
                 {"/@vocab_size", edit_vocab_size},
                 {"/@heads", edit_heads},
                 {"/state/recipe", edit_recipe}};
    const char *path = test_tmp_path("ckpt-edited.h5");
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        write_all(path, s.bytes, s.size);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        ck_assert_int_ge(f, 0);
        edits[i].fn(f);
        H5Fclose(f);
        char e1[1024] = "", e2[1024] = "";
        Target t = target_make();
        Outcome o1 = load_state(&s, &t, path, e1, sizeof(e1));
        target_free(&t);
        Outcome o2 = load_weights(&s, path, e2, sizeof(e2));
        printf("edit %s: state_load: %s\n", edits[i].what, o1 == LOAD_FAILED ? e1 : "loaded");
        ck_assert_msg(detected(o1, e1, path), "state_load accepted an edit of %s", edits[i].what);
        ck_assert_msg(detected(o2, e2, path), "model_load accepted an edit of %s", edits[i].what);
    }
    saved_free(&s);
}
END_TEST

// ---- checks before reading
// --------------------------------------------------------------------------

// A sealed weights file whose /params/wte is replaced by an array of another type or shape.
static void write_bad_wte(const char *path, hid_t type, hsize_t extra_cols) {
    Model *m = model_create(backend_cpu(), TINY, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(m, 3);
    char err[1024];
    hid_t f = h5_image_create(1 << 16);
    ck_assert_msg(model_write_h5(m, f, err, sizeof(err)) == 0, "%s", err);
    hid_t g = H5Gopen2(f, "params", H5P_DEFAULT);
    ck_assert_int_ge(H5Ldelete(g, "wte", H5P_DEFAULT), 0);
    const TensorInfo *wte = &m->table.info[0];
    hsize_t dims[2] = {(hsize_t)wte->shape[0], (hsize_t)wte->shape[1] + extra_cols};
    double *x = calloc(dims[0] * dims[1], sizeof(double));
    int rc = H5Tequal(type, H5T_IEEE_F64LE) > 0 ? h5_write_f64(g, "wte", 2, dims, x)
                                                : h5_write_f32(g, "wte", 2, dims, (float *)x);
    ck_assert_int_eq(rc, 0);
    free(x);
    H5Gclose(g);
    ck_assert_msg(h5_image_commit(f, path, err, sizeof(err)) == 0, "%s", err);
    model_free(m);
}

START_TEST(types_and_shapes_checked_before_reading) {
    const char *path = test_tmp_path("ckpt-bad-wte.h5");
    char err[1024];
    write_bad_wte(path, H5T_IEEE_F64LE, 0); // twice the bytes wte's buffer holds
    ck_assert_ptr_null(model_load(backend_cpu(), path, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, path) && strstr(err, "/params/wte is not float32"), "%s", err);
    write_bad_wte(path, H5T_IEEE_F32LE, 4); // more columns than the model has
    ck_assert_ptr_null(model_load(backend_cpu(), path, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "/params/wte is not float32 of shape (64, 16)"), "%s", err);
}
END_TEST

// An attribute stored as an array must not be read into one scalar.
START_TEST(array_attribute_refused) {
    Model *m = model_create(backend_cpu(), TINY, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(m, 3);
    const char *path = test_tmp_path("ckpt-array-attr.h5");
    char err[1024];
    hid_t f = h5_image_create(1 << 16);
    ck_assert_msg(model_write_h5(m, f, err, sizeof(err)) == 0, "%s", err);
    hid_t g = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 64;
    int64_t steps[64] = {0};
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(g, "step", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, steps);
    H5Aclose(a), H5Sclose(sp);
    h5_write_attr_i64(g, "rng", 1), h5_write_attr_i64(g, "complete", 0);
    h5_write_attr_str(g, "tokenizer", "0000000000000001");
    H5Gclose(g);
    ck_assert_msg(h5_image_commit(f, path, err, sizeof(err)) == 0, "%s", err);
    StateModel sm = {"policy", m, NULL};
    TrainState st = {0};
    ck_assert_int_ne(state_load(path, &sm, 1, &st, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, path) && strstr(err, "/state"), "%s", err);
    model_free(m);
}
END_TEST

// ---- files without a digest, and failed saves --------------------------------------------------

START_TEST(unsealed_file_refused) {
    Model *m = model_create(backend_cpu(), TINY, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(m, 5);
    const char *path = test_tmp_path("ckpt-unsealed.h5");
    char err[1024];
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); // as layercake once did
    ck_assert_msg(model_write_h5(m, f, err, sizeof(err)) == 0, "%s", err);
    hid_t g = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5_write_attr_i64(g, "complete", 1);
    H5Gclose(g);
    H5Fclose(f);
    ck_assert_ptr_null(model_load(backend_cpu(), path, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, path) && strstr(err, "no digest"), "%s", err);
    StateModel sm = {"policy", m, NULL};
    TrainState st = {0};
    ck_assert_int_ne(state_load(path, &sm, 1, &st, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "no digest"), "%s", err);
    // a finished stage of an older run stays finished: rerunning it would replace its model
    ck_assert_int_eq(state_is_complete(path), 1);
    setenv("LC_ACCEPT_UNSEALED", "1", 1);
    Model *l = model_load(backend_cpu(), path, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    unsetenv("LC_ACCEPT_UNSEALED");
    ck_assert_msg(l != NULL, "%s", err);
    model_free(l);
    model_free(m);
}
END_TEST

START_TEST(failed_save_leaves_nothing) {
    Model *m = model_create(backend_cpu(), TINY, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    model_init_weights(m, 5);
    char path[4200], err[1024];
    snprintf(path, sizeof(path), "%s/no-such-folder/final.h5", test_tmp_path("ckpt-save"));
    ck_assert_int_ne(model_save(m, path, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, path) && strstr(err, "No such file"), "%s", err);
    model_free(m);
}
END_TEST

// ---- metrics write errors
// ------------------------------------------------------------------------

// metrics.jsonl as a link to /dev/full: every write fails with ENOSPC.
START_TEST(metrics_disk_full) {
    const char *dir = test_tmp_path("metrics-full");
    char path[4200], err[1024];
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/metrics.jsonl", dir);
    unlink(path);
    ck_assert_int_eq(symlink("/dev/full", path), 0);
    Metrics *m = metrics_open(dir, -1, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_eq(metrics_check(m, err, sizeof(err)), 0);
    metrics_begin(m, 1);
    metrics_add(m, "loss", 1.5);
    metrics_end(m);
    ck_assert_int_eq(metrics_check(m, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, path) && strstr(err, "disk full"), "%s", err);
    metrics_begin(m, 2); // the first error stays
    metrics_end(m);
    ck_assert_int_eq(metrics_check(m, err, sizeof(err)), -1);
    metrics_close(m);
    unlink(path);
}
END_TEST

START_TEST(metrics_ok) {
    const char *dir = test_tmp_path("metrics-ok");
    char err[1024];
    mkdir(dir, 0755);
    Metrics *m = metrics_open(dir, -1, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    metrics_begin(m, 1);
    metrics_add(m, "loss", 1.5);
    metrics_end(m);
    ck_assert_int_eq(metrics_check(m, err, sizeof(err)), 0);
    metrics_close(m);
}
END_TEST

int main(void) {
    h5_quiet();
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("integrity");
    tcase_add_test(tc, byte_flip_sweep);
    tcase_add_test(tc, edits_are_detected);
    tcase_add_test(tc, types_and_shapes_checked_before_reading);
    tcase_add_test(tc, array_attribute_refused);
    tcase_add_test(tc, unsealed_file_refused);
    tcase_add_test(tc, failed_save_leaves_nothing);
    suite_add_tcase(s, tc);
    TCase *mt = tcase_create("metrics");
    tcase_add_test(mt, metrics_disk_full);
    tcase_add_test(mt, metrics_ok);
    suite_add_tcase(s, mt);
    return run_suite(s);
}
