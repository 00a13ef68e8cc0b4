"""Nested functions that call each other (mutually recursive closures), reaching values
of the enclosing function only through a sibling.

A closure's free variables include those of the closures it calls. Within a cycle
(`even` calls `odd`, `odd` calls `even`), `free_variables` used to break the recursion by
answering "none" for the graph being computed, and cached whatever the inner graphs found
from that: the graph asked second lacked the values that only the first reads (and the
schedule of the enclosing function, those it computes only for them). Which graph was
short depended on which was asked first. Reverse mode then passed too few values into
the closures' derivatives: wrong gradients and Hessians, without an error, or a
NameError in the generated code. Now a cycle's free variables are found together, as a
least fixed point (`ir/nodes.py`, `_fv_cycle`).

The programs (`mutual_closure_programs.py`) are checked against CPython (values) and
autograd (derivatives, the same source run with `autograd.numpy`), through `tl.jit`,
`tl.grad`, `tl.value_and_grad`, `tl.vjp`, `tl.vmap`, `tl.hessian` and `tl.grad` inside
`tl.jit`, optimizer on and off; a few on the native backend; and the IR directly: the
same answers whichever graph is asked first, and edits reaching every graph of a cycle."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mutual_closure_programs as P
import numpy as np
import pytest

import tapeless as tl
from tapeless.errors import CompileError
from tapeless.frontend.parser import parse
from tapeless.ir.edit import set_input, set_output
from tapeless.ir.nodes import (
    Constant,
    Graph,
    free_variables,
    graph_nodes,
    reachable_graphs,
    stale_schedules,
)
from tapeless.primitives import PRIMITIVES as PR

autograd = pytest.importorskip("autograd")
# (autograd's, for the programs whose value does not depend on `x` at some depth)
pytestmark = pytest.mark.filterwarnings("ignore:Output seems independent of input")
anp = pytest.importorskip("autograd.numpy")


def _autograd_programs() -> Any:
    """The programs again, as a module of their own whose `np` is autograd's."""
    path = Path(__file__).with_name("mutual_closure_programs.py")
    spec = importlib.util.spec_from_file_location("mutual_closure_programs_autograd", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.np = anp
    return module


A = _autograd_programs()
X = np.array([0.3, -0.7, 1.1])
XS = np.stack([X, X * 0.5 - 0.1, X + 0.2])
KS = (1, 2, 3)  # (the recursion's depth: odd and even, each closure last)
NAMES = [f.__name__ for f in P.PROGRAMS]


def close(got: Any, want: Any) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float),
                               rtol=1e-9, atol=1e-11)


def _value_and_grad(f: Callable[..., Any], k: int) -> Any:
    value, grad = tl.value_and_grad(f)(X, k)
    return np.r_[value, grad]


def _vjp(f: Callable[..., Any], k: int) -> Any:
    value, back = tl.vjp(f, X, k)
    return np.r_[value, back(1.7)[0]]


# transform -> (what tapeless computes, the reference from the CPython program `f` and its
# autograd twin `fa`)
TRANSFORMS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "jit": (lambda f, k: tl.jit(f)(X, k), lambda f, fa, k: f(X, k)),
    "grad": (lambda f, k: tl.grad(f)(X, k), lambda f, fa, k: autograd.grad(fa)(X, k)),
    "value_and_grad": (_value_and_grad,
                       lambda f, fa, k: np.r_[f(X, k), autograd.grad(fa)(X, k)]),
    "vjp": (_vjp, lambda f, fa, k: np.r_[f(X, k), 1.7 * autograd.grad(fa)(X, k)]),
    "vmap": (lambda f, k: tl.vmap(f, in_axes=(0, None))(XS, k),
             lambda f, fa, k: [f(x, k) for x in XS]),
    "hessian": (lambda f, k: tl.hessian(f)(X, k), lambda f, fa, k: autograd.hessian(fa)(X, k)),
    "grad_in_jit": (lambda f, k: tl.jit(tl.grad(f))(X, k),
                    lambda f, fa, k: autograd.grad(fa)(X, k)),
}



# (The Hessians compile slowly, about 3 s of CPU each with the optimizer on: a few
# programs by default, all with -m slow.)
HESSIANS = ["call_even", "call_odd", "only_through_sibling", "three_cycle",
            "lambda_in_sibling", "as_values"]
CASES = [(name, transform) for name in NAMES for transform in TRANSFORMS
         if transform != "hessian"] + [
    pytest.param(name, "hessian", marks=() if name in HESSIANS else pytest.mark.slow)
    for name in NAMES]


@pytest.mark.parametrize(("name", "transform"), CASES)
def test_program(name: str, transform: str, optimize: str) -> None:
    run, reference = TRANSFORMS[transform]
    f, fa = getattr(P, name), getattr(A, name)
    for k in KS:
        close(run(f, k), reference(f, fa, k))


def apply_rec(x, k):
    y = np.sin(x) + 2.0
    def apply(f, n):
        return f(n) * 0.5
    def rec(n):
        return x if n == 0 else apply(rec, n - 1) * y
    return np.sum(apply(rec, k))


def test_vmap_of_recursion_through_a_function_value(optimize: str) -> None:
    # (`rec` passed as a value inside its own body: the value's wrapper took the result
    # tree before `rec` was done, unbatched, and broadcast the batched result again)
    for k in (0, 1, 2, 3):
        close(tl.vmap(apply_rec, in_axes=(0, None))(XS, k), [apply_rec(x, k) for x in XS])


NATIVE = ["call_odd", "three_cycle_chords", "lambda_in_sibling", "defined_in_loop"]


@pytest.mark.parametrize("name", NATIVE)
def test_native(name: str) -> None:
    pytest.importorskip("numba")
    f, fa = getattr(P, name), getattr(A, name)
    for k in (2, 3):
        close(tl.jit(f, backend="native")(X, k), f(X, k))
        close(tl.grad(f, backend="native")(X, k), autograd.grad(fa)(X, k))


def test_a_closure_reading_a_loop_value_is_refused() -> None:
    # (A closure sees a variable's latest value; tapeless's, the value at definition:
    # where a loop assigns the value again, the program is refused, not miscompiled.)
    def loop_capture(x, k):
        acc = 0.0
        for i in range(3):
            t = x * (i + 1.0)
            def even(n):
                return t if n == 0 else odd(n - 1) * 0.5
            def odd(n):
                return x if n == 0 else even(n - 1) + t
            acc = acc + np.sum(even(k))
        return acc

    for transform in (tl.jit, tl.grad):
        with pytest.raises(CompileError, match="pass 't' to the nested function"):
            transform(loop_capture)(X, 2)


# --- the IR: the same answers whichever graph is asked first ---------------------------


def _answers(graphs: list[Graph], order: list[Graph]) -> dict[int, tuple[list[int], list[int]]]:
    """Each graph's free variables and schedule (node ids), computed afresh asking the
    graphs in `order` first."""
    for g in graphs:
        g.invalidate()
    for g in order:
        free_variables(g)
    return {g.id: ([n.id for n in free_variables(g)], [n.id for n in graph_nodes(g)])
            for g in graphs}


def _orders(graphs: list[Graph]) -> list[list[Graph]]:
    """Every order of up to 5 graphs; else each graph first, and the reverse."""
    if len(graphs) <= 5:
        return [list(p) for p in itertools.permutations(graphs)]
    return [graphs[i:] + graphs[:i] for i in range(len(graphs))] + [graphs[::-1]]


@pytest.mark.parametrize("name", NAMES)
def test_same_answers_whichever_graph_is_asked_first(name: str) -> None:
    top = parse(getattr(P, name))
    graphs = reachable_graphs(top)
    want = _answers(graphs, [top])
    assert free_variables(top) == []
    for order in _orders(graphs):
        assert _answers(graphs, order) == want, [g.name for g in order]
    assert stale_schedules(top) == []


def _siblings() -> tuple[Graph, Graph, Graph, Any, Any]:
    """outer(x): y = x * 3; z = x + 1;
    even(n) = y if ... else odd(n) * 1.5; odd(n) = z + even(n) (a call each way);
    returns odd(x). `y` is read by `even` alone: `outer` and `odd` reach it through
    `even`."""
    outer = Graph("outer")
    x = outer.add_parameter("x")
    y = outer.apply(PR["mul"], x, Constant(3.0))
    z = outer.apply(PR["add"], x, Constant(1.0))
    even = Graph("even", outer)
    odd = Graph("odd", outer)
    n = even.add_parameter("n")
    set_output(even, even.apply(PR["mul"], even.apply(Constant(odd), n), y))
    m = odd.add_parameter("m")
    set_output(odd, odd.apply(PR["add"], z, odd.apply(Constant(even), m)))
    set_output(outer, outer.apply(Constant(odd), x))
    return outer, even, odd, y, z


def test_siblings_in_every_order() -> None:
    outer, even, odd, y, z = _siblings()
    graphs = [outer, even, odd]
    for order in itertools.permutations(graphs):
        answers = _answers(graphs, list(order))
        assert set(answers[even.id][0]) == set(answers[odd.id][0]) == {y.id, z.id}
        assert answers[outer.id][0] == []
        assert set(answers[outer.id][1][:2]) == {y.id, z.id}  # (both computed by outer)
        assert answers == _answers(graphs, [outer])
    assert stale_schedules(outer) == []


def test_an_edit_of_one_sibling_reaches_the_other_and_the_enclosing_graph() -> None:
    outer, even, odd, y, z = _siblings()
    free_variables(odd)
    graph_nodes(outer)
    w = outer.apply(PR["neg"], outer.parameters[0])
    set_input(even.output, 2, w)  # even now reads w, not y
    assert set(free_variables(odd)) == {w, z}
    assert set(free_variables(even)) == {w, z}
    assert w in graph_nodes(outer) and y not in graph_nodes(outer)
    assert stale_schedules(outer) == []


def test_cycle_through_a_graph_nested_in_a_member() -> None:
    # outer(x): even(n) = lam(n) with lam(t) = odd(t) * r, r = n * 2 a node of even
    # read by lam alone; odd(m) = even(m) + x. The cycle even -> lam -> odd -> even runs
    # through lam, nested in even: even's schedule needs lam's free variables (r), and
    # asked first for lam's or odd's, it was made from an answer not yet complete.
    outer = Graph("outer")
    x = outer.add_parameter("x")
    even = Graph("even", outer)
    odd = Graph("odd", outer)
    n = even.add_parameter("n")
    r = even.apply(PR["mul"], n, Constant(2.0))
    lam = Graph("lam", even)
    t = lam.add_parameter("t")
    set_output(lam, lam.apply(PR["mul"], lam.apply(Constant(odd), t), r))
    set_output(even, even.apply(Constant(lam), n))
    m = odd.add_parameter("m")
    set_output(odd, odd.apply(PR["add"], odd.apply(Constant(even), m), x))
    set_output(outer, outer.apply(Constant(even), x))
    graphs = [outer, even, lam, odd]
    want = _answers(graphs, [outer])
    assert want[lam.id][0] == [r.id, x.id] or set(want[lam.id][0]) == {r.id, x.id}
    assert want[even.id][0] == [x.id] and want[odd.id][0] == [x.id]
    assert want[even.id][1][0] == r.id
    for order in itertools.permutations(graphs):
        assert _answers(graphs, list(order)) == want, [g.name for g in order]
    assert stale_schedules(outer) == []


def test_an_error_inside_a_cycle_leaves_nothing_half_computed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tapeless.ir import nodes

    outer, even, odd, y, z = _siblings()
    real = nodes.graph_nodes

    def failing(g: Graph) -> Any:
        if g is even:
            raise RuntimeError("stop")
        return real(g)

    monkeypatch.setattr(nodes, "graph_nodes", failing)
    with pytest.raises(RuntimeError, match="stop"):
        free_variables(odd)
    assert nodes._FV_STACK == [] and nodes._FV_LOW == [] and not nodes._FV_PROVISIONAL
    assert odd._fv_cache is None and even._fv_cache is None
    monkeypatch.setattr(nodes, "graph_nodes", real)
    assert set(free_variables(odd)) == {y, z} == set(free_variables(even))
    assert stale_schedules(outer) == []
