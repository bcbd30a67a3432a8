// Backend selection by name. The CUDA backend registers here when it is built (LC_HAVE_CUDA, set
// by kernels/CMakeLists.txt when the top level found the toolkit; docs/cuda.md).
#include "kernels/kernels.h"
#include <stdio.h>
#include <string.h>

const Backend *backend_open(const char *name, char *why, size_t len) {
    char scratch[256];
    if (!why || len == 0) why = scratch, len = sizeof(scratch);
    why[0] = '\0';
    if (strcmp(name, "cpu") == 0) return backend_cpu();
    if (strcmp(name, "cuda") == 0) {
#ifdef LC_HAVE_CUDA
        return backend_cuda(why, len);
#else
        snprintf(why, len,
                 "the CUDA backend is not built into this binary (build on a machine with the "
                 "CUDA toolkit, with -DLC_CUDA=ON or AUTO; docs/cuda.md)");
        return NULL;
#endif
    }
    snprintf(why, len, "unknown backend '%s' (known: cpu, cuda)", name);
    return NULL;
}

const Backend *backend_get(const char *name) {
    return backend_open(name, NULL, 0);
}

void backend_info(const char *name, BackendInfo *info) {
    *info = (BackendInfo){0};
    info->usable = backend_open(name, info->why, sizeof(info->why)) != NULL;
    if (strcmp(name, "cpu") == 0) info->built = true;
#ifdef LC_HAVE_CUDA
    if (strcmp(name, "cuda") == 0) {
        info->built = true;
        backend_cuda_versions(info->versions, sizeof(info->versions));
    }
#endif
}
