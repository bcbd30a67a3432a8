// train/objectives/preference.h: the alignment losses as pure functions of a few scalars, each with
// its gradient, so they are checked against values computed by hand (tests/test_losses.c) apart
// from any model. Stages turn the gradients into per-token gradients for the model.
#pragma once

// The preference losses of the dpo stage (recipe key `loss`; formulas below).
typedef enum {
    DPO_SIGMOID,
    DPO_IPO,
    DPO_ROBUST,
    DPO_HINGE,
    DPO_SIMPO,
    DPO_ORPO,
    DPO_KTO, // unpaired examples, not pairs: kto_example_loss
} DpoLoss;

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
//   kto      KTO (Ethayarajh et al. 2024) takes unpaired examples, each a (prompt, completion)
//            labelled desirable or undesirable, not pairs; see kto_example_loss below.
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

// ---- KTO ----------------------------------------------------------------------------------------
//
// KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization"). One
// example: the policy's log-prob of the completion summed over its tokens (logp), the
// reference's (ref), r = logp - ref, and the reference point z0 (kto_reference_point):
//   desirable    lambda_D (1 - sigmoid(beta (r - z0)))
//   undesirable  lambda_U (1 - sigmoid(beta (z0 - r)))
// z0 is a constant here (detached: no gradient flows into the log-probs it was estimated from).
// With s = sigmoid(x) and s' = s (1 - s):
//   dloss/dlogp = -lambda_D beta s'(beta (r - z0))   (desirable)
//               = +lambda_U beta s'(beta (z0 - r))   (undesirable)
typedef struct {
    double beta;               // inverse temperature
    double desirable_weight;   // lambda_D, weight of the desirable examples' loss
    double undesirable_weight; // lambda_U, weight of the undesirable examples' loss
} KtoParams;

typedef struct {
    double loss;   // the example's weighted loss
    double d_logp; // dloss / d logp, z0 held constant
    double reward; // implicit reward beta (logp - ref)
} KtoLoss;

KtoLoss kto_example_loss(const KtoParams *p, double logp, double ref, double z0, int desirable);

// The reference point from mismatched pairs (a prompt with another example's completion):
// z0 = max(0, kl_sum / count), where kl_sum sums (logp - ref) over count such completions; 0
// when count is 0.
double kto_reference_point(double kl_sum, double count);
