// data/dataset.h: layercake's HDF5 datasets, one file per dataset, for the five data kinds
// the stages consume: lm (token stream), sft (sequences with a loss mask), preference
// (prompt, chosen, rejected), prompt (prompts with optional reference answers) and unpaired
// (prompt, completion and a desirable/undesirable label: KTO's data).
//
// A file holds flat arrays with per-example offsets (example i of a field is
// values[offsets[i] .. offsets[i+1])); docs/datasets.md gives the exact layout and an h5py
// example. Writing streams examples into chunked, compressed datasets; reading validates the
// header attributes and every offsets array and reports errors that name the file and field.
// Library functions return 0 / non-NULL on success and write a message into err otherwise.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define DATASET_FORMAT  "layercake-dataset" // value of the `format` attribute
#define DATASET_VERSION 1                   // value of the `version` attribute

typedef enum {
    DATA_LM,
    DATA_SFT,
    DATA_PREFERENCE,
    DATA_PROMPT,
    DATA_UNPAIRED,
    DATA_KIND_COUNT
} DataKind;

// "lm", "sft", "preference", "prompt", "unpaired".
const char *data_kind_name(DataKind kind);
// Parses a kind name; returns 0 and sets *kind, or -1 for an unknown name.
int data_kind_parse(const char *name, DataKind *kind);

// Per-example variable-length token arrays: example i is ids[off[i] .. off[i+1]).
typedef struct {
    int64_t *off; // (n+1) offsets, off[0] = 0, non-decreasing
    int *ids;     // (off[n]) token ids; NULL until loaded (see dataset_load)
} TokenSeqs;

// One example as views into caller-owned (writing) or dataset-owned (reading) memory.
// Fields a kind does not use are NULL / 0.
typedef struct {
    const int *tokens;          // (n_tokens) lm, sft: the sequence; preference, prompt,
                                // unpaired: the prompt
    int64_t n_tokens;           // () length of tokens (and loss_mask)
    const uint8_t *loss_mask;   // (n_tokens) sft: 1 where the token is trained (a response)
    const int *chosen;          // (n_chosen) preference: the preferred response (no prompt)
    int64_t n_chosen;           // () length of chosen
    const int *rejected;        // (n_rejected) preference: the other response
    int64_t n_rejected;         // () length of rejected
    const int *reference;       // (n_reference) prompt: reference answer tokens, may be empty
    int64_t n_reference;        // () length of reference
    const char *reference_text; // (n_reference_text) prompt: reference answer text (UTF-8)
    int64_t n_reference_text;   // () length of reference_text in bytes
    const int *completion;      // (n_completion) unpaired: the response (no prompt)
    int64_t n_completion;       // () length of completion
    uint8_t label;              // () unpaired: 1 desirable, 0 undesirable
} Example;

// ---- writing -------------------------------------------------------------------------------

typedef struct DatasetWriter DatasetWriter;

// Starts a dataset at path (written to "<path>.partial" and renamed by dataset_close, so an
// interrupted import never leaves a file that looks complete). fingerprint is the
// tokenizer's (tokenizer_fingerprint).
DatasetWriter *dataset_create(const char *path, DataKind kind, uint64_t fingerprint, char *err,
                              size_t errlen);
// Adds a string attribute to the root group (name other than the header's format, version,
// kind and tokenizer; the importer records `chat_template`). Returns 0, or -1 on an I/O error.
int dataset_set_attribute(DatasetWriter *w, const char *name, const char *value, char *err,
                          size_t errlen);
// Appends one example of the writer's kind. Returns 0, or -1 on an I/O error.
int dataset_append(DatasetWriter *w, const Example *ex, char *err, size_t errlen);
// Flushes, closes and renames the file into place, then frees w. Returns 0 or -1.
int dataset_close(DatasetWriter *w, char *err, size_t errlen);
// Discards the partial file and frees w (after an error elsewhere).
void dataset_abort(DatasetWriter *w);

// ---- reading -------------------------------------------------------------------------------

typedef struct DatasetFile DatasetFile; // the open HDF5 file (internal)

typedef struct {
    char *path;            // as given to dataset_open
    DataKind kind;         // from the `kind` attribute
    uint64_t fingerprint;  // tokenizer fingerprint from the `tokenizer` attribute
    int64_t n;             // examples
    TokenSeqs tokens;      // lm, sft: `tokens`/`offsets`; preference, prompt, unpaired: prompts
    uint8_t *loss_mask;    // (tokens.off[n]) sft only; NULL until loaded
    TokenSeqs chosen;      // preference only
    TokenSeqs rejected;    // preference only
    TokenSeqs reference;   // prompt only; all empty when the file has no reference tokens
    int64_t *ref_text_off; // (n+1) prompt only; all 0 when the file has no reference text
    char *ref_text;        // (ref_text_off[n]) prompt only; NULL until loaded
    TokenSeqs completion;  // unpaired only
    uint8_t *label;        // (n) unpaired only: 1 desirable, 0 undesirable; NULL until loaded
    int64_t n_tokens;      // total token ids over every token field (for lm, the stream)
    DatasetFile *file;     // the open file and arrays (internal)
} Dataset;

// Opens a dataset, checks `format`, `version` and `kind` (want = DATA_KIND_COUNT accepts any
// kind), and reads and validates every offsets array. Token values are not read yet.
Dataset *dataset_open(const char *path, DataKind want, char *err, size_t errlen);
// Reads an optional string attribute of the root group into out: 1 when present, 0 when absent
// (out is then ""), -1 when it is not a string or cannot be read (with a message in err).
int dataset_attribute(const Dataset *ds, const char *name, char *out, size_t outlen, char *err,
                      size_t errlen);
// Fails with a message naming both fingerprints if the file was not made with this tokenizer.
int dataset_check_fingerprint(const Dataset *ds, uint64_t fingerprint, char *err, size_t errlen);
// Reads every value array into memory and checks token ids (0 <= id < vocab_size; vocab_size
// 0 checks only id >= 0) and loss-mask values (0 or 1).
int dataset_load(Dataset *ds, int vocab_size, char *err, size_t errlen);
// Reads count ids of the `tokens` array from position start into out (lm streaming), checking
// them as dataset_load does.
int dataset_read_tokens(Dataset *ds, int64_t start, int64_t count, int *out, int vocab_size,
                        char *err, size_t errlen);
// Checks every id of the `tokens` array (lm, sft) as dataset_load does, in one pass without
// keeping them: how a streamed lm file is checked when it opens.
int dataset_check_tokens(Dataset *ds, int vocab_size, char *err, size_t errlen);
// Views example i (0 <= i < n) of a loaded dataset.
Example dataset_example(const Dataset *ds, int64_t i);
void dataset_free(Dataset *ds);

// sft examples of a loaded dataset that have no trained target (every loss mask 0 after the
// first token, or one token long): the loss cannot see them, and a batch of only such
// examples has nothing to average. Returns their count and the first one's index in *first
// (-1 when none); 0 for the other kinds, whose every example trains something.
int64_t dataset_count_untrained(const Dataset *ds, int64_t *first);

// The fingerprint as 16 lowercase hex digits (buf holds at least 17 bytes).
void dataset_fingerprint_hex(uint64_t fingerprint, char *buf);
