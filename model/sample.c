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
    Act *kcache;      // (L, max_B, max_len, NKV*hs) on the device, or NULL without a cache
    Act *vcache;      // (L, max_B, max_len, NKV*hs)
    int *seq;         // (max_B, max_len) host: prompt + generated tokens of each row
    int *len;         // (max_B) host: tokens in seq
    int *pos;         // (max_B) host: position of the token fed this step
    int *cur;         // (max_B) host: token fed this step
    int *done;        // (max_B) host
    int *step_tokens; // (max_B, max_len) host: tokens of a prefill or recompute batch
    int *step_pos;    // (max_B, max_len) host: their positions
    int *rows;        // (max_B) host: the lnf row holding each sequence's last token
    float *u;         // (max_B) host: the step's uniforms, one per row still generating
    int *tok;         // (max_B) host: the step's tokens, copied back from the device
    float *logp;      // (max_B) host: their log-probs
    float *dev_u;     // (max_B) device: u
    int *dev_tok;     // (max_B) device: sample_tokens' tokens
    float *dev_logp;  // (max_B) device: sample_tokens' log-probs
};

// Elements a cached position holds per layer for keys (and again for values): NKV*hs.
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
        size_t n = sampler_kv_bytes_for(m, max_B, max_len, 1) / 2;
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
    s->u = lc_calloc(max_B, sizeof(float));
    s->tok = lc_calloc(max_B, sizeof(int));
    s->logp = lc_calloc(max_B, sizeof(float));
    s->dev_u = m->be->alloc((size_t)max_B * sizeof(float));
    s->dev_tok = m->be->alloc((size_t)max_B * sizeof(int));
    s->dev_logp = m->be->alloc((size_t)max_B * sizeof(float));
    return s;
}

void sampler_free(Sampler *s) {
    if (!s) return;
    const Backend *be = s->view->be;
    if (s->kcache) {
        be->free(s->kcache);
        be->free(s->vcache);
    }
    be->free(s->dev_u);
    be->free(s->dev_tok);
    be->free(s->dev_logp);
    model_free(s->view);
    free(s->seq);
    free(s->len);
    free(s->pos);
    free(s->cur);
    free(s->done);
    free(s->step_tokens);
    free(s->step_pos);
    free(s->rows);
    free(s->u);
    free(s->tok);
    free(s->logp);
    free(s);
}

size_t sampler_kv_bytes_for(const Model *m, int max_B, int max_len, int use_cache) {
    if (!use_cache) return 0;
    return 2 * (size_t)m->cfg.n_layer * (size_t)max_B * (size_t)max_len * kv_width(m) *
           m->be->act_size;
}

size_t sampler_kv_bytes(const Sampler *s) {
    return sampler_kv_bytes_for(s->view, s->max_B, s->max_len, s->kcache != NULL);
}

const Model *sampler_view(const Sampler *s) {
    return s->view;
}

size_t sampler_bytes(const Sampler *s) {
    return sampler_kv_bytes(s) + model_act_bytes(s->view);
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

// Row b of the view's logits (B,Vp) (device) = logits of lnf row rows[b] (rows NULL: row b).
static void head_logits(Sampler *s, int B, const int *rows) {
    Model *m = s->view;
    const Backend *be = m->be;
    int C = m->cfg.d_model, Vp = m->Vp;
    Act *dev = m->acts.logits;
    if (!rows) {
        be->matmul_forward(dev, m->acts.lnf, model_output_weight(m), NULL, B, C, Vp);
    } else {
        for (int b = 0; b < B; b++)
            be->matmul_forward(model_act_at(m, dev, (size_t)b * Vp),
                               model_act_at(m, m->acts.lnf, (size_t)rows[b] * C),
                               model_output_weight(m), NULL, 1, C, Vp);
    }
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

// Next-token logits for every row into the view's logits (device).
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

// The step's tokens and log-probs of rows 0..B-1 into s->tok, s->logp, sampled on the device
// (Backend.sample_tokens) from the view's logits: only B tokens and B log-probs come back. One
// uniform per row still generating, in row order, when not greedy (none when greedy).
static void choose_tokens(Sampler *s, int B, const SampleParams *p, Rng *rng) {
    Model *m = s->view;
    const Backend *be = m->be;
    int greedy = !(p->temperature > 0.0f);
    if (!greedy) {
        for (int b = 0; b < B; b++) {
            float u = s->done[b] ? 0.0f : (float)rng_uniform(rng);
            // a double just below 1 rounds to 1.0f; the contract wants u < 1
            s->u[b] = u < 1.0f ? u : nextafterf(1.0f, 0.0f);
        }
        be->to_device(s->dev_u, s->u, (size_t)B * sizeof(float));
    }
    be->sample_tokens(s->dev_tok, s->dev_logp, m->acts.logits, greedy ? NULL : s->dev_u, B,
                      m->cfg.vocab_size, m->Vp, p->temperature, p->top_k, p->top_p);
    be->to_host(s->tok, s->dev_tok, (size_t)B * sizeof(int));
    be->to_host(s->logp, s->dev_logp, (size_t)B * sizeof(float));
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
    int V = m->cfg.vocab_size, maxnew = p->max_new_tokens;
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
        choose_tokens(s, B, p, rng);
        for (int b = 0; b < B; b++) {
            if (s->done[b]) continue;
            int tok = s->tok[b];
            out_tokens[(size_t)b * maxnew + step] = tok;
            out_logp[(size_t)b * maxnew + step] = s->logp[b];
            out_len[b]++;
            total++;
            s->seq[(size_t)b * s->max_len + s->len[b]++] = tok;
            if (tok == p->stop_token || s->len[b] >= s->max_len) s->done[b] = 1;
        }
    }
    return total;
}
