// train/report/report-impl.h: the run directory as the report reads it
// (train/report/report_metrics.c). Its types and functions carry a Report/report_ prefix: the
// program also has the recipe's Stage (train/recipe/recipe.h) and the run's Run and run_*
// (train/run/run.h), and one name must mean one thing.
#pragma once
#include "train/report/arena.h"
#include <stdio.h>

// The rows of one split of a stage's metrics as columns: one per numeric key, NAN where a row
// lacks the key.
typedef struct {
    int n_rows, cap;
    double *step; // (n_rows) the rows' "step"
    int n_keys;
    char **keys;   // (n_keys) in order of first appearance
    double **cols; // (n_keys, cap)
} MetricTable;

typedef struct {
    char *name;           // the stage's folder name
    char kind[16];        // from stage.json, else guessed (docs/report.md)
    int kind_guessed;     // 1 if there was no usable stage.json
    MetricTable train;    // rows without "split" (or "split": "train")
    MetricTable val;      // rows with "split": "val"
    int has_results;      // results.json was read into results
    ArenaResults results; // an eval stage's results
} ReportStage;

typedef struct {
    ReportStage *stages; // (n_stages) in pipeline order of their kinds, then by name
    int n_stages;
    int warnings; // malformed lines and files skipped
} ReportRun;

// Reads every stage folder of dir (a folder with metrics.jsonl, stage.json or results.json).
// Returns 0, or -1 with err when dir cannot be listed or is not a run directory (no
// recipe.yaml, no stage folder, and not empty: an empty folder is a run not started yet).
int report_run_load(ReportRun *run, const char *dir, FILE *log, char *err, size_t errlen);
void report_run_free(ReportRun *run);

// The column of key, or NULL when no row has it.
const double *metric_column(const MetricTable *t, const char *key);
