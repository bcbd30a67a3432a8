// Backend selection by name. The CUDA backend registers here when it is built.
#include "kernels/kernels.h"
#include <string.h>

const Backend *backend_get(const char *name) {
    if (strcmp(name, "cpu") == 0) return backend_cpu();
    return NULL;
}
