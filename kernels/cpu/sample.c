// Sampling the next token of each row from its logits (rollouts, evaluation, `generate`): the
// reference of Backend.sample_tokens (kernels/kernels.h), which states the rule. The CUDA kernel
// (kernels/cuda/sample.cuh) computes the same choice without sorting; this one sorts the
// candidates, the plainest way to read the rule.
#include "common/check.h"
#include "kernels/cpu/cpu.h"
#include <math.h>
#include <stdlib.h>

// A candidate token: its logit and id. The sampling order is logit descending, id ascending on
// equal logits (-0 and +0 are equal): the order of the exact probabilities, with ties by id.
typedef struct {
    float z;
    int i;
} Cand;

// Whether a comes before b in the sampling order.
static int precedes(const Cand *a, const Cand *b) {
    if (a->z != b->z) return a->z > b->z;
    return a->i < b->i;
}

static int by_order(const void *a, const void *b) {
    return precedes(a, b) ? -1 : (precedes(b, a) ? 1 : 0);
}

static int by_id(const void *a, const void *b) {
    return ((const Cand *)a)->i - ((const Cand *)b)->i;
}

// Restores the heap property below r in c[0..k): the candidate latest in the order at the root.
static void sift_down(Cand *c, int k, int r) {
    for (;;) {
        int l = 2 * r + 1;
        if (l >= k) return;
        if (l + 1 < k && precedes(&c[l], &c[l + 1])) l++;
        if (!precedes(&c[r], &c[l])) return;
        Cand t = c[r];
        c[r] = c[l];
        c[l] = t;
        r = l;
    }
}

// Moves the first k of c[0..n) in the order to the front (a size-k heap, O(n log k)).
static int keep_first_k(Cand *c, int n, int k) {
    if (k >= n) return n;
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int i = k; i < n; i++) {
        if (!precedes(&c[i], &c[0])) continue; // not before the latest kept
        c[0] = c[i];
        sift_down(c, k, 0);
    }
    return k;
}

// One row: z (V) logits, p (V) scratch for the probabilities, c (V) scratch.
static void sample_row(int *token, float *logp, const float *z, float u, int V, float temperature,
                       int top_k, float top_p, float *p, Cand *c) {
    int greedy = !(temperature > 0.0f);
    float temp = greedy ? 1.0f : temperature;
    int best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    float maxz = z[best];
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        float e = expf((z[v] - maxz) / temp);
        p[v] = e;
        sum += e;
    }
    int tok = best;
    if (!greedy) {
        for (int v = 0; v < V; v++) p[v] = (float)(p[v] / sum);
        int n = 0; // kept candidates in c[0..n), in id order once chosen
        if (top_k > 0 || top_p < 1.0f) {
            // a token below (1-top_p)/(V-1) is never in the nucleus: the tokens at or above it
            // already hold at least 1 - (V-1) (1-top_p)/(V-1) = top_p
            float cutoff = top_p < 1.0f && V > 1 ? (1.0f - top_p) / (float)(V - 1) : 0.0f;
            for (int v = 0; v < V; v++)
                if (p[v] >= cutoff) c[n++] = (Cand){z[v], v};
            if (top_k > 0) n = keep_first_k(c, n, top_k);
            qsort(c, (size_t)n, sizeof(Cand), by_order);
            if (top_p < 1.0f) {
                double mass = 0.0;
                for (int i = 0; i < n; i++) {
                    mass += p[c[i].i];
                    if (mass >= top_p) {
                        n = i + 1;
                        break;
                    }
                }
            }
            qsort(c, (size_t)n, sizeof(Cand), by_id);
        } else {
            for (int v = 0; v < V; v++) c[n++] = (Cand){z[v], v};
        }
        // inverse CDF over the kept tokens in id order
        double kept = 0.0;
        for (int i = 0; i < n; i++) kept += p[c[i].i];
        double target = (double)u * kept, acc = 0.0;
        tok = -1;
        for (int i = 0; i < n && tok < 0; i++) {
            acc += p[c[i].i];
            if (acc > target) tok = c[i].i;
        }
        // rounding left the cumulative mass at or below u * kept: the last kept token that can
        // be drawn at all
        for (int i = n - 1; i >= 0 && tok < 0; i--)
            if (p[c[i].i] > 0.0f) tok = c[i].i;
        if (tok < 0) tok = best;
    }
    *token = tok;
    *logp = (float)((double)(z[tok] - maxz) / temp - log(sum));
}

void cpu_sample_tokens(int *token, float *logp, const float *logits, const float *u, int B, int V,
                       int Vp, float temperature, int top_k, float top_p) {
    if (B <= 0 || V <= 0) return;
    float *p = lc_malloc((size_t)V * sizeof(float));
    Cand *c = lc_malloc((size_t)V * sizeof(Cand));
    int greedy = !(temperature > 0.0f);
    for (int b = 0; b < B; b++)
        sample_row(token + b, logp + b, logits + (size_t)b * Vp, greedy ? 0.0f : u[b], V,
                   temperature, top_k, top_p, p, c);
    free(p);
    free(c);
}
