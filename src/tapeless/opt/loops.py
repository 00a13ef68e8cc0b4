"""Loop rewrites: removal of dead or invariant state, pruning of the values a forward loop
saves for its backward loop, closures saved as their free variables, stacks lowered to
lists and accumulators added in place (the facts they use: `loop_facts`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..ir.clone import clone_graph
from ..ir.edit import (
    forget_all,
    set_effects,
    set_input,
    set_inputs,
    set_kind,
    set_output,
    set_parameters,
    users,
)
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    Parameter,
    free_variables,
    graph_nodes,
    is_constant_graph,
    is_inside,
    reachable_graphs,
)
from ..primitives import PRIMITIVES
from .loop_facts import (
    Assumed,
    LoopFacts,
    LoopInfo,
    constant_getitems,
    constant_index,
    is_call_of,
    loop_info,
)

P = PRIMITIVES

__all__ = ["LoopFacts", "LoopInfo", "is_call_of", "loop_info"]


def uses(graphs: list[Graph]) -> dict[int, list[tuple[Node | None, Graph]]]:
    return users(graphs)


def facts_uses(facts: LoopFacts) -> dict[int, list[tuple[Node | None, Graph]]]:
    """`uses(facts.graphs)`, made once per facts: the loop-state steps below run on one
    facts until one of them changes a loop (a step that returns 0 has edited nothing),
    and the driver makes facts afresh after each change."""
    if facts.uses is None:
        facts.uses = uses(facts.graphs)
    return facts.uses


def _loops_read_by_items(facts: LoopFacts, replace: dict[int, Node],
                         use: dict[int, list[tuple[Node | None, Graph]]]
                         ) -> Iterator[tuple[LoopInfo, list[Node], list[Apply]]]:
    """Each loop not yet replaced (tested as it comes: the caller adds replacements)
    whose body's outputs are known and whose result is read only by items at constant
    indices: with those outputs and those reads."""
    for info in facts.loops:
        outputs = info.outputs
        if outputs is None or info.node.id in replace:
            continue
        results = constant_getitems([u for u, _ in use.get(info.node.id, [])])
        if results is not None:
            yield info, outputs, results


def drop_dead_state(root: Graph, facts: LoopFacts, replace: dict[int, Node]) -> int:
    """Remove state that nothing reads (or that never changes): returns how many."""
    use = facts_uses(facts)
    removed = 0
    for info, outputs, results in _loops_read_by_items(facts, replace, use):
        k = len(info.init)
        live = _live_state(info, outputs, {constant_index(u) for u in results}, use)
        drop: list[int] = []
        for j in range(k):
            if j not in live:
                drop.append(j)
                continue
            params = info.params(j)
            out_j = outputs[j]
            init_j = info.init[j]
            if isinstance(init_j, Constant) and (out_j is params[0] or (
                    isinstance(out_j, Constant) and out_j.value is init_j.value)):
                # Invariant state: every iteration sees the initial value.
                for p in params:
                    replace[p.id] = init_j
                for u in results:
                    if constant_index(u) == j:
                        replace[u.id] = init_j
                drop.append(j)
        if not drop:
            continue
        keep = [j for j in range(k) if j not in drop]
        _rebuild(info, keep, results, replace)
        removed += len(drop)
    return removed


def _live_state(info: LoopInfo, outputs: list[Node], used_after: set[int],
                use: dict[int, list[tuple[Node | None, Graph]]]) -> set[int]:
    """The state slots whose values matter: read after the loop or by the condition, or
    needed (through the body) to compute a slot that matters or an effect. A slot that
    only feeds its own next value (a gradient accumulated for nothing) is dead."""
    body = info.body
    lead = info.lead
    slot = {p.id: j for j, p in enumerate(body.parameters[lead:])}
    live = set(used_after)
    if info.cond is not None:
        live |= {j for j, p in enumerate(info.cond.parameters) if use.get(p.id)}
    seen: set[int] = set()
    todo: list[Node] = list(body.effects) + [outputs[j] for j in live]
    while True:
        while todo:
            n = todo.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            if n.graph is not body:
                continue
            j = slot.get(n.id)
            if j is not None:
                live.add(j)
            elif isinstance(n, Apply):
                for inp in n.inputs:
                    if is_constant_graph(inp):
                        todo.extend(free_variables(inp.value))
                    else:
                        todo.append(inp)
        # A slot found live above feeds the next iteration through its output.
        fresh = [outputs[j] for j in live if outputs[j].id not in seen]
        if not fresh:
            return live
        todo = fresh


def _rebuild(info: LoopInfo, keep: list[int], results: list[Apply],
             replace: dict[int, Node]) -> None:
    node = info.node
    g = node.graph
    assert g is not None
    head = node.inputs[:info.first_init]
    new = Apply(g, head + [info.init[j] for j in keep], node.loc, node.name)
    outputs = info.outputs
    assert outputs is not None
    body = info.body
    set_parameters(body, body.parameters[:info.lead] + [body.parameters[info.lead + j]
                                                        for j in keep])
    set_output(body, body.apply(P["make_tuple"], *[outputs[j] for j in keep],
                                loc=body.output.loc if body.output is not None else None))
    if info.cond is not None:
        set_parameters(info.cond, [info.cond.parameters[j] for j in keep])
    position = {j: i for i, j in enumerate(keep)}
    for u in results:
        j = constant_index(u)
        if j in position and u.id not in replace:
            replace[u.id] = g.apply(P["tuple_getitem"], new, position[j], name=u.name)
            set_kind(replace[u.id], u.kind)
    replace[node.id] = new
    if node in g.effects:
        set_effects(g, [new if e is node else e for e in g.effects])


def _saved_pairs(facts: LoopFacts, use: dict[int, list[tuple[Node | None, Graph]]],
                 replace: dict[int, Node]
                 ) -> list[tuple[LoopInfo, int, Apply, list[Node], list[Apply]]]:
    """The forward/backward loop pairs `LoopFacts` found whose saved values may be
    rewritten, as (forward loop, its stack's slot, the push, the pushed values, the
    backward loop's reads of them): the stack goes to that backward loop alone, which
    only reads it by constant indices."""
    pairs = []
    for back in facts.loops:
        found = facts.pushed_by.get(back.node.id)
        if found is None or back.node.id in replace:
            continue
        fwd, kf, push = found
        start = back.init[0]
        saved = push.inputs[1]
        if len(use.get(start.id, [])) != 1 or not is_call_of(saved, "make_tuple") or \
                fwd.body.loop_role != "forward":
            continue
        if facts.result_of(start) is None and not _only_reader(start, facts, use):
            continue
        reads = _constant_reads(back.body.parameters[0], use)
        if reads is not None:
            pairs.append((fwd, kf, push, saved.inputs[1:], reads))
    return pairs


def _constant_reads(p: Node, use: dict[int, list[tuple[Node | None, Graph]]]
                    ) -> list[Apply] | None:
    """`saved[j]` for each use of a backward loop's stack parameter `p` (`saved` is
    `p[0]`), or None if it is used another way. (The loop J made of a backward loop
    reads its stack with `getitem`: its cells are tuples all the same.)"""
    def item_read(u: Node | None, of: Node) -> bool:
        return (is_call_of(u, "tuple_getitem") or is_call_of(u, "getitem")) and \
            u.inputs[1] is of and isinstance(u.inputs[2], Constant) and \
            type(u.inputs[2].value) is int

    reads: list[Apply] = []
    for u, _ in use.get(p.id, []):
        if not item_read(u, p):
            return None
        assert isinstance(u, Apply)
        if constant_index(u) != 0:  # the rest of the stack
            continue
        for r, _ in use.get(u.id, []):
            if not item_read(r, u):
                return None
            assert isinstance(r, Apply)
            reads.append(r)
    return reads


def _only_reader(start: Node, facts: LoopFacts,
                 use: dict[int, list[tuple[Node | None, Graph]]]) -> bool:
    """A nested loop's stack comes to its backward loop as `saved[i]` of an outer
    backward loop: `start` must be the only read of slot i, and that slot's pushed
    value used nowhere else."""
    # (`saved[i]` where `saved` is what the outer forward loop pushed, popped: see
    # `LoopFacts._through_popped`.)
    assert isinstance(start, Apply)
    saved = start.inputs[1]
    i = constant_index(start)
    pushed_tuple = facts.popped[saved.id]
    assert isinstance(pushed_tuple, Apply) and isinstance(saved, Apply)
    pushed = pushed_tuple.inputs[1 + i]
    reads = _constant_reads(saved.inputs[1], use)
    return len(use.get(pushed.id, [])) == 1 and reads is not None and \
        [r for r in reads if constant_index(r) == i] == [start]


def prune_saved(root: Graph, facts: LoopFacts, replace: dict[int, Node]) -> int:
    """A forward loop pushes `(saved_values, stack)` each iteration and a backward loop
    pops them: drop the values the backward loop never reads, substitute constants, and
    push a lone value without its tuple."""
    use = facts_uses(facts)
    pairs = _saved_pairs(facts, use, replace)
    # First (alone in its round, as it copies backward loops whose reads pruning would
    # renumber): closures rebuilt from their saved free variables.
    changed = sum(_rebuild_closures(fwd.body, push, values, reads, replace)
                  for fwd, _, push, values, reads in pairs)
    if changed:
        return changed
    for fwd, kf, push, values, reads in pairs:
        stack_param = fwd.body.parameters[fwd.lead + kf]
        read_index = {constant_index(u) for u in reads}
        # Constants need not be saved, except closures: those hold forward values.
        plain = [isinstance(v, Constant) and not (
            is_constant_graph(v) and free_variables(v.value)) for v in values]
        keep: list[int] = []
        same: dict[int, int] = {}  # a value saved twice: read from its first slot
        first: dict[int, int] = {}  # each kept value's slot, by node id (one lookup each)
        for j in range(len(values)):
            if j in read_index and not plain[j]:
                k = first.setdefault(values[j].id, j)
                if k != j:
                    same[j] = k
                else:
                    keep.append(j)
        remat = _recomputable(values, keep, facts, fwd.body, reads)
        remat.update({j: remat[k] for j, k in same.items() if k in remat})
        keep = [j for j in keep if j not in remat]
        # Values made from the loop's ints (its counter, int state) by a few cheap
        # operations: those ints are saved instead, and the values made again.
        n_values = len(values)
        # (Not the values others are computed from above: those stay saved.)
        ints = _made_from_ints(values, keep, set(remat.values()), facts, fwd.body, reads)
        if ints is not None:
            made, sources = ints
            values = list(values)
            for src in sources:
                if not any(values[j] is src for j in keep):
                    keep.append(len(values))
                    values.append(src)
            made.update({j: made[k] for j, k in same.items() if k in made})
            keep = [j for j in keep if j not in made]
        else:
            made = {}
        if len(keep) == n_values and len(keep) != 1:
            continue
        for u in reads:
            j = constant_index(u)
            if plain[j]:
                replace[u.id] = values[j]
        fg = fwd.body
        if made:
            slot_of = {values[j].id: j for j in keep}
            copies: dict[int, dict[int, Node]] = {}  # per backward graph: node id -> copy
            for u in reads:
                j = constant_index(u)
                if j not in made:
                    continue
                g = u.graph
                assert g is not None
                memo = copies.setdefault(g.id, {})
                for src in made[j]:
                    if src.id not in memo:
                        memo[src.id] = u.inputs[1] if len(keep) == 1 else g.apply(
                            P["tuple_getitem"], u.inputs[1],
                            keep.index(slot_of[src.id]), name=src.name)
                        set_kind(memo[src.id], src.kind)
                replace[u.id] = _copy_expression(values[j], fg, g, memo)
        if len(keep) == 1:
            new_push = fg.apply(P["make_tuple"], values[keep[0]], stack_param, name="stack")
            for u in reads:
                j = constant_index(u)
                if j in made:
                    continue
                if j in remat:
                    k = remat[j]
                    replace[u.id] = _recompute(values[j], values[k] if k >= 0 else None,
                                               u.inputs[1], u)
                    continue
                if u.id not in replace:
                    replace[u.id] = u.inputs[1]
                    if u.inputs[1].kind is None:
                        set_kind(u.inputs[1], u.kind)
        else:
            new_push = fg.apply(P["make_tuple"], fg.apply(P["make_tuple"],
                                                          *[values[j] for j in keep]),
                                stack_param, name="stack")
            position = {j: i for i, j in enumerate(keep)}
            # (A value saved twice that is computed again has no position.)
            position.update({j: position[k] for j, k in same.items() if k in position})
            for u in reads:
                j = constant_index(u)
                if j in made:
                    continue
                if j in remat:
                    k = remat[j]
                    if k < 0:
                        replace[u.id] = _recompute(values[j], None, None, u)
                        continue
                    source = u.graph.apply(P["tuple_getitem"], u.inputs[1],
                                           position[k])
                    replace[u.id] = _recompute(values[j], values[k], source, u)
                    continue
                if u.id not in replace:
                    g = u.graph
                    assert g is not None
                    replace[u.id] = g.apply(P["tuple_getitem"], u.inputs[1],
                                            position[constant_index(u)], name=u.name)
                    set_kind(replace[u.id], u.kind)
        replace[push.id] = new_push
        changed += 1
    return changed


def _recomputable(values: list[Node], keep: list[int], facts: LoopFacts, body: Graph,
                  reads: list[Apply]) -> dict[int, int]:
    """Saved float64 arrays that are one arithmetic operation of a number and another
    saved value (`1.0 + y` where y is saved too), or an item of a value the loop does not
    change at a saved int (`w[i]`, the row of a parameter, where the backward loop sees
    `w` too): the backward loop computes them again from it, and the forward loop saves
    one array (or view) less. The operations (+ - * / and negation) are correctly
    rounded, so the same operands give the same values bit for bit, and an item is the
    same item. A value others are computed from stays saved this round; over rounds a
    chain (`1.0 / (1.0 + y)`) is computed again from its start. Returns {slot: the slot
    it is computed from, -1 for an item at a constant index}."""
    from .kinds import INT, dtype_of, kind, shape_of

    kept = {values[j].id: j for j in keep}
    out: dict[int, int] = {}
    sources: set[int] = set()
    for j in keep:
        v = values[j]
        if j in sources or not isinstance(v, Apply) or not isinstance(v.inputs[0], Constant):
            continue
        prim = v.inputs[0].value
        name = getattr(prim, "name", None)
        if name == "getitem":
            x, index = v.inputs[1:]
            constant = isinstance(index, Constant) and type(index.value) is int
            if not (constant or (index.id in kept and kind(index, facts) == INT)) or \
                    not isinstance(x, (Apply, Parameter)) or x.graph is None or \
                    is_inside(x.graph, body) or not all(
                        is_inside(u.graph, x.graph) for u in reads
                        if constant_index(u) == j):
                continue
            k = -1 if constant else kept[index.id]  # (-1: computed from nothing saved)
        elif getattr(prim, "cheap", False):
            operands = [x for x in v.inputs[1:] if not (
                isinstance(x, Constant) and type(x.value) in (float, int))]
            if len(operands) != 1 or operands[0].id not in kept:
                continue
            k = kept[operands[0].id]
        else:
            continue
        k_kind = kind(v, facts)
        if k == j or k in out or not shape_of(k_kind) or dtype_of(k_kind) != "f8":
            continue
        out[j] = k
        if k >= 0:
            sources.add(k)
    return out


# At most this many operations make one saved value again in the backward loop (the
# walk's `A[i, (7 * i) % n]`: a product, a remainder, a tuple and the read).
REMAKE_MAX_NODES = 6


def _made_from_ints(values: list[Node], keep: list[int], sources_of: set[int],
                    facts: LoopFacts, body: Graph, reads: list[Apply]
                    ) -> tuple[dict[int, list[Node]], list[Node]] | None:
    """Saved values that a few cheap operations make from ints of the loop body (its
    counter, int state) and values the loop does not change: integer arithmetic, tuples,
    an item at constant index, an element or row of an array the loop does not change at
    ints, correctly rounded arithmetic on numbers (`A[i, i]`, `(i, (7 * i) % n)`). The
    backward loop makes them again from the ints, which the forward loop saves instead:
    the same operations on the same operands give the same values, bit for bit, and an
    element read is the same element (nothing changes the array between the loops: values
    are immutable until `update_in_place`, which sees the backward loop's read). Returns
    ({slot: the ints it is made from}, the ints), where that saves fewer values, else
    None."""
    from .kinds import FLOAT, INT, SCALAR, items_of, kind, shape_of

    counter = body.parameters[0] if body.parameters and body.loop_role == "forward" and \
        facts.index_of.get(body.parameters[0].id) is not None else None

    def visible(x: Node, j: int) -> bool:
        return x.graph is not None and all(is_inside(u.graph, x.graph) for u in reads
                                           if constant_index(u) == j)

    def walk(v: Node, j: int, seen: dict[int, Node], srcs: dict[int, Node]) -> bool:
        if isinstance(v, Constant):
            return not is_constant_graph(v)
        if v.graph is not body:
            return not is_inside(v.graph, body) and visible(v, j)
        if v.id in seen or v.id in srcs:
            return True
        if isinstance(v, Parameter):
            if v is counter or kind(v, facts) is INT:
                srcs[v.id] = v
                return True
            return False
        if not isinstance(v, Apply) or not isinstance(v.inputs[0], Constant):
            return False
        prim = v.inputs[0].value
        name = getattr(prim, "name", None)
        if name is None or getattr(prim, "effect", True):
            return False
        if name == "make_tuple":
            pass
        elif name == "tuple_getitem":
            if not isinstance(v.inputs[2], Constant):
                return False
        elif name == "getitem":
            x, index = v.inputs[1:3]
            k_index = kind(index, facts)
            at = (k_index,) if k_index is INT else items_of(k_index) or ()
            if isinstance(x, Constant) or x.graph is None or is_inside(x.graph, body) or \
                    not at or any(a is not INT for a in at) or \
                    len(at) > len(shape_of(kind(x, facts)) or ()):
                return False
        elif getattr(prim, "number_op", False) and prim.pure and name != "pow":
            # (Kinds asked only here: a question about a body's node infers the loop's
            # state, on facts made afresh after each loop step.)
            k = kind(v, facts)
            ks = [kind(x, facts) for x in v.inputs[1:]]
            if not (k is INT and all(kx is INT for kx in ks)) and not (
                    getattr(prim, "cheap", False) and k in (FLOAT, SCALAR, INT)):
                return False
        else:
            return False
        seen[v.id] = v
        if len(seen) > REMAKE_MAX_NODES:
            return False
        return all(walk(x, j, seen, srcs) for x in v.inputs[1:])

    made: dict[int, list[Node]] = {}
    sources: dict[int, Node] = {}
    for j in keep:
        v = values[j]
        if j in sources_of or not isinstance(v, Apply) or v.graph is not body:
            continue
        srcs: dict[int, Node] = {}
        if walk(v, j, {}, srcs) and srcs:
            made[j] = list(srcs.values())
            sources.update(srcs)
    kept = {values[j].id for j in keep if j not in made}
    added = [s for s in sources.values() if s.id not in kept]
    if not made or len(keep) - len(made) + len(added) >= len(keep):
        return None
    return made, added


def _copy_expression(v: Node, body: Graph, g: Graph, memo: dict[int, Node]) -> Node:
    """`v`, a node of the loop body `body`, made again in `g` from the copies in `memo`
    (by node id: the ints it is made from, read back from the stack) and the values
    outside the body as they are."""
    if not isinstance(v, Apply) or v.graph is not body:
        return memo.get(v.id, v)
    if v.id not in memo:
        memo[v.id] = g.apply(v.inputs[0], *[_copy_expression(x, body, g, memo)
                                            for x in v.inputs[1:]], name=v.name)
        set_kind(memo[v.id], v.kind)
    return memo[v.id]


def _recompute(v: Apply, source: Node | None, read: Node | None, like: Node) -> Node:
    """`v` again, in the backward loop, on `read` (the saved `source`; None: `v`'s inputs
    as they are)."""
    g = like.graph
    assert g is not None
    return g.apply(v.inputs[0], *[read if x is source else x for x in v.inputs[1:]],
                   name=like.name)


def _rebuild_closures(fg: Graph, push: Apply, values: list[Node], reads: list[Apply],
                      replace: dict[int, Node]) -> bool:
    """A closure made in the forward loop and called in the backward loop (the
    backpropagator of a call in the loop's body) is saved as its free variables, values,
    and rebuilt where it is read, so that it can be inlined there. Returns whether any
    was."""
    new_values = list(values)
    rebuilt = False
    for u in reads:
        j = constant_index(u)
        v = values[j]
        if not is_constant_graph(v) or u.id in replace:
            continue
        clo: Graph = v.value
        bg = u.graph
        assert bg is not None
        # Saved: the free variables not visible where the closure is rebuilt (values of
        # this loop's body, or of an outer loop's body for a nested loop).
        here = [fv for fv in free_variables(clo)
                if fv.graph is None or not is_inside(bg, fv.graph)]
        if not here:
            continue
        new_values += [fv for fv in here if fv not in new_values]
        rebuilt_clo = rebuild_closure(clo, bg, u.inputs[1],
                                      {fv.id: new_values.index(fv) for fv in here})
        replace[u.id] = Constant(rebuilt_clo, v.loc)
        rebuilt = True
    if rebuilt:
        replace[push.id] = fg.apply(P["make_tuple"], fg.apply(P["make_tuple"], *new_values),
                                    push.inputs[2], name="stack")
    return rebuilt


def rebuild_closure(clo: Graph, where: Graph, saved: Node, slots: dict[int, int]) -> Graph:
    """A copy of the closure `clo` made in `where`, its free variables (by id) read from
    the tuple `saved` at the given slots."""
    substitute: dict[int, Node] = {}
    for fv in free_variables(clo):
        if fv.id in slots:
            got = where.apply(P["tuple_getitem"], saved, slots[fv.id], name=fv.name)
            set_kind(got, fv.kind)
            substitute[fv.id] = got
    return clone_graph(clo, where, substitute)


def never_zero_param(facts: LoopFacts, node: Node, test: Callable[[Node, Assumed], bool]
                     ) -> bool:
    return isinstance(node, Parameter) and facts.inductive(node, test, set())



def stack_pairs(fwd: LoopInfo, use: dict[int, list[tuple[Node | None, Graph]]]
                ) -> Iterator[tuple[int, Parameter, Apply, LoopInfo, int]]:
    """The stacks of saved values of a forward loop `fwd` and the backward loops that pop
    them: each state slot `s` that starts as None and that the body only pushes onto
    (`push`, a pair (saved values, the stack `p`), the body's next value of the slot),
    whose final value goes, once, to a `while` loop `back` of the same graph (the slot `t`
    of its state). (`back` may still do other things with it: see its users.)"""
    outputs = fwd.outputs
    if outputs is None:
        return

    def only_use(n: Node) -> Node | None:
        us = use.get(n.id, [])
        return us[0][0] if len(us) == 1 else None

    for s, init in enumerate(fwd.init):
        if not (isinstance(init, Constant) and init.value is None):
            continue
        p = fwd.body.parameters[fwd.lead + s]
        push = only_use(p)
        if push is None or not is_call_of(push, "make_tuple") or len(push.inputs) != 3 or \
                push.inputs[2] is not p or push.inputs[1] is p or \
                outputs[s] is not push or only_use(push) is not fwd.body.output:
            continue
        if fwd.cond is not None and use.get(fwd.cond.parameters[s].id):
            continue
        getitems = constant_getitems([u for u, _ in use.get(fwd.node.id, [])])
        if getitems is None:
            continue
        result = [u for u in getitems if constant_index(u) == s]
        if len(result) != 1:
            continue
        back_node = only_use(result[0])
        back = loop_info(back_node) if back_node is not None else None
        if back is None or back.cond is None or back.lead or \
                back.node.graph is not fwd.node.graph or back.outputs is None:
            continue
        t = [j for j, x in enumerate(back.init) if x is result[0]]
        if len(t) == 1:
            yield s, p, push, back, t[0]


def lower_stacks(root: Graph,
                 known: Callable[[Node, Node, Node], bool] | None = None,
                 f8_shape: Callable[[Node], tuple[int, ...] | None] | None = None) -> int:
    """Turn a loop's cons-cell stack into a Python list (`append` / `pop`) where that is
    unobservable: the forward loop only pushes onto it, its final value goes, once, to a
    backward `while` loop of the same graph that only pops from it until it is empty, and
    nothing reads what that loop leaves. Each run of the graph then makes its own list and
    empties it: a gradient's `vjp` function called twice keeps the immutable stack, since
    its backward loop lives in another graph. Returns how many stacks were lowered."""
    graphs = reachable_graphs(root)
    use = uses(graphs)
    # Accumulators first, while saved values are read back through the stack's cons
    # cells (where kinds follow them: `known` may infer them).
    lowered = accumulate_in_place(graphs, use, known, f8_shape)
    if lowered:
        use = uses(graphs)
        if hoist_accumulators(graphs, use):
            use = uses(graphs)

    for g in graphs:
        for fwd_node in graph_nodes(g):
            fwd = loop_info(fwd_node)
            if fwd is None:
                continue
            for s, p, push, back, t in stack_pairs(fwd, use):
                if not _lower_pops(back, t, use):
                    continue
                # The forward side: a fresh list per run of `g`, appended to in place.
                set_input(fwd_node, fwd.first_init + s, g.apply(P["stack_new"]))
                body = fwd.body
                stack_push = body.apply(P["stack_push"], p, push.inputs[1])
                at = _after_effects_needed(body, stack_push)
                set_effects(body, body.effects[:at] + [stack_push] + body.effects[at:])
                out = body.output
                assert isinstance(out, Apply)
                set_input(out, 1 + s, p)
                lowered += 1
    if lowered:
        forget_all(graphs)
    return lowered


def accumulate_in_place(graphs: list[Graph], use: dict[int, list[tuple[Node | None, Graph]]],
                        known: Callable[[Node, Node, Node], bool] | None = None,
                        f8_shape: Callable[[Node], tuple[int, ...] | None] | None = None
                        ) -> int:
    """Loop state that starts as ZERO and only gathers scattered sensitivities,
    `acc = gadd(acc, scatter_sens(x, indices, ds))` (or one piece, `getitem_sens(d, x,
    i)`: a coefficient's gradient, one per iteration) with `acc` read nowhere else: each
    value it holds is made inside the loop and seen by no one else, so the sum can go
    into it in place (`scatter_add`), not into a fresh array each iteration; as
    `scatter_add_known` where `known(x, indices, ds)` (the caller's proof that the
    tests of `scatter_add` pass). Where also `f8_shape(x)` gives x's shape (a float64
    array; the Python backend asks) and x is seen outside the loop, the accumulator
    starts as x's zeros and each piece is added by a statement, `acc[i] += d` (in the
    walk's backward loop, two such adds take half the time of a `scatter_add_known`
    call). An index given twice then adds its pieces one after the other, as a
    hand-written gradient does, where `scatter_add_known` sums them first: the same
    values up to rounding."""
    from ..runtime import ZERO
    from .kinds import array
    from .patterns import tuple_items

    found: list[tuple[LoopInfo, int, Parameter, tuple[Node, ...]]] = []
    for g in graphs:
        for node in graph_nodes(g):
            info = loop_info(node)
            outputs = info.outputs if info is not None else None
            if info is None or outputs is None or \
                    len(info.body.parameters) != info.lead + len(info.init):
                continue
            body = info.body
            for j, init in enumerate(info.init):
                p = body.parameters[info.lead + j]
                add = outputs[j]
                if not (isinstance(init, Constant) and init.value is ZERO) or \
                        not is_call_of(add, "gadd") or add.graph is not body or \
                        [u for u, _ in use.get(p.id, [])] != [add] or \
                        [u for u, _ in use.get(add.id, [])] != [body.output]:
                    continue
                if info.cond is not None and use.get(info.cond.parameters[j].id):
                    continue
                a, b = add.inputs[1:]
                scatter = b if a is p else a
                if (a is p) == (b is p):
                    continue
                if is_call_of(scatter, "scatter_sens"):
                    found.append((info, j, p, tuple(scatter.inputs[1:])))
                elif is_call_of(scatter, "getitem_sens"):  # (one piece: d, x, i)
                    d, x, i = scatter.inputs[1:]
                    found.append((info, j, p, (x, body.apply(P["make_tuple"], i),
                                               body.apply(P["make_tuple"], d))))
    # (Every proof first: the rewrites change what the kinds of loop state would be.)
    fast = [known is not None and known(*s) for _, _, _, s in found]
    shapes = [f8_shape(s[0]) if f and f8_shape is not None else None
              for (_, _, _, s), f in zip(found, fast, strict=True)]
    for (info, j, p, pieces), f, shape in zip(found, fast, shapes, strict=True):
        body = info.body
        out = body.output
        assert isinstance(out, Apply)
        add = out.inputs[1 + j]
        x, indices, ds = pieces
        g = info.node.graph
        # (The indices a display or a constant tuple: `(2, 1, 0)` folded.)
        index_items, d_items = tuple_items(indices), tuple_items(ds)
        if shape is not None and g is not None and index_items is not None and \
                is_call_of(ds, "make_tuple") and d_items is not None and \
                len(index_items) == len(d_items) and (
                    isinstance(x, Constant) or (x.graph is not None and
                                                is_inside(g, x.graph))):
            zeros = g.apply(P["np.zeros"], Constant(shape), Constant(float), name=p.name)
            set_kind(zeros, array("f8", shape))
            set_input(info.node, info.first_init + j, zeros)
            acc: Node = p
            for i, d in zip(index_items, d_items, strict=True):
                acc = body.apply(P["add_into_known"], acc, i, d, name=add.name)
                set_kind(acc, zeros.kind)
            set_input(out, 1 + j, acc)
            continue
        set_input(out, 1 + j, body.apply(P["scatter_add_known" if f else "scatter_add"], p,
                                         *pieces, name=add.name))
    return len(found)


def hoist_accumulators(graphs: list[Graph], use: dict[int, list[tuple[Node | None, Graph]]]
                       ) -> int:
    """An outer loop's sensitivity accumulator that starts as ZERO and each iteration adds
    what an inner loop summed in place into fresh zeros, `acc = gadd(acc, inner(...,
    np.zeros(shape), ...)[k])` (the inner loop's state k only added into by
    `add_into_known`, from `accumulate_in_place`; the gradient of parameters read in a
    loop nested in another): the zeros are made once, before the outer loop, and the
    inner loop adds into the outer accumulator itself, `acc` read nowhere else. One
    buffer for the whole gradient, as a hand-written one has, not a fresh zeros array and
    a sum of two arrays each outer iteration. The same values up to rounding: each piece
    is added into the running sum, where the inner loop's sum was added to it whole (the
    same bits where the inner loop adds once into each element, as the LSTM's layer loop
    does into its rows). Returns how many were hoisted."""
    from ..runtime import ZERO

    def users_of(n: Node) -> list[Node | None]:
        return [u for u, _ in use.get(n.id, [])]

    def adds_into(x: Node, q: Node) -> bool:
        # (x is q after in-place adds, each value read by the next add alone)
        while x is not q and is_call_of(x, "add_into_known") and \
                users_of(x.inputs[1]) == [x]:
            x = x.inputs[1]
        return x is q

    hoisted = 0
    for g in graphs:
        for node in graph_nodes(g):
            outer = loop_info(node)
            outputs = outer.outputs if outer is not None else None
            if outer is None or outputs is None:
                continue
            body = outer.body
            for j, init in enumerate(outer.init):
                add = outputs[j]
                p = body.parameters[outer.lead + j]
                if not (isinstance(init, Constant) and init.value is ZERO) or \
                        not is_call_of(add, "gadd") or add.graph is not body or \
                        users_of(p) != [add] or users_of(add) != [body.output] or \
                        (outer.cond is not None and use.get(outer.cond.parameters[j].id)):
                    continue
                a, b = add.inputs[1:]
                r = b if a is p else a
                if (a is p) == (b is p) or not is_call_of(r, "tuple_getitem") or \
                        not isinstance(r.inputs[2], Constant) or r.graph is not body or \
                        users_of(r) != [add]:
                    continue
                inner = loop_info(r.inputs[1])
                inner_out = inner.outputs if inner is not None else None
                if inner is None or inner_out is None or inner.node.graph is not body:
                    continue
                k = r.inputs[2].value
                if type(k) is not int or not 0 <= k < len(inner.init):
                    continue
                z, q = inner.init[k], inner.body.parameters[inner.lead + k]
                if not is_call_of(z, "np.zeros") or users_of(z) != [inner.node] or \
                        not all(isinstance(c, Constant) for c in z.inputs[1:]) or \
                        [u for u in users_of(inner.node) if u is not r and not (
                            is_call_of(u, "tuple_getitem") and
                            isinstance(u.inputs[2], Constant) and u.inputs[2].value != k)] or \
                        (inner.cond is not None and use.get(inner.cond.parameters[k].id)) or \
                        not adds_into(inner_out[k], q):
                    continue
                zeros = g.apply(P["np.zeros"], *z.inputs[1:], name=p.name)
                set_kind(zeros, z.kind)
                set_input(node, outer.first_init + j, zeros)
                set_input(inner.node, inner.first_init + k, p)
                out = body.output
                assert isinstance(out, Apply)
                set_input(out, 1 + j, r)
                hoisted += 1
    return hoisted


def _after_effects_needed(body: Graph, node: Apply) -> int:
    """Where `node` goes among `body`'s effects: first, unless it needs the value of an
    effect (a draw from a random generator, a call), then after the last one it needs,
    so that scheduling it does not run that effect before the effects listed earlier."""
    effects = {e.id: i for i, e in enumerate(body.effects)}
    at, seen, todo = 0, set(), [node]
    while todo:
        n = todo.pop()
        for i in n.inputs:
            if is_constant_graph(i):
                todo.extend(fv for fv in free_variables(i.value)
                            if isinstance(fv, Apply) and fv.graph is body and fv.id not in seen)
            elif isinstance(i, Apply) and i.graph is body and i.id not in seen:
                seen.add(i.id)
                if i.id in effects:
                    at = max(at, effects[i.id] + 1)
                todo.append(i)
    return at


def _lower_pops(back: LoopInfo, t: int, use: dict[int, list[tuple[Node | None, Graph]]]
                ) -> bool:
    """The backward side of `lower_stacks`, if its loop only pops from state `t` (one
    `[0]`, one `[1]` passed on as the next state) and stops when the stack is empty."""
    q = back.body.parameters[t]
    heads = [u for u, _ in use.get(q.id, []) if u is not None and is_call_of(u, "tuple_getitem")]
    if len(heads) != 2 or len(use.get(q.id, [])) != 2 or \
            sorted(constant_index(u) for u in heads) != [0, 1]:
        return False
    head, rest = sorted(heads, key=constant_index)
    outputs = back.outputs
    assert outputs is not None and back.cond is not None
    if outputs[t] is not rest or len(use.get(rest.id, [])) != 1:
        return False
    if any(u is not None and is_call_of(u, "tuple_getitem") and constant_index(u) == t
           for u, _ in use.get(back.node.id, [])) or \
            any(u is None or not is_call_of(u, "tuple_getitem")
                for u, _ in use.get(back.node.id, [])):
        return False
    c = back.cond.parameters[t]
    test = back.cond.output
    if use.get(c.id) != [(test, back.cond)] or not is_call_of(test, "is_not") or \
            not (isinstance(test.inputs[2], Constant) and test.inputs[2].value is None):
        return False
    set_output(back.cond, back.cond.apply(P["stack_nonempty"], c))
    body = back.body
    pop = body.apply(P["stack_pop"], q, name=head.name)
    for u, ug in use.get(head.id, []):
        if u is None:
            set_output(ug, pop)
        else:
            assert isinstance(u, Apply)  # (a use is by an Apply, or a graph's output: None)
            set_inputs(u, [pop if x is head else x for x in u.inputs])
    set_effects(body, [pop] + body.effects)
    out = body.output
    assert isinstance(out, Apply)
    set_input(out, 1 + t, q)
    return True


def zero_accumulators(root: Graph, facts: LoopFacts, replace: dict[int, Node]) -> int:
    """A loop's sensitivity accumulator that starts as ZERO and each iteration adds a
    number that is never ZERO (`acc = gadd(acc, d)`, what a backward loop makes of the
    sensitivity of a value the loop's body reads) starts as 0.0 instead: then its
    `gadd` is a `+` of two floats (`opt/zeros.py`). Its parameter must have no other
    use (a test of ZERO would see the change); after no iterations the result is 0.0,
    a zero of the numbers the loop adds, where it was ZERO. Returns how many loops
    changed."""
    from ..runtime import ZERO
    from .kinds import FLOAT, SCALAR, kind
    from .zeros import never_zero

    use = facts_uses(facts)
    changed = 0

    def numbers(n: Node) -> bool:
        return kind(n, facts) in (FLOAT, SCALAR)

    def read_as_a_number(p: Node) -> bool:
        # Each use of p treats ZERO as a zero of the number: `sens_of(p, like)` of a
        # number like, or `gadd(p, y)` of a number y.
        found = use.get(p.id, [])
        for u, _ in found:
            if is_call_of(u, "sens_of") and u.inputs[1] is p and u.inputs[2] is not p:
                if kind(u.inputs[2], facts) is not FLOAT:
                    return False
            elif is_call_of(u, "gadd") and (u.inputs[1] is p) != (u.inputs[2] is p):
                if not numbers(u.inputs[2] if u.inputs[1] is p else u.inputs[1]):
                    return False
            else:
                return False
        return bool(found)

    zero_outputs: list[tuple[Apply, int, Constant]] = []  # (edited after every proof)
    for info in facts.loops:
        outputs = info.outputs
        if outputs is None or info.node.id in replace:
            continue
        new_init = list(info.init)
        for j, x in enumerate(info.init):
            add = outputs[j]
            p = info.body.parameters[info.lead + j]
            if info.cond is not None and use.get(info.cond.parameters[j].id):
                continue
            # A sensitivity the body only reads as a number, ZERO where the loop starts
            # and a number never ZERO after each iteration (the backward loop's `d_vx`
            # of the particle's inner gradient), or a number where it starts and ZERO
            # after each iteration (`d_px`: the sensitivity of the value a `while` loop
            # keeps from its last iteration): ZERO becomes 0.0, so that the slot is a
            # number throughout and its `sens_of` and `gadd` fold.
            if isinstance(x, Constant) and x.value is ZERO and add is not p and \
                    not is_call_of(add, "gadd") and numbers(add) and \
                    never_zero(add, facts) and read_as_a_number(p):
                new_init[j] = Constant(0.0, x.loc)
                continue
            if isinstance(add, Constant) and add.value is ZERO and numbers(x) and \
                    never_zero(x, facts) and read_as_a_number(p):
                out = info.body.output
                assert isinstance(out, Apply)
                zero_outputs.append((out, j, Constant(0.0, add.loc)))
                continue
            if not (isinstance(x, Constant) and x.value is ZERO and is_call_of(add, "gadd")):
                continue
            a, b = add.inputs[1:]
            d = b if a is p else a if b is p else None
            if d is None or d is p or len(use.get(p.id, [])) != 1 or \
                    (info.cond is not None and use.get(info.cond.parameters[j].id)) or \
                    kind(d, facts) not in (FLOAT, SCALAR) or not never_zero(d, facts):
                continue
            new_init[j] = Constant(0.0, x.loc)
        if new_init == info.init:
            continue
        node = info.node
        g = node.graph
        assert g is not None
        new = g.apply(node.inputs[0], *node.inputs[1:info.first_init], *new_init,
                      loc=node.loc, name=node.name)
        replace[node.id] = new
        if node in g.effects:
            set_effects(g, [new if e is node else e for e in g.effects])
        changed += 1
    for out, j, zero in zero_outputs:
        set_input(out, 1 + j, zero)
    return changed + len(zero_outputs)


# (Tuples of more items than this stay one slot: the benefit is in small records.)
SPLIT_ITEMS_MAX = 16


def split_tuple_state(root: Graph, facts: LoopFacts, replace: dict[int, Node]) -> int:
    """Loop state that is a tuple display of n items where the loop starts and after
    every iteration, and that the condition and body only take items of (by constant
    indices), or pass on whole as the next value of another slot split with it, is n
    slots, one per item. A backward loop's sensitivity of a tuple state (`d_state =
    (d_x + ..., d_y + ..., ...)`) then has one slot per field: each starts as its own
    value (ZERO or a number), so kinds and the rewrites of zeros reach it, and no tuple
    is built and taken apart each iteration (the particle's second-order loop: 4
    `sens_index`, 4 `sens_of` and 4 `gadd` calls per step before). A sensitivity's next
    value may also be ZERO (n ZEROs: the slots are read only by items, and gadd adds
    tuples item by item) or `gadd(a, b)` of such displays, ZEROs and parameters of slots
    split with it, which nothing else reads (the items' sums: the backward loop of a
    tuple state whose previous value the loop keeps, `d_state = gadd(d_prev, (...))`,
    `d_prev = ZERO`). Returns how many loops changed."""
    from .patterns import tuple_items

    use = facts_uses(facts)
    changed = 0
    for info, outputs, results in _loops_read_by_items(facts, replace, use):
        split = _splittable(info, outputs, use, tuple_items)
        if not split:
            continue
        _split(info, outputs, split, results, replace, tuple_items)
        changed += 1
    return changed


def _item_reads_only(p: Node, n: int, use: dict[int, list[tuple[Node | None, Graph]]],
                     out: Node | None, sums: dict[int, int] | None = None
                     ) -> list[int] | None:
    """Whether every use of the state parameter `p` takes an item of it by a constant
    index in range(n) (`tuple_getitem`, `getitem`, `sens_index`), or is the body's
    output display (`out`), or a term of a sum of `sums` (the id of a `gadd` that is
    the next value of slot k: k): then the slots whose next value `p` is or adds
    into, else None."""
    passed: list[int] = []
    for u, _ in use.get(p.id, []):
        if u is None:
            return None
        if u is out and isinstance(u, Apply):
            passed.extend(k for k, x in enumerate(u.inputs[1:]) if x is p)
            continue
        if sums is not None and u.id in sums:
            passed.append(sums[u.id])
            continue
        if not (is_call_of(u, "tuple_getitem") or is_call_of(u, "getitem") or
                is_call_of(u, "sens_index")) or u.inputs[1] is not p or \
                any(x is p for x in u.inputs[2:]):
            return None
        i = u.inputs[2]
        if not (isinstance(i, Constant) and type(i.value) is int and -n <= i.value < n):
            return None
    return passed


def _splittable(info: LoopInfo, outputs: list[Node],
                use: dict[int, list[tuple[Node | None, Graph]]],
                tuple_items: Callable[[Node], list[Node] | None]) -> dict[int, int]:
    """The slots `split_tuple_state` splits, with their number of items."""
    body, out = info.body, info.body.output
    sizes: dict[int, int] = {}
    passes: dict[int, list[int]] = {}
    state = body.parameters[info.lead:]
    # (the `gadd`s that are a slot's next value, read by nothing else: slot by id)
    sums = {nxt.id: k for k, nxt in enumerate(outputs) if is_call_of(nxt, "gadd") and
            len(use.get(nxt.id, [])) == 1 and outputs.count(nxt) == 1}
    for j, init in enumerate(info.init):
        items = tuple_items(init)
        if items is None or not 0 < len(items) <= SPLIT_ITEMS_MAX:
            continue
        n = len(items)
        p = body.parameters[info.lead + j]
        nxt = outputs[j]
        if _is_zero_constant(nxt):
            nxt_items: list[Node] | None = [nxt] * n
        elif nxt.id in sums:
            assert isinstance(nxt, Apply)
            terms = [_term_items(x, n, state, tuple_items) for x in nxt.inputs[1:]]
            if any(t is None for t in terms):
                continue
            nxt_items = [nxt] * n
            # (a state parameter added in: split with this slot, as below)
            passes.setdefault(j, []).extend(
                state.index(x) for x in nxt.inputs[1:] if isinstance(x, Parameter))
        else:
            nxt_items = tuple_items(nxt) if not isinstance(nxt, Parameter) else None
        if nxt_items is not None and len(nxt_items) != n:
            continue
        if nxt_items is None and not (isinstance(nxt, Parameter) and nxt.graph is body and
                                      nxt in state):
            continue
        passed = _item_reads_only(p, n, use, out, sums)
        if passed is None:
            continue
        if info.cond is not None and \
                _item_reads_only(info.cond.parameters[j], n, use, None) != []:
            continue
        sizes[j] = n
        passes[j] = passes.get(j, []) + passed
    # A slot whose next value is another slot's parameter is split with that slot, and
    # a slot passed on whole goes only to slots split with it: drop the others until
    # none is left to drop.
    while True:
        drop = set()
        for j in sizes:
            nxt = outputs[j]
            if isinstance(nxt, Parameter):
                k = body.parameters.index(nxt) - info.lead
                if sizes.get(k) != sizes[j]:
                    drop.add(j)
            if any(sizes.get(k) != sizes[j] for k in passes[j]):
                drop.add(j)
        if not drop:
            return sizes
        for j in drop:
            del sizes[j]


def _is_zero_constant(x: Node) -> bool:
    from ..runtime import ZERO

    return isinstance(x, Constant) and x.value is ZERO


def _term_items(x: Node, n: int, state: list[Parameter],
                tuple_items: Callable[[Node], list[Node] | None]) -> list[Node] | None:
    """The n items of a term of a split slot's sum: a display's, ZERO's (n ZEROs), a
    state parameter's (itself: the caller splits it too); None for any other term."""
    if _is_zero_constant(x):
        return [x] * n
    if isinstance(x, Parameter) and x in state:
        return [x] * n
    items = tuple_items(x) if isinstance(x, Apply) else None
    return items if items is not None and len(items) == n else None


def _split(info: LoopInfo, outputs: list[Node], sizes: dict[int, int], results: list[Apply],
           replace: dict[int, Node],
           tuple_items: Callable[[Node], list[Node] | None]) -> None:
    body, cond, node = info.body, info.cond, info.node
    g = node.graph
    assert g is not None
    lead = info.lead
    old_params = body.parameters[lead:]
    new_params: dict[int, list[Parameter]] = {}
    params: list[Parameter] = list(body.parameters[:lead])
    cond_params: list[Parameter] = []
    init: list[Node] = []
    for j, x in enumerate(info.init):
        p = old_params[j]
        if j not in sizes:
            params.append(p)
            init.append(x)
            if cond is not None:
                cond_params.append(cond.parameters[j])
            continue
        items = tuple_items(x)
        assert items is not None
        init.extend(items)
        new_params[j] = [Parameter(body, p.loc, f"{p.name}_{i}" if p.name else "")
                         for i in range(sizes[j])]
        params.extend(new_params[j])
        replace[p.id] = body.apply(P["make_tuple"], *new_params[j], loc=p.loc)
        if cond is not None:
            c = cond.parameters[j]
            made = [Parameter(cond, c.loc, f"{c.name}_{i}" if c.name else "")
                    for i in range(sizes[j])]
            cond_params.extend(made)
            replace[c.id] = cond.apply(P["make_tuple"], *made, loc=c.loc)
    nexts: list[Node] = []
    for j, nxt in enumerate(outputs):
        if j not in sizes:
            nexts.append(nxt)
        elif isinstance(nxt, Parameter):
            nexts.extend(new_params[old_params.index(nxt)])
        elif _is_zero_constant(nxt):
            nexts.extend([nxt] * sizes[j])
        elif is_call_of(nxt, "gadd"):
            # (the sum item by item: each term a display, ZERO or a split slot's items)
            terms = [new_params[old_params.index(x)] if isinstance(x, Parameter) else
                     _term_items(x, sizes[j], old_params, tuple_items)
                     for x in nxt.inputs[1:]]
            nexts.extend(body.apply(nxt.inputs[0], *pair, loc=nxt.loc)
                         for pair in zip(*terms, strict=True))
        else:
            items = tuple_items(nxt)
            assert items is not None
            nexts.extend(items)
    set_parameters(body, params)
    set_output(body, body.apply(P["make_tuple"], *nexts,
                                loc=body.output.loc if body.output is not None else None))
    if cond is not None:
        set_parameters(cond, cond_params)
    new = g.apply(node.inputs[0], *node.inputs[1:info.first_init], *init,
                  loc=node.loc, name=node.name)
    position: dict[int, int] = {}
    at = 0
    for j in range(len(info.init)):
        position[j] = at
        at += sizes.get(j, 1)
    for u in results:
        j = constant_index(u)
        if u.id in replace:
            continue
        if j in sizes:
            replace[u.id] = g.apply(P["make_tuple"], *[
                g.apply(P["tuple_getitem"], new, position[j] + i) for i in range(sizes[j])],
                name=u.name)
        else:
            replace[u.id] = g.apply(P["tuple_getitem"], new, position[j], name=u.name)
            set_kind(replace[u.id], u.kind)
    replace[node.id] = new
    if node in g.effects:
        set_effects(g, [new if e is node else e for e in g.effects])
