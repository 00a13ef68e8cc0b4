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

from ..runtime import UNBOUND, ZERO, tree_leaves, tree_unflatten

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
    # (a function among batched leaves is the same for every element)
    if callable(leaf) and not isinstance(leaf, np.ndarray):
        return leaf
    return leaf[i]


def element(a, i):
    """Element `i` of a batched value (a view for arrays)."""
    return tree_unflatten(a, [_item(leaf, i) for leaf in tree_leaves(a)])


def _stacked(column):
    # (a sensitivity that is zero for every example stays the symbolic zero)
    if column[0] is ZERO:
        return ZERO
    for x in column:
        if np.shape(x) != np.shape(column[0]):
            raise ValueError("vmap: the examples give values of different shapes or "
                             "lengths here (a list whose length differs across the "
                             "batch), which one batched value cannot hold; map over "
                             "examples of one shape, or loop over them")
    return np.stack(column)


def stack(outs):
    """One batched value from a list of per-example values of one structure."""
    leaves = [tree_leaves(o) for o in outs]
    return tree_unflatten(outs[0], [_stacked([ls[j] for ls in leaves])
                                    for j in range(len(leaves[0]))])


def _broadcast_leaf(size, leaf):
    if leaf is ZERO or leaf is UNBOUND:
        return leaf
    return np.broadcast_to(leaf, (size,) + np.shape(leaf))


def per_element(fn, size, flags, *args):
    """What a loop over the batch computes: `fn` on each element, results stacked."""
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


def call_each(fn, size, flags, *args):
    """A call of a function value that differs across the batch (a callable object with
    batched fields, or an array of per-element functions): each element's on its
    element's arguments."""
    outs = []
    for i in range(size):
        outs.append(element(fn, i)(*[element(a, i) if f else a
                                     for a, f in zip(args, flags)]))
    return stack(outs)


def broadcast(size, x):
    """An unbatched value as a batched one: each leaf repeated along a new first axis."""
    return tree_unflatten(x, [_broadcast_leaf(size, leaf) for leaf in tree_leaves(x)])


def _select_leaf(c, x, y):
    # (a placeholder, a variable not bound yet, is never read: the other side)
    if y is UNBOUND:
        return x
    if x is UNBOUND:
        return y
    return np.where(np.reshape(c, np.shape(c) + (1,) * (np.ndim(x) - 1)), x, y)


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
    if len(la) != len(lb) or _unbound_in(la) or _unbound_in(lb):
        raise ValueError("vmap: an if whose condition differs across the batch gives "
                         "values of different structures in its branches (a tuple in one, "
                         "a number in the other); give both branches the same structure")
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


def as_mask(c):
    """A batched condition as a boolean mask (Python's truth, element by element)."""
    return np.not_equal(c, 0)


def first_of(size, x):
    """Element 0 of a batched value (for what depends on types and lengths only), a
    NumPy number as the Python number an example holds."""
    return tree_unflatten(x, [_python_number(_item(leaf, 0)) for leaf in tree_leaves(x)])


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

batch_generic(elementwise, None, *[name for name, p in PRIMITIVES.items() if p.elementwise])
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
              "np.rint", "np.isnan", "np.isinf", "np.isfinite", "np.logical_not",
              "np.signbit", "np.mod", "np.fmod", "np.floor_divide", "np.logical_and",
              "np.logical_or", "np.logical_xor", "np.nan_to_num", "np.real", "np.imag",
              "np.isclose")
batch_generic(elementwise, None, "np.where", "np.clip", "np.zeros_like", "np.ones_like",
              "np.full_like", "np.round", "method.clip", "method.round", "floordiv")
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


@batch("truth")
def _truth(size, flags, a):
    return as_mask(a)


@batch("not_")
def _not(size, flags, a):
    return np.logical_not(as_mask(a))


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


@batch("getattr", when=_first_only)
def _getattr(size, flags, x, name):
    if isinstance(x, np.ndarray) and name == "T":
        return np.transpose(x, (0,) + tuple(range(np.ndim(x) - 1, 0, -1)))
    return getattr(x, name)


# --- linear algebra ---------------------------------------------------------------------

@batch("matmul", "np.matmul", "np.dot", "method.dot")
def _matmul(size, flags, a, b):
    if flags[0] and not flags[1]:
        if np.ndim(b) == 0:
            return a * b
        return np.matmul(a, b)
    if flags[1] and not flags[0]:
        if np.ndim(a) == 0:
            return a * b
        if np.ndim(b) == 2:  # (a vector per example)
            if np.ndim(a) == 1:
                return np.matmul(b, a)
            if np.ndim(a) == 2:
                return np.matmul(b, np.transpose(a))
            return np.moveaxis(np.matmul(a, np.transpose(b)), -1, 0)
        return np.matmul(a, b)
    if np.ndim(a) == 1 or np.ndim(b) == 1:
        return per_element(np.dot, size, flags, a, b)
    if np.ndim(a) == 2 and np.ndim(b) == 2:
        return np.sum(a * b, axis=1)
    if np.ndim(b) == 2:
        return np.matmul(a, np.expand_dims(b, -1))[..., 0]
    if np.ndim(a) == 2:
        return np.matmul(np.expand_dims(a, 1), b)[:, 0]
    return np.matmul(a, b)


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
    return [x[:, j] for j in range(np.shape(x)[1])]


@batch("as_sequence")
def _as_sequence(size, flags, iterable):
    return iterable


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
        total = start
        for item in iterable:
            total = total + item
        return total + np.zeros(size)
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
    return tree_unflatten(x, [np.moveaxis(leaf, 0, axis) for leaf in tree_leaves(x)])


def size_of(x, axis):
    """The length of the mapped axis of an argument (of its first leaf)."""
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
# Attributes of an array that are the same for every example (taken of element 0).
ARRAY_FACTS = {"shape", "ndim", "size", "dtype"}
# Updates of their first argument in place: batched, it is a copy per element (an update
# that differs across the batch must not reach the other elements).
IN_PLACE = {"index_update_inplace", "index_add_inplace", "update_rest_inplace"}
# Products of vectors and matrices (`tapeless.ad.batch` writes them for known shapes).
MATMUL_LIKE = {"matmul", "np.matmul", "np.dot", "method.dot"}
# The stacks of derivative loops: they hold batched values (see `tapeless.ad.batch`).
STACK_OPS = {"stack_new", "stack_push", "stack_pop", "stack_nonempty"}


# --- everything else runs per element ---------------------------------------------------
# (Random draws and prints included: each call for element 0, then element 1, ...)

for _name, _p in PRIMITIVES.items():
    if _name not in BATCH:
        batch_generic(per_element, None, _name)
