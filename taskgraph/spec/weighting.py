"""How a joint node combines its tasks' losses: ``weighting: {method: upgrad}`` (torch-free).

Two families, one union on ``method``. *Loss weightings* turn the per-task losses into one
weighted sum (equal, fixed, uncertainty, dwa, gradnorm, rlw, famo). *Gradient aggregators*
take the per-task gradients of the shared trunk and combine them into one update (mgda,
pcgrad, cagrad, imtl_g, nash_mtl, aligned_mtl, upgrad, accumulate). The implementations live
in ``taskgraph.train.weighting`` under the same names; a test checks both sides agree.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from taskgraph.spec.base import Frozen

__all__ = ["WeightingConfig", "GRADIENT_METHODS", "LOSS_METHODS", "EqualWeighting", "weighting_names"]


class EqualWeighting(Frozen):
    """Sum of the task losses (equal weights): the default, and the baseline every report compares to."""

    method: Literal["equal"] = "equal"


class FixedWeighting(Frozen):
    """Fixed weights per task (``weights: {pos: 1.0, chunk: 0.5}``); unnamed tasks weigh 1."""

    method: Literal["fixed"]
    weights: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)


class UncertaintyWeighting(Frozen):
    """Homoscedastic uncertainty weighting (Kendall et al. 2018): learned log-variance per task."""

    method: Literal["uncertainty"]


class DWAWeighting(Frozen):
    """Dynamic weight average (Liu et al. 2019): weights from the ratio of the last two epochs' losses."""

    method: Literal["dwa"]
    temperature: float = Field(2.0, gt=0.0)


class GradNormWeighting(Frozen):
    """GradNorm (Chen et al. 2018): learned weights that balance gradient norms on the shared representation."""

    method: Literal["gradnorm"]
    alpha: float = Field(1.5, ge=0.0, description="Restoring force towards equal training rates.")
    lr: float = Field(0.025, gt=0.0, description="Learning rate of the task weights.")


class RLWWeighting(Frozen):
    """Random loss weighting (Lin et al. 2022): softmax of normal samples, drawn anew every step."""

    method: Literal["rlw"]


class FAMOWeighting(Frozen):
    """FAMO (Liu et al. 2023): fast adaptive multitask optimisation, O(1) memory and time per step."""

    method: Literal["famo"]
    lr: float = Field(0.025, gt=0.0, description="Learning rate of the task logits.")
    gamma: float = Field(0.01, ge=0.0, description="Weight decay of the task logits.")


class _GradientBase(Frozen):
    level: Literal["parameters", "representation"] = Field(
        "parameters",
        description="Per-task gradients of the shared parameters (one backward per task through the trunk), "
        "or of the shared representation (trunk output; one backward through the trunk in all).",
    )


class MGDAWeighting(_GradientBase):
    """MGDA (Sener & Koltun 2018): the exact min-norm point of the convex hull of the task gradients;
    ``level: representation`` is MGDA-UB, the upper bound on the shared representation."""

    method: Literal["mgda"]


class PCGradWeighting(_GradientBase):
    """PCGrad (Yu et al. 2020): project away the conflicting part of each gradient, then sum."""

    method: Literal["pcgrad"]


class CAGradWeighting(_GradientBase):
    """CAGrad (Liu et al. 2021): the update that maximises the worst task improvement near the mean."""

    method: Literal["cagrad"]
    c: float = Field(0.4, ge=0.0, description="Radius of the ball around the mean gradient.")


class IMTLGWeighting(_GradientBase):
    """IMTL-G (Liu et al. 2021): the update whose projections on every unit task gradient are equal."""

    method: Literal["imtl_g"]


class NashMTLWeighting(_GradientBase):
    """Nash-MTL (Navon et al. 2022): the Nash bargaining solution between the task gradients."""

    method: Literal["nash_mtl"]
    update_weights_every: int = Field(1, ge=1, description="Recompute the weights every N steps (reuse them between).")
    solver: Literal["newton", "cvxpy"] = Field(
        "newton",
        description="newton: Newton's method on the bargaining condition G a = 1/a (microseconds); cvxpy: "
        "torchjd's port of the official code, up to `optim_niter` convex solves per step (tens of ms); it stops "
        "early and need not reach G a = 1/a (kept to reproduce the official code).",
    )
    optim_niter: int = Field(20, ge=1, description="Solves per step of the cvxpy solver.")
    ridge: float = Field(
        1e-8, ge=0.0,
        description="solver: newton. Added to the Gramian of the unit task gradients (relative to each task): keeps "
        "the weights finite where no exact bargaining solution exists; each task's a_i <g_i, d> moves from 1 "
        "by about ridge * (a_i |g_i|)^2.",
    )
    max_norm: float = Field(1.0, ge=0.0, description="Scale the update down to this norm when longer (0: never).")


class AlignedMTLWeighting(_GradientBase):
    """Aligned-MTL (Senushkin et al. 2023): align the gradients' principal components (condition number 1)."""

    method: Literal["aligned_mtl"]


class UPGradWeighting(_GradientBase):
    """UPGrad (Quinton & Rey 2024): project every gradient onto the dual cone of all, then average."""

    method: Literal["upgrad"]
    reg_eps: float = Field(
        0.0, ge=0.0,
        description="Ridge added to the Gramian of the unit task gradients (relative to each task) before the "
        "dual-cone projections; 0 projects exactly. torchjd's default is 1e-4 on the trace-normalised Gramian, "
        "which lets the update conflict with a task much smaller than the others.",
    )


class AccumulateWeighting(Frozen):
    """Gradient sharing by accumulation: one backward per task, gradients summed, one update per cycle."""

    method: Literal["accumulate"]


WeightingConfig = Annotated[
    Union[
        EqualWeighting,
        FixedWeighting,
        UncertaintyWeighting,
        DWAWeighting,
        GradNormWeighting,
        RLWWeighting,
        FAMOWeighting,
        MGDAWeighting,
        PCGradWeighting,
        CAGradWeighting,
        IMTLGWeighting,
        NashMTLWeighting,
        AlignedMTLWeighting,
        UPGradWeighting,
        AccumulateWeighting,
    ],
    Field(discriminator="method"),
]

LOSS_METHODS = ("equal", "fixed", "uncertainty", "dwa", "gradnorm", "rlw", "famo")
GRADIENT_METHODS = ("mgda", "pcgrad", "cagrad", "imtl_g", "nash_mtl", "aligned_mtl", "upgrad", "accumulate")


def weighting_names() -> dict[str, str]:
    """Method name -> first line of its docstring, loss weightings first (for ``taskgraph list``)."""
    out: dict[str, str] = {}
    for model in WeightingConfig.__origin__.__args__:
        name = model.model_fields["method"].annotation.__args__[0]
        kind = "gradient" if name in GRADIENT_METHODS else "loss"
        out[name] = f"[{kind}] " + (model.__doc__ or "").strip().splitlines()[0]
    return out
