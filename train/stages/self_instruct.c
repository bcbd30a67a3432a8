// train/stages/self_instruct.c: the self_instruct stage (Wang et al. 2023, "Self-Instruct"). From
// the seed tasks of data.seeds, the stage's init model proposes new instructions round by round,
// each prompted with a few tasks of the pool; proposals pass filters (train/stages/selfgen.h)
// and survivors join the pool. The model then writes input/output instances for each kept
// instruction, which become <stage>/sft.h5. <stage>/pool.jsonl records every instruction and
// its verdict, <stage>/rounds.jsonl every round. docs/feedback.md has the prompts and files.
// Rank 0 does the work; the other processes of a data-parallel run wait.
#include "common/check.h"
#include "data/dataset.h"
#include "train/stages/selfgen.h"
#include "train/stages/stages.h"
#include "train/stages/stageio.h"
#include "train/stages/textgen.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define DEMOS 2 // seed tasks shown, with an instance each, before an instance prompt

// One seed task: its instruction and first instance.
typedef struct {
    char *instruction; // the task
    char *input;       // its first instance's input ("" when none)
    char *output;      // and output
} Seed;

// Instance counts of one round (or of the stage).
typedef struct {
    long generated; // instances asked for
    long kept;      // written to sft.h5
    long no_output; // the continuation had no "Output:" or an empty one
    long too_long;  // the prompt or the sft example did not fit seq_len
} InstanceCounts;

typedef struct {
    StageRun *sr;
    const SelfInstructConfig *cfg;
    Seed *seeds;             // (n_seeds)
    int n_seeds;             // seed tasks
    SelfgenPool pool;        // seeds, then the kept instructions
    SelfgenFilter filter;    // the stage's filters
    TextGen gen;             // the model, sampling
    Rng pick;                // which tasks each prompt shows
    Chat chat;               // renders the sft examples
    DatasetWriter *out;      // sft.h5
    FILE *pool_f, *rounds_f; // pool.jsonl, rounds.jsonl (memory streams)
    char *pool_buf, *rounds_buf;
    size_t pool_len, rounds_len;
    InstanceCounts total; // over every round
    int round;            // the round under way (1-based)
} SelfInstruct;

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = lc_malloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

// ---- the seeds ------------------------------------------------------------------------------

// The why of a malformed seed line, or NULL; fills seed when fine.
static const char *seed_parse(json_t *root, Seed *seed) {
    json_t *ins = json_object_get(root, "instruction"), *arr = json_object_get(root, "instances");
    if (!json_is_object(root)) return "not a JSON object";
    if (!json_is_string(ins) || json_string_length(ins) == 0)
        return "field 'instruction' is missing, not a string or empty";
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return "field 'instances' is not a non-empty array";
    json_t *first = json_array_get(arr, 0);
    json_t *in = json_object_get(first, "input"), *out = json_object_get(first, "output");
    if (!json_is_object(first) || !json_is_string(out) || (in && !json_is_string(in)))
        return "instances[0] is not an object with a string 'output' (and a string 'input')";
    seed->instruction = dup_str(json_string_value(ins));
    seed->input = dup_str(in ? json_string_value(in) : "");
    seed->output = dup_str(json_string_value(out));
    return NULL;
}

// Reads data.seeds: one Self-Instruct task per non-blank line.
static int seeds_read(SelfInstruct *s) {
    const char *path = s->sr->stage->data.seeds;
    FILE *f = fopen(path, "rb");
    if (!f) return stageio_fail(s->sr, "data.seeds: cannot read %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    for (long lineno = 1; !rc && (n = getline(&line, &cap, f)) >= 0; lineno++) {
        if (strspn(line, " \t\r\n") == (size_t)n) continue;
        json_error_t je;
        json_t *root = json_loadb(line, (size_t)n, 0, &je);
        Seed seed;
        const char *why = root ? seed_parse(root, &seed) : je.text;
        if (why)
            rc = stageio_fail(s->sr, "data.seeds: %s:%ld: %s", path, lineno, why);
        else {
            s->seeds = realloc(s->seeds, (size_t)(s->n_seeds + 1) * sizeof(*s->seeds));
            LC_ASSERT(s->seeds);
            s->seeds[s->n_seeds++] = seed;
            selfgen_pool_add(&s->pool, seed.instruction);
        }
        json_decref(root);
    }
    free(line);
    fclose(f);
    if (!rc && s->n_seeds == 0) rc = stageio_fail(s->sr, "data.seeds: %s holds no task", path);
    return rc;
}

// ---- prompts --------------------------------------------------------------------------------

static void push_text(const Tokenizer *tok, const char *text, TokenBuf *out) {
    int *ids;
    int n = tokenizer_encode(tok, text, strlen(text), 0, &ids);
    tokenbuf_push(out, ids, n, 0);
    free(ids);
}

// The instruction prompt of pool tasks idx[0..k), encoded into out; the earliest tasks are left
// out while it does not fit max_ctx. Returns the tasks shown, or -1 when not even the header fits.
static int instruction_prompt(const SelfInstruct *s, const int *idx, int k, TokenBuf *out) {
    const Tokenizer *tok = s->sr->run->tok;
    for (int from = 0; from <= k; from++) {
        size_t len = 64;
        for (int i = from; i < k; i++) len += strlen(s->pool.text[idx[i]]) + 32;
        char *text = lc_malloc(len), *p = text;
        p += sprintf(p, "Come up with a series of tasks:\n");
        for (int i = from; i < k; i++)
            p += sprintf(p, "Task %d: %s\n", i - from + 1, s->pool.text[idx[i]]);
        sprintf(p, "Task %d:", k - from + 1);
        out->n = 0;
        push_text(tok, text, out);
        free(text);
        if (out->n <= s->gen.max_ctx) return k - from;
    }
    return -1;
}

// The instance prompt of an instruction: up to DEMOS seed tasks with their first instance, then
// "Task: <instruction>\nInput:"; demonstrations are left out while it does not fit. 0, or -1
// when the instruction alone does not fit.
static int instance_prompt(SelfInstruct *s, const char *instruction, TokenBuf *out) {
    int demo[DEMOS], n_demo = s->n_seeds < DEMOS ? s->n_seeds : DEMOS;
    selfgen_pick(&s->pick, s->n_seeds, 0, n_demo, demo);
    for (int from = 0; from <= n_demo; from++) {
        size_t len = strlen(instruction) + 32;
        for (int i = from; i < n_demo; i++) {
            const Seed *d = &s->seeds[demo[i]];
            len += strlen(d->instruction) + strlen(d->input) + strlen(d->output) + 32;
        }
        char *text = lc_malloc(len), *p = text;
        for (int i = from; i < n_demo; i++) {
            const Seed *d = &s->seeds[demo[i]];
            p += sprintf(p, "Task: %s\nInput: %s\nOutput: %s\n\n", d->instruction, d->input,
                         d->output);
        }
        sprintf(p, "Task: %s\nInput:", instruction);
        out->n = 0;
        push_text(s->sr->run->tok, text, out);
        free(text);
        if (out->n <= s->gen.max_ctx) return 0;
    }
    return -1;
}

// ---- a round --------------------------------------------------------------------------------

// The sft example of an instance, rendered as the importer renders a Self-Instruct line: the
// instruction (a blank line and the input when there is one) as the user turn, the output as
// the assistant's. 0, 1 when it is longer than seq_len (left out), -1 on a write error.
static int write_example(SelfInstruct *s, const char *ins, const char *input, const char *output) {
    size_t len = strlen(ins) + strlen(input) + 3;
    char *user = lc_malloc(len), err[1024];
    snprintf(user, len, "%s%s%s", ins, *input ? "\n\n" : "", input);
    ChatMessage m = {CHAT_USER, user, strlen(user)};
    TokenBuf seq = {0};
    chat_render(&s->chat, &m, 1, &seq);
    chat_header(&s->chat, &seq);
    chat_response(&s->chat, output, strlen(output), &seq);
    free(user);
    int rc = 1;
    if (seq.n <= s->sr->stage->seq_len) {
        Example ex = {.tokens = seq.ids, .n_tokens = seq.n, .loss_mask = seq.mask};
        rc = dataset_append(s->out, &ex, err, sizeof(err)) ? stageio_fail(s->sr, "%s", err) : 0;
    }
    tokenbuf_free(&seq);
    return rc;
}

// Instances of the kept instructions ins[0..n): generated, parsed, written. kept_instances (n)
// gets each instruction's count.
static int instances_make(SelfInstruct *s, char **ins, int n, InstanceCounts *c,
                          int *kept_instances) {
    int per = s->cfg->instances, m = n * per, rc = 0;
    TokenBuf *ctx = lc_calloc((size_t)m + 1, sizeof(TokenBuf));
    int *owner = lc_calloc((size_t)m + 1, sizeof(int)), live = 0;
    c->generated += m;
    for (int i = 0; i < m; i++) {
        if (instance_prompt(s, ins[i / per], &ctx[live]) < 0) {
            c->too_long++;
            continue;
        }
        owner[live++] = i / per;
    }
    char **text = lc_calloc((size_t)live + 1, sizeof(char *));
    textgen_generate(&s->gen, ctx, live, tokenizer_eot(s->sr->run->tok), NULL, text);
    for (int j = 0; j < live; j++) {
        char *input, *output;
        if (!rc && selfgen_parse_instance(text[j], &input, &output) == 0) {
            int w = write_example(s, ins[owner[j]], input, output);
            rc = w < 0 ? -1 : 0;
            if (w == 0) c->kept++, kept_instances[owner[j]]++;
            if (w == 1) c->too_long++;
            free(input), free(output);
        } else if (!rc)
            c->no_output++;
        free(text[j]);
    }
    for (int i = 0; i < m; i++) tokenbuf_free(&ctx[i]);
    free(ctx), free(owner), free(text);
    return rc;
}

// One pool.jsonl line.
static void pool_line(SelfInstruct *s, const char *origin, const char *ins, SelfgenVerdict v,
                      double rouge, int best, int instances) {
    json_t *o =
        json_pack("{s:s, s:i, s:s, s:s}", "origin", origin, "round", *origin == 's' ? 0 : s->round,
                  "instruction", ins, "verdict", selfgen_verdict_name(v));
    if (*origin != 's') {
        json_object_set_new(o, "rouge_l", json_real(rouge));
        json_object_set_new(o, "most_similar",
                            best >= 0 ? json_string(s->pool.text[best]) : json_null());
        json_object_set_new(o, "instances", json_integer(instances));
    }
    LC_ASSERT(o); // every text is valid UTF-8 (stageio_clean_text)
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(s->pool_f, "%s\n", line);
    free(line);
    json_decref(o);
}

static void rounds_line(SelfInstruct *s, int generated, const int *count, const InstanceCounts *c) {
    json_t *drops = json_object();
    for (int v = SELFGEN_EMPTY; v < SELFGEN_VERDICT_COUNT; v++)
        json_object_set_new(drops, selfgen_verdict_name(v), json_integer(count[v]));
    json_t *o =
        json_pack("{s:i, s:i, s:i, s:o, s:f, s:i, s:{s:I, s:I, s:I, s:I}}", "round", s->round,
                  "generated", generated, "kept", count[SELFGEN_KEPT], "dropped", drops, "yield",
                  generated ? (double)count[SELFGEN_KEPT] / generated : 0.0, "pool", s->pool.n,
                  "instances", "generated", (json_int_t)c->generated, "kept", (json_int_t)c->kept,
                  "no_output", (json_int_t)c->no_output, "too_long", (json_int_t)c->too_long);
    LC_ASSERT(o); // every text is valid UTF-8 (stageio_clean_text)
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(s->rounds_f, "%s\n", line);
    free(line);
    json_decref(o);
}

// The proposals of one round: per_round prompts, each showing tasks of the pool.
static char **round_propose(SelfInstruct *s, int *n) {
    int per = s->cfg->per_round, k = s->cfg->prompt_tasks;
    TokenBuf *ctx = lc_calloc((size_t)per, sizeof(TokenBuf));
    int *idx = lc_malloc((size_t)k * sizeof(int));
    char **text = lc_calloc((size_t)per, sizeof(char *));
    *n = 0;
    for (int i = 0; i < per; i++) {
        int shown = selfgen_pick(&s->pick, s->n_seeds, s->pool.n - s->n_seeds, k, idx);
        if (instruction_prompt(s, idx, shown, &ctx[*n]) < 0) {
            stageio_fail(s->sr,
                         "seq_len %d - rollout.max_new_tokens %d leaves no room for the "
                         "instruction prompt's header",
                         s->sr->stage->seq_len, s->gen.max_new);
            break;
        }
        (*n)++;
    }
    if (*n == per) textgen_generate(&s->gen, ctx, per, tokenizer_eot(s->sr->run->tok), NULL, text);
    for (int i = 0; i < per; i++) tokenbuf_free(&ctx[i]);
    free(ctx), free(idx);
    if (*n < per) {
        free(text);
        return NULL;
    }
    return text;
}

static void round_print(const SelfInstruct *s, int n, const int *count, const InstanceCounts *c) {
    printf("[%s] round %d: %d proposed, %d kept (yield %.2f; dropped: %d empty, %d too short, %d "
           "too long, %d blocklist, %d bad start, %d similar); pool %d (%d generated); %ld/%ld "
           "instances kept\n",
           s->sr->stage->name, s->round, n, count[SELFGEN_KEPT],
           n ? (double)count[SELFGEN_KEPT] / n : 0.0, count[SELFGEN_EMPTY],
           count[SELFGEN_TOO_SHORT], count[SELFGEN_TOO_LONG], count[SELFGEN_BLOCKLIST],
           count[SELFGEN_BAD_START], count[SELFGEN_SIMILAR], s->pool.n, s->pool.n - s->n_seeds,
           c->kept, c->generated);
    fflush(stdout);
}

// What became of one round's proposals.
typedef struct {
    char **proposal;         // (n) the instructions parsed from the continuations
    SelfgenVerdict *verdict; // (n) their verdicts
    double *rouge;           // (n) their highest ROUGE-L against the pool before them
    int *best;               // (n) the pool index of that instruction
    char **kept;             // (n_kept) the kept ones (pointers into proposal)
    int n_kept;              // kept
} Verdicts;

// Parses and filters the continuations text[0..n) in order, counting verdicts into count.
static Verdicts round_filter(SelfInstruct *s, char **text, int n, int *count) {
    Verdicts v = {.proposal = lc_calloc((size_t)n + 1, sizeof(char *)),
                  .verdict = lc_calloc((size_t)n + 1, sizeof(SelfgenVerdict)),
                  .rouge = lc_calloc((size_t)n + 1, sizeof(double)),
                  .best = lc_calloc((size_t)n + 1, sizeof(int)),
                  .kept = lc_calloc((size_t)n + 1, sizeof(char *))};
    for (int i = 0; i < n; i++) {
        v.proposal[i] = selfgen_parse_instruction(text[i]);
        v.verdict[i] = selfgen_filter(&s->filter, &s->pool, v.proposal[i], &v.rouge[i], &v.best[i]);
        count[v.verdict[i]]++;
        if (v.verdict[i] == SELFGEN_KEPT) v.kept[v.n_kept++] = v.proposal[i];
    }
    return v;
}

static void verdicts_free(Verdicts *v, int n) {
    for (int i = 0; i < n; i++) free(v->proposal[i]);
    free(v->proposal), free(v->verdict), free(v->rouge), free(v->best), free(v->kept);
}

// One round; *stop gets why the rounds end after it (SELFGEN_GO_ON to go on).
static int round_run(SelfInstruct *s, SelfgenStop *stop) {
    int n, count[SELFGEN_VERDICT_COUNT] = {0};
    char **text = round_propose(s, &n);
    if (!text) return -1;
    Verdicts v = round_filter(s, text, n, count);
    InstanceCounts c = {0};
    int *kept_instances = lc_calloc((size_t)v.n_kept + 1, sizeof(int));
    int rc = instances_make(s, v.kept, v.n_kept, &c, kept_instances);
    for (int i = 0, j = 0; i < n; i++)
        pool_line(s, "generated", v.proposal[i], v.verdict[i], v.rouge[i], v.best[i],
                  v.verdict[i] == SELFGEN_KEPT ? kept_instances[j++] : 0);
    rounds_line(s, n, count, &c);
    s->total.generated += c.generated, s->total.kept += c.kept;
    s->total.no_output += c.no_output, s->total.too_long += c.too_long;
    round_print(s, n, count, &c);
    *stop = selfgen_stop(s->pool.n - s->n_seeds, s->cfg->target, s->round, s->cfg->max_rounds,
                         count[SELFGEN_KEPT], n, s->cfg->min_yield);
    for (int i = 0; i < n; i++) free(text[i]);
    free(text), free(kept_instances);
    verdicts_free(&v, n);
    return rc;
}

// ---- the stage ------------------------------------------------------------------------------

static int si_open(SelfInstruct *s) {
    StageRun *sr = s->sr;
    const Tokenizer *tok = sr->run->tok;
    char path[4200], err[1024];
    s->filter = (SelfgenFilter){.min_words = s->cfg->min_words,
                                .max_words = s->cfg->max_words,
                                .blocklist = s->cfg->blocklist.items,
                                .n_blocklist = s->cfg->blocklist.n,
                                .threshold = s->cfg->rouge_threshold};
    if (seeds_read(s) || textgen_open(&s->gen, sr, "self_instruct")) return -1;
    s->pick = rng_init(stage_seed(sr, "self_instruct_tasks"));
    s->chat = chat_init_template(tok, CHAT_TEMPLATE_AUTO, tokenizer_chat_template(tok));
    snprintf(path, sizeof(path), "%s/sft.h5", sr->dir);
    s->out = dataset_create(path, DATA_SFT, sr->run->fingerprint, err, sizeof(err));
    if (!s->out || dataset_set_attribute(s->out, "chat_template", chat_template_name(s->chat.tmpl),
                                         err, sizeof(err)))
        return stageio_fail(s->sr, "%s", err);
    s->pool_f = open_memstream(&s->pool_buf, &s->pool_len);
    s->rounds_f = open_memstream(&s->rounds_buf, &s->rounds_len);
    LC_ASSERT(s->pool_f && s->rounds_f);
    for (int i = 0; i < s->n_seeds; i++)
        pool_line(s, "seed", s->seeds[i].instruction, SELFGEN_KEPT, 0.0, -1, 0);
    return 0;
}

static int si_finish(SelfInstruct *s, SelfgenStop stop) {
    StageRun *sr = s->sr;
    char path[4200], err[1024];
    int rc = dataset_close(s->out, err, sizeof(err));
    s->out = NULL;
    snprintf(path, sizeof(path), "%s/pool.jsonl", sr->dir);
    if (!rc)
        rc = stageio_write_memstream(path, s->pool_f, &s->pool_buf, &s->pool_len, err, sizeof(err));
    s->pool_f = NULL;
    snprintf(path, sizeof(path), "%s/rounds.jsonl", sr->dir);
    if (!rc)
        rc = stageio_write_memstream(path, s->rounds_f, &s->rounds_buf, &s->rounds_len, err,
                                     sizeof(err));
    s->rounds_f = NULL;
    if (!rc) rc = stageio_mark_complete(sr, err, sizeof(err));
    if (rc) return stageio_fail(s->sr, "%s", err);
    printf("[%s] stopped after round %d (%s): %d instructions generated and kept beside %d "
           "seeds; %ld sft examples in %s/sft.h5 (%ld instances without an output, %ld too long); "
           "pool.jsonl, rounds.jsonl\n",
           sr->stage->name, s->round, selfgen_stop_name(stop), s->pool.n - s->n_seeds, s->n_seeds,
           s->total.kept, sr->dir, s->total.no_output, s->total.too_long);
    return 0;
}

static void si_close(SelfInstruct *s) {
    if (s->out) dataset_abort(s->out);
    if (s->pool_f) fclose(s->pool_f);
    if (s->rounds_f) fclose(s->rounds_f);
    free(s->pool_buf), free(s->rounds_buf);
    for (int i = 0; i < s->n_seeds; i++)
        free(s->seeds[i].instruction), free(s->seeds[i].input), free(s->seeds[i].output);
    free(s->seeds);
    selfgen_pool_free(&s->pool);
    textgen_close(&s->gen);
}

static int si_run(StageRun *sr) {
    SelfInstruct s = {.sr = sr, .cfg = &sr->stage->self_instruct};
    SelfgenStop stop = SELFGEN_GO_ON;
    int rc = si_open(&s);
    if (!rc)
        printf("[%s] %d seed tasks from %s; proposing instructions with '%s'\n", sr->stage->name,
               s.n_seeds, sr->stage->data.seeds, stage_start_name(sr, sr->stage->init));
    for (s.round = 1; !rc && stop == SELFGEN_GO_ON; s.round++) rc = round_run(&s, &stop);
    s.round--;
    if (!rc) rc = si_finish(&s, stop);
    si_close(&s);
    return rc ? 1 : 0;
}

int stage_self_instruct(StageRun *sr) {
    int rc = sr->run->rank == 0 ? si_run(sr) : 0;
    return run_agree(sr->run, rc);
}
