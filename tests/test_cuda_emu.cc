// tests/test_cuda_emu.cc: the CUDA kernels of kernels/cuda/ run on the CPU by the emulation
// harness (tests/cuda_emu/cuemu.h, docs/cuda-emulation.md), each against the CPU backend's
// function at odd shapes under four schedules (forward, reverse, two seeded random ones), with
// no harness warning or error and no write outside a buffer (guard bytes around every device
// buffer); every kernel templated on its element type as float and as bf16 (bf16_* tests); the
// frozen-parameter paths (NULL parameter gradients) of the norms' and the embedding's backward
// (frozen, bf16_frozen; cuBLASLt's matmul and LoRA are tests/test_cuda_matmul.cc's). Then
// the harness itself: its shuffles and votes, bf16 rounding, and seeded bugs it must catch (a
// missing barrier, an out-of-bounds write, a divergent barrier, a shuffle naming exited lanes,
// invalid launches, never-written shared memory, a deadlock).
//
//     test_cuda_emu [NAME...]    runs the named tests (all without arguments); exit 1 on failure
#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/classifier.cuh"
#include "kernels/cuda/convert.cuh"
#include "kernels/cuda/encoder.cuh"
#include "kernels/cuda/gelu.cuh"
#include "kernels/cuda/kvcache.cuh"
#include "kernels/cuda/norm.cuh"
#include "kernels/cuda/optim.cuh"
#include "kernels/cuda/residual.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/sample.cuh"
#include "kernels/cuda/swiglu.cuh"

extern "C" {
#include "kernels/kernels.h"
}

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// ---- a minimal test framework ------------------------------------------------------------------

static int g_failures;
static std::string g_context; // the shape and schedule being run, for messages

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAILED %s [%s]: ", __FILE__, __LINE__, #cond,                  \
                    g_context.c_str());                                                            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

static std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static std::string fmt(const char *f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

struct Schedule {
    int mode;
    unsigned long long seed;
    const char *name;
};
static const Schedule kSchedules[] = {{CUEMU_FORWARD, 0, "forward"},
                                      {CUEMU_REVERSE, 0, "reverse"},
                                      {CUEMU_RANDOM, 1, "random(1)"},
                                      {CUEMU_RANDOM, 2, "random(2)"}};

// Under AddressSanitizer every fiber switch costs a system call (its longjmp interception), so
// sanitizer builds run the kernels under the first and third schedules only, and leave the largest
// shapes of the sum of squares, attention and the sampler to the Release run; the seeded-bug
// tests keep all four schedules.
#if defined(__SANITIZE_ADDRESS__)
static const bool kSanitized = true;
#else
static const bool kSanitized = false;
#endif
static bool skip_schedule(const Schedule &s) {
    return kSanitized && (&s == &kSchedules[1] || &s == &kSchedules[3]);
}

static void use_schedule(const Schedule &s) {
    cuemu_set_schedule(s.mode, s.seed);
    cuemu_reset();
}

// The largest differences seen per compared quantity, for the summary.
struct Stat {
    std::string what;
    double max_abs = 0, max_rel = 0;
    long compared = 0;
};
static std::vector<Stat> g_stats;

static Stat &stat(const std::string &what) {
    for (Stat &s : g_stats)
        if (s.what == what) return s;
    g_stats.push_back(Stat{what});
    return g_stats.back();
}

// got == ref within |got - ref| <= atol + |ref| rtol elementwise (llm.c's rule); records the
// largest differences under `what`.
template <class T>
static bool expect_close(const char *what, const T *got, const T *ref, size_t n, double atol,
                         double rtol) {
    Stat &st = stat(what);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        double g = (double)got[i], r = (double)ref[i], d = fabs(g - r);
        if (!(d <= atol + fabs(r) * rtol)) { // NaN fails too
            if (!bad++) first = i;
        }
        if (std::isfinite(d)) {
            if (d > st.max_abs) st.max_abs = d;
            if (r != 0 && d / fabs(r) > st.max_rel) st.max_rel = d / fabs(r);
        } else {
            st.max_abs = INFINITY;
        }
    }
    st.compared += (long)n;
    CHECK(bad == 0, "%s: %zu of %zu values differ, first at %zu: got %.9g want %.9g", what, bad, n,
          first, bad ? (double)got[first] : 0.0, bad ? (double)ref[first] : 0.0);
    return bad == 0;
}

// ---- device memory: host buffers with guard bytes on both sides ---------------------------------

static const size_t kGuard = 64;
static const unsigned char kCanary = 0xA5;

struct DevBuf {
    unsigned char *base;
    size_t lead, bytes; // lead: guard + misalignment padding before the data
};
static std::vector<DevBuf> g_bufs;

// n elements of T, `offset` elements past a 16-byte boundary (1: the kernels' scalar path).
template <class T> static T *dev_alloc(size_t n, size_t offset = 0) {
    size_t lead = kGuard + offset * sizeof(T), bytes = n * sizeof(T);
    size_t total = (lead + bytes + kGuard + 63) / 64 * 64; // aligned_alloc: a multiple of 64
    unsigned char *base = static_cast<unsigned char *>(aligned_alloc(64, total));
    memset(base, kCanary, lead + bytes + kGuard);
    g_bufs.push_back(DevBuf{base, lead, bytes});
    return reinterpret_cast<T *>(base + lead);
}

template <class T> static T *dev_copy(const std::vector<T> &v, size_t offset = 0) {
    T *p = dev_alloc<T>(v.size(), offset);
    if (!v.empty()) memcpy(p, v.data(), v.size() * sizeof(T));
    return p;
}

// Whether every guard byte is intact; names the first damaged buffer unless quiet.
static bool guards_intact(bool quiet = false) {
    for (size_t b = 0; b < g_bufs.size(); b++) {
        const DevBuf &d = g_bufs[b];
        for (size_t i = 0; i < d.lead; i++)
            if (d.base[i] != kCanary) {
                if (!quiet)
                    fprintf(stderr, "buffer %zu: guard byte %zu before the data overwritten\n", b,
                            d.lead - i);
                return false;
            }
        for (size_t i = 0; i < kGuard; i++)
            if (d.base[d.lead + d.bytes + i] != kCanary) {
                if (!quiet)
                    fprintf(stderr, "buffer %zu: guard byte %zu after the data overwritten\n", b,
                            i);
                return false;
            }
    }
    return true;
}

static void dev_free_all() {
    for (DevBuf &d : g_bufs) free(d.base);
    g_bufs.clear();
}

// After every emulated run of a correct kernel: no harness message, no write out of bounds.
static void expect_clean() {
    CHECK(cuemu_warnings() == 0, "%ld harness warnings", cuemu_warnings());
    CHECK(cuemu_errors() == 0, "%ld harness errors", cuemu_errors());
    CHECK(guards_intact(), "a kernel wrote outside its buffers");
}

// ---- inputs ----------------------------------------------------------------------------------

static unsigned long long g_rng = 88172645463325252ull;
static float uniform(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}
static std::vector<float> randv(size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (float &x : v) x = uniform(lo, hi);
    return v;
}

static const Backend *cpu() {
    return backend_cpu();
}

// ---- element types: every templated kernel runs as float and as __nv_bfloat16 ----------------
// Inputs are rounded to bf16 first and the CPU backend computes on those values in fp32; the
// kernels compute in fp32 too and round once, to nearest even, on the way out. So a bf16 result
// lies within half a bf16 ulp (at most 2^-8 relative) of the fp32 result the kernel had, which
// itself is within the fp32 tolerance of the reference: rtol 2^-8 + 1e-5 (llm.c's dev/cuda allows
// 0.079 for bf16). The summary also counts the results bit-identical to the reference rounded.

typedef __nv_bfloat16 bf16;

static std::vector<float> bf16_round(std::vector<float> v) {
    for (float &x : v) x = __bfloat162float(__float2bfloat16(x));
    return v;
}
static std::vector<bf16> to_bf16(const std::vector<float> &v) {
    std::vector<bf16> o(v.size());
    for (size_t i = 0; i < v.size(); i++) o[i] = __float2bfloat16(v[i]);
    return o;
}
static std::vector<float> from_bf16(const bf16 *p, size_t n) {
    std::vector<float> o(n);
    for (size_t i = 0; i < n; i++) o[i] = __bfloat162float(p[i]);
    return o;
}

static long g_bf16_exact, g_bf16_total;

static void expect_bf16(const char *what, const bf16 *got, const std::vector<float> &ref,
                        double atol) {
    std::vector<float> g = from_bf16(got, ref.size());
    expect_close(what, g.data(), ref.data(), ref.size(), atol, 1.0 / 256 + 1e-5);
    for (size_t i = 0; i < ref.size(); i++)
        g_bf16_exact += g[i] == __bfloat162float(__float2bfloat16(ref[i]));
    g_bf16_total += (long)ref.size();
}

// A kernel test templated on the element type T of its activations runs twice: T = float against
// the fp32 tolerances, T = bf16 with its inputs rounded to bf16 first (act_in) and the CPU
// backend's reference computed on those values, each bf16 result compared as expect_bf16 does
// (the fp32 tolerance plus 2^-8 relative: one rounding of the kernel's fp32 value) unless the
// test widens it where a bf16 intermediate feeds the next computation (said there). fp32 outputs
// (statistics, parameter gradients) keep their fp32 tolerances: only their inputs are rounded.
template <class T> static constexpr bool kBf16 = sizeof(T) == 2;
template <class T> static const char *tname() {
    return kBf16<T> ? "bf16" : "fp32";
}

// v as the kernel of element type T sees it: rounded to bf16 when T is bf16.
template <class T> static std::vector<float> act_in(std::vector<float> v) {
    return kBf16<T> ? bf16_round(std::move(v)) : v;
}

// v converted to T in a device buffer (offset as dev_alloc's).
template <class T> static T *dev_act(const std::vector<float> &v, size_t offset = 0) {
    if constexpr (kBf16<T>)
        return dev_copy(to_bf16(v), offset);
    else
        return dev_copy(v, offset);
}

// n values of T at p as floats (exact).
template <class T> static std::vector<float> host_act(const T *p, size_t n) {
    if constexpr (kBf16<T>)
        return from_bf16(p, n);
    else { // sized then copied: the iterator constructor trips GCC 12's -Wfree-nonheap-object
        std::vector<float> v(n);
        if (n) memcpy(v.data(), p, n * sizeof(float));
        return v;
    }
}

// got (n) of T against ref (n): fp32 by expect_close; bf16 as expect_bf16 with rtol + 2^-8,
// recorded under "bf16 <what>".
template <class T>
static void expect_act(const char *what, const T *got, const float *ref, size_t n, double atol,
                       double rtol) {
    if constexpr (kBf16<T>) {
        std::vector<float> g = from_bf16(got, n);
        expect_close(fmt("bf16 %s", what).c_str(), g.data(), ref, n, atol, rtol + 1.0 / 256);
        for (size_t i = 0; i < n; i++)
            g_bf16_exact += g[i] == __bfloat162float(__float2bfloat16(ref[i]));
        g_bf16_total += (long)n;
    } else {
        expect_close(what, got, ref, n, atol, rtol);
    }
}

// The name of a float-valued check, prefixed "bf16 " in the bf16 instance (fp32 outputs computed
// from bf16 inputs are recorded apart).
template <class T> static std::string tag(const char *what) {
    return kBf16<T> ? fmt("bf16 %s", what) : std::string(what);
}

// ---- the kernels against the CPU backend -------------------------------------------------------
// Tolerances: fp32 |got - ref| <= atol + |ref| rtol. Elementwise kernels computing the same
// formula in the same order are exact; those using libm where the CPU backend uses its own
// vectorised expf/tanhf (kernels/vmath.h, a few ulp) get rtol 1e-5; row reductions summed in a
// different order (warp lanes, then a butterfly) get rtol 1e-5 and an atol that scales with the
// magnitude of the terms.

static void test_residual() {
    for (size_t N : {1, 3, 4, 1000, 4099, 70001})
        for (int off : {0, 1}) {
            std::vector<float> a = randv(N, -3, 3), b = randv(N, -3, 3), ref(N);
            cpu()->residual_forward(ref.data(), a.data(), b.data(), N);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("N=%zu offset=%d %s", N, off, s.name);
                use_schedule(s);
                float *da = dev_copy(a, off), *db = dev_copy(b, off),
                      *dout = dev_alloc<float>(N, off);
                cuda_residual_forward(dout, da, db, N, 0);
                expect_close("residual_forward out", dout, ref.data(), N, 0, 0);
                expect_clean();
                dev_free_all();
            }
        }
}

static void test_gelu() {
    for (size_t N : {1, 7, 1027, 5003})
        for (int off : {0, 1}) {
            std::vector<float> x = randv(N, -6, 6), d = randv(N, -1, 1), out(N), dinp(N);
            cpu()->gelu_forward(out.data(), x.data(), N);
            cpu()->gelu_backward(dinp.data(), x.data(), d.data(), N);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("N=%zu offset=%d %s", N, off, s.name);
                use_schedule(s);
                float *dx = dev_copy(x, off), *dd = dev_copy(d, off);
                float *dout = dev_alloc<float>(N, off), *ddinp = dev_alloc<float>(N, off);
                cuda_gelu_forward(dout, dx, N, 0);
                cuda_gelu_backward(ddinp, dx, dd, N, 0);
                expect_close("gelu_forward out", dout, out.data(), N, 1e-6, 1e-5);
                // near saturation 1 - tanh^2 cancels: the few-ulp difference between libm's
                // tanhf and kernels/vmath.h's lc_tanhf shows as up to ~1e-6 absolute
                expect_close("gelu_backward dinp", ddinp, dinp.data(), N, 5e-6, 1e-5);
                expect_clean();
                dev_free_all();
            }
        }
}

static void test_swiglu() {
    struct {
        int N, F;
    } shapes[] = {{1, 1}, {3, 5}, {7, 12}, {5, 300}, {2, 1028}};
    for (auto sh : shapes)
        for (int off : {0, 1}) {
            size_t NF = (size_t)sh.N * sh.F;
            std::vector<float> x = randv(2 * NF, -5, 5), d = randv(NF, -1, 1), out(NF),
                               dinp(2 * NF);
            cpu()->swiglu_forward(out.data(), x.data(), sh.N, sh.F);
            cpu()->swiglu_backward(dinp.data(), x.data(), d.data(), sh.N, sh.F);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("N=%d F=%d offset=%d %s", sh.N, sh.F, off, s.name);
                use_schedule(s);
                float *dx = dev_copy(x, off), *dd = dev_copy(d, off);
                float *dout = dev_alloc<float>(NF, off), *ddinp = dev_alloc<float>(2 * NF, off);
                cuda_swiglu_forward(dout, dx, sh.N, sh.F, 0);
                cuda_swiglu_backward(ddinp, dx, dd, sh.N, sh.F, 0);
                expect_close("swiglu_forward out", dout, out.data(), NF, 1e-6, 1e-5);
                expect_close("swiglu_backward dinp", ddinp, dinp.data(), 2 * NF, 1e-6, 1e-5);
                expect_clean();
                dev_free_all();
            }
        }
}

// Row shapes for the norms: one row, C below a warp, C not a multiple of 4, several strided
// iterations per lane, rows not filling a block, several chunks of the parameter reduction.
struct RowShape {
    int N, C;
};
static const RowShape kRowShapes[] = {{1, 1},    {1, 7},    {3, 32},  {9, 100},
                                      {17, 768}, {5, 1030}, {70, 64}, {200, 36}};

// T: float or bf16 for out, inp, weight, bias, dout and the accumulated dinp (read as T, the sum
// rounded once); mean, rstd, dweight, dbias fp32.
template <class T> static void test_layernorm() {
    for (RowShape sh : kRowShapes)
        for (int off : {0, 1}) {
            int N = sh.N, C = sh.C;
            size_t NC = (size_t)N * C;
            std::vector<float> x = randv(NC, -2, 2), w = act_in<T>(randv(C, 0.5f, 1.5f)),
                               b = act_in<T>(randv(C, -0.5f, 0.5f)),
                               dout = act_in<T>(randv(NC, -1, 1));
            for (int n = 0; n < N; n++)
                for (int c = 0; c < C; c++) x[(size_t)n * C + c] += 0.25f * (float)(n % 5);
            x = act_in<T>(x);
            std::vector<float> out(NC), mean(N), rstd(N);
            cpu()->layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(),
                                     b.data(), N, C);
            std::vector<float> dinp0 = act_in<T>(randv(NC, -1, 1)), dw0 = randv(C, -1, 1),
                               db0 = randv(C, -1, 1);
            std::vector<float> dinp = dinp0, dw = dw0, db = db0;
            cpu()->layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), x.data(),
                                      w.data(), mean.data(), rstd.data(), N, C);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("%s N=%d C=%d offset=%d %s", tname<T>(), N, C, off, s.name);
                use_schedule(s);
                T *dx = dev_act<T>(x, off), *dwt = dev_act<T>(w, off), *dbs = dev_act<T>(b, off);
                T *dout_ = dev_alloc<T>(NC, off);
                float *dmean = dev_alloc<float>(N), *drstd = dev_alloc<float>(N);
                cuda_layernorm_forward(dout_, dmean, drstd, dx, dwt, dbs, N, C, 0);
                expect_act("layernorm_forward out", dout_, out.data(), NC, 1e-5, 1e-5);
                expect_close(tag<T>("layernorm_forward mean").c_str(), dmean, mean.data(), N, 1e-6,
                             1e-5);
                expect_close(tag<T>("layernorm_forward rstd").c_str(), drstd, rstd.data(), N, 0,
                             1e-5);
                // the backward from the CPU's statistics, so it is compared on its own
                T *gdout = dev_act<T>(dout, off), *gdinp = dev_act<T>(dinp0, off);
                float *gmean = dev_copy(mean), *grstd = dev_copy(rstd);
                float *gdw = dev_copy(dw0), *gdb = dev_copy(db0);
                float *scratch = dev_alloc<float>(cuda_norm_backward_scratch(N, C));
                cuda_layernorm_backward(gdinp, gdw, gdb, gdout, dx, dwt, gmean, grstd, scratch, N,
                                        C, 0);
                expect_act("layernorm_backward dinp", gdinp, dinp.data(), NC, 1e-5, 1e-5);
                expect_close(tag<T>("layernorm_backward dweight").c_str(), gdw, dw.data(), C,
                             1e-5 * N, 1e-5);
                expect_close(tag<T>("layernorm_backward dbias").c_str(), gdb, db.data(), C,
                             1e-5 * N, 1e-5);
                expect_clean();
                dev_free_all();
            }
        }
}

// Types as test_layernorm's.
template <class T> static void test_rmsnorm() {
    for (RowShape sh : kRowShapes)
        for (int off : {0, 1}) {
            int N = sh.N, C = sh.C;
            float eps = off ? 1e-6f : 1e-5f;
            size_t NC = (size_t)N * C;
            std::vector<float> x = act_in<T>(randv(NC, -2, 2)), w = act_in<T>(randv(C, 0.5f, 1.5f)),
                               dout = act_in<T>(randv(NC, -1, 1)), out(NC), rstd(N);
            cpu()->rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
            std::vector<float> dinp0 = act_in<T>(randv(NC, -1, 1)), dw0 = randv(C, -1, 1);
            std::vector<float> dinp = dinp0, dw = dw0;
            cpu()->rmsnorm_backward(dinp.data(), dw.data(), dout.data(), x.data(), w.data(),
                                    rstd.data(), N, C);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("%s N=%d C=%d offset=%d %s", tname<T>(), N, C, off, s.name);
                use_schedule(s);
                T *dx = dev_act<T>(x, off), *dwt = dev_act<T>(w, off);
                T *dout_ = dev_alloc<T>(NC, off);
                float *drstd = dev_alloc<float>(N);
                cuda_rmsnorm_forward(dout_, drstd, dx, dwt, N, C, eps, 0);
                expect_act("rmsnorm_forward out", dout_, out.data(), NC, 1e-5, 1e-5);
                expect_close(tag<T>("rmsnorm_forward rstd").c_str(), drstd, rstd.data(), N, 0,
                             1e-5);
                T *gdout = dev_act<T>(dout, off), *gdinp = dev_act<T>(dinp0, off);
                float *grstd = dev_copy(rstd), *gdw = dev_copy(dw0);
                float *scratch = dev_alloc<float>(cuda_norm_backward_scratch(N, C) / 2);
                cuda_rmsnorm_backward(gdinp, gdw, gdout, dx, dwt, grstd, scratch, N, C, 0);
                expect_act("rmsnorm_backward dinp", gdinp, dinp.data(), NC, 1e-5, 1e-5);
                expect_close(tag<T>("rmsnorm_backward dweight").c_str(), gdw, dw.data(), C,
                             1e-5 * N, 1e-5);
                expect_clean();
                dev_free_all();
            }
        }
}

// qkv of E (the element type; T is the sequence length here), rotated in fp32 and rounded once.
template <class E> static void test_rope() {
    struct {
        int B, T, NH, NKV, hs;
    } shapes[] = {{1, 1, 1, 1, 2}, {2, 5, 4, 2, 8}, {1, 7, 3, 1, 6}, {2, 33, 4, 4, 64}};
    for (auto sh : shapes) {
        int BT = sh.B * sh.T;
        size_t n = (size_t)BT * (sh.NH + 2 * sh.NKV) * sh.hs;
        std::vector<float> x = act_in<E>(randv(n, -2, 2)), fwd = x, bwd = x;
        std::vector<int> pos((size_t)BT);
        for (int i = 0; i < BT; i++) pos[(size_t)i] = (i * 37) % 2048;
        float theta = 10000.0f;
        cpu()->rope_forward(fwd.data(), pos.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.hs, theta);
        cpu()->rope_backward(bwd.data(), pos.data(), sh.B, sh.T, sh.NH, sh.NKV, sh.hs, theta);
        for (const Schedule &s : kSchedules) {
            if (skip_schedule(s)) continue;
            g_context = fmt("%s B=%d T=%d NH=%d NKV=%d hs=%d %s", tname<E>(), sh.B, sh.T, sh.NH,
                            sh.NKV, sh.hs, s.name);
            use_schedule(s);
            E *d1 = dev_act<E>(x), *d2 = dev_act<E>(x);
            int *dpos = dev_copy(pos);
            cuda_rope_forward(d1, dpos, sh.B, sh.T, sh.NH, sh.NKV, sh.hs, theta, 0);
            cuda_rope_backward(d2, dpos, sh.B, sh.T, sh.NH, sh.NKV, sh.hs, theta, 0);
            expect_act("rope_forward qkv", d1, fwd.data(), n, 1e-6, 1e-5);
            expect_act("rope_backward dqkv", d2, bwd.data(), n, 1e-6, 1e-5);
            expect_clean();
            dev_free_all();
        }
    }
}

// scale (fp32) in the float instance; AdamW in both: param, m, v fp32, and the mirror param_act
// of T (NULL, then given) = the updated param rounded to T, bit for bit.
template <class T> static void test_scale_adamw() {
    for (size_t n : {1, 6, 3001})
        for (int off : {0, 1}) {
            std::vector<float> x = randv(n, -3, 3), xs = x;
            cpu()->scale(xs.data(), 0.37f, n);
            std::vector<float> p = randv(n, -1, 1), g = randv(n, -1, 1), m = randv(n, -0.1f, 0.1f),
                               v = randv(n, 0, 0.01f);
            std::vector<float> rp = p, rm = m, rv = v;
            float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
            float bc1 = 1 - powf(b1, 7), bc2 = 1 - powf(b2, 7);
            cpu()->adamw_update(rp.data(), nullptr, g.data(), rm.data(), rv.data(), n, lr, b1, b2,
                                eps, wd, bc1, bc2);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("%s n=%zu offset=%d %s", tname<T>(), n, off, s.name);
                use_schedule(s);
                if (!kBf16<T>) {
                    float *dx = dev_copy(x, off);
                    cuda_scale(dx, 0.37f, n, 0);
                    expect_close("scale x", dx, xs.data(), n, 0, 0);
                }
                for (bool mirror : {false, true}) {
                    float *dp = dev_copy(p, off), *dg = dev_copy(g, off), *dm = dev_copy(m, off),
                          *dv = dev_copy(v, off);
                    T *dpa = mirror ? dev_alloc<T>(n, off) : nullptr;
                    cuda_adamw_update(dp, dpa, dg, dm, dv, n, lr, b1, b2, eps, wd, bc1, bc2, 0);
                    expect_close("adamw_update param", dp, rp.data(), n, 1e-7, 1e-6);
                    expect_close("adamw_update m", dm, rm.data(), n, 1e-8, 1e-6);
                    expect_close("adamw_update v", dv, rv.data(), n, 1e-9, 1e-6);
                    if (!mirror) continue;
                    std::vector<float> pa = host_act(dpa, n),
                                       want = act_in<T>(std::vector<float>(dp, dp + n));
                    CHECK(memcmp(pa.data(), want.data(), n * sizeof(float)) == 0,
                          "adamw_update param_act is not the updated param rounded to %s",
                          tname<T>());
                    expect_act("adamw_update param_act", dpa, rp.data(), n, 1e-7, 1e-6);
                }
                expect_clean();
                dev_free_all();
            }
        }
}

static void test_sum_squares() {
    // 0 elements, fewer than a block, a partial block, several blocks, the block cap (grid-stride)
    for (size_t n : {0, 1, 5, 1000, 300001, 1100003})
        for (int off : {0, 1}) {
            if (n > 1000000 && off) continue; // 131072 threads a run: once is enough
            if (n > 100000 && kSanitized) continue;
            std::vector<float> x = randv(n, -2, 2);
            double ref = cpu()->sum_squares(x.data(), n);
            double first = 0;
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("n=%zu offset=%d %s", n, off, s.name);
                use_schedule(s);
                float *dx = dev_copy(x, off);
                double *out = dev_alloc<double>(1), *scratch = dev_alloc<double>(LC_SSQ_BLOCKS);
                cuda_sum_squares(out, scratch, dx, n, 0);
                expect_close("sum_squares", out, &ref, 1, 0, 1e-12);
                // fixed-order reductions: the same bits under every schedule
                if (&s == &kSchedules[0])
                    first = *out; // forward: never skipped
                else
                    CHECK(*out == first,
                          "sum_squares %.17g differs from the first schedule's %.17g", *out, first);
                expect_clean();
                dev_free_all();
            }
        }
}

// The embedding: one row, C below and not a multiple of 4, C not a multiple of 32, pos given and
// NULL, wpe NULL, tokens repeated (rows adding into one gradient row), misaligned tables. The
// backward adds in the CPU's order per channel: the same bits, under every schedule.
// E (the element type): the tables, out and dout (bf16: out rounded once; the fp32 gradients from
// the bf16 dout are still the CPU's bits).
template <class E> static void test_encoder() {
    struct {
        int B, T, C, Vp, maxT;
    } shapes[] = {{1, 1, 1, 3, 1},   {1, 1, 7, 5, 2},   {2, 5, 12, 4, 9},
                  {3, 7, 37, 3, 11}, {2, 9, 100, 6, 9}, {4, 33, 68, 50, 40}};
    for (auto sh : shapes)
        for (int variant = 0; variant < 3; variant++) // 0: pos given, 1: pos NULL, 2: wpe NULL
            for (int off : {0, 1}) {
                int B = sh.B, T = sh.T, C = sh.C, N = B * T;
                size_t NC = (size_t)N * C;
                std::vector<int> tok((size_t)N), pos((size_t)N);
                for (int n = 0; n < N; n++) {
                    tok[(size_t)n] = (n * 7 + 3) % sh.Vp; // every token several times
                    pos[(size_t)n] = (n * 5 + 1) % sh.maxT;
                }
                const int *ppos = variant == 0 ? pos.data() : nullptr;
                bool with_wpe = variant != 2;
                std::vector<float> wte = act_in<E>(randv((size_t)sh.Vp * C, -1, 1)),
                                   wpe = act_in<E>(randv((size_t)sh.maxT * C, -1, 1)),
                                   dout = act_in<E>(randv(NC, -1, 1)), out(NC);
                std::vector<float> dwte0 = randv(wte.size(), -1, 1),
                                   dwpe0 = randv(wpe.size(), -1, 1);
                std::vector<float> dwte = dwte0, dwpe = dwpe0;
                cpu()->encoder_forward(out.data(), tok.data(), ppos, wte.data(),
                                       with_wpe ? wpe.data() : nullptr, B, T, C);
                cpu()->encoder_backward(dwte.data(), with_wpe ? dwpe.data() : nullptr, dout.data(),
                                        tok.data(), ppos, B, T, C);
                std::vector<float> first_te, first_pe;
                for (const Schedule &s : kSchedules) {
                    if (skip_schedule(s)) continue;
                    g_context = fmt("%s B=%d T=%d C=%d variant=%d offset=%d %s", tname<E>(), B, T,
                                    C, variant, off, s.name);
                    use_schedule(s);
                    int *dtok = dev_copy(tok), *dpos = ppos ? dev_copy(pos) : nullptr;
                    E *gwte = dev_act<E>(wte, off),
                      *gwpe = with_wpe ? dev_act<E>(wpe, off) : nullptr;
                    E *gout = dev_alloc<E>(NC, off);
                    cuda_encoder_forward(gout, dtok, dpos, gwte, gwpe, B, T, C, 0);
                    expect_act("encoder_forward out", gout, out.data(), NC, 0, 0);
                    E *gdout = dev_act<E>(dout, off);
                    float *gdwte = dev_copy(dwte0, off);
                    float *gdwpe = with_wpe ? dev_copy(dwpe0, off) : nullptr;
                    cuda_encoder_backward(gdwte, gdwpe, gdout, dtok, dpos, B, T, C, 0);
                    expect_close(tag<E>("encoder_backward dwte").c_str(), gdwte, dwte.data(),
                                 dwte.size(), 0, 0);
                    if (with_wpe)
                        expect_close(tag<E>("encoder_backward dwpe").c_str(), gdwpe, dwpe.data(),
                                     dwpe.size(), 0, 0);
                    std::vector<float> te(gdwte, gdwte + dwte.size()),
                        pe = with_wpe ? std::vector<float>(gdwpe, gdwpe + dwpe.size())
                                      : std::vector<float>();
                    if (&s == &kSchedules[0]) {
                        first_te = te;
                        first_pe = pe;
                    } else {
                        CHECK(memcmp(te.data(), first_te.data(), te.size() * sizeof(float)) == 0,
                              "encoder_backward dwte differs from the first schedule's bits");
                        CHECK(pe.size() == first_pe.size() &&
                                  (pe.empty() || memcmp(pe.data(), first_pe.data(),
                                                        pe.size() * sizeof(float)) == 0),
                              "encoder_backward dwpe differs from the first schedule's bits");
                    }
                    expect_clean();
                    dev_free_all();
                }
            }
}

// Frozen parameters (NULL parameter gradients, kernels.h's contract): layernorm_backward with
// dweight, dbias or both NULL, rmsnorm_backward with dweight NULL, encoder_backward with dwte or
// both tables NULL. dinp (accumulated) and every gradient still given match the CPU backend's
// call with all of them, as in test_layernorm/test_rmsnorm/test_encoder; when every parameter
// gradient is NULL the reduction's scratch is never written (its work is skipped).
// T: float or bf16 as there.
template <class T> static void test_frozen() {
    // its own inputs: the other tests' random inputs stay those they had before this one existed
    unsigned long long saved_rng = g_rng;
    g_rng = kBf16<T> ? 0x2545F4914F6CDD1Dull : 0x9E3779B97F4A7C15ull;
    static const RowShape shapes[] = {{1, 7}, {9, 100}, {70, 64}, {5, 1030}};
    for (RowShape sh : shapes)
        for (int off : {0, 1}) {
            int N = sh.N, C = sh.C;
            size_t NC = (size_t)N * C;
            std::vector<float> x = act_in<T>(randv(NC, -2, 2)), w = act_in<T>(randv(C, 0.5f, 1.5f)),
                               b = act_in<T>(randv(C, -0.5f, 0.5f)),
                               dout = act_in<T>(randv(NC, -1, 1)), out(NC), mean(N), rstd(N),
                               rrstd(N);
            cpu()->layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(),
                                     b.data(), N, C);
            cpu()->rmsnorm_forward(out.data(), rrstd.data(), x.data(), w.data(), N, C, 1e-5f);
            std::vector<float> dinp0 = act_in<T>(randv(NC, -1, 1)), dw0 = randv(C, -1, 1),
                               db0 = randv(C, -1, 1);
            std::vector<float> ln_dinp = dinp0, ln_dw = dw0, ln_db = db0, rms_dinp = dinp0;
            cpu()->layernorm_backward(ln_dinp.data(), ln_dw.data(), ln_db.data(), dout.data(),
                                      x.data(), w.data(), mean.data(), rstd.data(), N, C);
            cpu()->rmsnorm_backward(rms_dinp.data(), nullptr, dout.data(), x.data(), w.data(),
                                    rrstd.data(), N, C);
            size_t ns = cuda_norm_backward_scratch(N, C);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                use_schedule(s);
                for (int v = 0; v < 3; v++) { // 0: dweight NULL, 1: dbias NULL, 2: both
                    g_context = fmt("%s N=%d C=%d offset=%d layernorm variant=%d %s", tname<T>(), N,
                                    C, off, v, s.name);
                    T *dx = dev_act<T>(x, off), *dwt = dev_act<T>(w, off);
                    T *gdout = dev_act<T>(dout, off), *gdinp = dev_act<T>(dinp0, off);
                    float *gmean = dev_copy(mean), *grstd = dev_copy(rstd);
                    float *gdw = v == 1 ? dev_copy(dw0) : nullptr;
                    float *gdb = v == 0 ? dev_copy(db0) : nullptr;
                    float *scratch = dev_alloc<float>(ns);
                    cuda_layernorm_backward(gdinp, gdw, gdb, gdout, dx, dwt, gmean, grstd, scratch,
                                            N, C, 0);
                    expect_act("frozen layernorm_backward dinp", gdinp, ln_dinp.data(), NC, 1e-5,
                               1e-5);
                    if (gdw)
                        expect_close(tag<T>("frozen layernorm_backward dweight").c_str(), gdw,
                                     ln_dw.data(), C, 1e-5 * N, 1e-5);
                    if (gdb)
                        expect_close(tag<T>("frozen layernorm_backward dbias").c_str(), gdb,
                                     ln_db.data(), C, 1e-5 * N, 1e-5);
                    if (v == 2) {
                        const unsigned char *sb = reinterpret_cast<unsigned char *>(scratch);
                        size_t written = 0;
                        for (size_t i = 0; i < ns * sizeof(float); i++) written += sb[i] != kCanary;
                        CHECK(written == 0,
                              "layernorm_backward wrote %zu scratch bytes with "
                              "dweight and dbias NULL",
                              written);
                    }
                    expect_clean();
                    dev_free_all();
                }
                g_context = fmt("%s N=%d C=%d offset=%d rmsnorm %s", tname<T>(), N, C, off, s.name);
                T *dx = dev_act<T>(x, off), *dwt = dev_act<T>(w, off);
                T *gdout = dev_act<T>(dout, off), *gdinp = dev_act<T>(dinp0, off);
                float *grstd = dev_copy(rrstd), *scratch = dev_alloc<float>(ns / 2);
                cuda_rmsnorm_backward(gdinp, nullptr, gdout, dx, dwt, grstd, scratch, N, C, 0);
                expect_act("frozen rmsnorm_backward dinp", gdinp, rms_dinp.data(), NC, 1e-5, 1e-5);
                const unsigned char *sb = reinterpret_cast<unsigned char *>(scratch);
                size_t written = 0;
                for (size_t i = 0; i < ns / 2 * sizeof(float); i++) written += sb[i] != kCanary;
                CHECK(written == 0, "rmsnorm_backward wrote %zu scratch bytes with dweight NULL",
                      written);
                expect_clean();
                dev_free_all();
            }
        }
    // encoder: dwte NULL (a frozen token table) with dwpe given, then both NULL
    struct {
        int B, Tl, C, Vp, maxT;
    } eshapes[] = {{1, 1, 7, 5, 2}, {3, 7, 37, 3, 11}, {4, 33, 68, 50, 40}};
    for (auto sh : eshapes)
        for (int off : {0, 1}) {
            int B = sh.B, Tl = sh.Tl, C = sh.C, N = B * Tl;
            std::vector<int> tok((size_t)N), pos((size_t)N);
            for (int n = 0; n < N; n++) {
                tok[(size_t)n] = (n * 7 + 3) % sh.Vp;
                pos[(size_t)n] = (n * 5 + 1) % sh.maxT;
            }
            std::vector<float> dout = act_in<T>(randv((size_t)N * C, -1, 1));
            std::vector<float> dwpe0 = randv((size_t)sh.maxT * C, -1, 1), dwpe = dwpe0;
            cpu()->encoder_backward(nullptr, dwpe.data(), dout.data(), tok.data(), pos.data(), B,
                                    Tl, C);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                use_schedule(s);
                g_context = fmt("%s B=%d T=%d C=%d offset=%d encoder %s", tname<T>(), B, Tl, C, off,
                                s.name);
                int *dtok = dev_copy(tok), *dpos = dev_copy(pos);
                T *gdout = dev_act<T>(dout, off);
                float *gdwpe = dev_copy(dwpe0, off);
                cuda_encoder_backward((float *)nullptr, gdwpe, gdout, dtok, dpos, B, Tl, C, 0);
                expect_close(tag<T>("frozen encoder_backward dwpe").c_str(), gdwpe, dwpe.data(),
                             dwpe.size(), 0, 0);
                cuda_encoder_backward((float *)nullptr, (float *)nullptr, gdout, dtok, dpos, B, Tl,
                                      C, 0);
                expect_close(tag<T>("frozen encoder_backward dwpe").c_str(), gdwpe, dwpe.data(),
                             dwpe.size(), 0, 0);
                expect_clean();
                dev_free_all();
            }
        }
    g_rng = saved_rng;
}

// The cache and one decoding step: NH 4 with NKV 1, 2, 4 (GQA groups 4, 2, 1), hs 6 and 8, and
// hs 40, 160 (several lanes' strides; more channels than a block), maxT 9 with a write running
// past it (dropped), start given and NULL, a row attending to position 0 only.
// E (the element type): qkv, the caches and out (the write a copy, exact in both; the decode's out
// rounded once).
template <class E> static void test_kvcache_decode() {
    struct {
        int B, T, maxT, NH, NKV, hs;
    } shapes[] = {{1, 1, 9, 4, 1, 6}, {2, 3, 9, 4, 2, 8},  {3, 5, 9, 4, 4, 6},
                  {2, 4, 9, 4, 1, 8}, {2, 7, 9, 4, 2, 40}, {1, 2, 300, 2, 1, 160}};
    for (auto sh : shapes)
        for (int with_start : {1, 0}) {
            int B = sh.B, T = sh.T, maxT = sh.maxT, NH = sh.NH, NKV = sh.NKV, hs = sh.hs;
            int row = (NH + 2 * NKV) * hs, KV = NKV * hs;
            size_t cache = (size_t)B * maxT * KV;
            std::vector<int> start((size_t)B), pos((size_t)B);
            for (int b = 0; b < B; b++) {
                start[(size_t)b] = (b * 4) % maxT; // b 2 of maxT 9 runs past the end with T 5
                pos[(size_t)b] = b == 0 ? 0 : (b * 5 + 3) % maxT;
            }
            if (maxT > 100) pos[0] = maxT - 1;
            std::vector<float> qkv = act_in<E>(randv((size_t)B * T * row, -2, 2)),
                               kc0 = act_in<E>(randv(cache, -2, 2)),
                               vc0 = act_in<E>(randv(cache, -2, 2));
            std::vector<float> kc = kc0, vc = vc0;
            const int *pstart = with_start ? start.data() : nullptr;
            cpu()->kvcache_write(kc.data(), vc.data(), qkv.data(), pstart, B, T, maxT, NH, NKV, hs);
            // the decode reads the first token of each row as its query: a (B,row) matrix
            std::vector<float> q = act_in<E>(randv((size_t)B * row, -2, 2)),
                               out((size_t)B * NH * hs);
            cpu()->attention_decode(out.data(), q.data(), kc.data(), vc.data(), pos.data(), B, maxT,
                                    NH, NKV, hs);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("%s B=%d T=%d maxT=%d NH=%d NKV=%d hs=%d start=%d %s", tname<E>(),
                                B, T, maxT, NH, NKV, hs, with_start, s.name);
                use_schedule(s);
                E *gqkv = dev_act<E>(qkv), *gk = dev_act<E>(kc0), *gv = dev_act<E>(vc0);
                int *gstart = pstart ? dev_copy(start) : nullptr, *gpos = dev_copy(pos);
                cuda_kvcache_write(gk, gv, gqkv, gstart, B, T, maxT, NH, NKV, hs, 0);
                expect_close(tag<E>("kvcache_write kcache").c_str(), host_act(gk, cache).data(),
                             kc.data(), cache, 0, 0);
                expect_close(tag<E>("kvcache_write vcache").c_str(), host_act(gv, cache).data(),
                             vc.data(), cache, 0, 0);
                E *gq = dev_act<E>(q), *gout = dev_alloc<E>(out.size());
                CHECK(cuda_attention_decode(gout, gq, gk, gv, gpos, B, maxT, NH, NKV, hs, 0),
                      "attention_decode refused maxT %d", maxT);
                expect_act("attention_decode out", gout, out.data(), out.size(), 1e-6, 1e-5);
                expect_clean();
                dev_free_all();
            }
        }
}

// The logsumexp (B,NH,T) of every query row's visible scores q.k/sqrt(hs), in double from qkv
// (B,T,(NH+2NKV)hs) and seg (B,T) or NULL: the reference for the flash forward's saved state.
static std::vector<double> attention_lse_ref(const std::vector<float> &qkv, const int *seg, int B,
                                             int T, int NH, int NKV, int hs) {
    size_t row = (size_t)(NH + 2 * NKV) * hs;
    std::vector<double> lse((size_t)B * NH * T), sc(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = &qkv[((size_t)b * T + t) * row + (size_t)h * hs];
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    sc[s] = -INFINITY;
                    if (seg && seg[(size_t)b * T + s] != seg[(size_t)b * T + t]) continue;
                    const float *k =
                        &qkv[((size_t)b * T + s) * row + (size_t)(NH + h / (NH / NKV)) * hs];
                    double d = 0;
                    for (int i = 0; i < hs; i++) d += (double)q[i] * k[i];
                    sc[s] = d / sqrt((double)hs);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s <= t; s++) sum += exp(sc[s] - mx);
                lse[((size_t)b * NH + h) * T + t] = mx + log(sum);
            }
    return lse;
}

// The CPU's dqkv (B,T,QKV) as it would be had its backward used D = rowsum(dout * out_used)
// instead of the exact rowsum(P * dP) = rowsum(dout * out): dS = P (dP - D) / sqrt(hs) is linear
// in D, so D + dD changes dQ_t by -dD_t/sqrt(hs) sum_s P_ts k_s and dK_s by -1/sqrt(hs) sum over
// the group's heads and t of P_ts dD_t q_t; dV not at all. P (B,NH,T,T): the CPU's state (0 where
// masked); out, out_used, dout (B,T,NH*hs). In double.
static std::vector<float>
attention_dqkv_for_out(const std::vector<float> &dqkv, const std::vector<float> &P,
                       const std::vector<float> &qkv, const std::vector<float> &dout,
                       const std::vector<float> &out, const std::vector<float> &out_used, int B,
                       int T, int NH, int NKV, int hs) {
    size_t row = (size_t)(NH + 2 * NKV) * hs, C = (size_t)NH * hs;
    double scale = 1.0 / sqrt((double)hs);
    std::vector<double> d(dqkv.begin(), dqkv.end()), dD(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t kv = (size_t)(NH + h / (NH / NKV)) * hs, qh = (size_t)h * hs;
            for (int t = 0; t < T; t++) {
                size_t o = ((size_t)b * T + t) * C + qh;
                dD[t] = 0;
                for (int i = 0; i < hs; i++)
                    dD[t] += (double)dout[o + i] * ((double)out_used[o + i] - out[o + i]);
            }
            const float *p = &P[((size_t)b * NH + h) * T * T];
            for (int t = 0; t < T; t++)
                for (int s2 = 0; s2 <= t; s2++) {
                    double w = p[(size_t)t * T + s2] * dD[t] * scale;
                    if (w == 0) continue;
                    size_t rt = ((size_t)b * T + t) * row, rs = ((size_t)b * T + s2) * row;
                    for (int i = 0; i < hs; i++) {
                        d[rt + qh + i] -= w * qkv[rs + kv + i]; // dQ_t -= w k_s
                        d[rs + kv + i] -= w * qkv[rt + qh + i]; // dK_s -= w q_t
                    }
                }
        }
    return std::vector<float>(d.begin(), d.end());
}

// Flash-style causal attention, forward and backward: NH 4 with NKV 1, 2, 4 (GQA groups 4, 2,
// 1), hs 6 and 8, T 1, 5, 13, B 2; then hs 160 and 256 (several channels per lane, shared memory
// opted in past 48 KiB), hs 128, T 131 (several key tiles), T 333 with hs 64 and T 1031 (tiles
// not dividing T; shared memory does not grow with T); without segments and with packed rows
// (segment ids changing mid-row at a different place per row, the last tokens a padding
// segment). T 5 with hs 8 reads qkv and dout one float off 16-byte alignment (the scalar loads).
// out and dqkv against the CPU backend, the saved logsumexp against a double reference. Every
// sum has a fixed order and nothing is atomic: out, lse and dqkv are the same bits under every
// schedule. The two largest shapes run under two schedules (forward, random(1)) to keep the
// test's time down. E (the element type): qkv, out, dout, dqkv (bf16: inputs rounded, out and dqkv
// rounded once; the backward's D = rowsum(dout * out) reads the kernel's bf16 out, so its
// reference is the CPU's dqkv corrected for that D, attention_dqkv_for_out). lse fp32.
template <class E> static void test_attention() {
    struct {
        int B, T, NH, NKV, hs;
    } shapes[] = {{2, 1, 4, 1, 6},    {2, 5, 4, 1, 6},   {2, 13, 4, 1, 6},   {2, 1, 4, 2, 6},
                  {2, 5, 4, 2, 6},    {2, 13, 4, 2, 6},  {2, 1, 4, 4, 6},    {2, 5, 4, 4, 6},
                  {2, 13, 4, 4, 6},   {2, 1, 4, 1, 8},   {2, 5, 4, 1, 8},    {2, 13, 4, 1, 8},
                  {2, 1, 4, 2, 8},    {2, 5, 4, 2, 8},   {2, 13, 4, 2, 8},   {2, 1, 4, 4, 8},
                  {2, 5, 4, 4, 8},    {2, 13, 4, 4, 8},  {1, 5, 2, 1, 160},  {1, 37, 2, 1, 256},
                  {1, 45, 4, 2, 128}, {1, 131, 2, 1, 8}, {1, 333, 2, 1, 64}, {1, 1031, 2, 1, 8}};
    for (auto sh : shapes)
        for (int with_seg : {0, 1}) {
            int B = sh.B, T = sh.T, NH = sh.NH, NKV = sh.NKV, hs = sh.hs;
            // minutes under ASan (every fiber switch a system call): there, four small shapes
            // (the scalar path at hs 6, GQA groups 4 and 2, one row, a T of 13 past a warp's
            // rows); the Release run covers all of them
            if (kSanitized &&
                !((T == 5 && NKV == 1 && hs == 6) || (T == 5 && NKV == 2 && hs == 8) ||
                  (T == 13 && NKV == 2 && hs == 8) || (T == 1 && NKV == 4 && hs == 8)))
                continue;
            bool large = T >= 300;
            // the CPU backend's sums (sgemm over T keys, in fp32) carry an error growing with T:
            // at T 1031 one dV differs from a double reference by 1.1e-6, the kernel's by 6.5e-7
            double atol = 1e-6 * (1 + T / 256.0);
            size_t off = T == 5 && hs == 8 ? 1 : 0; // misaligned qkv and dout: scalar loads
            size_t row = (size_t)(NH + 2 * NKV) * hs, nqkv = (size_t)B * T * row,
                   nout = (size_t)B * T * NH * hs, nrow = (size_t)B * NH * T;
            std::vector<int> seg((size_t)B * T);
            for (int b = 0; b < B; b++) {
                // segment 0 | segment 1 | padding (7); the long rows cut at several tiles
                int cut = T > 100 ? T / 3 + 17 * b : 1 + 2 * b, pad = T > 100 ? T - 40 : T - 2;
                for (int t = 0; t < T; t++)
                    seg[(size_t)b * T + t] = t >= pad && t > cut ? 7 : t < cut ? 0 : 1;
            }
            const int *pseg = with_seg ? seg.data() : nullptr;
            std::vector<float> qkv = act_in<E>(randv(nqkv, -1, 1)),
                               dout = act_in<E>(randv(nout, -1, 1));
            size_t nstate = cpu()->attention_state_floats(B, T, NH),
                   nscratch = cpu()->attention_scratch_floats(B, T, NH);
            std::vector<float> out(nout), state(nstate), dqkv(nqkv), scratch(nscratch);
            cpu()->attention_forward(out.data(), state.data(), qkv.data(), pseg, B, T, NH, NKV, hs);
            cpu()->attention_backward(dqkv.data(), scratch.data(), dout.data(), out.data(),
                                      qkv.data(), state.data(), pseg, B, T, NH, NKV, hs);
            std::vector<double> lse_d = attention_lse_ref(qkv, pseg, B, T, NH, NKV, hs);
            std::vector<float> lse(lse_d.begin(), lse_d.end());
            CHECK(cuda_attention_state_floats(B, T, NH) == nrow &&
                      cuda_attention_scratch_floats(B, T, NH) == nrow,
                  "state and scratch are (B,NH,T)");
            std::vector<float> first_out, first_lse, first_dqkv;
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s) || (large && &s != &kSchedules[0] && &s != &kSchedules[2]))
                    continue;
                g_context = fmt("%s B=%d T=%d NH=%d NKV=%d hs=%d seg=%d %s", tname<E>(), B, T, NH,
                                NKV, hs, with_seg, s.name);
                use_schedule(s);
                E *gqkv = dev_act<E>(qkv, off), *gout = dev_alloc<E>(nout);
                float *glse = dev_alloc<float>(nrow);
                int *gseg = pseg ? dev_copy(seg) : nullptr;
                CHECK(cuda_attention_forward(gout, glse, gqkv, gseg, B, T, NH, NKV, hs, 0),
                      "attention_forward refused hs %d", hs);
                expect_act("attention_forward out", gout, out.data(), nout, atol, 1e-5);
                expect_close(tag<E>("attention_forward lse").c_str(), glse, lse.data(), nrow, 1e-6,
                             1e-6);
                E *gdout = dev_act<E>(dout, off), *gdqkv = dev_alloc<E>(nqkv);
                float *gd = dev_alloc<float>(nrow);
                CHECK(cuda_attention_backward(gdqkv, gd, gdout, gout, gqkv, glse, gseg, B, T, NH,
                                              NKV, hs, 0),
                      "attention_backward refused hs %d", hs);
                std::vector<float> dqkv_ref =
                    kBf16<E> ? attention_dqkv_for_out(dqkv, state, qkv, dout, out,
                                                      host_act(gout, nout), B, T, NH, NKV, hs)
                             : dqkv;
                expect_act("attention_backward dqkv", gdqkv, dqkv_ref.data(), nqkv, atol, 1e-5);
                std::vector<float> o = host_act(gout, nout), l(glse, glse + nrow),
                                   d = host_act(gdqkv, nqkv);
                if (first_out.empty()) {
                    first_out = o;
                    first_lse = l;
                    first_dqkv = d;
                } else {
                    CHECK(memcmp(o.data(), first_out.data(), nout * sizeof(float)) == 0 &&
                              memcmp(l.data(), first_lse.data(), nrow * sizeof(float)) == 0,
                          "attention_forward differs from the first schedule's bits");
                    CHECK(memcmp(d.data(), first_dqkv.data(), nqkv * sizeof(float)) == 0,
                          "attention_backward dqkv differs from the first schedule's bits");
                }
                expect_clean();
                dev_free_all();
            }
        }
    // A head size past LC_ATT_MAX_HS is refused, nothing launched.
    g_context = "hs 257";
    cuemu_reset();
    CHECK(!cuda_attention_forward<E>(nullptr, nullptr, nullptr, nullptr, 1, 4, 1, 1, 257, 0),
          "attention_forward took hs 257");
    CHECK(!cuda_attention_backward<E>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                      1, 4, 1, 1, 257, 0),
          "attention_backward took hs 257");
    expect_clean();
}

// ---- the sampler
// --------------------------------------------------------------------------------- sample_tokens
// (kernels/cuda/sample.cuh) against the CPU backend's entry, and both against an exact (double)
// reading of the rule. The kept set is a prefix of the order logit descending, id ascending, which
// both compute from the logits by comparisons alone, so top-k's set is always the same; what fp32
// rounding can change is a comparison of a mass: whether a prefix of the order reaches top_p, and
// where u * (kept mass) falls among the cumulative kept masses. The GPU sums each mass in fp32
// (per-thread runs of at most chunk = ceil(V/256) terms, then a tree or a scan of at most 64 steps,
// each term's exp and division a few ulp), the CPU in double: both lie within (3 chunk + 64) 2^-24
// of the exact value relative to the row's mass (the classic bound n 2^-24 on a sum of n
// nonnegative terms, for the sum of the row, the kept mass and the prefix up to u). So the choices
// agree whenever no exact cumulative mass lies within that of top_p or of u, and a row is compared
// only then (the few others must still choose a token of the row that can be drawn). Greedy is
// comparisons only: always identical.

// The exact rule on one row: p in double, the kept ids in id order with their cumulative mass
// (over the kept mass), and whether a boundary lies within eps of top_p or of u.
struct SampleExact {
    std::vector<int> kept;
    std::vector<double> cum;
    std::vector<double> p;
    double lse = 0; // log sum exp((z - max) / temp)
    bool near_top_p = false;
};

static SampleExact sample_exact(const float *z, int V, float temp, int top_k, float top_p,
                                double eps) {
    SampleExact e;
    double m = -INFINITY, S = 0;
    for (int v = 0; v < V; v++) m = std::max(m, (double)z[v]);
    e.p.resize(V);
    for (int v = 0; v < V; v++) S += e.p[v] = exp(((double)z[v] - m) / temp);
    for (int v = 0; v < V; v++) e.p[v] /= S;
    e.lse = log(S);
    std::vector<int> order(V);
    for (int v = 0; v < V; v++) order[v] = v;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return z[a] > z[b]; });
    int n = top_k > 0 && top_k < V ? top_k : V;
    if (top_p < 1.0f) {
        double M = 0;
        int jp = V;
        for (int j = 0; j < n; j++) {
            M += e.p[order[j]];
            if (fabs(M - top_p) < eps) e.near_top_p = true;
            if (M >= top_p && jp == V) jp = j + 1;
            if (M > top_p + eps) break;
        }
        n = std::min(n, jp);
    }
    e.kept.assign(order.begin(), order.begin() + n);
    std::sort(e.kept.begin(), e.kept.end());
    double W = 0, acc = 0;
    for (int v : e.kept) W += e.p[v];
    for (int v : e.kept) e.cum.push_back((acc += e.p[v]) / W);
    return e;
}

// The exact token for u, and whether a cumulative mass lies within eps of u.
static int sample_exact_token(const SampleExact &e, double u, double eps, bool *near) {
    *near = e.near_top_p;
    int tok = -1;
    for (size_t i = 0; i < e.kept.size(); i++) {
        if (fabs(e.cum[i] - u) < eps) *near = true;
        if (tok < 0 && e.cum[i] > u) tok = e.kept[i];
    }
    return tok >= 0 ? tok : e.kept.back();
}

static long g_sample_rows, g_sample_near;

// T: the logits (bf16: rounded first, so the CPU and the kernel read the same values; rounding
// adds many equal logits).
template <class T> static void test_sample() {
    struct Shape {
        int B, V, Vp;
        int ties; // logits rounded to multiples of 1/4 (many equal logits)
    } shapes[] = {{1, 1, 64, 0},     {3, 37, 64, 1},     {5, 300, 320, 0},    {2, 257, 320, 1},
                  {12, 100, 128, 1}, {1, 1000, 1024, 0}, {2, 50257, 50304, 0}};
    struct Mode {
        float temp;
        int top_k;
        float top_p;
    } modes[] = {{0.0f, 0, 1.0f}, {0.0f, 5, 0.5f},  {1.0f, 0, 1.0f},  {0.7f, 0, 1.0f},
                 {1.0f, 1, 1.0f}, {1.0f, 10, 1.0f}, {1.3f, 0, 0.9f},  {0.8f, 40, 0.95f},
                 {1.0f, 0, 0.3f}, {1.0f, 3, 0.99f}, {2.0f, 200, 0.6f}};
    for (Shape sh : shapes) {
        int B = sh.B, V = sh.V, Vp = sh.Vp;
        bool big = V > 10000;
        // under ASan a block-wide bisection costs minutes per large row: there, the rows of up
        // to 600 values (V 1, 37, 257: one column, C below a block, a partial last block)
        if (kSanitized && (big || B * V > 600)) continue;
        std::vector<float> z = randv((size_t)B * Vp, -3, 3);
        for (int b = 0; b < B; b++)
            for (int v = 0; v < Vp; v++) {
                float &x = z[(size_t)b * Vp + v];
                if (v >= V)
                    x = 1e30f; // padding: never read, never chosen
                else if (sh.ties)
                    x = roundf(x * 4) / 4;
                else if (big && v % 2500 == 7)
                    x += 10 + uniform(0, 4); // a peaked row
            }
        z = act_in<T>(z);
        double eps = (3.0 * ((V + 255) / 256) + 64) / 16777216.0;
        for (Mode md : modes) {
            if (big && (md.top_k == 1 || md.top_k == 3 || md.temp == 0.7f)) continue; // time
            bool greedy = !(md.temp > 0.0f);
            std::vector<float> u(B);
            std::vector<SampleExact> ex;
            for (int b = 0; b < B; b++) {
                ex.push_back(sample_exact(&z[(size_t)b * Vp], V, greedy ? 1.0f : md.temp, md.top_k,
                                          md.top_p, eps));
                const SampleExact &e = ex.back();
                u[b] = uniform(0, 1);
                if (b % 2) { // u in the middle of one kept token's slice of the CDF
                    size_t i = (size_t)(b / 2) % e.kept.size();
                    u[b] = (float)(((i ? e.cum[i - 1] : 0.0) + e.cum[i]) / 2);
                }
            }
            std::vector<int> ctok(B);
            std::vector<float> clogp(B);
            cpu()->sample_tokens(ctok.data(), clogp.data(), z.data(), greedy ? nullptr : u.data(),
                                 B, V, Vp, md.temp, md.top_k, md.top_p);
            std::vector<int> first_tok;
            std::vector<float> first_logp;
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("%s B=%d V=%d Vp=%d temp %g top_k %d top_p %g %s", tname<T>(), B, V,
                                Vp, md.temp, md.top_k, md.top_p, s.name);
                use_schedule(s);
                T *gz = dev_act<T>(z);
                float *gu = greedy ? nullptr : dev_copy(u), *glogp = dev_alloc<float>(B);
                int *gtok = dev_alloc<int>(B);
                cuda_sample_tokens(gtok, glogp, gz, gu, B, V, Vp, md.temp, md.top_k, md.top_p, 0);
                std::vector<float> want(B);
                for (int b = 0; b < B; b++) {
                    const SampleExact &e = ex[b];
                    bool near = false;
                    int xt = greedy ? ctok[b] : sample_exact_token(e, u[b], eps, &near);
                    if (&s == &kSchedules[0] && !greedy) {
                        g_sample_rows++;
                        g_sample_near += near;
                    }
                    int t = gtok[b];
                    if (!near) {
                        CHECK(t == ctok[b], "row %d u %.9g: token %d, the CPU's %d", b, u[b], t,
                              ctok[b]);
                        CHECK(ctok[b] == xt, "row %d u %.9g: the CPU's token %d, exactly %d", b,
                              u[b], ctok[b], xt);
                    } else {
                        CHECK(t >= 0 && t < V && e.p[t] > 0, "row %d: token %d", b, t);
                    }
                    if (t < 0 || t >= V) t = 0;
                    double temp = greedy ? 1.0 : md.temp, m = -INFINITY;
                    for (int v = 0; v < V; v++) m = std::max(m, (double)z[(size_t)b * Vp + v]);
                    want[b] = t == ctok[b]
                                  ? clogp[b]
                                  : (float)(((double)z[(size_t)b * Vp + t] - m) / temp - e.lse);
                }
                if (greedy) {
                    CHECK(memcmp(gtok, ctok.data(), B * sizeof(int)) == 0,
                          "greedy tokens differ from the CPU's");
                }
                expect_close(tag<T>("sample_tokens logp").c_str(), glogp, want.data(), B, 1e-5,
                             1e-5);
                if (first_tok.empty()) {
                    first_tok.assign(gtok, gtok + B);
                    first_logp.assign(glogp, glogp + B);
                } else {
                    CHECK(memcmp(gtok, first_tok.data(), B * sizeof(int)) == 0 &&
                              memcmp(glogp, first_logp.data(), B * sizeof(float)) == 0,
                          "tokens or log-probs differ from the first schedule's bits");
                }
                expect_clean();
                dev_free_all();
            }
        }
    }
    // the comparison must not be vacuous: nearly every sampled row is far from a boundary
    CHECK(g_sample_near * 10 <= g_sample_rows, "%ld of %ld sampled rows near a boundary",
          g_sample_near, g_sample_rows);
    printf("sample: %ld of %ld sampled rows compared token for token (the rest within rounding of "
           "a boundary)\n",
           g_sample_rows - g_sample_near, g_sample_rows);
}

// ---- bf16 variants ------------------------------------------------------------------------------
// The elementwise kernels' bf16 instances, with their own shapes (the helpers and the rule are
// above, with the kernel tests' element types).

static void test_bf16_elementwise() {
    for (size_t N : {1, 9, 1031, 5000})
        for (int off : {0, 1}) {
            std::vector<float> a = bf16_round(randv(N, -6, 6)), b = bf16_round(randv(N, -3, 3));
            std::vector<float> sum(N), gf(N), gb(N);
            cpu()->residual_forward(sum.data(), a.data(), b.data(), N);
            cpu()->gelu_forward(gf.data(), a.data(), N);
            cpu()->gelu_backward(gb.data(), a.data(), b.data(), N);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("bf16 N=%zu offset=%d %s", N, off, s.name);
                use_schedule(s);
                bf16 *da = dev_copy(to_bf16(a), off), *db = dev_copy(to_bf16(b), off);
                bf16 *o1 = dev_alloc<bf16>(N, off), *o2 = dev_alloc<bf16>(N, off),
                     *o3 = dev_alloc<bf16>(N, off);
                cuda_residual_forward(o1, da, db, N, 0);
                cuda_gelu_forward(o2, da, N, 0);
                cuda_gelu_backward(o3, da, db, N, 0);
                expect_bf16("bf16 residual_forward out", o1, sum, 0);
                expect_bf16("bf16 gelu_forward out", o2, gf, 1e-6);
                expect_bf16("bf16 gelu_backward dinp", o3, gb, 1e-5);
                expect_clean();
                dev_free_all();
            }
        }
}

static void test_bf16_swiglu() {
    struct {
        int N, F;
    } shapes[] = {{1, 1}, {3, 5}, {7, 16}, {5, 300}, {2, 1032}};
    for (auto sh : shapes)
        for (int off : {0, 1}) {
            size_t NF = (size_t)sh.N * sh.F;
            std::vector<float> x = bf16_round(randv(2 * NF, -5, 5)),
                               d = bf16_round(randv(NF, -1, 1)), out(NF), dinp(2 * NF);
            cpu()->swiglu_forward(out.data(), x.data(), sh.N, sh.F);
            cpu()->swiglu_backward(dinp.data(), x.data(), d.data(), sh.N, sh.F);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("bf16 N=%d F=%d offset=%d %s", sh.N, sh.F, off, s.name);
                use_schedule(s);
                bf16 *dx = dev_copy(to_bf16(x), off), *dd = dev_copy(to_bf16(d), off);
                bf16 *o = dev_alloc<bf16>(NF, off), *di = dev_alloc<bf16>(2 * NF, off);
                cuda_swiglu_forward(o, dx, sh.N, sh.F, 0);
                cuda_swiglu_backward(di, dx, dd, sh.N, sh.F, 0);
                expect_bf16("bf16 swiglu_forward out", o, out, 1e-6);
                expect_bf16("bf16 swiglu_backward dinp", di, dinp, 1e-6);
                expect_clean();
                dev_free_all();
            }
        }
}

static void test_bf16_norms() {
    for (RowShape sh : kRowShapes)
        for (int off : {0, 1}) {
            int N = sh.N, C = sh.C;
            size_t NC = (size_t)N * C;
            std::vector<float> x = bf16_round(randv(NC, -2, 2)),
                               w = bf16_round(randv(C, 0.5f, 1.5f)),
                               b = bf16_round(randv(C, -0.5f, 0.5f));
            std::vector<float> ln(NC), mean(N), rstd(N), rms(NC), rrstd(N);
            cpu()->layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), w.data(),
                                     b.data(), N, C);
            cpu()->rmsnorm_forward(rms.data(), rrstd.data(), x.data(), w.data(), N, C, 1e-5f);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("bf16 N=%d C=%d offset=%d %s", N, C, off, s.name);
                use_schedule(s);
                bf16 *dx = dev_copy(to_bf16(x), off), *dw = dev_copy(to_bf16(w), off),
                     *db = dev_copy(to_bf16(b), off);
                bf16 *o1 = dev_alloc<bf16>(NC, off), *o2 = dev_alloc<bf16>(NC, off);
                float *dmean = dev_alloc<float>(N), *drstd = dev_alloc<float>(N),
                      *drrstd = dev_alloc<float>(N);
                cuda_layernorm_forward(o1, dmean, drstd, dx, dw, db, N, C, 0);
                cuda_rmsnorm_forward(o2, drrstd, dx, dw, N, C, 1e-5f, 0);
                expect_bf16("bf16 layernorm_forward out", o1, ln, 1e-5);
                expect_close("bf16 layernorm_forward mean", dmean, mean.data(), N, 1e-6, 1e-5);
                expect_close("bf16 layernorm_forward rstd", drstd, rstd.data(), N, 0, 1e-5);
                expect_bf16("bf16 rmsnorm_forward out", o2, rms, 1e-5);
                expect_close("bf16 rmsnorm_forward rstd", drrstd, rrstd.data(), N, 0, 1e-5);
                expect_clean();
                dev_free_all();
            }
        }
}

// ---- the harness's own semantics ---------------------------------------------------------------

// Every shuffle kind with widths 32, 16 and 8, and the votes; out[op][tid].
static __global__ void shuffle_kernel(int *out, int width) {
    int t = threadIdx.x, lane = t % 32, v = 100 * (t / 32) + lane;
    int *o = out + t;
    int stride = blockDim.x;
    o[0 * stride] = __shfl_sync(0xffffffffu, v, 3, width);
    o[1 * stride] = __shfl_up_sync(0xffffffffu, v, 2, width);
    o[2 * stride] = __shfl_down_sync(0xffffffffu, v, 3, width);
    o[3 * stride] = __shfl_xor_sync(0xffffffffu, v, 5, width);
    o[4 * stride] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
    o[5 * stride] = __any_sync(0xffffffffu, lane == 31 && t / 32 == 1);
    o[6 * stride] = __all_sync(0xffffffffu, lane < 31 || t / 32 == 0);
    // a half-warp mask, only the half named takes part
    if (lane < 16)
        o[7 * stride] = __shfl_xor_sync(0x0000ffffu, v, 1);
    else
        o[7 * stride] = -1;
    __syncwarp();
}

static void test_harness_shuffles() {
    for (int width : {32, 16, 8})
        for (const Schedule &s : kSchedules) {
            g_context = fmt("width=%d %s", width, s.name);
            use_schedule(s);
            const int T = 64;
            int *out = dev_alloc<int>(8 * T);
            LC_LAUNCH(shuffle_kernel, 1, T, 0, 0, out, width);
            for (int t = 0; t < T; t++) {
                int w = t / 32, lane = t % 32, seg = lane & ~(width - 1), base = 100 * w;
                int idx = base + seg + 3 % width;
                int up = lane - 2 >= seg ? base + lane - 2 : base + lane;
                int down = lane + 3 < seg + width ? base + lane + 3 : base + lane;
                int x = lane ^ 5, xo = x < seg + width ? base + x : base + lane;
                unsigned ballot = 0;
                for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
                CHECK(out[0 * T + t] == idx, "shfl t=%d: %d, want %d", t, out[t], idx);
                CHECK(out[1 * T + t] == up, "shfl_up t=%d: %d, want %d", t, out[T + t], up);
                CHECK(out[2 * T + t] == down, "shfl_down t=%d: %d, want %d", t, out[2 * T + t],
                      down);
                CHECK(out[3 * T + t] == xo, "shfl_xor t=%d: %d, want %d", t, out[3 * T + t], xo);
                CHECK((unsigned)out[4 * T + t] == ballot, "ballot t=%d", t);
                CHECK(out[5 * T + t] == (w == 1), "any t=%d", t);
                CHECK(out[6 * T + t] == (w == 0), "all t=%d", t);
                CHECK(out[7 * T + t] == (lane < 16 ? base + (lane ^ 1) : -1), "half-warp t=%d", t);
            }
            expect_clean();
            dev_free_all();
        }
}

// NVIDIA's host path of cuda_bf16.h rounds to nearest even, as the device does.
static void test_harness_bf16() {
    g_context = "bf16";
    CHECK(__bfloat162float(__float2bfloat16(1.00390625f)) == 1.0f, "a tie rounds to even");
    CHECK(__bfloat162float(__float2bfloat16(1.01171875f)) == 1.015625f, "a tie rounds to even");
    CHECK(__bfloat162float(__float2bfloat16(1.0f + 1.0f / 128 + 1.0f / 1024)) == 1.0078125f,
          "rounds to nearest");
}

// ---- seeded bugs the harness must catch --------------------------------------------------------

// Two block sums through one shared buffer; without the barrier between reading the first and
// writing the second, a warp that runs ahead overwrites partials another warp has yet to read.
static __global__ void two_sums_kernel(float *out, const float *x, bool barrier) {
    __shared__ float buf[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    float v = x[threadIdx.x];
    float s = lc_warp_sum(v);
    if (lane == 0) buf[warp] = s;
    __syncthreads();
    float total = 0;
    for (int k = 0; k < nwarps; k++) total += buf[k];
    if (barrier) __syncthreads(); // the barrier the bug leaves out
    float s2 = lc_warp_sum(v * v);
    if (lane == 0) buf[warp] = s2;
    __syncthreads();
    float total2 = 0;
    for (int k = 0; k < nwarps; k++) total2 += buf[k];
    out[2 * threadIdx.x] = total;
    out[2 * threadIdx.x + 1] = total2;
}

static void test_bug_missing_barrier() {
    const int T = 128;
    std::vector<float> x = randv(T, 0.5f, 1.5f);
    int wrong_schedules = 0;
    for (bool barrier : {true, false})
        for (const Schedule &s : kSchedules) {
            g_context = fmt("barrier=%d %s", barrier, s.name);
            use_schedule(s);
            float *dx = dev_copy(x), *out = dev_alloc<float>(2 * T);
            LC_LAUNCH(two_sums_kernel, 1, T, 0, 0, out, dx, barrier);
            // the reference in the kernel's own order (warp butterflies, then warps in order)
            float tot = 0, tot2 = 0;
            for (int w = 0; w < T / 32; w++) {
                float a[32], b[32];
                for (int l = 0; l < 32; l++) a[l] = x[(size_t)(32 * w + l)], b[l] = a[l] * a[l];
                for (int off = 16; off > 0; off >>= 1) {
                    float na[32], nb[32];
                    for (int l = 0; l < 32; l++)
                        na[l] = a[l] + a[l ^ off], nb[l] = b[l] + b[l ^ off];
                    memcpy(a, na, sizeof a);
                    memcpy(b, nb, sizeof b);
                }
                tot += a[0];
                tot2 += b[0];
            }
            int bad = 0;
            for (int t = 0; t < T; t++) bad += out[2 * t] != tot || out[2 * t + 1] != tot2;
            if (barrier)
                CHECK(bad == 0, "the correct kernel gives %d wrong threads", bad);
            else if (bad) {
                wrong_schedules++;
                printf("  missing barrier: %d of %d threads wrong under %s\n", bad, T, s.name);
            }
            expect_clean();
            dev_free_all();
        }
    g_context = "missing barrier";
    CHECK(wrong_schedules >= 1, "the missing barrier changed no result under any schedule");
}

// The classic off-by-one: i <= n.
static __global__ void off_by_one_kernel(float *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;
}

static void test_bug_out_of_bounds() {
    for (const Schedule &s : kSchedules) {
        g_context = s.name;
        use_schedule(s);
        float *out = dev_alloc<float>(100);
        LC_LAUNCH(off_by_one_kernel, 1, 128, 0, 0, out, 100);
        CHECK(!guards_intact(true), "the write past the end went unseen");
        dev_free_all();
    }
}

static __global__ void divergent_barrier_kernel(float *out) {
    if (threadIdx.x < 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

static __global__ void exited_barrier_kernel(float *out) {
    if (threadIdx.x == 5) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

static __global__ void exited_shuffle_kernel(float *out) {
    if (threadIdx.x % 32 >= 16) return;
    float v = __shfl_down_sync(0xffffffffu, (float)threadIdx.x, 1);
    out[threadIdx.x] = v;
}

static __global__ void caller_outside_mask_kernel(float *out) {
    float v = __shfl_xor_sync(0x0000ffffu, (float)threadIdx.x, 1); // lanes 16..31 call it too
    out[threadIdx.x] = v;
}

static __global__ void deadlock_kernel(float *out) {
    if (threadIdx.x < 16)
        out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0); // lanes 16..31 never come
    else
        __syncthreads();
}

static void test_bug_warnings() {
    struct Case {
        const char *what;
        void (*kernel)(float *);
        long warnings, errors; // at least
    } cases[] = {{"divergent __syncthreads", divergent_barrier_kernel, 1, 0},
                 {"__syncthreads with an exited thread", exited_barrier_kernel, 1, 0},
                 {"shuffle mask naming exited lanes", exited_shuffle_kernel, 1, 0},
                 {"caller outside its shuffle mask", caller_outside_mask_kernel, 1, 0},
                 {"deadlock: half a warp at a full-mask shuffle", deadlock_kernel, 0, 1}};
    cuemu_set_verbose(0);
    for (const Case &c : cases)
        for (const Schedule &s : kSchedules) {
            g_context = fmt("%s, %s", c.what, s.name);
            use_schedule(s);
            float *out = dev_alloc<float>(64);
            LC_LAUNCH(c.kernel, 1, 64, 0, 0, out);
            CHECK(cuemu_warnings() >= c.warnings, "%ld warnings", cuemu_warnings());
            CHECK(cuemu_errors() >= c.errors, "%ld errors", cuemu_errors());
            CHECK(c.errors || cuemu_errors() == 0, "%ld errors", cuemu_errors());
            CHECK(guards_intact(), "guards");
            dev_free_all();
        }
    cuemu_set_verbose(1);
    use_schedule(kSchedules[0]);
}

static __global__ void fill_kernel(float *out, float v) {
    out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

static void test_bug_invalid_launch() {
    struct {
        const char *what;
        dim3 grid, block;
        long long smem;
    } cases[] = {{"2048 threads per block", dim3(1), dim3(2048), 0},
                 {"block z of 65", dim3(1), dim3(1, 1, 65), 0},
                 {"empty grid", dim3(0), dim3(32), 0},
                 {"grid y of 65536", dim3(1, 65536), dim3(32), 0},
                 {"300 KiB of dynamic shared memory", dim3(1), dim3(32), 300 * 1024}};
    cuemu_set_verbose(0);
    for (auto &c : cases) {
        g_context = c.what;
        cuemu_reset();
        float *out = dev_alloc<float>(4096);
        for (int i = 0; i < 4096; i++) out[i] = 0;
        LC_LAUNCH(fill_kernel, c.grid, c.block, c.smem, 0, out, 1.0f);
        CHECK(cuemu_errors() == 1, "%ld errors", cuemu_errors());
        CHECK(out[0] == 0.0f, "the invalid launch ran");
        dev_free_all();
    }
    // and an integer grid too large for the x dimension
    g_context = "grid x of 2^31";
    cuemu_reset();
    LC_LAUNCH(fill_kernel, (size_t)1 << 31, 32, 0, 0, (float *)nullptr, 1.0f);
    CHECK(cuemu_errors() == 1, "%ld errors", cuemu_errors());
    cuemu_set_verbose(1);
    cuemu_reset();
}

// Shared memory a block never writes reads as NaN: half of a static buffer, the rest of the
// block's own writes gone at the next block (poisoned again), and dynamic shared memory.
static __global__ void unwritten_smem_kernel(float *out) {
    __shared__ float buf[64];
    LC_DYN_SHARED(float, dyn);
    if (blockIdx.x == 0 || threadIdx.x < 32) buf[threadIdx.x] = 1.0f;
    if (threadIdx.x < 16) dyn[threadIdx.x] = 2.0f;
    __syncthreads();
    out[blockIdx.x * 2 * blockDim.x + threadIdx.x] = buf[threadIdx.x];
    out[blockIdx.x * 2 * blockDim.x + blockDim.x + threadIdx.x] = dyn[threadIdx.x];
}

static void test_bug_unwritten_shared() {
    for (const Schedule &s : kSchedules) {
        g_context = s.name;
        use_schedule(s);
        const int T = 64;
        float *out = dev_alloc<float>(2 * 2 * T);
        LC_LAUNCH(unwritten_smem_kernel, 2, T, T * sizeof(float), 0, out);
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < T; t++) {
                float st = out[b * 2 * T + t], dy = out[b * 2 * T + T + t];
                bool st_written = b == 0 || t < 32;
                CHECK(st_written ? st == 1.0f : std::isnan(st), "static smem b=%d t=%d: %g", b, t,
                      st);
                CHECK(t < 16 ? dy == 2.0f : std::isnan(dy), "dynamic smem b=%d t=%d: %g", b, t, dy);
            }
        expect_clean();
        dev_free_all();
    }
}

// The classifier's row kernels (the cuBLASLt products around them cannot run under the harness):
// the CPU backend's classifier_forward gives the logits (N,Vp) and the references lse, logp,
// entropy; its classifier_backward the reference dlogits. The forward row kernel runs on the
// CPU's logits, the backward row kernel on them with the CPU's lse and entropy. Odd V (not a
// multiple of 4 or 32), Vp = V rounded up to 64, one row, targets -1, rows with dlogp = dent = 0,
// entropy and dent NULL or given. T: the logits and dlogits (bf16: the CPU's logits rounded to
// bf16, then the references recomputed by the CPU backend on those: its classifier with x = the
// rounded logits and wte = the identity, exact products, gives their lse, logp, entropy and
// dlogits; dlogits rounded once by the kernel).
struct ClsShape {
    int N, C, V;
};
template <class T> static void test_classifier() {
    const ClsShape shapes[] = {{1, 5, 37}, {2, 4, 1}, {3, 7, 100}, {9, 3, 257}, {6, 8, 1000}};
    for (ClsShape sh : shapes)
        for (int with_ent : {1, 0}) {
            int N = sh.N, C = sh.C, V = sh.V, Vp = (V + 63) / 64 * 64;
            size_t NV = (size_t)N * Vp;
            float inv_temp = with_ent ? 0.7f : 1.0f;
            std::vector<float> x = randv((size_t)N * C, -1, 1), wte = randv((size_t)Vp * C, -3, 3);
            std::vector<int> tg(N);
            std::vector<float> dlogp(N), dent(N);
            for (int n = 0; n < N; n++) {
                tg[n] = n % 4 == 1 ? -1 : (n * 37 + 5) % V;
                if (n % 3 == 0) tg[n] = V - 1;
                dlogp[n] = n % 5 == 2 ? 0.0f : uniform(-1, 1);
                dent[n] = n % 5 == 2 ? 0.0f : (n % 2 ? uniform(-1, 1) : 0.0f);
            }
            std::vector<float> logits(NV), lse(N), logp(N), ent(N, 0.0f);
            cpu()->classifier_forward(logp.data(), with_ent ? ent.data() : nullptr, lse.data(),
                                      logits.data(), x.data(), wte.data(), tg.data(), N, C, V, Vp,
                                      inv_temp);
            if (kBf16<T>) {
                logits = act_in<T>(logits);
                std::vector<float> eye((size_t)Vp * Vp, 0.0f), z(NV);
                for (int v = 0; v < Vp; v++) eye[(size_t)v * Vp + v] = 1.0f;
                cpu()->classifier_forward(logp.data(), with_ent ? ent.data() : nullptr, lse.data(),
                                          z.data(), logits.data(), eye.data(), tg.data(), N, Vp, V,
                                          Vp, 1.0f);
                CHECK(z == logits, "the identity product changed the logits");
                x = logits; // the backward's product is then by the identity too
                wte = eye;
                C = Vp;
            }
            std::vector<float> dlog = logits, dx((size_t)N * C), dwte((size_t)Vp * C, 0.0f);
            cpu()->classifier_backward(dx.data(), dwte.data(), dlog.data(), x.data(), wte.data(),
                                       lse.data(), with_ent ? ent.data() : nullptr, tg.data(),
                                       dlogp.data(), with_ent ? dent.data() : nullptr, N, C, V, Vp,
                                       inv_temp);
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("%s N=%d C=%d V=%d Vp=%d entropy/dent %s %s", tname<T>(), N, sh.C,
                                V, Vp, with_ent ? "given" : "NULL", s.name);
                use_schedule(s);
                T *glog = dev_act<T>(logits);
                float *glse = dev_alloc<float>(N), *glogp = dev_alloc<float>(N),
                      *gent = with_ent ? dev_alloc<float>(N) : nullptr;
                int *gtg = dev_copy(tg);
                cuda_classifier_rows_forward(glogp, gent, glse, glog, gtg, N, V, Vp, 0);
                expect_close(tag<T>("classifier rows lse").c_str(), glse, lse.data(), N, 1e-5,
                             1e-5);
                expect_close(tag<T>("classifier rows logp").c_str(), glogp, logp.data(), N, 1e-5,
                             1e-5);
                if (with_ent)
                    expect_close(tag<T>("classifier rows entropy").c_str(), gent, ent.data(), N,
                                 1e-5, 1e-5);
                CHECK(host_act(glog, NV) == logits, "the forward row kernel changed the logits");
                // the backward from the CPU's statistics, so it is compared on its own
                T *gl2 = dev_act<T>(logits);
                float *clse = dev_copy(lse), *cent = with_ent ? dev_copy(ent) : nullptr,
                      *gdlogp = dev_copy(dlogp), *gdent = with_ent ? dev_copy(dent) : nullptr;
                cuda_classifier_rows_backward(gl2, clse, cent, gtg, gdlogp, gdent, N, V, Vp,
                                              inv_temp, 0);
                expect_act("classifier rows dlogits", gl2, dlog.data(), NV, 1e-6, 1e-5);
                std::vector<float> g2 = host_act(gl2, NV);
                bool zeros = true;
                for (int n = 0; n < N; n++) {
                    bool masked = (tg[n] < 0 || dlogp[n] == 0.0f) && (!with_ent || dent[n] == 0.0f);
                    for (int v = masked ? 0 : V; v < Vp; v++)
                        zeros &= g2[(size_t)n * Vp + v] == 0.0f;
                }
                CHECK(zeros, "padded columns or masked rows not exactly zero");
                expect_clean();
                dev_free_all();
            }
        }
}

// act_from_float and act_to_float: n not a multiple of the 16-byte pack (4 floats, 8 bf16),
// misaligned buffers (the scalar path), values across the range (ties of bf16 rounding, zeros of
// both signs, subnormals, infinities, the largest finite floats). From float: the host's
// round-to-nearest-even bits (float: a copy); to float: exact, and back to T the same bits.
template <class T> static void test_convert() {
    for (size_t n : {1, 7, 8, 9, 1031, 4099})
        for (int off : {0, 1}) {
            std::vector<float> x = randv(n, -4, 4);
            const float special[] = {0.0f,        -0.0f,    1e-40f,   -3e-39f,     INFINITY,
                                     -INFINITY,   3.4e38f,  -3.4e38f, 1.00390625f, // a tie
                                     1.01171875f, 65504.0f, 1e-20f};
            for (size_t i = 0; i < n; i++)
                if (i % 5 == 3)
                    x[i] = special[(i / 5) % (sizeof special / sizeof special[0])];
                else if (i % 7 == 2)
                    x[i] *= 1e6f;
            std::vector<T> want(n);
            for (size_t i = 0; i < n; i++) {
                if constexpr (kBf16<T>)
                    want[i] = __float2bfloat16(x[i]);
                else
                    want[i] = x[i];
            }
            for (const Schedule &s : kSchedules) {
                if (skip_schedule(s)) continue;
                g_context = fmt("%s n=%zu offset=%d %s", tname<T>(), n, off, s.name);
                use_schedule(s);
                float *src = dev_copy(x, off), *back = dev_alloc<float>(n, off);
                T *act = dev_alloc<T>(n, off);
                cuda_act_from_float(act, src, n, 0);
                CHECK(memcmp(act, want.data(), n * sizeof(T)) == 0,
                      "act_from_float: not the host's rounding of every value");
                cuda_act_to_float(back, act, n, 0);
                std::vector<float> exact = host_act(want.data(), n);
                CHECK(memcmp(back, exact.data(), n * sizeof(float)) == 0,
                      "act_to_float: not the exact value of every element");
                expect_clean();
                dev_free_all();
            }
        }
}

// ---- main --------------------------------------------------------------------------------------

struct Test {
    const char *name;
    void (*fn)();
};
static const Test kTests[] = {
    {"residual", test_residual},
    {"convert", test_convert<float>},
    {"encoder", test_encoder<float>},
    {"kvcache_decode", test_kvcache_decode<float>},
    {"attention", test_attention<float>},
    {"gelu", test_gelu},
    {"swiglu", test_swiglu},
    {"layernorm", test_layernorm<float>},
    {"rmsnorm", test_rmsnorm<float>},
    {"classifier", test_classifier<float>},
    {"rope", test_rope<float>},
    {"scale_adamw", test_scale_adamw<float>},
    {"sum_squares", test_sum_squares},
    {"frozen", test_frozen<float>},
    {"sample", test_sample<float>},
    {"bf16_convert", test_convert<bf16>},
    {"bf16_encoder", test_encoder<bf16>},
    {"bf16_kvcache_decode", test_kvcache_decode<bf16>},
    {"bf16_attention", test_attention<bf16>},
    {"bf16_layernorm", test_layernorm<bf16>},
    {"bf16_rmsnorm", test_rmsnorm<bf16>},
    {"bf16_classifier", test_classifier<bf16>},
    {"bf16_rope", test_rope<bf16>},
    {"bf16_adamw", test_scale_adamw<bf16>},
    {"bf16_sample", test_sample<bf16>},
    {"bf16_frozen", test_frozen<bf16>},
    {"bf16_elementwise", test_bf16_elementwise},
    {"bf16_swiglu", test_bf16_swiglu},
    {"bf16_norms", test_bf16_norms},
    {"harness_shuffles", test_harness_shuffles},
    {"harness_bf16", test_harness_bf16},
    {"bug_missing_barrier", test_bug_missing_barrier},
    {"bug_out_of_bounds", test_bug_out_of_bounds},
    {"bug_warnings", test_bug_warnings},
    {"bug_invalid_launch", test_bug_invalid_launch},
    {"bug_unwritten_shared", test_bug_unwritten_shared},
};

int main(int argc, char **argv) {
    cpu()->threads(1); // the references in one fixed order; the harness is single-threaded anyway
    int run = 0;
    for (const Test &t : kTests) {
        bool want = argc == 1;
        for (int i = 1; i < argc; i++) want |= strcmp(argv[i], t.name) == 0;
        if (!want) continue;
        int before = g_failures;
        auto t0 = std::chrono::steady_clock::now();
        t.fn();
        double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        printf("%s %s (%.2f s)\n", g_failures == before ? "PASS" : "FAIL", t.name, sec);
        run++;
    }
    if (!run) {
        fprintf(stderr, "no test named so\n");
        return 2;
    }
    printf("\nlargest differences from the CPU backend (all shapes, all schedules):\n");
    for (const Stat &s : g_stats)
        printf("  %-28s max |d| %-10.3g max |d|/|ref| %-10.3g over %ld values\n", s.what.c_str(),
               s.max_abs, s.max_rel, s.compared);
    if (g_bf16_total)
        printf("  bf16 results bit-identical to the fp32 reference rounded: %ld of %ld\n",
               g_bf16_exact, g_bf16_total);
    printf("%s: %d failed checks\n", g_failures ? "FAILED" : "OK", g_failures);
    return g_failures ? 1 : 0;
}
