// train/objectives/preference.h: the alignment losses as pure functions of a few scalars, each with
// its gradient, so they are checked against values computed by hand (tests/test_losses.c) apart
// from any model. Stages turn the gradients into per-token gradients for the model.
#pragma once

// The preference losses of the dpo stage (recipe key `loss`; formulas below).
typedef enum { DPO_SIGMOID, DPO_IPO, DPO_ROBUST, DPO_HINGE, DPO_SIMPO, DPO_ORPO } DpoLoss;

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

// ---- direct preference optimisation and its family ------------------------------------------
//
// Inputs per pair: the policy's log-probs of the chosen and rejected responses, summed over
// their tokens (pc, pr), the reference's (rc, rr; unused by reference-free losses), and the
// responses' lengths in tokens (nc, nr) for the losses that use average log-probs. With
// h = (pc - rc) - (pr - rr):
//   sigmoid  DPO (Rafailov et al. 2023):               -log sigmoid(beta h)
//            with label smoothing e > 0, conservative DPO (Mitchell 2023, "A note on DPO with
//            noisy preferences", cDPO; TRL's sigmoid loss with label_smoothing):
//            -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h)
//            (= DPO + e beta h; its gradient vanishes at beta h = log((1 - e) / e), so the
//            margin it trains towards is bounded)
//   robust   robust DPO (Chowdhury et al. 2024, "Provably Robust DPO", rDPO; TRL's robust):
//            [-(1 - e) log sigmoid(beta h) + e log sigmoid(-beta h)] / (1 - 2e)
//            (= DPO - e beta h / (1 - 2e)), the unbiased estimator: if each label is flipped
//            with probability e, its expectation over the flip is DPO's loss of the true label.
//            It is unbounded below as beta h grows. e = 0 is DPO exactly; e must be < 0.5.
//   ipo      IPO (Azar et al. 2023):                    (h - 1/(2 beta))^2
//   hinge    SLiC-HF (Zhao et al. 2023):                max(0, 1 - beta h)
//   simpo    SimPO (Meng et al. 2024), no reference, length-normalised, target margin gamma:
//            -log sigmoid(beta (pc/nc - pr/nr) - gamma)
//   orpo     ORPO (Hong et al. 2024), no reference: with average log-likelihoods
//            a = pc/nc, b = pr/nr and log odds(p) = p - log(1 - e^p):
//            -a - lambda log sigmoid(log odds(a) - log odds(b))   (the NLL of chosen plus the
//            odds-ratio term)
// Any loss may add rpo_alpha times the NLL of the chosen response, -pc/nc (RPO, Pang et al.
// 2024, "Iterative Reasoning Preference Optimization"; TRL's rpo_alpha).
typedef struct {
    DpoLoss kind;
    double beta;            // inverse temperature (simpo's beta; orpo ignores it)
    double label_smoothing; // sigmoid (cDPO), robust (rDPO): e in [0, 0.5); 0 = DPO
    double simpo_gamma;     // simpo: target reward margin
    double orpo_lambda;     // orpo: weight of the odds-ratio term
    double rpo_alpha;       // weight of the chosen response's mean NLL; 0 = off
} DpoParams;

typedef struct {
    double loss;
    double d_chosen;   // dloss / d pc (the summed log-prob, also for the averaging losses)
    double d_rejected; // dloss / d pr
    double reward_chosen, reward_rejected; // implicit rewards: beta (pc - rc), beta (pr - rr)
                                           // (reference-free: beta pc/nc, beta pr/nr)
} DpoPairLoss;

// Whether a loss needs reference log-probs.
int dpo_needs_reference(DpoLoss kind);

DpoPairLoss dpo_pair_loss(const DpoParams *p, double pc, double pr, double rc, double rr, int nc,
                          int nr);
