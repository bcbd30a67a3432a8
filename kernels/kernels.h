// kernels/kernels.h: the backend interface. Model, optimiser and stage code call these function
// pointers and never know whether they run on the CPU or on a GPU. The CPU backend
// (kernels/cpu/) is the reference implementation and is always built.
//
// Shape legend (row-major, outermost dimension first, as in PyTorch):
//   B  batch rows            T  time steps (sequence length) of this call
//   N  = B*T token rows      C  channels (d_model)         NH  attention (query) heads
//   hs head size (C = NH*hs) NKV key/value heads (NH % NKV == 0; NKV == NH: multi-head)
//   QKV = (NH + 2*NKV)*hs: a token's q | k | v row       F  MLP hidden width
//   V  real vocabulary size  Vp vocabulary padded to a multiple of 64 (columns V..Vp-1 unused)
//   OC output channels of a matmul          maxT  positions in a KV cache / position table
// Every pointer argument is device memory of the backend (host memory for the CPU backend).
//
// Storage types: `Act *` points at elements of the backend's activation type, act_size bytes
// each: fp32 on the CPU and with `precision: fp32`, bf16 with CUDA's `precision: bf16`. It holds
// the activations, their gradients, the logits, the KV cache and the compute copy of the
// parameters (the weights the kernels read). Only a backend reads it; the model engine carves it
// by act_size and brings values to fp32 with act_to_float. Every `float *` is fp32 in every
// precision: norm statistics, attention state, lse, log-probs, entropies, objective gradients,
// the master parameters, their gradients (dweight += ... accumulates in fp32) and the
// optimiser's moments. Kernels compute in fp32 whatever the storage.
//
// Gradient contract:
//   - parameter gradients (dweight, dbias, dwte, ...) are always ACCUMULATED (+=), so several
//     micro-batches can add into one gradient arena;
//   - activation gradients are WRITTEN (=) unless the comment says accumulated; the one
//     accumulated activation gradient is the residual stream's (layernorm_backward's dinp),
//     which is how a residual add's backward (identity into both addends) costs nothing, and
//     lora_backward's dinp, which adds the adapter's path to the frozen layer's;
//   - a parameter gradient pointer may be NULL: the parameter is frozen (LoRA trains adapters
//     over frozen weights), and the kernel skips that gradient's work entirely.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Activation storage of the backend's type (see "Storage types" above); void so that the CPU
// backend's fp32 arrays pass as they are.
typedef void Act;

typedef struct Backend {
    const char *name;
    size_t act_size; // bytes per element of Act storage: 4 (fp32) or 2 (bf16)

    // ---- memory ----------------------------------------------------------------------------
    void *(*alloc)(size_t bytes); // zero-filled; never NULL (dies naming the size)
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*to_device)(void *dst, const void *src, size_t bytes);
    void (*to_host)(void *dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes); // device to device
    // Sets the worker threads of this process's kernels when n > 0 (the CPU backend: OpenMP
    // threads, which OpenBLAS shares); returns the number in use.
    int (*threads)(int n);
    // dst (n) written = src (n) in the activation type (bf16: rounded to nearest even), and back.
    void (*act_from_float)(Act *dst, const float *src, size_t n);
    void (*act_to_float)(float *dst, const Act *src, size_t n);

    // ---- token + position embedding --------------------------------------------------------
    // out (B,T,C) written = wte[tokens[b,t]] + wpe[pos[b,t]]; tokens (B,T); pos (B,T) or NULL
    // meaning pos = t; wte (Vp,C); wpe (maxT,C), or NULL for no learned positions (RoPE).
    void (*encoder_forward)(Act *out, const int *tokens, const int *pos, const Act *wte,
                            const Act *wpe, int B, int T, int C);
    // dwte (Vp,C) += (skipped if NULL), dwpe (maxT,C) += (skipped if NULL); dout (B,T,C).
    void (*encoder_backward)(float *dwte, float *dwpe, const Act *dout, const int *tokens,
                             const int *pos, int B, int T, int C);

    // ---- layernorm -------------------------------------------------------------------------
    // out (N,C) written; mean, rstd (N) written; inp (N,C); weight, bias (C). eps = 1e-5.
    void (*layernorm_forward)(Act *out, float *mean, float *rstd, const Act *inp, const Act *weight,
                              const Act *bias, int N, int C);
    // dinp (N,C) ACCUMULATED (residual stream); dweight, dbias (C) += (each skipped if NULL);
    // dout, inp (N,C).
    void (*layernorm_backward)(Act *dinp, float *dweight, float *dbias, const Act *dout,
                               const Act *inp, const Act *weight, const float *mean,
                               const float *rstd, int N, int C);

    // ---- RMS normalisation (Llama) --------------------------------------------------------
    // out (N,C) written = inp * rstd * weight; rstd (N) written = 1/sqrt(mean_c(inp^2) + eps);
    // inp (N,C); weight (C).
    void (*rmsnorm_forward)(Act *out, float *rstd, const Act *inp, const Act *weight, int N, int C,
                            float eps);
    // dinp (N,C) ACCUMULATED (residual stream); dweight (C) += (skipped if NULL); dout, inp
    // (N,C); rstd (N).
    void (*rmsnorm_backward)(Act *dinp, float *dweight, const Act *dout, const Act *inp,
                             const Act *weight, const float *rstd, int N, int C);

    // ---- matmul with bias ------------------------------------------------------------------
    // out (N,OC) written = inp (N,C) @ weight(OC,C)^T + bias (OC); bias may be NULL.
    void (*matmul_forward)(Act *out, const Act *inp, const Act *weight, const Act *bias, int N,
                           int C, int OC);
    // dinp (N,C) written (skipped if NULL); dweight (OC,C) += (skipped if NULL); dbias (OC) +=
    // (skipped if NULL); dout (N,OC).
    void (*matmul_backward)(Act *dinp, float *dweight, float *dbias, const Act *dout,
                            const Act *inp, const Act *weight, int N, int C, int OC);

    // ---- low-rank adapter (LoRA) on a block of a linear layer's output columns ---------------
    // The adapter (a, b) of rank r adds scale * inp @ a^T @ b^T to the OS output columns
    // [o0, o0+OS) of a linear layer whose output has OC columns (a fused q|k|v or gate|up
    // projection has one block per adapter). h (N,r) written = inp (N,C) @ a (r,C)^T; out (N,OC)
    // columns [o0, o0+OS) += scale * h @ b (OS,r)^T (0 <= o0, o0 + OS <= OC).
    void (*lora_forward)(Act *out, Act *h, const Act *inp, const Act *a, const Act *b, int N, int C,
                         int OC, int o0, int OS, int r, float scale);
    // With g = dout (N,OC) columns [o0, o0+OS): dh (N,r) written = scale * g @ b; db (OS,r) +=
    // scale * g^T @ h; da (r,C) += dh^T @ inp; dinp (N,C) ACCUMULATED += dh @ a (it already
    // holds the frozen layer's input gradient). h, inp as saved by lora_forward.
    void (*lora_backward)(Act *dinp, float *da, float *db, Act *dh, const Act *dout, const Act *inp,
                          const Act *h, const Act *a, const Act *b, int N, int C, int OC, int o0,
                          int OS, int r, float scale);

    // ---- rotary position embedding (Llama) -------------------------------------------------
    // Rotate-half convention, as Hugging Face stores Llama weights: in every q and k head of
    // qkv (B,T,QKV), channel i < hs/2 pairs with i + hs/2 and (x_i, x_j) becomes
    // (x_i cos a - x_j sin a, x_j cos a + x_i sin a), a = pos[b,t] * theta^(-2i/hs) (computed
    // in fp32 as transformers does); v is untouched. In place. pos (B,T); hs even.
    void (*rope_forward)(Act *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                         float theta);
    // dqkv (B,T,QKV) rotated by -a in place on its q and k heads (the transpose: RoPE is
    // orthogonal, so its backward needs no saved input).
    void (*rope_backward)(Act *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                          float theta);

    // ---- causal self-attention, grouped-query ----------------------------------------------
    // qkv (B,T,QKV) holds per token q (NH heads) | k (NKV heads) | v (NKV heads), each head hs
    // contiguous; query head h reads key/value head h / (NH/NKV). NKV == NH is GPT-2's
    // multi-head attention (QKV = 3C), NKV == 1 multi-query.
    // seg (B,T) or NULL: query t sees key s iff s <= t and seg[b,s] == seg[b,t] (packed rows
    // and padding never leak across segments); NULL means one segment per row.
    // Floats of the state attention_forward saves for attention_backward for one call of shape
    // (B,T,NH): the CPU backend saves the softmax probabilities (B,NH,T,T); a flash-style backend
    // (CUDA, and the CPU with `attention: flash`) the per-row logsumexp (B,NH,T) of the scaled,
    // masked scores (natural log), recomputing the rest.
    size_t (*attention_state_floats)(int B, int T, int NH);
    // Floats of scratch attention_backward needs for that call (CPU: datt (B,NH,T,T); CPU flash:
    // D = rowsum(dout * out) (B,NH,T)).
    size_t (*attention_scratch_floats)(int B, int T, int NH);
    // out (B,T,C) written; state (attention_state_floats floats) written, read only by the
    // backward (CPU: softmax probabilities, 0 where masked; flash: logsumexp per query row).
    void (*attention_forward)(Act *out, float *state, const Act *qkv, const int *seg, int B, int T,
                              int NH, int NKV, int hs);
    // dqkv (B,T,QKV) written (a key/value head's gradient sums over its query heads); scratch
    // (attention_scratch_floats floats) overwritten; dout (B,T,C); out (B,T,C) the forward's output
    // (a flash-style backward needs D = rowsum(dout * out)); qkv, state, seg as in the forward.
    void (*attention_backward)(Act *dqkv, float *scratch, const Act *dout, const Act *out,
                               const Act *qkv, const float *state, const int *seg, int B, int T,
                               int NH, int NKV, int hs);

    // ---- KV cache (inference only) ---------------------------------------------------------
    // Copies the k and v of qkv (B,T,QKV) into kcache, vcache (B,maxT,NKV*hs) at positions
    // start[b] .. start[b]+T-1 (start (B) or NULL meaning 0); positions past maxT are dropped.
    void (*kvcache_write)(Act *kcache, Act *vcache, const Act *qkv, const int *start, int B, int T,
                          int maxT, int NH, int NKV, int hs);
    // One new token per row: out (B,C) written = attention of q (from qkv (B,QKV)) over the
    // cached keys/values at positions 0..pos[b] inclusive (pos (B)); the caller has written
    // this token's k, v at pos[b] with kvcache_write. Forward only: nothing to differentiate
    // at inference; its equality with attention_forward is tested.
    void (*attention_decode)(Act *out, const Act *qkv, const Act *kcache, const Act *vcache,
                             const int *pos, int B, int maxT, int NH, int NKV, int hs);

    // ---- GELU (tanh approximation, as GPT-2) -----------------------------------------------
    // out (N) written; inp (N).
    void (*gelu_forward)(Act *out, const Act *inp, size_t N);
    // dinp (N) written; inp, dout (N).
    void (*gelu_backward)(Act *dinp, const Act *inp, const Act *dout, size_t N);

    // ---- SwiGLU (Llama's MLP) --------------------------------------------------------------
    // out (N,F) written = silu(g) * u, silu(x) = x * sigmoid(x); inp (N,2F) holds per row the
    // gate g (F) then the up projection u (F).
    void (*swiglu_forward)(Act *out, const Act *inp, int N, int F);
    // dinp (N,2F) written: dg = dout * u * silu'(g), du = dout * silu(g); inp (N,2F); dout (N,F).
    void (*swiglu_backward)(Act *dinp, const Act *inp, const Act *dout, int N, int F);

    // ---- residual add ----------------------------------------------------------------------
    // out (N) written = a + b. Backward is the identity into both addends, realised by the
    // accumulate convention of the residual-stream gradient (see the contract above).
    void (*residual_forward)(Act *out, const Act *a, const Act *b, size_t N);

    // ---- output layer fused with softmax / cross-entropy -----------------------------------
    // logits (N,Vp) written = (x (N,C) @ wte (Vp,C)^T) * inv_temp; then per row, over the V real
    // columns: lse (N) = logsumexp, logp (N) = log softmax at targets[n] (0 where target < 0),
    // entropy (N) = -sum p log p (skipped if NULL). targets (N).
    void (*classifier_forward)(float *logp, float *entropy, float *lse, Act *logits, const Act *x,
                               const Act *wte, const int *targets, int N, int C, int V, int Vp,
                               float inv_temp);
    // Given dlogp (N) = dObjective/dlogp[n] and dent (N) = dObjective/dentropy[n] (or NULL):
    // logits (N,Vp) is OVERWRITTEN with dlogits; dx (N,C) written; dwte (Vp,C) += (skipped if
    // NULL: a frozen output layer). Rows with
    // dlogp = dent = 0 (masked tokens) cost no softmax work and contribute exactly zero.
    void (*classifier_backward)(Act *dx, float *dwte, Act *logits, const Act *x, const Act *wte,
                                const float *lse, const float *entropy, const int *targets,
                                const float *dlogp, const float *dent, int N, int C, int V, int Vp,
                                float inv_temp);

    // ---- optimiser and reductions ----------------------------------------------------------
    // AdamW over n elements: m, v (n) updated; param (n) updated; grad (n) read; param_act (n),
    // when not NULL, written = the updated param in the activation type (the compute copy of a
    // backend whose act_size is not 4; NULL otherwise). bc1 = 1 - beta1^t, bc2 = 1 - beta2^t
    // (bias corrections); decoupled decay lr*wd*param.
    void (*adamw_update)(float *param, Act *param_act, const float *grad, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2, float eps,
                         float weight_decay, float bc1, float bc2);
    // Sum of squares of x (n), reduced in a fixed order (deterministic for a thread count).
    double (*sum_squares)(const float *x, size_t n);
    // x (n) *= s.
    void (*scale)(float *x, float s, size_t n);

    // ---- sampling (rollouts) ---------------------------------------------------------------
    // For each row b of logits (B,Vp), over its V real columns (columns V..Vp-1 never read nor
    // chosen), with u (B) uniforms in [0,1) drawn by the caller (read only when temperature > 0;
    // may be NULL when greedy): token (B) written; logp (B) written = log softmax(z / temp) at
    // the token over all V columns, before truncation, temp = temperature (1 when greedy).
    // temperature <= 0: greedy, the argmax (lowest id on equal logits). Otherwise p = softmax(z /
    // temperature); the candidates are ordered by logit descending, id ascending on equal logits
    // (the exact probabilities' order); top_k > 0 keeps the first top_k of that order, top_p < 1
    // the shortest prefix whose mass reaches top_p (both: the shorter); the token is the smallest
    // kept id whose cumulative kept mass, summed in id order, exceeds u * (the kept mass).
    void (*sample_tokens)(int *token, float *logp, const Act *logits, const float *u, int B, int V,
                          int Vp, float temperature, int top_k, float top_p);
} Backend;

// The CPU backend: fp32, OpenMP across cores, OpenBLAS for matrix products.
const Backend *backend_cpu(void);
// The CPU backend with `attention: flash`: blocked online-softmax attention saving the logsumexp
// (B,NH,T) as state and recomputing the probabilities in the backward (no T x T buffer).
const Backend *backend_cpu_flash(void);

// How a backend computes: the recipe's `precision` and `attention` keys (docs/cuda.md).
typedef enum {
    BACKEND_PRECISION_AUTO, // the backend's own: fp32 on the CPU, bf16 on CUDA
    BACKEND_PRECISION_FP32, // fp32 everywhere (CUDA: for debugging, and parity with the CPU)
    BACKEND_PRECISION_BF16, // bf16 activations and compute weights (fp32 master weights,
                            // gradients, optimiser state, statistics); matrix products on bf16
                            // tensor cores with fp32 accumulation (CUDA)
} BackendPrecision;
typedef enum {
    BACKEND_ATTENTION_BUILTIN, // the backend's own kernels (CUDA: flash-style)
    BACKEND_ATTENTION_CUDNN,   // cuDNN's fused scaled-dot-product attention (CUDA)
    BACKEND_ATTENTION_FLASH,   // flash-style kernels, no T x T matrix: on the CPU the blocked
                               // online-softmax kernels (state: logsumexp (B,NH,T)); on CUDA
                               // the builtin kernels, which already are
} BackendAttention;
typedef struct {
    BackendPrecision precision;
    BackendAttention attention;
} BackendOptions;

// A backend by name ("cpu", "cuda") with options (NULL: the defaults); NULL if it is not built
// into this binary, cannot run here, or cannot honour the options, writing why into why (len
// bytes): not built, no usable GPU (naming the driver's error), kernels missing from this build,
// an option the backend does not have. One process uses one configuration of a backend: opening
// it again with other options reconfigures it.
const Backend *backend_open(const char *name, const BackendOptions *opts, char *why, size_t len);
// backend_open with the defaults, without the reason.
const Backend *backend_get(const char *name);

// The CUDA backend (kernels/cuda/backend_cuda.cu), only in a binary built with it (LC_HAVE_CUDA):
// on the first call it picks the device and sets up cuBLASLt; NULL with the reason in why when
// no GPU is usable or some of its entries are not implemented in this build. Never crashes.
const Backend *backend_cuda(const BackendOptions *opts, char *why, size_t len);
// The versions it was built and runs with: "CUDA runtime 13.0, driver none, cuBLASLt 13.1.0,
// cuDNN 9.19.0, sm 80,90". Needs no driver.
void backend_cuda_versions(char *buf, size_t len);
// Device memory the CUDA backend holds now (returned) and held at most (*peak), in bytes.
size_t backend_cuda_memory(size_t *peak);
// The device's name and its dense bf16 tensor-core peak in FLOP/s (0 when unknown), for MFU.
double backend_cuda_bf16_peak(char *name, size_t len);

// What `layercake version` reports about a backend.
typedef struct {
    bool built;         // compiled into this binary
    bool usable;        // backend_get would return it
    char versions[256]; // its libraries' versions ("" for the CPU backend)
    char why[1024];     // why it is not usable ("" when usable)
} BackendInfo;
void backend_info(const char *name, BackendInfo *info);
