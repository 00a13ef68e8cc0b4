"""A loop's element reads in its gradient (issue 12): the values a forward loop would save
that a few cheap operations make from its counter (`A[i, i]`, `(i, (7 * i) % n)`) are made
again by the backward loop from the saved counter, and a backward loop's accumulator of
element or row reads of a float64 array starts as the array's zeros and takes each piece
by a statement, `d_A[i, j] += piece` (Python backend). Checked against autograd, finite
differences and the unoptimized gradient, in spellings other than the benchmark's
(bench/control_programs.walk_energy_loop)."""

from __future__ import annotations

import re
import types

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import in_place_adds

import tapeless as tl

# --- programs (each written once; autograd runs a copy whose `np` is autograd's) ---------


def two_reads(A):
    """Two reads per step, one index computed with `%` from the shape (an index repeats:
    (7 * i) % n == i at i = 0 and every n / 6)."""
    n = A.shape[0]
    total = 0.0
    for i in range(n):
        total = total + A[i, i] * A[i, (7 * i) % n]
    return total


def counted_while(A):
    """The same reads, the counter stepped by hand in a `while` loop (int loop state)."""
    n = A.shape[1]
    k = 0
    total = 0.0
    while k < n:
        j = (3 * k + 1) % n
        total = total + (A[k, j] - 0.5) * A[j, k]
        k += 1
    return total


def scaled_reads(A, w):
    """Reads scaled by arithmetic on the counter, and a vector read at the counter."""
    n = A.shape[0]
    total = 0.0
    for i in range(1, n):
        total = total + (0.5 * A[i - 1, i]) * w[i] + A[i, n - i] ** 2
    return total


def rows_read(W, x):
    """Rows of a matrix: a row read by the counter and one by a shifted index."""
    n = W.shape[0]
    total = 0.0
    for i in range(n):
        total = total + np.sum(np.tanh(W[i] * x) * W[(i + 2) % n])
    return total


def changing_array(A):
    """The array read is loop state that changes each step: its reads must be saved."""
    total = 0.0
    for i in range(A.shape[0]):
        total = total + A[i, i] * A[i, 0]
        A = A * 1.01 + 0.001
    return total


def made_in_the_body(x):
    """The array read is made in the body: no buffer can be made before the loop."""
    total = 0.0
    for i in range(x.shape[0]):
        y = np.cos(x) * (i + 1)
        total = total + y[i] * y[(i + 1) % x.shape[0]]
    return total


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _autograd(fn, args, argnum):
    copy = types.FunctionType(fn.__code__, {**fn.__globals__, "np": anp}, fn.__name__)
    return autograd.grad(copy, argnum)(*args)


CASES = [
    (two_reads, lambda: (_data((40, 40)),), 0),
    (counted_while, lambda: (_data((30, 30), 1),), 0),
    (scaled_reads, lambda: (_data((25, 25), 2), _data(25, 3)), 0),
    (scaled_reads, lambda: (_data((25, 25), 2), _data(25, 3)), 1),
    (rows_read, lambda: (_data((9, 70), 4), _data(70, 5)), 0),
    (changing_array, lambda: (_data((12, 12), 6),), 0),
    (made_in_the_body, lambda: (_data(80, 7),), 0),
]


@pytest.mark.parametrize("fn, make, argnum", CASES,
                         ids=[f"{c[0].__name__}-{c[2]}" for c in CASES])
def test_against_autograd_and_unoptimized(fn, make, argnum, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    args = make()
    g = tl.grad(fn, argnums=argnum)(*args)
    expected = _autograd(fn, args, argnum)
    assert type(g) is np.ndarray and g.shape == args[argnum].shape
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-13)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = tl.grad(fn, argnums=argnum)(*args)
    np.testing.assert_allclose(g, plain, rtol=1e-12, atol=1e-13)


def test_walk_gradient_is_the_hand_written_loop(monkeypatch):
    """The forward loop saves the counter alone; the backward loop reads the elements
    again and adds into A's zeros by two statements (no helper, no saved tuples)."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = _data((30, 30))
    source = tl.grad(two_reads).source_for(A)
    assert re.search(r"stack_append\(i\)\n", source), source
    assert "d_A = np.zeros((30, 30), dtype=float)" in source, source
    assert in_place_adds(source) == 2 and "scatter" not in source, source
    # (the same sums as a hand-written loop, an index given twice included: at i = 0, 5,
    # ..., A[i, i] is read twice and its two pieces are added one after the other)
    G = np.zeros_like(A)
    for i in range(30):
        j = (7 * i) % 30
        G[i, i] += A[i, j]
        G[i, j] += A[i, i]
    np.testing.assert_array_equal(tl.grad(two_reads)(A), G)


def test_while_loop_saves_its_int_counter(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = _data((30, 30), 1)
    source = tl.grad(counted_while).source_for(A)
    # (k alone: `A[k, j] - 0.5`, the sensitivity of `A[j, k]`, is made again from A)
    assert re.search(r"stack_append\(k\w*\)\n", source), source
    assert in_place_adds(source) == 2 and "scatter" not in source, source


def test_values_of_a_changing_array_stay_saved(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = _data((12, 12), 6)
    source = tl.grad(changing_array).source_for(A)
    # (A's reads are pushed with the counter: A is loop state)
    assert not re.search(r"stack_append\(i\w*\)\n", source), source


def test_finite_differences_of_the_rows():
    W, x = _data((9, 70), 4), _data(70, 5)
    g = tl.grad(rows_read)(W, x)
    h = 1e-6
    for seed in (8, 9):
        direction = _data((9, 70), seed)
        fd = (rows_read(W + h * direction, x) - rows_read(W - h * direction, x)) / (2 * h)
        assert float(np.sum(g * direction)) == pytest.approx(fd, rel=1e-7, abs=1e-9)


def test_native_backend_keeps_its_accumulators():
    """The statements are the Python backend's: the native backend's generated code
    keeps the accumulator it lowers itself (same gradient)."""
    pytest.importorskip("numba")
    A = _data((20, 20))
    f = tl.grad(two_reads, backend="native")
    np.testing.assert_allclose(f(A), tl.grad(two_reads)(A), rtol=1e-13, atol=1e-14)


# --- a backward loop's float sensitivities that start or become ZERO --------------------


def flight(v, angle):
    """A `while` loop keeping the state of its last iteration (`px, py`), as the
    particle of bench/control_programs.py: in the backward loop `d_vx` starts as ZERO
    and `d_px` becomes ZERO after the first iteration."""
    x, y = 0.0, 0.0
    vx, vy = v * angle, v
    px, py = x, y
    while y >= 0.0:
        px, py = x, y
        x = x + vx * 0.01
        y = y + vy * 0.01
        vx = vx - 0.1 * vx * 0.01
        vy = vy - 9.81 * 0.01
    return px + (x - px) * py / (py - y)


@pytest.mark.parametrize("v, angle", [(3.0, 0.7), (5.5, 1.3), (0.5, -0.4)])
def test_float_sensitivities_of_a_while_loop(v, angle, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    g = tl.grad(flight, argnums=(0, 1))(v, angle)
    expected = autograd.grad(flight, (0, 1))(v, angle)
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)
    h = 1e-6
    fd = ((flight(v + h, angle) - flight(v - h, angle)) / (2 * h),
          (flight(v, angle + h) - flight(v, angle - h)) / (2 * h))
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    np.testing.assert_allclose(g, tl.grad(flight, argnums=(0, 1))(v, angle), rtol=1e-12)


def test_float_sensitivities_of_a_while_loop_are_numbers(monkeypatch):
    """The slots start (`d_vx = 0.0`) and go on (`d_px = 0.0`) as numbers: the backward
    loop adds floats, with no `gadd`, `sens_of` or ZERO."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = tl.grad(flight, argnums=(0, 1)).source_for(3.0, 0.7)
    loop = source[source.index("while stack"):]
    assert "_rt" not in loop and "gadd" not in loop and "sens_of" not in loop, source
    assert "d_vx = 0.0" in source, source
