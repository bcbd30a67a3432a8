// train/cli/cmd_import.c: `layercake import hf DIR --out CKPT.h5` and `layercake import llama2c
// MODEL.bin --out CKPT.h5`: real models' weights into layercake weights files (model/hf.h,
// model/llama2c.h; docs/models.md). `import hf BASE --adapter DIR`: a base plus a Hugging Face
// PEFT LoRA adapter into a checkpoint with adapters (model/peft.h).
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/hf.h"
#include "model/llama2c.h"
#include "model/peft.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include <stdio.h>
#include <string.h>

static const OptionsCommand HF = {
    .name = "import hf",
    .synopsis = "DIR [--adapter ADAPTER] --out CKPT.h5",
    .summary = "a Hugging Face model folder (config.json + safetensors) into a weights file",
    .description =
        "Reads DIR/config.json and DIR/model.safetensors (or the shards named by\n"
        "model.safetensors.index.json) of a GPT2LMHeadModel, LlamaForCausalLM,\n"
        "MistralForCausalLM or Qwen2ForCausalLM (or a ...ForSequenceClassification reward model\n"
        "with one label) and writes the weights as a sealed layercake weights file. F16 and BF16\n"
        "weights become float32 exactly. The tokenizer stays in DIR: recipes name it by their\n"
        "tokenizer: key. docs/models.md lists the names, keys and refusals.\n"
        "--adapter ADAPTER adds a Hugging Face PEFT LoRA adapter folder (adapter_config.json,\n"
        "adapter_model.safetensors) to the base DIR (a model folder or a layercake checkpoint):\n"
        "the weights file holds the base and the adapters, exactly (every module padded to the\n"
        "largest rank, its alpha/r folded into its B). DoRA, rsLoRA, biases, modules_to_save and\n"
        "layers_to_transform are refused; lora_dropout only matters in training.\n",
    .args = "DIR",
    .min_args = 1,
    .max_args = 1};

static const OptionsCommand LLAMA2C = {
    .name = "import llama2c",
    .synopsis = "MODEL.bin [--tokenizer TOK.bin] --out CKPT.h5",
    .summary = "a llama2.c legacy checkpoint (.bin) into a weights file",
    .description =
        "Reads a llama2.c legacy checkpoint (a 7-int header, then float32 arrays; a negative\n"
        "vocab_size marks an unshared classifier at the end) and writes a sealed layercake\n"
        "weights file of the llama family. The rows of wq and wk are permuted from llama2.c's\n"
        "interleaved RoPE pairs to the rotate-half layout layercake and Hugging Face use, so the\n"
        "model computes what llama2.c's run.c computes. --tokenizer is checked to load and to fit\n"
        "the model's vocabulary; recipes take the tokenizer by their tokenizer: key.\n",
    .args = "MODEL.bin",
    .min_args = 1,
    .max_args = 1};

// Saves m to out and prints what was imported.
static int save(Model *m, const char *from, const char *what, const char *out, const char *name) {
    char err[2048];
    int rc = 0;
    if (model_save(m, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake %s: %s\n", name, err);
        rc = 1;
    } else {
        const ModelConfig *c = &m->cfg;
        printf("%s: %s -> %s\n", from, what, out);
        printf("family %s, %d layers, %d heads (%d key/value), d_model %d, d_ff %d, vocab %d, "
               "context %d, %s output, %zu parameters\n",
               model_family_name(c->family), c->n_layer, c->n_head, c->n_kv_head, c->d_model,
               c->d_ff, c->vocab_size, c->max_seq_len, c->tied ? "tied" : "untied", m->table.numel);
    }
    model_free(m);
    return rc;
}

// Whether the tokenizer at path loads and its ids fit m's vocabulary: 0, or 1 after saying why.
static int tokenizer_fits(const char *path, const Model *m, const char *name) {
    char err[2048];
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    int rc = 0;
    if (!tok) {
        fprintf(stderr, "layercake %s: --tokenizer %s\n", name, err);
        rc = 1;
    } else if (tokenizer_vocab_size(tok) > m->cfg.vocab_size) {
        fprintf(stderr, "layercake %s: --tokenizer %s has %d ids; the model's vocabulary %d\n",
                name, path, tokenizer_vocab_size(tok), m->cfg.vocab_size);
        rc = 1;
    }
    tokenizer_free(tok);
    return rc;
}

// The hint for a folder whose tokenizer files load: recipes name it as their tokenizer.
static void tokenizer_hint(const char *dir) {
    char err[2048];
    Tokenizer *tok = tokenizer_load(dir, err, sizeof(err));
    if (tok)
        printf("tokenizer: %s loads (%s, %d ids): give it to recipes as tokenizer: %s\n", dir,
               tokenizer_kind(tok), tokenizer_vocab_size(tok), dir);
    tokenizer_free(tok);
}

static int import_hf_main(int argc, char **argv) {
    const char *out = NULL, *adapter = NULL;
    const Option opts[] = {
        {"out", 'o', OPT_STRING, &out, 0, 0, true, "CKPT.h5", "the weights file to write"},
        {"adapter", 0, OPT_STRING, &adapter, 0, 0, false, "ADAPTER",
         "a PEFT LoRA adapter folder to add to the base"},
        {0}};
    OptionsCommand cmd = HF;
    cmd.options = opts;
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    const char *dir = args.v[0];
    char err[2048];
    HfConfig hc;
    if (adapter) {
        Model *m = hf_model_load_any(backend_cpu(), dir, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
        if (!m || peft_apply(m, adapter, err, sizeof(err)) != 0) {
            fprintf(stderr, "layercake import hf: %s\n", err);
            model_free(m);
            return 1;
        }
        char what[128];
        snprintf(what, sizeof(what), "%s + LoRA rank %d", hf_architecture(m), m->lora.rank);
        return save(m, adapter, what, out, cmd.name);
    }
    if (!hf_is_folder(dir)) {
        fprintf(stderr, "layercake import hf: %s is not a folder holding config.json\n", dir);
        return 1;
    }
    if (hf_read_config(dir, &hc, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake import hf: %s\n", err);
        return 1;
    }
    Model *m = hf_model_load(backend_cpu(), dir, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "layercake import hf: %s\n", err);
        return 1;
    }
    rc = save(m, dir, hc.architecture, out, cmd.name);
    if (rc == 0) tokenizer_hint(dir);
    return rc;
}

static int import_llama2c_main(int argc, char **argv) {
    const char *out = NULL, *tok = NULL;
    const Option opts[] = {
        {"out", 'o', OPT_STRING, &out, 0, 0, true, "CKPT.h5", "the weights file to write"},
        {"tokenizer", 0, OPT_STRING, &tok, 0, 0, false, "TOK.bin",
         "llama2.c's tokenizer file (checked to load and fit the model)"},
        {0}};
    OptionsCommand cmd = LLAMA2C;
    cmd.options = opts;
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    char err[2048];
    Model *m = llama2c_model_load(backend_cpu(), args.v[0], MODEL_HEAD_LM, MODEL_INFER, 1, 1, 0,
                                  err, sizeof(err));
    if (!m) {
        fprintf(stderr, "layercake import llama2c: %s\n", err);
        return 1;
    }
    if (tok && tokenizer_fits(tok, m, cmd.name) != 0) {
        model_free(m);
        return 1;
    }
    return save(m, args.v[0], "llama2.c legacy checkpoint", out, cmd.name);
}

int cmd_import(int argc, char **argv) {
    static const OptionsCommand *const SUBS[] = {&HF, &LLAMA2C};
    static const OptionsMain RUN[] = {import_hf_main, import_llama2c_main};
    return options_dispatch("import", SUBS, RUN, 2, argc, argv);
}
