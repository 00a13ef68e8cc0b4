"""Batching rules (`tapeless.ad.batch`, for `tl.vmap`), written in the supported subset
like the derivative rules, so the batched code they become is differentiated again.

A batched value has the batch as its leading axis (a batched number is a 1-D array; a
batched tuple, list or record holds batched leaves). A rule takes `size` (the batch's
length), `flags` (a constant tuple: which of the call's arguments are batched) and the
primitive's parameters, and returns the batched result. A rule is used only where at
least one argument is batched; with none, the primitive runs as it is.

Three generic rules cover whole families, chosen by declared properties: elementwise
primitives (`_elementwise`: batched arguments get their per-example axes aligned), the
reductions (`_reduction`: the axes move past the batch axis) and everything else, which
runs once per element and stacks the results (`per_element`: what a Python loop over
the batch computes for that one call, random draws and prints included: each draw site
draws for element 0, then element 1, ...)."""

# ruff: noqa: E731
from __future__ import annotations

import numpy as np

from ..runtime import (
    UNBOUND,
    ZERO,
    BatchedCode,
    check_bound,
    check_scalar_output,
    checkpoint_name,
    dense,
    expand_reduced,
    gadd,
    getitem_sens,
    immutable_item,
    index_add,
    index_add_inplace,
    index_update,
    index_update_inplace,
    ones_like_output,
    same_structure,
    scatter_sens,
    tensordot_subscripts,
    to_structure,
    tree_leaves,
    tree_unflatten,
    tuple_sens,
    unbroadcast,
    unpack,
    zeros_like_value,
)
from ..runtime import lift as lift_value

# (Every primitive and rule module first: the rules here cover every primitive.)
from . import (  # noqa: F401
    ad_ops,
    core,
    jvp_more,
    keyword_ops,
    numpy_ops,
    random_ops,
    rules_linalg,
    rules_random,
    scipy_ops,
    update_ops,
)
from .registry import PRIMITIVES
from .rules_numpy import _einsum_call

# (name -> (rule, the primitive the rule calls, a test of the flags it handles or None))
BATCH: dict[str, tuple] = {}


def batch(*names, when=None):
    """Register a batching rule for the primitives `names` (see the module's docstring);
    `when(flags)` says which patterns of batched arguments it handles (the others run
    per element)."""

    def register_rule(fn):
        for name in names:
            assert name not in BATCH, f"two batching rules for {name}"
            BATCH[name] = (fn, None, when)
            PRIMITIVES[name].batch_rule = fn
        return fn

    return register_rule


def batch_generic(fn, callee, *names, when=None):
    """Register a generic rule (taking the primitive it applies first) for `names`."""
    if isinstance(callee, str) and callee not in PRIMITIVES:
        return  # (no NumPy counterpart registered: these run per element)
    for name in names:
        if name not in PRIMITIVES:
            continue
        assert name not in BATCH, f"two batching rules for {name}"
        BATCH[name] = (fn, PRIMITIVES[callee] if isinstance(callee, str) else callee
                       if callee is not None else PRIMITIVES[name], when)
        PRIMITIVES[name].batch_rule = fn


# --- helpers (compiled with the rules) ------------------------------------------------

def _item(leaf, i):
    # (a function among batched leaves is the same for every element; so is a string,
    # such as a dict's key among its items)
    if callable(leaf) and not isinstance(leaf, np.ndarray):
        return leaf
    if isinstance(leaf, str):
        return leaf
    v = leaf[i]
    if isinstance(v, np.bool_):
        # (a flag, as an example holds it: NumPy takes `keepdims=True`, not np.True_)
        return bool(v)
    return v


def element(a, i):
    """Element `i` of a batched value (a view for arrays)."""
    return tree_unflatten(a, [_item(leaf, i) for leaf in tree_leaves(a)])


def _stacked(column):
    # (a sensitivity that is zero for every example stays the symbolic zero; where it
    # is zero for some, those take zeros of the others' shape)
    nonzero = [x for x in column if x is not ZERO]
    if not nonzero:
        return ZERO
    first = nonzero[0]
    if isinstance(first, str):
        # (a string is never batched: the same for every example, or no batch holds it)
        for x in column:
            if x != first:
                raise ValueError("vmap: the examples give different strings here (a "
                                 "dict's keys, a name), which one batched value cannot "
                                 "hold; map over examples with the same keys")
        return first
    for x in nonzero:
        if np.shape(x) != np.shape(first):
            raise RaggedBatch("vmap: the examples give values of different shapes or "
                              "lengths here (a list whose length differs across the "
                              "batch), which one batched value cannot hold; map over "
                              "examples of one shape, or loop over them")
    if len(nonzero) < len(column):
        return np.stack([zeros_like_value(first) if x is ZERO else x for x in column])
    return np.stack(column)


def stack(outs):
    """One batched value from a list of per-example values of one structure."""
    for o in outs:
        if not same_structure(o, outs[0]):
            raise RaggedBatch("vmap: the examples give values of different structures "
                              "here (tuples or lists of different lengths, dicts with "
                              "different keys, or an item missing in some), which one "
                              "batched value cannot hold; map over examples that give "
                              "values of one structure, or loop over them")
    leaves = [tree_leaves(o) for o in outs]
    return tree_unflatten(outs[0], [_stacked([ls[j] for ls in leaves])
                                    for j in range(len(leaves[0]))])


def _broadcast_leaf(size, leaf):
    if leaf is ZERO or leaf is UNBOUND or isinstance(leaf, str):
        return leaf
    return np.broadcast_to(leaf, (size,) + np.shape(leaf))


EMPTY_BATCH = ("vmap over an empty batch: this call runs once per element (see "
               "tapeless.primitives.batch_rules.PER_ELEMENT), so the shape of its result is "
               "not known without an element; map over at least one element, or leave the "
               "empty batch out")


def per_element(fn, size, flags, *args):
    """What a loop over the batch computes: `fn` on each element, results stacked."""
    if size == 0:
        raise ValueError(EMPTY_BATCH)
    outs = []
    for i in range(size):
        outs.append(fn(*[element(a, i) if f else a for a, f in zip(args, flags)]))
    return stack(outs)


def per_active_element(fn, size, flags, mask, *args):
    """`per_element` where `mask` holds; elsewhere, the first such element's result
    (a placeholder, never used: see `tapeless.ad.batch`)."""
    outs = []
    first = -1
    for i in range(size):
        if mask[i]:
            outs.append(fn(*[element(a, i) if f else a for a, f in zip(args, flags)]))
            if first < 0:
                first = i
        else:
            outs.append(None)
    if first < 0:
        return per_element(fn, size, flags, *args)
    return stack([outs[i] if mask[i] else outs[first] for i in range(size)])


def call_star_batched(fn, mask, args):
    """`fn(*args)` for a function of batched code (`args` batched)."""
    return fn(mask, *args)


def call_each(fn, size, flags, mask, *args):
    """A call of a function value that differs across the batch (a callable object with
    batched fields, or an array of per-element functions): each element's on its
    element's arguments; a function of batched code held in a batched value, once on the
    whole batch (under `mask`, where not None)."""
    if isinstance(fn, BatchedCode):
        return run_batched_code(fn, size, mask if mask is not None else
                                np.ones(size, dtype=bool),
                                [a if f else broadcast(size, a) for a, f in zip(args, flags)])
    if size == 0:
        raise ValueError(EMPTY_BATCH)
    outs = []
    for i in range(size):
        outs.append(element(fn, i)(*[element(a, i) if f else a
                                     for a, f in zip(args, flags)]))
    return stack(outs)


def run_batched_code(fn, size, mask, args):
    """A function of batched code held in a batched value (`BatchedCode`) called on the
    batched `args` where `mask` holds: once on the whole batch; where the elements picked
    different functions (as from a list by a batched index: the functions stacked into an
    array), each once, on the elements that picked it."""
    if not isinstance(fn.fn, np.ndarray):
        return fn.fn(mask, *args)
    fns = fn.fn
    done = fns == fns[0]
    out = fns[0](mask & done, *args)
    for i in range(size):
        if mask[i] and not done[i]:
            picked = (fns == fns[i]) & mask
            out = select(picked, fns[i](picked, *args), out)
            done = done | picked
    return out


def call_value_each(call, at, first, size, flags, mask, *args):
    """A call of a function value whose callee (`args[at]`) is batched (`call`: the
    primitive, `call_star`, `call_value`, `call_fwd` or `call_value_fwd`, whose arguments
    from `first` on are the tuples the callee takes, spread): a function of batched code
    held in a batched value (picked from a list of functions made in the mapped code) runs
    once on the whole batch, and where the elements picked different ones, each once on
    the elements that picked it; one function per element (a callable object with batched
    fields), per element."""
    fn = args[at]
    if isinstance(fn, BatchedCode):
        whole = np.ones(size, dtype=bool) if mask is None else mask
        spread = [a for j in range(first, len(args))
                  for a in (args[j] if flags[j] else broadcast(size, args[j]))]
        return run_batched_code(fn, size, whole, spread)
    if mask is None:
        return per_element(call, size, flags, *args)
    return per_active_element(call, size, flags, mask, *args)


def batched_code(fn):
    """A function of batched code where a batched value is wanted (see
    `tapeless.runtime.BatchedCode`)."""
    return BatchedCode(fn)


def broadcast(size, x):
    """An unbatched value as a batched one: each leaf repeated along a new first axis."""
    if isinstance(x, np.ndarray):  # (where the kind says so, all that is left)
        return np.broadcast_to(x, (size,) + np.shape(x))
    return tree_unflatten(x, [_broadcast_leaf(size, leaf) for leaf in tree_leaves(x)])


class RaggedBatch(ValueError):
    """A value whose shape differs across the batch (`RAGGED`), which one batched array
    cannot hold: `tl.vmap` called from Python then runs the function once per element
    (`tapeless.vmap_api.Vmapped`)."""

    def __init__(self, *args):
        super().__init__(*(args or (RAGGED,)))


RAGGED = ("vmap: a value's shape differs across the batch here (a loop whose trip count "
          "differs across the batch changes its state's shape, as a loop over layers of "
          "different widths with a break; or an if whose condition differs gives arrays "
          "of different shapes), which one batched array cannot hold. tl.vmap called "
          "from Python, and tl.grad of a function calling tl.vmap, run such a function "
          "once per element (unless it draws random numbers or prints); elsewhere inside "
          "compiled code (a tl.jit of a function calling tl.vmap), loop over the batch "
          "instead, or give the values one shape on every path")


STRUCTURE = ("vmap: a value's structure differs across the batch (an if whose condition "
             "differs across the batch gives a tuple in one branch, a number in the "
             "other; or a loop whose trip count differs grows a tuple or list), which one "
             "batched value cannot hold. tl.vmap called from Python, and tl.grad of a "
             "function calling tl.vmap, run such a function once per element (unless it "
             "draws random numbers or prints); elsewhere inside compiled code, give both "
             "branches the same structure, or loop over the batch instead")


def _select_leaf(c, x, y):
    # (a placeholder, a variable not bound yet, is never read: the other side)
    if y is UNBOUND:
        return x
    if x is UNBOUND:
        return y
    if np.shape(x) != np.shape(y):
        # (np.where would broadcast a width 1 against another: silently wrong)
        raise RaggedBatch()
    return np.where(np.reshape(c, np.shape(c) + (1,) * (np.ndim(x) - 1)), x, y)


def select_shaped(c, a, b, nd):
    """`np.where` of a mask of the batch's length and two batched arrays whose examples
    have `nd` axes, the examples of one shape on both sides (else `RaggedBatch`)."""
    if np.shape(a) != np.shape(b):
        raise RaggedBatch()
    if nd:
        c = np.reshape(c, (-1,) + (1,) * nd)
    return np.where(c, a, b)


def kept_unless_every(every, active, new, old, nd):
    """A masked loop's state after a trip (an array, `nd` axes an element): `new` where
    the element is `active`, else `old`; `new` on a trip every element takes (`every`),
    without the select (`np.where` on 1,000 elements costs 4 µs, a Newton step 15)."""
    if every:
        return new
    if np.shape(new) != np.shape(old):
        raise RaggedBatch()
    if nd:
        active = np.reshape(active, (-1,) + (1,) * nd)
    return np.where(active, new, old)


def kept_leaf_unless_every(every, active, new, old):
    """`kept_unless_every` for an array state first bound in the loop (a placeholder
    before its first trip: `_select_leaf` takes the other side of one)."""
    if every:
        return new
    return _select_leaf(active, new, old)


def kept_tree_unless_every(every, active, new, old):
    """`kept_unless_every` for a state whose kind is not known (a tuple, a value whose
    shape changes from trip to trip, as a loop over layers of different widths): `new`
    on a trip every element takes, else the select (`select`)."""
    if every:
        return new
    return select(active, new, old)


def still_active(every, active, holds):
    """The elements a masked loop runs again: the `active` ones whose condition `holds`
    after this trip; `holds` itself on a trip every element took (`every`)."""
    if every:
        return holds
    return np.logical_and(active, holds)


def still_unless_stopped(every, active, stopped, width):
    """The elements a masked `while True: ... break` runs again, and their count: the
    `active` ones whose stop flag is not set after this trip. On a trip every element
    took (`every`), the count of stopped elements alone (about 0.2 µs on 1,000
    elements), the mask itself where none stopped, where `active > stopped` costs 0.8
    more: a Newton step's trips up to the first element's convergence."""
    if every:
        n = np.count_nonzero(stopped)
        if not n:
            return active, width
        return np.logical_not(stopped), width - n
    still = np.greater(active, stopped)
    return still, np.count_nonzero(still)


def half_unless_narrow(size, least):
    """A masked loop that may compact goes on batch-wide while more than this many of
    its elements are active: half of them, or, where the batch is narrower than `least`
    (on narrower arrays a NumPy operation's cost is its call's, which the gathers would
    not win back), none."""
    if size < least:
        return 0
    return size // 2


def compact_now(count, width, least):
    """Whether a compacted masked loop gathers its active elements again after this trip
    (`count` of its `width` elements still active): where at most half are, and it is at
    least `least` wide."""
    return count > 0 and count * 2 <= width and width >= least


def active_rows(width, active):
    """The positions of a compacting loop's active elements, in order."""
    return np.arange(width)[active]


def rows_of(x, rows):
    """The rows `rows` (positions along the batch axis) of a batched value: each leaf's
    (a placeholder, a variable no element has bound yet, as it is)."""
    if isinstance(x, np.ndarray):
        return x[rows]
    leaves = []
    for leaf in tree_leaves(x):
        leaves.append(leaf if leaf is UNBOUND else leaf[rows])
    return tree_unflatten(x, leaves)


def put_rows(size, res, at, x):
    """A compacted masked loop's results (`size` wide): a copy of `res` with `x`'s rows
    at the positions `at`. A leaf whose dtype the rows change is promoted first, as the
    select that kept a finished element's value would have; one whose shape they change
    raises `RaggedBatch`, as that select does. (A copy, not `res` updated in place:
    differentiable, as `tl.vmap(tl.grad(f))` differentiates the batched code.)"""
    if isinstance(x, np.ndarray) and isinstance(res, np.ndarray):
        return _put_leaf(size, res, at, x)
    if res is not UNBOUND and not same_structure(res, x):
        raise RaggedBatch()
    leaves = []
    if res is UNBOUND:
        for leaf in tree_leaves(x):
            leaves.append(_put_leaf(size, UNBOUND, at, leaf))
        return tree_unflatten(x, leaves)
    for r, leaf in zip(tree_leaves(res), tree_leaves(x)):
        leaves.append(_put_leaf(size, r, at, leaf))
    return tree_unflatten(res, leaves)


def _put_leaf(size, res, at, x):
    # (a variable no element had bound, a placeholder: zeros where no rows are put)
    if x is UNBOUND:
        return res
    if res is UNBOUND:
        res = np.zeros((size,) + np.shape(x)[1:], x.dtype)
    if np.shape(res)[1:] != np.shape(x)[1:]:
        raise RaggedBatch()
    if res.dtype != x.dtype:  # (the select's promotion; `x` has a row: a loop's width)
        res = np.where(True, res, x[:1])
    return index_update(res, at, x)


def broadcast_copy(size, x):
    """`broadcast`, each element its own copy (for updates in place)."""
    return tree_unflatten(x, [np.array(_broadcast_leaf(size, leaf)) for leaf in tree_leaves(x)])


def _unbound_in(leaves):
    for leaf in leaves:
        if leaf is UNBOUND:
            return True
    return False


def _select_same(c, a, b):
    # (a and b of one structure, or one of them a placeholder)
    if a is UNBOUND:
        return b
    if b is UNBOUND:
        return a
    la = tree_leaves(a)
    lb = tree_leaves(b)
    if not same_structure(a, b) or _unbound_in(la) or _unbound_in(lb):
        # (what one batched value cannot hold, as a shape that differs: `tl.vmap` called
        # from Python runs the function once per element; so does `tl.vmap` of a
        # Hessian, whose forward code returns each branch's saved values, of different
        # structures)
        raise RaggedBatch(STRUCTURE)
    return tree_unflatten(a, [_select_leaf(c, x, y) for x, y in zip(la, lb)])


def select(c, a, b):
    """Per element, `a` where the mask `c` (of the batch's length) holds, else `b`. (A
    variable not bound yet on one side, a placeholder, takes the other side's value.)"""
    if a is UNBOUND or b is UNBOUND or len(tree_leaves(a)) == len(tree_leaves(b)) and \
            not _unbound_in(tree_leaves(a)) and not _unbound_in(tree_leaves(b)):
        return _select_same(c, a, b)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple([_select_same(c, x, y) for x, y in zip(a, b)])
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [_select_same(c, x, y) for x, y in zip(a, b)]
    return _select_same(c, a, b)


def as_mask(size, c):
    """A batched condition as a boolean mask (Python's truth, element by element). A
    batched tuple, list or dict holds batched items, and every element has its length:
    its truth is the same for every element (`if not nonzero:` on a list built in the
    mapped code)."""
    if isinstance(c, (tuple, list, dict)):
        return np.full(size, len(c) != 0)
    return np.not_equal(c, 0)


def batched_item(x, i):
    """Item `i` of each example of a batched value (`tuple_getitem`, as in `a, b = x`):
    an array's along the axis after the batch's; a tuple's or list's, whose items are
    batched, as it is."""
    if isinstance(x, np.ndarray):
        return x[:, i]
    return x[i]


def first_of(size, x):
    """Element 0 of a batched value (for what depends on types and lengths only), a
    NumPy number as the Python number an example holds."""
    return tree_unflatten(x, [_python_number(_first(leaf)) for leaf in tree_leaves(x)])


def _first(leaf):
    if isinstance(leaf, np.ndarray) and np.ndim(leaf) > 0 and np.shape(leaf)[0] == 0:
        # (an empty batch: a made-up element of the examples' shape and type, for what
        # depends on types and lengths only)
        return np.zeros(np.shape(leaf)[1:], leaf.dtype)[()]
    return _item(leaf, 0)


def _python_number(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def _container(a):
    return isinstance(a, tuple) or isinstance(a, list) or isinstance(a, dict)


def example_ndim(a, batched):
    """The number of axes of each example of `a` (0 for a container: a sensitivity's)."""
    if _container(a):
        return 0
    if batched:
        return np.ndim(a) - 1
    return np.ndim(a)


def lift(a, nd):
    """A batched array whose examples have fewer than `nd` axes, with unit axes after the
    batch axis (so that it broadcasts against unbatched arguments as each example
    would)."""
    if _container(a) or np.ndim(a) == nd + 1:
        return a
    return np.reshape(a, np.shape(a)[:1] + (1,) * (nd + 1 - np.ndim(a)) + np.shape(a)[1:])


def concatenated(size, a, other):
    """The unbatched operand `a` of `a + other` or `other + a`, `other` batched: where
    both are tuples or lists (a concatenation), `a`'s items repeated along the batch, so
    that every item of the result is batched (a batched tuple holds batched items)."""
    if _container(a) and _container(other):
        return broadcast(size, a)
    return a


def repeated(size, x, n, first):
    """`x * n` (`first`) or `n * x` of an unbatched `x` and a batched `n`: where `x` is a
    tuple or list and `n` one count per element, a repetition, by a count the same for
    every element (else the sequences' lengths differ across the batch: `RaggedBatch`),
    its items repeated along the batch, as a batched tuple holds them (NumPy's product
    of the tuple and the counts was an array of the counts); else NumPy's product."""
    if not _container(x) or np.ndim(n) != 1:
        return x * n if first else n * x
    if len(n) == 0 or np.any(n != n[0]):
        raise RaggedBatch()
    # (the count as it is, a NumPy int: a bool or a float raises Python's TypeError,
    # as the example's `x * n` does)
    return broadcast(size, x * n[0])


def larger(a, b):
    return a if a >= b else b


def elementwise(prim, size, flags, *args):
    """(Applied by `tapeless.ad.batch` itself, with `lift`.)"""
    nd = max([np.ndim(a) - 1 if f else np.ndim(a) for a, f in zip(args, flags)])
    return prim(*[lift(a, nd) if f else a for a, f in zip(args, flags)])


def _axes(axis, nd):
    # (an axis of an example, as an axis of the batched array)
    if axis is None:
        return tuple(range(1, nd + 1))
    if isinstance(axis, tuple):
        return tuple([k % nd + 1 for k in axis])
    return axis % nd + 1


def _reduction(prim, size, flags, a, axis, *rest):
    return prim(a, _axes(axis, np.ndim(a) - 1), *rest)


def _first_only(flags):
    return flags[0] and not any(flags[1:])


_ALL = slice(None)


def _lead(index):
    # (an index of an example, as an index of the batched array)
    if isinstance(index, tuple):
        return (_ALL,) + index
    return (_ALL, index)


# --- elementwise and reductions ---------------------------------------------------------

# (gadd adds sensitivity trees: see below)
batch_generic(elementwise, None, *[name for name, p in PRIMITIVES.items()
                                   if p.elementwise and name != "gadd"])
batch_generic(_reduction, None, *[name for name, p in PRIMITIVES.items() if p.reduction],
              when=_first_only)
# Functions of numbers (math, builtins) on a batch: their NumPy counterparts.
for _name in ["sin", "cos", "tan", "sinh", "cosh", "tanh", "exp", "expm1", "log1p", "log2",
              "log10", "sqrt", "fabs", "floor", "ceil", "trunc", "isnan", "isinf",
              "isfinite", "degrees", "radians"]:
    batch_generic(elementwise, f"np.{_name}", f"math.{_name}")
for _math, _np in [("asin", "arcsin"), ("acos", "arccos"), ("atan", "arctan"),
                   ("asinh", "arcsinh"), ("acosh", "arccosh"), ("atanh", "arctanh"),
                   ("atan2", "arctan2"), ("copysign", "copysign"),
                   ("fmod", "fmod"), ("pow", "power")]:
    batch_generic(elementwise, f"np.{_np}", f"math.{_math}")
batch_generic(elementwise, None, "lt", "le", "gt", "ge", "eq", "ne", "bitand", "bitor",
              "bitxor", "lshift", "rshift", "invert", "np.floor", "np.ceil", "np.trunc",
              "np.rint", "np.isnan", "np.isinf", "np.isfinite", "np.signbit", "np.mod",
              "np.fmod", "np.floor_divide", "np.real", "np.imag", "np.isclose")
batch_generic(elementwise, None, "np.where", "np.clip", "np.zeros_like", "np.ones_like",
              "np.round", "method.clip", "method.round", "floordiv")


def _shaped_by_first(prim, size, flags, a, *rest):
    # (the result has the first argument's shape: an unbatched one is repeated, so that
    # batched values given for the others broadcast into it)
    aa = a if flags[0] else np.array(np.broadcast_to(a, (size,) + np.shape(a)))
    nd = np.ndim(aa) - 1
    return prim(aa, *[lift(x, nd) if f else x for x, f in zip(rest, flags[1:])])


batch_generic(_shaped_by_first, None, "np.full_like", "np.nan_to_num")


def _trees_added(prim, size, flags, a, b):
    # (sensitivity trees: a leaf only one side has is that side's, so an unbatched side
    # is repeated first)
    return prim(a if flags[0] else broadcast(size, a), b if flags[1] else broadcast(size, b))


batch_generic(_trees_added, None, "gadd")
# (The optimizer's `max_sens` and `where_zero`: element by element, broadcasting.)
batch_generic(elementwise, None, "max_sens", "where_zero")


@batch("math.log")
def _math_log(size, flags, x, base):
    if len(base) == 0:
        return np.log(x)
    return np.log(x) / np.log(base[0])


@batch("float", "np.float64")
def _float(size, flags, x):
    return np.float64(x)


@batch("int", "np.int64")
def _int(size, flags, x):
    return np.int64(x)


@batch("checkpoint_name")
def _checkpoint_name(size, flags, x, name):
    return checkpoint_name(x, name)


@batch("check_bound")
def _check_bound(size, flags, value, name, where):
    return check_bound(value, name, where)


@batch("same_structure")
def _same_structure(size, flags, a, b):
    # (a batched value has its examples' structure: batching changes leaves only)
    return np.full(size, same_structure(a, b))


@batch("unpack")
def _unpack(size, flags, value, n):
    if isinstance(value, np.ndarray):
        # (an array's items are along its first axis after the batch's)
        return np.swapaxes(unpack(np.swapaxes(value, 0, 1), n), 0, 1)
    return unpack(value, n)


@batch("truth")
def _truth(size, flags, a):
    return as_mask(size, a)


@batch("not_")
def _not(size, flags, a):
    return np.logical_not(as_mask(size, a))


@batch("round", when=lambda flags: len(flags) == 1 or not flags[1])
def _round(size, flags, number, ndigits=None):
    if ndigits is None:
        return np.int64(np.rint(number))
    return np.round(number, ndigits)


# --- indexing, attributes ---------------------------------------------------------------

@batch("getitem", when=_first_only)
def _getitem(size, flags, x, index):
    if isinstance(x, tuple) or isinstance(x, list) or isinstance(x, dict):
        return x[index]
    return x[_lead(index)]


def _index(x, index):
    return x[index]


def _index_each(size, flags, mask, x, index):
    # (per element; under a mask, the active elements only: an inactive one's index may
    # be out of range, one past a loop's end)
    if mask is None:
        return per_element(_index, size, flags, x, index)
    return per_active_element(_index, size, flags, mask, x, index)


def _integer_items(items, size):
    for a in items:
        if not isinstance(a, np.ndarray) or np.ndim(a) == 0 or np.shape(a)[0] != size:
            return False
        if a.dtype.kind != "i" and a.dtype.kind != "u":
            return False
    return True


def gather(size, flags, mask, x, index):
    """`x[index]` where the index differs across the batch (an integer, or a tuple of
    integers, per element; `x` an array, batched or not): NumPy's integer-array indexing
    of `x` (along the axis after the batch's where `x` is batched, each element's row).
    Out of range raises IndexError for an element under the mask (as a loop over the
    batch would); negative indices wrap. Otherwise (a list, a bool or slice index) per
    element."""
    items = index if isinstance(index, tuple) else (index,)
    skip = 1 if flags[0] else 0
    if not isinstance(x, np.ndarray) or not _integer_items(items, size) or \
            len(items) > np.ndim(x) - skip or \
            (len(items) > 1 and max([np.ndim(a) for a in items]) > 1):
        return _index_each(size, flags, mask, x, index)
    safe = []
    for k in range(len(items)):
        a = items[k]
        n = np.shape(x)[k + skip]
        out = (a < -n) | (a >= n)
        if np.any(out):
            live = out if mask is None else \
                out & np.reshape(mask, (-1,) + (1,) * (np.ndim(out) - 1))
            if np.any(live):
                raise IndexError("index " + str(a[live][0]) + " is out of bounds for axis "
                                 + str(k) + " with size " + str(n))
            a = np.where(out, 0, a)  # (elements not under the mask: a placeholder)
        safe.append(a)
    if flags[0]:
        rows = np.reshape(np.arange(size), (-1,) + (1,) * (np.ndim(safe[0]) - 1))
        return x[tuple([rows] + safe)]
    if len(safe) == 1:
        return x[safe[0]]
    return x[tuple(safe)]


def scatter_gathered(size, flags, d, x, index):
    """The sensitivity of `x` given that of `x[index]`, the index differing across the
    batch (the adjoint of `gather`): a zero array of each example's shape, `d` added at
    each element's index (added: an element's index array may repeat an entry).
    An index out of range is an element's that a mask left inactive (a gather under the
    mask raised for the others): it adds at a placeholder, never read. Otherwise (a list,
    a slice or bool index, a sparse sensitivity) per element."""
    items = index if isinstance(index, tuple) else (index,)
    skip = 1 if flags[1] else 0
    if not isinstance(x, np.ndarray) or not _integer_items(items, size) or \
            len(items) > np.ndim(x) - skip or not isinstance(d, np.ndarray) or \
            (len(items) > 1 and max([np.ndim(a) for a in items]) > 1):
        return per_element(getitem_sens, size, flags, d, x, index)
    shape = np.shape(x)[skip:]
    safe = []
    for k in range(len(items)):
        a = items[k]
        n = shape[k]
        safe.append(np.where((a < -n) | (a >= n), 0, a))
    rows = np.reshape(np.arange(size), (-1,) + (1,) * (np.ndim(safe[0]) - 1))
    # (the runtime's adjoint of the one advanced index over the whole batch: it reads
    # x's shape and dtype, so an unbatched x is stood for by an uninitialized stack)
    xb = x if flags[1] else np.empty((size,) + shape, dtype=x.dtype)
    return getitem_sens(d if flags[0] else broadcast(size, d), xb, tuple([rows] + safe))


def _as_bound(a):
    # (a batched bound of `range`: one integer per element; a bool or unsigned one as
    # int64, so that the arithmetic below stays in signed integers)
    if np.ndim(a) != 1:
        raise TypeError("only integer scalar arrays can be converted to a scalar index")
    if a.dtype.kind != "i" and a.dtype.kind != "u" and a.dtype.kind != "b":
        raise TypeError("'" + str(a.dtype) + "' object cannot be interpreted as an integer")
    if a.dtype.kind != "i":
        return a.astype(np.int64)
    return a


def range_length(mask, start, stop, step):
    """`len(range(start, stop, step))` for each element (the bounds batched ints): the
    ceiling of (stop - start) / step, at least 0. A step of 0 raises ValueError for an
    element under the mask, as `range` does."""
    start = _as_bound(start)
    stop = _as_bound(stop)
    step = _as_bound(step)
    zero = step == 0
    if np.any(zero):
        if mask is None or np.any(zero & mask):
            raise ValueError("range() arg 3 must not be zero")
        step = np.where(zero, 1, step)  # (elements not under the mask: never read)
    return np.maximum(-((start - stop) // step), 0)


def range_start(mask, start, step):
    """The first item of `range(start, stop, step)` for each element (a `for` loop's over
    bounds that differ across the batch), after `range`'s check of the step."""
    zero = step == 0
    if np.any(zero) and (mask is None or np.any(zero & mask)):
        raise ValueError("range() arg 3 must not be zero")
    return start


def range_item(mask, start, stop, step, length, index):
    """`range(start, stop, step)[index]` for each element: `start + index * step`, a
    negative index counting from the end; out of range raises IndexError for an element
    under the mask (an inactive one's may be one past a loop's end)."""
    start = _as_bound(start)
    step = _as_bound(step)
    out = (index < -length) | (index >= length)
    if np.any(out) and (mask is None or np.any(out & mask)):
        raise IndexError("range object index out of range")
    return start + np.where(index < 0, index + length, index) * np.where(step == 0, 1, step)


def _attribute(x, name):
    return getattr(x, name)


@batch("getattr", when=_first_only)
def _getattr(size, flags, x, name):
    if isinstance(x, np.ndarray) and name == "T":
        return np.transpose(x, (0,) + tuple(range(np.ndim(x) - 1, 0, -1)))
    out = getattr(x, name)
    if hasattr(out, "__func__") and hasattr(out, "__self__") and \
            not isinstance(out, np.ndarray):
        # (A method of a batched object: each element's, bound to its element, as a loop
        # over the batch calls it; bound to the batch, it would see every element.)
        return per_element(_attribute, size, flags, x, name)
    return out


# --- linear algebra ---------------------------------------------------------------------

def _example_ndim(x, batched):
    if batched:
        return np.ndim(x) - 1
    return np.ndim(x)


def matmul_batched(size, flags, a, b):
    """`np.matmul` per element (examples of one axis or more)."""
    pa = _example_ndim(a, flags[0])
    pb = _example_ndim(b, flags[1])
    if flags[0] and flags[1]:
        if pa == 1 and pb == 1:
            return np.sum(a * b, axis=1)
        # (a vector as a one-row or one-column matrix; the examples' stacks of matrices
        # with as many axes: unit axes after the batch axis)
        nd = larger(larger(pa, pb), 2)
        aa = lift(np.expand_dims(a, -2), nd) if pa == 1 else lift(a, nd)
        bb = lift(np.expand_dims(b, -1), nd) if pb == 1 else lift(b, nd)
        out = np.matmul(aa, bb)
        if pa == 1:
            return np.squeeze(out, -2)
        if pb == 1:
            return np.squeeze(out, -1)
        return out
    if flags[0]:  # (b the same for every element)
        if pb == 1:
            return np.matmul(a, b)
        if pa == 1:
            return np.squeeze(np.matmul(lift(np.expand_dims(a, -2), pb), b), -2)
        return np.matmul(lift(a, pb), b)
    # (a the same for every element)
    if pa == 1 and pb == 1:
        return np.matmul(b, a)
    if pa == 1:
        return np.matmul(a, b)
    if pb == 1:
        return np.squeeze(np.matmul(a, lift(np.expand_dims(b, -1), pa)), -1)
    return np.matmul(a, lift(b, pa))


@batch("matmul", "np.matmul")
def _matmul(size, flags, a, b):
    return matmul_batched(size, flags, a, b)


@batch("np.dot", "method.dot")
def _dot(size, flags, a, b):
    pa = _example_ndim(a, flags[0])
    pb = _example_ndim(b, flags[1])
    if pa == 0 or pb == 0:  # (a product with a number)
        nd = larger(pa, pb)
        return (lift(a, nd) if flags[0] else a) * (lift(b, nd) if flags[1] else b)
    if pb > 2:  # (not a product of matrices: over b's second-to-last axis)
        return per_element(np.dot, size, flags, a, b)
    return matmul_batched(size, flags, a, b)


@batch("np.outer")
def _outer(size, flags, a, b):
    left = np.reshape(a, (size, -1, 1)) if flags[0] else np.reshape(a, (1, -1, 1))
    right = np.reshape(b, (size, 1, -1)) if flags[1] else np.reshape(b, (1, 1, -1))
    return left * right


def _as_is(prim, size, flags, *args):
    return prim(*args)


batch_generic(_as_is, None,
              "np.linalg.inv", "np.linalg.det", "np.linalg.slogdet", "np.linalg.cholesky",
              "np.linalg.eigh", "np.linalg.eigvalsh", "np.linalg.pinv",
              when=_first_only)


@batch("np.linalg.solve")
def _solve(size, flags, a, b):
    if not flags[1] and np.ndim(b) == 1:
        return np.linalg.solve(a, b)
    if np.ndim(b) == 2 and flags[1] or np.ndim(b) == 1:
        aa = a if flags[0] else np.broadcast_to(a, (size,) + np.shape(a))
        return np.linalg.solve(aa, np.expand_dims(b, -1))[..., 0]
    return np.linalg.solve(a, b)


# --- shapes -----------------------------------------------------------------------------

def _shape_tuple(shape):
    if isinstance(shape, tuple) or isinstance(shape, list):
        return tuple(shape)
    return (shape,)


@batch("np.reshape", when=_first_only)
def _reshape(size, flags, a, shape):
    return np.reshape(a, (size,) + _shape_tuple(shape))


@batch("method.reshape", when=_first_only)
def _method_reshape(size, flags, a, shape):
    if len(shape) == 1:
        return np.reshape(a, (size,) + _shape_tuple(shape[0]))
    return np.reshape(a, (size,) + tuple(shape))


@batch("np.ravel", "method.flatten", "method.ravel", when=_first_only)
def _ravel(size, flags, a):
    return np.reshape(a, (size, -1))


@batch("np.transpose", when=_first_only)
def _transpose(size, flags, a, axes=None):
    if axes is None:
        return np.transpose(a, (0,) + tuple(range(np.ndim(a) - 1, 0, -1)))
    return np.transpose(a, (0,) + tuple([k % (np.ndim(a) - 1) + 1 for k in axes]))


@batch("method.transpose", when=_first_only)
def _method_transpose(size, flags, a, axes):
    if len(axes) == 0:
        return np.transpose(a, (0,) + tuple(range(np.ndim(a) - 1, 0, -1)))
    if len(axes) == 1 and isinstance(axes[0], tuple):
        return np.transpose(a, (0,) + tuple([k % (np.ndim(a) - 1) + 1 for k in axes[0]]))
    return np.transpose(a, (0,) + tuple([k % (np.ndim(a) - 1) + 1 for k in axes]))


@batch("np.swapaxes", "method.swapaxes", when=_first_only)
def _swapaxes(size, flags, a, axis1, axis2):
    nd = np.ndim(a) - 1
    return np.swapaxes(a, axis1 % nd + 1, axis2 % nd + 1)


@batch("np.moveaxis", when=_first_only)
def _moveaxis(size, flags, a, source, destination):
    nd = np.ndim(a) - 1
    return np.moveaxis(a, _axes(source, nd), _axes(destination, nd))


@batch("np.expand_dims", when=_first_only)
def _expand_dims(size, flags, a, axis):
    if isinstance(axis, tuple) or isinstance(axis, list):
        return np.expand_dims(a, tuple([k + 1 if k >= 0 else k for k in axis]))
    if axis < 0:
        return np.expand_dims(a, axis)
    return np.expand_dims(a, axis + 1)


@batch("np.squeeze", "method.squeeze", when=_first_only)
def _squeeze(size, flags, a, axis=None):
    nd = np.ndim(a) - 1
    if axis is None:
        return np.reshape(a, (size,) + tuple([n for n in np.shape(a)[1:] if n != 1]))
    return np.squeeze(a, _axes(axis, nd))


def _all_batched(size, flags, arrays):
    return [x if f else broadcast(size, x) for x, f in zip(arrays, flags)]


@batch("np.concatenate", when=lambda flags: not any(flags[1:]))
def _concatenate(size, flags, arrays, axis=0):
    if axis is None:  # (each example's arrays flattened)
        return np.concatenate([np.reshape(x, (size, -1)) for x in arrays], 1)
    return np.concatenate(arrays, axis % (np.ndim(arrays[0]) - 1) + 1)


@batch("np.stack", when=lambda flags: not any(flags[1:]))
def _stack(size, flags, arrays, axis=0):
    if axis < 0:
        return np.stack(arrays, axis)
    return np.stack(arrays, axis + 1)


# --- sequences ----------------------------------------------------------------------------

def rows(x):
    """A batched sequence as a list of its batched items (an array's rows, per
    example)."""
    if isinstance(x, list) or isinstance(x, tuple):
        return list(x)
    if isinstance(x, dict):  # (its keys, the same for every example)
        return list(x.keys())
    return [x[:, j] for j in range(np.shape(x)[1])]


# A batched dict holds batched values under keys that are the same for every example:
# its keys are those, its items pair them with the batched values (lists: what a loop
# over the batch stacks; a string among batched leaves is the same for every example).
def _items_of(x):
    return list(x.items())


def _keys_of(x):
    return list(x.keys())


@batch("method.items")
def _dict_items(size, flags, d):
    if isinstance(d, dict):
        return list(d.items())
    return per_element(_items_of, size, flags, d)


@batch("method.keys")
def _dict_keys(size, flags, d):
    if isinstance(d, dict):
        return list(d.keys())
    return per_element(_keys_of, size, flags, d)


@batch("as_sequence")
def _as_sequence(size, flags, iterable):
    return iterable


@batch("zip")
def _zip(size, flags, iterables):
    return list(zip(*[rows(x) for x in iterables]))


@batch("enumerate", when=_first_only)
def _enumerate(size, flags, iterable, start=0):
    items = rows(iterable)
    return [(np.full(size, start + j), items[j]) for j in range(len(items))]


@batch("method.values", when=_first_only)
def _values(size, flags, d):
    return list(d.values())


@batch("list", when=_first_only)
def _list(size, flags, iterable):
    return rows(iterable)


@batch("tuple", when=_first_only)
def _tuple(size, flags, iterable):
    return tuple(rows(iterable))


@batch("reversed", when=_first_only)
def _reversed(size, flags, seq):
    return list(reversed(rows(seq)))


@batch("sum", when=_first_only)
def _sum(size, flags, iterable, start=0):
    if isinstance(iterable, list) or isinstance(iterable, tuple):
        if len(iterable) == 0:
            return start + np.zeros(size)
        total = start
        for item in iterable:
            total = total + item
        return total
    return np.sum(iterable, axis=1) + start


# --- the edges of a batched function (`tapeless.vmap_api`) -----------------------------

def move_in(x, axis):
    """An argument with its mapped axis first (in every leaf)."""
    if axis == 0:
        return x
    return tree_unflatten(x, [np.moveaxis(leaf, axis, 0) for leaf in tree_leaves(x)])


def move_out(x, axis):
    """A result with its batch axis moved to `axis` (in every leaf)."""
    if axis == 0:
        return x
    leaves = tree_leaves(x)
    for leaf in leaves:
        if axis >= np.ndim(leaf) or axis < -np.ndim(leaf):
            raise ValueError("vmap: out_axes " + str(axis) + " is not an axis of a result "
                             "with " + str(np.ndim(leaf)) + " axes, the batch's included "
                             "(an element's result with n axes takes out_axes from "
                             "-n - 1 to n); give an axis in that range")
    return tree_unflatten(x, [np.moveaxis(leaf, 0, axis) for leaf in leaves])


def size_of(x, axis):
    """The length of the mapped axis of an argument (of its first leaf)."""
    if isinstance(x, np.ndarray):  # (where the kind says so, all that is left)
        return np.shape(x)[axis]
    return np.shape(tree_leaves(x)[0])[axis]


# --- declared for the V transform -------------------------------------------------------

# Run once per element even on unbatched arguments, as a loop over the batch would: random
# draws and prints.
ALWAYS_PER_ELEMENT = {name for name in PRIMITIVES
                      if name.startswith(("rng_", "np.random.")) or name in (
                          "normal_and_standard", "uniform_and_unit",
                          "exponential_and_standard", "standard_variates", "print")}
# What depends on types, lengths and identities only: computed on element 0, unbatched.
TYPE_LEVEL = {"len", "np.shape", "np.ndim", "np.size", "isinstance", "callable", "hasattr",
              "class_of"}
# What depends on the shape of its first argument only (the others unbatched): computed
# on element 0, unbatched, like TYPE_LEVEL.
SHAPE_LEVEL = {"reduced_count", "reduced_axes"}
# Whose result is a bool (or, batched, a bool array) whatever the arguments: a condition
# of theirs is a mask as it is.
BOOL_RESULTS = {name for name in ("lt", "le", "gt", "ge", "eq", "ne", "not_", "truth",
                                  "np.logical_and", "np.logical_or", "np.logical_not",
                                  "np.logical_xor", "np.isnan", "np.isinf", "np.isfinite",
                                  "np.less", "np.less_equal", "np.greater",
                                  "np.greater_equal", "np.equal", "np.not_equal",
                                  "math.isnan", "math.isinf", "math.isfinite")
                if name in PRIMITIVES}
# Attributes of an array that are the same for every example (taken of element 0).
ARRAY_FACTS = {"shape", "ndim", "size", "dtype"}
# Updates of their first argument in place: batched, it is a copy per element (an update
# that differs across the batch must not reach the other elements).
IN_PLACE = {"index_update_inplace", "index_add_inplace", "update_rest_inplace"}
# Products of vectors and matrices (`tapeless.ad.batch` writes them for known shapes).
MATMUL_LIKE = {"matmul", "np.matmul", "np.dot", "method.dot"}
# The stacks of derivative loops: they hold batched values (see `tapeless.ad.batch`).
STACK_OPS = {"stack_new", "stack_push", "stack_pop", "stack_nonempty"}


# --- more reductions and axis-taking functions -------------------------------------------

batch_generic(_reduction, None, "np.var", "np.std", "method.var", "method.std", "np.all",
              "np.any", "method.all", "method.any", "np.count_nonzero", "np.nansum",
              "np.nanmean", "np.nanmax", "np.nanmin", "scipy.special.logsumexp",
              "scipy.special.softmax", "scipy.special.log_softmax", when=_first_only)


def _flat_or_axis(prim, size, flags, a, axis, *rest):
    # (axis None: over each example flattened, as NumPy does)
    if axis is None:
        return prim(np.reshape(a, (size, -1)), 1, *rest)
    return prim(a, axis % (np.ndim(a) - 1) + 1, *rest)


batch_generic(_flat_or_axis, None, "np.argmax", "np.argmin", "method.argmax",
              "method.argmin", "np.cumsum", "np.cumprod", "method.cumsum", "np.sort",
              "np.argsort", when=_first_only)


@batch("np.partition", when=_first_only)
def _partition(size, flags, a, kth, axis=-1, kind="introselect", order=None):
    if axis is None:
        return np.partition(np.reshape(a, (size, -1)), kth, 1, kind, order)
    return np.partition(a, kth, axis % (np.ndim(a) - 1) + 1, kind, order)


@batch("np.take", when=_first_only)
def _take(size, flags, a, indices, axis=None):
    if axis is None:
        return np.take(np.reshape(a, (size, -1)), indices, 1)
    return np.take(a, indices, axis % (np.ndim(a) - 1) + 1)


@batch("np.roll", when=_first_only)
def _roll(size, flags, a, shift, axis=None):
    if axis is None:
        return np.reshape(np.roll(np.reshape(a, (size, -1)), shift, 1), np.shape(a))
    return np.roll(a, shift, _axes(axis, np.ndim(a) - 1))


@batch("np.diff", when=_first_only)
def _diff(size, flags, a, n=1, axis=-1, prepend=None, append=None):
    # (an unbatched array to put before or after: each example's)
    if prepend is not None and np.ndim(prepend) > 0:
        prepend = np.broadcast_to(prepend, (size,) + np.shape(prepend))
    if append is not None and np.ndim(append) > 0:
        append = np.broadcast_to(append, (size,) + np.shape(append))
    return np.diff(a, n, axis % (np.ndim(a) - 1) + 1, prepend, append)


@batch("np.flip", when=_first_only)
def _flip(size, flags, m, axis=None):
    return np.flip(m, _axes(axis, np.ndim(m) - 1))


@batch("np.flipud", when=_first_only)
def _flipud(size, flags, m):
    return np.flip(m, 1)


@batch("np.fliplr", when=_first_only)
def _fliplr(size, flags, m):
    return np.flip(m, 2)


def _diagonal_of(prim, size, flags, a, offset=0, axis1=0, axis2=1):
    nd = np.ndim(a) - 1
    return prim(a, offset, axis1 % nd + 1, axis2 % nd + 1)


batch_generic(_diagonal_of, None, "np.trace", "np.diagonal", "method.diagonal",
              when=_first_only)


def _matrices(prim, size, flags, m, *rest):
    # (on the last two axes, for examples that are matrices; a vector's is a matrix made
    # from it, per element)
    if np.ndim(m) >= 3:
        return prim(m, *rest)
    return per_element(prim, size, flags, m, *rest)


batch_generic(_matrices, None, "np.tril", "np.triu", when=_first_only)
batch_generic(_as_is, None, "np.linalg.svd", "np.linalg.qr", "np.linalg.matrix_power",
              "np.copy", "method.copy", "method.astype", "method.conj", "stop_gradient",
              when=_first_only)
batch_generic(elementwise, "scipy.special.erf", "math.erf")
batch_generic(elementwise, "scipy.special.erfc", "math.erfc")
batch_generic(elementwise, "scipy.special.gammaln", "math.lgamma")
batch_generic(elementwise, "scipy.special.polygamma", "polygamma")
batch_generic(elementwise, "np.hypot", "math.hypot",
              when=lambda flags: len(flags) == 2)
batch_generic(elementwise, None, "np.float32")


@batch("method.item", when=_first_only)
def _item_of(size, flags, a):
    return np.reshape(a, (size,))


@batch("np.broadcast_to", when=_first_only)
def _broadcast_to(size, flags, array, shape):
    target = _shape_tuple(shape)
    return np.broadcast_to(lift(array, len(target)), (size,) + target)


# --- products by subscripts, norms, medians, padding, repetition ------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _free_letter(spec):
    for c in _LETTERS:
        if c not in spec:
            return c
    raise ValueError("vmap of np.einsum: every letter is used; batch by hand")


def _joined(items, sep):
    text = ""
    for k in range(len(items)):
        text = text + (sep if k > 0 else "") + items[k]
    return text


def _explicit(spec):
    """An einsum spec without spaces, with its output written out (NumPy's implicit
    output: the ellipsis, then the labels used once, in order)."""
    text = _joined([c for c in spec if c != " "], "")
    if "->" in text:
        return text
    letters = [c for c in text if c != "," and c != "."]
    once = sorted([c for c in letters if letters.count(c) == 1])
    return text + "->" + ("..." if "." in text else "") + _joined(once, "")


def _batched_spec(spec, flags):
    """An explicit einsum spec with a batch label first on the batched operands (one
    flag each) and on the result."""
    spec = _explicit(spec)
    z = _free_letter(spec)
    parts = [""]
    out = ""
    arrow = False
    for c in spec:
        if arrow:
            out = out + c
        elif c == ",":
            parts = parts + [""]
        elif c == ">":
            arrow = True
        elif c != "-":
            parts = parts[:-1] + [parts[-1] + c]
    return _joined([z + q if f else q for q, f in zip(parts, flags)], ",") + "->" + z + out


def _per_element_of(fn, size, flags, args):
    # (`per_element` with the arguments as one tuple)
    outs = []
    for i in range(size):
        outs.append(fn(*[element(a, i) if f else a for a, f in zip(args, flags)]))
    return stack(outs)


@batch("np.einsum")
def _einsum(size, flags, subscripts, operands):
    if flags[0] or not isinstance(subscripts, str):
        # (the sublist form: its operands and sublists alternate, per element)
        return _per_element_of(np.einsum, size, (flags[0],) + (flags[1],) * len(operands),
                               (subscripts,) + tuple(operands))
    return _einsum_call(_batched_spec(subscripts, (True,) * len(operands)), operands)


@batch("np.tensordot", when=lambda flags: not flags[2])
def _tensordot(size, flags, a, b, axes=2):
    spec = tensordot_subscripts(_example_ndim(a, flags[0]), _example_ndim(b, flags[1]), axes)
    return _einsum_call(_batched_spec(spec, flags[:2]), (a, b))


@batch("np.linalg.norm", when=_first_only)
def _norm(size, flags, x, ord=None, axis=None, keepdims=False):
    nd = np.ndim(x) - 1
    if axis is not None:
        return np.linalg.norm(x, ord, _axes(axis, nd), keepdims)
    if nd == 1 or nd == 2:  # (a vector's norm, or a matrix's)
        return np.linalg.norm(x, ord, _axes(None, nd), keepdims)
    # (ord None: the 2-norm of the example flattened)
    out = np.linalg.norm(np.reshape(x, (size, -1)), ord, 1, False)
    if keepdims:
        return np.reshape(out, (size,) + (1,) * nd)
    return out


@batch("np.median", when=_first_only)
def _median(size, flags, a, axis=None, out=None, overwrite_input=False, keepdims=False):
    # (never over the batched array in place: it may be an argument or a broadcast view)
    return np.median(a, _axes(axis, np.ndim(a) - 1), out, False, keepdims)


def _pad_widths(pad_width, nd):
    # (NumPy's forms of `pad_width`, one (before, after) pair per axis of an example,
    # none for the batch axis)
    widths = np.broadcast_to(np.asarray(pad_width), (nd, 2))
    return tuple([(0, 0)] + [(int(w[0]), int(w[1])) for w in widths])


@batch("np.pad", when=lambda flags: not flags[1] and not flags[2])
def _pad(size, flags, array, pad_width, mode="constant", constant_values=0):
    nd = _example_ndim(array, flags[0])
    aa = _batched_like(size, flags[0], array)
    widths = _pad_widths(pad_width, nd)
    if len(flags) < 4 or not flags[3]:
        if mode == "constant":
            return np.pad(aa, widths, mode, constant_values=constant_values)
        return np.pad(aa, widths, mode)
    if nd == 0:  # (nothing to pad)
        return np.array(aa)
    if np.ndim(constant_values) != 1:  # (one value per side: each example's)
        return per_element(np.pad, size, flags, array, pad_width, mode, constant_values)
    # (one value per example: zeros padded, then the padding filled)
    where = np.pad(np.zeros(np.shape(aa)[1:], dtype=bool), widths[1:], "constant",
                   constant_values=True)
    padded = np.pad(aa, widths, mode, constant_values=0)
    return np.where(where, np.reshape(constant_values, (size,) + (1,) * nd), padded)


@batch("np.tile", when=_first_only)
def _tile(size, flags, a, reps):
    nd = np.ndim(a) - 1
    reps = _shape_tuple(reps)
    if len(reps) < nd:
        reps = (1,) * (nd - len(reps)) + reps
    elif len(reps) > nd:
        a = np.reshape(a, (size,) + (1,) * (len(reps) - nd) + np.shape(a)[1:])
    return np.tile(a, (1,) + reps)


@batch("np.repeat", when=_first_only)
def _repeat(size, flags, a, repeats, axis=None):
    if axis is None:
        return np.repeat(np.reshape(a, (size, -1)), repeats, 1)
    return np.repeat(a, repeats, axis % (np.ndim(a) - 1) + 1)


# --- updates of items ---------------------------------------------------------------------

def _advanced_in(index):
    # (an index tuple holding an array or a list: where its axes land depends on the
    # other items, so the batch axis may not stay first)
    if not isinstance(index, tuple):
        return False
    for k in index:
        if isinstance(k, np.ndarray) or isinstance(k, list):
            return True
    return False


def _container_update(size, flags, x, index, value, fn):
    return fn(_batched_like(size, flags[0], x), index, _batched_like(size, flags[2], value))


def _in_range(items, shape):
    for k in range(len(items)):
        n = shape[k]
        if np.any((items[k] < -n) | (items[k] >= n)):
            return False
    return True


def scatter_each(fn, unique, size, flags, x, index, value):
    """`fn(x, index, value)` (an update or an add at `x[index]`) where the index differs
    across the batch: one integer, or a tuple of integers, per element (with `unique`, an
    update, whose positions must not repeat within an element: one integer per axis), or
    an integer array per element (an add). One NumPy advanced index over the batch, each
    element's row with its own positions. Otherwise (a list, a slice or bool index, an
    index out of range, which raises as a loop would) per element."""
    items = index if isinstance(index, tuple) else (index,)
    if not isinstance(x, np.ndarray) or not _integer_items(items, size) or \
            len(items) > np.ndim(x) - (1 if flags[0] else 0) or \
            (len(items) > 1 or unique) and max([np.ndim(a) for a in items]) > 1 or \
            not _in_range(items, np.shape(x)[1:] if flags[0] else np.shape(x)):
        return per_element(fn, size, flags, x, index, value)
    xx = _batched_like(size, flags[0], x)
    rows = np.reshape(np.arange(size), (-1,) + (1,) * (np.ndim(items[0]) - 1))
    at = tuple([rows] + list(items))
    if flags[2]:
        value = lift(value, np.ndim(xx[at]) - 1)
    return fn(xx, at, value)


@batch("index_update")
def _index_update(size, flags, x, index, value):
    if flags[1]:
        return scatter_each(index_update, True, size, flags, x, index, value)
    if isinstance(x, list) or isinstance(x, dict):
        return _container_update(size, flags, x, index, value, index_update)
    if not isinstance(x, np.ndarray) or _advanced_in(index):
        return per_element(index_update, size, flags, x, index, value)
    out = np.array(_batched_like(size, flags[0], x))
    at = _lead(index)
    if flags[2]:
        value = lift(value, np.ndim(out[at]) - 1)
    out[at] = value
    return out


@batch("index_update_inplace")
def _index_update_inplace(size, flags, x, index, value):
    # (x is batched: an unbatched one was copied per element first)
    if flags[1]:
        return scatter_each(index_update_inplace, True, size, flags, x, index, value)
    if isinstance(x, list) or isinstance(x, dict):
        return _container_update(size, flags, x, index, value, index_update_inplace)
    if not isinstance(x, np.ndarray) or _advanced_in(index):
        return per_element(index_update_inplace, size, flags, x, index, value)
    at = _lead(index)
    if flags[2]:
        value = lift(value, np.ndim(x[at]) - 1)
    return index_update_inplace(x, at, value)


def _index_add_with(fn, size, flags, x, index, value):
    if not isinstance(x, np.ndarray) or _advanced_in(index):
        return per_element(fn, size, flags, x, index, value)
    xx = _batched_like(size, flags[0], x)
    at = _lead(index)
    if flags[2]:
        value = lift(value, np.ndim(xx[at]) - 1)
    return fn(xx, at, value)


@batch("index_add")
def _index_add(size, flags, x, index, value):
    if flags[1]:
        return scatter_each(index_add, False, size, flags, x, index, value)
    return _index_add_with(index_add, size, flags, x, index, value)


@batch("index_add_inplace")
def _index_add_inplace(size, flags, x, index, value):
    if flags[1]:
        return scatter_each(index_add_inplace, False, size, flags, x, index, value)
    return _index_add_with(index_add_inplace, size, flags, x, index, value)



@batch("immutable_item")
def _immutable_item(size, flags, container, item):
    # (a batched item is an array whatever each example's is: a list's or dict's item is
    # checked element by element)
    if isinstance(container, list) or isinstance(container, dict):
        return per_element(immutable_item, size, flags, container, item)
    return _batched_like(size, flags[1], item)


# --- derivative plumbing (a `tl.grad` inside a function `tl.vmap` maps in compiled code,
# as in MAML: the inner gradient's helpers, batched before the examples' shapes are known)

def _batched_like(size, flag, x):
    # (every leaf with the batch axis first: an unbatched value repeated)
    if flag:
        return x
    return broadcast(size, x)


@batch("unbroadcast")
def _unbroadcast(size, flags, d, x):
    if d is ZERO:
        return ZERO
    if not flags[0]:  # (the same sum for every element: it depends on x's shape only)
        return broadcast(size, unbroadcast(d, first_of(size, x)))
    xx = _batched_like(size, flags[1], x)
    # (x's examples lifted to d's number of axes, so the sum keeps the batch axis)
    return np.reshape(unbroadcast(d, lift(xx, np.ndim(d) - 1)), np.shape(xx))


@batch("expand_reduced", when=lambda flags: not flags[2] and not flags[3])
def _expand_reduced(size, flags, d, x, axis, keepdims):
    if d is ZERO:
        return ZERO
    shape = np.shape(x)[1:] if flags[1] else np.shape(x)
    if not flags[0]:
        return np.broadcast_to(expand_reduced(d, np.zeros(shape), axis, keepdims),
                               (size,) + shape)
    nd = len(shape)
    if axis is None:
        d = np.reshape(d, (size,) + (1,) * nd)
    elif not keepdims and nd > 0:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        d = np.expand_dims(d, tuple([k % nd + 1 for k in axes]))
    return np.broadcast_to(d, (size,) + shape)


@batch("tuple_sens", when=lambda flags: not flags[1])
def _tuple_sens(size, flags, d, i, like):
    # (a batched sequence holds batched items: the sensitivity is built the same way; a
    # batched array given as the sequence is a sequence of rows per example)
    if flags[2] and isinstance(like, np.ndarray):
        return per_element(tuple_sens, size, flags, d, i, like)
    return tuple_sens(_batched_like(size, flags[0], d), i, like)


@batch("lift")
def _lift(size, flags, value):
    # (data passes as it is; a function, the same for every element, is lifted once)
    return lift_value(value)


@batch("check_scalar_output")
def _check_scalar_output(size, flags, out):
    # (each example a number: the batch a vector of floats; anything else is checked
    # element by element, for the error each element gives)
    if isinstance(out, np.ndarray) and np.ndim(out) == 1 and (
            out.dtype == np.float64 or out.dtype == np.float32):
        return out
    return per_element(check_scalar_output, size, flags, out)


@batch("ones_like_output")
def _ones_like_output(size, flags, out):
    if isinstance(out, np.ndarray) and (out.dtype == np.float64 or out.dtype == np.float32):
        return np.ones_like(out)
    return per_element(ones_like_output, size, flags, out)


@batch("to_structure")
def _to_structure(size, flags, sens, like):
    if isinstance(sens, (tuple, list)) and isinstance(like, np.ndarray):
        # (an array's sensitivity given row by row, as `a, b = x` gives it: each
        # example's rows are along its own first axis, after the batch's)
        return per_element(to_structure, size, flags, sens, like)
    return to_structure(_batched_like(size, flags[0], sens),
                        _batched_like(size, flags[1], like))


# --- derivative code's plumbing on a batch of sensitivities ----------------------------
# (What `tl.hessian` batches: forward mode over reverse mode with one tangent per column,
# the primal values the same for every column. A sensitivity may be the symbolic ZERO,
# which stands for a batch of zeros too. Other patterns of batched arguments, and values
# these rules do not know (sparse sensitivities, objects), run per element.)

def _data_first(flags):
    # (the sensitivity batched; the value it is shaped like batched or not; the rest not)
    return flags[0] and not any(flags[2:])


def _example_shape(x, batched):
    if batched:
        return np.shape(x)[1:]
    return np.shape(x)


@batch("sens_of")
def _sens_of(size, flags, d, like):
    if d is ZERO:
        if flags[1]:
            return zeros_like_value(like)
        return broadcast_copy(size, zeros_like_value(like))
    if flags[0]:
        return d
    return broadcast(size, d)


@batch("sens_index", when=_first_only)
def _sens_index(size, flags, dd, index):
    if dd is ZERO:
        return ZERO
    if isinstance(dd, dict):
        return dd.get(index, ZERO)
    if isinstance(dd, tuple) or isinstance(dd, list):
        return dd[index]
    return dd[_lead(index)]


@batch("broadcast_like", when=_data_first)
def _broadcast_like(size, flags, d, x):
    if d is ZERO:
        return ZERO
    shape = _example_shape(x, flags[1])
    if np.shape(d)[1:] == shape:
        return d
    return np.broadcast_to(lift(d, len(shape)), (size,) + shape)


@batch("reshape_like", when=_data_first)
def _reshape_like(size, flags, d, x):
    if d is ZERO:
        return ZERO
    if flags[1]:
        return np.reshape(d, np.shape(x))
    if len(np.shape(x)) == 0 and not isinstance(x, np.ndarray):
        return np.sum(np.reshape(d, (size, -1)), axis=1)
    return np.reshape(d, (size,) + np.shape(x))


@batch("scatter_sens", when=lambda flags: not flags[1])
def _scatter_sens(size, flags, x, indices, ds):
    if x is ZERO:
        return ZERO
    if isinstance(x, np.ndarray):
        # (`scatter_sens` reads only the shape and dtype of x: an unbatched x is stood
        # for by an array of the batch's shape left uninitialized, which costs less than
        # a broadcast view of x, more than the scatter's adds for a (100, 100) Hessian.)
        xb = x if flags[0] else np.empty((size,) + np.shape(x), dtype=x.dtype)
        return scatter_sens(xb, tuple([_lead(i) for i in indices]),
                            ds if flags[2] else broadcast(size, ds))
    return per_element(scatter_sens, size, flags, x, indices, ds)


@batch("getitem_sens")
def _getitem_sens(size, flags, d, x, index):
    if d is ZERO or x is ZERO:
        return ZERO
    if flags[2]:
        return scatter_gathered(size, flags, d, x, index)
    if isinstance(x, np.ndarray):
        return _scatter_sens(size, (flags[1], False, flags[0]), x, (index,), (d,))
    if flags[0] and not flags[1] and (isinstance(x, tuple) or isinstance(x, list) or
                                      isinstance(x, dict)):
        return getitem_sens(d, x, index)
    return per_element(getitem_sens, size, flags, d, x, index)


batch_generic(_as_is, None, "own", "dense_sens", when=_first_only)


@batch("scatter_add", when=lambda flags: not flags[2])
def _scatter_add(size, flags, acc, x, indices, ds):
    # (a new sum, not one added in place: the batch of accumulators may be a view)
    part = _scatter_sens(size, flags[1:], x, indices, ds)
    if acc is ZERO:
        return part
    if flags[0]:
        return gadd(acc, part)
    return gadd(broadcast(size, acc), part)


# (scatter_onto is scatter_add without the update in place: the same batched sum)
batch("scatter_onto", when=lambda flags: not flags[2])(_scatter_add)
batch("scatter_onto_known", when=lambda flags: not flags[2])(_scatter_add)


@batch("dense", when=_data_first)
def _dense(size, flags, d, like):
    if d is ZERO:
        if flags[1]:
            return zeros_like_value(like)
        return broadcast_copy(size, zeros_like_value(like))
    if isinstance(d, tuple) or isinstance(d, list):
        return per_element(dense, size, flags, d, like)
    return d


# --- declared to run per element ----------------------------------------------------------
# What a loop over the batch computes: the primitive on each element, results stacked.
# Every primitive without a rule above (or a case of `tapeless.ad.batch` itself: structure,
# branches, loops, types and lengths) is named here with the reason; one that is neither
# is refused by the V transform ("no batching rule") and fails tests/test_batch_rules.py.

_WHY_PER_ELEMENT = {
    "an effect (a print, an assert, a raise): once per element, in turn, as a loop would": (
        "assert", "print", "raise"),
    "a random draw: each element draws in turn from the one stream, as a loop would": tuple(
        name for name in PRIMITIVES if name.startswith(("rng_", "np.random."))) + (
        "normal_and_standard", "uniform_and_unit", "exponential_and_standard",
        "standard_variates"),
    "works on Python objects (sequences, strings, dicts, slices, classes, keyword "
    "arguments), not on arrays": (
        "make_dict", "make_slice", "slice", "contains", "not_contains", "range",
        "divmod", "any", "all", "sorted", "dict", "str", "min", "max", "construct",
        "format", "convert", "join_strings",
        "method.get", "method.index", "method.count",
        "method.startswith", "method.endswith", "kwarg_or", "dict_without",
        "check_kwargs", "zip_strict", "zip_strict_length"),
    "a call of a function value that is not batched code (or a comprehension whose body is "
    "not known): each element's call in turn": (
        "call_value", "call_star", "list_map", "list_flatmap", "transform_of"),
    "derivative code's plumbing (sensitivities, symbolic and sparse zeros, structures, "
    "function values): each example's, as a loop computes it": (
        "scatter_add_known", "matmul_tn", "getattr_sens", "sens_getattr", "field_sens",
        "scatter_add_pair_known",
        "struct_sens", "construct_value", "repeat_sens", "zeros_like_value",
        "ones_like_value", "check_aux_output", "replace_fields", "without_fields",
        "fields_of", "dict_merge", "dict_merge_sens", "tree_leaves", "tree_unflatten",
        "tree_leaves_sens", "tree_unflatten_sens", "from_structure", "einsum_specs",
        "einsum_sublist_spec", "einsum_matmul_plan", "tensordot_subscripts", "split_indices",
        "concat_sens", "take_sens", "diag_sens", "take_along_axis_sens", "call_fwd",
        "call_value_fwd", "lift_fwd", "data_only", "generated_only",
        "data_only_grad", "split_fwd", "index_sens", "index_concat_sens",
        "index_concat_dense", "index_concat", "update_rest_sens", "update_value_sens",
        "update_value_scatter", "checkpoint_for", "checkpoint_while",
        "checkpoint_while_loop", "recursion_enter", "recursion_call", "recursion_back"),
    "an update in place of a sensitivity (derivative code): each element's in turn": (
        "update_rest_inplace", "add_into_known", "gadd_owned",
        "element_sens_small"),
    "makes an array from shapes, lengths or bounds: batched, they may differ across the "
    "batch, so each element makes its own": (
        "np.zeros", "np.ones", "np.empty", "np.full", "np.eye", "np.identity",
        "np.arange", "np.linspace", "np.triu_indices", "np.tril_indices", "np.meshgrid"),
    "what it does depends on each example's number of axes or on the sequence it is given "
    "(a batched rule is not written yet)": (
        "np.array", "np.asarray", "np.atleast_1d", "np.atleast_2d", "np.atleast_3d",
        "np.hstack", "np.vstack", "np.column_stack", "np.append", "np.split",
        "np.array_split", "np.hsplit", "np.vsplit", "np.dsplit",
        "np.rot90", "np.rollaxis", "np.select", "np.kron", "np.cross",
        "np.diag", "np.take_along_axis", "np.inner", "np.average", "np.gradient",
        "np.convolve", "np.correlate", "np.interp", "np.searchsorted"),
    "the shape of its result depends on the values (or on a solver's rank), which may "
    "differ across the batch": (
        "np.unique", "np.histogram", "np.bincount", "np.linalg.lstsq"),
    "takes its axes or order statistics as further arguments (a batched rule is not "
    "written yet)": (
        "np.percentile", "np.quantile", "np.cov", "np.corrcoef"),
    "a solver or factorization of SciPy's that does not take a stack of matrices": (
        "scipy.linalg.solve_triangular", "scipy.linalg.cho_factor", "scipy.linalg.cho_solve"),
    "a function of Python numbers without a NumPy counterpart registered, or a test that "
    "gives one bool for whole arrays": (
        "math.gamma", "math.factorial", "math.copysign", "math.isclose", "np.allclose",
        "np.array_equal"),
    "arithmetic into a temporary, in place (only a final program has it, the Python "
    "backend's: never batched): each element's in turn": tuple(ad_ops.IN_PLACE_OF.values()),
}
PER_ELEMENT: dict[str, str] = {name: why for why, names in _WHY_PER_ELEMENT.items()
                               for name in names if name in PRIMITIVES}
for _name in PER_ELEMENT:
    if _name not in BATCH:
        batch_generic(per_element, None, _name)
for _name in SHAPE_LEVEL:  # (with an axis that differs across the batch)
    batch_generic(per_element, None, _name)
# The V transform's own cases (`tapeless.ad.batch`), never looked up in BATCH: structure,
# branches, loops, the stacks of derivative loops, identities, types and lengths.
IN_TRANSFORM = {"switch", "while_loop", "for_range", "make_tuple", "make_list",
                "tuple_getitem", "list_append", "list_extend", "is_", "is_not"} | \
    STACK_OPS | TYPE_LEVEL | SHAPE_LEVEL
