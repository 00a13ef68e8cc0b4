"""Loops spelled in more than one way differentiate alike (issue 12): `for k in
reversed(range(...))` is a `for_range` over ints, as `range(n - 1, -1, -1)` is, so its
derivative code is that of a forward range (the values against CPython, finite
differences and autograd, first and second order, and the shape of the code); and a
backward loop's element reads `A[i, j]` add into one buffer in place, two at a time,
with the same sums as `scatter_add` (`runtime.scatter_add_known`)."""

from __future__ import annotations

import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import tapeless as tl
from tapeless import runtime as rt

# --- reversed ranges -------------------------------------------------------------------


def horner_reversed(c, x):
    """A polynomial by Horner's rule, the coefficients visited from the last."""
    acc = 0.0 * x
    for k in reversed(range(c.shape[0])):
        acc = acc * x + c[k]
    return np.sum(acc * acc)


def horner_countdown(c, x):
    acc = 0.0 * x
    for k in range(c.shape[0] - 1, -1, -1):
        acc = acc * x + c[k]
    return np.sum(acc * acc)


def horner_forward(c, x):
    """The same sum with the coefficients reversed by indexing: a forward range."""
    n = c.shape[0]
    acc = 0.0 * x
    for k in range(n):
        acc = acc * x + c[n - 1 - k]
    return np.sum(acc * acc)


def discounted(r, gamma, start, stop, step):
    """A return accumulated backwards over a strided window of rewards (numbers)."""
    total = 0.0
    for t in reversed(range(start, stop, step)):
        total = r[t] + gamma * total
    return total * total


def backward_sweep(w, x, n):
    """A scalar recurrence run from the last step to the first, with a `break`."""
    s = x
    for k in reversed(range(1, n)):
        s = math.sin(w * s) + 0.1 * k * s
        if s > 50.0:
            break
    return s * w


def _ag_horner(c, x):
    acc = 0.0 * x
    for k in reversed(range(c.shape[0])):
        acc = acc * x + c[k]
    return anp.sum(acc * acc)


def _ag_discounted(r, gamma, start, stop, step):
    total = 0.0
    for t in reversed(range(start, stop, step)):
        total = r[t] + gamma * total
    return total * total


def _fd(f, x, eps=1e-6):
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += eps
        lo[i] -= eps
        out[i] = (f(hi) - f(lo)) / (2 * eps)
    return out


C = np.array([0.3, -0.2, 0.5, 0.1, -0.4, 0.25])
X = np.linspace(-1.2, 1.1, 9)


@pytest.mark.parametrize("f", [horner_reversed, horner_countdown, horner_forward])
def test_reversed_range_gradient_matches_autograd_and_fd(f):
    assert tl.jit(f)(C, X) == pytest.approx(f(C, X), rel=1e-13)
    g = tl.grad(f, argnums=(0, 1))(C, X)
    want = autograd.grad(_ag_horner, argnum=(0, 1))(C, X)
    np.testing.assert_allclose(g[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(g[1], want[1], rtol=1e-12)
    np.testing.assert_allclose(g[0], _fd(lambda c: f(c, X), C), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("window", [(0, 10, 1), (2, 10, 3), (9, -1, -2), (8, 1, -1),
                                    (3, 3, 1), (5, 2, 1), (2, 9, -2), (1, 10, 4)])
def test_reversed_strided_range(window):
    """Every step sign and size, empty windows included: the visited indices are
    CPython's (the values agree) and the gradient is autograd's."""
    r = np.linspace(0.5, 1.4, 10) ** 2
    args = (r, 0.9, *window)
    assert tl.jit(discounted)(*args) == pytest.approx(discounted(*args), rel=1e-13, abs=0)
    g = tl.grad(discounted, argnums=(0, 1))(*args)
    want = autograd.grad(_ag_discounted, argnum=(0, 1))(*args)
    np.testing.assert_allclose(g[0], want[0], rtol=1e-12, atol=1e-300)
    assert g[1] == pytest.approx(want[1], rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n", [0, 1, 5, 12])
def test_reversed_range_with_break(n):
    w, x = 0.7, 0.3
    assert tl.jit(backward_sweep)(w, x, n) == pytest.approx(backward_sweep(w, x, n),
                                                            rel=1e-13)
    g = tl.grad(backward_sweep, argnums=(0, 1))(w, x, n)
    fd_w = (backward_sweep(w + 1e-6, x, n) - backward_sweep(w - 1e-6, x, n)) / 2e-6
    fd_x = (backward_sweep(w, x + 1e-6, n) - backward_sweep(w, x - 1e-6, n)) / 2e-6
    assert g[0] == pytest.approx(fd_w, rel=1e-6, abs=1e-9)
    assert g[1] == pytest.approx(fd_x, rel=1e-6, abs=1e-9)


def test_reversed_range_second_order():
    """The Hessian of the reversed Horner loop in the coefficients is autograd's."""
    want = autograd.hessian(lambda c: _ag_horner(c, X))(C)
    h = tl.hessian(lambda cc: horner_reversed(cc, X))(C)  # (forward over reverse)
    np.testing.assert_allclose(h, want, rtol=1e-11, atol=1e-12)
    # Reverse over reverse: one Hessian-vector product per column.
    def hvp(c, v):
        return np.sum(tl.grad(lambda cc: horner_reversed(cc, X))(c) * v)

    for i in range(C.shape[0]):
        e = np.zeros_like(C)
        e[i] = 1.0
        np.testing.assert_allclose(tl.grad(hvp)(C, e), want[:, i], rtol=1e-11, atol=1e-12)
    # A derivative nested inside the loop's function: grad of (f + |grad f|^2).
    def inner(c):
        d = tl.grad(lambda cc: horner_reversed(cc, X))(c)
        return horner_reversed(c, X) + np.sum(d * d)

    def ag_inner(c):
        d = autograd.grad(lambda cc: _ag_horner(cc, X))(c)
        return _ag_horner(c, X) + anp.sum(d * d)

    np.testing.assert_allclose(tl.grad(inner)(C), autograd.grad(ag_inner)(C), rtol=1e-11)


def test_reversed_range_code_is_a_forward_range():
    """The reversed loop's gradient is the count-down loop's: a `range` with a step of
    -1, the element read by an int (no generic sequence, no run-time unbroadcast)."""
    rev = tl.grad(horner_reversed).source_for(C, X)
    down = tl.grad(horner_countdown).source_for(C, X)
    assert rev.replace("horner_reversed", "f") == down.replace("horner_countdown", "f")
    for text in ("unbroadcast", "as_sequence", "isinstance", "tuple("):
        assert text not in rev, rev

    def scalar(a, n):
        s = 0.0
        for k in reversed(range(n)):
            s = s * a + k
        return s

    src = tl.grad(scalar).source_for(1.1, 5)
    assert "_rt." not in src.replace("_rt.check_scalar_output", ""), src
    # s = 4a^4 + 3a^3 + 2a^2 + a, so ds/da = 16a^3 + 9a^2 + 4a + 1.
    a = 1.1
    assert tl.grad(scalar)(a, 5) == pytest.approx(16 * a ** 3 + 9 * a ** 2 + 4 * a + 1,
                                                  rel=1e-13)


def test_reversed_of_a_local_named_reversed_is_not_rewritten():
    """`reversed` bound to something else is called as it is."""
    def reversed(r):  # noqa: A001 - shadowing the builtin is the point
        return [x for x in r]

    def f(a):
        s = 0.0
        for k in reversed(range(4)):
            s = s * a + k
        return s

    assert tl.jit(f)(2.0) == f(2.0)
    assert tl.grad(f)(2.0) == pytest.approx((f(2.0 + 1e-6) - f(2.0 - 1e-6)) / 2e-6,
                                            rel=1e-7)


# --- element reads accumulated in place ------------------------------------------------


def trace_hops(A, stride):
    """Two reads of a matrix per iteration, the second at a hop that may land on the
    first (then one element gets both pieces)."""
    n = A.shape[0]
    total = 0.0
    for i in range(n):
        total = total + A[i, i] * A[i, (stride * i) % n]
    return total


def trace_hops_reversed(A, stride):
    n = A.shape[0]
    total = 0.0
    for i in reversed(range(n)):
        total = total + A[(stride * i) % n, i] * A[i, i] * 0.5
    return total


@pytest.mark.parametrize("stride", [0, 1, 3, 7])
def test_two_reads_per_iteration(stride):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((20, 20))
    for f, scale in ((trace_hops, 1.0), (trace_hops_reversed, 0.5)):
        g = tl.grad(f)(A, stride)
        want = np.zeros_like(A)
        for i in range(20):
            j = (stride * i) % 20
            if f is trace_hops:
                want[i, i] += A[i, j]
                want[i, j] += A[i, i]
            else:
                want[j, i] += A[i, i] * scale
                want[i, i] += A[j, i] * scale
        np.testing.assert_allclose(g, want, rtol=1e-14, atol=1e-15)


def test_scatter_add_known_sums_like_scatter_add():
    """The two-piece path gives `scatter_add`'s sums to the bit, an index given twice
    included, into arrays, and lists keep their own path."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 6))
    for indices in [((1, 2), (3, 4)), ((2, 2), (2, 2)), (1, 1), (0, 5), ((0, 0),),
                    (4,), ((1, 1), (1, 1), (2, 3))]:
        ds = tuple(rng.standard_normal(np.shape(x[i])) if isinstance(i, int) else
                   float(rng.standard_normal()) for i in indices)
        fast = rt.ZERO
        slow = rt.ZERO
        for _ in range(3):
            fast = rt.scatter_add_known(fast, x, indices, ds)
            slow = rt.scatter_add(slow, x, indices, ds)
        np.testing.assert_array_equal(rt.to_structure(fast, x), rt.to_structure(slow, x))
    xs = [1.0, 2.0, 3.0]
    acc = rt.scatter_add_known(rt.ZERO, xs, (1, 1), (0.5, 0.25))
    assert acc[1] == 0.75 and acc[0] is rt.ZERO
