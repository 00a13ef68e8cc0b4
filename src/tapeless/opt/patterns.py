"""Small questions rewrites ask about nodes: which primitive a node applies, the items
of a tuple display, the pieces of a scattered sensitivity."""

from __future__ import annotations

from typing import TypeGuard

from ..ir.nodes import Apply, Constant, Graph, Node
from ..ir.primitive import Primitive


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
