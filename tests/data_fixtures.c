// tests/data_fixtures.c: the synthetic datasets of data_fixtures.h. Lengths vary with the
// example index so that rows, packing and padding all get exercised.
#include "tests/data_fixtures.h"
#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

Example fix_lm_doc(int i, int *tok) {
    int n = 2 + (i * 7) % 23;
    for (int t = 0; t < n - 1; t++) tok[t] = 1 + (i * 13 + t) % 99;
    tok[n - 1] = FIX_EOT;
    return (Example){.tokens = tok, .n_tokens = n};
}

static int fill_prompt(int i, int *p) {
    int n = 1 + i % 4;
    for (int t = 0; t < n; t++) p[t] = 100 + (i * 3 + t) % 100;
    return n;
}

// A response ending in FIX_EOT; variant v gives the rejected one.
static int fill_response(int i, int v, int *r) {
    int n = 1 + (i * 3 + v) % 5;
    for (int t = 0; t < n; t++) r[t] = 200 + (i * 11 + t + 50 * v) % 100;
    r[n] = FIX_EOT;
    return n + 1;
}

Example fix_sft(int i, int *tok, uint8_t *mask) {
    int p = fill_prompt(i, tok);
    int r = fill_response(i, 0, tok + p);
    for (int t = 0; t < p + r; t++) mask[t] = t >= p;
    return (Example){.tokens = tok, .n_tokens = p + r, .loss_mask = mask};
}

Example fix_pref(int i, int *prompt, int *chosen, int *rejected) {
    Example ex = {.tokens = prompt, .n_tokens = fill_prompt(i, prompt)};
    ex.chosen = chosen;
    ex.n_chosen = fill_response(i, 0, chosen);
    ex.rejected = rejected;
    ex.n_rejected = fill_response(i, 1, rejected);
    return ex;
}

// Every third prompt has no reference.
Example fix_prompt(int i, int *prompt, int *ref, char *text) {
    Example ex = {.tokens = prompt, .n_tokens = fill_prompt(i, prompt)};
    if (i % 3 == 2) return ex;
    ex.reference = ref;
    ex.n_reference = fill_response(i, 0, ref);
    ex.reference_text = text;
    ex.n_reference_text = sprintf(text, "answer %d", i);
    return ex;
}

Example fix_unpaired(int i, int *prompt, int *completion) {
    Example ex = {.tokens = prompt, .n_tokens = fill_prompt(i, prompt)};
    ex.completion = completion;
    ex.n_completion = fill_response(i, 0, completion);
    ex.label = i % 3 != 1;
    return ex;
}

void fix_write(const char *path, DataKind kind, int n) {
    fix_write_fp(path, kind, n, FIX_FP);
}

void fix_write_fp(const char *path, DataKind kind, int n, uint64_t fingerprint) {
    char err[512];
    DatasetWriter *w = dataset_create(path, kind, fingerprint, err, sizeof(err));
    ck_assert_msg(w != NULL, "%s", err);
    int a[FIX_MAX], b[FIX_MAX], c[FIX_MAX];
    uint8_t m[FIX_MAX];
    char text[FIX_MAX];
    for (int i = 0; i < n; i++) {
        Example ex = kind == DATA_LM           ? fix_lm_doc(i, a)
                     : kind == DATA_SFT        ? fix_sft(i, a, m)
                     : kind == DATA_PREFERENCE ? fix_pref(i, a, b, c)
                     : kind == DATA_UNPAIRED   ? fix_unpaired(i, a, b)
                                               : fix_prompt(i, a, b, text);
        ck_assert_msg(dataset_append(w, &ex, err, sizeof(err)) == 0, "%s", err);
    }
    ck_assert_msg(dataset_close(w, err, sizeof(err)) == 0, "%s", err);
}

char *fix_join(const char *first, ...) {
    va_list ap;
    size_t n = 1;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) n += strlen(s);
    va_end(ap);
    char *out = malloc(n);
    out[0] = '\0';
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) strcat(out, s);
    va_end(ap);
    return out;
}
