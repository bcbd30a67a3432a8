// Backend selection by name. The CUDA backend registers here when it is built (LC_HAVE_CUDA, set
// by kernels/CMakeLists.txt when the top level found the toolkit; docs/cuda.md).
#include "kernels/kernels.h"
#include <stdio.h>
#include <string.h>

// The CPU backend computes in fp32 with its exact-softmax attention (`builtin`) or the blocked
// online-softmax kernels (`flash`); it refuses options asking for anything else rather than
// silently ignoring them.
static const Backend *open_cpu(const BackendOptions *o, char *why, size_t len) {
    if (o->precision == BACKEND_PRECISION_BF16) {
        snprintf(why, len, "the CPU backend computes in fp32 (precision bf16 needs backend cuda)");
        return NULL;
    }
    if (o->attention == BACKEND_ATTENTION_CUDNN) {
        snprintf(why, len, "attention cudnn needs backend cuda");
        return NULL;
    }
    return o->attention == BACKEND_ATTENTION_FLASH ? backend_cpu_flash() : backend_cpu();
}

const Backend *backend_open(const char *name, const BackendOptions *opts, char *why, size_t len) {
    char scratch[256];
    BackendOptions defaults = {0};
    if (!opts) opts = &defaults;
    if (!why || len == 0) why = scratch, len = sizeof(scratch);
    why[0] = '\0';
    if (strcmp(name, "cpu") == 0) return open_cpu(opts, why, len);
    if (strcmp(name, "cuda") == 0) {
#ifdef LC_HAVE_CUDA
        return backend_cuda(opts, why, len);
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
    return backend_open(name, NULL, NULL, 0);
}

void backend_info(const char *name, BackendInfo *info) {
    *info = (BackendInfo){0};
    info->usable = backend_open(name, NULL, info->why, sizeof(info->why)) != NULL;
    if (strcmp(name, "cpu") == 0) info->built = true;
#ifdef LC_HAVE_CUDA
    if (strcmp(name, "cuda") == 0) {
        info->built = true;
        backend_cuda_versions(info->versions, sizeof(info->versions));
    }
#endif
}

#ifndef LC_HAVE_CUDA
// Without the CUDA backend there is no device memory and no device peak.
size_t backend_cuda_memory(size_t *peak) {
    if (peak) *peak = 0;
    return 0;
}

double backend_cuda_bf16_peak(char *name, size_t len) {
    if (len) snprintf(name, len, "no device");
    return 0.0;
}
#endif
