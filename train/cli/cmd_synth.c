// train/cli/cmd_synth.c: `layercake data synth`: generate a built-in task world (data/synth.h):
// its tokenizer and every dataset a recipe needs, from a seed.
#include "data/synth.h"
#include "train/cli/commands.h"
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: layercake data synth --task NAME --out DIR [options]\n"
    "\n"
    "Generates a task world with an exact gold reward into DIR (created if missing):\n"
    "tokenizer.json, the pretraining corpus pretrain.txt, and the datasets pretrain.h5 and\n"
    "pretrain-val.h5 (lm), sft.h5 and sft-val.h5 (sft), pref.h5 and pref-val.h5 (preference),\n"
    "prompts.h5 (prompt, for RL) and eval.h5 (prompt, held-out problems, with reference\n"
    "answers). The same options give byte-identical files. docs/tasks.md describes the tasks.\n"
    "\n"
    "  --task NAME          the task (arithmetic)\n"
    "  --out DIR            the folder to write\n"
    "  --seed S             seed of every random choice (default 0)\n"
    "  --sizes LIST         examples per file as FILE=N pairs separated by commas, e.g.\n"
    "                       pretrain=20000,sft=500; files: pretrain, pretrain-val, sft,\n"
    "                       sft-val, pref, pref-val, prompts, eval (lm files count problems)\n"
    "  --wrong-fraction F   chance that a pretraining answer is wrong (default 0.3)\n"
    "  --label-noise F      chance that a preference pair's labels are swapped (default 0.1)\n"
    "  --difficulty N       task level; arithmetic: operands of 1 to N digits (default 2)\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "layercake data synth: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", USAGE);
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (*s < '0' || *s > '9') return false;
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return *end == '\0';
}

static bool parse_fraction(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && *out >= 0 && *out <= 1;
}

// Parses "FILE=N,FILE=N,..." into sizes; returns the offending item, or NULL when all parse.
static const char *parse_sizes(char *list, int64_t *sizes) {
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        SynthFile f;
        uint64_t n;
        if (!eq) return item;
        *eq = '\0';
        bool ok = synth_file_parse(item, &f) == 0 && parse_u64(eq + 1, &n) && n <= INT64_MAX;
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

int cmd_synth(int argc, char **argv) {
    static const struct option opts[] = {{"task", required_argument, NULL, 't'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"sizes", required_argument, NULL, 'z'},
                                         {"wrong-fraction", required_argument, NULL, 'w'},
                                         {"label-noise", required_argument, NULL, 'l'},
                                         {"difficulty", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *task_name = NULL, *dir = NULL, *bad;
    char *seed = NULL, *sizes = NULL, *wrong = NULL, *noise = NULL, *level = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't') task_name = optarg;
        if (c == 'o') dir = optarg;
        if (c == 's') seed = optarg;
        if (c == 'z') sizes = optarg;
        if (c == 'w') wrong = optarg;
        if (c == 'l') noise = optarg;
        if (c == 'd') level = optarg;
        if (c == 'h') return printf("%s", USAGE), 0;
        if (c == '?')
            return usage_error("unknown option or missing value in '%s'", argv[optind - 1]);
    }
    if (!task_name || !dir || optind != argc)
        return usage_error("synth needs --task and --out, and takes no other arguments%s", "");
    const SynthTask *task = synth_task_find(task_name);
    if (!task) {
        fprintf(stderr, "layercake data synth: unknown task '%s' (tasks: %s)\n\n%s", task_name,
                synth_task_names(), USAGE);
        return 2;
    }
    SynthConfig cfg = synth_config_default(task);
    uint64_t d = 0;
    if (seed && !parse_u64(seed, &cfg.seed))
        return usage_error("--seed needs a non-negative integer, not '%s'", seed);
    if (sizes && (bad = parse_sizes(sizes, cfg.sizes)) != NULL)
        return usage_error("--sizes: '%s' is not FILE=N with FILE a file name of the world", bad);
    if (wrong && !parse_fraction(wrong, &cfg.wrong_fraction))
        return usage_error("--wrong-fraction needs a number from 0 to 1, not '%s'", wrong);
    if (noise && !parse_fraction(noise, &cfg.label_noise))
        return usage_error("--label-noise needs a number from 0 to 1, not '%s'", noise);
    if (level && (!parse_u64(level, &d) || d < 1 || d > (uint64_t)synth_task_max_difficulty(task)))
        return usage_error("--difficulty needs a level from 1 to the task's largest, not '%s'",
                           level);
    if (level) cfg.difficulty = (int)d;
    char desc[512], err[1024];
    synth_task_describe(task, cfg.difficulty, desc, sizeof(desc));
    printf("%s\n", desc);
    SynthStats st;
    if (synth_generate(task, &cfg, dir, &st, err, sizeof(err)) < 0) {
        fprintf(stderr, "layercake data synth: %s\n", err);
        return 1;
    }
    report(dir, &st);
    return 0;
}
