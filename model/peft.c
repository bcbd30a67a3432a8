// model/peft.c: LoRA adapters <-> Hugging Face PEFT adapter folders. A PEFT LoRA module on a
// linear layer W (out, in) holds lora_A (r, in) and lora_B (out, r) and adds
// (alpha / r) * x A^T B^T, as layercake's adapters do; the names follow the Hugging Face
// architecture the base exports as (model/hf.c). GPT-2's q, k and v share the fused Conv1D
// c_attn, so they travel as one block-structured module.
#include "model/peft.h"
#include "common/check.h"
#include "common/error.h"
#include "common/fs.h"
#include "model/hf.h"
#include "model/model-impl.h"
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX      "base_model.model."
#define KIND_C_ATTN LORA_TARGETS // GPT-2's fused q | k | v
enum { N_KINDS = LORA_TARGETS + 1 };

static bool is_gpt2(const Model *m) {
    return m->cfg.family == MODEL_FAMILY_GPT2;
}

// Layer l's module name for kind (a LoraTarget or KIND_C_ATTN) in m's Hugging Face model.
static void module_name(const Model *m, int kind, int l, char *buf, size_t len) {
    static const char *const LLAMA[LORA_TARGETS] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    if (!is_gpt2(m)) {
        snprintf(buf, len, "model.layers.%d.%s", l, kind < LORA_TARGETS ? LLAMA[kind] : "?");
        return;
    }
    const char *s = kind == LORA_O      ? "attn.c_proj"
                    : kind == LORA_UP   ? "mlp.c_fc"
                    : kind == LORA_DOWN ? "mlp.c_proj"
                                        : "attn.c_attn";
    snprintf(buf, len, "transformer.h.%d.%s", l, s);
}

// target_modules' entry for kind: the last one or two name parts, enough to tell GPT-2's two
// c_proj apart (PEFT matches a module whose name ends with "." + entry).
static const char *module_key(const Model *m, int kind) {
    static const char *const LLAMA[LORA_TARGETS] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"};
    if (!is_gpt2(m)) return kind < LORA_TARGETS ? LLAMA[kind] : "?";
    return kind == LORA_O      ? "attn.c_proj"
           : kind == LORA_UP   ? "mlp.c_fc"
           : kind == LORA_DOWN ? "mlp.c_proj"
                               : "c_attn";
}

static const unsigned QKV = (1u << LORA_Q) | (1u << LORA_K) | (1u << LORA_V);

static float *table_at(const Model *m, float *host, const char *name) {
    int i = tensor_table_find(&m->table, name);
    LC_ASSERT(i >= 0);
    return host + m->table.info[i].offset;
}

static void lora_names(LoraTarget t, char *a, char *b, size_t len) {
    snprintf(a, len, "lora_%s_a", lora_target_name(t));
    snprintf(b, len, "lora_%s_b", lora_target_name(t));
}

// alpha as JSON: an integer when it is one (PEFT's lora_alpha is an int), else a real.
static json_t *json_alpha(double a) {
    if (a == floor(a) && fabs(a) < 1e15) return json_integer((json_int_t)a);
    return json_real(a);
}

static int write_json(json_t *j, const char *path, char *err, size_t errlen) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    if (!text) return lc_error(err, errlen, "%s: cannot encode the JSON", path);
    size_t n = strlen(text);
    char *buf = lc_malloc(n + 2);
    memcpy(buf, text, n);
    buf[n] = '\n', buf[n + 1] = 0;
    free(text);
    int rc = fs_write_atomic(path, buf, n + 1, err, errlen);
    free(buf);
    return rc;
}

// ---- export -----------------------------------------------------------------------------------

typedef struct {
    char name[160];
    int64_t shape[2];
    float *data;
    bool owned;
} Out;

static json_t *config_json(const Model *m, int cattn_n) {
    const LoraConfig *c = &m->lora;
    json_t *j = json_object(), *targets = json_array();
    json_t *rank_pattern = json_object(), *alpha_pattern = json_object();
    bool cattn = false;
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (!(c->targets >> t & 1u)) continue;
        bool fused = is_gpt2(m) && (QKV >> t & 1u);
        if (fused && cattn) continue;
        cattn |= fused;
        json_array_append_new(targets, json_string(module_key(m, t)));
    }
    if (cattn && cattn_n > 1) { // rank r*n, alpha alpha*n: the scale alpha / r stays
        json_object_set_new(rank_pattern, "c_attn", json_integer((json_int_t)c->rank * cattn_n));
        json_object_set_new(alpha_pattern, "c_attn", json_alpha((double)c->alpha * cattn_n));
    }
    json_object_set_new(j, "peft_type", json_string("LORA"));
    json_object_set_new(j, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(j, "r", json_integer(c->rank));
    json_object_set_new(j, "lora_alpha", json_alpha((double)c->alpha));
    json_object_set_new(j, "target_modules", targets);
    json_object_set_new(j, "lora_dropout", json_real(0.0));
    json_object_set_new(j, "bias", json_string("none"));
    json_object_set_new(j, "fan_in_fan_out", json_boolean(is_gpt2(m)));
    json_object_set_new(j, "base_model_name_or_path", json_string(""));
    json_object_set_new(j, "inference_mode", json_true());
    json_object_set_new(j, "init_lora_weights",
                        c->init == LORA_INIT_GAUSSIAN ? json_string("gaussian") : json_true());
    json_object_set_new(j, "rank_pattern", rank_pattern);
    json_object_set_new(j, "alpha_pattern", alpha_pattern);
    json_object_set_new(j, "use_rslora", json_false());
    json_object_set_new(j, "use_dora", json_false());
    json_object_set_new(j, "modules_to_save", json_null());
    json_object_set_new(j, "layers_to_transform", json_null());
    json_object_set_new(j, "layers_pattern", json_null());
    json_object_set_new(j, "revision", json_null());
    return j;
}

// st_write names its file model.safetensors: write into a fresh subfolder, then move the file.
static int write_tensors(const char *dir, const Out *o, int n, StDtype dtype, char *err,
                         size_t errlen) {
    char tmp[4096], from[4200], to[4200];
    snprintf(tmp, sizeof(tmp), "%s/.adapter_model.tmp", dir);
    snprintf(from, sizeof(from), "%s/model.safetensors", tmp);
    snprintf(to, sizeof(to), "%s/adapter_model.safetensors", dir);
    StWriteTensor *ws = lc_calloc((size_t)n, sizeof(StWriteTensor));
    for (int i = 0; i < n; i++)
        ws[i] = (StWriteTensor){.name = o[i].name,
                                .ndim = 2,
                                .shape = {o[i].shape[0], o[i].shape[1]},
                                .data = o[i].data};
    int rc = st_write(tmp, ws, n, dtype, 0, err, errlen);
    free(ws);
    if (rc == 0 && rename(from, to) != 0)
        rc = lc_error(err, errlen, "%s: cannot write: %s", to, fs_errno_text(errno));
    unlink(from);
    rmdir(tmp);
    return rc;
}

int peft_export(const Model *m, const char *dir, StDtype dtype, char *note, size_t notelen,
                char *err, size_t errlen) {
    if (note && notelen) note[0] = 0;
    if (m->lora.rank == 0)
        return lc_error(err, errlen, "%s: the model has no LoRA adapters to export", dir);
    if (!(m->heads & MODEL_HEAD_LM))
        return lc_error(err, errlen,
                        "%s: the model has only a scalar head: a SEQ_CLS adapter would carry "
                        "the head in modules_to_save, which layercake does not write; export "
                        "the merged model (--format hf --merge-lora) instead",
                        dir);
    if (m->heads & MODEL_HEAD_SCALAR)
        snprintf(note, notelen,
                 "the scalar head (headw, headb) is not exported: a CAUSAL_LM adapter has no "
                 "place for it");
    if (fs_mkdirs(dir) != 0)
        return lc_error(err, errlen, "%s: cannot create the folder: %s", dir, fs_errno_text(errno));
    int L = m->cfg.n_layer;
    size_t r = (size_t)m->lora.rank;
    float *host = lc_malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    Out *o = lc_calloc((size_t)L * LORA_TARGETS * 2, sizeof(Out));
    int n = 0, cattn_n = 0;
    unsigned fused = is_gpt2(m) ? m->lora.targets & QKV : 0;
    for (int t = 0; t < LORA_TARGETS; t++) cattn_n += fused >> t & 1u;
    for (int l = 0; l < L; l++) {
        char mod[128], an[32], bn[32];
        for (int t = 0; t < LORA_TARGETS; t++) {
            if (!(m->lora.targets >> t & 1u) || (fused >> t & 1u)) continue;
            LoraSite s;
            model_lora_site(m, (LoraTarget)t, &s);
            lora_names((LoraTarget)t, an, bn, sizeof(an));
            module_name(m, t, l, mod, sizeof(mod));
            Out *a = &o[n++], *b = &o[n++];
            snprintf(a->name, sizeof(a->name), PREFIX "%s.lora_A.weight", mod);
            snprintf(b->name, sizeof(b->name), PREFIX "%s.lora_B.weight", mod);
            a->shape[0] = (int64_t)r, a->shape[1] = s.in;
            b->shape[0] = s.OS, b->shape[1] = (int64_t)r;
            a->data = table_at(m, host, an) + (size_t)l * r * (size_t)s.in;
            b->data = table_at(m, host, bn) + (size_t)l * (size_t)s.OS * r;
        }
        if (!fused) continue;
        // c_attn: A stacks the adapted targets' A's; B (QKV, n*r) puts each target's B in its
        // row block and its own column block, zeros elsewhere
        size_t C = (size_t)m->cfg.d_model, Q = (size_t)m->qkv_dim, nr = (size_t)cattn_n * r;
        module_name(m, KIND_C_ATTN, l, mod, sizeof(mod));
        Out *a = &o[n++], *b = &o[n++];
        snprintf(a->name, sizeof(a->name), PREFIX "%s.lora_A.weight", mod);
        snprintf(b->name, sizeof(b->name), PREFIX "%s.lora_B.weight", mod);
        a->shape[0] = (int64_t)nr, a->shape[1] = (int64_t)C;
        b->shape[0] = (int64_t)Q, b->shape[1] = (int64_t)nr;
        a->data = lc_calloc(nr * C, sizeof(float));
        b->data = lc_calloc(Q * nr, sizeof(float));
        a->owned = b->owned = true;
        int j = 0;
        for (int t = 0; t < LORA_TARGETS; t++) {
            if (!(fused >> t & 1u)) continue;
            LoraSite s;
            model_lora_site(m, (LoraTarget)t, &s);
            lora_names((LoraTarget)t, an, bn, sizeof(an));
            const float *ta = table_at(m, host, an) + (size_t)l * r * C;
            const float *tb = table_at(m, host, bn) + (size_t)l * (size_t)s.OS * r;
            memcpy(a->data + (size_t)j * r * C, ta, r * C * sizeof(float));
            for (size_t i = 0; i < (size_t)s.OS; i++)
                memcpy(b->data + ((size_t)s.o0 + i) * nr + (size_t)j * r, tb + i * r,
                       r * sizeof(float));
            j++;
        }
    }
    int rc = write_tensors(dir, o, n, dtype, err, errlen);
    if (rc == 0) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
        json_t *j = config_json(m, cattn_n);
        rc = write_json(j, path, err, errlen);
        json_decref(j);
    }
    for (int i = 0; i < n; i++)
        if (o[i].owned) free(o[i].data);
    free(o), free(host);
    return rc;
}

// ---- import -----------------------------------------------------------------------------------

typedef struct {
    const StTensor *a, *b;
    float *ad, *bd; // their data, read before the model changes
    int rank;
    double scale; // alpha_m / r_m
} Mod;

// Parses a module name of m's architecture into layer and kind. 0, or -1 if unknown.
static int module_parse(const Model *m, const char *s, int *layer, int *kind) {
    int l, at = 0;
    char rest[64];
    const char *pre = is_gpt2(m) ? "transformer.h.%d.%n" : "model.layers.%d.%n";
    if (sscanf(s, pre, &l, &at) != 1 || at == 0 || l < 0 || strlen(s + at) >= sizeof(rest))
        return -1;
    snprintf(rest, sizeof(rest), "%s", s + at);
    for (int k = 0; k < N_KINDS; k++) {
        if (k < LORA_TARGETS && is_gpt2(m) && ((QKV >> k & 1u) || k == LORA_GATE)) continue;
        if (k == KIND_C_ATTN && !is_gpt2(m)) continue;
        char want[128];
        module_name(m, k, l, want, sizeof(want));
        if (strcmp(want, s) == 0) {
            *layer = l, *kind = k;
            return 0;
        }
    }
    return -1;
}

// The value pattern (rank_pattern or alpha_pattern) gives module name, as PEFT matches its keys:
// the first key k with re.match(r"(.*\.)?(k)$", name). NULL if none matches.
static json_t *pattern_get(json_t *pattern, const char *name) {
    if (!json_is_object(pattern)) return NULL;
    const char *key;
    json_t *v;
    json_object_foreach(pattern, key, v) {
        size_t n = strlen(key) + 16;
        char *re = lc_malloc(n);
        snprintf(re, n, "^(.*\\.)?(%s)$", key);
        regex_t rx;
        bool hit = false;
        if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) == 0) {
            hit = regexec(&rx, name, 0, NULL, 0) == 0;
            regfree(&rx);
        }
        free(re);
        if (hit) return v;
    }
    return NULL;
}

// Refusals of adapter_config.json's keys; 0 when the configuration is one layercake computes.
static int config_check(json_t *j, const char *path, char *err, size_t errlen) {
    json_t *v = json_object_get(j, "peft_type");
    if (v && !(json_is_string(v) && strcmp(json_string_value(v), "LORA") == 0))
        return lc_error(err, errlen, "%s: key peft_type: only LORA adapters are read", path);
    static const char *const FLAGS[] = {"use_dora", "use_rslora", "lora_bias"};
    static const char *const WHY[] = {"DoRA adapters are not supported",
                                      "rank-stabilised LoRA (scale alpha/sqrt(r)) is not supported",
                                      "a bias on lora_B is not supported"};
    for (int i = 0; i < 3; i++)
        if (json_is_true(json_object_get(j, FLAGS[i])))
            return lc_error(err, errlen, "%s: key %s: true: %s", path, FLAGS[i], WHY[i]);
    v = json_object_get(j, "bias");
    if (v && !(json_is_string(v) && strcmp(json_string_value(v), "none") == 0))
        return lc_error(err, errlen,
                        "%s: key bias: only \"none\" is supported (adapters without biases)", path);
    static const char *const NULLS[] = {"modules_to_save", "layers_to_transform",
                                        "layer_replication"};
    for (int i = 0; i < 3; i++) {
        v = json_object_get(j, NULLS[i]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0))
            return lc_error(err, errlen, "%s: key %s: must be null (not supported)", path,
                            NULLS[i]);
    }
    if (!json_is_integer(json_object_get(j, "r")) ||
        json_integer_value(json_object_get(j, "r")) < 1)
        return lc_error(err, errlen, "%s: key r: missing or not a positive integer", path);
    if (!json_is_number(json_object_get(j, "lora_alpha")))
        return lc_error(err, errlen, "%s: key lora_alpha: missing or not a number", path);
    return 0;
}

// Reads the tensors of the adapter into mods (indexed layer * N_KINDS + kind) and checks them.
static int collect(const Model *m, const SafeTensors *st, json_t *j, const char *path,
                   const char *cpath, Mod *mods, char *err, size_t errlen) {
    int L = m->cfg.n_layer;
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor(st, i);
        size_t n = strlen(t->name), pl = strlen(PREFIX), sl = strlen(".lora_A.weight");
        bool is_a = n > pl + sl && strcmp(t->name + n - sl, ".lora_A.weight") == 0;
        bool is_b = n > pl + sl && strcmp(t->name + n - sl, ".lora_B.weight") == 0;
        if (!(is_a || is_b) || strncmp(t->name, PREFIX, pl) != 0)
            return lc_error(err, errlen,
                            "%s: tensor %s: not a LoRA weight (base_model.model.<module>."
                            "lora_A.weight or .lora_B.weight)",
                            path, t->name);
        char mod[256];
        snprintf(mod, sizeof(mod), "%.*s", (int)(n - pl - sl), t->name + pl);
        int l, k;
        if (module_parse(m, mod, &l, &k) != 0)
            return lc_error(err, errlen, "%s: tensor %s: unknown module %s for %s", path, t->name,
                            mod, hf_architecture(m));
        if (l >= L)
            return lc_error(err, errlen, "%s: tensor %s: layer %d, the base has %d layers", path,
                            t->name, l, L);
        Mod *md = &mods[l * N_KINDS + k];
        if (is_a)
            md->a = t;
        else
            md->b = t;
    }
    double r0 = (double)json_integer_value(json_object_get(j, "r"));
    double alpha0 = json_number_value(json_object_get(j, "lora_alpha"));
    json_t *rp = json_object_get(j, "rank_pattern"), *ap = json_object_get(j, "alpha_pattern");
    for (int l = 0; l < L; l++)
        for (int k = 0; k < N_KINDS; k++) {
            Mod *md = &mods[l * N_KINDS + k];
            if (!md->a && !md->b) continue;
            char mod[128];
            module_name(m, k, l, mod, sizeof(mod));
            if (!md->b || !md->a)
                return lc_error(err, errlen, "%s: module %s has %s but no %s", path, mod,
                                md->a ? "lora_A" : "lora_B", md->a ? "lora_B" : "lora_A");
            int in, out;
            if (k == KIND_C_ATTN) {
                in = m->cfg.d_model, out = m->qkv_dim;
            } else {
                LoraSite s;
                model_lora_site(m, (LoraTarget)k, &s);
                in = s.in, out = s.OS;
            }
            const StTensor *a = md->a, *b = md->b;
            if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != in || b->shape[0] != out ||
                a->shape[0] < 1 || b->shape[1] != a->shape[0])
                return lc_error(err, errlen,
                                "%s: module %s: lora_A (%lld, %lld) and lora_B (%lld, %lld) do "
                                "not fit the base: want (r, %d) and (%d, r)",
                                path, mod, (long long)a->shape[0],
                                (long long)(a->ndim > 1 ? a->shape[1] : 0), (long long)b->shape[0],
                                (long long)(b->ndim > 1 ? b->shape[1] : 0), in, out);
            md->rank = (int)a->shape[0];
            json_t *rv = pattern_get(rp, mod), *av = pattern_get(ap, mod);
            double r = rv ? json_number_value(rv) : r0;
            double alpha = av ? json_number_value(av) : alpha0;
            if (r != md->rank)
                return lc_error(err, errlen,
                                "%s: key %s: says rank %g for module %s; its lora_A in %s has %d",
                                cpath, rv ? "rank_pattern" : "r", r, mod, path, md->rank);
            md->scale = alpha / r;
        }
    return 0;
}

int peft_apply(Model *m, const char *dir, char *err, size_t errlen) {
    char cpath[4200], spath[4200];
    snprintf(cpath, sizeof(cpath), "%s/adapter_config.json", dir);
    snprintf(spath, sizeof(spath), "%s/adapter_model.safetensors", dir);
    if (m->lora.rank > 0)
        return lc_error(err, errlen, "%s: the base model already has LoRA adapters", dir);
    json_error_t je;
    json_t *j = json_load_file(cpath, 0, &je);
    if (!j) return lc_error(err, errlen, "%s: %s (line %d)", cpath, je.text, je.line);
    if (!json_is_object(j) || config_check(j, cpath, err, errlen) != 0) {
        if (!json_is_object(j)) lc_error(err, errlen, "%s: not a JSON object", cpath);
        json_decref(j);
        return -1;
    }
    struct stat sb;
    char bin[4200];
    snprintf(bin, sizeof(bin), "%s/adapter_model.bin", dir);
    if (stat(spath, &sb) != 0 && stat(bin, &sb) == 0) {
        json_decref(j);
        return lc_error(err, errlen, "%s: only adapter_model.safetensors is read (not pickles)",
                        bin);
    }
    SafeTensors *st = st_open(spath, err, errlen);
    if (!st) {
        json_decref(j);
        return -1;
    }
    int L = m->cfg.n_layer;
    Mod *mods = lc_calloc((size_t)L * N_KINDS, sizeof(Mod));
    int rc = collect(m, st, j, spath, cpath, mods, err, errlen);
    unsigned targets = 0;
    int R = 0;
    for (int i = 0; rc == 0 && i < L * N_KINDS; i++) {
        if (!mods[i].a) continue;
        int k = i % N_KINDS;
        targets |= k == KIND_C_ATTN ? QKV : 1u << k;
        if (mods[i].rank > R) R = mods[i].rank;
    }
    if (rc == 0 && !targets) rc = lc_error(err, errlen, "%s: no LoRA tensors", spath);
    for (int i = 0; rc == 0 && i < L * N_KINDS; i++) {
        Mod *md = &mods[i];
        if (!md->a) continue;
        md->ad = lc_malloc((size_t)md->a->numel * sizeof(float));
        md->bd = lc_malloc((size_t)md->b->numel * sizeof(float));
        rc = st_read_f32(st, md->a, md->ad, err, errlen);
        if (rc == 0) rc = st_read_f32(st, md->b, md->bd, err, errlen);
    }
    float *host = NULL;
    if (rc == 0) {
        // the model's scale alpha / R is the default modules' alpha0 / r0
        double r0 = (double)json_integer_value(json_object_get(j, "r"));
        double alpha0 = json_number_value(json_object_get(j, "lora_alpha"));
        json_t *init = json_object_get(j, "init_lora_weights");
        LoraConfig c = {.rank = R,
                        .alpha = (float)(alpha0 * R / r0),
                        .targets = targets,
                        .init =
                            json_is_string(init) && strcmp(json_string_value(init), "gaussian") == 0
                                ? LORA_INIT_GAUSSIAN
                                : LORA_INIT_KAIMING};
        if (!(c.alpha > 0.0f))
            rc = lc_error(err, errlen, "%s: key lora_alpha: must be > 0", cpath);
        else if (model_lora_attach(m, &c, 0, err, errlen) != 0)
            rc = -1;
    }
    if (rc == 0) {
        host = lc_malloc(m->table.numel * sizeof(float));
        model_params_to_host(m, host);
        double scale = (double)model_lora_scale(m);
        for (int t = 0; t < LORA_TARGETS; t++) { // zero: layers without a module stay the base
            if (!(targets >> t & 1u)) continue;
            char an[32], bn[32];
            lora_names((LoraTarget)t, an, bn, sizeof(an));
            for (int w = 0; w < 2; w++) {
                const TensorInfo *ti = &m->table.info[tensor_table_find(&m->table, w ? bn : an)];
                memset(host + ti->offset, 0, ti->numel * sizeof(float));
            }
        }
        for (int i = 0; i < L * N_KINDS; i++) {
            const Mod *md = &mods[i];
            if (!md->a) continue;
            int l = i / N_KINDS, k = i % N_KINDS;
            size_t ra = (size_t)md->rank, in = (size_t)md->a->shape[1];
            const float *a = md->ad, *b = md->bd;
            float f = (float)(md->scale / scale); // exact: 1 for the default modules
            for (int t = 0; t < LORA_TARGETS; t++) {
                if (k == KIND_C_ATTN ? !(QKV >> t & 1u) : t != k) continue;
                LoraSite s;
                model_lora_site(m, (LoraTarget)t, &s);
                size_t o0 = k == KIND_C_ATTN ? (size_t)s.o0 : 0, R_ = (size_t)R;
                char an[32], bn[32];
                lora_names((LoraTarget)t, an, bn, sizeof(an));
                float *ta = table_at(m, host, an) + (size_t)l * R_ * in;
                float *tb = table_at(m, host, bn) + (size_t)l * (size_t)s.OS * R_;
                memcpy(ta, a, ra * in * sizeof(float));
                for (size_t o = 0; o < (size_t)s.OS; o++)
                    for (size_t q = 0; q < ra; q++)
                        tb[o * R_ + q] =
                            f == 1.0f ? b[(o0 + o) * ra + q] : f * b[(o0 + o) * ra + q];
            }
        }
        model_params_from_host(m, host);
    }
    for (int i = 0; i < L * N_KINDS; i++) free(mods[i].ad), free(mods[i].bd);
    free(host), free(mods);
    st_close(st);
    json_decref(j);
    return rc;
}
