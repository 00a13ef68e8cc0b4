"""In-place updates where no one can tell: the front end compiles `x[i] = v` to
`x = index_update(x, i, v)`, which copies `x`; filling a `T x n` array row by row in a
loop copies it `T` times, and its gradient's `update_rest_sens` copies the sensitivity
as often. Once the program is final, an update whose array nothing else can see
assigns into it instead (`index_update_inplace`, `index_add_inplace`,
`update_rest_inplace`):

- outside loops, an update of an array made in the same graph by an operation that
  allocates it (`np.zeros`, arithmetic, an earlier update, ...), whose other uses (and
  what is computed from them) are all computed before the update, as its inputs
  (`y[1:] = y[1:] + v` reads y, then writes into it);
- loop state that only goes through a chain of such updates in the body (the last is
  the state's next value, which nothing else in the body reads; the condition does not
  read the state), entering the loop as such an array (or as ZERO, a sensitivity not
  yet made) used by the loop alone.

A value computed from the array and used after the update (a row saved for the
backward pass, which may be a view) makes the update copy.

Each value an updated array held before is then read by nobody, so writing into it is
unobservable; a loop filling a `T x n` array does O(T n) work instead of O(T^2 n)."""

from __future__ import annotations

from ..ir.edit import forget_all, set_input
from ..ir.nodes import Apply, Constant, Graph, Node, graph_nodes, prim_of, reachable_graphs
from ..primitives import PRIMITIVES
from ..runtime import ZERO
from .loop_facts import LoopFacts, loop_info
from .loops import uses

P = PRIMITIVES

# Each update and its in-place form.
IN_PLACE = {"index_update": "index_update_inplace", "index_add": "index_add_inplace",
            "update_rest_sens": "update_rest_inplace"}

Uses = dict[int, list[tuple[Node | None, Graph]]]


def _update(node: Node | None) -> Apply | None:
    if isinstance(node, Apply) and isinstance(node.inputs[0], Constant) and \
            getattr(node.inputs[0].value, "name", None) in IN_PLACE:
        return node
    return None


def _only_use(node: Node, use: Uses) -> Node | None:
    found = use.get(node.id, [])
    return found[0][0] if len(found) == 1 else None


def _allocated(node: Node, where: Graph) -> bool:
    """Made in `where` by an operation that allocates its result (`Primitive.fresh`;
    not `np.einsum` of one operand, which NumPy gives as a view of it where it can:
    `'ii->i'`, `'ij->ji'`)."""
    if not (isinstance(node, Apply) and node.graph is where and
            isinstance(node.inputs[0], Constant) and
            getattr(node.inputs[0].value, "fresh", False)):
        return False
    return getattr(node.inputs[0].value, "name", "") != "np.einsum" or len(node.inputs) > 3


def _ancestors(node: Apply) -> set[int]:
    """The nodes of `node`'s graph that its inputs are computed from."""
    seen: set[int] = set()
    todo: list[Node] = list(node.inputs)
    while todo:
        n = todo.pop()
        if n.id in seen or not isinstance(n, Apply) or n.graph is not node.graph:
            continue
        seen.add(n.id)
        todo.extend(n.inputs)
    return seen


def _read_before(x: Node, update: Apply, use: Uses) -> bool:
    """Whether every use of `x` but `update`, and everything computed from those uses,
    is computed before `update` in its graph (as its inputs are): then nothing reads
    `x`, or a view of it, after `update` writes into it."""
    before = _ancestors(update)
    todo = [u for u, _ in use.get(x.id, []) if u is not update]
    seen: set[int] = set()
    while todo:
        u = todo.pop()
        if u is update:
            continue
        if u is None or u.id not in before:
            return False
        if u.id in seen:
            continue
        seen.add(u.id)
        if len(seen) > _CONE_MAX:
            return False
        todo.extend(v for v, _ in use.get(u.id, []))
    return True


_CONE_MAX = 200  # uses followed per update (past that, the update copies)


def _next_update(x: Node, where: Graph, use: Uses) -> Apply | None:
    """The one update of `x` in `where`, if every other use of `x` is read before it."""
    updates = [step for u, _ in use.get(x.id, []) if (step := _update(u)) is not None]
    if len(updates) != 1:
        return None
    step = updates[0]
    if step.graph is not where or step.inputs[1] is not x or \
            sum(i is x for i in step.inputs) != 1 or not _read_before(x, step, use):
        return None
    return step


def _chain(start: Node, body: Graph, use: Uses) -> list[Apply] | None:
    """The updates from `start` (a loop state parameter) to the state's next value
    (used by the body's output alone), each the update of the one before, which is
    read only before it; None where the state goes elsewhere."""
    chain: list[Apply] = []
    node: Node = start
    while True:
        step = _next_update(node, body, use)
        if step is None:
            return chain if chain and _only_use(node, use) is body.output else None
        chain.append(step)
        node = step


def update_in_place(root: Graph) -> int:
    """Turn the updates nothing else can observe into updates in place; returns how
    many."""
    graphs = reachable_graphs(root)
    use = uses(graphs)
    chosen: dict[int, Apply] = {}
    for g in graphs:
        for node in graph_nodes(g):
            update = _update(node)
            if update is not None:
                x = update.inputs[1]
                if _allocated(x, update.graph) and _next_update(x, g, use) is update:
                    chosen[update.id] = update
            info = loop_info(node)
            outputs = info.outputs if info is not None else None
            if info is None or outputs is None or \
                    len(info.body.parameters) != info.lead + len(info.init):
                continue
            for j, init in enumerate(info.init):
                p = info.body.parameters[info.lead + j]
                if info.cond is not None and use.get(info.cond.parameters[j].id):
                    continue
                fresh_init = (isinstance(init, Constant) and init.value is ZERO) or (
                    _allocated(init, node.graph) and len(use.get(init.id, [])) == 1)
                chain = _chain(p, info.body, use) if fresh_init else None
                if chain and outputs[j] is chain[-1]:
                    for step in chain:
                        chosen[step.id] = step
    for update in chosen.values():
        prim = prim_of(update)
        assert prim is not None  # (`_chain` takes updates, which are primitives)
        name = IN_PLACE[prim.name]
        set_input(update, 0, Constant(P[name]))
    if chosen:
        forget_all(graphs)
    return len(chosen)


# (`b + a` is `a + b` bit for bit, and `b * a` is `a * b`: IEEE addition and
# multiplication commute)
_COMMUTES = {"add": True, "mul": True, "sub": False, "truediv": False}


def arithmetic_in_place(root: Graph, facts: LoopFacts | None = None) -> int:
    """`a OP b` (`+ - * /`) as `a OP= b` where `a` is a temporary nothing else reads: a
    new array (`Primitive.fresh`, or one updated so already) made in the same graph,
    whose one use is this operation, and whose kind, a float64 or int64 array of known
    shape, is the result's (so the operation neither broadcasts `a` to a larger shape nor
    changes its dtype, and NumPy runs the same loop on the same values: bit for bit the
    same result, without allocating one). Also `b + a` and `b * a` into `a`. Where a
    step's arithmetic costs about 0.5 µs an operation on 1,000 elements, the allocation
    it saves is a tenth to a fifth of that: `(x * x * x - a) / (3.0 * x * x)` is four
    operations in place of six. Only in loops (their bodies and conditions, and what they
    nest), where a step repeats: straight-line code keeps the expressions a user
    reads. For the Python backend only (the statements `a *= b`;
    Numba fuses the expressions itself); run last, on the final program. Returns how many
    operations changed."""
    from ..primitives.ad_ops import IN_PLACE_OF
    from .kinds import ArrayKind, kind

    graphs = reachable_graphs(root)
    use = uses(graphs)
    repeated = _in_loops(graphs)
    owned: set[int] = set()  # the operations made in place (their results are owned)
    chosen: list[tuple[Apply, Node, Node]] = []
    for g in graphs:
        if g.id not in repeated:
            continue
        for node in graph_nodes(g):
            prim = prim_of(node)
            if prim is None or prim.name not in IN_PLACE_OF or len(node.inputs) != 3:
                continue
            a, b = node.inputs[1:]
            pairs = [(a, b), (b, a)] if _COMMUTES[prim.name] else [(a, b)]
            for acc, other in pairs:
                # (made here: a value made in place in an enclosing graph and read by
                # a loop's body would be changed again on every trip)
                if not isinstance(acc, Apply) or acc is other or acc.graph is not g or \
                        _only_use(acc, use) is not node or \
                        not (acc.id in owned or _allocated(acc, g)):
                    continue
                facts = facts or LoopFacts(root)
                k = kind(node, facts)
                if type(k) is not ArrayKind or k.dtype not in ("f8", "i8") or \
                        kind(acc, facts) != k:
                    continue
                owned.add(node.id)
                chosen.append((node, acc, other))
                break
    for node, acc, other in reversed(chosen):
        if node.name and not node.name.startswith("#") and not acc.name:
            acc.name = node.name  # (`step = x * x; step *= x`: the user's name, shown)
        prim = prim_of(node)
        assert prim is not None
        set_input(node, 0, Constant(P[IN_PLACE_OF[prim.name]]))
        set_input(node, 1, acc)
        set_input(node, 2, other)
    if chosen:
        forget_all(graphs)
    return len(chosen)


def _in_loops(graphs: list[Graph]) -> set[int]:
    """The ids of the graphs that are a loop's body or condition, or nested in one."""
    loops: set[int] = set()
    for g in graphs:
        for node in graph_nodes(g):
            info = loop_info(node)
            if info is not None:
                loops.update(x.id for x in (info.body, info.cond) if x is not None)
    inside: set[int] = set()
    for g in graphs:
        h: Graph | None = g
        while h is not None and h.id not in loops:
            h = h.parent
        if h is not None:
            inside.add(g.id)
    return inside
