"""Whose arrays the results are: a gradient or a result CPython makes as a new array stays
one (`own`), settled at the end of optimization."""

from __future__ import annotations

import numpy as np

from ..ir.edit import set_input, set_inputs, set_output
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    graph_nodes,
    is_constant_graph,
    prim_of,
    reachable_graphs,
)
from ..ir.replace import apply_replacements
from .kinds import FLOAT, INT, SCALAR, if_branches, is_switch_call, kind, shape_of
from .loops import LoopFacts
from .patterns import is_prim
from .rules import P
from .simplify import pure


def fresh(node: Node) -> bool:
    """Whether `node`'s value is an array that nothing else holds: made by an operation
    that allocates its result (`Primitive.fresh`; a reduction over constant axes of an
    array stays an array; its kind says so), or updated in place after that."""
    p = prim_of(node)
    if p is not None and p.name in ("index_update_inplace", "index_add_inplace"):
        assert isinstance(node, Apply)
        return fresh(node.inputs[1])  # (x updated in place, or a copy of x)
    return p is not None and p.fresh


def own_outputs(root: Graph) -> None:
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
            set_output(g, owned(out))
        elif is_prim(out, "make_tuple") and k + 1 < len(out.inputs):
            assert isinstance(out, Apply)
            set_input(out, k + 1, owned(out.inputs[k + 1]))

    def owned(n: Node) -> Node:
        if type(n) is not Apply or is_prim(n, "own"):
            return n
        if fresh(n):
            return n.graph.apply(P["own"], n)
        if is_prim(n, "make_tuple"):
            set_inputs(n, [n.inputs[0]] + [owned(i) for i in n.inputs[1:]])
        elif is_prim(n, "tuple_getitem") and isinstance(n.inputs[2], Constant) and \
                type(n.inputs[2].value) is int:
            src, k = n.inputs[1], n.inputs[2].value
            at = 2 if is_prim(src, "while_loop") else 4 if is_prim(src, "for_range") else 0
            if at and isinstance(src, Apply) and is_constant_graph(body := src.inputs[at]):
                enter(body.value, k)
                if 0 <= k < len(src.inputs) - at - 1:  # (after no step: the initial value)
                    i = at + 1 + k
                    set_input(src, i, owned(src.inputs[i]))
            elif isinstance(src, Apply) and is_constant_graph(src.inputs[0]):
                enter(src.inputs[0].value, k)
        elif is_constant_graph(n.inputs[0]):
            enter(n.inputs[0].value, None)
        elif is_switch_call(n):
            for branch in if_branches(n):
                enter(branch, None)
        return n

    enter(root, None)


_SUMS = ("add", "np.add")  # (a sum with a sparse term is sparse)


def _small(node: Node, facts: LoopFacts) -> bool:
    """Whether `node`'s value is a number or a small array, by its kind: never a sparse
    sensitivity (those stand for float64 arrays of 64 elements or more)."""
    k = kind(node, facts)
    if k in (FLOAT, INT, SCALAR):
        return True
    shape = shape_of(k)
    return shape is not None and int(np.prod(shape)) < 64


def _may_be_sparse(node: Node, facts: LoopFacts, depth: int = 0) -> bool:
    """Whether `node`'s value may be a sparse sensitivity (`Primitive.sparse_result`), or
    a sum with a term that is not surely an array (a new array that no sum made, an item
    read)."""
    p = prim_of(node)
    if p is None or not (p.sparse_result or p.name in _SUMS) or _small(node, facts):
        return False
    if p.sparse_result or depth > 8:
        return True
    assert isinstance(node, Apply)
    for x in node.inputs[1:]:
        q = prim_of(x)
        if isinstance(x, Constant) or (q is not None and not q.sparse_result and
                                       q.name not in _SUMS and
                                       (q.fresh or q.numeric or q.name == "getitem")):
            continue  # (a value computed here: a number or an array, never sparse)
        if _small(x, facts):
            continue
        if q is None or q.sparse_result or q.name not in _SUMS or \
                _may_be_sparse(x, facts, depth + 1):
            return True
    return False


def settle_owns(root: Graph) -> None:
    """`own(d)`, a gradient array the caller gets to own, is d itself where d is made by
    an operation that allocates its result, and a copy otherwise (a view, such as a
    broadcast number, or another argument). Decided here, on the final program."""
    replace: dict[int, Node] = {}
    facts: LoopFacts | None = None
    graphs = reachable_graphs(root)
    # (Code that makes no sparse sensitivity, nor calls derivative code made at run time
    # (`call_value` and kin: effects passing their values on), has none to settle: a
    # program without derivatives.)
    sparse = any((p := prim_of(n)) is not None and
                 (p.sparse_result or (p.effect and p.passes_on))
                 for g in graphs for n in graph_nodes(g))
    for g in graphs:
        for node in graph_nodes(g):
            if not is_prim(node, "own"):
                continue
            assert isinstance(node, Apply)
            d = node.inputs[1]
            if fresh(d):
                # (A sum of sensitivities may be a sparse one: the caller gets an array.)
                facts = facts or LoopFacts(root)
                replace[node.id] = g.apply(P["dense_sens"], d, loc=node.loc,
                                           name=node.name) \
                    if sparse and _may_be_sparse(d, facts) else d
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
        apply_replacements(root, replace, {}, None, pure)
