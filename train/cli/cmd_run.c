// train/cli/cmd_run.c: `layercake run`: load a recipe with its overrides, open the run and
// run its stages (all, --only one, or --from one onwards from scratch).
#include "common/check.h"
#include "train/cli/commands.h"
#include "train/recipe/recipe.h"
#include "train/run/run.h"
#include "train/stages/stages.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *recipe;
    char **overrides;
    int n_overrides;
    const char *only, *from;
    int print_config;
} RunArgs;

static void usage(FILE *f) {
    fprintf(f,
            "usage: layercake run RECIPE.yaml [key.path=value ...] [--only STAGE] [--from STAGE]\n"
            "                     [--print-config]\n"
            "\nRuns the recipe's stages in order into its run directory (output_dir, default\n"
            "runs/<name>). Finished stages (final.h5 present) are skipped; an interrupted stage\n"
            "resumes from its newest intact checkpoint.\n"
            "  key.path=value  override a recipe key (seed=3, model.n_layer=4, sft.optim.lr=1e-4)\n"
            "  --only STAGE    run just this stage (its inputs must exist)\n"
            "  --from STAGE    run this stage and the ones after it again, from scratch\n"
            "  --print-config  print the resolved recipe and exit\n");
}

static int parse_args(int argc, char **argv, RunArgs *a) {
    static const struct option opts[] = {{"only", 1, 0, 'o'},
                                         {"from", 1, 0, 'f'},
                                         {"print-config", 0, 0, 'p'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (RunArgs){0};
    a->overrides = lc_calloc((size_t)argc, sizeof(char *));
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-", opts, NULL)) != -1) {
        switch (c) {
        case 1: // a positional argument: the recipe, then overrides
            if (!a->recipe)
                a->recipe = optarg;
            else if (strchr(optarg, '='))
                a->overrides[a->n_overrides++] = optarg;
            else {
                fprintf(stderr,
                        "layercake run: '%s' is neither an override (key=value) nor an "
                        "option\n",
                        optarg);
                return 2;
            }
            break;
        case 'o':
            a->only = optarg;
            break;
        case 'f':
            a->from = optarg;
            break;
        case 'p':
            a->print_config = 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!a->recipe) {
        usage(stderr);
        return 2;
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    RunArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) {
        free(a.overrides);
        return rc == 1 ? 0 : rc;
    }
    Recipe r = {0};
    Run run = {0};
    char err[2048];
    if (a.print_config) {
        rc = recipe_load(a.recipe, a.overrides, a.n_overrides, &r, err, sizeof(err));
        if (rc == RECIPE_OK) {
            char *text = recipe_text(&r);
            if (!text) LC_DIE("cannot render the resolved recipe");
            fputs(text, stdout);
            free(text);
            recipe_free(&r);
        } else
            fprintf(stderr, "layercake: %s\n", err);
        free(a.overrides);
        return rc == RECIPE_OK ? 0 : 1;
    }
    if (recipe_load(a.recipe, a.overrides, a.n_overrides, &r, err, sizeof(err)) != RECIPE_OK) {
        fprintf(stderr, "layercake: %s\n", err);
        free(a.overrides);
        return 1;
    }
    rc = run_open(&run, &r);
    int first = 0, last = r.n_stages - 1;
    const char *pick = a.only ? a.only : a.from;
    if (!rc && pick) {
        first = last = recipe_stage_index(&r, pick);
        if (first < 0) {
            fprintf(stderr, "layercake: %s has no stage named '%s'\n", a.recipe, pick);
            rc = 2;
        }
        if (a.from) last = r.n_stages - 1;
    }
    if (!rc) rc = run_stages(&run, first, last, a.from != NULL, stage_run);
    run_close(&run);
    recipe_free(&r);
    free(a.overrides);
    return rc;
}
