// train/stages/judge_match.c: the match judge (train/stages/judge.h, docs/judges.md).
#include "train/stages/judge-impl.h"

int judge_match_open(Judge *j) {
    judge_report(j->sr, "judge.kind", "the match judge is not built yet");
    return -1;
}
void judge_match_close(Judge *j) {
    (void)j;
}
int judge_match_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct) {
    (void)j, (void)items, (void)n, (void)scores, (void)correct;
    return -1;
}
