"""Cross-modal pairs: a spoken digit (FSDD) next to a handwritten one (MNIST); same digit or not.

By default half the pairs show the same digit, half a different one, so ``same`` is balanced;
``same_fraction: 1.0`` gives positive pairs only, for contrastive alignment of the two encoders. Solving it
needs both modalities: an audio encoder that knows the spoken digit and an image encoder that
knows the written one, which is what the upstream nodes of ``graphs/digits.yaml`` provide.
"""

from __future__ import annotations


import torch

from taskgraph.spec.data import DigitPairsData
from taskgraph.train.data import LOADERS, Splits
from taskgraph.train.datasets.fsdd import read_fsdd
from taskgraph.train.datasets.mnist import read_mnist

__all__ = ["digit_pairs"]


def _pair(audio: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor, per_clip: int,
          same_fraction: float, g: torch.Generator) -> dict[str, torch.Tensor]:
    by_digit = [torch.nonzero(labels == d).flatten() for d in range(10)]
    n = len(audio["digit"]) * per_clip
    audio_idx = torch.arange(len(audio["digit"])).repeat(per_clip)
    audio_digit = audio["digit"][audio_idx]
    same = torch.rand(n, generator=g) < same_fraction
    other = (audio_digit + torch.randint(1, 10, (n,), generator=g)) % 10  # a different digit, uniformly
    image_digit = torch.where(same, audio_digit, other)
    pick = torch.stack([by_digit[d][torch.randint(len(by_digit[d]), (1,), generator=g)] for d in image_digit.tolist()])
    image = images[pick.flatten()]
    return {
        "x": torch.cat([audio["x"][audio_idx], image], dim=1),
        "same": same.float(),
        "audio_digit": audio_digit,
        "image_digit": image_digit,
    }


@LOADERS.register("digit_pairs")
def digit_pairs(config: DigitPairsData) -> Splits:
    fsdd_root, mnist_root = (str(path) for path in config.reads())  # what the cache key hashes
    audio_train, audio_val = read_fsdd(fsdd_root, config.n_mels, config.frames, config.max_index)
    train_x, train_y = read_mnist(mnist_root, "train")
    val_x, val_y = read_mnist(mnist_root, "t10k")
    g = torch.Generator().manual_seed(config.seed)
    return Splits(
        train=_pair(audio_train, train_x, train_y, config.pairs_per_clip, config.same_fraction, g),
        val=_pair(audio_val, val_x, val_y, config.pairs_per_clip, config.same_fraction, g),
    )
