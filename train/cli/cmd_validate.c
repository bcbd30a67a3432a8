// train/cli/cmd_validate.c: `layercake validate r.yaml [key=value ...] [--print-config]`: loads a
// recipe with its overrides, checks the files it names and that its backend is built in, and
// prints "ok" with a line per stage, or the resolved recipe as YAML. Trains nothing.
#include "common/check.h"
#include "train/run/run.h"
#include "kernels/kernels.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include "train/recipe/recipe.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DESCRIPTION[] =
    "Checks a recipe, the command-line overrides and the files it names without training.\n"
    "Overrides: seed=3 model.n_layer=2 sft.optim.lr=1e-4 defaults.batch_size=8 (see\n"
    "docs/recipes.md).\n";

// The checks that need the binary rather than the recipe: the backend must be built in.
static RecipeError check_backend(const Recipe *r, char *err, size_t errlen) {
    const char *name = backend_kind_name(r->backend);
    const char *where = recipe_where(r, -1, "backend");
    if (backend_get(name)) return RECIPE_OK;
    snprintf(err, errlen,
             "%s: backend: '%s' is not built into this binary (see 'layercake version')",
             where ? where : r->file, name);
    return RECIPE_ERR_RULE;
}

static void print_summary(const Recipe *r) {
    char line[512];
    printf("ok: %s: %s, %d stage%s, output %s\n", r->file, r->name, r->n_stages,
           r->n_stages == 1 ? "" : "s", r->output_dir);
    for (int i = 0; i < r->n_stages; i++) {
        recipe_stage_summary(r, i, line, sizeof(line));
        printf("  %s\n", line);
    }
}

typedef struct {
    const char *path;  // the recipe file
    bool print_config; // print the resolved recipe instead of the summary
    char **overrides;  // (n_overrides) "key.path=value" arguments, pointers into argv
    int n_overrides;   // number of overrides
} Args;

// Returns OPTIONS_CONTINUE or the exit status (0 after --help, 2 for a bad command line).
static int parse(int argc, char **argv, Args *a) {
    *a = (Args){0};
    const Option opts[] = {{"print-config", 0, OPT_FLAG, &a->print_config, 0, 0, false, NULL,
                            "print the resolved recipe (every key, paths absolute) as YAML"},
                           {0}};
    const OptionsCommand cmd = {.name = "validate",
                                .synopsis = "RECIPE.yaml [key.path=value ...] [--print-config]",
                                .summary =
                                    "check a recipe and the files it names, without training",
                                .description = DESCRIPTION,
                                .options = opts,
                                .args = "RECIPE.yaml",
                                .min_args = 1,
                                .max_args = -1};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    a->path = args.v[0];
    a->overrides = args.v + 1;
    a->n_overrides = args.n - 1;
    return OPTIONS_CONTINUE;
}

static int validate(const Args *a) {
    Recipe r;
    char err[4096];
    RecipeError rc = recipe_load(a->path, a->overrides, a->n_overrides, &r, err, sizeof(err));
    if (rc == RECIPE_OK) rc = run_validate_files(&r, err, sizeof(err));
    if (rc == RECIPE_OK) rc = check_backend(&r, err, sizeof(err));
    if (rc == RECIPE_OK && a->print_config && recipe_print(stdout, &r) != 0) {
        snprintf(err, sizeof(err), "cannot write the recipe to standard output");
        rc = RECIPE_ERR_IO;
    }
    if (rc == RECIPE_OK && !a->print_config) print_summary(&r);
    if (rc) fprintf(stderr, "layercake: %s\n", err);
    recipe_free(&r);
    return rc == RECIPE_OK ? 0 : 1;
}

int cmd_validate(int argc, char **argv) {
    Args a;
    int rc = parse(argc, argv, &a);
    return rc == OPTIONS_CONTINUE ? validate(&a) : rc;
}
