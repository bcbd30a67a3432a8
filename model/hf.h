// model/hf.h: Hugging Face model folders (config.json + safetensors, single or sharded) read
// into layercake models and written from them. Architectures: GPT2LMHeadModel,
// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, and their ...ForSequenceClassification
// reward models with one label (the scalar head). docs/models.md has the name mapping, the
// config.json keys read and written, and every refusal.
#pragma once
#include "common/safetensors.h"
#include "model/model.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// What a folder's config.json says, in layercake's terms.
typedef struct {
    ModelConfig cfg;
    int heads;             // MODEL_HEAD_LM (...ForCausalLM, GPT2LMHeadModel) or MODEL_HEAD_SCALAR
                           // (...ForSequenceClassification)
    char architecture[64]; // architectures[0], e.g. "LlamaForCausalLM"
    int bos_id, eos_id;    // bos_token_id, eos_token_id; -1 when config.json has none
} HfConfig;

// 1 if path is a folder holding config.json (a Hugging Face model folder), else 0.
int hf_is_folder(const char *path);

// Reads and checks dir/config.json. Returns 0, or -1 with a message naming the file and the key
// (an unknown architecture, rope_scaling, a sliding window, a head_dim other than
// hidden_size / num_attention_heads, mlp_bias, ...).
int hf_read_config(const char *dir, HfConfig *hc, char *err, size_t errlen);

// Reads the weights of folder dir (whose config.json gave hc) into m, whose configuration must
// be hc->cfg. Every tensor of the architecture must be there with its shape; a tensor the
// architecture does not have is refused (only known buffers: rotary inv_freq, GPT-2's attn.bias
// and attn.masked_bias, and an lm_head.weight equal to the tied embedding are passed over). A
// scalar head m has and the folder lacks (a ...ForCausalLM) keeps m's values. Padded vocabulary
// rows are set to zero. Returns 0, or -1 with a message naming the folder and the tensor.
int hf_read_params(Model *m, const char *dir, const HfConfig *hc, char *err, size_t errlen);

// model_load for a folder: a model with the given heads (0 = the folder's), mode and activation
// size (max_T capped at the model's context). A scalar head the folder lacks is initialised
// from seed. NULL with a message naming the folder and what is wrong.
Model *hf_model_load(const Backend *be, const char *dir, int heads, ModelMode mode, int max_B,
                     int max_T, uint64_t seed, char *err, size_t errlen);

// The configuration and heads of a Hugging Face folder (its config.json) or of a layercake
// checkpoint (its header, after the seal is verified). 0, or -1 with a message naming the file.
int model_read_config_any(const char *path, ModelConfig *cfg, int *heads, char *err, size_t errlen);

// hf_model_load when path is a Hugging Face folder (hf_is_folder), else model_load of a layercake
// checkpoint.
Model *hf_model_load_any(const Backend *be, const char *path, int heads, ModelMode mode, int max_B,
                         int max_T, uint64_t seed, char *err, size_t errlen);

typedef struct {
    StDtype dtype;        // of the safetensors data
    uint64_t shard_bytes; // shard above this many bytes of data; 0 = one file
    int bos_id, eos_id;   // written to config.json and generation_config.json; -1: left out
} HfExportOptions;

// The architecture m exports as: GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM (q/k/v
// biases); a model with only a scalar head as the family's ...ForSequenceClassification.
const char *hf_architecture(const Model *m);

// Writes m into folder dir (created if missing) as transformers' save_pretrained does:
// config.json, model.safetensors (or shards and model.safetensors.index.json) and, for a
// language model, generation_config.json. What cannot be exported is left out and described in
// note (empty when nothing was): a scalar head beside the LM head, a scalar head's bias
// (score.weight has none), an untied output layer of a scalar-head model. A model with LoRA
// adapters is refused (model_lora_merge it first, or write the adapters with model/peft.h's
// peft_export). Returns 0, or -1 with a message naming the file.
int hf_export(const Model *m, const char *dir, const HfExportOptions *o, char *note, size_t notelen,
              char *err, size_t errlen);
