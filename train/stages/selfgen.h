// train/stages/selfgen.h: the model-free parts of the self_instruct stage (docs/feedback.md), apart
// so that tests check them on hand-made text: the pool of instructions with their ROUGE-L
// tokens, the filter a proposed instruction goes through, the rule that ends the rounds, the
// choice of in-context tasks, and the parsing of a model's continuations.
#pragma once
#include "common/rng.h"
#include "train/objectives/rouge.h"
#include <stdbool.h>

// What became of a proposed instruction: kept, or the first filter that dropped it, in the
// order the filters run.
typedef enum {
    SELFGEN_KEPT,
    SELFGEN_EMPTY,     // nothing after "Task k+1:" on its line
    SELFGEN_TOO_SHORT, // fewer than min_words whitespace-separated words
    SELFGEN_TOO_LONG,  // more than max_words words
    SELFGEN_BLOCKLIST, // holds a blocklisted word or phrase as whole words, in any case
    SELFGEN_BAD_START, // starts with ASCII punctuation or a non-ASCII byte
    SELFGEN_SIMILAR,   // ROUGE-L F1 with some pool instruction above the threshold
    SELFGEN_VERDICT_COUNT
} SelfgenVerdict;

// "kept", "empty", "too_short", "too_long", "blocklist", "bad_start", "similar".
const char *selfgen_verdict_name(SelfgenVerdict v);

// The filter's settings (the stage's self_instruct keys).
typedef struct {
    int min_words, max_words; // allowed word counts
    char *const *blocklist;   // (n_blocklist) words or phrases
    int n_blocklist;          // entries of blocklist
    double threshold;         // ROUGE-L above this is similar
} SelfgenFilter;

// The instruction pool: seeds first, then the kept proposals in the order they were kept.
typedef struct {
    char **text;       // (n) the instructions (owned)
    RougeTokens *toks; // (n) their ROUGE-L tokens
    int n, cap;        // held, allocated
} SelfgenPool;

void selfgen_pool_add(SelfgenPool *p, const char *text);
void selfgen_pool_free(SelfgenPool *p);

// Judges proposal inst (NUL-terminated, already stripped) against the pool and, when it
// survives every filter, adds it. *rouge and *best get its highest ROUGE-L against the pool
// and the index of that instruction (computed for every non-empty proposal, whatever the
// verdict; 0 and -1 for an empty one or an empty pool).
SelfgenVerdict selfgen_filter(const SelfgenFilter *f, SelfgenPool *pool, const char *inst,
                              double *rouge, int *best);

// Whether text holds phrase as whole words: an occurrence, in any ASCII case, with no ASCII
// letter or digit just before or after it.
bool selfgen_has_phrase(const char *text, const char *phrase);
// Whitespace-separated words of text.
int selfgen_words(const char *text);

// Why the rounds end after one: they go on, the kept generated instructions reached target,
// the round kept less than min_yield of what it proposed, or max_rounds rounds are done.
typedef enum {
    SELFGEN_GO_ON,
    SELFGEN_STOP_TARGET,
    SELFGEN_STOP_YIELD,
    SELFGEN_STOP_ROUNDS
} SelfgenStop;

// After round `rounds` (1-based) proposed `generated` instructions and kept `kept`, with
// `total` generated instructions kept over all rounds. Target wins over yield over rounds.
SelfgenStop selfgen_stop(int total, int target, int rounds, int max_rounds, int kept, int generated,
                         double min_yield);
// "target", "yield", "max_rounds" ("" for SELFGEN_GO_ON).
const char *selfgen_stop_name(SelfgenStop s);

// Picks the in-context tasks of one prompt: min(k / 4, n_generated) generated instructions
// (pool indices n_seeds..) and the rest from the seeds (at most n_seeds), each set without
// repeats, then shuffled together. Writes pool indices into out (room for k) and returns their
// count.
int selfgen_pick(Rng *rng, int n_seeds, int n_generated, int k, int *out);

// The instruction a continuation of "... Task k+1:" proposes: its text up to the first newline
// or "Task", without surrounding whitespace. A malloc'd string, "" when nothing is left.
char *selfgen_parse_instruction(const char *continuation);
// An instance from a continuation of "Task: <instruction>\nInput:": the input is the text
// before "Output:", the output the text after it up to a newline followed by "Task" or
// "Input:", both stripped. 0 with both malloc'd, or -1 (nothing set) when there is no
// "Output:" or the output is empty.
int selfgen_parse_instance(const char *continuation, char **input, char **output);
