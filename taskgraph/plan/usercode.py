"""User code named in a graph (``"pkg.module:name"``), found and hashed without running it.

A cache key must change when the user's loader, module or loss changes, so the key hashes the
source file of the module that *defines* each reference (``pkg/module.py``, or
``pkg/__init__.py`` for ``"pkg:name"``). What that module imports is not hashed: edit a helper
module and the key stays the same (give the data source a ``version`` or use ``--force``).

The file is located with ``importlib``'s finders alone, without importing: the driver computing
keys never executes user code, so a package that fails on import cannot break ``status`` or
``run`` here (the worker that imports it reports the error for its node).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

from taskgraph.errors import TaskgraphError
from taskgraph.spec.refs import CUSTOM_PATTERN

__all__ = ["code_refs", "module_file", "ref_files", "UserCodeError"]

_REF = re.compile(CUSTOM_PATTERN)
#: Config keys whose value *must* be a reference when it has the ``pkg.module:name`` form.
_REF_KEYS = frozenset({"type", "loader", "metrics"})


class UserCodeError(TaskgraphError):
    """A ``pkg.module:name`` reference whose module cannot be found on this machine."""


def code_refs(config: Any, where: str) -> dict[str, tuple[str, bool]]:
    """Every ``"pkg.module:name"`` string in a config dump: ``{ref: (field path, required)}``.

    ``required`` for the fields that name code (``type``, ``loader``); other strings of that form
    (an argument naming another user function) are hashed when their module exists.
    """
    found: dict[str, tuple[str, bool]] = {}

    def walk(value: Any, path: str, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}", str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", key)
        elif isinstance(value, str) and _REF.match(value):
            required = key in _REF_KEYS
            if value not in found or (required and not found[value][1]):
                found[value] = (path, required)

    walk(config, where, "")
    return found


def module_file(module: str) -> Path | None:
    """The source file that defines ``module`` (a dotted name), found without importing anything.

    None for a module with no file of its own (built in, frozen, a namespace package); raises
    ``LookupError`` when no such module exists on this machine. The top package is looked up
    through ``sys.meta_path`` (editable installs included), each further part in its parent's
    folders only: importing a parent would run its ``__init__``.
    """
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None or not spec.submodule_search_locations:
                spec = None
                break
            folders = list(spec.submodule_search_locations)
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), folders)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise LookupError(module)
    if not spec.origin or not os.path.isfile(spec.origin):
        return None
    return Path(spec.origin)


def ref_files(config: Any, where: str) -> dict[str, Path]:
    """``{ref: defining file}`` for the references in ``config``; a required one not found is an error."""
    files: dict[str, Path] = {}
    for ref, (path, required) in sorted(code_refs(config, where).items()):
        module = ref.split(":", 1)[0]
        try:
            file = module_file(module)
        except LookupError:
            if required:
                raise UserCodeError(
                    f"{path}: '{ref}' names module '{module}', which is not on this machine's Python path. "
                    "Install its package, or run taskgraph from the folder that holds it."
                ) from None
            continue
        if file is not None:
            files[ref] = file
    return files
