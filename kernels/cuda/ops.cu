// kernels/cuda/ops.cu: the Backend entries that the hand-written kernels (*.cuh) implement, as
// fp32 adapters onto their launchers (shapes in kernels/kernels.h). Kernels launch on the
// context's stream; the scratch some of them need (the norms' parameter-gradient partials, the
// sum of squares' partials) is one device buffer, grown to the largest request and reused, so a
// step allocates nothing once the first step has run.
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/classifier.cuh"
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

void cuda_op_encoder_forward(float *out, const int *tokens, const int *pos, const float *wte,
                             const float *wpe, int B, int T, int C) {
    cuda_encoder_forward<float>(out, tokens, pos, wte, wpe, B, T, C, stream());
}

void cuda_op_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                              const int *pos, int B, int T, int C) {
    cuda_encoder_backward(dwte, dwpe, dout, tokens, pos, B, T, C, stream());
}

void cuda_op_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, int N, int C) {
    cuda_layernorm_forward<float>(out, mean, rstd, inp, weight, bias, N, C, stream());
}

void cuda_op_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, const float *mean,
                                const float *rstd, int N, int C) {
    float *s = (float *)scratch(cuda_norm_backward_scratch(N, C) * sizeof(float));
    cuda_layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, s, N, C, stream());
}

void cuda_op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                             int C, float eps) {
    cuda_rmsnorm_forward<float>(out, rstd, inp, weight, N, C, eps, stream());
}

void cuda_op_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C) {
    float *s = (float *)scratch(cuda_norm_backward_scratch(N, C) * sizeof(float));
    cuda_rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, s, N, C, stream());
}

void cuda_op_rope_forward(float *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                          float theta) {
    cuda_rope_forward(qkv, pos, B, T, NH, NKV, hs, theta, stream());
}

void cuda_op_rope_backward(float *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                           float theta) {
    cuda_rope_backward(dqkv, pos, B, T, NH, NKV, hs, theta, stream());
}

size_t cuda_op_attention_state_floats(int B, int T, int NH) {
    return cuda_attention_state_floats(B, T, NH);
}

size_t cuda_op_attention_scratch_floats(int B, int T, int NH) {
    return cuda_attention_scratch_floats(B, T, NH);
}

// state: the logsumexp (B,NH,T) of every query row; scratch: D = rowsum(dout * out) (B,NH,T).
void cuda_op_attention_forward(float *out, float *state, const float *qkv, const int *seg, int B,
                               int T, int NH, int NKV, int hs) {
    if (!cuda_attention_forward(out, state, qkv, seg, B, T, NH, NKV, hs, stream()))
        LC_DIE("CUDA backend: attention_forward: head size %d exceeds %d, or its tiles exceed the "
               "device's shared memory per block",
               hs, LC_ATT_MAX_HS);
}

void cuda_op_attention_backward(float *dqkv, float *scratch, const float *dout, const float *out,
                                const float *qkv, const float *state, const int *seg, int B, int T,
                                int NH, int NKV, int hs) {
    if (!cuda_attention_backward(dqkv, scratch, dout, out, qkv, state, seg, B, T, NH, NKV, hs,
                                 stream()))
        LC_DIE("CUDA backend: attention_backward: head size %d exceeds %d, or its tiles exceed the "
               "device's shared memory per block",
               hs, LC_ATT_MAX_HS);
}

// `attention: cudnn`: cuDNN's fused attention (attention_cudnn.cu) keeps the same state (the
// logsumexp, B*NH*T) and needs no scratch of the Backend's.
void cuda_op_cudnn_attention_backward(float *dqkv, float *scratch, const float *dout,
                                      const float *out, const float *qkv, const float *state,
                                      const int *seg, int B, int T, int NH, int NKV, int hs) {
    (void)scratch;
    cuda_cudnn_attention_backward(dqkv, dout, out, qkv, state, seg, B, T, NH, NKV, hs);
}

void cuda_op_kvcache_write(float *kcache, float *vcache, const float *qkv, const int *start, int B,
                           int T, int maxT, int NH, int NKV, int hs) {
    cuda_kvcache_write(kcache, vcache, qkv, start, B, T, maxT, NH, NKV, hs, stream());
}

void cuda_op_attention_decode(float *out, const float *qkv, const float *kcache,
                              const float *vcache, const int *pos, int B, int maxT, int NH, int NKV,
                              int hs) {
    if (!cuda_attention_decode(out, qkv, kcache, vcache, pos, B, maxT, NH, NKV, hs, stream()))
        LC_DIE("CUDA backend: attention_decode: %zu bytes of scores for maxT %d exceed the "
               "device's shared memory per block",
               cuda_attention_decode_smem(maxT), maxT);
}

void cuda_op_gelu_forward(float *out, const float *inp, size_t N) {
    cuda_gelu_forward<float>(out, inp, N, stream());
}

void cuda_op_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    cuda_gelu_backward<float>(dinp, inp, dout, N, stream());
}

void cuda_op_swiglu_forward(float *out, const float *inp, int N, int F) {
    cuda_swiglu_forward<float>(out, inp, N, F, stream());
}

void cuda_op_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F) {
    cuda_swiglu_backward<float>(dinp, inp, dout, N, F, stream());
}

void cuda_op_residual_forward(float *out, const float *a, const float *b, size_t N) {
    cuda_residual_forward<float>(out, a, b, N, stream());
}

void cuda_op_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                          float beta1, float beta2, float eps, float weight_decay, float bc1,
                          float bc2) {
    cuda_adamw_update(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2,
                      stream());
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

// logits (N,Vp) = inv_temp x @ wte^T by cuBLASLt (then scaled in place unless inv_temp is 1),
// then the row statistics.
void cuda_op_classifier_forward(float *logp, float *entropy, float *lse, float *logits,
                                const float *x, const float *wte, const int *targets, int N, int C,
                                int V, int Vp, float inv_temp) {
    cuda_matmul_forward(logits, x, wte, NULL, N, C, Vp);
    if (inv_temp != 1.0f) cuda_scale(logits, inv_temp, (size_t)N * Vp, stream());
    cuda_classifier_rows_forward(logp, entropy, lse, logits, targets, N, V, Vp, stream());
}

// logits overwritten with dlogits by the row kernel; then, as the matmul out = x @ wte^T with
// dout = dlogits: dx (N,C) = dlogits @ wte written, dwte (Vp,C) += dlogits^T @ x.
void cuda_op_classifier_backward(float *dx, float *dwte, float *logits, const float *x,
                                 const float *wte, const float *lse, const float *entropy,
                                 const int *targets, const float *dlogp, const float *dent, int N,
                                 int C, int V, int Vp, float inv_temp) {
    cuda_classifier_rows_backward(logits, lse, entropy, targets, dlogp, dent, N, V, Vp, inv_temp,
                                  stream());
    cuda_matmul_backward(dx, dwte, NULL, logits, x, wte, N, C, Vp);
}

// One block per row picks the token on the device; only B tokens and B log-probs leave it.
void cuda_op_sample_tokens(int *token, float *logp, const float *logits, const float *u, int B,
                           int V, int Vp, float temperature, int top_k, float top_p) {
    cuda_sample_tokens(token, logp, logits, u, B, V, Vp, temperature, top_k, top_p, stream());
}

LC_CUDA_NAMESPACE_END
