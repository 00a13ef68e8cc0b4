"""Sensitivities of element reads added onto a value made elsewhere, kept sparse.

A recursion that reads a few elements of an array per call (`walk(A, i)` reading
`A[i, i]`, a determinant by Laplace expansion reading `A[row, c]`) gets, in each call's
backpropagator, `gadd(scatter_sens(A, indices, ds), d_A)`, with `d_A` what the recursive
call's backpropagator gave back. Built as written, that is two sparse sensitivities
(`tapeless.sparse_sens`) made and joined per call. `scatter_onto(d_A, A, indices, ds)` is
the same sum as one call that appends the pieces to `d_A`'s (a new handle: `d_A` itself
is left as it is, so nothing needs to prove that no one else holds it).

Sums into loop state are left to `loops.accumulate_in_place` (in place, where the loop
owns the accumulator) and to the native backend's lowering of them.

Where the optimizer proves that `d_A` is owned (`OwnedSlots`: what a recursive call's
backpropagator gives back in that slot is always a new value that nothing else holds, and
the caller reads it once), the pieces are added into it in place (`scatter_add_known`,
`scatter_add`): one dense buffer for the whole recursion, as a hand-written adjoint
keeps, instead of a new handle per call and the array built at the end. The proof goes
through a small array's one-element sensitivity made by the base case, sums of owned
values, an `if`'s argument sensitivities and a backward loop's accumulator (the
recursive determinant, whose column loop sums its recursive calls' sensitivities).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..ir.edit import Users, set_inputs, users
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    Parameter,
    graph_nodes,
    is_constant_graph,
    is_inside,
    reachable_graphs,
)
from ..primitives import PRIMITIVES
from .kinds import (
    FLOAT,
    INT,
    SCALAR,
    if_outputs,
    is_f8,
    is_switch_call,
    item_nodes,
    items_of,
    kind,
    sequence_items,
    shape_of,
)
from .loop_facts import LoopFacts, LoopInfo, is_call_of
from .patterns import tuple_items
from .zeros import never_zero

P = PRIMITIVES


def scatter_onto(root: Graph,
                 known: Callable[[Node, Node, Node], bool] | None = None) -> int:
    """Rewrite each `gadd(scatter_sens(x, indices, ds), acc)` (either order; or one piece,
    `getitem_sens(d, x, i)`), where nothing else reads the scattered sensitivity and `acc`
    is not loop state, as `scatter_onto(acc, x, indices, ds)`; then, where `acc` is proven
    owned (`OwnedSlots`), as its in-place form (`scatter_add_known` where `known(x,
    indices, ds)` proves what it leaves untested, as in `loops.accumulate_in_place`).
    Returns how many."""
    graphs = reachable_graphs(root)
    facts: LoopFacts | None = None
    use = users(graphs)
    rewritten = 0
    for g in graphs:
        for add in graph_nodes(g):
            if not is_call_of(add, "gadd"):
                continue
            a, b = add.inputs[1:]
            for scattered, acc in ((a, b), (b, a)):
                if scattered is acc or not isinstance(scattered, Apply) or \
                        [u for u, _ in use.get(scattered.id, [])] != [add]:
                    continue
                if is_call_of(scattered, "scatter_sens"):
                    x, indices, ds = scattered.inputs[1:]
                elif is_call_of(scattered, "getitem_sens"):
                    d, x, i = scattered.inputs[1:]
                    indices, ds = g.apply(P["make_tuple"], i), g.apply(P["make_tuple"], d)
                else:
                    continue
                if isinstance(acc, Parameter):
                    facts = facts or LoopFacts(root, graphs)
                    if acc.id in facts.state_of:
                        break  # (an accumulator: see loops.accumulate_in_place)
                facts = facts or LoopFacts(root, graphs)
                helper = "scatter_onto_known" if _element_reads(x, indices, facts) else \
                    "scatter_onto"
                set_inputs(add, [Constant(P[helper]), acc, x, indices, ds])
                rewritten += 1
                break
    if rewritten and known is not None:
        facts = facts or LoopFacts(root, graphs)
        rewritten += OwnedSlots(facts, users(graphs), known).rewrite(graphs)
    return rewritten



def _element_reads(x: Node, indices: Node, facts: LoopFacts) -> bool:
    """Whether kinds prove `x` a float64 array and each index an int or a tuple of ints
    (no more than x's axes): what `scatter_onto_known` does not test again."""
    kx = kind(x, facts)
    shape = shape_of(kx)
    items = sequence_items(indices, facts)
    if not is_f8(kx) or not shape or items is None:
        return False
    for i in items:
        ki = kind(i, facts)
        at = (ki,) if ki is INT else items_of(ki)
        if at is None or not 0 < len(at) <= len(shape) or any(k is not INT for k in at):
            return False
    return True


def _onto(node: Node) -> bool:
    """Whether `node` is a sum onto an accumulator left as it is (`scatter_onto`)."""
    return is_call_of(node, "scatter_onto") or is_call_of(node, "scatter_onto_known")


class OwnedSlots:
    """Which sensitivities a backpropagator gives back are owned by its caller: in slot k
    of what the backpropagator graph `b` returns, always ZERO or a new float64 array that
    nothing else holds (made by `scatter_add_known` from ZERO, or added into in place
    from such a value). Proven by induction over the recursion, as kinds are (a slot
    being proven is assumed owned: a recursion that ends gives, at its deepest call, a
    value the base case made). A sum `scatter_onto(acc, x, ...)` whose `acc` is slot k of
    such a call's result, read once and by nothing else, adds its pieces into `acc` in
    place.

    The chain from `b`'s result down to where the value is made may pass only through
    tuple displays, items read of them, value-`if`s and backpropagator calls, each value
    on it used once, all inside `b` (made anew by each call of `b`: never a value its
    forward pass saved, which each call of `b` would see)."""

    def __init__(self, facts: LoopFacts, use: Users,
                 known: Callable[[Node, Node, Node], bool]) -> None:
        self.facts = facts
        self.use = use
        self.known = known
        # (graph id, slot) -> proven (True also while being proven: the induction)
        self.slots: dict[tuple[int, int], bool] = {}
        self.inplace: dict[int, Apply] = {}  # the sums to make in place, by node id
        self.adds: dict[int, Apply] = {}  # the `gadd`s of owned values, by node id
        self.reads: dict[int, Apply] = {}  # one small array's element sensitivities
        self._backprop_of: dict[int, Graph | None] = {}

    def rewrite(self, graphs: list[Graph]) -> int:
        """Make in place every sum whose accumulator is proven owned. Returns how many."""
        for g in graphs:
            for node in graph_nodes(g):
                if _onto(node) and node.id not in self.inplace:
                    self._try(node)
        for node in self.inplace.values():
            set_inputs(node, [Constant(P["scatter_add_known"])] + node.inputs[1:])
        for node in self.adds.values():
            set_inputs(node, [Constant(P["gadd_owned"])] + node.inputs[1:])
        for node in self.reads.values():
            set_inputs(node, [Constant(P["element_sens_small"])] + node.inputs[1:])
        return len(self.inplace) + len(self.adds) + len(self.reads)

    def _try(self, node: Apply) -> None:
        """Prove `node`'s accumulator owned, all or nothing: a failed proof keeps none of
        the sums or slots it assumed."""
        kept = dict(self.slots), dict(self.inplace), dict(self.adds), dict(self.reads)
        if not self._sum(node):
            # (A slot that failed fails under any assumption: kept as failed.)
            failed = [key for key, ok in self.slots.items() if not ok]
            self.slots, self.inplace, self.adds, self.reads = kept
            self.slots.update(dict.fromkeys(failed, False))

    def _once(self, node: Node, user: Node | None) -> bool:
        """Whether `user` (None: its graph's output) is the one use of `node`."""
        found = self.use.get(node.id, [])
        return len(found) == 1 and found[0][0] is user

    def _sum(self, node: Apply) -> bool:
        """A sum of element reads into an owned accumulator, made in place: its pieces
        proven numbers of the elements' kind, the accumulator read from an owned slot of
        a backpropagator called here (or another such sum, or ZERO)."""
        acc, x, indices, ds = node.inputs[1:]
        if not _element_reads(x, indices, self.facts) or not (
                self.known(x, indices, ds) or self._numbers(x, indices, ds)):
            return False
        if not (isinstance(acc, Constant) and _is_zero(acc.value)) and \
                not (self._once(acc, node) and acc.graph is node.graph and
                     self._owned(acc, node.graph)):
            return False
        self.inplace[node.id] = node
        return True

    def _numbers(self, x: Node, indices: Node, ds: Node) -> bool:
        """Whether the pieces are numbers (never ZERO) added at elements of x (indices
        as many ints as x has axes): `acc[i] += d` gives the sum `scatter_onto` gives
        for any real number d, float64 or not (a sensitivity whose kind says only
        SCALAR: what a backpropagator is called with; complex cotangents are refused
        where they enter, `from_structure`)."""
        shape = shape_of(kind(x, self.facts))
        items, pieces = sequence_items(indices, self.facts), tuple_items(ds)
        if shape is None or items is None or pieces is None or len(items) != len(pieces):
            return False
        for i, d in zip(items, pieces, strict=True):
            ki = kind(i, self.facts)
            at = (ki,) if ki is INT else items_of(ki)
            if at is None or len(at) != len(shape) or \
                    kind(d, self.facts) not in (FLOAT, INT, SCALAR) or \
                    not never_zero(d, self.facts):
                return False
        return True

    def _owned(self, node: Node, inside: Graph | None) -> bool:
        """Whether `node`, used once, holds ZERO or a float64 array nothing else holds,
        made anew each time `inside` (a backpropagator, or the graph of a sum) runs."""
        if isinstance(node, Constant):
            return _is_zero(node.value)
        if isinstance(node, Parameter):  # loop state proven owned by induction
            return self.slots.get((node.id, _STATE), False)
        if not isinstance(node, Apply) or inside is None or not is_inside(node.graph, inside):
            return False
        if _onto(node):
            return node.id in self.inplace or self._sum(node)
        if is_call_of(node, "gadd") or is_call_of(node, "gadd_owned"):
            # (ZERO and a value give the value; two arrays a new one, or the first, added
            # into in place: `gadd_owned`)
            if not all(isinstance(a, Constant) and _is_zero(a.value) or
                       (self._once(a, node) and self._owned(a, inside))
                       for a in node.inputs[1:3]):
                return False
            self.adds[node.id] = node
            return True
        if is_call_of(node, "getitem_sens") or is_call_of(node, "element_sens_small"):
            if not self._small_read(node):
                return False
            self.reads[node.id] = node
            return True
        found = self.facts.result_of(node)
        if found is not None:
            return self._state(found[0], found[1], inside)
        if is_switch_call(node):
            return all(isinstance(o, Constant) and _is_zero(o.value) or
                       (self._once(o, None) and self._owned(o, inside))
                       for o in if_outputs(node))
        if not (is_call_of(node, "tuple_getitem") and
                isinstance(k := node.inputs[2], Constant) and type(k.value) is int):
            return False
        seq, i = node.inputs[1], k.value
        # The one read of item i of `seq`: no other read of it, no other use of `seq`.
        reads_of_i = 0
        for u, _ in self.use.get(seq.id, []):
            if not (is_call_of(u, "tuple_getitem") and u.inputs[1] is seq and
                    isinstance(at := u.inputs[2], Constant)):
                return False
            reads_of_i += at.value == i
        return reads_of_i == 1 and self._item(seq, i, inside)

    def _small_read(self, node: Apply) -> bool:
        """Whether `getitem_sens(d, x, i)` is ZERO or a new float64 array: x a float64
        array too small for a sparse sensitivity (`sparse_sens.SPARSE_MIN_SIZE`), i an
        element's index (d, the sensitivity of a float64 number, is then a number or
        ZERO, and the runtime makes ZERO or a new array: `runtime.getitem_sens`)."""
        from ..sparse_sens import SPARSE_MIN_SIZE

        x, i = node.inputs[2:]
        kx = kind(x, self.facts)
        shape = shape_of(kx)
        if not is_f8(kx) or not shape or math.prod(shape) >= SPARSE_MIN_SIZE:
            return False
        ki = kind(i, self.facts)
        at = (ki,) if ki is INT else items_of(ki)
        return at is not None and len(at) == len(shape) and all(k is INT for k in at)

    def _state(self, info: LoopInfo, j: int, inside: Graph) -> bool:
        """Whether slot j of the loop `info` ends owned: it starts owned (made in
        `inside`, or ZERO) and each iteration gives an owned value, assuming the state is
        (induction), the state read by nothing but that value's chain."""
        key = (info.node.id, -1 - j)
        if key in self.slots:
            return self.slots[key]
        self.slots[key] = False  # (a loop does not contain itself)
        outputs = info.outputs
        init = info.init[j]
        body = info.body
        if outputs is None or len(body.parameters) != info.lead + len(info.init) or \
                (info.cond is not None and self.use.get(info.cond.parameters[j].id)):
            return False
        if not (isinstance(init, Constant) and _is_zero(init.value) or
                (self._once(init, info.node) and self._owned(init, inside))):
            return False
        p = body.parameters[info.lead + j]
        out = outputs[j]
        if len(self.use.get(p.id, [])) != 1:
            return False
        self.slots[(p.id, _STATE)] = True
        ok = out is p or (self._once(out, body.output) and self._owned(out, body))
        self.slots[(p.id, _STATE)] = self.slots[key] = ok
        return ok

    def _item(self, seq: Node, i: int, inside: Graph) -> bool:
        """Whether item i of the tuple `seq` (read once) is owned."""
        if isinstance(seq, Constant):  # (ZERO's items are ZERO)
            v = seq.value
            return _is_zero(v) or (type(v) is tuple and (not 0 <= i < len(v) or
                                                         _is_zero(v[i])))
        if not isinstance(seq, Apply) or not is_inside(seq.graph, inside):
            return False
        if is_call_of(seq, "make_tuple"):
            if not 0 <= i < len(seq.inputs) - 1:
                return True  # (never read: reading it raises)
            item = seq.inputs[1 + i]
            return isinstance(item, Constant) and _is_zero(item.value) or \
                (self._once(item, seq) and self._owned(item, inside))
        if is_switch_call(seq):
            return all((isinstance(o, Constant) or self._once(o, None)) and
                       self._item(o, i, inside) for o in if_outputs(seq))
        if is_call_of(seq, "tuple_getitem") and is_switch_call(sw := seq.inputs[1]) and \
                isinstance(k := seq.inputs[2], Constant) and type(k.value) is int:
            return self._branch_item(sw, k.value, i, inside)
        b = self._backprop(seq.inputs[0])
        return b is not None and len(seq.inputs) - 1 == len(b.parameters) and \
            self._slot(b, i)

    def _branch_item(self, sw: Apply, k: int, i: int, inside: Graph) -> bool:
        """Whether item i of item k of the value-`if` `sw` is owned, where its branches
        return displays (the sensitivity of an `if`'s arguments, `(ZERO, t, ZERO)` in one
        branch and `(ZERO, ZERO, t)` in the other): in each branch, item k is ZERO or a
        value that branch's display holds once, whose item i is owned, and that no other
        read of `sw` reaches in that branch (only one branch runs)."""
        reads = [u for u, _ in self.use.get(sw.id, [])]
        if not all(is_call_of(u, "tuple_getitem") and isinstance(u.inputs[2], Constant)
                   for u in reads):
            return False
        read_at = [u.inputs[2].value for u in reads]  # type: ignore[union-attr]
        outs = if_outputs(sw)
        for o in outs:
            if isinstance(o, Constant):
                v = o.value
                if not (_is_zero(v) or type(v) is tuple and 0 <= k < len(v) and
                        _is_zero(v[k])):
                    return False
                continue
            if not (is_call_of(o, "make_tuple") and 0 <= k < len(o.inputs) - 1 and
                    self._once(o, None)):
                return False
            item = o.inputs[1 + k]
            if isinstance(item, Constant):
                if not _is_zero(item.value):
                    return False
                continue
            # Held once by this display, by the other branch's at most, and read through
            # item k of `sw` once.
            places = [n for n, u in enumerate(o.inputs[1:]) if u is item]
            users = [u for u, _ in self.use.get(item.id, [])]
            if places != [k] or read_at.count(k) != 1 or \
                    any(u is not o and u not in outs for u in users) or \
                    len(users) > len(outs) or not self._item(item, i, inside):
                return False
        return True

    def _slot(self, b: Graph, i: int) -> bool:
        """Whether slot i of what the backpropagator graph `b` returns is owned."""
        key = (b.id, i)
        if key in self.slots:
            return self.slots[key]
        self.slots[key] = True  # (the induction's assumption)
        out = b.output
        ok = isinstance(out, Apply) and is_call_of(out, "make_tuple") and \
            self._once(out, None) and 0 <= i < len(out.inputs) - 1
        if ok:
            assert isinstance(out, Apply)
            item = out.inputs[1 + i]
            ok = isinstance(item, Constant) and _is_zero(item.value) or \
                (self._once(item, out) and self._owned(item, b))
        self.slots[key] = ok
        return ok

    def _backprop(self, callee: Node) -> Graph | None:
        """The backpropagator graph `callee` always is: read from what a call of a J
        function `jf` returns, `(value, B)` with B a graph, through the values saved."""
        found = self._backprop_of.get(callee.id, callee)
        if found is not callee:
            return found  # type: ignore[return-value]
        graphs: set[int] = set()
        out: Graph | None = None
        nodes: list[Node] | None = [callee]
        if is_call_of(callee, "tuple_getitem") and \
                isinstance(k := callee.inputs[2], Constant) and type(k.value) is int:
            nodes = item_nodes(callee.inputs[1], k.value, self.facts) or nodes
        for n in nodes or []:
            b = _returned_backprop(n)
            if b is None:
                graphs.clear()
                out = None
                break
            graphs.add(b.id)
            out = b
        result = out if len(graphs) == 1 else None
        self._backprop_of[callee.id] = result
        return result


def _returned_backprop(n: Node) -> Graph | None:
    """The backpropagator graph B where `n` is `jf(...)[1]`, a call of a function `jf`
    that returns `(value, B)`."""
    if not (is_call_of(n, "tuple_getitem") and isinstance(n.inputs[2], Constant) and
            n.inputs[2].value == 1):
        return None
    call = n.inputs[1]
    if not (isinstance(call, Apply) and is_constant_graph(call.inputs[0])):
        return None
    out = call.inputs[0].value.output
    if is_call_of(out, "make_tuple") and len(out.inputs) == 3 and \
            is_constant_graph(b := out.inputs[2]):
        backprop: Graph = b.value
        return backprop
    return None


# (The key of loop state assumed owned while its loop is proven, with the parameter's id.)
_STATE = -(10 ** 9)


def _is_zero(value: object) -> bool:
    from ..runtime import ZERO

    return value is ZERO


def scatter_pairs(root: Graph) -> int:
    """For the Python backend, last: each `scatter_add_known(acc, x, (i, j), (di, dj))`
    whose indices and pieces are tuple displays of two items that nothing else reads is
    `scatter_add_pair_known(acc, x, i, j, di, dj)`, the same sums without the two tuples
    built per call nor the tests of a piece count (a sixth of the recursive walk's
    backward pass). The displays, read by nothing else, are then dead. Returns how
    many."""
    graphs = reachable_graphs(root)
    use = users(graphs)
    rewritten = 0
    for g in graphs:
        for node in graph_nodes(g):
            if not is_call_of(node, "scatter_add_known"):
                continue
            acc, x, indices, ds = node.inputs[1:]
            parts = [n for n in (indices, ds) if is_call_of(n, "make_tuple") and
                     len(n.inputs) == 3 and
                     [u for u, _ in use.get(n.id, [])] == [node]]
            if len(parts) != 2 or parts[0] is parts[1]:
                continue
            assert isinstance(indices, Apply) and isinstance(ds, Apply)
            set_inputs(node, [Constant(P["scatter_add_pair_known"]), acc, x,
                              *indices.inputs[1:], *ds.inputs[1:]])
            rewritten += 1
    return rewritten
