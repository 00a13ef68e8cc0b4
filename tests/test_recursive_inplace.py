"""A recursion's element reads added in place into what the recursive call's
backpropagator gave back (issue 12, `opt.scatter.OwnedSlots`): where that value is proven
owned (ZERO from the base case, or a float64 array made by the same in-place sum, read
once), the generated code adds into it in place (`scatter_add_known`); where it is not
(the base case gives back a view of the cotangent, a parameter whose shape changes from
call to call), it keeps the sums that leave their accumulator alone. Gradients are
checked against autograd and finite differences, with arguments of several kinds (ints,
float arrays, lists, np.float64 scalars), and a `vjp` whose backpropagator is called
twice (each call gets its own buffer)."""

from __future__ import annotations

import re

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import directional_fd

import tapeless as tl


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- programs ---------------------------------------------------------------------------


def cross_walk(A, i):
    """Two element reads per call, the recursive call last; ints as the index."""
    n = A.shape[0]
    if i == n:
        return 0.0
    return A[i, (2 * i) % n] * A[(i + 1) % n, i] + cross_walk(A, i + 1)


def cross_energy(A):
    return cross_walk(A, 0)


def scaled_walk(A, i, scale):
    """A np.float64 scale passed down the recursion (its kind: a NumPy scalar)."""
    n = A.shape[0]
    if i == n:
        return scale * 0.0
    return scale * A[i, i] + scaled_walk(A, i + 1, scale * np.float64(0.5))


def scaled_energy(A):
    return scaled_walk(A, 0, np.float64(1.5))


def summed_walk(A, i):
    """The base case sums the whole array: its backpropagator gives back the cotangent
    broadcast (a view nothing may write into): no sum in place."""
    n = A.shape[0]
    if i == n:
        return np.sum(A)
    return A[i, i] * A[i, 0] + summed_walk(A, i + 1)


def summed_energy(A):
    return summed_walk(A, 0)


def twice_walk(A, i):
    """The recursive call's value used twice (its sensitivity is one sum)."""
    n = A.shape[0]
    if i == n:
        return 1.0
    rest = twice_walk(A, i + 1)
    return A[i, i] * rest + 0.5 * rest * A[i, n - 1 - i]


def twice_energy(A):
    return twice_walk(A, 0)


def tree_walk(A, i):
    """Two recursive calls per call: the two sensitivities are added (not owned by the
    rules: gadd), the gradient must still be right."""
    n = A.shape[0]
    if i >= n:
        return 0.0
    return A[i, i] * tree_walk(A, i + 1) * 0.5 + A[i, 0] + tree_walk(A, i + 2) * 0.25


def tree_energy(A):
    return tree_walk(A, 0)


def shrinking(x, i):
    """The parameter's shape changes from call to call (x[1:]): its kind is unknown in
    the recursion, and nothing is specialized on one shape."""
    if x.shape[0] == 1:
        return x[0] * x[0]
    return x[0] * np.float64(i) + shrinking(x[1:], i + 1) * 0.75


def shrinking_energy(x):
    return shrinking(x, 1)


def list_walk(xs, i, A):
    """A list of floats and an array, read an element at a time."""
    if i == len(xs):
        return 0.0
    return xs[i] * A[i, i] + list_walk(xs, i + 1, A)


def list_energy(A, xs):
    return list_walk(xs, 0, A)


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 12, 70])
def test_cross_walk_against_autograd(n):
    A = _data((n, n), n)
    np.testing.assert_allclose(tl.grad(cross_energy)(A), autograd.grad(cross_energy)(A),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n", [2, 9, 80])
def test_numpy_scalar_argument_against_autograd(n):
    A = _data((n, n), n)
    expected = autograd.grad(lambda a: scaled_walk(a, 0, 1.5))(A)
    np.testing.assert_allclose(tl.grad(scaled_energy)(A), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n", [3, 70])
def test_base_case_view_is_not_written_into(n):
    A = _data((n, n), n)
    g = tl.grad(summed_energy)(A)
    np.testing.assert_allclose(g, autograd.grad(lambda a: summed_walk(a, 0))(A), rtol=1e-13)
    # (called again: what the first call gave back is left as it is)
    again = tl.grad(summed_energy)(A)
    np.testing.assert_array_equal(g, again)


@pytest.mark.parametrize("n", [2, 8, 70])
def test_value_used_twice_against_autograd(n):
    A = _data((n, n), n) * 0.5
    np.testing.assert_allclose(tl.grad(twice_energy)(A), autograd.grad(twice_energy)(A),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [3, 9])
def test_two_recursive_calls_against_autograd(n):
    A = _data((n, n), n)
    np.testing.assert_allclose(tl.grad(tree_energy)(A), autograd.grad(tree_energy)(A),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [1, 4, 9])
def test_changing_parameter_shape_against_autograd(n):
    x = _data((n,), n)
    expected = autograd.grad(lambda v: shrinking(v, 1))(x)
    np.testing.assert_allclose(tl.grad(shrinking_energy)(x), expected, rtol=1e-13)


def test_list_and_array_arguments_against_finite_differences():
    A = _data((70, 70), 3)
    xs = [float(v) for v in _data((70,), 4)]
    gA, gx = tl.grad(list_energy, argnums=(0, 1))(A, xs)
    np.testing.assert_allclose(gA, autograd.grad(lambda a: list_walk(xs, 0, a))(A),
                               rtol=1e-13)
    expected_x = autograd.grad(lambda v: list_walk(v, 0, anp.asarray(A)))(np.array(xs))
    np.testing.assert_allclose(np.array(gx), expected_x, rtol=1e-13)
    t = _data((70, 70), 5)
    fd = directional_fd(list_energy, (A, xs), (0,), (t,))
    assert float(np.sum(gA * t)) == pytest.approx(fd, rel=1e-7)


def test_vjp_called_twice_gets_new_buffers():
    A = _data((70, 70), 6)
    value, backprop = tl.vjp(cross_energy, A)
    assert value == pytest.approx(cross_energy(A), rel=1e-14)
    (first,) = backprop(1.0)
    kept = first.copy()
    (second,) = backprop(2.0)
    np.testing.assert_array_equal(first, kept)  # (not added into again)
    np.testing.assert_allclose(second, 2.0 * kept, rtol=1e-15)
    np.testing.assert_allclose(kept, autograd.grad(cross_energy)(A), rtol=1e-13)


def test_each_gradient_is_a_new_array():
    A = _data((70, 70), 7)
    grad = tl.grad(cross_energy)
    first = grad(A)
    kept = first.copy()
    first[:] = 99.0  # (the caller owns what it got: the next call does not see it)
    np.testing.assert_array_equal(grad(A), kept)
    np.testing.assert_array_equal(A, _data((70, 70), 7))


# --- the generated code -----------------------------------------------------------------


def _source(fn, *args):
    return tl.grad(fn).source_for(*args)


def test_owned_sensitivity_is_added_into_in_place(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = _source(cross_energy, _data((70, 70)))
    # (two reads per call: their pieces given as they are, `scatter_add_pair_known`,
    # or, the recursion unwound, added by statements into one array, `acc[i] += d`)
    assert "scatter_add_known" in source or "scatter_add_pair_known" in source or \
        "] += " in source
    assert "scatter_onto" not in source and "scatter_sens" not in source
    # (numbers, by their kinds: no generic helper on the element products)
    assert "unbroadcast" not in source and "isinstance" not in source


def test_view_from_the_base_case_is_not_owned(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = _source(summed_energy, _data((70, 70)))
    assert "scatter_add_known" not in source and "scatter_onto" in source


def test_shape_changing_recursion_is_not_specialized(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = _source(shrinking_energy, _data((9,)))
    assert "scatter_add_known" not in source
    # (x's shape differs between the calls: no size of it is written into the code)
    assert re.search(r"(?<![\w.])9(?![\w.])", source) is None
