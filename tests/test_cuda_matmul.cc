// tests/test_cuda_matmul.cc: the CUDA backend's cuBLASLt matrix products (cuda_matmul_forward,
// cuda_matmul_scaled, cuda_matmul_backward, and LoRA's cuda_lora_forward, cuda_lora_backward in
// kernels/cuda/backend_cuda.cu) on the CPU, through
// the cuBLASLt shim (tests/cuda_emu/cublaslt_shim.cc), which checks every call's layouts, types,
// alignments and pointers and computes in double. Each product runs in both activation storages
// and is compared with the CPU backend on the same (bf16-rounded) inputs:
//   - fp32 storage: outputs within 1e-5 of the magnitude of the sum (|inp| @ |weight|^T + |bias|)
//     plus 1e-6: only the summation order differs;
//   - bf16 storage: bf16 outputs (forward, scaled, dinp) within 1e-2 relative plus that; the fp32
//     parameter gradients (dweight, dbias) under the fp32 rule, since bf16 inputs widen exactly
//     and accumulate in fp32;
//   - parameter gradients accumulate (+=) over two calls onto nonzero values; dinp is written;
//     a NULL dweight (frozen) leaves dweight untouched and dinp, dbias as with it;
//   - LoRA: the block [o0, o0+OS) of out accumulated (o0 > 0, OS < OC, odd o0) and no other
//     column touched; h, dh written; dinp, da, db accumulated; da, db NULL skipped. Under bf16
//     the reference rounds h and dh as the device stores them before they feed the next product;
//   - shapes: a single row, odd N/C/OC, and operands one element off their allocation's start;
//   - the classifier's backward (ops.cu) with dwte NULL: the same dx and dlogits bits, one
//     product fewer;
//   - a repeated step allocates nothing; no shim error, no harness warning.
// It also calls the shim directly with the type combinations cuBLASLt refuses.
//
//     test_cuda_matmul        exit 1 on failure
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/cuda.h"

extern "C" {
#include "kernels/kernels.h"
}

#include <cuda_bf16.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

LC_CUDA_USE_NAMESPACE

static int g_failures, g_checks;
static std::string g_ctx;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        g_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAILED %s [%s]: ", __FILE__, __LINE__, #cond, g_ctx.c_str());  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

static unsigned long long g_rng = 88172645463325252ull;
static float frand(void) { // uniform in [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

static float bf16_round(float x) {
    return __bfloat162float(__float2bfloat16_rn(x));
}

// n random values in [-1, 1), rounded to bf16 so that both storages hold exactly these numbers.
static std::vector<float> rand_vec(size_t n) {
    std::vector<float> v(n);
    for (float &x : v) x = bf16_round(frand());
    return v;
}

static bool g_bf16; // the storage under test (cuda_context()->bf16)

// A device buffer of n elements of bytes `es`, `off` elements past its allocation's start
// (1: not 16-byte aligned, so cuBLASLt is told a smaller alignment).
struct Buf {
    char *base;
    void *p;
};
static Buf dev(size_t n, size_t es, int off) {
    void *base;
    if (cudaMalloc(&base, (n + off) * es) != cudaSuccess) abort();
    return {(char *)base, (char *)base + off * es};
}

// An Act buffer holding v (fp32, or bf16 under bf16 storage), and back to floats.
static Buf act(const std::vector<float> &v, int off) {
    Buf b = dev(v.size(), g_bf16 ? 2 : 4, off);
    for (size_t i = 0; i < v.size(); i++)
        if (g_bf16)
            ((__nv_bfloat16 *)b.p)[i] = __float2bfloat16_rn(v[i]);
        else
            ((float *)b.p)[i] = v[i];
    return b;
}
static std::vector<float> act_get(const void *p, size_t n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++)
        v[i] = g_bf16 ? __bfloat162float(((const __nv_bfloat16 *)p)[i]) : ((const float *)p)[i];
    return v;
}
static Buf f32(const std::vector<float> &v, int off) {
    Buf b = dev(v.size(), 4, off);
    memcpy(b.p, v.data(), v.size() * 4);
    return b;
}

static double g_max_err[2]; // largest |got - ref| / (|ref| + 1e-3 mag): bf16 outputs, fp32 ones
static double g_lora_max_err[2]; // the same over LoRA's outputs
static bool g_lora;              // recording into g_lora_max_err

// |got - ref| <= rtol |ref| + 1e-5 mag + 1e-6 everywhere; mag bounds the sum's magnitude (the
// same product on absolute values), so summation order never fails a check.
static void expect_close(const char *what, const std::vector<float> &got,
                         const std::vector<float> &ref, const std::vector<float> &mag,
                         double rtol) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < got.size(); i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= rtol * fabs(ref[i]) + 1e-5 * mag[i] + 1e-6) && !bad++) first = i;
        double e = d / (fabs(ref[i]) + 1e-3 * mag[i] + 1e-6);
        int k = rtol > 1e-4 ? 0 : 1;
        double *mx = g_lora ? g_lora_max_err : g_max_err;
        if (e > mx[k]) mx[k] = e;
    }
    CHECK(bad == 0, "%s: %zu of %zu differ, first at %zu: got %.9g want %.9g (mag %.3g)", what, bad,
          got.size(), first, bad ? got[first] : 0.0f, bad ? ref[first] : 0.0f,
          bad ? mag[first] : 0.0f);
}

static std::vector<float> absv(const std::vector<float> &v) {
    std::vector<float> a(v.size());
    for (size_t i = 0; i < v.size(); i++) a[i] = fabsf(v[i]);
    return a;
}

static void no_errors(const char *when) {
    CHECK(lc_emu_shim_errors() == 0 && cuemu_warnings() == 0 && cuemu_errors() == 0,
          "%s: shim errors %ld, harness warnings %ld, errors %ld", when, lc_emu_shim_errors(),
          cuemu_warnings(), cuemu_errors());
}

// Forward (with and without bias), scaled and backward at one shape in the current storage.
static void run_case(int N, int C, int OC, int off) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s N=%d C=%d OC=%d off=%d", g_bf16 ? "bf16" : "fp32", N, C, OC, off);
    g_ctx = buf;
    const Backend *cpu = backend_cpu();
    const double rt = g_bf16 ? 1e-2 : 1e-6; // Act outputs: one bf16 rounding under bf16
    std::vector<float> inp = rand_vec((size_t)N * C), w = rand_vec((size_t)OC * C);
    std::vector<float> bias = rand_vec(OC), dout = rand_vec((size_t)N * OC);
    std::vector<float> ainp = absv(inp), aw = absv(w), abias = absv(bias), adout = absv(dout);
    Buf d_inp = act(inp, off), d_w = act(w, off), d_bias = act(bias, off);
    Buf d_dout = act(dout, off), d_out = act(std::vector<float>((size_t)N * OC, NAN), off);
    long products = lc_emu_matmuls();

    // forward with bias, and without
    std::vector<float> ref((size_t)N * OC), mag((size_t)N * OC);
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        cpu->matmul_forward(ref.data(), inp.data(), w.data(), with_bias ? bias.data() : NULL, N, C,
                            OC);
        cpu->matmul_forward(mag.data(), ainp.data(), aw.data(), with_bias ? abias.data() : NULL, N,
                            C, OC);
        cuda_matmul_forward(d_out.p, d_inp.p, d_w.p, with_bias ? d_bias.p : NULL, N, C, OC);
        expect_close(with_bias ? "forward with bias" : "forward", act_get(d_out.p, ref.size()), ref,
                     mag, rt);
    }
    // scaled: alpha inp @ w^T
    const float alpha = 0.37f;
    cpu->matmul_forward(ref.data(), inp.data(), w.data(), NULL, N, C, OC);
    cpu->matmul_forward(mag.data(), ainp.data(), aw.data(), NULL, N, C, OC);
    for (size_t i = 0; i < ref.size(); i++) ref[i] *= alpha, mag[i] *= alpha;
    cuda_matmul_scaled(d_out.p, d_inp.p, d_w.p, N, C, OC, alpha);
    expect_close("scaled", act_get(d_out.p, ref.size()), ref, mag, rt);

    // backward: dinp written, dweight and dbias accumulated onto nonzero values, twice
    std::vector<float> dw0 = rand_vec((size_t)OC * C), db0 = rand_vec(OC);
    std::vector<float> dinp_ref((size_t)N * C), dw_ref = dw0, db_ref = db0;
    std::vector<float> dinp_mag((size_t)N * C), dw_mag = absv(dw0), db_mag = absv(db0);
    Buf d_dinp = act(std::vector<float>((size_t)N * C, NAN), off);
    Buf d_dw = f32(dw0, off), d_db = f32(db0, off);
    for (int rep = 0; rep < 2; rep++) {
        cpu->matmul_backward(dinp_ref.data(), dw_ref.data(), db_ref.data(), dout.data(), inp.data(),
                             w.data(), N, C, OC);
        cpu->matmul_backward(dinp_mag.data(), dw_mag.data(), db_mag.data(), adout.data(),
                             ainp.data(), aw.data(), N, C, OC);
        long allocs = lc_emu_allocations();
        cuda_matmul_backward(d_dinp.p, (float *)d_dw.p, (float *)d_db.p, d_dout.p, d_inp.p, d_w.p,
                             N, C, OC);
        // the ones vector of dbias is grown once, for the largest N; a repeat allocates nothing
        if (rep == 1)
            CHECK(lc_emu_allocations() == allocs, "the repeated backward made %ld allocations",
                  lc_emu_allocations() - allocs);
        char what[64];
        snprintf(what, sizeof what, "dinp (call %d)", rep + 1);
        expect_close(what, act_get(d_dinp.p, dinp_ref.size()), dinp_ref, dinp_mag, rt);
        std::vector<float> got(dw_ref.size());
        memcpy(got.data(), d_dw.p, got.size() * 4);
        snprintf(what, sizeof what, "dweight += (call %d)", rep + 1);
        expect_close(what, got, dw_ref, dw_mag, 1e-6);
        got.resize(OC);
        memcpy(got.data(), d_db.p, got.size() * 4);
        snprintf(what, sizeof what, "dbias += (call %d)", rep + 1);
        expect_close(what, got, db_ref, db_mag, 1e-6);
    }
    // without dinp and dbias: dweight only
    cpu->matmul_backward(NULL, dw_ref.data(), NULL, dout.data(), inp.data(), w.data(), N, C, OC);
    cpu->matmul_backward(NULL, dw_mag.data(), NULL, adout.data(), ainp.data(), aw.data(), N, C, OC);
    cuda_matmul_backward(NULL, (float *)d_dw.p, NULL, d_dout.p, d_inp.p, d_w.p, N, C, OC);
    std::vector<float> got(dw_ref.size());
    memcpy(got.data(), d_dw.p, got.size() * 4);
    expect_close("dweight += (no dinp, no dbias)", got, dw_ref, dw_mag, 1e-6);
    std::vector<float> db_now(OC);
    memcpy(db_now.data(), d_db.p, OC * 4);
    expect_close("dbias untouched without dbias", db_now, db_ref, db_mag, 0);
    // a frozen weight (dweight NULL): dinp written, dbias accumulated, dweight untouched
    cpu->matmul_backward(dinp_ref.data(), NULL, db_ref.data(), dout.data(), inp.data(), w.data(), N,
                         C, OC);
    cpu->matmul_backward(dinp_mag.data(), NULL, db_mag.data(), adout.data(), ainp.data(), aw.data(),
                         N, C, OC);
    Buf d_dinp2 = act(std::vector<float>((size_t)N * C, NAN), off);
    cuda_matmul_backward(d_dinp2.p, NULL, (float *)d_db.p, d_dout.p, d_inp.p, d_w.p, N, C, OC);
    expect_close("dinp (dweight NULL)", act_get(d_dinp2.p, dinp_ref.size()), dinp_ref, dinp_mag,
                 rt);
    memcpy(db_now.data(), d_db.p, OC * 4);
    expect_close("dbias += (dweight NULL)", db_now, db_ref, db_mag, 1e-6);
    memcpy(got.data(), d_dw.p, got.size() * 4);
    expect_close("dweight untouched when NULL", got, dw_ref, dw_mag, 0);
    // 2 forwards, 1 scaled, 2 x 3 backward products, 1 dweight-only, 2 without dweight
    CHECK(lc_emu_matmuls() - products == 12, "%ld cuBLASLt products, expected 12",
          lc_emu_matmuls() - products);
    no_errors("products");
    for (Buf b : {d_inp, d_w, d_bias, d_dout, d_out, d_dinp, d_dinp2, d_dw, d_db}) cudaFree(b.base);
}

// v rounded as Act storage holds it (bf16 under bf16 storage).
static std::vector<float> act_round(std::vector<float> v) {
    if (g_bf16)
        for (float &x : v) x = bf16_round(x);
    return v;
}

// The reference of one LoRA forward and backward by the CPU backend, from inputs as the device
// holds them; Act intermediates (h, dh) rounded as the device stores them before they feed the
// next product, so bf16 storage is compared with one rounding per output.
struct LoraRef {
    std::vector<float> out, h, dh, dinp, da, db;
};
static LoraRef lora_ref(const std::vector<float> &inp, const std::vector<float> &a,
                        const std::vector<float> &b, const std::vector<float> &out0,
                        const std::vector<float> &dout, const std::vector<float> &dinp0,
                        const std::vector<float> &da0, const std::vector<float> &db0, int N, int C,
                        int OC, int o0, int OS, int r, float scale) {
    const Backend *cpu = backend_cpu();
    LoraRef R;
    R.h.resize((size_t)N * r);
    R.out = out0;
    // h = inp @ a^T (the matmul with a as the weight), rounded; out block += scale h @ b^T
    cpu->matmul_forward(R.h.data(), inp.data(), a.data(), NULL, N, C, r);
    R.h = act_round(R.h);
    std::vector<float> hb((size_t)N * OS);
    cpu->matmul_forward(hb.data(), R.h.data(), b.data(), NULL, N, r, OS);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OS; o++)
            R.out[(size_t)n * OC + o0 + o] += scale * hb[(size_t)n * OS + o];
    // dh and db from the rounded h; then da and dinp from the rounded dh
    R.dh.resize((size_t)N * r);
    R.db = db0;
    std::vector<float> scratch_dinp((size_t)N * C, 0.0f), scratch_da((size_t)r * C, 0.0f);
    cpu->lora_backward(scratch_dinp.data(), scratch_da.data(), R.db.data(), R.dh.data(),
                       dout.data(), inp.data(), R.h.data(), a.data(), b.data(), N, C, OC, o0, OS, r,
                       scale);
    R.dh = act_round(R.dh);
    std::vector<float> prod((size_t)N * C);
    R.da = da0;
    cpu->matmul_backward(prod.data(), R.da.data(), NULL, R.dh.data(), inp.data(), a.data(), N, C,
                         r);
    R.dinp = dinp0;
    for (size_t i = 0; i < prod.size(); i++) R.dinp[i] += prod[i];
    return R;
}

// LoRA (cuda_lora_forward/backward) at one shape: an adapter of rank r on the output columns
// [o0, o0+OS) of an OC-column layer. out's other columns keep their bits; h, dh written; dinp,
// da, db accumulated onto nonzero values; then da, db NULL (frozen) leave them untouched while
// dinp accumulates again and dh is the same.
static void run_lora(int N, int C, int OC, int o0, int OS, int r, int off) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s lora N=%d C=%d OC=%d o0=%d OS=%d r=%d off=%d",
             g_bf16 ? "bf16" : "fp32", N, C, OC, o0, OS, r, off);
    g_ctx = buf;
    const double rt = g_bf16 ? 1e-2 : 1e-6;
    const float scale = 2.0f / (float)r; // alpha / r with alpha = 2
    std::vector<float> inp = rand_vec((size_t)N * C), a = rand_vec((size_t)r * C);
    std::vector<float> b = rand_vec((size_t)OS * r), out0 = rand_vec((size_t)N * OC);
    std::vector<float> dout = rand_vec((size_t)N * OC), dinp0 = rand_vec((size_t)N * C);
    std::vector<float> da0 = rand_vec((size_t)r * C), db0 = rand_vec((size_t)OS * r);
    LoraRef R = lora_ref(inp, a, b, out0, dout, dinp0, da0, db0, N, C, OC, o0, OS, r, scale);
    LoraRef M = lora_ref(absv(inp), absv(a), absv(b), absv(out0), absv(dout), absv(dinp0),
                         absv(da0), absv(db0), N, C, OC, o0, OS, r, scale);
    Buf d_inp = act(inp, off), d_a = act(a, off), d_b = act(b, off), d_out = act(out0, off);
    Buf d_h = act(std::vector<float>((size_t)N * r, NAN), off);
    Buf d_dout = act(dout, off), d_dinp = act(dinp0, off);
    Buf d_dh = act(std::vector<float>((size_t)N * r, NAN), off);
    Buf d_da = f32(da0, off), d_db = f32(db0, off);
    long products = lc_emu_matmuls();

    cuda_lora_forward(d_out.p, d_h.p, d_inp.p, d_a.p, d_b.p, N, C, OC, o0, OS, r, scale);
    std::vector<float> out = act_get(d_out.p, R.out.size());
    expect_close("lora out", out, R.out, M.out, rt);
    size_t moved = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            size_t i = (size_t)n * OC + o;
            if ((o < o0 || o >= o0 + OS) && memcmp(&out[i], &out0[i], 4)) moved++;
        }
    CHECK(moved == 0, "lora_forward changed %zu values outside columns [%d, %d)", moved, o0,
          o0 + OS);
    expect_close("lora h", act_get(d_h.p, R.h.size()), R.h, M.h, rt);

    cuda_lora_backward(d_dinp.p, (float *)d_da.p, (float *)d_db.p, d_dh.p, d_dout.p, d_inp.p, d_h.p,
                       d_a.p, d_b.p, N, C, OC, o0, OS, r, scale);
    std::vector<float> dh = act_get(d_dh.p, R.dh.size());
    expect_close("lora dh", dh, R.dh, M.dh, rt);
    expect_close("lora dinp +=", act_get(d_dinp.p, R.dinp.size()), R.dinp, M.dinp, rt);
    std::vector<float> da(R.da.size()), db(R.db.size());
    memcpy(da.data(), d_da.p, da.size() * 4);
    memcpy(db.data(), d_db.p, db.size() * 4);
    expect_close("lora da +=", da, R.da, M.da, 1e-6);
    expect_close("lora db +=", db, R.db, M.db, 1e-6);

    // frozen a and b: dinp accumulates the same product again, dh is the same, da and db untouched
    std::vector<float> dinp1 = act_get(d_dinp.p, R.dinp.size());
    LoraRef R2 = lora_ref(inp, a, b, out0, dout, dinp1, da0, db0, N, C, OC, o0, OS, r, scale);
    LoraRef M2 = lora_ref(absv(inp), absv(a), absv(b), absv(out0), absv(dout), absv(dinp1),
                          absv(da0), absv(db0), N, C, OC, o0, OS, r, scale);
    cuda_lora_backward(d_dinp.p, NULL, NULL, d_dh.p, d_dout.p, d_inp.p, d_h.p, d_a.p, d_b.p, N, C,
                       OC, o0, OS, r, scale);
    expect_close("lora dinp += (da, db NULL)", act_get(d_dinp.p, R2.dinp.size()), R2.dinp, M2.dinp,
                 rt);
    std::vector<float> dh2 = act_get(d_dh.p, dh.size());
    CHECK(memcmp(dh2.data(), dh.data(), dh.size() * 4) == 0, "dh differs with da, db NULL");
    std::vector<float> da2(da.size()), db2(db.size());
    memcpy(da2.data(), d_da.p, da2.size() * 4);
    memcpy(db2.data(), d_db.p, db2.size() * 4);
    CHECK(memcmp(da2.data(), da.data(), da.size() * 4) == 0 &&
              memcmp(db2.data(), db.data(), db.size() * 4) == 0,
          "da or db changed when NULL was passed");
    // 2 forward products, 4 backward, 2 backward with da and db NULL
    CHECK(lc_emu_matmuls() - products == 8, "%ld cuBLASLt products, expected 8",
          lc_emu_matmuls() - products);
    no_errors("lora");
    for (Buf x : {d_inp, d_a, d_b, d_out, d_h, d_dout, d_dinp, d_dh, d_da, d_db}) cudaFree(x.base);
}

// The classifier's backward (ops.cu: the row kernel, then cuda_matmul_backward) with dwte NULL (a
// frozen output layer) gives the same dx and dlogits bits as with dwte, skips the dwte product,
// and matches the CPU backend.
static void run_classifier_frozen(int N, int C, int V, int Vp, int off) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s classifier dwte NULL N=%d C=%d V=%d off=%d",
             g_bf16 ? "bf16" : "fp32", N, C, V, off);
    g_ctx = buf;
    const Backend *cpu = backend_cpu();
    std::vector<float> x = rand_vec((size_t)N * C), wte = rand_vec((size_t)Vp * C);
    std::vector<float> dlogp = rand_vec(N), dent = rand_vec(N);
    std::vector<int> targets(N);
    for (int n = 0; n < N; n++) targets[n] = (n * 5 + 2) % V;
    // the CPU's dx from the same logits: forward and backward on the inputs as stored
    std::vector<float> logits((size_t)N * Vp), lse(N), logp(N), ent(N), dx_ref((size_t)N * C);
    cpu->classifier_forward(logp.data(), ent.data(), lse.data(), logits.data(), x.data(),
                            wte.data(), targets.data(), N, C, V, Vp, 1.0f);
    cpu->classifier_backward(dx_ref.data(), NULL, logits.data(), x.data(), wte.data(), lse.data(),
                             ent.data(), targets.data(), dlogp.data(), dent.data(), N, C, V, Vp,
                             1.0f);
    Buf d_x = act(x, off), d_wte = act(wte, off);
    Buf d_dlogp = f32(dlogp, off), d_dent = f32(dent, off), d_tg = dev(N, 4, off);
    memcpy(d_tg.p, targets.data(), N * 4);
    std::vector<float> dx[2], dl[2];
    for (int frozen = 0; frozen < 2; frozen++) {
        Buf d_logits = act(std::vector<float>((size_t)N * Vp, 0.0f), off);
        Buf d_lse = f32(std::vector<float>(N), off), d_lp = f32(std::vector<float>(N), off);
        Buf d_ent = f32(std::vector<float>(N), off);
        Buf d_dx = act(std::vector<float>((size_t)N * C, NAN), off);
        Buf d_dwte = f32(std::vector<float>((size_t)Vp * C, 0.0f), off);
        cuda_op_classifier_forward((float *)d_lp.p, (float *)d_ent.p, (float *)d_lse.p, d_logits.p,
                                   d_x.p, d_wte.p, (const int *)d_tg.p, N, C, V, Vp, 1.0f);
        long products = lc_emu_matmuls();
        cuda_op_classifier_backward(d_dx.p, frozen ? NULL : (float *)d_dwte.p, d_logits.p, d_x.p,
                                    d_wte.p, (const float *)d_lse.p, (const float *)d_ent.p,
                                    (const int *)d_tg.p, (const float *)d_dlogp.p,
                                    (const float *)d_dent.p, N, C, V, Vp, 1.0f);
        CHECK(lc_emu_matmuls() - products == (frozen ? 1 : 2),
              "%ld cuBLASLt products in the backward, expected %d", lc_emu_matmuls() - products,
              frozen ? 1 : 2);
        dx[frozen] = act_get(d_dx.p, (size_t)N * C);
        dl[frozen] = act_get(d_logits.p, (size_t)N * Vp);
        for (Buf b : {d_logits, d_lse, d_lp, d_ent, d_dx, d_dwte}) cudaFree(b.base);
    }
    CHECK(memcmp(dx[0].data(), dx[1].data(), dx[0].size() * 4) == 0 &&
              memcmp(dl[0].data(), dl[1].data(), dl[0].size() * 4) == 0,
          "dx or dlogits differ with dwte NULL");
    // against the CPU: dlogits differ in the logits' rounding (bf16), so a loose bound on dx
    double worst = 0, scale = 1e-3;
    for (size_t i = 0; i < dx_ref.size(); i++) {
        worst = fmax(worst, fabs((double)dx[1][i] - dx_ref[i]));
        scale = fmax(scale, fabs((double)dx_ref[i]));
    }
    CHECK(worst <= (g_bf16 ? 3e-2 : 1e-5) * scale, "dx (dwte NULL) max |d| %.3g of max |dx| %.3g",
          worst, scale);
    no_errors("classifier");
    for (Buf b : {d_x, d_wte, d_dlogp, d_dent, d_tg}) cudaFree(b.base);
}

// ---- the shim's type rules, called directly ------------------------------------------------

// The status of one cublasLtMatmul (heuristic and product) of 8x8 matrices: A/B of type ab, C/D
// of type cd, the compute type, and a BIAS epilogue with bias of type bias_t when bias_t >= 0.
static cublasStatus_t try_types(cudaDataType_t ab, cudaDataType_t cd, cublasComputeType_t compute,
                                int bias_t, cudaDataType_t b_type) {
    cublasLtHandle_t h;
    cublasLtCreate(&h);
    void *mem;
    if (cudaMalloc(&mem, 4 * 256 * 4) != cudaSuccess) abort();
    char *a = (char *)mem, *b = a + 1024, *d = a + 2048, *bias = a + 3072;
    memset(mem, 0, 4 * 256 * 4);
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatrixLayoutCreate(&la, ab, 8, 8, 8);
    cublasLtMatrixLayoutCreate(&lb, b_type, 8, 8, 8);
    cublasLtMatrixLayoutCreate(&ld, cd, 8, 8, 8);
    cublasLtMatmulDesc_t op;
    cublasStatus_t st = cublasLtMatmulDescCreate(&op, compute, CUDA_R_32F);
    if (st == CUBLAS_STATUS_SUCCESS && bias_t >= 0) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
        int32_t bt = bias_t;
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt));
    }
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, ld, ld, pref, 1, &heur, &found);
    float alpha = 1.0f, beta = 0.0f;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmul(h, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo, nullptr,
                            0, 0);
    cublasLtMatmulPreferenceDestroy(pref);
    if (op) cublasLtMatmulDescDestroy(op);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtDestroy(h);
    cudaFree(mem);
    return st;
}

static void shim_types(void) {
    g_ctx = "shim types";
    const cudaDataType_t F = CUDA_R_32F, BF = CUDA_R_16BF;
    const cublasComputeType_t C32 = CUBLAS_COMPUTE_32F, FAST = CUBLAS_COMPUTE_32F_FAST_16BF;
    struct {
        const char *what;
        cudaDataType_t ab, cd;
        cublasComputeType_t compute;
        int bias;
        cudaDataType_t b;
        bool ok;
    } cases[] = {
        {"fp32 A/B/C/D, COMPUTE_32F", F, F, C32, -1, F, true},
        {"fp32 storage, COMPUTE_32F_FAST_16BF", F, F, FAST, -1, F, true},
        {"bf16 A/B, bf16 C/D, COMPUTE_32F", BF, BF, C32, -1, BF, true},
        {"bf16 A/B, fp32 C/D, COMPUTE_32F", BF, F, C32, -1, BF, true},
        {"bf16 A/B/C/D, bf16 bias", BF, BF, C32, (int)BF, BF, true},
        {"bf16 A/B, fp32 C/D, fp32 bias", BF, F, C32, (int)F, BF, true},
        {"bf16 A/B with COMPUTE_32F_FAST_16BF", BF, BF, FAST, -1, BF, false},
        {"fp32 A/B with bf16 C/D", F, BF, C32, -1, F, false},
        {"A bf16, B fp32", BF, F, C32, -1, F, false},
        {"bf16 D with an fp32 bias", BF, BF, C32, (int)F, BF, false},
    };
    for (auto &c : cases) {
        long errors = lc_emu_shim_errors();
        cublasStatus_t st = try_types(c.ab, c.cd, c.compute, c.bias, c.b);
        CHECK((st == CUBLAS_STATUS_SUCCESS) == c.ok, "%s: status %d, expected %s", c.what, (int)st,
              c.ok ? "success" : "a refusal");
        CHECK((lc_emu_shim_errors() > errors) == !c.ok, "%s: %ld shim errors reported", c.what,
              lc_emu_shim_errors() - errors);
    }
}

int main() {
    char why[512] = "";
    BackendOptions opts = {};
    const Backend *be = backend_cuda(&opts, why, sizeof why);
    if (!be) {
        fprintf(stderr, "test_cuda_matmul: the emulated backend refused: %s\n", why);
        return 1;
    }
    CudaContext *ctx = cuda_context();
    static const int shapes[][3] = {{1, 1, 1},    {1, 8, 16},   {5, 3, 7},
                                    {16, 32, 24}, {33, 64, 40}, {64, 96, 130}};
    // LoRA {N, C, OC, o0, OS, r}: one element; odd shapes with a middle block (o0 > 0, OS < OC);
    // the first and the last block of a fused q|k|v; the whole output; odd offsets of o0
    static const int lora_shapes[][6] = {{1, 1, 1, 0, 1, 1},     {5, 7, 11, 3, 5, 3},
                                         {9, 13, 24, 0, 8, 4},   {17, 30, 96, 64, 32, 16},
                                         {33, 64, 40, 0, 40, 8}, {6, 5, 9, 1, 7, 2}};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        // what backend_cuda() sets for precision fp32 / bf16 (set here so that the test depends on
        // the products alone): the storage, and fp32 accumulation in either
        g_bf16 = bf16;
        ctx->bf16 = bf16;
        ctx->compute = CUBLAS_COMPUTE_32F;
        cuemu_reset();
        for (auto &s : shapes)
            for (int off = 0; off < 2; off++) run_case(s[0], s[1], s[2], off);
        g_lora = true;
        for (auto &s : lora_shapes)
            for (int off = 0; off < 2; off++) run_lora(s[0], s[1], s[2], s[3], s[4], s[5], off);
        g_lora = false;
        for (int off = 0; off < 2; off++) {
            run_classifier_frozen(1, 8, 70, 128, off);
            run_classifier_frozen(7, 13, 100, 128, off);
        }
    }
    printf("compared: bf16 outputs max err %.3g of |ref|, fp32 outputs %.3g\n", g_max_err[0],
           g_max_err[1]);
    printf("compared LoRA: bf16 outputs max err %.3g of |ref|, fp32 outputs %.3g\n",
           g_lora_max_err[0], g_lora_max_err[1]);
    shim_types();

    if (g_failures) {
        fprintf(stderr, "test_cuda_matmul: %d of %d checks failed\n", g_failures, g_checks);
        return 1;
    }
    printf("test_cuda_matmul: all %d checks passed\n", g_checks);
    return 0;
}
