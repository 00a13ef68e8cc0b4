"""vmap where an index differs across the batch on the reverse side of a gather, or in
an update of an array: `x[i] = v`, `np.add.at(x, i, v)`, and the sensitivity of `x[i]`
(what `vmap(grad(f))` computes when `f` reads `x[i]`). Each is one NumPy advanced index
over the batch (`batch_rules.scatter_each`, `batch_rules.scatter_gathered`), checked
against a loop over the batch, including the empty batch and repeated positions."""

import numpy as np
import pytest

import tapeless as tl


def _read_one(w, i):
    t = np.tanh(w)
    return t[i] ** 2


def _read_pair(W, i, j):
    return np.sin(W[i, j]) * W[j, i]


def _read_many(w, idx):
    return np.sum(w[idx] ** 2)


def _set_item(x, i, v):
    y = np.zeros_like(x)
    y[i] = v
    return y * x


def _add_at(x, i, v):
    y = x.copy()
    np.add.at(y, i, v)
    return y


def _set_row(A, i, r):
    B = A.copy()
    B[i] = r
    return B


def _loop(f, in_axes, *args):
    n = next(np.shape(a)[0] for a, ax in zip(args, in_axes, strict=True) if ax is not None)
    return np.stack([f(*[a if ax is None else a[k] for a, ax in zip(args, in_axes, strict=True)])
                     for k in range(n)])


def test_per_example_gradient_of_a_read_at_each_examples_index():
    w = np.linspace(-1.0, 1.3, 7)
    i = np.array([0, 3, 3, -1, 6])
    got = tl.vmap(tl.grad(_read_one), in_axes=(None, 0))(w, i)
    want = _loop(tl.grad(_read_one), (None, 0), w, i)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    # (closed form: d/dw_k tanh(w_i)^2 = 2 tanh(w_i) (1 - tanh(w_i)^2) at k = i)
    t = np.tanh(w[i])
    np.testing.assert_allclose(got[np.arange(5), i % 7], 2 * t * (1 - t ** 2), rtol=1e-14)
    assert np.count_nonzero(got) == 5


def test_empty_batch_gives_the_empty_stack_of_gradients():
    # (the per-element fallback raises on an empty batch: these run on the whole batch)
    w = np.linspace(-1.0, 1.0, 7)
    got = tl.vmap(tl.grad(_read_one), in_axes=(None, 0))(w, np.array([], dtype=int))
    assert got.shape == (0, 7)
    ws = np.zeros((0, 6))
    got = tl.vmap(tl.grad(_read_many))(ws, np.zeros((0, 3), dtype=int))
    assert got.shape == (0, 6)


def test_two_indices_per_example_and_a_batched_table():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 4))
    i, j = np.array([0, 2, 1, 3, 3]), np.array([1, 2, -1, 0, 3])
    got = tl.vmap(tl.grad(_read_pair), in_axes=(None, 0, 0))(W, i, j)
    np.testing.assert_array_equal(got, _loop(tl.grad(_read_pair), (None, 0, 0), W, i, j))
    Ws = rng.normal(size=(5, 4, 4))
    got = tl.vmap(tl.grad(_read_pair))(Ws, i, j)
    np.testing.assert_array_equal(got, _loop(tl.grad(_read_pair), (0, 0, 0), Ws, i, j))


def test_repeated_positions_within_an_example_add_up():
    ws = np.arange(24.0).reshape(4, 6) / 5
    idx = np.array([[0, 0, 1], [2, 3, 3], [5, 5, 5], [1, 2, 3]])
    got = tl.vmap(tl.grad(_read_many))(ws, idx)
    want = np.zeros_like(ws)
    for k in range(4):
        for p in idx[k]:
            want[k, p] += 2 * ws[k, p]
    np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_array_equal(got, _loop(tl.grad(_read_many), (0, 0), ws, idx))


@pytest.mark.parametrize("in_axes", [(0, 0, 0), (None, 0, 0), (0, 0, None), (None, 0, None)])
def test_item_assignment_at_each_examples_index(in_axes):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5)) if in_axes[0] == 0 else rng.normal(size=5)
    i = np.array([0, 4, -2, 2, 2, 1])
    v = rng.normal(size=6) if in_axes[2] == 0 else 2.5
    got = tl.vmap(_set_item, in_axes=in_axes)(x, i, v)
    np.testing.assert_array_equal(got, _loop(_set_item, in_axes, x, i, v))


def test_add_at_with_an_index_array_per_example():
    x = np.arange(12.0).reshape(3, 4)
    i = np.array([[0, 0, 3], [1, 2, 1], [3, 3, 3]])
    v = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    got = tl.vmap(_add_at)(x, i, v)
    np.testing.assert_array_equal(got, _loop(_add_at, (0, 0, 0), x, i, v))
    got = tl.vmap(_add_at, in_axes=(None, 0, None))(x[0], i, v[0])
    np.testing.assert_array_equal(got, _loop(_add_at, (None, 0, None), x[0], i, v[0]))


def test_row_assignment_and_its_gradient():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(3, 4))
    i = np.array([2, 0, 1, 0])
    r = rng.normal(size=(4, 4))
    got = tl.vmap(_set_row, in_axes=(None, 0, 0))(A, i, r)
    np.testing.assert_array_equal(got, _loop(_set_row, (None, 0, 0), A, i, r))

    def loss(A, i, r):
        return np.sum(np.sin(_set_row(A, i, r)) ** 2)

    g = tl.vmap(tl.grad(loss, argnums=(0, 2)), in_axes=(None, 0, 0))(A, i, r)
    for k in range(4):
        gA, gr = tl.grad(loss, argnums=(0, 2))(A, i[k], r[k])
        np.testing.assert_allclose(g[0][k], gA, rtol=1e-14)
        np.testing.assert_allclose(g[1][k], gr, rtol=1e-14)


def test_an_index_out_of_range_raises_as_the_loop_does():
    x = np.zeros(5)
    with pytest.raises(IndexError):
        tl.vmap(_set_item, in_axes=(None, 0, None))(x, np.array([1, 5]), 1.0)
    with pytest.raises(IndexError):
        tl.vmap(tl.grad(_read_one), in_axes=(None, 0))(x, np.array([0, -6]))
