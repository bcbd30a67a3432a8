// data/tokenizer.c: the tokenizer at run time: building a byte-level BPE one from its parts
// (checked), pre-tokenisation with GPT-2's pattern through PCRE2, BPE encoding with a per-call
// cache of piece -> ids, decoding, the fingerprint, and the public queries for every kind (the
// other kinds' encoders and decoders are reached through tok->ops). Loading and saving files is
// in tokenizer_file.c, training in bpe_train.c.
#define _GNU_SOURCE // memmem
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const TOKENIZER_DEFAULT_SPECIALS[TOKENIZER_N_DEFAULT_SPECIALS] = {
    "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"};

const char *const TOKENIZER_KIND_NAMES[TOKENIZER_N_KINDS] = {[TOKENIZER_LAYERCAKE] = "layercake",
                                                             [TOKENIZER_GPT2] = "gpt2",
                                                             [TOKENIZER_HF_BPE] = "hf-bpe",
                                                             [TOKENIZER_SENTENCEPIECE] =
                                                                 "sentencepiece",
                                                             [TOKENIZER_LLAMA2C] = "llama2c"};

void *tokenizer_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

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

json_t *tokenizer_load_json(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return tokenizer_fail(err, errlen, "%s: %s", path, strerror(errno));
    json_error_t je;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (root) return root;
    if (je.line < 0) return tokenizer_fail(err, errlen, "%s: %s", path, je.text);
    return tokenizer_fail(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
}

bool tokenizer_write_json(json_t *root, const char *path, char *err, size_t errlen) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return tokenizer_fail(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
    bool bad = json_dumpf(root, f, JSON_INDENT(1)) != 0 || fputc('\n', f) == EOF;
    bad = fclose(f) != 0 || bad;
    if (bad || rename(tmp, path) != 0) {
        tokenizer_fail(err, errlen, "%s: could not write: %s", path, strerror(errno));
        remove(tmp);
        return false;
    }
    return true;
}

// ---- pre-tokenisation --------------------------------------------------------------------------

// MATCH_INVALID_UTF lets the pattern run over any bytes: invalid UTF-8 matches no pattern
// item, so it is left between matches and pretokenize() emits it as pieces of its own.
pcre2_code *pretokenizer_compile(void) {
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)TOKENIZER_PATTERN, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, NULL);
    LC_ASSERT(re); // a constant pattern: failing to compile it is a bug
    // Where PCRE2 has no JIT for this machine, pcre2_match interprets the pattern instead.
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

// Runs the pattern over text[0, len), which holds no special token.
static void pretokenize_plain(const Pretokenizer *p, pcre2_match_data *md, const char *text,
                              size_t len, PieceFn emit, void *ctx) {
    size_t pos = 0;
    while (pos < len) {
        int rc = pcre2_match(p->pattern, (PCRE2_SPTR)text, len, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            emit(ctx, text + pos, len - pos, -1);
            return;
        }
        if (rc < 0) LC_DIE("pcre2_match failed with error %d at byte %zu", rc, pos);
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > pos) emit(ctx, text + pos, ov[0] - pos, -1);
        emit(ctx, text + ov[0], ov[1] - ov[0], -1);
        pos = ov[1];
    }
}

// The first special token in text[from, len) (the longest where several start at the same
// byte): returns its index, or -1, and its position in *at. next[i] holds where special i
// occurs at or after an earlier `from` (SIZE_MAX: nowhere), so text is searched again only
// past occurrences that have been consumed or skipped.
static int next_special(const Pretokenizer *p, const char *text, size_t len, size_t from,
                        size_t *next, size_t *at) {
    int best = -1;
    for (int i = 0; i < p->n_specials; i++) {
        if (next[i] != SIZE_MAX && next[i] < from) {
            const char *hit =
                memmem(text + from, len - from, p->special_text[i], p->special_len[i]);
            next[i] = hit ? (size_t)(hit - text) : SIZE_MAX;
        }
        if (next[i] == SIZE_MAX) continue;
        if (best < 0 || next[i] < *at ||
            (next[i] == *at && p->special_len[i] > p->special_len[best])) {
            best = i;
            *at = next[i];
        }
    }
    return best;
}

void pretokenize(const Pretokenizer *p, const char *text, size_t len, PieceFn emit, void *ctx) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->pattern, NULL);
    LC_ASSERT(md);
    size_t *next = lc_malloc(((size_t)p->n_specials + 1) * sizeof(*next));
    for (int i = 0; i < p->n_specials; i++) {
        const char *hit = memmem(text, len, p->special_text[i], p->special_len[i]);
        next[i] = hit ? (size_t)(hit - text) : SIZE_MAX;
    }
    size_t pos = 0, at = 0;
    int s;
    while ((s = next_special(p, text, len, pos, next, &at)) >= 0) {
        pretokenize_plain(p, md, text + pos, at - pos, emit, ctx);
        emit(ctx, text + at, p->special_len[s], p->special_id[s]);
        pos = at + p->special_len[s];
    }
    pretokenize_plain(p, md, text + pos, len - pos, emit, ctx);
    free(next);
    pcre2_match_data_free(md);
}

// ---- BPE on one piece --------------------------------------------------------------------------

// GPT-2's rule: find the adjacent pair with the lowest merge rank, merge all its occurrences
// left to right, repeat. Done here in O(n log n) with a heap of (rank, position) over a linked
// list of symbols: a round pops every entry of the lowest rank in position order (entries
// whose symbols have changed since are skipped), and the pairs the round creates enter the
// heap only when it ends, so a round sees the piece as it was when it began, as GPT-2's does.
// Hugging Face's rule (merge_one_at_a_time) merges only the leftmost occurrence of the
// lowest-ranked pair, then looks again; the two agree unless a merge makes a token that an
// earlier-ranked merge uses (real tokenizers' merges never do).
typedef struct {
    int *id, *next, *prev; // per symbol (a byte position); id -1 once merged into its left
    uint64_t *heap;        // min-heap of rank << 32 | position
    uint64_t *fresh;       // pairs made in the current round
    size_t cap, n_heap, n_fresh;
} BpeScratch;

static void bpe_scratch_reserve(BpeScratch *s, size_t n) {
    if (n <= s->cap) return;
    free(s->id);
    free(s->next);
    free(s->prev);
    free(s->heap);
    free(s->fresh);
    s->cap = n + n / 2;
    s->id = lc_malloc(s->cap * sizeof(int));
    s->next = lc_malloc(s->cap * sizeof(int));
    s->prev = lc_malloc(s->cap * sizeof(int));
    // n - 1 first pairs, then at most two new pairs for each of at most n - 1 merges
    s->heap = lc_malloc(3 * s->cap * sizeof(uint64_t));
    s->fresh = lc_malloc(2 * s->cap * sizeof(uint64_t));
}

static void bpe_scratch_free(BpeScratch *s) {
    free(s->id);
    free(s->next);
    free(s->prev);
    free(s->heap);
    free(s->fresh);
}

static void heap_push(BpeScratch *s, uint64_t key) {
    size_t i = s->n_heap++;
    while (i > 0 && s->heap[(i - 1) / 2] > key) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = key;
}

static uint64_t heap_pop(BpeScratch *s) {
    uint64_t top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1] < s->heap[c]) c++;
        if (s->heap[c] >= last) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

// The heap key of the pair starting at symbol pos, or UINT64_MAX if it has no merge.
static uint64_t pair_entry(const Tokenizer *tok, const BpeScratch *s, int pos, int n) {
    int right = s->next[pos];
    if (right >= n) return UINT64_MAX;
    int32_t rank = u64map_get(&tok->merge_rank, pair_key(s->id[pos], s->id[right]));
    return rank < 0 ? UINT64_MAX : (uint64_t)rank << 32 | (uint32_t)pos;
}

static void merge_at(const Tokenizer *tok, BpeScratch *s, int pos, const Merge *m, int n) {
    int right = s->next[pos];
    s->id[pos] = m->merged;
    s->id[right] = -1;
    s->next[pos] = s->next[right];
    if (s->next[pos] < n) s->prev[s->next[pos]] = pos;
    uint64_t before = s->prev[pos] >= 0 ? pair_entry(tok, s, s->prev[pos], n) : UINT64_MAX;
    uint64_t after = pair_entry(tok, s, pos, n);
    if (before != UINT64_MAX) s->fresh[s->n_fresh++] = before;
    if (after != UINT64_MAX) s->fresh[s->n_fresh++] = after;
}

// Appends the ids of piece w[0, n) to out.
static void bpe_piece(const Tokenizer *tok, const unsigned char *w, int n, BpeScratch *s,
                      IntVec *out) {
    bpe_scratch_reserve(s, (size_t)n);
    for (int i = 0; i < n; i++) {
        s->id[i] = tok->byte_id[w[i]];
        s->next[i] = i + 1;
        s->prev[i] = i - 1;
    }
    s->n_heap = 0;
    for (int i = 0; i + 1 < n; i++) {
        uint64_t e = pair_entry(tok, s, i, n);
        if (e != UINT64_MAX) heap_push(s, e);
    }
    while (s->n_heap > 0) {
        uint64_t rank = s->heap[0] >> 32;
        s->n_fresh = 0;
        while (s->n_heap > 0 && s->heap[0] >> 32 == rank) {
            int pos = (int)(uint32_t)heap_pop(s);
            const Merge *m = &tok->merges[rank];
            int right = s->next[pos];
            if (s->id[pos] == m->left && right < n && s->id[right] == m->right) {
                merge_at(tok, s, pos, m, n);
                // Hugging Face's order: the pairs this merge made compete at once
                if (tok->merge_one_at_a_time) break;
            }
        }
        for (size_t i = 0; i < s->n_fresh; i++) heap_push(s, s->fresh[i]);
    }
    for (int i = 0; i < n; i = s->next[i]) intvec_push(out, s->id[i]);
}

// ---- encoding ----------------------------------------------------------------------------------

// Pieces repeat (words, spaces, punctuation), so each call remembers the ids of the pieces it
// has seen. Long pieces rarely repeat and are not kept; nor is anything past a bound, so the
// cache's offsets fit in its int32 values.
#define CACHE_MAX_PIECE  64
#define CACHE_MAX_PIECES (1 << 20)

typedef struct {
    const Tokenizer *tok;
    IntVec out;
    BytesMap cache; // piece -> offset into cached: the count of its ids, then the ids
    IntVec cached;
    BpeScratch bpe;
} Encoder;

static void encode_piece(void *ctx, const char *piece, size_t len, int special_id) {
    Encoder *e = ctx;
    if (special_id >= 0) {
        intvec_push(&e->out, special_id);
        return;
    }
    if (len == 0) return;
    if (e->tok->ignore_merges) {
        int32_t whole = bytesmap_get(&e->tok->vocab_index, piece, len);
        if (whole >= 0) {
            intvec_push(&e->out, whole);
            return;
        }
    }
    int32_t at = bytesmap_get(&e->cache, piece, len);
    if (at >= 0) {
        int n = e->cached.v[at];
        intvec_reserve(&e->out, (size_t)n);
        memcpy(e->out.v + e->out.n, e->cached.v + at + 1, (size_t)n * sizeof(int));
        e->out.n += (size_t)n;
        return;
    }
    LC_ASSERT(len < INT_MAX);
    size_t start = e->out.n;
    bpe_piece(e->tok, (const unsigned char *)piece, (int)len, &e->bpe, &e->out);
    if (len > CACHE_MAX_PIECE || e->cache.count >= CACHE_MAX_PIECES) return;
    int n = (int)(e->out.n - start);
    bytesmap_intern(&e->cache, piece, len, (int32_t)e->cached.n);
    intvec_push(&e->cached, n);
    intvec_reserve(&e->cached, (size_t)n);
    memcpy(e->cached.v + e->cached.n, e->out.v + start, (size_t)n * sizeof(int));
    e->cached.n += (size_t)n;
}

int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int allow_special,
                     int **ids) {
    Encoder e = {.tok = tok};
    intvec_reserve(&e.out, len / 4 + 1);
    if (len > 0 && tok->ops && tok->ops->encode_text) {
        tok->ops->encode_text(tok, text, len, &e.out);
    } else if (len > 0) {
        bytesmap_init(&e.cache, len / 16 < 4096 ? len / 16 : 4096);
        if (tok->ops && tok->ops->pretokenize_text) {
            tok->ops->pretokenize_text(tok, text, len, allow_special, encode_piece, &e);
        } else {
            Pretokenizer p = {tok->pattern, allow_special ? tok->n_specials : 0, tok->special_text,
                              tok->special_len, tok->specials};
            pretokenize(&p, text, len, encode_piece, &e);
        }
        bytesmap_free(&e.cache);
        free(e.cached.v);
        bpe_scratch_free(&e.bpe);
    }
    LC_ASSERT(e.out.n <= INT_MAX);
    *ids = e.out.v ? e.out.v : lc_malloc(sizeof(int));
    return (int)e.out.n;
}

char *tokenizer_decode(const Tokenizer *tok, const int *ids, int n, size_t *len) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) return NULL;
    if (tok->ops && tok->ops->decode_ids) return tok->ops->decode_ids(tok, ids, n, len);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += tok->tok_off[ids[i] + 1] - tok->tok_off[ids[i]];
    char *text = lc_malloc(total + 1);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t k;
        const char *b = token_bytes(tok, ids[i], &k);
        memcpy(text + at, b, k);
        at += k;
    }
    text[total] = '\0';
    *len = total;
    return text;
}

// ---- queries -----------------------------------------------------------------------------------

int tokenizer_vocab_size(const Tokenizer *tok) {
    return tok->n_vocab;
}

int tokenizer_special(const Tokenizer *tok, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < tok->n_specials; i++)
        if (tok->special_len[i] == len && memcmp(tok->special_text[i], name, len) == 0)
            return tok->specials[i];
    return -1;
}

int tokenizer_eot(const Tokenizer *tok) {
    return tok->eot;
}

int tokenizer_eos(const Tokenizer *tok) {
    return tok->eot;
}

int tokenizer_bos(const Tokenizer *tok) {
    return tok->bos;
}

int tokenizer_pad(const Tokenizer *tok) {
    return tok->pad;
}

const char *tokenizer_kind(const Tokenizer *tok) {
    return TOKENIZER_KIND_NAMES[tok->kind];
}

const char *tokenizer_chat_template(const Tokenizer *tok) {
    return tok->chat_template;
}

uint64_t tokenizer_fingerprint(const Tokenizer *tok) {
    return tok->fingerprint;
}

const char *tokenizer_token(const Tokenizer *tok, int id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    return token_bytes(tok, id, len);
}

void tokenizer_free(Tokenizer *tok) {
    if (!tok) return;
    if (tok->ops && tok->ops->release_impl && tok->impl) tok->ops->release_impl(tok->impl);
    free(tok->tok_off);
    free(tok->tok_bytes);
    free(tok->merges);
    if (tok->merge_rank.keys) u64map_free(&tok->merge_rank);
    if (tok->vocab_index.slots) bytesmap_free(&tok->vocab_index);
    free(tok->specials);
    free(tok->special_text);
    free(tok->special_len);
    free(tok->special_arena);
    free(tok->chat_template);
    if (tok->pattern) pcre2_code_free(tok->pattern);
    free(tok);
}

Tokenizer *tokenizer_alloc(TokenizerKind kind) {
    Tokenizer *tok = lc_calloc(1, sizeof(*tok));
    tok->kind = kind;
    tok->eot = tok->bos = tok->pad = -1;
    return tok;
}

void tokenizer_name_specials(Tokenizer *tok, const char *const *names, const size_t *lens) {
    size_t total = 0;
    for (int i = 0; i < tok->n_specials; i++) total += lens[i];
    free(tok->special_text);
    free(tok->special_len);
    free(tok->special_arena);
    tok->special_arena = lc_malloc(total + 1);
    tok->special_text = lc_calloc((size_t)tok->n_specials + 1, sizeof(*tok->special_text));
    tok->special_len = lc_calloc((size_t)tok->n_specials + 1, sizeof(*tok->special_len));
    size_t at = 0;
    for (int i = 0; i < tok->n_specials; i++) {
        memcpy(tok->special_arena + at, names[i], lens[i]);
        tok->special_text[i] = tok->special_arena + at;
        tok->special_len[i] = lens[i];
        at += lens[i];
    }
}

void tokenizer_seal(Tokenizer *tok) {
    uint64_t h = tok->content_hash;
    h = fnv1a_u32(h, (uint32_t)tok->bos);
    h = fnv1a_u32(h, (uint32_t)tok->eot);
    tok->fingerprint = fnv1a_u32(h, (uint32_t)tok->pad);
}

// ---- building ----------------------------------------------------------------------------------

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static bool is_special(const Tokenizer *tok, int id) {
    return bsearch(&id, tok->specials, (size_t)tok->n_specials, sizeof(int), cmp_int) != NULL;
}

// Sorts the special ids, checks them and finds <|endoftext|> (required of the layercake and
// GPT-2 kinds).
static bool build_specials(Tokenizer *tok, const char *source, char *err, size_t errlen) {
    qsort(tok->specials, (size_t)tok->n_specials, sizeof(int), cmp_int);
    tok->special_text = lc_calloc((size_t)tok->n_specials + 1, sizeof(*tok->special_text));
    tok->special_len = lc_calloc((size_t)tok->n_specials + 1, sizeof(*tok->special_len));
    tok->eot = -1;
    for (int i = 0; i < tok->n_specials; i++) {
        int id = tok->specials[i];
        if (id < 0 || id >= tok->n_vocab || (i > 0 && id == tok->specials[i - 1]))
            return tokenizer_fail(err, errlen, "%s: special token id %d is %s", source, id,
                                  id < 0 || id >= tok->n_vocab ? "out of range" : "repeated");
        tok->special_text[i] = token_bytes(tok, id, &tok->special_len[i]);
        if (tok->special_len[i] == strlen("<|endoftext|>") &&
            memcmp(tok->special_text[i], "<|endoftext|>", tok->special_len[i]) == 0)
            tok->eot = id;
    }
    if (tok->eot < 0 && (tok->kind == TOKENIZER_LAYERCAKE || tok->kind == TOKENIZER_GPT2))
        return tokenizer_fail(err, errlen, "%s: no <|endoftext|> special token", source);
    return true;
}

// Maps the ordinary tokens' bytes to their ids (into *index) and finds each byte's token.
static bool build_index(Tokenizer *tok, BytesMap *index, const char *source, char *err,
                        size_t errlen) {
    for (int id = 0; id < tok->n_vocab; id++) {
        size_t len;
        const char *b = token_bytes(tok, id, &len);
        if (len == 0) return tokenizer_fail(err, errlen, "%s: token %d is empty", source, id);
        if (is_special(tok, id)) continue;
        int32_t first = bytesmap_intern(index, b, len, id);
        if (first != id)
            return tokenizer_fail(err, errlen, "%s: tokens %d and %d have the same bytes", source,
                                  first, id);
    }
    for (int b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        tok->byte_id[b] = bytesmap_get(index, &byte, 1);
        if (tok->byte_id[b] < 0)
            return tokenizer_fail(err, errlen, "%s: no token for the byte 0x%02x", source, b);
    }
    return true;
}

// Resolves merge r, (a, b), to the token it makes and ranks it.
static bool build_merge(Tokenizer *tok, int r, int a, int b, const BytesMap *index, ByteVec *joined,
                        const char *source, char *err, size_t errlen) {
    if (a < 0 || a >= tok->n_vocab || b < 0 || b >= tok->n_vocab || is_special(tok, a) ||
        is_special(tok, b))
        return tokenizer_fail(err, errlen, "%s: merges[%d] names a special or unknown token",
                              source, r);
    size_t la, lb;
    const char *ba = token_bytes(tok, a, &la), *bb = token_bytes(tok, b, &lb);
    joined->n = 0;
    bytevec_append(joined, ba, la);
    bytevec_append(joined, bb, lb);
    int merged = bytesmap_get(index, joined->v, joined->n);
    if (merged < 0)
        return tokenizer_fail(err, errlen, "%s: merges[%d] makes a token not in the vocabulary",
                              source, r);
    int32_t earlier = u64map_get(&tok->merge_rank, pair_key(a, b));
    if (earlier >= 0)
        return tokenizer_fail(err, errlen, "%s: merges[%d] repeats merges[%d]", source, r, earlier);
    tok->merges[r] = (Merge){a, b, merged};
    u64map_put(&tok->merge_rank, pair_key(a, b), r);
    return true;
}

static bool build_merges(Tokenizer *tok, int (*pairs)[2], const BytesMap *index, const char *source,
                         char *err, size_t errlen) {
    tok->merges = lc_malloc(((size_t)tok->n_merges + 1) * sizeof(*tok->merges));
    u64map_init(&tok->merge_rank, (size_t)tok->n_merges);
    ByteVec joined = {0};
    bool ok = true;
    for (int r = 0; r < tok->n_merges && ok; r++)
        ok = build_merge(tok, r, pairs[r][0], pairs[r][1], index, &joined, source, err, errlen);
    free(joined.v);
    return ok;
}

// FNV-1a 64 over, as little-endian uint32 unless said: the counts of tokens, merges and
// special tokens; each token's length and bytes by id; each merge's left and right ids in
// priority order; the special tokens' ids ascending (docs/tokenizer.md).
uint64_t tokenizer_core_hash(const Tokenizer *tok, uint64_t h) {
    h = fnv1a_u32(h, (uint32_t)tok->n_vocab);
    h = fnv1a_u32(h, (uint32_t)tok->n_merges);
    h = fnv1a_u32(h, (uint32_t)tok->n_specials);
    for (int id = 0; id < tok->n_vocab; id++) {
        size_t len;
        const char *b = token_bytes(tok, id, &len);
        h = fnv1a_update(fnv1a_u32(h, (uint32_t)len), b, len);
    }
    for (int r = 0; r < tok->n_merges; r++)
        h = fnv1a_u32(fnv1a_u32(h, (uint32_t)tok->merges[r].left), (uint32_t)tok->merges[r].right);
    for (int i = 0; i < tok->n_specials; i++) h = fnv1a_u32(h, (uint32_t)tok->specials[i]);
    return h;
}

Tokenizer *tokenizer_build(TokenizerParts *parts, const char *source, char *err, size_t errlen) {
    Tokenizer *tok = tokenizer_alloc(parts->kind);
    tok->n_vocab = parts->n_vocab;
    tok->tok_off = parts->tok_off;
    tok->tok_bytes = parts->tok_bytes;
    tok->n_merges = parts->n_merges;
    tok->n_specials = parts->n_specials;
    tok->specials = parts->specials;
    int(*pairs)[2] = parts->pairs;
    memset(parts, 0, sizeof(*parts));

    BytesMap index;
    bytesmap_init(&index, (size_t)tok->n_vocab);
    bool ok = build_specials(tok, source, err, errlen) &&
              build_index(tok, &index, source, err, errlen) &&
              build_merges(tok, pairs, &index, source, err, errlen);
    bytesmap_free(&index);
    free(pairs);
    if (!ok) {
        tokenizer_free(tok);
        return NULL;
    }
    if (tok->kind == TOKENIZER_LAYERCAKE || tok->kind == TOKENIZER_GPT2) {
        tok->pattern = pretokenizer_compile();
        tok->fingerprint = tokenizer_core_hash(tok, FNV1A_OFFSET);
    } else {
        const char *kind = TOKENIZER_KIND_NAMES[tok->kind];
        tok->content_hash = tokenizer_core_hash(tok, fnv1a_str(FNV1A_OFFSET, kind, strlen(kind)));
    }
    return tok;
}
