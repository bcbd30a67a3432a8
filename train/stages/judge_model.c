// train/stages/judge_model.c: the model judge (train/stages/judge.h, docs/judges.md).
#include "train/stages/judge-impl.h"

int judge_model_open(Judge *j) {
    judge_report(j->sr, "judge.kind", "the model judge is not built yet");
    return -1;
}
void judge_model_close(Judge *j) {
    (void)j;
}
int judge_model_score(Judge *j, const JudgeItem *items, int n, int group, double *scores,
                      double *correct) {
    (void)j, (void)items, (void)n, (void)group, (void)scores, (void)correct;
    return -1;
}
int judge_model_prefer(Judge *j, const JudgeItem *a, const JudgeItem *b, double *p_a) {
    (void)j, (void)a, (void)b, (void)p_a;
    return -1;
}
