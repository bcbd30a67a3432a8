// kernels/cuda/backend_cuda.cu: the host side of the CUDA backend (docs/cuda.md).
//
// - Device init, once: cudaGetDeviceCount + cudaSetDevice. Any error there (no driver: 35
//   cudaErrorInsufficientDriver; the toolkit's stub libcuda: 34 cudaErrorStubLibrary; no
//   device: 100) means "no usable GPU": backend_cuda() returns NULL with the cause, never dies.
// - The cuBLASLt handle and its one workspace, allocated once.
// - The memory entries (one cudaMalloc per call, i.e. per arena) and the matrix products
//   (cuBLASLt: Act A and B, fp32 accumulation; with fp32 storage the same numbers as the CPU
//   backend's sgemm up to summation order; parameter gradients accumulate in fp32).
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
#include "kernels/collective.h"
#include "kernels/kernels.h"
}
#include "kernels/cuda/cuda.h"

#ifndef LC_CUDA_ARCHS
#define LC_CUDA_ARCHS "?"
#endif

LC_CUDA_NAMESPACE_BEGIN

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

// Loads libcublasLt (its soname, then the path the build found); NULL or why not. Under the
// emulation harness the table points at the shim's functions (tests/cuda_emu/cuda_shims.h).
static const char *lt_load(void) {
    static int state; // 0 not tried, 1 loaded, -1 failed
    static char why[512];
    if (state) return state > 0 ? NULL : why;
#ifdef LC_CUDA_EMULATED
#define LC_LT_BIND(f) lt.f = &::f;
    LC_LT_FUNCS(LC_LT_BIND)
    state = 1;
    return NULL;
#else
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
#endif
}

CudaContext *cuda_context(void) {
    return &g_ctx;
}

// ---- memory ------------------------------------------------------------------------------------

// The live allocations and their sizes (a handful: one per arena), for the memory figures.
static struct {
    void *p;
    size_t bytes;
} * g_allocs;
static int g_nallocs, g_cap;

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    size_t n = bytes ? bytes : 1; // never NULL, like the CPU backend's
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError(); // an allocation failure is not sticky; clear it for the query below
        cudaMemGetInfo(&free_b, &total_b);
        LC_DIE("CUDA backend: cannot allocate %zu bytes (%.1f MiB) of device memory: %s "
               "(%.1f MiB free of %.1f MiB; the backend holds %.1f MiB)",
               bytes, bytes / 1048576.0, cudaGetErrorString(e), free_b / 1048576.0,
               total_b / 1048576.0, g_ctx.bytes / 1048576.0);
    }
    LC_CUDA_CHECK(cudaMemset(p, 0, n));
    if (g_nallocs == g_cap) {
        g_cap = g_cap ? 2 * g_cap : 64;
        void *grown = realloc(g_allocs, (size_t)g_cap * sizeof(*g_allocs));
        if (!grown) LC_DIE("CUDA backend: out of host memory for the allocation table");
        g_allocs = (decltype(g_allocs))grown;
    }
    g_allocs[g_nallocs].p = p;
    g_allocs[g_nallocs++].bytes = n;
    g_ctx.bytes += n;
    if (g_ctx.bytes > g_ctx.peak_bytes) g_ctx.peak_bytes = g_ctx.bytes;
    return p;
}

static void cuda_free(void *p) {
    if (!p) return;
    for (int i = 0; i < g_nallocs; i++)
        if (g_allocs[i].p == p) {
            g_ctx.bytes -= g_allocs[i].bytes;
            g_allocs[i] = g_allocs[--g_nallocs];
            break;
        }
    LC_CUDA_CHECK(cudaFree(p));
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

// The largest power of two (up to 256) dividing p's address: the alignment cuBLASLt's heuristic
// is told, since it otherwise assumes 256 and the algorithm it picks then fails on the less
// aligned slices of an arena (a layer's activations, a micro-batch's rows).
static uint32_t alignment(const void *p) {
    uint32_t a = 256;
    while (a > 1 && (uintptr_t)p % a) a /= 2;
    return a;
}

// The cuBLASLt type of Act storage: CUDA_R_16BF under precision bf16, else CUDA_R_32F.
static cudaDataType_t act_type(void) {
    return g_ctx.bf16 ? CUDA_R_16BF : CUDA_R_32F;
}

// Column-major D (m,n; ld ldd >= m) = alpha op(A) @ op(B) + beta D (+ bias (m) on every column when
// bias is given). op(A) is (m,k): A is stored (k,m) with ld lda when transa, else (m,k); op(B) is
// (k,n): B is stored (n,k) with ld ldb when transb, else (k,n). A and B are Act (act_type()); D
// (which is also C) is dtype, CUDA_R_32F or Act's; the bias is D's type (cuBLASLt's default).
// The compute type is the context's, CUBLAS_COMPUTE_32F: fp32 accumulation, which cuBLASLt takes
// with fp32 A/B/C/D and with bf16 A/B and bf16 or fp32 C/D.
static void lt_matmul(void *d, cudaDataType_t dtype, const void *a, const void *b, const void *bias,
                      int m, int n, int k, bool transa, int lda, bool transb, int ldb, float alpha,
                      float beta, int ldd) {
    if (m <= 0 || n <= 0) return;
    CudaContext *ctx = &g_ctx;
    cudaDataType_t abtype = act_type();
    cublasLtMatmulDesc_t op;
    LC_CUBLAS_CHECK(lt.cublasLtMatmulDescCreate(&op, ctx->compute, CUDA_R_32F));
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
        lt.cublasLtMatrixLayoutCreate(&la, abtype, transa ? k : m, transa ? m : k, lda));
    LC_CUBLAS_CHECK(
        lt.cublasLtMatrixLayoutCreate(&lb, abtype, transb ? n : k, transb ? k : n, ldb));
    LC_CUBLAS_CHECK(lt.cublasLtMatrixLayoutCreate(&ld, dtype, m, n, ldd));
    cublasLtMatmulPreference_t pref;
    LC_CUBLAS_CHECK(lt.cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = LC_CUDA_WORKSPACE;
    LC_CUBLAS_CHECK(lt.cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    const void *align_ptr[4] = {a, b, d, d}; // C is D
    for (int i = 0; i < 4; i++) {
        uint32_t al = alignment(align_ptr[i]);
        LC_CUBLAS_CHECK(
            lt.cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &al, sizeof(al)));
    }
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    LC_CUBLAS_CHECK(
        lt.cublasLtMatmulAlgoGetHeuristic(ctx->lt, op, la, lb, ld, ld, pref, 1, &heur, &found));
    if (found == 0)
        LC_DIE("CUDA backend: cuBLASLt has no algorithm for a matmul m=%d n=%d k=%d "
               "(transa %d, transb %d, bias %d, A/B type %d, D type %d, compute %d)",
               m, n, k, (int)transa, (int)transb, bias != NULL, (int)abtype, (int)dtype,
               (int)ctx->compute);
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

// out (N,OC) Act = inp (N,C) Act @ weight (OC,C)^T Act + bias (OC) Act: out^T (OC,N) =
// weight (C,OC)^T @ inp^T (C,N), the bias through the BIAS epilogue.
void cuda_matmul_forward(Act *out, const Act *inp, const Act *weight, const Act *bias, int N, int C,
                         int OC) {
    lt_matmul(out, act_type(), weight, inp, bias, OC, N, C, true, C, false, C, 1.0f, 0.0f, OC);
}

// out (N,OC) Act = alpha inp (N,C) Act @ weight (OC,C)^T Act, no bias.
void cuda_matmul_scaled(Act *out, const Act *inp, const Act *weight, int N, int C, int OC,
                        float alpha) {
    lt_matmul(out, act_type(), weight, inp, NULL, OC, N, C, true, C, false, C, alpha, 0.0f, OC);
}

// n ones of Act's type, grown (never shrunk) when a larger n is seen, so a step allocates
// nothing once its largest N has been seen: dbias as dout^T @ ones, whose A and B must share a
// type. The fp32 vector is the context's; the bf16 one (0x3F80 is bf16 1.0) lives here.
static struct {
    uint16_t *p;
    size_t len;
} g_ones_bf16;

static const void *ones(size_t n) {
    CudaContext *ctx = &g_ctx;
    size_t have = ctx->bf16 ? g_ones_bf16.len : ctx->ones_len;
    if (have >= n) return ctx->bf16 ? (const void *)g_ones_bf16.p : (const void *)ctx->ones;
    size_t len = n > 2 * have ? n : 2 * have;
    if (ctx->bf16) {
        uint16_t *host = (uint16_t *)lc_malloc(len * sizeof(uint16_t));
        for (size_t i = 0; i < len; i++) host[i] = 0x3F80;
        cuda_free(g_ones_bf16.p);
        g_ones_bf16.p = (uint16_t *)cuda_alloc(len * sizeof(uint16_t));
        cuda_to_device(g_ones_bf16.p, host, len * sizeof(uint16_t));
        free(host);
        g_ones_bf16.len = len;
        return g_ones_bf16.p;
    }
    float *host = (float *)lc_malloc(len * sizeof(float));
    for (size_t i = 0; i < len; i++) host[i] = 1.0f;
    cuda_free(ctx->ones);
    ctx->ones = (float *)cuda_alloc(len * sizeof(float));
    cuda_to_device(ctx->ones, host, len * sizeof(float));
    free(host);
    ctx->ones_len = len;
    return ctx->ones;
}

// dinp (N,C) Act written (when not NULL); dweight (OC,C) fp32 +=; dbias (OC) fp32 += (when not
// NULL); dout (N,OC), inp (N,C), weight (OC,C) Act. The parameter gradients accumulate in fp32
// through beta = 1 on an fp32 C/D, which cuBLASLt takes beside bf16 A/B.
void cuda_matmul_backward(Act *dinp, float *dweight, float *dbias, const Act *dout, const Act *inp,
                          const Act *weight, int N, int C, int OC) {
    // dinp (N,C) = dout (N,OC) @ weight (OC,C): dinp^T (C,N) = weight^T (C,OC) @ dout^T (OC,N).
    if (dinp)
        lt_matmul(dinp, act_type(), weight, dout, NULL, C, N, OC, false, C, false, OC, 1.0f, 0.0f,
                  C);
    // dweight (OC,C) += dout^T @ inp: dweight^T (C,OC) += inp^T (C,N) @ dout (N,OC); skipped for
    // a frozen weight.
    if (dweight)
        lt_matmul(dweight, CUDA_R_32F, inp, dout, NULL, C, OC, N, false, C, true, OC, 1.0f, 1.0f,
                  C);
    // dbias (OC) += dout^T (OC,N) @ ones (N): the same sums in the same order on every call
    // (the BGRADB epilogue would overwrite dbias, not accumulate into it).
    if (dbias)
        lt_matmul(dbias, CUDA_R_32F, dout, ones((size_t)N), NULL, OC, 1, N, false, OC, false, N,
                  1.0f, 1.0f, OC);
}

// The address of element i of an Act array.
static Act *act_at(const Act *p, size_t i) {
    return (char *)p + i * (g_ctx.bf16 ? sizeof(__nv_bfloat16) : sizeof(float));
}

// LoRA (kernels.h): h (N,r) Act = inp (N,C) @ a (r,C)^T; out (N,OC) columns [o0, o0+OS) +=
// scale * h @ b (OS,r)^T. The column block of out is, column-major, rows o0.. of (OC,N) with
// ld OC: a D at out + o0 with ld OC.
void cuda_lora_forward(Act *out, Act *h, const Act *inp, const Act *a, const Act *b, int N, int C,
                       int OC, int o0, int OS, int r, float scale) {
    lt_matmul(h, act_type(), a, inp, NULL, r, N, C, true, C, false, C, 1.0f, 0.0f, r);
    lt_matmul(act_at(out, (size_t)o0), act_type(), b, h, NULL, OS, N, r, true, r, false, r, scale,
              1.0f, OC);
}

// g = dout columns [o0, o0+OS) (column-major (OS,N) at dout + o0, ld OC): dh (N,r) = scale g @ b;
// db (OS,r) fp32 += scale g^T @ h; da (r,C) fp32 += dh^T @ inp; dinp (N,C) += dh @ a.
void cuda_lora_backward(Act *dinp, float *da, float *db, Act *dh, const Act *dout, const Act *inp,
                        const Act *h, const Act *a, const Act *b, int N, int C, int OC, int o0,
                        int OS, int r, float scale) {
    const Act *g = act_at(dout, (size_t)o0);
    // dh^T (r,N) = b^T (r,OS) @ g^T (OS,N)
    lt_matmul(dh, act_type(), b, g, NULL, r, N, OS, false, r, false, OC, scale, 0.0f, r);
    // db^T (r,OS) += h^T (r,N) @ g (N,OS)
    if (db) lt_matmul(db, CUDA_R_32F, h, g, NULL, r, OS, N, false, r, true, OC, scale, 1.0f, r);
    // da^T (C,r) += inp^T (C,N) @ dh (N,r)
    if (da) lt_matmul(da, CUDA_R_32F, inp, dh, NULL, C, r, N, false, C, true, r, 1.0f, 1.0f, C);
    // dinp^T (C,N) += a^T (C,r) @ dh^T (r,N)
    lt_matmul(dinp, act_type(), a, dh, NULL, C, N, r, false, C, false, r, 1.0f, 1.0f, C);
}

// ---- the table
// -----------------------------------------------------------------------------------

// Every entry of Backend after its name and act_size, in order; the static_assert below keeps the
// list in step with kernels/kernels.h.
#define LC_BACKEND_ENTRIES(X)                                                                      \
    X(alloc)                                                                                       \
    X(free)                                                                                        \
    X(zero)                                                                                        \
    X(to_device)                                                                                   \
    X(to_host)                                                                                     \
    X(copy)                                                                                        \
    X(threads)                                                                                     \
    X(act_from_float)                                                                              \
    X(act_to_float)                                                                                \
    X(encoder_forward)                                                                             \
    X(encoder_backward)                                                                            \
    X(layernorm_forward)                                                                           \
    X(layernorm_backward)                                                                          \
    X(rmsnorm_forward)                                                                             \
    X(rmsnorm_backward)                                                                            \
    X(matmul_forward)                                                                              \
    X(matmul_backward)                                                                             \
    X(lora_forward)                                                                                \
    X(lora_backward)                                                                               \
    X(rope_forward)                                                                                \
    X(rope_backward)                                                                               \
    X(attention_state_floats)                                                                      \
    X(attention_scratch_floats)                                                                    \
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
static_assert(sizeof(Backend) == sizeof(const char *) + sizeof(size_t) +
                                     (0 LC_BACKEND_ENTRIES(LC_ENTRY_ONE)) * sizeof(void (*)(void)),
              "LC_BACKEND_ENTRIES must list every entry of Backend (kernels/kernels.h)");

// Every entry, in kernels.h's order (C++ wants them all named): memory here, matrix products
// through cuBLASLt here, kernels through ops.cu's adapters; NULL ones are not implemented yet.
// act_size is the default precision's (bf16); backend_cuda() returns a copy configured for the
// options.
static const Backend CUDA_BACKEND = {
    .name = "cuda",
    .act_size = sizeof(__nv_bfloat16),
    .alloc = cuda_alloc,
    .free = cuda_free,
    .zero = cuda_zero,
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .copy = cuda_copy,
    .threads = cuda_threads,
    .act_from_float = cuda_op_act_from_float,
    .act_to_float = cuda_op_act_to_float,
    .encoder_forward = cuda_op_encoder_forward,
    .encoder_backward = cuda_op_encoder_backward,
    .layernorm_forward = cuda_op_layernorm_forward,
    .layernorm_backward = cuda_op_layernorm_backward,
    .rmsnorm_forward = cuda_op_rmsnorm_forward,
    .rmsnorm_backward = cuda_op_rmsnorm_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .lora_forward = cuda_lora_forward,
    .lora_backward = cuda_lora_backward,
    .rope_forward = cuda_op_rope_forward,
    .rope_backward = cuda_op_rope_backward,
    .attention_state_floats = cuda_op_attention_state_floats,
    .attention_scratch_floats = cuda_op_attention_scratch_floats,
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

// The device's marketing name ("NVIDIA H100 80GB HBM3"), or its compute capability.
static void device_name(char *buf, size_t len) {
#ifdef LC_CUDA_EMULATED
    snprintf(buf, len, "emulated H100 (tests/cuda_emu)");
#else
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, g_ctx.device) == cudaSuccess)
        snprintf(buf, len, "%s", prop.name);
    else
        snprintf(buf, len, "CUDA device %d", g_ctx.device);
#endif
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
    // One GPU per process: under a launcher, the process's local rank picks it among the visible
    // ones (one visible: that one, as with srun --gpus-per-task=1 or CUDA_VISIBLE_DEVICES);
    // the NCCL communicator checks the same rule (kernels/cuda/collective_nccl.cu).
    LaunchEnv env;
    char env_why[256];
    if (launch_env(&env, env_why, sizeof(env_why)) != 0) env.local_rank = 0; // comm_open says why
    g_ctx.device = count == 1 ? 0 : env.local_rank;
    if (g_ctx.device >= count) {
        snprintf(g_why, sizeof(g_why),
                 "CUDA backend: local rank %d needs its own GPU but %d are visible (run one "
                 "process per GPU; docs/cluster.md)",
                 env.local_rank, count);
        return false;
    }
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
    g_ctx.compute = CUBLAS_COMPUTE_32F;
    device_name(g_ctx.name, sizeof(g_ctx.name));
    return true;
}

LC_CUDA_NAMESPACE_END
LC_CUDA_USE_NAMESPACE

const Backend *backend_cuda(const BackendOptions *opts, char *why, size_t len) {
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
    if (g_state < 0) {
        if (why && len) snprintf(why, len, "%s", g_why);
        return NULL;
    }
    BackendOptions defaults = {};
    if (!opts) opts = &defaults;
    // Precision: bf16 (the default, `auto`) stores Act as __nv_bfloat16, fp32 as float; the
    // matrix products take A and B of that type and accumulate in fp32 either way.
    g_ctx.bf16 = opts->precision != BACKEND_PRECISION_FP32;
    g_ctx.compute = CUBLAS_COMPUTE_32F;
    // The table configured for the options (one configuration per process: opening the backend
    // again reconfigures this copy); with `attention: cudnn`, cuDNN's fused attention
    // (attention_cudnn.cu), whose state is the flash kernels' (the logsumexp), so the size
    // entries stay. `attention: flash` is the builtin table: its kernels already are flash-style.
    static Backend configured;
    configured = CUDA_BACKEND;
    configured.act_size = g_ctx.bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
    if (opts->attention == BACKEND_ATTENTION_CUDNN) {
        configured.attention_forward = cuda_cudnn_attention_forward;
        configured.attention_backward = cuda_op_cudnn_attention_backward;
    }
    return &configured;
}

size_t backend_cuda_memory(size_t *peak) {
    if (peak) *peak = g_ctx.peak_bytes;
    return g_ctx.bytes;
}

// Dense bf16 tensor-core FLOP/s per SM per clock, by compute capability: A100 (8.0) 2048,
// consumer Ampere/Ada (8.6, 8.9) 512 (their fp32-accumulate rate), H100/H200 (9.0) 4096, B200
// (10.0) 8192. Unknown architectures report 0 (no MFU).
static double flops_per_sm_clock(int major, int minor) {
    if (major == 8) return minor == 0 ? 2048 : 512;
    if (major == 9) return 4096;
    if (major == 10) return 8192;
    return 0;
}

double backend_cuda_bf16_peak(char *name, size_t len) {
    if (g_state <= 0) {
        if (len) snprintf(name, len, "no device");
        return 0;
    }
    int sms = 0, khz = 0, major = 0, minor = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, g_ctx.device);
    cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, g_ctx.device);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, g_ctx.device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, g_ctx.device);
    if (len) snprintf(name, len, "%s", g_ctx.name);
    return flops_per_sm_clock(major, minor) * sms * khz * 1e3;
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
