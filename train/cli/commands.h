// train/cli/commands.h: the subcommands of `layercake`. Each returns the process exit status
// (0 success, 1 failure, 2 bad command line) and takes argv with argv[0] = its own name.
#pragma once
#include "train/cli/options.h"

int cmd_bench(int argc, char **argv);     // train/cli/cmd_bench.c
int cmd_data(int argc, char **argv);      // train/cli/cmd_data.c
int cmd_export(int argc, char **argv);    // train/cli/cmd_export.c
int cmd_generate(int argc, char **argv);  // train/cli/cmd_generate.c
int cmd_import(int argc, char **argv);    // train/cli/cmd_import.c: `import hf`, `import llama2c`
int cmd_logits(int argc, char **argv);    // train/cli/cmd_logits.c
int cmd_recipe(int argc, char **argv);    // train/cli/cmd_recipe.c: `recipe docs`
int cmd_run(int argc, char **argv);       // train/cli/cmd_run.c
int cmd_score(int argc, char **argv);     // train/cli/cmd_score.c
int cmd_synth(int argc, char **argv);     // train/cli/cmd_synth.c, run as `layercake data synth`
extern const OptionsCommand CMD_SYNTH;    // its usage, listed by `layercake data`
int cmd_tokenizer(int argc, char **argv); // train/cli/cmd_tokenizer.c
int cmd_validate(int argc, char **argv);  // train/cli/cmd_validate.c
int cmd_version(int argc, char **argv);   // train/cli/cmd_version.c
int cmd_report(int argc, char **argv);    // train/cli/cmd_report.c
