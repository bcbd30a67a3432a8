// train/cli/cmd_validate.c: `layercake validate r.yaml [key=value ...] [--print-config]`: loads a
// recipe with its overrides, checks the files it names and that its backend is built in, and
// prints "ok" with a line per stage, or the resolved recipe as YAML. Trains nothing.
#include "common/check.h"
#include "train/run/run.h"
#include "kernels/kernels.h"
#include "train/cli/commands.h"
#include "train/recipe/recipe.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: layercake validate <recipe.yaml> [key.path=value ...] [--print-config]\n"
               "\n"
               "Checks a recipe, the command-line overrides and the files it names without\n"
               "training. Overrides: seed=3 model.n_layer=2 sft.optim.lr=1e-4\n"
               "defaults.batch_size=8 (see docs/recipes.md).\n"
               "  --print-config  print the resolved recipe (every key, paths absolute) as YAML\n");
}

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
    char **overrides;  // (n_overrides) "key.path=value" arguments
    int n_overrides;   // number of overrides
} Args;

// Fills a from argv. Returns -1 to go on, or the exit status after --help or a usage error.
static int parse_args(int argc, char **argv, Args *a) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            a->print_config = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "layercake validate: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!a->path) {
            a->path = argv[i];
        } else {
            a->overrides[a->n_overrides++] = argv[i];
        }
    }
    if (a->path) return -1;
    usage(stderr);
    return 2;
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
    Args a = {.overrides = lc_calloc((size_t)argc, sizeof(char *))};
    int status = parse_args(argc, argv, &a);
    if (status < 0) status = validate(&a);
    free(a.overrides);
    return status;
}
