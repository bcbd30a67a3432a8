// data/tokenizer-impl.h: internals shared by the tokenizer's files (tokenizer.c: building,
// encoding, decoding, the public queries; tokenizer_file.c: choosing the kind of a path, GPT-2
// folders, layercake's JSON files, SentencePiece models, the configuration files and the
// export; tokenizer_hf.c: Hugging Face tokenizer.json and the byte-to-unicode table;
// tokenizer_llama2c.c: llama2.c's tokenizer.bin; tokenizer_nfc.c: Unicode NFC; bpe_train.c:
// training; tokenizer_hash.c: hashes, maps, arrays). Not part of the public API.
//
// The files call each other in one direction only (tests/check_architecture.py): tokenizer.c
// uses tokenizer_hash.c; tokenizer_hf.c and tokenizer_llama2c.c use tokenizer.c; tokenizer_file.c
// uses all of them. tokenizer.c reaches the kinds' own code through a table of functions
// (TokenizerOps) that their loaders install.
#pragma once
#include "data/tokenizer.h"
#include <jansson.h>
#include <stdbool.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// GPT-2's pre-tokenisation pattern, compiled with PCRE2's UTF, UCP and MATCH_INVALID_UTF.
#define TOKENIZER_PATTERN                                                                          \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

// The special tokens every trained tokenizer reserves, in id order after the learned tokens.
#define TOKENIZER_N_DEFAULT_SPECIALS 5
extern const char *const TOKENIZER_DEFAULT_SPECIALS[TOKENIZER_N_DEFAULT_SPECIALS];

// The kinds of tokenizer, in the order of TOKENIZER_KIND_NAMES (tokenizer_kind's strings).
typedef enum {
    TOKENIZER_LAYERCAKE,     // layercake's own JSON file (trained, or saved)
    TOKENIZER_GPT2,          // encoder.json + vocab.bpe (or vocab.json + merges.txt)
    TOKENIZER_HF_BPE,        // Hugging Face tokenizer.json, byte-level BPE
    TOKENIZER_SENTENCEPIECE, // tokenizer.model through libsentencepiece
    TOKENIZER_LLAMA2C,       // llama2.c's tokenizer .bin
    TOKENIZER_N_KINDS
} TokenizerKind;
extern const char *const TOKENIZER_KIND_NAMES[TOKENIZER_N_KINDS];

// ---- FNV-1a 64 ---------------------------------------------------------------------------------

#define FNV1A_OFFSET 0xcbf29ce484222325ull
uint64_t fnv1a_update(uint64_t h, const void *data, size_t n);
uint64_t fnv1a_u32(uint64_t h, uint32_t x); // x as 4 little-endian bytes
// A string as its length (fnv1a_u32) then its bytes.
uint64_t fnv1a_str(uint64_t h, const char *s, size_t n);

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

// Splits text into the pieces BPE runs on; called for each piece in text order, special_id is
// the special token's id or -1.
typedef void (*PieceFn)(void *ctx, const char *piece, size_t len, int special_id);

// What a kind other than the byte-level BPE that tokenizer.c runs on its own supplies. Every
// function may be NULL, meaning tokenizer.c's default.
typedef struct {
    // The pieces of text (default: GPT-2's pattern, special tokens cut out when allow_special),
    // which tokenizer.c then encodes with BPE.
    void (*pretokenize_text)(const Tokenizer *tok, const char *text, size_t len, int allow_special,
                             PieceFn emit, void *ctx);
    // A whole encoder, in place of pre-tokenisation and BPE: appends the ids of text to out.
    void (*encode_text)(const Tokenizer *tok, const char *text, size_t len, IntVec *out);
    // Decodes n ids, all in range (default: the tokens' bytes back to back).
    char *(*decode_ids)(const Tokenizer *tok, const int *ids, int n, size_t *len);
    // Frees tok->impl.
    void (*release_impl)(void *impl);
} TokenizerOps;

struct Tokenizer {
    TokenizerKind kind;
    int n_vocab;
    size_t *tok_off; // (n_vocab + 1): token id is tok_bytes[tok_off[id] .. tok_off[id + 1])
    char *tok_bytes;
    int byte_id[256]; // the token of each single byte (byte-level BPE kinds)
    int n_merges;
    Merge *merges;     // (n_merges) in priority order: merges[0] applies first
    U64Map merge_rank; // pair_key(left, right) -> index into merges
    int n_specials;
    int *specials;             // (n_specials) ids of the special tokens, ascending
    int eot;                   // the end-of-text (EOS) id, or -1 (tokenizer_eot, tokenizer_eos)
    int bos, pad;              // or -1
    const char **special_text; // (n_specials) pointers into tok_bytes or special_arena
    size_t *special_len;       // (n_specials)
    char *special_arena;       // special tokens' names where they differ from their bytes
    pcre2_code *pattern;       // TOKENIZER_PATTERN, compiled once (GPT-2 and layercake kinds)
    // BPE variants (Hugging Face's): merge the lowest-ranked pair one occurrence at a time, the
    // leftmost first, rather than all its occurrences in one round; and with ignore_merges, a
    // piece that is a token of the model's vocabulary (vocab_index) is that token.
    bool merge_one_at_a_time;
    bool ignore_merges;
    BytesMap vocab_index;    // bytes -> id, where ignore_merges
    const TokenizerOps *ops; // NULL: byte-level BPE run by tokenizer.c alone
    void *impl;              // the kind's own data
    char *chat_template;     // tokenizer_config.json's, or NULL
    // The hash of what the tokenizer does, bos, eos and pad aside; for the kinds other than
    // layercake and GPT-2 the fingerprint adds those three (tokenizer_seal).
    uint64_t content_hash;
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
    TokenizerKind kind;
} TokenizerParts;

// Checks the parts (every byte has a token, merges name existing tokens, no two ordinary
// tokens share bytes, and for the layercake and GPT-2 kinds, <|endoftext|> is special) and builds
// the tokenizer. Always takes ownership of the parts' arrays. On failure returns NULL with a
// message naming `source`. The fingerprint is set for the layercake and GPT-2 kinds; other kinds
// get content_hash = the same hash started from their kind's name (tokenizer_core_hash).
Tokenizer *tokenizer_build(TokenizerParts *parts, const char *source, char *err, size_t errlen);

// FNV-1a over the tokens, merges and special tokens (docs/tokenizer.md), continuing from h.
uint64_t tokenizer_core_hash(const Tokenizer *tok, uint64_t h);

// Sets the fingerprint of a kind other than layercake and GPT-2: content_hash, then bos, eos
// and pad as little-endian int32.
void tokenizer_seal(Tokenizer *tok);

// An empty tokenizer of the given kind (bos, eot, pad -1), for loaders that fill it themselves.
Tokenizer *tokenizer_alloc(TokenizerKind kind);

// Points special_text at a copy of each special token's name (names[i], lens[i]) kept in
// special_arena; specials must be set and sorted.
void tokenizer_name_specials(Tokenizer *tok, const char *const *names, const size_t *lens);

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

pcre2_code *pretokenizer_compile(void);
void pretokenize(const Pretokenizer *p, const char *text, size_t len, PieceFn emit, void *ctx);

// ---- errors and files --------------------------------------------------------------------------

// Formats a message into err (when errlen > 0) and returns NULL.
void *tokenizer_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Reads a whole file into a malloc'd buffer (NUL-terminated; *len excludes the NUL), or
// returns NULL with a message naming it.
char *tokenizer_read_file(const char *path, size_t *len, char *err, size_t errlen);

// Parses a JSON file; on failure returns NULL with a message naming the file, line and column.
json_t *tokenizer_load_json(const char *path, char *err, size_t errlen);

// Writes a JSON value to path (through path.tmp, renamed), or returns false with a message.
bool tokenizer_write_json(json_t *root, const char *path, char *err, size_t errlen);

// ---- GPT-2's byte-to-unicode table (tokenizer_hf.c) --------------------------------------------

// GPT-2 spells every byte as one printable character so that token strings never hold
// spaces or control characters: the bytes that are visible Latin-1 characters ('!'..'~',
// '¡'..'¬', '®'..'ÿ') stand for themselves, and the other 68 bytes, in increasing order, for
// the code points 256, 257, ... (so the space 0x20 is U+0120 'Ġ', the newline U+010A 'Ċ').
#define CODEC_MAX_CP (256 + 68)

typedef struct {
    uint16_t cp[256];           // byte -> code point
    int16_t byte[CODEC_MAX_CP]; // code point -> byte, or -1
} ByteCodec;

void codec_init(ByteCodec *c);
// Appends the byte-to-unicode spelling of bytes[0, n), in UTF-8, to out.
void codec_spell(const ByteCodec *c, const char *bytes, size_t n, ByteVec *out);
// Appends the bytes a spelling s[0, n) stands for to out; false if s is not a spelling.
bool codec_read(const ByteCodec *c, const char *s, size_t n, ByteVec *out);

// ---- the kinds' loaders and writers ------------------------------------------------------------

// Hugging Face tokenizer.json (tokenizer_hf.c), already parsed into root. *foreign is set when
// the file is a tokenizer.json of a kind layercake does not run (not BPE, or BPE without
// byte-level pre-tokenisation), so a SentencePiece model beside it may be used instead.
Tokenizer *hf_load(const char *path, json_t *root, bool *foreign, char *err, size_t errlen);
// Writes a byte-level BPE tokenizer (layercake, GPT-2 or hf-bpe kind) as tokenizer.json.
bool hf_write(const Tokenizer *tok, const char *path, char *err, size_t errlen);

// llama2.c's tokenizer .bin (tokenizer_llama2c.c).
Tokenizer *llama2c_load(const char *path, char *err, size_t errlen);
// Writes a llama2.c tokenizer as a SentencePiece ModelProto (tokenizer.model).
bool llama2c_write_spm(const Tokenizer *tok, const char *path, char *err, size_t errlen);

// ---- Unicode (tokenizer_nfc.c) -----------------------------------------------------------------

// The length of the longest prefix of s[0, n) that is valid UTF-8 (as PCRE2 defines it: no
// overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_valid_prefix(const char *s, size_t n);
// The length of the invalid bytes s[0, k) that precede the next valid character (k >= 1 when
// s[0] does not start one; every byte of an invalid run is counted).
size_t utf8_invalid_prefix(const char *s, size_t n);
// Whether the code point is Unicode White_Space.
bool unicode_is_white_space(uint32_t cp);
// Decodes the valid UTF-8 character at s (n >= 1 bytes there), setting *len to its length.
uint32_t utf8_decode(const char *s, size_t n, size_t *len);

// Appends the NFC form of the valid UTF-8 text s[0, n) to out (Unicode 14, as PCRE2 10.42 and
// Python 3.11; tables in tokenizer_nfc_tables.h).
void nfc_normalize(const char *s, size_t n, ByteVec *out);
// Whether s[0, n) (valid UTF-8) is certainly unchanged by NFC (a quick check on its characters).
bool nfc_quick_check(const char *s, size_t n);
