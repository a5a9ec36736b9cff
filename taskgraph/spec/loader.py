"""Read a graph file: YAML -> resolved ``Graph``, with every problem reported at its line and column.

All problems of a file are collected in one pass (duplicate keys, schema errors with "did you
mean" hints, unknown names) and raised together as one ``SpecError``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from taskgraph.errors import SpecError, SpecIssue
from taskgraph.spec.models import Graph, NameProblems, suggest

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
            self.tree = _compose(self.text, self.file)[0]
        return self.tree

    def locate(self, loc: Loc) -> tuple[int | None, int | None, str]:
        """(line, column, dotted path) of ``loc``; steps that are not keys (union tags) are skipped."""
        keyed = tuple(_key_steps(self.data, loc))  # union tags (`single`, `multitask`) are not keys
        for prefix, text in self.overrides.items():
            if tuple(loc[: len(prefix)]) == prefix or keyed[: len(prefix)] == prefix:
                return None, None, _dotted(list(keyed)) + f" (from --set {text})"
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


# --------------------------------------------------------------------------- YAML


def _compose(text: str, file: str | None) -> tuple[yaml.Node | None, Any]:
    # One pass with libyaml when present (pure-Python PyYAML takes seconds on a 10,000-node file):
    # compose the node tree (it keeps every position), then build the data from that same tree.
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise SpecError(
            SpecIssue(
                message=f"not valid YAML: {exc.problem}. Fix the syntax at this position.",
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        ) from None
    finally:
        loader.dispose()
    return root, data


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Files at least this large take the fast path (a 1.5 MB, 10,000-node file: 2 s with libyaml).
FAST_PARSE_MIN_BYTES = 256 * 1024
#: Plain scalars YAML 1.1 (PyYAML) and YAML 1.2 (yaml-rs) read differently: yes/no/on/off
#: booleans, leading-zero and 0o integers, sexagesimal numbers, exponents without a dot, dates.
#: A file with any of them (comments and quoted text included: a false alarm only costs speed)
#: keeps the PyYAML path, so both paths always build the same data.
_YAML11_ONLY = re.compile(
    r"(?<![\w.-])(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)(?![\w.-])"
    r"|(?<![\w.])[-+]?0(?:[0-7_]+|o[0-7_]+)(?![\w.])"
    r"|(?<![\w.])[-+]?\d[\d_]*(?::[0-5]?\d)+(?![\w.])"
    r"|(?<![\w.])[-+]?\d[\d_]*[eE][-+]?\d+(?![\w.])"
    r"|(?<![\w.])\d{4}-\d\d?-\d\d?"
)


def _fast_load(text: str) -> Any | None:
    """Large files through yaml-rs (Rust, ~20x faster) when it is installed and the file has no
    YAML-1.1-only scalars; ``None`` means "use PyYAML", which also reports duplicate keys and
    syntax errors with their positions."""
    if len(text) < FAST_PARSE_MIN_BYTES or _YAML11_ONLY.search(text):
        return None
    try:
        import yaml_rs
    except ImportError:
        return None
    try:
        data = yaml_rs.loads(text, parse_datetime=False)
    except Exception:  # duplicate keys, syntax errors, anything else: the careful path explains
        return None
    return data if isinstance(data, dict) else None


def _duplicate_keys(node: yaml.Node | None, file: str | None, path: tuple = ()) -> list[SpecIssue]:
    """YAML silently keeps the last of two equal keys; a graph file with that is almost always a typo."""
    issues: list[SpecIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key, value in node.value:
            if key.value in seen:
                first = seen[key.value].start_mark.line + 1
                issues.append(
                    SpecIssue(
                        message=f"duplicate key '{key.value}' (first defined on line {first}). Keep one of them.",
                        file=file,
                        line=key.start_mark.line + 1,
                        column=key.start_mark.column + 1,
                        path=_dotted([*path, key.value]),
                    )
                )
            seen[key.value] = key
            issues += _duplicate_keys(value, file, (*path, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            issues += _duplicate_keys(item, file, (*path, i))
    return issues


# --------------------------------------------------------------------------- overrides


def apply_overrides(data: Any, overrides: list[str] | tuple[str, ...]) -> tuple[Any, dict[Loc, str]]:
    """Apply ``--set a.b.c=value`` (value parsed as YAML) to the raw data, before validation."""
    import copy

    if not overrides:
        return data, {}
    data = copy.deepcopy(data)
    where: dict[Loc, str] = {}
    for text in overrides:
        if "=" not in text:
            raise SpecError(SpecIssue(message=f"--set '{text}' needs the form path.to.key=value."))
        path, raw_value = text.split("=", 1)
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise SpecError(SpecIssue(message=f"--set '{text}' has an empty path. Use e.g. tasks.NAME.train.epochs=1."))
        node = data
        for i, key in enumerate(keys[:-1]):
            if not isinstance(node, dict):
                raise SpecError(SpecIssue(message=f"--set '{text}': '{'.'.join(keys[:i])}' is not a mapping."))
            if key not in node:
                if i < 1:  # top-level sections must exist: a typo there is never intended
                    raise SpecError(SpecIssue(message=f"--set '{text}': no section '{key}'.{suggest(key, node)}"))
                if keys[0] == "tasks" and i == 1:
                    raise SpecError(
                        SpecIssue(message=f"--set '{text}': no task '{key}'.{suggest(key, node)}")
                    )
                node[key] = {}
            node = node[key]
        if not isinstance(node, dict):
            raise SpecError(SpecIssue(message=f"--set '{text}': '{'.'.join(keys[:-1])}' is not a mapping."))
        node[keys[-1]] = yaml.safe_load(raw_value) if raw_value.strip() else ""
        where[tuple(keys)] = text
    return data, where


# --------------------------------------------------------------------------- validation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that owns the last step of ``loc`` (to list its valid keys)."""
    current: Any = Graph
    for step in loc[:-1]:
        current = _step_into(current, step)
        if current is None:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is not None and str(get_origin(tp)).endswith("Annotated"):
        tp = get_args(tp)[0]
    if hasattr(tp, "__metadata__"):
        tp = tp.__origin__
    return tp


def _step_into(tp: Any, step: str | int) -> Any:
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if step in (name, info.alias):
                return info.annotation
        return None
    if origin is dict:
        return get_args(tp)[1]
    if origin in (list, tuple):
        return get_args(tp)[0]
    if origin is Union or str(origin) == "types.UnionType":
        for arg in get_args(tp):
            arg_u = _unwrap(arg)
            tag = getattr(arg, "__metadata__", [None])[0]
            if getattr(tag, "tag", None) == step:
                return arg_u
        non_none = [a for a in get_args(tp) if a is not type(None)]
        if len(non_none) == 1:
            return _step_into(non_none[0], step)
        return tp  # a union tag we did not match: stay on the union
    return None


def _valid_keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _nested_home(model: type[BaseModel] | None, key: str) -> str | None:
    """For a key put one level too high (``epochs`` on a task), the sub-section it belongs in."""
    if model is None:
        return None
    for name, info in model.model_fields.items():
        inner = _unwrap(info.annotation)
        for candidate in (inner, *get_args(inner)):
            candidate = _unwrap(candidate)
            if isinstance(candidate, type) and issubclass(candidate, BaseModel) and key in _valid_keys(candidate):
                return info.alias or name
    return None


def _translate(error: dict[str, Any], source: SourceMap) -> list[SpecIssue]:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), NameProblems):
        # Locations are relative to the model that raised them (the graph, or one joint node).
        return [source.issue((*loc, *p_loc), msg, at_key=p_loc[-2] == "depends_on")
                for p_loc, msg in error["ctx"]["error"].problems]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        key = str(loc[-1])
        hint = f"{suggest(key, _valid_keys(model))}" if model else ""
        nested = _nested_home(model, key)
        if nested:
            hint = f" '{key}' belongs under `{nested}:`.{hint}"
        return [source.issue(loc, f"unknown key '{key}'.{hint.replace('Known:', 'Valid keys:')}", at_key=True)]
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        tag = ctx.get("tag", "?")
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        expected = [t for t in expected if t != "custom"]
        field_name = _tag_field(loc, ctx)
        custom = "" if field_name in ("method", "kind") else " Or name your own as 'package.module:name'."
        return [
            source.issue(
                (*loc, field_name),
                f"unknown {field_name} '{tag}'.{suggest(str(tag), expected)}{custom} See `taskgraph list`.",
            )
        ]
    if kind == "union_tag_not_found":
        field_name = "loader" if loc and loc[0] == "data" else "type"
        return [source.issue(loc, f"missing '{field_name}'. Say which one to use; see `taskgraph list`.")]
    if kind == "missing":
        return [source.issue(loc[:-1], f"missing required key '{loc[-1]}'. Add it.")]
    msg = error["msg"]
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    got = error.get("input")
    if kind not in ("value_error",) and not isinstance(got, (dict, list)):
        msg += f" (got {got!r})"
    return [source.issue(loc, msg + ("" if msg.endswith(".") else "."))]


def _tag_field(loc: Loc, ctx: dict[str, Any]) -> str:
    """The key a union error is about: ``method`` (weightings), ``kind`` (tasks), ``loader`` or ``type``."""
    named = str(ctx.get("discriminator", "")).strip("'")
    if named.isidentifier():
        return named
    if len(loc) == 2 and loc[0] == "tasks":
        return "kind"
    return "loader" if loc and loc[0] == "data" else "type"


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
    data = _fast_load(text)
    if data is None:
        root, data = _compose(text, file)
        issues = _duplicate_keys(root, file)
        source = SourceMap(file=file, tree=root, data=data)
    else:  # positions are only needed for errors: compose the node tree then, not now
        issues = []
        source = SourceMap(file=file, tree=None, data=data, text=text)
    if data is None:
        raise SpecError(SpecIssue(message="the file is empty. Start from graphs/quickstart.yaml.", file=file))
    if not isinstance(data, dict):
        raise SpecError(SpecIssue(message="the top level must be a mapping with `name` and `tasks`.", file=file, line=1))
    data, source.overrides = apply_overrides(data, overrides)
    source.data = data
    try:
        graph = Graph.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            issues += _translate(error, source)
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


def load_spec(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> tuple[Graph, SourceMap]:
    """Read and validate a graph file. Raises ``SpecError`` naming the file, line and column."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(SpecIssue(message="no such file. Check the path.", file=file)) from None
    except OSError as exc:
        raise SpecError(SpecIssue(message=f"cannot read the file: {exc.strerror}.", file=file)) from None
    return parse_spec(text, file=file, overrides=overrides)
