#!/usr/bin/env python3
"""PyTorch peer of attnrank's training step, built from torch.nn modules as a new
user of the published code would: c nn.MultiheadAttention modules averaged, post-norm
encoder layers with the sphere norm, ReLU MLP, the farthest-point task, mse*d loss,
AdamW with the warm-up + cosine schedule. With --task lm, the heads-lm model
instead: byte embedding (tied read-out), learned additive positions, pre-norm
LayerNorm layers whose causal attention has a free head size (--rank; written out,
as Debian's torch 1.13 has no scaled_dot_product_attention), a final LayerNorm and cross-entropy on the next byte
of random windows of a fixed random text. Prints one JSON line with the median
milliseconds per full training step (data generation included).

Run with Debian's interpreter: /usr/bin/python3 bench/torch_peer.py --layers 1 ...
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
from torch import nn


class SphereNorm(nn.Module):
    """x -> s * x / ||x||, one learnable scalar, no epsilon (published)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.scale * x / x.norm(dim=-1, keepdim=True)


class WideAttention(nn.Module):
    """c standard multi-head attention modules whose outputs are averaged."""

    def __init__(self, dim, heads, modules):
        super().__init__()
        self.heads = nn.ModuleList(
            [nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(modules)])

    def forward(self, x):
        return sum(m(x, x, x, need_weights=False)[0] for m in self.heads) / len(self.heads)


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, modules, ffn):
        super().__init__()
        self.attn = WideAttention(dim, heads, modules)
        self.norm1 = SphereNorm()
        self.mlp = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Linear(ffn, dim))
        self.norm2 = SphereNorm()

    def forward(self, x):
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


class FreeRankAttention(nn.Module):
    """H heads of query/key/value width `rank` (not dim / H), causal."""

    def __init__(self, dim, heads, rank):
        super().__init__()
        self.heads, self.rank = heads, rank
        self.qkv = nn.Linear(dim, 3 * heads * rank)
        self.out = nn.Linear(heads * rank, dim)

    def forward(self, x):
        batch, length, _ = x.shape
        q, k, v = (t.view(batch, length, self.heads, self.rank).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.rank)
        causal = torch.ones(length, length, dtype=torch.bool).triu(1)
        y = scores.masked_fill(causal, float("-inf")).softmax(dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(batch, length, self.heads * self.rank))


class PreNormLayer(nn.Module):
    def __init__(self, dim, heads, rank, ffn):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = FreeRankAttention(dim, heads, rank)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Linear(ffn, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ByteLanguageModel(nn.Module):
    def __init__(self, dim, heads, rank, ffn, layers, length):
        super().__init__()
        self.embed = nn.Embedding(256, dim)
        self.position = nn.Parameter(torch.randn(length, dim) / math.sqrt(dim))
        self.layers = nn.Sequential(*[PreNormLayer(dim, heads, rank, ffn) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens):
        x = self.layers(self.embed(tokens) + self.position)
        return self.norm(x) @ self.embed.weight.T  # tied read-out


def lm_batch(text, batch, length, generator):
    starts = torch.randint(0, text.numel() - length - 1, (batch, 1), generator=generator)
    windows = text[starts + torch.arange(length + 1)]
    return windows[:, :-1], windows[:, 1:]


def farthest_batch(batch, points, dim, generator):
    x = torch.randn(batch, points, dim, generator=generator)
    x = x / x.norm(dim=-1, keepdim=True)
    index = torch.bmm(x, x.transpose(1, 2)).argmin(dim=-1)
    target = torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, dim))
    return x, target


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--width-multiplier", type=int, default=1)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--ffn", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--task", choices=["farthest", "lm"], default="farthest")
    parser.add_argument("--rank", type=int, help="lm: head size (default dim / heads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    if args.task == "lm":
        rank = args.rank or args.dim // args.heads
        model = ByteLanguageModel(args.dim, args.heads, rank, args.ffn, args.layers, args.points)
        text = torch.randint(0, 256, (1 << 20,), generator=generator)
    else:
        model = nn.Sequential(*[EncoderLayer(args.dim, args.heads, args.width_multiplier, args.ffn)
                                for _ in range(args.layers)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.9, 0.95), weight_decay=0.0)
    total_steps, warmup = 100000, 5000
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else
        0.5 * (1 + math.cos(math.pi * (s - warmup) / (total_steps - warmup))))
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        if args.task == "lm":
            tokens, target = lm_batch(text, args.batch, args.points, generator)
            loss = nn.functional.cross_entropy(model(tokens).flatten(0, 1), target.flatten())
        else:
            x, target = farthest_batch(args.batch, args.points, args.dim, generator)
            loss = nn.functional.mse_loss(model(x), target) * args.dim
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        times.append((time.perf_counter() - start) * 1000.0)
    measured = times[3:] if len(times) > 3 else times
    print(json.dumps({
        "ms_per_step": statistics.median(measured),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": float(loss),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
