// model/model.c: the transformer engine: the family table, the parameter table, activations,
// forward and backward over the backend. GPT-2 and Llama are two rows of FAMILIES; the blocks
// below call the row's norm, position and MLP ops and never name a family.
#include "model/model.h"
#include "common/check.h"
#include "common/error.h"
#include "common/rng.h"
#include "model/model-impl.h"
#include <math.h>
#include <string.h>

// ---- families -------------------------------------------------------------------------------

typedef struct {
    const char *name;
    bool layernorm;   // LayerNorm with bias (else RMSNorm, gain only)
    bool learned_pos; // a position table wpe (else RoPE in the attention)
    bool gelu;        // GELU MLP (else SwiGLU: gate and up projections)
    bool biases;      // every linear layer has a bias
} Family;

static const Family FAMILIES[MODEL_FAMILY_COUNT] = {
    [MODEL_FAMILY_GPT2] = {"gpt2", .layernorm = true, .learned_pos = true, .gelu = true,
                           .biases = true},
    [MODEL_FAMILY_LLAMA] = {"llama"},
};

static const Family *family_of(const ModelConfig *c) {
    return &FAMILIES[c->family];
}

const char *model_family_name(ModelFamily f) {
    return f >= 0 && f < MODEL_FAMILY_COUNT ? FAMILIES[f].name : "?";
}

int model_family_parse(const char *name, ModelFamily *f) {
    for (int i = 0; i < MODEL_FAMILY_COUNT; i++)
        if (strcmp(name, FAMILIES[i].name) == 0) {
            *f = (ModelFamily)i;
            return 0;
        }
    return -1;
}

ModelConfig model_config_default(ModelFamily family, int n_layer, int n_head, int d_model,
                                 int vocab_size, int max_seq_len) {
    bool gpt2 = family == MODEL_FAMILY_GPT2;
    int ff = gpt2 ? 4 * d_model : ((8 * d_model / 3) + 31) / 32 * 32;
    return (ModelConfig){.family = family,
                         .n_layer = n_layer,
                         .n_head = n_head,
                         .n_kv_head = n_head,
                         .d_model = d_model,
                         .d_ff = ff,
                         .vocab_size = vocab_size,
                         .max_seq_len = max_seq_len,
                         .norm_eps = 1e-5f,
                         .rope_theta = 10000.0f,
                         .qkv_bias = gpt2,
                         .tied = true};
}

bool model_config_equal(const ModelConfig *a, const ModelConfig *b) {
    return a->family == b->family && a->n_layer == b->n_layer && a->n_head == b->n_head &&
           a->n_kv_head == b->n_kv_head && a->d_model == b->d_model && a->d_ff == b->d_ff &&
           a->vocab_size == b->vocab_size && a->max_seq_len == b->max_seq_len &&
           a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta &&
           a->qkv_bias == b->qkv_bias && a->tied == b->tied;
}

int model_padded_vocab(int vocab_size) {
    return (vocab_size + 63) / 64 * 64;
}

const char *model_config_check(const ModelConfig *c) {
    if (c->family < 0 || c->family >= MODEL_FAMILY_COUNT) return "unknown family";
    if (c->n_layer < 1) return "n_layer must be >= 1";
    if (c->n_head < 1) return "n_head must be >= 1";
    if (c->d_model < 1 || c->d_model % c->n_head != 0)
        return "d_model must be a positive multiple of n_head";
    if (c->n_kv_head < 1 || c->n_head % c->n_kv_head != 0) return "n_kv_head must divide n_head";
    if (c->d_ff < 1) return "d_ff must be >= 1";
    if (c->vocab_size < 2) return "vocab_size must be >= 2";
    if (c->max_seq_len < 1) return "max_seq_len must be >= 1";
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f)) return "norm_eps must be in (0, 1)";
    const Family *f = family_of(c);
    if (f->layernorm && c->norm_eps != 1e-5f) return "norm_eps of a LayerNorm family must be 1e-5";
    if (f->biases && !c->qkv_bias) return "qkv_bias is always on in this family";
    if (f->learned_pos && !c->tied) return "this family's output layer is always tied";
    if (f->learned_pos && c->n_kv_head != c->n_head)
        return "n_kv_head must equal n_head in this family";
    if (!f->learned_pos && (c->d_model / c->n_head) % 2 != 0)
        return "head size (d_model / n_head) must be even for rotary embeddings";
    if (!f->learned_pos && !(c->rope_theta > 1.0f)) return "rope_theta must be > 1";
    return NULL;
}

// ---- parameter table ------------------------------------------------------------------------

// Shapes of the table's tensors, from the configuration's dimensions.
typedef enum {
    SH_VOCAB,
    SH_POS,
    SH_C,
    SH_LC,
    SH_LQKVC,
    SH_LQKV,
    SH_LCC,
    SH_LFCC,
    SH_LFC,
    SH_LCF,
    SH_1C,
    SH_1,
    SH_LRC,  // (L, r, C): an adapter's A over a C-wide input
    SH_LRF,  // (L, r, F): down's A
    SH_LQR,  // (L, NH*hs, r): q's B
    SH_LKVR, // (L, NKV*hs, r): k's and v's B
    SH_LCR,  // (L, C, r): o's and down's B
    SH_LFR,  // (L, F, r): gate's and up's B
} Shape;
// How model_init_weights fills a tensor.
typedef enum { INIT_NORMAL, INIT_PROJ, INIT_HEAD, INIT_ONE, INIT_ZERO, INIT_LORA_A } Init;
// When a tensor is in the table: ADAPTER_Q + t when LoRA target t is adapted.
typedef enum {
    ALWAYS,
    LEARNED_POS,
    NORM_BIAS,
    QKV_BIAS,
    LINEAR_BIAS,
    UNTIED,
    SCALAR_HEAD,
    ADAPTER_Q,
    ADAPTER_K,
    ADAPTER_V,
    ADAPTER_O,
    ADAPTER_GATE,
    ADAPTER_UP,
    ADAPTER_DOWN
} When;

// Every tensor of any family, in arena order (the field order of ModelParams):
// X(name, shape, weight decay, initialisation, present when).
#define MODEL_TENSORS(X)                                                                           \
    X(wte, SH_VOCAB, true, INIT_NORMAL, ALWAYS)                                                    \
    X(wpe, SH_POS, true, INIT_NORMAL, LEARNED_POS)                                                 \
    X(ln1w, SH_LC, false, INIT_ONE, ALWAYS)                                                        \
    X(ln1b, SH_LC, false, INIT_ZERO, NORM_BIAS)                                                    \
    X(qkvw, SH_LQKVC, true, INIT_NORMAL, ALWAYS)                                                   \
    X(qkvb, SH_LQKV, false, INIT_ZERO, QKV_BIAS)                                                   \
    X(attprojw, SH_LCC, true, INIT_PROJ, ALWAYS)                                                   \
    X(attprojb, SH_LC, false, INIT_ZERO, LINEAR_BIAS)                                              \
    X(ln2w, SH_LC, false, INIT_ONE, ALWAYS)                                                        \
    X(ln2b, SH_LC, false, INIT_ZERO, NORM_BIAS)                                                    \
    X(fcw, SH_LFCC, true, INIT_NORMAL, ALWAYS)                                                     \
    X(fcb, SH_LFC, false, INIT_ZERO, LINEAR_BIAS)                                                  \
    X(fcprojw, SH_LCF, true, INIT_PROJ, ALWAYS)                                                    \
    X(fcprojb, SH_LC, false, INIT_ZERO, LINEAR_BIAS)                                               \
    X(lnfw, SH_C, false, INIT_ONE, ALWAYS)                                                         \
    X(lnfb, SH_C, false, INIT_ZERO, NORM_BIAS)                                                     \
    X(lmw, SH_VOCAB, true, INIT_NORMAL, UNTIED)                                                    \
    X(headw, SH_1C, true, INIT_HEAD, SCALAR_HEAD)                                                  \
    X(headb, SH_1, false, INIT_ZERO, SCALAR_HEAD)                                                  \
    X(lora_q_a, SH_LRC, true, INIT_LORA_A, ADAPTER_Q)                                              \
    X(lora_q_b, SH_LQR, true, INIT_ZERO, ADAPTER_Q)                                                \
    X(lora_k_a, SH_LRC, true, INIT_LORA_A, ADAPTER_K)                                              \
    X(lora_k_b, SH_LKVR, true, INIT_ZERO, ADAPTER_K)                                               \
    X(lora_v_a, SH_LRC, true, INIT_LORA_A, ADAPTER_V)                                              \
    X(lora_v_b, SH_LKVR, true, INIT_ZERO, ADAPTER_V)                                               \
    X(lora_o_a, SH_LRC, true, INIT_LORA_A, ADAPTER_O)                                              \
    X(lora_o_b, SH_LCR, true, INIT_ZERO, ADAPTER_O)                                                \
    X(lora_gate_a, SH_LRC, true, INIT_LORA_A, ADAPTER_GATE)                                        \
    X(lora_gate_b, SH_LFR, true, INIT_ZERO, ADAPTER_GATE)                                          \
    X(lora_up_a, SH_LRC, true, INIT_LORA_A, ADAPTER_UP)                                            \
    X(lora_up_b, SH_LFR, true, INIT_ZERO, ADAPTER_UP)                                              \
    X(lora_down_a, SH_LRF, true, INIT_LORA_A, ADAPTER_DOWN)                                        \
    X(lora_down_b, SH_LCR, true, INIT_ZERO, ADAPTER_DOWN)

typedef struct {
    const char *name;
    Shape shape;
    bool decay;
    Init init;
    When when;
} TensorDef;

#define TENSOR_DEF(n, sh, dec, in, wh) {#n, sh, dec, in, wh},
static const TensorDef TENSORS[] = {MODEL_TENSORS(TENSOR_DEF)};
#undef TENSOR_DEF
enum { N_TENSORS = sizeof(TENSORS) / sizeof(TENSORS[0]) };
_Static_assert(N_TENSORS <= MODEL_MAX_TENSORS, "MODEL_MAX_TENSORS must hold every tensor");
_Static_assert(sizeof(ModelParams) == N_TENSORS * sizeof(float *),
               "ModelParams must have one pointer per MODEL_TENSORS entry");
_Static_assert(sizeof(ModelWeights) == N_TENSORS * sizeof(Act *),
               "ModelWeights must have one pointer per MODEL_TENSORS entry");

// The ModelParams / ModelWeights field (pointer index) of a tensor.
#define FIELD(x) (offsetof(ModelParams, x) / sizeof(float *))
// Per target: the base weight it adapts and its A and B.
static const struct {
    size_t base, a, b;
} LORA_FIELDS[LORA_TARGETS] = {
    [LORA_Q] = {FIELD(qkvw), FIELD(lora_q_a), FIELD(lora_q_b)},
    [LORA_K] = {FIELD(qkvw), FIELD(lora_k_a), FIELD(lora_k_b)},
    [LORA_V] = {FIELD(qkvw), FIELD(lora_v_a), FIELD(lora_v_b)},
    [LORA_O] = {FIELD(attprojw), FIELD(lora_o_a), FIELD(lora_o_b)},
    [LORA_GATE] = {FIELD(fcw), FIELD(lora_gate_a), FIELD(lora_gate_b)},
    [LORA_UP] = {FIELD(fcw), FIELD(lora_up_a), FIELD(lora_up_b)},
    [LORA_DOWN] = {FIELD(fcprojw), FIELD(lora_down_a), FIELD(lora_down_b)},
};
#undef FIELD

static bool present(const TensorDef *d, const ModelConfig *c, int heads, const LoraConfig *lora) {
    const Family *f = family_of(c);
    if (d->when >= ADAPTER_Q)
        return lora && lora->rank > 0 && (lora->targets >> (d->when - ADAPTER_Q) & 1u);
    switch (d->when) {
    case ALWAYS:
        return true;
    case LEARNED_POS:
        return f->learned_pos;
    case NORM_BIAS:
        return f->layernorm;
    case QKV_BIAS:
        return f->biases || c->qkv_bias;
    case LINEAR_BIAS:
        return f->biases;
    case UNTIED:
        return !c->tied;
    case SCALAR_HEAD:
        return (heads & MODEL_HEAD_SCALAR) != 0;
    default:
        return false;
    }
}

static int qkv_dim(const ModelConfig *c) {
    return (c->n_head + 2 * c->n_kv_head) * (c->d_model / c->n_head);
}

static int fc_dim(const ModelConfig *c) {
    return family_of(c)->gelu ? c->d_ff : 2 * c->d_ff;
}

// Writes the dimensions of shape sh (adapters: of rank r) into dims; returns ndim.
static int shape_dims(Shape sh, const ModelConfig *c, int r, int *dims) {
    int L = c->n_layer, C = c->d_model, Vp = model_padded_vocab(c->vocab_size);
    int QKV = qkv_dim(c), FC = fc_dim(c), F = c->d_ff, hs = C / c->n_head;
    switch (sh) {
    case SH_LRC:
        dims[0] = L, dims[1] = r, dims[2] = C;
        return 3;
    case SH_LRF:
        dims[0] = L, dims[1] = r, dims[2] = F;
        return 3;
    case SH_LQR:
        dims[0] = L, dims[1] = c->n_head * hs, dims[2] = r;
        return 3;
    case SH_LKVR:
        dims[0] = L, dims[1] = c->n_kv_head * hs, dims[2] = r;
        return 3;
    case SH_LCR:
        dims[0] = L, dims[1] = C, dims[2] = r;
        return 3;
    case SH_LFR:
        dims[0] = L, dims[1] = F, dims[2] = r;
        return 3;
    case SH_VOCAB:
        dims[0] = Vp, dims[1] = C;
        return 2;
    case SH_POS:
        dims[0] = c->max_seq_len, dims[1] = C;
        return 2;
    case SH_C:
        dims[0] = C;
        return 1;
    case SH_LC:
        dims[0] = L, dims[1] = C;
        return 2;
    case SH_LQKVC:
        dims[0] = L, dims[1] = QKV, dims[2] = C;
        return 3;
    case SH_LQKV:
        dims[0] = L, dims[1] = QKV;
        return 2;
    case SH_LCC:
        dims[0] = L, dims[1] = C, dims[2] = C;
        return 3;
    case SH_LFCC:
        dims[0] = L, dims[1] = FC, dims[2] = C;
        return 3;
    case SH_LFC:
        dims[0] = L, dims[1] = FC;
        return 2;
    case SH_LCF:
        dims[0] = L, dims[1] = C, dims[2] = F;
        return 3;
    case SH_1C:
        dims[0] = 1, dims[1] = C;
        return 2;
    case SH_1:
        dims[0] = 1;
        return 1;
    }
    return 0;
}

static bool per_layer(Shape sh) {
    return sh != SH_VOCAB && sh != SH_POS && sh != SH_C && sh != SH_1C && sh != SH_1;
}

// Builds the table of the tensors cfg, heads and lora (NULL: none) have, in MODEL_TENSORS order;
// slot[i] is the MODEL_TENSORS index (the ModelParams field) of table entry i.
static void build_table(TensorTable *t, TensorInfo *info, int *slot, const ModelConfig *c,
                        int heads, const LoraConfig *lora) {
    *t = (TensorTable){.info = info};
    for (int k = 0; k < N_TENSORS; k++) {
        const TensorDef *d = &TENSORS[k];
        if (!present(d, c, heads, lora)) continue;
        int dims[TENSOR_MAX_DIMS];
        int ndim = shape_dims(d->shape, c, lora ? lora->rank : 0, dims);
        slot[t->count] = k;
        tensor_table_add(t, d->name, ndim, dims, d->decay);
    }
}

size_t model_param_count(const ModelConfig *cfg, int heads) {
    TensorInfo info[N_TENSORS];
    int slot[N_TENSORS];
    TensorTable t;
    build_table(&t, info, slot, cfg, heads, NULL);
    return t.numel;
}

// Points the fields (one pointer per MODEL_TENSORS entry: a ModelParams or ModelWeights) at
// the tensors of the table in arenas of elem-byte elements: the trained ones inside base (the
// params_mem layout), the frozen ones inside frozen (frozen_mem's; NULL: their fields stay NULL,
// as for gradients). Absent tensors are NULL.
static void model_point(const Model *m, void **fields, void *base, void *frozen, size_t elem) {
    memset(fields, 0, N_TENSORS * sizeof(void *));
    for (int i = 0; i < m->table.count; i++) {
        size_t off = m->table.info[i].offset;
        if (i >= m->first_trained)
            fields[m->slot[i]] = (char *)base + (off - m->frozen_numel) * elem;
        else if (frozen)
            fields[m->slot[i]] = (char *)frozen + off * elem;
    }
}

// Which tensors are trained: all of them, or with adapters the scalar head and the adapters
// (a suffix of the table, since MODEL_TENSORS lists them last). Sets first_trained,
// frozen_numel and train_table (the trained tensors, offsets rebased to params_mem).
static void split_trained(Model *m) {
    const TensorTable *t = &m->table;
    m->first_trained = 0;
    if (m->lora.rank > 0) {
        m->first_trained = t->count;
        for (int i = 0; i < t->count; i++)
            if (TENSORS[m->slot[i]].when == SCALAR_HEAD || TENSORS[m->slot[i]].when >= ADAPTER_Q) {
                m->first_trained = i;
                break;
            }
    }
    m->frozen_numel = m->first_trained < t->count ? t->info[m->first_trained].offset : t->numel;
    m->train_table = (TensorTable){.info = m->train_info};
    for (int i = m->first_trained; i < t->count; i++) {
        TensorInfo ti = t->info[i];
        ti.offset -= m->frozen_numel;
        m->train_info[m->train_table.count++] = ti;
        m->train_table.numel += ti.numel;
    }
}

Act *model_act_at(const Model *m, Act *base, size_t i) {
    return (char *)base + i * m->be->act_size;
}

const Act *model_output_weight(const Model *m) {
    return m->w.lmw ? m->w.lmw : m->w.wte;
}

void model_weights_changed(Model *m) {
    if (m->weights_mem) m->be->act_from_float(m->weights_mem, m->params_mem, m->train_table.numel);
    if (m->frozen_weights_mem && m->owns_frozen)
        m->be->act_from_float(m->frozen_weights_mem, m->frozen_mem, m->frozen_numel);
}

// Points params, w and grads at the arenas.
static void point_all(Model *m) {
    size_t act = m->be->act_size;
    model_point(m, (void **)&m->params, m->params_mem, m->frozen_mem, sizeof(float));
    model_point(m, (void **)&m->w, m->weights_mem ? m->weights_mem : (void *)m->params_mem,
                m->frozen_weights_mem ? m->frozen_weights_mem : (void *)m->frozen_mem, act);
    if (m->grads_mem) model_point(m, (void **)&m->grads, m->grads_mem, NULL, sizeof(float));
}

// The gradient arena of a MODEL_TRAIN model, at its first use (model_zero_grad or a backward),
// so a model given adapters after it was created never holds gradients for its whole table.
static void grads_ready(Model *m) {
    LC_ASSERT(m->mode == MODEL_TRAIN);
    if (m->grads_mem) return;
    m->grads_mem = m->be->alloc(m->train_table.numel * sizeof(float));
    model_point(m, (void **)&m->grads, m->grads_mem, NULL, sizeof(float));
}

// The trained parameters' arena (and, unless frozen is given, the frozen ones') and their
// compute copies when the backend's activations are not fp32.
static void alloc_weights(Model *m, float *frozen, Act *frozen_weights) {
    const Backend *be = m->be;
    size_t n = m->train_table.numel;
    bool copies = be->act_size != sizeof(float);
    m->params_mem = be->alloc(n * sizeof(float));
    m->owns_params = true;
    if (copies) m->weights_mem = be->alloc(n * be->act_size);
    m->owns_frozen = !frozen && m->frozen_numel > 0;
    m->frozen_mem = frozen;
    m->frozen_weights_mem = frozen_weights;
    if (m->owns_frozen) {
        m->frozen_mem = be->alloc(m->frozen_numel * sizeof(float));
        if (copies) m->frozen_weights_mem = be->alloc(m->frozen_numel * be->act_size);
    }
    point_all(m); // the gradients come at first use (grads_ready)
}

static void free_weights(Model *m) {
    const Backend *be = m->be;
    if (m->owns_params) {
        be->free(m->params_mem);
        if (m->weights_mem) be->free(m->weights_mem);
    }
    if (m->owns_frozen) {
        be->free(m->frozen_mem);
        if (m->frozen_weights_mem) be->free(m->frozen_weights_mem);
    }
    if (m->grads_mem) be->free(m->grads_mem);
    m->params_mem = m->frozen_mem = m->grads_mem = NULL;
    m->weights_mem = m->frozen_weights_mem = NULL;
    m->owns_params = m->owns_frozen = false;
}

void model_params_to_host(const Model *m, float *host) {
    m->be->to_host(host + m->frozen_numel, m->params_mem, m->train_table.numel * sizeof(float));
    if (m->frozen_numel) m->be->to_host(host, m->frozen_mem, m->frozen_numel * sizeof(float));
}

void model_params_from_host(Model *m, const float *host) {
    LC_ASSERT(m->owns_params);
    m->be->to_device(m->params_mem, host + m->frozen_numel, m->train_table.numel * sizeof(float));
    if (m->owns_frozen) m->be->to_device(m->frozen_mem, host, m->frozen_numel * sizeof(float));
    model_weights_changed(m);
}

// ---- activation arena -----------------------------------------------------------------------

// Adapted targets (0 without adapters).
static size_t lora_count(const Model *m) {
    return m->lora.rank > 0 ? (size_t)__builtin_popcount(m->lora.targets) : 0;
}

// Lays out (and, with base != NULL, points) the activations for B x T; returns the bytes needed.
// Each (L, ...) tensor is sized for max_B x max_T; a call with a smaller batch packs its layers
// at the smaller stride inside it (model_layer_acts).
static size_t acts_layout(Model *m, ModelActs *a, char *base, int B, int T) {
    size_t N = (size_t)B * T, C = (size_t)m->cfg.d_model, NH = (size_t)m->cfg.n_head;
    size_t QKV = (size_t)m->qkv_dim, FC = (size_t)m->fc_dim, F = (size_t)m->cfg.d_ff;
    // layers of room: the residual stream (Lr), the attention's output and state (La), the rest
    bool train = m->mode == MODEL_TRAIN;
    size_t Lr = train ? (size_t)m->cfg.n_layer : 1;
    size_t La = train && m->recompute == MODEL_RECOMPUTE_NONE ? Lr : 1;
    size_t L = train && m->recompute != MODEL_RECOMPUTE_LAYER ? Lr : 1;
    size_t ln = family_of(&m->cfg)->layernorm; // RMSNorm keeps no mean
    size_t off = 0, act = m->be->act_size;
    // count elements of elem bytes, each tensor 64-byte aligned
#define CARVE(field, count, elem)                                                                  \
    do {                                                                                           \
        if (base) a->field = (void *)(base + off);                                                 \
        off += ((count) * (elem) + 63) / 64 * 64;                                                  \
    } while (0)
    CARVE(encoded, N * C, act);
    CARVE(ln1, L * N * C, act);
    CARVE(ln1_mean, ln * L * N, 4);
    CARVE(ln1_rstd, L * N, 4);
    CARVE(qkv, L * N * QKV, act);
    CARVE(atty, La * N * C, act);
    CARVE(att, La * m->be->attention_state_floats(B, T, (int)NH), 4);
    CARVE(attproj, L * N * C, act);
    CARVE(residual2, L * N * C, act);
    CARVE(ln2, L * N * C, act);
    CARVE(ln2_mean, ln * L * N, 4);
    CARVE(ln2_rstd, L * N, 4);
    CARVE(fch, L * N * FC, act);
    CARVE(fch_act, L * N * F, act);
    CARVE(fcproj, L * N * C, act);
    CARVE(residual3, Lr * N * C, act);
    CARVE(lnf, N * C, act);
    CARVE(lnf_mean, ln * N, 4);
    CARVE(lnf_rstd, N, 4);
    if (m->heads & MODEL_HEAD_LM) CARVE(logits, N * (size_t)m->Vp, act);
    CARVE(lse, N, 4);
    CARVE(logp, N, 4);
    CARVE(entropy, N, 4);
    CARVE(head, N, act);
    CARVE(lora_h, L * lora_count(m) * N * (size_t)m->lora.rank, act);
    CARVE(values, N, 4);
    if (m->mode == MODEL_TRAIN) {
        CARVE(dres, N * C, act);
        CARVE(dln, N * C, act);
        CARVE(datty, N * C, act);
        CARVE(dqkv, N * QKV, act);
        CARVE(datt, m->be->attention_scratch_floats(B, T, (int)NH), 4);
        CARVE(dfch_act, N * F, act);
        CARVE(dfch, N * FC, act);
        CARVE(dhead, N, act);
        CARVE(dlora_h, N * (size_t)m->lora.rank, act);
        CARVE(dlogp, N, 4);
        CARVE(dent, N, 4);
        CARVE(dvalues, N, 4);
    }
    CARVE(tokens, N, 4);
    CARVE(targets, N, 4);
    CARVE(pos, N, 4);
    CARVE(seg, N, 4);
#undef CARVE
    return off;
}

// Lays the activation arena out for max_B x max_T under the model's tables, mode and
// recomputation; its memory comes at first use (acts_ready), so a model switched to another
// layout after creation (model_set_recompute, model_lora_attach) never holds the larger one.
static void layout_acts(Model *m) {
    if (m->acts_mem) m->be->free(m->acts_mem);
    m->acts_mem = NULL;
    m->batch = NULL; // the last forward's activations are gone
    m->acts_bytes = acts_layout(m, &m->acts, NULL, m->max_B, m->max_T);
}

static void acts_ready(Model *m) {
    if (m->acts_mem) return;
    m->acts_mem = m->be->alloc(m->acts_bytes);
    acts_layout(m, &m->acts, (char *)m->acts_mem, m->max_B, m->max_T);
}

void model_set_recompute(Model *m, ModelRecompute r) {
    if (m->mode != MODEL_TRAIN || m->recompute == r) return;
    m->recompute = r;
    layout_acts(m);
}

// Everything but the parameter arena.
static Model *create_common(const Backend *be, ModelConfig cfg, int heads, const LoraConfig *lora,
                            ModelMode mode, int max_B, int max_T) {
    const char *bad = model_config_check(&cfg);
    if (bad) LC_DIE("invalid model configuration: %s", bad);
    LC_ASSERT(heads != 0 && max_B > 0 && max_T > 0 && max_T <= cfg.max_seq_len);
    Model *m = lc_calloc(1, sizeof(*m));
    m->cfg = cfg;
    m->Vp = model_padded_vocab(cfg.vocab_size);
    m->heads = heads;
    m->mode = mode;
    m->be = be;
    m->hs = cfg.d_model / cfg.n_head;
    m->qkv_dim = qkv_dim(&cfg);
    m->fc_dim = fc_dim(&cfg);
    if (lora) m->lora = *lora;
    build_table(&m->table, m->table_info, m->slot, &cfg, heads, &m->lora);
    split_trained(m);
    m->max_B = max_B;
    m->max_T = max_T;
    layout_acts(m);
    size_t n = (size_t)max_B * max_T;
    m->host_logp = lc_calloc(n, sizeof(float));
    m->host_entropy = lc_calloc(n, sizeof(float));
    m->host_values = lc_calloc(n, sizeof(float));
    m->host_scratch = lc_calloc(n, sizeof(float));
    return m;
}

Model *model_create(const Backend *be, ModelConfig cfg, int heads, ModelMode mode, int max_B,
                    int max_T) {
    Model *m = create_common(be, cfg, heads, NULL, mode, max_B, max_T);
    alloc_weights(m, NULL, NULL);
    return m;
}

Model *model_create_view(const Model *src, ModelMode mode, int max_B, int max_T) {
    Model *m = create_common(src->be, src->cfg, src->heads, &src->lora, mode, max_B, max_T);
    m->adapters_off = src->adapters_off;
    m->params_mem = src->params_mem;
    m->frozen_mem = src->frozen_mem;
    m->params = src->params;
    m->w = src->w; // the view reads the source's compute copy, which its steps keep fresh
    if (mode == MODEL_TRAIN) {
    }
    acts_ready(m); // a view's layout never changes (the sampler writes its arena directly)
    return m;
}

void model_free(Model *m) {
    if (!m) return;
    free_weights(m);
    m->be->free(m->acts_mem);
    free(m->host_logp);
    free(m->host_entropy);
    free(m->host_values);
    free(m->host_scratch);
    free(m);
}

// Fills one tensor (n floats at w) as its definition says, from its own random stream.
static void init_tensor(const Model *m, const TensorDef *d, float *w, size_t n, Rng *r) {
    float std = 0.02f, s = std;
    switch (d->init) {
    case INIT_ONE:
        for (size_t j = 0; j < n; j++) w[j] = 1.0f;
        return;
    case INIT_ZERO:
        memset(w, 0, n * sizeof(float));
        return;
    case INIT_PROJ:
        s = std / sqrtf(2.0f * (float)m->cfg.n_layer);
        break;
    case INIT_HEAD:
        s = 1.0f / sqrtf((float)m->cfg.d_model + 1.0f);
        break;
    case INIT_NORMAL:
        break;
    case INIT_LORA_A: { // (L, r, in)
        int dims[TENSOR_MAX_DIMS] = {0, 0, 1, 0};
        shape_dims(d->shape, &m->cfg, m->lora.rank, dims);
        if (m->lora.init == LORA_INIT_KAIMING) { // kaiming_uniform_(a = sqrt(5)): 1/sqrt(fan_in)
            float bound = 1.0f / sqrtf((float)dims[2]);
            for (size_t j = 0; j < n; j++) w[j] = bound * (2.0f * (float)rng_uniform(r) - 1.0f);
            return;
        }
        s = 1.0f / (float)m->lora.rank;
        break;
    }
    }
    for (size_t j = 0; j < n; j++) w[j] = s * (float)rng_normal(r);
    if (d->shape == SH_VOCAB) // padded vocab rows stay zero
        memset(w + (size_t)m->cfg.vocab_size * m->cfg.d_model, 0,
               (size_t)(m->Vp - m->cfg.vocab_size) * m->cfg.d_model * sizeof(float));
}

// Initialises table entries [from, count) of host (the whole table's layout).
// Initialises table entry i into host (its numel floats).
static void init_tensors_one(const Model *m, float *host, int i, uint64_t seed) {
    Rng r = rng_derive(seed, (uint64_t)i + 1);
    init_tensor(m, &TENSORS[m->slot[i]], host, m->table.info[i].numel, &r);
}

// Initialises table entries [from, count) into host, which holds the table's elements from
// element base on (tensor i at host + offset_i - base).
static void init_tensors(const Model *m, float *host, int from, uint64_t seed, size_t base) {
    const TensorTable *t = &m->table;
    for (int i = from; i < t->count; i++) {
        // one stream per tensor, so adding a tensor never changes the others' values
        Rng r = rng_derive(seed, (uint64_t)i + 1);
        init_tensor(m, &TENSORS[m->slot[i]], host + (t->info[i].offset - base), t->info[i].numel,
                    &r);
    }
}

void model_init_weights(Model *m, uint64_t seed) {
    // tensor by tensor through one host buffer of the largest: no host copy of the whole model
    const TensorTable *t = &m->table;
    size_t most = 0;
    for (int i = 0; i < t->count; i++) most = t->info[i].numel > most ? t->info[i].numel : most;
    float *host = lc_malloc(most * sizeof(float));
    for (int i = 0; i < t->count; i++) {
        init_tensors_one(m, host, i, seed);
        m->be->to_device(((float **)&m->params)[m->slot[i]], host,
                         t->info[i].numel * sizeof(float));
    }
    free(host);
    model_weights_changed(m);
}

// ---- forward --------------------------------------------------------------------------------

void model_layer_acts(const Model *m, int l, LayerActs *la) {
    size_t N = (size_t)m->B * m->T, C = (size_t)m->cfg.d_model;
    size_t QKV = (size_t)m->qkv_dim, FC = (size_t)m->fc_dim, F = (size_t)m->cfg.d_ff;
    size_t state = m->be->attention_state_floats(m->B, m->T, m->cfg.n_head); // per layer
    // the layer index into each tensor, as acts_layout gave it rooms: inference reuses one layer's
    // room for all; training keeps the residual stream (r), and the attention's output and state
    // (ka) and the rest (k) unless they are recomputed
    bool train = m->mode == MODEL_TRAIN;
    size_t r = train ? (size_t)l : 0;
    size_t ka = train && m->recompute == MODEL_RECOMPUTE_NONE ? (size_t)l : 0;
    size_t k = train && m->recompute != MODEL_RECOMPUTE_LAYER ? (size_t)l : 0;
    size_t ln = family_of(&m->cfg)->layernorm;
    const ModelActs *a = &m->acts;
    la->residual = l == 0 ? a->encoded : model_act_at(m, a->residual3, (train ? r - 1 : 0) * N * C);
    la->ln1 = model_act_at(m, a->ln1, k * N * C);
    la->ln1_mean = ln ? a->ln1_mean + k * N : NULL;
    la->ln1_rstd = a->ln1_rstd + k * N;
    la->qkv = model_act_at(m, a->qkv, k * N * QKV);
    la->atty = model_act_at(m, a->atty, ka * N * C);
    la->att = a->att + ka * state;
    la->attproj = model_act_at(m, a->attproj, k * N * C);
    la->residual2 = model_act_at(m, a->residual2, k * N * C);
    la->ln2 = model_act_at(m, a->ln2, k * N * C);
    la->ln2_mean = ln ? a->ln2_mean + k * N : NULL;
    la->ln2_rstd = a->ln2_rstd + k * N;
    la->fch = model_act_at(m, a->fch, k * N * FC);
    la->fch_act = model_act_at(m, a->fch_act, k * N * F);
    la->fcproj = model_act_at(m, a->fcproj, k * N * C);
    la->residual3 = model_act_at(m, a->residual3, r * N * C);
    size_t rank = (size_t)m->lora.rank, j = k * lora_count(m); // adapters' inputs: rooms as k
    for (int t = 0; t < LORA_TARGETS; t++)
        la->lora_h[t] =
            rank && (m->lora.targets >> t & 1u) ? model_act_at(m, a->lora_h, j++ * N * rank) : NULL;
}

// Layer l's slice of the stacked per-layer tensors of src (a ModelParams or ModelWeights, of
// elem-byte elements) into dst of the same type; the other fields (and absent tensors) are NULL.
static void layer_slice(const Model *m, void *const *src, void **dst, size_t elem, int l) {
    memset(dst, 0, N_TENSORS * sizeof(void *));
    for (int i = 0; i < m->table.count; i++) {
        int k = m->slot[i];
        if (!per_layer(TENSORS[k].shape) || !src[k]) continue;
        size_t per = m->table.info[i].numel / (size_t)m->cfg.n_layer;
        dst[k] = (char *)src[k] + (size_t)l * per * elem;
    }
}

static void layer_weights(const Model *m, int l, ModelWeights *lw) {
    layer_slice(m, (void *const *)&m->w, (void **)lw, m->be->act_size, l);
}

static void layer_grads(const Model *m, int l, ModelParams *lg) {
    layer_slice(m, (void *const *)&m->grads, (void **)lg, sizeof(float), l);
}

// The family's normalisation of N rows: LayerNorm (w, b, mean) or RMSNorm (w).
static void norm_forward(const Model *m, Act *out, float *mean, float *rstd, const Act *inp,
                         const Act *w, const Act *b, int N) {
    if (family_of(&m->cfg)->layernorm)
        m->be->layernorm_forward(out, mean, rstd, inp, w, b, N, m->cfg.d_model);
    else
        m->be->rmsnorm_forward(out, rstd, inp, w, N, m->cfg.d_model, m->cfg.norm_eps);
}

static void norm_backward(const Model *m, Act *dinp, float *dw, float *db, const Act *dout,
                          const Act *inp, const Act *w, const float *mean, const float *rstd,
                          int N) {
    if (family_of(&m->cfg)->layernorm)
        m->be->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, m->cfg.d_model);
    else
        m->be->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, m->cfg.d_model);
}

// Causal self-attention of one layer: RoPE on q and k when the family has it, then the keys and
// values through the cache (kv) or the full attention over the batch.
static void attention(Model *m, int l, const LayerActs *la, const KVAttention *kv) {
    const Backend *be = m->be;
    int B = m->B, T = m->T, NH = m->cfg.n_head, NKV = m->cfg.n_kv_head, hs = m->hs;
    ModelActs *a = &m->acts;
    if (!family_of(&m->cfg)->learned_pos)
        be->rope_forward(la->qkv, a->pos, B, T, NH, NKV, hs, m->cfg.rope_theta);
    if (kv) {
        size_t off = (size_t)l * kv->B * kv->maxT * NKV * hs;
        Act *kc = model_act_at(m, kv->k, off), *vc = model_act_at(m, kv->v, off);
        be->kvcache_write(kc, vc, la->qkv, kv->decode ? a->pos : NULL, B, T, kv->maxT, NH, NKV, hs);
        if (kv->decode) {
            be->attention_decode(la->atty, la->qkv, kc, vc, a->pos, B, kv->maxT, NH, NKV, hs);
            return;
        }
    }
    be->attention_forward(la->atty, la->att, la->qkv, a->seg, B, T, NH, NKV, hs);
}

// The MLP's activation: GELU (fch (N,F)) or SwiGLU (fch (N,2F): gate | up) into fch_act (N,F).
static void mlp_act(const Model *m, Act *out, const Act *inp, int N) {
    if (family_of(&m->cfg)->gelu)
        m->be->gelu_forward(out, inp, (size_t)N * m->cfg.d_ff);
    else
        m->be->swiglu_forward(out, inp, N, m->cfg.d_ff);
}

// The adapters (of the targets in mask) on one linear layer: out (N, site OC) += their output
// for the input inp (N, site in). Nothing without adapters or with them switched off.
static void adapters_forward(Model *m, const ModelWeights *lw, const LayerActs *la, Act *out,
                             const Act *inp, unsigned mask) {
    unsigned on = m->adapters_off ? 0 : m->lora.targets & mask;
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (!(on >> t & 1u)) continue;
        LoraSite s;
        model_lora_site(m, (LoraTarget)t, &s);
        Act *const *f = (Act *const *)lw;
        m->be->lora_forward(out, la->lora_h[t], inp, f[LORA_FIELDS[t].a], f[LORA_FIELDS[t].b],
                            m->B * m->T, s.in, s.OC, s.o0, s.OS, m->lora.rank, model_lora_scale(m));
    }
}

// Their backward: dinp (N, in) += the adapters' input gradient, given dout (N, OC); their A and
// B gradients (lg) accumulate.
static void adapters_backward(Model *m, const ModelWeights *lw, const ModelParams *lg,
                              const LayerActs *la, Act *dinp, const Act *dout, const Act *inp,
                              unsigned mask) {
    unsigned on = m->adapters_off ? 0 : m->lora.targets & mask;
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (!(on >> t & 1u)) continue;
        LoraSite s;
        model_lora_site(m, (LoraTarget)t, &s);
        Act *const *f = (Act *const *)lw;
        float *const *g = (float *const *)lg;
        m->be->lora_backward(dinp, g[LORA_FIELDS[t].a], g[LORA_FIELDS[t].b], m->acts.dlora_h, dout,
                             inp, la->lora_h[t], f[LORA_FIELDS[t].a], f[LORA_FIELDS[t].b],
                             m->B * m->T, s.in, s.OC, s.o0, s.OS, m->lora.rank,
                             model_lora_scale(m));
    }
}

enum {
    ADAPT_QKV = 1u << LORA_Q | 1u << LORA_K | 1u << LORA_V,
    ADAPT_O = 1u << LORA_O,
    ADAPT_FC = 1u << LORA_GATE | 1u << LORA_UP,
    ADAPT_DOWN = 1u << LORA_DOWN,
};

// Layer l's forward from its input (la.residual) to its output (la.residual3); the backward of
// MODEL_RECOMPUTE_LAYER re-runs it to refill the one layer's room it recomputes.
static void forward_layer(Model *m, int l, const KVAttention *kv) {
    const Backend *be = m->be;
    int B = m->B, T = m->T, C = m->cfg.d_model, N = B * T;
    int QKV = m->qkv_dim, FC = m->fc_dim, F = m->cfg.d_ff;
    LayerActs la;
    ModelWeights lp;
    model_layer_acts(m, l, &la);
    layer_weights(m, l, &lp);
    norm_forward(m, la.ln1, la.ln1_mean, la.ln1_rstd, la.residual, lp.ln1w, lp.ln1b, N);
    be->matmul_forward(la.qkv, la.ln1, lp.qkvw, lp.qkvb, N, C, QKV);
    adapters_forward(m, &lp, &la, la.qkv, la.ln1, ADAPT_QKV);
    attention(m, l, &la, kv);
    be->matmul_forward(la.attproj, la.atty, lp.attprojw, lp.attprojb, N, C, C);
    adapters_forward(m, &lp, &la, la.attproj, la.atty, ADAPT_O);
    be->residual_forward(la.residual2, la.residual, la.attproj, (size_t)N * C);
    norm_forward(m, la.ln2, la.ln2_mean, la.ln2_rstd, la.residual2, lp.ln2w, lp.ln2b, N);
    be->matmul_forward(la.fch, la.ln2, lp.fcw, lp.fcb, N, C, FC);
    adapters_forward(m, &lp, &la, la.fch, la.ln2, ADAPT_FC);
    mlp_act(m, la.fch_act, la.fch, N);
    be->matmul_forward(la.fcproj, la.fch_act, lp.fcprojw, lp.fcprojb, N, F, C);
    adapters_forward(m, &lp, &la, la.fcproj, la.fch_act, ADAPT_DOWN);
    be->residual_forward(la.residual3, la.residual2, la.fcproj, (size_t)N * C);
}

void model_forward_layers(Model *m, const KVAttention *kv) {
    acts_ready(m);
    const Backend *be = m->be;
    int B = m->B, T = m->T, C = m->cfg.d_model, N = B * T;
    ModelActs *a = &m->acts;
    be->encoder_forward(a->encoded, a->tokens, a->pos, m->w.wte, m->w.wpe, B, T, C);
    for (int l = 0; l < m->cfg.n_layer; l++) forward_layer(m, l, kv);
    LayerActs last;
    model_layer_acts(m, m->cfg.n_layer - 1, &last);
    norm_forward(m, a->lnf, a->lnf_mean, a->lnf_rstd, last.residual3, m->w.lnfw, m->w.lnfb, N);
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
    acts_ready(m);
    upload_batch(m, b);
    model_forward_layers(m, NULL);
    ModelActs *a = &m->acts;
    if (m->heads & MODEL_HEAD_SCALAR) {
        be->matmul_forward(a->head, a->lnf, m->w.headw, m->w.headb, N, C, 1);
        be->act_to_float(a->values, a->head, (size_t)N);
        be->to_host(m->host_values, a->values, (size_t)N * sizeof(float));
    }
    if (!(m->heads & MODEL_HEAD_LM)) return 0.0f;
    be->classifier_forward(a->logp, a->entropy, a->lse, a->logits, a->lnf, model_output_weight(m),
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
    int B = m->B, T = m->T, C = m->cfg.d_model, N = B * T;
    int NH = m->cfg.n_head, NKV = m->cfg.n_kv_head, hs = m->hs;
    int QKV = m->qkv_dim, FC = m->fc_dim, F = m->cfg.d_ff;
    const Family *fam = family_of(&m->cfg);
    ModelActs *a = &m->acts;
    LayerActs la;
    ModelWeights lp;
    ModelParams lg;
    // refill what the forward did not keep: the whole layer (its input residual is kept), or
    // below, the attention's output and state from the saved (already rotated) qkv
    if (m->recompute == MODEL_RECOMPUTE_LAYER) forward_layer(m, l, NULL);
    model_layer_acts(m, l, &la);
    layer_weights(m, l, &lp);
    layer_grads(m, l, &lg);
    // dres holds d(residual3); it flows unchanged into d(residual2) and d(fcproj).
    be->matmul_backward(a->dfch_act, lg.fcprojw, lg.fcprojb, a->dres, la.fch_act, lp.fcprojw, N, F,
                        C);
    adapters_backward(m, &lp, &lg, &la, a->dfch_act, a->dres, la.fch_act, ADAPT_DOWN);
    if (fam->gelu)
        be->gelu_backward(a->dfch, la.fch, a->dfch_act, (size_t)N * F);
    else
        be->swiglu_backward(a->dfch, la.fch, a->dfch_act, N, F);
    be->matmul_backward(a->dln, lg.fcw, lg.fcb, a->dfch, la.ln2, lp.fcw, N, C, FC);
    adapters_backward(m, &lp, &lg, &la, a->dln, a->dfch, la.ln2, ADAPT_FC);
    norm_backward(m, a->dres, lg.ln2w, lg.ln2b, a->dln, la.residual2, lp.ln2w, la.ln2_mean,
                  la.ln2_rstd, N);
    // dres holds d(residual2); it flows into d(residual) and d(attproj).
    if (m->recompute == MODEL_RECOMPUTE_ATTENTION)
        be->attention_forward(la.atty, la.att, la.qkv, a->seg, B, T, NH, NKV, hs);
    be->matmul_backward(a->datty, lg.attprojw, lg.attprojb, a->dres, la.atty, lp.attprojw, N, C, C);
    adapters_backward(m, &lp, &lg, &la, a->datty, a->dres, la.atty, ADAPT_O);
    be->attention_backward(a->dqkv, a->datt, a->datty, la.atty, la.qkv, la.att, a->seg, B, T, NH,
                           NKV, hs);
    if (!fam->learned_pos) be->rope_backward(a->dqkv, a->pos, B, T, NH, NKV, hs, m->cfg.rope_theta);
    be->matmul_backward(a->dln, lg.qkvw, lg.qkvb, a->dqkv, la.ln1, lp.qkvw, N, C, QKV);
    adapters_backward(m, &lp, &lg, &la, a->dln, a->dqkv, la.ln1, ADAPT_QKV);
    norm_backward(m, a->dres, lg.ln1w, lg.ln1b, a->dln, la.residual, lp.ln1w, la.ln1_mean,
                  la.ln1_rstd, N);
}

void model_backward(Model *m, const float *dlogp, const float *dent, const float *dvalues) {
    LC_ASSERT(m->mode == MODEL_TRAIN && m->batch);
    grads_ready(m);
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
        float *dout_w = m->grads.lmw ? m->grads.lmw : m->grads.wte;
        be->classifier_backward(a->dln, dout_w, a->logits, a->lnf, model_output_weight(m), a->lse,
                                a->entropy, a->targets, dl, de, N, C, m->cfg.vocab_size, m->Vp,
                                m->inv_temp);
    }
    if ((m->heads & MODEL_HEAD_SCALAR) && dvalues) {
        be->act_from_float(a->dhead, stage(m, a->dvalues, dvalues, N), (size_t)N);
        // the scalar head's input gradient lands in datty (free here) and is added to dln
        be->matmul_backward(lm ? a->datty : a->dln, m->grads.headw, m->grads.headb, a->dhead,
                            a->lnf, m->w.headw, N, C, 1);
        if (lm) be->residual_forward(a->dln, a->dln, a->datty, (size_t)N * C);
    } else if (!lm) {
        return; // the objective does not depend on this model
    }
    be->zero(a->dres, (size_t)N * C * be->act_size);
    norm_backward(m, a->dres, m->grads.lnfw, m->grads.lnfb, a->dln, last.residual3, m->w.lnfw,
                  a->lnf_mean, a->lnf_rstd, N);
    for (int l = m->cfg.n_layer - 1; l >= 0; l--) backward_layer(m, l);
    if (m->grads.wte || m->grads.wpe) // else the embeddings are frozen
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
    grads_ready(m);
    m->be->zero(m->grads_mem, m->train_table.numel * sizeof(float));
}

size_t model_param_bytes(const Model *m) {
    return m->table.numel * sizeof(float);
}

size_t model_weight_bytes(const Model *m) {
    size_t b = 0, act = m->be->act_size;
    if (m->owns_params) b += m->train_table.numel * (sizeof(float) + (m->weights_mem ? act : 0));
    if (m->owns_frozen) b += m->frozen_numel * (sizeof(float) + (m->frozen_weights_mem ? act : 0));
    return b;
}

size_t model_grad_bytes(const Model *m) {
    return m->mode == MODEL_TRAIN ? m->train_table.numel * sizeof(float) : 0;
}

size_t model_act_bytes(const Model *m) {
    return m->acts_bytes;
}

void model_logits_to_host(const Model *m, float *dst, size_t rows) {
    const Backend *be = m->be;
    size_t n = rows * (size_t)m->Vp;
    if (be->act_size == sizeof(float)) {
        be->to_host(dst, m->acts.logits, n * sizeof(float));
        return;
    }
    float *dev = be->alloc(n * sizeof(float)); // a debugging path (`layercake logits`), not a step
    be->act_to_float(dev, m->acts.logits, n);
    be->to_host(dst, dev, n * sizeof(float));
    be->free(dev);
}

// ---- LoRA -----------------------------------------------------------------------------------

static const char *const LORA_NAMES[LORA_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};

const char *lora_target_name(LoraTarget t) {
    return t >= 0 && t < LORA_TARGETS ? LORA_NAMES[t] : "?";
}

int lora_target_parse(const char *name, LoraTarget *t) {
    for (int i = 0; i < LORA_TARGETS; i++)
        if (strcmp(name, LORA_NAMES[i]) == 0) {
            *t = (LoraTarget)i;
            return 0;
        }
    return -1;
}

int lora_targets_parse(const char *list, unsigned *targets, char *bad, size_t badlen) {
    *targets = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        char name[16];
        LoraTarget t;
        snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : sizeof(name) - 1), p);
        if (len >= sizeof(name) || lora_target_parse(name, &t) != 0) {
            snprintf(bad, badlen, "%.*s", (int)len, p);
            return -1;
        }
        *targets |= 1u << t;
        p += len + (p[len] == ',');
    }
    return 0;
}

const char *lora_config_check(const LoraConfig *c, const ModelConfig *cfg) {
    if (c->rank < 1) return "rank must be >= 1";
    if (!(c->alpha > 0.0f)) return "alpha must be > 0";
    if (c->targets == 0) return "targets must name at least one projection";
    if (c->targets >> LORA_TARGETS) return "targets has an unknown projection";
    if (family_of(cfg)->gelu && (c->targets & (1u << LORA_GATE)))
        return "this family's MLP has no gate projection (targets: q, k, v, o, up, down)";
    if (c->init != LORA_INIT_KAIMING && c->init != LORA_INIT_GAUSSIAN) return "unknown init";
    return NULL;
}

float model_lora_scale(const Model *m) {
    return m->lora.rank > 0 ? m->lora.alpha / (float)m->lora.rank : 0.0f;
}

void model_lora_site(const Model *m, LoraTarget t, LoraSite *s) {
    int C = m->cfg.d_model, F = m->cfg.d_ff, KV = m->cfg.n_kv_head * m->hs;
    switch (t) {
    case LORA_Q:
    case LORA_K:
    case LORA_V:
        *s = (LoraSite){.in = C,
                        .OC = m->qkv_dim,
                        .o0 = t == LORA_Q   ? 0
                              : t == LORA_K ? C
                                            : C + KV,
                        .OS = t == LORA_Q ? C : KV};
        return;
    case LORA_O:
        *s = (LoraSite){.in = C, .OC = C, .o0 = 0, .OS = C};
        return;
    case LORA_GATE:
    case LORA_UP:
        *s = (LoraSite){.in = C,
                        .OC = m->fc_dim,
                        .o0 = t == LORA_UP && !family_of(&m->cfg)->gelu ? F : 0,
                        .OS = F};
        return;
    case LORA_DOWN:
    default:
        *s = (LoraSite){.in = F, .OC = C, .o0 = 0, .OS = C};
        return;
    }
}

// Replaces the model's tables with those of lora (rank 0: none) and allocates its arenas; the
// caller fills them.
static void retable(Model *m, const LoraConfig *lora) {
    free_weights(m);
    m->lora = *lora;
    build_table(&m->table, m->table_info, m->slot, &m->cfg, m->heads, &m->lora);
    split_trained(m);
    alloc_weights(m, NULL, NULL);
}

int model_lora_attach(Model *m, const LoraConfig *c, uint64_t seed, char *err, size_t errlen) {
    if (m->lora.rank > 0)
        return lc_error(err, errlen, "the model already has adapters (merge them first)");
    if (!m->owns_params) return lc_error(err, errlen, "a view cannot take adapters of its own");
    const char *bad = lora_config_check(c, &m->cfg);
    if (bad) return lc_error(err, errlen, "lora: %s", bad);
    // The old arena (and its compute copy) becomes the frozen one, in place: the base tensors
    // lead both tables. A scalar head at its end moves to the new, trained arena.
    const Backend *be = m->be;
    float *old = m->params_mem;
    Act *old_w = m->weights_mem;
    float head[2] = {0};
    size_t C = (size_t)m->cfg.d_model;
    float *headw = m->params.headw ? lc_malloc(C * sizeof(float)) : NULL;
    if (headw) {
        be->to_host(headw, m->params.headw, C * sizeof(float));
        be->to_host(head, m->params.headb, sizeof(float));
    }
    if (m->grads_mem) be->free(m->grads_mem);
    m->grads_mem = NULL;
    int base_count = m->table.count;
    m->lora = *c;
    build_table(&m->table, m->table_info, m->slot, &m->cfg, m->heads, &m->lora);
    split_trained(m);
    alloc_weights(m, old, old_w);
    m->owns_frozen = true;
    float *host = lc_malloc(m->train_table.numel * sizeof(float));
    init_tensors(m, host, base_count, seed, m->frozen_numel); // the adapters, as laid out
    if (headw) {
        memcpy(host + (m->params.headw - m->params_mem), headw, C * sizeof(float));
        host[m->params.headb - m->params_mem] = head[0];
    }
    be->to_device(m->params_mem, host, m->train_table.numel * sizeof(float));
    if (m->weights_mem) be->act_from_float(m->weights_mem, m->params_mem, m->train_table.numel);
    free(host), free(headw);
    layout_acts(m); // room for the adapters' inputs
    return 0;
}

Model *model_create_base_view(const Model *src, int max_B, int max_T) {
    Model *m = model_create_view(src, MODEL_INFER, max_B, max_T);
    m->adapters_off = true;
    return m;
}

void model_lora_lr_scale(Model *m, float scale) {
    for (int i = m->first_trained; i < m->table.count; i++)
        if (TENSORS[m->slot[i]].when >= ADAPTER_Q)
            m->train_info[i - m->first_trained].lr_scale = scale;
}

// W (OS rows from o0 of an (OC, in) matrix) += scale * B (OS, r) @ A (r, in), on the host.
static void merge_block(float *w, const float *a, const float *b, const LoraSite *s, int r,
                        float scale) {
    for (int o = 0; o < s->OS; o++) {
        float *row = w + (size_t)(s->o0 + o) * s->in;
        for (int k = 0; k < r; k++) {
            float bk = scale * b[(size_t)o * r + k];
            const float *ak = a + (size_t)k * s->in;
            for (int i = 0; i < s->in; i++) row[i] += bk * ak[i];
        }
    }
}

void model_lora_merge(Model *m) {
    if (m->lora.rank == 0) return;
    LC_ASSERT(m->owns_params && (m->owns_frozen || m->frozen_numel == 0));
    float *host = lc_malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    float *field[N_TENSORS] = {0}; // each tensor inside host
    for (int i = 0; i < m->table.count; i++) field[m->slot[i]] = host + m->table.info[i].offset;
    int L = m->cfg.n_layer, r = m->lora.rank;
    float scale = model_lora_scale(m);
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (!(m->lora.targets >> t & 1u)) continue;
        LoraSite s;
        model_lora_site(m, (LoraTarget)t, &s);
        for (int l = 0; l < L; l++)
            merge_block(field[LORA_FIELDS[t].base] + (size_t)l * s.OC * s.in,
                        field[LORA_FIELDS[t].a] + (size_t)l * r * s.in,
                        field[LORA_FIELDS[t].b] + (size_t)l * s.OS * r, &s, r, scale);
    }
    retable(m, &(LoraConfig){0});
    model_params_from_host(m, host); // the base tensors are the prefix of host
    free(host);
    layout_acts(m);
}

Model *model_create_adapter_view(const Model *trunk, int heads, ModelMode mode, int max_B,
                                 int max_T, const LoraConfig *c, uint64_t seed) {
    LC_ASSERT(c->rank > 0 && !lora_config_check(c, &trunk->cfg));
    Model *m = create_common(trunk->be, trunk->cfg, heads, c, mode, max_B, max_T);
    // Both tables start with the same base tensors: the trunk keeps them in frozen_mem (it has
    // adapters) or at the start of params_mem (it has none: a model nothing trains).
    if (trunk->frozen_numel > 0) {
        LC_ASSERT(trunk->frozen_numel == m->frozen_numel);
        alloc_weights(m, trunk->frozen_mem, trunk->frozen_weights_mem);
    } else {
        LC_ASSERT(trunk->lora.rank == 0 && trunk->table.numel >= m->frozen_numel);
        alloc_weights(m, trunk->params_mem, trunk->weights_mem);
    }
    float *host = lc_malloc(m->train_table.numel * sizeof(float));
    init_tensors(m, host, m->first_trained, seed, m->frozen_numel);
    m->be->to_device(m->params_mem, host, m->train_table.numel * sizeof(float));
    free(host);
    if (m->params.headw && trunk->params.headw) { // the value model starts as the reward model
        m->be->copy(m->params.headw, trunk->params.headw, (size_t)m->cfg.d_model * sizeof(float));
        m->be->copy(m->params.headb, trunk->params.headb, sizeof(float));
    }
    model_weights_changed(m);
    return m;
}
