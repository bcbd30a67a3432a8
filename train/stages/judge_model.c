// train/stages/judge_model.c: the LLM judge (docs/judges.md). judge.template, with the prompt
// and the response (pairwise: responses A and B) in its placeholders, is encoded whole (special
// tokens on, so chat markers in it become their ids) and given to judge.model; the verdict is
// its next token. With v0, v1 the two judge.verdicts tokens,
//   l = log p(v0 | rendered) - log p(v1 | rendered)
// read from one forward: each rendered text is two rows whose only target is at the last
// position, v0 in one and v1 in the other, so host_logp holds exactly those two log-softmax
// values (model_forward at temperature 1). Pointwise, the score is l. Pairwise, with l(a, b)
// the template rendered with a as A and b as B,
//   P(a > b) = 1/2 [sigmoid(l(a, b)) + sigmoid(-l(b, a))]
// so that P(a > b) + P(b > a) = 1 exactly and the judge's preference for one position cancels;
// a response's score is its mean P over the other responses of its group.
//
// A rendered text longer than the judge model's context has its response(s) cut, from the end,
// token by token as the tokenizer splits them (the longer response first when pairwise), until
// it fits; the verdict position is never cut. A template and prompt that do not fit even with
// empty responses are an error.
#include "common/check.h"
#include "train/objectives/preference.h" // sigmoid
#include "train/stages/judge-impl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 64 // rows of one judge forward at most (two per rendered text)

typedef struct {
    char *text; // the piece's text (a response as it may be cut)
    int tokens; // its length in tokens when encoded alone
} Piece;

// ---- opening ------------------------------------------------------------------------------------

static int verdict_tokens(Judge *j) {
    const StringList *v = &j->sr->stage->judge.verdicts;
    for (int k = 0; k < 2; k++) {
        int *ids = NULL,
            n = tokenizer_encode(j->sr->run->tok, v->items[k], strlen(v->items[k]), 1, &ids);
        if (n == 1) j->verdict[k] = ids[0];
        free(ids);
        if (n != 1) {
            judge_report(j->sr, "judge.verdicts",
                         "'%s' is %d tokens with the run's tokenizer; each verdict must be one "
                         "token (try it with a leading space, e.g. \" Yes\")",
                         v->items[k], n);
            return -1;
        }
    }
    return 0;
}

int judge_model_open(Judge *j) {
    const JudgeConfig *c = &j->sr->stage->judge;
    if (verdict_tokens(j)) return -1;
    StageRun *sr = j->sr;
    // the weights once (a one-token arena), and a view with the model's whole context
    j->model = j->trunk ? stage_model_on_trunk(sr, c->model, j->trunk, MODEL_HEAD_LM, 1, 1)
                        : stage_model(sr, c->model, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    if (!j->model) return -1;
    int rows = 2 * j->rows < MAX_ROWS ? 2 * j->rows : MAX_ROWS;
    j->view =
        model_create_view(j->model, MODEL_INFER, rows < 2 ? 2 : rows, j->model->cfg.max_seq_len);
    j->ctx = j->view->max_T;
    size_t cells = (size_t)j->view->max_B * (size_t)j->ctx;
    j->b.tokens = lc_calloc(cells, sizeof(int));
    j->b.targets = lc_calloc(cells, sizeof(int));
    j->b.mask = lc_calloc(cells, sizeof(float));
    j->b.len = lc_calloc((size_t)j->view->max_B, sizeof(int));
    snprintf(j->name, sizeof(j->name), "model %s%s", c->model, c->pairwise ? " (pairwise)" : "");
    return 0;
}

void judge_model_close(Judge *j) {
    model_free(j->view);
    j->view = NULL;
}

// ---- rendering ----------------------------------------------------------------------------------

// The template with its placeholders filled: {prompt}, {response} (= a), {response_a},
// {response_b}. A malloc'd string.
static char *render(const char *tmpl, const char *prompt, const char *a, const char *b) {
    static const char *const names[] = {"{prompt}", "{response}", "{response_a}", "{response_b}"};
    const char *values[] = {prompt, a, a, b ? b : ""};
    size_t cap = strlen(tmpl) + 1, used = 0;
    for (int k = 0; k < 4; k++) cap += 4 * strlen(values[k]); // each may appear a few times
    char *out = lc_malloc(cap);
    for (const char *s = tmpl; *s;) {
        int k = 0;
        while (k < 4 && strncmp(s, names[k], strlen(names[k])) != 0) k++;
        const char *v = k < 4 ? values[k] : s;
        size_t n = k < 4 ? strlen(v) : 1;
        if (used + n + 1 > cap) {
            cap = 2 * (used + n + 1);
            char *bigger = lc_malloc(cap);
            memcpy(bigger, out, used);
            free(out);
            out = bigger;
        }
        memcpy(out + used, v, n);
        used += n;
        s += k < 4 ? strlen(names[k]) : 1;
    }
    out[used] = '\0';
    return out;
}

// Cuts piece p to its first `keep` tokens (its text re-decoded).
static void piece_cut(const Tokenizer *tok, Piece *p, int keep) {
    int *ids = NULL, n = tokenizer_encode(tok, p->text, strlen(p->text), 1, &ids);
    size_t len;
    char *cut = tokenizer_decode(tok, ids, keep < n ? keep : n, &len);
    LC_ASSERT(cut);
    free(ids);
    free(p->text);
    p->text = cut;
    p->tokens = keep < n ? keep : n;
}

static Piece piece(const Tokenizer *tok, const char *text) {
    Piece p = {.text = NULL, .tokens = 0};
    size_t n = strlen(text) + 1;
    p.text = memcpy(lc_malloc(n), text, n);
    int *ids = NULL;
    p.tokens = tokenizer_encode(tok, text, n - 1, 1, &ids);
    free(ids);
    return p;
}

// The token ids of the template rendered for (prompt, a, b) (b NULL: pointwise), the responses
// cut until it fits the judge's context; their count, or -1 after a message.
static int render_ids(Judge *j, const char *prompt, const char *a, const char *b, int **ids) {
    const Tokenizer *tok = j->sr->run->tok;
    const char *tmpl = j->sr->stage->judge.template;
    Piece pa = piece(tok, a), pb = piece(tok, b ? b : "");
    int n;
    for (;;) {
        char *text = render(tmpl, prompt, pa.text, b ? pb.text : NULL);
        n = tokenizer_encode(tok, text, strlen(text), 1, ids);
        free(text);
        int excess = n - j->ctx;
        if (n == 0) {
            judge_report(j->sr, "judge.template", "renders to no token at all");
            n = -1;
            break;
        }
        if (excess <= 0) break;
        free(*ids);
        *ids = NULL;
        Piece *longer = b && pb.tokens > pa.tokens ? &pb : &pa;
        if (longer->tokens == 0) {
            judge_report(j->sr, "judge.template",
                         "the template with prompt \"%.60s...\" is %d tokens even with empty "
                         "responses; the judge model's context is %d",
                         prompt, n, j->ctx);
            n = -1;
            break;
        }
        piece_cut(tok, longer, longer->tokens > excess ? longer->tokens - excess : 0);
    }
    free(pa.text), free(pb.text);
    return n;
}

// ---- scoring ------------------------------------------------------------------------------------

// One text to judge: its ids, and where its log-ratio goes.
typedef struct {
    int *ids;
    int n;
} Rendered;

// out[k] = log p(v0) - log p(v1) after r[k] for k < count, in forwards of up to max_B rows.
static void log_ratios(Judge *j, const Rendered *r, int count, double *out) {
    Batch *b = &j->b;
    int per = j->view->max_B / 2;
    for (int k0 = 0; k0 < count; k0 += per) {
        int m = count - k0 < per ? count - k0 : per, T = 1;
        for (int k = 0; k < m; k++) T = r[k0 + k].n > T ? r[k0 + k].n : T;
        b->B = 2 * m, b->T = T;
        for (int row = 0; row < 2 * m; row++) {
            const Rendered *x = &r[k0 + row / 2];
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)row * T + t;
                b->tokens[i] = t < x->n ? x->ids[t] : 0;
                b->targets[i] = t == x->n - 1 ? j->verdict[row % 2] : -1;
                b->mask[i] = t == x->n - 1 ? 1.0f : 0.0f;
            }
            b->len[row] = x->n;
        }
        model_forward(j->view, b, 1.0f);
        for (int k = 0; k < m; k++) {
            size_t last = (size_t)r[k0 + k].n - 1;
            out[k0 + k] = (double)j->view->host_logp[(size_t)(2 * k) * T + last] -
                          (double)j->view->host_logp[(size_t)(2 * k + 1) * T + last];
        }
    }
}

static void rendered_free(Rendered *r, int count) {
    for (int k = 0; k < count; k++) free(r[k].ids);
    free(r);
}

// P(a > b) from the two orders' log-ratios l(a, b) and l(b, a).
static double prefer(double l_ab, double l_ba) {
    return 0.5 * (sigmoid(l_ab) + sigmoid(-l_ba));
}

static int score_pointwise(Judge *j, const JudgeItem *items, int n, double *scores) {
    Rendered *r = lc_calloc((size_t)n, sizeof(*r));
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if ((r[i].n = render_ids(j, items[i].prompt, items[i].response, NULL, &r[i].ids)) < 0)
            rc = -1;
    if (!rc) log_ratios(j, r, n, scores);
    rendered_free(r, n);
    return rc;
}

// Each response's mean probability of being preferred over the others of its group.
static int score_pairwise(Judge *j, const JudgeItem *items, int n, int group, double *scores) {
    if (group < 2) {
        judge_report(j->sr, "judge.pairwise",
                     "a pairwise judge compares the responses to one prompt: it needs at least "
                     "2 of them (rollout.group_size)");
        return -1;
    }
    int pairs = group * (group - 1), count = n / group * pairs, rc = 0;
    Rendered *r = lc_calloc((size_t)count, sizeof(*r));
    double *l = lc_malloc((size_t)count * sizeof(double));
    // text (g, a, b): group g, response a as A, b as B, for every ordered pair a != b
    for (int g = 0, k = 0; g < n / group && !rc; g++)
        for (int a = 0; a < group && !rc; a++)
            for (int b = 0; b < group && !rc; b++) {
                if (a == b) continue;
                const JudgeItem *x = &items[g * group + a], *y = &items[g * group + b];
                r[k].n = render_ids(j, x->prompt, x->response, y->response, &r[k].ids);
                if (r[k++].n < 0) rc = -1;
            }
    if (!rc) log_ratios(j, r, count, l);
    for (int g = 0; g < n / group && !rc; g++) {
        const double *lg = l + (size_t)g * pairs;
        for (int a = 0; a < group; a++) {
            double sum = 0.0;
            for (int b = 0; b < group; b++) {
                if (a == b) continue;
                // the index of ordered pair (a, b) among the group's, a-major, b != a
                int ab = a * (group - 1) + (b < a ? b : b - 1);
                int ba = b * (group - 1) + (a < b ? a : a - 1);
                sum += prefer(lg[ab], lg[ba]);
            }
            scores[g * group + a] = sum / (group - 1);
        }
    }
    rendered_free(r, count);
    free(l);
    return rc;
}

int judge_model_score(Judge *j, const JudgeItem *items, int n, int group, double *scores,
                      double *correct) {
    int rc = j->sr->stage->judge.pairwise ? score_pairwise(j, items, n, group, scores)
                                          : score_pointwise(j, items, n, scores);
    for (int i = 0; correct && i < n; i++) correct[i] = NAN;
    return rc;
}

int judge_model_prefer(Judge *j, const JudgeItem *a, const JudgeItem *b, double *p_a) {
    Rendered r[2] = {{0}};
    double l[2];
    int rc = 0;
    if ((r[0].n = render_ids(j, a->prompt, a->response, b->response, &r[0].ids)) < 0 ||
        (r[1].n = render_ids(j, a->prompt, b->response, a->response, &r[1].ids)) < 0)
        rc = -1;
    if (!rc) {
        log_ratios(j, r, 2, l);
        *p_a = prefer(l[0], l[1]);
    }
    free(r[0].ids), free(r[1].ids);
    return rc;
}
