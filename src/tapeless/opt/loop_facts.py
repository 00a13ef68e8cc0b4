"""Loop-carried facts: where each loop-state parameter and loop result comes from, so
that kind inference and the zero analysis can answer questions about loop state by
induction over the loop (`LoopFacts`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

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

if TYPE_CHECKING:
    from .kinds import Kind

P = PRIMITIVES

# The loop state slots, (loop node id, j), an inductive question assumes has its answer.
Assumed = set[tuple[int, int]]


@dataclass
class LoopInfo:
    """A loop node and where its state lives: state j enters as `init[j]`, is parameter
    `lead + j` of the body (and `j` of the condition), and leaves as `outputs[j]`."""

    node: Apply
    body: Graph
    cond: Graph | None
    lead: int  # 1 for for_range (the index comes first), else 0
    first_init: int  # position of init[0] among node.inputs

    @property
    def init(self) -> list[Node]:
        return self.node.inputs[self.first_init:]

    @property
    def outputs(self) -> list[Node] | None:
        out = self.body.output
        if isinstance(out, Apply) and is_call_of(out, "make_tuple") and \
                len(out.inputs) - 1 == len(self.init):
            return out.inputs[1:]
        return None

    def params(self, j: int) -> list[Node]:
        ps: list[Node] = [self.body.parameters[self.lead + j]]
        if self.cond is not None:
            ps.append(self.cond.parameters[j])
        return ps


def is_call_of(node: Node | None, name: str) -> TypeGuard[Apply]:
    """Whether `node` applies the primitive called `name` (the rewrites here and in
    branches.py match the IR by primitive name)."""
    return isinstance(node, Apply) and isinstance(node.inputs[0], Constant) and \
        getattr(node.inputs[0].value, "name", None) == name


def constant_index(getitem: Apply) -> Any:
    """The index `i` of `tuple_getitem(x, i)` (or `getitem`) where it is a constant (the
    caller checked, or the IR makes it one)."""
    i = getitem.inputs[2]
    assert isinstance(i, Constant)
    return i.value


def constant_getitems(nodes: list[Node | None]) -> list[Apply] | None:
    """`nodes` if each is a `tuple_getitem(x, i)` with a constant i, else None."""
    out: list[Apply] = []
    for u in nodes:
        if not (is_call_of(u, "tuple_getitem") and isinstance(u.inputs[2], Constant)):
            return None
        out.append(u)
    return out


def _is_item_read(node: Node | None) -> TypeGuard[Apply]:
    """`x[i]` by `tuple_getitem` or `getitem` (what J makes of an item read)."""
    return is_call_of(node, "tuple_getitem") or is_call_of(node, "getitem")


def _pops(loop: LoopInfo) -> bool:
    """Whether `loop` pops a stack held in its first state slot: each iteration leaves
    `stack[1]` there, so `stack[0]` is always a value pushed onto it."""
    outputs = loop.outputs
    p = loop.body.parameters[loop.lead]
    if outputs is None or not _is_item_read(outputs[0]):
        return False
    seq, i = outputs[0].inputs[1:3]
    return seq is p and isinstance(i, Constant) and i.value == 1


def loop_info(node: Node) -> LoopInfo | None:
    if type(node) is not Apply or type(node.inputs[0]) is not Constant:
        return None
    name = getattr(node.inputs[0].value, "name", None)
    if name == "for_range" and is_constant_graph(node.inputs[4]):
        return LoopInfo(node, node.inputs[4].value, None, 1, 5)
    if name == "while_loop" and \
            is_constant_graph(node.inputs[1]) and is_constant_graph(node.inputs[2]):
        return LoopInfo(node, node.inputs[2].value, node.inputs[1].value, 0, 3)
    return None


class LoopFacts:
    """Where each loop-state parameter and loop result comes from, for inductive
    questions ("is this never ZERO?", "is this always a float?")."""

    def __init__(self, root: Graph, graphs: list[Graph] | None = None):
        # (The compiled function: its arguments are values its caller passed.)
        self.root = root
        self.state_of: dict[int, tuple[LoopInfo, int]] = {}
        self.index_of: dict[int, LoopInfo] = {}
        self.loops: list[LoopInfo] = []
        self._loop_of: dict[int, LoopInfo] = {}  # each of `loops` by its node's id
        # Memo tables for kind() and never_zero(), valid while the graphs do not change.
        # (Keys: (node id, assumptions id); for state_kinds, (loop node id, assumptions
        # id).)
        self.kinds: dict[tuple[int, int], Kind | None] = {}
        self.state_kinds: dict[tuple[int, int], list[Kind | None]] = {}
        # (the keys of `state_kinds` being inferred: a question inside one that needs it
        # again, through a test a value-`if` decides, finds nothing known)
        self.states_inferring: set[tuple[int, int]] = set()
        # What each kind (and state kinds) in these tables depends on: the assumptions
        # it looked up, with what it found, and whether a depth limit cut it short; the
        # kinds that hold under every assumption set agreeing on what they looked up,
        # by node id; the kinds being inferred, innermost last (kinds.py, `kind`).
        self.kind_deps: dict[tuple[int, int], tuple[dict[tuple[int, int], object], bool]] = {}
        self.state_deps: dict[tuple[int, int], tuple[dict[tuple[int, int], object], bool]] = {}
        self.shared_kinds: dict[int, list[tuple[tuple[dict[tuple[int, int], object], bool],
                                                Kind | None]]] = {}
        self.kind_frames: list[Any] = []
        # (never_zero and always_zero: keyed by the node id alone without assumptions.)
        self.nonzero: dict[int | tuple[int, frozenset[tuple[int, int]]], bool] = {}
        self.zero: dict[int | tuple[int, frozenset[tuple[int, int]]], bool] = {}
        # Loop state kinds found by an earlier round, by loop node id (see kinds.py).
        self.hints: dict[int, list[Kind | None]] = {}
        self.graphs = graphs if graphs is not None else reachable_graphs(root)
        # Who uses each node of `graphs` (`loops.facts_uses`), made at the first question.
        self.uses: dict[int, list[tuple[Node | None, Graph]]] | None = None
        for g in self.graphs:
            for n in graph_nodes(g):
                info = loop_info(n)
                if info is None or len(info.body.parameters) != info.lead + len(info.init):
                    continue
                if info.cond is not None and len(info.cond.parameters) != len(info.init):
                    continue
                self.loops.append(info)
                self._loop_of.setdefault(n.id, info)
                if info.lead:  # a `for` loop's index: an int when the bounds are ints
                    self.index_of[info.body.parameters[0].id] = info
                for j in range(len(info.init)):
                    for p in info.params(j):
                        self.state_of[p.id] = (info, j)
        # Values a backward loop pops, by the forward value that was pushed; and each
        # backward loop's forward loop, the forward loop's stack slot and its push.
        self.popped: dict[int, Node] = {}
        self.pushed_by: dict[int, tuple[LoopInfo, int, Apply]] = {}
        # The direct calls of each function only ever called directly (see direct_calls),
        # found when first asked; and its parameters' kinds, inferred from them (kinds.py;
        # None while being inferred).
        self._calls: dict[int, list[Apply] | None] | None = None
        self.parameter_kinds: dict[int, list[Kind | None] | None] = {}
        # The kind of what each recursive function returns, by graph id (kinds.py:
        # inferred at the first question; None in it while being inferred).
        self.result_kinds: dict[int, Kind | None] | None = None
        # (last: linking the stacks asks kinds, which read the tables above)
        self._link_stacks()

    def direct_calls(self, g: Graph) -> list[Apply] | None:
        """The calls of `g`, where every use of it is a call passing one argument per
        parameter (so its parameters hold what these calls pass), else None: the
        compiled function itself, a function passed as a value or returned, a loop body
        or a branch. (Calls made later in a round by rewrites pass the same values.)"""
        if self._calls is None:
            calls: dict[int, list[Apply] | None] = {self.root.id: None}
            for h in self.graphs:
                if is_constant_graph(h.output):
                    calls[h.output.value.id] = None
                for n in graph_nodes(h):
                    for pos, inp in enumerate(n.inputs):
                        # (`is_constant_graph`, inline: this runs for every input)
                        if type(inp) is not Constant or type(inp.value) is not Graph:
                            continue
                        callee = inp.value
                        if pos == 0 and not callee.vararg and \
                                len(n.inputs) - 1 == len(callee.parameters):
                            found = calls.setdefault(callee.id, [])
                            if found is not None:
                                found.append(n)
                        else:
                            calls[callee.id] = None
            self._calls = calls
        return self._calls.get(g.id)

    def _link_stacks(self) -> None:
        """Link every backward loop it can, until a pass links none more. A nested
        loop's stack is found through what its outer backward loop pops, so that loop
        must be linked first, and `self.loops` need not list outer loops first (it
        follows the order of `graphs`). Each pass links at least one loop or is the
        last, and tries only the loops still unlinked: in the usual order (outer loops
        first) the first pass links them all, and a second, if any are left, is short."""
        left = [b for b in self.loops if b.cond is not None and b.init and
                b.body.parameters and (b.body.loop_role == "backward" or _pops(b))]
        while left:
            unlinked = [b for b in left if not self._link_stack(b)]
            if len(unlinked) == len(left):
                return
            left = unlinked

    def _link_stack(self, back: LoopInfo) -> bool:
        """Link the backward loop `back` to the forward loop whose stack it pops: record
        the push and the values its body pops (`popped`). Returns whether it was
        linked (not yet, for a nested loop whose outer backward loop is not)."""
        found = self.result_of(back.init[0])
        if found is None:
            found = self._through_popped(back.init[0])
        # (Found through a branch's saved values: linked for its reads alone, as below.)
        reads_only = found is None
        if found is None and back.body.loop_role == "backward":
            found = self._through_saved(back.init[0])
        if found is None:
            return False
        fwd, kf = found
        outputs = fwd.outputs
        if outputs is None:
            return False
        push = outputs[kf]
        if not (is_call_of(push, "make_tuple") and len(push.inputs) == 3
                and push.inputs[2] is fwd.body.parameters[fwd.lead + kf]):
            return False
        if not reads_only:
            # (Also the loop J of a backward loop made, which pops its stack too: a
            # second-order gradient's first-order backward loop, whose values the
            # pruning of saved values drops where it reads only some of them.)
            self.pushed_by[back.node.id] = (fwd, kf, push)
        p = back.body.parameters[0]
        for n in graph_nodes(back.body):
            if _is_item_read(n) and n.inputs[1] is p and \
                    isinstance(n.inputs[2], Constant) and n.inputs[2].value == 0:
                self.popped[n.id] = push.inputs[1]
        return True

    def _through_popped(self, start: Node) -> tuple[LoopInfo, int] | None:
        """A nested loop's stack, saved on an outer loop's stack: `start` is `saved[i]`
        in the outer backward loop, where `saved` is what its forward loop pushed."""
        if not (is_call_of(start, "tuple_getitem") and isinstance(start.inputs[2], Constant)):
            return None
        pushed = self.popped.get(start.inputs[1].id)
        i = start.inputs[2].value
        if pushed is None or not is_call_of(pushed, "make_tuple") or \
                not 0 <= i < len(pushed.inputs) - 1:
            return None
        return self.result_of(pushed.inputs[1 + i])

    def _through_saved(self, start: Node) -> tuple[LoopInfo, int] | None:
        """The stack of a loop inside an `if`, which J's branch returns among the values
        it saves and the backpropagator's branch reads back (`start` is `saved[i]`): the
        one loop's stack among the values the branches may have saved there (the other
        branch saves something else there, never read by this loop: the
        backpropagator takes the branch J took)."""
        from .kinds import item_nodes

        if not (is_call_of(start, "tuple_getitem") and isinstance(start.inputs[2], Constant)
                and type(start.inputs[2].value) is int):
            return None
        items = item_nodes(start.inputs[1], start.inputs[2].value, self)
        stacks = [found for i in items or () if (found := self.result_of(i)) is not None]
        return stacks[0] if len(stacks) == 1 else None

    def inductive(self, node: Node, test: Callable[[Node, Assumed], bool],
                  assumed: Assumed) -> bool:
        """For a state parameter: `test` holds of its initial value and of the body's
        output, assuming it holds of the parameter (and of other state under test)."""
        found = self.state_of.get(node.id)
        if found is None:
            return False
        info, j = found
        outputs = info.outputs
        if outputs is None:
            return False
        key = (info.node.id, j)
        if key in assumed:
            return True
        assumed.add(key)
        try:
            return test(info.init[j], assumed) and test(outputs[j], assumed)
        finally:
            assumed.discard(key)

    def result_of(self, node: Node) -> tuple[LoopInfo, int] | None:
        """For `tuple_getitem(loop, j)`: the loop and j."""
        return self._result_of(node)

    def item_of_loop(self, node: Apply) -> tuple[LoopInfo, int] | None:
        """`result_of` for a node known to apply `tuple_getitem` or `getitem`."""
        index = node.inputs[2]
        if isinstance(index, Constant):
            info = self._loop_of.get(node.inputs[1].id)
            if info is not None:
                j = index.value
                return (info, j) if 0 <= j < len(info.init) else None
        return None

    def _result_of(self, node: Node) -> tuple[LoopInfo, int] | None:
        if (is_call_of(node, "tuple_getitem") or is_call_of(node, "getitem")) and \
                isinstance(node, Apply) and isinstance(node.inputs[2], Constant):
            info = self._loop_of.get(node.inputs[1].id)
            if info is not None:
                j = node.inputs[2].value
                return (info, j) if 0 <= j < len(info.init) else None
        return None
