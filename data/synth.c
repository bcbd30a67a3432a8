// data/synth.c: the generic part of the task worlds: the task table, the gold-reward entry
// points, and the generator that turns a task's problems and mistakes into a tokenizer and the
// datasets of a world (docs/tasks.md, "Files").
//
// Determinism: every file draws from its own stream, rng_derive(seed, file), so a file's
// content depends on the seed, the task, the difficulty, the fractions and its own size only.
// Held-out problems: a problem's split (training, validation, evaluation) is a hash of its
// prompt, the same for every seed, so no evaluation prompt is in any training or validation
// file of any world.
#include "common/check.h"
#include "common/timer.h"
#include "common/error.h"
#include "data/synth-impl.h"
#include "data/tokenizer.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOC_PROBLEMS     8    // problems per pretraining document (a worksheet)
#define HASH_BUCKETS     16   // problem buckets: 0 evaluation, 1 validation, the rest training
#define PAIR_BOTH_FLAWED 0.25 // share of pairs in which neither response is correct
#define FLAWED_NO_STOP   0.2  // share of flawed responses that are right but do not stop
#define RESPONSE_MAX     (3 * SYNTH_TEXT_MAX) // a flawed response: answer, newline, problem
#define SEQ_MAX          (DOC_PROBLEMS * 2 * SYNTH_TEXT_MAX) // a document's bytes bound its ids
#define MAX_EXAMPLES     100000000                           // per file
#define PROBE_DRAWS      100000 // draws that must find a problem of every split
// The 256 bytes and the 5 special tokens every trained tokenizer has: no merges, so every
// character, each digit included, is one token.
#define VOCAB_SIZE (256 + 5)

static const SynthTask *const TASKS[] = {&synth_task_arithmetic};
#define N_TASKS (sizeof(TASKS) / sizeof(TASKS[0]))
static const char TASK_NAMES[] = "arithmetic"; // TASKS' names, comma-separated

static const struct {
    const char *name;
    DataKind kind;
    int64_t size; // default examples (lm: problems)
} FILES[SYNTH_FILE_COUNT] = {
    [SYNTH_PRETRAIN] = {"pretrain", DATA_LM, 40000},
    [SYNTH_PRETRAIN_VAL] = {"pretrain-val", DATA_LM, 2000},
    [SYNTH_SFT] = {"sft", DATA_SFT, 2000},
    [SYNTH_SFT_VAL] = {"sft-val", DATA_SFT, 200},
    [SYNTH_PREF] = {"pref", DATA_PREFERENCE, 4000},
    [SYNTH_PREF_VAL] = {"pref-val", DATA_PREFERENCE, 400},
    [SYNTH_PROMPTS] = {"prompts", DATA_PROMPT, 2000},
    [SYNTH_EVAL] = {"eval", DATA_PROMPT, 500},
};

// ---- tasks and files -----------------------------------------------------------------------

const SynthTask *synth_task_find(const char *name) {
    for (size_t i = 0; i < N_TASKS; i++)
        if (strcmp(TASKS[i]->name, name) == 0) return TASKS[i];
    return NULL;
}

const char *synth_task_names(void) {
    return TASK_NAMES;
}

const char *synth_task_name(const SynthTask *task) {
    return task->name;
}

void synth_task_describe(const SynthTask *task, int difficulty, char *buf, size_t len) {
    task->describe(difficulty, buf, len);
}

int synth_task_max_difficulty(const SynthTask *task) {
    return task->max_difficulty;
}

const char *synth_file_name(SynthFile f) {
    return FILES[f].name;
}

DataKind synth_file_kind(SynthFile f) {
    return FILES[f].kind;
}

int synth_file_parse(const char *name, SynthFile *f) {
    for (int i = 0; i < SYNTH_FILE_COUNT; i++)
        if (strcmp(FILES[i].name, name) == 0) {
            *f = (SynthFile)i;
            return 0;
        }
    return -1;
}

SynthConfig synth_config_default(const SynthTask *task) {
    SynthConfig cfg = {.wrong_fraction = 0.3, .label_noise = 0.1};
    cfg.difficulty = task->default_difficulty;
    for (int f = 0; f < SYNTH_FILE_COUNT; f++) cfg.sizes[f] = FILES[f].size;
    return cfg;
}

// ---- gold reward ---------------------------------------------------------------------------

// Splits a response at its first end token: *body_len is what comes before it. Returns
// whether the response stopped there (the end token is present and nothing follows it).
static bool response_body(const char *response, size_t len, size_t *body_len) {
    const size_t n_end = sizeof(SYNTH_END) - 1;
    for (size_t i = 0; i + n_end <= len; i++)
        if (memcmp(response + i, SYNTH_END, n_end) == 0) {
            *body_len = i;
            return i + n_end == len;
        }
    *body_len = len;
    return false;
}

double synth_gold_reward(const SynthTask *task, const char *prompt, size_t prompt_len,
                         const char *response, size_t response_len) {
    char answer[SYNTH_TEXT_MAX];
    if (task->answer(prompt, prompt_len, answer, sizeof(answer)) < 0) return SYNTH_REWARD_MIN;
    size_t body;
    bool stopped = response_body(response, response_len, &body);
    return task->reward(answer, response, body, stopped);
}

bool synth_correct(const SynthTask *task, const char *prompt, size_t prompt_len,
                   const char *response, size_t response_len) {
    char answer[SYNTH_TEXT_MAX];
    if (task->answer(prompt, prompt_len, answer, sizeof(answer)) < 0) return false;
    size_t body;
    bool stopped = response_body(response, response_len, &body);
    return task->correct(answer, response, body, stopped);
}

int synth_answer(const SynthTask *task, const char *prompt, size_t prompt_len, char *buf,
                 size_t len) {
    return task->answer(prompt, prompt_len, buf, len);
}

// ---- problems ------------------------------------------------------------------------------

typedef enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_EVAL } Split;

static Split file_split(SynthFile f) {
    if (f == SYNTH_EVAL) return SPLIT_EVAL;
    bool val = f == SYNTH_PRETRAIN_VAL || f == SYNTH_SFT_VAL || f == SYNTH_PREF_VAL;
    return val ? SPLIT_VAL : SPLIT_TRAIN;
}

// FNV-1a 64 of the prompt, finished by a SplitMix64 step (FNV's low bits mix poorly).
static Split prompt_split(const char *prompt) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = prompt; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    uint64_t bucket = rng_u64(&(Rng){h}) % HASH_BUCKETS;
    return bucket == 0 ? SPLIT_EVAL : bucket == 1 ? SPLIT_VAL : SPLIT_TRAIN;
}

typedef struct {
    const SynthTask *task;
    const SynthConfig *cfg;
    const char *dir;
    Tokenizer *tok;
    SynthStats *st;
    int ids[SEQ_MAX];      // scratch for one example's token fields, back to back
    uint8_t mask[SEQ_MAX]; // scratch for an sft example's loss mask
} Gen;

// Draws a problem of the split. Terminates: splits_check found one, so every draw hits the
// split with a fixed positive probability.
static void draw(const Gen *g, Rng *rng, Split split, SynthProblem *p) {
    do g->task->sample(rng, g->cfg->difficulty, p);
    while (prompt_split(p->prompt) != split);
}

// Fails if a split holds no problem at this difficulty (a task with very few problems).
static int splits_check(const Gen *g, char *err, size_t errlen) {
    static const char *const names[] = {"training", "validation", "evaluation"};
    bool seen[3] = {false, false, false};
    Rng rng = rng_derive(g->cfg->seed, SYNTH_FILE_COUNT);
    SynthProblem p;
    for (int i = 0; i < PROBE_DRAWS && !(seen[0] && seen[1] && seen[2]); i++) {
        g->task->sample(&rng, g->cfg->difficulty, &p);
        seen[prompt_split(p.prompt)] = true;
    }
    for (int s = 0; s < 3; s++)
        if (!seen[s])
            return lc_error(err, errlen,
                            "%s at difficulty %d has too few problems to hold out %s ones",
                            g->task->name, g->cfg->difficulty, names[s]);
    return 0;
}

// A flawed response to p (a problem of the split): mostly a plausible mistake; sometimes the
// right answer followed by another worksheet line, as a model that does not stop writes it.
static void flawed(const Gen *g, Rng *rng, Split split, const SynthProblem *p, char *out) {
    if (rng_uniform(rng) < FLAWED_NO_STOP) {
        SynthProblem next;
        draw(g, rng, split, &next);
        snprintf(out, RESPONSE_MAX, "%s\n%s%s", p->answer, next.prompt, next.answer);
    } else {
        g->task->mistake(rng, p, out);
    }
}

static double gold(const Gen *g, const SynthProblem *p, const char *response) {
    return g->task->reward(p->answer, response, strlen(response), true);
}

static void responses_swap(char *a, char *b) {
    char t[RESPONSE_MAX];
    memcpy(t, a, RESPONSE_MAX);
    memcpy(a, b, RESPONSE_MAX);
    memcpy(b, t, RESPONSE_MAX);
}

// A preference pair for p (chosen[RESPONSE_MAX], rejected[RESPONSE_MAX]), ordered by the gold
// reward (chosen strictly better), then swapped with probability label_noise. Returns whether
// it was swapped.
static bool pair_make(const Gen *g, Rng *rng, Split split, const SynthProblem *p, char *chosen,
                      char *rejected) {
    if (rng_uniform(rng) >= PAIR_BOTH_FLAWED) {
        snprintf(chosen, RESPONSE_MAX, "%s", p->answer);
        flawed(g, rng, split, p, rejected);
    } else {
        // Terminates: a right answer that does not stop outscores every mistake.
        do {
            flawed(g, rng, split, p, chosen);
            flawed(g, rng, split, p, rejected);
        } while (gold(g, p, chosen) == gold(g, p, rejected));
        if (gold(g, p, chosen) < gold(g, p, rejected)) responses_swap(chosen, rejected);
    }
    bool swap = rng_uniform(rng) < g->cfg->label_noise;
    if (swap) responses_swap(chosen, rejected);
    return swap;
}

// ---- pretraining corpus --------------------------------------------------------------------

typedef struct {
    char *s; // (len + 1) NUL-terminated
    size_t len, cap;
} Text;

static void text_add(Text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap < t->len + n + 1) cap *= 2;
        t->s = realloc(t->s, cap);
        if (!t->s) LC_DIE("out of memory growing a corpus to %zu bytes", cap);
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

// The corpus of an lm file: worksheets of DOC_PROBLEMS lines "PROMPT ANSWER\n", each answer
// wrong with probability wrong_fraction, each worksheet followed by a blank line.
static Text corpus_make(Gen *g, SynthFile f) {
    Rng rng = rng_derive(g->cfg->seed, (uint64_t)f);
    int k = f == SYNTH_PRETRAIN ? 0 : 1;
    Text t = {0};
    text_add(&t, "", 0); // an empty corpus is an empty string
    for (int64_t i = 0; i < g->cfg->sizes[f]; i++) {
        SynthProblem p;
        draw(g, &rng, file_split(f), &p);
        char wrong[SYNTH_TEXT_MAX];
        bool is_wrong = rng_uniform(&rng) < g->cfg->wrong_fraction;
        if (is_wrong) g->task->mistake(&rng, &p, wrong);
        g->st->wrong[k] += is_wrong;
        text_add(&t, p.prompt, strlen(p.prompt));
        const char *answer = is_wrong ? wrong : p.answer;
        text_add(&t, answer, strlen(answer));
        text_add(&t, "\n", 1);
        if ((i + 1) % DOC_PROBLEMS == 0 || i + 1 == g->cfg->sizes[f]) text_add(&t, "\n", 1);
    }
    g->st->problems[k] = g->cfg->sizes[f];
    return t;
}

// "<a><b><c>", malloc'd.
static char *str_join(const char *a, const char *b, const char *c) {
    char *s = lc_malloc(strlen(a) + strlen(b) + strlen(c) + 1);
    sprintf(s, "%s%s%s", a, b, c);
    return s;
}

// Writes t to path through "<path>.partial", renamed into place when complete.
static int text_save(const Text *t, const char *path, char *err, size_t errlen) {
    char *partial = str_join(path, ".partial", "");
    FILE *fp = fopen(partial, "wb");
    bool ok = fp && fwrite(t->s, 1, t->len, fp) == t->len;
    ok = fp && fclose(fp) == 0 && ok;
    ok = ok && rename(partial, path) == 0;
    int e = errno;
    if (!ok) remove(partial);
    free(partial);
    return ok ? 0 : lc_error(err, errlen, "%s: cannot write: %s", path, strerror(e));
}

// ---- examples ------------------------------------------------------------------------------

// Appends the ids of text[0..len) at g->ids[*n], with loss-mask value m.
static void ids_add(Gen *g, int64_t *n, const char *text, size_t len, uint8_t m) {
    int *ids;
    int k = tokenizer_encode(g->tok, text, len, 0, &ids);
    LC_ASSERT(*n + k <= SEQ_MAX); // a token is at least one byte
    memcpy(g->ids + *n, ids, (size_t)k * sizeof(int));
    memset(g->mask + *n, m, (size_t)k);
    *n += k;
    free(ids);
}

static void end_add(Gen *g, int64_t *n, uint8_t m) {
    LC_ASSERT(*n < SEQ_MAX);
    g->ids[*n] = tokenizer_eot(g->tok);
    g->mask[(*n)++] = m;
}

// The tokens of Example ex, counted into the file's total.
static int64_t example_tokens(const Example *ex) {
    return ex->n_tokens + ex->n_chosen + ex->n_rejected + ex->n_reference;
}

typedef struct {
    Gen *g;
    SynthFile f;
    DatasetWriter *w;
} Out;

static int out_append(Out *o, const Example *ex, char *err, size_t errlen) {
    o->g->st->examples[o->f]++;
    o->g->st->tokens[o->f] += example_tokens(ex);
    return dataset_append(o->w, ex, err, errlen);
}

// lm: each worksheet of the corpus (ending at a blank line), then the end token.
static int lm_write(Out *o, const Text *corpus, char *err, size_t errlen) {
    for (const char *doc = corpus->s; *doc;) {
        const char *end = strstr(doc, "\n\n");
        LC_ASSERT(end != NULL); // corpus_make ends every worksheet with a blank line
        int64_t n = 0;
        ids_add(o->g, &n, doc, (size_t)(end + 1 - doc), 1);
        end_add(o->g, &n, 1);
        Example ex = {.tokens = o->g->ids, .n_tokens = n};
        if (out_append(o, &ex, err, errlen) < 0) return -1;
        doc = end + 2;
    }
    return 0;
}

// sft: the prompt (mask 0), then the correct answer and the end token (mask 1).
static int sft_write(Out *o, char *err, size_t errlen) {
    Gen *g = o->g;
    Rng rng = rng_derive(g->cfg->seed, (uint64_t)o->f);
    for (int64_t i = 0; i < g->cfg->sizes[o->f]; i++) {
        SynthProblem p;
        draw(g, &rng, file_split(o->f), &p);
        int64_t n = 0;
        ids_add(g, &n, p.prompt, strlen(p.prompt), 0);
        ids_add(g, &n, p.answer, strlen(p.answer), 1);
        end_add(g, &n, 1);
        Example ex = {.tokens = g->ids, .n_tokens = n, .loss_mask = g->mask};
        if (out_append(o, &ex, err, errlen) < 0) return -1;
    }
    return 0;
}

// preference: the prompt, and chosen and rejected each followed by the end token.
static int pref_write(Out *o, char *err, size_t errlen) {
    Gen *g = o->g;
    Rng rng = rng_derive(g->cfg->seed, (uint64_t)o->f);
    for (int64_t i = 0; i < g->cfg->sizes[o->f]; i++) {
        SynthProblem p;
        char chosen[RESPONSE_MAX], rejected[RESPONSE_MAX];
        draw(g, &rng, file_split(o->f), &p);
        g->st->swapped[o->f == SYNTH_PREF ? 0 : 1] +=
            pair_make(g, &rng, file_split(o->f), &p, chosen, rejected);
        int64_t n = 0, n_prompt, n_chosen;
        ids_add(g, &n, p.prompt, strlen(p.prompt), 0);
        n_prompt = n;
        ids_add(g, &n, chosen, strlen(chosen), 1);
        end_add(g, &n, 1);
        n_chosen = n - n_prompt;
        ids_add(g, &n, rejected, strlen(rejected), 1);
        end_add(g, &n, 1);
        Example ex = {.tokens = g->ids,
                      .n_tokens = n_prompt,
                      .chosen = g->ids + n_prompt,
                      .n_chosen = n_chosen,
                      .rejected = g->ids + n_prompt + n_chosen,
                      .n_rejected = n - n_prompt - n_chosen};
        if (out_append(o, &ex, err, errlen) < 0) return -1;
    }
    return 0;
}

// prompt: the prompt, with the correct answer as reference tokens (end token included) and
// as reference text.
static int prompts_write(Out *o, char *err, size_t errlen) {
    Gen *g = o->g;
    Rng rng = rng_derive(g->cfg->seed, (uint64_t)o->f);
    for (int64_t i = 0; i < g->cfg->sizes[o->f]; i++) {
        SynthProblem p;
        draw(g, &rng, file_split(o->f), &p);
        int64_t n = 0;
        ids_add(g, &n, p.prompt, strlen(p.prompt), 0);
        int64_t n_prompt = n;
        ids_add(g, &n, p.answer, strlen(p.answer), 0);
        end_add(g, &n, 0);
        Example ex = {.tokens = g->ids,
                      .n_tokens = n_prompt,
                      .reference = g->ids + n_prompt,
                      .n_reference = n - n_prompt,
                      .reference_text = p.answer,
                      .n_reference_text = (int64_t)strlen(p.answer)};
        if (out_append(o, &ex, err, errlen) < 0) return -1;
    }
    return 0;
}

// Writes DIR/<file>.h5 (lm files from their corpus).
static int file_write(Gen *g, SynthFile f, const Text *corpus, char *err, size_t errlen) {
    char *name = str_join(FILES[f].name, ".h5", "");
    char *path = str_join(g->dir, "/", name);
    Out o = {g, f, dataset_create(path, FILES[f].kind, g->st->fingerprint, err, errlen)};
    free(name);
    free(path);
    if (!o.w) return -1;
    int rc = FILES[f].kind == DATA_LM           ? lm_write(&o, corpus, err, errlen)
             : FILES[f].kind == DATA_SFT        ? sft_write(&o, err, errlen)
             : FILES[f].kind == DATA_PREFERENCE ? pref_write(&o, err, errlen)
                                                : prompts_write(&o, err, errlen);
    if (rc < 0) {
        dataset_abort(o.w);
        return -1;
    }
    return dataset_close(o.w, err, errlen);
}

// ---- the world -----------------------------------------------------------------------------

static int config_check(const SynthTask *task, const SynthConfig *cfg, char *err, size_t errlen) {
    if (cfg->difficulty < 1 || cfg->difficulty > task->max_difficulty)
        return lc_error(err, errlen, "%s: difficulty %d is not between 1 and %d", task->name,
                        cfg->difficulty, task->max_difficulty);
    if (!(cfg->wrong_fraction >= 0 && cfg->wrong_fraction <= 1))
        return lc_error(err, errlen, "wrong fraction %g is not between 0 and 1",
                        cfg->wrong_fraction);
    if (!(cfg->label_noise >= 0 && cfg->label_noise <= 1))
        return lc_error(err, errlen, "label noise %g is not between 0 and 1", cfg->label_noise);
    for (int f = 0; f < SYNTH_FILE_COUNT; f++)
        if (cfg->sizes[f] < 0 || cfg->sizes[f] > MAX_EXAMPLES)
            return lc_error(err, errlen, "size of %s %lld is not between 0 and %d", FILES[f].name,
                            (long long)cfg->sizes[f], MAX_EXAMPLES);
    return 0;
}

// Creates dir and any missing parents, as mkdir -p.
static int dir_make(const char *dir, char *err, size_t errlen) {
    char *path = str_join(dir, "", "");
    int rc = 0;
    for (char *c = path + 1; rc == 0; c++) {
        if (*c != '/' && *c != '\0') continue;
        char was = *c;
        *c = '\0';
        struct stat sb;
        if (mkdir(path, 0777) != 0 && !(errno == EEXIST && stat(path, &sb) == 0))
            rc = lc_error(err, errlen, "%s: cannot create the folder: %s", dir, strerror(errno));
        else if (was == '\0' && (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)))
            rc = lc_error(err, errlen, "%s: cannot create the folder: a file of that name exists",
                          dir);
        *c = was;
        if (was == '\0') break;
    }
    free(path);
    return rc;
}

// pretrain.txt, then the tokenizer trained on it (tokenizer.json).
static int tokenizer_make(Gen *g, const Text *corpus, char *err, size_t errlen) {
    char *txt = str_join(g->dir, "/", "pretrain.txt");
    char *json = str_join(g->dir, "/", "tokenizer.json");
    int rc = text_save(corpus, txt, err, errlen);
    if (rc == 0) {
        const char *files[] = {txt};
        g->tok = tokenizer_train(files, 1, VOCAB_SIZE, NULL, 0, err, errlen);
        rc = g->tok ? tokenizer_save(g->tok, json, err, errlen) : -1;
    }
    if (rc == 0) {
        g->st->vocab_size = tokenizer_vocab_size(g->tok);
        g->st->fingerprint = tokenizer_fingerprint(g->tok);
    }
    free(txt);
    free(json);
    return rc;
}

// Writes every file of the world into the folder g->dir.
static int world_write(Gen *g, char *err, size_t errlen) {
    Text corpus[2] = {{0}, {0}};
    int rc = splits_check(g, err, errlen);
    if (rc == 0) {
        corpus[0] = corpus_make(g, SYNTH_PRETRAIN);
        corpus[1] = corpus_make(g, SYNTH_PRETRAIN_VAL);
        rc = tokenizer_make(g, &corpus[0], err, errlen);
    }
    for (int f = 0; f < SYNTH_FILE_COUNT && rc == 0; f++)
        rc = file_write(g, (SynthFile)f, &corpus[f == SYNTH_PRETRAIN ? 0 : 1], err, errlen);
    free(corpus[0].s);
    free(corpus[1].s);
    return rc;
}

// Removes the files a world holds from dir, then dir if that left it empty.
static void world_remove(const char *dir) {
    const char *names[SYNTH_FILE_COUNT + 2] = {"tokenizer.json", "pretrain.txt"};
    char h5[SYNTH_FILE_COUNT][32];
    for (int f = 0; f < SYNTH_FILE_COUNT; f++) {
        snprintf(h5[f], sizeof(h5[f]), "%s.h5", FILES[f].name);
        names[2 + f] = h5[f];
    }
    for (int i = 0; i < SYNTH_FILE_COUNT + 2; i++) {
        char *path = str_join(dir, "/", names[i]);
        remove(path);
        free(path);
    }
    rmdir(dir);
}

// A folder that does not exist yet is built as "<dir>.partial" and renamed when whole, so
// `prepare`, which skips a command whose --out exists, never mistakes a failed world for a
// finished one. In an existing folder each file is replaced whole.
int synth_generate(const SynthTask *task, const SynthConfig *cfg, const char *dir, SynthStats *st,
                   char *err, size_t errlen) {
    double t0 = time_now();
    *st = (SynthStats){0};
    if (*dir == '\0') return lc_error(err, errlen, "the output folder's name is empty");
    struct stat sb;
    bool fresh = stat(dir, &sb) != 0;
    char *work = str_join(dir, fresh ? ".partial" : "", "");
    int rc = config_check(task, cfg, err, errlen);
    if (rc == 0) rc = dir_make(work, err, errlen);
    if (rc == 0) {
        Gen *g = lc_calloc(1, sizeof(*g));
        *g = (Gen){.task = task, .cfg = cfg, .dir = work, .st = st};
        rc = world_write(g, err, errlen);
        tokenizer_free(g->tok);
        free(g);
        if (fresh && rc < 0) world_remove(work);
    }
    if (fresh && rc == 0 && rename(work, dir) != 0)
        rc = lc_error(err, errlen, "%s: cannot rename %s to it: %s", dir, work, strerror(errno));
    free(work);
    st->seconds = time_now() - t0;
    return rc;
}
