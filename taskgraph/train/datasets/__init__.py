"""Loaders of the real data sets in ``shared/data`` (TIMIT sample, FSDD, MNIST, digit pairs) and
the generic loaders of user files (``table``, ``conll``, ``arrays``).

Importing this package registers them in ``taskgraph.train.data.LOADERS``. Loaders never
download: a missing file is a ``TrainError`` that names it and says how to point ``root`` at it.
"""

from taskgraph.train.datasets import digit_pairs, fsdd, generic, mnist, timit  # noqa: F401  (registers)
from taskgraph.train.datasets.paths import data_root

__all__ = ["data_root"]
