#!/usr/bin/python3
"""Hugging Face model folders written by hand, with PyTorch references, for tests/test_convert.c.

usage: hf_ref.py OUT_DIR STORIES260K.bin

Writes, under OUT_DIR, folders laid out as transformers' save_pretrained writes them (config.json
and model.safetensors, the safetensors file encoded here with struct + json, not by a library)
and for each a reference file NAME.ref.h5 computed in float64 by this file's own model
definitions (transformers is not used):

  gpt2/        GPT2LMHeadModel, F32, Conv1D layout (weights stored (in, out)), "transformer."
               names, with the attn.bias / attn.masked_bias buffers and a tied lm_head.weight
               copy. gpt2.ref.h5: /batch tokens, targets (B,T); loss (mean cross-entropy over
               every target); grads/<name> in layercake's layout; attrs lr; after/<name>: the
               weights after one SGD step w - lr*grad, layercake's layout; params/<name>; and
               bf16_c_attn (uint16): h.0.attn.c_attn.weight rounded to bfloat16 by numpy.
  llama-bf16/  LlamaForCausalLM, BF16, grouped-query attention (4 heads, 2 key/value heads),
               untied, rope_theta 500000, rotary inv_freq buffers. ref: ids, logits (T,V),
               params/<name> (the exact float32 values of the bf16 weights).
  qwen2-f16/   Qwen2ForCausalLM, F16, q/k/v biases, one key/value head, tied. ref as above.
  llama-rm/    LlamaForSequenceClassification of llama-bf16's trunk (F32) with score.weight
               (1, C). ref: ids, values (T): the score at every position.
  stories/     stories260K.bin (llama2.c) as a LlamaForCausalLM folder, the rows of wq and wk
               permuted from interleaved RoPE pairs to halves. stories.ref.h5: prompt ids;
               logits (T,V) of the prompt and greedy (30 ids), both from llama2.c's own forward
               (interleaved RoPE) run on the .bin's weights.
"""
import json
import math
import os
import struct
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


# ---- safetensors, by hand ---------------------------------------------------------------------

def bf16_bits(x):
    """float32 -> bfloat16 bits, rounded to nearest, ties to even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def encode(x, dtype):
    """(bytes, the float32 values the bytes hold) of array x stored as dtype."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "F32":
        return x.astype("<f4").tobytes(), x
    if dtype == "F16":
        h = x.astype("<f2")
        return h.tobytes(), h.astype(np.float32)
    b = bf16_bits(x).astype("<u2")
    return b.tobytes(), (b.astype(np.uint32) << 16).view(np.float32).reshape(x.shape)


def write_safetensors(path, tensors):
    """tensors: list of (name, array, dtype). Returns {name: float32 values stored}."""
    header, blobs, stored, at = {"__metadata__": {"format": "pt"}}, [], {}, 0
    for name, x, dtype in tensors:
        data, values = encode(x, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(x)),
                        "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        stored[name] = values
        at += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return stored


def write_folder(folder, config, tensors):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    return write_safetensors(os.path.join(folder, "model.safetensors"), tensors)


def t(x):
    return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


# ---- the models (float64) ---------------------------------------------------------------------

def attention(q, k, v):
    """q (T,NH,hs), k and v (T,NKV,hs): causal attention, grouped heads; (T, NH*hs)."""
    T, NH, hs = q.shape
    rep = NH // k.shape[1]
    q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
    att = q @ k.transpose(-2, -1) / math.sqrt(hs)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    att = att.masked_fill(~mask, float("-inf")).softmax(-1)
    return (att @ v).transpose(0, 1).reshape(T, NH * hs)


def no_lora(module, x):
    return 0.0


def gpt2_forward(P, c, tokens, lora=no_lora):
    """HF GPT-2 (Conv1D: y = x @ W + b) on tokens (T,); returns logits (T, V). lora(module, x)
    is added to the output of each linear module (PEFT's LoRA layers; tests/peft_ref.py)."""
    p, C, NH = "transformer.", c["n_embd"], c["n_head"]
    T = len(tokens)
    x = P[p + "wte.weight"][tokens] + P[p + "wpe.weight"][:T]
    for l in range(c["n_layer"]):
        h = f"{p}h.{l}."
        a = F.layer_norm(x, (C,), P[h + "ln_1.weight"], P[h + "ln_1.bias"], 1e-5)
        qkv = a @ P[h + "attn.c_attn.weight"] + P[h + "attn.c_attn.bias"] + \
            lora(h + "attn.c_attn", a)
        q, k, v = (z.reshape(T, NH, C // NH) for z in qkv.split(C, -1))
        y = attention(q, k, v)
        x = x + y @ P[h + "attn.c_proj.weight"] + P[h + "attn.c_proj.bias"] + \
            lora(h + "attn.c_proj", y)
        a = F.layer_norm(x, (C,), P[h + "ln_2.weight"], P[h + "ln_2.bias"], 1e-5)
        a = F.gelu(a @ P[h + "mlp.c_fc.weight"] + P[h + "mlp.c_fc.bias"] + lora(h + "mlp.c_fc", a),
                   approximate="tanh")
        x = x + a @ P[h + "mlp.c_proj.weight"] + P[h + "mlp.c_proj.bias"] + \
            lora(h + "mlp.c_proj", a)
    x = F.layer_norm(x, (C,), P[p + "ln_f.weight"], P[p + "ln_f.bias"], 1e-5)
    return x @ P[p + "wte.weight"].T


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope_halves(x, theta):
    """Rotate-half RoPE (transformers' Llama) of x (T,H,hs), angles in float32 as transformers
    computes them."""
    T, _, hs = x.shape
    inv = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv  # (T, hs/2) float32
    cos = torch.cat([ang.cos(), ang.cos()], -1).double()[:, None]
    sin = torch.cat([ang.sin(), ang.sin()], -1).double()[:, None]
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def llama_forward(P, c, tokens, lora=no_lora):
    """HF Llama / Qwen2 on tokens (T,); returns the final norm's output (T, C). lora as in
    gpt2_forward."""
    C, NH, NKV, eps = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], \
        c["rms_norm_eps"]
    hs, T = C // NH, len(tokens)
    x = P["model.embed_tokens.weight"][tokens]
    for l in range(c["num_hidden_layers"]):
        h = f"model.layers.{l}."
        a = rmsnorm(x, P[h + "input_layernorm.weight"], eps)
        def proj(name, heads):
            y = a @ P[h + f"self_attn.{name}.weight"].T + lora(h + f"self_attn.{name}", a)
            if h + f"self_attn.{name}.bias" in P:
                y = y + P[h + f"self_attn.{name}.bias"]
            return y.reshape(T, heads, hs)
        q = rope_halves(proj("q_proj", NH), c["rope_theta"])
        k = rope_halves(proj("k_proj", NKV), c["rope_theta"])
        v = proj("v_proj", NKV)
        y = attention(q, k, v)
        x = x + y @ P[h + "self_attn.o_proj.weight"].T + lora(h + "self_attn.o_proj", y)
        a = rmsnorm(x, P[h + "post_attention_layernorm.weight"], eps)
        g = F.silu(a @ P[h + "mlp.gate_proj.weight"].T + lora(h + "mlp.gate_proj", a)) * \
            (a @ P[h + "mlp.up_proj.weight"].T + lora(h + "mlp.up_proj", a))
        x = x + g @ P[h + "mlp.down_proj.weight"].T + lora(h + "mlp.down_proj", g)
    return rmsnorm(x, P["model.norm.weight"], eps)


def llama_logits(P, c, tokens, lora=no_lora):
    x = llama_forward(P, c, tokens, lora)
    return x @ P.get("lm_head.weight", P["model.embed_tokens.weight"]).T


# ---- layercake's layout (its own mapping, written independently of model/hf.c) ----------------

def padded(v):
    return (v + 63) // 64 * 64


def pad_rows(w):
    out = np.zeros((padded(w.shape[0]), w.shape[1]), dtype=w.dtype)
    out[: w.shape[0]] = w
    return out


def gpt2_ours(W, c):
    """HF GPT-2 arrays (HF names) -> layercake's tensors."""
    p, L = "transformer.", c["n_layer"]
    per = lambda fmt, f=lambda a: a: np.stack([f(W[f"{p}h.{l}.{fmt}"]) for l in range(L)])
    return {"wte": pad_rows(W[p + "wte.weight"]), "wpe": W[p + "wpe.weight"],
            "ln1w": per("ln_1.weight"), "ln1b": per("ln_1.bias"),
            "qkvw": per("attn.c_attn.weight", np.transpose), "qkvb": per("attn.c_attn.bias"),
            "attprojw": per("attn.c_proj.weight", np.transpose),
            "attprojb": per("attn.c_proj.bias"), "ln2w": per("ln_2.weight"),
            "ln2b": per("ln_2.bias"), "fcw": per("mlp.c_fc.weight", np.transpose),
            "fcb": per("mlp.c_fc.bias"), "fcprojw": per("mlp.c_proj.weight", np.transpose),
            "fcprojb": per("mlp.c_proj.bias"), "lnfw": W[p + "ln_f.weight"],
            "lnfb": W[p + "ln_f.bias"]}


def llama_ours(W, c):
    L = c["num_hidden_layers"]
    h = lambda l, n: W[f"model.layers.{l}.{n}"]
    att = lambda l, kind: np.concatenate([h(l, f"self_attn.{x}_proj.{kind}") for x in "qkv"])
    out = {"wte": pad_rows(W["model.embed_tokens.weight"]),
           "ln1w": np.stack([h(l, "input_layernorm.weight") for l in range(L)]),
           "qkvw": np.stack([att(l, "weight") for l in range(L)]),
           "attprojw": np.stack([h(l, "self_attn.o_proj.weight") for l in range(L)]),
           "ln2w": np.stack([h(l, "post_attention_layernorm.weight") for l in range(L)]),
           "fcw": np.stack([np.concatenate([h(l, "mlp.gate_proj.weight"),
                                            h(l, "mlp.up_proj.weight")]) for l in range(L)]),
           "fcprojw": np.stack([h(l, "mlp.down_proj.weight") for l in range(L)]),
           "lnfw": W["model.norm.weight"]}
    if "model.layers.0.self_attn.q_proj.bias" in W:
        out["qkvb"] = np.stack([att(l, "bias") for l in range(L)])
    if "lm_head.weight" in W:
        out["lmw"] = pad_rows(W["lm_head.weight"])
    return out


def write_ours(g, tensors):
    for k, v in tensors.items():
        g[k] = np.asarray(v, dtype=np.float32)


# ---- the folders ------------------------------------------------------------------------------

def gpt2_case(out, rng):
    c = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 32, "n_layer": 2,
         "n_head": 4, "n_positions": 16, "n_ctx": 16, "n_inner": None, "vocab_size": 67,
         "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "bos_token_id": 66,
         "eos_token_id": 66, "tie_word_embeddings": True}
    C, V, T, L = 32, 67, 16, 2
    r = lambda *s: rng.normal(0, 0.2, s).astype(np.float32)
    p, ts = "transformer.", []
    ts += [(p + "wte.weight", r(V, C), "F32"), (p + "wpe.weight", r(T, C), "F32")]
    for l in range(L):
        h = f"{p}h.{l}."
        ts += [(h + "ln_1.weight", 1 + r(C), "F32"), (h + "ln_1.bias", r(C), "F32"),
               (h + "attn.bias", np.tril(np.ones((1, 1, T, T), np.float32)), "F32"),
               (h + "attn.masked_bias", np.array(-1e4, np.float32), "F32"),
               (h + "attn.c_attn.weight", r(C, 3 * C), "F32"), (h + "attn.c_attn.bias", r(3 * C), "F32"),
               (h + "attn.c_proj.weight", r(C, C), "F32"), (h + "attn.c_proj.bias", r(C), "F32"),
               (h + "ln_2.weight", 1 + r(C), "F32"), (h + "ln_2.bias", r(C), "F32"),
               (h + "mlp.c_fc.weight", r(C, 4 * C), "F32"), (h + "mlp.c_fc.bias", r(4 * C), "F32"),
               (h + "mlp.c_proj.weight", r(4 * C, C), "F32"), (h + "mlp.c_proj.bias", r(C), "F32")]
    ts += [(p + "ln_f.weight", 1 + r(C), "F32"), (p + "ln_f.bias", r(C), "F32")]
    ts += [("lm_head.weight", ts[0][1], "F32")]  # a tied copy, as older writers left it
    W = write_folder(os.path.join(out, "gpt2"), c, ts)
    # one batch: B rows of T tokens, every next token a target
    B = 3
    tokens = rng.integers(0, V, (B, T)).astype(np.int32)
    targets = np.concatenate([tokens[:, 1:], rng.integers(0, V, (B, 1))], 1).astype(np.int32)
    P = {k: t(v) for k, v in W.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))
         and k != "lm_head.weight"}
    logits = torch.stack([gpt2_forward(P, c, torch.tensor(row).long()) for row in tokens])
    loss = F.cross_entropy(logits.reshape(-1, V), torch.tensor(targets).long().reshape(-1))
    loss.backward()
    lr = 0.1
    G = {k: v.grad.numpy() for k, v in P.items()}
    Wd = {k: v.detach().numpy() for k, v in P.items()}
    ours, grads = gpt2_ours(Wd, c), gpt2_ours(G, c)
    with h5py.File(os.path.join(out, "gpt2.ref.h5"), "w") as f:
        f["batch/tokens"], f["batch/targets"] = tokens, targets
        f["loss"] = loss.item()
        f.attrs["lr"] = lr
        write_ours(f.create_group("params"), ours)
        write_ours(f.create_group("grads"), grads)
        write_ours(f.create_group("after"), {k: ours[k] - lr * grads[k] for k in ours})
        f["bf16_c_attn"] = bf16_bits(W[p + "h.0.attn.c_attn.weight"])


def llama_tensors(c, rng, dtype, bias, untied, buffers):
    C, F_, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    NH, NKV, V = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]
    hs = C // NH
    r = lambda *s: rng.normal(0, 0.2, s).astype(np.float32)
    ts = [("model.embed_tokens.weight", r(V, C), dtype)]
    for l in range(L):
        h = f"model.layers.{l}."
        ts += [(h + "input_layernorm.weight", 1 + r(C), dtype),
               (h + "self_attn.q_proj.weight", r(NH * hs, C), dtype),
               (h + "self_attn.k_proj.weight", r(NKV * hs, C), dtype),
               (h + "self_attn.v_proj.weight", r(NKV * hs, C), dtype)]
        if bias:
            ts += [(h + f"self_attn.{x}_proj.bias", r(n * hs), dtype)
                   for x, n in (("q", NH), ("k", NKV), ("v", NKV))]
        ts += [(h + "self_attn.o_proj.weight", r(C, C), dtype),
               (h + "post_attention_layernorm.weight", 1 + r(C), dtype),
               (h + "mlp.gate_proj.weight", r(F_, C), dtype),
               (h + "mlp.up_proj.weight", r(F_, C), dtype),
               (h + "mlp.down_proj.weight", r(C, F_), dtype)]
        if buffers:
            inv = 1.0 / (c["rope_theta"] ** (np.arange(0, hs, 2, dtype=np.float32) / hs))
            ts += [(h + "self_attn.rotary_emb.inv_freq", inv.astype(np.float32), "F32")]
    ts += [("model.norm.weight", 1 + r(C), dtype)]
    if untied:
        ts += [("lm_head.weight", r(V, C), dtype)]
    return ts


def weights(W):
    return {k: t(v) for k, v in W.items() if not k.endswith("inv_freq")}


def llama_case(out, rng, name, c, dtype, bias, untied):
    ts = llama_tensors(c, rng, dtype, bias, untied, buffers=not bias)
    W = write_folder(os.path.join(out, name), c, ts)
    T = 12
    ids = rng.integers(0, c["vocab_size"], T).astype(np.int32)
    logits = llama_logits(weights(W), c, torch.tensor(ids).long())
    with h5py.File(os.path.join(out, name + ".ref.h5"), "w") as f:
        f["ids"], f["logits"] = ids, logits.detach().numpy().astype(np.float32)
        write_ours(f.create_group("params"), llama_ours({k: v for k, v in W.items()}, c))
    return ts


def llama_rm_case(out, rng, c, ts):
    c = dict(c, architectures=["LlamaForSequenceClassification"], id2label={"0": "LABEL_0"},
             label2id={"LABEL_0": 0}, pad_token_id=0)
    C = c["hidden_size"]
    ts = [(n, x, "F32") for n, x, _ in ts if n != "lm_head.weight"]
    ts += [("score.weight", rng.normal(0, 0.3, (1, C)).astype(np.float32), "F32")]
    W = write_folder(os.path.join(out, "llama-rm"), c, ts)
    ids = rng.integers(0, c["vocab_size"], 10).astype(np.int32)
    P = weights(W)
    values = (llama_forward(P, c, torch.tensor(ids).long()) @ P["score.weight"].T)[:, 0]
    with h5py.File(os.path.join(out, "llama-rm.ref.h5"), "w") as f:
        f["ids"], f["values"] = ids, values.detach().numpy().astype(np.float32)


# ---- stories260K: llama2.c's file, llama2.c's forward ------------------------------------------

def read_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, L, NH, NKV, V, T = struct.unpack("<7i", raw[:28])
    assert V > 0, "stories260K shares its classifier"
    hs, kv = dim // NH, dim // NH * NKV
    x = np.frombuffer(raw, dtype="<f4", offset=28)
    at = 0
    def take(*shape):
        nonlocal at
        n = int(np.prod(shape))
        a = x[at: at + n].reshape(shape)
        at += n
        return a.astype(np.float32)
    W = {"emb": take(V, dim), "rms_att": take(L, dim), "wq": take(L, dim, dim),
         "wk": take(L, kv, dim), "wv": take(L, kv, dim), "wo": take(L, dim, dim),
         "rms_ffn": take(L, dim), "w1": take(L, hidden, dim), "w2": take(L, dim, hidden),
         "w3": take(L, hidden, dim), "rms_final": take(dim)}
    take(T, hs // 2), take(T, hs // 2)  # freq_cis_real, freq_cis_imag
    assert at == len(x), "the file is longer than its header says"
    cfg = {"dim": dim, "hidden": hidden, "L": L, "NH": NH, "NKV": NKV, "V": V, "T": T}
    return W, cfg


def rope_pairs(x, hs):
    """llama2.c's RoPE: consecutive pairs (2i, 2i+1) of each head, frequency 1/10000^(2i/hs),
    the frequency and angle in float32 as run.c computes them. x (T,H,hs)."""
    T = x.shape[0]
    freq = 1.0 / np.power(np.float32(10000.0), np.arange(0, hs, 2, dtype=np.float32) / np.float32(hs))
    ang = torch.tensor(np.arange(T, dtype=np.float32)[:, None] * freq.astype(np.float32)).double()
    cos, sin = ang.cos()[:, None], ang.sin()[:, None]  # (T,1,hs/2)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).reshape(x.shape)


def llama2c_logits(W, c, tokens):
    """run.c's forward (every position, causal), float64; returns logits (T, V)."""
    dim, NH, NKV = c["dim"], c["NH"], c["NKV"]
    hs, T = dim // NH, len(tokens)
    w = {k: torch.tensor(v.astype(np.float64)) for k, v in W.items()}
    x = w["emb"][tokens]
    for l in range(c["L"]):
        a = rmsnorm(x, w["rms_att"][l], 1e-5)
        q = rope_pairs((a @ w["wq"][l].T).reshape(T, NH, hs), hs)
        k = rope_pairs((a @ w["wk"][l].T).reshape(T, NKV, hs), hs)
        v = (a @ w["wv"][l].T).reshape(T, NKV, hs)
        x = x + attention(q, k, v) @ w["wo"][l].T
        a = rmsnorm(x, w["rms_ffn"][l], 1e-5)
        x = x + (F.silu(a @ w["w1"][l].T) * (a @ w["w3"][l].T)) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"], 1e-5) @ w["emb"].T


def permute_halves(w, heads):
    """Rows of each head from interleaved pairs to halves: row 2i+r -> row r*hs/2 + i."""
    rows, C = w.shape
    hs = rows // heads
    return w.reshape(heads, hs // 2, 2, C).transpose(0, 2, 1, 3).reshape(rows, C)


def stories_case(out, path):
    W, c = read_llama2c(path)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": c["dim"],
           "intermediate_size": c["hidden"], "num_hidden_layers": c["L"],
           "num_attention_heads": c["NH"], "num_key_value_heads": c["NKV"],
           "vocab_size": c["V"], "max_position_embeddings": c["T"], "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "rope_scaling": None, "hidden_act": "silu",
           "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": "float32"}
    ts = [("model.embed_tokens.weight", W["emb"], "F32")]
    for l in range(c["L"]):
        h = f"model.layers.{l}."
        ts += [(h + "input_layernorm.weight", W["rms_att"][l], "F32"),
               (h + "self_attn.q_proj.weight", permute_halves(W["wq"][l], c["NH"]), "F32"),
               (h + "self_attn.k_proj.weight", permute_halves(W["wk"][l], c["NKV"]), "F32"),
               (h + "self_attn.v_proj.weight", W["wv"][l], "F32"),
               (h + "self_attn.o_proj.weight", W["wo"][l], "F32"),
               (h + "post_attention_layernorm.weight", W["rms_ffn"][l], "F32"),
               (h + "mlp.gate_proj.weight", W["w1"][l], "F32"),
               (h + "mlp.up_proj.weight", W["w3"][l], "F32"),
               (h + "mlp.down_proj.weight", W["w2"][l], "F32")]
    ts += [("model.norm.weight", W["rms_final"], "F32")]
    write_folder(os.path.join(out, "stories"), cfg, ts)
    prompt = [1, 403, 407, 261, 378]
    seq, gaps = list(prompt), []
    logits = llama2c_logits(W, c, torch.tensor(prompt))
    for _ in range(30):  # greedy, the whole sequence recomputed each step
        z = llama2c_logits(W, c, torch.tensor(seq))[-1]
        top = torch.topk(z, 2).values
        gaps.append((top[0] - top[1]).item())
        seq.append(int(torch.argmax(z)))
    with h5py.File(os.path.join(out, "stories.ref.h5"), "w") as f:
        f["ids"] = np.array(prompt, np.int32)
        f["logits"] = logits.numpy().astype(np.float32)
        f["greedy"] = np.array(seq[len(prompt):], np.int32)
        f.attrs["min_gap"] = min(gaps)  # the smallest top-1 margin: near 0 would make ids fragile


def main():
    out, stories = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240601)
    gpt2_case(out, rng)
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
             "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 67, "max_position_embeddings": 32,
             "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "rope_scaling": None,
             "hidden_act": "silu", "tie_word_embeddings": False, "attention_bias": False,
             "mlp_bias": False, "head_dim": 8, "torch_dtype": "bfloat16"}
    ts = llama_case(out, rng, "llama-bf16", llama, "BF16", bias=False, untied=True)
    qwen = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
            "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 1, "vocab_size": 70, "max_position_embeddings": 64,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
            "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 4096,
            "max_window_layers": 2, "torch_dtype": "float16"}
    llama_case(out, rng, "qwen2-f16", qwen, "F16", bias=True, untied=False)
    llama_rm_case(out, rng, llama, ts)
    stories_case(out, stories)


if __name__ == "__main__":
    main()
