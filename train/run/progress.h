// train/run/progress.h: what a person watching a run sees. On a terminal, one live line per stage
// (step/total, loss, tokens/s, ETA) rewritten in place; otherwise a plain line every `every`
// steps, so logs stay readable when piped to a file or a cluster job's output.
#pragma once
#include <stdint.h>

typedef struct {
    const char *stage; // stage name shown at the start of the line
    int64_t total;     // steps (or iterations) of the stage
    int64_t start;     // the step the stage (re)started from, for the ETA
    int every;         // plain-line interval when not on a terminal
    int tty;           // stdout is a terminal
    double t0;         // time of the start
    int live;          // a live line is on screen (needs a newline before other output)
} Progress;

void progress_init(Progress *p, const char *stage, int64_t total, int64_t start, int every);
// Shows step (1-based count of finished steps) with the given loss and throughput; extra is
// appended (e.g. "acc 0.93"), or NULL.
void progress_update(Progress *p, int64_t step, double loss, double tokens_per_s,
                     const char *extra);
// Prints a full line of text (validation results, samples), keeping the live line intact.
void progress_print(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Ends the live line.
void progress_done(Progress *p);
