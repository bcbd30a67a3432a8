// train/cli/cmd_report.c: `layercake report RUN_DIR`: (re)builds RUN_DIR/report.md and the SVG
// plots in RUN_DIR/plots/ from the run directory (docs/report.md).
#include "train/cli/commands.h"
#include "train/report/report.h"
#include "train/cli/options.h"
#include <stdio.h>

static const char DESCRIPTION[] =
    "(Re)builds RUN_DIR/report.md and the SVG plots in RUN_DIR/plots/ from what the run\n"
    "directory holds: each stage's metrics.jsonl and stage.json (final training and validation\n"
    "metrics, loss curves, reward and KL per RL iteration) and an eval stage's results.json\n"
    "(comparison table, Bradley-Terry leaderboard, reward-vs-KL frontier). Malformed lines are\n"
    "reported as FILE:LINE and skipped. See docs/report.md.\n";

static void print_summary(const char *dir, const ReportSummary *sum) {
    printf("wrote %s/report.md: %d stage%s, %d eval result%s, %d plot%s", dir, sum->stages,
           sum->stages == 1 ? "" : "s", sum->evals, sum->evals == 1 ? "" : "s", sum->plots,
           sum->plots == 1 ? "" : "s");
    if (sum->warnings)
        printf(" (%d malformed input%s skipped)", sum->warnings, sum->warnings == 1 ? "" : "s");
    printf("\n");
}

int cmd_report(int argc, char **argv) {
    const Option opts[] = {{0}};
    const OptionsCommand cmd = {.name = "report",
                                .synopsis = "RUN_DIR",
                                .summary =
                                    "build a run's report.md and SVG plots from its run directory",
                                .description = DESCRIPTION,
                                .options = opts,
                                .args = "RUN_DIR",
                                .min_args = 1,
                                .max_args = 1};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    const char *dir = args.v[0];
    ReportSummary sum;
    char err[4096 + 256];
    if (report_build(dir, stderr, &sum, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake report: %s\n", err);
        return 1;
    }
    print_summary(dir, &sum);
    return 0;
}
