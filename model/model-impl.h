// model/model-impl.h: engine internals shared by model/ files (forward layers, per-layer views).
#pragma once
#include "model/model.h"

// One layer's activations inside the arena for the current B x T (types as in ModelActs).
typedef struct {
    Act *residual; // (B,T,C) the layer's input: encoded or the previous residual3
    Act *ln1, *qkv, *atty, *attproj, *residual2, *ln2, *fch, *fch_act, *fcproj, *residual3;
    float *ln1_mean, *ln1_rstd, *att, *ln2_mean, *ln2_rstd;
    Act *lora_h[LORA_TARGETS]; // (B,T,r) the input times A^T of each adapter; NULL if none
} LayerActs;

// Where an adapter sits: on the output columns [o0, o0+OS) of a base weight (OC, in).
typedef struct {
    int in, OC, o0, OS;
} LoraSite;
void model_lora_site(const Model *m, LoraTarget t, LoraSite *s);
// alpha / r, the adapters' output scale (0 without adapters).
float model_lora_scale(const Model *m);

// Attention through a KV cache: k, v (L, B, maxT, NKV*hs). decode = 0: the call is a prefill of
// positions 0..T-1 (full attention, keys/values stored); decode = 1: T == 1 and each row's
// token sits at acts.pos[b].
typedef struct {
    Act *k, *v; // in the activation type
    int B, maxT;
    int decode;
} KVAttention;

void model_layer_acts(const Model *m, int l, LayerActs *la);

// Runs the embedding, all layers and the final norm for m->B x m->T tokens already on
// the device (acts.tokens, acts.pos, acts.seg), leaving the result in acts.lnf.
void model_forward_layers(Model *m, const KVAttention *kv);
