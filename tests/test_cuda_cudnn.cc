// tests/test_cuda_cudnn.cc: cuDNN fused attention (kernels/cuda/attention_cudnn.cu) on the CPU:
// the file's graphs go through the cuDNN shim (tests/cuda_emu/cudnn_shim.cc), which checks every
// backend-API call and recognises the graphs, and its conversion kernels through the emulation
// harness (tests/cuda_emu/cuemu.h). Forward and backward at several shapes, in both activation
// storages (fp32: through the bf16 staging; bf16: Q/K/V/O/dO/dQ/dK/dV given to cuDNN as strided
// views of the activations themselves, staged only when a pointer is off 16-byte alignment), are
// compared with the CPU backend on bf16-rounded inputs, with no shim error and no harness
// warning; the plans must be cached (nothing built or allocated on a repeated step); and seeded
// bugs (a wrong stride, a uid missing from the variant pack, an unaligned pointer, a changed
// graph, an unsupported head size, dqkv aliasing qkv) must be refused with their reason.
//
//     test_cuda_cudnn        exit 1 on failure
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"
#include "tests/cuda_emu/cudnn_shim.h"

#include "kernels/cuda/cuda.h"

extern "C" {
#include "kernels/kernels.h"
}

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// attention_cudnn.cu's seeded-bug switch (compiled in under the harness only)
LC_CUDA_NAMESPACE_BEGIN
extern int lc_cudnn_att_seeded_bug;
LC_CUDA_NAMESPACE_END
LC_CUDA_USE_NAMESPACE

// n elements of T in (emulated) device memory.
template <class T> static T *dev(size_t n) {
    void *p;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) abort();
    return (T *)p;
}

// ---- checks -----------------------------------------------------------------------------------

static int g_failures;
static std::string g_ctx;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAILED %s [%s]: ", __FILE__, __LINE__, #cond, g_ctx.c_str());  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

static double g_max_rel[3];

// |got - ref| <= atol + rtol |ref| everywhere (llm.c's dev/cuda rule).
static void expect_close(const char *what, int k, const float *got, const float *ref, size_t n,
                         double atol, double rtol) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i])) && !bad++) first = i;
        if (ref[i] != 0 && d / fabs(ref[i]) > g_max_rel[k] && fabs(ref[i]) > 1e-3)
            g_max_rel[k] = d / fabs(ref[i]);
    }
    CHECK(bad == 0, "%s: %zu of %zu differ, first at %zu: got %.9g want %.9g", what, bad, n, first,
          bad ? got[first] : 0.0f, bad ? ref[first] : 0.0f);
}

static float bf16_round(float x) {
    return __bfloat162float(__float2bfloat16_rn(x));
}

// uids of attention_cudnn.cu's graph tensors that the storage test looks at (the shim's messages
// name them too)
enum { UID_Q = 1, UID_O = 4, UID_DO = 9, UID_DQ = 10 };

// Act storage of n values: fp32, or bf16 when the context says so (device memory either way).
static void *act_alloc(size_t n) {
    void *p;
    if (cudaMalloc(&p, n * (cuda_context()->bf16 ? 2 : 4)) != cudaSuccess) abort();
    return p;
}
static void act_put(void *dst, const float *src, size_t n) {
    if (!cuda_context()->bf16) return (void)memcpy(dst, src, n * 4);
    for (size_t i = 0; i < n; i++) ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(src[i]);
}
static std::vector<float> act_get(const void *src, size_t n) {
    std::vector<float> v(n);
    if (!cuda_context()->bf16) return memcpy(v.data(), src, n * 4), v;
    for (size_t i = 0; i < n; i++) v[i] = __bfloat162float(((const __nv_bfloat16 *)src)[i]);
    return v;
}

static unsigned long long g_rng = 88172645463325252ull;
static float frand(void) { // uniform in [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

// One forward and backward at a shape, compared with the CPU backend on bf16-rounded inputs.
// bf16: the activation storage (cuda_context()->bf16); off: the tensors of `which` (OFF_* bits;
// all by default) this many elements past their allocations' starts (1: not 16-byte aligned, so
// the stats are staged, the fp32 conversions take their scalar path and bf16 tensors are staged
// by copies while the aligned ones stay direct).
enum { OFF_QKV = 1, OFF_OUT = 2, OFF_DOUT = 4, OFF_DQKV = 8, OFF_STATE = 16 };
static void run_case(int B, int T, int NH, int NKV, int hs, bool use_seg, int off = 0,
                     bool bf16 = false, unsigned which = ~0u) {
    char buf[160];
    snprintf(buf, sizeof buf, "B=%d T=%d NH=%d NKV=%d hs=%d seg=%d off=%d (mask %#x) %s", B, T, NH,
             NKV, hs, use_seg, off, off ? which & 31 : 0, bf16 ? "bf16" : "fp32");
    g_ctx = buf;
    cuda_context()->bf16 = bf16;
    size_t es = bf16 ? 2 : 4; // bytes per Act element
    size_t QKV = (size_t)(NH + 2 * NKV) * hs, C = (size_t)NH * hs, N = (size_t)B * T;
    std::vector<float> qkv(N * QKV), dout(N * C);
    for (float &v : qkv) v = bf16_round(frand() * 2.0f);
    for (float &v : dout) v = bf16_round(frand());
    std::vector<int> seg(N);
    for (int b = 0; b < B; b++) // packed rows: three segments, boundaries differing per row
        for (int t = 0; t < T; t++)
            seg[(size_t)b * T + t] = t < T / 3 + b ? 0 : t < 2 * T / 3 ? 1 : 2;
    const int *segp = use_seg ? seg.data() : nullptr;

    // the reference: the CPU backend; logsumexp from its scores in double
    const Backend *cpu = backend_cpu();
    std::vector<float> out_ref(N * C), dqkv_ref(N * QKV), lse_ref((size_t)B * NH * T);
    std::vector<float> state(cpu->attention_state_floats(B, T, NH));
    std::vector<float> scratch(cpu->attention_scratch_floats(B, T, NH));
    cpu->attention_forward(out_ref.data(), state.data(), qkv.data(), segp, B, T, NH, NKV, hs);
    cpu->attention_backward(dqkv_ref.data(), scratch.data(), dout.data(), out_ref.data(),
                            qkv.data(), state.data(), segp, B, T, NH, NKV, hs);
    int G = NH / NKV;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                std::vector<double> s;
                double m = -INFINITY, z = 0;
                for (int u = 0; u <= t; u++) {
                    if (segp && seg[(size_t)b * T + u] != seg[(size_t)b * T + t]) continue;
                    double dot = 0;
                    for (int i = 0; i < hs; i++)
                        dot += (double)qkv[((size_t)b * T + t) * QKV + h * hs + i] *
                               qkv[((size_t)b * T + u) * QKV + C + (h / G) * hs + i];
                    s.push_back(dot / sqrt((double)hs));
                    m = fmax(m, s.back());
                }
                for (double v : s) z += exp(v - m);
                lse_ref[((size_t)b * NH + h) * T + t] = (float)(m + log(z));
            }

    // Act tensors (B,T,QKV), (B,T,C), and the state: off elements into their allocations when
    // `which` names them
    auto at = [&](unsigned bit) { return (which & bit) ? (size_t)off : 0; };
    char *d_qkv0 = (char *)act_alloc(N * QKV + off), *d_out0 = (char *)act_alloc(N * C + off);
    char *d_dout0 = (char *)act_alloc(N * C + off), *d_dqkv0 = (char *)act_alloc(N * QKV + off);
    void *d_qkv = d_qkv0 + at(OFF_QKV) * es, *d_out = d_out0 + at(OFF_OUT) * es;
    void *d_dout = d_dout0 + at(OFF_DOUT) * es, *d_dqkv = d_dqkv0 + at(OFF_DQKV) * es;
    float *d_state0 = dev<float>((size_t)B * NH * T + off), *d_state = d_state0 + at(OFF_STATE);
    int *d_seg = dev<int>(N);
    act_put(d_qkv, qkv.data(), qkv.size());
    act_put(d_dout, dout.data(), dout.size());
    memcpy(d_seg, seg.data(), seg.size() * 4);
    const int *dsegp = use_seg ? d_seg : nullptr;

    // bf16 storage, aligned: cuDNN is given the activations themselves; otherwise the staging
    auto direct = [&](unsigned bit) { return bf16 && at(bit) == 0; };
    cuemu_reset();
    lc_emu_cudnn_reset();
    cuda_cudnn_attention_forward(d_out, d_state, d_qkv, dsegp, B, T, NH, NKV, hs);
    CHECK((lc_emu_cudnn_bound(UID_Q) == d_qkv) == direct(OFF_QKV) &&
              (lc_emu_cudnn_bound(UID_O) == d_out) == direct(OFF_OUT),
          "forward: Q bound to %p (qkv %p), O to %p (out %p)", lc_emu_cudnn_bound(UID_Q), d_qkv,
          lc_emu_cudnn_bound(UID_O), d_out);
    cuda_cudnn_attention_backward(d_dqkv, d_dout, d_out, d_qkv, d_state, dsegp, B, T, NH, NKV, hs);
    CHECK((lc_emu_cudnn_bound(UID_Q) == d_qkv) == direct(OFF_QKV) &&
              (lc_emu_cudnn_bound(UID_O) == d_out) == direct(OFF_OUT) &&
              (lc_emu_cudnn_bound(UID_DO) == d_dout) == direct(OFF_DOUT) &&
              (lc_emu_cudnn_bound(UID_DQ) == d_dqkv) == direct(OFF_DQKV),
          "backward: Q %p (qkv %p), O %p (out %p), dO %p (dout %p), dQ %p (dqkv %p)",
          lc_emu_cudnn_bound(UID_Q), d_qkv, lc_emu_cudnn_bound(UID_O), d_out,
          lc_emu_cudnn_bound(UID_DO), d_dout, lc_emu_cudnn_bound(UID_DQ), d_dqkv);
    CHECK(lc_emu_cudnn_executions() == 2, "%ld executions", lc_emu_cudnn_executions());
    CHECK(lc_emu_cudnn_nondeterministic() == 0,
          "%ld executions on an engine marked nondeterministic", lc_emu_cudnn_nondeterministic());
    CHECK(lc_emu_cudnn_errors() == 0 && lc_emu_shim_errors() == 0 && cuemu_warnings() == 0 &&
              cuemu_errors() == 0,
          "cuDNN shim errors %ld, runtime shim errors %ld, harness warnings %ld, errors %ld",
          lc_emu_cudnn_errors(), lc_emu_shim_errors(), cuemu_warnings(), cuemu_errors());
    const double rtol = 1.0 / 128; // 2^-7: bf16 outputs of bf16-rounded inputs
    expect_close("out", 0, act_get(d_out, N * C).data(), out_ref.data(), N * C, 1e-5, rtol);
    expect_close("logsumexp", 1, d_state, lse_ref.data(), lse_ref.size(), 1e-5, 1e-5);
    expect_close("dqkv", 2, act_get(d_dqkv, N * QKV).data(), dqkv_ref.data(), N * QKV, 1e-5, rtol);

    // a repeated step builds no plan and allocates nothing
    long graphs = lc_emu_cudnn_graphs(), mallocs = lc_emu_allocations(), live = lc_emu_cudnn_live();
    cuda_cudnn_attention_forward(d_out, d_state, d_qkv, dsegp, B, T, NH, NKV, hs);
    cuda_cudnn_attention_backward(d_dqkv, d_dout, d_out, d_qkv, d_state, dsegp, B, T, NH, NKV, hs);
    CHECK(lc_emu_cudnn_graphs() == graphs && lc_emu_allocations() == mallocs,
          "the repeated step built %ld graphs and made %ld allocations",
          lc_emu_cudnn_graphs() - graphs, lc_emu_allocations() - mallocs);
    CHECK(lc_emu_cudnn_errors() == 0, "%ld shim errors on the repeated step",
          lc_emu_cudnn_errors());
    CHECK(lc_emu_cudnn_live() == live, "the repeated step leaked %ld descriptors",
          lc_emu_cudnn_live() - live);
    expect_close("dqkv (repeated)", 2, act_get(d_dqkv, N * QKV).data(), dqkv_ref.data(), N * QKV,
                 1e-5, rtol);
    for (void *p : {(void *)d_qkv0, (void *)d_out0, (void *)d_dout0, (void *)d_state0,
                    (void *)d_dqkv0, (void *)d_seg})
        cudaFree(p);
    cuda_context()->bf16 = false;
}

// Runs fn in a child process with stderr captured; expects exit status 1 and `want` in the
// message (the refusal's reason).
template <class F> static void expect_refusal(const char *name, const char *want, F fn) {
    g_ctx = name;
    fflush(stdout); // the child's exit must not print this process's buffered output again
    fflush(stderr);
    int fd[2];
    if (pipe(fd)) abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn();
        fflush(stderr);
        _exit(0);
    }
    close(fd[1]);
    std::string msg;
    char buf[512];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) msg.append(buf, (size_t)n);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status %d, output: %s", status,
          msg.c_str());
    CHECK(msg.find(want) != std::string::npos, "the message lacks \"%s\": %s", want, msg.c_str());
    if (getenv("LC_TEST_VERBOSE")) fprintf(stderr, "%s: refused: %s", name, msg.c_str());
}

// A forward at B=1 T=5 NH=2 NKV=1 hs=8 with seeded bug `bug` (a shape of its own, planned anew).
static void seeded_forward(int bug, int hs = 8) {
    lc_cudnn_att_seeded_bug = bug;
    size_t QKV = (size_t)4 * hs, N = 5;
    float *qkv = dev<float>(N * QKV), *out = dev<float>(N * 2 * hs), *state = dev<float>(2 * 5);
    for (size_t i = 0; i < N * QKV; i++) qkv[i] = 0.25f;
    cuda_cudnn_attention_forward(out, state, qkv, nullptr, 1, 5, 2, 1, hs);
}

// A backward under bf16 storage whose dqkv is qkv itself (B=1 T=5 NH=2 NKV=1 hs=8): cuDNN
// would write the tensors it reads. The forward runs in this process (the CPU backend's OpenMP
// threads do not survive expect_refusal's fork), the refused backward in the child.
static __nv_bfloat16 *g_al_qkv, *g_al_out, *g_al_dout;
static float *g_al_state;
static void aliased_setup(void) {
    lc_cudnn_att_seeded_bug = 0;
    cuda_context()->bf16 = true;
    size_t QKV = 32, C = 16, N = 5;
    g_al_qkv = dev<__nv_bfloat16>(N * QKV), g_al_out = dev<__nv_bfloat16>(N * C);
    g_al_dout = dev<__nv_bfloat16>(N * C), g_al_state = dev<float>(2 * 5);
    for (size_t i = 0; i < N * QKV; i++) g_al_qkv[i] = __float2bfloat16_rn(0.25f);
    for (size_t i = 0; i < N * C; i++) g_al_dout[i] = __float2bfloat16_rn(0.5f);
    cuda_cudnn_attention_forward(g_al_out, g_al_state, g_al_qkv, nullptr, 1, 5, 2, 1, 8);
    cuda_context()->bf16 = false;
}
static void aliased_backward(void) {
    cuda_context()->bf16 = true;
    cuda_cudnn_attention_backward(g_al_qkv, g_al_dout, g_al_out, g_al_qkv, g_al_state, nullptr, 1,
                                  5, 2, 1, 8);
}

int main() {
    for (int bf16 = 0; bf16 < 2; bf16++) {
        for (int hs : {8, 64})
            for (int NKV : {1, 2, 4})
                for (int T : {1, 13, 64})
                    for (int seg = 0; seg < 2; seg++) run_case(2, T, 4, NKV, hs, seg, 0, bf16);
        // state, qkv, out, dout, dqkv not 16-byte aligned
        run_case(2, 13, 4, 2, 8, true, 1, bf16);
        run_case(1, 64, 4, 1, 64, false, 1, bf16);
        // some staged, some direct: an unaligned qkv and dout beside an aligned out and dqkv,
        // and the reverse
        run_case(2, 13, 4, 2, 8, true, 1, bf16, OFF_QKV | OFF_DOUT);
        run_case(2, 13, 4, 1, 16, false, 1, bf16, OFF_OUT | OFF_DQKV | OFF_STATE);
    }
    printf("compared: out max rel %.3g, logsumexp max rel %.3g, dqkv max rel %.3g\n", g_max_rel[0],
           g_max_rel[1], g_max_rel[2]);

    expect_refusal("seeded wrong stride", "tensor Q (uid 1): ", [] { seeded_forward(1); });
    expect_refusal("seeded missing uid", "uid 5 (STATS) missing from the variant pack",
                   [] { seeded_forward(2); });
    expect_refusal("seeded unaligned pointer", "uid 4 (O)", [] { seeded_forward(3); });
    expect_refusal("seeded changed graph", "is not one of attention_cudnn.cu's graphs",
                   [] { seeded_forward(4); });
    expect_refusal("unsupported head size", "a multiple of 8", [] { seeded_forward(0, 12); });
    aliased_setup();
    expect_refusal("dqkv aliasing qkv (bf16)", "overlaps the read tensor", aliased_backward);
    g_ctx = "clean";
    lc_cudnn_att_seeded_bug = 0;
    seeded_forward(0); // the same shape without a bug runs
    CHECK(lc_emu_cudnn_errors() == 0 && lc_emu_shim_errors() == 0, "%ld + %ld shim errors",
          lc_emu_cudnn_errors(), lc_emu_shim_errors());

    if (g_failures) {
        fprintf(stderr, "test_cuda_cudnn: %d failures\n", g_failures);
        return 1;
    }
    printf("test_cuda_cudnn: all passed\n");
    return 0;
}
