#!/usr/bin/python3
"""Writes the PyTorch golden files tests/golden/*.safetensors (see docs/golden.md).

Each model file holds, in float64 and under attnrank's tensor names and layouts
(include/attnrank/model.h, attention.h), the inputs, targets, every weight, the
output, the loss and every gradient of one small model built from PyTorch's own
modules (c nn.MultiheadAttention modules averaged, nn.Linear MLP, nn.LayerNorm or
the sphere norm). golden_adamw.safetensors holds five torch.optim.AdamW steps.

The script checks itself before writing: an independent numpy forward pass that
reads the weights in attnrank's layout must reproduce PyTorch's output and loss,
central finite differences of that numpy pass must match every recorded gradient
(so a wrong stacking or transposition is caught), the AdamW trajectory must match a
numpy re-implementation, and every written file is read back and compared.

Run with Debian's interpreter (torch 1.13): /usr/bin/python3 scripts/make_golden.py
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")
LAYER_NORM_EPS = 1e-5

# ---------------------------------------------------------------------------
# safetensors, by hand: u64 LE header length, JSON header, contiguous data. Same
# layout as attnrank's writer: "__metadata__" first, tensors in name order with keys
# dtype, shape, data_offsets, header padded with spaces to a multiple of 8.


def write_safetensors(path, tensors, metadata):
    header = {}
    if metadata:
        header["__metadata__"] = {key: metadata[key] for key in sorted(metadata)}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name], dtype="<f8")
        header[name] = {"dtype": "F64", "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        chunks.append(array.tobytes())
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    temporary = path + ".tmp"
    with open(temporary, "wb") as out:
        out.write(len(text).to_bytes(8, "little"))
        out.write(text)
        for chunk in chunks:
            out.write(chunk)
    os.replace(temporary, path)


def read_safetensors(path):
    """Reads a file written above, checking that the tensors tile the data buffer."""
    with open(path, "rb") as f:
        raw = f.read()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size].decode("utf-8"))
    data = raw[8 + size:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    covered = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        assert entry["dtype"] == "F64" and begin == covered, (path, name)
        assert end - begin == 8 * int(np.prod(entry["shape"], dtype=np.int64)), (path, name)
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f8").reshape(entry["shape"])
        covered = end
    assert covered == len(data), path
    return tensors, metadata


# ---------------------------------------------------------------------------
# The model, from PyTorch modules.


class SphereNorm(nn.Module):
    """x -> s * x / ||x|| over the last dim, one learnable scalar, no epsilon."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.scale * x / x.norm(dim=-1, keepdim=True)


def make_norm(kind, width):
    if kind == "sphere":
        return SphereNorm()
    if kind == "layer":
        return nn.LayerNorm(width, eps=LAYER_NORM_EPS)
    assert kind == "none", kind
    return None


class EncoderLayer(nn.Module):
    def __init__(self, model):
        super().__init__()
        width = model["width"]
        self.model = model
        self.attn = nn.ModuleList([
            nn.MultiheadAttention(width, model["heads"], bias=model["bias"], batch_first=True)
            for _ in range(model["width_multiplier"])])
        self.norm1 = make_norm(model["norm"], width)
        self.mlp = None
        self.norm2 = None
        if model["ffn"] > 0:
            self.mlp = nn.Sequential(nn.Linear(width, model["ffn"], bias=model["bias"]), nn.ReLU(),
                                     nn.Linear(model["ffn"], width, bias=model["bias"]))
            self.norm2 = make_norm(model["norm"], width)

    def attention(self, x, mask):
        outputs = [module(x, x, x, attn_mask=mask, need_weights=False)[0] for module in self.attn]
        return sum(outputs) / len(outputs)

    def forward(self, x, mask):
        norm1 = self.norm1 or nn.Identity()
        norm2 = self.norm2 or nn.Identity()
        residual = self.model["residual"]
        if self.model["norm_first"]:
            a = self.attention(norm1(x), mask)
            x = x + a if residual else a
            if self.mlp is not None:
                m = self.mlp(norm2(x))
                x = x + m if residual else m
        else:
            a = self.attention(x, mask)
            x = norm1(x + a if residual else a)
            if self.mlp is not None:
                m = self.mlp(x)
                x = norm2(x + m if residual else m)
        return x


class GoldenModel(nn.Module):
    def __init__(self, model, tokens):
        super().__init__()
        self.model = model
        self.pos = None
        if model["positional"] == "additive":
            self.pos = nn.Parameter(torch.zeros(tokens, model["dim"]))
        elif model["positional"] == "concat":
            self.pos = nn.Parameter(torch.zeros(tokens, model["positional_dim"]))
        self.layers = nn.ModuleList([EncoderLayer(model) for _ in range(model["layers"])])
        self.final_norm = make_norm(model["norm"], model["width"]) if model["norm_first"] else None

    def forward(self, x, mask):
        if self.model["positional"] == "additive":
            x = x + self.pos
        elif self.model["positional"] == "concat":
            x = torch.cat([x, self.pos.expand(x.shape[0], -1, -1)], dim=-1)
        for layer in self.layers:
            x = layer(x, mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x[..., :self.model["dim"]]


def norm_tensors(prefix, norm):
    """attnrank name -> PyTorch parameter of one norm."""
    if isinstance(norm, SphereNorm):
        return {prefix + ".scale": norm.scale}
    if isinstance(norm, nn.LayerNorm):
        return {prefix + ".weight": norm.weight, prefix + ".bias": norm.bias}
    return {}


def named_parameters(net):
    """attnrank name -> list of PyTorch parameters and how to combine them into our
    layout: 'rows' (concatenate along dim 0), 'columns' (along dim 1), 'stack'
    (new leading dim), 'one' (the tensor as is)."""
    out = {}
    if net.model["positional"] == "additive":
        out["pos.additive"] = ("one", [net.pos])
    elif net.model["positional"] == "concat":
        out["pos.concat"] = ("one", [net.pos])
    for index, layer in enumerate(net.layers):
        prefix = "layers.%d." % index
        modules = list(layer.attn)
        out[prefix + "attn.in_proj_weight"] = ("rows", [m.in_proj_weight for m in modules])
        out[prefix + "attn.out_proj_weight"] = ("columns", [m.out_proj.weight for m in modules])
        if net.model["bias"]:
            out[prefix + "attn.in_proj_bias"] = ("rows", [m.in_proj_bias for m in modules])
            out[prefix + "attn.out_proj_bias"] = ("stack", [m.out_proj.bias for m in modules])
        for name, p in norm_tensors(prefix + "norm1", layer.norm1).items():
            out[name] = ("one", [p])
        if layer.mlp is not None:
            fc1, fc2 = layer.mlp[0], layer.mlp[2]
            out[prefix + "mlp.fc1.weight"] = ("one", [fc1.weight])
            out[prefix + "mlp.fc2.weight"] = ("one", [fc2.weight])
            if net.model["bias"]:
                out[prefix + "mlp.fc1.bias"] = ("one", [fc1.bias])
                out[prefix + "mlp.fc2.bias"] = ("one", [fc2.bias])
            for name, p in norm_tensors(prefix + "norm2", layer.norm2).items():
                out[name] = ("one", [p])
    for name, p in norm_tensors("final_norm", net.final_norm).items():
        out[name] = ("one", [p])
    return out


def combine(how, tensors):
    arrays = [t.detach().numpy().copy() for t in tensors]
    if how == "one":
        return arrays[0]
    if how == "rows":
        return np.concatenate(arrays, axis=0)
    if how == "columns":
        return np.concatenate(arrays, axis=1)
    assert how == "stack", how
    return np.stack(arrays, axis=0)


def overwrite_non_matrix_parameters(net, generator):
    """Default init leaves biases at 0 and norms at identity; random non-zero values
    make the golden file exercise them. Values are kept away from 0."""
    def fill(p, low, high, symmetric):
        values = low + (high - low) * torch.rand(p.shape, generator=generator, dtype=torch.float64)
        if symmetric:
            signs = torch.randint(0, 2, p.shape, generator=generator).to(torch.float64) * 2 - 1
            values = values * signs
        with torch.no_grad():
            p.copy_(values)

    for name, (how, params) in named_parameters(net).items():
        for p in params:
            if name.endswith(".scale") or name.endswith("norm1.weight") or \
                    name.endswith("norm2.weight") or name == "final_norm.weight":
                fill(p, 0.5, 1.5, symmetric=False)
            elif name.startswith("pos."):
                fill(p, 0.1, 0.6, symmetric=True)
            elif "bias" in name:
                fill(p, 0.05, 0.3, symmetric=True)


# ---------------------------------------------------------------------------
# An independent forward pass in numpy that reads attnrank's layout.


def np_norm(kind, h, params, prefix):
    if kind == "sphere":
        return params[prefix + ".scale"][0] * h / np.sqrt((h * h).sum(-1, keepdims=True))
    if kind == "layer":
        mean = h.mean(-1, keepdims=True)
        var = ((h - mean) ** 2).mean(-1, keepdims=True)
        return (h - mean) / np.sqrt(var + LAYER_NORM_EPS) * params[prefix + ".weight"] + \
            params[prefix + ".bias"]
    return h


def blocked_keys(tokens, key_limit=None, causal=False):
    """(N, N) bool: True where query i may not attend to key j."""
    blocked = np.zeros((tokens, tokens), dtype=bool)
    if key_limit is not None:
        blocked[:, key_limit:] = True
    if causal:
        blocked |= np.triu(np.ones((tokens, tokens), dtype=bool), k=1)
    return blocked


def np_attention(model, h, params, prefix, key_limit):
    """key_limit: an int (keys visible to every query) or an (N, N) bool mask of blocked keys."""
    width, heads, modules = model["width"], model["heads"], model["width_multiplier"]
    rank, value_rank = model["rank"], model["value_rank"]
    block = heads * (2 * rank + value_rank)
    qkv = h @ params[prefix + "in_proj_weight"].T
    if model["bias"]:
        qkv = qkv + params[prefix + "in_proj_bias"]
    context = np.zeros(h.shape[:2] + (modules * heads * value_rank,))
    for m in range(modules):
        for k in range(heads):
            q = qkv[..., m * block + k * rank:m * block + (k + 1) * rank]
            key = qkv[..., m * block + (heads + k) * rank:m * block + (heads + k + 1) * rank]
            v0 = m * block + 2 * heads * rank + k * value_rank
            v = qkv[..., v0:v0 + value_rank]
            scores = q @ key.transpose(0, 2, 1) / np.sqrt(rank)
            if isinstance(key_limit, np.ndarray):
                scores[:, key_limit] = -np.inf
            else:
                scores[..., key_limit:] = -np.inf
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            c0 = (m * heads + k) * value_rank
            context[..., c0:c0 + value_rank] = probs @ v
    out = context @ params[prefix + "out_proj_weight"].T
    if model["bias"]:
        out = out + params[prefix + "out_proj_bias"].sum(0)
    return out / modules


def np_forward(model, params, x, key_limit):
    h = x
    if model["positional"] == "additive":
        h = h + params["pos.additive"]
    elif model["positional"] == "concat":
        pos = params["pos.concat"]
        h = np.concatenate([h, np.broadcast_to(pos, (h.shape[0],) + pos.shape)], axis=-1)
    kind, residual = model["norm"], model["residual"]
    for index in range(model["layers"]):
        p = "layers.%d." % index
        if model["norm_first"]:
            a = np_attention(model, np_norm(kind, h, params, p + "norm1"), params, p + "attn.",
                             key_limit)
            h = h + a if residual else a
            if model["ffn"] > 0:
                m = np_mlp(model, np_norm(kind, h, params, p + "norm2"), params, p)
                h = h + m if residual else m
        else:
            a = np_attention(model, h, params, p + "attn.", key_limit)
            h = np_norm(kind, h + a if residual else a, params, p + "norm1")
            if model["ffn"] > 0:
                m = np_mlp(model, h, params, p)
                h = np_norm(kind, h + m if residual else m, params, p + "norm2")
    if model["norm_first"]:
        h = np_norm(kind, h, params, "final_norm")
    return h[..., :model["dim"]]


def np_mlp(model, h, params, prefix):
    hidden = h @ params[prefix + "mlp.fc1.weight"].T
    if model["bias"]:
        hidden = hidden + params[prefix + "mlp.fc1.bias"]
    out = np.maximum(hidden, 0.0) @ params[prefix + "mlp.fc2.weight"].T
    if model["bias"]:
        out = out + params[prefix + "mlp.fc2.bias"]
    return out


def squared_error(output, target, begin, end):
    diff = output[:, begin:end] - target[:, begin:end]
    return (diff * diff).sum() / (output.shape[0] * (end - begin))


# ---------------------------------------------------------------------------
# Tasks.


def task_layout(task):
    """(tokens, first scored token, one past the last, keys visible to every query)."""
    if task["name"] == "farthest":
        return task["points"], 0, task["points"], task["points"]
    tokens = task["points"] + task["queries"]
    return tokens, task["points"], tokens, task["points"]


def make_batch(task, dim, batch, generator):
    tokens, begin, end, _ = task_layout(task)
    x = torch.randn(batch, tokens, dim, generator=generator, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    target = torch.zeros_like(x)
    points = x[:, :task["points"]]
    if task["name"] == "farthest":
        index = torch.bmm(points, points.transpose(1, 2)).argmin(dim=-1)  # (B, N)
    else:
        queries = x[:, begin:end]
        index = torch.bmm(queries, points.transpose(1, 2)).argmax(dim=-1)  # (B, Q)
    target[:, begin:end] = torch.gather(points, 1, index.unsqueeze(-1).expand(-1, -1, dim))
    return x, target


# ---------------------------------------------------------------------------
# Configurations.

MODEL_DEFAULTS = dict(dim=8, heads=1, rank=0, value_rank=0, width_multiplier=1, layers=1, ffn=16,
                      norm="sphere", norm_first=False, bias=True, positional="none",
                      positional_dim=64, residual=True)
FARTHEST = dict(name="farthest", points=5, queries=1)

CONFIGS = [
    ("post_sphere", "1 layer, 1 head, c=1, post-norm sphere, biases (farthest)",
     dict(), FARTHEST),
    ("pre_layernorm", "2 layers, 2 heads, c=3, pre-norm LayerNorm with final norm (farthest)",
     dict(layers=2, heads=2, width_multiplier=3, norm="layer", norm_first=True), FARTHEST),
    ("additive", "additive learned positional encodings, 2 heads, c=2 (farthest)",
     dict(heads=2, width_multiplier=2, positional="additive"), FARTHEST),
    ("concat", "concatenated positional encodings p=4 (width 12), 3 heads, c=2 (farthest)",
     dict(heads=3, width_multiplier=2, positional="concat", positional_dim=4), FARTHEST),
    ("nearest", "nearest task, 4 points + 2 queries, keys limited to the points, 2 heads, c=1",
     dict(heads=2), dict(name="nearest", points=4, queries=2)),
    ("bare_attention", "attention only: ffn 0, norm none, no residual, no bias, 4 heads, c=2",
     dict(heads=4, width_multiplier=2, ffn=0, norm="none", residual=False, bias=False), FARTHEST),
    ("published", "3 layers, 4 heads, c=2, post-norm sphere (the published kind, farthest N=6)",
     dict(layers=3, heads=4, width_multiplier=2), dict(name="farthest", points=6, queries=1)),
]
BATCH = 3


def resolve_model(overrides):
    model = dict(MODEL_DEFAULTS, **overrides)
    width = model["dim"] + (model["positional_dim"] if model["positional"] == "concat" else 0)
    assert width % model["heads"] == 0
    model["rank"] = model["value_rank"] = width // model["heads"]
    return model


def finite_difference_check(model, params, x, target, grads, key_limit, begin, end, seed):
    """Central differences of the numpy loss along one random direction per tensor."""
    rng = np.random.default_rng(seed)
    step = 1e-6
    worst = 0.0
    for name in sorted(grads):
        direction = rng.standard_normal(grads[name].shape)
        def loss_at(sign):
            shifted = {k: v.copy() for k, v in params.items()}
            inputs = x.copy()
            if name == "grad.input":
                inputs = inputs + sign * step * direction
            else:
                key = name[len("grad."):]
                shifted[key] = shifted[key] + sign * step * direction
            return squared_error(np_forward(model, shifted, inputs, key_limit), target, begin, end)
        numeric = (loss_at(1) - loss_at(-1)) / (2 * step)
        analytic = float((grads[name] * direction).sum())
        error = abs(numeric - analytic) / max(1.0, abs(analytic))
        assert error < 1e-7, "%s: finite difference %.12g vs gradient %.12g" % (
            name, numeric, analytic)
        worst = max(worst, error)
    return worst


def make_model_file(index, short, description, overrides, task):
    model = resolve_model(overrides)
    model["width"] = model["dim"] + (model["positional_dim"] if model["positional"] == "concat"
                                     else 0)
    seed = 1000 + index
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tokens, begin, end, key_limit = task_layout(task)

    net = GoldenModel(model, tokens).double()
    overwrite_non_matrix_parameters(net, generator)
    x, target = make_batch(task, model["dim"], BATCH, generator)
    x.requires_grad_(True)
    # Bool attn_mask: True where attention is not allowed (keys past the points).
    mask = torch.zeros(tokens, tokens, dtype=torch.bool)
    mask[:, key_limit:] = True
    output = net(x, mask if key_limit < tokens else None)
    loss = ((output[:, begin:end] - target[:, begin:end]) ** 2).sum() / (BATCH * (end - begin))
    loss.backward()

    params, tensors = {}, {}
    for name, (how, ps) in named_parameters(net).items():
        params[name] = combine(how, ps)
        tensors[name] = params[name]
        tensors["grad." + name] = combine(how, [p.grad for p in ps])
    covered = {id(p) for _, ps in named_parameters(net).values() for p in ps}
    assert covered == {id(p) for p in net.parameters()}, "a parameter has no attnrank name"
    tensors["input"] = x.detach().numpy().copy()
    tensors["target"] = target.numpy().copy()
    tensors["output"] = output.detach().numpy().copy()
    tensors["loss"] = np.array([loss.item()])
    tensors["grad.input"] = x.grad.numpy().copy()

    # Self-checks against the numpy re-implementation in attnrank's layout.
    np_output = np_forward(model, params, tensors["input"], key_limit)
    forward_error = np.abs(np_output - tensors["output"]).max()
    assert forward_error < 1e-12, "%s: numpy forward differs by %g" % (short, forward_error)
    np_loss = squared_error(tensors["output"], tensors["target"], begin, end)
    assert abs(np_loss - loss.item()) < 1e-12 * max(1.0, np_loss), short
    assert np.all(tensors["target"][:, :begin] == 0) and np.all(tensors["target"][:, end:] == 0)
    grads = {k: v for k, v in tensors.items() if k.startswith("grad.")}
    for name, grad in grads.items():
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), "%s: %s is zero" % (short, name)
    fd_error = finite_difference_check(model, params, tensors["input"], tensors["target"], grads,
                                       key_limit, begin, end, seed)

    config = {"model": {k: model[k] for k in MODEL_DEFAULTS}, "task": task, "batch": BATCH}
    metadata = {
        "format": "attnrank-golden",
        "description": description,
        "config": json.dumps(config, sort_keys=True),
        "tokens": str(tokens),
        "scored_tokens": json.dumps([begin, end]),
        "seed": str(seed),
        "generator": "scripts/make_golden.py, torch %s, float64" % torch.__version__,
    }
    path = os.path.join(OUT_DIR, "golden_%s.safetensors" % short)
    write_safetensors(path, tensors, metadata)
    check_written(path, tensors, metadata)
    print("%-40s %2d tensors %6d bytes  loss %.6f  numpy fwd err %.1e  fd err %.1e" % (
        os.path.relpath(path), len(tensors), os.path.getsize(path), loss.item(), forward_error,
        fd_error))


def check_written(path, tensors, metadata):
    back, back_metadata = read_safetensors(path)
    assert back_metadata == metadata, path
    assert sorted(back) == sorted(tensors), path
    for name, value in tensors.items():
        assert back[name].shape == np.shape(value) and np.array_equal(back[name], value), name


# ---------------------------------------------------------------------------
# Sequence models: the input and output stages (token embedding, linear read-in,
# tied or untied linear read-out), causal and bidirectional masks, cross-entropy.


class SequenceGoldenModel(nn.Module):
    """Input stage -> GoldenModel (positional encodings, encoder layers) -> output stage."""

    def __init__(self, model, io, tokens):
        super().__init__()
        self.io = io
        self.core = GoldenModel(model, tokens)
        dim, bias = model["dim"], model["bias"]
        self.embed = self.read_in = self.read_out = self.read_out_bias = None
        if io["input"] == "tokens":
            self.embed = nn.Embedding(io["input_width"], dim)
        elif io["input"] == "linear":
            self.read_in = nn.Linear(io["input_width"], dim, bias=bias)
        if io["output"] == "linear":
            if io["tied"]:
                if bias:
                    self.read_out_bias = nn.Parameter(torch.zeros(io["output_width"]))
            else:
                self.read_out = nn.Linear(dim, io["output_width"], bias=bias)

    def forward(self, x, mask):
        if self.embed is not None:
            x = self.embed(x)
        elif self.read_in is not None:
            x = self.read_in(x)
        h = self.core(x, mask)
        if self.io["output"] != "linear":
            return h
        if self.read_out is not None:
            return self.read_out(h)
        weight = self.embed.weight[:self.io["output_width"]]
        return nn.functional.linear(h, weight, self.read_out_bias)


def sequence_parameters(net):
    out = named_parameters(net.core)
    if net.embed is not None:
        out["embed.weight"] = ("one", [net.embed.weight])
    if net.read_in is not None:
        out["read_in.weight"] = ("one", [net.read_in.weight])
        if net.read_in.bias is not None:
            out["read_in.bias"] = ("one", [net.read_in.bias])
    if net.read_out is not None:
        out["read_out.weight"] = ("one", [net.read_out.weight])
        if net.read_out.bias is not None:
            out["read_out.bias"] = ("one", [net.read_out.bias])
    if net.read_out_bias is not None:
        out["read_out.bias"] = ("one", [net.read_out_bias])
    return out


def np_sequence_forward(model, io, params, x, blocked):
    if io["input"] == "tokens":
        h = params["embed.weight"][x.astype(np.int64)]
    elif io["input"] == "linear":
        h = x @ params["read_in.weight"].T
        if model["bias"]:
            h = h + params["read_in.bias"]
    else:
        h = x
    h = np_forward(model, params, h, blocked)
    if io["output"] != "linear":
        return h
    weight = params["embed.weight"][:io["output_width"]] if io["tied"] else \
        params["read_out.weight"]
    y = h @ weight.T
    if model["bias"]:
        y = y + params["read_out.bias"]
    return y


def np_cross_entropy(logits, labels):
    z = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1).astype(np.int64)
    keep = labels >= 0
    z = z[keep]
    top = z.max(-1, keepdims=True)
    log_sum = (top + np.log(np.exp(z - top).sum(-1, keepdims=True)))[:, 0]
    return (log_sum - z[np.arange(len(z)), labels[keep]]).mean()


def np_sequence_loss(io, output, tensors):
    if io["loss"] == "cross_entropy":
        return np_cross_entropy(output, tensors["labels"])
    return (tensors["loss_weights"] * (output - tensors["target"]) ** 2).sum()


SEQUENCE_CONFIGS = [
    ("lm_causal_tied",
     "causal LM: 11-token vocabulary, tied output layer, 2 layers, 2 heads, c=2, pre-norm "
     "LayerNorm, additive positions, cross-entropy with two ignored positions",
     dict(layers=2, heads=2, width_multiplier=2, norm="layer", norm_first=True,
          positional="additive"),
     dict(input="tokens", input_width=11, output="linear", output_width=11, tied=True,
          mask="causal", loss="cross_entropy", tokens=6)),
    ("mlm_untied",
     "masked LM: 12 input tokens (11 + mask), 11 classes, untied output layer, bidirectional, "
     "post-norm sphere, additive positions, 2 heads, loss at the masked positions only",
     dict(heads=2, positional="additive"),
     dict(input="tokens", input_width=12, output="linear", output_width=11, tied=False,
          mask="full", loss="cross_entropy", tokens=6)),
    ("mlm_tied_fewer_classes",
     "masked LM with the output tied to the first 11 of 12 embedding rows, no biases, "
     "post-norm LayerNorm, 4 heads",
     dict(heads=4, norm="layer", bias=False, positional="additive"),
     dict(input="tokens", input_width=12, output="linear", output_width=11, tied=True,
          mask="full", loss="cross_entropy", tokens=5)),
    ("icl_linear",
     "in-context regression: linear read-in of 4 features, causal, 2 layers, 2 heads, pre-norm "
     "LayerNorm, additive positions, linear read-out to 1 value, squared error at even positions",
     dict(layers=2, heads=2, norm="layer", norm_first=True, positional="additive"),
     dict(input="linear", input_width=4, output="linear", output_width=1, tied=False,
          mask="causal", loss="weighted_squared_error", tokens=7)),
]


def make_sequence_file(index, short, description, overrides, io):
    model = resolve_model(overrides)
    model["width"] = model["dim"] + (model["positional_dim"] if model["positional"] == "concat"
                                     else 0)
    model["tie_embeddings"] = io["tied"]
    seed = 3000 + index
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tokens = io["tokens"]
    net = SequenceGoldenModel(model, io, tokens).double()
    overwrite_non_matrix_parameters(net.core, generator)
    if net.read_out_bias is not None:
        with torch.no_grad():
            net.read_out_bias.copy_(0.2 * torch.randn(io["output_width"], generator=generator,
                                                      dtype=torch.float64))

    tensors = {}
    if io["input"] == "tokens":
        ids = torch.randint(0, io["input_width"], (BATCH, tokens), generator=generator)
        x = ids
        tensors["input"] = ids.numpy().astype(np.float64)
    else:
        width = io["input_width"] if io["input"] == "linear" else model["dim"]
        x = torch.randn(BATCH, tokens, width, generator=generator, dtype=torch.float64)
        x.requires_grad_(True)
    blocked = blocked_keys(tokens, causal=io["mask"] == "causal")
    output = net(x, torch.from_numpy(blocked) if blocked.any() else None)
    if io["loss"] == "cross_entropy":
        labels = torch.randint(0, io["output_width"], (BATCH, tokens), generator=generator)
        if io["mask"] == "causal":
            labels[0, 1] = labels[2, 4] = -1  # a few ignored positions
        else:
            scored = torch.rand(BATCH, tokens, generator=generator) < 0.4
            scored[:, 0] = True  # every sequence scores something
            labels[~scored] = -1
        loss = nn.functional.cross_entropy(output.reshape(-1, io["output_width"]),
                                           labels.reshape(-1), ignore_index=-1)
        tensors["labels"] = labels.numpy().astype(np.float64)
    else:
        target = torch.randn(BATCH, tokens, io["output_width"], generator=generator,
                             dtype=torch.float64)
        weights = torch.zeros_like(target)
        weights[:, 0::2] = 1.0 / (BATCH * ((tokens + 1) // 2) * (io["input_width"] - 1))
        loss = (weights * (output - target) ** 2).sum()
        tensors["target"] = target.numpy().copy()
        tensors["loss_weights"] = weights.numpy().copy()
    loss.backward()

    params = {}
    for name, (how, ps) in sequence_parameters(net).items():
        params[name] = combine(how, ps)
        tensors[name] = params[name]
        tensors["grad." + name] = combine(how, [p.grad for p in ps])
    covered = {id(p) for _, ps in sequence_parameters(net).values() for p in ps}
    assert covered == {id(p) for p in net.parameters()}, "a parameter has no attnrank name"
    if io["input"] != "tokens":
        tensors["input"] = x.detach().numpy().copy()
        tensors["grad.input"] = x.grad.numpy().copy()
    tensors["output"] = output.detach().numpy().copy()
    tensors["loss"] = np.array([loss.item()])

    # Self-checks against numpy in attnrank's layout, then finite differences.
    np_output = np_sequence_forward(model, io, params, tensors["input"], blocked)
    forward_error = np.abs(np_output - tensors["output"]).max()
    assert forward_error < 1e-12, "%s: numpy forward differs by %g" % (short, forward_error)
    np_loss = np_sequence_loss(io, np_output, tensors)
    assert abs(np_loss - loss.item()) < 1e-12 * max(1.0, abs(np_loss)), short
    grads = {k: v for k, v in tensors.items() if k.startswith("grad.")}
    rng = np.random.default_rng(seed)
    worst = 0.0
    for name in sorted(grads):
        assert np.all(np.isfinite(grads[name])) and np.any(grads[name] != 0), name
        direction = rng.standard_normal(grads[name].shape)

        def loss_at(sign):
            shifted = {k: v.copy() for k, v in params.items()}
            inputs = tensors["input"].copy()
            if name == "grad.input":
                inputs = inputs + sign * 1e-6 * direction
            else:
                shifted[name[len("grad."):]] += sign * 1e-6 * direction
            return np_sequence_loss(io, np_sequence_forward(model, io, shifted, inputs, blocked),
                                    tensors)
        numeric = (loss_at(1) - loss_at(-1)) / 2e-6
        analytic = float((grads[name] * direction).sum())
        error = abs(numeric - analytic) / max(1.0, abs(analytic))
        assert error < 1e-7, "%s %s: fd %.12g vs %.12g" % (short, name, numeric, analytic)
        worst = max(worst, error)

    config = {"model": {k: model[k] for k in list(MODEL_DEFAULTS) + ["tie_embeddings"]},
              "io": io, "batch": BATCH}
    metadata = {
        "format": "attnrank-golden",
        "description": description,
        "config": json.dumps(config, sort_keys=True),
        "tokens": str(tokens),
        "seed": str(seed),
        "generator": "scripts/make_golden.py, torch %s, float64" % torch.__version__,
    }
    path = os.path.join(OUT_DIR, "golden_%s.safetensors" % short)
    write_safetensors(path, tensors, metadata)
    check_written(path, tensors, metadata)
    print("%-40s %2d tensors %6d bytes  loss %.6f  numpy fwd err %.1e  fd err %.1e" % (
        os.path.relpath(path), len(tensors), os.path.getsize(path), loss.item(), forward_error,
        worst))


# ---------------------------------------------------------------------------
# AdamW.

ADAMW = dict(lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, steps=5)


def numpy_adamw(initial, grads, decay):
    """PyTorch's AdamW, written out; returns the parameters after each step."""
    lr, (b1, b2), eps, wd = ADAMW["lr"], ADAMW["betas"], ADAMW["eps"], ADAMW["weight_decay"]
    p = {k: v.copy() for k, v in initial.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    trajectory = []
    for step in range(1, ADAMW["steps"] + 1):
        for name in p:
            g = grads[step][name]
            if decay[name]:
                p[name] = p[name] * (1 - lr * wd)
            m[name] = b1 * m[name] + (1 - b1) * g
            v[name] = b2 * v[name] + (1 - b2) * g * g
            denom = np.sqrt(v[name]) / np.sqrt(1 - b2 ** step) + eps
            p[name] = p[name] - lr / (1 - b1 ** step) * m[name] / denom
        trajectory.append({k: x.copy() for k, x in p.items()})
    return trajectory


def make_adamw_file():
    generator = torch.Generator().manual_seed(2000)
    shapes = {"weight": (4, 3), "bias": (3,), "scale": (1,)}
    decay = {"weight": True, "bias": False, "scale": False}
    params = {name: nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64))
              for name, shape in shapes.items()}
    optimizer = torch.optim.AdamW(
        [{"params": [params["weight"]], "weight_decay": ADAMW["weight_decay"]},
         {"params": [params["bias"], params["scale"]], "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"])
    tensors = {"initial." + n: p.detach().numpy().copy() for n, p in params.items()}
    initial = {n: p.detach().numpy().copy() for n, p in params.items()}
    grads = {}
    for step in range(1, ADAMW["steps"] + 1):
        grads[step] = {}
        for name, p in params.items():
            # Gradients of varied scale, one element exactly 0 at step 1 and one tiny,
            # so the eps term and the moment history both matter.
            g = torch.randn(p.shape, generator=generator, dtype=torch.float64) * 10.0 ** (step - 3)
            if name == "bias" and step == 1:
                g[0] = 0.0
            if name == "bias" and step == 2:
                g[1] = 1e-9
            p.grad = g.clone()
            grads[step][name] = g.numpy().copy()
            tensors["grad.%d.%s" % (step, name)] = grads[step][name]
        optimizer.step()
        for name, p in params.items():
            tensors["after.%d.%s" % (step, name)] = p.detach().numpy().copy()

    expected = numpy_adamw(initial, grads, decay)
    worst = 0.0
    for step in range(1, ADAMW["steps"] + 1):
        for name in params:
            error = np.abs(expected[step - 1][name] - tensors["after.%d.%s" % (step, name)]).max()
            assert error < 1e-14, "AdamW step %d %s differs by %g" % (step, name, error)
            worst = max(worst, error)
    settings = dict(ADAMW, decay=decay, schedule="constant lr, no warm-up",
                    tensors=sorted(shapes))
    metadata = {
        "format": "attnrank-golden",
        "description": "torch.optim.AdamW, 5 steps; weight decay on 'weight' only",
        "adamw": json.dumps(settings, sort_keys=True),
        "layout": "initial.<name>, grad.<step>.<name>, after.<step>.<name>; steps 1..5",
        "generator": "scripts/make_golden.py, torch %s, float64" % torch.__version__,
    }
    path = os.path.join(OUT_DIR, "golden_adamw.safetensors")
    write_safetensors(path, tensors, metadata)
    check_written(path, tensors, metadata)
    print("%-40s %2d tensors %6d bytes  numpy AdamW err %.1e" % (
        os.path.relpath(path), len(tensors), os.path.getsize(path), worst))


def main():
    torch.set_default_dtype(torch.float64)
    os.makedirs(OUT_DIR, exist_ok=True)
    for index, (short, description, overrides, task) in enumerate(CONFIGS):
        make_model_file(index, short, description, overrides, task)
    for index, (short, description, overrides, io) in enumerate(SEQUENCE_CONFIGS):
        make_sequence_file(index, short, description, overrides, io)
    make_adamw_file()
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR)
                if f.endswith(".safetensors"))
    print("total %d bytes in %s" % (total, os.path.relpath(OUT_DIR)))
    assert total < 1 << 20, "golden files must stay under 1 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
