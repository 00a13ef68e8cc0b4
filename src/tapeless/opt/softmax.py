"""The sensitivity of the max in a stable log-sum-exp, which cancels.

`lse = log(Σ_k exp(a_k − mx)) + mx` does not depend on `mx` at all, so the sensitivity
that reaches `mx = max_k a_k` is zero: its two parts, `d` from `+ mx` and
`−Σ_k (d / s) · y_k` from `a − mx` (with `y = exp(a − mx)`, `s = Σ_k y`), cancel, and the
max's backpropagator (which shares that zero among the tied maxima) adds nothing to the
sensitivity of `a`. The derivative code computes the two parts, subtracts them and shares
the rounding noise; `max_share_cancels` recognizes that share from the program's
structure, so that the optimizer can drop it. This module only reads the IR."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..ir.nodes import Apply, Constant, Graph, Node, prim_of
from .kinds import (
    FLOAT,
    INT,
    SCALAR,
    applies,
    dtype_of,
    kind,
    normalized_axes,
    prim_name,
    shape_of,
)
from .shift import invariant_in, objective_of

if TYPE_CHECKING:
    from .loop_facts import LoopFacts




def _args(node: Node, names: tuple[str, ...]) -> list[Node] | None:
    if not isinstance(node, Apply):
        return None
    return list(node.inputs[1:]) if prim_name(node) in names else None


def reduced_axes(axis: Node, ndim: int) -> tuple[int, ...] | None:
    """The axes a reduction's constant `axis` names (None: all of them), sorted and
    non-negative; None where unknown or refused by NumPy (see `normalized_axes`)."""
    if not isinstance(axis, Constant):
        return None
    return tuple(range(ndim)) if axis.value is None else normalized_axes(axis.value, ndim)


def _reduction(node: Node, reduction: str, ndim: int
               ) -> tuple[Node, tuple[int, ...], bool] | None:
    """(a, axes, keepdims) for `np.sum(a, axis, None, keepdims)` (or a max: no dtype)."""
    if not isinstance(node, Apply):  # (then it applies no primitive)
        return None
    p = prim_of(node)
    if p is None or p.reduction != reduction:
        return None
    args = list(node.inputs[1:])
    if reduction == "sum" and not (isinstance(args[2], Constant) and args[2].value is None):
        return None
    keep = args[-1]
    axes = reduced_axes(args[1], ndim)
    if axes is None or not isinstance(keep, Constant) or type(keep.value) is not bool:
        return None
    return args[0], axes, keep.value


def _spread(node: Node, axes: tuple[int, ...], ndim: int) -> tuple[Node, bool]:
    """(r, expanded) where `node` puts the reduced axes back into `r`
    (`np.expand_dims(r, axes)`, `expand_reduced(r, x, axes, False)`), else (node, False)."""
    if not isinstance(node, Apply):  # (then it applies no primitive)
        return node, False
    name = prim_name(node)
    # (`expand_dims` names the axes of its result, which has ndim dimensions; its axis
    # is never None.)
    if name == "np.expand_dims" and isinstance(node.inputs[2], Constant) and \
            normalized_axes(node.inputs[2].value, ndim) == axes:
        return node.inputs[1], True
    if name == "expand_reduced" and isinstance(node.inputs[4], Constant) and \
            node.inputs[4].value is False and reduced_axes(node.inputs[3], ndim) == axes:
        return node.inputs[1], True
    if name == "getitem" and _new_axes(node.inputs[2], ndim) == axes:
        return node.inputs[1], True
    return node, False


def _new_axes(index: Node, ndim: int) -> tuple[int, ...] | None:
    """The axes `r[index]` adds to r, where index is whole slices and `None`s (`mx[:,
    None]`, `mx[None, :]`) and the result has ndim axes: expand_dims at those axes."""
    if not isinstance(index, Constant):
        return None
    parts = index.value if type(index.value) is tuple else (index.value,)
    if not all(p is None or p == slice(None) for p in parts) or len(parts) > ndim:
        return None
    return tuple(i for i, p in enumerate(parts) if p is None)


def _aligned(expanded: bool, keepdims: bool, axes: tuple[int, ...]) -> bool:
    """Whether a reduction's result (kept axes or not) broadcast back over the reduced
    array lines up with the slices it was reduced from."""
    if expanded:
        return not keepdims
    return keepdims or axes == tuple(range(len(axes)))  # leading axes: the rest line up


def _shape(node: Node, facts: LoopFacts | None) -> tuple[int, ...] | None:
    k = kind(node, facts)
    return () if k in (FLOAT, INT, SCALAR) else shape_of(k)


def _factors(node: Node) -> list[tuple[Node, Node]]:
    """The two orders of `x * y`."""
    if not applies(node, "mul"):
        return []
    a, b = node.inputs[1:]
    return [(a, b), (b, a)]


def _same(a: Node, b: Node, facts: LoopFacts | None) -> bool:
    """Whether a and b hold the same value: one node, equal float constants, or the
    sensitivity `sens_of(x, like)` of one x for two values of one known array kind (x,
    or a zero of that kind)."""
    if a is b:
        return True
    if isinstance(a, Constant) and isinstance(b, Constant):
        return type(a.value) is float and type(b.value) is float and a.value == b.value
    if isinstance(a, Apply) and isinstance(b, Apply) and \
            prim_name(a) == prim_name(b) == "sens_of" and a.inputs[1] is b.inputs[1]:
        ka, kb = kind(a.inputs[2], facts), kind(b.inputs[2], facts)
        return shape_of(ka) is not None and ka == kb
    return False


class _Max:
    """`mx = max(a, axes, keepdims)` of a float array of known shape."""

    def __init__(self, node: Node, a: Node, axes: tuple[int, ...], keepdims: bool,
                 shape: tuple[int, ...]):
        self.node, self.a, self.axes, self.keepdims, self.shape = node, a, axes, keepdims, shape

    def spread(self, node: Node) -> bool:
        """Whether `node` is mx broadcast back over a, lined up with a's slices."""
        inner, expanded = _spread(node, self.axes, len(self.shape))
        return inner is self.node and _aligned(expanded, self.keepdims, self.axes)


def _max_of(a: Node, spread_mx: Node, facts: LoopFacts | None) -> _Max | None:
    """The max that `spread_mx` broadcasts, if it is a max of `a` over some axes."""
    k = kind(a, facts)
    shape = shape_of(k)
    if shape is None or dtype_of(k) != "f8":
        return None
    ndim = len(shape)
    for candidate in (spread_mx, _spread_source(spread_mx)):
        if candidate is None:
            continue
        found = _reduction(candidate, "max", ndim)
        if found is not None and found[0] is a:
            mx = _Max(candidate, a, found[1], found[2], shape)
            return mx if mx.spread(spread_mx) else None
    return None


def _spread_source(node: Node) -> Node | None:
    if isinstance(node, Apply) and prim_name(node) in _SPREADS:
        return node.inputs[1]
    return None


# The primitives whose first input's values `_spread_source` follows into their result
# (repeated along new or broadcast axes, or read): a table by primitive, like the rules.
_SPREADS = {"np.expand_dims": "new axes", "expand_reduced": "broadcast axes",
            "getitem": "a part"}


def _summed(total: Node, facts: LoopFacts | None) -> tuple[Node, Node] | None:
    """(w, axis) where `total` sums w over `axis` (None: all axes): `np.sum(w, axis)`, or
    `unbroadcast(w, x)` for a number x (before the optimizer rewrites it as a sum)."""
    if not isinstance(total, Apply):  # (then it applies no primitive)
        return None
    p = prim_of(total)
    if p is not None and p.reduction == "sum":
        return total.inputs[1], total.inputs[2]
    if prim_name(total) == "unbroadcast" and kind(total.inputs[2], facts) in (FLOAT, SCALAR):
        return total.inputs[1], Constant(None)
    return None


def _softmax_sum(total: Node, facts: LoopFacts | None, negated: bool = False
                 ) -> tuple[_Max, Node, Node] | None:
    """(mx, d, w) where `total` is `Σ_k w_k` (`−Σ_k w_k` if `negated`: the sum of −w)
    with `w = (d / s) · y`, `y = exp(a − mx)`, `s = Σ_k y` and `mx = max_k a`: a sum
    equal to d (s ≥ 1: the max's own term is 1)."""
    found = _summed(total, facts)
    if found is None:
        return None
    w, axis = found
    if negated:
        if not applies(w, "neg"):
            return None
        w = w.inputs[1]
    for f, y in _factors(w):
        sub = _args(y, ("np.exp",))
        if sub is None or not applies(sub[0], "sub"):
            continue
        a, spread_mx = sub[0].inputs[1:]
        mx = _max_of(a, spread_mx, facts)
        if mx is None:
            continue
        ndim = len(mx.shape)
        ratio, expanded = _spread(f, mx.axes, ndim)
        div = _args(ratio, ("truediv",))
        if reduced_axes(axis, ndim) != mx.axes or div is None:
            continue
        d, s = div
        normalizer = _reduction(s, "sum", ndim)
        if normalizer is None or normalizer[0] is not y or normalizer[1] != mx.axes or \
                not _aligned(expanded, normalizer[2], mx.axes):
            continue
        # d / s and w have the shapes of s and y: d is one number per slice, or one number.
        if _shape(w, facts) != mx.shape or _shape(ratio, facts) is None or \
                _shape(ratio, facts) != _shape(s, facts):
            continue
        return mx, d, w
    return None


def _cancelling(delta: Node, facts: LoopFacts | None) -> tuple[_Max, Node] | None:
    """(mx, w) where `delta` is `d − Σ_k w_k` for a softmax sum (see `_softmax_sum`) and
    `d` laid out like the sum: mathematically zero."""
    if not isinstance(delta, Apply):  # (then it applies no primitive)
        return None
    name = prim_name(delta)
    pairs: list[tuple[Node, Node, bool]] = []  # (d, total, whether total sums −w)
    if name == "sub":
        pairs = [(delta.inputs[1], delta.inputs[2], False)]
    elif name in ("add", "gadd"):
        a, b = delta.inputs[1:]
        for p, n in ((a, b), (b, a)):
            if applies(n, "neg"):
                pairs.append((p, n.inputs[1], False))
            elif prim_name(n) == "unbroadcast":
                pairs.append((p, n, True))
    for p, total, negated in pairs:
        found = _softmax_sum(total, facts, negated)
        if found is None:
            continue
        mx, d, w = found
        reshaped = prim_of(p)
        plain = p.inputs[1] if isinstance(p, Apply) and reshaped is not None and reshaped.reshapes \
            else p
        if not _same(plain, d, facts):
            continue
        # The same numbers in the same order: d as it is (one number, or the sum's
        # shape), or d reshaped to the sum's shape (a reshape keeps the order).
        sp, st, sd = _shape(p, facts), _shape(total, facts), _shape(d, facts)
        if plain is p and sp == () and sd == ():
            return mx, w
        if sp is not None and sp == st and sd is not None and math.prod(sd) == math.prod(sp):
            return mx, w
    return None


def _shares(node: Node, facts: LoopFacts | None) -> list[tuple[_Max, Node]]:
    """(mx, delta) where `node` is the sensitivity the max mx passes to its array a,
    `(delta / count) · hits` with `hits = (a == mx)` and `count = Σ_k hits`."""
    found = []
    for share, hits in _factors(node):
        eq = _args(hits, ("np.equal",))
        if eq is None:
            continue
        for a, spread_mx in (eq, eq[::-1]):
            mx = _max_of(a, spread_mx, facts)
            if mx is None:
                continue
            ratio, expanded = _spread(share, mx.axes, len(mx.shape))
            div = _args(ratio, ("truediv",))
            count = _reduction(div[1], "sum", len(mx.shape)) if div is not None else None
            if div is None or count is None or count[0] is not hits or \
                    count[1] != mx.axes or not _aligned(expanded, count[2], mx.axes) or \
                    _shape(node, facts) != mx.shape:
                continue
            found.append((mx, div[0]))
    return found


def max_share_cancels(node: Node, facts: LoopFacts | None) -> Node | None:
    """w where `node` is the sensitivity the max of a log-sum-exp passes to `a`,
    `(delta / count) · hits` with `hits = (a == mx)` and `count = Σ_k hits`, for a
    `delta` that cancels (`_cancelling`) and a softmax term w of the same max.

    Wherever the max is a number, count ≥ 1 and the share is zero; where the max is NaN
    (a NaN in a's slice; count = 0), every entry of w's slice is NaN as well, so adding
    the share to anything that contains w changes nothing there either."""
    for mx, delta in _shares(node, facts):
        found = _cancelling(delta, facts)
        if found is not None and found[0].node is mx.node:
            return found[1]
    return None


def invariant_share(node: Node, root: Graph, facts: LoopFacts | None) -> _Max | None:
    """mx where `node` is the sensitivity the max mx passes to its array (see
    `max_share_cancels`) and the objective the program differentiates does not change
    when mx does (`shift.invariant_in`: log-softmax, softmax and log-sum-exp however
    spelled): its sensitivity `delta` is zero, and so is the share, wherever mx is a
    number. (Where it is not, see `softmax_term_in`.)"""
    candidates = _shares(node, facts)
    if not candidates:
        return None
    objective = objective_of(root)
    if objective is None:
        return None
    for mx, _ in candidates:
        m = mx.node
        assert isinstance(m, Apply)  # (a reduction)
        if invariant_in(objective, m, mx.axes, mx.keepdims, len(mx.shape), facts):
            return mx
    return None


def softmax_term_in(x: Node, mx: _Max, facts: LoopFacts | None, depth: int = 0) -> bool:
    """Whether the sum x has a term `f · y` with `y = exp(a − mx)` and f NaN across a
    slice wherever `s = Σ_k y` is (`_nan_with_normalizer`): NaN across a slice wherever
    mx is NaN or infinite there, as the share is, so that dropping the share keeps x's
    value there."""
    if applies(x, "add") or applies(x, "gadd"):
        return depth < 8 and any(softmax_term_in(t, mx, facts, depth + 1)
                                 for t in x.inputs[1:])
    for f, y in _factors(x):
        sub = _args(y, ("np.exp",))
        if sub is None or not applies(sub[0], "sub"):
            continue
        a, spread_mx = sub[0].inputs[1:]
        found = _max_of(a, spread_mx, facts)
        if found is not None and found.node is mx.node and _shape(x, facts) == mx.shape \
                and _nan_with_normalizer(f, y, mx, facts):
            return True
    return False


def _nan_with_normalizer(f: Node, y: Node, mx: _Max, facts: LoopFacts | None,
                         depth: int = 0) -> bool:
    """Whether f, broadcast against y, is NaN across each slice whose `s = Σ_k y` is:
    `r / s` (r of s's shape or of y's), or a sum, difference or product with such a
    term, of y's shape or one number per slice."""
    ndim = len(mx.shape)
    ratio, expanded = _spread(f, mx.axes, ndim)
    div = _args(ratio, ("truediv",))
    if div is not None:
        normalizer = _reduction(div[1], "sum", ndim)
        if normalizer is not None and normalizer[0] is y and normalizer[1] == mx.axes and \
                _aligned(expanded, normalizer[2], mx.axes) and \
                _shape(ratio, facts) in (_shape(div[1], facts), mx.shape):
            return True
    if depth < 4 and not expanded and _shape(f, facts) == mx.shape and \
            _propagates_nan(f):
        assert isinstance(f, Apply)
        return any(_nan_with_normalizer(t, y, mx, facts, depth + 1) for t in f.inputs[1:])
    return False


def _propagates_nan(node: Node) -> bool:
    """Whether `node` is an elementwise sum, difference, product or quotient (a nan in an
    input is a nan in the result, unlike `pow`'s `1 ** nan`)."""
    p = prim_of(node)
    return p is not None and ((p.cheap and p.elementwise and p.number_op) or p.name == "gadd")
