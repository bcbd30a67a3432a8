// model/checkpoint.c: GPT-2 weights in HDF5.
#include "model/checkpoint.h"
#include "common/check.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int write_int_attr(hid_t obj, const char *name, long long v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_NATIVE_LLONG, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_LLONG, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

static int write_str_attr(hid_t obj, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

static int read_int_attr(hid_t obj, const char *name, long long *v) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t rc = H5Aread(a, H5T_NATIVE_LLONG, v);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static int read_str_attr(hid_t obj, const char *name, char *buf, size_t len) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len);
    herr_t rc = H5Aread(a, t, buf);
    buf[len - 1] = '\0';
    H5Tclose(t);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

int gpt2_write_h5(const GPT2 *m, hid_t file, char *err, size_t errlen) {
    const GPT2Config *c = &m->cfg;
    int rc = write_str_attr(file, "format", CHECKPOINT_FORMAT);
    rc |= write_int_attr(file, "version", CHECKPOINT_VERSION);
    rc |= write_str_attr(file, "family", "gpt2");
    rc |= write_int_attr(file, "n_layer", c->n_layer);
    rc |= write_int_attr(file, "n_head", c->n_head);
    rc |= write_int_attr(file, "d_model", c->d_model);
    rc |= write_int_attr(file, "vocab_size", c->vocab_size);
    rc |= write_int_attr(file, "max_seq_len", c->max_seq_len);
    rc |= write_int_attr(file, "heads", m->heads);
    if (rc) return fail(err, errlen, "writing model attributes failed");
    hid_t g = H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return fail(err, errlen, "creating group /params failed");
    float *host = lc_malloc(m->table.numel * sizeof(float));
    m->be->to_host(host, m->params_mem, m->table.numel * sizeof(float));
    for (int i = 0; i < m->table.count && !rc; i++) {
        const TensorInfo *ti = &m->table.info[i];
        hsize_t dims[TENSOR_MAX_DIMS];
        for (int d = 0; d < ti->ndim; d++) dims[d] = (hsize_t)ti->shape[d];
        hid_t sp = H5Screate_simple(ti->ndim, dims, NULL);
        hid_t ds = H5Dcreate2(g, ti->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                               host + ti->offset) < 0)
            rc = fail(err, errlen, "writing /params/%s failed", ti->name);
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
    }
    free(host);
    H5Gclose(g);
    return rc ? -1 : 0;
}

int gpt2_read_config_h5(hid_t file, const char *path, GPT2Config *cfg, int *heads, char *err,
                        size_t errlen) {
    char fmt[64] = "", family[32] = "";
    long long version = 0, v[6];
    if (read_str_attr(file, "format", fmt, sizeof(fmt)) || strcmp(fmt, CHECKPOINT_FORMAT) != 0)
        return fail(err, errlen, "%s: not a layercake checkpoint (attribute 'format' is '%s')",
                    path, fmt);
    if (read_int_attr(file, "version", &version) || version != CHECKPOINT_VERSION)
        return fail(err, errlen, "%s: checkpoint version %lld, this layercake reads version %d",
                    path, version, CHECKPOINT_VERSION);
    if (read_str_attr(file, "family", family, sizeof(family)) || strcmp(family, "gpt2") != 0)
        return fail(err, errlen, "%s: model family '%s' is not supported (expected gpt2)", path,
                    family);
    const char *names[6] = {"n_layer", "n_head", "d_model", "vocab_size", "max_seq_len", "heads"};
    for (int i = 0; i < 6; i++)
        if (read_int_attr(file, names[i], &v[i]))
            return fail(err, errlen, "%s: missing attribute '%s'", path, names[i]);
    *cfg = (GPT2Config){(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4]};
    *heads = (int)v[5];
    const char *bad = gpt2_config_check(cfg);
    if (bad) return fail(err, errlen, "%s: invalid model configuration: %s", path, bad);
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

// Reads one tensor, checking its shape against the table entry.
static int read_tensor(hid_t g, const TensorInfo *ti, float *dst, const char *path, char *err,
                       size_t errlen) {
    hid_t ds = H5Dopen2(g, ti->name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[TENSOR_MAX_DIMS + 1];
    int nd = H5Sget_simple_extent_ndims(sp);
    int ok = nd == ti->ndim && H5Sget_simple_extent_dims(sp, dims, NULL) == nd;
    for (int d = 0; ok && d < nd; d++) ok = dims[d] == (hsize_t)ti->shape[d];
    int rc = 0;
    if (!ok)
        rc = fail(err, errlen, "%s: /params/%s has the wrong shape for this model", path,
                  ti->name);
    else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        rc = fail(err, errlen, "%s: reading /params/%s failed (truncated or corrupt file?)",
                  path, ti->name);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

int gpt2_read_params_h5(GPT2 *m, hid_t file, const char *path, const char *optional, char *err,
                        size_t errlen) {
    hid_t g = H5Gopen2(file, "params", H5P_DEFAULT);
    if (g < 0) return fail(err, errlen, "%s: no /params group", path);
    float *host = lc_malloc(m->table.numel * sizeof(float));
    m->be->to_host(host, m->params_mem, m->table.numel * sizeof(float));
    int rc = 0;
    for (int i = 0; i < m->table.count && !rc; i++) {
        const TensorInfo *ti = &m->table.info[i];
        if (H5Lexists(g, ti->name, H5P_DEFAULT) <= 0) {
            if (!listed(optional, ti->name))
                rc = fail(err, errlen, "%s: missing tensor /params/%s", path, ti->name);
            continue;
        }
        rc = read_tensor(g, ti, host + ti->offset, path, err, errlen);
    }
    if (!rc) m->be->to_device(m->params_mem, host, m->table.numel * sizeof(float));
    free(host);
    H5Gclose(g);
    return rc;
}

int gpt2_save(const GPT2 *m, const char *path, char *err, size_t errlen) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return fail(err, errlen, "%s: cannot create (directory missing or read-only?)", tmp);
    int rc = gpt2_write_h5(m, f, err, errlen);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 && !rc) rc = fail(err, errlen, "%s: flush failed", tmp);
    H5Fclose(f);
    if (!rc && rename(tmp, path) != 0) rc = fail(err, errlen, "%s: rename failed", path);
    if (rc) unlink(tmp);
    return rc;
}

GPT2 *gpt2_load(const Backend *be, const char *path, int heads, GPT2Mode mode, int max_B,
                int max_T, uint64_t seed, char *err, size_t errlen) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fail(err, errlen, "%s: cannot open as HDF5 (missing, truncated or not a checkpoint)",
             path);
        return NULL;
    }
    GPT2Config cfg;
    int file_heads;
    GPT2 *m = NULL;
    if (gpt2_read_config_h5(f, path, &cfg, &file_heads, err, errlen) == 0) {
        m = gpt2_create(be, cfg, heads ? heads : file_heads, mode, max_B,
                        max_T < cfg.max_seq_len ? max_T : cfg.max_seq_len);
        gpt2_init_weights(m, seed); // any scalar head the file lacks starts from the seed
        if (gpt2_read_params_h5(m, f, path, "headw,headb", err, errlen) != 0) {
            gpt2_free(m);
            m = NULL;
        }
    }
    H5Fclose(f);
    return m;
}
