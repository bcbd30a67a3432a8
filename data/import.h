// data/import.h: `layercake data import`: builds a dataset of one kind from plain-text files
// and JSONL files in the shapes people have (text; prompt; prompt/completion; messages;
// prompt/chosen/rejected; HH-RLHF transcripts; Self-Instruct tasks). docs/datasets.md lists the
// formats, the kinds each can make, the templates and the policies (over-length examples,
// validation split, bad lines).
#pragma once
#include "data/dataset.h"
#include "data/tokenizer.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    DataKind kind;        // the dataset to make
    const Tokenizer *tok; // encodes the text; its fingerprint goes into the file
    const char *out;      // output path; the validation set goes to import_val_path(out)
    int64_t max_len;      // longest example in tokens (lm: documents are cut into pieces)
    double val_fraction;  // in [0, 1): share of examples sent to the validation file
    uint64_t seed;        // mixed into the validation-split hash
    int skip_bad;         // skip malformed lines (counted) instead of stopping at the first
    int split_blank;      // plain text: a run of >= split_blank blank lines ends a document;
                          // 0: each file is one document
    // The chat formats' template by name (data/chat.h); NULL or "auto": the model's own when
    // model_chat_template (the tokenizer's chat template string, or NULL) is a known one,
    // else roles or hh by the tokenizer.
    const char *chat_template;
    const char *model_chat_template;
} ImportOptions;

typedef struct {
    int64_t bytes;        // input bytes read
    int64_t lines;        // non-blank JSONL lines read
    int64_t documents;    // plain-text and {"text"} documents read (lm)
    int64_t examples[2];  // examples written: [0] training file, [1] validation file
    int64_t tokens[2];    // token ids written, per file
    int64_t skipped;      // malformed lines skipped (skip_bad)
    int64_t dropped;      // examples longer than max_len, left out
    int64_t split;        // lm documents longer than max_len, cut into pieces
    double seconds;       // wall time of the whole import
    char first_skip[512]; // file:line and reason of the first skipped line
} ImportStats;

// import_run's result when the options contradict each other (an output file that is also an
// input): a bad command line, which `layercake data import` reports as a usage error.
#define IMPORT_ERR_USAGE (-2)

// Imports the input files into o->out (and the validation file). A file with examples rendered
// through the chat template (messages, HH-RLHF transcripts, Self-Instruct) records the
// template's name in its `chat_template` attribute. Returns 0, or -1 with a message naming the
// file, line and field (or the unknown --chat-template), or IMPORT_ERR_USAGE with a message naming
// the output and the input; on failure no output file is left behind (nor is one touched).
int import_run(const ImportOptions *o, const char *const *inputs, int n_inputs, ImportStats *st,
               char *err, size_t errlen);

// Refuses an output that is also an input (it would be truncated before it is read): o->out,
// and the validation file when o->val_fraction > 0. Returns 0, or IMPORT_ERR_USAGE with a
// message naming both. import_run checks it too.
int import_check_outputs(const ImportOptions *o, const char *const *inputs, int n_inputs, char *err,
                         size_t errlen);

// The validation file's path: out with "-val" inserted before a final ".h5" (or appended).
void import_val_path(const char *out, char *buf, size_t len);
