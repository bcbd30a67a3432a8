#include "kernels/tensor.h"
#include "common/check.h"
#include <string.h>

size_t tensor_table_add(TensorTable *t, const char *name, int ndim, const int *shape, bool decay) {
    LC_ASSERT(ndim > 0 && ndim <= TENSOR_MAX_DIMS && strlen(name) < TENSOR_NAME_LEN);
    TensorInfo *ti = &t->info[t->count++];
    memset(ti, 0, sizeof(*ti));
    strcpy(ti->name, name);
    ti->ndim = ndim;
    ti->numel = 1;
    for (int d = 0; d < ndim; d++) {
        LC_ASSERT(shape[d] > 0);
        ti->shape[d] = shape[d];
        ti->numel *= (size_t)shape[d];
    }
    ti->offset = t->numel;
    ti->decay = decay;
    ti->lr_scale = 1.0f;
    t->numel += ti->numel;
    return ti->offset;
}

int tensor_table_find(const TensorTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->info[i].name, name) == 0) return i;
    return -1;
}
