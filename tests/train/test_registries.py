"""Every name the spec accepts has an implementation, and every implementation is reachable from the spec."""

from __future__ import annotations

import pytest

from taskgraph.spec.components import DataConfig, LossConfig, METRICS, ModuleConfig, names_of
from taskgraph.train.data import LOADERS
from taskgraph.train.losses import LOSSES
from taskgraph.train.metrics import METRIC_FNS
from taskgraph.train.modules import MODULES, build_module
from pydantic import TypeAdapter


def test_spec_names_match_registries():
    assert set(names_of(ModuleConfig)) == set(MODULES.names())
    assert set(names_of(LossConfig)) == set(LOSSES.names())
    assert set(names_of(DataConfig)) == set(LOADERS.names())
    assert set(METRICS) - {"loss"} == set(METRIC_FNS.names())


EXAMPLES = {
    "mlp": {"type": "mlp", "in": 6, "hidden": [5, 4], "out": 3},
    "linear": {"type": "linear", "in": 6, "out": 2},
    "embedding": {"type": "embedding", "vocab": 11, "dim": 4},
    "token_embedding": {"type": "token_embedding", "vocab": 11, "dim": 4, "case_dim": 2, "suffix_vocab": 7,
                        "suffix_dim": 3, "shape_vocab": 5, "shape_dim": 2, "char_vocab": 9, "char_dim": 3,
                        "char_filters": 6, "char_width": 4},
    "crf": {"type": "crf", "in": 6, "out": 5},
    "bilstm": {"type": "bilstm", "in": 6, "hidden": 3, "layers": 2},
    "gradient_reversal": {"type": "gradient_reversal", "in": 6},
    "select": {"type": "select", "in": 6, "columns": [1, 4]},
    "conv1d": {"type": "conv1d", "in": 6, "channels": [5, 4], "kernel": 3, "norm": "batch", "pool": "max"},
    "conv2d": {"type": "conv2d", "shape": [2, 8, 8], "channels": [3, 4], "norm": "batch", "pool": "mean"},
    "transformer": {"type": "transformer", "in": 6, "dim": 8, "heads": 2, "layers": 2, "ff": 12,
                    "positional": "learned", "max_len": 16},
    "layer_norm": {"type": "layer_norm", "in": 6},
    "dropout": {"type": "dropout", "in": 6, "p": 0.2},
    "sequential": {"type": "sequential", "in": 6, "layers": [
        {"type": "conv1d", "channels": [5], "norm": "layer"}, {"type": "layer_norm"}, {"type": "dropout"},
        {"type": "mlp", "hidden": [4], "out": 3}]},
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_param_shapes_match_built_module(name):
    config = TypeAdapter(ModuleConfig).validate_python(EXAMPLES[name])
    module = build_module(config, None, name)
    built = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert built == config.param_shapes(None)


def test_every_module_type_has_a_shape_example():
    missing = set(MODULES.names()) - set(EXAMPLES)
    assert not missing, f"add an example config for {sorted(missing)} to EXAMPLES in this file"


def test_weighting_methods_match_registry():
    from taskgraph.spec.weighting import GRADIENT_METHODS, LOSS_METHODS, weighting_names
    from taskgraph.train.weighting import WEIGHTINGS

    assert set(weighting_names()) == set(WEIGHTINGS.names()) == set(GRADIENT_METHODS) | set(LOSS_METHODS)


def test_user_code_failing_on_import_is_a_train_error_naming_the_reference(tmp_path, monkeypatch):
    from taskgraph.errors import TrainError
    from taskgraph.train.registry import import_ref

    name = f"brokenpkg_{tmp_path.name.replace('-', '_')}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("raise RuntimeError('broken on import')\n")
    (tmp_path / name / "data.py").write_text("def load(**kw):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TrainError, match=rf"importing '{name}.data' for '{name}.data:load' raised RuntimeError: broken"):
        import_ref(f"{name}.data:load")
