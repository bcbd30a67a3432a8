// data/tokenizer-impl.h: internals shared by the tokenizer's files (tokenizer.c: building,
// encoding, decoding; tokenizer_file.c: GPT-2 folders and layercake's JSON files;
// bpe_train.c: training; tokenizer_hash.c: the hash maps). Not part of the public API.
#pragma once
#include "data/tokenizer.h"
#include <stdbool.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// GPT-2's pre-tokenisation pattern, compiled with PCRE2's UTF, UCP and MATCH_INVALID_UTF.
#define TOKENIZER_PATTERN                                                                          \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

// The special tokens every trained tokenizer reserves, in id order after the learned tokens.
#define TOKENIZER_N_DEFAULT_SPECIALS 5
extern const char *const TOKENIZER_DEFAULT_SPECIALS[TOKENIZER_N_DEFAULT_SPECIALS];

// ---- FNV-1a 64 ---------------------------------------------------------------------------------

#define FNV1A_OFFSET 0xcbf29ce484222325ull
uint64_t fnv1a_update(uint64_t h, const void *data, size_t n);

// ---- hash maps ---------------------------------------------------------------------------------

// Open addressing with linear probing over a power-of-two table, kept at most half full.

// uint64 key -> int32 value. The key UINT64_MAX is reserved (marks a free slot).
typedef struct {
    uint64_t *keys; // (cap)
    int32_t *vals;  // (cap)
    size_t cap, count;
} U64Map;

void u64map_init(U64Map *m, size_t expected);
void u64map_free(U64Map *m);
int32_t u64map_get(const U64Map *m, uint64_t key); // -1 if absent
void u64map_put(U64Map *m, uint64_t key, int32_t val);

// A pair of token ids as a U64Map key.
static inline uint64_t pair_key(int left, int right) {
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

// byte string -> int32 value >= 0. The map keeps its own copy of every key.
typedef struct {
    struct BytesSlot *slots; // (cap)
    size_t cap, count;
    char *arena; // the keys' bytes, back to back
    size_t arena_len, arena_cap;
} BytesMap;

void bytesmap_init(BytesMap *m, size_t expected);
void bytesmap_free(BytesMap *m);
int32_t bytesmap_get(const BytesMap *m, const void *key, size_t len); // -1 if absent
// Returns the value already stored under key, or stores val (>= 0) there and returns it.
int32_t bytesmap_intern(BytesMap *m, const void *key, size_t len, int32_t val);

// ---- growable arrays ---------------------------------------------------------------------------

// Returns the array p, of *cap elements of elem bytes, grown (doubling) to hold at least need.
void *array_reserve(void *p, size_t *cap, size_t need, size_t elem);

typedef struct {
    int *v;
    size_t n, cap;
} IntVec;

void intvec_push(IntVec *a, int x);
void intvec_reserve(IntVec *a, size_t n); // room for n more

typedef struct {
    char *v;
    size_t n, cap;
} ByteVec;

void bytevec_append(ByteVec *a, const void *data, size_t n);

// ---- the tokenizer -----------------------------------------------------------------------------

typedef struct {
    int left, right, merged; // token ids: merged's bytes are left's followed by right's
} Merge;

struct Tokenizer {
    int n_vocab;
    size_t *tok_off; // (n_vocab + 1): token id is tok_bytes[tok_off[id] .. tok_off[id + 1])
    char *tok_bytes;
    int byte_id[256]; // the token of each single byte
    int n_merges;
    Merge *merges;     // (n_merges) in priority order: merges[0] applies first
    U64Map merge_rank; // pair_key(left, right) -> index into merges
    int n_specials;
    int *specials;             // (n_specials) ids of the special tokens, ascending
    int eot;                   // id of <|endoftext|>
    const char **special_text; // (n_specials) pointers into tok_bytes, for the pre-tokeniser
    size_t *special_len;       // (n_specials)
    pcre2_code *pattern;       // TOKENIZER_PATTERN, compiled once
    uint64_t fingerprint;
};

// What a loader or the trainer hands to tokenizer_build: the tokens' bytes by id, the merges
// as (left, right) ids in priority order, and which ids are special tokens.
typedef struct {
    int n_vocab;
    size_t *tok_off; // (n_vocab + 1)
    char *tok_bytes;
    int n_merges;
    int (*pairs)[2]; // (n_merges)
    int n_specials;
    int *specials; // (n_specials), any order
} TokenizerParts;

// Checks the parts (every byte has a token, merges name existing tokens, no two ordinary
// tokens share bytes, <|endoftext|> is special) and builds the tokenizer. Always takes
// ownership of the parts' arrays. On failure returns NULL with a message naming `source`.
Tokenizer *tokenizer_build(TokenizerParts *parts, const char *source, char *err, size_t errlen);

// A token's bytes.
static inline const char *token_bytes(const Tokenizer *tok, int id, size_t *len) {
    *len = tok->tok_off[id + 1] - tok->tok_off[id];
    return tok->tok_bytes + tok->tok_off[id];
}

// ---- pre-tokenisation --------------------------------------------------------------------------

// Splits text into the pieces BPE runs on. With specials given, occurrences of their texts
// come out as special pieces first; the text between them goes through the pattern. Bytes
// the pattern cannot match (only invalid UTF-8 can be left over: the pattern's last
// alternatives cover every valid character) come out as pieces of their own, one per run.
typedef struct {
    const pcre2_code *pattern;
    int n_specials;
    const char *const *special_text; // (n_specials)
    const size_t *special_len;       // (n_specials)
    const int *special_id;           // (n_specials)
} Pretokenizer;

// Called for each piece in text order; special_id is the special token's id or -1.
typedef void (*PieceFn)(void *ctx, const char *piece, size_t len, int special_id);

pcre2_code *pretokenizer_compile(void);
void pretokenize(const Pretokenizer *p, const char *text, size_t len, PieceFn emit, void *ctx);

// ---- errors and files --------------------------------------------------------------------------

// Formats a message into err (when errlen > 0) and returns NULL.
void *tokenizer_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Reads a whole file into a malloc'd buffer (NUL-terminated; *len excludes the NUL), or
// returns NULL with a message naming it.
char *tokenizer_read_file(const char *path, size_t *len, char *err, size_t errlen);
