"""Sparse sensitivities of element and slice reads (tapeless.sparse_sens): gradients of
programs reading an array one element or row at a time, through recursion, loops and
closures, at first and second order, against finite differences, autograd, and the
dense sensitivities they replace (to rounding: an element read several times may get
its terms added in another order); the sharing rules of `IndexedSens`."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import directional_fd
from research_programs import det_laplace

import tapeless as tl
from tapeless import runtime as rt
from tapeless import sparse_sens
from tapeless.sparse_sens import IndexedSens

# --- programs -------------------------------------------------------------------------


def walk(A, i):
    n = A.shape[0]
    if i == n:
        return 0.0
    return A[i, i] * A[i, (3 * i + 1) % n] + walk(A, i + 1)


def walk_energy(A):
    return walk(A, 0)




def rows_while(A, v):
    """A while loop reading whole rows and single elements of a large array."""
    i = 0
    total = 0.0
    while i < A.shape[0]:
        total = total + np.sum(A[i] * v) * A[i, i % v.shape[0]] + A[i, 0] ** 2
        i = i + 3
    return total


def closure_reads(x):
    def term(k):
        return x[k] * x[(k * 5) % x.shape[0]]

    total = 0.0
    for k in range(0, x.shape[0], 2):
        total = total + term(k)
    return total


def tree(x, lo, hi):
    if hi - lo == 1:
        return x[lo] * x[lo] * x[lo]
    mid = (lo + hi) // 2
    return tree(x, lo, mid) * 0.5 + tree(x, mid, hi)


def tree_energy(x):
    return tree(x, 0, x.shape[0])


def nested_reads(A):
    """A derivative taken inside the program, of a function that reads elements."""
    inner = tl.grad(walk_energy)(A)
    return np.sum(inner * inner) + walk_energy(A)


def _rng(seed=0):
    return np.random.default_rng(seed)


def check_fd(fn, args, nums, grads, rtol=1e-7):
    """The gradient along two random directions against finite differences."""
    for seed in (11, 12):
        r = _rng(seed)
        direction = tuple(r.standard_normal(np.shape(args[a])) for a in nums)
        exact = sum(float(np.sum(g * v)) for g, v in zip(grads, direction, strict=True))
        fd = directional_fd(fn, args, nums, direction)
        assert exact == pytest.approx(fd, rel=rtol, abs=1e-9)


CASES = [
    (walk_energy, lambda: (_rng().standard_normal((12, 12)),), 0),
    (det_laplace, lambda: (_rng().standard_normal((5, 5)) + 2 * np.eye(5),), 0),
    (rows_while, lambda: (_rng().standard_normal((40, 16)), _rng(1).standard_normal(16)),
     (0, 1)),
    (closure_reads, lambda: (_rng().standard_normal(200),), 0),
    (tree_energy, lambda: (_rng().standard_normal(128),), 0),
]


def _dense_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse_sens, "SPARSE_MIN_SIZE", 1 << 62)


def _sparse_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse_sens, "SPARSE_MIN_SIZE", 1)
    monkeypatch.setattr(sparse_sens, "SPARSE_FRACTION", 1)


# --- first order ------------------------------------------------------------------------


@pytest.mark.parametrize("fn, data, argnums", CASES, ids=[c[0].__name__ for c in CASES])
def test_matches_finite_differences(fn, data, argnums, optimize, monkeypatch):
    _sparse_everywhere(monkeypatch)
    args = data()
    g = tl.grad(fn, argnums=argnums)(*args)
    gs = g if isinstance(g, tuple) else (g,)
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    for k, a in enumerate(nums):
        assert type(gs[k]) is np.ndarray and gs[k].shape == args[a].shape
    check_fd(fn, args, nums, gs)


@pytest.mark.parametrize("fn, data, argnums", CASES, ids=[c[0].__name__ for c in CASES])
def test_same_bits_as_dense(fn, data, argnums, optimize, monkeypatch):
    args = data()
    _sparse_everywhere(monkeypatch)
    sparse = tl.grad(fn, argnums=argnums)(*args)
    _dense_everywhere(monkeypatch)
    dense = tl.grad(fn, argnums=argnums)(*args)
    for s, d in zip(sparse if isinstance(sparse, tuple) else (sparse,),
                    dense if isinstance(dense, tuple) else (dense,), strict=True):
        # (An element read more than once may get its terms added in another order:
        # dense sums add partial sums, the pieces are added one by one.)
        np.testing.assert_allclose(s, d, rtol=1e-13, atol=1e-14)


def test_determinant_against_closed_form(monkeypatch):
    _sparse_everywhere(monkeypatch)
    A = _rng(3).standard_normal((6, 6))
    g = tl.grad(det_laplace)(A)
    np.testing.assert_allclose(g, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-10,
                               atol=1e-12)


def test_against_autograd(monkeypatch):
    autograd = pytest.importorskip("autograd")
    _sparse_everywhere(monkeypatch)
    A = _rng(4).standard_normal((9, 9))
    np.testing.assert_allclose(tl.grad(walk_energy)(A), autograd.grad(walk_energy)(A),
                               rtol=1e-13, atol=1e-15)


def test_value_and_grad_and_vjp_give_arrays(monkeypatch):
    _sparse_everywhere(monkeypatch)
    A = _rng(5).standard_normal((10, 10))
    value, g = tl.value_and_grad(walk_energy)(A)
    assert value == pytest.approx(walk_energy(A))
    assert type(g) is np.ndarray
    out, back = tl.vjp(walk_energy, A)
    (d,) = back(2.0)
    assert type(d) is np.ndarray
    np.testing.assert_allclose(d, 2.0 * g, rtol=1e-14)


# --- second order -----------------------------------------------------------------------


def test_gradient_inside_the_program(optimize, monkeypatch):
    _sparse_everywhere(monkeypatch)
    A = _rng(6).standard_normal((7, 7))
    g = tl.grad(nested_reads)(A)
    check_fd(nested_reads, (A,), (0,), (g,), rtol=1e-6)


def test_hessian_vector_product(optimize, monkeypatch):
    _sparse_everywhere(monkeypatch)
    x = _rng(7).standard_normal(16)
    v = _rng(8).standard_normal(16)
    hv = tl.grad(lambda y: np.sum(tl.grad(tree_energy)(y) * v))(x)
    eps = 1e-6
    fd = (tl.grad(tree_energy)(x + eps * v) - tl.grad(tree_energy)(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def test_hessian(monkeypatch):
    _sparse_everywhere(monkeypatch)
    A = _rng(9).standard_normal((4, 4))
    H = tl.hessian(walk_energy)(A)
    _dense_everywhere(monkeypatch)
    np.testing.assert_allclose(H, tl.hessian(walk_energy)(A), rtol=1e-14, atol=1e-15)


# --- IndexedSens ------------------------------------------------------------------------


def _piece(shape, index, d):
    return IndexedSens(shape, None, [(index, d)], 1)


def test_sums_that_share_a_prefix_do_not_see_each_other():
    base = _piece((3, 3), (0, 0), 1.0)
    a = rt.gadd(base, _piece((3, 3), (1, 1), 2.0))
    b = rt.gadd(base, _piece((3, 3), (2, 2), 3.0))  # base is used twice
    np.testing.assert_array_equal(np.asarray(a), np.diag([1.0, 2.0, 0.0]))
    np.testing.assert_array_equal(np.asarray(b), np.diag([1.0, 0.0, 3.0]))
    np.testing.assert_array_equal(np.asarray(base), np.diag([1.0, 0.0, 0.0]))


def test_dense_terms_and_operations():
    s = _piece((2, 3), (0, slice(1, 3)), np.array([1.0, 2.0]))
    full = np.arange(6.0).reshape(2, 3)
    total = rt.gadd(full, s)
    assert type(total) is IndexedSens
    np.testing.assert_array_equal(np.asarray(total), full + [[0, 1, 2], [0, 0, 0]])
    assert full is not np.asarray(total)  # (the dense term is never written to)
    np.testing.assert_array_equal(full, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(s * 2.0, [[0, 2, 4], [0, 0, 0]])
    np.testing.assert_array_equal(np.sum(s, axis=0), [0, 1, 2])
    assert np.shape(s) == (2, 3) and s.T.shape == (3, 2)
    np.testing.assert_array_equal(rt.to_structure(s, full), [[0, 1, 2], [0, 0, 0]])
    assert type(rt.own(s)) is np.ndarray


def test_small_or_advanced_reads_stay_dense():
    x = np.zeros((20, 20))
    assert type(rt.getitem_sens(1.0, x, (1, 2))) is IndexedSens
    assert type(rt.getitem_sens(np.ones(20), x, 3)) is IndexedSens
    assert type(rt.getitem_sens(np.ones((10, 20)), x, slice(0, 10))) is np.ndarray
    assert type(rt.getitem_sens(np.ones(2), x, (np.array([0, 1]), 0))) is np.ndarray
    assert type(rt.getitem_sens(1.0, np.zeros(4), 1)) is np.ndarray
    assert type(rt.getitem_sens(1.0, np.zeros(100, dtype=np.float32), 1)) is np.ndarray


def appended_in_a_loop(x, n):
    out = []
    for _ in range(n):
        x = x * 0.5 + 1.0
        out = out + [x, np.sin(x)]
    return out, np.arange(3.0) * x


def test_code_without_derivatives_settles_no_sparse_sensitivity():
    # (It has none: its results are returned as they are, not through `dense_sens`.)
    f = tl.jit(appended_in_a_loop)
    assert f(0.3, 3)[0] == appended_in_a_loop(0.3, 3)[0]
    assert "dense_sens" not in f.source_for(0.3, 3)
