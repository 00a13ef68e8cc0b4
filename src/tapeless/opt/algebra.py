"""Algebraic simplification of arithmetic: neutral elements, negations, scalings folded
together, powers, IEEE helpers that cannot raise."""

from __future__ import annotations

import math

from ..ir.nodes import Apply, Constant, Node
from .kinds import FLOAT, INT, SCALAR, ArrayKind, Kind, dtype_of, is_f8, kind, shape_of
from .patterns import is_prim, size_of
from .rules import Context, P, rewrite
from .zeros import f8_number


@rewrite("neg")
def _double_negation(ctx: Context, node: Apply) -> Node | None:
    """`-(-a * b / c)` is `a * b / c`: a negation cancels one at the left end of a
    product (negation is exact, so the result is bit for bit the same)."""
    chain: list[Apply] = []
    x = node.inputs[1]
    while (is_prim(x, "mul") or is_prim(x, "truediv")) and isinstance(x, Apply):
        chain.append(x)
        x = x.inputs[1]
    if not is_prim(x, "neg") or not isinstance(x, Apply):
        return None
    inner = x.inputs[1]
    for link in reversed(chain):
        inner = link.graph.apply(link.inputs[0], inner, link.inputs[2], loc=link.loc)
    return inner


def _without_neutral(ctx: Context, pairs: tuple[tuple[Node, Node], ...], neutral: float
                     ) -> Node | None:
    """x, for the first (c, x) of `pairs` where c is the number `neutral` and x a float64
    array or number (not an int: 1.0 * 2 is a float)."""
    for c, x in pairs:
        if isinstance(c, Constant) and type(c.value) in (float, int) and c.value == neutral \
                and (is_f8(kind(x, ctx.facts)) or f8_number(x, ctx.facts)):
            return x
    return None


@rewrite("mul")
def _times_one(ctx: Context, node: Apply) -> Node | None:
    """`1.0 * x` and `x * 1` are `x` for float arrays and Python floats."""
    a, b = node.inputs[1:]
    return _without_neutral(ctx, ((a, b), (b, a)), 1.0)


@rewrite("add", "sub")
def _plus_zero(ctx: Context, node: Apply) -> Node | None:
    """`x + 0.0`, `0.0 + x` and `x - 0.0` are `x` for float64 arrays and Python floats
    (up to the sign of a zero: -0.0 + 0.0 is 0.0)."""
    a, b = node.inputs[1:]
    return _without_neutral(ctx, ((a, b), (b, a)) if is_prim(node, "add") else ((b, a),), 0.0)


@rewrite("add")
def _double(ctx: Context, node: Apply) -> Node | None:
    """`u + u` is `2.0 * u` (exactly), which the next rewrite can fold into a smaller
    factor of `u`."""
    a, b = node.inputs[1:]
    if a is b and isinstance(a, Apply) and shape_of(kind(a, ctx.facts)) is not None and \
            is_f8(kind(a, ctx.facts)):
        return node.graph.apply(P["mul"], 2.0, a, loc=node.loc, name=node.name)
    return None


def _power_of_two(node: Node) -> bool:
    if not (isinstance(node, Constant) and type(node.value) is float):
        return False
    m, _ = math.frexp(abs(node.value))  # (math's: NumPy's costs more on one float)
    return bool(m == 0.5)


@rewrite("mul")
def _scale_smaller_factor(ctx: Context, node: Apply) -> Node | None:
    """`c * (a * b)` is `(c * a) * b` when c is a power of two (scaling is exact) and
    `a` is smaller than the product: the scaling then touches fewer elements."""
    c, p = node.inputs[1:]
    if not _power_of_two(c) or not is_prim(p, "mul"):
        return None
    assert isinstance(p, Apply)
    kp = kind(p, ctx.facts)
    sp = shape_of(kp)
    if sp is None or not is_f8(kp):
        return None
    for small, big in ((p.inputs[1], p.inputs[2]), (p.inputs[2], p.inputs[1])):
        ks, kb = kind(small, ctx.facts), kind(big, ctx.facts)
        ss = () if ks == FLOAT else shape_of(ks)
        if ss is not None and is_f8(ks) and is_f8(kb) and shape_of(kb) == sp and \
                size_of(ss) < size_of(sp):
            scaled = node.graph.apply(P["mul"], c, small, loc=node.loc)
            return node.graph.apply(P["mul"], scaled, big, loc=node.loc, name=node.name)
    return None


def _scales_smaller_factor(ctx: Context, term: Node, shape: tuple[int, ...]) -> bool:
    """Whether `term` is a float64 product of `shape` with a float64 factor of fewer
    elements (`_scale_smaller_factor` moves a scaling of it there)."""
    if not is_prim(term, "mul") or kind(term, ctx.facts) != ArrayKind("f8", shape):
        return False
    assert isinstance(term, Apply)
    for small, big in ((term.inputs[1], term.inputs[2]), (term.inputs[2], term.inputs[1])):
        ks, kb = kind(small, ctx.facts), kind(big, ctx.facts)
        ss = () if ks == FLOAT else shape_of(ks)
        if ss is not None and is_f8(ks) and is_f8(kb) and shape_of(kb) == shape and \
                size_of(ss) < size_of(shape):
            return True
    return False


@rewrite("mul")
def _scale_terms(ctx: Context, node: Apply) -> Node | None:
    """`c * (u + v)` (or `- v`) is `c * u + c * v` when c is a power of two (scaling is
    exact) and each term is a product with a smaller factor, which takes the scaling
    (`_scale_smaller_factor`): one pass over the sum instead of two (the tangent of
    `2.0 * (a[:, :, None] * Qx)`, the derivative of a squared norm, in forward over
    reverse)."""
    for c, s in (node.inputs[1:], node.inputs[:0:-1]):
        if not _power_of_two(c) or not (is_prim(s, "add") or is_prim(s, "sub")):
            continue
        assert isinstance(s, Apply)
        ks = kind(s, ctx.facts)
        shape = shape_of(ks)
        if shape is None or not is_f8(ks) or \
                not all(_scales_smaller_factor(ctx, t, shape) for t in s.inputs[1:]):
            continue
        g = node.graph
        u, v = (g.apply(P["mul"], c, t, loc=node.loc) for t in s.inputs[1:])
        return g.apply(s.inputs[0], u, v, loc=node.loc, name=node.name)
    return None


@rewrite("mul")
def _scalings_around_sum(ctx: Context, node: Apply) -> Node | None:
    """`np.sum(c1 * a, axis) * c2` is `np.sum(a, axis) * (c1 * c2)` when c1 is a power
    of two (each partial sum scales exactly, and so does the product of the scalings):
    `np.sum(2.0 * (t * y), axis=2) * 0.5`, the tangent of half a squared norm, is
    `np.sum(t * y, axis=2)`, one pass over the product fewer."""
    outer = _scaled(node)
    if outer is None or is_prim(node, "neg") or not is_prim(outer[1], "np.sum"):
        return None
    c2, s = outer
    assert isinstance(s, Apply)
    x, axis, dtype, keepdims = s.inputs[1:]
    inner = _scaled(x)
    if inner is None or not (isinstance(dtype, Constant) and dtype.value is None):
        return None
    c1, a = inner
    if not _power_of_two(Constant(c1)) or (sa := shape_of(ka := kind(a, ctx.facts))) is None \
            or not is_f8(ka) or _scales_smaller_factor(ctx, a, sa):
        return None  # (a product with a smaller factor takes the scaling there instead)
    g = node.graph
    total = g.apply(P["np.sum"], a, axis, dtype, keepdims, loc=node.loc)
    c = c1 * c2
    if c == 1.0:
        return total
    if c == -1.0:
        return g.apply(P["neg"], total, loc=node.loc, name=node.name)
    return g.apply(P["mul"], c, total, loc=node.loc, name=node.name)


def _float_const(node: Node) -> float | None:
    """A float constant's value; an int constant's as a float where that is exact (the
    exponent of `x ** 2` in its derivative: `2 * a` is `2.0 * a` for float64 `a`)."""
    if not isinstance(node, Constant):
        return None
    if type(node.value) is int and abs(node.value) <= 2 ** 53:
        return float(node.value)
    return node.value if type(node.value) is float else None


def _scaled(node: Node) -> tuple[float, Node] | None:
    """(c, a) where node is `c * a`, `a * c` or `-a` for a float constant c."""
    if is_prim(node, "neg"):
        return -1.0, node.inputs[1]
    if is_prim(node, "mul"):
        a, b = node.inputs[1:]
        if (c := _float_const(a)) is not None:
            return c, b
        if (c := _float_const(b)) is not None:
            return c, a
    return None


@rewrite("mul", "neg")
def _fold_scalings(ctx: Context, node: Apply) -> Node | None:
    """`c1 * (c2 * a)` is `(c1 * c2) * a` when c1 or c2 is a power of two (then both
    round the same), for float64 `a`; a product by -1.0 is a negation, by 1.0 nothing;
    a scaling of `np.expand_dims(y, axis)` scales y."""
    outer = _scaled(node)
    if outer is None:
        return None
    c1, x = outer
    if is_prim(x, "np.expand_dims") and is_f8(kind(x, ctx.facts)):
        assert isinstance(x, Apply)
        inner = node.graph.apply(P["mul"], c1, x.inputs[1], loc=node.loc)
        return node.graph.apply(x.inputs[0], inner, x.inputs[2], loc=node.loc, name=node.name)
    inner_scaled = _scaled(x)
    if inner_scaled is None:
        if c1 == -1.0 and is_prim(node, "mul") and is_f8(kind(x, ctx.facts)):
            return node.graph.apply(P["neg"], x, loc=node.loc, name=node.name)
        return None
    c2, a = inner_scaled
    if not is_f8(kind(a, ctx.facts)) or not (
            _power_of_two(Constant(c1)) or _power_of_two(Constant(c2))):
        return None
    c = c1 * c2
    if c == 1.0:
        return a
    if c == -1.0:
        return node.graph.apply(P["neg"], a, loc=node.loc, name=node.name)
    return node.graph.apply(P["mul"], c, a, loc=node.loc, name=node.name)


@rewrite("fdiv", "fpow")
def _ieee_not_needed(ctx: Context, node: Apply) -> Node | None:
    """`fdiv(a, b)` and `fpow(a, b)` are `a / b` and `a ** b` where Python cannot raise:
    an operand is a NumPy array or scalar (NumPy gives inf or nan), or b is a constant
    other than 0 (for `/`) or not negative (for `**`)."""
    a, b = node.inputs[1:]
    power = is_prim(node, "fpow")
    ka, kb = kind(a, ctx.facts), kind(b, ctx.facts)
    safe = any(k == SCALAR or (shape_of(k) is not None and dtype_of(k) == "f8")
               for k in (ka, kb))
    if isinstance(b, Constant) and type(b.value) in (int, float):
        safe = safe or (b.value >= 0 if power else b.value != 0)
    if not safe:
        return None
    return node.graph.apply(P["pow" if power else "truediv"], a, b, loc=node.loc,
                            name=node.name)


@rewrite("pow")
def _power_of_one(ctx: Context, node: Apply) -> Node | None:
    """`x ** 1` is `x` for float64 arrays and floats (the derivative of `x ** 2`)."""
    x, n = node.inputs[1:]
    if isinstance(n, Constant) and type(n.value) in (int, float) and n.value == 1 and \
            (is_f8(kind(x, ctx.facts)) or kind(x, ctx.facts) == SCALAR):
        return x
    return None


@rewrite("mul", "truediv", "neg")
def _scale_broadcast(ctx: Context, node: Apply) -> Node | None:
    """A number (or a float64 array) broadcast to a shape, then scaled by a number (or
    negated), is the scaled number (array) broadcast: `expand_reduced(c, x, ...) / s` is
    `expand_reduced(c / s, x, ...)` (the same operations on the same numbers, once
    instead of once per copy: `expand_reduced(-0.5 * d, y, 1, False) * 2` from the
    derivative of `np.sum(y ** 2, axis=1)`)."""
    if is_prim(node, "neg"):
        e = node.inputs[1]
        if isinstance(e, Apply) and is_prim(e, "expand_reduced") and \
                _scalable(kind(e.inputs[1], ctx.facts)):
            g = node.graph
            return g.apply(P["expand_reduced"], g.apply(P["neg"], e.inputs[1], loc=node.loc),
                           *e.inputs[2:], loc=node.loc, name=node.name)
        return None
    a, b = node.inputs[1:]
    numbers = (FLOAT, INT, SCALAR)
    for e, s, first in ((a, b, True), (b, a, False)):
        if is_prim(e, "expand_reduced") and kind(s, ctx.facts) in numbers and \
                (first or is_prim(node, "mul")):
            assert isinstance(e, Apply)
            c = e.inputs[1]
            if not _scalable(kind(c, ctx.facts)):
                return None
            g = node.graph
            scaled = g.apply(node.inputs[0], *((c, s) if first else (s, c)), loc=node.loc)
            return g.apply(P["expand_reduced"], scaled, *e.inputs[2:], loc=node.loc,
                           name=node.name)
    return None


def _scalable(k: Kind | None) -> bool:
    """A float or NumPy scalar, or a float64 array of known shape (never ZERO: arrays of
    a kind are values)."""
    return k in (FLOAT, SCALAR) or (is_f8(k) and shape_of(k) is not None)


@rewrite("add")
def _add_negated(ctx: Context, node: Apply) -> Node | None:
    """`a + -b` is `a - b` (exactly) for float64 values."""
    a, b = node.inputs[1:]
    if is_prim(b, "neg") and is_f8(kind(a, ctx.facts)) and is_f8(kind(b, ctx.facts)):
        assert isinstance(b, Apply)
        return node.graph.apply(P["sub"], a, b.inputs[1], loc=node.loc, name=node.name)
    return None


def _other(node: Node, name: str, one: Node) -> Node | None:
    """The argument of a commutative binary `node` (primitive `name`) besides `one`."""
    if not is_prim(node, name) or not isinstance(node, Apply) or len(node.inputs) != 3:
        return None
    a, b = node.inputs[1:]
    return b if a is one else a if b is one else None


@rewrite("np.logical_xor")
def _flag_set_where_active(ctx: Context, node: Apply) -> Node | None:
    """`o ^ (a & ((m | o) ^ o))` is `o | (a & m)`: a bool flag kept where a masked
    loop's element is done (`old ^ (active & (new ^ old))`) whose new value sets it
    (`if c: flag = True`, as a `break` does) only sets it where the element is active.
    Two logical operations instead of four, each about 1 µs on 1,000 elements; the
    truth values are the same element by element, whatever the order of the operands."""
    for old, rest in ((node.inputs[1], node.inputs[2]), (node.inputs[2], node.inputs[1])):
        if not is_prim(rest, "np.logical_and") or not isinstance(rest, Apply):
            continue
        for active, changed in ((rest.inputs[1], rest.inputs[2]),
                                (rest.inputs[2], rest.inputs[1])):
            new = _other(changed, "np.logical_xor", old)
            m = _other(new, "np.logical_or", old) if new is not None else None
            if m is not None:
                g = node.graph
                return g.apply(P["np.logical_or"], old,
                               g.apply(P["np.logical_and"], active, m, loc=node.loc),
                               loc=node.loc, name=node.name)
    return None
