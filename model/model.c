// model/model.c: GPT-2 parameters, activations, forward and backward over the backend.
#include "model/model.h"
#include "common/check.h"
#include "common/rng.h"
#include "model/model-impl.h"
#include <math.h>
#include <stdarg.h>
#include <string.h>

int model_padded_vocab(int vocab_size) {
    return (vocab_size + 63) / 64 * 64;
}

const char *model_config_check(const ModelConfig *c) {
    if (c->n_layer < 1) return "n_layer must be >= 1";
    if (c->n_head < 1) return "n_head must be >= 1";
    if (c->d_model < 1 || c->d_model % c->n_head != 0)
        return "d_model must be a positive multiple of n_head";
    if (c->vocab_size < 2) return "vocab_size must be >= 2";
    if (c->max_seq_len < 1) return "max_seq_len must be >= 1";
    return NULL;
}

// ---- parameter table ------------------------------------------------------------------------

static void add(TensorTable *t, const char *name, bool decay, int ndim, ...) {
    int shape[TENSOR_MAX_DIMS];
    va_list ap;
    va_start(ap, ndim);
    for (int d = 0; d < ndim; d++) shape[d] = va_arg(ap, int);
    va_end(ap);
    tensor_table_add(t, name, ndim, shape, decay);
}

// Builds the table in ModelParams field order (model_point relies on it).
static void build_table(Model *m) {
    int L = m->cfg.n_layer, C = m->cfg.d_model, Vp = m->Vp, maxT = m->cfg.max_seq_len;
    TensorTable *t = &m->table;
    *t = (TensorTable){.info = m->table_info};
    add(t, "wte", true, 2, Vp, C);
    add(t, "wpe", true, 2, maxT, C);
    add(t, "ln1w", false, 2, L, C);
    add(t, "ln1b", false, 2, L, C);
    add(t, "qkvw", true, 3, L, 3 * C, C);
    add(t, "qkvb", false, 2, L, 3 * C);
    add(t, "attprojw", true, 3, L, C, C);
    add(t, "attprojb", false, 2, L, C);
    add(t, "ln2w", false, 2, L, C);
    add(t, "ln2b", false, 2, L, C);
    add(t, "fcw", true, 3, L, 4 * C, C);
    add(t, "fcb", false, 2, L, 4 * C);
    add(t, "fcprojw", true, 3, L, C, 4 * C);
    add(t, "fcprojb", false, 2, L, C);
    add(t, "lnfw", false, 1, C);
    add(t, "lnfb", false, 1, C);
    if (m->heads & MODEL_HEAD_SCALAR) {
        add(t, "headw", true, 2, 1, C);
        add(t, "headb", false, 1, 1);
    }
}

_Static_assert(sizeof(ModelParams) == 18 * sizeof(float *), "ModelParams must hold only pointers");

// Points the fields of p, in order, at the tensors of the table inside arena base.
static void model_point(ModelParams *p, float *base, const TensorTable *t) {
    float **fields = (float **)p;
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < t->count; i++) fields[i] = base + t->info[i].offset;
}

// ---- activation arena -----------------------------------------------------------------------

// Lays out (and, with base != NULL, points) the activations for B x T; returns the bytes needed.
// Each (L, ...) tensor is sized for max_B x max_T; a call with a smaller batch packs its layers
// at the smaller stride inside it (model_layer_acts).
static size_t acts_layout(Model *m, ModelActs *a, char *base, int B, int T) {
    size_t N = (size_t)B * T, C = (size_t)m->cfg.d_model, NH = (size_t)m->cfg.n_head;
    size_t L = m->mode == MODEL_TRAIN ? (size_t)m->cfg.n_layer : 1;
    size_t off = 0;
#define CARVE(field, count)                                                                        \
    do {                                                                                           \
        if (base) a->field = (void *)(base + off);                                                 \
        off += ((count)*4 + 63) / 64 * 64;                                                         \
    } while (0)
    CARVE(encoded, N * C);
    CARVE(ln1, L * N * C);
    CARVE(ln1_mean, L * N);
    CARVE(ln1_rstd, L * N);
    CARVE(qkv, L * N * 3 * C);
    CARVE(atty, L * N * C);
    CARVE(att, L * (size_t)B * NH * T * T);
    CARVE(attproj, L * N * C);
    CARVE(residual2, L * N * C);
    CARVE(ln2, L * N * C);
    CARVE(ln2_mean, L * N);
    CARVE(ln2_rstd, L * N);
    CARVE(fch, L * N * 4 * C);
    CARVE(fch_gelu, L * N * 4 * C);
    CARVE(fcproj, L * N * C);
    CARVE(residual3, L * N * C);
    CARVE(lnf, N * C);
    CARVE(lnf_mean, N);
    CARVE(lnf_rstd, N);
    if (m->heads & MODEL_HEAD_LM) CARVE(logits, N * (size_t)m->Vp);
    CARVE(lse, N);
    CARVE(logp, N);
    CARVE(entropy, N);
    CARVE(values, N);
    if (m->mode == MODEL_TRAIN) {
        CARVE(dres, N * C);
        CARVE(dln, N * C);
        CARVE(datty, N * C);
        CARVE(dqkv, N * 3 * C);
        CARVE(datt, (size_t)B * NH * T * T);
        CARVE(dfch, N * 4 * C);
        CARVE(dlogp, N);
        CARVE(dent, N);
        CARVE(dvalues, N);
    }
    CARVE(tokens, N);
    CARVE(targets, N);
    CARVE(pos, N);
    CARVE(seg, N);
#undef CARVE
    return off;
}

// Everything but the parameter arena.
static Model *create_common(const Backend *be, ModelConfig cfg, int heads, ModelMode mode,
                            int max_B, int max_T) {
    const char *bad = model_config_check(&cfg);
    if (bad) LC_DIE("invalid model configuration: %s", bad);
    LC_ASSERT(heads != 0 && max_B > 0 && max_T > 0 && max_T <= cfg.max_seq_len);
    Model *m = lc_calloc(1, sizeof(*m));
    m->cfg = cfg;
    m->Vp = model_padded_vocab(cfg.vocab_size);
    m->heads = heads;
    m->mode = mode;
    m->be = be;
    build_table(m);
    if (mode == MODEL_TRAIN) {
        m->grads_mem = be->alloc(m->table.numel * sizeof(float));
        model_point(&m->grads, m->grads_mem, &m->table);
    }
    m->max_B = max_B;
    m->max_T = max_T;
    m->acts_bytes = acts_layout(m, &m->acts, NULL, max_B, max_T);
    m->acts_mem = be->alloc(m->acts_bytes);
    acts_layout(m, &m->acts, (char *)m->acts_mem, max_B, max_T);
    size_t n = (size_t)max_B * max_T;
    m->host_logp = lc_calloc(n, sizeof(float));
    m->host_entropy = lc_calloc(n, sizeof(float));
    m->host_values = lc_calloc(n, sizeof(float));
    m->host_scratch = lc_calloc(n, sizeof(float));
    return m;
}

Model *model_create(const Backend *be, ModelConfig cfg, int heads, ModelMode mode, int max_B,
                    int max_T) {
    Model *m = create_common(be, cfg, heads, mode, max_B, max_T);
    m->params_mem = be->alloc(m->table.numel * sizeof(float));
    m->owns_params = true;
    model_point(&m->params, m->params_mem, &m->table);
    return m;
}

Model *model_create_view(const Model *src, ModelMode mode, int max_B, int max_T) {
    Model *m = create_common(src->be, src->cfg, src->heads, mode, max_B, max_T);
    m->params_mem = src->params_mem;
    m->params = src->params;
    return m;
}

void model_free(Model *m) {
    if (!m) return;
    if (m->owns_params) m->be->free(m->params_mem);
    if (m->grads_mem) m->be->free(m->grads_mem);
    m->be->free(m->acts_mem);
    free(m->host_logp);
    free(m->host_entropy);
    free(m->host_values);
    free(m->host_scratch);
    free(m);
}

void model_init_weights(Model *m, uint64_t seed) {
    const TensorTable *t = &m->table;
    float *host = lc_malloc(t->numel * sizeof(float));
    float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < t->count; i++) {
        const TensorInfo *ti = &t->info[i];
        float *w = host + ti->offset;
        // one stream per tensor, so adding a tensor never changes the others' values
        Rng r = rng_derive(seed, (uint64_t)i + 1);
        const char *nm = ti->name;
        size_t n = ti->numel;
        if (strcmp(nm, "ln1w") == 0 || strcmp(nm, "ln2w") == 0 || strcmp(nm, "lnfw") == 0) {
            for (size_t j = 0; j < n; j++) w[j] = 1.0f;
        } else if (!ti->decay) {
            memset(w, 0, n * sizeof(float)); // biases
        } else {
            float s = std;
            if (strcmp(nm, "attprojw") == 0 || strcmp(nm, "fcprojw") == 0) s = proj_std;
            if (strcmp(nm, "headw") == 0) s = 1.0f / sqrtf((float)m->cfg.d_model + 1.0f);
            for (size_t j = 0; j < n; j++) w[j] = s * (float)rng_normal(&r);
        }
        if (strcmp(nm, "wte") == 0) // padded vocab rows stay zero
            memset(w + (size_t)m->cfg.vocab_size * m->cfg.d_model, 0,
                   (size_t)(m->Vp - m->cfg.vocab_size) * m->cfg.d_model * sizeof(float));
    }
    m->be->to_device(m->params_mem, host, t->numel * sizeof(float));
    free(host);
}

// ---- forward --------------------------------------------------------------------------------

void model_layer_acts(const Model *m, int l, LayerActs *la) {
    size_t N = (size_t)m->B * m->T, C = (size_t)m->cfg.d_model;
    size_t NHTT = (size_t)m->B * m->cfg.n_head * m->T * m->T;
    size_t k = m->mode == MODEL_TRAIN ? (size_t)l : 0; // inference reuses one layer's room
    const ModelActs *a = &m->acts;
    la->residual =
        l == 0 ? a->encoded : a->residual3 + (m->mode == MODEL_TRAIN ? k - 1 : 0) * N * C;
    la->ln1 = a->ln1 + k * N * C;
    la->ln1_mean = a->ln1_mean + k * N;
    la->ln1_rstd = a->ln1_rstd + k * N;
    la->qkv = a->qkv + k * N * 3 * C;
    la->atty = a->atty + k * N * C;
    la->att = a->att + k * NHTT;
    la->attproj = a->attproj + k * N * C;
    la->residual2 = a->residual2 + k * N * C;
    la->ln2 = a->ln2 + k * N * C;
    la->ln2_mean = a->ln2_mean + k * N;
    la->ln2_rstd = a->ln2_rstd + k * N;
    la->fch = a->fch + k * N * 4 * C;
    la->fch_gelu = a->fch_gelu + k * N * 4 * C;
    la->fcproj = a->fcproj + k * N * C;
    la->residual3 = a->residual3 + k * N * C;
}

// Pointers to layer l's weights (w) or gradients (g == true).
static void layer_params(const Model *m, int l, bool g, LayerParams *lp) {
    const ModelParams *p = g ? &m->grads : &m->params;
    size_t C = (size_t)m->cfg.d_model;
    lp->ln1w = p->ln1w + l * C;
    lp->ln1b = p->ln1b + l * C;
    lp->qkvw = p->qkvw + l * 3 * C * C;
    lp->qkvb = p->qkvb + l * 3 * C;
    lp->attprojw = p->attprojw + l * C * C;
    lp->attprojb = p->attprojb + l * C;
    lp->ln2w = p->ln2w + l * C;
    lp->ln2b = p->ln2b + l * C;
    lp->fcw = p->fcw + l * 4 * C * C;
    lp->fcb = p->fcb + l * 4 * C;
    lp->fcprojw = p->fcprojw + l * 4 * C * C;
    lp->fcprojb = p->fcprojb + l * C;
}

void model_forward_layers(Model *m, const KVAttention *kv) {
    const Backend *be = m->be;
    int B = m->B, T = m->T, C = m->cfg.d_model, NH = m->cfg.n_head, N = B * T;
    ModelActs *a = &m->acts;
    be->encoder_forward(a->encoded, a->tokens, a->pos, m->params.wte, m->params.wpe, B, T, C);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        LayerActs la;
        LayerParams lp;
        model_layer_acts(m, l, &la);
        layer_params(m, l, false, &lp);
        be->layernorm_forward(la.ln1, la.ln1_mean, la.ln1_rstd, la.residual, lp.ln1w, lp.ln1b, N,
                              C);
        be->matmul_forward(la.qkv, la.ln1, lp.qkvw, lp.qkvb, N, C, 3 * C);
        if (kv) {
            size_t off = (size_t)l * kv->B * kv->maxT * C;
            be->kvcache_write(kv->k + off, kv->v + off, la.qkv, kv->decode ? a->pos : NULL, B, T,
                              kv->maxT, NH, NH, C / NH);
            if (kv->decode)
                be->attention_decode(la.atty, la.qkv, kv->k + off, kv->v + off, a->pos, B, kv->maxT,
                                     NH, NH, C / NH);
        }
        if (!kv || !kv->decode)
            be->attention_forward(la.atty, la.att, la.qkv, a->seg, B, T, NH, NH, C / NH);
        be->matmul_forward(la.attproj, la.atty, lp.attprojw, lp.attprojb, N, C, C);
        be->residual_forward(la.residual2, la.residual, la.attproj, (size_t)N * C);
        be->layernorm_forward(la.ln2, la.ln2_mean, la.ln2_rstd, la.residual2, lp.ln2w, lp.ln2b, N,
                              C);
        be->matmul_forward(la.fch, la.ln2, lp.fcw, lp.fcb, N, C, 4 * C);
        be->gelu_forward(la.fch_gelu, la.fch, (size_t)N * 4 * C);
        be->matmul_forward(la.fcproj, la.fch_gelu, lp.fcprojw, lp.fcprojb, N, 4 * C, C);
        be->residual_forward(la.residual3, la.residual2, la.fcproj, (size_t)N * C);
    }
    LayerActs last;
    model_layer_acts(m, m->cfg.n_layer - 1, &last);
    be->layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last.residual3, m->params.lnfw,
                          m->params.lnfb, N, C);
}

// Copies the batch to the device, filling defaults for NULL pos/seg/targets.
static void upload_batch(Model *m, const Batch *b) {
    const Backend *be = m->be;
    size_t n = (size_t)b->B * b->T;
    int *tmp = (int *)m->host_scratch; // (max_B*max_T) ints fit in the float scratch
    be->to_device(m->acts.tokens, b->tokens, n * sizeof(int));
    for (size_t i = 0; i < n; i++) tmp[i] = b->pos ? b->pos[i] : (int)(i % (size_t)b->T);
    be->to_device(m->acts.pos, tmp, n * sizeof(int));
    for (size_t i = 0; i < n; i++) tmp[i] = b->seg ? b->seg[i] : 0;
    be->to_device(m->acts.seg, tmp, n * sizeof(int));
    for (size_t i = 0; i < n; i++) tmp[i] = b->targets ? b->targets[i] : -1;
    be->to_device(m->acts.targets, tmp, n * sizeof(int));
}

// Validates a batch against the model (ids, positions and shape) in one pass over its B*T
// entries; dies on a bad one, because a bad id is either corrupt data (the loaders and the
// commands check ids against the model first) or a bug, and the encoder and the classifier
// would read outside their tables.
static void check_batch(const Model *m, const Batch *b) {
    if (b->B < 1 || b->B > m->max_B || b->T < 1 || b->T > m->max_T)
        LC_DIE("batch %dx%d exceeds the model's reserved %dx%d", b->B, b->T, m->max_B, m->max_T);
    int V = m->cfg.vocab_size;
    for (int row = 0; row < b->B; row++)
        for (int t = 0; t < b->T; t++) {
            size_t i = (size_t)row * b->T + t;
            if (b->tokens[i] < 0 || b->tokens[i] >= V)
                LC_DIE("batch row %d, position %d: token id %d is outside the model's "
                       "vocabulary [0, %d) (hint: dataset and model were made with different "
                       "tokenizers)",
                       row, t, b->tokens[i], V);
            if (b->targets && (b->targets[i] < -1 || b->targets[i] >= V))
                LC_DIE("batch row %d, position %d: target id %d is outside the model's "
                       "vocabulary [0, %d) (-1: no target)",
                       row, t, b->targets[i], V);
            if (b->pos && (b->pos[i] < 0 || b->pos[i] >= m->cfg.max_seq_len))
                LC_DIE("batch row %d, position %d: position id %d is outside [0, "
                       "max_seq_len=%d)",
                       row, t, b->pos[i], m->cfg.max_seq_len);
        }
}

double model_mask_sum(const Model *m) {
    const Batch *b = m->batch;
    size_t n = (size_t)b->B * b->T;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (b->targets && b->targets[i] >= 0) sum += b->mask ? b->mask[i] : 1.0f;
    return sum;
}

float model_forward(Model *m, const Batch *b, float inv_temp) {
    check_batch(m, b);
    const Backend *be = m->be;
    m->B = b->B;
    m->T = b->T;
    m->inv_temp = inv_temp;
    m->batch = b;
    int N = b->B * b->T, C = m->cfg.d_model;
    upload_batch(m, b);
    model_forward_layers(m, NULL);
    ModelActs *a = &m->acts;
    if (m->heads & MODEL_HEAD_SCALAR) {
        be->matmul_forward(a->values, a->lnf, m->params.headw, m->params.headb, N, C, 1);
        be->to_host(m->host_values, a->values, (size_t)N * sizeof(float));
    }
    if (!(m->heads & MODEL_HEAD_LM)) return 0.0f;
    be->classifier_forward(a->logp, a->entropy, a->lse, a->logits, a->lnf, m->params.wte,
                           a->targets, N, C, m->cfg.vocab_size, m->Vp, inv_temp);
    be->to_host(m->host_logp, a->logp, (size_t)N * sizeof(float));
    be->to_host(m->host_entropy, a->entropy, (size_t)N * sizeof(float));
    double wsum = model_mask_sum(m), loss = 0.0;
    for (int i = 0; i < N; i++)
        if (b->targets && b->targets[i] >= 0)
            loss -= (b->mask ? b->mask[i] : 1.0f) * m->host_logp[i];
    return wsum > 0.0 ? (float)(loss / wsum) : 0.0f;
}

// ---- backward -------------------------------------------------------------------------------

// Stages a host gradient (N) on the device, or NULL when absent.
static float *stage(Model *m, float *dev, const float *host, int N) {
    if (!host) return NULL;
    m->be->to_device(dev, host, (size_t)N * sizeof(float));
    return dev;
}

static void backward_layer(Model *m, int l) {
    const Backend *be = m->be;
    int B = m->B, T = m->T, C = m->cfg.d_model, NH = m->cfg.n_head, N = B * T;
    ModelActs *a = &m->acts;
    LayerActs la;
    LayerParams lp, lg;
    model_layer_acts(m, l, &la);
    layer_params(m, l, false, &lp);
    layer_params(m, l, true, &lg);
    // dres holds d(residual3); it flows unchanged into d(residual2) and d(fcproj).
    be->matmul_backward(a->dfch, lg.fcprojw, lg.fcprojb, a->dres, la.fch_gelu, lp.fcprojw, N, 4 * C,
                        C);
    be->gelu_backward(a->dfch, la.fch, a->dfch, (size_t)N * 4 * C);
    be->matmul_backward(a->dln, lg.fcw, lg.fcb, a->dfch, la.ln2, lp.fcw, N, C, 4 * C);
    be->layernorm_backward(a->dres, lg.ln2w, lg.ln2b, a->dln, la.residual2, lp.ln2w, la.ln2_mean,
                           la.ln2_rstd, N, C);
    // dres holds d(residual2); it flows into d(residual) and d(attproj).
    be->matmul_backward(a->datty, lg.attprojw, lg.attprojb, a->dres, la.atty, lp.attprojw, N, C, C);
    be->attention_backward(a->dqkv, a->datt, a->datty, la.qkv, la.att, a->seg, B, T, NH, NH,
                           C / NH);
    be->matmul_backward(a->dln, lg.qkvw, lg.qkvb, a->dqkv, la.ln1, lp.qkvw, N, C, 3 * C);
    be->layernorm_backward(a->dres, lg.ln1w, lg.ln1b, a->dln, la.residual, lp.ln1w, la.ln1_mean,
                           la.ln1_rstd, N, C);
}

void model_backward(Model *m, const float *dlogp, const float *dent, const float *dvalues) {
    LC_ASSERT(m->mode == MODEL_TRAIN && m->batch);
    const Backend *be = m->be;
    int N = m->B * m->T, C = m->cfg.d_model;
    ModelActs *a = &m->acts;
    LayerActs last;
    model_layer_acts(m, m->cfg.n_layer - 1, &last);
    // head(s) -> dln = d(lnf)
    bool lm = (m->heads & MODEL_HEAD_LM) && (dlogp || dent);
    if (lm) {
        be->zero(a->dlogp, (size_t)N * sizeof(float));
        float *dl = stage(m, a->dlogp, dlogp, N), *de = stage(m, a->dent, dent, N);
        if (!dl) dl = a->dlogp; // zeros: an entropy-only objective
        be->classifier_backward(a->dln, m->grads.wte, a->logits, a->lnf, m->params.wte, a->lse,
                                a->entropy, a->targets, dl, de, N, C, m->cfg.vocab_size, m->Vp,
                                m->inv_temp);
    }
    if ((m->heads & MODEL_HEAD_SCALAR) && dvalues) {
        float *dv = stage(m, a->dvalues, dvalues, N);
        // the scalar head's input gradient lands in datty (free here) and is added to dln
        be->matmul_backward(lm ? a->datty : a->dln, m->grads.headw, m->grads.headb, dv, a->lnf,
                            m->params.headw, N, C, 1);
        if (lm) be->residual_forward(a->dln, a->dln, a->datty, (size_t)N * C);
    } else if (!lm) {
        return; // the objective does not depend on this model
    }
    be->zero(a->dres, (size_t)N * C * sizeof(float));
    be->layernorm_backward(a->dres, m->grads.lnfw, m->grads.lnfb, a->dln, last.residual3,
                           m->params.lnfw, a->lnf_mean, a->lnf_rstd, N, C);
    for (int l = m->cfg.n_layer - 1; l >= 0; l--) backward_layer(m, l);
    be->encoder_backward(m->grads.wte, m->grads.wpe, a->dres, a->tokens, a->pos, m->B, m->T, C);
}

void model_backward_ce(Model *m, double weight_sum) {
    const Batch *b = m->batch;
    int N = b->B * b->T;
    float *d = m->host_scratch;
    for (int i = 0; i < N; i++) {
        float w = (b->targets && b->targets[i] >= 0) ? (b->mask ? b->mask[i] : 1.0f) : 0.0f;
        d[i] = weight_sum > 0.0 ? (float)(-w / weight_sum) : 0.0f;
    }
    model_backward(m, d, NULL, NULL);
}

void model_zero_grad(Model *m) {
    LC_ASSERT(m->grads_mem);
    m->be->zero(m->grads_mem, m->table.numel * sizeof(float));
}

size_t model_param_bytes(const Model *m) {
    return m->table.numel * sizeof(float);
}

size_t model_grad_bytes(const Model *m) {
    return m->grads_mem ? m->table.numel * sizeof(float) : 0;
}

size_t model_act_bytes(const Model *m) {
    return m->acts_bytes;
}
