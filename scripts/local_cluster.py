"""A multi-node Ray cluster on this machine (loopback only): one head plus worker nodes, token auth on.

    python scripts/local_cluster.py start [--dir .cluster] [--gpu-workers 1] [--cpu-workers 1]
    python scripts/local_cluster.py env   [--dir .cluster]     # export lines for a shell
    python scripts/local_cluster.py join  [--dir .cluster] [--name host2] [--labels host=host2]
    python scripts/local_cluster.py stop  [--dir .cluster]

Each node is a real ``ray start`` (head: ``--num-cpus 0``, so nodes run on the workers, as on a
real cluster). GPU workers advertise fake GPUs (``--num-gpus``), a custom resource ``special``
and the label ``tier=gpu``; CPU workers the label ``tier=cpu``. Every port is picked free and
clear of every other port the cluster takes (``PortBook``), and every process lives under its own
``--temp-dir``, so several clusters (other people's tests, other checkouts) never collide; ``stop`` ends only this cluster's processes, by PID (never
``ray stop``, which ends every Ray on the machine). The token is a fresh random one, written to
``DIR/auth_token`` and passed as ``RAY_AUTH_TOKEN``; jobs submitted without ``--run-dir`` write
under ``DIR/runs`` (``TASKGRAPH_RUN_DIR``, as compose's ``/shared/runs``). Clients need the token
too (see ``env``: the token
file alone, as a user would set it; taskgraph switches Ray's client side on from it).

``join`` adds a worker as another machine would (README "More machines"): its own temp dir and
node IP, the head's GCS address and the token file only, a ``host`` label to place nodes on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["start", "join", "stop", "client_env", "kill_node", "cluster_pids", "PortBook"]

STATE = "cluster.json"
#: Every node's IP. Loopback, but not 127.0.0.1: Ray replaces 127.0.0.1/localhost with the
#: machine's outward address (``resolve_ip_for_localhost``), and this cluster stays on loopback.
NODE_IP = "127.0.0.2"


#: A node's own ports, in the order of its port block; the worker range follows them.
NODE_PORTS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
              "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
#: ``--min-worker-port`` to ``--max-worker-port``, both included: one port per worker process.
WORKER_PORTS = 41


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return low, high


def _is_free(port: int) -> bool:
    """Nothing on this machine holds ``port`` on any address (a listener, or a connection's end)."""
    with socket.socket() as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


class PortBook:
    """Every port range a cluster has taken; each new block is free now and clear of all of them.

    "Free now" alone is not enough: Ray binds a node's worker ports only when a worker starts, so
    ports picked one by one (the OS's ``bind(0)``) can land inside a range handed out a moment
    before, and a worker then fails to start (a CI flake). Blocks come from below the kernel's
    ephemeral range when there is room, where no outgoing connection takes a port meanwhile, and
    above Ray's default worker ports (10002-19999), which a plain ``ray start`` elsewhere uses.
    """

    def __init__(self, taken: Iterable[Sequence[int]] = (), rng: random.Random | None = None) -> None:
        self.taken: list[tuple[int, int]] = [(int(low), int(high)) for low, high in taken]
        self._rng = rng or random.Random()

    def _window(self, size: int) -> tuple[int, int]:
        low, high = _ephemeral_range()
        if low - 20000 >= 100 * size:
            return 20000, low
        if 65536 - (high + 1) >= 100 * size:
            return high + 1, 65536
        return 1024, 65536

    def block(self, size: int) -> range:
        """``size`` contiguous ports, none taken by this cluster, each free on the machine now."""
        low, high = self._window(size)
        for _ in range(1000):
            start = self._rng.randrange(low, high - size + 1)
            ports = range(start, start + size)
            if any(start <= last and first < ports.stop for first, last in self.taken):
                continue
            if all(_is_free(port) for port in ports):
                self.taken.append((ports.start, ports.stop - 1))
                return ports
        raise RuntimeError(f"no {size} free ports in a row between {low} and {high}: is this machine out of ports?")


def _base_env(token: str, run_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if run_dir is not None:  # the cluster's default --run-dir, as compose's TASKGRAPH_RUN_DIR=/shared/runs
        env["TASKGRAPH_RUN_DIR"] = str(run_dir)
    env.update({
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
        # A dead node is noticed in a few seconds, not the default ~30 s, so its tasks retry sooner.
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_timeout_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
    })
    env.pop("RAY_ADDRESS", None)
    return env


def _node_args(ports: range, ip: str = NODE_IP) -> list[str]:
    """Ports every node needs, from its own block: none left to Ray's fixed defaults, which another
    cluster may hold, and none shared with another node (their worker ranges included)."""
    own, workers = ports[:len(NODE_PORTS)], ports[len(NODE_PORTS):]
    assert len(workers) == WORKER_PORTS, ports
    return [
        "--node-ip-address", ip, *(f"{flag}={port}" for flag, port in zip(NODE_PORTS, own)),
        f"--min-worker-port={workers[0]}", f"--max-worker-port={workers[-1]}",
        "--object-store-memory=100000000", "--disable-usage-stats",
    ]


#: What ``ray start`` says when a busy machine made it miss one of Ray's fixed startup windows.
BUSY = ("timed out during startup", "Failed to start the dashboard")


def _ray_start(args: list[str], env: dict[str, str], state: dict, book: PortBook, ip: str = NODE_IP,
               attempts: int = 5) -> list[str]:
    """``ray start ARGS`` plus a fresh block of node ports from ``book``; a node that misses Ray's fixed
    startup windows (``BUSY``: a busy 2-core machine) has what it started ended and is started once more on
    another block (the first stays taken: what was ended may still hold it). Returns the args used."""
    ray = str(Path(sys.executable).with_name("ray"))
    ray = ray if Path(ray).exists() else "ray"
    for attempt in range(1, attempts + 1):
        used = [*args, *_node_args(book.block(len(NODE_PORTS) + WORKER_PORTS), ip)]
        state["ports"] = book.taken  # `join` (another process) and a retry keep clear of them
        proc = subprocess.run([ray, "start", *used], env=env, capture_output=True, text=True, timeout=180)
        if proc.returncode == 0:
            return used
        if attempt == attempts or not any(t in proc.stdout + proc.stderr for t in BUSY):
            raise RuntimeError(f"ray start {' '.join(used)} failed:\n{proc.stdout}\n{proc.stderr}")
        if "--head" in args:  # nothing else runs yet: end all of it (GCS, dashboard, raylet)
            _kill(cluster_pids(state), grace=2.0)
        else:  # this node's raylet and what it started
            procs, port = _processes(), _port_of(used)
            roots = {pid for pid, (_p, cmd) in procs.items() if f"--node_manager_port={port}" in cmd}
            _kill(_with_descendants(roots, procs) - {os.getpid()}, grace=2.0)
    raise AssertionError("unreachable")


def _port_of(args: list[str]) -> int:
    return int(next(a.split("=", 1)[1] for a in args if a.startswith("--node-manager-port=")))


def start(
    state_dir: str | os.PathLike[str], gpu_workers: int = 1, cpu_workers: int = 1, worker_cpus: int = 2,
) -> dict:
    """Start the head and the workers; returns (and writes to ``DIR/cluster.json``) how to reach them."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    # Ray's socket paths must stay under ~107 bytes: a short temp dir, not the (long) state dir.
    temp_dir = tempfile.mkdtemp(prefix="tgray-", dir="/tmp")
    token = secrets.token_hex(32)
    (state_dir / "auth_token").write_text(token)
    (state_dir / "auth_token").chmod(0o600)
    env = _base_env(token, state_dir / "runs")
    book = PortBook()
    gcs, dashboard, client = book.block(3)
    state = {
        "address": f"{NODE_IP}:{gcs}", "dashboard": f"http://127.0.0.1:{dashboard}",
        "client": f"ray://127.0.0.1:{client}", "temp_dir": temp_dir,
        "token_path": str(state_dir / "auth_token"), "nodes": {}, "ports": book.taken,
    }
    (state_dir / STATE).write_text(json.dumps(state, indent=2))  # from now on `stop` ends what started
    used = _ray_start(["--head", f"--port={gcs}", "--num-cpus=0", "--num-gpus=0", "--include-dashboard=true",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
                f"--temp-dir={temp_dir}", "--labels=tier=head,name=head"], env, state, book)
    state["nodes"]["head"] = {"node_manager_port": _port_of(used)}
    workers = [("gpu", i) for i in range(gpu_workers)] + [("cpu", i) for i in range(cpu_workers)]
    for kind, i in workers:
        name = f"{kind}{i}"
        extra = (["--num-gpus=1", '--resources={"special": 1}', f"--labels=tier=gpu,name={name}"]
                 if kind == "gpu" else ["--num-gpus=0", f"--labels=tier=cpu,name={name}"])
        used = _ray_start([f"--address={state['address']}", f"--num-cpus={worker_cpus}", *extra], env, state, book)
        state["nodes"][name] = {"node_manager_port": _port_of(used)}
    (state_dir / STATE).write_text(json.dumps(state, indent=2))
    for name, node_id in _wait_for_nodes(state, 1 + len(workers), env).items():
        state["nodes"][name]["node_id"] = node_id
    (state_dir / STATE).write_text(json.dumps(state, indent=2))
    return state


def join(
    state_dir: str | os.PathLike[str], name: str = "host2", labels: dict[str, str] | None = None,
    cpus: int = 1, node_ip: str = "127.0.0.3",
) -> dict:
    """A worker that joins as a second machine would: ``ray start --address=HEAD:PORT`` with only the
    token file in its environment (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``), its own temp dir
    and node IP. Returns the updated state (the node's id under ``nodes[name]``)."""
    state_dir = Path(state_dir).resolve()
    state = json.loads((state_dir / STATE).read_text())
    temp_dir = tempfile.mkdtemp(prefix="tghost-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state["token_path"], "RAY_USAGE_STATS_ENABLED": "0"})
    book = PortBook(state.get("ports", []))  # clear of the ports (worker ranges too) the cluster has
    tags = {"tier": "cpu", **(labels or {"host": name}), "name": name}
    state.setdefault("temp_dirs", []).append(temp_dir)  # before it starts: `stop` ends what it left
    (state_dir / STATE).write_text(json.dumps(state, indent=2))
    used = _ray_start([f"--address={state['address']}", f"--num-cpus={cpus}", "--num-gpus=0", f"--temp-dir={temp_dir}",
                       "--labels=" + ",".join(f"{k}={v}" for k, v in tags.items())], env, state, book, ip=node_ip)
    state["nodes"][name] = {"node_manager_port": _port_of(used), "temp_dir": temp_dir}
    (state_dir / STATE).write_text(json.dumps(state, indent=2))
    ids = _wait_for_nodes(state, len(state["nodes"]), _base_env(Path(state["token_path"]).read_text().strip()))
    state["nodes"][name]["node_id"] = ids[name]
    (state_dir / STATE).write_text(json.dumps(state, indent=2))
    return state


def _wait_for_nodes(state: dict, count: int, env: dict[str, str], timeout: float = 180.0) -> dict[str, str]:
    """Until the head's GCS lists ``count`` alive nodes (a worker joins a moment after `ray start`);
    returns each node's Ray node id by its ``name`` label."""
    deadline = time.time() + timeout
    probe = (
        "import ray, json; ray.init(address=%r, logging_level='ERROR'); "
        "print(json.dumps({n['Labels'].get('name', '?'): n['NodeID'] for n in ray.nodes() if n['Alive']}))"
        % state["address"]
    )
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        if out.returncode == 0:
            ids = json.loads(out.stdout.strip().splitlines()[-1])
            if len(ids) >= count:
                return ids
        time.sleep(1.0)
    raise RuntimeError(f"the cluster at {state['address']} has fewer than {count} nodes after {timeout:.0f}s")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process we can see."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out[int(entry.name)] = (ppid, cmd)
        except (OSError, ValueError, IndexError):
            continue
    return out


def _with_descendants(roots: set[int], procs: dict[int, tuple[int, str]]) -> set[int]:
    found, changed = set(roots), True
    while changed:
        changed = False
        for pid, (ppid, _cmd) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def cluster_pids(state: dict, node: str | None = None) -> set[int]:
    """This cluster's processes (or one node's: its raylet and everything it started).

    Ray's daemons name the session under our ``--temp-dir`` on their command line; workers and
    agents are their children. The head's Ray Client server names neither (``ray start`` leaves it
    orphaned): it is found by the GCS address it serves, or every stopped cluster would leave one.
    """
    procs = _processes()
    if node is not None:
        port = state["nodes"][node]["node_manager_port"]
        roots = {pid for pid, (_p, cmd) in procs.items() if "raylet" in cmd and f"--node_manager_port={port}" in cmd}
    else:
        temp_dirs = [state["temp_dir"], *state.get("temp_dirs", [])]  # the head's, and joined hosts'
        client = f"ray.util.client.server --address={state['address']} "
        roots = {pid for pid, (_p, cmd) in procs.items() if any(t in cmd for t in temp_dirs) or client in cmd}
    roots.discard(os.getpid())
    return _with_descendants(roots, procs) - {os.getpid()}


def _kill(pids: set[int], grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)
        pids = {p for p in pids if Path(f"/proc/{p}").exists()}
        if not pids:
            return


def kill_node(state: dict, node: str) -> set[int]:
    """SIGKILL one worker node (its raylet and all it started), as a machine that dies would."""
    pids = cluster_pids(state, node)
    _kill(pids, grace=0.0)
    return pids


def stop(state_dir: str | os.PathLike[str]) -> None:
    state_file = Path(state_dir) / STATE
    if not state_file.is_file():
        return
    state = json.loads(state_file.read_text())
    _kill(cluster_pids(state), grace=5.0)
    subprocess.run(["rm", "-rf", state["temp_dir"], *state.get("temp_dirs", [])], check=False)
    state_file.unlink()


def client_env(state: dict) -> dict[str, str]:
    """What a driver or a `taskgraph submit` on this machine needs to reach the cluster: the token
    file, no ``RAY_AUTH_MODE`` (taskgraph turns Ray's client side on from the token, README)."""
    return {
        "RAY_AUTH_TOKEN_PATH": state["token_path"],
        "RAY_ADDRESS": state["address"],
        "RAY_API_SERVER_ADDRESS": state["dashboard"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "env", "join"])
    parser.add_argument("--dir", default=".cluster", help="Where the cluster's state and token go.")
    parser.add_argument("--gpu-workers", type=int, default=1)
    parser.add_argument("--cpu-workers", type=int, default=1)
    parser.add_argument("--worker-cpus", type=int, default=2)
    parser.add_argument("--name", default="host2", help="join: the new node's name (and its host=NAME label).")
    args = parser.parse_args(argv)
    if args.command == "start":
        state = start(args.dir, args.gpu_workers, args.cpu_workers, args.worker_cpus)
        print(f"cluster up: GCS {state['address']}, dashboard/Jobs {state['dashboard']}")
        print(f"reach it:  eval \"$(scripts/local_cluster.sh env --dir {args.dir})\"")
    elif args.command == "join":
        state = join(args.dir, args.name)
        print(f"{args.name} joined: node {state['nodes'][args.name]['node_id']} (label host={args.name})")
    elif args.command == "env":
        state = json.loads((Path(args.dir) / STATE).read_text())
        for key, value in client_env(state).items():
            print(f"export {key}={value}")
    else:
        stop(args.dir)
        print("cluster stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
