// train/objectives/rouge.c: ROUGE-L F1 over rouge-score's default tokens.
#include "train/objectives/rouge.h"
#include "common/check.h"
#include <stdlib.h>
#include <string.h>

static int is_token_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

void rouge_tokenize(const char *text, RougeTokens *t) {
    size_t len = strlen(text);
    // a token and its separator take at least two bytes, the last token one
    *t =
        (RougeTokens){.buf = lc_malloc(len + 1), .word = lc_malloc((len / 2 + 1) * sizeof(char *))};
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        if (!is_token_char((unsigned char)text[i])) {
            i++;
            continue;
        }
        t->word[t->n++] = t->buf + out;
        for (; i < len && is_token_char((unsigned char)text[i]); i++) {
            char c = text[i];
            t->buf[out++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        t->buf[out++] = '\0';
    }
    t->key = lc_malloc((size_t)(t->n + 1) * sizeof(*t->key));
    for (int k = 0; k < t->n; k++) t->key[k] = fnv1a(t->word[k]);
}

void rouge_tokens_free(RougeTokens *t) {
    free(t->buf), free(t->word), free(t->key);
    *t = (RougeTokens){0};
}

static int same(const RougeTokens *a, int i, const RougeTokens *b, int j) {
    return a->key[i] == b->key[j] && strcmp(a->word[i], b->word[j]) == 0;
}

// The classic dynamic programme over one row: O(len(a) len(b)) time, O(len(b)) memory.
int rouge_lcs(const RougeTokens *a, const RougeTokens *b) {
    if (a->n == 0 || b->n == 0) return 0;
    int *row = lc_calloc((size_t)b->n + 1, sizeof(int));
    for (int i = 0; i < a->n; i++) {
        int diag = 0; // row[j] of the previous i, before it was overwritten
        for (int j = 1; j <= b->n; j++) {
            int up = row[j];
            row[j] = same(a, i, b, j - 1) ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
            diag = up;
        }
    }
    int lcs = row[b->n];
    free(row);
    return lcs;
}

double rouge_l_tokens(const RougeTokens *candidate, const RougeTokens *reference) {
    int lcs = rouge_lcs(candidate, reference);
    if (lcs == 0) return 0.0;
    double p = (double)lcs / candidate->n, r = (double)lcs / reference->n;
    return 2.0 * p * r / (p + r);
}

double rouge_l(const char *candidate, const char *reference) {
    RougeTokens a, b;
    rouge_tokenize(candidate, &a);
    rouge_tokenize(reference, &b);
    double f = rouge_l_tokens(&a, &b);
    rouge_tokens_free(&a);
    rouge_tokens_free(&b);
    return f;
}

double rouge_l_max(const RougeTokens *candidate, const RougeTokens *pool, int n, int *best) {
    double max = 0.0;
    int at = n > 0 ? 0 : -1;
    for (int i = 0; i < n; i++) {
        double f = rouge_l_tokens(candidate, &pool[i]);
        if (f > max) max = f, at = i;
    }
    if (best) *best = at;
    return max;
}
