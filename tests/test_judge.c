// tests/test_judge.c: the judges of train/stages/judge.h on hand-made responses, each opened
// from a one-stage recipe (an eval stage on a tiny arithmetic world the test generates):
// gold on a right and a wrong answer; match exactly and normalised, with and without a capture
// group, without a match and without a reference; the reward model against reward_scores on the
// same rows; command judges (tests/fixtures/judge/*.sh) that answer, time out, exit, stop early
// and print a word; the LLM judge against log-softmax differences computed from the model's
// own forward, and its pairwise preferences; and an eval stage whose command judge fails.
#include "common/timer.h"
#include "data/synth.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"
#include "train/recipe/recipe.h"
#include "train/run/run.h"
#include "train/stages/judge.h"
#include "train/stages/readouts.h"
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIXTURES LC_SOURCE_DIR "/tests/fixtures/judge"
#define SEQ      48 // the stage's seq_len
#define END      "<|endoftext|>"

static char dir[1024], world[1100], lm_h5[1200], rm_h5[1200];

// A recipe, its run and its one stage, opened from stage keys.
typedef struct {
    Recipe r;
    Run run;
    StageRun sr;
} Env;

static void save_random(const char *path, int heads, uint64_t seed) {
    char err[1024];
    char tok_path[1200];
    snprintf(tok_path, sizeof(tok_path), "%s/tokenizer.json", world);
    Tokenizer *tok = tokenizer_load(tok_path, err, sizeof(err));
    ck_assert_msg(tok, "%s", err);
    ModelConfig c = GPT2_CONFIG(1, 2, 16, tokenizer_vocab_size(tok), 64);
    tokenizer_free(tok);
    Model *m = model_create(backend_cpu(), c, heads, MODEL_INFER, 1, 1);
    model_init_weights(m, seed);
    ck_assert_msg(model_save(m, path, err, sizeof(err)) == 0, "%s", err);
    model_free(m);
}

static void setup(void) {
    snprintf(dir, sizeof(dir), "%s", test_tmp_path("judge"));
    char cmd[5000];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp %s/length.sh %s/", dir, dir,
             FIXTURES, dir);
    ck_assert(system(cmd) == 0);
    // the arithmetic world of tests/fixtures/run/*.yaml's prepare commands (docs/tasks.md)
    const SynthTask *task = synth_task_find("arithmetic");
    SynthConfig sc = synth_config_default(task);
    for (int f = 0; f < SYNTH_FILE_COUNT; f++) sc.sizes[f] = 0;
    sc.sizes[SYNTH_PROMPTS] = 200;
    sc.sizes[SYNTH_EVAL] = 50;
    SynthStats st;
    char err[1024];
    snprintf(world, sizeof(world), "%s/world", dir);
    ck_assert_msg(synth_generate(task, &sc, world, &st, err, sizeof(err)) == 0, "%s", err);
    snprintf(lm_h5, sizeof(lm_h5), "%s/lm.h5", dir);
    snprintf(rm_h5, sizeof(rm_h5), "%s/rm.h5", dir);
    save_random(lm_h5, MODEL_HEAD_LM, 7);
    save_random(rm_h5, MODEL_HEAD_SCALAR, 8);
}

// Writes a recipe of the world's tokenizer with one stage (a YAML flow map's entries).
static void recipe_write_stage(const char *path, const char *stage) {
    FILE *f = fopen(path, "w");
    ck_assert(f);
    fprintf(f,
            "name: judge\nseed: 3\nthreads: 1\noutput_dir: %s/runs\n"
            "tokenizer: %s/tokenizer.json\n"
            "model: {n_layer: 1, n_head: 2, d_model: 16, max_seq_len: 64}\nstages:\n"
            "  - {%s}\n",
            dir, world, stage);
    ck_assert(fclose(f) == 0);
}

// A recipe whose one eval stage has the given keys.
static void recipe_write(const char *path, const char *keys) {
    char stage[8192];
    snprintf(stage, sizeof(stage),
             "name: eval, kind: eval, models: [%s], reference_model: %s, "
             "data: {prompts: %s/eval.h5}, seq_len: %d, bootstrap: 10, "
             "rollout: {batch: 6, group_size: 3, max_new_tokens: 6}, %s",
             lm_h5, lm_h5, world, SEQ, keys);
    recipe_write_stage(path, stage);
}

static void env_open(Env *e, const char *keys) {
    char path[1200], err[2048];
    snprintf(path, sizeof(path), "%s/recipe.yaml", dir);
    recipe_write(path, keys);
    ck_assert_msg(recipe_load(path, NULL, 0, &e->r, err, sizeof(err)) == RECIPE_OK, "%s", err);
    ck_assert(run_open(&e->run, &e->r) == 0);
    e->sr = (StageRun){.run = &e->run, .stage = &e->r.stages[0], .index = 0};
    snprintf(e->sr.dir, sizeof(e->sr.dir), "%s/runs/eval", dir);
}

static void env_close(Env *e) {
    run_close(&e->run);
    recipe_free(&e->r);
}

// ---- stderr capture ---------------------------------------------------------------------------

static int saved_stderr = -1;

static void capture_begin(void) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/stderr.txt", dir);
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(fd >= 0 && saved_stderr >= 0);
    dup2(fd, 2);
    close(fd);
}

// What was printed to stderr since capture_begin (malloc'd).
static char *capture_end(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    char path[1200];
    snprintf(path, sizeof(path), "%s/stderr.txt", dir);
    FILE *f = fopen(path, "r");
    ck_assert(f);
    char *text = NULL;
    size_t cap = 0;
    if (getdelim(&text, &cap, '\0', f) < 0) text = calloc(1, 1);
    fclose(f);
    return text;
}

static void assert_has(const char *text, const char *fragment) {
    ck_assert_msg(strstr(text, fragment), "message\n  %s\nlacks\n  %s", text, fragment);
}

// ---- gold ---------------------------------------------------------------------------------------

START_TEST(test_gold) {
    Env e;
    env_open(&e, "gold_reward: arithmetic");
    Judge *j = judge_open(&e.sr, 4, SEQ);
    ck_assert(j);
    ck_assert(judge_knows_correct(j));
    ck_assert_str_eq(judge_name(j), "gold arithmetic");
    // the response with its end token, as text; and as ids, the text without it
    int *ids = NULL, n = tokenizer_encode(e.run.tok, " 522" END, strlen(" 522" END), 1, &ids);
    JudgeItem it[3] = {
        {.prompt = "37+485=", .response = " 522" END},
        {.prompt = "37+485=", .response = " 999" END},
        {.prompt = "37+485=", .response = " 522", .response_ids = ids, .response_len = n}};
    double s[3], c[3];
    ck_assert_int_eq(judge_score(j, it, 3, 1, s, c), 0);
    const SynthTask *task = synth_task_find("arithmetic");
    double want_wrong = synth_gold_reward(task, "37+485=", 7, " 999" END, strlen(" 999" END));
    ck_assert_double_eq_tol(s[0], SYNTH_REWARD_MAX, 1e-12);
    ck_assert_double_eq(c[0], 1.0);
    ck_assert_double_eq_tol(s[1], want_wrong, 1e-12);
    ck_assert(s[1] < 0.5);
    ck_assert_double_eq(c[1], 0.0);
    ck_assert_double_eq_tol(s[2], SYNTH_REWARD_MAX, 1e-12); // decoded with its end token
    double p;
    ck_assert_int_eq(judge_prefer(j, &it[0], &it[1], &p), 0);
    ck_assert_double_eq(p, 1.0);
    free(ids);
    judge_close(j);
    env_close(&e);
}
END_TEST

// ---- match --------------------------------------------------------------------------------------

// Scores response against reference with a match judge of the given keys.
static double match_one(const char *keys, const char *response, const char *reference) {
    Env e;
    char k[512];
    snprintf(k, sizeof(k), "judge: {kind: match, %s}", keys);
    env_open(&e, k);
    Judge *j = judge_open(&e.sr, 2, SEQ);
    ck_assert(j);
    ck_assert(judge_knows_correct(j));
    JudgeItem it = {.prompt = "p", .response = response, .reference = reference};
    double s = -1, c = -1;
    ck_assert_int_eq(judge_score(j, &it, 1, 1, &s, &c), 0);
    ck_assert_double_eq(s, c);
    judge_close(j);
    env_close(&e);
    return s;
}

START_TEST(test_match) {
    const char *group = "regex: 'answer: *(\\S+)'", *whole = "regex: '[0-9]+'";
    // a capture group: its text is the answer
    ck_assert_double_eq(match_one(group, "so the answer: 42.", "42"), 1.0);
    ck_assert_double_eq(match_one(group, "the answer: 41", "42"), 0.0);
    char exact[128];
    snprintf(exact, sizeof(exact), "%s, normalize: false", group);
    ck_assert_double_eq(match_one(exact, "the answer: 42.", "42"), 0.0); // the "."
    ck_assert_double_eq(match_one(exact, "the answer: 42", "42"), 1.0);
    // no group: the whole match
    ck_assert_double_eq(match_one(whole, "I think 1022 is it", "1022"), 1.0);
    ck_assert_double_eq(match_one(whole, "I think 1023 is it", "1022"), 0.0);
    // no regex: the whole response, normalised (case, spaces, trailing punctuation)
    ck_assert_double_eq(match_one("regex: ''", "  Forty   TWO!? ", "forty two"), 1.0);
    ck_assert_double_eq(match_one("regex: '', normalize: false", " forty two", "forty two"), 0.0);
    // no match
    ck_assert_double_eq(match_one(group, "no idea", "42"), 0.0);
    ck_assert_double_eq(match_one(whole, "no digits here", "42"), 0.0);
}
END_TEST

START_TEST(test_match_no_reference) {
    Env e;
    env_open(&e, "judge: {kind: match}");
    Judge *j = judge_open(&e.sr, 2, SEQ);
    ck_assert(j);
    JudgeItem it = {.prompt = "12+7=", .response = " 19"};
    double s;
    capture_begin();
    int rc = judge_score(j, &it, 1, 1, &s, NULL);
    char *msg = capture_end();
    ck_assert_int_eq(rc, -1);
    assert_has(msg, "eval.judge.kind: match needs the prompt's reference answer; prompt \"12+7=\"");
    assert_has(msg, "eval.h5) has none");
    free(msg);
    judge_close(j);
    env_close(&e);
}
END_TEST

// ---- reward model -------------------------------------------------------------------------------

START_TEST(test_reward_model) {
    Env e;
    char keys[1400];
    snprintf(keys, sizeof(keys), "reward_model: %s", rm_h5);
    env_open(&e, keys);
    Judge *j = judge_open(&e.sr, 3, SEQ);
    ck_assert(j);
    ck_assert(!judge_knows_correct(j));
    const Tokenizer *tok = e.run.tok;
    int eot = tokenizer_eot(tok);
    const char *prompts[3] = {"37+485=", "1+2=", "90+9="}, *resp[3] = {" 522", " 3", " 99 9"};
    int *p[3], *r[3], pn[3], rn[3];
    JudgeItem it[3];
    for (int i = 0; i < 3; i++) {
        pn[i] = tokenizer_encode(tok, prompts[i], strlen(prompts[i]), 0, &p[i]);
        int *ids = NULL, n = tokenizer_encode(tok, resp[i], strlen(resp[i]), 0, &ids);
        r[i] = malloc(sizeof(int) * (size_t)(n + 1));
        memcpy(r[i], ids, sizeof(int) * (size_t)n);
        free(ids);
        if (i != 1) r[i][n++] = eot; // the second ran out of tokens: no end token
        rn[i] = n;
        it[i] = (JudgeItem){.prompt = prompts[i],
                            .response = resp[i],
                            .prompt_ids = p[i],
                            .prompt_len = pn[i],
                            .response_ids = r[i],
                            .response_len = rn[i]};
    }
    double s[3], c[3];
    ck_assert_int_eq(judge_score(j, it, 3, 1, s, c), 0);
    // reward_scores on rows prompt + response without the end token
    Model *rm = stage_model(&e.sr, rm_h5, 0, MODEL_INFER, 3, SEQ);
    ck_assert(rm);
    int tokens[3 * SEQ] = {0}, len[3];
    for (int i = 0; i < 3; i++) {
        int keep = rn[i] - (r[i][rn[i] - 1] == eot);
        memcpy(tokens + i * SEQ, p[i], sizeof(int) * (size_t)pn[i]);
        memcpy(tokens + i * SEQ + pn[i], r[i], sizeof(int) * (size_t)keep);
        len[i] = pn[i] + keep;
    }
    Batch b = {.B = 3, .T = SEQ, .tokens = tokens, .len = len};
    float want[3];
    reward_scores(rm, &b, want);
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(s[i], want[i], 1e-6);
        ck_assert(isnan(c[i]));
    }
    ck_assert(fabs(s[0] - s[1]) > 1e-6); // distinct rows score apart
    model_free(rm);
    for (int i = 0; i < 3; i++) free(p[i]), free(r[i]);
    judge_close(j);
    env_close(&e);
}
END_TEST

// ---- command ------------------------------------------------------------------------------------

// Opens a command judge running cmd with a 1 s timeout.
static Judge *command_open(Env *e, const char *cmd) {
    char keys[1200];
    snprintf(keys, sizeof(keys), "judge: {kind: command, command: '%s', timeout: 1}", cmd);
    env_open(e, keys);
    Judge *j = judge_open(&e->sr, 4, SEQ);
    ck_assert(j);
    return j;
}

static const JudgeItem ITEMS[3] = {
    {.prompt = "1+1=", .response = " 2"},
    {.prompt = "1+1=", .response = " two"},
    {.prompt = "3+4=", .response = " seven, I think", .reference = " 7"},
};

START_TEST(test_command_scores) {
    Env e;
    Judge *j = command_open(&e, "sh ./length.sh"); // relative: run from the recipe's folder
    ck_assert_str_eq(judge_name(j), "command sh ./length.sh");
    double s[3], c[3];
    for (int call = 0; call < 2; call++) { // the program stays up between calls
        ck_assert_int_eq(judge_score(j, ITEMS + call, 3 - call, 1, s, c), 0);
        for (int i = 0; i < 3 - call; i++) {
            ck_assert_double_eq(s[i], (double)strlen(ITEMS[call + i].response));
            ck_assert(isnan(c[i]));
        }
    }
    judge_close(j);
    env_close(&e);
}
END_TEST

// judge_score with the fixture script fails in under `seconds` with every fragment printed.
static void command_fails(const char *script, double seconds, const char *const *fragments) {
    Env e;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "sh %s/%s", FIXTURES, script);
    Judge *j = command_open(&e, cmd);
    double s[3], t0 = time_now();
    capture_begin();
    int rc = judge_score(j, ITEMS, 3, 1, s, NULL);
    char *msg = capture_end();
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(time_now() - t0 < seconds, "%s took %.1f s", script, time_now() - t0);
    assert_has(msg, "eval.judge.command: '");
    assert_has(msg, cmd);
    for (int k = 0; fragments[k]; k++) assert_has(msg, fragments[k]);
    free(msg);
    capture_begin(); // and it is stopped: a later call fails at once
    rc = judge_score(j, ITEMS, 1, 1, s, NULL);
    msg = capture_end();
    ck_assert_int_eq(rc, -1);
    assert_has(msg, "is not running");
    free(msg);
    judge_close(j);
    env_close(&e);
}

START_TEST(test_command_timeout) {
    command_fails("sleep.sh", 3.0, (const char *const[]){"timed out after 1s", NULL});
}
END_TEST

START_TEST(test_command_exit) {
    command_fails("exit3.sh", 1.5, (const char *const[]){"exited with status 3", NULL});
}
END_TEST

START_TEST(test_command_short) {
    command_fails("short.sh", 1.5, (const char *const[]){"printed only 1 of 3 lines", NULL});
}
END_TEST

START_TEST(test_command_word) {
    command_fails("word.sh", 1.5,
                  (const char *const[]){"line 1 of 3: \"good\" is not a number", NULL});
}
END_TEST

// ---- the LLM judge ------------------------------------------------------------------------------

// log p(v0) - log p(v1) of lm after text, from one forward of its own per verdict.
static double by_hand(const Env *e, Model *lm, const char *text, int v0, int v1) {
    int *ids = NULL, n = tokenizer_encode(e->run.tok, text, strlen(text), 1, &ids);
    ck_assert(n > 0 && n <= 64);
    double lp[2];
    for (int k = 0; k < 2; k++) {
        int targets[64];
        float mask[64] = {0};
        for (int t = 0; t < n; t++) targets[t] = -1;
        targets[n - 1] = k == 0 ? v0 : v1;
        mask[n - 1] = 1;
        Batch b = {.B = 1, .T = n, .tokens = ids, .targets = targets, .mask = mask, .len = &n};
        model_forward(lm, &b, 1.0f);
        lp[k] = lm->host_logp[n - 1];
    }
    free(ids);
    return lp[0] - lp[1];
}

static int token(const Env *e, const char *s) {
    int *ids = NULL, n = tokenizer_encode(e->run.tok, s, strlen(s), 1, &ids);
    ck_assert_int_eq(n, 1);
    int id = ids[0];
    free(ids);
    return id;
}

START_TEST(test_model_pointwise) {
    Env e;
    char keys[1400];
    snprintf(keys, sizeof(keys),
             "judge: {kind: model, model: %s, template: 'Q:{prompt} A:{response} OK?', "
             "verdicts: [Y, N]}",
             lm_h5);
    env_open(&e, keys);
    Judge *j = judge_open(&e.sr, 3, SEQ);
    ck_assert(j);
    ck_assert(!judge_knows_correct(j));
    double s[3], c[3];
    ck_assert_int_eq(judge_score(j, ITEMS, 3, 1, s, c), 0);
    Model *lm = stage_model(&e.sr, lm_h5, MODEL_HEAD_LM, MODEL_INFER, 1, 64);
    int y = token(&e, "Y"), n = token(&e, "N");
    for (int i = 0; i < 3; i++) {
        char text[256];
        snprintf(text, sizeof(text), "Q:%s A:%s OK?", ITEMS[i].prompt, ITEMS[i].response);
        ck_assert_double_eq_tol(s[i], by_hand(&e, lm, text, y, n), 1e-5);
        ck_assert(isnan(c[i]));
    }
    ck_assert(fabs(s[0] - s[2]) > 1e-6);
    model_free(lm);
    judge_close(j);
    env_close(&e);
}
END_TEST

START_TEST(test_model_pairwise) {
    Env e;
    char keys[1400];
    snprintf(keys, sizeof(keys),
             "judge: {kind: model, model: %s, pairwise: true, verdicts: [A, B], "
             "template: '{prompt} A:{response_a} B:{response_b} Better:'}",
             lm_h5);
    env_open(&e, keys);
    Judge *j = judge_open(&e.sr, 6, SEQ);
    ck_assert(j);
    JudgeItem g[3] = {{.prompt = "5+5=", .response = " 10"},
                      {.prompt = "5+5=", .response = " 11"},
                      {.prompt = "5+5=", .response = " ten"}};
    double p[3][3];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (a != b) ck_assert_int_eq(judge_prefer(j, &g[a], &g[b], &p[a][b]), 0);
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++) {
            ck_assert_double_eq_tol(p[a][b] + p[b][a], 1.0, 1e-6);
            ck_assert(p[a][b] > 0 && p[a][b] < 1);
        }
    // P(a, b) = [sigmoid(l(a, b)) + sigmoid(-l(b, a))] / 2 from the model's own forwards
    Model *lm = stage_model(&e.sr, lm_h5, MODEL_HEAD_LM, MODEL_INFER, 1, 64);
    int va = token(&e, "A"), vb = token(&e, "B");
    char ab[128], ba[128];
    snprintf(ab, sizeof(ab), "5+5= A: 10 B: 11 Better:");
    snprintf(ba, sizeof(ba), "5+5= A: 11 B: 10 Better:");
    double l_ab = by_hand(&e, lm, ab, va, vb), l_ba = by_hand(&e, lm, ba, va, vb);
    double want = 0.5 * (1 / (1 + exp(-l_ab)) + 1 / (1 + exp(l_ba)));
    ck_assert_double_eq_tol(p[0][1], want, 1e-6);
    model_free(lm);
    // a group's scores: the mean preference over the others
    double s[6];
    JudgeItem two_groups[6] = {g[0], g[1], g[2], g[2], g[0], g[1]};
    ck_assert_int_eq(judge_score(j, two_groups, 6, 3, s, NULL), 0);
    for (int a = 0; a < 3; a++) {
        double mean = 0.0;
        for (int b = 0; b < 3; b++) mean += a == b ? 0.0 : p[a][b] / 2;
        ck_assert_double_eq_tol(s[a], mean, 1e-6);
    }
    ck_assert_double_eq_tol(s[3], s[2], 1e-6); // the same responses in another order
    ck_assert_double_eq_tol(s[4], s[0], 1e-6);
    // pairwise needs groups
    capture_begin();
    int rc = judge_score(j, g, 3, 1, s, NULL);
    char *msg = capture_end();
    ck_assert_int_eq(rc, -1);
    assert_has(msg, "eval.judge.pairwise: a pairwise judge compares");
    free(msg);
    judge_close(j);
    env_close(&e);
}
END_TEST

START_TEST(test_model_verdict_tokens) {
    Env e;
    char keys[1400];
    snprintf(keys, sizeof(keys), "judge: {kind: model, model: %s, template: '{prompt}{response}'}",
             lm_h5);
    env_open(&e, keys); // the default verdicts " Yes", " No" are several tokens here
    capture_begin();
    Judge *j = judge_open(&e.sr, 2, SEQ);
    char *msg = capture_end();
    ck_assert(!j);
    assert_has(msg, "eval.judge.verdicts: ' Yes' is ");
    assert_has(msg, "tokens with the run's tokenizer; each verdict must be one token");
    free(msg);
    env_close(&e);
}
END_TEST

// ---- a stage whose judge fails --------------------------------------------------------------

// Runs the recipe at path, expecting a failure: no stage/final.h5 nor stage/<absent>, and the
// command judge's message in the log.
static void run_fails(const char *path, const char *stage, const char *absent) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s/layercake run %s > %s/failing.log 2>&1", LC_BINARY_DIR, path,
             dir);
    int rc = system(cmd);
    ck_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
    char final[1300], log[1300];
    snprintf(final, sizeof(final), "%s/runs/%s/final.h5", dir, stage);
    struct stat sb;
    ck_assert_msg(stat(final, &sb) != 0, "%s was written", final);
    snprintf(final, sizeof(final), "%s/runs/%s/%s", dir, stage, absent);
    ck_assert_msg(stat(final, &sb) != 0, "%s was written", final);
    snprintf(log, sizeof(log), "%s/failing.log", dir);
    FILE *f = fopen(log, "r");
    ck_assert(f);
    char *text = NULL;
    size_t cap = 0;
    ck_assert(getdelim(&text, &cap, '\0', f) >= 0);
    fclose(f);
    assert_has(text, ".judge.command: 'sh ");
    assert_has(text, "exited with status 3");
    free(text);
}

START_TEST(test_stage_stops) {
    char path[1200], keys[1200];
    snprintf(path, sizeof(path), "%s/failing.yaml", dir);
    snprintf(keys, sizeof(keys), "judge: {kind: command, command: 'sh %s/exit3.sh'}", FIXTURES);
    recipe_write(path, keys);
    run_fails(path, "eval", "results.json");
}
END_TEST

START_TEST(test_rl_stage_stops) {
    char path[1200], stage[4096];
    snprintf(path, sizeof(path), "%s/failing-rl.yaml", dir);
    snprintf(stage, sizeof(stage),
             "name: grpo, kind: grpo, init: %s, data: {prompts: %s/prompts.h5}, seq_len: 24, "
             "iterations: 2, epochs: 1, minibatches: 1, checkpoint: {every: 1}, "
             "rollout: {batch: 2, group_size: 2, max_new_tokens: 4}, "
             "judge: {kind: command, command: 'sh %s/exit3.sh'}",
             lm_h5, world, FIXTURES);
    recipe_write_stage(path, stage);
    run_fails(path, "grpo", "ckpt-00000001.h5"); // it stops at the first iteration's scoring
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("judge");
    TCase *tc = tcase_create("judge");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gold);
    tcase_add_test(tc, test_match);
    tcase_add_test(tc, test_match_no_reference);
    tcase_add_test(tc, test_reward_model);
    tcase_add_test(tc, test_command_scores);
    tcase_add_test(tc, test_command_timeout);
    tcase_add_test(tc, test_command_exit);
    tcase_add_test(tc, test_command_short);
    tcase_add_test(tc, test_command_word);
    tcase_add_test(tc, test_model_pointwise);
    tcase_add_test(tc, test_model_pairwise);
    tcase_add_test(tc, test_model_verdict_tokens);
    tcase_add_test(tc, test_stage_stops);
    tcase_add_test(tc, test_rl_stage_stops);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(suite());
}
