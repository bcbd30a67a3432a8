// optim/adamw.c: AdamW over a tensor table, with global-norm clipping.
#include "optim/optim.h"
#include "common/check.h"
#include <math.h>

static bool sharded(const AdamW *opt) {
    return opt->zero1 && opt->comm && opt->comm->world > 1;
}

static void alloc_moments(AdamW *opt) {
    size_t n = opt->end - opt->begin;
    opt->m = opt->be->alloc((n ? n : 1) * sizeof(float));
    opt->v = opt->be->alloc((n ? n : 1) * sizeof(float));
}

void adamw_init_parallel(AdamW *opt, const Backend *be, const TensorTable *table, AdamWConfig cfg,
                         Comm *comm, bool zero1) {
    *opt = (AdamW){.cfg = cfg, .be = be, .table = table, .comm = comm, .zero1 = zero1};
    opt->end = table->numel;
    if (sharded(opt)) {
        opt->begin = comm_slice_begin(table->numel, comm->rank, comm->world);
        opt->end = comm_slice_begin(table->numel, comm->rank + 1, comm->world);
    }
    alloc_moments(opt);
}

void adamw_init(AdamW *opt, const Backend *be, const TensorTable *table, AdamWConfig cfg) {
    adamw_init_parallel(opt, be, table, cfg, NULL, false);
}

void adamw_free(AdamW *opt) {
    if (opt->m) opt->be->free(opt->m);
    if (opt->v) opt->be->free(opt->v);
    opt->m = opt->v = NULL;
}

float grad_global_norm(const Backend *be, const float *grads, size_t n) {
    return (float)sqrt(be->sum_squares(grads, n));
}

// Sums grads over the processes: all of it, or (ZeRO-1) this rank's slice. Returns the norm of
// the summed gradient, the same on every rank.
static float reduce_gradients(AdamW *opt, float *grads) {
    Comm *c = opt->comm;
    size_t n = opt->table->numel;
    if (!c || c->world == 1) return grad_global_norm(opt->be, grads, n);
    if (!sharded(opt)) {
        c->all_reduce_sum(c, grads, n);
        return grad_global_norm(opt->be, grads, n);
    }
    c->reduce_scatter_sum(c, grads, n);
    double ssq = opt->be->sum_squares(grads + opt->begin, opt->end - opt->begin);
    c->all_reduce_sum_host(c, &ssq, 1);
    return (float)sqrt(ssq);
}

// AdamW on the part of every tensor that lies inside this rank's slice [begin, end).
static void update_slice(AdamW *opt, float *params, float *grads, Act *weights, float lr) {
    const Backend *be = opt->be;
    const AdamWConfig *c = &opt->cfg;
    float bc1 = 1.0f - powf(c->beta1, (float)opt->step);
    float bc2 = 1.0f - powf(c->beta2, (float)opt->step);
    for (int i = 0; i < opt->table->count; i++) {
        const TensorInfo *ti = &opt->table->info[i];
        size_t lo = ti->offset > opt->begin ? ti->offset : opt->begin;
        size_t hi = ti->offset + ti->numel < opt->end ? ti->offset + ti->numel : opt->end;
        if (lo >= hi) continue;
        Act *w = weights ? (char *)weights + lo * be->act_size : NULL;
        size_t k = lo - opt->begin; // into the moments
        be->adamw_update(params + lo, w, grads + lo, opt->m + k, opt->v + k, hi - lo,
                         lr * ti->lr_scale, c->beta1, c->beta2, c->eps,
                         ti->decay ? c->weight_decay : 0.0f, bc1, bc2);
    }
}

float adamw_step(AdamW *opt, float *params, float *grads, Act *weights, float lr) {
    const Backend *be = opt->be;
    const AdamWConfig *c = &opt->cfg;
    float norm = reduce_gradients(opt, grads);
    if (!isfinite(norm)) return norm; // NaN or Inf gradients: nothing is updated
    if (c->grad_clip > 0.0f && norm > c->grad_clip)
        be->scale(grads + opt->begin, c->grad_clip / norm, opt->end - opt->begin);
    opt->step++;
    update_slice(opt, params, grads, weights, lr);
    if (sharded(opt)) { // every rank's slice to every rank, and the compute copy after them
        opt->comm->all_gather(opt->comm, params, opt->table->numel);
        if (weights) be->act_from_float(weights, params, opt->table->numel);
    }
    return norm;
}
