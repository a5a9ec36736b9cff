"""One epoch (train + evaluation) of a Dutch-NER-like tagger whose data holds one 859-token sentence.

    PYTHONPATH=/path/to/checkout python3 scripts/bench_eval_trim.py [--train 15806] [--val 2895] [--threads 1]

Writes CoNLL-2002-style column files (``word POS NER``, sizes of ned.train / ned.testa, sentence
lengths drawn around 13 tokens, one 859-token sentence in each file, as in Dutch NER) to a
temporary folder and trains one single-task node (embedding -> BiLSTM -> linear) for one epoch
in this process, no Ray: the time is the trainer's alone. ``taskgraph`` comes from PYTHONPATH, so
one script measures a checkout before and after a change. Prints the epoch's seconds, split into training and
evaluation.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

TAGS = ["O"] * 12 + ["B-PER", "I-PER", "B-LOC", "B-ORG", "I-ORG", "B-MISC"]


def _sentences(n: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        length = max(1, min(120, int(rng.gauss(13, 9))))
        rows.append("\n".join(f"w{rng.randrange(5000)} N {rng.choice(TAGS)}" for _ in range(length)))
    rows.insert(n // 3, "\n".join(f"w{rng.randrange(5000)} N O" for _ in range(859)))
    return "-DOCSTART- -X- O\n\n" + "\n\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=15806, help="training sentences (ned.train has 15,806)")
    parser.add_argument("--val", type=int, default=2895, help="validation sentences (ned.testa has 2,895)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from taskgraph.spec.loader import parse_spec
    from taskgraph.train.data import load_data
    from taskgraph.train import loop
    from taskgraph.train.loop import NodeRequest, train_node

    evaluate, spent = loop.evaluate, []

    def timed(*args, **kwargs):  # the evaluation alone, whatever the checkout's signature
        started = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    loop.evaluate = timed

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        train, val = Path(folder) / "ned.train", Path(folder) / "ned.testa"
        train.write_text(_sentences(args.train, 0))
        val.write_text(_sentences(args.val, 1))
        spec, _ = parse_spec(f"""
name: dutch_ner_like
data:
  ner: {{loader: conll, train: {train}, val: {val}, labels: {{ner: {{column: -1, span: true}}}}, vocab_size: 5002}}
tasks:
  ner:
    data: ner
    train: {{epochs: 1, batch_size: 32, lr: 1.0e-3}}
    modules:
      embed: {{type: embedding, vocab: 5002, dim: 50}}
      lstm: {{type: bilstm, hidden: 64}}
      head: {{type: linear, out: 9}}
    loss: {{type: cross_entropy, target: ner}}
    metrics: [span_f1]
""")
        started = time.perf_counter()
        splits = load_data(spec.data["ner"])
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        out = train_node(NodeRequest("ner", spec.tasks["ner"], spec.data["ner"], seed=0), {})
        wall = time.perf_counter() - started
    row = out.metrics["history"][-1]
    print(f"train {len(splits.train['x'])} sentences (width {splits.train['x'].shape[1]}), "
          f"val {len(splits.val['x'])} (width {splits.val['x'].shape[1]}); load {loaded:.1f} s")
    # the epoch's ``seconds`` count its evaluation too
    print(f"epoch {row['seconds']:.1f} s: training {row['seconds'] - sum(spent):.1f} s, evaluation {sum(spent):.1f} s "
          f"(node {wall:.1f} s with model set-up; tags are random, so span F1 {row['val_span_f1']:.3f} means nothing)")


if __name__ == "__main__":
    main()
