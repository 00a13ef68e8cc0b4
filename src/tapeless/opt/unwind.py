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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from ..runtime import ZERO
from .kinds import array, dtype_of, is_f8, kind, shape_of
from .loop_facts import LoopFacts
from .zeros import f8_number

P = PRIMITIVES


def is_constant(node: Node | None, value: object) -> bool:
    return isinstance(node, Constant) and node.value is value


def unwind_backprops(root: Graph) -> int:
    """Rewrite each derived function of the module reachable from `root` that has the
    shape above into its two loops; returns how many."""
    graphs = reachable_graphs(root)
    candidates = [g for g in graphs if g.parent is None and g.derived and g is not root]
    # (Every proof first, on the recursions as they are: unwinding one changes them.)
    facts: list[LoopFacts] = []
    plans = {g.id: _plan(g, root, graphs, facts) for g in candidates}
    done = 0
    for g in candidates:
        if _unwind(g, graphs, plans[g.id]):
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


def _shape(b: Graph, graphs: list[Graph]
           ) -> tuple[Apply, Apply, Node, Graph, Graph, int] | None:
    """The recursive call, the `if`, its condition, its base and recursive branches and
    which of the two the recursive one is, where `b` has the shape above."""
    if b.vararg or not b.parameters or b.output is None:
        return None
    calls = _calls_of(b, graphs)
    if len(calls) != 1:
        return None
    call = calls[0]
    # The `if` whose branch makes the call: `S = switch(c, T, E)()`, in `b`'s body.
    ifs = [n for n in graph_nodes(b) if len(n.inputs) == 1 and
           isinstance(sw := n.inputs[0], Apply) and prim_of(sw) is P["switch"] and
           len(sw.inputs) == 4 and any(_refers(x, call.graph) for x in sw.inputs[2:])]
    if len(ifs) != 1:
        return None
    s_node = ifs[0]
    sw = s_node.inputs[0]
    assert isinstance(sw, Apply)
    cond, sides = sw.inputs[1], sw.inputs[2:]
    branches = [x.value for x in sides if is_constant_graph(x)]
    if len(branches) != 2 or any(h.parent is not b or h.parameters for h in branches):
        return None
    rec = branches.index(call.graph)
    return call, s_node, cond, branches[1 - rec], branches[rec], rec


def _unwind(b: Graph, graphs: list[Graph], plan: _Plan | None) -> bool:
    found = _shape(b, graphs)
    if found is None:
        return False
    call, s_node, cond, base, step, rec = found
    sw = s_node.inputs[0]
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

    if plan is not None:
        return _one_loop(b, plan, cond, rec, step, call, varying, bound)

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

    # descends(v..., stack): whether `b` at v takes the recursive branch;
    # descent(v..., stack): push v, then the call's arguments
    made = _descent(b, cond, rec, varying, bound, "stack")
    if made is None:
        return False
    down_cond, down, vs, stack = made
    up_cond = Graph(f"{b.name}_climbs", b, b.loc)
    up = Graph(f"{b.name}_climb", b, b.loc)
    for h in (up_cond, up):
        h.derived = True
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


# --- the climb's sum into one array, in place ------------------------------------------


@dataclass
class _Plan:
    """What `_plan` proved of a backward recursion `B(record, ..., d, ...)` whose level
    gives back `scatter_add_pair_known(call, x, i, j, di, dj)`: x is, at every level, a
    float64 array of this shape; the pieces that are `d * y` (or `y * d`) with `d` 1.0
    at every level and y a float64 number (their node ids)."""

    post: int
    shape: tuple[int, ...]
    units: dict[int, Node] = field(default_factory=dict)  # mul node id -> y


def _plan(b: Graph, root: Graph, graphs: list[Graph], made: list[LoopFacts]
          ) -> _Plan | None:
    """For a lifted backward pass of a linear recursion that adds two pieces into the
    callee's sum each level (the walk's `B`), the proof that the climb may add them in
    place into one float64 array made once: the array it scatters into (x, an item of
    the record) is, at every level, a float64 array of one known shape. The records
    are followed to where they are made: every call of `b` from outside passes an item
    of a module function's result (the forward `J`), and `b` passes on an item of its
    record, which is, in J, an item of the record J's own recursive call gave; x's path
    in every record so reached ends at nodes whose kinds say float64 array of that
    shape (J's array parameter, passed on unchanged). Likewise a piece `d * y` whose `d`
    every call gives as 1.0 and passes on unchanged, and whose y is a float64 number
    wherever a record is made, is y itself (1.0 * y is y, to the bit)."""
    found = _shape(b, graphs)
    if found is None:
        return None
    call, s_node, _, base, step, _ = found
    post = step.output
    if not (isinstance(post, Apply) and prim_of(post) is P["scatter_add_pair_known"] and
            post.inputs[1] is call and b.output is s_node and
            is_constant(base.output, ZERO)) or \
            _needs(post.inputs[2:], call, s_node, (base, step)) != set():
        return None
    params = b.parameters
    args = call.inputs[1:]
    if len(args) != len(params):
        return None
    outside = []
    for h in graphs:
        if h is b or is_inside(h, b):
            continue
        if is_constant(h.output, b):
            return None
        for n in graph_nodes(h):
            if any(isinstance(x, Constant) and x.value is b for x in n.inputs[1:]):
                return None
            if isinstance(n.inputs[0], Constant) and n.inputs[0].value is b:
                if len(n.inputs) - 1 != len(params):
                    return None
                outside.append(n)
    if not outside:
        return None
    x_path = _path(post.inputs[2])
    if x_path is None or x_path[0] not in params:
        return None
    k = params.index(x_path[0])
    down = _path(args[k])
    if down is None or down[0] is not params[k]:
        return None
    # The records the parameter takes, as the nodes that make them, to a fixed point.
    records: dict[int, Node] = {}
    todo: list[Node] = []
    for c in outside:
        vs = _values(c.inputs[1 + k], {})
        if vs is None:
            return None
        todo.extend(vs)
    while todo:
        r = todo.pop()
        if r.id in records:
            continue
        records[r.id] = r
        nxt = _follow(r, cast(list[int], down[1:]))
        if nxt is None:
            return None
        todo.extend(nxt)
    if not made:
        made.append(LoopFacts(root, graphs))
    facts = made[0]
    shape: tuple[int, ...] | None = None
    for r in records.values():
        xs = _follow(r, cast(list[int], x_path[1:]))
        if xs is None:
            return None
        for x in xs:
            kx = kind(x, facts)
            sx = shape_of(kx)
            if not is_f8(kx) or sx is None or (shape is not None and sx != shape) or \
                    dtype_of(kx) != "f8":
                return None
            shape = sx
    if shape is None:
        return None
    plan = _Plan(post.id, shape)
    # Pieces d * y with d 1.0 everywhere and y a float64 number in every record.
    for piece in post.inputs[5:7]:
        if not (isinstance(piece, Apply) and prim_of(piece) is P["mul"]):
            continue
        for d, y in ((piece.inputs[1], piece.inputs[2]), (piece.inputs[2], piece.inputs[1])):
            if not (isinstance(d, Parameter) and d in params):
                continue
            j = params.index(d)
            if args[j] is not d or not all(_is_one(c.inputs[1 + j]) for c in outside):
                continue
            y_path = _path(y)
            if y_path is None or y_path[0] is not params[k]:
                continue
            ys = [_follow(r, cast(list[int], y_path[1:])) for r in records.values()]
            if all(v is not None and all(f8_number(n, facts) for n in v) for v in ys):
                plan.units[piece.id] = y
                break
    return plan


def _one_loop(b: Graph, plan: _Plan, cond: Node, rec: int, step: Graph, call: Apply,
              varying: list[int], bound: Callable[[Sequence[Node]], dict[int, Node]]
              ) -> bool:
    """`b` (with `_plan`'s proof) as one loop: the sum starts as the array's zeros and
    each level, going down, adds its two pieces by statements, `acc[i] += di; acc[j] +=
    dj` (a piece `1.0 * y` as y). The pieces of a level are made from that level's
    parameters alone, never from what the levels below gave (`_plan` checked), so no
    level needs to wait for the ones below it: no stack, no climb. The sum is the same
    up to rounding: the pieces are added one by one, the top level's first (the
    recursion adds the bottom level's first, and the two pieces of a level that share
    an index to each other first), as a hand-written gradient does in its own order."""
    params = b.parameters
    post = step.output
    assert isinstance(post, Apply)
    made = _descent(b, cond, rec, varying, bound, "acc")
    if made is None:
        return False
    test, body, vs, acc = made
    nmap = bound(vs)
    nexts = [_copy(call.inputs[1 + k], body, nmap, b, step) for k in varying]
    units = {m: _copy(y, body, nmap, b, step) for m, y in plan.units.items()}
    out: Node = acc
    for i, d in ((post.inputs[3], post.inputs[5]), (post.inputs[4], post.inputs[6])):
        index = _copy(i, body, nmap, b, step)
        piece = units[d.id] if d.id in units else _copy(d, body, nmap, b, step)
        if index is None or piece is None:
            return False
        out = body.apply(P["add_into_known"], out, index, piece)
        set_kind(out, array("f8", plan.shape))
    if any(n is None for n in nexts) or any(n is None for n in units.values()):
        return False
    set_output(body, body.apply(P["make_tuple"], *cast(list[Node], nexts), out))
    zeros = b.apply(P["np.zeros"], Constant(plan.shape), Constant(float), name="acc")
    set_kind(zeros, array("f8", plan.shape))
    loop = b.apply(P["while_loop"], Constant(test), Constant(body),
                   *[params[k] for k in varying], zeros)
    set_effects(b, [])
    set_output(b, b.apply(P["tuple_getitem"], loop, len(varying)))
    return True


def _descent(b: Graph, cond: Node, rec: int, varying: list[int],
             bound: Callable[[Sequence[Node]], dict[int, Node]], last: str
             ) -> tuple[Graph, Graph, list[Parameter], Parameter] | None:
    """A descent's condition `descends(v..., last)`, whether `b` at v takes the
    recursive branch, and its body `descent(v..., last)` (empty: the caller fills it),
    with the body's v and last parameter."""
    params = b.parameters
    test = Graph(f"{b.name}_descends", b, b.loc)
    body = Graph(f"{b.name}_descent", b, b.loc)
    for h in (test, body):
        h.derived = True
    vs = [test.add_parameter(params[k].name) for k in varying]
    test.add_parameter(last)
    c = _copy(cond, test, bound(vs), b)
    if c is None:
        return None
    set_output(test, c if rec == 0 else test.apply(P["not_"], c))
    vs = [body.add_parameter(params[k].name) for k in varying]
    return test, body, vs, body.add_parameter(last)


def _is_one(node: Node) -> bool:
    return isinstance(node, Constant) and type(node.value) is float and node.value == 1.0


def _path(node: Node) -> list[Node | int] | None:
    """`node` as items taken of a parameter at constant indices: [parameter, i, j...]
    for `p[i][j]...`, else None."""
    at: list[int] = []
    while isinstance(node, Apply):
        k = node.inputs[2] if len(node.inputs) == 3 else None
        if prim_of(node) is not P["tuple_getitem"] or not isinstance(k, Constant) or \
                type(k.value) is not int:
            return None
        at.append(k.value)
        node = node.inputs[1]
    if not isinstance(node, Parameter):
        return None
    return [node, *reversed(at)]


def _follow(r: Node, at: list[int]) -> list[Node] | None:
    """The nodes that may make item `at` (a path of indices) of what `r` makes."""
    now = [r]
    for i in at:
        nxt: list[Node] = []
        for v in now:
            found = _item_values(v, i, {})
            if found is None:
                return None
            nxt.extend(found)
        now = nxt
    return now


def _item_values(v: Node, i: int, active: dict[int, bool]) -> list[Node] | None:
    """The nodes that may make item i of the tuple `v` makes (None: not known). An item
    out of a tuple's range makes nothing (reading it raises)."""
    if isinstance(v, Constant):
        if type(v.value) is not tuple:
            return None
        return [Constant(v.value[i])] if -len(v.value) <= i < len(v.value) else []
    if isinstance(v, Apply) and prim_of(v) is P["make_tuple"]:
        n = len(v.inputs) - 1
        return _values(v.inputs[1 + i % n], active) if -n <= i < n else []
    return None


def _values(node: Node, active: dict[int, bool]) -> list[Node] | None:
    """The nodes whose values `node` may have: through items of tuple displays, the
    branches of a value-`if`, and the result of a call of a module function (not
    through loops or unknown calls: there `node` itself). None where a cycle or an
    unknown tuple is met."""
    if node.id in active or len(active) > 64:
        return None
    if not isinstance(node, Apply):
        return [node]
    active[node.id] = True
    try:
        head = node.inputs[0]
        k = node.inputs[2] if len(node.inputs) == 3 else None
        if prim_of(node) is P["tuple_getitem"] and isinstance(k, Constant) and \
                type(k.value) is int:
            tuples = _values(node.inputs[1], active)
            if tuples is None:
                return None
            out: list[Node] = []
            for t in tuples:
                found = _item_values(t, k.value, active)
                if found is None:
                    return None
                out.extend(found)
            return out
        if isinstance(head, Apply) and prim_of(head) is P["switch"] and len(node.inputs) == 1:
            outs = [x.value.output for x in head.inputs[2:4] if is_constant_graph(x)]
            if len(outs) != 2 or any(o is None for o in outs):
                return None
            return _merge([_values(cast(Node, o), active) for o in outs])
        if is_constant_graph(head) and head.value.parent is None and \
                head.value.output is not None and not head.value.vararg:
            return _values(head.value.output, active)
        return [node]
    finally:
        del active[node.id]


def _merge(found: list[list[Node] | None]) -> list[Node] | None:
    out: list[Node] = []
    for f in found:
        if f is None:
            return None
        out.extend(f)
    return out
