"""Read a graph file: YAML -> resolved ``Graph``, with every problem reported at its line and column.

All problems of a file are collected in one pass (duplicate keys, schema errors with "did you
mean" hints, unknown names) and raised together as one ``SpecError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import ValidationError

from taskgraph.errors import SpecError, SpecIssue
from taskgraph.spec.messages import translate
from taskgraph.spec.models import Graph, suggest
from taskgraph.spec.yamltext import MAX_DEPTH, compose, decode, read_yaml

__all__ = ["load_spec", "parse_spec", "SourceMap", "apply_overrides"]

Loc = tuple[Union[str, int], ...]


@dataclass
class SourceMap:
    """Where each value of the graph file came from, for error messages."""

    file: str | None
    tree: yaml.Node | None
    data: Any
    overrides: dict[Loc, str] = field(default_factory=dict)
    text: str | None = None  # kept when the node tree was not composed (fast path)

    @property
    def root(self) -> yaml.Node | None:
        """The YAML node tree with positions; composed on first use when the fast path skipped it."""
        if self.tree is None and self.text is not None:
            self.tree = compose(self.text, self.file)
        return self.tree

    def locate(self, loc: Loc) -> tuple[int | None, int | None, str]:
        """(line, column, dotted path) of ``loc``; steps that are not keys (union tags) are skipped."""
        keyed = tuple(_key_steps(self.data, loc))  # union tags (`single`, `multitask`) are not keys
        for prefix, text in self.overrides.items():
            if tuple(loc[: len(prefix)]) == prefix or keyed[: len(prefix)] == prefix:
                shown = text if len(text) <= 80 else text[:77] + "..."
                return None, None, _dotted(list(keyed)) + f" (from --set {shown})"
        node, value, steps = self.root, self.data, []
        for step in loc:
            if isinstance(value, dict) and step in value:
                value = value[step]
                if isinstance(node, yaml.MappingNode):
                    node = next((v for k, v in node.value if k.value == step), node)
                steps.append(step)
            elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
                value = value[step]
                if isinstance(node, yaml.SequenceNode):
                    node = node.value[step]
                steps.append(step)
        if node is None:
            return None, None, _dotted(steps)
        return node.start_mark.line + 1, node.start_mark.column + 1, _dotted(steps)

    def key_position(self, loc: Loc) -> tuple[int | None, int | None]:
        """Position of the *key* at the end of ``loc`` (for unknown keys, where the value is noise)."""
        parent, _ = self.root, None
        for step in loc[:-1]:
            if isinstance(parent, yaml.MappingNode):
                parent = next((v for k, v in parent.value if k.value == step), parent)
        if isinstance(parent, yaml.MappingNode):
            for k, _v in parent.value:
                if k.value == loc[-1]:
                    return k.start_mark.line + 1, k.start_mark.column + 1
        line, col, _ = self.locate(loc)
        return line, col

    def issue(self, loc: Loc, message: str, at_key: bool = False) -> SpecIssue:
        line, col, path = self.locate(loc)
        if at_key and not any(tuple(loc[: len(p)]) == p for p in self.overrides):
            line, col = self.key_position(loc)
        return SpecIssue(message=message, file=self.file, line=line, column=col, path=path)


def _key_steps(data: Any, loc: Loc) -> list[str | int]:
    steps: list[str | int] = []
    for step in loc:
        if isinstance(data, dict) and step in data:
            data = data[step]
            steps.append(step)
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
            steps.append(step)
    return steps


def _dotted(steps: list[str | int]) -> str:
    return ".".join(str(s) for s in steps)


# --------------------------------------------------------------------------- overrides


def apply_overrides(
    data: Any, overrides: list[str] | tuple[str, ...], file: str | None = None
) -> tuple[Any, dict[Loc, str]]:
    """Apply ``--set a.b.c=value`` (value parsed as YAML) to the raw data, before validation.

    Values aliases share are copied first, so an override changes only the place it names (as it
    would on the fast path, where yaml-rs expands every alias into a copy)."""
    if not overrides:
        return data, {}
    data = _unshared(data)
    where: dict[Loc, str] = {}
    for text in overrides:
        def fail(message: str) -> SpecError:
            return SpecError(SpecIssue(message=f"--set '{text}': {message}", file=file))

        if "=" not in text:
            raise fail("needs the form path.to.key=value.")
        path, raw_value = text.split("=", 1)
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise fail("has an empty path. Use e.g. tasks.NAME.train.epochs=1.")
        value = _override_value(raw_value, fail)
        if len(keys) + _depth(value) > MAX_DEPTH:
            raise fail(f"nests more than {MAX_DEPTH} levels deep. Set a shorter path or a flatter value.")
        node = data
        for i, key in enumerate(keys[:-1]):
            if not isinstance(node, dict):
                raise fail(f"'{'.'.join(keys[:i])}' is not a mapping.")
            if key not in node:
                if i < 1:  # top-level sections must exist: a typo there is never intended
                    raise fail(f"no section '{key}'.{suggest(key, node)}")
                if keys[0] == "tasks" and i == 1:
                    raise fail(f"no task '{key}'.{suggest(key, node)}")
                node[key] = {}
            node = node[key]
        if not isinstance(node, dict):
            raise fail(f"'{'.'.join(keys[:-1])}' is not a mapping.")
        node[keys[-1]] = value
        where[tuple(keys)] = text
    return data, where


def _override_value(raw: str, fail: Any) -> Any:
    """A ``--set`` value as YAML, with the graph file's limits; its errors say how to quote it."""
    if not raw.strip():
        return ""
    try:
        value, _root, duplicates = read_yaml(raw, None, fast=False)
    except SpecError as exc:
        message = exc.issues[0].message
        if not message.startswith("not valid YAML: "):
            raise fail(f"the value: {message}") from None
        problem = message.removeprefix("not valid YAML: ").split(". ")[0]
        raise fail(f"the value is not valid YAML ({problem}). Quote it to set text: --set 'PATH=\"...\"'.") from None
    if duplicates:
        raise fail(f"the value has {duplicates[0].message}")
    return value


def _unshared(value: Any) -> Any:
    """A copy in which no two places share a dict or list (depth is bounded by the YAML limits)."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# --------------------------------------------------------------------------- validation


def _raw_name_problems(data: Any) -> list[tuple[Loc, str]]:
    """Unknown task/data names, checked on raw data so they show up even when other parts are invalid."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        return []
    tasks = data["tasks"]
    sources = data.get("data") if isinstance(data.get("data"), dict) else {}
    problems: list[tuple[Loc, str]] = []
    for name, task in tasks.items():
        if not isinstance(task, dict):
            continue
        ref = task.get("data")
        if isinstance(ref, str) and ref not in sources:
            problems.append((("tasks", name, "data"), f"unknown data source '{ref}'.{suggest(ref, sources)}"))
        heads = task.get("heads") if isinstance(task.get("heads"), dict) else {}
        for head_name, head in heads.items():  # a joint node's heads may read other data sources
            ref = head.get("data") if isinstance(head, dict) else None
            if isinstance(ref, str) and ref not in sources:
                problems.append((("tasks", name, "heads", head_name, "data"),
                                 f"unknown data source '{ref}'.{suggest(ref, sources)}"))
        deps = task.get("depends_on")
        names = list(deps) if isinstance(deps, (dict, list)) else []
        for dep in names:
            if not isinstance(dep, str):
                continue
            if dep == name:
                problems.append((("tasks", name, "depends_on", dep), "a task cannot depend on itself."))
            elif dep not in tasks:
                problems.append((("tasks", name, "depends_on", dep), f"unknown task '{dep}'.{suggest(dep, tasks)}"))
    return problems


def parse_spec(
    text: str, file: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[Graph, SourceMap]:
    """Validate graph-file text; returns the resolved graph and where each value came from."""
    data, root, issues = read_yaml(text, file)
    # On the fast path no node tree was composed: positions are only needed for errors, compose then.
    source = SourceMap(file=file, tree=root, data=data, text=text if root is None else None)
    if data is None:
        raise SpecError(SpecIssue(message="the file is empty. Start from graphs/quickstart.yaml.", file=file))
    if not isinstance(data, dict):
        raise SpecError(SpecIssue(message="the top level must be a mapping with `name` and `tasks`.", file=file, line=1))
    # Top-level `x-...` keys hold YAML anchors for `<<: *name` merges (as in docker-compose): not graph fields.
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    data, source.overrides = apply_overrides(data, overrides, file=file)
    source.data = data
    try:
        graph = Graph.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            issues += translate(error, source)
        # Name problems are checked on the raw data too: the model validator that finds them
        # only runs once everything else is valid, and users want all errors in one pass.
        issues += [source.issue(loc, msg, at_key=loc[-2] == "depends_on") for loc, msg in _raw_name_problems(data)]
        raise SpecError(_dedupe(issues)) from None
    if issues:
        raise SpecError(issues)
    return graph.resolved(), source


def _dedupe(issues: list[SpecIssue]) -> list[SpecIssue]:
    seen, out = set(), []
    for issue in sorted(issues, key=lambda i: (i.line or 0, i.column or 0)):
        if str(issue) not in seen:
            seen.add(str(issue))
            out.append(issue)
    return out


def load_spec(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = (),
              raw: bytes | None = None) -> tuple[Graph, SourceMap]:
    """Read and validate a graph file. Raises ``SpecError`` naming the file, line and column.

    ``raw``: the file's bytes, when the caller read them already (``run`` keeps a record of the
    validated graph under a digest of exactly these bytes: ``taskgraph.rerun``)."""
    file = str(path)
    try:
        raw = Path(path).read_bytes() if raw is None else raw
    except FileNotFoundError:
        raise SpecError(SpecIssue(message="no such file. Check the path.", file=file)) from None
    except IsADirectoryError:
        raise SpecError(SpecIssue(message="is a folder, not a graph file. Name the .yaml file.", file=file)) from None
    except OSError as exc:
        raise SpecError(SpecIssue(message=f"cannot read the file: {exc.strerror}.", file=file)) from None
    return parse_spec(decode(raw, file), file=file, overrides=overrides)
