"""Spec layer: the YAML graph file, its pydantic schema and error positions. No Ray or torch.

The exports load on first use (as ``taskgraph.execute``'s): importing a pydantic-free part of this
package (``spec.refs``) must not define every model, which a no-change rerun (``taskgraph.rerun``)
never needs.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Graph", "Task", "Dependency", "Resources", "TrainConfig", "Defaults",
    "load_spec", "parse_spec", "apply_overrides", "SourceMap",
]

_WHERE = {
    **dict.fromkeys(("SourceMap", "apply_overrides", "load_spec", "parse_spec"), "taskgraph.spec.loader"),
    **dict.fromkeys(("Defaults", "Dependency", "Graph", "Resources", "Task", "TrainConfig"), "taskgraph.spec.models"),
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'taskgraph.spec' has no attribute {name!r}")
