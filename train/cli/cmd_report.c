// train/cli/cmd_report.c: `layercake report RUN_DIR`: (re)builds RUN_DIR/report.md and the SVG
// plots in RUN_DIR/plots/ from the run directory (docs/report.md).
#include "train/cli/commands.h"
#include "train/report/report.h"
#include <getopt.h>
#include <stdio.h>

static const char USAGE[] =
    "usage: layercake report RUN_DIR\n"
    "\n"
    "  (Re)builds RUN_DIR/report.md and the SVG plots in RUN_DIR/plots/ from what the run\n"
    "  directory holds: each stage's metrics.jsonl and stage.json (final training and\n"
    "  validation metrics, loss curves, reward and KL per RL iteration) and an eval stage's\n"
    "  results.json (comparison table, Bradley-Terry leaderboard, reward-vs-KL frontier).\n"
    "  Malformed lines are reported as FILE:LINE and skipped. See docs/report.md.\n";

static int usage_error(const char *msg) {
    fprintf(stderr, "layercake report: %s\n\n%s", msg, USAGE);
    return 2;
}

int cmd_report(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("%s", USAGE);
            return 0;
        }
        return usage_error("unknown option");
    }
    if (argc - optind != 1) return usage_error("expected one RUN_DIR");
    const char *dir = argv[optind];
    ReportSummary sum;
    char err[4096 + 256];
    if (report_build(dir, stderr, &sum, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake report: %s\n", err);
        return 1;
    }
    printf("wrote %s/report.md: %d stage%s, %d eval result%s, %d plot%s", dir, sum.stages,
           sum.stages == 1 ? "" : "s", sum.evals, sum.evals == 1 ? "" : "s", sum.plots,
           sum.plots == 1 ? "" : "s");
    if (sum.warnings)
        printf(" (%d malformed input%s skipped)", sum.warnings, sum.warnings == 1 ? "" : "s");
    printf("\n");
    return 0;
}
