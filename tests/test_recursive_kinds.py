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
from gradcheck import directional_fd, in_place_adds

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
    # the two reads go into what the recursive call gave back, in one call, in place
    # (what the recursive call gives back is owned: `opt.scatter.OwnedSlots`), the two
    # pieces given as they are (`scatter_add_pair_known`), or, the recursion unwound
    # (Python backend), as statements into one float64 array (`acc[i] += d`).
    assert "unbroadcast" not in source
    assert ("scatter_add_pair_known(" in source or "] += " in source) and \
        "scatter_sens" not in source
    assert "scatter_onto" not in source


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
    # (two statements adding into M's zeros, `d_M[k, k] += ...`: no helper, no test)
    assert in_place_adds(source) == 2 and "scatter_add" not in source
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


# --- more recursions (issue 12): shapes of recursion other than the benchmarks' ---------


def sum_list(xs, k):
    """A recursive sum over a list of arrays, the recursive call last."""
    if k == len(xs):
        return 0.0
    return np.sum(xs[k] ** 2) * (k + 1) + sum_list(xs, k + 1)


def sum_list_energy(w, xs):
    return sum_list([x * w for x in xs], 0)


def anp_sum_list(xs, k):
    if k == len(xs):
        return 0.0
    return anp.sum(xs[k] ** 2) * (k + 1) + anp_sum_list(xs, k + 1)


def tree_pair(M, lo, hi):
    """Tree recursion returning a tuple (a sum and a sum of squares) over M[lo:hi]'s
    diagonal, read an element at a time."""
    if hi - lo == 1:
        v = M[lo, lo]
        return v, v * v
    mid = (lo + hi) // 2
    a, b = tree_pair(M, lo, mid)
    c, d = tree_pair(M, mid, hi)
    return a + c, b + d * M[mid, lo]


def tree_energy(M):
    s, q = tree_pair(M, 0, M.shape[0])
    return s * q


def even_part(A, i):
    """Mutual recursion: even and odd rows read by two functions calling each other."""
    if i >= A.shape[0]:
        return 0.0
    return A[i, 0] * A[i, 1] + odd_part(A, i + 1)


def odd_part(A, i):
    if i >= A.shape[0]:
        return 1.0
    return A[i, 1] - 0.5 * even_part(A, i + 1)


def mutual_energy(A):
    return even_part(A, 0)


def search(A, i, acc):
    """Recursion with an early return in the middle of the body: stops at the first
    negative diagonal element (data-dependent depth)."""
    if i == A.shape[0]:
        return acc
    if A[i, i] < 0.0:
        return acc * A[i, i]
    acc = acc + A[i, i] * A[i, (i + 2) % A.shape[0]]
    return search(A, i + 1, acc)


def search_energy(A):
    return search(A, 0, 1.0)


def kept_columns(A, row, cols):
    """A list of columns filtered by comprehensions (the benchmark's determinant's
    spelling, here with a weighted sum of minors): the comprehension over ints is not
    differentiated, and the columns' kind reaches the recursive call."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for c in cols:
        rest = [d for d in cols if d != c]
        total = total + (1.0 + 0.1 * c) * A[row, c] * kept_columns(A, row + 1, rest)
    return total


def kept_energy(A):
    return kept_columns(A, 0, list(range(A.shape[0])))


def _check_fd(fn, x, g, seed=7, rel=1e-6):
    rng = np.random.default_rng(seed)
    for _ in range(2):
        t = rng.standard_normal(x.shape)
        fd = directional_fd(fn, (x,), (0,), (t,))
        assert float(np.sum(g * t)) == pytest.approx(fd, rel=rel, abs=1e-8)


def test_recursive_sum_over_a_list_of_arrays():
    rng = np.random.default_rng(11)
    xs = [rng.standard_normal(4) for _ in range(5)]
    w = rng.standard_normal(4)
    g = tl.grad(sum_list_energy)(w, xs)
    expected = autograd.grad(lambda v: anp_sum_list([x * v for x in xs], 0))(w)
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    _check_fd(lambda v: sum_list_energy(v, xs), w, g)


@pytest.mark.parametrize("n", [3, 9])  # (below and above the sparse threshold)
def test_tree_recursion_returning_tuples(n):
    M = _data((n, n), 12)
    g = tl.grad(tree_energy)(M)
    expected = autograd.grad(lambda m: (lambda p: p[0] * p[1])(tree_pair(m, 0, n)))(M)
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)
    _check_fd(tree_energy, M, g)


@pytest.mark.parametrize("n", [5, 12])
def test_mutual_recursion(n):
    A = _data((n, 2), 13)
    g = tl.grad(mutual_energy)(A)
    np.testing.assert_allclose(g, autograd.grad(lambda a: even_part(a, 0))(A), rtol=1e-12,
                               atol=1e-14)
    _check_fd(mutual_energy, A, g)


@pytest.mark.parametrize("seed", [14, 15, 16])
def test_recursion_with_early_return(seed):
    A = _data((9, 9), seed)
    A[np.diag_indices(9)] = np.abs(np.diag(A)) + 0.1
    A[5, 5] = -0.7 if seed != 16 else 0.7  # (seed 16: no early return)
    g = tl.grad(search_energy)(A)
    assert search_energy(A) == pytest.approx(tl.jit(search_energy)(A), rel=1e-14)
    _check_fd(search_energy, A, g)
    if seed != 16:
        assert not g[6:].any()  # (the rows after the early return do not count)


@pytest.mark.parametrize("n", [3, 4, 5])
def test_filtered_columns_recursion_against_autograd(n):
    A = _data((n, n), 17)
    expected = autograd.grad(lambda a: kept_columns(a, 0, list(range(n))))(A)
    g = tl.grad(kept_energy)(A)
    np.testing.assert_allclose(g, expected, rtol=1e-11, atol=1e-12)


def test_filtered_columns_are_not_differentiated():
    # The columns are not differentiated: no derivative of the comprehension is made
    # (no backpropagator of its function), and their kind (a list of ints) reaches the
    # recursive calls: no `as_sequence` of them.
    A = _data((4, 4), 17)
    source = tl.grad(kept_energy).source_for(A)
    assert "B_comprehension" not in source and "as_sequence" not in source
    assert "as_sequence" not in tl.jit(kept_energy).source_for(A)


def test_recursion_second_order():
    # Hessian-vector products through the recursions, against autograd.
    A = _data((5, 5), 18)
    v = _data((5, 5), 19)
    for fn, ref in [(kept_energy, lambda a: kept_columns(a, 0, list(range(5)))),
                    (mutual_energy, lambda a: even_part(a, 0))]:
        x = A if fn is kept_energy else A[:, :2].copy()
        t = v if fn is kept_energy else v[:, :2].copy()
        hv = tl.jvp(tl.grad(fn), (x,), (t,))[1]
        expected = autograd.grad(lambda a: anp.sum(autograd.grad(ref)(a) * t))(x)
        np.testing.assert_allclose(hv, expected, rtol=1e-10, atol=1e-12)
        gg = tl.grad(lambda a: np.sum(tl.grad(fn)(a) * t))(x)
        np.testing.assert_allclose(gg, expected, rtol=1e-10, atol=1e-12)


def test_recursion_reads_use_the_helper_without_index_tests():
    # The reads' indices are ints by their kinds: the sum into what the recursive call
    # gave back does not test them again (`scatter_add_known`, in place: it is owned;
    # its two pieces given as they are, `scatter_add_pair_known`; or, the recursion
    # unwound, by statements into one float64 array, `acc[i] += d`).
    source = _backward_source(diagonal_energy, _data((40, 40)))
    assert "scatter_add_pair_known(" in source or source.count("] += ") == 2


def test_scatter_onto_known_gives_what_scatter_onto_gives():
    x = np.zeros((10, 10))
    for acc in (rt.ZERO, rt.scatter_sens(x, ((1, 2),), (1.0,)), np.arange(100.0).reshape(10, 10)):
        for indices, ds in [(((3, 4), (1, 2)), (2.0, np.float64(0.5))),
                            (((3, 4), (3, 4)), (2.0, 0.25)),
                            ((3,), (np.arange(10.0),)),
                            (((5, 5),), (rt.ZERO,))]:
            a = rt.scatter_onto_known(acc, x, indices, ds)
            b = rt.scatter_onto(acc, x, indices, ds)
            if b is rt.ZERO:
                assert a is rt.ZERO
                continue
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # (a handle shared: the other's pieces are not seen)
    base = rt.scatter_sens(x, ((1, 2),), (1.0,))
    a = rt.scatter_onto_known(base, x, ((3, 4),), (2.0,))
    b = rt.scatter_onto_known(base, x, ((5, 5),), (7.0,))
    assert np.asarray(a)[5, 5] == 0.0 and np.asarray(b)[3, 4] == 0.0
    assert np.asarray(base).sum() == 1.0
