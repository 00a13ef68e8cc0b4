"""Stacks of loop counters as counts: a forward `for` loop over a range whose stack saves
only its index (what is left of the saved values of a loop whose backward pass reads
nothing but where it was, once `loops.prune_saved` has dropped the rest: the inner
Horner loop `p = p * x + c[j]` of a polynomial fit, whose backward loop adds into
`d_c[j]`) counts its iterations instead, and its backward loop counts down, making each
index again from the count (`start + (k - 1) * step`). The forward loop then allocates
nothing per iteration (a pair of the linked stack on the Python backend, a list item on
the native one), and the backward loop pops nothing.

The rewrite is made only where it cannot be observed: the stack starts empty (`None`),
the forward body only pushes the index onto it, its final value goes, once, to a
backward `while` loop that tests it only for emptiness (`stack is not None`) and reads
it only as `stack[0]` (the index) and `stack[1]` (its next state), through the stack of
an enclosing loop (`LoopFacts.pushed_by`: the inner loop of a loop nest, whose stack
`loops.lower_stacks` cannot make a list). The range's start and step are
constant ints, so the backward loop makes the same ints again: k iterations pushed
indices start, start + step, ..., start + (k - 1) * step, popped from the last."""

from __future__ import annotations

from ..ir.edit import set_input, set_kind, set_output
from ..ir.nodes import Apply, Constant, Graph, Node
from ..primitives import PRIMITIVES
from .loop_facts import LoopFacts, LoopInfo, constant_index, is_call_of
from .loops import _only_reader, facts_uses

P = PRIMITIVES

Uses = dict[int, list[tuple[Node | None, Graph]]]


def count_saved_counters(root: Graph, facts: LoopFacts, replace: dict[int, Node]) -> int:
    """Rewrite each stack of a forward loop's index as its count (see the module's
    docstring). Returns how many stacks changed."""
    from .kinds import INT

    use = facts_uses(facts)
    changed = 0
    for back in facts.loops:
        found = facts.pushed_by.get(back.node.id)
        if found is None or back.node.id in replace:
            continue
        fwd, kf, push = found
        if fwd.node.id in replace or not _index_pushed(fwd, kf, push, use) or \
                not _stack_read_once(fwd, kf, back, facts, use):
            continue
        reads = _pops(back, use)
        if reads is None:
            continue
        heads, rest = reads
        start, step = (constant_index_of(fwd.node.inputs[i]) for i in (1, 3))
        assert start is not None and step is not None
        # The forward side: a count from 0, one more each iteration.
        body = fwd.body
        p = body.parameters[fwd.lead + kf]
        count = body.apply(P["add"], p, Constant(1), name="count")
        set_kind(count, INT)
        out = body.output
        assert isinstance(out, Apply)
        set_input(out, 1 + kf, count)
        set_input(fwd.node, fwd.first_init + kf, Constant(0))
        # The backward side: counts down while the count is positive; each index made
        # again from it.
        assert back.cond is not None
        c = back.cond.parameters[0]
        test = back.cond.apply(P["gt"], c, Constant(0))
        set_output(back.cond, test)
        q = back.body.parameters[0]
        k = back.body.apply(P["sub"], q, Constant(1), name="k")
        set_kind(k, INT)
        index: Node = k
        if step != 1:
            index = back.body.apply(P["mul"], k, Constant(step))
            set_kind(index, INT)
        if start != 0:
            index = back.body.apply(P["add"], index, Constant(start))
            set_kind(index, INT)
        for head in heads:
            replace[head.id] = index
        replace[rest.id] = k
        changed += 1
    return changed


def constant_index_of(node: Node) -> int | None:
    return node.value if isinstance(node, Constant) and type(node.value) is int else None


def _index_pushed(fwd: LoopInfo, kf: int, push: Apply, use: Uses) -> bool:
    """Whether `fwd` is a forward `for` loop over a range of constant start and step
    whose state `kf` starts as None and is only the stack its index is pushed onto."""
    if fwd.lead != 1 or fwd.body.loop_role != "forward" or fwd.outputs is None:
        return False
    start, step = (constant_index_of(fwd.node.inputs[i]) for i in (1, 3))
    if start is None or not step:
        return False
    init = fwd.init[kf]
    p = fwd.body.parameters[fwd.lead + kf]
    return isinstance(init, Constant) and init.value is None and \
        push.inputs[1] is fwd.body.parameters[0] and push.inputs[2] is p and \
        fwd.outputs[kf] is push and [u for u, _ in use.get(p.id, [])] == [push] and \
        [u for u, _ in use.get(push.id, [])] == [fwd.body.output]


def _stack_read_once(fwd: LoopInfo, kf: int, back: LoopInfo, facts: LoopFacts,
                     use: Uses) -> bool:
    """Whether the forward loop's stack (its result `kf`) reaches nothing but the
    backward loop `back`, through the stack of an enclosing loop: read once from the
    loop, into the item the enclosing loop saves, which only `back`'s start reads back."""
    results = []
    for u, _ in use.get(fwd.node.id, []):
        if not (is_call_of(u, "tuple_getitem") or is_call_of(u, "getitem")) or \
                not isinstance(u.inputs[2], Constant):
            return False
        if constant_index(u) == kf:
            results.append(u)
    start = back.init[0]
    if len(results) != 1 or len(use.get(start.id, [])) != 1:
        return False
    if results[0] is start:
        # (A stack its own graph pops becomes a list at the end, `loops.lower_stacks`:
        # appended to and read back with no pair made. Left so.)
        return False
    if facts.result_of(start) is not None or not isinstance(start, Apply) or \
            start.inputs[1].id not in facts.popped or not _only_reader(start, facts, use):
        return False
    pushed_tuple = facts.popped[start.inputs[1].id]
    return isinstance(pushed_tuple, Apply) and \
        pushed_tuple.inputs[1 + constant_index(start)] is results[0]


def _pops(back: LoopInfo, use: Uses) -> tuple[list[Apply], Apply] | None:
    """The reads `stack[0]` and the read `stack[1]` of the backward loop `back`'s stack
    (its state 0), where the loop reads it only so, passes `stack[1]` on as the stack,
    and stops when the stack is empty (`stack is not None`, its condition's only test
    of it)."""
    outputs = back.outputs
    if back.cond is None or back.lead or outputs is None:
        return None
    c = back.cond.parameters[0]
    test = back.cond.output
    if [u for u, _ in use.get(c.id, [])] != [test] or not is_call_of(test, "is_not") or \
            test.inputs[1] is not c or \
            not (isinstance(test.inputs[2], Constant) and test.inputs[2].value is None):
        return None
    q = back.body.parameters[0]
    heads: list[Apply] = []
    rests: list[Apply] = []
    for u, _ in use.get(q.id, []):
        if not (is_call_of(u, "tuple_getitem") or is_call_of(u, "getitem")) or \
                u.inputs[1] is not q or not isinstance(u.inputs[2], Constant) or \
                u.inputs[2].value not in (0, 1) or type(u.inputs[2].value) is not int:
            return None
        assert isinstance(u, Apply)
        (heads if u.inputs[2].value == 0 else rests).append(u)
    if len(rests) != 1 or outputs[0] is not rests[0] or \
            [u for u, _ in use.get(rests[0].id, [])] != [back.body.output]:
        return None
    return heads, rests[0]
