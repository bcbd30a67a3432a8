// train/run/run.c: a run of a recipe: opening what every stage needs (backend, tokenizer,
// checked files, the resolved recipe), the run directory, and running a range of stages in
// order (skipping finished ones; an interrupted one resumes inside its stage).
#include "train/run/run.h"
#include "common/check.h"
#include "common/fs.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "train/recipe/prepare.h"
#include "train/run/state.h"
#include <errno.h>
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
    return (GPT2Config){.n_layer = m->n_layer,
                        .n_head = m->n_head,
                        .d_model = m->d_model,
                        .vocab_size = V,
                        .max_seq_len = m->max_seq_len};
}

SampleParams rollout_sample_params(const RolloutConfig *ro, int stop_token) {
    return (SampleParams){.temperature = (float)ro->temperature,
                          .top_k = ro->top_k,
                          .top_p = (float)ro->top_p,
                          .stop_token = stop_token,
                          .max_new_tokens = ro->max_new_tokens};
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

int run_open(Run *run, const Recipe *r) {
    char err[2048];
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
    run->recipe_text = recipe_text(r);
    if (!run->recipe_text) LC_DIE("cannot render the resolved recipe");
    return 0;
}

void run_close(Run *run) {
    free(run->recipe_text);
    tokenizer_free(run->tok);
    *run = (Run){0};
}

// Runs stage i unless its final.h5 says it is finished.
static int run_one(Run *run, int i, bool fresh, StageFn fn) {
    const Recipe *r = run->recipe;
    StageRun sr = {.run = run, .stage = &r->stages[i], .index = i};
    snprintf(sr.dir, sizeof(sr.dir), "%s/%s", r->output_dir, r->stages[i].name);
    char final[4200];
    snprintf(final, sizeof(final), "%s/final.h5", sr.dir);
    if (fresh) discard_stage(&sr);
    if (state_is_complete(final) == 1) {
        printf("[%s] already complete (%s); skipping\n", sr.stage->name, final);
        return 0;
    }
    if (fs_mkdirs(sr.dir) != 0 || write_stage_json(&sr) != 0) {
        fprintf(stderr, "layercake: cannot create %s\n", sr.dir);
        return 1;
    }
    return fn(&sr);
}

int run_stages(Run *run, int first, int last, bool fresh, StageFn fn) {
    const Recipe *r = run->recipe;
    if (fs_mkdirs(r->output_dir) != 0 || write_recipe(run) != 0) {
        fprintf(stderr, "layercake: cannot create the run directory %s\n", r->output_dir);
        return 1;
    }
    printf("run '%s' -> %s (%s backend, %d threads)\n", r->name, r->output_dir, run->be->name,
           run->be->threads(0));
    int rc = 0;
    for (int i = first; i <= last && !rc; i++) rc = run_one(run, i, fresh, fn);
    if (!rc) printf("run '%s' complete: %s\n", r->name, r->output_dir);
    return rc;
}
