"""The base of every spec model: frozen (hashable, safe to ship to Ray) and strict (typos fail).

Numbers are strict where YAML is loose: ``true``/``yes``/``on`` are booleans to YAML and would
silently become 1 in an ``int`` field (``epochs: true``), and ``.inf``/``.nan`` are floats that pass
``gt=0`` checks (``lr: .inf``). Both are refused for every declared number, nested ones included.
"""

from __future__ import annotations

import functools
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

from taskgraph.spec.refs import CUSTOM_PATTERN

__all__ = ["Frozen", "Open", "CUSTOM_PATTERN", "is_custom_ref", "LocatedProblems", "BoolForNumber"]


def is_custom_ref(value: object) -> bool:
    """True for ``"pkg.module:name"`` strings, which name user code instead of a registry key."""
    return isinstance(value, str) and ":" in value


class BoolForNumber:
    """Stands in for a boolean given where a number is expected: no number validator accepts it,
    so the field fails with its own location and the rest of the file is still checked."""

    def __init__(self, value: bool):
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"


def _mark_bools(tp: Any, value: Any) -> Any:
    """``value`` with every boolean that annotation ``tp`` wants as an int or float replaced."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _mark_bools(get_args(tp)[0], value)
    if origin is Union or origin is types.UnionType:
        members = [a for a in get_args(tp) if a is not type(None)]
        if isinstance(value, bool) and bool in members:
            return value
        for member in members:
            marked = _mark_bools(member, value)
            if marked is not value:
                return marked
        return value
    if isinstance(value, bool):
        return BoolForNumber(value) if tp in (int, float) else value
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        args = get_args(tp)
        items = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        marked = [_mark_bools(a, v) for a, v in zip(items, value)] + list(value[len(items):])
        return marked if any(m is not v for m, v in zip(marked, value)) else value
    if origin is dict and isinstance(value, dict) and len(get_args(tp)) == 2:
        marked_dict = {k: _mark_bools(get_args(tp)[1], v) for k, v in value.items()}
        return marked_dict if any(marked_dict[k] is not value[k] for k in value) else value
    return value


class LocatedProblems(ValueError):
    """Raised inside validation with a location per problem (relative to the model that raises it),
    so each gets its own line number."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]):
        self.problems = problems
        super().__init__("; ".join(msg for _, msg in problems))


def _has_number(tp: Any) -> bool:
    """Whether annotation ``tp`` holds an int or float anywhere outside nested models."""
    if tp in (int, float):
        return True
    return any(_has_number(arg) for arg in get_args(tp) if arg is not Ellipsis and not isinstance(arg, str))


@functools.cache
def _number_fields(model: type[BaseModel]) -> tuple[tuple[str, str, Any], ...]:
    """``(alias, name, annotation)`` of the fields that can hold numbers: the only ones to look at."""
    return tuple((info.alias or name, name, info.annotation) for name, info in model.model_fields.items()
                 if _has_number(info.annotation))


class _Spec(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, data: Any) -> Any:
        # A model validator, not a field one: pydantic allows no "before" validator on a union's tag field.
        if not isinstance(data, dict):
            return data
        out = data
        for alias, name, annotation in _number_fields(cls):
            key = alias if alias in data else name
            value = data.get(key)
            if isinstance(value, (bool, list, tuple, dict)):
                marked = _mark_bools(annotation, value)
                if marked is not value:
                    out = {**out, key: marked}
        return out


class Frozen(_Spec):
    """Immutable and closed: unknown keys are errors, instances hash and pickle.

    ``defer_build``: a model's validator is built when it is first used, not when its class is
    defined. Building all ~90 spec models at import took ~0.5 s of every command (and of every Ray
    worker that unpickles a task); validating a graph builds the ``Graph`` validator once, which
    covers every model the file uses."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False, defer_build=True)


class Open(_Spec):
    """Immutable but open: extra keys are kept and passed to user code as keyword arguments."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True, allow_inf_nan=False, defer_build=True)
