// optim/schedule.c: learning-rate schedules: constant, or linear warmup then cosine or linear
// decay to min_lr_ratio * lr at total_steps (and held there after).
#include "optim/optim.h"
#include <math.h>

float schedule_lr(const Schedule *s, float lr, long step) {
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        return lr * (float)(step + 1) / (float)s->warmup_steps;
    if (s->kind == SCHEDULE_CONSTANT) return lr;
    float min_lr = lr * s->min_lr_ratio;
    long span = s->total_steps - s->warmup_steps;
    if (span <= 0) return lr;
    double frac = (double)(step - s->warmup_steps) / (double)span;
    if (frac > 1.0) frac = 1.0;
    double shape = s->kind == SCHEDULE_COSINE ? 0.5 * (1.0 + cos(M_PI * frac)) : 1.0 - frac;
    return min_lr + (float)shape * (lr - min_lr);
}
