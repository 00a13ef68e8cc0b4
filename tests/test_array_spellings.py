"""Array code the Python backend spells for speed (`opt/arrays.python_spellings`), gathers'
sensitivities added with `np.add.at` (`_gather_sens_small`) and coefficient gradients
accumulated in place where they are vector products (`zeros._f8_sum`), on programs
other than the benchmarks' (bench/control_programs.py): values against CPython bit for
bit, gradients against the unoptimized gradient and finite differences, and the shape of
the generated code."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tapeless as tl
from tests.gradcheck import directional_fd, in_place_adds


@pytest.fixture(autouse=True)
def _optimized(monkeypatch):
    # (Code shape is checked: the optimizer must be on whatever the run's setting.)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


def _unoptimized_grad(fn, args, argnums, monkeypatch):
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    try:
        return tl.grad(fn, argnums=argnums)(*args)
    finally:
        monkeypatch.delenv("TAPELESS_OPTIMIZE")


def _check_grad(fn, args, argnums, monkeypatch, rtol=1e-7):
    got = tl.grad(fn, argnums=argnums)(*args)
    got = got if isinstance(got, tuple) else (got,)
    want = _unoptimized_grad(fn, args, argnums, monkeypatch)
    want = want if isinstance(want, tuple) else (want,)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    rng = np.random.default_rng(3)
    directions = tuple(rng.normal(size=np.shape(args[i])) for i in argnums)
    fd = directional_fd(fn, args, argnums, directions)
    assert np.isclose(sum(np.sum(g * v) for g, v in zip(got, directions, strict=True)), fd,
                      rtol=rtol)


# --- reductions as methods, expand_dims as an index ---------------------------------------


def scores(x, w):
    """A softmax-weighted score, written with NumPy's functions."""
    m = np.expand_dims(np.max(x, axis=1), 1)
    e = np.exp(x - m)
    p = e / np.expand_dims(np.sum(e, axis=1), -1)
    return np.sum(p @ w) + np.mean(x) * np.min(w) + np.prod(w[:3])


def _scores_args():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 4)), rng.normal(size=4)


def test_reductions_are_methods_with_the_same_value():
    args = _scores_args()
    f = tl.jit(scores)
    assert f(*args) == scores(*args)  # (bit for bit)
    src = f.source_for(*args)
    for name in ("sum", "max", "min", "mean", "prod", "expand_dims"):
        assert f"np.{name}(" not in src, src
    assert ".sum(axis=1)" in src and "[:, None]" in src, src


def test_gradient_of_reductions_as_methods(monkeypatch):
    args = _scores_args()
    _check_grad(scores, args, (0, 1), monkeypatch)
    src = tl.grad(scores, argnums=(0, 1)).source_for(*args)
    assert "np.expand_dims(" not in src and "np.sum(" not in src, src


def reduce_with_options(x):
    """Reductions the methods would not spell the same way: kept as functions."""
    return np.sum(np.sum(x, axis=0, keepdims=True)) + np.sum(x, dtype=np.float64) + \
        np.max(np.expand_dims(x, (0, 2)))


def test_reductions_with_options():
    x = np.random.default_rng(1).normal(size=(3, 4))
    f = tl.jit(reduce_with_options)
    assert f(x) == reduce_with_options(x)
    src = f.source_for(x)
    assert "keepdims=True" in src and "dtype=" in src, src
    assert "x[None, :, None, :]" in src, src


# --- stacks of vectors as np.array ---------------------------------------------------------


def heun(A, y0):
    """Heun's method for y' = A y, 40 steps: A's gradient is a sum of two outer
    products per step (a stack of the stages' vectors, multiplied)."""
    y = y0
    for _ in range(40):
        k1 = A @ y
        k2 = A @ (y + 0.02 * k1)
        y = y + 0.01 * (k1 + k2)
    return np.dot(y, y)


def _heun_args():
    rng = np.random.default_rng(2)
    return rng.normal(size=(5, 5)) / 3 - np.eye(5), rng.normal(size=5)


def test_gradient_of_outer_products_stacks_as_arrays(monkeypatch):
    args = _heun_args()
    _check_grad(heun, args, (0, 1), monkeypatch)
    src = tl.grad(heun, argnums=(0, 1)).source_for(*args)
    assert "np.stack" not in src and re.search(r"_array\(\(.*\)\)\.T @ _array\(", src), src


def stacked(a, b, c):
    return np.stack((a * b, b - c, np.sin(c))), np.stack((a, c), axis=-1), \
        np.stack((a, b), axis=1)


def test_stacks_as_arrays_have_the_same_values():
    rng = np.random.default_rng(4)
    args = tuple(rng.normal(size=3) for _ in range(3))
    f = tl.jit(stacked)
    for got, want in zip(f(*args), stacked(*args), strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    src = f.source_for(*args)
    assert "np.stack" not in src, src
    # (a stack of arrays of another shape or dtype stays one)
    m = np.ones((2, 3))
    g = tl.jit(lambda a, m: np.stack((a, m[0])) + np.stack((m, m))[0])
    np.testing.assert_array_equal(g(args[0], m), np.stack((args[0], m[0])) + m)


def test_native_programs_keep_the_functions():
    """Numba types no np.array of a tuple of arrays: the spellings are the Python
    backend's alone (the native backend compiles the program with np.stack)."""
    pytest.importorskip("numba")
    args = _heun_args()
    g = tl.grad(heun, argnums=(0, 1), backend="native")
    src = g.source_for(*args)
    assert "np.stack" in src and "_array(" not in src, src
    for a, b in zip(g(*args), tl.grad(heun, argnums=(0, 1))(*args), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# --- small gathers: np.add.at ---------------------------------------------------------------


SYMMETRIC = np.array([[0, 1, 2, 3], [1, 4, 5, 6], [2, 5, 7, 8], [3, 6, 8, 9]])


def packed_quadratic(v, x):
    """A symmetric 4 x 4 matrix gathered from its 10 packed entries (an index used twice
    per off-diagonal entry), in a quadratic form summed over the rows of x."""
    S = v[SYMMETRIC]
    return np.sum((x @ S) * x) + np.sum(v ** 2)


def test_gradient_of_small_gather(monkeypatch):
    rng = np.random.default_rng(5)
    args = (rng.normal(size=10), rng.normal(size=(7, 4)))
    _check_grad(packed_quadratic, args, (0,), monkeypatch)
    src = tl.grad(packed_quadratic).source_for(*args)
    assert "getitem_sens" not in src and "index_add" in src, src


def gather_loop(v, idx):
    """A gather of the same packed vector in a loop, by an index argument."""
    total = 0.0
    for k in range(3):
        total = total + np.sum(np.tanh(v[idx] * (k + 1)))
    return total


def test_gradient_of_small_gather_in_loop(monkeypatch):
    rng = np.random.default_rng(6)
    idx = rng.integers(0, 6, size=(5, 3))
    args = (rng.normal(size=6), idx)
    _check_grad(gather_loop, args, (0,), monkeypatch)
    assert "index_add" in tl.grad(gather_loop).source_for(*args)
    # (a gather of 256 positions or more is left to the run time, which adds them by
    # np.bincount)
    big = (rng.normal(size=6), rng.integers(0, 6, size=(20, 20)))
    _check_grad(gather_loop, big, (0,), monkeypatch)
    assert "index_add" not in tl.grad(gather_loop).source_for(*big)


# --- coefficient gradients that are vector products -------------------------------------


def fourier_fit(c, x, y):
    """A cosine series fitted by least squares, a loop over coefficients."""
    pred = np.zeros_like(x)
    for k in range(c.shape[0]):
        pred = pred + c[k] * np.cos(k * x)
    r = pred - y
    return np.dot(r, r) / x.shape[0]


def test_coefficient_gradient_of_vector_products(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 2, size=50)
    args = (rng.normal(size=6), x, np.sin(x))
    _check_grad(fourier_fit, args, (0,), monkeypatch)
    src = tl.grad(fourier_fit).source_for(*args)
    assert in_place_adds(src) == 1 and "scatter_add" not in src, src


# --- a list appended to in a loop: its sensitivity is never the symbolic zero -------------


def stacked_rows(W, x):
    """Rows appended in a loop, stacked, a log-sum-exp over them (the GMM loop's shape,
    written with `append`)."""
    rows = []
    for k in range(W.shape[0]):
        rows.append(np.tanh(W[k] @ x))
    z = np.stack(rows)
    mx = np.max(z, axis=0)
    return np.sum(np.log(np.sum(np.exp(z - mx), axis=0)) + mx)


def test_gradient_of_rows_appended_in_loop(monkeypatch):
    rng = np.random.default_rng(8)
    args = (rng.normal(size=(4, 3, 5)), rng.normal(size=5))
    _check_grad(stacked_rows, args, (0, 1), monkeypatch)
    src = tl.grad(stacked_rows, argnums=(0, 1)).source_for(*args)
    # (The tuple of the rows' sensitivities is passed on in slices, never ZERO: no
    # run-time test of it, and the list itself is not saved for the backward loop.)
    assert not re.search(r"sens_of\(d_rows,", src), src
    assert not re.search(r"stack_append\(\([^)]*\brows", src), src


def _counts(x):
    return np.count_nonzero(x, axis=0), np.count_nonzero(x), np.count_nonzero(x > 1.0)


def test_a_whole_arrays_count_is_numpys_c_function():
    # (`np.count_nonzero(a)` without an axis is spelled `_rt.count_all(a)`, NumPy's C
    # function; with an axis NumPy's own; both give what NumPy gives, dtype included)
    f = tl.jit(_counts)
    for x in (np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]), np.zeros((0, 2)),
              np.array([[np.nan, -0.0, 1e-300]])):
        got, expected = f(x), _counts(x)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
            assert type(a) is type(b) and np.asarray(a).dtype == np.asarray(b).dtype
    source = f.source_for(x)
    assert "np.count_nonzero(x, axis=0)" in source and "_rt.count_all(x)" in source, source
