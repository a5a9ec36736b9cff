"""The named building blocks a graph file may use, as discriminated unions on ``type``/``loader``.

Each family is a union of the variant configs in ``spec/modules.py``, ``spec/losses.py`` and
``spec/data.py``, so a user gets errors for the variant they chose only. The implementations
live in ``taskgraph.train`` registries under the same names; a test checks both sides agree.
To add a variant: a config class in its family's file, one ``Tag`` line here, and a registered
implementation in ``taskgraph.train``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Union, get_args

from pydantic import Discriminator, Tag

from taskgraph.spec.base import is_custom_ref
from taskgraph.spec.data import (
    Conll2000Data,
    CustomData,
    DigitPairsData,
    FsddData,
    MnistData,
    SyntheticShapesData,
    TimitSampleData,
)
from taskgraph.spec.filedata import ArraysData, ConllData, TableData
from taskgraph.spec.losses import (
    AdversarialLoss,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    CRFLoss,
    CTCLoss,
    InfoNCELoss,
    CustomLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
)
from taskgraph.spec.layers import (
    Conv1dModule,
    Conv2dModule,
    DropoutModule,
    LayerNormModule,
    SequentialModule,
    TransformerModule,
    rebuild,
)
from taskgraph.spec.modules import (
    BiLSTMModule,
    CRFModule,
    CustomModule,
    EmbeddingModule,
    GradientReversalModule,
    LinearModule,
    MLPModule,
    SelectModule,
    TokenEmbeddingModule,
)

__all__ = ["ModuleConfig", "LossConfig", "DataConfig", "METRICS", "names_of", "options_of"]


def _tag(key: str) -> Any:
    """Callable discriminator: registry names select their variant, ``pkg.mod:name`` selects custom."""

    def pick(value: Any) -> str | None:
        raw = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if raw is None:
            return None
        return "custom" if is_custom_ref(raw) else raw

    return pick


ModuleConfig = Annotated[
    Union[
        Annotated[MLPModule, Tag("mlp")],
        Annotated[LinearModule, Tag("linear")],
        Annotated[EmbeddingModule, Tag("embedding")],
        Annotated[TokenEmbeddingModule, Tag("token_embedding")],
        Annotated[CRFModule, Tag("crf")],
        Annotated[BiLSTMModule, Tag("bilstm")],
        Annotated[GradientReversalModule, Tag("gradient_reversal")],
        Annotated[SelectModule, Tag("select")],
        Annotated[Conv1dModule, Tag("conv1d")],
        Annotated[Conv2dModule, Tag("conv2d")],
        Annotated[TransformerModule, Tag("transformer")],
        Annotated[LayerNormModule, Tag("layer_norm")],
        Annotated[DropoutModule, Tag("dropout")],
        Annotated[SequentialModule, Tag("sequential")],
        Annotated[CustomModule, Tag("custom")],
    ],
    Discriminator(_tag("type")),
]
rebuild(ModuleConfig)  # sequential's layers are modules themselves


LossConfig = Annotated[
    Union[
        Annotated[CrossEntropyLoss, Tag("cross_entropy")],
        Annotated[BinaryCrossEntropyLoss, Tag("binary_cross_entropy")],
        Annotated[MSELoss, Tag("mse")],
        Annotated[L1Loss, Tag("l1")],
        Annotated[HuberLoss, Tag("huber")],
        Annotated[CTCLoss, Tag("ctc")],
        Annotated[CRFLoss, Tag("crf")],
        Annotated[AdversarialLoss, Tag("adversarial")],
        Annotated[InfoNCELoss, Tag("infonce")],
        Annotated[CustomLoss, Tag("custom")],
    ],
    Discriminator(_tag("type")),
]


DataConfig = Annotated[
    Union[
        Annotated[SyntheticShapesData, Tag("synthetic_shapes")],
        Annotated[Conll2000Data, Tag("conll2000")],
        Annotated[TimitSampleData, Tag("timit_sample")],
        Annotated[FsddData, Tag("fsdd")],
        Annotated[MnistData, Tag("mnist")],
        Annotated[DigitPairsData, Tag("digit_pairs")],
        Annotated[TableData, Tag("table")],
        Annotated[ConllData, Tag("conll")],
        Annotated[ArraysData, Tag("arrays")],
        Annotated[CustomData, Tag("custom")],
    ],
    Discriminator(_tag("loader")),
]


# --------------------------------------------------------------------------- metrics

#: Metric names a task may list, with what they measure (implemented in ``taskgraph.train.metrics``).
METRICS: dict[str, str] = {
    "accuracy": "share of correct predictions (argmax, logit > 0 for one output, the Viterbi path of a crf head); "
                "labels -100 are ignored",
    "macro_f1": "unweighted mean of per-class F1 scores",
    "binary_f1": "F1 of the positive class (logit > 0), e.g. boundary detection",
    "span_f1": "span-level F1 of IOB chunks (conlleval; labels O=0, B-k=2k+1, I-k=2k+2, -100 ignored; "
                "a crf head's Viterbi path)",
    "auc": "ROC AUC (Mann-Whitney, ties count half) of a binary head's logit; one-vs-rest macro mean for classes",
    "average_precision": "average precision (precision-recall steps, as scikit-learn); one-vs-rest macro for classes",
    "mse": "mean squared error",
    "mae": "mean absolute error",
    "loss": "the task's own loss on the validation split",
}


def names_of(union: Any) -> dict[str, str]:
    """Registry names of a discriminated union -> first line of the variant's docstring."""
    out: dict[str, str] = {}
    for member in union.__origin__.__args__:  # Annotated[Union[...], Discriminator]
        model = member.__origin__
        tag = member.__metadata__[0].tag
        if tag == "custom":
            continue
        doc = (model.__doc__ or "").strip().splitlines()
        out[tag] = doc[0] if doc else ""
    return dict(sorted(out.items()))


def _type_name(annotation: Any) -> str:
    """``tuple[TableLabel, ...]``, ``str | None``: the annotation without module prefixes."""
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    text = re.sub(r"Annotated\[Union\[Annotated\[[\w.]*MLPModule.*?Discriminator\(.*?\)\]", "module", text)  # sequential
    text = re.sub(r"Annotated\[(\w+), FieldInfo\([^]]*\]\)\]", r"\1", text)  # constraints are in the description
    return re.sub(r"\b[\w]+\.", "", text)


def options_of(union: Any) -> dict[str, list[str]]:
    """Registry name -> one line per option (``name: type = default  description``), read from the
    variant's pydantic fields, so ``taskgraph list -v`` and the configs can never disagree."""
    out: dict[str, list[str]] = {}
    for member in union.__origin__.__args__:
        model, tag = member.__origin__, member.__metadata__[0].tag
        if tag == "custom":
            continue
        lines = []
        for name, info in model.model_fields.items():
            if name in ("type", "loader"):
                continue
            key = info.alias or name
            kind = _type_name(info.annotation)
            default = "required" if info.is_required() else f"= {info.default!r}"
            lines.append(f"{key}: {kind} {default}" + (f"  {info.description}" if info.description else ""))
        out[tag] = lines
    return dict(sorted(out.items()))
