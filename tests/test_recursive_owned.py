"""Recursions whose base case reads an element of a small array (issue 12: the recursive
determinant, branch rec15): the value the base case saved is read, in its
backpropagator, with the kind that branch gave it (`opt.kinds.item_nodes` given the
reading graph), so its index is known to be ints; the base case's one-element
sensitivity of a small float64 array is a new array, a value-`if`'s sensitivity picks
one branch's, and a backward loop's sum of owned values stays owned
(`opt.scatter.OwnedSlots`): each call's element reads are added in place into what the
recursive call gave back (`scatter_add_known`). Gradients are checked against the
closed form (d det A / dA = det A · A⁻ᵀ), autograd and finite differences, with
recursion depths that change between calls, two recursive calls summed, second order
through the recursion and a backpropagator called twice."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
from gradcheck import directional_fd
from research_programs import det_laplace, det_laplace_filter, det_minor

import tapeless as tl


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- programs (the determinants: research_programs.py) ---------------------------------


def tree_product(x, lo, hi):
    """Two recursive calls whose sensitivities are summed, a read in each leaf and one
    in each inner call (1-d array, int indices)."""
    if hi - lo == 1:
        return x[lo] * x[lo]
    mid = (lo + hi) // 2
    return x[mid] * tree_product(x, lo, mid) + tree_product(x, mid, hi) * x[lo]


def tree_energy(x):
    return tree_product(x, 0, x.shape[0])


def squared_det(A):
    d = det_laplace(A)
    return d * d


def det_grad_norm(A):
    g = tl.grad(det_laplace)(A)
    return np.sum(g * g)


def _det_grad(A):
    return np.linalg.det(A) * np.linalg.inv(A).T


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [det_laplace, det_laplace_filter])
def test_determinant_against_closed_form(fn):
    grad = tl.grad(fn)
    # (one compiled function, recursions of several depths, each size twice)
    for n in (4, 2, 5, 1, 3, 5, 4):
        A = _data((n, n), n)
        assert fn(A) == pytest.approx(np.linalg.det(A), rel=1e-10)
        np.testing.assert_allclose(grad(A), _det_grad(A), rtol=1e-9, atol=1e-12)


def test_determinant_value_and_grad_against_autograd():
    A = _data((5, 5), 11)
    value, g = tl.value_and_grad(det_laplace_filter)(A)
    assert value == pytest.approx(det_laplace_filter(A), rel=1e-14)
    np.testing.assert_allclose(g, autograd.grad(det_laplace)(A), rtol=1e-12, atol=1e-14)


def test_two_recursive_calls_summed_against_autograd():
    grad = tl.grad(tree_energy)
    for n in (1, 2, 7, 16, 5):
        x = _data((n,), n) + 1.5
        np.testing.assert_allclose(grad(x), autograd.grad(tree_energy)(x), rtol=1e-12)


def test_large_array_read_in_the_base_case_against_finite_differences():
    # (70 × 70 is above the size where one read's sensitivity is kept sparse)
    A = _data((70, 70), 3)

    def corner_det(A):
        return det_minor(A, 0, [0, 5, 9]) + det_minor(A, 1, [3, 69])

    t = _data((70, 70), 4)
    fd = directional_fd(corner_det, (A,), (0,), (t,))
    assert float(np.sum(tl.grad(corner_det)(A) * t)) == pytest.approx(fd, rel=1e-7)


def test_chain_through_the_recursion_against_closed_form():
    A = _data((4, 4), 5)
    np.testing.assert_allclose(tl.grad(squared_det)(A), 2 * np.linalg.det(A) * _det_grad(A),
                               rtol=1e-9)


def test_second_order_through_the_recursion_against_finite_differences():
    A = _data((3, 3), 8)
    t = _data((3, 3), 9)
    fd = directional_fd(det_grad_norm, (A,), (0,), (t,))
    assert float(np.sum(tl.grad(det_grad_norm)(A) * t)) == pytest.approx(fd, rel=1e-6)


def test_vjp_called_twice_gets_new_buffers():
    A = _data((4, 4), 6)
    value, backprop = tl.vjp(det_laplace, A)
    assert value == pytest.approx(np.linalg.det(A), rel=1e-12)
    (first,) = backprop(1.0)
    kept = first.copy()
    (second,) = backprop(-3.0)
    np.testing.assert_array_equal(first, kept)  # (not added into again)
    np.testing.assert_allclose(second, -3.0 * kept, rtol=1e-13)  # (rounding: -3 enters first)
    np.testing.assert_allclose(kept, _det_grad(A), rtol=1e-10)


def test_each_gradient_is_a_new_array():
    A = _data((4, 4), 7)
    grad = tl.grad(det_laplace)
    first = grad(A)
    kept = first.copy()
    first[:] = 99.0
    np.testing.assert_array_equal(grad(A), kept)
    np.testing.assert_array_equal(A, _data((4, 4), 7))


# --- the generated code -----------------------------------------------------------------


@pytest.mark.parametrize("fn", [det_laplace, det_laplace_filter])
def test_determinant_sums_in_place(monkeypatch, fn):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = tl.grad(fn).source_for(_data((5, 5)))
    # (in place into what the recursive call gave back, or, where the recursion is given
    # an array of zeros to add into, `lift.accumulate_down`, by statements)
    assert "scatter_add_known" in source or "] += " in source
    assert "scatter_onto" not in source and "scatter_sens" not in source


def test_large_array_base_case_is_not_owned(monkeypatch):
    # (one element's sensitivity of a large array is sparse: not added into in place)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = tl.grad(det_laplace).source_for(_data((70, 70)))
    assert "scatter_add_known" not in source


# --- the sensitivity of an `if`'s branches (`zeros._gadd_of_one_branch`) -----------------


def alternating(x, y, n):
    """A value-`if` per step, each branch reading both arguments and the state."""
    total = 0.0
    for k in range(n):
        term = x * y + k
        total = total + term * x if k % 2 == 0 else total - term / y
    return total


def branch_then_square(x, y):
    z = x * y if x > y else x - y
    return z * z + (y if x > 0.5 else x)


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.parametrize("n", [0, 1, 4, 7])
def test_value_if_per_step_against_autograd(n):
    for x, y in ((0.7, 1.3), (-1.1, 0.4)):
        got = tl.grad(alternating, argnums=(0, 1))(x, y, n)
        want = (autograd.grad(alternating, 0)(x, y, n), autograd.grad(alternating, 1)(x, y, n))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_branch_sensitivities_second_order_against_autograd():
    for x, y in ((0.9, 0.2), (0.1, 0.6), (0.3, -0.2)):  # (each pair of branches)
        got = tl.grad(tl.grad(branch_then_square, argnums=1))(x, y)
        want = autograd.grad(autograd.grad(branch_then_square, 1))(x, y)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
