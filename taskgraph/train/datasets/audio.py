"""Log-mel features with torch alone (torchaudio's wheels pin another torch, so it is not used).

``mel_filterbank`` is the HTK mel scale (``mel = 2595 * log10(1 + f / 700)``) with triangular
filters and no area normalisation: the same matrix as
``torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk")``.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["read_wav", "mel_filterbank", "log_mel", "stack_context", "frame_centers"]


def read_wav(path: Path) -> tuple[torch.Tensor, int]:
    """A 16-bit mono PCM wav as float samples in [-1, 1], with its sample rate."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        rate = handle.getframerate()
        raw = handle.readframes(handle.getnframes())
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return torch.from_numpy(samples), rate


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """``(n_fft // 2 + 1, n_mels)`` triangular filters equally spaced on the HTK mel scale."""
    f_max = f_max if f_max is not None else sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mels = torch.linspace(float(_hz_to_mel(torch.tensor(f_min))), float(_hz_to_mel(torch.tensor(f_max))), n_mels + 2)
    edges = _mel_to_hz(mels)
    slopes = edges.unsqueeze(0) - freqs.unsqueeze(1)  # (freqs, n_mels + 2)
    widths = edges[1:] - edges[:-1]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


def log_mel(samples: torch.Tensor, sample_rate: int, n_mels: int = 40, win_ms: float = 25.0, hop_ms: float = 10.0) -> torch.Tensor:
    """``(frames, n_mels)`` log mel energies; frame ``t`` is centred on sample ``frame_centers(...)[t]``."""
    win, hop = int(sample_rate * win_ms / 1000), int(sample_rate * hop_ms / 1000)
    n_fft = 1 << (win - 1).bit_length()
    if len(samples) < n_fft:
        samples = F.pad(samples, (0, n_fft - len(samples)))
    spec = torch.stft(samples, n_fft=n_fft, hop_length=hop, win_length=win, window=torch.hann_window(win),
                      center=False, return_complex=True)
    power = spec.abs().pow(2).T  # (frames, freqs)
    return torch.log(power @ mel_filterbank(n_mels, n_fft, sample_rate) + 1e-6)


def frame_centers(n_frames: int, sample_rate: int, win_ms: float = 25.0, hop_ms: float = 10.0) -> torch.Tensor:
    """Sample index at the centre of each frame of ``log_mel`` (``center=False``: frame t starts at t*hop)."""
    win, hop = int(sample_rate * win_ms / 1000), int(sample_rate * hop_ms / 1000)
    n_fft = 1 << (win - 1).bit_length()
    return torch.arange(n_frames) * hop + n_fft // 2


def stack_context(features: torch.Tensor, k: int) -> torch.Tensor:
    """Each frame with its ±k neighbours, flattened to ``(frames, (2k+1)*dim)``; edges repeat the end frames."""
    if k == 0:
        return features
    padded = torch.cat([features[:1].expand(k, -1), features, features[-1:].expand(k, -1)])
    n = len(features)
    return torch.cat([padded[i : i + n] for i in range(2 * k + 1)], dim=1)
