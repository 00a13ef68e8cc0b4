"""Linear algebra compiled as primitives (`np.linalg`, `scipy.linalg`, einsum's
diagonals): values against NumPy and SciPy (stacked matrices, 1x1), gradients of
typical losses against finite differences and HIPS autograd, second derivatives, with
the optimizer on and off. The losses of eigenvectors and singular vectors do not
depend on the vectors' signs (LAPACK's choice), as a loss must not.

The registry-generated tests (tests/test_primitive_rules.py) check each rule alone,
first and second order."""

from __future__ import annotations

import types
from typing import Any

import autograd
import autograd.numpy as anp
import autograd.scipy.linalg as asla
import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl

sla = pytest.importorskip("scipy.linalg")

RNG = np.random.default_rng(7)


def separated(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Matrices with singular values 0.8, 1.3, 1.8, ... (distinct, away from zero)."""
    m, n = shape[-2], shape[-1]
    k = min(m, n)
    u = np.linalg.qr(rng.normal(size=shape[:-2] + (m, k)))[0]
    v = np.linalg.qr(rng.normal(size=shape[:-2] + (n, k)))[0]
    s = 0.8 + 0.5 * np.arange(k)[::-1] + rng.uniform(0.0, 0.1, size=shape[:-2] + (k,))
    return (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)


def spd(rng: np.random.Generator, n: int, batch: tuple = ()) -> np.ndarray:
    """Symmetric positive definite, eigenvalues 0.8, 1.3, ... (distinct)."""
    q = np.linalg.qr(rng.normal(size=batch + (n, n)))[0]
    w = 0.8 + 0.5 * np.arange(n) + rng.uniform(0.0, 0.1, size=batch + (n,))
    return (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)


A43 = separated(RNG, (4, 3))
A34 = separated(RNG, (3, 4))
A33 = separated(RNG, (3, 3))
S3 = spd(RNG, 3)
S3_STACK = spd(RNG, 3, (2,))
A_STACK = separated(RNG, (2, 4, 3))
B4 = RNG.normal(size=4)
B42 = RNG.normal(size=(4, 2))
W3 = RNG.normal(size=3)
C33 = RNG.normal(size=(3, 3))


def assert_tree_close(got: Any, want: Any, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_tree_close(g, w, rtol, atol)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# --- values --------------------------------------------------------------------------------


def factorizations(a, s):
    u, sv, vt = np.linalg.svd(a, full_matrices=False)
    uf, svf, vtf = np.linalg.svd(a)
    w, v = np.linalg.eigh(s)
    wu = np.linalg.eigvalsh(s, UPLO="U")
    q, r = np.linalg.qr(a)
    return (u, sv, vt, uf, svf, vtf, np.linalg.svd(a, compute_uv=False), w, v, wu,
            np.linalg.cholesky(s), np.linalg.cholesky(s, upper=True), q, r,
            np.linalg.qr(a, mode="r"), np.linalg.qr(a, "complete")[0], np.linalg.pinv(a),
            np.linalg.matrix_power(s, 3), np.linalg.matrix_power(s, 0),
            np.linalg.matrix_power(s, -2))


def least_squares(a, b):
    x, res, rank, sv = np.linalg.lstsq(a, b)
    x2 = np.linalg.lstsq(a, b, rcond=None)[0]
    return x, res, rank, sv, x2


NORM_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]
VECTOR_ORDS = [None, 0, 1, -1, 2, -2, 3, 0.5, np.inf, -np.inf]


def vector_norms(x):
    return tuple(np.linalg.norm(x, ord) for ord in VECTOR_ORDS)


def matrix_norms(a):
    return tuple(np.linalg.norm(a, ord) for ord in NORM_ORDS)


def axis_norms(x):
    return (np.linalg.norm(x, axis=1), np.linalg.norm(x, 1, axis=0, keepdims=True),
            np.linalg.norm(x, np.inf, axis=(0, 2)), np.linalg.norm(x, "nuc", (2, 1), True),
            np.linalg.norm(x, -2, axis=(-1, 0)), np.linalg.norm(x, 3, axis=-1),
            np.linalg.norm(x, keepdims=True))


def scipy_solves(a, s, b):
    c = sla.cho_factor(s)
    cl = sla.cho_factor(s, lower=True)
    return (sla.solve_triangular(a, b), sla.solve_triangular(a, b, lower=True, trans=1),
            sla.solve_triangular(a, b, trans="T", unit_diagonal=True), c[0], cl[0],
            sla.cho_solve(c, b), sla.cho_solve(cl, b))


def einsum_diagonals(a, t):
    return (np.einsum("ii->i", a), np.einsum("ii", a), np.einsum("iij->j", t),
            np.einsum("ii,ij->j", a, t[0]), np.einsum(a, [0, 0]), np.trace(t, 0, 0, 1))


@pytest.mark.parametrize("f, args", [
    (factorizations, (A43, S3)), (factorizations, (A34, S3)),
    (factorizations, (A_STACK, S3_STACK)), (factorizations, (np.array([[2.0]]), [[3.0]])),
    (least_squares, (A43, B4)), (least_squares, (A43, B42)), (least_squares, (A34, W3)),
    (vector_norms, (B4,)), (vector_norms, (np.array([0.0, 1.0, -2.0]),)),
    (matrix_norms, (A43,)), (matrix_norms, (np.array([[-2.0]]),)),
    (axis_norms, (RNG.normal(size=(2, 3, 4)),)),
    (scipy_solves, (A33, S3, W3)), (scipy_solves, (A33, S3, C33)),
    (einsum_diagonals, (C33, RNG.normal(size=(3, 3, 2)))),
], ids=["factorizations-tall", "factorizations-wide", "factorizations-stacked",
        "factorizations-1x1", "lstsq-vector", "lstsq-matrix", "lstsq-wide", "vector-norms",
        "vector-norms-zero", "matrix-norms", "matrix-norms-1x1", "axis-norms",
        "scipy-vector", "scipy-matrix", "einsum-diagonals"])
def test_values_match_numpy_and_scipy(optimize: str, f, args) -> None:
    with np.errstate(divide="ignore"):
        assert_tree_close(tl.jit(f)(*args), f(*args))


def test_scipy_linalg_is_spelled_sla_in_generated_code() -> None:
    src = tl.jit(scipy_solves).source
    assert "_sla.solve_triangular(" in src and "_sla.cho_solve(" in src


# --- gradients: finite differences and autograd -----------------------------------------------


def svd_loss(a, w):
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    # (|U|^2 and U diag(s) Vt are unchanged by flipping a pair of singular vectors.)
    return np.sum(s ** 3) + np.sum((u * u) @ w[:np.shape(s)[-1]]) + \
        np.sum(((u * s[..., None, :]) @ vt) ** 2) + np.sum(np.abs(vt[..., 0, :]) ** 2)


def svd_values_loss(a, w):
    return np.sum(np.linalg.svd(a, compute_uv=False) * w[:3])


def eigh_loss(s, w):
    lam, v = np.linalg.eigh(s)
    # A matrix function V f(lam) V^T, and the eigenvectors' squares.
    f = (v * np.exp(lam)[..., None, :]) @ np.swapaxes(v, -1, -2)
    return np.sum(f * f) + np.sum((v * v) @ w) + np.sum(lam * w)


def eigvalsh_loss(s, w):
    return np.sum(np.linalg.eigvalsh(s) ** 2 * w)


def cholesky_loss(s, w):
    ell = np.linalg.cholesky(s)
    logdet = 2.0 * np.sum(np.log(np.diagonal(ell, 0, -1, -2)))
    return logdet + np.sum(ell * ell * w) + np.sum(np.linalg.solve(ell, w) ** 2)


def qr_loss(a, w):
    q, r = np.linalg.qr(a)
    k = np.shape(r)[-2]
    return np.sum((q * q) @ w[:k]) + np.sum(r * r) + np.sum(q @ r)


def pinv_loss(a, w):
    p = np.linalg.pinv(a)
    return np.sum(p * p) + np.sum(p @ w[:np.shape(a)[-2]])


def matrix_power_loss(s, w):
    return np.sum(np.linalg.matrix_power(s, 3) * w) + \
        np.sum(np.linalg.matrix_power(s, -2) * w) + np.sum(np.linalg.matrix_power(s, 1) * w)


def lstsq_loss(a, b):
    x, res, rank, sv = np.linalg.lstsq(a, b, rcond=None)
    return np.sum(x ** 2) + np.sum(res) + np.sum(sv)


def norm_loss(a, w):
    total = 0.0
    for ord in (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf):
        total = total + np.linalg.norm(a, ord) * (1.0 + 0.1 * total)
    for ord in (None, 1, 2, 3, np.inf, -np.inf, 0.5):
        total = total + np.sum(np.linalg.norm(a, ord, axis=0) * w[:3])
    return total


def gp_loss(s, y):
    """A Gaussian process's negative log marginal likelihood, through SciPy's Cholesky."""
    c, lower = sla.cho_factor(s, lower=True)
    alpha = sla.cho_solve((c, lower), y)
    # (cho_factor's result passed on whole, with the upper factor.)
    beta = sla.cho_solve(sla.cho_factor(s), y * y)
    return 0.5 * np.dot(y, alpha) + np.sum(np.log(np.diagonal(c))) + np.sum(beta * y)


def triangular_loss(a, b):
    x = sla.solve_triangular(a, b, lower=True)
    z = sla.solve_triangular(a, x, trans="T", lower=False, unit_diagonal=True)
    return np.sum(x * x) + np.sum(z * b)


def triangular_plain_loss(a, b):
    x = sla.solve_triangular(a, b, lower=True)
    return np.sum(x * x) + np.sum(sla.solve_triangular(a, x, trans=1) * b)


def einsum_loss(a, t):
    return np.sum(np.einsum("ii->i", a) ** 3) + np.einsum("ii", a @ a) + \
        np.sum(np.einsum("iij->j", t) ** 2)


W33 = RNG.normal(size=(3, 3))
GRADIENT_CASES = [
    (svd_loss, (A43, W3)), (svd_loss, (A34, W3)), (svd_loss, (A_STACK, W3)),
    (svd_values_loss, (A43, W3)), (eigh_loss, (S3, W3)), (eigh_loss, (S3_STACK, W3)),
    (eigvalsh_loss, (S3, W3)), (cholesky_loss, (S3, W33)), (qr_loss, (A43, W3)),
    (qr_loss, (A34, W3)), (pinv_loss, (A43, RNG.normal(size=4))),
    (matrix_power_loss, (S3, W33)), (lstsq_loss, (A43, B4)), (lstsq_loss, (A43, B42)),
    (lstsq_loss, (A34, W3)), (norm_loss, (A43, W3)), (gp_loss, (S3, W3)),
    (triangular_loss, (A33 + 3.0 * np.eye(3), W3)),
    (triangular_plain_loss, (A33 + 3.0 * np.eye(3), W3)),
    (einsum_loss, (C33, RNG.normal(size=(3, 3, 2)))),
]
GRADIENT_IDS = ["svd-tall", "svd-wide", "svd-stacked", "svd-values", "eigh", "eigh-stacked",
                "eigvalsh", "cholesky", "qr-tall", "qr-wide", "pinv", "matrix-power",
                "lstsq-vector", "lstsq-matrix", "lstsq-wide", "norms", "gp-cho-solve",
                "solve-triangular", "solve-triangular-plain", "einsum-diagonals"]


@pytest.mark.parametrize("f, args", GRADIENT_CASES, ids=GRADIENT_IDS)
def test_gradients_match_finite_differences(optimize: str, f, args) -> None:
    np.testing.assert_allclose(tl.jit(f)(*args), f(*args), rtol=1e-12)
    grad = tl.grad(f, (0, 1))(*args)
    for seed in range(3):
        check_directional(grad, f, args, (0, 1), np.random.default_rng(seed), rtol=1e-5,
                          what=f.__name__)


def _with_autograd(f):
    """f's code with autograd's NumPy and SciPy in place of NumPy's and SciPy's."""
    return types.FunctionType(f.__code__, {**f.__globals__, "np": anp, "sla": asla},
                              f.__name__, f.__defaults__, f.__closure__)


# The cases whose functions autograd differentiates (it has no rule for qr, lstsq,
# matrix_power, eigvalsh, cho_factor; its norm takes no 'nuc' or matrix ord 2, and its
# solve_triangular ignores unit_diagonal).
AUTOGRAD_CASES = [(f, args) for (f, args), name in zip(GRADIENT_CASES, GRADIENT_IDS,
                                                       strict=True)
                  if name in ("svd-tall", "svd-wide", "svd-stacked", "svd-values", "eigh",
                              "eigh-stacked", "cholesky", "pinv", "solve-triangular-plain")]


@pytest.mark.parametrize("f, args", AUTOGRAD_CASES)
def test_gradients_match_autograd(f, args) -> None:
    """On symmetric perturbations (autograd symmetrizes the gradient of eigh and
    cholesky, NumPy reads one triangle): compared through A = B + B^T for those."""
    symmetric = f in (eigh_loss, cholesky_loss)
    mine = tl.grad(f, (0, 1))(*args)
    theirs = autograd.grad(_with_autograd(f), (0, 1))(*args)
    if symmetric:
        mine = (mine[0] + np.swapaxes(mine[0], -1, -2), mine[1])
        theirs = (theirs[0] + np.swapaxes(theirs[0], -1, -2), theirs[1])
    for m, t in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(m, t, rtol=1e-8, atol=1e-10)


def test_vector_norm_gradients_match_autograd() -> None:
    x = np.array([[0.5, -1.5, 2.0], [1.0, 0.25, -0.75]])
    for ord in (None, 2, 3):  # (autograd has no derivative for 1, -inf, nan for inf)
        def f(x, ord=ord):
            return np.sum(np.linalg.norm(x, ord, axis=1))
        np.testing.assert_allclose(tl.grad(f)(x), autograd.grad(_with_autograd(f))(x),
                                   rtol=1e-12)

    def matrix(x):
        return np.linalg.norm(x, "fro") + np.linalg.norm(x, "nuc")

    np.testing.assert_allclose(tl.grad(matrix)(x), autograd.grad(_with_autograd(matrix))(x),
                               rtol=1e-10)


# --- second order ---------------------------------------------------------------------------------


SECOND_CASES = ["svd-tall", "eigh", "cholesky", "qr-wide", "pinv", "lstsq-vector",
                "norms", "gp-cho-solve", "einsum-diagonals"]


@pytest.mark.parametrize("name", SECOND_CASES)
def test_second_derivatives_match_finite_differences(optimize: str, name: str) -> None:
    f, args = GRADIENT_CASES[GRADIENT_IDS.index(name)]
    v = np.random.default_rng(3).normal(size=np.shape(args[0]))

    def directional(x, *rest):
        return np.sum(tl.grad(f)(x, *rest) * v)

    hvp = tl.grad(directional)(*args)
    check_directional((hvp,), directional, args, (0,), np.random.default_rng(4), rtol=1e-5,
                      what=f"{name} second derivative")


def named_fields_loss(a, w):
    r = np.linalg.svd(a, full_matrices=False)
    e = np.linalg.eigh(a.T @ a)
    q = np.linalg.qr(a)
    return np.sum(r.S ** 2 * w) + np.sum(e.eigenvalues * w) + np.sum(e.eigenvectors ** 2 * w) + \
        np.sum(q.R * q.R) + np.sum(q.Q[:, 0] ** 2) + np.sum(r.U * r.U * a[:, :1])


def test_named_fields_of_results_differentiate(optimize: str) -> None:
    assert tl.jit(named_fields_loss)(A43, W3) == pytest.approx(named_fields_loss(A43, W3),
                                                                rel=1e-12)
    grad = tl.grad(named_fields_loss, (0, 1))(A43, W3)
    for seed in range(2):
        check_directional(grad, named_fields_loss, (A43, W3), (0, 1),
                          np.random.default_rng(seed), rtol=1e-5)


# --- ties of eigenvalues and singular values --------------------------------------------------


def eigenvalue_loss(s):
    return np.sum(np.linalg.eigh(s)[0] ** 2)


def reassembled_loss(s, c):
    w, v = np.linalg.eigh(s)
    return np.sum(((v * w) @ v.T) * c)


def spectral_norm_hvp(a, v):
    return np.sum(tl.grad(lambda x: np.linalg.norm(x, 2))(a) * v)


def test_ties_the_loss_does_not_see_are_differentiated(optimize: str) -> None:
    # sum(w^2) = |A|_F^2 at A = I, every eigenvalue tied: the gradient 2 A (in the
    # triangle eigh reads).
    eye = np.eye(3)
    np.testing.assert_allclose(tl.grad(eigenvalue_loss)(eye), 2.0 * eye, atol=1e-14)
    # The spectral norm of a rank-1 matrix (its other singular values tied at 0) has a
    # second derivative: its top singular vectors' derivative does not see the tie.
    ones = np.ones((3, 4)) + np.outer([0.0, 0.5, 1.0], [1.0, 0.0, 0.0, 0.0])
    ones = np.outer(np.sum(ones, 1), np.sum(ones, 0))  # (rank 1)
    v = np.random.default_rng(0).normal(size=(3, 4))
    hvp = tl.grad(spectral_norm_hvp)(ones, v)
    assert np.all(np.isfinite(hvp))
    check_directional((hvp,), spectral_norm_hvp, (ones, v), (0,), np.random.default_rng(1),
                      rtol=1e-4)


def test_ties_the_loss_sees_give_no_silent_number() -> None:
    # V diag(w) V^T is A itself, but at tied eigenvalues the derivative through the
    # eigenvectors does not exist term by term: inf or nan, never a wrong finite number.
    s = np.diag([1.0, 1.0, 2.0])
    with np.errstate(all="ignore"):
        g = tl.grad(reassembled_loss)(s, C33)
    assert not np.all(np.isfinite(g))
    # (Away from the tie, the derivative is C's triangle read.)
    g = tl.grad(reassembled_loss)(S3, C33)
    np.testing.assert_allclose(g, np.tril(C33 + C33.T, -1) + np.diag(np.diag(C33)),
                               atol=1e-10)


# --- what is refused -------------------------------------------------------------------------


def full_u_loss(a):
    u, s, vt = np.linalg.svd(a)
    return np.sum(u[:, -1] ** 2 * np.arange(np.shape(u)[0]))


def full_s_loss(a):
    u, s, vt = np.linalg.svd(a)
    return np.sum(s) + np.sum(u[:, :3] * u[:, :3])


def hermitian_loss(s):
    return np.sum(np.linalg.svd(s, hermitian=True, compute_uv=False))


def test_undetermined_columns_of_a_full_svd_are_refused() -> None:
    with pytest.raises(ValueError, match="beyond min"):
        tl.grad(full_u_loss)(A43)
    # (Only the determined columns used: differentiable.)
    check_directional((tl.grad(full_s_loss)(A43),), full_s_loss, (A43,), (0,),
                      np.random.default_rng(0), rtol=1e-6)


def test_undetermined_columns_of_a_complete_qr_are_refused() -> None:
    def complete_q(a):
        return np.sum(np.linalg.qr(a, "complete").Q ** 3)

    def complete_r(a):
        q, r = np.linalg.qr(a, mode="complete")
        return np.sum(r ** 2) + np.sum(q[:, :3] ** 4)

    with pytest.raises(ValueError, match="beyond min"):
        tl.grad(complete_q)(A43)
    check_directional((tl.grad(complete_r)(A43),), complete_r, (A43,), (0,),
                      np.random.default_rng(0), rtol=1e-6)


def test_hermitian_svd_is_refused() -> None:
    with pytest.raises(ValueError, match="hermitian=True"):
        tl.grad(hermitian_loss)(S3)


def test_triangle_read_gradients_lie_in_that_triangle() -> None:
    g = tl.grad(eigvalsh_loss)(S3, W3)
    assert np.all(np.triu(g, 1) == 0.0) and np.any(np.tril(g, -1) != 0.0)
    g = tl.grad(lambda s: np.sum(np.linalg.cholesky(s, upper=True) ** 3))(S3)
    assert np.all(np.tril(g, -1) == 0.0) and np.any(np.triu(g, 1) != 0.0)
