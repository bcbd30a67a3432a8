// kernels/cpu/cpu.h: the CPU backend's kernels (internal to kernels/cpu/). Each is documented
// at its definition and, with shapes, at the matching member of Backend in kernels/kernels.h.
#pragma once
#include "kernels/kernels.h"
#include <cblas.h>
#include <omp.h>

void cpu_encoder_forward(float *out, const int *tokens, const int *pos, const float *wte,
                         const float *wpe, int B, int T, int C);
void cpu_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                          const int *pos, int B, int T, int C);
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C);
void cpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int N, int C);
void cpu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                        int C, int OC);
void cpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int N, int C, int OC);
void cpu_lora_forward(float *out, float *h, const float *inp, const float *a, const float *b, int N,
                      int C, int OC, int o0, int OS, int r, float scale);
void cpu_lora_backward(float *dinp, float *da, float *db, float *dh, const float *dout,
                       const float *inp, const float *h, const float *a, const float *b, int N,
                       int C, int OC, int o0, int OS, int r, float scale);
void cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                         int C, float eps);
void cpu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                          const float *weight, const float *rstd, int N, int C);
void cpu_rope_forward(float *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                      float theta);
void cpu_rope_backward(float *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                       float theta);
size_t cpu_attention_state_floats(int B, int T, int NH);
size_t cpu_attention_scratch_floats(int B, int T, int NH);
void cpu_attention_forward(float *out, float *att, const float *qkv, const int *seg, int B, int T,
                           int NH, int NKV, int hs);
void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *out,
                            const float *qkv, const float *att, const int *seg, int B, int T,
                            int NH, int NKV, int hs);
size_t cpu_flash_attention_state_floats(int B, int T, int NH);
size_t cpu_flash_attention_scratch_floats(int B, int T, int NH);
void cpu_flash_attention_forward(float *out, float *lse, const float *qkv, const int *seg, int B,
                                 int T, int NH, int NKV, int hs);
void cpu_flash_attention_backward(float *dqkv, float *D, const float *dout, const float *out,
                                  const float *qkv, const float *lse, const int *seg, int B, int T,
                                  int NH, int NKV, int hs);
void cpu_kvcache_write(float *kcache, float *vcache, const float *qkv, const int *start, int B,
                       int T, int maxT, int NH, int NKV, int hs);
void cpu_attention_decode(float *out, const float *qkv, const float *kcache, const float *vcache,
                          const int *pos, int B, int maxT, int NH, int NKV, int hs);
void cpu_swiglu_forward(float *out, const float *inp, int N, int F);
void cpu_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F);
void cpu_gelu_forward(float *out, const float *inp, size_t N);
void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);
void cpu_residual_forward(float *out, const float *a, const float *b, size_t N);
void cpu_classifier_forward(float *logp, float *entropy, float *lse, float *logits, const float *x,
                            const float *wte, const int *targets, int N, int C, int V, int Vp,
                            float inv_temp);
void cpu_classifier_backward(float *dx, float *dwte, float *logits, const float *x,
                             const float *wte, const float *lse, const float *entropy,
                             const int *targets, const float *dlogp, const float *dent, int N,
                             int C, int V, int Vp, float inv_temp);
void cpu_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, float bc1,
                      float bc2);
double cpu_sum_squares(const float *x, size_t n);
void cpu_scale(float *x, float s, size_t n);
void cpu_sample_tokens(int *token, float *logp, const float *logits, const float *u, int B, int V,
                       int Vp, float temperature, int top_k, float top_p);
