// train/report/report.h: `layercake report RUN_DIR`: (re)builds RUN_DIR/report.md and the SVG plots
// in RUN_DIR/plots/ from what the run directory holds: per stage, stage.json and metrics.jsonl; for
// an eval stage, results.json (docs/report.md describes the files and the report).
#pragma once
#include <stddef.h>
#include <stdio.h>

typedef struct {
    int stages;   // stage folders found
    int evals;    // eval results (results.json) included
    int plots;    // SVG files written
    int warnings; // malformed lines and files skipped
} ReportSummary;

// Malformed metrics lines, stage.json and results.json files are reported to log as
// "FILE:LINE: warning: ..." and skipped. Returns 0, or -1 with err when run_dir is not a
// directory or an output cannot be written.
int report_build(const char *run_dir, FILE *log, ReportSummary *sum, char *err, size_t errlen);
