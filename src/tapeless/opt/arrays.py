"""Rewrites of array code by what kinds prove: type tests, shapes and broadcasting,
reshapes and transposes, reductions and products, sensitivities of array pieces."""

from __future__ import annotations

import math
from typing import Any

from ..ir.nodes import Apply, Constant, Graph, Node, graph_nodes, prim_of, reachable_graphs
from ..ir.replace import apply_replacements
from ..primitives import METHODS
from ..runtime import ZERO
from .kinds import (
    FLOAT,
    INT,
    SCALAR,
    Kind,
    dtype_of,
    is_f8,
    kind,
    ndim_of,
    normalized_axes,
    shape_of,
)
from .loops import LoopFacts
from .patterns import holds_term, is_prim, scattered, size_of, tuple_items
from .rules import Context, P, rewrite
from .simplify import pure
from .softmax import invariant_share, max_share_cancels, reduced_axes, softmax_term_in
from .zeros import never_zero


@rewrite("gadd")
def _gadd_scatter(ctx: Context, node: Apply) -> Node | None:
    """The sensitivities of several elements or slices of one array, added: one zero
    array and an add per piece, not a zero array per piece."""
    a, b = (scattered(x) for x in node.inputs[1:])
    if a is None or b is None or a[0] is not b[0]:
        return None
    g = node.graph
    return g.apply(P["scatter_sens"], a[0], g.apply(P["make_tuple"], *a[1], *b[1]),
                   g.apply(P["make_tuple"], *a[2], *b[2]), loc=node.loc, name=node.name)


@rewrite("scatter_sens")
def _scatter_one_index_once(ctx: Context, node: Apply) -> Node | None:
    """Pieces scattered to one int index (one node, or equal int constants): one piece,
    their sum (`x[k]` read twice in a loop body: `np.sum(q[k])` and `np.exp(q[k])`).
    `scatter_sens` sums the pieces of a repeated index first anyway, so the values are
    the same, and `scatter_add` then adds into the accumulator in place rather than
    making a zero array for the sum."""
    x, indices, ds = node.inputs[1:]
    items, pieces = tuple_items(indices), tuple_items(ds)
    if items is None or pieces is None or len(items) != len(pieces) or len(items) < 2:
        return None
    merged: list[tuple[Node, Node]] = []
    changed = False
    for i, d in zip(items, pieces, strict=True):
        for j, (seen, total) in enumerate(merged):
            if _same_int_index(seen, i, ctx):
                merged[j] = (seen, node.graph.apply(P["gadd"], total, d, loc=node.loc))
                changed = True
                break
        else:
            merged.append((i, d))
    if not changed:
        return None
    g = node.graph
    return g.apply(P["scatter_sens"], x, g.apply(P["make_tuple"], *[i for i, _ in merged]),
                   g.apply(P["make_tuple"], *[d for _, d in merged]), loc=node.loc,
                   name=node.name)


@rewrite("scatter_sens")
def _scatter_adjacent_slices(ctx: Context, node: Apply) -> Node | None:
    """Two pieces in a row scattered to one slice (equal constant indices made of slices
    and ints: `x[:-1]` read twice): one piece, their sum. The values are the same bit
    for bit: the zeros plus the first piece are the first piece, and the second is
    added to it next either way. (Only pieces in a row: a piece in between may overlap
    them, and floating-point sums depend on their order.)"""
    x, indices, ds = node.inputs[1:]
    pieces = tuple_items(ds)
    if not (isinstance(indices, Constant) and type(indices.value) is tuple) or \
            pieces is None or len(pieces) != len(indices.value) or len(pieces) < 2:
        return None
    merged: list[tuple[Any, Node]] = []
    for i, d in zip(indices.value, pieces, strict=True):
        if merged and _basic_index(i) and i == merged[-1][0]:
            merged[-1] = (i, node.graph.apply(P["gadd"], merged[-1][1], d, loc=node.loc))
        else:
            merged.append((i, d))
    if len(merged) == len(pieces):
        return None
    g = node.graph
    return g.apply(P["scatter_sens"], x, tuple(i for i, _ in merged),
                   g.apply(P["make_tuple"], *[d for _, d in merged]), loc=node.loc,
                   name=node.name)


def _basic_index(i: Any) -> bool:
    """A slice, an int, or a tuple of them: NumPy's basic indexing, whose pieces
    `scatter_sens` adds with `out[i] += d` (no repeated elements within one piece)."""
    if type(i) is tuple:
        return all(type(j) in (int, slice) for j in i)
    return type(i) in (int, slice)


def _same_int_index(a: Node, b: Node, ctx: Context) -> bool:
    """Whether a and b are one int index: one node of kind INT, or equal int constants
    (not arrays or slices, whose repeated pieces NumPy adds element by element)."""
    if isinstance(a, Constant) and isinstance(b, Constant):
        return type(a.value) is int and type(b.value) is int and a.value == b.value
    return a is b and kind(a, ctx.facts) == INT


@rewrite("scatter_sens")
def _scatter_whole(ctx: Context, node: Apply) -> Node | None:
    """The sensitivities of slices that cover a float64 array along its first axis, each
    once and none ZERO: their concatenation (not zeros, then an add per slice)."""
    x, indices, ds = node.inputs[1:]
    kx = kind(x, ctx.facts)
    sx = shape_of(kx)
    pieces = tuple_items(ds)
    if not (isinstance(indices, Constant) and type(indices.value) is tuple) or \
            pieces is None or not sx or dtype_of(kx) != "f8" or \
            len(pieces) != len(indices.value):
        return None
    spans = []
    for index, d in zip(indices.value, pieces, strict=True):
        if type(index) is not slice:
            return None
        start, stop, step = index.indices(sx[0])
        kd = kind(d, ctx.facts)
        if step != 1 or stop <= start or dtype_of(kd) != "f8" or \
                shape_of(kd) != (stop - start,) + sx[1:] or not never_zero(d, ctx.facts):
            return None
        spans.append((start, stop, d))
    spans.sort(key=lambda span: span[0])
    if spans[0][0] != 0 or spans[-1][1] != sx[0] or \
            any(a[1] != b[0] for a, b in zip(spans, spans[1:], strict=False)):
        return None
    g = node.graph
    return g.apply(P["np.concatenate"], g.apply(P["make_tuple"], *[d for _, _, d in spans]),
                   0, loc=node.loc, name=node.name)


@rewrite("np.ndim")
def _ndim_known(ctx: Context, node: Apply) -> Node | None:
    k = kind(node.inputs[1], ctx.facts)
    n = 0 if k in (FLOAT, INT, SCALAR) else ndim_of(k)
    return Constant(n) if n is not None else None


@rewrite("np.size", "np.shape")
def _size_known(ctx: Context, node: Apply) -> Node | None:
    """`np.size(a)`, `np.shape(a)` where the kind gives a's shape (a number's is ()):
    constants, so that the tests on them fold (`tl.jacrev`'s `np.size(y) == 0`)."""
    if len(node.inputs) != 2:
        return None
    k = kind(node.inputs[1], ctx.facts)
    shape = () if k in (FLOAT, INT, SCALAR) else shape_of(k)
    if shape is None:
        return None
    return Constant(math.prod(shape) if prim_of(node) is P["np.size"] else shape)


@rewrite("unbroadcast")
def _unbroadcast_known(ctx: Context, node: Apply) -> Node | None:
    """Nothing to undo when `d` already has `x`'s shape (or both are numbers: the helper
    gives d, or a float64 d as the equal Python float where x is a Python float)."""
    d, x = node.inputs[1:]
    kd, kx = kind(d, ctx.facts), kind(x, ctx.facts)
    if (kx in (FLOAT, INT, SCALAR) or shape_of(kx) == ()) and kd == FLOAT:
        return d
    if kd == SCALAR and kx == SCALAR:
        return d
    sd, sx = shape_of(kd), shape_of(kx)
    if sd is not None and sd == sx:
        return d
    return None


@rewrite("broadcast_like")
def _broadcast_known(ctx: Context, node: Apply) -> Node | None:
    """Nothing to broadcast when `d` already has `x`'s shape (or both are numbers)."""
    d, x = node.inputs[1:]
    kd, kx = kind(d, ctx.facts), kind(x, ctx.facts)
    if kx in (FLOAT, SCALAR) and kd in (FLOAT, SCALAR):
        return d
    sd, sx = shape_of(kd), shape_of(kx)
    return d if sd is not None and sd == sx else None


@rewrite("add")
def _add_broadcasts(ctx: Context, node: Apply) -> Node | None:
    """`a + broadcast_like(d, x)` (either order), where float64 arrays `a` and `x` have one
    shape that `d`'s broadcasts to, is `a + d`: the sum broadcasts `d` itself, with no view
    made first (the tangent of a bias, `W_dot @ h + W @ h_dot + b_dot`, in forward mode)."""
    for a, b in ((node.inputs[1], node.inputs[2]), (node.inputs[2], node.inputs[1])):
        if not is_prim(b, "broadcast_like"):
            continue
        d, x = b.inputs[1:]
        ka, kd, kx = kind(a, ctx.facts), kind(d, ctx.facts), kind(x, ctx.facts)
        sa, sd, sx = shape_of(ka), shape_of(kd), shape_of(kx)
        if not (is_f8(ka) and is_f8(kd) and is_f8(kx)) or sa is None or sa != sx or \
                sd is None or len(sd) > len(sx) or \
                any(m not in (1, n) for m, n in zip(sd[::-1], sx[::-1], strict=False)):
            continue
        return node.graph.apply(P["add"], *((a, d) if b is node.inputs[2] else (d, a)),
                                loc=node.loc, name=node.name)
    return None


@rewrite("reduced_count")
def _reduced_count_known(ctx: Context, node: Apply) -> Node | None:
    """How many elements a reduction over constant axes of a value of known shape adds."""
    x, axis = node.inputs[1:]
    k = kind(x, ctx.facts)
    shape: tuple[int, ...] | None = () if k in (FLOAT, INT, SCALAR) else shape_of(k)
    if shape is None:
        return None
    axes = reduced_axes(axis, len(shape))
    return Constant(math.prod(shape[a] for a in axes)) if axes is not None else None


@rewrite("getattr_sens")
def _shape_sens(ctx: Context, node: Apply) -> Node | None:
    """Attributes such as `x.shape` carry no sensitivity back to x."""
    name = node.inputs[3]
    if isinstance(name, Constant) and name.value in ("shape", "ndim", "size", "dtype"):
        return Constant(ZERO)
    return None


@rewrite("getattr_sens")
def _transpose_sens(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a float64 array x given that of `x.T`, d never ZERO: `d.T` (what
    the helper returns, without its tests: `(x - m) @ Q.T` in a loop body)."""
    d, x, name = node.inputs[1:]
    kx = kind(x, ctx.facts)
    if not (isinstance(name, Constant) and name.value == "T") or not is_f8(kx) or \
            shape_of(kx) is None or not never_zero(d, ctx.facts):
        return None
    return node.graph.apply(P["getattr"], d, "T", loc=node.loc, name=node.name)


@rewrite("np.swapaxes")
def _swapaxes_2d(ctx: Context, node: Apply) -> Node | None:
    x, i, j = node.inputs[1:]
    if ndim_of(kind(x, ctx.facts)) == 2 and isinstance(i, Constant) and \
            isinstance(j, Constant) and {i.value % 2, j.value % 2} == {0, 1}:
        return node.graph.apply(P["getattr"], x, "T", loc=node.loc, name=node.name)
    return None


def _transposed(node: Node, facts: LoopFacts | None) -> tuple[Node, int] | None:
    """(x, n) where node swaps the last two axes of x, an array of n >= 2 dimensions
    (`np.swapaxes(x, -1, -2)` or the like, `x.T` or `np.transpose(x)` for a matrix)."""
    if is_prim(node, "np.swapaxes"):
        x, i, j = node.inputs[1:]
        n = ndim_of(kind(x, facts))
        if n is not None and n >= 2 and isinstance(i, Constant) and isinstance(j, Constant) \
                and type(i.value) is int and type(j.value) is int and \
                -n <= i.value < n and -n <= j.value < n and \
                {i.value % n, j.value % n} == {n - 2, n - 1}:
            return x, n
    if (is_prim(node, "getattr") and isinstance(node.inputs[2], Constant) and
            node.inputs[2].value == "T") or \
            (is_prim(node, "np.transpose") and _constant_is(node.inputs[2], None)):
        x = node.inputs[1]
        if ndim_of(kind(x, facts)) == 2:
            return x, 2
    return None


@rewrite("np.swapaxes", "getattr", "np.transpose")
def _transpose_twice(ctx: Context, node: Apply) -> Node | None:
    """Swapping the last two axes of a value whose last two axes were swapped gives the
    value back; a transposed outer product of two vectors is the outer product in the
    other order (the gradient of `W.T @ x` in W, made without a transposed copy: the
    copy a gradient's caller owns, of a matrix for each example under `tl.vmap`); a
    transposed matrix product is the product of the transposed factors in
    the other order, which cancels a transposition of a factor (each entry is a sum of
    the same products, which BLAS may add in another order)."""
    outer = _transposed(node, ctx.facts)
    if outer is None:
        return None
    x, n = outer
    inner = _transposed(x, ctx.facts)
    if inner is not None:
        return inner[0]
    vectors = _outer(x, ctx, row=True) if n == 2 else None
    if vectors is not None:  # (u v^T transposed is v u^T: the same products, no copy)
        u, v = vectors
        g = node.graph
        return g.apply(P["mul"], g.apply(P["np.expand_dims"], v, -1, loc=node.loc), u,
                       loc=node.loc, name=node.name)
    if not is_prim(x, "matmul"):
        return None
    a, b = x.inputs[1:]
    ta, tb = _transposed(a, ctx.facts), _transposed(b, ctx.facts)
    if (ta is None and tb is None) or ndim_of(kind(a, ctx.facts)) != n or \
            ndim_of(kind(b, ctx.facts)) != n:
        return None
    g = node.graph
    new_a = tb[0] if tb is not None else g.apply(P["np.swapaxes"], b, -1, -2, loc=node.loc)
    new_b = ta[0] if ta is not None else g.apply(P["np.swapaxes"], a, -1, -2, loc=node.loc)
    return g.apply(P["matmul"], new_a, new_b, loc=node.loc, name=node.name)


@rewrite("add", "gadd")
def _max_share_zero(ctx: Context, node: Apply) -> Node | None:
    """`x + share` where share is the part of a log-sum-exp's gradient that goes through
    the max, which is zero (`tapeless.opt.softmax`: the derivative's terms cancel, or
    the objective does not depend on the max, however the shift is spelled), and x
    holds the softmax term: x. Computed, the share is rounding noise: the result
    differs from it by that noise."""
    a, b = node.inputs[1:]
    for x, share in ((a, b), (b, a)):
        # (The share's form first: it is rare, and kinds are costly to infer for every sum.)
        w = max_share_cancels(share, ctx.facts)
        if w is None:
            mx = invariant_share(share, ctx.root, ctx.facts)
            if mx is None or not softmax_term_in(x, mx, ctx.facts):
                continue
        kx = kind(x, ctx.facts)
        if is_f8(kx) and shape_of(kx) == shape_of(kind(share, ctx.facts)) and \
                (w is None or holds_term(x, w)):
            return x
    return None


def _tie_sharing_mask(node: Node) -> tuple[Node, Node] | None:
    """(a, b) where node is `np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))`: the
    derivative of `np.maximum(a, b)` in a (of `np.minimum(b, a)` likewise), whichever
    spelling of the max the program used."""
    if not is_prim(node, "np.where"):
        return None
    greater, one, rest = node.inputs[1:]
    if not is_prim(greater, "np.greater") or not is_prim(rest, "np.where") or \
            not _float_constant(one, 1.0):
        return None
    equal, half, zero = rest.inputs[1:]
    a, b = greater.inputs[1:]
    if not is_prim(equal, "np.equal") or not _float_constant(half, 0.5) or \
            not _float_constant(zero, 0.0) or \
            {id(x) for x in equal.inputs[1:]} != {id(a), id(b)}:
        return None
    return a, b


def _constant_is(node: Node, value: object) -> bool:
    return isinstance(node, Constant) and node.value is value


def _float_constant(node: Node, value: float) -> bool:
    return isinstance(node, Constant) and type(node.value) is float and node.value == value


def _real(k: Kind | None) -> bool:
    return k in (FLOAT, INT) or dtype_of(k) in ("f8", "i8")


@rewrite("mul")
def _max_sens_one_comparison(ctx: Context, node: Apply) -> Node | None:
    """`d * (the tie-sharing mask of np.maximum(a, b))`, the sensitivity a max passes to
    one argument (ReLU's `np.maximum(z, 0.0)`, `np.minimum`, either order), for float64
    arrays: `max_sens(d, a, b)`, which compares once where nothing ties instead of
    building the mask (four passes over the array, ten times the hand-written
    `d * (z > 0)`). The same values."""
    for d, mask in (node.inputs[1:], node.inputs[:0:-1]):
        found = _tie_sharing_mask(mask)
        if found is None:
            continue
        a, b = found
        kd = kind(d, ctx.facts)
        if not is_f8(kd) or not shape_of(kind(node, ctx.facts)) or \
                not _real(kind(a, ctx.facts)) or not _real(kind(b, ctx.facts)):
            continue
        return node.graph.apply(P["max_sens"], d, a, b, loc=node.loc, name=node.name)
    return None


@rewrite("np.where")
def _where_zero_as_product(ctx: Context, node: Apply) -> Node | None:
    """`np.where(c, x, 0.0)` with c a boolean array and x a float64 array of the result's
    shape (ReLU written with np.where, and the gradient of every np.where):
    `where_zero(c, x)`, a product where x is finite (the same values, up to the sign of a
    zero), 4-6 times faster than NumPy's where on an irregular mask."""
    c, x, zero = node.inputs[1:]
    kc, kx = kind(c, ctx.facts), kind(x, ctx.facts)
    sx = shape_of(kx)
    if not _float_constant(zero, 0.0) or dtype_of(kc) != "b1" or dtype_of(kx) != "f8" or \
            not sx or shape_of(kind(node, ctx.facts)) != sx:
        return None
    return node.graph.apply(P["where_zero"], c, x, loc=node.loc, name=node.name)


@rewrite("np.sum", "expand_reduced")
def _sum_over_no_axes(ctx: Context, node: Apply) -> Node | None:
    """A sum over no axes (`axis=()`) of a float64 array of at least one dimension is the
    array (a sum of one term each; a 0-d array would become a NumPy scalar), and its
    gradient, `expand_reduced(d, x, (), keepdims)`, is d where d has x's shape."""
    if is_prim(node, "expand_reduced"):
        d, x, axis, _ = node.inputs[1:]
        kd = kind(d, ctx.facts)
        if _no_axes(axis) and dtype_of(kd) == "f8" and shape_of(kd) is not None and \
                shape_of(kd) == shape_of(kind(x, ctx.facts)):
            return d
        return None
    x, axis, dtype, _ = node.inputs[1:]
    if _no_axes(axis) and isinstance(dtype, Constant) and dtype.value is None:
        k = kind(x, ctx.facts)
        if dtype_of(k) == "f8" and shape_of(k):
            return x
    return None


def _no_axes(axis: Node) -> bool:
    return isinstance(axis, Constant) and type(axis.value) is tuple and not axis.value


@rewrite("mul", "truediv", "add", "sub", "np.equal")
def _broadcast_implicitly(ctx: Context, node: Apply) -> Node | None:
    """`expand_reduced(c, x, axis, keepdims) * z` with z of x's shape: `c` (a number, or
    with the reduced axes put back, size 1) broadcasts against z by itself, without a
    full-size view."""
    a, b = node.inputs[1:]
    for i, (e, other) in enumerate(((a, b), (b, a))):
        if is_prim(e, "reshape_like") and isinstance(e, Apply) and \
                kind(e.inputs[1], ctx.facts) in (FLOAT, SCALAR) and \
                shape_of(kind(e.inputs[2], ctx.facts)) == shape_of(kind(other, ctx.facts)) \
                is not None:
            ins = [e.inputs[1], other] if i == 0 else [other, e.inputs[1]]
            return node.graph.apply(node.inputs[0], *ins, loc=node.loc, name=node.name)
        if not is_prim(e, "expand_reduced"):
            continue
        assert isinstance(e, Apply)
        c, x, axis, keepdims = e.inputs[1:]
        sx = shape_of(kind(x, ctx.facts))
        kc = kind(c, ctx.facts)
        sc = shape_of(kc)
        if sx is None or sx != shape_of(kind(other, ctx.facts)):
            continue
        if kc in (FLOAT, SCALAR):  # a number broadcasts by itself
            ins = [c, other] if i == 0 else [other, c]
            return node.graph.apply(node.inputs[0], *ins, loc=node.loc, name=node.name)
        if sc is None or not isinstance(axis, Constant) or not isinstance(keepdims, Constant):
            continue
        axes = normalized_axes(axis.value, len(sx))
        if not axes:
            continue
        if keepdims.value is True:
            if sc != tuple(1 if j in axes else n for j, n in enumerate(sx)):
                continue
            small: Node = c
        elif keepdims.value is False:
            if sc != tuple(n for j, n in enumerate(sx) if j not in axes):
                continue
            small = node.graph.apply(P["np.expand_dims"], c, axes[0] if len(axes) == 1
                                     else axes, loc=node.loc)
        else:
            continue
        ins = [small, other] if i == 0 else [other, small]
        return node.graph.apply(node.inputs[0], *ins, loc=node.loc, name=node.name)
    return None


@rewrite("reshape_like")
def _reshape_broadcast(ctx: Context, node: Apply) -> Node | None:
    """A number broadcast to one shape and reshaped to another is broadcast to that one."""
    e, y = node.inputs[1:]
    if not is_prim(e, "expand_reduced"):
        return None
    assert isinstance(e, Apply)
    c, x = e.inputs[1:3]
    sx, ky = shape_of(kind(x, ctx.facts)), kind(y, ctx.facts)
    sy = shape_of(ky)
    if kind(c, ctx.facts) in (FLOAT, SCALAR) and sx is not None and sy is not None and \
            size_of(sx) == size_of(sy) and sy != () and is_f8(ky):
        return node.graph.apply(P["expand_reduced"], c, y, None, False, loc=node.loc,
                                name=node.name)
    return None


@rewrite("unbroadcast")
def _unbroadcast_to_sum(ctx: Context, node: Apply) -> Node | None:
    """`unbroadcast(d, x)` with both shapes known is the sum over the broadcast axes
    (what the run-time helper computes, without its shape tests)."""
    d, x = node.inputs[1:]
    kd, kx = kind(d, ctx.facts), kind(x, ctx.facts)
    sd, sx = shape_of(kd), shape_of(kx)
    if kx == SCALAR and sd and dtype_of(kd) == "f8" and not is_prim(d, "neg"):
        # A 0-d number (of either type: the helper gives a Python float for a float64
        # one): the whole sum, with the same value.
        return node.graph.apply(P["np.sum"], d, None, None, False, loc=node.loc,
                                name=node.name)
    if sd is None or not sx or sd == sx or len(sx) > len(sd) or dtype_of(kd) != "f8" or \
            is_prim(d, "neg"):  # (first negate the sum instead: sum_then_negate)
        return None
    lead = len(sd) - len(sx)
    if any(n != 1 and n != sd[lead + i] for i, n in enumerate(sx)):
        return None
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(sx)
                                      if n == 1 and sd[i + lead] != 1)
    axis = axes[0] if len(axes) == 1 else axes
    total = node.graph.apply(P["np.sum"], d, axis, None, True, loc=node.loc,
                             name=node.name if not lead else "")
    if not lead:
        return total
    return node.graph.apply(P["np.reshape"], total, sx, loc=node.loc, name=node.name)


@rewrite("method.reshape")
def _reshape_to_own_shape(ctx: Context, node: Apply) -> Node | None:
    """`x.reshape(3, 4)` or `x.reshape((3, 4))` of a float64 array of shape (3, 4) is x
    (NumPy returns a view of the same data)."""
    x, shape = node.inputs[1:]
    if not isinstance(shape, Constant) or type(shape.value) is not tuple:
        return None
    target = shape.value
    if len(target) == 1 and type(target[0]) is tuple:
        target = target[0]
    kx = kind(x, ctx.facts)
    if dtype_of(kx) == "f8" and all(type(n) is int for n in target) and \
            shape_of(kx) == target:
        return x
    return None


@rewrite("reshape_like", "np.reshape")
def _sum_without_keepdims(ctx: Context, node: Apply) -> Node | None:
    """A sum kept its reduced axes only to lose them: `np.sum(d, axis)` as it is; a
    reshape to the shape a value already has is nothing."""
    v, like = node.inputs[1:]
    if is_prim(node, "reshape_like"):
        ky = kind(like, ctx.facts)
        target = shape_of(ky) if ky is not None and dtype_of(ky) == "f8" else None
    else:
        target = like.value if isinstance(like, Constant) and type(like.value) is tuple \
            else None
    kv = kind(v, ctx.facts)
    if target is None or dtype_of(kv) != "f8":
        return None
    if shape_of(kv) == target:
        return v
    if is_prim(v, "neg") and isinstance(v, Apply) and is_prim(v.inputs[1], "np.sum"):
        inner = node.graph.apply(node.inputs[0], v.inputs[1], like, loc=node.loc)
        return node.graph.apply(P["neg"], inner, loc=node.loc, name=node.name)
    if is_prim(v, "np.sum") and isinstance(v, Apply):
        a, axis, dtype, keepdims = v.inputs[1:]
        sa = shape_of(kind(a, ctx.facts))
        # (not axis=None: a sum over all axes is a NumPy scalar, not a 0-d array)
        axes = reduced_axes(axis, len(sa)) if sa is not None and \
            getattr(axis, "value", None) is not None else None
        if isinstance(keepdims, Constant) and keepdims.value is True and axes is not None \
                and isinstance(dtype, Constant) and dtype.value is None and \
                sa is not None and tuple(n for i, n in enumerate(sa) if i not in axes) == target:
            return node.graph.apply(P["np.sum"], a, axis, None, False, loc=node.loc,
                                    name=node.name)
    return None


@rewrite("unbroadcast")
def _sum_then_negate(ctx: Context, node: Apply) -> Node | None:
    """`unbroadcast(-d, x)` is `-unbroadcast(d, x)` (exactly): negate the smaller array."""
    nd, x = node.inputs[1:]
    if not is_prim(nd, "neg"):
        return None
    assert isinstance(nd, Apply)
    kd, kx = kind(nd.inputs[1], ctx.facts), kind(x, ctx.facts)
    sd, sx = shape_of(kd), (() if kx in (FLOAT, INT, SCALAR) else shape_of(kx))
    if sd is None or sx is None or not is_f8(kd) or size_of(sx) >= size_of(sd):
        return None
    summed = node.graph.apply(P["unbroadcast"], nd.inputs[1], x, loc=node.loc)
    return node.graph.apply(P["neg"], summed, loc=node.loc, name=node.name)


@rewrite("np.sum")
def _sum_before_product(ctx: Context, node: Apply) -> Node | None:
    """A sum of a matrix product over its rows is the product of the left factor's row
    sum (`np.sum(a @ b, axis=-2) == np.sum(np.sum(a, -2, keepdims=True) @ b, axis=-2)`),
    and over its columns the product with the right factor's column sum: one product
    with a single row (or column) instead of n, for n additions more (the gradient of a
    batch of points that share an offset: `np.sum(d @ Q, axis=1)` in the GMM). The same
    sums of products, added in another order."""
    m, axis, dtype, keepdims = node.inputs[1:]
    if not is_prim(m, "matmul") or not (isinstance(dtype, Constant) and dtype.value is None):
        return None
    assert isinstance(m, Apply)
    a, b = m.inputs[1:]
    ka, kb = kind(a, ctx.facts), kind(b, ctx.facts)
    sa, sb = shape_of(ka), shape_of(kb)
    if not is_f8(ka) or not is_f8(kb) or sa is None or sb is None or len(sa) < 2 or \
            len(sb) < 2:
        return None
    n = max(len(sa), len(sb))
    axes = reduced_axes(axis, n)
    if axes is None:
        return None
    rows, cols = n - 2 in axes and sa[-2] > 1, n - 1 in axes and sb[-1] > 1
    if not rows and not cols:
        return None
    g = node.graph
    if rows:
        a = g.apply(P["np.sum"], a, -2, None, True, loc=node.loc)
    if cols:
        b = g.apply(P["np.sum"], b, -1, None, True, loc=node.loc)
    product = g.apply(P["matmul"], a, b, loc=node.loc)
    return g.apply(P["np.sum"], product, axis, dtype, keepdims, loc=node.loc, name=node.name)


@rewrite("np.sum")
def _sum_of_products_added(ctx: Context, node: Apply) -> Node | None:
    """`np.sum(a @ b + c @ d, axis)` over the products' rows or columns is the sum of
    the two sums, where both products have the sum's operand's shape: each then becomes
    a product with one row or column (`_sum_before_product`), as in the tangent of a
    gradient that sums a product over a batch (`np.sum(d @ Q, axis=1)` of the GMM). The
    same sums of products, added in another order."""
    s, axis, dtype, keepdims = node.inputs[1:]
    if not is_prim(s, "add") or not (isinstance(dtype, Constant) and dtype.value is None):
        return None
    assert isinstance(s, Apply)
    ks = kind(s, ctx.facts)
    shape = shape_of(ks)
    if not is_f8(ks) or shape is None or len(shape) < 2:
        return None
    axes = reduced_axes(axis, len(shape))
    if axes is None or not (len(shape) - 2 in axes or len(shape) - 1 in axes):
        return None
    for m in s.inputs[1:]:
        if not is_prim(m, "matmul") or kind(m, ctx.facts) != ks:
            return None
    g = node.graph
    a, b = (g.apply(P["np.sum"], m, axis, dtype, keepdims, loc=node.loc)
            for m in s.inputs[1:])
    return g.apply(P["add"], a, b, loc=node.loc, name=node.name)


@rewrite("np.sum")
def _sum_of_product_as_dot(ctx: Context, node: Apply) -> Node | None:
    """`np.sum(a * b)` of two float64 vectors of one shape is their dot product `a @ b`
    (a NumPy float64 either way), without the product's temporary: the gradient of a
    coefficient that scales a vector (`c[k] * x ** k`), as written by hand. The same
    products, added in another order."""
    m, axis, dtype, keepdims = node.inputs[1:]
    if not is_prim(m, "mul") or not _constant_is(axis, None) or \
            not _constant_is(dtype, None) or not _constant_is(keepdims, False):
        return None
    a, b = m.inputs[1:]
    ka, kb = kind(a, ctx.facts), kind(b, ctx.facts)
    sa = shape_of(ka)
    if not is_f8(ka) or not is_f8(kb) or sa is None or len(sa) != 1 or shape_of(kb) != sa:
        return None
    return node.graph.apply(P["matmul"], a, b, loc=node.loc, name=node.name)


@rewrite("np.sum")
def _weighted_sum(ctx: Context, node: Apply) -> Node | None:
    """A sum of a matrix (or a stack of them) scaled along the other axis is a matrix
    product, without the elementwise product's temporary. The same products, added in
    another order.

    - Rows scaled row by row: `np.sum(c[..., :, None] * a, axis=-2, keepdims=True)` is
      `c[..., None, :] @ a` (c of shape a.shape[:-1]). NumPy sums the rows of a matrix of
      few columns slowly (3-14x the product, for 1000 rows of 2 to 64 columns).
    - Columns scaled column by column: `np.sum(a * c[None, :], axis=-1)` is `a @ c` (a of
      shape (n, m), c of shape (m,)), as the gradient of `x @ W` in the vector x is
      written; under `tl.vmap` the product is one matrix product for the whole batch
      where the elementwise product would be a temporary of a matrix for each example."""
    x, axis, dtype, keepdims = node.inputs[1:]
    if not is_prim(x, "mul") or not _constant_is(dtype, None) or \
            not isinstance(keepdims, Constant) or type(keepdims.value) is not bool or \
            not isinstance(axis, Constant):
        return None
    assert isinstance(x, Apply)
    for e, a in (x.inputs[1:], x.inputs[:0:-1]):
        if not is_prim(e, "np.expand_dims"):
            continue
        assert isinstance(e, Apply)
        c, at = e.inputs[1:]
        kc, ka = kind(c, ctx.facts), kind(a, ctx.facts)
        sc, sa = shape_of(kc), shape_of(ka)
        if not is_f8(kc) or not is_f8(ka) or sc is None or sa is None or len(sa) < 2 or \
                not isinstance(at, Constant):
            continue
        scaled = normalized_axes(at.value, len(sa))
        summed = normalized_axes(axis.value, len(sa))
        g = node.graph
        if sc == sa[:-1] and scaled == (len(sa) - 1,) and summed == (len(sa) - 2,):
            if not keepdims.value and len(sa) == 2:  # (a vector times a matrix: a vector)
                return g.apply(P["matmul"], c, a, loc=node.loc, name=node.name)
            row = g.apply(P["np.expand_dims"], c, -2, loc=node.loc)
            product = g.apply(P["matmul"], row, a, loc=node.loc,
                              name=node.name if keepdims.value else "")
            return product if keepdims.value else \
                g.apply(P["np.squeeze"], product, -2, loc=node.loc, name=node.name)
        if len(sa) == 2 and sc == sa[1:] and scaled == (0,) and summed == (1,) and \
                not keepdims.value:
            return g.apply(P["matmul"], a, c, loc=node.loc, name=node.name)
    return None


@rewrite("getitem_sens")
def _getitem_sens_reshape(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of `x[None, :, :]` (new axes and whole slices only) is `d` reshaped
    to x's shape."""
    d, x, index = node.inputs[1:]
    kx = kind(x, ctx.facts)
    if not (isinstance(index, Constant) and type(index.value) is tuple) or \
            (shape := shape_of(kx)) is None or not is_f8(kx) or not is_f8(kind(d, ctx.facts)):
        return None
    parts = index.value
    # (`type(p) is slice` first: an index array's `==` is elementwise.)
    if not all(p is None or (type(p) is slice and p == slice(None)) for p in parts) or \
            sum(p is not None for p in parts) > len(shape):
        return None
    return node.graph.apply(P["reshape_like"], d, x, loc=node.loc, name=node.name)


@rewrite("getitem_sens")
def _gather_sens_distinct(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a gather `x[np.arange(n), labels]` (integer arrays, one of them
    `np.arange(n)` spanning the arrays' broadcast shape, with whole slices): the index
    names each position at most once, so the sensitivity is d assigned into zeros, not
    added with `np.add.at` (the same values; an added -0.0 comes out as -0.0, not 0.0).
    A number broadcast to the gather's shape is assigned as it is."""
    d, x, index = node.inputs[1:]
    kx = kind(x, ctx.facts)
    sx = shape_of(kx)
    if not is_f8(kx) or not sx or not _distinct_positions(index, ctx.facts):
        return None
    if is_prim(d, "expand_reduced") and isinstance(d.inputs[3], Constant) and \
            d.inputs[3].value is None and kind(d.inputs[1], ctx.facts) == FLOAT:
        d = d.inputs[1]
    elif not is_f8(kind(d, ctx.facts)):
        return None
    g = node.graph
    zeros = g.apply(P["np.zeros"], Constant(sx), Constant(float), loc=node.loc)
    return g.apply(P["index_update"], zeros, index, d, loc=node.loc, name=node.name)


@rewrite("getitem_sens")
def _gather_sens_small(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a gather `x[idx]` by one integer array (the GMM's `packed[idx]`,
    a d x d matrix gathered from a packed row) of fewer than `runtime._BINCOUNT_MIN`
    positions: d added into zeros with `np.add.at` (`index_add`), what `getitem_sens`
    does for it after its tests of the types (six of its seven microseconds on a 10 x 10
    gather). The same sums, in the same order."""
    from ..runtime import _BINCOUNT_MIN

    d, x, index = node.inputs[1:]
    kx, ki, kd = (kind(n, ctx.facts) for n in (x, index, d))
    sx, si = shape_of(kx), shape_of(ki)
    if not is_f8(kx) or not sx or si is None or dtype_of(ki) != "i8" or not is_f8(kd) or \
            shape_of(kd) != si + sx[1:] or size_of(si + sx[1:]) >= _BINCOUNT_MIN or \
            not never_zero(d, ctx.facts):
        return None
    g = node.graph
    zeros = g.apply(P["np.zeros"], Constant(sx), Constant(float), loc=node.loc)
    return g.apply(P["index_add"], zeros, index, d, loc=node.loc, name=node.name)


def _distinct_positions(index: Node, facts: LoopFacts | None) -> bool:
    """Whether `index` is a tuple of whole slices and integer arrays, one of which is
    `np.arange(n)` of the arrays' broadcast shape (n,): each position at most once."""
    parts = tuple_items(index) if not is_prim(index, "make_tuple") else \
        list(index.inputs[1:])
    if not parts:
        return False
    shapes, counted = [], False
    for p in parts:
        if isinstance(p, Constant) and isinstance(p.value, slice) and p.value == slice(None):
            continue  # (a constant array index, the data closed over, is tested below)
        k = kind(p, facts)
        s = shape_of(k)
        if dtype_of(k) != "i8" or s is None:
            return False
        shapes.append(s)
        counted = counted or (is_prim(p, "np.arange") and len(s) == 1)
    return counted and len(set(shapes)) == 1 and len(shapes[0]) == 1


# Matrix products `swapaxes(a, -1, -2) @ b` (the gradient of a product in its right
# factor) whose contracted axis has at least BLOCK_MIN_ROWS rows and whose result is at
# least BLOCK_MIN_SIDE and at most BLOCK_MAX_SIDE on each side are computed in blocks of
# at most BLOCK_ROWS rows (`runtime.matmul_tn`). Measured with NumPy's OpenBLAS (0.3.31,
# one thread), blocks take 0.60x the time of one product for 10 products 1000x64 by
# 1000x64, 0.70x for 4 of 1000x32 by 1000x32, 0.87-0.90x for one of 1000-4000 rows; they
# are slower for results of 10x10 or less (the calls cost more than they save) and of
# 128x128 or more (the product is bound by arithmetic, not memory).
BLOCK_ROWS = 200


BLOCK_MIN_ROWS = 400


BLOCK_MIN_SIDE, BLOCK_MAX_SIDE = 32, 64


def block_products(root: Graph) -> int:
    """Compute the long, thin-result products in blocks (see BLOCK_ROWS), on the final
    program; returns how many."""
    replace: dict[int, Node] = {}
    facts: LoopFacts | None = None
    for g in reachable_graphs(root):
        for node in graph_nodes(g):
            if not is_prim(node, "matmul") or not is_prim(node.inputs[1], "np.swapaxes"):
                continue
            assert isinstance(node, Apply)
            facts = facts or LoopFacts(root)
            t = _transposed(node.inputs[1], facts)
            if t is None:
                continue
            a, b = t[0], node.inputs[2]
            ka, kb = kind(a, facts), kind(b, facts)
            sa, sb = shape_of(ka), shape_of(kb)
            if not (is_f8(ka) and is_f8(kb) and sa is not None and sb is not None and
                    len(sa) >= 2 and len(sb) >= 2 and sa[-2] == sb[-2] and
                    sa[-2] >= BLOCK_MIN_ROWS and
                    BLOCK_MIN_SIDE <= min(sa[-1], sb[-1]) and
                    max(sa[-1], sb[-1]) <= BLOCK_MAX_SIDE):
                continue
            n = sa[-2]
            count = -(-n // BLOCK_ROWS)
            replace[node.id] = g.apply(P["matmul_tn"], a, b, -(-n // count), loc=node.loc,
                                       name=node.name)
    if replace:
        apply_replacements(root, replace, {}, None, pure)
    return len(replace)


@rewrite("add")
def _outer_products_as_one(ctx: Context, node: Apply) -> Node | None:
    """A sum of outer products of float64 vectors, `u1[:, None] * v1 + u2[:, None] * v2
    + ...` (the gradient of a matrix A used in several products `A @ y`: RK4's four
    stages), as one product `np.stack((u1, u2, ...), -1) @ np.stack((v1, v2, ...))`: two
    stacks and a product instead of a broadcast, a product and a sum per term. The same
    sums of products, added in another order."""
    terms: list[Node] = []
    if not _sum_terms(node, terms, 0) or len(terms) < 2:
        return None
    us, vs = [], []
    for t in terms:
        found = _stacked_outers(t) or [_outer(t, ctx)]
        for pair in found:
            if pair is None:
                return None
            us.append(pair[0])
            vs.append(pair[1])
    kinds = {(kind(u, ctx.facts), kind(v, ctx.facts)) for u, v in zip(us, vs, strict=True)}
    if len(kinds) != 1 or not all(is_f8(k) and ndim_of(k) == 1 for k in next(iter(kinds))):
        return None
    g = node.graph
    left = g.apply(P["np.stack"], g.apply(P["make_tuple"], *us), -1, loc=node.loc)
    right = g.apply(P["np.stack"], g.apply(P["make_tuple"], *vs), 0, loc=node.loc)
    return g.apply(P["matmul"], left, right, loc=node.loc, name=node.name)


def _sum_terms(node: Node, terms: list[Node], depth: int) -> bool:
    """The terms of a tree of `+` (at most 16 of them)."""
    if is_prim(node, "add") and depth < 4:
        return all(_sum_terms(t, terms, depth + 1) for t in node.inputs[1:])
    terms.append(node)
    return len(terms) <= 16


def _stacked_outers(node: Node) -> list[tuple[Node, Node] | None] | None:
    """The pairs (u, v) of `np.stack(us, -1) @ np.stack(vs)` (what this rewrite made of
    the first terms of a longer sum, whose inner `+` it matched first)."""
    if not is_prim(node, "matmul"):
        return None
    a, b = node.inputs[1:]
    if not (is_prim(a, "np.stack") and is_prim(b, "np.stack") and
            _constant_is_value(a.inputs[2], -1) and _constant_is_value(b.inputs[2], 0)):
        return None
    us, vs = tuple_items(a.inputs[1]), tuple_items(b.inputs[1])
    if us is None or vs is None or len(us) != len(vs):
        return None
    return list(zip(us, vs, strict=True))


def _constant_is_value(node: Node, value: int) -> bool:
    return isinstance(node, Constant) and type(node.value) is int and node.value == value


def _outer(node: Node, ctx: Context, row: bool = False) -> tuple[Node, Node] | None:
    """(u, v) where node is the outer product `u[:, None] * v` of the float64 vectors u
    and v (either order; the column as `np.expand_dims(u, -1)` or `1`, or an index of a
    slice and one `None`: `_inserted_axis`); with `row`, v may also be written as a row,
    `v[None, :]` or `np.expand_dims(v, 0)`."""
    if not is_prim(node, "mul"):
        return None
    a, b = node.inputs[1:]
    for e, v in ((a, b), (b, a)):
        column = _inserted_axis(e, ctx.facts)
        if column is None or column[1] != -1:
            continue
        u = column[0]
        as_row = _inserted_axis(v, ctx.facts) if row else None
        if as_row is not None and as_row[1] == -2:
            v = as_row[0]
        ku, kv = kind(u, ctx.facts), kind(v, ctx.facts)
        if is_f8(ku) and is_f8(kv) and ndim_of(ku) == 1 and ndim_of(kv) == 1:
            return u, v
    return None


def python_spellings(root: Graph, facts: LoopFacts | None = None) -> int:
    """Spell array operations the way that costs the Python backend least, on the final
    program, where kinds prove the spellings compute the same (bit for bit); returns how
    many changed. Measured with NumPy 2.4 on small arrays (per call, one thread):

    - a reduction of an array, `np.sum(x)`, `np.max(x, axis=1)`, ..., as the array's
      method `x.sum()`: NumPy's function checks its arguments in Python before calling
      the method's reduction (11 µs against 5 for `np.sum` of 1000 floats, 14 against 7
      for `np.max`). Where the receiver is an array with a method of the function's
      name and parameters (the primitives' table, `METHODS`), and no `dtype`, `out` or
      `keepdims` is given.
    - `np.expand_dims(x, axis)` of an array of known rank as the index `x[:, None]`
      (a view either way; 14 µs against 0.8: the function normalizes its axes in
      Python), what the reverse rules of reductions and products write.
    - `np.stack((a, b, ...))` of float64 arrays of one shape as `np.array((a, b, ...))`
      (a new array of the same values; 21-25 µs against 4-7 for four vectors of 8), and
      `np.stack(vectors, -1)` as its transpose, `np.array(vectors).T` (a view of a new
      array): RK4's gradient of its matrix, a sum of four outer products per step, is
      `np.stack(us, -1) @ np.stack(vs)` (`_outer_products_as_one`).
    - a stack of outer products, `u[..., :, None] * v[..., None, :]` of float64 arrays
      of one leading shape (per-example weight gradients: the gradient of `W @ x` under
      `tl.vmap`), as `np.einsum("...i,...j->...ij", u, v)` (`_stacked_outer`): each
      element one product either way, but the broadcast multiply calls its inner loop
      once per row of the result (16,384 calls of 64 for a (256, 64, 64) result), where
      einsum runs one loop (0.54-0.72x the time from 2,000 elements up; 1.45x for a
      result of 6 to 64 elements, where the call costs more: only from OUTER_MIN).

    For the Python backend only (Numba has no `np.array` of a tuple of arrays). `facts`:
    facts about the program as it is (the optimizer's last round's), else made at the
    first question."""
    replace: dict[int, Node] = {}
    for g in reachable_graphs(root):
        for node in graph_nodes(g):
            if not isinstance(node, Apply):
                continue
            p = prim_of(node)
            if p is None:
                continue
            if p.name == "mul":
                facts = facts or LoopFacts(root)
                new = _stacked_outer(node, facts)
                if new is not None:
                    replace[node.id] = new
            elif p.reduction is not None or p.name in ("np.expand_dims", "np.stack"):
                facts = facts or LoopFacts(root)
                new = _python_spelling(node, p.name, facts)
                if new is not None:
                    replace[node.id] = new
    if replace:
        apply_replacements(root, replace, {}, None, pure)
    return len(replace)


OUTER_MIN = 2048


def _stacked_outer(node: Apply, facts: LoopFacts) -> Node | None:
    """`np.einsum("...i,...j->...ij", u, v)` for `node`, `u[..., :, None] * v[..., None,
    :]` (either order; `np.expand_dims` with axis -1 / -2, or an index of slices and one
    `None`) where u and v are float64 arrays of one known shape but for the last axis,
    with a leading axis, and the result has at least OUTER_MIN elements (see
    `python_spellings`)."""
    a, b = node.inputs[1:]
    ia, ib = _inserted_axis(a, facts), _inserted_axis(b, facts)
    if ia is None or ib is None:
        return None
    (u, at), (v, bt) = (ia, ib) if ia[1] == -1 else (ib, ia)
    if at != -1 or bt != -2:
        return None
    ku, kv = kind(u, facts), kind(v, facts)
    su, sv = shape_of(ku), shape_of(kv)
    if not (is_f8(ku) and is_f8(kv) and su is not None and sv is not None and
            len(su) == len(sv) >= 2 and su[:-1] == sv[:-1] and
            size_of(su) * sv[-1] >= OUTER_MIN):
        return None
    g = node.graph
    return g.apply(P["np.einsum"], Constant("...i,...j->...ij"),
                   g.apply(P["make_tuple"], u, v), loc=node.loc, name=node.name)


def _inserted_axis(e: Node, facts: LoopFacts | None) -> tuple[Node, int] | None:
    """(x, axis) where e is x with one new axis of length 1 at `axis` (negative: -1 last,
    -2 before the last), as `np.expand_dims(x, axis)` (axis an int or a tuple of one)
    or `x[:, ..., None, :]`."""
    if not isinstance(e, Apply) or len(e.inputs) != 3 or \
            not isinstance(e.inputs[2], Constant):
        return None
    x, axis = e.inputs[1], e.inputs[2].value
    nd = ndim_of(kind(x, facts))
    if nd is None:
        return None
    if is_prim(e, "np.expand_dims") and type(axis) is tuple and len(axis) == 1:
        axis = axis[0]
    if is_prim(e, "np.expand_dims") and type(axis) is int and -nd - 1 <= axis <= nd:
        return x, axis - nd - 1 if axis >= 0 else axis
    if is_prim(e, "getitem") and type(axis) is tuple and len(axis) == nd + 1 and \
            sum(i is None for i in axis) == 1 and \
            all(i is None or (type(i) is slice and i == slice(None)) for i in axis):
        return x, axis.index(None) - nd - 1
    return None


def _python_spelling(node: Apply, name: str, facts: LoopFacts) -> Node | None:
    g = node.graph
    x = node.inputs[1]
    if name == "np.stack":
        return _stack_as_array(node, facts)
    shape = shape_of(kind(x, facts))  # (an array: a known shape)
    if shape is None:
        return None
    if name == "np.expand_dims":
        axis = node.inputs[2]
        if not isinstance(axis, Constant) or type(axis.value) not in (int, tuple):
            return None
        out = len(shape) + (1 if type(axis.value) is int else len(axis.value))
        try:
            axes = normalized_axes(axis.value, out)
        except (TypeError, ValueError):
            return None
        if axes is None or len(set(axes)) != len(axes):
            return None
        index = tuple(None if i in axes else slice(None) for i in range(out))
        return g.apply(P["getitem"], x, Constant(index), loc=node.loc, name=node.name)
    method = METHODS.get(name[len("np."):]) if name.startswith("np.") else None
    if method is None or method.alias != name or \
            method.spec.partition(",")[2] != P[name].spec.partition(",")[2]:
        return None
    params = [s.strip().partition("=")[0] for s in P[name].spec.split(",")]
    args = node.inputs[1:]
    if len(args) != len(params):
        return None
    for param, a in zip(params[2:], args[2:], strict=True):
        # (no dtype, out or keepdims: their defaults, as the method takes them)
        if not isinstance(a, Constant) or \
                a.value is not (False if param == "keepdims" else None):
            return None
    along = args[1] if len(args) > 1 else None
    if along is not None and not (isinstance(along, Constant) and
                                  (along.value is None or type(along.value) is int)):
        return None
    return g.apply(method, *args, loc=node.loc, name=node.name)


def _stack_as_array(node: Apply, facts: LoopFacts) -> Node | None:
    """`np.stack` of a tuple display of float64 arrays of one known shape, at axis 0, or
    of vectors at their last axis (see `python_spellings`)."""
    items = tuple_items(node.inputs[1])
    axis = node.inputs[2]
    if not items or not isinstance(axis, Constant) or type(axis.value) is not int:
        return None
    kinds = {kind(i, facts) for i in items}
    k = next(iter(kinds))
    shape = shape_of(k)
    if len(kinds) != 1 or not is_f8(k) or shape is None or not shape:
        return None
    g = node.graph
    if axis.value == 0:
        return g.apply(P["np.array"], node.inputs[1], loc=node.loc, name=node.name)
    if len(shape) == 1 and axis.value in (1, -1):
        made = g.apply(P["np.array"], node.inputs[1], loc=node.loc)
        return g.apply(P["getattr"], made, Constant("T"), loc=node.loc, name=node.name)
    return None


def _row_broadcast(node: Node, facts: LoopFacts | None) -> Node | None:
    """b, where node is `broadcast_like(b, y)` for a float64 stack of rows b (one row:
    `b.shape[-2] == 1`) and y of b's shape but for more rows: every row of the result is
    b's (the tangent of `x[None, :, :] - mu[:, None, :]` in mu, `-mu_dot[:, None, :]`,
    broadcast to the points)."""
    if not is_prim(node, "broadcast_like"):
        return None
    assert isinstance(node, Apply)
    b, y = node.inputs[1:3]
    kb, ky = kind(b, facts), kind(y, facts)
    sb, sy = shape_of(kb), shape_of(ky)
    if not is_f8(kb) or not is_f8(ky) or sb is None or sy is None or len(sb) != len(sy) or \
            len(sb) < 2 or sb[-2] != 1 or sy[-2] <= 1 or sb[:-2] != sy[:-2] or \
            sb[-1] != sy[-1]:
        return None
    return b


@rewrite("matmul")
def _product_of_equal_rows(ctx: Context, node: Apply) -> Node | None:
    """A stack of equal rows times w is that row times w, broadcast to the rows:
    `broadcast_like(b, y) @ w` is `np.broadcast_to(b @ w, shape)` (one row's product,
    not one per row; the same products). Its transpose times a, `swapaxes(
    broadcast_like(b, y), -1, -2) @ a`, contracts the rows: it is `swapaxes(b, -1, -2) @
    np.sum(a, axis=-2, keepdims=True)` (the same products, added in another order)."""
    left, right = node.inputs[1:]
    kr, kn = kind(right, ctx.facts), kind(node, ctx.facts)
    sr, sn = shape_of(kr), shape_of(kn)
    if not is_f8(kr) or not is_f8(kn) or sr is None or sn is None or len(sr) < 2:
        return None
    g = node.graph
    b = _row_broadcast(left, ctx.facts)
    if b is not None:
        row = g.apply(P["matmul"], b, right, loc=node.loc)
        return g.apply(P["np.broadcast_to"], row, Constant(sn), loc=node.loc, name=node.name)
    t = _transposed(left, ctx.facts)
    b = _row_broadcast(t[0], ctx.facts) if t is not None else None
    if b is None or sr[-2] <= 1:
        return None
    col = g.apply(P["np.swapaxes"], b, -1, -2, loc=node.loc)
    total = g.apply(P["np.sum"], right, -2, None, True, loc=node.loc)
    return g.apply(P["matmul"], col, total, loc=node.loc, name=node.name)


@rewrite("eq", "ne")
def _shapes_compared(ctx: Context, node: Apply) -> Node | None:
    """`np.shape(a) != np.shape(b)` (or `==`) where the kinds give both shapes: a
    constant (the check a masked loop's select makes, `batch_rules.kept_unless_every`,
    before `np.where` would broadcast a width 1 against another)."""
    a, b = node.inputs[1:3]
    if not (is_prim(a, "np.shape") and is_prim(b, "np.shape")):
        return None
    sa = shape_of(kind(a.inputs[1], ctx.facts))
    sb = shape_of(kind(b.inputs[1], ctx.facts))
    if sa is None or sb is None:
        return None
    return Constant((sa == sb) is (prim_of(node) is P["eq"]))
