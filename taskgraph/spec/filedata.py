"""Configs of the generic loaders (``table``, ``conll``, ``arrays``): common data with no code.

Torch- and pandas-free: the loaders themselves live in ``taskgraph.train.datasets``. Paths are
files the user names; a relative path is resolved against the current directory (the folder
you run ``taskgraph`` from, which ``submit`` ships as the job's working directory). Each config
declares the files it reads (``reads()``), so the cache key hashes their content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from taskgraph.spec.base import Frozen
from taskgraph.spec.data import TokenOptions, _DataBase

__all__ = ["TableData", "TableLabel", "ConllData", "ConllColumn", "ArraysData", "FILE_LOADERS", "user_path"]


def user_path(path: str) -> Path:
    """A user's data path: ``~`` expanded, a relative path against the current directory."""
    return Path(path).expanduser().absolute()


def _named(value: Any, default_key: str) -> Any:
    """``{field: spec}`` -> ``[{field, ...spec}]`` (tuples hash; mappings do not), where a bare
    value in the mapping is ``default_key``'s value and a bare string in a list is the field."""
    if isinstance(value, dict):
        out = []
        for name, spec in value.items():
            spec = dict(spec) if isinstance(spec, dict) else {default_key: spec}
            spec.setdefault("field", name)
            out.append(spec)
        return out
    if isinstance(value, (list, tuple)):
        return [{"field": v} if isinstance(v, str) else v for v in value]
    return value


def _as_text(value: Any) -> Any:
    """A number or boolean from YAML as the text a table cell becomes (``1.0`` -> ``1``, ``true`` -> ``True``)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, (int, float)) else value


class _FilesBase(_DataBase):
    """One file split by ``val_fraction`` (``path``), or a ``train`` and a ``val`` file."""

    path: str | None = Field(None, description="One file with every row; split by a split column or `val_fraction`.")
    train: str | None = Field(None, description="The training file (with `val`: splits from separate files).")
    val: str | None = Field(None, description="The validation file.")
    test: str | None = Field(None, description="A test file: scored once with the weights a node keeps, reported "
                             "apart from validation (with `path` or `train`/`val`).")
    seed: int = Field(0, description="Seed of the `val_fraction` split (the same rows on every machine).")

    @model_validator(mode="after")
    def _one_source(self) -> _FilesBase:
        given = [name for name, v in (("path", self.path), ("train", self.train), *self._more_sources()) if v]
        if len(given) != 1:
            options = ", ".join(f"`{n}`" for n in ("path", "train", *(n for n, _ in self._more_sources())))
            raise ValueError(f"give exactly one source of rows, one of {options} (`train` with `val`: separate "
                             f"files); got {', '.join(given) or 'none'}.")
        if self.val is not None and self.train is None:
            raise ValueError("`val` needs `train` (splits from separate files).")
        return self

    def _more_sources(self) -> tuple[tuple[str, object], ...]:
        return ()

    def field_names(self) -> frozenset[str] | None:
        """The fields the loader returns, when the config alone fixes them (None: only the data knows).
        ``validate`` checks each task's ``input`` and ``target`` against them before Ray starts."""
        return None

    def files(self) -> dict[str, str]:
        """``{option: path}`` of the files named: the loaders read these, errors name the option."""
        return {k: v for k, v in (("path", self.path), ("train", self.train), ("val", self.val), ("test", self.test))
                if v is not None}

    def reads(self) -> tuple[Path, ...]:
        return tuple(user_path(p) for p in self.files().values())


class TableLabel(Frozen):
    """One label column: a field (one task's target) with its missing values masked."""

    field: str = Field(description="Name of the field (a task's `target`).")
    column: str | None = Field(None, description="Column read (default: the field's name).")
    kind: Literal["class", "binary", "float"] = Field(
        "class", description="class: int64 ids, missing -100; binary: float 0/1, missing NaN; float: missing NaN.")
    positive: str | None = Field(None, description="binary: the value that is 1 (default: values 0/1 or true/false).")
    classes: tuple[str, ...] | None = Field(
        None, description="class: the ids' order (default: training values, sorted); others are missing.")

    @field_validator("positive", "classes", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        """``positive: 1``, ``classes: [0, 1, 2]``: cells are matched as text (``1.0`` reads as ``1``)."""
        if isinstance(value, (list, tuple)):
            return [_as_text(v) for v in value]
        return _as_text(value)

    @property
    def source(self) -> str:
        return self.column or self.field


class TableData(_FilesBase):
    """A table (CSV, TSV, Parquet or JSON lines): ``x`` from feature columns, one field per label column.

    Numeric features are standardised with the training split's mean and std (missing -> the
    mean); categorical ones become one-hot columns of ``x`` or, with ``encoding: ids``, an int64
    field per column (ids from training, sorted; 0 = unknown or missing) for an ``embedding``.
    Labels: ``class`` ids (vocabulary from training; missing or unseen -> -100), ``binary``
    0/1 floats and ``float`` values (missing -> NaN), masked by every built-in loss and metric.
    """

    loader: Literal["table"]
    format: Literal["auto", "csv", "tsv", "parquet", "jsonl"] = Field(
        "auto", description="File format (auto: from the extension .csv, .tsv/.tab, .parquet/.pq, .jsonl/.ndjson).")
    features: tuple[str, ...] = Field(
        ("*",), description="Feature columns by name or glob pattern (`num_*`); label, weight and split columns "
        "are never features.")
    categorical: tuple[str, ...] = Field(
        (), description="Columns (names or patterns) treated as categorical; non-numeric columns always are.")
    encoding: Literal["onehot", "ids"] = Field(
        "onehot", description="Categorical columns as one-hot columns of x, or as an int64 id field each.")
    max_onehot: int = Field(
        256, ge=1, description="A one-hot column with more training categories than this is an error (an id or "
        "free-text column by mistake?): use encoding: ids, or leave it out of features.")
    standardize: bool = Field(True, description="Standardise numeric features with the training mean and std.")
    labels: tuple[TableLabel, ...] = Field(
        (), description="Label columns: {field: kind} or {field: {column, kind, positive, classes}}.")
    weights: str | None = Field(None, description="Column of row weights, returned as the float field `weight`.")
    split_column: str | None = Field(None, description="Column saying each row's split (with `path`).")
    train_value: str = Field("train", description="split_column value of training rows.")
    val_value: str = Field("val", description="split_column value of validation rows; rows with other values are dropped.")
    test_value: str | None = Field(None, description="split_column value of test rows (default: no test split).")
    input_field: str = Field("x", description="Name of the feature field.")
    na_values: tuple[str, ...] = Field((), description="More values that mean missing (`?`); empty cells always do.")

    @field_validator("labels", mode="before")
    @classmethod
    def _label_mapping(cls, value: Any) -> Any:
        return _named(value, "kind")

    @field_validator("train_value", "val_value", "test_value", mode="before")
    @classmethod
    def _split_value_as_text(cls, value: Any) -> Any:
        return _as_text(value)  # `val_value: 1` for a 0/1 split column

    @model_validator(mode="after")
    def _split_column_needs_one_file(self) -> TableData:
        if self.split_column is not None and self.path is None:
            raise ValueError("`split_column` splits one file: give `path`, not `train`/`val`.")
        fields = [label.field for label in self.labels] + [self.input_field] + (["weight"] if self.weights else [])
        dup = sorted({f for f in fields if fields.count(f) > 1})
        if dup:
            raise ValueError(f"field names used twice: {', '.join(dup)}. Give each label its own `field`.")
        return self

    def field_names(self) -> frozenset[str] | None:
        if self.encoding == "ids":
            return None  # one field per categorical column: the file's header says which
        return frozenset({self.input_field, *(label.field for label in self.labels)} | ({"weight"} if self.weights else set()))

    def field_widths(self) -> dict[str, int]:
        return {}  # a named column may hold text (one-hot, as wide as its categories): only the data knows


class ConllColumn(Frozen):
    """One column of a CoNLL file read as a field: tags (labels) or ids (an extra input)."""

    field: str = Field(description="Name of the field.")
    column: int = Field(description="0-based column index (negative counts from the end: -1 is the last).")
    span: bool = Field(False, description="Encode IOB/IOB2/BIOES chunks as span_f1 reads them: O=0, B-k=2k+1, I-k=2k+2.")
    iob2: bool = Field(False, description="Convert IOB1 (and BIOES) tags to IOB2 before building the tag ids.")


class ConllData(_FilesBase, TokenOptions):
    """Column-format token files (CoNLL-2000/2002/2003, UD-like): padded word ids ``x``, tag fields, ``length``.

    Sentences are separated by blank lines; ``-DOCSTART-`` lines are skipped. Words get ids from
    the training sentences (0 = padding, 1 = unknown; most frequent first, ties by the word).
    Tag columns become int64 ids (tags sorted over every file read, so a tag seen only in
    validation still has an output), padded with -100; ``span: true`` gives span_f1's encoding.
    ``features: true`` adds ``tokens`` (word, rare, case, suffix, shape, chars), the input of a
    ``token_embedding`` module, exactly as the conll2000 loader builds it.
    """

    loader: Literal["conll"]
    word_column: int = Field(0, description="Column of the word.")
    labels: tuple[ConllColumn, ...] = Field(
        (), description="Tag columns: {field: column} or {field: {column, span, iob2}} (int64, padded with -100).")
    inputs: tuple[ConllColumn, ...] = Field(
        (), description="More id columns as inputs: {field: column} (ids from training, 0 pad, 1 unknown).")
    separator: str | None = Field(None, description="Column separator (default: any whitespace; \"\\t\" for tabs).")
    comment: str | None = Field(None, description="Lines starting with this are skipped (\"#\" for CoNLL-U).")
    min_count: int = Field(1, ge=1, description="Words seen fewer times in training are unknown.")

    @field_validator("labels", "inputs", mode="before")
    @classmethod
    def _column_mapping(cls, value: Any) -> Any:
        return _named(value, "column")

    @model_validator(mode="after")
    def _distinct_fields(self) -> ConllData:
        fields = [c.field for c in self.labels + self.inputs] + ["x", "length"] + (["tokens"] if self.features else [])
        dup = sorted({f for f in fields if fields.count(f) > 1})
        if dup:
            raise ValueError(f"field names used twice (x, length and tokens are taken): {', '.join(dup)}.")
        return self

    def field_names(self) -> frozenset[str] | None:
        fields = {"x", "length", *(c.field for c in self.labels + self.inputs)}
        return frozenset(fields | ({"tokens"} if self.features else set()))

    def field_widths(self) -> dict[str, int]:
        return {}  # word ids, not features


class ArraysData(_FilesBase):
    """Named arrays from ``.npz``, ``.safetensors`` or ``.npy`` files: each array is a field.

    ``path``/``train``/``val`` name a ``.npz`` or ``.safetensors`` file, or a folder of
    ``<field>.npy`` files; ``npy`` maps fields to ``.npy`` files instead (one file per field, then
    split by ``val_fraction``). Nothing is unpickled. Floats become float32, integers int64,
    booleans float 0/1 (binary targets).
    """

    loader: Literal["arrays"]
    npy: tuple[tuple[str, str], ...] = Field(
        (), description="{field: file.npy}: one .npy file per field, split by `val_fraction` (instead of `path`).")
    fields: tuple[str, ...] | None = Field(None, description="Keep only these fields (default: every array).")

    @field_validator("npy", mode="before")
    @classmethod
    def _npy_mapping(cls, value: Any) -> Any:
        return tuple(value.items()) if isinstance(value, dict) else value

    def _more_sources(self) -> tuple[tuple[str, object], ...]:
        return (("npy", self.npy),)

    def field_names(self) -> frozenset[str] | None:
        if self.fields is not None:
            return frozenset(self.fields)
        return frozenset(name for name, _ in self.npy) or None

    def files(self) -> dict[str, str]:
        return {f"npy.{name}": file for name, file in self.npy} or super().files()


#: The generic loaders: their configs name the user's files (``files()``), checked before Ray starts.
FILE_LOADERS = (TableData, ConllData, ArraysData)
