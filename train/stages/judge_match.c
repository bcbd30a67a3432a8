// train/stages/judge_match.c: the match judge (docs/judges.md). The answer is what judge.regex
// extracts from the response (its first capture group when the pattern has one, else the whole
// match; "" takes the whole response); it scores 1 when it equals the prompt's reference answer
// (after normalisation with judge.normalize), else 0, and a response the pattern does not
// match scores 0. Correctness is the score.
#include "common/check.h"
#include "data/dataset.h"
#include "train/stages/judge-impl.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Every example of the stage's prompt dataset has a reference answer; else -1 after naming the
// first that has none.
static int references_check(Judge *j) {
    const char *path = j->sr->stage->data.prompts;
    char err[1024];
    Dataset *ds = dataset_open(path, DATA_PROMPT, err, sizeof(err));
    if (!ds) {
        judge_report(j->sr, "data.prompts", "%s", err);
        return -1;
    }
    int rc = 0;
    for (int64_t i = 0; i < ds->n && !rc; i++)
        if (ds->ref_text_off[i + 1] == ds->ref_text_off[i]) {
            judge_report(j->sr, "judge.kind",
                         "match compares each response with its prompt's reference answer, but "
                         "example %lld of data.prompts (%s) has none",
                         (long long)i, path);
            rc = -1;
        }
    dataset_free(ds);
    return rc;
}

int judge_match_open(Judge *j) {
    const JudgeConfig *c = &j->sr->stage->judge;
    if (c->regex[0]) {
        int code;
        PCRE2_SIZE off;
        j->re = pcre2_compile((PCRE2_SPTR)c->regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off,
                              NULL);
        if (!j->re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof(msg));
            judge_report(j->sr, "judge.regex", "'%s' does not compile: %s at offset %zu", c->regex,
                         (char *)msg, (size_t)off);
            return -1;
        }
        j->md = pcre2_match_data_create_from_pattern(j->re, NULL);
        uint32_t groups = 0;
        pcre2_pattern_info(j->re, PCRE2_INFO_CAPTURECOUNT, &groups);
        j->match_group = groups > 0 ? 1 : 0;
    }
    if (j->sr->stage->data.prompts[0] && references_check(j)) return -1;
    snprintf(j->name, sizeof(j->name), "match%s%s%s", c->regex[0] ? " /" : "", c->regex,
             c->regex[0] ? "/" : "");
    return 0;
}

void judge_match_close(Judge *j) {
    pcre2_match_data_free(j->md);
    pcre2_code_free(j->re);
}

// s (n bytes) normalised into a malloc'd string: ASCII letters lowercased, leading and trailing
// whitespace removed, inner runs of whitespace made one space, and trailing '.', ',', '!', '?'
// (and the whitespace around them) stripped.
char *judge_normalize(const char *s, size_t n) {
    char *out = lc_malloc(n + 1);
    size_t k = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            space = k > 0;
            continue;
        }
        if (space) out[k++] = ' ';
        space = false;
        out[k++] = (char)tolower(c);
    }
    while (k > 0 && (strchr(".,!?", out[k - 1]) || out[k - 1] == ' ')) k--;
    out[k] = '\0';
    return out;
}

// The answer the pattern extracts from response: 0 with *at, *len set, or -1 when it does not
// match (or the group it takes did not take part in the match).
static int extract(const Judge *j, const char *response, const char **at, size_t *len) {
    size_t n = strlen(response);
    if (!j->re) {
        *at = response, *len = n;
        return 0;
    }
    int rc = pcre2_match(j->re, (PCRE2_SPTR)response, n, 0, 0, j->md, NULL);
    if (rc < 0) return -1; // no match (or a response that is not valid UTF-8)
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(j->md);
    PCRE2_SIZE a = ov[2 * j->match_group], b = ov[2 * j->match_group + 1];
    if (a == PCRE2_UNSET || b < a) return -1;
    *at = response + a, *len = b - a;
    return 0;
}

// Whether answer (n bytes) is the reference, exactly or after normalisation.
static bool same(const Judge *j, const char *answer, size_t n, const char *reference) {
    if (!j->sr->stage->judge.normalize)
        return n == strlen(reference) && memcmp(answer, reference, n) == 0;
    char *a = judge_normalize(answer, n), *r = judge_normalize(reference, strlen(reference));
    bool eq = strcmp(a, r) == 0;
    free(a), free(r);
    return eq;
}

int judge_match_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct) {
    for (int i = 0; i < n; i++) {
        const JudgeItem *it = &items[i];
        if (!it->reference) {
            judge_report(j->sr, "judge.kind",
                         "match needs the prompt's reference answer; prompt \"%s\" of "
                         "data.prompts (%s) has none",
                         it->prompt, j->sr->stage->data.prompts);
            return -1;
        }
        const char *at;
        size_t len;
        scores[i] = extract(j, it->response, &at, &len) == 0 && same(j, at, len, it->reference);
        if (correct) correct[i] = scores[i];
    }
    return 0;
}
