"""Small questions rewrites ask about nodes: which primitive a node applies, the items
of a tuple display, the pieces of a scattered sensitivity, the nodes an item of a
record may come from."""

from __future__ import annotations

from typing import TypeGuard, cast

from ..ir.nodes import Apply, Constant, Graph, Node, Parameter, is_constant_graph, prim_of
from ..ir.primitive import Primitive
from ..primitives import PRIMITIVES


def is_prim(node: Node, name: str) -> TypeGuard[Apply]:
    """Whether `node` applies the primitive `name` (then it is an Apply)."""
    # (`prim_of`, inline, with exact type tests: rules ask this of most nodes they see.)
    return type(node) is Apply and type(c := node.inputs[0]) is Constant and \
        type(c.value) is Primitive and c.value.name == name


def const(node: Node) -> bool:
    return isinstance(node, Constant) and not isinstance(node.value, Graph)


def tuple_items(x: Node) -> list[Node] | None:
    if is_prim(x, "make_tuple") and isinstance(x, Apply):
        return list(x.inputs[1:])
    if isinstance(x, Constant) and type(x.value) is tuple:
        return [Constant(v) for v in x.value]
    return None


def scattered(node: Node) -> tuple[Node, list[Node], list[Node]] | None:
    """`getitem_sens(d, x, i)` as (x, [i], [d]); `scatter_sens(x, (is...), (ds...))`
    likewise when its index and sensitivity tuples are displays."""
    if is_prim(node, "getitem_sens") and isinstance(node, Apply):
        d, x, i = node.inputs[1:]
        return x, [i], [d]
    if is_prim(node, "scatter_sens") and isinstance(node, Apply):
        x, ii, dd = node.inputs[1:]
        indices = tuple_items(ii)
        if indices is not None and is_prim(dd, "make_tuple"):
            return x, indices, dd.inputs[1:]
    return None


def holds_term(x: Node, w: Node, depth: int = 0) -> bool:
    """Whether the sum x has the term w."""
    if x is w:
        return True
    if depth > 8 or not (is_prim(x, "add") or is_prim(x, "gadd")):
        return False
    return any(holds_term(t, w, depth + 1) for t in x.inputs[1:])


def size_of(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# --- where an item of a record comes from (recursion passes: unwind, lift) -----------

def item_path(node: Node) -> list[Node | int] | None:
    """`node` as items taken of a parameter at constant indices: [parameter, i, j...]
    for `p[i][j]...`, else None."""
    at: list[int] = []
    while isinstance(node, Apply):
        k = node.inputs[2] if len(node.inputs) == 3 else None
        if prim_of(node) is not PRIMITIVES["tuple_getitem"] or not isinstance(k, Constant) or \
                type(k.value) is not int:
            return None
        at.append(k.value)
        node = node.inputs[1]
    if not isinstance(node, Parameter):
        return None
    return [node, *reversed(at)]


def follow_items(r: Node, at: list[int]) -> list[Node] | None:
    """The nodes that may make item `at` (a path of indices) of what `r` makes."""
    now = [r]
    for i in at:
        nxt: list[Node] = []
        for v in now:
            found = _item_values(v, i, {})
            if found is None:
                return None
            nxt.extend(found)
        now = nxt
    return now


def _item_values(v: Node, i: int, active: dict[int, bool]) -> list[Node] | None:
    """The nodes that may make item i of the tuple `v` makes (None: not known). An item
    out of a tuple's range makes nothing (reading it raises)."""
    items = tuple_items(v)
    if items is None:
        return None
    return value_sources(items[i], active) if -len(items) <= i < len(items) else []


def value_sources(node: Node, active: dict[int, bool]) -> list[Node] | None:
    """The nodes whose values `node` may have: through items of tuple displays, the
    branches of a value-`if`, and the result of a call of a module function (not
    through loops or unknown calls: there `node` itself). None where a cycle or an
    unknown tuple is met. (`kinds.item_nodes` reads items through displays and `if`s
    too, but not through calls, which is how a record reaches a backward pass: from
    the forward function's result.)"""
    if node.id in active or len(active) > 64:
        return None
    if not isinstance(node, Apply):
        return [node]
    active[node.id] = True
    try:
        head = node.inputs[0]
        k = node.inputs[2] if len(node.inputs) == 3 else None
        if prim_of(node) is PRIMITIVES["tuple_getitem"] and isinstance(k, Constant) and \
                type(k.value) is int:
            tuples = value_sources(node.inputs[1], active)
            if tuples is None:
                return None
            out: list[Node] = []
            for t in tuples:
                found = _item_values(t, k.value, active)
                if found is None:
                    return None
                out.extend(found)
            return out
        if isinstance(head, Apply) and prim_of(head) is PRIMITIVES["switch"] and \
                len(node.inputs) == 1:
            outs = [x.value.output for x in head.inputs[2:4] if is_constant_graph(x)]
            if len(outs) != 2 or any(o is None for o in outs):
                return None
            return _merge_sources([value_sources(cast(Node, o), active) for o in outs])
        if is_constant_graph(head) and head.value.parent is None and \
                head.value.output is not None and not head.value.vararg:
            return value_sources(head.value.output, active)
        return [node]
    finally:
        del active[node.id]


def _merge_sources(found: list[list[Node] | None]) -> list[Node] | None:
    out: list[Node] = []
    for f in found:
        if f is None:
            return None
        out.extend(f)
    return out
