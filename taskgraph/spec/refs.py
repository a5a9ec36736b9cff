"""User-code references (``"pkg.module:name"``): the pattern alone, without pydantic.

``plan.usercode`` matches it to hash the user's files into cache keys, and the no-change rerun
(``taskgraph.rerun``) computes keys without loading the spec models, so it lives apart from them.
"""

from __future__ import annotations

__all__ = ["CUSTOM_PATTERN"]

#: A user-supplied implementation: ``"package.module:attribute"``.
CUSTOM_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
