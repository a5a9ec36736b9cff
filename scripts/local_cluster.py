"""A multi-node Ray cluster on this machine (loopback only): one head plus worker nodes, token auth on.

    python scripts/local_cluster.py start [--dir .cluster] [--gpu-workers 1] [--cpu-workers 1]
    python scripts/local_cluster.py env   [--dir .cluster]     # export lines for a shell
    python scripts/local_cluster.py stop  [--dir .cluster]

Each node is a real ``ray start`` (head: ``--num-cpus 0``, so nodes run on the workers, as on a
real cluster). GPU workers advertise fake GPUs (``--num-gpus``), a custom resource ``special``
and the label ``tier=gpu``; CPU workers the label ``tier=cpu``. Every port is picked free and
every process lives under its own ``--temp-dir``, so several clusters (other people's tests,
other checkouts) never collide; ``stop`` ends only this cluster's processes, by PID (never
``ray stop``, which ends every Ray on the machine). The token is a fresh random one, written to
``DIR/auth_token`` and passed as ``RAY_AUTH_TOKEN``; clients need it too (see ``env``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["start", "stop", "client_env", "kill_node", "cluster_pids"]

STATE = "cluster.json"
#: Every node's IP. Loopback, but not 127.0.0.1: Ray replaces 127.0.0.1/localhost with the
#: machine's outward address (``resolve_ip_for_localhost``), and this cluster stays on loopback.
NODE_IP = "127.0.0.2"


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _base_env(token: str) -> dict[str, str]:
    env = dict(os.environ)
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


def _node_args(ports: list[int]) -> list[str]:
    """Ports every node needs: none left to Ray's fixed defaults, which another cluster may hold."""
    nm, om, agent, agent_grpc, metrics, renv, wmin = ports
    return [
        "--node-ip-address", NODE_IP, f"--node-manager-port={nm}", f"--object-manager-port={om}",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={renv}",
        f"--min-worker-port={wmin}", f"--max-worker-port={wmin + 40}",
        "--object-store-memory=100000000", "--disable-usage-stats",
    ]


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    ray = ray if Path(ray).exists() else "ray"
    proc = subprocess.run([ray, "start", *args], env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


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
    env = _base_env(token)
    gcs, dashboard, client = _free_ports(3)
    state = {
        "address": f"{NODE_IP}:{gcs}", "dashboard": f"http://127.0.0.1:{dashboard}",
        "client": f"ray://127.0.0.1:{client}", "temp_dir": temp_dir,
        "token_path": str(state_dir / "auth_token"), "nodes": {},
    }
    ports = _free_ports(7)
    _ray_start(["--head", f"--port={gcs}", "--num-cpus=0", "--num-gpus=0", "--include-dashboard=true",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
                f"--temp-dir={temp_dir}", "--labels=tier=head,name=head", *_node_args(ports)], env)
    state["nodes"]["head"] = {"node_manager_port": ports[0]}
    workers = [("gpu", i) for i in range(gpu_workers)] + [("cpu", i) for i in range(cpu_workers)]
    for kind, i in workers:
        ports = _free_ports(7)
        name = f"{kind}{i}"
        extra = (["--num-gpus=1", '--resources={"special": 1}', f"--labels=tier=gpu,name={name}"]
                 if kind == "gpu" else ["--num-gpus=0", f"--labels=tier=cpu,name={name}"])
        _ray_start([f"--address={state['address']}", f"--num-cpus={worker_cpus}", *extra, *_node_args(ports)], env)
        state["nodes"][name] = {"node_manager_port": ports[0]}
    (state_dir / STATE).write_text(json.dumps(state, indent=2))
    for name, node_id in _wait_for_nodes(state, 1 + len(workers), env).items():
        state["nodes"][name]["node_id"] = node_id
    (state_dir / STATE).write_text(json.dumps(state, indent=2))
    return state


def _wait_for_nodes(state: dict, count: int, env: dict[str, str], timeout: float = 60.0) -> dict[str, str]:
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
    agents are their children.
    """
    procs = _processes()
    if node is not None:
        port = state["nodes"][node]["node_manager_port"]
        roots = {pid for pid, (_p, cmd) in procs.items() if "raylet" in cmd and f"--node_manager_port={port}" in cmd}
    else:
        roots = {pid for pid, (_p, cmd) in procs.items() if state["temp_dir"] in cmd}
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
    subprocess.run(["rm", "-rf", state["temp_dir"]], check=False)
    state_file.unlink()


def client_env(state: dict) -> dict[str, str]:
    """What a driver or a `taskgraph submit` on this machine needs to reach the cluster."""
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": state["token_path"],
        "RAY_ADDRESS": state["address"],
        "RAY_API_SERVER_ADDRESS": state["dashboard"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "env"])
    parser.add_argument("--dir", default=".cluster", help="Where the cluster's state and token go.")
    parser.add_argument("--gpu-workers", type=int, default=1)
    parser.add_argument("--cpu-workers", type=int, default=1)
    parser.add_argument("--worker-cpus", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "start":
        state = start(args.dir, args.gpu_workers, args.cpu_workers, args.worker_cpus)
        print(f"cluster up: GCS {state['address']}, dashboard/Jobs {state['dashboard']}")
        print(f"reach it:  eval \"$(scripts/local_cluster.sh env --dir {args.dir})\"")
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
