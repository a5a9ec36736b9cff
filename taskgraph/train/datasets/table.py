"""The ``table`` loader: a CSV, TSV, Parquet or JSON-lines table as ``x`` plus one field per label.

Everything learned from the data (means, stds, category and class vocabularies) comes from the
training rows only, so validation numbers are not flattered by statistics of the rows they score.
Vocabularies are sorted (numbers numerically), so ids are the same on every machine.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from taskgraph.errors import TrainError
from taskgraph.spec.filedata import TableData, TableLabel
from taskgraph.train.data import Splits
from taskgraph.train.datasets.files import fraction_indices, open_file, unknown
from taskgraph.train.metrics import IGNORE

__all__ = ["load_table", "read_table"]

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
            ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def read_table(path: Path, fmt: str, na_values: tuple[str, ...] = ()) -> pd.DataFrame:
    """One file as a DataFrame; the format from the extension unless given."""
    if fmt == "auto":
        suffixes = [s for s in path.suffixes if s != ".gz"]
        fmt = _FORMATS.get(suffixes[-1].lower() if suffixes else "", "")
        if not fmt:
            raise TrainError(f"{path}: cannot tell the table format from the extension; set `format:` "
                             "(csv, tsv, parquet or jsonl).")
    try:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(path, sep="," if fmt == "csv" else "\t", skipinitialspace=True,
                               na_values=list(na_values) or None)
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_json(path, lines=True)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise TrainError(f"{path}: not a readable {fmt} table ({type(exc).__name__}: {exc}).") from exc
    return frame.replace(list(na_values), np.nan) if na_values else frame


def _key(value: object) -> str:
    """A cell as a vocabulary key: ``1.0`` and ``1`` are the same class (pandas reads an int
    column with gaps as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _keys(series: pd.Series) -> pd.Series:
    """Cells as keys, missing cells as None."""
    return series.map(lambda v: None if pd.isna(v) else _key(v))


def _sorted_vocab(values: set[str]) -> list[str]:
    """Numbers in numeric order when every value is one, else text order."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


class _Frames:
    """The training, validation (and test) rows, and which file each came from (for errors)."""

    def __init__(self, config: TableData):
        self.config = config
        files = config.files()
        read = {opt: read_table(open_file(p, "table", opt), config.format, config.na_values) for opt, p in files.items()}
        first = files.get("path") or files["train"]
        self.where = {"train": first, "val": files.get("val", first), "test": files.get("test", first)}
        self.test: pd.DataFrame | None = read.get("test")
        if "val" in read:
            self.train, self.val = read["train"], read["val"]
        else:
            self.train, self.val = self._split_one(read.get("path", read.get("train")), first)

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "val") + (("test",) if self.test is not None else ())

    def frame(self, split: str) -> pd.DataFrame:
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    def _split_one(self, frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        cfg = self.config
        if cfg.split_column is None:
            return self._by_fraction(frame)
        if cfg.split_column not in frame.columns:
            raise unknown("column", cfg.split_column, list(map(str, frame.columns)), f"{where}: split_column")
        split = _keys(frame[cfg.split_column])
        train, val = frame[split == cfg.train_value], frame[split == cfg.val_value]
        if cfg.test_value is not None:
            self.test = frame[split == cfg.test_value]
        for name, rows, value in (("train", train, cfg.train_value), ("val", val, cfg.val_value),
                                  *((("test", self.test, cfg.test_value),) if cfg.test_value is not None else ())):
            if rows.empty:
                seen = ", ".join(sorted({str(v) for v in split.dropna().unique()})[:20])
                raise TrainError(f"{where}: no row has {cfg.split_column} == '{value}' ({name} rows). Values seen: "
                                 f"{seen or '(none)'}. Set `{name}_value:`.")
        return train, val

    def _by_fraction(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        if len(frame) < 2:
            raise TrainError(f"{self.where.get('train', 'table')}: {len(frame)} row(s); a split needs at least 2.")
        train_idx, val_idx = fraction_indices(len(frame), self.config.val_fraction, self.config.seed)
        return frame.iloc[train_idx.numpy()], frame.iloc[val_idx.numpy()]

    def column(self, split: str, name: str, option: str) -> pd.Series:
        frame = self.frame(split)
        if name not in frame.columns:
            raise unknown("column", name, list(map(str, frame.columns)), f"{self.where[split]}: {option}")
        return frame[name]


def _feature_columns(config: TableData, frames: _Frames) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns, in the file's order."""
    columns = [str(c) for c in frames.train.columns]
    reserved = {label.source for label in config.labels} | {config.weights, config.split_column} - {None}

    def expand(patterns: tuple[str, ...], option: str) -> list[str]:
        out: list[str] = []
        for pattern in patterns:
            if any(c in pattern for c in "*?["):
                hits = [c for c in columns if fnmatch.fnmatchcase(c, pattern) and c not in reserved]
                if not hits and pattern != "*":
                    raise TrainError(f"{frames.where['train']}: {option} pattern '{pattern}' matches no column. "
                                     f"Columns: {', '.join(columns)}.")
            else:
                frames.column("train", pattern, option)
                if pattern in reserved:
                    raise TrainError(f"{frames.where['train']}: {option}: '{pattern}' is a label, weight or split "
                                     "column, so it cannot be a feature.")
                hits = [pattern]
            out += [h for h in hits if h not in out]
        return out

    features = expand(config.features, "features")
    marked = set(expand(config.categorical, "categorical"))
    categorical = [c for c in features if c in marked or not pd.api.types.is_numeric_dtype(frames.train[c])]
    return [c for c in features if c not in categorical], categorical


def _numeric(frames: _Frames, columns: list[str], standardize: bool) -> dict[str, np.ndarray]:
    """Numeric features per split, standardised with the training mean/std; a missing value becomes the mean."""
    if not columns:
        return {split: np.zeros((len(frames.frame(split)), 0)) for split in frames.splits}
    for split in frames.splits[1:]:
        for column in columns:
            frames.column(split, column, "features")
    values_of = {split: frames.frame(split)[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
                 for split in frames.splits}
    train = values_of["train"]
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(train, axis=0)) if len(train) else np.zeros(len(columns))
        std = np.nanstd(train, axis=0) if standardize else np.ones(len(columns))
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    centre = mean if standardize else np.zeros(len(columns))
    out = {}
    for split, values in values_of.items():
        values = np.where(np.isnan(values), mean, values)
        out[split] = (values - centre) / std
    return out


def _categories(frames: _Frames, column: str) -> dict[str, int]:
    """Training values of a categorical column, sorted, as ids 1..; 0 is kept for unknown/missing."""
    values = set(_keys(frames.train[column]).dropna())
    return {v: i + 1 for i, v in enumerate(_sorted_vocab(values))}


def _label(frames: _Frames, label: TableLabel, split: str) -> torch.Tensor:
    keys = _keys(frames.column(split, label.source, f"labels.{label.field}.column"))
    where = f"{frames.where[split]}: column '{label.source}' (labels.{label.field})"
    if label.kind == "class":
        classes = list(label.classes) if label.classes else _sorted_vocab(set(_keys(frames.train[label.source]).dropna()))
        ids = {c: i for i, c in enumerate(classes)}
        return torch.tensor(keys.map(lambda k: IGNORE if pd.isna(k) else ids.get(k, IGNORE)).to_numpy(np.int64))
    if label.kind == "binary":
        seen = set(keys.dropna())
        if label.positive is not None:
            positive = {label.positive}
        elif seen <= {"0", "1"} or seen <= {"True", "False"} or seen <= {"true", "false"}:
            positive = {"1", "True", "true"}
        else:
            raise TrainError(f"{where}: binary labels must be 0/1 or true/false, found {', '.join(sorted(seen)[:10])}. "
                             "Set `positive:` to the value that is 1.")
        values = keys.map(lambda k: np.nan if pd.isna(k) else float(k in positive))
        return torch.tensor(values.to_numpy(np.float64), dtype=torch.float32)
    numbers = pd.to_numeric(frames.column(split, label.source, f"labels.{label.field}.column"), errors="coerce")
    bad = frames.column(split, label.source, "labels")[numbers.isna() & keys.notna()]
    if len(bad):
        raise TrainError(f"{where}: float label '{bad.iloc[0]}' is not a number. Use kind: class for categories.")
    return torch.tensor(numbers.to_numpy(np.float64), dtype=torch.float32)


def load_table(config: TableData) -> Splits:
    """Features into ``x`` (or id fields), labels into their fields, with training-only statistics."""
    frames = _Frames(config)
    numeric, categorical = _feature_columns(config, frames)
    numbers = _numeric(frames, numeric, config.standardize)
    out: dict[str, dict[str, torch.Tensor]] = {split: {} for split in frames.splits}
    blocks: dict[str, list[np.ndarray]] = {split: [numbers[split]] for split in frames.splits}
    taken = {label.field for label in config.labels} | {config.input_field, "weight"}
    for column in categorical:
        vocab = _categories(frames, column)
        if config.encoding == "onehot" and len(vocab) > config.max_onehot:
            raise TrainError(f"{frames.where['train']}: column '{column}' has {len(vocab)} categories in training, "
                             f"more than max_onehot ({config.max_onehot}) one-hot columns. Is it an id or free text? "
                             "Leave it out of `features`, use `encoding: ids` (an embedding), or raise `max_onehot`.")
        for split in frames.splits:
            ids = _keys(frames.column(split, column, "features")).map(lambda k: 0 if pd.isna(k) else vocab.get(k, 0)).to_numpy(np.int64)
            if config.encoding == "ids":
                if column in taken:
                    raise TrainError(f"{frames.where['train']}: categorical column '{column}' would be a field named "
                                     "like a label or x; rename the column or the label's field.")
                out[split][column] = torch.tensor(ids)
            else:
                blocks[split].append(np.eye(len(vocab) + 1)[ids][:, 1:])  # unknown/missing: all zeros
    for split in frames.splits:
        x = np.concatenate(blocks[split], axis=1)
        if x.shape[1]:
            out[split][config.input_field] = torch.tensor(x, dtype=torch.float32)
        for label in config.labels:
            out[split][label.field] = _label(frames, label, split)
        if config.weights:
            weight = pd.to_numeric(frames.column(split, config.weights, "weights"), errors="coerce")
            if weight.isna().any():
                raise TrainError(f"{frames.where[split]}: column '{config.weights}' (weights) has "
                                 f"{int(weight.isna().sum())} missing or non-numeric values.")
            out[split]["weight"] = torch.tensor(weight.to_numpy(np.float64), dtype=torch.float32)
    return Splits(train=out["train"], val=out["val"], test=out.get("test"))
