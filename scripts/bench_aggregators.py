"""CPU time of one aggregation: taskgraph's float64 Gramian weightings against torchjd's float32 ones.

The baseline is what joint nodes ran before the aggregators moved to float64 and exact solves:
torchjd's aggregator on the float32 Jacobian (Nash-MTL: the Newton solve on a float32 Gramian, as
it was). Both run in one process on the same ``k x n`` Jacobian (a representation-level size by
default: batch 32 x ~45 tokens x 128 features), alternating, one torch thread. Times are process CPU
time (``time.process_time``), so other jobs on a shared machine change them little; the median of
``--repeats`` calls per method and round, then the median over rounds.

    python scripts/bench_aggregators.py                 # k = 10, n = 184,320
    python scripts/bench_aggregators.py --n 1300000     # a parameter-level Jacobian
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

METHODS = ("mgda", "pcgrad", "cagrad", "imtl_g", "nash_mtl", "aligned_mtl", "upgrad")


def baseline(method: str, k: int):
    """The aggregator as it was: torchjd's, fed float32 (Nash-MTL: Newton on the float32 Gramian)."""
    import torchjd.aggregation as jd

    if method == "nash_mtl":
        from taskgraph.train.weighting.nash import bargaining_weights

        def nash(jac: torch.Tensor) -> torch.Tensor:
            a = bargaining_weights((jac @ jac.T).double().numpy())
            return torch.from_numpy(a).float() @ jac
        return nash
    if method == "cagrad":
        return jd.CAGrad(c=0.4)
    return {"mgda": jd.MGDA, "pcgrad": jd.PCGrad, "imtl_g": jd.IMTLG, "aligned_mtl": jd.AlignedMTL,
            "upgrad": jd.UPGrad}[method]()


def candidate(method: str, k: int):
    from pydantic import TypeAdapter

    from taskgraph.spec.weighting import WeightingConfig
    from taskgraph.train.weighting.aggregators import AGGREGATORS

    options = {"method": method, **({"max_norm": 0.0} if method == "nash_mtl" else {})}
    return AGGREGATORS[method](TypeAdapter(WeightingConfig).validate_python(options), k)


def cpu_ms(fn, jac: torch.Tensor, repeats: int) -> float:
    fn(jac)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(jac)
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--n", type=int, default=32 * 45 * 128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", default=",".join(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    g = torch.Generator().manual_seed(0)
    jac = torch.randn(args.k, args.n, generator=g) + 0.3 * torch.randn(1, args.n, generator=g)
    methods = args.only.split(",")
    base = {m: baseline(m, args.k) for m in methods}
    cand = {m: candidate(m, args.k) for m in methods}
    raw: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    for _ in range(args.rounds):
        for m in methods:
            raw[m].append((cpu_ms(base[m], jac, args.repeats), cpu_ms(cand[m], jac, args.repeats)))
    print(f"one aggregation, k={args.k}, n={args.n:,}, float32 Jacobian, CPU time, one torch thread, "
          f"{args.rounds} rounds x {args.repeats} calls")
    print(f"{'method':12s} {'torchjd f32 ms':>15s} {'taskgraph f64 ms':>17s} {'ratio':>7s}  raw (before/after) per round")
    for m in methods:
        b = statistics.median(x for x, _ in raw[m])
        c = statistics.median(y for _, y in raw[m])
        rounds = ", ".join(f"{x:.1f}/{y:.1f}" for x, y in raw[m])
        print(f"{m:12s} {b:15.2f} {c:17.2f} {c / b:6.2f}x  {rounds}")


if __name__ == "__main__":
    main()
