#!/usr/bin/python3
"""PyTorch reference of single backend ops (the Llama ones, LoRA) for tests/test_kernel_parity.c.
Every op is written here from its own definition, not from the C kernels, and differentiated
by autograd in float64; only RoPE's cos/sin are float32, computed as transformers computes them.

usage: torch_kernels.py IN.h5 OUT.h5

IN.h5 (written by tests/test_kernel_parity.c): one group per case, its attribute op naming the
op and the other attributes its shape; float32 inputs, int64 positions and segments, and dout,
the weights of the probe L = sum(out * dout) whose input gradients are the backward's.
  op = "rmsnorm"    attrs N, C, eps;  x (N,C), weight (C), dout (N,C)
       out = x * rsqrt(mean_c(x^2) + eps) * weight
  op = "rope"       attrs B, T, NH, NKV, hs, theta;  qkv (B,T,(NH+2*NKV)*hs), pos (B,T), dout
       q and k heads rotated as transformers' apply_rotary_pos_emb (rotate-half); v untouched
  op = "swiglu"     attrs N, F;  inp (N,2F) = gate | up, dout (N,F);  out = silu(gate) * up
  op = "attention"  attrs B, T, NH, NKV, hs, has_seg;  qkv (B,T,(NH+2*NKV)*hs), seg (B,T) if
       has_seg, dout (B,T,NH*hs); k and v repeated over each group of NH/NKV query heads
       (repeat_interleave), causal softmax masked to the query's segment
  op = "lora"       attrs N, C, OC, o0, OS, r, alpha;  x (N,C), weight (OC,C), bias (OC),
       lora_A (r,C), lora_B (OS,r), dout (N,OC); PEFT's LoRA on a frozen linear layer:
       out = x @ weight^T + bias, its columns [o0, o0+OS) += lora_B(lora_A(x)) * alpha / r;
       weight and bias frozen (no gradient), so the grads are x's, lora_A's and lora_B's
OUT.h5: per group, float32: out, then rstd (N) for rmsnorm, att (B,NH,T,T) and lse (B,NH,T) (the
logsumexp of the masked scaled scores, the flash kernels' state) for attention,
and grad/<input> for each float input.
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def tensor(g, name):
    return torch.tensor(np.array(g[name]), dtype=torch.float64, requires_grad=True)


def ints(g, name):
    return torch.tensor(np.array(g[name]), dtype=torch.int64)


def shape(g, *names):
    return [int(g.attrs[n]) for n in names]


def rmsnorm(g):
    x, w = tensor(g, "x"), tensor(g, "weight")
    rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + float(g.attrs["eps"]))
    return {"out": x * rstd * w, "rstd": rstd[:, 0]}, {"x": x, "weight": w}


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(g):
    B, T, NH, NKV, hs = shape(g, "B", "T", "NH", "NKV", "hs")
    theta = float(g.attrs["theta"])
    qkv, pos = tensor(g, "qkv"), ints(g, "pos")
    # LlamaRotaryEmbedding: inv_freq and the angles in float32 (a matmul over a dimension of 1)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.int64).float() / hs))
    freqs = (inv_freq[None, :, None].float() @ pos[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (B,T,hs)
    cos, sin = emb.cos().double()[:, :, None], emb.sin().double()[:, :, None]
    q, k, v = qkv.split([NH * hs, NKV * hs, NKV * hs], dim=-1)
    q, k = q.reshape(B, T, NH, hs), k.reshape(B, T, NKV, hs)
    # apply_rotary_pos_emb
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    out = torch.cat((q.reshape(B, T, -1), k.reshape(B, T, -1), v), dim=-1)
    return {"out": out}, {"qkv": qkv}


def swiglu(g):
    inp = tensor(g, "inp")
    gate, up = inp.split(int(g.attrs["F"]), dim=-1)
    return {"out": F.silu(gate) * up}, {"inp": inp}


def attention(g):
    B, T, NH, NKV, hs = shape(g, "B", "T", "NH", "NKV", "hs")
    qkv = tensor(g, "qkv")
    seg = ints(g, "seg") if int(g.attrs["has_seg"]) else torch.zeros(B, T, dtype=torch.int64)
    q, k, v = qkv.split([NH * hs, NKV * hs, NKV * hs], dim=-1)
    q = q.reshape(B, T, NH, hs).transpose(1, 2)
    k = k.reshape(B, T, NKV, hs).transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
    v = v.reshape(B, T, NKV, hs).transpose(1, 2).repeat_interleave(NH // NKV, dim=1)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    visible = causal[None] & (seg[:, :, None] == seg[:, None, :])  # (B,T,T)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
    scores = scores.masked_fill(~visible[:, None], float("-inf"))
    att = scores.softmax(dim=-1)
    out = (att @ v).transpose(1, 2).reshape(B, T, NH * hs)
    # lse (B,NH,T): the flash kernels' state
    return {"out": out, "att": att, "lse": scores.logsumexp(dim=-1)}, {"qkv": qkv}


def lora(g):
    N, C, OC, o0, OS, r = shape(g, "N", "C", "OC", "o0", "OS", "r")
    scaling = float(g.attrs["alpha"]) / r  # peft's LoraLayer: lora_alpha / r
    x = tensor(g, "x")
    # the frozen base layer (peft sets requires_grad False on it)
    weight = torch.tensor(np.array(g["weight"]), dtype=torch.float64)
    bias = torch.tensor(np.array(g["bias"]), dtype=torch.float64)
    lora_A, lora_B = tensor(g, "lora_A"), tensor(g, "lora_B")
    base = F.linear(x, weight, bias)
    # peft's Linear.forward: result + lora_B(lora_A(dropout(x))) * scaling (dropout 0), the
    # adapter's OS outputs placed on columns [o0, o0+OS) of the fused output
    delta = F.linear(F.linear(x, lora_A), lora_B) * scaling
    out = base + F.pad(delta, (o0, OC - o0 - OS))
    return {"out": out}, {"x": x, "lora_A": lora_A, "lora_B": lora_B}


OPS = {"rmsnorm": rmsnorm, "rope": rope, "swiglu": swiglu, "attention": attention, "lora": lora}


def main():
    with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "w") as out:
        for name, g in f.items():
            op = g.attrs["op"]
            op = op.decode() if isinstance(op, bytes) else str(op)
            outputs, inputs = OPS[op](g)
            dout = torch.tensor(np.array(g["dout"]), dtype=torch.float64)
            (outputs["out"] * dout).sum().backward()
            for k, v in outputs.items():
                out[f"{name}/{k}"] = v.detach().numpy().astype(np.float32)
            for k, v in inputs.items():
                out[f"{name}/grad/{k}"] = v.grad.numpy().astype(np.float32)


if __name__ == "__main__":
    main()
