"""Two-operand einsums in derivative code run as one `np.matmul` where BLAS is faster
(`runtime.einsum_matmul_plan`, `rules_numpy._einsum_call`): the values against
`np.einsum`, and gradients and Hessian-vector products through such einsums against
autograd (shapes large enough that the matmul path is taken)."""

from __future__ import annotations

from typing import Any

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import tapeless as tl
from tapeless.primitives.rules_numpy import _einsum_call
from tapeless.runtime import einsum_matmul_plan

TAKEN = [
    ("kij,knj->kni", (25, 10, 10), (25, 1000, 10)),
    ("kni,knj->kij", (25, 1000, 10), (25, 1000, 10)),
    ("kni,kij->knj", (25, 1000, 10), (25, 10, 10)),
    ("ij,jk->ik", (60, 70), (70, 50)),
    ("ij,kj->ki", (60, 70), (50, 70)),
    ("ij,j->i", (400, 300), (300,)),
    ("j,ij->i", (300,), (400, 300)),
    ("abc,cd->dba", (20, 30, 40), (40, 15)),
    ("bij,bjk->bki", (8, 30, 40), (8, 40, 20)),
    ("iaj,jbi->ba", (30, 20, 40), (40, 25, 30)),
]


@pytest.mark.parametrize("spec, shape_a, shape_b", TAKEN)
def test_matmul_plan_agrees_with_einsum(spec: str, shape_a: tuple, shape_b: tuple) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    assert einsum_matmul_plan(spec, a, b) is not None
    got = _einsum_call(spec, (a, b))
    want = np.einsum(spec, a, b)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    # (complex operands too)
    c = a + 1j * rng.standard_normal(shape_a)
    np.testing.assert_allclose(_einsum_call(spec, (c, b)), np.einsum(spec, c, b),
                               rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("spec, shape_a, shape_b, dtype", [
    ("kni,kni->kn", (25, 1000, 10), (25, 1000, 10), float),  # (a batched dot product)
    ("kn,kni->kni", (25, 1000), (25, 1000, 10), float),  # (nothing contracted)
    ("ij,jk->ik", (3, 4), (4, 5), float),  # (too small)
    ("ij,jk", (60, 70), (70, 50), float),  # (implicit output)
    ("...ij,...jk->...ik", (8, 60, 70), (8, 70, 50), float),  # (ellipsis)
    ("ii,ij->j", (300, 300), (300, 300), float),  # (a repeated label)
    ("ij,kl->ik", (60, 70), (50, 80), float),  # (j and l summed from one operand only)
    ("ij,jk->ik", (60, 70), (70, 50), np.int64),  # (integers: einsum's own loop)
])
def test_matmul_plan_declines(spec: str, shape_a: tuple, shape_b: tuple, dtype: Any) -> None:
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(shape_a) * 10).astype(dtype)
    b = (rng.standard_normal(shape_b) * 10).astype(dtype)
    assert einsum_matmul_plan(spec, a, b) is None
    np.testing.assert_array_equal(_einsum_call(spec, (a, b)), np.einsum(spec, a, b))


def test_sizes_that_differ_are_einsums_error() -> None:
    a, b = np.ones((60, 70)), np.ones((71, 50))
    assert einsum_matmul_plan("ij,jk->ik", a, b) is None
    with pytest.raises(ValueError):
        _einsum_call("ij,jk->ik", (a, b))


def quadratic_form(Q, x):
    # (GMM's shape: a batch of matrices applied to a batch of points, then squared norms)
    Qx = np.einsum("kij,knj->kni", Q, x)
    return np.sum(np.tanh(np.einsum("kni,kni->kn", Qx, Qx)))


def quadratic_form_ag(Q, x):
    Qx = anp.einsum("kij,knj->kni", Q, x)
    return anp.sum(anp.tanh(anp.einsum("kni,kni->kn", Qx, Qx)))


def mlp_einsum(W1, W2, X):
    h = np.tanh(np.einsum("oi,bi->bo", W1, X))
    return np.sum(np.einsum("oh,bh->bo", W2, h) ** 2)


def mlp_einsum_ag(W1, W2, X):
    h = anp.tanh(anp.einsum("oi,bi->bo", W1, X))
    return anp.sum(anp.einsum("oh,bh->bo", W2, h) ** 2)


def bilinear(A, u, v):
    return np.sin(np.einsum("i,ij,j->", u, A, v)) + np.tensordot(A, A, 2) * 1e-3 \
        + np.sum(np.inner(A, A)) * 1e-4


def bilinear_ag(A, u, v):
    return anp.sin(anp.einsum("i,ij,j->", u, A, v)) + anp.tensordot(A, A, 2) * 1e-3 \
        + anp.sum(anp.inner(A, A)) * 1e-4


def _data(name: str) -> tuple:
    rng = np.random.default_rng(2)
    if name == "quadratic_form":
        return (rng.standard_normal((5, 6, 6)) * 0.3, rng.standard_normal((5, 800, 6)))
    if name == "mlp_einsum":
        return (rng.standard_normal((40, 30)) * 0.2, rng.standard_normal((20, 40)) * 0.2,
                rng.standard_normal((200, 30)))
    return (rng.standard_normal((300, 300)) * 0.05, rng.standard_normal(300),
            rng.standard_normal(300))


@pytest.mark.parametrize("fn, ag", [(quadratic_form, quadratic_form_ag),
                                     (mlp_einsum, mlp_einsum_ag), (bilinear, bilinear_ag)])
def test_gradient_and_hvp_against_autograd(fn: Any, ag: Any) -> None:
    args = _data(fn.__name__)
    rng = np.random.default_rng(3)
    tangents = tuple(rng.standard_normal(np.shape(a)) for a in args)
    argnums = tuple(range(len(args)))
    grad = tl.grad(fn, argnums=argnums)
    ag_grad = autograd.grad(ag, argnum=argnums)
    for got, want in zip(grad(*args), ag_grad(*args), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    def ag_directional(*xs):
        return sum(anp.sum(g * t) for g, t in zip(ag_grad(*xs), tangents, strict=True))

    _, hvp = tl.jvp(grad, args, tangents)
    want_hvp = autograd.grad(ag_directional, argnum=argnums)(*args)
    for got, want in zip(hvp, want_hvp, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
    # reverse over reverse too
    def directional(xs):
        return sum(np.sum(g * t) for g, t in zip(grad(*xs), tangents, strict=True))

    vjp_grad = tl.grad(directional)(args)
    for got, want in zip(vjp_grad, want_hvp, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_vmap_of_a_large_einsum() -> None:
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((6, 60, 70)), rng.standard_normal((70, 50))
    got = tl.vmap(lambda a: np.einsum("ij,jk->ik", a, B))(A)
    np.testing.assert_allclose(got, np.stack([a @ B for a in A]), rtol=1e-11, atol=1e-11)
