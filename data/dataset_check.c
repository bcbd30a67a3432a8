// data/dataset_check.c: content checks over a loaded dataset that the training stages rely on.
#include "data/dataset.h"

// Whether sft example ex has a trained target: a token t >= 1 with loss_mask[t] = 1 (the
// first token is never a target).
static int has_trained_target(const Example *ex) {
    for (int64_t t = 1; t < ex->n_tokens; t++)
        if (ex->loss_mask[t]) return 1;
    return 0;
}

int64_t dataset_count_untrained(const Dataset *ds, int64_t *first) {
    int64_t n = 0;
    *first = -1;
    if (ds->kind != DATA_SFT) return 0;
    for (int64_t e = 0; e < ds->n; e++) {
        Example ex = dataset_example(ds, e);
        if (has_trained_target(&ex)) continue;
        if (n++ == 0) *first = e;
    }
    return n;
}
