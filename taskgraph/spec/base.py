"""The base of every spec model: frozen (hashable, safe to ship to Ray) and strict (typos fail)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Frozen", "Open", "CUSTOM_PATTERN", "is_custom_ref"]

#: A user-supplied implementation: ``"package.module:attribute"``.
CUSTOM_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


def is_custom_ref(value: object) -> bool:
    """True for ``"pkg.module:name"`` strings, which name user code instead of a registry key."""
    return isinstance(value, str) and ":" in value


class Frozen(BaseModel):
    """Immutable and closed: unknown keys are errors, instances hash and pickle."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Open(BaseModel):
    """Immutable but open: extra keys are kept and passed to user code as keyword arguments."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)
