// tests/test_tokenizer_hf.c: the tokenizers of pretrained models. Hugging Face tokenizer.json
// (byte-level BPE in the styles of GPT-2, Llama 3, Qwen2 and SmolLM, built by tests/tok_ref.py,
// whose pure-Python pipeline gives the ids expected; GPT-2's real vocabulary as a
// tokenizer.json), SentencePiece models trained here with spm_train and checked against
// spm_encode, llama2.c's tok512.bin against run.c's numbers and a Python run.c, NFC against
// Python's unicodedata, the export to Hugging Face folders, BOS/EOS/PAD and chat templates from
// the configuration files, fingerprints, and the errors for malformed files.
#include "data/tokenizer-impl.h"
#include "tests/testutil.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GPT2_DIR    LC_SAMPLES "/gpt2-tokenizer"
#define SHAKESPEARE LC_SAMPLES "/tinyshakespeare/input.txt"
#define TOK512      LC_SAMPLES "/tinyllamas/tok512.bin"
#define CORPUS      LC_SOURCE_DIR "/tests/fixtures/tokenizers/tinystories-head.txt"

static const char *const STYLES[] = {"gpt2", "gpt2-prefix", "llama3", "qwen2", "smollm", "mixed"};
#define N_STYLES 6

static char FIX[2048]; // tests/tok_ref.py's output folder

// ---- helpers -----------------------------------------------------------------------------------

static const char *fix(const char *name) {
    static char buf[8][4096];
    static int next = 0;
    char *p = buf[next++ % 8];
    snprintf(p, 4096, "%s/%s", FIX, name);
    return p;
}

static Tokenizer *load_ok(const char *path) {
    char err[1024] = "";
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    ck_assert_msg(tok != NULL, "loading %s failed: %s", path, err);
    return tok;
}

// Loading must fail with a message holding each of want[].
static void load_fails(const char *path, const char *want1, const char *want2) {
    char err[2048] = "";
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    ck_assert_msg(tok == NULL, "loading %s should fail", path);
    ck_assert_msg(strstr(err, want1) != NULL, "message '%s' lacks '%s'", err, want1);
    if (want2) ck_assert_msg(strstr(err, want2) != NULL, "message '%s' lacks '%s'", err, want2);
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

static void write_str(const char *path, const char *text) {
    write_all(path, text, strlen(text));
}

static const char *tmp_dir(const char *name) {
    const char *dir = test_tmp_path(name);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    return dir;
}

static const char *in_dir(const char *dir, const char *name) {
    static char buf[8][4096];
    static int next = 0;
    char *p = buf[next++ % 8];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

static void copy_file(const char *from, const char *to) {
    size_t len;
    char *bytes = read_all(from, &len);
    write_all(to, bytes, len);
    free(bytes);
}

// Each line of a JSONL file, parsed.
static json_t *read_jsonl(const char *path) {
    size_t len;
    char *text = read_all(path, &len);
    json_t *all = json_array();
    for (char *s = text, *eol; s < text + len; s = eol + 1) {
        eol = strchr(s, '\n');
        if (!eol) eol = text + len;
        json_error_t je;
        json_t *v = json_loadb(s, (size_t)(eol - s), JSON_DECODE_ANY, &je);
        ck_assert_msg(v != NULL, "%s: %s", path, je.text);
        json_array_append_new(all, v);
    }
    free(text);
    return all;
}

static int *encode(const Tokenizer *tok, const char *text, int allow_special, int *n) {
    int *ids;
    *n = tokenizer_encode(tok, text, strlen(text), allow_special, &ids);
    return ids;
}

static void assert_ids(const char *what, const char *text, const int *got, int n, json_t *want) {
    ck_assert_msg((size_t)n == json_array_size(want), "%s: \"%s\": %d ids, want %zu", what, text, n,
                  json_array_size(want));
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == json_integer_value(json_array_get(want, (size_t)i)),
                      "%s: \"%s\": id %d is %d, want %lld", what, text, i, got[i],
                      (long long)json_integer_value(json_array_get(want, (size_t)i)));
}

static void assert_int_array(const int *got, int n, const int *want, int n_want) {
    ck_assert_int_eq(n, n_want);
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "id %d: %d, want %d", i, got[i], want[i]);
}

// Decoding gives want (len bytes) exactly.
static void assert_decodes(const Tokenizer *tok, const int *ids, int n, const char *want,
                           size_t len) {
    size_t got_len;
    char *got = tokenizer_decode(tok, ids, n, &got_len);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(got_len == len && memcmp(got, want, len) == 0, "decoded \"%s\", want \"%.*s\"",
                  got, (int)len, want);
    free(got);
}

static void assert_round_trip(const Tokenizer *tok, const char *text, size_t len) {
    int *ids;
    int n = tokenizer_encode(tok, text, len, 0, &ids);
    assert_decodes(tok, ids, n, text, len);
    free(ids);
}

// The same ids for text from both tokenizers.
static void assert_same_encoding(const Tokenizer *a, const Tokenizer *b, const char *text,
                                 size_t len, int allow_special) {
    int *x, *y;
    int nx = tokenizer_encode(a, text, len, allow_special, &x);
    int ny = tokenizer_encode(b, text, len, allow_special, &y);
    ck_assert_msg(nx == ny, "%d ids against %d for \"%.40s\"", nx, ny, text);
    ck_assert_msg(memcmp(x, y, (size_t)nx * sizeof(int)) == 0, "different ids for \"%.60s\"", text);
    free(x);
    free(y);
}

static json_t *cases(void) {
    return read_jsonl(fix("cases.txt"));
}

// The id of a token by its exact bytes, or -1.
static int token_id(const Tokenizer *tok, const char *bytes) {
    size_t n = strlen(bytes);
    for (int id = 0; id < tokenizer_vocab_size(tok); id++) {
        size_t k;
        const char *b = tokenizer_token(tok, id, &k);
        if (k == n && memcmp(b, bytes, n) == 0) return id;
    }
    return -1;
}

// Random byte strings: text with spaces, digits, specials, UTF-8 fragments and invalid bytes.
static size_t random_text(Rng *r, char *buf, size_t cap) {
    static const char *const frags[] = {"the",        " cat",
                                        "'s",         "  ",
                                        "\n\n",       "\t",
                                        "42",         "é",
                                        "中文",       "\xf0\x9f\x98\x80",
                                        "\x80",       "\xbf\xbf",
                                        "\xe4\xb8",   "\xff",
                                        "\xc3",       "<|endoftext|>",
                                        "<|im_end|>", "<mask>",
                                        "e\xcc\x81",  "\xe1\x84\x80",
                                        "!?",         " 123"};
    size_t len = rng_below(r, cap / 2), n = 0;
    while (n < len) {
        const char *f = frags[rng_below(r, sizeof(frags) / sizeof(frags[0]))];
        size_t fl = strlen(f);
        if (n + fl > cap) break;
        memcpy(buf + n, f, fl);
        n += fl;
    }
    return n;
}

// ---- Hugging Face tokenizer.json ---------------------------------------------------------------

// The pre-tokeniser's pieces, as [text, special id or -1] pairs.
static void collect_piece(void *ctx, const char *piece, size_t len, int special_id) {
    json_array_append_new(ctx, json_pack("[s%, i]", piece, len, special_id));
}

static void assert_pieces(const Tokenizer *tok, const char *style, const char *text, json_t *want) {
    json_t *got = json_array();
    tok->ops->pretokenize_text(tok, text, strlen(text), 1, collect_piece, got);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_ENSURE_ASCII), *w = json_dumps(want, JSON_ENSURE_ASCII);
        ck_abort_msg("%s: \"%s\": pieces %s, want %s", style, text, g, w);
    }
    json_decref(got);
}

// Every case, with and without special tokens matched, gives tok_ref.py's pieces and ids;
// decoding gives its decoded text.
START_TEST(test_hf_styles_match_reference) {
    json_t *texts = cases();
    ck_assert_uint_ge(json_array_size(texts), 300);
    for (int s = 0; s < N_STYLES; s++) {
        Tokenizer *tok = load_ok(fix(STYLES[s]));
        ck_assert_str_eq(tokenizer_kind(tok), "hf-bpe");
        char name[64];
        snprintf(name, sizeof(name), "%s.jsonl", STYLES[s]);
        json_t *want = read_jsonl(fix(name));
        ck_assert_uint_eq(json_array_size(want), json_array_size(texts));
        size_t i;
        json_t *w;
        json_array_foreach(want, i, w) {
            const char *text = json_string_value(json_array_get(texts, i));
            assert_pieces(tok, STYLES[s], text, json_object_get(w, "pieces"));
            int n, *ids = encode(tok, text, 1, &n);
            assert_ids(STYLES[s], text, ids, n, json_object_get(w, "ids"));
            json_t *decoded = json_object_get(w, "decoded");
            assert_decodes(tok, ids, n, json_string_value(decoded), json_string_length(decoded));
            free(ids);
            ids = encode(tok, text, 0, &n);
            assert_ids(STYLES[s], text, ids, n, json_object_get(w, "plain"));
            free(ids);
        }
        json_decref(want);
        tokenizer_free(tok);
    }
    json_decref(texts);
}
END_TEST

// Without NFC or a prefix space, any bytes come back exactly, invalid UTF-8 included.
START_TEST(test_hf_round_trip) {
    json_t *texts = cases();
    const char *exact[] = {"gpt2", "llama3", "smollm"};
    for (int s = 0; s < 3; s++) {
        Tokenizer *tok = load_ok(fix(exact[s]));
        size_t i;
        json_t *t;
        json_array_foreach(texts, i, t)
            assert_round_trip(tok, json_string_value(t), json_string_length(t));
        Rng r = rng_init(99 + (uint64_t)s);
        char buf[400];
        for (int k = 0; k < 300; k++)
            assert_round_trip(tok, buf, random_text(&r, buf, sizeof(buf)));
        tokenizer_free(tok);
    }
    json_decref(texts);
}
END_TEST

// Added tokens by hand: lstrip takes the spaces before, rstrip those after; normalized ones
// match after NFC; non-special ones match even without allow_special.
START_TEST(test_hf_added_tokens) {
    Tokenizer *gpt2 = load_ok(fix("gpt2")), *qwen = load_ok(fix("qwen2"));
    int mask = tokenizer_special(gpt2, "<mask>");
    ck_assert_int_ge(mask, 0);
    int n1, n2, n, *a = encode(gpt2, "before", 0, &n1), *b = encode(gpt2, " after", 0, &n2);
    int *ids = encode(gpt2, "before   <mask> after", 1, &n);
    ck_assert_int_eq(n, n1 + 1 + n2);
    ck_assert_int_eq(memcmp(ids, a, (size_t)n1 * sizeof(int)), 0);
    ck_assert_int_eq(ids[n1], mask);
    ck_assert_int_eq(memcmp(ids + n1 + 1, b, (size_t)n2 * sizeof(int)), 0);
    free(ids);
    free(a);
    free(b);
    int cafe = tokenizer_special(qwen, "Cafe\xcc\x81"), tool = tokenizer_special(qwen, "<tool>");
    ck_assert_int_ge(cafe, 0);
    ck_assert_int_ge(tool, 0);
    const char *forms[] = {"Caf\xc3\xa9", "Cafe\xcc\x81"}; // NFC and NFD: both are the token
    for (int k = 0; k < 2; k++) {
        ids = encode(qwen, forms[k], 0, &n);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(ids[0], cafe);
        free(ids);
    }
    ids = encode(qwen, "<tool>   x", 0, &n); // rstrip: the spaces go with the token
    a = encode(qwen, "x", 0, &n1);
    ck_assert_int_eq(n, 1 + n1);
    ck_assert_int_eq(ids[0], tool);
    ck_assert_int_eq(ids[1], a[0]);
    free(ids);
    free(a);
    ids = encode(qwen, "<|im_start|>", 1, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], tokenizer_special(qwen, "<|im_start|>"));
    free(ids);
    ids = encode(qwen, "<|im_start|>", 0, &n);
    ck_assert_int_gt(n, 1);
    for (int i = 0; i < n; i++) ck_assert_int_ne(ids[i], tokenizer_special(qwen, "<|im_start|>"));
    free(ids);
    tokenizer_free(gpt2);
    tokenizer_free(qwen);
}
END_TEST

// A copy of a style's tokenizer.json edited by fn, in its own folder.
static const char *edited_copy(const char *style, const char *name, void (*fn)(json_t *root)) {
    const char *dir = tmp_dir(name);
    json_error_t je;
    json_t *root = json_load_file(in_dir(fix(style), "tokenizer.json"), 0, &je);
    ck_assert_ptr_nonnull(root);
    fn(root);
    ck_assert_int_eq(json_dump_file(root, in_dir(dir, "tokenizer.json"), 0), 0);
    json_decref(root);
    copy_file(in_dir(fix(style), "tokenizer_config.json"), in_dir(dir, "tokenizer_config.json"));
    return dir;
}

static void no_ignore_merges(json_t *root) {
    json_object_set_new(json_object_get(root, "model"), "ignore_merges", json_false());
}

static void merges_as_pairs(json_t *root) {
    json_t *merges = json_object_get(json_object_get(root, "model"), "merges"), *m;
    size_t i;
    json_array_foreach(merges, i, m) {
        const char *s = json_string_value(m), *space = strchr(s, ' ');
        json_array_set_new(merges, i, json_pack("[s%, s]", s, (size_t)(space - s), space + 1));
    }
}

// Llama 3's ignore_merges: a pre-token that is a vocabulary token is that token, even where the
// merges would split it; the same file without it splits.
START_TEST(test_hf_ignore_merges) {
    Tokenizer *on = load_ok(fix("llama3")),
              *off = load_ok(edited_copy("llama3", "tok-hf-noim", no_ignore_merges));
    int needle = token_id(on, " needle");
    ck_assert_int_ge(needle, 0);
    int n, *ids = encode(on, " needle", 0, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], needle);
    free(ids);
    ids = encode(off, " needle", 0, &n);
    ck_assert_int_gt(n, 1);
    assert_decodes(off, ids, n, " needle", 7);
    free(ids);
    ck_assert_uint_ne(tokenizer_fingerprint(on), tokenizer_fingerprint(off));
    tokenizer_free(on);
    tokenizer_free(off);
}
END_TEST

// Hugging Face merges the leftmost occurrence of the lowest-ranked pair, then looks again, so a
// pair a merge has just made competes at once: with merges "ab a" (rank 0) and "a b" (rank 1),
// "abab" is aba|b, where GPT-2's rounds (all of a rank at once) would make ab|ab.
START_TEST(test_hf_merge_order) {
    const char *dir = tmp_dir("tok-hf-order");
    json_t *vocab = json_object();
    ByteCodec c;
    codec_init(&c);
    for (int b = 0; b < 256; b++) {
        char byte = (char)b;
        ByteVec s = {0};
        codec_spell(&c, &byte, 1, &s);
        bytevec_append(&s, "", 1);
        json_object_set_new(vocab, s.v, json_integer(b));
        free(s.v);
    }
    json_object_set_new(vocab, "ab", json_integer(256));
    json_object_set_new(vocab, "aba", json_integer(257));
    json_t *root = json_pack("{s:{s:s, s:b}, s:{s:s, s:o, s:[s, s]}}", "pre_tokenizer", "type",
                             "ByteLevel", "add_prefix_space", 0, "model", "type", "BPE", "vocab",
                             vocab, "merges", "ab a", "a b");
    ck_assert_int_eq(json_dump_file(root, in_dir(dir, "tokenizer.json"), 0), 0);
    json_decref(root);
    Tokenizer *tok = load_ok(dir);
    int n, *ids = encode(tok, "abab", 0, &n);
    const int want[] = {257, 'b'};
    assert_int_array(ids, n, want, 2);
    free(ids);
    tokenizer_free(tok);
}
END_TEST

// Merges spelled "a b" or ["a", "b"] make the same tokenizer.
START_TEST(test_hf_merges_spellings) {
    Tokenizer *strings = load_ok(fix("gpt2")),
              *pairs = load_ok(edited_copy("gpt2", "tok-hf-pairs", merges_as_pairs));
    ck_assert_uint_eq(tokenizer_fingerprint(strings), tokenizer_fingerprint(pairs));
    size_t len;
    char *text = read_all(CORPUS, &len);
    assert_same_encoding(strings, pairs, text, len, 1);
    free(text);
    tokenizer_free(strings);
    tokenizer_free(pairs);
}
END_TEST

// GPT-2's real files as the tokenizer.json Hugging Face ships for it: the same ids as GPT-2's
// own encoder on all of tinyshakespeare (count and hash from tests/gpt2_ref_tokenize.py).
static uint64_t fnv1a_ids(const int *ids, int n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            h = (h ^ (((uint32_t)ids[i] >> (8 * k)) & 0xff)) * 0x100000001b3ull;
    return h;
}

START_TEST(test_hf_real_gpt2) {
    const char *dir = tmp_dir("tok-hf-gpt2");
    json_error_t je;
    json_t *vocab = json_load_file(GPT2_DIR "/encoder.json", 0, &je), *merges = json_array();
    ck_assert_ptr_nonnull(vocab);
    size_t len;
    char *bpe = read_all(GPT2_DIR "/vocab.bpe", &len);
    for (char *s = strchr(bpe, '\n') + 1, *eol; s < bpe + len; s = eol + 1) { // skip #version
        eol = strchr(s, '\n');
        if (!eol) eol = bpe + len;
        if (eol > s) json_array_append_new(merges, json_stringn(s, (size_t)(eol - s)));
    }
    free(bpe);
    json_t *root = json_pack(
        "{s:s, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}], s:n, s:{s:s, s:b, s:b, s:b}, s:n, "
        "s:{s:s, s:b, s:b, s:b}, s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:o, s:o}}",
        "version", "1.0", "added_tokens", "id", 50256, "content", "<|endoftext|>", "single_word", 0,
        "lstrip", 0, "rstrip", 0, "normalized", 1, "special", 1, "normalizer", "pre_tokenizer",
        "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1,
        "post_processor", "decoder", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1,
        "use_regex", 1, "model", "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix",
        "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0, "vocab", vocab, "merges", merges);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(json_dump_file(root, in_dir(dir, "tokenizer.json"), 0), 0);
    json_decref(root);
    Tokenizer *tok = load_ok(dir), *gpt2 = load_ok(GPT2_DIR);
    ck_assert_str_eq(tokenizer_kind(tok), "hf-bpe");
    ck_assert_int_eq(tokenizer_vocab_size(tok), 50257);
    ck_assert_int_eq(tokenizer_eos(tok), 50256); // <|endoftext|>, the default
    char *text = read_all(SHAKESPEARE, &len);
    int *ids;
    int n = tokenizer_encode(tok, text, len, 0, &ids);
    ck_assert_int_eq(n, 338025);
    ck_assert_uint_eq(fnv1a_ids(ids, n), 0xe22fcd868ca90167ull);
    free(ids);
    free(text);
    Rng r = rng_init(5);
    char buf[400];
    for (int k = 0; k < 300; k++) {
        size_t m = random_text(&r, buf, sizeof(buf));
        assert_same_encoding(tok, gpt2, buf, m, k % 2);
    }
    ck_assert_uint_ne(tokenizer_fingerprint(tok), tokenizer_fingerprint(gpt2));
    tokenizer_free(tok);
    tokenizer_free(gpt2);
}
END_TEST

// BOS, EOS and PAD from tokenizer_config.json (a string or {"content": ...}), else config.json
// (an id, or a list whose first counts), else the kind's; the chat template.
START_TEST(test_hf_special_ids_and_template) {
    Tokenizer *llama = load_ok(fix("llama3"));
    ck_assert_int_eq(tokenizer_bos(llama), tokenizer_special(llama, "<|begin_of_text|>"));
    ck_assert_int_eq(tokenizer_eos(llama), tokenizer_special(llama, "<|eot_id|>"));
    ck_assert_int_eq(tokenizer_eot(llama), tokenizer_eos(llama));
    ck_assert_int_eq(tokenizer_pad(llama), -1);
    ck_assert_ptr_nonnull(tokenizer_chat_template(llama));
    ck_assert_ptr_nonnull(strstr(tokenizer_chat_template(llama), "llama3{{ m['content'] }}"));

    // config.json only: eos as a list, pad as an id
    const char *dir = tmp_dir("tok-hf-config");
    copy_file(in_dir(fix("llama3"), "tokenizer.json"), in_dir(dir, "tokenizer.json"));
    int eot = tokenizer_special(llama, "<|eot_id|>"),
        eos = tokenizer_special(llama, "<|end_of_text|>");
    char doc[256];
    snprintf(doc, sizeof(doc),
             "{\"bos_token_id\": 3, \"eos_token_id\": [%d, %d], \"pad_token_id\": %d}", eos, eot,
             eot);
    write_str(in_dir(dir, "config.json"), doc);
    Tokenizer *cfg = load_ok(dir);
    ck_assert_int_eq(tokenizer_bos(cfg), 3);
    ck_assert_int_eq(tokenizer_eos(cfg), eos);
    ck_assert_int_eq(tokenizer_pad(cfg), eot);
    ck_assert_ptr_null(tokenizer_chat_template(cfg));
    ck_assert_uint_ne(tokenizer_fingerprint(cfg), tokenizer_fingerprint(llama));

    // tokenizer_config.json wins over config.json, field by field
    write_str(in_dir(dir, "tokenizer_config.json"),
              "{\"eos_token\": {\"content\": \"<|end_of_text|>\"}, \"pad_token\": null, "
              "\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": "
              "\"default\", \"template\": \"D\"}]}");
    Tokenizer *both = load_ok(dir);
    ck_assert_int_eq(tokenizer_bos(both), 3);
    ck_assert_int_eq(tokenizer_eos(both), eos);
    ck_assert_int_eq(tokenizer_pad(both), eot);
    ck_assert_str_eq(tokenizer_chat_template(both), "D");

    // neither: the kind's default (no <|endoftext|> here, so no EOS)
    remove(in_dir(dir, "tokenizer_config.json"));
    remove(in_dir(dir, "config.json"));
    Tokenizer *none = load_ok(in_dir(dir, "tokenizer.json"));
    ck_assert_int_eq(tokenizer_bos(none), -1);
    ck_assert_int_eq(tokenizer_eos(none), -1);

    write_str(in_dir(dir, "tokenizer_config.json"), "{\"bos_token\": \"<|no_such_token|>\"}");
    load_fails(dir, "tokenizer_config.json: bos_token \"<|no_such_token|>\" is not a token", NULL);
    write_str(in_dir(dir, "tokenizer_config.json"), "{}");
    write_str(in_dir(dir, "config.json"), "{\"eos_token_id\": 999999}");
    load_fails(dir, "config.json: eos_token_id is not a token id", NULL);
    tokenizer_free(llama);
    tokenizer_free(cfg);
    tokenizer_free(both);
    tokenizer_free(none);
}
END_TEST

// ---- NFC ---------------------------------------------------------------------------------------

START_TEST(test_nfc_matches_python) {
    json_t *all = read_jsonl(fix("nfc.jsonl")), *c;
    ck_assert_uint_eq(json_array_size(all), 3000);
    size_t i, changed = 0;
    json_array_foreach(all, i, c) {
        json_t *text = json_object_get(c, "text"), *want = json_object_get(c, "nfc");
        ByteVec out = {0};
        nfc_normalize(json_string_value(text), json_string_length(text), &out);
        ck_assert_msg(out.n == json_string_length(want) &&
                          memcmp(out.v, json_string_value(want), out.n) == 0,
                      "NFC of case %zu differs from Python's", i);
        bool same = json_string_length(text) == json_string_length(want) &&
                    memcmp(json_string_value(text), json_string_value(want), out.n) == 0;
        if (!same) {
            changed++;
            ck_assert(!nfc_quick_check(json_string_value(text), json_string_length(text)));
        }
        free(out.v);
    }
    ck_assert_uint_gt(changed, 1000); // the cases do exercise it
    json_decref(all);
}
END_TEST

// ---- SentencePiece -----------------------------------------------------------------------------

// Trains a model with spm_train into dir/NAME.model (quietly), returning its path.
static const char *spm_train(const char *dir, const char *name, const char *options) {
    char cmd[8192];
    const char *prefix = in_dir(dir, name);
    snprintf(cmd, sizeof(cmd),
             "%s --input=%s --model_prefix=%s --model_type=bpe --byte_fallback=true "
             "--num_threads=1 %s > %s.log 2>&1",
             LC_SPM_TRAIN, CORPUS, prefix, options, prefix);
    ck_assert_msg(system(cmd) == 0, "spm_train failed: see %s.log", prefix);
    static char path[4][4096];
    static int next = 0;
    char *p = path[next++ % 4];
    snprintf(p, 4096, "%s.model", prefix);
    return p;
}

// The ids spm_encode gives for each line of tok_ref.py's lines.txt.
static json_t *spm_encode_lines(const char *model, const char *out) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s --model=%s --output_format=id < %s > %s", LC_SPM_ENCODE, model,
             fix("lines.txt"), out);
    ck_assert_int_eq(system(cmd), 0);
    size_t len;
    char *text = read_all(out, &len);
    json_t *all = json_array();
    for (char *s = text, *eol; s < text + len; s = eol + 1) {
        eol = strchr(s, '\n');
        *eol = '\0';
        json_t *ids = json_array();
        for (char *t = s, *end; *t; t = end) {
            long v = strtol(t, &end, 10);
            if (end == t) break;
            json_array_append_new(ids, json_integer(v));
        }
        json_array_append_new(all, ids);
    }
    free(text);
    return all;
}

static void check_against_spm_encode(const char *model, const char *ids_file, bool round_trip) {
    Tokenizer *tok = load_ok(model);
    ck_assert_str_eq(tokenizer_kind(tok), "sentencepiece");
    json_t *want = spm_encode_lines(model, ids_file);
    size_t len;
    char *lines = read_all(fix("lines.txt"), &len);
    size_t k = 0;
    for (char *s = lines, *eol; s < lines + len; s = eol + 1, k++) {
        eol = strchr(s, '\n');
        *eol = '\0';
        int n, *ids = encode(tok, s, 1, &n);
        assert_ids(model, s, ids, n, json_array_get(want, k));
        if (round_trip) assert_decodes(tok, ids, n, s, strlen(s));
        free(ids);
    }
    ck_assert_uint_eq(k, json_array_size(want));
    ck_assert_uint_gt(k, 250);
    free(lines);
    json_decref(want);
    tokenizer_free(tok);
}

// Our encodings are the library's (spm_encode's) on every line, with its default normalization
// and with the identity one, where decoding also gives back each line exactly.
START_TEST(test_spm_matches_spm_encode) {
    const char *dir = tmp_dir("tok-spm");
    const char *plain = spm_train(dir, "nfkc", "--vocab_size=400");
    const char *exact =
        spm_train(dir, "identity",
                  "--vocab_size=400 --character_coverage=1.0 "
                  "--normalization_rule_name=identity --remove_extra_whitespaces=false");
    check_against_spm_encode(plain, in_dir(dir, "nfkc.ids"), false);
    check_against_spm_encode(exact, in_dir(dir, "identity.ids"), true);
}
END_TEST

START_TEST(test_spm_specials_and_folder) {
    const char *dir = tmp_dir("tok-spm-ids");
    const char *model =
        spm_train(dir, "m", "--vocab_size=400 --pad_id=3 --unk_id=0 --bos_id=1 --eos_id=2");
    Tokenizer *tok = load_ok(model);
    ck_assert_int_eq(tokenizer_vocab_size(tok), 400);
    ck_assert_int_eq(tokenizer_bos(tok), 1);
    ck_assert_int_eq(tokenizer_eos(tok), 2);
    ck_assert_int_eq(tokenizer_eot(tok), 2);
    ck_assert_int_eq(tokenizer_pad(tok), 3);
    ck_assert_int_eq(tokenizer_special(tok, "<s>"), 1);
    ck_assert_int_eq(tokenizer_special(tok, "</s>"), 2);
    ck_assert_int_eq(tokenizer_special(tok, "<unk>"), 0);
    ck_assert_ptr_null(tokenizer_chat_template(tok));
    // "<s>" in the text is text, as the library has it
    int n, *ids = encode(tok, "<s>", 1, &n);
    for (int i = 0; i < n; i++) ck_assert_int_ne(ids[i], 1);
    free(ids);
    // a piece's bytes: U+2581 is a space, a byte piece its byte
    size_t len;
    int the = -1;
    for (int id = 0; id < tokenizer_vocab_size(tok) && the < 0; id++) {
        const char *b = tokenizer_token(tok, id, &len);
        if (len == 4 && memcmp(b, " the", 4) == 0) the = id;
    }
    ck_assert_int_ge(the, 0);
    ids = encode(tok, "the", 1, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], the);
    free(ids);
    const char *b = tokenizer_token(tok, 4 + 0x41, &len); // <0x41>, after the 4 reserved ids
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(b[0], 'A');
    // a folder holding it as tokenizer.model, with its configuration
    const char *folder = tmp_dir("tok-spm-folder");
    copy_file(model, in_dir(folder, "tokenizer.model"));
    write_str(in_dir(folder, "tokenizer_config.json"),
              "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"pad_token\": \"</s>\", "
              "\"chat_template\": \"{{ bos_token }}\"}");
    Tokenizer *f = load_ok(folder);
    ck_assert_str_eq(tokenizer_kind(f), "sentencepiece");
    ck_assert_int_eq(tokenizer_pad(f), 2);
    ck_assert_str_eq(tokenizer_chat_template(f), "{{ bos_token }}");
    ck_assert_uint_ne(tokenizer_fingerprint(f), tokenizer_fingerprint(tok)); // PAD differs
    Tokenizer *again = load_ok(model);
    ck_assert_uint_eq(tokenizer_fingerprint(again), tokenizer_fingerprint(tok));
    tokenizer_free(tok);
    tokenizer_free(f);
    tokenizer_free(again);
}
END_TEST

// ---- llama2.c ----------------------------------------------------------------------------------

START_TEST(test_llama2c_once_upon_a_time) {
    Tokenizer *tok = load_ok(TOK512);
    ck_assert_str_eq(tokenizer_kind(tok), "llama2c");
    ck_assert_int_eq(tokenizer_vocab_size(tok), 512);
    ck_assert_int_eq(tokenizer_bos(tok), 1);
    ck_assert_int_eq(tokenizer_eos(tok), 2);
    ck_assert_int_eq(tokenizer_pad(tok), -1);
    ck_assert_int_eq(tokenizer_special(tok, "<s>"), 1);
    int n, *ids = encode(tok, "Once upon a time", 1, &n);
    int with_bos[8] = {1};
    memcpy(with_bos + 1, ids, (size_t)n * sizeof(int));
    const int want[] = {1, 403, 407, 261, 378}; // samples/tinyllamas/SOURCE.md
    assert_int_array(with_bos, n + 1, want, 5);
    assert_decodes(tok, want, 5, "Once upon a time", 16);
    assert_decodes(tok, want + 1, 4, " Once upon a time", 17); // no BOS: the space stays
    free(ids);
    ids = encode(tok, "", 1, &n);
    ck_assert_int_eq(n, 0);
    free(ids);
    tokenizer_free(tok);
}
END_TEST

// A character not in the vocabulary becomes its bytes' tokens (byte + 3), and decodes back.
START_TEST(test_llama2c_byte_fallback) {
    Tokenizer *tok = load_ok(TOK512);
    const char *text = "a \xf0\x9f\x98\x80!"; // a 😀!
    int n, *ids = encode(tok, text, 1, &n);
    int found = 0;
    for (int i = 0; i + 3 < n; i++)
        if (ids[i] == 0xf0 + 3 && ids[i + 1] == 0x9f + 3 && ids[i + 2] == 0x98 + 3 &&
            ids[i + 3] == 0x80 + 3)
            found = 1;
    ck_assert_msg(found, "the emoji's four byte tokens are missing");
    int *with_bos = malloc(((size_t)n + 1) * sizeof(int));
    with_bos[0] = 1;
    memcpy(with_bos + 1, ids, (size_t)n * sizeof(int));
    assert_decodes(tok, with_bos, n + 1, text, strlen(text));
    free(with_bos);
    free(ids);
    size_t len;
    const char *b = tokenizer_token(tok, 0x41 + 3, &len);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(b[0], 'A');
    tokenizer_free(tok);
}
END_TEST

// run.c's encoder in Python on every case; decoding after BOS gives the text back.
START_TEST(test_llama2c_matches_reference) {
    Tokenizer *tok = load_ok(TOK512);
    json_t *texts = cases(), *want = read_jsonl(fix("llama2c.jsonl")), *w;
    size_t i;
    json_array_foreach(want, i, w) {
        json_t *t = json_array_get(texts, i);
        const char *text = json_string_value(t);
        int n, *ids = encode(tok, text, 1, &n);
        assert_ids("llama2c", text, ids, n, json_object_get(w, "ids"));
        int *with_bos = malloc(((size_t)n + 1) * sizeof(int));
        with_bos[0] = 1;
        memcpy(with_bos + 1, ids, (size_t)n * sizeof(int));
        json_t *decoded = json_object_get(w, "decoded");
        assert_decodes(tok, with_bos, n + 1, json_string_value(decoded),
                       json_string_length(decoded));
        assert_decodes(tok, with_bos, n + 1, text, json_string_length(t));
        free(with_bos);
        free(ids);
    }
    json_decref(texts);
    json_decref(want);
    tokenizer_free(tok);
}
END_TEST

// Written as a SentencePiece model, libsentencepiece encodes every case as run.c does.
START_TEST(test_llama2c_export_sentencepiece) {
    Tokenizer *tok = load_ok(TOK512);
    const char *dir = tmp_dir("tok-l2c-hf");
    char err[1024] = "";
    ck_assert_msg(tokenizer_export_hf(tok, dir, err, sizeof(err)) == 0, "%s", err);
    Tokenizer *spm = load_ok(dir);
    ck_assert_str_eq(tokenizer_kind(spm), "sentencepiece");
    ck_assert_int_eq(tokenizer_vocab_size(spm), 512);
    ck_assert_int_eq(tokenizer_bos(spm), 1);
    ck_assert_int_eq(tokenizer_eos(spm), 2);
    ck_assert_int_eq(tokenizer_pad(spm), -1);
    json_t *texts = cases(), *t;
    size_t i;
    json_array_foreach(texts, i, t) {
        const char *text = json_string_value(t);
        assert_same_encoding(tok, spm, text, json_string_length(t), 0);
        int n, *ids = encode(spm, text, 0, &n);
        assert_decodes(spm, ids, n, text, json_string_length(t));
        free(ids);
    }
    size_t len;
    char *story = read_all(CORPUS, &len);
    assert_same_encoding(tok, spm, story, len, 0);
    free(story);
    json_decref(texts);
    tokenizer_free(spm);
    tokenizer_free(tok);
}
END_TEST

// ---- exports -----------------------------------------------------------------------------------

// A trained tokenizer as tokenizer.json: loads back (hf-bpe) to the same ids on any bytes.
START_TEST(test_export_trained) {
    const char *corpus = SHAKESPEARE, *extra[] = {"<|tool|>"};
    char err[1024] = "";
    Tokenizer *tok = tokenizer_train(&corpus, 1, 1500, extra, 1, err, sizeof(err));
    ck_assert_msg(tok != NULL, "%s", err);
    const char *dir = tmp_dir("tok-export-trained");
    ck_assert_msg(tokenizer_export_hf(tok, dir, err, sizeof(err)) == 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(in_dir(dir, "special_tokens_map.json"), &st), 0);
    Tokenizer *back = load_ok(dir);
    ck_assert_str_eq(tokenizer_kind(back), "hf-bpe");
    ck_assert_int_eq(tokenizer_vocab_size(back), 1500);
    ck_assert_int_eq(tokenizer_eos(back), tokenizer_eot(tok));
    ck_assert_int_eq(tokenizer_bos(back), -1);
    ck_assert_int_eq(tokenizer_special(back, "<|tool|>"), 1499);
    size_t len;
    char *text = read_all(SHAKESPEARE, &len);
    assert_same_encoding(tok, back, text, len, 1);
    free(text);
    Rng r = rng_init(17);
    char buf[400];
    for (int k = 0; k < 300; k++) {
        size_t m = random_text(&r, buf, sizeof(buf));
        assert_same_encoding(tok, back, buf, m, k % 2);
    }
    tokenizer_free(back);
    tokenizer_free(tok);
}
END_TEST

// GPT-2 exports as vocab.json + merges.txt and comes back the same tokenizer; an hf-bpe and a
// SentencePiece tokenizer come back with their fingerprints.
START_TEST(test_export_round_trips) {
    char err[1024] = "";
    Tokenizer *gpt2 = load_ok(GPT2_DIR);
    const char *dir = tmp_dir("tok-export-gpt2");
    ck_assert_msg(tokenizer_export_hf(gpt2, dir, err, sizeof(err)) == 0, "%s", err);
    Tokenizer *back = load_ok(dir);
    ck_assert_str_eq(tokenizer_kind(back), "gpt2");
    ck_assert_uint_eq(tokenizer_fingerprint(back), 0xdb40e90cfcdf0ea6ull);
    ck_assert_int_eq(tokenizer_eos(back), 50256);
    tokenizer_free(back);
    tokenizer_free(gpt2);

    for (int s = 0; s < N_STYLES; s++) {
        Tokenizer *tok = load_ok(fix(STYLES[s]));
        dir = tmp_dir("tok-export-hf");
        ck_assert_msg(tokenizer_export_hf(tok, dir, err, sizeof(err)) == 0, "%s", err);
        back = load_ok(dir);
        ck_assert_uint_eq(tokenizer_fingerprint(back), tokenizer_fingerprint(tok));
        ck_assert_str_eq(tokenizer_chat_template(back), tokenizer_chat_template(tok));
        ck_assert_int_eq(tokenizer_bos(back), tokenizer_bos(tok));
        ck_assert_int_eq(tokenizer_eos(back), tokenizer_eos(tok));
        size_t len;
        char *text = read_all(CORPUS, &len);
        assert_same_encoding(tok, back, text, len, 1);
        free(text);
        tokenizer_free(back);
        tokenizer_free(tok);
    }

    const char *sdir = tmp_dir("tok-export-spm-src");
    Tokenizer *spm = load_ok(spm_train(sdir, "m", "--vocab_size=400"));
    dir = tmp_dir("tok-export-spm");
    ck_assert_msg(tokenizer_export_hf(spm, dir, err, sizeof(err)) == 0, "%s", err);
    back = load_ok(dir);
    ck_assert_uint_eq(tokenizer_fingerprint(back), tokenizer_fingerprint(spm));
    tokenizer_free(back);
    tokenizer_free(spm);
}
END_TEST

// ---- kinds and fingerprints --------------------------------------------------------------------

START_TEST(test_kinds_and_fingerprints) {
    const char *corpus = SHAKESPEARE;
    char err[1024] = "";
    const char *sdir = tmp_dir("tok-kinds-spm");
    Tokenizer *toks[] = {tokenizer_train(&corpus, 1, 300, NULL, 0, err, sizeof(err)),
                         load_ok(GPT2_DIR),
                         load_ok(fix("gpt2")),
                         load_ok(fix("llama3")),
                         load_ok(spm_train(sdir, "m", "--vocab_size=400")),
                         load_ok(TOK512)};
    const char *kinds[] = {"layercake", "gpt2", "hf-bpe", "hf-bpe", "sentencepiece", "llama2c"};
    for (int i = 0; i < 6; i++) {
        ck_assert_ptr_nonnull(toks[i]);
        ck_assert_str_eq(tokenizer_kind(toks[i]), kinds[i]);
        for (int j = 0; j < i; j++)
            ck_assert_uint_ne(tokenizer_fingerprint(toks[i]), tokenizer_fingerprint(toks[j]));
    }
    Tokenizer *again = load_ok(TOK512);
    ck_assert_uint_eq(tokenizer_fingerprint(again), tokenizer_fingerprint(toks[5]));
    tokenizer_free(again);
    // layercake's file holds only byte-level BPE of GPT-2's pattern
    ck_assert_int_eq(tokenizer_save(toks[5], test_tmp_path("tok-l2c.json"), err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "tokenizer_export_hf"));
    for (int i = 0; i < 6; i++) tokenizer_free(toks[i]);
}
END_TEST

// ---- bad files ---------------------------------------------------------------------------------

// A tokenizer.json in its own folder, from a JSON document.
static const char *hf_file(const char *name, const char *doc) {
    const char *dir = tmp_dir(name);
    write_str(in_dir(dir, "tokenizer.json"), doc);
    return in_dir(dir, "tokenizer.json");
}

#define BL_PRE "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}"

START_TEST(test_hf_errors) {
    const char *p =
        hf_file("tok-bad-type", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    load_fails(p, p, "model.type is \"WordPiece\"");
    p = hf_file("tok-bad-unigram",
                "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}");
    load_fails(p, p, "model.type is \"Unigram\"");
    p = hf_file("tok-bad-nomerges",
                "{" BL_PRE ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}");
    load_fails(p, p, "model.merges: missing");
    p = hf_file("tok-bad-merge",
                "{" BL_PRE ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                "\"merges\": [\"a b\"]}}");
    load_fails(p, p, "model.merges[0]: \"b\" is not in model.vocab");
    p = hf_file("tok-bad-merge2",
                "{" BL_PRE ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                "\"merges\": [[\"a\", \"zz\"]]}}");
    load_fails(p, p, "model.merges[0]: \"zz\" is not in model.vocab");
    p = hf_file("tok-bad-json", "{\n  \"model\": {\n    \"type\": \"BPE\",\n    oops\n}\n");
    char want[4200];
    snprintf(want, sizeof(want), "%s:4:", p);
    load_fails(p, want, NULL);
    p = hf_file("tok-bad-sp",
                "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": "
                "\"BPE\", \"byte_fallback\": true, \"vocab\": {}, \"merges\": []}}");
    load_fails(p, p, "model.byte_fallback");
    p = hf_file("tok-bad-norm", "{\"normalizer\": {\"type\": \"NFKC\"}, " BL_PRE
                                ", \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
    load_fails(p, p, "normalizer.type is \"NFKC\"");
    p = hf_file("tok-bad-pre",
                "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
                "[{\"type\": \"Whitespace\"}, {\"type\": \"ByteLevel\"}]}, \"model\": "
                "{\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
    load_fails(p, p, "pre_tokenizer.pretokenizers[0].type is \"Whitespace\"");
    p = hf_file("tok-bad-regex", "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
                                 "[{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
                                 "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": "
                                 "\"ByteLevel\"}]}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, "
                                 "\"merges\": []}}");
    load_fails(p, p, "pre_tokenizer.pretokenizers[0].pattern.Regex");
    p = hf_file("tok-bad-hole", "{" BL_PRE ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, "
                                "\"b\": 2}, \"merges\": []}}");
    load_fails(p, p, "model.vocab: id 1 has no token");
    p = hf_file("tok-bad-bytes",
                "{" BL_PRE ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                "\"merges\": []}}");
    load_fails(p, p, "no token for the byte 0x00");
    p = hf_file("tok-bad-added", "{\"added_tokens\": [{\"id\": 0, \"content\": \"x\", "
                                 "\"single_word\": true}], " BL_PRE ", \"model\": {\"type\": "
                                 "\"BPE\", \"vocab\": {}, \"merges\": []}}");
    load_fails(p, p, "added_tokens[0].single_word");
    p = hf_file("tok-bad-model", "{\"version\": \"1.0\"}");
    load_fails(p, p, "\"format\""); // neither HF's (no model) nor layercake's

    // a SentencePiece-style tokenizer.json with a tokenizer.model beside it: the model is used
    const char *dir = tmp_dir("tok-sp-both");
    write_str(in_dir(dir, "tokenizer.json"),
              "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": \"BPE\", "
              "\"byte_fallback\": true, \"vocab\": {}, \"merges\": []}}");
    const char *model = spm_train(tmp_dir("tok-sp-both-src"), "m", "--vocab_size=400");
    copy_file(model, in_dir(dir, "tokenizer.model"));
    Tokenizer *tok = load_ok(dir);
    ck_assert_str_eq(tokenizer_kind(tok), "sentencepiece");
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_llama2c_errors) {
    size_t len;
    char *bin = read_all(TOK512, &len);
    const char *cut = test_tmp_path("tok-cut.bin");
    write_all(cut, bin, len - 3); // the last token's bytes are cut
    load_fails(cut, cut, "truncated");
    write_all(cut, bin, 4 + 8 * 3 + 5 + 6 + 7 + 5); // inside the fourth record's header
    load_fails(cut, cut, "truncated");
    const char *bad = test_tmp_path("tok-badlen.bin");
    bin[4 + 4] = 100; // token 0's length, beyond max_token_length 7
    write_all(bad, bin, len);
    load_fails(bad, bad, "token 0 has length 100");
    free(bin);
    const char *spm = test_tmp_path("tok-not.model");
    write_str(spm, "this is not a protocol buffer");
    load_fails(spm, spm, "not a SentencePiece model");
}
END_TEST

int main(void) {
    snprintf(FIX, sizeof(FIX), "%s", test_tmp_path("tokref"));
    char args[8192];
    snprintf(args, sizeof(args), "fixtures %s %s %s", CORPUS, TOK512, FIX);
    if (run_torch_script("tok_ref.py", args) != 0) {
        fprintf(stderr, "tests/tok_ref.py failed\n");
        return 1;
    }
    Suite *s = suite_create("tokenizer_hf");
    TCase *hf = tcase_create("hf");
    tcase_add_test(hf, test_hf_styles_match_reference);
    tcase_add_test(hf, test_hf_round_trip);
    tcase_add_test(hf, test_hf_added_tokens);
    tcase_add_test(hf, test_hf_ignore_merges);
    tcase_add_test(hf, test_hf_merges_spellings);
    tcase_add_test(hf, test_hf_merge_order);
    tcase_add_test(hf, test_hf_real_gpt2);
    tcase_add_test(hf, test_hf_special_ids_and_template);
    tcase_add_test(hf, test_nfc_matches_python);
    suite_add_tcase(s, hf);
    TCase *spm = tcase_create("sentencepiece");
    tcase_add_test(spm, test_spm_matches_spm_encode);
    tcase_add_test(spm, test_spm_specials_and_folder);
    suite_add_tcase(s, spm);
    TCase *l2c = tcase_create("llama2c");
    tcase_add_test(l2c, test_llama2c_once_upon_a_time);
    tcase_add_test(l2c, test_llama2c_byte_fallback);
    tcase_add_test(l2c, test_llama2c_matches_reference);
    tcase_add_test(l2c, test_llama2c_export_sentencepiece);
    suite_add_tcase(s, l2c);
    TCase *files = tcase_create("files");
    tcase_add_test(files, test_export_trained);
    tcase_add_test(files, test_export_round_trips);
    tcase_add_test(files, test_kinds_and_fingerprints);
    tcase_add_test(files, test_hf_errors);
    tcase_add_test(files, test_llama2c_errors);
    suite_add_tcase(s, files);
    return run_suite(s);
}
