"""pydantic's validation errors -> one located, worded ``SpecIssue`` each.

Every message says where (file:line:col and the dotted path), what is wrong and what to write
instead: valid keys with a "did you mean" for unknown keys (inside optional sections and tagged
unions too), the allowed names or choices instead of a regex, the limit and its reason for names.
"""

from __future__ import annotations

import re
import types
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from taskgraph.errors import SpecIssue
from taskgraph.spec.base import CUSTOM_PATTERN, BoolForNumber
from taskgraph.spec.models import MAX_NAME_LENGTH, NAME_PATTERN, Graph, NameProblems, suggest

if TYPE_CHECKING:
    from taskgraph.spec.loader import SourceMap

__all__ = ["translate"]

Loc = tuple[Union[str, int], ...]


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
    """The type inside ``Annotated[...]`` and ``Optional[...]`` (``TrainConfig | None`` -> ``TrainConfig``)."""
    while True:
        if get_origin(tp) is not None and str(get_origin(tp)).endswith("Annotated"):
            tp = get_args(tp)[0]
        elif hasattr(tp, "__metadata__"):
            tp = tp.__origin__
        elif _is_union(tp) and len([a for a in get_args(tp) if a is not type(None)]) == 1:
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) is Union or get_origin(tp) is types.UnionType


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
    if _is_union(tp):
        for arg in get_args(tp):
            arg_u = _unwrap(arg)
            tag = getattr(arg, "__metadata__", [None])[0]
            if getattr(tag, "tag", None) == step or _literal_tag(arg_u) == step:
                return arg_u
        non_none = [a for a in get_args(tp) if a is not type(None)]
        if len(non_none) == 1:
            return _step_into(non_none[0], step)
        return tp  # a union tag we did not match: stay on the union
    return None


def _literal_tag(model: Any) -> Any:
    """The tag of a union member picked by a plain ``Field(discriminator=...)``: its Literal value."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    for info in model.model_fields.values():
        if get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1:
            return get_args(info.annotation)[0]
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


def translate(error: dict[str, Any], source: SourceMap) -> list[SpecIssue]:
    """The issues one pydantic error stands for (a located group of name problems is several)."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if loc[-1:] == ("[key]",):  # a bad mapping key (a task name): point at the key itself
        return [replace(issue, line=line, column=column) if line else issue
                for issue in translate({**error, "loc": loc[:-1]}, source)
                for line, column in [source.key_position(loc[:-1])]]
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), NameProblems):
        # Locations are relative to the model that raised them (the graph, or one joint node).
        return [source.issue((*loc, *p_loc), msg, at_key=p_loc[-2:-1] == ("depends_on",) or _names_a_task(p_loc))
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
        mixture = bool(loc) and loc[-1] == "mixture"  # no user mixtures, not in `taskgraph list`
        custom = "" if field_name in ("method", "kind") or mixture else " Or name your own as 'package.module:name'."
        see = " See docs/multitask.md." if mixture else " See `taskgraph list`."
        return [
            source.issue(
                (*loc, field_name),
                f"unknown {field_name} '{tag}'.{suggest(str(tag), expected)}{custom}{see}",
            )
        ]
    if kind == "union_tag_not_found":
        field_name = "loader" if loc and loc[0] == "data" else "type"
        return [source.issue(loc, f"missing '{field_name}'. Say which one to use; see `taskgraph list`.")]
    if kind == "missing":
        return [source.issue(loc[:-1], f"missing required key '{loc[-1]}'. Add it.")]
    got = error.get("input")
    if isinstance(got, BoolForNumber):
        return [source.issue(loc, f"a number is needed, not the boolean {got!r} (YAML reads true/yes/on and "
                                  "false/no/off as booleans). Write a number.")]
    if kind == "finite_number":
        return [source.issue(loc, f"must be a finite number, not {got!r} (YAML's .inf and .nan are not allowed "
                                  "here). Write a number.")]
    if kind == "string_pattern_mismatch":
        return [source.issue(loc, _pattern_message(str(got), str(error.get("ctx", {}).get("pattern", ""))))]
    if kind == "string_too_long" and error.get("ctx", {}).get("max_length") == MAX_NAME_LENGTH:
        return [source.issue(loc, f"the name '{str(got)[:24]}...' is {len(str(got))} characters long; names are at "
                                  f"most {MAX_NAME_LENGTH}: they become folder and file names (run folders, "
                                  "cache index files, ablation variants), which filesystems cap at 255 bytes. "
                                  "Use a shorter name.")]
    msg = error["msg"]
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    if kind not in ("value_error",) and not isinstance(got, (dict, list)):
        shown = repr(got)
        msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return [source.issue(loc, msg + ("" if msg.endswith(".") else "."))]


def _pattern_message(value: str, pattern: str) -> str:
    """What a pattern means, in words: a name rule, a list of choices or the user-code form, never the regex."""
    shown = value if len(value) <= 40 else value[:37] + "..."
    if pattern == NAME_PATTERN:
        return (f"'{shown}' is not a valid name: start with a letter or _, then use only letters, digits, _ "
                "and - (names become folder names).")
    if pattern == CUSTOM_PATTERN:
        return f"'{shown}' is not a reference to your code: write 'package.module:name'."
    choices = re.fullmatch(r"\^\(([\w|]+)\)\$", pattern)
    if choices:
        options = choices.group(1).split("|")
        return f"unknown value '{shown}'.{suggest(value, options)}"
    return f"'{shown}' has the wrong form (expected text matching {pattern})."


def _names_a_task(loc: Loc) -> bool:
    """A problem with a task's name itself (``tasks.NAME``): point at the name, not its body."""
    return len(loc) == 2 and loc[0] == "tasks"


def _tag_field(loc: Loc, ctx: dict[str, Any]) -> str:
    """The key a union error is about: ``method`` (weightings), ``kind`` (tasks), ``loader`` or ``type``."""
    named = str(ctx.get("discriminator", "")).strip("'")
    if named.isidentifier():
        return named
    if len(loc) == 2 and loc[0] == "tasks":
        return "kind"
    return "loader" if loc and loc[0] == "data" else "type"
