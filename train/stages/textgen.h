// train/stages/textgen.h: what the stages that make datasets from a model's own text
// (self_instruct, critique_revise) share: their start model continuing batches of token
// contexts through the KV-cache sampler at the stage's rollout settings.
#pragma once
#include "data/chat.h"
#include "train/run/run.h"

typedef struct {
    StageRun *sr;     // the stage
    Model *model;     // its `init`, for inference
    Sampler *sampler; // a view of model
    int rows;         // contexts per sampler call (rollout.batch)
    int max_ctx;      // the longest context: seq_len - rollout.max_new_tokens
    int max_new;      // rollout.max_new_tokens
    int *ctx;         // (rows, max_ctx) the contexts of one call
    int *ctx_len;     // (rows)
    int *out;         // (rows, max_new) generated ids, the stop token included
    float *logp;      // (rows, max_new) their log-probs (unused)
    int *out_len;     // (rows)
    Rng rng;          // the sampling stream, stage_seed(sr, purpose)
    long tokens;      // tokens generated so far
} TextGen;

// Loads the stage's init model and a sampler for rollout.batch rows of seq_len tokens. Returns
// 0, or -1 after printing why.
int textgen_open(TextGen *g, StageRun *sr, const char *purpose);
void textgen_close(TextGen *g);

// Continues contexts ctx[0..n) (each 1..max_ctx tokens) until stop or max_new tokens, in calls
// of `rows` in order. ids (n, may be NULL) get each continuation's ids without the stop token
// (appended, mask 0); text (n) each one decoded, as stageio_clean_text makes it, malloc'd.
void textgen_generate(TextGen *g, const TokenBuf *ctx, int n, int stop, TokenBuf *ids, char **text);
