#!/usr/bin/python3
"""Writes the PyTorch golden files tests/golden/*.safetensors (see docs/golden.md).

Each model file holds, in float64 and under attnrank's tensor names and layouts
(include/attnrank/model.h, attention.h), the inputs, targets, every weight, the
output, the loss and every gradient of one small model built from PyTorch's own
modules (c nn.MultiheadAttention modules averaged, nn.Linear MLP, nn.LayerNorm or
the sphere norm): attnrank.torch.AttnrankModule of python/, the module that
attnrank.torch.to_module exports. golden_adamw.safetensors holds five
torch.optim.AdamW steps.

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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from attnrank import safetensors  # noqa: E402 (the package of this checkout)
from attnrank.torch import LAYER_NORM_EPS, AttnrankModule, attnrank_parameters, gather  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")

# The model (attnrank.torch: PyTorch's own modules plus the sphere norm, in the
# layout of docs/model.md) and safetensors I/O (attnrank.safetensors, the same bytes
# as attnrank's C++ writer) come from the Python package, so the golden reference
# and attnrank.torch.to_module are one model.

def overwrite_non_matrix_parameters(parameters, generator):
    """Default init leaves biases at 0 and norms at identity; random non-zero values
    make the golden file exercise them. Values are kept away from 0. `parameters`:
    attnrank_parameters of the encoder (the input and output stages keep theirs)."""
    def fill(p, low, high, symmetric):
        values = low + (high - low) * torch.rand(p.shape, generator=generator, dtype=torch.float64)
        if symmetric:
            signs = torch.randint(0, 2, p.shape, generator=generator).to(torch.float64) * 2 - 1
            values = values * signs
        with torch.no_grad():
            p.copy_(values)

    for name, (how, params) in parameters.items():
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

    # Keys past the points are blocked (prefix mask; none for farthest).
    net = AttnrankModule(model, dict(tokens=tokens, mask="prefix", key_limit=key_limit)).double()
    overwrite_non_matrix_parameters(attnrank_parameters(net), generator)
    x, target = make_batch(task, model["dim"], BATCH, generator)
    x.requires_grad_(True)
    output = net(x)
    loss = ((output[:, begin:end] - target[:, begin:end]) ** 2).sum() / (BATCH * (end - begin))
    loss.backward()

    params, tensors = {}, {}
    for name, (how, ps) in attnrank_parameters(net).items():
        params[name] = gather(how, ps)
        tensors[name] = params[name]
        tensors["grad." + name] = gather(how, [p.grad for p in ps])
    covered = {id(p) for _, ps in attnrank_parameters(net).values() for p in ps}
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
    write_float64(path, tensors, metadata)
    check_written(path, tensors, metadata)
    print("%-40s %2d tensors %6d bytes  loss %.6f  numpy fwd err %.1e  fd err %.1e" % (
        os.path.relpath(path), len(tensors), os.path.getsize(path), loss.item(), forward_error,
        fd_error))


def write_float64(path, tensors, metadata):
    safetensors.save_file({name: np.asarray(value, dtype="<f8") for name, value in tensors.items()},
                          path, metadata)


def check_written(path, tensors, metadata):
    back, back_metadata = safetensors.read(path)
    assert back_metadata == metadata, path
    assert sorted(back) == sorted(tensors), path
    for name, value in tensors.items():
        assert back[name].shape == np.shape(value) and np.array_equal(back[name], value), name


# ---------------------------------------------------------------------------
# Sequence models: the input and output stages (token embedding, linear read-in,
# tied or untied linear read-out), causal and bidirectional masks, cross-entropy.
STAGES = ("embed.", "read_in.", "read_out.")


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
    net = AttnrankModule(model, dict(io, tokens=tokens)).double()
    overwrite_non_matrix_parameters(
        {k: v for k, v in attnrank_parameters(net).items() if not k.startswith(STAGES)},
        generator)
    if net.tied and model["bias"]:
        with torch.no_grad():
            net.read_out["bias"].copy_(0.2 * torch.randn(io["output_width"], generator=generator,
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
    output = net(x)
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
    for name, (how, ps) in attnrank_parameters(net).items():
        params[name] = gather(how, ps)
        tensors[name] = params[name]
        tensors["grad." + name] = gather(how, [p.grad for p in ps])
    covered = {id(p) for _, ps in attnrank_parameters(net).values() for p in ps}
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
    write_float64(path, tensors, metadata)
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
    write_float64(path, tensors, metadata)
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
