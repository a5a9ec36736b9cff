"""Soft-sharing trunks (``mixture:``): MMoE, DSelect-k, CGC, PLE and cross-stitch build with the
shapes the plan computes, their gates sum to one, each learns a tiny two-task problem, experts and
gates move along edges (frozen bit-identical), and gradient methods see the shared representation
the spec defines (the mixture's input and every expert's output)."""

from __future__ import annotations

import math

import pytest
import torch

from taskgraph.errors import PlanError
from taskgraph.spec.loader import parse_spec
from taskgraph.train.loop import Inheritance, NodeRequest, train_node
from taskgraph.train.mixture import DSelectGate, Gate
from taskgraph.train.multitask import MIXED, JointModel, _Joint
from taskgraph.train.weighting import build_weighting
from taskgraph.train.weighting.aggregators import AGGREGATORS


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MIXTURES = {
    "mmoe": "{type: mmoe, experts: {e1: {type: mlp, hidden: [16]}, e2: {type: mlp, hidden: [8, 16]}, "
            "e3: {type: sequential, layers: [{type: linear, out: 16}, {type: layer_norm}]}}}",
    "dselect_k": "{type: mmoe, gate: dselect_k, k: 2, experts: {e1: {type: mlp, hidden: [16]}, "
                 "e2: {type: mlp, hidden: [16]}, e3: {type: mlp, hidden: [16]}}}",
    "cgc": "{type: cgc, shared: {s1: {type: mlp, hidden: [16]}}, specific: {a: {a1: {type: mlp, hidden: [16]}}, "
           "b: {b1: {type: mlp, hidden: [16]}, b2: {type: mlp, hidden: [16]}}}}",
    "ple": "{type: ple, levels: [{shared: {s1: {type: mlp, hidden: [16]}}, specific: {a: {a1: {type: mlp, hidden: [16]}}, "
           "b: {b1: {type: mlp, hidden: [16]}}}}, {shared: {s2: {type: mlp, hidden: [12]}}, "
           "specific: {b: {b2: {type: mlp, hidden: [12]}}}}]}",
    "cross_stitch": "{type: cross_stitch, layers: {l1: {type: mlp, hidden: [16]}, l2: {type: mlp, hidden: [12]}}}",
}

GRAPH = """
name: mix
data:
  d: {loader: synthetic_shapes, n: 120, dim: 8, classes: 4}
tasks:
  j:
    kind: multitask
    data: d
    modules:
      bottom: {type: mlp, hidden: [8]}
    mixture: MIXTURE
    heads:
      a: {module: {type: linear, out: 1}, loss: {type: mse, target: ya}}
      b: {module: {type: linear, out: 1}, loss: {type: mse, target: yb}}
    weighting: WEIGHTING
"""


def node_of(mixture: str, weighting: str = "{method: equal}", text: str = GRAPH):
    spec, _ = parse_spec(text.replace("MIXTURE", MIXTURES.get(mixture, mixture)).replace("WEIGHTING", weighting))
    return spec, spec.tasks["j"]


def problem(n: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two regression tasks on one input: a linear one and a nonlinear one."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w1, w2 = torch.randn(8, generator=g), torch.randn(8, generator=g)
    return {"x": x, "ya": (x @ w1).unsqueeze(1) / 3, "yb": torch.sin(x @ w2).unsqueeze(1)}


@pytest.mark.parametrize("mixture", sorted(MIXTURES))
def test_parts_have_the_planned_shapes_and_names(mixture):
    from taskgraph.plan.graph import module_dims

    spec, node = node_of(mixture)
    model = JointModel(node, 8, "t")
    dims = module_dims(spec, node)
    for name, config in node.all_modules.items():
        built = {k: tuple(v.shape) for k, v in model[name].state_dict().items()}
        assert built == config.param_shapes(dims[name]), name
    assert set(model.keys()) == set(node.all_modules)
    assert set(model.shared_names) | set(model.task_names) == set(node.all_modules)  # every part on one side


@pytest.mark.parametrize("experts", [3, 4, 5])
def test_gates_sum_to_one(experts):
    torch.manual_seed(0)
    x = torch.randn(32, 5, 6) * 10  # sequences, large inputs: saturated smooth steps included
    for gate in (Gate(6, experts), DSelectGate(6, experts, k=2, gamma=1.0, bits=math.ceil(math.log2(experts)))):
        with torch.no_grad():
            for p in gate.parameters():
                p.normal_(0, 3)
        w = gate(x)
        assert w.shape == (32, 5, experts) and (w >= 0).all()
        assert torch.allclose(w.sum(-1), torch.ones(32, 5), atol=1e-5)


def test_mixed_features_are_the_gate_weighted_sum_of_the_experts():
    _, node = node_of("mmoe")
    model = JointModel(node, 8, "t")
    x = torch.randn(5, 8)
    h = model["bottom"](x)
    experts = torch.stack([model[e](h) for e in ("e1", "e2", "e3")], -1)
    for task in ("a", "b"):
        weights = model.mixture.weights(model, h)[task]
        expected = (experts * weights.unsqueeze(1)).sum(-1)
        got = model.mixed(model.run_trunk(x)[MIXED], task)
        assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(model.mixed(model.run_trunk(x)[MIXED], "a"), model.mixed(model.run_trunk(x)[MIXED], "b"))


def test_ple_paths_mix_their_own_and_the_shared_experts():
    """Level 1 of PLE: task a's path mixes the shared and a's experts, the shared path all experts;
    level 2's experts read those paths, and the last gates mix level 2."""
    _, node = node_of("ple")
    model = JointModel(node, 8, "t")
    x = torch.randn(5, 8)
    h = model["bottom"](x)
    e = {n: model[n](h) for n in ("s1", "a1", "b1")}
    w = {g: model[g](h) for g in ("gate1_a", "gate1_b", "gate1_shared")}
    path_a = w["gate1_a"][:, :1] * e["s1"] + w["gate1_a"][:, 1:] * e["a1"]
    path_b = w["gate1_b"][:, :1] * e["s1"] + w["gate1_b"][:, 1:] * e["b1"]
    shared = sum(w["gate1_shared"][:, i : i + 1] * e[n] for i, n in enumerate(("s1", "a1", "b1")))
    s2, b2 = model["s2"](shared), model["b2"](path_b)
    rep = model.run_trunk(x)[MIXED]
    wa, wb = model["gate2_a"](path_a), model["gate2_b"](path_b)
    assert torch.allclose(model.mixed(rep, "a"), s2, atol=1e-6)  # a has no level-2 expert: its gate's one weight is 1
    assert torch.allclose(wa, torch.ones(5, 1))
    assert torch.allclose(model.mixed(rep, "b"), wb[:, :1] * s2 + wb[:, 1:] * b2, atol=1e-6)


@pytest.mark.parametrize("mixture", sorted(MIXTURES))
def test_each_architecture_learns_a_tiny_two_task_problem(mixture):
    _, node = node_of(mixture)
    torch.manual_seed(0)
    model = JointModel(node, 8, "t")
    joint, method = _Joint(node, model), build_weighting(node.weighting, ["a", "b"])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    data = problem()
    first = None
    for _ in range(60):
        losses, step = joint.losses({"d": data}, False, False)
        first = losses.detach() if first is None else first
        optimizer.zero_grad()
        method.backward(losses, step)
        optimizer.step()
    assert (losses.detach() < 0.5 * first).all(), (first, losses)  # both tasks: below half their start


@pytest.mark.parametrize("mixture", ["mmoe", "ple", "cross_stitch"])
@pytest.mark.parametrize("method", ["upgrad", "mgda"])
def test_representation_level_reads_each_tasks_gradient_of_the_shared_representation(mixture, method):
    """One backward through the gates and heads gives each task's own gradient of the mixture's
    shared representation; the aggregated direction then goes through experts and trunk once."""
    _, node = node_of(mixture, f"{{method: {method}, level: representation}}")
    torch.manual_seed(0)
    model, batch = JointModel(node, 8, "t"), {"d": problem(12)}
    aggregate = build_weighting(node.weighting, ["a", "b"])
    model.zero_grad(set_to_none=True)
    losses, step = _Joint(node, model).losses(batch, True, True)
    assert len(step.task_inputs) == 2
    aggregate.backward(losses, step)
    got = {k: p.grad.clone() for k, p in model.named_parameters()}
    assert set(got) == {k for k, _ in model.named_parameters()}  # no part is left without a gradient
    # By hand: per-task gradients of the representation, the aggregator, one backward through the shared side.
    losses, step = _Joint(node, model).losses(batch, True, False)
    rows = torch.stack([torch.autograd.grad(l, step.leaves[0], retain_graph=True)[0].flatten() for l in losses])
    assert (rows[0] != 0).any() and (rows[1] != 0).any() and (rows[0] * rows[1] != 0).any()  # tasks overlap
    direction = AGGREGATORS[method](node.weighting, 2)(rows)
    shared = [p for n in model.shared_names for p in model[n].parameters()]
    expected = torch.autograd.grad(step.reps[0], shared, direction.view_as(step.reps[0]), allow_unused=True)
    names = [f"{n}.{k}" for n in model.shared_names for k, _ in model[n].named_parameters()]
    for name, exp in zip(names, expected):
        assert torch.allclose(got[name], exp if exp is not None else torch.zeros_like(got[name]), atol=1e-5), name
    gate = next(n for n in model.task_names if n not in ("a", "b"))
    own = torch.autograd.grad(losses.sum(), list(model[gate].parameters()), retain_graph=True)
    assert torch.allclose(got[f"{gate}.{next(iter(dict(model[gate].named_parameters())))}"], own[0], atol=1e-6)


def test_parameter_level_aggregates_over_experts_and_trunk():
    _, node = node_of("mmoe", "{method: mgda}")
    torch.manual_seed(0)
    model = JointModel(node, 8, "t")
    losses, step = _Joint(node, model).losses({"d": problem(12)}, False, False)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in step.shared} == {"bottom", "e1", "e2", "e3"}
    assert {names[id(p)].split(".")[0] for p in step.heads} == {"gate_a", "gate_b", "a", "b"}
    build_weighting(node.weighting, ["a", "b"]).backward(losses, step)
    assert all(p.grad is not None for p in model.parameters())


EDGE = """
  down:
    kind: multitask
    data: d
    depends_on: {j: {share: SHARE, mode: freeze}}
    modules:
      bottom: {type: mlp, hidden: [BOTTOM]}
    mixture: {type: mmoe, experts: {e1: {type: mlp, hidden: [16]}, e2: {type: mlp, hidden: [16]}}}
    heads:
      a: {module: {type: linear, out: 4}, loss: {type: cross_entropy, target: label}}
      b: {module: {type: linear, out: 1}, loss: {type: mse, target: parity}}
"""


def test_experts_and_gates_are_shared_and_frozen_along_an_edge():
    text = GRAPH.replace("target: ya", "target: parity").replace("target: yb", "target: coarse")
    text = text.replace("mixture: MIXTURE", "mixture: {type: mmoe, experts: {e1: {type: mlp, hidden: [16]}, "
                        "e2: {type: mlp, hidden: [16]}}}")
    spec, _ = parse_spec(text.replace("WEIGHTING", "{method: upgrad, level: representation}")
                         + EDGE.replace("SHARE", "[bottom, e1, gate_a]").replace("BOTTOM", "8"))
    up = spec.tasks["j"]
    upstream = train_node(NodeRequest("j", up, spec.data["d"], 0, sources=(("d", spec.data["d"]),)), {})
    down = spec.tasks["down"]
    inherits = tuple(Inheritance(m, "j", m, "freeze") for m in ("bottom", "e1", "gate_a"))
    out = train_node(NodeRequest("down", down, spec.data["d"], 1, inherits, sources=(("d", spec.data["d"]),)),
                     {"j": upstream.state})
    for key in ("bottom.layers.0.weight", "e1.layers.0.weight", "gate_a.weight", "gate_a.bias"):
        assert (out.state[key] == upstream.state[key]).all(), key  # frozen: bit-identical
    assert not (out.state["gate_b.weight"] == upstream.state["gate_b.weight"]).all()  # not inherited: trained
    assert [i["module"] for i in out.inherited] == ["bottom", "e1", "gate_a"]


def test_plan_refuses_an_expert_or_gate_that_does_not_fit_along_an_edge():
    from taskgraph.plan.graph import make_plan

    text = GRAPH.replace("mixture: MIXTURE", "mixture: {type: mmoe, experts: {e1: {type: mlp, hidden: [16]}, "
                         "e2: {type: mlp, hidden: [16]}, e3: {type: mlp, hidden: [16]}}}")
    text = text.replace("WEIGHTING", "{method: equal}")
    spec, source = parse_spec(text + EDGE.replace("SHARE", "[e1]").replace("BOTTOM", "6"), file="g.yaml")
    with pytest.raises(PlanError, match=r"g.yaml:.*shape mismatch for 'e1.layers.0.weight'.*\[16, 8\].*\[16, 6\]"):
        make_plan(spec, source)
    spec, source = parse_spec(text + EDGE.replace("SHARE", "[gate_a]").replace("BOTTOM", "8"), file="g.yaml")
    with pytest.raises(PlanError, match=r"shape mismatch for 'gate_a.weight'.*\[3, 8\].*\[2, 8\]"):
        make_plan(spec, source)


@pytest.mark.parametrize("mixture, message", [
    ("{type: mmoe, experts: {e1: {type: mlp, hidden: [16]}, e2: {type: mlp, hidden: [12]}}}",
     r"graph.yaml:10:72: tasks.j.mixture.experts.e2: expert 'e2' outputs 12 values, expert 'e1' of the same level 16"),
    ("{type: cgc, shared: {s: {type: mlp, hidden: [4]}}, specific: {aa: {x: {type: mlp, hidden: [4]}}}}",
     r"tasks.j.mixture.specific.aa: unknown task 'aa'. Did you mean 'a'\?"),
    ("{type: cgc, specific: {a: {x: {type: mlp, hidden: [4]}}}}",
     r"tasks.j.mixture: task 'b' has no expert at this level"),
    ("{type: mmoe, experts: {a: {type: mlp, hidden: [4]}}}", r"'a' \(expert\) names two modules of this node"),
    ("{type: mmoe, tasks: [a, c], experts: {e: {type: mlp, hidden: [4]}}}",
     r"tasks.j.heads.b: head 'b' is not a task of the mixture.*`gate: <task>` \(tasks: a, c\)"),
    ("{type: mmo, experts: {e: {type: mlp, hidden: [4]}}}",
     r"tasks.j.mixture.type: unknown type 'mmo'. Did you mean 'mmoe'\? Known: cgc, cross_stitch, mmoe, ple. See docs"),
    ("{type: mmoe, experts: {e: {type: mlp, in: 5, hidden: [4]}}}",
     r"tasks.j.mixture.experts.e.in: `in: 5`, but module 'bottom' outputs 8 values wide"),
])
def test_mixture_errors_name_the_position_and_the_fix(write_graph, mixture, message):
    import contextlib
    import io
    import re

    from taskgraph.cli import main

    path = write_graph(GRAPH.replace("MIXTURE", mixture).replace("WEIGHTING", "{method: equal}"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["validate", str(path)])
    assert code == 2 and "Traceback" not in err.getvalue()
    assert re.search(message, err.getvalue()), err.getvalue()


def test_a_loaded_mixture_node_answers_through_its_gates():
    """``taskgraph.load_node``'s TrainedNode reads each head's mixed features, as training did."""
    from taskgraph.trained import InputInfo, TrainedNode

    _, node = node_of("cgc")
    torch.manual_seed(0)
    model = JointModel(node, 8, "t").eval()
    x = torch.randn(4, 8)
    trained = TrainedNode("j", model, node, InputInfo("x", (8,), "float32", 8), {})
    out = trained.outputs(x)
    rep = model.run_trunk(x)[MIXED]
    for head in ("a", "b"):
        assert torch.allclose(out[head], model[head](model.mixed(rep, head)))


def test_representation_level_refuses_a_head_that_skips_the_mixture():
    """A head reading a trunk module directly bypasses the shared representation: say so, and how."""
    from taskgraph.errors import SpecError

    text = GRAPH.replace("a: {module: {type: linear, out: 1}", "a: {input: [bottom], module: {type: linear, out: 1}")
    with pytest.raises(SpecError, match=r"tasks.j.heads.a.input.0: 'upgrad' works on the shared representation, the "
                                        r"output of 'mixture'; this head reads 'bottom'. Read the mixture \(leave "
                                        r"`input` out\) or a head, or use `level: parameters`"):
        node_of("mmoe", "{method: upgrad, level: representation}", text)
    assert node_of("mmoe", "{method: upgrad}", text)[1].heads["a"].input == ("bottom",)  # parameter level: fine
