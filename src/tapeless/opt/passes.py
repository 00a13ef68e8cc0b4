"""Rewrites on the IR, run on a worklist to a fixed point.

Each rewrite looks at one Apply node and returns a replacement (or None). Rewrites are
indexed by the primitive they match; `inline` applies to calls of known graphs.
Dead code disappears on its own: only nodes reachable from a graph's output or effects
exist for the later stages."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..ir.clone import inline_body, is_recursive, node_count, rebind_value_call
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    Parameter,
    graph_nodes,
    is_constant_graph,
    reachable_graphs,
    scope_errors,
    serial_mark,
    used_graphs,
)
from ..primitives import PRIMITIVES, Primitive
from ..runtime import ZERO, holds_float
from .branches import branch_backprops
from .kinds import (
    FLOAT,
    INT,
    NUMERIC,
    SCALAR,
    array,
    as_tuple,
    class_of_kind,
    dtype_of,
    element_of,
    fields_of,
    is_container,
    is_dict,
    is_f8,
    is_namedtuple,
    is_record,
    is_switch_call,
    is_tuple,
    item_nodes,
    items_of,
    kind,
    ndim_of,
    normalized_axes,
    record_class,
    same_array,
    sequence_items,
    shape_of,
)
from .loops import LoopFacts, drop_dead_state, lower_stacks, prune_saved, uses
from .softmax import max_share_cancels, reduced_axes

P = PRIMITIVES
INLINE_MAX_NODES = 60
LOOP_STEPS_MAX = 64  # loop-state steps in one round (each removes something: a bound)

Rewrite = Callable[["Context", Apply], "Node | None"]
RULES: dict[str, list[tuple[str, Rewrite]]] = {}


def rewrite(*prims: str) -> Callable[[Rewrite], Rewrite]:
    def register(fn: Rewrite) -> Rewrite:
        for p in prims:
            RULES.setdefault(p, []).append((fn.__name__.lstrip("_"), fn))
        return fn

    return register


@dataclass
class Context:
    root: Graph
    facts: LoopFacts | None = None
    call_sites: dict[int, int] = field(default_factory=dict)
    recursive: dict[int, bool] = field(default_factory=dict)
    enabled: set[str] | None = None
    # Common subexpressions: the first node computing each (graph, primitive, inputs).
    computed: dict[tuple, Node] = field(default_factory=dict)

    def is_recursive(self, g: Graph) -> bool:
        if g.id not in self.recursive:
            self.recursive[g.id] = is_recursive(g)
        return self.recursive[g.id]


def prim_of(node: Node) -> Primitive | None:
    # (Exact type tests: none of these classes has subclasses, and this runs for every
    # node and rule.)
    if type(node) is Apply and type(c := node.inputs[0]) is Constant and \
            type(c.value) is Primitive:  # type: ignore[attr-defined]
        return c.value  # type: ignore[attr-defined]
    return None


def is_prim(node: Node, name: str) -> bool:
    p = prim_of(node)
    return p is not None and p.name == name


def const(node: Node) -> bool:
    return isinstance(node, Constant) and not isinstance(node.value, Graph)


# --- tuples -------------------------------------------------------------------------------


@rewrite("tuple_getitem", "getitem")
def _getitem_of_tuple(ctx: Context, node: Apply) -> Node | None:
    seq, index = node.inputs[1], node.inputs[2]
    if not isinstance(index, Constant):
        return None
    i = index.value
    if is_prim(seq, "make_tuple") and isinstance(seq, Apply):
        items = seq.inputs[1:]
        if isinstance(i, int) and not isinstance(i, bool) and -len(items) <= i < len(items):
            return items[i]
        if isinstance(i, slice):
            return node.graph.apply(P["make_tuple"], *items[i], loc=node.loc)
    if isinstance(seq, Constant):
        if seq.value is ZERO:
            return Constant(ZERO)
        if isinstance(seq.value, tuple) and isinstance(i, (int, slice)) and \
                not isinstance(i, bool):
            try:
                return Constant(seq.value[i])
            except IndexError:
                return None
    return None


@rewrite("tuple")
def _tuple_of_tuple(ctx: Context, node: Apply) -> Node | None:
    x = node.inputs[1]
    if is_prim(x, "make_tuple") or (isinstance(x, Constant) and type(x.value) is tuple):
        return x
    if is_prim(x, "concat_sens") and never_zero(x, ctx.facts):
        return x
    return None


@rewrite("tuple_getitem", "getitem")
def _getitem_of_tuple_call(ctx: Context, node: Apply) -> Node | None:
    """`tuple(x)[i]` is `x[i]` where x is a list, a tuple or an array (not where
    iterating x differs from indexing it: a dict, a generator)."""
    t, i = node.inputs[1:]
    if not is_prim(t, "tuple") or not (isinstance(i, Constant) and type(i.value) is int):
        return None
    x = t.inputs[1]  # type: ignore[union-attr]
    if not _is_sequence(x, ctx.facts):
        return None
    return node.graph.apply(P["getitem"], x, i, loc=node.loc, name=node.name)


def _is_sequence(x: Node, facts: LoopFacts | None, depth: int = 0) -> bool:
    """Whether x is surely a list, a tuple or an array (or the sensitivity of a list,
    which is a list or a tuple: never a dict)."""
    k = kind(x, facts)
    if shape_of(k) is not None or (k is not None and k.startswith("list<")) or is_tuple(k) or \
            is_prim(x, "make_tuple") or is_prim(x, "make_list"):
        return True
    if depth > 10 or not isinstance(x, Apply):
        return False
    if is_prim(x, "getitem") and (is_prim(x.inputs[2], "make_slice") or (
            isinstance(x.inputs[2], Constant) and type(x.inputs[2].value) is slice)):
        return _is_sequence(x.inputs[1], facts, depth + 1)
    if is_prim(x, "sens_of"):
        lk = kind(x.inputs[2], facts)
        return lk is not None and lk.startswith("list<") and never_zero(x, facts)
    return False


@rewrite("list")
def _list_of_display(ctx: Context, node: Apply) -> Node | None:
    """`list((a, b))` is `[a, b]` (what the derivative of a list display builds)."""
    items = _tuple_items(node.inputs[1]) if len(node.inputs) == 2 else None
    if items is None:
        return None
    return node.graph.apply(P["make_list"], *items, loc=node.loc, name=node.name)


@rewrite("add")
def _concat_tuples(ctx: Context, node: Apply) -> Node | None:
    """Concatenated tuples, displays or of known kinds (so of known lengths): a display."""
    items = [_tuple_items(x) or _known_items(x, ctx.facts) for x in node.inputs[1:]]
    if items[0] is None or items[1] is None:
        return None
    return node.graph.apply(P["make_tuple"], *items[0], *items[1], loc=node.loc)


def _known_items(x: Node, facts: LoopFacts | None) -> list[Node] | None:
    """The items `x[0], x[1], ...` of a value of tuple kind (exactly a tuple)."""
    known = items_of(kind(x, facts))
    if known is None or x.graph is None:
        return None
    return [x.graph.apply(P["tuple_getitem"], x, i) for i in range(len(known))]


def _tuple_items(x: Node) -> list[Node] | None:
    if is_prim(x, "make_tuple") and isinstance(x, Apply):
        return list(x.inputs[1:])
    if isinstance(x, Constant) and type(x.value) is tuple:
        return [Constant(v) for v in x.value]
    return None


@rewrite("mul")
def _repeat_zero_tuple(ctx: Context, node: Apply) -> Node | None:
    a, n = node.inputs[1:]
    if isinstance(a, Constant) and type(a.value) is tuple and isinstance(n, Constant) and \
            type(n.value) is int and all(v is ZERO for v in a.value):
        return Constant(a.value * n.value)
    return None


@rewrite("len")
def _len_of_tuple(ctx: Context, node: Apply) -> Node | None:
    """The length of a display, or of a tuple, a dict or a record of known kind."""
    items = _tuple_items(node.inputs[1])
    if items is None:
        k = kind(node.inputs[1], ctx.facts)
        known = items_of(k) if is_tuple(k) else fields_of(k) if is_namedtuple(k) or \
            is_dict(k) else None
        return Constant(len(known)) if known is not None else None
    return Constant(len(items))


@rewrite("getitem_sens")
def _getitem_sens_of_tuple(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a tuple of known kind given that of an item, `tuple_sens`; given
    that of a constant slice, when it is a display, a display."""
    d, x, index = node.inputs[1:]
    known = items_of(as_tuple(kind(x, ctx.facts)))  # (a NamedTuple's is a tuple too)
    if known is None or not isinstance(index, Constant):
        return None
    i, n = index.value, len(known)
    if type(i) is int and -n <= i < n:
        return node.graph.apply(P["tuple_sens"], d, i % n, x, loc=node.loc, name=node.name)
    pieces = _tuple_items(d) if is_prim(d, "make_tuple") else None
    if type(i) is slice and pieces is not None:
        where = range(*i.indices(n))
        if len(where) != len(pieces):
            return None
        parts: list[Node] = [Constant(ZERO)] * n
        for j, p in zip(where, pieces, strict=True):
            parts[j] = p
        return node.graph.apply(P["make_tuple"], *parts, loc=node.loc, name=node.name)
    return None


@rewrite("index_sens")
def _index_sens_known(ctx: Context, node: Apply) -> Node | None:
    """The index of an array, a number, a tuple, a list or a dict has no sensitivity
    (`index_sens` raises only for other objects, whose `__getitem__` tapeless does not
    know, and only where the index holds floats)."""
    x, index = node.inputs[2:]
    k, ki = kind(x, ctx.facts), kind(index, ctx.facts)
    if k in (FLOAT, INT, SCALAR, NUMERIC) or shape_of(k) is not None or is_tuple(k) or \
            element_of(k) is not None or is_dict(k) or is_namedtuple(k) or ki == INT or \
            (isinstance(index, Constant) and not holds_float(index.value)):
        return Constant(ZERO)
    return None


@rewrite("class_of")
def _class_of_known(ctx: Context, node: Apply) -> Node | None:
    """`class_of(c)` where `c` is a known class, or a graph standing for one: the class."""
    c = node.inputs[1]
    if is_constant_graph(c) and hasattr(c.value, "stands_for"):
        return Constant(c.value.stands_for, c.loc)
    if isinstance(c, Constant) and isinstance(c.value, type):
        return c
    return None


@rewrite("call_star")
def _call_star_known(ctx: Context, node: Apply) -> Node | None:
    """`f(*(a, b))` -> `f(a, b)` where the IR's direct-call convention (one input per
    parameter) agrees with Python's: plain positional parameters only."""
    fn, items = node.inputs[1], _tuple_items(node.inputs[2])
    if items is None:
        return None
    if is_constant_graph(fn):
        g: Graph = fn.value
        specs = getattr(g, "signature", None)
        if g.vararg or len(items) != len(g.parameters) or (
                specs is not None and any(sp.kind != "pos" for sp in specs)):
            return None
    elif isinstance(fn, Constant):
        return None
    return node.graph.apply(fn, *items, loc=node.loc, name=node.name)


# --- symbolic zeros -------------------------------------------------------------------------

_NEVER_ZERO_PREFIXES = ("np.", "math.", "method.")
_NUMERIC = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos",
            "fdiv", "fpow",
            "abs", "float", "make_tuple", "make_list", "sum", "min", "max", "ones_like_output"}
_ZERO_PRESERVING = {"unbroadcast", "broadcast_like", "reshape_like", "expand_reduced",
                    "sens_of", "take_sens", "diag_sens", "getitem_sens", "tuple_sens",
                    "concat_sens"}


def never_zero(node: Node, facts: LoopFacts | None = None, assumed: set | None = None,
               depth: int = 0) -> bool:
    """Whether `node` can never be the symbolic zero at run time (loop state: by
    induction over the loop)."""
    if facts is None:
        return _never_zero(node, facts, assumed, depth)
    key = (node.id, frozenset(assumed) if assumed else frozenset())
    if key not in facts.nonzero:
        facts.nonzero[key] = _never_zero(node, facts, assumed, depth)  # type: ignore[index]
    return facts.nonzero[key]  # type: ignore[index]


def _never_zero(node: Node, facts: LoopFacts | None, assumed: set | None,
                depth: int) -> bool:
    if isinstance(node, Constant):
        return node.value is not ZERO
    if depth > 30:
        return False
    assumed = set() if assumed is None else assumed
    if isinstance(node, Parameter):
        return facts is not None and facts.inductive(
            node, lambda n, a: never_zero(n, facts, a, depth + 1), assumed)
    if is_switch_call(node):  # a value-`if`: each branch's value
        return all(never_zero(b.value.output, facts, assumed, depth + 1)  # type: ignore
                   for b in node.inputs[0].inputs[2:4])  # type: ignore[attr-defined]
    p = prim_of(node)
    if p is None:
        return False
    assert isinstance(node, Apply)
    if p.name == "tuple_getitem" and isinstance(node.inputs[2], Constant) and \
            isinstance(node.inputs[2].value, int):
        items = item_nodes(node.inputs[1], node.inputs[2].value, facts)
        if items is not None:
            return all(never_zero(i, facts, assumed, depth + 1) for i in items)
    if p.name in _NUMERIC or p.name.startswith(_NEVER_ZERO_PREFIXES):
        return True
    if p.name == "sens_of" and _materializes(kind(node.inputs[2], facts)):
        return True  # zeros of a known kind where d is ZERO
    if p.name in _ZERO_PRESERVING:
        return never_zero(node.inputs[1], facts, assumed, depth + 1)
    if p.name == "getitem" and (is_prim(node.inputs[2], "make_slice") or (
            isinstance(node.inputs[2], Constant) and type(node.inputs[2].value) is slice)):
        # A slice of a value (a list, a tuple, an array) that is not ZERO.
        return never_zero(node.inputs[1], facts, assumed, depth + 1)
    if p.name == "getitem" and shape_of(kind(node.inputs[1], facts)) is not None:
        return never_zero(node.inputs[1], facts, assumed, depth + 1)  # a part of an array
    if p.name == "gadd":
        return never_zero(node.inputs[1], facts, assumed, depth + 1) or \
            never_zero(node.inputs[2], facts, assumed, depth + 1)
    if p.name == "tuple_getitem" and facts is not None:
        found = facts.result_of(node)
        if found is not None:
            info, j = found
            return never_zero(info.params(j)[0], facts, assumed, depth + 1)
    return False


def _materializes(k: str | None) -> bool:
    """`zeros_like_value` of a value of kind k is a value, not ZERO: numbers, float, int
    and bool arrays, lists, tuples."""
    return k in (FLOAT, INT, SCALAR) or shape_of(k) is not None or \
        (k is not None and k.startswith(("list<", "tuple<")))


@rewrite("sens_of")
def _sens_of_nonzero(ctx: Context, node: Apply) -> Node | None:
    return node.inputs[1] if never_zero(node.inputs[1], ctx.facts) else None


def _zeros_of(node: Node, facts: LoopFacts | None) -> bool:
    """Whether node is `sens_of(ZERO, like)` for a float64 array or float `like`: zeros
    of like's kind, made only because an operation needs a value."""
    if not is_prim(node, "sens_of"):
        return False
    d, like = node.inputs[1:]  # type: ignore[attr-defined]
    k = kind(like, facts)
    return isinstance(d, Constant) and d.value is ZERO and is_f8(k)


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
        kz, kc = kind(z.inputs[2], ctx.facts), kind(c, ctx.facts)  # type: ignore[attr-defined]
        if (kc == FLOAT or is_f8(kc)) and kind(node, ctx.facts) == kz:
            return z
    return None


@rewrite("add", "gadd")
def _plus_zeros(ctx: Context, node: Apply) -> Node | None:
    """A sensitivity plus zeros of its own kind is the sensitivity (up to the sign of a
    zero)."""
    a, b = node.inputs[1:]
    for z, x in ((a, b), (b, a)):
        if _zeros_of(z, ctx.facts):
            kx, kz = kind(x, ctx.facts), kind(z.inputs[2], ctx.facts)  # type: ignore[attr-defined]
            if kx == kz and (kx == FLOAT or shape_of(kx) is not None):
                return x
    return None


@rewrite("unbroadcast")
def _unbroadcast_zeros(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of x given zeros is zero: ZERO, which needs no array."""
    return Constant(ZERO) if _zeros_of(node.inputs[1], ctx.facts) else None


@rewrite("gadd")
def _gadd_zero(ctx: Context, node: Apply) -> Node | None:
    """ZERO + x is x; two sensitivities that are surely numbers of one kind add with +."""
    a, b = node.inputs[1:]
    if isinstance(a, Constant) and a.value is ZERO:
        return b
    if isinstance(b, Constant) and b.value is ZERO:
        return a
    ka = kind(a, ctx.facts)
    if ka is not None and ka == kind(b, ctx.facts) and (ka == FLOAT or shape_of(ka) is not None) \
            and never_zero(a, ctx.facts) and never_zero(b, ctx.facts):
        return node.graph.apply(P["add"], a, b, loc=node.loc, name=node.name)
    return None


def _scattered(node: Node) -> tuple[Node, list[Node], list[Node]] | None:
    """`getitem_sens(d, x, i)` as (x, [i], [d]); `scatter_sens(x, (is...), (ds...))`
    likewise when its index and sensitivity tuples are displays."""
    if is_prim(node, "getitem_sens") and isinstance(node, Apply):
        d, x, i = node.inputs[1:]
        return x, [i], [d]
    if is_prim(node, "scatter_sens") and isinstance(node, Apply):
        x, ii, dd = node.inputs[1:]
        indices = _tuple_items(ii)
        if indices is not None and is_prim(dd, "make_tuple"):
            return x, indices, dd.inputs[1:]  # type: ignore[union-attr]
    return None


@rewrite("gadd")
def _gadd_scatter(ctx: Context, node: Apply) -> Node | None:
    """The sensitivities of several elements or slices of one array, added: one zero
    array and an add per piece, not a zero array per piece."""
    a, b = (_scattered(x) for x in node.inputs[1:])
    if a is None or b is None or a[0] is not b[0]:
        return None
    g = node.graph
    return g.apply(P["scatter_sens"], a[0], g.apply(P["make_tuple"], *a[1], *b[1]),
                   g.apply(P["make_tuple"], *a[2], *b[2]), loc=node.loc, name=node.name)


@rewrite("tuple_sens")
def _tuple_sens_display(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a tuple of known length when only element i has one: a tuple
    display, ZERO elsewhere (a tuple of ZEROs where `d` is ZERO: also a zero), which
    the rewrites of displays then take apart."""
    d, i, like = node.inputs[1:]
    items: list[Node] | None = _tuple_items(like)
    known = items_of(as_tuple(kind(like, ctx.facts)))  # (a NamedTuple's is a tuple too)
    if items is None and known is not None:
        items = [Constant(ZERO)] * len(known)  # (a tuple of known kind: its length only)
    if items is None and is_prim(like, "tuple_getitem"):
        # A tuple a forward loop saved (its elements are that loop's nodes: count only).
        found = sequence_items(like, ctx.facts)
        forward = item_nodes(like.inputs[1], like.inputs[2].value, ctx.facts) \
            if isinstance(like.inputs[2], Constant) and type(like.inputs[2].value) is int \
            else None  # type: ignore[union-attr]
        if found is not None and forward is not None and is_prim(forward[0], "make_tuple"):
            items = found
    if items is None or not (isinstance(i, Constant) and type(i.value) is int and
                             -len(items) <= i.value < len(items)):
        return None
    parts: list[Node] = [Constant(ZERO)] * len(items)
    parts[i.value] = d
    return node.graph.apply(P["make_tuple"], *parts, loc=node.loc, name=node.name)


@rewrite("gadd")
def _gadd_displays(ctx: Context, node: Apply) -> Node | None:
    """Two sensitivities of one tuple, both displays: added element by element."""
    a, b = (_tuple_items(x) if is_prim(x, "make_tuple") else None for x in node.inputs[1:])
    if a is None or b is None or len(a) != len(b):
        return None
    g = node.graph
    return g.apply(P["make_tuple"], *[g.apply(P["gadd"], x, y, loc=node.loc)
                                      for x, y in zip(a, b, strict=True)],
                   loc=node.loc, name=node.name)


@rewrite("scatter_sens")
def _scatter_whole(ctx: Context, node: Apply) -> Node | None:
    """The sensitivities of slices that cover a float64 array along its first axis, each
    once and none ZERO: their concatenation (not zeros, then an add per slice)."""
    x, indices, ds = node.inputs[1:]
    kx = kind(x, ctx.facts)
    sx = shape_of(kx)
    pieces = _tuple_items(ds)
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
        inner = link.graph.apply(link.inputs[0], inner, link.inputs[2], loc=link.loc)  # type: ignore
    return inner


@rewrite("is_", "is_not")
def _is_zero(ctx: Context, node: Apply) -> Node | None:
    a, b = node.inputs[1:]
    if isinstance(b, Constant) and b.value is ZERO and never_zero(a, ctx.facts):
        return Constant(is_prim(node, "is_not"))
    return None


@rewrite("isinstance")
def _isinstance_numeric(ctx: Context, node: Apply) -> Node | None:
    x, classes = node.inputs[1:]
    k = kind(x, ctx.facts)
    if not isinstance(classes, Constant) or k is None:
        return None
    cls = classes.value if isinstance(classes.value, tuple) else (classes.value,)
    if is_container(k):  # exactly a list, a tuple, a dict, or a record of its class
        exact = class_of_kind(k)
        if exact is not None and all(isinstance(c, type) for c in cls):
            return Constant(any(issubclass(exact, c) for c in cls))
        return None
    if all(c in (tuple, list, dict) for c in cls):
        return Constant(False)
    return None


@rewrite("np.ndim")
def _ndim_known(ctx: Context, node: Apply) -> Node | None:
    k = kind(node.inputs[1], ctx.facts)
    n = 0 if k in (FLOAT, INT, SCALAR) else ndim_of(k)
    return Constant(n) if n is not None else None


@rewrite("getattr")
def _attribute_known(ctx: Context, node: Apply) -> Node | None:
    x, name = node.inputs[1:]
    if isinstance(name, Constant) and name.value == "ndim":
        n = ndim_of(kind(x, ctx.facts))
        return Constant(n) if n is not None else None
    if isinstance(name, Constant) and name.value == "shape":
        shape = shape_of(kind(x, ctx.facts))
        return Constant(shape) if shape is not None else None
    return None


@rewrite("unbroadcast")
def _unbroadcast_known(ctx: Context, node: Apply) -> Node | None:
    """Nothing to undo when `d` already has `x`'s shape (or both are Python scalars)."""
    d, x = node.inputs[1:]
    kd, kx = kind(d, ctx.facts), kind(x, ctx.facts)
    if (kx in (FLOAT, INT, SCALAR) or shape_of(kx) == ()) and kd == FLOAT:
        return d
    sd, sx = shape_of(kd), shape_of(kx)
    if sd is not None and sd == sx:
        return d
    return None


@rewrite("reduced_count")
def _reduced_count_known(ctx: Context, node: Apply) -> Node | None:
    """How many elements a reduction over constant axes of a value of known shape adds."""
    x, axis = node.inputs[1:]
    k = kind(x, ctx.facts)
    shape = () if k in (FLOAT, INT, SCALAR) else shape_of(k)
    axes = reduced_axes(axis, len(shape)) if shape is not None else None
    return Constant(math.prod(shape[a] for a in axes)) if axes is not None else None  # type: ignore[index]


@rewrite("getattr_sens")
def _shape_sens(ctx: Context, node: Apply) -> Node | None:
    """Attributes such as `x.shape` carry no sensitivity back to x."""
    name = node.inputs[3]
    if isinstance(name, Constant) and name.value in ("shape", "ndim", "size", "dtype"):
        return Constant(ZERO)
    return None


@rewrite("getattr_sens")
def _field_sens(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a NamedTuple of known kind given that of a field: `tuple_sens`
    at the field's position (as `runtime.getattr_sens` does, for names it does not take
    for an array's attributes)."""
    d, x, name = node.inputs[1:]
    k = kind(x, ctx.facts)
    if not is_namedtuple(k) or not isinstance(name, Constant) or \
            name.value in _ARRAY_ATTRIBUTES:
        return None
    names = [f for f, _ in fields_of(k)]  # type: ignore[union-attr]
    if name.value not in names:
        return None
    return node.graph.apply(P["tuple_sens"], d, names.index(name.value), x, loc=node.loc,
                            name=node.name)


_ARRAY_ATTRIBUTES = ("T", "real", "shape", "ndim", "size", "dtype", "imag")


@rewrite("to_structure")
def _to_structure_known(ctx: Context, node: Apply) -> Node | None:
    """The gradient of an argument of known kind: `d` itself for a float64 array or a
    float of the argument's kind; for a tuple (exactly `tuple`) and a display of its
    items' sensitivities, or ZERO, a display of the items' gradients."""
    d, like = node.inputs[1:]
    kd, kl = kind(d, ctx.facts), kind(like, ctx.facts)
    if same_array(kd, kl) and never_zero(d, ctx.facts):  # (a sensitivity may be ZERO)
        # The caller owns the gradient: an array that may be a view (a broadcast number,
        # read-only) or another argument (`x * y`'s gradient is y) is copied.
        # (Whether d is new is decided once the program is final, `_settle_owns`: a
        # later rewrite may turn `1.0 * y` into y.)
        return d if shape_of(kd) is None or is_prim(d, "own") else \
            node.graph.apply(P["own"], d, loc=node.loc, name=node.name)
    if is_dict(kl):
        return _dict_gradient(node, d, like, kl)  # type: ignore[arg-type]
    if is_record(kl) and not is_namedtuple(kl):
        return _dataclass_gradient(node, d, like, kl)  # type: ignore[arg-type]
    known = items_of(as_tuple(kl))
    if known is None:
        return None
    parts = _tuple_items(d) if is_prim(d, "make_tuple") else \
        [Constant(ZERO)] * len(known) if isinstance(d, Constant) and d.value is ZERO else None
    if parts is None or len(parts) != len(known):
        return None
    g = node.graph
    items = [g.apply(P["to_structure"], p, g.apply(P["tuple_getitem"], like, i, loc=node.loc),
                     loc=node.loc) for i, p in enumerate(parts)]
    cls = record_class(kl)
    if is_namedtuple(kl):  # a NamedTuple of the items' gradients, as `to_structure` builds
        if cls is None:
            return None
        return g.apply(P["construct"], Constant(cls, node.loc),
                       g.apply(P["make_tuple"], *items, loc=node.loc), loc=node.loc,
                       name=node.name)
    return g.apply(P["make_tuple"], *items, loc=node.loc, name=node.name)


def _dataclass_gradient(node: Apply, d: Node, like: Node, kl: str) -> Node | None:
    """The gradient of a dataclass of known kind whose sensitivity is ZERO or a sum
    (`gadd`) of its fields' (`getattr_sens` of like): the dataclass with each field's
    gradient (`replace_fields`), each the sum of its pieces in the same order (what
    `runtime.gadd` of their dicts and `to_structure` compute)."""
    names = [f for f, _ in fields_of(kl)]  # type: ignore[union-attr]
    g = node.graph
    pieces = _field_pieces(d, like, names, g)
    if pieces is None:
        return None
    items = [g.apply(P["to_structure"], pieces.get(f, Constant(ZERO)),
                     g.apply(P["getattr"], like, f, loc=node.loc), loc=node.loc)
             for f in names]
    return g.apply(P["replace_fields"], like, Constant(tuple(names)),
                   g.apply(P["make_tuple"], *items, loc=node.loc), loc=node.loc,
                   name=node.name)


def _field_pieces(d: Node, like: Node, names: list[str], g: Graph,
                  depth: int = 0) -> dict[str, Node] | None:
    """A dataclass's sensitivity `d` field by field, where it is ZERO, a field's
    (`getattr_sens` of like) or a `gadd` of such; else None."""
    if isinstance(d, Constant) and d.value is ZERO:
        return {}
    if is_prim(d, "getattr_sens") and isinstance(d, Apply) and d.inputs[2] is like:
        name = d.inputs[3]
        if isinstance(name, Constant) and name.value in names and \
                name.value not in _ARRAY_ATTRIBUTES:
            return {name.value: d.inputs[1]}
        return None
    if not is_prim(d, "gadd") or depth > 100:
        return None
    a, b = (_field_pieces(x, like, names, g, depth + 1)
            for x in d.inputs[1:])  # type: ignore[attr-defined]
    if a is None or b is None:
        return None
    for f, piece in b.items():
        a[f] = g.apply(P["gadd"], a[f], piece, loc=d.loc) if f in a else piece
    return a


def _dict_gradient(node: Apply, d: Node, like: Node, kl: str) -> Node | None:
    """The gradient of a dict of known kind whose sensitivity is the sensitivities of
    some of its items (`getitem_sens`, `scatter_sens` of like with constant keys) or ZERO:
    a dict display of its items' gradients, in like's order, each the sum of its pieces in
    their order (what `runtime.scatter_sens` and `to_structure` compute)."""
    keys = [f for f, _ in fields_of(kl)]  # type: ignore[union-attr]
    pieces: dict[str, list[Node]] = {key: [] for key in keys}
    if not (isinstance(d, Constant) and d.value is ZERO):
        found = _scattered(d)
        if found is None or found[0] is not like:
            return None
        for index, piece in zip(found[1], found[2], strict=True):
            if not (isinstance(index, Constant) and type(index.value) is str and
                    index.value in pieces):
                return None
            pieces[index.value].append(piece)
    g = node.graph
    items = []
    for key in keys:
        total: Node = Constant(ZERO)
        for piece in pieces[key]:
            total = piece if isinstance(total, Constant) else \
                g.apply(P["gadd"], total, piece, loc=node.loc)
        items.append(g.apply(P["to_structure"], total, g.apply(P["getitem"], like, key,
                                                                 loc=node.loc), loc=node.loc))
    return g.apply(P["make_dict"], Constant(tuple(keys)),
                   g.apply(P["make_tuple"], *items, loc=node.loc), loc=node.loc,
                   name=node.name)


# Primitives whose result is a new array, never one of their inputs or a view of one
# (besides NumPy's ufuncs, which `_fresh` recognizes by type).
_FRESH = {"add", "sub", "mul", "truediv", "floordiv", "pow", "mod", "neg", "pos", "abs",
          "fdiv", "fpow",
          "matmul", "np.dot", "np.einsum", "np.tensordot", "np.outer", "np.concatenate",
          "np.stack", "np.zeros", "np.ones", "np.full", "np.copy", "np.where", "np.sum",
          "np.mean", "np.max", "np.min", "np.prod", "np.cumsum", "scatter_sens",
          "scatter_add", "scatter_add_known", "getitem_sens", "concat_sens", "matmul_tn",
          "logistic"}


def _fresh(node: Node) -> bool:
    """Whether `node`'s value is an array that nothing else holds: made by an operation
    that allocates its result (a reduction over constant axes of an array stays an
    array; its kind says so)."""
    p = prim_of(node)
    if p is None:
        return False
    if p.name in _FRESH:
        return True
    fn = getattr(np, p.name[3:], None) if p.name.startswith("np.") else None
    return isinstance(fn, np.ufunc)


@rewrite("check_scalar_output")
def _scalar_output_known(ctx: Context, node: Apply) -> Node | None:
    v = node.inputs[1]
    return v if kind(v, ctx.facts) in (FLOAT, SCALAR) else None


@rewrite("check_aux_output")
def _aux_output_known(ctx: Context, node: Apply) -> Node | None:
    v = node.inputs[1]
    items = _tuple_items(v)
    return v if items is not None and len(items) == 2 else None


@rewrite("ones_like_output")
def _seed_known(ctx: Context, node: Apply) -> Node | None:
    return Constant(1.0) if kind(node.inputs[1], ctx.facts) in (FLOAT, SCALAR) else None


@rewrite("np.swapaxes")
def _swapaxes_2d(ctx: Context, node: Apply) -> Node | None:
    x, i, j = node.inputs[1:]
    if ndim_of(kind(x, ctx.facts)) == 2 and isinstance(i, Constant) and \
            isinstance(j, Constant) and {i.value % 2, j.value % 2} == {0, 1}:
        return node.graph.apply(P["getattr"], x, "T", loc=node.loc, name=node.name)
    return None


def _transposed(node: Node, facts: LoopFacts | None) -> tuple[Node, int] | None:
    """(x, n) where node swaps the last two axes of x, an array of n >= 2 dimensions
    (`np.swapaxes(x, -1, -2)` or the like, `x.T` for a matrix)."""
    if is_prim(node, "np.swapaxes"):
        x, i, j = node.inputs[1:]  # type: ignore[attr-defined]
        n = ndim_of(kind(x, facts))
        if n is not None and n >= 2 and isinstance(i, Constant) and isinstance(j, Constant) \
                and type(i.value) is int and type(j.value) is int and \
                -n <= i.value < n and -n <= j.value < n and \
                {i.value % n, j.value % n} == {n - 2, n - 1}:
            return x, n
    if is_prim(node, "getattr") and isinstance(node.inputs[2], Constant) and \
            node.inputs[2].value == "T":  # type: ignore[attr-defined]
        x = node.inputs[1]  # type: ignore[attr-defined]
        if ndim_of(kind(x, facts)) == 2:
            return x, 2
    return None


@rewrite("np.swapaxes", "getattr")
def _transpose_twice(ctx: Context, node: Apply) -> Node | None:
    """Swapping the last two axes of a value whose last two axes were swapped gives the
    value back; a transposed matrix product is the product of the transposed factors in
    the other order, which cancels a transposition of a factor (each entry is a sum of
    the same products, which BLAS may add in another order)."""
    outer = _transposed(node, ctx.facts)
    if outer is None:
        return None
    x, n = outer
    inner = _transposed(x, ctx.facts)
    if inner is not None:
        return inner[0]
    if not is_prim(x, "matmul"):
        return None
    a, b = x.inputs[1:]  # type: ignore[attr-defined]
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
    the max, which is zero (`tapeless.opt.softmax`), and x holds the softmax term: x.
    Computed, the share is rounding noise: the result differs from it by that noise."""
    a, b = node.inputs[1:]
    for x, share in ((a, b), (b, a)):
        # (The share's form first: it is rare, and kinds are costly to infer for every sum.)
        w = max_share_cancels(share, ctx.facts)  # type: ignore[arg-type]
        if w is None:
            continue
        kx = kind(x, ctx.facts)
        if is_f8(kx) and shape_of(kx) == shape_of(kind(share, ctx.facts)) and _holds_term(x, w):
            return x
    return None


def _holds_term(x: Node, w: Node, depth: int = 0) -> bool:
    """Whether the sum x has the term w."""
    if x is w:
        return True
    if depth > 8 or not (is_prim(x, "add") or is_prim(x, "gadd")):
        return False
    return any(_holds_term(t, w, depth + 1) for t in x.inputs[1:])  # type: ignore[attr-defined]


def _without_neutral(ctx: Context, pairs: tuple, neutral: float) -> Node | None:
    """x, for the first (c, x) of `pairs` where c is the number `neutral` and x a float64
    array or a Python float (not an int: 1.0 * 2 is a float)."""
    for c, x in pairs:
        if isinstance(c, Constant) and type(c.value) in (float, int) and c.value == neutral \
                and is_f8(kind(x, ctx.facts)):
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


@rewrite("tuple_getitem")
def _getitem_of_tuple_sens(ctx: Context, node: Apply) -> Node | None:
    """`tuple_sens(d, i, like)[j]` is d where j == i, else ZERO."""
    t, j = node.inputs[1:]
    if is_prim(t, "tuple_sens") and isinstance(t, Apply) and isinstance(j, Constant) and \
            isinstance(t.inputs[2], Constant) and isinstance(t.inputs[2].value, int):
        i = t.inputs[2].value
        if isinstance(j.value, int) and j.value >= 0 and i >= 0:
            return t.inputs[1] if j.value == i else Constant(ZERO)
    return None


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


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
    m, _ = np.frexp(abs(node.value))
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
                _size(ss) < _size(sp):
            scaled = node.graph.apply(P["mul"], c, small, loc=node.loc)
            return node.graph.apply(P["mul"], scaled, big, loc=node.loc, name=node.name)
    return None


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


def _float_const(node: Node) -> float | None:
    return node.value if isinstance(node, Constant) and type(node.value) is float else None


def _scaled(node: Node) -> tuple[float, Node] | None:
    """(c, a) where node is `c * a`, `a * c` or `-a` for a float constant c."""
    if is_prim(node, "neg"):
        return -1.0, node.inputs[1]  # type: ignore[attr-defined]
    if is_prim(node, "mul"):
        a, b = node.inputs[1:]  # type: ignore[attr-defined]
        if _float_const(a) is not None:
            return a.value, b  # type: ignore[attr-defined]
        if _float_const(b) is not None:
            return b.value, a  # type: ignore[attr-defined]
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
    """A number broadcast to a shape, then scaled by a number (or negated), is the
    scaled number broadcast: `expand_reduced(c, x, ...) / s` is `expand_reduced(c / s,
    x, ...)` (the same operations on the same numbers, once instead of per element)."""
    if is_prim(node, "neg"):
        e = node.inputs[1]
        if isinstance(e, Apply) and is_prim(e, "expand_reduced") and \
                kind(e.inputs[1], ctx.facts) in (FLOAT, SCALAR):
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
            if kind(c, ctx.facts) not in (FLOAT, SCALAR):
                return None
            g = node.graph
            scaled = g.apply(node.inputs[0], *((c, s) if first else (s, c)), loc=node.loc)
            return g.apply(P["expand_reduced"], scaled, *e.inputs[2:], loc=node.loc,
                           name=node.name)
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
            _size(sx) == _size(sy) and sy != () and is_f8(ky):
        return node.graph.apply(P["expand_reduced"], c, y, None, False, loc=node.loc,
                                name=node.name)
    return None


@rewrite("add")
def _add_negated(ctx: Context, node: Apply) -> Node | None:
    """`a + -b` is `a - b` (exactly) for float64 values."""
    a, b = node.inputs[1:]
    if is_prim(b, "neg") and is_f8(kind(a, ctx.facts)) and is_f8(kind(b, ctx.facts)):
        assert isinstance(b, Apply)
        return node.graph.apply(P["sub"], a, b.inputs[1], loc=node.loc, name=node.name)
    return None


@rewrite("tuple_getitem")
def _concat_piece(ctx: Context, node: Apply) -> Node | None:
    """`concat_sens(d, arrays, axis)[i]` is a slice of d where the arrays' shapes are
    known."""
    t, i = node.inputs[1:]
    if not is_prim(t, "concat_sens") or not isinstance(i, Constant) or type(i.value) is not int:
        return None
    assert isinstance(t, Apply)
    d, arrays, axis = t.inputs[1:]
    items = sequence_items(arrays, ctx.facts)
    kd = kind(d, ctx.facts)
    if items is None or not 0 <= i.value < len(items) or not isinstance(axis, Constant) or \
            type(axis.value) is not int or dtype_of(kd) != "f8":
        return None
    kinds = [kind(a, ctx.facts) for a in items]
    shapes = [shape_of(k) for k in kinds]
    if any(s is None or dtype_of(k) != "f8" or not -len(s) <= axis.value < len(s)
           for s, k in zip(shapes, kinds, strict=True)):
        return None
    ax = axis.value % len(shapes[0])  # type: ignore[arg-type]
    start = sum(s[ax] for s in shapes[:i.value])  # type: ignore[index]
    stop = start + shapes[i.value][ax]  # type: ignore[index]
    whole = shapes[0][:ax] + (sum(s[ax] for s in shapes),) + shapes[0][ax + 1:]  # type: ignore
    if shape_of(kd) != whole:
        return None
    index = (slice(None),) * ax + (slice(start, stop),)
    return node.graph.apply(P["getitem"], d, index, loc=node.loc, name=node.name)


@rewrite("split_indices")
def _split_indices_known(ctx: Context, node: Apply) -> Node | None:
    """Where `np.concatenate(arrays, axis)` splits its gradient, from the arrays' shapes."""
    arrays, axis = node.inputs[1:]
    items = sequence_items(arrays, ctx.facts)
    if items is None or not isinstance(axis, Constant) or type(axis.value) is not int:
        return None
    shapes = [shape_of(kind(i, ctx.facts)) for i in items]
    if any(s is None or not -len(s) <= axis.value < len(s) for s in shapes):
        return None
    ends = np.cumsum([s[axis.value] for s in shapes])[:-1]  # type: ignore[index]
    return Constant([int(e) for e in ends])


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
                tuple(n for i, n in enumerate(sa) if i not in axes) == target:  # type: ignore[arg-type]
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
    if sd is None or sx is None or not is_f8(kd) or _size(sx) >= _size(sd):
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
def _weighted_row_sum(ctx: Context, node: Apply) -> Node | None:
    """A sum over the rows of a matrix (or a stack of them) scaled row by row is a
    vector-matrix product: `np.sum(c[..., :, None] * a, axis=-2, keepdims=True)` is
    `c[..., None, :] @ a` (c of shape a.shape[:-1]). NumPy sums the rows of a matrix
    of few columns slowly (3-14x the product, for 1000 rows of 2 to 64 columns). The same
    products, added in another order."""
    x, axis, dtype, keepdims = node.inputs[1:]
    if not is_prim(x, "mul") or not (isinstance(dtype, Constant) and dtype.value is None) or \
            not isinstance(keepdims, Constant) or type(keepdims.value) is not bool:
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
                sc != sa[:-1] or not isinstance(at, Constant) or \
                not isinstance(axis, Constant) or \
                normalized_axes(at.value, len(sa)) != (len(sa) - 1,) or \
                normalized_axes(axis.value, len(sa)) != (len(sa) - 2,):
            continue
        g = node.graph
        if not keepdims.value and len(sa) == 2:  # (a vector times a matrix: a vector)
            return g.apply(P["matmul"], c, a, loc=node.loc, name=node.name)
        row = g.apply(P["np.expand_dims"], c, -2, loc=node.loc)
        product = g.apply(P["matmul"], row, a, loc=node.loc,
                          name=node.name if keepdims.value else "")
        return product if keepdims.value else \
            g.apply(P["np.squeeze"], product, -2, loc=node.loc, name=node.name)
    return None


@rewrite("getitem_sens")
def _getitem_sens_reshape(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of `x[None, :, :]` (new axes and whole slices only) is `d` reshaped
    to x's shape."""
    d, x, index = node.inputs[1:]
    kx = kind(x, ctx.facts)
    if not (isinstance(index, Constant) and type(index.value) is tuple) or \
            shape_of(kx) is None or not is_f8(kx) or not is_f8(kind(d, ctx.facts)):
        return None
    parts = index.value
    if not all(p is None or p == slice(None) for p in parts) or \
            sum(p is not None for p in parts) > len(shape_of(kx)):  # type: ignore[arg-type]
        return None
    return node.graph.apply(P["reshape_like"], d, x, loc=node.loc, name=node.name)


# Primitives that compute a value from their inputs alone (not iterators such as
# `enumerate(xs)`, which a first use consumes; not fresh mutable stacks).
_SHARABLE = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos",
             "fdiv", "fpow",
             "abs", "float", "len", "getitem", "tuple_getitem", "getattr", "make_tuple",
             "make_slice", "eq", "ne", "lt", "le", "gt", "ge", "not_", "is_", "is_not",
             "switch", "gadd", "sens_of", "unbroadcast", "broadcast_like", "reshape_like",
             "expand_reduced", "reduced_count", "getitem_sens", "tuple_sens", "getattr_sens",
             "split_indices", "to_structure", "take_sens", "diag_sens"}


def _input_key(x: Node) -> object:
    if isinstance(x, Constant):
        v = x.value
        if v is None or type(v) in (bool, int, float, str):
            return ("v", type(v).__name__, repr(v))
        if type(v) is slice:
            return ("s", _input_key(Constant(v.start)), _input_key(Constant(v.stop)),
                    _input_key(Constant(v.step)))
        if type(v) is tuple:
            return ("t",) + tuple(_input_key(Constant(i)) for i in v)
        return ("o", id(v))
    return ("n", x.id)


def _cse(ctx: Context, node: Apply) -> Node | None:
    """A pure primitive applied to the same inputs as an earlier node of its graph is
    that node."""
    p = prim_of(node)
    if p is None or p.effect or p.statement or not (
            p.name in _SHARABLE or p.name.startswith(("np.", "math."))):
        return None
    key = (node.graph.id,) + tuple(_input_key(x) for x in node.inputs)
    first = ctx.computed.setdefault(key, node)
    return None if first is node else first


# --- control flow and constants ---------------------------------------------------------------


@rewrite("switch")
def _switch_constant(ctx: Context, node: Apply) -> Node | None:
    c = node.inputs[1]
    if isinstance(c, Constant) and not isinstance(c.value, Graph):
        try:
            return node.inputs[2] if c.value else node.inputs[3]
        except Exception:  # noqa: BLE001  (an object whose truth raises: leave it)
            return None
    return None


_FOLDABLE = {"make_tuple", "isinstance", "len", "is_", "is_not", "not_", "truth", "eq", "ne",
             "lt", "le", "gt", "ge", "add", "sub", "mul", "truediv", "neg", "tuple_getitem",
             "contains", "not_contains", "make_slice", "np.ndim"}


def _fold(ctx: Context, node: Apply) -> Node | None:
    p = prim_of(node)
    if p is None or p.name not in _FOLDABLE or p.impl is None:
        return None
    args = node.inputs[1:]
    if not all(const(a) for a in args):
        return None
    values = [a.value for a in args]  # type: ignore[attr-defined]
    if any(v is ZERO for v in values) and p.name not in ("is_", "is_not"):
        return None
    try:
        return Constant(p.impl(*values))
    except Exception:  # noqa: BLE001  (folding must never change which error is raised)
        return None


# --- inlining ---------------------------------------------------------------------------------


def _inline(ctx: Context, node: Apply) -> tuple[Node, list[Node]] | None:
    callee = node.inputs[0]
    if not is_constant_graph(callee):
        return None
    g: Graph = callee.value
    if g is ctx.root or g.output is None or len(node.inputs) - 1 != len(g.parameters):
        return None
    if ctx.is_recursive(g):
        return None
    if ctx.call_sites.get(g.id, 0) > 1 and node_count(g) > INLINE_MAX_NODES:
        return None
    return inline_body(g, node.graph, node.inputs[1:], loc=node.loc)  # type: ignore[arg-type]


def _select_constants(ctx: Context, node: Apply) -> Node | None:
    """`switch(c, lambda: A, lambda: B)()` where each branch only returns a constant is
    `switch(c, A, B)`: a plain selection (then calling it is an ordinary `if`)."""
    if len(node.inputs) != 1 or not is_prim(node.inputs[0], "switch"):
        return None
    sw = node.inputs[0]
    assert isinstance(sw, Apply)
    outs = []
    for b in sw.inputs[2:4]:
        if not is_constant_graph(b):
            return None
        g: Graph = b.value
        if g.parameters or g.effects or not isinstance(g.output, Constant) or graph_nodes(g):
            return None
        outs.append(g.output)
    return node.graph.apply(P["switch"], sw.inputs[1], *outs, loc=node.loc, name=node.name)


def _pure(node: Node) -> bool:
    p = prim_of(node)
    return p is not None and not p.effect and not p.statement


def _idle_loop(node: Node) -> bool:
    """A loop over a range of constant bounds, without state, whose body does nothing
    (`for j in range(1, 3): pass`, what remains of a loop whose results are unused)."""
    if not is_prim(node, "for_range") or len(node.inputs) != 5:  # type: ignore[attr-defined]
        return False
    start, stop, step, body = node.inputs[1:]  # type: ignore[attr-defined]
    if not all(isinstance(b, Constant) and type(b.value) is int for b in (start, stop, step)) \
            or step.value == 0 or not is_constant_graph(body):
        return False
    g: Graph = body.value
    return not g.effects and isinstance(g.output, Constant) and \
        type(g.output.value) is tuple and not g.output.value and not graph_nodes(g)


# The passes in the order `TAPELESS_OPTIMIZE=N` and `tapeless show --stage` enable them.
PASS_ORDER = ["inline", "select_constants", "getitem_of_tuple", "tuple_of_tuple", "concat_tuples",
              "getitem_of_tuple_call", "list_of_display",
              "call_star_known", "len_of_tuple", "repeat_zero_tuple", "constant_fold",
              "switch_constant", "gadd_zero", "sens_of_nonzero", "is_zero",
              "getitem_of_tuple_sens", "gadd_scatter", "tuple_sens_display", "gadd_displays",
              "scatter_whole", "double_negation",
              "isinstance_numeric", "ndim_known",
              "attribute_known", "unbroadcast_known", "to_structure_known",
              "scalar_output_known", "aux_output_known", "seed_known", "swapaxes_2d", "times_one",
              "cse", "double", "scale_smaller_factor",
              "broadcast_implicitly", "sum_then_negate", "getitem_sens_reshape", "shape_sens",
              "add_negated", "split_indices_known", "fold_scalings", "reshape_broadcast",
              "concat_piece", "unbroadcast_to_sum", "sum_without_keepdims",
              "drop_pure_effects", "loop_state", "branch_backprops", "lower_stacks",
              "class_of_known", "max_share_zero", "transpose_twice",
              "reduced_count_known", "getitem_sens_of_tuple", "power_of_one",
              "scale_broadcast", "sum_before_product", "plus_zero", "sum_over_no_axes",
              "zeros_scaled", "unbroadcast_zeros", "plus_zeros", "weighted_row_sum",
              "unused_parameters", "reshape_to_own_shape", "ieee_not_needed",
              "block_products"]


def passes_up_to(level: int | str) -> set[str]:
    """The passes enabled at a level: a count, or the name of the last pass."""
    if isinstance(level, str):
        if level not in PASS_ORDER:
            raise ValueError(f"unknown pass {level!r}; passes: {', '.join(PASS_ORDER)}")
        return set(PASS_ORDER[:PASS_ORDER.index(level) + 1])
    return set(PASS_ORDER[:level])


# --- the driver -------------------------------------------------------------------------------


@dataclass
class PassLog:
    counts: dict[str, int] = field(default_factory=dict)
    # Per round: (nodes matched against the rules, nodes in the program when it began).
    rounds: list[tuple[int, int]] = field(default_factory=list)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def optimize(root: Graph, enabled: set[str] | None = None, max_rounds: int = 30,
             worklist: bool = True) -> PassLog:
    """Rewrite `root` and the graphs it reaches, in place, until nothing changes.
    `enabled` limits the rewrites (by name, e.g. {"inline", "getitem_of_tuple"}).
    After the first round, each round matches only the nodes a change can have made
    match (a worklist); when it is empty, one round over every node confirms the fixed
    point. `worklist=False` matches every node in every round."""
    log = PassLog()
    check = os.environ.get("TAPELESS_CHECK_IR") == "1"
    hints: dict[int, list] = {}  # loop state kinds, from one round to the next
    _own_outputs(root)
    work: Worklist | None = None  # None: every node
    for _ in range(max_rounds):
        more, after, every_node = _round(root, enabled, log, hints, work)
        if check and (errors := scope_errors(root)):
            raise AssertionError("optimizer broke scoping: " + "; ".join(errors[:5]))
        if not more:
            if every_node:
                break
            # The worklist matched nothing: one round over every node confirms the fixed
            # point (a change far upstream can make a kind, and so a rule, apply here).
            work = None
            continue
        work = after if worklist else None
    # Last, once the program is final: mutable stacks where no one can tell.
    if _allowed(enabled, "lower_stacks") and lower_stacks(root, _scatter_known(root)):
        log.add("lower_stacks")
    if _allowed(enabled, "block_products") and (n := block_products(root)):
        log.add("block_products", n)
    _settle_owns(root)
    return log


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
        _apply(root, replace, {}, None)
    return len(replace)


def _own_outputs(root: Graph) -> None:
    """The results `root` returns that are new arrays in CPython stay new (`own`, settled
    at the end): a rewrite such as `x * 1.0 -> x` must not hand the caller its own
    argument back. A result made in a branch, a called function or a loop body is owned
    there: `x = x * 1.0` in a loop gives a new array after one step or more, but the
    argument itself after none, as in CPython."""
    seen: set[tuple[int, int | None]] = set()

    def enter(g: Graph, k: int | None) -> None:
        """Own what `g` returns (its item `k`, if `k` is not None)."""
        if (g.id, k) in seen or g.output is None:
            return
        seen.add((g.id, k))
        out = g.output
        if k is None:
            g.output = owned(out)
        elif is_prim(out, "make_tuple") and k + 1 < len(out.inputs):  # type: ignore
            assert isinstance(out, Apply)
            out.inputs = out.inputs[:k + 1] + [owned(out.inputs[k + 1])] + \
                out.inputs[k + 2:]
        g.invalidate()

    def owned(n: Node) -> Node:
        if type(n) is not Apply or is_prim(n, "own"):
            return n
        if _fresh(n):
            return n.graph.apply(P["own"], n)
        if is_prim(n, "make_tuple"):
            n.inputs = [n.inputs[0]] + [owned(i) for i in n.inputs[1:]]
            n.graph.invalidate()
        elif is_prim(n, "tuple_getitem") and isinstance(n.inputs[2], Constant) and \
                type(n.inputs[2].value) is int:
            src, k = n.inputs[1], n.inputs[2].value
            at = 2 if is_prim(src, "while_loop") else 4 if is_prim(src, "for_range") else 0
            if at and is_constant_graph(src.inputs[at]):  # type: ignore[union-attr]
                assert isinstance(src, Apply)
                enter(src.inputs[at].value, k)  # type: ignore[attr-defined]
                if 0 <= k < len(src.inputs) - at - 1:  # (after no step: the initial value)
                    i = at + 1 + k
                    src.inputs = src.inputs[:i] + [owned(src.inputs[i])] + src.inputs[i + 1:]
                    src.graph.invalidate()
            elif isinstance(src, Apply) and is_constant_graph(src.inputs[0]):
                enter(src.inputs[0].value, k)  # type: ignore[attr-defined]
        elif is_constant_graph(n.inputs[0]):
            enter(n.inputs[0].value, None)  # type: ignore[attr-defined]
        elif is_switch_call(n):
            for branch in n.inputs[0].inputs[2:4]:  # type: ignore[attr-defined]
                enter(branch.value, None)  # type: ignore[attr-defined]
        return n

    enter(root, None)


def _settle_owns(root: Graph) -> None:
    """`own(d)`, a gradient array the caller gets to own, is d itself where d is made by
    an operation that allocates its result, and a copy otherwise (a view, such as a
    broadcast number, or another argument). Decided here, on the final program."""
    replace: dict[int, Node] = {}
    facts: LoopFacts | None = None
    for g in reachable_graphs(root):
        for node in graph_nodes(g):
            if not is_prim(node, "own"):
                continue
            assert isinstance(node, Apply)
            d = node.inputs[1]
            if _fresh(d):
                replace[node.id] = d
                continue
            if is_prim(d, "expand_reduced"):
                # A number broadcast to x's shape: a new array of that shape, filled in,
                # without computing x (often computed only for its shape).
                assert isinstance(d, Apply)
                c, x, axis, keepdims = d.inputs[1:]
                facts = facts or LoopFacts(root)
                shape = shape_of(kind(x, facts))
                if kind(c, facts) == FLOAT and shape is not None and \
                        isinstance(axis, Constant) and axis.value is None and \
                        isinstance(keepdims, Constant) and keepdims.value is False:
                    replace[node.id] = g.apply(P["np.full"], shape, c, loc=node.loc,
                                               name=node.name)
    if replace:
        _apply(root, replace, {}, None)


def _scatter_known(root: Graph) -> Callable[[Node, Node, Node], bool]:
    """Whether kinds prove, for `scatter_add(acc, x, indices, ds)`, what it tests on each
    call (then `scatter_add_known` does the same without the tests): x a float64 array (or
    a list of float64 values of one kind), int indices, and pieces that are float64
    values of an element's kind and never ZERO."""
    made: list[LoopFacts] = []  # (made at the first question: most programs ask none)

    def known(x: Node, indices: Node, ds: Node) -> bool:
        if not made:
            made.append(LoopFacts(root))
        facts = made[0]
        kx = kind(x, facts)
        item = element_of(kx)
        if item is None and is_f8(kx) and shape_of(kx):
            item = array("f8", shape_of(kx)[1:])  # type: ignore[index]
        if item is None or not (item == FLOAT or (is_f8(item) and shape_of(item) is not None)):
            return False
        index_items, d_items = _tuple_items(indices), _tuple_items(ds)
        return index_items is not None and d_items is not None and \
            all(kind(i, facts) == INT for i in index_items) and \
            all(kind(d, facts) in (item, FLOAT) and never_zero(d, facts) for d in d_items)

    return known


def _allowed(enabled: set[str] | None, name: str) -> bool:
    return enabled is None or name in enabled


class _Sweep:
    """One round's pass over the nodes. Nodes are visited inputs first, and a node is
    pointed at its inputs' replacements before it is matched, so chains of rewrites
    finish in one round. The body an inlining copies is visited at once (one level: what
    that inlines waits); the nodes other rewrites make are matched in the next round
    (matching them at once saves no round on the benchmarks and changes the fixed point,
    since the rules of one primitive are tried in a fixed order)."""

    def __init__(self, ctx: Context, enabled: set[str] | None, log: PassLog,
                 work: Worklist | None):
        self.ctx, self.enabled, self.log, self.work = ctx, enabled, log, work
        self.replace: dict[int, Node] = {}
        self.spliced: dict[int, list[Node]] = {}
        self.touched: set[int] = set()  # graphs whose nodes were redirected or changed
        self.changed: set[int] = set()  # nodes whose inputs changed
        self.matched = 0  # nodes matched against the rules
        self.inlined = False  # whether the last match inlined a call

    def visit(self, node: Apply, g: Graph, copied: bool = False) -> None:
        """Match `node` (`copied`: a node an inlining just made)."""
        callee = node.inputs[0]
        redirected = bool(self.replace) and _redirect(node, self.replace)
        if redirected:
            self.touched.add(g.id)
            self.changed.add(node.id)
            # Copies made later in the sweep (inlining) must see the new inputs: the
            # enclosing graphs schedule this graph's free variables.
            h: Graph | None = g
            while h is not None:
                h.invalidate()
                h = h.parent
        if self.work is not None and not redirected and not copied and \
                node.id not in self.work.nodes:
            # Not on the worklist: nothing it looks at has changed. It still takes part
            # in common-subexpression elimination (an earlier node may now equal it).
            if prim_of(node) is not None and _allowed(self.enabled, "cse") and \
                    (result := _cse(self.ctx, node)) is not None:
                self.log.add("cse")
                self.replace[node.id] = result
            return
        # (A callee found in this sweep waits for the next round to be inlined: its body
        # may not be simplified yet, and its call counts are stale.)
        self.matched += 1
        mark = serial_mark()  # the nodes made from here on are new
        self.inlined = False
        result = self._match(node, g, inline=node.inputs[0] is callee)
        if result is not None and result is not node:
            self.replace[node.id] = result
            if self.inlined and not copied and isinstance(result, Apply) and \
                    result.graph is g:
                for new in _made_since(result, g, mark):
                    self.visit(new, g, copied=True)

    def _match(self, node: Apply, g: Graph, inline: bool) -> Node | None:
        ctx, enabled, log = self.ctx, self.enabled, self.log
        p = prim_of(node)
        result: Node | None = None
        if p is not None and _allowed(enabled, "cse") and \
                (result := _cse(ctx, node)) is not None:
            log.add("cse")
        elif p is not None:
            for name, fn in RULES.get(p.name, []):
                if _allowed(enabled, name):
                    result = fn(ctx, node)
                    if result is not None:
                        log.add(name)
                        break
            if result is None and _allowed(enabled, "constant_fold"):
                result = _fold(ctx, node)
                if result is not None:
                    log.add("constant_fold")
        elif _allowed(enabled, "select_constants") and \
                (result := _select_constants(ctx, node)) is not None:
            log.add("select_constants")
        elif inline and _allowed(enabled, "inline"):
            done = _inline(ctx, node)
            if done is not None:
                result, effects = done
                if node in g.effects:
                    self.spliced[node.id] = effects
                elif effects:
                    # A call kept only for its value (e.g. in tail position): its
                    # effects now belong to the caller.
                    g.effects = g.effects + effects
                    self.touched.add(g.id)
                log.add("inline")
                self.inlined = True
        return result


def _made_since(result: Apply, g: Graph, mark: int) -> list[Apply]:
    """The nodes of `g` made after `mark` that `result` depends on, inputs first."""
    order: list[Apply] = []
    seen: set[int] = set()

    def walk(n: Apply) -> None:
        seen.add(n.id)
        for i in n.inputs:
            if type(i) is Apply and i.graph is g and i.id > mark and i.id not in seen:
                walk(i)
        order.append(n)

    walk(result)
    return order


@dataclass
class Worklist:
    """The nodes the next round matches: those a change can have made match a rule.
    Kinds are inferred afresh each round, so the worklist is matched in rounds too."""
    nodes: set[int]
    calls: dict[int, int]  # graph id -> call sites (2 per use as a value), for the round


WORKLIST_DEPTH = 3  # users of a changed node matched again (rules look this deep)
# Programs smaller than this match every node in every round: making the worklist costs
# more than it saves (measured: the scalar loop's 78 nodes, the MLP's 141).
WORKLIST_MIN_NODES = 300


def _worklist(root: Graph, changed: set[int], mark: int, graphs_changed: set[int],
              calls: dict[int, int]) -> Worklist:
    """The worklist after a round: the nodes made in it (ids above `mark`) or whose
    inputs it changed, with their users to WORKLIST_DEPTH; where a graph changed, the
    nodes that call or pass it (the value they return may have a new kind) and the users
    of its parameters (they may be passed new kinds); where a graph's count of call sites
    changed, its call sites (it may now be inlined)."""
    users: dict[int, list[Apply]] = {}
    refs: dict[int, list[Apply]] = {}  # graph id -> nodes with the graph as an input
    params: dict[int, list[Parameter]] = {}
    counts: dict[int, int] = {}
    seeds: list[Apply] = []
    for g in reachable_graphs(root):
        params[g.id] = g.parameters
        for n in graph_nodes(g):
            assert isinstance(n, Apply)
            if n.id > mark or n.id in changed:
                seeds.append(n)
            for pos, i in enumerate(n.inputs):
                users.setdefault(i.id, []).append(n)
                if is_constant_graph(i):
                    gid = i.value.id  # type: ignore[attr-defined]
                    refs.setdefault(gid, []).append(n)
                    counts[gid] = counts.get(gid, 0) + (1 if pos == 0 else 2)
    depth: dict[int, int] = {}
    todo: list[tuple[Apply, int]] = [(n, 0) for n in seeds]
    todo += [(n, 0) for gid, c in counts.items() if calls.get(gid) != c
             for n in refs.get(gid, ())]
    graphs_done: set[int] = set()
    pending_graphs = set(graphs_changed)
    while todo or pending_graphs:
        for gid in pending_graphs - graphs_done:
            graphs_done.add(gid)
            todo += [(n, 0) for n in refs.get(gid, ())]
        pending_graphs = set()
        next_todo: list[tuple[Apply, int]] = []
        for n, d in todo:
            if depth.get(n.id, WORKLIST_DEPTH + 1) <= d:
                continue
            depth[n.id] = d
            if d == 0 and n.graph.id not in graphs_done:
                pending_graphs.add(n.graph.id)
            if d < WORKLIST_DEPTH:
                next_todo += [(u, d + 1) for u in users.get(n.id, ())]
                for i in n.inputs:
                    if is_constant_graph(i):
                        for p in params.get(i.value.id, ()):  # type: ignore[attr-defined]
                            next_todo += [(u, d + 1) for u in users.get(p.id, ())]
        todo = next_todo
    return Worklist(set(depth), counts)


def _round(root: Graph, enabled: set[str] | None, log: PassLog, hints: dict,
           work: Worklist | None) -> tuple[bool, Worklist | None, bool]:
    """One round: match the nodes of `work` (every node if None). Returns whether anything
    changed, the next round's worklist (None: every node) and whether this round matched
    every node."""
    # (Kinds are inferred afresh each round: a rewrite keeps a value but not always its
    # kind, e.g. the seed np.float64(1.0) becomes 1.0.)
    mark = serial_mark()
    graphs = reachable_graphs(root)
    ctx = Context(root, facts=LoopFacts(root, graphs), enabled=enabled)
    ctx.facts.hints = hints  # type: ignore[union-attr]
    if work is not None:
        ctx.call_sites = work.calls
    else:
        for g in graphs:
            for n in graph_nodes(g):
                for pos, inp in enumerate(n.inputs):
                    if is_constant_graph(inp):  # used as a value: never "called once"
                        gid = inp.value.id  # type: ignore[attr-defined]
                        ctx.call_sites[gid] = ctx.call_sites.get(gid, 0) + (2 if pos else 1)
    total = sum(len(graph_nodes(g)) for g in graphs)
    if work is not None and 2 * len(work.nodes) > total:
        # Most nodes are on the worklist: match them all, so that if nothing matches
        # this round confirms the fixed point (no second round over every node).
        work = None
    sweep = _Sweep(ctx, enabled, log, work)
    for g in graphs:
        for node in graph_nodes(g):
            sweep.visit(node, g)  # type: ignore[arg-type]
    log.rounds.append((sweep.matched, total))
    replace, spliced, touched = sweep.replace, sweep.spliced, sweep.touched
    changed = bool(replace)
    if _allowed(enabled, "drop_pure_effects"):
        for g in graphs:
            kept = [e for e in g.effects
                    if not (_pure(e) or _idle_loop(e)) or e.id in replace]
            if len(kept) != len(g.effects):
                log.add("drop_pure_effects")
                g.effects = kept
                touched.add(g.id)
                changed = True
    structural = False  # loop and branch rewrites change graphs in place, anywhere
    if not replace and _allowed(enabled, "loop_state"):
        assert ctx.facts is not None
        # Not both in one round: pruning copies closures that may hold the loops
        # drop_dead_state renumbers (the copies would keep the old numbering).
        # Each step may enable the next (a slot dropped frees a saved value): steps run
        # until none applies, each on facts about the rebuilt loops (no sweep between).
        facts = ctx.facts
        for _ in range(LOOP_STEPS_MAX):
            if not (drop_dead_state(root, facts, replace) or
                    prune_saved(root, facts, replace)):
                break
            log.add("loop_state")
            structural = True
            _apply(root, replace, spliced, None)  # (all graphs: this round's changes too)
            replace = {}
            facts = LoopFacts(root)
        if structural:
            hints.clear()  # (loops rebuilt, slots renumbered)
            return True, None, work is None
    if not changed and _allowed(enabled, "branch_backprops"):  # alone in its round
        if branch_backprops(graphs, uses(graphs), replace):
            log.add("branch_backprops")
            changed = structural = True
    if not changed and _allowed(enabled, "unused_parameters"):  # alone in its round
        if (n := drop_unused_parameters(root, graphs)):
            log.add("unused_parameters", n)
            changed = structural = True
    redirected = sweep.changed
    if replace or touched or structural:
        _apply(root, replace, spliced, None if structural else touched, redirected)
    if structural:
        hints.clear()  # (loops rebuilt, slots renumbered)
        return changed, None, work is None
    if not changed:
        return False, None, work is None
    if total < WORKLIST_MIN_NODES:
        return True, None, work is None
    after = _worklist(root, redirected, mark, touched, ctx.call_sites)
    # (An empty worklist: the next round is the one over every node that confirms the
    # fixed point, and runs the whole-program steps a round without rewrites runs.)
    return True, after if after.nodes else None, work is None


def drop_unused_parameters(root: Graph, graphs: list[Graph]) -> int:
    """Remove the parameters of a function that nothing reads, and the arguments its
    calls pass them (a parameter a recursive function only passes on to itself, in the
    same place, counts as unread). Only for functions used by direct calls alone (not
    `root`, not a value that escapes, not a loop body or a branch), with positional
    parameters only. Returns how many parameters were removed."""
    calls: dict[int, list[Apply]] = {}
    escaped: set[int] = {root.id}
    users: dict[int, list[tuple[Apply, int]]] = {}
    for g in graphs:
        if is_constant_graph(g.output):
            escaped.add(g.output.value.id)  # type: ignore[union-attr]
        if isinstance(g.output, Parameter):
            escaped.add(-g.output.id)  # (a parameter returned is read)
        for n in graph_nodes(g):
            assert isinstance(n, Apply)
            for pos, i in enumerate(n.inputs):
                if is_constant_graph(i):
                    gid = i.value.id  # type: ignore[attr-defined]
                    if pos == 0:
                        calls.setdefault(gid, []).append(n)
                    else:
                        escaped.add(gid)
                elif type(i) is Parameter:
                    users.setdefault(i.id, []).append((n, pos))
    removed = 0
    for g in graphs:
        if g.id in escaped or g.id not in calls or g.vararg or any(
                spec.kind != "pos" for spec in getattr(g, "signature", None) or ()):
            continue
        sites = calls[g.id]
        if any(len(c.inputs) - 1 != len(g.parameters) for c in sites):
            continue
        drop = [i for i, p in enumerate(g.parameters) if -p.id not in escaped and all(
            pos == i + 1 and is_constant_graph(n.inputs[0]) and
            n.inputs[0].value is g  # type: ignore[attr-defined]
            for n, pos in users.get(p.id, ()))]
        if not drop:
            continue
        for c in sites:
            c.inputs = [x for k, x in enumerate(c.inputs) if k - 1 not in drop]
        g.parameters = [p for i, p in enumerate(g.parameters) if i not in drop]
        if getattr(g, "signature", None):
            g.signature = [s for i, s in enumerate(g.signature)  # type: ignore[attr-defined]
                           if i not in drop]
        removed += len(drop)
    return removed


def _resolve(x: Node, replace: dict[int, Node]) -> Node:
    seen = 0
    while x.id in replace and seen < 100:
        x = replace[x.id]
        seen += 1
    return x


def _redirect(node: Apply, replace: dict[int, Node]) -> bool:
    """Point `node`'s inputs at their replacements; whether any changed."""
    inputs = node.inputs
    if not any(i.id in replace for i in inputs):
        return False
    was_value_call = not is_constant_graph(inputs[0])
    node.inputs = [_resolve(i, replace) for i in inputs]
    if was_value_call:
        rebind_value_call(node)
    return True


def _apply(root: Graph, replace: dict[int, Node], spliced: dict[int, list[Node]],
           stale: set[int] | None, redirected: set[int] | None = None) -> None:
    """Redirect every use of a replaced node to its replacement, in every graph, and
    forget the schedules this changes: those of the graphs in `stale` (every graph if
    None) and of the graphs whose nodes or effects change here, then, transitively, of
    the graphs using them (a graph's schedule depends on its closures' free variables)."""
    fixed_effects: set[int] = set()
    graphs = reachable_graphs(root)
    if stale is None:
        for g in graphs:
            g.invalidate()
    elif stale:
        _forget(graphs, stale)
    graphs = reachable_graphs(root)
    todo: set[int] | None = None  # the graphs to visit (all, first)
    while True:
        changed: set[int] = set()
        for g in graphs:
            if todo is not None and g.id not in todo:
                continue  # (visited, and its schedule has not changed since)
            if g.id not in fixed_effects:
                fixed_effects.add(g.id)
                if any(e.id in replace for e in g.effects):
                    effects: list[Node] = []
                    for e in g.effects:
                        if e.id in spliced:
                            effects.extend(spliced[e.id])
                        elif e.id in replace:
                            r = _resolve(e, replace)
                            if isinstance(r, Apply) and r.graph is g and not _pure(r):
                                effects.append(r)
                        else:
                            effects.append(e)
                    g.effects = effects
                    g.invalidate()
                    changed.add(g.id)
            if g.output is not None and g.output.id in replace:
                g.output = _resolve(g.output, replace)
                g.invalidate()
                changed.add(g.id)
            for node in graph_nodes(g):
                if _redirect(node, replace):  # type: ignore[arg-type]
                    changed.add(g.id)
                    if redirected is not None:
                        redirected.add(node.id)
        if not changed:
            return
        # Only graphs with a new schedule can hold nodes not redirected yet.
        todo = _forget(graphs, changed)
        seen = {g.id for g in graphs}
        graphs = reachable_graphs(root)
        todo |= {g.id for g in graphs if g.id not in seen}


def _forget(graphs: list[Graph], changed: set[int]) -> set[int]:
    """Invalidate the graphs in `changed` and every graph that uses one of them; returns
    the invalidated graphs."""
    users: dict[int, set[int]] = {}
    for g in graphs:
        for h in used_graphs(g):
            users.setdefault(h.id, set()).add(g.id)
    stale = set(changed)
    todo = list(changed)
    while todo:
        for u in users.get(todo.pop(), ()):
            if u not in stale:
                stale.add(u)
                todo.append(u)
    for g in graphs:
        if g.id in stale:
            g.invalidate()
    return stale
