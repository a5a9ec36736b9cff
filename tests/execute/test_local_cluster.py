"""scripts/local_cluster.py: every port a cluster takes (head ports, each node's own ports and its
worker range, a joined host's) is disjoint from all the others and free when chosen; ``stop`` finds
every process a cluster left.

No Ray starts here: ``ray start`` is recorded instead of run, and the machine's port allocator is a
scripted one (the kernel may hand out ``bind(0)`` ports in sequence, and some ports are held by
other programs), so the outcome does not depend on which ports happen to be free. Ray binds a
node's worker ports only when a worker starts, so ports picked one at a time as "free now" used to
land inside a worker range chosen a moment before (a CI flake: a worker that cannot start).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Self

from tests.execute.loopback import local_cluster  # scripts/local_cluster.py, loaded once for the suite

#: Ports other programs hold on the scripted machine: one in every 97 from 1024 on.
HELD = frozenset(range(1024 + 7, 65536, 97))


class ScriptedPorts:
    """A machine's port table: ``bind(0)`` hands out the lowest free port from 40000 on (as a kernel
    may), a named port binds unless something holds it; closing a socket frees its port."""

    def __init__(self) -> None:
        self.bound: set[int] = set()

    def socket(self, *_args, **_kwargs) -> ScriptedSocket:
        return ScriptedSocket(self)


class ScriptedSocket:
    def __init__(self, table: ScriptedPorts) -> None:
        self.table, self.port = table, None

    def bind(self, address: tuple[str, int]) -> None:
        port = address[1]
        if port == 0:
            port = next(p for p in range(40000, 65536) if p not in HELD and p not in self.table.bound)
        elif port in HELD or port in self.table.bound:
            raise OSError(98, "Address already in use")
        self.port = port
        self.table.bound.add(port)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def setsockopt(self, *_args) -> None:
        pass

    def close(self) -> None:
        self.table.bound.discard(self.port)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


HEAD_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port")
NODE_FLAGS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
              "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")


def ports_of(args: list[str], flags: tuple[str, ...] = HEAD_FLAGS + NODE_FLAGS) -> list[int]:
    """The ports one ``ray start`` takes (by default all: the head's, the node's, its worker range)."""
    given = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
    single = [int(given[f]) for f in flags if f in given]
    return single + list(range(int(given["--min-worker-port"]), int(given["--max-worker-port"]) + 1))


def record_ray_starts(monkeypatch, slow_first: set[str]) -> list[tuple[list[str], bool]]:
    """``ray start`` recorded, not run: (args, started) per call; the first start of each node named
    in ``slow_first`` ("head", "worker") misses one of Ray's startup windows (the head its dashboard's,
    a worker its raylet's, as a busy machine does), so it is retried."""
    calls: list[tuple[list[str], bool]] = []

    def run(cmd, **_kwargs):
        args = list(cmd[2:])
        kind = "head" if "--head" in args else "worker"
        missed = kind in slow_first
        slow_first.discard(kind)
        calls.append((args, not missed))
        said = {"head": "ERROR services.py:1431 -- Failed to start the dashboard",
                "worker": "The current node timed out during startup."}[kind]
        return subprocess.CompletedProcess(cmd, 1 if missed else 0, said if missed else "started", "")

    monkeypatch.setattr(local_cluster, "socket", types.SimpleNamespace(socket=ScriptedPorts().socket))
    monkeypatch.setattr(local_cluster, "subprocess", types.SimpleNamespace(run=run))
    monkeypatch.setattr(local_cluster, "_kill", lambda pids, grace: None)  # nothing real to end
    monkeypatch.setattr(local_cluster, "_wait_for_nodes",
                        lambda state, count, env, timeout=0: {name: f"id-{name}" for name in state["nodes"]})
    return calls


def test_every_port_a_cluster_takes_is_its_own_and_free(monkeypatch, tmp_path):
    calls = record_ray_starts(monkeypatch, slow_first={"head", "worker"})
    try:
        local_cluster.start(tmp_path / "cluster", gpu_workers=2, cpu_workers=2)
        local_cluster.join(tmp_path / "cluster", "host2")
        local_cluster.join(tmp_path / "cluster", "host3")  # another process would read the same cluster.json
    finally:
        saved = json.loads((tmp_path / "cluster" / "cluster.json").read_text())
        for folder in [saved["temp_dir"], *saved.get("temp_dirs", [])]:
            shutil.rmtree(folder, ignore_errors=True)
    started = [args for args, ok in calls if ok]
    assert len(started) == 1 + 4 + 2 and len(calls) == len(started) + 2  # head and one worker retried
    taken = [port for args in started for port in ports_of(args)]
    clashes = sorted({p for p in taken if taken.count(p) > 1})
    assert not clashes, f"ports taken twice: {clashes[:10]}"
    assert not HELD & set(taken), sorted(HELD & set(taken))
    # a retried node keeps clear of the ports its abandoned attempt may still hold (the head keeps
    # its address: it is in cluster.json already)
    for (failed, ok), (retry, _ok) in itertools.pairwise(calls):
        if not ok:
            assert not set(ports_of(failed, NODE_FLAGS)) & set(ports_of(retry)), "a retry reused its failed ports"
            assert ports_of(failed, HEAD_FLAGS)[:-41] == ports_of(retry, HEAD_FLAGS)[:-41]


def test_port_blocks_are_disjoint_and_free_over_many_draws(monkeypatch):
    """Many blocks of a node's size from one book: never overlapping, never a held port."""
    monkeypatch.setattr(local_cluster, "socket", types.SimpleNamespace(socket=ScriptedPorts().socket))
    book = local_cluster.PortBook()
    blocks = [book.block(47) for _ in range(100)]
    seen: set[int] = set()
    for block in blocks:
        assert len(block) == 47 and not seen & set(block) and not HELD & set(block)
        seen |= set(block)
    again = local_cluster.PortBook(book.taken)  # a later process (`join`) starts from the saved ranges
    assert not seen & set(again.block(47))


def test_stop_finds_the_head_client_server(tmp_path):
    """``ray start --head`` leaves its Ray Client server orphaned, naming neither the temp dir nor a
    node port, only the GCS address it serves: ``stop`` must end it too (each test cluster left one)."""
    state = {"temp_dir": str(tmp_path / "no-such-session"), "address": "127.0.0.2:29999", "nodes": {}}
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-m", "ray.util.client.server",
                               f"--address={state['address']}", "--host=127.0.0.2", "--port=30001"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-m", "ray.util.client.server",
                              "--address=127.0.0.2:299990", "--port=30002"])  # another cluster's
    try:
        deadline = time.time() + 30
        while time.time() < deadline and "--port=30001" not in Path(f"/proc/{server.pid}/cmdline").read_text():
            time.sleep(0.05)
        found = local_cluster.cluster_pids(state)
        assert server.pid in found and other.pid not in found
    finally:
        server.kill()
        other.kill()
        server.wait()
        other.wait()
