// train/run/metrics.h: a stage's metrics.jsonl, one JSON object per line (written with jansson):
// training rows {"step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed", ...} and
// evaluation rows with "split": "val". Every row has "step"; rows are flushed as written, so
// the file is complete up to the last finished step whenever the process dies.
#pragma once
#include <stdint.h>
#include <stdio.h>

typedef struct Metrics Metrics;

// Opens dir/metrics.jsonl. resume_step < 0 starts a new file; otherwise the rows with a step
// above resume_step (written after the checkpoint being resumed) are dropped, so a resumed
// run's file matches an uninterrupted one's. Returns NULL with a message in err.
Metrics *metrics_open(const char *dir, int64_t resume_step, char *err, size_t errlen);
// Metrics that keep rows nowhere: what the processes other than rank 0 of a data-parallel run
// write to (their rows equal rank 0's).
Metrics *metrics_discard(void);
void metrics_close(Metrics *m);

// Whether every row so far reached the file: 0, or -1 with a message naming the file and the
// cause of the first failed write or flush ("disk full ..." for ENOSPC). The failure is sticky:
// a run that calls this after each step stops at the first row it lost.
int metrics_check(const Metrics *m, char *err, size_t errlen);

// A row: begin, add fields, end (writes and flushes the line; a failure is kept for
// metrics_check).
void metrics_begin(Metrics *m, int64_t step);
void metrics_add(Metrics *m, const char *key, double value);
void metrics_add_str(Metrics *m, const char *key, const char *value);
void metrics_end(Metrics *m);

// A named running sum for a step's statistics, averaged over what was added. Entries added
// with stats_add_dist also keep their second moment and are written as <name>/mean and
// <name>/std.
#define STATS_MAX 32
typedef struct {
    int n;
    const char *name[STATS_MAX]; // static strings, e.g. "loss", "rewards/margins"
    double sum[STATS_MAX];       // sum of value * weight
    double sum_sq[STATS_MAX];    // sum of value^2 * weight
    double weight[STATS_MAX];    // sum of weight
    int dist[STATS_MAX];         // written as mean and std
} Stats;

void stats_reset(Stats *s);
// Adds value with a weight (the mean is sum(value*weight) / sum(weight)).
void stats_add(Stats *s, const char *name, double value, double weight);
// Adds value to a distribution entry (written as <name>/mean and <name>/std).
void stats_add_dist(Stats *s, const char *name, double value, double weight);
// Sums the statistics of every process of comm into each (data parallelism: the step's means
// over the whole global batch). Every process must have added the same names in the same order.
struct Comm;
void stats_all_reduce(Stats *s, struct Comm *comm);
// The weighted mean of name, or NAN if nothing was added.
double stats_mean(const Stats *s, const char *name);
// Adds every mean of s to the row being written.
void stats_write(const Stats *s, Metrics *m);
