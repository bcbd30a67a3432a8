// tests/cuda_emu/cudnn_shim.cc: the cuDNN backend API over host memory, for the emulated CUDA
// backend (docs/cuda-emulation.md, "The cuDNN shim"). It is strict where cuDNN is and stricter
// where a mistake would otherwise pass silently:
//   - descriptors: a known type; attributes that this type takes, with the right attribute type
//     and element count; nothing set after finalize; referenced descriptors finalized and of the
//     right type; required attributes present at finalize;
//   - tensors: 3..8 dims matching the strides, dims and strides positive, a power-of-two
//     alignment of at least the element size, by-value tensors real and of one element;
//   - operations: arity of each pointwise mode, broadcast shapes, matmul and reduction shapes;
//   - operation graphs: unique uids, every virtual tensor produced once (before its use) and
//     used, and the graph RECOGNISED as one of attention_cudnn.cu's graphs (forward or
//     backward, with or without the segment bias, MHA or GQA): the same operations in the same
//     order, the same modes, and every tensor's data type, virtuality, dims and strides. Any
//     other graph is refused, so a change to the graph needs a change here;
//   - execution: finalized plan and variant pack, every non-virtual uid of the graph bound (and
//     no other) to a non-null pointer aligned as its tensor says, each strided view inside its
//     allocation, no tensor the graph writes sharing a byte with another tensor of the call
//     (strided views interleaved in one buffer are fine), the workspace present and large
//     enough.
// It then computes the result with the CPU backend (backend_cpu()) on the bf16 inputs and writes
// bf16 (and fp32) outputs as cuDNN would.
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cudnn_shim.h"

#include <cuda_bf16.h>

extern "C" {
#include "kernels/kernels.h"
}

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

struct Attr {
    cudnnBackendAttributeType_t type;
    int64_t count;
    std::vector<unsigned char> bytes;
};

struct Recog; // a recognised attention graph

struct Obj {
    cudnnBackendDescriptorType_t type;
    bool finalized = false;
    std::map<int, Attr> attrs;
    // tensors, after finalize
    int64_t uid = 0, align = 0;
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    std::vector<int64_t> dims, strides;
    bool is_virtual = false, by_value = false;
    // graphs: what was recognised; heuristics, engine configs and plans: their graph
    Recog *recog = nullptr;
    Obj *graph = nullptr;
    int engine = -1; // engine configurations, engines and plans: which engine
    int64_t workspace = 0;
    // variant packs
    std::vector<int64_t> uids;
    std::vector<void *> ptrs;
    void *ws = nullptr;
};

struct HandleObj {
    cudaStream_t stream = 0;
};

std::set<Obj *> g_objs;
std::set<HandleObj *> g_handles;
long g_errors, g_executions, g_graphs, g_nondeterministic;
std::map<int64_t, void *> g_bound; // the pointer of each uid at the last execution

// The engines the heuristics offer, best first: the first is marked nondeterministic (as cuDNN's
// may be), the second not; both compute the same here, so only the choice shows.
const int kEngines = 2;
bool engine_nondeterministic(int e) {
    return e == 0;
}
std::string g_last;

cudnnStatus_t fail(cudnnStatus_t st, const char *f, ...) __attribute__((format(printf, 2, 3)));
cudnnStatus_t fail(cudnnStatus_t st, const char *f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    g_last = buf;
    g_errors++;
    lc_emu_shim_error("cuDNN", "%s", buf);
    return st;
}

size_t elem_size(cudnnBackendAttributeType_t t) {
    switch (t) {
    case CUDNN_TYPE_HANDLE:
        return sizeof(cudnnHandle_t);
    case CUDNN_TYPE_DATA_TYPE:
        return sizeof(cudnnDataType_t);
    case CUDNN_TYPE_BOOLEAN:
        return sizeof(bool);
    case CUDNN_TYPE_INT64:
        return sizeof(int64_t);
    case CUDNN_TYPE_FLOAT:
        return sizeof(float);
    case CUDNN_TYPE_DOUBLE:
        return sizeof(double);
    case CUDNN_TYPE_VOID_PTR:
        return sizeof(void *);
    case CUDNN_TYPE_HEUR_MODE:
        return sizeof(cudnnBackendHeurMode_t);
    case CUDNN_TYPE_POINTWISE_MODE:
        return sizeof(cudnnPointwiseMode_t);
    case CUDNN_TYPE_BACKEND_DESCRIPTOR:
        return sizeof(cudnnBackendDescriptor_t);
    case CUDNN_TYPE_REDUCTION_OPERATOR_TYPE:
        return sizeof(cudnnReduceTensorOp_t);
    case CUDNN_TYPE_NUMERICAL_NOTE:
        return sizeof(cudnnBackendNumericalNote_t);
    default:
        return 0;
    }
}

size_t dt_size(cudnnDataType_t t) {
    switch (t) {
    case CUDNN_DATA_FLOAT:
        return 4;
    case CUDNN_DATA_INT32:
        return 4;
    case CUDNN_DATA_BFLOAT16:
        return 2;
    case CUDNN_DATA_BOOLEAN:
        return 1;
    default:
        return 0;
    }
}

const int REF_NONE = -1, REF_OPERATION = -2;

// The attributes the shim takes: the descriptor type, name, attribute type, element counts,
// whether finalize needs it, and the descriptor type a BACKEND_DESCRIPTOR value must have.
struct Spec {
    cudnnBackendDescriptorType_t desc;
    cudnnBackendAttributeName_t name;
    cudnnBackendAttributeType_t type;
    int64_t min, max;
    bool required;
    int ref;
};

#define D(x) CUDNN_BACKEND_##x##_DESCRIPTOR
#define A(x) CUDNN_ATTR_##x
#define T(x) CUDNN_TYPE_##x
const Spec kSpecs[] = {
    {D(TENSOR), A(TENSOR_DATA_TYPE), T(DATA_TYPE), 1, 1, true, REF_NONE},
    {D(TENSOR), A(TENSOR_DIMENSIONS), T(INT64), 1, 8, true, REF_NONE},
    {D(TENSOR), A(TENSOR_STRIDES), T(INT64), 1, 8, true, REF_NONE},
    {D(TENSOR), A(TENSOR_UNIQUE_ID), T(INT64), 1, 1, true, REF_NONE},
    {D(TENSOR), A(TENSOR_BYTE_ALIGNMENT), T(INT64), 1, 1, true, REF_NONE},
    {D(TENSOR), A(TENSOR_IS_VIRTUAL), T(BOOLEAN), 1, 1, false, REF_NONE},
    {D(TENSOR), A(TENSOR_IS_BY_VALUE), T(BOOLEAN), 1, 1, false, REF_NONE},
    {D(POINTWISE), A(POINTWISE_MODE), T(POINTWISE_MODE), 1, 1, true, REF_NONE},
    {D(POINTWISE), A(POINTWISE_MATH_PREC), T(DATA_TYPE), 1, 1, true, REF_NONE},
    {D(POINTWISE), A(POINTWISE_AXIS), T(INT64), 1, 1, false, REF_NONE},
    {D(OPERATION_POINTWISE), A(OPERATION_POINTWISE_PW_DESCRIPTOR), T(BACKEND_DESCRIPTOR), 1, 1,
     true, D(POINTWISE)},
    {D(OPERATION_POINTWISE), A(OPERATION_POINTWISE_XDESC), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(TENSOR)},
    {D(OPERATION_POINTWISE), A(OPERATION_POINTWISE_BDESC), T(BACKEND_DESCRIPTOR), 1, 1, false,
     D(TENSOR)},
    {D(OPERATION_POINTWISE), A(OPERATION_POINTWISE_TDESC), T(BACKEND_DESCRIPTOR), 1, 1, false,
     D(TENSOR)},
    {D(OPERATION_POINTWISE), A(OPERATION_POINTWISE_YDESC), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(TENSOR)},
    {D(REDUCTION), A(REDUCTION_OPERATOR), T(REDUCTION_OPERATOR_TYPE), 1, 1, true, REF_NONE},
    {D(REDUCTION), A(REDUCTION_COMP_TYPE), T(DATA_TYPE), 1, 1, true, REF_NONE},
    {D(OPERATION_REDUCTION), A(OPERATION_REDUCTION_DESC), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(REDUCTION)},
    {D(OPERATION_REDUCTION), A(OPERATION_REDUCTION_XDESC), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(TENSOR)},
    {D(OPERATION_REDUCTION), A(OPERATION_REDUCTION_YDESC), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(TENSOR)},
    {D(MATMUL), A(MATMUL_COMP_TYPE), T(DATA_TYPE), 1, 1, true, REF_NONE},
    {D(OPERATION_MATMUL), A(OPERATION_MATMUL_DESC), T(BACKEND_DESCRIPTOR), 1, 1, true, D(MATMUL)},
    {D(OPERATION_MATMUL), A(OPERATION_MATMUL_ADESC), T(BACKEND_DESCRIPTOR), 1, 1, true, D(TENSOR)},
    {D(OPERATION_MATMUL), A(OPERATION_MATMUL_BDESC), T(BACKEND_DESCRIPTOR), 1, 1, true, D(TENSOR)},
    {D(OPERATION_MATMUL), A(OPERATION_MATMUL_CDESC), T(BACKEND_DESCRIPTOR), 1, 1, true, D(TENSOR)},
    {D(OPERATION_RESHAPE), A(OPERATION_RESHAPE_XDESC), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(TENSOR)},
    {D(OPERATION_RESHAPE), A(OPERATION_RESHAPE_YDESC), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(TENSOR)},
    {D(OPERATIONGRAPH), A(OPERATIONGRAPH_OPS), T(BACKEND_DESCRIPTOR), 1, 4096, true, REF_OPERATION},
    {D(OPERATIONGRAPH), A(OPERATIONGRAPH_HANDLE), T(HANDLE), 1, 1, true, REF_NONE},
    {D(ENGINEHEUR), A(ENGINEHEUR_OPERATION_GRAPH), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(OPERATIONGRAPH)},
    {D(ENGINEHEUR), A(ENGINEHEUR_MODE), T(HEUR_MODE), 1, 1, true, REF_NONE},
    {D(EXECUTION_PLAN), A(EXECUTION_PLAN_HANDLE), T(HANDLE), 1, 1, true, REF_NONE},
    {D(EXECUTION_PLAN), A(EXECUTION_PLAN_ENGINE_CONFIG), T(BACKEND_DESCRIPTOR), 1, 1, true,
     D(ENGINECFG)},
    {D(VARIANT_PACK), A(VARIANT_PACK_UNIQUE_IDS), T(INT64), 0, 4096, true, REF_NONE},
    {D(VARIANT_PACK), A(VARIANT_PACK_DATA_POINTERS), T(VOID_PTR), 0, 4096, true, REF_NONE},
    {D(VARIANT_PACK), A(VARIANT_PACK_WORKSPACE), T(VOID_PTR), 1, 1, true, REF_NONE},
};
#undef A
#undef T

bool is_operation(cudnnBackendDescriptorType_t t) {
    return t == D(OPERATION_POINTWISE) || t == D(OPERATION_REDUCTION) || t == D(OPERATION_MATMUL) ||
           t == D(OPERATION_RESHAPE);
}

bool known_type(int t) {
    return t == D(TENSOR) || t == D(POINTWISE) || t == D(REDUCTION) || t == D(MATMUL) ||
           is_operation((cudnnBackendDescriptorType_t)t) || t == D(OPERATIONGRAPH) ||
           t == D(ENGINEHEUR) || t == D(ENGINECFG) || t == D(ENGINE) || t == D(EXECUTION_PLAN) ||
           t == D(VARIANT_PACK);
}

const Spec *spec(cudnnBackendDescriptorType_t d, cudnnBackendAttributeName_t n) {
    for (const Spec &s : kSpecs)
        if (s.desc == d && s.name == n) return &s;
    return nullptr;
}

Obj *obj(cudnnBackendDescriptor_t d) {
    Obj *o = static_cast<Obj *>(d);
    return g_objs.count(o) ? o : nullptr;
}

template <class V> V scalar(const Obj *o, int name) {
    V v;
    memcpy(&v, o->attrs.at(name).bytes.data(), sizeof(V));
    return v;
}

Obj *ref(const Obj *o, int name) {
    auto it = o->attrs.find(name);
    if (it == o->attrs.end()) return nullptr;
    return scalar<Obj *>(o, name);
}

std::string dims_str(const std::vector<int64_t> &v) {
    std::string s = "(";
    for (size_t i = 0; i < v.size(); i++) s += (i ? "," : "") + std::to_string(v[i]);
    return s + ")";
}

// ---- per-type finalize checks ------------------------------------------------------------------

cudnnStatus_t finalize_tensor(Obj *t) {
    t->dt = scalar<cudnnDataType_t>(t, CUDNN_ATTR_TENSOR_DATA_TYPE);
    const Attr &d = t->attrs.at(CUDNN_ATTR_TENSOR_DIMENSIONS);
    const Attr &s = t->attrs.at(CUDNN_ATTR_TENSOR_STRIDES);
    t->dims.assign((const int64_t *)d.bytes.data(), (const int64_t *)d.bytes.data() + d.count);
    t->strides.assign((const int64_t *)s.bytes.data(), (const int64_t *)s.bytes.data() + s.count);
    t->uid = scalar<int64_t>(t, CUDNN_ATTR_TENSOR_UNIQUE_ID);
    t->align = scalar<int64_t>(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT);
    t->is_virtual = t->attrs.count(CUDNN_ATTR_TENSOR_IS_VIRTUAL) &&
                    scalar<bool>(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL);
    t->by_value = t->attrs.count(CUDNN_ATTR_TENSOR_IS_BY_VALUE) &&
                  scalar<bool>(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE);
    if (t->dims.size() != t->strides.size())
        return fail(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "tensor uid %lld: %zu dims, %zu strides",
                    (long long)t->uid, t->dims.size(), t->strides.size());
    if (t->dims.size() < 3)
        return fail(CUDNN_STATUS_NOT_SUPPORTED_SHAPE, "tensor uid %lld: %zu dims (3 to 8)",
                    (long long)t->uid, t->dims.size());
    for (size_t i = 0; i < t->dims.size(); i++)
        if (t->dims[i] < 1 || t->strides[i] < 1)
            return fail(CUDNN_STATUS_BAD_PARAM, "tensor uid %lld: dims %s strides %s not positive",
                        (long long)t->uid, dims_str(t->dims).c_str(), dims_str(t->strides).c_str());
    size_t es = dt_size(t->dt);
    if (!es)
        return fail(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE, "tensor uid %lld: data type %d",
                    (long long)t->uid, (int)t->dt);
    if (t->align < (int64_t)es || (t->align & (t->align - 1)))
        return fail(CUDNN_STATUS_BAD_PARAM, "tensor uid %lld: alignment %lld", (long long)t->uid,
                    (long long)t->align);
    if (t->by_value) {
        if (t->is_virtual)
            return fail(CUDNN_STATUS_BAD_PARAM, "tensor uid %lld: virtual and by value",
                        (long long)t->uid);
        for (int64_t v : t->dims)
            if (v != 1)
                return fail(CUDNN_STATUS_BAD_PARAM, "by-value tensor uid %lld has dims %s",
                            (long long)t->uid, dims_str(t->dims).c_str());
    }
    return CUDNN_STATUS_SUCCESS;
}

bool unary(cudnnPointwiseMode_t m) {
    return m == CUDNN_POINTWISE_EXP || m == CUDNN_POINTWISE_LOG || m == CUDNN_POINTWISE_IDENTITY ||
           m == CUDNN_POINTWISE_GEN_INDEX;
}

bool pw_mode_known(cudnnPointwiseMode_t m) {
    return unary(m) || m == CUDNN_POINTWISE_ADD || m == CUDNN_POINTWISE_SUB ||
           m == CUDNN_POINTWISE_MUL || m == CUDNN_POINTWISE_DIV || m == CUDNN_POINTWISE_CMP_GE ||
           m == CUDNN_POINTWISE_BINARY_SELECT;
}

// b broadcasts to y: same rank, each dim equal or 1.
bool broadcasts(const Obj *b, const Obj *y) {
    if (b->dims.size() != y->dims.size()) return false;
    for (size_t i = 0; i < y->dims.size(); i++)
        if (b->dims[i] != y->dims[i] && b->dims[i] != 1) return false;
    return true;
}

// a batch dim of an operand: equal to the result's, or dividing it (shared by a group).
bool batch_ok(int64_t a, int64_t c) {
    return a == c || (a >= 1 && c % a == 0);
}

cudnnStatus_t finalize_op(Obj *o) {
    switch ((int)o->type) {
    case D(POINTWISE): {
        auto m = scalar<cudnnPointwiseMode_t>(o, CUDNN_ATTR_POINTWISE_MODE);
        if (!pw_mode_known(m))
            return fail(CUDNN_STATUS_NOT_SUPPORTED, "pointwise mode %d not handled", (int)m);
        if ((m == CUDNN_POINTWISE_GEN_INDEX) != (o->attrs.count(CUDNN_ATTR_POINTWISE_AXIS) > 0))
            return fail(CUDNN_STATUS_BAD_PARAM, "pointwise: AXIS is set iff the mode is GEN_INDEX");
        return CUDNN_STATUS_SUCCESS;
    }
    case D(REDUCTION): {
        auto m = scalar<cudnnReduceTensorOp_t>(o, CUDNN_ATTR_REDUCTION_OPERATOR);
        if (m != CUDNN_REDUCE_TENSOR_ADD && m != CUDNN_REDUCE_TENSOR_MAX)
            return fail(CUDNN_STATUS_NOT_SUPPORTED, "reduction operator %d not handled", (int)m);
        return CUDNN_STATUS_SUCCESS;
    }
    case D(MATMUL):
        return CUDNN_STATUS_SUCCESS;
    case D(OPERATION_POINTWISE): {
        Obj *pw = ref(o, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR);
        auto m = scalar<cudnnPointwiseMode_t>(pw, CUDNN_ATTR_POINTWISE_MODE);
        Obj *x = ref(o, CUDNN_ATTR_OPERATION_POINTWISE_XDESC);
        Obj *b = ref(o, CUDNN_ATTR_OPERATION_POINTWISE_BDESC);
        Obj *t = ref(o, CUDNN_ATTR_OPERATION_POINTWISE_TDESC);
        Obj *y = ref(o, CUDNN_ATTR_OPERATION_POINTWISE_YDESC);
        bool want_b = !unary(m), want_t = m == CUDNN_POINTWISE_BINARY_SELECT;
        if ((b != nullptr) != want_b || (t != nullptr) != want_t)
            return fail(CUDNN_STATUS_BAD_PARAM, "pointwise mode %d: wrong operands (b %d, t %d)",
                        (int)m, b != nullptr, t != nullptr);
        if (x->dims != y->dims && !broadcasts(x, y))
            return fail(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "pointwise: x %s, y %s",
                        dims_str(x->dims).c_str(), dims_str(y->dims).c_str());
        if ((b && !broadcasts(b, y)) || (t && !broadcasts(t, y)))
            return fail(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH,
                        "pointwise mode %d: an operand does not broadcast to y %s", (int)m,
                        dims_str(y->dims).c_str());
        if (m == CUDNN_POINTWISE_GEN_INDEX) {
            int64_t axis = scalar<int64_t>(pw, CUDNN_ATTR_POINTWISE_AXIS);
            if (axis < 0 || axis >= (int64_t)y->dims.size())
                return fail(CUDNN_STATUS_BAD_PARAM, "GEN_INDEX axis %lld", (long long)axis);
        }
        if (t && t->dt != CUDNN_DATA_BOOLEAN)
            return fail(CUDNN_STATUS_BAD_PARAM, "BINARY_SELECT: the mask must be BOOLEAN");
        if (y->by_value) return fail(CUDNN_STATUS_BAD_PARAM, "pointwise writes a by-value tensor");
        return CUDNN_STATUS_SUCCESS;
    }
    case D(OPERATION_REDUCTION): {
        Obj *x = ref(o, CUDNN_ATTR_OPERATION_REDUCTION_XDESC);
        Obj *y = ref(o, CUDNN_ATTR_OPERATION_REDUCTION_YDESC);
        bool ok = x->dims.size() == y->dims.size();
        for (size_t i = 0; ok && i < x->dims.size(); i++) ok = x->dims[i] % y->dims[i] == 0;
        if (!ok)
            return fail(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "reduction: x %s to y %s",
                        dims_str(x->dims).c_str(), dims_str(y->dims).c_str());
        return CUDNN_STATUS_SUCCESS;
    }
    case D(OPERATION_MATMUL): {
        Obj *a = ref(o, CUDNN_ATTR_OPERATION_MATMUL_ADESC);
        Obj *b = ref(o, CUDNN_ATTR_OPERATION_MATMUL_BDESC);
        Obj *c = ref(o, CUDNN_ATTR_OPERATION_MATMUL_CDESC);
        size_t n = c->dims.size();
        bool ok = a->dims.size() == n && b->dims.size() == n;
        for (size_t i = 0; ok && i + 2 < n; i++)
            ok = batch_ok(a->dims[i], c->dims[i]) && batch_ok(b->dims[i], c->dims[i]);
        ok = ok && a->dims[n - 2] == c->dims[n - 2] && b->dims[n - 1] == c->dims[n - 1] &&
             a->dims[n - 1] == b->dims[n - 2];
        if (!ok)
            return fail(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "matmul: a %s @ b %s -> c %s",
                        dims_str(a->dims).c_str(), dims_str(b->dims).c_str(),
                        dims_str(c->dims).c_str());
        return CUDNN_STATUS_SUCCESS;
    }
    case D(OPERATION_RESHAPE): {
        Obj *x = ref(o, CUDNN_ATTR_OPERATION_RESHAPE_XDESC);
        Obj *y = ref(o, CUDNN_ATTR_OPERATION_RESHAPE_YDESC);
        int64_t nx = 1, ny = 1;
        for (int64_t v : x->dims) nx *= v;
        for (int64_t v : y->dims) ny *= v;
        if (nx != ny)
            return fail(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "reshape: x %s, y %s",
                        dims_str(x->dims).c_str(), dims_str(y->dims).c_str());
        return CUDNN_STATUS_SUCCESS;
    }
    }
    return CUDNN_STATUS_SUCCESS;
}

// ---- recognising the attention graphs ----------------------------------------------------------

enum Kind { MM, PW, RED, RS };

// One operation of a template: kind, mode (pointwise mode or reduction operator), tensor names
// of its inputs (x, b, t; matmul a, b) and output, and the GEN_INDEX axis.
struct Step {
    Kind kind;
    int mode;
    const char *in[3];
    const char *out;
    int64_t axis;
};

struct Recog {
    bool backward, bias, gqa;
    int64_t B, H, HK, T, D, QKV;
    std::map<std::string, Obj *> t; // tensors by role
};

std::vector<Step> graph_template(bool backward, bool bias, bool gqa) {
    std::vector<Step> s;
    auto pw = [&](int m, const char *x, const char *b, const char *t, const char *y,
                  int64_t axis = -1) {
        s.push_back({PW, m, {x, b, t}, y, axis});
    };
    const char *sc = bias ? "S3" : "S2";
    auto scores = [&] {
        s.push_back({MM, 0, {"Q", "KT", nullptr}, "S1", -1});
        pw(CUDNN_POINTWISE_MUL, "S1", "SCALE", nullptr, "S2");
        if (bias) pw(CUDNN_POINTWISE_ADD, "S2", "BIAS", nullptr, "S3");
        pw(CUDNN_POINTWISE_GEN_INDEX, sc, nullptr, nullptr, "ROW", 2);
        pw(CUDNN_POINTWISE_GEN_INDEX, sc, nullptr, nullptr, "COL", 3);
        pw(CUDNN_POINTWISE_CMP_GE, "ROW", "COL", nullptr, "MASK");
        pw(CUDNN_POINTWISE_BINARY_SELECT, sc, "NEGINF", "MASK", "SM");
    };
    if (!backward) {
        scores();
        s.push_back({RED, CUDNN_REDUCE_TENSOR_MAX, {"SM", nullptr, nullptr}, "MX", -1});
        pw(CUDNN_POINTWISE_SUB, "SM", "MX", nullptr, "SUB");
        pw(CUDNN_POINTWISE_EXP, "SUB", nullptr, nullptr, "EX");
        s.push_back({RED, CUDNN_REDUCE_TENSOR_ADD, {"EX", nullptr, nullptr}, "SUM", -1});
        pw(CUDNN_POINTWISE_LOG, "SUM", nullptr, nullptr, "LG");
        pw(CUDNN_POINTWISE_ADD, "MX", "LG", nullptr, "STATS");
        pw(CUDNN_POINTWISE_DIV, "EX", "SUM", nullptr, "P");
        s.push_back({MM, 0, {"P", "V", nullptr}, "O", -1});
        return s;
    }
    pw(CUDNN_POINTWISE_MUL, "dO", "O", nullptr, "DOO");
    s.push_back({RED, CUDNN_REDUCE_TENSOR_ADD, {"DOO", nullptr, nullptr}, "SSUM", -1});
    scores();
    pw(CUDNN_POINTWISE_SUB, "SM", "STATS", nullptr, "SUB");
    pw(CUDNN_POINTWISE_EXP, "SUB", nullptr, nullptr, "PROB");
    s.push_back({RS, 0, {"PROB", nullptr, nullptr}, "PT", -1});
    s.push_back({MM, 0, {"PT", "dO", nullptr}, gqa ? "DVF" : "dV", -1});
    if (gqa) s.push_back({RED, CUDNN_REDUCE_TENSOR_ADD, {"DVF", nullptr, nullptr}, "dV", -1});
    s.push_back({MM, 0, {"dO", "VT", nullptr}, "DP", -1});
    pw(CUDNN_POINTWISE_SUB, "DP", "SSUM", nullptr, "DPS");
    pw(CUDNN_POINTWISE_MUL, "DPS", "PROB", nullptr, "DSU");
    pw(CUDNN_POINTWISE_MUL, "DSU", "SCALE", nullptr, "DS");
    s.push_back({RS, 0, {"DS", nullptr, nullptr}, "DST", -1});
    s.push_back({MM, 0, {"DST", "Q", nullptr}, gqa ? "DKF" : "dK", -1});
    if (gqa) s.push_back({RED, CUDNN_REDUCE_TENSOR_ADD, {"DKF", nullptr, nullptr}, "dK", -1});
    s.push_back({RS, 0, {"KT", nullptr, nullptr}, "KN", -1});
    s.push_back({MM, 0, {"DS", "KN", nullptr}, "DQACC", -1});
    pw(CUDNN_POINTWISE_IDENTITY, "DQACC", nullptr, nullptr, "dQ");
    return s;
}

// The operands of an operation as (x, b, t) and its output, in the template's order.
void operands(const Obj *op, Obj *in[3], Obj **out, Kind *kind, int *mode, int64_t *axis) {
    in[0] = in[1] = in[2] = nullptr;
    *axis = -1;
    *mode = 0;
    switch ((int)op->type) {
    case D(OPERATION_MATMUL):
        *kind = MM;
        in[0] = ref(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC);
        in[1] = ref(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC);
        *out = ref(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC);
        break;
    case D(OPERATION_POINTWISE): {
        *kind = PW;
        Obj *pw = ref(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR);
        *mode = (int)scalar<cudnnPointwiseMode_t>(pw, CUDNN_ATTR_POINTWISE_MODE);
        if (pw->attrs.count(CUDNN_ATTR_POINTWISE_AXIS))
            *axis = scalar<int64_t>(pw, CUDNN_ATTR_POINTWISE_AXIS);
        in[0] = ref(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC);
        in[1] = ref(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC);
        in[2] = ref(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC);
        *out = ref(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC);
        break;
    }
    case D(OPERATION_REDUCTION): {
        *kind = RED;
        Obj *r = ref(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC);
        *mode = (int)scalar<cudnnReduceTensorOp_t>(r, CUDNN_ATTR_REDUCTION_OPERATOR);
        in[0] = ref(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC);
        *out = ref(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC);
        break;
    }
    default:
        *kind = RS;
        in[0] = ref(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC);
        *out = ref(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC);
    }
}

// Matches ops against a template, binding names to tensors one to one; returns how many
// operations matched (ops.size() on success).
size_t match(const std::vector<Obj *> &ops, const std::vector<Step> &tmpl, Recog *r) {
    std::map<Obj *, std::string> names;
    r->t.clear();
    auto bind = [&](const char *name, Obj *t) {
        if (!name || !t) return name == nullptr && t == nullptr;
        auto it = r->t.find(name);
        if (it != r->t.end()) return it->second == t;
        auto jt = names.find(t);
        if (jt != names.end()) return false;
        r->t[name] = t;
        names[t] = name;
        return true;
    };
    size_t i = 0;
    for (; i < ops.size() && i < tmpl.size(); i++) {
        Obj *in[3], *out;
        Kind kind;
        int mode;
        int64_t axis;
        operands(ops[i], in, &out, &kind, &mode, &axis);
        const Step &s = tmpl[i];
        if (kind != s.kind || mode != s.mode || axis != s.axis) break;
        if (!bind(s.in[0], in[0]) || !bind(s.in[1], in[1]) || !bind(s.in[2], in[2]) ||
            !bind(s.out, out))
            break;
    }
    return i == tmpl.size() && i == ops.size() ? i : std::min(i, ops.size() - 1);
}

struct Layout {
    const char *name;
    cudnnDataType_t dt;
    bool is_virtual, by_value;
    std::vector<int64_t> dims, strides;
};

// Every tensor of the recognised graph as attention_cudnn.cu must describe it.
std::vector<Layout> layouts(const Recog &r) {
    int64_t B = r.B, H = r.H, HK = r.HK, T = r.T, D = r.D, QKV = r.QKV, C = H * D;
    const cudnnDataType_t F = CUDNN_DATA_FLOAT, BF = CUDNN_DATA_BFLOAT16;
    std::vector<int64_t> qd = {B, H, T, D}, qs = {T * QKV, D, QKV, 1};
    std::vector<int64_t> ktd = {B, HK, D, T}, kts = {T * QKV, D, 1, QKV};
    std::vector<int64_t> kvd = {B, HK, T, D};
    std::vector<int64_t> os = {T * C, D, C, 1}, hds = {H * T * D, T * D, D, 1};
    std::vector<int64_t> rd = {B, H, T, 1}, rs = {H * T, T, 1, 1};
    std::vector<int64_t> sd = {B, H, T, T}, ss = {H * T * T, T * T, T, 1};
    std::vector<int64_t> sts = {H * T * T, T * T, 1, T}, one = {1, 1, 1, 1};
    std::vector<Layout> l = {
        {"Q", BF, false, false, qd, qs},
        {"KT", BF, false, false, ktd, kts},
        {"SCALE", F, false, true, one, one},
        {"NEGINF", F, false, true, one, one},
        {"BIAS", BF, false, false, {B, 1, T, T}, {T * T, T * T, T, 1}},
        {"O", BF, false, false, qd, os},
        {"STATS", F, false, false, rd, rs},
        {"S1", F, true, false, sd, ss},
        {"S2", F, true, false, sd, ss},
        {"S3", F, true, false, sd, ss},
        {"ROW", CUDNN_DATA_INT32, true, false, sd, ss},
        {"COL", CUDNN_DATA_INT32, true, false, sd, ss},
        {"MASK", CUDNN_DATA_BOOLEAN, true, false, sd, ss},
        {"SM", F, true, false, sd, ss},
        {"SUB", F, true, false, sd, ss},
        // forward
        {"V", BF, false, false, kvd, qs},
        {"MX", F, true, false, rd, rs},
        {"EX", F, true, false, sd, ss},
        {"SUM", F, true, false, rd, rs},
        {"LG", F, true, false, rd, rs},
        {"P", BF, true, false, sd, ss},
        // backward
        {"VT", BF, false, false, ktd, kts},
        {"dO", BF, false, false, qd, os},
        {"dQ", BF, false, false, qd, qs},
        {"dK", BF, false, false, kvd, qs},
        {"dV", BF, false, false, kvd, qs},
        {"SSUM", F, false, false, rd, rs},
        {"DQACC", F, false, false, qd, hds},
        {"DOO", F, true, false, qd, hds},
        {"PROB", F, true, false, sd, ss},
        {"PT", BF, true, false, sd, sts},
        {"DVF", BF, true, false, qd, hds},
        {"DP", F, true, false, sd, ss},
        {"DPS", F, true, false, sd, ss},
        {"DSU", F, true, false, sd, ss},
        {"DS", F, true, false, sd, ss},
        {"DST", BF, true, false, sd, sts},
        {"DKF", BF, true, false, qd, hds},
        {"KN", BF, true, false, kvd, qs},
    };
    return l;
}

const char *op_name(const Obj *op) {
    switch ((int)op->type) {
    case D(OPERATION_MATMUL):
        return "matmul";
    case D(OPERATION_POINTWISE):
        return "pointwise";
    case D(OPERATION_REDUCTION):
        return "reduction";
    default:
        return "reshape";
    }
}

cudnnStatus_t recognise(Obj *g, const std::vector<Obj *> &ops) {
    size_t best_n = 0;
    int found = 0;
    Recog *r = new Recog();
    for (int bw = 0; bw < 2 && !found; bw++)
        for (int bias = 0; bias < 2 && !found; bias++)
            for (int gqa = 0; gqa < 1 + bw && !found; gqa++) {
                size_t n = match(ops, graph_template(bw, bias, gqa), r);
                if (n == ops.size()) {
                    r->backward = bw;
                    r->bias = bias;
                    r->gqa = gqa;
                    found = 1;
                } else if (n >= best_n) {
                    best_n = n;
                }
            }
    if (!found) {
        delete r;
        return fail(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN,
                    "the operation graph (%zu operations) is not one of attention_cudnn.cu's "
                    "graphs: operation %zu (%s) differs from every template",
                    ops.size(), best_n, op_name(ops[best_n]));
    }
    Obj *q = r->t.at("Q"), *kt = r->t.at("KT");
    r->B = q->dims[0];
    r->H = q->dims[1];
    r->T = q->dims[2];
    r->D = q->dims[3];
    r->HK = kt->dims[1];
    r->QKV = (r->H + 2 * r->HK) * r->D;
    if (r->HK < 1 || r->H % r->HK != 0 || (r->backward && (r->H != r->HK) != r->gqa)) {
        delete r;
        return fail(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "attention graph: NH %lld, NKV %lld",
                    (long long)q->dims[1], (long long)kt->dims[1]);
    }
    for (const Layout &l : layouts(*r)) {
        auto it = r->t.find(l.name);
        if (it == r->t.end()) continue;
        Obj *t = it->second;
        if (t->dt != l.dt || t->is_virtual != l.is_virtual || t->by_value != l.by_value ||
            t->dims != l.dims || t->strides != l.strides) {
            fail(CUDNN_STATUS_BAD_PARAM,
                 "attention graph: tensor %s (uid %lld): type %d%s%s dims %s strides %s; "
                 "expected type %d%s%s dims %s strides %s",
                 l.name, (long long)t->uid, (int)t->dt, t->is_virtual ? " virtual" : "",
                 t->by_value ? " by-value" : "", dims_str(t->dims).c_str(),
                 dims_str(t->strides).c_str(), (int)l.dt, l.is_virtual ? " virtual" : "",
                 l.by_value ? " by-value" : "", dims_str(l.dims).c_str(),
                 dims_str(l.strides).c_str());
            delete r;
            return CUDNN_STATUS_BAD_PARAM;
        }
    }
    g->recog = r;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_graph(Obj *g) {
    const Attr &a = g->attrs.at(CUDNN_ATTR_OPERATIONGRAPH_OPS);
    std::vector<Obj *> ops((Obj *const *)a.bytes.data(), (Obj *const *)a.bytes.data() + a.count);
    HandleObj *h = scalar<HandleObj *>(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE);
    if (!g_handles.count(h)) return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: bad handle");
    // tensors: uids unique; a virtual tensor produced once, before its uses, and used
    std::map<int64_t, Obj *> by_uid;
    std::map<Obj *, int> produced, used;
    for (size_t i = 0; i < ops.size(); i++) {
        Obj *in[3], *out;
        Kind kind;
        int mode;
        int64_t axis;
        operands(ops[i], in, &out, &kind, &mode, &axis);
        Obj *all[4] = {in[0], in[1], in[2], out};
        for (Obj *t : all) {
            if (!t) continue;
            auto it = by_uid.find(t->uid);
            if (it != by_uid.end() && it->second != t)
                return fail(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES,
                            "operation graph: two tensors with uid %lld", (long long)t->uid);
            by_uid[t->uid] = t;
        }
        for (int k = 0; k < 3; k++)
            if (in[k]) {
                if (in[k]->is_virtual && !produced.count(in[k]))
                    return fail(CUDNN_STATUS_BAD_PARAM,
                                "operation graph: virtual tensor uid %lld used by operation %zu "
                                "before it is produced",
                                (long long)in[k]->uid, i);
                used[in[k]]++;
            }
        if (produced[out]++)
            return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: tensor uid %lld written twice",
                        (long long)out->uid);
    }
    for (auto &p : produced)
        if (p.first->is_virtual && !used.count(p.first))
            return fail(CUDNN_STATUS_BAD_PARAM, "operation graph: virtual tensor uid %lld unused",
                        (long long)p.first->uid);
    return recognise(g, ops);
}

// ---- computing the result ----------------------------------------------------------------------

float load(const Obj *t, const void *p, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int64_t off = i0 * t->strides[0] + i1 * t->strides[1] + i2 * t->strides[2] + i3 * t->strides[3];
    if (t->dt == CUDNN_DATA_BFLOAT16) return __bfloat162float(((const __nv_bfloat16 *)p)[off]);
    return ((const float *)p)[off];
}

void store(const Obj *t, void *p, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v) {
    int64_t off = i0 * t->strides[0] + i1 * t->strides[1] + i2 * t->strides[2] + i3 * t->strides[3];
    if (t->dt == CUDNN_DATA_BFLOAT16)
        ((__nv_bfloat16 *)p)[off] = __float2bfloat16_rn(v);
    else
        ((float *)p)[off] = v;
}

cudnnStatus_t compute(const Recog &r, std::map<std::string, void *> &ptr) {
    int B = (int)r.B, H = (int)r.H, HK = (int)r.HK, T = (int)r.T, D = (int)r.D;
    size_t QKV = (size_t)r.QKV, C = (size_t)H * D, N = (size_t)B * T;
    const std::map<std::string, Obj *> &t = r.t;
    float scale = *(const float *)ptr["SCALE"], neg = *(const float *)ptr["NEGINF"];
    if (fabsf(scale * sqrtf((float)D) - 1.0f) > 1e-6f)
        return fail(CUDNN_STATUS_NOT_SUPPORTED,
                    "execute: scale %g is not 1/sqrt(hs) = %g, which the CPU reference uses", scale,
                    1.0 / sqrt((double)D));
    if (!(std::isinf(neg) && neg < 0) && neg != -FLT_MAX)
        return fail(CUDNN_STATUS_NOT_SUPPORTED,
                    "execute: the mask fill is %g, not -inf (or the lowest float)", neg);
    // qkv (B,T,QKV) in fp32 from the bf16 views
    std::vector<float> qkv(N * QKV);
    const char *vname = r.backward ? "VT" : "V";
    for (int b = 0; b < B; b++)
        for (int s = 0; s < T; s++) {
            float *row = &qkv[((size_t)b * T + s) * QKV];
            for (int h = 0; h < H; h++)
                for (int i = 0; i < D; i++) row[h * D + i] = load(t.at("Q"), ptr["Q"], b, h, s, i);
            for (int h = 0; h < HK; h++)
                for (int i = 0; i < D; i++) {
                    row[C + h * D + i] = load(t.at("KT"), ptr["KT"], b, h, i, s);
                    row[C + (HK + h) * D + i] = r.backward
                                                    ? load(t.at(vname), ptr[vname], b, h, i, s)
                                                    : load(t.at(vname), ptr[vname], b, h, s, i);
                }
        }
    // segments from the bias: 0 where the segments agree, -inf where they do not
    std::vector<int> seg;
    if (r.bias) {
        seg.resize(N);
        for (int b = 0; b < B; b++)
            for (int q = 0; q < T; q++) {
                int first = q;
                for (int s = 0; s <= q; s++) {
                    float v = load(t.at("BIAS"), ptr["BIAS"], b, 0, q, s);
                    if (v == 0.0f && first == q) first = s;
                    if (v != 0.0f && !(std::isinf(v) && v < 0))
                        return fail(CUDNN_STATUS_NOT_SUPPORTED,
                                    "execute: bias[%d,%d,%d] = %g is not a segment mask (0/-inf)",
                                    b, q, s, v);
                }
                seg[(size_t)b * T + q] = first;
            }
        for (int b = 0; b < B; b++)
            for (int q = 0; q < T; q++)
                for (int s = 0; s <= q; s++) {
                    float v = load(t.at("BIAS"), ptr["BIAS"], b, 0, q, s);
                    bool same = seg[(size_t)b * T + q] == seg[(size_t)b * T + s];
                    if (same != (v == 0.0f))
                        return fail(CUDNN_STATUS_NOT_SUPPORTED,
                                    "execute: the bias of row %d is not a packed-segment mask", b);
                }
    }
    const int *segp = r.bias ? seg.data() : nullptr;
    const Backend *cpu = backend_cpu();
    // the CPU backend's attention state (its softmax probabilities) and backward scratch
    std::vector<float> out(N * C), att(cpu->attention_state_floats(B, T, H));
    cpu->attention_forward(out.data(), att.data(), qkv.data(), segp, B, T, H, HK, D);
    // the logsumexp of the scaled, masked scores
    std::vector<float> lse((size_t)B * H * T);
    int G = H / HK;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int q = 0; q < T; q++) {
                const float *qv = &qkv[((size_t)b * T + q) * QKV + (size_t)h * D];
                std::vector<double> sc;
                double m = -INFINITY;
                for (int s = 0; s <= q; s++) {
                    if (segp && segp[(size_t)b * T + s] != segp[(size_t)b * T + q]) continue;
                    const float *kv = &qkv[((size_t)b * T + s) * QKV + C + (size_t)(h / G) * D];
                    double dot = 0;
                    for (int i = 0; i < D; i++) dot += (double)qv[i] * kv[i];
                    sc.push_back(dot * scale);
                    if (sc.back() > m) m = sc.back();
                }
                double z = 0;
                for (double v : sc) z += exp(v - m);
                lse[((size_t)b * H + h) * T + q] = (float)(m + log(z));
            }
    if (!r.backward) {
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int q = 0; q < T; q++) {
                    for (int i = 0; i < D; i++)
                        store(t.at("O"), ptr["O"], b, h, q, i,
                              out[((size_t)b * T + q) * C + (size_t)h * D + i]);
                    store(t.at("STATS"), ptr["STATS"], b, h, q, 0,
                          lse[((size_t)b * H + h) * T + q]);
                }
        return CUDNN_STATUS_SUCCESS;
    }
    // backward: the inputs the fused kernel relies on must be the forward's
    std::vector<float> dout(N * C);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int q = 0; q < T; q++) {
                float want = lse[((size_t)b * H + h) * T + q];
                float got = load(t.at("STATS"), ptr["STATS"], b, h, q, 0);
                if (!(fabsf(got - want) <= 1e-4f * (1.0f + fabsf(want))))
                    return fail(CUDNN_STATUS_BAD_PARAM,
                                "execute: stats[%d,%d,%d] = %g, but the forward's logsumexp of "
                                "these Q, K is %g",
                                b, h, q, got, want);
                double dsum = 0;
                for (int i = 0; i < D; i++) {
                    float o = load(t.at("O"), ptr["O"], b, h, q, i);
                    float ref = out[((size_t)b * T + q) * C + (size_t)h * D + i];
                    if (!(fabsf(o - ref) <= 1e-5f + fabsf(ref) * (1.0f / 128)))
                        return fail(CUDNN_STATUS_BAD_PARAM,
                                    "execute: O[%d,%d,%d,%d] = %g is not the forward's output %g",
                                    b, h, q, i, o, ref);
                    float g = load(t.at("dO"), ptr["dO"], b, h, q, i);
                    dout[((size_t)b * T + q) * C + (size_t)h * D + i] = g;
                    dsum += (double)g * o;
                }
                store(t.at("SSUM"), ptr["SSUM"], b, h, q, 0, (float)dsum);
            }
    std::vector<float> dqkv(N * QKV), scratch(cpu->attention_scratch_floats(B, T, H));
    cpu->attention_backward(dqkv.data(), scratch.data(), dout.data(), out.data(), qkv.data(),
                            att.data(), segp, B, T, H, HK, D);
    for (int b = 0; b < B; b++)
        for (int s = 0; s < T; s++) {
            const float *row = &dqkv[((size_t)b * T + s) * QKV];
            for (int h = 0; h < H; h++)
                for (int i = 0; i < D; i++) {
                    store(t.at("DQACC"), ptr["DQACC"], b, h, s, i, row[h * D + i]);
                    store(t.at("dQ"), ptr["dQ"], b, h, s, i, row[h * D + i]);
                }
            for (int h = 0; h < HK; h++)
                for (int i = 0; i < D; i++) {
                    store(t.at("dK"), ptr["dK"], b, h, s, i, row[C + h * D + i]);
                    store(t.at("dV"), ptr["dV"], b, h, s, i, row[C + (HK + h) * D + i]);
                }
        }
    return CUDNN_STATUS_SUCCESS;
}

// The bytes a strided view spans from its pointer.
size_t extent(const Obj *t) {
    int64_t last = 0;
    for (size_t i = 0; i < t->dims.size(); i++) last += (t->dims[i] - 1) * t->strides[i];
    return (size_t)(last + 1) * dt_size(t->dt);
}

// The bytes [lo, hi) of one element of a bound tensor, and the tensor's name.
struct Span {
    uintptr_t lo, hi;
    const char *name;
    bool operator<(const Span &o) const {
        return lo < o.lo;
    }
};

// Appends the bytes of every element of the 4-d view t at p.
void spans(const Obj *t, const void *p, const char *name, std::vector<Span> &v) {
    const std::vector<int64_t> &d = t->dims, &st = t->strides;
    size_t es = dt_size(t->dt);
    for (int64_t a = 0; a < d[0]; a++)
        for (int64_t b = 0; b < d[1]; b++)
            for (int64_t c = 0; c < d[2]; c++)
                for (int64_t e = 0; e < d[3]; e++) {
                    uintptr_t lo =
                        (uintptr_t)p + (a * st[0] + b * st[1] + c * st[2] + e * st[3]) * es;
                    v.push_back({lo, lo + es, name});
                }
}

// The tensors a graph writes must not share a byte with each other or with any tensor it reads
// (interleaved views of one buffer are fine: dQ, dK, dV in the rows of dqkv). Checked element
// by element: the written spans sorted, then every read element looked up among them.
cudnnStatus_t check_overlap(const Recog &r, std::map<std::string, void *> &ptr) {
    static const char *const kWrittenFwd[] = {"O", "STATS"};
    static const char *const kWrittenBwd[] = {"dQ", "dK", "dV", "SSUM", "DQACC"};
    std::set<std::string> written;
    if (r.backward)
        written.insert(std::begin(kWrittenBwd), std::end(kWrittenBwd));
    else
        written.insert(std::begin(kWrittenFwd), std::end(kWrittenFwd));
    std::vector<Span> out, in;
    for (const auto &kv : r.t) {
        const Obj *t = kv.second;
        if (t->is_virtual || t->by_value || t->dims.size() != 4) continue;
        spans(t, ptr.at(kv.first), kv.first.c_str(), written.count(kv.first) ? out : in);
    }
    std::sort(out.begin(), out.end());
    for (size_t i = 1; i < out.size(); i++)
        if (out[i].lo < out[i - 1].hi)
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "Execute: the written tensors %s and %s overlap at %p", out[i - 1].name,
                        out[i].name, (void *)out[i].lo);
    for (const Span &x : in) {
        auto it = std::lower_bound(out.begin(), out.end(), Span{x.hi, 0, nullptr});
        if (it != out.begin() && (it - 1)->hi > x.lo)
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "Execute: the written tensor %s overlaps the read tensor %s at %p",
                        (it - 1)->name, x.name, (void *)x.lo);
    }
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

// ---- the API -----------------------------------------------------------------------------------

const char *cudnnGetErrorString(cudnnStatus_t st) {
    switch (st) {
    case CUDNN_STATUS_SUCCESS:
        return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM:
        return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER:
        return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER:
        return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED:
        return "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED";
    case CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND:
        return "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND";
    case CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT:
        return "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH:
        return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES:
        return "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES";
    case CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE:
        return "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE";
    case CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE:
        return "CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED:
        return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN:
        return "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE:
        return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE:
        return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    default:
        return "CUDNN_STATUS_(other)";
    }
}

void cudnnGetLastErrorString(char *message, size_t max_size) {
    if (!message || !max_size) return;
    snprintf(message, max_size, "%s", g_last.c_str());
}

size_t cudnnGetVersion(void) {
    return CUDNN_VERSION;
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    if (!handle) return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "cudnnCreate: NULL");
    HandleObj *h = new HandleObj();
    g_handles.insert(h);
    *handle = (cudnnHandle_t)h;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    HandleObj *h = (HandleObj *)handle;
    if (!g_handles.erase(h)) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnDestroy: bad handle");
    delete h;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
    HandleObj *h = (HandleObj *)handle;
    if (!g_handles.count(h)) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetStream: bad handle");
    h->stream = stream;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t type,
                                           cudnnBackendDescriptor_t *desc) {
    if (!desc) return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "CreateDescriptor: NULL");
    if (!known_type(type))
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "CreateDescriptor: type %d not handled", (int)type);
    Obj *o = new Obj();
    o->type = type;
    g_objs.insert(o);
    *desc = o;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t desc) {
    Obj *o = obj(desc);
    if (!o) return fail(CUDNN_STATUS_BAD_PARAM, "DestroyDescriptor: not a live descriptor");
    g_objs.erase(o);
    delete o->recog;
    delete o;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t desc,
                                       cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t count,
                                       const void *value) {
    Obj *o = obj(desc);
    if (!o) return fail(CUDNN_STATUS_BAD_PARAM, "SetAttribute %d: not a live descriptor", name);
    if (o->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, "SetAttribute %d on descriptor type %d after finalize",
                    name, (int)o->type);
    const Spec *s = spec(o->type, name);
    if (!s)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "SetAttribute: attribute %d on descriptor type %d",
                    name, (int)o->type);
    if (type != s->type)
        return fail(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE,
                    "SetAttribute %d: attribute type %d, expected %d", name, (int)type,
                    (int)s->type);
    if (count < s->min || count > s->max)
        return fail(CUDNN_STATUS_BAD_PARAM, "SetAttribute %d: %lld elements (%lld..%lld)", name,
                    (long long)count, (long long)s->min, (long long)s->max);
    if (count > 0 && !value)
        return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "SetAttribute %d: NULL value", name);
    if (type == CUDNN_TYPE_BACKEND_DESCRIPTOR)
        for (int64_t i = 0; i < count; i++) {
            Obj *r = obj(((cudnnBackendDescriptor_t const *)value)[i]);
            if (!r)
                return fail(CUDNN_STATUS_BAD_PARAM,
                            "SetAttribute %d: element %lld is not a live "
                            "descriptor",
                            name, (long long)i);
            if (!r->finalized)
                return fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED,
                            "SetAttribute %d: descriptor (type %d) not finalized", name,
                            (int)r->type);
            bool ok = s->ref == REF_OPERATION ? is_operation(r->type) : (int)r->type == s->ref;
            if (!ok)
                return fail(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE,
                            "SetAttribute %d: descriptor type %d", name, (int)r->type);
        }
    Attr a;
    a.type = type;
    a.count = count;
    a.bytes.assign((const unsigned char *)value,
                   (const unsigned char *)value + count * elem_size(type));
    o->attrs[name] = a;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t desc) {
    Obj *o = obj(desc);
    if (!o) return fail(CUDNN_STATUS_BAD_PARAM, "Finalize: not a live descriptor");
    if (o->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM, "Finalize: descriptor type %d finalized twice",
                    (int)o->type);
    if (o->type == CUDNN_BACKEND_ENGINECFG_DESCRIPTOR || o->type == CUDNN_BACKEND_ENGINE_DESCRIPTOR)
        return fail(CUDNN_STATUS_BAD_PARAM, "Finalize: engine configurations and engines come "
                                            "finalized from the heuristics");
    for (const Spec &s : kSpecs)
        if (s.desc == o->type && s.required && !o->attrs.count(s.name))
            return fail(CUDNN_STATUS_BAD_PARAM, "Finalize: descriptor type %d lacks attribute %d",
                        (int)o->type, (int)s.name);
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    switch ((int)o->type) {
    case D(TENSOR):
        st = finalize_tensor(o);
        break;
    case D(OPERATIONGRAPH):
        st = finalize_graph(o);
        if (st == CUDNN_STATUS_SUCCESS) g_graphs++;
        break;
    case D(ENGINEHEUR): {
        o->graph = ref(o, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH);
        auto m = scalar<cudnnBackendHeurMode_t>(o, CUDNN_ATTR_ENGINEHEUR_MODE);
        if (m != CUDNN_HEUR_MODE_A && m != CUDNN_HEUR_MODE_B && m != CUDNN_HEUR_MODE_FALLBACK)
            st = fail(CUDNN_STATUS_BAD_PARAM, "engine heuristics: mode %d", (int)m);
        break;
    }
    case D(EXECUTION_PLAN): {
        HandleObj *h = scalar<HandleObj *>(o, CUDNN_ATTR_EXECUTION_PLAN_HANDLE);
        if (!g_handles.count(h)) return fail(CUDNN_STATUS_BAD_PARAM, "execution plan: bad handle");
        Obj *cfg = ref(o, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG);
        o->graph = cfg->graph;
        o->engine = cfg->engine;
        if (!o->graph || !obj(o->graph))
            return fail(CUDNN_STATUS_BAD_PARAM, "execution plan: its graph was destroyed");
        const Recog &r = *o->graph->recog;
        o->workspace = 4096 + r.B * r.H * r.T * 8; // some workspace, to exercise its checks
        break;
    }
    case D(VARIANT_PACK): {
        const Attr &u = o->attrs.at(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS);
        const Attr &p = o->attrs.at(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS);
        if (u.count != p.count)
            return fail(CUDNN_STATUS_BAD_PARAM, "variant pack: %lld uids, %lld pointers",
                        (long long)u.count, (long long)p.count);
        o->uids.assign((const int64_t *)u.bytes.data(), (const int64_t *)u.bytes.data() + u.count);
        o->ptrs.assign((void *const *)p.bytes.data(), (void *const *)p.bytes.data() + p.count);
        o->ws = scalar<void *>(o, CUDNN_ATTR_VARIANT_PACK_WORKSPACE);
        std::set<int64_t> seen;
        for (int64_t id : o->uids)
            if (!seen.insert(id).second)
                return fail(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES,
                            "variant pack: uid %lld twice", (long long)id);
        break;
    }
    default:
        st = finalize_op(o);
    }
    if (st == CUDNN_STATUS_SUCCESS) o->finalized = true;
    return st;
}

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const desc,
                                       cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t requested,
                                       int64_t *count, void *out) {
    Obj *o = obj(desc);
    if (!o) return fail(CUDNN_STATUS_BAD_PARAM, "GetAttribute %d: not a live descriptor", name);
    if (!o->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, "GetAttribute %d: not finalized", name);
    if (!count)
        return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "GetAttribute %d: NULL count", name);
    if (o->type == CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR && name == CUDNN_ATTR_ENGINEHEUR_RESULTS) {
        if (type != CUDNN_TYPE_BACKEND_DESCRIPTOR)
            return fail(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE, "heuristics results: type %d",
                        (int)type);
        if (requested == 0) {
            *count = kEngines;
            return CUDNN_STATUS_SUCCESS;
        }
        if (!out) return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "heuristics results: NULL");
        for (int64_t i = 0; i < requested; i++) {
            Obj *c = obj(((cudnnBackendDescriptor_t *)out)[i]);
            if (!c || c->type != CUDNN_BACKEND_ENGINECFG_DESCRIPTOR || c->finalized)
                return fail(CUDNN_STATUS_BAD_PARAM,
                            "heuristics results: element %lld is not a "
                            "fresh engine configuration",
                            (long long)i);
        }
        int64_t n = requested < kEngines ? requested : kEngines;
        for (int64_t i = 0; i < n; i++) {
            Obj *c = obj(((cudnnBackendDescriptor_t *)out)[i]);
            c->graph = o->graph;
            c->engine = (int)i;
            c->finalized = true;
        }
        *count = n;
        return CUDNN_STATUS_SUCCESS;
    }
    if (o->type == CUDNN_BACKEND_ENGINECFG_DESCRIPTOR && name == CUDNN_ATTR_ENGINECFG_ENGINE) {
        if (type != CUDNN_TYPE_BACKEND_DESCRIPTOR || requested < 1 || !out)
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "engine configuration's engine: type %d, %lld "
                        "elements",
                        (int)type, (long long)requested);
        Obj *e = obj(*(cudnnBackendDescriptor_t *)out);
        if (!e || e->type != CUDNN_BACKEND_ENGINE_DESCRIPTOR || e->finalized)
            return fail(CUDNN_STATUS_BAD_PARAM, "engine configuration's engine: not a fresh "
                                                "engine descriptor");
        e->graph = o->graph;
        e->engine = o->engine;
        e->finalized = true;
        *count = 1;
        return CUDNN_STATUS_SUCCESS;
    }
    if (o->type == CUDNN_BACKEND_ENGINE_DESCRIPTOR && name == CUDNN_ATTR_ENGINE_NUMERICAL_NOTE) {
        if (type != CUDNN_TYPE_NUMERICAL_NOTE || (requested > 0 && !out))
            return fail(CUDNN_STATUS_BAD_PARAM, "engine numerical notes: type %d", (int)type);
        std::vector<cudnnBackendNumericalNote_t> notes = {CUDNN_NUMERICAL_NOTE_TENSOR_CORE};
        if (engine_nondeterministic(o->engine))
            notes.push_back(CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC);
        int64_t n = 0;
        for (; n < requested && n < (int64_t)notes.size(); n++)
            ((cudnnBackendNumericalNote_t *)out)[n] = notes[(size_t)n];
        *count = requested ? n : (int64_t)notes.size();
        return CUDNN_STATUS_SUCCESS;
    }
    if (o->type == CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR &&
        name == CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE) {
        if (type != CUDNN_TYPE_INT64 || requested < 1 || !out)
            return fail(CUDNN_STATUS_BAD_PARAM, "plan workspace size: type %d, %lld elements",
                        (int)type, (long long)requested);
        *(int64_t *)out = o->workspace;
        *count = 1;
        return CUDNN_STATUS_SUCCESS;
    }
    return fail(CUDNN_STATUS_NOT_SUPPORTED, "GetAttribute %d on descriptor type %d not handled",
                name, (int)o->type);
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t plan,
                                  cudnnBackendDescriptor_t pack) {
    if (!g_handles.count((HandleObj *)handle))
        return fail(CUDNN_STATUS_BAD_PARAM, "Execute: bad handle");
    Obj *p = obj(plan), *v = obj(pack);
    if (!p || p->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR || !p->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, "Execute: not a finalized plan");
    if (!v || v->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR || !v->finalized)
        return fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, "Execute: not a finalized variant pack");
    if (!obj(p->graph)) return fail(CUDNN_STATUS_BAD_PARAM, "Execute: the graph was destroyed");
    const Recog &r = *p->graph->recog;
    std::map<int64_t, void *> bound;
    for (size_t i = 0; i < v->uids.size(); i++) bound[v->uids[i]] = v->ptrs[i];
    std::map<std::string, void *> ptr;
    std::set<int64_t> graph_uids;
    for (const auto &kv : r.t) {
        const Obj *t = kv.second;
        if (t->is_virtual) continue;
        graph_uids.insert(t->uid);
        auto it = bound.find(t->uid);
        if (it == bound.end())
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "Execute: uid %lld (%s) missing from the variant "
                        "pack",
                        (long long)t->uid, kv.first.c_str());
        void *q = it->second;
        if (!q)
            return fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "Execute: uid %lld (%s) is NULL",
                        (long long)t->uid, kv.first.c_str());
        if ((uintptr_t)q % (uintptr_t)t->align)
            return fail(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER,
                        "Execute: uid %lld (%s) at %p is not %lld-byte aligned", (long long)t->uid,
                        kv.first.c_str(), q, (long long)t->align);
        if (t->by_value && lc_emu_is_device(q, dt_size(t->dt)))
            return fail(CUDNN_STATUS_BAD_PARAM,
                        "Execute: by-value uid %lld (%s) is bound to device memory %p; cuDNN reads "
                        "it on the host",
                        (long long)t->uid, kv.first.c_str(), q);
        if (!t->by_value && !lc_emu_is_device(q, extent(t)))
            return fail(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND,
                        "Execute: uid %lld (%s) at %p spans %zu bytes, outside every device "
                        "allocation",
                        (long long)t->uid, kv.first.c_str(), q, extent(t));
        ptr[kv.first] = q;
    }
    for (int64_t id : v->uids)
        if (!graph_uids.count(id))
            return fail(CUDNN_STATUS_BAD_PARAM, "Execute: uid %lld is not a tensor of the graph",
                        (long long)id);
    if (p->workspace > 0) {
        if (!v->ws || (uintptr_t)v->ws % 16 || !lc_emu_is_device(v->ws, (size_t)p->workspace))
            return fail(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT,
                        "Execute: the workspace %p is not %lld bytes of device memory", v->ws,
                        (long long)p->workspace);
        memset(v->ws, 0xFF, (size_t)p->workspace); // scribbled, as a real engine may
    }
    for (size_t i = 0; i < v->uids.size(); i++) g_bound[v->uids[i]] = v->ptrs[i];
    cudnnStatus_t st = check_overlap(r, ptr);
    if (st == CUDNN_STATUS_SUCCESS) st = compute(r, ptr);
    if (st == CUDNN_STATUS_SUCCESS) {
        g_executions++;
        if (engine_nondeterministic(p->engine)) g_nondeterministic++;
    }
    return st;
}

// ---- the test's interface ----------------------------------------------------------------------

long lc_emu_cudnn_errors(void) {
    return g_errors;
}
long lc_emu_cudnn_executions(void) {
    return g_executions;
}
long lc_emu_cudnn_nondeterministic(void) {
    return g_nondeterministic;
}
long lc_emu_cudnn_graphs(void) {
    return g_graphs;
}
long lc_emu_cudnn_live(void) {
    return (long)g_objs.size();
}
const void *lc_emu_cudnn_bound(long uid) {
    auto it = g_bound.find(uid);
    return it == g_bound.end() ? nullptr : it->second;
}
const char *lc_emu_cudnn_last_error(void) {
    return g_last.c_str();
}
void lc_emu_cudnn_reset(void) {
    g_errors = g_executions = g_graphs = g_nondeterministic = 0;
    g_last.clear();
}
