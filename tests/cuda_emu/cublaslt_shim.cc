// tests/cuda_emu/cublaslt_shim.cc: the cuBLASLt calls of the CUDA backend on the CPU
// (tests/cuda_emu/cuda_shims.h renames them). It enforces the library's rules as documented and
// computes the product in double from the stored values:
//   - layouts are column-major: ld >= rows; op(A) is (m,k), op(B) (k,n), C and D (m,n), with A
//     stored (k,m) when transposed, B stored (n,k) when transposed;
//   - data and compute types: CUBLAS_COMPUTE_32F takes fp32 A/B/C/D, or bf16 A/B with bf16 or
//     fp32 C/D (C and D of one type); CUBLAS_COMPUTE_32F_FAST_16BF fp32 storage whose A and B are
//     rounded to bf16 (round to nearest even) before the product, as the tensor cores read them;
//     scale type fp32; the BIAS epilogue's vector of D's type (cuBLASLt's default, the only one
//     the backend uses; the shim refuses another);
//   - bf16 inputs are widened exactly, the product is computed in double, and a bf16 D receives
//     the result rounded to nearest even once;
//   - the heuristic assumes the preference's minimum alignments (256 bytes unless set): the
//     algorithm it returns refuses pointers less aligned (cuBLASLt's CUBLAS_STATUS_INVALID_VALUE);
//   - every matrix, the bias and the workspace lie inside device allocations; the workspace is no
//     larger than the preference allowed; the bias epilogue has a bias pointer of m elements.
// A violation is printed, counted (lc_emu_shim_errors) and returned as a failed status.
#include "tests/cuda_emu/cuda_shims.h"

#include <cuda_bf16.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct Desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;
    int bias_type = -1; // -1: D's type
};

struct Layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

struct Pref {
    size_t max_ws = 0;
    uint32_t align[4] = {256, 256, 256, 256}; // A, B, C, D
};

const uint64_t kAlgoMagic = 0x6c63656d75616c67ull; // "lcemualg"
int g_handles;
long g_matmuls;

cublasStatus_t bad(const char *call, const char *why) {
    lc_emu_shim_error(call, "%s", why);
    return CUBLAS_STATUS_INVALID_VALUE;
}

template <class T> bool set_value(const void *buf, size_t size, T *out) {
    if (size != sizeof(T)) return false;
    memcpy(out, buf, sizeof(T));
    return true;
}

size_t type_size(cudaDataType_t t) {
    return t == CUDA_R_32F ? 4 : t == CUDA_R_16BF ? 2 : 0;
}

// Bytes from the first to one past the last element a column-major layout touches.
size_t extent(const Layout *l) {
    return ((l->cols - 1) * (uint64_t)l->ld + l->rows) * type_size(l->type);
}

double load(const void *p, cudaDataType_t t, size_t i, bool to_bf16) {
    if (t == CUDA_R_16BF) return (double)__bfloat162float(((const __nv_bfloat16 *)p)[i]);
    float v = ((const float *)p)[i];
    return to_bf16 ? (double)__bfloat162float(__float2bfloat16_rn(v)) : (double)v;
}

void store(void *p, cudaDataType_t t, size_t i, double v) {
    if (t == CUDA_R_16BF)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v);
    else
        ((float *)p)[i] = (float)v;
}

} // namespace

extern "C" {

long lc_emu_matmuls(void) {
    return g_matmuls;
}

size_t lc_emu_cublasLtGetVersion(void) {
    return CUBLAS_VERSION;
}

cublasStatus_t lc_emu_cublasLtCreate(cublasLtHandle_t *h) {
    *h = (cublasLtHandle_t)&g_handles;
    g_handles++;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtDestroy(cublasLtHandle_t h) {
    if (h != (cublasLtHandle_t)&g_handles || g_handles <= 0)
        return bad("cublasLtDestroy", "not a live handle");
    g_handles--;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                               cudaDataType_t scale) {
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_16BF)
        return bad("cublasLtMatmulDescCreate", "compute type other than 32F / 32F_FAST_16BF");
    if (scale != CUDA_R_32F)
        return bad("cublasLtMatmulDescCreate", "scale type must be CUDA_R_32F for 32F compute");
    Desc *x = new Desc;
    x->compute = compute;
    x->scale = scale;
    *d = (cublasLtMatmulDesc_t)x;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                                     cublasLtMatmulDescAttributes_t attr,
                                                     const void *buf, size_t size) {
    Desc *x = (Desc *)d;
    const char *call = "cublasLtMatmulDescSetAttribute";
    bool ok;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
        ok = set_value(buf, size, &x->ta);
        break;
    case CUBLASLT_MATMUL_DESC_TRANSB:
        ok = set_value(buf, size, &x->tb);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        ok = set_value(buf, size, &x->epilogue);
        if (ok && x->epilogue != CUBLASLT_EPILOGUE_DEFAULT && x->epilogue != CUBLASLT_EPILOGUE_BIAS)
            return bad(call, "epilogue other than DEFAULT / BIAS");
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        ok = set_value(buf, size, &x->bias);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        ok = set_value(buf, size, &x->bias_type);
        if (ok && x->bias_type != -1 && !type_size((cudaDataType_t)x->bias_type))
            return bad(call, "bias data type other than CUDA_R_32F / CUDA_R_16BF");
        break;
    default:
        return bad(call, "attribute the shim does not know");
    }
    if (!ok) return bad(call, "attribute size does not match its type");
    if ((x->ta != CUBLAS_OP_N && x->ta != CUBLAS_OP_T) ||
        (x->tb != CUBLAS_OP_N && x->tb != CUBLAS_OP_T))
        return bad(call, "transpose other than N / T");
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete (Desc *)d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type,
                                                 uint64_t rows, uint64_t cols, int64_t ld) {
    const char *call = "cublasLtMatrixLayoutCreate";
    if (!type_size(type)) return bad(call, "data type other than CUDA_R_32F / CUDA_R_16BF");
    if (rows == 0 || cols == 0) return bad(call, "empty matrix");
    if (ld < (int64_t)rows) {
        lc_emu_shim_error(call, "ld %lld < rows %llu (column-major: ld >= rows)", (long long)ld,
                          (unsigned long long)rows);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *l = (cublasLtMatrixLayout_t) new Layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete (Layout *)l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = (cublasLtMatmulPreference_t) new Pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                           cublasLtMatmulPreferenceAttributes_t a,
                                                           const void *buf, size_t size) {
    Pref *x = (Pref *)p;
    const char *call = "cublasLtMatmulPreferenceSetAttribute";
    bool ok;
    switch (a) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        ok = set_value(buf, size, &x->max_ws);
        break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
        ok = set_value(buf, size, &x->align[0]);
        break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
        ok = set_value(buf, size, &x->align[1]);
        break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
        ok = set_value(buf, size, &x->align[2]);
        break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
        ok = set_value(buf, size, &x->align[3]);
        break;
    default:
        return bad(call, "attribute the shim does not know");
    }
    if (!ok) return bad(call, "attribute size does not match its type");
    for (uint32_t al : x->align)
        if (al == 0 || (al & (al - 1))) return bad(call, "alignment that is not a power of two");
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete (Pref *)p;
    return CUBLAS_STATUS_SUCCESS;
}

// The shapes of op(A) (m,k), op(B) (k,n), C and D (m,n) must agree, and the types must be a
// combination cuBLASLt supports for the compute type.
static cublasStatus_t check_problem(const char *call, const Desc *d, const Layout *a,
                                    const Layout *b, const Layout *c, const Layout *dl) {
    uint64_t m = dl->rows, n = dl->cols;
    uint64_t am = d->ta == CUBLAS_OP_T ? a->cols : a->rows,
             k = d->ta == CUBLAS_OP_T ? a->rows : a->cols;
    uint64_t bk = d->tb == CUBLAS_OP_T ? b->cols : b->rows,
             bn = d->tb == CUBLAS_OP_T ? b->rows : b->cols;
    if (am != m || bk != k || bn != n || c->rows != m || c->cols != n) {
        lc_emu_shim_error(call,
                          "shapes disagree: op(A) %llux%llu, op(B) %llux%llu, C %llux%llu, D "
                          "%llux%llu",
                          (unsigned long long)am, (unsigned long long)k, (unsigned long long)bk,
                          (unsigned long long)bn, (unsigned long long)c->rows,
                          (unsigned long long)c->cols, (unsigned long long)m,
                          (unsigned long long)n);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (a->type != b->type) return bad(call, "A and B of different types");
    if (c->type != dl->type) return bad(call, "C and D of different types");
    if (a->type == CUDA_R_16BF && d->compute != CUBLAS_COMPUTE_32F)
        return bad(call, "bf16 A/B take CUBLAS_COMPUTE_32F");
    if (a->type == CUDA_R_32F && dl->type != CUDA_R_32F) return bad(call, "fp32 A/B need fp32 C/D");
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
    cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref,
    int requested, cublasLtMatmulHeuristicResult_t *results, int *found) {
    const char *call = "cublasLtMatmulAlgoGetHeuristic";
    if (h != (cublasLtHandle_t)&g_handles || g_handles <= 0) return bad(call, "not a live handle");
    if (requested < 1) return bad(call, "requestedAlgoCount < 1");
    cublasStatus_t st = check_problem(call, (const Desc *)op, (const Layout *)a, (const Layout *)b,
                                      (const Layout *)c, (const Layout *)d);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    const Pref *p = (const Pref *)pref;
    memset(results, 0, sizeof(*results));
    uint64_t *algo = results[0].algo.data;
    algo[0] = kAlgoMagic;
    for (int i = 0; i < 4; i++) algo[1 + i] = p->align[i];
    algo[5] = ((const Layout *)d)->rows, algo[6] = ((const Layout *)d)->cols;
    results[0].workspaceSize = p->max_ws < ((size_t)1 << 20) ? p->max_ws : ((size_t)1 << 20);
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha,
                                     const void *A, cublasLtMatrixLayout_t a, const void *B,
                                     cublasLtMatrixLayout_t b, const void *beta, const void *C,
                                     cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                                     const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes,
                                     cudaStream_t) {
    const char *call = "cublasLtMatmul";
    if (h != (cublasLtHandle_t)&g_handles || g_handles <= 0) return bad(call, "not a live handle");
    const Desc *x = (const Desc *)op;
    const Layout *la = (const Layout *)a, *lb = (const Layout *)b, *lc = (const Layout *)c,
                 *ld = (const Layout *)d;
    cublasStatus_t st = check_problem(call, x, la, lb, lc, ld);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (!algo || algo->data[0] != kAlgoMagic)
        return bad(call, "algo not from cublasLtMatmulAlgoGetHeuristic");
    if (algo->data[5] != ld->rows || algo->data[6] != ld->cols)
        return bad(call, "algo found for another problem size");
    if (!alpha || !beta) return bad(call, "alpha and beta are host pointers (pointer mode host)");
    const void *ptrs[4] = {A, B, C, D};
    const Layout *lays[4] = {la, lb, lc, ld};
    const char *names[4] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; i++) {
        if (!lc_emu_is_device(ptrs[i], extent(lays[i]))) {
            lc_emu_shim_error(call, "%s %p (%zu bytes) is not inside a device allocation", names[i],
                              ptrs[i], extent(lays[i]));
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        if ((uintptr_t)ptrs[i] % algo->data[1 + i]) {
            lc_emu_shim_error(call,
                              "%s %p is not aligned to %llu bytes, which the heuristic assumed "
                              "(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%s_BYTES)",
                              names[i], ptrs[i], (unsigned long long)algo->data[1 + i], names[i]);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    }
    if (C == D && (lc->ld != ld->ld || lc->type != ld->type))
        return bad(call, "C and D share memory with different layouts");
    if (ws_bytes && !lc_emu_is_device(ws, ws_bytes))
        return bad(call, "workspace not on the device");
    if (ws_bytes < algo->data[7]) return bad(call, "workspace smaller than the algo needs");
    cudaDataType_t bias_t = x->bias_type < 0 ? ld->type : (cudaDataType_t)x->bias_type;
    bool has_bias = x->epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (has_bias && bias_t != ld->type)
        return bad(call, "bias of a type other than D's (a bf16 D takes a bf16 bias)");
    if (has_bias && !lc_emu_is_device(x->bias, ld->rows * type_size(bias_t)))
        return bad(call, "BIAS epilogue without a device bias pointer of m elements");

    bool fast = x->compute == CUBLAS_COMPUTE_32F_FAST_16BF;
    float al = *(const float *)alpha, be = *(const float *)beta;
    uint64_t m = ld->rows, n = ld->cols, k = x->ta == CUBLAS_OP_T ? la->rows : la->cols;
    std::vector<double> out(m * n);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
            double s = 0.0;
            for (uint64_t p = 0; p < k; p++) {
                size_t ia = x->ta == CUBLAS_OP_T ? p + i * la->ld : i + p * la->ld;
                size_t ib = x->tb == CUBLAS_OP_T ? j + p * lb->ld : p + j * lb->ld;
                s += load(A, la->type, ia, fast) * load(B, lb->type, ib, fast);
            }
            double v = al * s;
            if (be != 0.0f) v += be * load(C, lc->type, i + j * lc->ld, false);
            if (has_bias) v += load(x->bias, bias_t, i, false);
            out[i + j * m] = v;
        }
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) store(D, ld->type, i + j * ld->ld, out[i + j * m]);
    g_matmuls++;
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
