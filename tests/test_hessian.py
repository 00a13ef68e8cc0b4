"""`tl.hessian` (its batched pass over the identity's rows) against finite differences of
the gradient and against a loop of Hessian-vector products, through branches and loops;
what the batched program computes (the tangent part only, no gradient beside it); and
the rewrites that made it lean, exact bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tapeless as tl


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def branchy(x):
    # A branch on the data, a loop over elements and one over steps, pieces of slices
    # that overlap: every column of the Hessian differs.
    s = np.sum(np.sin(x[1:] * x[:-1])) + np.sum(x[:-1] ** 3)
    if np.sum(x) > 0.0:
        s = s + np.sum(np.cos(x) * x[::-1])
    else:
        s = s - np.sum(x ** 4)
    for i in range(x.shape[0] - 2):
        s = s + x[i] * x[i + 2] ** 2
    k = 0
    while k < 3:
        s = s + 0.1 * np.sum(np.tanh(x * (k + 1.0)))
        k += 1
    return s


def _fd_hessian(fn: Any, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Central differences of the gradient: column j from x +- eps e_j."""
    g = tl.grad(fn)
    cols = []
    for j in range(x.shape[0]):
        e = np.zeros_like(x)
        e[j] = eps
        cols.append((g(x + e) - g(x - e)) / (2 * eps))
    return np.stack(cols, axis=1)


def _hvp_hessian(fn: Any, x: np.ndarray) -> np.ndarray:
    """One Hessian-vector product (`jvp` of `grad`) per column."""
    g = tl.grad(fn)
    return np.stack([tl.jvp(g, (x,), (e,))[1] for e in np.eye(x.shape[0])], axis=1)


@pytest.mark.parametrize("fn", [rosenbrock, branchy])
@pytest.mark.parametrize("x", [np.linspace(-0.9, 1.3, 12), -np.linspace(0.2, 1.1, 9)])
def test_batched_hessian_against_finite_differences_and_hvps(fn: Any, x: np.ndarray,
                                                             optimize: str) -> None:
    h = tl.hessian(fn)
    first = h(x)  # (one jvp per column)
    batched = h(x)
    assert h.batched.last == "batched" or (optimize == "off" and h.batched.refused), \
        h.batched.refused
    assert batched.shape == (x.shape[0], x.shape[0])
    np.testing.assert_allclose(batched, first, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batched, _hvp_hessian(fn, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batched, _fd_hessian(fn, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batched, batched.T, rtol=1e-12, atol=1e-12)


def test_batched_hessian_program_computes_only_the_tangents() -> None:
    """The batched Rosenbrock columns are the tangent part of forward over reverse: the
    gradient itself (the primal output of `jvp(grad f)`, read only for its structure
    where its kind is known), type tests of arguments of known kinds and a separate
    add per overlapping piece are gone."""
    h = tl.hessian(rosenbrock)
    x = np.linspace(-1.0, 1.0, 20)
    h(x)
    h(x)
    assert h.batched.last == "batched"
    plan = next(iter(h.batched.plans.values()))
    source = plan.mapped.source_for(x, *plan.tangents)
    assert source.count("scatter_sens") == 1, source  # (the gradient's is gone)
    assert "isinstance(x, np.ndarray)" not in source and "to_structure" not in source, source
    assert "for i in range" not in source, source  # (nothing per element)
    assert "* 2 *" not in source, source  # (scalings folded: -200.0 * d * 2 is -400.0 * d)


def overlapping(x):
    # x[:-1] read twice and x[1:] once: the gradient scatters three pieces, the first
    # two to one slice.
    return np.sum(np.sin(x[:-1]) * x[1:]) + np.sum(x[:-1] ** 2 * 3.0)


def doubled(x):
    # `2 * a` folded into another scaling: exact, 2 is a power of two.
    return np.sum(-3.0 * x * 2 * x)


@pytest.mark.parametrize("fn", [overlapping, doubled, rosenbrock, branchy])
def test_merged_pieces_and_folded_scalings_are_exact(fn: Any, monkeypatch) -> None:
    """The optimizer's program gives the unoptimized program's gradient and Hessian bit
    for bit where these rewrites apply (pieces of one slice in a row added first, an
    int factor folded into a power-of-two scaling)."""
    x = np.linspace(-0.7, 1.9, 11)
    v = np.cos(np.arange(11.0))
    optimized = (tl.grad(fn)(x), tl.jvp(tl.grad(fn), (x,), (v,))[1])
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    plain = (tl.grad(fn)(x), tl.jvp(tl.grad(fn), (x,), (v,))[1])
    for a, b in zip(optimized, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
    if fn is overlapping:
        np.testing.assert_array_equal(optimized[0], plain[0])


def test_second_call_batches_the_program_the_first_call_optimized(optimize: str) -> None:
    """The first call runs the tangent part column by column; the second batches the
    program that call optimized (optimized once: both calls' code comes from it)."""
    h = tl.hessian(branchy)
    x = np.linspace(-0.4, 0.9, 6)
    by_columns = h(x)
    assert h.batched.last == "columns"
    batched = h(x)
    assert h.batched.last == "batched" or (optimize == "off" and h.batched.refused), \
        h.batched.refused
    np.testing.assert_allclose(batched, by_columns, rtol=1e-13, atol=1e-13)
    made = [k[0] for k in h.batched.tangent._compiled if k and isinstance(k[0], str)]
    assert made.count("optimized") == 1, made
    # has_aux and a second argument: the columns' and the batched results agree too
    g = tl.hessian(lambda a, b: (branchy(a * b), np.sum(a)), has_aux=True)
    first, aux1 = g(x, 0.5)
    second, aux2 = g(x, 0.5)
    assert aux1 == aux2 == pytest.approx(np.sum(x))
    np.testing.assert_allclose(second, first, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(first, 0.25 * h(0.5 * x), rtol=1e-12, atol=1e-12)
