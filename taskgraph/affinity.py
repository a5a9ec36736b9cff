"""``taskgraph affinity``: measure TAG affinities between tasks on shared inputs and suggest a graph.

Wires spec -> train (the joint lookahead run, in this process: one small model, no Ray) ->
report (grouping) -> a YAML graph the user can start from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from taskgraph.artifacts.files import atomic_write_json, atomic_write_text
from taskgraph.errors import TaskgraphError
from taskgraph.report.affinity import Suggestion, format_matrix, suggest_structure
from taskgraph.spec.models import Graph, suggest

__all__ = ["AffinityReport", "measure_affinity", "suggested_graph"]


@dataclass
class AffinityReport:
    tasks: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]
    suggestion: Suggestion
    yaml_text: str
    out_dir: Path | None

    def text(self) -> str:
        lines = [format_matrix(self.tasks, self.matrix), ""]
        for group in self.suggestion.groups:
            kind = "train jointly" if len(group) > 1 else "alone"
            lines.append(f"group ({kind}): {', '.join(group)}")
        for a, b in self.suggestion.chains:
            lines.append(f"chain: {', '.join(self.suggestion.groups[a])} -> {', '.join(self.suggestion.groups[b])}")
        return "\n".join(lines)


def _pick_tasks(spec: Graph, tasks: list[str] | None) -> list[str]:
    names = list(tasks) if tasks else sorted(n for n, t in spec.tasks.items() if getattr(t, "kind", "single") == "single")
    for name in names:
        if name not in spec.tasks:
            raise TaskgraphError(f"--tasks: unknown task '{name}'.{suggest(name, spec.tasks)}")
        if getattr(spec.tasks[name], "kind", "single") != "single":
            raise TaskgraphError(f"--tasks: '{name}' is a joint node; affinity compares single-task nodes.")
    return names


def _node_name(group: tuple[str, ...]) -> str:
    return "_".join(group) if len(group) > 1 else group[0]


def suggested_graph(spec: Graph, tasks: list[str], shared: str, suggestion: Suggestion, matrix: Any) -> str:
    """YAML of a graph: groups as joint (multitask) nodes, chains as ``depends_on`` sharing ``shared``."""
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    out: dict[str, Any] = {"name": f"{spec.name}_suggested", "seed": spec.seed, "defaults": dumped.get("defaults", {}),
                           "data": {k: v for k, v in dumped["data"].items()
                                    if k in {spec.tasks[t].data for t in tasks}}, "tasks": {}}
    parents: dict[int, list[int]] = {}
    notes: list[str] = []
    for a, b in suggestion.chains:
        parents.setdefault(b, []).append(a)
    for g, group in enumerate(suggestion.groups):
        first = dumped["tasks"][group[0]]
        depends = {
            _node_name(suggestion.groups[a]): {"share": [shared], "mode": "finetune", "lr_scale": 0.1}
            for a in sorted(parents.get(g, []))
        }
        one_head = all(len([m for m in dumped["tasks"][t]["modules"] if m != shared]) == 1 for t in group)
        if len(group) == 1 or not one_head:  # a joint node takes one head module per task
            if len(group) > 1:
                notes.append(f"# train {', '.join(group)} jointly: their heads have several modules, merge by hand.")
            for t in group:
                node = {k: v for k, v in dumped["tasks"][t].items() if k not in ("depends_on", "resources", "train", "seed")}
                if depends:
                    node["depends_on"] = depends
                out["tasks"][t] = node
            continue
        heads = {}
        for t in group:
            task = dumped["tasks"][t]
            head_module = next(v for m, v in task["modules"].items() if m != shared)
            heads[t] = {"module": head_module, "loss": task["loss"], "metrics": task.get("metrics", [])}
        node = {"kind": "multitask", "data": first["data"], "input": first.get("input", "x"),
                "modules": {shared: first["modules"][shared]}, "heads": heads}
        if depends:
            node["depends_on"] = depends
        out["tasks"][_node_name(group)] = node
    index = {t: i for i, t in enumerate(tasks)}
    header = [
        f"# Suggested by `taskgraph affinity` from {spec.name}: TAG lookahead affinities (Fifty et al. 2021).",
        "# Groups with high mutual affinity are joint (multitask) nodes; one-way affinity became a chain.",
        "# Affinity Z[i -> j] (a step on i lowers j's loss by this share):",
    ]
    for i in tasks:
        header.append("#   " + ", ".join(f"{i} -> {j}: {matrix[index[i]][index[j]]:+.4f}" for j in tasks if j != i))
    return "\n".join(header + notes) + "\n" + yaml.safe_dump(out, sort_keys=False)


def measure_affinity(
    spec: Graph,
    tasks: list[str] | None = None,
    shared: str | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    ratio: float = 0.5,
    **train: Any,
) -> AffinityReport:
    """Affinities of ``tasks`` (default: every single-task node), grouping, and the suggested YAML."""
    from taskgraph.train.affinity import task_affinity

    names = _pick_tasks(spec, tasks)
    shared = shared or next(iter(spec.tasks[names[0]].modules))
    result = task_affinity(spec, names, shared, **train)
    suggestion = suggest_structure(result.tasks, result.matrix, ratio)
    text = suggested_graph(spec, names, shared, suggestion, result.matrix)
    folder = None
    if out_dir is not None:
        folder = Path(out_dir)
        atomic_write_json(folder / "affinity.json", {
            "graph": spec.name, "tasks": list(result.tasks), "shared": shared, "matrix": [list(r) for r in result.matrix],
            "steps": result.steps, "measured_steps": result.measured, "threshold": suggestion.threshold,
            "groups": [list(g) for g in suggestion.groups],
            "chains": [[list(suggestion.groups[a]), list(suggestion.groups[b])] for a, b in suggestion.chains],
        })
        atomic_write_text(folder / "suggested.yaml", text)
    return AffinityReport(result.tasks, result.matrix, suggestion, text, folder)
