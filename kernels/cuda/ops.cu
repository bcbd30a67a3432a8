// kernels/cuda/ops.cu: the Backend entries that the hand-written kernels (*.cuh) implement, as
// adapters onto their launchers (shapes in kernels/kernels.h). Each entry's Act pointers are of
// the context's activation type: every entry dispatches on cuda_context()->bf16 to the kernels'
// __nv_bfloat16 or float instance (LC_ACT_CALL below). Kernels launch on the
// context's stream; the scratch some of them need (the norms' parameter-gradient partials, the
// sum of squares' partials) is one device buffer, grown to the largest request and reused, so a
// step allocates nothing once the first step has run.
#include "kernels/cuda/cuda.h"
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

LC_CUDA_NAMESPACE_BEGIN

static void *scratch_mem;
static size_t scratch_bytes;

// A device buffer of at least bytes, the same one every call (grown when a call needs more).
static void *scratch(size_t bytes) {
    if (bytes > scratch_bytes) {
        if (scratch_mem) LC_CUDA_CHECK(cudaFree(scratch_mem));
        LC_CUDA_CHECK(cudaMalloc(&scratch_mem, bytes));
        scratch_bytes = bytes;
    }
    return scratch_mem;
}

static cudaStream_t stream(void) {
    return cuda_context()->stream;
}

// An Act pointer (void *, const or not) that converts to a pointer to any element type: the
// argument of a launcher whose element type LC_ACT_CALL names explicitly.
struct LcAct {
    const void *p;
    template <class U> operator U *() const {
        return static_cast<U *>(const_cast<void *>(p));
    }
};
static inline LcAct act(const void *p) {
    return LcAct{p};
}

// fn<__nv_bfloat16>(args...) when the context's precision is bf16, else fn<float>(args...); the
// Act arguments wrapped in act().
#define LC_ACT_CALL(fn, ...)                                                                       \
    (cuda_context()->bf16 ? fn<__nv_bfloat16>(__VA_ARGS__) : fn<float>(__VA_ARGS__))

void cuda_op_act_from_float(Act *dst, const float *src, size_t n) {
    LC_ACT_CALL(cuda_act_from_float, act(dst), src, n, stream());
}

void cuda_op_act_to_float(float *dst, const Act *src, size_t n) {
    LC_ACT_CALL(cuda_act_to_float, dst, act(src), n, stream());
}

void cuda_op_encoder_forward(Act *out, const int *tokens, const int *pos, const Act *wte,
                             const Act *wpe, int B, int T, int C) {
    LC_ACT_CALL(cuda_encoder_forward, act(out), tokens, pos, act(wte), act(wpe), B, T, C, stream());
}

void cuda_op_encoder_backward(float *dwte, float *dwpe, const Act *dout, const int *tokens,
                              const int *pos, int B, int T, int C) {
    LC_ACT_CALL(cuda_encoder_backward, dwte, dwpe, act(dout), tokens, pos, B, T, C, stream());
}

void cuda_op_layernorm_forward(Act *out, float *mean, float *rstd, const Act *inp,
                               const Act *weight, const Act *bias, int N, int C) {
    LC_ACT_CALL(cuda_layernorm_forward, act(out), mean, rstd, act(inp), act(weight), act(bias), N,
                C, stream());
}

void cuda_op_layernorm_backward(Act *dinp, float *dweight, float *dbias, const Act *dout,
                                const Act *inp, const Act *weight, const float *mean,
                                const float *rstd, int N, int C) {
    float *s = (float *)scratch(cuda_norm_backward_scratch(N, C) * sizeof(float));
    LC_ACT_CALL(cuda_layernorm_backward, act(dinp), dweight, dbias, act(dout), act(inp),
                act(weight), mean, rstd, s, N, C, stream());
}

void cuda_op_rmsnorm_forward(Act *out, float *rstd, const Act *inp, const Act *weight, int N, int C,
                             float eps) {
    LC_ACT_CALL(cuda_rmsnorm_forward, act(out), rstd, act(inp), act(weight), N, C, eps, stream());
}

void cuda_op_rmsnorm_backward(Act *dinp, float *dweight, const Act *dout, const Act *inp,
                              const Act *weight, const float *rstd, int N, int C) {
    float *s = (float *)scratch(cuda_norm_backward_scratch(N, C) * sizeof(float));
    LC_ACT_CALL(cuda_rmsnorm_backward, act(dinp), dweight, act(dout), act(inp), act(weight), rstd,
                s, N, C, stream());
}

void cuda_op_rope_forward(Act *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                          float theta) {
    LC_ACT_CALL(cuda_rope_forward, act(qkv), pos, B, T, NH, NKV, hs, theta, stream());
}

void cuda_op_rope_backward(Act *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                           float theta) {
    LC_ACT_CALL(cuda_rope_backward, act(dqkv), pos, B, T, NH, NKV, hs, theta, stream());
}

size_t cuda_op_attention_state_floats(int B, int T, int NH) {
    return cuda_attention_state_floats(B, T, NH);
}

size_t cuda_op_attention_scratch_floats(int B, int T, int NH) {
    return cuda_attention_scratch_floats(B, T, NH);
}

// state: the logsumexp (B,NH,T) of every query row; scratch: D = rowsum(dout * out) (B,NH,T).
void cuda_op_attention_forward(Act *out, float *state, const Act *qkv, const int *seg, int B, int T,
                               int NH, int NKV, int hs) {
    if (!LC_ACT_CALL(cuda_attention_forward, act(out), state, act(qkv), seg, B, T, NH, NKV, hs,
                     stream()))
        LC_DIE("CUDA backend: attention_forward: head size %d exceeds %d, or its tiles exceed the "
               "device's shared memory per block",
               hs, LC_ATT_MAX_HS);
}

void cuda_op_attention_backward(Act *dqkv, float *scratch, const Act *dout, const Act *out,
                                const Act *qkv, const float *state, const int *seg, int B, int T,
                                int NH, int NKV, int hs) {
    if (!LC_ACT_CALL(cuda_attention_backward, act(dqkv), scratch, act(dout), act(out), act(qkv),
                     state, seg, B, T, NH, NKV, hs, stream()))
        LC_DIE("CUDA backend: attention_backward: head size %d exceeds %d, or its tiles exceed the "
               "device's shared memory per block",
               hs, LC_ATT_MAX_HS);
}

// `attention: cudnn`: cuDNN's fused attention (attention_cudnn.cu) keeps the same state (the
// logsumexp, B*NH*T) and needs no scratch of the Backend's.
void cuda_op_cudnn_attention_backward(Act *dqkv, float *scratch, const Act *dout, const Act *out,
                                      const Act *qkv, const float *state, const int *seg, int B,
                                      int T, int NH, int NKV, int hs) {
    (void)scratch;
    cuda_cudnn_attention_backward(dqkv, dout, out, qkv, state, seg, B, T, NH, NKV, hs);
}

void cuda_op_kvcache_write(Act *kcache, Act *vcache, const Act *qkv, const int *start, int B, int T,
                           int maxT, int NH, int NKV, int hs) {
    LC_ACT_CALL(cuda_kvcache_write, act(kcache), act(vcache), act(qkv), start, B, T, maxT, NH, NKV,
                hs, stream());
}

void cuda_op_attention_decode(Act *out, const Act *qkv, const Act *kcache, const Act *vcache,
                              const int *pos, int B, int maxT, int NH, int NKV, int hs) {
    if (!LC_ACT_CALL(cuda_attention_decode, act(out), act(qkv), act(kcache), act(vcache), pos, B,
                     maxT, NH, NKV, hs, stream()))
        LC_DIE("CUDA backend: attention_decode: %zu bytes of scores for maxT %d exceed the "
               "device's shared memory per block",
               cuda_attention_decode_smem(maxT), maxT);
}

void cuda_op_gelu_forward(Act *out, const Act *inp, size_t N) {
    LC_ACT_CALL(cuda_gelu_forward, act(out), act(inp), N, stream());
}

void cuda_op_gelu_backward(Act *dinp, const Act *inp, const Act *dout, size_t N) {
    LC_ACT_CALL(cuda_gelu_backward, act(dinp), act(inp), act(dout), N, stream());
}

void cuda_op_swiglu_forward(Act *out, const Act *inp, int N, int F) {
    LC_ACT_CALL(cuda_swiglu_forward, act(out), act(inp), N, F, stream());
}

void cuda_op_swiglu_backward(Act *dinp, const Act *inp, const Act *dout, int N, int F) {
    LC_ACT_CALL(cuda_swiglu_backward, act(dinp), act(inp), act(dout), N, F, stream());
}

void cuda_op_residual_forward(Act *out, const Act *a, const Act *b, size_t N) {
    LC_ACT_CALL(cuda_residual_forward, act(out), act(a), act(b), N, stream());
}

// param_act: the compute copy (of the activation type) written after the update, or NULL.
void cuda_op_adamw_update(float *param, Act *param_act, const float *grad, float *m, float *v,
                          size_t n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, float bc1, float bc2) {
    LC_ACT_CALL(cuda_adamw_update, param, act(param_act), grad, m, v, n, lr, beta1, beta2, eps,
                weight_decay, bc1, bc2, stream());
}

double cuda_op_sum_squares(const float *x, size_t n) {
    double *s = (double *)scratch((LC_SSQ_BLOCKS + 1) * sizeof(double)), host = 0.0;
    cuda_sum_squares(s + LC_SSQ_BLOCKS, s, x, n, stream());
    LC_CUDA_CHECK(cudaMemcpy(&host, s + LC_SSQ_BLOCKS, sizeof(double), cudaMemcpyDeviceToHost));
    return host;
}

void cuda_op_scale(float *x, float s, size_t n) {
    cuda_scale(x, s, n, stream());
}

// logits (N,Vp) = inv_temp x @ wte^T by cuBLASLt (the scale in the product's alpha), then the
// row statistics.
void cuda_op_classifier_forward(float *logp, float *entropy, float *lse, Act *logits, const Act *x,
                                const Act *wte, const int *targets, int N, int C, int V, int Vp,
                                float inv_temp) {
    cuda_matmul_scaled(logits, x, wte, N, C, Vp, inv_temp);
    LC_ACT_CALL(cuda_classifier_rows_forward, logp, entropy, lse, act(logits), targets, N, V, Vp,
                stream());
}

// logits overwritten with dlogits by the row kernel; then, as the matmul out = x @ wte^T with
// dout = dlogits: dx (N,C) = dlogits @ wte written, dwte (Vp,C) += dlogits^T @ x (fp32).
void cuda_op_classifier_backward(Act *dx, float *dwte, Act *logits, const Act *x, const Act *wte,
                                 const float *lse, const float *entropy, const int *targets,
                                 const float *dlogp, const float *dent, int N, int C, int V, int Vp,
                                 float inv_temp) {
    LC_ACT_CALL(cuda_classifier_rows_backward, act(logits), lse, entropy, targets, dlogp, dent, N,
                V, Vp, inv_temp, stream());
    cuda_matmul_backward(dx, dwte, NULL, logits, x, wte, N, C, Vp);
}

// One block per row picks the token on the device; only B tokens and B log-probs leave it.
void cuda_op_sample_tokens(int *token, float *logp, const Act *logits, const float *u, int B, int V,
                           int Vp, float temperature, int top_k, float top_p) {
    LC_ACT_CALL(cuda_sample_tokens, token, logp, act(logits), u, B, V, Vp, temperature, top_k,
                top_p, stream());
}

LC_CUDA_NAMESPACE_END
