"""attnrank.torch: the exported module computes what the engine computes, outputs,
attention weights and gradients."""
import glob
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (Debian: python3-torch); "
                            "attnrank.torch is not tested")

import attnrank  # noqa: E402
import attnrank.torch as at  # noqa: E402
from attnrank import safetensors  # noqa: E402
from conftest import ROOT, TINY, tiny  # noqa: E402

CONFIGS = {
    "farthest": TINY,
    "free_rank": tiny(model={"dim": 6, "heads": 3, "rank": 2, "value_rank": 3,
                             "width_multiplier": 2, "layers": 2, "norm": "layer",
                             "norm_first": True, "positional": "concat", "positional_dim": 2},
                      task={"name": "nearest", "points": 4, "queries": 2}),
    "bare": tiny(model={"heads": 4, "width_multiplier": 2, "ffn": 0, "norm": "none",
                        "residual": False, "bias": False, "positional": "additive"}),
    "lm_tied": tiny(model={"dim": 8, "heads": 2, "layers": 2, "positional": "additive"},
                    task={"name": "lm", "length": 6}),
    "mlm_untied": tiny(model={"dim": 8, "heads": 2, "rank": 3, "positional": "additive",
                              "tie_embeddings": False}, task={"name": "mlm", "length": 6}),
    "icl": tiny(model={"dim": 8, "heads": 2, "norm": "layer", "positional": "additive"},
                task={"name": "icl-linear", "features": 3, "examples": 4}),
}


def model_of(name):
    """A model whose biases, norms and positional tables are not at their initial
    0/1, so that they count in the comparison."""
    model = attnrank.Model(CONFIGS[name], seed=7)
    rng = np.random.default_rng(1)
    for key, value in model.parameters.items():
        value += rng.normal(0, 0.2, value.shape).astype(np.float32)
    return model


def as_torch(x, dtype=torch.float32):
    return torch.from_numpy(x).long() if x.dtype.kind in "iu" else torch.from_numpy(x).to(dtype)


def torch_loss(model, outputs, y):
    """The task's loss written in PyTorch (docs/model.md)."""
    task = model.config["task"]
    y = torch.from_numpy(y)
    if task["name"] in ("lm", "mlm"):
        return torch.nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]),
                                                 y.long().reshape(-1), ignore_index=-1)
    if task["name"] == "icl-linear":
        scored = outputs[:, 0::2, 0] - y[:, 0::2].to(outputs.dtype)
        return (scored ** 2).sum() / (y.shape[0] * scored.shape[1] * task["features"])
    begin = 0 if task["name"] == "farthest" else task["points"]
    diff = (outputs - y.to(outputs.dtype))[:, begin:]
    return (diff ** 2).sum() / (y.shape[0] * diff.shape[1])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_outputs_and_attention_match(name):
    model = model_of(name)
    x, _ = model.training_batch(4, index=2)
    outputs, attention = model.forward(x, return_attention=True)
    net = at.to_module(model)
    with torch.no_grad():
        ours, weights = net(as_torch(x), return_attention=True)
        plain = net(as_torch(x))
    scale = max(1.0, float(np.abs(outputs).max()))
    assert np.abs(ours.numpy() - outputs).max() <= 1e-5 * scale
    assert torch.equal(plain, ours)
    assert len(weights) == len(attention)
    for a, b in zip(weights, attention):
        assert a.shape == b.shape and np.abs(a.numpy() - b).max() <= 1e-5


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gradients_match_autograd(name):
    model = model_of(name)
    x, y = model.training_batch(4, index=5)
    loss, grads = model.loss_and_grad(x, y)
    net = at.to_module(model, dtype=torch.float64)
    reference = torch_loss(model, net(as_torch(x, torch.float64)), y)
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-5)
    expected = at.named_gradients(net)
    assert expected.keys() == grads.keys()
    for key, value in expected.items():
        error = np.abs(grads[key] - value).max() / max(1e-3, np.abs(value).max())
        assert error < 1e-4, (key, error)


def test_golden_files_are_this_module():
    # The PyTorch golden files of the C++ tests (scripts/make_golden.py) in float64.
    torch.set_default_dtype(torch.float64)
    try:
        for path in sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "golden_*.safetensors"))):
            tensors, metadata = safetensors.read(path)
            if "adamw" in path:
                continue
            config = json.loads(metadata["config"])
            model, tokens = config["model"], int(metadata["tokens"])
            if "io" in config:
                sequence = dict(config["io"], tokens=tokens)
                x = torch.from_numpy(tensors["input"])
                x = x.long() if sequence["input"] == "tokens" else x
            else:
                task = config["task"]
                sequence = {"tokens": tokens, "mask": "prefix", "key_limit": task["points"]}
                x = torch.from_numpy(tensors["input"])
            net = at.AttnrankModule(model, sequence)
            at.load_parameters(net, {k: v for k, v in tensors.items()
                                     if k in at.attnrank_parameters(net)})
            with torch.no_grad():
                output = net(x).numpy()
            assert np.abs(output - tensors["output"]).max() < 1e-12, path
    finally:
        torch.set_default_dtype(torch.float32)


def test_from_a_run_or_a_path_without_touching_the_random_state(cli_run):
    state = torch.get_rng_state()
    by_path = at.to_module(cli_run)
    by_run = at.to_module(attnrank.Run(cli_run))
    assert torch.equal(torch.get_rng_state(), state)
    assert isinstance(by_path, torch.nn.Module)
    for a, b in zip(by_path.parameters(), by_run.parameters()):
        assert torch.equal(a, b) and a.dtype == torch.float32
    # Standard heads are PyTorch's own attention.
    assert isinstance(by_path.layers[0].attn[0], torch.nn.MultiheadAttention)
    assert isinstance(at.to_module(model_of("free_rank")).layers[0].attn[0],
                      at.FreeRankAttention)


def test_bad_arguments():
    with pytest.raises(TypeError, match="to_module: expected"):
        at.to_module(42)
    net = at.to_module(attnrank.Model(TINY))
    arrays = attnrank.Model(TINY).parameters
    with pytest.raises(ValueError, match="missing \\['layers.0.norm1.scale'\\]"):
        at.load_parameters(net, {k: v for k, v in arrays.items() if "norm1" not in k})
    with pytest.raises(ValueError, match="shape"):
        at.load_parameters(net, dict(arrays, **{"layers.0.mlp.fc1.bias": np.zeros(3)}))
