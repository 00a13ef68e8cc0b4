"""Long loops and deep recursion differentiate without hitting Python's recursion limit,
and give the gradient a hand-written backward loop gives (10^6 iterations take about
a second: the gradient is a forward loop and a backward loop)."""

from __future__ import annotations

import math

import pytest

import tapeless as tl


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
