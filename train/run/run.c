// train/run/run.c: a run of a recipe: opening what every stage needs (backend, tokenizer,
// checked files, the resolved recipe), the run directory, and running a range of stages in
// order (skipping finished ones; an interrupted one resumes inside its stage).
#include "train/run/run.h"
#include "common/check.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/h5.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "model/hf.h"
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

// The configuration of a model of recipe r started from scratch with tokenizer tok: the family's
// defaults, then what the recipe sets.
static ModelConfig model_config(const Recipe *r, const Tokenizer *tok) {
    const RecipeModel *m = &r->model;
    int V = m->vocab_size > 0 ? m->vocab_size : tokenizer_vocab_size(tok);
    ModelConfig c =
        model_config_default(m->family, m->n_layer, m->n_head, m->d_model, V, m->max_seq_len);
    if (m->n_kv_head > 0) c.n_kv_head = m->n_kv_head;
    if (m->d_ff > 0) c.d_ff = m->d_ff;
    c.norm_eps = (float)m->norm_eps;
    c.rope_theta = (float)m->rope_theta;
    c.tied = m->tied;
    c.qkv_bias = c.qkv_bias || m->qkv_bias;
    return c;
}

ModelConfig run_model_config(const Run *run) {
    return model_config(run->recipe, run->tok);
}

Chat run_dataset_chat(const Run *run, const char *path) {
    char err[512], name[64] = "";
    Dataset *ds = dataset_open(path, DATA_KIND_COUNT, err, sizeof(err));
    int has = ds ? dataset_attribute(ds, "chat_template", name, sizeof(name), err, sizeof(err)) : 0;
    dataset_free(ds);
    if (has != 1) return chat_init(run->tok);
    Chat c = chat_init_named(run->tok, name, NULL, err, sizeof(err));
    return c.tok ? c : chat_init(run->tok);
}

SampleParams rollout_sample_params(const RolloutConfig *ro, int stop_token) {
    return (SampleParams){.temperature = (float)ro->temperature,
                          .top_k = ro->top_k,
                          .top_p = (float)ro->top_p,
                          .stop_token = stop_token,
                          .max_new_tokens = ro->max_new_tokens};
}

// ---- checkpoints and the files they are used with ---------------------------------------------

// What is wrong with path before HDF5 reads it: missing, a folder, empty, or no HDF5 signature
// (at offset 0, or after a user block of 512, 1024, ... bytes).
static int file_check_hdf5(const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return errno == ENOENT
                   ? lc_error(err, errlen, "%s: no such file", path)
                   : lc_error(err, errlen, "%s: cannot read (%s)", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return lc_error(err, errlen, "%s: a folder, not a checkpoint", path);
    if (sb.st_size == 0) return lc_error(err, errlen, "%s: an empty file, not a checkpoint", path);
    FILE *f = fopen(path, "rb");
    if (!f) return lc_error(err, errlen, "%s: cannot read (%s)", path, strerror(errno));
    char sig[8];
    int found = 0;
    for (long at = 0; !found && at + 8 <= sb.st_size; at = at ? 2 * at : 512)
        found = fseek(f, at, SEEK_SET) == 0 && fread(sig, 1, 8, f) == 8 &&
                memcmp(sig, "\211HDF\r\n\032\n", 8) == 0;
    fclose(f);
    return found ? 0 : lc_error(err, errlen, "%s: not an HDF5 file, so not a checkpoint", path);
}

// The model configuration of an open checkpoint; an eval stage's record (only /state) gets a
// message of its own.
static int header_read(hid_t f, const char *path, CheckpointInfo *ci, char *err, size_t errlen) {
    if (H5Aexists(f, "format") <= 0 && H5Lexists(f, "state", H5P_DEFAULT) > 0)
        return lc_error(err, errlen, "%s: holds no model, only /state (an eval stage's record)",
                        path);
    return model_read_config_h5(f, path, &ci->cfg, &ci->heads, err, errlen);
}

// Replaces the message of a file that is not a checkpoint when it is a dataset.
static void dataset_diagnose(const char *path, char *err, size_t errlen) {
    char ignored[256];
    Dataset *d = dataset_open(path, DATA_KIND_COUNT, ignored, sizeof(ignored));
    if (d)
        lc_error(err, errlen, "%s: a layercake dataset (kind '%s'), not a checkpoint", path,
                 data_kind_name(d->kind));
    dataset_free(d);
}

int run_checkpoint_info(const char *path, CheckpointInfo *ci, char *err, size_t errlen) {
    *ci = (CheckpointInfo){0};
    if (hf_is_folder(path)) { // a Hugging Face folder: its config.json, no tokenizer record
        HfConfig hc;
        if (hf_read_config(path, &hc, err, errlen)) return -1;
        ci->cfg = hc.cfg;
        ci->heads = hc.heads;
        return 0;
    }
    if (file_check_hdf5(path, err, errlen)) return -1;
    // every byte verified before HDF5 parses any of it (common/h5.h): a damaged header must be
    // refused here, not crash the reader
    hid_t f = h5_open_verified(path, err, errlen);
    if (f < 0) {
        dataset_diagnose(path, err, errlen); // datasets carry no seal: say what the file is
        return -1;
    }
    int rc = header_read(f, path, ci, err, errlen);
    bool has_state = H5Lexists(f, "state", H5P_DEFAULT) > 0;
    H5Fclose(f);
    if (rc) dataset_diagnose(path, err, errlen);
    if (rc || !has_state) return rc; // weights only: no fingerprint to compare
    TrainState st = {0};             // no models, scalars or cursor: /state's attributes only
    if (state_load(path, NULL, 0, &st, err, errlen)) return -1;
    ci->has_fingerprint = st.tokenizer != 0; // 0: written without a tokenizer (tests, tools)
    ci->fingerprint = st.tokenizer;
    return 0;
}

int run_check_tokenizer(const char *ckpt, const CheckpointInfo *ci, const char *tok_path,
                        const Tokenizer *tok, char *err, size_t errlen) {
    uint64_t fp = tokenizer_fingerprint(tok);
    int V = tokenizer_vocab_size(tok);
    if (ci->has_fingerprint && ci->fingerprint != fp)
        return lc_error(err, errlen,
                        "%s was trained with the tokenizer of fingerprint %016llx; %s is another "
                        "(fingerprint %016llx)",
                        ckpt, (unsigned long long)ci->fingerprint, tok_path,
                        (unsigned long long)fp);
    if (V > ci->cfg.vocab_size)
        return lc_error(err, errlen,
                        "%s has %d ids; the model of %s has a vocabulary of %d (it was trained "
                        "with another tokenizer)",
                        tok_path, V, ckpt, ci->cfg.vocab_size);
    return 0;
}

int run_check_dataset(const char *ckpt, const CheckpointInfo *ci, const char *data_path,
                      uint64_t data_fingerprint, char *err, size_t errlen) {
    if (!ci->has_fingerprint || ci->fingerprint == data_fingerprint) return 0;
    return lc_error(err, errlen,
                    "%s was made with the tokenizer of fingerprint %016llx; %s was trained with "
                    "another (fingerprint %016llx)",
                    data_path, (unsigned long long)data_fingerprint, ckpt,
                    (unsigned long long)ci->fingerprint);
}

// A checkpoint a stage starts from or uses must be of the run's tokenizer, vocabulary and
// context, or the stage would train on (and save) a model that mixes two of them.
static int start_check(const Recipe *r, const Tokenizer *tok, const char *path,
                       const CheckpointInfo *ci, char *err, size_t errlen) {
    ModelConfig want = model_config(r, tok);
    if (run_check_tokenizer(path, ci, r->tokenizer, tok, err, errlen)) return -1;
    if (ci->cfg.vocab_size != want.vocab_size)
        return lc_error(err, errlen,
                        "%s has a vocabulary of %d ids; this run's is %d (model.vocab_size, or "
                        "the tokenizer's when that is 0)",
                        path, ci->cfg.vocab_size, want.vocab_size);
    if (ci->cfg.max_seq_len != want.max_seq_len)
        return lc_error(err, errlen,
                        "%s has a context of %d tokens; this run's model.max_seq_len is %d", path,
                        ci->cfg.max_seq_len, want.max_seq_len);
    return 0;
}

const char *stage_start_name(const StageRun *sr, const char *init) {
    if (init && init[0]) return init;
    return *sr->run->recipe->model.from ? sr->run->recipe->model.from : "scratch";
}

Model *stage_model(StageRun *sr, const char *init, int heads, ModelMode mode, int max_B,
                   int max_T) {
    const Run *run = sr->run;
    uint64_t seed = stage_seed(sr, "init");
    if ((!init || !init[0]) && *run->recipe->model.from) init = run->recipe->model.from;
    if (!init || !init[0]) {
        Model *m = model_create(run->be, run_model_config(run), heads, mode, max_B, max_T);
        model_init_weights(m, seed);
        if (mode == MODEL_TRAIN) model_set_recompute(m, run->recipe->recompute);
        return m;
    }
    char path[4096], err[2048];
    CheckpointInfo ci;
    run_resolve_model(run, init, path, sizeof(path));
    Model *m = NULL;
    if (run_checkpoint_info(path, &ci, err, sizeof(err)) == 0 &&
        start_check(run->recipe, run->tok, path, &ci, err, sizeof(err)) == 0)
        m = hf_model_load_any(run->be, path, heads, mode, max_B, max_T, seed, err, sizeof(err));
    if (!m)
        fprintf(stderr, "layercake: stage '%s': cannot use '%s': %s\n", sr->stage->name, init, err);
    if (m && m->lora.rank > 0)
        model_lora_merge(m); // the adapters of an earlier LoRA stage are part of its model
    if (m && mode == MODEL_TRAIN) model_set_recompute(m, run->recipe->recompute);
    return m;
}

// Whether a's and b's frozen bases are the same weights, bit for bit.
static bool same_base(const Model *a, const Model *b) {
    if (a->frozen_numel != b->frozen_numel || a->frozen_numel == 0) return false;
    size_t n = a->frozen_numel;
    float *x = lc_malloc(n * sizeof(float)), *y = lc_malloc(n * sizeof(float));
    a->be->to_host(x, a->frozen_mem, n * sizeof(float));
    b->be->to_host(y, b->frozen_mem, n * sizeof(float));
    bool same = memcmp(x, y, n * sizeof(float)) == 0;
    free(x), free(y);
    return same;
}

Model *stage_model_on_trunk(StageRun *sr, const char *init, const Model *trunk, int heads,
                            int max_B, int max_T) {
    const Run *run = sr->run;
    char path[4096], err[2048];
    CheckpointInfo ci;
    run_resolve_model(run, init, path, sizeof(path));
    Model *m = NULL;
    if (trunk->lora.rank > 0 && run_checkpoint_info(path, &ci, err, sizeof(err)) == 0 &&
        start_check(run->recipe, run->tok, path, &ci, err, sizeof(err)) == 0)
        m = hf_model_load_any(run->be, path, heads, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    if (!m || m->lora.rank == 0 || !same_base(m, trunk)) {
        model_free(m); // not adapters over this base: a model of its own
        return stage_model(sr, init, heads, MODEL_INFER, max_B, max_T);
    }
    Model *v = model_create_adapter_view(trunk, m->heads, MODEL_INFER, max_B, max_T, &m->lora, 0);
    size_t n = m->train_table.numel; // the same table: the same heads and adapters
    float *host = lc_malloc(n * sizeof(float));
    run->be->to_host(host, m->params_mem, n * sizeof(float));
    run->be->to_device(v->params_mem, host, n * sizeof(float));
    model_weights_changed(v);
    free(host);
    model_free(m);
    printf("[%s] %s: adapters over the policy's base weights, held on its trunk\n", sr->stage->name,
           init);
    return v;
}

LoraConfig stage_lora_config(const Stage *st) {
    LoraConfig c = {.rank = st->lora.rank,
                    .alpha = (float)st->lora.alpha,
                    .init = st->lora.init == LORA_RECIPE_GAUSSIAN ? LORA_INIT_GAUSSIAN
                                                                  : LORA_INIT_KAIMING};
    for (int i = 0; i < st->lora.targets.n; i++) {
        LoraTarget t;
        if (lora_target_parse(st->lora.targets.items[i], &t) == 0) c.targets |= 1u << t;
    }
    return c;
}

// The stage's adapters' learning rate as a multiple of optim.lr.
static float lora_lr_scale(const Stage *st) {
    return st->lora.lr > 0 ? (float)(st->lora.lr / st->optim.lr) : 1.0f;
}

Model *stage_train_model(StageRun *sr, const char *init, int heads, int max_B, int max_T) {
    const Stage *st = sr->stage;
    Model *m = stage_model(sr, init, heads, MODEL_TRAIN, max_B, max_T);
    if (!m || st->lora.rank == 0) return m;
    LoraConfig c = stage_lora_config(st);
    char err[512];
    if (model_lora_attach(m, &c, stage_seed(sr, "lora"), err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake: stage '%s': %s\n", st->name, err);
        model_free(m);
        return NULL;
    }
    model_lora_lr_scale(m, lora_lr_scale(st));
    return m;
}

Model *stage_adapter_view(StageRun *sr, const Model *trunk, int heads, int max_B, int max_T) {
    LoraConfig c = stage_lora_config(sr->stage);
    Model *m = model_create_adapter_view(trunk, heads, MODEL_TRAIN, max_B, max_T, &c,
                                         stage_seed(sr, "adapters"));
    model_lora_lr_scale(m, lora_lr_scale(sr->stage));
    model_set_recompute(m, sr->run->recipe->recompute);
    return m;
}

// ---- file checks for `run` and `validate` -------------------------------------------------------

// What the content checks compare against: the recipe, and its tokenizer once it is loaded.
typedef struct {
    const Recipe *recipe;
    Tokenizer *tok;
} FileContext;

// Checks a file the recipe names: the tokenizer by loading it, datasets by kind and tokenizer
// fingerprint, checkpoints by their header, tokenizer, vocabulary, context and weights.
// sft data whose examples have no trained token would train to a NaN loss: refused here, when
// the run's files are checked, as well as when a stage opens it.
static int check_trained(Dataset *d, char *err, size_t errlen) {
    if (dataset_load(d, 0, err, errlen) != 0) return -1;
    int64_t first, n = dataset_count_untrained(d, &first);
    if (n == 0) return 0;
    snprintf(err, errlen,
             "%s: %lld of %lld examples have no trained token (the first is example %lld): every "
             "loss mask is 0 after the first token, or the example is one token long",
             d->path, (long long)n, (long long)d->n, (long long)first);
    return -1;
}

static int check_file(void *ctx, const char *path, const char *kind, const char *tokenizer,
                      char *err, size_t errlen) {
    FileContext *fc = ctx;
    DataKind dk;
    (void)tokenizer;
    if (strcmp(kind, "tokenizer") == 0) {
        tokenizer_free(fc->tok);
        fc->tok = tokenizer_load(path, err, errlen);
        return fc->tok ? 0 : -1;
    }
    if (data_kind_parse(kind, &dk) == 0) {
        Dataset *d = dataset_open(path, dk, err, errlen);
        if (!d) return -1;
        uint64_t fp = fc->tok ? tokenizer_fingerprint(fc->tok) : 0;
        int rc = fc->tok ? dataset_check_fingerprint(d, fp, err, errlen) : 0;
        if (!rc && dk == DATA_SFT) rc = check_trained(d, err, errlen);
        dataset_free(d);
        return rc;
    }
    if (strcmp(kind, "checkpoint") == 0) {
        CheckpointInfo ci;
        if (run_checkpoint_info(path, &ci, err, errlen) ||
            (fc->tok && start_check(fc->recipe, fc->tok, path, &ci, err, errlen)))
            return -1;
        Model *m = hf_model_load_any(backend_cpu(), path, 0, MODEL_INFER, 1, 1, 0, err,
                                     errlen); // every tensor read: seals, shapes, dtypes
        model_free(m);
        return m ? 0 : -1;
    }
    return 0;
}

RecipeError run_validate_files(const Recipe *r, char *err, size_t errlen) {
    FileContext fc = {.recipe = r};
    RecipeError rc = recipe_validate_files(r, check_file, &fc, err, errlen);
    tokenizer_free(fc.tok);
    return rc;
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

// Joins the run's processes. Ranks other than 0 print nothing to stdout (their lines would
// repeat rank 0's); errors still reach stderr, prefixed by the launcher where it does that.
static int open_comm(Run *run) {
    char err[1024];
    run->comm = comm_open(run->be, err, sizeof(err));
    if (!run->comm) {
        fprintf(stderr, "layercake: %s: data parallelism: %s\n", run->recipe->file, err);
        return 1;
    }
    run->rank = run->comm->rank;
    run->world = run->comm->world;
    if (run->rank != 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "layercake: rank %d: cannot silence stdout\n", run->rank);
    return 0;
}

int run_agree(const Run *run, int rc) {
    if (run->world == 1) return rc;
    double v = rc, all = rc;
    run->comm->broadcast_host(run->comm, &v, sizeof(v), 0);
    run->comm->all_reduce_sum_host(run->comm, &all, 1);
    return v != 0 || all != 0 ? 1 : 0;
}

int run_open(Run *run, const Recipe *r) {
    char err[2048];
    *run = (Run){.recipe = r, .world = 1};
    _Static_assert((int)PRECISION_BF16 == (int)BACKEND_PRECISION_BF16 &&
                       (int)ATTENTION_CUDNN == (int)BACKEND_ATTENTION_CUDNN &&
                       (int)ATTENTION_FLASH == (int)BACKEND_ATTENTION_FLASH,
                   "recipe enums follow kernels.h's");
    BackendOptions opts = {(BackendPrecision)r->precision, (BackendAttention)r->attention};
    run->be = backend_open(backend_kind_name(r->backend), &opts, err, sizeof(err));
    if (!run->be) { // not built in, no usable GPU, or kernels missing: err says which
        fprintf(stderr, "layercake: %s: backend '%s': %s\n", r->file, backend_kind_name(r->backend),
                err);
        return 1;
    }
    run->be->threads(r->threads);
    if (open_comm(run) != 0) return 1;
    int prepared = run->rank == 0 ? prepare_run(r) : 0; // rank 0 makes the files, the rest wait
    if (run_agree(run, prepared) != 0) return 1;
    run->tok = tokenizer_load(r->tokenizer, err, sizeof(err));
    if (!run->tok) {
        fprintf(stderr, "layercake: %s: tokenizer: %s\n", r->file, err);
        return 1;
    }
    if (tokenizer_eot(run->tok) < 0) { // every stage ends documents and responses with it
        fprintf(stderr,
                "layercake: %s: tokenizer: %s has no end-of-text token (set eos_token in its "
                "tokenizer_config.json)\n",
                r->file, r->tokenizer);
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
    comm_close(run->comm);
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
    if (fresh && run->rank == 0) discard_stage(&sr);
    if (run_agree(run, 0)) return 1; // the others see the discarded files gone
    if (state_is_complete(final) == 1) {
        printf("[%s] already complete (%s); skipping\n", sr.stage->name, final);
        return 0;
    }
    int rc = 0;
    if (run->rank == 0 && (fs_mkdirs(sr.dir) != 0 || write_stage_json(&sr) != 0)) {
        fprintf(stderr, "layercake: cannot create %s\n", sr.dir);
        rc = 1;
    }
    if (run_agree(run, rc)) return 1;
    return fn(&sr);
}

int run_stages(Run *run, int first, int last, bool fresh, StageFn fn) {
    const Recipe *r = run->recipe;
    int made = 0;
    if (run->rank == 0 && (fs_mkdirs(r->output_dir) != 0 || write_recipe(run) != 0)) {
        fprintf(stderr, "layercake: cannot create the run directory %s\n", r->output_dir);
        made = 1;
    }
    if (run_agree(run, made)) return 1;
    printf("run '%s' -> %s (%s backend, %d threads)\n", r->name, r->output_dir, run->be->name,
           run->be->threads(0));
    int rc = 0;
    for (int i = first; i <= last && !rc; i++) rc = run_one(run, i, fresh, fn);
    if (!rc) printf("run '%s' complete: %s\n", r->name, r->output_dir);
    return rc;
}
