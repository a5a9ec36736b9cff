"""From a TAG affinity matrix to a suggested graph: which tasks to train jointly, which to chain.

Pure functions (no torch): ``suggest_structure`` groups tasks whose affinity is high *both ways*
(average linkage on ``min(Z[i][j], Z[j][i])``) and chains groups where the affinity runs one
way only (a step for A helps B, not the reverse: train A first and hand B its encoder).
The threshold is relative to the largest affinity between two different tasks, so the scale of
the lookahead step does not matter; tasks with no positive affinity to anything stay alone.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Suggestion", "suggest_structure", "format_matrix"]


@dataclass(frozen=True)
class Suggestion:
    groups: tuple[tuple[str, ...], ...]  # each group: train jointly (one multitask node)
    chains: tuple[tuple[int, int], ...]  # (from group, to group): the second inherits the encoder of the first
    threshold: float


def _mutual(matrix: list[list[float]], a: tuple[int, ...], b: tuple[int, ...]) -> float:
    pairs = [min(matrix[i][j], matrix[j][i]) for i in a for j in b]
    return sum(pairs) / len(pairs)


def _onto(matrix: list[list[float]], a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return sum(matrix[i][j] for i in a for j in b) / (len(a) * len(b))


def suggest_structure(tasks: list[str] | tuple[str, ...], matrix: list[list[float]] | tuple[tuple[float, ...], ...],
                      ratio: float = 0.5) -> Suggestion:
    """Groups by average linkage above ``ratio`` x the largest cross-task affinity; one-way edges become chains."""
    m = [list(row) for row in matrix]
    n = len(tasks)
    best = max((m[i][j] for i in range(n) for j in range(n) if i != j), default=0.0)
    threshold = ratio * best if best > 0 else float("inf")
    groups = [(i,) for i in range(n)]
    while len(groups) > 1:
        score, a, b = max(
            ((_mutual(m, groups[a], groups[b]), a, b) for a in range(len(groups)) for b in range(a + 1, len(groups))),
        )
        if score < threshold or score <= 0:
            break
        merged = tuple(sorted(groups[a] + groups[b]))
        groups = [g for k, g in enumerate(groups) if k not in (a, b)] + [merged]
    groups.sort()
    chains = []
    for a in range(len(groups)):
        for b in range(len(groups)):
            if a == b:
                continue
            forward, backward = _onto(m, groups[a], groups[b]), _onto(m, groups[b], groups[a])
            if forward >= threshold and forward > backward and forward > 0:
                chains.append((a, b))
    named = tuple(tuple(tasks[i] for i in g) for g in groups)
    return Suggestion(named, tuple(chains), threshold)


def format_matrix(tasks: list[str] | tuple[str, ...], matrix: list[list[float]] | tuple[tuple[float, ...], ...]) -> str:
    """The affinity matrix as text: row i, column j = how a step on task i changes task j's loss."""
    width = max(10, *(len(t) for t in tasks)) + 1
    lines = ["lookahead affinity Z[i -> j] = 1 - L_j(after a step on i) / L_j(before)  (rows: i, columns: j)",
             " " * width + "".join(f"{t:>{width}}" for t in tasks)]
    for t, row in zip(tasks, matrix):
        lines.append(f"{t:<{width}}" + "".join(f"{v:>{width}.4f}" for v in row))
    return "\n".join(lines)
