"""Run the bad-input corpus (tests/spec/corpus.py) against any checkout and count how each case ends.

    PYTHONPATH=/path/to/checkout python3 scripts/bad_input_corpus.py [--timeout 20] [--list]

Each case runs ``taskgraph.cli.main`` in a forked child (so a hang is killed and a crash is seen)
and is counted as: clean (exit 0 or 2 as expected, no traceback, exit 2 names the file and the
case's line), unclear (exit 2 without the file or line), false refusal (exit 2 on a valid file),
traceback, hang (killed after --timeout seconds) or crash (killed by a signal). The corpus file is
read from this repository, ``taskgraph`` from PYTHONPATH, so one script measures before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "spec" / "corpus.py"


def _load_corpus():
    spec = importlib.util.spec_from_file_location("bad_input_corpus_cases", CORPUS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module.CASES


def _run_child(case, path: Path, out: Path, main) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    args = [case.command, str(path)] + [a for value in case.sets for a in ("--set", value)]
    try:
        code = main(args)
    except BaseException:  # noqa: BLE001 - what escapes main is exactly what we count
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(101)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


def classify(case, folder: Path, main, timeout: float) -> tuple[str, str]:
    path = folder / f"{case.id}.yaml"
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    out = folder / f"{case.id}.out"
    pid = os.fork()
    if pid == 0:
        _run_child(case, path, out, main)
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "hang", f"no answer in {timeout:g} s"
    text = out.read_text(errors="replace")
    first = next((line for line in text.splitlines() if line.strip()), "")[:160]
    if os.WIFSIGNALED(status):
        return "crash", f"killed by signal {os.WTERMSIG(status)}"
    code = os.WEXITSTATUS(status)
    if "Traceback" in text or code not in (0, 2):
        last = [line for line in text.splitlines() if line.strip()]
        return "traceback", (last[-1] if last else f"exit {code}")[:160]
    if code not in case.exit:
        return "false refusal", first
    if code == 2:
        named = str(path) in text
        located = case.line is None or f"{path}:{case.line}:" in text or f"{path}:{case.line} " in text
        if not (named and located):
            return "unclear", first
    return "clean", first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=20.0, help="Seconds before a case counts as a hang.")
    parser.add_argument("--list", action="store_true", help="Print every case that is not clean.")
    args = parser.parse_args()
    cases = _load_corpus()
    import taskgraph
    from taskgraph.cli import main as cli_main

    import taskgraph.plan.graph  # noqa: F401  (imported once here, not in every child)
    import taskgraph.spec.loader  # noqa: F401

    print(f"taskgraph from {Path(taskgraph.__file__).parent}; {len(cases)} cases")
    counts: Counter[str] = Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            kind, note = classify(case, Path(tmp), cli_main, args.timeout)
            counts[kind] += 1
            if args.list and kind != "clean":
                print(f"  {kind:<13} {case.id:<40} {note}")
    order = ["clean", "unclear", "false refusal", "traceback", "hang", "crash"]
    print(", ".join(f"{k}: {counts[k]}" for k in order) + f"  ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
