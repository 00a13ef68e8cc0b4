"""The NumPy functions of `primitives/rules_arrays.py` compiled as user code writes them
(keywords, defaults, negative axes, 0-d and empty arrays, broadcasting): values equal
to NumPy's, and gradients of a few typical uses against finite differences (each rule's
gradients, first and second order, are checked by tests/test_primitive_rules.py)."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl
from tests.gradcheck import directional_fd

R = np.random.default_rng(0)
A23 = R.normal(size=(2, 3))
A234 = R.normal(size=(2, 3, 4))
V5 = R.normal(size=5)
EMPTY = np.zeros((0,))
EMPTY2 = np.zeros((2, 0))


def elementwise(x, y):
    return (np.fabs(x), np.degrees(x), np.radians(x), np.conj(x), np.conjugate(x),
            np.real(x), np.imag(x), np.logaddexp2(x, y))


def nan_to_num(x):
    return np.nan_to_num(x), np.nan_to_num(x, nan=-1.0, posinf=9.0, neginf=-9.0)


def repeat(a):
    return (np.repeat(a, 2), np.repeat(a, [1, 0, 2], axis=-1), np.repeat(a, 3, axis=0))


def repeat_flat(a):
    return np.repeat(a, 2)


def roll(a):
    return np.roll(a, 1), np.roll(a, -2, axis=-1), np.roll(a, (1, 2), axis=(0, 1))


def tile(a):
    return np.tile(a, 2), np.tile(a, (2, 1, 2)), np.tile(a, (1, 1))


def flips(a):
    return (np.flipud(a), np.fliplr(a), np.rot90(a), np.rot90(a, 2), np.rot90(a, k=-1),
            np.rot90(a, 1, axes=(1, 0)))


def axes3(a):
    return (np.rollaxis(a, 2), np.rollaxis(a, -1, 1), np.rollaxis(a, 0, 3),
            np.atleast_3d(a), np.moveaxis(a, -1, 0))


def atleast(x):
    return np.atleast_3d(x)


def stacking(a, b):
    return (np.column_stack((a, b)), np.column_stack([a, a]), np.append(a, b),
            np.append(a, a[:1], axis=0), np.append(a, 1.5))


def splits(a):
    return (np.array_split(a, 3), np.array_split(a, [1, 2], axis=-1), np.hsplit(a, 2),
            np.vsplit(a, 2), np.dsplit(np.reshape(a, (1, 2, -1)), 2))


def differences(a):
    return (np.diff(a), np.diff(a, n=2), np.diff(a, axis=0), np.diff(a, 0),
            np.diff(a, prepend=0.0), np.diff(a, axis=0, append=a[:1]),
            np.diff(a, 2, -1, a[:, :1], 1.5),
            np.cumprod(a), np.cumprod(a, axis=-1), np.cumprod(a, 0))


def gradients(a):
    return np.gradient(a), np.gradient(a, 0.5, axis=-1), np.gradient(a, axis=0)


def products(a, b, u, v):
    return np.kron(a, b), np.kron(u, v), np.cross(u[:3], v[:3]), np.cross(a[:, :3], u[:3])


def sorting(a):
    return (np.sort(a), np.sort(a, axis=0), np.sort(a, axis=None), np.median(a),
            np.median(a, axis=-1), np.median(a, axis=0, keepdims=True),
            np.percentile(a, 30.0), np.percentile(a, [10.0, 90.0], axis=1),
            np.quantile(a, 0.5, axis=0), np.quantile(a, [0.25, 0.75], keepdims=True),
            np.partition(a, 1), np.partition(a, (0, 2), axis=0), np.partition(a, -1, axis=None))


def nan_reductions(a):
    return (np.nansum(a), np.nansum(a, axis=0), np.nanmean(a, axis=-1),
            np.nanmax(a), np.nanmin(a, axis=1, keepdims=True))


def averages(a, w):
    return (np.average(a), np.average(a, axis=1, weights=w), np.average(a, weights=np.abs(a)),
            np.average(a, axis=0, keepdims=True))


def statistics(a, b):
    return (np.cov(a), np.cov(a, rowvar=False), np.cov(a, bias=True), np.cov(b, b * 2.0),
            np.cov(b, ddof=0), np.corrcoef(a), np.corrcoef(a, rowvar=False), np.corrcoef(b, -b))


def signals(a, v):
    return (np.convolve(a, v), np.convolve(a, v, mode="same"), np.convolve(v, a, "same"),
            np.convolve(a, v, "valid"), np.correlate(a, v), np.correlate(a, v, "full"),
            np.correlate(v, a, "same"), np.correlate(a, v, mode="same"))


def padding(a):
    return (np.pad(a, 1), np.pad(a, ((1, 0), (2, 3))), np.pad(a, (1, 2), constant_values=7.0),
            np.pad(a, 2, mode="edge"), np.pad(a, 1, "reflect"), np.pad(a, ((0, 1), (2, 0)),
                                                                      mode="wrap"))


def grids(x, y):
    return (np.meshgrid(x, y), np.meshgrid(x, y, indexing="ij"),
            np.meshgrid(x, y, x, sparse=True), np.meshgrid(x))


def selecting(x):
    return np.select([x < -0.5, x > 0.5], [x * 2.0, x * x], default=-1.0)


def interpolating(x, xp, fp):
    return (np.interp(x, xp, fp), np.interp(x, xp, fp, left=-5.0, right=5.0),
            np.interp(0.25, xp, fp))


def counting(x, w):
    return (np.bincount(x), np.bincount(x, weights=w), np.bincount(x, w, minlength=9),
            np.searchsorted(np.sort(w), 0.0), np.searchsorted([1.0, 2.0, 3.0], w, side="right"),
            np.unique(x), np.unique(x, return_counts=True), np.histogram(w, bins=3),
            np.histogram(w, [-1.0, 0.0, 2.0], density=True),
            np.histogram(w, 2, (-1.0, 1.0), weights=w),
            np.triu_indices(3), np.tril_indices(3, -1), np.triu_indices(2, 1, 4),
            np.take_along_axis(w[None, :], np.argsort(w)[None, :], axis=1))


def traces(a):
    return np.trace(a), np.trace(a, 1, 0, 2), np.trace(a, axis1=-1, axis2=0), np.trace(a[0])


CASES = [
    (elementwise, (A23, A23[0])), (elementwise, (0.7, -1.2)), (elementwise, (EMPTY, 1.0)),
    (nan_to_num, (np.array([1.0, np.nan, np.inf, -np.inf]),)),
    (repeat, (A23,)), (repeat_flat, (np.array(2.5),)), (repeat_flat, (EMPTY,)),
    (roll, (A23,)), (roll, (np.zeros((2, 3)),)), (tile, (A23,)), (tile, (np.array([]),)),
    (flips, (A23,)), (axes3, (A234,)), (atleast, (1.5,)), (atleast, (V5,)), (atleast, (A23,)),
    (stacking, (A23.T, A23[0])), (splits, (R.normal(size=(2, 4)),)),
    (differences, (A23,)), (differences, (np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.5]]),)),
    (gradients, (R.normal(size=(3, 4)),)),
    (products, (A23, A23.T, R.normal(size=4), R.normal(size=3))),
    (sorting, (A234[0],)), (nan_reductions, (np.array([[1.0, np.nan, 3.0], [-1.0, 2.0, np.nan]]),)),
    (averages, (A23, np.array([1.0, 2.0, 0.5]))),
    (statistics, (R.normal(size=(3, 6)), R.normal(size=6))),
    (signals, (V5, np.array([1.0, -2.0, 0.5, 0.25]))), (signals, (V5, V5)),
    (padding, (A23,)), (grids, (V5, A23[0])), (selecting, (V5,)), (selecting, (np.array(0.7),)),
    (interpolating, (np.array([-1.0, 0.0, 0.3, 1.0, 2.5, 9.0]), np.array([0.0, 1.0, 2.0, 3.0]),
                     R.normal(size=4))),
    (interpolating, (0.5, [0.0, 1.0], [2.0, 4.0])),
    (counting, (np.array([0, 3, 3, 1]), R.normal(size=4))), (traces, (A234,)),
]


def _same(got, want, where):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), where
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{k}]")
        return
    assert np.shape(got) == np.shape(want), where
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=where)


@pytest.mark.parametrize(("fn", "args"), CASES, ids=[f"{f.__name__}-{k}"
                                                      for k, (f, _) in enumerate(CASES)])
def test_values_match_numpy(fn, args) -> None:
    with np.errstate(all="ignore"):
        _same(tl.jit(fn)(*args), fn(*args), fn.__name__)


# --- gradients of typical uses ------------------------------------------------------------


def robust_loss(x):
    return np.sum(np.abs(x - np.median(x))) + np.percentile(x, 90.0)


def smoothness(x):
    return np.sum(np.diff(x, n=2) ** 2) + np.sum(np.gradient(x) ** 2)


def padded_conv(x, k):
    return np.sum(np.convolve(np.pad(x, 2, mode="edge"), k, mode="valid") ** 2)


def sorted_weights(x):
    s = np.sort(x)
    return np.sum(s * np.arange(1.0, len(s) + 1.0)) + np.sum(np.cumprod(s[:3]))


def weighted(x, w):
    return np.average(x, weights=np.exp(w)) + np.nansum(x * w) + np.trace(np.cov(np.outer(x, w)))


def geometry(p, q):
    n = np.cross(p, q)
    return np.sum(n * n) + np.sum(np.kron(p, q)) + np.sum(np.roll(np.tile(p, 2), 1) * q[0])


def interp_curve(x, fp):
    return np.sum(np.interp(x, np.array([0.0, 1.0, 2.0, 3.0]), fp) ** 2)


def histogram_uses(x, w):
    h, e = np.histogram(x, bins=3, weights=w, density=True)
    return np.sum(h * np.array([1.0, 2.0, 3.0])) + np.sum(e ** 2)


GRAD_CASES = [
    (robust_loss, (R.normal(size=7),)),
    (smoothness, (R.normal(size=6),)),
    (padded_conv, (R.normal(size=6), R.normal(size=3))),
    (sorted_weights, (R.normal(size=5),)),
    (weighted, (R.normal(size=4), R.normal(size=4))),
    (geometry, (R.normal(size=3), R.normal(size=3))),
    (interp_curve, (np.array([0.2, 1.7, 2.4, 3.5]), R.normal(size=4))),
    (histogram_uses, (np.array([0.3, -1.2, 2.5, 0.7, 1.9, -0.4]), R.uniform(0.5, 1.5, size=6))),
]


@pytest.mark.parametrize(("fn", "args"), GRAD_CASES, ids=[f.__name__ for f, _ in GRAD_CASES])
def test_gradients_of_typical_uses(fn, args) -> None:
    argnums = tuple(range(len(args)))
    grads = tl.grad(fn, argnums)(*args)
    rng = np.random.default_rng(1)
    for i in argnums:
        v = rng.normal(size=np.shape(args[i]))
        direction = tuple(v if j == i else np.zeros_like(args[j]) for j in argnums)
        fd = directional_fd(fn, args, argnums, direction)
        assert abs(np.sum(grads[i] * v) - fd) < 1e-6 * (1.0 + abs(fd)), (fn.__name__, i)


def empty_uses(x):
    return np.sum(np.diff(x)) + np.sum(np.sort(x)) + np.sum(np.cumprod(x)) + np.sum(np.repeat(x, 2))


def test_gradients_through_empty_results() -> None:
    g = tl.grad(empty_uses)(np.array([0.5]))
    np.testing.assert_allclose(g, [1.0 + 1.0 + 2.0])
    g = tl.grad(empty_uses)(np.zeros(0))
    assert g.shape == (0,)


def non_differentiable(x):
    return (np.sum(x * np.imag(x)) + np.sum(np.searchsorted(np.sort(x), x))
            + np.sum(np.histogram(x, bins=2)[0]) + np.sum(np.triu_indices(3)[0]))



def test_non_differentiable_functions_give_zero_gradients() -> None:
    x = np.array([0.3, -1.2, 2.5, 0.7])
    np.testing.assert_allclose(tl.grad(non_differentiable)(x), np.zeros(4))


def unique_values(x):
    return np.sum(np.unique(x) * np.array([1.0, 2.0, 3.0]))


def test_unique_shares_among_equal_elements() -> None:
    x = np.array([0.5, -1.0, 0.5, 2.0])
    np.testing.assert_allclose(tl.grad(unique_values)(x), [1.0, 1.0, 1.0, 3.0])
