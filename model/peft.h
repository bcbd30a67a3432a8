// model/peft.h: LoRA adapters as Hugging Face PEFT saves them (adapter_config.json and
// adapter_model.safetensors), written from a layercake model's adapters and read onto a base
// model. docs/models.md ("LoRA adapters (PEFT)") has the module names, GPT-2's fused c_attn
// block construction, and every refusal.
#pragma once
#include "common/safetensors.h"
#include "model/model.h"
#include <stddef.h>

// Writes m's adapters into folder dir (created if missing) as PEFT's save_pretrained does, for
// the Hugging Face model m's base exports as (hf_export): adapter_config.json and
// adapter_model.safetensors (tensors in dtype). GPT-2's adapted q, k and v become one c_attn
// module of rank r*n with rank_pattern and alpha_pattern entries keeping its scale alpha / r.
// What is left out (a scalar head beside the language-model head) is described in note (empty
// when nothing). Returns 0, or -1 with a message: a model without adapters, a model with only a
// scalar head (a SEQ_CLS adapter would need the head in modules_to_save), a file not written.
int peft_export(const Model *m, const char *dir, StDtype dtype, char *note, size_t notelen,
                char *err, size_t errlen);

// Gives m (a model without adapters: the base) the PEFT adapter in folder dir, exactly: every
// module is padded to the largest rank R (zero rows of A, zero columns of B) and its scale
// alpha_m / r_m relative to the model's alpha / R is folded into its B; GPT-2's c_attn becomes
// q, k and v adapters. Returns 0, or -1 with a message naming the file and the key or tensor
// (unknown module, use_dora, use_rslora, bias, modules_to_save, layers_to_transform, a shape
// that does not fit m, a lora_A without its lora_B, ...); m is then unchanged.
int peft_apply(Model *m, const char *dir, char *err, size_t errlen);
