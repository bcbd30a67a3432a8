// optim/adamw.c: AdamW over a tensor table, with global-norm clipping.
#include "optim/optim.h"
#include "common/check.h"
#include <math.h>

void adamw_init(AdamW *opt, const Backend *be, const TensorTable *table, AdamWConfig cfg) {
    *opt = (AdamW){.cfg = cfg, .be = be, .table = table};
    opt->m = be->alloc(table->numel * sizeof(float));
    opt->v = be->alloc(table->numel * sizeof(float));
}

void adamw_free(AdamW *opt) {
    if (opt->m) opt->be->free(opt->m);
    if (opt->v) opt->be->free(opt->v);
    opt->m = opt->v = NULL;
}

float grad_global_norm(const Backend *be, const float *grads, size_t n) {
    return (float)sqrt(be->sum_squares(grads, n));
}

float adamw_step(AdamW *opt, float *params, float *grads, Act *weights, float lr) {
    const Backend *be = opt->be;
    const AdamWConfig *c = &opt->cfg;
    size_t n = opt->table->numel;
    float norm = grad_global_norm(be, grads, n);
    if (!isfinite(norm)) return norm; // NaN or Inf gradients: nothing is updated
    if (c->grad_clip > 0.0f && norm > c->grad_clip) be->scale(grads, c->grad_clip / norm, n);
    opt->step++;
    float bc1 = 1.0f - powf(c->beta1, (float)opt->step);
    float bc2 = 1.0f - powf(c->beta2, (float)opt->step);
    for (int i = 0; i < opt->table->count; i++) {
        const TensorInfo *ti = &opt->table->info[i];
        size_t o = ti->offset;
        Act *w = weights ? (char *)weights + o * be->act_size : NULL;
        be->adamw_update(params + o, w, grads + o, opt->m + o, opt->v + o, ti->numel, lr, c->beta1,
                         c->beta2, c->eps, ti->decay ? c->weight_decay : 0.0f, bc1, bc2);
    }
    return norm;
}
