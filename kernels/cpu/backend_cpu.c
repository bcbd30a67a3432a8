// The CPU backend: memory is host memory; kernels are in this folder.
#include "kernels/cpu/cpu.h"
#include "common/check.h"
#include <string.h>

// 64-byte aligned so vector loads never straddle cache lines.
static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
        LC_DIE("out of memory allocating %zu bytes (hint: reduce batch_size or model size)", bytes);
    memset(p, 0, rounded);
    return p;
}

static void cpu_free(void *p) {
    free(p);
}

static void cpu_zero(void *p, size_t bytes) {
    memset(p, 0, bytes);
}

static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
}

static int cpu_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
    return omp_get_max_threads();
}

// ---- the fp32 kernels as Backend entries ----------------------------------------------------
// The CPU backend's activation type is fp32 (act_size 4), so an `Act *` of the interface is a
// `float *` here: these adapters only give the kernels (cpu.h, typed float) the interface's
// signatures.

static void cpu_act_copy(Act *dst, const float *src, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

static void cpu_act_to_float(float *dst, const Act *src, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

static void encoder_forward(Act *out, const int *tokens, const int *pos, const Act *wte,
                            const Act *wpe, int B, int T, int C) {
    cpu_encoder_forward(out, tokens, pos, wte, wpe, B, T, C);
}

static void encoder_backward(float *dwte, float *dwpe, const Act *dout, const int *tokens,
                             const int *pos, int B, int T, int C) {
    cpu_encoder_backward(dwte, dwpe, dout, tokens, pos, B, T, C);
}

static void layernorm_forward(Act *out, float *mean, float *rstd, const Act *inp, const Act *w,
                              const Act *b, int N, int C) {
    cpu_layernorm_forward(out, mean, rstd, inp, w, b, N, C);
}

static void layernorm_backward(Act *dinp, float *dw, float *db, const Act *dout, const Act *inp,
                               const Act *w, const float *mean, const float *rstd, int N, int C) {
    cpu_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

static void rmsnorm_forward(Act *out, float *rstd, const Act *inp, const Act *w, int N, int C,
                            float eps) {
    cpu_rmsnorm_forward(out, rstd, inp, w, N, C, eps);
}

static void rmsnorm_backward(Act *dinp, float *dw, const Act *dout, const Act *inp, const Act *w,
                             const float *rstd, int N, int C) {
    cpu_rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
}

static void matmul_forward(Act *out, const Act *inp, const Act *w, const Act *b, int N, int C,
                           int OC) {
    cpu_matmul_forward(out, inp, w, b, N, C, OC);
}

static void matmul_backward(Act *dinp, float *dw, float *db, const Act *dout, const Act *inp,
                            const Act *w, int N, int C, int OC) {
    cpu_matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
}

static void lora_forward(Act *out, Act *h, const Act *inp, const Act *a, const Act *b, int N, int C,
                         int OC, int o0, int OS, int r, float scale) {
    cpu_lora_forward(out, h, inp, a, b, N, C, OC, o0, OS, r, scale);
}

static void lora_backward(Act *dinp, float *da, float *db, Act *dh, const Act *dout, const Act *inp,
                          const Act *h, const Act *a, const Act *b, int N, int C, int OC, int o0,
                          int OS, int r, float scale) {
    cpu_lora_backward(dinp, da, db, dh, dout, inp, h, a, b, N, C, OC, o0, OS, r, scale);
}

static void rope_forward(Act *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                         float theta) {
    cpu_rope_forward(qkv, pos, B, T, NH, NKV, hs, theta);
}

static void rope_backward(Act *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                          float theta) {
    cpu_rope_backward(dqkv, pos, B, T, NH, NKV, hs, theta);
}

static void attention_forward(Act *out, float *state, const Act *qkv, const int *seg, int B, int T,
                              int NH, int NKV, int hs) {
    cpu_attention_forward(out, state, qkv, seg, B, T, NH, NKV, hs);
}

static void attention_backward(Act *dqkv, float *scratch, const Act *dout, const Act *out,
                               const Act *qkv, const float *state, const int *seg, int B, int T,
                               int NH, int NKV, int hs) {
    cpu_attention_backward(dqkv, scratch, dout, out, qkv, state, seg, B, T, NH, NKV, hs);
}

static void flash_attention_forward(Act *out, float *state, const Act *qkv, const int *seg, int B,
                                    int T, int NH, int NKV, int hs) {
    cpu_flash_attention_forward(out, state, qkv, seg, B, T, NH, NKV, hs);
}

static void flash_attention_backward(Act *dqkv, float *scratch, const Act *dout, const Act *out,
                                     const Act *qkv, const float *state, const int *seg, int B,
                                     int T, int NH, int NKV, int hs) {
    cpu_flash_attention_backward(dqkv, scratch, dout, out, qkv, state, seg, B, T, NH, NKV, hs);
}

static void kvcache_write(Act *kcache, Act *vcache, const Act *qkv, const int *start, int B, int T,
                          int maxT, int NH, int NKV, int hs) {
    cpu_kvcache_write(kcache, vcache, qkv, start, B, T, maxT, NH, NKV, hs);
}

static void attention_decode(Act *out, const Act *qkv, const Act *kcache, const Act *vcache,
                             const int *pos, int B, int maxT, int NH, int NKV, int hs) {
    cpu_attention_decode(out, qkv, kcache, vcache, pos, B, maxT, NH, NKV, hs);
}

static void gelu_forward(Act *out, const Act *inp, size_t N) {
    cpu_gelu_forward(out, inp, N);
}

static void gelu_backward(Act *dinp, const Act *inp, const Act *dout, size_t N) {
    cpu_gelu_backward(dinp, inp, dout, N);
}

static void swiglu_forward(Act *out, const Act *inp, int N, int F) {
    cpu_swiglu_forward(out, inp, N, F);
}

static void swiglu_backward(Act *dinp, const Act *inp, const Act *dout, int N, int F) {
    cpu_swiglu_backward(dinp, inp, dout, N, F);
}

static void residual_forward(Act *out, const Act *a, const Act *b, size_t N) {
    cpu_residual_forward(out, a, b, N);
}

static void classifier_forward(float *logp, float *entropy, float *lse, Act *logits, const Act *x,
                               const Act *wte, const int *targets, int N, int C, int V, int Vp,
                               float inv_temp) {
    cpu_classifier_forward(logp, entropy, lse, logits, x, wte, targets, N, C, V, Vp, inv_temp);
}

static void classifier_backward(Act *dx, float *dwte, Act *logits, const Act *x, const Act *wte,
                                const float *lse, const float *entropy, const int *targets,
                                const float *dlogp, const float *dent, int N, int C, int V, int Vp,
                                float inv_temp) {
    cpu_classifier_backward(dx, dwte, logits, x, wte, lse, entropy, targets, dlogp, dent, N, C, V,
                            Vp, inv_temp);
}

// The compute copy is the master copy here (act_size 4): param_act, when given, mirrors it.
static void adamw_update(float *param, Act *param_act, const float *grad, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2, float eps, float wd,
                         float bc1, float bc2) {
    cpu_adamw_update(param, grad, m, v, n, lr, beta1, beta2, eps, wd, bc1, bc2);
    if (param_act && param_act != param) cpu_act_copy(param_act, param, n);
}

static void sample_tokens(int *token, float *logp, const Act *logits, const float *u, int B, int V,
                          int Vp, float temperature, int top_k, float top_p) {
    cpu_sample_tokens(token, logp, logits, u, B, V, Vp, temperature, top_k, top_p);
}

static const Backend CPU_BACKEND = {
    .name = "cpu",
    .act_size = sizeof(float),
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .to_device = cpu_memcpy,
    .to_host = cpu_memcpy,
    .copy = cpu_memcpy,
    .threads = cpu_threads,
    .act_from_float = cpu_act_copy,
    .act_to_float = cpu_act_to_float,
    .encoder_forward = encoder_forward,
    .encoder_backward = encoder_backward,
    .layernorm_forward = layernorm_forward,
    .layernorm_backward = layernorm_backward,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .lora_forward = lora_forward,
    .lora_backward = lora_backward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .rope_forward = rope_forward,
    .rope_backward = rope_backward,
    .attention_state_floats = cpu_attention_state_floats,
    .attention_scratch_floats = cpu_attention_scratch_floats,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .kvcache_write = kvcache_write,
    .attention_decode = attention_decode,
    .gelu_forward = gelu_forward,
    .gelu_backward = gelu_backward,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .residual_forward = residual_forward,
    .classifier_forward = classifier_forward,
    .classifier_backward = classifier_backward,
    .adamw_update = adamw_update,
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,
    .sample_tokens = sample_tokens,
};

const Backend *backend_cpu(void) {
    return &CPU_BACKEND;
}

// The same table with `attention: flash`: the blocked online-softmax kernels of
// attention_flash.c, whose state is the logsumexp (B,NH,T) instead of the probabilities.
const Backend *backend_cpu_flash(void) {
    static Backend flash;
#pragma omp critical(backend_cpu_flash)
    if (!flash.name) {
        flash = CPU_BACKEND;
        flash.attention_state_floats = cpu_flash_attention_state_floats;
        flash.attention_scratch_floats = cpu_flash_attention_scratch_floats;
        flash.attention_forward = flash_attention_forward;
        flash.attention_backward = flash_attention_backward;
    }
    return &flash;
}
