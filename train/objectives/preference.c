// train/objectives/preference.c: alignment losses and their gradients (see
// train/objectives/preference.h).
#include "train/objectives/preference.h"
#include "common/check.h"
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

KtoLoss kto_example_loss(const KtoParams *p, double logp, double ref, double z0, int desirable) {
    double r = logp - ref;
    double x = p->beta * (desirable ? r - z0 : z0 - r), s = sigmoid(x);
    double w = desirable ? p->desirable_weight : p->undesirable_weight;
    double ds = s * sigmoid(-x); // s (1 - s) without the cancellation of 1 - s near s = 1
    return (KtoLoss){.loss = w * sigmoid(-x), // 1 - sigmoid(x), exactly, for large x too
                     .d_logp = (desirable ? -1.0 : 1.0) * w * p->beta * ds,
                     .reward = p->beta * r};
}

double kto_reference_point(double kl_sum, double count) {
    if (count <= 0) return 0.0;
    double z = kl_sum / count;
    return z > 0.0 ? z : 0.0;
}

int dpo_needs_reference(DpoLoss kind) {
    return kind != DPO_SIMPO && kind != DPO_ORPO;
}

// log(1 - e^p) for p < 0, stable near 0 and for very negative p.
static double log1m_exp(double p) {
    return p > -0.693147180559945 ? log(-expm1(p)) : log1p(-exp(p));
}

// The reference-based losses as functions of z = beta h: loss and dloss/dh (IPO uses h). With
// label smoothing e, -log sigmoid(z) is the loss of the label as given and -log sigmoid(-z) that
// of the flipped label; d/dz -log sigmoid(z) = -sigmoid(-z), d/dz -log sigmoid(-z) = sigmoid(z).
static DpoPairLoss reference_loss(const DpoParams *p, double h) {
    double z = p->beta * h, e = p->label_smoothing;
    DpoPairLoss l = {0};
    double dh = 0.0; // dloss / dh
    switch (p->kind) {
    case DPO_SIGMOID: // DPO; cDPO for e > 0: (1 - e) (-log sigmoid(z)) + e (-log sigmoid(-z))
        l.loss = (1 - e) * neg_log_sigmoid(z) + e * neg_log_sigmoid(-z);
        dh = (-(1 - e) * sigmoid(-z) + e * sigmoid(z)) * p->beta;
        break;
    case DPO_ROBUST: // rDPO: ((1 - e) (-log sigmoid(z)) - e (-log sigmoid(-z))) / (1 - 2e)
        LC_ASSERT(e >= 0.0 && e < 0.5); // the recipe schema holds label_smoothing in [0, 0.5)
        l.loss = ((1 - e) * neg_log_sigmoid(z) - e * neg_log_sigmoid(-z)) / (1 - 2 * e);
        dh = (-(1 - e) * sigmoid(-z) - e * sigmoid(z)) / (1 - 2 * e) * p->beta;
        break;
    case DPO_IPO:
        l.loss = (h - 1.0 / (2.0 * p->beta)) * (h - 1.0 / (2.0 * p->beta));
        dh = 2.0 * (h - 1.0 / (2.0 * p->beta));
        break;
    case DPO_HINGE:
        l.loss = z < 1.0 ? 1.0 - z : 0.0;
        dh = z < 1.0 ? -p->beta : 0.0;
        break;
    default:
        break;
    }
    l.d_chosen = dh; // h = (pc - rc) - (pr - rr)
    l.d_rejected = -dh;
    return l;
}

static DpoPairLoss family_loss(const DpoParams *p, double pc, double pr, double rc, double rr,
                               int nc, int nr);

DpoPairLoss dpo_pair_loss(const DpoParams *p, double pc, double pr, double rc, double rr, int nc,
                          int nr) {
    LC_ASSERT(p->kind != DPO_KTO); // not a pair loss: kto_example_loss
    DpoPairLoss l = family_loss(p, pc, pr, rc, rr, nc, nr);
    l.loss += p->rpo_alpha * (-pc / nc);
    l.d_chosen += -p->rpo_alpha / nc;
    return l;
}

static DpoPairLoss family_loss(const DpoParams *p, double pc, double pr, double rc, double rr,
                               int nc, int nr) {
    double a = pc / nc, b = pr / nr; // average log-likelihoods
    if (p->kind == DPO_SIMPO) {
        double z = p->beta * (a - b) - p->simpo_gamma, g = -sigmoid(-z) * p->beta;
        return (DpoPairLoss){neg_log_sigmoid(z), g / nc, -g / nr, p->beta * a, p->beta * b};
    }
    if (p->kind == DPO_ORPO) {
        // the odds need p(y) < 1; a response the model is certain of (a = 0) is held just below
        a = a < -1e-6 ? a : -1e-6;
        b = b < -1e-6 ? b : -1e-6;
        // d/da log odds(a) = 1 + e^a / (1 - e^a) = 1 / (1 - e^a)
        double z = (a - log1m_exp(a)) - (b - log1m_exp(b));
        double g = -sigmoid(-z) * p->orpo_lambda; // d(lambda * -log sigmoid(z)) / dz
        double da = -1.0 + g / -expm1(a), db = -g / -expm1(b);
        return (DpoPairLoss){-a + p->orpo_lambda * neg_log_sigmoid(z), da / nc, db / nr,
                             p->beta * a, p->beta * b};
    }
    DpoPairLoss l = reference_loss(p, (pc - rc) - (pr - rr));
    l.reward_chosen = p->beta * (pc - rc);
    l.reward_rejected = p->beta * (pr - rr);
    return l;
}
