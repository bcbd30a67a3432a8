// data/tokenizer_file.c: tokenizer files. Loads GPT-2's (a folder with encoder.json and
// vocab.bpe, or Hugging Face's vocab.json and merges.txt) and layercake's own JSON file, and
// saves any tokenizer in the latter format (docs/tokenizer.md). Both formats spell token bytes
// with GPT-2's byte-to-unicode table.
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FILE_FORMAT  "layercake-tokenizer"
#define FILE_VERSION 1

// ---- GPT-2's byte-to-unicode table --------------------------------------------------------------

// GPT-2 spells every byte as one printable character so that token strings never hold
// spaces or control characters: the bytes that are visible Latin-1 characters ('!'..'~',
// '¡'..'¬', '®'..'ÿ') stand for themselves, and the other 68 bytes, in increasing order, for
// the code points 256, 257, ... (so the space 0x20 is U+0120 'Ġ', the newline U+010A 'Ċ').
#define CODEC_MAX_CP (256 + 68)

typedef struct {
    uint16_t cp[256];           // byte -> code point
    int16_t byte[CODEC_MAX_CP]; // code point -> byte, or -1
} ByteCodec;

static bool latin1_visible(int b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

static void codec_init(ByteCodec *c) {
    int extra = 0;
    for (int cp = 0; cp < CODEC_MAX_CP; cp++) c->byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        c->cp[b] = (uint16_t)(latin1_visible(b) ? b : 256 + extra++);
        c->byte[c->cp[b]] = (int16_t)b;
    }
}

// Appends the byte-to-unicode spelling of bytes[0, n), in UTF-8, to out.
static void codec_spell(const ByteCodec *c, const char *bytes, size_t n, ByteVec *out) {
    for (size_t i = 0; i < n; i++) {
        unsigned cp = c->cp[(unsigned char)bytes[i]];
        char utf8[2] = {(char)(0xc0 | (cp >> 6)), (char)(0x80 | (cp & 0x3f))};
        if (cp < 0x80)
            bytevec_append(out, &(char){(char)cp}, 1);
        else
            bytevec_append(out, utf8, 2);
    }
}

// Appends the bytes a spelling s[0, n) stands for to out; false if s is not a spelling (a
// character outside the table, or malformed UTF-8).
static bool codec_read(const ByteCodec *c, const char *s, size_t n, ByteVec *out) {
    for (size_t i = 0; i < n;) {
        unsigned char u = (unsigned char)s[i];
        unsigned cp;
        if (u < 0x80) {
            cp = u;
            i += 1;
        } else if ((u & 0xe0) == 0xc0 && i + 1 < n && ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
            cp = ((u & 0x1fu) << 6) | ((unsigned char)s[i + 1] & 0x3fu);
            i += 2;
        } else {
            return false;
        }
        if (cp >= CODEC_MAX_CP || c->byte[cp] < 0) return false;
        char b = (char)c->byte[cp];
        bytevec_append(out, &b, 1);
    }
    return true;
}

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

char *tokenizer_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return tokenizer_fail(err, errlen, "%s: %s", path, strerror(errno));
    ByteVec buf = {0};
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) bytevec_append(&buf, chunk, got);
    int failed = ferror(f) ? errno : 0;
    fclose(f);
    if (failed) {
        free(buf.v);
        return tokenizer_fail(err, errlen, "%s: %s", path, strerror(failed));
    }
    bytevec_append(&buf, "", 1);
    *len = buf.n - 1;
    return buf.v;
}

// Parses a JSON file; on failure the message names the file, line and column.
static json_t *load_json(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) return tokenizer_fail(err, errlen, "%s: %s", path, strerror(errno));
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root) return root;
    if (je.line < 0) return tokenizer_fail(err, errlen, "%s: %s", path, je.text);
    return tokenizer_fail(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// ---- GPT-2's files -----------------------------------------------------------------------------

// encoder.json: {"spelling": id, ...} with ids 0 .. n-1, each once. Fills parts' tokens.
static bool read_encoder(const ByteCodec *c, const char *path, TokenizerParts *parts, char *err,
                         size_t errlen) {
    json_t *root = load_json(path, err, errlen);
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
    TokenizerParts parts = {0};
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

static Tokenizer *load_layercake(const char *path, char *err, size_t errlen) {
    json_t *root = load_json(path, err, errlen);
    if (!root) return NULL;
    ByteCodec c;
    codec_init(&c);
    TokenizerParts parts = {0};
    uint64_t stated = 0;
    bool ok = json_is_object(root);
    if (!ok) tokenizer_fail(err, errlen, "%s: expected a JSON object", path);
    ok = ok && read_header(root, path, &stated, err, errlen) &&
         read_vocab(root, &c, path, &parts, err, errlen) &&
         read_specials(root, path, &parts, err, errlen) &&
         read_file_merges(root, &c, path, &parts, err, errlen);
    json_decref(root);
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

Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) return tokenizer_fail(err, errlen, "%s: %s", path, strerror(errno));
    return S_ISDIR(st.st_mode) ? load_gpt2(path, err, errlen) : load_layercake(path, err, errlen);
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
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        tokenizer_fail(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        return -1;
    }
    json_t *root = tokenizer_to_json(tok);
    LC_ASSERT(root);
    bool bad = json_dumpf(root, f, JSON_INDENT(1)) != 0 || fputc('\n', f) == EOF;
    bad = fclose(f) != 0 || bad;
    json_decref(root);
    if (bad || rename(tmp, path) != 0) {
        tokenizer_fail(err, errlen, "%s: could not write: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}
