"""YAML text -> plain data, safely, with the same result from both parsers.

Graph files and ``--set`` values are read here. PyYAML (libyaml when present) is the reference:
it keeps every position, so each problem is reported at its line and column. Large files take
yaml-rs (Rust, ~20x faster) when it is installed and the text holds nothing the two read
differently; any doubt or error sends the text down the PyYAML path, which decides and explains.

Limits, checked on the node tree before anything walks the data (as yaml-rs limits alias replays):
``MAX_DEPTH`` levels of nesting (a 100,000-deep ``[[[...`` overflows libyaml's C stack, and Python
code that walks data recurses) and ``MAX_ALIAS_VALUES`` values repeated through aliases (a
600-byte "billion laughs" file expands to ~10^9 values).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from taskgraph.errors import SpecError, SpecIssue

__all__ = ["MAX_DEPTH", "MAX_ALIAS_VALUES", "FAST_PARSE_MIN_BYTES", "decode", "read_yaml", "fast_load"]

#: Graph files nest fewer than 10 levels; Python's recursion limit (~1,000 frames) ends far below
#: what libyaml accepts, so deeper data would crash whatever walks it next.
MAX_DEPTH = 100
#: Values reached through aliases (``*name``), counted as yaml-rs counts replays: far above any
#: real graph file (one alias per task of a 1,000-task file is ~10,000), far below a bomb.
MAX_ALIAS_VALUES = 100_000
#: Files at least this large take the fast path (a 1.5 MB, 10,000-node file: 2 s with libyaml).
FAST_PARSE_MIN_BYTES = 256 * 1024

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LOADER(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader, whose value errors (a date 2026-13-45) keep the value's position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} ({exc})", node.start_mark) from None

#: Text YAML 1.1 (PyYAML) and YAML 1.2 (yaml-rs) read differently: yes/no/on/off booleans,
#: leading-zero and 0o integers, sexagesimal numbers, exponents without a dot or a sign, signed
#: numbers starting with a dot, dates, the `=` value key, merge keys (`<<`, which yaml-rs keeps
#: as a plain key) and tags (`!foo` is refused by PyYAML, dropped by yaml-rs). A file with any of
#: them (comments and quoted text included: a false alarm only costs speed) takes the PyYAML path.
_YAML11_ONLY = re.compile(
    r"(?<![\w.-])(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)(?![\w.-])"
    r"|(?<![\w.])[-+]?0(?:[0-7_]+|o[0-7_]+)(?![\w.])"
    r"|(?<![\w.])[-+]?\d[\d_]*(?::[0-5]?\d)+(?![\w.])"
    r"|(?<![\w.])[-+]?\d[\d_]*[eE][-+]?\d"
    r"|(?<![\w.])[-+]?\d[\d_]*\.[\d_]*[eE]\d"
    r"|(?<![\w.])[-+]?\.\d[\d_]*[eE]\d"
    r"|(?<![\w.])[-+]\.\d"
    r"|(?<![\w.])\d{4}-\d\d?-\d\d?"
)
#: Indicators yaml-rs reads differently: a `=` or `!` starting a token, and `<<` (checked only when
#: the character is in the text at all, which keeps the common case one substring test).
_INDICATORS = re.compile(r"(?:^|[\s\[{,])[=!]", re.MULTILINE)


def _yaml12_differs(text: str) -> bool:
    """True when PyYAML (YAML 1.1) and yaml-rs (YAML 1.2) might build different data from ``text``."""
    if "<<" in text or (("=" in text or "!" in text) and _INDICATORS.search(text)):
        return True
    return _YAML11_ONLY.search(text) is not None


# --------------------------------------------------------------------------- bytes -> text


_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (b"\xef\xbb\xbf", "utf-8"),
)


def decode(raw: bytes, file: str | None) -> str:
    """UTF-8 text, or UTF-16/32 with a byte-order mark (YAML allows both); binary is refused."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw[len(bom):].decode(encoding)
            except UnicodeDecodeError:
                raise SpecError(SpecIssue(
                    message=f"starts with a {encoding.upper()} byte-order mark but is not {encoding.upper()} "
                    "text. Save the file as UTF-8.", file=file)) from None
            break
    else:
        if b"\x00" in raw:
            at = raw.index(b"\x00")
            line = raw.count(b"\n", 0, at) + 1
            raise SpecError(SpecIssue(
                message="holds a NUL byte: a binary file, or UTF-16 without a byte-order mark? "
                "Save the graph as UTF-8 text.", file=file, line=line))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise SpecError(SpecIssue(
                message=f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}). Save the file as UTF-8.",
                file=file, line=line, column=column)) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError(SpecIssue(message="holds a NUL character. Save the graph as plain UTF-8 text.",
                                  file=file, line=line))
    return text


# --------------------------------------------------------------------------- the careful path


def read_yaml(text: str, file: str | None, fast: bool = True) -> tuple[Any, yaml.Node | None, list[SpecIssue]]:
    """``(data, node tree, duplicate-key issues)``; the tree is None when the fast path built the data
    (compose it later, with ``compose``, only if an error needs positions)."""
    if fast:
        data = fast_load(text)
        if data is not None:
            return data, None, []
    return _careful(text, file)


def compose(text: str, file: str | None) -> yaml.Node | None:
    """The node tree alone (positions for error messages), with the same limits."""
    return _careful(text, file)[1]


def _careful(text: str, file: str | None) -> tuple[Any, yaml.Node | None, list[SpecIssue]]:
    if text.count("[") + text.count("{") > _COMPOSER_SAFE_BRACKETS:
        _check_flow_depth(text, file)  # before libyaml's recursive composer sees it
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        _Measure(file).check(root)
        issues = duplicate_keys(root, file)  # before construction, which merges `<<` keys in place
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_issue(exc, text, file)) from None
    except RecursionError:  # pure-Python PyYAML (no libyaml) recurses while composing
        raise SpecError(SpecIssue(message=f"nested too deeply (more than {MAX_DEPTH} levels).", file=file)) from None
    finally:
        loader.dispose()
    return data, root, issues


def _yaml_issue(exc: yaml.YAMLError, text: str, file: str | None) -> SpecIssue:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    if isinstance(exc, yaml.reader.ReaderError):  # a control character libyaml does not accept
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return SpecIssue(message=f"holds a control character ({char:#04x}) YAML does not allow. "
                         "Remove it or save the file as plain text.", file=file, line=line, column=column)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        fix = "Graph files hold plain mappings, lists, text and numbers: remove the tag."
    elif isinstance(exc, yaml.constructor.ConstructorError):
        fix = "Fix the value, or quote it to keep it as text."
    elif isinstance(exc, yaml.composer.ComposerError) and "undefined alias" in problem:
        fix = "Define the anchor (&name) before using the alias, or quote a value that starts with '*'."
    else:
        fix = "Fix the syntax at this position."
    return SpecIssue(message=f"not valid YAML: {problem}. {fix}", file=file, line=line, column=column)


#: libyaml's composer recurses in C once per nesting level and crashes near 100,000 levels (SIGSEGV);
#: a text with at most this many opening brackets cannot nest deeper than it, however they are quoted.
#: Past it, an event pass (libyaml's parser is iterative) measures the real depth first.
_COMPOSER_SAFE_BRACKETS = 5_000


def _check_flow_depth(text: str, file: str | None) -> None:
    """libyaml's parser is iterative (its composer is not): find the first too-deep collection."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(_too_deep(event.start_mark, file))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_issue(exc, text, file)) from None


def _too_deep(mark: Any, file: str | None) -> SpecIssue:
    return SpecIssue(message=f"nested more than {MAX_DEPTH} levels deep (graph files need fewer than 10). "
                     "Flatten this value.", file=file, line=mark.line + 1, column=mark.column + 1)


class _Measure:
    """One pass over the node tree, each node once (aliases make it a DAG): its expanded size and
    depth, so a bomb or a self-referencing alias is refused without ever being expanded."""

    def __init__(self, file: str | None):
        self.file = file
        self.seen: dict[int, tuple[int, int]] = {}  # id -> (values when expanded, height)
        self.open: set[int] = set()
        self.repeated: dict[int, tuple[int, yaml.Node]] = {}  # id -> (alias uses, node)

    def check(self, root: yaml.Node | None) -> None:
        if root is None:
            return
        size, _ = self.visit(root, 1)
        if size - len(self.seen) > MAX_ALIAS_VALUES:
            uses, node = max(self.repeated.values(), key=lambda u: u[0] * self.seen[id(u[1])][0])
            each = self.seen[id(node)][0]
            raise SpecError(SpecIssue(
                message=f"aliases repeat the value anchored here {uses} times, {each:,} values each: the file "
                f"expands to {size:,} values (at most {MAX_ALIAS_VALUES:,} may come from aliases). An alias bomb? "
                "Use fewer nested aliases.", file=self.file, line=node.start_mark.line + 1,
                column=node.start_mark.column + 1))

    def visit(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in self.seen:  # an alias: the same node again
            uses, _ = self.repeated.get(key, (0, node))
            self.repeated[key] = (uses + 1, node)
            size, height = self.seen[key]
            if depth + height - 1 > MAX_DEPTH:
                raise SpecError(_too_deep(node.start_mark, self.file))
            return size, height
        if key in self.open:
            raise SpecError(SpecIssue(
                message="an alias refers to the value it is inside of (a self-referencing anchor). Remove it.",
                file=self.file, line=node.start_mark.line + 1, column=node.start_mark.column + 1))
        if depth > MAX_DEPTH:
            raise SpecError(_too_deep(node.start_mark, self.file))
        self.open.add(key)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size, height = 1, 1
        for child in children:
            child_size, child_height = self.visit(child, depth + 1)
            size += child_size
            height = max(height, child_height + 1)
        self.open.discard(key)
        self.seen[key] = (size, height)
        return size, height


def duplicate_keys(node: yaml.Node | None, file: str | None) -> list[SpecIssue]:
    """YAML silently keeps the last of two equal keys; a graph file with that is almost always a typo.
    Keys a merge (``<<: *base``) brings in may be overridden: that is what merging is for."""
    issues: list[SpecIssue] = []
    done: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(node, ())] if node is not None else []
    while stack:  # each node once: an aliased subtree is checked where it is defined
        node, path = stack.pop()
        if id(node) in done:
            continue
        done.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name in seen:
                    first = seen[name].start_mark.line + 1
                    fix = " Merge several with `<<: [*a, *b]`." if key.tag.endswith(":merge") else " Keep one of them."
                    issues.append(SpecIssue(
                        message=f"duplicate key '{name}' (first defined on line {first}).{fix}", file=file,
                        line=key.start_mark.line + 1, column=key.start_mark.column + 1,
                        path=".".join(str(s) for s in (*path, name))))
                if name is not None:
                    seen[name] = key
                stack.append((value, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, (*path, i)) for i, item in enumerate(node.value)]
    return sorted(issues, key=lambda i: (i.line or 0, i.column or 0))


# --------------------------------------------------------------------------- the fast path


def fast_load(text: str) -> dict[str, Any] | None:
    """Large files through yaml-rs when it is installed and the text has nothing the two parsers
    read differently; ``None`` means "use PyYAML", which also explains every error."""
    if len(text) < FAST_PARSE_MIN_BYTES or _yaml12_differs(text):
        return None
    try:
        import yaml_rs
    except ImportError:
        return None
    try:
        limits = yaml_rs.AliasLimits(max_total_replayed_events=MAX_ALIAS_VALUES)
        data = yaml_rs.loads(text, parse_datetime=False, alias_limits=limits)
    except Exception:  # duplicate keys, syntax errors, alias and nesting limits: the careful path explains
        return None
    if not isinstance(data, dict) or _data_depth(data) > MAX_DEPTH:
        return None
    return data


def _data_depth(data: Any) -> int:
    """Nesting depth of plain data, without recursion (block nesting is not bounded by brackets)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
    return deepest
