"""Cloning graphs: copying a graph's body (and the closures nested in it) into another
graph, with some nodes replaced; the basis of inlining."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import cast, overload

from . import nodes
from .nodes import (
    Apply,
    Constant,
    Graph,
    Location,
    Node,
    free_variables,
    graph_nodes,
    is_constant_graph,
    reachable_graphs,
    used_graphs,
)
from .primitive import MAKE_TUPLE, Primitive


def graphs_inside(g: Graph, also: set[int] | None = None) -> list[Graph]:
    """The graphs nested in `g`: reachable from it and either using, directly or through
    other nested graphs, a node that `g` or a nested graph owns, or used by them as a
    block (a branch or loop body, which is emitted in place and must not be shared)."""
    candidates = [h for h in reachable_graphs(g) if h is not g]
    also = also or set()
    inside: set[int] = {g.id} | also
    by_id = {h.id: h for h in candidates}
    # Graph id -> the candidates using a node it owns (each candidate's free variables
    # read once: finding the reachable graphs computed them).
    readers: dict[int, list[Graph]] = {}
    for h in candidates:
        for fv in free_variables(h):
            if fv.graph is not None:
                readers.setdefault(fv.graph.id, []).append(h)
    # (Each graph found inside adds its readers and its blocks, once: the least set
    # closed under both, whatever the order.)
    todo = list(inside)
    while todo:
        gid = todo.pop()
        for h in readers.get(gid, ()):
            if h.id not in inside:
                inside.add(h.id)
                todo.append(h.id)
        owner = by_id.get(gid, g if gid == g.id else None)
        if owner is not None:
            for block in _blocks(owner):
                if block.id not in inside and block is not g:
                    inside.add(block.id)
                    todo.append(block.id)
    return [h for h in candidates if h.id in inside and h.id not in also]


def _blocks(g: Graph) -> list[Graph]:
    found = []
    for node in graph_nodes(g):
        callee = node.inputs[0]
        # (Exact type tests: neither class has subclasses, and this runs for every node of
        # every graph an inlining copies.)
        if type(callee) is Constant and type(callee.value) is Primitive and \
                callee.value.blocks:
            for pos in callee.value.blocks:
                arg = node.inputs[1 + pos] if 1 + pos < len(node.inputs) else None
                if arg is not None and is_constant_graph(arg):
                    found.append(arg.value)
    return found


_PACKAGE = str(Path(__file__).resolve().parent.parent)


def is_internal(loc: Location | None) -> bool:
    """Whether a location is in tapeless's own code (a derivative rule or helper), which
    is no place to point a user at."""
    return loc is None or in_package(loc.filename)


@lru_cache(maxsize=256)
def in_package(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(_PACKAGE)


def inline_body(callee: Graph, target: Graph, args: Sequence[Node],
                substitute: Mapping[int, Node] | None = None,
                loc: Location | None = None,
                copies: dict[int, Graph] | None = None,
                node_copies: dict[int, Node] | None = None) -> tuple[Node, list[Node]]:
    """Copy `callee`'s body into `target` with its parameters bound to `args` (and the
    free variables in `substitute` replaced); returns the node standing for the call's
    result and the copied effect nodes. `loc` is the call site: copied nodes and graphs
    located in tapeless's own code (a derivative rule's body) take it, so that errors in
    the code they become name the user's line. `copies` and `node_copies`, where given,
    receive each copied graph and node by the id of its original."""
    owners = {fv.graph.id for fv in free_variables(callee)
               if substitute and fv.id in substitute and fv.graph is not None}
    nested = graphs_inside(callee, owners)
    gmap: dict[int, Graph] = {callee.id: target}
    for h in nested:
        gmap[h.id] = Graph(h.name, None, _relocated(h.loc, loc))
    for h in nested:
        clone = gmap[h.id]
        parent = h.parent
        clone.parent = gmap.get(parent.id, parent) if parent is not None else None
        clone.copy_attributes(h)
    nmap: dict[int, Node] = dict(substitute or {})
    for p, a in zip(callee.parameters, args, strict=True):
        nmap[p.id] = a
    for h in nested:
        for p in h.parameters:
            nmap[p.id] = gmap[h.id].add_parameter(p.name, p.loc)
    if copies is not None:
        copies.update(gmap)
    mapped = _copy_bodies([callee] + nested, gmap, nmap, loc)
    if node_copies is not None:
        node_copies.update(nmap)
    for h in nested:
        clone = gmap[h.id]
        clone.output = mapped(h.output)
        clone.effects = [mapped(e) for e in h.effects]
    output = mapped(callee.output)
    assert output is not None
    return output, [mapped(e) for e in callee.effects]


def clone_graph(g: Graph, parent: Graph | None, substitute: dict[int, Node]) -> Graph:
    """A copy of `g` (and the graphs nested in it) nested in `parent`, with the free
    variables in `substitute` replaced: e.g. a closure rebuilt, in another graph, from
    values saved where it was made."""
    new = Graph(g.name, parent, g.loc)
    new.copy_attributes(g)
    params = [new.add_parameter(p.name, p.loc) for p in g.parameters]
    new.output, new.effects = inline_body(g, new, params, substitute)
    return new


def _relocated(own: Location | None, call_site: Location | None) -> Location | None:
    return call_site if call_site is not None and is_internal(own) else own


def _copy_bodies(graphs: list[Graph], gmap: dict[int, Graph], nmap: dict[int, Node],
                 loc: Location | None = None) -> _Mapping:
    """Copy the nodes of `graphs` into the graphs `gmap` maps them to (parameters and
    substitutions already in `nmap`); returns the function mapping an old node to its
    copy (graph constants to the copied graph, anything else to itself). Copies of
    nodes located in tapeless's own code take the location `loc` where one is given."""
    originals: list[tuple[Apply, Apply]] = []
    # Each distinct location is relocated once (most nodes share a few).
    relocated: dict[int, Location | None] = {}
    serial = nodes._serial
    for h in graphs:
        owner = gmap[h.id]
        for node in graph_nodes(h):
            own = node.loc
            where = relocated.get(id(own), _UNSET)
            if where is _UNSET:
                where = relocated[id(own)] = _relocated(own, loc)
            # (What `Apply(owner, [], where, node.name)` does, inline, its uses noted
            # below once it has its inputs: this runs for every node copied.)
            copy = Apply.__new__(Apply)
            copy.graph = owner
            copy.loc = cast("Location | None", where)
            copy.id = next(serial)
            copy.name = node.name
            copy.kind = node.kind
            nmap[node.id] = copy
            originals.append((node, copy))

    users = nodes.USERS
    for node, copy in originals:
        # (What `_Mapping` does, inline: this runs for every input of every copy.)
        inputs: list[Node] = []
        for x in node.inputs:
            found = nmap.get(x.id)
            if found is None:
                if type(x) is Constant and type(x.value) is Graph and x.value.id in gmap:
                    found = Constant(gmap[x.value.id], x.loc)
                else:
                    found = x
            inputs.append(found)
        copy.inputs = inputs
        if users is not None:
            nodes.note_uses(copy, inputs)
        # A call through a value that the substitutions made a call of a known graph
        # (`rebind_value_call`, which does nothing to any other node).
        callee = node.inputs[0]
        if not (type(callee) is Constant and type(callee.value) is Graph) and \
                type(c := inputs[0]) is Constant and type(c.value) is Graph:
            rebind_value_call(copy)
    return _Mapping(gmap, nmap)


_UNSET = object()


class _Mapping:
    """Maps an old node to its copy (graph constants to the copied graph, anything
    else, None included, to itself)."""

    def __init__(self, gmap: dict[int, Graph], nmap: dict[int, Node]):
        self.gmap = gmap
        self.nmap = nmap

    @overload
    def __call__(self, x: Node) -> Node: ...
    @overload
    def __call__(self, x: None) -> None: ...
    @overload
    def __call__(self, x: Node | None) -> Node | None: ...

    def __call__(self, x: Node | None) -> Node | None:
        if x is None:
            return None
        if x.id in self.nmap:
            return self.nmap[x.id]
        if is_constant_graph(x) and x.value.id in self.gmap:
            return Constant(self.gmap[x.value.id], x.loc)
        return x


def rebind_value_call(node: Apply) -> None:
    """A call through a value passes its arguments the way Python does; a call of a
    known graph passes one input per parameter, `*args` packed into one tuple. When a
    substitution makes the callee of a call through a value a known graph with `*args`
    or keyword-only parameters, rebind the call's inputs to the graph's parameters
    (left as it is where that is impossible: then it fails at run time, as in Python)."""
    callee = node.inputs[0]
    if not is_constant_graph(callee):
        return
    specs = callee.value.signature
    if specs is None or all(s.kind == "pos" for s in specs):
        return
    args = list(node.inputs[1:])
    bound: list[Node] = []
    for s in specs:
        if s.kind == "vararg":
            bound.append(node.graph.apply(MAKE_TUPLE, *args, loc=node.loc))
            args = []
        elif s.kind == "pos" and args:
            bound.append(args.pop(0))
        elif isinstance(s.default, Constant):
            bound.append(s.default)
        else:
            return
    if not args:
        if nodes.USERS is not None:
            nodes.forget_uses(node, node.inputs)
            nodes.note_uses(node, [callee, *bound])
        node.inputs = [callee, *bound]


def is_recursive(g: Graph) -> bool:
    """Whether `g` can reach a call of itself through the graphs it references."""
    # (From the graphs each one uses, which finding the reachable ones cached: a use by
    # a node of any of them, or by the output of one other than `g`.)
    for h in reachable_graphs(g):
        used = used_graphs(h)
        if h is g and is_constant_graph(h.output):
            used = used[:-1]  # (g's own output, last: g returned as a value)
        for u in used:
            if u is g:
                return True
    return False


def node_count(g: Graph) -> int:
    return len(graph_nodes(g)) + sum(len(graph_nodes(h)) for h in graphs_inside(g))


__all__ = ["graphs_inside", "inline_body", "is_internal", "is_recursive", "node_count",
           "rebind_value_call"]
_ = Constant


def copy_module(root: Graph, gmap: dict[int, Graph] | None = None,
                nmap: dict[int, Node] | None = None,
                replace: Callable[[Graph], Graph | None] | None = None) -> Graph:
    """A deep copy of `root` and every graph it reaches (so they can be rewritten
    without touching graphs shared with other compiled functions). `gmap`, where given,
    receives each graph's copy by the id of the graph copied, and `nmap` each node's
    copy by the id of the node copied. `replace`, where given, says for a graph reached
    what to copy in its place (None: the graph itself): each use of the one is then a
    use of the other's copy, and the graphs the other reaches are copied too."""
    graphs = reachable_graphs(root) if replace is None else []
    replaced: dict[int, Graph] = {}
    seen: set[int] = set()
    todo = [root] if replace is not None else []
    while todo:
        g = todo.pop()
        if g.id in seen:
            continue
        seen.add(g.id)
        other = replace(g) if replace is not None else None
        if other is not None:
            replaced[g.id] = other
            todo.append(other)
            continue
        graphs.append(g)
        todo.extend(used_graphs(g))
    if gmap is None:
        gmap = {}
    for h in graphs:
        copy = Graph(h.name, None, h.loc)
        copy.copy_attributes(h)
        gmap[h.id] = copy
    for old, other in replaced.items():
        while other.id in replaced:
            other = replaced[other.id]
        gmap[old] = gmap[other.id]
    for h in graphs:
        if h.parent is not None:
            gmap[h.id].parent = gmap.get(h.parent.id, h.parent)
    if nmap is None:
        nmap = {}
    for h in graphs:
        for p in h.parameters:
            nmap[p.id] = gmap[h.id].add_parameter(p.name, p.loc)
    mapped = _copy_bodies(graphs, gmap, nmap)
    for h in graphs:
        gmap[h.id].output = mapped(h.output)
        gmap[h.id].effects = [mapped(e) for e in h.effects]
    return gmap[root.id]
