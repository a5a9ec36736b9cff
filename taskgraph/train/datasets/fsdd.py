"""Free Spoken Digit Dataset: one example per clip, log-mel resampled to a fixed number of frames.

Validation is the official test split (recording indices 0-4), so every speaker is in both
splits, as speaker identification needs.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from taskgraph.errors import TrainError
from taskgraph.spec.data import FsddData
from taskgraph.train.data import LOADERS, Splits
from taskgraph.train.datasets.audio import log_mel, read_wav
from taskgraph.train.datasets.paths import data_root, require

__all__ = ["SPEAKERS", "fsdd", "read_fsdd"]

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
_TEST_INDICES = 5  # upstream README: indices 0-4 of each digit and speaker are the test set


@functools.lru_cache(maxsize=4)
def read_fsdd(root: str, n_mels: int, frames: int, max_index: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(train, val) fields; features standardised per mel band with training statistics."""
    folder = require(data_root("fsdd", root or None) / "recordings", "fsdd")
    rows: dict[str, list] = {"train": [], "val": []}
    for digit in range(10):
        for s, speaker in enumerate(SPEAKERS):
            for index in range(max_index):
                samples, rate = read_wav(require(folder / f"{digit}_{speaker}_{index}.wav", "fsdd"))
                grid = log_mel(samples, rate, n_mels)  # (t, n_mels)
                grid = F.interpolate(grid.T.unsqueeze(0), size=frames, mode="linear", align_corners=True)[0]
                rows["val" if index < _TEST_INDICES else "train"].append((grid, digit, s))
    if not rows["train"]:
        raise TrainError("data loader 'fsdd': no training clips; max_index must be above 5.")
    out = {}
    for split, items in rows.items():
        out[split] = {
            "x": torch.stack([g for g, _d, _s in items]),
            "digit": torch.tensor([d for _g, d, _s in items]),
            "speaker": torch.tensor([s for _g, _d, s in items]),
        }
    mean = out["train"]["x"].mean(dim=(0, 2), keepdim=True)
    std = out["train"]["x"].std(dim=(0, 2), keepdim=True) + 1e-5
    for split in out.values():
        split["x"] = ((split["x"] - mean) / std).flatten(1)
    return out["train"], out["val"]


@LOADERS.register("fsdd")
def fsdd(config: FsddData) -> Splits:
    train, val = read_fsdd(config.root or "", config.n_mels, config.frames, config.max_index)
    return Splits(train=dict(train), val=dict(val))
