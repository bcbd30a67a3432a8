// layercake: the command-line entry point. Each subcommand lives in its own file and is
// registered in the table below.
#include "train/cli/commands.h"
#include "common/h5.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); // argv[0] is the subcommand name
    const char *summary;
} Command;

static const Command COMMANDS[] = {
    {"bench", cmd_bench, "measure training-step and rollout speed, MFU and memory"},
    {"version", cmd_version, "print the version and the backends built in"},
    {"tokenizer", cmd_tokenizer, "train a BPE tokenizer; encode and decode text"},
    {"data", cmd_data, "import text and JSONL into HDF5 datasets; info; show an example"},
    {"validate", cmd_validate, "check a recipe and the files it names, without training"},
    {"run", cmd_run, "run a recipe's stages into its run directory"},
    {"generate", cmd_generate, "sample from a checkpoint"},
    {"score", cmd_score, "score a dataset's responses with a reward model"},
    {"logits", cmd_logits, "print a model's logits over a sequence of token ids"},
    {"import", cmd_import, "convert a Hugging Face folder or a llama2.c .bin to a weights file"},
    {"export", cmd_export, "write a checkpoint as a Hugging Face model folder"},
    {"recipe", cmd_recipe, "recipe tools: 'recipe docs' prints the key reference"},
    {"report", cmd_report, "build a run's report.md and SVG plots from its run directory"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: layercake <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nrun 'layercake <command> --help' for a command's options\n");
}

int main(int argc, char **argv) {
    h5_init(); // before any HDF5 call: no crash at exit after a full disk (common/h5.h)
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "layercake: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
