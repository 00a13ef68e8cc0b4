"""Long loops and deep recursion differentiate without hitting Python's recursion limit,
and give the gradient a hand-written backward loop gives (10^6 iterations take about
a second: the gradient is a forward loop and a backward loop)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapeless as tl
from tapeless.ir.nodes import graph_nodes, reachable_graphs
from tapeless.opt.loops import LoopFacts


def sin_loop(x, n):
    for _ in range(n):
        x = math.sin(x) * 1.01
    return x


def sin_loop_by_hand(x: float, n: int) -> float:
    """The gradient of sin_loop: a forward loop saving x, then the backward loop."""
    saved = []
    for _ in range(n):
        saved.append(x)
        x = math.sin(x) * 1.01
    d = 1.0
    for x in reversed(saved):
        d = d * math.cos(x) * 1.01
    return d


def while_loop(x, n):
    i = 0
    while i < n:
        x = x + 0.5 * math.sin(x) * 1e-3
        i = i + 1
    return x


def while_loop_by_hand(x: float, n: int) -> float:
    saved = []
    for _ in range(n):
        saved.append(x)
        x = x + 0.5 * math.sin(x) * 1e-3
    d = 1.0
    for x in reversed(saved):
        d = d * (1.0 + 0.5 * math.cos(x) * 1e-3)
    return d


def deep(x, n):
    if n == 0:
        return x
    return math.sin(deep(x, n - 1)) * 1.01


def test_for_loop_100k_iterations() -> None:
    n = 10 ** 5
    assert tl.grad(sin_loop)(0.5, n) == pytest.approx(sin_loop_by_hand(0.5, n), rel=1e-10)


def test_while_loop_20k_iterations() -> None:
    n = 2 * 10 ** 4
    assert tl.grad(while_loop)(0.5, n) == pytest.approx(while_loop_by_hand(0.5, n), rel=1e-10)


def test_recursion_10k_deep() -> None:
    n = 10 ** 4
    assert tl.grad(deep)(0.5, n) == pytest.approx(sin_loop_by_hand(0.5, n), rel=1e-10)
    assert tl.jit(deep)(0.5, n) == pytest.approx(sin_loop(0.5, n), rel=1e-12)


def test_loop_value_and_grad_agree_with_python() -> None:
    value, g = tl.value_and_grad(sin_loop)(0.5, 1000)
    assert value == pytest.approx(sin_loop(0.5, 1000), rel=1e-12)
    assert g == pytest.approx(sin_loop_by_hand(0.5, 1000), rel=1e-12)


def test_for_loop_one_million_iterations() -> None:
    n = 10 ** 6
    assert tl.grad(sin_loop)(0.5, n) == pytest.approx(sin_loop_by_hand(0.5, n), rel=1e-10)


def test_while_loop_100k_iterations() -> None:
    n = 10 ** 5
    assert tl.grad(while_loop)(0.5, n) == pytest.approx(while_loop_by_hand(0.5, n), rel=1e-10)


def test_gradient_stack_is_a_list_and_vjp_keeps_the_immutable_one() -> None:
    """grad: the forward loop appends to a list the backward loop empties. vjp: its
    backward function may run several times, so it keeps the cons-cell stack."""
    src = tl.grad(sin_loop).source_for(0.3, 50)
    assert ".append" in src and "in reversed(" in src
    _, vjp_fn = tl.vjp(sin_loop, 0.3, 50)
    first = vjp_fn(1.0)[0]
    assert vjp_fn(1.0)[0] == first == pytest.approx(sin_loop_by_hand(0.3, 50), rel=1e-12)
    assert vjp_fn(2.0)[0] == pytest.approx(2 * first, rel=1e-12)
    # Second order: the gradient's own loops are differentiated again.
    h = 1e-5
    fd = (sin_loop_by_hand(0.3 + h, 50) - sin_loop_by_hand(0.3 - h, 50)) / (2 * h)
    assert tl.grad(tl.grad(sin_loop))(0.3, 50) == pytest.approx(fd, rel=1e-6)


def four_nested_loops(x, w):
    """Each backward loop's stack was saved on its outer loop's stack: the innermost is
    found through the three backward loops around it."""
    for i in range(2):
        for j in range(2):
            for k in range(2):
                for m in range(2):
                    x = np.sin(x * w[i + 2 * j + 4 * k + 8 * m])
    return np.sum(x * x)


def _four_nested_args() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.normal(size=3), 1.0 + 0.5 * rng.normal(size=(16, 3))


def test_four_nested_loops_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _four_nested_args()
    ours = tl.grad(four_nested_loops, argnums=(0, 1))(*args)
    h = 1e-6
    for a in (0, 1):
        fd = np.zeros_like(args[a])
        for i in np.ndindex(args[a].shape):
            plus, minus = list(args), list(args)
            plus[a], minus[a] = args[a].copy(), args[a].copy()
            plus[a][i] += h
            minus[a][i] -= h
            fd[i] = (four_nested_loops(*plus) - four_nested_loops(*minus)) / (2 * h)
        np.testing.assert_allclose(ours[a], fd, rtol=1e-6, atol=1e-9)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.grad(four_nested_loops, argnums=(0, 1))(*args)
    for x, y in zip(ours, plain, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def test_every_backward_loop_of_a_deep_nest_is_linked_in_any_graph_order() -> None:
    """LoopFacts links a backward loop to its forward loop's stack through the outer
    backward loop's pops, so it must see the outer loops linked first: whatever order
    its graphs come in (innermost first here, when reversed), all four are linked."""
    root = tl.grad(four_nested_loops, argnums=(0, 1)).graph
    graphs = reachable_graphs(root)
    for order in (graphs, graphs[::-1]):
        facts = LoopFacts(root, order)
        backward = [b for b in facts.loops if getattr(b.body, "loop_role", None) == "backward"]
        assert len(backward) == 4
        assert set(facts.pushed_by) == {b.node.id for b in backward}
        for b in backward:  # each one's pops are traced to what its forward loop pushed
            assert any(n.id in facts.popped for n in graph_nodes(b.body))
