// kernels/cuda/cuda.h: internal declarations of the CUDA backend (host side in backend_cuda.cu,
// kernels in the .cuh headers beside it). Included only by CUDA translation units; the rest of
// layercake sees the backend through kernels/kernels.h (backend_cuda, backend_info).
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __cplusplus
extern "C" {
#endif
#include "common/check.h"
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
    cublasComputeType_t compute; // the matmuls': CUBLAS_COMPUTE_32F_FAST_16BF (bf16) or _32F
    size_t bytes, peak_bytes;    // device memory the backend holds now, and at most
    char name[256];              // the device's name

} CudaContext;

#define LC_CUDA_WORKSPACE ((size_t)32 << 20)

// The context; valid only after backend_cuda() returned the backend.
CudaContext *cuda_context(void);

// ---- the cuBLASLt matrix products (backend_cuda.cu), fp32, as matmul_forward/backward ---------
// out (N,OC) = inp (N,C) @ weight (OC,C)^T (+ bias (OC) when not NULL).
void cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC);
// dinp (N,C) written (when not NULL); dweight (OC,C) +=; dbias (OC) += (when not NULL).
void cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC);

// ---- the kernels' Backend entries (ops.cu): fp32, shapes as in kernels/kernels.h ----------------
void cuda_op_encoder_forward(float *out, const int *tokens, const int *pos, const float *wte,
                             const float *wpe, int B, int T, int C);
void cuda_op_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                              const int *pos, int B, int T, int C);
void cuda_op_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, int N, int C);
void cuda_op_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, const float *mean,
                                const float *rstd, int N, int C);
void cuda_op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                             int C, float eps);
void cuda_op_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C);
void cuda_op_rope_forward(float *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                          float theta);
void cuda_op_rope_backward(float *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                           float theta);
size_t cuda_op_attention_state_floats(int B, int T, int NH);
size_t cuda_op_attention_scratch_floats(int B, int T, int NH);
void cuda_op_attention_forward(float *out, float *state, const float *qkv, const int *seg, int B,
                               int T, int NH, int NKV, int hs);
void cuda_op_attention_backward(float *dqkv, float *scratch, const float *dout, const float *out,
                                const float *qkv, const float *state, const int *seg, int B, int T,
                                int NH, int NKV, int hs);
void cuda_op_kvcache_write(float *kcache, float *vcache, const float *qkv, const int *start, int B,
                           int T, int maxT, int NH, int NKV, int hs);
void cuda_op_cudnn_attention_backward(float *dqkv, float *scratch, const float *dout,
                                      const float *out, const float *qkv, const float *state,
                                      const int *seg, int B, int T, int NH, int NKV, int hs);
void cuda_op_attention_decode(float *out, const float *qkv, const float *kcache,
                              const float *vcache, const int *pos, int B, int maxT, int NH, int NKV,
                              int hs);
void cuda_op_gelu_forward(float *out, const float *inp, size_t N);
void cuda_op_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);
void cuda_op_swiglu_forward(float *out, const float *inp, int N, int F);
void cuda_op_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F);
void cuda_op_residual_forward(float *out, const float *a, const float *b, size_t N);
void cuda_op_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                          float beta1, float beta2, float eps, float weight_decay, float bc1,
                          float bc2);
double cuda_op_sum_squares(const float *x, size_t n);
void cuda_op_scale(float *x, float s, size_t n);
void cuda_op_classifier_forward(float *logp, float *entropy, float *lse, float *logits,
                                const float *x, const float *wte, const int *targets, int N, int C,
                                int V, int Vp, float inv_temp);
void cuda_op_classifier_backward(float *dx, float *dwte, float *logits, const float *x,
                                 const float *wte, const float *lse, const float *entropy,
                                 const int *targets, const float *dlogp, const float *dent, int N,
                                 int C, int V, int Vp, float inv_temp);
void cuda_op_sample_tokens(int *token, float *logp, const float *logits, const float *u, int B,
                           int V, int Vp, float temperature, int top_k, float top_p);

// ---- cuDNN fused attention (attention_cudnn.cu), the recipe's `attention: cudnn` ----------------
// Same contract as the Backend's attention entries (kernels/kernels.h), through cuDNN's fused
// SDPA: out (B,T,C) written; state (B,NH,T) written = per-row logsumexp of the scaled, masked
// scores (cuDNN's "stats", natural log). hs a multiple of 8, at most 256 (else it dies saying
// so). Q/K/V/O/dO go through bf16 (docs/cuda.md).
void cuda_cudnn_attention_forward(float *out, float *state, const float *qkv, const int *seg, int B,
                                  int T, int NH, int NKV, int hs);
// dqkv (B,T,(NH+2NKV)hs) written; out is the forward's output; state as the forward wrote it.
void cuda_cudnn_attention_backward(float *dqkv, const float *dout, const float *out,
                                   const float *qkv, const float *state, const int *seg, int B,
                                   int T, int NH, int NKV, int hs);

LC_CUDA_NAMESPACE_END
