// train/run/state.h: training checkpoints: everything a stage needs to resume exactly, in one
// sealed HDF5 file (common/h5.h: a digest of every byte in a 512-byte user block) built in
// memory and written atomically (temporary file, checked writes, fsync, rename).
//
// Layout (docs/checkpoints.md):
//   /                    the first model: configuration attributes and /params (so the file
//                        loads as plain weights with model_load)
//   /models/<name>       further models (e.g. a PPO value model), same layout
//   /optim/<name>/m, v   AdamW moments of each trained model; attribute step
//   /state               attributes step, rng, complete, tokenizer (fingerprint),
//                        tokenizer_path, scalar values by name;
//                        datasets cursor (int64) and recipe (the resolved recipe, YAML text)
// Loading verifies the seal before HDF5 reads a byte, so a changed byte anywhere (data,
// metadata, an attribute, the recipe text) fails the load; arrays also carry Fletcher-32.
#pragma once
#include "model/model.h"
#include "optim/optim.h"
#include <stdint.h>

#define STATE_MAX_MODELS  4
#define STATE_MAX_CURSOR  16
#define STATE_MAX_SCALARS 8

typedef struct {
    const char *name; // "policy", "value", ...; the first model is stored at the root
    Model *model;
    AdamW *opt; // NULL for a frozen model or a final checkpoint
} StateModel;

typedef struct {
    int64_t step;                                // optimizer steps (RL: iterations) completed
    uint64_t rng;                                // the stage's RNG state
    int complete;                                // 1 in a stage's final checkpoint
    uint64_t tokenizer;                          // fingerprint of the run's tokenizer
    int n_cursor;                                // used entries of cursor
    int64_t cursor[STATE_MAX_CURSOR];            // data-loader cursor(s), as plain integers
    int n_scalars;                               // used entries of scalar_names/scalars
    const char *scalar_names[STATE_MAX_SCALARS]; // e.g. "kl_coef" (static strings)
    double scalars[STATE_MAX_SCALARS];
    const char *recipe;         // resolved recipe text (written only)
    const char *tokenizer_path; // the run's tokenizer file or folder (written only)
} TrainState;

// Writes models (their weights, and AdamW moments when opt is set) and st to path,
// atomically. Returns 0, or -1 with a message naming path and the cause ("disk full ..." on
// ENOSPC); path.tmp is removed and an existing path left as it was.
int state_save(const char *path, const StateModel *models, int n_models, const TrainState *st,
               char *err, size_t errlen);

// ZeRO-1 (an optimiser holding a slice of the moments, optim/optim.h): each process writes its
// slices to its shard file, path.optim-RANK-of-WORLD, atomically, before rank 0 writes path with
// state_save, which records the number of shards instead of the moments; path is the marker
// that the step's checkpoint is whole. 0 (also when no optimiser is sharded), or -1 with err.
int state_save_shards(const char *path, const StateModel *models, int n_models, char *err,
                      size_t errlen);
void state_shard_path(char *buf, size_t len, const char *path, int rank, int world);

// Restores models (weights and, where opt is set, moments and step) and st from path. Moments
// saved in shards are read from the shard files, each process taking its own slice of them,
// whatever the number of processes that wrote them. The
// models must already exist with the file's configuration. scalar_names of st name the
// scalars to read; a missing one is an error. Returns 0, or -1 with a message naming the
// file and what is wrong (missing, truncated, digest mismatch, another model's checkpoint).
int state_load(const char *path, const StateModel *models, int n_models, TrainState *st, char *err,
               size_t errlen);

// Reads the tokenizer path recorded in a checkpoint into buf; 0, or -1 if it has none or fails
// verification (then printed to stderr with the file and what is wrong).
int state_tokenizer_path(const char *path, char *buf, size_t len);

// Reads the complete flag of a checkpoint without loading its models: 1, 0, or -1 if missing
// or unreadable. A file that exists but fails verification gets a warning on stderr naming it
// and what is wrong, and -1, so the stage it belongs to is run again rather than trusted. An
// unsealed (older) file is read unverified for this flag only, so its stage is not retrained
// over it; loading it is still refused (docs/checkpoints.md).
int state_is_complete(const char *path);

// Periodic checkpoint files of a stage folder: dir/ckpt-<8-digit step>.h5.
void state_periodic_path(char *buf, size_t len, const char *dir, int64_t step);

// Lists dir's periodic checkpoints, newest first, into paths (malloc'd strings the caller
// frees); returns the count (at most max).
int state_list_periodic(const char *dir, char **paths, int max);

// Deletes all but the newest keep periodic checkpoints of dir, with their shard files (and the
// shard files of any save that never completed).
void state_prune(const char *dir, int keep);
