"""Spec layer: the YAML graph file, its pydantic schema and error positions. No Ray or torch."""

from taskgraph.spec import yamltext
from taskgraph.spec.loader import SourceMap, apply_overrides, load_spec, parse_spec
from taskgraph.spec.models import Defaults, Dependency, Graph, Resources, Task, TrainConfig

__all__ = [
    "Graph", "Task", "Dependency", "Resources", "TrainConfig", "Defaults",
    "load_spec", "parse_spec", "apply_overrides", "SourceMap",
]
