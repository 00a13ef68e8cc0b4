"""Reverse rules of NumPy, `math` and array-method primitives. Each rule returns the value
and a backpropagator giving one sensitivity per parameter (ZERO where there is none)."""

# ruff: noqa: E731
from __future__ import annotations

import math

import numpy as np

from ..runtime import (
    ZERO,
    concat_sens,
    diag_sens,
    einsum_matmul_plan,
    einsum_specs,
    einsum_sublist_spec,
    expand_reduced,
    fdiv,
    fpow,
    polygamma,
    reduced_axes,
    reduced_count,
    reshape_like,
    sens_index,
    sens_of,
    split_indices,
    take_sens,
    tensordot_subscripts,
    unbroadcast,
)
from .numpy_ops import logistic
from .registry import rule
from .rules_core import _matmul

# --- elementwise, one argument --------------------------------------------------------


@rule("np.exp")
def _exp(x):
    y = np.exp(x)
    return y, lambda d: (d * y,)


@rule("logistic")
def _logistic(x):
    s = logistic(x)
    return s, lambda d: (d * s * (1.0 - s),)


@rule("np.expm1")
def _expm1(x):
    y = np.expm1(x)
    return y, lambda d: (d * (y + 1.0),)


@rule("np.exp2")
def _exp2(x):
    y = np.exp2(x)
    return y, lambda d: (d * y * math.log(2.0),)


@rule("np.log")
def _log(x):
    return np.log(x), lambda d: (d / x,)


@rule("np.log1p")
def _log1p(x):
    return np.log1p(x), lambda d: (d / (1.0 + x),)


@rule("np.log2")
def _log2(x):
    return np.log2(x), lambda d: (d / (x * math.log(2.0)),)


@rule("np.log10")
def _log10(x):
    return np.log10(x), lambda d: (d / (x * math.log(10.0)),)


@rule("np.sqrt")
def _sqrt(x):
    y = np.sqrt(x)
    return y, lambda d: (d * 0.5 / y,)


@rule("np.cbrt")
def _cbrt(x):
    y = np.cbrt(x)
    return y, lambda d: (d / (3.0 * y * y),)


@rule("np.square")
def _square(x):
    return np.square(x), lambda d: (d * 2.0 * x,)


@rule("np.reciprocal")
def _reciprocal(x):
    y = np.reciprocal(x)
    return y, lambda d: (-d * y * y,)


@rule("np.sin")
def _sin(x):
    return np.sin(x), lambda d: (d * np.cos(x),)


@rule("np.cos")
def _cos(x):
    return np.cos(x), lambda d: (-d * np.sin(x),)


@rule("np.tan")
def _tan(x):
    y = np.tan(x)
    return y, lambda d: (d * (1.0 + y * y),)


@rule("np.tanh")
def _tanh(x):
    y = np.tanh(x)
    return y, lambda d: (d * (1.0 - y * y),)


_PI2_3 = math.pi ** 2 / 3.0
_PI4_30 = math.pi ** 4 / 30.0


@rule("np.sinc")
def _sinc(x):
    # sinc'(x) = (cos(pi x) - sinc(x)) / x, and its series -(pi^2/3) x + (pi^4/30) x^3
    # near 0 (error below 1e-20 there), so that the rule's own derivative is right at 0.
    y = np.sinc(x)

    def back(d):
        near = np.less(np.abs(x), 1e-4)
        far = np.where(near, 1.0, x)
        series = x * (x * x * _PI4_30 - _PI2_3)
        return (d * np.where(near, series, (np.cos(np.pi * far) - np.sinc(far)) / far),)

    return y, back


@rule("np.sinh")
def _sinh(x):
    return np.sinh(x), lambda d: (d * np.cosh(x),)


@rule("np.cosh")
def _cosh(x):
    return np.cosh(x), lambda d: (d * np.sinh(x),)


@rule("np.arcsin")
def _arcsin(x):
    return np.arcsin(x), lambda d: (d / np.sqrt(1.0 - x * x),)


@rule("np.arccos")
def _arccos(x):
    return np.arccos(x), lambda d: (-d / np.sqrt(1.0 - x * x),)


@rule("np.arctan")
def _arctan(x):
    return np.arctan(x), lambda d: (d / (1.0 + x * x),)


@rule("np.arcsinh")
def _arcsinh(x):
    return np.arcsinh(x), lambda d: (d / np.sqrt(x * x + 1.0),)


@rule("np.arccosh")
def _arccosh(x):
    return np.arccosh(x), lambda d: (d / np.sqrt(x * x - 1.0),)


@rule("np.arctanh")
def _arctanh(x):
    return np.arctanh(x), lambda d: (d / (1.0 - x * x),)


@rule("np.abs")
def _np_abs(x):
    return np.abs(x), lambda d: (d * np.sign(x),)


@rule("np.negative")
def _negative(x):
    return np.negative(x), lambda d: (-d,)


@rule("np.positive")
def _positive(x):
    return np.positive(x), lambda d: (d,)


@rule("np.deg2rad")
def _deg2rad(x):
    return np.deg2rad(x), lambda d: (d * (math.pi / 180.0),)


@rule("np.rad2deg")
def _rad2deg(x):
    return np.rad2deg(x), lambda d: (d * (180.0 / math.pi),)


# --- elementwise, two arguments -------------------------------------------------------


@rule("np.add")
def _np_add(x1, x2):
    return np.add(x1, x2), lambda d: (unbroadcast(d, x1), unbroadcast(d, x2))


@rule("np.subtract")
def _np_subtract(x1, x2):
    return np.subtract(x1, x2), lambda d: (unbroadcast(d, x1), unbroadcast(-d, x2))


@rule("np.multiply")
def _np_multiply(x1, x2):
    return np.multiply(x1, x2), lambda d: (unbroadcast(d * x2, x1), unbroadcast(d * x1, x2))


@rule("np.divide")
def _np_divide(x1, x2):
    y = np.divide(x1, x2)
    return y, lambda d: (unbroadcast(d / x2, x1), unbroadcast(-d * y / x2, x2))


@rule("np.power")
def _np_power(x1, x2):
    y = np.power(x1, x2)

    def back(d):
        d1 = _np_power_base_sens(d, x1, x2)
        safe = np.where(np.greater(x1, 0), x1, 1.0)
        return d1, unbroadcast(d * y * np.log(safe), x2)

    return y, back


def _np_power_base_sens(d, x1, x2):
    """As `rules_core._pow_base_sens`, with np.power (nan, not Python's complex result,
    for a negative base and a fractional exponent)."""
    if np.ndim(x2) == 0 and x2 != 0:
        return unbroadcast(d * x2 * np.power(x1, x2 - 1), x1)
    zero = np.logical_and(np.equal(x2, 0), np.equal(x1, 0))
    safe = np.where(zero, 1.0, x1)
    return unbroadcast(d * np.where(zero, 0.0, x2 * np.power(safe, x2 - 1)), x1)


@rule("np.mod")
def _np_mod(x1, x2):
    # np.mod is np.remainder (Python's %): x1 - x2 * floor(x1 / x2), with the floor's
    # derivative 0 almost everywhere, as for the `%` operator.
    back = lambda d: (unbroadcast(d, x1), unbroadcast(-d * np.floor_divide(x1, x2), x2))
    return np.mod(x1, x2), back


@rule("np.fmod")
def _np_fmod(x1, x2):
    # C's fmod: x1 - x2 * trunc(x1 / x2).
    back = lambda d: (unbroadcast(d, x1), unbroadcast(-d * np.trunc(np.divide(x1, x2)), x2))
    return np.fmod(x1, x2), back


def _balanced(a, b):
    """Where a > b: 1, where a == b: 1/2, else 0 (ties share, as autograd and JAX do)."""
    return np.where(np.greater(a, b), 1.0, np.where(np.equal(a, b), 0.5, 0.0))


@rule("np.maximum", "np.fmax")
def _maximum(x1, x2):
    back = lambda d: (unbroadcast(d * _balanced(x1, x2), x1),
                      unbroadcast(d * _balanced(x2, x1), x2))
    return np.maximum(x1, x2), back


@rule("np.minimum", "np.fmin")
def _minimum(x1, x2):
    back = lambda d: (unbroadcast(d * _balanced(x2, x1), x1),
                      unbroadcast(d * _balanced(x1, x2), x2))
    return np.minimum(x1, x2), back


@rule("np.arctan2")
def _arctan2(x1, x2):
    def back(d):
        r = x1 * x1 + x2 * x2
        return unbroadcast(d * x2 / r, x1), unbroadcast(-d * x1 / r, x2)

    return np.arctan2(x1, x2), back


@rule("np.logaddexp")
def _logaddexp(x1, x2):
    y = np.logaddexp(x1, x2)
    back = lambda d: (unbroadcast(d * np.exp(x1 - y), x1), unbroadcast(d * np.exp(x2 - y), x2))
    return y, back


@rule("np.hypot")
def _hypot(x1, x2):
    y = np.hypot(x1, x2)
    return y, lambda d: (unbroadcast(d * x1 / y, x1), unbroadcast(d * x2 / y, x2))


@rule("np.where")
def _where(condition, x, y):
    back = lambda d: (ZERO, unbroadcast(np.where(condition, d, 0.0), x),
                      unbroadcast(np.where(condition, 0.0, d), y))
    return np.where(condition, x, y), back


@rule("np.clip")
def _clip(a, a_min, a_max):
    out = np.clip(a, a_min, a_max)

    def back(d):
        # np.clip is minimum(maximum(a, a_min), a_max): with a_min > a_max the result is
        # a_max everywhere (a_min used to get the sensitivity where a < a_min). At a
        # bound (a tie) neither gets it.
        low = a if a_min is None else np.maximum(a, a_min)
        da = d
        hi = ZERO
        if a_max is not None:
            da = d * np.less(low, a_max)
            hi = unbroadcast(d * np.greater(low, a_max), a_max)
        lo = ZERO
        if a_min is not None:
            lo = unbroadcast(da * np.less(a, a_min), a_min)
            da = da * np.greater(a, a_min)
        return unbroadcast(da, a), lo, hi

    return out, back


@rule("method.clip")
def _m_clip(x, min, max):  # noqa: A002
    return _clip(x, min, max)


# --- linear algebra ---------------------------------------------------------------------


def _einsum_back(spec, operands, d):
    """The sensitivities of einsum(spec, *operands) given that of its result."""
    specs = einsum_specs(spec, operands)
    # (Built by a comprehension, not by appending to a list: the forward derivative of
    # `grads + [g]` pads each step's tangent list with zeros and adds them.)
    return tuple([_einsum_grad(spec, specs[k], operands, k, d)
                  for k in range(len(operands))])


def _einsum_grad(spec, spec_k, operands, k, d):
    """The sensitivity of operand k of einsum(spec, *operands); `spec_k` is its entry of
    `einsum_specs`."""
    back_spec, missing, summed, embed = spec_k
    # (d, then the operands other than k; a comprehension rather than concatenated
    # tuples, whose forward derivative would add zero-padded tangents.)
    args = tuple([d if j == 0 else operands[j - 1 if j <= k else j]
                  for j in range(len(operands))])
    g = _einsum_call(back_spec, args)
    if summed:  # (ellipsis axes the operand does not have)
        g = np.sum(g, axis=summed)
    if missing:
        shape = np.shape(operands[k]) if embed is None else embed[2]
        g = np.broadcast_to(np.expand_dims(g, missing), shape)
    if embed is not None:  # (a repeated label: the gradient lies on a diagonal)
        g = _einsum_call(embed[0], (g,) + tuple(np.eye(n) for n in embed[1]))
    if "." in spec:  # (axes of an ellipsis may be broadcast: sum them back)
        g = unbroadcast(g, operands[k])
    return g


def _einsum_call(spec, operands):
    """np.einsum(spec, *operands), spelled without `*` (the supported subset cannot pass
    `*args` after a positional argument); at most 8 of them (the sublist form passes
    up to 4 operands with their sublists). Small enough for the optimizer to inline at
    each call, where the number of operands is known: the call is then `np.einsum`'s
    own, whose result's kind the optimizer knows (`opt.kinds._einsum_kind`)."""
    n = len(operands)
    if n == 1:
        return np.einsum(spec, operands[0])
    if n == 2:
        plan = einsum_matmul_plan(spec, operands[0], operands[1])
        if plan is not None:  # (a contraction BLAS does faster than einsum's own loop)
            return _einsum_matmul(plan, operands[0], operands[1])
        return np.einsum(spec, operands[0], operands[1])
    if n == 3:
        return np.einsum(spec, operands[0], operands[1], operands[2])
    return _einsum_call_more(spec, operands)


def _einsum_matmul(plan, a, b):
    """A two-operand einsum as one matmul of stacks of matrices (`einsum_matmul_plan`)."""
    perm_a, shape_a, perm_b, shape_b, shape_r, perm_r = plan
    r = np.matmul(np.reshape(np.transpose(a, perm_a), shape_a),
                  np.reshape(np.transpose(b, perm_b), shape_b))
    return np.transpose(np.reshape(r, shape_r), perm_r)


def _einsum_call_more(spec, operands):
    """`_einsum_call` of 4 to 8 operands."""
    n = len(operands)
    if n == 4:
        return np.einsum(spec, operands[0], operands[1], operands[2], operands[3])
    if n == 5:
        return np.einsum(spec, operands[0], operands[1], operands[2], operands[3],
                         operands[4])
    if n == 6:
        return np.einsum(spec, operands[0], operands[1], operands[2], operands[3],
                         operands[4], operands[5])
    if n == 7:
        return np.einsum(spec, operands[0], operands[1], operands[2], operands[3],
                         operands[4], operands[5], operands[6])
    if n == 8:
        return np.einsum(spec, operands[0], operands[1], operands[2], operands[3],
                         operands[4], operands[5], operands[6], operands[7])
    raise ValueError(f"tapeless differentiates np.einsum of at most 8 arguments after the "
                     f"first, got {n}")


@rule("np.einsum")
def _einsum(subscripts, operands):
    if isinstance(subscripts, str):
        back_str = lambda d: (ZERO, _einsum_back(subscripts, operands, d))
        return _einsum_call(subscripts, operands), back_str
    # The sublist form, einsum(a, [0, 1], b, [1, 2], [0, 2]): `subscripts` is the first
    # operand and `operands` alternates sublists and the other operands; differentiated
    # through the equivalent subscripts string.
    spec = einsum_sublist_spec(subscripts, operands)
    n = (len(operands) + 1) // 2
    arrays = (subscripts,) + tuple(operands[2 * k - 1] for k in range(1, n))

    def back(d):
        g = _einsum_back(spec, arrays, d)
        rest = tuple(g[(i + 1) // 2] if i % 2 == 1 and i < 2 * n - 2 else ZERO
                     for i in range(len(operands)))
        return g[0], rest

    return _einsum_call(subscripts, operands), back


@rule("np.tensordot")
def _tensordot(a, b, axes):
    spec = tensordot_subscripts(np.ndim(a), np.ndim(b), axes)

    def back(d):
        g = _einsum_back(spec, (a, b), d)
        return g[0], g[1], ZERO

    return np.tensordot(a, b, axes), back


@rule("np.inner")
def _inner(a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return a * b, lambda d: (unbroadcast(d * b, a), unbroadcast(d * a, b))
    spec = tensordot_subscripts(np.ndim(a), np.ndim(b), ((-1,), (-1,)))
    return np.inner(a, b), lambda d: _einsum_back(spec, (a, b), d)


@rule("np.outer")
def _outer(a, b):
    fa = np.ravel(a)
    fb = np.ravel(b)
    back = lambda d: (reshape_like(d @ fb, a), reshape_like(fa @ d, b))
    return np.outer(a, b), back


@rule("np.dot", "method.dot")
def _dot(a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return a * b, lambda d: (unbroadcast(d * b, a), unbroadcast(d * a, b))
    if np.ndim(a) > 2 or np.ndim(b) > 2:
        spec = tensordot_subscripts(np.ndim(a), np.ndim(b), ((-1,), (max(np.ndim(b) - 2, 0),)))
        return np.dot(a, b), lambda d: _einsum_back(spec, (a, b), d)
    from_matmul = _matmul_rule(a, b)
    return np.dot(a, b), from_matmul[1]


def _matmul_rule(a, b):
    return _matmul(a, b)


@rule("np.matmul")
def _np_matmul(x1, x2):
    return _matmul_rule(x1, x2)


@rule("np.diag")
def _diag(v, k):
    if np.ndim(v) == 1:
        return np.diag(v, k), lambda d: (np.diag(d, k), ZERO)
    return np.diag(v, k), lambda d: (diag_sens(d, v, k), ZERO)


@rule("diag_sens")
def _diag_sens(d, v, k):
    return diag_sens(d, v, k), lambda dd: (np.diag(dd, k), ZERO, ZERO)


@rule("np.tril")
def _tril(m, k):
    return np.tril(m, k), lambda d: (np.tril(d, k), ZERO)


@rule("np.triu")
def _triu(m, k):
    return np.triu(m, k), lambda d: (np.triu(d, k), ZERO)


@rule("np.linalg.inv")
def _inv(a):
    ainv = np.linalg.inv(a)

    def back(d):
        t = np.swapaxes(ainv, -1, -2)
        return (-(t @ d @ t),)

    return ainv, back


@rule("np.linalg.solve")
def _solve(a, b):
    x = np.linalg.solve(a, b)

    def back(d):
        at = np.swapaxes(a, -1, -2)
        if np.ndim(b) == 1:
            db = np.linalg.solve(at, d)
            return -np.expand_dims(db, -1) * np.expand_dims(x, -2), db
        db = np.linalg.solve(at, d)
        return -(db @ np.swapaxes(x, -1, -2)), db

    return x, back


@rule("np.linalg.det")
def _det(a):
    det = np.linalg.det(a)

    def back(d):
        t = np.swapaxes(np.linalg.inv(a), -1, -2)
        return (np.expand_dims(np.expand_dims(d * det, -1), -1) * t,)

    return det, back


@rule("np.linalg.slogdet")
def _slogdet(a):
    out = np.linalg.slogdet(a)

    back = lambda d: (_slogdet_back(sens_index(d, 1), a),)
    return (out[0], out[1]), back


def _slogdet_back(dlog, a):
    if dlog is ZERO:
        return ZERO
    t = np.swapaxes(np.linalg.inv(a), -1, -2)
    return np.expand_dims(np.expand_dims(dlog, -1), -1) * t


# --- reductions ---------------------------------------------------------------------------


@rule("np.sum", "method.sum")
def _np_sum(a, axis, dtype, keepdims):
    back = lambda d: (expand_reduced(d, a, axis, keepdims), ZERO, ZERO, ZERO)
    return np.sum(a, axis=axis, dtype=dtype, keepdims=keepdims), back


@rule("np.mean", "method.mean")
def _mean(a, axis, dtype, keepdims):
    n = reduced_count(a, axis)
    back = lambda d: (expand_reduced(d, a, axis, keepdims) / n, ZERO, ZERO, ZERO)
    return np.mean(a, axis=axis, dtype=dtype, keepdims=keepdims), back


@rule("np.prod", "method.prod")
def _prod(a, axis, dtype, keepdims):
    out = np.prod(a, axis=axis, dtype=dtype, keepdims=keepdims)
    back = lambda d: (expand_reduced(d, a, axis, keepdims) * _prod_of_others(a, axis),
                      ZERO, ZERO, ZERO)
    return out, back


def _prod_of_others(a, axis):
    """For each element of a, the product of the others it is reduced with: out / a
    where no element is 0 (that division gave nan at a zero, where the derivative is the
    product of the others). Otherwise without dividing: each element's group as a row,
    repeated once per element with that element replaced by 1, then multiplied out
    (memory: the group's size squared), which differentiates again correctly."""
    if not np.any(np.equal(a, 0)):
        return np.prod(a, axis=axis, keepdims=True) / a
    axes = reduced_axes(a, axis)
    k = len(axes)
    last = tuple(range(np.ndim(a) - k, np.ndim(a)))
    moved = np.moveaxis(a, axes, last)
    shape = np.shape(moved)
    n = reduced_count(a, axis)
    rows = np.reshape(moved, shape[:np.ndim(a) - k] + (1, n))
    grid = np.where(np.eye(n, dtype=bool), 1.0, rows)
    others = np.prod(grid, axis=-1)
    return np.moveaxis(np.reshape(others, shape), last, axes)


def _chooser(a, out, axis, keepdims, d):
    """Sensitivity of a max/min reduction: shared equally among ties."""
    hits = np.equal(a, expand_reduced(out, a, axis, keepdims))
    # Dividing before spreading over `a` gives the same numbers (hits are 0 or 1) from
    # fewer divisions.
    share = d / np.sum(hits, axis=axis, keepdims=keepdims)
    return expand_reduced(share, a, axis, keepdims) * hits


@rule("np.max", "np.amax", "method.max")
def _np_max(a, axis, keepdims):
    out = np.max(a, axis=axis, keepdims=keepdims)
    return out, lambda d: (_chooser(a, out, axis, keepdims, d), ZERO, ZERO)


@rule("np.min", "np.amin", "method.min")
def _np_min(a, axis, keepdims):
    out = np.min(a, axis=axis, keepdims=keepdims)
    return out, lambda d: (_chooser(a, out, axis, keepdims, d), ZERO, ZERO)


@rule("np.var", "method.var")
def _var(a, axis, dtype, ddof, keepdims):
    n = reduced_count(a, axis)
    centered = a - np.mean(a, axis=axis, keepdims=True)
    back = lambda d: (expand_reduced(d, a, axis, keepdims) * 2.0 * centered / (n - ddof),
                      ZERO, ZERO, ZERO, ZERO)
    return np.var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims), back


@rule("np.std", "method.std")
def _std(a, axis, dtype, ddof, keepdims):
    n = reduced_count(a, axis)
    out = np.std(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    centered = a - np.mean(a, axis=axis, keepdims=True)
    # Where the standard deviation is 0 (one element, an axis of length 1, or equal
    # elements) the gradient is 0: exact where std is identically 0, the subgradient
    # abs'(0) = 0 uses otherwise (JAX's sqrt(var) gives nan there). The double where keeps
    # the second derivative finite too.
    zero = np.equal(out, 0.0)
    safe = np.where(zero, 1.0, out)
    back = lambda d: (expand_reduced(np.where(zero, 0.0, d / safe), a, axis, keepdims) *
                      centered / (n - ddof), ZERO, ZERO, ZERO, ZERO)
    return out, back


@rule("np.cumsum", "method.cumsum")
def _cumsum(a, axis):
    def back(d):
        if axis is None:
            return reshape_like(np.flip(np.cumsum(np.flip(np.ravel(d)))), a), ZERO
        return np.flip(np.cumsum(np.flip(d, axis), axis), axis), ZERO

    return np.cumsum(a, axis), back


# --- shapes -------------------------------------------------------------------------------


@rule("np.reshape")
def _reshape(a, shape):
    return np.reshape(a, shape), lambda d: (reshape_like(d, a), ZERO)


@rule("method.reshape")
def _m_reshape(x, shape):
    new_shape = shape[0] if len(shape) == 1 else shape
    return np.reshape(x, new_shape), lambda d: (reshape_like(d, x), ZERO)


@rule("np.ravel", "method.ravel", "method.flatten")
def _ravel(a):
    return np.ravel(a), lambda d: (reshape_like(d, a),)


@rule("np.atleast_1d")
def _atleast_1d(a):
    return np.atleast_1d(a), lambda d: (reshape_like(d, a),)


@rule("np.atleast_2d")
def _atleast_2d(a):
    return np.atleast_2d(a), lambda d: (reshape_like(d, a),)


@rule("np.expand_dims")
def _expand_dims(a, axis):
    return np.expand_dims(a, axis), lambda d: (reshape_like(d, a), ZERO)


@rule("np.squeeze", "method.squeeze")
def _squeeze(a, axis):
    return np.squeeze(a, axis), lambda d: (reshape_like(d, a), ZERO)


@rule("np.transpose")
def _transpose(a, axes):
    if axes is None:
        return np.transpose(a), lambda d: (np.transpose(d), ZERO)
    return np.transpose(a, axes), lambda d: (np.transpose(d, np.argsort(axes)), ZERO)


@rule("method.transpose")
def _m_transpose(x, axes):
    if len(axes) == 0 or (len(axes) == 1 and axes[0] is None):
        return np.transpose(x), lambda d: (np.transpose(d), ZERO)
    order = axes[0] if len(axes) == 1 else axes
    return np.transpose(x, order), lambda d: (np.transpose(d, np.argsort(order)), ZERO)


@rule("np.swapaxes", "method.swapaxes")
def _swapaxes(a, axis1, axis2):
    return np.swapaxes(a, axis1, axis2), lambda d: (np.swapaxes(d, axis1, axis2), ZERO, ZERO)


@rule("np.moveaxis")
def _moveaxis(a, source, destination):
    back = lambda d: (np.moveaxis(d, destination, source), ZERO, ZERO)
    return np.moveaxis(a, source, destination), back


@rule("np.broadcast_to")
def _broadcast_to(array, shape):
    return np.broadcast_to(array, shape), lambda d: (unbroadcast(d, array), ZERO)


@rule("np.flip")
def _flip(m, axis):
    return np.flip(m, axis), lambda d: (np.flip(d, axis), ZERO)


@rule("np.concatenate")
def _concatenate(arrays, axis):
    return np.concatenate(arrays, axis), lambda d: (concat_sens(d, arrays, axis), ZERO)


@rule("concat_sens")
def _concat_sens(d, arrays, axis):
    def back(dd):
        if dd is ZERO:
            return ZERO, ZERO, ZERO
        parts = [sens_of(dd[i], arrays[i]) for i in range(len(arrays))]
        if axis is None:
            return reshape_like(np.concatenate([np.ravel(p) for p in parts]), d), ZERO, ZERO
        return np.concatenate(parts, axis), ZERO, ZERO

    return concat_sens(d, arrays, axis), back


@rule("np.hstack")
def _hstack(tup):
    axis = 0 if np.ndim(tup[0]) <= 1 else 1
    return np.hstack(tup), lambda d: (_split_back(d, tup, axis),)


@rule("np.vstack")
def _vstack(tup):
    return np.vstack(tup), lambda d: (_split_back(d, [np.atleast_2d(t) for t in tup], 0,
                                                  tup),)


def _split_back(d, parts, axis, originals=None):
    pieces = np.split(d, split_indices(parts, axis), axis)
    like = parts if originals is None else originals
    return tuple(reshape_like(p, a) for p, a in zip(pieces, like))


@rule("np.stack")
def _stack(arrays, axis):
    def back(d):
        moved = np.moveaxis(d, axis, 0)
        return tuple(moved[i] for i in range(len(arrays))), ZERO

    return np.stack(arrays, axis), back


@rule("np.split")
def _split(ary, indices_or_sections, axis):
    pieces = np.split(ary, indices_or_sections, axis)

    def back(d):
        parts = [sens_of(sens_index(d, i), pieces[i]) for i in range(len(pieces))]
        return np.concatenate(parts, axis), ZERO, ZERO

    return pieces, back


@rule("np.take")
def _take(a, indices, axis):
    return np.take(a, indices, axis), lambda d: (take_sens(d, a, indices, axis), ZERO, ZERO)


@rule("take_sens")
def _take_sens(d, a, indices, axis):
    back = lambda dd: (np.take(dd, indices, axis), ZERO, ZERO, ZERO)
    return take_sens(d, a, indices, axis), back


# --- constructors and conversions ---------------------------------------------------------


@rule("np.full")
def _full(shape, fill_value, dtype):
    return np.full(shape, fill_value, dtype), lambda d: (ZERO, unbroadcast(d, fill_value), ZERO)


@rule("np.full_like")
def _full_like(a, fill_value, dtype):
    back = lambda d: (ZERO, unbroadcast(d, fill_value), ZERO)
    return np.full_like(a, fill_value, dtype), back


@rule("np.arange")
def _arange(args, dtype):
    # start + step * k, for k = 0, 1, ...: d/d start = sum(d), d/d step = sum(d * k);
    # the stop only decides how many (0 almost everywhere). It was registered as
    # non-differentiable: np.arange(x, x + 3.0) had a silently zero gradient.
    out = np.arange(*args, dtype=dtype)

    def back(d):
        n = len(args)
        if n == 1:
            return (ZERO,), ZERO
        if n == 2:
            return (np.sum(d), ZERO), ZERO
        return (np.sum(d), ZERO, np.sum(d * np.arange(len(out)))), ZERO

    return out, back


@rule("np.linspace")
def _linspace(start, stop, num, endpoint):
    t = np.linspace(0.0, 1.0, num, endpoint)
    back = lambda d: (np.sum(d * (1.0 - t)), np.sum(d * t), ZERO, ZERO)
    return np.linspace(start, stop, num, endpoint), back


def _array_back(d, obj):
    if isinstance(obj, (list, tuple)):
        parts = [_array_back(d[i], obj[i]) for i in range(len(obj))]
        return tuple(parts) if isinstance(obj, tuple) else parts
    return reshape_like(d, obj)


@rule("np.array")
def _array(object, dtype):  # noqa: A002
    return np.array(object, dtype), lambda d: (_array_back(d, object), ZERO)


@rule("np.asarray")
def _asarray(a, dtype):
    return np.asarray(a, dtype), lambda d: (_array_back(d, a), ZERO)


@rule("np.copy", "method.copy")
def _copy(a):
    return np.copy(a), lambda d: (d,)


@rule("np.float64")
def _float64(x):
    return np.float64(x), lambda d: (d,)


@rule("np.float32")
def _float32(x):
    return np.float32(x), lambda d: (d,)


@rule("method.astype")
def _astype(x, dtype):
    return x.astype(dtype), lambda d: (d, ZERO)


@rule("method.item")
def _item(x):
    return x.item(), lambda d: (reshape_like(d, x),)


@rule("method.conj")
def _conj(x):
    return x.conj(), lambda d: (d.conj(),)


@rule("method.items")
def _items(x):
    keys = tuple(x.keys())
    back = lambda d: (ZERO if d is ZERO else dict(zip(keys, [sens_index(sens_index(d, i), 1)
                                                             for i in range(len(keys))])),)
    return x.items(), back


@rule("method.values")
def _values(x):
    keys = tuple(x.keys())
    back = lambda d: (ZERO if d is ZERO else dict(zip(keys, [sens_index(d, i)
                                                             for i in range(len(keys))])),)
    return x.values(), back


@rule("method.get")
def _get(x, key, default):
    if key in x:
        return x.get(key, default), lambda d: ({key: d}, ZERO, ZERO)
    return x.get(key, default), lambda d: (ZERO, ZERO, d)


# --- math -------------------------------------------------------------------------------------


@rule("math.sin")
def _msin(x):
    return math.sin(x), lambda d: (d * math.cos(x),)


@rule("math.cos")
def _mcos(x):
    return math.cos(x), lambda d: (-d * math.sin(x),)


@rule("math.tan")
def _mtan(x):
    y = math.tan(x)
    return y, lambda d: (d * (1.0 + y * y),)


@rule("math.asin")
def _masin(x):
    return math.asin(x), lambda d: (fdiv(d, math.sqrt(1.0 - x * x)),)


@rule("math.acos")
def _macos(x):
    return math.acos(x), lambda d: (-fdiv(d, math.sqrt(1.0 - x * x)),)


@rule("math.atan")
def _matan(x):
    return math.atan(x), lambda d: (d / (1.0 + x * x),)


@rule("math.sinh")
def _msinh(x):
    return math.sinh(x), lambda d: (d * math.cosh(x),)


@rule("math.cosh")
def _mcosh(x):
    return math.cosh(x), lambda d: (d * math.sinh(x),)


@rule("math.tanh")
def _mtanh(x):
    y = math.tanh(x)
    return y, lambda d: (d * (1.0 - y * y),)


@rule("math.asinh")
def _masinh(x):
    return math.asinh(x), lambda d: (d / math.sqrt(x * x + 1.0),)


@rule("math.acosh")
def _macosh(x):
    return math.acosh(x), lambda d: (fdiv(d, math.sqrt(x * x - 1.0)),)


@rule("math.atanh")
def _matanh(x):
    return math.atanh(x), lambda d: (d / (1.0 - x * x),)


@rule("math.exp")
def _mexp(x):
    y = math.exp(x)
    return y, lambda d: (d * y,)


@rule("math.expm1")
def _mexpm1(x):
    y = math.expm1(x)
    return y, lambda d: (d * (y + 1.0),)


@rule("math.log1p")
def _mlog1p(x):
    return math.log1p(x), lambda d: (d / (1.0 + x),)


@rule("math.log2")
def _mlog2(x):
    return math.log2(x), lambda d: (d / (x * math.log(2.0)),)


@rule("math.log10")
def _mlog10(x):
    return math.log10(x), lambda d: (d / (x * math.log(10.0)),)


@rule("math.log")
def _mlog(x, base):
    if len(base) == 0:
        return math.log(x), lambda d: (d / x, ZERO)
    b = base[0]
    lb = math.log(b)
    y = math.log(x) / lb
    return y, lambda d: (d / (x * lb), (-d * y / (b * lb),))


@rule("math.sqrt")
def _msqrt(x):
    y = math.sqrt(x)
    return y, lambda d: (fdiv(d * 0.5, y),)


@rule("math.fabs")
def _mfabs(x):
    return math.fabs(x), lambda d: (d * (1.0 if x > 0 else (-1.0 if x < 0 else 0.0)),)


@rule("math.erf")
def _merf(x):
    return math.erf(x), lambda d: (d * 2.0 / math.sqrt(math.pi) * math.exp(-x * x),)


@rule("math.erfc")
def _merfc(x):
    return math.erfc(x), lambda d: (-d * 2.0 / math.sqrt(math.pi) * math.exp(-x * x),)


@rule("math.gamma")
def _mgamma(x):
    y = math.gamma(x)
    return y, lambda d: (d * y * polygamma(0, x),)


@rule("math.lgamma")
def _mlgamma(x):
    return math.lgamma(x), lambda d: (d * polygamma(0, x),)


@rule("polygamma")
def _polygamma(n, x):
    return polygamma(n, x), lambda d: (ZERO, d * polygamma(n + 1, x))


@rule("math.degrees")
def _mdegrees(x):
    return math.degrees(x), lambda d: (d * (180.0 / math.pi),)


@rule("math.radians")
def _mradians(x):
    return math.radians(x), lambda d: (d * (math.pi / 180.0),)


@rule("math.pow")
def _mpow(x, y):
    out = math.pow(x, y)
    # (x ** 0.0 is 1 everywhere: its slope is 0, not 0 * inf at x == 0)
    return out, lambda d: (0.0 if y == 0 and x == 0 else d * y * fpow(x, y - 1.0),
                           d * out * math.log(x) if x > 0 else 0.0)


@rule("math.atan2")
def _matan2(y, x):
    r = x * x + y * y
    return math.atan2(y, x), lambda d: (fdiv(d * x, r), -fdiv(d * y, r))


@rule("math.hypot")
def _mhypot(coordinates):
    out = math.hypot(*coordinates)
    return out, lambda d: (tuple(d * c / out for c in coordinates),)


@rule("math.copysign")
def _mcopysign(x, y):
    sign = math.copysign(1.0, x) * math.copysign(1.0, y)
    return math.copysign(x, y), lambda d: (d * sign, 0.0)


@rule("math.fmod")
def _mfmod(x, y):
    return math.fmod(x, y), lambda d: (d, -d * math.trunc(x / y))
