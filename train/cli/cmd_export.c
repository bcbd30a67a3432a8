// train/cli/cmd_export.c: `layercake export CKPT.h5 --format hf --out DIR`: a layercake
// checkpoint as a Hugging Face model folder (model/hf.h; docs/models.md), with its tokenizer in
// Hugging Face's files (data/tokenizer.h's tokenizer_export_hf); with --merge-lora its LoRA
// adapters folded into the weights. `--format peft`: the adapters alone as a Hugging Face PEFT
// adapter folder (model/peft.h).
#include "common/check.h"
#include "common/error.h"
#include "data/tokenizer.h"
#include "model/hf.h"
#include "model/peft.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include "train/run/run.h"
#include "train/run/state.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *in, *format, *out, *dtype, *tokenizer;
    uint64_t shard;
    int bos, eos; // -1: not given
    bool merge_lora;
} ExportArgs;

static const char DESCRIPTION[] =
    "Writes CKPT.h5 (a layercake checkpoint, or a Hugging Face folder) into DIR as\n"
    "transformers' save_pretrained does: config.json, model.safetensors (sharded above\n"
    "--shard-size bytes, with model.safetensors.index.json) and generation_config.json. The GPT-2\n"
    "family exports as GPT2LMHeadModel; the llama family as LlamaForCausalLM, or\n"
    "Qwen2ForCausalLM when it has q/k/v biases; a model with only a scalar head as the\n"
    "...ForSequenceClassification of one label. The tokenizer (--tokenizer, else the one the\n"
    "checkpoint records, or the source folder's) is written beside the weights in Hugging\n"
    "Face's files (tokenizer.json, tokenizer.model or vocab.json + merges.txt, with\n"
    "tokenizer_config.json). bos_token_id and eos_token_id come from --bos-id and --eos-id,\n"
    "else the source folder's config.json, else the tokenizer's BOS and EOS; otherwise they are\n"
    "left out. A checkpoint with LoRA adapters exports with --merge-lora (the adapters folded\n"
    "into the weights, W += alpha/r B A) and is refused without it.\n"
    "--format peft writes the LoRA adapters alone as Hugging Face PEFT saves them\n"
    "(adapter_config.json, adapter_model.safetensors) for the model the base exports as;\n"
    "docs/models.md has the module names.\n";

static int parse(int argc, char **argv, ExportArgs *a, OptionsCommand *cmd) {
    *a = (ExportArgs){.dtype = "f32", .shard = 5000000000ull, .bos = -1, .eos = -1};
    static Option opts[] = {
        {"format", 'f', OPT_STRING, NULL, 0, 0, true, "FORMAT",
         "hf (a model folder) or peft (the LoRA adapters)"},
        {"out", 'o', OPT_STRING, NULL, 0, 0, true, "DIR", "the folder to write"},
        {"dtype", 0, OPT_STRING, NULL, 0, 0, false, "TYPE",
         "f32, bf16 or f16: the safetensors data type (default f32)"},
        {"shard-size", 0, OPT_U64, NULL, 0, 0, false, "BYTES",
         "shard the weights above this many bytes; 0: one file (default 5000000000)"},
        {"tokenizer", 0, OPT_STRING, NULL, 0, 0, false, "PATH",
         "the tokenizer to write into DIR (default: the checkpoint's)"},
        {"bos-id", 0, OPT_INT, NULL, 0, INT32_MAX, false, "ID", "bos_token_id to write"},
        {"eos-id", 0, OPT_INT, NULL, 0, INT32_MAX, false, "ID", "eos_token_id to write"},
        {"merge-lora", 0, OPT_FLAG, NULL, 0, 0, false, NULL,
         "fold the LoRA adapters into the weights (--format hf)"},
        {0}};
    void *where[] = {&a->format,    &a->out, &a->dtype, &a->shard,
                     &a->tokenizer, &a->bos, &a->eos,   &a->merge_lora};
    for (int i = 0; opts[i].name; i++) opts[i].value = where[i];
    *cmd = (OptionsCommand){.name = "export",
                            .synopsis = "CKPT.h5 --format hf|peft --out DIR [options]",
                            .summary = "write a checkpoint as a Hugging Face model folder or "
                                       "PEFT adapter",
                            .description = DESCRIPTION,
                            .options = opts,
                            .args = "CKPT.h5",
                            .min_args = 1,
                            .max_args = 1};
    OptionArgs args;
    int rc = options_parse(cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    a->in = args.v[0];
    if (strcmp(a->format, "hf") != 0 && strcmp(a->format, "peft") != 0)
        return options_usage_error(cmd, "--format: '%s' is not a format (hf, peft)", a->format);
    if (a->merge_lora && strcmp(a->format, "hf") != 0)
        return options_usage_error(cmd, "--merge-lora: only with --format hf");
    if (strcmp(a->dtype, "f32") && strcmp(a->dtype, "bf16") && strcmp(a->dtype, "f16"))
        return options_usage_error(cmd, "--dtype: '%s' is not f32, bf16 or f16", a->dtype);
    return OPTIONS_CONTINUE;
}

// ---- the tokenizer ---------------------------------------------------------------------------

// The tokenizer to export: --tokenizer (it must load and fit the model), else the one the
// checkpoint records or the source folder's (when they load). *rc 1 when --tokenizer is bad.
static Tokenizer *tokenizer_for(const ExportArgs *a, const Model *m, int *rc) {
    char err[2048], recorded[4096];
    bool folder = hf_is_folder(a->in);
    *rc = 0;
    if (!a->tokenizer) {
        const char *path = folder                                                         ? a->in
                           : state_tokenizer_path(a->in, recorded, sizeof(recorded)) == 0 ? recorded
                                                                                          : NULL;
        Tokenizer *tok = path ? tokenizer_load(path, err, sizeof(err)) : NULL;
        if (tok && tokenizer_vocab_size(tok) <= m->cfg.vocab_size) {
            printf("tokenizer: %s (%s)\n", path, tokenizer_kind(tok));
            return tok;
        }
        tokenizer_free(tok);
        fprintf(stderr, "layercake export: note: no tokenizer written (%s); pass --tokenizer\n",
                !path  ? "the checkpoint records none"
                : !tok ? "the recorded one does not load"
                       : "the recorded one has more ids than the model");
        return NULL;
    }
    Tokenizer *tok = tokenizer_load(a->tokenizer, err, sizeof(err));
    CheckpointInfo ci;
    bool bad = !tok;
    if (!bad && folder && tokenizer_vocab_size(tok) > m->cfg.vocab_size)
        bad = lc_error(err, sizeof(err), "%s has %d ids; the model's vocabulary %d", a->tokenizer,
                       tokenizer_vocab_size(tok), m->cfg.vocab_size) != 0;
    if (!bad && !folder) // a training checkpoint's fingerprint, and the ids fit the model
        bad = run_checkpoint_info(a->in, &ci, err, sizeof(err)) != 0 ||
              run_check_tokenizer(a->in, &ci, a->tokenizer, tok, err, sizeof(err)) != 0;
    if (!bad) return tok;
    fprintf(stderr, "layercake export: %s\n", err);
    tokenizer_free(tok);
    *rc = 1;
    return NULL;
}

// bos_token_id and eos_token_id: --bos-id/--eos-id, the source folder's, the tokenizer's.
static void find_ids(const ExportArgs *a, const Tokenizer *tok, int V, int *bos, int *eos) {
    *bos = a->bos, *eos = a->eos;
    HfConfig hc;
    char err[1024];
    if (hf_is_folder(a->in) && hf_read_config(a->in, &hc, err, sizeof(err)) == 0) {
        if (*bos < 0) *bos = hc.bos_id;
        if (*eos < 0) *eos = hc.eos_id;
    }
    if (tok && *bos < 0) *bos = tokenizer_bos(tok);
    if (tok && *eos < 0) *eos = tokenizer_eos(tok);
    if (*bos >= V) *bos = -1;
    if (*eos >= V) *eos = -1;
}

int cmd_export(int argc, char **argv) {
    ExportArgs a;
    OptionsCommand cmd;
    int rc = parse(argc, argv, &a, &cmd);
    if (rc != OPTIONS_CONTINUE) return rc;
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
    if (strcmp(a.format, "peft") == 0) {
        rc = 0;
        StDtype dt;
        st_dtype_parse(strcmp(a.dtype, "f32") == 0    ? "F32"
                       : strcmp(a.dtype, "bf16") == 0 ? "BF16"
                                                      : "F16",
                       &dt);
        if (peft_export(m, a.out, dt, note, sizeof(note), err, sizeof(err)) != 0) {
            fprintf(stderr, "layercake export: %s: %s\n", a.in, err);
            rc = 1;
        } else {
            if (note[0]) fprintf(stderr, "layercake export: note: %s\n", note);
            printf("%s -> %s: PEFT LoRA adapter (rank %d, alpha %g) for %s, %s\n", a.in, a.out,
                   m->lora.rank, (double)m->lora.alpha, hf_architecture(m), a.dtype);
        }
        model_free(m);
        return rc;
    }
    if (m->lora.rank > 0 && !a.merge_lora) {
        fprintf(stderr,
                "layercake export: %s has LoRA adapters (rank %d): a Hugging Face folder cannot "
                "hold them; pass --merge-lora to fold them into the weights, or export them "
                "with --format peft\n",
                a.in, m->lora.rank);
        model_free(m);
        return 1;
    }
    if (a.merge_lora && m->lora.rank == 0)
        fprintf(stderr, "layercake export: note: --merge-lora: %s has no LoRA adapters\n", a.in);
    model_lora_merge(m);
    Tokenizer *tok = tokenizer_for(&a, m, &rc);
    if (rc) {
        model_free(m);
        return rc;
    }
    HfExportOptions o = {.shard_bytes = a.shard};
    st_dtype_parse(strcmp(a.dtype, "f32") == 0    ? "F32"
                   : strcmp(a.dtype, "bf16") == 0 ? "BF16"
                                                  : "F16",
                   &o.dtype);
    find_ids(&a, tok, m->cfg.vocab_size, &o.bos_id, &o.eos_id);
    if (hf_export(m, a.out, &o, note, sizeof(note), err, sizeof(err)) != 0 ||
        (tok && tokenizer_export_hf(tok, a.out, err, sizeof(err)) != 0)) {
        fprintf(stderr, "layercake export: %s\n", err);
        rc = 1;
    } else {
        if (note[0]) fprintf(stderr, "layercake export: note: %s\n", note);
        printf("%s -> %s: %s, %s", a.in, a.out, hf_architecture(m), a.dtype);
        if (o.bos_id >= 0) printf(", bos %d", o.bos_id);
        if (o.eos_id >= 0) printf(", eos %d", o.eos_id);
        printf("%s\n", tok ? ", with the tokenizer" : "");
    }
    tokenizer_free(tok);
    model_free(m);
    return rc;
}
