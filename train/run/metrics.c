// train/run/metrics.c: metrics.jsonl writer and step statistics.
#include "train/run/metrics.h"
#include "common/check.h"
#include "common/error.h"
#include "common/fs.h"
#include "kernels/collective.h"
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct Metrics {
    FILE *f;
    json_t *row;     // the row being built
    char path[4096]; // dir/metrics.jsonl, for messages
    int error;       // errno of the first failed write or flush (sticky); 0 while all went well
};

// Copies the rows of in with step <= last_step to out; 0, or -1 with errno set.
static int copy_rows(FILE *in, FILE *out, int64_t last_step) {
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (!rc && getline(&line, &cap, in) > 0) {
        json_t *row = json_loads(line, 0, NULL);
        json_t *step = row ? json_object_get(row, "step") : NULL;
        if (step && json_integer_value(step) <= last_step && fputs(line, out) < 0) rc = -1;
        json_decref(row);
    }
    free(line);
    return rc;
}

// Keeps the rows of path with step <= last_step; returns -1 with errno set if it cannot
// rewrite the file (the original is then left as it was, and no .tmp behind).
static int truncate_after(const char *path, int64_t last_step) {
    FILE *in = fopen(path, "r");
    if (!in) return 0; // nothing written yet
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return -1;
    }
    int rc = copy_rows(in, out, last_step);
    int saved = errno;
    fclose(in);
    if (fclose(out) != 0 && !rc) rc = -1, saved = errno; // the last buffered rows go out here
    if (!rc && rename(tmp, path) != 0) rc = -1, saved = errno;
    if (rc) {
        unlink(tmp);
        errno = saved;
    }
    return rc;
}

Metrics *metrics_open(const char *dir, int64_t resume_step, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", dir);
    if (resume_step >= 0 && truncate_after(path, resume_step) != 0) {
        lc_error(err, errlen, "%s: cannot rewrite for the resumed run: %s", path,
                 fs_errno_text(errno));
        return NULL;
    }
    FILE *f = fopen(path, resume_step >= 0 ? "a" : "w");
    if (!f) {
        lc_error(err, errlen, "%s: cannot open for writing: %s", path, fs_errno_text(errno));
        return NULL;
    }
    Metrics *m = lc_calloc(1, sizeof(*m));
    m->f = f;
    snprintf(m->path, sizeof(m->path), "%s", path);
    return m;
}

Metrics *metrics_discard(void) {
    return lc_calloc(1, sizeof(Metrics)); // f NULL: rows are built and dropped
}

int metrics_check(const Metrics *m, char *err, size_t errlen) {
    if (!m->error) return 0;
    return lc_error(err, errlen, "%s: writing failed: %s", m->path, fs_errno_text(m->error));
}

void metrics_close(Metrics *m) {
    if (!m) return;
    if (m->f) fclose(m->f);
    json_decref(m->row);
    free(m);
}

void metrics_begin(Metrics *m, int64_t step) {
    json_decref(m->row);
    m->row = json_object();
    json_object_set_new(m->row, "step", json_integer(step));
}

void metrics_add(Metrics *m, const char *key, double value) {
    // JSON has no NaN or infinity: a non-finite value is written as null
    json_object_set_new(m->row, key, isfinite(value) ? json_real(value) : json_null());
}

void metrics_add_str(Metrics *m, const char *key, const char *value) {
    json_object_set_new(m->row, key, json_string(value));
}

// Records the first failure (errno, or EIO where none was set), for metrics_check.
static void note_failure(Metrics *m) {
    if (!m->error) m->error = errno ? errno : EIO;
}

void metrics_end(Metrics *m) {
    if (!m->f) {
        json_decref(m->row);
        m->row = NULL;
        return;
    }
    char *s = json_dumps(m->row, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    errno = 0;
    if (!s || fprintf(m->f, "%s\n", s) < 0) note_failure(m);
    if (fflush(m->f) != 0) note_failure(m); // where a full disk shows: rows are flushed per line
    free(s);
    json_decref(m->row);
    m->row = NULL;
}

void stats_all_reduce(Stats *s, struct Comm *comm) {
    if (!comm || comm->world == 1) return;
    double n = s->n;
    comm->all_reduce_sum_host(comm, &n, 1);
    if (n != (double)s->n * comm->world)
        LC_DIE("data parallelism: the processes logged different statistics (%d here)", s->n);
    comm->all_reduce_sum_host(comm, s->sum, (size_t)s->n);
    comm->all_reduce_sum_host(comm, s->sum_sq, (size_t)s->n);
    comm->all_reduce_sum_host(comm, s->weight, (size_t)s->n);
}

void stats_reset(Stats *s) {
    s->n = 0;
}

// The entry of name, created empty if new.
static int entry(Stats *s, const char *name) {
    int i = 0;
    while (i < s->n && strcmp(s->name[i], name) != 0) i++;
    if (i == s->n) {
        LC_ASSERT(s->n < STATS_MAX);
        s->name[i] = name;
        s->sum[i] = s->sum_sq[i] = s->weight[i] = 0.0;
        s->dist[i] = 0;
        s->n++;
    }
    return i;
}

void stats_add(Stats *s, const char *name, double value, double weight) {
    int i = entry(s, name);
    s->sum[i] += value * weight;
    s->sum_sq[i] += value * value * weight;
    s->weight[i] += weight;
}

void stats_add_dist(Stats *s, const char *name, double value, double weight) {
    stats_add(s, name, value, weight);
    s->dist[entry(s, name)] = 1;
}

double stats_mean(const Stats *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0) return s->weight[i] > 0 ? s->sum[i] / s->weight[i] : NAN;
    return NAN;
}

void stats_write(const Stats *s, Metrics *m) {
    for (int i = 0; i < s->n; i++) {
        double w = s->weight[i], mean = w > 0 ? s->sum[i] / w : NAN;
        if (!s->dist[i]) {
            metrics_add(m, s->name[i], mean);
            continue;
        }
        char key[128];
        double var = w > 0 ? s->sum_sq[i] / w - mean * mean : NAN;
        snprintf(key, sizeof(key), "%s/mean", s->name[i]);
        metrics_add(m, key, mean);
        snprintf(key, sizeof(key), "%s/std", s->name[i]);
        metrics_add(m, key, var > 0 ? sqrt(var) : 0.0);
    }
}
