"""Reverse rules of the `scipy.special` primitives (`scipy_ops.py`), registered only
where SciPy is importable. Each rule returns the value and a backpropagator giving one
sensitivity per parameter (ZERO where there is none)."""

# ruff: noqa: E731
from __future__ import annotations

import math

import numpy as np

from ..runtime import ZERO, expand_reduced, unbroadcast
from .registry import rule
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
