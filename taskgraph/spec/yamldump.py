"""Plain data -> YAML text, byte for byte what PyYAML's pure-Python ``safe_dump`` writes, fast.

Every run writes its resolved graph (``graph.yaml``); PyYAML's Python emitter takes ~0.7 s for a
100-node graph, on the critical path of every run (a no-change rerun included). libyaml's C
emitter takes ~30 ms, but the two lay out some text differently: strings that need double quotes
(non-ASCII, control characters, line breaks) wrap at other places, and empty or very long
mapping keys take another key style. So the C emitter writes only data where the two agree (every
string printable ASCII, every key a short non-empty string: graph files' names and settings),
checked in one pass before dumping; anything else goes through the Python emitter, as before.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["dump_yaml", "c_emitter_agrees"]

_C_DUMPER = getattr(yaml, "CSafeDumper", None)
#: Text both emitters write alike: printable ASCII only (no escapes, no line breaks).
_PLAIN_TEXT = re.compile(r"[\x20-\x7e]*\Z")
#: Keys longer than this may stop being "simple keys" (libyaml and PyYAML draw the line apart).
_MAX_KEY = 100


def c_emitter_agrees(data: Any) -> bool:
    """Whether libyaml's emitter writes ``data`` exactly as PyYAML's Python emitter does: every
    string printable ASCII, every mapping key a non-empty string of at most ``_MAX_KEY`` characters,
    and nothing but dicts, lists, strings, numbers, booleans and None."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not _PLAIN_TEXT.match(value):
                return False
        elif isinstance(value, dict):
            for key in value:
                if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY or not _PLAIN_TEXT.match(key):
                    return False
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif value is not None and not isinstance(value, (bool, int, float)):
            return False
    return True


def dump_yaml(data: Any) -> str:
    """``yaml.safe_dump(data, sort_keys=False)``, through libyaml when it writes the same bytes."""
    if _C_DUMPER is not None and c_emitter_agrees(data):
        return yaml.dump(data, Dumper=_C_DUMPER, sort_keys=False)
    return yaml.safe_dump(data, sort_keys=False)
