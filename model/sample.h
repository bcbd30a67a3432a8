// model/sample.h: batched sampling for prompts of different lengths, with a KV cache (or, for
// comparison, by recomputing every position at every step). Rollouts for PPO/GRPO, sample
// generations in logs, evaluation and `layercake generate` all go through here.
#pragma once
#include "common/rng.h"
#include "model/model.h"

typedef struct {
    float temperature;  // 0 = greedy (argmax); otherwise logits are divided by it
    int top_k;          // keep the k most likely tokens; 0 = off
    float top_p;        // keep the smallest set with probability >= top_p; 1 = off
    int stop_token;     // generation of a row ends after it emits this id; -1 = none
    int max_new_tokens; // per row
} SampleParams;

typedef struct Sampler Sampler;

// A sampler for up to max_B prompts whose prompt plus generated tokens fit in max_len
// (<= the model's max_seq_len). It holds an inference view of m (sharing m's weights, so
// sampling always uses m's current parameters), a KV cache (L, max_B, max_len, C) when
// use_cache, and small host and device buffers, so a call allocates nothing of its own (the CPU
// backend's sample_tokens takes V-sized scratch per step). Each step's tokens are chosen on the
// model's backend (Backend.sample_tokens, whose comment in kernels/kernels.h states the rule);
// only B tokens and B log-probs are copied back.
Sampler *sampler_create(const Model *m, int max_B, int max_len, int use_cache);
void sampler_free(Sampler *s);

// Samples continuations of B prompts: prompts (B, prompt_stride) row-major with prompt_len[b]
// >= 1 real tokens in row b. Writes out_tokens (B, max_new_tokens) (the stop token included;
// -1 after a row ends), out_logp (B, max_new_tokens): the log-prob of each token under the
// model's softmax at the sampling temperature (temperature 1 when greedy) over the whole
// vocabulary, before top-k/top-p truncation (what a training forward with inv_temp =
// 1/temperature computes), and out_len (B) tokens generated. rng advances deterministically
// (rows in order, one draw per sampled token, none when greedy); a draw u picks the smallest
// kept id whose cumulative kept mass in id order exceeds u times the kept mass. Returns the
// total tokens generated.
long sampler_generate(Sampler *s, const int *prompts, int prompt_stride, const int *prompt_len,
                      int B, const SampleParams *p, Rng *rng, int *out_tokens, float *out_logp,
                      int *out_len);

// Bytes held by the sampler's KV cache and activation arena.
size_t sampler_bytes(const Sampler *s);
// Bytes of the KV cache a sampler of m for max_B rows of max_len tokens allocates (keys and
// values, (L, max_B, max_len, NKV*hs) each, in the activation type); 0 without a cache.
size_t sampler_kv_bytes_for(const Model *m, int max_B, int max_len, int use_cache);
// The sampler's KV cache bytes, and its inference view of the model (its activation arena;
// the view holds no weights of its own).
size_t sampler_kv_bytes(const Sampler *s);
const Model *sampler_view(const Sampler *s);
