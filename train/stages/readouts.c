// train/stages/readouts.c: sequence read-outs (see train/stages/readouts.h).
#include "train/stages/readouts.h"
#include "common/check.h"
#include <math.h>

double sequence_logp(const Model *m, const Batch *b, int r, int *ntok) {
    double sum = 0.0;
    int n = 0;
    for (int t = 0; t < b->T; t++) {
        size_t i = (size_t)r * b->T + t;
        if (!batch_target_counts(b, i)) continue;
        sum += m->host_logp[i];
        n++;
    }
    if (ntok) *ntok = n;
    return sum;
}

void sequence_logps(const Model *m, const Batch *b, double *logp, int *ntok) {
    for (int r = 0; r < b->B; r++) logp[r] = sequence_logp(m, b, r, ntok ? &ntok[r] : NULL);
}

void reward_scores(Model *rm, const Batch *b, float *out) {
    LC_ASSERT(b->len);
    model_forward(rm, b, 1.0f);
    for (int r = 0; r < b->B; r++)
        out[r] = b->len[r] > 0 ? rm->host_values[(size_t)r * b->T + b->len[r] - 1] : NAN;
}
