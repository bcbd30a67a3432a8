// train/stages/selfgen.c: the pool, filters, stop rule and parsing of self_instruct.
#include "train/stages/selfgen.h"
#include "common/check.h"
#include <ctype.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

static const char *const VERDICTS[SELFGEN_VERDICT_COUNT] = {
    "kept", "empty", "too_short", "too_long", "blocklist", "bad_start", "similar"};

const char *selfgen_verdict_name(SelfgenVerdict v) {
    return v >= 0 && v < SELFGEN_VERDICT_COUNT ? VERDICTS[v] : "?";
}

static char *str_dup(const char *s, size_t n) {
    char *d = lc_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void selfgen_pool_add(SelfgenPool *p, const char *text) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        char **t = lc_malloc((size_t)p->cap * sizeof(*t));
        RougeTokens *r = lc_malloc((size_t)p->cap * sizeof(*r));
        if (p->n) memcpy(t, p->text, (size_t)p->n * sizeof(*t));
        if (p->n) memcpy(r, p->toks, (size_t)p->n * sizeof(*r));
        free(p->text), free(p->toks);
        p->text = t, p->toks = r;
    }
    p->text[p->n] = str_dup(text, strlen(text));
    rouge_tokenize(text, &p->toks[p->n]);
    p->n++;
}

void selfgen_pool_free(SelfgenPool *p) {
    for (int i = 0; i < p->n; i++) free(p->text[i]), rouge_tokens_free(&p->toks[i]);
    free(p->text), free(p->toks);
    *p = (SelfgenPool){0};
}

static int is_alnum(char c) {
    return isalnum((unsigned char)c) && !((unsigned char)c & 0x80);
}

bool selfgen_has_phrase(const char *text, const char *phrase) {
    size_t n = strlen(text), m = strlen(phrase);
    if (m == 0) return false;
    for (size_t i = 0; i + m <= n; i++) {
        if (strncasecmp(text + i, phrase, m) != 0) continue;
        if ((i == 0 || !is_alnum(text[i - 1])) && (i + m == n || !is_alnum(text[i + m])))
            return true;
    }
    return false;
}

int selfgen_words(const char *text) {
    int n = 0;
    for (const char *c = text; *c;) {
        while (*c && isspace((unsigned char)*c)) c++;
        if (!*c) break;
        n++;
        while (*c && !isspace((unsigned char)*c)) c++;
    }
    return n;
}

static SelfgenVerdict verdict(const SelfgenFilter *f, const char *inst, double rouge) {
    int words = selfgen_words(inst);
    unsigned char first = (unsigned char)inst[0];
    if (!first) return SELFGEN_EMPTY;
    if (words < f->min_words) return SELFGEN_TOO_SHORT;
    if (words > f->max_words) return SELFGEN_TOO_LONG;
    for (int i = 0; i < f->n_blocklist; i++)
        if (selfgen_has_phrase(inst, f->blocklist[i])) return SELFGEN_BLOCKLIST;
    if ((first & 0x80) || ispunct(first)) return SELFGEN_BAD_START;
    return rouge > f->threshold ? SELFGEN_SIMILAR : SELFGEN_KEPT;
}

SelfgenVerdict selfgen_filter(const SelfgenFilter *f, SelfgenPool *pool, const char *inst,
                              double *rouge, int *best) {
    *rouge = 0.0, *best = -1;
    if (inst[0]) {
        RougeTokens t;
        rouge_tokenize(inst, &t);
        *rouge = rouge_l_max(&t, pool->toks, pool->n, best);
        rouge_tokens_free(&t);
    }
    SelfgenVerdict v = verdict(f, inst, *rouge);
    if (v == SELFGEN_KEPT) selfgen_pool_add(pool, inst);
    return v;
}

SelfgenStop selfgen_stop(int total, int target, int rounds, int max_rounds, int kept, int generated,
                         double min_yield) {
    if (total >= target) return SELFGEN_STOP_TARGET;
    if (generated > 0 && (double)kept / generated < min_yield) return SELFGEN_STOP_YIELD;
    if (rounds >= max_rounds) return SELFGEN_STOP_ROUNDS;
    return SELFGEN_GO_ON;
}

const char *selfgen_stop_name(SelfgenStop s) {
    static const char *const names[] = {"", "target", "yield", "max_rounds"};
    return s >= 0 && s <= SELFGEN_STOP_ROUNDS ? names[s] : "?";
}

// Writes m distinct values of [lo, lo + n) into out (m <= n): a partial Fisher-Yates shuffle.
static void pick_distinct(Rng *rng, int lo, int n, int m, int *out) {
    int *all = lc_malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) all[i] = lo + i;
    for (int i = 0; i < m; i++) {
        int j = i + (int)rng_below(rng, (uint64_t)(n - i));
        int t = all[i];
        all[i] = all[j], all[j] = t;
        out[i] = all[i];
    }
    free(all);
}

int selfgen_pick(Rng *rng, int n_seeds, int n_generated, int k, int *out) {
    int g = k / 4 < n_generated ? k / 4 : n_generated;
    int s = k - g < n_seeds ? k - g : n_seeds;
    pick_distinct(rng, n_seeds, n_generated, g, out);
    pick_distinct(rng, 0, n_seeds, s, out + g);
    rng_shuffle(rng, out, g + s);
    return g + s;
}

// The bytes [a, b) without surrounding whitespace, as a new string.
static char *strip(const char *a, const char *b) {
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    return str_dup(a, (size_t)(b - a));
}

static const char *first_of(const char *s, const char *end, const char *needle) {
    const char *f = strstr(s, needle);
    return f && f < end ? f : end;
}

char *selfgen_parse_instruction(const char *continuation) {
    const char *end = continuation + strlen(continuation);
    end = first_of(continuation, end, "\n");
    end = first_of(continuation, end, "Task");
    return strip(continuation, end);
}

int selfgen_parse_instance(const char *continuation, char **input, char **output) {
    const char *out = strstr(continuation, "Output:");
    if (!out) return -1;
    const char *start = out + strlen("Output:"), *end = start + strlen(start);
    end = first_of(start, end, "\nTask");
    end = first_of(start, end, "\nInput:");
    char *o = strip(start, end);
    if (!o[0]) {
        free(o);
        return -1;
    }
    *input = strip(continuation, out);
    *output = o;
    return 0;
}
