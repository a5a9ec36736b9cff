"""`taskgraph serve` under concurrent HTTP clients against the eager model called in a loop in one process.

Both answer the same requests (``--examples`` validation examples each, the node's own data):

- eager: ``load_node(...).predict`` on one request after another, in this process (no HTTP, no Ray);
- serve: ``--clients`` threads, each with its own keep-alive HTTP connection, sending requests to the
  node on Ray Serve (embedded local Ray) one after another; the node's replica batches concurrent
  requests (``--max-batch-size`` examples, ``--batch-wait-ms``).

Prints requests/s and p50/p99 latency per side, and the ratio of throughputs. Tests never time this.

    python scripts/bench_serve.py RUN_DIR --node finetune --clients 16 --requests 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import threading
import time
from urllib.parse import urlparse

import numpy as np
import torch

import taskgraph
from taskgraph.serve.app import prepare, start
from taskgraph.spec.serving import Deployment
from taskgraph.train.data import load_data


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _summary(name: str, latencies: list[float], wall: float) -> str:
    rps = len(latencies) / wall
    return (f"{name:<28} {rps:8.1f} requests/s   p50 {1000 * statistics.median(latencies):7.2f} ms   "
            f"p99 {1000 * _percentile(latencies, 99):7.2f} ms   ({len(latencies)} requests in {wall:.2f} s)")


def eager(run: str, node: str, bodies: list[np.ndarray]) -> tuple[list[float], float]:
    trained = taskgraph.load_node(run, node)
    trained.predict({trained.input.field: torch.from_numpy(bodies[0])})  # warm up
    latencies = []
    started = time.perf_counter()
    for x in bodies:
        t = time.perf_counter()
        trained.predict({trained.input.field: torch.from_numpy(x)})
        latencies.append(time.perf_counter() - t)
    return latencies, time.perf_counter() - started


def over_http(url: str, payloads: list[bytes], clients: int) -> tuple[list[float], float]:
    where = urlparse(url)
    latencies: list[float] = []
    lock = threading.Lock()
    todo = iter(range(len(payloads)))

    def client() -> None:
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=120)
        mine = []
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            t = time.perf_counter()
            connection.request("POST", "/", payloads[i], {"Content-Type": "application/json"})
            answer = connection.getresponse()
            body = answer.read()
            mine.append(time.perf_counter() - t)
            if answer.status != 200:
                raise RuntimeError(body.decode())
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--node", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--examples", type=int, default=1, help="examples per request")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs per replica")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()

    trained = taskgraph.load_node(args.run_dir, args.node)
    spec = taskgraph.load_graph(args.run_dir).spec
    val = load_data(spec.data[trained.spec.data]).val[trained.input.field].numpy()
    rng = np.random.default_rng(0)
    bodies = [val[rng.integers(0, len(val), args.examples)] for _ in range(args.requests)]
    payloads = [json.dumps({"inputs": {trained.input.field: x.tolist()}, "nodes": [args.node]}).encode()
                for x in bodies]
    print(f"node {args.node} of {args.run_dir}: {args.requests} requests of {args.examples} example(s); "
          f"serve: {args.clients} clients, {args.replicas} replica(s) x {args.cpus:g} CPU, max batch "
          f"{args.max_batch_size} examples, wait {args.batch_wait_ms:g} ms; torch threads {torch.get_num_threads()}; "
          f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")

    e_lat, e_wall = eager(args.run_dir, args.node, bodies)
    import logging

    import ray

    from taskgraph.execute.cluster import start_with_retry

    # A busy machine can miss Ray's fixed 30 s start: try a few times (not timed).
    start_with_retry(lambda: ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
                                      log_to_driver=False), ray.shutdown, attempts=6)
    prepared = prepare(args.run_dir, [args.node],
                       Deployment(replicas=args.replicas, cpus=args.cpus, max_batch_size=args.max_batch_size,
                                  batch_wait_ms=args.batch_wait_ms))
    serving = start(prepared, port=args.port)
    try:
        over_http(serving.url, payloads[: min(200, len(payloads))], args.clients)  # warm up
        s1_lat, s1_wall = over_http(serving.url, payloads[: max(1, len(payloads) // 4)], 1)
        s_lat, s_wall = over_http(serving.url, payloads, args.clients)
    finally:
        serving.stop()
    print(_summary("eager loop, one process", e_lat, e_wall))
    print(_summary("serve, 1 client", s1_lat, s1_wall))
    print(_summary(f"serve, {args.clients} clients", s_lat, s_wall))
    ratio = (len(s_lat) / s_wall) / (len(e_lat) / e_wall)
    print(f"serve/eager throughput: {ratio:.2f}x   load average after: "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
