"""The optimizer drops the max's share of a stable log-sum-exp's gradient (it cancels:
`tapeless.opt.softmax`), and of any objective that does not depend on the max it
subtracts, however the shift is spelled (`tapeless.opt.shift`: log-softmax, softmax,
`mx[:, None]`, gathers by label). Checked against the unoptimized gradient and finite
differences, including where the rewrite must not apply."""

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


# --- objectives invariant under the shift, in several spellings ----------------------------


def log_softmax_nll_keepdims(logits, labels):
    """The bench classifier's spelling: keepdims, a gather by label, a mean."""
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(logp[np.arange(logits.shape[0]), labels])


def log_softmax_nll_indexed(logits, labels):
    """The max subtracted through `mx[:, None]`, the log-sum-exp subtracted after the
    gather."""
    mx = np.max(logits, axis=1)
    inner = logits - mx[:, None]
    lse = np.log(np.sum(np.exp(inner), axis=1))
    n = logits.shape[0]
    return -np.sum(inner[np.arange(n), labels] - lse) / n


def lse_columns_indexed(a):
    """The GMM loop's spelling: the max over axis 0 put back with `mx[None, :]`."""
    mx = np.max(a, axis=0)
    return np.sum(np.log(np.sum(np.exp(a - mx[None, :]), axis=0)) + mx)


def lse_rows_appended_in_a_loop(a, w):
    """The GMM loop's spelling: the rows appended one at a time, stacked, the max over
    axis 0 put back with `mx[None, :]`."""
    rows = []
    for k in range(a.shape[0]):
        rows.append(a[k] * w)
    main = np.stack(rows)
    mx = np.max(main, axis=0)
    return np.sum(np.log(np.sum(np.exp(main - mx[None, :]), axis=0)) + mx)


def lse_columns_of_a_comprehension(a, w):
    """Columns stacked from a comprehension along the last axis, a max over it with
    keepdims."""
    main = np.stack([np.cos(a[k]) * w for k in range(a.shape[0])], axis=-1)
    mx = np.max(main, axis=1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(main - mx), axis=1, keepdims=True)) + mx)


def lse_rows_added_in_a_loop_twice_the_max(a, w):
    """Not invariant (the max counted twice), rows built by `rows + [x]`."""
    rows = []
    for k in range(a.shape[0]):
        rows = rows + [a[k] * w]
    main = np.stack(rows)
    mx = np.max(main, axis=0)
    return np.sum(np.log(np.sum(np.exp(main - mx[None, :]), axis=0)) + 2.0 * mx)


def softmax_cross_entropy(logits, target):
    """The max over all elements; softmax probabilities, then their log."""
    z = logits - np.max(logits)
    p = np.exp(z) / np.sum(np.exp(z))
    return -np.sum(target * np.log(p))


def softmax_weighted_expand_dims(a, v):
    """Softmax over the last axis, the max put back with np.expand_dims."""
    e = np.exp(a - np.expand_dims(np.max(a, axis=-1), -1))
    return np.sum(e / np.sum(e, axis=-1, keepdims=True) * v)


def shifted_gather_only(logits, labels):
    """Not invariant: the gathered shifted logits without the log-sum-exp."""
    mx = np.max(logits, axis=1)
    inner = logits - mx[:, None]
    return np.sum(inner[np.arange(logits.shape[0]), labels]) + \
        np.sum(np.log(np.sum(np.exp(inner), axis=1)))


def log_softmax_rows_by_label(logits, labels):
    """Not invariant: rows gathered by label, not one element per row."""
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return np.sum(logp[labels, labels] * 1.5) + np.sum(shifted[labels, 0])


def log_softmax_plus_max(logits, labels):
    """Not invariant: the max itself is part of the objective."""
    mx = np.max(logits, axis=1, keepdims=True)
    shifted = logits - mx
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return np.sum(logp[np.arange(logits.shape[0]), labels]) + 0.5 * np.sum(mx)


rng = np.random.default_rng(3)
LOGITS = rng.normal(size=(6, 4))
LABELS = np.array([0, 3, 3, 1, 2, 0])
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
    (log_softmax_nll_keepdims, (LOGITS, LABELS), (0,)),
    (log_softmax_nll_indexed, (LOGITS, LABELS), (0,)),
    (lse_columns_indexed, (A,), (0,)),
    (lse_rows_appended_in_a_loop, (A, V), (0,)),
    (lse_columns_of_a_comprehension, (A, V), (0,)),
    (softmax_cross_entropy, (rng.normal(size=5), rng.uniform(size=5)), (0,)),
    (softmax_weighted_expand_dims, (A, rng.normal(size=(5, 4))), (0,)),
]
KEPT = [
    (lse_twice_the_max, (A,), (0,)),
    (lse_max_used_again, (A,), (0,)),
    (lse_of_min, (A,), (0,)),
    (lse_rows_added_in_a_loop_twice_the_max, (A, V), (0,)),
    (shifted_gather_only, (LOGITS, LABELS), (0,)),
    (log_softmax_rows_by_label, (LOGITS, np.array([0, 3, 3, 1])), (0,)),
    (log_softmax_plus_max, (LOGITS, LABELS), (0,)),
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


@pytest.mark.parametrize("fn", [log_softmax_nll_keepdims, log_softmax_nll_indexed])
def test_log_softmax_ties_and_nans_give_the_unoptimized_gradient(fn, monkeypatch):
    """A row with NaN or +inf is NaN across the row, with or without the share; ties
    (several maxima in a row) share nothing that is not zero."""
    logits = np.array([[1.0, 2.0, 2.0, 0.5], [np.nan, 0.0, 1.0, 1.0], [0.3, np.inf, 1.0, 0.0],
                       [3.0, 3.0, 3.0, 3.0], [0.0, -np.inf, 1.0, 2.0]])
    labels = np.array([1, 2, 0, 3, 2])
    got = tl.grad(fn)(logits, labels)
    assert "np.equal" not in tl.grad(fn).source_for(logits, labels)
    expected = _unoptimized(fn, (logits, labels), 0, monkeypatch)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[1:3]).all() and not np.isnan(got[[0, 3, 4]]).any()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_second_derivative_of_a_log_softmax_loss(monkeypatch):
    """A derivative of the rewritten gradient (the objective is then the outer one's:
    the share of the inner gradient is not dropped by that proof)."""
    u = np.random.default_rng(5).normal(size=LOGITS.shape)
    g = tl.grad(lambda_free_inner_product, argnums=0)
    got = g(LOGITS, LABELS, u)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    expected = tl.grad(lambda_free_inner_product, argnums=0)(LOGITS, LABELS, u)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def lambda_free_inner_product(logits, labels, u):
    return np.sum(tl.grad(log_softmax_nll_indexed)(logits, labels) * u)
