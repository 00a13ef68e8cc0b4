"""Reverse rules of the NumPy linear-algebra primitives (`np.linalg`, `numpy_ops.py`).
Each rule returns the value and a backpropagator giving one sensitivity per parameter
(ZERO where there is none); like every rule, they are compiled by tapeless, so they
differentiate again. Matrices may be stacked (leading batch axes) where NumPy allows it.

The results are the matrix-calculus ones: Giles, "An extended collection of matrix
derivative results" (2008) for eigh and qr; Townsend, "Differentiating the singular
value decomposition" (2016) for svd; Murray, "Differentiation of the Cholesky
decomposition" (2016); Golub and Pereyra (1973) for the pseudo-inverse.

Where NumPy reads one triangle of its argument (eigh, eigvalsh, cholesky), the
gradient is that of the function NumPy computes: it lies in that triangle (the
entries of the other one are never read), and equals the symmetric gradient's
contribution for every symmetric perturbation."""

# ruff: noqa: E731
from __future__ import annotations

import numpy as np

from ..runtime import ZERO, expand_reduced, sens_index
from .registry import rule


def _t(x):
    """The transpose of each matrix of a stack."""
    return np.swapaxes(x, -1, -2)


def _read_triangle(g, lower):
    """The gradient with respect to a matrix of which only one triangle is read (the
    lower one when `lower`) as a symmetric matrix, from a gradient `g` with respect to
    that symmetric matrix (whose symmetric part alone matters)."""
    diagonal = np.tril(np.triu(g))  # (not g * eye: a nan off the diagonal stays there)
    if lower:
        return np.tril(g + _t(g), -1) + diagonal
    return np.triu(g + _t(g), 1) + diagonal


# Machine epsilon: a smallest singular value within it (times the matrix's size) of the
# largest is taken as 0 by the -2 norm's derivative.
_EPS = float(np.finfo(np.float64).eps)


def _divide(m, by, skip_diagonal):
    """m / by elementwise, and 0 where m is exactly 0 (and on the diagonal when asked).
    At a tie of eigenvalues or singular values (or a zero one) the derivative of the
    vectors does not exist; a loss that does not see them gives m exactly 0 there, and
    its derivative is taken as 0; otherwise m / 0 is inf or nan, not a silent number."""
    skip = np.equal(m, 0.0)
    if skip_diagonal:
        skip = np.logical_or(skip, np.eye(np.shape(m)[-1]) > 0.0)
    return np.where(skip, 0.0, m / np.where(skip, 1.0, by))


def _is_lower(uplo):
    return uplo == "L" or uplo == "l"


def _unused_columns(du, k):
    """Refuse a sensitivity on the columns of a full U or Q beyond the first k, which
    the factorization does not determine."""
    if np.shape(du)[-1] > k:
        if np.any(np.not_equal(du[..., k:], 0.0)):
            raise ValueError("tapeless cannot differentiate the columns of a complete "
                             "factorization beyond min(m, n), which it does not determine: "
                             "use full_matrices=False (svd) or mode='reduced' (qr)")
        return du[..., :k]
    return du


@rule("np.diagonal")
def _diagonal(a, offset, axis1, axis2):
    nd = np.ndim(a)
    ax1 = axis1 % nd
    ax2 = axis2 % nd
    out = np.diagonal(a, offset, axis1, axis2)

    def back(d):
        # d[..., i] goes to [..., i + max(-offset, 0), i + max(offset, 0)] of the two
        # axes, moved to the end: a product with a 0/1 selection tensor (linear in d).
        n1 = np.shape(a)[ax1]
        n2 = np.shape(a)[ax2]
        i = np.arange(np.shape(out)[-1])
        rows = np.equal(np.expand_dims(i + max(-offset, 0), (1, 2)),
                        np.expand_dims(np.arange(n1), (0, 2)))
        cols = np.equal(np.expand_dims(i + max(offset, 0), (1, 2)),
                        np.expand_dims(np.arange(n2), (0, 1)))
        full = np.einsum("...i,irc->...rc", d, rows * cols * 1.0)
        return np.moveaxis(full, (nd - 2, nd - 1), (ax1, ax2)), ZERO, ZERO, ZERO

    return out, back


# --- singular values and eigenvalues ---------------------------------------------------------


@rule("np.linalg.svd")
def _svd(a, full_matrices, compute_uv, hermitian):
    if not compute_uv:
        s = np.linalg.svd(a, compute_uv=False, hermitian=hermitian)

        def back_s(d):
            if hermitian:
                raise ValueError(_hermitian_refused("svd"))
            usv = np.linalg.svd(a, full_matrices=False)
            return usv[0] @ (np.expand_dims(d, -1) * usv[2]), ZERO, ZERO, ZERO

        return s, back_s
    usv = np.linalg.svd(a, full_matrices=full_matrices, hermitian=hermitian)
    u = usv[0]
    s = usv[1]
    vt = usv[2]
    k = np.shape(s)[-1]

    def back(d):
        if hermitian:
            raise ValueError(_hermitian_refused("svd"))
        du = sens_index(d, 0)
        dvt = sens_index(d, 2)
        if du is not ZERO:
            du = _unused_columns(du, k)
        if dvt is not ZERO:
            dvt = _t(_unused_columns(_t(dvt), k))
        da = _svd_back(u[..., :k], s, vt[..., :k, :], du, sens_index(d, 1), dvt)
        return da, ZERO, ZERO, ZERO

    return usv, back


def _hermitian_refused(name):
    # (A check is raised where the backpropagator computes its result: a call kept
    # for its check alone would be removed as unused.)
    return (f"tapeless cannot differentiate np.linalg.{name} with hermitian=True (NumPy "
            f"then reads one triangle only): pass a symmetric matrix with hermitian=False")


def _svd_back(u, s, vt, du, ds, dvt):
    """Townsend (2016), real case: A = U diag(s) Vt with U (m, k), Vt (k, n) and the k
    singular values distinct and nonzero where U's or Vt's sensitivity sees them."""
    k = np.shape(s)[-1]
    eye = np.eye(k)
    s_col = np.expand_dims(s, -1)  # s_i
    s_row = np.expand_dims(s, -2)  # s_j
    inner = eye * 0.0
    extra = 0.0
    if ds is not ZERO:
        inner = inner + eye * np.expand_dims(ds, -2)
    if du is not ZERO or dvt is not ZERO:
        gaps = s_row * s_row - s_col * s_col  # s_j^2 - s_i^2
        if du is not ZERO:
            utdu = _t(u) @ du
            inner = inner + _divide((utdu - _t(utdu)) * s_row, gaps, True)
            extra = extra + _divide(du - u @ utdu, s_row, False) @ vt
        if dvt is not ZERO:
            vtdv = vt @ _t(dvt)
            inner = inner + _divide(s_col * (vtdv - _t(vtdv)), gaps, True)
            extra = extra + u @ _divide(dvt - (dvt @ _t(vt)) @ vt, s_col, False)
    return u @ inner @ vt + extra


@rule("np.linalg.eigh")
def _eigh(a, UPLO):  # noqa: N803
    wv = np.linalg.eigh(a, UPLO)
    w = wv[0]
    v = wv[1]

    def back(d):
        dw = sens_index(d, 0)
        dv = sens_index(d, 1)
        n = np.shape(w)[-1]
        eye = np.eye(n)
        inner = eye * 0.0
        if dw is not ZERO:
            inner = inner + eye * np.expand_dims(dw, -2)
        if dv is not ZERO:
            # (V^T dV)_ij / (w_j - w_i) off the diagonal: the eigenvectors' derivative
            # needs distinct eigenvalues.
            gaps = np.expand_dims(w, -2) - np.expand_dims(w, -1)
            inner = inner + _divide(_t(v) @ dv, gaps, True)
        return _read_triangle(v @ inner @ _t(v), _is_lower(UPLO)), ZERO

    return wv, back


@rule("np.linalg.eigvalsh")
def _eigvalsh(a, UPLO):  # noqa: N803
    def back(d):
        v = np.linalg.eigh(a, UPLO)[1]
        return _read_triangle((v * np.expand_dims(d, -2)) @ _t(v), _is_lower(UPLO)), ZERO

    return np.linalg.eigvalsh(a, UPLO), back


# --- factorizations -----------------------------------------------------------------------------


@rule("np.linalg.cholesky")
def _cholesky(a, upper):
    c = np.linalg.cholesky(a, upper=upper)

    def back(d):
        if upper:  # (A = U^T U: the lower factor is U^T)
            return _cholesky_back(_t(c), _t(d), False), ZERO
        return _cholesky_back(c, d, True), ZERO

    return c, back


def _cholesky_back(lower_factor, dl, lower):
    """Murray (2016): with A = L L^T, the gradient L^-T Phi(L^T dL) L^-1 (Phi: the lower
    triangle with its diagonal halved), placed in the triangle NumPy reads."""
    eye = np.eye(np.shape(lower_factor)[-1])
    p = _t(lower_factor) @ dl
    phi = np.tril(p) - 0.5 * p * eye
    linv = np.linalg.inv(lower_factor)
    return _read_triangle(_t(linv) @ phi @ linv, lower)


@rule("np.linalg.qr")
def _qr(a, mode):
    m = np.shape(a)[-2]
    n = np.shape(a)[-1]
    k = min(m, n)
    if mode == "r":
        def back_r(d):
            qr = np.linalg.qr(a)
            return _qr_back(qr[0], qr[1], ZERO, d), ZERO

        return np.linalg.qr(a, "r"), back_r
    if mode != "reduced" and mode != "complete":
        raise ValueError(f"tapeless differentiates np.linalg.qr with mode='reduced', "
                         f"'complete' or 'r', not {mode!r}")
    qr = np.linalg.qr(a, mode)
    q = qr[0]
    r = qr[1]

    def back(d):
        dq = sens_index(d, 0)
        dr = sens_index(d, 1)
        if dq is ZERO and dr is ZERO:
            return ZERO, ZERO
        if dq is not ZERO:
            dq = _unused_columns(dq, k)
        if dr is not ZERO:
            dr = dr[..., :k, :]  # (the rows of a complete R beyond k are zeros)
        return _qr_back(q[..., :k], r[..., :k, :], dq, dr), ZERO

    return qr, back


def _copyltu(x):
    """The symmetric matrix with x's lower triangle."""
    return np.tril(x) + _t(np.tril(x, -1))


def _qr_back(q, r, dq, dr):
    """A = Q R with R's leading square block invertible. Tall or square (m >= n): the
    gradient (dQ + Q copyltu(M)) R^-T with M = R dR^T - dQ^T Q. Wide (m < n), as
    A = [X | Y] with X = Q R1 square and R2 = Q^T Y: Y gets Q dR2, and X the square
    case's gradient with dQ + Y dR2^T for dQ."""
    m = np.shape(q)[-2]
    n = np.shape(r)[-1]
    if m >= n:
        return _qr_back_tall(q, r, dq, dr)
    r2 = r[..., m:]
    if dr is ZERO:
        return np.concatenate([_qr_back_tall(q, r[..., :m], dq, ZERO),
                               np.zeros(np.shape(q)[:-1] + (n - m,))], -1)
    dr2 = dr[..., m:]
    dq_x = q @ r2 @ _t(dr2)  # (Y = Q R2)
    if dq is not ZERO:
        dq_x = dq_x + dq
    dx = _qr_back_tall(q, r[..., :m], dq_x, dr[..., :m])
    return np.concatenate([dx, q @ dr2], -1)


def _qr_back_tall(q, r, dq, dr):
    if dq is ZERO:
        b = q @ _copyltu(r @ _t(dr))
    elif dr is ZERO:
        b = dq - q @ _copyltu(_t(dq) @ q)
    else:
        b = dq + q @ _copyltu(r @ _t(dr) - _t(dq) @ q)
    return _t(np.linalg.solve(r, _t(b)))


# --- inverses and powers ---------------------------------------------------------------------


@rule("np.linalg.pinv")
def _pinv(a, rcond, hermitian, rtol):
    if rtol is None:
        p = np.linalg.pinv(a, rcond, hermitian)
    else:
        p = np.linalg.pinv(a, rcond, hermitian, rtol=rtol)

    def back(d):
        if hermitian:
            raise ValueError(_hermitian_refused("pinv"))
        return _pinv_back(a, p, d), ZERO, ZERO, ZERO

    return p, back


def _pinv_back(a, p, dp):
    """Golub and Pereyra: for P = pinv(A) of locally constant rank,
    dA = -P^T dP P^T + (I - A P) dP^T P P^T + P^T P dP^T (I - P A)."""
    pt = _t(p)
    dpt = _t(dp)
    return (-(pt @ dp @ pt) + (dpt - a @ (p @ dpt)) @ (p @ pt)
            + (pt @ p) @ (dpt - (dpt @ p) @ a))


@rule("np.linalg.matrix_power")
def _matrix_power(a, n):
    def back(d):
        if n == 0:
            return ZERO, ZERO
        if n < 0:
            b = np.linalg.inv(a)
            bt = _t(b)
            return -(bt @ _power_back(b, -n, d) @ bt), ZERO
        return _power_back(a, n, d), ZERO

    return np.linalg.matrix_power(a, n), back


def _power_back(a, n, d):
    """The sum over k < n of (A^T)^k d (A^T)^(n-1-k), for A^n."""
    if n == 1:
        return d
    at = _t(a)
    powers = [at]  # powers[j] = (A^T)^(j+1)
    for j in range(n - 2):
        powers = powers + [powers[j] @ at]
    total = d @ powers[n - 2] + powers[n - 2] @ d
    for k in range(1, n - 1):
        total = total + powers[k - 1] @ d @ powers[n - 2 - k]
    return total


@rule("np.linalg.lstsq")
def _lstsq(a, b, rcond):
    out = np.linalg.lstsq(a, b, rcond)
    x = out[0]
    residuals = out[1]

    def back(d):
        dx = sens_index(d, 0)
        dres = sens_index(d, 1)
        ds = sens_index(d, 3)
        da = np.zeros(np.shape(a))
        db = np.zeros(np.shape(b))
        if dx is not ZERO:  # x = pinv(A) b, cut off as lstsq cuts the singular values
            p = np.linalg.pinv(a, _pinv_rcond(rcond))
            db = db + _t(p) @ dx
            if np.ndim(b) == 1:
                da = da + _pinv_back(a, p, np.outer(dx, b))
            else:
                da = da + _pinv_back(a, p, dx @ _t(b))
        if dres is not ZERO and np.size(residuals) > 0:
            # The squared residuals |A x - b|^2 at their minimum x: 2 e x^T and -2 e.
            e = a @ x - b
            if np.ndim(b) == 1:
                da = da + 2.0 * dres[0] * np.outer(e, x)
                db = db - 2.0 * dres[0] * e
            else:
                da = da + 2.0 * (e * dres) @ _t(x)
                db = db - 2.0 * e * dres
        if ds is not ZERO:
            usv = np.linalg.svd(a, full_matrices=False)
            da = da + usv[0] @ (np.expand_dims(ds, -1) * usv[2])
        return da, db, ZERO

    return out, back


def _pinv_rcond(rcond):
    """pinv's cut-off for lstsq's (a negative rcond means machine precision there)."""
    if rcond is None or rcond < 0:
        return None
    return rcond


# --- norms -------------------------------------------------------------------------------------


@rule("np.linalg.norm")
def _norm(x, ord, axis, keepdims):  # noqa: A002
    out = np.linalg.norm(x, ord, axis, keepdims)
    nd = np.ndim(x)

    def back(d):
        dx = expand_reduced(d, x, axis, keepdims)
        if ord is None or ord == "fro":  # (the 2-norm of the entries)
            return dx * x / expand_reduced(out, x, axis, keepdims), ZERO, ZERO, ZERO
        if _matrix_axes(axis, nd):
            axes = _two_axes(axis, nd)
            g = _matrix_norm_back(np.moveaxis(x, axes, (-2, -1)), ord)
            return dx * np.moveaxis(g, (-2, -1), axes), ZERO, ZERO, ZERO
        n = expand_reduced(out, x, axis, keepdims)
        return dx * _vector_norm_back(x, ord, axis, n), ZERO, ZERO, ZERO

    return out, back


def _matrix_axes(axis, nd):
    """Whether np.linalg.norm takes a matrix norm over `axis`."""
    if axis is None:
        return nd == 2
    if isinstance(axis, int):
        return False
    return len(axis) == 2


def _two_axes(axis, nd):
    """The two axes of a matrix norm, non-negative."""
    if axis is None:
        return (0, 1)
    return (axis[0] % nd, axis[1] % nd)


def _vector_norm_back(x, ord, axis, n):  # noqa: A002
    """d norm / dx for a vector norm over `axis`, n the norm broadcast to x."""
    if ord is None or ord == 2:
        return x / n
    if ord == 1:
        return np.sign(x)
    if ord == np.inf or ord == -np.inf:  # (ties share the derivative, as max's do)
        hit = np.equal(np.abs(x), n)
        return np.sign(x) * hit / np.sum(hit, axis=axis, keepdims=True)
    if ord == 0:
        return np.zeros(np.shape(x))  # (a count of nonzero entries)
    p = float(ord)
    # (Where the norm is 0, as a negative p's is wherever an entry is 0, it stays 0
    # along each entry: 0.)
    zero = np.equal(n, 0.0)
    g = np.sign(x) * (np.abs(x) / np.where(zero, 1.0, n)) ** (p - 1.0)
    return np.where(zero, 0.0, g)


def _matrix_norm_back(xm, ord):  # noqa: A002
    """d norm / dx for a matrix norm of each matrix of the stack xm (..., m, n)."""
    if ord == "nuc":
        usv = np.linalg.svd(xm, full_matrices=False)
        return usv[0] @ usv[2]
    if ord == 2:  # the largest singular value's vectors
        usv = np.linalg.svd(xm, full_matrices=False)
        return usv[0][..., :1] @ usv[2][..., :1, :]
    if ord == -2:  # the smallest's, 0 where it is 0 (where it stays 0 or has a kink)
        usv = np.linalg.svd(xm, full_matrices=False)
        s = usv[1]
        j = np.shape(s)[-1] - 1
        tiny = _EPS * max(np.shape(xm)[-2], np.shape(xm)[-1]) * s[..., :1]
        nonzero = np.greater(s[..., j:j + 1], tiny)
        return usv[0][..., j:j + 1] @ usv[2][..., j:j + 1, :] * np.expand_dims(nonzero, -1)
    if ord == 1 or ord == -1:  # max / min over columns of the column sums
        sums = np.sum(np.abs(xm), axis=-2)
        best = np.max(sums, axis=-1, keepdims=True) if ord == 1 else \
            np.min(sums, axis=-1, keepdims=True)
        hit = np.equal(sums, best)
        return np.sign(xm) * np.expand_dims(hit / np.sum(hit, axis=-1, keepdims=True), -2)
    if ord == np.inf or ord == -np.inf:  # max / min over rows of the row sums
        sums = np.sum(np.abs(xm), axis=-1)
        best = np.max(sums, axis=-1, keepdims=True) if ord == np.inf else \
            np.min(sums, axis=-1, keepdims=True)
        hit = np.equal(sums, best)
        return np.sign(xm) * np.expand_dims(hit / np.sum(hit, axis=-1, keepdims=True), -1)
    raise ValueError(f"tapeless cannot differentiate the matrix norm with ord={ord!r}")
