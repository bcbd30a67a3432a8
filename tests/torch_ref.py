#!/usr/bin/python3
"""PyTorch reference for layercake's models (GPT-2 and Llama families): rebuilds the model from
the weights layercake wrote, runs the same batch and objective in float64, and writes what
layercake must match.

usage: torch_ref.py FIXTURE.h5 OUT.h5

FIXTURE.h5 (written by tests/test_parity.c):
  root attributes       model config (family, n_layer, n_head, n_kv_head, d_model, d_ff,
                        vocab_size, max_seq_len, norm_eps, rope_theta, qkv_bias, tied, heads)
  /params/<name>        float32 weights, shapes as in model/model.h
  /batch/tokens,targets,pos,seg (B,T) int32; /batch/mask (B,T) float32
  /objective/value_w, ent_w (B,T) float32: objective = CE + sum(value_w*values) + sum(ent_w*H)
  /objective attrs      inv_temp; kind = "bt" instead makes the objective the Bradley-Terry
                        reward-model loss over pairs (rows 2i chosen, 2i+1 rejected), each row
                        scored at position len-1 (/batch/len), with attrs margin, center_coef;
                        kind = "dpo": the DPO loss (attr loss = "sigmoid") or ORPO ("orpo") over
                        pairs, sequence log-probs summed over masked targets, reference
                        log-probs /objective/ref (B), attrs beta, lambda;
                        kind = "kto": KTO over rows [0, B/2) (labels /objective/label (B/2), 1
                        desirable) with the reference point from their mismatched rows
                        [B/2, B), detached; attrs beta, desirable_weight, undesirable_weight
  /trajectory attrs     steps, lr, beta1, beta2, eps, weight_decay, grad_clip, warmup_steps,
                        total_steps, min_lr_ratio (AdamW on CE alone, LM head only)
OUT.h5:
  loss, objective (scalars); logp, entropy, values (B,T); grads/<name>; trajectory/losses (steps)
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F_

torch.set_default_dtype(torch.float64)

NO_DECAY = {"ln1w", "ln1b", "qkvb", "attprojb", "ln2w", "ln2b", "fcb", "fcprojb", "lnfw",
            "lnfb", "headb"}


def load(path):
    f = h5py.File(path, "r")
    cfg = {k: int(f.attrs[k]) for k in ("n_layer", "n_head", "n_kv_head", "d_model", "d_ff",
                                        "vocab_size", "max_seq_len", "heads")}
    cfg["family"] = attr_str(f, "family")
    cfg["norm_eps"] = float(f.attrs["norm_eps"])
    cfg["rope_theta"] = float(f.attrs["rope_theta"])
    params = {k: torch.tensor(np.array(v), dtype=torch.float64, requires_grad=True)
              for k, v in f["params"].items()}
    batch = {k: torch.tensor(np.array(v)) for k, v in f["batch"].items()}
    return f, cfg, params, batch


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta):
    """Rotate-half RoPE of x (B,H,T,hs) at positions pos (B,T), angles in float32 as
    transformers computes them."""
    hs = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))
    ang = pos.float()[:, None, :, None] * inv  # (B,1,T,hs/2) float32
    cos = torch.cat([ang.cos(), ang.cos()], -1).double()
    sin = torch.cat([ang.sin(), ang.sin()], -1).double()
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def block(P, cfg, l, x, pos, visible):
    """One transformer block of either family on x (B,T,C)."""
    NH, NKV, C, F = cfg["n_head"], cfg["n_kv_head"], cfg["d_model"], cfg["d_ff"]
    hs, B, T = C // NH, x.shape[0], x.shape[1]
    llama = cfg["family"] == "llama"
    def norm(t, w, b):
        if llama:
            return rmsnorm(t, P[w][l], cfg["norm_eps"])
        return F_.layer_norm(t, (C,), P[w][l], P[b][l], eps=1e-5)
    def bias(name):
        return P[name][l] if name in P else 0.0
    h = norm(x, "ln1w", "ln1b")
    qkv = h @ P["qkvw"][l].T + bias("qkvb")
    q, k, v = qkv.split([NH * hs, NKV * hs, NKV * hs], dim=-1)
    q = q.view(B, T, NH, hs).transpose(1, 2)
    k = k.view(B, T, NKV, hs).transpose(1, 2)
    v = v.view(B, T, NKV, hs).transpose(1, 2)
    if llama:
        q, k = rope(q, pos, cfg["rope_theta"]), rope(k, pos, cfg["rope_theta"])
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
    att = att.masked_fill(~visible[:, None], float("-inf")).softmax(dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C)
    x = x + y @ P["attprojw"][l].T + bias("attprojb")
    h = norm(x, "ln2w", "ln2b")
    h = h @ P["fcw"][l].T + bias("fcb")
    if llama:
        h = F_.silu(h[..., :F]) * h[..., F:]
    else:
        h = F_.gelu(h, approximate="tanh")
    return x + h @ P["fcprojw"][l].T + bias("fcprojb")


def forward(P, cfg, b, inv_temp):
    """Returns logp (B,T) of the targets, entropy (B,T), values (B,T) or None."""
    C, V = cfg["d_model"], cfg["vocab_size"]
    tokens, pos, seg = b["tokens"].long(), b["pos"].long(), b["seg"]
    B, T = tokens.shape
    x = P["wte"][tokens] + (P["wpe"][pos] if "wpe" in P else 0.0)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    visible = causal[None] & (seg[:, :, None] == seg[:, None, :])  # (B,T,T)
    for l in range(cfg["n_layer"]):
        x = block(P, cfg, l, x, pos, visible)
    if cfg["family"] == "llama":
        x = rmsnorm(x, P["lnfw"], cfg["norm_eps"])
    else:
        x = F_.layer_norm(x, (C,), P["lnfw"], P["lnfb"], eps=1e-5)
    values = (x @ P["headw"].T)[..., 0] + P["headb"] if "headw" in P else None
    if (cfg["heads"] & 1) == 0:  # a reward model: no language-model head
        return None, None, values
    logits = (x @ P.get("lmw", P["wte"]).T)[..., :V] * inv_temp
    logprobs = logits.log_softmax(dim=-1)
    targets = b["targets"].long()
    logp = logprobs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    logp = torch.where(targets >= 0, logp, torch.zeros_like(logp))
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    return logp, entropy, values


def ce_loss(logp, b):
    w = b["mask"].double() * (b["targets"] >= 0)
    return -(w * logp).sum() / w.sum()


def schedule(t, a):
    """layercake's optim/schedule.c: linear warmup, then cosine to min_lr_ratio * lr."""
    lr, warm, total = a["lr"], int(a["warmup_steps"]), int(a["total_steps"])
    if warm > 0 and t < warm:
        return lr * (t + 1) / warm
    frac = min(1.0, (t - warm) / (total - warm))
    min_lr = lr * a["min_lr_ratio"]
    return min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (lr - min_lr)


def trajectory(f, cfg, params, b):
    a = {k: float(v) for k, v in f["trajectory"].attrs.items()}
    P = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()
         if k not in ("headw", "headb")}
    groups = [{"params": [P[k] for k in P if k not in NO_DECAY], "weight_decay": a["weight_decay"]},
              {"params": [P[k] for k in P if k in NO_DECAY], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a["lr"], betas=(a["beta1"], a["beta2"]), eps=a["eps"])
    losses = []
    for t in range(int(a["steps"])):
        for g in opt.param_groups:
            g["lr"] = schedule(t, a)
        opt.zero_grad()
        logp, _, _ = forward(P, cfg, b, 1.0)
        loss = ce_loss(logp, b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), a["grad_clip"])
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


def bradley_terry(values, b, margin, center_coef):
    """Mean over pairs of -log sigmoid(rc - rr - margin) + center_coef (rc + rr)^2."""
    last = b["len"].long() - 1
    r = values.gather(1, last[:, None])[:, 0]
    rc, rr = r[0::2], r[1::2]
    return (-F_.logsigmoid(rc - rr - margin) + center_coef * (rc + rr) ** 2).mean()


def dpo(logp, b, loss, beta, lam, ref):
    """Mean over pairs (rows 2i chosen, 2i+1 rejected) of the DPO (sigmoid) or ORPO loss."""
    w = b["mask"].double() * (b["targets"] >= 0)
    seq, n = (w * logp).sum(-1), w.sum(-1)
    if loss == "sigmoid":
        h = (seq[0::2] - ref[0::2]) - (seq[1::2] - ref[1::2])
        return (-F_.logsigmoid(beta * h)).mean()
    a, c = seq[0::2] / n[0::2], seq[1::2] / n[1::2]
    log_odds = (a - torch.log1p(-torch.exp(a))) - (c - torch.log1p(-torch.exp(c)))
    return (-a - lam * F_.logsigmoid(log_odds)).mean()


def kto(logp, b, beta, lam_d, lam_u, ref, label):
    """Mean over the examples (rows [0, B/2)) of lambda (1 - sigmoid(beta (r - z0))) (desirable)
    or lambda (1 - sigmoid(beta (z0 - r))) (undesirable), z0 = max(0, mean log-ratio of the
    mismatched rows [B/2, B)), detached."""
    w = b["mask"].double() * (b["targets"] >= 0)
    seq = (w * logp).sum(-1)
    n = seq.shape[0] // 2
    z0 = torch.clamp((seq[n:] - ref[n:]).mean(), min=0).detach()
    r = seq[:n] - ref[:n]
    x = torch.where(label > 0, beta * (r - z0), beta * (z0 - r))
    lam = torch.where(label > 0, torch.full_like(r, lam_d), torch.full_like(r, lam_u))
    return (lam * (1 - torch.sigmoid(x))).mean()


def attr_str(obj, key):
    v = obj.attrs.get(key, b"")
    return v.decode() if isinstance(v, bytes) else v


def main():
    f, cfg, params, b = load(sys.argv[1])
    obj = f["objective"]
    inv_temp = float(obj.attrs["inv_temp"])
    logp, entropy, values = forward(params, cfg, b, inv_temp)
    kind = attr_str(obj, "kind")
    if kind == "dpo":
        ref = torch.tensor(np.array(obj["ref"]), dtype=torch.float64)
        loss = objective = dpo(logp, b, attr_str(obj, "loss"), float(obj.attrs["beta"]),
                               float(obj.attrs["lambda"]), ref)
    elif kind == "kto":
        ref = torch.tensor(np.array(obj["ref"]), dtype=torch.float64)
        label = torch.tensor(np.array(obj["label"]), dtype=torch.float64)
        loss = objective = kto(logp, b, float(obj.attrs["beta"]),
                               float(obj.attrs["desirable_weight"]),
                               float(obj.attrs["undesirable_weight"]), ref, label)
    elif kind == "bt":
        loss = objective = bradley_terry(values, b, float(obj.attrs["margin"]),
                                         float(obj.attrs["center_coef"]))
    else:
        loss = ce_loss(logp, b)
        objective = loss + (torch.tensor(np.array(obj["ent_w"])) * entropy).sum()
        if values is not None:
            objective = objective + (torch.tensor(np.array(obj["value_w"])) * values).sum()
    objective.backward()
    with h5py.File(sys.argv[2], "w") as out:
        out["loss"] = loss.item()
        out["objective"] = objective.item()
        if logp is not None:
            out["logp"] = logp.detach().numpy().astype(np.float32)
            out["entropy"] = entropy.detach().numpy().astype(np.float32)
        if values is not None:
            out["values"] = values.detach().numpy().astype(np.float32)
        for k, p in params.items():
            out["grads/" + k] = p.grad.numpy().astype(np.float32)
        if "trajectory" in f:
            out["trajectory/losses"] = trajectory(f, cfg, params, b)


if __name__ == "__main__":
    main()
