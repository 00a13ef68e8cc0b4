"""Kinds of recursive and loop-carried values (issue 12): what a recursive function
returns gets a kind by induction over the recursion, the sensitivity its backpropagator
is called with gets the value's kind, the sensitivity of a loop's tuple state keeps the
kinds of its items, and a saved float64 element is known to be one. Derivative code then
uses no generic run-time helper where these kinds decide it (`unbroadcast`,
`broadcast_like`, the `isinstance` tests of `+`), and the element reads of a recursion
are added into what the recursive call gave back (`scatter_onto`). Gradients are checked
against autograd, hand-written gradients and finite differences, in spellings other than
the benchmark's (bench/control_programs.py)."""

from __future__ import annotations

import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import directional_fd

import tapeless as tl
from tapeless import runtime as rt
from tapeless.sparse_sens import IndexedSens

# --- programs ---------------------------------------------------------------------------


def diagonal_walk(M, k):
    """Two element reads per call, the recursive call first; the base case a float."""
    n = M.shape[0]
    if k >= n:
        return 0.0
    rest = diagonal_walk(M, k + 1)
    return rest * 0.9 + M[k, k] * M[k, (3 * k + 1) % n]


def diagonal_energy(M):
    return diagonal_walk(M, 0)


def diagonal_energy_grad(M):
    n = M.shape[0]
    G = np.zeros_like(M)
    scale = 1.0
    for k in range(n):
        j = (3 * k + 1) % n
        G[k, k] += scale * M[k, j]
        G[k, j] += scale * M[k, k]
        scale *= 0.9
    return G


def minor_det(A, rows, cols):
    """det of A restricted to `rows` x `cols` (lists of ints), expanding along the first
    row with a `while` loop and a sign kept as an int."""
    if len(rows) == 1:
        return A[rows[0], cols[0]]
    total = 0.0
    k = 0
    sign = 1
    while k < len(cols):
        rest = cols[:k] + cols[k + 1:]
        total += sign * A[rows[0], cols[k]] * minor_det(A, rows[1:], rest)
        sign = -sign
        k += 1
    return total


def laplace_det(A):
    n = A.shape[0]
    return minor_det(A, list(range(n)), list(range(n)))


def minor_det_filtered(A, rows, cols):
    """minor_det, the columns left kept by a comprehension (whose kind is not known:
    the gradient is the same)."""
    if len(rows) == 1:
        return A[rows[0], cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        term = A[rows[0], c] * minor_det_filtered(A, rows[1:], [d for d in cols if d != c])
        total = total + term if k % 2 == 0 else total - term
    return total


def laplace_det_filtered(A):
    n = A.shape[0]
    return minor_det_filtered(A, list(range(n)), list(range(n)))


def anp_minor_det(A, rows, cols):
    if len(rows) == 1:
        return A[rows[0], cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        rest = [d for d in cols if d != c]
        total = total + (-1) ** k * A[rows[0], c] * anp_minor_det(A, rows[1:], rest)
    return total


def powers(x, n):
    """A recursion on a float whose result is a float at every depth."""
    if n == 0:
        return 1.0
    return x * powers(x, n - 1)


def halve_sum(v, lo, hi):
    """A recursion returning a NumPy scalar (a sum) or a float (an empty range)."""
    if hi - lo <= 2:
        return np.sum(v[lo:hi] ** 2) if hi > lo else 0.0
    mid = (lo + hi) // 2
    return halve_sum(v, lo, mid) + 2.0 * halve_sum(v, mid, hi)


def halve_energy(v):
    return halve_sum(v, 0, v.shape[0])


def scaled_rows(M, k):
    """A recursion returning an array (a row, scaled, plus the rest)."""
    if k == M.shape[0] - 1:
        return M[k] * 1.0
    return M[k] * 0.5 + scaled_rows(M, k + 1) * math.cos(0.1 * k)


def rows_energy(M):
    return np.sum(scaled_rows(M, 0) ** 2)


def flight(v, angle):
    """A `while` loop over a tuple state advanced by a helper; the answer read from the
    last two states (the sensitivity of the state starts with ZERO items)."""
    state = (0.0, 0.0, v * math.cos(angle), v * math.sin(angle))
    last = state
    while state[1] >= 0.0:
        last = state
        state = _fly(state)
    return last[0] + (state[0] - last[0]) * last[1] / (last[1] - state[1])


def _fly(s):
    x, y, vx, vy = s
    return x + 0.02 * vx, y + 0.02 * vy, vx * 0.995, vy - 0.02 * (9.81 + 0.1 * vy)


def aimed(v, target):
    """Nested derivatives of the tuple-state loop: gradient descent on the angle."""
    angle = 0.5
    for _ in range(3):
        angle = angle - 0.001 * tl.grad(lambda a: (flight(v, a) - target) ** 2)(angle)
    return flight(v, angle)


def diagonal_sum_loop(M):
    """Element reads in a `for` loop, two of them the same element at k = 0."""
    n = M.shape[0]
    total = 0.0
    for k in range(n):
        total = total + M[k, k] * M[k, (5 * k) % n]
    return total


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 40])  # (below and above the sparse threshold)
def test_recursive_walk_against_hand_written(n):
    M = _data((n, n))
    np.testing.assert_allclose(tl.grad(diagonal_energy)(M), diagonal_energy_grad(M),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("n", [3, 5])
def test_recursive_determinant_against_autograd(n):
    A = _data((n, n), 1)
    expected = autograd.grad(lambda a: anp_minor_det(a, list(range(n)), list(range(n))))(A)
    np.testing.assert_allclose(tl.grad(laplace_det)(A), expected, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(tl.grad(laplace_det_filtered)(A), expected, rtol=1e-11,
                               atol=1e-12)
    # (and the calculus: d det / dA = det(A) A^-T)
    np.testing.assert_allclose(tl.grad(laplace_det)(A),
                               np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9)


def test_recursion_on_floats_against_autograd():
    assert tl.grad(powers)(1.3, 7) == pytest.approx(
        autograd.grad(powers)(1.3, 7), rel=1e-14)


@pytest.mark.parametrize("n", [2, 3, 13])
def test_recursion_mixing_floats_and_numpy_scalars(n):
    v = _data(n, 2)
    expected = autograd.grad(lambda w: _anp_halve(w, 0, n))(v)
    np.testing.assert_allclose(tl.grad(halve_energy)(v), expected, rtol=1e-13)


def _anp_halve(v, lo, hi):
    if hi - lo <= 2:
        return anp.sum(v[lo:hi] ** 2) if hi > lo else 0.0
    mid = (lo + hi) // 2
    return _anp_halve(v, lo, mid) + 2.0 * _anp_halve(v, mid, hi)


def test_recursion_returning_arrays_against_finite_differences():
    M = _data((6, 4), 3)
    g = tl.grad(rows_energy)(M)
    rng = np.random.default_rng(4)
    for _ in range(3):
        t = rng.standard_normal(M.shape)
        fd = directional_fd(rows_energy, (M,), (0,), (t,))
        assert float(np.sum(g * t)) == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_tuple_state_loop_and_nested_derivatives_against_finite_differences():
    for fn, args in [(flight, (12.0, 0.8)), (aimed, (12.0, 9.0))]:
        g = tl.grad(fn, argnums=(0, 1))(*args)
        for i in range(2):
            e = [0.0, 0.0]
            e[i] = 1e-6
            fd = (fn(args[0] + e[0], args[1] + e[1]) -
                  fn(args[0] - e[0], args[1] - e[1])) / 2e-6
            assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_loop_reading_one_element_twice_against_hand_written():
    M = _data((70, 70), 5)
    G = np.zeros_like(M)
    for k in range(70):
        G[k, k] += M[k, (5 * k) % 70]
        G[k, (5 * k) % 70] += M[k, k]
    np.testing.assert_array_equal(tl.grad(diagonal_sum_loop)(M), G)


# --- the code made ------------------------------------------------------------------------


def _backward_source(fn, *args):
    return tl.grad(fn).source_for(*args)


def test_recursive_backpropagator_uses_no_generic_helpers():
    M = _data((40, 40))
    source = _backward_source(diagonal_energy, M)
    # The sensitivity `dout` is a number (the value's kind): no unbroadcast of it, and
    # the two reads go into what the recursive call gave back, in one call.
    assert "unbroadcast" not in source
    assert "scatter_onto" in source and "scatter_sens" not in source


def test_recursive_determinant_has_no_type_tests():
    A = _data((4, 4))
    source = _backward_source(laplace_det, A)
    # `total + ...` of a recursive call's result: numbers, not a list concatenation.
    assert "isinstance" not in source
    assert "unbroadcast" not in source


def test_tuple_state_sensitivity_is_read_as_a_tuple():
    source = _backward_source(aimed, 12.0, 9.0)
    assert "unbroadcast" not in source and "broadcast_like" not in source
    assert "tuple_sens" not in source


def test_loop_of_element_reads_adds_in_place_without_tests():
    source = _backward_source(diagonal_sum_loop, _data((70, 70)))
    assert "scatter_add_known" in source
    assert "1.0 *" not in source  # (a float64 element times 1.0 is itself)


# --- the run-time helper ----------------------------------------------------------------


def test_scatter_onto_leaves_a_shared_sparse_sensitivity_alone():
    x = np.zeros((10, 10))
    base = rt.scatter_sens(x, ((1, 2),), (1.0,))
    assert type(base) is IndexedSens
    a = rt.scatter_onto(base, x, ((3, 4), (1, 2)), (2.0, 0.5))
    b = rt.scatter_onto(base, x, ((5, 5),), (7.0,))
    expected_base = np.zeros((10, 10))
    expected_base[1, 2] = 1.0
    np.testing.assert_array_equal(np.asarray(base), expected_base)
    expected_a = expected_base.copy()
    expected_a[3, 4] += 2.0
    expected_a[1, 2] += 0.5
    np.testing.assert_array_equal(np.asarray(a), expected_a)
    expected_b = expected_base.copy()
    expected_b[5, 5] = 7.0
    np.testing.assert_array_equal(np.asarray(b), expected_b)


def test_scatter_onto_a_dense_sensitivity_copies_it():
    x = np.zeros((3, 3))
    acc = np.arange(9.0).reshape(3, 3)
    out = rt.scatter_onto(acc, x, ((0, 1), (2, 2)), (1.5, rt.ZERO))
    np.testing.assert_array_equal(acc, np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(out, rt.gadd(rt.scatter_sens(x, ((0, 1),), (1.5,)), acc))
    # (an index given twice: the pieces summed as scatter_sens sums them)
    twice = rt.scatter_onto(acc, x, ((0, 1), (0, 1)), (1.5, 2.5))
    np.testing.assert_array_equal(
        twice, rt.gadd(rt.scatter_sens(x, ((0, 1), (0, 1)), (1.5, 2.5)), acc))
