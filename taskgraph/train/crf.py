"""Linear-chain CRF: log-likelihood by the forward algorithm, and Viterbi decoding, masked by length.

A ``crf`` head outputs potentials ``(batch, time, tags, tags)``: ``[b, t, i, j]`` scores tag ``i``
at ``t-1`` followed by tag ``j`` at ``t`` (emission of ``j`` plus the transition ``i -> j``), and
``[b, 0, i, j]`` the start of a sentence at ``j`` (the same for every ``i``). A path's score is
the sum of its potentials; the loss and the decoder only need these, so the ``crf`` loss and the
metrics work on the head's output alone (Lafferty et al. 2001; Lample et al. 2016 for taggers).
Positions past a sentence's length (label -100) are padding: they leave every sum unchanged.
"""

from __future__ import annotations

import torch

from taskgraph.errors import TrainError

__all__ = ["lengths_of", "crf_nll", "viterbi", "path_score"]


def lengths_of(target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Tokens per sentence from labels padded with ``ignore_index``; padding must follow the words."""
    mask = target != ignore_index
    lengths = mask.sum(dim=1)
    steps = torch.arange(target.shape[1], device=target.device)
    if not bool((mask == (steps[None, :] < lengths[:, None])).all()):
        raise TrainError(
            f"crf loss: labels {ignore_index} occur inside a sentence. A CRF needs every word labelled and "
            "the padding at the end; use cross_entropy for partly labelled sentences."
        )
    return lengths


def path_score(potentials: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The score of the given tag paths: sum over each sentence's positions of ``pot[t, tag[t-1], tag[t]]``."""
    batch, time, k, _ = potentials.shape
    tags = tags.long().clamp(min=0)
    previous = torch.cat([torch.zeros_like(tags[:, :1]), tags[:, :-1]], dim=1)  # row 0 at t = 0 (start)
    flat = potentials.reshape(batch, time, k * k).gather(2, (previous * k + tags)[..., None]).squeeze(-1)
    inside = torch.arange(time, device=tags.device)[None, :] < lengths[:, None]
    return (flat * inside).sum(dim=1)


def crf_nll(potentials: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``log Z - score(gold)`` per sentence (zero for an empty one), by the forward algorithm in float32+."""
    potentials = potentials.float() if potentials.dtype in (torch.float16, torch.bfloat16) else potentials
    steps = potentials.unbind(1)  # one view per position: a single backward for all (indexing is O(T^2))
    alpha = steps[0][:, 0, :]  # (batch, tags): start scores plus the first emissions
    for t in range(1, len(steps)):
        step = torch.logsumexp(alpha[:, :, None] + steps[t], dim=1)
        alpha = torch.where((t < lengths)[:, None], step, alpha)
    log_z = torch.logsumexp(alpha, dim=1)
    nll = log_z - path_score(potentials, tags, lengths)
    return torch.where(lengths > 0, nll, torch.zeros_like(nll))


@torch.no_grad()
def viterbi(potentials: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The highest-scoring tag path of every sentence ``(batch, time)``; positions past its length are 0."""
    batch, time, k, _ = potentials.shape
    score = potentials[:, 0, 0, :]
    keep = torch.arange(k, device=potentials.device).expand(batch, k)
    back = []
    for t in range(1, time):
        best, arg = (score[:, :, None] + potentials[:, t]).max(dim=1)
        inside = (t < lengths)[:, None]
        score = torch.where(inside, best, score)
        back.append(torch.where(inside, arg, keep))  # past the end: every tag points to itself
    path = torch.zeros(batch, time, dtype=torch.long, device=potentials.device)
    tag = score.argmax(dim=1)
    path[:, time - 1] = tag
    for t in range(time - 1, 0, -1):
        tag = back[t - 1].gather(1, tag[:, None]).squeeze(1)
        path[:, t - 1] = tag
    inside = torch.arange(time, device=potentials.device)[None, :] < lengths[:, None]
    return path * inside
