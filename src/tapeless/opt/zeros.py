"""Symbolic zeros: which values can never be `ZERO` (by induction for loop state), and the
rewrites that delete the work a zero sensitivity would cause."""

from __future__ import annotations

import math
from typing import TypeGuard

from ..ir.nodes import Apply, Constant, Node, Parameter, is_inside, prim_of
from ..runtime import ZERO
from .kinds import (
    FLOAT,
    INT,
    SCALAR,
    Kind,
    dtype_of,
    if_outputs,
    is_f8,
    is_list,
    is_switch_call,
    is_tuple,
    item_nodes,
    items_of,
    kind,
    ndim_of,
    shape_of,
)
from .loop_facts import Assumed, LoopFacts
from .patterns import is_prim, tuple_items
from .rules import Context, P, rewrite
from .shift import remember_objective


def never_zero(node: Node, facts: LoopFacts | None = None, assumed: Assumed | None = None,
               depth: int = 0) -> bool:
    """Whether `node` can never be the symbolic zero at run time (loop state: by
    induction over the loop)."""
    if facts is None:
        return _never_zero(node, facts, assumed, depth)
    # (Without assumptions, the usual question, the key is the node's id alone.)
    key: int | tuple = (node.id, frozenset(assumed)) if assumed else node.id
    found = facts.nonzero.get(key)
    if found is None:
        found = facts.nonzero[key] = _never_zero(node, facts, assumed, depth)
    return found


def always_zero(node: Node, facts: LoopFacts | None, assumed: Assumed | None = None,
                depth: int = 0) -> bool:
    """Whether `node` is the symbolic zero whenever it is computed: ZERO, sensitivity
    plumbing of it (not `sens_of`, which makes zeros), a sum of two, and loop state
    that starts as one and stays one (by induction over the loop: the sensitivity of a
    loop's stack where nothing reaches its saved values)."""
    if isinstance(node, Constant):
        return node.value is ZERO
    if facts is None or depth > 30:
        return False
    key: int | tuple = (node.id, frozenset(assumed)) if assumed else node.id
    found = facts.zero.get(key)
    if found is None:
        found = facts.zero[key] = _always_zero(node, facts, assumed or set(), depth)
    return found


def _always_zero(node: Node, facts: LoopFacts, assumed: Assumed, depth: int) -> bool:
    if isinstance(node, Parameter):
        return facts.inductive(node, lambda n, a: always_zero(n, facts, a, depth + 1),
                               assumed)
    if is_switch_call(node):
        return all(always_zero(o, facts, assumed, depth + 1)
                   for o in _taken(node, facts, assumed, depth))
    p = prim_of(node)
    if p is None:
        return False
    assert isinstance(node, Apply)
    if p.zero_preserving and p.name != "sens_of":
        return always_zero(node.inputs[1], facts, assumed, depth + 1)
    if p.name == "gadd":
        return all(always_zero(x, facts, assumed, depth + 1) for x in node.inputs[1:])
    found = facts.result_of(node) if p.name == "tuple_getitem" else None
    if found is not None:
        info, j = found
        return always_zero(info.params(j)[0], facts, assumed, depth + 1)
    index = node.inputs[2] if p.name == "tuple_getitem" else None
    if isinstance(index, Constant) and type(index.value) is int:
        return _item_zero(node.inputs[1], index.value, facts, assumed, depth + 1)
    return False


def _taken(node: Apply, facts: LoopFacts, assumed: Assumed, depth: int) -> list[Node]:
    """The values a value-`if` may give: one branch's where it tests whether a value
    that is always ZERO is ZERO (the sensitivity of a tuple, taken apart)."""
    outs = if_outputs(node)
    sw = node.inputs[0]
    cond = sw.inputs[1] if isinstance(sw, Apply) else None
    if isinstance(cond, Apply) and (is_prim(cond, "is_") or is_prim(cond, "is_not")) and \
            isinstance(cond.inputs[2], Constant) and cond.inputs[2].value is ZERO and \
            always_zero(cond.inputs[1], facts, assumed, depth + 1):
        return outs[:1] if is_prim(cond, "is_") else outs[1:]
    return outs


def _item_zero(seq: Node, i: int, facts: LoopFacts, assumed: Assumed, depth: int) -> bool:
    """Whether `seq[i]` is always ZERO (an item of ZERO is ZERO)."""
    if depth > 30:
        return False
    if isinstance(seq, Constant):
        v = seq.value
        return v is ZERO or (type(v) is tuple and -len(v) <= i < len(v) and v[i] is ZERO)
    if isinstance(seq, Apply) and is_prim(seq, "make_tuple"):
        items = seq.inputs[1:]
        return -len(items) <= i < len(items) and always_zero(items[i], facts, assumed,
                                                              depth + 1)
    if isinstance(seq, Apply) and is_prim(seq, "mul") and \
            isinstance(shown := seq.inputs[1], Apply) and is_prim(shown, "make_tuple") and \
            isinstance(seq.inputs[2], Constant):
        # `(ZERO,) * n`: every item is one of the display's.
        items = shown.inputs[1:]
        return bool(items) and all(always_zero(x, facts, assumed, depth + 1) for x in items)
    if is_switch_call(seq):
        return all(_item_zero(o, i, facts, assumed, depth + 1)
                   for o in _taken(seq, facts, assumed, depth))
    return always_zero(seq, facts, assumed, depth + 1)


def _item_of_argument(node: Node, facts: LoopFacts | None, depth: int) -> bool:
    """Whether `node` is an item (at a known position) of a tuple or list argument of the
    compiled function, or of an item of one."""
    if facts is None or depth > 30 or not (
            isinstance(node, Apply) and (is_prim(node, "getitem") or
                                         is_prim(node, "tuple_getitem")) and
            isinstance(node.inputs[2], Constant) and type(node.inputs[2].value) is int):
        return False
    seq = node.inputs[1]
    if not (is_tuple(kind(seq, facts)) or is_list(kind(seq, facts))):
        return False
    if isinstance(seq, Parameter):
        return seq.graph is facts.root
    return _item_of_argument(seq, facts, depth + 1)


def _never_zero(node: Node, facts: LoopFacts | None, assumed: Assumed | None,
                depth: int) -> bool:
    if isinstance(node, Constant):
        return node.value is not ZERO
    if depth > 30:
        return False
    assumed = set() if assumed is None else assumed
    if isinstance(node, Parameter):
        if facts is not None and node.graph is facts.root:
            # An argument of the compiled function is what its caller passed: a number
            # or an array is never ZERO (a tangent given to `tl.jvp`).
            k = kind(node, facts)
            if k in (FLOAT, INT, SCALAR) or shape_of(k) is not None:
                return True
        return facts is not None and facts.inductive(
            node, lambda n, a: never_zero(n, facts, a, depth + 1), assumed)
    if is_switch_call(node):  # a value-`if`: each branch's value
        return all(never_zero(o, facts, assumed, depth + 1) for o in if_outputs(node))
    p = prim_of(node)
    if p is None:
        return False
    assert isinstance(node, Apply)
    if p.name in ("tuple_getitem", "getitem") and isinstance(node.inputs[2], Constant) and \
            isinstance(node.inputs[2].value, int):
        items = item_nodes(node.inputs[1], node.inputs[2].value, facts)
        if items is not None:
            return all(never_zero(i, facts, assumed, depth + 1) for i in items)
    if p.name in ("getitem", "tuple_getitem") and is_prim(node.inputs[1], "make_tuple") and \
            kind(node.inputs[2], facts) == INT:
        # An item of a display at an index known only when the code runs (the tangents of
        # `layers[i]`): one of its items.
        items = node.inputs[1].inputs[1:]
        return bool(items) and all(never_zero(i, facts, assumed, depth + 1) for i in items)
    if _item_of_argument(node, facts, depth):
        # (what the caller passed in an argument: a number or an array is never ZERO,
        # as an argument is not)
        k = kind(node, facts)
        if k in (FLOAT, INT, SCALAR) or shape_of(k) is not None:
            return True
    if p.never_zero:
        return True
    if p.name in ("sens_of", "dense") and _materializes(kind(node.inputs[2], facts)):
        return True  # zeros of a known kind where d is ZERO
    if p.zero_preserving or p.name in ("own", "dense_sens"):
        # (`own` and `dense_sens` give an array for an array, ZERO for ZERO.)
        return never_zero(node.inputs[1], facts, assumed, depth + 1)
    if p.name == "getitem" and (is_prim(node.inputs[2], "make_slice") or (
            isinstance(node.inputs[2], Constant) and type(node.inputs[2].value) is slice)):
        # A slice of a value (a list, a tuple, an array) that is not ZERO.
        return never_zero(node.inputs[1], facts, assumed, depth + 1)
    if p.name == "getattr" and isinstance(node.inputs[2], Constant) and \
            node.inputs[2].value == "T" and shape_of(kind(node.inputs[1], facts)) is not None:
        return never_zero(node.inputs[1], facts, assumed, depth + 1)  # an array's transpose
    if p.name == "getitem" and shape_of(kind(node.inputs[1], facts)) is not None:
        return never_zero(node.inputs[1], facts, assumed, depth + 1)  # a part of an array
    if p.name == "gadd":
        return never_zero(node.inputs[1], facts, assumed, depth + 1) or \
            never_zero(node.inputs[2], facts, assumed, depth + 1)
    if p.name == "scatter_sens" and is_prim(node.inputs[3], "make_tuple"):
        # Pieces added into zeros of x's shape: ZERO only where x or every piece is.
        return never_zero(node.inputs[1], facts, assumed, depth + 1) and \
            any(never_zero(d, facts, assumed, depth + 1) for d in node.inputs[3].inputs[1:])
    if p.name == "list_map":
        return True  # (a list display's comprehension: a list, whatever it maps)
    if (p.name == "sens_of" or (p.name == "tuple" and len(node.inputs) == 2)) and \
            never_zero(node.inputs[1], facts, assumed, depth + 1):
        # (`sens_of(d, like)` is d where d is not ZERO; `tuple(xs)` of a value that is
        # not ZERO is a tuple: the sensitivity of a list a loop appended to, a tuple
        # of its items, which the backward loop passes on in slices)
        return True
    if p.name == "tuple_getitem" and facts is not None:
        found = facts.result_of(node)
        if found is not None:
            info, j = found
            return never_zero(info.params(j)[0], facts, assumed, depth + 1)
    return False


def _materializes(k: Kind | None) -> bool:
    """`zeros_like_value` of a value of kind k is a value, not ZERO: numbers, float, int
    and bool arrays, lists, tuples."""
    return k in (FLOAT, INT, SCALAR) or shape_of(k) is not None or \
        is_list(k) or is_tuple(k)


@rewrite("sens_of")
def _sens_of_nonzero(ctx: Context, node: Apply) -> Node | None:
    d = node.inputs[1]
    return d if never_zero(d, ctx.facts) or _argument_value(ctx, d) else None


def _argument_value(ctx: Context, node: Node) -> bool:
    """Whether `node` is an argument of the compiled function with a number or array
    kind (a value its caller passed: a tangent given to `tl.jvp`), or sensitivity
    plumbing of one: never ZERO."""
    p = prim_of(node)
    if p is not None and p.zero_preserving:
        assert isinstance(node, Apply)
        return _argument_value(ctx, node.inputs[1])
    k = kind(node, ctx.facts)
    return isinstance(node, Parameter) and node.graph is ctx.root and \
        (k in (FLOAT, INT, SCALAR) or shape_of(k) is not None)


@rewrite(*[name for name, p in P.items() if p.zero_preserving and name != "sens_of"])
def _plumbing_of_zero(ctx: Context, node: Apply) -> Node | None:
    """Sensitivity plumbing (`zero_preserving`) of the symbolic zero is the symbolic
    zero (`unbroadcast(ZERO, x)`, `broadcast_like(ZERO, x)`...; not `sens_of`, which
    makes zeros of it)."""
    return Constant(ZERO) if always_zero(node.inputs[1], ctx.facts) else None


@rewrite("add", "sub", "mul", "truediv", "neg")
def _arithmetic_of_zero(ctx: Context, node: Apply) -> Node | None:
    """Arithmetic on the symbolic zero, which only the rewrites of derivative code put
    there (a program cannot name ZERO): `gadd` made `+` of two sensitivities proved
    never ZERO, and a later rewrite made one of them ZERO (zeros, `unbroadcast` to a
    number, are ZERO, which needs no array). ZERO + x is x, ZERO * x is ZERO."""
    args = node.inputs[1:]
    zero = [isinstance(x, Constant) and x.value is ZERO for x in args]
    if not any(zero):
        return None
    prim = prim_of(node)
    name = prim.name if prim is not None else ""
    if name == "add":
        return args[1] if zero[0] else args[0]
    if name == "sub":
        return args[0] if zero[1] else node.graph.apply(P["neg"], args[1], loc=node.loc,
                                                        name=node.name)
    if name == "truediv" and not zero[0]:
        return None  # (x / ZERO: left to raise as it does)
    return Constant(ZERO)


@rewrite("tuple_getitem")
def _zero_state(ctx: Context, node: Apply) -> Node | None:
    """A loop's state that starts as ZERO and stays ZERO (see `always_zero`) is ZERO
    when the loop ends."""
    found = ctx.facts.result_of(node) if ctx.facts is not None else None
    if found is None:
        return None
    return Constant(ZERO) if always_zero(node, ctx.facts) else None


@rewrite("from_structure")
def _from_structure_of_value(ctx: Context, node: Apply) -> Node | None:
    """A number or an array is its own sensitivity form."""
    x = node.inputs[1]
    k = kind(x, ctx.facts)
    return x if k in (FLOAT, INT, SCALAR) or shape_of(k) is not None else None


@rewrite("sens_index", "sens_getattr")
def _part_of_zero(ctx: Context, node: Apply) -> Node | None:
    """A part of the symbolic zero is the symbolic zero (the tangent of data passed to a
    callee that generated code takes ZERO for)."""
    return Constant(ZERO) if always_zero(node.inputs[1], ctx.facts) else None


@rewrite("sens_index")
def _sens_index_of_display(ctx: Context, node: Apply) -> Node | None:
    """An item (or a slice) of a tuple display of tangents is that item (the display of
    those items): the tangents of a call's results, taken apart."""
    dd, index = node.inputs[1:]
    items = tuple_items(dd) if is_prim(dd, "make_tuple") else None
    if items is None:
        if isinstance(index, Constant) and type(index.value) is int and \
                item_nodes(dd, index.value, ctx.facts) is not None:
            # (`dd` is a tuple whichever value it is, e.g. an item of a display of
            # tuples at an index known only when the code runs: `layers_dot[i][0]`.)
            return node.graph.apply(P["getitem"], dd, index, loc=node.loc, name=node.name)
        return None
    if not isinstance(index, Constant):
        # (A display is a tuple, neither ZERO nor a dict: `dd[index]` is what the helper
        # gives, for an index known only when the code runs, `layers_dot[i]` in a loop.)
        if kind(index, ctx.facts) != INT:
            return None
        return node.graph.apply(P["getitem"], dd, index, loc=node.loc, name=node.name)
    i = index.value
    if type(i) is int and -len(items) <= i < len(items):
        return items[i]
    if type(i) is slice:
        return node.graph.apply(P["make_tuple"], *items[i], loc=node.loc, name=node.name)
    return None


@rewrite("sens_getattr")
def _transpose_of_array(ctx: Context, node: Apply) -> Node | None:
    """The tangent of an array's transpose `x.T`, where the tangent is surely an array
    (not ZERO), is the tangent's transpose: `w_dot.T` in the jvp of an optimized
    gradient (`tapeless.fwd_api`), where the helper would test for ZERO and methods on
    each call."""
    dd, x, name = node.inputs[1:]
    if not (isinstance(name, Constant) and name.value == "T") or \
            shape_of(kind(x, ctx.facts)) is None or shape_of(kind(dd, ctx.facts)) is None or \
            not (never_zero(dd, ctx.facts) or _argument_value(ctx, dd)):
        return None
    return node.graph.apply(P["getattr"], dd, "T", loc=node.loc, name=node.name)


@rewrite("sens_index")
def _sens_index_of_array(ctx: Context, node: Apply) -> Node | None:
    """A part of a tangent or sensitivity that is surely an array (not ZERO) is the
    array's part: `x_dot[None, :, :]` in forward-over-reverse code, where the helper
    would test for ZERO and for a dict on each call."""
    dd, index = node.inputs[1:]
    if shape_of(kind(dd, ctx.facts)) is None or \
            not (never_zero(dd, ctx.facts) or _argument_value(ctx, dd)):
        return None
    return node.graph.apply(P["getitem"], dd, index, loc=node.loc, name=node.name)


@rewrite("dense")
def _dense_parts(ctx: Context, node: Apply) -> Node | None:
    """The symbolic zero made concrete is the zeros of `like` (`sens_of`, which the
    rewrites of zeros know); a tuple display of tangents made concrete against a tuple
    display (or a constant tuple) is the display of its items made concrete (the
    tangents a call through a value passes: `dense((x_dot, ZERO), (x, data))`)."""
    d, like = node.inputs[1:]
    g = node.graph
    if isinstance(d, Constant) and d.value is ZERO:
        return g.apply(P["sens_of"], d, like, loc=node.loc, name=node.name)
    ds, likes = tuple_items(d), tuple_items(like)
    if ds is None or likes is None or len(ds) != len(likes):
        return None
    return g.apply(P["make_tuple"], *[g.apply(P["dense"], x, y, loc=node.loc)
                                      for x, y in zip(ds, likes, strict=True)],
                   loc=node.loc, name=node.name)


@rewrite("sens_of")
def _zeros_of_tuple(ctx: Context, node: Apply) -> Node | None:
    """The zeros of a tuple display (or a constant tuple) are the display of its items'
    zeros (`zeros_like_value` of a tuple)."""
    d, like = node.inputs[1:]
    likes = tuple_items(like)
    if not (isinstance(d, Constant) and d.value is ZERO) or likes is None:
        return None
    g = node.graph
    return g.apply(P["make_tuple"], *[g.apply(P["sens_of"], d, y, loc=node.loc)
                                      for y in likes], loc=node.loc, name=node.name)


@rewrite("dense")
def _dense_value(ctx: Context, node: Apply) -> Node | None:
    """A tangent that is a number or an array, surely not ZERO, is dense already."""
    d = node.inputs[1]
    k = kind(d, ctx.facts)
    numeric = k in (FLOAT, INT, SCALAR) or shape_of(k) is not None
    return d if numeric and (never_zero(d, ctx.facts) or _argument_value(ctx, d)) else None


def _zeros_of(node: Node, facts: LoopFacts | None) -> TypeGuard[Apply]:
    """Whether node is `sens_of(ZERO, like)` for a float64 array or float `like`: zeros
    of like's kind, made only because an operation needs a value."""
    if not is_prim(node, "sens_of"):
        return False
    d, like = node.inputs[1:]
    k = kind(like, facts)
    return isinstance(d, Constant) and d.value is ZERO and (
        is_f8(k) or _f8_sum(like, facts) or
        # (float64 zeros of an int or bool array's shape: the tangent of a mask)
        (shape_of(k) is not None and dtype_of(k) in ("i8", "b1")))


def f8_reduction(node: Node, facts: LoopFacts | None) -> bool:
    """Whether node is a float64 number made by reducing a whole float64 array (see
    `_f8_sum`)."""
    return _f8_sum(node, facts)


def f8_number(node: Node, facts: LoopFacts | None, depth: int = 0,
              assumed: Assumed | None = None) -> bool:
    """Whether node is always a float64 number, a Python float or a NumPy float64 (whose
    kind, SCALAR, says only that it is a NumPy scalar): a reduction of a whole float64
    array, an element of one read at int indices, arithmetic on such numbers and ints,
    such a number read back from a tuple display or a loop's stack of saved values, or
    loop state (and a loop's result) that starts as one and stays one (by induction over
    the loop: the sensitivity `d_p = d_p * x` a backward loop carries)."""
    k = kind(node, facts)
    if k is FLOAT:
        return True
    if k is not SCALAR or depth > 12:
        return False
    if facts is not None and not isinstance(node, Apply):
        return facts.inductive(node, lambda n, a: f8_number(n, facts, depth + 1, a),
                               assumed if assumed is not None else set())
    if not isinstance(node, Apply):
        return False
    if _f8_sum(node, facts):
        return True
    p = prim_of(node)
    if p is None:
        return False
    if p.name == "getitem":
        kx, ki = kind(node.inputs[1], facts), kind(node.inputs[2], facts)
        shape = shape_of(kx)
        at = (ki,) if ki is INT else items_of(ki)
        return is_f8(kx) and shape is not None and at is not None and \
            len(at) == len(shape) and all(i is INT for i in at)
    if p.number_op and p.elementwise:  # (+, -, *, /, **, %: float64 stays float64)
        return all(kind(x, facts) in (FLOAT, INT) or f8_number(x, facts, depth + 1, assumed)
                   for x in node.inputs[1:])
    if p.name == "tuple_getitem" and isinstance(i := node.inputs[2], Constant) and \
            type(i.value) is int:
        if facts is not None and (found := facts.result_of(node)) is not None:
            info, j = found  # (a loop's result: its state, by induction)
            return f8_number(info.body.parameters[info.lead + j], facts, depth + 1, assumed)
        seq = node.inputs[1]
        if facts is not None and seq.id in facts.popped:
            seq = facts.popped[seq.id]  # (what the forward loop pushed)
        items = tuple_items(seq)
        return items is not None and 0 <= i.value < len(items) and \
            f8_number(items[i.value], facts, depth + 1, assumed)
    return False


def _f8_sum(node: Node, facts: LoopFacts | None) -> bool:
    """Whether node is a float64 number: a reduction of a whole float64 array, or the
    product `u @ v` of two float64 vectors (whose kinds say only that it is a NumPy
    scalar)."""
    p = prim_of(node)
    if p is not None and p.name == "matmul":
        assert isinstance(node, Apply)
        ku, kv = (kind(x, facts) for x in node.inputs[1:3])
        return is_f8(ku) and is_f8(kv) and ndim_of(ku) == 1 and shape_of(ku) == shape_of(kv)
    if p is None or p.reduction is None:  # (sum, mean, max, min, prod: float64 stays)
        return False
    assert isinstance(node, Apply)
    if any(not (isinstance(x, Constant) and (x.value is None or x.value is False))
           for x in node.inputs[3:]):
        return False  # (a dtype, an out array or keepdims)
    axis = node.inputs[2] if len(node.inputs) > 2 else None
    k = kind(node.inputs[1], facts)
    return (axis is None or isinstance(axis, Constant) and axis.value is None) and \
        is_f8(k) and shape_of(k) is not None


@rewrite("mul", "neg")
def _zeros_scaled(ctx: Context, node: Apply) -> Node | None:
    """Zeros scaled by a finite number (or negated) are the zeros: the sensitivity of an
    argument nothing uses, through a scaling, does no work (up to the sign of a zero).
    So are zeros times a float64 value whose product has the zeros' kind (the sensitivity
    of a variable nothing reads, through a rule such as exp's `d * y`): the sensitivity
    is a zero, made concrete only for the rule, and stays one; where the value holds inf
    or nan this gives 0 where the unoptimized program's IEEE product gives nan (0 is the
    symbolic zero's answer, and JAX's)."""
    if is_prim(node, "neg"):
        return node.inputs[1] if _zeros_of(node.inputs[1], ctx.facts) else None
    a, b = node.inputs[1:]
    for z, c in ((a, b), (b, a)):
        if not _zeros_of(z, ctx.facts):
            continue
        if isinstance(c, Constant) and type(c.value) in (float, int) and \
                math.isfinite(c.value):
            return z
        kz, kc = kind(z, ctx.facts), kind(c, ctx.facts)
        if (kc == FLOAT or is_f8(kc)) and kind(node, ctx.facts) == kz:
            return z
    for z, c in ((a, b), (b, a)):
        # A number's zeros times a float64 array: the array's zeros (a zero tangent of a
        # full reduction's result, scaled by an array, in forward-over-reverse code).
        if is_prim(z, "sens_of") and isinstance(z.inputs[1], Constant) and \
                z.inputs[1].value is ZERO and kind(z.inputs[2], ctx.facts) in (FLOAT, SCALAR):
            kc = kind(c, ctx.facts)
            if shape_of(kc) and is_f8(kc) and kind(node, ctx.facts) == kc:
                return node.graph.apply(P["sens_of"], Constant(ZERO), c, loc=node.loc)
    return None


@rewrite("truediv")
def _zeros_divided(ctx: Context, node: Apply) -> Node | None:
    """Zeros divided by a nonzero finite number, or by a float64 or int array with which
    they keep their kind, are the zeros (as `_zeros_scaled`: where the divisor is 0 the
    unoptimized program's IEEE quotient is nan, the symbolic zero's answer 0): the
    tangent of a count of ties, `np.sum(zeros of the mask) * share / count`."""
    z, c = node.inputs[1:]
    if not _zeros_of(z, ctx.facts):
        return None
    if isinstance(c, Constant) and type(c.value) in (float, int) and \
            math.isfinite(c.value) and c.value != 0:
        return z
    kc, kz = kind(c, ctx.facts), kind(z, ctx.facts)
    # (Arrays only: a Python float divided by 0.0 raises, which the program must still do.)
    if shape_of(kz) is not None and kind(node, ctx.facts) == kz and \
            (kc == FLOAT or is_f8(kc) or (shape_of(kc) is not None and dtype_of(kc) == "i8")):
        return z
    return None


@rewrite("np.sum")
def _sum_of_zeros(ctx: Context, node: Apply) -> Node | None:
    """A sum of zeros made for x is the zeros of the same sum of x (`zeros_like_value`
    makes float64 zeros of an int sum's shape, as summing float64 zeros does): the
    tangent of `np.sum(mask)`, whose sum of x is the primal's own (a common
    subexpression)."""
    z, axis, dtype, keepdims = node.inputs[1:]
    if not _zeros_of(z, ctx.facts) or not (isinstance(dtype, Constant) and dtype.value is None):
        return None
    g = node.graph
    total = g.apply(P["np.sum"], z.inputs[2], axis, dtype, keepdims, loc=node.loc)
    return g.apply(P["sens_of"], Constant(ZERO), total, loc=node.loc, name=node.name)


@rewrite("add", "gadd")
def _plus_zeros(ctx: Context, node: Apply) -> Node | None:
    """A sensitivity plus zeros of its own kind is the sensitivity (up to the sign of a
    zero)."""
    a, b = node.inputs[1:]
    for z, x in ((a, b), (b, a)):
        if _zeros_of(z, ctx.facts):
            kx, kz = kind(x, ctx.facts), kind(z, ctx.facts)
            if kx == kz and (kx == FLOAT or shape_of(kx) is not None):
                if never_zero(x, ctx.facts) or _argument_value(ctx, x):
                    return x
                # (The sum is never ZERO, and a rewrite may have relied on that: where x
                # may be ZERO, the sum is x made concrete.)
                return node.graph.apply(P["sens_of"], x, z.inputs[2], loc=node.loc,
                                        name=node.name)
    return None


@rewrite("unbroadcast")
def _unbroadcast_zeros(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of x given zeros is x's zeros. (Not ZERO: zeros are never ZERO,
    and a rewrite may have relied on that, removing a `sens_of` after this or making a
    `gadd` of it a `+`.)"""
    if not _zeros_of(node.inputs[1], ctx.facts):
        return None
    return node.graph.apply(P["sens_of"], Constant(ZERO), node.inputs[2], loc=node.loc,
                            name=node.name)


@rewrite("gadd")
def _gadd_zero(ctx: Context, node: Apply) -> Node | None:
    """ZERO + x is x; two sensitivities that are surely numbers of one kind add with +."""
    a, b = node.inputs[1:]
    if always_zero(a, ctx.facts):
        return b
    if always_zero(b, ctx.facts):
        return a
    ka, kb = kind(a, ctx.facts), kind(b, ctx.facts)
    # (Numbers add with + whatever their types, as the helper adds them; so do arrays of
    # one shape, whatever their dtypes: `expand_reduced` of a NumPy scalar has none.)
    if ka is not None and (ka == kb and (ka == FLOAT or shape_of(ka) is not None) or
                           {ka, kb} <= {FLOAT, SCALAR} or
                           shape_of(ka) is not None and shape_of(ka) == shape_of(kb)) \
            and (never_zero(a, ctx.facts) or _argument_value(ctx, a)) and \
            (never_zero(b, ctx.facts) or _argument_value(ctx, b)):
        return node.graph.apply(P["add"], a, b, loc=node.loc, name=node.name)
    return None


@rewrite("gadd")
def _gadd_of_one_branch(ctx: Context, node: Apply) -> Node | None:
    """`gadd(s[j][m], s[k][m])` (or `gadd(s[j], s[k])`) where `s` is a value-`if` whose
    every branch returns a display with ZERO at one of j, k and the same value t at the
    other (the sensitivity of an `if`'s two branch functions, `(ZERO, t, ZERO)` in one
    branch and `(ZERO, ZERO, t)` in the other): one read is ZERO whichever branch ran,
    so the sum is `t[m]` (`t`)."""
    reads = []
    for a in node.inputs[1:]:
        path: list[Constant] = []
        while isinstance(a, Apply) and is_prim(a, "tuple_getitem") and \
                isinstance(at := a.inputs[2], Constant) and type(at.value) is int and \
                not is_switch_call(a.inputs[1]):
            path.append(at)
            a = a.inputs[1]
        if not (isinstance(a, Apply) and is_prim(a, "tuple_getitem") and
                isinstance(a.inputs[2], Constant) and type(a.inputs[2].value) is int and
                is_switch_call(a.inputs[1]) and len(path) <= 1):
            return None
        reads.append((a.inputs[1], a.inputs[2].value, path))
    (s, j, pj), (s2, k, pk) = reads
    if s is not s2 or j == k or [c.value for c in pj] != [c.value for c in pk]:
        return None
    assert isinstance(s, Apply)  # (is_switch_call)
    shared: Node | None = None
    for out in if_outputs(s):
        if not (is_prim(out, "make_tuple") and max(j, k) < len(out.inputs) - 1):
            return None
        items = [out.inputs[1 + j], out.inputs[1 + k]]
        zeros = [isinstance(i, Constant) and i.value is ZERO for i in items]
        if sorted(zeros) != [False, True]:
            return None
        t = items[zeros.index(False)]
        if shared is not None and t is not shared:
            return None
        shared = t
    if shared is None or not isinstance(shared, Constant) and (
            shared.graph is None or not is_inside(node.graph, shared.graph)):
        return None  # (t must be in scope where the sum is)
    if not pj:
        return shared
    return node.graph.apply(P["tuple_getitem"], shared, pj[0], loc=node.loc, name=node.name)


@rewrite("is_", "is_not")
def _is_zero(ctx: Context, node: Apply) -> Node | None:
    a, b = node.inputs[1:]
    if isinstance(b, Constant) and b.value is ZERO and (
            never_zero(a, ctx.facts) or _argument_value(ctx, a)):
        return Constant(is_prim(node, "is_not"))
    if isinstance(b, Constant) and b.value is ZERO and always_zero(a, ctx.facts):
        return Constant(is_prim(node, "is_"))
    return None


@rewrite("check_scalar_output")
def _scalar_output_known(ctx: Context, node: Apply) -> Node | None:
    v = node.inputs[1]
    if kind(v, ctx.facts) not in (FLOAT, SCALAR):
        return None
    remember_objective(ctx.root)  # (for `shift.invariant_in`)
    return v


@rewrite("check_aux_output")
def _aux_output_known(ctx: Context, node: Apply) -> Node | None:
    v = node.inputs[1]
    items = tuple_items(v)
    return v if items is not None and len(items) == 2 else None


@rewrite("ones_like_output")
def _seed_known(ctx: Context, node: Apply) -> Node | None:
    return Constant(1.0) if kind(node.inputs[1], ctx.facts) in (FLOAT, SCALAR) else None


# --- zero tangents of constants, in forward-over-reverse code --------------------------
# A derivative rule's backpropagator called with a constant (the exponent of `x ** 2`)
# gets a tangent for it that F cannot know is zero where the rule is transformed; once
# inlined it is `sens_of(ZERO, 2)`: 0.0, a value only because an operation needs one.
# These rewrites let such zeros go the way of the others (`_zeros_scaled`, `_plus_zeros`).


@rewrite("sens_of")
def _zeros_of_a_constant(ctx: Context, node: Apply) -> Node | None:
    """The zeros of an int constant are 0.0, as those of a float constant: written so,
    they are zeros `_zeros_of` knows."""
    d, like = node.inputs[1:]
    if isinstance(d, Constant) and d.value is ZERO and isinstance(like, Constant) and \
            type(like.value) is int:
        return node.graph.apply(P["sens_of"], d, Constant(float(like.value)), loc=node.loc)
    return None


@rewrite("expand_reduced", "broadcast_like")
def _zeros_broadcast(ctx: Context, node: Apply) -> Node | None:
    """Zeros of a number (or of a float64 array) broadcast to the shape of `x`, a float64
    array or a number: the zeros of `x`."""
    z, x = node.inputs[1:3]
    if not _zeros_of(z, ctx.facts):
        return None
    kz, kx = kind(z, ctx.facts), kind(x, ctx.facts)
    if kx in (FLOAT, INT, SCALAR) and kz == FLOAT and is_prim(node, "broadcast_like"):
        return z  # (broadcast_like of two numbers is its first)
    if is_f8(kx) and shape_of(kx) and (kz == FLOAT or _f8_sum(z.inputs[2], ctx.facts) or
                                         shape_of(kz) is not None and is_f8(kz)):
        # (float64 zeros broadcast to x's shape, which has axes: x's zeros)
        return node.graph.apply(P["sens_of"], Constant(ZERO), x, loc=node.loc)
    return None


@rewrite("mul")
def _times_power_zero(ctx: Context, node: Apply) -> Node | None:
    """`t * y ** 0` is t: `y ** 0` is 1 for every y (nan and inf too), and t * 1.0 is t
    (the slope of `x ** 1` in a derivative rule), where the product has t's kind."""
    a, b = node.inputs[1:]
    for t, p in ((a, b), (b, a)):
        if (is_prim(p, "pow") or is_prim(p, "fpow")) and isinstance(p.inputs[2], Constant) \
                and type(p.inputs[2].value) in (int, float) and p.inputs[2].value == 0:
            kt = kind(t, ctx.facts)
            if is_f8(kt) and kind(node, ctx.facts) == kt and is_f8(kind(p, ctx.facts)):
                return t
    return None

