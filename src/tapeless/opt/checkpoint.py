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

from typing import Any, cast

from ..ir.clone import clone_graph
from ..ir.edit import forget_all, set_effects, set_inputs, set_kind, set_output, set_signature
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    Parameter,
    graph_nodes,
    is_constant_graph,
    reachable_graphs,
)
from ..primitives import PRIMITIVES
from .kinds import FLOAT, INT, NUMERIC, SCALAR, Kind, TupleKind, dtype_of, int_value, kind, shape_of
from .lift import _is_number, _never_zero, _replace_everywhere
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


def checkpoints_recursions(mode: str, budget: int) -> bool:
    """Whether `checkpoint_recursion` checkpoints recursions under these settings."""
    return not (mode == "never" or (mode == "auto" and budget >= RECURSION_AUTO_BUDGET))


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
    as it is. Where the backward loop's iterations commute (`stream_recursion`), the
    calls also name J's value function V and the stream function R: past a limit the
    value is V's, and a tape made under a limit of 0 is streamed by R. Returns how many
    were checkpointed. (For the Python backend: the native one keeps the records in
    typed lists.)"""
    if not checkpoints_recursions(mode, budget):
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
        # (made before J's calls are rewritten: they copy J as it is)
        made = stream_recursion(j, b, calls, within, root)
        extra: list[Node] = [Constant(made[0]), Constant(made[1])] if made else []
        for c in j_calls:
            g = c.graph
            args = g.apply(P["make_tuple"], *c.inputs[1:])
            if g.id in within:
                set_inputs(c, [Constant(P["recursion_call"]), Constant(j), args, *extra])
            else:
                set_inputs(c, [Constant(P["recursion_enter"]), Constant(j), Constant(budget),
                               args, *extra])
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


# --- a checkpointed recursion's backward pass run forward, one child at a time ----------


class _Forward:
    """Where a lifted J's loop pushes its saved tuples (`_forward_shape`): J's output
    `make_tuple(value, record)`, the record's display and its stack item `at`, the `for`
    loop making that stack in one branch of J's `if` (state `s`, starting None), its body,
    the push `make_tuple(saved, stack)` and J's calls of itself (all in the body)."""

    def __init__(self, value: Node, record: Apply, at: int, loop: LoopInfo, s: int,
                 push: Apply, calls: list[Apply]) -> None:
        self.value, self.record, self.at, self.loop, self.s = value, record, at, loop, s
        self.push, self.calls = push, calls


def _use_map(graphs: list[Graph]) -> dict[int, list[Node | Graph]]:
    """Each node's users: the nodes reading it, and the graphs it is the output of."""
    found: dict[int, list[Node | Graph]] = {}
    for g in graphs:
        for n in graph_nodes(g):
            for x in n.inputs:
                found.setdefault(x.id, []).append(n)
        if g.output is not None:
            found.setdefault(g.output.id, []).append(g)
    return found


def _branches(o: Node | None) -> tuple[Node, Graph, Graph, Apply] | None:
    """`switch(c, t, f)()`, an `if` whose branches take no parameters: (c, t, f, call)."""
    if type(o) is not Apply or len(o.inputs) != 1 or \
            not is_call_of(sw := o.inputs[0], "switch") or len(sw.inputs) != 4:
        return None
    t, f = sw.inputs[2:]
    if not is_constant_graph(t) or not is_constant_graph(f) or t.value.parameters or \
            f.value.parameters:
        return None
    return sw.inputs[1], t.value, f.value, o


def _read(x: Node, of: Node | None = None) -> int | None:
    """i where `x` is `tuple_getitem(of, i)` (of any tuple where `of` is None)."""
    if is_call_of(x, "tuple_getitem") and (of is None or x.inputs[1] is of):
        k = constant_index(x)
        return k if type(k) is int else None
    return None


def _forward_shape(j: Graph, self_ids: set[int]) -> tuple[_Forward, int, bool] | None:
    """J's loop that pushes its saved tuples, where only the record's stack item holds the
    stack: (the shape, the record's item J's `if` tests, whether the loop is in the
    `if`'s false branch); the calls of `self_ids` (J) are J's recursive calls."""
    out = j.output
    if not is_call_of(out, "make_tuple") or len(out.inputs) != 3 or \
            not is_call_of(record := out.inputs[2], "make_tuple"):
        return None
    items = record.inputs[1:]
    found = None
    for at, x in enumerate(items):
        k = _read(x)
        if k is not None and (sides := _branches(cast(Apply, x).inputs[1])) is not None and \
                sides[3].graph is j:
            found = (at, k, sides)
    if found is None:
        return None
    at, k, (cond, on_true, on_false, _) = found
    test = next((i for i, x in enumerate(items) if x is cond), None)
    # (every other item of the record must be there inside the loop: J's parameters,
    # constants, the `if`'s test)
    if test is None or not all(i == at or type(x) is Constant or
                               (type(x) is Parameter and x.graph is j) or x is cond
                               for i, x in enumerate(items)):
        return None
    graphs = reachable_graphs(j)
    use = _use_map(graphs)
    for side, false in ((on_true, False), (on_false, True)):
        o = side.output
        if not is_call_of(o, "make_tuple") or len(o.inputs) <= k + 1:
            continue
        s = _read(stack := o.inputs[k + 1])
        info = loop_info(cast(Apply, stack).inputs[1]) if s is not None else None
        if info is None or info.cond is not None or info.node.graph is not side or \
                s is None or s >= len(info.init):
            continue
        outputs = info.outputs
        init = info.init[s]
        if outputs is None or type(init) is not Constant or init.value is not None:
            return None
        push = outputs[s]
        param = info.body.parameters[info.lead + s]
        if not is_call_of(push, "make_tuple") or len(push.inputs) != 3 or \
                push.inputs[2] is not param or use.get(param.id) != [push] or \
                use.get(push.id) != [info.body.output] or \
                use.get(stack.id) != [o] or use.get(items[at].id) != [record] or \
                use.get(record.id) != [out]:
            return None
        saved = push.inputs[1]
        calls = [n for g in graphs for n in graph_nodes(g) if is_constant_graph(n.inputs[0])
                 and n.inputs[0].value.id in self_ids]
        for c in calls:
            if c.graph is not info.body:
                return None
            for u in use.get(c.id, []):
                i = _read(u, c) if isinstance(u, Apply) else None
                if i == 1 and use.get(u.id) == [saved] and use.get(saved.id) == [push]:
                    continue
                if i != 0:
                    return None
        return _Forward(out.inputs[1], record, at, info, s, push, calls), test, false
    return None


def _in_place(b: Graph, x: Node, acc: Node, use: dict[int, list[Node | Graph]]
              ) -> list[Apply] | None:
    """Where `x` is `acc` after in-place adds (`add_into_known`) and, first, maybe one
    call of `b` given `acc` (then nothing else reads `acc`): [that call], or [] where
    there is none; else None."""
    while x is not acc and is_call_of(x, "add_into_known"):
        x = x.inputs[1]
        if x is not acc and len(use.get(x.id, [])) != 1:
            return None
    if x is acc:
        return []
    if type(x) is Apply and is_constant_graph(x.inputs[0]) and x.inputs[0].value is b and \
            len(x.inputs) == 4 and x.inputs[3] is acc and use.get(acc.id) == [x]:
        return [x]
    return None


def _backward_shape(b: Graph, calls: dict[int, list[Apply]], within: set[int]
                    ) -> tuple[int, int, bool, list[int]] | None:
    """Whether B(record, d, acc) runs its loop over the record's stack with every other
    state passed on unchanged (or through a saved branch record's function, B's `d`,
    never ZERO: `_passed_on`) but the accumulator, which B's call given it and in-place
    adds change (its iterations then commute, up to the order of the sums), and adds in
    place into `acc` on every path (every call from outside gives it new zeros): (the
    record's item tested, the stack's item, whether the loop is in the false branch, the
    saved items whose functions must give back the state they are given, `_passed_on`)."""
    if len(b.parameters) != 3 or b.vararg:
        return None
    record, _, acc = b.parameters
    sides = _branches(b.output)
    if sides is None or (test := _read(sides[0], record)) is None:
        return None
    use = _use_map(reachable_graphs(b))
    found: tuple[int, int, bool, list[Apply]] | None = None
    for side, false in ((sides[1], False), (sides[2], True)):
        a = _read(o := side.output) if side.output is not None else None
        info = loop_info(cast(Apply, o).inputs[1]) if a is not None else None
        if info is None or info.cond is None or info.node.graph is not side:
            if side.output is None or _in_place(b, side.output, acc, use) != []:
                return None
            continue
        if found is not None:
            return None
        init, outputs = info.init, info.outputs
        t = next((i for i, x in enumerate(init) if _read(x, record) is not None), None)
        if t is None or outputs is None or a is None or init[a] is not acc or \
                info.body.effects or not is_call_of(test_node := info.cond.output, "is_not") \
                or test_node.inputs[1] is not info.cond.parameters[t] or \
                type(test_node.inputs[2]) is not Constant or test_node.inputs[2].value \
                is not None:
            return None
        params = info.body.parameters
        passed: list[int] = []
        if _read(outputs[t], params[t]) != 1 or \
                any(not isinstance(u, Apply) or _read(u, params[t]) not in (0, 1)
                    for u in use.get(params[t].id, [])):
            return None
        inner: list[Apply] | None = None
        for m, x in enumerate(outputs):
            if m == a:
                inner = _in_place(b, x, params[a], use)
                if not inner:
                    return None
            elif m != t and x is not params[m]:
                i = _passed_on(x, params[m], params[t])
                # (given on as it is where the functions that can be there give their
                # `d` back, `_gives_back`, and `d` is never ZERO: B's own)
                if i is None or init[m] is not b.parameters[1] or not all(
                        _never_zero(c.inputs[2], {b.parameters[1].id})
                        for c in calls.get(b.id, [])):
                    return None
                passed.append(i)
        stack = _read(init[t], record)
        assert stack is not None and inner
        found = (test, stack, false, inner)
    if found is None:
        return None
    # every call of B: that one in its loop, or from outside given new zeros
    for c in calls.get(b.id, []):
        if c is not found[3][0] and (c.graph is None or c.graph.id in within or
                                  len(c.inputs) != 4 or not is_call_of(c.inputs[3],
                                                                       "np.zeros")):
            return None
    return found[0], found[1], found[2], passed


def _passed_on(x: Node, d: Node, stack: Node) -> int | None:
    """i where `x` is item 0 of what the function a saved tuple's item i holds gives for
    (that item, `d`): `r = stack[0][i]; r[0](r, d)[0]` (a conditional expression's branch
    record, the sensitivity of the value it passes on)."""
    if _read(x) != 0:
        return None
    c = cast(Apply, x).inputs[1]
    if type(c) is not Apply or len(c.inputs) != 3 or c.inputs[2] is not d:
        return None
    r = c.inputs[1]
    i = _read(r)
    if i is None or _read(c.inputs[0], r) != 0 or \
            _read(saved := cast(Apply, r).inputs[1], stack) != 0:
        return None
    return i if type(saved) is Apply else None


def _gives_back(saved: Node, i: int, root: Graph, facts: list[Any]) -> bool:
    """Whether item i of J's saved tuple `saved` is item q of an `if`'s result whose
    branches each give a record `(B_branch, ...)` whose function gives back, as its item 0,
    its `d` as it is: `sens_of(d, _)` (d never ZERO) or `unbroadcast(d, x)` with `x` a
    number saved in the record (a number's sensitivity is a number: itself)."""
    if not is_call_of(saved, "make_tuple") or not 0 <= i < len(saved.inputs) - 1:
        return False
    x = saved.inputs[1 + i]
    q = _read(x)
    sides = _branches(cast(Apply, x).inputs[1]) if q is not None else None
    if sides is None or q is None:
        return False
    for h in sides[1:3]:
        o = h.output
        if not is_call_of(o, "make_tuple") or not 0 <= q < len(o.inputs) - 1 or \
                not is_call_of(rec := o.inputs[1 + q], "make_tuple") or \
                len(rec.inputs) < 2 or not is_constant_graph(rec.inputs[1]):
            return False
        g = rec.inputs[1].value
        out = g.output
        if len(g.parameters) != 2 or g.vararg or not is_call_of(out, "make_tuple") or \
                len(out.inputs) < 2:
            return False
        y, (r, dn) = out.inputs[1], g.parameters
        if is_call_of(y, "sens_of") and y.inputs[1] is dn:
            continue
        k = _read(y.inputs[2], r) if is_call_of(y, "unbroadcast") and \
            y.inputs[1] is dn else None
        if k is None or not 0 < k < len(rec.inputs) - 1 or \
                not _is_number(rec.inputs[1 + k], root, facts):
            return False
    return True


def stream_recursion(j: Graph, b: Graph, calls: dict[int, list[Apply]], within: set[int],
                     root: Graph) -> tuple[Graph, Graph] | None:
    """For a lifted recursion (J, B) whose backward loop's iterations commute
    (`_backward_shape`; the branch records whose functions pass a state on checked on
    J's side, `_gives_back`) over the stack J's loop pushes (`_forward_shape`), two
    functions: `V(args)`, J's value alone (no record: its loop pushes nothing, its calls
    of itself are V's), and `R(args, d, acc)`, `B(J(args)[1], d, acc)` with B's loop run
    forward inside J's: each iteration, once J's loop has made its saved tuple, gives B
    the record of that one iteration (the level's record with a stack of one item), so
    the level holds one child's saved values at a time, and its children's calls are
    `recursion_call(J, args, V, R)` (under a region limit of 0: V's value and a tape
    that R makes again). `runtime.recursion_back` runs R for a tape made under a limit
    of 0: memory the recursion's path (the hand-written gradient's schedule). The sums
    into `acc` are made in another order (the children first to last). None where the
    shapes do not match."""
    if j.vararg or b.parameters[0].name != "record":
        return None
    back = _backward_shape(b, calls, within)
    fwd = _forward_shape(j, {j.id})
    if back is None or fwd is None or (fwd[1], fwd[0].at, fwd[2]) != back[:3]:
        return None
    facts: list[Any] = []
    if not all(_gives_back(fwd[0].push.inputs[1], i, root, facts) for i in back[3]):
        return None
    v = clone_graph(j, None, {})
    r = clone_graph(j, None, {})
    v.name, r.name = f"{j.name}_value", f"{b.name}_stream"
    for g in (v, r):
        set_signature(g, None)
    fv = _forward_shape(v, {j.id, v.id})
    fr = _forward_shape(r, {j.id, r.id})
    if fv is None or fr is None:
        return None  # (a copy's shape is the original's)
    # V: the value alone
    fs, loop = fv[0], fv[0].loop
    replaced: dict[int, Node] = {}
    for c in fs.calls:
        set_inputs(c, [Constant(v, c.inputs[0].loc), *c.inputs[1:]])
        set_kind(c, None)
        for n in graph_nodes(c.graph) if c.graph is not None else []:
            if _read(n, c) == 0:
                replaced[n.id] = c
    out = loop.body.output
    assert isinstance(out, Apply)
    set_inputs(out, [*out.inputs[:1 + fs.s], fs.push.inputs[2], *out.inputs[2 + fs.s:]])
    set_output(v, fs.value)

    _replace_everywhere(reachable_graphs(v), replaced)
    # R: B's loop run forward inside J's
    fs, loop = fr[0], fr[0].loop
    d = r.add_parameter("dout", b.parameters[1].loc)
    acc = r.add_parameter("acc", b.parameters[2].loc)
    for c in fs.calls:
        g = c.graph
        assert g is not None
        set_inputs(c, [Constant(P["recursion_call"]), Constant(j), g.apply(
            P["make_tuple"], *c.inputs[1:]), Constant(v), Constant(r)])
    body = loop.body
    one = body.apply(P["make_tuple"], fs.push.inputs[1], Constant(None))
    items = [one if i == fs.at else x for i, x in enumerate(fs.record.inputs[1:])]
    step = body.apply(Constant(b), body.apply(P["make_tuple"], *items), d, acc)
    set_effects(body, [*body.effects, step])
    out = body.output
    assert isinstance(out, Apply)
    set_inputs(out, [*out.inputs[:1 + fs.s], fs.push.inputs[2], *out.inputs[2 + fs.s:]])
    set_output(r, r.apply(Constant(b), fs.record, d, acc))
    forget_all(reachable_graphs(v) + reachable_graphs(r))
    return v, r
