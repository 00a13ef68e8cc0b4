"""The optimizer's driver: rounds of rewrites over a worklist, to a fixed point, then the
steps that run once the program is final.

Each rewrite looks at one Apply node and returns a replacement (or None). Rewrites are
indexed by the primitive they match; `inline` applies to calls of known graphs.
Dead code disappears on its own: only nodes reachable from a graph's output or effects
exist for the later stages."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..ir import nodes
from ..ir.edit import (
    forget_all,
    keep_users,
    made_count,
    made_graphs,
    missing_users,
    note_graph_uses,
    set_effects,
    set_inputs,
    set_parameters,
    take_edited,
)
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    Parameter,
    graph_nodes,
    is_constant_graph,
    prim_of,
    reachable_graphs,
    scope_errors,
    serial_mark,
    stale_schedules,
)
from ..ir.replace import apply_replacements, redirect
from .arrays import block_products, python_spellings
from .branches import branch_backprops, dead_branch_items, forwarding_ifs, single_item_ifs
from .checkpoint import checkpoint_loops, checkpoint_recursion, checkpoints_recursions
from .counters import count_saved_counters
from .kinds import FLOAT, INT, Kind, array, element_of, is_f8, items_of, kind, shape_of
from .lift import accumulate_down, lift_backprops
from .loops import (
    LoopFacts,
    drop_dead_state,
    lower_stacks,
    prune_saved,
    split_tuple_state,
    uses,
    zero_accumulators,
)
from .patterns import tuple_items
from .results import own_outputs, settle_owns
from .rules import RULES, Context, P, allowed, step
from .scatter import scatter_onto, scatter_pairs
from .simplify import cse, fold_constants, idle_loop, inline_call, pure, select_constants
from .unroll import unroll_loop
from .unwind import fuse_native, unwind_backprops
from .updates import arithmetic_in_place, update_in_place
from .zeros import f8_number, never_zero

# Steps that change whole graphs: in a round without other changes, and at the end.
step("drop_pure_effects")
step("loop_state")
step("branch_backprops")
step("dead_branch_items")
step("unused_parameters")
step("lower_stacks")
step("scatter_onto")
step("block_products")
step("python_spellings")
step("update_in_place")
step("checkpoint_loops")
step("lift_backprops")
step("forwarding_ifs")
step("scatter_pairs")
step("unwind_backprops")
step("accumulate_down")
step("checkpoint_recursion")
step("arithmetic_in_place")


# Whether facts (and the kinds they hold) that a round leaves valid start the next round
# and the steps after the rounds (`_round`): tests compare the code made without it.
CARRY_FACTS = True

P_FOR_RANGE, P_WHILE_LOOP = P["for_range"], P["while_loop"]
LOOP_STEPS_MAX = 64  # loop-state steps in one round (each removes something: a bound)


@dataclass
class PassLog:
    counts: dict[str, int] = field(default_factory=dict)
    # Per round: (nodes matched against the rules, nodes in the program when it began).
    rounds: list[tuple[int, int]] = field(default_factory=list)
    # Per round: the nodes of the graphs it left unmatched because the sweep had already
    # made them unreachable (`_DeadGraphs`): every other node of a round over every node
    # is matched.
    skipped: list[int] = field(default_factory=list)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def optimize(root: Graph, enabled: set[str] | None = None, max_rounds: int = 30,
             worklist: bool = True, loops: tuple[str, int] = ("auto", 1 << 30),
             python: bool = False, final: bool = True) -> PassLog:
    """Rewrite `root` and the graphs it reaches, in place, until nothing changes.
    `enabled` limits the rewrites (by name, e.g. {"inline", "getitem_of_tuple"}).
    After the first round, each round matches only the nodes a change can have made
    match (a worklist); when it is empty, one round over every node confirms the fixed
    point. `worklist=False` matches every node in every round. `loops`: which gradient
    loops to checkpoint, and the memory budget (`checkpoint.checkpoint_loops`).
    `python`: the program is for the Python backend (`arrays.python_spellings`).
    `final=False` leaves out the steps that run once the program is final (checkpointed
    loops, stacks as lists, in-place updates, blocked products, the results' copies
    settled: for a program that is transformed again, e.g. a gradient whose jvp is
    taken, `tapeless.fwd_api`)."""
    log = PassLog()
    check = os.environ.get("TAPELESS_CHECK_IR") == "1"
    # (What earlier stages cached of the graphs, computed while they were being built,
    # is forgotten: the rounds keep the caches current from here on.)
    forget_all(reachable_graphs(root))
    own_outputs(root)
    with keep_users(reachable_graphs(root)):
        facts = _rounds(root, enabled, log, max_rounds, worklist, check)
    if not final:
        return log  # (the results stay `own`: settled where the program is final)
    # Last, once the program is final: loops that may save too much checkpointed, and
    # mutable stacks where no one can tell.
    # (The facts of the last round, which changed nothing, describe the program until a
    # step changes it: the first steps start from their kinds.)
    if allowed(enabled, "checkpoint_loops") and \
            (n := checkpoint_loops(root, *loops, facts=facts)):
        log.add("checkpoint_loops", n)
        facts = None
    if python and allowed(enabled, "python_spellings") and \
            (n := python_spellings(root, facts)):
        log.add("python_spellings", n)
    if allowed(enabled, "lower_stacks") and lower_stacks(root, *scatter_known(root, python)):
        log.add("lower_stacks")
    if allowed(enabled, "scatter_onto") and (n := scatter_onto(root, scatter_known(root)[0])):
        log.add("scatter_onto", n)
    if allowed(enabled, "block_products") and (n := block_products(root)):
        log.add("block_products", n)
    if allowed(enabled, "update_in_place") and (n := update_in_place(root)):
        log.add("update_in_place", n)
    settle_owns(root)
    # (Last: the steps above read the saved values' kinds through the closures. For both
    # backends: the native one keeps the records in typed lists, `native_records`.)
    if allowed(enabled, "lift_backprops") and (n := lift_backprops(root, python)):
        log.add("lift_backprops", n)
        # (the Python backend's: the native lowering of the records reads B_f's `if`s)
        if python and allowed(enabled, "forwarding_ifs") and (n := forwarding_ifs(root)):
            log.add("forwarding_ifs", n)
        # (the native backend's, which checkpoints no recursion: a backward recursion
        # reading its callee's value fused into the forward one, as the Python one's)
        if not python and allowed(enabled, "unwind_backprops") and \
                (n := fuse_native(root)):
            log.add("unwind_backprops", n)
    if python and allowed(enabled, "scatter_pairs") and (n := scatter_pairs(root)):
        log.add("scatter_pairs", n)
    # (the Python backend's: a lifted backward pass of a linear recursion as two loops)
    # (a backward recursion reading its callee's value fused into the forward one, the
    # one running loops once it adds into one buffer: not one checkpointed under a
    # budget, which keeps its own schedule, `checkpoint.checkpoints_recursions`)
    fuse = not checkpoints_recursions(*loops)
    if python and allowed(enabled, "unwind_backprops") and \
            (n := unwind_backprops(root, "flat" if fuse else "")):
        log.add("unwind_backprops", n)
    # (the Python backend's: a recursion's sensitivity added into one buffer down it)
    if python and allowed(enabled, "accumulate_down") and (n := accumulate_down(root)):
        log.add("accumulate_down", n)
    if python and fuse and allowed(enabled, "unwind_backprops") and \
            (n := unwind_backprops(root, "all")):
        log.add("unwind_backprops", n)
    # (the Python backend's: the recursions left, checkpointed past the budget at run time)
    if python and allowed(enabled, "checkpoint_recursion") and \
            (n := checkpoint_recursion(root, *loops)):
        log.add("checkpoint_recursion", n)
    # (the Python backend's, last: arithmetic into temporaries nothing else reads)
    if python and allowed(enabled, "arithmetic_in_place") and (n := arithmetic_in_place(root)):
        log.add("arithmetic_in_place", n)
    return log


def _rounds(root: Graph, enabled: set[str] | None, log: PassLog, max_rounds: int,
            worklist: bool, check: bool) -> LoopFacts | None:
    """The rounds of rewrites, to a fixed point (see `optimize`). Returns the facts of the
    last round (which changed nothing: they describe the program as it is), or None where
    the last round changed the program otherwise than by loop-state steps."""
    hints: dict[int, list] = {}  # loop state kinds, from one round to the next
    work: Worklist | None = None  # None: every node
    carried: list[LoopFacts] = []  # facts a round's last loop step left valid (_round)
    for _ in range(max_rounds):
        more, after, every_node = _round(root, enabled, log, hints, work, carried)
        if check and (errors := scope_errors(root)):
            raise AssertionError("optimizer broke scoping: " + "; ".join(errors[:5]))
        if check and (errors := stale_schedules(root)):
            raise AssertionError("stale schedules after a round: " + "; ".join(errors[:5]))
        if check and (errors := missing_users(reachable_graphs(root))):
            raise AssertionError("users index incomplete: " + "; ".join(errors[:5]))
        if not more:
            if every_node:
                break
            # The worklist matched nothing: one round over every node confirms the fixed
            # point (a change far upstream can make a kind, and so a rule, apply here).
            work = None
            continue
        work = after if worklist else None
    # (What a round leaves in `carried` describes the program after it.)
    return carried[-1] if carried else None


def scatter_known(root: Graph, python: bool = False
                  ) -> tuple[Callable[[Node, Node, Node], bool],
                             Callable[[Node], tuple[int, ...] | None] | None]:
    """Whether kinds prove, for `scatter_add(acc, x, indices, ds)`, what it tests on each
    call (then `scatter_add_known` does the same without the tests): x a float64 array (or
    a list of float64 values of one kind), int indices, and pieces that are float64
    values of an element's kind and never ZERO. And, for the Python backend, the shape of
    x where kinds prove it a float64 array (then the pieces are added in place by
    statements, `acc[i] += d`, into the array's zeros: `loops.accumulate_in_place`)."""
    made: list[LoopFacts] = []  # (made at the first question: most programs ask none)

    def facts_now() -> LoopFacts:
        if not made:
            made.append(LoopFacts(root))
        return made[0]

    def f8_shape(x: Node) -> tuple[int, ...] | None:
        kx = kind(x, facts_now())
        return shape_of(kx) if is_f8(kx) else None

    def known(x: Node, indices: Node, ds: Node) -> bool:
        facts = facts_now()
        kx = kind(x, facts)
        index_items, d_items = tuple_items(indices), tuple_items(ds)
        if index_items is None or d_items is None or len(index_items) != len(d_items):
            return False
        for i, d in zip(index_items, d_items, strict=True):
            item = piece_kind(kx, kind(i, facts))
            # (A float64 number's kind says only SCALAR: f8_number follows where it is
            # made.)
            if item is None or not never_zero(d, facts) or not (
                    kind(d, facts) in (item, FLOAT) or
                    (shape_of(item) == () and f8_number(d, facts))):
                return False
        return True

    return known, (f8_shape if python else None)


def piece_kind(kx: Kind | None, ki: Kind | None) -> Kind | None:
    """The kind of `x[i]` where `scatter_add_known` can add a piece into it: an element
    of a list of float64 values of one kind at an int, a row (an int) or an element or
    sub-array (a tuple of ints) of a float64 array; else None."""
    item = element_of(kx)
    if item is not None:
        return item if ki is INT and (item == FLOAT or
                                      (is_f8(item) and shape_of(item) is not None)) else None
    shape = shape_of(kx)
    at = (ki,) if ki is INT else items_of(ki)
    if not is_f8(kx) or not shape or at is None or not 0 < len(at) <= len(shape) or \
            any(k is not INT for k in at):
        return None
    return array("f8", shape[len(at):])


class _Sweep:
    """One round's pass over the nodes. Nodes are visited inputs first, and a node is
    pointed at its inputs' replacements before it is matched, so chains of rewrites
    finish in one round. The body an inlining copies is visited at once (one level: what
    that inlines waits); the nodes other rewrites make are matched in the next round
    (matching them at once saves no round on the benchmarks and changes the fixed point,
    since the rules of one primitive are tried in a fixed order)."""

    def __init__(self, ctx: Context, enabled: set[str] | None, log: PassLog,
                 work: Worklist | None):
        self.ctx, self.enabled, self.log, self.work = ctx, enabled, log, work
        self.replace: dict[int, Node] = {}
        self.spliced: dict[int, list[Node]] = {}
        self.splicing: set[int] = set()  # the nodes in the lists of `spliced`
        self.touched: set[int] = set()  # graphs whose nodes were redirected or changed
        self.changed: set[int] = set()  # nodes whose inputs changed
        self.matched = 0  # nodes matched against the rules
        self.inlined = False  # whether the last match inlined a call

    def visit(self, node: Apply, g: Graph, copied: bool = False) -> None:
        """Match `node` (`copied`: a node an inlining just made)."""
        callee = node.inputs[0]
        redirected = bool(self.replace) and redirect(node, self.replace)
        if redirected:
            self.touched.add(g.id)
            self.changed.add(node.id)
        if self.work is not None and not redirected and not copied and \
                node.id not in self.work.nodes:
            # Not on the worklist: nothing it looks at has changed. It still takes part
            # in common-subexpression elimination (an earlier node may now equal it).
            if prim_of(node) is not None and allowed(self.enabled, "cse") and \
                    (result := cse(self.ctx, node)) is not None:
                self.log.add("cse")
                self.replace[node.id] = result
            return
        # (A callee found in this sweep waits for the next round to be inlined: its body
        # may not be simplified yet, and its call counts are stale.)
        self.matched += 1
        mark = serial_mark()  # the nodes made from here on are new
        self.inlined = False
        result = self._match(node, g, inline=node.inputs[0] is callee)
        if result is not None and result is not node:
            self.replace[node.id] = result
            if self.inlined and not copied and isinstance(result, Apply) and \
                    result.graph is g:
                for new in _made_since(result, g, mark):
                    self.visit(new, g, copied=True)

    def _match(self, node: Apply, g: Graph, inline: bool) -> Node | None:
        ctx, enabled, log = self.ctx, self.enabled, self.log
        p = prim_of(node)
        result: Node | None = None
        if p is not None and allowed(enabled, "cse") and \
                (result := cse(ctx, node)) is not None:
            log.add("cse")
        elif (p is P_FOR_RANGE or p is P_WHILE_LOOP) and allowed(enabled, "unroll_loops") and \
                (done := unroll_loop(ctx, node)) is not None:
            result = self._splice(node, g, *done)
            log.add("unroll_loops")
        elif p is not None:
            for name, fn in RULES.get(p.name, ()):
                if enabled is None or name in enabled:  # (`allowed`, inline: per rule)
                    result = fn(ctx, node)
                    if result is not None:
                        log.add(name)
                        break
            if result is None and allowed(enabled, "constant_fold"):
                result = fold_constants(ctx, node)
                if result is not None:
                    log.add("constant_fold")
        elif allowed(enabled, "select_constants") and \
                (result := select_constants(ctx, node)) is not None:
            log.add("select_constants")
        elif inline and allowed(enabled, "inline"):
            done = inline_call(ctx, node)
            if done is not None:
                result = self._splice(node, g, *done)
                log.add("inline")
        return result

    def _splice(self, node: Apply, g: Graph, result: Node, effects: list[Node]) -> Node:
        """`result`, a body copied in place of `node` (an inlined call, an unrolled loop),
        with `effects`, the copied effects, put where `node`'s were."""
        if node in g.effects or node.id in self.splicing:
            # (A call among the effects an inlining in this sweep made, not yet
            # spliced in: its effects go in its place, in program order.)
            self.spliced[node.id] = effects
            self.splicing.update(e.id for e in effects)
        elif effects:
            # A call kept only for its value (e.g. in tail position): its
            # effects now belong to the caller.
            set_effects(g, g.effects + effects)
            self.touched.add(g.id)
        self.inlined = True
        return result


class _DeadGraphs:
    """Which graphs the sweep has already made unreachable, so that it does not match
    their nodes: most of a nested derivative's first rounds went to the bodies of
    functions whose every call an earlier node of the same sweep had just inlined
    (the copies are matched instead), which the round's end drops. A graph is dead once
    no use of it is left: every node that used it when the round began, and every node
    made or given inputs in the sweep that uses it (`ir/edit.note_graph_uses`), has a
    replacement that does not use it or belongs to a graph found dead; and no graph made
    in the sweep returns it, no replacement or effect spliced in is it. A walk from the
    root through the program as the sweep has left it (outputs, effects, inputs, the
    replacements of the nodes replaced, the effects spliced in) could then not reach it:
    each way there passes through one of those uses. (Not always one the round's end
    drops: in the corpus program `star_call_with_built_tuple` a recursive function and
    its branches skipped this way, as by `main`'s walks, are still reachable after the
    round; the generated code is that of matching every graph.) (Kept up
    to date this way, as the sweep goes, the check reads no schedule and costs a few
    lookups per graph; it replaced such walks, which visited every node.)"""

    def __init__(self, root: Graph, graphs: list[Graph], sweep: _Sweep,
                 made_uses: dict[int, list[Apply]]):
        self.root, self.sweep = root, sweep
        self.made_uses = made_uses  # (the uses made since, growing: note_graph_uses)
        self.returned: set[int] = set()  # (graphs returned, replacing or spliced in)
        self.made_seen = self.replace_seen = self.spliced_seen = 0
        # graph id -> ids of the nodes using it, and ids of the graphs whose output
        # it is (a use no replacement removes)
        self.refs: dict[int, list[int]] = {}
        self.outputs: dict[int, list[int]] = {}
        self.owner: dict[int, int] = {}
        self.nodes: dict[int, int] = {}  # (each graph's own, when the round began)
        for g in graphs:
            out = g.output
            if type(out) is Constant and type(out.value) is Graph:
                self.outputs.setdefault(out.value.id, []).append(g.id)
            body = graph_nodes(g)
            self.nodes[g.id] = len(body)
            for n in body:
                for i in n.inputs:
                    if type(i) is Constant and type(i.value) is Graph:
                        self.refs.setdefault(i.value.id, []).append(n.id)
                        self.owner[n.id] = g.id
        self.dead: set[int] = set()

    def now(self, g: Graph) -> bool:
        """Whether `g` is unreachable from the root as the sweep has left the program."""
        if g is self.root:
            return False
        replace, dead = self.sweep.replace, self.dead
        if any(o not in dead for o in self.outputs.get(g.id, ())):
            return False
        owner = self.owner
        for n in self.refs.get(g.id, ()):
            if owner[n] in dead:
                continue
            r = replace.get(n)
            if r is None or _uses(r, g):
                return False
        self._read_new()
        if g.id in self.returned:
            return False
        for user in self.made_uses.get(g.id, ()):
            if user.graph.id in dead:
                continue
            by = replace.get(user.id)
            if by is None or _uses(by, g):
                return False
        dead.add(g.id)
        return True

    def _read_new(self) -> None:
        """Note the graphs that the graphs made return, and those that replacements and
        effects spliced in are, reading only what is new since the last call."""
        if made_count() != self.made_seen:
            for h in made_graphs(self.made_seen):
                # (A rule builds a graph whole before it returns: its output is final.)
                if type(out := h.output) is Constant and type(out.value) is Graph:
                    self.returned.add(out.value.id)
            self.made_seen = made_count()
        replace, spliced = self.sweep.replace, self.sweep.spliced
        if len(replace) > self.replace_seen:
            for r in itertools.islice(replace.values(), self.replace_seen, None):
                if type(r) is Constant and type(r.value) is Graph:
                    self.returned.add(r.value.id)
            self.replace_seen = len(replace)
        if len(spliced) > self.spliced_seen:
            for effects in itertools.islice(spliced.values(), self.spliced_seen, None):
                self.returned.update(e.value.id for e in effects
                                     if type(e) is Constant and type(e.value) is Graph)
            self.spliced_seen = len(spliced)


def _uses(r: Node, g: Graph) -> bool:
    """Whether the replacement `r` is `g` or uses it (e.g. a branch chosen)."""
    if type(r) is Constant:
        return r.value is g
    return type(r) is Apply and any(
        type(i) is Constant and i.value is g for i in r.inputs)  # (is_constant_graph)


def _made_since(result: Apply, g: Graph, mark: int) -> list[Apply]:
    """The nodes of `g` made after `mark` that `result` depends on, inputs first. None
    where `result` itself is older: a node already matched in this sweep (an inlined
    function that returns a value it captured, e.g. a branch's `return x` of a call
    made before it), which matching again would inline a second time, its effects
    with it."""
    if result.id <= mark:
        return []
    order: list[Apply] = []
    seen: set[int] = set()

    def walk(n: Apply) -> None:
        seen.add(n.id)
        for i in n.inputs:
            if type(i) is Apply and i.graph is g and i.id > mark and i.id not in seen:
                walk(i)
        order.append(n)

    walk(result)
    return order


@dataclass
class Worklist:
    """The nodes the next round matches: those a change can have made match a rule.
    Kinds are inferred afresh each round, so the worklist is matched in rounds too."""
    nodes: set[int]
    calls: dict[int, int]  # graph id -> call sites (2 per use as a value), for the round


WORKLIST_DEPTH = 3  # users of a changed node matched again (rules look this deep)


# Programs smaller than this match every node in every round: making the worklist costs
# more than it saves (measured: the scalar loop's 78 nodes, the MLP's 141).
WORKLIST_MIN_NODES = 300


def _worklist(root: Graph, changed: set[int], mark: int, graphs_changed: set[int],
              calls: dict[int, int]) -> Worklist:
    """The worklist after a round: the nodes made in it (ids above `mark`) or whose
    inputs it changed, with their users to WORKLIST_DEPTH; where a graph changed, the
    nodes that call or pass it (the value they return may have a new kind) and the users
    of its parameters (they may be passed new kinds); where a graph's count of call sites
    changed, its call sites (it may now be inlined)."""
    # (Users from the users index the rounds keep, less the dead nodes it may list.)
    index = nodes.USERS
    assert index is not None, "_worklist outside a keep_users block"
    live: set[int] = set()
    refs: dict[int, list[Apply]] = {}  # graph id -> nodes with the graph as an input
    params: dict[int, list[Parameter]] = {}
    counts: dict[int, int] = {}
    seeds: list[Apply] = []
    for g in reachable_graphs(root):
        params[g.id] = g.parameters
        body = graph_nodes(g)
        live.update([n.id for n in body])
        for n in body:
            if n.id > mark or n.id in changed:
                seeds.append(n)
            inputs = n.inputs
            callee = inputs[0]
            if type(callee) is Constant and type(callee.value) is Graph:  # (is_constant_graph)
                gid = callee.value.id
                refs.setdefault(gid, []).append(n)
                counts[gid] = counts.get(gid, 0) + 1
            for i in inputs[1:]:
                if type(i) is Constant and type(i.value) is Graph:
                    gid = i.value.id
                    refs.setdefault(gid, []).append(n)
                    counts[gid] = counts.get(gid, 0) + 2

    def users(node_id: int) -> list[Apply]:
        found = index.get(node_id)
        return [u for u in found.values() if u.id in live] if found else []

    # The nodes at depth 0: the seeds, the references of the graphs whose count of
    # call sites changed or that changed, and those of every graph holding one of them.
    start: set[int] = set()  # (their ids)
    level: list[Apply] = []
    graphs_done: set[int] = set()

    def add(ns: Iterable[Apply]) -> None:
        for n in ns:
            if n.id not in start:
                start.add(n.id)
                level.append(n)

    add(seeds)
    for gid, c in counts.items():
        if calls.get(gid) != c:
            add(refs.get(gid, ()))
    pending = list(graphs_changed)
    done = 0
    while True:
        pending.extend(n.graph.id for n in level[done:])
        done = len(level)
        if not pending:
            break
        for gid in pending:
            if gid not in graphs_done:
                graphs_done.add(gid)
                add(refs.get(gid, ()))
        pending = []
    # Their users, to WORKLIST_DEPTH (breadth first: each node at its least depth); a
    # node's users include the users of the parameters of the graphs it calls or passes.
    seen = start
    param_users: dict[int, list[Apply]] = {}
    for _ in range(WORKLIST_DEPTH):
        next_level: list[Apply] = []
        for n in level:
            for u in users(n.id):
                if u.id not in seen:
                    seen.add(u.id)
                    next_level.append(u)
            for i in n.inputs:
                if type(i) is Constant and type(i.value) is Graph:
                    gid = i.value.id
                    pu = param_users.get(gid)
                    if pu is None:
                        pu = param_users[gid] = [u for p in params.get(gid, ())
                                                 for u in users(p.id)]
                    for u in pu:
                        if u.id not in seen:
                            seen.add(u.id)
                            next_level.append(u)
        level = next_level
    return Worklist(seen, counts)


def _round(root: Graph, enabled: set[str] | None, log: PassLog, hints: dict,
           work: Worklist | None, carried: list[LoopFacts]
           ) -> tuple[bool, Worklist | None, bool]:
    """One round: match the nodes of `work` (every node if None). Returns whether anything
    changed, the next round's worklist (None: every node) and whether this round matched
    every node. `carried`: facts the last round's loop steps made after their last change
    (the kinds they inferred hold for this round's program, which nothing changed since);
    this round starts from them, and leaves its own there."""
    # (Kinds are inferred afresh each round: a rewrite keeps a value but not always its
    # kind, e.g. the seed np.float64(1.0) becomes 1.0. Keeping them, even exactly and
    # incrementally, was measured and would save little: bench/kind_share.py and
    # docs/design.md, "Optimization".)
    mark = serial_mark()
    graphs = reachable_graphs(root)
    facts = carried.pop() if carried else None
    if facts is None or len(facts.graphs) != len(graphs) or \
            any(g is not h for g, h in zip(facts.graphs, graphs, strict=True)):
        facts = LoopFacts(root, graphs)
    else:
        # (The hints its inductions left, as if this round had inferred them.)
        hints.update(facts.hints)
    facts.hints = hints
    ctx = Context(root, facts=facts, enabled=enabled)
    if work is not None:
        ctx.call_sites = work.calls
    else:
        for g in graphs:
            for n in graph_nodes(g):
                for pos, inp in enumerate(n.inputs):
                    # (`is_constant_graph`, inline: this runs for every input)
                    if type(inp) is Constant and type(inp.value) is Graph:
                        gid = inp.value.id
                        # (2 where used as a value: never "called once")
                        ctx.call_sites[gid] = ctx.call_sites.get(gid, 0) + (2 if pos else 1)
    total = sum(len(graph_nodes(g)) for g in graphs)
    if work is not None and 2 * len(work.nodes) > total:
        # Most nodes are on the worklist: match them all, so that if nothing matches
        # this round confirms the fixed point (no second round over every node).
        work = None
    sweep = _Sweep(ctx, enabled, log, work)
    skipped = 0
    with note_graph_uses() as made_uses:
        dead = _DeadGraphs(root, graphs, sweep, made_uses)
        for g in graphs:
            if dead.now(g):
                skipped += dead.nodes[g.id]
                continue
            for node in graph_nodes(g):
                sweep.visit(node, g)
    log.rounds.append((sweep.matched, total))
    log.skipped.append(skipped)
    replace, spliced, touched = sweep.replace, sweep.spliced, sweep.touched
    changed = bool(replace)
    if allowed(enabled, "drop_pure_effects"):
        for g in graphs:
            kept = [e for e in g.effects
                    if not (pure(e) or idle_loop(e)) or e.id in replace]
            if len(kept) != len(g.effects):
                log.add("drop_pure_effects")
                set_effects(g, kept)
                touched.add(g.id)
                changed = True
    structural = False  # loop rewrites change graphs in place, anywhere
    if not replace and allowed(enabled, "loop_state"):
        assert ctx.facts is not None
        # Not both in one round: pruning copies closures that may hold the loops
        # drop_dead_state renumbers (the copies would keep the old numbering).
        # Each step may enable the next (a slot dropped frees a saved value): steps run
        # until none applies, each on facts about the rebuilt loops (no sweep between).
        facts = ctx.facts
        edited = take_edited() | touched  # (this round's changes too)
        for _ in range(LOOP_STEPS_MAX):
            if not (drop_dead_state(root, facts, replace) or
                    prune_saved(root, facts, replace) or
                    zero_accumulators(root, facts, replace) or
                    count_saved_counters(root, facts, replace) or
                    split_tuple_state(root, facts, replace)):
                break
            log.add("loop_state")
            structural = True
            # (The graphs the step edited, from the journal of edits, and those whose
            # nodes use its replacements.)
            apply_replacements(root, replace, spliced, edited | take_edited(), pure,
                               known=graphs)
            graphs = reachable_graphs(root)
            edited = set()
            replace = {}
            facts = LoopFacts(root)
        if structural:
            hints.clear()  # (loops rebuilt, slots renumbered)
            # (Made after the last change: the next round's program is the one they
            # describe, and the kinds the last steps asked for hold there.)
            if CARRY_FACTS:
                carried.append(facts)
            return True, None, work is None
    # (Branch adjoints edit the branches they rewrite, in place, but leave loops as they
    # are: the next round matches the nodes they made, from a worklist.)
    if not changed and allowed(enabled, "branch_backprops"):  # alone in its round
        if branch_backprops(graphs, uses(graphs), replace, touched):
            log.add("branch_backprops")
            changed = True
    if not changed and allowed(enabled, "dead_branch_items"):  # alone in its round
        if (edited_branches := dead_branch_items(graphs, uses(graphs))) or \
                (edited_branches := single_item_ifs(graphs, uses(graphs), replace)):
            log.add("dead_branch_items", len(edited_branches))
            touched |= edited_branches
            changed = True
    if not changed and allowed(enabled, "unused_parameters"):  # alone in its round
        if (dropped := drop_unused_parameters(root, graphs)):
            log.add("unused_parameters", dropped)
            changed = structural = True
    redirected = sweep.changed
    if replace or touched or structural:
        apply_replacements(root, replace, spliced, None if structural else touched, pure,
                           redirected, known=graphs)
    if structural:
        hints.clear()  # (loops rebuilt, slots renumbered)
        return changed, None, work is None
    if not changed:
        # (Nothing edited: the next round, over every node, or the steps after the
        # rounds, see the program these facts describe.)
        if CARRY_FACTS:
            carried.append(facts)
        return False, None, work is None
    if total < WORKLIST_MIN_NODES:
        return True, None, work is None
    after = _worklist(root, redirected, mark, touched, ctx.call_sites)
    # (An empty worklist: the next round is the one over every node that confirms the
    # fixed point, and runs the whole-program steps a round without rewrites runs.)
    return True, after if after.nodes else None, work is None


def drop_unused_parameters(root: Graph, graphs: list[Graph]) -> int:
    """Remove the parameters of a function that nothing reads, and the arguments its
    calls pass them (a parameter a recursive function only passes on to itself, in the
    same place, counts as unread). Only for functions used by direct calls alone (not
    `root`, not a value that escapes, not a loop body or a branch), with positional
    parameters only. Returns how many parameters were removed."""
    calls: dict[int, list[Apply]] = {}
    escaped: set[int] = {root.id}
    users: dict[int, list[tuple[Apply, int]]] = {}
    for g in graphs:
        if is_constant_graph(g.output):
            escaped.add(g.output.value.id)
        if isinstance(g.output, Parameter):
            escaped.add(-g.output.id)  # (a parameter returned is read)
        for n in graph_nodes(g):
            assert isinstance(n, Apply)
            for pos, i in enumerate(n.inputs):
                if is_constant_graph(i):
                    gid = i.value.id
                    if pos == 0:
                        calls.setdefault(gid, []).append(n)
                    else:
                        escaped.add(gid)
                elif type(i) is Parameter:
                    users.setdefault(i.id, []).append((n, pos))
    removed = 0
    for g in graphs:
        if g.id in escaped or g.id not in calls or g.vararg or any(
                spec.kind != "pos" for spec in g.signature or ()):
            continue
        sites = calls[g.id]
        if any(len(c.inputs) - 1 != len(g.parameters) for c in sites):
            continue
        drop = [i for i, p in enumerate(g.parameters) if -p.id not in escaped and all(
            pos == i + 1 and is_constant_graph(n.inputs[0]) and
            n.inputs[0].value is g
            for n, pos in users.get(p.id, ()))]
        if not drop:
            continue
        for c in sites:
            set_inputs(c, [x for k, x in enumerate(c.inputs) if k - 1 not in drop])
        set_parameters(g, [p for i, p in enumerate(g.parameters) if i not in drop],
                       None if not g.signature else
                       [s for i, s in enumerate(g.signature) if i not in drop])
        removed += len(drop)
    return removed
