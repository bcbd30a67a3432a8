// train/cli/cmd_recipe.c: `layercake recipe docs`: prints the recipe reference generated from the
// schema (docs/recipes.md is this output; a test keeps the two equal).
#include "train/cli/commands.h"
#include "train/recipe/recipe.h"
#include <stdio.h>
#include <string.h>

int cmd_recipe(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "docs") == 0) return recipe_docs(stdout) == 0 ? 0 : 1;
    FILE *f = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
    fprintf(f, "usage: layercake recipe docs > docs/recipes.md\n"
               "  docs  print every recipe key with its type, default, range and meaning\n");
    return f == stdout ? 0 : 2;
}
