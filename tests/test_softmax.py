"""The optimizer drops the max's share of a stable log-sum-exp's gradient (it cancels:
`tapeless.opt.softmax`). Checked against the unoptimized gradient and finite differences,
including where the rewrite must not apply."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl
from tests.gradcheck import directional_fd


def lse_keepdims(a):
    mx = np.max(a, axis=0, keepdims=True)
    return np.log(np.sum(np.exp(a - mx), axis=0)) + np.squeeze(mx, axis=0)


def lse_weighted(a, v):
    """The GMM's form: log-sum-exp over axis 0 with keepdims and squeeze, summed."""
    return np.sum(lse_keepdims(a) * v)


def lse_scaled_total(a):
    return -7.0 * np.sum(lse_keepdims(a))


def lse_last_axis(a):
    mx = np.max(a, axis=-1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(a - mx), axis=-1, keepdims=True)) + mx)


def lse_leading_axis_no_keepdims(a):
    mx = np.max(a, axis=0)
    return np.sum(np.cos(np.log(np.sum(np.exp(a - mx), axis=0)) + mx))


def lse_all(a):
    mx = np.max(a)
    return 3.0 * (np.log(np.sum(np.exp(a - mx))) + mx)


def lse_3d(a):
    mx = np.max(a, axis=1, keepdims=True)
    out = np.log(np.sum(np.exp(a - mx), axis=1, keepdims=True)) + mx
    return np.sum(out * out)


def lse_vector_times_n(a):
    """The GMM's prior term: n * logsumexp of a vector."""
    return -1000.0 * lse_keepdims(a)


def lse_twice_the_max(a):
    """Not a log-sum-exp: the max's sensitivity does not cancel."""
    mx = np.max(a, axis=0, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(a - mx), axis=0)) + 2.0 * np.squeeze(mx, axis=0))


def lse_max_used_again(a):
    """The max also feeds the result directly: its other sensitivity stays."""
    mx = np.max(a, axis=0, keepdims=True)
    lse = np.log(np.sum(np.exp(a - mx), axis=0)) + np.squeeze(mx, axis=0)
    return np.sum(lse) + np.sum(mx * mx)


def lse_of_min(a):
    """A min instead of a max: the same algebra, but not rewritten (the normalizer
    could overflow)."""
    mn = np.min(a, axis=0, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(a - mn), axis=0)) + np.squeeze(mn, axis=0))


rng = np.random.default_rng(3)
A = rng.normal(size=(5, 4))
V = rng.normal(size=4)

REWRITTEN = [
    (lse_weighted, (A, V), (0,)),
    (lse_scaled_total, (A,), (0,)),
    (lse_last_axis, (A,), (0,)),
    (lse_leading_axis_no_keepdims, (A,), (0,)),
    (lse_all, (A,), (0,)),
    (lse_3d, (rng.normal(size=(2, 3, 4)),), (0,)),
    (lse_vector_times_n, (rng.normal(size=6),), (0,)),
]
KEPT = [
    (lse_twice_the_max, (A,), (0,)),
    (lse_max_used_again, (A,), (0,)),
    (lse_of_min, (A,), (0,)),
]


def _unoptimized(fn, args, argnums, monkeypatch):
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    out = tl.grad(fn, argnums=argnums)(*args)
    monkeypatch.delenv("TAPELESS_OPTIMIZE")
    return out


def _check(fn, args, argnums, monkeypatch):
    g = tl.grad(fn, argnums=argnums)
    got = g(*args)
    expected = _unoptimized(fn, args, argnums, monkeypatch)
    for x, y in zip(got, expected, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    direction = np.random.default_rng(0).normal(size=args[0].shape)
    fd = directional_fd(fn, args, (0,), [direction])
    assert np.isclose(np.sum(got[0] * direction), fd, rtol=1e-7, atol=1e-8)
    return g.source_for(*args)


@pytest.mark.parametrize("fn, args, argnums", REWRITTEN, ids=lambda v: getattr(v, "__name__", ""))
def test_the_max_share_of_a_logsumexp_gradient_is_dropped(fn, args, argnums, monkeypatch):
    source = _check(fn, args, argnums, monkeypatch)
    assert "np.equal" not in source, source  # no tie sharing left


@pytest.mark.parametrize("fn, args, argnums", KEPT, ids=lambda v: getattr(v, "__name__", ""))
def test_a_max_share_that_does_not_cancel_stays(fn, args, argnums, monkeypatch):
    source = _check(fn, args, argnums, monkeypatch)
    assert "np.equal" in source, source


def test_ties_and_nans_give_the_unoptimized_gradient(monkeypatch):
    a = np.array([[1.0, 2.0, np.nan, 0.5], [1.0, 2.0, 0.0, -np.inf], [0.3, 2.0, 1.0, -np.inf]])
    v = np.array([1.0, -2.0, 0.5, 3.0])
    got = tl.grad(lse_weighted)(a, v)
    expected = _unoptimized(lse_weighted, (a, v), 0, monkeypatch)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[:, 2]).all() and not np.isnan(got[:, [0, 1, 3]]).any()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def _hessian_vector(a, u):
    return np.sum(tl.grad(lse_weighted)(a, V) * u)


def test_second_derivative_through_the_rewritten_gradient(monkeypatch):
    u = np.random.default_rng(1).normal(size=A.shape)
    got = tl.grad(_hessian_vector)(A, u)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    expected = tl.grad(_hessian_vector)(A, u)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
