// train/objectives/rl.c: advantages, whitening, KL and PPO losses (see train/objectives/rl.h and
// docs/rl.md).
#include "train/objectives/rl.h"
#include <math.h>

#define WHITEN_EPS 1e-8 // added to the variance before the square root (TRL, lm-human-prefs)
#define GRPO_EPS   1e-4 // added to the group's standard deviation (TRL's GRPOTrainer)

static bool is_real(const float *mask, size_t i) {
    return !mask || mask[i] != 0.0f;
}

static double clamp(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

// ---- Rewards and advantages ------------------------------------------------------------------

void rl_token_rewards(const float *scores, const float *kl, const float *mask, int B, int T,
                      double kl_coef, double reward_clip, float *rewards) {
    for (int b = 0; b < B; b++) {
        size_t row = (size_t)b * (size_t)T;
        int last = -1;
        for (int t = 0; t < T; t++) {
            bool real = is_real(mask, row + (size_t)t);
            rewards[row + (size_t)t] = real ? (float)(-kl_coef * kl[row + (size_t)t]) : 0.0f;
            if (real) last = t;
        }
        if (last < 0) continue;
        double s = reward_clip > 0 ? clamp(scores[b], -reward_clip, reward_clip) : scores[b];
        rewards[row + (size_t)last] = (float)(rewards[row + (size_t)last] + s);
    }
}

void rl_sequence_rewards(const float *scores, const float *kl, int B, int T, double kl_coef,
                         double reward_clip, float *out) {
    for (int b = 0; b < B; b++) {
        double s = reward_clip > 0 ? clamp(scores[b], -reward_clip, reward_clip) : scores[b];
        if (kl_coef != 0.0) { // kl is not read otherwise (no 0 * inf from an overflowed k3)
            const float *row = kl + (size_t)b * (size_t)T;
            double sum = 0.0;
            for (int t = 0; t < T; t++) sum += row[t];
            s -= kl_coef * sum;
        }
        out[b] = (float)s;
    }
}

// One row of GAE (T steps), backwards from the episode's end (V = A = 0 after it).
static void gae_row(const float *r, const float *v, const float *mask, int T, double gamma,
                    double lambda, float *adv, float *ret) {
    double next_v = 0.0, next_a = 0.0; // V and A after the step being computed
    for (int t = T - 1; t >= 0; t--) {
        if (!is_real(mask, (size_t)t)) {
            adv[t] = ret[t] = 0.0f;
            continue;
        }
        double a = r[t] + gamma * next_v - v[t] + gamma * lambda * next_a;
        adv[t] = (float)a;
        ret[t] = (float)(a + v[t]);
        next_v = v[t];
        next_a = a;
    }
}

void rl_gae(const float *rewards, const float *values, const float *mask, int B, int T,
            double gamma, double lambda, float *advantages, float *returns) {
    for (int b = 0; b < B; b++) {
        size_t row = (size_t)b * (size_t)T;
        gae_row(rewards + row, values + row, mask ? mask + row : NULL, T, gamma, lambda,
                advantages + row, returns + row);
    }
}

static void reduce_sum(const RlReduce *reduce, double *v, size_t k) {
    if (reduce) reduce->sum(reduce->ctx, v, k);
}

// Mean and population variance of x over the real entries (of every process with reduce);
// returns how many there are.
static double masked_moments(const float *x, const float *mask, size_t n, const RlReduce *reduce,
                             double *mean, double *var) {
    double s[2] = {0.0, 0.0}, sq = 0.0; // sum, count
    for (size_t i = 0; i < n; i++) {
        if (!is_real(mask, i)) continue;
        s[0] += x[i];
        s[1] += 1.0;
    }
    reduce_sum(reduce, s, 2);
    *mean = s[1] > 0 ? s[0] / s[1] : 0.0;
    for (size_t i = 0; i < n; i++)
        if (is_real(mask, i)) sq += (x[i] - *mean) * (x[i] - *mean);
    reduce_sum(reduce, &sq, 1);
    *var = s[1] > 0 ? sq / s[1] : 0.0;
    return s[1];
}

void rl_whiten_global(float *x, const float *mask, size_t n, bool shift_mean,
                      const RlReduce *reduce) {
    double mean, var;
    masked_moments(x, mask, n, reduce, &mean, &var);
    double scale = 1.0 / sqrt(var + WHITEN_EPS), back = shift_mean ? 0.0 : mean;
    for (size_t i = 0; i < n; i++)
        x[i] = is_real(mask, i) ? (float)((x[i] - mean) * scale + back) : 0.0f;
}

void rl_whiten(float *x, const float *mask, size_t n, bool shift_mean) {
    rl_whiten_global(x, mask, n, shift_mean, NULL);
}

// One group of k >= 2 scores.
static void group_advantages(const float *r, int k, RlGroupBaseline kind, float *adv) {
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < k; i++) sum += r[i];
    double mean = sum / k;
    for (int i = 0; i < k; i++) sq += (r[i] - mean) * (r[i] - mean);
    double std = sqrt(sq / (k - 1));
    for (int i = 0; i < k; i++)
        adv[i] = kind == RL_GROUP_GRPO ? (float)((r[i] - mean) / (std + GRPO_EPS))
                                       : (float)(r[i] - (sum - r[i]) / (k - 1));
}

void rl_group_advantages(const float *scores, int n_groups, int group_size, RlGroupBaseline kind,
                         float *adv) {
    for (int g = 0; g < n_groups; g++) {
        size_t off = (size_t)g * (size_t)group_size;
        group_advantages(scores + off, group_size, kind, adv + off);
    }
}

// ---- KL against the reference -----------------------------------------------------------------

double rl_kl(double logp, double logp_ref, KlEstimator est) {
    double d = logp_ref - logp;
    return est == KL_K3 ? expm1(d) - d : -d;
}

double rl_kl_grad(double logp, double logp_ref, KlEstimator est) {
    return est == KL_K3 ? -expm1(logp_ref - logp) : 1.0;
}

KlController kl_controller_init(double coef, double target, double horizon) {
    return (KlController){.coef = coef, .target = target, .horizon = horizon};
}

void kl_controller_update(KlController *c, double kl, int n_samples) {
    if (isnan(c->target)) return;
    double e = clamp(kl / c->target - 1.0, -0.2, 0.2);
    c->coef *= 1.0 + e * n_samples / c->horizon;
}

// ---- PPO losses -------------------------------------------------------------------------------

PolicyLoss rl_policy_loss(double logp, double old_logp, double adv, double clip) {
    double diff = logp - old_logp;
    bool saturated = fabs(diff) > RL_MAX_LOG_RATIO;
    double ratio = exp(clamp(diff, -RL_MAX_LOG_RATIO, RL_MAX_LOG_RATIO));
    double unclipped = -adv * ratio, clipped = -adv * clamp(ratio, 1.0 - clip, 1.0 + clip);
    int is_clipped = clipped > unclipped;
    return (PolicyLoss){
        .loss = is_clipped ? clipped : unclipped,
        .dlogp = is_clipped || saturated ? 0.0 : unclipped,
        .clipped = is_clipped,
        .ratio = ratio,
        .approx_kl = 0.5 * diff * diff,
    };
}

ValueLoss rl_value_loss(double v, double old_v, double ret, double clip) {
    double err = v - ret;
    double unclipped = err * err;
    if (clip <= 0) return (ValueLoss){.loss = 0.5 * unclipped, .dvalue = err, .clipped = 0};
    double vc = old_v + clamp(v - old_v, -clip, clip);
    double clipped = (vc - ret) * (vc - ret);
    int is_clipped = clipped > unclipped;
    return (ValueLoss){
        .loss = 0.5 * (is_clipped ? clipped : unclipped),
        .dvalue = is_clipped ? 0.0 : err,
        .clipped = is_clipped,
    };
}

// ---- Diagnostics ------------------------------------------------------------------------------

double rl_explained_variance_global(const float *values, const float *returns, const float *mask,
                                    size_t n, const RlReduce *reduce) {
    double mean_r, var_r, sum_e = 0.0, sq_e = 0.0;
    double count = masked_moments(returns, mask, n, reduce, &mean_r, &var_r);
    if (count == 0 || var_r == 0.0) return NAN;
    for (size_t i = 0; i < n; i++)
        if (is_real(mask, i)) sum_e += (double)returns[i] - values[i];
    reduce_sum(reduce, &sum_e, 1);
    double mean_e = sum_e / count;
    for (size_t i = 0; i < n; i++) {
        if (!is_real(mask, i)) continue;
        double e = (double)returns[i] - values[i] - mean_e;
        sq_e += e * e;
    }
    reduce_sum(reduce, &sq_e, 1);
    return 1.0 - sq_e / count / var_r;
}

double rl_explained_variance(const float *values, const float *returns, const float *mask,
                             size_t n) {
    return rl_explained_variance_global(values, returns, mask, n, NULL);
}
