"""Reverse rules of the `scipy.special` and `scipy.linalg` primitives (`scipy_ops.py`),
registered only where SciPy is importable. Each rule returns the value and a
backpropagator giving one sensitivity per parameter (ZERO where there is none)."""

# ruff: noqa: E731
from __future__ import annotations

import math

import numpy as np

from ..runtime import ZERO, expand_reduced, sens_index, unbroadcast
from .registry import rule
from .rules_linalg import _cholesky_back, _t
from .scipy_ops import linalg as sla
from .scipy_ops import special as sp

if sp is not None:

    @rule("scipy.special.expit")
    def _expit(x):
        s = sp.expit(x)
        return s, lambda d: (d * s * (1.0 - s),)

    @rule("scipy.special.logit")
    def _logit(x):
        return sp.logit(x), lambda d: (d / (x * (1.0 - x)),)

    @rule("scipy.special.erf")
    def _erf(x):
        return sp.erf(x), lambda d: (d * (2.0 / math.sqrt(math.pi)) * np.exp(-x * x),)

    @rule("scipy.special.erfc")
    def _erfc(x):
        return sp.erfc(x), lambda d: (-d * (2.0 / math.sqrt(math.pi)) * np.exp(-x * x),)

    @rule("scipy.special.gammaln")
    def _gammaln(x):
        return sp.gammaln(x), lambda d: (d * sp.digamma(x),)

    @rule("scipy.special.digamma")
    def _digamma(x):
        return sp.digamma(x), lambda d: (d * sp.polygamma(1, x),)

    @rule("scipy.special.polygamma")
    def _polygamma(n, x):
        return sp.polygamma(n, x), lambda d: (ZERO, d * sp.polygamma(n + 1, x))

    @rule("scipy.special.xlogy")
    def _xlogy(x, y):
        # d/dx is log(y), d/dy is x / y; where x == 0 and y == 0 (xlogy gives 0 there,
        # its slope in x is -inf on one side) both are taken as 0, not -inf and nan.
        y1 = np.where(np.logical_and(np.equal(x, 0), np.equal(y, 0)), 1.0, y)
        back = lambda d: (unbroadcast(d * np.log(y1), x), unbroadcast(d * x / y1, y))
        return sp.xlogy(x, y), back

    @rule("scipy.special.xlog1py")
    def _xlog1py(x, y):
        # As xlogy's, with 1 + y for y (0 where x == 0 and y == -1).
        p1 = np.where(np.logical_and(np.equal(x, 0), np.equal(y, -1)), 1.0, 1.0 + y)
        back = lambda d: (unbroadcast(d * np.log(p1), x), unbroadcast(d * x / p1, y))
        return sp.xlog1py(x, y), back

    @rule("scipy.special.entr")
    def _entr(x):
        # -x log x: d = -(log x + 1) (+inf at 0, nan below, as log gives them).
        return sp.entr(x), lambda d: (-d * (np.log(x) + 1.0),)

    @rule("scipy.special.logsumexp")
    def _logsumexp(a, axis, b, keepdims, return_sign):
        if return_sign:
            raise NotImplementedError("the derivative of logsumexp with return_sign=True "
                                      "is not supported")
        out = sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
        # The softmax weights exp(a - out) (times b): d out / d a.
        e = np.exp(a - expand_reduced(out, a, axis, keepdims))

        def back(d):
            dd = expand_reduced(d, a, axis, keepdims)
            if b is None:
                return dd * e, ZERO, ZERO, ZERO, ZERO
            return unbroadcast(dd * e * b, a), ZERO, unbroadcast(dd * e, b), ZERO, ZERO

        return out, back

    @rule("scipy.special.softmax")
    def _softmax(x, axis):
        s = sp.softmax(x, axis=axis)
        return s, lambda d: (s * (d - np.sum(d * s, axis=axis, keepdims=True)), ZERO)

    @rule("scipy.special.log_softmax")
    def _log_softmax(x, axis):
        y = sp.log_softmax(x, axis=axis)
        s = np.exp(y)
        return y, lambda d: (d - s * np.sum(d, axis=axis, keepdims=True), ZERO)


if sla is not None:

    @rule("scipy.linalg.solve_triangular")
    def _solve_triangular(a, b, trans, lower, unit_diagonal, overwrite_b, check_finite):
        x = sla.solve_triangular(a, b, trans, lower, unit_diagonal, overwrite_b, check_finite)
        transposed = trans == 1 or trans == 2 or trans == "T" or trans == "C"

        def back(d):
            # op(A) x = b: b gets op(A)^-T d, op(A) gets -db x^T, in the triangle read.
            db = sla.solve_triangular(a, d, 0 if transposed else 1, lower, unit_diagonal)
            if np.ndim(b) == 1:
                dop = -np.outer(db, x)
            else:
                dop = -(db @ _t(x))
            da = _t(dop) if transposed else dop
            if lower:
                da = np.tril(da, -1 if unit_diagonal else 0)
            else:
                da = np.triu(da, 1 if unit_diagonal else 0)
            return da, db, ZERO, ZERO, ZERO, ZERO, ZERO

        return x, back

    @rule("scipy.linalg.cho_factor")
    def _cho_factor(a, lower, overwrite_a, check_finite):
        out = sla.cho_factor(a, lower, overwrite_a, check_finite)
        c = out[0]

        def back(d):
            # c holds the factor in one triangle and a's entries in the other (SciPy
            # leaves them there), whose sensitivities pass to a unchanged.
            dc = sens_index(d, 0)
            if dc is ZERO:
                return ZERO, ZERO, ZERO, ZERO
            if lower:
                da = _cholesky_back(np.tril(c), np.tril(dc), True) + np.triu(dc, 1)
            else:
                da = _cholesky_back(_t(np.triu(c)), _t(np.triu(dc)), False) + np.tril(dc, -1)
            return da, ZERO, ZERO, ZERO

        return (c, out[1]), back

    @rule("scipy.linalg.cho_solve")
    def _cho_solve(c_and_lower, b, overwrite_b, check_finite):
        x = sla.cho_solve(c_and_lower, b, overwrite_b, check_finite)
        c = c_and_lower[0]
        lower = c_and_lower[1]

        def back(d):
            # A x = b with A = L L^T (or U^T U) read from c's triangle: b gets A^-1 d,
            # A gets -db x^T, symmetrized, and the factor dA L (or U dA).
            db = sla.cho_solve(c_and_lower, d)
            if np.ndim(b) == 1:
                da = -np.outer(db, x)
            else:
                da = -(db @ _t(x))
            da = da + _t(da)
            if lower:
                dc = np.tril(da @ np.tril(c))
            else:
                dc = np.triu(np.triu(c) @ da)
            return (dc, ZERO), db, ZERO, ZERO

        return x, back
