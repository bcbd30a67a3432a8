// data/tokenizer_nfc.c: the Unicode the tokenizers need beyond PCRE2: UTF-8 validity as PCRE2
// sees it, White_Space (added tokens' lstrip/rstrip), and normalization form C (Qwen2's
// tokenizer.json normalizer), after Unicode Standard Annex #15: canonical decomposition,
// canonical ordering, canonical composition, with Hangul syllables computed rather than looked
// up. Tables: tokenizer_nfc_tables.h, generated from Python's unicodedata (Unicode 14.0, the
// version of Debian 12's PCRE2 10.42).
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include "data/tokenizer_nfc_tables.h"
#include <stdlib.h>

#define N_ROWS(t) (sizeof(t) / sizeof((t)[0]))

// ---- UTF-8 -------------------------------------------------------------------------------------

// The length of the valid character at s[0, n), or 0.
static size_t valid_char(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && s[1] < 0xa0) return 0;  // overlong
    if (c == 0xed && s[1] >= 0xa0) return 0; // surrogate
    if (c == 0xf0 && s[1] < 0x90) return 0;  // overlong
    if (c == 0xf4 && s[1] >= 0x90) return 0; // above U+10FFFF
    return len;
}

size_t utf8_valid_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = valid_char(u + i, n - i);
        if (len == 0) break;
        i += len;
    }
    return i;
}

size_t utf8_invalid_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && valid_char(u + i, n - i) == 0) i++;
    return i;
}

uint32_t utf8_decode(const char *s, size_t n, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    *len = valid_char(u, n);
    LC_ASSERT(*len > 0);
    switch (*len) {
    case 1:
        return u[0];
    case 2:
        return (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
    case 3:
        return (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
    default:
        return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 |
               (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
    }
}

static void utf8_append(ByteVec *out, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12);
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | cp >> 18);
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    bytevec_append(out, b, n);
}

bool unicode_is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

// ---- the tables --------------------------------------------------------------------------------

static int cmp_cp(const void *key, const void *row) {
    uint32_t k = *(const uint32_t *)key, r = ((const uint32_t *)row)[0];
    return (k > r) - (k < r);
}

static const uint32_t *find_decomp(uint32_t cp) {
    return bsearch(&cp, NFC_DECOMP, N_ROWS(NFC_DECOMP), sizeof(NFC_DECOMP[0]), cmp_cp);
}

static int cmp_range(const void *key, const void *row) {
    uint32_t k = *(const uint32_t *)key;
    const uint32_t *r = row;
    return k < r[0] ? -1 : k > r[1] ? 1 : 0;
}

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    const uint32_t *r = bsearch(&cp, NFC_CCC, N_ROWS(NFC_CCC), sizeof(NFC_CCC[0]), cmp_range);
    return r ? (int)r[2] : 0;
}

static bool is_second(uint32_t cp) {
    return bsearch(&cp, NFC_SECOND, N_ROWS(NFC_SECOND), sizeof(NFC_SECOND[0]), cmp_range) != NULL;
}

static int cmp_pair(const void *key, const void *row) {
    const uint32_t *k = key, *r = row;
    if (k[0] != r[0]) return (k[0] > r[0]) - (k[0] < r[0]);
    return (k[1] > r[1]) - (k[1] < r[1]);
}

// Hangul syllables: 19 leading consonants x 21 vowels x (1 + 27 trailing consonants).
#define S_BASE  0xac00u
#define L_BASE  0x1100u
#define V_BASE  0x1161u
#define T_BASE  0x11a7u
#define L_COUNT 19u
#define V_COUNT 21u
#define T_COUNT 28u
#define N_COUNT (V_COUNT * T_COUNT)
#define S_COUNT (L_COUNT * N_COUNT)

// The primary composite of a and b, or 0.
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    uint32_t key[2] = {a, b};
    const uint32_t *r = bsearch(key, NFC_COMP, N_ROWS(NFC_COMP), sizeof(NFC_COMP[0]), cmp_pair);
    return r ? r[2] : 0;
}

// ---- NFC ---------------------------------------------------------------------------------------

bool nfc_quick_check(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if ((unsigned char)s[i] < 0xcc) { // below U+0300: nothing there changes
            i++;
            continue;
        }
        size_t len;
        uint32_t cp = utf8_decode(s + i, n - i, &len);
        i += len;
        if (cp < 0x300) continue;
        if (ccc_of(cp) != 0 || is_second(cp) || find_decomp(cp) ||
            (cp >= S_BASE && cp < S_BASE + S_COUNT) || (cp >= L_BASE && cp < L_BASE + L_COUNT))
            return false;
    }
    return true;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} CpVec;

static void cp_push(CpVec *a, uint32_t cp) {
    a->v = array_reserve(a->v, &a->cap, a->n + 1, sizeof(uint32_t));
    a->v[a->n++] = cp;
}

static void decompose(uint32_t cp, CpVec *out) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE, t = s % T_COUNT;
        cp_push(out, L_BASE + s / N_COUNT);
        cp_push(out, V_BASE + (s % N_COUNT) / T_COUNT);
        if (t) cp_push(out, T_BASE + t);
        return;
    }
    const uint32_t *d = cp >= 0xc0 ? find_decomp(cp) : NULL;
    if (!d) {
        cp_push(out, cp);
        return;
    }
    decompose(d[1], out);
    if (d[2]) decompose(d[2], out);
}

void nfc_normalize(const char *s, size_t n, ByteVec *out) {
    CpVec d = {0};
    for (size_t i = 0; i < n;) {
        size_t len;
        decompose(utf8_decode(s + i, n - i, &len), &d);
        i += len;
    }
    // Canonical ordering: each run of non-starters sorted by class, stably (insertion sort).
    for (size_t i = 1; i < d.n; i++) {
        uint32_t cp = d.v[i];
        int c = ccc_of(cp);
        if (c == 0) continue;
        size_t j = i;
        while (j > 0 && ccc_of(d.v[j - 1]) > c) {
            d.v[j] = d.v[j - 1];
            j--;
        }
        d.v[j] = cp;
    }
    // Canonical composition: a character joins the last starter unless blocked, i.e. unless
    // something between them has a class of 0 or of at least its own. Between a starter and
    // the character there are only non-starters, in order, so the last one decides.
    size_t w = 0, starter = SIZE_MAX;
    int last = 0; // the class of d.v[w - 1]
    for (size_t i = 0; i < d.n; i++) {
        uint32_t cp = d.v[i];
        int c = ccc_of(cp);
        if (starter != SIZE_MAX && (w - 1 == starter || (last != 0 && last < c))) {
            uint32_t both = compose(d.v[starter], cp);
            if (both) {
                d.v[starter] = both;
                continue;
            }
        }
        d.v[w++] = cp;
        last = c;
        if (c == 0) starter = w - 1;
    }
    for (size_t i = 0; i < w; i++) utf8_append(out, d.v[i]);
    free(d.v);
}
