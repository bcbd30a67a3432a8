// train/cli/cmd_synth.c: `layercake data synth`: generate a built-in task world (data/synth.h):
// its tokenizer and every dataset a recipe needs, from a seed.
#include "data/synth.h"
#include "train/cli/commands.h"
#include "common/parse.h"
#include "train/cli/options.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DESCRIPTION[] =
    "Generates a task world with an exact gold reward into DIR (created if missing):\n"
    "tokenizer.json, the pretraining corpus pretrain.txt, and the datasets pretrain.h5 and\n"
    "pretrain-val.h5 (lm), sft.h5 and sft-val.h5 (sft), pref.h5 and pref-val.h5 (preference),\n"
    "prompts.h5 (prompt, for RL) and eval.h5 (prompt, held-out problems, with reference\n"
    "answers). The same options give byte-identical files. docs/tasks.md describes the tasks.\n"
    "--sizes takes FILE=N pairs separated by commas, e.g. pretrain=20000,sft=500; files:\n"
    "pretrain, pretrain-val, sft, sft-val, pref, pref-val, prompts, eval (lm files count\n"
    "problems).\n";

typedef struct {
    const char *task, *out;
    char *sizes;     // "FILE=N,..." or NULL
    int difficulty;  // 0: the task's default
    SynthConfig cfg; // seed, wrong_fraction and label_noise as given (NAN: not given)
} SynthArgs;

// Parses "FILE=N,FILE=N,..." into sizes; returns the offending item, or NULL when all parse.
static const char *sizes_read(char *list, int64_t *sizes) {
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        SynthFile f;
        uint64_t n;
        if (!eq) return item;
        *eq = '\0';
        bool ok = synth_file_parse(item, &f) == 0 && parse_u64(eq + 1, &n) == 0 && n <= INT64_MAX;
        *eq = '=';
        if (!ok) return item;
        sizes[f] = (int64_t)n;
    }
    return NULL;
}

static void report(const char *dir, const SynthStats *st) {
    printf("wrote %s/tokenizer.json: %d ids (bytes and special tokens), fingerprint %016llx\n", dir,
           st->vocab_size, (unsigned long long)st->fingerprint);
    printf("wrote %s/pretrain.txt: the pretraining corpus as text\n", dir);
    for (int f = 0; f < SYNTH_FILE_COUNT; f++) {
        bool lm = synth_file_kind(f) == DATA_LM;
        printf("wrote %s/%s.h5: %lld %s, %lld tokens (%s)", dir, synth_file_name(f),
               (long long)st->examples[f], lm ? "documents" : "examples", (long long)st->tokens[f],
               data_kind_name(synth_file_kind(f)));
        if (lm)
            printf("; %lld problems, %lld answers wrong",
                   (long long)st->problems[f - SYNTH_PRETRAIN],
                   (long long)st->wrong[f - SYNTH_PRETRAIN]);
        if (f == SYNTH_PREF || f == SYNTH_PREF_VAL)
            printf("; %lld labels swapped", (long long)st->swapped[f - SYNTH_PREF]);
        printf("\n");
    }
    printf("generated in %.3f s\n", st->seconds);
}

// Returns OPTIONS_CONTINUE or the exit status (0 after --help, 2 for a bad command line).
static int parse(int argc, char **argv, SynthArgs *a, const OptionsCommand *cmd) {
    const Option opts[] = {
        {"task", 0, OPT_STRING, &a->task, 0, 0, true, "NAME", "the task (arithmetic)"},
        {"out", 0, OPT_STRING, &a->out, 0, 0, true, "DIR", "the folder to write"},
        {"seed", 0, OPT_U64, &a->cfg.seed, 0, 0, false, "S", "seed of every random choice (0)"},
        {"sizes", 0, OPT_STRING, &a->sizes, 0, 0, false, "LIST", "examples per file: FILE=N,..."},
        {"wrong-fraction", 0, OPT_DOUBLE, &a->cfg.wrong_fraction, 0, 1, false, "F",
         "chance that a pretraining answer is wrong (default 0.3)"},
        {"label-noise", 0, OPT_DOUBLE, &a->cfg.label_noise, 0, 1, false, "F",
         "chance that a preference pair's labels are swapped (default 0.1)"},
        {"difficulty", 0, OPT_INT, &a->difficulty, 1, INFINITY, false, "N",
         "task level; arithmetic: operands of 1 to N digits (default 2)"},
        {0}};
    OptionsCommand c = *cmd;
    c.options = opts;
    OptionArgs args;
    return options_parse(&c, argc, argv, &args);
}

// The task's configuration with what the command line set. OPTIONS_CONTINUE or 2.
static int configure(const OptionsCommand *cmd, SynthArgs *a, const SynthTask **task,
                     SynthConfig *cfg) {
    const char *bad;
    if (!(*task = synth_task_find(a->task)))
        return options_usage_error(cmd, "unknown task '%s' (tasks: %s)", a->task,
                                   synth_task_names());
    *cfg = synth_config_default(*task);
    cfg->seed = a->cfg.seed;
    if (!isnan(a->cfg.wrong_fraction)) cfg->wrong_fraction = a->cfg.wrong_fraction;
    if (!isnan(a->cfg.label_noise)) cfg->label_noise = a->cfg.label_noise;
    if (a->sizes && (bad = sizes_read(a->sizes, cfg->sizes)) != NULL)
        return options_usage_error(cmd, "--sizes: '%s' is not FILE=N with FILE a file of the world",
                                   bad);
    int most = synth_task_max_difficulty(*task);
    if (a->difficulty > most)
        return options_usage_error(cmd, "--difficulty: %d is out of range: %s goes from 1 to %d",
                                   a->difficulty, a->task, most);
    if (a->difficulty) cfg->difficulty = a->difficulty;
    return OPTIONS_CONTINUE;
}

const OptionsCommand CMD_SYNTH = {
    .name = "data synth",
    .synopsis = "--task NAME --out DIR [options]",
    .summary = "generate a built-in task world with an exact gold reward (docs/tasks.md)",
    .description = DESCRIPTION};

int cmd_synth(int argc, char **argv) {
    const OptionsCommand *const CMD = &CMD_SYNTH;
    SynthArgs a = {.cfg = {.wrong_fraction = NAN, .label_noise = NAN}}; // NAN: not given
    const SynthTask *task;
    SynthConfig cfg;
    int rc = parse(argc, argv, &a, CMD);
    if (rc == OPTIONS_CONTINUE) rc = configure(CMD, &a, &task, &cfg);
    if (rc != OPTIONS_CONTINUE) return rc;
    char desc[512], err[1024];
    synth_task_describe(task, cfg.difficulty, desc, sizeof(desc));
    printf("%s\n", desc);
    SynthStats st;
    if (synth_generate(task, &cfg, a.out, &st, err, sizeof(err)) < 0) {
        fprintf(stderr, "layercake data synth: %s\n", err);
        return 1;
    }
    report(a.out, &st);
    return 0;
}
