// model/model.h: the transformer engine (GPT-2 and Llama families) over the backend interface.
// Parameters are one arena described by a tensor table; gradients mirror it; activations are one
// arena sized once for the largest (batch, sequence) the caller will use. Shape legend as in
// kernels/kernels.h (L = n_layer).
//
// Heads: the language-model head (wte, or lmw when untied) gives per-token log-probs and entropies;
// the scalar head (a C -> 1 projection of the final norm) gives a value per token, which reward
// models read at the last real token and value models read at every response token.
#pragma once
#include "kernels/batch.h"
#include "kernels/kernels.h"
#include "kernels/tensor.h"
#include <stdbool.h>
#include <stdint.h>

// A family is a configuration of one engine: which normalisation, position encoding and MLP
// its blocks use, and which tensors of the table (MODEL_TENSORS in model.c) it has. Adding a
// family adds a row to the family table and the ops it needs.
typedef enum {
    MODEL_FAMILY_GPT2,  // LayerNorm, learned positions, GELU MLP, biases everywhere, tied output
    MODEL_FAMILY_LLAMA, // RMSNorm, RoPE, SwiGLU MLP, grouped-query attention, no biases (but
                        // optional q/k/v biases: Qwen2), tied or untied output
    MODEL_FAMILY_COUNT
} ModelFamily;

typedef struct {
    ModelFamily family;
    int n_layer;      // L
    int n_head;       // NH query heads
    int n_kv_head;    // NKV key/value heads, dividing NH (GPT-2: NH)
    int d_model;      // C, a multiple of NH
    int d_ff;         // F: MLP hidden width (GPT-2: 4C)
    int vocab_size;   // V
    int max_seq_len;  // maxT: positions the model has (rows of GPT-2's position table)
    float norm_eps;   // RMSNorm epsilon (GPT-2's LayerNorm: 1e-5)
    float rope_theta; // RoPE base (Llama)
    bool qkv_bias;    // q/k/v projections have a bias (GPT-2: always; Qwen2)
    bool tied;        // the output layer is wte (GPT-2: always)
} ModelConfig;

// The family's defaults for the shape given: n_kv_head = n_head, d_ff = 4C (GPT-2) or the
// Llama rule (8C/3 rounded up to a multiple of 32), norm_eps 1e-5, rope_theta 10000, tied
// output, q/k/v bias as the family has it.
ModelConfig model_config_default(ModelFamily family, int n_layer, int n_head, int d_model,
                                 int vocab_size, int max_seq_len);
// Field by field (the struct has padding, so never memcmp).
bool model_config_equal(const ModelConfig *a, const ModelConfig *b);
const char *model_family_name(ModelFamily f);             // "gpt2", "llama"
int model_family_parse(const char *name, ModelFamily *f); // 0, or -1 if unknown

enum { MODEL_HEAD_LM = 1, MODEL_HEAD_SCALAR = 2 };

// Tensors a parameter table can hold: the 19 of the families and 14 adapters.
#define MODEL_MAX_TENSORS 40

// ---- low-rank adapters (LoRA) -----------------------------------------------------------------
// An adapter of rank r on a linear layer W (out, in) adds (alpha / r) * x A^T B^T to its output:
// A (r, in), B (out, r); the base weights stay frozen and only A and B (and a scalar head, which
// is always trained in full) take gradients and optimiser state. The fused projections carry one
// adapter per part: q, k and v are row blocks of qkvw, gate and up of fcw (SwiGLU), so every
// target is the one Hugging Face names (q_proj, ..., down_proj; GPT-2's c_attn is q|k|v).
typedef enum {
    LORA_Q,    // query rows of qkvw: in C, out NH*hs
    LORA_K,    // key rows of qkvw: in C, out NKV*hs
    LORA_V,    // value rows of qkvw: in C, out NKV*hs
    LORA_O,    // attprojw: in C, out C
    LORA_GATE, // gate rows of fcw (SwiGLU only): in C, out F
    LORA_UP,   // up rows of fcw (SwiGLU), or fcw (GELU): in C, out F
    LORA_DOWN, // fcprojw: in F, out C
    LORA_TARGETS
} LoraTarget;

typedef enum {
    LORA_INIT_KAIMING,  // A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's default), B = 0
    LORA_INIT_GAUSSIAN, // A ~ N(0, 1/r^2) (PEFT's "gaussian"), B = 0
} LoraInit;

typedef struct {
    int rank;         // r; 0: no adapters
    float alpha;      // the adapters' output is scaled by alpha / r
    unsigned targets; // a bit (1u << LoraTarget) per adapted projection
    LoraInit init;
} LoraConfig;

const char *lora_target_name(LoraTarget t);             // "q", "k", "v", "o", "gate", "up", "down"
int lora_target_parse(const char *name, LoraTarget *t); // 0, or -1 if unknown
// A comma-separated list of names ("q,v") into target bits; 0, or -1 with the first unknown name
// copied into bad (badlen bytes).
int lora_targets_parse(const char *list, unsigned *targets, char *bad, size_t badlen);
// NULL if c suits the family, else a static message naming the problem (gate on GPT-2, ...).
const char *lora_config_check(const LoraConfig *c, const ModelConfig *cfg);

typedef enum {
    MODEL_TRAIN, // keeps every layer's activations (see ModelRecompute) and has gradient arenas
    MODEL_INFER  // one layer's activations reused by all layers; no gradients
} ModelMode;

// Activation recomputation of a MODEL_TRAIN model: which per-layer activations the forward keeps
// for the backward, and which get one layer's room and are recomputed by the backward. The
// gradients do not change (the same kernels run on the same inputs).
typedef enum {
    MODEL_RECOMPUTE_NONE,      // every layer's activations kept
    MODEL_RECOMPUTE_ATTENTION, // atty and att (the attention's output and state) recomputed
                               // from the saved qkv before the attention projection's backward
    MODEL_RECOMPUTE_LAYER      // only each layer's input kept (encoded, residual3); the backward
                               // re-runs each layer's forward before its backward
} ModelRecompute;

// Parameter tensors, in table order; a tensor the family or configuration lacks is NULL.
// Per-layer tensors are stacked along a leading L. QKV = (NH + 2*NKV)*hs; FC = F (GELU) or
// 2F (SwiGLU: gate rows then up rows).
typedef struct {
    float *wte;      // (Vp, C) token embedding; rows V..Vp-1 zero
    float *wpe;      // (maxT, C) position embedding (GPT-2)
    float *ln1w;     // (L, C) norm gain before attention
    float *ln1b;     // (L, C) (GPT-2)
    float *qkvw;     // (L, QKV, C)
    float *qkvb;     // (L, QKV) (GPT-2; Llama with qkv_bias)
    float *attprojw; // (L, C, C)
    float *attprojb; // (L, C) (GPT-2)
    float *ln2w;     // (L, C) norm gain before the MLP
    float *ln2b;     // (L, C) (GPT-2)
    float *fcw;      // (L, FC, C)
    float *fcb;      // (L, FC) (GPT-2)
    float *fcprojw;  // (L, C, F)
    float *fcprojb;  // (L, C) (GPT-2)
    float *lnfw;     // (C) final norm gain
    float *lnfb;     // (C) (GPT-2)
    float *lmw;      // (Vp, C) untied output layer; NULL when tied to wte
    float *headw;    // (1, C) scalar head weight; NULL without MODEL_HEAD_SCALAR
    float *headb;    // (1) scalar head bias; NULL without MODEL_HEAD_SCALAR
    // adapters (NULL without LoRA or for a target not adapted); r = the LoRA rank
    float *lora_q_a, *lora_q_b;       // (L, r, C), (L, NH*hs, r)
    float *lora_k_a, *lora_k_b;       // (L, r, C), (L, NKV*hs, r)
    float *lora_v_a, *lora_v_b;       // (L, r, C), (L, NKV*hs, r)
    float *lora_o_a, *lora_o_b;       // (L, r, C), (L, C, r)
    float *lora_gate_a, *lora_gate_b; // (L, r, C), (L, F, r)
    float *lora_up_a, *lora_up_b;     // (L, r, C), (L, F, r)
    float *lora_down_a, *lora_down_b; // (L, r, F), (L, C, r)
} ModelParams;

// The weights as the kernels read them (the same fields as ModelParams), in the backend's
// activation type (kernels/kernels.h, "Storage types"): with an fp32 backend these point at the
// master parameters themselves; with bf16 at a copy (Model.weights_mem) that every optimiser step
// and model_weights_changed refresh.
typedef struct {
    Act *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb;
    Act *fcprojw, *fcprojb, *lnfw, *lnfb, *lmw, *headw, *headb;
    Act *lora_q_a, *lora_q_b, *lora_k_a, *lora_k_b, *lora_v_a, *lora_v_b, *lora_o_a, *lora_o_b;
    Act *lora_gate_a, *lora_gate_b, *lora_up_a, *lora_up_b, *lora_down_a, *lora_down_b;
} ModelWeights;

// Activations of one forward pass, carved from one arena. In MODEL_INFER mode every (L, ...)
// tensor has room for one layer and all layers reuse it; in MODEL_TRAIN mode the tensors that
// Model.recompute recomputes (atty and att; or all but residual3) have room for one layer.
typedef struct {
    // in the activation type (Act: fp32 or bf16, Backend.act_size bytes per element)
    Act *encoded;   // (B,T,C)
    Act *ln1;       // (L,B,T,C) normalised input of the attention
    Act *qkv;       // (L,B,T,QKV) q | k | v, q and k rotated when the family uses RoPE
    Act *atty;      // (L,B,T,C) attention output before the projection
    Act *attproj;   // (L,B,T,C)
    Act *residual2; // (L,B,T,C) residual stream after attention
    Act *ln2;       // (L,B,T,C)
    Act *fch;       // (L,B,T,FC) MLP hidden before the activation
    Act *fch_act;   // (L,B,T,F) after GELU or SwiGLU
    Act *fcproj;    // (L,B,T,C)
    Act *residual3; // (L,B,T,C) residual stream after the MLP
    Act *lnf;       // (B,T,C)
    Act *logits;    // (B,T,Vp) logits, overwritten by dlogits in the backward
    Act *head;      // (B,T) scalar head output before it is widened into values
    Act *lora_h;    // (L, nt, B,T, r) each adapter's input times A^T (nt: adapted targets)
    // fp32
    float *ln1_mean; // (L,B,T) (LayerNorm only)
    float *ln1_rstd; // (L,B,T)
    float *att;      // (L, attention_state_floats) attention state (CPU: probabilities)
    float *ln2_mean; // (L,B,T) (LayerNorm only)
    float *ln2_rstd; // (L,B,T)
    float *lnf_mean; // (B,T) (LayerNorm only)
    float *lnf_rstd; // (B,T)
    float *lse;      // (B,T) log-sum-exp of each row of logits
    float *logp;     // (B,T) log-prob of each target
    float *entropy;  // (B,T)
    float *values;   // (B,T) scalar head output
    // backward scratch (MODEL_TRAIN only); activation gradients in the activation type
    Act *dres;      // (B,T,C) gradient of the residual stream (accumulated)
    Act *dln;       // (B,T,C) gradient of a norm output
    Act *datty;     // (B,T,C) gradient of the attention output
    Act *dqkv;      // (B,T,QKV)
    Act *dfch_act;  // (B,T,F) gradient of the MLP activation's output
    Act *dfch;      // (B,T,FC) gradient of the MLP hidden (after the activation, then before)
    Act *dhead;     // (B,T) dvalues in the activation type
    Act *dlora_h;   // (B,T,r) an adapter's gradient w.r.t. lora_h
    float *datt;    // (attention_scratch_floats) attention backward scratch
    float *dlogp;   // (B,T) objective gradient w.r.t. logp
    float *dent;    // (B,T) objective gradient w.r.t. entropy
    float *dvalues; // (B,T) objective gradient w.r.t. values
    // the batch on the device
    int *tokens;  // (B,T)
    int *targets; // (B,T)
    int *pos;     // (B,T)
    int *seg;     // (B,T)
} ModelActs;

typedef struct {
    ModelConfig cfg;
    int Vp; // vocab padded to a multiple of 64
    int heads;
    ModelMode mode;
    ModelRecompute recompute; // MODEL_RECOMPUTE_NONE unless model_set_recompute changed it
    const Backend *be;
    int hs, qkv_dim, fc_dim; // head size C/NH; QKV = (NH+2*NKV)*hs; FC = F or 2F (SwiGLU)

    // Parameters. The table lists every tensor; its entries from first_trained on are trained
    // (all of them, unless LoRA freezes the base: then the scalar head and the adapters), the
    // ones before are frozen. Trained tensors live in params_mem (the arena the optimiser, the
    // gradients and data parallelism see, described by train_table), frozen ones in frozen_mem.
    TensorTable table;                        // every parameter (names, shapes, offsets)
    TensorInfo table_info[MODEL_MAX_TENSORS]; // storage for table.info
    int slot[MODEL_MAX_TENSORS];              // slot[i]: the ModelParams field of table entry i
    LoraConfig lora;                          // the adapters (rank 0: none)
    bool adapters_off;       // forward without the adapters: the base model (the reference)
    int first_trained;       // table index of the first trained tensor
    size_t frozen_numel;     // elements of the frozen tensors (table offset of first_trained)
    TensorTable train_table; // the trained tensors, offsets from the start of params_mem
    TensorInfo train_info[MODEL_MAX_TENSORS]; // storage for train_table.info
    float *params_mem;         // (table.numel - frozen_numel) trained parameters: fp32 masters
    float *frozen_mem;         // (frozen_numel) frozen parameters; NULL when none
    bool owns_params;          // false for a view sharing another model's parameters
    bool owns_frozen;          // false when frozen_mem is another model's (an adapter view)
    float *grads_mem;          // (table.numel - frozen_numel) fp32, allocated by the first
                               // model_zero_grad or backward; NULL until then and in MODEL_INFER
    ModelParams params, grads; // pointers into the arenas (grads: NULL for frozen tensors)
    Act *weights_mem;          // compute copy of params_mem when act_size != 4, else NULL
    Act *frozen_weights_mem;   // compute copy of frozen_mem when act_size != 4, else NULL
    ModelWeights w;            // what the kernels read: into the copies, or the fp32 arenas

    int max_B, max_T; // the largest batch the activation arena holds
    float *acts_mem;  // activation arena
    size_t acts_bytes;
    ModelActs acts;

    // the last forward pass
    int B, T;
    float inv_temp;
    const Batch *batch;  // the caller keeps it alive until the backward
    float *host_logp;    // (max_B*max_T) host copy of acts.logp
    float *host_entropy; // (max_B*max_T)
    float *host_values;  // (max_B*max_T)
    float *host_scratch; // (max_B*max_T) objective gradients staged for the device
} Model;

// Vocabulary padded to a multiple of 64.
int model_padded_vocab(int vocab_size);

// Number of parameters of a configuration with the given heads (what model_create allocates).
size_t model_param_count(const ModelConfig *cfg, int heads);

// The output layer's weights as the kernels read them: lmw, or wte when tied.
const Act *model_output_weight(const Model *m);

// After the master parameters (params_mem) were written other than by adamw_step with
// weights_mem (a load, an initialisation, a copy): refreshes the compute copy. A no-op when the
// kernels read the master parameters (act_size 4).
void model_weights_changed(Model *m);

// The address of element i of an Act array of the model's backend.
Act *model_act_at(const Model *m, Act *base, size_t i);

// Copies rows*Vp logits of the last forward to host memory as fp32.
void model_logits_to_host(const Model *m, float *dst, size_t rows);

// Checks a configuration; returns NULL if it is valid, else a static message naming the field.
const char *model_config_check(const ModelConfig *cfg);

// Allocates a model with the given heads (MODEL_HEAD_* flags) whose activations hold up to
// max_B rows of max_T tokens (max_T <= cfg.max_seq_len). Weights are zero until
// model_init_weights or a load.
Model *model_create(const Backend *be, ModelConfig cfg, int heads, ModelMode mode, int max_B,
                    int max_T);
void model_free(Model *m);

// Chooses what a MODEL_TRAIN model recomputes in the backward: frees the activation arena and
// lays it out again for the mode (acts_bytes follows). Call it between steps, not between a
// forward and its backward. A no-op for a MODEL_INFER model.
void model_set_recompute(Model *m, ModelRecompute r);

// A model in the given mode with its own activation arena (max_B x max_T) that shares src's
// parameter arena: sampling from a policy that is being trained, without copying its weights.
// src must outlive the view.
Model *model_create_view(const Model *src, ModelMode mode, int max_B, int max_T);

// GPT-2 initialisation from a seed, for every family: weights N(0, 0.02), residual projections
// (attprojw, fcprojw) N(0, 0.02/sqrt(2L)), biases 0, norm gains 1, padded vocab rows 0, scalar head
// N(0, 1/sqrt(C+1)). Deterministic: the same seed gives the same weights on every backend.
void model_init_weights(Model *m, uint64_t seed);

// Forward over a batch (B <= max_B, T <= max_T). Logits are scaled by inv_temp (1 for
// training; 1/temperature to score samples drawn at a temperature). Returns the mean of
// -logp over the masked targets (the cross-entropy loss; 0 if the model has no LM head or no
// target is masked). Per-token logp, entropy and values are then in host_logp, host_entropy
// and host_values, (B,T) row-major.
float model_forward(Model *m, const Batch *batch, float inv_temp);

// Backward of the last forward for an objective with gradients dlogp, dent, dvalues (B,T)
// (host arrays; NULL where the objective does not depend on them). Accumulates into the
// gradient arena. MODEL_TRAIN only.
void model_backward(Model *m, const float *dlogp, const float *dent, const float *dvalues);

// Backward of the masked cross-entropy: dlogp = -mask / weight_sum. weight_sum is the number
// of masked targets over all micro-batches of the step, so accumulated micro-batches give the
// gradient of the mean over the whole step.
void model_backward_ce(Model *m, double weight_sum);

// The sum of the last batch's mask over targets (the denominator of its loss).
double model_mask_sum(const Model *m);

void model_zero_grad(Model *m);

// ---- LoRA -------------------------------------------------------------------------------------

// Gives a model without adapters the adapters c describes: the base weights become frozen (their
// gradients are freed), the adapters start as c.init says from seed (B = 0, so the model's
// outputs are unchanged), and the activation arena grows by the adapters' (N, r) inputs. A
// scalar head stays trained. 0, or -1 with a message (a target the family lacks, a view).
int model_lora_attach(Model *m, const LoraConfig *c, uint64_t seed, char *err, size_t errlen);

// An inference view of src with its adapters off: the base model, on src's weights (the frozen
// reference of dpo and the RL stages under LoRA).
Model *model_create_base_view(const Model *src, int max_B, int max_T);

// Sets the adapters' learning rate to scale times the optimiser's (train_table's lr_scale; the
// scalar head keeps the optimiser's).
void model_lora_lr_scale(Model *m, float scale);

// Folds the adapters into the base weights (W += alpha/r B A, row block by row block) and drops
// them: the model is then an ordinary one, every tensor trained. A no-op without adapters.
void model_lora_merge(Model *m);

// A model sharing trunk's base weights with adapters (c) and heads of its own, trained: the PPO
// value model as a second adapter set (and a scalar head) on the policy's trunk, or on the
// reward model's. trunk has adapters (its base frozen) or none (a model nothing trains), and
// outlives the view. The own tensors are initialised from seed as model_init_weights and
// model_lora_attach would, except a scalar head, which starts as trunk's when it has one.
Model *model_create_adapter_view(const Model *trunk, int heads, ModelMode mode, int max_B,
                                 int max_T, const LoraConfig *c, uint64_t seed);

// All parameters in table order (table.numel floats), frozen and trained, to and from host
// memory; from_host refreshes the compute copy. An adapter view's frozen base is its trunk's:
// from_host writes only its own (trained) part.
void model_params_to_host(const Model *m, float *host);
void model_params_from_host(Model *m, const float *host);

// Bytes held by the parameter (frozen and trained), gradient and activation arenas.
size_t model_param_bytes(const Model *m);
// Bytes of weights the model itself holds, every weight arena counted: its fp32 trained and
// frozen arenas plus their compute copies when the backend's activations are not fp32; 0 for a
// view (model_create_view), which reads its source's, and only the own adapters and head for an
// adapter view (model_create_adapter_view), whose base is its trunk's. The memory report
// (train/run/memory.h) reads it, so a new kind of weight storage is counted here.
size_t model_weight_bytes(const Model *m);
size_t model_grad_bytes(const Model *m);
size_t model_act_bytes(const Model *m);
