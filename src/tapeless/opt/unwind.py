"""A derived recursion that calls itself once per level as two loops (the Python
backend's, last: after lifting, `lift.lift_backprops`).

A derived function `f(p...)` of the module (a lifted backpropagator `B_f`, a forward
`J_f`) whose body is one `if`, one branch with no call of `f` (the base case), the other
with exactly one, `f(a...)`, whose result that branch and what follows the `if` use,
computes

    f(p) = post(base(p), p)              if the recursion stops at p
         = post(step(f(a(p)), p), p)     otherwise

A lifted backpropagator of a recursion that calls itself once per level has that shape
(the walk's `B(record, d)`: the callee's record, `d` as given, the pieces added into what
the call gives back), and so does its forward `J` (the value and the record made from
what the call gave). It runs here as

    stack = []
    while not stops(p): stack.append(p); p = a(p)      # descend
    acc = post(base(p), p)
    for p in reversed(stack): acc = post(step(acc, p), p)   # climb back

the same operations on the same values in the same order (each level's `post` after the
levels below it), so the results are the same to the bit: no Python call, no frame and no
return per level, no Python stack as deep as the recursion. The parameters passed on
unchanged (`d`, the walk's array) are not stacked. Pure code only: no effect in `f`'s
body or the graphs nested in it but the `if` and the call themselves (which a forward
`J_f` marks as effects, conservatively: they are effects only if something else in the
recursion is); the graphs that the descent's or the climb's values need, other than the
two branches, are copied (`clone_graph`); anything else is left as it is. The user's
own functions (not derived) are not rewritten."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from ..ir.clone import clone_graph
from ..ir.edit import forget_all, set_effects, set_kind, set_output
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
    prim_of,
    reachable_graphs,
)
from ..primitives import PRIMITIVES

P = PRIMITIVES


def unwind_backprops(root: Graph) -> int:
    """Rewrite each derived function of the module reachable from `root` that has the
    shape above into its two loops; returns how many."""
    graphs = reachable_graphs(root)
    done = 0
    for g in graphs:
        if g.parent is None and g.derived and g is not root and _unwind(g, graphs):
            done += 1
    if done:
        forget_all(reachable_graphs(root))
    return done


def _calls_of(g: Graph, graphs: list[Graph]) -> list[Apply]:
    """The calls of `g` in `g` and in every graph nested in it."""
    found = []
    for h in graphs:
        if h is g or is_inside(h, g):
            for n in graph_nodes(h):
                if is_constant_graph(n.inputs[0]) and n.inputs[0].value is g:
                    found.append(n)
    return found


def _refers(node: Node, g: Graph) -> bool:
    return isinstance(node, Constant) and node.value is g


def _unwind(b: Graph, graphs: list[Graph]) -> bool:
    if b.vararg or not b.parameters or b.output is None:
        return False
    calls = _calls_of(b, graphs)
    if len(calls) != 1:
        return False
    call = calls[0]
    # The `if` whose branch makes the call: `S = switch(c, T, E)()`, in `b`'s body.
    ifs = [n for n in graph_nodes(b) if len(n.inputs) == 1 and
           isinstance(sw := n.inputs[0], Apply) and prim_of(sw) is P["switch"] and
           len(sw.inputs) == 4 and any(_refers(x, call.graph) for x in sw.inputs[2:])]
    if len(ifs) != 1:
        return False
    s_node = ifs[0]
    sw = s_node.inputs[0]
    assert isinstance(sw, Apply)
    cond, sides = sw.inputs[1], sw.inputs[2:]
    branches = [x.value for x in sides if is_constant_graph(x)]
    if len(branches) != 2 or any(h.parent is not b or h.parameters for h in branches):
        return False
    rec = branches.index(call.graph)
    base, step = branches[1 - rec], branches[rec]
    # Pure: no effect in `b` or any graph nested in it but the `if` and the call (a
    # forward `J_f` marks its recursive call an effect, which it is only if something
    # else in the recursion is); the branches and the `if` used nowhere else.
    inside = [h for h in graphs if h is b or is_inside(h, b)]
    if base is step or any(e is not s_node for e in b.effects) or \
            any(e is not call for e in step.effects) or \
            any(h.effects for h in inside if h is not b and h is not step):
        return False
    for h in inside:
        for n in graph_nodes(h):
            if n is not sw and any(_refers(x, base) or _refers(x, step) for x in n.inputs) \
                    or n is not s_node and sw in n.inputs:
                return False
    args = call.inputs[1:]
    if len(args) != len(b.parameters):
        return False
    live = _live_items(b, call, s_node, (base, step), graphs)
    params = b.parameters
    varying = [k for k, a in enumerate(args) if a is not params[k]]
    if not varying:
        return False  # (it would never stop)

    def bound(values: Sequence[Node]) -> dict[int, Node]:
        return {params[k].id: v for k, v in zip(varying, values, strict=True)}

    def result(target: Graph, nmap: dict[int, Node], branch: Graph) -> Node | None:
        """What `b` gives back when `branch` runs, computed in `target`: where no one
        reads some of its items (`live`), the live items alone (one item as itself)."""
        assert branch.output is not None and b.output is not None
        value = _copy(branch.output, target, nmap, b, branch)
        if value is None:
            return None
        nmap[s_node.id] = value
        whole = _copy(b.output, target, nmap, b)
        if whole is None or live is None:
            return whole
        items = [_item_of([Constant(P["tuple_getitem"]), whole, Constant(k)]) for k in live]
        if any(x is None for x in items):
            return None  # (not a tuple display: _live_items said it is one)
        kept = cast(list[Node], items)
        return kept[0] if len(kept) == 1 else target.apply(P["make_tuple"], *kept)

    def whole(target: Graph, state: Node) -> Node:
        """`b`'s result from what `result` gives: the dead items None."""
        if live is None:
            return state
        assert b.output is not None
        size = len(cast(Apply, b.output).inputs) - 1
        at = {k: j for j, k in enumerate(live)}
        return target.apply(P["make_tuple"], *[
            Constant(None) if k not in at else state if len(live) == 1 else
            target.apply(P["tuple_getitem"], state, at[k]) for k in range(size)])

    down_cond = Graph(f"{b.name}_descends", b, b.loc)
    down = Graph(f"{b.name}_descent", b, b.loc)
    up_cond = Graph(f"{b.name}_climbs", b, b.loc)
    up = Graph(f"{b.name}_climb", b, b.loc)
    for h in (down_cond, down, up_cond, up):
        h.derived = True

    # descends(v..., stack): whether `b` at v takes the recursive branch
    vs = [down_cond.add_parameter(params[k].name) for k in varying]
    down_cond.add_parameter("stack")
    c = _copy(cond, down_cond, bound(vs), b)
    if c is None:
        return False
    set_output(down_cond, c if rec == 0 else down_cond.apply(P["not_"], c))

    # descent(v..., stack): push v, then the call's arguments
    vs = [down.add_parameter(params[k].name) for k in varying]
    stack = down.add_parameter("stack")
    frame = vs[0] if len(vs) == 1 else down.apply(P["make_tuple"], *vs)
    push = down.apply(P["stack_push"], stack, frame)
    nmap = bound(vs)
    nexts = [_copy(args[k], down, nmap, b, step) for k in varying]
    if any(n is None for n in nexts):
        return False
    set_output(down, down.apply(P["make_tuple"], *nexts, stack))
    set_effects(down, [push])

    # climbs(stack, acc) and climb(stack, acc): pop v, acc = what `b` gives at v from
    # what the call gave (acc)
    stack_c = up_cond.add_parameter("stack")
    up_cond.add_parameter("acc")
    set_output(up_cond, up_cond.apply(P["stack_nonempty"], stack_c))
    stack_u = up.add_parameter("stack")
    acc = up.add_parameter("acc")
    popped = up.apply(P["stack_pop"], stack_u, name="frame")
    values = [popped] if len(varying) == 1 else \
        [up.apply(P["tuple_getitem"], popped, j) for j in range(len(varying))]
    nmap = bound(values)
    nmap[call.id] = whole(up, acc)
    post = result(up, nmap, step)
    if post is None:
        return False
    set_output(up, up.apply(P["make_tuple"], stack_u, post))
    set_effects(up, [popped])

    # b's new body: descend, the base case, climb
    loop1 = b.apply(P["while_loop"], Constant(down_cond), Constant(down),
                    *[params[k] for k in varying], b.apply(P["stack_new"]))
    last = [b.apply(P["tuple_getitem"], loop1, j) for j in range(len(varying))]
    stacked = b.apply(P["tuple_getitem"], loop1, len(varying), name="stack")
    start = result(b, bound(last), base)
    if start is None:
        return False
    loop2 = b.apply(P["while_loop"], Constant(up_cond), Constant(up), stacked, start)
    set_effects(b, [loop1])
    set_output(b, whole(b, b.apply(P["tuple_getitem"], loop2, 1)))
    return True


def _live_items(b: Graph, call: Apply, s_node: Apply, branches: tuple[Graph, Graph],
                graphs: list[Graph]) -> list[int] | None:
    """The items of `b`'s result that matter, where `b` gives back a tuple display some
    of whose items nothing reads: a forward `J_f` whose callers take only the record,
    not the value (a gradient never reads the primal value of the recursion; the walk's
    sum). An item matters if a call of `b` from outside reads it, or if computing an
    item that matters reads it of the recursive call (`_unwind` has checked that `b`
    has no effect but the `if` and the call themselves). None where every
    item matters, or where `b` escapes or a call's result is used otherwise than by its
    items at constant indices (then nothing is dropped)."""
    out = b.output
    if not (isinstance(out, Apply) and prim_of(out) is P["make_tuple"]):
        return None
    size = len(out.inputs) - 1
    outside: list[Apply] = []
    for h in graphs:
        if isinstance(h.output, Constant) and h.output.value is b:
            return None
        for n in graph_nodes(h):
            for pos, x in enumerate(n.inputs):
                if isinstance(x, Constant) and x.value is b:
                    if pos != 0:
                        return None
                    if n is not call:
                        outside.append(n)
    if not outside:
        return None
    ids = {n.id for n in outside}
    read: set[int] = set()
    for h in graphs:
        if isinstance(h.output, Apply) and h.output.id in ids:
            return None
        for n in graph_nodes(h):
            for pos, x in enumerate(n.inputs):
                if x.id not in ids:
                    continue
                k = n.inputs[2] if len(n.inputs) == 3 else None
                if not (pos == 1 and prim_of(n) is P["tuple_getitem"] and
                        isinstance(k, Constant) and type(k.value) is int and
                        0 <= k.value < size):
                    return None
                read.add(k.value)
    # What the recursion itself needs of the call, to a fixed point: an item of `b`'s
    # display, an item of the `if` (that item of each branch's display), an item of
    # the call; anything else needs all its inputs (and a graph, its free variables).
    live = set(read)
    while True:
        needed = _needs([out.inputs[1 + k] for k in live], call, s_node, branches)
        if needed is None:
            return None
        if needed <= live:
            break
        live |= needed
    return None if len(live) == size else sorted(live)


def _needs(roots: list[Node], call: Apply, s_node: Apply, branches: tuple[Graph, Graph]
           ) -> set[int] | None:
    """The items of `call`'s result that computing `roots` reads (None: all of it)."""
    found: set[int] = set()
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        x = todo.pop()
        if x.id in seen:
            continue
        seen.add(x.id)
        if x is call:
            return None  # (the call's result used whole)
        if isinstance(x, Constant):
            if is_constant_graph(x) and x.value not in branches:
                todo.extend(free_variables(x.value))
            continue
        if not isinstance(x, Apply):
            continue
        k = x.inputs[2] if len(x.inputs) == 3 else None
        if prim_of(x) is P["tuple_getitem"] and isinstance(k, Constant) and \
                type(k.value) is int:
            t = x.inputs[1]
            if t is call:
                found.add(k.value)
                continue
            if t is s_node:
                for h in branches:
                    o = h.output
                    if isinstance(o, Apply) and prim_of(o) is P["make_tuple"] and \
                            0 <= k.value < len(o.inputs) - 1:
                        todo.append(o.inputs[1 + k.value])
                    elif o is not None:
                        todo.append(o)
                continue
        if x is s_node:
            todo.extend(h.output for h in branches if h.output is not None)
        todo.extend(x.inputs)
    return found


def _copy(node: Node, target: Graph, nmap: dict[int, Node], b: Graph,
          branch: Graph | None = None) -> Node | None:
    """`node` (of `b` or of `branch`) computed in `target`, with the nodes in `nmap`
    (`b`'s varying parameters, the recursive call) as it maps them: the nodes it needs
    copied (`nmap` records the copies), the graphs nested in `b` they use cloned with
    their free variables so replaced; `b`'s other parameters (passed on unchanged) stay
    themselves. None where it needs a node of another graph nested in `b`."""
    owners = {b.id} | ({branch.id} if branch is not None else set())
    order: list[Apply] = []
    state: dict[int, bool] = {}  # node id -> finished
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        x, finished = stack.pop()
        if finished:
            state[x.id] = True
            order.append(cast(Apply, x))
            continue
        if x.id in nmap or x.id in state:
            continue
        if isinstance(x, Parameter):
            if x.graph is not b:
                return None
            continue  # (passed on unchanged: itself)
        if isinstance(x, Constant):
            if is_constant_graph(x) and is_inside(x.value, b):
                if x.value is branch or x.value is b:
                    return None
                stack.extend((fv, False) for fv in free_variables(x.value))
            continue
        assert isinstance(x, Apply)
        if x.graph.id not in owners:
            if x.graph is b or is_inside(x.graph, b):
                return None
            continue
        state[x.id] = False
        stack.append((x, True))
        stack.extend((i, False) for i in reversed(x.inputs))
    for x in order:
        inputs: list[Node] = []
        for i in x.inputs:
            if i.id in nmap:
                inputs.append(nmap[i.id])
            elif is_constant_graph(i) and is_inside(i.value, b):
                inputs.append(Constant(clone_graph(i.value, target, nmap), i.loc))
            else:
                inputs.append(i)
        item = _item_of(inputs)
        if item is not None:  # (an item of a tuple the copies made, or of a constant)
            nmap[x.id] = item
            continue
        copy = target.apply(*inputs, loc=x.loc, name=x.name)
        set_kind(copy, x.kind)
        nmap[x.id] = copy
    return nmap.get(node.id, node)


def _item_of(inputs: list[Node]) -> Node | None:
    """For `tuple_getitem(t, k)`'s inputs, t's item k where t is a tuple display or a
    constant tuple: the base case's `(0.0, ())` read item by item, the value and record
    a recursive branch gives read by what `b` gives back."""
    if len(inputs) != 3 or not isinstance(f := inputs[0], Constant) or \
            f.value is not P["tuple_getitem"] or not isinstance(k := inputs[2], Constant) \
            or type(k.value) is not int:
        return None
    t = inputs[1]
    if isinstance(t, Apply) and prim_of(t) is P["make_tuple"] and \
            0 <= k.value < len(t.inputs) - 1:
        return t.inputs[1 + k.value]
    if isinstance(t, Constant) and type(t.value) is tuple and 0 <= k.value < len(t.value):
        return Constant(t.value[k.value])
    return None
