"""`scipy.special` functions compiled as primitives (registered only where SciPy is
installed): values against SciPy, gradients of typical uses against finite differences,
with the optimizer on and off."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl

sp = pytest.importorskip("scipy.special")
import scipy  # noqa: E402
import scipy.special  # noqa: E402
from scipy.special import log_softmax, logsumexp, softmax, xlogy  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.uniform(0.2, 0.8, size=(2, 3))
Y = RNG.uniform(0.5, 2.0, size=(2, 3))


def unary_all(x):
    return (scipy.special.expit(x), scipy.special.logit(x), scipy.special.erf(x),
            scipy.special.erfc(x), scipy.special.gammaln(x), scipy.special.digamma(x),
            scipy.special.entr(x), scipy.special.polygamma(1, x))


def binary_all(x, y):
    return (xlogy(x, y), scipy.special.xlog1py(x, y), logsumexp(x), logsumexp(x, axis=1),
            logsumexp(x, axis=0, b=y, keepdims=True), softmax(x, axis=1), softmax(x),
            log_softmax(x, axis=-1), log_softmax(x))


def test_values_match_scipy(optimize: str) -> None:
    for f, args in ((unary_all, (X,)), (binary_all, (X, Y)), (unary_all, (0.4,))):
        got, want = tl.jit(f)(*args), f(*args)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_scipy_special_is_spelled_sp_in_generated_code() -> None:
    src = tl.jit(unary_all).source
    assert "_sp.expit(" in src and "_sp.polygamma(1, " in src


def classifier_loss(W, bias, X, labels):
    """Mean cross-entropy of a linear softmax classifier, through logsumexp."""
    logits = X @ W + bias
    picked = np.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return np.mean(logsumexp(logits, axis=1) - picked)


def weighted_loss(a, b):
    return logsumexp(a, axis=-1, b=b, keepdims=True).sum() + np.sum(xlogy(b, b))


def softmax_losses(z):
    p = softmax(z, axis=1)
    return np.sum(p * p) - np.sum(log_softmax(z, axis=0)[0]) + \
        np.sum(scipy.special.expit(z) * scipy.special.gammaln(z + 2.0))


@pytest.mark.parametrize("f, args, argnums", [
    (classifier_loss, (RNG.normal(size=(4, 3)), RNG.normal(size=3), RNG.normal(size=(5, 4)),
                       np.array([0, 2, 1, 1, 0])), (0, 1)),
    (weighted_loss, (RNG.normal(size=(2, 4)), RNG.uniform(0.5, 1.5, size=(2, 4))), (0, 1)),
    (softmax_losses, (RNG.normal(size=(3, 4)),), (0,)),
], ids=["classifier", "weighted-logsumexp", "softmax"])
def test_gradients_match_finite_differences(optimize: str, f, args, argnums) -> None:
    grad = tl.grad(f, argnums)(*args)
    if len(argnums) == 1:
        grad = (grad,)
    np.testing.assert_allclose(tl.jit(f)(*args), f(*args), rtol=1e-12)
    for seed in range(3):
        check_directional(grad, f, args, argnums, np.random.default_rng(seed),
                          what=f.__name__)


def test_classifier_hessian_vector_product(optimize: str) -> None:
    """Second order through logsumexp: the gradient's directional derivative."""
    W, X = RNG.normal(size=(4, 3)), RNG.normal(size=(5, 4))
    labels, bias = np.array([0, 2, 1, 1, 0]), np.zeros(3)
    v = RNG.normal(size=(4, 3))

    def gv(W):
        return np.sum(tl.grad(classifier_loss)(W, bias, X, labels) * v)

    hv = tl.grad(gv)(W)
    g = tl.grad(classifier_loss)
    h = 1e-5
    fd = (g(W + h * v, bias, X, labels) - g(W - h * v, bias, X, labels)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-8)


def test_logsumexp_return_sign_is_refused_for_gradients() -> None:
    a = np.ones(3)
    value = tl.jit(lambda a: logsumexp(a, return_sign=True))(a)
    np.testing.assert_allclose(value[0], logsumexp(a))
    with pytest.raises(NotImplementedError, match="return_sign"):
        tl.grad(lambda a: logsumexp(a, return_sign=True)[0])(a)


def test_xlogy_derivative_at_x_zero() -> None:
    g = tl.grad(lambda x, y: np.sum(xlogy(x, y)), (0, 1))(np.array([0.0, 0.0, 2.0]),
                                                       np.array([0.0, 3.0, 3.0]))
    np.testing.assert_allclose(g[0], [0.0, np.log(3.0), np.log(3.0)])
    np.testing.assert_allclose(g[1], [0.0, 0.0, 2.0 / 3.0])
