"""The real data-set loaders on small slices of shared/data: shapes, labels, splits, clear errors."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from taskgraph.errors import TrainError
from taskgraph.spec.components import DataConfig, ModuleConfig
from taskgraph.train.data import LOADERS
from taskgraph.train.datasets.audio import mel_filterbank, stack_context
from taskgraph.train.datasets.paths import DEFAULT_DATA
from taskgraph.train.datasets.timit import FOLD_61_TO_39, PHONES_39
from taskgraph.train.metrics import compute_metric
from taskgraph.train.modules import build_module

needs_data = pytest.mark.skipif(not (DEFAULT_DATA / "timit_sample").is_dir(), reason="shared/data is not staged")


def _load(config: dict):
    cfg = TypeAdapter(DataConfig).validate_python(config)
    return cfg, LOADERS.get(cfg.loader)(cfg)


def test_fold_61_to_39_is_the_standard_one():
    assert len(FOLD_61_TO_39) == 60 and len(PHONES_39) == 39  # 61 phones minus the deleted glottal stop q
    assert FOLD_61_TO_39["ao"] == "aa" and FOLD_61_TO_39["zh"] == "sh" and FOLD_61_TO_39["h#"] == "sil"
    assert "q" not in FOLD_61_TO_39


def test_mel_filterbank_triangles_peak_at_one_on_the_htk_scale():
    fb = mel_filterbank(n_mels=10, n_fft=512, sample_rate=16000)
    assert fb.shape == (257, 10)
    assert (fb >= 0).all() and fb.max() <= 1.0 + 1e-6
    peaks = fb.argmax(dim=0)
    assert (peaks[1:] > peaks[:-1]).all()  # centres increase with the band index
    hz = peaks.float() * 8000 / 256
    mel = 2595 * torch.log10(1 + hz / 700)
    steps = mel[1:] - mel[:-1]
    assert steps.std() / steps.mean() < 0.15  # equally spaced in mel (up to the FFT bin grid)


def test_stack_context_repeats_edge_frames():
    x = torch.arange(6.0).reshape(3, 2)
    out = stack_context(x, 1)
    assert out.shape == (3, 6)
    assert out[0].tolist() == [0, 1, 0, 1, 2, 3] and out[2].tolist() == [2, 3, 4, 5, 4, 5]


@needs_data
def test_timit_slice_is_speaker_held_out_with_frame_labels():
    cfg, splits = _load({"loader": "timit_sample", "max_utterances": 8, "n_mels": 20, "context": 2})
    assert splits.train["x"].shape[1] == cfg.feature_dim == 100
    assert set(splits.train["speaker"].tolist()).isdisjoint(splits.val["speaker"].tolist())
    assert splits.val["female"].unique().numel() == 2  # both genders held out
    for split in (splits.train, splits.val):
        assert 0 <= split["phone"].min() and split["phone"].max() < 39
        share = split["phone_boundary"].mean().item()
        assert 0.15 < share < 0.6  # ±1 frame around every phone boundary
        assert 0.0 < split["word_boundary"].mean().item() < share


@needs_data
def test_fsdd_slice_uses_the_official_test_indices():
    cfg, splits = _load({"loader": "fsdd", "max_index": 6, "n_mels": 8, "frames": 4})
    assert splits.val["x"].shape == (300, 32) and splits.train["x"].shape == (60, 32)  # 6 speakers x 10 digits
    assert sorted(splits.train["speaker"].unique().tolist()) == list(range(6))
    assert sorted(splits.val["digit"].unique().tolist()) == list(range(10))


@needs_data
def test_mnist_and_digit_pairs():
    _cfg, splits = _load({"loader": "mnist", "max_train": 100, "max_val": 50})
    assert splits.train["x"].shape == (100, 784) and splits.val["digit"].shape == (50,)
    assert torch.equal(splits.train["parity"], (splits.train["digit"] % 2).float())
    cfg, pairs = _load({"loader": "digit_pairs", "max_index": 6, "n_mels": 8, "frames": 4})
    x = pairs.train["x"]
    assert x.shape[1] == cfg.feature_dim == 32 + 784
    same = pairs.train["audio_digit"] == pairs.train["image_digit"]
    assert torch.equal(same.float(), pairs.train["same"])
    assert 0.3 < pairs.train["same"].mean().item() < 0.7
    _cfg, positives = _load({"loader": "digit_pairs", "max_index": 6, "n_mels": 8, "frames": 4, "same_fraction": 1.0})
    assert positives.train["same"].all() and positives.val["same"].all()
    assert torch.equal(positives.train["audio_digit"], positives.train["image_digit"])


def test_missing_data_names_the_file_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(TrainError) as err:
        _load({"loader": "fsdd", "root": str(tmp_path / "nowhere")})
    assert str(tmp_path / "nowhere") in str(err.value) and "root:" in str(err.value)
    monkeypatch.setenv("TASKGRAPH_DATA", str(tmp_path))
    with pytest.raises(TrainError) as err:
        _load({"loader": "timit_sample"})
    assert str(tmp_path / "timit_sample") in str(err.value) and "TASKGRAPH_DATA" in str(err.value)


def test_binary_f1_counts_the_positive_class_only():
    logits = torch.tensor([3.0, -1.0, 2.0, -2.0, 1.0])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])  # tp=2, fp=1, fn=1
    assert compute_metric("binary_f1", logits, target) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_select_keeps_its_columns_only():
    config = TypeAdapter(ModuleConfig).validate_python({"type": "select", "columns": [2, 5]})
    module = build_module(config, 9, "m")
    x = torch.randn(4, 9)
    assert torch.equal(module(x), x[:, 2:5]) and config.output_dim(9) == 3 and config.param_shapes(9) == {}
    with pytest.raises(TrainError, match="past the input width 4"):
        build_module(config, 4, "m")
    with pytest.raises(ValueError, match="stop must be above start"):
        TypeAdapter(ModuleConfig).validate_python({"type": "select", "columns": [5, 2]})


def test_columns_mlp_reads_its_columns_and_passes_the_rest():
    config = TypeAdapter(ModuleConfig).validate_python({"type": "mlp", "hidden": [5], "out": 3, "columns": [2, 6]})
    module = build_module(config, 9, "m")
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == config.param_shapes(9)
    x = torch.randn(4, 9)
    y = module(x)
    assert y.shape[1] == config.output_dim(9) == 3 + 5
    assert torch.equal(y[:, 3:5], x[:, :2]) and torch.equal(y[:, 5:], x[:, 6:])
    x2 = x.clone()
    x2[:, :2] += 1.0  # columns outside [2, 6) do not reach the MLP
    assert torch.equal(module(x2)[:, :3], y[:, :3])
