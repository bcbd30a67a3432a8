// train/run.c: `layercake run`: load and check a recipe, prepare the run directory, run the
// stages in order (skipping finished ones, resuming interrupted ones).
#include "train/run.h"
#include "common/check.h"
#include "common/fs.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "train/commands.h"
#include "train/prepare.h"
#include "train/state.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- helpers shared by the stages ------------------------------------------------------------

uint64_t stage_seed(const StageRun *sr, const char *purpose) {
    uint64_t h = 1469598103934665603ull; // FNV-1a over "stage/purpose"
    for (const char *p = sr->stage->name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *p = purpose; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    Rng r = rng_derive((uint64_t)sr->run->recipe->seed, h);
    return rng_u64(&r);
}

void run_resolve_model(const Run *run, const char *ref, char *path, size_t len) {
    if (recipe_stage_index(run->recipe, ref) >= 0)
        snprintf(path, len, "%s/%s/final.h5", run->recipe->output_dir, ref);
    else
        snprintf(path, len, "%s", ref);
}

GPT2Config run_model_config(const Run *run) {
    const ModelConfig *m = &run->recipe->model;
    int V = m->vocab_size > 0 ? m->vocab_size : tokenizer_vocab_size(run->tok);
    return (GPT2Config){m->n_layer, m->n_head, m->d_model, V, m->max_seq_len};
}

GPT2 *stage_model(StageRun *sr, const char *init, int heads, GPT2Mode mode, int max_B, int max_T) {
    const Run *run = sr->run;
    uint64_t seed = stage_seed(sr, "init");
    if (!init || !init[0]) {
        GPT2 *m = gpt2_create(run->be, run_model_config(run), heads, mode, max_B, max_T);
        gpt2_init_weights(m, seed);
        return m;
    }
    char path[4096], err[1024];
    run_resolve_model(run, init, path, sizeof(path));
    GPT2 *m = gpt2_load(run->be, path, heads, mode, max_B, max_T, seed, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "layercake: stage '%s': cannot start from '%s': %s\n", sr->stage->name,
                init, err);
        return NULL;
    }
    if (m->cfg.vocab_size < tokenizer_vocab_size(run->tok)) {
        fprintf(stderr,
                "layercake: stage '%s': %s has a vocabulary of %d, smaller than the "
                "tokenizer's %d (hint: the checkpoint was trained with another "
                "tokenizer)\n",
                sr->stage->name, path, m->cfg.vocab_size, tokenizer_vocab_size(run->tok));
        gpt2_free(m);
        return NULL;
    }
    return m;
}

// ---- file checks for `run` and `validate` -------------------------------------------------------

// What the content checks compare against: the tokenizer's fingerprint, when it exists yet.
typedef struct {
    int have_tokenizer;
    uint64_t fingerprint;
} FileContext;

// Checks a file the recipe names: the tokenizer by loading it, datasets by kind and tokenizer
// fingerprint, checkpoints by their header.
static int check_file(void *ctx, const char *path, const char *kind, const char *tokenizer,
                      char *err, size_t errlen) {
    FileContext *fc = ctx;
    DataKind dk;
    if (strcmp(kind, "tokenizer") == 0) {
        Tokenizer *tok = tokenizer_load(path, err, errlen);
        if (!tok) return -1;
        fc->have_tokenizer = 1;
        fc->fingerprint = tokenizer_fingerprint(tok);
        tokenizer_free(tok);
        return 0;
    }
    if (data_kind_parse(kind, &dk) == 0) {
        Dataset *d = dataset_open(path, dk, err, errlen);
        if (!d) return -1;
        int rc =
            fc->have_tokenizer ? dataset_check_fingerprint(d, fc->fingerprint, err, errlen) : 0;
        dataset_free(d);
        return rc;
    }
    if (strcmp(kind, "checkpoint") == 0) {
        GPT2 *m = gpt2_load(backend_cpu(), path, 0, GPT2_INFER, 1, 1, 0, err, errlen);
        gpt2_free(m);
        return m ? 0 : -1;
    }
    (void)tokenizer;
    return 0;
}

RecipeError run_validate_files(const Recipe *r, char *err, size_t errlen) {
    FileContext fc = {0};
    return recipe_validate_files(r, check_file, &fc, err, errlen);
}

// The resolved recipe as text.
static char *recipe_to_text(const Recipe *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f || recipe_print(f, r) != 0) LC_DIE("cannot render the resolved recipe");
    fclose(f);
    return text;
}

// Writes recipe.yaml, warning when it replaces a different recipe of the same run.
static int write_recipe(const Run *run) {
    const Recipe *r = run->recipe;
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/recipe.yaml", r->output_dir);
    if (access(path, R_OK) == 0) {
        Recipe old;
        char err[1024], key[256];
        if (recipe_load(path, NULL, 0, &old, err, sizeof(err)) == RECIPE_OK) {
            if (recipe_diff(&old, r, key, sizeof(key)))
                printf("note: the recipe differs from the one this run directory was made with "
                       "(first difference: %s); finished stages are kept\n",
                       key);
            recipe_free(&old);
        }
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(run->recipe_text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "layercake: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

// ---- running stages -----------------------------------------------------------------------------

static int write_stage_json(const StageRun *sr) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/stage.json", sr->dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"name\": \"%s\", \"kind\": \"%s\"}\n", sr->stage->name,
            stage_kind_name(sr->stage->kind));
    return fclose(f);
}

// Removes a stage's checkpoints and final model (--from reruns it from scratch).
static void discard_stage(const StageRun *sr) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/final.h5", sr->dir);
    unlink(path);
    state_prune(sr->dir, 0);
}

static int run_stage(StageRun *sr) {
    switch (sr->stage->kind) {
    case STAGE_PRETRAIN:
    case STAGE_SFT:
        return stage_lm(sr);
    case STAGE_REWARD:
        return stage_reward(sr);
    case STAGE_DPO:
        return stage_dpo(sr);
    case STAGE_PPO:
    case STAGE_GRPO:
    case STAGE_RLOO:
        return stage_rl(sr);
    case STAGE_EVAL:
        return stage_eval(sr);
    default:
        fprintf(stderr, "layercake: stage '%s': kind '%s' is not implemented in this build\n",
                sr->stage->name, stage_kind_name(sr->stage->kind));
        return 1;
    }
}

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

// Loads the recipe and everything the run needs before any stage runs.
static int run_open(const RunArgs *a, Recipe *r, Run *run) {
    char err[2048];
    if (recipe_load(a->recipe, a->overrides, a->n_overrides, r, err, sizeof(err)) != RECIPE_OK) {
        fprintf(stderr, "layercake: %s\n", err);
        return 1;
    }
    *run = (Run){.recipe = r, .world = 1};
    run->be = backend_get(backend_kind_name(r->backend));
    if (!run->be) {
        fprintf(stderr, "layercake: %s: backend '%s' is not built into this binary\n", r->file,
                backend_kind_name(r->backend));
        return 1;
    }
    run->be->threads(r->threads);
    if (prepare_run(r) != 0) return 1;
    run->tok = tokenizer_load(r->tokenizer, err, sizeof(err));
    if (!run->tok) {
        fprintf(stderr, "layercake: %s: tokenizer: %s\n", r->file, err);
        return 1;
    }
    run->fingerprint = tokenizer_fingerprint(run->tok);
    if (run_validate_files(r, err, sizeof(err)) != RECIPE_OK) {
        fprintf(stderr, "layercake: %s\n", err);
        return 1;
    }
    run->recipe_text = recipe_to_text(r);
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
            char *text = recipe_to_text(&r);
            fputs(text, stdout);
            free(text);
            recipe_free(&r);
        } else
            fprintf(stderr, "layercake: %s\n", err);
        free(a.overrides);
        return rc == RECIPE_OK ? 0 : 1;
    }
    rc = run_open(&a, &r, &run);
    int first = 0, last = r.n_stages - 1;
    const char *pick = a.only ? a.only : a.from;
    if (!rc && pick) {
        int i = recipe_stage_index(&r, pick);
        if (i < 0) {
            fprintf(stderr, "layercake: %s has no stage named '%s'\n", a.recipe, pick);
            rc = 2;
        }
        first = i;
        if (a.only) last = i;
    }
    if (!rc) {
        if (fs_mkdirs(r.output_dir) != 0 || write_recipe(&run) != 0) {
            fprintf(stderr, "layercake: cannot create the run directory %s\n", r.output_dir);
            rc = 1;
        }
        printf("run '%s' -> %s (%s backend, %d threads)\n", r.name, r.output_dir, run.be->name,
               run.be->threads(0));
        for (int i = first; i <= last && !rc; i++) {
            StageRun sr = {.run = &run, .stage = &r.stages[i], .index = i};
            snprintf(sr.dir, sizeof(sr.dir), "%s/%s", r.output_dir, r.stages[i].name);
            char final[4200];
            snprintf(final, sizeof(final), "%s/final.h5", sr.dir);
            if (a.from) discard_stage(&sr);
            if (state_is_complete(final) == 1) {
                printf("[%s] already complete (%s); skipping\n", sr.stage->name, final);
                continue;
            }
            if (fs_mkdirs(sr.dir) != 0 || write_stage_json(&sr) != 0) {
                fprintf(stderr, "layercake: cannot create %s\n", sr.dir);
                rc = 1;
                break;
            }
            rc = run_stage(&sr);
        }
        if (!rc) printf("run '%s' complete: %s\n", r.name, r.output_dir);
    }
    free(run.recipe_text);
    tokenizer_free(run.tok);
    recipe_free(&r);
    free(a.overrides);
    return rc;
}
