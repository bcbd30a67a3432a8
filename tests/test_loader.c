// tests/test_loader.c: the batch loaders: coverage (every unit exactly once per epoch on one
// and on two ranks), per-epoch shuffling, exact resumption from a saved cursor, and the row
// contract of each kind (lm windows, sft loss masks, packing segments and positions,
// preference row pairs and response starts, prompt rows, unpaired rows and their mismatched
// rows) on the fixtures of data_fixtures.h.
#include "data/loader.h"
#include "tests/data_fixtures.h"
#include "tests/testutil.h"
#include <stdlib.h>
#include <string.h>

enum { N_LM = 40, N_EX = 37 };

static LoaderOptions opts(int batch, int T, int rank, int world) {
    return (LoaderOptions){.batch = batch,
                           .T = T,
                           .rank = rank,
                           .world = world,
                           .seed = 1234,
                           .shuffle = 1,
                           .vocab_size = FIX_VOCAB,
                           .fingerprint = FIX_FP};
}

static Loader *open_ok(const char *path, DataKind kind, const LoaderOptions *o) {
    char err[512];
    Loader *l = loader_open(path, kind, o, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    return l;
}

static const char *fixture(DataKind kind) {
    static const char *names[DATA_KIND_COUNT] = {"ld_lm.h5", "ld_sft.h5", "ld_pref.h5",
                                                 "ld_prompt.h5", "ld_unpaired.h5"};
    const char *path = test_tmp_path(names[kind]);
    fix_write(path, kind, kind == DATA_LM ? N_LM : N_EX);
    return path;
}

static int next_ok(Loader *l, Batch *b) {
    int n = loader_next(l, b);
    ck_assert_msg(n >= 0, "%s", loader_error(l));
    return n;
}

// Adds one to count[i] for every unit i in the batch just returned (preference: once per
// pair; unpaired: the first half, the examples; packed rows: once per segment).
static int batch_count(const Loader *l, const Batch *b, int *count, int64_t n) {
    int seen = 0;
    DataKind kind = loader_dataset(l)->kind;
    int step = kind == DATA_PREFERENCE ? 2 : 1, rows = kind == DATA_UNPAIRED ? b->B / 2 : b->B;
    for (int r = 0; r < rows; r += step)
        for (int s = 0; s < b->T; s++) {
            int64_t i = loader_example_index(l, r, s);
            if (i < 0) break;
            ck_assert(i < n);
            count[i]++;
            seen++;
        }
    return seen;
}

// ---- coverage ------------------------------------------------------------------------------

// Runs one epoch on each of `world` ranks and checks every unit comes exactly once overall.
static void check_epoch_coverage(const char *path, DataKind kind, int world, int pack, int epochs) {
    Loader *l[2];
    for (int r = 0; r < world; r++) {
        LoaderOptions o = opts(3, 16, r, world);
        o.pack = pack;
        l[r] = open_ok(path, kind, &o);
    }
    int64_t n = loader_units(l[0]);
    int *count = calloc((size_t)n, sizeof(int));
    for (int e = 0; e < epochs; e++) {
        memset(count, 0, (size_t)n * sizeof(int));
        int64_t steps = loader_steps_per_epoch(l[0]);
        for (int r = 0; r < world; r++) {
            ck_assert_int_eq(loader_steps_per_epoch(l[r]), steps);
            for (int64_t s = 0; s < steps; s++) {
                Batch b;
                int units = next_ok(l[r], &b);
                int seen = batch_count(l[r], &b, count, n);
                if (!pack) ck_assert_int_eq(seen, units);
            }
            ck_assert_int_eq(loader_state(l[r]).epoch, e);
        }
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg(count[i] == 1, "%s world %d epoch %d: unit %lld seen %d times",
                          data_kind_name(kind), world, e, (long long)i, count[i]);
    }
    free(count);
    for (int r = 0; r < world; r++) loader_free(l[r]);
}

START_TEST(once_per_epoch) {
    for (int k = 0; k < DATA_KIND_COUNT; k++) {
        const char *path = fixture((DataKind)k);
        for (int world = 1; world <= 2; world++) check_epoch_coverage(path, k, world, 0, 2);
    }
    const char *path = fixture(DATA_SFT);
    for (int world = 1; world <= 2; world++) check_epoch_coverage(path, DATA_SFT, world, 1, 2);
}
END_TEST

// Lists the example indices of one epoch, in order.
static void epoch_order(Loader *l, int64_t *order) {
    int k = 0;
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        for (int r = 0; r < b.B; r++)
            if (loader_example_index(l, r, 0) >= 0) order[k++] = loader_example_index(l, r, 0);
    }
    ck_assert_int_eq(k, N_EX);
}

START_TEST(shuffle_per_epoch) {
    const char *path = fixture(DATA_SFT);
    LoaderOptions o = opts(4, 16, 0, 1);
    Loader *a = open_ok(path, DATA_SFT, &o), *b = open_ok(path, DATA_SFT, &o);
    int64_t e0[N_EX], e1[N_EX], again[N_EX], ident[N_EX];
    epoch_order(a, e0);
    epoch_order(a, e1);
    epoch_order(b, again);
    ck_assert_msg(memcmp(e0, e1, sizeof(e0)) != 0, "epochs 0 and 1 have the same order");
    ck_assert_msg(memcmp(e0, again, sizeof(e0)) == 0, "same seed, different order");
    o.seed = 99;
    Loader *c = open_ok(path, DATA_SFT, &o);
    epoch_order(c, again);
    ck_assert_msg(memcmp(e0, again, sizeof(e0)) != 0, "seeds 1234 and 99 give the same order");
    o.shuffle = 0;
    Loader *d = open_ok(path, DATA_SFT, &o);
    epoch_order(d, ident);
    for (int i = 0; i < N_EX; i++) ck_assert_int_eq(ident[i], i);
    loader_free(a);
    loader_free(b);
    loader_free(c);
    loader_free(d);
}
END_TEST

// ---- cursor --------------------------------------------------------------------------------

static void assert_batches_equal(const Loader *la, const Batch *a, const Loader *lb,
                                 const Batch *b) {
    size_t n = (size_t)a->B * (size_t)a->T;
    ck_assert_int_eq(a->B, b->B);
    ck_assert_mem_eq(a->tokens, b->tokens, n * sizeof(int));
    ck_assert_mem_eq(a->targets, b->targets, n * sizeof(int));
    ck_assert_mem_eq(a->mask, b->mask, n * sizeof(float));
    ck_assert_mem_eq(a->pos, b->pos, n * sizeof(int));
    ck_assert_mem_eq(a->seg, b->seg, n * sizeof(int));
    ck_assert_mem_eq(a->len, b->len, (size_t)a->B * sizeof(int));
    ck_assert_mem_eq(loader_response_start(la), loader_response_start(lb),
                     (size_t)a->B * sizeof(int));
    for (int r = 0; r < a->B; r++)
        ck_assert_int_eq(loader_example_index(la, r, 0), loader_example_index(lb, r, 0));
}

// Takes `before` steps, saves the cursor, restores it into a fresh loader, and compares the
// next `after` batches of both bit for bit.
static void check_resume(const char *path, DataKind kind, int pack, int rank, int world, int before,
                         int after) {
    LoaderOptions o = opts(2, 12, rank, world);
    o.pack = pack;
    Loader *a = open_ok(path, kind, &o);
    Batch ba, bb;
    for (int i = 0; i < before; i++) next_ok(a, &ba);
    LoaderState s = loader_state(a);
    Loader *b = open_ok(path, kind, &o);
    char err[512];
    ck_assert_msg(loader_restore(b, &s, err, sizeof(err)) == 0, "%s", err);
    for (int i = 0; i < after; i++) {
        ck_assert_int_eq(next_ok(a, &ba), next_ok(b, &bb));
        assert_batches_equal(a, &ba, b, &bb);
    }
    LoaderState sa = loader_state(a), sb = loader_state(b);
    ck_assert_mem_eq(&sa, &sb, sizeof(sa));
    loader_free(a);
    loader_free(b);
}

START_TEST(cursor_resumes_exactly) {
    for (int k = 0; k < DATA_KIND_COUNT; k++) {
        const char *path = fixture((DataKind)k);
        check_resume(path, k, 0, 0, 1, 3, 25);  // mid-epoch, then across epochs
        check_resume(path, k, 0, 1, 2, 11, 20); // rank 1 of 2, past an epoch boundary
    }
    check_resume(fixture(DATA_SFT), DATA_SFT, 1, 0, 1, 2, 12);
}
END_TEST

START_TEST(cursor_rejects_other_stream) {
    const char *path = fixture(DATA_SFT);
    LoaderOptions o = opts(2, 12, 0, 1);
    Loader *a = open_ok(path, DATA_SFT, &o);
    LoaderState s = loader_state(a);
    o.batch = 3;
    Loader *b = open_ok(path, DATA_SFT, &o);
    char err[512];
    ck_assert_int_eq(loader_restore(b, &s, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "belongs to another stream") && strstr(err, "batch 2"), "%s", err);
    s = loader_state(b);
    s.step = 1000;
    ck_assert_int_eq(loader_restore(b, &s, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "step 1000"), "%s", err);
    loader_free(a);
    loader_free(b);
}
END_TEST

// ---- row contracts -------------------------------------------------------------------------

static void assert_padding(const Batch *b, int r) {
    for (int t = b->len[r]; t < b->T; t++) {
        size_t i = (size_t)r * b->T + t;
        ck_assert_int_eq(b->targets[i], -1);
        ck_assert(b->mask[i] == 0.0f);
        ck_assert_int_eq(b->seg[i], -1);
    }
}

START_TEST(lm_windows) {
    const char *path = fixture(DATA_LM);
    char err[512];
    Dataset *ds = dataset_open(path, DATA_LM, err, sizeof(err));
    ck_assert_msg(ds && dataset_load(ds, FIX_VOCAB, err, sizeof(err)) == 0, "%s", err);
    const int T = 8;
    LoaderOptions o = opts(3, T, 0, 1);
    Loader *l = open_ok(path, DATA_LM, &o);
    ck_assert_int_eq(loader_units(l), (ds->n_tokens - 2) / T + 1);
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        for (int r = 0; r < b.B; r++) {
            int64_t w = loader_example_index(l, r, 0);
            if (w < 0) continue;
            int64_t start = w * T,
                    want_len = ds->n_tokens - 1 - start < T ? ds->n_tokens - 1 - start : T;
            ck_assert_int_eq(b.len[r], want_len);
            for (int t = 0; t < b.len[r]; t++) {
                size_t i = (size_t)r * T + t;
                ck_assert_int_eq(b.tokens[i], ds->tokens.ids[start + t]);
                ck_assert_int_eq(b.targets[i], ds->tokens.ids[start + t + 1]);
                ck_assert(b.mask[i] == 1.0f);
                ck_assert_int_eq(b.pos[i], t);
                ck_assert_int_eq(b.seg[i], 0);
            }
            assert_padding(&b, r);
        }
    }
    loader_free(l);
    dataset_free(ds);
}
END_TEST

// Unpacked sft: inputs are the example minus its last token, targets minus its first, and the
// mask is 1 exactly on response targets (the end token included).
START_TEST(sft_rows_and_mask) {
    const char *path = fixture(DATA_SFT);
    LoaderOptions o = opts(4, 16, 0, 1);
    Loader *l = open_ok(path, DATA_SFT, &o);
    int tok[FIX_MAX];
    uint8_t m[FIX_MAX];
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        for (int r = 0; r < b.B; r++) {
            int64_t e = loader_example_index(l, r, 0);
            if (e < 0) continue;
            Example ex = fix_sft((int)e, tok, m);
            ck_assert_int_eq(b.len[r], ex.n_tokens - 1);
            int first_resp = -1;
            for (int t = 0; t < b.len[r]; t++) {
                size_t i = (size_t)r * b.T + t;
                int tg = b.targets[i];
                ck_assert_int_eq(b.tokens[i], ex.tokens[t]);
                ck_assert_int_eq(tg, ex.tokens[t + 1]);
                int response = (tg >= 200 && tg < 300) || tg == FIX_EOT;
                ck_assert_msg(b.mask[i] == (float)response, "row %d t %d target %d mask %g", r, t,
                              tg, b.mask[i]);
                if (response && first_resp < 0) first_resp = t;
            }
            size_t last = (size_t)r * b.T + b.len[r] - 1;
            ck_assert_int_eq(b.targets[last], FIX_EOT);
            ck_assert(b.mask[last] == 1.0f);
            ck_assert_int_eq(loader_response_start(l)[r], first_resp);
            assert_padding(&b, r);
        }
    }
    loader_free(l);
}
END_TEST

// Packed sft: each segment is one whole example with positions from 0, segments are
// contiguous and numbered 0,1,..., and each segment's last target is its end token.
START_TEST(sft_packing) {
    const char *path = fixture(DATA_SFT);
    LoaderOptions o = opts(2, 16, 0, 1);
    o.pack = 1;
    Loader *l = open_ok(path, DATA_SFT, &o);
    int tok[FIX_MAX], multi = 0;
    uint8_t m[FIX_MAX];
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        for (int r = 0; r < b.B; r++) {
            int t = 0, seg = 0;
            for (; t < b.len[r]; seg++) {
                int64_t e = loader_example_index(l, r, seg);
                ck_assert_msg(e >= 0, "row %d segment %d has no example", r, seg);
                Example ex = fix_sft((int)e, tok, m);
                for (int k = 0; k + 1 < ex.n_tokens; k++, t++) {
                    size_t i = (size_t)r * b.T + t;
                    ck_assert_int_eq(b.seg[i], seg);
                    ck_assert_int_eq(b.pos[i], k);
                    ck_assert_int_eq(b.tokens[i], ex.tokens[k]);
                    ck_assert_int_eq(b.targets[i], ex.tokens[k + 1]);
                    ck_assert(b.mask[i] == (float)ex.loss_mask[k + 1]);
                }
                ck_assert_int_eq(b.targets[(size_t)r * b.T + t - 1], FIX_EOT);
            }
            ck_assert_int_eq(t, b.len[r]);
            if (b.len[r]) ck_assert_int_eq(loader_example_index(l, r, seg), -1);
            if (seg > 1) multi++;
            assert_padding(&b, r);
        }
    }
    ck_assert_msg(multi > 0, "no row held more than one example");
    loader_free(l);
}
END_TEST

START_TEST(preference_rows) {
    const char *path = fixture(DATA_PREFERENCE);
    LoaderOptions o = opts(3, 16, 0, 1);
    Loader *l = open_ok(path, DATA_PREFERENCE, &o);
    ck_assert_int_eq(loader_rows(l), 6);
    int p[FIX_MAX], c[FIX_MAX], rj[FIX_MAX];
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        ck_assert_int_eq(b.B, 6);
        for (int r = 0; r < b.B; r++) {
            int64_t e = loader_example_index(l, r, 0);
            ck_assert_int_eq(e, loader_example_index(l, r ^ 1, 0));
            if (e < 0) continue;
            Example ex = fix_pref((int)e, p, c, rj);
            const int *resp = r % 2 == 0 ? ex.chosen : ex.rejected;
            int64_t nr = r % 2 == 0 ? ex.n_chosen : ex.n_rejected, np = ex.n_tokens;
            ck_assert_int_eq(b.len[r], np + nr - 1);
            ck_assert_int_eq(loader_response_start(l)[r], np - 1);
            for (int t = 0; t < b.len[r]; t++) {
                size_t i = (size_t)r * b.T + t;
                int want_in = t < np ? ex.tokens[t] : resp[t - np];
                int want_tg = t + 1 < np ? ex.tokens[t + 1] : resp[t + 1 - np];
                ck_assert_int_eq(b.tokens[i], want_in);
                ck_assert_int_eq(b.targets[i], want_tg);
                ck_assert(b.mask[i] == (float)(t >= np - 1));
            }
            ck_assert_int_eq(b.targets[(size_t)r * b.T + b.len[r] - 1], FIX_EOT);
            assert_padding(&b, r);
        }
    }
    loader_free(l);
}
END_TEST

// Row i: example e's prompt + completion, trained on the completion; row batch + i: e's prompt +
// its partner's completion, cut to T, trained on that completion. Partners form one cycle over
// the dataset (each example is the partner of exactly one other, none its own).
START_TEST(unpaired_rows) {
    const char *path = fixture(DATA_UNPAIRED);
    LoaderOptions o = opts(3, 6, 0, 1); // T = 6 cuts some mismatched rows
    o.drop_long = 1;
    Loader *l = open_ok(path, DATA_UNPAIRED, &o);
    ck_assert_int_eq(loader_rows(l), 6);
    int p[FIX_MAX], c[FIX_MAX], p2[FIX_MAX], c2[FIX_MAX], cut = 0;
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        for (int i = 0; i < 3; i++) {
            int64_t e = loader_example_index(l, i, 0);
            ck_assert_int_eq(e, loader_example_index(l, 3 + i, 0));
            if (e < 0) continue;
            Example ex = fix_unpaired((int)e, p, c);
            Example other = fix_unpaired((int)loader_partner(l, e), p2, c2);
            ck_assert_int_eq(dataset_example(loader_dataset(l), e).label, ex.label);
            int64_t np = ex.n_tokens,
                    want[2] = {np + ex.n_completion - 1, np + other.n_completion - 1};
            if (want[1] > 6) want[1] = 6, cut++;
            for (int h = 0; h < 2; h++) {
                int r = 3 * h + i;
                const int *resp = h ? other.completion : ex.completion;
                ck_assert_int_eq(b.len[r], want[h]);
                for (int t = 0; t < b.len[r]; t++) {
                    size_t k = (size_t)r * b.T + t;
                    ck_assert_int_eq(b.tokens[k], t < np ? ex.tokens[t] : resp[t - np]);
                    ck_assert_int_eq(b.targets[k],
                                     t + 1 < np ? ex.tokens[t + 1] : resp[t + 1 - np]);
                    ck_assert(b.mask[k] == (float)(t >= np - 1));
                }
                assert_padding(&b, r);
            }
        }
    }
    ck_assert_msg(cut > 0, "no mismatched row was cut to T");
    int64_t n = loader_dataset(l)->n, e = 0;
    int *seen = calloc((size_t)n, sizeof(int));
    for (int64_t k = 0; k < n; k++) { // one cycle through every example
        ck_assert_int_ne(loader_partner(l, e), e);
        seen[e]++;
        e = loader_partner(l, e);
    }
    ck_assert_int_eq(e, 0);
    for (int64_t k = 0; k < n; k++) ck_assert_int_eq(seen[k], 1);
    free(seen);
    loader_free(l);
}
END_TEST

START_TEST(prompt_rows) {
    const char *path = fixture(DATA_PROMPT);
    LoaderOptions o = opts(5, 16, 0, 1);
    Loader *l = open_ok(path, DATA_PROMPT, &o);
    int p[FIX_MAX], ref[FIX_MAX];
    char text[FIX_MAX];
    int with_ref = 0;
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        for (int r = 0; r < b.B; r++) {
            int64_t e = loader_example_index(l, r, 0);
            if (e < 0) continue;
            Example want = fix_prompt((int)e, p, ref, text);
            Example got = dataset_example(loader_dataset(l), e);
            ck_assert_int_eq(b.len[r], want.n_tokens);
            for (int t = 0; t < b.T; t++) {
                size_t i = (size_t)r * b.T + t;
                if (t < b.len[r]) ck_assert_int_eq(b.tokens[i], want.tokens[t]);
                ck_assert_int_eq(b.targets[i], -1);
                ck_assert(b.mask[i] == 0.0f);
            }
            ck_assert_int_eq(got.n_reference_text, want.n_reference_text);
            if (got.n_reference_text) {
                ck_assert_mem_eq(got.reference_text, text, (size_t)got.n_reference_text);
                with_ref++;
            }
        }
    }
    ck_assert_int_gt(with_ref, 0);
    loader_free(l);
}
END_TEST

// ---- errors --------------------------------------------------------------------------------

static void expect_open_error(const char *path, DataKind kind, const LoaderOptions *o,
                              const char *want) {
    char err[512] = "";
    Loader *l = loader_open(path, kind, o, err, sizeof(err));
    loader_free(l);
    ck_assert_msg(l == NULL, "loader_open succeeded, expected '%s'", want);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

START_TEST(open_errors) {
    const char *sft = fixture(DATA_SFT);
    LoaderOptions o = opts(2, 16, 0, 1);
    expect_open_error(sft, DATA_PREFERENCE, &o, "kind is 'sft', expected 'preference'");
    o.fingerprint = 0x1111111111111111ull;
    expect_open_error(sft, DATA_SFT, &o,
                      "fingerprint 0123456789abcdef does not match the "
                      "tokenizer's 1111111111111111");
    o = opts(2, 16, 2, 2);
    expect_open_error(sft, DATA_SFT, &o, "rank 2 is not in 0..world-1");
    o = opts(2, 16, 0, 1);
    o.pack = 1;
    expect_open_error(fixture(DATA_PREFERENCE), DATA_PREFERENCE, &o, "packing applies to sft");
    o = opts(2, 16, 0, 1);
    o.vocab_size = 300;
    expect_open_error(sft, DATA_SFT, &o, "token id 999");
    o = opts(2, 4, 0, 1);
    expect_open_error(sft, DATA_SFT, &o, "do not fit T = 4");
}
END_TEST

// lm files are read a window at a time, but every id is checked when the loader opens
// (docs/datasets.md), not when its window is read.
START_TEST(lm_bad_id_at_open) {
    LoaderOptions o = opts(2, 8, 0, 1);
    o.vocab_size = 50;
    expect_open_error(fixture(DATA_LM), DATA_LM, &o,
                      "ld_lm.h5: array 'tokens' holds token id 999 at index 1, outside the "
                      "vocabulary (0..49)");
}
END_TEST

// drop_long leaves the examples that do not fit out and still covers the rest exactly once.
START_TEST(drop_long) {
    const char *path = fixture(DATA_SFT);
    LoaderOptions o = opts(2, 4, 0, 1);
    o.drop_long = 1;
    Loader *l = open_ok(path, DATA_SFT, &o);
    int tok[FIX_MAX], kept = 0;
    uint8_t m[FIX_MAX];
    for (int i = 0; i < N_EX; i++) kept += fix_sft(i, tok, m).n_tokens - 1 <= 4;
    ck_assert_int_eq(loader_units(l), kept);
    ck_assert_int_eq(loader_dropped(l), N_EX - kept);
    int count[N_EX] = {0};
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        next_ok(l, &b);
        batch_count(l, &b, count, N_EX);
    }
    for (int i = 0; i < N_EX; i++)
        ck_assert_int_eq(count[i], fix_sft(i, tok, m).n_tokens - 1 <= 4 ? 1 : 0);
    loader_free(l);
}
END_TEST

int main(void) {
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("epochs");
    tcase_add_test(tc, once_per_epoch);
    tcase_add_test(tc, shuffle_per_epoch);
    tcase_add_test(tc, cursor_resumes_exactly);
    tcase_add_test(tc, cursor_rejects_other_stream);
    suite_add_tcase(s, tc);
    tc = tcase_create("rows");
    tcase_add_test(tc, lm_windows);
    tcase_add_test(tc, sft_rows_and_mask);
    tcase_add_test(tc, sft_packing);
    tcase_add_test(tc, preference_rows);
    tcase_add_test(tc, unpaired_rows);
    tcase_add_test(tc, prompt_rows);
    tcase_add_test(tc, open_errors);
    tcase_add_test(tc, lm_bad_id_at_open);
    tcase_add_test(tc, drop_long);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
