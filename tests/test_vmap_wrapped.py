"""Transforms applied to a `tl.vmap` object directly (`tl.jit(tl.vmap(f))`, the JAX
idiom; `tl.vmap(tl.vmap(f))`; `tl.jit(tl.vmap(tl.grad(f)))`) build the batched code for
the arguments' kinds, as `tl.vmap(f)` called alone and `tl.jit(lambda a: tl.vmap(f)(a))`
do: not generic code that tests kinds and shapes at run time."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x


def newton_cbrt(a):
    x = a
    steps = 0
    while True:
        step = (x * x * x - a) / (3.0 * x * x)
        x = x - step
        steps += 1
        if abs(step) <= 1e-12 * abs(x):
            break
    return x


def to_tolerance(a, tol):
    x = a
    while abs(x * x - a) > tol * a:
        x = 0.5 * (x + a / x)
    return x


def collatz(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def loss(params, x):
    W, b = params
    return np.sum(np.tanh(W @ x + b) ** 2)


def smooth(x):
    y = x
    for _ in range(3):
        y = np.sin(y) * x + 0.5 * y
    return y


@pytest.fixture
def a():
    return np.abs(np.random.default_rng(0).normal(size=60)) * 100 + 0.01


@pytest.mark.parametrize("f", [newton_sqrt, newton_cbrt])
def test_jit_of_vmap_is_specialized(f, a, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    j = tl.jit(tl.vmap(f))
    np.testing.assert_allclose(j(a), [f(float(x)) for x in a], rtol=1e-12)
    source = j.source_for(a)
    assert "isinstance(" not in source
    alone = tl.vmap(f).source_for(a)
    assert len(source.splitlines()) <= len(alone.splitlines()) + 3


def test_jit_of_vmap_ints_exact(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    ns = np.arange(1, 40)
    j = tl.jit(tl.vmap(collatz))
    got = j(ns)
    assert got.tolist() == [collatz(int(n)) for n in ns]
    assert len(j.source_for(ns).splitlines()) <= \
        len(tl.vmap(collatz).source_for(ns).splitlines()) + 3


def test_jit_of_vmap_unmapped_argument(a, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    j = tl.jit(tl.vmap(to_tolerance, in_axes=(0, None)))
    np.testing.assert_allclose(j(a, 1e-12), [to_tolerance(float(x), 1e-12) for x in a],
                               rtol=1e-12)
    assert "isinstance(" not in j.source_for(a, 1e-12)


def test_vmap_of_vmap(a, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    grid = a.reshape(6, 10)
    v = tl.vmap(tl.vmap(newton_cbrt))
    np.testing.assert_allclose(v(grid), [[newton_cbrt(float(x)) for x in row] for row in grid],
                               rtol=1e-12)
    # (as specialized as the spelling that calls the inner `tl.vmap` in a function)
    other = tl.vmap(lambda r: tl.vmap(newton_cbrt)(r))
    assert len(v.source_for(grid).splitlines()) <= \
        len(other.source_for(grid).splitlines()) + 3


def test_jit_of_vmap_of_grad(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(1)
    params = (rng.normal(size=(5, 4)), rng.normal(size=5))
    X = rng.normal(size=(7, 4))
    j = tl.jit(tl.vmap(tl.grad(loss), in_axes=(None, 0)))
    dW, db = j(params, X)
    g = tl.grad(loss)
    for i, x in enumerate(X):
        want = g(params, x)
        np.testing.assert_allclose(dW[i], want[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db[i], want[1], rtol=1e-12, atol=1e-12)
    source = j.source_for(params, X)
    assert "isinstance(" not in source
    assert len(source.splitlines()) <= \
        len(tl.vmap(tl.grad(loss), in_axes=(None, 0)).source_for(params, X).splitlines()) + 3


def test_jacobians_and_grad_of_vmap(a):
    x = np.random.default_rng(2).normal(size=8)
    d = tl.grad(smooth)
    diag = np.diag([d(float(v)) for v in x])
    np.testing.assert_allclose(tl.jacfwd(tl.vmap(smooth))(x), diag, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tl.jacrev(tl.vmap(smooth))(x), diag, rtol=1e-12, atol=1e-12)
    g = tl.grad(lambda v: np.sum(tl.jit(tl.vmap(smooth))(v)))
    np.testing.assert_allclose(g(x), np.diag(diag), rtol=1e-12, atol=1e-12)
    tangent = np.ones(8)
    value, out = tl.jvp(tl.vmap(smooth), (x,), (tangent,))
    np.testing.assert_allclose(out, np.diag(diag), rtol=1e-12, atol=1e-12)


def test_jit_of_vmap_other_shapes(a):
    """One compiled version per argument signature: another batch size or dtype gets
    its own, each right."""
    j = tl.jit(tl.vmap(newton_sqrt))
    for xs in (a, a[:7], a.reshape(6, 10)[:, 0].copy()):
        np.testing.assert_allclose(j(xs), [newton_sqrt(float(x)) for x in xs], rtol=1e-12)
    rows = tl.jit(tl.vmap(lambda r: np.sum(r * r)))
    m = a.reshape(6, 10)
    np.testing.assert_allclose(rows(m), [np.sum(r * r) for r in m], rtol=1e-12)
