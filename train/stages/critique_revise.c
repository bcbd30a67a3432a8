// train/stages/critique_revise.c: the critique_revise stage, the supervised phase of Constitutional
// AI (Bai et al. 2022). The stage's init model answers every prompt of data.prompts; then, for
// revisions_per_prompt rounds, a principle drawn per prompt gives a critique request, the model
// critiques its current answer, and a revision request asks it to rewrite the answer. The last
// revision becomes <stage>/sft.h5 (prompt -> revision) and, against the first answer,
// <stage>/pref.h5 (chosen: the revision, rejected: the answer); <stage>/samples.jsonl keeps every
// step. docs/feedback.md has the prompts and files. Rank 0 does the work; others wait.
#include "common/check.h"
#include "data/dataset.h"
#include "train/stages/stages.h"
#include "train/stages/stageio.h"
#include "train/stages/textgen.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

// One prompt's way through the stage.
typedef struct {
    TokenBuf prompt;     // the prompt's ids as the dataset holds them
    char *prompt_text;   // decoded
    char *answer;        // the first answer
    TokenBuf current;    // the ids of the answer or the latest revision
    char **critiques;    // (rounds) each round's critique
    char **revisions;    // (rounds) each round's revision
    int *principles;     // (rounds) each round's principle
    const char *dropped; // NULL, or why the prompt was left out
} Item;

typedef struct {
    StageRun *sr;
    const CritiqueReviseConfig *cfg;
    TextGen gen;    // the model, sampling
    Rng rng;        // the principles
    Chat chat;      // the template the prompts were rendered with
    int stop;       // the token that ends an answer, critique or revision
    Item *items;    // (n)
    int n;          // prompts in data.prompts
    long too_long;  // prompts left out: a context longer than seq_len - max_new_tokens
    long unchanged; // pairs left out: the revision is the answer
} Critique;

// Reads every prompt; a prompt longer than the longest context is left out (counted).
static int prompts_read(Critique *c) {
    const Run *run = c->sr->run;
    const char *path = c->sr->stage->data.prompts;
    char err[1024];
    Dataset *ds = dataset_open(path, DATA_PROMPT, err, sizeof(err));
    if (!ds || dataset_check_fingerprint(ds, run->fingerprint, err, sizeof(err)) ||
        dataset_load(ds, tokenizer_vocab_size(run->tok), err, sizeof(err))) {
        dataset_free(ds);
        return stageio_fail(c->sr, "data.prompts: %s", err);
    }
    int rounds = c->cfg->revisions_per_prompt;
    c->n = (int)ds->n;
    c->items = lc_calloc((size_t)c->n + 1, sizeof(Item));
    for (int i = 0; i < c->n; i++) {
        Item *it = &c->items[i];
        Example ex = dataset_example(ds, i);
        size_t len;
        tokenbuf_push(&it->prompt, ex.tokens, ex.n_tokens, 0);
        char *raw = tokenizer_decode(run->tok, ex.tokens, (int)ex.n_tokens, &len);
        LC_ASSERT(raw);
        it->prompt_text = stageio_clean_text(raw, len);
        free(raw);
        it->critiques = lc_calloc((size_t)rounds, sizeof(char *));
        it->revisions = lc_calloc((size_t)rounds, sizeof(char *));
        it->principles = lc_calloc((size_t)rounds, sizeof(int));
        for (int r = 0; r < rounds; r++) it->principles[r] = -1;
        if (ex.n_tokens == 0) it->dropped = "empty";
        if (ex.n_tokens > c->gen.max_ctx) it->dropped = "too_long";
    }
    dataset_free(ds);
    if (c->n == 0) return stageio_fail(c->sr, "data.prompts: %s holds no prompt", path);
    return 0;
}

// The end of a response: the template's end of turn when every prompt ends with its assistant
// header, else end-of-text (plain prompts), as the eval stage decides.
static int stop_token(const Critique *c) {
    int eot = tokenizer_eot(c->sr->run->tok);
    for (int i = 0; i < c->n; i++)
        if (chat_stop_token(&c->chat, c->items[i].prompt.ids, (int)c->items[i].prompt.n) == eot)
            return eot;
    return c->chat.end;
}

// The indices of the prompts still in play, into live; returns their count.
static int live_items(const Critique *c, int *live) {
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (!c->items[i].dropped) live[n++] = i;
    return n;
}

static void push_text(const Tokenizer *tok, const char *text, TokenBuf *out) {
    int *ids;
    int n = tokenizer_encode(tok, text, strlen(text), 0, &ids);
    tokenbuf_push(out, ids, n, 0);
    free(ids);
}

// Generates for the live prompts from contexts ctx (n of them); outputs into text (n).
static void generate(Critique *c, TokenBuf *ctx, int n, TokenBuf *ids, char **text) {
    textgen_generate(&c->gen, ctx, n, c->stop, ids, text);
}

// The first answers.
static void answer_all(Critique *c, int *live) {
    int n = live_items(c, live);
    TokenBuf *ctx = lc_calloc((size_t)n + 1, sizeof(TokenBuf));
    TokenBuf *ids = lc_calloc((size_t)n + 1, sizeof(TokenBuf));
    char **text = lc_calloc((size_t)n + 1, sizeof(char *));
    for (int j = 0; j < n; j++) tokenbuf_append(&ctx[j], &c->items[live[j]].prompt);
    generate(c, ctx, n, ids, text);
    for (int j = 0; j < n; j++) {
        Item *it = &c->items[live[j]];
        it->answer = text[j];
        tokenbuf_append(&it->current, &ids[j]);
        tokenbuf_free(&ctx[j]), tokenbuf_free(&ids[j]);
    }
    free(ctx), free(ids), free(text);
}

// Appends "\n\n<what> request: <request>\n\n<what>:" to ctx; 0, or -1 when ctx then leaves no
// room for the continuation.
static int push_request(Critique *c, const char *what, const char *request, TokenBuf *ctx) {
    size_t len = strlen(request) + 2 * strlen(what) + 32;
    char *text = lc_malloc(len);
    snprintf(text, len, "\n\n%s request: %s\n\n%s:", what, request, what);
    push_text(c->sr->run->tok, text, ctx);
    free(text);
    return ctx->n <= c->gen.max_ctx ? 0 : -1;
}

// The work space of one round over n live prompts.
typedef struct {
    TokenBuf *ctx; // (n) the contexts of one generation
    TokenBuf *ids; // (n) the continuations' ids
    char **text;   // (n) the continuations
    int *at;       // (n) the item each context belongs to
    int n;         // contexts in use
} RoundBufs;

// The critiques of round r: a principle drawn per live prompt, the critique request after the
// prompt and its current answer; prompts whose context overflows drop out.
static void critique_step(Critique *c, int r, const int *live, int n, RoundBufs *b) {
    b->n = 0;
    for (int j = 0; j < n; j++) {
        Item *it = &c->items[live[j]];
        int p = (int)rng_below(&c->rng, (uint64_t)c->cfg->critiques.n);
        TokenBuf *ctx = &b->ctx[b->n];
        it->principles[r] = p;
        ctx->n = 0;
        tokenbuf_append(ctx, &it->prompt);
        tokenbuf_append(ctx, &it->current);
        if (push_request(c, "Critique", c->cfg->critiques.items[p], ctx) < 0)
            it->dropped = "too_long", c->too_long++;
        else
            b->at[b->n++] = live[j];
    }
    generate(c, b->ctx, b->n, b->ids, b->text);
}

// The revisions of round r: each critique's context continued with the critique and the
// principle's revision request; the revision becomes the prompt's current answer.
static void revision_step(Critique *c, int r, RoundBufs *b) {
    int k = 0;
    for (int j = 0; j < b->n; j++) {
        Item *it = &c->items[b->at[j]];
        it->critiques[r] = b->text[j];
        tokenbuf_append(&b->ctx[j], &b->ids[j]);
        b->ids[j].n = 0;
        const char *request = c->cfg->revisions.items[it->principles[r]];
        if (push_request(c, "Revision", request, &b->ctx[j]) < 0) {
            it->dropped = "too_long", c->too_long++;
            continue;
        }
        TokenBuf t = b->ctx[k]; // contexts that still fit move to the front
        b->ctx[k] = b->ctx[j], b->ctx[j] = t;
        b->at[k++] = b->at[j];
    }
    b->n = k;
    generate(c, b->ctx, k, b->ids, b->text);
    for (int j = 0; j < k; j++) {
        Item *it = &c->items[b->at[j]];
        it->revisions[r] = b->text[j];
        it->current.n = 0;
        tokenbuf_append(&it->current, &b->ids[j]);
    }
}

// Round r over the prompts still in play: critique, then revision.
static void round_run(Critique *c, int r, int *live) {
    int n = live_items(c, live);
    RoundBufs b = {.ctx = lc_calloc((size_t)n + 1, sizeof(TokenBuf)),
                   .ids = lc_calloc((size_t)n + 1, sizeof(TokenBuf)),
                   .text = lc_calloc((size_t)n + 1, sizeof(char *)),
                   .at = lc_calloc((size_t)n + 1, sizeof(int))};
    critique_step(c, r, live, n, &b);
    revision_step(c, r, &b);
    for (int j = 0; j < n; j++) tokenbuf_free(&b.ctx[j]), tokenbuf_free(&b.ids[j]);
    free(b.ctx), free(b.ids), free(b.text), free(b.at);
}

// ---- outputs --------------------------------------------------------------------------------

static json_t *strings_json(char **s, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, s[i] ? json_string(s[i]) : json_null());
    return a;
}

static void samples_line(FILE *f, const Critique *c, int i) {
    const Item *it = &c->items[i];
    int rounds = c->cfg->revisions_per_prompt;
    json_t *principles = json_array();
    for (int r = 0; r < rounds; r++)
        json_array_append_new(principles, it->principles[r] >= 0 ? json_integer(it->principles[r])
                                                                 : json_null());
    json_t *o = json_pack(
        "{s:i, s:s, s:o, s:o, s:o, s:o, s:o}", "index", i, "prompt", it->prompt_text, "principles",
        principles, "answer", it->answer ? json_string(it->answer) : json_null(), "critiques",
        strings_json(it->critiques, rounds), "revisions", strings_json(it->revisions, rounds),
        "dropped", it->dropped ? json_string(it->dropped) : json_null());
    LC_ASSERT(o); // every text is valid UTF-8 (stageio_clean_text)
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(f, "%s\n", line);
    free(line);
    json_decref(o);
}

// The response as a dataset holds it: the text and the end of turn (the template's marker when
// generation stopped there, else end-of-text).
static void response(const Critique *c, const char *text, TokenBuf *out) {
    if (c->stop == c->chat.end) {
        chat_response(&c->chat, text, strlen(text), out);
        return;
    }
    int *ids;
    int n = tokenizer_encode(c->sr->run->tok, text, strlen(text), 0, &ids);
    tokenbuf_push(out, ids, n, 1);
    tokenbuf_push(out, &c->stop, 1, 1);
    free(ids);
}

// Writes prompt i's sft example and, when the revision differs from the answer, its pair.
static int write_item(Critique *c, int i, DatasetWriter *sft, DatasetWriter *pref, long *pairs) {
    const Item *it = &c->items[i];
    const char *revision = it->revisions[c->cfg->revisions_per_prompt - 1];
    TokenBuf chosen = {0}, rejected = {0}, seq = {0};
    char err[1024];
    response(c, revision, &chosen);
    response(c, it->answer, &rejected);
    tokenbuf_append(&seq, &it->prompt);
    tokenbuf_append(&seq, &chosen);
    Example ex = {.tokens = seq.ids, .n_tokens = seq.n, .loss_mask = seq.mask};
    int rc = dataset_append(sft, &ex, err, sizeof(err));
    if (!rc && strcmp(revision, it->answer) == 0)
        c->unchanged++;
    else if (!rc) {
        Example pr = {.tokens = it->prompt.ids,
                      .n_tokens = it->prompt.n,
                      .chosen = chosen.ids,
                      .n_chosen = chosen.n,
                      .rejected = rejected.ids,
                      .n_rejected = rejected.n};
        rc = dataset_append(pref, &pr, err, sizeof(err));
        (*pairs)++;
    }
    tokenbuf_free(&chosen), tokenbuf_free(&rejected), tokenbuf_free(&seq);
    return rc ? stageio_fail(c->sr, "%s", err) : 0;
}

static DatasetWriter *writer(const Critique *c, const char *name, DataKind kind) {
    char path[4200], err[1024];
    snprintf(path, sizeof(path), "%s/%s", c->sr->dir, name);
    DatasetWriter *w = dataset_create(path, kind, c->sr->run->fingerprint, err, sizeof(err));
    if (w && dataset_set_attribute(w, "chat_template", chat_template_name(c->chat.tmpl), err,
                                   sizeof(err))) {
        dataset_abort(w);
        w = NULL;
    }
    if (!w) stageio_fail(c->sr, "%s", err);
    return w;
}

static int outputs_write(Critique *c, long *examples, long *pairs) {
    DatasetWriter *sft = writer(c, "sft.h5", DATA_SFT),
                  *pref = writer(c, "pref.h5", DATA_PREFERENCE);
    char *buf = NULL, path[4200], err[1024];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    LC_ASSERT(f);
    int rc = sft && pref ? 0 : -1;
    for (int i = 0; i < c->n; i++) {
        samples_line(f, c, i);
        if (rc || c->items[i].dropped) continue;
        rc = write_item(c, i, sft, pref, pairs);
        (*examples)++;
    }
    snprintf(path, sizeof(path), "%s/samples.jsonl", c->sr->dir);
    if (stageio_write_memstream(path, f, &buf, &len, err, sizeof(err)) && !rc)
        rc = stageio_fail(c->sr, "%s", err);
    if (rc) {
        if (sft) dataset_abort(sft);
        if (pref) dataset_abort(pref);
        return rc;
    }
    rc = dataset_close(sft, err, sizeof(err));
    if (rc) dataset_abort(pref);
    if (!rc) rc = dataset_close(pref, err, sizeof(err));
    return rc ? stageio_fail(c->sr, "%s", err) : 0;
}

// ---- the stage ------------------------------------------------------------------------------

static void cr_close(Critique *c) {
    for (int i = 0; i < c->n; i++) {
        Item *it = &c->items[i];
        for (int r = 0; r < c->cfg->revisions_per_prompt; r++)
            free(it->critiques[r]), free(it->revisions[r]);
        free(it->critiques), free(it->revisions), free(it->principles);
        free(it->prompt_text), free(it->answer);
        tokenbuf_free(&it->prompt), tokenbuf_free(&it->current);
    }
    free(c->items);
    textgen_close(&c->gen);
}

static int cr_run(StageRun *sr) {
    const Stage *st = sr->stage;
    Critique c = {.sr = sr, .cfg = &st->critique_revise};
    long examples = 0, pairs = 0;
    char err[1024];
    int rc = textgen_open(&c.gen, sr, "critique_revise") || prompts_read(&c);
    if (!rc) {
        c.rng = rng_init(stage_seed(sr, "critique_revise_principles"));
        c.chat = run_dataset_chat(sr->run, st->data.prompts);
        c.stop = stop_token(&c);
        for (int i = 0; i < c.n; i++) c.too_long += c.items[i].dropped != NULL; // empty too
        int *live = lc_calloc((size_t)c.n, sizeof(int));
        answer_all(&c, live);
        for (int r = 0; r < c.cfg->revisions_per_prompt; r++) round_run(&c, r, live);
        free(live);
        rc = outputs_write(&c, &examples, &pairs);
    }
    if (!rc && stageio_mark_complete(sr, err, sizeof(err))) rc = stageio_fail(c.sr, "%s", err);
    if (!rc)
        printf("[%s] %d prompts of %s answered by '%s', critiqued and revised %d time(s) against "
               "%d principles: %ld sft examples (sft.h5), %ld pairs (pref.h5; %ld revisions equal "
               "to their answer left out), %ld prompts left out (a context over seq_len - "
               "rollout.max_new_tokens); samples.jsonl\n",
               st->name, c.n, st->data.prompts, stage_start_name(sr, st->init),
               c.cfg->revisions_per_prompt, c.cfg->critiques.n, examples, pairs, c.unchanged,
               c.too_long);
    cr_close(&c);
    return rc ? 1 : 0;
}

int stage_critique_revise(StageRun *sr) {
    int rc = sr->run->rank == 0 ? cr_run(sr) : 0;
    return run_agree(sr->run, rc);
}
