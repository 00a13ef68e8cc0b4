"""The lifted backward pass of the recursive walk (issue 12), two rewrites made after
lifting. Two pieces added in place into a sensitivity, given as they are:
`scatter_add_known(acc, x, (i, j), (di, dj))` whose indices and pieces are tuple
displays read by nothing else is, for the Python backend, `scatter_add_pair_known(acc,
x, i, j, di, dj)` (`opt.scatter.scatter_pairs`); the helper gives `scatter_add`'s sums
to the bit (an index given twice, rows, elements, lists). And two `if`s on the same
condition, the second only passing the first's result on, are one
(`opt.branches.forwarding_ifs`). The gradients are checked against autograd and finite
differences, first and second order, through a recursion, mutual recursion and a
loop."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
from gradcheck import directional_fd
from research_programs import walk_energy

import tapeless as tl
import tapeless.opt.driver as driver
from tapeless import runtime as rt


def _anp_walk(A):
    n = A.shape[0]
    return sum(A[i, i] * A[i, (3 * i) % n] for i in range(n))


@pytest.mark.parametrize("i, j", [((1, 2), (3, 4)), ((2, 2), (2, 2)), (1, 1), (0, 5),
                                  ((0, 0), (0, 0)), (3, 2)])
def test_pair_sums_like_scatter_add_to_the_bit(i, j) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 6))
    fast, slow = rt.ZERO, rt.ZERO
    for _ in range(3):
        di, dj = (rng.standard_normal(np.shape(x[k])) if isinstance(k, int) else
                  float(rng.standard_normal()) for k in (i, j))
        fast = rt.scatter_add_pair_known(fast, x, i, j, di, dj)
        slow = rt.scatter_add(slow, x, (i, j), (di, dj))
    np.testing.assert_array_equal(rt.to_structure(fast, x), rt.to_structure(slow, x))


def test_pair_into_a_list() -> None:
    xs = [1.0, 2.0, 3.0]
    acc = rt.scatter_add_pair_known(rt.ZERO, xs, 1, 1, 0.5, 0.25)
    assert acc[1] == 0.75 and acc[0] is rt.ZERO and acc[2] is rt.ZERO
    acc = rt.scatter_add_pair_known(acc, xs, 0, 1, 2.0, 1.0)
    assert acc == [2.0, 1.75, rt.ZERO]
    rows = [np.ones(2), np.zeros(2)]
    acc = rt.scatter_add_pair_known(rt.ZERO, rows, 0, 1, np.ones(2), np.full(2, 3.0))
    acc = rt.scatter_add_pair_known(acc, rows, 0, 0, np.ones(2), np.ones(2))
    np.testing.assert_array_equal(acc[0], np.full(2, 3.0))
    np.testing.assert_array_equal(acc[1], np.full(2, 3.0))


def test_the_walk_adds_its_two_reads_as_a_pair(monkeypatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    for n in (1, 2, 5, 9, 3):  # (i == 3i % n at i = 0: an index given twice)
        A = np.random.default_rng(n).standard_normal((n, n))
        g = tl.grad(walk_energy)
        source = g.source_for(A)
        backward = source[source.index("def B_walk_fused("):]
        # (one test of the condition per level: the loop's, `opt.unwind`, the backward
        # pass fused into the forward one; the two pieces added by statements into one
        # float64 array)
        assert "J_walk" not in source, source
        assert backward.count("if ") == 0 and backward.count("while ") == 1, backward
        assert backward.count("] += ") == 2 and "scatter_add" not in source, source
        with monkeypatch.context() as m:  # (the recursion kept: the pair helper)
            m.setattr(driver, "unwind_backprops", lambda root, *_: 0)
            kept = tl.grad(walk_energy).source_for(A)
        assert "scatter_add_pair_known(" in kept and "scatter_add_known(" not in kept, kept
        np.testing.assert_allclose(g(A), autograd.grad(_anp_walk)(A), rtol=1e-13,
                                   atol=1e-14)


def test_the_walk_second_order_against_autograd_and_fd() -> None:
    A = np.random.default_rng(4).standard_normal((5, 5))
    V = np.random.default_rng(5).standard_normal((5, 5))

    def hvp(M):
        return np.sum(tl.grad(walk_energy)(M) * V)

    want = autograd.grad(lambda M: autograd.numpy.sum(autograd.grad(_anp_walk)(M) * V))(A)
    np.testing.assert_allclose(tl.grad(hvp)(A), want, rtol=1e-12, atol=1e-12)
    U = np.random.default_rng(6).standard_normal((5, 5))
    fd = directional_fd(lambda M: float(np.sum(tl.grad(walk_energy)(M) * V)), (A,), (0,),
                        (U,))
    assert np.sum(tl.grad(hvp)(A) * U) == pytest.approx(fd, rel=1e-7, abs=1e-9)


def pair_loop(x, w):
    """A loop reading two elements of x per step (one of them twice at k = 0)."""
    n = x.shape[0]
    total = 0.0
    for k in range(n):
        total = total + w * x[k] * x[(2 * k) % n]
    return total


def test_a_loop_with_two_reads_per_step_against_autograd() -> None:
    x = np.random.default_rng(7).standard_normal(7)

    def anp_loop(x, w):
        n = x.shape[0]
        return sum(w * x[k] * x[(2 * k) % n] for k in range(n))

    g = tl.grad(pair_loop, argnums=(0, 1))
    gx, gw = g(x, 1.5)
    np.testing.assert_allclose(gx, autograd.grad(anp_loop)(x, 1.5), rtol=1e-13)
    assert gw == pytest.approx(autograd.grad(anp_loop, 1)(x, 1.5), rel=1e-13)
    h = tl.hessian(lambda v: pair_loop(v, 1.5))(x)
    np.testing.assert_allclose(h, autograd.hessian(lambda v: anp_loop(v, 1.5))(x),
                               rtol=1e-12, atol=1e-12)


def even_walk(A, i):
    """Mutual recursion, each function's base case a different constant."""
    if i == A.shape[0]:
        return 0.0
    return A[i, i] * A[i, 0] + odd_walk(A, i + 1)


def odd_walk(A, i):
    if i == A.shape[0]:
        return 1.0
    return A[i, i] * np.sin(A[0, i]) + even_walk(A, i + 1)


def test_mutual_recursion_with_both_rewrites_against_autograd_and_fd() -> None:
    def anp_even(A, i=0):
        n = A.shape[0]
        total, odd = 0.0, False
        while i < n:
            total = total + (A[i, i] * autograd.numpy.sin(A[0, i]) if odd else
                             A[i, i] * A[i, 0])
            odd, i = not odd, i + 1
        return total + (1.0 if odd else 0.0)

    g = tl.grad(lambda A: even_walk(A, 0))
    for n in (1, 2, 4, 3):
        A = np.random.default_rng(n).standard_normal((n, n))
        np.testing.assert_allclose(g(A), autograd.grad(anp_even)(A), rtol=1e-13,
                                   atol=1e-14)
    A = np.random.default_rng(9).standard_normal((4, 4))
    U = np.random.default_rng(10).standard_normal((4, 4))
    fd = directional_fd(lambda M: even_walk(M, 0), (A,), (0,), (U,))
    assert np.sum(g(A) * U) == pytest.approx(fd, rel=1e-9, abs=1e-11)
    h = tl.hessian(lambda A: even_walk(A, 0))(A)
    np.testing.assert_allclose(h, autograd.hessian(anp_even)(A), rtol=1e-12, atol=1e-12)
