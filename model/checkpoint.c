// model/checkpoint.c: model weights in HDF5.
#include "model/checkpoint.h"
#include "common/check.h"
#include "common/error.h"
#include "common/h5.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

// The configuration as root attributes: integers, then the two floats and two flags.
static const char *const INT_ATTRS[] = {"n_layer", "n_head",     "n_kv_head",  "d_model",
                                        "d_ff",    "vocab_size", "max_seq_len"};
enum { N_INT_ATTRS = sizeof(INT_ATTRS) / sizeof(INT_ATTRS[0]) };

static int *int_field(ModelConfig *c, int i) {
    int *f[N_INT_ATTRS] = {&c->n_layer, &c->n_head,     &c->n_kv_head,  &c->d_model,
                           &c->d_ff,    &c->vocab_size, &c->max_seq_len};
    return f[i];
}

static int write_config(hid_t file, const ModelConfig *cfg, int heads) {
    ModelConfig c = *cfg;
    int rc = h5_write_attr_str(file, "format", CHECKPOINT_FORMAT);
    rc |= h5_write_attr_i64(file, "version", CHECKPOINT_VERSION);
    rc |= h5_write_attr_str(file, "family", model_family_name(c.family));
    for (int i = 0; i < N_INT_ATTRS; i++)
        rc |= h5_write_attr_i64(file, INT_ATTRS[i], *int_field(&c, i));
    rc |= h5_write_attr_f64(file, "norm_eps", c.norm_eps);
    rc |= h5_write_attr_f64(file, "rope_theta", c.rope_theta);
    rc |= h5_write_attr_i64(file, "qkv_bias", c.qkv_bias);
    rc |= h5_write_attr_i64(file, "tied", c.tied);
    rc |= h5_write_attr_i64(file, "heads", heads);
    return rc;
}

// The adapters as root attributes: lora_rank, lora_alpha, lora_targets ("q,v"), lora_init.
static int write_lora(hid_t file, const LoraConfig *c) {
    if (c->rank == 0) return 0;
    char targets[64] = "";
    for (int t = 0; t < LORA_TARGETS; t++)
        if (c->targets >> t & 1u)
            snprintf(targets + strlen(targets), sizeof(targets) - strlen(targets), "%s%s",
                     targets[0] ? "," : "", lora_target_name((LoraTarget)t));
    int rc = h5_write_attr_i64(file, "lora_rank", c->rank);
    rc |= h5_write_attr_f64(file, "lora_alpha", c->alpha);
    rc |= h5_write_attr_str(file, "lora_targets", targets);
    rc |= h5_write_attr_str(file, "lora_init",
                            c->init == LORA_INIT_GAUSSIAN ? "gaussian" : "kaiming");
    return rc;
}

int model_read_lora_h5(hid_t file, const char *path, LoraConfig *c, char *err, size_t errlen) {
    *c = (LoraConfig){0};
    if (H5Aexists(file, "lora_rank") <= 0) return 0;
    int64_t rank;
    double alpha;
    char targets[128] = "", init[32] = "";
    if (h5_read_attr_i64(file, "lora_rank", &rank) ||
        h5_read_attr_f64(file, "lora_alpha", &alpha) ||
        h5_read_attr_str(file, "lora_targets", targets, sizeof(targets)) ||
        h5_read_attr_str(file, "lora_init", init, sizeof(init)))
        return lc_error(err, errlen,
                        "%s: LoRA attributes lora_rank, lora_alpha, lora_targets and lora_init "
                        "must all be there",
                        path);
    c->rank = rank > 0 && rank <= INT32_MAX ? (int)rank : -1;
    c->alpha = (float)alpha;
    c->init = strcmp(init, "gaussian") == 0 ? LORA_INIT_GAUSSIAN : LORA_INIT_KAIMING;
    char bad[64];
    if (lora_targets_parse(targets, &c->targets, bad, sizeof(bad)) != 0)
        return lc_error(err, errlen, "%s: attribute lora_targets: unknown projection '%s'", path,
                        bad);
    if (c->rank < 1 || !(c->alpha > 0.0f) || c->targets == 0)
        return lc_error(err, errlen,
                        "%s: LoRA attributes: lora_rank must be >= 1, lora_alpha > 0 and "
                        "lora_targets not empty",
                        path);
    return 0;
}

int model_write_h5(const Model *m, hid_t file, char *err, size_t errlen) {
    int rc = write_config(file, &m->cfg, m->heads) | write_lora(file, &m->lora);
    if (rc) return lc_error(err, errlen, "writing model attributes failed");
    hid_t g = H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return lc_error(err, errlen, "creating group /params failed");
    float *host = lc_malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    for (int i = 0; i < m->table.count && !rc; i++) {
        const TensorInfo *ti = &m->table.info[i];
        hsize_t dims[TENSOR_MAX_DIMS];
        for (int d = 0; d < ti->ndim; d++) dims[d] = (hsize_t)ti->shape[d];
        if (h5_write_f32(g, ti->name, ti->ndim, dims, host + ti->offset))
            rc = lc_error(err, errlen, "writing params/%s failed", ti->name);
    }
    free(host);
    H5Gclose(g);
    return rc ? -1 : 0;
}

// Version 1 files (GPT-2 only) lack everything after max_seq_len: the family's defaults apply.
static int read_config_v2(hid_t file, const char *path, ModelConfig *c, char *err, size_t errlen) {
    double eps, theta;
    int64_t qkv_bias, tied;
    if (h5_read_attr_f64(file, "norm_eps", &eps) || h5_read_attr_f64(file, "rope_theta", &theta) ||
        h5_read_attr_i64(file, "qkv_bias", &qkv_bias) || h5_read_attr_i64(file, "tied", &tied))
        return lc_error(err, errlen, "%s: missing attribute norm_eps, rope_theta, qkv_bias or tied",
                        path);
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->qkv_bias = qkv_bias != 0;
    c->tied = tied != 0;
    return 0;
}

int model_read_config_h5(hid_t file, const char *path, ModelConfig *cfg, int *heads, char *err,
                         size_t errlen) {
    char fmt[64] = "", family[32] = "";
    int64_t version = 0, v;
    if (h5_read_attr_str(file, "format", fmt, sizeof(fmt)) || strcmp(fmt, CHECKPOINT_FORMAT) != 0)
        return lc_error(err, errlen, "%s: not a layercake checkpoint (attribute 'format' is '%s')",
                        path, fmt);
    if (h5_read_attr_i64(file, "version", &version) || version < 1 || version > CHECKPOINT_VERSION)
        return lc_error(err, errlen,
                        "%s: checkpoint version %lld, this layercake reads versions 1 to %d", path,
                        (long long)version, CHECKPOINT_VERSION);
    ModelFamily fam;
    if (h5_read_attr_str(file, "family", family, sizeof(family)) ||
        model_family_parse(family, &fam) != 0 || (version == 1 && fam != MODEL_FAMILY_GPT2))
        return lc_error(err, errlen, "%s: model family '%s' is not supported (gpt2, llama)", path,
                        family);
    int64_t d[2] = {0, 0};
    if (h5_read_attr_i64(file, "n_head", &d[0]) || h5_read_attr_i64(file, "d_model", &d[1]))
        return lc_error(err, errlen, "%s: missing attribute n_head or d_model", path);
    *cfg = model_config_default(fam, 1, (int)d[0], (int)d[1], 2, 1);
    for (int i = 0; i < N_INT_ATTRS; i++) {
        bool v2_only = strcmp(INT_ATTRS[i], "n_kv_head") == 0 || strcmp(INT_ATTRS[i], "d_ff") == 0;
        if (version == 1 && v2_only) continue;
        if (h5_read_attr_i64(file, INT_ATTRS[i], &v) || v < INT32_MIN || v > INT32_MAX)
            return lc_error(err, errlen, "%s: missing attribute '%s'", path, INT_ATTRS[i]);
        *int_field(cfg, i) = (int)v;
    }
    if (version >= 2 && read_config_v2(file, path, cfg, err, errlen)) return -1;
    if (h5_read_attr_i64(file, "heads", &v))
        return lc_error(err, errlen, "%s: missing attribute 'heads'", path);
    *heads = (int)v;
    const char *bad = model_config_check(cfg);
    if (bad) return lc_error(err, errlen, "%s: invalid model configuration: %s", path, bad);
    return 0;
}

static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

// Writes "(d0, d1, ...)" of ti's shape into buf.
static const char *shape_text(const TensorInfo *ti, char *buf, size_t len) {
    int at = snprintf(buf, len, "(");
    for (int d = 0; d < ti->ndim && at < (int)len; d++)
        at += snprintf(buf + at, len - (size_t)at, d ? ", %d" : "%d", ti->shape[d]);
    if (at < (int)len) snprintf(buf + at, len - (size_t)at, ")");
    return buf;
}

// Reads one tensor after checking that the file stores it as float32 of the table's shape, so
// H5Dread never writes more or other than dst holds.
static int read_tensor(hid_t g, const TensorInfo *ti, float *dst, const char *path, char *err,
                       size_t errlen) {
    hsize_t dims[TENSOR_MAX_DIMS];
    for (int d = 0; d < ti->ndim; d++) dims[d] = (hsize_t)ti->shape[d];
    char shape[96];
    hid_t ds = H5Dopen2(g, ti->name, H5P_DEFAULT);
    if (ds < 0) return lc_error(err, errlen, "%s: cannot open /params/%s", path, ti->name);
    int rc = 0;
    if (!h5_dataset_is(ds, H5T_IEEE_F32LE, ti->ndim, dims))
        rc = lc_error(err, errlen,
                      "%s: /params/%s is not float32 of shape %s, as this model's configuration "
                      "needs",
                      path, ti->name, shape_text(ti, shape, sizeof(shape)));
    else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        rc = lc_error(err, errlen,
                      "%s: reading params/%s failed (truncated or corrupt file: its "
                      "checksum does not match)",
                      path, ti->name);
    H5Dclose(ds);
    return rc;
}

int model_read_params_h5(Model *m, hid_t file, const char *path, const char *optional, char *err,
                         size_t errlen) {
    if (m->lora.rank == 0 && H5Aexists(file, "lora_rank") > 0)
        return lc_error(err, errlen,
                        "%s holds LoRA adapters, and this model has none (load it with "
                        "model_load, which attaches them)",
                        path);
    hid_t g = H5Gopen2(file, "params", H5P_DEFAULT);
    if (g < 0) return lc_error(err, errlen, "%s: no /params group", path);
    float *host = lc_malloc(m->table.numel * sizeof(float));
    model_params_to_host(m, host);
    int rc = 0;
    for (int i = 0; i < m->table.count && !rc; i++) {
        const TensorInfo *ti = &m->table.info[i];
        if (H5Lexists(g, ti->name, H5P_DEFAULT) <= 0) {
            if (!listed(optional, ti->name))
                rc = lc_error(err, errlen, "%s: missing tensor /params/%s", path, ti->name);
            continue;
        }
        rc = read_tensor(g, ti, host + ti->offset, path, err, errlen);
    }
    for (int i = 0; i < m->table.count && !rc; i++) { // a NaN never loads as a model
        const TensorInfo *ti = &m->table.info[i];
        for (size_t j = 0; j < ti->numel; j++)
            if (!isfinite(host[ti->offset + j])) {
                rc = lc_error(err, errlen,
                              "%s: /params/%s holds a non-finite value (the run that wrote it "
                              "diverged)",
                              path, ti->name);
                break;
            }
    }
    if (!rc) {
        model_params_from_host(m, host);
    }
    free(host);
    H5Gclose(g);
    return rc;
}

int model_save(const Model *m, const char *path, char *err, size_t errlen) {
    hid_t f = h5_image_create(model_param_bytes(m));
    if (f < 0) return lc_error(err, errlen, "%s: cannot create the file in memory", path);
    char why[512];
    if (model_write_h5(m, f, why, sizeof(why)) != 0) {
        H5Fclose(f);
        return lc_error(err, errlen, "%s: %s", path, why);
    }
    return h5_image_commit(f, path, err, errlen); // checked writes, sealed, atomic
}

Model *model_load(const Backend *be, const char *path, int heads, ModelMode mode, int max_B,
                  int max_T, uint64_t seed, char *err, size_t errlen) {
    hid_t f = h5_open_verified(path, err, errlen); // every byte checked before HDF5 parses it
    if (f < 0) return NULL;
    ModelConfig cfg;
    int file_heads;
    Model *m = NULL;
    if (model_read_config_h5(f, path, &cfg, &file_heads, err, errlen) == 0) {
        m = model_create(be, cfg, heads ? heads : file_heads, mode, max_B,
                         max_T < cfg.max_seq_len ? max_T : cfg.max_seq_len);
        model_init_weights(m, seed); // any scalar head the file lacks starts from the seed
        LoraConfig lora;
        if (model_read_lora_h5(f, path, &lora, err, errlen) != 0 ||
            (lora.rank > 0 && model_lora_attach(m, &lora, seed, err, errlen) != 0) ||
            model_read_params_h5(m, f, path, "headw,headb", err, errlen) != 0) {
            model_free(m);
            m = NULL;
        }
    }
    H5Fclose(f);
    return m;
}
