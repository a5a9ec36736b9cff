"""Registers the generic loaders of user files: ``table``, ``conll`` and ``arrays``.

Each implementation is imported when first used, so a worker that never reads a table does not
pay for importing pandas.
"""

from __future__ import annotations

from taskgraph.spec.filedata import ArraysData, ConllData, TableData
from taskgraph.train.data import LOADERS, Splits

__all__ = ["table", "conll", "arrays"]


@LOADERS.register("table")
def table(config: TableData) -> Splits:
    """CSV, TSV, Parquet or JSON lines (``taskgraph.train.datasets.table``)."""
    from taskgraph.train.datasets.table import load_table

    return load_table(config)


@LOADERS.register("conll")
def conll(config: ConllData) -> Splits:
    """Column-format token files (``taskgraph.train.datasets.conll``)."""
    from taskgraph.train.datasets.conll import load_conll

    return load_conll(config)


@LOADERS.register("arrays")
def arrays(config: ArraysData) -> Splits:
    """``.npz``, ``.safetensors`` and ``.npy`` files (``taskgraph.train.datasets.arrays``)."""
    from taskgraph.train.datasets.arrays import load_arrays

    return load_arrays(config)
