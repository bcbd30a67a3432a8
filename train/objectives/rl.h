// train/objectives/rl.h: the reinforcement-learning math of the ppo, grpo and rloo stages as pure
// functions (advantages, whitening, KL estimators and controller, PPO's clipped losses), each
// checked against values computed by hand in tests/test_rl.c. The stages own rollouts, models
// and batching; these functions only see numbers. docs/rl.md has the formulas and sources.
//
// Shapes: B responses (rows), T response tokens per row, row-major (B, T) arrays. mask (B, T)
// is 1 at a real response token and 0 at padding after the response has ended (a row's real
// tokens are a prefix of it); a NULL mask means every token is real. Sums are in double.
#pragma once
#include <stdbool.h>
#include <stddef.h>

// ---- Rewards and advantages ------------------------------------------------------------------

// Per-token rewards of PPO-style RLHF (Ziegler et al. 2019; Stiennon et al. 2020):
//   rewards[b,t] = -kl_coef * kl[b,t]                      at every real token,
//                + clip(scores[b], -reward_clip, reward_clip) at the row's last real token,
// and 0 at padding. reward_clip 0 = no clipping. A row without real tokens gets no score.
//   scores (B): sequence-level reward (reward model or gold function) of each response
//   kl (B, T): per-token KL estimate against the reference (rl_kl); rewards (B, T): out
void rl_token_rewards(const float *scores, const float *kl, const float *mask, int B, int T,
                      double kl_coef, double reward_clip, float *rewards);

// Sequence reward of each response for the critic-free stages (GRPO, RLOO), whose advantage is
// one number per response:
//   out[b] = clip(scores[b], -reward_clip, reward_clip) - kl_coef * sum_t kl[b,t],
// the sum over the row of rl_token_rewards' per-token rewards. reward_clip 0 = no clipping.
// kl_coef is the recipe's `kl.coef` (the controller's current coef) when `kl.in_reward` is
// true; 0 = no KL penalty, and kl is then not read (it may be NULL). The sum is in double.
//   scores (B): sequence-level reward of each response (reward model or gold function)
//   kl (B, T): per-token KL estimate (rl_kl), 0 at positions that are not response tokens
//   out (B): the sequence rewards
void rl_sequence_rewards(const float *scores, const float *kl, int B, int T, double kl_coef,
                         double reward_clip, float *out);

// Generalised Advantage Estimation (Schulman et al. 2016, eq. 16), per row, backwards in t:
//   delta_t = r_t + gamma * V_{t+1} - V_t,   A_t = delta_t + gamma * lambda * A_{t+1},
//   returns_t = A_t + V_t.
// After a row's last real token the episode has ended: V_{t+1} = A_{t+1} = 0 there (no
// bootstrap from padding). Padding steps are skipped and get advantage and return 0.
// gamma = lambda = 1 gives A_t = sum_{s >= t} r_s - V_t (reward-to-go minus value).
//   rewards, values (B, T): in; advantages, returns (B, T): out
void rl_gae(const float *rewards, const float *values, const float *mask, int B, int T,
            double gamma, double lambda, float *advantages, float *returns);

// Whitening over the real entries of x (n), in place:
//   x <- (x - mean) / sqrt(var + 1e-8)            (shift_mean true: advantages),
//   x <- (x - mean) / sqrt(var + 1e-8) + mean     (shift_mean false: rewards, keeps the mean),
// with var the population variance (divide by the count, as OpenAI's lm-human-preferences via
// tf.nn.moments and the Huang et al. 2024 reproduction; TRL's masked_whiten applies Bessel's
// correction, a factor sqrt(n / (n - 1)) in scale). Padding entries are set to 0 (TRL fills
// them with 0 right after whitening). One real entry whitens to 0 (or to itself with
// shift_mean false); none leaves x all 0.
void rl_whiten(float *x, const float *mask, size_t n, bool shift_mean);

// Data parallelism: x is this process's share of the entries and reduce->sum(ctx, v, k) sums
// v (k doubles) over the processes in place (train/stages/rl.c wraps the run's Comm), so the
// moments are those of the union of every process's entries (two passes: the mean, then the
// squared deviations from it). reduce NULL: this process alone, exactly rl_whiten.
typedef struct {
    void (*sum)(void *ctx, double *v, size_t k);
    void *ctx;
} RlReduce;
void rl_whiten_global(float *x, const float *mask, size_t n, bool shift_mean,
                      const RlReduce *reduce);

// Critic-free advantages of groups of responses to one prompt. scores (n_groups, group_size)
// row-major, group_size >= 2; adv (n_groups, group_size): out, one advantage per response.
typedef enum {
    // GRPO (Shao et al. 2024, DeepSeekMath, outcome supervision):
    //   A_i = (r_i - mean_g) / (std_g + 1e-4),
    // std_g the sample standard deviation (divide by k - 1), as TRL's GRPOTrainer (torch.std,
    // epsilon 1e-4) and OpenRLHF's group_norm. A group of equal rewards gets A = 0.
    RL_GROUP_GRPO,
    // RLOO (Kool et al. 2019; Ahmadian et al. 2024): A_i = r_i - (sum_{j != i} r_j) / (k - 1),
    // the leave-one-out baseline, which equals k / (k - 1) * (r_i - mean_g).
    RL_GROUP_RLOO,
} RlGroupBaseline;

void rl_group_advantages(const float *scores, int n_groups, int group_size, RlGroupBaseline kind,
                         float *adv);

// ---- KL against the reference -----------------------------------------------------------------

typedef enum { KL_K1, KL_K3 } KlEstimator; // the per-token estimators below

// Per-token estimate of KL(pi || pi_ref) from the sampled token's log-probs (Schulman 2020,
// "Approximating KL divergence"), with d = logp_ref - logp:
//   k1 = -d = logp - logp_ref            (unbiased, can be negative),
//   k3 = exp(d) - 1 - d                  (unbiased, always >= 0, lower variance).
// No clamping: k3 overflows to inf only if logp_ref - logp > 709.
double rl_kl(double logp, double logp_ref, KlEstimator est);

// d rl_kl / d logp, for KL as a loss term (GRPO style): k1: 1; k3: 1 - exp(logp_ref - logp).
double rl_kl_grad(double logp, double logp_ref, KlEstimator est);

// The KL coefficient. Fixed when target is NAN; otherwise the adaptive controller of Ziegler
// et al. 2019 (section 2.2; TRL's legacy AdaptiveKLController): after each rollout,
//   e = clip(kl / target - 1, -0.2, 0.2),   coef <- coef * (1 + e * n_samples / horizon),
// with kl the rollout's mean KL per response (per-token KL summed over the response) and
// n_samples the responses in the rollout.
typedef struct {
    double coef;    // current KL coefficient (starts at the recipe's `kl.coef`)
    double target;  // target KL per response; NAN = fixed coefficient
    double horizon; // in responses: an error e held for `horizon` responses scales coef by ~exp(e)
} KlController;

KlController kl_controller_init(double coef, double target, double horizon);
void kl_controller_update(KlController *c, double kl, int n_samples);

// ---- PPO losses (per token; the stage averages them over real tokens) -------------------------

// log(ratio) is clamped to [-RL_MAX_LOG_RATIO, RL_MAX_LOG_RATIO] before exp, so a policy that
// has moved absurdly far from the rollout's still gives a finite loss (as verl does).
#define RL_MAX_LOG_RATIO 20.0

// PPO's clipped surrogate (Schulman et al. 2017, eq. 7), as a loss to minimise:
//   ratio = exp(logp - old_logp),
//   loss = max(-adv * ratio, -adv * clip(ratio, 1 - clip, 1 + clip)).
// Where the clipped term is strictly larger it is the loss; it is constant in logp there, so
// dlogp = 0. Otherwise dlogp = -adv * ratio (d ratio / d logp = ratio). dlogp is also 0 where
// the log-ratio is clamped.
typedef struct {
    double loss;
    double dlogp;     // d loss / d logp
    int clipped;      // 1 where the clipped term is strictly the max (policy/clipfrac)
    double ratio;     // exp(logp - old_logp), clamped as above (val/ratio)
    double approx_kl; // 0.5 * (logp - old_logp)^2 (OpenAI baselines' and TRL's approxkl)
} PolicyLoss;

PolicyLoss rl_policy_loss(double logp, double old_logp, double adv, double clip);

// The clipped value loss (OpenAI baselines ppo2, lm-human-preferences, TRL):
//   v_clipped = old_v + clip(v - old_v, -clip, clip),
//   loss = 0.5 * max((v - ret)^2, (v_clipped - ret)^2);
// clip 0 = unclipped: loss = 0.5 * (v - ret)^2. dvalue = v - ret, or 0 where the clipped
// term is strictly larger (it is constant in v there).
typedef struct {
    double loss;
    double dvalue; // d loss / d v
    int clipped;   // 1 where the clipped term is strictly the max (val/clipfrac)
} ValueLoss;

ValueLoss rl_value_loss(double v, double old_v, double ret, double clip);

// ---- Diagnostics ------------------------------------------------------------------------------

// Explained variance of the values against the returns over the real entries (n):
// 1 - Var(returns - values) / Var(returns) (val/explained_variance). 1 is a perfect critic,
// 0 no better than a constant, negative worse. NAN when Var(returns) = 0 (no real entries,
// one, or all returns equal).
double rl_explained_variance(const float *values, const float *returns, const float *mask,
                             size_t n);
// The same over the union of every process's entries (reduce as for rl_whiten_global).
double rl_explained_variance_global(const float *values, const float *returns, const float *mask,
                                    size_t n, const RlReduce *reduce);
