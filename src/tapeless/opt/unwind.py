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
made, and `J` is called only where something else reads its result. A level that reads
the callee's value is fused too where the sensitivity it gives the callee does not read
it (`F` then gives the value back; two loops over one stack become one loop: `_Fuse`)."""

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
from .loop_facts import LoopFacts, LoopInfo, loop_info
from .patterns import follow_items, item_path, tuple_items, value_sources
from .zeros import f8_number

P = PRIMITIVES

# Whether a backward recursion reading the callee's value is fused into the forward one,
# the fused function giving the value back (`_fuse_all`; tests of the records that
# such recursions otherwise keep turn it off).
FUSE_VALUES = True


def is_constant(node: Node | None, value: object) -> bool:
    return isinstance(node, Constant) and node.value is value


def unwind_backprops(root: Graph, values: str = "") -> int:
    """Rewrite each derived function of the module reachable from `root` that has the
    shape above into its two loops (a backward pass reading only its own level's record
    first fused into the forward pass that makes the records: `_fuse_all`; with
    `values` "flat", also one reading the callee's value, the fused function giving it
    back, where neither recursion runs a loop; "loops": where they do; "all": both);
    returns how many functions were fused or rewritten."""
    graphs = reachable_graphs(root)
    index = _Index(graphs)
    fused = _fuse_all(graphs, index, root, values if FUSE_VALUES else "")
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
    found = _looped_shape(b, index, False)
    return None if found is None else found[0]


def _looped_shape(b: Graph, index: _Index, loops: bool = True
                  ) -> tuple[_Shape, LoopInfo | None] | None:
    """`_shape`, or (with `loops`) the same where the recursive branch runs a loop (a
    `for_range` or `while_loop` node of the branch, its one use of the loop's body)
    whose body makes the one recursive call: its effects the loop and the call only.
    With the loop, where there is one."""
    if b.vararg or not b.parameters or b.output is None:
        return None
    found = index.calls(b)
    if found is None or len(found[0]) != 1:
        return None
    call = found[0][0]
    if len(call.inputs) - 1 != len(b.parameters):
        return None
    home, loop = call.graph, None
    if loops and home.parent is not None and home.parent.parent is b:
        uses = index.graph_uses.get(home.id, [])
        info = loop_info(uses[0][0]) if len(uses) == 1 else None
        if info is None or info.body is not home or info.node.graph is not home.parent or \
                any(e is not call for e in home.effects):
            return None
        home, loop = home.parent, info
    # The `if` whose branch makes the call: `S = switch(c, T, E)()`, in `b`'s body.
    ifs = [n for n in graph_nodes(b) if len(n.inputs) == 1 and
           isinstance(sw := n.inputs[0], Apply) and prim_of(sw) is P["switch"] and
           len(sw.inputs) == 4 and any(_refers(x, home) for x in sw.inputs[2:])]
    if len(ifs) != 1:
        return None
    s_node = ifs[0]
    sw = s_node.inputs[0]
    assert isinstance(sw, Apply)
    cond, sides = sw.inputs[1], sw.inputs[2:]
    branches = [x.value for x in sides if is_constant_graph(x)]
    if len(branches) != 2 or any(h.parent is not b or h.parameters for h in branches):
        return None
    rec = branches.index(home)
    base, step = branches[1 - rec], branches[rec]
    inside = index.inside[b.id]
    at = call if loop is None else loop.node
    if base is step or any(e is not s_node for e in b.effects) or \
            any(e is not at for e in step.effects) or \
            any(h.effects for h in inside if h is not b and h is not step and
                (loop is None or h is not loop.body)):
        return None
    for h in inside:
        for n in graph_nodes(h):
            if n is not sw and any(_refers(x, base) or _refers(x, step) for x in n.inputs) \
                    or n is not s_node and sw in n.inputs:
                return None
    return (call, s_node, cond, base, step, rec), loop


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


def fuse_native(root: Graph) -> int:
    """For the native backend: each backward recursion running a loop that reads its
    callee's value (the determinant's) fused into its forward recursion (`_fuse_all`,
    values "loops": no unwinding, Numba compiles the recursion), its sensitivity first
    added into one buffer (`lift.accumulate_down`, for these alone: the native lowering
    of the records does its own for the others). Returns how many calls were fused."""
    from .lift import accumulate_down

    if not FUSE_VALUES:
        return 0
    graphs = reachable_graphs(root)
    found: set[int] = set()
    _fuse_all(graphs, _Index(graphs), root, "loops", found)
    if not found:
        return 0
    accumulate_down(root, found)
    graphs = reachable_graphs(root)
    done = _fuse_all(graphs, _Index(graphs), root, "loops")
    forget_all(reachable_graphs(root))
    return done


def _fuse_all(graphs: list[Graph], index: _Index, root: Graph, values: str = "",
              dry: set[int] | None = None) -> int:
    """Each call `B(J(a...)[k], e...)` of a backward recursion `B` on the record that a
    call of the forward recursion `J` made in the same function, where `B`'s level reads
    nothing of what `J`'s recursive call gave but the record it passes on to its own
    (`_Fuse`), as a call of one recursion `F(a..., e...)` that computes, level by level,
    what `J` put in the record and what `B` makes of it: no record is made, and where
    nothing else reads `J`'s result, `J` is not called. With `values` (`unwind_backprops`),
    also where `B`'s
    level reads `J`'s other items of the callee (its value: the determinant's minors),
    where the sensitivity `B` gives its call does not read them: then `F` gives back
    `B`'s result and `J`'s other items, and reads of `J`'s value come from `F`; not
    where the site's other arguments (the sensitivity given) read `J`'s result: `J`
    then runs whole first, and `F` would compute every level's value again. Returns
    how many calls."""
    done = 0
    made: dict[tuple[int, int, int, int], tuple[Graph, bool] | None] = {}  # -> F
    for b in graphs:
        if b.parent is not None or not b.derived:
            continue
        calls = index.calls(b)
        shape_b = _looped_shape(b, index) if calls is not None and calls[1] else None
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
                    made[key] = _fused(j.value, b, shape_b, r, kr, index, root, values)
                found = made[key]
                if found is None:
                    continue
                f, gives_values = found
                rest = [x for i, x in enumerate(site.inputs[1:]) if i != r]
                if gives_values and any(_reads(x, j_call) for x in rest):
                    # (the sensitivity given is made of J's value: J runs whole first
                    # anyway, and F would compute every level's value again)
                    continue
                if dry is not None:  # (the ids of the B that fuse, nothing changed)
                    dry.add(b.id)
                    continue
                others = [n for n in index.readers(j_call) if n is not arg]
                g = site.graph
                if not gives_values:
                    set_inputs(site, [Constant(f, site.inputs[0].loc), *j_call.inputs[1:],
                                      *rest])
                else:
                    fc = g.apply(Constant(f, site.inputs[0].loc), *j_call.inputs[1:], *rest,
                                 loc=site.loc)
                    set_inputs(site, [Constant(P["tuple_getitem"]), fc, Constant(0)])
                    # (J's value from F: the sensitivities given do not read it)
                    size = len(tuple_items(j.value.output) or ())
                    for n in list(others):
                        k = _index_read(n, j_call)
                        if isinstance(n, Apply) and k is not None and 0 <= k < size \
                                and k != kr:
                            set_inputs(n, [Constant(P["tuple_getitem"]), fc,
                                           Constant(k if k > kr else k + 1)])
                            others.remove(n)
                if not others and all(n is site for n in index.readers(arg)):
                    # (J is pure, `_shape`: its call, an effect only as a recursion's
                    # call is, can go)
                    set_effects(g, [e for e in g.effects if e is not j_call])
                done += 1
                break
    return done


def _reads(x: Node, node: Node) -> bool:
    """Whether computing `x` reads `node` (through closures' free variables too)."""
    seen: set[int] = set()
    todo = [x]
    while todo:
        y = todo.pop()
        if y is node:
            return True
        if y.id in seen:
            continue
        seen.add(y.id)
        if isinstance(y, Apply):
            todo.extend(y.inputs)
        elif is_constant_graph(y):
            todo.extend(free_variables(y.value))
    return False


def _fused(j: Graph, b: Graph, shape_b: tuple[_Shape, LoopInfo | None], r: int, kr: int,
           index: _Index, root: Graph, values: str) -> tuple[Graph, bool] | None:
    """`F` for the pair, and whether it gives back `J`'s other items too: first as `B`'s
    result alone (a level not reading the callee's value), else (`values`) with them."""
    shape_j = _looped_shape(j, index)
    if shape_j is None:
        return None
    if shape_j[1] is None and shape_b[1] is None:
        f = _Fuse(j, shape_j, b, shape_b, r, kr, index, root, False).build()
        if f is not None:
            return f, False
    loops = shape_j[1] is not None or shape_b[1] is not None
    if not values or (values == "flat" and loops) or (values == "loops" and not loops):
        return None
    f = _Fuse(j, shape_j, b, shape_b, r, kr, index, root, True).build()
    return None if f is None else (f, True)


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


@dataclass
class _Loops:
    """The loop of `F`'s recursive branch that runs `J`'s loop and `B`'s (`_Fuse.loops`):
    its node, and where each of `J`'s states and `B`'s sums is among its items (`B`'s
    states passed on unchanged: their value)."""

    node: Apply
    j_items: dict[int, int]
    b_items: dict[int, int]
    b_fixed: dict[int, Node]


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
    same values come out of the same operations: `B`'s result, to the bit.

    With `values`, `F` gives back `(B's result, J's items but the record...)`, and a
    level may read the callee's other items (its value) from what `F`'s call gives,
    where the arguments of that call do not read them (the sensitivity `B` gives its
    callee is known before the callee returns: `B`'s level affine in the callee's value,
    its coefficient not made of it; `_Fuse.call` refuses a call needing itself). Where
    the recursive branches run loops, `J`'s pushing each iteration's saved tuple onto
    a stack and `B`'s popping them, the two become one loop (`_Fuse.loops`) running
    `J`'s iteration and then `B`'s on its saved tuple, forward: where each of `B`'s
    states is passed on unchanged (or through a saved branch record's function that
    gives its sensitivity back, `checkpoint._passed_on`) or is a sum (`gadd`) read by
    nothing else, so its iterations commute (the sums made in another order: the same
    up to rounding)."""

    def __init__(self, j: Graph, shape_j: tuple[_Shape, LoopInfo | None], b: Graph,
                 shape_b: tuple[_Shape, LoopInfo | None], r: int, kr: int, index: _Index,
                 root: Graph, values: bool) -> None:
        self.j, self.b, self.r, self.kr, self.values = j, b, r, kr, values
        self.index, self.root = index, root
        (self.j_call, self.j_if, self.j_cond, self.j_base, self.j_step,
         self.j_rec), self.j_loop = shape_j
        (self.b_call, self.b_if, self.b_cond, self.b_base, self.b_step,
         self.b_rec), self.b_loop = shape_b
        self.memo: dict[tuple[int, int], _Value | None] = {}
        self.params: dict[int, Node] = {}
        self.j_items: list[int] = []  # (`values`: J's items F gives back after B's)
        self.fstep: Graph | None = None
        self.body: Graph | None = None  # (the fused loop's body)
        self.fused: _Loops | None = None
        self.fusing = False
        self.starts: dict[int, Node] = {}  # (B's loop states passed on: where they start)
        self.facts: list[LoopFacts] = []  # (made at the first question about kinds)
        self.called: tuple[Graph, Apply | None] | None = None

    def build(self) -> Graph | None:
        j, b = self.j, self.b
        if j.vararg or b.vararg or self.j_rec != self.b_rec or j.output is None or \
                b.output is None or self.b_base.output is None or \
                self.b_step.output is None or (self.j_loop is None) != (self.b_loop is None):
            return None
        items = tuple_items(j.output)
        if self.values:
            if items is None or not 0 <= self.kr < len(items):
                return None
            self.j_items = [i for i in range(len(items)) if i != self.kr]
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
        self.fstep = step
        sides = [base, step] if self.b_rec == 1 else [step, base]
        taken = f.apply(f.apply(P["switch"], cond, Constant(sides[0]), Constant(sides[1])))
        self.memo[(f.id, self.b_if.id)] = \
            f.apply(P["tuple_getitem"], taken, 0) if self.values else taken
        for g, j_side, b_side in ((base, self.j_base, self.b_base),
                                  (step, self.j_step, self.b_step)):
            assert b_side.output is not None
            out = self.node(self.value(b_side.output, g, j_side, b_side), g, j_side)
            if out is None:
                return None
            if self.values:
                assert items is not None
                outs = [out]
                for i in self.j_items:
                    v = self.copy_j(items[i], g, j_side)
                    if v is None:
                        return None
                    outs.append(v)
                out = g.apply(P["make_tuple"], *outs)
            set_output(g, out)
        out = self.node(self.value(b.output, f, None, None), f, None)
        if out is None:
            return None
        if self.values:
            out = f.apply(P["make_tuple"], out, *[f.apply(P["tuple_getitem"], taken, 1 + n)
                                                  for n in range(len(self.j_items))])
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
        call) read at a constant index: what it reads. (With `values`, an item of
        another value, a loop's or a call's, as itself.)"""
        if v is self.j_if:
            return None if side is None or side.output is None else self.norm(side.output, side)
        k = _index_read(v, v.inputs[1]) if isinstance(v, Apply) and len(v.inputs) == 3 \
            else None
        if k is None:
            return v
        found = self.item(cast(Apply, v).inputs[1], k, side)
        if found is None and self.values:
            t = self.norm(cast(Apply, v).inputs[1], side)
            if isinstance(t, Node) and t is not self.j_if and tuple_items(t) is None:
                return v
        return found

    def copy_j(self, v: Node, target: Graph, side: Graph | None) -> Node | None:
        """`J`'s value v computed in `target` (on `F`'s parameters), as `J` computes it
        at `side`; None where it needs the recursive call or another graph of `J`."""
        w = self.norm(v, side)
        if isinstance(w, _Callee):
            return self.callee(w.k, target, side)
        if w is None or w is self.j_call or w is self.j_if:
            return None
        key = (target.id, w.id)
        if key in self.memo:
            done = self.memo[key]
            return done if isinstance(done, Node) else None
        loop = self.j_loop
        in_body = loop is not None and side is self.j_step and w.graph is loop.body
        if isinstance(w, Parameter):
            if w.graph is self.j or (in_body and target is self.body):
                return self.params.get(w.id)
            return None
        if isinstance(w, Constant):
            if not is_constant_graph(w) or not (w.value is self.j or
                                                is_inside(w.value, self.j)):
                return w
            made_c = self.clone_j(w, target, side)
            self.memo[key] = made_c
            return made_c
        assert isinstance(w, Apply)
        if w.graph is not self.j and w.graph is not side and not in_body:
            return None
        if in_body != (target is self.body) and self.body is not None and \
                target is self.body:
            # (a value of `J`'s level in the fused loop: made once, in `F`'s branch)
            assert self.fstep is not None
            hoisted = self.copy_j(w, self.fstep, side)
            self.memo[key] = hoisted
            return hoisted
        if in_body and target is not self.body:
            return None
        if loop is not None and w is loop.node:
            return None
        if loop is not None and len(w.inputs) == 3 and w.inputs[1] is loop.node:
            k = _index_read(w, loop.node)
            found = self.loops(target, side)
            return None if k is None or found is None or k not in found.j_items else \
                target.apply(P["tuple_getitem"], found.node, found.j_items[k])
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

    def clone_j(self, w: Constant, target: Graph, side: Graph | None) -> Node | None:
        """A graph nested in `J`'s level (a closure: an inner `if`'s branch, a
        comprehension's function), copied into `target` with its free variables
        computed there (`values`); not `J`'s own branches or loop body."""
        g = w.value
        own = [self.j, self.j_base, self.j_step] + \
            ([self.j_loop.body] if self.j_loop is not None else [])
        if not self.values or any(g is h for h in own):
            return None
        subst: dict[int, Node] = {}
        for fv in free_variables(g):
            c = self.copy_j(fv, target, side)
            if c is None:
                return None
            subst[fv.id] = c
        return Constant(clone_graph(g, target, subst), w.loc)

    def callee(self, k: int, target: Graph, side: Graph | None) -> Node | None:
        """Item k of what `J`'s recursive call gives, from `F`'s call (`values`)."""
        size = len(self.j_items) + 1
        k = k + size if k < 0 else k
        if not self.values or k == self.kr or k not in self.j_items:
            return None
        call = self.call(target, side)
        return None if call is None else \
            target.apply(P["tuple_getitem"], call, 1 + self.j_items.index(k))

    def call(self, target: Graph, side: Graph | None) -> Apply | None:
        """`F`'s recursive call (`values`), made once: on the arguments `J` gave its own
        and what `B` gives its own but the record; None where making it needs what it
        gives (the sensitivity `B` gives its callee reads the callee's value)."""
        if self.called is not None:
            there, made = self.called
            return made if there is target else None
        if side is not self.j_step:
            return None
        self.called = (target, None)
        passed = self.value(self.b_call.inputs[1 + self.r], target, side, self.b_step)
        if not isinstance(passed, _Callee) or passed.k != self.kr:
            return None
        args = [self.copy_j(a, target, side) for a in self.j_call.inputs[1:]]
        args += [self.node(self.value(a, target, side, self.b_step), target, side)
                 for i, a in enumerate(self.b_call.inputs[1:]) if i != self.r]
        if any(a is None for a in args):
            return None
        made = target.apply(Constant(self.f), *cast(list[Node], args), loc=self.b_call.loc)
        self.called = (target, made)
        return made

    # The two loops as one

    def loops(self, target: Graph, side: Graph | None) -> _Loops | None:
        """The loop running `J`'s loop and `B`'s as one, in `F`'s recursive branch (made
        once); None where they do not have that shape (see the class)."""
        if self.fused is not None:
            return self.fused if target is self.fstep else None
        if self.fusing or target is not self.fstep or side is not self.j_step:
            return None
        self.fusing = True
        try:
            self.fused = self._loops(target, side)
        finally:
            self.fusing = False
        return self.fused

    def _loops(self, target: Graph, side: Graph) -> _Loops | None:
        jl, bl = self.j_loop, self.b_loop
        if jl is None or bl is None or jl.cond is not None or bl.cond is None or \
                bl.node.graph is not self.b_step:
            return None
        j_out, b_out = jl.outputs, bl.outputs
        if j_out is None or b_out is None:
            return None
        jp, bp = jl.body.parameters, bl.body.parameters
        # B's stack: its condition tests it, each iteration leaves its rest; J's loop
        # pushes onto it, from None, once per iteration.
        test = bl.cond.output
        if not (isinstance(test, Apply) and prim_of(test) is P["is_not"] and
                is_constant(test.inputs[2], None) and test.inputs[1] in bl.cond.parameters):
            return None
        t = bl.cond.parameters.index(test.inputs[1])
        if _index_read(b_out[t], bp[t]) != 1:
            return None
        start = self.value(bl.init[t], target, side, self.b_step)
        held = self.norm(start.node, side) if isinstance(start, _Ref) else None
        s = _index_read(held, jl.node) if isinstance(held, Apply) else None
        if s is None or not 0 <= s < len(jl.init) or not is_constant(jl.init[s], None):
            return None
        push = j_out[s]
        if not (isinstance(push, Apply) and prim_of(push) is P["make_tuple"] and
                len(push.inputs) == 3 and push.inputs[2] is jp[jl.lead + s]):
            return None
        body = Graph(f"{bl.body.name}_fused", target, bl.body.loc)
        body.derived = True
        self.body = body
        for i, p in enumerate(jp):
            if i != jl.lead + s:  # (J's stack: not made)
                self.params[p.id] = new = body.add_parameter(p.name, p.loc)
                set_kind(new, p.kind)
        self.memo[(body.id, bp[t].id)] = _Ref(push)
        fixed: dict[int, Node] = {}
        sums: list[int] = []
        for m, out in enumerate(b_out):
            p = bp[m]
            if m == t:
                continue
            if out is p or self.passed_on(out, p, bp[t], push, bl.init[m]):
                v = self.node(self.value(bl.init[m], target, side, self.b_step), target, side)
                if v is None:
                    return None
                self.memo[(body.id, p.id)] = fixed[m] = v
                self.starts[p.id] = bl.init[m]
            elif self.adds_into(out, p):
                self.memo[(body.id, p.id)] = new = body.add_parameter(p.name, p.loc)
                set_kind(new, p.kind)
                sums.append(m)
            else:
                return None
        outs: list[Node | None] = [self.copy_j(o, body, side)
                                   for i, o in enumerate(j_out) if i != s]
        outs += [self.node(self.value(b_out[m], body, side, self.b_step), body, side)
                 for m in sums]
        starts: list[Node | None] = [self.copy_j(x, target, side)
                                     for i, x in enumerate(jl.init) if i != s]
        starts += [self.node(self.value(bl.init[m], target, side, self.b_step), target, side)
                   for m in sums]
        head = [self.copy_j(x, target, side) for x in jl.node.inputs[1:jl.first_init - 1]]
        if any(x is None for x in [*outs, *starts, *head]):
            return None
        set_output(body, body.apply(P["make_tuple"], *cast(list[Node], outs)))
        node = target.apply(jl.node.inputs[0], *cast(list[Node], head), Constant(body),
                            *cast(list[Node], starts), loc=jl.node.loc)
        kept = [i for i in range(len(j_out)) if i != s]
        return _Loops(node, {i: n for n, i in enumerate(kept)},
                      {m: len(kept) + n for n, m in enumerate(sums)}, fixed)

    def adds_into(self, out: Node, p: Parameter) -> bool:
        """Whether `B`'s loop makes its state `p` a sum: `out` is `p` with pieces added
        (`gadd`, `gadd_owned`, `scatter_add_known`, `add_into_known`: what the pieces
        are read of nothing but `p`), maybe first given to `B`'s call as its
        accumulator (which adds into it, `lift.accumulate_down`); `p` and each partial
        sum read once. Such iterations commute (up to the order of the sums)."""
        adds = (P["gadd"], P["gadd_owned"], P["scatter_add_known"], P["add_into_known"])
        x, called = out, False
        while x is not p:
            readers = self.index.readers(x)
            if x is not out and len(readers) != 1:
                return False
            if x is self.b_call and not called and x.inputs[-1] is not x.inputs[1 + self.r]:
                x, called = x.inputs[-1], True
                continue
            if not isinstance(x, Apply) or prim_of(x) not in adds:
                return False
            ins = x.inputs[1:] if prim_of(x) in adds[:2] else x.inputs[1:2]
            on = [y for y in ins if _reads(y, p)]
            if len(on) != 1 or any(_reads(y, p) for y in x.inputs[1:] if y is not on[0]):
                return False
            x = on[0]
        return len(self.index.readers(p)) == 1 and (called or out is not p)

    def passed_on(self, out: Node, p: Parameter, stack: Parameter, push: Apply,
                  start: Node) -> bool:
        """Whether `B`'s loop gives its state `p` on through a saved branch record's
        function that gives its sensitivity back as it is (`checkpoint._passed_on`,
        `_gives_back`), `p` starting as a parameter of `B` that every call gives a value
        never ZERO."""
        from .checkpoint import _gives_back, _passed_on
        from .lift import _never_zero

        i = _passed_on(out, p, stack)
        if i is None:  # (the native backend's records keep the branch's closure)
            i = _closure_passed_on(out, p, stack)
            if i is None or not _closures_give_d(push.inputs[1], i, self.root, self.facts):
                return False
        elif not _gives_back(push.inputs[1], i, self.root, []):
            return False
        if not isinstance(start, Parameter) or start.graph is not self.b:
            return False
        at = self.b.parameters.index(start)
        calls = self.index.calls(self.b)
        return calls is not None and all(_never_zero(c.inputs[1 + at], {start.id})
                                         for c in [*calls[0], *calls[1]])

    def never_zero(self, d: Node) -> bool:
        """Whether `B`'s value d is never ZERO: a parameter of `B` that every call gives
        a value never ZERO (or a state of `B`'s loop passed on from one), a primitive's
        that never is, or item q of what a saved branch record's function gives for a d
        never ZERO where each such function's item q is never ZERO (`_gives_nonzero`)."""
        from .checkpoint import _read
        from .lift import _never_zero

        b, loop = self.b, self.b_loop
        if isinstance(d, Parameter):
            if loop is not None and d.graph is loop.body:
                start = self.starts.get(d.id)
                return isinstance(start, Parameter) and self.never_zero(start)
            calls = self.index.calls(b)
            at = b.parameters.index(d) if d.graph is b else -1
            return at >= 0 and at != self.r and calls is not None and \
                all(_never_zero(c.inputs[1 + at], {d.id}) for c in [*calls[0], *calls[1]])
        if _never_zero(d, set()):
            return True
        q = _read(d)
        called = _backprop_call(cast(Apply, d).inputs[1]) if q is not None else None
        if q is None or loop is None or self.body is None or called is None or \
                not self.never_zero(called[1]):
            return False
        r = called[0]
        i = _read(r)
        saved = cast(Apply, r).inputs[1] if i is not None else None
        test = loop.cond.output if loop.cond is not None else None
        stack = test.inputs[1] if isinstance(test, Apply) else None
        if i is None or not isinstance(saved, Apply) or \
                _read(saved) != 0 or not isinstance(stack, Parameter) or \
                loop.cond is None or stack not in loop.cond.parameters or \
                saved.inputs[1] is not \
                loop.body.parameters[loop.lead + loop.cond.parameters.index(stack)]:
            return False
        push = self.memo.get((self.body.id, saved.inputs[1].id))
        return isinstance(push, _Ref) and isinstance(push.node, Apply) and \
            _gives_nonzero(push.node.inputs[1], i, q)

    def given_back(self, c: Node, q: int, target: Graph, side: Graph | None,
                   b_side: Graph | None) -> Node | None:
        """Item q of `c = r[0](r, d)` (or `r(d)`, `_backprop_call`), where r is a branch
        record J's level saved (item k of a conditional expression's result,
        `switch(t, T, E)()`) and each branch's record function (or closure) gives, as
        its item q, its `d` as it is or negated (`sens_of(d, _)` with d never ZERO,
        `unbroadcast(d, x)` with x a number, either negated: `_gives_d`): that d, or its
        negation where the branch `t` takes does negate it, without the record (whose
        items may be made of the callee's value)."""
        from .checkpoint import _branches

        called = _backprop_call(c)
        if called is None or not self.never_zero(called[1]):
            return None
        r = self.value(called[0], target, side, b_side)
        held = self.norm(r.node, side) if isinstance(r, _Ref) else None
        k = _index_read(held, held.inputs[1]) if isinstance(held, Apply) and \
            len(held.inputs) == 3 else None
        sides = _branches(cast(Apply, held).inputs[1]) if k is not None else None
        if sides is None or k is None:
            return None
        signs = [_gives_d(h, k, q, self.root, self.facts) for h in sides[1:3]]
        if any(n is None for n in signs):
            return None
        d = self.node(self.value(called[1], target, side, b_side), target, side)
        if d is None:
            return None
        if signs[0] == signs[1]:
            return d if not signs[0] else target.apply(P["neg"], d)
        test = self.copy_j(sides[0], target, side)
        if test is None:
            return None
        made = []
        for negated in signs:
            h = Graph("given_back", target, target.loc)
            h.derived = True
            set_output(h, h.apply(P["neg"], d) if negated else d)
            made.append(Constant(h))
        return target.apply(target.apply(P["switch"], test, *made))

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
        loop = self.b_loop
        in_body = loop is not None and b_side is self.b_step and x.graph is loop.body
        if x.graph is not b and x.graph is not b_side and not in_body:
            return None
        if in_body != (target is self.body):
            if not in_body and self.body is not None and target is self.body:
                assert self.fstep is not None  # (made once, in `F`'s branch)
                return self.value(x, self.fstep, side, b_side)
            return None
        k = _index_read(x, x.inputs[1]) if len(x.inputs) == 3 else None
        if k is not None and loop is not None and x.inputs[1] is loop.node:
            fused = self.loops(target, side)
            if fused is None or k not in fused.b_fixed and k not in fused.b_items:
                return None
            return fused.b_fixed[k] if k in fused.b_fixed else \
                target.apply(P["tuple_getitem"], fused.node, fused.b_items[k])
        if k is not None and self.values and self.body is not None:
            given = self.given_back(x.inputs[1], k, target, side, b_side)
            if given is not None:
                return given
        if k is not None:
            t = self.value(x.inputs[1], target, side, b_side)
            if isinstance(t, _Ref):
                found = self.item(t.node, k, side)
                if found is None and self.values:  # (an item of a value not a display)
                    whole = self.copy_j(t.node, target, side)
                    return None if whole is None else \
                        target.apply(P["tuple_getitem"], whole, k, loc=x.loc, name=x.name)
                return None if found is None else \
                    found if isinstance(found, _Callee) else _Ref(found)
            if not isinstance(t, Node):
                return None
            return target.apply(P["tuple_getitem"], t, k, loc=x.loc, name=x.name)
        if x is self.b_call:
            return self.recur(target, side, b_side)
        if self.values and prim_of(x) is P["sens_of"] and self.never_zero(x.inputs[1]):
            # (d itself: what it is shaped like, the callee's value maybe, is not read)
            return self.value(x.inputs[1], target, side, b_side)
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
        if isinstance(v, _Callee):
            return self.callee(v.k, target, side)
        return v

    def recur(self, target: Graph, side: Graph | None, b_side: Graph | None) -> Node | None:
        """`B`'s recursive call as `F`'s: on the arguments `J` gave its own, where `B`
        passes on the callee's record."""
        if self.values:
            call = self.call(target, side)
            return None if call is None else target.apply(P["tuple_getitem"], call, 0)
        passed = self.value(self.b_call.inputs[1 + self.r], target, side, b_side)
        if not isinstance(passed, _Callee) or passed.k != self.kr or side is not self.j_step:
            return None
        args = [self.copy_j(a, target, side) for a in self.j_call.inputs[1:]]
        args += [self.node(self.value(a, target, side, b_side), target, side)
                 for i, a in enumerate(self.b_call.inputs[1:]) if i != self.r]
        if any(a is None for a in args):
            return None
        return target.apply(Constant(self.f), *args, loc=self.b_call.loc)


def _backprop_call(c: Node) -> tuple[Node, Node] | None:
    """(r, d) where `c` calls a saved branch's backpropagator r on d: `r[0](r, d)` (a
    record, the Python backend's, `lift.convert_closures`) or `r(d)` (the closure itself,
    the native backend's, lowered as a tagged tuple)."""
    if not isinstance(c, Apply):
        return None
    if len(c.inputs) == 3 and _index_read(c.inputs[0], c.inputs[1]) == 0:
        return c.inputs[1], c.inputs[2]
    if len(c.inputs) == 2 and not isinstance(c.inputs[0], Constant):
        return c.inputs[0], c.inputs[1]
    return None


def _closure_passed_on(x: Node, d: Node, stack: Node) -> int | None:
    """i where `x` is item 0 of what the closure a saved tuple's item i holds gives for
    `d`: `stack[0][i](d)[0]` (`checkpoint._passed_on` where the branch's backpropagator
    is kept as a closure, not a record)."""
    from .checkpoint import _read

    c = cast(Apply, x).inputs[1] if _read(x) == 0 else None
    if not isinstance(c, Apply) or len(c.inputs) != 2 or c.inputs[1] is not d:
        return None
    r = c.inputs[0]
    i = _read(r)
    saved = cast(Apply, r).inputs[1] if i is not None else None
    return i if isinstance(saved, Apply) and _read(saved, stack) == 0 else None


def _closures_give_d(saved: Node, i: int, root: Graph, facts: list[LoopFacts]) -> bool:
    """Whether item i of J's saved tuple `saved` is item k of an `if`'s result whose
    branches' backpropagators (closures) each give back, as their item 0, their `d` as
    it is (`_gives_d`; `checkpoint._gives_back` for records)."""
    from .checkpoint import _branches, _read

    items = tuple_items(saved)
    x = items[i] if items is not None and 0 <= i < len(items) else None
    k = _read(x) if x is not None else None
    sides = _branches(cast(Apply, x).inputs[1]) if k is not None else None
    return sides is not None and k is not None and \
        all(_gives_d(h, k, 0, root, facts) is False for h in sides[1:3])


def _gives_nonzero(saved: Node, i: int, q: int) -> bool:
    """Whether item i of J's saved tuple `saved` is an item of an `if`'s result whose
    branches each give a backpropagator (a record `(function, ...)` or a closure) that
    gives, as its item q, a value never ZERO where its `d` is not: `sens_of(d, _)`,
    `unbroadcast(d, _)`, either negated, or a primitive's that never is ZERO."""
    from .checkpoint import _branches, _read
    from .lift import _never_zero

    items = tuple_items(saved)
    if items is None or not 0 <= i < len(items):
        return False
    x = items[i]
    k = _read(x)
    sides = _branches(cast(Apply, x).inputs[1]) if k is not None else None
    if sides is None or k is None:
        return False
    for h in sides[1:3]:
        found = _record_item(h, k, q)
        if found is None:
            return False
        y, dn, _ = found
        while isinstance(y, Apply) and prim_of(y) is P["neg"]:
            y = y.inputs[1]
        if not (isinstance(y, Apply) and prim_of(y) in (P["sens_of"], P["unbroadcast"]) and
                y.inputs[1] is dn) and not _never_zero(y, set()):
            return False
    return True


def _gives_d(h: Graph, k: int, q: int, root: Graph, facts: list[LoopFacts]) -> bool | None:
    """Whether the backpropagator that branch `h` gives as its item k gives, as its item
    q, its `d` negated (False: as it is; None: neither, or not known): `sens_of(d, _)` or
    `unbroadcast(d, x)` with x a number the branch saved (a number's sensitivity is a
    number: itself), under any number of `neg`s."""
    from .lift import _is_number

    found = _record_item(h, k, q)
    if found is None:
        return None
    y, dn, saved = found
    negated = False
    while isinstance(y, Apply) and prim_of(y) is P["neg"]:
        y, negated = y.inputs[1], not negated
    if not isinstance(y, Apply) or y.inputs[1:2] != [dn]:
        return None
    if prim_of(y) is P["sens_of"]:
        return negated
    x = saved(y.inputs[2]) if prim_of(y) is P["unbroadcast"] else None
    return negated if x is not None and _is_number(x, root, cast(list, facts)) else None


def _record_item(h: Graph, k: int, q: int
                 ) -> tuple[Node, Parameter, Callable[[Node], Node | None]] | None:
    """Where branch `h` gives, as its item k, a backpropagator that gives back a tuple
    display: its item q, the backpropagator's `d`, and what a value it reads is where
    the branch saved it (None: not a saved value). Either a record `(g, ...)`, whose
    function `g(record, d)` reads the record's items, or a closure `g(d)` (the native
    backend's), whose free variables are what it saved."""
    o = tuple_items(h.output) if h.output is not None else None
    x = o[k] if o is not None and 0 <= k < len(o) else None
    if x is not None and is_constant_graph(x) and len(x.value.parameters) == 1:
        g = x.value
        out = tuple_items(g.output) if g.output is not None else None
        if g.vararg or out is None or not 0 <= q < len(out):
            return None

        def free(n: Node) -> Node | None:
            inside = isinstance(n, Apply | Parameter) and n.graph is not None and \
                (n.graph is g or is_inside(n.graph, g))
            return None if inside else n

        return out[q], g.parameters[0], free
    rec = tuple_items(x) if x is not None else None
    if rec is None or not rec or not is_constant_graph(rec[0]):
        return None
    g = rec[0].value
    out = tuple_items(g.output) if g.output is not None else None
    if len(g.parameters) != 2 or g.vararg or out is None or not 0 <= q < len(out):
        return None
    record = g.parameters[0]

    def item(n: Node) -> Node | None:
        m = _index_read(n, record)
        return rec[m] if m is not None and 0 < m < len(rec) else None

    return out[q], g.parameters[1], item
