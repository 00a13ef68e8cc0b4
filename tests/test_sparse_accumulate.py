"""Cheap sensitivities for programs that read an array a few elements at a time
(issue 12): a loop's sparse accumulator takes its pieces in place and turns dense past a
fraction of the array, an element read of a float64 array skips the general checks, and
the items of an `if`'s result that derivative code never reads (the sensitivity of an
integer computed beside the floats) are not computed. Checked against hand-written
gradients, finite differences and the dense sensitivities, in spellings other than the
benchmark's (bench/control_programs.py)."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import directional_fd

import tapeless as tl
from tapeless import runtime as rt
from tapeless import sparse_sens
from tapeless.sparse_sens import IndexedSens

# --- programs ---------------------------------------------------------------------------


def chain(M, k):
    """A recursion with the base case last, an index computed with `%` from M's shape."""
    rows, cols = M.shape
    if k < rows:
        j = (5 * k + 2) % cols
        return M[k, j] * M[j, k] - chain(M, k + 1) * 0.5
    return 0.0


def chain_energy(M):
    return chain(M, 0)


def chain_while(M):
    """Two reads per step of a `while` loop, the counter stepped by `+=`."""
    n = M.shape[1]
    k = 0
    acc = 0.0
    while k < n:
        j = (5 * k + 2) % n
        acc = acc + M[k, j] * M[j, k]
        k += 1
    return acc


def chain_while_grad(M):
    n = M.shape[1]
    G = np.zeros_like(M)
    for k in range(n):
        j = (5 * k + 2) % n
        G[k, j] += M[j, k]
        G[j, k] += M[k, j]
    return G


def chain_energy_grad(M):
    n = len(M)
    G = np.zeros_like(M)
    scale = 1.0
    for k in range(n):
        j = (5 * k + 2) % n
        G[k, j] += scale * M[j, k]
        G[j, k] += scale * M[k, j]
        scale *= -0.5
    return G


def halves(v, lo, hi):
    """A recursion over halves of a vector, reading one element at each leaf; the
    midpoint by floor division."""
    if hi - lo > 1:
        mid = lo + (hi - lo) // 2
        return halves(v, lo, mid) + 2.0 * halves(v, mid, hi)
    return v[lo] ** 2


def halves_energy(v):
    return halves(v, 0, np.shape(v)[0])


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _dense_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse_sens, "SPARSE_MIN_SIZE", 1 << 62)


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [6, 40])  # (below and above the sparse threshold)
@pytest.mark.parametrize("fn, hand", [(chain_energy, chain_energy_grad),
                                      (chain_while, chain_while_grad)],
                         ids=["recursion", "while"])
def test_against_hand_written(fn, hand, n):
    M = _data((n, n))
    g = tl.grad(fn)(M)
    assert type(g) is np.ndarray and g.dtype == np.float64 and g.shape == M.shape
    np.testing.assert_allclose(g, hand(M), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("fn", [chain_energy, chain_while])
def test_same_as_dense_sensitivities(fn, monkeypatch):
    M = _data((30, 30), 1)
    sparse = tl.grad(fn)(M)
    _dense_everywhere(monkeypatch)
    dense = tl.grad(fn)(M)
    np.testing.assert_allclose(sparse, dense, rtol=1e-13, atol=1e-14)


def test_recursion_over_halves_against_finite_differences():
    v = _data(96, 2)
    g = tl.grad(halves_energy)(v)
    for seed in (3, 4):
        direction = _data(96, seed)
        fd = directional_fd(halves_energy, (v,), (0,), (direction,))
        assert float(np.sum(g * direction)) == pytest.approx(fd, rel=1e-7, abs=1e-9)


def test_long_loop_turns_dense_with_the_same_values(monkeypatch):
    # A loop reading every element of a small-enough array: past 1/SPARSE_FRACTION of
    # it the accumulator is the dense array, with the sums the pieces give.
    def every(M):
        total = 0.0
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                total = total + M[i, j] * M[j, i] * (i + 1)
        return total

    M = _data((12, 12), 5)
    g = tl.grad(every)(M)
    expected = np.array([[M[j, i] * (i + 1) + M[j, i] * (j + 1) for j in range(12)]
                         for i in range(12)])
    np.testing.assert_allclose(g, expected, rtol=1e-13)


# --- the dead items of an `if`'s result -------------------------------------------------


def test_integer_sensitivities_are_not_computed():
    # `%` and `//` on ints have derivatives in their divisor (floor_divide), which an
    # integer never needs; the recursive gradient's `if` returned them unread.
    M = _data((9, 9))
    src = tl.grad(chain_energy).source_for(M)
    assert "floor_divide" not in src
    assert "floor_divide" not in tl.grad(halves_energy).source_for(_data(16))


def test_items_still_read_are_kept():
    # Both items of the `if`'s tuple are used: nothing may be dropped.
    def pick(x, flag):
        if flag:
            a, b = x[0] * 2.0, x[1] * 3.0
        else:
            a, b = x[1] * 5.0, x[0] * 7.0
        return a * b + a

    x = np.array([1.5, -0.5, 2.0])
    for flag in (True, False):
        g = tl.grad(pick)(x, flag)
        h = 1e-6
        fd = [(pick(x + h * e, flag) - pick(x - h * e, flag)) / (2 * h) for e in np.eye(3)]
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


# --- the runtime's accumulators ---------------------------------------------------------


def _piece(shape, index, d):
    return IndexedSens(shape, None, [(index, d)], 1)


def test_scatter_add_appends_in_place_with_gadds_values():
    x = np.zeros((20, 20))
    acc = rt.scatter_add(rt.ZERO, x, ((0, 1), (2, 3)), (1.0, 2.0))
    assert type(acc) is IndexedSens
    reference = rt.gadd(_piece((20, 20), (0, 1), 1.0), _piece((20, 20), (2, 3), 2.0))
    for k in range(5):
        ds = (0.5 * k, rt.ZERO)
        acc2 = rt.scatter_add(acc, x, ((k, k + 10), (1, 1)), ds)
        assert acc2 is acc  # (in place)
        reference = rt.gadd(reference, rt.scatter_sens(x, ((k, k + 10), (1, 1)), ds))
    np.testing.assert_array_equal(np.asarray(acc), np.asarray(reference))


def test_scatter_add_leaves_a_shared_prefix_alone():
    x = np.zeros((20, 20))
    base = _piece((20, 20), (0, 0), 1.0)
    other = rt.gadd(base, _piece((20, 20), (1, 1), 2.0))  # extends base's list
    acc = rt.scatter_add(base, x, ((2, 2),), (3.0,))  # base no longer at the end
    np.testing.assert_array_equal(np.asarray(acc), np.diag([1.0, 0, 3.0] + [0] * 17))
    np.testing.assert_array_equal(np.asarray(other), np.diag([1.0, 2.0] + [0] * 18))
    np.testing.assert_array_equal(np.asarray(base), np.diag([1.0] + [0] * 19))


def test_scatter_add_turns_dense_past_the_fraction():
    x = np.zeros((8, 8))
    acc = rt.scatter_add(rt.ZERO, x, ((0, 0),), (1.0,))
    expected = np.zeros((8, 8))
    expected[0, 0] = 1.0
    for k in range(1, 20):
        acc = rt.scatter_add(acc, x, ((k % 8, k // 8),), (float(k),))
        expected[k % 8, k // 8] += k
    assert type(acc) is np.ndarray
    np.testing.assert_array_equal(acc, expected)


@pytest.mark.parametrize("shape", [(4, 4), (20, 20)])
@pytest.mark.parametrize("index", [(1, 2), (np.int64(1), 2)])
@pytest.mark.parametrize("d", [1.5, np.float64(-2.0)])
def test_element_read_sensitivity_fast_path_agrees(shape, index, d):
    x = np.ones(shape)
    s = rt.getitem_sens(d, x, index)
    expected = np.zeros(shape)
    expected[1, 2] = d
    np.testing.assert_array_equal(np.asarray(s), expected)
    assert type(s) is (IndexedSens if x.size >= sparse_sens.SPARSE_MIN_SIZE else
                       np.ndarray)


def test_to_structure_of_a_sparse_sensitivity_is_a_new_array():
    x = np.zeros((10, 10))
    s = rt.scatter_sens(x, ((1, 1), (2, 2)), (1.0, 2.0))
    g = rt.to_structure(s, x)
    assert type(g) is np.ndarray and g.flags.owndata and g is not x
    np.testing.assert_array_equal(g, np.diag([0, 1.0, 2.0] + [0] * 7))


# --- comprehensions in the activity analysis ------------------------------------------


def picked(x, idx):
    keep = [i for i in idx if i % 2 == 0]  # (over ints: never varied)
    vals = [x[i] * x[i] for i in keep]  # (an int item; the result varied through x)
    doubled = [v * 2.0 for v in list(x[:3])]  # (over x's values: varied)
    return sum(vals) + doubled[0] * doubled[2]


def test_a_comprehension_over_ints_stays_not_varied():
    from tapeless.ad.activity import Activity
    from tapeless.grad_api import graph_of

    act = Activity(graph_of(picked), (0,))
    comps = [g for g in act.graphs if g.name.startswith("comprehension")]
    assert len(comps) >= 3
    varied = sorted(g.parameters[0].id in act.varied for g in comps)
    assert varied.count(True) == 1, [(g.name, g.parameters[0].id in act.varied)
                                     for g in comps]
    x = np.array([0.5, -1.5, 2.0, 3.0, -0.25])
    idx = [0, 1, 2, 4]
    g = tl.grad(picked)(x, idx)
    expected = np.zeros(5)
    for i in (0, 2, 4):
        expected[i] += 2 * x[i]
    expected[0] += 4.0 * x[2]
    expected[2] += 4.0 * x[0]
    np.testing.assert_allclose(g, expected, rtol=1e-14)
