// train/run/state.c: training checkpoints (layout in train/run/state.h).
#include "train/run/state.h"
#include "common/check.h"
#include "common/error.h"
#include "common/h5.h"
#include "model/checkpoint.h"
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The group holding model i: the root for the first, /models/<name> for the others.
static hid_t model_group(hid_t f, const StateModel *sm, int i, int create) {
    if (i == 0) return H5Gopen2(f, "/", H5P_DEFAULT);
    char path[128];
    snprintf(path, sizeof(path), "models/%s", sm->name);
    if (!create)
        return H5Lexists(f, "models", H5P_DEFAULT) > 0 ? H5Gopen2(f, path, H5P_DEFAULT) : -1;
    if (H5Lexists(f, "models", H5P_DEFAULT) <= 0)
        H5Gclose(H5Gcreate2(f, "models", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    return H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

static int write_optim(hid_t f, const StateModel *sm) {
    char path[128];
    if (H5Lexists(f, "optim", H5P_DEFAULT) <= 0)
        H5Gclose(H5Gcreate2(f, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    snprintf(path, sizeof(path), "optim/%s", sm->name);
    hid_t g = H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    size_t n = sm->opt->table->numel;
    hsize_t dims[1] = {n};
    float *host = lc_malloc(n * sizeof(float));
    const Backend *be = sm->opt->be;
    be->to_host(host, sm->opt->m, n * sizeof(float));
    int rc = h5_write_f32(g, "m", 1, dims, host);
    be->to_host(host, sm->opt->v, n * sizeof(float));
    rc |= h5_write_f32(g, "v", 1, dims, host);
    rc |= h5_write_attr_i64(g, "step", sm->opt->step);
    free(host);
    H5Gclose(g);
    return rc;
}

static int write_state(hid_t f, const TrainState *st) {
    hid_t g = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    char fp[32];
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)st->tokenizer);
    int rc = h5_write_attr_i64(g, "step", st->step);
    rc |= h5_write_attr_i64(g, "rng", (int64_t)st->rng);
    rc |= h5_write_attr_i64(g, "complete", st->complete);
    rc |= h5_write_attr_str(g, "tokenizer", fp);
    for (int i = 0; i < st->n_scalars; i++)
        rc |= h5_write_attr_f64(g, st->scalar_names[i], st->scalars[i]);
    hsize_t dims[1] = {(hsize_t)st->n_cursor};
    if (st->n_cursor > 0) rc |= h5_write_i64(g, "cursor", 1, dims, st->cursor);
    if (st->recipe) rc |= h5_write_text(g, "recipe", st->recipe);
    if (st->tokenizer_path) rc |= h5_write_attr_str(g, "tokenizer_path", st->tokenizer_path);
    H5Gclose(g);
    return rc;
}

// fsync a file (or a directory) by path; the rename below is durable only after both.
static int sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int state_save(const char *path, const StateModel *models, int n_models, const TrainState *st,
               char *err, size_t errlen) {
    h5_quiet();
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return lc_error(err, errlen, "%s: cannot create (missing folder or read-only?)", tmp);
    int rc = 0;
    for (int i = 0; i < n_models && !rc; i++) {
        hid_t g = model_group(f, &models[i], i, 1);
        rc = g < 0 ? lc_error(err, errlen, "%s: cannot create the group of model '%s'", tmp,
                              models[i].name)
                   : gpt2_write_h5(models[i].model, g, err, errlen);
        if (g >= 0) H5Gclose(g);
        if (!rc && models[i].opt && write_optim(f, &models[i]))
            rc = lc_error(err, errlen, "%s: writing the optimiser state of '%s' failed", tmp,
                          models[i].name);
    }
    if (!rc && write_state(f, st)) rc = lc_error(err, errlen, "%s: writing /state failed", tmp);
    if (H5Fclose(f) < 0 && !rc) rc = lc_error(err, errlen, "%s: closing failed (disk full?)", tmp);
    if (!rc && sync_path(tmp)) rc = lc_error(err, errlen, "%s: fsync failed", tmp);
    if (!rc && rename(tmp, path) != 0) rc = lc_error(err, errlen, "%s: rename failed", path);
    if (rc) {
        unlink(tmp);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    sync_path(dirname(dir));
    return 0;
}

static int read_optim(hid_t f, const StateModel *sm, const char *path, char *err, size_t errlen) {
    char gp[128];
    snprintf(gp, sizeof(gp), "optim/%s", sm->name);
    if (H5Lexists(f, "optim", H5P_DEFAULT) <= 0 || H5Lexists(f, gp, H5P_DEFAULT) <= 0)
        return lc_error(err, errlen, "%s: no optimiser state for '%s'", path, sm->name);
    hid_t g = H5Gopen2(f, gp, H5P_DEFAULT);
    size_t n = sm->opt->table->numel;
    float *host = lc_malloc(n * sizeof(float));
    const Backend *be = sm->opt->be;
    int64_t step = 0;
    int rc = h5_read_f32(g, "m", host, n);
    if (!rc) be->to_device(sm->opt->m, host, n * sizeof(float));
    rc |= h5_read_f32(g, "v", host, n);
    if (!rc) be->to_device(sm->opt->v, host, n * sizeof(float));
    rc |= h5_read_attr_i64(g, "step", &step);
    sm->opt->step = step;
    free(host);
    H5Gclose(g);
    return rc ? lc_error(err, errlen,
                         "%s: the optimiser state of '%s' is missing, truncated or "
                         "corrupt (checksum mismatch)",
                         path, sm->name)
              : 0;
}

static int read_state(hid_t f, TrainState *st, const char *path, char *err, size_t errlen) {
    if (H5Lexists(f, "state", H5P_DEFAULT) <= 0)
        return lc_error(err, errlen, "%s: no /state group: weights only, not a training checkpoint",
                        path);
    hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
    int64_t step = 0, rng = 0, complete = 0;
    char fp[32] = "";
    int rc = h5_read_attr_i64(g, "step", &step) | h5_read_attr_i64(g, "rng", &rng) |
             h5_read_attr_i64(g, "complete", &complete) |
             h5_read_attr_str(g, "tokenizer", fp, sizeof(fp));
    for (int i = 0; i < st->n_scalars && !rc; i++)
        if (h5_read_attr_f64(g, st->scalar_names[i], &st->scalars[i]))
            rc = lc_error(err, errlen, "%s: /state lacks '%s'", path, st->scalar_names[i]);
    if (!rc && st->n_cursor > 0 && h5_read_i64(g, "cursor", st->cursor, (size_t)st->n_cursor))
        rc = lc_error(err, errlen, "%s: /state/cursor is missing or has another length", path);
    H5Gclose(g);
    if (rc) return rc < 0 && err[0] ? -1 : lc_error(err, errlen, "%s: /state is incomplete", path);
    st->step = step;
    st->rng = (uint64_t)rng;
    st->complete = (int)complete;
    st->tokenizer = strtoull(fp, NULL, 16);
    return 0;
}

int state_load(const char *path, const StateModel *models, int n_models, TrainState *st, char *err,
               size_t errlen) {
    h5_quiet();
    err[0] = '\0';
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return lc_error(err, errlen, "%s: cannot open (missing, truncated or not HDF5)", path);
    int rc = 0;
    for (int i = 0; i < n_models && !rc; i++) {
        const StateModel *sm = &models[i];
        hid_t g = model_group(f, sm, i, 0);
        GPT2Config cfg;
        int heads;
        if (g < 0) {
            rc = lc_error(err, errlen, "%s: no model '%s'", path, sm->name);
            break;
        }
        rc = gpt2_read_config_h5(g, path, &cfg, &heads, err, errlen);
        if (!rc && memcmp(&cfg, &sm->model->cfg, sizeof(cfg)) != 0)
            rc = lc_error(err, errlen, "%s: model '%s' has another configuration than this run's",
                          path, sm->name);
        if (!rc) rc = gpt2_read_params_h5(sm->model, g, path, "", err, errlen);
        H5Gclose(g);
        if (!rc && sm->opt) rc = read_optim(f, sm, path, err, errlen);
    }
    if (!rc) rc = read_state(f, st, path, err, errlen);
    H5Fclose(f);
    return rc;
}

int state_tokenizer_path(const char *path, char *buf, size_t len) {
    h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    int rc = -1;
    if (H5Lexists(f, "state", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
        rc = h5_read_attr_str(g, "tokenizer_path", buf, len);
        H5Gclose(g);
    }
    H5Fclose(f);
    return rc;
}

int state_is_complete(const char *path) {
    h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    int64_t complete = -1;
    if (H5Lexists(f, "state", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
        if (h5_read_attr_i64(g, "complete", &complete)) complete = -1;
        H5Gclose(g);
    }
    H5Fclose(f);
    return (int)complete;
}

void state_periodic_path(char *buf, size_t len, const char *dir, int64_t step) {
    snprintf(buf, len, "%s/ckpt-%08lld.h5", dir, (long long)step);
}

static int is_periodic(const char *name) {
    size_t n = strlen(name);
    return n == 16 && strncmp(name, "ckpt-", 5) == 0 && strcmp(name + 13, ".h5") == 0 &&
           strspn(name + 5, "0123456789") == 8;
}

static int newest_first(const void *a, const void *b) {
    return -strcmp(*(char *const *)a, *(char *const *)b); // zero-padded steps sort as text
}

int state_list_periodic(const char *dir, char **paths, int max) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    char *all[4096];
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (is_periodic(e->d_name)) {
            size_t len = strlen(dir) + strlen(e->d_name) + 2;
            all[n] = lc_malloc(len);
            snprintf(all[n], len, "%s/%s", dir, e->d_name);
            n++;
        }
    closedir(d);
    qsort(all, (size_t)n, sizeof(char *), newest_first);
    for (int i = max; i < n; i++) free(all[i]);
    if (n > max) n = max;
    memcpy(paths, all, (size_t)n * sizeof(char *));
    return n;
}

void state_prune(const char *dir, int keep) {
    char *paths[4096];
    int n = state_list_periodic(dir, paths, 4096);
    for (int i = 0; i < n; i++) {
        if (i >= keep) unlink(paths[i]);
        free(paths[i]);
    }
}
