"""Forward rules (`tapeless.ad.forward`) of the NumPy functions whose reverse rules are in
`rules_arrays` (and a few of `rules_numpy`): padding and rearrangements, differences,
sorting and order statistics, NaN-aware and weighted reductions, covariance,
interpolation, histograms and counting, norms, and the array and dict methods.

Each rule is the transpose of its reverse rule's linear map (the same conventions at
ties and kinks: where the reverse rule shares a sensitivity among tied elements, the
forward rule takes the mean of their tangents), written, like the others, in the
supported subset: the return is a tuple display `value, map_1, ..., map_n`, and what
depends on the arguments (a mode, an axis of None) is decided inside helpers."""

# ruff: noqa: E731
from __future__ import annotations

import numpy as np

from ..runtime import (
    ZERO,
    expand_reduced,
    reduced_count,
    reshape_like,
    sens_index,
    sens_of,
)
from . import jvp_rules  # noqa: F401  (first: the rules declared there)
from .registry import jvp, linear
from .rules_arrays import _interp_parts
from .rules_linalg import (
    _divide,
    _is_lower,
    _matrix_axes,
    _matrix_norm_back,
    _pinv_rcond,
    _t,
    _two_axes,
    _vector_norm_back,
)
from .scipy_ops import linalg as sla

# --- declared: linear functions -----------------------------------------------------------

linear((0, 1), "np.append")
linear((0,), "np.meshgrid")
linear((1, 2), "np.select")
linear((0,), "np.diagonal")

# --- elementwise ------------------------------------------------------------------------


@jvp("np.nan_to_num")
def _nan_to_num(x, copy, nan, posinf, neginf):
    out = np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    big = np.isinf(x)
    up = np.logical_and(big, np.greater(x, 0))
    down = np.logical_and(big, np.less(x, 0))
    # (posinf and neginf of None: the largest finite numbers, constants)
    return out, lambda t: np.where(np.isfinite(x), t, 0.0), None, \
        lambda t: np.where(np.isnan(x), t, 0.0), \
        lambda t: ZERO if posinf is None else np.where(up, t, 0.0), \
        lambda t: ZERO if neginf is None else np.where(down, t, 0.0)


# --- rearrangements ---------------------------------------------------------------------


@jvp("np.pad")
def _pad(array, pad_width, mode, constant_values):
    out = _pad_call(array, pad_width, mode, constant_values)
    # Linear in the array and the constant together.
    return out, lambda t: _pad_call(t, pad_width, mode, 0.0), None, None, \
        lambda t: _pad_call(np.zeros(np.shape(array)), pad_width, mode, t)


def _pad_call(array, pad_width, mode, constant_values):
    if mode == "constant":
        if np.ndim(constant_values) != 0:
            raise ValueError("tapeless differentiates np.pad with one constant value "
                             "(constant_values a number)")
        return np.pad(array, pad_width, mode="constant", constant_values=constant_values)
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise ValueError(f"tapeless cannot differentiate np.pad with mode={mode!r}")
    return np.pad(array, pad_width, mode=mode)


# --- differences --------------------------------------------------------------------------


@jvp("np.diff")
def _diff(a, n, axis, prepend, append):
    # Linear in a, prepend and append together (None: none, as NumPy's default, which is
    # no value).
    out = _diff_call(a, n, axis, prepend, append)
    return out, lambda t: _diff_call(t, n, axis, _zero_or_none(prepend), _zero_or_none(append)), \
        None, None, \
        lambda t: ZERO if prepend is None else \
        _diff_call(np.zeros(np.shape(a)), n, axis, t, _zero_or_none(append)), \
        lambda t: ZERO if append is None else \
        _diff_call(np.zeros(np.shape(a)), n, axis, _zero_or_none(prepend), t)


def _diff_call(a, n, axis, prepend, append):
    if prepend is None and append is None:
        return np.diff(a, n, axis)
    if prepend is None:
        return np.diff(a, n, axis, append=append)
    if append is None:
        return np.diff(a, n, axis, prepend=prepend)
    return np.diff(a, n, axis, prepend, append)


def _zero_or_none(v):
    return None if v is None else np.zeros(np.shape(v))


@jvp("np.gradient")
def _gradient(f, varargs, axis, edge_order):
    # Linear in f for a fixed spacing h; the result is proportional to 1 / h.
    out = _gradient_call(f, varargs, axis, edge_order)
    return out, lambda t: _gradient_call(t, varargs, axis, edge_order), \
        lambda t: _scaled(out, -sens_of(sens_index(t, 0), varargs[0]) / varargs[0]), \
        None, None


def _gradient_call(f, varargs, axis, edge_order):
    if edge_order != 1 or len(varargs) > 1 or (len(varargs) == 1 and np.ndim(varargs[0]) != 0):
        raise ValueError("tapeless differentiates np.gradient with edge_order=1 and at most "
                         "one spacing, a number")
    if len(varargs) == 0:
        return np.gradient(f, axis=axis, edge_order=edge_order)
    return np.gradient(f, varargs[0], axis=axis, edge_order=edge_order)


def _scaled(out, c):
    """`out` (an array, or a tuple or list of them) times c."""
    if isinstance(out, tuple):
        return tuple(o * c for o in out)
    if isinstance(out, list):
        return [o * c for o in out]
    return out * c


# --- sorting and order statistics -------------------------------------------------------


@jvp("np.sort")
def _sort(a, axis, kind, order):
    out = np.sort(a, axis, kind, order)
    ax = -1 if axis is None else axis
    idx = np.argsort(np.ravel(a) if axis is None else a, ax)
    return out, lambda t: np.take_along_axis(np.ravel(t) if axis is None else t, idx, ax), \
        None, None, None


@jvp("np.partition")
def _partition(a, kth, axis, kind, order):
    # Each element of the result comes from the element of equal rank in a.
    out = np.partition(a, kth, axis, kind, order)
    x = np.ravel(a) if axis is None else a
    ax = -1 if axis is None else axis
    src = np.take_along_axis(np.argsort(x, ax), np.argsort(np.argsort(out, ax), ax), ax)
    return out, lambda t: np.take_along_axis(np.ravel(t) if axis is None else t, src, ax), \
        None, None, None, None


def _along_last(a, axis):
    """a with the quantile's axis last (all of a, flattened, for None)."""
    if axis is not None and np.ndim(axis) != 0:
        raise ValueError("tapeless differentiates quantiles over one axis or all of them")
    return np.ravel(a) if axis is None else np.moveaxis(a, axis, -1)


def _ranks(n, q):
    """The ranks floor(h) and floor(h) + 1 (at most n - 1) of the sorted elements the
    quantiles q interpolate between, h = q * (n - 1), and the fraction h - floor(h)."""
    h = np.ravel(q) * (n - 1.0)
    lo = np.minimum(np.floor(h), n - 1.0)
    lo_i = lo.astype("int64")
    return lo_i, np.minimum(lo_i + 1, n - 1), h - lo


def _order_tangent(tx, x, s, ranks):
    """The tangent of the sorted values s of x at `ranks` (on the last axis), given tx
    that of x: the tangent of the element at that rank; where several elements equal it,
    their mean where the rank is the first or last of theirs, and 0 strictly inside (the
    transpose of `rules_arrays._order_sens`)."""
    v = np.take(s, ranks, -1)  # [..., j]
    xe = np.expand_dims(x, -2)  # [..., 1, i]
    ties = np.equal(xe, np.expand_dims(v, -1))  # [..., j, i]
    size = np.sum(ties, axis=-1)
    first = np.sum(np.less(xe, np.expand_dims(v, -1)), axis=-1)
    edge = np.logical_or(np.equal(ranks, first), np.equal(ranks, first + size - 1))
    mean = np.sum(np.where(ties, np.expand_dims(tx, -2), 0.0), axis=-1) / np.maximum(size, 1)
    return np.where(edge, mean, 0.0)


def _quantile_tangent(t, a, q, axis, out):
    """The tangent of np.quantile(a, q, axis) (any keepdims) along t, a's tangent."""
    x = _along_last(a, axis)
    n = np.shape(x)[-1]
    s = np.sort(x, -1)
    r = _ranks(n, q)
    tx = _along_last(t, axis)
    dv = _order_tangent(tx, x, s, r[0]) * (1.0 - r[2]) + _order_tangent(tx, x, s, r[1]) * r[2]
    return reshape_like(np.moveaxis(dv, -1, 0), out)


def _quantile_q_tangent(t, a, q, axis, out):
    """The tangent of np.quantile(a, q, axis) along t, q's tangent: the slope between
    the sorted elements it interpolates between."""
    x = _along_last(a, axis)
    n = np.shape(x)[-1]
    s = np.sort(x, -1)
    r = _ranks(n, q)
    slope = (np.take(s, r[1], -1) - np.take(s, r[0], -1)) * (n - 1.0)
    return reshape_like(np.moveaxis(slope * np.ravel(t), -1, 0), out)


def _check_quantile(out, method):
    if out is not None or method != "linear":
        raise ValueError("tapeless differentiates quantiles with method='linear', "
                         "without out")
    return method


@jvp("np.median")
def _median(a, axis, out, overwrite_input, keepdims):
    y = np.median(a, axis=axis, keepdims=keepdims)
    _check_quantile(out, "linear")
    return y, lambda t: _quantile_tangent(t, a, 0.5, axis, y), None, None, None, None


@jvp("np.quantile")
def _quantile(a, q, axis, out, overwrite_input, method, keepdims):
    y = np.quantile(a, q, axis=axis, keepdims=keepdims)
    _check_quantile(out, method)
    return y, lambda t: _quantile_tangent(t, a, q, axis, y), \
        lambda t: _quantile_q_tangent(t, a, q, axis, y), None, None, None, None, None


@jvp("np.percentile")
def _percentile(a, q, axis, out, overwrite_input, method, keepdims):
    y = np.percentile(a, q, axis=axis, keepdims=keepdims)
    _check_quantile(out, method)
    return y, lambda t: _quantile_tangent(t, a, np.divide(q, 100.0), axis, y), \
        lambda t: _quantile_q_tangent(t, a, np.divide(q, 100.0), axis, y) / 100.0, \
        None, None, None, None, None


@jvp("np.unique")
def _unique(ar, return_index, return_inverse, return_counts, axis):
    # Differentiable in the unique values: each the mean of the elements equal to it.
    out = np.unique(ar, return_index, return_inverse, return_counts, axis)
    merged = _merged(ar, axis)
    several = return_index or return_inverse or return_counts
    return out, lambda t: _unique_tangent(t, merged, out, several), None, None, None, None


def _merged(ar, axis):
    if axis is not None:
        raise ValueError("tapeless differentiates np.unique without axis")
    m = np.unique(ar, return_inverse=True, return_counts=True)
    return np.ravel(m[1]), m[2]


def _unique_tangent(t, merged, out, several):
    counts = merged[1]
    dv = np.bincount(merged[0], np.ravel(t), len(counts)) / counts
    if several:
        return (dv,) + (ZERO,) * (len(out) - 1)
    return dv


# --- constructors ---------------------------------------------------------------------


@jvp("np.arange")
def _arange(args, dtype):
    out = np.arange(*args, dtype=dtype)
    return out, lambda t: _arange_tangent(t, args, out), None


def _arange_tangent(t, args, out):
    """start + step * k, for k = 0, 1, ...: the stop only decides how many."""
    n = len(args)
    if n == 1:
        return np.zeros(np.shape(out))
    start = sens_of(sens_index(t, 0), 0.0) + np.zeros(np.shape(out))
    if n == 2:
        return start
    return start + sens_of(sens_index(t, 2), 0.0) * np.arange(len(out))


# --- reductions -------------------------------------------------------------------------


@jvp("np.nansum")
def _nansum(a, axis, dtype, keepdims):
    keep = np.logical_not(np.isnan(a))
    return np.nansum(a, axis, dtype, keepdims), \
        lambda t: np.sum(np.where(keep, t, 0.0), axis=axis, keepdims=keepdims), \
        None, None, None


@jvp("np.nanmean")
def _nanmean(a, axis, dtype, keepdims):
    keep = np.logical_not(np.isnan(a))
    count = np.maximum(np.sum(keep, axis=axis, keepdims=keepdims), 1)
    return np.nanmean(a, axis, dtype, keepdims), \
        lambda t: np.sum(np.where(keep, t, 0.0), axis=axis, keepdims=keepdims) / count, \
        None, None, None


@jvp("np.nanmax")
def _nanmax(a, axis, keepdims):
    out = np.nanmax(a, axis, keepdims)
    return out, lambda t: _nan_chosen(t, a, out, axis, keepdims), None, None


@jvp("np.nanmin")
def _nanmin(a, axis, keepdims):
    out = np.nanmin(a, axis, keepdims)
    return out, lambda t: _nan_chosen(t, a, out, axis, keepdims), None, None


def _nan_chosen(t, a, out, axis, keepdims):
    """The mean of the tangents where a equals the extreme value (never at a NaN)."""
    hits = np.equal(a, expand_reduced(out, a, axis, keepdims))
    total = np.sum(np.where(hits, t, 0.0), axis=axis, keepdims=keepdims)
    return total / np.maximum(np.sum(hits, axis=axis, keepdims=keepdims), 1)


@jvp("np.average")
def _average(a, axis, weights, returned, keepdims):
    out = np.average(a, axis=axis, weights=weights, keepdims=keepdims)
    parts = _average_parts(a, axis, weights, returned)
    # parts: the weights shaped to broadcast against a (1 without), their sum over the
    # axis and the mean (both with the reduced axes kept).
    return out, lambda t: np.sum(t * parts[0] / parts[1], axis=axis, keepdims=keepdims), \
        None, lambda t: ZERO if weights is None else np.sum(
            np.reshape(t, np.shape(parts[0])) / parts[1] * (a - parts[2]), axis=axis,
            keepdims=keepdims), None, None


def _average_parts(a, axis, weights, returned):
    if returned:
        raise ValueError("tapeless differentiates np.average with returned=False")
    if weights is None:
        n = reduced_count(a, axis)
        return 1.0, float(n), np.mean(a, axis=axis, keepdims=True)
    w = weights
    if np.ndim(weights) != np.ndim(a):  # (1-d weights along the axis)
        ax = axis % np.ndim(a)
        w = np.reshape(weights, tuple(-1 if i == ax else 1 for i in range(np.ndim(a))))
    total = np.sum(np.broadcast_to(w, np.shape(a)), axis=axis, keepdims=True)
    return w, total, np.sum(a * w, axis=axis, keepdims=True) / total


# --- covariance ---------------------------------------------------------------------------


def _variables(m, rowvar):
    """m as np.cov reads it: one variable per row (2-d)."""
    x = np.atleast_2d(m)
    return np.transpose(x) if not rowvar and np.shape(x)[0] != 1 else x


def _stack_variables(m, y, rowvar):
    xm = _variables(m, rowvar)
    return xm if y is None else np.concatenate((xm, _variables(y, rowvar)), 0)


def _cov_parts(m, y, rowvar, bias, ddof):
    x = _stack_variables(m, y, rowvar)
    fact = np.shape(x)[1] - (ddof if ddof is not None else (0 if bias else 1))
    return x - np.mean(x, axis=1, keepdims=True), fact


def _cov_tangent(tx, xc, fact):
    """The tangent of xc @ xc.T / fact, xc the centered rows of x, along tx."""
    tc = tx - np.mean(tx, axis=1, keepdims=True)
    g = tc @ np.transpose(xc)
    return (g + np.transpose(g)) / fact


@jvp("np.cov")
def _cov(m, y, rowvar, bias, ddof):
    out = np.cov(m, y, rowvar, bias, ddof)
    parts = _cov_parts(m, y, rowvar, bias, ddof)
    return out, lambda t: reshape_like(_cov_tangent(_stack_variables(
        t, _zero_or_none(y), rowvar), parts[0], parts[1]), out), \
        lambda t: ZERO if y is None else reshape_like(_cov_tangent(_stack_variables(
            np.zeros(np.shape(m)), t, rowvar), parts[0], parts[1]), out), \
        None, None, None


@jvp("np.corrcoef")
def _corrcoef(x, y, rowvar):
    out = np.corrcoef(x, y, rowvar)
    parts = _cov_parts(x, y, rowvar, False, None)
    return out, lambda t: _corr_tangent(_cov_tangent(_stack_variables(
        t, _zero_or_none(y), rowvar), parts[0], parts[1]), parts, out), \
        lambda t: ZERO if y is None else _corr_tangent(_cov_tangent(_stack_variables(
            np.zeros(np.shape(x)), t, rowvar), parts[0], parts[1]), parts, out), None


def _corr_tangent(dc, parts, out):
    """r = c / (s s^T), s = sqrt(diag(c)): its tangent from dc, that of c (NumPy's
    clipping to [-1, 1] ignored, as the reverse rule)."""
    vc = parts[0]
    c = vc @ np.transpose(vc) / parts[1]
    s = np.sqrt(np.diag(c))
    r = c / np.outer(s, s)
    rel = np.diag(dc) / (2.0 * s * s)  # ds / s
    dr = dc / np.outer(s, s) - r * (np.expand_dims(rel, 1) + np.expand_dims(rel, 0))
    return reshape_like(dr, out)


# --- interpolation, histograms, counting -------------------------------------------------


@jvp("np.interp")
def _interp(x, xp, fp, left, right, period):
    out = np.interp(x, xp, fp, left, right, period)
    g = _interp_parts(x, xp, fp, period)
    # g: (j, t, slope, below, above, inside), x in [xp[j], xp[j + 1]] at fraction t
    return out, lambda dx: reshape_like(np.where(g[5], dx * g[2], 0.0), out), \
        lambda dxp: reshape_like(np.where(g[5], g[2] * (
            np.take(dxp, g[0]) * (g[1] - 1.0) - np.take(dxp, g[0] + 1) * g[1]), 0.0), out), \
        lambda dfp: reshape_like(_interp_fp(dfp, g, left, right), out), \
        lambda dl: ZERO if left is None else reshape_like(np.where(g[3], dl, 0.0), out), \
        lambda dr: ZERO if right is None else reshape_like(np.where(g[4], dr, 0.0), out), \
        None


def _interp_fp(dfp, g, left, right):
    j = g[0]
    t = g[1]
    inner = np.take(dfp, j) * (1.0 - t) + np.take(dfp, j + 1) * t
    low = 0.0 if left is not None else dfp[0]
    high = 0.0 if right is not None else dfp[np.size(dfp) - 1]
    return np.where(g[5], inner, np.where(g[3], low, np.where(g[4], high, 0.0)))


@jvp("np.bincount")
def _bincount(x, weights, minlength):
    # Linear in the weights.
    return np.bincount(x, weights, minlength), None, \
        lambda t: np.bincount(x, t, minlength), None


@jvp("np.histogram")
def _histogram(a, bins, range, density, weights):  # noqa: A002
    # The counts are piecewise constant in a; differentiable are the weighted counts in
    # the weights, and the edges in the bins given as edges, or else in the range (by
    # default the data's smallest and largest element: ties share, as for np.min/max).
    out = np.histogram(a, bins, range, density, weights)
    parts = _histogram_parts(a, out, weights)
    nb = len(out[1]) - 1
    t = np.linspace(0.0, 1.0, nb + 1)
    x = np.ravel(a)
    low = np.equal(x, np.min(x))
    high = np.equal(x, np.max(x))
    # (The data decide the edges only where neither edges nor a range are given.)
    return out, lambda ta: _histogram_tangent(
        ZERO, _data_edges(ta, bins, range, low, high, t), out, parts, density), \
        lambda tb: _histogram_tangent(ZERO, tb if np.ndim(bins) == 1 else ZERO, out, parts,
                                      density), \
        lambda tr: ZERO if range is None else \
        _histogram_tangent(ZERO, _range_edges(tr, bins, t), out, parts, density), None, \
        lambda tw: ZERO if weights is None else \
        _histogram_tangent(tw, ZERO, out, parts, density)


def _data_edges(ta, bins, range, low, high, t):  # noqa: A002
    if np.ndim(bins) == 1 or range is not None:
        return ZERO
    x = np.ravel(ta)
    dlo = np.sum(np.where(low, x, 0.0)) / np.sum(low)
    dhi = np.sum(np.where(high, x, 0.0)) / np.sum(high)
    return dlo * (1.0 - t) + dhi * t


def _range_edges(tr, bins, t):
    if np.ndim(bins) == 1:
        return ZERO
    return sens_index(tr, 0) * (1.0 - t) + sens_index(tr, 1) * t


def _histogram_parts(a, out, weights):
    """(bin of each element, whether it is inside the edges, total weight inside)."""
    edges = out[1]
    x = np.ravel(a)
    nb = len(edges) - 1
    idx = np.maximum(np.minimum(np.searchsorted(edges, x, "right") - 1, nb - 1), 0)
    inside = np.logical_and(np.greater_equal(x, edges[0]), np.less_equal(x, edges[nb]))
    total = np.sum(np.where(inside, np.ones_like(x) if weights is None else np.ravel(weights),
                            0.0))
    return idx, inside, total


def _histogram_tangent(tw, te, out, parts, density):
    """The tangent of (hist, edges) along tw (the weights') and te (the edges')."""
    hist = out[0]
    edges = out[1]
    nb = len(edges) - 1
    dc = np.zeros(nb) if tw is ZERO else \
        np.bincount(parts[0], np.where(parts[1], np.ravel(tw), 0.0), nb)
    de = np.zeros(nb + 1) if te is ZERO else te
    if not density:
        return dc, de
    # hist = counts / (total * widths)
    widths = np.diff(edges)
    dtotal = np.sum(dc)
    dh = dc / (parts[2] * widths) - hist * dtotal / parts[2] - hist * np.diff(de) / widths
    return dh, de


# --- norms ------------------------------------------------------------------------------------


@jvp("np.linalg.norm")
def _norm(x, ord, axis, keepdims):  # noqa: A002
    out = np.linalg.norm(x, ord, axis, keepdims)
    g = _norm_slope(x, out, ord, axis, keepdims)
    # (A sum over the reduced axes: all of them for axis=None, vector or matrix norm.)
    return out, lambda t: np.sum(g * t, axis=axis, keepdims=keepdims), None, None, None


def _norm_slope(x, out, ord, axis, keepdims):  # noqa: A002
    """d norm / dx, shaped like x: the reverse rule's (`rules_linalg`), whose conventions
    (ties, zeros) it keeps."""
    if ord is None or ord == "fro":  # (the 2-norm of the entries)
        return x / expand_reduced(out, x, axis, keepdims)
    nd = np.ndim(x)
    if _matrix_axes(axis, nd):
        axes = _two_axes(axis, nd)
        g = _matrix_norm_back(np.moveaxis(x, axes, (-2, -1)), ord)
        return np.moveaxis(g, (-2, -1), axes)
    return _vector_norm_back(x, ord, axis, expand_reduced(out, x, axis, keepdims))


def _symmetric_tangent(t, uplo):
    """The tangent of the symmetric matrix NumPy reads from one triangle of a (the lower
    one for 'L'), given a's tangent t (the transpose of `rules_linalg._read_triangle`)."""
    one = np.tril(t, -1) if _is_lower(uplo) else np.triu(t, 1)
    return one + _t(one) + np.tril(np.triu(t))


@jvp("np.linalg.eigh")
def _eigh(a, UPLO):  # noqa: N803
    wv = np.linalg.eigh(a, UPLO)
    return wv, lambda t: _eigh_tangent(_symmetric_tangent(t, UPLO), wv[0], wv[1]), None


def _eigh_tangent(ta, w, v):
    """(dw, dv) = (diag(P), V (P_ij / (w_j - w_i) off the diagonal)), P = V^T dA V (0
    where P is exactly 0, as the reverse rule: the vectors' derivative needs distinct
    eigenvalues)."""
    p = _t(v) @ ta @ v
    gaps = np.expand_dims(w, -2) - np.expand_dims(w, -1)
    return np.diagonal(p, 0, -2, -1), v @ _divide(p, gaps, True)


@jvp("np.linalg.eigvalsh")
def _eigvalsh(a, UPLO):  # noqa: N803
    return np.linalg.eigvalsh(a, UPLO), lambda t: _eigvalsh_tangent(
        _symmetric_tangent(t, UPLO), a, UPLO), None


def _eigvalsh_tangent(ta, a, uplo):
    v = np.linalg.eigh(a, uplo)[1]
    return np.diagonal(_t(v) @ ta @ v, 0, -2, -1)


@jvp("np.linalg.svd")
def _svd(a, full_matrices, compute_uv, hermitian):
    out = np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv,
                        hermitian=hermitian)
    return out, lambda t: _svd_tangent(t, a, full_matrices, compute_uv, hermitian), \
        None, None, None


def _svd_tangent(t, a, full_matrices, compute_uv, hermitian):
    """The thin SVD's tangent: with P = U^T dA V, dS = diag(P), and, F_ij = 1 / (s_j^2 -
    s_i^2) off the diagonal, dU = U (F o (P S + S P^T)) + (dA V - U P) S^-1 and dV = V (F
    o (S P + P^T S)) + (dA^T U - V P^T) S^-1."""
    if hermitian:
        raise ValueError("tapeless cannot differentiate np.linalg.svd with hermitian=True "
                         "(NumPy then reads one triangle only): pass a symmetric matrix "
                         "with hermitian=False")
    if compute_uv and full_matrices and np.shape(a)[-1] != np.shape(a)[-2]:
        raise ValueError("tapeless cannot differentiate the columns of a complete "
                         "factorization beyond min(m, n), which it does not determine: "
                         "use full_matrices=False (svd) or mode='reduced' (qr)")
    usv = np.linalg.svd(a, full_matrices=False)
    u = usv[0]
    s = usv[1]
    v = _t(usv[2])
    p = _t(u) @ t @ v
    ds = np.diagonal(p, 0, -2, -1)
    if not compute_uv:
        return ds
    right = np.expand_dims(s, -2)  # (X S = X * right)
    left = np.expand_dims(s, -1)  # (S X = left * X)
    s2 = s * s
    f = _divide(np.ones(np.shape(p)), np.expand_dims(s2, -2) - np.expand_dims(s2, -1), True)
    pt = _t(p)
    du = u @ (f * (p * right + left * pt)) + (t @ v - u @ p) / right
    dv = v @ (f * (left * p + pt * right)) + (_t(t) @ u - v @ pt) / right
    return du, ds, _t(dv)


@jvp("np.linalg.cholesky")
def _cholesky(a, upper):
    c = np.linalg.cholesky(a, upper=upper)
    # (A = L L^T, or U^T U with U = L^T, read from a's lower or upper triangle.)
    return c, lambda t: _cholesky_tangent(_symmetric_tangent(t, "U" if upper else "L"),
                                          _t(c) if upper else c, upper), None


def _cholesky_tangent(ta, low, upper):
    """Murray (2016): dL = L Phi(L^-1 dA L^-T) (Phi: the lower triangle with its
    diagonal halved), transposed for the upper factor."""
    linv = np.linalg.inv(low)
    x = linv @ ta @ _t(linv)
    dl = low @ (np.tril(x) - 0.5 * x * np.eye(np.shape(low)[-1]))
    return _t(dl) if upper else dl


@jvp("np.linalg.qr")
def _qr(a, mode):
    out = np.linalg.qr(a, mode)
    return out, lambda t: _qr_tangent(t, a, mode), None


def _qr_tangent(t, a, mode):
    """(dQ, dR), or dR for mode 'r'. Tall or square: with C = Q^T dA R^-1 and Omega the
    skew matrix of C's strict lower triangle, dR = (C - Omega) R and dQ = dA R^-1 -
    Q (C - Omega). Wide, A = [X | Y] with X = Q R1 square and R2 = Q^T Y: X's tangents,
    and dR2 = dQ^T Y + Q^T dY."""
    if mode != "reduced" and mode != "complete" and mode != "r":
        raise ValueError(f"tapeless differentiates np.linalg.qr with mode='reduced', "
                         f"'complete' or 'r', not {mode!r}")
    m = np.shape(a)[-2]
    n = np.shape(a)[-1]
    if mode == "complete" and m > n:
        raise ValueError("tapeless cannot differentiate the columns of a complete "
                         "factorization beyond min(m, n), which it does not determine: "
                         "use full_matrices=False (svd) or mode='reduced' (qr)")
    qr = np.linalg.qr(a)
    q = qr[0]
    r = qr[1]
    if m >= n:
        d = _qr_square_tangent(q, r, t)
    else:
        dx = _qr_square_tangent(q, r[..., :m], t[..., :m])
        dr2 = _t(dx[0]) @ a[..., m:] + _t(q) @ t[..., m:]
        d = (dx[0], np.concatenate([dx[1], dr2], -1))
    if mode == "r":
        return d[1]
    return d


def _qr_square_tangent(q, r, t):
    """(dQ, dR) for A = Q R with R square and invertible (see `_qr_tangent`)."""
    t_rinv = _t(np.linalg.solve(_t(r), _t(t)))  # dA R^-1
    c = _t(q) @ t_rinv
    low = np.tril(c, -1)
    up = c - (low - _t(low))  # (upper triangular)
    return t_rinv - q @ up, up @ r


@jvp("np.linalg.pinv")
def _pinv(a, rcond, hermitian, rtol):
    p = _pinv_call(a, rcond, hermitian, rtol)
    return p, lambda t: _pinv_tangent(t, a, p, hermitian), None, None, None


def _pinv_call(a, rcond, hermitian, rtol):
    if rtol is None:
        return np.linalg.pinv(a, rcond, hermitian)
    return np.linalg.pinv(a, rcond, hermitian, rtol=rtol)


def _pinv_tangent(t, a, p, hermitian):
    """Golub and Pereyra, for P = pinv(A) of locally constant rank: dP = -P dA P +
    P P^T dA^T (I - A P) + (I - P A) dA^T P^T P."""
    if hermitian:
        raise ValueError("tapeless cannot differentiate np.linalg.pinv with hermitian=True "
                         "(NumPy then reads one triangle only): pass a symmetric matrix "
                         "with hermitian=False")
    pt = _t(p)
    tt = _t(t)
    return -(p @ t @ p) + (p @ pt) @ (tt - (tt @ a) @ p) + (tt - p @ (a @ tt)) @ (pt @ p)


@jvp("np.linalg.lstsq")
def _lstsq(a, b, rcond):
    out = np.linalg.lstsq(a, b, rcond)
    p = np.linalg.pinv(a, _pinv_rcond(rcond))
    e = a @ out[0] - b
    # (x, residuals, rank, s): x = pinv(A) b (cut off as lstsq cuts the singular
    # values); the squared residuals |A x - b|^2 at their minimum x; s, A's singular
    # values.
    return out, lambda t: (_pinv_tangent(t, a, p, False) @ b,
                           _residuals_tangent(t @ out[0], e, out[1]), ZERO,
                           _svd_tangent(t, a, False, False, False)), \
        lambda t: (p @ t, _residuals_tangent(-t, e, out[1]), ZERO, ZERO), None


def _residuals_tangent(de, e, residuals):
    """The tangent of the squared residuals, 2 <e, de> per column (none where lstsq
    gives none)."""
    if np.size(residuals) == 0:
        return np.zeros(np.shape(residuals))
    if np.ndim(e) == 1:
        return np.reshape(2.0 * np.sum(e * de), (1,))
    return 2.0 * np.sum(e * de, axis=0)


@jvp("np.linalg.matrix_power")
def _matrix_power(a, n):
    return np.linalg.matrix_power(a, n), lambda t: _matrix_power_tangent(t, a, n), None


def _matrix_power_tangent(t, a, n):
    """The sum over k of b^k db b^(m - 1 - k), for a^n = b^m with b = a (n >= 0) or its
    inverse (whose tangent is -b t b), m = |n|."""
    b = a if n >= 0 else np.linalg.inv(a)
    tb = t if n >= 0 else -(b @ t @ b)
    m = n if n >= 0 else -n
    total = np.zeros(np.shape(t))
    for k in range(m):
        total = total + np.linalg.matrix_power(b, k) @ tb @ np.linalg.matrix_power(b, m - 1 - k)
    return total


# --- methods --------------------------------------------------------------------------------


@jvp("method.astype")
def _astype(x, dtype):
    return x.astype(dtype), lambda t: t, None


@jvp("method.item")
def _item(x):
    return x.item(), lambda t: reshape_like(t, x.item()), None


@jvp("method.conj")
def _conj(x):
    return x.conj(), lambda t: np.conj(t)


@jvp("method.items")
def _items(x):
    keys = tuple(x.keys())
    return x.items(), lambda t: tuple((ZERO, sens_index(t, k)) for k in keys)


@jvp("method.values")
def _values(x):
    keys = tuple(x.keys())
    return x.values(), lambda t: tuple(sens_index(t, k) for k in keys)


@jvp("method.get")
def _get(x, key, default):
    found = key in x
    return x.get(key, default), lambda t: sens_index(t, key) if found else ZERO, None, \
        lambda t: ZERO if found else t


@jvp("method.reshape")
def _m_reshape(x, shape):
    new_shape = shape[0] if len(shape) == 1 else shape
    return np.reshape(x, new_shape), lambda t: np.reshape(t, new_shape), None


@jvp("method.transpose")
def _m_transpose(x, axes):
    order = None if len(axes) == 0 or (len(axes) == 1 and axes[0] is None) else \
        (axes[0] if len(axes) == 1 else axes)
    return np.transpose(x, order), lambda t: np.transpose(t, order), None


# --- scipy.linalg (where SciPy is importable) -------------------------------------------

if sla is not None:

    @jvp("scipy.linalg.solve_triangular")
    def _solve_triangular(a, b, trans, lower, unit_diagonal, overwrite_b, check_finite):
        x = sla.solve_triangular(a, b, trans, lower, unit_diagonal, overwrite_b, check_finite)
        # op(T) x = b, T the triangle of a read (its diagonal 1 when unit_diagonal): dx =
        # op(T)^-1 (db - op(dT) x).
        return x, lambda t: sla.solve_triangular(
            a, -(_op_triangle(t, trans, lower, unit_diagonal) @ x), trans, lower,
            unit_diagonal), \
            lambda t: sla.solve_triangular(a, t, trans, lower, unit_diagonal), \
            None, None, None, None, None

    def _op_triangle(t, trans, lower, unit_diagonal):
        """op(dT): the triangle of t that solve_triangular reads, transposed for trans."""
        if lower:
            dt = np.tril(t, -1 if unit_diagonal else 0)
        else:
            dt = np.triu(t, 1 if unit_diagonal else 0)
        transposed = trans == 1 or trans == 2 or trans == "T" or trans == "C"
        return _t(dt) if transposed else dt

    @jvp("scipy.linalg.cho_factor")
    def _cho_factor(a, lower, overwrite_a, check_finite):
        out = sla.cho_factor(a, lower, overwrite_a, check_finite)
        c = out[0]
        # c holds the factor in one triangle and a's entries in the other (SciPy leaves
        # them there), whose tangents are a's.
        return (c, out[1]), lambda t: (_cho_factor_tangent(t, c, lower), ZERO), \
            None, None, None

    def _cho_factor_tangent(t, c, lower):
        if lower:
            return _cholesky_tangent(_symmetric_tangent(t, "L"), np.tril(c), False) + \
                np.triu(t, 1)
        return _cholesky_tangent(_symmetric_tangent(t, "U"), _t(np.triu(c)), True) + \
            np.tril(t, -1)

    @jvp("scipy.linalg.cho_solve")
    def _cho_solve(c_and_lower, b, overwrite_b, check_finite):
        x = sla.cho_solve(c_and_lower, b, overwrite_b, check_finite)
        # A x = b with A = L L^T (or U^T U) from c's triangle: dx = A^-1 (db - dA x).
        return x, lambda t: sla.cho_solve(c_and_lower, -(_cho_matrix_tangent(
            sens_of(sens_index(t, 0), c_and_lower[0]), c_and_lower) @ x)), \
            lambda t: sla.cho_solve(c_and_lower, t), None, None

    def _cho_matrix_tangent(tc, c_and_lower):
        """dA from the tangent of c, of which the factor's triangle is read."""
        c = c_and_lower[0]
        if c_and_lower[1]:
            low = np.tril(c)
            dl = np.tril(tc)
            return dl @ _t(low) + low @ _t(dl)
        up = np.triu(c)
        du = np.triu(tc)
        return _t(du) @ up + _t(up) @ du
