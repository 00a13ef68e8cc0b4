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
from .loop_facts import loop_info
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
    """Made in `where` by an operation that allocates its result (`Primitive.fresh`)."""
    return isinstance(node, Apply) and node.graph is where and \
        isinstance(node.inputs[0], Constant) and bool(getattr(node.inputs[0].value, "fresh",
                                                              False))


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
