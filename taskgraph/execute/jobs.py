"""Submitting a graph to a Ray cluster through the Ray Jobs API, and following it afterwards.

``taskgraph submit`` ships the working directory (the user's project, with the graph file) and
taskgraph's own code in the job's runtime environment, then runs ``python -m taskgraph run`` on
the head node: the driver lives on the cluster, so the submitting machine may disconnect. On a
token-protected cluster the token comes from ``--token-file`` / ``RAY_AUTH_TOKEN`` /
``RAY_AUTH_TOKEN_PATH`` / ``~/.ray/auth_token`` on the submitting machine (``auth.use_token``).
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskgraph.errors import ExecutionError
from taskgraph.execute.auth import auth_hint, probe_port, token_source, use_token

__all__ = [
    "JobInfo", "submit_graph", "job_info", "job_logs", "follow_job", "stop_job", "list_jobs", "EXCLUDES", "TERMINAL",
]

#: Never shipped with a job: run outputs, VCS data, environments, caches, bulky data, and the
#: cluster token (README's secrets/, local_cluster's .cluster/): the job has no use for it.
EXCLUDES = [
    "runs/", ".git/", "data/", ".venv/", "venv/", "__pycache__/", "*.pyc", "*.egg-info/",
    ".pytest_cache/", "build/", "dist/", "*.safetensors", "*.ckpt", "secrets/", ".cluster/",
]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
#: Seconds a stopped job's driver has to mark its run interrupted before Ray kills it.
STOP_GRACE_S = 30


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    status: str
    message: str
    entrypoint: str
    start_time: float | None
    end_time: float | None
    metadata: dict[str, str]


def _client(address: str | None) -> Any:
    """A ``JobSubmissionClient`` for the dashboard at ``address`` (``http://head:8265``)."""
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ExecutionError(
            "no cluster address: pass --address http://HEAD:8265 (the Ray dashboard / Jobs port) "
            "or set RAY_API_SERVER_ADDRESS."
        )
    use_token()
    _probe(address)
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, auth errors, bad URLs: all say "cannot reach"
        if _is_auth_error(str(exc)):
            raise ExecutionError(auth_hint(f"the Ray Jobs API at {address}", token_source()) + ".") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutionError(
            f"cannot reach the Ray Jobs API at {address}: {first}. Check the address (http://HEAD:8265, the "
            "dashboard port) and that the head runs Ray 2.60."
        ) from exc


def _probe(address: str) -> None:
    """A TCP look at the Jobs API's host and port first: a silent host fails in seconds, not minutes."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address if "://" in address else f"http://{address}")
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 8265)
    except ValueError:
        return  # not a URL: JobSubmissionClient says what is wrong with it
    if host:
        probe_port(host, port, "the Ray Jobs API", shown=address)


def _is_auth_error(text: str) -> bool:
    return any(word in text for word in ("401", "403", "Unauthorized", "uthentication token"))


def _call(what: str, address: str | None, fn: Any) -> Any:
    try:
        return fn()
    except ExecutionError:
        raise
    except Exception as exc:
        text = str(exc)
        if _is_auth_error(text):
            hint = auth_hint(f"the Ray Jobs API at {address}", token_source())
            raise ExecutionError(f"{what}: {hint}.") from None
        hint = " List the cluster's jobs with `taskgraph jobs`." if "does not exist" in text or "404" in text else ""
        raise ExecutionError(f"{what} at {address or 'the cluster'} failed: {text.strip().rstrip('.')}.{hint}") from exc


def _relative_graph(graph: Path, working_dir: Path) -> str:
    try:
        return graph.resolve().relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        raise ExecutionError(
            f"{graph} is not inside the working directory {working_dir}, which is what the job ships. "
            "Run `taskgraph submit` from the project folder, or pass --working-dir FOLDER that contains the graph."
        ) from None


def submit_graph(
    graph: Path,
    address: str | None,
    *,
    working_dir: Path = Path("."),
    run_args: list[str] | None = None,
    ship_code: bool = True,
    pip: list[str] | None = None,
    env: dict[str, str] | None = None,
    job_id: str | None = None,
) -> str:
    """Submit ``taskgraph run GRAPH RUN_ARGS`` as a Ray job; returns the submission id at once.

    ``working_dir`` (default: the current folder, your project) becomes the job's working
    directory, minus ``EXCLUDES``; the graph must be inside it. With ``ship_code`` the installed
    taskgraph package goes along too (``py_modules``), so the cluster runs the same code as here.
    """
    import taskgraph

    entry = ["python", "-m", "taskgraph", "run", _relative_graph(graph, working_dir), *(run_args or [])]
    runtime_env: dict[str, Any] = {"working_dir": str(working_dir.resolve()), "excludes": list(EXCLUDES)}
    if ship_code:
        runtime_env["py_modules"] = [str(Path(taskgraph.__file__).resolve().parent)]
    if pip:
        runtime_env["pip"] = list(pip)
    # `taskgraph stop` (Ray's stop_job) sends SIGTERM, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S
    # (3 s by default, read by the job's supervisor from this runtime env): time for the driver to
    # cancel its nodes and mark the run interrupted and resumable, as on Ctrl-C.
    runtime_env["env_vars"] = {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S), **(env or {})}
    client = _client(address)
    return _call(
        "submitting the job",
        address,
        lambda: client.submit_job(
            entrypoint=shlex.join(entry),
            runtime_env=runtime_env,
            submission_id=job_id,
            metadata={"taskgraph_graph": graph.name},
        ),
    )


def _info(job_id: str, info: Any) -> JobInfo:
    ms = lambda t: t / 1000.0 if t else None  # noqa: E731  (Ray reports milliseconds)
    return JobInfo(
        job_id=job_id,
        status=str(getattr(info.status, "value", info.status)),
        message=info.message or "",
        entrypoint=info.entrypoint or "",
        start_time=ms(info.start_time),
        end_time=ms(info.end_time),
        metadata=dict(info.metadata or {}),
    )


def job_info(job_id: str, address: str | None, client: Any = None) -> JobInfo:
    client = client or _client(address)
    return _info(job_id, _call(f"looking up job '{job_id}'", address, lambda: client.get_job_info(job_id)))


def list_jobs(address: str | None) -> list[JobInfo]:
    """Every job the cluster's Jobs API knows (submitted ones: those with a submission id), oldest first."""
    client = _client(address)
    details = _call("listing the jobs", address, client.list_jobs)
    jobs = [_info(d.submission_id, d) for d in details if getattr(d, "submission_id", None)]
    return sorted(jobs, key=lambda j: (j.start_time or 0.0, j.job_id))


def job_logs(job_id: str, address: str | None, client: Any = None) -> str:
    client = client or _client(address)
    return _call(f"reading the logs of job '{job_id}'", address, lambda: client.get_job_logs(job_id))


def stop_job(job_id: str, address: str | None, wait_s: float = STOP_GRACE_S + 15.0, poll_s: float = 0.5) -> JobInfo:
    """Ask the cluster to stop ``job_id`` and wait up to ``wait_s`` for it to end; returns its last info.

    Ray stops a job by signalling its driver (SIGTERM, then SIGKILL): ``taskgraph run`` marks the
    run interrupted and resumable, as on Ctrl-C. A job that had already ended is returned as it is.
    """
    client = _client(address)
    info = job_info(job_id, address, client)  # an unknown id: one line naming `taskgraph jobs`
    if info.status in TERMINAL:
        return info
    _call(f"stopping job '{job_id}'", address, lambda: client.stop_job(job_id))
    deadline = time.monotonic() + wait_s
    while info.status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(poll_s)
        info = job_info(job_id, address, client)
    return info


def follow_job(job_id: str, address: str | None, emit: Any, poll_s: float = 2.0, timeout_s: float | None = None) -> JobInfo:
    """Print the job's new log lines as they come (``emit(text)``) until it ends; returns its final info."""
    shown, started = 0, time.monotonic()
    client = _client(address)  # one connection for the whole follow, not two per poll
    while True:
        info = job_info(job_id, address, client)
        logs = job_logs(job_id, address, client)
        if len(logs) > shown:
            emit(logs[shown:].rstrip("\n"))
            shown = len(logs)
        if info.status in TERMINAL:
            return info
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise ExecutionError(
                f"job '{job_id}' still {info.status} after {timeout_s:.0f}s; it keeps running on the cluster. "
                f"Follow it with `taskgraph logs {job_id} --address {address}`."
            )
        time.sleep(poll_s)
