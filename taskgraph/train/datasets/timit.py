"""NLTK's TIMIT sample as frame-level examples: log-mel + context -> 39 phones, phone and word boundaries.

Every 10 ms frame is one example (its ±context frames stacked), so the plain single-task trainer
and MLP encoders apply unchanged. Frames get the phone under their centre sample; a frame is a
boundary frame when a phone (word) boundary's nearest frame is within ±tolerance frames.
"""

from __future__ import annotations

import torch

from taskgraph.errors import TrainError
from taskgraph.spec.data import TimitSampleData
from taskgraph.train.data import LOADERS, Splits
from taskgraph.train.datasets.audio import frame_centers, log_mel, read_wav, stack_context
from taskgraph.train.datasets.paths import data_root, require

__all__ = ["PHONES_39", "FOLD_61_TO_39", "timit_sample"]

#: The standard 61 -> 39 folding (Lee & Hon 1989, as in Kaldi's timit recipe). ``q`` is deleted.
FOLD_61_TO_39: dict[str, str] = {
    **{p: p for p in (
        "aa ae ah aw ay b ch d dh dx eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z"
    ).split()},
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
    "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    **{p: "sil" for p in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi")},
}
PHONES_39: tuple[str, ...] = tuple(sorted(set(FOLD_61_TO_39.values())))
PHONES_61: tuple[str, ...] = tuple(sorted([*FOLD_61_TO_39, "q"]))
_DELETED = "q"


def _segments(path) -> list[tuple[int, int, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((int(parts[0]), int(parts[1]), parts[2]))
    return rows


def _near(boundaries: list[int], centers: torch.Tensor, hop: int, tolerance: int) -> torch.Tensor:
    """1.0 for frames within ±tolerance frames of the frame nearest each boundary sample."""
    out = torch.zeros(len(centers))
    if not boundaries:
        return out
    b = torch.tensor(sorted(set(boundaries)), dtype=torch.float32)
    nearest = torch.round((b - float(centers[0])) / hop).long()
    for shift in range(-tolerance, tolerance + 1):
        idx = (nearest + shift).clamp(0, len(centers) - 1)
        out[idx] = 1.0
    return out


def _utterances(root, max_utterances: int | None) -> list[tuple[str, str]]:
    """(speaker, utterance) pairs; with a limit, round-robin over speakers so every split has some."""
    speakers = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("dr"))
    if not speakers:
        raise TrainError(f"data loader 'timit_sample': no dr*-<speaker> folders in {root}. Point `root:` at timit_sample.")
    per = {s: sorted(p.stem for p in (root / s).glob("*.wav")) for s in speakers}
    ranked = sorted((rank, s, u) for s in speakers for rank, u in enumerate(per[s]))
    if max_utterances is not None:
        ranked = ranked[:max_utterances]
    return sorted((s, u) for _r, s, u in ranked)


def _val_speakers(speakers: list[str], fraction: float, seed: int) -> set[str]:
    """Held-out speakers, alternating female/male so both genders are in validation."""
    g = torch.Generator().manual_seed(seed)
    female = [s for s in speakers if s.split("-")[1].startswith("f")]
    male = [s for s in speakers if s not in female]
    female = [female[i] for i in torch.randperm(len(female), generator=g)]
    male = [male[i] for i in torch.randperm(len(male), generator=g)]
    n_val = min(len(speakers) - 1, max(1, round(len(speakers) * fraction)))
    alternating = [s for pair in zip(female, male) for s in pair] + female[len(male):] + male[len(female):]
    return set(alternating[:n_val])


@LOADERS.register("timit_sample")
def timit_sample(config: TimitSampleData) -> Splits:
    root = require(data_root("timit_sample", config.root), "timit_sample")
    utterances = _utterances(root, config.max_utterances)
    speakers = sorted({s for s, _ in utterances})
    if len(speakers) < 2:
        raise TrainError("data loader 'timit_sample': a speaker-held-out split needs at least 2 speakers; "
                         "raise max_utterances.")
    held_out = _val_speakers(speakers, config.val_fraction, config.seed)
    phone39 = {p: i for i, p in enumerate(PHONES_39)}
    phone61 = {p: i for i, p in enumerate(PHONES_61)}
    parts: dict[str, dict[str, list[torch.Tensor]]] = {"train": {}, "val": {}}
    for speaker, utt in utterances:
        base = root / speaker / utt
        samples, rate = read_wav(require(base.with_suffix(".wav"), "timit_sample"))
        feats = log_mel(samples, rate, config.n_mels)
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-5)  # per-utterance CMVN
        x = stack_context(feats, config.context)
        centers = frame_centers(len(feats), rate)
        hop = int(centers[1] - centers[0]) if len(centers) > 1 else 160
        phones = _segments(require(base.with_suffix(".phn"), "timit_sample"))
        words = _segments(require(base.with_suffix(".wrd"), "timit_sample"))
        starts = torch.tensor([s for s, _e, _p in phones])
        which = (torch.searchsorted(starts, centers, right=True) - 1).clamp(0, len(phones) - 1)
        labels = [phones[i][2] for i in which.tolist()]
        keep = torch.tensor([p != _DELETED for p in labels])
        fields = {
            "x": x,
            "phone": torch.tensor([phone39.get(FOLD_61_TO_39.get(p, "sil"), 0) for p in labels]),
            "phone61": torch.tensor([phone61.get(p, 0) for p in labels]),
            "phone_boundary": _near([s for s, _e, _p in phones[1:]], centers, hop, config.boundary_tolerance),
            "word_boundary": _near([b for s, e, _w in words for b in (s, e)], centers, hop, config.boundary_tolerance),
            "speaker": torch.full((len(feats),), speakers.index(speaker)),
            "female": torch.full((len(feats),), float(speaker.split("-")[1].startswith("f"))),
        }
        split = parts["val" if speaker in held_out else "train"]
        for key, value in fields.items():
            split.setdefault(key, []).append(value[keep])
    return Splits(
        train={k: torch.cat(v) for k, v in parts["train"].items()},
        val={k: torch.cat(v) for k, v in parts["val"].items()},
    )
