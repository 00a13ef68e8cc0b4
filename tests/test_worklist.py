"""The optimizer's worklist: after the first round it matches only the nodes a change can
have made match, and reaches the same program as matching every node in every round."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import tapeless as tl
import tapeless.api as api
from tapeless.api import graph_of
from tapeless.ir.clone import copy_module
from tapeless.opt import driver as passes
from tests import golden_programs as gp
from tests.corpus import programs as corpus


def _cases():
    cases = [
        pytest.param(lambda: tl.grad(gp.mlp, argnums=(0, 1, 2, 3)), gp.small_mlp_args(), id="mlp"),
        pytest.param(lambda: tl.grad(gp.scalar_loop), (0.3,), id="scalar_loop"),
        pytest.param(lambda: tl.grad(gp.branchy, argnums=(0, 1)), (1.5, 0.5), id="branchy"),
        pytest.param(lambda: tl.grad(gp.newton_sqrt), (3.0,), id="newton_sqrt"),
        pytest.param(lambda: tl.grad(tl.grad(gp.branchy)), (1.5, 0.5), id="branchy''"),
        pytest.param(lambda: tl.grad(gp.recursive_halves), (np.arange(1.0, 9.0),),
                     id="recursive_halves"),
    ]
    for name, fn, arg_sets in corpus.CASES:
        a = arg_sets[0]
        if not a.kwargs:
            cases.append(pytest.param(lambda fn=fn: tl.jit(fn), a.args, id=name))
            cases.append(pytest.param(lambda fn=fn: tl.grad(fn), a.args, id=name + "/grad"))
    return cases


def _source(make, args, worklist: bool, monkeypatch) -> str:
    monkeypatch.setattr(passes, "WORKLIST_MIN_NODES", 0)  # (small programs use it too)
    monkeypatch.setattr(api, "optimize", functools.partial(passes.optimize, worklist=worklist))
    try:
        return make().source_for(*args)
    except Exception as e:  # noqa: BLE001  (programs that fail must fail alike)
        return f"raised {type(e).__name__}"


@pytest.mark.parametrize("make, args", _cases())
def test_worklist_reaches_the_same_program(make, args, monkeypatch):
    assert _source(make, args, True, monkeypatch) == _source(make, args, False, monkeypatch)


def test_worklist_matches_fewer_nodes_and_confirms_with_every_node(monkeypatch):
    monkeypatch.setattr(passes, "WORKLIST_MIN_NODES", 0)
    graph = graph_of(tl.grad(gp.mlp, argnums=(0, 1, 2, 3)))
    logs = {wl: passes.optimize(copy_module(graph), worklist=wl) for wl in (True, False)}
    matched = {wl: sum(m for m, _ in log.rounds) for wl, log in logs.items()}
    assert matched[True] < matched[False]
    assert logs[True].counts == logs[False].counts
    for log in logs.values():
        last_matched, last_total = log.rounds[-1]
        assert last_matched == last_total  # the round that finds nothing matches every node
    assert any(m < n for m, n in logs[True].rounds)


def test_small_programs_match_every_node():
    graph = graph_of(tl.grad(gp.mlp, argnums=(0, 1, 2, 3)))
    log = passes.optimize(copy_module(graph))
    assert log.rounds[0][1] < passes.WORKLIST_MIN_NODES
    # (every node but those of the functions a round had already inlined everywhere)
    assert all(m + s >= n for (m, n), s in zip(log.rounds, log.skipped, strict=True))


def _bump(y):
    return y * y + 1.0


def _nested(x):
    return tl.grad(lambda y: _bump(y) * y)(x) * x


def test_functions_inlined_everywhere_are_skipped():
    # A nested derivative: its sweep inlines functions at their every use (the copies
    # are matched) and skips their bodies, which the round's end drops.
    graph = copy_module(graph_of(tl.grad(_nested)))
    log = passes.optimize(graph)
    assert sum(log.skipped) > 0
    x = 0.7
    # d/dx [x * (3x^2 + 1)] = 9x^2 + 1
    assert tl.grad(_nested)(x) == pytest.approx(9 * x * x + 1)


def test_a_replacement_made_before_the_match_is_not_matched_again():
    # An inlined branch that returns a value computed before it (`return x` of a call
    # inlined earlier in the same sweep) gives back an old node: matching it again
    # inlined that call a second time, effects and all (an update in place under
    # tl.vmap ran twice; tests/test_vmap_scatter.py).
    from tapeless.ir.nodes import Constant, Graph

    g = Graph("g", None, None)
    x = g.add_parameter("x")
    old = g.apply(Constant(tl.primitives.PRIMITIVES["add"]), x, x)
    mark = old.id
    new = g.apply(Constant(tl.primitives.PRIMITIVES["mul"]), old, x)
    assert passes._made_since(old, g, mark) == []
    assert passes._made_since(new, g, mark) == [new]


def _reference_worklist(root, changed, mark, graphs_changed, calls):
    """The worklist computed the plain way (the driver's before it read the users index
    the rounds keep): users indexed from the schedules of the graphs reachable now, the
    depths relaxed until none shrinks. (nodes, call counts)."""
    from tapeless.ir.nodes import graph_nodes, is_constant_graph, reachable_graphs

    users, refs, params, counts, seeds = {}, {}, {}, {}, []
    for g in reachable_graphs(root):
        params[g.id] = g.parameters
        for n in graph_nodes(g):
            if n.id > mark or n.id in changed:
                seeds.append(n)
            for pos, i in enumerate(n.inputs):
                users.setdefault(i.id, []).append(n)
                if is_constant_graph(i):
                    refs.setdefault(i.value.id, []).append(n)
                    counts[i.value.id] = counts.get(i.value.id, 0) + (1 if pos == 0 else 2)
    depth = {}
    todo = [(n, 0) for n in seeds]
    todo += [(n, 0) for gid, c in counts.items() if calls.get(gid) != c
             for n in refs.get(gid, ())]
    todo += [(n, 0) for gid in graphs_changed for n in refs.get(gid, ())]
    while todo:
        n, d = todo.pop()
        if depth.get(n.id, passes.WORKLIST_DEPTH + 1) <= d:
            continue
        depth[n.id] = d
        if d == 0:
            todo += [(r, 0) for r in refs.get(n.graph.id, ())]
        if d < passes.WORKLIST_DEPTH:
            todo += [(u, d + 1) for u in users.get(n.id, ())]
            for i in n.inputs:
                if is_constant_graph(i):
                    todo += [(u, d + 1) for p in params.get(i.value.id, ())
                             for u in users.get(p.id, ())]
    return set(depth), counts


def _loop_sum(x, n):
    s = 0.0
    for i in range(n):
        s = s + _bump(x * i)
    return s


@pytest.mark.parametrize("make, args", [
    pytest.param(lambda: tl.grad(_nested), (0.7,), id="nested"),
    pytest.param(lambda: tl.grad(tl.grad(_nested)), (0.7,), id="nested''"),
    pytest.param(lambda: tl.grad(_loop_sum), (0.3, 5), id="loop"),
    pytest.param(lambda: tl.grad(gp.mlp, argnums=(0, 1, 2, 3)), gp.small_mlp_args(), id="mlp"),
    pytest.param(lambda: tl.grad(gp.recursive_halves), (np.arange(1.0, 9.0),),
                 id="recursive_halves"),
])
def test_worklist_from_the_users_index_is_the_plain_one(make, args, monkeypatch):
    # The driver reads the users the rounds keep (which may name dead nodes: skipped),
    # breadth first: every round's worklist must be the one the plain way finds.
    monkeypatch.setattr(passes, "WORKLIST_MIN_NODES", 0)
    seen = []
    fast = passes._worklist

    def both(root, changed, mark, graphs_changed, calls):
        expected = _reference_worklist(root, changed, mark, graphs_changed, calls)
        got = fast(root, changed, mark, graphs_changed, calls)
        assert (got.nodes, got.calls) == expected
        seen.append(len(got.nodes))
        return got

    monkeypatch.setattr(passes, "_worklist", both)
    make().source_for(*args)
    assert seen and any(seen)
