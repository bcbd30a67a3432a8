// train/stages/label.c: the label stage: AI feedback. The init model answers every prompt of
// data.prompts rollout.group_size times, the stage's judge scores the answers, and the
// labeller (train/stages/pairs.h) writes what later stages train on:
//   <stage>/pref.h5, pref-val.h5  preference pairs (label.pairs), a tenth of the prompts for
//                                 validation
//   <stage>/sft.h5                best-of-n rejection sampling: each prompt with its best answer
//   <stage>/labels.jsonl          per prompt its answers, scores, correctness and pairs (with
//                                 their score margins)
//   <stage>/label.json            the counts; final.h5 marks the stage complete (no weights)
#include "train/stages/pairs.h"
#include "train/stages/stageio.h"
#include "train/stages/stages.h"
#include <stdio.h>

int stage_label(StageRun *sr) {
    char pref[2][4200], sft[4200], labels[4200], summary[4200];
    snprintf(pref[0], sizeof(pref[0]), "%s/pref.h5", sr->dir);
    snprintf(pref[1], sizeof(pref[1]), "%s/pref-val.h5", sr->dir);
    snprintf(sft, sizeof(sft), "%s/sft.h5", sr->dir);
    snprintf(labels, sizeof(labels), "%s/labels.jsonl", sr->dir);
    snprintf(summary, sizeof(summary), "%s/label.json", sr->dir);
    LabelJob job = {.model = sr->stage->init,
                    .pref = {pref[0], pref[1]},
                    .sft = sft,
                    .labels = labels,
                    .summary = summary,
                    .seed = stage_seed(sr, "label")};
    LabelStats st;
    int rc = sr->run->rank == 0 ? label_sample(sr, &job, &st) : 0;
    char err[1024];
    if (!rc && sr->run->rank == 0 && stageio_mark_complete(sr, err, sizeof(err))) {
        fprintf(stderr, "layercake: stage '%s': %s\n", sr->stage->name, err);
        rc = 1;
    }
    if (run_agree(sr->run, rc)) return 1;
    printf("[%s] done: %s, %s, %s\n", sr->stage->name, pref[0], sft, labels);
    return 0;
}
