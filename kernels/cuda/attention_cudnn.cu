// kernels/cuda/attention_cudnn.cu: causal grouped-query self-attention with segment masking
// through cuDNN's fused flash attention (docs/cuda.md, "cuDNN fused attention"), built with the
// backend descriptor API (no cudnn-frontend). The fused engine wants bf16 Q/K/V/O/dO/dQ/dK/dV and
// the graph reads Q, K, V (and writes dQ, dK, dV) as strided views of the interleaved (B,T,QKV)
// rows, O and dO as (B,T,C) rows. With bf16 activation storage those views are the activations
// themselves; with fp32 storage (or a pointer off 16-byte alignment) small kernels below convert
// into, and out of, one bf16 staging buffer with the same layout. Packed segments are an
// additive bf16 bias (B,1,T,T) of 0 / -inf built by a kernel; the causal mask is the graph's own
// GEN_INDEX / CMP_GE / BINARY_SELECT chain.
//
// The operation graphs follow the composite SDPA that cudnn-frontend lowers to (matmul, pointwise,
// reduction, reshape), and their execution plans are cached per shape, so a training step builds
// nothing after its first call; the workspace and the staging buffer grow only when a larger shape
// comes. The same file compiles under the CPU emulation harness (tests/test_cuda_cudnn.cc), where
// tests/cuda_emu/cudnn_shim.cc checks every call and recognises exactly these graphs.
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/common.cuh"

#include <float.h>
#include <math.h>
#include <string.h>

#include <vector>

// ---- conversion kernels ------------------------------------------------------------------------

// 8 consecutive elements of T at p as floats, in 16-byte loads (p 16-byte aligned), and back.
template <class T>
static __device__ __forceinline__ void cudnn_att_load8(float (&v)[8], const T *p) {
    if constexpr (sizeof(T) == 2) {
        lc_load<8>(v, p);
    } else {
        float a[4], b[4];
        lc_load<4>(a, p);
        lc_load<4>(b, p + 4);
        for (int k = 0; k < 4; k++) v[k] = a[k], v[k + 4] = b[k];
    }
}
template <class T>
static __device__ __forceinline__ void cudnn_att_store8(T *p, const float (&v)[8]) {
    if constexpr (sizeof(T) == 2) {
        lc_store<8>(p, v);
    } else {
        float a[4], b[4];
        for (int k = 0; k < 4; k++) a[k] = v[k], b[k] = v[k + 4];
        lc_store<4>(p, a);
        lc_store<4>(p + 4, b);
    }
}

// dst (n) written = src (n) converted between float and __nv_bfloat16 (to bf16: nearest even;
// to float: exact). One thread per 8 consecutive elements: 16-byte accesses when vec (both
// pointers 16-byte aligned), else 8 scalar ones; the tail thread stops at n.
template <class D, class S>
static __global__ void cudnn_att_convert_kernel(D *dst, const S *src, size_t n, bool vec) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= n) return;
    if (vec && i + 8 <= n) {
        float v[8];
        cudnn_att_load8(v, src + i);
        cudnn_att_store8(dst + i, v);
    } else {
        for (size_t k = i; k < n && k < i + 8; k++) dst[k] = lc_from_float<D>(lc_to_float(src[k]));
    }
}

// bias (B,1,T,T) written: bias[b,t,s] = 0 when seg[b,s] == seg[b,t], else -inf; seg (B,T). The
// causal part (s <= t) is the graph's. One thread per element.
static __global__ void cudnn_att_seg_bias_kernel(__nv_bfloat16 *bias, const int *seg, int B,
                                                 int T) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t n = (size_t)B * T * T;
    if (i >= n) return;
    size_t s = i % T, t = (i / T) % T, b = i / ((size_t)T * T);
    bool same = seg[b * T + s] == seg[b * T + t];
    bias[i] = __float2bfloat16_rn(same ? 0.0f : -INFINITY);
}

template <class D, class S>
static void cudnn_att_convert(D *dst, const S *src, size_t n, cudaStream_t st) {
    if (n == 0) return;
    bool vec = lc_aligned16(dst) && lc_aligned16(src);
    auto k = cudnn_att_convert_kernel<D, S>;
    LC_LAUNCH(k, lc_ceil_div(lc_ceil_div(n, 8), LC_CUDA_BLOCK), LC_CUDA_BLOCK, 0, st, dst, src, n,
              vec);
    LC_LAUNCH_CHECK();
}

static void cudnn_att_seg_bias(__nv_bfloat16 *bias, const int *seg, int B, int T, cudaStream_t st) {
    size_t n = (size_t)B * T * T;
    if (n == 0) return;
    LC_LAUNCH(cudnn_att_seg_bias_kernel, lc_ceil_div(n, LC_CUDA_BLOCK), LC_CUDA_BLOCK, 0, st, bias,
              seg, B, T);
    LC_LAUNCH_CHECK();
}

LC_CUDA_NAMESPACE_BEGIN

// ---- the graphs' tensors -----------------------------------------------------------------------

// Unique ids of the tensors the variant packs bind (virtual tensors take ids from UID_VIRTUAL).
enum {
    UID_Q = 1,
    UID_K = 2, // K^T (B,NKV,hs,T) view of qkv
    UID_V = 3, // forward: V (B,NKV,T,hs); backward: V^T (B,NKV,hs,T)
    UID_O = 4,
    UID_STATS = 5,
    UID_SCALE = 6,   // by value: 1/sqrt(hs)
    UID_NEG_INF = 7, // by value: -inf, the causal mask's fill
    UID_BIAS = 8,    // (B,1,T,T) segment bias, only with seg
    UID_DO = 9,
    UID_DQ = 10,
    UID_DK = 11,
    UID_DV = 12,
    UID_SOFTMAX_SUM = 13, // backward: rowsum(dO * O) (B,NH,T,1) fp32
    UID_DQ_ACCUM = 14,    // backward: dQ in fp32 (B,NH,T,hs), then IDENTITY into dQ
    UID_VIRTUAL = 1000,
};

#ifdef LC_CUDA_EMULATED
// Seeded bugs for tests/test_cuda_cudnn.cc, which must be rejected by the cuDNN shim: 1 a wrong
// stride (Q's token stride), 2 the stats uid left out of the variant pack, 3 the output O one
// bf16 off its 16-byte alignment, 4 a changed graph (the mask's comparison operands swapped).
// 0 in every real build.
int lc_cudnn_att_seeded_bug;
#define SEEDED_BUG lc_cudnn_att_seeded_bug
#else
#define SEEDED_BUG 0
#endif

typedef cudnnBackendDescriptor_t Desc;

// One graph under construction: every descriptor it makes (kept until the plan is dropped) and
// its operations in order.
struct Graph {
    std::vector<Desc> all;
    std::vector<Desc> ops;
    int64_t next_virtual = UID_VIRTUAL;

    Desc make(cudnnBackendDescriptorType_t type) {
        Desc d;
        LC_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d));
        all.push_back(d);
        return d;
    }
};

static void set_attr(Desc d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                     int64_t count, const void *value) {
    LC_CUDNN_CHECK(cudnnBackendSetAttribute(d, name, type, count, value));
}

static void set_desc(Desc d, cudnnBackendAttributeName_t name, Desc value) {
    set_attr(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value);
}

struct Dims {
    int64_t d[4];
};

static Desc tensor(Graph &g, int64_t uid, cudnnDataType_t type, Dims dims, Dims strides,
                   bool is_virtual, bool by_value = false) {
    Desc t = g.make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t align = by_value ? 4 : 16;
    bool virt = is_virtual;
    set_attr(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    set_attr(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.d);
    set_attr(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.d);
    set_attr(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    set_attr(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    set_attr(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt);
    if (by_value) {
        bool yes = true;
        set_attr(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    }
    LC_CUDNN_CHECK(cudnnBackendFinalize(t));
    return t;
}

// A virtual tensor with the next free uid.
static Desc virt(Graph &g, cudnnDataType_t type, Dims dims, Dims strides) {
    return tensor(g, g.next_virtual++, type, dims, strides, true);
}

// y = mode(x [, b [, t]]); axis >= 0 for GEN_INDEX. Math in fp32 (comparisons: BOOLEAN).
static void pointwise(Graph &g, cudnnPointwiseMode_t mode, Desc x, Desc b, Desc t, Desc y,
                      int64_t axis = -1) {
    Desc pw = g.make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    cudnnDataType_t prec = mode == CUDNN_POINTWISE_CMP_GE ? CUDNN_DATA_BOOLEAN : CUDNN_DATA_FLOAT;
    set_attr(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    set_attr(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0) set_attr(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    LC_CUDNN_CHECK(cudnnBackendFinalize(pw));
    Desc op = g.make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
    if (t) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    LC_CUDNN_CHECK(cudnnBackendFinalize(op));
    g.ops.push_back(op);
}

// y = reduce(x) over the dimensions where y is smaller (fp32).
static void reduction(Graph &g, cudnnReduceTensorOp_t mode, Desc x, Desc y) {
    Desc r = g.make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    set_attr(r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    set_attr(r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    LC_CUDNN_CHECK(cudnnBackendFinalize(r));
    Desc op = g.make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, r);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
    LC_CUDNN_CHECK(cudnnBackendFinalize(op));
    g.ops.push_back(op);
}

// c (..,M,N) = a (..,M,K) @ b (..,K,N), fp32 accumulation; a batch dimension of a or b that
// is smaller than c's is shared by c's groups (GQA).
static void matmul(Graph &g, Desc a, Desc b, Desc c) {
    Desc m = g.make(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    set_attr(m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    LC_CUDNN_CHECK(cudnnBackendFinalize(m));
    Desc op = g.make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, m);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
    LC_CUDNN_CHECK(cudnnBackendFinalize(op));
    g.ops.push_back(op);
}

// y = x viewed with y's dimensions and strides (a transpose of the last two).
static void reshape(Graph &g, Desc x, Desc y) {
    Desc op = g.make(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x);
    set_desc(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y);
    LC_CUDNN_CHECK(cudnnBackendFinalize(op));
    g.ops.push_back(op);
}

// ---- plans -------------------------------------------------------------------------------------

struct Shape {
    int backward, B, T, NH, NKV, hs, seg, bug;
    bool operator==(const Shape &o) const {
        return memcmp(this, &o, sizeof(o)) == 0;
    }
};

struct Plan {
    Shape shape;
    Graph graph; // every descriptor of the graph, alive as long as the plan
    Desc plan;
    int64_t workspace;
    float scale, neg_inf; // the by-value scalars' host values
};

static cudnnHandle_t g_handle;
// Plans live as long as the process: the list is never destroyed (a static vector would be torn
// down at exit and leave its plans unreachable, which LeakSanitizer rightly reports).
static std::vector<Plan *> *g_plans = new std::vector<Plan *>;
static void *g_workspace;
static size_t g_workspace_bytes;
static void *g_staging;
static size_t g_staging_bytes;

static cudnnHandle_t handle(void) {
    if (!g_handle) {
        LC_CUDNN_CHECK(cudnnCreate(&g_handle));
        LC_CUDNN_CHECK(cudnnSetStream(g_handle, cuda_context()->stream));
    }
    return g_handle;
}

// The common scores chain of both graphs: S = (Q @ K^T) * scale (+ bias), causal-masked with
// -inf. Returns the masked scores (B,NH,T,T) fp32.
static Desc scores(Graph &g, const Shape &s, Desc q, Desc kt, Desc scale, Desc neg_inf, Desc bias) {
    int64_t B = s.B, H = s.NH, T = s.T;
    Dims sd = {{B, H, T, T}}, ss = {{H * T * T, T * T, T, 1}};
    Desc s1 = virt(g, CUDNN_DATA_FLOAT, sd, ss);
    matmul(g, q, kt, s1);
    Desc s2 = virt(g, CUDNN_DATA_FLOAT, sd, ss);
    pointwise(g, CUDNN_POINTWISE_MUL, s1, scale, NULL, s2);
    if (bias) {
        Desc s3 = virt(g, CUDNN_DATA_FLOAT, sd, ss);
        pointwise(g, CUDNN_POINTWISE_ADD, s2, bias, NULL, s3);
        s2 = s3;
    }
    Desc row = virt(g, CUDNN_DATA_INT32, sd, ss);
    pointwise(g, CUDNN_POINTWISE_GEN_INDEX, s2, NULL, NULL, row, 2);
    Desc col = virt(g, CUDNN_DATA_INT32, sd, ss);
    pointwise(g, CUDNN_POINTWISE_GEN_INDEX, s2, NULL, NULL, col, 3);
    Desc mask = virt(g, CUDNN_DATA_BOOLEAN, sd, ss);
    if (SEEDED_BUG == 4) // the anti-causal mask: a graph the shim must not recognise
        pointwise(g, CUDNN_POINTWISE_CMP_GE, col, row, NULL, mask);
    else
        pointwise(g, CUDNN_POINTWISE_CMP_GE, row, col, NULL, mask);
    Desc s4 = virt(g, CUDNN_DATA_FLOAT, sd, ss);
    pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, s2, neg_inf, mask, s4);
    return s4;
}

// Whether cuDNN marks the engine of an engine configuration nondeterministic (its numerical
// notes).
static bool nondeterministic(Graph &g, Desc cfg) {
    Desc engine = g.make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t n = 0;
    LC_CUDNN_CHECK(cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engine));
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    LC_CUDNN_CHECK(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                            CUDNN_TYPE_NUMERICAL_NOTE,
                                            CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, notes));
    for (int64_t i = 0; i < n; i++)
        if (notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) return true;
    return false;
}

// Builds the graph of `s`, asks the heuristics for engine configurations and keeps the first that
// finalizes into an execution plan, preferring deterministic engines.
static Plan *build(const Shape &s) {
    Plan *p = new Plan();
    p->shape = s;
    p->scale = 1.0f / sqrtf((float)s.hs);
    // the mask's fill: -inf, or the lowest float for cuDNN before 9.10 (as cudnn-frontend does)
    p->neg_inf = cudnnGetVersion() >= 91000 ? -INFINITY : -FLT_MAX;
    Graph &g = p->graph;
    int64_t B = s.B, T = s.T, H = s.NH, HK = s.NKV, D = s.hs;
    int64_t QKV = (H + 2 * HK) * D, C = H * D;
    int64_t tok = SEEDED_BUG == 1 ? QKV + 8 : QKV; // the seeded wrong stride
    const cudnnDataType_t BF = CUDNN_DATA_BFLOAT16, F = CUDNN_DATA_FLOAT;
    Dims one = {{1, 1, 1, 1}};
    Dims q_dims = {{B, H, T, D}}, q_str = {{T * QKV, D, tok, 1}};
    Dims kt_dims = {{B, HK, D, T}}, kt_str = {{T * QKV, D, 1, QKV}};
    Dims kv_dims = {{B, HK, T, D}}, kv_str = {{T * QKV, D, QKV, 1}};
    Dims o_dims = {{B, H, T, D}}, o_str = {{T * C, D, C, 1}};
    Dims row_dims = {{B, H, T, 1}}, row_str = {{H * T, T, 1, 1}};
    Dims hd_str = {{H * T * D, T * D, D, 1}}; // packed (B,NH,T,hs)
    Dims sd = {{B, H, T, T}}, ss = {{H * T * T, T * T, T, 1}}, st = {{H * T * T, T * T, 1, T}};

    Desc q = tensor(g, UID_Q, BF, q_dims, q_str, false);
    Desc kt = tensor(g, UID_K, BF, kt_dims, kt_str, false);
    Desc scale = tensor(g, UID_SCALE, F, one, one, false, true);
    Desc neg_inf = tensor(g, UID_NEG_INF, F, one, one, false, true);
    Desc bias = NULL;
    if (s.seg) bias = tensor(g, UID_BIAS, BF, {{B, 1, T, T}}, {{T * T, T * T, T, 1}}, false);
    Desc o = tensor(g, UID_O, BF, o_dims, o_str, false);
    Desc stats = tensor(g, UID_STATS, F, row_dims, row_str, false);

    if (!s.backward) {
        Desc v = tensor(g, UID_V, BF, kv_dims, kv_str, false);
        Desc sm = scores(g, s, q, kt, scale, neg_inf, bias);
        // softmax with its statistics: stats = max + log(sum exp(S - max)), P = exp / sum
        Desc mx = virt(g, F, row_dims, row_str);
        reduction(g, CUDNN_REDUCE_TENSOR_MAX, sm, mx);
        Desc sub = virt(g, F, sd, ss);
        pointwise(g, CUDNN_POINTWISE_SUB, sm, mx, NULL, sub);
        Desc ex = virt(g, F, sd, ss);
        pointwise(g, CUDNN_POINTWISE_EXP, sub, NULL, NULL, ex);
        Desc sum = virt(g, F, row_dims, row_str);
        reduction(g, CUDNN_REDUCE_TENSOR_ADD, ex, sum);
        Desc lg = virt(g, F, row_dims, row_str);
        pointwise(g, CUDNN_POINTWISE_LOG, sum, NULL, NULL, lg);
        pointwise(g, CUDNN_POINTWISE_ADD, mx, lg, NULL, stats);
        Desc prob = virt(g, BF, sd, ss);
        pointwise(g, CUDNN_POINTWISE_DIV, ex, sum, NULL, prob);
        matmul(g, prob, v, o);
    } else {
        Desc vt = tensor(g, UID_V, BF, kt_dims, kt_str, false);
        Desc dout = tensor(g, UID_DO, BF, o_dims, o_str, false);
        Desc dq = tensor(g, UID_DQ, BF, q_dims, {{T * QKV, D, QKV, 1}}, false);
        Desc dk = tensor(g, UID_DK, BF, kv_dims, kv_str, false);
        Desc dv = tensor(g, UID_DV, BF, kv_dims, kv_str, false);
        Desc ssum = tensor(g, UID_SOFTMAX_SUM, F, row_dims, row_str, false);
        Desc dq_acc = tensor(g, UID_DQ_ACCUM, F, q_dims, hd_str, false);
        // softmax_sum = rowsum(dO * O)
        Desc doo = virt(g, F, q_dims, hd_str);
        pointwise(g, CUDNN_POINTWISE_MUL, dout, o, NULL, doo);
        reduction(g, CUDNN_REDUCE_TENSOR_ADD, doo, ssum);
        // P = exp(S - stats)
        Desc sm = scores(g, s, q, kt, scale, neg_inf, bias);
        Desc sub = virt(g, F, sd, ss);
        pointwise(g, CUDNN_POINTWISE_SUB, sm, stats, NULL, sub);
        Desc prob = virt(g, F, sd, ss);
        pointwise(g, CUDNN_POINTWISE_EXP, sub, NULL, NULL, prob);
        // dV = P^T @ dO (summed over the query heads of a group)
        Desc pt = virt(g, BF, sd, st);
        reshape(g, prob, pt);
        if (H == HK) {
            matmul(g, pt, dout, dv);
        } else {
            Desc dvf = virt(g, BF, q_dims, hd_str);
            matmul(g, pt, dout, dvf);
            reduction(g, CUDNN_REDUCE_TENSOR_ADD, dvf, dv);
        }
        // dS = P * (dO @ V^T - softmax_sum) * scale
        Desc dp = virt(g, F, sd, ss);
        matmul(g, dout, vt, dp);
        Desc dps = virt(g, F, sd, ss);
        pointwise(g, CUDNN_POINTWISE_SUB, dp, ssum, NULL, dps);
        Desc dsu = virt(g, F, sd, ss);
        pointwise(g, CUDNN_POINTWISE_MUL, dps, prob, NULL, dsu);
        Desc ds = virt(g, F, sd, ss);
        pointwise(g, CUDNN_POINTWISE_MUL, dsu, scale, NULL, ds);
        // dK = dS^T @ Q (summed over the group)
        Desc dst = virt(g, BF, sd, st);
        reshape(g, ds, dst);
        if (H == HK) {
            matmul(g, dst, q, dk);
        } else {
            Desc dkf = virt(g, BF, q_dims, hd_str);
            matmul(g, dst, q, dkf);
            reduction(g, CUDNN_REDUCE_TENSOR_ADD, dkf, dk);
        }
        // dQ = dS @ K, accumulated in fp32, then rounded into dQ
        Desc k = virt(g, BF, kv_dims, kv_str);
        reshape(g, kt, k);
        matmul(g, ds, k, dq_acc);
        pointwise(g, CUDNN_POINTWISE_IDENTITY, dq_acc, NULL, NULL, dq);
    }

    cudnnHandle_t h = handle();
    Desc graph = g.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    set_attr(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
             (int64_t)g.ops.size(), g.ops.data());
    set_attr(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    LC_CUDNN_CHECK(cudnnBackendFinalize(graph));

    Desc heur = g.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
    set_attr(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    LC_CUDNN_CHECK(cudnnBackendFinalize(heur));
    int64_t count = 0;
    LC_CUDNN_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL));
    std::vector<Desc> cfgs;
    for (int64_t i = 0; i < count; i++) cfgs.push_back(g.make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    if (count > 0)
        LC_CUDNN_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &count,
                                                cfgs.data()));
    // deterministic engines first (the CPU and flash paths give the same bits on every run); an
    // engine cuDNN marks nondeterministic only when no other can run the graph
    std::vector<bool> nondet;
    for (int64_t i = 0; i < count; i++) nondet.push_back(nondeterministic(g, cfgs[i]));
    p->plan = NULL;
    for (int64_t k = 0; k < 2 * count && !p->plan; k++) {
        int64_t i = k % count;
        if (nondet[i] != (k >= count)) continue;
        Desc plan;
        LC_CUDNN_CHECK(
            cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan));
        set_attr(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
        set_desc(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[i]);
        // an engine that cannot run this graph refuses here; the next one is tried
        if (cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS) {
            p->plan = plan;
            g.all.push_back(plan);
        } else {
            LC_CUDNN_CHECK(cudnnBackendDestroyDescriptor(plan));
        }
    }
    if (!p->plan)
        LC_DIE("CUDA backend: cuDNN has no engine for fused attention %s (B=%d T=%d NH=%d NKV=%d "
               "hs=%d%s; %lld engine configurations tried): use attention: flash",
               s.backward ? "backward" : "forward", s.B, s.T, s.NH, s.NKV, s.hs,
               s.seg ? ", segments" : "", (long long)count);
    int64_t n = 0;
    LC_CUDNN_CHECK(cudnnBackendGetAttribute(p->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                            CUDNN_TYPE_INT64, 1, &n, &p->workspace));
    return p;
}

static Plan *get_plan(const Shape &s) {
    for (Plan *p : *g_plans)
        if (p->shape == s) return p;
    Plan *p = build(s);
    g_plans->push_back(p);
    if ((size_t)p->workspace > g_workspace_bytes) {
        if (g_workspace) LC_CUDA_CHECK(cudaFree(g_workspace));
        LC_CUDA_CHECK(cudaMalloc(&g_workspace, (size_t)p->workspace));
        g_workspace_bytes = (size_t)p->workspace;
    }
    return p;
}

// The staging buffer: `n` parts of bytes[i] each, every part 256-byte aligned; grown (never
// shrunk) when a call needs more. parts[i] receives each part's address.
static void staging(int n, const size_t *bytes, void **parts) {
    size_t off[8], total = 0;
    for (int i = 0; i < n; i++) {
        off[i] = total;
        total += (bytes[i] + 255) & ~(size_t)255;
    }
    if (total > g_staging_bytes) {
        if (g_staging) LC_CUDA_CHECK(cudaFree(g_staging));
        LC_CUDA_CHECK(cudaMalloc(&g_staging, total));
        g_staging_bytes = total;
    }
    for (int i = 0; i < n; i++) parts[i] = (char *)g_staging + off[i];
}

static void execute(Plan *p, int n, const int64_t *uids, void *const *ptrs) {
    Desc pack;
    LC_CUDNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    set_attr(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    set_attr(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    set_attr(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &g_workspace);
    LC_CUDNN_CHECK(cudnnBackendFinalize(pack));
    LC_CUDNN_CHECK(cudnnBackendExecute(handle(), p->plan, pack));
    LC_CUDNN_CHECK(cudnnBackendDestroyDescriptor(pack));
}

// What cuDNN's fused flash attention cannot take, refused by name.
static void check_shape(const char *what, int B, int T, int NH, int NKV, int hs) {
    if (B < 0 || T < 0 || NH <= 0 || NKV <= 0 || NH % NKV != 0)
        LC_DIE("CUDA backend: cuDNN attention %s: bad shape B=%d T=%d NH=%d NKV=%d", what, B, T, NH,
               NKV);
    if (hs % 8 != 0 || hs > 256)
        LC_DIE("CUDA backend: cuDNN fused attention needs a head size that is a multiple of 8, at "
               "most 256 (hs=%d): use attention: flash",
               hs);
}

// src (n) of Act storage into the bf16 staging dst (n): converted from fp32 (nearest even), or
// copied when the storage is bf16 already (a view cuDNN cannot take directly: not 16-byte
// aligned).
static void stage_in(__nv_bfloat16 *dst, const Act *src, size_t n, bool bf16, cudaStream_t st) {
    if (bf16)
        LC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * 2, cudaMemcpyDeviceToDevice, st));
    else
        cudnn_att_convert(dst, (const float *)src, n, st);
}

// The bf16 staging src (n) back into Act storage dst (n): converted to fp32 (exact) or copied.
static void stage_out(Act *dst, const __nv_bfloat16 *src, size_t n, bool bf16, cudaStream_t st) {
    if (bf16)
        LC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * 2, cudaMemcpyDeviceToDevice, st));
    else
        cudnn_att_convert((float *)dst, src, n, st);
}

// Whether an Act tensor goes to cuDNN as it is: bf16 storage, 16-byte aligned (the alignment the
// graph's tensors declare; the strides, multiples of hs, keep every row and head aligned then).
static bool direct_view(const void *p, bool bf16) {
    return bf16 && lc_aligned16(p);
}

// out (B,T,C) Act written; state (B,NH,T) fp32 written (the stats); qkv (B,T,QKV) Act; seg (B,T)
// or NULL. Under bf16 storage Q, K, V are strided views of qkv's rows and O is out itself;
// otherwise (fp32 storage, or a pointer off 16-byte alignment) they go through the bf16 staging.
void cuda_cudnn_attention_forward(Act *out, float *state, const Act *qkv, const int *seg, int B,
                                  int T, int NH, int NKV, int hs) {
    check_shape("forward", B, T, NH, NKV, hs);
    if (B == 0 || T == 0) return;
    cudaStream_t st = cuda_context()->stream;
    bool bf16 = cuda_context()->bf16;
    Shape s = {0, B, T, NH, NKV, hs, seg != NULL, SEEDED_BUG};
    Plan *p = get_plan(s);
    size_t QKV = (size_t)(NH + 2 * NKV) * hs, C = (size_t)NH * hs, N = (size_t)B * T;
    bool qkv_direct = direct_view(qkv, bf16), o_direct = direct_view(out, bf16);
    // the stats go straight into state when it is 16-byte aligned, else through the staging
    bool direct = lc_aligned16(state);
    size_t bytes[4] = {qkv_direct ? 0 : N * QKV * 2, o_direct ? 0 : N * C * 2, seg ? N * T * 2 : 0,
                       direct ? 0 : N * NH * 4};
    void *part[4];
    staging(4, bytes, part);
    __nv_bfloat16 *qkv16 = qkv_direct ? (__nv_bfloat16 *)qkv : (__nv_bfloat16 *)part[0];
    __nv_bfloat16 *o16 = o_direct ? (__nv_bfloat16 *)out : (__nv_bfloat16 *)part[1];
    __nv_bfloat16 *bias = (__nv_bfloat16 *)part[2];
    float *stats = direct ? state : (float *)part[3];
    if (!qkv_direct) stage_in(qkv16, qkv, N * QKV, bf16, st);
    if (seg) cudnn_att_seg_bias(bias, seg, B, T, st);
    int64_t uids[] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_NEG_INF, UID_STATS, UID_BIAS};
    void *ptrs[] = {qkv16,
                    qkv16 + (size_t)NH * hs,
                    qkv16 + (size_t)(NH + NKV) * hs,
                    o16,
                    &p->scale,
                    &p->neg_inf,
                    stats,
                    bias};
    if (SEEDED_BUG == 3) ptrs[3] = o16 + 1;
    int n = seg ? 8 : 7;
    if (SEEDED_BUG == 2) n = 6; // drops the stats
    execute(p, n, uids, ptrs);
    if (!o_direct) stage_out(out, o16, N * C, bf16, st);
    if (!direct)
        LC_CUDA_CHECK(cudaMemcpyAsync(state, stats, N * NH * 4, cudaMemcpyDeviceToDevice, st));
}

// dqkv (B,T,QKV) Act written: cuDNN writes dQ, dK and dV (each key/value head's summed over its
// query group) as strided views of its rows; dout, out (B,T,C) and qkv Act; state (B,NH,T) fp32
// as the forward wrote it. Direct views under bf16 storage as in the forward, else staged.
void cuda_cudnn_attention_backward(Act *dqkv, const Act *dout, const Act *out, const Act *qkv,
                                   const float *state, const int *seg, int B, int T, int NH,
                                   int NKV, int hs) {
    check_shape("backward", B, T, NH, NKV, hs);
    if (B == 0 || T == 0) return;
    cudaStream_t st = cuda_context()->stream;
    bool bf16 = cuda_context()->bf16;
    Shape s = {1, B, T, NH, NKV, hs, seg != NULL, SEEDED_BUG};
    Plan *p = get_plan(s);
    size_t QKV = (size_t)(NH + 2 * NKV) * hs, C = (size_t)NH * hs, N = (size_t)B * T;
    bool qkv_direct = direct_view(qkv, bf16), o_direct = direct_view(out, bf16);
    bool do_direct = direct_view(dout, bf16), dqkv_direct = direct_view(dqkv, bf16);
    bool direct = lc_aligned16(state); // else the stats are copied to an aligned place first
    size_t bytes[8] = {qkv_direct ? 0 : N * QKV * 2,
                       o_direct ? 0 : N * C * 2,
                       do_direct ? 0 : N * C * 2,
                       dqkv_direct ? 0 : N * QKV * 2,
                       seg ? N * T * 2 : 0,
                       N * NH * 4, // softmax_sum (B,NH,T) fp32
                       N * C * 4,  // dQ accumulator (B,NH,T,hs) fp32
                       direct ? 0 : N * NH * 4};
    void *part[8];
    staging(8, bytes, part);
    const float *stats = direct ? state : (const float *)part[7];
    if (!direct)
        LC_CUDA_CHECK(cudaMemcpyAsync(part[7], state, N * NH * 4, cudaMemcpyDeviceToDevice, st));
    __nv_bfloat16 *qkv16 = qkv_direct ? (__nv_bfloat16 *)qkv : (__nv_bfloat16 *)part[0];
    __nv_bfloat16 *o16 = o_direct ? (__nv_bfloat16 *)out : (__nv_bfloat16 *)part[1];
    __nv_bfloat16 *do16 = do_direct ? (__nv_bfloat16 *)dout : (__nv_bfloat16 *)part[2];
    __nv_bfloat16 *dqkv16 = dqkv_direct ? (__nv_bfloat16 *)dqkv : (__nv_bfloat16 *)part[3];
    __nv_bfloat16 *bias = (__nv_bfloat16 *)part[4];
    if (!qkv_direct) stage_in(qkv16, qkv, N * QKV, bf16, st);
    if (!o_direct) stage_in(o16, out, N * C, bf16, st);
    if (!do_direct) stage_in(do16, dout, N * C, bf16, st);
    if (seg) cudnn_att_seg_bias(bias, seg, B, T, st);
    int64_t uids[] = {UID_Q,           UID_K,        UID_V,     UID_O,     UID_DO,
                      UID_DQ,          UID_DK,       UID_DV,    UID_SCALE, UID_NEG_INF,
                      UID_SOFTMAX_SUM, UID_DQ_ACCUM, UID_STATS, UID_BIAS};
    void *ptrs[] = {qkv16,
                    qkv16 + (size_t)NH * hs,
                    qkv16 + (size_t)(NH + NKV) * hs,
                    o16,
                    do16,
                    dqkv16,
                    dqkv16 + (size_t)NH * hs,
                    dqkv16 + (size_t)(NH + NKV) * hs,
                    &p->scale,
                    &p->neg_inf,
                    part[5],
                    part[6],
                    (void *)stats,
                    bias};
    execute(p, seg ? 14 : 13, uids, ptrs);
    if (!dqkv_direct) stage_out(dqkv, dqkv16, N * QKV, bf16, st);
}

LC_CUDA_NAMESPACE_END
