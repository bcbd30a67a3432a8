// train/commands.h: the subcommands of `layercake`. Each returns the process exit status
// (0 success, 1 failure, 2 bad command line) and takes argv with argv[0] = its own name.
#pragma once

int cmd_validate(int argc, char **argv); // check a recipe (and its files) without training
int cmd_recipe(int argc, char **argv);   // recipe tools: `recipe docs` writes docs/recipes.md
