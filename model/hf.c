// model/hf.c: Hugging Face model folders <-> layercake models. config.json is read into a
// ModelConfig (and written back from one) and the tensors of an architecture are one list of
// entries, each an HF tensor name with its shape and its place in the parameter arena; import
// and export walk the same list, so the two directions cannot disagree.
#include "model/hf.h"
#include "common/h5.h"
#include "common/check.h"
#include "common/error.h"
#include "common/fs.h"
#include "model/checkpoint.h"
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// realloc that dies on failure, like lc_malloc.
static void *grow(void *p, size_t bytes) {
    void *q = realloc(p, bytes);
    if (!q) LC_DIE("out of memory (%zu bytes)", bytes);
    return q;
}

// ---- architectures --------------------------------------------------------------------------

typedef enum { ARCH_GPT2, ARCH_LLAMA, ARCH_MISTRAL, ARCH_QWEN2 } ArchKind;

typedef struct {
    const char *name; // architectures[0]
    ArchKind kind;
    int heads;              // MODEL_HEAD_LM or MODEL_HEAD_SCALAR
    const char *model_type; // config.json's model_type
} Arch;

static const Arch ARCHS[] = {
    {"GPT2LMHeadModel", ARCH_GPT2, MODEL_HEAD_LM, "gpt2"},
    {"GPT2ForSequenceClassification", ARCH_GPT2, MODEL_HEAD_SCALAR, "gpt2"},
    {"LlamaForCausalLM", ARCH_LLAMA, MODEL_HEAD_LM, "llama"},
    {"LlamaForSequenceClassification", ARCH_LLAMA, MODEL_HEAD_SCALAR, "llama"},
    {"MistralForCausalLM", ARCH_MISTRAL, MODEL_HEAD_LM, "mistral"},
    {"MistralForSequenceClassification", ARCH_MISTRAL, MODEL_HEAD_SCALAR, "mistral"},
    {"Qwen2ForCausalLM", ARCH_QWEN2, MODEL_HEAD_LM, "qwen2"},
    {"Qwen2ForSequenceClassification", ARCH_QWEN2, MODEL_HEAD_SCALAR, "qwen2"},
};
enum { N_ARCHS = sizeof(ARCHS) / sizeof(ARCHS[0]) };

static const Arch *arch_find(const char *name) {
    for (int i = 0; i < N_ARCHS; i++)
        if (strcmp(ARCHS[i].name, name) == 0) return &ARCHS[i];
    return NULL;
}

// The architecture a model exports as: rows of ARCHS, the ...ForSequenceClassification one
// right after its causal LM.
static const Arch *arch_of_model(const Model *m) {
    int row = m->cfg.family == MODEL_FAMILY_GPT2 ? 0 : m->cfg.qkv_bias ? 6 : 2;
    return &ARCHS[row + !(m->heads & MODEL_HEAD_LM)];
}

const char *hf_architecture(const Model *m) {
    return arch_of_model(m)->name;
}

int hf_is_folder(const char *path) {
    struct stat st;
    char cfg[4096];
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    snprintf(cfg, sizeof(cfg), "%s/config.json", path);
    return stat(cfg, &st) == 0 && S_ISREG(st.st_mode);
}

// ---- config.json ----------------------------------------------------------------------------

typedef struct {
    json_t *root;
    char path[4096]; // config.json, for messages
    char *err;
    size_t errlen;
} Conf;

// The value of key, or of alias when key is absent or null; NULL when both are. *used names
// the key found (for messages).
static json_t *conf_get(const Conf *c, const char *key, const char *alias, const char **used) {
    json_t *v = json_object_get(c->root, key);
    *used = key;
    if ((!v || json_is_null(v)) && alias) {
        v = json_object_get(c->root, alias);
        *used = alias;
    }
    if (!v || json_is_null(v)) *used = key;
    return v && !json_is_null(v) ? v : NULL;
}

// An integer in [lo, hi]; absent or null gives def, or an error when required.
static int conf_int(const Conf *c, const char *key, const char *alias, bool required, int def,
                    int lo, int hi, int *out) {
    const char *k;
    json_t *v = conf_get(c, key, alias, &k);
    if (!v) {
        if (required)
            return lc_error(c->err, c->errlen, "%s: missing key '%s'%s%s%s", c->path, key,
                            alias ? " (or '" : "", alias ? alias : "", alias ? "')" : "");
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return lc_error(c->err, c->errlen, "%s: '%s' must be an integer in [%d, %d]", c->path, k,
                        lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int conf_num(const Conf *c, const char *key, const char *alias, double def, double *out) {
    const char *k;
    json_t *v = conf_get(c, key, alias, &k);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return lc_error(c->err, c->errlen, "%s: '%s' must be a number", c->path, k);
    *out = json_number_value(v);
    return 0;
}

static int conf_bool(const Conf *c, const char *key, bool def, bool *out) {
    json_t *v = json_object_get(c->root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return lc_error(c->err, c->errlen, "%s: '%s' must be true or false", c->path, key);
    *out = json_is_true(v);
    return 0;
}

// A string key: def when absent or null.
static int conf_str(const Conf *c, const char *key, const char *def, const char **out) {
    json_t *v = json_object_get(c->root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v))
        return lc_error(c->err, c->errlen, "%s: '%s' must be a string", c->path, key);
    *out = json_string_value(v);
    return 0;
}

// bos_token_id / eos_token_id: an integer, or the first of a list of them (Llama 3 lists several
// end tokens); -1 when absent or of another type.
static int conf_token(const Conf *c, const char *key) {
    json_t *v = json_object_get(c->root, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX)
        return -1;
    return (int)json_integer_value(v);
}

enum { DIM_MAX = 1 << 24, LAYERS_MAX = 1 << 12 };

// The keys both families share: sizes, the head layout and head_dim.
static int read_shape(const Conf *c, ModelConfig *cfg, const Arch *a) {
    bool gpt2 = a->kind == ARCH_GPT2;
    int max_pos_default = a->kind == ARCH_GPT2      ? 1024
                          : a->kind == ARCH_LLAMA   ? 2048
                          : a->kind == ARCH_MISTRAL ? 4096 * 32
                                                    : 32768;
    if (conf_int(c, "hidden_size", "n_embd", true, 0, 1, DIM_MAX, &cfg->d_model) ||
        conf_int(c, "num_hidden_layers", "n_layer", true, 0, 1, LAYERS_MAX, &cfg->n_layer) ||
        conf_int(c, "num_attention_heads", "n_head", true, 0, 1, DIM_MAX, &cfg->n_head) ||
        conf_int(c, "vocab_size", NULL, true, 0, 2, DIM_MAX, &cfg->vocab_size) ||
        conf_int(c, "max_position_embeddings", "n_positions", false, max_pos_default, 1, DIM_MAX,
                 &cfg->max_seq_len) ||
        conf_int(c, "intermediate_size", "n_inner", !gpt2, 4 * cfg->d_model, 1, DIM_MAX,
                 &cfg->d_ff) ||
        conf_int(c, "num_key_value_heads", NULL, false, cfg->n_head, 1, DIM_MAX, &cfg->n_kv_head))
        return -1;
    if (cfg->d_model % cfg->n_head != 0)
        return lc_error(c->err, c->errlen,
                        "%s: hidden_size %d is not a multiple of num_attention_heads %d", c->path,
                        cfg->d_model, cfg->n_head);
    int head_dim;
    if (conf_int(c, "head_dim", NULL, false, cfg->d_model / cfg->n_head, 1, DIM_MAX, &head_dim))
        return -1;
    if (head_dim != cfg->d_model / cfg->n_head)
        return lc_error(c->err, c->errlen,
                        "%s: head_dim %d differs from hidden_size / num_attention_heads = %d; "
                        "layercake's heads are hidden_size / num_attention_heads wide",
                        c->path, head_dim, cfg->d_model / cfg->n_head);
    if (gpt2 && cfg->n_kv_head != cfg->n_head)
        return lc_error(c->err, c->errlen,
                        "%s: num_key_value_heads %d: GPT-2 has as many key/value heads as heads "
                        "(%d)",
                        c->path, cfg->n_kv_head, cfg->n_head);
    return 0;
}

static int read_gpt2(const Conf *c, ModelConfig *cfg, bool scalar) {
    double eps = 0;
    const char *act = NULL;
    bool tied = true, scale = true, by_layer = false;
    if (conf_num(c, "layer_norm_epsilon", "rms_norm_eps", 1e-5, &eps) ||
        conf_str(c, "activation_function", "gelu_new", &act) ||
        conf_bool(c, "tie_word_embeddings", true, &tied) ||
        conf_bool(c, "scale_attn_weights", true, &scale) ||
        conf_bool(c, "scale_attn_by_inverse_layer_idx", false, &by_layer))
        return -1;
    if ((float)eps != 1e-5f)
        return lc_error(c->err, c->errlen,
                        "%s: layer_norm_epsilon %g: layercake's LayerNorm uses 1e-5", c->path, eps);
    if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
        return lc_error(c->err, c->errlen,
                        "%s: activation_function '%s': layercake's GPT-2 uses the tanh GELU "
                        "(gelu_new)",
                        c->path, act);
    if (!tied && !scalar)
        return lc_error(c->err, c->errlen,
                        "%s: tie_word_embeddings is false: layercake's GPT-2 output layer is "
                        "always the token embedding",
                        c->path);
    if (!scale || by_layer)
        return lc_error(
            c->err, c->errlen,
            "%s: %s: layercake scales attention scores by 1/sqrt(head size) only", c->path,
            !scale ? "scale_attn_weights is false" : "scale_attn_by_inverse_layer_idx is true");
    cfg->norm_eps = 1e-5f;
    return 0;
}

// The sliding-window keys: refused where the window can bind (Qwen2: use_sliding_window; Mistral:
// a window shorter than the context).
static int read_window(const Conf *c, const ModelConfig *cfg, ArchKind kind) {
    if (kind != ARCH_QWEN2 && kind != ARCH_MISTRAL) return 0;
    json_t *w = json_object_get(c->root, "sliding_window");
    bool absent = w == NULL, use = false;
    int window = 4096; // both classes' default
    if (!absent && json_is_null(w)) return 0;
    if (!absent && conf_int(c, "sliding_window", NULL, false, 0, 0, INT_MAX, &window)) return -1;
    if (kind == ARCH_QWEN2) {
        if (conf_bool(c, "use_sliding_window", false, &use)) return -1;
        if (use)
            return lc_error(c->err, c->errlen,
                            "%s: sliding_window %d with use_sliding_window true: layercake's "
                            "attention sees the whole context (no sliding window)",
                            c->path, window);
        return 0;
    }
    if (window < cfg->max_seq_len)
        return lc_error(c->err, c->errlen,
                        "%s: sliding_window %d%s is shorter than max_position_embeddings %d: "
                        "layercake's attention sees the whole context (no sliding window)",
                        c->path, window, absent ? " (transformers' default)" : "",
                        cfg->max_seq_len);
    return 0;
}

static int read_llama(const Conf *c, ModelConfig *cfg, const Arch *a) {
    double eps = 0, theta = 0;
    const char *act = NULL;
    bool tied = false, attn_bias = false, mlp_bias = false;
    json_t *rs = json_object_get(c->root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        char *text = json_dumps(rs, JSON_SORT_KEYS);
        int rc = lc_error(c->err, c->errlen,
                          "%s: rope_scaling is set (%s): layercake implements plain RoPE only",
                          c->path, text ? text : "?");
        free(text);
        return rc;
    }
    if (conf_num(c, "rms_norm_eps", "layer_norm_epsilon", 1e-6, &eps) ||
        conf_num(c, "rope_theta", NULL, 10000.0, &theta) ||
        conf_str(c, "hidden_act", "silu", &act) ||
        conf_bool(c, "tie_word_embeddings", false, &tied) ||
        conf_bool(c, "attention_bias", false, &attn_bias) ||
        conf_bool(c, "mlp_bias", false, &mlp_bias))
        return -1;
    if (strcmp(act, "silu") != 0)
        return lc_error(c->err, c->errlen,
                        "%s: hidden_act '%s': layercake's Llama MLP is SwiGLU (silu)", c->path,
                        act);
    if (mlp_bias)
        return lc_error(c->err, c->errlen,
                        "%s: mlp_bias is true: layercake's Llama MLP has no biases", c->path);
    if (attn_bias && a->kind == ARCH_LLAMA)
        return lc_error(c->err, c->errlen,
                        "%s: attention_bias is true: it adds a bias to o_proj, which layercake's "
                        "Llama does not have (q/k/v biases alone: Qwen2ForCausalLM)",
                        c->path);
    if (!(eps > 0 && eps < 1))
        return lc_error(c->err, c->errlen, "%s: rms_norm_eps %g must be in (0, 1)", c->path, eps);
    if (!(theta > 1 && theta < 1e30))
        return lc_error(c->err, c->errlen, "%s: rope_theta %g must be above 1", c->path, theta);
    cfg->norm_eps = (float)eps;
    cfg->rope_theta = (float)theta;
    cfg->qkv_bias = a->kind == ARCH_QWEN2;
    cfg->tied = tied;
    return read_window(c, cfg, a->kind);
}

// ...ForSequenceClassification: one label (num_labels, or the size of id2label).
static int read_labels(const Conf *c) {
    int n;
    json_t *id2label = json_object_get(c->root, "id2label");
    if (conf_int(c, "num_labels", NULL, false, 1, 0, INT_MAX, &n)) return -1;
    if (!json_object_get(c->root, "num_labels") && json_is_object(id2label))
        n = (int)json_object_size(id2label);
    if (n != 1)
        return lc_error(c->err, c->errlen,
                        "%s: num_labels %d: layercake's scalar head (a reward model) has one label",
                        c->path, n);
    return 0;
}

int hf_read_config(const char *dir, HfConfig *hc, char *err, size_t errlen) {
    Conf c = {.err = err, .errlen = errlen};
    snprintf(c.path, sizeof(c.path), "%s/config.json", dir);
    json_error_t je;
    c.root = json_load_file(c.path, JSON_REJECT_DUPLICATES, &je);
    if (!c.root) return lc_error(err, errlen, "%s: %s (line %d)", c.path, je.text, je.line);
    int rc = -1;
    *hc = (HfConfig){.bos_id = -1, .eos_id = -1};
    json_t *archs = json_object_get(c.root, "architectures");
    const char *type = json_string_value(json_object_get(c.root, "model_type"));
    const char *name = NULL;
    const Arch *a = NULL;
    if (json_is_array(archs) && json_array_size(archs) == 1)
        name = json_string_value(json_array_get(archs, 0));
    else if ((!archs || json_is_null(archs)) && type) // an older config: the causal LM of its type
        for (int i = 0; i < N_ARCHS && !name; i++)
            if (ARCHS[i].heads == MODEL_HEAD_LM && strcmp(ARCHS[i].model_type, type) == 0)
                name = ARCHS[i].name;
    if (!json_is_object(c.root)) {
        lc_error(err, errlen, "%s: not a JSON object", c.path);
    } else if (!name) {
        lc_error(err, errlen,
                 "%s: 'architectures' must be a list of one name (or, without it, 'model_type' "
                 "one of gpt2, llama, mistral, qwen2)",
                 c.path);
    } else if (!(a = arch_find(name))) {
        char names[1024] = "";
        for (int i = 0; i < N_ARCHS; i++)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? ", " : "",
                     ARCHS[i].name);
        lc_error(err, errlen, "%s: architecture '%s' is not supported (%s)", c.path, name, names);
    } else {
        bool gpt2 = a->kind == ARCH_GPT2, scalar = a->heads == MODEL_HEAD_SCALAR;
        ModelConfig *cfg = &hc->cfg;
        *cfg = model_config_default(gpt2 ? MODEL_FAMILY_GPT2 : MODEL_FAMILY_LLAMA, 1, 1, 1, 2, 1);
        if (read_shape(&c, cfg, a) == 0 &&
            (gpt2 ? read_gpt2(&c, cfg, scalar) : read_llama(&c, cfg, a)) == 0 &&
            (!scalar || read_labels(&c) == 0)) {
            if (scalar) cfg->tied = true; // no lm_head: a language-model head would be wte
            const char *bad = model_config_check(cfg);
            if (bad)
                lc_error(err, errlen, "%s: not a configuration layercake runs: %s", c.path, bad);
            else
                rc = 0;
        }
        hc->heads = a->heads;
        snprintf(hc->architecture, sizeof(hc->architecture), "%s", a->name);
        hc->bos_id = conf_token(&c, "bos_token_id");
        hc->eos_id = conf_token(&c, "eos_token_id");
    }
    json_decref(c.root);
    return rc;
}

// ---- the tensor list ------------------------------------------------------------------------

// One tensor of a folder and its place in the parameter arena.
typedef struct {
    char name[96]; // the HF name
    int ndim;      // 1 or 2
    int64_t shape[2];
    int table;      // index in the model's tensor table, -1 when the model has no such tensor
    size_t off;     // element offset in the arena (table >= 0)
    bool transpose; // stored (in, out) (GPT-2's Conv1D); the arena holds (out, in)
    bool optional;  // may be missing: a scalar head the folder's architecture lacks
} Entry;

typedef struct {
    Entry *e;
    int n, cap;
} Entries;

// Appends the HF tensor named by fmt, of shape (d0) or (d0, d1) (d1 = 0: one dim), held in our
// tensor `ours` from element `at`.
__attribute__((format(printf, 8, 9))) static Entry *add(Entries *es, const Model *m,
                                                        const char *ours, size_t at, int64_t d0,
                                                        int64_t d1, bool transpose, const char *fmt,
                                                        ...) {
    if (es->n == es->cap) {
        es->cap = es->cap ? 2 * es->cap : 64;
        es->e = grow(es->e, (size_t)es->cap * sizeof(Entry));
    }
    Entry *e = &es->e[es->n++];
    memset(e, 0, sizeof(*e));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof(e->name), fmt, ap);
    va_end(ap);
    e->ndim = d1 ? 2 : 1;
    e->shape[0] = d0, e->shape[1] = d1;
    e->transpose = transpose;
    e->table = tensor_table_find(&m->table, ours);
    if (e->table >= 0) e->off = m->table.info[e->table].offset + at;
    return e;
}

static void gpt2_entries(Entries *es, const Model *m, const char *p) {
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, F = (size_t)c->d_ff, Q = (size_t)m->qkv_dim;
    add(es, m, "wte", 0, c->vocab_size, (int64_t)C, false, "%swte.weight", p);
    add(es, m, "wpe", 0, c->max_seq_len, (int64_t)C, false, "%swpe.weight", p);
    for (int l = 0; l < c->n_layer; l++) {
        size_t L = (size_t)l;
        add(es, m, "ln1w", L * C, (int64_t)C, 0, false, "%sh.%d.ln_1.weight", p, l);
        add(es, m, "ln1b", L * C, (int64_t)C, 0, false, "%sh.%d.ln_1.bias", p, l);
        add(es, m, "qkvw", L * Q * C, (int64_t)C, (int64_t)Q, true, "%sh.%d.attn.c_attn.weight", p,
            l);
        add(es, m, "qkvb", L * Q, (int64_t)Q, 0, false, "%sh.%d.attn.c_attn.bias", p, l);
        add(es, m, "attprojw", L * C * C, (int64_t)C, (int64_t)C, true, "%sh.%d.attn.c_proj.weight",
            p, l);
        add(es, m, "attprojb", L * C, (int64_t)C, 0, false, "%sh.%d.attn.c_proj.bias", p, l);
        add(es, m, "ln2w", L * C, (int64_t)C, 0, false, "%sh.%d.ln_2.weight", p, l);
        add(es, m, "ln2b", L * C, (int64_t)C, 0, false, "%sh.%d.ln_2.bias", p, l);
        add(es, m, "fcw", L * F * C, (int64_t)C, (int64_t)F, true, "%sh.%d.mlp.c_fc.weight", p, l);
        add(es, m, "fcb", L * F, (int64_t)F, 0, false, "%sh.%d.mlp.c_fc.bias", p, l);
        add(es, m, "fcprojw", L * C * F, (int64_t)F, (int64_t)C, true, "%sh.%d.mlp.c_proj.weight",
            p, l);
        add(es, m, "fcprojb", L * C, (int64_t)C, 0, false, "%sh.%d.mlp.c_proj.bias", p, l);
    }
    add(es, m, "lnfw", 0, (int64_t)C, 0, false, "%sln_f.weight", p);
    add(es, m, "lnfb", 0, (int64_t)C, 0, false, "%sln_f.bias", p);
}

static void llama_entries(Entries *es, const Model *m, bool lm_head) {
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, F = (size_t)c->d_ff, Q = (size_t)m->qkv_dim;
    size_t hs = (size_t)m->hs, NH = (size_t)c->n_head, NKV = (size_t)c->n_kv_head;
    size_t kv_at = NH * hs, v_at = (NH + NKV) * hs; // rows of k and v inside q | k | v
    const char *p = "model.layers";
    add(es, m, "wte", 0, c->vocab_size, (int64_t)C, false, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layer; l++) {
        size_t L = (size_t)l, qkv = L * Q * C, fc = L * 2 * F * C;
        add(es, m, "ln1w", L * C, (int64_t)C, 0, false, "%s.%d.input_layernorm.weight", p, l);
        add(es, m, "qkvw", qkv, (int64_t)(NH * hs), (int64_t)C, false,
            "%s.%d.self_attn.q_proj.weight", p, l);
        add(es, m, "qkvw", qkv + kv_at * C, (int64_t)(NKV * hs), (int64_t)C, false,
            "%s.%d.self_attn.k_proj.weight", p, l);
        add(es, m, "qkvw", qkv + v_at * C, (int64_t)(NKV * hs), (int64_t)C, false,
            "%s.%d.self_attn.v_proj.weight", p, l);
        if (c->qkv_bias) {
            add(es, m, "qkvb", L * Q, (int64_t)(NH * hs), 0, false, "%s.%d.self_attn.q_proj.bias",
                p, l);
            add(es, m, "qkvb", L * Q + kv_at, (int64_t)(NKV * hs), 0, false,
                "%s.%d.self_attn.k_proj.bias", p, l);
            add(es, m, "qkvb", L * Q + v_at, (int64_t)(NKV * hs), 0, false,
                "%s.%d.self_attn.v_proj.bias", p, l);
        }
        add(es, m, "attprojw", L * C * C, (int64_t)C, (int64_t)C, false,
            "%s.%d.self_attn.o_proj.weight", p, l);
        add(es, m, "ln2w", L * C, (int64_t)C, 0, false, "%s.%d.post_attention_layernorm.weight", p,
            l);
        add(es, m, "fcw", fc, (int64_t)F, (int64_t)C, false, "%s.%d.mlp.gate_proj.weight", p, l);
        add(es, m, "fcw", fc + F * C, (int64_t)F, (int64_t)C, false, "%s.%d.mlp.up_proj.weight", p,
            l);
        add(es, m, "fcprojw", L * C * F, (int64_t)C, (int64_t)F, false,
            "%s.%d.mlp.down_proj.weight", p, l);
    }
    add(es, m, "lnfw", 0, (int64_t)C, 0, false, "model.norm.weight");
    if (lm_head) add(es, m, "lmw", 0, c->vocab_size, (int64_t)C, false, "lm_head.weight");
}

// The tensors of architecture a's folder for m's configuration, in module order (GPT-2's under
// prefix), then score.weight: the folder's (a ...ForSequenceClassification) or, when only m has
// a scalar head, an optional one.
static Entries entries_build(const Model *m, const Arch *a, const char *gpt2_prefix) {
    Entries es = {0};
    bool lm = a->heads & MODEL_HEAD_LM;
    if (a->kind == ARCH_GPT2)
        gpt2_entries(&es, m, gpt2_prefix);
    else
        llama_entries(&es, m, lm && !m->cfg.tied);
    if (!lm || (m->heads & MODEL_HEAD_SCALAR)) {
        Entry *e = add(&es, m, "headw", 0, 1, m->cfg.d_model, false, "score.weight");
        e->optional = lm;
    }
    return es;
}

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t len) {
    int at = snprintf(buf, len, "(");
    for (int d = 0; d < ndim && at < (int)len; d++)
        at += snprintf(buf + at, len - (size_t)at, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (at < (int)len) snprintf(buf + at, len - (size_t)at, ")");
    return buf;
}

static int by_entry_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// Buffers transformers has saved beside the weights (the causal mask, rotary frequencies).
static bool known_buffer(const char *name, ArchKind kind) {
    if (kind == ARCH_GPT2)
        return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias");
    return ends_with(name, ".rotary_emb.inv_freq");
}

// ---- import ---------------------------------------------------------------------------------

// Every entry present (or optional) with its shape; then every tensor of the folder known.
// *tied_copy: the folder's lm_head.weight that a tied model must find equal to the embedding.
static int check_tensors(const SafeTensors *st, const Entries *es, const Arch *a,
                         const ModelConfig *cfg, const char *dir, const StTensor **tied_copy,
                         char *err, size_t errlen) {
    char want[64], got[64];
    for (int i = 0; i < es->n; i++) {
        const Entry *e = &es->e[i];
        const StTensor *t = st_find(st, e->name);
        if (!t) {
            if (e->optional) continue;
            return lc_error(err, errlen, "%s: tensor %s is missing (%s needs it)", dir, e->name,
                            a->name);
        }
        if (t->ndim != e->ndim || t->shape[0] != e->shape[0] ||
            (e->ndim == 2 && t->shape[1] != e->shape[1]))
            return lc_error(err, errlen, "%s: tensor %s has shape %s; config.json makes it %s", dir,
                            e->name, shape_str(t->ndim, t->shape, got, sizeof(got)),
                            shape_str(e->ndim, e->shape, want, sizeof(want)));
    }
    const char **names = lc_malloc(sizeof(char *) * (size_t)(es->n ? es->n : 1));
    for (int i = 0; i < es->n; i++) names[i] = es->e[i].name;
    qsort(names, (size_t)es->n, sizeof(char *), by_entry_name);
    char list[512] = "";
    int unexpected = 0;
    *tied_copy = NULL;
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor(st, i);
        if (bsearch(&t->name, names, (size_t)es->n, sizeof(char *), by_entry_name) ||
            known_buffer(t->name, a->kind))
            continue;
        if (strcmp(t->name, "lm_head.weight") == 0 && cfg->tied && (a->heads & MODEL_HEAD_LM) &&
            t->ndim == 2 && t->shape[0] == cfg->vocab_size && t->shape[1] == cfg->d_model) {
            *tied_copy = t; // save_pretrained leaves it out; an older writer may not have
            continue;
        }
        if (unexpected++ < 5)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                     unexpected > 1 ? ", " : "", t->name);
    }
    free(names);
    if (unexpected)
        return lc_error(
            err, errlen, "%s: %d unexpected tensor%s for %s with this config.json: %s%s", dir,
            unexpected, unexpected > 1 ? "s" : "", a->name, list, unexpected > 5 ? ", ..." : "");
    return 0;
}

// Reads entry e into the host arena.
static int read_entry(const SafeTensors *st, const Entry *e, float *host, float **tmp,
                      size_t *tmp_n, const char *dir, char *err, size_t errlen) {
    const StTensor *t = st_find(st, e->name);
    float *dst = host + e->off;
    size_t n = (size_t)t->numel;
    if (!e->transpose) {
        if (st_read_f32(st, t, dst, err, errlen)) return -1;
    } else {
        if (*tmp_n < n) {
            *tmp = grow(*tmp, n * sizeof(float));
            *tmp_n = n;
        }
        if (st_read_f32(st, t, *tmp, err, errlen)) return -1;
        size_t rows = (size_t)e->shape[0], cols = (size_t)e->shape[1]; // stored (in, out)
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) dst[j * rows + i] = (*tmp)[i * cols + j];
    }
    for (size_t j = 0; j < n; j++)
        if (!isfinite(dst[j]))
            return lc_error(err, errlen, "%s: tensor %s holds a non-finite value at element %zu",
                            dir, e->name, j);
    return 0;
}

// The folder's lm_head.weight, kept by a tied model only if it is the embedding bit for bit.
static int check_tied_copy(const SafeTensors *st, const StTensor *t, const float *wte,
                           const char *dir, char *err, size_t errlen) {
    float *w = lc_malloc((size_t)t->numel * sizeof(float));
    int rc = st_read_f32(st, t, w, err, errlen);
    if (rc == 0 && memcmp(w, wte, (size_t)t->numel * sizeof(float)) != 0)
        rc = lc_error(err, errlen,
                      "%s: lm_head.weight differs from the token embedding, but config.json ties "
                      "them (tie_word_embeddings)",
                      dir);
    free(w);
    return rc;
}

int hf_read_params(Model *m, const char *dir, const HfConfig *hc, char *err, size_t errlen) {
    const Arch *a = arch_find(hc->architecture);
    LC_ASSERT(a != NULL);
    if (!model_config_equal(&m->cfg, &hc->cfg))
        return lc_error(err, errlen, "%s: the model's configuration is not the folder's", dir);
    SafeTensors *st = st_open(dir, err, errlen);
    if (!st) return -1;
    const char *prefix = ""; // GPT-2's names with "transformer." (GPT2LMHeadModel) or without
    for (int i = 0; i < st_count(st) && a->kind == ARCH_GPT2; i++)
        if (strncmp(st_tensor(st, i)->name, "transformer.", 12) == 0) prefix = "transformer.";
    Entries es = entries_build(m, a, prefix);
    const StTensor *tied_copy = NULL;
    int rc = check_tensors(st, &es, a, &m->cfg, dir, &tied_copy, err, errlen);
    float *host = NULL, *tmp = NULL;
    size_t tmp_n = 0;
    if (rc == 0) {
        host = lc_malloc(m->table.numel * sizeof(float));
        model_params_to_host(m, host);
    }
    for (int i = 0; i < es.n && rc == 0; i++) {
        const Entry *e = &es.e[i];
        if (e->table < 0 || !st_find(st, e->name)) continue; // a head m lacks, or optional
        rc = read_entry(st, e, host, &tmp, &tmp_n, dir, err, errlen);
    }
    if (rc == 0) { // padded vocabulary rows: zero
        size_t V = (size_t)m->cfg.vocab_size, C = (size_t)m->cfg.d_model, pad = (size_t)m->Vp - V;
        const char *vocab[] = {"wte", "lmw"};
        for (int k = 0; k < 2; k++) {
            int i = tensor_table_find(&m->table, vocab[k]);
            if (i >= 0) memset(host + m->table.info[i].offset + V * C, 0, pad * C * sizeof(float));
        }
        int headb = tensor_table_find(&m->table, "headb");
        if (headb >= 0 && st_find(st, "score.weight")) host[m->table.info[headb].offset] = 0.0f;
    }
    if (rc == 0 && tied_copy)
        rc = check_tied_copy(st, tied_copy,
                             host + m->table.info[tensor_table_find(&m->table, "wte")].offset, dir,
                             err, errlen);
    if (rc == 0) {
        model_params_from_host(m, host);
    }
    free(host), free(tmp), free(es.e);
    st_close(st);
    return rc;
}

Model *hf_model_load(const Backend *be, const char *dir, int heads, ModelMode mode, int max_B,
                     int max_T, uint64_t seed, char *err, size_t errlen) {
    HfConfig hc;
    if (hf_read_config(dir, &hc, err, errlen)) return NULL;
    int T = max_T < hc.cfg.max_seq_len ? max_T : hc.cfg.max_seq_len;
    Model *m = model_create(be, hc.cfg, heads ? heads : hc.heads, mode, max_B, T > 0 ? T : 1);
    model_init_weights(m, seed); // a scalar head the folder lacks starts from the seed
    if (hf_read_params(m, dir, &hc, err, errlen)) {
        model_free(m);
        return NULL;
    }
    return m;
}

Model *hf_model_load_any(const Backend *be, const char *path, int heads, ModelMode mode, int max_B,
                         int max_T, uint64_t seed, char *err, size_t errlen) {
    if (hf_is_folder(path))
        return hf_model_load(be, path, heads, mode, max_B, max_T, seed, err, errlen);
    return model_load(be, path, heads, mode, max_B, max_T, seed, err, errlen);
}

int model_read_config_any(const char *path, ModelConfig *cfg, int *heads, char *err,
                          size_t errlen) {
    if (hf_is_folder(path)) {
        HfConfig hc;
        if (hf_read_config(path, &hc, err, errlen)) return -1;
        *cfg = hc.cfg;
        *heads = hc.heads;
        return 0;
    }
    hid_t f = h5_open_verified(path, err, errlen);
    if (f < 0) return -1;
    int rc = model_read_config_h5(f, path, cfg, heads, err, errlen);
    H5Fclose(f);
    return rc;
}

// ---- export ---------------------------------------------------------------------------------

// f as the double of its shortest decimal, so config.json reads 1e-05, not 9.99999974738e-06.
static json_t *json_float(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

static void set(json_t *o, const char *key, json_t *v) {
    json_object_set_new(o, key, v);
}

static json_t *config_json(const Model *m, const Arch *a, const HfExportOptions *o) {
    const ModelConfig *c = &m->cfg;
    const char *dtype = o->dtype == ST_BF16  ? "bfloat16"
                        : o->dtype == ST_F16 ? "float16"
                                             : "float32";
    json_t *j = json_object();
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(a->name));
    set(j, "architectures", archs);
    set(j, "model_type", json_string(a->model_type));
    set(j, "torch_dtype", json_string(dtype));
    set(j, "vocab_size", json_integer(c->vocab_size));
    set(j, "initializer_range", json_real(0.02));
    set(j, "use_cache", json_true());
    if (o->bos_id >= 0) set(j, "bos_token_id", json_integer(o->bos_id));
    if (o->eos_id >= 0) set(j, "eos_token_id", json_integer(o->eos_id));
    if (a->kind == ARCH_GPT2) {
        set(j, "n_embd", json_integer(c->d_model));
        set(j, "n_layer", json_integer(c->n_layer));
        set(j, "n_head", json_integer(c->n_head));
        set(j, "n_positions", json_integer(c->max_seq_len));
        set(j, "n_ctx", json_integer(c->max_seq_len));
        set(j, "n_inner", c->d_ff == 4 * c->d_model ? json_null() : json_integer(c->d_ff));
        set(j, "layer_norm_epsilon", json_float(c->norm_eps));
        set(j, "activation_function", json_string("gelu_new"));
        set(j, "attn_pdrop", json_real(0.0));
        set(j, "embd_pdrop", json_real(0.0));
        set(j, "resid_pdrop", json_real(0.0));
        set(j, "scale_attn_weights", json_true());
        set(j, "scale_attn_by_inverse_layer_idx", json_false());
        set(j, "reorder_and_upcast_attn", json_false());
        set(j, "tie_word_embeddings", json_true());
    } else {
        set(j, "hidden_size", json_integer(c->d_model));
        set(j, "intermediate_size", json_integer(c->d_ff));
        set(j, "num_hidden_layers", json_integer(c->n_layer));
        set(j, "num_attention_heads", json_integer(c->n_head));
        set(j, "num_key_value_heads", json_integer(c->n_kv_head));
        set(j, "max_position_embeddings", json_integer(c->max_seq_len));
        set(j, "rms_norm_eps", json_float(c->norm_eps));
        set(j, "rope_theta", json_float(c->rope_theta));
        set(j, "rope_scaling", json_null());
        set(j, "hidden_act", json_string("silu"));
        set(j, "attention_dropout", json_real(0.0));
        set(j, "tie_word_embeddings", json_boolean(c->tied || !(a->heads & MODEL_HEAD_LM)));
        if (a->kind == ARCH_QWEN2) {
            set(j, "use_sliding_window", json_false());
            set(j, "sliding_window", json_null());
            set(j, "max_window_layers", json_integer(c->n_layer));
        } else {
            set(j, "head_dim", json_integer(m->hs));
            set(j, "attention_bias", json_false());
            set(j, "mlp_bias", json_false());
            set(j, "pretraining_tp", json_integer(1));
        }
    }
    if (a->heads == MODEL_HEAD_SCALAR) {
        json_t *id2label = json_object(), *label2id = json_object();
        set(id2label, "0", json_string("LABEL_0"));
        set(label2id, "LABEL_0", json_integer(0));
        set(j, "id2label", id2label);
        set(j, "label2id", label2id);
    }
    return j;
}

// Writes j as dir/name, indented and with sorted keys like transformers' files.
static int json_write(json_t *j, const char *dir, const char *name, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    if (!text) return lc_error(err, errlen, "%s: cannot encode the JSON", path);
    size_t n = strlen(text);
    text = grow(text, n + 2);
    text[n] = '\n', text[n + 1] = 0;
    int rc = fs_write_atomic(path, text, n + 1, err, errlen);
    free(text);
    return rc;
}

static void note_add(char *note, size_t len, const char *fmt, ...) {
    if (!note || !len) return;
    size_t at = strlen(note);
    if (at && at + 2 < len) strcat(note, "; "), at += 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note + at, len - at, fmt, ap);
    va_end(ap);
}

// What the export leaves out of m, into note.
static void export_notes(const Model *m, const Arch *a, const float *host, char *note,
                         size_t notelen) {
    if (note && notelen) note[0] = 0;
    if ((m->heads & MODEL_HEAD_SCALAR) && (a->heads & MODEL_HEAD_LM))
        note_add(note, notelen,
                 "the scalar head (headw, headb) is not exported: %s has no place for it", a->name);
    if (a->heads == MODEL_HEAD_SCALAR) {
        float b = host[m->table.info[tensor_table_find(&m->table, "headb")].offset];
        if (b != 0.0f)
            note_add(note, notelen,
                     "the scalar head's bias headb = %.9g is left out (score.weight has no bias): "
                     "scores shift by that constant, their differences stay",
                     (double)b);
        if (!m->cfg.tied)
            note_add(note, notelen,
                     "the untied output layer lmw is left out: %s has no language-model head",
                     a->name);
    }
}

int hf_export(const Model *m, const char *dir, const HfExportOptions *o, char *note, size_t notelen,
              char *err, size_t errlen) {
    if (m->lora.rank > 0) // the folder has no place for them: they would be silently lost
        return lc_error(err, errlen,
                        "%s: the model has LoRA adapters (rank %d), which a Hugging Face model "
                        "folder cannot hold: merge them into the weights first (export "
                        "--merge-lora) or write them as a PEFT adapter (export --format peft)",
                        dir, m->lora.rank);
    const Arch *a = arch_of_model(m);
    Entries es = entries_build(m, a, "transformer.");
    float *host = lc_malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    StWriteTensor *ws = lc_calloc((size_t)es.n, sizeof(StWriteTensor));
    float **owned = lc_calloc((size_t)es.n, sizeof(float *));
    int n = 0;
    for (int i = 0; i < es.n; i++) {
        const Entry *e = &es.e[i];
        if (e->optional) continue;
        LC_ASSERT(e->table >= 0);
        StWriteTensor *w = &ws[n];
        w->name = e->name;
        w->ndim = e->ndim;
        w->shape[0] = e->shape[0], w->shape[1] = e->shape[1];
        w->data = host + e->off;
        if (e->transpose) { // the arena's (out, in) back to Conv1D's (in, out)
            size_t rows = (size_t)e->shape[0], cols = (size_t)e->shape[1];
            float *t = owned[n] = lc_malloc(rows * cols * sizeof(float));
            for (size_t r = 0; r < rows; r++)
                for (size_t k = 0; k < cols; k++) t[r * cols + k] = host[e->off + k * rows + r];
            w->data = t;
        }
        n++;
    }
    int rc = st_write(dir, ws, n, o->dtype, o->shard_bytes, err, errlen);
    if (rc == 0) {
        json_t *j = config_json(m, a, o);
        rc = json_write(j, dir, "config.json", err, errlen);
        json_decref(j);
    }
    if (rc == 0 && (a->heads & MODEL_HEAD_LM)) {
        json_t *g = json_object();
        set(g, "_from_model_config", json_true());
        if (o->bos_id >= 0) set(g, "bos_token_id", json_integer(o->bos_id));
        if (o->eos_id >= 0) set(g, "eos_token_id", json_integer(o->eos_id));
        rc = json_write(g, dir, "generation_config.json", err, errlen);
        json_decref(g);
    }
    if (rc == 0) export_notes(m, a, host, note, notelen);
    for (int i = 0; i < n; i++) free(owned[i]);
    free(owned), free(ws), free(host), free(es.e);
    return rc;
}
