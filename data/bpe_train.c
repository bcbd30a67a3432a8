// data/bpe_train.c: training a byte-level BPE tokenizer. The corpus is pre-tokenised with
// GPT-2's pattern and its pieces counted once into word types; merges then run over the word
// types, with the count of every adjacent pair kept up to date incrementally: merging (a, b)
// revisits only the words that hold it (each pair lists the words it has appeared in), and a
// max-heap with lazy deletion finds the most frequent pair. Ties go to the pair with the
// smaller (left, right) ids, so training is deterministic.
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t start;  // first symbol in Trainer.syms
    int len;       // symbols now (merges shorten words in place)
    int stamp;     // the last merge that visited the word
    int64_t count; // occurrences in the corpus
} Word;

typedef struct {
    int left, right;
    int stamp; // the last merge that touched the pair's count upwards
    int64_t count;
    IntVec words; // words the pair has appeared in (some may no longer hold it)
} Pair;

typedef struct {
    int64_t count; // the pair's count when pushed; stale once the count has changed
    int pair;
} HeapEntry;

typedef struct {
    Word *words;
    size_t n_words, cap_words;
    IntVec syms;         // every word's symbols (token ids), back to back
    BytesMap word_index; // piece -> index into words
    Pair *pairs;
    size_t n_pairs, cap_pairs;
    U64Map pair_index; // pair_key(left, right) -> index into pairs
    HeapEntry *heap;
    size_t n_heap, cap_heap;
    IntVec touched;    // pairs whose count grew in the current merge
    ByteVec tok_bytes; // the vocabulary so far: token id's bytes at tok_off[id]
    size_t *tok_off;   // (vocab_size + 1)
    int n_tokens;
    BytesMap tok_index; // token bytes -> id
    ByteVec joined;     // scratch: a new token's bytes
    int (*merges)[2];
    int n_merges;
    size_t cap_merges;
} Trainer;

// ---- counting the corpus's words ---------------------------------------------------------------

static void count_piece(void *ctx, const char *piece, size_t len, int special_id) {
    Trainer *t = ctx;
    if (special_id >= 0) return; // special tokens separate words and are not learned from
    LC_ASSERT(t->n_words < INT32_MAX && len < INT32_MAX);
    int32_t w = bytesmap_intern(&t->word_index, piece, len, (int32_t)t->n_words);
    if ((size_t)w == t->n_words) {
        t->words = array_reserve(t->words, &t->cap_words, t->n_words + 1, sizeof(*t->words));
        t->words[t->n_words++] = (Word){t->syms.n, (int)len, -1, 0};
        intvec_reserve(&t->syms, len);
        for (size_t i = 0; i < len; i++) t->syms.v[t->syms.n++] = (unsigned char)piece[i];
    }
    t->words[w].count++;
}

static bool count_words(Trainer *t, const char *const *files, int n_files, const Pretokenizer *pre,
                        char *err, size_t errlen) {
    for (int f = 0; f < n_files; f++) {
        size_t len;
        char *text = tokenizer_read_file(files[f], &len, err, errlen);
        if (!text) return false;
        pretokenize(pre, text, len, count_piece, t);
        free(text);
    }
    return true;
}

// ---- pair counts and the heap ------------------------------------------------------------------

// The index of pair (a, b), created with count 0 if new.
static int pair_find(Trainer *t, int a, int b) {
    int32_t p = u64map_get(&t->pair_index, pair_key(a, b));
    if (p >= 0) return p;
    t->pairs = array_reserve(t->pairs, &t->cap_pairs, t->n_pairs + 1, sizeof(*t->pairs));
    LC_ASSERT(t->n_pairs < INT32_MAX);
    p = (int32_t)t->n_pairs++;
    t->pairs[p] = (Pair){.left = a, .right = b, .stamp = -1};
    u64map_put(&t->pair_index, pair_key(a, b), p);
    return p;
}

// Adds delta occurrences of (a, b) in word w; `listed` also records w in the pair's words.
static int pair_add(Trainer *t, int a, int b, int64_t delta, int w, bool listed) {
    int p = pair_find(t, a, b);
    Pair *pair = &t->pairs[p];
    pair->count += delta;
    if (listed && (pair->words.n == 0 || pair->words.v[pair->words.n - 1] != w))
        intvec_push(&pair->words, w);
    return p;
}

// Heap order: higher count first, then the smaller (left, right).
static bool heap_before(const Trainer *t, HeapEntry x, HeapEntry y) {
    if (x.count != y.count) return x.count > y.count;
    const Pair *px = &t->pairs[x.pair], *py = &t->pairs[y.pair];
    if (px->left != py->left) return px->left < py->left;
    return px->right < py->right;
}

static void heap_push(Trainer *t, HeapEntry e) {
    t->heap = array_reserve(t->heap, &t->cap_heap, t->n_heap + 1, sizeof(*t->heap));
    size_t i = t->n_heap++;
    while (i > 0 && heap_before(t, e, t->heap[(i - 1) / 2])) {
        t->heap[i] = t->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->heap[i] = e;
}

static HeapEntry heap_pop(Trainer *t) {
    HeapEntry top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(t, t->heap[c + 1], t->heap[c])) c++;
        if (!heap_before(t, t->heap[c], last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = last;
    return top;
}

// The most frequent pair, or -1 when no pair is left. Every pair with a nonzero count has an
// entry holding at least that count; stale entries are put back with the current count.
static int best_pair(Trainer *t) {
    while (t->n_heap > 0) {
        HeapEntry e = heap_pop(t);
        int64_t now = t->pairs[e.pair].count;
        if (now > 0 && now == e.count) return e.pair;
        if (now > 0 && now < e.count) heap_push(t, (HeapEntry){now, e.pair});
    }
    return -1;
}

static void count_pairs(Trainer *t) {
    for (size_t w = 0; w < t->n_words; w++) {
        const Word *wd = &t->words[w];
        const int *s = t->syms.v + wd->start;
        for (int i = 0; i + 1 < wd->len; i++) pair_add(t, s[i], s[i + 1], wd->count, (int)w, true);
    }
    for (size_t p = 0; p < t->n_pairs; p++) heap_push(t, (HeapEntry){t->pairs[p].count, (int)p});
}

// ---- merging -----------------------------------------------------------------------------------

// Replaces the occurrences of (a, b) in word w by c, left to right, and moves the word's pair
// counts from its old symbols to its new ones. Pairs holding c are recorded as touched.
static void merge_word(Trainer *t, int w, int a, int b, int c) {
    Word *wd = &t->words[w];
    int *s = t->syms.v + wd->start;
    int n = wd->len, found = 0;
    for (int i = 0; i + 1 < n && !found; i++) found = s[i] == a && s[i + 1] == b;
    if (!found) return;
    for (int i = 0; i + 1 < n; i++) pair_add(t, s[i], s[i + 1], -wd->count, w, false);
    int j = 0;
    for (int i = 0; i < n; j++) {
        bool hit = i + 1 < n && s[i] == a && s[i + 1] == b;
        s[j] = hit ? c : s[i];
        i += hit ? 2 : 1;
    }
    wd->len = j;
    for (int i = 0; i + 1 < j; i++) {
        bool new_pair = s[i] == c || s[i + 1] == c;
        int p = pair_add(t, s[i], s[i + 1], wd->count, w, new_pair);
        if (new_pair && t->pairs[p].stamp != t->n_merges) {
            t->pairs[p].stamp = t->n_merges;
            intvec_push(&t->touched, p);
        }
    }
}

// The id of the token a followed by b, added to the vocabulary if new.
static int token_join(Trainer *t, int a, int b) {
    t->joined.n = 0;
    bytevec_append(&t->joined, t->tok_bytes.v + t->tok_off[a], t->tok_off[a + 1] - t->tok_off[a]);
    bytevec_append(&t->joined, t->tok_bytes.v + t->tok_off[b], t->tok_off[b + 1] - t->tok_off[b]);
    int id = bytesmap_intern(&t->tok_index, t->joined.v, t->joined.n, t->n_tokens);
    if (id == t->n_tokens) { // else the same bytes came from another pair before
        bytevec_append(&t->tok_bytes, t->joined.v, t->joined.n);
        t->tok_off[++t->n_tokens] = t->tok_bytes.n;
    }
    return id;
}

// Merges the most frequent pair everywhere. Returns false when no pair is left.
static bool merge_best(Trainer *t) {
    int p = best_pair(t);
    if (p < 0) return false;
    int a = t->pairs[p].left, b = t->pairs[p].right;
    int c = token_join(t, a, b);
    t->merges =
        array_reserve(t->merges, &t->cap_merges, (size_t)t->n_merges + 1, sizeof(*t->merges));
    t->merges[t->n_merges][0] = a;
    t->merges[t->n_merges][1] = b;
    t->touched.n = 0;
    for (size_t k = 0; k < t->pairs[p].words.n; k++) {
        int w = t->pairs[p].words.v[k];
        if (t->words[w].stamp == t->n_merges) continue;
        t->words[w].stamp = t->n_merges;
        merge_word(t, w, a, b, c);
    }
    // Every word that held (a, b) has been merged: the list has done its work. (Should a later
    // merge remake a or b, the words where (a, b) reappears are listed afresh.)
    free(t->pairs[p].words.v);
    t->pairs[p].words = (IntVec){0};
    for (size_t k = 0; k < t->touched.n; k++) {
        int q = t->touched.v[k];
        heap_push(t, (HeapEntry){t->pairs[q].count, q});
    }
    t->n_merges++;
    return true;
}

// ---- training ----------------------------------------------------------------------------------

// The special tokens: the defaults, then the extra ones, each once.
static int list_specials(const char *const *extra, int n_extra, const char **out) {
    int n = 0;
    for (int i = 0; i < TOKENIZER_N_DEFAULT_SPECIALS + n_extra; i++) {
        const char *s = i < TOKENIZER_N_DEFAULT_SPECIALS ? TOKENIZER_DEFAULT_SPECIALS[i]
                                                         : extra[i - TOKENIZER_N_DEFAULT_SPECIALS];
        bool seen = false;
        for (int j = 0; j < n && !seen; j++) seen = strcmp(out[j], s) == 0;
        if (!seen) out[n++] = s;
    }
    return n;
}

static void trainer_init(Trainer *t, int vocab_size) {
    memset(t, 0, sizeof(*t));
    bytesmap_init(&t->word_index, 1 << 16);
    u64map_init(&t->pair_index, 1 << 16);
    bytesmap_init(&t->tok_index, (size_t)vocab_size);
    t->tok_off = lc_malloc(((size_t)vocab_size + 1) * sizeof(size_t));
    t->tok_off[0] = 0;
    for (int b = 0; b < 256; b++) {
        char byte = (char)b;
        bytevec_append(&t->tok_bytes, &byte, 1);
        bytesmap_intern(&t->tok_index, &byte, 1, b);
        t->tok_off[++t->n_tokens] = t->tok_bytes.n;
    }
}

static void trainer_free(Trainer *t) {
    for (size_t p = 0; p < t->n_pairs; p++) free(t->pairs[p].words.v);
    free(t->pairs);
    free(t->words);
    free(t->syms.v);
    bytesmap_free(&t->word_index);
    u64map_free(&t->pair_index);
    free(t->heap);
    free(t->touched.v);
    free(t->tok_bytes.v);
    free(t->tok_off);
    bytesmap_free(&t->tok_index);
    free(t->joined.v);
    free(t->merges);
}

// Hands the vocabulary, the merges and the special tokens (appended after the learned tokens)
// over to the tokenizer.
static Tokenizer *trainer_finish(Trainer *t, const char **specials, int n_specials, char *err,
                                 size_t errlen) {
    TokenizerParts parts = {.n_merges = t->n_merges, .pairs = t->merges, .n_specials = n_specials};
    parts.specials = lc_malloc((size_t)n_specials * sizeof(int));
    for (int i = 0; i < n_specials; i++) {
        parts.specials[i] = t->n_tokens;
        bytevec_append(&t->tok_bytes, specials[i], strlen(specials[i]));
        t->tok_off[++t->n_tokens] = t->tok_bytes.n;
    }
    parts.n_vocab = t->n_tokens;
    parts.tok_off = t->tok_off;
    parts.tok_bytes = t->tok_bytes.v;
    t->merges = NULL;
    t->tok_off = NULL;
    t->tok_bytes.v = NULL;
    return tokenizer_build(&parts, "trained tokenizer", err, errlen);
}

Tokenizer *tokenizer_train(const char *const *files, int n_files, int vocab_size,
                           const char *const *specials, int n_specials, char *err, size_t errlen) {
    const char **all =
        lc_malloc(((size_t)n_specials + TOKENIZER_N_DEFAULT_SPECIALS) * sizeof(*all));
    int n_all = list_specials(specials, n_specials, all);
    for (int i = 0; i < n_all; i++)
        if (all[i][0] == '\0') {
            free(all);
            return tokenizer_fail(err, errlen, "special tokens must not be empty");
        }
    if (n_files < 1 || vocab_size < 256 + n_all) {
        free(all);
        if (n_files < 1) return tokenizer_fail(err, errlen, "no corpus files to train on");
        return tokenizer_fail(err, errlen,
                              "vocab size %d is too small: it must be at least %d (256 bytes + "
                              "%d special tokens)",
                              vocab_size, 256 + n_all, n_all);
    }
    size_t *lens = lc_malloc((size_t)n_all * sizeof(size_t));
    int *ids = lc_malloc((size_t)n_all * sizeof(int));
    for (int i = 0; i < n_all; i++) {
        lens[i] = strlen(all[i]);
        ids[i] = i;
    }
    pcre2_code *pattern = pretokenizer_compile();
    Pretokenizer pre = {pattern, n_all, all, lens, ids};
    Trainer t;
    trainer_init(&t, vocab_size);
    Tokenizer *tok = NULL;
    if (count_words(&t, files, n_files, &pre, err, errlen)) {
        count_pairs(&t);
        while (t.n_tokens < vocab_size - n_all && merge_best(&t)) {
        }
        if (t.n_tokens < vocab_size - n_all)
            tokenizer_fail(err, errlen,
                           "%s%s: the corpus is too small: it yields %d tokens, "
                           "%d were asked for",
                           files[0], n_files > 1 ? " (and the others)" : "", t.n_tokens + n_all,
                           vocab_size);
        else
            tok = trainer_finish(&t, all, n_all, err, errlen);
    }
    trainer_free(&t);
    pcre2_code_free(pattern);
    free(ids);
    free(lens);
    free(all);
    return tok;
}
