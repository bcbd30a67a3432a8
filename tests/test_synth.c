// tests/test_synth.c: the task worlds (data/synth.h): the arithmetic gold reward and exactness
// predicate on hand-computed cases; the task table; the generator (determinism, the
// wrong-answer and label-noise fractions, preference labels by the gold rule, held-out
// validation and evaluation prompts, sft loss masks, every file's kind and tokenizer
// fingerprint, loaders accepting every file); and `layercake data synth` end to end.
#include "data/loader.h"
#include "data/synth.h"
#include "data/tokenizer.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define END "<|endoftext|>"

static const SynthTask *arith;

static double reward(const char *prompt, const char *response) {
    return synth_gold_reward(arith, prompt, strlen(prompt), response, strlen(response));
}

static bool correct(const char *prompt, const char *response) {
    return synth_correct(arith, prompt, strlen(prompt), response, strlen(response));
}

// ---- the gold reward -----------------------------------------------------------------------

typedef struct {
    const char *prompt, *response;
    double reward; // by hand from docs/tasks.md's formula
    bool correct;
} RewardCase;

static const RewardCase CASES[] = {
    // 37+485 = 522
    {"37+485=", " 522" END, 1.0, true},               // exact, one space, stops
    {"37+485=", " 512" END, 0.5 * 2 / 3, false},      // tens wrong: 2 of 3 places
    {"37+485=", " 523" END, 0.5 * 2 / 3, false},      // units off by one
    {"37+485=", " 422" END, 0.5 * 2 / 3, false},      // hundreds off by one
    {"37+485=", " 22" END, 0.5 * 2 / 3, false},       // hundreds dropped: 2 of max(2, 3)
    {"37+485=", " 5220" END, 0.5 * 1 / 4, false},     // digit repeated: places shift
    {"37+485=", " 1022" END, 0.5 * 2 / 4, false},     // a digit too many in front
    {"37+485=", " 0522" END, 0.5 * 3 / 4, false},     // leading zero: not the number
    {"37+485=", " 52222222" END, 0.5 * 2 / 8, false}, // over-long number
    {"37+485=", " 999" END, 0.0, false},              // no digit right
    {"37+485=", " 522", 0.5, false},                  // no end token: ran out of tokens
    {"37+485=", " 522\n12+7= 19" END, 0.5, false},    // keeps writing the worksheet
    {"37+485=", " 522" END "x", 0.5, false},          // text after the end token
    {"37+485=", " 512", 0.5 * 2 / 3 - 0.5, false},    // wrong and no end token
    {"37+485=", "522" END, 0.9, true},                // no leading space
    {"37+485=", "  522" END, 0.9, true},              // two leading spaces
    {"37+485=", " 522 " END, 0.9, true},              // trailing space
    {"37+485=", "522", 1.0 - 0.5 - 0.1, false},       // no space and no end token
    {"37+485=", " 5 22" END, 0.0 - 0.5 - 0.1, false}, // "5", a space, then extra text
    {"37+485=", "" END, -1.0, false},                 // empty answer that stops
    {"37+485=", "", -1.0, false},                     // nothing at all
    {"37+485=", " abc" END, -1.0, false},             // no number
    {"37+485=", " -522" END, -1.0, false},            // no number where one is due
    // 58+67 = 125: carries out of the units and the tens
    {"58+67=", " 125" END, 1.0, true},
    {"58+67=", " 115" END, 0.5 * 2 / 3, false}, // units carry dropped
    {"58+67=", " 25" END, 0.5 * 2 / 3, false},  // tens carry dropped
    {"58+67=", " 15" END, 0.5 * 1 / 3, false},  // both dropped (column sums mod 10)
    // one-digit and zero answers
    {"0+0=", " 0" END, 1.0, true},
    {"0+0=", " 00" END, 0.5 * 1 / 2, false},
    {"3+4=", " 8" END, 0.0, false},
    // prompts that are not the task's
    {"Q: 37+485=", " 522" END, -1.0, false},
    {"37+485= ", " 522" END, -1.0, false},
    {"37-485=", " 522" END, -1.0, false},
    {"1234567890+1=", " 1234567891" END, -1.0, false}, // operands have at most 9 digits
};

START_TEST(test_reward_cases) {
    const RewardCase *c = &CASES[_i];
    double r = reward(c->prompt, c->response);
    ck_assert_msg(fabs(r - c->reward) < 1e-12, "reward of [%s] -> [%s] is %.6f, want %.6f",
                  c->prompt, c->response, r, c->reward);
    ck_assert_msg(correct(c->prompt, c->response) == c->correct, "[%s] -> [%s] correct != %d",
                  c->prompt, c->response, c->correct);
    ck_assert(r >= SYNTH_REWARD_MIN && r <= SYNTH_REWARD_MAX);
}
END_TEST

START_TEST(test_answer) {
    char buf[32];
    ck_assert_int_eq(synth_answer(arith, "37+485=", 7, buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, " 522");
    ck_assert_int_eq(synth_answer(arith, "999999999+999999999=", 20, buf, sizeof(buf)), 11);
    ck_assert_str_eq(buf, " 1999999998");
    ck_assert_int_eq(synth_answer(arith, "007+5=", 6, buf, sizeof(buf)), 3);
    ck_assert_str_eq(buf, " 12");
    ck_assert_int_eq(synth_answer(arith, "37+485=", 7, buf, 4), -1); // no room for the NUL
    ck_assert_int_eq(synth_answer(arith, "37+485", 6, buf, sizeof(buf)), -1);
    ck_assert_int_eq(synth_answer(arith, "+485=", 5, buf, sizeof(buf)), -1);
    ck_assert_int_eq(synth_answer(arith, "", 0, buf, sizeof(buf)), -1);
    // prompt_len counts: the same bytes with a shorter length are another prompt
    ck_assert_int_eq(synth_answer(arith, "37+485=", 6, buf, sizeof(buf)), -1);
}
END_TEST

START_TEST(test_task_table) {
    ck_assert_ptr_null(synth_task_find("geometry"));
    ck_assert_ptr_null(synth_task_find(""));
    ck_assert_str_eq(synth_task_name(arith), "arithmetic");
    // every name the list gives resolves
    char names[256];
    snprintf(names, sizeof(names), "%s", synth_task_names());
    int n = 0;
    for (char *save = NULL, *t = strtok_r(names, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        ck_assert_ptr_nonnull(synth_task_find(t));
        n++;
    }
    ck_assert_int_eq(n, 1);
    const char *files[] = {"pretrain", "pretrain-val", "sft",     "sft-val",
                           "pref",     "pref-val",     "prompts", "eval"};
    const DataKind kinds[] = {DATA_LM,         DATA_LM,         DATA_SFT,    DATA_SFT,
                              DATA_PREFERENCE, DATA_PREFERENCE, DATA_PROMPT, DATA_PROMPT};
    for (int i = 0; i < SYNTH_FILE_COUNT; i++) {
        SynthFile f;
        ck_assert_int_eq(synth_file_parse(files[i], &f), 0);
        ck_assert_int_eq(f, i);
        ck_assert_str_eq(synth_file_name(f), files[i]);
        ck_assert_int_eq(synth_file_kind(f), kinds[i]);
    }
    SynthFile f;
    ck_assert_int_eq(synth_file_parse("pretrain.h5", &f), -1);
    SynthConfig cfg = synth_config_default(arith);
    ck_assert_int_eq(cfg.difficulty, 2);
    ck_assert_double_eq(cfg.wrong_fraction, 0.3);
    ck_assert_double_eq(cfg.label_noise, 0.1);
    ck_assert_int_eq(synth_task_max_difficulty(arith), 9);
    char desc[256];
    synth_task_describe(arith, 2, desc, sizeof(desc));
    ck_assert_msg(strstr(desc, "1 to 2 digits") != NULL, "%s", desc);
}
END_TEST

// Whether a share measured over n draws is within 4 standard deviations of p (exact for p 0, 1).
static bool share_near(double share, double p, int64_t n) {
    return fabs(share - p) <= 4 * sqrt(p * (1 - p) / (double)n) + 1e-12;
}

// ---- generated worlds ----------------------------------------------------------------------

// World A: the default fractions at sizes large enough to measure them. World Z: every
// pretraining answer wrong and no label noise (the extremes hold exactly).
static SynthConfig cfg_a, cfg_z;
static SynthStats st_a, st_z;
static Tokenizer *tok;

static void generate(const char *dir, const SynthConfig *cfg, SynthStats *st) {
    char err[1024];
    if (synth_generate(arith, cfg, test_tmp_path(dir), st, err, sizeof(err)) < 0)
        ck_abort_msg("%s", err);
}

static SynthConfig small_config(void) {
    SynthConfig cfg = synth_config_default(arith);
    const int64_t sizes[SYNTH_FILE_COUNT] = {4000, 400, 300, 100, 3000, 300, 300, 300};
    memcpy(cfg.sizes, sizes, sizeof(sizes));
    cfg.seed = 11;
    cfg.difficulty = 3;
    return cfg;
}

static void worlds_make(void) {
    arith = synth_task_find("arithmetic");
    cfg_a = small_config();
    generate("synth/a", &cfg_a, &st_a);
    cfg_z = small_config();
    cfg_z.wrong_fraction = 1.0;
    cfg_z.label_noise = 0.0;
    cfg_z.difficulty = 2;
    generate("synth/z", &cfg_z, &st_z);
    char err[1024];
    tok = tokenizer_load(test_tmp_path("synth/a/tokenizer.json"), err, sizeof(err));
    if (!tok) ck_abort_msg("%s", err);
}

static void worlds_free(void) {
    tokenizer_free(tok);
}

static char *path_of(const char *world, const char *file) {
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", test_tmp_path(world), file);
    return buf;
}

// Opens and loads world/<file>.h5, checking its kind and the tokenizer's fingerprint.
static Dataset *world_open(const char *world, SynthFile f) {
    char name[64], err[1024];
    snprintf(name, sizeof(name), "%s.h5", synth_file_name(f));
    Dataset *ds = dataset_open(path_of(world, name), synth_file_kind(f), err, sizeof(err));
    ck_assert_msg(ds != NULL, "%s", err);
    ck_assert_msg(dataset_check_fingerprint(ds, tokenizer_fingerprint(tok), err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_msg(dataset_load(ds, tokenizer_vocab_size(tok), err, sizeof(err)) == 0, "%s", err);
    return ds;
}

// The text of ids[0..n), NUL-terminated (the caller frees).
static char *decode(const int *ids, int64_t n) {
    size_t len;
    char *s = tokenizer_decode(tok, ids, (int)n, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s), len);
    return s;
}

static char *file_read(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc(*len + 1);
    ck_assert_uint_eq(fread(s, 1, *len, fp), *len);
    fclose(fp);
    s[*len] = '\0';
    return s;
}

static bool files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = file_read(a, &na), *y = file_read(b, &nb);
    bool eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static const char *const WORLD_FILES[] = {
    "tokenizer.json", "pretrain.txt", "pretrain.h5", "pretrain-val.h5", "sft.h5",
    "sft-val.h5",     "pref.h5",      "pref-val.h5", "prompts.h5",      "eval.h5"};
#define N_WORLD_FILES (sizeof(WORLD_FILES) / sizeof(WORLD_FILES[0]))

START_TEST(test_deterministic) {
    SynthStats st;
    generate("synth/a-again", &cfg_a, &st);
    for (size_t i = 0; i < N_WORLD_FILES; i++) {
        char a[4096];
        snprintf(a, sizeof(a), "%s", path_of("synth/a", WORLD_FILES[i]));
        ck_assert_msg(files_equal(a, path_of("synth/a-again", WORLD_FILES[i])),
                      "%s differs between two runs with seed 11", WORLD_FILES[i]);
    }
    SynthConfig other = cfg_a;
    other.seed = 12;
    generate("synth/a-seed12", &other, &st);
    ck_assert_uint_eq(st.fingerprint, st_a.fingerprint); // bytes only: no merges to differ
    ck_assert(files_equal(path_of("synth/a-seed12", "tokenizer.json"),
                          test_tmp_path("synth/a/tokenizer.json")));
    for (size_t i = 1; i < N_WORLD_FILES; i++) {
        char a[4096];
        snprintf(a, sizeof(a), "%s", path_of("synth/a", WORLD_FILES[i]));
        ck_assert_msg(!files_equal(a, path_of("synth/a-seed12", WORLD_FILES[i])),
                      "%s is the same for seeds 11 and 12", WORLD_FILES[i]);
    }
}
END_TEST

START_TEST(test_tokenizer_bytes) {
    ck_assert_int_eq(tokenizer_vocab_size(tok), 261);
    ck_assert_uint_eq(tokenizer_fingerprint(tok), st_a.fingerprint);
    ck_assert_int_eq(st_a.vocab_size, 261);
    int *ids;
    int n = tokenizer_encode(tok, "37+485= 522\n", 12, 0, &ids);
    ck_assert_int_eq(n, 12); // one token per character: digits never merge
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], (unsigned char)"37+485= 522\n"[i]);
    free(ids);
}
END_TEST

// Checks an lm file: worksheets of at most 8 lines "PROMPT ANSWER\n" then the end token; counts
// problems and wrong answers (by the gold rule), and collects the prompts.
static void lm_check(const Dataset *ds, int64_t *problems, int64_t *wrong, char ***prompts,
                     int64_t *n_prompts) {
    *problems = *wrong = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        Example ex = dataset_example(ds, i);
        ck_assert_int_eq(ex.tokens[ex.n_tokens - 1], tokenizer_eot(tok));
        char *doc = decode(ex.tokens, ex.n_tokens - 1);
        int lines = 0;
        for (char *line = doc, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1, lines++) {
            char *eq = strchr(line, '=');
            ck_assert_msg(eq && eq < nl, "line without '=' in document %lld", (long long)i);
            char prompt[64], response[128];
            snprintf(prompt, sizeof(prompt), "%.*s", (int)(eq + 1 - line), line);
            snprintf(response, sizeof(response), "%.*s" END, (int)(nl - eq - 1), eq + 1);
            ck_assert_msg(reward(prompt, response) >= 0, "not a number that stops: %s", line);
            *wrong += !correct(prompt, response);
            (*prompts)[(*n_prompts)++] = strdup(prompt);
        }
        ck_assert_msg(doc[strlen(doc) - 1] == '\n' && lines >= 1 && lines <= 8, "document %s", doc);
        *problems += lines;
        free(doc);
    }
}

START_TEST(test_wrong_fraction) {
    const char *world[] = {"synth/a", "synth/z"};
    const SynthConfig *cfg[] = {&cfg_a, &cfg_z};
    const SynthStats *st[] = {&st_a, &st_z};
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 2; k++) {
            Dataset *ds = world_open(world[w], k == 0 ? SYNTH_PRETRAIN : SYNTH_PRETRAIN_VAL);
            int64_t problems, wrong, n = 0;
            char **prompts = malloc(sizeof(char *) * 5000);
            lm_check(ds, &problems, &wrong, &prompts, &n);
            ck_assert_int_eq(problems, cfg[w]->sizes[k == 0 ? SYNTH_PRETRAIN : SYNTH_PRETRAIN_VAL]);
            ck_assert_int_eq(problems, st[w]->problems[k]);
            ck_assert_int_eq(wrong, st[w]->wrong[k]);
            ck_assert_int_eq(ds->n, (problems + 7) / 8);
            double frac = (double)wrong / (double)problems;
            ck_assert_msg(share_near(frac, cfg[w]->wrong_fraction, problems),
                          "%s: %.3f of the answers are wrong, asked for %.3f", world[w], frac,
                          cfg[w]->wrong_fraction);
            for (int64_t i = 0; i < n; i++) free(prompts[i]);
            free(prompts);
            dataset_free(ds);
        }
}
END_TEST

START_TEST(test_pref_labels) {
    const char *world[] = {"synth/a", "synth/z"};
    const SynthConfig *cfg[] = {&cfg_a, &cfg_z};
    const SynthStats *st[] = {&st_a, &st_z};
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 2; k++) {
            Dataset *ds = world_open(world[w], k == 0 ? SYNTH_PREF : SYNTH_PREF_VAL);
            int64_t swapped = 0, chosen_correct = 0;
            for (int64_t i = 0; i < ds->n; i++) {
                Example ex = dataset_example(ds, i);
                char *p = decode(ex.tokens, ex.n_tokens), *c = decode(ex.chosen, ex.n_chosen),
                     *r = decode(ex.rejected, ex.n_rejected);
                double rc = reward(p, c), rr = reward(p, r);
                ck_assert_msg(rc != rr, "pair %lld [%s] [%s] [%s] is a tie", (long long)i, p, c, r);
                swapped += rc < rr;
                chosen_correct += correct(p, c);
                ck_assert_int_eq(ex.chosen[ex.n_chosen - 1], tokenizer_eot(tok));
                ck_assert_int_eq(ex.rejected[ex.n_rejected - 1], tokenizer_eot(tok));
                free(p), free(c), free(r);
            }
            ck_assert_int_eq(ds->n, cfg[w]->sizes[k == 0 ? SYNTH_PREF : SYNTH_PREF_VAL]);
            ck_assert_int_eq(swapped, st[w]->swapped[k]);
            double frac = (double)swapped / (double)ds->n;
            ck_assert_msg(share_near(frac, cfg[w]->label_noise, ds->n),
                          "%s: %.3f of the pairs are swapped, asked for %.3f", world[w], frac,
                          cfg[w]->label_noise);
            // three pairs in four set the correct answer against a flawed one; a swap makes
            // the flawed one chosen (docs/tasks.md)
            double good = (double)chosen_correct / (double)ds->n;
            double want = 0.75 * (1 - cfg[w]->label_noise);
            ck_assert_msg(share_near(good, want, ds->n), "%s: %.3f of chosen responses are correct",
                          world[w], good);
            dataset_free(ds);
        }
}
END_TEST

START_TEST(test_sft_masks) {
    const SynthFile files[] = {SYNTH_SFT, SYNTH_SFT_VAL};
    for (int k = 0; k < 2; k++) {
        Dataset *ds = world_open("synth/a", files[k]);
        ck_assert_int_eq(ds->n, cfg_a.sizes[files[k]]);
        for (int64_t i = 0; i < ds->n; i++) {
            Example ex = dataset_example(ds, i);
            int64_t start = 0;
            while (start < ex.n_tokens && ex.loss_mask[start] == 0) start++;
            for (int64_t t = start; t < ex.n_tokens; t++) ck_assert_int_eq(ex.loss_mask[t], 1);
            char *p = decode(ex.tokens, start), *r = decode(ex.tokens + start, ex.n_tokens - start);
            char answer[64], want[128];
            ck_assert_int_gt(synth_answer(arith, p, strlen(p), answer, sizeof(answer)), 0);
            snprintf(want, sizeof(want), "%s" END, answer);
            ck_assert_str_eq(r, want); // the trained tokens are the answer and the end token
            free(p), free(r);
        }
        dataset_free(ds);
    }
}
END_TEST

START_TEST(test_prompt_references) {
    const SynthFile files[] = {SYNTH_PROMPTS, SYNTH_EVAL};
    for (int k = 0; k < 2; k++) {
        Dataset *ds = world_open("synth/a", files[k]);
        ck_assert_int_eq(ds->n, cfg_a.sizes[files[k]]);
        for (int64_t i = 0; i < ds->n; i++) {
            Example ex = dataset_example(ds, i);
            char *p = decode(ex.tokens, ex.n_tokens), *r = decode(ex.reference, ex.n_reference);
            char answer[64], want[128];
            ck_assert_int_gt(synth_answer(arith, p, strlen(p), answer, sizeof(answer)), 0);
            ck_assert_int_eq(ex.n_reference_text, (int64_t)strlen(answer));
            ck_assert(memcmp(ex.reference_text, answer, strlen(answer)) == 0);
            snprintf(want, sizeof(want), "%s" END, answer);
            ck_assert_str_eq(r, want);
            ck_assert(correct(p, r));
            free(p), free(r);
        }
        dataset_free(ds);
    }
}
END_TEST

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// The prompts of every example of world a's file f appended to set.
static void prompts_collect(SynthFile f, char **set, int64_t *n) {
    Dataset *ds = world_open("synth/a", f);
    if (synth_file_kind(f) == DATA_LM) {
        int64_t problems, wrong;
        lm_check(ds, &problems, &wrong, &set, n);
    } else {
        for (int64_t i = 0; i < ds->n; i++) {
            Example ex = dataset_example(ds, i);
            int64_t len = ex.n_tokens; // sft: the prompt is what the mask leaves untrained
            if (ds->kind == DATA_SFT)
                for (len = 0; ex.loss_mask[len] == 0;) len++;
            set[(*n)++] = decode(ex.tokens, len);
        }
    }
    dataset_free(ds);
}

// Counts the prompts of file f found in the sorted set.
static int64_t prompts_found(SynthFile f, char **set, int64_t n_set) {
    char **mine = malloc(sizeof(char *) * 5000);
    int64_t n = 0, found = 0;
    prompts_collect(f, mine, &n);
    for (int64_t i = 0; i < n; i++) {
        found += bsearch(&mine[i], set, (size_t)n_set, sizeof(char *), str_cmp) != NULL;
        free(mine[i]);
    }
    free(mine);
    return found;
}

START_TEST(test_held_out) {
    const SynthFile train[] = {SYNTH_PRETRAIN, SYNTH_SFT, SYNTH_PREF, SYNTH_PROMPTS};
    const SynthFile val[] = {SYNTH_PRETRAIN_VAL, SYNTH_SFT_VAL, SYNTH_PREF_VAL};
    char **set = malloc(sizeof(char *) * 20000);
    int64_t n = 0;
    for (int i = 0; i < 4; i++) prompts_collect(train[i], set, &n);
    ck_assert_int_eq(n, 4000 + 300 + 3000 + 300);
    qsort(set, (size_t)n, sizeof(char *), str_cmp);
    ck_assert_int_eq(prompts_found(SYNTH_EVAL, set, n), 0);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(prompts_found(val[i], set, n), 0);
    // and the check can fail: training prompts are found in the set
    ck_assert_int_eq(prompts_found(SYNTH_SFT, set, n), 300);
    for (int64_t i = 0; i < n; i++) free(set[i]);
    n = 0;
    for (int i = 0; i < 3; i++) prompts_collect(val[i], set, &n);
    qsort(set, (size_t)n, sizeof(char *), str_cmp);
    ck_assert_int_eq(prompts_found(SYNTH_EVAL, set, n), 0);
    for (int64_t i = 0; i < n; i++) free(set[i]);
    free(set);
}
END_TEST

START_TEST(test_loaders_accept) {
    char err[1024];
    for (int f = 0; f < SYNTH_FILE_COUNT; f++) {
        char name[64];
        snprintf(name, sizeof(name), "%s.h5", synth_file_name(f));
        LoaderOptions o = {.batch = 4,
                           .T = 64,
                           .world = 1,
                           .shuffle = 1,
                           .vocab_size = tokenizer_vocab_size(tok),
                           .fingerprint = tokenizer_fingerprint(tok)};
        Loader *l = loader_open(path_of("synth/a", name), synth_file_kind(f), &o, err, sizeof(err));
        ck_assert_msg(l != NULL, "%s", err);
        Batch b;
        ck_assert_int_eq(loader_next(l, &b), 4);
        ck_assert_int_eq(loader_dropped(l), 0);
        loader_free(l);
    }
    for (int f = 0; f < SYNTH_FILE_COUNT; f++) ck_assert_int_gt(st_a.tokens[f], 0);
    ck_assert_int_eq(st_a.examples[SYNTH_PRETRAIN], 500);
}
END_TEST

START_TEST(test_config_errors) {
    SynthConfig cfg = small_config();
    SynthStats st;
    char err[1024];
    cfg.difficulty = 10;
    ck_assert_int_eq(synth_generate(arith, &cfg, test_tmp_path("synth/bad"), &st, err, 1024), -1);
    ck_assert_msg(strstr(err, "difficulty 10") != NULL, "%s", err);
    cfg = small_config();
    cfg.label_noise = NAN;
    ck_assert_int_eq(synth_generate(arith, &cfg, test_tmp_path("synth/bad"), &st, err, 1024), -1);
    ck_assert_msg(strstr(err, "label noise") != NULL, "%s", err);
    cfg = small_config();
    cfg.sizes[SYNTH_PREF] = -1;
    ck_assert_int_eq(synth_generate(arith, &cfg, test_tmp_path("synth/bad"), &st, err, 1024), -1);
    ck_assert_msg(strstr(err, "pref") != NULL, "%s", err);
    // a folder that cannot be made: its parent is a file
    cfg = small_config();
    const char *dir = path_of("synth/a", "pretrain.txt/world");
    ck_assert_int_eq(synth_generate(arith, &cfg, dir, &st, err, 1024), -1);
    ck_assert_msg(strstr(err, dir) != NULL, "error '%s' does not name %s", err, dir);
}
END_TEST

// An empty world (every size 0) is written whole, and the smallest difficulty holds out
// problems of every split.
START_TEST(test_edge_worlds) {
    SynthConfig cfg = small_config();
    memset(cfg.sizes, 0, sizeof(cfg.sizes));
    SynthStats st;
    generate("synth/empty", &cfg, &st);
    Dataset *ds = world_open("synth/empty", SYNTH_PRETRAIN);
    ck_assert_int_eq(ds->n, 0);
    dataset_free(ds);
    cfg = small_config();
    cfg.difficulty = 1;
    generate("synth/d1", &cfg, &st);
    ck_assert_int_eq(st.examples[SYNTH_EVAL], 300);
}
END_TEST

// A new world appears whole or not at all; an existing folder gets its files replaced.
START_TEST(test_atomic_world) {
    SynthConfig cfg = small_config();
    memset(cfg.sizes, 0, sizeof(cfg.sizes));
    cfg.sizes[SYNTH_PREF] = 10;
    SynthStats st;
    struct stat sb;
    generate("synth/fresh", &cfg, &st);
    ck_assert_int_eq(stat(test_tmp_path("synth/fresh.partial"), &sb), -1);
    ck_assert_int_eq(stat(path_of("synth/fresh", "pref.h5"), &sb), 0);
    // in place: the existing folder's files are replaced
    cfg.sizes[SYNTH_PREF] = 20;
    generate("synth/fresh", &cfg, &st);
    Dataset *ds = world_open("synth/fresh", SYNTH_PREF);
    ck_assert_int_eq(ds->n, 20);
    dataset_free(ds);
    // a failure while building a new world (pref.h5 cannot be renamed over a folder) leaves
    // neither the world nor its partial folder
    ck_assert_int_eq(mkdir(test_tmp_path("synth/failed.partial"), 0777), 0);
    ck_assert_int_eq(mkdir(test_tmp_path("synth/failed.partial/pref.h5"), 0777), 0);
    char err[1024];
    ck_assert_int_eq(synth_generate(arith, &cfg, test_tmp_path("synth/failed"), &st, err, 1024),
                     -1);
    ck_assert_msg(strstr(err, "pref.h5") != NULL, "%s", err);
    ck_assert_int_eq(stat(test_tmp_path("synth/failed"), &sb), -1);
    ck_assert_int_eq(stat(test_tmp_path("synth/failed.partial"), &sb), -1);
}
END_TEST

// ---- the command ---------------------------------------------------------------------------

// Runs layercake with args; returns its exit status, with stdout and stderr in *out.
static int run_layercake(const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s/layercake %s 2>&1", LC_BINARY_DIR, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    while ((k = fread(buf + n, 1, cap - 1 - n, p)) > 0) n += k;
    buf[n] = '\0';
    int status = pclose(p);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect(const char *args, int status, const char *want) {
    char *out;
    int got = run_layercake(args, &out);
    ck_assert_msg(got == status, "'layercake %s' exited %d, not %d:\n%s", args, got, status, out);
    ck_assert_msg(strstr(out, want) != NULL, "'layercake %s' printed no '%s':\n%s", args, want,
                  out);
    free(out);
}

START_TEST(test_cli) {
    char args[8192];
    const char *dir = test_tmp_path("synth/cli");
    snprintf(args, sizeof(args),
             "data synth --task arithmetic --out %s --seed 5 --difficulty 2 --label-noise 0.2 "
             "--wrong-fraction 0.5 --sizes pretrain=800,sft=100,pref=200,prompts=50,eval=40",
             dir);
    expect(args, 0, "eval.h5: 40 examples");
    expect(args, 0, "pretrain.h5: 100 documents");
    expect(args, 0, "addition of two numbers of 1 to 2 digits");
    // the files are those the library writes with the same settings
    SynthConfig cfg = synth_config_default(arith);
    cfg.seed = 5, cfg.difficulty = 2, cfg.label_noise = 0.2, cfg.wrong_fraction = 0.5;
    cfg.sizes[SYNTH_PRETRAIN] = 800, cfg.sizes[SYNTH_SFT] = 100, cfg.sizes[SYNTH_PREF] = 200;
    cfg.sizes[SYNTH_PROMPTS] = 50, cfg.sizes[SYNTH_EVAL] = 40;
    SynthStats st;
    generate("synth/cli-lib", &cfg, &st);
    for (size_t i = 0; i < N_WORLD_FILES; i++) {
        char a[4096];
        snprintf(a, sizeof(a), "%s", path_of("synth/cli", WORLD_FILES[i]));
        ck_assert_msg(files_equal(a, path_of("synth/cli-lib", WORLD_FILES[i])), "%s differs",
                      WORLD_FILES[i]);
    }
    snprintf(args, sizeof(args), "data info %s/eval.h5 --json", dir);
    expect(args, 0, "\"kind\":\"prompt\",\"examples\":40");

    expect("data synth --help", 0, "--wrong-fraction");
    expect("data --help", 0, "synth");
    expect("data synth --out x", 2, "needs --task and --out");
    expect("data synth --task arithmetic", 2, "needs --task and --out");
    expect("data synth --task algebra --out x", 2, "unknown task 'algebra' (tasks: arithmetic)");
    expect("data synth --task arithmetic --out x extra", 2, "takes no other arguments");
    expect("data synth --task arithmetic --out x --frobnicate", 2, "--frobnicate");
    expect("data synth --task arithmetic --out x --sizes sft=10,val=3", 2, "'val=3'");
    expect("data synth --task arithmetic --out x --sizes sft=-1", 2, "'sft=-1'");
    expect("data synth --task arithmetic --out x --sizes sft", 2, "'sft'");
    expect("data synth --task arithmetic --out x --seed x1", 2, "--seed");
    expect("data synth --task arithmetic --out x --wrong-fraction 1.5", 2, "--wrong-fraction");
    expect("data synth --task arithmetic --out x --label-noise -0.1", 2, "--label-noise");
    expect("data synth --task arithmetic --out x --difficulty 0", 2, "--difficulty");
    expect("data synth --task arithmetic --out x --difficulty 10", 2, "--difficulty");
    snprintf(args, sizeof(args), "data synth --task arithmetic --out %s/tokenizer.json/w", dir);
    expect(args, 1, "tokenizer.json/w.partial: cannot create the folder");
    expect("data synth --task arithmetic --out ''", 1, "the output folder's name is empty");
}
END_TEST

int main(void) {
    arith = synth_task_find("arithmetic");
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("reward");
    tcase_add_loop_test(tc, test_reward_cases, 0, sizeof(CASES) / sizeof(CASES[0]));
    tcase_add_test(tc, test_answer);
    tcase_add_test(tc, test_task_table);
    suite_add_tcase(s, tc);
    tc = tcase_create("generator");
    tcase_add_unchecked_fixture(tc, worlds_make, worlds_free);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_tokenizer_bytes);
    tcase_add_test(tc, test_wrong_fraction);
    tcase_add_test(tc, test_pref_labels);
    tcase_add_test(tc, test_sft_masks);
    tcase_add_test(tc, test_prompt_references);
    tcase_add_test(tc, test_held_out);
    tcase_add_test(tc, test_loaders_accept);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_edge_worlds);
    tcase_add_test(tc, test_atomic_world);
    tcase_add_test(tc, test_cli);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
