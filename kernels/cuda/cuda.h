// kernels/cuda/cuda.h: internal declarations of the CUDA backend (host side in backend_cuda.cu,
// kernels in the .cuh headers beside it). Included only by CUDA translation units; the rest of
// layercake sees the backend through kernels/kernels.h (backend_cuda, backend_info).
#pragma once
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __cplusplus
extern "C" {
#endif
#include "common/check.h"
#include "kernels/kernels.h"
#ifdef __cplusplus
}
#endif

// The backend's C++ functions (these declarations and their definitions in backend_cuda.cu and
// ops.cu) live in LC_CUDA_NAMESPACE: the global namespace for nvcc, `lc_emu` when the emulation
// harness compiles the same files with the host compiler (tests/cuda_emu/cuda_shims.h), so an
// emulated backend and the real one can be linked into one test binary.
#ifdef LC_CUDA_EMULATED
#define LC_CUDA_NAMESPACE_BEGIN namespace lc_emu {
#define LC_CUDA_NAMESPACE_END   }
#define LC_CUDA_USE_NAMESPACE   using namespace lc_emu;
#else
#define LC_CUDA_NAMESPACE_BEGIN
#define LC_CUDA_NAMESPACE_END
#define LC_CUDA_USE_NAMESPACE
#endif

// Dies naming the failed CUDA runtime call, its error and the call site.
#define LC_CUDA_CHECK(call)                                                                        \
    do {                                                                                           \
        cudaError_t lc_err_ = (call);                                                              \
        if (lc_err_ != cudaSuccess)                                                                \
            LC_DIE("CUDA backend: %s: %s (%s)", #call, cudaGetErrorString(lc_err_),                \
                   cudaGetErrorName(lc_err_));                                                     \
    } while (0)

// Dies naming the failed cuBLAS(Lt) call and its status.
#define LC_CUBLAS_CHECK(call)                                                                      \
    do {                                                                                           \
        cublasStatus_t lc_st_ = (call);                                                            \
        if (lc_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
            LC_DIE("CUDA backend: %s: cuBLAS status %d", #call, (int)lc_st_);                      \
    } while (0)

// Dies naming the failed cuDNN call, its status string and cuDNN's last error message (LC_DIE
// adds file:line).
#define LC_CUDNN_CHECK(call)                                                                       \
    do {                                                                                           \
        cudnnStatus_t lc_cst_ = (call);                                                            \
        if (lc_cst_ != CUDNN_STATUS_SUCCESS) {                                                     \
            char lc_cmsg_[512];                                                                    \
            cudnnGetLastErrorString(lc_cmsg_, sizeof(lc_cmsg_));                                   \
            LC_DIE("CUDA backend: %s: %s (cuDNN status %d): %s", #call,                            \
                   cudnnGetErrorString(lc_cst_), (int)lc_cst_, lc_cmsg_);                          \
        }                                                                                          \
    } while (0)

LC_CUDA_NAMESPACE_BEGIN

// The state the backend sets up once, when backend_cuda() first succeeds: the device, the
// cuBLASLt handle and its one workspace. Kernels launch on `stream`.
typedef struct {
    int device;
    cudaStream_t stream; // 0: the legacy default stream, which cudaMemcpy orders against
    cublasLtHandle_t lt;
    void *workspace; // cuBLASLt's workspace, LC_CUDA_WORKSPACE bytes
    float *ones;     // ones_len floats of 1.0f (bias gradients as a matrix-vector product)
    size_t ones_len;
    bool bf16;                   // precision bf16: Act is __nv_bfloat16 (else float)
    cublasComputeType_t compute; // the matmuls': CUBLAS_COMPUTE_32F (fp32 accumulation)
    size_t bytes, peak_bytes;    // device memory the backend holds now, and at most
    char name[256];              // the device's name

} CudaContext;

#define LC_CUDA_WORKSPACE ((size_t)32 << 20)

// The context; valid only after backend_cuda() returned the backend.
CudaContext *cuda_context(void);

// ---- the cuBLASLt matrix products (backend_cuda.cu), as matmul_forward/backward ---------------
// Act is the context's activation type (bf16 when ctx->bf16, else fp32); A and B of every
// product are Act, accumulation is fp32 (ctx->compute), parameter gradients are fp32.
// out (N,OC) = inp (N,C) @ weight (OC,C)^T (+ bias (OC) when not NULL).
void cuda_matmul_forward(Act *out, const Act *inp, const Act *weight, const Act *bias, int N, int C,
                         int OC);
// out (N,OC) = alpha * inp (N,C) @ weight (OC,C)^T, no bias (the classifier's scaled logits).
void cuda_matmul_scaled(Act *out, const Act *inp, const Act *weight, int N, int C, int OC,
                        float alpha);
// dinp (N,C) written (when not NULL); dweight (OC,C) += (fp32); dbias (OC) += (fp32, when not
// NULL); dout (N,OC).
void cuda_matmul_backward(Act *dinp, float *dweight, float *dbias, const Act *dout, const Act *inp,
                          const Act *weight, int N, int C, int OC);
void cuda_lora_forward(Act *out, Act *h, const Act *inp, const Act *a, const Act *b, int N, int C,
                       int OC, int o0, int OS, int r, float scale);
void cuda_lora_backward(Act *dinp, float *da, float *db, Act *dh, const Act *dout, const Act *inp,
                        const Act *h, const Act *a, const Act *b, int N, int C, int OC, int o0,
                        int OS, int r, float scale);

// ---- the kernels' Backend entries (ops.cu): shapes and types as in kernels/kernels.h; each
// dispatches on ctx->bf16 to the kernels' __nv_bfloat16 or float instance ---------------------
void cuda_op_act_from_float(Act *dst, const float *src, size_t n);
void cuda_op_act_to_float(float *dst, const Act *src, size_t n);
void cuda_op_encoder_forward(Act *out, const int *tokens, const int *pos, const Act *wte,
                             const Act *wpe, int B, int T, int C);
void cuda_op_encoder_backward(float *dwte, float *dwpe, const Act *dout, const int *tokens,
                              const int *pos, int B, int T, int C);
void cuda_op_layernorm_forward(Act *out, float *mean, float *rstd, const Act *inp,
                               const Act *weight, const Act *bias, int N, int C);
void cuda_op_layernorm_backward(Act *dinp, float *dweight, float *dbias, const Act *dout,
                                const Act *inp, const Act *weight, const float *mean,
                                const float *rstd, int N, int C);
void cuda_op_rmsnorm_forward(Act *out, float *rstd, const Act *inp, const Act *weight, int N, int C,
                             float eps);
void cuda_op_rmsnorm_backward(Act *dinp, float *dweight, const Act *dout, const Act *inp,
                              const Act *weight, const float *rstd, int N, int C);
void cuda_op_rope_forward(Act *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                          float theta);
void cuda_op_rope_backward(Act *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                           float theta);
size_t cuda_op_attention_state_floats(int B, int T, int NH);
size_t cuda_op_attention_scratch_floats(int B, int T, int NH);
void cuda_op_attention_forward(Act *out, float *state, const Act *qkv, const int *seg, int B, int T,
                               int NH, int NKV, int hs);
void cuda_op_attention_backward(Act *dqkv, float *scratch, const Act *dout, const Act *out,
                                const Act *qkv, const float *state, const int *seg, int B, int T,
                                int NH, int NKV, int hs);
void cuda_op_cudnn_attention_backward(Act *dqkv, float *scratch, const Act *dout, const Act *out,
                                      const Act *qkv, const float *state, const int *seg, int B,
                                      int T, int NH, int NKV, int hs);
void cuda_op_kvcache_write(Act *kcache, Act *vcache, const Act *qkv, const int *start, int B, int T,
                           int maxT, int NH, int NKV, int hs);
void cuda_op_attention_decode(Act *out, const Act *qkv, const Act *kcache, const Act *vcache,
                              const int *pos, int B, int maxT, int NH, int NKV, int hs);
void cuda_op_gelu_forward(Act *out, const Act *inp, size_t N);
void cuda_op_gelu_backward(Act *dinp, const Act *inp, const Act *dout, size_t N);
void cuda_op_swiglu_forward(Act *out, const Act *inp, int N, int F);
void cuda_op_swiglu_backward(Act *dinp, const Act *inp, const Act *dout, int N, int F);
void cuda_op_residual_forward(Act *out, const Act *a, const Act *b, size_t N);
void cuda_op_adamw_update(float *param, Act *param_act, const float *grad, float *m, float *v,
                          size_t n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, float bc1, float bc2);
double cuda_op_sum_squares(const float *x, size_t n);
void cuda_op_scale(float *x, float s, size_t n);
void cuda_op_classifier_forward(float *logp, float *entropy, float *lse, Act *logits, const Act *x,
                                const Act *wte, const int *targets, int N, int C, int V, int Vp,
                                float inv_temp);
void cuda_op_classifier_backward(Act *dx, float *dwte, Act *logits, const Act *x, const Act *wte,
                                 const float *lse, const float *entropy, const int *targets,
                                 const float *dlogp, const float *dent, int N, int C, int V, int Vp,
                                 float inv_temp);
void cuda_op_sample_tokens(int *token, float *logp, const Act *logits, const float *u, int B, int V,
                           int Vp, float temperature, int top_k, float top_p);

// ---- cuDNN fused attention (attention_cudnn.cu), the recipe's `attention: cudnn` ----------------
// Same contract as the Backend's attention entries (kernels/kernels.h), through cuDNN's fused
// SDPA: out (B,T,C) written; state (B,NH,T) written = per-row logsumexp of the scaled, masked
// scores (cuDNN's "stats", natural log). hs a multiple of 8, at most 256 (else it dies saying
// so). Q/K/V/O/dO go through bf16 (docs/cuda.md).
void cuda_cudnn_attention_forward(Act *out, float *state, const Act *qkv, const int *seg, int B,
                                  int T, int NH, int NKV, int hs);
// dqkv (B,T,(NH+2NKV)hs) written; out is the forward's output; state as the forward wrote it.
void cuda_cudnn_attention_backward(Act *dqkv, const Act *dout, const Act *out, const Act *qkv,
                                   const float *state, const int *seg, int B, int T, int NH,
                                   int NKV, int hs);

LC_CUDA_NAMESPACE_END
