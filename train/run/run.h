// train/run/run.h: a run of a recipe and the stages in it. `layercake run` loads the recipe,
// opens the run (run_open) and runs its stages (run_stages) through the function the stage
// layer supplies; stages share the helpers here (where a stage's files live, how its model
// starts, its seeds). run/ knows no stage kind: the dispatch lives in train/stages/stages.c.
//
// Run directory (docs/run-directory.md):
//   <output_dir>/recipe.yaml            the resolved recipe
//   <output_dir>/<stage>/stage.json      {"name", "kind"}
//   <output_dir>/<stage>/metrics.jsonl   one JSON object per step (train/run/metrics.h)
//   <output_dir>/<stage>/ckpt-NNNNNNNN.h5 periodic checkpoints (train/run/state.h)
//   <output_dir>/<stage>/final.h5        the finished stage's model; later stages start here
#pragma once
#include "common/rng.h"
#include "data/chat.h"
#include "data/tokenizer.h"
#include "kernels/collective.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/sample.h"
#include "train/recipe/recipe.h"
#include <stdbool.h>

typedef struct {
    const Recipe *recipe;
    const Backend *be;
    Tokenizer *tok;
    uint64_t fingerprint; // the tokenizer's
    char *recipe_text;    // the resolved recipe (recipe.yaml), stored in every checkpoint
    int rank, world;      // this process among the run's processes (comm's)
    Comm *comm;           // the run's processes (docs/distributed.md); world 1: single
} Run;

typedef struct {
    Run *run;
    const Stage *stage;
    int index;      // the stage's position in the recipe
    char dir[4096]; // <output_dir>/<stage name>
} StageRun;

// Checks every file the recipe names: that it exists (or will be made by the recipe's
// prepare commands), and what is inside: a dataset's kind and tokenizer fingerprint, a
// checkpoint's weights and that it fits the run (stage_model's checks), the tokenizer itself.
// Returns RECIPE_OK or an error with a message naming where the path was set.
RecipeError run_validate_files(const Recipe *r, char *err, size_t errlen);

// Loads what every stage of recipe r needs: the backend (with r's thread count), the
// communicator of the run's processes (rank 0 alone prints to stdout and writes the run
// directory; the others wait for it at barriers), the files
// the recipe's prepare commands make, the tokenizer, a check of every file r names, and the
// resolved recipe's text. Returns 0, or 1 after printing why (then run_close it all the same).
int run_open(Run *run, const Recipe *r);
void run_close(Run *run);

// Every process's verdict on a step they take together (a file rank 0 wrote, a check each
// made): 0 when all of them returned 0, else 1 on every process, so they stop together instead
// of one waiting forever at the next collective. Also a barrier. rc as is when world is 1.
int run_agree(const Run *run, int rc);

// Runs one stage to completion; 0 when its final.h5 is written, nonzero after printing why.
typedef int (*StageFn)(StageRun *sr);

// Writes the run directory's recipe.yaml, then runs stages first..last in order through fn,
// skipping those already complete. fresh: discard each one's checkpoints and final model first
// (`run --from`). Stops at the first failure and returns its code.
int run_stages(Run *run, int first, int last, bool fresh, StageFn fn);

// The seed of a named random stream of a stage: derived from the recipe's seed, the stage's
// name and the purpose, so adding a stage or a stream never shifts the others.
uint64_t stage_seed(const StageRun *sr, const char *purpose);

// The file a stage reference names: "<output_dir>/<name>/final.h5" for an earlier stage's
// name, or the path itself (a checkpoint file).
void run_resolve_model(const Run *run, const char *ref, char *path, size_t len);

// The model configuration of a run started from scratch: the recipe's, with vocab_size from
// the tokenizer when the recipe leaves it 0.
ModelConfig run_model_config(const Run *run);

// The sampling parameters of a stage's rollout: block (temperature, top-k, top-p, length) with
// the given stop token.
SampleParams rollout_sample_params(const RolloutConfig *ro, int stop_token);

// The chat template a dataset's prompts were rendered with (its chat_template attribute; the
// tokenizer's default when it has none or cannot be read), so that generation from them stops
// at that template's end of turn (chat_stop_token).
Chat run_dataset_chat(const Run *run, const char *path);

// What a checkpoint file holds, read without its weights.
typedef struct {
    ModelConfig cfg;
    int heads;            // MODEL_HEAD_* flags the file has
    bool has_fingerprint; // a training checkpoint (with /state); weights-only files have none
    uint64_t fingerprint; // the tokenizer it was trained with, when has_fingerprint
} CheckpointInfo;

// Reads a checkpoint's header, or a Hugging Face folder's config.json (no fingerprint). Returns
// 0, or -1 with a message saying what is wrong with the file: missing, a folder without
// config.json, empty, not HDF5, truncated or damaged, a dataset, another format.
int run_checkpoint_info(const char *path, CheckpointInfo *info, char *err, size_t errlen);

// Checks that a tokenizer fits a checkpoint: the fingerprint the checkpoint records (if any)
// is the tokenizer's, and every id the tokenizer makes is inside the model's vocabulary.
// Returns 0, or -1 with a message naming both files.
int run_check_tokenizer(const char *ckpt, const CheckpointInfo *ci, const char *tok_path,
                        const Tokenizer *tok, char *err, size_t errlen);

// Checks that a dataset was made with the tokenizer a checkpoint records (when it records
// one). Returns 0, or -1 with a message naming both files and both fingerprints.
int run_check_dataset(const char *ckpt, const CheckpointInfo *ci, const char *data_path,
                      uint64_t data_fingerprint, char *err, size_t errlen);

// Creates the model a stage trains (MODEL_TRAIN) or uses frozen (MODEL_INFER): from `init`
// (a stage name, checkpoint or Hugging Face folder; "" = model.from's weights when the recipe
// sets it, else from scratch, initialised from the stage's seed), with the
// given heads and activations for max_B x max_T. A checkpoint must be of the run's tokenizer
// (the fingerprint it records), vocabulary (model.vocab_size, or the tokenizer's when 0) and
// context (model.max_seq_len). A checkpoint's LoRA adapters are merged into its weights (a stage
// starts from the model they make). Prints and returns NULL on failure.
Model *stage_model(StageRun *sr, const char *init, int heads, ModelMode mode, int max_B, int max_T);
// The model a stage trains: stage_model in MODEL_TRAIN, then, when the stage sets lora.rank, the
// stage's adapters over it (base frozen; lora.lr as their learning-rate scale).
Model *stage_train_model(StageRun *sr, const char *init, int heads, int max_B, int max_T);
// A frozen model (MODEL_INFER) of a LoRA stage from init: when init's checkpoint is adapters
// (and heads) over the very base weights trunk freezes (an earlier LoRA stage from the same start:
// a reward model trained with LoRA from the policy's sft), an adapter view on trunk holding those
// adapters and heads, so no second trunk is held; else stage_model's. NULL after a message.
Model *stage_model_on_trunk(StageRun *sr, const char *init, const Model *trunk, int heads,
                            int max_B, int max_T);
// The stage's adapters as the model takes them (rank 0 without).
LoraConfig stage_lora_config(const Stage *st);
// A model with heads and the stage's adapters sharing trunk's base weights (the value model of a
// LoRA stage; model_create_adapter_view), initialised from the stage's seed.
Model *stage_adapter_view(StageRun *sr, const Model *trunk, int heads, int max_B, int max_T);
// What stage_model starts from for init, for messages: init, model.from, or "scratch".
const char *stage_start_name(const StageRun *sr, const char *init);
