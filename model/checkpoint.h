// model/checkpoint.h: model weights in HDF5. A file holds the model configuration as
// attributes of the root group and one float32 dataset per parameter tensor under /params,
// named and shaped as in the model's tensor table (docs/checkpoints.md has the layout).
// Training checkpoints add optimiser and run state to the same file (train/). Files are sealed
// (common/h5.h): a digest of every byte, checked before anything in them is read.
#pragma once
#include "model/model.h"
#include <hdf5.h>
#include <stddef.h>

#define CHECKPOINT_FORMAT  "layercake-checkpoint"
#define CHECKPOINT_VERSION 2 // 2: any family; 1: GPT-2 without n_kv_head, d_ff, norm_eps...

// Writes the configuration attributes and /params of m into an open HDF5 file or group.
int model_write_h5(const Model *m, hid_t file, char *err, size_t errlen);

// Reads the configuration and heads of a checkpoint file (or of a group of one). Returns 0, or -1
// with a message naming the file and the field in err.
int model_read_config_h5(hid_t file, const char *path, ModelConfig *cfg, int *heads, char *err,
                         size_t errlen);

// Reads a checkpoint's adapters (root attributes lora_*; rank 0 when it has none). 0, or -1 with
// a message naming the file and the attribute.
int model_read_lora_h5(hid_t file, const char *path, LoraConfig *c, char *err, size_t errlen);
// Loads params of an open file (or group) into m (whose configuration must match the file's).
// Tensors the file lacks are left as they are if listed in optional (a comma-separated list of
// names, e.g. "headw,headb" when a reward model starts from a language model), else an error.
int model_read_params_h5(Model *m, hid_t file, const char *path, const char *optional, char *err,
                         size_t errlen);

// Saves m's weights alone to path, sealed and atomically (a temporary file renamed over path);
// 0, or -1 with a message naming path and the cause ("disk full ..." when it is).
int model_save(const Model *m, const char *path, char *err, size_t errlen);

// Creates a model from a weights file, with the given heads (0 = the file's), mode and
// activation size, and the file's LoRA adapters if it has some (model_lora_merge folds them).
// Scalar-head tensors missing from the file are initialised from seed. The
// file's seal is verified first; NULL with a message naming the file and what is wrong.
Model *model_load(const Backend *be, const char *path, int heads, ModelMode mode, int max_B,
                  int max_T, uint64_t seed, char *err, size_t errlen);
