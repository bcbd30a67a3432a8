// data/synth.h: built-in task worlds. A task world is a small, fully specified task whose
// datasets layercake generates from a seed, and whose answers a gold rule scores exactly, so a
// recipe can compare pretraining, SFT, reward modelling, RL and DPO by measurement instead of
// by a learned judge. docs/tasks.md describes each task, its generator and its gold reward.
//
// A generated world is a folder: tokenizer.json, the pretraining corpus as text
// (pretrain.txt) and one HDF5 dataset per SynthFile (data/dataset.h), all deterministic in the
// seed. Recipes name a task's gold reward by the task's name (`gold_reward: arithmetic`).
//
// Gold rewards work on decoded text: the prompt as the dataset holds it and the response as
// the model generated it, decoded with its end token ("<|endoftext|>") when it emitted one, so
// the reward can tell a response that stopped from one that ran out of tokens.
#pragma once
#include "data/dataset.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct SynthTask SynthTask;

#define SYNTH_REWARD_MIN (-1.0) // every task's gold reward lies in [SYNTH_REWARD_MIN,
#define SYNTH_REWARD_MAX 1.0    // SYNTH_REWARD_MAX]; MAX only for a perfect response

// The files a world holds besides tokenizer.json and pretrain.txt, in the order written.
typedef enum {
    SYNTH_PRETRAIN,     // lm: worksheets of problems, some answers wrong
    SYNTH_PRETRAIN_VAL, // lm: the same, from held-out problems
    SYNTH_SFT,          // sft: prompt and correct answer, loss on the answer and end token
    SYNTH_SFT_VAL,      // sft: held-out problems
    SYNTH_PREF,         // preference: chosen and rejected ordered by the gold reward, some swapped
    SYNTH_PREF_VAL,     // preference: held-out problems
    SYNTH_PROMPTS,      // prompt: RL prompts with reference answers
    SYNTH_EVAL,         // prompt: evaluation prompts with reference answers, from problems no
                        // other file holds
    SYNTH_FILE_COUNT
} SynthFile;

// The file's name in --sizes: "pretrain", "pretrain-val", "sft", "sft-val", "pref",
// "pref-val", "prompts", "eval". Its path is DIR/<name>.h5.
const char *synth_file_name(SynthFile f);
DataKind synth_file_kind(SynthFile f);
// Parses a file name; returns 0 and sets *f, or -1 for an unknown name.
int synth_file_parse(const char *name, SynthFile *f);

typedef struct {
    uint64_t seed;                   // everything generated derives from it
    int64_t sizes[SYNTH_FILE_COUNT]; // examples per file (lm files: problems, not documents)
    double wrong_fraction;           // [0, 1]: chance that a pretraining answer is wrong
    double label_noise;              // [0, 1]: chance that a preference pair's labels are swapped
    int difficulty;                  // task-specific level (arithmetic: digits of an operand)
} SynthConfig;

typedef struct {
    int64_t examples[SYNTH_FILE_COUNT]; // examples written per file (lm: documents)
    int64_t tokens[SYNTH_FILE_COUNT];   // token ids written per file
    int64_t problems[2];                // problems in pretrain.h5 and pretrain-val.h5
    int64_t wrong[2];                   // of those, how many have a wrong answer
    int64_t swapped[2];                 // pairs in pref.h5 and pref-val.h5 with swapped labels
    int vocab_size;                     // of the tokenizer written
    uint64_t fingerprint;               // of the tokenizer written
    double seconds;                     // wall time of the whole generation
} SynthStats;

// The task of that name, or NULL. synth_task_names() lists them for messages ("arithmetic").
const SynthTask *synth_task_find(const char *name);
const char *synth_task_names(void);
const char *synth_task_name(const SynthTask *task);
// One line saying what the task is, at a difficulty.
void synth_task_describe(const SynthTask *task, int difficulty, char *buf, size_t len);
// The largest difficulty the task accepts (the smallest is 1).
int synth_task_max_difficulty(const SynthTask *task);

// The task's defaults: seed 0, the sizes, fractions and difficulty docs/tasks.md lists.
SynthConfig synth_config_default(const SynthTask *task);

// Generates the world into the folder dir. A missing dir (and its missing parents) is created,
// the world built in "<dir>.partial" and renamed to dir when complete, so dir never holds a
// partial world; in an existing dir the files are replaced, each whole. Returns 0, or -1 with
// a message naming the file or the bad setting.
int synth_generate(const SynthTask *task, const SynthConfig *cfg, const char *dir, SynthStats *st,
                   char *err, size_t errlen);

// The gold reward of response to prompt, in [SYNTH_REWARD_MIN, SYNTH_REWARD_MAX]: the formula
// is the task's (docs/tasks.md). A prompt that is not one of the task's (synth_answer fails)
// scores SYNTH_REWARD_MIN.
double synth_gold_reward(const SynthTask *task, const char *prompt, size_t prompt_len,
                         const char *response, size_t response_len);
// Whether response answers prompt exactly (the accuracy predicate).
bool synth_correct(const SynthTask *task, const char *prompt, size_t prompt_len,
                   const char *response, size_t response_len);
// Writes the reference response to prompt (the text a perfect model generates before its end
// token, NUL-terminated) into buf and returns its length, or -1 if prompt is not one of the
// task's or buf is too small. Stages use it to check a prompt set before training on it.
int synth_answer(const SynthTask *task, const char *prompt, size_t prompt_len, char *buf,
                 size_t len);
