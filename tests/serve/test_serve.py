"""`taskgraph serve` on the shared local Ray: real HTTP requests, sent concurrently, answered with the
eager model's predictions; bad requests get a 400 with one line; bad command lines exit 2 before
Ray Serve starts."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import taskgraph
from taskgraph.cli import main
from taskgraph.spec.serving import Deployment
from tests.served_graph import inputs
from tests.test_export import older_run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: object) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def served(served_run):
    """up, tagger and joint on Ray Serve: small batches (8 examples) gathered for 20 ms."""
    from taskgraph.serve.app import prepare, start

    prepared = prepare(served_run, ["up", "tagger", "joint"],
                       Deployment(cpus=0.25, max_batch_size=8, batch_wait_ms=20))
    serving = start(prepared, port=_free_port())
    yield serving
    serving.stop()


def _eager(run, node: str, x: np.ndarray, length: np.ndarray | None = None) -> dict:
    batch = {"x": torch.from_numpy(x), **({"length": torch.from_numpy(length)} if length is not None else {})}
    return {head: {k: v.numpy() for k, v in answers.items()}
            for head, answers in taskgraph.load_node(run, node).predict(batch).items()}


def _same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for head, answers in want.items():
        assert set(got[head]) == set(answers), head
        for key, value in answers.items():
            if key == "class":
                np.testing.assert_array_equal(np.asarray(got[head][key]), value, err_msg=f"{head}.{key}")
            else:
                np.testing.assert_allclose(np.asarray(got[head][key]), value, rtol=0, atol=1e-5, err_msg=f"{head}.{key}")


@pytest.mark.slow
def test_concurrent_http_requests_get_the_eager_answers(served, served_run):
    data = inputs(served_run)
    x, words, length = data["up"], data["tagger"], data["tagger.length"]
    # Requests of 1..7 examples, sentences cut to several lengths: batches mix them, answers must not.
    requests = []
    for i in range(24):
        n = 1 + i % 7
        if i % 3 == 2:
            steps = int(length[: min(n, 6)].max())
            cut = slice(0, min(n, 6))
            requests.append(("tagger", {"inputs": {"x": words[cut, :steps].tolist()}, "nodes": ["tagger"],
                                        "length": length[cut].tolist()}, words[cut, :steps], length[cut]))
        else:
            requests.append((None, {"inputs": {"x": x[:n].tolist()}, "nodes": ["up", "joint"]}, x[:n], None))
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda r: _post(served.url, r[1]), requests))
    for (node, _body, sent, lengths), (status, answer) in zip(requests, answers):
        assert status == 200, answer
        for name in ([node] if node else ["up", "joint"]):
            _same(answer["nodes"][name], _eager(served_run, name, sent, lengths))
    assert set(answers[0][1]["nodes"]["joint"]) == {"cls", "par"}  # every head, par after cls


@pytest.mark.slow
def test_a_request_larger_than_a_batch_is_cut_and_joined(served, served_run):
    x = np.concatenate([inputs(served_run)["up"]] * 3)  # 21 examples, batches of 8
    status, answer = _post(served.url, {"inputs": {"x": x.tolist()}, "nodes": ["up"], "raw": True})
    assert status == 200
    _same({h: {k: v for k, v in a.items() if k != "output"} for h, a in answer["nodes"]["up"].items()},
          _eager(served_run, "up", x))
    raw = taskgraph.load_node(served_run, "up").outputs(torch.from_numpy(x))["up"].numpy()
    np.testing.assert_allclose(np.asarray(answer["nodes"]["up"]["up"]["output"]), raw, atol=1e-5)


@pytest.mark.slow
def test_describe_and_bad_requests(served):
    with urllib.request.urlopen(served.url, timeout=60) as answer:
        described = json.loads(answer.read())
    assert described["nodes"]["tagger"]["shape"] == ["batch", "length"]
    assert described["nodes"]["joint"]["heads"] == {"cls": "classes", "par": "probability"}
    bad = [
        ({"inputs": {"x": [[0.0] * 16]}, "nodes": ["jiont"]}, "node 'jiont' is not served here. Did you mean 'joint'?"),
        ({"inputs": {"x": [[0.0] * 15]}, "nodes": ["up"]}, "inputs.x has shape [1, 15]; node 'up' reads (batch, 16)"),
        ({"inputs": {"words": [[1, 2]]}, "nodes": ["tagger"]}, "node 'tagger' reads input 'x'"),
        ({"inputs": {"x": [[1, 99]]}, "nodes": ["tagger"]}, "an input id is past a table of the model"),
        (b"not json", "the request body is not JSON"),
    ]
    for body, expected in bad:
        status, answer = _post(served.url, body)
        assert status == 400 and expected in answer["error"], answer


def test_serve_refuses_bad_command_lines_before_starting(served_run, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            ([str(tmp_path / "nowhere")], "no such run directory"),
            ([str(served_run), "--nodes", "up,taggr"], "--nodes: the graph 'served' has no node 'taggr'. Did you mean 'tagger'?"),
            ([str(served_run), "--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
            ([str(older_run(served_run, tmp_path)), "--nodes", "up"], "did not record the shape and dtype of its input"),
        ]
        for args, expected in cases:
            assert main(["serve", *args]) == 2
            err = capsys.readouterr().err
            assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
