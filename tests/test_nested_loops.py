"""Nested derivatives through loops whose bodies call functions (the derivative code of
an inner `tl.grad` differentiated again): the values against finite differences and
closed forms, and the shape of the code (no backpropagator closure made per iteration,
sensitivity accumulators of numbers added with `+`)."""

from __future__ import annotations

import math

import pytest

import tapeless as tl


def spring_step(s, k):
    pos, vel = s
    return pos + 0.05 * vel, vel - 0.05 * (k * pos + 0.2 * vel)


def settle(k, pos0):
    """A damped spring advanced by a helper on a tuple state until it slows down."""
    s = (pos0, 0.0)
    n = 0
    while n < 40 or abs(s[1]) > 0.05:
        s = spring_step(s, k)
        n = n + 1
    return s[0] * s[0] + math.sin(k) * s[1]


def tuned(k0, pos0):
    """Four descent steps on the stiffness, each differentiating `settle`."""
    k = k0
    for _ in range(4):
        k = k - 0.01 * tl.grad(lambda kk: settle(kk, pos0))(k)
    return settle(k, pos0) + 0.1 * k * pos0


def _fd(f, args, i, eps=1e-6):
    lo, hi = list(args), list(args)
    lo[i] -= eps
    hi[i] += eps
    return (f(*hi) - f(*lo)) / (2 * eps)


@pytest.mark.parametrize("argnum", [0, 1])
def test_nested_gradient_through_while_loop_calling_a_step_function(argnum: int) -> None:
    args = (2.0, 1.3)
    g = tl.grad(tuned, argnums=argnum)(*args)
    # (The trip count is locally constant: finite differences see a smooth function.)
    assert g == pytest.approx(_fd(tuned, args, argnum), rel=1e-5)


def test_nested_loop_code_makes_no_closure_per_iteration() -> None:
    args = (2.0, 1.3)
    src = tl.grad(tuned, argnums=(0, 1)).source_for(*args)
    # J of the step function is copied into the loop's body: what the loop saves are
    # numbers, not backpropagators (a nested `def` would be a closure made per step;
    # functions at the top level of the module are made once).
    nested = [line for line in src.splitlines() if line.lstrip().startswith("def ")
              and line.startswith(" ")]
    assert not nested, src


def poly_descent(c, x0):
    """Minimize (x - c)^4 + x^2 by gradient descent; the inner derivative is taken of a
    function of the loop variable and the argument."""
    x = x0
    for _ in range(20):
        x = x - 0.05 * tl.grad(lambda z: (z - c) ** 4 + z * z)(x)
    return x * c


def _poly_descent_by_hand(c, x0):
    """The same iteration with its derivatives in c carried by hand: dx' = dx (1 - 0.05
    f''(x)) + 0.05 * 12 (x - c)^2 (the mixed partial's sign flipped)."""
    x, dx = x0, 0.0
    for _ in range(20):
        hess = 12 * (x - c) ** 2 + 2
        cross = -12 * (x - c) ** 2
        x, dx = x - 0.05 * (4 * (x - c) ** 3 + 2 * x), dx - 0.05 * (hess * dx + cross)
    return dx * c + x


def test_sensitivity_accumulators_start_as_numbers() -> None:
    f = tl.grad(poly_descent)
    assert f(0.7, 0.3) == pytest.approx(_poly_descent_by_hand(0.7, 0.3), rel=1e-12)
    src = f.source_for(0.7, 0.3)
    # Each loop's accumulated sensitivity of c starts as 0.0, so it is added with `+`,
    # not the generic helper that also adds the symbolic zero.
    assert "gadd" not in src, src


def several(c, n):
    total = 0.0
    for i in range(n):
        total = total + c * i
    return total * c


@pytest.mark.parametrize("n", [0, 1, 5])
def test_accumulator_after_no_iterations(n: int) -> None:
    # The loop adds c's sensitivity from an accumulator that starts as 0.0: after no
    # iterations it is 0.0 (a float, like the others).
    g = tl.grad(several)(1.5, n)
    want = 2 * 1.5 * sum(range(n))
    assert g == pytest.approx(want) and type(g) is float
