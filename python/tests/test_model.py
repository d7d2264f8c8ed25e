"""attnrank.Model: forward (with attention), loss_and_grad, parameter views, load/save."""
import os
import shutil

import numpy as np
import pytest

import attnrank
from attnrank import safetensors
from conftest import TINY, tiny

NEAREST = tiny(model={"dim": 6, "heads": 3, "rank": 2, "value_rank": 3, "width_multiplier": 2,
                      "layers": 2},
               task={"name": "nearest", "points": 4, "queries": 2})
LM = tiny(model={"dim": 8, "heads": 2, "positional": "additive"},
          task={"name": "lm", "length": 6})
ICL = tiny(model={"dim": 8, "heads": 2, "positional": "additive"},
           task={"name": "icl-linear", "features": 3, "examples": 4})


def test_forward_and_attention_shapes_and_masks():
    model = attnrank.Model(NEAREST)
    assert model.sequence == {"tokens": 6, "mask": "prefix", "key_limit": 4, "input": "vectors",
                              "input_width": 6, "output": "vectors", "output_width": 6,
                              "tied": False}
    x, y = model.training_batch(5)
    assert x.shape == y.shape == (5, 6, 6) and x.dtype == np.float32
    out = model.forward(x)
    assert out.shape == (5, 6, 6) and out.dtype == np.float32
    again, attention = model.forward(x, return_attention=True)
    np.testing.assert_array_equal(out, again)
    assert len(attention) == 2  # one per layer, c*H = 6 heads each
    for weights in attention:
        assert weights.shape == (5, 6, 6, 6)
        np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-5)
        assert np.all(weights[..., 4:] == 0)  # every query sees the 4 points only
    # Fresh arrays, not views on the engine's buffers.
    model.forward(x[:1] * 0 + 1)
    np.testing.assert_array_equal(again, out)


def test_causal_token_model():
    model = attnrank.Model(LM)
    assert model.sequence["input"] == "tokens" and model.sequence["tied"]
    ids, labels = model.training_batch(3)
    assert ids.shape == labels.shape == (3, 6) and ids.dtype == np.int32
    logits, (weights,) = model.forward(ids.astype(np.int64), return_attention=True)
    assert logits.shape == (3, 6, 256)
    assert np.all(np.triu(np.ones((6, 6)), 1)[None, None] * weights == 0)
    loss, grads = model.loss_and_grad(ids, labels)
    assert abs(loss - np.log(256)) < 1.0 and "read_out.weight" not in grads


def test_loss_and_grad_views():
    model = attnrank.Model(TINY)
    x, y = model.training_batch(8, index=3)
    loss, grads = model.loss_and_grad(x, y)
    assert isinstance(loss, float) and loss > 0
    params = model.parameters
    assert list(grads) == list(params) and len(params) == 10
    for name, grad in grads.items():
        assert grad.shape == params[name].shape and grad.dtype == np.float32
        assert not grad.flags.writeable and np.any(grad != 0)
    # Zero-copy: the views share the engine's gradient arena, overwritten by the next call.
    kept = {name: g.copy() for name, g in grads.items()}
    assert np.shares_memory(grads["layers.0.mlp.fc1.weight"],
                            model.gradients["layers.0.mlp.fc1.weight"])
    loss2, _ = model.loss_and_grad(x[:2], y[:2])
    assert loss2 != loss and not np.array_equal(kept["layers.0.mlp.fc1.weight"],
                                                grads["layers.0.mlp.fc1.weight"])
    with pytest.raises(ValueError):
        grads["layers.0.mlp.fc1.weight"][0, 0] = 1


def test_loss_matches_a_finite_difference():
    model = attnrank.Model(tiny(model={"norm": "layer"}))
    x, y = model.training_batch(4)
    _, grads = model.loss_and_grad(x, y)
    weight = model.parameters["layers.0.attn.in_proj_weight"]
    analytic = float(grads["layers.0.attn.in_proj_weight"][1, 2])
    step = 1e-2
    weight[1, 2] += step
    up = model.loss_and_grad(x, y)[0]
    weight[1, 2] -= 2 * step
    down = model.loss_and_grad(x, y)[0]
    weight[1, 2] += step
    assert abs((up - down) / (2 * step) - analytic) < 1e-3 * max(1, abs(analytic))


def test_parameters_are_writable_views():
    model = attnrank.Model(TINY, seed=5)
    x, _ = model.training_batch(2)
    before = model.forward(x)
    params = model.parameters
    assert params["layers.0.mlp.fc2.bias"].flags.writeable
    params["layers.0.mlp.fc2.bias"][:] += 1.0  # the engine sees the change
    assert not np.allclose(model.forward(x), before)
    params["layers.0.mlp.fc2.bias"][:] -= 1.0
    np.testing.assert_allclose(model.forward(x), before, atol=1e-6)
    assert model.num_parameters == sum(p.size for p in params.values())
    # seed: a different initialisation; the config's train.seed by default.
    other = attnrank.Model(TINY, seed=6).parameters["layers.0.attn.in_proj_weight"]
    assert not np.array_equal(other, params["layers.0.attn.in_proj_weight"])
    np.testing.assert_array_equal(attnrank.Model(TINY).parameters["layers.0.attn.in_proj_weight"],
                                  attnrank.Model(TINY, seed=0).parameters[
                                      "layers.0.attn.in_proj_weight"])


def test_load_a_cli_run_and_save(cli_run, tmp_path):
    model = attnrank.Model.load(cli_run)
    assert model.config["train"]["steps"] == 120 and "farthest" in repr(model)
    stored = safetensors.load_file(os.path.join(cli_run, "model.safetensors"))
    for name, value in model.parameters.items():
        np.testing.assert_array_equal(value, stored[name])
    model.parameters["layers.0.norm1.scale"][0] = 2.5
    model.save(tmp_path / "saved")
    back = attnrank.Model.load(tmp_path / "saved")
    assert back.parameters["layers.0.norm1.scale"][0] == 2.5
    assert back.config == model.config
    x, _ = model.training_batch(3)
    np.testing.assert_array_equal(back.forward(x), model.forward(x))
    assert attnrank.Run(tmp_path / "saved").model.num_parameters == model.num_parameters


def test_bad_arrays_raise_value_errors():
    model = attnrank.Model(TINY)
    x, y = model.training_batch(2)
    cases = [
        (lambda: model.forward(x[:, :2]), r"x: expected shape \(B, 3, 4\), got \(2, 2, 4\)"),
        (lambda: model.forward(x[0]), r"got \(3, 4\)"),
        (lambda: model.forward(x[:0]), r"got \(0, 3, 4\)"),
        (lambda: model.forward(x.astype(complex)), "expected a real array"),
        (lambda: model.loss_and_grad(x, y[:, :, :2]), r"y: expected targets of shape \(2, 3, 4\)"),
        (lambda: model.training_batch(0), "size: must be >= 1"),
        (lambda: model.training_batch(2, index=-1), "index and seed must be >= 0"),
        (lambda: model.forward([[1.0, 2.0]]), r"got \(1, 2\)"),
    ]
    lm = attnrank.Model(LM)
    ids, labels = lm.training_batch(2)
    too_big = ids.copy()
    too_big[0, 0] = 257
    wrapped = ids.astype(np.int64)
    wrapped[1, 1] = 1 << 32  # would be 0 as int32
    bad_label = labels.copy()
    bad_label[0, 0] = 256
    cases += [
        (lambda: lm.forward(ids.astype(np.float32)), "this model reads token ids"),
        (lambda: lm.forward(too_big), r"x: token id 257 outside \[0, 256\)"),
        (lambda: lm.forward(wrapped), "token id 4294967296 outside"),
        (lambda: lm.loss_and_grad(ids, bad_label), r"y: label 256 outside \[0, 256\)"),
        (lambda: lm.loss_and_grad(ids, labels.astype(np.float32)), "class labels"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_icl_targets_one_value_per_position():
    model = attnrank.Model(ICL)
    x, y = model.training_batch(4)
    assert x.shape == (4, 9, 4) and y.shape == (4, 9)
    assert model.forward(x).shape == (4, 9, 1)
    loss, _ = model.loss_and_grad(x, y)
    assert loss == model.loss_and_grad(x, y[..., None])[0]


def test_bad_configs_and_checkpoints(cli_run, tmp_path):
    with pytest.raises(attnrank.ConfigError, match=r"auto rank needs model.heads \(3\) to divide"):
        attnrank.Model(TINY, overrides=["model.heads=3"])
    with pytest.raises(FileNotFoundError, match="checkpoint: no such directory"):
        attnrank.Model.load(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(cli_run, broken)
    with pytest.raises(FileNotFoundError, match="checkpoint: missing"):
        os.remove(broken / "model.safetensors")
        attnrank.Model.load(broken)
    with open(os.path.join(cli_run, "model.safetensors"), "rb") as f:
        data = f.read()
    (broken / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(attnrank.FormatError, match="truncated"):
        attnrank.Model.load(broken)
    shutil.copy(os.path.join(cli_run, "model.safetensors"), broken / "model.safetensors")
    (broken / "config.yaml").write_text((broken / "config.yaml").read_text().replace(
        "ffn: 16", "ffn: 17"))
    with pytest.raises(attnrank.FormatError, match="does not match config.yaml"):
        attnrank.Model.load(broken)
