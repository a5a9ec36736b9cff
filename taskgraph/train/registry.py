"""Name -> implementation registries for modules, losses, metrics and loaders.

Lookups fail with the sorted valid names and a close-match hint; ``pkg.module:name`` strings
import user code instead, so a graph file can use its own building blocks without a plugin system.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

from taskgraph.errors import TrainError
from taskgraph.spec.base import is_custom_ref
from taskgraph.spec.models import suggest

__all__ = ["Registry", "import_ref"]

T = TypeVar("T")


def import_ref(ref: str) -> object:
    """Import ``"package.module:attribute"``; a clear error when either part is missing.

    User code that raises while being imported (a bad constant, a missing file it reads) is the
    user's to fix, not a taskgraph bug: one line naming the reference, the file and line, and the
    exception, instead of the import machinery's traceback.
    """
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and not module_name.startswith(exc.name) and not exc.name.startswith(module_name):
            raise TrainError(f"'{ref}': {_raised_at(exc, module_name)} raised {type(exc).__name__}: {exc}. "
                             f"Install '{exc.name}' where the nodes run.") from exc
        raise TrainError(f"cannot import '{module_name}' for '{ref}': {exc}. Is it installed on every worker?") from exc
    except Exception as exc:  # noqa: BLE001 -- user code failing at import time: name it, not taskgraph
        raise TrainError(
            f"importing '{module_name}' for '{ref}' raised {type(exc).__name__}: {exc} "
            f"(at {_raised_at(exc, module_name)}). Fix that module (it fails on `python -c \"import "
            + module_name + "\"` too)."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TrainError(f"'{module_name}' has no attribute '{attr}' (from '{ref}').") from None


def _raised_at(exc: BaseException, module_name: str) -> str:
    """``file:line`` where the import failed, preferring the user's own package over the libraries it calls."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    top = module_name.split(".")[0]
    own = [f for f in frames if f"/{top}/" in f.filename or f.filename.endswith(f"/{top}.py")]
    frame = (own or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame is not None else module_name


class Registry(Generic[T]):
    """A ``dict[str, T]`` filled by ``@registry.register("name")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        if is_custom_ref(name):
            return import_ref(name)  # type: ignore[return-value]
        try:
            return self._items[name]
        except KeyError:
            raise TrainError(f"unknown {self.kind} '{name}'.{suggest(name, self._items)}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
