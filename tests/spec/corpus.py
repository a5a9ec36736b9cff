"""A corpus of malformed graph files, overrides and files, tried as a new user and an attacker would.

Each case is a file's content (text or bytes), the command (``validate`` mostly, ``plan`` too) and
its ``--set`` options. Every case must end with exit 0 or 2 within seconds, without a traceback;
an exit 2 names the file (and ``line`` when the case has one). Used by ``tests/spec/test_corpus.py``
and by ``scripts/bad_input_corpus.py``, which counts clean answers, tracebacks and hangs of any
checkout (before/after figures).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Case", "CASES", "GOOD"]


@dataclass(frozen=True)
class Case:
    id: str
    content: str | bytes
    sets: tuple[str, ...] = ()
    command: str = "validate"
    line: int | None = None  # the line an exit-2 message must name, where the problem has one
    exit: tuple[int, ...] = (0, 2)


GOOD = """\
name: corpus
seed: 0
defaults:
  train: {epochs: 2, batch_size: 32, lr: 0.001}
data:
  shapes: {loader: synthetic_shapes, n: 100, dim: 8}
tasks:
  up:
    data: shapes
    modules:
      encoder: {type: mlp, in: 8, hidden: [16]}
      head: {type: linear, out: 4}
    loss: {type: cross_entropy, target: label}
    metrics: [accuracy]
  down:
    data: shapes
    depends_on:
      up: {share: {encoder: encoder}, mode: freeze}
    modules:
      encoder: {type: mlp, in: 8, hidden: [16]}
      head: {type: linear, out: 1}
    loss: {type: binary_cross_entropy, target: parity}
  joint:
    kind: multitask
    data: shapes
    modules: {trunk: {type: mlp, in: 8, hidden: [16]}}
    heads:
      a: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}
      b: {module: {type: linear, out: 1}, loss: {type: mse, target: parity}}
    weighting: {method: upgrad}
"""


def _sub(old: str, new: str, count: int = 1) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, count)


def _bomb(levels: int = 9) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _yaml_cases() -> list[Case]:
    c = [
        Case("empty", ""),
        Case("whitespace-only", "   \n\n\t\n"),
        Case("comment-only", "# nothing here\n"),
        Case("document-marker-only", "---\n"),
        Case("top-level-list", "- a\n- b\n", line=1),
        Case("top-level-scalar", "hello\n", line=1),
        Case("top-level-int", "42\n", line=1),
        Case("two-documents", GOOD + "---\nname: other\n"),
        Case("unclosed-flow", "name: g\ntasks: {a: [\n"),
        Case("unclosed-quote", 'name: "g\ntasks: {}\n'),
        Case("bad-indent", "name: g\n tasks:\n  - a\n b: 1\n"),
        Case("tab-indent", "name: g\ntasks:\n\tup: {}\n", line=3),
        Case("colon-in-plain", "name: a: b\ntasks: {}\n", line=1),
        Case("undefined-alias", "name: *nowhere\ntasks: {}\n", line=1),
        Case("self-alias", "name: g\ntasks: &t {up: *t}\n", line=2),
        Case("alias-bomb", _bomb() + "name: g\ntasks: {}\n", line=8),
        Case("alias-bomb-padded", _bomb() + "name: g\ntasks: {}\n" + "# pad pad pad pad pad pad pad pad\n" * 9000, line=8),
        Case("alias-bomb-in-task", _bomb(7) + _sub("    metrics: [accuracy]", "    metrics: *l6")),
        Case("deep-flow-100k", "name: g\ntasks: " + "[" * 100_000 + "]" * 100_000 + "\n", line=2),
        Case("deep-flow-500", "name: g\ntasks: " + "[" * 500 + "]" * 500 + "\n", line=2),
        Case("deep-map-300", "name: g\ntasks: " + "{a: " * 300 + "1" + "}" * 300 + "\n", line=2),
        Case("deep-block-400", "name: g\ntasks:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(400)) + " " * 401 + "x: 1\n"),
        Case("python-tag", "name: !!python/object/apply:os.system ['echo hi']\ntasks: {}\n", line=1),
        Case("python-name-tag", "name: !!python/name:os.system\ntasks: {}\n", line=1),
        Case("custom-tag", "name: !secret g\ntasks: {}\n", line=1),
        Case("binary-tag", "name: !!binary aGVsbG8=\ntasks: {}\n"),
        Case("set-tag", "name: g\ntasks: !!set {a, b}\n"),
        Case("omap-tag", "name: g\ntasks: !!omap [a: 1]\n"),
        Case("bad-date", "name: g\nseed: 2026-13-45\ntasks: {}\n", line=2),
        Case("date-value", _sub("seed: 0", "seed: 2026-01-01"), line=2),
        Case("unhashable-key", "name: g\ntasks: {[a, b]: 1}\n", line=2),
        Case("null-key", "name: g\ntasks: {~: {}}\n"),
        Case("int-task-key", "name: g\ntasks: {1: {}}\n"),
        Case("bool-task-key", "name: g\ntasks: {yes: {}}\n"),
        Case("duplicate-task", GOOD + "  up:\n    data: shapes\n", line=31),
        Case("duplicate-top", GOOD + "name: again\n", line=31),
        Case("merge-override", _sub("  train: {epochs: 2, batch_size: 32, lr: 0.001}",
                                    "  train: &tr {epochs: 2, batch_size: 32, lr: 0.001}")
             .replace("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    train:\n      <<: *tr\n      lr: 0.01\n", 1),
             exit=(0,)),
        Case("merge-list", "x-a: &a {epochs: 1}\nx-b: &b {lr: 0.1}\n" + GOOD.replace("    metrics: [accuracy]\n",
             "    metrics: [accuracy]\n    train: {<<: [*a, *b], batch_size: 8}\n", 1), exit=(0,)),
        Case("merge-scalar", GOOD.replace("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    train: {<<: 1}\n", 1)),
        Case("merge-twice", "x-a: &a {epochs: 1}\n" + GOOD.replace("    metrics: [accuracy]\n",
             "    metrics: [accuracy]\n    train:\n      <<: *a\n      <<: *a\n", 1)),
        Case("merge-undefined", GOOD.replace("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    train: {<<: *zz}\n", 1)),
        Case("latin-1", "name: café\ntasks: {}\n".encode("latin-1"), line=1),
        Case("utf-16-bom", GOOD.encode("utf-16"), exit=(0,)),
        Case("utf-16-le-no-bom", GOOD.encode("utf-16-le"), line=1),
        Case("utf-32-bom", GOOD.encode("utf-32"), exit=(0,)),
        Case("utf-8-bom", GOOD.encode("utf-8-sig"), exit=(0,)),
        Case("bad-utf-16", b"\xff\xfe\x00\xd8"),
        Case("nul-byte", GOOD.replace("seed: 0", "seed: 0\x00").encode(), line=2),
        Case("random-binary", bytes((i * 7919 + 13) % 256 for i in range(2000))),
        Case("png-header", b"\x89PNG\r\n\x1a\n" + bytes(100)),
        Case("gzip", b"\x1f\x8b\x08\x00" + bytes(50)),
        Case("control-char", "name: g\x07\ntasks: {}\n", line=1),
        Case("escape-sequence", "name: \x1b[31mred\ntasks: {}\n", line=1),
        Case("bidi-override", "name: g\u202e\ntasks: {}\n"),
        Case("zero-width-space-key", GOOD.replace("  up:\n", "  up\u200b:\n", 1)),
        Case("huge-line", "name: " + "g" * 1_000_000 + "\ntasks: {}\n", line=1),
        Case("many-tasks-fast-path", "name: big\ndata:\n  s: {loader: synthetic_shapes, n: 100, dim: 8}\ntasks:\n" + "".join(
            f"  t{i:05d}: {{data: s, modules: {{h: {{type: linear, in: 8, out: 1}}}}, loss: {{type: mse, target: parity}}}}\n"
            for i in range(3000)), exit=(0,)),
        Case("many-tasks-fast-path-typo", "name: big\ndata:\n  s: {loader: synthetic_shapes, n: 100, dim: 8}\ntasks:\n" + "".join(
            f"  t{i:05d}: {{data: {'z' if i == 1500 else 's'}, modules: {{h: {{type: linear, in: 8, out: 1}}}}, "
            "loss: {type: mse, target: parity}}\n" for i in range(3000)), line=1505),
    ]
    return c


def _schema_cases() -> list[Case]:
    long = "n" * 300
    pairs = [
        # names
        ("graph-name-300", ("name: corpus", "name: " + long), 1),
        ("task-name-300", ("  up:\n", f"  {long}:\n"), 8),
        ("module-name-300", ("      head: {type: linear, out: 4}", f"      {long}: {{type: linear, out: 4}}"), 12),
        ("data-name-300", ("  shapes: {loader", f"  {long}: {{loader"), 6),
        ("task-name-slash", ("  up:\n", "  a/b:\n"), 8),
        ("task-name-dotdot", ("  up:\n", "  '..':\n"), 8),
        ("task-name-space", ("  up:\n", "  'a b':\n"), 8),
        ("task-name-unicode", ("  up:\n", "  тест:\n"), 8),
        ("task-name-digit", ("  up:\n", "  1up:\n"), 8),
        ("task-name-empty", ("  up:\n", "  '':\n"), 8),
        ("task-name-case", ("  joint:\n", "  UP:\n"), 23),
        ("graph-name-empty", ("name: corpus", "name: ''"), 1),
        ("graph-name-null", ("name: corpus", "name:"), 1),
        ("graph-name-list", ("name: corpus", "name: [a]"), 1),
        ("graph-name-int", ("name: corpus", "name: 12"), 1),
        # numbers
        ("lr-inf", ("lr: 0.001}", "lr: .inf}"), 4),
        ("lr-nan", ("lr: 0.001}", "lr: .nan}"), 4),
        ("lr-neg-inf", ("lr: 0.001}", "lr: -.inf}"), 4),
        ("lr-zero", ("lr: 0.001}", "lr: 0}"), 4),
        ("lr-string", ("lr: 0.001}", "lr: fast}"), 4),
        ("lr-1e-3-string", ("lr: 0.001}", "lr: 1e-3}"), None),
        ("lr-huge", ("lr: 0.001}", "lr: 1.0e400}"), 4),
        ("epochs-true", ("epochs: 2,", "epochs: true,"), 4),
        ("epochs-yes", ("epochs: 2,", "epochs: yes,"), 4),
        ("epochs-float", ("epochs: 2,", "epochs: 2.5,"), 4),
        ("epochs-whole-float", ("epochs: 2,", "epochs: 2.0,"), None),
        ("epochs-zero", ("epochs: 2,", "epochs: 0,"), 4),
        ("epochs-negative", ("epochs: 2,", "epochs: -3,"), 4),
        ("epochs-huge", ("epochs: 2,", "epochs: 99999999999999999999999999,"), None),
        ("epochs-list", ("epochs: 2,", "epochs: [2],"), 4),
        ("epochs-null", ("epochs: 2,", "epochs: ~,"), 4),
        ("batch-size-off", ("batch_size: 32", "batch_size: off"), 4),
        ("cpus-inf", ("defaults:\n", "defaults:\n  resources: {cpus: .inf}\n"), 4),
        ("gpus-negative", ("defaults:\n", "defaults:\n  resources: {gpus: -1}\n"), 4),
        ("memory-words", ("defaults:\n", "defaults:\n  resources: {memory: lots}\n"), 4),
        ("memory-true", ("defaults:\n", "defaults:\n  resources: {memory: true}\n"), 4),
        ("memory-unit", ("defaults:\n", "defaults:\n  resources: {memory: 4 parsecs}\n"), 4),
        ("custom-resource-builtin", ("defaults:\n", "defaults:\n  resources: {custom: {GPU: 1}}\n"), 4),
        ("custom-resource-inf", ("defaults:\n", "defaults:\n  resources: {custom: {hw: .inf}}\n"), 4),
        ("per-worker-without-workers", ("defaults:\n", "defaults:\n  resources: {cpus_per_worker: 2}\n"), 4),
        ("workers-zero", ("defaults:\n", "defaults:\n  resources: {workers: 0}\n"), 4),
        ("label-fraction-2", ("lr: 0.001}", "lr: 0.001, label_fraction: 2}"), 4),
        ("seed-string", ("seed: 0", "seed: abc"), 2),
        ("seed-bool", ("seed: 0", "seed: true"), 2),
        ("n-bool", ("n: 100", "n: true"), 6),
        ("dim-inf", ("dim: 8}", "dim: .inf}"), 6),
        ("hidden-bool", ("hidden: [16]}\n      head: {type: linear, out: 4}", "hidden: [16, yes]}\n      head: {type: linear, out: 4}"), 11),
        ("hidden-empty", ("hidden: [16]}\n      head: {type: linear, out: 4}", "hidden: []}\n      head: {type: linear, out: 4}"), 11),
        ("out-zero", ("head: {type: linear, out: 4}", "head: {type: linear, out: 0}"), 12),
        ("cost-neg-inf", ("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    cost: -.inf\n"), 15),
        ("columns-backwards", ("hidden: [16]}\n      head: {type: linear, out: 4}", "hidden: [16], columns: [5, 2]}\n      head: {type: linear, out: 4}"), 11),
        ("dropout-one", ("hidden: [16]}\n      head: {type: linear, out: 4}", "hidden: [16], dropout: 1.0}\n      head: {type: linear, out: 4}"), 11),
        # keys
        ("unknown-top", ("seed: 0", "seed: 0\nseeds: 1"), 3),
        ("unknown-task-key", ("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    epochs: 3\n"), 15),
        ("unknown-train-key", ("lr: 0.001}", "lr: 0.001, epoch: 1}"), 4),
        ("unknown-task-train-key", ("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    train: {epoch: 3}\n"), 15),
        ("unknown-resources-key", ("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    resources: {cpu: 1}\n"), 15),
        ("unknown-weighting-key", ("{method: upgrad}", "{method: upgrad, nrom: 1}"), 30),
        ("unknown-sampling-key", ("{method: upgrad}", "{method: upgrad}\n    sampling: {rul: x}"), 31),
        ("unknown-module-key", ("head: {type: linear, out: 4}", "head: {type: linear, out: 4, colour: red}"), 12),
        ("unknown-loss-key", ("{type: cross_entropy, target: label}\n    metrics", "{type: cross_entropy, target: label, smoothing: 1}\n    metrics"), 13),
        ("unknown-edge-key", ("mode: freeze}", "mode: freeze, shar: x}"), 18),
        ("unknown-data-key", ("dim: 8}", "dim: 8, nosie: 1}"), 6),
        ("unknown-head-key", ("a: {module: {type: linear, out: 4}", "a: {modul: {type: linear, out: 4}"), 28),
        # registry names
        ("unknown-loss", ("type: cross_entropy, target: label}\n    metrics", "type: crossentropy, target: label}\n    metrics"), 13),
        ("unknown-module-type", ("head: {type: linear, out: 4}", "head: {type: linaer, out: 4}"), 12),
        ("unknown-loader", ("loader: synthetic_shapes", "loader: synthetic_shape"), 6),
        ("unknown-metric", ("metrics: [accuracy]", "metrics: [acc]"), 14),
        ("unknown-weighting", ("{method: upgrad}", "{method: upgard}"), 30),
        ("unknown-kind", ("kind: multitask", "kind: multi"), 24),
        ("unknown-optimizer", ("lr: 0.001}", "lr: 0.001, optimizer: adm}"), 4),
        ("unknown-mode", ("mode: freeze", "mode: frozen"), 18),
        ("bad-custom-ref", ("head: {type: linear, out: 4}", "head: {type: 'pkg:', out: 4}"), 12),
        ("custom-ref-spaces", ("head: {type: linear, out: 4}", "head: {type: 'my pkg:Thing', out: 4}"), 12),
        ("missing-type", ("head: {type: linear, out: 4}", "head: {out: 4}"), 12),
        ("missing-loader", ("shapes: {loader: synthetic_shapes, n: 100, dim: 8}", "shapes: {n: 100, dim: 8}"), 6),
        ("loss-null", ("    loss: {type: cross_entropy, target: label}\n    metrics", "    loss:\n    metrics"), 13),
        # structure
        ("tasks-list", ("tasks:\n", "tasks: []\nold:\n"), 7),
        ("tasks-empty", ("tasks:\n", "tasks: {}\nold:\n"), 7),
        ("modules-list", ("      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 4}",
                          "      - {type: mlp, in: 8, hidden: [16]}\n      - {type: linear, out: 4}"), 11),
        ("modules-empty", ("    modules:\n      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 4}",
                           "    modules: {}"), 10),
        ("task-null", ("  up:\n    data: shapes\n", "  up:\n  upx:\n    data: shapes\n"), 8),
        ("task-scalar", ("  up:\n    data: shapes\n", "  up: 3\n  upx:\n    data: shapes\n"), 8),
        ("depends-on-string", ("      up: {share: {encoder: encoder}, mode: freeze}", "      up: yes"), 18),
        ("depends-on-int", ("    depends_on:\n      up: {share: {encoder: encoder}, mode: freeze}", "    depends_on: 3"), 17),
        ("share-int", ("share: {encoder: encoder}", "share: 3"), 18),
        ("share-bad-name", ("share: {encoder: encoder}", "share: {'a/b': encoder}"), 18),
        ("metrics-string", ("metrics: [accuracy]", "metrics: accuracy"), 14),
        ("metrics-nested", ("metrics: [accuracy]", "metrics: [[accuracy]]"), 14),
        ("data-list", ("data:\n  shapes: {loader: synthetic_shapes, n: 100, dim: 8}", "data: [shapes]"), 5),
        ("heads-empty", ("    heads:\n      a: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}\n"
                         "      b: {module: {type: linear, out: 1}, loss: {type: mse, target: parity}}", "    heads: {}"), 27),
        ("head-reads-itself", ("target: parity}}\n    weighting", "target: parity}, input: b}\n    weighting"), 29),
        ("head-reads-unknown", ("target: parity}}\n    weighting", "target: parity}, input: zz}\n    weighting"), 29),
        ("head-clash", ("      b: {module", "      trunk: {module"), 29),
        ("fixed-weights-unknown-task", ("{method: upgrad}", "{method: fixed, weights: {zz: 1}}"), 30),
        ("fixed-weights-bool", ("{method: upgrad}", "{method: fixed, weights: {a: true}}"), 30),
        # names across the graph
        ("unknown-data-source", ("  up:\n    data: shapes", "  up:\n    data: shapez"), 9),
        ("unknown-dependency", ("      up: {share", "      upp: {share"), 18),
        ("self-dependency", ("      up: {share: {encoder: encoder}, mode: freeze}", "      down: {}"), 18),
        ("cycle", ("    metrics: [accuracy]\n", "    metrics: [accuracy]\n    depends_on: [down]\n"), 19),
        ("share-missing-here", ("share: {encoder: encoder}", "share: {trunk: encoder}"), 18),
        ("share-missing-upstream", ("share: {encoder: encoder}", "share: {encoder: body}"), 18),
        ("share-shape-mismatch", ("      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 1}",
                                  "      encoder: {type: mlp, in: 8, hidden: [32]}\n      head: {type: linear, out: 1}"), 18),
        ("share-type-mismatch", ("      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 1}",
                                 "      encoder: {type: linear, in: 8, out: 16}\n      head: {type: linear, out: 1}"), 18),
        ("in-width-mismatch", ("      encoder: {type: mlp, in: 8, hidden: [16]}\n      head: {type: linear, out: 4}",
                               "      encoder: {type: mlp, in: 32, hidden: [16]}\n      head: {type: linear, out: 4}"), 11),
        ("in-after-width-mismatch", ("head: {type: linear, out: 4}", "head: {type: linear, in: 3, out: 4}"), 12),
        ("mnist-width-mismatch", ("shapes: {loader: synthetic_shapes, n: 100, dim: 8}",
                                  "shapes: {loader: mnist, root: /nonexistent/mnist}"), 11),
        ("joint-head-width", ("a: {module: {type: linear, out: 4}", "a: {module: {type: linear, in: 3, out: 4}"), 28),
    ]
    cases = [Case(f"schema-{name}", _sub(old, new), line=line) for name, (old, new), line in pairs]
    cases.append(Case("schema-everything-wrong", GOOD.replace("n: 100", "n: -1").replace("lr: 0.001", "lr: .inf")
                      .replace("mode: freeze", "mode: no").replace("metrics: [accuracy]", "metrics: [x]")))
    return cases


def _set_cases() -> list[Case]:
    sets = [
        ("no-equals", "tasks.up.train.epochs", None),
        ("empty-path", "=3", None),
        ("dots-only", "...=3", None),
        ("unknown-section", "taks.up.train.epochs=1", None),
        ("unknown-task", "tasks.upp.train.epochs=1", None),
        ("through-scalar", "name.x=1", None),
        ("through-list", "tasks.up.metrics.x=1", None),
        ("unclosed-list", "tasks.up.train.lr=[1", None),
        ("undefined-alias", "tasks.up.train.lr=*a", None),
        ("tab", "tasks.up.train.lr=\tx", None),
        ("python-tag", "tasks.up.train.lr=!!python/object/apply:os.system ['id']", None),
        ("recursive-alias", "tasks.up.train=&a {x: *a}", None),
        ("duplicate-key", "tasks.up.train={lr: 1, lr: 2}", None),
        ("bomb", "tasks.up.train.lr={" + ", ".join(_bomb().replace(": ", ": ").splitlines()) + "}", None),
        ("deep-value", "tasks.up.train.lr=" + "[" * 500 + "]" * 500, None),
        ("deep-path", "tasks.up." + ".".join(["x"] * 300) + "=1", None),
        ("lr-inf", "tasks.up.train.lr=.inf", None),
        ("epochs-true", "tasks.up.train.epochs=true", None),
        ("epochs-string", "tasks.up.train.epochs=many", None),
        ("epochs-huge-string", "tasks.up.train.epochs=" + "9" * 5000, None),
        ("name-long", "name=" + "g" * 300, None),
        ("name-slash", "name=a/b", None),
        ("replace-tasks", "tasks=[]", None),
        ("replace-root-section", "data=3", None),
        ("new-unknown-key", "tasks.up.colour=red", None),
        ("weighting-typo", "tasks.joint.weighting.method=upgard", None),
        ("kind-switch", "tasks.up.kind=multitask", None),
        ("null-value", "tasks.up.loss=~", None),
        ("nul-char", "tasks.up.train.lr=1\x00", None),
        ("control-char", "tasks.up.train.lr=\x07", None),
        ("unicode-path", "tasks.тест.train.lr=1", None),
        ("date", "seed=2026-13-45", None),
        ("empty-value", "tasks.up.train.lr=", None),
        ("multi-doc", "tasks.up.train.lr=1\n---\n2", None),
        ("ok", "tasks.up.train.epochs=1", None),
    ]
    cases = [Case(f"set-{name}", GOOD, sets=(text,)) for name, text, _line in sets]
    deep = "name: g\ntasks:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(400)) + " " * 401 + "x: 1\n"
    cases.append(Case("set-on-deep-file", deep, sets=("name=h",)))
    cases.append(Case("set-on-deep-flow-file", "name: g\ntasks: " + "[" * 400 + "]" * 400 + "\n", sets=("name=h",), line=2))
    return cases


def _plan_cases() -> list[Case]:
    picked = ["empty", "alias-bomb", "deep-flow-500", "latin-1", "nul-byte", "python-tag", "merge-override",
              "schema-cycle", "schema-share-shape-mismatch", "schema-in-width-mismatch", "schema-lr-inf",
              "schema-task-name-300", "set-unclosed-list", "set-on-deep-file", "set-epochs-true"]
    by_id = {c.id: c for c in _yaml_cases() + _schema_cases() + _set_cases()}
    return [Case(f"plan-{name}", by_id[name].content, by_id[name].sets, "plan", by_id[name].line, by_id[name].exit)
            for name in picked]


CASES: list[Case] = [Case("good", GOOD, exit=(0,))] + _yaml_cases() + _schema_cases() + _set_cases() + _plan_cases()
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
