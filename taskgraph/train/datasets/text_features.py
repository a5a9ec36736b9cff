"""Spelling features of a word for the ``tokens`` field: case class, suffix, word shape, characters.

They let a tagger read what a word looks like as well as which word it is: an unknown test word
("outsourcing", "1,234", "Kleinwort") still has a suffix, a shape and a case learned in training.
Each id table is built from the training sentences, most frequent first (ties by the string),
so ids are the same on every machine; 0 is padding, 1 unknown.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from taskgraph.spec.data import CASES

__all__ = ["word_case", "word_shape", "suffix", "clip_chars", "id_table", "PAD", "UNK"]

PAD, UNK = 0, 1
_CASE = {name: i for i, name in enumerate(CASES)}
_RUNS = re.compile(r"(.)\1+")


def word_case(word: str) -> int:
    """The case class of a word (``CASES``): what lowercasing the word id throws away, and digits."""
    letters = [c for c in word if c.isalpha()]
    digits = any(c.isdigit() for c in word)
    if not letters:
        return _CASE["digits"] if digits else _CASE["other"]
    if digits:
        return _CASE["alnum"]
    if all(c.islower() for c in letters):
        return _CASE["lower"]
    if all(c.isupper() for c in letters):
        return _CASE["title"] if len(letters) == 1 else _CASE["upper"]
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return _CASE["title"]
    return _CASE["mixed"]


def word_shape(word: str) -> str:
    """Letters to X/x, digits to d, other characters kept; runs collapsed (``Mid-1990s`` -> ``Xx-dx``)."""
    mapped = "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word)
    return _RUNS.sub(r"\1", mapped)


def suffix(word: str, length: int) -> str:
    """The last ``length`` characters, lowercased (the whole word when shorter)."""
    return word.lower()[-length:]


def clip_chars(word: str, n: int) -> str:
    """At most ``n`` characters: a longer word keeps its first ``ceil(n/2)`` and last ``floor(n/2)``."""
    if len(word) <= n:
        return word
    head = (n + 1) // 2
    return word[:head] + word[len(word) - (n - head):] if n - head else word[:head]


def id_table(items: Iterable[str], size: int) -> dict[str, int]:
    """Ids 2.. for the ``size - 2`` most frequent items (ties by the item), 0/1 left for pad/unknown."""
    counts = Counter(items)
    kept = sorted(counts, key=lambda item: (-counts[item], item))[: size - 2]
    return {item: i + 2 for i, item in enumerate(kept)}
