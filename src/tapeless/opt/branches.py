"""Branch adjoints without closures: the derivative of a value-`if` makes, in each
branch, the backpropagator of that branch (a closure over the branch's values) and
later calls whichever was made. Here each branch returns those values instead, and the
call becomes an `if` on the same condition whose branches rebuild their backpropagator
from the values, where the inliner then copies it in place."""

from __future__ import annotations

from typing import cast

from ..ir.edit import set_input, set_output, users
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    free_variables,
    graph_nodes,
    is_constant_graph,
    is_inside,
    reachable_graphs,
)
from ..primitives import PRIMITIVES
from ..runtime import ZERO
from .kinds import if_branches, is_switch_call, switch_branches
from .loops import is_call_of, rebuild_closure

P = PRIMITIVES


def branch_backprops(graphs: list[Graph], use: dict[int, list[tuple[Node | None, Graph]]],
                     replace: dict[int, Node], edited: set[int]) -> bool:
    """Rewrite the `if`s whose branches return closures that are only called; returns
    whether one was. A rewrite copies closures, which may hold calls another rewrite
    would replace (the copies would keep the old calls), so the rewrites of one round
    touch disjoint graphs: each claims the graphs it reads or edits (`busy`), and one
    whose graphs another claimed waits for the next round. Adds to `edited` the graphs
    edited in place (the branches); the other changes are in `replace`."""
    # How many places refer to each graph: a branch shared with another `if` keeps its
    # closures (its output is rewritten in place).
    refs = graph_refs(graphs)
    busy: set[int] = set()
    done = False
    for g in graphs:
        for node in graph_nodes(g):
            if g.id not in busy and is_switch_call(node) and node.id not in replace and \
                    all(refs.get(b.id, 0) == 1 for b in if_branches(node)) and \
                    _rewrite_switch(g, node, use, replace, busy):
                edited.update(b.id for b in if_branches(node))
                done = True
    return done


def _index_of(getitem: Apply) -> object:
    """The constant index of `tuple_getitem(t, i)`."""
    i = getitem.inputs[2]
    assert isinstance(i, Constant)
    return i.value


def _rewrite_switch(g: Graph, node: Apply, use: dict[int, list[tuple[Node | None, Graph]]],
                    replace: dict[int, Node], busy: set[int]) -> bool:
    sw = node.inputs[0]
    assert isinstance(sw, Apply)
    cond = sw.inputs[1]
    branches = switch_branches(sw)
    outs = [o for b in branches if is_call_of(o := b.output, "make_tuple")]
    if any(b.parameters for b in branches) or len(outs) != len(branches) \
            or len({len(o.inputs) for o in outs}) != 1:
        return False
    users = [u for u, _ in use.get(node.id, []) if is_call_of(u, "tuple_getitem")
             and isinstance(u.inputs[2], Constant)]
    if len(users) != len(use.get(node.id, [])):
        return False
    for k in range(len(outs[0].inputs) - 1):
        closures = [c for o in outs if is_constant_graph(c := o.inputs[1 + k])]
        if len(closures) != len(outs):
            continue
        # Every use of the backpropagator must be a call of it.
        calls = [(bp, u) for bp in (u for u in users if _index_of(u) == k)
                 for u, _ in use.get(bp.id, [])]
        if not calls or any(not isinstance(u, Apply) or u.inputs[0] is not bp or bp in u.inputs[1:]
                            for bp, u in calls):
            continue
        # What each branch's closure needs that only the branch can see.
        saved = [[fv for fv in free_variables(c.value)
                  if fv.graph is None or not is_inside(g, fv.graph)]
                 for c in closures]
        if any(fv.graph is not b for fvs, b in zip(saved, branches, strict=True)
               for fv in fvs):
            continue
        claimed = _footprint(g, branches, closures, users, calls)
        if claimed & busy:
            return False
        busy |= claimed
        for b, fvs in zip(branches, saved, strict=True):
            out = b.output
            assert isinstance(out, Apply)
            set_input(out, 1 + k, b.apply(P["make_tuple"], *fvs))
        for _, call in calls:
            assert isinstance(call, Apply)
            h = call.graph
            new_branches = []
            for b, clo, fvs in zip(branches, closures, saved, strict=True):
                nb = Graph(f"B_{b.name}", h, call.loc)
                rebuilt = rebuild_closure(clo.value, nb, call.inputs[0],
                                          {fv.id: i for i, fv in enumerate(fvs)})
                set_output(nb, nb.apply(Constant(rebuilt), *call.inputs[1:], loc=call.loc))
                new_branches.append(nb)
            choose = h.apply(P["switch"], cond, Constant(new_branches[0]),
                             Constant(new_branches[1]), loc=call.loc)
            replace[call.id] = Apply(h, [choose], call.loc, call.name)
        return True
    return False


def _footprint(g: Graph, branches: list[Graph], closures: list[Constant], users: list[Apply],
               calls: list[tuple[Apply, Node | None]]) -> set[int]:
    """The graphs a rewrite of an `if` reads or edits: the `if`'s graph and branches,
    every graph the closures reach (they are copied) and those owning their free
    variables (the copies use them), and the graphs of the backpropagators' uses and of
    the calls' arguments (the calls are replaced)."""
    out = {g.id} | {b.id for b in branches} | {u.graph.id for u in users}
    for c in closures:
        for h in reachable_graphs(c.value):
            out.add(h.id)
            out.update(fv.graph.id for fv in free_variables(h) if fv.graph is not None)
    for _, call in calls:
        assert isinstance(call, Apply)
        out.add(call.graph.id)
        out.update(i.graph.id for i in call.inputs if i.graph is not None)
    return out


# --- items of an `if`'s result that nothing reads -------------------------------------

# What is read of a value: ALL, or by item index what is read of that item.
_ALL = None
Demand = dict | None
_DEMAND_DEPTH = 12


def dead_branch_items(graphs: list[Graph], use: dict[int, list[tuple[Node | None, Graph]]]
                      ) -> set[int]:
    """Where an `if` returns a tuple display of which some items are never read (only
    items are taken of the result, directly or through tuple displays and value
    `switch`es, as derivative code takes the sensitivities it needs from a branch's
    tuple), the branches return a constant in those places, and the code computing them
    is dead. Branches shared with another `if` are left as they are. Returns the ids of
    the graphs edited (their outputs replaced)."""
    refs = graph_refs(graphs)
    ifs: list[Apply] = []
    owner: dict[int, Apply] = {}  # a branch's graph id -> its `if`
    for g in graphs:
        for node in graph_nodes(g):
            if is_switch_call(node):
                branches = if_branches(node)
                if all(refs.get(b.id, 0) == 1 for b in branches):
                    ifs.append(node)
                    owner.update((b.id, node) for b in branches)
    memo: dict[int, Demand] = {}
    edited: set[int] = set()
    for node in ifs:
        branches = if_branches(node)
        read = _demand(node, use, owner, memo, 0)
        if read is _ALL:
            continue
        for b in branches:
            assert b.output is not None
            out = _pruned(b, b.output, read)
            if out is not b.output:
                set_output(b, out)
                edited.add(b.id)
    return edited


def single_item_ifs(graphs: list[Graph], use: dict[int, list[tuple[Node | None, Graph]]],
                    replace: dict[int, Node]) -> set[int]:
    """A value-`if` of which one item alone is read, `(a if c else b)[k]` (each user the
    same `tuple_getitem` or `getitem` at one int k), returns that item from each branch
    instead: `a[k] if c else b[k]`, read from the branch's tuple display where it
    returns one (ZERO's items are ZERO). The derivative of an `if` gives the
    sensitivities of the branches' free variables as a tuple per branch, of which the
    caller reads one; the backpropagator of a comprehension's function, its value. Only
    where each branch is this `if`'s alone. Puts the users' replacements in `replace`;
    returns the ids of the branches edited."""
    refs = graph_refs(graphs)
    edited: set[int] = set()
    for g in graphs:
        for node in graph_nodes(g):
            if not is_switch_call(node):
                continue
            branches = if_branches(node)
            sw = node.inputs[0]
            if any(refs.get(b.id, 0) != 1 or b.id in edited for b in branches) or \
                    [u for u, _ in use.get(sw.id, [])] != [node]:
                continue
            users: list[Apply] = []
            for u, _ in use.get(node.id, []):
                if not isinstance(u, Apply) or u.id in replace:
                    break
                users.append(u)
            else:
                users = users if _same_item_reads(users, node) else []
            if not users or len(users) != len(use.get(node.id, [])):
                continue
            first = users[0]
            prim = first.inputs[0]
            k = cast(Constant, first.inputs[2])
            outs = []
            for b in branches:
                out = b.output
                assert out is not None  # (a branch returns its value)
                if is_call_of(out, "make_tuple"):
                    items = out.inputs[1:]
                    if k.value >= len(items):
                        break
                    outs.append(items[k.value])
                elif isinstance(out, Constant):
                    v = out.value
                    if v is ZERO:
                        outs.append(out)
                    elif type(v) is tuple and k.value < len(v):
                        outs.append(Constant(v[k.value], out.loc))
                    else:
                        break
                elif is_call_of(first, "tuple_getitem"):
                    # (derivative code's item of a tuple it built: it cannot raise, so
                    # reading it in the branch changes no order of effects)
                    outs.append(b.apply(prim, out, Constant(k.value), loc=first.loc))
                else:
                    break
            else:
                for b, out in zip(branches, outs, strict=True):
                    set_output(b, out)
                    edited.add(b.id)
                for u in users:
                    replace[u.id] = node
    return edited


def _same_item_reads(users: list[Apply], node: Node) -> bool:
    """Whether every one of `users` reads item k of `node`, by one primitive
    (`tuple_getitem` or `getitem`) and one int k >= 0."""
    if not users:
        return False
    first = users[0]
    if not (is_call_of(first, "tuple_getitem") or is_call_of(first, "getitem")):
        return False
    prim, k = first.inputs[0], first.inputs[2]
    if not (isinstance(k, Constant) and type(k.value) is int and k.value >= 0):
        return False
    for u in users:
        i = u.inputs[2] if len(u.inputs) == 3 else None
        if not (isinstance(u.inputs[0], Constant) and isinstance(prim, Constant) and
                u.inputs[0].value is prim.value) or u.inputs[1] is not node or \
                not isinstance(i, Constant) or type(i.value) is not int or i.value != k.value:
            return False
    return True


def _pruned(b: Graph, x: Node, read: Demand) -> Node:
    """`x`, a value `b` returns of which `read` is read: where it is a tuple display, a
    display of constants in place of the items not read (rebuilt in `b`)."""
    if read is _ALL or not is_call_of(x, "make_tuple"):
        return x
    items = x.inputs[1:]
    kept = [_pruned(b, v, read[k]) if k in read else
            (v if isinstance(v, Constant) else Constant(ZERO))
            for k, v in enumerate(items)]
    if all(a is v for a, v in zip(kept, items, strict=True)):
        return x
    return b.apply(P["make_tuple"], *kept, loc=x.loc)


def _merge(a: Demand, b: Demand) -> Demand:
    if a is _ALL or b is _ALL:
        return _ALL
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if k in out else v
    return out


def _demand(node: Node, use: dict[int, list[tuple[Node | None, Graph]]],
            owner: dict[int, Apply], memo: dict[int, Demand], depth: int) -> Demand:
    """What is read of `node`'s value: _ALL, or the items read (by index, what of each)."""
    if node.id in memo:
        return memo[node.id]
    if depth > _DEMAND_DEPTH:
        return _ALL
    memo[node.id] = _ALL  # (a cycle through a loop's state: everything, conservatively)
    out: Demand = {}
    for u, g in use.get(node.id, []):
        if u is None:
            # The result of a graph: of a branch, what is read of its `if`'s result.
            out = _merge(out, _demand(owner[g.id], use, owner, memo, depth + 1)
                         if g.id in owner else _ALL)
        elif (is_call_of(u, "tuple_getitem") or is_call_of(u, "getitem")) and \
                u.inputs[1] is node and u.inputs[2] is not node and \
                isinstance(u.inputs[2], Constant) and type(u.inputs[2].value) is int and \
                u.inputs[2].value >= 0:
            out = _merge(out, {u.inputs[2].value: _demand(u, use, owner, memo, depth + 1)})
        elif is_call_of(u, "make_tuple"):
            whole = _demand(u, use, owner, memo, depth + 1)
            for k, x in enumerate(u.inputs[1:]):
                if x is node:
                    out = _merge(out, _ALL if whole is _ALL else
                                 (whole[k] if k in whole else {}))
        elif is_call_of(u, "switch") and u.inputs[1] is not node and not any(
                is_constant_graph(b) for b in u.inputs[2:4]):
            out = _merge(out, _demand(u, use, owner, memo, depth + 1))  # (a value `if`)
        else:
            out = _ALL
        if out is _ALL:
            break
    memo[node.id] = out
    return out


def graph_refs(graphs: list[Graph]) -> dict[int, int]:
    """How many places in `graphs` refer to each graph (by id): inputs and outputs."""
    refs: dict[int, int] = {}
    for g in graphs:
        for node in graph_nodes(g):
            for i in node.inputs:
                if is_constant_graph(i):
                    refs[i.value.id] = refs.get(i.value.id, 0) + 1
        if is_constant_graph(g.output):
            refs[g.output.value.id] = refs.get(g.output.value.id, 0) + 1
    return refs


def forwarding_ifs(root: Graph) -> int:
    """Two value-`if`s on the same condition, the second's branch on one side only giving
    back the first's result, `y = (a() if c else b()); z = (k if c else y)`, where
    nothing else reads `y`: that branch of the second `if` is the first's branch on the
    same side, `z = (k if c else b())`, and the first `if` is dead (one test of `c`
    instead of two). Made by lifting a recursion's backpropagator (the walk's `B` tested
    its record's condition twice: once for the sensitivity the recursive branch gives,
    once for what `B` returns). Returns how many."""
    graphs = reachable_graphs(root)
    use = users(graphs)
    merged = 0
    for g in graphs:
        effects = {e.id for e in g.effects}
        for node in graph_nodes(g):
            if not is_switch_call(node) or node.id in effects:
                continue
            sw = node.inputs[0]
            assert isinstance(sw, Apply)
            for k in (2, 3):
                side = cast(Graph, cast(Constant, sw.inputs[k]).value)
                first = side.output
                if graph_nodes(side) or not is_switch_call(first) or first.graph is not g \
                        or first.id in effects or use.get(first.id) != [(None, side)]:
                    continue
                sw1 = first.inputs[0]
                assert isinstance(sw1, Apply)
                if sw1.inputs[1] is not sw.inputs[1]:
                    continue
                set_input(sw, k, sw1.inputs[k])
                merged += 1
    return merged
