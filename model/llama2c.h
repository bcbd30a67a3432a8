// model/llama2c.h: llama2.c's legacy checkpoints (run.c's "version 0" .bin: a header of 7
// int32, then float32 arrays) read into Llama-family models. llama2.c rotates interleaved pairs
// (2i, 2i+1) of each head; layercake, like Hugging Face, rotates halves (i, i + hs/2), so the
// rows of wq and wk are permuted within each head on reading (interleaved row 2i+r becomes row
// r*hs/2 + i), which leaves every attention score unchanged. docs/models.md has the layout.
#pragma once
#include "model/model.h"
#include <stddef.h>
#include <stdint.h>

// Reads and checks the header of a .bin: the configuration (norm_eps 1e-5, rope_theta 10000,
// max_seq_len = seq_len, untied when vocab_size is negative) and the file size it implies.
// Returns 0, or -1 with a message naming the file and the field.
int llama2c_read_config(const char *path, ModelConfig *cfg, char *err, size_t errlen);

// Creates a model from a .bin (heads 0 = MODEL_HEAD_LM; a scalar head is initialised from
// seed). The file's size must be exactly what its header implies. NULL with a message naming
// the file and what is wrong (a truncated or extended file gets both sizes).
Model *llama2c_model_load(const Backend *be, const char *path, int heads, ModelMode mode, int max_B,
                          int max_T, uint64_t seed, char *err, size_t errlen);
