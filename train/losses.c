// train/losses.c: alignment losses and their gradients (see train/losses.h).
#include "train/losses.h"
#include <math.h>

double neg_log_sigmoid(double x) {
    return x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
}

double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

PairLoss bradley_terry_loss(double rc, double rr, double margin, double center_coef) {
    double z = rc - rr - margin, s = rc + rr;
    double g = -sigmoid(-z); // d/dz of -log sigmoid(z)
    return (PairLoss){
        .loss = neg_log_sigmoid(z) + center_coef * s * s,
        .d_chosen = g + 2.0 * center_coef * s,
        .d_rejected = -g + 2.0 * center_coef * s,
    };
}
