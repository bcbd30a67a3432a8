// tests/test_eval.c: the eval stage end to end, through `layercake run`, on a tiny arithmetic
// world. Three models of known order (a random one, an SFT checkpoint after 20 steps, the SFT
// model after 150) and a random reward model: results.json holds every field for every model,
// the reference ties itself (win rate 1/2, KL exactly 0), the leaderboard follows the gold
// rewards, samples.jsonl agrees with the results, the report and its plots are built, a rerun
// skips the stage, and bad references fail with messages that name what is wrong.
#include "data/dataset.h"
#include "data/synth.h"
#include "model/checkpoint.h"
#include "tests/testutil.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROMPTS 24 // evaluation prompts
#define DRAWS   2  // sampled responses per prompt

static char dir[1024];
static char random_h5[1200], early_h5[1200], trained_h5[1200], judge_h5[1200];
static const ModelConfig CFG = GPT2_CONFIG(1, 2, 32, 0, 16);

static const char *join(const char *a, const char *b) {
    static char buf[4][2048];
    static int next = 0;
    char *p = buf[next++ % 4];
    snprintf(p, 2048, "%s/%s", a, b);
    return p;
}

// Writes text to dir/name.yaml and runs it with extra arguments; returns the exit status and
// the output (stdout and stderr) in *log, which the caller frees.
static int run_recipe(const char *name, const char *text, const char *args, char **log) {
    char recipe[1200], logpath[1200], cmd[4096];
    snprintf(recipe, sizeof(recipe), "%s/%s.yaml", dir, name);
    snprintf(logpath, sizeof(logpath), "%s/%s.log", dir, name);
    FILE *f = fopen(recipe, "w");
    ck_assert(f && fputs(text, f) >= 0 && fclose(f) == 0);
    snprintf(cmd, sizeof(cmd), "%s/layercake run %s %s > %s 2>&1", LC_BINARY_DIR, recipe, args,
             logpath);
    int rc = system(cmd);
    f = fopen(logpath, "r");
    ck_assert(f);
    size_t cap = 0;
    ck_assert(getdelim(log, &cap, '\0', f) >= 0);
    fclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// A recipe of the world's tokenizer and model shape with the given stages.
static void recipe_text(char *buf, size_t len, const char *name, const char *stages) {
    snprintf(buf, len,
             "name: %s\nseed: 5\nthreads: 1\noutput_dir: %s/runs/%s\n"
             "tokenizer: world/tokenizer.json\n"
             "model: {n_layer: %d, n_head: %d, d_model: %d, max_seq_len: %d}\nstages:\n%s",
             name, dir, name, CFG.n_layer, CFG.n_head, CFG.d_model, CFG.max_seq_len, stages);
}

static void save_random(const char *path, int heads, uint64_t seed, int vocab) {
    ModelConfig c = CFG;
    c.vocab_size = vocab;
    Model *m = model_create(backend_cpu(), c, heads, MODEL_INFER, 1, 1);
    model_init_weights(m, seed);
    char err[512];
    ck_assert_msg(model_save(m, path, err, sizeof(err)) == 0, "%s", err);
    model_free(m);
}

// The world, a random language model and reward model, and an SFT run that gives the others.
static void models_make(void) {
    snprintf(dir, sizeof(dir), "%s", test_tmp_path("eval"));
    char cmd[2200], err[1024], *log = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
    ck_assert(system(cmd) == 0);
    const SynthTask *task = synth_task_find("arithmetic");
    SynthConfig sc = synth_config_default(task);
    for (int f = 0; f < SYNTH_FILE_COUNT; f++) sc.sizes[f] = 0;
    sc.sizes[SYNTH_SFT] = 512;
    sc.sizes[SYNTH_EVAL] = PROMPTS;
    SynthStats st;
    ck_assert_msg(synth_generate(task, &sc, join(dir, "world"), &st, err, sizeof(err)) == 0, "%s",
                  err);
    snprintf(random_h5, sizeof(random_h5), "%s/random.h5", dir);
    snprintf(judge_h5, sizeof(judge_h5), "%s/judge.h5", dir);
    save_random(random_h5, MODEL_HEAD_LM, 1, st.vocab_size);
    save_random(judge_h5, MODEL_HEAD_SCALAR, 2, st.vocab_size);
    char stages[2048], text[4096];
    snprintf(stages, sizeof(stages),
             "  - {name: sft, kind: sft, init: %s, data: {train: world/sft.h5}, steps: 150,\n"
             "     batch_size: 16, optim: {lr: 3.0e-3}, checkpoint: {every: 20, keep: 10}}\n",
             random_h5);
    recipe_text(text, sizeof(text), "train", stages);
    ck_assert_msg(run_recipe("train", text, "", &log) == 0, "%s", log);
    free(log);
    snprintf(early_h5, sizeof(early_h5), "%s/runs/train/sft/ckpt-00000020.h5", dir);
    snprintf(trained_h5, sizeof(trained_h5), "%s/runs/train/sft/final.h5", dir);
}

// An eval recipe over models and prompts, the early checkpoint as the reference; extra holds
// further stage keys.
static void eval_recipe(char *buf, size_t len, const char *name, const char *models,
                        const char *prompts, const char *extra) {
    char stages[8192];
    snprintf(stages, sizeof(stages),
             "  - {name: eval, kind: eval, models: [%s], reference_model: %s,\n"
             "     data: {prompts: %s}, bootstrap: 200,\n"
             "     rollout: {batch: 16, group_size: %d, max_new_tokens: 6}%s}\n",
             models, early_h5, prompts, DRAWS, extra);
    recipe_text(buf, len, name, stages);
}

static void models_all(char *buf, size_t len) {
    snprintf(buf, len, "%s, %s, %s", random_h5, early_h5, trained_h5);
}

// The eval run the tests of the results read: judged by the gold reward, with the random
// reward model scoring alongside.
static void eval_main(void) {
    char text[16384], models[4096], extra[1400], *log = NULL;
    models_all(models, sizeof(models));
    snprintf(extra, sizeof(extra), ", gold_reward: arithmetic, reward_model: %s", judge_h5);
    eval_recipe(text, sizeof(text), "main", models, "world/eval.h5", extra);
    ck_assert_msg(run_recipe("main", text, "", &log) == 0, "%s", log);
    free(log);
}

static void setup(void) {
    models_make();
    eval_main();
}

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    ck_assert_msg(j, "%s:%d: %s", path, je.line, je.text);
    return j;
}

static double num(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_number(v), "'%s' is not a number", key);
    return json_number_value(v);
}

// ---- results --------------------------------------------------------------------------------

START_TEST(test_results_fields) {
    json_t *doc = load_json(join(dir, "runs/main/eval/results.json"));
    json_t *models = json_object_get(doc, "models");
    ck_assert_int_eq(json_object_size(models), 3);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "judge")), "gold");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "reference")), early_h5);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "prompts")), PROMPTS);
    const char *keys[] = {"gold_reward",        "accuracy",           "rm_score",
                          "gold_reward_greedy", "accuracy_greedy",    "rm_score_greedy",
                          "kl_to_sft",          "response_length",    "win_rate_vs_ref",
                          "win_rate_vs_sft",    "win_rate_vs_ref_rm", "elo"};
    const char *name;
    json_t *m;
    json_object_foreach(models, name, m) {
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            double v = num(m, keys[k]);
            ck_assert_msg(isfinite(v), "%s: %s", name, keys[k]);
        }
        double len = num(m, "response_length");
        ck_assert(len >= 1 && len <= 6); // tokens, the end token counted
        ck_assert_double_eq(num(m, "win_rate_vs_sft"), num(m, "win_rate_vs_ref"));
    }
    json_t *ref = json_object_get(models, early_h5);
    ck_assert_double_eq(num(ref, "win_rate_vs_ref"), 0.5);
    ck_assert_double_eq(num(ref, "win_rate_vs_ref_rm"), 0.5);
    ck_assert_double_eq(num(ref, "kl_to_sft"), 0.0);
    ck_assert_double_eq(num(ref, "elo"), 1000.0);
    ck_assert(num(json_object_get(models, random_h5), "kl_to_sft") > 0.1);
    json_decref(doc);
}
END_TEST

// The three models' gold rewards are far apart; the arena, judged by them, orders them alike.
START_TEST(test_leaderboard_follows_gold) {
    json_t *doc = load_json(join(dir, "runs/main/eval/results.json"));
    json_t *models = json_object_get(doc, "models");
    json_t *r = json_object_get(models, random_h5), *e = json_object_get(models, early_h5),
           *t = json_object_get(models, trained_h5);
    ck_assert(num(r, "gold_reward") < num(e, "gold_reward") - 0.05);
    ck_assert(num(e, "gold_reward") < num(t, "gold_reward") - 0.3);
    ck_assert(num(r, "elo") < num(e, "elo") && num(e, "elo") < num(t, "elo"));
    ck_assert(num(t, "win_rate_vs_ref") > 0.8 && num(r, "win_rate_vs_ref") < 0.5);
    ck_assert_int_eq(json_integer_value(json_object_get(t, "rank")), 1);
    json_decref(doc);
}
END_TEST

// One line per response; the reference's KLs are all exactly 0; each model's mean KL and gold
// reward over its sampled lines are the results' figures.
START_TEST(test_samples_agree) {
    FILE *f = fopen(join(dir, "runs/main/eval/samples.jsonl"), "r");
    ck_assert(f);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, sampled[3] = {0};
    double kl[3] = {0}, gold[3] = {0};
    const char *names[3] = {random_h5, early_h5, trained_h5};
    while (getline(&line, &cap, f) > 0) {
        json_t *row = json_loads(line, 0, NULL);
        ck_assert_msg(row, "unparsable line %d", lines + 1);
        lines++;
        const char *model = json_string_value(json_object_get(row, "model"));
        const char *dec = json_string_value(json_object_get(row, "decoding"));
        ck_assert(json_is_string(json_object_get(row, "response")));
        int i = 0;
        while (i < 3 && strcmp(names[i], model) != 0) i++;
        ck_assert_int_lt(i, 3);
        if (strcmp(dec, "sampled") == 0) {
            sampled[i]++;
            kl[i] += num(row, "kl");
            gold[i] += num(row, "gold_reward");
            if (i == 1) ck_assert_double_eq(num(row, "kl"), 0.0);
        } else {
            ck_assert_str_eq(dec, "greedy");
            ck_assert(json_is_null(json_object_get(row, "kl")));
        }
        json_decref(row);
    }
    free(line);
    fclose(f);
    ck_assert_int_eq(lines, 3 * PROMPTS * (1 + DRAWS));
    json_t *doc = load_json(join(dir, "runs/main/eval/results.json"));
    for (int i = 0; i < 3; i++) {
        json_t *m = json_object_get(json_object_get(doc, "models"), names[i]);
        ck_assert_int_eq(sampled[i], PROMPTS * DRAWS);
        ck_assert_double_eq_tol(kl[i] / sampled[i], num(m, "kl_to_sft"), 1e-6);
        ck_assert_double_eq_tol(gold[i] / sampled[i], num(m, "gold_reward"), 1e-6);
    }
    json_decref(doc);
}
END_TEST

START_TEST(test_report_and_metrics) {
    struct stat sb;
    char main_dir[1100];
    snprintf(main_dir, sizeof(main_dir), "%s/runs/main", dir);
    const char *files[] = {"report.md", "plots/frontier_eval.svg", "plots/leaderboard_eval.svg",
                           "eval/metrics.jsonl", "eval/stage.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        ck_assert_msg(stat(join(main_dir, files[i]), &sb) == 0 && sb.st_size > 0, "no %s",
                      files[i]);
    FILE *f = fopen(join(dir, "runs/main/eval/metrics.jsonl"), "r");
    char *line = NULL;
    size_t cap = 0;
    ck_assert(f && getline(&line, &cap, f) > 0);
    json_t *row = json_loads(line, 0, NULL);
    char key[1400];
    snprintf(key, sizeof(key), "elo/%s", trained_h5);
    ck_assert(row && json_integer_value(json_object_get(row, "step")) == 0);
    ck_assert(num(row, key) > 1000 && num(row, "prompts") == PROMPTS);
    ck_assert(getline(&line, &cap, f) < 0); // one row
    json_decref(row);
    free(line);
    fclose(f);
    char *md = NULL;
    f = fopen(join(dir, "runs/main/report.md"), "r");
    ck_assert(f && getdelim(&md, &cap, '\0', f) > 0);
    fclose(f);
    ck_assert(strstr(md, "## Evaluation: eval") && strstr(md, "Gold, greedy"));
    free(md);
}
END_TEST

START_TEST(test_rerun_skips) {
    char text[16384], *log = NULL;
    struct stat before, after;
    ck_assert(stat(join(dir, "runs/main/eval/results.json"), &before) == 0);
    FILE *f = fopen(join(dir, "main.yaml"), "r");
    ck_assert(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    ck_assert_msg(run_recipe("main", text, "", &log) == 0, "%s", log);
    ck_assert_msg(strstr(log, "[eval] already complete"), "%s", log);
    ck_assert(stat(join(dir, "runs/main/eval/results.json"), &after) == 0);
    ck_assert(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
              before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
    free(log);
}
END_TEST

// Judged by the reward model alone; the reference, not listed in models, is evaluated first.
START_TEST(test_judge_only) {
    char text[16384], models[4096], extra[1400], *log = NULL;
    snprintf(models, sizeof(models), "%s, %s", random_h5, trained_h5);
    snprintf(extra, sizeof(extra), ", reward_model: %s", judge_h5);
    eval_recipe(text, sizeof(text), "judged", models, "world/eval.h5", extra);
    ck_assert_msg(run_recipe("judged", text, "", &log) == 0, "%s", log);
    json_t *doc = load_json(join(dir, "runs/judged/eval/results.json"));
    json_t *ms = json_object_get(doc, "models");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "judge")), "reward");
    ck_assert_str_eq(json_object_iter_key(json_object_iter(ms)), early_h5);
    ck_assert_int_eq(json_object_size(ms), 3);
    json_t *m = json_object_get(ms, trained_h5);
    ck_assert(json_is_null(json_object_get(m, "gold_reward")));
    ck_assert(isfinite(num(m, "rm_score")) && isfinite(num(m, "rm_score_greedy")));
    ck_assert_double_eq(num(json_object_get(ms, early_h5), "win_rate_vs_ref"), 0.5);
    json_decref(doc);
    free(log);
}
END_TEST

// ---- best-of-n ------------------------------------------------------------------------------

// bon(trained, 4) and bon(trained, 16), selected by the gold reward (no other judge), with the
// trained model as the reference: each answer is the best of its n samples by gold, so the
// entries' gold rewards are at least the model's; kl_analytic is log n - (n-1)/n; the measured
// KL is the tie-exact estimate alone (the model is the reference), so within [0, log n] (w <= n);
// greedy is not measured; samples.jsonl has one sampled line per answer.
START_TEST(test_best_of_n) {
    char text[16384], models[4096], ref[1400], *out = NULL;
    snprintf(models, sizeof(models), "bon(%s, 4), 'bon(%s,16)'", trained_h5, trained_h5);
    eval_recipe(text, sizeof(text), "bon", models, "world/eval.h5", ", gold_reward: arithmetic");
    snprintf(ref, sizeof(ref), "eval.reference_model=%s", trained_h5);
    ck_assert_msg(run_recipe("bon", text, ref, &out) == 0, "%s", out);
    json_t *doc = load_json(join(dir, "runs/bon/eval/results.json"));
    json_t *ms = json_object_get(doc, "models");
    ck_assert_int_eq(json_object_size(ms), 3); // the reference added first
    json_t *base = json_object_get(ms, trained_h5);
    ck_assert(json_is_null(json_object_get(base, "kl_analytic")));
    ck_assert_double_eq(num(base, "kl_to_sft"), 0.0);
    double prev = num(base, "gold_reward");
    const int ns[2] = {4, 16};
    for (int k = 0; k < 2; k++) {
        char name[1400];
        snprintf(name, sizeof(name), "bon(%s, %d)", trained_h5, ns[k]);
        json_t *m = json_object_get(ms, name);
        ck_assert_msg(m, "no '%s' in results.json", name);
        double n = ns[k], gold = num(m, "gold_reward"), kl = num(m, "kl_to_sft");
        ck_assert_double_eq_tol(num(m, "kl_analytic"), log(n) - (n - 1) / n, 1e-9);
        ck_assert_int_eq(json_integer_value(json_object_get(m, "bon_n")), ns[k]);
        ck_assert_str_eq(json_string_value(json_object_get(m, "bon_model")), trained_h5);
        ck_assert(isfinite(num(m, "elo")) && isfinite(num(m, "win_rate_vs_ref")));
        ck_assert(json_is_null(json_object_get(m, "gold_reward_greedy")));
        printf("bon(trained, %d): gold %.4f (model %.4f), KL %.4f, analytic %.4f\n", ns[k], gold,
               num(base, "gold_reward"), kl, num(m, "kl_analytic"));
        ck_assert_msg(kl >= 0 && kl <= log(n) + 1e-9, "%s: KL %g outside [0, log n]", name, kl);
        ck_assert_msg(gold >= num(base, "gold_reward"), "%s: gold %g < the model's %g", name, gold,
                      num(base, "gold_reward"));
        ck_assert_msg(gold >= prev, "best of %d below best of fewer: %g < %g", ns[k], gold, prev);
        prev = gold;
    }
    json_decref(doc);
    // samples.jsonl: group_size sampled answers per prompt for each entry, none greedy
    FILE *f = fopen(join(dir, "runs/bon/eval/samples.jsonl"), "r");
    ck_assert(f);
    char *line = NULL;
    size_t cap = 0;
    int bon_lines = 0, bon_greedy = 0;
    while (getline(&line, &cap, f) > 0)
        if (strstr(line, "\"model\":\"bon(")) {
            bon_lines++;
            bon_greedy += strstr(line, "\"decoding\":\"greedy\"") != NULL;
        }
    free(line);
    fclose(f);
    ck_assert_int_eq(bon_lines, 2 * PROMPTS * DRAWS);
    ck_assert_int_eq(bon_greedy, 0);
    free(out);
}
END_TEST

// ---- errors ---------------------------------------------------------------------------------

// Runs an eval recipe expected to fail; returns its output.
static char *run_failing(const char *name, const char *text, const char *args) {
    char *log = NULL;
    ck_assert_int_eq(run_recipe(name, text, args, &log), 1);
    return log;
}

START_TEST(test_stage_not_run) {
    char stages[2048], text[4096];
    snprintf(stages, sizeof(stages),
             "  - {name: sft, kind: sft, init: %s, data: {train: world/sft.h5}, steps: 5}\n"
             "  - {name: eval, kind: eval, models: [sft], gold_reward: arithmetic, rollout: "
             "{max_new_tokens: 6},\n"
             "     data: {prompts: world/eval.h5}}\n",
             random_h5);
    recipe_text(text, sizeof(text), "notrun", stages);
    char *log = run_failing("notrun", text, "--only eval");
    char want[1400];
    snprintf(want, sizeof(want),
             "notrun.yaml:9:38: eval.models: stage 'sft' has not finished: "
             "%s/runs/notrun/sft/final.h5 is missing",
             dir);
    ck_assert_msg(strstr(log, want), "%s", log);
    free(log);
}
END_TEST

START_TEST(test_unknown_task) {
    char text[16384], models[4096];
    models_all(models, sizeof(models));
    eval_recipe(text, sizeof(text), "badtask", models, "world/eval.h5", ", gold_reward: algebra");
    char *log = run_failing("badtask", text, "");
    ck_assert_msg(strstr(log, "badtask.yaml:10:") &&
                      strstr(log, ": eval.gold_reward: 'algebra' is not a task; the tasks are: "
                                  "arithmetic"),
                  "%s", log);
    free(log);
}
END_TEST

// A prompt dataset of the right tokenizer whose prompts are no arithmetic problems, and one
// made with another tokenizer.
static void write_prompts(const char *path, uint64_t fingerprint) {
    char err[512];
    DatasetWriter *w = dataset_create(path, DATA_PROMPT, fingerprint, err, sizeof(err));
    ck_assert_msg(w, "%s", err);
    int ids[] = {'h', 'i', '='};
    Example ex = {.tokens = ids, .n_tokens = 3};
    ck_assert_msg(dataset_append(w, &ex, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(dataset_close(w, err, sizeof(err)) == 0, "%s", err);
}

START_TEST(test_bad_prompts) {
    char err[512], text[16384], models[4096];
    Dataset *d = dataset_open(join(dir, "world/eval.h5"), DATA_PROMPT, err, sizeof(err));
    ck_assert_msg(d, "%s", err);
    uint64_t fp = d->fingerprint;
    dataset_free(d);
    write_prompts(join(dir, "hi.h5"), fp);
    write_prompts(join(dir, "othertok.h5"), fp ^ 1);
    models_all(models, sizeof(models));
    eval_recipe(text, sizeof(text), "notask", models, "hi.h5", ", gold_reward: arithmetic");
    char *log = run_failing("notask", text, "");
    ck_assert_msg(
        strstr(log, "notask.yaml:9:22: eval.data.prompts: ") &&
            strstr(log, "hi.h5: prompt 0 (\"hi=\") is not a problem of task 'arithmetic'"),
        "%s", log);
    free(log);
    eval_recipe(text, sizeof(text), "othertok", models, "othertok.h5", ", gold_reward: arithmetic");
    log = run_failing("othertok", text, "");
    ck_assert_msg(strstr(log, "eval.data.prompts") && strstr(log, "made with another tokenizer"),
                  "%s", log);
    free(log);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_results_fields);
    tcase_add_test(tc, test_leaderboard_follows_gold);
    tcase_add_test(tc, test_samples_agree);
    tcase_add_test(tc, test_report_and_metrics);
    tcase_add_test(tc, test_rerun_skips);
    tcase_add_test(tc, test_judge_only);
    tcase_add_test(tc, test_best_of_n);
    tcase_add_test(tc, test_stage_not_run);
    tcase_add_test(tc, test_unknown_task);
    tcase_add_test(tc, test_bad_prompts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(suite());
}
