// train/cli/cmd_run.c: `layercake run`: load a recipe with its overrides, open the run and
// run its stages (all, --only one, or --from one onwards from scratch).
#include "common/check.h"
#include "train/cli/commands.h"
#include "train/recipe/recipe.h"
#include "train/run/run.h"
#include "train/stages/stages.h"
#include "train/cli/options.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *recipe;
    char **overrides; // (n_overrides) "key.path=value", pointers into argv
    int n_overrides;
    const char *only, *from;
    bool print_config;
} RunArgs;

static const char DESCRIPTION[] =
    "Runs the recipe's stages in order into its run directory (output_dir, default\n"
    "runs/<name>). Finished stages (final.h5 present) are skipped; an interrupted stage\n"
    "resumes from its newest intact checkpoint.\n"
    "  key.path=value  override a recipe key (seed=3, model.n_layer=4, sft.optim.lr=1e-4)\n";

// Returns OPTIONS_CONTINUE or the exit status (0 after --help, 2 for a bad command line).
static int parse(int argc, char **argv, RunArgs *a) {
    *a = (RunArgs){0};
    const Option opts[] = {{"only", 0, OPT_STRING, &a->only, 0, 0, false, "STAGE",
                            "run just this stage (its inputs must exist)"},
                           {"from", 0, OPT_STRING, &a->from, 0, 0, false, "STAGE",
                            "run this stage and the ones after it again, from scratch"},
                           {"print-config", 0, OPT_FLAG, &a->print_config, 0, 0, false, NULL,
                            "print the resolved recipe and exit"},
                           {0}};
    const OptionsCommand cmd = {.name = "run",
                                .synopsis = "RECIPE.yaml [key.path=value ...] [options]",
                                .summary = "run a recipe's stages into its run directory",
                                .description = DESCRIPTION,
                                .options = opts,
                                .args = "RECIPE.yaml",
                                .min_args = 1,
                                .max_args = -1};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    for (int i = 1; i < args.n; i++) // the recipe, then overrides
        if (!strchr(args.v[i], '='))
            return options_usage_error(
                &cmd, "'%s' is neither an override (key=value) nor an option", args.v[i]);
    a->recipe = args.v[0];
    a->overrides = args.v + 1;
    a->n_overrides = args.n - 1;
    return OPTIONS_CONTINUE;
}

static int print_config(const RunArgs *a) {
    Recipe r = {0};
    char err[2048];
    if (recipe_load(a->recipe, a->overrides, a->n_overrides, &r, err, sizeof(err)) != RECIPE_OK) {
        fprintf(stderr, "layercake: %s\n", err);
        return 1;
    }
    char *text = recipe_text(&r);
    if (!text) LC_DIE("cannot render the resolved recipe");
    fputs(text, stdout);
    free(text);
    recipe_free(&r);
    return 0;
}

// Runs the stages a picks (all, --only one, --from one onwards) of an open run.
static int run_picked(Run *run, const Recipe *r, const RunArgs *a) {
    int first = 0, last = r->n_stages - 1;
    const char *pick = a->only ? a->only : a->from;
    if (pick) {
        first = last = recipe_stage_index(r, pick);
        if (first < 0) {
            fprintf(stderr, "layercake: %s has no stage named '%s'\n", a->recipe, pick);
            return 2;
        }
        if (a->from) last = r->n_stages - 1;
    }
    return run_stages(run, first, last, a->from != NULL, stage_run);
}

int cmd_run(int argc, char **argv) {
    RunArgs a;
    int rc = parse(argc, argv, &a);
    if (rc != OPTIONS_CONTINUE) return rc;
    if (a.print_config) return print_config(&a);
    Recipe r = {0};
    Run run = {0};
    char err[2048];
    if (recipe_load(a.recipe, a.overrides, a.n_overrides, &r, err, sizeof(err)) != RECIPE_OK) {
        fprintf(stderr, "layercake: %s\n", err);
        return 1;
    }
    rc = run_open(&run, &r);
    if (!rc) rc = run_picked(&run, &r, &a);
    run_close(&run);
    recipe_free(&r);
    return rc;
}
