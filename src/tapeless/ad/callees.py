"""Which callees derivative code knows to be J-callables: a call of one needs no run-time
test (`tapeless.runtime.call_value`)."""

from __future__ import annotations

from typing import TypeGuard

from ..ir.nodes import Apply, Constant, Node, is_constant_graph
from ..primitives import PRIMITIVES

P = PRIMITIVES


def _is(node: Node, name: str) -> TypeGuard[Apply]:
    return isinstance(node, Apply) and isinstance(node.inputs[0], Constant) and \
        node.inputs[0].value is P[name]


def known_callee(node: Node) -> bool:
    """Whether `node` is a graph, a switch between known callees (an `if`), what a
    switch between branches calls returns when each branch returns a known callee, or
    a constant item of displays of known callees (`((f, a) if c else (g, b))[0]`)."""
    if is_constant_graph(node):
        return True
    if not isinstance(node, Apply):
        return False
    if _is(node, "switch"):
        return all(known_callee(b) for b in node.inputs[2:4])
    if len(node.inputs) == 1 and _is(node.inputs[0], "switch"):  # switch(c, g, h)()
        branches = node.inputs[0].inputs[2:4]
        return all(is_constant_graph(b) and b.value.output is not None and
                   known_callee(b.value.output) for b in branches)
    if _is(node, "tuple_getitem"):
        t, i = node.inputs[1:]
        return isinstance(i, Constant) and type(i.value) is int and _known_item(t, i.value)
    return False


def _known_item(t: Node, i: int) -> bool:
    if isinstance(t, Constant) and type(t.value) is tuple:
        return -len(t.value) <= i < len(t.value) and known_callee(Constant(t.value[i]))
    if _is(t, "make_tuple"):
        items = t.inputs[1:]
        return -len(items) <= i < len(items) and known_callee(items[i])
    if _is(t, "switch"):
        return all(_known_item(b, i) for b in t.inputs[2:4])
    if isinstance(t, Apply) and len(t.inputs) == 1 and _is(t.inputs[0], "switch"):
        branches = t.inputs[0].inputs[2:4]
        return all(is_constant_graph(b) and b.value.output is not None and
                   _known_item(b.value.output, i) for b in branches)
    return False
