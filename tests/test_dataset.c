// tests/test_dataset.c: the HDF5 dataset layer: a write/read round trip of every kind
// (including arrays longer than one chunk), files written by h5py (the example in
// docs/datasets.md, run as it stands) and the reader's error for each kind of broken file.
#include "data/dataset.h"
#include "tests/data_fixtures.h"
#include "tests/testutil.h"
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void assert_ints(const int *got, const int *want, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s[%lld]: got %d want %d", what, (long long)i, got[i],
                      want[i]);
}

static Dataset *open_ok(const char *path, DataKind kind, int vocab_size) {
    char err[512];
    Dataset *ds = dataset_open(path, kind, err, sizeof(err));
    ck_assert_msg(ds != NULL, "%s", err);
    ck_assert_msg(dataset_load(ds, vocab_size, err, sizeof(err)) == 0, "%s", err);
    return ds;
}

// ---- round trips ---------------------------------------------------------------------------

START_TEST(roundtrip_lm) {
    const char *path = test_tmp_path("rt_lm.h5");
    fix_write(path, DATA_LM, 40);
    Dataset *ds = open_ok(path, DATA_LM, FIX_VOCAB);
    ck_assert_int_eq(ds->kind, DATA_LM);
    ck_assert_int_eq(ds->n, 40);
    ck_assert_uint_eq(ds->fingerprint, FIX_FP);
    int64_t total = 0;
    int tok[FIX_MAX];
    for (int i = 0; i < 40; i++) {
        Example want = fix_lm_doc(i, tok), got = dataset_example(ds, i);
        ck_assert_int_eq(got.n_tokens, want.n_tokens);
        assert_ints(got.tokens, want.tokens, want.n_tokens, "lm tokens");
        total += want.n_tokens;
    }
    ck_assert_int_eq(ds->n_tokens, total);
    dataset_free(ds);
}
END_TEST

START_TEST(roundtrip_sft) {
    const char *path = test_tmp_path("rt_sft.h5");
    fix_write(path, DATA_SFT, 25);
    Dataset *ds = open_ok(path, DATA_SFT, FIX_VOCAB);
    ck_assert_int_eq(ds->n, 25);
    int tok[FIX_MAX];
    uint8_t mask[FIX_MAX];
    for (int i = 0; i < 25; i++) {
        Example want = fix_sft(i, tok, mask), got = dataset_example(ds, i);
        ck_assert_int_eq(got.n_tokens, want.n_tokens);
        assert_ints(got.tokens, want.tokens, want.n_tokens, "sft tokens");
        ck_assert_mem_eq(got.loss_mask, want.loss_mask, (size_t)want.n_tokens);
    }
    dataset_free(ds);
}
END_TEST

START_TEST(roundtrip_preference) {
    const char *path = test_tmp_path("rt_pref.h5");
    fix_write(path, DATA_PREFERENCE, 30);
    Dataset *ds = open_ok(path, DATA_PREFERENCE, FIX_VOCAB);
    ck_assert_int_eq(ds->n, 30);
    int p[FIX_MAX], c[FIX_MAX], r[FIX_MAX];
    int64_t total = 0;
    for (int i = 0; i < 30; i++) {
        Example want = fix_pref(i, p, c, r), got = dataset_example(ds, i);
        ck_assert_int_eq(got.n_tokens, want.n_tokens);
        ck_assert_int_eq(got.n_chosen, want.n_chosen);
        ck_assert_int_eq(got.n_rejected, want.n_rejected);
        assert_ints(got.tokens, want.tokens, want.n_tokens, "prompt");
        assert_ints(got.chosen, want.chosen, want.n_chosen, "chosen");
        assert_ints(got.rejected, want.rejected, want.n_rejected, "rejected");
        total += want.n_tokens + want.n_chosen + want.n_rejected;
    }
    ck_assert_int_eq(ds->n_tokens, total);
    dataset_free(ds);
}
END_TEST

START_TEST(roundtrip_prompt) {
    const char *path = test_tmp_path("rt_prompt.h5");
    fix_write(path, DATA_PROMPT, 10);
    Dataset *ds = open_ok(path, DATA_PROMPT, FIX_VOCAB);
    ck_assert_int_eq(ds->n, 10);
    int p[FIX_MAX], ref[FIX_MAX];
    char text[FIX_MAX];
    for (int i = 0; i < 10; i++) {
        Example want = fix_prompt(i, p, ref, text), got = dataset_example(ds, i);
        assert_ints(got.tokens, want.tokens, want.n_tokens, "prompt");
        ck_assert_int_eq(got.n_reference, want.n_reference);
        assert_ints(got.reference, want.reference, want.n_reference, "reference");
        ck_assert_int_eq(got.n_reference_text, want.n_reference_text);
        if (want.n_reference_text)
            ck_assert_mem_eq(got.reference_text, want.reference_text,
                             (size_t)want.n_reference_text);
    }
    dataset_free(ds);
}
END_TEST

START_TEST(roundtrip_unpaired) {
    const char *path = test_tmp_path("rt_unpaired.h5");
    fix_write(path, DATA_UNPAIRED, 30);
    Dataset *ds = open_ok(path, DATA_UNPAIRED, FIX_VOCAB);
    ck_assert_int_eq(ds->n, 30);
    int p[FIX_MAX], c[FIX_MAX];
    int64_t total = 0;
    for (int i = 0; i < 30; i++) {
        Example want = fix_unpaired(i, p, c), got = dataset_example(ds, i);
        assert_ints(got.tokens, want.tokens, want.n_tokens, "prompt");
        ck_assert_int_eq(got.n_completion, want.n_completion);
        assert_ints(got.completion, want.completion, want.n_completion, "completion");
        ck_assert_int_eq(got.label, i % 3 != 1);
        total += want.n_tokens + want.n_completion;
    }
    ck_assert_int_eq(ds->n_tokens, total);
    dataset_free(ds);
    // a label other than 0 or 1 is refused on load, naming the array and index
    char err[512];
    DatasetWriter *w = dataset_create(path, DATA_UNPAIRED, FIX_FP, err, sizeof(err));
    ck_assert_msg(w, "%s", err);
    for (int i = 0; i < 3; i++) {
        Example ex = fix_unpaired(i, p, c);
        ex.label = i == 2 ? 2 : ex.label;
        ck_assert_msg(dataset_append(w, &ex, err, sizeof(err)) == 0, "%s", err);
    }
    ck_assert_msg(dataset_close(w, err, sizeof(err)) == 0, "%s", err);
    ds = dataset_open(path, DATA_UNPAIRED, err, sizeof(err));
    ck_assert_msg(ds, "%s", err);
    ck_assert_int_eq(dataset_load(ds, FIX_VOCAB, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "array 'label' holds 2 at index 2, expected 0 or 1"), "%s", err);
    dataset_free(ds);
}
END_TEST

// One example longer than a chunk (65,536 values) and a ranged read across chunk borders.
START_TEST(roundtrip_multi_chunk) {
    const char *path = test_tmp_path("rt_big.h5");
    enum { N = 200003 };
    int *tok = malloc(N * sizeof(int));
    for (int i = 0; i < N; i++) tok[i] = (i * 7) % FIX_VOCAB;
    char err[512];
    DatasetWriter *w = dataset_create(path, DATA_LM, FIX_FP, err, sizeof(err));
    ck_assert_msg(w != NULL, "%s", err);
    Example small = {.tokens = tok, .n_tokens = 3}, big = {.tokens = tok + 3, .n_tokens = N - 3};
    ck_assert(dataset_append(w, &small, err, sizeof(err)) == 0);
    ck_assert(dataset_append(w, &big, err, sizeof(err)) == 0);
    ck_assert_msg(dataset_close(w, err, sizeof(err)) == 0, "%s", err);
    Dataset *ds = dataset_open(path, DATA_LM, err, sizeof(err));
    ck_assert_msg(ds != NULL, "%s", err);
    ck_assert_int_eq(ds->n_tokens, N);
    ck_assert_int_eq(ds->tokens.off[1], 3);
    int got[1000];
    ck_assert(dataset_read_tokens(ds, 65000, 1000, got, FIX_VOCAB, err, sizeof(err)) == 0);
    assert_ints(got, tok + 65000, 1000, "range");
    ck_assert(dataset_load(ds, FIX_VOCAB, err, sizeof(err)) == 0);
    assert_ints(ds->tokens.ids, tok, N, "all");
    dataset_free(ds);
    free(tok);
}
END_TEST

START_TEST(empty_dataset) {
    const char *path = test_tmp_path("rt_empty.h5");
    fix_write(path, DATA_PREFERENCE, 0);
    Dataset *ds = open_ok(path, DATA_PREFERENCE, FIX_VOCAB);
    ck_assert_int_eq(ds->n, 0);
    ck_assert_int_eq(ds->n_tokens, 0);
    dataset_free(ds);
}
END_TEST

// An aborted writer leaves neither the partial nor the final file.
START_TEST(abort_removes_partial) {
    const char *path = test_tmp_path("aborted.h5");
    char err[512];
    char *partial = fix_join(path, ".partial", NULL);
    unlink(path);
    DatasetWriter *w = dataset_create(path, DATA_SFT, FIX_FP, err, sizeof(err));
    ck_assert_msg(w != NULL, "%s", err);
    ck_assert_int_eq(access(partial, F_OK), 0);
    dataset_abort(w);
    ck_assert_int_ne(access(partial, F_OK), 0);
    ck_assert_int_ne(access(path, F_OK), 0);
    free(partial);
}
END_TEST

// ---- errors --------------------------------------------------------------------------------

static void expect_open_error(const char *path, DataKind kind, const char *want) {
    char err[512] = "";
    Dataset *ds = dataset_open(path, kind, err, sizeof(err));
    if (ds && dataset_load(ds, FIX_VOCAB, err, sizeof(err)) == 0) {
        dataset_free(ds);
        ck_abort_msg("%s opened without error, expected '%s'", path, want);
    }
    dataset_free(ds);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "error '%s' does not name %s", err, path);
}

START_TEST(wrong_kind) {
    const char *path = test_tmp_path("kind_sft.h5");
    fix_write(path, DATA_SFT, 3);
    char err[512];
    ck_assert(dataset_open(path, DATA_PREFERENCE, err, sizeof(err)) == NULL);
    char *want = fix_join(path, ": kind is 'sft', expected 'preference'", NULL);
    ck_assert_str_eq(err, want);
    free(want);
}
END_TEST

START_TEST(fingerprint_mismatch) {
    const char *path = test_tmp_path("fp.h5");
    fix_write(path, DATA_LM, 2);
    char err[512];
    Dataset *ds = dataset_open(path, DATA_LM, err, sizeof(err));
    ck_assert_msg(ds != NULL, "%s", err);
    ck_assert_int_eq(dataset_check_fingerprint(ds, FIX_FP, err, sizeof(err)), 0);
    ck_assert_int_eq(dataset_check_fingerprint(ds, 0xfedcba9876543210ull, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "0123456789abcdef") && strstr(err, "fedcba9876543210"),
                  "error '%s' does not name both fingerprints", err);
    dataset_free(ds);
}
END_TEST

START_TEST(missing_and_not_hdf5) {
    expect_open_error(test_tmp_path("does-not-exist.h5"), DATA_LM, "cannot open");
    const char *path = test_tmp_path("text.h5");
    FILE *f = fopen(path, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    expect_open_error(path, DATA_LM, "not an HDF5 file");
}
END_TEST

// h5py-written broken files, each with the error it must produce.
static const struct {
    const char *file;
    DataKind kind;
    const char *error;
} BROKEN[] = {
    {"bad_version.h5", DATA_SFT, "attribute 'version' is 2, this layercake reads version 1"},
    {"bad_kind.h5", DATA_KIND_COUNT, "attribute 'kind' is 'chat', expected lm, sft"},
    {"bad_format.h5", DATA_SFT, "attribute 'format' is 'something-else'"},
    {"no_format.h5", DATA_SFT, "attribute 'format' is missing"},
    {"bad_fingerprint.h5", DATA_SFT, "attribute 'tokenizer' is 'xyz', expected 16 hex digits"},
    {"decreasing.h5", DATA_SFT, "array 'offsets' decreases at index 2 (3 -> 2)"},
    {"short_end.h5", DATA_SFT, "array 'offsets' ends at 3 but 'tokens' has 4 values"},
    {"float_tokens.h5", DATA_SFT, "array 'tokens' must be a 1-D integer array"},
    {"two_d.h5", DATA_SFT, "array 'tokens' must be a 1-D integer array"},
    {"bad_ids.h5", DATA_SFT, "array 'tokens' holds token id -5 at index 1"},
    {"bad_mask.h5", DATA_SFT, "array 'loss_mask' holds 2 at index 1"},
    {"mask_length.h5", DATA_SFT, "array 'loss_mask' has 3 values, 'tokens' has 4"},
    {"missing_array.h5", DATA_PREFERENCE, "array 'rejected_offsets' is missing"},
    {"count_mismatch.h5", DATA_PREFERENCE, "array 'chosen_offsets' has 2 entries, expected 3"},
    {"label_length.h5", DATA_UNPAIRED, "array 'label' has 3 values, expected 2 (one per example)"},
};

static void h5py_run(const char *script, const char *dir) {
    char *cmd = fix_join(LC_PYTHON, " ", script, " ", dir, NULL);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "failed: %s (needs python3-h5py)", cmd);
    free(cmd);
}

START_TEST(h5py_broken_files) {
    const char *dir = test_tmp_path("h5py-broken");
    mkdir(dir, 0755);
    char *script = fix_join(LC_SOURCE_DIR, "/", "tests/h5py_malformed.py", NULL);
    h5py_run(script, dir);
    free(script);
    for (size_t i = 0; i < sizeof(BROKEN) / sizeof(BROKEN[0]); i++) {
        char *path = fix_join(dir, "/", BROKEN[i].file, NULL);
        expect_open_error(path, BROKEN[i].kind, BROKEN[i].error);
        free(path);
    }
    char *path = fix_join(dir, "/", "fixed_strings.h5", NULL);
    Dataset *ds = open_ok(path, DATA_SFT, FIX_VOCAB);
    ck_assert_uint_eq(ds->fingerprint, FIX_FP);
    ck_assert_int_eq(ds->n, 2);
    dataset_free(ds);
    free(path);
}
END_TEST

// Extracts the first ```python block of docs/datasets.md into a script file.
static void docs_example_extract(const char *out) {
    char *md = fix_join(LC_SOURCE_DIR, "/", "docs/datasets.md", NULL);
    FILE *in = fopen(md, "r"), *py = fopen(out, "w");
    ck_assert(in && py);
    char line[1024];
    int inside = 0, lines = 0;
    while (fgets(line, sizeof(line), in)) {
        if (!inside && strncmp(line, "```python", 9) == 0) {
            inside = 1;
        } else if (inside && strncmp(line, "```", 3) == 0) {
            break;
        } else if (inside) {
            fputs(line, py);
            lines++;
        }
    }
    fclose(in);
    fclose(py);
    ck_assert_msg(lines > 10, "no python example found in %s", md);
    free(md);
}

START_TEST(h5py_docs_example) {
    const char *dir = test_tmp_path("h5py-docs");
    mkdir(dir, 0755);
    char *script = fix_join(dir, "/", "example.py", NULL);
    docs_example_extract(script);
    h5py_run(script, dir);
    free(script);

    char *path = fix_join(dir, "/", "sft.h5", NULL);
    Dataset *ds = open_ok(path, DATA_SFT, 50257);
    free(path);
    ck_assert_int_eq(ds->n, 2);
    Example ex = dataset_example(ds, 1);
    const int want[] = {40, 588, 290, 345, 30, 50256};
    const uint8_t want_mask[] = {0, 0, 1, 1, 1, 1};
    ck_assert_int_eq(ex.n_tokens, 6);
    assert_ints(ex.tokens, want, 6, "sft tokens");
    ck_assert_mem_eq(ex.loss_mask, want_mask, 6);
    dataset_free(ds);

    path = fix_join(dir, "/", "pref.h5", NULL);
    ds = open_ok(path, DATA_PREFERENCE, 50257);
    free(path);
    ck_assert_int_eq(ds->n, 2);
    ex = dataset_example(ds, 0);
    const int prompt[] = {464, 3139, 286}, chosen[] = {6342, 13, 50256}, rejected[] = {3363, 50256};
    ck_assert_int_eq(ex.n_tokens, 3);
    ck_assert_int_eq(ex.n_chosen, 3);
    ck_assert_int_eq(ex.n_rejected, 2);
    assert_ints(ex.tokens, prompt, 3, "prompt");
    assert_ints(ex.chosen, chosen, 3, "chosen");
    assert_ints(ex.rejected, rejected, 2, "rejected");
    dataset_free(ds);

    path = fix_join(dir, "/", "unpaired.h5", NULL);
    ds = open_ok(path, DATA_UNPAIRED, 50257);
    free(path);
    ck_assert_int_eq(ds->n, 3);
    ex = dataset_example(ds, 2);
    ck_assert_int_eq(ex.label, 0);
    ck_assert_int_eq(ex.n_completion, 2);
    assert_ints(ex.tokens, prompt, 3, "unpaired prompt");
    assert_ints(ex.completion, rejected, 2, "unpaired completion");
    ck_assert_int_eq(dataset_example(ds, 0).label, 1);
    dataset_free(ds);
}
END_TEST

START_TEST(vocab_check) {
    const char *path = test_tmp_path("vocab.h5");
    fix_write(path, DATA_SFT, 4);
    char err[512];
    Dataset *ds = dataset_open(path, DATA_SFT, err, sizeof(err));
    ck_assert(ds != NULL);
    ck_assert_int_eq(dataset_load(ds, 500, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "outside the vocabulary (0..499)"), "%s", err);
    dataset_free(ds);
}
END_TEST

// Writes an lm dataset whose tokens are stored as int64 (as h5py code may write them).
static void write_i64_lm(const char *path, const int64_t *ids, hsize_t n) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const char *attrs[][2] = {
        {"format", DATASET_FORMAT}, {"kind", "lm"}, {"tokenizer", "0123456789abcdef"}};
    for (int i = 0; i < 3; i++) {
        hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
        H5Tset_size(type, strlen(attrs[i][1]));
        hid_t a = H5Acreate2(f, attrs[i][0], type, space, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert(a >= 0 && H5Awrite(a, type, attrs[i][1]) >= 0);
        H5Aclose(a), H5Sclose(space), H5Tclose(type);
    }
    int64_t version = DATASET_VERSION, off[2] = {0, (int64_t)n};
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "version", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(H5Awrite(a, H5T_NATIVE_INT64, &version) >= 0);
    H5Aclose(a), H5Sclose(space);
    hsize_t two = 2;
    const struct {
        const char *name;
        const int64_t *v;
        hsize_t n;
    } arrays[] = {{"tokens", ids, n}, {"offsets", off, two}};
    for (int i = 0; i < 2; i++) {
        space = H5Screate_simple(1, &arrays[i].n, NULL);
        hid_t d = H5Dcreate2(f, arrays[i].name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
        ck_assert(d >= 0 &&
                  H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, arrays[i].v) >= 0);
        H5Dclose(d), H5Sclose(space);
    }
    H5Fclose(f);
}

// An id that does not fit an int is reported as stored, by the load and by the check at open,
// with or without a vocabulary to check against.
START_TEST(int64_ids_reported_as_stored) {
    const int64_t big[] = {1, 2, 5000000000LL, 3}, neg[] = {1, -5000000000LL, 3};
    const struct {
        const int64_t *ids;
        hsize_t n;
        const char *want;
    } cases[] = {{big, 4, "holds token id 5000000000 at index 2"},
                 {neg, 3, "holds token id -5000000000 at index 1"}};
    const char *path = test_tmp_path("i64_ids.h5");
    char err[512];
    for (int c = 0; c < 2; c++)
        for (int vocab = 0; vocab <= FIX_VOCAB; vocab += FIX_VOCAB) {
            write_i64_lm(path, cases[c].ids, cases[c].n);
            Dataset *ds = dataset_open(path, DATA_LM, err, sizeof(err));
            ck_assert_msg(ds != NULL, "%s", err);
            err[0] = '\0';
            ck_assert_int_eq(dataset_check_tokens(ds, vocab, err, sizeof(err)), -1);
            ck_assert_msg(strstr(err, cases[c].want), "vocab %d: '%s' lacks '%s'", vocab, err,
                          cases[c].want);
            err[0] = '\0';
            ck_assert_int_eq(dataset_load(ds, vocab, err, sizeof(err)), -1);
            ck_assert_msg(strstr(err, cases[c].want), "vocab %d: '%s' lacks '%s'", vocab, err,
                          cases[c].want);
            dataset_free(ds);
        }
}
END_TEST

// dataset_check_tokens reads the whole array, chunk by chunk: a bad id in a later chunk is
// found and named by its index in the file.
START_TEST(check_tokens_every_chunk) {
    const char *path = test_tmp_path("check_chunks.h5");
    char err[512];
    DatasetWriter *w = dataset_create(path, DATA_LM, FIX_FP, err, sizeof(err));
    ck_assert_msg(w, "%s", err);
    enum { N = 150000, BAD = 140001 };
    int *ids = malloc(N * sizeof(int));
    for (int i = 0; i < N; i++) ids[i] = i == BAD ? FIX_VOCAB + 7 : i % FIX_VOCAB;
    Example ex = {.tokens = ids, .n_tokens = N};
    ck_assert_msg(dataset_append(w, &ex, err, sizeof(err)) == 0 &&
                      dataset_close(w, err, sizeof(err)) == 0,
                  "%s", err);
    free(ids);
    Dataset *ds = dataset_open(path, DATA_LM, err, sizeof(err));
    ck_assert_msg(ds, "%s", err);
    ck_assert_int_eq(dataset_check_tokens(ds, 0, err, sizeof(err)), 0);
    ck_assert_int_eq(dataset_check_tokens(ds, FIX_VOCAB, err, sizeof(err)), -1);
    ck_assert_msg(
        strstr(err, "holds token id 1007 at index 140001, outside the vocabulary (0..999)"), "%s",
        err);
    dataset_free(ds);
}
END_TEST

START_TEST(kind_names) {
    DataKind k;
    for (int i = 0; i < DATA_KIND_COUNT; i++) {
        ck_assert_int_eq(data_kind_parse(data_kind_name((DataKind)i), &k), 0);
        ck_assert_int_eq(k, i);
    }
    ck_assert_int_eq(data_kind_parse("chat", &k), -1);
    char hex[17];
    dataset_fingerprint_hex(0xabcull, hex);
    ck_assert_str_eq(hex, "0000000000000abc");
}
END_TEST

int main(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_test(tc, roundtrip_lm);
    tcase_add_test(tc, roundtrip_sft);
    tcase_add_test(tc, roundtrip_preference);
    tcase_add_test(tc, roundtrip_prompt);
    tcase_add_test(tc, roundtrip_unpaired);
    tcase_add_test(tc, roundtrip_multi_chunk);
    tcase_add_test(tc, empty_dataset);
    tcase_add_test(tc, abort_removes_partial);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, wrong_kind);
    tcase_add_test(tc, fingerprint_mismatch);
    tcase_add_test(tc, missing_and_not_hdf5);
    tcase_add_test(tc, h5py_broken_files);
    tcase_add_test(tc, h5py_docs_example);
    tcase_add_test(tc, vocab_check);
    tcase_add_test(tc, int64_ids_reported_as_stored);
    tcase_add_test(tc, check_tokens_every_chunk);
    tcase_add_test(tc, kind_names);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
