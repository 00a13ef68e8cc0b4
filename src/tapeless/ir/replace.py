"""Replacing nodes everywhere: every use of a replaced node (an input, a graph's output or
effect) pointed at its replacement, an inlined call's effects spliced in its place, and
what was computed from the changed graphs forgotten. The optimizer applies each round's
replacements with `apply_replacements`; the users index (`edit.keep_users`) finds the
uses without a walk over every node."""

from __future__ import annotations

from collections.abc import Callable

from .clone import rebind_value_call
from .edit import (
    forget_all,
    forget_stale,
    forget_users,
    keeping_users,
    set_effects,
    set_inputs,
    set_output,
    take_edited,
    take_made,
    users_of,
)
from .nodes import (
    Apply,
    Graph,
    Node,
    graph_nodes,
    is_constant_graph,
    reachable_graphs,
)

# Whether a node's only effect is its value (the optimizer's `simplify.pure`: it reads the
# primitives' declared effects, which the IR does not know).
Pure = Callable[[Node], bool]


def resolved(x: Node, replace: dict[int, Node]) -> Node:
    seen = 0
    while x.id in replace and seen < 100:
        x = replace[x.id]
        seen += 1
    return x


def redirect(node: Apply, replace: dict[int, Node]) -> bool:
    """Point `node`'s inputs at their replacements; whether any changed."""
    inputs = node.inputs
    for i in inputs:
        if i.id in replace:
            break
    else:
        return False
    was_value_call = not is_constant_graph(inputs[0])
    set_inputs(node, [resolved(i, replace) for i in inputs])
    if was_value_call:
        rebind_value_call(node)
    return True


def apply_replacements(root: Graph, replace: dict[int, Node], spliced: dict[int, list[Node]],
                       stale: set[int] | None, pure: Pure,
                       redirected: set[int] | None = None,
                       known: list[Graph] | None = None) -> None:
    """Redirect every use of a replaced node to its replacement, in every graph, and
    forget the schedules this changes: those of the graphs in `stale` (every graph if
    None) and of the graphs whose nodes or effects change here, then, transitively, of
    the graphs using them (a graph's schedule depends on its closures' free variables).
    An effect replaced by a node that `pure` says has no effect is dropped from the
    effects; `spliced` maps an inlined call to the effects of its body.
    `known`: the graphs reachable from `root` when the changes began (with the users
    index kept, which also journals the graphs made since): then the schedules are
    forgotten from what is cached and computed again once, after the redirections."""
    if known is not None and keeping_users():
        _apply_known(root, replace, spliced, stale, pure, redirected, known)
        return
    fixed_effects: set[int] = set()
    graphs = reachable_graphs(root)
    if stale is not None:
        # (Every graph edited since the last call, too: from the journal of edits.)
        stale = stale | take_edited()
    if stale is None:
        forget_all(graphs)
    elif stale:
        forget_users(graphs, stale)
    graphs = reachable_graphs(root)
    if keeping_users():
        _apply_indexed(root, graphs, replace, spliced, pure, redirected)
        return
    todo: set[int] | None = None  # the graphs to visit (all, first)
    while True:
        changed: set[int] = set()
        for g in graphs:
            if todo is not None and g.id not in todo:
                continue  # (visited, and its schedule has not changed since)
            if g.id not in fixed_effects:
                fixed_effects.add(g.id)
                if _point_effects(g, replace, spliced, pure):
                    changed.add(g.id)
            if _point_output(g, replace):
                changed.add(g.id)
            for node in graph_nodes(g):
                if redirect(node, replace):
                    changed.add(g.id)
                    if redirected is not None:
                        redirected.add(node.id)
        if not changed:
            return
        # Only graphs with a new schedule can hold nodes not redirected yet.
        todo = _forget_changed(root, graphs, changed)
        seen = {g.id for g in graphs}
        graphs = reachable_graphs(root)
        todo |= {g.id for g in graphs if g.id not in seen}


def _forget_changed(root: Graph, graphs: list[Graph], changed: set[int]) -> set[int]:
    """`forget_users` over `graphs` and the graphs reachable now: a graph an inlining
    copied in this round becomes reachable only by the redirections, and what it cached
    (free variables) may name nodes replaced here."""
    known = {g.id for g in graphs}
    more = [g for g in reachable_graphs(root) if g.id not in known]
    return forget_users(graphs + more, changed)


def _point_effects(g: Graph, replace: dict[int, Node],
                   spliced: dict[int, list[Node]], pure: Pure) -> bool:
    """Point `g`'s effects at their replacements (an inlined call's effects spliced in
    its place); whether any changed."""
    if not any(e.id in replace for e in g.effects):
        return False
    effects: list[Node] = []
    for e in g.effects:
        _splice(e, g, replace, spliced, effects, pure)
    set_effects(g, effects)
    return True


def _point_output(g: Graph, replace: dict[int, Node]) -> bool:
    """Point `g`'s output at its replacement; whether it changed."""
    if g.output is None or g.output.id not in replace:
        return False
    set_output(g, resolved(g.output, replace))
    return True


def _apply_indexed(root: Graph, graphs: list[Graph], replace: dict[int, Node],
                   spliced: dict[int, list[Node]], pure: Pure,
                   redirected: set[int] | None) -> None:
    """`apply_replacements` with the users index: the users of each replaced node are
    redirected at once, wherever they are (the index may name dead ones: pointing them
    at an equal value changes nothing), then each graph's effects and output, and the
    schedules of the graphs whose nodes changed forgotten."""
    changed = _redirect_users(replace, redirected)
    fixed: set[int] = set()
    while True:
        changed |= _point_ends(graphs, fixed, replace, spliced, pure)
        if not changed:
            return
        _forget_changed(root, graphs, changed | take_edited())
        changed = set()
        # (Graphs reachable only now get their effects and output pointed too.)
        graphs = reachable_graphs(root)


def _point_ends(graphs: list[Graph], fixed: set[int], replace: dict[int, Node],
                spliced: dict[int, list[Node]], pure: Pure) -> set[int]:
    """Point the effects and output of each of `graphs` not in `fixed` (then added to it)
    at their replacements; the graphs changed."""
    changed: set[int] = set()
    for g in graphs:
        if g.id not in fixed:
            fixed.add(g.id)
            if _point_effects(g, replace, spliced, pure) | _point_output(g, replace):
                changed.add(g.id)
    return changed


def _redirect_users(replace: dict[int, Node], redirected: set[int] | None) -> set[int]:
    """Point the users of each replaced node (from the users index) at its replacement;
    the graphs of the nodes changed."""
    changed: set[int] = set()
    for rid in list(replace):
        for node in users_of(rid):
            if redirect(node, replace):
                changed.add(node.graph.id)
                if redirected is not None:
                    redirected.add(node.id)
    return changed


def _apply_known(root: Graph, replace: dict[int, Node], spliced: dict[int, list[Node]],
                 stale: set[int] | None, pure: Pure, redirected: set[int] | None,
                 known: list[Graph]) -> None:
    """`apply_replacements` from the graphs `known` and those made since (`take_made`):
    the users of each replaced node redirected at once (through the users index), then
    the schedules these and the earlier changes make stale forgotten from the caches
    (`forget_stale`: no schedule is computed before the last change), computed again
    once, and each graph's effects and output pointed at their replacements."""
    changed = _redirect_users(replace, redirected)
    graphs = _refreshed(root, known, None if stale is None else stale | changed)
    fixed: set[int] = set()
    while True:
        changed = _point_ends(graphs, fixed, replace, spliced, pure)
        if not changed:
            return
        # (Graphs reachable only now get their effects and output pointed too.)
        graphs = _refreshed(root, graphs, changed)


def _refreshed(root: Graph, known: list[Graph], stale: set[int] | None) -> list[Graph]:
    """The graphs reachable from `root`, after forgetting the schedules of the graphs in
    `stale` (every one if None), of the graphs edited since the last call and of those
    using them (`forget_stale`), among `known` and the graphs made since. A graph
    reachable again that is neither (its cache may predate the changes) makes it forget
    as `forget_users` does, from fresh schedules."""
    by_id = {g.id: g for g in known}
    for g in take_made():
        by_id.setdefault(g.id, g)
    pool = list(by_id.values())
    edited = take_edited()
    if stale is None:
        forget_all(pool)
    else:
        forget_stale(pool, stale | edited)
    graphs = reachable_graphs(root)
    extra = [g for g in graphs if g.id not in by_id]
    if extra:
        forget_all(extra)
        if stale is None:
            forget_all(graphs)
        else:
            forget_users(graphs, stale | edited | {g.id for g in extra})
        graphs = reachable_graphs(root)
    return graphs


def _splice(e: Node, g: Graph, replace: dict[int, Node], spliced: dict[int, list[Node]],
            effects: list[Node], pure: Pure) -> None:
    """Append to `effects` what the effect `e` of `g` became: the effects of the body
    that replaced it (where it was an inlined call; those may have been inlined calls in
    turn, each spliced in its place, so that every effect is run once, in program order),
    or its replacement where that is still an effect."""
    if e.id in spliced:
        for inner in spliced[e.id]:
            _splice(inner, g, replace, spliced, effects, pure)
    elif e.id in replace:
        r = resolved(e, replace)
        if isinstance(r, Apply) and r.graph is g and not pure(r):
            effects.append(r)
    else:
        effects.append(e)
