// train/stages/judge_command.c: the command judge (train/stages/judge.h, docs/judges.md).
#include "train/stages/judge-impl.h"

int judge_command_open(Judge *j) {
    judge_report(j->sr, "judge.kind", "the command judge is not built yet");
    return -1;
}
void judge_command_close(Judge *j) {
    (void)j;
}
int judge_command_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct) {
    (void)j, (void)items, (void)n, (void)scores, (void)correct;
    return -1;
}
