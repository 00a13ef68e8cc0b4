"""Stacks of outer products (per-example weight gradients) spelled as one einsum on the
Python backend (`opt.arrays._stacked_outer`): values bit for bit as the broadcast
multiply, per-example gradients of programs not written for the benchmark against a loop
of `tl.grad`."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl

RNG = np.random.default_rng(3)
SPEC = "np.einsum('...i,...j->...ij'"


@pytest.fixture(autouse=True)
def _optimized(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _relu(z):
    return np.maximum(z, 0.0)


ACTIVATIONS = {"tanh": np.tanh, "sin": np.sin, "sigmoid": _sigmoid, "relu": _relu}


def _mlp_loss(act, depth):
    # (one function per depth, the layers' parameters as separate arguments)
    def one(W1, b1, x, y):
        return np.sum((W1 @ x + b1 - y) ** 2)

    def two(W1, b1, W2, b2, x, y):
        return np.sum((W2 @ act(W1 @ x + b1) + b2 - y) ** 2)

    def four(W1, b1, W2, b2, W3, b3, W4, b4, x, y):
        h = act(W2 @ act(W1 @ x + b1) + b2)
        return np.sum((W4 @ act(W3 @ h + b3) + b4 - y) ** 2)
    return {1: one, 2: two, 4: four}[depth]


def _assert_as_loop(v, g, args, in_axes):
    batched = [a for a, ax in zip(args, in_axes, strict=True) if ax == 0]
    size = len(batched[0])
    loop = [g(*[a[i] if ax == 0 else a for a, ax in zip(args, in_axes, strict=True)])
            for i in range(size)]
    got = tl.tree_leaves(v(*args))
    want = [np.stack(parts) for parts in zip(*[tl.tree_leaves(r) for r in loop],
                                            strict=True)]
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("widths", [(40, 56), (24, 48, 40), (33, 70, 17, 50, 9)])
def test_per_example_mlp_gradients_as_einsum(act, widths):
    # (MLPs of 1, 2 and 4 layers, widths unlike the benchmark's, a squared error: each
    # weight's per-example gradient is one einsum, not a broadcast multiply, but the
    # small ones: 12 examples of a 17 x 9 gradient stay a broadcast multiply)
    params = []
    for m, n in zip(widths, widths[1:], strict=False):
        params += [RNG.normal(size=(n, m)) / np.sqrt(m), RNG.normal(size=n)]
    X = RNG.normal(size=(12, widths[0]))
    Y = RNG.normal(size=(12, widths[-1]))
    g = tl.grad(_mlp_loss(ACTIVATIONS[act], len(widths) - 1),
                argnums=tuple(range(len(params))))
    in_axes = (None,) * len(params) + (0, 0)
    v = tl.vmap(g, in_axes=in_axes)
    _assert_as_loop(v, g, (*params, X, Y), in_axes)
    source = v.source_for(*params, X, Y)
    big = sum(12 * W.size >= 2048 for W in params[::2])
    if act == "relu":  # (the sensitivity through `np.maximum` may be a zero, whose
        # kind is not an array's: that product stays as it was)
        assert 1 <= source.count(SPEC) <= big, source
    else:
        assert source.count(SPEC) == big and \
            source.count("x[:, None, :]") == (12 * params[0].size < 2048), source


def _bilinear_softmax(A, B, u, v, label):
    # (not an MLP: per-example logits u^T A_k v through a transposed product, a
    # softmax cross-entropy, a weight read in two products)
    s = B.T @ np.tanh(A @ v + u)
    s = s - np.max(s)
    return np.log(np.sum(np.exp(s))) - np.sum(s * label) + 0.1 * np.sum((A @ u) ** 2)


def test_per_example_gradients_of_another_program():
    m, n, k = 48, 48, 10
    A, B = RNG.normal(size=(m, n)) / 7, RNG.normal(size=(m, k)) / 7
    U, V = RNG.normal(size=(64, m)), RNG.normal(size=(64, n))
    labels = np.eye(k)[RNG.integers(0, k, size=64)]
    g = tl.grad(_bilinear_softmax, argnums=(0, 1))
    v = tl.vmap(g, in_axes=(None, None, 0, 0, 0))
    _assert_as_loop(v, g, (A, B, U, V, labels), (None, None, 0, 0, 0))
    assert SPEC in v.source_for(A, B, U, V, labels)


def _outer_cols_rows(u, v):
    return u[:, :, None] * v[:, None, :]


def _outer_rows_cols(u, v):
    return v[:, None, :] * u[:, :, None]


def _outer_expand_dims(u, v):
    return np.expand_dims(u, -1) * np.expand_dims(v, 1)


def _outer_3d(u, v):
    return u[:, :, :, None] * v[:, :, None, :]


@pytest.mark.parametrize("fn", [_outer_cols_rows, _outer_rows_cols, _outer_expand_dims])
def test_stacked_outer_products_written_by_hand(fn):
    u, v = RNG.normal(size=(40, 30)), RNG.normal(size=(40, 20))
    f = tl.jit(fn)
    np.testing.assert_array_equal(f(u, v), fn(u, v))  # (one product an element: exact)
    assert SPEC in f.source_for(u, v)


def test_stacked_outer_products_over_two_leading_axes():
    u, v = RNG.normal(size=(4, 10, 16)), RNG.normal(size=(4, 10, 12))
    f = tl.jit(_outer_3d)
    np.testing.assert_array_equal(f(u, v), _outer_3d(u, v))
    assert SPEC in f.source_for(u, v)


@pytest.mark.parametrize("shapes", [((4, 8), (4, 8)),          # (small: the call costs more)
                                    ((1, 40), (40, 60)),       # (leading axes broadcast)
                                    ((60,), (60,))])            # (no leading axis)
def test_other_products_stay_broadcast(shapes):
    u, v = RNG.normal(size=shapes[0]), RNG.normal(size=shapes[1])
    fn = (lambda a, b: a[:, None] * b[None, :]) if len(shapes[0]) == 1 else _outer_cols_rows
    f = tl.jit(fn)
    np.testing.assert_array_equal(f(u, v), fn(u, v))
    assert "einsum" not in f.source_for(u, v)


def test_integer_outer_products_stay_broadcast():
    u, v = RNG.integers(0, 9, size=(40, 30)), RNG.integers(0, 9, size=(40, 20))
    f = tl.jit(_outer_cols_rows)
    np.testing.assert_array_equal(f(u, v), _outer_cols_rows(u, v))
    assert "einsum" not in f.source_for(u, v)


def _rows(W1, b1, W2, b2, x):
    return np.sum(np.sin(np.tanh(x @ W1 + b1) @ W2 + b2))


def _transposed(W1, b1, W2, b2, x):
    return np.sum(np.sin(W2.T @ np.tanh(W1.T @ x + b1) + b2))


@pytest.mark.parametrize("fn", [_rows, _transposed])
def test_per_example_gradients_of_other_spellings(fn):
    # (`x @ W` and `W.T @ x`: the outer product made the other way round)
    W1, W2 = RNG.normal(size=(30, 50)) / 6, RNG.normal(size=(50, 20)) / 7
    b1, b2 = RNG.normal(size=50), RNG.normal(size=20)
    X = RNG.normal(size=(16, 30))
    g = tl.grad(fn, argnums=(0, 1, 2, 3))
    in_axes = (None,) * 4 + (0,)
    v = tl.vmap(g, in_axes=in_axes)
    _assert_as_loop(v, g, (W1, b1, W2, b2, X), in_axes)
    assert v.source_for(W1, b1, W2, b2, X).count(SPEC) == 2


ROWS = np.array([0, 2, 1, 2])


def _indexed_outer(x, y):
    return np.sum(x[ROWS, None] * y[None, :])


def test_an_integer_array_index_beside_the_new_axis_is_not_an_outer_product():
    # (`x[ROWS, None]`: the index tuple holds an array, which the matcher compared with
    # `slice(None)` and failed the compile on, "truth value ... ambiguous")
    x, y = RNG.normal(size=64), RNG.normal(size=64)
    np.testing.assert_allclose(tl.jit(_indexed_outer)(x, y), _indexed_outer(x, y), rtol=1e-12)
    want = np.bincount(ROWS, minlength=64) * np.sum(y)
    np.testing.assert_allclose(tl.grad(_indexed_outer)(x, y), want, rtol=1e-12)
