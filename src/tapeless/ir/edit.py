"""Editing graphs in place: the one way the stages after the front end change a node's
inputs or a graph's parameters, output and effects. Each edit forgets what was computed
from the graph's body (its schedule, its free variables, the graphs it uses) and, by
`Graph.invalidate`, what the graphs that read its free variables computed (those
enclosing it or calling it: their schedules hold the nodes it reads from them), so no
stage keeps a stale answer. `users` is the one place that indexes who uses each node."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import nodes

if TYPE_CHECKING:  # (for annotations only: the IR does not import the optimizer)
    from ..opt.kinds import Kind
from .nodes import (
    Apply,
    Graph,
    Node,
    Parameter,
    graph_nodes,
    used_graphs,
)

# The graphs edited since the last `take_edited()`, by id: a step that edits graphs
# anywhere (a loop transformation) tells the graphs it changed from this journal.
_edited: set[int] = set()


def take_edited() -> set[int]:
    """The graphs edited (by the functions here) since the last call, by id."""
    out = set(_edited)
    _edited.clear()
    return out


@contextmanager
def keep_users(graphs: list[Graph]) -> Iterator[None]:
    """Keep an index of who uses each node (`users_of`) while in this block: made from
    the nodes of `graphs`, then kept up to date by node creation and the edits here."""
    saved, saved_made = nodes.USERS, nodes.MADE
    nodes.USERS = {}
    nodes.MADE = []
    try:
        for g in graphs:
            for n in graph_nodes(g):
                nodes.note_uses(n, n.inputs)
        yield
    finally:
        nodes.USERS, nodes.MADE = saved, saved_made


@contextmanager
def note_graph_uses() -> Iterator[dict[int, list[Apply]]]:
    """In a `keep_users` block: graph id -> the nodes made or given inputs in this block
    that use the graph as a constant (an index that grows as they are; a node may be
    listed twice). The outputs of the graphs made (`made_graphs`) are not in it."""
    assert nodes.USERS is not None, "note_graph_uses outside a keep_users block"
    found: dict[int, list[Apply]] = {}
    nodes.GRAPH_USES.append(found)
    try:
        yield found
    finally:
        assert nodes.GRAPH_USES[-1] is found
        nodes.GRAPH_USES.pop()


def made_graphs(start: int = 0) -> list[Graph]:
    """The graphs made since the last `take_made` (in a `keep_users` block), not taken,
    from the `start`-th on (all of them where fewer were made: the list was taken since).
    (Not a copy of the whole list: a sweep asks after each graph for those made since.)"""
    made = nodes.MADE or []
    return made[start:] if start <= len(made) else list(made)


def made_count() -> int:
    """How many graphs `made_graphs` lists now."""
    return len(nodes.MADE or ())


def take_made() -> list[Graph]:
    """The graphs made since the last call (in a `keep_users` block; else none)."""
    made = nodes.MADE
    if not made:
        return []
    nodes.MADE = []
    return made


def keeping_users() -> bool:
    """Whether an index of users is kept (in a `keep_users` block)."""
    return nodes.USERS is not None


def users_of(node_id: int) -> list[Apply]:
    """The nodes using the node `node_id` (in a `keep_users` block): every node made or
    given inputs in it, or scheduled when it began, that uses it now; some may be dead."""
    assert nodes.USERS is not None, "users_of outside a keep_users block"
    return list(nodes.USERS.get(node_id, {}).values())


def missing_users(graphs: list[Graph]) -> list[str]:
    """The uses by the nodes of `graphs` that the users index (in a `keep_users` block)
    lacks. The test suite checks this after every optimizer round (TAPELESS_CHECK_IR=1)."""
    assert nodes.USERS is not None
    return [f"{n!r} uses {i!r} in {g!r}" for g in graphs for n in graph_nodes(g)
            for i in n.inputs if n.id not in nodes.USERS.get(i.id, {})]


def set_inputs(node: Apply, inputs: list[Node]) -> None:
    """Give `node` new inputs (inputs[0] the callee)."""
    if nodes.USERS is not None:
        nodes.forget_uses(node, node.inputs)
        nodes.note_uses(node, inputs)
    node.inputs = inputs
    if node.graph is not None:
        node.graph.invalidate()
        _edited.add(node.graph.id)


def set_input(node: Apply, i: int, value: Node) -> None:
    """Replace input `i` of `node` (0 is the callee)."""
    inputs = list(node.inputs)
    inputs[i] = value
    set_inputs(node, inputs)


def set_kind(node: Node, kind: Kind | None) -> None:
    """Record what is known of `node`'s value's type (an argument's kind for the code
    specialized to it; a replacement's, carried over from the node it replaces)."""
    node.kind = kind


def set_output(g: Graph, output: Node | None) -> None:
    g.output = output
    g.invalidate()
    _edited.add(g.id)


def set_effects(g: Graph, effects: list[Node]) -> None:
    g.effects = effects
    g.invalidate()
    _edited.add(g.id)


def set_parameters(g: Graph, parameters: list[Parameter],
                   signature: list[Any] | None = None) -> None:
    """Give `g` a new list of parameters (its own, kept or made by `add_parameter`) and,
    where given, new specs of them (`Graph.signature`, one per parameter: a user
    function whose parameters change needs them)."""
    if signature is not None:
        assert len(signature) == len(parameters)
        g.signature = signature
    g.parameters = parameters
    g.invalidate()
    _edited.add(g.id)


def set_signature(g: Graph, signature: list[Any] | None) -> None:
    """Give `g` new specs of its parameters (`Graph.signature`), or none (a copy made
    as a derived function, whose parameters follow no user function's)."""
    assert signature is None or len(signature) == len(g.parameters)
    g.signature = signature


def forget_all(graphs: list[Graph]) -> None:
    """Forget what was computed from each of `graphs` (after edits anywhere in them)."""
    for g in graphs:
        g.invalidate()


def forget_users(graphs: list[Graph], changed: set[int]) -> set[int]:
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


def forget_stale(graphs: list[Graph], changed: set[int]) -> None:
    """`forget_users` from the caches alone, computing no schedule: invalidate the graphs
    of `graphs` in `changed`, then, transitively, every one whose cached schedule uses a
    graph without one (an edit, or a change it uses, forgot that graph's schedule since
    this one was computed: the free variables it scheduled may have changed). `graphs`
    must hold every graph that has a cached schedule and may be reachable."""
    stale: set[int] = set()
    for g in graphs:
        if g.id in changed:
            g.invalidate()
        if g._nodes_cache is None:
            stale.add(g.id)
    users: dict[int, list[Graph]] = {}
    for g in graphs:
        if g.id not in stale:
            for h in used_graphs(g):  # (from the cached schedule)
                users.setdefault(h.id, []).append(g)
                if h._nodes_cache is None:  # (one not in `graphs`, too)
                    stale.add(h.id)
    todo = list(stale)
    while todo:
        for u in users.get(todo.pop(), ()):
            if u.id not in stale:
                stale.add(u.id)
                u.invalidate()
                todo.append(u.id)


Users = dict[int, list[tuple[Node | None, Graph]]]


def users(graphs: list[Graph]) -> Users:
    """Who uses each node, by node id: (the node using it, its graph), or (None, g)
    where it is g's output."""
    out: Users = {}
    for g in graphs:
        for n in graph_nodes(g):
            for i in n.inputs:
                out.setdefault(i.id, []).append((n, g))
        if g.output is not None:
            out.setdefault(g.output.id, []).append((None, g))
    return out
