"""`tl.vmap(tl.grad(f))` where f itself takes a gradient (a gradient norm) of a loss
that loops over layers: the derivative code under vmap falls back to the gradient of the
batched function (`vmap_api.per_example_gradient_graph`), which batches the program as
parsed. (Batching it optimized first, with the steps for a final program, gave every
element zeros or wrong values for some leaves, silently.) Checked against a loop of the
same gradient and against finite differences."""

import numpy as np
import pytest

import tapeless as tl


def _predict(params, inputs):
    for W, b in params:
        outputs = np.dot(inputs, W) + b
        inputs = np.tanh(outputs)
    return outputs


def _predict_unrolled(params, inputs):
    (W1, b1), (W2, b2) = params
    h = np.tanh(np.dot(inputs, W1) + b1)
    return np.dot(h, W2) + b2


def _loss(params, x, y):
    return np.sum((_predict(params, x) - y) ** 2)


def _loss_unrolled(params, x, y):
    return np.sum((_predict_unrolled(params, x) - y) ** 2)


def _gnorm(params, x, y):
    (a, b), (c, d) = tl.grad(_loss)(params, x, y)
    return np.sum(a * a) + np.sum(b * b) + np.sum(c * c) + np.sum(d * d)


def _gnorm_sum(params, x, y):
    g = tl.grad(_loss)(params, x, y)
    return sum(np.sum(dW * dW) + np.sum(db * db) for dW, db in g)


def _gnorm_unrolled(params, x, y):
    (a, b), (c, d) = tl.grad(_loss_unrolled)(params, x, y)
    return np.sum(a * a) + np.sum(b * b) + np.sum(c * c) + np.sum(d * d)


def _data():
    rng = np.random.default_rng(0)
    params = tuple((rng.normal(size=(m, n)) / 2, rng.normal(size=n))
                   for m, n in [(3, 4), (4, 2)])
    return params, rng.normal(size=(5, 3)), rng.normal(size=(5, 2))


@pytest.mark.parametrize("fn", [_gnorm, _gnorm_sum, _gnorm_unrolled])
def test_per_example_gradients_of_a_gradient_norm(fn):
    params, X, Y = _data()
    hg = tl.grad(fn)
    per = tl.vmap(hg, in_axes=(None, 0, 0))(params, X, Y)
    leaves = tl.tree_leaves(per)
    for i in range(5):
        want = tl.tree_leaves(hg(params, X[i], Y[i]))
        for got, w in zip(leaves, want, strict=True):
            np.testing.assert_allclose(got[i], w, rtol=1e-12, atol=1e-12)
    # (the loop's values themselves, against central differences of the norm)
    eps = 1e-6
    W2 = params[1][0]
    for k in [(0, 0), (3, 1)]:
        up = W2.copy()
        up[k] += eps
        dn = W2.copy()
        dn[k] -= eps
        f_up = _gnorm_unrolled(((params[0]), (up, params[1][1])), X[2], Y[2])
        f_dn = _gnorm_unrolled(((params[0]), (dn, params[1][1])), X[2], Y[2])
        assert leaves[2][2][k] == pytest.approx((f_up - f_dn) / (2 * eps), rel=1e-5)
