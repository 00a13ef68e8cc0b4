"""Nested loops' gradients (issues 12 and 15): an inner `for` loop whose backward pass
needs only where it was (its index) saves a count instead of a stack of its indices, and
its backward loop counts down (`opt/counters.py`); a backward loop's float64 sensitivity
carried as loop state (`d_p = d_p * x`) is known to be a float64 number by induction, so
its element pieces are added in place (`d_c[j] += d_p`, `opt/zeros.f8_number`).
Checked against autograd, finite differences, the unoptimized gradient and the gradient
without the step, on both backends, on nested loops not written for the benchmark
(bench/bench_native.coefficient_least_squares)."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
from gradcheck import in_place_adds
from test_loop_remake import _autograd, _data  # (data and autograd's copy)

import tapeless as tl
import tapeless.opt.driver as driver

# --- programs (autograd runs a copy whose `np` is autograd's) ---------------------------


def pair_energy(x, k):
    """A pairwise energy over points on a line: the inner trip count is the outer index."""
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(i):
            d = x[i] - x[j]
            total = total + k[j] * d * d
    return total


def prefix_decay(w, r):
    """Discounted prefix sums, the inner trip count the outer index (a stack per point)."""
    total = 0.0
    for i in range(w.shape[0]):
        rate = r[i]
        s = 0.0
        for j in range(i):
            s = s * rate + w[j]
        total = total + np.tanh(s)
    return total


def matvec_norm(A, v):
    """A matrix-vector product by two scalar loops, then its squared norm."""
    total = 0.0
    for i in range(A.shape[0]):
        s = 0.0
        for j in range(A.shape[1]):
            s = s + A[i, j] * v[j]
        total = total + s * s
    return total


def odd_terms(w, t):
    """A power series over every other coefficient, from 1: a range of start 1, step 2."""
    total = 0.0
    for i in range(t.shape[0]):
        acc = 0.0
        ti = t[i]
        for j in range(1, w.shape[0], 2):
            acc = acc * ti + w[j]
        total = total + np.sin(acc)
    return total


def horner_fit(c, xs, ys):
    """A polynomial's squared error by Horner's rule, the points' loop counted down."""
    err = 0.0
    for i in range(xs.shape[0] - 1, -1, -1):
        value = 0.0
        x = float(xs[i])
        for j in range(c.shape[0]):
            value = c[j] + x * value
        err = err + (value - ys[i]) ** 2
    return err


def horner_inline(c, xs, ys):
    """The same, `xs[i]` read in the inner loop: saved per inner step (with j), so its
    stack stays (a loop-invariant read is not yet saved once per outer step)."""
    err = 0.0
    for i in range(xs.shape[0]):
        value = 0.0
        for j in range(c.shape[0]):
            value = c[j] + xs[i] * value
        err = err + (value - ys[i]) ** 2
    return err


# (fn, its data, argnum, whether the inner loop's stack becomes a count: not where it
# saves values made from the outer loop's index or the inner loop's state, `s` for d_r)
CASES = [
    (pair_energy, lambda: (_data(15), _data(15, 1)), 0, False),
    (pair_energy, lambda: (_data(15), _data(15, 1)), 1, False),
    (prefix_decay, lambda: (_data(12, 7), 0.9 * np.cos(np.arange(12.0))), 0, True),
    (prefix_decay, lambda: (_data(12, 7), 0.9 * np.cos(np.arange(12.0))), 1, False),
    (matvec_norm, lambda: (_data((7, 5), 2), _data(5, 3)), 0, False),
    (matvec_norm, lambda: (_data((7, 5), 2), _data(5, 3)), 1, False),
    (odd_terms, lambda: (0.3 * _data(9, 4), np.linspace(-1, 1, 11)), 0, True),
    (horner_fit, lambda: (_data(5, 5), np.linspace(-1, 1, 13), _data(13, 6)), 0, True),
    (horner_inline, lambda: (_data(5, 5), np.linspace(-1, 1, 13), _data(13, 6)), 0, False),
]
IDS = [f"{c[0].__name__}-{c[2]}" for c in CASES]


@pytest.mark.parametrize("fn, make, argnum, counts", CASES, ids=IDS)
def test_against_autograd_unoptimized_and_without_the_step(fn, make, argnum, counts,
                                                          monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    args = make()
    g = tl.grad(fn, argnums=argnum)
    source = g.source_for(*args)
    got = g(*args)
    np.testing.assert_allclose(got, _autograd(fn, args, argnum), rtol=1e-12, atol=1e-13)
    with monkeypatch.context() as m:
        m.setattr(driver, "count_saved_counters", lambda *a: 0)
        off = tl.grad(fn, argnums=argnum)
        assert (off.source_for(*args) != source) == counts
        np.testing.assert_allclose(got, off(*args), rtol=1e-12, atol=1e-13)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    np.testing.assert_allclose(got, tl.grad(fn, argnums=argnum)(*args), rtol=1e-12,
                               atol=1e-13)


@pytest.mark.parametrize("fn, make, argnum, counts", CASES[:4] + CASES[6:8],
                         ids=IDS[:4] + IDS[6:8])
def test_finite_differences(fn, make, argnum, counts):
    args = make()
    g = tl.grad(fn, argnums=argnum)(*args)
    h = 1e-6
    direction = _data(args[argnum].shape, 9)

    def at(t):
        moved = list(args)
        moved[argnum] = args[argnum] + t * direction
        return fn(*moved)

    fd = (at(h) - at(-h)) / (2 * h)
    assert float(np.sum(g * direction)) == pytest.approx(fd, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("fn, make, argnum, counts", CASES, ids=IDS)
def test_native_equals_python(fn, make, argnum, counts, monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    args = make()
    native = tl.grad(fn, argnums=argnum, backend="native")(*args)
    np.testing.assert_allclose(native, tl.grad(fn, argnums=argnum)(*args), rtol=1e-12,
                               atol=1e-14)


def test_inner_loop_saves_a_count_and_adds_in_place(monkeypatch):
    """The inner loop of a polynomial fit keeps no stack of its indices (no pairs pushed,
    no `is not None` test); its coefficients' sensitivity is added by a statement."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    args = CASES[7][1]()
    source = tl.grad(horner_fit).source_for(*args)
    assert "is not None" not in source and " > 0:" in source, source
    assert in_place_adds(source) == 1 and "scatter" not in source, source


def test_empty_inner_loops(monkeypatch):
    """Inner loops of no iterations (the first point of `pair_energy`; a range that is
    empty throughout) count 0 and their backward loops run no iteration."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    x, k = _data(3), _data(3, 1)
    np.testing.assert_allclose(tl.grad(pair_energy, argnums=(0, 1))(x, k),
                               autograd.grad(pair_energy, (0, 1))(x, k), rtol=1e-12)
    w, t = np.array([0.5]), np.linspace(-1, 1, 4)
    assert np.array_equal(tl.grad(odd_terms)(w, t), np.zeros(1))
