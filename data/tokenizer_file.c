// data/tokenizer_file.c: tokenizer files. tokenizer_load tells the kinds apart (a folder's
// tokenizer.json or tokenizer.model, GPT-2's files, a JSON file, a llama2.c .bin, a SentencePiece
// .model) and reads the configuration files beside them (BOS/EOS/PAD, the chat template).
// Loads GPT-2's files (a folder with encoder.json and vocab.bpe, or Hugging Face's vocab.json and
// merges.txt), layercake's own JSON file and SentencePiece models here; Hugging Face tokenizer.json
// in tokenizer_hf.c, llama2.c's in tokenizer_llama2c.c. Saves byte-level BPE tokenizers in
// layercake's format and exports every kind as a Hugging Face folder (docs/tokenizer.md).
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include "data/tokenizer_spm.h"
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FILE_FORMAT  "layercake-tokenizer"
#define FILE_VERSION 1

// A merge "left right": both sides spelled with the table, separated by one space (the table
// never spells a byte as a space). Sets pair to the ids of the two tokens, looked up in index;
// returns NULL, or what is wrong with it.
static const char *parse_merge(const ByteCodec *c, const BytesMap *index, const char *s, size_t n,
                               ByteVec *scratch, int pair[2]) {
    const char *space = memchr(s, ' ', n);
    if (!space || space == s || space == s + n - 1 ||
        memchr(space + 1, ' ', n - (size_t)(space - s) - 1))
        return "expected two tokens separated by one space";
    const char *part[2] = {s, space + 1};
    size_t len[2] = {(size_t)(space - s), n - (size_t)(space - s) - 1};
    for (int k = 0; k < 2; k++) {
        scratch->n = 0;
        if (!codec_read(c, part[k], len[k], scratch)) return "not a byte-to-unicode spelling";
        pair[k] = bytesmap_get(index, scratch->v, scratch->n);
        if (pair[k] < 0) return "names a token not in the vocabulary";
    }
    return NULL;
}

// ---- helpers -----------------------------------------------------------------------------------

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// ---- GPT-2's files -----------------------------------------------------------------------------

// encoder.json: {"spelling": id, ...} with ids 0 .. n-1, each once. Fills parts' tokens.
static bool read_encoder(const ByteCodec *c, const char *path, TokenizerParts *parts, char *err,
                         size_t errlen) {
    json_t *root = tokenizer_load_json(path, err, errlen);
    if (!root) return false;
    bool ok = json_is_object(root) && json_object_size(root) > 0;
    if (!ok) tokenizer_fail(err, errlen, "%s: expected an object of token -> id", path);
    size_t n = json_object_size(root);
    const char **spelling = lc_calloc(n + 1, sizeof(*spelling));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!ok) break;
        json_int_t id = json_integer_value(val);
        ok = json_is_integer(val) && id >= 0 && (size_t)id < n && !spelling[id];
        if (!ok)
            tokenizer_fail(err, errlen, "%s: token \"%s\": the id must be unique, in 0..%zu", path,
                           key, n - 1);
        else
            spelling[id] = key;
    }
    ByteVec bytes = {0};
    parts->tok_off = lc_malloc((n + 1) * sizeof(size_t));
    parts->n_vocab = (int)n;
    for (size_t id = 0; id < n && ok; id++) {
        parts->tok_off[id] = bytes.n;
        ok = codec_read(c, spelling[id], strlen(spelling[id]), &bytes);
        if (!ok)
            tokenizer_fail(err, errlen, "%s: token \"%s\" is not a byte-to-unicode spelling", path,
                           spelling[id]);
    }
    parts->tok_off[n] = bytes.n;
    parts->tok_bytes = bytes.v;
    free(spelling);
    json_decref(root);
    return ok;
}

// The ordinary tokens' bytes -> id (special[id] marks the others; NULL: all are ordinary).
static void index_tokens(const TokenizerParts *parts, const bool *special, BytesMap *index) {
    bytesmap_init(index, (size_t)parts->n_vocab);
    for (int id = 0; id < parts->n_vocab; id++) {
        size_t n = parts->tok_off[id + 1] - parts->tok_off[id];
        if (n > 0 && !(special && special[id]))
            bytesmap_intern(index, parts->tok_bytes + parts->tok_off[id], n, id);
    }
}

// One line of vocab.bpe, s[0, n): appends the merge to parts and marks the token it makes.
// Returns NULL, or what is wrong with the line.
static const char *read_merge_line(const ByteCodec *c, const BytesMap *index, const char *s,
                                   size_t n, TokenizerParts *parts, bool *made, ByteVec *scratch) {
    int *pair = parts->pairs[parts->n_merges];
    const char *why = parse_merge(c, index, s, n, scratch, pair);
    if (why) return why;
    scratch->n = 0;
    for (int k = 0; k < 2; k++)
        bytevec_append(scratch, parts->tok_bytes + parts->tok_off[pair[k]],
                       parts->tok_off[pair[k] + 1] - parts->tok_off[pair[k]]);
    int merged = bytesmap_get(index, scratch->v, scratch->n);
    if (merged < 0) return "makes a token not in the vocabulary";
    made[merged] = true;
    parts->n_merges++;
    return NULL;
}

// vocab.bpe: an optional "#version" line, then one merge per line in priority order. Fills
// parts' merges, and its specials: the tokens that are neither a byte nor made by a merge.
static bool read_merges(const ByteCodec *c, const char *path, TokenizerParts *parts, char *err,
                        size_t errlen) {
    size_t len;
    char *text = tokenizer_read_file(path, &len, err, errlen);
    if (!text) return false;
    BytesMap index;
    index_tokens(parts, NULL, &index);
    bool *made = lc_calloc((size_t)parts->n_vocab, sizeof(bool));
    parts->pairs = lc_malloc((len / 4 + 1) * sizeof(*parts->pairs)); // a line has >= 4 bytes
    ByteVec scratch = {0};
    const char *why = NULL;
    int line = 0;
    for (char *s = text, *eol; s < text + len && !why; s = eol + 1) {
        eol = memchr(s, '\n', (size_t)(text + len - s));
        if (!eol) eol = text + len;
        size_t n = (size_t)(eol - s);
        if (n > 0 && s[n - 1] == '\r') n--;
        line++;
        if (n > 0 && !(line == 1 && strncmp(s, "#version", 8) == 0))
            why = read_merge_line(c, &index, s, n, parts, made, &scratch);
    }
    if (why) tokenizer_fail(err, errlen, "%s:%d: %s", path, line, why);
    parts->specials = lc_malloc(((size_t)parts->n_vocab + 1) * sizeof(int));
    for (int id = 0; id < parts->n_vocab && !why; id++)
        if (!made[id] && parts->tok_off[id + 1] - parts->tok_off[id] > 1)
            parts->specials[parts->n_specials++] = id;
    free(scratch.v);
    free(made);
    bytesmap_free(&index);
    free(text);
    return why == NULL;
}

static void parts_free(TokenizerParts *p) {
    free(p->tok_off);
    free(p->tok_bytes);
    free(p->pairs);
    free(p->specials);
}

static Tokenizer *load_gpt2(const char *dir, char *err, size_t errlen) {
    char encoder[4096], merges[4096];
    snprintf(encoder, sizeof(encoder), "%s/encoder.json", dir);
    snprintf(merges, sizeof(merges), "%s/vocab.bpe", dir);
    if (!file_exists(encoder)) { // Hugging Face's names for the same two files
        char vocab[4096];
        snprintf(vocab, sizeof(vocab), "%s/vocab.json", dir);
        if (file_exists(vocab)) {
            snprintf(encoder, sizeof(encoder), "%s", vocab);
            snprintf(merges, sizeof(merges), "%s/merges.txt", dir);
        }
    }
    ByteCodec c;
    codec_init(&c);
    TokenizerParts parts = {.kind = TOKENIZER_GPT2};
    if (!read_encoder(&c, encoder, &parts, err, errlen) ||
        !read_merges(&c, merges, &parts, err, errlen)) {
        parts_free(&parts);
        return NULL;
    }
    return tokenizer_build(&parts, encoder, err, errlen);
}

// ---- layercake's tokenizer file ----------------------------------------------------------------

// The field `name` of the top-level object, of the given type, or NULL with a message.
static json_t *get_field(json_t *root, const char *name, json_type type, const char *path,
                         char *err, size_t errlen) {
    static const char *const type_names[] = {
        [JSON_OBJECT] = "an object",   [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
        [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number",  [JSON_TRUE] = "a boolean",
        [JSON_FALSE] = "a boolean",    [JSON_NULL] = "null"};
    json_t *v = json_object_get(root, name);
    if (!v || json_typeof(v) != type)
        return tokenizer_fail(err, errlen, "%s: field \"%s\" must be %s", path, name,
                              type_names[type]);
    return v;
}

// format, version and pattern must be the ones this code reads; *stated gets the fingerprint.
static bool read_header(json_t *root, const char *path, uint64_t *stated, char *err,
                        size_t errlen) {
    json_t *format = get_field(root, "format", JSON_STRING, path, err, errlen);
    if (!format) return false;
    if (strcmp(json_string_value(format), FILE_FORMAT) != 0)
        return tokenizer_fail(err, errlen, "%s: format is \"%s\", expected \"%s\"", path,
                              json_string_value(format), FILE_FORMAT);
    json_t *version = get_field(root, "version", JSON_INTEGER, path, err, errlen);
    if (!version) return false;
    if (json_integer_value(version) != FILE_VERSION)
        return tokenizer_fail(err, errlen,
                              "%s: version %" JSON_INTEGER_FORMAT " is not one this layercake "
                              "reads (%d); retrain or re-export the tokenizer",
                              path, json_integer_value(version), FILE_VERSION);
    json_t *pattern = get_field(root, "pattern", JSON_STRING, path, err, errlen);
    if (!pattern) return false;
    if (strcmp(json_string_value(pattern), TOKENIZER_PATTERN) != 0)
        return tokenizer_fail(err, errlen,
                              "%s: pattern is not GPT-2's, the only one version %d "
                              "supports",
                              path, FILE_VERSION);
    json_t *fp = get_field(root, "fingerprint", JSON_STRING, path, err, errlen);
    if (!fp) return false;
    const char *hex = json_string_value(fp);
    char *end;
    errno = 0;
    *stated = strtoull(hex, &end, 16);
    if (strlen(hex) != 16 || *end != '\0' || errno != 0)
        return tokenizer_fail(err, errlen, "%s: fingerprint \"%s\" is not 16 hex digits", path,
                              hex);
    return true;
}

static bool read_vocab(json_t *root, const ByteCodec *c, const char *path, TokenizerParts *parts,
                       char *err, size_t errlen) {
    json_t *vocab = get_field(root, "vocab", JSON_ARRAY, path, err, errlen);
    if (!vocab) return false;
    size_t n = json_array_size(vocab);
    if (n == 0 || n > INT32_MAX)
        return tokenizer_fail(err, errlen, "%s: vocab has %zu tokens", path, n);
    ByteVec bytes = {0};
    parts->n_vocab = (int)n;
    parts->tok_off = lc_malloc((n + 1) * sizeof(size_t));
    bool ok = true;
    for (size_t id = 0; id < n && ok; id++) {
        json_t *s = json_array_get(vocab, id);
        parts->tok_off[id] = bytes.n;
        ok =
            json_is_string(s) && codec_read(c, json_string_value(s), json_string_length(s), &bytes);
        if (!ok)
            tokenizer_fail(err, errlen, "%s: vocab[%zu] is not a byte-to-unicode spelling", path,
                           id);
    }
    parts->tok_off[n] = bytes.n;
    parts->tok_bytes = bytes.v;
    return ok;
}

static bool read_specials(json_t *root, const char *path, TokenizerParts *parts, char *err,
                          size_t errlen) {
    json_t *specials = get_field(root, "specials", JSON_ARRAY, path, err, errlen);
    if (!specials) return false;
    size_t n = json_array_size(specials);
    parts->specials = lc_malloc((n + 1) * sizeof(int));
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(specials, i);
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= parts->n_vocab)
            return tokenizer_fail(err, errlen, "%s: specials[%zu] is not a token id", path, i);
        parts->specials[parts->n_specials++] = (int)id;
    }
    return true;
}

// merges: ["left right", ...] in priority order, naming ordinary (not special) tokens.
static bool read_file_merges(json_t *root, const ByteCodec *c, const char *path,
                             TokenizerParts *parts, char *err, size_t errlen) {
    json_t *merges = get_field(root, "merges", JSON_ARRAY, path, err, errlen);
    if (!merges) return false;
    bool *special = lc_calloc((size_t)parts->n_vocab, sizeof(bool));
    for (int i = 0; i < parts->n_specials; i++) special[parts->specials[i]] = true;
    BytesMap index;
    index_tokens(parts, special, &index);
    size_t n = json_array_size(merges);
    parts->pairs = lc_malloc((n + 1) * sizeof(*parts->pairs));
    ByteVec scratch = {0};
    const char *why = n > INT32_MAX ? "too many merges" : NULL;
    for (size_t i = 0; i < n && !why; i++) {
        json_t *s = json_array_get(merges, i);
        why = !json_is_string(s)
                  ? "is not a string"
                  : parse_merge(c, &index, json_string_value(s), json_string_length(s), &scratch,
                                parts->pairs[parts->n_merges++]);
        if (why) tokenizer_fail(err, errlen, "%s: merges[%zu] %s", path, i, why);
    }
    free(scratch.v);
    bytesmap_free(&index);
    free(special);
    return why == NULL;
}

static Tokenizer *load_layercake(const char *path, json_t *root, char *err, size_t errlen) {
    ByteCodec c;
    codec_init(&c);
    TokenizerParts parts = {.kind = TOKENIZER_LAYERCAKE};
    uint64_t stated = 0;
    bool ok = read_header(root, path, &stated, err, errlen) &&
              read_vocab(root, &c, path, &parts, err, errlen) &&
              read_specials(root, path, &parts, err, errlen) &&
              read_file_merges(root, &c, path, &parts, err, errlen);
    if (!ok) {
        parts_free(&parts);
        return NULL;
    }
    Tokenizer *tok = tokenizer_build(&parts, path, err, errlen);
    if (tok && tok->fingerprint != stated) {
        tokenizer_fail(err, errlen,
                       "%s: the contents' fingerprint is %016" PRIx64 " but the file "
                       "states %016" PRIx64 " (the file was edited or damaged)",
                       path, tok->fingerprint, stated);
        tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

// ---- SentencePiece models ----------------------------------------------------------------------

#ifdef LC_HAVE_SENTENCEPIECE
static void spm_encode_text(const Tokenizer *tok, const char *text, size_t len, IntVec *out) {
    char err[512] = "";
    int *ids;
    int n = spm_model_encode(tok->impl, text, len, &ids, err, sizeof(err));
    if (n < 0) LC_DIE("SentencePiece could not encode %zu bytes: %s", len, err);
    intvec_reserve(out, (size_t)n);
    memcpy(out->v + out->n, ids, (size_t)n * sizeof(int));
    out->n += (size_t)n;
    free(ids);
}

static char *spm_decode_ids(const Tokenizer *tok, const int *ids, int n, size_t *len) {
    char *text = spm_model_decode(tok->impl, ids, n, len);
    if (!text) LC_DIE("SentencePiece could not decode %d ids", n);
    return text;
}

static void spm_release(void *impl) {
    spm_model_free(impl);
}

static const TokenizerOps SPM_OPS = {
    .encode_text = spm_encode_text, .decode_ids = spm_decode_ids, .release_impl = spm_release};

// A piece's bytes: a byte piece "<0xHH>" is its byte, a control or unknown piece its name, and
// any other piece its text with U+2581 read as a space.
static void piece_bytes(const char *p, size_t n, int type, ByteVec *out) {
    unsigned hex;
    char tail;
    if (type == SPM_BYTE && n == 6 && sscanf(p, "<0x%2X%c", &hex, &tail) == 2 && tail == '>') {
        char b = (char)hex;
        bytevec_append(out, &b, 1);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool space = type != SPM_CONTROL && type != SPM_UNKNOWN && i + 3 <= n &&
                     memcmp(p + i, "\xe2\x96\x81", 3) == 0;
        if (space) {
            bytevec_append(out, " ", 1);
            i += 2;
        } else {
            bytevec_append(out, p + i, 1);
        }
    }
}

static Tokenizer *load_spm(const char *path, char *err, size_t errlen) {
    size_t len;
    char *bytes = tokenizer_read_file(path, &len, err, errlen);
    if (!bytes) return NULL;
    char why[512] = "";
    SpmModel *m = spm_model_load(bytes, len, why, sizeof(why));
    free(bytes);
    if (!m) return tokenizer_fail(err, errlen, "%s: not a SentencePiece model (%s)", path, why);
    Tokenizer *tok = tokenizer_alloc(TOKENIZER_SENTENCEPIECE);
    tok->impl = m;
    tok->ops = &SPM_OPS;
    tok->n_vocab = spm_model_size(m);
    tok->tok_off = lc_malloc(((size_t)tok->n_vocab + 1) * sizeof(size_t));
    tok->specials = lc_malloc(((size_t)tok->n_vocab + 1) * sizeof(int));
    ByteVec tb = {0};
    for (int id = 0; id < tok->n_vocab; id++) {
        size_t n;
        const char *p = spm_model_piece(m, id, &n);
        int type = spm_model_type(m, id);
        tok->tok_off[id] = tb.n;
        piece_bytes(p, n, type, &tb);
        if (type == SPM_CONTROL || type == SPM_UNKNOWN) tok->specials[tok->n_specials++] = id;
    }
    tok->tok_off[tok->n_vocab] = tb.n;
    tok->tok_bytes = tb.v;
    // The special tokens' names are their pieces, which are their bytes.
    const char **names = lc_calloc((size_t)tok->n_specials + 1, sizeof(*names));
    size_t *lens = lc_calloc((size_t)tok->n_specials + 1, sizeof(*lens));
    for (int i = 0; i < tok->n_specials; i++)
        names[i] = token_bytes(tok, tok->specials[i], &lens[i]);
    tokenizer_name_specials(tok, names, lens);
    free(names);
    free(lens);
    tok->bos = spm_model_bos(m);
    tok->eot = spm_model_eos(m);
    tok->pad = spm_model_pad(m);
    size_t n;
    char *proto = spm_model_serialized(m, &n);
    const char *kind = TOKENIZER_KIND_NAMES[TOKENIZER_SENTENCEPIECE];
    tok->content_hash = fnv1a_update(fnv1a_str(FNV1A_OFFSET, kind, strlen(kind)), proto, n);
    free(proto);
    return tok;
}
#else
static Tokenizer *load_spm(const char *path, char *err, size_t errlen) {
    return tokenizer_fail(err, errlen, "%s: this build of layercake has no SentencePiece", path);
}
#endif

// ---- configuration beside the tokenizer --------------------------------------------------------

// The id of a token named by its text: a special token's name, else the token with those bytes.
static int token_named(const Tokenizer *tok, const char *name) {
    int id = tokenizer_special(tok, name);
    if (id >= 0) return id;
    size_t n = strlen(name);
    for (id = 0; id < tok->n_vocab; id++) {
        size_t k;
        const char *b = token_bytes(tok, id, &k);
        if (k == n && memcmp(b, name, n) == 0) return id;
    }
    return -1;
}

// tokenizer_config.json: bos_token, eos_token, pad_token (a string, an {"content": ...} object,
// or null) and chat_template (a string, or a list of {name, template} where "default" is taken).
// *found[i] says which of the three it set.
static bool read_tokenizer_config(Tokenizer *tok, const char *path, bool found[3], char *err,
                                  size_t errlen) {
    json_t *root = tokenizer_load_json(path, err, errlen);
    if (!root) return false;
    static const char *const keys[3] = {"bos_token", "eos_token", "pad_token"};
    int *ids[3] = {&tok->bos, &tok->eot, &tok->pad};
    bool ok = json_is_object(root) ||
              (tokenizer_fail(err, errlen, "%s: expected a JSON object", path), false);
    for (int i = 0; i < 3 && ok; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (!v || json_is_null(v)) continue;
        if (json_is_object(v)) v = json_object_get(v, "content");
        if (!json_is_string(v)) {
            ok = tokenizer_fail(err, errlen, "%s: %s must be a string or {\"content\": ...}", path,
                                keys[i]);
            break;
        }
        int id = token_named(tok, json_string_value(v));
        if (id < 0) {
            ok = tokenizer_fail(err, errlen, "%s: %s \"%s\" is not a token of the tokenizer", path,
                                keys[i], json_string_value(v));
            break;
        }
        *ids[i] = id;
        found[i] = true;
    }
    json_t *tmpl = json_object_get(root, "chat_template");
    if (ok && json_is_array(tmpl)) {
        json_t *entry, *chosen = NULL;
        size_t i;
        json_array_foreach(tmpl, i, entry) {
            json_t *name = json_object_get(entry, "name");
            if (!chosen ||
                (json_is_string(name) && strcmp(json_string_value(name), "default") == 0))
                chosen = entry;
        }
        tmpl = json_object_get(chosen, "template");
    }
    if (ok && json_is_string(tmpl)) {
        size_t n = json_string_length(tmpl);
        tok->chat_template = lc_malloc(n + 1);
        memcpy(tok->chat_template, json_string_value(tmpl), n + 1);
    }
    json_decref(root);
    return ok;
}

// config.json: bos_token_id, eos_token_id (an id or a list, whose first is taken), pad_token_id,
// for those tokenizer_config.json left unset.
static bool read_model_config(Tokenizer *tok, const char *path, const bool found[3], char *err,
                              size_t errlen) {
    json_t *root = tokenizer_load_json(path, err, errlen);
    if (!root) return false;
    static const char *const keys[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    int *ids[3] = {&tok->bos, &tok->eot, &tok->pad};
    bool ok = true;
    for (int i = 0; i < 3 && ok; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (found[i] || !v || json_is_null(v)) continue;
        if (json_is_array(v)) v = json_array_get(v, 0);
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= tok->n_vocab)
            ok = tokenizer_fail(err, errlen, "%s: %s is not a token id of the tokenizer (0..%d)",
                                path, keys[i], tok->n_vocab - 1);
        else
            *ids[i] = (int)id;
    }
    json_decref(root);
    return ok;
}

// Reads dir's tokenizer_config.json and config.json where they exist.
static bool read_configs(Tokenizer *tok, const char *dir, char *err, size_t errlen) {
    char path[4096 + 64];
    bool found[3] = {false, false, false};
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    if (file_exists(path) && !read_tokenizer_config(tok, path, found, err, errlen)) return false;
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (file_exists(path) && !read_model_config(tok, path, found, err, errlen)) return false;
    return true;
}

// ---- choosing the kind -------------------------------------------------------------------------

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

// Whether the file's first non-blank byte opens a JSON object.
static bool looks_like_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t') {
    }
    fclose(f);
    return c == '{';
}

// A JSON tokenizer file: Hugging Face's when it has a "model" object, else layercake's. *foreign
// is set for a tokenizer.json of a kind layercake does not run.
static Tokenizer *load_json_file(const char *path, bool *foreign, char *err, size_t errlen) {
    *foreign = false;
    json_t *root = tokenizer_load_json(path, err, errlen);
    if (!root) return NULL;
    Tokenizer *tok;
    if (!json_is_object(root))
        tok = tokenizer_fail(err, errlen, "%s: expected a JSON object", path);
    else if (!json_object_get(root, "model") && !json_object_get(root, "format"))
        tok = tokenizer_fail(err, errlen,
                             "%s: neither a Hugging Face tokenizer.json (no \"model\") nor a "
                             "layercake tokenizer file (no \"format\")",
                             path);
    else if (json_object_get(root, "model") && !json_object_get(root, "format"))
        tok = hf_load(path, root, foreign, err, errlen);
    else
        tok = load_layercake(path, root, err, errlen);
    json_decref(root);
    return tok;
}

static Tokenizer *load_dir(const char *dir, char *err, size_t errlen) {
    char json[4096], model[4096];
    snprintf(json, sizeof(json), "%s/tokenizer.json", dir);
    snprintf(model, sizeof(model), "%s/tokenizer.model", dir);
    if (file_exists(json)) {
        bool foreign;
        Tokenizer *tok = load_json_file(json, &foreign, err, errlen);
        if (tok || !foreign || !file_exists(model)) return tok;
    }
    if (file_exists(model)) return load_spm(model, err, errlen);
    return load_gpt2(dir, err, errlen);
}

Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) return tokenizer_fail(err, errlen, "%s: %s", path, strerror(errno));
    Tokenizer *tok;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    if (S_ISDIR(st.st_mode)) {
        tok = load_dir(path, err, errlen);
    } else {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
        bool foreign;
        if (looks_like_json(path))
            tok = load_json_file(path, &foreign, err, errlen);
        else if (ends_with(path, ".bin"))
            tok = llama2c_load(path, err, errlen);
        else
            tok = load_spm(path, err, errlen);
    }
    if (!tok || tok->kind == TOKENIZER_LAYERCAKE) return tok;
    // Files beside a tokenizer say which tokens are BOS, EOS and PAD (layercake's own file
    // says nothing of them: its EOS is <|endoftext|>).
    if (!read_configs(tok, dir, err, errlen)) {
        tokenizer_free(tok);
        return NULL;
    }
    if (tok->kind != TOKENIZER_GPT2) tokenizer_seal(tok);
    return tok;
}

// ---- saving ------------------------------------------------------------------------------------

static json_t *spelled(const ByteCodec *c, const char *bytes, size_t n, ByteVec *scratch) {
    scratch->n = 0;
    codec_spell(c, bytes, n, scratch);
    return json_stringn(scratch->v, scratch->n);
}

static json_t *tokenizer_to_json(const Tokenizer *tok) {
    ByteCodec c;
    codec_init(&c);
    ByteVec scratch = {0}, merge = {0};
    json_t *vocab = json_array(), *merges = json_array(), *specials = json_array();
    for (int id = 0; id < tok->n_vocab; id++) {
        size_t len;
        const char *b = token_bytes(tok, id, &len);
        json_array_append_new(vocab, spelled(&c, b, len, &scratch));
    }
    for (int r = 0; r < tok->n_merges; r++) {
        size_t la, lb;
        const char *a = token_bytes(tok, tok->merges[r].left, &la);
        const char *b = token_bytes(tok, tok->merges[r].right, &lb);
        merge.n = 0;
        codec_spell(&c, a, la, &merge);
        bytevec_append(&merge, " ", 1);
        codec_spell(&c, b, lb, &merge);
        json_array_append_new(merges, json_stringn(merge.v, merge.n));
    }
    for (int i = 0; i < tok->n_specials; i++)
        json_array_append_new(specials, json_integer(tok->specials[i]));
    free(scratch.v);
    free(merge.v);
    char fp[17];
    snprintf(fp, sizeof(fp), "%016" PRIx64, tok->fingerprint);
    return json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:o}", "format", FILE_FORMAT, "version",
                     FILE_VERSION, "pattern", TOKENIZER_PATTERN, "fingerprint", fp, "specials",
                     specials, "vocab", vocab, "merges", merges);
}

// Written to path.tmp, then renamed over path, so a reader never sees half a file.
int tokenizer_save(const Tokenizer *tok, const char *path, char *err, size_t errlen) {
    if (tok->kind != TOKENIZER_LAYERCAKE && tok->kind != TOKENIZER_GPT2) {
        tokenizer_fail(err, errlen,
                       "%s: layercake's tokenizer file holds only GPT-2-style byte-level BPE, not "
                       "a %s tokenizer (tokenizer_export_hf writes any kind)",
                       path, TOKENIZER_KIND_NAMES[tok->kind]);
        return -1;
    }
    json_t *root = tokenizer_to_json(tok);
    LC_ASSERT(root);
    bool ok = tokenizer_write_json(root, path, err, errlen);
    json_decref(root);
    return ok ? 0 : -1;
}

// ---- exporting a Hugging Face folder -----------------------------------------------------------

// A token's text as tokenizer_config.json names it, or JSON null for -1.
static json_t *token_text(const Tokenizer *tok, int id) {
    if (id < 0) return json_null();
    for (int i = 0; i < tok->n_specials; i++)
        if (tok->specials[i] == id) return json_stringn(tok->special_text[i], tok->special_len[i]);
    size_t n;
    const char *b = token_bytes(tok, id, &n);
    return json_stringn(b, n);
}

// GPT-2's vocab.json and merges.txt.
static bool write_gpt2(const Tokenizer *tok, const char *dir, char *err, size_t errlen) {
    ByteCodec c;
    codec_init(&c);
    ByteVec s = {0};
    json_t *vocab = json_object();
    for (int id = 0; id < tok->n_vocab; id++) {
        size_t n;
        const char *b = token_bytes(tok, id, &n);
        s.n = 0;
        codec_spell(&c, b, n, &s);
        bytevec_append(&s, "", 1);
        json_object_set_new(vocab, s.v, json_integer(id));
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/vocab.json", dir);
    bool ok = tokenizer_write_json(vocab, path, err, errlen);
    json_decref(vocab);
    s.n = 0;
    bytevec_append(&s, "#version: 0.2\n", 14);
    for (int r = 0; r < tok->n_merges; r++) {
        for (int k = 0; k < 2; k++) {
            size_t n;
            const char *b = token_bytes(tok, k ? tok->merges[r].right : tok->merges[r].left, &n);
            if (k) bytevec_append(&s, " ", 1);
            codec_spell(&c, b, n, &s);
        }
        bytevec_append(&s, "\n", 1);
    }
    snprintf(path, sizeof(path), "%s/merges.txt", dir);
    FILE *f = ok ? fopen(path, "wb") : NULL;
    if (ok && (!f || fwrite(s.v, 1, s.n, f) != s.n || fclose(f) != 0)) {
        if (f) fclose(f);
        ok = tokenizer_fail(err, errlen, "%s: could not write: %s", path, strerror(errno));
    }
    free(s.v);
    return ok;
}

#ifdef LC_HAVE_SENTENCEPIECE
static bool write_spm_model(const Tokenizer *tok, const char *path, char *err, size_t errlen) {
    size_t n;
    char *proto = spm_model_serialized(tok->impl, &n);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(proto, 1, n, f) == n;
    ok = (f && fclose(f) == 0) && ok;
    free(proto);
    return ok || tokenizer_fail(err, errlen, "%s: could not write: %s", path, strerror(errno));
}
#else
static bool write_spm_model(const Tokenizer *tok, const char *path, char *err, size_t errlen) {
    (void)tok;
    return tokenizer_fail(err, errlen, "%s: this build of layercake has no SentencePiece", path);
}
#endif

// tokenizer_config.json and special_tokens_map.json.
static bool write_configs(const Tokenizer *tok, const char *dir, char *err, size_t errlen) {
    static const char *const classes[TOKENIZER_N_KINDS] = {
        [TOKENIZER_LAYERCAKE] = "PreTrainedTokenizerFast",
        [TOKENIZER_GPT2] = "GPT2Tokenizer",
        [TOKENIZER_HF_BPE] = "PreTrainedTokenizerFast",
        [TOKENIZER_SENTENCEPIECE] = "LlamaTokenizer",
        [TOKENIZER_LLAMA2C] = "LlamaTokenizer"};
    bool spm = tok->kind == TOKENIZER_SENTENCEPIECE || tok->kind == TOKENIZER_LLAMA2C;
    json_t *config = json_pack(
        "{s:s, s:o, s:o, s:o, s:b, s:b}", "tokenizer_class", classes[tok->kind], "bos_token",
        token_text(tok, tok->bos), "eos_token", token_text(tok, tok->eot), "pad_token",
        token_text(tok, tok->pad), "clean_up_tokenization_spaces", 0, "add_bos_token", spm);
    json_t *map = json_object();
    const char *names[3] = {"bos_token", "eos_token", "pad_token"};
    int ids[3] = {tok->bos, tok->eot, tok->pad};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0) json_object_set_new(map, names[i], token_text(tok, ids[i]));
    if (spm) {
        int unk = tokenizer_special(tok, "<unk>");
        if (unk >= 0) {
            json_object_set_new(config, "unk_token", token_text(tok, unk));
            json_object_set_new(map, "unk_token", token_text(tok, unk));
        }
        json_object_set_new(config, "add_eos_token", json_false());
        json_object_set_new(config, "legacy", json_true());
    }
    if (tok->kind == TOKENIZER_GPT2) json_object_set_new(config, "add_prefix_space", json_false());
    if (tok->chat_template)
        json_object_set_new(config, "chat_template", json_string(tok->chat_template));
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    bool ok = tokenizer_write_json(config, path, err, errlen);
    snprintf(path, sizeof(path), "%s/special_tokens_map.json", dir);
    ok = ok && tokenizer_write_json(map, path, err, errlen);
    json_decref(config);
    json_decref(map);
    return ok;
}

int tokenizer_export_hf(const Tokenizer *tok, const char *dir, char *err, size_t errlen) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        tokenizer_fail(err, errlen, "%s: cannot create the folder: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    bool ok;
    switch (tok->kind) {
    case TOKENIZER_GPT2:
        ok = write_gpt2(tok, dir, err, errlen);
        break;
    case TOKENIZER_LAYERCAKE:
    case TOKENIZER_HF_BPE:
        snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
        ok = hf_write(tok, path, err, errlen);
        break;
    case TOKENIZER_SENTENCEPIECE:
        snprintf(path, sizeof(path), "%s/tokenizer.model", dir);
        ok = write_spm_model(tok, path, err, errlen);
        break;
    case TOKENIZER_LLAMA2C:
        snprintf(path, sizeof(path), "%s/tokenizer.model", dir);
        ok = llama2c_write_spm(tok, path, err, errlen);
        break;
    default:
        LC_DIE("unknown tokenizer kind %d", (int)tok->kind);
    }
    return ok && write_configs(tok, dir, err, errlen) ? 0 : -1;
}
