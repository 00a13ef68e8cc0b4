"""Activity analysis: which values of a program reverse mode must differentiate.

A value is *varied* when it depends, through differentiable operations, on an argument
being differentiated, and *useful* when the differentiated output depends on it through
differentiable operations. Only values that are both (*active*) need a backpropagator,
a sensitivity, or a place on a loop's stack; J (`reverse.py`) computes the others as it
computes constants: the value, and nothing for the backward pass. An integer index, a
list of column numbers, a step size, the seed of a nested gradient, a loop counter that
starts from a constant: none of them gets derivative code.

The analysis is a reachability problem over one graph of data flow for the whole
program (every graph reachable from the root, nested gradients' derivative code
included, so it applies as well to a program J made): *varied* is what the
differentiated parameters reach, *useful* what reaches the output. It is
interprocedural and context-insensitive: a graph's parameter is varied where any call
passes a varied value, and a graph passed around as a value (whose callers are not
known) is taken to be called with varied arguments and to have a useful result. It
follows tuples item by item where they are built and taken apart in view (a loop's
state slot by slot, the `(value, backpropagator)` pairs of derivative code), so a
counter or a sign flipped each iteration is not varied because the sum beside it is.

Nodes of graphs outside the analysis are active (J as it was).
`TAPELESS_ACTIVITY=0` turns the analysis off (every value active)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    free_variables,
    graph_nodes,
    is_constant_graph,
    prim_of,
    reachable_graphs,
)

# A point of the data-flow graph: a node's id, or one of the keys below.
Key = int | tuple


def enabled() -> bool:
    """Whether J prunes by activity (read when a gradient is built)."""
    return os.environ.get("TAPELESS_ACTIVITY", "1") != "0"


def _out(g: Graph) -> tuple:
    return ("out", g.id)  # the result of a graph


def _out_item(g: Graph, i: int) -> tuple:
    return ("out", g.id, i)  # an item of a graph's result, where it is a tuple display


def _fn(g: Graph) -> tuple:
    return ("fn", g.id)  # a graph used as a value (a function, a closure)


def _slot(loop: Node, j: int) -> tuple:
    return ("slot", loop.id, j)  # a loop's final state, slot j


class Activity:
    """The activity of every node of the graphs reachable from `root`, where the
    parameters at `active` are differentiated and the output is what is differentiated."""

    def __init__(self, root: Graph, active: Iterable[int]) -> None:
        self.edges: dict[Key, list[Key]] = {}
        # Edges for usefulness only: J takes a sensitivity through a whole tuple (a
        # loop's final state, a tuple display) to its items, so a tuple is useful where
        # an item taken out of it is; varied values are followed item by item.
        self.use_edges: dict[Key, list[Key]] = {}
        self.sources: list[Key] = []
        self.sinks: list[Key] = []
        self.graphs = reachable_graphs(root)
        self.covered = {id(g) for g in self.graphs}
        self.escaping: set[int] = set()
        params = root.parameters
        for a in active:
            if -len(params) <= a < len(params):
                self.sources.append(params[a].id)
        self.sinks.append(_out(root))
        for g in self.graphs:
            self._graph(g)
        for g in self.graphs:
            if g.id in self.escaping:
                self.sources.extend(p.id for p in g.parameters)
                self.sinks.append(_out(g))
        self.varied = _reach(self.sources, self.edges)
        backward: dict[Key, list[Key]] = {}
        for edges in (self.edges, self.use_edges):
            for src, dsts in edges.items():
                for dst in dsts:
                    backward.setdefault(dst, []).append(src)
        self.useful = _reach(self.sinks, backward)

    def active(self, node: Node) -> bool:
        """Whether J must differentiate `node` (True for nodes the analysis did not see)."""
        if isinstance(node, Constant):
            return False
        if node.graph is None or id(node.graph) not in self.covered:
            return True
        return node.id in self.varied and node.id in self.useful

    def counts(self) -> tuple[int, int]:
        """(active nodes, nodes) of the analyzed graphs, for reports and tests."""
        nodes = [n for g in self.graphs for n in [*g.parameters, *graph_nodes(g)]]
        return sum(self.active(n) for n in nodes), len(nodes)

    # --- building the data-flow graph ------------------------------------------------

    def _edge(self, a: Key, b: Key) -> None:
        self.edges.setdefault(a, []).append(b)

    def _use_edge(self, a: Node, b: Key) -> None:
        if is_constant_graph(a):
            self.use_edges.setdefault(_fn(a.value), []).append(b)
        elif not isinstance(a, Constant):
            self.use_edges.setdefault(a.id, []).append(b)

    def _from(self, node: Node, to: Key) -> None:
        """An edge from what `node` stands for (a graph constant: the function value;
        other constants carry nothing)."""
        if isinstance(node, Constant):
            if is_constant_graph(node):
                self._edge(_fn(node.value), to)
            return
        self._edge(node.id, to)

    def _graph(self, g: Graph) -> None:
        if g.custom is not None:
            # J uses the user's rules, not the body: the graphs they run are called
            # with anything.
            rule = g.custom
            for h in (rule.fun, rule.rule, rule.fwd, rule.bwd):
                if isinstance(h, Graph):
                    self.escaping.add(h.id)
        # A function value is varied where its closure is (its result's dependence on
        # its arguments is the call's); it is useful where its result is (a branch
        # taken by a switch).
        for fv in free_variables(g):
            self._edge(fv.id, _fn(g))
        self.use_edges.setdefault(_out(g), []).append(_fn(g))
        if g.output is not None:
            self._from(g.output, _out(g))
            self._escape(g.output)  # (a function returned is called by anyone)
            out = _tuple_display(g)
            if out is not None:
                for i, item in enumerate(out.inputs[1:]):
                    self._from(item, _out_item(g, i))
        for node in graph_nodes(g):
            self._apply(node)

    def _escape(self, node: Node) -> None:
        if is_constant_graph(node):
            self.escaping.add(node.value.id)

    def _apply(self, n: Apply) -> None:
        callee, args = n.inputs[0], n.inputs[1:]
        prim = prim_of(n)
        if prim is not None:
            parts = _loop_parts(n)
            if parts is not None:
                self._loop(n, *parts)
                return
            if prim.name == "tuple_getitem" and len(args) == 2 and \
                    isinstance(args[1], Constant) and isinstance(args[1].value, int):
                self._item(n, args[0], args[1].value)
                return
            if prim.name in _MAPS and len(args) == 2 and is_constant_graph(args[0]) and \
                    self._known_call(args[0].value, 1):
                # A comprehension `[f(x) for x in seq]`: f is called on seq's items,
                # here and nowhere else (not with anything: an index list's items
                # stay not varied).
                g = args[0].value
                self._from(args[1], g.parameters[0].id)
                self._edge(_out(g), n.id)
                self._from(args[0], n.id)
                return
            if prim.name == "switch":
                # Branches take no arguments: their results flow through the switch.
                for b in args[1:]:
                    if is_constant_graph(b) and b.value.parameters:
                        self._escape(b)
            else:
                for a in args:
                    self._escape(a)
            # (stop_gradient's rule gives zero: J sends nothing through it. A step only
            # the optimizer makes has no rule, and J refuses it or differentiates the
            # code as it was before (`reverse._batched_as_parsed`): it carries its
            # arguments' variations, so that J reaches it.)
            if (prim.differentiable or prim.after_ad) and prim.name != "stop_gradient":
                for a in args:
                    self._from(a, n.id)
            return
        if is_constant_graph(callee) and self._known_call(callee.value, len(args)):
            g = callee.value
            for a, p in zip(args, g.parameters, strict=True):
                self._from(a, p.id)
                self._escape(a)
            self._edge(_out(g), n.id)
            return
        # A call of a value (or of a graph with rules): its result may depend on the
        # callee and on every argument; a graph passed may be called with anything.
        for a in n.inputs:
            self._from(a, n.id)
            if a is not callee or not is_constant_graph(a) or a.value.custom is None:
                self._escape(a)

    def _known_call(self, g: Graph, nargs: int) -> bool:
        """Whether a call of `g` with `nargs` arguments is followed into its body."""
        return g.custom is None and len(g.parameters) == nargs and id(g) in self.covered

    def _item(self, n: Apply, t: Node, i: int) -> None:
        """`t[i]`: from the item itself where `t` is a tuple built in view."""
        if isinstance(t, Constant):
            self._from(t, n.id)
            return
        p = prim_of(t)
        self._use_edge(t, n.id)
        if isinstance(t, Apply) and p is not None and p.name == "make_tuple" and \
                0 <= i < len(t.inputs) - 1:
            self._from(t.inputs[1 + i], n.id)
            return
        if isinstance(t, Apply) and _loop_parts(t) is not None:
            self._edge(_slot(t, i), n.id)
            return
        if isinstance(t, Apply) and is_constant_graph(t.inputs[0]) and \
                t.inputs[0].value.custom is None:
            out = _tuple_display(t.inputs[0].value)
            if out is not None and 0 <= i < len(out.inputs) - 1:
                self._edge(_out_item(t.inputs[0].value, i), n.id)
                return
        self._from(t, n.id)

    def _loop(self, n: Apply, body: Graph, cond: Graph | None, lead: int,
              init: list[Node]) -> None:
        """A loop whose body (and condition) are graphs: state flows slot by slot from
        the initial values and the body's result to the body's parameters and to the
        loop's final state (a loop of no iterations gives the initial values)."""
        k = len(init)
        state = body.parameters[lead:]
        if body.output is not None:
            self._use_edge(body.output, n.id)
        out = _tuple_display(body)
        items: list[Key | None]
        if out is not None and len(out.inputs) - 1 == k:
            items = [(_fn(i.value) if is_constant_graph(i) else None)
                     if isinstance(i, Constant) else i.id for i in out.inputs[1:]]
        else:
            items = [_out(body)] * k
        for j in range(k):
            targets: list[Key] = [state[j].id, _slot(n, j)]
            if cond is not None:
                targets.append(cond.parameters[j].id)
            for t in targets:
                self._from(init[j], t)
                src = items[j]
                if src is not None:
                    self._edge(src, t)
            self._edge(_slot(n, j), n.id)
            self._escape(init[j])


def _tuple_display(g: Graph) -> Apply | None:
    """`g`'s output where it is a tuple display made in `g`."""
    out = g.output
    p = prim_of(out) if out is not None else None
    if p is not None and p.name == "make_tuple" and out is not None and out.graph is g:
        assert isinstance(out, Apply)
        return out
    return None


# The comprehensions: `list_map(f, seq)` is `[f(x) for x in seq]`, `list_flatmap(f, seq)`
# `[y for x in seq for y in f(x)]`.
_MAPS = ("list_map", "list_flatmap")


def _loop_parts(n: Apply) -> tuple[Graph, Graph | None, int, list[Node]] | None:
    """(body, condition, leading parameters, initial state) of a loop whose body and
    condition are graphs taking the state (J makes these a forward and a backward loop);
    None for any other node."""
    p = prim_of(n)
    if p is None or p.name not in ("while_loop", "for_range"):
        return None
    body_at = 4 if p.name == "for_range" else 2
    if len(n.inputs) <= body_at:
        return None
    body_node = n.inputs[body_at]
    cond_node = n.inputs[1] if p.name == "while_loop" else None
    if not is_constant_graph(body_node) or (
            cond_node is not None and not is_constant_graph(cond_node)):
        return None
    body: Graph = body_node.value
    cond: Graph | None = cond_node.value if is_constant_graph(cond_node) else None
    lead = 1 if p.name == "for_range" else 0
    init = n.inputs[body_at + 1:]
    if len(body.parameters) != lead + len(init) or (
            cond is not None and len(cond.parameters) != len(init)):
        return None
    return body, cond, lead, init


def _reach(starts: list[Key], edges: dict[Key, list[Key]]) -> set[Key]:
    seen = set(starts)
    todo = list(starts)
    while todo:
        a = todo.pop()
        for b in edges.get(a, ()):
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen

