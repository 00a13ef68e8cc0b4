"""Lambda lifting of a recursive function's backpropagator (defunctionalization).

The derivative of a recursive function `f` is `J_f(args) -> (value, B)` where `B` is a
closure over values of `J_f` (its free variables): each recursive call makes one, saves
it (in its own saved tuple, on a loop's stack) and its own backpropagator calls it. Where
every value that can hold such a `B` reaches only calls (never an unknown operation, the
program's result, or a call site that can also see another function), `J_f` returns
`(value, record)` instead, the record the tuple of `B`'s free variables, and `B` becomes a
function of the module `B(record, d)` that reads them from it; each call `b(d)` becomes
`B(b, d)`. Making and calling a closure with defaults costs about three times passing a
tuple to a module function in CPython, and Numba compiles no closure that escapes.

Which values can hold `B` is found by a points-to analysis over the whole program: each
node may hold some of the abstract values (the tuples made by each `make_tuple` node or
loop, with what each of their items may hold; the graphs; OTHER, a value this analysis
does not follow), flowing along tuple items, calls of known graphs, the branches of a
`switch`, and a loop's state, body and result (a stack of saved tuples is one tuple
value whose second item holds itself). A value passed to any other operation escapes,
with what it holds.

Where it lifted something, the same analysis, run again, shrinks what the records keep
(they all live until the backward pass): `_values_given` drops `sens_of` on a
sensitivity every call gives as a value, `convert_closures` turns the other closures
that are only called into records, and `prune_tuples` drops the tuple items no read
asks for."""

from __future__ import annotations

import weakref
from typing import Any

from ..frontend.scopes import ParamSpec
from ..ir.clone import is_recursive
from ..ir.edit import (
    forget_all,
    set_effects,
    set_inputs,
    set_kind,
    set_output,
    set_parameters,
)
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
from .branches import graph_refs
from .kinds import array, kind, shape_of
from .patterns import follow_items, item_path, tuple_items, value_sources

MAKE_TUPLE = PRIMITIVES["make_tuple"]
TUPLE_GETITEM = PRIMITIVES["tuple_getitem"]
SWITCH = PRIMITIVES["switch"]
WHILE_LOOP = PRIMITIVES["while_loop"]
FOR_RANGE = PRIMITIVES["for_range"]
SENS_OF = PRIMITIVES["sens_of"]



# Each lifted B_f, to its J_f (`checkpoint.checkpoint_recursion` reads the pairs).
LIFTED: weakref.WeakKeyDictionary[Graph, Graph] = weakref.WeakKeyDictionary()

OTHER = "other"  # a value from an operation this analysis does not follow

# An abstract value: OTHER, a graph, ("tuple", node id) for the tuples a make_tuple node
# or a loop makes, ("const", node id, path) for a constant tuple (and its items).
Value = Any


class _Flow:
    """The points-to sets: what each node may hold (`held`), what each item of each
    tuple value may hold (`fields`), the values that escape."""

    def __init__(self) -> None:
        self.held: dict[int, set[Value]] = {}
        self.fields: dict[tuple[Value, int], set[Value]] = {}
        self.escaped: set[Value] = set()
        self.changed = False
        # Per graph: the (condition node, value) pairs under which it runs (it is a
        # branch of a `switch` on that node, or nested in one).
        self.conds: dict[int, list[tuple[Node, bool]]] = {}
        self.displays: dict[int, Apply] = {}  # the make_tuple nodes, by id

    def read(self, node: Node, where: Graph) -> set[Value]:
        """What `node` may hold where `where` reads it: an item of the result of an `if`
        on a condition `where` runs under is an item of that branch's result (the
        saved tuple of the base case read by the backward pass's base case)."""
        conds = self.conds.get(where.id)
        if not conds:
            return self.of(node)
        path: list[int] = []
        x = node
        while type(x) is Apply and prim_of(x) is TUPLE_GETITEM and \
                type(k := x.inputs[2]) is Constant and type(k.value) is int:
            path.append(k.value)
            x = x.inputs[1]
        if type(x) is Apply and len(x.inputs) == 1 and type(sw := x.inputs[0]) is Apply and \
                prim_of(sw) is SWITCH and len(sw.inputs) == 4:
            for c, value in conds:
                branch = sw.inputs[2 if value else 3]
                if c is sw.inputs[1] and is_constant_graph(branch) and \
                        not branch.value.parameters and branch.value.output is not None:
                    held = self.of(branch.value.output)
                    for index in reversed(path):
                        held = self.item(held, index)
                    return held
        if path:
            found = self._record_item(x, path, conds)
            if found is not None:
                return found
        return self.of(node)

    def _record_item(self, record: Node, path: list[int],
                     conds: list[tuple[Node, bool]]) -> set[Value] | None:
        """What `record`'s item `at` (`path[-1]`) holds at the rest of `path` (read
        innermost last), read under an `if`
        on another item of `record` (`record[t]`): where every tuple `record` may hold
        is a display whose item `at` is a value-`if` on the condition at its item `t`
        (a lifted backpropagator's record: what J's `if` saved, next to the condition it
        tested), the items of the branch taken; None where that does not hold."""
        at = path[-1]
        for c, value in conds:
            if not (type(c) is Apply and prim_of(c) is TUPLE_GETITEM and
                    c.inputs[1] is record and type(t := c.inputs[2]) is Constant and
                    type(t.value) is int):
                continue
            held: set[Value] = set()
            for v in self.of(record):
                d = self.displays.get(v[1]) if isinstance(v, tuple) and v[0] == "tuple" \
                    else None
                if d is None or not (at < len(d.inputs) - 1 and t.value < len(d.inputs) - 1):
                    return None
                x = d.inputs[1 + at]
                inner: list[int] = []  # (J's `if` gives a pair: its value, what it saved)
                while type(x) is Apply and prim_of(x) is TUPLE_GETITEM and \
                        type(i := x.inputs[2]) is Constant and type(i.value) is int:
                    inner.append(i.value)
                    x = x.inputs[1]
                if not (type(x) is Apply and len(x.inputs) == 1 and
                        type(sw := x.inputs[0]) is Apply and prim_of(sw) is SWITCH and
                        len(sw.inputs) == 4 and sw.inputs[1] is d.inputs[1 + t.value]):
                    return None
                branch = sw.inputs[2 if value else 3]
                if not (is_constant_graph(branch) and not branch.value.parameters and
                        branch.value.output is not None):
                    return None
                found = self.of(branch.value.output)
                for index in [*reversed(inner), *reversed(path[:-1])]:
                    found = self.item(found, index)
                held |= found
            return held
        return None

    def of(self, node: Node) -> set[Value]:
        found = self.held.get(node.id)
        if found is None:
            found = self.held[node.id] = set()
            if type(node) is Constant:
                found.add(self._constant(node.id, (), node.value))
        return found

    def _constant(self, nid: int, path: tuple[int, ...], value: Any) -> Value | None:
        if isinstance(value, Graph):
            return value
        if isinstance(value, tuple):
            key = ("const", nid, path)
            for i, x in enumerate(value):
                item = self._constant(nid, (*path, i), x)
                if item is not None:
                    self.fields.setdefault((key, i), set()).add(item)
            return key
        if callable(value) or isinstance(value, (list, dict, set)):
            return OTHER
        # (a number, a string, None, ZERO or an array holds no function: calling it, or
        # reading an item of it as a tuple, fails in either program)
        return None

    def add(self, target: set[Value], values: set[Value] | Value) -> None:
        new = values if isinstance(values, set) else {values}
        new = {v for v in new if v is not None}
        if not new <= target:
            target |= new
            self.changed = True

    def field(self, value: Value, i: int) -> set[Value]:
        return self.fields.setdefault((value, i), set())

    def item(self, values: set[Value], i: int) -> set[Value]:
        out: set[Value] = set()
        for v in values:
            if v is OTHER:
                out.add(OTHER)
            elif isinstance(v, tuple):
                out |= self.field(v, i)
        return out

    def escape(self, values: set[Value]) -> None:
        """`values` escape, and what they hold (see `close`)."""
        for v in values:
            if v not in self.escaped:
                self.escaped.add(v)
                self.changed = True

    def close(self) -> None:
        """What escaped values hold escapes: the items of a tuple; the result of a graph
        (called from anywhere: its parameters may then be anything)."""
        by_tuple: dict[Value, list[set[Value]]] = {}
        for (w, _), held in self.fields.items():
            by_tuple.setdefault(w, []).append(held)
        todo = list(self.escaped)
        while todo:
            v = todo.pop()
            inner: list[set[Value]] = []
            if isinstance(v, Graph):
                for p in v.parameters:
                    self.add(self.of(p), OTHER)
                if v.output is not None:
                    inner.append(self.of(v.output))
            elif isinstance(v, tuple):
                inner = by_tuple.get(v, [])
            for held in inner:
                for x in held:
                    if x not in self.escaped:
                        self.escaped.add(x)
                        self.changed = True
                        todo.append(x)


def lift_backprops(root: Graph, python: bool = True) -> int:
    """Defunctionalize the backpropagators of recursive functions where the analysis
    above proves that every value holding one only reaches calls (see the module's
    doc). Returns how many were lifted. For the Python backend (`python`), the records
    are then pruned and the closures they keep converted; the native backend keeps the
    records as lifted, in the form its typed lists take (`backend/native_records.py`)."""
    graphs = reachable_graphs(root)
    candidates = _candidates(root, graphs)
    if not candidates:
        return 0
    flow = _Flow()
    sites = _analyse(root, graphs, flow)
    # (All decided before any is lifted: lifting one rewrites the program the analysis
    # describes, e.g. a call site whose callee becomes a read of a record.)
    chosen = [(j, b, calls) for j, b in candidates
              if (calls := _only_called(flow, b, sites)) is not None]
    for j, b, calls in chosen:
        _lift(j, b, calls, graphs)
    done = len(chosen)
    if done:
        forget_all(reachable_graphs(root))
    if done:
        for _, b, calls in chosen:
            _values_given(b, calls, reachable_graphs(root))
        if python and convert_closures(root):
            forget_all(reachable_graphs(root))
        if python:
            lean_records(root, [(j, b) for j, b, _ in chosen])
        if prune_tuples(root):
            forget_all(reachable_graphs(root))
    return done


def convert_closures(root: Graph) -> int:
    """Closure conversion of the other functions a lifted program makes as values and
    only calls (the backpropagator of an `if` inside a recursion's loop, one of two
    closures saved per iteration): where every call that may call such a closure calls
    only such closures of its arity, each becomes a function of the module taking a
    record first, and the value made where it was is the record `(function, *its free
    variables)`; each call `f(d)` becomes `f[0](f, d)`. A tuple costs a fraction of a
    closure's function object and its defaults (memory kept per iteration until the
    backward pass, and time). Returns how many were converted."""
    graphs = reachable_graphs(root)
    refs = graph_refs(graphs)
    made: dict[int, tuple[Apply | None, Graph]] = {}  # closure id -> (display, graph)
    for g in graphs:
        for n in graph_nodes(g):
            if prim_of(n) is MAKE_TUPLE:
                for i in n.inputs[1:]:
                    if is_constant_graph(i):
                        made[i.value.id] = (n, g)
        if is_constant_graph(g.output):
            made[g.output.value.id] = (None, g)
    candidates: dict[int, Graph] = {}
    for b in graphs:
        parent = b.parent
        if parent is None or b.vararg or not b.parameters or refs.get(b.id) != 1 or \
                b.id not in made or b.custom is not None or b.recomputed or \
                not (fvs := free_variables(b)) or \
                not all(fv.graph is not None and is_inside(made[b.id][1], fv.graph)
                        for fv in fvs) or \
                not is_inside(made[b.id][1], parent):
            continue
        candidates[b.id] = b
    # (None inside another, nor made inside another: converting one changes what the
    # graphs around its body and where it is made read)
    for b in list(candidates.values()):
        if any(o is not b and (is_inside(b, o) or is_inside(made[b.id][1], o))
               for o in candidates.values()):
            del candidates[b.id]
    if not candidates:
        return 0
    free = {i: list(free_variables(b)) for i, b in candidates.items()}
    flow = _Flow()
    sites = _analyse(root, graphs, flow)
    calls: dict[int, list[Apply]] = {i: [] for i in candidates}
    changed = True
    while changed:
        changed = False
        for s in sites:
            held = flow.read(s.inputs[0], s.graph)
            if not any(isinstance(v, Graph) and v.id in candidates for v in held):
                continue
            if any(not (isinstance(v, Graph) and v.id in candidates and
                        len(v.parameters) == len(s.inputs) - 1 and v not in flow.escaped)
                   for v in held):
                for v in held:
                    if isinstance(v, Graph) and candidates.pop(v.id, None) is not None:
                        changed = True
    for b in list(candidates.values()):
        if b in flow.escaped:
            del candidates[b.id]
    if not candidates:
        return 0
    for s in sites:
        held = flow.read(s.inputs[0], s.graph)
        if any(isinstance(v, Graph) and v.id in candidates for v in held):
            first = next(v for v in held if isinstance(v, Graph))
            calls[first.id].append(s)
    for b in candidates.values():
        fvs = free[b.id]
        _read_from_record(b, fvs, graphs, 1)  # (item 0: the function)
        display, g = made[b.id]
        value = g.apply(MAKE_TUPLE, Constant(b), *fvs)
        if display is None:
            set_output(g, value)
        else:
            set_inputs(display, [value if is_constant_graph(i) and i.value is b else i
                                 for i in display.inputs])
        b.parent = None
    for sitelist in calls.values():
        for s in sitelist:
            f = s.inputs[0]
            set_inputs(s, [s.graph.apply(TUPLE_GETITEM, f, 0), f, *s.inputs[1:]])
    return len(candidates)


def _candidates(root: Graph, graphs: list[Graph]) -> list[tuple[Graph, Graph]]:
    """(J, B): a recursive graph J whose output is `make_tuple(value, B)`, B a closure
    J makes (nested in J, its free variables J's own nodes), named nowhere else."""
    uses = graph_refs(graphs)
    found = []
    for j in graphs:
        out = j.output
        if j is root or type(out) is not Apply or out.graph is not j or \
                prim_of(out) is not MAKE_TUPLE or len(out.inputs) != 3:
            continue
        b_node = out.inputs[2]
        if not is_constant_graph(b_node):
            continue
        b = b_node.value
        if b.parent is not j or b.vararg or uses.get(b.id) != 1 or not b.parameters or \
                not all(fv.graph is j for fv in free_variables(b)) or not is_recursive(j):
            continue
        found.append((j, b))
    return found


def _analyse(root: Graph, graphs: list[Graph], flow: _Flow) -> list[Apply]:
    """Compute the points-to sets to a fixed point (see the module's doc); the calls of
    values (not of a known graph nor a primitive) are returned."""
    sites = [n for g in graphs for n in graph_nodes(g)
             if prim_of(n) is None and not is_constant_graph(n.inputs[0])]
    for p in root.parameters:
        flow.add(flow.of(p), OTHER)
    _conditions(graphs, flow)
    while True:
        flow.changed = False
        if root.output is not None:
            flow.escape(flow.of(root.output))
        for g in graphs:
            for n in graph_nodes(g):
                _node(flow, n)
        flow.close()
        if not flow.changed:
            return sites


def _conditions(graphs: list[Graph], flow: _Flow) -> None:
    """The conditions each graph runs under (`_Flow.conds`): the branches of a `switch`
    named nowhere else, and the graphs nested in them."""
    uses: dict[int, int] = {}
    branch_of: dict[int, tuple[Node, bool]] = {}
    for g in graphs:
        for n in graph_nodes(g):
            for i in n.inputs:
                if is_constant_graph(i):
                    uses[i.value.id] = uses.get(i.value.id, 0) + 1
            if prim_of(n) is SWITCH and len(n.inputs) == 4:
                for at, value in ((2, True), (3, False)):
                    if is_constant_graph(branch := n.inputs[at]):
                        branch_of[branch.value.id] = (n.inputs[1], value)
        if is_constant_graph(g.output):
            uses[g.output.value.id] = uses.get(g.output.value.id, 0) + 1
    for g in graphs:
        conds = []
        h: Graph | None = g
        while h is not None:
            if h.id in branch_of and uses.get(h.id) == 1:
                conds.append(branch_of[h.id])
            h = h.parent
        if conds:
            flow.conds[g.id] = conds


def _call(flow: _Flow, g: Graph, args: list[Node], result: Apply) -> None:
    if g.vararg or len(args) != len(g.parameters) or g.output is None:
        flow.escape(set().union(*(flow.read(a, result.graph) for a in args)) | {g})
        flow.add(flow.of(result), OTHER)
        return
    for p, a in zip(g.parameters, args, strict=True):
        flow.add(flow.of(p), flow.read(a, result.graph))
    flow.add(flow.of(result), flow.of(g.output))


def _node(flow: _Flow, n: Apply) -> None:
    callee = n.inputs[0]
    args = n.inputs[1:]
    p = prim_of(n)
    if p is None:
        for f in list(flow.read(callee, n.graph)):
            if isinstance(f, Graph):
                _call(flow, f, args, n)
            elif f is OTHER:
                flow.escape(set().union(*(flow.read(a, n.graph) for a in args)))
                flow.add(flow.of(n), OTHER)
        return
    if p is MAKE_TUPLE:
        flow.displays[n.id] = n
        key = ("tuple", n.id)
        flow.add(flow.of(n), key)
        for i, a in enumerate(args):
            flow.add(flow.field(key, i), flow.read(a, n.graph))
        return
    if p is TUPLE_GETITEM and len(args) == 2 and type(args[1]) is Constant and \
            type(args[1].value) is int:
        flow.add(flow.of(n), flow.item(flow.read(args[0], n.graph), args[1].value))
        return
    if p is SWITCH and len(args) == 3:
        flow.add(flow.of(n), flow.read(args[1], n.graph))
        flow.add(flow.of(n), flow.read(args[2], n.graph))
        return
    if p.equality and p.ignores_values:
        return  # (`x is None`: a record is no more None than a closure is)
    if p is WHILE_LOOP and len(args) >= 2 and _loop(flow, n, args[1], args[2:], 0, args[0]):
        return
    if p is FOR_RANGE and len(args) >= 4 and _loop(flow, n, args[3], args[4:], 1, None):
        return
    flow.escape(set().union(*(flow.read(a, n.graph) for a in args)))
    flow.add(flow.of(n), OTHER)


def _loop(flow: _Flow, n: Apply, body: Node, state: list[Node], skip: int,
          cond: Node | None) -> bool:
    """Link a loop's state to its body (and condition) and result: False where they are
    not graphs taking the state."""
    graphs = [body] + ([cond] if cond is not None else [])
    if not all(is_constant_graph(g) and not g.value.vararg and g.value.output is not None
               and len(g.value.parameters) == len(state) + (skip if g is body else 0)
               for g in graphs):
        return False
    key = ("tuple", n.id)
    flow.add(flow.of(n), key)
    out = flow.of(body.value.output)  # type: ignore[attr-defined]
    for i, s in enumerate(state):
        held = flow.field(key, i)
        flow.add(held, flow.read(s, n.graph))
        flow.add(held, flow.item(out, i))
        for g in graphs:
            params = g.value.parameters  # type: ignore[attr-defined]
            flow.add(flow.of(params[i + (skip if g is body else 0)]), held)
    return True


def _only_called(flow: _Flow, b: Graph, sites: list[Apply]) -> list[Apply] | None:
    """The calls of `b`'s values, where `b` does not escape and every call that may
    call it calls nothing else; else None."""
    if b in flow.escaped:
        return None
    calls = []
    for s in sites:
        held = flow.read(s.inputs[0], s.graph)
        if b in held:
            if held != {b} or len(s.inputs) - 1 != len(b.parameters):
                return None
            calls.append(s)
    return calls


def _lift(j: Graph, b: Graph, calls: list[Apply], graphs: list[Graph]) -> None:
    fvs = list(free_variables(b))
    _read_from_record(b, fvs, graphs, 0)
    b.parent = j.parent
    out = j.output
    assert isinstance(out, Apply)
    set_output(j, j.apply(MAKE_TUPLE, out.inputs[1], j.apply(MAKE_TUPLE, *fvs)))
    for call in calls:
        set_inputs(call, [Constant(b), *call.inputs])
    LIFTED[b] = j


def _read_from_record(b: Graph, fvs: list[Node], graphs: list[Graph], first: int) -> None:
    """Give `b` a first parameter, its record, and make every use of its free variables
    `fvs` inside it (its nested graphs included) a read of the record, the k-th at item
    `first + k`."""
    record = Parameter(b, b.loc, "record")
    set_parameters(b, [record, *b.parameters],
                   [ParamSpec("record", "pos"), *b.signature] if b.signature is not None
                   else None)
    reads = {fv.id: b.apply(TUPLE_GETITEM, record, first + k) for k, fv in enumerate(fvs)}
    for h in graphs:
        if not is_inside(h, b):
            continue
        for n in list(graph_nodes(h)):
            if any(i.id in reads for i in n.inputs) and n not in reads.values():
                set_inputs(n, [reads.get(i.id, i) for i in n.inputs])
        if h.output is not None and h.output.id in reads:
            set_output(h, reads[h.output.id])


def _values_given(b: Graph, calls: list[Apply], graphs: list[Graph]) -> None:
    """The sensitivities a lifted `B(record, d...)` is called with, where every call
    gives a value (never ZERO): a number constant (the seed), what an operation that
    never gives ZERO makes (a product of the sensitivity with a saved value), or, by
    induction over the recursion, B's own parameter passed on; and, inside B, the state
    of a loop that starts as such a value and that each iteration keeps one (the
    sensitivity of a sum the loop added to, passed on unchanged). There `sens_of(d,
    like)` is `d` (its test for ZERO is made once per call of the recursion, and the
    value `like` need not be saved)."""
    proven: set[int] = set()
    for m, param in enumerate(b.parameters[1:], start=1):
        if all(_never_zero(c.inputs[1 + m], proven | {param.id}) for c in calls):
            proven.add(param.id)
    if not proven:
        return
    inside = [h for h in graphs if is_inside(h, b)]
    changed = True
    while changed:
        changed = False
        for h in inside:
            for n in graph_nodes(h):
                loop = _loop_parts(n)
                if loop is None:
                    continue
                params, state, out = loop
                for j, init in enumerate(state):
                    ids = {ps[j].id for ps in params}
                    if not ids <= proven and _never_zero(init, proven) and \
                            _never_zero(out.inputs[1 + j], proven | ids):
                        proven |= ids
                        changed = True
    replaced: dict[int, Node] = {}
    for h in inside:
        for n in graph_nodes(h):
            if prim_of(n) is SENS_OF and n.inputs[1].id in proven:
                replaced[n.id] = n.inputs[1]
    if replaced:
        _replace_everywhere(graphs, replaced)


def _loop_parts(n: Apply) -> tuple[list[list[Parameter]], list[Node], Apply] | None:
    """For a loop whose body gives its next state as a display: the state parameters
    of its body (and condition), the initial state, the body's display."""
    p = prim_of(n)
    if p is WHILE_LOOP and len(n.inputs) >= 3:
        graphs, state, skip = [n.inputs[2], n.inputs[1]], n.inputs[3:], [0, 0]
    elif p is FOR_RANGE and len(n.inputs) >= 5:
        graphs, state, skip = [n.inputs[4]], n.inputs[5:], [1]
    else:
        return None
    if not all(is_constant_graph(g) and not g.value.vararg and
               len(g.value.parameters) == len(state) + k
               for g, k in zip(graphs, skip, strict=True)):
        return None
    out = graphs[0].value.output  # type: ignore[attr-defined]
    if not (type(out) is Apply and prim_of(out) is MAKE_TUPLE and
            len(out.inputs) == len(state) + 1):
        return None
    params = [g.value.parameters[k:] for g, k in zip(graphs, skip, strict=True)]  # type: ignore[attr-defined]
    return params, list(state), out


def _never_zero(x: Node, proven: set[int]) -> bool:
    if type(x) is Constant:
        return type(x.value) in (float, int)
    if x.id in proven:
        return True
    p = prim_of(x)
    return p is not None and p.never_zero


def _replace_everywhere(graphs: list[Graph], replaced: dict[int, Node]) -> None:
    """Each use of a node in `replaced` (by id) uses what it maps to instead (followed
    to its end)."""
    def final(x: Node) -> Node:
        while x.id in replaced:
            x = replaced[x.id]
        return x

    for g in graphs:
        for n in graph_nodes(g):
            if any(i.id in replaced for i in n.inputs):
                set_inputs(n, [final(i) for i in n.inputs])
        if g.output is not None and g.output.id in replaced:
            set_output(g, final(g.output))
        if any(e.id in replaced for e in g.effects):
            set_effects(g, [final(e) for e in g.effects])


def prune_tuples(root: Graph) -> int:
    """Keep only the items of tuples that something reads, once the backpropagators are
    lifted (their records, the values each call of J saves, and what each lifted `B`
    gives back are now tuples read only by item): an item that no read asks for is
    dropped (a saved sensitivity placeholder ZERO, a value only a rule's other case
    would read); an item that every tuple of its kind holds as the same constant is
    read as that constant (where every display of its class has it); a tuple left with
    one item, which every display of its class has, is that item. Returns how many
    tuple displays changed.

    Which tuples may reach which reads is the points-to analysis of `lift_backprops`:
    the displays whose values may meet at one read form one class, renumbered alike.
    A class is left as it is where one of its values escapes (to an operation, a call
    of an unknown function, the program's result), is a loop body's result (the loop
    reads its items), is read with an index that is not a constant, may meet a value
    this analysis does not follow (OTHER, a loop's or a non-empty constant tuple) at a
    read, or is tested for identity (`is None`: a tuple made smaller might be the
    shared empty tuple, an unwrapped item might be None)."""
    graphs = reachable_graphs(root)
    classes = _Classes(root, graphs)
    members, reads, displays, find = classes.members, classes.reads, classes.displays, \
        classes.find
    plans: dict[Value, tuple[list[int], dict[int, Constant], bool]] = {}
    for cls, vs in members.items():
        if not classes.plain(vs):
            continue
        made = [displays[v[1]] for v in vs if v not in classes.empty]
        if not made:
            continue
        shortest = 0 if len(made) < len(vs) else min(len(m.inputs) - 1 for m in made)
        longest = max(len(m.inputs) - 1 for m in made)
        asked = {at for _, keys, at in reads if keys and find(next(iter(keys))) == cls}
        if any(at < 0 for at in asked):
            continue
        constants: dict[int, Constant] = {}
        for at in asked:
            first = made[0].inputs[1 + at] if at < shortest else None
            if type(first) is Constant and all(_same_constant(first, m.inputs[1 + at])
                                               for m in made):
                constants[at] = first
        keep = sorted(asked - set(constants))
        unwrap = len(keep) == 1 and keep[0] < shortest
        if keep == list(range(longest)) and not unwrap:
            continue
        plans[cls] = (keep, constants, unwrap)
    if not plans:
        return 0
    replaced: dict[int, Node] = {}
    changed = 0
    for n, keys, at in reads:
        if not keys or (plan := plans.get(find(next(iter(keys))))) is None:
            continue
        keep, constants, unwrap = plan
        if at in constants:
            replaced[n.id] = Constant(constants[at].value)
        elif unwrap:
            replaced[n.id] = n.inputs[1]
        else:
            set_inputs(n, [n.inputs[0], n.inputs[1], Constant(keep.index(at))])
    for cls, (keep, _, unwrap) in plans.items():
        for v in members[cls]:
            if v in classes.empty:
                continue
            m = displays[v[1]]
            changed += 1
            if unwrap:
                replaced[m.id] = m.inputs[1 + keep[0]]
            else:
                # (a display too short for an item read keeps the items it has: the
                # read then fails as it did, its new index being past them too)
                set_inputs(m, [m.inputs[0], *(m.inputs[1 + k] for k in keep
                                              if k < len(m.inputs) - 1)])
                set_kind(m, None)
    _replace_everywhere(graphs, replaced)
    return changed


def _empty_items(nid: int, path: tuple[int, ...], value: tuple, out: set[Value]) -> None:
    """The abstract values of the empty tuples in the constant tuple `value`."""
    if not value:
        out.add(("const", nid, path))
    for k, x in enumerate(value):
        if type(x) is tuple:
            _empty_items(nid, (*path, k), x, out)


def _same_constant(a: Node, b: Node) -> bool:
    """Whether the constant nodes `a` and `b` hold the same number, string, None or
    ZERO (the same object, or equal ints, strings or bools, or floats that print alike:
    never 0.0 and -0.0). Not a graph: one nested in J reads J's values, and a read of
    the record is where they are."""
    if type(b) is not Constant:
        return False
    x, y = a.value, b.value  # type: ignore[attr-defined]
    if type(x) not in _PLAIN and x is not ZERO:
        return False
    return x is y or (type(x) is type(y) and repr(x) == repr(y))


_PLAIN = (int, str, bool, float, type(None))


class _Classes:
    """The tuple displays whose values may meet at one read, as classes (see
    `prune_tuples`): `members` by class, the `reads` (node, the values it may read, the
    index), the `displays` by id; `frozen` values (escaping, or read with an unknown
    index or beside a value this analysis does not follow), `tested` ones (`is None`),
    the `empty` constant tuples."""

    def __init__(self, root: Graph, graphs: list[Graph]) -> None:
        flow = _Flow()
        _analyse(root, graphs, flow)
        self.displays: dict[int, Apply] = {}
        self.reads: list[tuple[Apply, set[Value], int]] = []
        self.frozen: set[Value] = set(flow.escaped)
        self.tested: set[Value] = set()
        self.parent: dict[Value, Value] = {}
        self.empty: set[Value] = set()  # the constants () (a base case that saves nothing)
        for g in graphs:
            if type(g.output) is Constant and type(g.output.value) is tuple:
                _empty_items(g.output.id, (), g.output.value, self.empty)
            for n in graph_nodes(g):
                self._node(flow, g, n)
        self.members: dict[Value, list[Value]] = {}
        for v in {v for _, keys, _ in self.reads for v in keys} | \
                {("tuple", i) for i in self.displays}:
            self.members.setdefault(self.find(v), []).append(v)

    def _node(self, flow: _Flow, g: Graph, n: Apply) -> None:
        for i in n.inputs:
            if type(i) is Constant and type(i.value) is tuple:
                _empty_items(i.id, (), i.value, self.empty)
        p = prim_of(n)
        if p is MAKE_TUPLE:
            self.displays[n.id] = n
        elif p is WHILE_LOOP or p is FOR_RANGE:
            # (the loop reads its body's result item by item: the next state)
            for b in n.inputs[1:]:
                if is_constant_graph(b) and b.value.output is not None:
                    self.frozen |= {v for v in flow.of(b.value.output) if isinstance(v, tuple)}
        elif p is TUPLE_GETITEM and len(n.inputs) == 3 and \
                type(k := n.inputs[2]) is Constant and type(k.value) is int:
            held = flow.read(n.inputs[1], g)
            keys = {v for v in held if isinstance(v, tuple)}
            if OTHER in held:
                self.frozen |= keys
            self.reads.append((n, keys, k.value))
            if keys:
                first = self.find(next(iter(keys)))
                for v in keys:
                    if (r := self.find(v)) != first:
                        self.parent[r] = first
        elif p is not None and p.equality and p.ignores_values:
            for a in n.inputs[1:]:
                self.tested |= {v for v in flow.read(a, g) if isinstance(v, tuple)}

    def find(self, v: Value) -> Value:
        while self.parent.get(v, v) != v:
            v = self.parent[v]
        return v

    def plain(self, vs: list[Value]) -> bool:
        """Whether the class of `vs` may be renumbered: none of its values frozen or
        tested, each a display or an empty constant."""
        return not any(v in self.frozen or v in self.tested or (
            v not in self.empty and (v[0] != "tuple" or v[1] not in self.displays))
            for v in vs)


# A recipe: how the backward pass makes a saved item again (`lean_records`):
# ("const", node) a constant; ("param", parameter) a parameter of J, read from the
# call's record; ("item", j) the value of item j of the same tuple; ("saved", i) what
# the tuple now holds at the item's own place (the part of a tuple display that
# varies); ("op", node, [recipes]) the node's operation on its inputs' recipes.
Recipe = tuple[Any, ...]
GETITEM = PRIMITIVES["getitem"]


def lean_records(root: Graph, pairs: list[tuple[Graph, Graph]]) -> int:
    """Save less per call of a lifted recursion (`pairs`: (J, B)): an item of a tuple J
    saves (a tuple of one display, made inside J and read only inside B) that B can make
    again from the tuple's other items, J's parameters and constants, by a `cheap`
    operation (one correctly rounded arithmetic operation: the same bits again), a read
    of a number from an array or list (`A[i]`, its index an item) or a tuple display, is
    no longer read from the tuple but made again where it is read (`prune_tuples` then
    drops it); a tuple display of which one input is not made so (`(row, cols[k])`, the
    row J's parameter) is saved as that input alone, the tuple made again where read.
    The parameters it needs are read from the call's record (added to it where it did not
    hold them: once per call, not per iteration). Returns how many items were changed.

    Run before `prune_tuples`, on the Python backend's program."""
    graphs = reachable_graphs(root)
    classes = _Classes(root, graphs)
    facts: list[Any] = []
    by_class: dict[Value, list[tuple[Apply, int]]] = {}
    for n, keys, at in classes.reads:
        if keys:
            by_class.setdefault(classes.find(next(iter(keys))), []).append((n, at))
    plans = []
    for cls, vs in classes.members.items():
        if len(vs) != 1 or not classes.plain(vs) or vs[0] in classes.empty:
            continue
        d = classes.displays[vs[0][1]]
        pair = next(((j, b) for j, b in pairs if d.graph is not None and
                     is_inside(d.graph, j)), None)
        reads = by_class.get(cls, [])
        if pair is None or not reads:
            continue
        j, b = pair
        record = _record_display(j)
        # (the record's class must be its one display: items are added to it)
        if record is None or d is record or d is j.output or \
                len(classes.members.get(classes.find(("tuple", record.id)), [])) != 1 or \
                not all(is_inside(n.graph, b) for n, _ in reads) or \
                not b.parameters or b.parameters[0].name != "record":
            continue
        items = d.inputs[1:]
        if any(at < 0 or at >= len(items) for _, at in reads):
            continue
        recipes: dict[int, Recipe] = {}
        for at in sorted({at for _, at in reads}):
            r = _recipe(items, at, j, root, facts)
            if r is not None:
                recipes[at] = r
        if recipes:
            plans.append((d, j, b, reads, recipes))
    changed = 0
    replaced: dict[int, Node] = {}
    shared: dict[int, dict[int, Node]] = {}  # per J: its parameters read from the record
    for d, j, b, reads, recipes in plans:
        record = _record_display(j)
        assert record is not None
        params = shared.setdefault(j.id, {})

        def param_read(p: Node, j: Graph = j, b: Graph = b, record: Apply = record,
                       params: dict[int, Node] = params) -> Node:
            if p.id not in params:
                fields = record.inputs[1:]
                k = next((k for k, x in enumerate(fields) if x is p), None)
                if k is None:
                    k = len(fields)
                    set_inputs(record, [*record.inputs, p])
                    set_kind(record, None)
                rec = b.parameters[0]
                params[p.id] = next(
                    (n for n in graph_nodes(b) if prim_of(n) is TUPLE_GETITEM and
                     n.inputs[1] is rec and type(c := n.inputs[2]) is Constant and
                     c.value == k), None) or b.apply(TUPLE_GETITEM, rec, k)
            return params[p.id]

        memo: dict[tuple[int, int, int], Node] = {}  # (graph, tuple, item): made
        for n, at in reads:
            if at not in recipes:
                continue
            g, t = n.graph, n.inputs[1]
            assert g is not None
            replaced[n.id] = _build(("item", at), g, t, recipes, param_read, memo)
        for at, r in recipes.items():
            narrowed = _narrowed(r, d.inputs[1 + at])
            if narrowed is not None:
                set_inputs(d, [*d.inputs[:1 + at], narrowed, *d.inputs[2 + at:]])
                set_kind(d, None)
            changed += 1
    if replaced:
        _replace_everywhere(graphs, replaced)
    return changed


def _record_display(j: Graph) -> Apply | None:
    """The record a lifted J gives back with its value (`make_tuple(value, record)`)."""
    out = j.output
    if type(out) is Apply and prim_of(out) is MAKE_TUPLE and len(out.inputs) == 3 and \
            type(rec := out.inputs[2]) is Apply and prim_of(rec) is MAKE_TUPLE:
        return rec
    return None


def _recipe(items: list[Node], at: int, j: Graph, root: Graph, facts: list[Any],
            ) -> Recipe | None:
    """How to make item `at` of a tuple of `items` again (see `Recipe`), or None."""
    x = items[at]
    first = next(k for k, y in enumerate(items) if y is x)
    if first != at:
        return ("item", first)  # (the same value saved twice)
    p = prim_of(x)
    if p is GETITEM:  # (a number read at a saved index)
        return _operand(x, items, at, j, root, facts, 0)
    if type(x) is not Apply or p is None or not (p.cheap or p is MAKE_TUPLE):
        return None
    subs: list[Recipe] = []
    varying = None
    for y in x.inputs[1:]:
        r = _operand(y, items, at, j, root, facts, 0)
        if r is None:
            if p is not MAKE_TUPLE or varying is not None:
                return None
            varying = y
            r = ("saved", at)
        subs.append(r)
    if p is MAKE_TUPLE and varying is not None and all(
            s[0] in ("saved", "const") for s in subs):
        return None  # (nothing saved: the tuple of its varying item and constants)
    return ("op", x, subs)


def _operand(y: Node, items: list[Node], at: int, j: Graph, root: Graph,
             facts: list[Any], depth: int) -> Recipe | None:
    if type(y) is Constant:
        return None if isinstance(y.value, Graph) else ("const", y)
    if type(y) is Parameter and y.graph is j:
        # (read from the call's record: one it holds already, or a number added to it;
        # never a list or an array it would keep alive)
        record = _record_display(j)
        if (record is not None and any(x is y for x in record.inputs[1:])) or \
                _is_number(y, root, facts):
            return ("param", y)
        return None
    k = next((k for k, z in enumerate(items) if z is y and k != at), None)
    if k is not None:
        return ("item", k)
    if depth == 0 and type(y) is Apply and prim_of(y) is GETITEM and len(y.inputs) == 3:
        subs = [_operand(z, items, at, j, root, facts, 1) for z in y.inputs[1:]]
        if all(s is not None for s in subs) and _is_number(y, root, facts):
            return ("op", y, subs)
    return None


def _is_number(y: Node, root: Graph, facts: list[Any]) -> bool:
    """Whether kinds prove `y` a number (a read of one element: cheap to make again)."""
    from .kinds import FLOAT, INT, SCALAR, kind
    from .loop_facts import LoopFacts

    if not facts:
        facts.append(LoopFacts(root))
    return kind(y, facts[0]) in (FLOAT, INT, SCALAR)


def _narrowed(r: Recipe, x: Node) -> Node | None:
    """What a display now saves in place of `x`, made again by `r`: its varying input
    (None: it keeps `x`, which no read asks for now)."""
    if r[0] == "op" and r[1] is x and type(x) is Apply:
        for y, s in zip(x.inputs[1:], r[2], strict=True):
            if s[0] == "saved":
                return y
    return None


def _build(r: Recipe, g: Graph, t: Node, recipes: dict[int, Recipe], param_read: Any,
           memo: dict[tuple[int, int, int], Node]) -> Node:
    """The nodes, in `g`, that make recipe `r` of an item of the tuple `t` (an item made
    once per graph and tuple: `memo`)."""
    kind_ = r[0]
    if kind_ == "const":
        return Constant(r[1].value)
    if kind_ == "param":
        return param_read(r[1])  # type: ignore[no-any-return]
    if kind_ == "saved":
        return g.apply(TUPLE_GETITEM, t, r[1])
    if kind_ == "item":
        k = r[1]
        key = (g.id, t.id, k)
        if key not in memo:
            memo[key] = _build(recipes[k], g, t, recipes, param_read, memo) \
                if k in recipes else g.apply(TUPLE_GETITEM, t, k)
        return memo[key]
    x = r[1]
    return g.apply(x.inputs[0], *(_build(s, g, t, recipes, param_read, memo) for s in r[2]))


GADD_OWNED = PRIMITIVES["gadd_owned"]
ELEMENT_SENS_SMALL = PRIMITIVES["element_sens_small"]
SCATTER_ADD_KNOWN = PRIMITIVES["scatter_add_known"]
ADD_INTO_KNOWN = PRIMITIVES["add_into_known"]
NP_ZEROS = PRIMITIVES["np.zeros"]


def accumulate_down(root: Graph, only: set[int] | None = None) -> int:
    """Pass a lifted recursive backpropagator's sensitivity down the recursion as an
    accumulator instead of summing each call's result going up: `B(record, d)` becomes
    `B(record, d, acc)`, giving `gadd_owned(acc, B(record, d))` (what it gave, added
    into `acc`, ZERO or an array no one else holds: what `B` gives back is proven so
    where its results are summed by `gadd_owned`, `opt.scatter.OwnedSlots`). Each of B's
    results is rewritten (`_Accumulate`): ZERO becomes `acc`; a base case's element
    sensitivity `element_sens_small(d, x, i)` is added into `acc` (`scatter_add_known`,
    where every call gives a sensitivity that is never ZERO; else `gadd_owned`); a
    backward loop's sum (`v = ZERO`, then `v = gadd_owned(v, w)` each iteration) starts
    from `acc`, and where `w` is what a call of B gave back (or that, through
    `scatter_add_known`, which adds into what it is given), that call is given `v` as its
    accumulator and `v` becomes `w`; B's own call gets `acc`; an `if`'s branches each so.
    Every other call of B is given ZERO, or, where `_Accumulate.dense_shape` proves the
    array summed into one float64 array of a known shape, new zeros of it: then the
    accumulator is never ZERO and the adds are `add_into_known` (`acc[i] += d`). Where a
    result has another form, B is left as it is. One buffer then holds the whole
    recursion's sensitivity (a new array per base case and one per call on the path
    before): memory and time. Returns how many were rewritten. (The Python backend's;
    the native one does the same on its code, `native_records.accumulate_in_place`;
    `only`: the ids of the B to rewrite, for the native backend those fused into their
    forward pass next, `unwind.fuse_native`.)"""
    graphs = reachable_graphs(root)
    present = {g.id for g in graphs}
    calls: dict[int, list[Apply]] = {}
    other: set[int] = set()
    users: dict[int, list[Apply]] = {}
    for g in graphs:
        if is_constant_graph(g.output):
            other.add(g.output.value.id)
        for n in graph_nodes(g):
            for i, x in enumerate(n.inputs):
                users.setdefault(x.id, []).append(n)
                if is_constant_graph(x):
                    if i == 0:
                        calls.setdefault(x.value.id, []).append(n)
                    else:
                        other.add(x.value.id)
    refs = graph_refs(graphs)
    done = 0
    for b in list(LIFTED):
        b_calls = calls.get(b.id, [])
        if b.id not in present or (only is not None and b.id not in only) or \
                b.id in other or b.vararg or len(b.parameters) != 2 or \
                b.output is None or any(len(c.inputs) != 3 for c in b_calls) or \
                not any(c.graph is not None and is_inside(c.graph, b) for c in b_calls):
            continue
        d = b.parameters[1]
        given = all(_never_zero(c.inputs[2], {d.id}) for c in b_calls)
        acc = Parameter(b, b.loc, "acc")
        plan = _Accumulate(b, users, refs, given)
        if not plan.result(b, b.output, acc):
            continue
        set_parameters(b, [*b.parameters, acc],
                       [*b.signature, ParamSpec("acc", "pos")] if b.signature is not None
                       else None)
        shape = plan.shape = plan.dense_shape(b_calls, root, graphs)
        for edit in plan.edits:
            edit()
        for c in b_calls:
            if c.id not in plan.threaded:
                set_inputs(c, [*c.inputs, _dense_zeros(c, shape) if shape is not None
                               else Constant(ZERO)])
        done += 1
    if done:
        forget_all(graphs)
    return done


class _Accumulate:
    """The rewrite of `accumulate_down` for one `B`: checked first (`result`), the edits
    collected, made once every result is known to take the accumulator."""

    def __init__(self, b: Graph, users: dict[int, list[Apply]], refs: dict[int, int],
                 given: bool) -> None:
        self.b, self.users, self.refs, self.given = b, users, refs, given
        self.edits: list[Any] = []
        self.threaded: set[int] = set()  # the calls of B given an accumulator
        # The arrays `x` whose sensitivity B's adds make (read of B's record), and the
        # shape of zeros that every call of B is given where known (`dense_shape`).
        self.arrays: list[Node] = []
        self.shape: tuple[int, ...] | None = None

    def _self_call(self, n: Node) -> bool:
        return type(n) is Apply and is_constant_graph(n.inputs[0]) and \
            n.inputs[0].value is self.b and len(n.inputs) == 3

    def _only_use(self, n: Node, user: Apply) -> bool:
        return all(u is user for u in self.users.get(n.id, []))

    def _give(self, call: Apply, acc: Node) -> None:
        self.threaded.add(call.id)
        self.edits.append(lambda: set_inputs(call, [*call.inputs, acc]))

    def result(self, g: Graph, o: Node, acc: Node) -> bool:
        """Whether `o`, `g`'s result, can be made to add into `acc` (the edits noted)."""
        if type(o) is Constant and o.value is ZERO:
            self.edits.append(lambda: set_output(g, acc))
            return True
        if type(o) is not Apply or o.graph is not g:
            return False
        if self._self_call(o):
            self._give(o, acc)
            return True
        p = prim_of(o)
        if p is ELEMENT_SENS_SMALL and len(o.inputs) == 4:
            dn, x, index = o.inputs[1:]
            given = self.given and type(dn) is Parameter and dn is self.b.parameters[1]

            def add() -> None:
                if given and self.shape is not None:
                    new = _add_into(g, acc, [index], [dn], self.shape)
                elif given:
                    new = g.apply(SCATTER_ADD_KNOWN, acc, x, g.apply(MAKE_TUPLE, index),
                                  g.apply(MAKE_TUPLE, dn))
                else:
                    new = g.apply(GADD_OWNED, acc, o)
                set_output(g, new)
            self.arrays.append(x)
            self.edits.append(add)
            return True
        if p is None and len(o.inputs) == 1 and type(sw := o.inputs[0]) is Apply and \
                prim_of(sw) is SWITCH and len(sw.inputs) == 4:
            branches = sw.inputs[2:]
            graphs = [x.value for x in branches if is_constant_graph(x)]
            if len(graphs) != 2 or not all(
                    not h.parameters and self.refs.get(h.id) == 1 and h.output is not None
                    and is_inside(h, self.b) for h in graphs):
                return False
            return all(h.output is not None and self.result(h, h.output, acc)
                       for h in graphs)
        if p is TUPLE_GETITEM and type(k := o.inputs[2]) is Constant and \
                type(k.value) is int:
            return self._loop_sum(o.inputs[1], k.value, o, acc)
        return False

    def _loop_sum(self, loop: Node, at: int, read: Apply, acc: Node) -> bool:
        """A `while` loop's state `at`, starting ZERO, that each iteration makes
        `gadd_owned(itself, w)`, read only by `read`."""
        if not (type(loop) is Apply and prim_of(loop) is WHILE_LOOP and
                len(loop.inputs) > 3 + at and self._only_use(loop, read)):
            return False
        cond, body = loop.inputs[1:3]
        init = loop.inputs[3 + at]
        if not (is_constant_graph(body) and type(init) is Constant and init.value is ZERO and
                is_constant_graph(cond) and len(cond.value.parameters) > at and
                not self.users.get(cond.value.parameters[at].id) and
                cond.value.output is not cond.value.parameters[at]):
            return False  # (nor may the loop's test read the sum)
        out = body.value.output
        params = body.value.parameters
        if not (type(out) is Apply and prim_of(out) is MAKE_TUPLE and
                len(out.inputs) == len(loop.inputs) - 2 and len(params) > at):
            return False
        step = out.inputs[1 + at]
        v = params[at]
        if not (type(step) is Apply and prim_of(step) is GADD_OWNED and
                step.inputs[1] is v and self._only_use(v, step) and
                self._only_use(step, out)):
            return False
        w = step.inputs[2]
        call = w.inputs[1] if type(w) is Apply and prim_of(w) is SCATTER_ADD_KNOWN and \
            len(w.inputs) == 5 else w
        self.edits.append(lambda: set_inputs(loop, [*loop.inputs[:3 + at], acc,
                                                    *loop.inputs[4 + at:]]))
        if type(call) is Apply and type(w) is Apply and self._self_call(call) and \
                self._only_use(call, w if w is not call else step):
            self._give(call, v)
            if w is not call:
                self.arrays.append(w.inputs[2])

            def step_into() -> None:
                new: Node = w
                if self.shape is not None and w is not call and self._only_use(w, step):
                    items, pieces = tuple_items(w.inputs[3]), tuple_items(w.inputs[4])
                    if items and pieces and len(items) == len(pieces):
                        new = _add_into(body.value, call, items, pieces, self.shape)
                set_inputs(out, [*out.inputs[:1 + at], new, *out.inputs[2 + at:]])
            self.edits.append(step_into)
        return True

    def dense_shape(self, calls: list[Apply], root: Graph,
                    graphs: list[Graph]) -> tuple[int, ...] | None:
        """The shape of the float64 array whose sensitivity B sums, where every call of
        B can be given a real array of zeros to add into (then the accumulator is never
        ZERO, and the adds are `acc[i] += d`): every call of B within it passes its
        accumulator on (`threaded`), every array that B's adds are of is read of B's
        record at one path at every level (`record[2]`: the lifted records have no
        kinds; `OwnedSlots`' in-place sums are the proof, made with the kinds the
        closures had, that it is at every level a float64 array of one shape), and at
        each call from outside, that path leads, through the forward pass J's result,
        to nodes whose kinds give that shape (`patterns.follow_items`). Else None."""
        from .loop_facts import LoopFacts

        b = self.b
        inner = [c for c in calls if c.graph is not None and is_inside(c.graph, b)]
        paths = [item_path(x) for x in self.arrays]
        path = paths[0] if paths else None
        if path is None or any(c.id not in self.threaded for c in inner) or \
                any(p != path for p in paths) or path[0] is not b.parameters[0]:
            return None
        facts = LoopFacts(root, graphs)
        at = [i for i in path[1:] if type(i) is int]
        shapes = set()
        for c in calls:
            if c in inner:
                continue
            records = value_sources(c.inputs[1], {})
            for r in records if records is not None else [None]:
                xs = follow_items(r, at) if r is not None else None
                for x in xs if xs is not None else [None]:
                    k = kind(x, facts) if x is not None else None
                    sx = shape_of(k) if k is not None else None
                    if sx is None or k != array("f8", sx):
                        return None  # (not known: left ZERO)
                    shapes.add(sx)
        return shapes.pop() if len(shapes) == 1 else None


def _dense_zeros(c: Apply, shape: tuple[int, ...]) -> Node:
    """New float64 zeros of `shape`, made before the call `c` from outside (in its
    graph), for B to add into."""
    g = c.graph
    assert g is not None
    zeros = g.apply(NP_ZEROS, Constant(shape), Constant(float))
    set_kind(zeros, array("f8", shape))
    return zeros


def _add_into(g: Graph, acc: Node, items: list[Node], pieces: list[Node],
              shape: tuple[int, ...]) -> Node:
    """`acc[i] += d` for each index and piece, in place, in `g` (`add_into_known`: the
    Python backend's statement), where `acc` is never ZERO: `scatter_add_known(acc, x,
    items, pieces)`'s value."""
    for i, d in zip(items, pieces, strict=True):
        acc = g.apply(ADD_INTO_KNOWN, acc, i, d)
        set_kind(acc, array("f8", shape))
    return acc
