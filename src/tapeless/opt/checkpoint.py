"""Checkpointed loops: a gradient's forward `for` or `while` loop saves, each iteration,
what its backward loop needs. Where that may exceed a memory budget, the pair becomes
`checkpoint_for` (or `checkpoint_while_loop`) / `checkpoint_while` (see
`tapeless.runtime`): the forward `for` loop keeps its starting state only, the forward
`while` loop (its trip count unknown until it stops) snapshots of its state at a stride
that doubles when they pass a limit, and the backward loop makes the saved values again,
a segment at a time, by bisection (O(log n) snapshots, a log factor more forward work).
Whether a loop needs it is decided at run time, from the first iteration's saved values
(a `while` loop saves as it is until its saved values reach the budget); here, which
loops may: those whose saved values' kinds and trip count may exceed the budget (see
`_fits`).

Run once, on the final program, before the stacks are lowered to lists."""

from __future__ import annotations

from ..ir.edit import forget_all, set_inputs
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    graph_nodes,
    is_constant_graph,
    reachable_graphs,
)
from ..primitives import PRIMITIVES
from .kinds import FLOAT, INT, NUMERIC, SCALAR, Kind, TupleKind, dtype_of, int_value, kind, shape_of
from .loop_facts import (
    LoopFacts,
    LoopInfo,
    constant_index,
    is_call_of,
    loop_info,
)
from .loops import stack_pairs, uses

P = PRIMITIVES
Uses = dict[int, list[tuple[Node | None, Graph]]]

MODES = ("auto", "always", "never")
_ITEMSIZE = {"f8": 8, "i8": 8, "b1": 1}


def saved_bytes_bound(k: Kind | None) -> int | None:
    """An upper bound of the bytes a value of kind `k` holds (as `runtime.saved_bytes`
    counts them), or None where the kind does not tell. ("numeric", a number or an
    array, counts as a number: loop state gets it where a number changes type, a float
    becoming a NumPy scalar.)"""
    if k in (FLOAT, INT, SCALAR, NUMERIC):
        return 32
    shape = shape_of(k)
    if shape is not None:
        size = 1
        for n in shape:
            if n < 0:
                return None
            size *= n
        return _ITEMSIZE.get(dtype_of(k) or "", 16) * size + 112
    if type(k) is TupleKind:
        parts = [saved_bytes_bound(i) for i in k.items]
        if any(p is None for p in parts):
            return None
        return 56 + 8 * len(parts) + sum(p for p in parts if p is not None)
    return None


def checkpoint_loops(root: Graph, mode: str, budget: int, facts: LoopFacts | None = None
                     ) -> int:
    """Make the forward/backward loop pairs that may save more than `budget` bytes
    checkpointed (`mode` "auto"; every pair with "always", none with "never"). Returns
    how many. `facts`: facts about the program as it is (the optimizer's last round's),
    else made here."""
    if mode == "never":
        return 0
    graphs = reachable_graphs(root)
    use = uses(graphs)
    if facts is None:
        facts = LoopFacts(root, graphs)
    done = 0
    for g in graphs:
        for node in graph_nodes(g):
            fwd = loop_info(node)
            if fwd is None or _has_effects(fwd.body) or \
                    (fwd.cond is not None and _has_effects(fwd.cond)):
                continue
            pair = next(((s, push, back, t) for s, _, push, back, t in stack_pairs(fwd, use)
                         if not _has_effects(back.body) and _pops_until_empty(back, t, use)),
                        None)
            if pair is None:
                continue
            s, push, back, t = pair
            if mode == "auto" and _fits(fwd, push, facts, budget):
                continue
            init = g.apply(P["make_tuple"], *fwd.init)
            if fwd.cond is not None:
                set_inputs(fwd.node, [
                    Constant(P["checkpoint_while_loop"]), Constant(fwd.cond),
                    Constant(fwd.body), Constant(s), Constant(budget), init])
            else:
                start, stop, step = fwd.node.inputs[1:4]
                set_inputs(fwd.node, [
                    Constant(P["checkpoint_for"]), start, stop, step, Constant(fwd.body),
                    Constant(s), Constant(budget), init])
            assert back.cond is not None
            set_inputs(back.node, [
                Constant(P["checkpoint_while"]), Constant(back.cond), Constant(back.body),
                Constant(t), g.apply(P["make_tuple"], *back.init)])
            done += 1
    if done:
        forget_all(graphs)
    return done


def _has_effects(g: Graph, depth: int = 0) -> bool:
    """Whether running `g` again could be seen (it prints, draws random numbers, raises,
    changes something): its effects, looking into the loops and known calls among them."""
    for e in g.effects:
        inner = loop_info(e)
        if inner is not None:
            if depth > 8 or _has_effects(inner.body, depth + 1) or \
                    (inner.cond is not None and _has_effects(inner.cond, depth + 1)):
                return True
        elif isinstance(e, Apply) and is_constant_graph(e.inputs[0]):
            if depth > 8 or _has_effects(e.inputs[0].value, depth + 1):
                return True
        else:
            return True
    return False


def _pops_until_empty(back: LoopInfo, t: int, use: Uses) -> bool:
    """Whether the backward loop stops exactly when its state `t` (the stack) is None, and
    nothing reads the stack it leaves."""
    assert back.cond is not None
    c = back.cond.parameters[t]
    test = back.cond.output
    if use.get(c.id) != [(test, back.cond)] or not is_call_of(test, "is_not") or \
            not (isinstance(test.inputs[2], Constant) and test.inputs[2].value is None):
        return False
    return not any(u is None or not is_call_of(u, "tuple_getitem") or constant_index(u) == t
                   for u, _ in use.get(back.node.id, []))


# A loop whose trip count is not known when compiling is left as it is where an
# iteration saves at most budget / SMALL_STEPS bytes (a scalar loop: a million iterations
# under the default budget).
SMALL_STEPS = 1 << 20


def _fits(fwd: LoopInfo, push: Apply, facts: LoopFacts, budget: int) -> bool:
    """Whether the values the loop saves are not known to exceed `budget` bytes: the
    bytes of an iteration's saved values are known (a list's, an object's are not: such
    loops are left as they are), and the known trip count times them fits, or, the trip
    count known only at run time (always, for a `while` loop), an iteration is so small
    that a very long loop would be needed not to."""
    per_step = saved_bytes_bound(kind(push.inputs[1], facts))
    if per_step is None:
        return True
    if fwd.cond is not None:  # a `while` loop: its trip count is known only once it stops
        return per_step * SMALL_STEPS <= budget
    bounds = [int_value(b, facts) for b in fwd.node.inputs[1:4]]
    if any(b is None for b in bounds) or bounds[2] == 0:
        return per_step * SMALL_STEPS <= budget
    start, stop, step = (b for b in bounds if b is not None)
    return len(range(start, stop, step)) * per_step <= budget


# "auto" checkpoints recursions only under a budget below this (the default budget is 1
# GiB): the counting costs two Python calls per call (about 8% of the determinant's
# gradient), where a recursion under the default budget would need some millions of calls
# to pass it. "always" checkpoints them under any budget.
RECURSION_AUTO_BUDGET = 1 << 30


def checkpoint_recursion(root: Graph, mode: str, budget: int) -> int:
    """Make the lifted recursions (`lift.LIFTED`: `J_f(args) -> (value, record)`,
    `B_f(record, d)`, or `B_f(record, d, acc)` adding into an accumulator,
    `lift.accumulate_down`) checkpointed: `J_f`'s calls from outside its recursion become
    `recursion_enter(J_f, budget, args)`, those within it `recursion_call(J_f, args)`,
    and `B_f`'s calls `recursion_back(B_f, record, d[, acc])` (see `tapeless.runtime`: a
    recording region keeps the records of `budget` bytes of calls; past them a call
    leaves its arguments, and the backward pass makes its record again). None with
    `mode` "never", nor with "auto" under a budget of `RECURSION_AUTO_BUDGET` or more.
    Where `J_f` or `B_f` is used otherwise than called, or running `J_f`
    again could be seen (it prints, raises, draws random numbers), the recursion is left
    as it is. Returns how many were checkpointed. (For the Python backend: the native
    one keeps the records in typed lists.)"""
    if mode == "never" or (mode == "auto" and budget >= RECURSION_AUTO_BUDGET):
        return 0
    from .lift import LIFTED

    graphs = reachable_graphs(root)
    present = {g.id for g in graphs}
    calls: dict[int, list[Apply]] = {}
    used_otherwise: set[int] = set()
    for g in graphs:
        if is_constant_graph(g.output):
            used_otherwise.add(g.output.value.id)
        for node in graph_nodes(g):
            for i, x in enumerate(node.inputs):
                if is_constant_graph(x):
                    gid = x.value.id
                    if i == 0:
                        calls.setdefault(gid, []).append(node)
                    else:
                        used_otherwise.add(gid)
    done = 0
    for b, j in list(LIFTED.items()):
        if b.id not in present or j.id not in present or \
                {b.id, j.id} & used_otherwise:
            continue
        inside = reachable_graphs(j)
        if not all(_only_calls(e) for h in inside for e in h.effects):
            continue
        within = {h.id for h in inside}
        j_calls = calls.get(j.id, [])
        b_calls = calls.get(b.id, [])
        # (both still recursive: a backward pass unwound into a loop, `opt.unwind`, reads
        # the records inside each record itself, where a tape may stand)
        b_within = {h.id for h in reachable_graphs(b)}
        if not any(c.graph.id in within for c in j_calls) or \
                not any(c.graph.id in b_within for c in b_calls) or \
                any(len(c.inputs) not in (3, 4) for c in b_calls):
            continue
        for c in j_calls:
            g = c.graph
            args = g.apply(P["make_tuple"], *c.inputs[1:])
            if g.id in within:
                set_inputs(c, [Constant(P["recursion_call"]), Constant(j), args])
            else:
                set_inputs(c, [Constant(P["recursion_enter"]), Constant(j), Constant(budget),
                               args])
        for c in b_calls:
            set_inputs(c, [Constant(P["recursion_back"]), Constant(b), *c.inputs[1:]])
        done += 1
    if done:
        forget_all(graphs)
    return done


def _only_calls(effect: Node) -> bool:
    """Whether an effect of a graph is a loop, or a call of a graph (of one of two, by an
    `if`): of graphs whose own effects are checked with it."""
    if loop_info(effect) is not None:
        return True
    if not isinstance(effect, Apply):
        return False
    callee = effect.inputs[0]
    if is_constant_graph(callee):
        return True
    return isinstance(callee, Apply) and is_call_of(callee, "switch") and \
        all(is_constant_graph(x) for x in callee.inputs[2:4])
