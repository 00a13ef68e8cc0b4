"""Rewrites of tuples, lists, dicts and records: indexing a display, concatenation, lengths,
the sensitivities of items and fields, the gradient of a container argument built from
its items' gradients, and calls whose callee becomes known."""

from __future__ import annotations

import numpy as np

from ..ad.callees import known_callee
from ..ir.clone import rebind_value_call
from ..ir.nodes import Apply, Constant, Graph, Node, Parameter, is_constant_graph
from ..runtime import ZERO, holds_float
from .kinds import (
    FLOAT,
    INT,
    NUMERIC,
    SCALAR,
    ArrayKind,
    DictKind,
    RecordKind,
    as_tuple,
    class_of_kind,
    dtype_of,
    fields_of,
    is_container,
    is_dict,
    is_list,
    is_namedtuple,
    is_record,
    is_tuple,
    item_nodes,
    items_of,
    kind,
    list_items_of,
    ndim_of,
    record_class,
    same_array,
    sequence_items,
    shape_of,
)
from .loops import LoopFacts
from .patterns import is_prim, scattered, tuple_items
from .rules import Context, P, rewrite
from .zeros import never_zero


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
    if is_prim(x, "make_list") and len(node.inputs) == 2:  # tuple([a, b]) is (a, b)
        assert isinstance(x, Apply)
        return node.graph.apply(P["make_tuple"], *x.inputs[1:], loc=node.loc,
                                name=node.name)
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
    x = t.inputs[1]
    if not _is_sequence(x, ctx.facts):
        return None
    return node.graph.apply(P["getitem"], x, i, loc=node.loc, name=node.name)


def _is_sequence(x: Node, facts: LoopFacts | None, depth: int = 0) -> bool:
    """Whether x is surely a list, a tuple or an array (or the sensitivity of a list,
    which is a list or a tuple: never a dict)."""
    k = kind(x, facts)
    if shape_of(k) is not None or is_list(k) or is_tuple(k) or \
            is_prim(x, "make_tuple") or is_prim(x, "make_list"):
        return True
    if depth > 10 or not isinstance(x, Apply):
        return False
    if is_prim(x, "getitem") and (is_prim(x.inputs[2], "make_slice") or (
            isinstance(x.inputs[2], Constant) and type(x.inputs[2].value) is slice)):
        return _is_sequence(x.inputs[1], facts, depth + 1)
    if is_prim(x, "sens_of"):
        lk = kind(x.inputs[2], facts)
        return is_list(lk) and never_zero(x, facts)
    return False


# Comprehensions over a constant tuple of at most this many items are unrolled.
UNROLL_CONSTANT_ITEMS = 8


@rewrite("list_map")
def _map_constant_items(ctx: Context, node: Apply) -> Node | None:
    """`[f(x) for x in c]` over a constant tuple `c` of a few items is the list display
    `[f(c[0]), f(c[1]), ...]`, whose calls are inlined and fold on their constant items:
    a batching rule's `tuple([_lead(i) for i in indices])` over a slicing's constant
    indices becomes the constant indices with the batch axis in front, not a
    comprehension run on every call."""
    f, seq = node.inputs[1:]
    if not (isinstance(seq, Constant) and type(seq.value) is tuple and
            len(seq.value) <= UNROLL_CONSTANT_ITEMS) or not is_constant_graph(f):
        return None
    fn: Graph = f.value
    if fn.effects or len(fn.parameters) != 1 or fn.vararg:
        return None
    g = node.graph
    return g.apply(P["make_list"], *[g.apply(f, Constant(v), loc=node.loc)
                                     for v in seq.value], loc=node.loc, name=node.name)


@rewrite("list")
def _list_of_display(ctx: Context, node: Apply) -> Node | None:
    """`list((a, b))` is `[a, b]` (what the derivative of a list display builds)."""
    items = tuple_items(node.inputs[1]) if len(node.inputs) == 2 else None
    if items is None:
        return None
    return node.graph.apply(P["make_list"], *items, loc=node.loc, name=node.name)


@rewrite("add")
def _concat_tuples(ctx: Context, node: Apply) -> Node | None:
    """Concatenated tuples, displays or of known kinds (so of known lengths): a display."""
    # (The reads of items are made only once both sides are known to be tuples: most
    # sums are of numbers, and the first side alone rules them out.)
    a, b = node.inputs[1:]
    first = tuple_items(a) or _known_length(a, ctx.facts)
    if first is None:
        return None
    second = tuple_items(b) or _known_length(b, ctx.facts)
    if second is None:
        return None
    return node.graph.apply(P["make_tuple"], *_items(a, first), *_items(b, second),
                            loc=node.loc)


def _known_length(x: Node, facts: LoopFacts | None) -> int | None:
    """The length of a value of tuple kind (exactly a tuple), else None."""
    known = items_of(kind(x, facts))
    if known is None or x.graph is None:
        return None
    return len(known)


def _items(x: Node, found: list[Node] | int) -> list[Node]:
    """The items of a display (`found`), or the reads `x[0], x[1], ...` of the items of a
    tuple of `found` items."""
    if isinstance(found, list):
        return found
    assert x.graph is not None  # (see _known_length)
    return [x.graph.apply(P["tuple_getitem"], x, i) for i in range(found)]


@rewrite("mul")
def _repeat_zero_tuple(ctx: Context, node: Apply) -> Node | None:
    a, n = node.inputs[1:]
    if isinstance(a, Constant) and type(a.value) is tuple and isinstance(n, Constant) and \
            type(n.value) is int and all(v is ZERO for v in a.value):
        return Constant(a.value * n.value)
    return None


@rewrite("len")
def _len_of_tuple(ctx: Context, node: Apply) -> Node | None:
    """The length of a display, or of a tuple, a dict, a record or a list argument of
    known items' kinds."""
    items = tuple_items(node.inputs[1])
    if items is None:
        k = kind(node.inputs[1], ctx.facts)
        known = items_of(k) if is_tuple(k) else fields_of(k) if is_namedtuple(k) or \
            is_dict(k) else list_items_of(k)
        return Constant(len(known)) if known is not None else None
    return Constant(len(items))


@rewrite("as_sequence")
def _sequence_known(ctx: Context, node: Apply) -> Node | None:
    """What a `for` loop over a list or a tuple of known kind indexes: the value itself
    (`as_sequence` makes a tuple of other iterables only)."""
    k = kind(node.inputs[1], ctx.facts)
    return node.inputs[1] if is_list(k) or is_tuple(k) or list_items_of(k) is not None \
        else None


@rewrite("unpack")
def _unpack_known(ctx: Context, node: Apply) -> Node | None:
    """`a, b = t` where `t`'s length is known to be right: `t` (the check cannot fail)."""
    x, n = node.inputs[1], node.inputs[2]
    items = tuple_items(x)
    if items is not None:
        length: int | None = len(items)
    else:
        k = kind(x, ctx.facts)
        known = items_of(as_tuple(k))
        shape = shape_of(k)
        length = len(known) if known is not None else shape[0] if shape else None
    if length is None or not isinstance(n, Constant) or length != n.value:
        return None
    return x


@rewrite("check_bound")
def _bound_known(ctx: Context, node: Apply) -> Node | None:
    """A read of a variable that may be unbound (assigned in a loop's body, the loop
    since unrolled) where its value has a kind: it is bound (the unbound marker has no
    kind), and the check cannot fail."""
    x = node.inputs[1]
    return x if not isinstance(x, Constant) and kind(x, ctx.facts) is not None else None


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
    pieces = tuple_items(d) if is_prim(d, "make_tuple") else None
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
            is_list(k) or is_dict(k) or is_namedtuple(k) or ki == INT or \
            (isinstance(index, Constant) and not holds_float(index.value)):
        return Constant(ZERO)
    return None


@rewrite("class_of")
def _class_of_known(ctx: Context, node: Apply) -> Node | None:
    """`class_of(c)` where `c` is a known class, or a graph standing for one: the class."""
    c = node.inputs[1]
    if is_constant_graph(c) and c.value.stands_for is not None:
        return Constant(c.value.stands_for, c.loc)
    if isinstance(c, Constant) and isinstance(c.value, type):
        return c
    return None


@rewrite("call_star")
def _call_star_known(ctx: Context, node: Apply) -> Node | None:
    """`f(*(a, b))` -> `f(a, b)` where the IR's direct-call convention (one input per
    parameter) agrees with Python's: plain positional parameters only."""
    fn, items = node.inputs[1], tuple_items(node.inputs[2])
    if items is None:
        return None
    if is_constant_graph(fn):
        g: Graph = fn.value
        specs = g.signature
        if g.vararg or len(items) != len(g.parameters) or (
                specs is not None and any(sp.kind != "pos" for sp in specs)):
            return None
    elif isinstance(fn, Constant):
        return None
    return node.graph.apply(fn, *items, loc=node.loc, name=node.name)


@rewrite("call_value")
def _call_value_known(ctx: Context, node: Apply) -> Node | None:
    """A call of a value in derivative code whose callee is now known to be a graph (or
    a switch between graphs) is a direct call: no run-time test of the callee."""
    fn, items = node.inputs[2], tuple_items(node.inputs[3])
    if items is None or not known_callee(fn):
        return None
    call = node.graph.apply(fn, *items, loc=node.loc, name=node.name)
    rebind_value_call(call)  # (a graph with `*args` takes them packed)
    return call


@rewrite("call_value_fwd")
def _call_value_fwd_known(ctx: Context, node: Apply) -> Node | None:
    """Forward mode over a call of a value whose callee is now known to be a graph (the
    F-callable of the callee's J-callable), its arguments and tangents displays: a
    direct call, which the optimizer can inline and specialize (the Hessian-vector
    product of a closure that calls a global function with `*data`)."""
    fn = node.inputs[2]
    items, tangents = tuple_items(node.inputs[4]), tuple_items(node.inputs[5])
    if items is None or tangents is None or not is_constant_graph(fn):
        return None
    g: Graph = fn.value
    specs = g.signature
    if g.vararg or len(g.parameters) != len(items) + len(tangents) or (
            specs is not None and any(sp.kind != "pos" for sp in specs)):
        return None
    # (Generated code takes the symbolic zero for a tangent: the zeros made only because
    # a callee known at run time needs values are ZERO again.)
    tangents = [Constant(ZERO) if is_prim(t, "sens_of") and isinstance(t, Apply) and
                isinstance(t.inputs[1], Constant) and t.inputs[1].value is ZERO else t
                for t in tangents]
    return node.graph.apply(fn, *items, *tangents, loc=node.loc, name=node.name)


@rewrite("lift", "lift_fwd", "data_only", "data_only_grad")
def _data_passes(ctx: Context, node: Apply) -> Node | None:
    """A value passed into derivative code that kinds prove is data (a number, an array,
    a list, tuple or dict of known kind: never a function) is itself: no run-time test
    of whether it is callable. (A record's class could define `__call__`: kept.)"""
    x = node.inputs[1]
    k = kind(x, ctx.facts)
    return x if k is not None and not is_record(k) else None


@rewrite("tuple_sens")
def _tuple_sens_display(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a tuple of known length when only element i has one: a tuple
    display, ZERO elsewhere (a tuple of ZEROs where `d` is ZERO: also a zero), which
    the rewrites of displays then take apart."""
    d, i, like = node.inputs[1:]
    items: list[Node] | None = tuple_items(like)
    known = items_of(as_tuple(kind(like, ctx.facts)))  # (a NamedTuple's is a tuple too)
    if items is None and known is not None:
        items = [Constant(ZERO)] * len(known)  # (a tuple of known kind: its length only)
    if items is None and is_prim(like, "tuple_getitem"):
        # A tuple a forward loop saved (its elements are that loop's nodes: count only).
        found = sequence_items(like, ctx.facts)
        forward = item_nodes(like.inputs[1], like.inputs[2].value, ctx.facts) \
            if isinstance(like.inputs[2], Constant) and type(like.inputs[2].value) is int \
            else None
        if found is not None and forward is not None and is_prim(forward[0], "make_tuple"):
            items = found
    if items is None or not (isinstance(i, Constant) and type(i.value) is int and
                             -len(items) <= i.value < len(items)):
        return None
    parts: list[Node] = [Constant(ZERO)] * len(items)
    parts[i.value] = d
    return node.graph.apply(P["make_tuple"], *parts, loc=node.loc, name=node.name)


@rewrite("tuple_sens")
def _zeros_in_tuple_sens(ctx: Context, node: Apply) -> Node | None:
    """The sensitivity of a tuple's item, a display some of whose items are zeros made
    from ZERO (`sens_of(ZERO, x)`): those items are ZERO (a sensitivity may be ZERO
    wherever it is zero), and if all are, so is the tuple's sensitivity."""
    d = node.inputs[1]
    items = tuple_items(d) if is_prim(d, "make_tuple") else None
    if not items:
        return None
    zero = [_is_zero(x) or _made_from_zero(x) for x in items]
    if all(zero):
        return Constant(ZERO)
    if not any(_made_from_zero(x) for x in items):
        return None
    g = node.graph
    cleaned = g.apply(P["make_tuple"], *[Constant(ZERO) if z else x
                                         for x, z in zip(items, zero, strict=True)])
    return g.apply(P["tuple_sens"], cleaned, *node.inputs[2:], loc=node.loc, name=node.name)


def _is_zero(x: Node) -> bool:
    return isinstance(x, Constant) and x.value is ZERO


def _made_from_zero(x: Node) -> bool:
    return isinstance(x, Apply) and is_prim(x, "sens_of") and _is_zero(x.inputs[1])


@rewrite("gadd")
def _gadd_displays(ctx: Context, node: Apply) -> Node | None:
    """Two sensitivities of one tuple, both displays: added element by element."""
    a, b = (tuple_items(x) if is_prim(x, "make_tuple") else None for x in node.inputs[1:])
    if a is None or b is None or len(a) != len(b):
        return None
    g = node.graph
    return g.apply(P["make_tuple"], *[g.apply(P["gadd"], x, y, loc=node.loc)
                                      for x, y in zip(a, b, strict=True)],
                   loc=node.loc, name=node.name)


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
    if isinstance(k, ArrayKind) and all(isinstance(c, type) for c in cls) and (
            never_zero(x, ctx.facts) or  # (an array's sensitivity may be ZERO)
            (isinstance(x, Parameter) and x.graph is ctx.root)):
        # (An argument of an array kind is a NumPy array, `value_kind`, never ZERO.)
        return Constant(any(issubclass(np.ndarray, c) for c in cls))
    if k in (FLOAT, INT, SCALAR) and all(c is np.ndarray for c in cls) and \
            never_zero(x, ctx.facts):
        return Constant(False)  # (a number: `tl.jacrev` of a function returning one)
    return None


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
    names = [f for f, _ in k.fields]
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
        # (Whether d is new is decided once the program is final, `settle_owns`: a
        # later rewrite may turn `1.0 * y` into y.)
        return d if shape_of(kd) is None or is_prim(d, "own") else \
            node.graph.apply(P["own"], d, loc=node.loc, name=node.name)
    if is_dict(kl):
        return _dict_gradient(node, d, like, kl)
    if is_record(kl) and not is_namedtuple(kl):
        return _dataclass_gradient(node, d, like, kl)
    if (listed := list_items_of(kl)) is not None:
        return _keyed_gradient(node, d, like, list(range(len(listed))), as_list=True)
    known = items_of(as_tuple(kl))
    if known is None:
        return None
    parts = tuple_items(d) if is_prim(d, "make_tuple") else \
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


def _dataclass_gradient(node: Apply, d: Node, like: Node, kl: RecordKind) -> Node | None:
    """The gradient of a dataclass of known kind whose sensitivity is ZERO or a sum
    (`gadd`) of its fields' (`getattr_sens` of like): the dataclass with each field's
    gradient (`replace_fields`), each the sum of its pieces in the same order (what
    `runtime.gadd` of their dicts and `to_structure` compute)."""
    names = [f for f, _ in kl.fields]
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
            for x in d.inputs[1:])
    if a is None or b is None:
        return None
    for f, piece in b.items():
        a[f] = g.apply(P["gadd"], a[f], piece, loc=d.loc) if f in a else piece
    return a


def _dict_gradient(node: Apply, d: Node, like: Node, kl: DictKind) -> Node | None:
    """The gradient of a dict of known kind whose sensitivity is the sensitivities of
    some of its items (`getitem_sens`, `scatter_sens` of like with constant keys) or ZERO:
    a dict display of its items' gradients, in like's order, each the sum of its pieces in
    their order (what `runtime.scatter_sens` and `to_structure` compute)."""
    return _keyed_gradient(node, d, like, [f for f, _ in kl.items], as_list=False)


def _keyed_gradient(node: Apply, d: Node, like: Node, keys: list[str] | list[int],
                    as_list: bool) -> Node | None:
    """`_dict_gradient` for a dict with these string keys (none for an empty dict), or,
    `as_list`, for a list argument of known items' kinds (keys 0, 1, ...: a list display
    of its items' gradients)."""
    pieces: dict[object, list[Node]] = {key: [] for key in keys}
    if not (isinstance(d, Constant) and d.value is ZERO):
        found = scattered(d)
        if found is None or found[0] is not like:
            return None
        for index, piece in zip(found[1], found[2], strict=True):
            key = index.value if isinstance(index, Constant) else None
            if as_list and type(key) is int and key < 0:
                key += len(keys)  # (xs[-1])
            if not (type(key) is (int if as_list else str) and key in pieces):
                return None
            pieces[key].append(piece)
    g = node.graph
    items = []
    for key in keys:
        total: Node = Constant(ZERO)
        for piece in pieces[key]:
            total = piece if isinstance(total, Constant) else \
                g.apply(P["gadd"], total, piece, loc=node.loc)
        items.append(g.apply(P["to_structure"], total, g.apply(P["getitem"], like, key,
                                                                 loc=node.loc), loc=node.loc))
    if as_list:
        return g.apply(P["make_list"], *items, loc=node.loc, name=node.name)
    return g.apply(P["make_dict"], Constant(tuple(keys)),
                   g.apply(P["make_tuple"], *items, loc=node.loc), loc=node.loc,
                   name=node.name)


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
    shapes = [s for k in kinds if (s := shape_of(k)) is not None]
    if len(shapes) != len(kinds) or any(dtype_of(k) != "f8" or not -len(s) <= axis.value < len(s)
                                        for s, k in zip(shapes, kinds, strict=True)):
        return None
    ax = axis.value % len(shapes[0])
    start = sum(s[ax] for s in shapes[:i.value])
    stop = start + shapes[i.value][ax]
    whole = shapes[0][:ax] + (sum(s[ax] for s in shapes),) + shapes[0][ax + 1:]
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
    shapes = [s for i in items if (s := shape_of(kind(i, ctx.facts))) is not None]
    if len(shapes) != len(items) or any(not -len(s) <= axis.value < len(s) for s in shapes):
        return None
    ends = np.cumsum([s[axis.value] for s in shapes])[:-1]
    return Constant([int(e) for e in ends])
