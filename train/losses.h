// train/losses.h: the alignment losses as pure functions of a few scalars, each with its
// gradient, so they are checked against values computed by hand (tests/test_losses.c) apart
// from any model. Stages turn the gradients into per-token gradients for the model.
#pragma once

// -log sigmoid(x) = softplus(-x), stable for any x (no overflow at |x| = 1e3).
double neg_log_sigmoid(double x);
// sigmoid(x), stable for any x.
double sigmoid(double x);

// Bradley-Terry reward-model loss of one pair (Ouyang et al. 2022, InstructGPT eq. 1), with
// an optional margin (Touvron et al. 2023, Llama 2) and reward-centering term (Eisenstein et
// al. 2023): loss = -log sigmoid(rc - rr - margin) + center_coef * (rc + rr)^2.
typedef struct {
    double loss;
    double d_chosen;   // dloss / d rc
    double d_rejected; // dloss / d rr
} PairLoss;

PairLoss bradley_terry_loss(double rc, double rr, double margin, double center_coef);
