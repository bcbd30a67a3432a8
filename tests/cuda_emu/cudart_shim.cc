// tests/cuda_emu/cudart_shim.cc: the CUDA runtime calls of the CUDA backend over host memory
// (tests/cuda_emu/cuda_shims.h renames them). Device memory is 256-byte aligned host memory, as
// cudaMalloc's; every live allocation is recorded, so a copy or memset that names memory outside
// every allocation — a host pointer passed as a device one, a length past the end, a freed
// buffer — is an error (counted, printed, and returned as cudaErrorInvalidValue), not a silent
// write. Kernels run synchronously under the emulator, so streams and synchronisation are no-ops.
#include "tests/cuda_emu/cuda_shims.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>

// start -> bytes of every live allocation. Never destroyed: device memory still allocated at exit
// (the backend's workspace, a cached plan's buffers) stays reachable for LeakSanitizer, as a
// GPU's memory is simply released with the process.
static std::map<const char *, size_t> &g_allocs = *new std::map<const char *, size_t>;
static size_t g_bytes, g_peak;
static long g_nalloc;
static int g_devices = 1;
static long g_errors;
static cudaError_t g_last = cudaSuccess;

extern "C" {

void lc_emu_shim_error(const char *call, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda shim: %s: ", call);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    g_errors++;
}

long lc_emu_allocations(void) {
    return g_nalloc;
}

long lc_emu_shim_errors(void) {
    return g_errors;
}

void lc_emu_set_device_count(int n) {
    g_devices = n;
}

size_t lc_emu_device_bytes(void) {
    return g_bytes;
}

size_t lc_emu_device_peak(void) {
    return g_peak;
}

void lc_emu_reset_peak(void) {
    g_peak = g_bytes;
}

int lc_emu_is_device(const void *p, size_t bytes) {
    const char *c = (const char *)p;
    auto it = g_allocs.upper_bound(c);
    if (it == g_allocs.begin()) return 0;
    --it;
    return c >= it->first && c + bytes <= it->first + it->second;
}

static cudaError_t fail(cudaError_t e) {
    g_last = e;
    return e;
}

cudaError_t lc_emu_cudaMalloc(void **p, size_t bytes) {
    if (!p) return fail(cudaErrorInvalidValue);
    size_t n = (bytes + 255) / 256 * 256;
    void *m = aligned_alloc(256, n ? n : 256);
    if (!m) return fail(cudaErrorMemoryAllocation);
    memset(m, 0xA5, n ? n : 256); // cudaMalloc does not zero: neither does the shim
    g_allocs[(const char *)m] = bytes;
    g_nalloc++;
    g_bytes += bytes;
    if (g_bytes > g_peak) g_peak = g_bytes;
    *p = m;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = g_allocs.find((const char *)p);
    if (it == g_allocs.end()) {
        lc_emu_shim_error("cudaFree", "%p is not the start of a live allocation", p);
        return fail(cudaErrorInvalidValue);
    }
    g_bytes -= it->second;
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}

static bool device_range(const char *call, const char *which, const void *p, size_t bytes) {
    if (lc_emu_is_device(p, bytes)) return true;
    lc_emu_shim_error(call, "%s %p (+%zu bytes) is not inside a device allocation", which, p,
                      bytes);
    return false;
}

cudaError_t lc_emu_cudaMemset(void *p, int value, size_t bytes) {
    if (!device_range("cudaMemset", "destination", p, bytes)) return fail(cudaErrorInvalidValue);
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t) {
    return lc_emu_cudaMemset(p, value, bytes);
}

cudaError_t lc_emu_cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    bool ok = true;
    switch (kind) {
    case cudaMemcpyHostToDevice:
        ok = device_range("cudaMemcpy(HostToDevice)", "destination", dst, bytes);
        break;
    case cudaMemcpyDeviceToHost:
        ok = device_range("cudaMemcpy(DeviceToHost)", "source", src, bytes);
        break;
    case cudaMemcpyDeviceToDevice:
        ok = device_range("cudaMemcpy(DeviceToDevice)", "destination", dst, bytes) &&
             device_range("cudaMemcpy(DeviceToDevice)", "source", src, bytes);
        break;
    default:
        lc_emu_shim_error("cudaMemcpy", "kind %d: the backend names every copy's direction",
                          (int)kind);
        ok = false;
    }
    if (!ok) return fail(cudaErrorInvalidValue);
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t) {
    return lc_emu_cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t lc_emu_cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}

cudaError_t lc_emu_cudaPeekAtLastError(void) {
    return g_last;
}

const char *lc_emu_cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    default:
        return "unknown error";
    }
}

const char *lc_emu_cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorNoDevice:
        return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    default:
        return "cudaErrorUnknown";
    }
}

cudaError_t lc_emu_cudaGetDeviceCount(int *n) {
    if (g_devices <= 0) {
        *n = 0;
        return fail(cudaErrorNoDevice);
    }
    *n = g_devices;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaSetDevice(int d) {
    return d >= 0 && d < g_devices ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t lc_emu_cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}

// An H100 SXM's figures, so code reading them takes its usual paths.
cudaError_t lc_emu_cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    if (device < 0 || device >= g_devices) return fail(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
        *value = 227 * 1024;
        break;
    case cudaDevAttrMultiProcessorCount:
        *value = 132;
        break;
    case cudaDevAttrClockRate:
        *value = 1980000;
        break; // kHz
    case cudaDevAttrComputeCapabilityMajor:
        *value = 9;
        break;
    case cudaDevAttrComputeCapabilityMinor:
        *value = 0;
        break;
    default:
        lc_emu_shim_error("cudaDeviceGetAttribute", "attribute %d is not emulated", (int)attr);
        return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t lc_emu_cudaDriverGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaRuntimeGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    const size_t total = (size_t)80 << 30;
    *total_b = total;
    *free_b = total - g_bytes;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaStreamSynchronize(cudaStream_t) {
    return cudaSuccess;
}

cudaError_t lc_emu_cudaDeviceSynchronize(void) {
    return cudaSuccess;
}

// Work on a stream has always finished under the emulator (kernels and copies run synchronously).
cudaError_t lc_emu_cudaStreamQuery(cudaStream_t) {
    return cudaSuccess;
}

} // extern "C"
