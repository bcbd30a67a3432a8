// kernels/cuda/backend_cuda.cu: the host side of the CUDA backend (docs/cuda.md).
//
// - Device init, once: cudaGetDeviceCount + cudaSetDevice. Any error there (no driver: 35
//   cudaErrorInsufficientDriver; the toolkit's stub libcuda: 34 cudaErrorStubLibrary; no
//   device: 100) means "no usable GPU": backend_cuda() returns NULL with the cause, never dies.
// - The cuBLASLt handle and its one workspace, allocated once.
// - The memory entries (one cudaMalloc per call, i.e. per arena) and the matrix products
//   (cuBLASLt, fp32 compute: the same numbers as the CPU backend's sgemm up to summation order).
// - The other compute entries come from the kernel headers (*.cuh) as they are written; until
//   every entry is set, backend_cuda() refuses with the list of missing ones, so a recipe with
//   `backend: cuda` stops at startup instead of calling a NULL pointer.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cudnn.h>
#include <dlfcn.h>

extern "C" {
#include "kernels/kernels.h"
}
#include "kernels/cuda/cuda.h"

#ifndef LC_CUDA_ARCHS
#define LC_CUDA_ARCHS "?"
#endif

static CudaContext g_ctx;

// ---- cuBLASLt, loaded on first use -------------------------------------------------------------
// libcublasLt's static initialisers cost ~0.4 s at every process start, which every CPU-only
// command would pay if the binary linked it. So it is dlopen'ed when the CUDA backend is first
// asked for (or its version printed), and called through this table.
#define LC_LT_FUNCS(X)                                                                             \
    X(cublasLtGetVersion)                                                                          \
    X(cublasLtCreate)                                                                              \
    X(cublasLtDestroy)                                                                             \
    X(cublasLtMatmulDescCreate)                                                                    \
    X(cublasLtMatmulDescSetAttribute)                                                              \
    X(cublasLtMatmulDescDestroy)                                                                   \
    X(cublasLtMatrixLayoutCreate)                                                                  \
    X(cublasLtMatrixLayoutDestroy)                                                                 \
    X(cublasLtMatmulPreferenceCreate)                                                              \
    X(cublasLtMatmulPreferenceSetAttribute)                                                        \
    X(cublasLtMatmulPreferenceDestroy)                                                             \
    X(cublasLtMatmulAlgoGetHeuristic)                                                              \
    X(cublasLtMatmul)

#define LC_LT_MEMBER(f) decltype(&::f) f;
static struct { LC_LT_FUNCS(LC_LT_MEMBER) } lt;

#define LC_STR_(x) #x
#define LC_STR(x)  LC_STR_(x)

// Loads libcublasLt (its soname, then the path the build found); NULL or why not.
static const char *lt_load(void) {
    static int state; // 0 not tried, 1 loaded, -1 failed
    static char why[512];
    if (state) return state > 0 ? NULL : why;
    state = -1;
    const char *names[] = {"libcublasLt.so." LC_STR(CUBLAS_VER_MAJOR),
#ifdef LC_CUBLASLT_PATH
                           LC_CUBLASLT_PATH,
#endif
                           "libcublasLt.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, sizeof(why), "cannot load cuBLASLt (%s): %s", names[0], dlerror());
        return why;
    }
#define LC_LT_LOAD(f)                                                                              \
    if (!(lt.f = (decltype(lt.f))dlsym(h, #f))) {                                                  \
        snprintf(why, sizeof(why), "cuBLASLt (%s) has no %s", names[0], #f);                       \
        return why;                                                                                \
    }
    LC_LT_FUNCS(LC_LT_LOAD)
    state = 1;
    return NULL;
}

CudaContext *cuda_context(void) {
    return &g_ctx;
}

// ---- memory ------------------------------------------------------------------------------------

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    size_t n = bytes ? bytes : 1; // never NULL, like the CPU backend's
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError(); // an allocation failure is not sticky; clear it for the query below
        cudaMemGetInfo(&free_b, &total_b);
        LC_DIE("CUDA backend: cannot allocate %zu bytes (%.1f MiB) of device memory: %s "
               "(%.1f MiB free of %.1f MiB)",
               bytes, bytes / 1048576.0, cudaGetErrorString(e), free_b / 1048576.0,
               total_b / 1048576.0);
    }
    LC_CUDA_CHECK(cudaMemset(p, 0, n));
    return p;
}

static void cuda_free(void *p) {
    if (p) LC_CUDA_CHECK(cudaFree(p));
}

static void cuda_zero(void *p, size_t bytes) {
    if (bytes) LC_CUDA_CHECK(cudaMemset(p, 0, bytes));
}

static void cuda_to_device(void *dst, const void *src, size_t bytes) {
    if (bytes) LC_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

static void cuda_to_host(void *dst, const void *src, size_t bytes) {
    if (bytes) LC_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

static void cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) LC_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}

// One device, one stream: there are no host worker threads to set.
static int cuda_threads(int n) {
    return 1;
}

// ---- matrix products (cuBLASLt)
// ------------------------------------------------------------------

// Column-major D (m,n; ld m) = op(A) @ op(B) + beta * D (+ bias (m) on every column when bias is
// given), fp32 in and out with fp32 compute. op(A) is (m,k): A is stored (k,m) with ld lda when
// transa, else (m,k); op(B) is (k,n): B is stored (n,k) with ld ldb when transb, else (k,n).
static void lt_matmul(float *d, const float *a, const float *b, const float *bias, int m, int n,
                      int k, bool transa, int lda, bool transb, int ldb, float beta) {
    if (m <= 0 || n <= 0) return;
    CudaContext *ctx = &g_ctx;
    cublasLtMatmulDesc_t op;
    LC_CUBLAS_CHECK(lt.cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LC_CUBLAS_CHECK(
        lt.cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    LC_CUBLAS_CHECK(
        lt.cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    if (bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        LC_CUBLAS_CHECK(lt.cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                          sizeof(epi)));
        LC_CUBLAS_CHECK(lt.cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                          &bias, sizeof(bias)));
    }
    cublasLtMatrixLayout_t la, lb, ld;
    LC_CUBLAS_CHECK(
        lt.cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, transa ? k : m, transa ? m : k, lda));
    LC_CUBLAS_CHECK(
        lt.cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, transb ? n : k, transb ? k : n, ldb));
    LC_CUBLAS_CHECK(lt.cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, m));
    cublasLtMatmulPreference_t pref;
    LC_CUBLAS_CHECK(lt.cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = LC_CUDA_WORKSPACE;
    LC_CUBLAS_CHECK(lt.cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    LC_CUBLAS_CHECK(
        lt.cublasLtMatmulAlgoGetHeuristic(ctx->lt, op, la, lb, ld, ld, pref, 1, &heur, &found));
    if (found == 0)
        LC_DIE("CUDA backend: cuBLASLt has no algorithm for an fp32 matmul m=%d n=%d k=%d "
               "(transa %d, transb %d, bias %d)",
               m, n, k, (int)transa, (int)transb, bias != NULL);
    float alpha = 1.0f;
    LC_CUBLAS_CHECK(lt.cublasLtMatmul(ctx->lt, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld,
                                      &heur.algo, ctx->workspace, ws, ctx->stream));
    lt.cublasLtMatmulPreferenceDestroy(pref);
    lt.cublasLtMatrixLayoutDestroy(la);
    lt.cublasLtMatrixLayoutDestroy(lb);
    lt.cublasLtMatrixLayoutDestroy(ld);
    lt.cublasLtMatmulDescDestroy(op);
}

// Row-major (R,S) is column-major (S,R) with the same pointer: every product below is written as
// its transpose in column-major terms.

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias: out^T (OC,N) = weight (C,OC)^T @ inp^T (C,N).
void cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC) {
    lt_matmul(out, weight, inp, bias, OC, N, C, true, C, false, C, 0.0f);
}

// n floats of 1.0f, grown as needed (dbias as dout^T @ ones).
static const float *ones(size_t n) {
    CudaContext *ctx = &g_ctx;
    if (ctx->ones_len < n) {
        size_t len = n > 2 * ctx->ones_len ? n : 2 * ctx->ones_len;
        float *host = (float *)lc_malloc(len * sizeof(float));
        for (size_t i = 0; i < len; i++) host[i] = 1.0f;
        cuda_free(ctx->ones);
        ctx->ones = (float *)cuda_alloc(len * sizeof(float));
        cuda_to_device(ctx->ones, host, len * sizeof(float));
        free(host);
        ctx->ones_len = len;
    }
    return ctx->ones;
}

void cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC) {
    // dinp (N,C) = dout (N,OC) @ weight (OC,C): dinp^T (C,N) = weight^T (C,OC) @ dout^T (OC,N).
    if (dinp) lt_matmul(dinp, weight, dout, NULL, C, N, OC, false, C, false, OC, 0.0f);
    // dweight (OC,C) += dout^T @ inp: dweight^T (C,OC) += inp^T (C,N) @ dout (N,OC).
    lt_matmul(dweight, inp, dout, NULL, C, OC, N, false, C, true, OC, 1.0f);
    // dbias (OC) += dout^T (OC,N) @ ones (N).
    if (dbias) lt_matmul(dbias, dout, ones((size_t)N), NULL, OC, 1, N, false, OC, false, N, 1.0f);
}

// ---- the table
// -----------------------------------------------------------------------------------

// Every entry of Backend after its name, in order; the static_assert below keeps the list in step
// with kernels/kernels.h.
#define LC_BACKEND_ENTRIES(X)                                                                      \
    X(alloc)                                                                                       \
    X(free)                                                                                        \
    X(zero)                                                                                        \
    X(to_device)                                                                                   \
    X(to_host)                                                                                     \
    X(copy)                                                                                        \
    X(threads)                                                                                     \
    X(encoder_forward)                                                                             \
    X(encoder_backward)                                                                            \
    X(layernorm_forward)                                                                           \
    X(layernorm_backward)                                                                          \
    X(rmsnorm_forward)                                                                             \
    X(rmsnorm_backward)                                                                            \
    X(matmul_forward)                                                                              \
    X(matmul_backward)                                                                             \
    X(rope_forward)                                                                                \
    X(rope_backward)                                                                               \
    X(attention_forward)                                                                           \
    X(attention_backward)                                                                          \
    X(kvcache_write)                                                                               \
    X(attention_decode)                                                                            \
    X(gelu_forward)                                                                                \
    X(gelu_backward)                                                                               \
    X(swiglu_forward)                                                                              \
    X(swiglu_backward)                                                                             \
    X(residual_forward)                                                                            \
    X(classifier_forward)                                                                          \
    X(classifier_backward)                                                                         \
    X(adamw_update)                                                                                \
    X(sum_squares)                                                                                 \
    X(scale)                                                                                       \
    X(sample_tokens)

#define LC_ENTRY_ROW(e) {#e, offsetof(Backend, e)},
#define LC_ENTRY_ONE(e) +1
static const struct {
    const char *name;
    size_t offset;
} ENTRIES[] = {LC_BACKEND_ENTRIES(LC_ENTRY_ROW)};
static_assert(sizeof(Backend) == sizeof(const char *) +
                                     (0 LC_BACKEND_ENTRIES(LC_ENTRY_ONE)) * sizeof(void (*)(void)),
              "LC_BACKEND_ENTRIES must list every entry of Backend (kernels/kernels.h)");

// Every entry, in kernels.h's order (C++ wants them all named): memory here, matrix products
// through cuBLASLt here, kernels through ops.cu's adapters; NULL ones are not implemented yet.
static const Backend CUDA_BACKEND = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .zero = cuda_zero,
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .copy = cuda_copy,
    .threads = cuda_threads,
    .encoder_forward = cuda_op_encoder_forward,
    .encoder_backward = cuda_op_encoder_backward,
    .layernorm_forward = cuda_op_layernorm_forward,
    .layernorm_backward = cuda_op_layernorm_backward,
    .rmsnorm_forward = cuda_op_rmsnorm_forward,
    .rmsnorm_backward = cuda_op_rmsnorm_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .rope_forward = cuda_op_rope_forward,
    .rope_backward = cuda_op_rope_backward,
    .attention_forward = cuda_op_attention_forward,
    .attention_backward = cuda_op_attention_backward,
    .kvcache_write = cuda_op_kvcache_write,
    .attention_decode = cuda_op_attention_decode,
    .gelu_forward = cuda_op_gelu_forward,
    .gelu_backward = cuda_op_gelu_backward,
    .swiglu_forward = cuda_op_swiglu_forward,
    .swiglu_backward = cuda_op_swiglu_backward,
    .residual_forward = cuda_op_residual_forward,
    .classifier_forward = cuda_op_classifier_forward,
    .classifier_backward = cuda_op_classifier_backward,
    .adamw_update = cuda_op_adamw_update,
    .sum_squares = cuda_op_sum_squares,
    .scale = cuda_op_scale,
    .sample_tokens = cuda_op_sample_tokens,
};

// The entries of be that are NULL, comma-separated into buf; returns how many.
static int missing_entries(const Backend *be, char *buf, size_t len) {
    int count = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(ENTRIES) / sizeof(ENTRIES[0]); i++) {
        void (*fn)(void);
        memcpy(&fn, (const char *)be + ENTRIES[i].offset, sizeof(fn));
        if (fn) continue;
        int w = snprintf(buf + used, used < len ? len - used : 0, "%s%s", count ? ", " : "",
                         ENTRIES[i].name);
        if (w > 0) used += (size_t)w;
        count++;
    }
    return count;
}

// ---- device init
// ---------------------------------------------------------------------------------

// Why cudaGetDeviceCount failed, in the user's terms.
static const char *driver_hint(cudaError_t e) {
    int driver = 0;
    switch (e) {
    case cudaErrorInsufficientDriver:
        cudaDriverGetVersion(&driver);
        return driver == 0 ? "no NVIDIA driver is installed"
                           : "the NVIDIA driver is older than this CUDA runtime";
    case cudaErrorStubLibrary:
        return "the toolkit's stub libcuda.so was loaded instead of a driver's (check "
               "LD_LIBRARY_PATH)";
    case cudaErrorNoDevice:
        return "no CUDA device is visible (check CUDA_VISIBLE_DEVICES)";
    default:
        return cudaGetErrorName(e);
    }
}

static int g_state; // 0: not tried; 1: usable; -1: not usable (g_why says why)
static char g_why[1024];

static bool device_init(void) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(g_why, sizeof(g_why), "CUDA backend: no usable GPU (%s: %s)",
                 cudaGetErrorString(e), driver_hint(e));
        cudaGetLastError();
        return false;
    }
    if (count <= 0) {
        snprintf(g_why, sizeof(g_why), "CUDA backend: no usable GPU (no CUDA device found)");
        return false;
    }
    g_ctx.device = 0; // one device per process: choose it with CUDA_VISIBLE_DEVICES
    if ((e = cudaSetDevice(g_ctx.device)) != cudaSuccess) {
        snprintf(g_why, sizeof(g_why), "CUDA backend: no usable GPU (cudaSetDevice(%d): %s)",
                 g_ctx.device, cudaGetErrorString(e));
        cudaGetLastError();
        return false;
    }
    const char *lt_why = lt_load();
    if (lt_why) {
        snprintf(g_why, sizeof(g_why), "CUDA backend: %s", lt_why);
        return false;
    }
    cublasStatus_t st = lt.cublasLtCreate(&g_ctx.lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(g_why, sizeof(g_why), "CUDA backend: no usable GPU (cublasLtCreate: status %d)",
                 (int)st);
        return false;
    }
    if ((e = cudaMalloc(&g_ctx.workspace, LC_CUDA_WORKSPACE)) != cudaSuccess) {
        snprintf(g_why, sizeof(g_why),
                 "CUDA backend: cannot allocate cuBLASLt's workspace of %zu bytes: %s",
                 LC_CUDA_WORKSPACE, cudaGetErrorString(e));
        cudaGetLastError();
        lt.cublasLtDestroy(g_ctx.lt);
        return false;
    }
    g_ctx.stream = 0;
    return true;
}

const Backend *backend_cuda(char *why, size_t len) {
    if (g_state == 0) {
        // The device first (what this machine lacks), then the build's completeness (what this
        // binary lacks); both when both are missing.
        char missing[768], device[sizeof(g_why)] = "";
        bool usable = device_init();
        if (!usable) memcpy(device, g_why, sizeof(device));
        if (missing_entries(&CUDA_BACKEND, missing, sizeof(missing)) > 0) {
            snprintf(g_why, sizeof(g_why),
                     "%.400s%sthe CUDA backend is built but its kernels are not complete in this "
                     "build (missing: %s)",
                     device, device[0] ? "; also, " : "", missing);
            usable = false;
        }
        g_state = usable ? 1 : -1;
    }
    if (g_state > 0) return &CUDA_BACKEND;
    if (why && len) snprintf(why, len, "%s", g_why);
    return NULL;
}

void backend_cuda_versions(char *buf, size_t len) {
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    char drv[32] = "none";
    if (driver > 0) snprintf(drv, sizeof(drv), "%d.%d", driver / 1000, driver % 1000 / 10);
    size_t ltv = lt_load() ? 0 : lt.cublasLtGetVersion(), dnn = cudnnGetVersion();
    snprintf(buf, len,
             "CUDA runtime %d.%d, driver %s, cuBLASLt %zu.%zu.%zu, cuDNN %zu.%zu.%zu, sm %s",
             runtime / 1000, runtime % 1000 / 10, drv, ltv / 10000, ltv / 100 % 100, ltv % 100,
             dnn / 10000, dnn / 100 % 100, dnn % 100, LC_CUDA_ARCHS);
}
