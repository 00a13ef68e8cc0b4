"""The backpropagator of a recursive function lambda-lifted (`opt/lift.py`, issue 12):
`J_f` returns `(value, record)` and one module-level `B_f(record, d)` runs every call's
backward pass, where every value that can hold the backpropagator only reaches calls.
Checked against autograd and finite differences: depths that change between calls,
second order through the recursion, mutual recursion, a backpropagator returned to the
user (it escapes: not lifted) and called twice; and the analysis's refusals on
hand-made graphs."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from research_programs import walk_energy
from test_sparse_sens import tree_energy

import tapeless as tl
from tapeless.ir.nodes import Graph
from tapeless.opt import lift, unwind


def power_sum(x, n):
    if n == 0:
        return 1.0
    return 1.0 + x * power_sum(x, n - 1)


def poly(x):
    return power_sum(x, 6)


def even(x, n):
    if n == 0:
        return x
    return np.sin(odd(x, n - 1))


def odd(x, n):
    if n == 0:
        return x * x
    return even(x, n - 1) * x


def mutual(x):
    return even(x, 7)


def walk_list(xs, i):
    if i == len(xs):
        return 0.0
    return xs[i] * xs[i] + 0.5 * walk_list(xs, i + 1)


def list_energy(x, n):
    return walk_list([x * k for k in range(n)], 0)


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _anp_walk(A):
    n = A.shape[0]
    return sum(A[i, i] * A[i, (3 * i) % n] for i in range(n))


def test_walk_is_lifted_and_matches_autograd(monkeypatch) -> None:
    A = _data((9, 9))
    # (the lifted backward pass as it is, not fused into the forward one: `opt.unwind`)
    monkeypatch.setattr(unwind, "_fuse_all", lambda *_: 0)
    g = tl.grad(walk_energy)
    src = g.source_for(A)
    assert "def B_walk(record, dout)" in src, src
    assert "*, " not in src  # (no closure with defaults left)
    np.testing.assert_allclose(g(A), autograd.grad(_anp_walk)(A), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 4, 9, 23])
def test_depth_changes_between_calls(n: int) -> None:
    g = tl.grad(walk_energy)
    A = _data((n, n), seed=n)
    np.testing.assert_allclose(g(A), autograd.grad(_anp_walk)(A), rtol=1e-12, atol=1e-12)


def test_depth_from_an_argument_changes_between_calls() -> None:
    g = tl.grad(list_energy)
    for n in (0, 1, 3, 8, 3):
        want = sum(2 * k * k * 1.3 * 0.5 ** k for k in range(n))
        assert g(1.3, n) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_second_order_through_the_lifted_recursion() -> None:
    # poly(x) = 1 + x + ... + x^6
    for x in (-1.1, 0.3, 2.0):
        want = sum(k * (k - 1) * x ** (k - 2) for k in range(2, 7))
        assert tl.grad(tl.grad(poly))(x) == pytest.approx(want, rel=1e-12)
        assert tl.hessian(poly)(x) == pytest.approx(want, rel=1e-12)


def test_mutual_recursion_against_autograd() -> None:
    def a_even(x, n):
        return x if n == 0 else anp.sin(a_odd(x, n - 1))

    def a_odd(x, n):
        return x * x if n == 0 else a_even(x, n - 1) * x

    for x in (0.4, -0.9, 1.7):
        assert tl.grad(mutual)(x) == pytest.approx(autograd.grad(lambda x: a_even(x, 7))(x),
                                                   rel=1e-12)


def test_vjp_of_a_recursion_called_twice() -> None:
    A = _data((6, 6), seed=3)
    value, backprop = tl.vjp(walk_energy, A)
    assert value == pytest.approx(_anp_walk(A), rel=1e-12)
    first = backprop(1.0)
    second = backprop(2.0)
    want = autograd.grad(_anp_walk)(A)
    np.testing.assert_allclose(first[0] if isinstance(first, tuple) else first, want,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(second[0] if isinstance(second, tuple) else second, 2 * want,
                               rtol=1e-12, atol=1e-12)


def _lifted(fn, *args) -> int:
    """How many backpropagators `lift_backprops` lifts in fn's gradient."""
    counts: list[int] = []
    real = lift.lift_backprops

    def counting(root: Graph, python: bool = True) -> int:
        counts.append(real(root, python))
        return counts[-1]

    lift_module_driver = __import__("tapeless.opt.driver", fromlist=["lift_backprops"])
    old = lift_module_driver.lift_backprops
    lift_module_driver.lift_backprops = counting
    try:
        tl.grad(fn).source_for(*args)
    finally:
        lift_module_driver.lift_backprops = old
    return sum(counts)


def test_counts_what_it_lifts() -> None:
    assert _lifted(walk_energy, _data((5, 5))) == 1
    assert _lifted(mutual, 0.5) >= 1


def test_two_calls_of_a_recursion_at_different_depths() -> None:
    calls = []

    def rec(x, n):
        if n == 0:
            return x
        return x * rec(x, n - 1)

    def top(x):
        return rec(x, 3) + rec(x, 2)

    calls.append(tl.grad(top)(1.5))
    assert calls[0] == pytest.approx(4 * 1.5 ** 3 + 3 * 1.5 ** 2, rel=1e-12)


# --- the analysis on hand-made graphs ---------------------------------------------------

P = __import__("tapeless.primitives", fromlist=["PRIMITIVES"]).PRIMITIVES


def _program(use: str) -> Graph:
    """`root(x, flag)` calls a recursive `J(x) -> (x, B)` (B a closure over x) and then
    `use`s the backpropagator: "call" calls it, "list" puts it in a list, "either" calls
    it or another function chosen by `flag`, "result" returns it."""
    from tapeless.ir.edit import set_output

    j = Graph("J")
    jx = j.add_parameter("x")
    b = Graph("B", parent=j)
    d = b.add_parameter("d")
    set_output(b, b.apply(P["mul"], d, jx))
    inner = j.apply(j, jx)
    set_output(j, j.apply(P["make_tuple"], j.apply(P["tuple_getitem"], inner, 0), b))
    other = Graph("other")
    set_output(other, other.add_parameter("d"))
    root = Graph("root")
    x = root.add_parameter("x")
    flag = root.add_parameter("flag")
    t = root.apply(j, x)
    bp = root.apply(P["tuple_getitem"], t, 1)
    if use == "call":
        out = root.apply(bp, 1.0)
    elif use == "list":
        out = root.apply(P["make_list"], bp)
    elif use == "either":
        out = root.apply(root.apply(P["switch"], flag, bp, other), 1.0)
    else:
        out = bp
    set_output(root, out)
    return root


@pytest.mark.parametrize("use, lifted", [("call", 1), ("list", 0), ("either", 0),
                                         ("result", 0)])
def test_lifted_only_where_every_use_is_a_call_of_it(use: str, lifted: int) -> None:
    from tapeless.ir.nodes import scope_errors

    root = _program(use)
    assert lift.lift_backprops(root) == lifted
    assert not scope_errors(root)
    if lifted:
        from tapeless.ir.nodes import free_variables, graph_nodes
        call = root.output
        assert call.inputs[0].value.name == "B"  # (B(record, 1.0))
        assert len(call.inputs) == 3
        assert not free_variables(call.inputs[0].value)
        assert graph_nodes(root)




V = np.random.default_rng(8).standard_normal(16)


def tree_hvp_objective(y):
    return np.sum(tl.grad(tree_energy)(y) * V)


def test_hessian_vector_product_of_a_tree_recursion() -> None:
    """Several recursive graphs, one lifted and one refused (its backpropagator shares
    call sites with the base case's): decided on the same analysis, before either is
    lifted (a miscompile once: the refused one was lifted with no call site rewritten)."""
    x = np.random.default_rng(7).standard_normal(16)
    hv = tl.grad(tree_hvp_objective)(x)
    eps = 1e-6
    g = tl.grad(tree_energy)
    fd = (g(x + eps * V) - g(x - eps * V)) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)
