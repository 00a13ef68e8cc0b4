"""Transforms applied to a `tl.vmap` object directly (`tl.jit(tl.vmap(f))`, the JAX
idiom; `tl.vmap(tl.vmap(f))`; `tl.jit(tl.vmap(tl.grad(f)))`) build the batched code for
the arguments' kinds, as `tl.vmap(f)` called alone and `tl.jit(lambda a: tl.vmap(f)(a))`
do: not generic code that tests kinds and shapes at run time."""

from __future__ import annotations

import numpy as np
import pytest
import vmap_programs as vp

import tapeless as tl

newton_sqrt = vp.newton_sqrt
newton_cbrt = vp.cube_root_with_break  # ((x, steps): a float and an int)


def halve_below(x, limit):
    steps = 0
    while x > limit:
        x = x / 2.0
        steps += 1
    return x, steps


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
def _close(got, want):
    """Batched results against a loop's (exact for ints, 1e-12 for floats)."""
    if isinstance(want[0], tuple):
        for k, part in enumerate(got):
            _close(part, [w[k] for w in want])
        return
    if isinstance(want[0], int):
        assert got.tolist() == want
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("f", [newton_sqrt, newton_cbrt])
def test_jit_of_vmap_is_specialized(f, a, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    j = tl.jit(tl.vmap(f))
    _close(j(a), [f(float(x)) for x in a])
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
    j = tl.jit(tl.vmap(halve_below, in_axes=(0, None)))
    _close(j(a, 0.75), [halve_below(float(x), 0.75) for x in a])
    assert "isinstance(" not in j.source_for(a, 0.75)


def test_vmap_of_vmap(a, monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    grid = a.reshape(6, 10)
    v = tl.vmap(tl.vmap(newton_cbrt))
    got = v(grid)
    for i, row in enumerate(grid):
        _close((got[0][i], got[1][i]), [newton_cbrt(float(x)) for x in row])
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


def sin_square(x):
    return np.sin(x) * x**2


@pytest.mark.parametrize("spelling", ["object", "inside"])
@pytest.mark.parametrize("f", [sin_square, newton_sqrt])
def test_vjp_and_jacrev_of_vmap_are_specialized(f, spelling, a, monkeypatch):
    """`tl.vjp(tl.vmap(f), x)` and a function calling `tl.vmap` build the batched code
    for the arguments' kinds (as `jit` does), not the generic code with run-time tests
    of kinds and shapes; values and sensitivities equal a loop over the batch / JAX."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    v = tl.vmap(f) if spelling == "object" else (lambda x: tl.vmap(f)(x))
    ct = np.cos(a) + 0.5
    out, back = tl.vjp(v, a)
    np.testing.assert_allclose(out, [f(e) for e in a], rtol=1e-12, atol=1e-12)
    want = jax.vjp(jnp.vectorize(lambda e: jnp.sin(e) * e**2), a)[1](ct)[0] \
        if f is sin_square else [c * tl.grad(f)(e) for c, e in zip(ct, a, strict=True)]
    np.testing.assert_allclose(back(ct)[0], want, rtol=1e-12, atol=1e-12)
    if f is sin_square:
        assert "isinstance(" not in back.source
    # (generic: 173 lines and 1,860 lines with 17 and 159 `isinstance(` tests)
    assert back.source.count("isinstance(") <= 2
    assert len(back.source.splitlines()) < 100
    jac = tl.jacrev(v)(a)
    np.testing.assert_allclose(jac, np.diag(np.asarray(back(np.ones_like(a))[0])),
                               rtol=1e-12, atol=1e-12)
    # (another signature: its own version)
    b = a[:7].copy()
    np.testing.assert_allclose(tl.vjp(v, b)[1](np.ones_like(b))[0],
                               back(np.ones_like(a))[0][:7], rtol=1e-12, atol=1e-12)


def test_vjp_of_vmap_other_argument_kinds():
    """Per-example sensitivities of a vmap with an unmapped argument against a loop of
    tl.grad over the batch."""
    X = np.random.default_rng(3).normal(size=(6, 3))
    W = np.random.default_rng(4).normal(size=(2, 3))
    v = tl.vmap(loss, in_axes=(None, 0))
    params = (W, np.array([0.1, -0.2]))
    out, back = tl.vjp(v, params, X)
    np.testing.assert_allclose(out, [loss(params, x) for x in X], rtol=1e-12)
    ones = np.ones(len(X))
    d_params, d_X = back(ones)
    grads = [tl.grad(loss, argnums=(0, 1))(params, x) for x in X]
    np.testing.assert_allclose(d_params[0], sum(g[0][0] for g in grads), rtol=1e-12)
    np.testing.assert_allclose(d_params[1], sum(g[0][1] for g in grads), rtol=1e-12)
    np.testing.assert_allclose(d_X, [g[1] for g in grads], rtol=1e-12)
    assert "isinstance(" not in back.source
