"""Derivative code specialized to numbers (issue 12, item 3): kinds for the parameters of
functions only called directly (recursion included) and for values a loop saves and a
loop J made of a backward loop reads back, so that first- and second-order code on
Python floats and `np.float64` runs plain arithmetic, not run-time helpers. Every
gradient is checked against the unoptimized program's (`TAPELESS_OPTIMIZE=0`), bit for
bit, and against finite differences."""

import math

import numpy as np
import pytest
from research_programs import walk_energy

import tapeless as tl

DT = 0.05


def landing(v, angle):
    x, y = 0.0, 0.0
    vx = v * math.cos(angle)
    vy = v * math.sin(angle)
    px, py = x, y
    while y >= 0.0:
        px, py = x, y
        x = x + vx * DT
        y = y + vy * DT
        vx = vx - 0.1 * vx * DT
        vy = vy - (9.81 + 0.1 * vy) * DT
    return px + (x - px) * py / (py - y)


def miss(angle, v, target):
    return (landing(v, angle) - target) ** 2


def aimed(v, target):
    """A derivative of a `while` loop inside a loop, itself differentiated."""
    angle = 0.6
    for _ in range(3):
        angle = angle - 0.002 * tl.grad(miss)(angle, v, target)
    return landing(v, angle) + 0.01 * v * v


def game(x, y, a, b):
    return 0.5 * x * x + a * x * y - 0.5 * y * y + b * math.sin(x)


def saddle(a, b):
    y = 0.0
    x = 0.0
    for _ in range(3):
        for _ in range(4):
            x = x - 0.3 * tl.grad(game, argnums=0)(x, y, a, b)
        y = y + 0.3 * tl.grad(game, argnums=1)(x, y, a, b)
    return game(x, y, a, b)


def descend(x, y, a, b):
    return x - 0.3 * tl.grad(lambda s: game(s, y, a, b))(x)


def ascend(x, y, a, b):
    return y + 0.3 * tl.grad(lambda t: game(x, t, a, b))(y)


def saddle_closure(a, b):
    y = 0.0
    x = 0.0
    for _ in range(3):
        for _ in range(4):
            x = descend(x, y, a, b)
        y = ascend(x, y, a, b)
    return game(x, y, a, b)


GENERIC = ("_rt.unbroadcast", "_rt.lift", "_rt.repeat_sens", "_rt.tuple_sens",
           "isinstance(")


def _unoptimized(monkeypatch: pytest.MonkeyPatch, f, args, argnums=0):
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    try:
        return tl.grad(f, argnums=argnums)(*args)
    finally:
        monkeypatch.delenv("TAPELESS_OPTIMIZE")


def _central(f, args, i, eps=1e-6):
    up = list(args)
    down = list(args)
    up[i] = args[i] + eps
    down[i] = args[i] - eps
    return (f(*up) - f(*down)) / (2 * eps)


@pytest.mark.parametrize("f", [aimed, saddle, saddle_closure])
@pytest.mark.parametrize("number", [float, np.float64])
def test_nested_derivatives_on_numbers_equal_the_unoptimized_ones(f, number, monkeypatch):
    args = (number(12.0), number(9.0)) if f is aimed else (number(0.7), number(0.4))
    g = tl.grad(f, argnums=(0, 1))
    got = g(*args)
    want = _unoptimized(monkeypatch, f, args, argnums=(0, 1))
    assert [float(v) for v in got] == [float(v) for v in want]
    for i in range(2):
        assert float(got[i]) == pytest.approx(_central(f, [float(a) for a in args], i),
                                              rel=1e-5, abs=1e-7)
    # Python floats and float64 give the same numbers.
    assert [float(v) for v in g(*(float(a) for a in args))] == [float(v) for v in got]


@pytest.mark.parametrize("f", [aimed, saddle])
def test_nested_derivative_code_on_floats_calls_no_generic_helper(f):
    args = (12.0, 9.0) if f is aimed else (0.7, 0.4)
    source = tl.grad(f, argnums=(0, 1)).source_for(*args)
    assert not [s for s in GENERIC if s in source], source
    # The derivative of the code around the nested gradient too (tl.jit of it).
    source = tl.jit(f).source_for(*args)
    assert not [s for s in GENERIC if s in source], source


def test_recursive_function_gets_its_parameters_kinds():
    A = np.random.default_rng(0).standard_normal((9, 9))
    g = tl.grad(walk_energy)
    got = g(A)
    want = np.zeros_like(A)
    for i in range(9):
        j = (3 * i) % 9
        want[i, i] += A[i, j]
        want[i, j] += A[i, i]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # The recursion's parameters are known (an array of a shape, an int), so its reads
    # of elements are float64 scalars: no run-time test of what a saved value is.
    source = g.source_for(A)
    assert "isinstance(" not in source, source


def test_recursion_on_changing_shapes_keeps_generic_code():
    # A recursion whose calls pass arrays of other shapes: its parameter has no one
    # kind, and the gradient is right.
    def halves(x):
        if x.shape[0] == 1:
            return x[0] * x[0]
        n = x.shape[0] // 2
        return halves(x[:n]) + halves(x[n:])

    x = np.arange(1.0, 9.0)
    np.testing.assert_allclose(tl.grad(halves)(x), 2 * x)
