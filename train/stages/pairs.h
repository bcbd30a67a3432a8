// train/stages/pairs.h: the labeller: preference pairs (and best-of-n sft examples) made from a
// model's own samples. For each prompt of a stage's data.prompts, a model samples
// rollout.group_size responses; the stage's judge (train/stages/judge.h) scores them as one
// group; label.pairs picks the pairs (best and worst, best and a random lower one, or every
// two with different scores), and a share label_noise of pairs have their labels swapped,
// like raters who disagree. With a judge that knows correctness (gold, match) and
// label.require_correct, a pair's chosen response must be correct: between two wrong answers
// partial credit would teach a nearer wrong answer. This is how InstructGPT's labellers made
// comparisons: on the outputs of the model being aligned. Reward and dpo stages given
// data.prompts train on these pairs; the label stage writes them, and iterative_dpo labels
// each round's policy's samples with it.
#pragma once
#include "common/rng.h"
#include "train/run/run.h"
#include <stdbool.h>
#include <stdint.h>

// One pair among the n responses to a prompt.
typedef struct {
    int chosen;    // () index of the preferred response in the group
    int rejected;  // () index of the other one
    double margin; // () score[chosen] - score[rejected], > 0
} PairPick;

// The pairs label.pairs `how` picks among n responses with scores score (n) and correctness
// correct (n: 1, 0, or NAN where the judge does not know; NULL: unknown for all), written
// into out (room for n * (n - 1) / 2); returns their count. The best is the first response of
// the highest score, the worst the first of the lowest; best_random draws the rejected one
// uniformly (one rng draw) among those that scored lower than the best; all_pairs lists
// i < j in order, the higher-scored one chosen, ties left out. require_correct: a chosen
// response whose correctness is known must be correct.
int pairs_select(const double *score, const double *correct, int n, LabelPairs how,
                 bool require_correct, Rng *rng, PairPick *out);

// The best response of a group (the first of the highest score), or -1 when it is known to be
// wrong: the one best-of-n sampling keeps as an sft example.
int pairs_best(const double *score, const double *correct, int n);

// One labelling: whose samples, and the files it writes (NULL: not written).
typedef struct {
    const char *model;   // the policy that answers: a stage name or checkpoint
    const char *pref[2]; // the preference pairs: training, validation (a tenth of the
                         // prompts, by a hash of their index)
    const char *sft;     // best-of-n sft examples: a prompt and its best response, or NULL
    const char *labels;  // labels.jsonl: per prompt its responses, scores and pairs, or NULL
    const char *summary; // label.json: the LabelStats, written last, or NULL
    uint64_t seed;       // the sampling and label-noise stream
    int per_round;       // prompts labelled: 0 = all; else the round-th slice of this many
    int round;           // () which slice, wrapping around the prompts
    uint64_t order_seed; // the shuffle the slices are cut from
} LabelJob;

// What a labelling did.
typedef struct {
    long prompts;     // prompts labelled
    long pairs[2];    // pairs written: training, validation
    long left_out;    // prompts that gave no pair
    long swapped;     // pairs whose labels label_noise swapped
    long sft;         // sft examples written
    long responses;   // responses judged
    double score_sum; // the sum of their scores
    long known;       // responses whose correctness the judge knows
    long correct;     // of those, the correct ones
} LabelStats;

// Samples, judges and writes job's files (rank 0's work; the caller makes the others wait).
// When every file of job exists already it writes nothing and reads stats back from the
// summary (zeros without one). 0, or 1 after printing why (no file is left half-written).
int label_sample(StageRun *sr, const LabelJob *job, LabelStats *stats);

// Reads a label.json summary into stats; 0, or -1 when it is missing or unreadable.
int label_read_summary(const char *path, LabelStats *stats);

// Writes (or, when both exist, reuses) <stage>/pairs.h5 and <stage>/pairs-val.h5 for a reward
// or dpo stage given data.prompts and returns their paths (val_path "" when it holds no pair).
// 0, or 1 after printing.
int pairs_sample(StageRun *sr, char *train_path, char *val_path, size_t len);
