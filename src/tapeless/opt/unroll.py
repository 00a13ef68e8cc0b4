"""Loops over a few items of different kinds, or over layers, unrolled: `for W, b in
layers:` over a tuple or a list of layers runs each trip on code specialized to that
trip's items.

A `for` loop over a sequence is `for_range(0, len(seq), 1, body, *state)` whose body reads
`seq[i]` (the front end). Kinds give a loop value one kind for every trip (loop state's is
checked by induction), and kinds of different shapes do not join: the items of a tuple of
layers, and so the state the body computes from them, get no kind, and the body keeps the
generic code of every operation (`np.dot`'s branches for any number of axes, the
derivative's run-time tests of shapes), which `vmap` of a gradient cannot batch as
derivative code. Such a loop is unrolled where it is cheap: its trip count is a known
constant (the sequence's length is part of its kind) of at most `UNROLL_MAX_TRIPS`, the
copies together hold at most `UNROLL_MAX_NODES` nodes, and its body reads, at the loop's
index, an item of a container whose items' kinds are not all the same (what keys the
rewrite: the trips would be specialized differently), an item of a container of
containers (a tuple or a list of `(W, b)` layers: unrolled, the gradient is
straight-line code, without the stack of saved values nor the list's sensitivity
gathered at run time), or an item of a tuple whose items share a kind where the loop
state that starts with a kind has none in the body (the induction failed: unrolled,
each trip starts with its state's kind). A loop of one trip
or none that reads no such items stays a loop: its body is already specialized as it
would be unrolled, and the loop rewrites (rows gathered in place, nested sums) key on
loops. Each trip becomes a copy of the body with the index a constant, so `seq[k]` is
item k with its own kind; the copies run in order, each on the state the previous one
left, and their effects stay in program order. Loops whose values already get one kind
(a `range` loop, a loop over a tuple or a list of numbers or arrays of one kind whose
state keeps its kind) are left as they are."""

from __future__ import annotations

from ..ir.clone import graphs_inside, inline_body, node_count
from ..ir.nodes import Apply, Constant, Graph, Node, graph_nodes, is_constant_graph, prim_of
from .kinds import Kind, as_tuple, is_container, items_of, kind, list_items_of
from .rules import Context, P, step

step("unroll_loops")

# A loop is unrolled when it makes at most this many trips and its copies hold at most
# this many nodes together (trips x the body's nodes, nested graphs included).
UNROLL_MAX_TRIPS = 16
UNROLL_MAX_NODES = 2000

_ITEM_READS = (P["getitem"], P["tuple_getitem"])


def _trip_indices(node: Apply) -> list[int] | None:
    """The indices a `for_range` node runs through where its bounds are constant ints."""
    bounds = [b.value for b in node.inputs[1:4] if isinstance(b, Constant)]
    if len(bounds) != 3 or not all(type(b) is int for b in bounds):
        return None
    start, stop, stride = bounds
    if stride == 0:
        return None  # (range() raises: left to the loop)
    return list(range(start, stop, stride))


def _differing(items: tuple[Kind | None, ...] | None) -> bool:
    """Whether a container's items' kinds are not known to be one kind (an item of no
    known kind beside one of a known kind counts as differing)."""
    return items is not None and len(items) > 1 and \
        any(k is None or k != items[0] for k in items[1:]) and \
        any(k is not None for k in items)


def _items(k: Kind | None) -> tuple[Kind | None, ...] | None:
    """The items' kinds of a tuple, a NamedTuple or a list argument, where known."""
    return items_of(as_tuple(k)) or list_items_of(k)


def _reads_items(ctx: Context, body: Graph) -> tuple[bool, bool, bool]:
    """Whether the loop body reads, at the loop's index, an item of a tuple (or a list
    argument of known items' kinds), whether it reads one of a container whose
    items' kinds differ (in the body or in a graph nested in it: a branch, an inner
    loop's body), and whether it reads one of a container of containers (layers)."""
    index = body.parameters[0]
    reads = structures = False
    for g in [body] + graphs_inside(body):
        for n in graph_nodes(g):
            if prim_of(n) in _ITEM_READS and len(n.inputs) == 3 and n.inputs[2] is index:
                items = _items(kind(n.inputs[1], ctx.facts))
                if _differing(items):
                    return True, True, structures
                reads = reads or items is not None
                structures = structures or (
                    items is not None and all(is_container(k) for k in items))
    return reads, False, structures


def _state_kinds_lost(ctx: Context, node: Apply, body: Graph) -> bool:
    """Whether a state slot that starts with a known kind has none in the loop body (the
    induction failed: the body gives it another kind, or one the inference cannot
    tell through the body's generic code, as the derivative of `np.dot` on a value of
    unknown shape)."""
    for init, p in zip(node.inputs[5:], body.parameters[1:], strict=True):
        if kind(init, ctx.facts) is not None and kind(p, ctx.facts) is None:
            return True
    return False


def _stack_depth(init: Node) -> int | None:
    """The number of values on a stack built where it is read: `None` or `(value, rest)`
    displays down to `None`, at most `UNROLL_MAX_TRIPS` deep."""
    depth = 0
    while not (type(init) is Constant and init.value is None):
        if depth == UNROLL_MAX_TRIPS or prim_of(init) is not P["make_tuple"] or \
                not isinstance(init, Apply) or len(init.inputs) != 3:
            return None
        init = init.inputs[2]
        depth += 1
    return depth


def _pops_trips(node: Apply) -> int | None:
    """How many trips a `while_loop` node makes where it pops a stack of known depth: its
    condition is `stack is not None` on a state slot the body replaces with
    `stack[1]` (the backward loop of a loop that was unrolled, `ad/reverse.py`, reading
    what the unrolled trips pushed), and that slot starts as such a stack."""
    cond: Graph = node.inputs[1].value  # type: ignore[attr-defined]
    body: Graph = node.inputs[2].value  # type: ignore[attr-defined]
    test, out = cond.output, body.output
    if not isinstance(test, Apply) or not isinstance(out, Apply) or cond.effects or \
            graph_nodes(cond) != [test] or prim_of(test) is not P["is_not"] or \
            len(test.inputs) != 3 or \
            not (type(test.inputs[2]) is Constant and test.inputs[2].value is None) or \
            test.inputs[1] not in cond.parameters or prim_of(out) is not P["make_tuple"]:
        return None
    j = cond.parameters.index(test.inputs[1])
    if len(out.inputs) != len(node.inputs) - 2 or len(body.parameters) <= j:
        return None
    rest = out.inputs[1 + j]
    if not (prim_of(rest) in _ITEM_READS and isinstance(rest, Apply) and
            rest.inputs[1] is body.parameters[j] and type(rest.inputs[2]) is Constant and
            type(rest.inputs[2].value) is int and rest.inputs[2].value == 1):
        return None
    return _stack_depth(node.inputs[3 + j])


def unroll_loop(ctx: Context, node: Apply) -> tuple[Node, list[Node]] | None:
    """`node`, a loop, unrolled (see the module's documentation): the node standing for
    its result (the tuple of its final state) and the effects of the copies in order, as
    an inlined call gives them; None where it is left as a loop. A `for_range` loop over
    items of different kinds is unrolled, and so is the `while_loop` that pops a stack
    of known depth (what the unrolled loop's derivative pushed): each of its trips reads
    values saved by one unrolled trip."""
    p = prim_of(node)
    trips: list[int] | None
    if p is P["for_range"] and is_constant_graph(node.inputs[4]):
        body: Graph = node.inputs[4].value
        trips = _trip_indices(node)
        lead, first = 1, 5
        if trips is None or len(trips) > UNROLL_MAX_TRIPS or \
                len(body.parameters) != len(node.inputs) - 4:
            return None
        reads, differing, structures = _reads_items(ctx, body)
        if not (differing or structures or
                (reads and _state_kinds_lost(ctx, node, body))):
            return None
    elif p is P["while_loop"] and is_constant_graph(node.inputs[1]) and \
            is_constant_graph(node.inputs[2]):
        body = node.inputs[2].value
        depth = _pops_trips(node)
        if depth is None:
            return None
        trips, lead, first = list(range(depth)), 0, 3
    else:
        return None
    if body.vararg or len(body.parameters) != len(node.inputs) - first + lead or \
            len(trips) * node_count(body) > UNROLL_MAX_NODES:
        return None
    g = node.graph
    assert g is not None
    state: list[Node] = list(node.inputs[first:])
    effects: list[Node] = []
    for i in trips:
        out, made = inline_body(body, g, [Constant(i)] * lead + state, loc=node.loc)
        effects += made
        state = [g.apply(P["tuple_getitem"], out, j, loc=node.loc)
                 for j in range(len(state))]
    return g.apply(P["make_tuple"], *state, loc=node.loc), effects
