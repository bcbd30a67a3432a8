// data/tokenizer_llama2c.c: llama2.c's tokenizer .bin (tokenizer.py's export, run.c's reader):
// loading it, encoding and decoding exactly as run.c does, and writing it as the SentencePiece
// model it was exported from (a ModelProto, protobuf-encoded by hand).
//
// The file: int32 max_token_length, then per token until the end of the file: float32 score,
// int32 length, that many bytes. Little-endian. Ids 0, 1, 2 are <unk>, BOS ("\n<s>\n") and EOS
// ("\n</s>\n"); 3..258 the byte-fallback tokens "<0x00>".."<0xFF>"; spaces are plain spaces
// (SentencePiece's U+2581 replaced).
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLAMA2C_BOS       1
#define LLAMA2C_EOS       2
#define LLAMA2C_BYTE_BASE 3

typedef struct {
    int max_token_length;
    int n;          // tokens
    float *score;   // (n)
    size_t *off;    // (n_vocab + 1): the strings as stored (byte tokens spelled "<0xHH>")
    char *bytes;    //
    BytesMap index; // stored string -> the first id with it
    int space;      // the id of " " (the dummy prefix), or -1
} Llama2c;

static void llama2c_release(void *impl) {
    Llama2c *l = impl;
    free(l->score);
    free(l->off);
    free(l->bytes);
    bytesmap_free(&l->index);
    free(l);
}

static const char *stored(const Llama2c *l, int id, size_t *len) {
    *len = l->off[id + 1] - l->off[id];
    return l->bytes + l->off[id];
}

// The byte a "<0xHH>" token stands for, or -1.
static int byte_piece(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// ---- encoding ----------------------------------------------------------------------------------

// run.c's merge loop picks, among adjacent pairs whose concatenated strings are in the
// vocabulary, the one whose string scores highest, the leftmost on ties, merges it, and
// starts over. Here a heap ordered by (score descending, position ascending) over a linked
// list does the same in O(n log n); entries whose symbols have changed are skipped.
typedef struct {
    float score;
    int pos, merged; // pos: the left symbol's index in the original sequence
    int left, right; // the ids the entry was made for
} Cand;

typedef struct {
    Cand *v;
    size_t n, cap;
} CandHeap;

static bool cand_before(const Cand *a, const Cand *b) {
    return a->score > b->score || (a->score == b->score && a->pos < b->pos);
}

static void cand_push(CandHeap *h, Cand c) {
    h->v = array_reserve(h->v, &h->cap, h->n + 1, sizeof(Cand));
    size_t i = h->n++;
    while (i > 0 && cand_before(&c, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
}

static Cand cand_pop(CandHeap *h) {
    Cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_before(&h->v[c + 1], &h->v[c])) c++;
        if (!cand_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

// Pushes the pair (id[a], id[b]) if its concatenation is a token run.c would merge into.
static void consider(const Llama2c *l, CandHeap *h, ByteVec *scratch, const int *id, int a, int b) {
    size_t la, lb;
    const char *sa = stored(l, id[a], &la), *sb = stored(l, id[b], &lb);
    scratch->n = 0;
    bytevec_append(scratch, sa, la);
    bytevec_append(scratch, sb, lb);
    int merged = bytesmap_get(&l->index, scratch->v, scratch->n);
    // run.c starts its search at -1e10 and takes only strictly greater scores
    if (merged >= 0 && l->score[merged] > -1e10f)
        cand_push(h, (Cand){l->score[merged], a, merged, id[a], id[b]});
}

static void llama2c_encode(const Tokenizer *tok, const char *text, size_t len, IntVec *out) {
    const Llama2c *l = tok->impl;
    IntVec sym = {0};
    if (l->space >= 0) intvec_push(&sym, l->space); // run.c's dummy prefix (len > 0 here)
    // Each character (a lead byte and up to three continuation bytes) is a token of its own,
    // or its bytes' fallback tokens.
    for (size_t i = 0; i < len;) {
        size_t n = 1;
        while (i + n < len && ((unsigned char)text[i + n] & 0xc0) == 0x80 && n < 4) n++;
        int id = bytesmap_get(&l->index, text + i, n);
        if (id >= 0) {
            intvec_push(&sym, id);
        } else {
            for (size_t k = 0; k < n; k++)
                intvec_push(&sym, (unsigned char)text[i + k] + LLAMA2C_BYTE_BASE);
        }
        i += n;
    }
    int n = (int)sym.n;
    int *next = lc_malloc(((size_t)n + 1) * sizeof(int)),
        *prev = lc_malloc(((size_t)n + 1) * sizeof(int));
    for (int i = 0; i < n; i++) {
        next[i] = i + 1;
        prev[i] = i - 1;
    }
    CandHeap h = {0};
    ByteVec scratch = {0};
    for (int i = 0; i + 1 < n; i++) consider(l, &h, &scratch, sym.v, i, i + 1);
    while (h.n > 0) {
        Cand c = cand_pop(&h);
        int right = next[c.pos];
        if (sym.v[c.pos] != c.left || right >= n || sym.v[right] != c.right) continue; // stale
        sym.v[c.pos] = c.merged;
        sym.v[right] = -1;
        next[c.pos] = next[right];
        if (next[c.pos] < n) prev[next[c.pos]] = c.pos;
        if (prev[c.pos] >= 0) consider(l, &h, &scratch, sym.v, prev[c.pos], c.pos);
        if (next[c.pos] < n) consider(l, &h, &scratch, sym.v, c.pos, next[c.pos]);
    }
    for (int i = 0; i < n; i = next[i]) intvec_push(out, sym.v[i]);
    free(next);
    free(prev);
    free(h.v);
    free(scratch.v);
    free(sym.v);
}

// run.c's decode(): a piece after BOS loses a leading space, "<0xHH>" is the byte HH. BOS and
// EOS, which run.c never prints, decode to nothing (as SentencePiece decodes control tokens).
static char *llama2c_decode(const Tokenizer *tok, const int *ids, int n, size_t *len) {
    const Llama2c *l = tok->impl;
    ByteVec out = {0};
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id == LLAMA2C_BOS || id == LLAMA2C_EOS) continue;
        size_t k;
        const char *piece = stored(l, id, &k);
        if (i > 0 && ids[i - 1] == LLAMA2C_BOS && k > 0 && piece[0] == ' ') {
            piece++;
            k--;
        }
        int b = byte_piece(piece, k);
        if (b >= 0) {
            char c = (char)b;
            bytevec_append(&out, &c, 1);
        } else {
            bytevec_append(&out, piece, k);
        }
    }
    bytevec_append(&out, "", 1);
    *len = out.n - 1;
    return out.v;
}

static const TokenizerOps LLAMA2C_OPS = {
    .encode_text = llama2c_encode, .decode_ids = llama2c_decode, .release_impl = llama2c_release};

// ---- loading -----------------------------------------------------------------------------------

static int32_t read_i32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

static float read_f32(const unsigned char *p) {
    uint32_t u = (uint32_t)read_i32(p);
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

// The records, checked: lengths within max_token_length, the byte tokens where run.c expects.
static bool parse_records(Llama2c *l, const unsigned char *data, size_t size, const char *path,
                          char *err, size_t errlen) {
    if (size < 4) return tokenizer_fail(err, errlen, "%s: truncated: no max_token_length", path);
    l->max_token_length = read_i32(data);
    if (l->max_token_length <= 0 || l->max_token_length > 1 << 16)
        return tokenizer_fail(err, errlen, "%s: max_token_length %d is not a llama2.c tokenizer's",
                              path, l->max_token_length);
    ByteVec bytes = {0};
    size_t cap_score = 0, cap_off = 0, n = 0;
    l->off = array_reserve(NULL, &cap_off, 1, sizeof(size_t));
    l->off[0] = 0;
    for (size_t pos = 4; pos < size; n++) {
        if (size - pos < 8) {
            free(bytes.v);
            return tokenizer_fail(
                err, errlen, "%s: truncated: token %zu's header is cut at byte %zu", path, n, size);
        }
        float score = read_f32(data + pos);
        int32_t len = read_i32(data + pos + 4);
        pos += 8;
        if (len <= 0 || len > l->max_token_length) {
            free(bytes.v);
            return tokenizer_fail(err, errlen,
                                  "%s: token %zu has length %d, outside 1..max_token_length %d",
                                  path, n, len, l->max_token_length);
        }
        if (size - pos < (size_t)len) {
            free(bytes.v);
            return tokenizer_fail(err, errlen, "%s: truncated: token %zu needs %d bytes, has %zu",
                                  path, n, len, size - pos);
        }
        l->score = array_reserve(l->score, &cap_score, n + 1, sizeof(float));
        l->off = array_reserve(l->off, &cap_off, n + 2, sizeof(size_t));
        l->score[n] = score;
        bytevec_append(&bytes, data + pos, (size_t)len);
        l->off[n + 1] = bytes.n;
        pos += (size_t)len;
    }
    l->bytes = bytes.v;
    l->n = (int)(n < INT32_MAX ? n : INT32_MAX);
    if (n < LLAMA2C_BYTE_BASE + 256 || n > INT32_MAX)
        return tokenizer_fail(err, errlen, "%s: %zu tokens; a llama2.c tokenizer has at least %d",
                              path, n, LLAMA2C_BYTE_BASE + 256);
    for (int b = 0; b < 256; b++) {
        size_t k;
        const char *s = stored(l, LLAMA2C_BYTE_BASE + b, &k);
        if (byte_piece(s, k) != b)
            return tokenizer_fail(err, errlen, "%s: token %d is \"%.*s\", not <0x%02X>", path,
                                  LLAMA2C_BYTE_BASE + b, (int)k, s, b);
    }
    return true;
}

// The hash: the kind, max_token_length, then each token's score (its bits) and stored string.
static uint64_t llama2c_hash(const Llama2c *l) {
    const char *kind = TOKENIZER_KIND_NAMES[TOKENIZER_LLAMA2C];
    uint64_t h = fnv1a_str(FNV1A_OFFSET, kind, strlen(kind));
    h = fnv1a_u32(h, (uint32_t)l->max_token_length);
    h = fnv1a_u32(h, (uint32_t)l->n);
    for (int id = 0; id < l->n; id++) {
        uint32_t bits;
        memcpy(&bits, &l->score[id], sizeof(bits));
        size_t k;
        const char *s = stored(l, id, &k);
        h = fnv1a_str(fnv1a_u32(h, bits), s, k);
    }
    return h;
}

Tokenizer *llama2c_load(const char *path, char *err, size_t errlen) {
    size_t size;
    char *data = tokenizer_read_file(path, &size, err, errlen);
    if (!data) return NULL;
    Llama2c *l = lc_calloc(1, sizeof(*l));
    bool ok = parse_records(l, (const unsigned char *)data, size, path, err, errlen);
    free(data);
    bytesmap_init(&l->index, (size_t)l->n);
    if (!ok) {
        llama2c_release(l);
        return NULL;
    }
    Tokenizer *tok = tokenizer_alloc(TOKENIZER_LLAMA2C);
    tok->impl = l;
    tok->ops = &LLAMA2C_OPS;
    tok->n_vocab = l->n;
    // The tokens' bytes: the stored strings, "<0xHH>" as its byte.
    ByteVec bytes = {0};
    tok->tok_off = lc_malloc(((size_t)l->n + 1) * sizeof(size_t));
    for (int id = 0; id < l->n; id++) {
        size_t k;
        const char *s = stored(l, id, &k);
        bytesmap_intern(&l->index, s, k, id);
        tok->tok_off[id] = bytes.n;
        int b = id >= LLAMA2C_BYTE_BASE ? byte_piece(s, k) : -1;
        if (b >= 0) {
            char c = (char)b;
            bytevec_append(&bytes, &c, 1);
        } else {
            bytevec_append(&bytes, s, k);
        }
    }
    tok->tok_off[l->n] = bytes.n;
    tok->tok_bytes = bytes.v;
    l->space = bytesmap_get(&l->index, " ", 1);
    // run.c's fixed ids; the special names are SentencePiece's.
    static const char *const names[] = {"<unk>", "<s>", "</s>"};
    static const size_t lens[] = {5, 3, 4};
    tok->n_specials = 3;
    tok->specials = lc_malloc(3 * sizeof(int));
    for (int i = 0; i < 3; i++) tok->specials[i] = i;
    tokenizer_name_specials(tok, names, lens);
    tok->bos = LLAMA2C_BOS;
    tok->eot = LLAMA2C_EOS;
    tok->content_hash = llama2c_hash(l);
    return tok;
}

// ---- writing a SentencePiece model -------------------------------------------------------------

// Protocol buffers, the little that ModelProto needs: varints, tags, length-delimited fields,
// 32-bit floats (https://protobuf.dev/programming-guides/encoding/).
static void pb_varint(ByteVec *b, uint64_t v) {
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        bytevec_append(b, &c, 1);
    } while (v);
}

static void pb_tag(ByteVec *b, int field, int wire) {
    pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

static void pb_int(ByteVec *b, int field, int64_t v) { // int32/int64/enum/bool: wire type 0
    pb_tag(b, field, 0);
    pb_varint(b, (uint64_t)v); // a negative int32 is sign-extended to ten bytes
}

static void pb_bytes(ByteVec *b, int field, const void *data, size_t n) { // wire type 2
    pb_tag(b, field, 2);
    pb_varint(b, n);
    bytevec_append(b, data, n);
}

static void pb_float(ByteVec *b, int field, float f) { // wire type 5
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    unsigned char le[4] = {u & 0xff, (u >> 8) & 0xff, (u >> 16) & 0xff, u >> 24};
    pb_tag(b, field, 5);
    bytevec_append(b, le, 4);
}

// sentencepiece_model.proto's field numbers.
enum {
    MODEL_PIECES = 1,
    MODEL_TRAINER_SPEC = 2,
    MODEL_NORMALIZER_SPEC = 3,
    PIECE_PIECE = 1,
    PIECE_SCORE = 2,
    PIECE_TYPE = 3,
    TRAINER_MODEL_TYPE = 3,
    TRAINER_VOCAB_SIZE = 4,
    TRAINER_BYTE_FALLBACK = 35,
    TRAINER_UNK_ID = 40,
    TRAINER_BOS_ID = 41,
    TRAINER_EOS_ID = 42,
    TRAINER_PAD_ID = 43,
    NORM_NAME = 1,
    NORM_ADD_DUMMY_PREFIX = 3,
    NORM_REMOVE_EXTRA_WHITESPACES = 4,
    NORM_ESCAPE_WHITESPACES = 5,
    TYPE_NORMAL = 1,
    TYPE_UNKNOWN = 2,
    TYPE_CONTROL = 3,
    TYPE_BYTE = 6,
    MODEL_TYPE_BPE = 2
};

// The model llama2.c's tokenizer came from: a BPE with byte fallback whose pieces spell spaces
// U+2581, normalized with add_dummy_prefix and whitespace escaping but nothing else, so that
// libsentencepiece encodes any text into run.c's ids.
bool llama2c_write_spm(const Tokenizer *tok, const char *path, char *err, size_t errlen) {
    const Llama2c *l = tok->impl;
    static const char *const control[] = {"<unk>", "\n<s>\n", "\n</s>\n"};
    static const char *const spm_name[] = {"<unk>", "<s>", "</s>"};
    for (int id = 0; id < 3; id++) {
        size_t k;
        const char *s = stored(l, id, &k);
        if (k != strlen(control[id]) || memcmp(s, control[id], k) != 0)
            return tokenizer_fail(err, errlen,
                                  "%s: token %d is not llama2.c's %s, so the tokenizer has no "
                                  "SentencePiece form",
                                  path, id, spm_name[id]);
    }
    ByteVec model = {0}, piece = {0}, text = {0};
    for (int id = 0; id < l->n; id++) {
        size_t k;
        const char *s = stored(l, id, &k);
        int type = id == 0                        ? TYPE_UNKNOWN
                   : id < 3                       ? TYPE_CONTROL
                   : id < LLAMA2C_BYTE_BASE + 256 ? TYPE_BYTE
                                                  : TYPE_NORMAL;
        text.n = 0;
        if (id < 3) {
            bytevec_append(&text, spm_name[id], strlen(spm_name[id]));
        } else if (type == TYPE_BYTE) {
            bytevec_append(&text, s, k);
        } else {
            for (size_t i = 0; i < k; i++)
                if (s[i] == ' ')
                    bytevec_append(&text, "\xe2\x96\x81", 3); // U+2581
                else
                    bytevec_append(&text, s + i, 1);
        }
        piece.n = 0;
        pb_bytes(&piece, PIECE_PIECE, text.v, text.n);
        pb_float(&piece, PIECE_SCORE, type == TYPE_NORMAL ? l->score[id] : 0.0f);
        pb_int(&piece, PIECE_TYPE, type);
        pb_bytes(&model, MODEL_PIECES, piece.v, piece.n);
    }
    ByteVec spec = {0};
    pb_int(&spec, TRAINER_MODEL_TYPE, MODEL_TYPE_BPE);
    pb_int(&spec, TRAINER_VOCAB_SIZE, l->n);
    pb_int(&spec, TRAINER_BYTE_FALLBACK, 1);
    pb_int(&spec, TRAINER_UNK_ID, 0);
    pb_int(&spec, TRAINER_BOS_ID, LLAMA2C_BOS);
    pb_int(&spec, TRAINER_EOS_ID, LLAMA2C_EOS);
    pb_int(&spec, TRAINER_PAD_ID, -1);
    pb_bytes(&model, MODEL_TRAINER_SPEC, spec.v, spec.n);
    spec.n = 0;
    pb_bytes(&spec, NORM_NAME, "identity", 8);
    pb_int(&spec, NORM_ADD_DUMMY_PREFIX, 1);
    pb_int(&spec, NORM_REMOVE_EXTRA_WHITESPACES, 0);
    pb_int(&spec, NORM_ESCAPE_WHITESPACES, 1);
    pb_bytes(&model, MODEL_NORMALIZER_SPEC, spec.v, spec.n);
    free(spec.v);
    free(piece.v);
    free(text.v);

    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(model.v, 1, model.n, f) == model.n;
    ok = (f && fclose(f) == 0) && ok;
    free(model.v);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return tokenizer_fail(err, errlen, "%s: could not write", path);
    }
    return true;
}
