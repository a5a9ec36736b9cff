"""A finished (or failed, or still running) run, read back from its run directory for pictures and reports.

Reads ``run.json``, ``graph.yaml`` (re-planned, for the edges), each node's ``metrics.json`` and,
when ``taskgraph ablate`` wrote one, ``ablation.json``. No Ray, no torch: reports open anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgraph.artifacts.rundir import RunDir
from taskgraph.errors import ArtifactError

if TYPE_CHECKING:
    from taskgraph.plan.graph import Plan
    from taskgraph.spec.models import Graph

__all__ = ["NodeRun", "Try", "RunView", "load_run", "is_run_dir", "find_ablation", "ABLATION", "TRACE", "STATUS_FILL"]

ABLATION, TRACE = "ablation.json", "trace.json"

#: One colour per status a node can have, in the order legends list them: shared by the Gantt, the
#: dependency picture and the tables.
STATUS_FILL = {
    "done": "#86efac", "cached": "#d1d5db", "running": "#93c5fd", "pending": "#f3f4f6",
    "failed": "#fca5a5", "skipped": "#fde68a", "interrupted": "#f0abfc", "retried": "#fdba74",
}


@dataclass(frozen=True)
class Try:
    """One attempt at a node: a retried one (its worker died) or the last one (the node's own end)."""

    node: str
    attempt: int  # 1, 2, ...
    status: str  # "retried", or the node's status for its last try
    begin: float
    end: float
    where: str
    why: str = ""
    end_is_bound: bool = False  # a retried try never heard from again: it ended by the next one's start


@dataclass(frozen=True)
class NodeRun:
    """One node of ``run.json``: when and where it ran, and how it ended."""

    name: str
    status: str = "pending"
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    host: str | None = None
    worker_id: str | None = None
    pid: int | None = None
    gpu_ids: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: tuple[dict[str, Any], ...] = ()  # run.json's ``attempts``, oldest first

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> NodeRun:
        return cls(
            name=name,
            status=data.get("status") or "pending",
            submitted_at=data.get("submitted_at"),
            started_at=data.get("started_at"),
            ended_at=data.get("ended_at"),
            host=data.get("host"),
            worker_id=data.get("worker_id"),
            pid=data.get("pid"),
            gpu_ids=tuple(str(g) for g in data.get("gpu_ids") or ()),
            meta=dict(data.get("meta") or {}),
            error=data.get("error"),
            attempts=tuple(dict(a) for a in data.get("attempts") or () if isinstance(a, dict)),
        )

    @property
    def begin(self) -> float | None:
        """Start of the bar: when it started on a worker, else (a failed submit) when it was submitted."""
        return self.started_at if self.started_at is not None else self.submitted_at

    @property
    def seconds(self) -> float | None:
        if self.begin is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.begin)

    @property
    def first_started_at(self) -> float | None:
        """When the first try started: a retried node's ``started_at`` is its last try's."""
        starts = [a["started_at"] for a in self.attempts if a.get("started_at") is not None]
        return min(starts) if starts else self.started_at

    @property
    def queued_seconds(self) -> float | None:
        """Waiting for a worker before the first try (not the time earlier tries ran)."""
        first = self.first_started_at
        if self.submitted_at is None or first is None:
            return None
        return max(0.0, first - self.submitted_at)

    def tries(self) -> list[Try]:
        """Every try that has a time span: earlier (retried) ones from ``attempts``, then the node itself."""
        out = []
        for a in self.attempts[:-1]:
            begin, end = a.get("started_at"), a.get("ended_at")
            if begin is None or end is None:
                continue
            where = f"{a.get('host') or '?'} pid {a.get('pid')}" if a.get("pid") is not None else (a.get("host") or "?")
            out.append(Try(self.name, int(a.get("attempt") or len(out) + 1), "retried", float(begin),
                           max(float(begin), float(end)), where, str(a.get("why") or "its worker died"),
                           bool(a.get("ended_at_is_bound"))))
        if self.begin is not None and self.ended_at is not None:
            out.append(Try(self.name, len(self.attempts) or 1, self.status, self.begin, max(self.begin, self.ended_at),
                           self.where, self.error or ""))
        return out

    @property
    def where(self) -> str:
        """``host GPU 0`` or ``host pid 123``: one Gantt lane per GPU, else per worker process."""
        host = self.host or "?"
        if self.gpu_ids:
            return f"{host} GPU {','.join(self.gpu_ids)}"
        return f"{host} pid {self.pid}" if self.pid is not None else host


@dataclass
class RunView:
    """Everything a report shows about one run."""

    path: Path
    run: dict[str, Any]
    nodes: dict[str, NodeRun]
    order: tuple[str, ...]
    upstream: dict[str, tuple[str, ...]]
    spec: Graph | None = None
    plan: Plan | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    ablation: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, shown in the report
    ablation_file: Path | None = None

    @property
    def name(self) -> str:
        return str(self.run.get("graph") or (self.spec.name if self.spec else self.path.name))

    def status(self) -> dict[str, str]:
        return {n: r.status for n, r in self.nodes.items()}

    def durations(self) -> dict[str, float]:
        return {n: r.seconds for n, r in self.nodes.items() if r.seconds is not None}


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / "run.json").is_file()


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"cannot read {path.name}: {exc}")
        return None


def _ablation_rows(data: Any) -> list[dict[str, Any]]:
    """Rows of the ablation table: one per edge (and label fraction) and metric.

    ``taskgraph ablate`` writes ``{"gains": [{upstream, downstream, fraction, metric, with_edge: [...],
    without_edge: [...], gain_mean, gain_std, p_value, test, negative, ...}], "rows": [per-seed runs]}``;
    a plain list (or ``{"rows": [...]}``) of ready rows ``{edge, metric, with_mean, ..., negative_transfer}``
    is read as it is.
    """
    from statistics import mean, stdev

    if isinstance(data, dict) and isinstance(data.get("gains"), list):
        rows = []
        for g in data["gains"]:
            with_edge, without = list(g.get("with_edge") or []), list(g.get("without_edge") or [])
            rows.append({
                "edge": f"{g.get('upstream')} -> {g.get('downstream')}",
                **({"fraction": g["fraction"]} if "fraction" in g else {}),
                "metric": g.get("metric"),
                "with_mean": mean(with_edge) if with_edge else None,
                "with_std": stdev(with_edge) if len(with_edge) > 1 else None,
                "without_mean": mean(without) if without else None,
                "without_std": stdev(without) if len(without) > 1 else None,
                "gain_mean": g.get("gain_mean"), "gain_std": g.get("gain_std"), "p_value": g.get("p_value"),
                "negative_transfer": g.get("negative", (g.get("gain_mean") or 0) < 0),
                **({"verdict": g["verdict"]} if "verdict" in g else {}),
            })
        return rows
    rows = data.get("rows", []) if isinstance(data, dict) else data
    return [dict(r) for r in rows or [] if isinstance(r, dict) and ("edge" in r or "gain_mean" in r)]


def find_ablation(path: Path, graph: str | None) -> Path | None:
    """``<run_dir>/ablation.json``, else the newest ``<root>/<graph>-ablate/*/ablation.json`` beside the run
    (``taskgraph ablate`` writes there), preferring one made ``--from-run`` this very run."""
    own = path / ABLATION
    if own.is_file():
        return own
    if not graph:
        return None
    candidates = sorted((path.parent.parent / f"{graph}-ablate").glob(f"*/{ABLATION}"))
    for candidate in reversed(candidates):
        try:
            from_run = json.loads(candidate.read_text(encoding="utf-8")).get("from_run")
        except (OSError, ValueError, AttributeError):
            continue
        if from_run and Path(from_run).resolve() == path.resolve():
            return candidate
    return candidates[-1] if candidates else None


def load_run(path: str | os.PathLike[str]) -> RunView:
    """Read a run directory; parts that are missing (a node that never finished) are simply absent."""
    path = Path(path)
    if not is_run_dir(path):
        raise ArtifactError(
            f"{path} is not a run directory (no run.json). Pass the folder `taskgraph run` printed, "
            "e.g. runs/quickstart/20250101-120000."
        )
    problems: list[str] = []
    run = _read_json(path / "run.json", problems) or {}
    if not run:
        raise ArtifactError(f"{path}/run.json is empty or unreadable: {'; '.join(problems)}. Re-run the graph.")
    spec = plan = None
    if (path / "graph.yaml").is_file():
        try:
            from taskgraph.plan.graph import make_plan
            from taskgraph.spec.loader import load_spec

            spec, source = load_spec(path / "graph.yaml")
            plan = make_plan(spec, source)
        except Exception as exc:  # an older graph format: the report still shows the timings
            problems.append(f"graph.yaml could not be re-planned ({type(exc).__name__}: {exc}); edges not shown")
    nodes_raw = run.get("nodes") or {}
    order = tuple(plan.order if plan else run.get("order") or sorted(nodes_raw))
    nodes = {n: NodeRun.from_dict(n, nodes_raw.get(n, {})) for n in order}
    upstream = {n: tuple(plan.nodes[n].upstream) for n in order} if plan else {n: () for n in order}
    metrics = {}
    folder = RunDir(path)
    for name in order:
        if (path / name / "metrics.json").is_file():
            try:  # checked against the node's manifest: changed numbers are not shown as results
                data = folder.read_metrics(name)
            except ArtifactError as exc:
                problems.append(f"{exc} Its metrics are not shown.")
                continue
            if isinstance(data, dict):
                metrics[name] = data
    ablation: list[dict[str, Any]] = []
    ablation_file = find_ablation(path, run.get("graph"))
    if ablation_file is not None:
        ablation = _ablation_rows(_read_json(ablation_file, problems))
    return RunView(path, run, nodes, order, upstream, spec, plan, metrics, ablation, problems, ablation_file)
