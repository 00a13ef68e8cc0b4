"""Reverse rules of more NumPy functions: elementwise odds and ends, rearrangements,
differences and cumulative products, sorting and order statistics, NaN-aware and
weighted reductions, covariance, 1-d convolution, interpolation and padding. Written,
like those of `rules_numpy`, in the supported subset (compiled by tapeless, so they
differentiate again): each linear map's adjoint is itself made of primitives with rules
(np.take / take_sens, np.take_along_axis / take_along_axis_sens, np.pad / np.take,
np.convolve / np.correlate)."""

# ruff: noqa: E731
from __future__ import annotations

import math

import numpy as np

from ..runtime import (
    ZERO,
    concat_sens,
    expand_reduced,
    reduced_count,
    reshape_like,
    sens_index,
    sens_of,
    take_along_axis_sens,
    take_sens,
    unbroadcast,
)
from . import rules_numpy  # noqa: F401  (registered first: np.trace's rule is replaced here)
from .registry import rule

# --- elementwise ------------------------------------------------------------------------


@rule("np.fabs")
def _fabs(x):
    return np.fabs(x), lambda d: (d * np.sign(x),)


@rule("np.degrees")
def _degrees(x):
    return np.degrees(x), lambda d: (d * (180.0 / math.pi),)


@rule("np.radians")
def _radians(x):
    return np.radians(x), lambda d: (d * (math.pi / 180.0),)


@rule("np.conjugate")
def _conjugate(x):
    return np.conjugate(x), lambda d: (np.conjugate(d),)


@rule("np.real")
def _real(val):
    return np.real(val), lambda d: (np.real(d),)


@rule("np.logaddexp2")
def _logaddexp2(x1, x2):
    y = np.logaddexp2(x1, x2)
    back = lambda d: (unbroadcast(d * np.exp2(x1 - y), x1), unbroadcast(d * np.exp2(x2 - y), x2))
    return y, back


@rule("np.nan_to_num")
def _nan_to_num(x, copy, nan, posinf, neginf):
    out = np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)

    def back(d):
        big = np.isinf(x)
        dposinf = ZERO if posinf is None else \
            np.sum(np.where(np.logical_and(big, np.greater(x, 0)), d, 0.0))
        dneginf = ZERO if neginf is None else \
            np.sum(np.where(np.logical_and(big, np.less(x, 0)), d, 0.0))
        return (np.where(np.isfinite(x), d, 0.0), ZERO,
                np.sum(np.where(np.isnan(x), d, 0.0)), dposinf, dneginf)

    return out, back


# --- rearrangements ---------------------------------------------------------------------


@rule("np.repeat")
def _repeat(a, repeats, axis):
    # np.repeat is np.take with each index repeated: its adjoint adds the copies up.
    if axis is None:
        flat = np.repeat(np.arange(np.size(a)), repeats)
        back = lambda d: (reshape_like(take_sens(d, a, flat, None), a), ZERO, ZERO)
        return np.repeat(a, repeats), back
    idx = np.repeat(np.arange(np.shape(a)[axis]), repeats)
    return np.repeat(a, repeats, axis), lambda d: (take_sens(d, a, idx, axis), ZERO, ZERO)


@rule("np.roll")
def _roll(a, shift, axis):
    back_shift = np.negative(shift)
    return np.roll(a, shift, axis), lambda d: (np.roll(d, back_shift, axis), ZERO, ZERO)


@rule("np.tile")
def _tile(A, reps):  # noqa: N803
    out = np.tile(A, reps)

    def back(d):
        # The result as (reps[0], shape[0], reps[1], shape[1], ...), summed over the reps.
        r = (reps,) if np.ndim(reps) == 0 else tuple(reps)
        nd = np.ndim(out)
        s = (1,) * (nd - np.ndim(A)) + np.shape(A)
        r = (1,) * (nd - len(r)) + r
        grid = np.reshape(d, tuple(n for i in range(nd) for n in (r[i], s[i])))
        return reshape_like(np.sum(grid, axis=tuple(range(0, 2 * nd, 2))), A), ZERO

    return out, back


@rule("np.flipud")
def _flipud(m):
    return np.flipud(m), lambda d: (np.flip(d, 0),)


@rule("np.fliplr")
def _fliplr(m):
    return np.fliplr(m), lambda d: (np.flip(d, 1),)


@rule("np.rot90")
def _rot90(m, k, axes):
    return np.rot90(m, k, axes), lambda d: (np.rot90(d, -k, axes), ZERO, ZERO)


@rule("np.rollaxis")
def _rollaxis(a, axis, start):
    # np.rollaxis(a, axis, start) is np.moveaxis(a, axis, p), p where the axis lands.
    n = np.ndim(a)
    src = axis % n
    dst = start + n if start < 0 else start
    dst = dst - 1 if src < dst else dst
    return np.rollaxis(a, axis, start), lambda d: (np.moveaxis(d, dst, src), ZERO, ZERO)


@rule("np.atleast_3d")
def _atleast_3d(a):
    return np.atleast_3d(a), lambda d: (reshape_like(d, a),)


@rule("np.column_stack")
def _column_stack(tup):
    widths = [1 if np.ndim(t) < 2 else np.shape(t)[1] for t in tup]
    cuts = np.cumsum(widths)[:-1]

    def back(d):
        pieces = np.split(d, cuts, 1)
        return (tuple(reshape_like(pieces[i], tup[i]) for i in range(len(tup))),)

    return np.column_stack(tup), back


@rule("np.append")
def _append(arr, values, axis):
    def back(d):
        parts = concat_sens(d, (arr, values), axis)
        return parts[0], parts[1], ZERO

    return np.append(arr, values, axis), back


def _pieces_back(d, pieces, axis):
    """The sensitivity of the array split into `pieces` along `axis`."""
    parts = [sens_of(sens_index(d, i), pieces[i]) for i in range(len(pieces))]
    return np.concatenate(parts, axis)


@rule("np.array_split")
def _array_split(ary, indices_or_sections, axis):
    pieces = np.array_split(ary, indices_or_sections, axis)
    return pieces, lambda d: (_pieces_back(d, pieces, axis), ZERO, ZERO)


@rule("np.hsplit")
def _hsplit(ary, indices_or_sections):
    pieces = np.hsplit(ary, indices_or_sections)
    axis = 1 if np.ndim(ary) > 1 else 0
    return pieces, lambda d: (_pieces_back(d, pieces, axis), ZERO)


@rule("np.vsplit")
def _vsplit(ary, indices_or_sections):
    pieces = np.vsplit(ary, indices_or_sections)
    return pieces, lambda d: (_pieces_back(d, pieces, 0), ZERO)


@rule("np.dsplit")
def _dsplit(ary, indices_or_sections):
    pieces = np.dsplit(ary, indices_or_sections)
    return pieces, lambda d: (_pieces_back(d, pieces, 2), ZERO)


@rule("np.take_along_axis")
def _take_along_axis(arr, indices, axis):
    back = lambda d: (take_along_axis_sens(d, arr, indices, axis), ZERO, ZERO)
    return np.take_along_axis(arr, indices, axis), back


@rule("take_along_axis_sens")
def _take_along_axis_sens(d, arr, indices, axis):
    back = lambda dd: (np.take_along_axis(dd, indices, axis), ZERO, ZERO, ZERO)
    return take_along_axis_sens(d, arr, indices, axis), back


_GATHER_MODES = ("edge", "reflect", "symmetric", "wrap")


@rule("np.pad")
def _pad(array, pad_width, mode, constant_values):
    nd = np.ndim(array)
    shape = np.shape(array)
    widths = np.broadcast_to(np.asarray(pad_width), (nd, 2))
    if mode == "constant":
        out = np.pad(array, pad_width, mode="constant", constant_values=constant_values)
    else:
        out = np.pad(array, pad_width, mode=mode)

    def back(d):
        if mode == "constant":
            # The interior, axis by axis; the constant gets the rest.
            g = d
            for ax in range(nd):
                g = np.take(g, np.arange(widths[ax, 0], widths[ax, 0] + shape[ax]), axis=ax)
            if np.ndim(constant_values) != 0:
                raise ValueError("tapeless differentiates np.pad with one constant value "
                                 "(constant_values a number)")
            return reshape_like(g, array), ZERO, ZERO, np.sum(d) - np.sum(g)
        if mode not in _GATHER_MODES:
            raise ValueError(f"tapeless cannot differentiate np.pad with mode={mode!r}")
        # The other modes gather: along each axis, the elements at
        # np.pad(np.arange(n), widths, mode); their adjoints add back, last axis first.
        g = d
        for k in range(nd):
            ax = nd - 1 - k
            idx = np.pad(np.arange(shape[ax]), (widths[ax, 0], widths[ax, 1]), mode=mode)
            before = np.shape(out)[:ax] + shape[ax:]
            g = take_sens(g, np.zeros(before), idx, ax)
        return reshape_like(g, array), ZERO, ZERO, ZERO

    return out, back


@rule("np.meshgrid")
def _meshgrid(xi, copy, sparse, indexing):
    out = np.meshgrid(*xi, copy=copy, sparse=sparse, indexing=indexing)
    n = len(xi)
    # The axis of the result along which xi[i] varies ('xy' swaps the first two).
    axes = [(1 - i if indexing == "xy" and n > 1 and i < 2 else i) for i in range(n)]

    def back(d):
        sens = tuple(reshape_like(np.sum(sens_of(sens_index(d, i), out[i]),
                                         axis=tuple(j for j in range(n) if j != axes[i])),
                                  xi[i]) for i in range(n))
        return sens, ZERO, ZERO, ZERO

    return out, back


@rule("np.select")
def _select(condlist, choicelist, default):
    out = np.select(condlist, choicelist, default)
    shape = np.shape(out)
    conds = np.stack([np.broadcast_to(c, shape) for c in condlist])
    seen = np.cumsum(conds, axis=0)  # (where the count first reaches 1: the chosen one)

    def back(d):
        parts = [unbroadcast(np.where(np.logical_and(conds[i], np.equal(seen[i], 1)), d, 0.0),
                             choicelist[i]) for i in range(len(choicelist))]
        rest = unbroadcast(np.where(np.equal(seen[-1], 0), d, 0.0), default)
        return ZERO, (parts if isinstance(choicelist, list) else tuple(parts)), rest

    return out, back


# --- differences and products -----------------------------------------------------------


@rule("np.diff")
def _diff(a, n, axis, prepend, append):
    # (prepend and append: None for none, as NumPy's own default, which is no value.)
    nd = np.ndim(a)
    ax = axis % nd
    widths = tuple((1, 1) if i == ax else (0, 0) for i in range(nd))
    if prepend is None and append is None:
        return np.diff(a, n, ax), lambda d: (_diff_back(d, n, ax, widths), ZERO, ZERO, ZERO,
                                             ZERO)
    # Numbers are broadcast to one slice along the axis; the arrays are concatenated.
    side = tuple(1 if i == ax else np.shape(a)[i] for i in range(nd))
    parts: tuple = (a,)
    if prepend is not None:
        parts = (np.broadcast_to(prepend, side) if np.ndim(prepend) == 0 else prepend,) + parts
    if append is not None:
        parts = parts + (np.broadcast_to(append, side) if np.ndim(append) == 0 else append,)
    joined = np.concatenate(parts, ax)

    def back(d):
        g = concat_sens(_diff_back(d, n, ax, widths), parts, ax)
        first = 0 if prepend is None else 1
        dpre = ZERO if prepend is None else unbroadcast(g[0], prepend)
        dapp = ZERO if append is None else unbroadcast(g[len(parts) - 1], append)
        return g[first], ZERO, ZERO, dpre, dapp

    return np.diff(joined, n, ax), back


def _diff_back(d, n, ax, widths):
    """The adjoint of n differences along ax: each, minus the difference of d padded
    with a zero at both ends."""
    g = d
    for _ in range(n):
        g = -np.diff(np.pad(g, widths), 1, ax)
    return g


def _reverse_cumsum(v):
    return np.flip(np.cumsum(np.flip(v, -1), -1), -1)


def _cumprod_back(d, x, out):
    """The sensitivity of x given that of out = np.cumprod(x, -1): sum over i >= j of
    d[i] * out[i] / x[j], where no element is 0; otherwise without dividing, from the
    products before j and the products over (j, i] (memory: the axis's length squared)."""
    if not np.any(np.equal(x, 0)):
        return _reverse_cumsum(d * out) / x
    n = np.shape(x)[-1]
    later = np.triu(np.ones((n, n)), 1) > 0  # [j, k]: k > j
    upto = np.triu(np.ones((n, n))) > 0  # [j, i]: i >= j
    runs = np.cumprod(np.where(later, np.expand_dims(x, -2), 1.0), axis=-1)
    before = np.cumprod(np.concatenate([np.ones_like(x[..., :1]), x[..., :-1]], -1), -1)
    return before * np.sum(np.where(upto, np.expand_dims(d, -2) * runs, 0.0), axis=-1)


@rule("np.cumprod")
def _cumprod(a, axis, dtype):
    out = np.cumprod(a, axis, dtype)

    def back(d):
        if axis is None:
            g = _cumprod_back(np.ravel(d), np.ravel(a), np.ravel(out))
            return reshape_like(g, a), ZERO, ZERO
        g = _cumprod_back(np.moveaxis(d, axis, -1), np.moveaxis(a, axis, -1),
                          np.moveaxis(out, axis, -1))
        return np.moveaxis(g, -1, axis), ZERO, ZERO

    return out, back


@rule("np.gradient")
def _gradient(f, varargs, axis, edge_order):
    # Linear in f: at each point (f[i+1] - f[i-1]) / 2, one-sided (f[1] - f[0],
    # f[n-1] - f[n-2]) at the ends, divided by the spacing.
    if edge_order != 1 or len(varargs) > 1 or (len(varargs) == 1 and np.ndim(varargs[0]) != 0):
        raise ValueError("tapeless differentiates np.gradient with edge_order=1 and at most "
                         "one spacing, a number")
    if len(varargs) == 0:
        out = np.gradient(f, axis=axis, edge_order=edge_order)
        h = 1.0
    else:
        out = np.gradient(f, varargs[0], axis=axis, edge_order=edge_order)
        h = varargs[0]
    nd = np.ndim(f)
    axes = tuple(range(nd)) if axis is None else ((axis,) if np.ndim(axis) == 0 else axis)
    axes = tuple(ax % nd for ax in axes)
    single = len(axes) == 1

    def back(d):
        df = ZERO
        dh = 0.0
        for k in range(len(axes)):
            ax = axes[k]
            dk = d if single else sens_of(sens_index(d, k), out[k])
            n = np.shape(f)[ax]
            up = np.minimum(np.arange(n) + 1, n - 1)
            down = np.maximum(np.arange(n) - 1, 0)
            c = np.reshape(1.0 / (up - down), (n,) + (1,) * (nd - 1 - ax)) / h
            g = take_sens(c * dk, f, up, ax) - take_sens(c * dk, f, down, ax)
            df = g if df is ZERO else df + g
            dh = dh - np.sum(dk * (out if single else out[k])) / h
        return df, ((dh,) if len(varargs) == 1 else ()), ZERO, ZERO

    return out, back


@rule("np.kron")
def _kron(a, b):
    # kron(a, b) viewed with interleaved axes (a0, b0, a1, b1, ...) is a product of a
    # and b broadcast against each other.
    nd = max(np.ndim(a), np.ndim(b))
    sa = (1,) * (nd - np.ndim(a)) + np.shape(a)
    sb = (1,) * (nd - np.ndim(b)) + np.shape(b)
    ea = np.reshape(a, tuple(n for i in range(nd) for n in (sa[i], 1)))
    eb = np.reshape(b, tuple(n for i in range(nd) for n in (1, sb[i])))

    def back(d):
        grid = np.reshape(d, tuple(n for i in range(nd) for n in (sa[i], sb[i])))
        da = np.sum(grid * eb, axis=tuple(range(1, 2 * nd, 2)))
        db = np.sum(grid * ea, axis=tuple(range(0, 2 * nd, 2)))
        return reshape_like(da, a), reshape_like(db, b)

    return np.kron(a, b), back


@rule("np.cross")
def _cross(a, b, axisa, axisb, axisc, axis):
    out = np.cross(a, b, axisa, axisb, axisc, axis)
    ax = axisa if axis is None else axis
    if axis is None and (axisa != axisb or axisa != axisc):
        raise ValueError("tapeless differentiates np.cross with one vector axis")
    if np.shape(a)[ax] != 3 or np.shape(b)[ax] != 3:
        raise ValueError("tapeless differentiates np.cross of 3-vectors only")
    if ax != -1 and np.ndim(a) != np.ndim(b):
        raise ValueError("tapeless differentiates np.cross of operands of different ranks "
                         "with the vectors along the last axis only")
    # <d, a x b> = <a, b x d> = <b, d x a>
    back = lambda d: (unbroadcast(np.cross(b, d, axis=ax), a),
                      unbroadcast(np.cross(d, a, axis=ax), b), ZERO, ZERO, ZERO, ZERO)
    return out, back


# --- sorting and order statistics -------------------------------------------------------


@rule("np.sort")
def _sort(a, axis, kind, order):
    x = np.ravel(a) if axis is None else a
    ax = -1 if axis is None else axis
    idx = np.argsort(x, ax)
    back = lambda d: (reshape_like(take_along_axis_sens(d, x, idx, ax), a), ZERO, ZERO, ZERO)
    return np.sort(a, axis, kind, order), back


@rule("np.partition")
def _partition(a, kth, axis, kind, order):
    # Where each element of the result came from: the element of equal rank in a
    # (equal elements are interchangeable).
    out = np.partition(a, kth, axis, kind, order)
    x = np.ravel(a) if axis is None else a
    ax = -1 if axis is None else axis
    src = np.take_along_axis(np.argsort(x, ax), np.argsort(np.argsort(out, ax), ax), ax)
    back = lambda d: (reshape_like(take_along_axis_sens(d, x, src, ax), a), ZERO, ZERO, ZERO,
                      ZERO)
    return out, back


def _quantile_back(d, a, q, axis):
    """The sensitivities of a and of q (fractions in [0, 1]) given that of
    np.quantile(a, q, axis) (any keepdims), with its linear interpolation between the
    sorted elements at ranks floor(h) and floor(h) + 1, h = q * (n - 1)."""
    if axis is not None and np.ndim(axis) != 0:
        raise ValueError("tapeless differentiates quantiles over one axis or all of them")
    x = np.ravel(a) if axis is None else np.moveaxis(a, axis, -1)
    shape = np.shape(x)
    n = shape[-1]
    s = np.sort(x, -1)
    h = np.ravel(q) * (n - 1.0)
    lo = np.minimum(np.floor(h), n - 1.0)
    frac = h - lo
    lo_i = lo.astype("int64")
    hi_i = np.minimum(lo_i + 1, n - 1)
    nq = np.size(q)
    dq = np.moveaxis(np.reshape(d, (nq,) + shape[:-1]), 0, -1)  # (..., nq)
    g = _order_sens(dq * (1.0 - frac), x, s, lo_i) + _order_sens(dq * frac, x, s, hi_i)
    slope = (np.take(s, hi_i, -1) - np.take(s, lo_i, -1)) * (n - 1.0)
    gq = reshape_like(np.sum(np.reshape(dq * slope, (-1, nq)), axis=0), q)
    if axis is None:
        return reshape_like(g, a), gq
    return np.moveaxis(g, -1, axis), gq


def _order_sens(c, x, s, ranks):
    """The sensitivity of x given c[..., j] that of its sorted values s at ranks[j]:
    all of it to the element at that rank when no other equals it; when several do,
    shared equally among them where the rank is the first or last of theirs (a kink),
    and none where it is strictly inside (there moving one element alone does not move
    the sorted value: each partial derivative is 0)."""
    v = np.take(s, ranks, -1)  # [..., j]
    xe = np.expand_dims(x, -2)  # [..., 1, i]
    ve = np.expand_dims(v, -1)  # [..., j, 1]
    ties = np.equal(xe, ve)
    size = np.sum(ties, axis=-1)
    first = np.sum(np.less(xe, ve), axis=-1)
    last = first + size - 1
    edge = np.logical_or(np.equal(ranks, first), np.equal(ranks, last))
    share = np.where(edge, c / np.maximum(size, 1), 0.0)
    return np.sum(np.expand_dims(share, -1) * ties, axis=-2)


@rule("np.median")
def _median(a, axis, out, overwrite_input, keepdims):
    if out is not None:
        raise ValueError("tapeless differentiates np.median without out")
    back = lambda d: (_quantile_back(d, a, 0.5, axis)[0], ZERO, ZERO, ZERO, ZERO)
    return np.median(a, axis=axis, keepdims=keepdims), back


@rule("np.quantile")
def _quantile(a, q, axis, out, overwrite_input, method, keepdims):
    if out is not None or method != "linear":
        raise ValueError("tapeless differentiates np.quantile with method='linear', "
                         "without out")

    def back(d):
        g = _quantile_back(d, a, q, axis)
        return g[0], g[1], ZERO, ZERO, ZERO, ZERO, ZERO

    return np.quantile(a, q, axis=axis, keepdims=keepdims), back


@rule("np.percentile")
def _percentile(a, q, axis, out, overwrite_input, method, keepdims):
    if out is not None or method != "linear":
        raise ValueError("tapeless differentiates np.percentile with method='linear', "
                         "without out")

    def back(d):
        g = _quantile_back(d, a, np.divide(q, 100.0), axis)
        return g[0], g[1] / 100.0, ZERO, ZERO, ZERO, ZERO, ZERO

    return np.percentile(a, q, axis=axis, keepdims=keepdims), back


# --- reductions -------------------------------------------------------------------------


@rule("np.nansum")
def _nansum(a, axis, dtype, keepdims):
    keep = np.logical_not(np.isnan(a))
    back = lambda d: (np.where(keep, expand_reduced(d, a, axis, keepdims), 0.0),
                      ZERO, ZERO, ZERO)
    return np.nansum(a, axis, dtype, keepdims), back


@rule("np.nanmean")
def _nanmean(a, axis, dtype, keepdims):
    keep = np.logical_not(np.isnan(a))
    count = np.maximum(np.sum(keep, axis=axis, keepdims=True), 1)
    back = lambda d: (np.where(keep, expand_reduced(d, a, axis, keepdims) / count, 0.0),
                      ZERO, ZERO, ZERO)
    return np.nanmean(a, axis, dtype, keepdims), back


def _nan_chooser(a, out, axis, keepdims, d):
    """As `_chooser` of np.max: shared among ties; NaNs never chosen."""
    hits = np.equal(a, expand_reduced(out, a, axis, keepdims))
    share = d / np.maximum(np.sum(hits, axis=axis, keepdims=keepdims), 1)
    return expand_reduced(share, a, axis, keepdims) * hits


@rule("np.nanmax")
def _nanmax(a, axis, keepdims):
    out = np.nanmax(a, axis, keepdims)
    return out, lambda d: (_nan_chooser(a, out, axis, keepdims, d), ZERO, ZERO)


@rule("np.nanmin")
def _nanmin(a, axis, keepdims):
    out = np.nanmin(a, axis, keepdims)
    return out, lambda d: (_nan_chooser(a, out, axis, keepdims, d), ZERO, ZERO)


@rule("np.average")
def _average(a, axis, weights, returned, keepdims):
    if returned:
        raise ValueError("tapeless differentiates np.average with returned=False")
    out = np.average(a, axis=axis, weights=weights, keepdims=keepdims)
    if weights is None:
        n = reduced_count(a, axis)
        back_mean = lambda d: (expand_reduced(d, a, axis, keepdims) / n, ZERO, ZERO, ZERO,
                               ZERO)
        return out, back_mean
    w = weights
    if np.ndim(weights) != np.ndim(a):  # (1-d weights along the axis)
        ax = axis % np.ndim(a)
        w = np.reshape(weights, tuple(-1 if i == ax else 1 for i in range(np.ndim(a))))
    total = np.sum(np.broadcast_to(w, np.shape(a)), axis=axis, keepdims=True)
    mean = np.sum(a * w, axis=axis, keepdims=True) / total

    def back(d):
        e = expand_reduced(d, a, axis, keepdims) / total
        dw = reshape_like(unbroadcast(e * (a - mean), w), weights)
        return reshape_like(e * w, a), ZERO, dw, ZERO, ZERO

    return out, back


# --- covariance ---------------------------------------------------------------------------


def _variables(m, rowvar):
    """m as np.cov reads it: one variable per row (2-d), and whether it was transposed."""
    x = np.atleast_2d(m)
    flip = not rowvar and np.shape(x)[0] != 1
    return (np.transpose(x) if flip else x), flip


def _stacked(m, y, rowvar):
    xm, flip_m = _variables(m, rowvar)
    if y is None:
        return xm, flip_m, xm, False
    xy, flip_y = _variables(y, rowvar)
    return np.concatenate((xm, xy), 0), flip_m, xy, flip_y


def _cov_back(g, xc, fact, m, y, xm_rows, flip_m, flip_y):
    """The sensitivities of m and y given that g of xc @ xc.T / fact (xc centered rows)."""
    dx = (g + np.transpose(g)) @ xc / fact
    dm = dx[:xm_rows]
    dm = reshape_like(np.transpose(dm) if flip_m else dm, m)
    if y is None:
        return dm, ZERO
    dy = dx[xm_rows:]
    return dm, reshape_like(np.transpose(dy) if flip_y else dy, y)


@rule("np.cov")
def _cov(m, y, rowvar, bias, ddof):
    out = np.cov(m, y, rowvar, bias, ddof)
    stacked = _stacked(m, y, rowvar)
    x = stacked[0]
    k = np.shape(x)[0]
    rows = np.shape(np.atleast_2d(m))[0] if not stacked[1] else np.shape(np.atleast_2d(m))[1]
    fact = np.shape(x)[1] - (ddof if ddof is not None else (0 if bias else 1))
    xc = x - np.mean(x, axis=1, keepdims=True)

    def back(d):
        g = _cov_back(np.reshape(d, (k, k)), xc, fact, m, y, rows, stacked[1], stacked[3])
        return g[0], g[1], ZERO, ZERO, ZERO

    return out, back


@rule("np.corrcoef")
def _corrcoef(x, y, rowvar):
    out = np.corrcoef(x, y, rowvar)
    stacked = _stacked(x, y, rowvar)
    v = stacked[0]
    k = np.shape(v)[0]
    rows = np.shape(np.atleast_2d(x))[0] if not stacked[1] else np.shape(np.atleast_2d(x))[1]
    fact = np.shape(v)[1] - 1
    vc = v - np.mean(v, axis=1, keepdims=True)
    c = vc @ np.transpose(vc) / fact
    s = np.sqrt(np.diag(c))
    ss = np.outer(s, s)
    r = c / ss

    def back(d):
        dr = np.reshape(d, (k, k))
        # r = c / (s s^T), s = sqrt(diag(c)) (NumPy's clipping to [-1, 1] ignored)
        ds = -np.sum(dr * r + np.transpose(dr * r), axis=1) / s
        dc = dr / ss + np.diag(ds / (2.0 * s))
        g = _cov_back(dc, vc, fact, x, y, rows, stacked[1], stacked[3])
        return g[0], g[1], ZERO

    return out, back


# --- 1-d convolution ----------------------------------------------------------------------


def _conv_offset(n, m, mode, correlate):
    """Where np.convolve's (or np.correlate's) result starts in the 'full' one."""
    short = min(n, m)
    if mode == "full":
        return 0
    if mode == "valid":
        return short - 1
    if correlate and m > n:
        return short // 2
    return (short - 1) // 2


@rule("np.convolve")
def _convolve(a, v, mode):
    n = np.size(a)
    m = np.size(v)
    start = _conv_offset(n, m, mode, False)

    def back(d):
        full = np.pad(d, (start, n + m - 1 - np.size(d) - start))
        return (reshape_like(np.correlate(full, v, "valid"), a),
                reshape_like(np.correlate(full, a, "valid"), v), ZERO)

    return np.convolve(a, v, mode), back


@rule("np.correlate")
def _correlate(a, v, mode):
    # The full correlation is the full convolution with v reversed.
    n = np.size(a)
    m = np.size(v)
    start = _conv_offset(n, m, mode, True)
    rv = np.flip(np.ravel(v))

    def back(d):
        full = np.pad(d, (start, n + m - 1 - np.size(d) - start))
        return (reshape_like(np.correlate(full, rv, "valid"), a),
                reshape_like(np.flip(np.correlate(full, a, "valid")), v), ZERO)

    return np.correlate(a, v, mode), back


# --- interpolation, counting ----------------------------------------------------------------


def _interp_parts(x, xp, fp, period):
    """Where each x falls among the points xp: (j, t, slope, below, above, inside), x in
    [xp[j], xp[j + 1]] at fraction t, the segment's slope, and which x lie outside."""
    if period is not None:
        raise ValueError("tapeless differentiates np.interp without period")
    npts = np.size(xp)
    j = np.minimum(np.maximum(np.searchsorted(xp, x, "right") - 1, 0), npts - 2)
    x0 = np.take(xp, j)
    f0 = np.take(fp, j)
    h = np.take(xp, j + 1) - x0
    # (Where the last two points are equal, np.interp gives fp[-1] at xp[-1]: t = 1.)
    flat = np.equal(h, 0)
    safe = np.where(flat, 1.0, h)
    slope = np.where(flat, 0.0, (np.take(fp, j + 1) - f0) / safe)
    t = np.where(flat, 1.0, (x - x0) / safe)
    below = np.less(x, xp[0])
    above = np.greater(x, xp[npts - 1])
    inside = np.logical_not(np.logical_or(below, above))
    return j, t, slope, below, above, inside


@rule("np.interp")
def _interp(x, xp, fp, left, right, period):
    parts = _interp_parts(x, xp, fp, period)
    out = np.interp(x, xp, fp, left, right)
    j, t, slope, below, above, inside = parts
    npts = np.size(xp)

    def back(d):
        din = np.where(inside, d, 0.0)
        dlow = np.where(below, d, 0.0)
        dhigh = np.where(above, d, 0.0)
        dfp = take_sens(din * (1.0 - t), fp, j, 0) + take_sens(din * t, fp, j + 1, 0)
        ends = np.arange(npts)
        if left is None:
            dfp = dfp + np.equal(ends, 0) * np.sum(dlow)
        if right is None:
            dfp = dfp + np.equal(ends, npts - 1) * np.sum(dhigh)
        dxp = take_sens(din * slope * (t - 1.0), xp, j, 0) - take_sens(din * slope * t, xp,
                                                                       j + 1, 0)
        return (reshape_like(din * slope, x), reshape_like(dxp, xp), reshape_like(dfp, fp),
                ZERO if left is None else np.sum(dlow),
                ZERO if right is None else np.sum(dhigh), ZERO)

    return out, back


@rule("np.unique")
def _unique(ar, return_index, return_inverse, return_counts, axis):
    # Differentiable in the unique values (a sort that merges equal elements): each
    # value's sensitivity shared equally among the elements equal to it.
    if axis is not None:
        raise ValueError("tapeless differentiates np.unique without axis")
    out = np.unique(ar, return_index, return_inverse, return_counts, axis)
    merged = np.unique(ar, return_inverse=True, return_counts=True)
    inverse = np.ravel(merged[1])
    counts = merged[2]
    several = return_index or return_inverse or return_counts

    def back(d):
        dv = sens_of(sens_index(d, 0), out[0]) if several else d
        return reshape_like(np.take(dv / counts, inverse), ar), ZERO, ZERO, ZERO, ZERO

    return out, back


@rule("np.histogram")
def _histogram(a, bins, range, density, weights):  # noqa: A002
    # The counts are piecewise constant in a; differentiable are the weighted counts in
    # the weights, and the edges in the bins given as edges, or else in the range (by
    # default the data's smallest and largest element: ties share, as for np.min/max).
    out = np.histogram(a, bins, range, density, weights)
    hist = out[0]
    edges = out[1]
    x = np.ravel(a)
    nb = len(edges) - 1
    idx = np.maximum(np.minimum(np.searchsorted(edges, x, "right") - 1, nb - 1), 0)
    inside = np.logical_and(np.greater_equal(x, edges[0]), np.less_equal(x, edges[nb]))
    widths = np.diff(edges)
    total = np.sum(np.where(inside, np.ones_like(x) if weights is None else np.ravel(weights),
                            0.0))

    def back(d):
        dh = sens_of(sens_index(d, 0), hist)
        de = sens_of(sens_index(d, 1), edges)
        dc = dh
        if density:
            # hist = counts / (total * widths)
            dc = dh / (total * widths) - np.sum(dh * hist) / total
            dwidths = -dh * hist / widths
            de = de - np.diff(np.pad(dwidths, 1))
        dw = ZERO if weights is None else \
            reshape_like(np.where(inside, np.take(dc, idx), 0.0), weights)
        if np.ndim(bins) == 1:
            return ZERO, reshape_like(de, bins), ZERO, ZERO, dw
        t = np.linspace(0.0, 1.0, nb + 1)
        dlo = np.sum(de * (1.0 - t))
        dhi = np.sum(de * t)
        if range is not None:
            return ZERO, ZERO, (dlo, dhi), ZERO, dw
        low = np.equal(x, np.min(x))
        high = np.equal(x, np.max(x))
        da = low * (dlo / np.sum(low)) + high * (dhi / np.sum(high))
        return reshape_like(da, a), ZERO, ZERO, ZERO, dw

    return out, back


@rule("np.bincount")
def _bincount(x, weights, minlength):
    # Differentiable in the weights: each one counted in its bin.
    back = lambda d: (ZERO, ZERO if weights is None else reshape_like(np.take(d, x), weights),
                      ZERO)
    return np.bincount(x, weights, minlength), back


# --- trace of any rank ------------------------------------------------------------------------


@rule("np.trace")
def _trace(a, offset, axis1, axis2):
    # (Replaces rules_numpy's, which took 2-d arrays only and ignored axis1 and axis2.)
    nd = np.ndim(a)
    ax1 = axis1 % nd
    ax2 = axis2 % nd
    shape = np.shape(a)
    eye = np.eye(shape[ax1], shape[ax2], offset)

    def back(d):
        full = np.expand_dims(np.expand_dims(d, -1), -1) * eye
        return np.moveaxis(full, (nd - 2, nd - 1), (ax1, ax2)), ZERO, ZERO, ZERO

    return np.trace(a, offset, axis1, axis2), back
