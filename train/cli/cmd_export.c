// train/cli/cmd_export.c: `layercake export CKPT.h5 --format hf --out DIR`: a layercake
// checkpoint as a Hugging Face model folder (model/hf.h; docs/models.md), with the tokenizer
// files of a folder copied beside it.
#include "common/check.h"
#include "common/error.h"
#include "common/fs.h"
#include "data/tokenizer.h"
#include "model/hf.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include "train/run/state.h"
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *in, *format, *out, *dtype, *tokenizer;
    uint64_t shard;
    int bos, eos; // -1: not given
} ExportArgs;

static const char DESCRIPTION[] =
    "Writes CKPT.h5 (a layercake checkpoint, or a Hugging Face folder) into DIR as\n"
    "transformers' save_pretrained does: config.json, model.safetensors (sharded above\n"
    "--shard-size bytes, with model.safetensors.index.json) and generation_config.json. The GPT-2\n"
    "family exports as GPT2LMHeadModel; the llama family as LlamaForCausalLM, or\n"
    "Qwen2ForCausalLM when it has q/k/v biases; a model with only a scalar head as the\n"
    "...ForSequenceClassification of one label. --tokenizer copies the Hugging Face tokenizer\n"
    "files of a folder (tokenizer.json, tokenizer.model, tokenizer_config.json,\n"
    "special_tokens_map.json, vocab.json, merges.txt; GPT-2's encoder.json and vocab.bpe as\n"
    "vocab.json and merges.txt) into DIR. bos_token_id and eos_token_id come from --bos-id and\n"
    "--eos-id, else the source folder's config.json, the tokenizer folder's config.json, or the\n"
    "end-of-text id of a layercake tokenizer (--tokenizer, or the one the checkpoint records);\n"
    "otherwise they are left out.\n";

static int parse(int argc, char **argv, ExportArgs *a, OptionsCommand *cmd) {
    *a = (ExportArgs){.dtype = "f32", .shard = 5000000000ull, .bos = -1, .eos = -1};
    static Option opts[] = {
        {"format", 'f', OPT_STRING, NULL, 0, 0, true, "FORMAT", "hf (the only format)"},
        {"out", 'o', OPT_STRING, NULL, 0, 0, true, "DIR", "the folder to write"},
        {"dtype", 0, OPT_STRING, NULL, 0, 0, false, "TYPE",
         "f32, bf16 or f16: the safetensors data type (default f32)"},
        {"shard-size", 0, OPT_U64, NULL, 0, 0, false, "BYTES",
         "shard the weights above this many bytes; 0: one file (default 5000000000)"},
        {"tokenizer", 0, OPT_STRING, NULL, 0, 0, false, "PATH",
         "a folder whose Hugging Face tokenizer files are copied into DIR"},
        {"bos-id", 0, OPT_INT, NULL, 0, INT32_MAX, false, "ID", "bos_token_id to write"},
        {"eos-id", 0, OPT_INT, NULL, 0, INT32_MAX, false, "ID", "eos_token_id to write"},
        {0}};
    void *where[] = {&a->format, &a->out, &a->dtype, &a->shard, &a->tokenizer, &a->bos, &a->eos};
    for (int i = 0; opts[i].name; i++) opts[i].value = where[i];
    *cmd = (OptionsCommand){.name = "export",
                            .synopsis = "CKPT.h5 --format hf --out DIR [options]",
                            .summary = "write a checkpoint as a Hugging Face model folder",
                            .description = DESCRIPTION,
                            .options = opts,
                            .args = "CKPT.h5",
                            .min_args = 1,
                            .max_args = 1};
    OptionArgs args;
    int rc = options_parse(cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    a->in = args.v[0];
    if (strcmp(a->format, "hf") != 0)
        return options_usage_error(cmd, "--format: '%s' is not a format (hf)", a->format);
    if (strcmp(a->dtype, "f32") && strcmp(a->dtype, "bf16") && strcmp(a->dtype, "f16"))
        return options_usage_error(cmd, "--dtype: '%s' is not f32, bf16 or f16", a->dtype);
    return OPTIONS_CONTINUE;
}

// ---- tokenizer files ------------------------------------------------------------------------

// HF tokenizer files copied as they are, then GPT-2's original names and their HF names.
static const char *const TOK_FILES[] = {"tokenizer.json",
                                        "tokenizer.model",
                                        "tokenizer_config.json",
                                        "special_tokens_map.json",
                                        "vocab.json",
                                        "merges.txt",
                                        NULL};
static const char *const GPT2_FILES[][2] = {{"encoder.json", "vocab.json"},
                                            {"vocab.bpe", "merges.txt"}};

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// The tokenizer files of folder dir to copy: pairs (source name, name in the export); returns
// the count.
static int tokenizer_plan(const char *dir, const char *plan[][2]) {
    int n = 0;
    for (int i = 0; TOK_FILES[i]; i++)
        if (is_file(dir, TOK_FILES[i])) plan[n][0] = plan[n][1] = TOK_FILES[i], n++;
    for (int i = 0; i < 2; i++)
        if (!is_file(dir, GPT2_FILES[i][1]) && is_file(dir, GPT2_FILES[i][0]))
            plan[n][0] = GPT2_FILES[i][0], plan[n][1] = GPT2_FILES[i][1], n++;
    return n;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen) {
    FILE *f = fopen(from, "rb");
    if (!f) return lc_error(err, errlen, "%s: %s", from, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *buf = lc_malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) LC_DIE("out of memory copying %s", from);
            buf = b;
        }
    }
    int bad = ferror(f);
    fclose(f);
    int rc = bad ? lc_error(err, errlen, "%s: reading failed", from)
                 : fs_write_atomic(to, buf, n, err, errlen);
    free(buf);
    return rc;
}

// Whether --tokenizer is a folder with files to copy: 0, or 1 after saying why not.
static int tokenizer_check(const char *path) {
    const char *plan[8][2];
    if (!is_dir(path)) {
        fprintf(stderr,
                "layercake export: --tokenizer %s: not a folder (give the folder holding the "
                "Hugging Face tokenizer files)\n",
                path);
        return 1;
    }
    if (tokenizer_plan(path, plan) == 0) {
        fprintf(stderr,
                "layercake export: --tokenizer %s holds none of tokenizer.json, tokenizer.model, "
                "tokenizer_config.json, special_tokens_map.json, vocab.json, merges.txt, "
                "encoder.json, vocab.bpe\n",
                path);
        return 1;
    }
    return 0;
}

static int copy_tokenizer(const char *src, const char *dir) {
    const char *plan[8][2];
    int n = tokenizer_plan(src, plan);
    char from[4096], to[4096], err[4096];
    for (int i = 0; i < n; i++) {
        snprintf(from, sizeof(from), "%s/%s", src, plan[i][0]);
        snprintf(to, sizeof(to), "%s/%s", dir, plan[i][1]);
        if (copy_file(from, to, err, sizeof(err)) != 0) {
            fprintf(stderr, "layercake export: %s\n", err);
            return 1;
        }
        printf("copied %s -> %s\n", from, to);
    }
    return 0;
}

// ---- bos and eos ----------------------------------------------------------------------------

// bos_token_id / eos_token_id of dir/name (config.json, generation_config.json), where set.
static void ids_from_json(const char *dir, const char *name, int *bos, int *eos) {
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    json_t *j = json_load_file(p, 0, NULL);
    const char *keys[2] = {"bos_token_id", "eos_token_id"};
    int *dst[2] = {bos, eos};
    for (int k = 0; k < 2 && j; k++) {
        json_t *v = json_object_get(j, keys[k]);
        if (json_is_array(v)) v = json_array_get(v, 0);
        if (*dst[k] < 0 && json_is_integer(v) && json_integer_value(v) >= 0 &&
            json_integer_value(v) <= INT32_MAX)
            *dst[k] = (int)json_integer_value(v);
    }
    json_decref(j);
}

// The end-of-text id of a layercake tokenizer at path, as both bos and eos (GPT-2's way).
static void ids_from_tokenizer(const char *path, int *bos, int *eos) {
    char err[1024];
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    if (!tok) return;
    int eot = tokenizer_eot(tok);
    if (*bos < 0) *bos = eot;
    if (*eos < 0) *eos = eot;
    tokenizer_free(tok);
}

static void find_ids(const ExportArgs *a, int V, int *bos, int *eos) {
    *bos = a->bos, *eos = a->eos;
    if (hf_is_folder(a->in)) {
        ids_from_json(a->in, "config.json", bos, eos);
        ids_from_json(a->in, "generation_config.json", bos, eos);
    }
    if (a->tokenizer && is_dir(a->tokenizer)) {
        ids_from_json(a->tokenizer, "config.json", bos, eos);
        ids_from_json(a->tokenizer, "generation_config.json", bos, eos);
    }
    if (a->tokenizer) ids_from_tokenizer(a->tokenizer, bos, eos);
    char recorded[4096];
    if ((*bos < 0 || *eos < 0) && !hf_is_folder(a->in) &&
        state_tokenizer_path(a->in, recorded, sizeof(recorded)) == 0)
        ids_from_tokenizer(recorded, bos, eos);
    if (*bos >= V) *bos = -1;
    if (*eos >= V) *eos = -1;
}

int cmd_export(int argc, char **argv) {
    ExportArgs a;
    OptionsCommand cmd;
    int rc = parse(argc, argv, &a, &cmd);
    if (rc != OPTIONS_CONTINUE) return rc;
    if (a.tokenizer && tokenizer_check(a.tokenizer) != 0) return 1;
    char err[4096], note[2048];
    Model *m = hf_model_load_any(backend_cpu(), a.in, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "layercake export: %s\n", err);
        return 1;
    }
    if (a.bos >= m->cfg.vocab_size || a.eos >= m->cfg.vocab_size) {
        rc = options_usage_error(&cmd, "--%s: %d is outside the model's vocabulary [0, %d)",
                                 a.bos >= m->cfg.vocab_size ? "bos-id" : "eos-id",
                                 a.bos >= m->cfg.vocab_size ? a.bos : a.eos, m->cfg.vocab_size);
        model_free(m);
        return rc;
    }
    HfExportOptions o = {.shard_bytes = a.shard};
    st_dtype_parse(strcmp(a.dtype, "f32") == 0    ? "F32"
                   : strcmp(a.dtype, "bf16") == 0 ? "BF16"
                                                  : "F16",
                   &o.dtype);
    find_ids(&a, m->cfg.vocab_size, &o.bos_id, &o.eos_id);
    rc = 0;
    if (hf_export(m, a.out, &o, note, sizeof(note), err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake export: %s\n", err);
        rc = 1;
    } else {
        if (note[0]) fprintf(stderr, "layercake export: note: %s\n", note);
        printf("%s -> %s: %s, %s", a.in, a.out, hf_architecture(m), a.dtype);
        if (o.bos_id >= 0) printf(", bos %d", o.bos_id);
        if (o.eos_id >= 0) printf(", eos %d", o.eos_id);
        printf("\n");
        if (a.tokenizer) rc = copy_tokenizer(a.tokenizer, a.out);
    }
    model_free(m);
    return rc;
}
