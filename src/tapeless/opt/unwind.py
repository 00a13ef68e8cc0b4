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
own functions (not derived) are not rewritten.

First, a backward recursion `B` whose level reads nothing of the record its forward
recursion `J`'s call below made but what it passes on to its own call is fused into `J`
where a function calls `B` on the record a call of `J` gave (`_fuse_all`): one
recursion `F` computes each level's values and `B`'s pieces from them, no record is
made, and `J` is called only where something else reads its result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from ..ir.clone import clone_graph
from ..ir.edit import forget_all, set_effects, set_inputs, set_kind, set_output, users
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
from .patterns import follow_items, item_path, tuple_items, value_sources
from .zeros import f8_number

P = PRIMITIVES


def is_constant(node: Node | None, value: object) -> bool:
    return isinstance(node, Constant) and node.value is value


def unwind_backprops(root: Graph) -> int:
    """Rewrite each derived function of the module reachable from `root` that has the
    shape above into its two loops (a backward pass reading only its own level's record
    first fused into the forward pass that makes the records: `_fuse`); returns how many
    functions were fused or rewritten."""
    graphs = reachable_graphs(root)
    index = _Index(graphs)
    fused = _fuse_all(graphs, index)
    if fused:
        forget_all(graphs)
        graphs = reachable_graphs(root)
        index = _Index(graphs)
    candidates = [g for g in graphs if g.parent is None and g.derived and g is not root]
    # (Every proof first, on the recursions as they are: unwinding one changes them.)
    shapes = {g.id: _shape(g, index) for g in candidates}
    facts: list[LoopFacts] = []
    plans = {g.id: _plan(g, shapes[g.id], root, graphs, index, facts)
             for g in candidates}
    lives = {g.id: _live_items(g, shapes[g.id], index) for g in candidates}
    done = 0
    for g in candidates:
        if _unwind(g, shapes[g.id], index, lives[g.id], plans[g.id]):
            done += 1
    if done or fused:
        forget_all(reachable_graphs(root))
    return done + fused


class _Index:
    """What the rewrites here ask of the whole module, found in one pass: the nodes
    using each module function as a constant (with the input position), the graphs
    giving one back as their output, who uses each node, and the graphs nested in each
    module function (itself first)."""

    def __init__(self, graphs: list[Graph]) -> None:
        self.graph_uses: dict[int, list[tuple[Apply, int]]] = {}
        self.given_back: set[int] = set()
        self.users = users(graphs)
        self.inside: dict[int, list[Graph]] = {}
        for h in graphs:
            top = h
            while top.parent is not None:
                top = top.parent
            self.inside.setdefault(top.id, []).append(h)
            if is_constant_graph(h.output):
                self.given_back.add(h.output.value.id)
            for n in graph_nodes(h):
                for pos, x in enumerate(n.inputs):
                    if is_constant_graph(x):
                        self.graph_uses.setdefault(x.value.id, []).append((n, pos))
        for hs in self.inside.values():  # (each function first, then what it holds)
            hs.sort(key=lambda h: h.parent is not None)

    def calls(self, g: Graph) -> tuple[list[Apply], list[Apply]] | None:
        """The calls of the module function `g` in it (and the graphs nested in it), and
        those from outside; None where `g` is used otherwise than called."""
        inner: list[Apply] = []
        outer: list[Apply] = []
        if g.id in self.given_back:
            return None
        for n, pos in self.graph_uses.get(g.id, ()):
            if pos != 0:
                return None
            top = n.graph
            while top.parent is not None:
                top = top.parent
            (inner if top is g else outer).append(n)
        return inner, outer

    def readers(self, node: Node) -> list[Node | None]:
        """The nodes using `node` (None: some graph gives it back)."""
        return [n for n, _ in self.users.get(node.id, ())]


_Shape = tuple[Apply, Apply, Node, Graph, Graph, int]


def _refers(node: Node, g: Graph) -> bool:
    return isinstance(node, Constant) and node.value is g


def _shape(b: Graph, index: _Index) -> _Shape | None:
    """The recursive call, the `if`, its condition, its base and recursive branches and
    which of the two the recursive one is, where `b` has the shape above and its body
    (with the graphs in it) has no effect but the `if` and the call themselves (a
    forward `J_f` marks its recursive call an effect, which it is only if something else
    in the recursion is) and uses the branches and the `if` nowhere else."""
    if b.vararg or not b.parameters or b.output is None:
        return None
    found = index.calls(b)
    if found is None or len(found[0]) != 1:
        return None
    call = found[0][0]
    if len(call.inputs) - 1 != len(b.parameters):
        return None
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
    base, step = branches[1 - rec], branches[rec]
    inside = index.inside[b.id]
    if base is step or any(e is not s_node for e in b.effects) or \
            any(e is not call for e in step.effects) or \
            any(h.effects for h in inside if h is not b and h is not step):
        return None
    for h in inside:
        for n in graph_nodes(h):
            if n is not sw and any(_refers(x, base) or _refers(x, step) for x in n.inputs) \
                    or n is not s_node and sw in n.inputs:
                return None
    return call, s_node, cond, base, step, rec


def _unwind(b: Graph, found: _Shape | None, index: _Index, live: list[int] | None,
            plan: _Plan | None) -> bool:
    if found is None:
        return False
    call, s_node, cond, base, step, rec = found
    args = call.inputs[1:]
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
        items = tuple_items(whole)
        if items is None:
            return None  # (not a tuple display: _live_items said it is one)
        kept = [items[k] for k in live]
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


def _live_items(b: Graph, found: _Shape | None, index: _Index) -> list[int] | None:
    """The items of `b`'s result that matter, where `b` gives back a tuple display some
    of whose items nothing reads: a forward `J_f` whose callers take only the record,
    not the value (a gradient never reads the primal value of the recursion; the walk's
    sum). An item matters if a call of `b` from outside reads it, or if computing an
    item that matters reads it of the recursive call (`_shape` has checked that `b`
    has no effect but the `if` and the call themselves). None where every
    item matters, or where `b` escapes or a call's result is used otherwise than by its
    items at constant indices (then nothing is dropped)."""
    out = b.output
    calls = index.calls(b)
    if found is None or calls is None or not calls[1] or \
            not (isinstance(out, Apply) and prim_of(out) is P["make_tuple"]):
        return None
    call, s_node, _, base, step, _ = found
    size = len(out.inputs) - 1
    read: set[int] = set()
    for c in calls[1]:
        for n in index.readers(c):
            k = _index_read(n, c)
            if k is None or not 0 <= k < size:
                return None
            read.add(k)
    # What the recursion itself needs of the call, to a fixed point: an item of `b`'s
    # display, an item of the `if` (that item of each branch's display), an item of
    # the call; anything else needs all its inputs (and a graph, its free variables).
    live = set(read)
    while True:
        needed = _needs([out.inputs[1 + k] for k in live], call, s_node, (base, step))
        if needed is None:
            return None
        if needed <= live:
            break
        live |= needed
    return None if len(live) == size else sorted(live)


def _index_read(n: Node | None, t: Node | None) -> int | None:
    """k where `n` is `t[k]`, a constant int k; else None."""
    if not isinstance(n, Apply) or prim_of(n) is not P["tuple_getitem"] or n.inputs[1] is not t or \
            not isinstance(k := n.inputs[2], Constant) or type(k.value) is not int:
        return None
    return k.value


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
    items = tuple_items(inputs[1])
    return items[k.value] if items is not None and 0 <= k.value < len(items) else None


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


def _plan(b: Graph, found: _Shape | None, root: Graph, graphs: list[Graph], index: _Index,
          made: list[LoopFacts]) -> _Plan | None:
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
    calls = index.calls(b)
    if found is None or calls is None or not calls[1]:
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
    outside = calls[1]
    x_path = item_path(post.inputs[2])
    if x_path is None or x_path[0] not in params:
        return None
    k = params.index(x_path[0])
    down = item_path(args[k])
    if down is None or down[0] is not params[k]:
        return None
    # The records the parameter takes, as the nodes that make them, to a fixed point.
    records: dict[int, Node] = {}
    todo: list[Node] = []
    for c in outside:
        vs = value_sources(c.inputs[1 + k], {})
        if vs is None:
            return None
        todo.extend(vs)
    while todo:
        r = todo.pop()
        if r.id in records:
            continue
        records[r.id] = r
        nxt = follow_items(r, cast(list[int], down[1:]))
        if nxt is None:
            return None
        todo.extend(nxt)
    if not made:
        made.append(LoopFacts(root, graphs))
    facts = made[0]
    shape: tuple[int, ...] | None = None
    for r in records.values():
        xs = follow_items(r, cast(list[int], x_path[1:]))
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
            y_path = item_path(y)
            if y_path is None or y_path[0] is not params[k]:
                # (a number the level computes: a fused backward pass reads its own
                # level's values, not a record's, `_fuse`)
                if f8_number(y, facts):
                    plan.units[piece.id] = y
                    break
                continue
            ys = [follow_items(r, cast(list[int], y_path[1:])) for r in records.values()]
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


# --- a backward recursion fused into the forward one whose records it reads ----------


def _fuse_all(graphs: list[Graph], index: _Index) -> int:
    """Each call `B(J(a...)[k], e...)` of a backward recursion `B` on the record that a
    call of the forward recursion `J` made in the same function, where `B`'s level reads
    nothing of what `J`'s recursive call gave but the record it passes on to its own
    (`_Fuse`), as a call of one recursion `F(a..., e...)` that computes, level by level,
    what `J` put in the record and what `B` makes of it: no record is made, and where
    nothing else reads `J`'s result, `J` is not called. Returns how many calls."""
    done = 0
    made: dict[tuple[int, int, int, int], Graph | None] = {}  # (J, B, r, kr) -> F
    for b in graphs:
        if b.parent is not None or not b.derived:
            continue
        calls = index.calls(b)
        shape_b = _shape(b, index) if calls is not None and calls[1] else None
        if shape_b is None:
            continue
        assert calls is not None
        for site in calls[1]:
            for r, arg in enumerate(site.inputs[1:]):
                j_call = arg.inputs[1] if isinstance(arg, Apply) and len(arg.inputs) == 3 \
                    else None
                kr = _index_read(arg, j_call)
                if kr is None or not isinstance(j_call, Apply) or \
                        j_call.graph is not site.graph or \
                        not is_constant_graph(j := j_call.inputs[0]) or j.value is b or \
                        j.value.parent is not None or not j.value.derived or \
                        len(j_call.inputs) != len(j.value.parameters) + 1 or \
                        len(site.inputs) != len(b.parameters) + 1:
                    continue
                key = (j.value.id, b.id, r, kr)
                if key not in made:
                    shape_j = _shape(j.value, index)
                    made[key] = None if shape_j is None else \
                        _Fuse(j.value, shape_j, b, shape_b, r, kr).build()
                f = made[key]
                if f is None:
                    continue
                set_inputs(site, [Constant(f, site.inputs[0].loc), *j_call.inputs[1:],
                                  *[x for i, x in enumerate(site.inputs[1:]) if i != r]])
                if all(n is arg for n in index.readers(j_call)) and \
                        all(n is site for n in index.readers(arg)):
                    # (J is pure, `_shape`: its call, an effect only as a recursion's
                    # call is, can go)
                    g = j_call.graph
                    set_effects(g, [e for e in g.effects if e is not j_call])
                done += 1
                break
    return done


class _Callee:
    """Item k of what `J`'s recursive call gives (the callee's record, where k is the
    record's item)."""

    def __init__(self, k: int) -> None:
        self.k = k


@dataclass
class _Ref:
    """A value of `J`'s level (a node of `J`'s body or branches) that `B` reads out of
    the record, not yet computed in `F`."""

    node: Node


_Value = Node | _Ref | _Callee


class _Fuse:
    """`F(p..., e...)`, where `B(record, e...)` reads (as `record`) item kr of what
    `J(p...)` gives back: `F` tests `J`'s condition and takes the branch `B` takes on
    that record. `B`'s condition must be that condition read back from the record (so
    both stop at the same level: the lifted records carry it); each branch computes
    `B`'s, the record's items it reads computed as `J`'s same branch makes them (from
    `J`'s parameters: `J`'s branch and body copied where read). What `J`'s recursive
    call gave may be read only as the record `B` passes on to its own recursive call,
    which becomes `F`'s, on the arguments `J` gave its own call: a level reading the
    callee's value (`x * tanh(f(...))`) is not fused. Both are pure (`_shape`), so the
    same values come out of the same operations: `B`'s result, to the bit."""

    def __init__(self, j: Graph, shape_j: _Shape, b: Graph, shape_b: _Shape, r: int,
                 kr: int) -> None:
        self.j, self.b, self.r, self.kr = j, b, r, kr
        self.j_call, self.j_if, self.j_cond, self.j_base, self.j_step, self.j_rec = shape_j
        self.b_call, self.b_if, self.b_cond, self.b_base, self.b_step, self.b_rec = shape_b
        self.memo: dict[tuple[int, int], _Value | None] = {}
        self.params: dict[int, Node] = {}

    def build(self) -> Graph | None:
        j, b = self.j, self.b
        if j.vararg or b.vararg or self.j_rec != self.b_rec or j.output is None or \
                b.output is None or self.b_base.output is None or \
                self.b_step.output is None:
            return None
        f = Graph(f"{b.name}_fused", None, b.loc)
        f.derived = True
        for p in j.parameters:
            self.params[p.id] = f.add_parameter(p.name, p.loc)
        for i, q in enumerate(b.parameters):
            if i != self.r:
                self.params[q.id] = f.add_parameter(q.name, q.loc)
        for p in [*j.parameters, *b.parameters]:
            if p.id in self.params:
                set_kind(self.params[p.id], p.kind)
        self.f = f
        # Both stop where `J`'s condition says: `B`'s is it, read back from the record.
        c = self.value(self.b_cond, f, None, None)
        if not isinstance(c, _Ref) or c.node is not self.j_cond:
            return None
        cond = self.copy_j(self.j_cond, f, None)
        if cond is None:
            return None
        base = Graph(self.b_base.name, f, self.b_base.loc)
        step = Graph(self.b_step.name, f, self.b_step.loc)
        base.derived = step.derived = True
        sides = [base, step] if self.b_rec == 1 else [step, base]
        taken = f.apply(f.apply(P["switch"], cond, Constant(sides[0]), Constant(sides[1])))
        self.memo[(f.id, self.b_if.id)] = taken
        for g, j_side, b_side in ((base, self.j_base, self.b_base),
                                  (step, self.j_step, self.b_step)):
            assert b_side.output is not None
            out = self.node(self.value(b_side.output, g, j_side, b_side), g, j_side)
            if out is None:
                return None
            set_output(g, out)
        out = self.node(self.value(b.output, f, None, None), f, None)
        if out is None:
            return None
        set_output(f, out)
        return f

    # `J`'s values: items of the displays the level makes, read through its `if`

    def item(self, v: Node, k: int, side: Graph | None) -> Node | _Callee | None:
        """Item k of `J`'s value v at `side` (the branch `J` took, None where unknown)."""
        w = self.norm(v, side)
        if w is None or isinstance(w, _Callee):
            return None
        if w is self.j_call:
            return _Callee(k)
        items = tuple_items(w)
        if items is None or not -len(items) <= k < len(items):
            return None
        return self.norm(items[k], side)

    def norm(self, v: Node, side: Graph | None) -> Node | _Callee | None:
        """v where it is an item of a display (or of the `if`, or of the recursive
        call) read at a constant index: what it reads."""
        if v is self.j_if:
            return None if side is None or side.output is None else self.norm(side.output, side)
        k = _index_read(v, v.inputs[1]) if isinstance(v, Apply) and len(v.inputs) == 3 \
            else None
        return v if k is None else self.item(cast(Apply, v).inputs[1], k, side)

    def copy_j(self, v: Node, target: Graph, side: Graph | None) -> Node | None:
        """`J`'s value v computed in `target` (on `F`'s parameters), as `J` computes it
        at `side`; None where it needs the recursive call or another graph of `J`."""
        w = self.norm(v, side)
        if w is None or isinstance(w, _Callee) or w is self.j_call or w is self.j_if:
            return None
        key = (target.id, w.id)
        if key in self.memo:
            done = self.memo[key]
            return done if isinstance(done, Node) else None
        if isinstance(w, Parameter):
            return self.params.get(w.id) if w.graph is self.j else None
        if isinstance(w, Constant):
            return None if is_constant_graph(w) and (w.value is self.j or
                                                     is_inside(w.value, self.j)) else w
        assert isinstance(w, Apply)
        if w.graph is not self.j and w.graph is not side:
            return None
        inputs = []
        for x in w.inputs:
            y = self.copy_j(x, target, side)
            if y is None:
                return None
            inputs.append(y)
        made = target.apply(*inputs, loc=w.loc, name=w.name)
        set_kind(made, w.kind)
        self.memo[key] = made
        return made

    # `B`'s values, with its record `J`'s

    def value(self, x: Node, target: Graph, side: Graph | None, b_side: Graph | None
              ) -> _Value | None:
        """`B`'s value x at its branch `b_side` (None: its body), computed in `target`
        where it is not a value of `J`'s level (`_Ref`) or of its callee (`_Callee`)."""
        key = (target.id, x.id)
        if key in self.memo:
            return self.memo[key]
        found = self._value(x, target, side, b_side)
        self.memo[key] = found
        return found

    def _value(self, x: Node, target: Graph, side: Graph | None, b_side: Graph | None
               ) -> _Value | None:
        b = self.b
        if isinstance(x, Parameter):
            if x.graph is not b:
                return None
            if x is b.parameters[self.r]:
                assert self.j.output is not None
                found = self.item(self.j.output, self.kr, side)
                return None if found is None else \
                    found if isinstance(found, _Callee) else _Ref(found)
            return self.params[x.id]
        if isinstance(x, Constant):
            return None if is_constant_graph(x) and (x.value is b or
                                                     is_inside(x.value, b)) else x
        assert isinstance(x, Apply)
        if x.graph is not b and x.graph is not b_side:
            return None
        k = _index_read(x, x.inputs[1]) if len(x.inputs) == 3 else None
        if k is not None:
            t = self.value(x.inputs[1], target, side, b_side)
            if isinstance(t, _Ref):
                found = self.item(t.node, k, side)
                return None if found is None else \
                    found if isinstance(found, _Callee) else _Ref(found)
            if not isinstance(t, Node):
                return None
            return target.apply(P["tuple_getitem"], t, k, loc=x.loc, name=x.name)
        if x is self.b_call:
            return self.recur(target, side, b_side)
        inputs = []
        for i in x.inputs:
            y = self.node(self.value(i, target, side, b_side), target, side)
            if y is None:
                return None
            inputs.append(y)
        made = target.apply(*inputs, loc=x.loc, name=x.name)
        set_kind(made, x.kind)
        return made

    def node(self, v: _Value | None, target: Graph, side: Graph | None) -> Node | None:
        if isinstance(v, _Ref):
            return self.copy_j(v.node, target, side)
        return v if isinstance(v, Node) else None

    def recur(self, target: Graph, side: Graph | None, b_side: Graph | None) -> Node | None:
        """`B`'s recursive call as `F`'s: on the arguments `J` gave its own, where `B`
        passes on the callee's record."""
        passed = self.value(self.b_call.inputs[1 + self.r], target, side, b_side)
        if not isinstance(passed, _Callee) or passed.k != self.kr or side is not self.j_step:
            return None
        args = [self.copy_j(a, target, side) for a in self.j_call.inputs[1:]]
        args += [self.node(self.value(a, target, side, b_side), target, side)
                 for i, a in enumerate(self.b_call.inputs[1:]) if i != self.r]
        if any(a is None for a in args):
            return None
        return target.apply(Constant(self.f), *args, loc=self.b_call.loc)
