"""attnrank models as PyTorch modules.

to_module(run_or_model) builds a torch.nn.Module from PyTorch's own modules
(nn.MultiheadAttention, nn.Linear, nn.LayerNorm, nn.Embedding) plus the sphere
norm, loads an attnrank model's parameters into it, and gives the same outputs on
the same inputs (docs/model.md is the definition both follow). A head whose width
PyTorch's attention cannot express (rank or value_rank other than width / heads)
is a FreeRankAttention: the same computation, written out.

scripts/make_golden.py builds its PyTorch reference models with these classes, so
the golden files the C++ tests compare against and this export are one model.
"""
import math
import os
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn import functional

__all__ = ["to_module", "AttnrankModule", "SphereNorm", "FreeRankAttention", "blocked_keys",
           "attnrank_parameters", "gather", "load_parameters", "named_gradients"]

LAYER_NORM_EPS = 1e-5


class SphereNorm(nn.Module):
    """x -> s * x / ||x|| over the last dim, one learnable scalar s, no epsilon."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.scale * x / x.norm(dim=-1, keepdim=True)


def make_norm(kind, width):
    """The norm of model.norm: sphere, layer (nn.LayerNorm, eps 1e-5) or none (None)."""
    if kind == "sphere":
        return SphereNorm()
    if kind == "layer":
        return nn.LayerNorm(width, eps=LAYER_NORM_EPS)
    if kind != "none":
        raise ValueError("model.norm: unknown norm '%s'" % kind)
    return None


class FreeRankAttention(nn.Module):
    """One multi-head attention module with free head widths: H heads of query/key
    width r and value width r_v on tokens of width D (nn.MultiheadAttention fixes
    r = r_v = D/H). Parameters as nn.MultiheadAttention's: in_proj_weight
    (H*(2r+r_v), D) = [W_Q; W_K; W_V] with head h at rows h*r (h*r_v for values),
    in_proj_bias, out_proj (nn.Linear from H*r_v to D)."""

    def __init__(self, width, heads, rank, value_rank, bias=True):
        super().__init__()
        self.heads, self.rank, self.value_rank = heads, rank, value_rank
        self.in_proj_weight = nn.Parameter(torch.empty(heads * (2 * rank + value_rank), width))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.zeros(heads * (2 * rank + value_rank)))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(heads * value_rank, width, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, x, attn_mask=None, need_weights=False):
        """x: (B, N, D); attn_mask: (N, N) bool, True where a query may not attend
        to a key. Returns (output (B, N, D), weights (B, H, N, N) or None)."""
        batch, tokens, _ = x.shape
        h, r, rv = self.heads, self.rank, self.value_rank
        qkv = functional.linear(x, self.in_proj_weight, self.in_proj_bias)
        q = qkv[..., :h * r].reshape(batch, tokens, h, r).transpose(1, 2)
        k = qkv[..., h * r:2 * h * r].reshape(batch, tokens, h, r).transpose(1, 2)
        v = qkv[..., 2 * h * r:].reshape(batch, tokens, h, rv).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(r)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(batch, tokens, h * rv)
        return self.out_proj(context), (weights if need_weights else None)


def blocked_keys(tokens, mask="full", key_limit=0):
    """(N, N) bool tensor, True where query i may not attend to key j, or None when
    every query sees every key. mask: full, prefix (keys [0, key_limit) only) or
    causal."""
    if mask == "full":
        return None
    if mask == "prefix":
        blocked = torch.zeros(tokens, tokens, dtype=torch.bool)
        blocked[:, key_limit:] = True
        return blocked if key_limit < tokens else None
    if mask == "causal":
        return torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), diagonal=1)
    raise ValueError("unknown attention mask '%s'" % mask)


def model_width(model):
    return model["dim"] + (model["positional_dim"] if model["positional"] == "concat" else 0)


class EncoderLayer(nn.Module):
    """One encoder layer (docs/model.md): c attention modules averaged, norms,
    optional MLP, post-norm or pre-norm."""

    def __init__(self, model):
        super().__init__()
        width, heads = model_width(model), model["heads"]
        self.norm_first, self.residual = model["norm_first"], model["residual"]
        rank = model.get("rank") or width // heads
        value_rank = model.get("value_rank") or rank
        standard = width % heads == 0 and rank == value_rank == width // heads
        self.attn = nn.ModuleList([
            nn.MultiheadAttention(width, heads, bias=model["bias"], batch_first=True) if standard
            else FreeRankAttention(width, heads, rank, value_rank, bias=model["bias"])
            for _ in range(model["width_multiplier"])])
        self.norm1 = make_norm(model["norm"], width)
        self.mlp = None
        self.norm2 = None
        if model["ffn"] > 0:
            self.mlp = nn.Module()
            self.mlp.fc1 = nn.Linear(width, model["ffn"], bias=model["bias"])
            self.mlp.fc2 = nn.Linear(model["ffn"], width, bias=model["bias"])
            self.norm2 = make_norm(model["norm"], width)

    def attention(self, x, mask, need_weights=False):
        """(mean of the modules' outputs, [weights (B, H, N, N) of each module] or None)."""
        outputs, weights = [], []
        for module in self.attn:
            if isinstance(module, nn.MultiheadAttention):
                out, w = module(x, x, x, attn_mask=mask, need_weights=need_weights,
                                average_attn_weights=False)
            else:
                out, w = module(x, attn_mask=mask, need_weights=need_weights)
            outputs.append(out)
            weights.append(w)
        return sum(outputs) / len(outputs), (weights if need_weights else None)

    def _mlp(self, x):
        return self.mlp.fc2(torch.relu(self.mlp.fc1(x)))

    def forward(self, x, mask=None, need_weights=False):
        norm1 = self.norm1 if self.norm1 is not None else (lambda h: h)
        norm2 = self.norm2 if self.norm2 is not None else (lambda h: h)
        if self.norm_first:
            a, weights = self.attention(norm1(x), mask, need_weights)
            x = x + a if self.residual else a
            if self.mlp is not None:
                m = self._mlp(norm2(x))
                x = x + m if self.residual else m
        else:
            a, weights = self.attention(x, mask, need_weights)
            x = norm1(x + a if self.residual else a)
            if self.mlp is not None:
                m = self._mlp(x)
                x = norm2(x + m if self.residual else m)
        return x, weights


class AttnrankModule(nn.Module):
    """An attnrank model as a torch.nn.Module.

    model: the config's model section (dim, heads, rank, value_rank,
    width_multiplier, layers, ffn, norm, norm_first, bias, positional,
    positional_dim, residual, tie_embeddings); sequence: what the task feeds it, as
    attnrank.Model.sequence gives it: tokens (N), mask (full, prefix, causal),
    key_limit, input (vectors, tokens, linear) and input_width, output (vectors,
    linear) and output_width. forward(x) takes (B, N, input width) values or (B, N)
    token ids (long) and returns (B, N, output width)."""

    def __init__(self, model, sequence):
        super().__init__()
        self.model = dict(model)
        self.sequence = dict(sequence)
        dim, tokens, bias = model["dim"], sequence["tokens"], model["bias"]
        self.pos = None
        if model["positional"] == "additive":
            self.pos = nn.ParameterDict({"additive": nn.Parameter(torch.zeros(tokens, dim))})
        elif model["positional"] == "concat":
            self.pos = nn.ParameterDict(
                {"concat": nn.Parameter(torch.zeros(tokens, model["positional_dim"]))})
        self.layers = nn.ModuleList([EncoderLayer(model) for _ in range(model["layers"])])
        self.final_norm = make_norm(model["norm"], model_width(model)) \
            if model["norm_first"] else None
        # Created after the layers, so a seeded construction draws the same
        # initial values as scripts/make_golden.py always has.
        kind = sequence.get("input", "vectors")
        self.embed = self.read_in = self.read_out = None
        if kind == "tokens":
            self.embed = nn.Embedding(sequence["input_width"], dim)
        elif kind == "linear":
            self.read_in = nn.Linear(sequence["input_width"], dim, bias=bias)
        self.tied = False
        if sequence.get("output", "vectors") == "linear":
            width = sequence["output_width"]
            # The engine's rule (model.cpp): tie only a token input at least as wide.
            self.tied = bool(model.get("tie_embeddings", False) and kind == "tokens"
                             and width <= sequence["input_width"])
            if not self.tied:
                self.read_out = nn.Linear(dim, width, bias=bias)
            elif bias:
                self.read_out = nn.ParameterDict({"bias": nn.Parameter(torch.zeros(width))})
        self.register_buffer("blocked", blocked_keys(tokens, sequence.get("mask", "full"),
                                                     sequence.get("key_limit", 0)))

    def forward(self, x, return_attention=False):
        """Outputs (B, N, output width); with return_attention, (outputs, [each
        layer's attention weights, (B, c*heads, N, N)])."""
        h = x
        if self.embed is not None:
            h = self.embed(x)
        elif self.read_in is not None:
            h = self.read_in(x)
        if self.model["positional"] == "additive":
            h = h + self.pos["additive"]
        elif self.model["positional"] == "concat":
            table = self.pos["concat"]
            h = torch.cat([h, table.expand(h.shape[0], -1, -1)], dim=-1)
        attention = []
        for layer in self.layers:
            h, weights = layer(h, self.blocked, need_weights=return_attention)
            if return_attention:
                attention.append(torch.cat(weights, dim=1))
        if self.final_norm is not None:
            h = self.final_norm(h)
        h = h[..., :self.model["dim"]]
        if self.sequence.get("output", "vectors") == "linear":
            if self.tied:
                bias = self.read_out["bias"] if self.read_out is not None else None
                h = functional.linear(h, self.embed.weight[:self.sequence["output_width"]], bias)
            else:
                h = self.read_out(h)
        return (h, attention) if return_attention else h


def _norm_parameters(prefix, norm):
    if isinstance(norm, SphereNorm):
        return [(prefix + ".scale", ("one", [norm.scale]))]
    if isinstance(norm, nn.LayerNorm):
        return [(prefix + ".weight", ("one", [norm.weight])),
                (prefix + ".bias", ("one", [norm.bias]))]
    return []


def attnrank_parameters(net):
    """attnrank tensor name -> (how, [PyTorch parameters]): how the parameters make
    the tensor of docs/model.md: 'rows' (concatenated along dim 0), 'columns' (along
    dim 1), 'stack' (a new leading dim) or 'one' (as is). In model order."""
    out = OrderedDict()
    if net.pos is not None:
        for name, p in net.pos.items():
            out["pos." + name] = ("one", [p])
    for index, layer in enumerate(net.layers):
        prefix = "layers.%d." % index
        modules = list(layer.attn)
        out[prefix + "attn.in_proj_weight"] = ("rows", [m.in_proj_weight for m in modules])
        out[prefix + "attn.out_proj_weight"] = ("columns", [m.out_proj.weight for m in modules])
        if net.model["bias"]:
            out[prefix + "attn.in_proj_bias"] = ("rows", [m.in_proj_bias for m in modules])
            out[prefix + "attn.out_proj_bias"] = ("stack", [m.out_proj.bias for m in modules])
        out.update(_norm_parameters(prefix + "norm1", layer.norm1))
        if layer.mlp is not None:
            fc1, fc2 = layer.mlp.fc1, layer.mlp.fc2
            out[prefix + "mlp.fc1.weight"] = ("one", [fc1.weight])
            out[prefix + "mlp.fc2.weight"] = ("one", [fc2.weight])
            if net.model["bias"]:
                out[prefix + "mlp.fc1.bias"] = ("one", [fc1.bias])
                out[prefix + "mlp.fc2.bias"] = ("one", [fc2.bias])
            out.update(_norm_parameters(prefix + "norm2", layer.norm2))
    out.update(_norm_parameters("final_norm", net.final_norm))
    if net.embed is not None:
        out["embed.weight"] = ("one", [net.embed.weight])
    if net.read_in is not None:
        out["read_in.weight"] = ("one", [net.read_in.weight])
        if net.read_in.bias is not None:
            out["read_in.bias"] = ("one", [net.read_in.bias])
    if isinstance(net.read_out, nn.Linear):
        out["read_out.weight"] = ("one", [net.read_out.weight])
        if net.read_out.bias is not None:
            out["read_out.bias"] = ("one", [net.read_out.bias])
    elif net.read_out is not None:
        out["read_out.bias"] = ("one", [net.read_out["bias"]])
    return out


def gather(how, tensors):
    """One attnrank tensor (numpy) from its PyTorch parts (attnrank_parameters)."""
    arrays = [t.detach().cpu().numpy().copy() for t in tensors]
    if how == "one":
        return arrays[0]
    if how == "rows":
        return np.concatenate(arrays, axis=0)
    if how == "columns":
        return np.concatenate(arrays, axis=1)
    if how != "stack":
        raise ValueError("unknown layout '%s'" % how)
    return np.stack(arrays, axis=0)


def _split(how, value, parts):
    if how == "one":
        return [value]
    if how == "stack":
        return [value[i] for i in range(len(parts))]
    axis = 0 if how == "rows" else 1
    sizes = np.cumsum([p.shape[axis] for p in parts])[:-1]
    return np.split(value, sizes, axis=axis)


def load_parameters(net, arrays):
    """Copies attnrank tensors (name -> array, e.g. Model.parameters or a
    checkpoint's load_file) into the module; every tensor must be there, with its
    shape, and no other."""
    layout = attnrank_parameters(net)
    missing = [name for name in layout if name not in arrays]
    extra = [name for name in arrays if name not in layout]
    if missing or extra:
        raise ValueError("parameters do not match the module: missing %s, unexpected %s"
                         % (missing or "none", extra or "none"))
    with torch.no_grad():
        for name, (how, parts) in layout.items():
            value = np.asarray(arrays[name])
            expected = gather(how, parts).shape
            if value.shape != expected:
                raise ValueError("%s: shape %s, the module needs %s"
                                 % (name, value.shape, expected))
            for part, piece in zip(parts, _split(how, value, parts)):
                part.copy_(torch.from_numpy(np.ascontiguousarray(piece)).to(part.dtype))


def named_gradients(net):
    """attnrank tensor name -> the gradient (numpy) that autograd left in the module,
    in attnrank's layout (compare with Model.loss_and_grad)."""
    return {name: gather(how, [p.grad if p.grad is not None else torch.zeros_like(p)
                               for p in parts])
            for name, (how, parts) in attnrank_parameters(net).items()}


def to_module(run_or_model, dtype=torch.float32):
    """A torch.nn.Module computing what an attnrank model computes.

    run_or_model: an attnrank.Model, an attnrank.Run, or a run directory. The
    module holds copies of the parameters (in `dtype`); its outputs match the
    engine's to float32 rounding (1e-5) on the same inputs, with token ids as a
    long tensor. attnrank_parameters(module) maps its parameters to attnrank's
    tensor names."""
    from .model import Model
    from .run import Run
    if isinstance(run_or_model, Run):
        model = run_or_model.model
    elif isinstance(run_or_model, Model):
        model = run_or_model
    elif isinstance(run_or_model, (str, os.PathLike)):
        model = Model.load(run_or_model)
    else:
        raise TypeError("to_module: expected an attnrank.Model, an attnrank.Run or a run "
                        "directory, got %s" % type(run_or_model).__name__)
    # The initial values are overwritten at once: draw them without touching the
    # caller's random state.
    with torch.random.fork_rng(devices=[]):
        net = AttnrankModule(model.config["model"], model.sequence)
    net = net.to(dtype)
    load_parameters(net, model.parameters)
    return net
