// tests/test_cuda_emu_model.cc: the whole CUDA backend — its host code, cuBLASLt calls and
// kernels — on the CPU (tests/cuda_emu/: the runtime and cuBLASLt shims check every call's
// rules, the emulator runs the kernels), against the CPU backend, for a tiny model of each
// family (GPT-2; Llama with grouped-query attention and an untied head):
//   - a training step (forward, backward, AdamW) with a packed row and masked targets: loss,
//     every gradient and the updated weights; in fp32 tightly, in bf16 within bf16 tolerances;
//   - determinism: the same step under two thread schedules gives the same bits;
//   - no device allocation inside a step once the first step has run;
//   - the step with `attention: cudnn` (cuDNN's fused attention through the cuDNN shim);
//   - activation recomputation (attention, layer): the same bits as none, smaller arenas;
//   - a rollout (prefill, KV-cache decoding, sampling) from trained weights: the same tokens and
//     log-probs as the CPU's (fp32), log-probs within bf16 tolerance (bf16);
//   - bf16 storage: the activation arena about half of fp32's, the bf16 compute copy of the
//     weights exactly the updated master weights rounded;
//   - checkpoints crossing backends: CPU writes, CUDA resumes, CUDA writes, CPU resumes, and the
//     run matches the CPU-only one (fp32 tightly, bf16 within bf16 tolerance);
//   - LoRA on every target the family has (random B), fp32 and bf16: a step's loss and every
//     adapter gradient as the CPU's, no base gradients, the frozen base (masters and bf16 copy)
//     unchanged by AdamW; adapters off on a view and zero B give the base model's bits; a value
//     model as an adapter view on the policy's trunk as the CPU's, the policy untouched; layer
//     recomputation the same bits as none;
//   - with `nogpu`: no device, and backend_cuda refuses with the cause instead of crashing.
// Every run ends with zero shim rule violations and zero emulator warnings or errors.
//
//     test_cuda_emu_model [nogpu]    exit 1 on failure
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

extern "C" {
#include "common/rng.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/sample.h"
#include "optim/optim.h"
#include "train/run/state.h"
}

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

static int g_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

// ---- the two backends
// -----------------------------------------------------------------------------

static const Backend *cuda(BackendPrecision precision,
                           BackendAttention attention = BACKEND_ATTENTION_BUILTIN) {
    BackendOptions o = {precision, attention};
    char why[1024];
    const Backend *be = lc_emu_backend_cuda(&o, why, sizeof why);
    if (!be) {
        fprintf(stderr, "the emulated CUDA backend refused: %s\n", why);
        exit(1);
    }
    return be;
}

static const Backend *cpu() {
    return backend_cpu();
}

// ---- a tiny model and a batch -----------------------------------------------------------------

// C 40, head size 10 by default: a layer's slice of an activation arena (N*C floats) is 64-byte
// aligned only, which cuBLASLt must be told (its heuristic assumes 256 by default). cuDNN's
// attention needs a head size that is a multiple of 8: C 64.
static ModelConfig config(ModelFamily f, int C = 40) {
    ModelConfig c = model_config_default(f, 2, 4, C, 70, 16);
    if (f == MODEL_FAMILY_LLAMA) {
        c.n_kv_head = 2; // grouped-query attention, groups of 2
        c.tied = false;
    }
    return c;
}

enum { B = 2, T = 9 };

// Row 0 one example; row 1 two packed examples (positions restart, attention never crosses),
// its last target padding, and a masked prompt token.
struct TestBatch {
    int tokens[B * T], targets[B * T], pos[B * T], seg[B * T];
    float mask[B * T];
    Batch b;
    TestBatch() {
        for (int i = 0; i < B * T; i++) {
            int t = i % T;
            tokens[i] = (7 * i + 3) % 70;
            targets[i] = (5 * i + 11) % 70;
            mask[i] = 1.0f;
            seg[i] = i >= T && t >= 4 ? 1 : 0;
            pos[i] = seg[i] ? t - 4 : t;
        }
        targets[B * T - 1] = -1;
        mask[B * T - 1] = 0.0f;
        mask[T + 1] = 0.0f;
        b = Batch{B, T, tokens, targets, mask, pos, seg, nullptr};
    }
};

static const AdamWConfig kAdam = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};

// A model and its optimiser on one backend.
struct Trainer {
    Model *m;
    AdamW opt;
    Trainer(const Backend *be, ModelConfig c) {
        m = model_create(be, c, MODEL_HEAD_LM, MODEL_TRAIN, B, T);
        model_init_weights(m, 7);
        adamw_init(&opt, be, &m->table, kAdam);
    }
    ~Trainer() {
        adamw_free(&opt);
        model_free(m);
    }
    std::vector<float> host(const float *dev) const {
        std::vector<float> v(m->table.numel);
        m->be->to_host(v.data(), dev, v.size() * sizeof(float));
        return v;
    }
};

struct Step {
    float loss;
    std::vector<float> grads, params; // gradients before clipping; weights after the update
    std::vector<float> logp;          // (B,T) per-token log-probs of the forward
};

static Step step(Trainer &tr, const Batch *b) {
    Step s;
    model_zero_grad(tr.m);
    s.loss = model_forward(tr.m, b, 1.0f);
    s.logp.assign(tr.m->host_logp, tr.m->host_logp + B * T);
    model_backward_ce(tr.m, model_mask_sum(tr.m));
    s.grads = tr.host(tr.m->grads_mem);
    adamw_step(&tr.opt, tr.m->params_mem, tr.m->grads_mem, tr.m->weights_mem, kAdam.lr);
    s.params = tr.host(tr.m->params_mem);
    return s;
}

// ---- comparisons --------------------------------------------------------------------------------

static double max_abs(const std::vector<float> &v) {
    double m = 0;
    for (float x : v) m = std::fmax(m, std::fabs((double)x));
    return m;
}

// Elementwise |got - ref| <= atol + rtol |ref|; prints the worst element of a failure.
static bool close(const char *what, const std::vector<float> &got, const std::vector<float> &ref,
                  double atol, double rtol) {
    size_t bad = 0, worst = 0;
    double worst_d = -1;
    for (size_t i = 0; i < ref.size(); i++) {
        double d = std::fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * std::fabs((double)ref[i]))) {
            bad++;
            if (d > worst_d || std::isnan(d)) worst_d = d, worst = i;
        }
    }
    if (bad)
        fprintf(stderr, "  %s: %zu of %zu elements differ; worst [%zu] got %.9g ref %.9g\n", what,
                bad, ref.size(), worst, got[worst], ref[worst]);
    return bad == 0;
}

// ||got - ref|| / ||ref||.
static double rel_l2(const std::vector<float> &got, const std::vector<float> &ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1));
}

// The weights after an AdamW step where the gradient is not tiny: the first step moves each
// weight by about lr * sign(g), so a gradient near zero may take either sign on two backends
// summing in different orders; those weights are compared by the gradient check instead.
static bool params_close(const char *what, const Step &got, const Step &ref, double atol) {
    double gmax = max_abs(ref.grads);
    size_t bad = 0, compared = 0;
    for (size_t i = 0; i < ref.params.size(); i++) {
        if (std::fabs(ref.grads[i]) < 1e-3 * gmax) continue;
        compared++;
        if (!(std::fabs(got.params[i] - ref.params[i]) <= atol)) bad++;
    }
    if (bad || compared <= ref.params.size() / 4)
        fprintf(stderr, "  %s: %zu of %zu compared weights differ (of %zu)\n", what, bad, compared,
                ref.params.size());
    return bad == 0 && compared > ref.params.size() / 4;
}

// fp32 -> bf16 -> fp32, rounding to nearest even (finite inputs): what the device stores.
static float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

// The compute copy of a model's weights (weights_mem, in the activation type), widened to fp32.
static std::vector<float> compute_weights(const Model *m) {
    const Backend *be = m->be;
    size_t n = m->table.numel;
    float *dev = (float *)be->alloc(n * sizeof(float));
    be->act_to_float(dev, m->weights_mem, n);
    std::vector<float> v(n);
    be->to_host(v.data(), dev, n * sizeof(float));
    be->free(dev);
    return v;
}

static bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

static long g_expected_shim_errors; // violations the seeded-bug checks committed on purpose

static void expect_clean(const char *what) {
    CHECK(lc_emu_shim_errors() == g_expected_shim_errors, "%s: %ld shim rule violations", what,
          lc_emu_shim_errors() - g_expected_shim_errors);
    CHECK(cuemu_warnings() == 0 && cuemu_errors() == 0, "%s: emulator warnings %ld errors %ld",
          what, cuemu_warnings(), cuemu_errors());
}

// ---- the tests
// ------------------------------------------------------------------------------------

// One training step on the CPU, and on the emulated GPU in fp32 and bf16.
static void test_train_step(ModelFamily f) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    Trainer ref_tr(cpu(), config(f));
    Step ref = step(ref_tr, &tb.b);

    Trainer fp_tr(cuda(BACKEND_PRECISION_FP32), config(f));
    Step fp = step(fp_tr, &tb.b);
    double gmax = max_abs(ref.grads);
    printf("%s fp32: loss %.7f (cpu %.7f), grads rel L2 %.2e, max |g| %.3g\n", fam, fp.loss,
           ref.loss, rel_l2(fp.grads, ref.grads), gmax);
    // fp32 with sums in other orders (cuBLASLt's shim sums in double): a few ulps per result.
    CHECK(std::fabs(fp.loss - ref.loss) <= 1e-5 * std::fabs(ref.loss), "%s fp32 loss", fam);
    CHECK(close("fp32 logp", fp.logp, ref.logp, 1e-5, 1e-5), "%s fp32 logp", fam);
    CHECK(close("fp32 grads", fp.grads, ref.grads, 1e-5 * gmax, 1e-4), "%s fp32 grads", fam);
    CHECK(params_close("fp32 params", fp, ref, 1e-5), "%s fp32 weights after AdamW", fam);

    Trainer bf_tr(cuda(BACKEND_PRECISION_BF16), config(f));
    Step bf = step(bf_tr, &tb.b);
    double rl = rel_l2(bf.grads, ref.grads);
    printf("%s bf16: loss %.7f (cpu %.7f), grads rel L2 %.2e\n", fam, bf.loss, ref.loss, rl);
    // bf16 matrix inputs carry 8 significant bits (relative rounding 2^-9); a loss sums many
    // such products, the gradients chain several: 1% on the loss and log-probs, 5% in L2 on the
    // gradients (llm.c's dev/cuda accepts 8e-2 elementwise for bf16 kernels).
    CHECK(std::fabs(bf.loss - ref.loss) <= 1e-2 * std::fabs(ref.loss), "%s bf16 loss", fam);
    CHECK(close("bf16 logp", bf.logp, ref.logp, 2e-2, 1e-2), "%s bf16 logp", fam);
    CHECK(rl < 5e-2, "%s bf16 gradients: relative L2 error %.3g", fam, rl);
    CHECK(rel_l2(fp.grads, ref.grads) < rl || rl == 0, "%s: bf16 should be the looser", fam);
    // bf16 storage: the activations take half the bytes, and AdamW refreshed the compute copy
    // of the weights to the updated master weights rounded to bf16, exactly.
    size_t fp_acts = model_act_bytes(fp_tr.m), bf_acts = model_act_bytes(bf_tr.m);
    printf("%s activation arena: fp32 %zu bytes, bf16 %zu bytes\n", fam, fp_acts, bf_acts);
    CHECK(fp_tr.m->weights_mem == nullptr && bf_tr.m->weights_mem != nullptr,
          "%s: a compute copy exactly when the activations are bf16", fam);
    CHECK(bf_acts < 0.65 * fp_acts, "%s: bf16 activation arena %zu bytes, fp32 %zu", fam, bf_acts,
          fp_acts);
    std::vector<float> copy = compute_weights(bf_tr.m), want(bf.params.size());
    for (size_t i = 0; i < want.size(); i++) want[i] = bf16_round(bf.params[i]);
    CHECK(same_bits(copy, want), "%s: the bf16 weights are not the rounded master weights", fam);
    expect_clean(fam);
}

// `attention: cudnn`: the step through cuDNN's fused attention (bf16 Q, K, V, O: staged from
// fp32 activations, or the bf16 activations themselves; the packed row as a segment bias)
// against the CPU.
static void test_cudnn_step(ModelFamily f, BackendPrecision p) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    Trainer ref_tr(cpu(), config(f, 64));
    Step ref = step(ref_tr, &tb.b);
    Trainer tr(cuda(p, BACKEND_ATTENTION_CUDNN), config(f, 64));
    Step got = step(tr, &tb.b);
    double rl = rel_l2(got.grads, ref.grads);
    printf("%s cudnn attention (%s): loss %.7f (cpu %.7f), grads rel L2 %.2e\n", fam,
           p == BACKEND_PRECISION_FP32 ? "fp32" : "bf16", got.loss, ref.loss, rl);
    CHECK(std::fabs(got.loss - ref.loss) <= 1e-2 * std::fabs(ref.loss), "%s cudnn loss", fam);
    CHECK(close("cudnn logp", got.logp, ref.logp, 2e-2, 1e-2), "%s cudnn logp", fam);
    CHECK(rl < 5e-2, "%s cudnn gradients: relative L2 error %.3g", fam, rl);
    expect_clean(fam);
}

// The same step twice under different thread schedules: the same bits (no unordered atomics).
static void test_determinism(ModelFamily f, BackendPrecision p) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    Step run[2];
    for (int r = 0; r < 2; r++) {
        cuemu_set_schedule(r == 0 ? CUEMU_FORWARD : CUEMU_RANDOM, 5);
        Trainer tr(cuda(p), config(f));
        run[r] = step(tr, &tb.b);
    }
    cuemu_set_schedule(CUEMU_FORWARD, 0);
    CHECK(memcmp(&run[0].loss, &run[1].loss, sizeof(float)) == 0, "%s: loss differs", fam);
    CHECK(same_bits(run[0].grads, run[1].grads), "%s: gradients differ between schedules", fam);
    CHECK(same_bits(run[0].params, run[1].params), "%s: weights differ between schedules", fam);
    expect_clean(fam);
}

// Activation recomputation (none, attention, layer): the step re-runs the same kernels on the same
// inputs, so the loss, every gradient and the updated weights have the same bits, from strictly
// smaller activation arenas (layer < attention < none).
static void test_recompute(ModelFamily f, BackendPrecision p, BackendAttention at) {
    const char *fam = model_family_name(f);
    int C = at == BACKEND_ATTENTION_CUDNN ? 64 : 40;
    TestBatch tb;
    Step run[3];
    size_t bytes[3];
    for (int k = 0; k < 3; k++) {
        Trainer tr(cuda(p, at), config(f, C));
        model_set_recompute(tr.m, (ModelRecompute)k);
        bytes[k] = model_act_bytes(tr.m);
        run[k] = step(tr, &tb.b);
    }
    for (int k = 1; k < 3; k++) {
        CHECK(memcmp(&run[0].loss, &run[k].loss, sizeof(float)) == 0, "%s recompute %d: loss", fam,
              k);
        CHECK(same_bits(run[0].grads, run[k].grads), "%s recompute %d: gradients differ", fam, k);
        CHECK(same_bits(run[0].params, run[k].params), "%s recompute %d: weights differ", fam, k);
    }
    printf("%s recompute (%s, %s attention): activations none %zu, attention %zu, layer %zu "
           "bytes\n",
           fam, p == BACKEND_PRECISION_FP32 ? "fp32" : "bf16",
           at == BACKEND_ATTENTION_CUDNN ? "cudnn" : "builtin", bytes[0], bytes[1], bytes[2]);
    CHECK(bytes[2] < bytes[1] && bytes[1] < bytes[0], "%s recompute: arenas %zu, %zu, %zu", fam,
          bytes[0], bytes[1], bytes[2]);
    expect_clean(fam);
}

// After the first step has sized the scratch buffers, steps allocate no device memory.
static void test_no_allocation_in_steps(ModelFamily f) {
    TestBatch tb;
    Trainer tr(cuda(BACKEND_PRECISION_BF16), config(f));
    step(tr, &tb.b);
    long before = lc_emu_allocations();
    for (int i = 0; i < 2; i++) step(tr, &tb.b);
    CHECK(lc_emu_allocations() == before, "%s: %ld cudaMalloc calls in steps 2 and 3",
          model_family_name(f), lc_emu_allocations() - before);
}

static std::string tmp_path(const char *name) {
    const char *dir = getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/lc-emu-" + std::to_string(getpid()) + "-" + name;
}

static void save(Trainer &tr, const std::string &path, int64_t step_no) {
    StateModel sm = {"policy", tr.m, &tr.opt};
    TrainState st = {};
    st.step = step_no;
    char err[1024];
    CHECK(state_save(path.c_str(), &sm, 1, &st, err, sizeof err) == 0, "save: %s", err);
}

static void load(Trainer &tr, const std::string &path) {
    StateModel sm = {"policy", tr.m, &tr.opt};
    TrainState st = {};
    char err[1024];
    CHECK(state_load(path.c_str(), &sm, 1, &st, err, sizeof err) == 0, "load: %s", err);
}

// CPU: steps 1, 2, 3. Crossing: CPU step 1 -> checkpoint -> CUDA step 2 -> checkpoint -> CPU
// step 3. The crossing run's losses and final weights match the CPU-only run's: tightly in fp32;
// in bf16 the losses within bf16 tolerance (a load that left the bf16 compute copy stale would
// run step 2 on the weights of seed 99 and miss by far).
static void test_checkpoint_crossing(ModelFamily f, BackendPrecision p) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    Step ref[3];
    {
        Trainer tr(cpu(), config(f));
        for (int i = 0; i < 3; i++) ref[i] = step(tr, &tb.b);
    }
    std::string c1 = tmp_path("c1.h5"), c2 = tmp_path("c2.h5");
    {
        Trainer tr(cpu(), config(f));
        step(tr, &tb.b);
        save(tr, c1, 1);
    }
    Step s2, s3;
    {
        Trainer tr(cuda(p), config(f));
        model_init_weights(tr.m, 99); // the checkpoint must replace everything
        load(tr, c1);
        s2 = step(tr, &tb.b);
        save(tr, c2, 2);
    }
    {
        Trainer tr(cpu(), config(f));
        model_init_weights(tr.m, 98);
        load(tr, c2);
        s3 = step(tr, &tb.b);
    }
    unlink(c1.c_str());
    unlink(c2.c_str());
    printf("%s crossing (%s): losses %.7f %.7f (cpu only %.7f %.7f)\n", fam,
           p == BACKEND_PRECISION_FP32 ? "fp32" : "bf16", s2.loss, s3.loss, ref[1].loss,
           ref[2].loss);
    if (p != BACKEND_PRECISION_FP32) {
        CHECK(std::fabs(s2.loss - ref[1].loss) <= 1e-2 * std::fabs(ref[1].loss), "%s bf16 step 2",
              fam);
        CHECK(std::fabs(s3.loss - ref[2].loss) <= 1e-2 * std::fabs(ref[2].loss), "%s bf16 step 3",
              fam);
        expect_clean(fam);
        return;
    }
    CHECK(std::fabs(s2.loss - ref[1].loss) <= 1e-5 * std::fabs(ref[1].loss), "%s step 2", fam);
    CHECK(std::fabs(s3.loss - ref[2].loss) <= 1e-5 * std::fabs(ref[2].loss), "%s step 3", fam);
    CHECK(close("crossing grads", s3.grads, ref[2].grads, 1e-5 * max_abs(ref[2].grads), 1e-4),
          "%s: step 3 gradients after crossing", fam);
    CHECK(params_close("crossing weights", s3, ref[2], 1e-5), "%s: weights after crossing", fam);
    expect_clean(fam);
}

// Trains on the CPU until the model is confident, then samples three prompts of different
// lengths at temperature 1 on both backends with one seed.
static void test_rollout(ModelFamily f) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    std::string ck = tmp_path("roll.h5");
    {
        Trainer tr(cpu(), config(f));
        for (int i = 0; i < 30; i++) step(tr, &tb.b);
        save(tr, ck, 30);
    }
    const int NB = 3, NEW = 6, STRIDE = 5;
    int prompts[NB * STRIDE] = {3, 10, 17, 24, 31, 5, 12, 0, 0, 0, 40, 0, 0, 0, 0};
    int plen[NB] = {5, 2, 1};
    SampleParams sp = {1.0f, 0, 1.0f, -1, NEW};
    struct Out {
        std::vector<int> tok = std::vector<int>(NB * NEW), len = std::vector<int>(NB);
        std::vector<float> logp = std::vector<float>(NB * NEW);
    } out[3];
    for (int k = 0; k < 3; k++) {
        const Backend *be =
            k == 0 ? cpu() : cuda(k == 1 ? BACKEND_PRECISION_FP32 : BACKEND_PRECISION_BF16);
        Trainer tr(be, config(f));
        load(tr, ck);
        Sampler *s = sampler_create(tr.m, NB, 16, 1);
        Rng r = rng_init(11);
        sampler_generate(s, prompts, STRIDE, plen, NB, &sp, &r, out[k].tok.data(),
                         out[k].logp.data(), out[k].len.data());
        sampler_free(s);
    }
    unlink(ck.c_str());
    CHECK(out[1].tok == out[0].tok, "%s: fp32 rollout tokens differ from the CPU's", fam);
    CHECK(close("fp32 rollout logp", out[1].logp, out[0].logp, 1e-4, 1e-5), "%s fp32 logp", fam);
    // bf16: the first token of each row has the same context on both backends; its log-prob
    // within bf16 tolerance. Later tokens may differ once a draw lands near a boundary.
    for (int b = 0; b < NB; b++) {
        float g = out[2].logp[b * NEW], r = out[0].logp[b * NEW];
        CHECK(out[2].tok[b * NEW] == out[0].tok[b * NEW] &&
                  std::fabs(g - r) <= 2e-2 + 1e-2 * std::fabs(r),
              "%s bf16 row %d: token %d logp %.5f vs cpu token %d logp %.5f", fam, b,
              out[2].tok[b * NEW], g, out[0].tok[b * NEW], r);
    }
    double conf = 0;
    for (float lp : out[0].logp) conf += lp;
    printf("%s rollout: mean logp %.3f (uniform %.3f)\n", fam, conf / (NB * NEW), -std::log(70.0));
    CHECK(conf / (NB * NEW) > -std::log(70.0) + 0.5, "%s: the trained model is not confident", fam);
    expect_clean(fam);
}

// ---- LoRA -------------------------------------------------------------------------------------

// Every target the family has (GPT-2 has no gate).
static LoraConfig all_targets(ModelFamily f, int rank, float alpha) {
    unsigned t = (1u << LORA_TARGETS) - 1;
    if (f == MODEL_FAMILY_GPT2) t &= ~(1u << LORA_GATE);
    return LoraConfig{rank, alpha, t, LORA_INIT_KAIMING};
}

// Fills every adapter's B of m's own (trained) tensors with U(-0.3, 0.3) from seed, on the host,
// so the adapters change the output and every adapter gradient is nonzero.
static void randomise_b(Model *m, uint64_t seed) {
    std::vector<float> host(m->table.numel);
    model_params_to_host(m, host.data());
    Rng r = rng_init(seed);
    for (int i = m->first_trained; i < m->table.count; i++) {
        const TensorInfo *ti = &m->table.info[i];
        if (!strstr(ti->name, "_b")) continue;
        for (size_t j = 0; j < ti->numel; j++)
            host[ti->offset + j] = (float)(0.6 * rng_uniform(&r) - 0.3);
    }
    model_params_from_host(m, host.data());
}

// A model (weights of seed 7) with adapters (seed 3) on every target and random B (seed 5),
// or zero B, and AdamW on its trained part only (train_table).
struct LoraTrainer {
    Model *m;
    AdamW opt;
    LoraTrainer(const Backend *be, ModelFamily f, bool random_b = true,
                ModelRecompute rc = MODEL_RECOMPUTE_NONE, bool rc_first = false) {
        m = model_create(be, config(f), MODEL_HEAD_LM, MODEL_TRAIN, B, T);
        model_init_weights(m, 7);
        if (rc_first) model_set_recompute(m, rc);
        LoraConfig c = all_targets(f, 3, 6.0f);
        char err[256];
        if (model_lora_attach(m, &c, 3, err, sizeof err) != 0) {
            fprintf(stderr, "model_lora_attach: %s\n", err);
            exit(1);
        }
        if (!rc_first) model_set_recompute(m, rc);
        if (random_b) randomise_b(m, 5);
        adamw_init(&opt, be, &m->train_table, kAdam);
    }
    ~LoraTrainer() {
        adamw_free(&opt);
        model_free(m);
    }
    std::vector<float> trained(const float *dev) const { // a train_table-sized arena
        std::vector<float> v(m->train_table.numel);
        m->be->to_host(v.data(), dev, v.size() * sizeof(float));
        return v;
    }
    std::vector<float> all_params() const {
        std::vector<float> v(m->table.numel);
        model_params_to_host(m, v.data());
        return v;
    }
};

// Act array of n elements widened to fp32 on the host.
static std::vector<float> act_host(const Backend *be, const Act *src, size_t n) {
    float *dev = (float *)be->alloc(n * sizeof(float));
    be->act_to_float(dev, src, n);
    std::vector<float> v(n);
    be->to_host(v.data(), dev, n * sizeof(float));
    be->free(dev);
    return v;
}

struct LoraStep {
    Step s;                                  // grads and params: the trained part (train_table)
    std::vector<float> before, after;        // every parameter (model_params_to_host) around AdamW
    std::vector<float> frozen_w0, frozen_w1; // the frozen compute copy around AdamW (bf16 only)
};

static LoraStep lora_step(LoraTrainer &tr, const Batch *b) {
    LoraStep r;
    Model *m = tr.m;
    model_zero_grad(m);
    r.s.loss = model_forward(m, b, 1.0f);
    r.s.logp.assign(m->host_logp, m->host_logp + B * T);
    model_backward_ce(m, model_mask_sum(m));
    r.s.grads = tr.trained(m->grads_mem);
    r.before = tr.all_params();
    if (m->frozen_weights_mem)
        r.frozen_w0 = act_host(m->be, m->frozen_weights_mem, m->frozen_numel);
    adamw_step(&tr.opt, m->params_mem, m->grads_mem, m->weights_mem, kAdam.lr);
    r.s.params = tr.trained(m->params_mem);
    r.after = tr.all_params();
    if (m->frozen_weights_mem)
        r.frozen_w1 = act_host(m->be, m->frozen_weights_mem, m->frozen_numel);
    return r;
}

// The part of a train_table-sized vector that is tensor i of the table.
static std::vector<float> tensor_part(const Model *m, const std::vector<float> &trained, int i) {
    const TensorInfo *ti = &m->table.info[i];
    const float *p = trained.data() + (ti->offset - m->frozen_numel);
    return std::vector<float>(p, p + ti->numel);
}

// 1. One training step with adapters on every target (random B): the loss and every adapter's
// gradient match the CPU's (fp32 tightly, bf16 within bf16 tolerance); the gradient arena is the
// trained part only; after AdamW the frozen base (fp32 masters and the bf16 compute copy) has the
// same bits and the adapters moved.
static void test_lora_step(ModelFamily f) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    LoraTrainer ref_tr(cpu(), f);
    LoraStep ref = lora_step(ref_tr, &tb.b);
    for (BackendPrecision p : {BACKEND_PRECISION_FP32, BACKEND_PRECISION_BF16}) {
        bool fp32 = p == BACKEND_PRECISION_FP32;
        const char *prec = fp32 ? "fp32" : "bf16";
        LoraTrainer tr(cuda(p), f);
        Model *m = tr.m;
        CHECK(m->train_table.numel == ref_tr.m->train_table.numel &&
                  m->frozen_numel == ref_tr.m->frozen_numel,
              "%s %s: tables differ from the CPU's", fam, prec);
        CHECK(model_grad_bytes(m) == m->train_table.numel * sizeof(float),
              "%s %s: gradient arena %zu bytes, train_table %zu floats", fam, prec,
              model_grad_bytes(m), m->train_table.numel);
        CHECK(m->grads.qkvw == nullptr && m->grads.wte == nullptr && m->grads.fcprojw == nullptr,
              "%s %s: base gradients", fam, prec);
        LoraStep got = lora_step(tr, &tb.b);
        double loss_tol = fp32 ? 1e-5 : 1e-2;
        CHECK(std::fabs(got.s.loss - ref.s.loss) <= loss_tol * std::fabs(ref.s.loss),
              "%s %s LoRA loss %.7f, cpu %.7f", fam, prec, got.s.loss, ref.s.loss);
        CHECK(fp32 ? close("lora fp32 logp", got.s.logp, ref.s.logp, 1e-5, 1e-5)
                   : close("lora bf16 logp", got.s.logp, ref.s.logp, 2e-2, 1e-2),
              "%s %s LoRA logp", fam, prec);
        double worst = 0;
        int adapters = 0;
        for (int i = m->first_trained; i < m->table.count; i++) {
            const char *name = m->table.info[i].name;
            std::vector<float> g = tensor_part(m, got.s.grads, i),
                               r = tensor_part(ref_tr.m, ref.s.grads, i);
            double rl = rel_l2(g, r);
            worst = std::fmax(worst, rl);
            adapters += strncmp(name, "lora_", 5) == 0;
            CHECK(max_abs(r) > 0 && max_abs(g) > 0, "%s %s: %s has a zero gradient", fam, prec,
                  name);
            // fp32: sums in other orders, a few ulps (rel L2 <= 1e-5); bf16 as test_train_step.
            CHECK(rl <= (fp32 ? 1e-5 : 5e-2), "%s %s: %s gradient rel L2 %.3g", fam, prec, name,
                  rl);
        }
        CHECK(adapters == (f == MODEL_FAMILY_GPT2 ? 12 : 14), "%s %s: %d adapter tensors", fam,
              prec, adapters);
        printf("%s LoRA step %s: loss %.7f (cpu %.7f), worst adapter grad rel L2 %.2e\n", fam, prec,
               got.s.loss, ref.s.loss, worst);
        // AdamW on the train_table: the frozen base keeps its bits; the adapters move.
        size_t nf = m->frozen_numel;
        CHECK(nf > 0 && memcmp(got.before.data(), got.after.data(), nf * sizeof(float)) == 0,
              "%s %s: AdamW changed frozen base weights", fam, prec);
        CHECK(memcmp(got.before.data(), ref.before.data(), nf * sizeof(float)) == 0,
              "%s %s: the base differs from the CPU's", fam, prec);
        size_t moved = 0;
        for (size_t j = nf; j < m->table.numel; j++) moved += got.after[j] != got.before[j];
        CHECK(moved > (m->table.numel - nf) / 2, "%s %s: AdamW moved %zu of %zu adapter weights",
              fam, prec, moved, m->table.numel - nf);
        if (fp32) {
            CHECK(m->frozen_weights_mem == nullptr, "%s fp32: a frozen compute copy", fam);
            CHECK(params_close("lora fp32 params", got.s, ref.s, 1e-5), "%s fp32 LoRA weights",
                  fam);
        } else {
            CHECK(m->frozen_weights_mem != nullptr, "%s bf16: no frozen compute copy", fam);
            CHECK(same_bits(got.frozen_w0, got.frozen_w1),
                  "%s bf16: AdamW changed the frozen compute copy", fam);
            std::vector<float> want(nf);
            for (size_t j = 0; j < nf; j++) want[j] = bf16_round(got.after[j]);
            CHECK(same_bits(got.frozen_w1, want),
                  "%s bf16: the frozen compute copy is not the base rounded", fam);
            std::vector<float> copy = act_host(m->be, m->weights_mem, m->train_table.numel),
                               want_t(got.s.params.size());
            for (size_t j = 0; j < want_t.size(); j++) want_t[j] = bf16_round(got.s.params[j]);
            CHECK(same_bits(copy, want_t),
                  "%s bf16: the adapters' compute copy is not their masters rounded", fam);
        }
    }
    expect_clean(fam);
}

// 2. The base model on the same backend: adapters_off on a view of an adapted model, and
// zero-initialised B, give the bits of a model without adapters (the adapters on do not).
static void test_lora_base(ModelFamily f, BackendPrecision p) {
    const char *fam = model_family_name(f);
    const char *prec = p == BACKEND_PRECISION_FP32 ? "fp32" : "bf16";
    TestBatch tb;
    const Backend *be = cuda(p);
    Model *plain = model_create(be, config(f), MODEL_HEAD_LM, MODEL_INFER, B, T);
    model_init_weights(plain, 7);
    float base = model_forward(plain, &tb.b, 1.0f);
    std::vector<float> base_logp(plain->host_logp, plain->host_logp + B * T);
    model_free(plain);
    {
        LoraTrainer tr(be, f); // random B
        Model *view = model_create_view(tr.m, MODEL_INFER, B, T);
        float on = model_forward(view, &tb.b, 1.0f);
        CHECK(std::fabs(on - base) > 1e-3f, "%s %s: the adapters do not change the loss", fam,
              prec);
        view->adapters_off = true;
        float off = model_forward(view, &tb.b, 1.0f);
        std::vector<float> off_logp(view->host_logp, view->host_logp + B * T);
        printf("%s LoRA %s: base loss %.7f, adapters on %.7f, off %.7f\n", fam, prec, base, on,
               off);
        CHECK(memcmp(&off, &base, sizeof(float)) == 0, "%s %s: adapters off %.9g, base %.9g", fam,
              prec, off, base);
        CHECK(same_bits(off_logp, base_logp), "%s %s: adapters-off logp differ from the base's",
              fam, prec);
        model_free(view);
    }
    {
        LoraTrainer tr(be, f, false); // B = 0
        float zero = model_forward(tr.m, &tb.b, 1.0f);
        std::vector<float> zero_logp(tr.m->host_logp, tr.m->host_logp + B * T);
        CHECK(memcmp(&zero, &base, sizeof(float)) == 0, "%s %s: B = 0 loss %.9g, base %.9g", fam,
              prec, zero, base);
        CHECK(same_bits(zero_logp, base_logp), "%s %s: B = 0 logp differ from the base's", fam,
              prec);
    }
    expect_clean(fam);
}

struct ValueRun {
    std::vector<float> values, grads, policy_logp;
    float policy_loss;
};

// 3. A value model as an adapter view (scalar head) on an adapted policy's trunk: one value
// forward, backward (objective -mean(values)) and AdamW step on each backend. Values and
// gradients match the CPU's; the policy's loss and log-probs keep their bits.
static ValueRun value_run(const Backend *be, ModelFamily f, const Batch *b) {
    ValueRun r;
    LoraTrainer pol(be, f);
    float want = model_forward(pol.m, b, 1.0f);
    std::vector<float> want_logp(pol.m->host_logp, pol.m->host_logp + B * T);
    std::vector<float> trunk0 = pol.all_params();
    LoraConfig c = all_targets(f, 2, 4.0f);
    Model *v = model_create_adapter_view(pol.m, MODEL_HEAD_SCALAR, MODEL_TRAIN, B, T, &c, 21);
    randomise_b(v, 9);
    AdamW opt;
    adamw_init(&opt, be, &v->train_table, kAdam);
    std::vector<float> dv(B * T, -1.0f / (B * T));
    model_zero_grad(v);
    model_forward(v, b, 1.0f);
    r.values.assign(v->host_values, v->host_values + B * T);
    model_backward(v, nullptr, nullptr, dv.data());
    r.grads.resize(v->train_table.numel);
    be->to_host(r.grads.data(), v->grads_mem, r.grads.size() * sizeof(float));
    adamw_step(&opt, v->params_mem, v->grads_mem, v->weights_mem, kAdam.lr);
    CHECK(model_grad_bytes(v) == v->train_table.numel * sizeof(float),
          "value view: gradient arena beyond its own tensors");
    r.policy_loss = model_forward(pol.m, b, 1.0f);
    r.policy_logp.assign(pol.m->host_logp, pol.m->host_logp + B * T);
    CHECK(memcmp(&r.policy_loss, &want, sizeof(float)) == 0 && same_bits(r.policy_logp, want_logp),
          "%s: the value step changed the policy's outputs (%.9g, was %.9g)", model_family_name(f),
          r.policy_loss, want);
    CHECK(same_bits(pol.all_params(), trunk0), "%s: the value step changed the policy's weights",
          model_family_name(f));
    adamw_free(&opt);
    model_free(v);
    return r;
}

static void test_lora_value_view(ModelFamily f) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    ValueRun ref = value_run(cpu(), f, &tb.b);
    CHECK(max_abs(ref.grads) > 0, "%s: zero value gradients", fam);
    for (BackendPrecision p : {BACKEND_PRECISION_FP32, BACKEND_PRECISION_BF16}) {
        bool fp32 = p == BACKEND_PRECISION_FP32;
        ValueRun got = value_run(cuda(p), f, &tb.b);
        double rg = rel_l2(got.grads, ref.grads), rv = rel_l2(got.values, ref.values);
        printf("%s LoRA value view %s: values rel L2 %.2e, grads rel L2 %.2e\n", fam,
               fp32 ? "fp32" : "bf16", rv, rg);
        // bf16: a value is one C -> 1 product of the bf16 final norm, whose sum cancels (values
        // near 0.5 from terms near 0.2): as the gradients, 5% in relative L2.
        CHECK(fp32 ? close("value view fp32 values", got.values, ref.values, 1e-5, 1e-5)
                   : rv < 5e-2,
              "%s %s value view values: rel L2 %.3g", fam, fp32 ? "fp32" : "bf16", rv);
        CHECK(rg <= (fp32 ? 1e-5 : 5e-2), "%s %s value view gradients: rel L2 %.3g", fam,
              fp32 ? "fp32" : "bf16", rg);
    }
    expect_clean(fam);
}

// 4. LoRA with layer recomputation (set after the adapters, or before them): the same loss,
// gradients and updated weights as without, from a smaller activation arena.
static void test_lora_recompute(ModelFamily f, BackendPrecision p) {
    const char *fam = model_family_name(f);
    TestBatch tb;
    LoraStep run[3];
    size_t bytes[3];
    for (int k = 0; k < 3; k++) {
        LoraTrainer tr(cuda(p), f, true, k ? MODEL_RECOMPUTE_LAYER : MODEL_RECOMPUTE_NONE, k == 2);
        bytes[k] = model_act_bytes(tr.m);
        run[k] = lora_step(tr, &tb.b);
    }
    for (int k = 1; k < 3; k++) {
        CHECK(memcmp(&run[0].s.loss, &run[k].s.loss, sizeof(float)) == 0,
              "%s LoRA recompute %d: loss", fam, k);
        CHECK(same_bits(run[0].s.grads, run[k].s.grads), "%s LoRA recompute %d: gradients differ",
              fam, k);
        CHECK(same_bits(run[0].after, run[k].after), "%s LoRA recompute %d: weights differ", fam,
              k);
        CHECK(bytes[k] < bytes[0], "%s LoRA recompute %d: arena %zu, none %zu", fam, k, bytes[k],
              bytes[0]);
    }
    printf("%s LoRA recompute (%s): activations none %zu, layer %zu bytes\n", fam,
           p == BACKEND_PRECISION_FP32 ? "fp32" : "bf16", bytes[0], bytes[1]);
    expect_clean(fam);
}

// Seeded bugs the shims must catch: each call breaks one rule and must fail with one violation.
static void test_shim_rules() {
    cuda(BACKEND_PRECISION_FP32); // the context: a handle and a workspace
    long before = lc_emu_shim_errors();
    float *dev = nullptr, host[64] = {};
    CHECK(cudaMalloc((void **)&dev, 64 * sizeof(float)) == cudaSuccess, "cudaMalloc");
    // a host pointer passed as device memory; a copy running past an allocation
    CHECK(cudaMemcpy(host, dev, 64 * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess,
          "a copy into host memory named as device memory");
    CHECK(cudaMemcpy(dev + 1, host, 64 * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess,
          "a copy past the end of an allocation");
    CHECK(cudaFree(dev + 1) != cudaSuccess, "freeing the middle of an allocation");
    // cuBLASLt: ld < rows; a pointer less aligned than the heuristic was told
    cublasLtHandle_t h;
    cublasLtCreate(&h);
    cublasLtMatrixLayout_t bad_ld, l;
    CHECK(cublasLtMatrixLayoutCreate(&bad_ld, CUDA_R_32F, 4, 4, 3) != CUBLAS_STATUS_SUCCESS,
          "a column-major layout with ld < rows");
    cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4);
    cublasLtMatmulDesc_t op;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref); // default: 256-byte alignment assumed
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(h, op, l, l, l, l, pref, 1, &heur, &found);
    float alpha = 1, beta = 0;
    CHECK(cublasLtMatmul(h, op, &alpha, dev, l, dev, l, &beta, dev + 16, l, dev + 16, l, &heur.algo,
                         nullptr, 0, 0) != CUBLAS_STATUS_SUCCESS,
          "D 64 bytes past a 256-byte boundary under the default alignment preference");
    CHECK(cublasLtMatmul(h, op, &alpha, host, l, dev, l, &beta, dev, l, dev, l, &heur.algo, nullptr,
                         0, 0) != CUBLAS_STATUS_SUCCESS,
          "a host matrix");
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulDescDestroy(op);
    cublasLtMatrixLayoutDestroy(l);
    cublasLtDestroy(h);
    cudaFree(dev);
    long caught = lc_emu_shim_errors() - before;
    printf("shim rules: %ld seeded violations caught\n", caught);
    CHECK(caught == 6, "6 seeded violations, %ld reported", caught);
    g_expected_shim_errors += caught;
}

// No device: backend_cuda refuses, naming the cause; nothing crashes.
static int test_nogpu() {
    lc_emu_set_device_count(0);
    char why[1024] = "";
    const Backend *be = lc_emu_backend_cuda(nullptr, why, sizeof why);
    printf("no device: %s\n", why);
    CHECK(be == nullptr, "a backend without a device");
    CHECK(strstr(why, "no usable GPU") && strstr(why, "no CUDA device is visible"),
          "the reason names the cause: %s", why);
    return g_failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "nogpu") == 0) return test_nogpu();
    cuemu_set_schedule(CUEMU_FORWARD, 0);
    for (ModelFamily f : {MODEL_FAMILY_GPT2, MODEL_FAMILY_LLAMA}) {
        test_train_step(f);
        test_determinism(f, BACKEND_PRECISION_FP32);
        test_determinism(f, BACKEND_PRECISION_BF16);
        test_no_allocation_in_steps(f);
        test_cudnn_step(f, BACKEND_PRECISION_FP32);
        test_cudnn_step(f, BACKEND_PRECISION_BF16);
        test_recompute(f, BACKEND_PRECISION_FP32, BACKEND_ATTENTION_BUILTIN);
        test_recompute(f, BACKEND_PRECISION_BF16, BACKEND_ATTENTION_BUILTIN);
        test_recompute(f, BACKEND_PRECISION_BF16, BACKEND_ATTENTION_CUDNN);
        test_checkpoint_crossing(f, BACKEND_PRECISION_FP32);
        test_checkpoint_crossing(f, BACKEND_PRECISION_BF16);
        test_rollout(f);
        test_lora_step(f);
        test_lora_base(f, BACKEND_PRECISION_FP32);
        test_lora_base(f, BACKEND_PRECISION_BF16);
        test_lora_value_view(f);
        test_lora_recompute(f, BACKEND_PRECISION_FP32);
        test_lora_recompute(f, BACKEND_PRECISION_BF16);
    }
    test_shim_rules();
    expect_clean("after the seeded bugs");
    size_t peak = 0;
    backend_cuda_memory(&peak);
    printf("%ld matrix products through the cuBLASLt shim; peak device memory %zu bytes; %s\n",
           lc_emu_matmuls(), peak, g_failures ? "FAILED" : "all passed");
    return g_failures ? 1 : 0;
}
