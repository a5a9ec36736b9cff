"""Start, address and stop a run's nodes on Ray Serve (the embedded local Ray, or a cluster).

Everything a user can get wrong is checked before Ray starts, in one line each: the run folder,
the node names, a damaged or unfinished node (each is loaded here once, as the replicas will),
a port already taken, more CPUs or GPUs than the local Ray has.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from typing import Any

from taskgraph.errors import ExecutionError, TaskgraphError
from taskgraph.serve.codec import NodeInput
from taskgraph.serve.options import NodeDeployment, node_deployments
from taskgraph.spec.models import suggest
from taskgraph.spec.serving import Deployment

__all__ = ["Serving", "prepare", "start", "APP_NAME"]

APP_NAME = "taskgraph"


@dataclass
class Prepared:
    """A run's nodes, checked and described, with their deployments: what ``start`` deploys."""

    run_dir: str
    graph: str
    served: dict[str, NodeInput]
    deployments: dict[str, NodeDeployment]


@dataclass
class Serving:
    """A running application: its URL, what it serves, and how to stop it."""

    url: str
    prepared: Prepared
    session: Any = None

    def stop(self) -> None:
        """Delete the Serve application and stop Serve (and Ray, when this process started it)."""
        from ray import serve

        try:
            serve.shutdown()
        finally:
            if self.session is not None:
                self.session.close()


def prepare(run_dir: str | os.PathLike[str], nodes: list[str] | None = None, flags: Deployment | None = None) -> Prepared:
    """Check the run folder and the nodes to serve (default: every finished one), load each once
    (a damaged file stops here, not in a replica) and settle each node's deployment."""
    from taskgraph.artifacts import store
    from taskgraph.plan.graph import make_plan
    from taskgraph.trained import load_node, read_graph

    folder, spec = read_graph(run_dir)
    order = make_plan(spec).order
    finished = [n for n in order if folder.node_complete(n)]
    for node in nodes or []:
        if node not in spec.tasks:
            raise TaskgraphError(f"--nodes: the graph '{spec.name}' has no node '{node}'.{suggest(node, spec.tasks)}")
        if node not in finished:
            raise TaskgraphError(f"--nodes: node '{node}' did not finish in {folder.path}. "
                                 f"Train it (`taskgraph resume {folder.path}`) or leave it out.")
    chosen = [n for n in order if n in (nodes or finished)]
    if not chosen:
        raise TaskgraphError(f"{folder.path}: no node finished, nothing to serve. Train the graph first.")
    served = {}
    for node in chosen:
        trained = load_node(run_dir, node, _read=(folder, spec))
        info = trained.input
        if info.shape is None or info.dtype is None:  # requests could not be checked or typed
            raise TaskgraphError(f"node '{node}': this run did not record the shape and dtype of its input "
                                 f"'{info.field}' (it predates that record). Train it again "
                                 f"(`taskgraph run GRAPH --force {node}`) to serve it.")
        served[node] = NodeInput(info.field, info.shape, info.dtype,
                                 {h: head.kind for h, head in trained.heads.items()})
    where = folder.path if store.is_remote(folder.path) else os.path.abspath(folder.path)
    return Prepared(str(where), spec.name, served, node_deployments(chosen, spec.serve, flags))


def check_port(host: str, port: int) -> None:
    """A port another program holds: one line now, not a Serve proxy that retries for ever."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TaskgraphError(f"port {port} on {host} is in use (another server, or `taskgraph serve` already "
                                     f"running?). Stop it or pass another --port, e.g. --port {port + 1}.") from None
            raise TaskgraphError(f"cannot listen on {host}:{port}: {exc.strerror}. Pass another --address/--port.") from None


def _check_resources(deployments: dict[str, NodeDeployment]) -> None:
    """Replicas asking for more than Ray has would wait for ever: say so, with the fix."""
    import ray

    have = ray.cluster_resources()
    for key, field, flag in (("CPU", "cpus", "--cpus"), ("GPU", "gpus", "--gpus")):
        need = sum(d.replicas * getattr(d, field) for d in deployments.values())
        if need > have.get(key, 0.0) + 1e-9:
            per = ", ".join(f"{d.node} {d.replicas}x{getattr(d, field):g}" for d in deployments.values())
            raise ExecutionError(f"the served nodes ask for {need:g} {key}s ({per}); this Ray has "
                                 f"{have.get(key, 0.0):g}. Pass fewer --replicas, a smaller {flag} or --nodes.")


def _app(prepared: Prepared) -> Any:
    from taskgraph.serve.deployments import GraphRouter, NodeServer

    handles = {}
    for node, d in prepared.deployments.items():
        handles[node] = NodeServer.options(
            name=f"node-{node}", num_replicas=d.replicas, ray_actor_options=d.ray_actor_options(),
            max_ongoing_requests=max(8, 2 * d.max_batch_size),
        ).bind(prepared.run_dir, node, d.max_batch_size, d.batch_wait_ms / 1000.0, round(d.cpus) or 1)
    max_batch = {n: d.max_batch_size for n, d in prepared.deployments.items()}
    return GraphRouter.options(name="router").bind(prepared.graph, prepared.served, max_batch, handles)


def start(prepared: Prepared, *, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
          num_cpus: int | None = None) -> Serving:
    """Deploy on the Ray at ``address`` (default: an embedded local one) and wait until it answers."""
    from ray import serve

    from taskgraph.execute.cluster import connect

    local = not (address or os.environ.get("RAY_ADDRESS"))  # the HTTP proxy runs on this machine
    if local:
        check_port(host, port)
    session = connect(address, num_cpus=num_cpus)
    try:
        if local:  # a cluster may autoscale: only the embedded Ray's size is known
            _check_resources(prepared.deployments)
        quiet = {"log_level": "WARNING", "enable_access_log": False}  # replicas log to files, not the terminal
        serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly", logging_config=quiet)
        serve.run(_app(prepared), name=APP_NAME, route_prefix="/", blocking=False, logging_config=quiet)
    except RuntimeError as exc:  # a replica that cannot start (a run folder its machine cannot read, ...)
        _stop_quietly(session)
        raise ExecutionError(f"Ray Serve could not start the nodes: {str(exc).strip().splitlines()[0]}") from exc
    except BaseException:
        _stop_quietly(session)
        raise
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return Serving(f"http://{shown}:{port}/", prepared, session)


def _stop_quietly(session: Any) -> None:
    from ray import serve

    try:
        serve.shutdown()
    finally:
        session.close()
