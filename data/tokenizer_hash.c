// data/tokenizer_hash.c: FNV-1a, the two hash maps (pair of ids -> rank or index; byte string ->
// id or index) and the growable arrays the tokenizer and the BPE trainer are built on.
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include <string.h>

#define U64MAP_FREE UINT64_MAX

struct BytesSlot {
    uint64_t hash;
    size_t off; // into the arena
    uint32_t len;
    int32_t val; // -1 marks a free slot
};

uint64_t fnv1a_update(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

uint64_t fnv1a_u32(uint64_t h, uint32_t x) {
    unsigned char le[4] = {x & 0xff, (x >> 8) & 0xff, (x >> 16) & 0xff, x >> 24};
    return fnv1a_update(h, le, 4);
}

uint64_t fnv1a_str(uint64_t h, const char *s, size_t n) {
    return fnv1a_update(fnv1a_u32(h, (uint32_t)n), s, n);
}

// SplitMix64's finaliser: spreads pair keys (two small ids) over the table.
static uint64_t mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t table_cap(size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected) cap *= 2;
    return cap;
}

// ---- U64Map ------------------------------------------------------------------------------------

void u64map_init(U64Map *m, size_t expected) {
    m->cap = table_cap(expected);
    m->count = 0;
    m->keys = lc_malloc(m->cap * sizeof(*m->keys));
    m->vals = lc_malloc(m->cap * sizeof(*m->vals));
    memset(m->keys, 0xff, m->cap * sizeof(*m->keys));
}

void u64map_free(U64Map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static size_t u64map_find(const U64Map *m, uint64_t key) {
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->keys[i] != key && m->keys[i] != U64MAP_FREE) i = (i + 1) & mask;
    return i;
}

int32_t u64map_get(const U64Map *m, uint64_t key) {
    size_t i = u64map_find(m, key);
    return m->keys[i] == key ? m->vals[i] : -1;
}

static void u64map_grow(U64Map *m) {
    U64Map bigger;
    u64map_init(&bigger, m->cap);
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != U64MAP_FREE) u64map_put(&bigger, m->keys[i], m->vals[i]);
    u64map_free(m);
    *m = bigger;
}

void u64map_put(U64Map *m, uint64_t key, int32_t val) {
    LC_ASSERT(key != U64MAP_FREE);
    if (2 * (m->count + 1) > m->cap) u64map_grow(m);
    size_t i = u64map_find(m, key);
    if (m->keys[i] == U64MAP_FREE) m->count++;
    m->keys[i] = key;
    m->vals[i] = val;
}

// ---- BytesMap ----------------------------------------------------------------------------------

void bytesmap_init(BytesMap *m, size_t expected) {
    m->cap = table_cap(expected);
    m->count = 0;
    m->slots = lc_malloc(m->cap * sizeof(*m->slots));
    for (size_t i = 0; i < m->cap; i++) m->slots[i].val = -1;
    m->arena = NULL;
    m->arena_len = m->arena_cap = 0;
}

void bytesmap_free(BytesMap *m) {
    free(m->slots);
    free(m->arena);
    memset(m, 0, sizeof(*m));
}

static size_t bytesmap_find(const BytesMap *m, uint64_t hash, const void *key, size_t len) {
    size_t mask = m->cap - 1, i = mix64(hash) & mask;
    for (;; i = (i + 1) & mask) {
        const struct BytesSlot *s = &m->slots[i];
        if (s->val < 0) return i;
        if (s->hash == hash && s->len == len && memcmp(m->arena + s->off, key, len) == 0) return i;
    }
}

int32_t bytesmap_get(const BytesMap *m, const void *key, size_t len) {
    return m->slots[bytesmap_find(m, fnv1a_update(FNV1A_OFFSET, key, len), key, len)].val;
}

// Rehashes into a table twice the size; the arena and the slots' offsets stay as they are.
static void bytesmap_grow(BytesMap *m) {
    struct BytesSlot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = lc_malloc(m->cap * sizeof(*m->slots));
    for (size_t i = 0; i < m->cap; i++) m->slots[i].val = -1;
    size_t mask = m->cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].val < 0) continue;
        size_t j = mix64(old[i].hash) & mask;
        while (m->slots[j].val >= 0) j = (j + 1) & mask;
        m->slots[j] = old[i];
    }
    free(old);
}

int32_t bytesmap_intern(BytesMap *m, const void *key, size_t len, int32_t val) {
    LC_ASSERT(val >= 0 && len > 0 && len < UINT32_MAX);
    uint64_t hash = fnv1a_update(FNV1A_OFFSET, key, len);
    size_t i = bytesmap_find(m, hash, key, len);
    if (m->slots[i].val >= 0) return m->slots[i].val;
    if (2 * (m->count + 1) > m->cap) {
        bytesmap_grow(m);
        i = bytesmap_find(m, hash, key, len);
    }
    m->arena = array_reserve(m->arena, &m->arena_cap, m->arena_len + len, 1);
    memcpy(m->arena + m->arena_len, key, len);
    m->slots[i] = (struct BytesSlot){hash, m->arena_len, (uint32_t)len, val};
    m->arena_len += len;
    m->count++;
    return val;
}

// ---- growable arrays ---------------------------------------------------------------------------

// Out of memory is fatal here, as with lc_malloc.
void *array_reserve(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    *cap = 2 * need + 16;
    void *q = realloc(p, *cap * elem);
    if (!q) LC_DIE("out of memory growing an array to %zu elements of %zu bytes", *cap, elem);
    return q;
}

void intvec_reserve(IntVec *a, size_t n) {
    a->v = array_reserve(a->v, &a->cap, a->n + n, sizeof(*a->v));
}

void intvec_push(IntVec *a, int x) {
    intvec_reserve(a, 1);
    a->v[a->n++] = x;
}

void bytevec_append(ByteVec *a, const void *data, size_t n) {
    if (n == 0) return;
    a->v = array_reserve(a->v, &a->cap, a->n + n, 1);
    memcpy(a->v + a->n, data, n);
    a->n += n;
}
