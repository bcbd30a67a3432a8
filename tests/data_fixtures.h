// tests/data_fixtures.h: small synthetic datasets with recognisable tokens, written through
// the dataset writer, for the dataset and loader suites. Prompt tokens are in [100, 200),
// response tokens in [200, 300), text tokens in [1, 100) and every sequence ends with FIX_EOT.
#pragma once
#include "data/dataset.h"

#define FIX_EOT   999
#define FIX_VOCAB 1000
#define FIX_FP    0x0123456789abcdefull

// Example i of each fixture kind, into caller buffers of at least FIX_MAX tokens; the Example
// points into them.
#define FIX_MAX 64
Example fix_lm_doc(int i, int *tok);
Example fix_sft(int i, int *tok, uint8_t *mask);
Example fix_pref(int i, int *prompt, int *chosen, int *rejected);
Example fix_prompt(int i, int *prompt, int *ref, char *text);
// Unpaired: the prompt, the completion (fix_pref's chosen one) and label 1 except every third
// example (i % 3 == 1).
Example fix_unpaired(int i, int *prompt, int *completion);

// Writes n examples of the kind to path (fails the running test on error).
void fix_write(const char *path, DataKind kind, int n);
// The same, recording another tokenizer fingerprint than FIX_FP.
void fix_write_fp(const char *path, DataKind kind, int n, uint64_t fingerprint);

// Concatenates NULL-terminated string arguments into malloc'd memory (the caller frees).
char *fix_join(const char *first, ...);
