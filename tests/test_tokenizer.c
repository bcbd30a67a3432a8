// tests/test_tokenizer.c: the byte-level BPE tokenizer: GPT-2's ids against an independent
// Python reference, exact round trips on arbitrary bytes, training (determinism, reserved
// special tokens, exact vocabulary size, agreement with a naive re-counting trainer), the
// file format and the fingerprint, and the errors for bad files.
#include "data/tokenizer.h"
#include "common/rng.h"
#include "tests/testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GPT2_DIR    LC_SAMPLES "/gpt2-tokenizer"
#define SHAKESPEARE LC_SAMPLES "/tinyshakespeare/input.txt"

// ---- helpers -----------------------------------------------------------------------------------

static Tokenizer *load_ok(const char *path) {
    char err[1024] = "";
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    ck_assert_msg(tok != NULL, "loading %s failed: %s", path, err);
    return tok;
}

// Loading must fail with a message holding `want`.
static void load_fails(const char *path, const char *want) {
    char err[1024] = "";
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    ck_assert_msg(tok == NULL, "loading %s should fail", path);
    ck_assert_msg(strstr(err, want) != NULL, "message '%s' lacks '%s'", err, want);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

static void write_all(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

// Encodes then decodes; the bytes must come back exactly.
static void assert_round_trip(const Tokenizer *tok, const char *text, size_t len,
                              int allow_special) {
    int *ids;
    int n = tokenizer_encode(tok, text, len, allow_special, &ids);
    size_t back_len;
    char *back = tokenizer_decode(tok, ids, n, &back_len);
    ck_assert_ptr_nonnull(back);
    ck_assert_uint_eq(back_len, len);
    ck_assert_msg(memcmp(back, text, len) == 0, "round trip changed %zu bytes", len);
    ck_assert_int_eq(back[len], '\0');
    free(back);
    free(ids);
}

static uint64_t fnv1a_ids(const int *ids, int n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            h = (h ^ (((uint32_t)ids[i] >> (8 * k)) & 0xff)) * 0x100000001b3ull;
    return h;
}

static Tokenizer *train_ok(const char *corpus, int vocab_size, const char *const *specials,
                           int n_specials) {
    char err[1024] = "";
    Tokenizer *tok =
        tokenizer_train(&corpus, 1, vocab_size, specials, n_specials, err, sizeof(err));
    ck_assert_msg(tok != NULL, "training on %s failed: %s", corpus, err);
    return tok;
}

// ---- GPT-2 -------------------------------------------------------------------------------------

typedef struct {
    const char *text;
    int n;
    int ids[32];
} Expected;

// Produced once by tests/gpt2_ref_tokenize.py (an independent Python implementation of GPT-2's
// published encoder.py, using the `regex` module) from samples/gpt2-tokenizer:
//   python3 tests/gpt2_ref_tokenize.py samples/gpt2-tokenizer strings
static const Expected GPT2_EXPECTED[] = {
    {"Hello world", 2, {15496, 995}},
    {" Hello", 1, {18435}},
    {"  two leading spaces", 4, {220, 734, 3756, 9029}},
    {"many     spaces   between", 9, {21834, 220, 220, 220, 220, 9029, 220, 220, 1022}},
    {"trailing spaces   ", 6, {9535, 4386, 9029, 220, 220, 220}},
    {"line one\nline two\n\n\nafter blank lines\r\n",
     12,
     {1370, 530, 198, 1370, 734, 628, 198, 8499, 9178, 3951, 201, 198}},
    {"\ttabs\tand\t\tmore", 8, {197, 8658, 82, 197, 392, 197, 197, 3549}},
    {"numbers 12345 and 3.14159 and 1,000,000",
     15,
     {77, 17024, 17031, 2231, 290, 513, 13, 1415, 19707, 290, 352, 11, 830, 11, 830}},
    {"it's isn't we're they've I'm you'll he'd",
     14,
     {270, 338, 2125, 470, 356, 821, 484, 1053, 314, 1101, 345, 1183, 339, 1549}},
    {"IT'S CAPITAL 'S 'T 'RE", 11, {2043, 6, 50, 20176, 40579, 705, 50, 705, 51, 705, 2200}},
    {"Punctuation!? (brackets) [x] {y} ... --- ;:",
     18,
     {47, 16260, 2288, 22857, 357, 1671, 25180, 8, 685, 87, 60, 1391, 88, 92, 2644, 11420, 2162,
      25}},
    {"emoji: 😀👍🏽 ❤️",
     13,
     {368, 31370, 25, 30325, 222, 41840, 235, 8582, 237, 121, 43074, 97, 37929}},
    {"中文分词测试，你好世界", 22, {40792, 23877, 229,   26344, 228,   46237, 235,   38184,
                                    233,   46237, 243,   171,   120,   234,   19526, 254,
                                    25001, 121,   10310, 244,   45911, 234}},
    {"Привет, мир! Как дела?", 23, {140,   253,   21169, 18849, 38857, 16843, 20375, 11,
                                    12466, 120,   18849, 21169, 0,     12466, 248,   16142,
                                    31583, 12466, 112,   16843, 30143, 16142, 30}},
    {"مرحبا بالعالم",
     12,
     {25405, 26897, 148, 255, 39848, 12919, 17550, 101, 23525, 44690, 23525, 25405}},
    {"नमस्ते दुनिया", 23, {11976, 101, 11976, 106, 11976, 116, 24231, 235, 11976, 97,  24231, 229,
                        28225, 99,  24231, 223, 11976, 101, 11976, 123, 11976, 107, 48077}},
    {"café naïve résumé Über straße",
     12,
     {66, 1878, 2634, 41492, 40560, 16345, 2634, 49363, 527, 3534, 39683, 68}},
    {"<|endoftext|>", 7, {27, 91, 437, 1659, 5239, 91, 29}},
    {"mixed123abc 456def", 7, {76, 2966, 10163, 39305, 604, 3980, 4299}},
    {"a\u00a0non-breaking space", 6, {64, 1849, 13159, 12, 13395, 2272}},
    {"ideographic\u3000space, line\u2028separator, next\302\205line, \034file separator",
     22,
     {485, 6826, 5099, 222, 13200, 11, 1627, 447, 101,  25512, 1352,
      11,  1306, 126,  227, 1370,  11, 220,  216, 7753, 2880,  1352}},
};

START_TEST(test_gpt2_matches_reference) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    ck_assert_int_eq(tokenizer_vocab_size(tok), 50257);
    for (size_t k = 0; k < sizeof(GPT2_EXPECTED) / sizeof(GPT2_EXPECTED[0]); k++) {
        const Expected *e = &GPT2_EXPECTED[k];
        int *ids;
        int n = tokenizer_encode(tok, e->text, strlen(e->text), 0, &ids);
        ck_assert_msg(n == e->n, "\"%s\": %d ids, want %d", e->text, n, e->n);
        for (int i = 0; i < n; i++)
            ck_assert_msg(ids[i] == e->ids[i], "\"%s\": id %d is %d, want %d", e->text, i, ids[i],
                          e->ids[i]);
        free(ids);
    }
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_gpt2_special_tokens) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    ck_assert_int_eq(tokenizer_eot(tok), 50256);
    ck_assert_int_eq(tokenizer_special(tok, "<|endoftext|>"), 50256);
    ck_assert_int_eq(tokenizer_special(tok, "<|user|>"), -1);
    int *ids;
    const char *text = "a<|endoftext|>b";
    int n = tokenizer_encode(tok, text, strlen(text), 1, &ids);
    int want_on[] = {64, 50256, 65};
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want_on[i]);
    free(ids);
    // Off: plain text (ids from tests/gpt2_ref_tokenize.py DIR text 'a<|endoftext|>b').
    n = tokenizer_encode(tok, text, strlen(text), 0, &ids);
    int want_off[] = {64, 27, 91, 437, 1659, 5239, 91, 29, 65};
    ck_assert_int_eq(n, 9);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want_off[i]);
    free(ids);
    n = tokenizer_encode(tok, "<|endoftext|>", 13, 1, &ids);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 50256);
    free(ids);
    size_t len;
    const char *bytes = tokenizer_token(tok, 50256, &len);
    ck_assert_uint_eq(len, 13);
    ck_assert_int_eq(memcmp(bytes, "<|endoftext|>", 13), 0);
    ck_assert_ptr_null(tokenizer_token(tok, 50257, &len));
    ck_assert_ptr_null(tokenizer_token(tok, -1, &len));
    tokenizer_free(tok);
}
END_TEST

// Totals produced once by tests/gpt2_ref_tokenize.py:
//   python3 tests/gpt2_ref_tokenize.py samples/gpt2-tokenizer file
//   samples/tinyshakespeare/input.txt
//   -> tokens 338025 fnv1a e22fcd868ca90167
// (FNV-1a 64 over each id as 4 little-endian bytes).
START_TEST(test_gpt2_tinyshakespeare) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    size_t len;
    char *text = read_all(SHAKESPEARE, &len);
    int *ids;
    int n = tokenizer_encode(tok, text, len, 0, &ids);
    ck_assert_int_eq(n, 338025);
    ck_assert_uint_eq(fnv1a_ids(ids, n), 0xe22fcd868ca90167ull);
    free(ids);
    assert_round_trip(tok, text, len, 0);
    free(text);
    tokenizer_free(tok);
}
END_TEST

// The fingerprint is recorded in every dataset and checkpoint: changing its definition (or
// how GPT-2's files are read) must be a deliberate act that updates this value.
START_TEST(test_gpt2_fingerprint_is_stable) {
    Tokenizer *a = load_ok(GPT2_DIR), *b = load_ok(GPT2_DIR);
    ck_assert_uint_eq(tokenizer_fingerprint(a), tokenizer_fingerprint(b));
    ck_assert_uint_eq(tokenizer_fingerprint(a), 0xdb40e90cfcdf0ea6ull);
    tokenizer_free(a);
    tokenizer_free(b);
}
END_TEST

// The queries every kind answers, for GPT-2's folder and a saved layercake file: the kind, EOS
// (<|endoftext|>), no BOS or PAD, no chat template.
START_TEST(test_gpt2_kind_and_special_ids) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    ck_assert_str_eq(tokenizer_kind(tok), "gpt2");
    ck_assert_int_eq(tokenizer_eos(tok), 50256);
    ck_assert_int_eq(tokenizer_bos(tok), -1);
    ck_assert_int_eq(tokenizer_pad(tok), -1);
    ck_assert_ptr_null(tokenizer_chat_template(tok));
    char err[1024] = "";
    const char *path = test_tmp_path("tok-gpt2-kind.json");
    ck_assert_msg(tokenizer_save(tok, path, err, sizeof(err)) == 0, "save: %s", err);
    Tokenizer *back = load_ok(path);
    ck_assert_str_eq(tokenizer_kind(back), "layercake");
    ck_assert_int_eq(tokenizer_eos(back), 50256);
    ck_assert_int_eq(tokenizer_bos(back), -1);
    tokenizer_free(back);
    tokenizer_free(tok);
}
END_TEST

// GPT-2 saved as a layercake file loads back as the same tokenizer.
START_TEST(test_gpt2_save_load) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    char err[1024] = "";
    const char *path = test_tmp_path("tok-gpt2.json");
    ck_assert_msg(tokenizer_save(tok, path, err, sizeof(err)) == 0, "save: %s", err);
    Tokenizer *back = load_ok(path);
    ck_assert_uint_eq(tokenizer_fingerprint(back), tokenizer_fingerprint(tok));
    ck_assert_int_eq(tokenizer_vocab_size(back), 50257);
    ck_assert_int_eq(tokenizer_eot(back), 50256);
    size_t len;
    char *text = read_all(SHAKESPEARE, &len);
    int *ids;
    int n = tokenizer_encode(back, text, len, 0, &ids);
    ck_assert_int_eq(n, 338025);
    ck_assert_uint_eq(fnv1a_ids(ids, n), 0xe22fcd868ca90167ull);
    free(ids);
    free(text);
    tokenizer_free(back);
    tokenizer_free(tok);
}
END_TEST

// The same files under Hugging Face's names, vocab.json and merges.txt.
START_TEST(test_gpt2_hugging_face_names) {
    const char *dir = test_tmp_path("tok-hf");
    char path[4096];
    mkdir(dir, 0755);
    const char *from[] = {GPT2_DIR "/encoder.json", GPT2_DIR "/vocab.bpe"};
    const char *to[] = {"vocab.json", "merges.txt"};
    for (int k = 0; k < 2; k++) {
        size_t len;
        char *bytes = read_all(from[k], &len);
        snprintf(path, sizeof(path), "%s/%s", dir, to[k]);
        write_all(path, bytes, len);
        free(bytes);
    }
    Tokenizer *tok = load_ok(dir);
    ck_assert_uint_eq(tokenizer_fingerprint(tok), 0xdb40e90cfcdf0ea6ull);
    tokenizer_free(tok);
}
END_TEST

// ---- invalid UTF-8 and round trips -------------------------------------------------------------

// Bytes that are not valid UTF-8 are pieces of their own, one per maximal run: so the text
// around them encodes as if they were not there (docs/tokenizer.md).
START_TEST(test_invalid_utf8_is_its_own_piece) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    const char *parts[][3] = {{"abc", "\xff\xfe", "def"},
                              {" hello", "\x80", " world"},
                              {"x", "\xe4\xb8", "y"},      // truncated 3-byte sequence
                              {"é", "\xc0\xaf", "é"},      // overlong '/'
                              {"1", "\xed\xa0\x80", "2"}}; // UTF-16 surrogate
    for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
        char joined[64];
        snprintf(joined, sizeof(joined), "%s%s%s", parts[k][0], parts[k][1], parts[k][2]);
        int *whole, want[64], n_want = 0;
        for (int p = 0; p < 3; p++) {
            int *ids;
            int n = tokenizer_encode(tok, parts[k][p], strlen(parts[k][p]), 0, &ids);
            memcpy(want + n_want, ids, (size_t)n * sizeof(int));
            n_want += n;
            free(ids);
        }
        int n = tokenizer_encode(tok, joined, strlen(joined), 0, &whole);
        ck_assert_int_eq(n, n_want);
        for (int i = 0; i < n; i++) ck_assert_int_eq(whole[i], want[i]);
        free(whole);
        assert_round_trip(tok, joined, strlen(joined), 0);
    }
    tokenizer_free(tok);
}
END_TEST

// Random byte strings of four kinds: uniform bytes; ASCII text with spaces and digits; runs of
// whitespace; fragments of UTF-8 text, lone continuation bytes, truncated sequences, NULs and
// special-token texts.
static size_t random_text(Rng *r, char *buf, size_t cap) {
    static const char *const frags[] = {"the",
                                        " cat",
                                        "'s",
                                        "  ",
                                        "\n\n",
                                        "\t",
                                        "42",
                                        "é",
                                        "中文",
                                        "\xf0\x9f\x98\x80",
                                        "\x80",
                                        "\xbf\xbf",
                                        "\xe4\xb8",
                                        "\xff",
                                        "\xc3",
                                        "\0",
                                        "<|endoftext|>",
                                        "<|user|>",
                                        "<|end",
                                        "!?"};
    size_t kind = rng_below(r, 4), len = rng_below(r, cap / 2);
    size_t n = 0;
    while (n < len) {
        if (kind == 0) {
            buf[n++] = (char)rng_below(r, 256);
        } else if (kind == 1) {
            buf[n++] = " abcxyz0129.,'\n"[rng_below(r, 15)];
        } else if (kind == 2) {
            buf[n++] = " \t\n\r\v\f"[rng_below(r, 6)];
        } else {
            size_t f = rng_below(r, sizeof(frags) / sizeof(frags[0]));
            size_t fl = frags[f][0] == '\0' ? 1 : strlen(frags[f]);
            if (n + fl > cap) break;
            memcpy(buf + n, frags[f], fl);
            n += fl;
        }
    }
    return n;
}

static void round_trip_random(const Tokenizer *tok, uint64_t seed) {
    Rng r = rng_init(seed);
    char buf[600];
    for (int k = 0; k < 400; k++) {
        size_t n = random_text(&r, buf, sizeof(buf));
        assert_round_trip(tok, buf, n, k % 2);
    }
    assert_round_trip(tok, "", 0, 0);
}

START_TEST(test_gpt2_round_trip_random) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    round_trip_random(tok, 1234);
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_trained_round_trip_random) {
    Tokenizer *tok = train_ok(SHAKESPEARE, 1000, NULL, 0);
    round_trip_random(tok, 5678);
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_decode_rejects_bad_ids) {
    Tokenizer *tok = load_ok(GPT2_DIR);
    size_t len = 7;
    int bad[] = {15496, 50257}, neg[] = {-1};
    ck_assert_ptr_null(tokenizer_decode(tok, bad, 2, &len));
    ck_assert_ptr_null(tokenizer_decode(tok, neg, 1, &len));
    char *empty = tokenizer_decode(tok, bad, 0, &len);
    ck_assert_ptr_nonnull(empty);
    ck_assert_uint_eq(len, 0);
    free(empty);
    tokenizer_free(tok);
}
END_TEST

// ---- training ----------------------------------------------------------------------------------

START_TEST(test_train_is_deterministic) {
    const char *corpus = SHAKESPEARE, *a = test_tmp_path("tok-a.json"),
               *b = test_tmp_path("tok-b.json");
    char err[1024] = "";
    Tokenizer *t1 = train_ok(corpus, 4096, NULL, 0), *t2 = train_ok(corpus, 4096, NULL, 0);
    ck_assert_msg(tokenizer_save(t1, a, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(tokenizer_save(t2, b, err, sizeof(err)) == 0, "%s", err);
    size_t la, lb;
    char *fa = read_all(a, &la), *fb = read_all(b, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_msg(memcmp(fa, fb, la) == 0, "two trainings wrote different files");
    ck_assert_uint_eq(tokenizer_fingerprint(t1), tokenizer_fingerprint(t2));
    free(fa);
    free(fb);
    tokenizer_free(t1);
    tokenizer_free(t2);
}
END_TEST

START_TEST(test_train_reserves_specials) {
    const char *extra[] = {"<|tool|>", "<|user|>", "<|tool|>"}; // repeats are reserved once
    Tokenizer *tok = train_ok(SHAKESPEARE, 700, extra, 3);
    ck_assert_int_eq(tokenizer_vocab_size(tok), 700);
    const char *want[] = {"<|endoftext|>", "<|system|>", "<|user|>",
                          "<|assistant|>", "<|end|>",    "<|tool|>"};
    for (int i = 0; i < 6; i++) {
        int id = tokenizer_special(tok, want[i]);
        ck_assert_msg(id == 700 - 6 + i, "%s has id %d, want %d", want[i], id, 700 - 6 + i);
        size_t len;
        const char *bytes = tokenizer_token(tok, id, &len);
        ck_assert_uint_eq(len, strlen(want[i]));
        ck_assert_int_eq(memcmp(bytes, want[i], len), 0);
    }
    ck_assert_int_eq(tokenizer_eot(tok), 694);
    for (int b = 0; b < 256; b++) { // the single bytes come first, in byte order
        size_t len;
        const char *bytes = tokenizer_token(tok, b, &len);
        ck_assert_uint_eq(len, 1);
        ck_assert_int_eq((unsigned char)bytes[0], b);
    }
    const char *chat = "<|user|>Hi<|end|><|assistant|>";
    int *ids;
    int n = tokenizer_encode(tok, chat, strlen(chat), 1, &ids);
    ck_assert_int_ge(n, 4);
    ck_assert_int_eq(ids[0], 696);
    ck_assert_int_eq(ids[n - 2], 698);
    ck_assert_int_eq(ids[n - 1], 697);
    free(ids);
    n = tokenizer_encode(tok, chat, strlen(chat), 0, &ids);
    for (int i = 0; i < n; i++) ck_assert_int_lt(ids[i], 694);
    free(ids);
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_train_exact_sizes) {
    int sizes[] = {261, 262, 300, 1024, 4096};
    for (int k = 0; k < 5; k++) {
        Tokenizer *tok = train_ok(SHAKESPEARE, sizes[k], NULL, 0);
        ck_assert_int_eq(tokenizer_vocab_size(tok), sizes[k]);
        tokenizer_free(tok);
    }
}
END_TEST

// By hand: words "ab", " ab", " ab", " cd". Pair counts (a,b) 3, (' ',a) 2, (' ',c) 1,
// (c,d) 1: merge "ab"; then (' ',ab) 2: merge " ab"; then (' ',c) and (c,d) tie at 1 and the
// smaller ids win: merge " c".
START_TEST(test_train_by_hand) {
    const char *corpus = test_tmp_path("tok-hand.txt");
    write_all(corpus, "ab ab ab cd", 11);
    Tokenizer *tok = train_ok(corpus, 256 + 3 + 5, NULL, 0);
    const char *want[] = {"ab", " ab", " c"};
    for (int i = 0; i < 3; i++) {
        size_t len;
        const char *bytes = tokenizer_token(tok, 256 + i, &len);
        ck_assert_msg(len == strlen(want[i]) && memcmp(bytes, want[i], len) == 0,
                      "token %d is '%.*s', want '%s'", 256 + i, (int)len, bytes, want[i]);
    }
    int *ids;
    int n = tokenizer_encode(tok, " ab cd", 6, 0, &ids);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[0], 257);
    ck_assert_int_eq(ids[1], 258);
    ck_assert_int_eq(ids[2], 'd');
    free(ids);
    tokenizer_free(tok);
}
END_TEST

// A naive trainer that recounts every pair before each merge, on a corpus of words over a
// small alphabet separated by single spaces (so the pieces are the first word and each
// " word"). Its tokens, and its final segmentation of the corpus, must be the real trainer's.
#define NAIVE_MAX_TOKENS 512
#define NAIVE_MAX_LEN    8

#define NAIVE_MAX_WORDS 8192

typedef struct {
    int n_tokens;
    char bytes[NAIVE_MAX_TOKENS][2 * NAIVE_MAX_LEN];
    int len[NAIVE_MAX_TOKENS];
    int n_words;
    int sym[NAIVE_MAX_WORDS][NAIVE_MAX_LEN], n_sym[NAIVE_MAX_WORDS];
    long count[NAIVE_MAX_WORDS];
} Naive;

static void naive_add_word(Naive *nv, const char *w, int len) {
    for (int i = 0; i < nv->n_words; i++) {
        if (nv->n_sym[i] != len) continue;
        int same = 1;
        for (int j = 0; j < len && same; j++) same = nv->sym[i][j] == (unsigned char)w[j];
        if (same) {
            nv->count[i]++;
            return;
        }
    }
    ck_assert_int_lt(nv->n_words, NAIVE_MAX_WORDS);
    for (int j = 0; j < len; j++) nv->sym[nv->n_words][j] = (unsigned char)w[j];
    nv->n_sym[nv->n_words] = len;
    nv->count[nv->n_words++] = 1;
}

static void naive_merge_once(Naive *nv, long (*pairs)[NAIVE_MAX_TOKENS]) {
    memset(pairs, 0, sizeof(long) * NAIVE_MAX_TOKENS * NAIVE_MAX_TOKENS);
    for (int w = 0; w < nv->n_words; w++)
        for (int i = 0; i + 1 < nv->n_sym[w]; i++)
            pairs[nv->sym[w][i]][nv->sym[w][i + 1]] += nv->count[w];
    int ba = -1, bb = -1;
    for (int a = 0; a < nv->n_tokens; a++)
        for (int b = 0; b < nv->n_tokens; b++)
            if (pairs[a][b] > 0 && (ba < 0 || pairs[a][b] > pairs[ba][bb])) ba = a, bb = b;
    ck_assert_int_ge(ba, 0);
    char joined[2 * NAIVE_MAX_LEN];
    int jl = nv->len[ba] + nv->len[bb], c = -1;
    memcpy(joined, nv->bytes[ba], (size_t)nv->len[ba]);
    memcpy(joined + nv->len[ba], nv->bytes[bb], (size_t)nv->len[bb]);
    for (int t = 0; t < nv->n_tokens && c < 0; t++)
        if (nv->len[t] == jl && memcmp(nv->bytes[t], joined, (size_t)jl) == 0) c = t;
    if (c < 0) {
        c = nv->n_tokens++;
        memcpy(nv->bytes[c], joined, (size_t)jl);
        nv->len[c] = jl;
    }
    for (int w = 0; w < nv->n_words; w++) {
        int j = 0;
        for (int i = 0; i < nv->n_sym[w]; j++) {
            int hit = i + 1 < nv->n_sym[w] && nv->sym[w][i] == ba && nv->sym[w][i + 1] == bb;
            nv->sym[w][j] = hit ? c : nv->sym[w][i];
            i += hit ? 2 : 1;
        }
        nv->n_sym[w] = j;
    }
}

START_TEST(test_train_matches_naive_trainer) {
    Rng r = rng_init(42);
    char *text = malloc(1 << 16);
    size_t n = 0;
    for (int w = 0; w < 6000; w++) {
        if (w > 0) text[n++] = ' ';
        size_t len = 1 + rng_below(&r, 6);
        for (size_t i = 0; i < len; i++) // skewed: low letters are likelier
            text[n++] = (char)('a' + rng_below(&r, 1 + rng_below(&r, 6)));
    }
    const char *corpus = test_tmp_path("tok-naive.txt");
    write_all(corpus, text, n);
    Naive *nv = calloc(1, sizeof(*nv));
    for (int t = 0; t < 256; t++) {
        nv->bytes[t][0] = (char)t;
        nv->len[t] = 1;
    }
    nv->n_tokens = 256;
    for (size_t start = 0, end; start < n; start = end) {
        end = start + 1;
        while (end < n && text[end] != ' ') end++;
        naive_add_word(nv, text + start, (int)(end - start));
    }
    const int vocab = 256 + 150 + 5;
    long(*pairs)[NAIVE_MAX_TOKENS] = malloc(sizeof(long) * NAIVE_MAX_TOKENS * NAIVE_MAX_TOKENS);
    while (nv->n_tokens < vocab - 5) naive_merge_once(nv, pairs);
    free(pairs);

    Tokenizer *tok = train_ok(corpus, vocab, NULL, 0);
    for (int t = 256; t < vocab - 5; t++) {
        size_t len;
        const char *bytes = tokenizer_token(tok, t, &len);
        ck_assert_msg((int)len == nv->len[t] && memcmp(bytes, nv->bytes[t], len) == 0,
                      "token %d is '%.*s', the naive trainer's '%.*s'", t, (int)len, bytes,
                      nv->len[t], nv->bytes[t]);
    }
    for (int w = 0; w < nv->n_words; w++) { // each word type encodes as the naive one ends up
        char word[NAIVE_MAX_LEN + 1];
        int wl = 0;
        for (int i = 0; i < nv->n_sym[w]; i++) {
            memcpy(word + wl, nv->bytes[nv->sym[w][i]], (size_t)nv->len[nv->sym[w][i]]);
            wl += nv->len[nv->sym[w][i]];
        }
        int *ids;
        int k = tokenizer_encode(tok, word, (size_t)wl, 0, &ids);
        ck_assert_int_eq(k, nv->n_sym[w]);
        for (int i = 0; i < k; i++) ck_assert_int_eq(ids[i], nv->sym[w][i]);
        free(ids);
    }
    tokenizer_free(tok);
    free(nv);
    free(text);
}
END_TEST

START_TEST(test_train_save_load) {
    const char *extra[] = {"<|tool|>"};
    Tokenizer *tok = train_ok(SHAKESPEARE, 2000, extra, 1);
    const char *path = test_tmp_path("tok-saved.json");
    char err[1024] = "";
    ck_assert_msg(tokenizer_save(tok, path, err, sizeof(err)) == 0, "%s", err);
    Tokenizer *back = load_ok(path);
    ck_assert_uint_eq(tokenizer_fingerprint(back), tokenizer_fingerprint(tok));
    ck_assert_int_eq(tokenizer_vocab_size(back), 2000);
    ck_assert_int_eq(tokenizer_special(back, "<|tool|>"), 1999);
    size_t len;
    char *text = read_all(SHAKESPEARE, &len);
    int *a, *b;
    int na = tokenizer_encode(tok, text, len, 1, &a), nb = tokenizer_encode(back, text, len, 1, &b);
    ck_assert_int_eq(na, nb);
    ck_assert_int_eq(memcmp(a, b, (size_t)na * sizeof(int)), 0);
    ck_assert_int_lt(na, (int)len / 2); // it does compress
    assert_round_trip(back, text, len, 0);
    free(a);
    free(b);
    free(text);
    tokenizer_free(back);
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_fingerprints_differ) {
    const char *extra[] = {"<|tool|>"};
    Tokenizer *a = train_ok(SHAKESPEARE, 1000, NULL, 0), *b = train_ok(SHAKESPEARE, 1001, NULL, 0),
              *c = train_ok(SHAKESPEARE, 1000, extra, 1), *d = load_ok(GPT2_DIR),
              *a2 = train_ok(SHAKESPEARE, 1000, NULL, 0);
    uint64_t fa = tokenizer_fingerprint(a), fb = tokenizer_fingerprint(b),
             fc = tokenizer_fingerprint(c), fd = tokenizer_fingerprint(d);
    ck_assert_uint_eq(fa, tokenizer_fingerprint(a2));
    ck_assert_uint_ne(fa, fb);
    ck_assert_uint_ne(fa, fc);
    ck_assert_uint_ne(fa, fd);
    ck_assert_uint_ne(fb, fc);
    tokenizer_free(a);
    tokenizer_free(a2);
    tokenizer_free(b);
    tokenizer_free(c);
    tokenizer_free(d);
}
END_TEST

START_TEST(test_train_errors) {
    char err[1024] = "";
    const char *missing = test_tmp_path("tok-no-such-corpus.txt");
    ck_assert_ptr_null(tokenizer_train(&missing, 1, 1000, NULL, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, missing) != NULL, "message '%s' lacks the file", err);
    const char *corpus = SHAKESPEARE;
    ck_assert_ptr_null(tokenizer_train(&corpus, 1, 260, NULL, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "261") != NULL, "message '%s' lacks the minimum size", err);
    const char *tiny = test_tmp_path("tok-tiny.txt");
    write_all(tiny, "abab", 4);
    ck_assert_ptr_null(tokenizer_train(&tiny, 1, 300, NULL, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, tiny) && strstr(err, "too small"), "message '%s'", err);
}
END_TEST

// ---- bad files ---------------------------------------------------------------------------------

// A copy of GPT-2's folder under the scratch directory, with vocab.bpe replaced by `merges`
// (or left out when NULL).
static const char *gpt2_copy(const char *name, const char *merges) {
    const char *dir = test_tmp_path(name);
    char path[4096];
    mkdir(dir, 0755);
    size_t len;
    char *encoder = read_all(GPT2_DIR "/encoder.json", &len);
    snprintf(path, sizeof(path), "%s/encoder.json", dir);
    write_all(path, encoder, len);
    free(encoder);
    snprintf(path, sizeof(path), "%s/vocab.bpe", dir);
    remove(path);
    if (merges) write_all(path, merges, strlen(merges));
    return dir;
}

START_TEST(test_load_errors) {
    load_fails(test_tmp_path("tok-missing.json"), "tok-missing.json: No such file");

    const char *bad = test_tmp_path("tok-malformed.json");
    write_all(bad, "{\n  \"format\": \"layercake-tokenizer\",\n  \"version\": 1,\n  oops\n}\n", 62);
    char want[4200];
    snprintf(want, sizeof(want), "%s:4:", bad);
    load_fails(bad, want);

    const char *wrong = test_tmp_path("tok-wrong-version.json");
    const char *doc = "{\"format\": \"layercake-tokenizer\", \"version\": 9}";
    write_all(wrong, doc, strlen(doc));
    load_fails(wrong, "version 9");

    const char *no_merges = gpt2_copy("tok-no-merges", NULL);
    snprintf(want, sizeof(want), "%s/vocab.bpe: No such file", no_merges);
    load_fails(no_merges, want);

    const char *bad_line = gpt2_copy("tok-bad-line", "#version: 0.2\nĠ t\nh e x\n");
    snprintf(want, sizeof(want), "%s/vocab.bpe:3: expected two tokens", bad_line);
    load_fails(bad_line, want);

    const char *unknown = gpt2_copy(
        "tok-unknown", "#version: 0.2\nĠ t\nĠt ĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠ\n");
    snprintf(want, sizeof(want), "%s/vocab.bpe:3: names a token not in the vocabulary", unknown);
    load_fails(unknown, want);
}
END_TEST

// A trained file whose contents were changed no longer matches its fingerprint: here the
// first two merges trade places (both join single bytes, so the file is otherwise valid).
START_TEST(test_load_detects_edits) {
    Tokenizer *tok = train_ok(SHAKESPEARE, 300, NULL, 0);
    const char *path = test_tmp_path("tok-edited.json");
    char err[1024] = "";
    ck_assert_msg(tokenizer_save(tok, path, err, sizeof(err)) == 0, "%s", err);
    tokenizer_free(tok);
    tokenizer_free(load_ok(path)); // loads before the edit
    size_t len;
    char *text = read_all(path, &len);
    char *first = strstr(text, "\"merges\": [\n");
    ck_assert_ptr_nonnull(first);
    first = strchr(first, '\n') + 1;
    char *second = strchr(first, '\n') + 1, *rest = strchr(second, '\n') + 1;
    size_t l1 = (size_t)(second - first), l2 = (size_t)(rest - second);
    char *swapped = malloc(l1 + l2);
    memcpy(swapped, second, l2);
    memcpy(swapped + l2, first, l1);
    memcpy(first, swapped, l1 + l2);
    free(swapped);
    write_all(path, text, len);
    free(text);
    load_fails(path, "fingerprint");
}
END_TEST

int main(void) {
    Suite *s = suite_create("tokenizer");
    TCase *gpt2 = tcase_create("gpt2");
    tcase_add_test(gpt2, test_gpt2_matches_reference);
    tcase_add_test(gpt2, test_gpt2_special_tokens);
    tcase_add_test(gpt2, test_gpt2_tinyshakespeare);
    tcase_add_test(gpt2, test_gpt2_fingerprint_is_stable);
    tcase_add_test(gpt2, test_gpt2_kind_and_special_ids);
    tcase_add_test(gpt2, test_gpt2_save_load);
    tcase_add_test(gpt2, test_gpt2_hugging_face_names);
    suite_add_tcase(s, gpt2);
    TCase *bytes = tcase_create("bytes");
    tcase_add_test(bytes, test_invalid_utf8_is_its_own_piece);
    tcase_add_test(bytes, test_gpt2_round_trip_random);
    tcase_add_test(bytes, test_trained_round_trip_random);
    tcase_add_test(bytes, test_decode_rejects_bad_ids);
    suite_add_tcase(s, bytes);
    TCase *train = tcase_create("train");
    tcase_add_test(train, test_train_is_deterministic);
    tcase_add_test(train, test_train_reserves_specials);
    tcase_add_test(train, test_train_exact_sizes);
    tcase_add_test(train, test_train_by_hand);
    tcase_add_test(train, test_train_matches_naive_trainer);
    tcase_add_test(train, test_train_save_load);
    tcase_add_test(train, test_fingerprints_differ);
    tcase_add_test(train, test_train_errors);
    suite_add_tcase(s, train);
    TCase *files = tcase_create("files");
    tcase_add_test(files, test_load_errors);
    tcase_add_test(files, test_load_detects_edits);
    suite_add_tcase(s, files);
    return run_suite(s);
}
