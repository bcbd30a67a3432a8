// train/stages/stageio.h: what stages write besides models and metrics: the final.h5 that marks
// a stage without a model (eval, label, self_instruct, critique_revise) complete, model-generated
// text made valid for JSON, and files written whole from a memory stream.
#pragma once
#include "train/run/run.h"
#include <jansson.h>
#include <stdio.h>

// Prints "layercake: stage '<name>': <message>" to stderr and returns -1.
int stageio_fail(const StageRun *sr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Writes <stage>/final.h5 holding only /state, marked complete, so a rerun skips the stage as it
// skips finished training stages. Returns 0, or -1 with a message in err.
int stageio_mark_complete(const StageRun *sr, char *err, size_t errlen);

// n bytes of s as valid UTF-8 without NUL: every byte that does not start a valid sequence (and
// NUL) becomes U+FFFD. A malloc'd, NUL-terminated string.
char *stageio_clean_text(const char *s, size_t n);

// A JSON string of n bytes of s, cleaned as stageio_clean_text does (a model's bytes need not be
// UTF-8; jansson refuses what is not).
json_t *stageio_json_text(const char *s, size_t n);

// Writes a file atomically from an open_memstream buffer f (closed here; *buf freed and NULL).
// Returns 0, or -1 with a message in err.
int stageio_write_memstream(const char *path, FILE *f, char **buf, size_t *len, char *err,
                            size_t errlen);
