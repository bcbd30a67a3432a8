#!/usr/bin/python3
"""The PyTorch side of layercake's training-step benchmark: the same GPT-2 shape, batch and
step (forward, cross-entropy, backward, AdamW with clipping), timed the same way. Written for
Debian's python3-torch (1.13, CPU); prints one JSON object like `layercake bench --json`.

usage: torch_bench.py [--model gpt2-124m] [--batch 4] [--seq 64] [--steps 3] [--warmup 1]
                      [--threads N]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {  # n_layer, n_head, d_model, vocab_size, max_seq_len (as in train/cli/cmd_bench.c)
    "tiny": (4, 4, 128, 4096, 256),
    "small": (6, 6, 384, 8192, 512),
    "gpt2-124m": (12, 12, 768, 50257, 1024),
    "gpt2-350m": (24, 16, 1024, 50257, 1024),
}


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.NH)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, L, NH, C, V, maxT):
        super().__init__()
        Vp = (V + 63) // 64 * 64
        self.wte, self.wpe = nn.Embedding(Vp, C), nn.Embedding(maxT, C)
        self.blocks = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.lnf = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt2-124m", choices=SHAPES)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    L, NH, C, V, maxT = SHAPES[a.model]
    model = GPT2(L, NH, C, V, maxT)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=3e-4, betas=(0.9, 0.95))
    idx = torch.randint(0, V, (a.batch, a.seq))
    tgt = torch.randint(0, V, (a.batch, a.seq))
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    step = (time.perf_counter() - t0) / a.steps
    print(json.dumps({"bench": "train", "impl": "pytorch " + torch.__version__,
                      "model": a.model, "batch": a.batch, "seq": a.seq,
                      "threads": torch.get_num_threads(), "ms_per_step": round(step * 1e3, 2),
                      "tokens_per_s": round(a.batch * a.seq / step, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024, 1), "loss": round(loss.item(), 4)}))


if __name__ == "__main__":
    main()
