// model/sample.c: KV-cache sampling. A prefill runs every prompt token but the last through
// the model in one batched forward, storing keys and values; then each step feeds one token
// per row (its last token) at that row's own position, so rows of different lengths never
// need left padding and never attend to padding.
#include "model/sample.h"
#include "common/check.h"
#include "model/model-impl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct Sampler {
    Model *view; // inference view of the model (shares its weights)
    int max_B, max_len;
    float *kcache;    // (L, max_B, max_len, C) on the device, or NULL without a cache
    float *vcache;    // (L, max_B, max_len, C)
    int *seq;         // (max_B, max_len) host: prompt + generated tokens of each row
    int *len;         // (max_B) host: tokens in seq
    int *pos;         // (max_B) host: position of the token fed this step
    int *cur;         // (max_B) host: token fed this step
    int *done;        // (max_B) host
    int *step_tokens; // (max_B, max_len) host: tokens of a prefill or recompute batch
    int *step_pos;    // (max_B, max_len) host: their positions
    int *rows;        // (max_B) host: the lnf row holding each sequence's last token
    float *logits;    // (max_B, Vp) host copy of the step's logits
    float *probs;     // (Vp) host scratch
    int *idx;         // (Vp) host scratch
};

// Floats a cached position holds per layer for keys (and again for values): NKV*hs.
static size_t kv_width(const Model *m) {
    return (size_t)m->cfg.n_kv_head * (size_t)(m->cfg.d_model / m->cfg.n_head);
}

Sampler *sampler_create(const Model *m, int max_B, int max_len, int use_cache) {
    LC_ASSERT(max_len >= 1 && max_len <= m->cfg.max_seq_len);
    Sampler *s = lc_calloc(1, sizeof(*s));
    s->max_B = max_B;
    s->max_len = max_len;
    // rows x positions the view must hold: the prefill (or a full recompute) of max_len tokens
    s->view = model_create_view(m, MODEL_INFER, max_B, max_len);
    if (use_cache) {
        size_t n = (size_t)m->cfg.n_layer * max_B * max_len * kv_width(m) * sizeof(float);
        s->kcache = m->be->alloc(n);
        s->vcache = m->be->alloc(n);
    }
    s->seq = lc_calloc((size_t)max_B * max_len, sizeof(int));
    s->len = lc_calloc(max_B, sizeof(int));
    s->pos = lc_calloc(max_B, sizeof(int));
    s->cur = lc_calloc(max_B, sizeof(int));
    s->done = lc_calloc(max_B, sizeof(int));
    s->step_tokens = lc_calloc((size_t)max_B * max_len, sizeof(int));
    s->step_pos = lc_calloc((size_t)max_B * max_len, sizeof(int));
    s->rows = lc_calloc(max_B, sizeof(int));
    s->logits = lc_calloc((size_t)max_B * m->Vp, sizeof(float));
    s->probs = lc_calloc(m->Vp, sizeof(float));
    s->idx = lc_calloc(m->Vp, sizeof(int));
    return s;
}

void sampler_free(Sampler *s) {
    if (!s) return;
    const Backend *be = s->view->be;
    if (s->kcache) {
        be->free(s->kcache);
        be->free(s->vcache);
    }
    model_free(s->view);
    free(s->seq);
    free(s->len);
    free(s->pos);
    free(s->cur);
    free(s->done);
    free(s->step_tokens);
    free(s->step_pos);
    free(s->rows);
    free(s->logits);
    free(s->probs);
    free(s->idx);
    free(s);
}

size_t sampler_bytes(const Sampler *s) {
    const Model *m = s->view;
    size_t cache =
        s->kcache ? 2 * (size_t)m->cfg.n_layer * s->max_B * s->max_len * kv_width(m) * sizeof(float)
                  : 0;
    return cache + model_act_bytes(m);
}

// ---- next-token logits ----------------------------------------------------------------------

// Runs B x T tokens from step_tokens/step_pos (seg all 0) through the view's layers.
static void run_layers(Sampler *s, int B, int T, const KVAttention *kv) {
    Model *m = s->view;
    const Backend *be = m->be;
    size_t n = (size_t)B * T;
    m->B = B;
    m->T = T;
    be->to_device(m->acts.tokens, s->step_tokens, n * sizeof(int));
    be->to_device(m->acts.pos, s->step_pos, n * sizeof(int));
    be->zero(m->acts.seg, n * sizeof(int));
    model_forward_layers(m, kv);
}

// s->logits row b = logits of lnf row rows[b] (rows NULL: row b).
static void head_logits(Sampler *s, int B, const int *rows) {
    Model *m = s->view;
    const Backend *be = m->be;
    int C = m->cfg.d_model, Vp = m->Vp;
    float *dev = m->acts.logits;
    if (!rows) {
        be->matmul_forward(dev, m->acts.lnf, model_output_weight(m), NULL, B, C, Vp);
    } else {
        for (int b = 0; b < B; b++)
            be->matmul_forward(dev + (size_t)b * Vp, m->acts.lnf + (size_t)rows[b] * C,
                               model_output_weight(m), NULL, 1, C, Vp);
    }
    be->to_host(s->logits, dev, (size_t)B * Vp * sizeof(float));
}

// Loads rows 0..B-1 of seq, up to `upto(b)` tokens each, right-padded to T, into step_*.
static void load_rows(Sampler *s, int B, int T, int drop_last) {
    for (int b = 0; b < B; b++) {
        int n = s->len[b] - drop_last;
        for (int t = 0; t < T; t++) {
            s->step_tokens[b * T + t] = t < n ? s->seq[(size_t)b * s->max_len + t] : 0;
            s->step_pos[b * T + t] = t;
        }
    }
}

static int longest(const Sampler *s, int B) {
    int T = 0;
    for (int b = 0; b < B; b++) T = s->len[b] > T ? s->len[b] : T;
    return T;
}

// Cache prefill: every prompt token but the last, keys/values stored at positions 0..len-2.
static void prefill(Sampler *s, int B) {
    int T = longest(s, B) - 1;
    if (T == 0) return;
    load_rows(s, B, T, 1);
    KVAttention kv = {s->kcache, s->vcache, s->max_B, s->max_len, 0};
    run_layers(s, B, T, &kv);
}

// Next-token logits for every row into s->logits.
static void next_logits(Sampler *s, int B) {
    if (s->kcache) { // one token per row at its own position
        for (int b = 0; b < B; b++) {
            s->step_tokens[b] = s->seq[(size_t)b * s->max_len + s->len[b] - 1];
            s->step_pos[b] = s->len[b] - 1;
        }
        KVAttention kv = {s->kcache, s->vcache, s->max_B, s->max_len, 1};
        run_layers(s, B, 1, &kv);
        head_logits(s, B, NULL);
    } else { // recompute every position of every row
        int T = longest(s, B);
        load_rows(s, B, T, 0);
        run_layers(s, B, T, NULL);
        for (int b = 0; b < B; b++) s->rows[b] = b * T + s->len[b] - 1;
        head_logits(s, B, s->rows);
    }
}

// ---- choosing a token -----------------------------------------------------------------------

static const float *g_probs; // qsort has no context argument; sampling is single-threaded

// Descending probability, ties by ascending id: a total order, so the result is deterministic.
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_probs[i] != g_probs[j]) return g_probs[i] > g_probs[j] ? -1 : 1;
    return i - j;
}

// Restores the heap property below r in idx[0..k): the least probable token at the root.
static void sift_down(int *idx, int k, int r) {
    for (;;) {
        int c = 2 * r + 1;
        if (c >= k) return;
        if (c + 1 < k && by_prob_desc(&idx[c + 1], &idx[c]) > 0) c++;
        if (by_prob_desc(&idx[c], &idx[r]) <= 0) return;
        int t = idx[r];
        idx[r] = idx[c];
        idx[c] = t;
        r = c;
    }
}

// Moves the k most probable of idx[0..n) to the front (a size-k heap, O(n log k)).
static int keep_top_k(int *idx, int n, int k) {
    if (k >= n) return n;
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(idx, k, i);
    for (int i = k; i < n; i++) {
        if (by_prob_desc(&idx[i], &idx[0]) >= 0) continue; // not above the least kept
        idx[0] = idx[i];
        sift_down(idx, k, 0);
    }
    return k;
}

// Samples from probs (V) truncated to top-k / top-p, renormalised.
static int sample_truncated(Sampler *s, int V, const SampleParams *p, double u) {
    float *probs = s->probs;
    int *idx = s->idx, n = 0;
    g_probs = probs;
    // a token with probability below (1-top_p)/(V-1) can never be in the nucleus: the other
    // V-1 tokens together would then exceed top_p without it
    float cutoff = p->top_p < 1.0f ? (1.0f - p->top_p) / (float)(V - 1) : 0.0f;
    for (int v = 0; v < V; v++)
        if (probs[v] >= cutoff) idx[n++] = v;
    if (p->top_k > 0) n = keep_top_k(idx, n, p->top_k);
    qsort(idx, (size_t)n, sizeof(int), by_prob_desc);
    double total = 0.0;
    int keep = n;
    for (int i = 0; i < n; i++) {
        total += probs[idx[i]];
        if (total >= p->top_p) {
            keep = i + 1;
            break;
        }
    }
    double mass = 0.0;
    for (int i = 0; i < keep; i++) mass += probs[idx[i]];
    double target = u * mass, acc = 0.0;
    for (int i = 0; i < keep; i++) {
        acc += probs[idx[i]];
        if (target < acc) return idx[i];
    }
    return idx[keep - 1];
}

// Chooses the next token of one row from its logits z (V real columns); *logp receives its
// log-prob under softmax(z / temperature) (temperature 1 when greedy).
static int choose(Sampler *s, const float *z, int V, const SampleParams *p, Rng *rng, float *logp) {
    float temp = p->temperature > 0.0f ? p->temperature : 1.0f;
    int best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    float maxz = z[best];
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        float e = expf((z[v] - maxz) / temp);
        s->probs[v] = e;
        sum += e;
    }
    int tok = best;
    if (p->temperature > 0.0f) {
        double u = rng_uniform(rng);
        for (int v = 0; v < V; v++) s->probs[v] = (float)(s->probs[v] / sum);
        if (p->top_k > 0 || p->top_p < 1.0f) {
            tok = sample_truncated(s, V, p, u);
        } else {
            double acc = 0.0;
            tok = V - 1;
            for (int v = 0; v < V; v++) {
                acc += s->probs[v];
                if (u < acc) {
                    tok = v;
                    break;
                }
            }
        }
    }
    *logp = (float)((double)(z[tok] - maxz) / temp - log(sum));
    return tok;
}

// ---- the generation loop ----------------------------------------------------------------------

// Every prompt id must be a row of the embedding: an id outside [0, V) would be read out of
// bounds by the encoder (the prefill and the steps bypass model_forward's batch check). Callers
// check ids against the model where they read them, so this is a broken invariant.
static void check_prompt(const int *ids, int len, int b, int V) {
    for (int t = 0; t < len; t++)
        if (ids[t] < 0 || ids[t] >= V)
            LC_DIE("prompt %d holds token id %d at position %d, outside the model's vocabulary "
                   "[0, %d) (hint: the prompt was made with another tokenizer)",
                   b, ids[t], t, V);
}

long sampler_generate(Sampler *s, const int *prompts, int prompt_stride, const int *prompt_len,
                      int B, const SampleParams *p, Rng *rng, int *out_tokens, float *out_logp,
                      int *out_len) {
    Model *m = s->view;
    int V = m->cfg.vocab_size, Vp = m->Vp, maxnew = p->max_new_tokens;
    LC_ASSERT(B >= 1 && B <= s->max_B && maxnew >= 0);
    for (int b = 0; b < B; b++) {
        if (prompt_len[b] < 1 || prompt_len[b] > s->max_len)
            LC_DIE("prompt %d has %d tokens; the sampler holds 1..%d", b, prompt_len[b],
                   s->max_len);
        check_prompt(prompts + (size_t)b * prompt_stride, prompt_len[b], b, V);
        memcpy(s->seq + (size_t)b * s->max_len, prompts + (size_t)b * prompt_stride,
               (size_t)prompt_len[b] * sizeof(int));
        s->len[b] = prompt_len[b];
        s->done[b] = prompt_len[b] >= s->max_len;
        out_len[b] = 0;
        for (int i = 0; i < maxnew; i++) {
            out_tokens[(size_t)b * maxnew + i] = -1;
            out_logp[(size_t)b * maxnew + i] = 0.0f;
        }
    }
    if (s->kcache) prefill(s, B);
    long total = 0;
    for (int step = 0; step < maxnew; step++) {
        int active = 0;
        for (int b = 0; b < B; b++) active += !s->done[b];
        if (!active) break;
        next_logits(s, B);
        for (int b = 0; b < B; b++) {
            if (s->done[b]) continue;
            float lp;
            int tok = choose(s, s->logits + (size_t)b * Vp, V, p, rng, &lp);
            out_tokens[(size_t)b * maxnew + step] = tok;
            out_logp[(size_t)b * maxnew + step] = lp;
            out_len[b]++;
            total++;
            s->seq[(size_t)b * s->max_len + s->len[b]++] = tok;
            if (tok == p->stop_token || s->len[b] >= s->max_len) s->done[b] = 1;
        }
    }
    return total;
}
