"""Reverse rules of structural primitives, Python operators, builtins and the AD helpers.
Each is compiled by tapeless's own front end, so it can be differentiated again."""

# ruff: noqa: E731
from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import (
    ZERO,
    as_sequence,
    broadcast_like,
    call_value,
    check_aux_output,
    check_bound,
    check_scalar_output,
    checkpoint_name,
    construct_value,
    data_only,
    dense,
    dict_merge,
    dict_merge_sens,
    expand_reduced,
    fdiv,
    field_sens,
    fpow,
    from_structure,
    gadd,
    generated_only,
    getattr_sens,
    getitem_sens,
    index_concat,
    index_concat_dense,
    index_concat_sens,
    index_sens,
    lift,
    lift_fwd,
    repeat_sens,
    replace_fields,
    reshape_like,
    scatter_sens,
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
    tuple_sens,
    unbroadcast,
    unpack,
    without_fields,
    zeros_like_value,
    zip_strict,
)
from .registry import rule

# --- structure ----------------------------------------------------------------------


@rule("make_tuple")
def _make_tuple(*xs):
    n = len(xs)
    back = lambda d: (ZERO,) * n if d is ZERO else tuple(d)
    return xs, back


@rule("make_list")
def _make_list(*xs):
    n = len(xs)
    back = lambda d: (ZERO,) * n if d is ZERO else tuple(d)
    return list(xs), back


@rule("tuple_getitem")
def _tuple_getitem(t, i):
    back = lambda d: (tuple_sens(d, i, t), ZERO)
    return t[i], back


@rule("getitem")
def _getitem(x, index):
    # (index_sens: ZERO, or an error where x is an object whose `__getitem__` may
    # compute with the index's numbers: np.r_[x, y] through a path the front end does
    # not compile to index_concat. Never a silent zero.)
    back = lambda d: (getitem_sens(d, x, index), index_sens(d, x, index))
    return x[index], back


@rule("index_concat")
def _index_concat(axis, items):
    back = lambda d: (ZERO, index_concat_sens(d, axis, items))
    return index_concat(axis, items), back


@rule("index_concat_sens")
def _index_concat_sens(d, axis, items):
    back = lambda dd: (index_concat_dense(dd, axis, items), ZERO, ZERO)
    return index_concat_sens(d, axis, items), back


@rule("index_concat_dense")
def _index_concat_dense(ds, axis, items):
    back = lambda dd: (index_concat_sens(dd, axis, items), ZERO, ZERO)
    return index_concat_dense(ds, axis, items), back


@rule("make_dict")
def _make_dict(keys, values):
    back = lambda d: (ZERO, tuple(sens_index(d, k) for k in keys))
    return dict(zip(keys, values)), back


@rule("getattr")
def _getattr(x, name):
    back = lambda d: (getattr_sens(d, x, name), ZERO)
    return getattr(x, name), back


@rule("switch")
def _switch(cond, if_true, if_false):
    back = lambda d: (ZERO, d, ZERO) if cond else (ZERO, ZERO, d)
    return (if_true if cond else if_false), back


@rule("construct", "construct_value")
def _construct(cls, fields):
    n = len(fields)
    back = lambda d: (ZERO, field_sens(d, cls, n))
    return construct_value(cls, fields), back


@rule("call_star")
def _call_star(fn, args):
    out, b = call_value(1, fn, args)

    def back(d):
        g = b(d)
        return g[0], tuple(g[1:])

    return out, back


@rule("call_value")
def _call_value(level, fn, args):
    # J of a call in derivative code of order `level` is the call of order level + 1.
    out, b = call_value(level + 1, fn, args)

    def back(d):
        g = b(d)
        return ZERO, g[0], tuple(g[1:])

    return out, back


@rule("dense")
def _dense(d, like):
    return dense(d, like), lambda dd: (dd, ZERO)


@rule("call_fwd")
def _call_fwd(fn, t_fn, args, tangents):
    # (J of an F-callable takes the arguments, then the tangents)
    n = len(args)
    out, b = call_value(1, fn, args + tangents)

    def back(d):
        g = b(d)
        return g[0], ZERO, tuple(g[1:1 + n]), tuple(g[1 + n:])

    return out, back


@rule("call_value_fwd")
def _call_value_fwd(level, fn, t_fn, args, tangents):
    # (J of F of a J-callable, a function of generated code, takes the arguments, then
    # the tangents.)
    n = len(args)
    out, b = call_value(1, generated_only(fn), args + tangents)

    def back(d):
        g = b(d)
        return ZERO, g[0], ZERO, tuple(g[1:1 + n]), tuple(g[1 + n:])

    return out, back


@rule("checkpoint_name")
def _checkpoint_name(x, name):
    # (The value keeps its name: a checkpoint of this derivative code sees it too.)
    return checkpoint_name(x, name), lambda d: (d, ZERO)


@rule("stop_gradient")
def _stop_gradient(x):
    # (The value stays a stop_gradient: a transform of this code must see it too.)
    return stop_gradient(x), lambda d: (ZERO,)


@rule("check_bound")
def _check_bound(value, name, where):
    return check_bound(value, name, where), lambda d: (d, ZERO, ZERO)


@rule("unpack")
def _unpack(value, n):
    return unpack(value, n), lambda d: (d, ZERO)


@rule("zip_strict")
def _zip_strict(seqs):
    return zip_strict(seqs), lambda d: (d,)


@rule("data_only")
def _data_only(value):
    return data_only(value), lambda d: (d,)


@rule("split_fwd")
def _split_fwd(args, npos, defaults, star):
    return split_fwd(args, npos, defaults, star), \
        lambda d: (_split_fwd_back(d, len(args) // 2, npos, star), ZERO, ZERO, ZERO)


def _split_fwd_back(d, m, npos, star):
    """The sensitivity of `(*args, *tangents)` from that of `split_fwd`'s layout."""
    if d is ZERO:
        return ZERO
    width = npos + 1 if star else len(d) // 2
    out: tuple = ()
    for base in (0, width):
        for j in range(m):
            if star and j >= npos:
                out = out + (sens_index(sens_index(d, base + npos), j - npos),)
            else:
                out = out + (sens_index(d, base + j),)
    return out


@rule("lift_fwd")
def _lift_fwd(value):
    # (In derivative code a function value is a J-callable, which F cannot take.)
    return lift_fwd(data_only(value)), lambda d: (d,)


@rule("lift")
def _lift(value):
    back = lambda d: (d,)
    return lift(value), back


def bind_args(name, args, npos, pos_defaults, star, kw_defaults):
    """The arguments `args` that Python passes to the primitive `name` used as a value,
    bound to its parameters (the IR's convention): `npos` positional parameters (the
    last ones defaulting to `pos_defaults`), then, if `star`, the rest packed into one
    tuple, then the keyword-only parameters' defaults."""
    m = len(args)
    missing = npos - m
    if missing > len(pos_defaults) or (missing < 0 and not star):
        raise TypeError(f"{name}() got {m} positional arguments, which do not fit its "
                        "parameters")
    first = tuple(args[:npos])
    if missing > 0:
        first = first + pos_defaults[len(pos_defaults) - missing:]
    if star:
        return first + (tuple(args[npos:]),) + kw_defaults
    return first + kw_defaults


def value_sens(g, lead, npos, m):
    """The sensitivities `g` of a call bound like `bind_args` (`lead` leading entries,
    the environment's, then one per positional parameter, then the packed `*args`
    tuple's, then the others) as Python passed its `m` positional arguments: the
    leading entries, then one per argument."""
    if m <= npos:
        return tuple(g[:lead + m])
    d = g[lead + npos]
    return tuple(g[:lead + npos]) + ((ZERO,) * (m - npos) if d is ZERO else tuple(d))


@rule("as_sequence")
def _as_sequence(iterable):
    # Iterating a dict (or a string) yields keys: no sensitivity flows back.
    back = lambda d: (ZERO if isinstance(iterable, (dict, str)) else d,)
    return as_sequence(iterable), back


@rule("while_loop")
def _while_loop(cond, body, *state):
    stack: Any = None  # (the nested pairs (backpropagator, rest of the stack))
    go = cond(*state)[0]
    while go:
        step = body(*state)
        state = step[0]
        stack = (step[1], stack)
        go = cond(*state)[0]

    def back(d):
        d_body, ds = _unwind(stack, d, 1, len(state))
        return (ZERO, d_body) + ds

    return state, back


@rule("for_range")
def _for_range(start, stop, step, body, *state):
    stack: Any = None  # (the nested pairs (backpropagator, rest of the stack))
    for i in range(start, stop, step):
        r = body(i, *state)
        state = r[0]
        stack = (r[1], stack)

    def back(d):
        d_body, ds = _unwind(stack, d, 2, len(state))
        return (ZERO, ZERO, ZERO, d_body) + ds

    return state, back


def _unwind(stack, d, skip, n):
    """Run a loop's backpropagators from the last iteration to the first: returns the
    body's summed environment sensitivity and the state's sensitivity (each
    backpropagator gives (environment, `skip - 1` leading inputs, state...))."""
    d_body = ZERO
    rest = stack
    ds = d
    while rest is not None:
        b = rest[0]
        rest = rest[1]
        g = b(ds)
        d_body = gadd(d_body, g[0])
        ds = g[skip:]
    if ds is ZERO:
        ds = (ZERO,) * n
    return d_body, tuple(ds)


@rule("list_map")
def _list_map(fn, seq):
    results = [fn(x) for x in seq]
    values = [r[0] for r in results]

    def back(d):
        d_fn = ZERO
        d_seq: list[Any] = []
        for i, r in enumerate(results):
            g = r[1](sens_index(d, i))
            d_fn = gadd(d_fn, g[0])
            d_seq = d_seq + [g[1]]
        return d_fn, (tuple(d_seq) if isinstance(seq, tuple) else d_seq)

    return values, back


@rule("list_flatmap")
def _list_flatmap(fn, seq):
    results = [fn(x) for x in seq]
    values = [y for r in results for y in r[0]]

    def back(d):
        if d is ZERO:  # (the elements' backpropagators would all give ZERO)
            return ZERO, ZERO
        d_fn = ZERO
        d_seq: list[Any] = []
        start = 0
        for r in results:
            n = len(r[0])
            part = ZERO if d is ZERO else d[start:start + n]
            g = r[1](part)
            d_fn = gadd(d_fn, g[0])
            d_seq = d_seq + [g[1]]
            start = start + n
        return d_fn, (tuple(d_seq) if isinstance(seq, tuple) else d_seq)

    return values, back


# --- iteration builtins ---------------------------------------------------------------
# Their sensitivities: per element of the result, as `list_map` and `tuple_getitem`
# produce them; each rule sends them back to the elements of its arguments.


def _seq_sens(parts, like):
    """The sensitivity of the sequence `like` whose first len(parts) elements have the
    sensitivities `parts` (the rest: zero)."""
    if isinstance(like, np.ndarray):
        if len(like) == 0:
            return ZERO
        rows = [sens_of(parts[i], like[i]) if i < len(parts) else zeros_like_value(like[i])
                for i in range(len(like))]
        return np.stack(rows)
    if isinstance(like, (tuple, list)):
        full = tuple(parts) + (ZERO,) * (len(like) - len(parts))
        return list(full) if isinstance(like, list) else full
    return ZERO


@rule("zip")
def _zip(iterables):
    seqs = tuple(as_sequence(it) for it in iterables)
    # A tuple rather than an iterator: derivative code may read the value twice.
    return tuple(zip(*seqs)), lambda d: (_zip_back(d, seqs),)


def _zip_back(d, seqs):
    if d is ZERO:
        return ZERO
    n = len(d)
    return tuple(_seq_sens([sens_index(sens_index(d, i), k) for i in range(n)], seqs[k])
                 for k in range(len(seqs)))


@rule("enumerate")
def _enumerate(iterable, start):
    seq = as_sequence(iterable)
    return tuple(enumerate(seq, start)), lambda d: (_enumerate_back(d, seq), ZERO)


def _enumerate_back(d, seq):
    if d is ZERO:
        return ZERO
    return _seq_sens([sens_index(sens_index(d, i), 1) for i in range(len(d))], seq)


@rule("reversed")
def _reversed(seq):
    items = as_sequence(seq)
    return tuple(reversed(items)), lambda d: (_reversed_back(d, items),)


def _reversed_back(d, items):
    if d is ZERO:
        return ZERO
    n = len(d)
    return _seq_sens([sens_index(d, n - 1 - i) for i in range(n)], items)


@rule("sorted")
def _sorted(iterable):
    if isinstance(iterable, dict):  # (its keys, which have no sensitivity)
        return sorted(iterable), lambda d: (ZERO,)
    items = as_sequence(iterable)
    n = len(items)
    # Python's sort is stable: ties keep their order, as (item, position) pairs do.
    order = [p[1] for p in sorted([(items[i], i) for i in range(n)])]
    return [items[j] for j in order], lambda d: (_sorted_back(d, items, order),)


def _sorted_back(d, items, order):
    if d is ZERO:
        return ZERO
    n = len(order)
    where = [p[1] for p in sorted([(order[j], j) for j in range(n)])]
    return _seq_sens([sens_index(d, where[i]) for i in range(n)], items)


@rule("dict")
def _dict(args):
    """dict(), dict(mapping) or dict(pairs) (one sensitivity per pair; with repeated
    keys every pair gets that key's sensitivity)."""
    if len(args) == 0:
        return {}, lambda d: (ZERO,)
    src = args[0] if isinstance(args[0], dict) else as_sequence(args[0])
    return dict(src), lambda d: (_dict_back(d, src),)


def _dict_back(d, src):
    if d is ZERO:
        return ZERO
    if isinstance(src, dict):
        return (d,)
    return (tuple((ZERO, sens_index(d, p[0])) for p in src),)


# --- arithmetic ---------------------------------------------------------------------


@rule("add")
def _add(a, b):
    def back(d):
        if isinstance(a, (tuple, list)):
            n = len(a)
            if d is ZERO:
                return ZERO, ZERO
            return d[:n], d[n:]
        return unbroadcast(d, a), unbroadcast(d, b)

    return a + b, back


@rule("sub")
def _sub(a, b):
    back = lambda d: (unbroadcast(d, a), unbroadcast(-d, b))
    return a - b, back


@rule("mul")
def _mul(a, b):
    def back(d):
        if isinstance(a, (tuple, list)):
            return repeat_sens(d, a), ZERO
        if isinstance(b, (tuple, list)):
            return ZERO, repeat_sens(d, b)
        return unbroadcast(d * b, a), unbroadcast(d * a, b)

    return a * b, back


@rule("truediv")
def _truediv(a, b):
    out = a / b
    back = lambda d: (unbroadcast(d / b, a), unbroadcast(-d * out / b, b))
    return out, back


@rule("mod")
def _mod(a, b):
    back = lambda d: (unbroadcast(d, a), unbroadcast(-d * np.floor_divide(a, b), b))
    return a % b, back


@rule("divmod")
def _divmod(a, b):
    # (a // b, a % b): the quotient's derivative is 0 almost everywhere, the remainder's
    # that of `%` (divmod was registered as non-differentiable: the remainder's gradient
    # was silently 0).
    def back(d):
        dr = sens_index(d, 1)
        if dr is ZERO:
            return ZERO, ZERO
        return unbroadcast(dr, a), unbroadcast(-dr * np.floor_divide(a, b), b)

    return divmod(a, b), back


@rule("pow")
def _pow(a, b):
    out = a ** b
    return out, lambda d: _pow_back(d, a, b, out)


def _pow_back(d, a, b, out):
    # (fpow: where a is 0.0 and b - 1 negative, the derivative is inf, not an error)
    da = _pow_base_sens(d, a, b)
    if isinstance(b, int):
        return da, ZERO
    safe = np.where(np.greater(a, 0), a, 1.0)
    return da, unbroadcast(d * out * np.log(safe), b)


def _pow_base_sens(d, a, b):
    """The sensitivity of a in a ** b: d * b * a ** (b - 1), and 0 where b == 0 and
    a == 0 (a ** 0 is 1 everywhere; the formula gives 0 * inf = nan there; elsewhere it
    gives 0, whose derivative in b, a ** -1, it must keep). A constant nonzero exponent
    (`x ** 2`) folds the test away; otherwise the "double where" (the power is taken of
    1 where b == 0 and a == 0), so that the derivative of this is not nan either."""
    if np.ndim(b) == 0 and b != 0:
        return unbroadcast(d * b * fpow(a, b - 1), a)
    zero = np.logical_and(np.equal(b, 0), np.equal(a, 0))
    safe = np.where(zero, 1.0, a)
    return unbroadcast(d * np.where(zero, 0.0, b * fpow(safe, b - 1)), a)


@rule("fdiv")
def _fdiv(a, b):
    out = fdiv(a, b)
    return out, lambda d: (unbroadcast(fdiv(d, b), a), unbroadcast(-fdiv(d * out, b), b))


@rule("fpow")
def _fpow(a, b):
    out = fpow(a, b)
    return out, lambda d: _pow_back(d, a, b, out)


@rule("matmul")
def _matmul(a, b):
    back = lambda d: _matmul_back(d, a, b)
    return a @ b, back


def _matmul_back(d, a, b):
    if np.ndim(a) == 1 and np.ndim(b) == 1:
        return d * b, d * a
    if np.ndim(a) == 1:
        # (n,) @ (..., n, m) -> (..., m)
        da = unbroadcast(np.sum(b * np.expand_dims(d, -2), axis=-1), a)
        db = np.expand_dims(a, -1) * np.expand_dims(d, -2)
        return da, db
    if np.ndim(b) == 1:
        # (..., m, n) @ (n,) -> (..., m)
        da = np.expand_dims(d, -1) * b
        db = unbroadcast(np.sum(a * np.expand_dims(d, -1), axis=-2), b)
        return da, db
    return unbroadcast(d @ np.swapaxes(b, -1, -2), a), unbroadcast(np.swapaxes(a, -1, -2) @ d, b)


@rule("neg")
def _neg(a):
    back = lambda d: (-d,)
    return -a, back


@rule("pos")
def _pos(a):
    back = lambda d: (d,)
    return +a, back


# --- builtins -----------------------------------------------------------------------


@rule("abs")
def _abs(x):
    back = lambda d: (d * np.sign(x),)
    return abs(x), back


@rule("float")
def _float(x):
    back = lambda d: (d,)
    return float(x), back


def _items_sens(d, x):
    """The sensitivity of the array `x` from that of the list or tuple of its rows."""
    if d is ZERO:
        return ZERO
    return _seq_sens([sens_index(d, i) for i in range(len(x))], x)


@rule("tuple")
def _tuple(iterable):
    back = lambda d: (_items_sens(d, iterable) if isinstance(iterable, np.ndarray) else d,)
    return tuple(iterable), back


@rule("list")
def _list(iterable):
    back = lambda d: (ZERO if d is ZERO else _items_sens(d, iterable)
                      if isinstance(iterable, np.ndarray) else
                      (tuple(d) if isinstance(iterable, tuple) else list(d)),)
    return list(iterable), back


@rule("sum")
def _sum(iterable, start):
    items = as_sequence(iterable)

    def back(d):
        if d is ZERO:
            return ZERO, ZERO
        if isinstance(items, np.ndarray):
            return broadcast_like(d, items), unbroadcast(d, start)
        return tuple(unbroadcast(d, x) for x in items), unbroadcast(d, start)

    return sum(items, start), back


@rule("max")
def _max(args):
    return _choose(args, True)


@rule("min")
def _min(args):
    return _choose(args, False)


def _choose(args, largest):
    """min/max of several arguments or of one iterable: the chosen element gets the
    sensitivity (the first one at ties, the one Python returns)."""
    items = as_sequence(args[0]) if len(args) == 1 else args
    best = 0
    for i in range(1, len(items)):
        if (items[i] > items[best]) if largest else (items[i] < items[best]):
            best = i

    def back(d):
        one = getitem_sens(d, items, best)
        if len(args) == 1:
            return (tuple_sens(one, 0, args),)
        return (one,)

    return items[best], back


# --- AD helpers (linear in their first argument) ----------------------------------------


@rule("gadd")
def _gadd(a, b):
    back = lambda d: (d, d)
    return gadd(a, b), back


@rule("sens_of")
def _sens_of(d, like):
    back = lambda dd: (dd, ZERO)
    return sens_of(d, like), back


@rule("unbroadcast")
def _unbroadcast(d, x):
    back = lambda dd: (broadcast_like(dd, d), ZERO)
    return unbroadcast(d, x), back


@rule("broadcast_like")
def _broadcast_like(d, x):
    back = lambda dd: (unbroadcast(dd, d), ZERO)
    return broadcast_like(d, x), back


@rule("reshape_like")
def _reshape_like(d, x):
    back = lambda dd: (reshape_like(dd, d), ZERO)
    return reshape_like(d, x), back


@rule("expand_reduced")
def _expand_reduced(d, x, axis, keepdims):
    back = lambda dd: (reshape_like(np.sum(dd, axis=axis, keepdims=keepdims), d), ZERO,
                       ZERO, ZERO)
    return expand_reduced(d, x, axis, keepdims), back


@rule("repeat_sens")
def _repeat_sens(d, seq):
    k = 0 if d is ZERO or len(seq) == 0 else len(d) // len(seq)
    back = lambda dd: (ZERO if dd is ZERO else tuple(dd) * k, ZERO)
    return repeat_sens(d, seq), back


@rule("tuple_sens")
def _tuple_sens(d, i, like):
    back = lambda dd: (sens_index(dd, i), ZERO, ZERO)
    return tuple_sens(d, i, like), back


@rule("getitem_sens")
def _getitem_sens(d, x, index):
    back = lambda dd: (sens_index(dd, index), ZERO, ZERO)
    return getitem_sens(d, x, index), back


@rule("scatter_sens")
def _scatter_sens(x, indices, ds):
    # (the sum of `getitem_sens(d, x, i)` over the pairs: each piece's sensitivity is
    # read back at its index, as `getitem_sens`'s rule does)
    back = lambda dd: (ZERO, ZERO, tuple([sens_index(dd, i) for i in indices]))
    return scatter_sens(x, indices, ds), back


@rule("sens_index")
def _sens_index(dd, index):
    back = lambda d3: (getitem_sens(d3, dd, index), ZERO)
    return sens_index(dd, index), back


@rule("getattr_sens")
def _getattr_sens(d, x, name):
    back = lambda dd: (sens_getattr(dd, x, name), ZERO, ZERO)
    return getattr_sens(d, x, name), back


@rule("replace_fields")
def _replace_fields(like, names, values):
    # `dataclasses.replace(like, **dict(zip(names, values)))`.
    n = len(names)

    def back(d):
        dvalues = tuple([sens_getattr(d, like, names[i]) for i in range(n)])
        return without_fields(d, like, names), ZERO, dvalues

    return replace_fields(like, names, values), back


@rule("without_fields")
def _without_fields(d, like, names):
    # (A projection: its adjoint is itself.)
    back = lambda dd: (without_fields(dd, like, names), ZERO, ZERO)
    return without_fields(d, like, names), back


@rule("dict_merge")
def _dict_merge(parts):
    n = len(parts)
    back = lambda d: (tuple([dict_merge_sens(d, parts, i) for i in range(n)]),)
    return dict_merge(parts), back


@rule("dict_merge_sens")
def _dict_merge_sens(d, parts, i):
    # (A projection of d onto the keys part i gives the merge: its adjoint is itself; dd
    # may hold the part's other keys too, the shadowed ones, which reach no key of d.)
    back = lambda dd: (dict_merge_sens(dd, parts, i), ZERO, ZERO)
    return dict_merge_sens(d, parts, i), back


@rule("tree_leaves")
def _tree_leaves(tree):
    back = lambda d: (tree_unflatten_sens(tree, d),)
    return tree_leaves(tree), back


@rule("tree_unflatten")
def _tree_unflatten(like, leaves):
    back = lambda d: (ZERO, tree_leaves_sens(like, d))
    return tree_unflatten(like, leaves), back


@rule("tree_leaves_sens")
def _tree_leaves_sens(like, d):
    back = lambda dd: (ZERO, tree_unflatten_sens(like, dd))
    return tree_leaves_sens(like, d), back


@rule("tree_unflatten_sens")
def _tree_unflatten_sens(like, ds):
    back = lambda dd: (ZERO, tree_leaves_sens(like, dd))
    return tree_unflatten_sens(like, ds), back


@rule("sens_getattr")
def _sens_getattr(dd, x, name):
    back = lambda d3: (getattr_sens(d3, x, name), ZERO, ZERO)
    return sens_getattr(dd, x, name), back


@rule("field_sens")
def _field_sens(d, cls, n):
    back = lambda dd: (struct_sens(dd, cls), ZERO, ZERO)
    return field_sens(d, cls, n), back


@rule("struct_sens")
def _struct_sens(ds, cls):
    n = len(ds)
    back = lambda dd: (field_sens(dd, cls, n), ZERO)
    return struct_sens(ds, cls), back


@rule("check_scalar_output")
def _check_scalar_output(out):
    back = lambda d: (d,)
    return check_scalar_output(out), back


@rule("check_aux_output")
def _check_aux_output(out):
    back = lambda d: (d,)
    return check_aux_output(out), back


@rule("to_structure")
def _to_structure(sens, like):
    back = lambda dd: (from_structure(dd), ZERO)
    return to_structure(sens, like), back


@rule("from_structure")
def _from_structure(value):
    back = lambda dd: (dd,)
    return from_structure(value), back
