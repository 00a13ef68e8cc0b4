"""Forward rules (`tapeless.ad.forward`) of structural primitives, operators, builtins, the
AD helpers and the NumPy functions whose rule is short. Each rule takes the primitive's
parameters and returns the value and one map per parameter, from its tangent to its
contribution to the result's tangent (None where the parameter has no derivative); a
joint rule takes the parameters and then their tangents and returns (value, tangent).
Declared properties give the others: `linear` and `jvp_from_reverse`."""

# ruff: noqa: E731
from __future__ import annotations

import math

import numpy as np

from ..runtime import (
    ZERO,
    as_sequence,
    broadcast_like,
    call_fwd,
    call_value_fwd,
    check_bound,
    check_scalar_output,
    checkpoint_name,
    construct_value,
    data_only,
    data_only_grad,
    dense,
    expand_reduced,
    fdiv,
    fpow,
    from_structure,
    gadd,
    generated_only,
    index_concat,
    index_concat_dense,
    lift,
    lift_fwd,
    polygamma,
    reduced_count,
    replace_fields,
    sens_getattr,
    sens_index,
    sens_of,
    split_fwd,
    stop_gradient,
    struct_sens,
    to_structure,
    tree_leaves,
    tree_leaves_sens,
    tree_unflatten,
    tree_unflatten_sens,
    unpack,
    zip_strict,
)
from . import rules_arrays, rules_core, rules_numpy, rules_scipy  # noqa: F401 (first)
from .registry import PRIMITIVES, jvp, jvp_from_reverse, linear
from .rules_numpy import _einsum_call, _prod_of_others
from .scipy_ops import special as sp

# --- declared: the one-argument functions with a diagonal Jacobian ----------------------

jvp_from_reverse(*[name for name, p in PRIMITIVES.items()
                   if p.differentiable and p.reverse_rule is not None and
                   len(p.param_names) == 1 and p.elementwise])
jvp_from_reverse(
    "math.acos", "math.acosh", "math.asin", "math.asinh", "math.atan", "math.atanh",
    "math.cos", "math.cosh", "math.degrees", "math.erf", "math.erfc", "math.exp",
    "math.expm1", "math.fabs", "math.gamma", "math.lgamma", "math.log10", "math.log1p",
    "math.log2", "math.radians", "math.sin", "math.sinh", "math.sqrt", "math.tan",
    "math.tanh")

# --- declared: linear functions -----------------------------------------------------------

linear((0,), "np.reshape", "np.transpose", "np.ravel", "np.squeeze", "np.expand_dims",
       "np.moveaxis", "np.swapaxes", "np.rollaxis", "np.flip", "np.fliplr", "np.flipud",
       "np.rot90", "np.roll", "np.repeat", "np.tile", "np.sum", "np.mean", "np.cumsum",
       "np.diag", "np.trace", "np.tril", "np.triu", "np.broadcast_to", "np.atleast_1d",
       "np.atleast_2d", "np.atleast_3d", "np.copy", "np.real", "np.take",
       "np.take_along_axis", "np.split", "np.array_split", "np.hsplit", "np.vsplit",
       "np.dsplit", "np.concatenate", "np.stack", "np.hstack", "np.vstack",
       "np.column_stack", "np.array", "np.asarray", "float", "np.float64", "np.float32",
       "tuple", "list", "as_sequence", "reversed",
       # sensitivity plumbing: linear in the sensitivity
       "unbroadcast", "broadcast_like", "reshape_like", "expand_reduced", "tuple_sens",
       "getitem_sens", "sens_of", "concat_sens", "take_sens", "diag_sens",
       "take_along_axis_sens", "getattr_sens", "sens_getattr", "field_sens",
       "struct_sens", "without_fields", "dict_merge_sens", "repeat_sens", "sens_index",
       "index_concat_sens", "index_concat_dense", "from_structure", "dict_merge",
       "check_aux_output", "dense")
linear((0, 1), "gadd")
linear((1,), "make_dict", "tree_leaves_sens", "tree_unflatten_sens", "np.full_like",
       "np.full")
linear((0, 1), "np.linspace")
linear((1, 2), "np.where")
linear((0,), "make_tuple", "make_list")

# --- structure ------------------------------------------------------------------------


@jvp("tuple_getitem")
def _tuple_getitem(t, i):
    return t[i], lambda dt: dt[i], None


@jvp("getitem")
def _getitem(x, index):
    return x[index], lambda t: sens_index(t, index), None


@jvp("getattr")
def _getattr(x, name):
    return getattr(x, name), lambda t: sens_getattr(t, x, name), None


@jvp("switch", joint=True)
def _switch(cond, if_true, if_false, t_cond, t_true, t_false):
    if cond:
        return if_true, t_true
    return if_false, t_false


@jvp("construct")
def _construct(cls, fields):
    return construct_value(cls, fields), None, \
        lambda t: ZERO if t is ZERO else struct_sens(tuple(t), cls)


@jvp("construct_value")
def _construct_value(cls, fields):
    return construct_value(cls, fields), None, \
        lambda t: ZERO if t is ZERO else struct_sens(tuple(t), cls)


@jvp("to_structure")
def _to_structure(sens, like):
    # (The value is in the user's structure; its tangent in the internal one, a dict for a
    # dataclass, with the zeros filled in.)
    return to_structure(sens, like), lambda t: from_structure(to_structure(t, like)), None


@jvp("tree_leaves")
def _tree_leaves(tree):
    # (The leaves' tangents from the tree's, which has the form of a sensitivity.)
    return tree_leaves(tree), lambda t: tree_leaves_sens(tree, t)


@jvp("tree_unflatten")
def _tree_unflatten(like, leaves):
    return tree_unflatten(like, leaves), None, lambda t: tree_unflatten_sens(like, t)


@jvp("index_concat")
def _index_concat(axis, items):
    # (np.r_ and np.c_: the items' tangents laid out as the items are; slices, none.)
    return index_concat(axis, items), None, lambda t: index_concat_dense(t, axis, items)


@jvp("zip")
def _zip(iterables):
    seqs = tuple(as_sequence(it) for it in iterables)
    # A tuple rather than an iterator, as the reverse rule: derivative code may read the
    # value twice.
    return tuple(zip(*seqs)), lambda t: tuple(zip(*[
        as_sequence(dense(sens_index(t, k), seqs[k])) for k in range(len(seqs))]))


@jvp("check_scalar_output")
def _check_scalar_output(out):
    return check_scalar_output(out), lambda t: t


@jvp("call_star", joint=True)
def _call_star(fn, args, t_fn, t_args):
    r = call_fwd(fn, t_fn, args, _tangents_of(t_args, args))
    return r[0], r[1]


@jvp("call_fwd", joint=True)
def _call_fwd(fn, t_fn, args, tangents, t_fn_, t_t_fn, t_args, t_tangents):
    # F of an F-callable takes (args, tangents) and then their tangents.
    r = call_fwd(fn, t_fn, args + tangents, _tangents_of(t_args, args) +
                 _tangents_of(t_tangents, tangents))
    return r[0], r[1]


@jvp("call_value", joint=True)
def _call_value(level, fn, args, t_level, t_fn, t_args):
    # (Forward mode over derivative code: the J-callable's F takes the arguments, then
    # their tangents.)
    r = call_value_fwd(level, fn, t_fn, args, _tangents_of(t_args, args))
    return r[0], r[1]


@jvp("call_value_fwd", joint=True)
def _call_value_fwd(level, fn, t_fn, args, tangents, t_level, t_fn_, t_t_fn, t_args,
                    t_tangents):
    # F of F of a J-callable (a function of generated code) takes (args, tangents) and
    # then their tangents.
    r = call_fwd(generated_only(fn), t_fn, args + tangents, _tangents_of(t_args, args) +
                 _tangents_of(t_tangents, tangents))
    return r[0], r[1]


# Loops whose body (or condition) is a function value known only at run time (`F` makes
# a loop over the state and its tangents of the others itself): the F-callables carry the
# tangents along, with no stack.


@jvp("while_loop", joint=True)
def _while_loop(cond, body, state, t_cond, t_body, t_state):
    ts = _tangents_of(t_state, state)
    go = call_fwd(cond, t_cond, state, ts)[0]
    while go:
        step = call_fwd(body, t_body, state, ts)
        state = step[0]
        ts = _tangents_of(step[1], state)
        go = call_fwd(cond, t_cond, state, ts)[0]
    return state, ts


@jvp("for_range", joint=True)
def _for_range(start, stop, step, body, state, t_start, t_stop, t_step, t_body, t_state):
    ts = _tangents_of(t_state, state)
    for i in range(start, stop, step):
        # (The index has no tangent.)
        r = call_fwd(body, t_body, (i,) + tuple(state), (ZERO,) + ts)
        state = r[0]
        ts = _tangents_of(r[1], state)
    return state, ts


def _tangents_of(t, args):
    """The tangents of the items of the tuple `args` (ZERO: each item's is zero)."""
    if t is ZERO:
        return (ZERO,) * len(args)
    return tuple(t)


@jvp("list_map", joint=True)
def _list_map(fn, seq, t_fn, t_seq):
    items = as_sequence(seq)
    ts = _tangents_of(t_seq, tuple(items))
    results = [call_fwd(fn, t_fn, (items[i],), (ts[i],)) for i in range(len(items))]
    return [r[0] for r in results], [r[1] for r in results]


@jvp("list_flatmap", joint=True)
def _list_flatmap(fn, seq, t_fn, t_seq):
    items = as_sequence(seq)
    ts = _tangents_of(t_seq, tuple(items))
    results = [call_fwd(fn, t_fn, (items[i],), (ts[i],)) for i in range(len(items))]
    values = [y for r in results for y in r[0]]
    tangents = [dt for r in results for dt in _tangents_of(r[1], tuple(r[0]))]
    return values, tangents


@jvp("stop_gradient")
def _stop_gradient(x):
    return stop_gradient(x), None


@jvp("unpack")
def _unpack(value, n):
    return unpack(value, n), lambda t: t


@jvp("check_bound")
def _check_bound(value, name, where):
    return check_bound(value, name, where), lambda t: t


@jvp("zip_strict")
def _zip_strict(seqs):
    return zip_strict(seqs), lambda t: t


@jvp("checkpoint_name")
def _checkpoint_name(x, name):
    return checkpoint_name(x, name), lambda t: t, None


@jvp("data_only")
def _data_only(value):
    return data_only(value), lambda t: t


@jvp("split_fwd")
def _split_fwd(args, npos, defaults, star):
    zeros = (ZERO,) * len(defaults)
    return split_fwd(args, npos, defaults, star), lambda t: split_fwd(
        _tangents_of(t, args), npos, zeros, star), None, None, None


@jvp("lift_fwd")
def _lift_fwd(value):
    return lift_fwd(data_only(value)), lambda t: t


@jvp("lift")
def _lift(value):
    # (A function here is an F-callable; the J-callable a tl.grad inside forward-mode code
    # needs is F of the function's J-callable, which cannot be made from it: refused.)
    return lift(_no_function(value)), lambda t: t


def _no_function(value):
    """`value`; a function is refused (GradError). (Data passes through a branch, so its
    derivative of any order does too: a guard on the value's path would stop it.)"""
    if callable(value) and not isinstance(value, type):
        return data_only_grad(value)
    return value


@jvp("sum")
def _sum(iterable, start):
    items = list(iterable)
    return sum(items, start), lambda t: _sum_tangent(t, items), lambda t: t


def _sum_tangent(t, items):
    total = ZERO
    for i in range(len(items)):
        total = gadd(total, sens_index(t, i))
    return total


@jvp("max", joint=True)
def _max_builtin(args, t_args):
    return _extreme_item(args, t_args, 1)


@jvp("min", joint=True)
def _min_builtin(args, t_args):
    return _extreme_item(args, t_args, -1)


def _extreme_item(args, t_args, sign):
    """`max(*args)` (sign 1) or `min(*args)` (-1), of one iterable or several arguments,
    and the tangent of the item chosen (the first, among ties, as Python chooses)."""
    items = args[0] if len(args) == 1 else args
    ts = sens_index(t_args, 0) if len(args) == 1 else t_args
    k = 0
    for i in range(1, len(items)):
        if (items[i] > items[k]) if sign > 0 else (items[i] < items[k]):
            k = i
    return items[k], sens_index(ts, k)


@jvp("dict", joint=True)
def _dict(args, t_args):
    if len(args) == 0:
        return {}, ZERO
    if isinstance(args[0], dict):
        return dict(args[0]), sens_index(t_args, 0)
    pairs = list(args[0])
    tp = sens_index(t_args, 0)
    return dict(pairs), {pairs[i][0]: sens_index(sens_index(tp, i), 1)
                         for i in range(len(pairs))}


@jvp("enumerate")
def _enumerate(iterable, start):
    seq = list(iterable)
    return tuple(enumerate(seq, start)), \
        lambda t: tuple((ZERO, sens_index(t, i)) for i in range(len(seq))), None


@jvp("sorted")
def _sorted(iterable):
    order = _sorted_order(iterable)
    # (A dict's keys have no tangent.)
    return sorted(iterable), lambda t: ZERO if isinstance(iterable, dict) else \
        [sens_index(t, j) for j in order]


def _sorted_order(iterable):
    """Where each item of sorted(iterable) comes from (stable: ties keep their order)."""
    if isinstance(iterable, dict):
        return []
    items = list(iterable)
    return [p[1] for p in sorted([(items[i], i) for i in range(len(items))])]


@jvp("replace_fields")
def _replace_fields(like, names, values):
    return replace_fields(like, names, values), \
        lambda t: _replaced_tangent(t, names, ZERO), None, \
        lambda t: _replaced_tangent(ZERO, names, t)


def _replaced_tangent(t_like, names, t_values):
    """The tangent of a dataclass with the fields `names` replaced (a dict of fields)."""
    kept = {} if t_like is ZERO else {k: v for k, v in t_like.items() if k not in names}
    new = {names[i]: sens_index(t_values, i) for i in range(len(names))}
    return {**kept, **new}


# --- arithmetic ---------------------------------------------------------------------


@jvp("add")
def _add(a, b):
    y = a + b
    return y, lambda t: _add_left(t, a, b, y), lambda t: _add_right(t, a, b, y)


@jvp("np.add")
def _np_add(x1, x2):
    y = np.add(x1, x2)
    return y, lambda t: broadcast_like(t, y), lambda t: broadcast_like(t, y)


def _add_left(t, a, b, y):
    if isinstance(a, (tuple, list)):  # (a concatenation)
        return dense(t, a) + dense(ZERO, b)
    return broadcast_like(t, y)


def _add_right(t, a, b, y):
    if isinstance(a, (tuple, list)):
        return dense(ZERO, a) + dense(t, b)
    return broadcast_like(t, y)


@jvp("sub", "np.subtract")
def _sub(a, b):
    y = a - b
    return y, lambda t: broadcast_like(t, y), lambda t: broadcast_like(-t, y)


@jvp("mul", "np.multiply")
def _mul(a, b):
    y = a * b
    return y, lambda t: _mul_part(t, b, a), lambda t: _mul_part(t, a, b)


def _mul_part(t, other, like):
    if isinstance(like, (tuple, list)) or isinstance(other, (tuple, list)):  # (repetition)
        return dense(t, like) * other if isinstance(like, (tuple, list)) else ZERO
    return t * other


@jvp("truediv", "np.divide")
def _truediv(a, b):
    y = a / b
    return y, lambda t: t / b, lambda t: -t * y / b


@jvp("fdiv")
def _fdiv(a, b):
    y = fdiv(a, b)
    return y, lambda t: fdiv(t, b), lambda t: -fdiv(t * y, b)


@jvp("pow", "fpow")
def _pow(a, b):
    y = fpow(a, b)
    return y, lambda t: t * _pow_slope(a, b), lambda t: t * _pow_log_slope(a, y)


@jvp("np.power")
def _np_power(x1, x2):
    y = np.power(x1, x2)
    return y, lambda t: t * _pow_slope(x1, x2), lambda t: t * _pow_log_slope(x1, y)


@jvp("math.pow")
def _math_pow(x, y):
    z = math.pow(x, y)
    return z, lambda t: t * _pow_slope(x, y), lambda t: t * _pow_log_slope(x, z)


def _pow_log_slope(a, y):
    """d(a ** b)/db: a ** b * log(a) (0 where a <= 0, as the reverse rule)."""
    return y * np.log(np.where(np.greater(a, 0), a, 1.0))


def _pow_slope(a, b):
    """d(a ** b)/da: b * a ** (b - 1), and 0 where b == 0 and a == 0."""
    if np.ndim(b) == 0 and b != 0:
        return b * fpow(a, b - 1)
    zero = np.logical_and(np.equal(b, 0), np.equal(a, 0))
    return np.where(zero, 0.0, b * fpow(np.where(zero, 1.0, a), b - 1))


@jvp("mod")
def _mod(a, b):
    y = a % b
    return y, lambda t: broadcast_like(t, y), lambda t: -t * np.floor_divide(a, b)


@jvp("np.mod")
def _np_mod(x1, x2):
    y = np.mod(x1, x2)
    return y, lambda t: broadcast_like(t, y), lambda t: -t * np.floor_divide(x1, x2)


@jvp("np.fmod", "math.fmod")
def _fmod(x1, x2):
    y = np.fmod(x1, x2) if not isinstance(x1, float) else math.fmod(x1, x2)
    return y, lambda t: broadcast_like(t, y), lambda t: -t * np.trunc(np.divide(x1, x2))


@jvp("divmod")
def _divmod(a, b):
    q, r = divmod(a, b)
    return (q, r), lambda t: (ZERO, broadcast_like(t, r)), \
        lambda t: (ZERO, -t * np.floor_divide(a, b))


@jvp("matmul", "np.matmul")
def _matmul(a, b):
    return a @ b, lambda t: t @ b, lambda t: a @ t


@jvp("np.dot")
def _dot(a, b):
    # (np.dot of a number is a product, which `@` refuses.)
    return np.dot(a, b), lambda t: np.dot(t, b), lambda t: np.dot(a, t)


@jvp("np.maximum", "np.fmax")
def _maximum(x1, x2):
    y = np.maximum(x1, x2)
    # (ties: half to each, as the reverse rule)
    w = np.where(np.greater(x1, x2), 1.0, np.where(np.equal(x1, x2), 0.5, 0.0))
    return y, lambda t: t * w, lambda t: t * (1.0 - w)


@jvp("np.minimum", "np.fmin")
def _minimum(x1, x2):
    y = np.minimum(x1, x2)
    w = np.where(np.less(x1, x2), 1.0, np.where(np.equal(x1, x2), 0.5, 0.0))
    return y, lambda t: t * w, lambda t: t * (1.0 - w)


@jvp("np.clip")
def _clip(a, a_min, a_max):
    y = np.clip(a, a_min, a_max)
    m = _clip_masks(a, a_min, a_max)
    # (A bound of None has no tangent.)
    return y, lambda t: broadcast_like(t * m[0], y), \
        lambda t: ZERO if a_min is None else broadcast_like(t * m[1], y), \
        lambda t: ZERO if a_max is None else broadcast_like(t * m[2], y)


def _clip_masks(a, a_min, a_max):
    """Where the result follows a, a_min and a_max (1.0 or 0.0), as the reverse rule:
    np.clip is minimum(maximum(a, a_min), a_max) (with a_min > a_max, a_max everywhere);
    at a bound (a tie) none does."""
    low = a if a_min is None else np.maximum(a, a_min)
    below_max = 1.0 if a_max is None else np.less(low, a_max) * 1.0
    above_max = 0.0 if a_max is None else np.greater(low, a_max) * 1.0
    through = below_max if a_min is None else below_max * np.greater(a, a_min)
    to_min = 0.0 if a_min is None else below_max * np.less(a, a_min)
    return through, to_min, above_max


@jvp("np.arctan2", "math.atan2")
def _arctan2(y, x):
    r2 = x * x + y * y
    out = np.arctan2(y, x) if not isinstance(y, float) else math.atan2(y, x)
    return out, lambda t: t * x / r2, lambda t: -t * y / r2


@jvp("np.hypot")
def _hypot(x1, x2):
    h = np.hypot(x1, x2)
    return h, lambda t: t * x1 / h, lambda t: t * x2 / h


@jvp("np.logaddexp")
def _logaddexp(x1, x2):
    y = np.logaddexp(x1, x2)
    return y, lambda t: t * np.exp(x1 - y), lambda t: t * np.exp(x2 - y)


@jvp("np.logaddexp2")
def _logaddexp2(x1, x2):
    y = np.logaddexp2(x1, x2)
    return y, lambda t: t * np.exp2(x1 - y), lambda t: t * np.exp2(x2 - y)


@jvp("math.copysign")
def _copysign(x, y):
    out = math.copysign(x, y)
    return out, lambda t: t * math.copysign(1.0, x) * math.copysign(1.0, y), None


@jvp("math.log")
def _math_log(x, base):
    y = _log(x, base)
    return y, lambda t: t / x if len(base) == 0 else t / (x * math.log(base[0])), \
        lambda t: -sens_of(sens_index(t, 0), 0.0) * y / (base[0] * math.log(base[0]))


def _log(x, base):
    """math.log(x, *base), spelled without `*` (the subset passes `*args` alone)."""
    if len(base) == 0:
        return math.log(x)
    return math.log(x, base[0])


@jvp("math.hypot")
def _math_hypot(coordinates):
    h = math.hypot(*coordinates)
    return h, lambda t: _dot_tangents(t, coordinates) / h


def _dot_tangents(t, xs):
    total = 0.0
    for i in range(len(xs)):
        total = total + sens_of(sens_index(t, i), xs[i]) * xs[i]
    return total


@jvp("polygamma")
def _polygamma(n, x):
    return polygamma(n, x), None, lambda t: t * polygamma(n + 1, x)


# --- reductions and products ------------------------------------------------------------


@jvp("np.prod")
def _prod(a, axis, dtype, keepdims):
    y = np.prod(a, axis=axis, dtype=dtype, keepdims=keepdims)
    # The sum over the reduced axes of t times the product of the others (exact where an
    # element is zero, as the reverse rule).
    return y, lambda t: np.sum(t * _prod_of_others(a, axis), axis=axis, keepdims=keepdims), \
        None, None, None


@jvp("np.max", "np.amax")
def _max(a, axis, keepdims):
    y = np.max(a, axis=axis, keepdims=keepdims)
    return y, lambda t: _extreme_tangent(t, a, y, axis, keepdims), None, None


@jvp("np.min", "np.amin")
def _min(a, axis, keepdims):
    y = np.min(a, axis=axis, keepdims=keepdims)
    return y, lambda t: _extreme_tangent(t, a, y, axis, keepdims), None, None


def _extreme_tangent(t, a, y, axis, keepdims):
    """The mean of the tangents at the positions of the extreme value (ties share)."""
    hit = np.equal(a, expand_reduced(y, a, axis, keepdims))
    count = np.sum(hit, axis=axis, keepdims=keepdims)
    return np.sum(np.where(hit, t, 0.0), axis=axis, keepdims=keepdims) / count


@jvp("np.var")
def _var(a, axis, dtype, ddof, keepdims):
    y = np.var(a, axis=axis, ddof=ddof, keepdims=keepdims)
    n = reduced_count(a, axis)
    centered = a - np.mean(a, axis=axis, keepdims=True)
    return y, lambda t: 2.0 * np.sum(centered * t, axis=axis, keepdims=keepdims) / (
        n - ddof), None, None, None, None


@jvp("np.std")
def _std(a, axis, dtype, ddof, keepdims):
    y = np.std(a, axis=axis, ddof=ddof, keepdims=keepdims)
    n = reduced_count(a, axis)
    centered = a - np.mean(a, axis=axis, keepdims=True)
    # (0 where the deviation is 0: a constant slice, or one element)
    zero = np.equal(y, 0)
    safe = np.where(zero, 1.0, y)
    return y, lambda t: np.where(zero, 0.0, np.sum(
        centered * t, axis=axis, keepdims=keepdims) / ((n - ddof) * safe)), \
        None, None, None, None


@jvp("np.cumprod")
def _cumprod(a, axis, dtype):
    y = np.cumprod(a, axis=axis)
    return y, lambda t: _cumprod_tangent(t, a, axis), None, None


def _cumprod_tangent(t, a, axis):
    flat = axis is None
    x = np.reshape(a, (-1,)) if flat else a
    dt = np.reshape(t, (-1,)) if flat else t
    ax = 0 if flat else axis
    n = np.shape(x)[ax]
    out = np.zeros(np.shape(x))
    for i in range(n):
        # d y_j = sum_{i <= j} t_i * prod_{k <= j, k != i} a_k
        others = np.where(np.reshape(np.arange(n) == i, [n if d == ax % np.ndim(x) else 1
                                                         for d in range(np.ndim(x))]),
                          1.0, x)
        out = out + np.where(
            np.reshape(np.arange(n) >= i, [n if d == ax % np.ndim(x) else 1
                                           for d in range(np.ndim(x))]),
            np.cumprod(others, axis=ax) * np.take(dt, [i], axis=ax), 0.0)
    return out


@jvp("np.inner")
def _inner(a, b):
    return np.inner(a, b), lambda t: np.inner(t, b), lambda t: np.inner(a, t)


@jvp("np.outer")
def _outer(a, b):
    return np.outer(a, b), lambda t: np.outer(t, b), lambda t: np.outer(a, t)


@jvp("np.kron")
def _kron(a, b):
    return np.kron(a, b), lambda t: np.kron(t, b), lambda t: np.kron(a, t)


@jvp("np.tensordot")
def _tensordot(a, b, axes):
    return np.tensordot(a, b, axes), lambda t: np.tensordot(t, b, axes), \
        lambda t: np.tensordot(a, t, axes), None


@jvp("np.cross")
def _cross(a, b, axisa, axisb, axisc, axis):
    return np.cross(a, b, axisa, axisb, axisc, axis), \
        lambda t: np.cross(t, b, axisa, axisb, axisc, axis), \
        lambda t: np.cross(a, t, axisa, axisb, axisc, axis), None, None, None, None


@jvp("np.convolve")
def _convolve(a, v, mode):
    return np.convolve(a, v, mode), lambda t: np.convolve(t, v, mode), \
        lambda t: np.convolve(a, t, mode), None


@jvp("np.correlate")
def _correlate(a, v, mode):
    return np.correlate(a, v, mode), lambda t: np.correlate(t, v, mode), \
        lambda t: np.correlate(a, t, mode), None


@jvp("np.einsum")
def _einsum(subscripts, operands):
    # Linear in each operand. In the sublist form, einsum(a, [0, 1], b, [1, 2], [0, 2]),
    # `subscripts` is the first operand and `operands` alternates sublists and operands.
    return _einsum_call(subscripts, operands), \
        lambda t: ZERO if isinstance(subscripts, str) else _einsum_call(t, operands), \
        lambda t: _einsum_tangent(t, subscripts, operands)


def _einsum_tangent(t, subscripts, operands):
    """The sum over the operands of einsum with that operand replaced by its tangent."""
    total = ZERO
    n = len(operands)
    # (The sublist form's operands: sublist, array, sublist, ..., and the output's
    # sublist last where their number is even.)
    arrays = [i for i in range(n) if isinstance(subscripts, str) or (
        i % 2 == 1 and not (i == n - 1 and n % 2 == 0))]
    for i in arrays:
        ti = sens_index(t, i)
        if ti is not ZERO:
            ops = tuple(ti if j == i else operands[j] for j in range(n))
            total = gadd(total, _einsum_call(subscripts, ops))
    return total


# --- linear algebra ---------------------------------------------------------------------


@jvp("np.linalg.inv")
def _inv(a):
    y = np.linalg.inv(a)
    return y, lambda t: -(y @ t @ y)


@jvp("np.linalg.det")
def _det(a):
    y = np.linalg.det(a)
    return y, lambda t: y * np.trace(np.linalg.solve(a, t), axis1=-2, axis2=-1)


@jvp("np.linalg.slogdet")
def _slogdet(a):
    s = np.linalg.slogdet(a)
    return s, lambda t: (ZERO, np.trace(np.linalg.solve(a, t), axis1=-2, axis2=-1))


@jvp("np.linalg.solve")
def _solve(a, b):
    x = np.linalg.solve(a, b)
    return x, lambda t: -np.linalg.solve(a, t @ x), lambda t: np.linalg.solve(a, t)


# --- scipy.special (where SciPy is importable) -------------------------------------------

if sp is not None:

    @jvp("scipy.special.logsumexp")
    def _logsumexp(a, axis, b, keepdims, return_sign):
        out = sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
        e = _lse_weights(a, out, axis, keepdims, return_sign)
        return out, lambda t: np.sum(e * t if b is None else e * b * t, axis=axis,
                                     keepdims=keepdims), \
            None, lambda t: ZERO if b is None else np.sum(e * t, axis=axis, keepdims=keepdims), \
            None, None

    def _lse_weights(a, out, axis, keepdims, return_sign):
        """exp(a - logsumexp(a)), shaped like a."""
        if return_sign:
            raise NotImplementedError("the derivative of logsumexp with return_sign=True "
                                      "is not supported")
        return np.exp(a - expand_reduced(out, a, axis, keepdims))

    @jvp("scipy.special.softmax")
    def _softmax(x, axis):
        s = sp.softmax(x, axis=axis)
        return s, lambda t: s * (t - np.sum(s * t, axis=axis, keepdims=True)), None

    @jvp("scipy.special.log_softmax")
    def _log_softmax(x, axis):
        y = sp.log_softmax(x, axis=axis)
        return y, lambda t: t - np.sum(np.exp(y) * t, axis=axis, keepdims=True), None

    @jvp("scipy.special.xlogy")
    def _xlogy(x, y):
        y1 = np.where(np.logical_and(np.equal(x, 0), np.equal(y, 0)), 1.0, y)
        return sp.xlogy(x, y), lambda t: t * np.log(y1), lambda t: t * x / y1

    @jvp("scipy.special.xlog1py")
    def _xlog1py(x, y):
        p1 = np.where(np.logical_and(np.equal(x, 0), np.equal(y, -1)), 1.0, 1.0 + y)
        return sp.xlog1py(x, y), lambda t: t * np.log(p1), lambda t: t * x / p1

    @jvp("scipy.special.polygamma")
    def _sp_polygamma(n, x):
        return sp.polygamma(n, x), None, lambda t: t * sp.polygamma(n + 1, x)
