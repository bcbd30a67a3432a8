// data/info.h: summary statistics of a dataset file, as `layercake data info` prints them
// (text or one JSON object).
#pragma once
#include "data/dataset.h"
#include <stdio.h>

typedef struct {
    DataKind kind;        // from the file
    uint64_t fingerprint; // tokenizer fingerprint from the file
    int64_t examples;     // examples (lm: documents or document pieces)
    int64_t tokens;       // token ids over every token array
    int64_t trained;      // ids that are targets of the loss: sft mask 1, preference responses,
                          // unpaired completions, lm everything, prompt none
    int64_t references;   // prompt: examples with a reference answer (text or tokens)
    int64_t desirable;    // unpaired: examples labelled desirable
    int64_t len_p50, len_p90, len_p99,
        len_max; // example length in tokens, as --max-len
                 // counts it: lm and sft the sequence, preference prompt + longer
                 // response, unpaired prompt + completion, prompt the prompt
                 // (nearest-rank percentiles)
    // The `chat_template` attribute: the template the importer rendered with ("" when absent).
    char chat_template[32];
} DatasetInfo;

// Opens path (any kind) and computes its summary. Returns 0, or -1 with a message.
int dataset_info(const char *path, DatasetInfo *info, char *err, size_t errlen);
// The summary as text lines.
void dataset_info_print(FILE *f, const char *path, const DatasetInfo *info);
// The summary as one JSON object (malloc'd text the caller frees): file, kind, examples,
// tokens, trained_tokens, references, desirable (unpaired only), length {p50, p90, p99, max},
// tokenizer, and chat_template when the file records one.
char *dataset_info_json(const char *path, const DatasetInfo *info);
