// train/cli/cmd_recipe.c: `layercake recipe docs`: prints the recipe reference generated from the
// schema (docs/recipes.md is this output; a test keeps the two equal).
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include "train/recipe/recipe.h"
#include <stdio.h>
#include <string.h>

int cmd_recipe(int argc, char **argv) {
    const Option opts[] = {{0}};
    const OptionsCommand cmd = {
        .name = "recipe",
        .synopsis = "docs > docs/recipes.md",
        .summary = "recipe tools: 'recipe docs' prints the key reference",
        .description = "  docs  print every recipe key with its type, default, range and "
                       "meaning\n",
        .options = opts,
        .args = "subcommand (docs)",
        .min_args = 1,
        .max_args = 1};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    if (strcmp(args.v[0], "docs") != 0)
        return options_usage_error(&cmd, "unknown subcommand '%s'", args.v[0]);
    return recipe_docs(stdout) == 0 ? 0 : 1;
}
