// train/run/state.c: training checkpoints (layout in train/run/state.h).
#include "train/run/state.h"
#include "common/check.h"
#include "common/error.h"
#include "common/h5.h"
#include "kernels/collective.h"
#include "model/checkpoint.h"
#include <dirent.h>
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

static bool sharded(const AdamW *o) {
    return o->begin != 0 || o->end != o->table->numel;
}

static hid_t optim_group(hid_t f, const char *name) {
    char path[128];
    if (H5Lexists(f, "optim", H5P_DEFAULT) <= 0)
        H5Gclose(H5Gcreate2(f, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    snprintf(path, sizeof(path), "optim/%s", name);
    return H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

// The moments of [begin, end) and the step into group g.
static int write_moments(hid_t g, const AdamW *o) {
    size_t n = o->end - o->begin;
    hsize_t dims[1] = {n};
    float *host = lc_malloc((n ? n : 1) * sizeof(float));
    o->be->to_host(host, o->m, n * sizeof(float));
    int rc = h5_write_f32(g, "m", 1, dims, host);
    o->be->to_host(host, o->v, n * sizeof(float));
    rc |= h5_write_f32(g, "v", 1, dims, host);
    rc |= h5_write_attr_i64(g, "step", o->step);
    free(host);
    return rc;
}

// A ZeRO-1 optimiser's moments live in its processes' shard files (state_save_shards); the
// checkpoint records how many there are.
static int write_optim(hid_t f, const StateModel *sm) {
    hid_t g = optim_group(f, sm->name);
    if (g < 0) return -1;
    int rc = sharded(sm->opt) ? h5_write_attr_i64(g, "shards", sm->opt->comm->world) |
                                    h5_write_attr_i64(g, "step", sm->opt->step)
                              : write_moments(g, sm->opt); // all of them: [0, numel)
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

// Bytes the file will hold: each model's weights, and moments where it trains.
static size_t expected_bytes(const StateModel *models, int n_models, const TrainState *st) {
    size_t n = st->recipe ? strlen(st->recipe) : 0;
    for (int i = 0; i < n_models; i++)
        n += model_param_bytes(models[i].model) * (models[i].opt ? 3 : 1);
    return n;
}

// Writes every model, its optimiser state and /state into the open file f; 0 or -1 with err.
static int write_all(hid_t f, const char *path, const StateModel *models, int n_models,
                     const TrainState *st, char *err, size_t errlen) {
    char why[512];
    for (int i = 0; i < n_models; i++) {
        hid_t g = model_group(f, &models[i], i, 1);
        if (g < 0)
            return lc_error(err, errlen, "%s: cannot create the group of model '%s'", path,
                            models[i].name);
        int rc = model_write_h5(models[i].model, g, why, sizeof(why));
        H5Gclose(g);
        if (rc) return lc_error(err, errlen, "%s: %s", path, why);
        if (models[i].opt && write_optim(f, &models[i]))
            return lc_error(err, errlen, "%s: writing the optimiser state of '%s' failed", path,
                            models[i].name);
    }
    if (write_state(f, st)) return lc_error(err, errlen, "%s: writing /state failed", path);
    return 0;
}

void state_shard_path(char *buf, size_t len, const char *path, int rank, int world) {
    snprintf(buf, len, "%s.optim-%d-of-%d", path, rank, world);
}

int state_save_shards(const char *path, const StateModel *models, int n_models, char *err,
                      size_t errlen) {
    const AdamW *any = NULL;
    size_t bytes = 4096;
    for (int i = 0; i < n_models; i++)
        if (models[i].opt && sharded(models[i].opt)) {
            any = models[i].opt;
            bytes += 2 * (any->end - any->begin) * sizeof(float) + 1024;
        }
    if (!any) return 0;
    char shard[4200];
    state_shard_path(shard, sizeof(shard), path, any->comm->rank, any->comm->world);
    hid_t f = h5_image_create(bytes);
    if (f < 0) return lc_error(err, errlen, "%s: cannot create the file in memory", shard);
    int rc = 0;
    for (int i = 0; i < n_models && !rc; i++) {
        const AdamW *o = models[i].opt;
        if (!o || !sharded(o)) continue;
        hid_t g = optim_group(f, models[i].name);
        rc = g < 0 || write_moments(g, o) || h5_write_attr_i64(g, "begin", (int64_t)o->begin) ||
             h5_write_attr_i64(g, "end", (int64_t)o->end);
        if (g >= 0) H5Gclose(g);
    }
    if (rc) {
        H5Fclose(f);
        return lc_error(err, errlen, "%s: writing the optimiser shard failed", shard);
    }
    return h5_image_commit(f, shard, err, errlen);
}

int state_save(const char *path, const StateModel *models, int n_models, const TrainState *st,
               char *err, size_t errlen) {
    // built in memory, then written with checked writes, sealed and renamed (common/h5.h): a
    // full disk fails one write(2), with its errno, and leaves no .tmp behind
    hid_t f = h5_image_create(expected_bytes(models, n_models, st));
    if (f < 0) return lc_error(err, errlen, "%s: cannot create the file in memory", path);
    if (write_all(f, path, models, n_models, st, err, errlen) != 0) {
        H5Fclose(f);
        return -1;
    }
    return h5_image_commit(f, path, err, errlen);
}

// Copies the part of shard file r of `world` (rank r's slice of the moments of `name`) that lies
// in [o->begin, o->end) into m and v (indexed from o->begin); 0, or -1 with err.
static int read_shard(const char *path, const char *name, int r, int world, const AdamW *o,
                      float *m, float *v, char *err, size_t errlen) {
    size_t n = o->table->numel, b = comm_slice_begin(n, r, world),
           e = comm_slice_begin(n, r + 1, world);
    size_t lo = b > o->begin ? b : o->begin, hi = e < o->end ? e : o->end;
    if (lo >= hi) return 0; // no overlap with this process's slice
    char shard[4200], gp[128];
    state_shard_path(shard, sizeof(shard), path, r, world);
    hid_t f = h5_open_verified(shard, err, errlen);
    if (f < 0) return -1;
    snprintf(gp, sizeof(gp), "optim/%s", name);
    int64_t fb = -1, fe = -1;
    int rc = H5Lexists(f, "optim", H5P_DEFAULT) <= 0 || H5Lexists(f, gp, H5P_DEFAULT) <= 0;
    float *tm = lc_malloc((e - b + 1) * sizeof(float)),
          *tv = lc_malloc((e - b + 1) * sizeof(float));
    if (!rc) {
        hid_t g = H5Gopen2(f, gp, H5P_DEFAULT);
        rc = h5_read_attr_i64(g, "begin", &fb) || h5_read_attr_i64(g, "end", &fe) ||
             fb != (int64_t)b || fe != (int64_t)e || h5_read_f32(g, "m", tm, e - b) ||
             h5_read_f32(g, "v", tv, e - b);
        H5Gclose(g);
    }
    H5Fclose(f);
    if (!rc) {
        memcpy(m + (lo - o->begin), tm + (lo - b), (hi - lo) * sizeof(float));
        memcpy(v + (lo - o->begin), tv + (lo - b), (hi - lo) * sizeof(float));
    }
    free(tm), free(tv);
    return rc ? lc_error(
                    err, errlen,
                    "%s: the optimiser shard of '%s' is missing, of another slice (%lld..%lld, "
                    "expected %zu..%zu) or truncated",
                    shard, name, (long long)fb, (long long)fe, b, e)
              : 0;
}

// Moments from the shard files of a ZeRO-1 checkpoint of `world` processes, whatever this
// process's slice (the shards are re-split: any number of processes resumes it).
static int read_sharded(const char *path, const StateModel *sm, int world, char *err,
                        size_t errlen) {
    const AdamW *o = sm->opt;
    size_t n = o->end - o->begin;
    float *m = lc_malloc((n ? n : 1) * sizeof(float)), *v = lc_malloc((n ? n : 1) * sizeof(float));
    int rc = 0;
    for (int r = 0; r < world && !rc; r++)
        rc = read_shard(path, sm->name, r, world, o, m, v, err, errlen);
    if (!rc) {
        o->be->to_device(o->m, m, n * sizeof(float));
        o->be->to_device(o->v, v, n * sizeof(float));
    }
    free(m), free(v);
    return rc;
}

static int read_optim(hid_t f, const StateModel *sm, const char *path, char *err, size_t errlen) {
    char gp[128];
    snprintf(gp, sizeof(gp), "optim/%s", sm->name);
    if (H5Lexists(f, "optim", H5P_DEFAULT) <= 0 || H5Lexists(f, gp, H5P_DEFAULT) <= 0)
        return lc_error(err, errlen, "%s: no optimiser state for '%s'", path, sm->name);
    hid_t g = H5Gopen2(f, gp, H5P_DEFAULT);
    int64_t shards = 0;
    if (H5Aexists(g, "shards") > 0) { // a ZeRO-1 checkpoint: the moments are in shard files
        int64_t step = 0;
        int rc = h5_read_attr_i64(g, "shards", &shards) | h5_read_attr_i64(g, "step", &step);
        H5Gclose(g);
        if (rc || shards < 1)
            return lc_error(err, errlen, "%s: the optimiser state of '%s' is corrupt", path,
                            sm->name);
        sm->opt->step = step;
        return read_sharded(path, sm, (int)shards, err, errlen);
    }
    // the whole moments are stored; a sharded optimiser (ZeRO-1) keeps its slice of them, so a
    // run resumes on any number of processes
    const AdamW *o = sm->opt;
    size_t n = o->table->numel, bytes = (o->end - o->begin) * sizeof(float);
    float *host = lc_malloc(n * sizeof(float));
    const Backend *be = o->be;
    int64_t step = 0;
    int rc = h5_read_f32(g, "m", host, n);
    if (!rc) be->to_device(o->m, host + o->begin, bytes);
    rc |= h5_read_f32(g, "v", host, n);
    if (!rc) be->to_device(o->v, host + o->begin, bytes);
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
    err[0] = '\0';
    hid_t f = h5_open_verified(path, err, errlen); // every byte checked before HDF5 parses it
    if (f < 0) return -1;
    int rc = 0;
    for (int i = 0; i < n_models && !rc; i++) {
        const StateModel *sm = &models[i];
        hid_t g = model_group(f, sm, i, 0);
        ModelConfig cfg;
        int heads;
        if (g < 0) {
            rc = lc_error(err, errlen, "%s: no model '%s'", path, sm->name);
            break;
        }
        rc = model_read_config_h5(g, path, &cfg, &heads, err, errlen);
        if (!rc && !model_config_equal(&cfg, &sm->model->cfg))
            rc = lc_error(err, errlen, "%s: model '%s' has another configuration than this run's",
                          path, sm->name);
        if (!rc) rc = model_read_params_h5(sm->model, g, path, "", err, errlen);
        H5Gclose(g);
        if (!rc && sm->opt) rc = read_optim(f, sm, path, err, errlen);
    }
    if (!rc) rc = read_state(f, st, path, err, errlen);
    H5Fclose(f);
    return rc;
}

int state_tokenizer_path(const char *path, char *buf, size_t len) {
    char err[1024];
    hid_t f = h5_open_verified(path, err, sizeof(err));
    if (f < 0) {
        fprintf(stderr, "layercake: %s\n", err); // the caller can only say "no tokenizer"
        return -1;
    }
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
    char err[1024];
    if (access(path, F_OK) != 0) return -1;
    int sealed = h5_verify(path, err, sizeof(err));
    if (sealed < 0) {
        fprintf(stderr, "layercake: warning: not using %s\n", err);
        return -1;
    }
    // An unsealed (older) file is read for its flag alone: calling it incomplete would retrain
    // its stage over it; loading it still needs LC_ACCEPT_UNSEALED=1.
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

// Whether name is a shard file (ckpt-NNNNNNNN.h5.optim-R-of-W) of one of the kept checkpoints.
static bool shard_of_kept(const char *name, char *const *kept, int n_kept) {
    for (int i = 0; i < n_kept; i++) {
        const char *base = strrchr(kept[i], '/') ? strrchr(kept[i], '/') + 1 : kept[i];
        size_t len = strlen(base);
        if (strncmp(name, base, len) == 0 && strncmp(name + len, ".optim-", 7) == 0) return true;
    }
    return false;
}

void state_prune(const char *dir, int keep) {
    char *paths[4096];
    int n = state_list_periodic(dir, paths, 4096);
    for (int i = keep; i < n; i++) unlink(paths[i]);
    // shard files go with their checkpoint, and so do those of a save that never completed
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "ckpt-", 5) == 0 && strstr(e->d_name, ".h5.optim-") &&
            !shard_of_kept(e->d_name, paths, keep < n ? keep : n)) {
            char p[4200];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    for (int i = 0; i < n; i++) free(paths[i]);
}
