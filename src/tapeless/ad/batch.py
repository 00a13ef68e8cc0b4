"""The V transform: vectorizing a graph over a batch (`tl.vmap`), by source transformation.

`V(g)` computes `g` for every element of a batch at once. A batched value has the batch
as its leading axis (a batched number is a 1-D array; a batched tuple, list or record
holds batched leaves). What is batched is known when the code is built: each node's
*batch tree* is `U` (the same for every element: the value as it is), `B` (batched, all
of its leaves) or a `Tup` of trees (a tuple or list display whose items differ). A
primitive whose arguments are all unbatched runs as it is; otherwise its batching rule
(`tapeless.primitives.batch_rules`) is copied in.

Control flow follows the batch:

- an `if` on a batched condition runs each branch under a *mask* (the elements that
  take it), skips a branch no element takes, and selects between the results element by
  element; branches inside see the mask, so a recursion whose depth differs across the
  batch stops when no element needs a deeper call;
- a `while` whose condition is batched runs until no element's holds, keeping the state
  of finished elements as it was;
- a loop or branch on an unbatched condition stays as it is.

Random draws and prints under a batched condition are refused (a loop over the batch
would run them for some elements only). Derivative code that saves values on stacks
(a gradient taken inside the function mapped) is refused under a batched condition: the
backward loop would run the iterations some elements never ran; `tl.vmap(tl.grad(f))`
differentiates the batched program instead (`tapeless.vmap_api`).

Each graph gets one batched version per pattern of batch trees of its arguments (and
whether it runs under a mask), built on demand; a recursive graph's result tree is found
by iterating to a fixed point, as are a loop's state trees. The output is ordinary IR:
the optimizer simplifies it for the batched arguments' kinds, J and F differentiate it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import VmapError
from ..frontend.scopes import ParamSpec
from ..ir.clone import graphs_inside, inline_body
from ..ir.edit import set_input, set_output
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Location,
    Node,
    free_variables,
    graph_nodes,
    is_constant_graph,
    reachable_graphs,
)
from ..primitives import PRIMITIVES, Primitive
from ..primitives.batch_rules import (
    ARRAY_FACTS,
    IN_PLACE,
    MATMUL_LIKE,
    SHAPE_LEVEL,
    STACK_OPS,
    TYPE_LEVEL,
)
from ..primitives.core import COMPARISON_OPERATORS
from ..primitives.rules_core import bind_args
from ..runtime import tree_leaves  # noqa: F401

P = PRIMITIVES

U = "U"
B = "B"
F = "F"  # a function of batched code: `(mask, *args)`, all batched, returning a batched value


# Compaction of masked loops (`VTransform._compacted_trip`): a masked loop at least
# `compact_least()` wide gathers its active elements into narrower arrays where at most
# half of them are still active. Off unless the environment variable
# TAPELESS_VMAP_COMPACT_LEAST gives that width (read when a loop is batched): measured on
# the Newton loops of `bench/bench_vmap.py` it does not pay yet (BENCHMARKS.md).
def compact_least() -> int | None:
    env = os.environ.get("TAPELESS_VMAP_COMPACT_LEAST")
    return int(env) if env else None


# Calls of a function value known at run time only: where the callee is, and where the
# tuples it takes (the arguments, then in forward mode their tangents) begin.
_VALUE_CALLS = {"call_star": (0, 1), "call_value": (1, 2), "call_fwd": (0, 2),
                "call_value_fwd": (1, 3)}


@dataclass(frozen=True)
class Tup:
    """The batch tree of a tuple or list display."""

    items: tuple
    is_list: bool = False


Tree = Any  # U, B or Tup


# How a function is prepared for batching where its arguments' kinds are unknown (a
# `tl.vmap` inside compiled code): set by `tapeless.vmap_api` to the optimizer (its
# derivative code inlined and simplified first), which this layer does not import.
PREPARE: Callable[[Graph], Graph] | None = None


def unbatched(t: Tree) -> bool:
    if isinstance(t, Tup):
        return all(unbatched(i) for i in t.items)
    return bool(t == U)


def join(a: Tree, b: Tree) -> Tree:
    if a == b:
        return a
    if isinstance(a, Tup) and isinstance(b, Tup) and len(a.items) == len(b.items) and \
            a.is_list == b.is_list:
        return Tup(tuple(join(x, y) for x, y in zip(a.items, b.items, strict=True)),
                   a.is_list)
    if unbatched(a) and unbatched(b):
        return U
    return B


def _primitive(node: Node) -> Primitive | None:
    if isinstance(node, Constant) and isinstance(node.value, Primitive):
        return node.value
    return None


def per_element_effect(prim: Primitive) -> bool:
    """Whether a primitive must run once per element even on unbatched arguments (a
    random draw, a print: what a loop over the batch does)."""
    from ..primitives.batch_rules import ALWAYS_PER_ELEMENT

    return prim.name in ALWAYS_PER_ELEMENT


class Pending:
    """A `switch` between two branches, batched where it is called."""

    def __init__(self, node: Apply):
        self.node = node


class BatchedRange:
    """A `range` whose bounds differ across the batch, kept as its bounds (batched ints)
    and length while only these are read (`for i in range(n): ... break` is a while loop
    over `len(r)` reading `r[k]`); any other use makes the range objects, per element."""

    def __init__(self, node: Apply, bounds: list[Node], length: Node):
        self.node = node
        self.bounds = bounds
        self.length = length
        self.objects: Node | None = None


def _with_defaults(h: Graph, args: list[Node]) -> list[Node]:
    """The arguments of a direct call of `h` (which the optimizer may make of a call of a
    value, as Python calls it), with the defaults of the positions not passed."""
    missing = len(h.parameters) - len(args)
    specs = h.signature or []
    if missing <= 0 or h.vararg or len(specs) != len(h.parameters):
        return args
    tail = [s.default for s in specs[len(args):]]
    return args + tail if all(isinstance(d, Constant) for d in tail) else args


class Inst:
    """One batched version of a graph: its graph, the instance it nests in, the batch
    size and mask nodes, and what each node of the original became."""

    def __init__(self, g: Graph, vg: Graph, parent: Inst | None, size: Node,
                 mask: Node | None):
        self.g = g
        self.vg = vg
        self.parent = parent
        self.size = size
        self.mask = mask
        self.values: dict[int, tuple[Any, Tree]] = {}
        self.out_tree: Tree = None
        self.assumed: Tree = None  # (the result tree its recursive calls assume)
        self.assumed_used = False
        self.done = False
        self.caller: Inst | None = None


class VTransform:
    def __init__(self, outer: dict[int, Node] | None = None,
                 example_ndim: Callable[[Node], int | None] | None = None,
                 derivative: bool = False,
                 example_items: Callable[[Node], int | None] | None = None) -> None:
        """`outer`: values of the code around the function batched (a `tl.vmap` called
        inside compiled code: the free variables of the function mapped), unbatched.
        `example_ndim`: the number of axes of an original node's value, where the
        examples' kinds are known (`tapeless.vmap_api`), else None; `example_items`,
        likewise, the number of items of an original node's value where it is known to
        be a tuple (exactly `tuple`). `derivative`: the function is reverse-mode
        derivative code (`vmap(grad(f))`)."""
        self.outer = dict(outer or {})
        self.example_ndim = example_ndim
        self.example_items = example_items
        self.derivative = derivative
        self.memo: dict[tuple, Inst] = {}
        self._rules: dict[Any, Graph] = {}
        # (loop state whose examples' number of axes is assumed while batching a loop
        # whose condition differs across the batch: see `_assume_state`)
        self._assumed: dict[int, int] = {}
        # Loop state parameters of a variable first bound in the loop: a placeholder
        # (`UNBOUND`) until a trip binds it, which a select takes the other side of.
        self._placeholders: set[int] = set()
        self._bool_state: set[int] = set()  # (likewise, loop state that stays a bool)

    # --- entry ----------------------------------------------------------------------

    def root(self, g: Graph, trees: list[Tree], parent: Graph | None = None) -> Graph:
        """V of `g` as a function `(batch_size, *args)`, its arguments batched as `trees`
        say (batch axis first) and its result batched entirely (nested in `parent`)."""
        vg = Graph(f"vmap_{g.name}", parent, g.loc)
        size = vg.add_parameter("batch_size")
        inst = Inst(g, vg, None, size, None)
        for p, t in zip(g.parameters, trees, strict=True):
            inst.values[p.id] = (vg.add_parameter(p.name, p.loc), t)
        self._body(inst)
        out, t = self.lookup(g.output, inst, g.loc)
        vg.output = self.materialize(out, t, B, inst)
        return vg

    # --- graphs ---------------------------------------------------------------------

    def _body(self, inst: Inst) -> None:
        g = inst.g
        effect_ids = {e.id for e in g.effects}
        for node in graph_nodes(g):
            made = self._node(node, inst)
            if node.id in effect_ids:
                inst.vg.effects.extend(made)

    def _find(self, owner: Graph | None, inst: Inst | None) -> Inst | None:
        """The instance of `owner` that `inst` sees: in its scope, else in the scope of
        whoever called it (a derivative's graphs read the values of the code they were
        made from)."""
        start = inst
        while inst is not None and inst.g is not owner:
            inst = inst.parent
        if inst is None and start is not None and start.caller is not None:
            return self._find(owner, start.caller)
        return inst

    def lookup(self, node: Node | None, inst: Inst, loc: Location | None = None
               ) -> tuple[Node, Tree]:
        if node is None:
            return Constant(None), U
        if isinstance(node, Constant):
            if isinstance(node.value, Graph):
                return self.boxed(node.value, inst, loc), F
            return node, U
        if node.id in self.outer:
            return self.outer[node.id], U
        owner = self._find(node.graph, inst)
        if owner is None or node.id not in owner.values:
            raise VmapError(f"internal error: {node!r} used before it was batched", loc)
        value, tree = owner.values[node.id]
        if isinstance(value, Pending):
            return self._switch_value(value, owner, loc)
        if isinstance(value, BatchedRange):
            if value.objects is None:
                r = value.node
                vals, trees = self._args(r.inputs[1:], owner, r.loc)
                value.objects = self._per_element_call(P["range"], list(r.inputs[1:]), vals,
                                                       trees, owner, r.loc)
            return value.objects, B
        return value, tree

    def materialize(self, node: Node, tree: Tree, want: Tree, inst: Inst) -> Node:
        """`node` (batched as `tree`) batched as `want` (at least as batched)."""
        if tree == want or unbatched(want):
            return node
        if tree == F:
            # (a function of batched code where a batched value is wanted, as in a tuple
            # saved on a derivative loop's stack: marked, so that a call of it runs it
            # once on the whole batch)
            return self._helper("batched_code", inst, [node])
        vg = inst.vg
        if isinstance(want, Tup):
            if not isinstance(tree, Tup):  # (a tuple batched entirely, or not at all)
                items: list[Node] = [vg.apply(P["tuple_getitem"], node, j)
                                     for j in range(len(want.items))]
                trees = [tree] * len(want.items)
            else:
                items = [vg.apply(P["tuple_getitem"], node, j) for j in range(len(want.items))]
                trees = list(tree.items)
            parts = [self.materialize(x, t, w, inst)
                     for x, t, w in zip(items, trees, want.items, strict=True)]
            return vg.apply(P["make_list" if want.is_list else "make_tuple"], *parts)
        # want is B
        if isinstance(tree, Tup):
            if isinstance(node, Apply) and _primitive(node.inputs[0]) in (
                    P["make_tuple"], P["make_list"]) and len(node.inputs) == len(tree.items) + 1:
                items = list(node.inputs[1:])
            else:
                items = [vg.apply(P["tuple_getitem"], node, j) for j in range(len(tree.items))]
            parts = [self.materialize(x, t, B, inst)
                     for x, t in zip(items, tree.items, strict=True)]
            return vg.apply(P["make_list" if tree.is_list else "make_tuple"], *parts)
        if isinstance(node, Constant) and type(node.value) in (bool, int, float):
            # (a number: the array of it; NumPy's dtype for a Python number)
            return vg.apply(P["np.full"], inst.size, node, Constant(None))
        return self._helper("broadcast", inst, [inst.size, node])

    def _helper(self, name: str, inst: Inst, args: list[Node],
                loc: Location | None = None) -> Node:
        from ..primitives import batch_rules

        out, _ = self._inline(getattr(batch_rules, name), inst, args, loc)
        return out

    def _inline(self, fn: Any, inst: Inst, args: list[Node], loc: Location | None
                ) -> tuple[Node, list[Node]]:
        """Copy a rule or helper of `batch_rules` in, its `*args` packed."""
        g = self._parsed(fn)
        if g.vararg:
            fixed = len(g.parameters) - 1
            args = [*args[:fixed], inst.vg.apply(P["make_tuple"], *args[fixed:])]
        return inline_body(g, inst.vg, args, loc=loc)

    def _prim_graph(self, prim: Primitive, n: int,
                    fixed: dict[int, Constant] | None = None) -> Graph:
        """A function of `n` arguments calling `prim` (for rules that call it through a
        value: spelled by the backend like any call of it); with `fixed`, the arguments
        at those positions are the call's constants, not parameters (so that the call is
        spelled as written: a default left out, `np.r_` for its axis)."""
        key = ("prim", prim.name, n)
        if fixed or key not in self._rules:
            fixed = fixed or {}
            g = Graph(prim.name.replace(".", "_"), None, None)
            ins: list[Node] = [fixed[j] if j in fixed else g.add_parameter(f"a{j}")
                               for j in range(n)]
            call = g.apply(Constant(prim), *ins)
            g.effects = [call] if prim.effect or prim.statement else []
            g.output = Constant(None) if prim.statement else call
            if not fixed:
                self._rules[key] = g
            return g
        return self._rules[key]

    def _per_element_call(self, prim: Primitive, args: list[Node], vals: list[Node],
                          trees: list[Tree], inst: Inst, loc: Location | None) -> Node:
        """`prim` run once per element, its constant arguments written into the call."""
        fixed = {j: a for j, a in enumerate(args) if isinstance(a, Constant)}
        keep = [j for j in range(len(vals)) if j not in fixed]
        return self._per_element(Constant(self._prim_graph(prim, len(vals), fixed)),
                                 [vals[j] for j in keep], [trees[j] for j in keep], inst, loc)

    def _parsed(self, fn: Any) -> Graph:
        from ..frontend.parser import parse

        if fn not in self._rules:
            g = parse(fn)
            self._rules[fn] = g
        return self._rules[fn]

    # --- calls of graphs ------------------------------------------------------------

    def instance(self, h: Graph, trees: list[Tree], inst: Inst, loc: Location | None,
                 masked: bool) -> Inst:
        """The batched version of `h` for arguments batched as `trees`."""
        parent = self._find(h.parent, inst) if h.parent is not None else None
        if parent is None:
            # (No enclosing graph, or one the optimizer inlined away: where the values
            # it reads are.)
            parent = self._scope_of(h, inst)
        if parent is None and any(fv.id not in self.outer for fv in free_variables(h)):
            # (Where it reads only values from outside the batched code, unbatched, as
            # the stand-in of a `tl.grad` of a closure inside the batched function does,
            # it is batched as a graph of its own.)
            raise VmapError(f"vmap cannot call {h.name} here (outside its scope)", loc)
        key = (h.id, tuple(trees), masked, id(parent))
        found = self.memo.get(key)
        if found is not None:
            if not found.done:
                if found.assumed is None:
                    found.assumed = U
                found.assumed_used = True
            return found
        assumed: Tree = None
        before = set(self.memo)
        while True:
            made = self._build(h, trees, parent, inst, masked, assumed, key)
            if not made.assumed_used or join(made.assumed, made.out_tree) == made.assumed:
                if made.assumed_used:
                    assert made.vg.output is not None
                    made.vg.output = self.materialize(made.vg.output, made.out_tree,
                                                      made.assumed, made)
                    made.out_tree = made.assumed
                made.done = True
                return made
            assumed = join(made.assumed, made.out_tree)
            # (What was built for the wrong result tree is built again: a mutual
            # recursion's other graph assumed it.)
            for stale in set(self.memo) - before:
                del self.memo[stale]

    def _scope_of(self, h: Graph, inst: Inst) -> Inst | None:
        """Where a graph without a parent that reads values of other graphs (a
        derivative's) nests: the innermost instance among their owners'."""
        best: Inst | None = None
        depth = -1
        for fv in free_variables(h):
            if fv.graph is None or fv.id in self.outer:
                continue
            found = self._find(fv.graph, inst)
            if found is None:
                continue
            d, i = 0, found
            while i.parent is not None:
                d, i = d + 1, i.parent
            if d > depth:
                best, depth = found, d
        return best

    def _build(self, h: Graph, trees: list[Tree], parent: Inst | None, caller: Inst,
               masked: bool, assumed: Tree, key: tuple) -> Inst:
        vh = Graph(f"vmap_{h.name}", parent.vg if parent is not None else None, h.loc)
        # (A top-level graph takes the batch size; a closure sees its scope's.)
        size: Node = parent.size if parent is not None else vh.add_parameter("batch_size")
        mask = vh.add_parameter("mask") if masked else None
        made = Inst(h, vh, parent, size, mask)
        made.caller = caller
        made.assumed = assumed
        if assumed is not None:
            made.assumed_used = True
        self.memo[key] = made
        self._fill(made, trees)
        return made

    def _fill(self, made: Inst, trees: list[Tree], known: dict[int, Node] | None = None
              ) -> None:
        """Batch `made.g`'s body into `made.vg`, its parameters batched as `trees` (those
        at the positions `known` gives, its value, the same for every call: the
        parameter is kept, unread)."""
        g, vg = made.g, made.vg
        for j, (p, t) in enumerate(zip(g.parameters, trees, strict=True)):
            param = vg.add_parameter(p.name, p.loc)
            made.values[p.id] = (known[j], U) if known and j in known else (param, t)
        self._body(made)
        out, t = self.lookup(g.output, made, g.loc)
        vg.output = out
        made.out_tree = t

    def boxed(self, h: Graph, inst: Inst, loc: Location | None) -> Node:
        """A graph used as a value: a function of `(mask, *args)`, all batched, whose
        result is batched (how batched code calls a function it knows only at run
        time)."""
        specs = h.signature or []
        defaults = [s.default for s in specs if s.default is not None]
        star = h.vararg
        kinds = [s.kind for s in specs] if specs else \
            ["pos"] * (len(h.parameters) - int(star)) + ["vararg"] * int(star)
        if star:  # (the last parameter takes the rest)
            kinds = kinds[:-1] if kinds[-1:] == ["vararg"] else ["kwonly"]
        if any(k != "pos" for k in kinds) or \
                not all(isinstance(d, Constant) for d in defaults):
            raise VmapError(f"vmap does not support passing {h.name}, which has "
                            "keyword-only parameters or defaults computed at run time, as "
                            "a value yet; call it directly or wrap it in a lambda",
                            loc or h.loc)
        made = self.instance(h, [B] * len(h.parameters), inst, loc, True)
        # (a recursive graph passed as a value inside its own body is not done: the
        # result tree its recursive calls assume, checked when it is)
        out_tree = made.out_tree if made.done else made.assumed
        if out_tree == B and made.parent is not None and not defaults and not star:
            return Constant(made.vg, loc)
        w = Graph(f"{made.vg.name}_value", inst.vg, h.loc)
        if defaults or star:
            # `(mask, *args)`: the defaults of the positions not passed filled in, each
            # the same for every element, the rest packed for `*args` (`bind_args`, as
            # Python binds them).
            mask = w.add_parameter("mask")
            args = w.add_parameter("args")
            w.vararg = True
            w.signature = [ParamSpec("mask", "pos"), ParamSpec("args", "vararg")]
            wi = Inst(h, w, inst, inst.size, mask)
            filled = w.apply(P["make_tuple"], *[self.materialize(d, U, B, wi)
                                                for d in defaults])
            npos = len(h.parameters) - int(star)
            bound, _ = self._inline(bind_args, wi, [Constant(h.name), args, Constant(npos),
                                                    filled, Constant(star), Constant(())],
                                    loc)
            ps: list[Node] = [w.apply(P["tuple_getitem"], bound, i)
                              for i in range(len(h.parameters))]
        else:
            params = [w.add_parameter(p.name) for p in h.parameters]
            mask = w.add_parameter("mask")
            w.parameters = [mask, *params]
            ps = list(params)
            wi = Inst(h, w, inst, inst.size, mask)
        call = w.apply(Constant(made.vg), *([inst.size] if made.parent is None else []),
                       mask, *ps)
        w.effects = [call]
        w.output = self.materialize(call, out_tree, B, wi)
        return Constant(w, loc)

    # --- nodes ----------------------------------------------------------------------

    def _node(self, node: Apply, inst: Inst) -> list[Node]:
        from ..primitives import batch_rules

        callee, args = node.inputs[0], node.inputs[1:]
        prim = _primitive(callee)
        if prim is not None:
            if prim.name == "switch":
                return self._switch(node, inst)
            lifted = self._lifted_graph(prim, args)
            if lifted is not None:
                inst.values[node.id] = self.lookup(Constant(lifted, node.loc), inst, node.loc)
                return []
            if prim.loop:
                return self._loop(node, prim, inst)
            return self._primitive_call(node, prim, inst)
        vg = inst.vg
        loc = node.loc
        if is_constant_graph(callee):
            h = callee.value
            args = _with_defaults(h, list(args))
            vals, trees = self._args(args, inst, loc)
            masked = inst.mask is not None
            made = self.instance(h, trees, inst, loc, masked)
            call = vg.apply(Constant(made.vg), *([inst.size] if made.parent is None
                                                 else []),
                            *([inst.mask] if masked else []), *vals, loc=loc,
                            name=node.name)
            inst.values[node.id] = (call, made.out_tree if made.done else made.assumed)
            return [call]
        owner = self._find(callee.graph, inst) if isinstance(callee, Apply) else None
        if owner is not None and isinstance(owner.values.get(callee.id, (None,))[0], Pending):
            return self._branches(owner.values[callee.id][0], node, inst)
        fn, ftree = self.lookup(callee, inst, loc)
        vals, trees = self._args(args, inst, loc)
        if unbatched(ftree):
            if all(unbatched(t) for t in trees):
                call = vg.apply(fn, *vals, loc=loc, name=node.name)
                inst.values[node.id] = (call, U)
                return [call]
            per = self._per_element(fn, vals, trees, inst, loc)
            inst.values[node.id] = (per, B)
            return [per]
        if ftree == F:  # (a function of batched code)
            mask = inst.mask if inst.mask is not None else self._ones(inst)
            call = vg.apply(fn, mask, *[self.materialize(v, t, B, inst)
                                        for v, t in zip(vals, trees, strict=True)],
                            loc=loc, name=node.name)
            inst.values[node.id] = (call, B)
            return [call]
        # (One function per element: a callable object with batched fields, or what a
        # per-element call returned, such as a derivative's backpropagators.)
        flags = tuple(not unbatched(t) for t in trees)
        vals = [self.materialize(v, t, B, inst) if f else v
                for v, t, f in zip(vals, trees, flags, strict=True)]
        mask = inst.mask if inst.mask is not None else Constant(None)
        each, effects = self._inline(batch_rules.call_each, inst,
                                     [fn, inst.size, Constant(flags), mask, *vals], loc)
        inst.values[node.id] = (each, B)
        return effects or [each]

    def _map(self, node: Apply, prim: Primitive, h: Graph, inst: Inst) -> list[Node]:
        """A comprehension: its body batched for the sequence's items (a batched array's
        items are its rows, per example)."""
        vg, loc = inst.vg, node.loc
        seq, stree = self.lookup(node.inputs[2], inst, loc)
        masked = inst.mask is not None
        made = self.instance(h, [U if unbatched(stree) else B], inst, loc, masked)
        if not masked and unbatched(stree) and unbatched(made.out_tree):
            fn = Constant(made.vg)
            if made.parent is None:  # (a graph of its own takes the batch size first)
                each = Graph(f"{made.vg.name}_item", vg, loc)
                each.output = each.apply(fn, inst.size, each.add_parameter("item"), loc=loc)
                each.effects = [each.output]
                fn = Constant(each)
            out = vg.apply(node.inputs[0], fn, seq, loc=loc, name=node.name)
            inst.values[node.id] = (out, U)
            return [out]
        w = Graph(f"{made.vg.name}_item", vg, loc)
        x = w.add_parameter("item")
        wi = Inst(h, w, inst, inst.size, inst.mask)
        call = w.apply(Constant(made.vg), *([inst.size] if made.parent is None else []),
                       *([inst.mask] if masked else []), x, loc=loc)
        w.effects = [call]
        w.output = self.materialize(call, made.out_tree if made.done else made.assumed, B,
                                    wi)
        items = seq if unbatched(stree) else self._helper("rows", inst, [seq])
        out = vg.apply(node.inputs[0], Constant(w), items, loc=loc, name=node.name)
        inst.values[node.id] = (out, B)
        return [out]

    @staticmethod
    def _any(g: Graph, mask: Node) -> Node:
        """Whether any element of a mask holds, as a masked loop or branch asks each
        time: `np.count_nonzero` (a count of a boolean array, about 1 µs on 1,000
        elements, where `mask.any()`'s reduction costs 3 µs: one trip of a Newton step
        on 1,000 elements is about 15 µs)."""
        return g.apply(P["np.count_nonzero"], mask, Constant(None))

    def _ones(self, inst: Inst) -> Node:
        return inst.vg.apply(P["np.ones"], inst.size, Constant(bool))

    @staticmethod
    def _lifted_graph(prim: Primitive, args: list[Node]) -> Graph | None:
        """`lift(f)` or `lift_fwd(f)` of a function `f` of the mapped code that closes over
        nothing (a global function passed along): its J- or F-callable, a graph known
        here (so batched like `f` would be), where the run-time helper would make it."""
        if prim.name not in ("lift", "lift_fwd") or not is_constant_graph(args[0]) or \
                free_variables(args[0].value):
            return None
        from .forward import FTransform
        from .reverse import JTransform

        h = args[0].value
        return JTransform().graph_value(h) if prim.name == "lift" else \
            FTransform().graph_value(h)

    def _args(self, args: list[Node], inst: Inst, loc: Location | None
              ) -> tuple[list[Node], list[Tree]]:
        pairs = [self.lookup(a, inst, loc) for a in args]
        return [v for v, _ in pairs], [t for _, t in pairs]

    def _per_element(self, fn: Node, vals: list[Node], trees: list[Tree], inst: Inst,
                     loc: Location | None) -> Node:
        from ..primitives import batch_rules

        flags = tuple(not unbatched(t) for t in trees)
        vals = [self.materialize(v, t, B, inst) if f else v
                for v, t, f in zip(vals, trees, flags, strict=True)]
        if inst.mask is not None:
            # (Only the elements under the mask: the others' values are never used, and
            # may be out of the function's domain: the index one past a loop's end.)
            out, _ = self._inline(batch_rules.per_active_element, inst,
                                  [fn, inst.size, Constant(flags), inst.mask, *vals], loc)
            return out
        out, _ = self._inline(batch_rules.per_element, inst,
                              [fn, inst.size, Constant(flags), *vals], loc)
        return out

    def _primitive_call(self, node: Apply, prim: Primitive, inst: Inst) -> list[Node]:
        from ..primitives import batch_rules

        vg, loc = inst.vg, node.loc
        args = node.inputs[1:]
        name = prim.name
        if name in ("list_map", "list_flatmap") and is_constant_graph(args[0]) and \
                len(args[0].value.parameters) == 1:
            return self._map(node, prim, args[0].value, inst)
        if name == "range" or name in ("len", "getitem"):  # (making a range; reading one)
            ranged = self._range_call(node, name, inst)
            if ranged is not None:
                return ranged
        vals, trees = self._args(args, inst, loc)
        forced = per_element_effect(prim)
        if forced and inst.mask is not None:
            raise VmapError(f"vmap: {name} under a condition that differs across the batch "
                            "(a loop over the batch would run it for some elements only); "
                            "move it out of the branch or loop, or draw for every element "
                            "before the branch", loc)
        if name in STACK_OPS:
            if inst.mask is not None and name in ("stack_push", "stack_pop"):
                raise VmapError("vmap of derivative code under a condition that differs "
                                "across the batch: take the derivative of the batched "
                                "function instead (tl.grad of a function that calls "
                                "tl.vmap)", loc)
            if name == "stack_push":
                vals[1] = self.materialize(vals[1], trees[1], B, inst)
            made = vg.apply(node.inputs[0], *vals, loc=loc, name=node.name)
            inst.values[node.id] = (made, U if name == "stack_nonempty" else B)
            return [made]
        if all(unbatched(t) for t in trees) and not forced:
            made = vg.apply(node.inputs[0], *vals, loc=loc, name=node.name)
            tree: Tree = U
            if name in ("make_tuple", "make_list"):
                tree = Tup(tuple(trees), name == "make_list")
                tree = U if unbatched(tree) else tree
            inst.values[node.id] = (made, tree)
            return [made]
        if name in IN_PLACE and unbatched(trees[0]):
            vals[0] = self._helper("broadcast_copy", inst, [inst.size, vals[0]])
            trees[0] = B
        # --- structural
        if name in ("make_tuple", "make_list"):
            made = vg.apply(node.inputs[0], *vals, loc=loc, name=node.name)
            inst.values[node.id] = (made, Tup(tuple(trees), name == "make_list"))
            return [made]
        if name == "tuple_getitem" or (name == "getitem" and isinstance(trees[0], Tup) and
                                       isinstance(args[1], Constant) and
                                       isinstance(args[1].value, int)):
            t0, index = trees[0], args[1]
            if t0 == B and unbatched(trees[1]):
                # (`a, b = x` of a batched array takes each example's items: along the
                # axis after the batch's; a batched tuple or list holds batched items)
                item = self._helper("batched_item", inst, vals, loc)
                inst.values[node.id] = (item, B)
                return [item]
            made = vg.apply(node.inputs[0], *vals, loc=loc, name=node.name)
            if isinstance(t0, Tup) and isinstance(index, Constant):
                n = len(t0.items)
                # (an index past the tuple's end raises where it runs, as the example's
                # would: code no element reaches, as a branch on the number of items)
                tree = t0.items[index.value] if -n <= index.value < n else B
            else:
                tree = t0
            inst.values[node.id] = (made, tree)
            return [made]
        if name in ("list_append", "list_extend"):
            items = [self.materialize(v, t, B, inst) for v, t in zip(vals, trees, strict=True)]
            made = vg.apply(node.inputs[0], *items, loc=loc, name=node.name)
            inst.values[node.id] = (made, B)
            return [made]
        if name in ("is_", "is_not"):
            # (Identity: batched values are the same object where the examples' are.)
            made = vg.apply(node.inputs[0], *vals, loc=loc, name=node.name)
            inst.values[node.id] = (made, U)
            return [made]
        if name in TYPE_LEVEL or (name == "getattr" and isinstance(args[1], Constant) and
                                   args[1].value in ARRAY_FACTS and not unbatched(trees[0])) \
                or (name in SHAPE_LEVEL and all(unbatched(t) for t in trees[1:])):
            firsts = [self._helper("first_of", inst, [inst.size, self.materialize(
                v, t, B, inst)]) if not unbatched(t) and t != F else v
                for v, t in zip(vals, trees, strict=True)]
            made = vg.apply(node.inputs[0], *firsts, loc=loc, name=node.name)
            inst.values[node.id] = (made, U)
            return [made]
        # (`f(*args)`, f of batched code; in derivative code, `call_value` of f: a
        # function of generated code is called as it is.)
        # (In forward mode, `call_fwd` and `call_value_fwd` of f: an F-callable, called
        # with the arguments, then their tangents.)
        at, first = _VALUE_CALLS.get(name, (None, 0))
        if at is not None and trees[at] == F:
            mask = inst.mask if inst.mask is not None else self._ones(inst)
            packed = [self.materialize(v, t, B, inst)
                      for v, t in zip(vals[first:], trees[first:], strict=True)]
            whole = packed[0] if len(packed) == 1 else vg.apply(P["add"], *packed, loc=loc)
            out, effects = self._inline(batch_rules.call_star_batched, inst,
                                        [vals[at], mask, whole], loc)
            inst.values[node.id] = (out, B)
            return effects or [out]
        if at is not None and not unbatched(trees[at]):
            # (A batched callee: functions of batched code held in a batched value, as a
            # list of functions made in the mapped code, run once on the whole batch.)
            flags = tuple(not unbatched(t) for t in trees)
            vals = [self.materialize(v, t, B, inst) if f else v
                    for v, t, f in zip(vals, trees, flags, strict=True)]
            mask = inst.mask if inst.mask is not None else Constant(None)
            out, effects = self._inline(batch_rules.call_value_each, inst, [
                Constant(self._prim_graph(prim, len(vals))), Constant(at), Constant(first),
                inst.size, Constant(flags), mask, *vals], loc)
            inst.values[node.id] = (out, B)
            return effects or [out]
        if name == "sens_of" and trees[1] == F:
            # (a function's zero is ZERO: `sens_of(d, f)` is `d`; forward mode writes it
            # where a tangent, ZERO once optimized, meets a function parameter)
            inst.values[node.id] = (vals[0], trees[0])
            return []
        if F in trees:
            raise VmapError(f"vmap: passing a function made in the mapped code to {name} "
                            "is not supported yet; call the function directly", loc)
        if name == "getitem" and _integer_index(args[1], trees[1]):
            # (an index that differs across the batch: a gather, `batch_rules.gather`)
            mask = inst.mask if inst.mask is not None else Constant(None)
            flags = (not unbatched(trees[0]), True)
            x = self.materialize(vals[0], trees[0], B, inst) if flags[0] else vals[0]
            index = self.materialize(vals[1], trees[1], B, inst)
            out, _ = self._inline(batch_rules.gather, inst,
                                  [inst.size, Constant(flags), mask, x, index], loc)
            inst.values[node.id] = (out, B)
            return [out]
        # --- what the examples' shapes decide, where they are known
        fast = self._static(node, prim, vals, trees, inst)
        if fast is not None:
            inst.values[node.id] = (fast, B)
            return [fast]
        # --- a rule
        entry = batch_rules.BATCH.get(name)
        if entry is None and prim.alias:
            entry = batch_rules.BATCH.get(prim.alias)
        if entry is None:
            raise VmapError(f"vmap: no batching rule for {name}", loc)
        rule, callee, when = entry
        if rule is batch_rules.per_element:
            call = self._per_element_call(prim, list(args), vals, trees, inst, loc)
            inst.values[node.id] = (call, B)
            return [call]
        plain_vals, plain_trees = vals, trees
        if prim.variadic:
            fixed = len(prim.param_names) - 1
            rest_b = any(not unbatched(t) for t in trees[fixed:])
            rest = [self.materialize(v, t, B, inst) if rest_b else v
                    for v, t in zip(vals[fixed:], trees[fixed:], strict=True)]
            vals = vals[:fixed] + [vg.apply(P["make_tuple"], *rest)]
            trees = trees[:fixed] + [B if rest_b else U]
        flags = tuple(not unbatched(t) for t in trees)
        if when is not None and not when(flags):
            call = self._per_element_call(prim, list(args), plain_vals, plain_trees, inst,
                                          loc)
            inst.values[node.id] = (call, B)
            return [call]
        vals = [self.materialize(v, t, B, inst) if f else v
                for v, t, f in zip(vals, trees, flags, strict=True)]
        if rule is batch_rules.elementwise:
            inst.values[node.id] = (self._elementwise(callee, vals, flags, inst, node), B)
            return [inst.values[node.id][0]]
        lead = [Constant(self._prim_graph(callee, len(vals)))] if callee is not None else []
        out, effects = self._inline(rule, inst, [*lead, inst.size, Constant(flags), *vals],
                                    loc)
        inst.values[node.id] = (out, B)
        return effects or [out]

    def _range_call(self, node: Apply, name: str, inst: Inst) -> list[Node] | None:
        """`range(...)` of bounds that differ across the batch, kept as a `BatchedRange`;
        `len` of it and an item of it, computed from its bounds. None: another case."""
        args, loc, mask = node.inputs[1:], node.loc, inst.mask or Constant(None)
        if name == "range":
            # (its arguments packed in a tuple display, as a variadic primitive's are)
            packed = args[0] if len(args) == 1 else None
            if not isinstance(packed, Apply) or _primitive(packed.inputs[0]) is not \
                    P["make_tuple"]:
                return None
            vals, trees = self._args(list(packed.inputs[1:]), inst, loc)
            if all(unbatched(t) for t in trees) or any(t != U and t != B for t in trees) \
                    or not 1 <= len(vals) <= 3:
                return None
            full = [Constant(0), *vals, Constant(1)] if len(vals) == 1 else \
                [*vals, Constant(1)] if len(vals) == 2 else vals
            kinds = [U, *trees, U] if len(vals) == 1 else [*trees, U][:3]
            bounds = [self.materialize(v, t, B, inst) for v, t in zip(full, kinds, strict=True)]
            length = self._helper("range_length", inst, [mask, *bounds], loc)
            inst.values[node.id] = (BatchedRange(node, bounds, length), B)
            return [length]
        r = args[0]
        owner = self._find(r.graph, inst) if isinstance(r, Apply) else None
        kept = owner.values.get(r.id, (None,))[0] if owner is not None else None
        if not isinstance(kept, BatchedRange):
            return None
        if name == "len":
            inst.values[node.id] = (kept.length, B)
            return [kept.length]
        index, tree = self.lookup(args[1], inst, loc)
        if tree != U and tree != B:
            return None
        item = self._helper("range_item", inst, [mask, *kept.bounds, kept.length, index], loc)
        inst.values[node.id] = (item, B)
        return [item]

    def ndim(self, node: Node, depth: int = 0) -> int | None:
        """The number of axes of each example of an original node's value, where known
        (a number's is 0): from kind inference, else (a bool, which has no kind) from
        the node itself: an elementwise primitive's broadcast of its arguments, a branch
        both of whose sides agree, loop state assumed (`_assume_state`)."""
        if isinstance(node, Constant):
            v = node.value
            return int(np.ndim(v)) if isinstance(v, (bool, int, float, np.ndarray,
                                                     np.generic)) else None
        if self.example_ndim is None:
            return None
        known = self.example_ndim(node)
        if known is not None or depth > 12:
            return known
        if node.id in self._assumed:
            return self._assumed[node.id]
        if not isinstance(node, Apply):
            return None
        prim = _primitive(node.inputs[0])
        if prim is not None:
            if prim.name in ("truth", "not_"):
                return 0
            if prim.elementwise or prim.name in COMPARISON_OPERATORS:
                # (`n >= 40` of an int: a bool, which has no kind; of arrays, their
                # broadcast; of other values, whose numbers of axes are not known: none)
                nds = [self.ndim(a, depth + 1) for a in node.inputs[1:]]
                given = [n for n in nds if n is not None]
                return max(given) if given and len(given) == len(nds) else None
            if prim.name == "tuple_getitem" and isinstance(node.inputs[1], Apply) and \
                    isinstance(node.inputs[2], Constant) and isinstance(node.inputs[2].value, int):
                outs = self._branch_outputs(node.inputs[1])
                k = node.inputs[2].value
                items = [_tuple_item(o, k) for o in outs]
                return self._agreed(items, depth)
            return None
        return self._agreed(self._branch_outputs(node), depth)

    def _branch_outputs(self, call: Apply) -> list[Node | None]:
        """The outputs of the branches a call of a `switch` between two graphs runs (or
        of the graph called), else []."""
        callee = call.inputs[0]
        if is_constant_graph(callee):
            return [callee.value.output]
        if isinstance(callee, Apply) and _primitive(callee.inputs[0]) is P["switch"] and \
                len(call.inputs) == 1 and all(is_constant_graph(b) for b in callee.inputs[2:]):
            return [b.value.output for b in callee.inputs[2:]
                    if isinstance(b, Constant)]
        return []

    def _agreed(self, nodes: list[Node | None], depth: int) -> int | None:
        nds = [self.ndim(n, depth + 1) if n is not None else None for n in nodes]
        if not nds or any(n is None for n in nds) or len(set(nds)) != 1:
            return None
        return nds[0]

    def item_ndim(self, node: Node | None, k: int, depth: int = 0) -> int | None:
        """`ndim` of item `k` of a tuple `node` (a display, or the result of a branch or
        graph that returns displays)."""
        item = _tuple_item(node, k)
        if item is not None:
            return self.ndim(item, depth + 1)
        if not isinstance(node, Apply) or depth > 12:
            return None
        nds = [self.item_ndim(o, k, depth + 1) for o in self._branch_outputs(node)]
        if not nds or any(n is None for n in nds) or len(set(nds)) != 1:
            return None
        return nds[0]

    def _kept(self, inst: Inst, active: Node, every: Node, new: Node, old: Node,
              param: Node, init: Node, out_ndim: int | None) -> Node:
        """A loop state's value after a masked iteration: `new` where `active`, else
        `old`; `new` itself on a trip every element takes (`every`, a bool the loop
        computes from its count of active elements: no select on the first trips of a
        loop, before any element is done). (A variable first bound in the loop starts
        as a placeholder, which the active elements' values replace: the leaf's select,
        which takes the other side of a placeholder, where the body's value is one
        array.)"""
        from ..runtime import UNBOUND

        if isinstance(init, Constant) and init.value is UNBOUND:
            if out_ndim is None:
                return self._helper("kept_tree_unless_every", inst, [every, active, new, old])
            return self._helper("kept_leaf_unless_every", inst, [every, active, new, old])
        if new is old:
            return new
        nd = self.ndim(param)
        if nd == 0 and param.id in self._bool_state:
            # (a flag, one bool per element: `old ^ (active & (new ^ old))`, three logical
            # operations, about 1 µs each on 1,000 elements, where `np.where` on an
            # irregular mask costs 4-6 µs; the optimizer makes a flag a trip only sets
            # `old | (active & c)`, whose `c | old` a trip of every element would
            # compute besides)
            g = inst.vg
            changed = g.apply(P["np.logical_xor"], new, old)
            return g.apply(P["np.logical_xor"], old,
                           g.apply(P["np.logical_and"], active, changed))
        if nd is None:
            return self._helper("kept_tree_unless_every", inst, [every, active, new, old])
        return self._helper("kept_unless_every", inst, [every, active, new, old,
                                                        Constant(nd)])

    def _stop_flags(self, cond: Graph, body: Graph, init: list[Node]) -> set[int]:
        """The loop state positions that are a flag stopping a masked loop (`_stop_flag_of`)
        and always a bool: False on entry, a bool after each trip. Where the flag is True,
        the condition is False, so an element whose flag is True is never active."""
        j = _stop_flag_of(cond)
        if j is None or j >= len(init):
            return set()
        start = init[j]
        if not (isinstance(start, Constant) and start.value is False):
            return set()
        param = body.parameters[j]
        known = param.id in self._bool_state
        self._bool_state.add(param.id)  # (assumed, then checked: a bool after each trip)
        if self._item_is_bool(body.output, j, 0):
            return {j}
        if not known:
            self._bool_state.discard(param.id)
        return set()

    def _item_is_bool(self, node: Node | None, k: int, depth: int) -> bool:
        item = _tuple_item(node, k)
        if item is not None:
            return self._is_bool(item, depth + 1)
        if not isinstance(node, Apply) or depth > 12:
            return False
        outs = self._branch_outputs(node)
        return bool(outs) and all(self._item_is_bool(o, k, depth + 1) for o in outs)

    def _assume_state(self, params: list[list[Node]], init: list[Node], out: Node | None
                      ) -> None:
        """Where kind inference does not know a loop state's number of axes (a bool flag
        set by a `break`), assume its initial value's for the state's parameters (each
        list in `params`, one per graph reading the state) if the body's new value `out`
        (a tuple) then has the same; else the assumption is dropped."""
        if self.example_ndim is None:
            return
        from ..runtime import UNBOUND

        starts: dict[int, int] = {}
        for j, p in enumerate(params[0]):
            if self.example_ndim(p) is not None:
                continue
            start = init[j]
            nd = self.ndim(start)
            if nd is None and isinstance(start, Constant) and start.value is UNBOUND:
                # (a variable first bound in the loop, a `return`'s value: the number of
                # axes of what a trip assigns it)
                nd = self._assigned_ndim(out, j, {ps[j].id for ps in params})
                self._placeholders.update(ps[j].id for ps in params)
            if nd is not None:
                starts[j] = nd
        slots = list(starts)
        for j in slots:
            for ps in params:
                self._assumed[ps[j].id] = starts[j]
        flags = [j for j in range(len(init)) if self._is_bool(init[j], 0)]
        for j in flags:
            self._bool_state.update(ps[j].id for ps in params)
        changed = True
        while changed:
            changed = False
            for j in list(flags):
                if not self._item_is_bool(out, j, 0):
                    flags.remove(j)
                    self._bool_state.difference_update(ps[j].id for ps in params)
                    changed = True
        changed = True
        while changed:
            changed = False
            for j in list(slots):
                if self.item_ndim(out, j) != self._assumed[params[0][j].id]:
                    slots.remove(j)
                    for ps in params:
                        del self._assumed[ps[j].id]
                    changed = True

    def _assigned_ndim(self, node: Node | None, k: int, own: set[int], depth: int = 0
                       ) -> int | None:
        """`ndim` of item `k` of a loop body's new state `node` on the first path that
        assigns it (not the state's own parameters, ids `own`, passed on), where known."""
        item = _tuple_item(node, k)
        if item is not None:
            return None if item.id in own else self.ndim(item, depth + 1)
        if not isinstance(node, Apply) or depth > 12:
            return None
        for o in self._branch_outputs(node):
            nd = self._assigned_ndim(o, k, own, depth + 1)
            if nd is not None:
                return nd
        return None

    def _static(self, node: Apply, prim: Primitive, vals: list[Node], trees: list[Tree],
                inst: Inst) -> Node | None:
        """A batched primitive written directly where the examples' numbers of axes are
        known (what the generic rules find out at run time): code whose shapes the
        optimizer knows in turn."""
        from ..primitives import batch_rules

        args = node.inputs[1:]
        flags = tuple(not unbatched(t) for t in trees)
        if any(isinstance(t, Tup) for t in trees):
            return None
        ndims = [self.ndim(a) for a in args]
        vg, loc = inst.vg, node.loc
        entry = batch_rules.BATCH.get(prim.name) or (
            batch_rules.BATCH.get(prim.alias) if prim.alias else None)
        rule = entry[0] if entry else None
        name = prim.alias if prim.alias and prim.name not in batch_rules.BATCH else prim.name

        def call(callee: Any, *xs: Any) -> Apply:
            return vg.apply(Constant(callee) if isinstance(callee, Primitive) else callee,
                            *xs, loc=loc)

        known = [k for k in ndims if k is not None]
        if rule is batch_rules.elementwise and len(known) == len(ndims) and entry is not None:
            nd = max(known)
            lifted = [call(P["np.expand_dims"], v, Constant(tuple(range(1, 1 + nd - k))))
                      if f and k < nd else v
                      for v, f, k in zip(vals, flags, known, strict=True)]
            return vg.apply(Constant(entry[1]), *lifted, loc=loc, name=node.name)
        if prim.reduction is not None and flags[0] and not any(flags[1:]) and \
                isinstance(args[1], Constant) and ndims[0] is not None:
            axis, nd = args[1].value, ndims[0]
            if axis is None:
                axes: Any = tuple(range(1, nd + 1))
            elif isinstance(axis, tuple):
                axes = tuple(k % nd + 1 for k in axis)
            elif isinstance(axis, int):
                axes = axis % nd + 1
            else:
                return None
            return vg.apply(node.inputs[0], vals[0], Constant(axes), *vals[2:], loc=loc,
                            name=node.name)
        if name in MATMUL_LIKE and len(known) == 2:
            a, b = vals
            pa, pb = known
            if pa == 0 or pb == 0:
                return None
            # (np.dot is np.matmul where b has two axes or fewer; the batch axes line up
            # where the batched operand has as many axes as the other or more)
            dot_like = name in ("np.dot", "method.dot")
            if flags == (True, False):
                if pb <= 2 or (pa >= pb and not dot_like):
                    return call(P["np.matmul"], a, b)
                return None
            if flags == (False, True):
                if pb == 1:
                    if pa == 1:
                        return call(P["np.matmul"], b, a)
                    if pa == 2:
                        return call(P["np.matmul"], b, call(P["np.transpose"], a, Constant(None)))
                    return None
                if (pa <= 2 or pb >= pa) and (pb <= 2 or not dot_like):
                    return call(P["np.matmul"], a, b)
                return None
            if (pa, pb) == (1, 1):
                return call(P["np.sum"], call(P["mul"], a, b), Constant(1), Constant(None),
                            Constant(False))
            if (pa, pb) == (2, 1):
                return call(P["np.squeeze"], call(P["np.matmul"], a, call(
                    P["np.expand_dims"], b, Constant(-1))), Constant(-1))
            if (pa, pb) == (1, 2):
                return call(P["np.squeeze"], call(P["np.matmul"], call(
                    P["np.expand_dims"], a, Constant(1)), b), Constant(1))
            return call(P["np.matmul"], a, b) if pa == pb == 2 else None
        if name == "getattr" and flags == (True, False) and isinstance(args[1], Constant) \
                and args[1].value == "T" and ndims[0] is not None:
            nd = ndims[0]
            return call(P["np.transpose"], vals[0], Constant((0, *range(nd, 0, -1))))
        if name == "np.transpose" and flags[0] and isinstance(args[1], Constant) and \
                ndims[0] is not None:
            nd, axes_ = ndims[0], args[1].value
            order = (0, *range(nd, 0, -1)) if axes_ is None else \
                (0, *[k % nd + 1 for k in axes_])
            return call(P["np.transpose"], vals[0], Constant(order))
        if name == "np.reshape" and flags == (True, False) and isinstance(args[1], Constant):
            shape = args[1].value
            shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
            if -1 not in shape:
                return call(P["np.reshape"], vals[0], Constant((-1, *shape)))
        return None

    def _elementwise(self, prim: Primitive, vals: list[Node], flags: tuple, inst: Inst,
                     node: Apply) -> Node:
        """An elementwise primitive on batched arguments: those whose examples have
        fewer axes than another argument's get unit axes after the batch axis (so they
        broadcast as each example would)."""
        vg = inst.vg
        if sum(flags) == 1 and len(flags) == 1:
            return vg.apply(Constant(prim), *vals, loc=node.loc, name=node.name)
        ndims = [self._helper("example_ndim", inst, [v, Constant(f)])
                 for v, f in zip(vals, flags, strict=True)]
        nd = ndims[0]
        for other in ndims[1:]:
            nd = self._helper("larger", inst, [nd, other])
        lifted = [self._helper("lift", inst, [v, nd]) if f else v
                  for v, f in zip(vals, flags, strict=True)]
        if prim is P["mul"] and len(vals) == 2 and sum(flags) == 1:
            # (`seq * n` of an unbatched operand that may be a tuple or list and a batched
            # count: a repetition, not NumPy's product of the sequence and the counts)
            j = flags.index(False)
            x = vals[j]
            if not (isinstance(x, Constant) and not isinstance(x.value, (tuple, list))) \
                    and self.ndim(node.inputs[1 + j]) is None:
                return self._helper("repeated", inst, [inst.size, x, lifted[1 - j],
                                                       Constant(j == 0)], node.loc)
        if prim is P["add"] and len(vals) == 2:
            # (`+` of a batched tuple or list and an unbatched one: a concatenation, whose
            # unbatched items are repeated, so that every item of the result is batched)
            lifted = [v if f or (isinstance(v, Constant) and
                                 not isinstance(v.value, (tuple, list, dict)))
                      else self._helper("concatenated", inst, [inst.size, v, other])
                      for v, f, other in zip(lifted, flags, lifted[::-1], strict=True)]
        return vg.apply(Constant(prim), *lifted, loc=node.loc, name=node.name)

    # --- branches -------------------------------------------------------------------

    def _switch(self, node: Apply, inst: Inst) -> list[Node]:
        _, c, t, f = node.inputs
        if is_constant_graph(t) and is_constant_graph(f) and not t.value.parameters and \
                not f.value.parameters:
            inst.values[node.id] = (Pending(node), U)
            return []
        vals, trees = self._args([c, t, f], inst, node.loc)
        if unbatched(trees[0]):
            want = join(trees[1], trees[2])
            made = inst.vg.apply(node.inputs[0], vals[0],
                                 self.materialize(vals[1], trees[1], want, inst),
                                 self.materialize(vals[2], trees[2], want, inst),
                                 loc=node.loc, name=node.name)
            inst.values[node.id] = (made, want)
            return [made]
        mask = self._mask(inst, vals[0], c)
        if isinstance(t, Constant) and isinstance(f, Constant) and type(t.value) is bool \
                and type(f.value) is bool and t.value != f.value:
            # (`True if c else False`, `False if c else True`)
            chosen = mask if t.value else inst.vg.apply(P["np.logical_not"], mask)
            inst.values[node.id] = (chosen, B)
            return [chosen]
        a = self.materialize(vals[1], trees[1], B, inst)
        b = self.materialize(vals[2], trees[2], B, inst)
        nt, nf = self.ndim(t), self.ndim(f)
        chosen = self._select(inst, mask, a, b, nt if nt == nf else None,
                              self._unbound(t) or self._unbound(f))
        inst.values[node.id] = (chosen, B)
        return [chosen]

    def _switch_value(self, pending: Pending, owner: Inst, loc: Location | None
                      ) -> tuple[Node, Tree]:
        """A switch between branches used other than by calling it: a function value."""
        node = pending.node
        c, ctree = self.lookup(node.inputs[1], owner, loc)
        if not unbatched(ctree):
            raise VmapError("vmap: a function chosen by a condition that differs across "
                            "the batch", node.loc)
        t, f = node.inputs[2], node.inputs[3]
        assert is_constant_graph(t) and is_constant_graph(f)
        made = owner.vg.apply(node.inputs[0], c, self.boxed(t.value, owner, loc),
                              self.boxed(f.value, owner, loc), loc=node.loc)
        return made, F

    def _branch(self, g: Graph, inst: Inst, mask_param: bool) -> Inst:
        return self._loop_graph(g, inst, [], mask_param)

    def _mask(self, inst: Inst, c: Node, orig: Node | None) -> Node:
        """A batched condition `c` (the value of the original node `orig`) as a mask:
        as it is where it is known to be boolean (a comparison's), else Python's truth
        element by element."""
        if orig is not None and self._is_bool(orig, 0):
            return c
        return self._helper("as_mask", inst, [inst.size, c])

    def _is_bool(self, node: Node | None, depth: int) -> bool:
        from ..primitives.batch_rules import BOOL_RESULTS

        if isinstance(node, Constant):
            return type(node.value) in (bool, np.bool_)
        if node is not None and node.id in self._bool_state:
            return True
        if not isinstance(node, Apply) or depth > 12:
            return False
        prim = _primitive(node.inputs[0])
        if prim is P["switch"]:  # (a choice between values)
            return all(self._is_bool(v, depth + 1) for v in node.inputs[2:])
        if prim is not None:
            return prim.name in BOOL_RESULTS
        outs = self._branch_outputs(node)
        return bool(outs) and all(self._is_bool(o, depth + 1) for o in outs)

    def _select(self, inst: Inst, c: Node, a: Node, b: Node, nd: int | None,
                placeholder: bool = False) -> Node:
        """Per element, `a` where the mask `c` holds, else `b`: `np.where` where the
        examples' number of axes is known, else the generic helper; where a side may be
        a placeholder (`placeholder`), the other side where it is one."""
        if a is b:
            return a
        if nd is None:
            return self._helper("select", inst, [c, a, b])
        if placeholder:
            return self._helper("_select_leaf", inst, [c, a, b])
        return self._helper("select_shaped", inst, [c, a, b, Constant(nd)])

    def _unbound(self, node: Node | None) -> bool:
        """Whether an original node's value may be a placeholder: the constant, or a
        loop's state first bound in the loop."""
        from ..runtime import UNBOUND

        return isinstance(node, Constant) and node.value is UNBOUND or \
            node is not None and node.id in self._placeholders

    def _item_unbound(self, node: Node | None, k: int, depth: int = 0) -> bool:
        """`_unbound` of item `k` of a tuple display or of any display a branch of a
        call returns."""
        item = _tuple_item(node, k)
        if item is not None:
            return self._unbound(item)
        if not isinstance(node, Apply) or depth > 12:
            return False
        return any(self._item_unbound(o, k, depth + 1) for o in self._branch_outputs(node))

    def _select_results(self, inst: Inst, c: Node, rt: Node, rf: Node, gt: Graph,
                        gf: Graph, call: Apply) -> Node:
        """Select between two branches' batched results: item by item where both
        return tuple displays (a loop body's state), each with `np.where` where the
        examples' shapes are known."""

        ot, of = gt.output, gf.output
        n = self._tuple_len(ot)
        if n is not None and n == self._tuple_len(of):
            g = inst.vg
            parts: list[Node] = []
            for j in range(n):
                # (each side's item: a display's, or, where a side is itself a branch
                # returning displays, as a `break` inside the other side of a
                # `continue`'s `if` gives, what its branches agree on: its number of
                # axes, the one node it is, whether it is a bool)
                x, y = self._item_node(ot, j), self._item_node(of, j)
                a, b = (g.apply(P["tuple_getitem"], r, j) for r in (rt, rf))
                unbound = self._item_unbound(ot, j) or self._item_unbound(of, j)
                if x is not None and x is y and not unbound:  # (one value on both sides)
                    parts.append(a)
                    continue
                nx, ny = self.item_ndim(ot, j), self.item_ndim(of, j)
                nd = nx if nx == ny else None
                logical = None if unbound else self._bool_choice(
                    inst, c, x, y, a, b, nd,
                    (self._item_is_bool(ot, j, 0), self._item_is_bool(of, j, 0)))
                parts.append(logical if logical is not None else
                             self._select(inst, c, a, b, nd, unbound))
            return g.apply(P["make_tuple"], *parts)
        nd = self.ndim(call)
        unbound = self._unbound(ot) or self._unbound(of)
        if nd is None and ot is not None and of is not None and not unbound:
            nt, nf = self.ndim(ot), self.ndim(of)
            nd = nt if nt == nf else None
        if ot is not None and of is not None and not unbound:
            logical = self._bool_choice(inst, c, ot, of, rt, rf, nd)
            if logical is not None:
                return logical
        return self._select(inst, c, rt, rf, nd, unbound)

    def _item_node(self, node: Node | None, k: int, depth: int = 0) -> Node | None:
        """Item `k` of a tuple display, or the one node it is in the displays every
        branch of a call returns (a loop state an inner branch does not change); else
        None."""
        item = _tuple_item(node, k)
        if item is not None or not isinstance(node, Apply) or depth > 12:
            return item
        items = {id(o): o for o in (self._item_node(b, k, depth + 1)
                                    for b in self._branch_outputs(node))}
        return next(iter(items.values())) if len(items) == 1 else None

    def _tuple_len(self, node: Node | None, depth: int = 0) -> int | None:
        """The number of items of a tuple display, or of the displays every branch of a
        call returns (as `item_ndim` reads them); else None."""
        if isinstance(node, Apply) and _primitive(node.inputs[0]) is P["make_tuple"]:
            return len(node.inputs) - 1
        if not isinstance(node, Apply) or depth > 12:
            return None
        lens = {self._tuple_len(o, depth + 1) for o in self._branch_outputs(node)}
        return lens.pop() if len(lens) == 1 else None

    def _bool_choice(self, inst: Inst, c: Node, x: Node | None, y: Node | None, a: Node,
                     b: Node, nd: int | None,
                     bools: tuple[bool, bool] | None = None) -> Node | None:
        """A select between a bool constant (or a value batched as one) and a flag
        (original nodes `x`, `y`, batched
        `a`, `b`; one bool per element), as a `break` sets its flag: logical operations
        (each about 1 µs on 1,000 elements, where `np.where` on an irregular mask costs
        4-6 µs, and the constant's array need not be made); where the flag is a bool
        the same for every element (a masked loop's stop flag, False as a trip starts),
        the mask, its negation or that bool. None: not such a select. (`bools`: whether
        each side is a bool, where a side is a branch's item with no one node, None.)"""
        if nd != 0:
            return None
        g = inst.vg
        for const, other, flag, first in ((x, y, b, True), (y, x, a, False)):
            is_bool = bools[1 if first else 0] if bools is not None else \
                other is not None and self._is_bool(other, 0)
            # (a constant, or a value batched as one: a stop flag, False as a trip starts)
            value = None if const is None else self._unbatched_bool(const, inst)
            if value is not None and is_bool:
                known = self._unbatched_bool(other, inst) if other is not None else None
                if known is not None and known != value:
                    # (the constant where the mask holds, the other bool elsewhere)
                    return c if value is first else g.apply(P["np.logical_not"], c)
                mask = c if first else g.apply(P["np.logical_not"], c)
                if value:  # (True where the mask holds, else the flag)
                    return g.apply(P["np.logical_or"], mask, flag)
                return g.apply(P["np.logical_and"], g.apply(P["np.logical_not"], mask), flag)
        return None

    def _unbatched_bool(self, node: Node, inst: Inst) -> bool | None:
        """The bool an original node is for every element, where its batched value is a
        constant bool; else None."""
        if isinstance(node, Constant):
            return node.value if type(node.value) is bool else None
        owner = self._find(node.graph, inst)
        if owner is None or node.id not in owner.values:
            return None
        value, tree = owner.values[node.id]
        if unbatched(tree) and isinstance(value, Constant) and type(value.value) is bool:
            return bool(value.value)
        return None

    def _same_arrays(self, gt: Graph, gf: Graph) -> bool:
        """Whether two branches give tuples whose items are the same value, or arrays
        (numbers) with as many axes on both sides: what `np.where` selects between."""

        ot, of = gt.output, gf.output
        if ot is None or of is None:
            return False
        if isinstance(ot, Apply) and isinstance(of, Apply) and \
                _primitive(ot.inputs[0]) is P["make_tuple"] and \
                _primitive(of.inputs[0]) is P["make_tuple"]:
            if len(ot.inputs) != len(of.inputs):
                return False
            pairs = list(zip(ot.inputs[1:], of.inputs[1:], strict=True))
        elif any(isinstance(o, Apply) and _primitive(o.inputs[0]) is P["make_tuple"]
                 for o in (ot, of)):
            return False
        else:  # (one value each)
            pairs = [(ot, of)]
        for x, y in pairs:
            if self._unbound(x) or self._unbound(y):
                return False
            if x is not y and (self.ndim(x) is None or self.ndim(x) != self.ndim(y)):
                return False
        return True

    def _finish(self, made: Inst, want: Tree) -> None:
        assert made.vg.output is not None
        made.vg.output = self.materialize(made.vg.output, made.out_tree, want, made)
        made.out_tree = want

    def _branches(self, pending: Pending, call: Apply, inst: Inst) -> list[Node]:
        node = pending.node
        vg, loc = inst.vg, call.loc
        c, ctree = self.lookup(node.inputs[1], inst, loc)
        t, f = node.inputs[2], node.inputs[3]
        assert is_constant_graph(t) and is_constant_graph(f)
        gt, gf = t.value, f.value
        if unbatched(ctree):
            bt, bf = self._branch(gt, inst, False), self._branch(gf, inst, False)
            want = join(bt.out_tree, bf.out_tree)
            self._finish(bt, want)
            self._finish(bf, want)
            sw = vg.apply(node.inputs[0], c, Constant(bt.vg), Constant(bf.vg), loc=node.loc)
            made = vg.apply(sw, loc=loc, name=call.name)
            inst.values[call.id] = (made, want)
            return [made]
        if self.derivative:
            # (Each branch of a gradient's forward code returns its own backpropagator,
            # with its own saved values: per element, values of different structures,
            # which no select can join.)
            raise VmapError("vmap of derivative code under a condition that differs across "
                            "the batch (an if): take the derivative of the batched function "
                            "instead (tl.grad of a function that calls tl.vmap)", node.loc)
        bt, bf = self._branch(gt, inst, True), self._branch(gf, inst, True)
        self._finish(bt, B)
        self._finish(bf, B)
        cm = self._mask(inst, c, node.inputs[1])
        mt = cm if inst.mask is None else vg.apply(P["np.logical_and"], cm, inst.mask)
        nc = vg.apply(P["np.logical_not"], cm)
        mf = nc if inst.mask is None else vg.apply(P["np.logical_and"], nc, inst.mask)
        if _displays_only(gt) and _displays_only(gf) and self._same_arrays(gt, gf):
            # (branches that only gather values, as a `break` setting a flag: both run,
            # which costs less than finding whether an element takes each)
            rt = vg.apply(Constant(bt.vg), mt, loc=loc)
            rf = vg.apply(Constant(bf.vg), mf, loc=loc)
            chosen = self._select_results(inst, cm, rt, rf, gt, gf, call)
            inst.values[call.id] = (chosen, B)
            return [rt, rf, chosen]
        any_t = self._any(vg, mt)
        any_f = self._any(vg, mf)

        def closure(name: str) -> Graph:
            return Graph(f"{name}_{gt.name}", vg, loc)

        only_t, only_f, both, not_f = (closure("only_true"), closure("only_false"),
                                       closure("both"), closure("unless_false"))
        call_t = only_t.apply(Constant(bt.vg), mt, loc=loc)
        only_t.output, only_t.effects = call_t, [call_t]
        call_f = only_f.apply(Constant(bf.vg), mf, loc=loc)
        only_f.output, only_f.effects = call_f, [call_f]
        rt = both.apply(Constant(bt.vg), mt, loc=loc)
        rf = both.apply(Constant(bf.vg), mf, loc=loc)
        both.effects = [rt, rf]
        both_inst = Inst(gt, both, inst, inst.size, inst.mask)
        both.output = self._select_results(both_inst, cm, rt, rf, gt, gf, call)
        sw1 = not_f.apply(P["switch"], any_t, Constant(both), Constant(only_f))
        r1 = not_f.apply(sw1, loc=loc)
        not_f.output, not_f.effects = r1, [r1]
        sw = vg.apply(P["switch"], any_f, Constant(not_f), Constant(only_t))
        made = vg.apply(sw, loc=loc, name=call.name)
        inst.values[call.id] = (made, B)
        return [made]

    # --- loops ----------------------------------------------------------------------

    def _loop(self, node: Apply, prim: Primitive, inst: Inst) -> list[Node]:
        kind = prim.name
        vg, loc = inst.vg, node.loc
        body_at = 4 if kind == "for_range" else 2
        body_node = node.inputs[body_at]
        cond_node = node.inputs[1] if kind == "while_loop" else None
        if not is_constant_graph(body_node) or (
                cond_node is not None and not is_constant_graph(cond_node)):
            raise VmapError("vmap: a loop whose body is not known", loc)
        body: Graph = body_node.value
        init_vals, init_trees = self._args(node.inputs[body_at + 1:], inst, loc)
        k = len(init_vals)
        lead = 1 if kind == "for_range" else 0
        if kind == "for_range":
            bounds, btrees = self._args(node.inputs[1:4], inst, loc)
            if not all(unbatched(t) for t in btrees):
                return self._batched_range(node, body, bounds, btrees, init_vals,
                                           init_trees, inst)
        trees = list(init_trees)
        while True:
            vb = self._loop_graph(body, inst, [U] * lead + trees, False)
            vc = self._loop_graph(cond_node.value, inst, trees, False) \
                if cond_node is not None else None
            if vc is not None and not unbatched(vc.out_tree):
                assert cond_node is not None
                return self._batched_while(node, inst, cond_node.value, body, init_vals,
                                           init_trees)
            out = vb.out_tree
            outs = list(out.items) if isinstance(out, Tup) else [out] * k
            new = [self._state_tree(a, b, init) for a, b, init in
                   zip(trees, outs, node.inputs[body_at + 1:], strict=True)]
            if new == trees:
                break
            trees = new
        self._finish(vb, Tup(tuple(trees)))
        init = [self.materialize(v, t, w, inst)
                for v, t, w in zip(init_vals, init_trees, trees, strict=True)]
        if kind == "for_range":
            loop = vg.apply(P["for_range"], *bounds, Constant(vb.vg), *init, loc=loc)
        else:
            assert vc is not None
            loop = vg.apply(P["while_loop"], Constant(vc.vg), Constant(vb.vg), *init, loc=loc)
        inst.values[node.id] = (loop, Tup(tuple(trees)))
        return [loop]

    def _state_tree(self, before: Tree, after: Tree, init: Node) -> Tree:
        """The tree of a loop state slot that is `before` on entry and `after` a trip:
        their join, except that a tuple rebuilt as a display each trip (parameters
        updated by their gradient, `p = (p[0] - lr * g[0], ...)`) from a value the
        examples' kinds say is a tuple of as many items keeps its items apart (each
        batched or not), where the join would batch it whole and its items' kinds would
        be lost."""
        if isinstance(after, Tup) and not after.is_list and not isinstance(before, Tup) \
                and self.example_items is not None and \
                self.example_items(init) == len(after.items):
            before = Tup((before,) * len(after.items))
        return join(before, after)

    def _loop_graph(self, g: Graph, inst: Inst, trees: list[Tree], mask_param: bool,
                    known: dict[int, Node] | None = None, sized: bool = False) -> Inst:
        """`g` (a loop's body or condition) batched; with `sized`, its first parameter is
        the batch's width (a masked loop that may compact its active elements)."""
        vb = Graph(f"vmap_{g.name}", inst.vg, g.loc)
        size = vb.add_parameter("width") if sized else inst.size
        mask = vb.add_parameter("mask") if mask_param else inst.mask
        made = Inst(g, vb, inst, size, mask)
        self._fill(made, trees, known)
        made.done = True
        return made

    def _batched_range(self, node: Apply, body: Graph, bounds: list[Node],
                       btrees: list[Tree], init_vals: list[Node], init_trees: list[Tree],
                       inst: Inst) -> list[Node]:
        """A `for` loop over a range whose bounds differ across the batch: the while
        loop it stands for (`while (stop - i) * step > 0: ...; i += step`), batched."""
        g, loc = node.graph, node.loc
        start, stop, step = node.inputs[1:4]
        cond = Graph(f"{body.name}_in_range", g, loc)
        i = cond.add_parameter("i")
        for p in body.parameters[1:]:
            cond.add_parameter(p.name)
        cond.output = cond.apply(P["gt"], cond.apply(P["mul"], cond.apply(P["sub"], stop, i),
                                                     step), 0, loc=loc)
        stepped = Graph(f"{body.name}_stepped", g, loc)
        j = stepped.add_parameter("i")
        state = [stepped.add_parameter(p.name) for p in body.parameters[1:]]
        r = stepped.apply(Constant(body), j, *state, loc=loc)
        stepped.effects = [r]
        stepped.output = stepped.apply(P["make_tuple"], stepped.apply(P["add"], j, step),
                                       *[stepped.apply(P["tuple_getitem"], r, k)
                                         for k in range(len(state))])
        first, first_tree = bounds[0], btrees[0]
        if not (isinstance(step, Constant) and step.value != 0):
            # (a step of 0 raises ValueError, as `range` does, for an element under the mask)
            first = self._helper("range_start", inst, [
                inst.mask or Constant(None), self.materialize(first, first_tree, B, inst),
                self.materialize(bounds[2], btrees[2], B, inst)], loc)
            first_tree = B
        return self._batched_while(node, inst, cond, stepped, [first, *init_vals],
                                   [first_tree, *init_trees], skip=1)

    def _batched_while(self, node: Apply, inst: Inst, cond: Graph, body: Graph,
                       init_vals: list[Node], init_trees: list[Tree], skip: int = 0
                       ) -> list[Node]:
        """A while loop whose condition differs across the batch: it runs until no
        element's condition holds; a finished element's state stays as it was. (`skip`:
        leading state that is not the loop's result.)"""
        vg, loc = inst.vg, node.loc
        if self.derivative:
            # (A gradient's forward loop saves each step's values for its backward loop,
            # in a stack whose depth would differ across the batch: masking the loop
            # cannot express that, so the caller batches the function, then
            # differentiates.)
            raise VmapError("vmap of derivative code under a condition that differs across "
                            "the batch (a loop whose trip count differs): take the "
                            "derivative of the batched function instead (tl.grad of a "
                            "function that calls tl.vmap)", loc)
        k = len(init_vals)
        init_nodes = list(node.inputs[len(node.inputs) - k:]) if skip == 0 else \
            [node.inputs[1], *node.inputs[len(node.inputs) - k + 1:]]
        self._assume_state([list(body.parameters), list(cond.parameters)], init_nodes,
                           body.output)
        stops = self._stop_flags(cond, body, init_nodes)
        vb = self._loop_graph(body, inst, [U if j in stops else B for j in range(k)], True,
                              {j: Constant(False) for j in stops}, sized=True)
        vc = self._loop_graph(cond, inst, [B] * k, True, sized=True)
        hoisted = _hoist_invariants(vc.vg, vg)
        self._finish(vb, Tup(tuple([B] * k)))
        init = [self.materialize(v, t, B, inst)
                for v, t in zip(init_vals, init_trees, strict=True)]
        start_mask = inst.mask if inst.mask is not None else self._ones(inst)
        alone = bool(stops) and _stop_flag_of(cond, alone=True) is not None
        vr: Inst | None = None
        flag_at = min(stops) if stops else -1
        if stops and not alone:
            # (`False if flag else c`, the flag the constant False: `c`, which runs before
            # the loop, the flag being False on entry, so that what it computes from
            # values no trip changes moves before the loop too)
            vr = self._loop_graph(cond, inst, [U if i == flag_at else B for i in range(k)],
                                  True, {flag_at: Constant(False)}, sized=True)
            hoisted += _hoist_invariants(vr.vg, vg)
        # (Compaction: where at most half the elements are still active after a trip,
        # the loop goes on with theirs alone, gathered into narrower arrays: the batched
        # values its graphs read from outside (`threads`, then passed to them) with its
        # state, each finished element's state put back into the batch-wide results.)
        threads = self._compaction_threads(
            inst, [vb.vg, vc.vg] + ([vr.vg] if vr is not None else []), hoisted)
        outer = [x for x, _ in threads or []]
        a0: Node
        if vr is not None:
            c0 = vg.apply(Constant(vr.vg), inst.size, *outer, start_mask, *init, loc=loc)
            a0 = vg.apply(P["np.logical_and"], start_mask, self._mask(inst, c0, cond.output))
        else:
            c0 = vg.apply(Constant(vc.vg), inst.size, *outer, start_mask, *init, loc=loc)
            a0 = self._mask(inst, c0, cond.output)
            if inst.mask is not None:
                a0 = vg.apply(P["np.logical_and"], a0, inst.mask)
        # (The loop's state: the mask of active elements, their count, which the loop
        # tests (`np.count_nonzero`, about 1 µs on 1,000 elements, where `.any()`'s
        # reduction costs 3) and a trip compares with the batch's size to skip the
        # selects while every element is active, and the state.)
        n0 = self._any(vg, a0)

        def masked_body(compacting: bool) -> Graph:
            """A trip of the masked loop; `compacting`: of the loop after the first
            compaction, whose state also holds its width, the batch positions of its
            rows, the batch-wide results read after the loop and the values it reads
            from outside (as `_compacted_trip` hands them on)."""
            wb = Graph(f"vmap_masked_{body.name}", vg, loc)
            active = wb.add_parameter("active")
            count = wb.add_parameter("count")
            width = wb.add_parameter("width") if compacting else inst.size
            at = wb.add_parameter("at") if compacting else None
            results: list[Node] = [wb.add_parameter(f"{body.parameters[j].name}_all")
                                   for j in read] \
                if compacting else []
            state = [wb.add_parameter(p.name) for p in body.parameters]
            inv: list[Node] = [wb.add_parameter(x.name or "v") for x in outer] \
                if compacting else outer
            wi = Inst(body, wb, inst, width, active)
            every = wb.apply(P["eq"], count, width)
            # (A stop flag is False for every active element as a trip starts: the body
            # reads the constant, and the condition the trip's new flag, so that the flag
            # carried, `old | (active & new)` where an active element's old flag is
            # False, is read by nothing but the loop's result: the optimizer drops it
            # where that is unused.)
            new = wb.apply(Constant(vb.vg), width, *inv, active,
                           *[Constant(False) if j in stops else s
                             for j, s in enumerate(state)], loc=loc)
            news = [wb.apply(P["tuple_getitem"], new, j) for j in range(k)]
            kept = [self._kept(wi, active, every, news[j], s, p, v,
                               self.item_ndim(body.output, j)) if j not in stops else
                    wb.apply(P["np.logical_or"], s,
                             wb.apply(P["np.logical_and"], active, news[j]))
                    for j, (s, p, v) in enumerate(zip(state, body.parameters, init_vals,
                                                      strict=True))]
            still: Node
            if alone:
                # (the condition is the flag alone, `while True: ... break`: the active
                # elements whose new flag is False, `active > flag` on bools, one
                # operation; on a trip of every element, the flag's count alone)
                pair = self._helper("still_unless_stopped", wi,
                                    [every, active, news[flag_at], width])
                still = wb.apply(P["tuple_getitem"], pair, 0)
                left: Node = wb.apply(P["tuple_getitem"], pair, 1)
                wb.effects = [new]
            elif vr is not None:
                # (`while c: ... break`: the condition `False if flag else c` is `c` for
                # the active elements whose new flag is False, and only they run it, as
                # the condition's own branch would: no select between the flag's False
                # and c. Where no element goes on, the condition does not run: its
                # per-element fallbacks would run every element, out of the loop's
                # domain past a break.)
                going = wb.apply(P["np.greater"], active, news[flag_at])
                run = Graph(f"vmap_going_{cond.name}", wb, loc)
                c = run.apply(Constant(vr.vg), width, *inv, going,
                              *[Constant(False) if i == flag_at else x
                                for i, x in enumerate(kept)],
                              loc=loc)
                run.effects = [c]
                run.output = run.apply(P["np.logical_and"], going,
                                       self._mask(Inst(cond, run, wi, width, going), c,
                                                  cond.output))
                stop = Graph(f"vmap_stopped_{cond.name}", wb, loc)
                stop.output = going
                sw = wb.apply(P["switch"], self._any(wb, going), Constant(run),
                              Constant(stop))
                still = wb.apply(sw, loc=loc)
                wb.effects = [new, still]
            else:
                c = wb.apply(Constant(vc.vg), width, *inv, active,
                             *[news[j] if j in stops else x for j, x in enumerate(kept)],
                             loc=loc)
                still = self._helper("still_active", wi, [every, active,
                                                          self._mask(wi, c, cond.output)])
                wb.effects = [new, c]
            if not alone:
                left = self._any(wb, still)
            if not compacting:
                wb.output = wb.apply(P["make_tuple"], still, left, *kept)
            else:
                assert at is not None and threads is not None
                wb.output = self._compacted_trip(wi, inst.size, still, left, width, at,
                                                 results, [kept[j] for j in read], kept,
                                                 live, threads, inv, loc)
            return wb

        read = self._results_read(node, skip, k) if threads is not None else []
        live = _live_state(body, cond, read, k, stops) if threads is not None else set()
        wc = Graph(f"vmap_any_{cond.name}", vg, loc)
        wc.add_parameter("active")
        wc.output = wc.add_parameter("count")
        for j in range(k):
            wc.add_parameter(f"s{j}")
        if threads is not None:
            # (the batch-wide loop, as without compaction, until at most half the elements
            # are still active: kinds then know its state's shapes)
            half = self._helper("half_unless_narrow", inst,
                                [inst.size, Constant(compact_least())])
            wc.output = wc.apply(P["gt"], wc.output, half)
        loop = vg.apply(P["while_loop"], Constant(wc), Constant(masked_body(False)), a0,
                        n0, *init, loc=loc)
        finals: list[Node] = [vg.apply(P["tuple_getitem"], loop, j + 2)
                              for j in range(skip, k)]
        if threads is not None:
            finals = self._compacted_loop(inst, loop, finals, masked_body(True), init, read,
                                          live, skip, k, threads, loc)
        result = vg.apply(P["make_tuple"], *finals)
        inst.values[node.id] = (result, Tup(tuple([B] * (k - skip))))
        return [c0, loop]

    def _results_read(self, node: Apply, skip: int, k: int) -> list[int]:
        """The state positions of a loop (`node`, `k` states, the first `skip` not its
        results) whose results the code after it reads (an item taken of it; all where
        it is used otherwise)."""
        everything = list(range(skip, k))
        g = node.graph
        if g is None or g.output is node:
            return everything
        read: set[int] = set()
        for h in [g, *graphs_inside(g)]:
            if h.output is node:
                return everything
            for n in graph_nodes(h):
                for i, x in enumerate(n.inputs):
                    if x is not node:
                        continue
                    index = n.inputs[2] if len(n.inputs) == 3 else None
                    if i != 1 or _primitive(n.inputs[0]) is not P["tuple_getitem"] or \
                            not isinstance(index, Constant) or \
                            not isinstance(index.value, int):
                        return everything
                    read.add(index.value + skip)
        return sorted(read)

    def _compacted_loop(self, inst: Inst, wide: Node, finals: list[Node], wb: Graph,
                        init: list[Node], read: list[int], live: set[int], skip: int, k: int,
                        threads: list[tuple[Node, Tree]], loc: Location | None
                        ) -> list[Node]:
        """The results of a masked loop that may compact: the batch-wide loop's (`wide`,
        `finals`) where no element is active when it stops, else those of the loop that
        goes on (`wb`, a compacting trip) from the active elements' rows, the batch-wide
        results (of the states at `read`) put back together from its rows. (A state
        not `live`, which neither the results read nor the trips need, starts from its
        value before the loop's rows, so that the batch-wide loop does not keep it: the
        optimizer drops it.)"""
        vg = inst.vg
        done = Graph("vmap_wide_loop_done", vg, loc)
        done.output = done.apply(P["make_tuple"], *finals)
        narrow = Graph("vmap_compacted_loop", vg, loc)
        ni = Inst(inst.g, narrow, inst, inst.size, None)
        active = narrow.apply(P["tuple_getitem"], wide, 0)
        left = narrow.apply(P["tuple_getitem"], wide, 1)
        state = [narrow.apply(P["tuple_getitem"], wide, 2 + j) for j in range(k)]
        rows = self._helper("active_rows", ni, [inst.size, active])
        wc = Graph("vmap_any_compacted", narrow, loc)
        for j in range(4 + len(read) + k + len(threads)):
            p = wc.add_parameter(f"s{j}")
            if j == 1:
                wc.output = p
        loop = narrow.apply(
            P["while_loop"], Constant(wc), Constant(wb),
            narrow.apply(P["np.ones"], left, Constant(bool)), left, left, rows,
            *[state[j] for j in read],
            *[self._gathered(x if j in live else init[j], B, rows, ni)
              for j, x in enumerate(state)],
            *[self._gathered(x, t, rows, ni) for x, t in threads], loc=loc)
        at = narrow.apply(P["tuple_getitem"], loop, 3)
        outs: list[Node] = []
        for j in range(skip, k):
            last: Node = narrow.apply(P["tuple_getitem"], loop, 4 + len(read) + j)
            if j in read:
                res = narrow.apply(P["tuple_getitem"], loop, 4 + read.index(j))
                last = self._helper("put_rows", ni, [inst.size, res, at, last])
            outs.append(last)  # (a result not read: the narrow rows, never looked at)
        narrow.output = narrow.apply(P["make_tuple"], *outs)
        sw = vg.apply(P["switch"], vg.apply(P["tuple_getitem"], wide, 1), Constant(narrow),
                      Constant(done))
        out = vg.apply(sw, loc=loc)
        return [vg.apply(P["tuple_getitem"], out, j) for j in range(k - skip)]

    def _compacted_trip(self, wi: Inst, size: Node, still: Node, left: Node, width: Node,
                        at: Node, results: list[Node], read: list[Node], kept: list[Node],
                        live: set[int], threads: list[tuple[Node, Tree]], inv: list[Node],
                        loc: Location | None) -> Node:
        """The state a compacted masked loop's trip hands on: as it is, or, where at
        most half its elements are still active (`batch_rules.compact_now`), the active
        elements' alone: their rows of the state and of the values read from outside
        (`inv`, batched as `threads` say), their batch positions, and the current rows
        of the states read after the loop (`read`) put into the batch-wide results
        (the finished elements' final values; the others' are put again later)."""
        wb = wi.vg
        moved = [x for j, x in enumerate(kept) if j in live]
        as_is = Graph("vmap_not_compacted", wb, loc)
        as_is.output = as_is.apply(P["make_tuple"], still, left, width, at, *results, *moved,
                                   *inv)
        cg = Graph("vmap_compacted", wb, loc)
        ci = Inst(wi.g, cg, wi, width, still)
        rows = self._helper("active_rows", ci, [width, still])
        put = [self._helper("put_rows", ci, [size, r, at, x])
               for r, x in zip(results, read, strict=True)]
        cg.output = cg.apply(
            P["make_tuple"], cg.apply(P["np.ones"], left, Constant(bool)), left, left,
            cg.apply(P["getitem"], at, rows), *put,
            *[self._gathered(x, B, rows, ci) for x in moved],
            *[self._gathered(x, t, rows, ci) for x, (_, t) in zip(inv, threads, strict=True)])
        now = self._helper("compact_now", wi, [left, width, Constant(compact_least() or 0)])
        sw = wb.apply(P["switch"], now, Constant(cg), Constant(as_is))
        out = wb.apply(sw, loc=loc)
        items = [wb.apply(P["tuple_getitem"], out, i) for i in range(4 + len(results))]
        for j, x in enumerate(kept):
            if j in live:
                at_out = 4 + len(results) + len([i for i in live if i < j])
                items.append(wb.apply(P["tuple_getitem"], out, at_out))
                continue
            # (a state not live, gathered apart, so that the optimizer drops it where
            # nothing reads it; derivative code keeps it: one width with the others)
            dead = Graph("vmap_compacted_unread", wb, loc)
            di = Inst(wi.g, dead, wi, width, still)
            dead.output = self._gathered(x, B, self._helper("active_rows", di,
                                                            [width, still]), di)
            same = Graph("vmap_not_compacted_unread", wb, loc)
            same.output = x
            items.append(wb.apply(wb.apply(P["switch"], now, Constant(dead), Constant(same)),
                                  loc=loc))
        return wb.apply(P["make_tuple"], *items, *[
            wb.apply(P["tuple_getitem"], out, 4 + len(results) + len(moved) + i)
            for i in range(len(inv))])

    def _gathered(self, x: Node, tree: Tree, rows: Node, inst: Inst) -> Node:
        """The rows `rows` of a value batched as `tree` (a tuple display's batched items
        each)."""
        if unbatched(tree):
            return x
        if isinstance(tree, Tup):
            g = inst.vg
            items = [self._gathered(g.apply(P["tuple_getitem"], x, j), t, rows, inst)
                     for j, t in enumerate(tree.items)]
            return g.apply(P["make_list" if tree.is_list else "make_tuple"], *items)
        return self._helper("rows_of", inst, [x, rows])

    def _compaction_threads(self, inst: Inst, roots: list[Graph], hoisted: list[Node]
                            ) -> list[tuple[Node, Tree]] | None:
        """Where a masked loop may compact its active elements (`_compacted_trip`): the
        batched values from outside that its graphs `roots` (the batched body and
        condition, each taking the batch's width first) read, each made a parameter of
        each root (after the width), with its batch tree; None where it may not (the
        batch narrower than `compact_least()`, or compaction off; a value read whose
        batch tree is not known, or a function read that sees the batch-wide
        values: a closure of the code around the loop)."""
        least = compact_least()
        if least is None or isinstance(inst.size, Constant) and (
                not isinstance(inst.size.value, int) or inst.size.value < least):
            return None
        enclosing: set[int] = set()
        g: Graph | None = inst.vg
        while g is not None:
            enclosing.add(g.id)
            g = g.parent
        inside: set[int] = set()
        for r in roots:
            inside |= {r.id} | {h.id for h in graphs_inside(r)}
        for r in roots:
            for h in reachable_graphs(r):
                up: Graph | None = h if h.id not in inside else None
                while up is not None:
                    if up.id in enclosing:
                        return None
                    up = up.parent
        known = self._trees_around(inst)
        hoisted_ids = {x.id: x for x in hoisted}

        def tree_of(x: Node) -> Tree | None:
            if isinstance(x, Constant):
                return None if isinstance(x.value, Graph) else U
            if x.id in known:
                return known[x.id]
            h = hoisted_ids.get(x.id)
            if not isinstance(h, Apply):
                return None
            prim = _primitive(h.inputs[0])
            trees = [tree_of(a) for a in h.inputs[1:]]
            if prim is None or any(t is None for t in trees):
                return None
            found = U if all(t == U for t in trees) else B if prim.elementwise else None
            if found is not None:
                known[x.id] = found
            return found

        threads: dict[int, tuple[Node, Tree]] = {}
        for r in roots:
            for fv in free_variables(r):
                t = tree_of(fv)
                if t is None or t == F:
                    return None
                if t != U:
                    threads[fv.id] = (fv, t)
        found = list(threads.values())
        for r in roots:
            params = [r.add_parameter(x.name or "v") for x, _ in found]
            r.parameters = [r.parameters[0], *params, *r.parameters[1:-len(params) or None]]
            _replace_uses(r, {x.id: p for (x, _), p in zip(found, params, strict=True)})
        return found

    def _trees_around(self, inst: Inst) -> dict[int, Tree]:
        """The batch trees of the values of `inst` and the instances around it (its
        scope's, its callers'), by node id; masks batched, the code around the batched
        function's values (`outer`) not."""
        trees: dict[int, Tree] = {x.id: U for x in self.outer.values()}
        seen: set[int] = set()
        todo: list[Inst | None] = [inst]
        while todo:
            i = todo.pop()
            if i is None or id(i) in seen:
                continue
            seen.add(id(i))
            for value, tree in i.values.values():
                if isinstance(value, Node) and not isinstance(value, Constant):
                    trees.setdefault(value.id, tree)
            if i.mask is not None:
                trees.setdefault(i.mask.id, B)
            todo += [i.parent, i.caller]
        return trees


def _live_state(body: Graph, cond: Graph, read: list[int], k: int, stops: set[int]
                ) -> set[int]:
    """The positions of a loop's state (`k` states) that its results read (`read`) or
    its trips need: the condition's, what the body's effects (and its branches') compute
    from, and what the body computes those from, to a fixed point (each item of the
    body's result followed through tuple displays and branches; all of it elsewhere).
    A stop flag (`stops`) only where read: a masked trip reads the constant False for
    it, and its condition the trip's new flag."""
    effects: list[Node] = list(body.effects)

    def item(node: Node | None, j: int) -> list[Node]:
        if isinstance(node, Apply) and _primitive(node.inputs[0]) is P["make_tuple"] and \
                len(node.inputs) == k + 1:
            return [node.inputs[j + 1]]
        if isinstance(node, Apply) and len(node.inputs) == 1 and \
                isinstance(node.inputs[0], Apply) and \
                _primitive(node.inputs[0].inputs[0]) is P["switch"] and \
                all(is_constant_graph(b) for b in node.inputs[0].inputs[2:4]):
            sw = node.inputs[0]
            found = [sw.inputs[1]]
            for b in sw.inputs[2:4]:
                assert isinstance(b, Constant)
                branch: Graph = b.value
                effects.extend(branch.effects)
                found += item(branch.output, j)
            return found
        return [] if node is None else [node]

    items = [item(body.output, j) for j in range(k)]

    def reached(roots: list[Node], params: list[Node]) -> set[int]:
        at = {p.id: j for j, p in enumerate(params)}
        found: set[int] = set()
        seen: set[int] = set()
        todo = list(roots)
        while todo:
            x = todo.pop()
            if x.id in seen:
                continue
            seen.add(x.id)
            if x.id in at:
                found.add(at[x.id])
            elif isinstance(x, Constant):
                if isinstance(x.value, Graph):
                    todo += free_variables(x.value)
            elif isinstance(x, Apply):
                todo += x.inputs
        return found

    live = set(read) | (reached([n for n in [cond.output, *cond.effects] if n is not None],
                                list(cond.parameters)) |
                        reached(effects, list(body.parameters))) - stops
    todo = list(live)
    while todo:
        for j in reached(items[todo.pop()], list(body.parameters)) - live - stops:
            live.add(j)
            todo.append(j)
    return live


def _stop_flag_of(cond: Graph, alone: bool = False) -> int | None:
    """The position of the parameter that `cond` (a loop's condition) reads as a flag
    stopping the loop, where it reads one: the condition is `False if flag else ...` (as
    a `break` compiles: a switch between values, or between graphs the first of which
    returns False) or `not flag`. `alone`: only where the condition is the flag's
    negation (`False if flag else True`, `not flag`)."""

    def returns(node: Node | None, value: bool) -> bool:
        if isinstance(node, Constant) and is_constant_graph(node):
            branch: Graph = node.value
            return not graph_nodes(branch) and returns(branch.output, value)
        return isinstance(node, Constant) and node.value is value

    out = cond.output
    flag: Node | None = None
    if isinstance(out, Apply) and _primitive(out.inputs[0]) is P["not_"]:
        flag = out.inputs[1]
    elif isinstance(out, Apply) and len(out.inputs) == 1 and isinstance(out.inputs[0], Apply):
        sw = out.inputs[0]  # (a switch between graphs, called)
        if _primitive(sw.inputs[0]) is P["switch"] and is_constant_graph(sw.inputs[2]) \
                and returns(sw.inputs[2], False) and (not alone or returns(sw.inputs[3], True)):
            flag = sw.inputs[1]
    elif isinstance(out, Apply) and _primitive(out.inputs[0]) is P["switch"] and \
            returns(out.inputs[2], False) and (not alone or returns(out.inputs[3], True)):
        flag = out.inputs[1]
    for j, p in enumerate(cond.parameters):
        if p is flag:
            return j
    return None


def _hoist_invariants(cond: Graph, target: Graph) -> list[Node]:
    """Compute once in `target`, before a masked loop, what its batched condition
    `cond` (a graph nested in `target`, called before the loop and after each trip)
    computes from values that do not change in the loop: the `1e-12 * a` of `while
    abs(x * x - a) > 1e-12 * a`. Only pure primitives move; the condition runs at least
    once, before the loop, so nothing runs that did not."""
    moved: dict[int, Node] = {}
    effects = {e.id for e in cond.effects}
    for node in graph_nodes(cond):
        prim = _primitive(node.inputs[0])
        if prim is None or not prim.pure or prim.effect or prim.statement or \
                node.id in effects:
            continue
        args = [moved.get(x.id, x) for x in node.inputs[1:]]
        if all(x.id in moved or (isinstance(x, Constant) and not isinstance(x.value, Graph))
               or (not isinstance(x, Constant) and x.graph is not cond
                   and _outside(x.graph, cond))
               for x in node.inputs[1:]):
            moved[node.id] = target.apply(node.inputs[0], *args, loc=node.loc,
                                          name=node.name)
    if not moved:
        return []
    _replace_uses(cond, moved)
    return list(moved.values())


def _replace_uses(root: Graph, by: dict[int, Node]) -> None:
    """In `root` and the graphs nested in it, each use of a node whose id `by` holds
    replaced by the node it gives."""
    for g in [root, *graphs_inside(root)]:
        for node in graph_nodes(g):
            for i, x in enumerate(node.inputs):
                if x.id in by:
                    set_input(node, i, by[x.id])
        if g.output is not None and g.output.id in by:
            set_output(g, by[g.output.id])


def _outside(owner: Graph | None, g: Graph) -> bool:
    """Whether a node of `owner` is a value from outside `g` (of a graph `g` nests in)."""
    inner: Graph | None = g.parent
    while inner is not None:
        if inner is owner:
            return True
        inner = inner.parent
    return False


def _displays_only(g: Graph) -> bool:
    """Whether a graph only makes tuples and lists of values it reads (reading nothing
    else: an item of a value not bound yet would raise)."""
    return all(_primitive(n.inputs[0]) in (P["make_tuple"], P["make_list"])
               for n in graph_nodes(g))


def _integer_index(index: Node, tree: Tree) -> bool:
    """Whether an index batched as `tree` may be a gather's: batched whole, or a tuple
    display whose items are batched or constant ints (`t[i, 0]`), no slice among them
    (what it holds at run time decides the rest: `batch_rules.gather`)."""
    if tree == B:
        return True
    if not isinstance(tree, Tup) or tree.is_list or unbatched(tree) or \
            not isinstance(index, Apply) or _primitive(index.inputs[0]) is not P["make_tuple"]:
        return False
    return all(t == B or (isinstance(a, Constant) and type(a.value) is int)
               for a, t in zip(index.inputs[1:], tree.items, strict=True))


def _tuple_item(node: Node | None, k: int) -> Node | None:
    """Item `k` of a tuple display, else None."""
    if isinstance(node, Apply) and _primitive(node.inputs[0]) in (P["make_tuple"],
                                                                 P["make_list"]) and \
            k < len(node.inputs) - 1:
        return node.inputs[k + 1]
    return None


def _tree(axis: Any, where: str) -> Any:
    if axis is None:
        return U
    if isinstance(axis, int):
        return B
    if isinstance(axis, (tuple, list)):
        trees = tuple(_tree(a, f"{where}[{i}]") for i, a in enumerate(axis))
        return U if all(t == U for t in trees) else Tup(trees, isinstance(axis, list))
    raise VmapError(f"vmap: {where}: an axis is an int, None, or a tuple or list of them "
                    f"matching a tuple or list argument, not {axis!r}")


def helper_call(name: str, g: Graph, args: list[Node]) -> Node:
    """A helper of `tapeless.primitives.batch_rules` copied into `g`."""
    return _helper(name, g, args)


def _helper(name: str, g: Graph, args: list[Node]) -> Node:
    from ..frontend.parser import parse
    from ..primitives import batch_rules

    out, _ = inline_body(parse(getattr(batch_rules, name)), g, args)
    return out


def vmap_graph(fg: Graph, in_axes: list[Any], out_axes: Any, axis_size: int | None,
               name: str, example_ndim: Callable[[Node], int | None] | None = None,
               into: Graph | None = None, outer: dict[int, Node] | None = None,
               derivative: bool = False,
               example_items: Callable[[Node], int | None] | None = None,
               prepare: bool = True, each: bool = False) -> Graph:
    """The graph of `tl.vmap(f)`, `fg` being f's: it moves each mapped axis first, calls
    V of `fg` and moves the results' batch axis where `out_axes` says. `example_ndim`:
    see `VTransform`. With `into`, the body is built in that graph (a stand-in made by
    the front end for a `tl.vmap` called inside compiled code, whose function reads the
    values `outer` of the code around it). `prepare=False`: `fg` is batched as it is,
    not optimized first (its transforms expanded by the caller). `each`: `fg` is called
    on each element and the results stacked (`batch_rules.per_element`, what a loop over
    the batch computes), not batched: what reverse mode differentiates where the batched
    code met a value whose shape differs across the batch (`reverse.EACH_ELEMENT`)."""
    # (A `tl.grad` inside the function mapped is built first, by the caller.)
    if example_ndim is None and PREPARE is not None and prepare and not each:
        fg = PREPARE(fg)
    g = into if into is not None else Graph(f"vmap_{name}", None, fg.loc)
    if into is None:
        for p in fg.parameters:
            g.add_parameter(p.name, p.loc)
        g.take_signature(fg)
    if len(in_axes) != len(g.parameters):
        raise VmapError(f"vmap: in_axes has {len(in_axes)} entries for "
                        f"{len(g.parameters)} arguments", fg.loc)
    trees = [_tree(a, f"in_axes[{i}]") for i, a in enumerate(in_axes)]
    moved: list[Node] = []
    size: Node | None = Constant(axis_size) if axis_size is not None else None
    for p, axis in zip(g.parameters, in_axes, strict=True):
        if isinstance(axis, int):
            moved.append(_helper("move_in", g, [p, Constant(axis)]))
            if size is None:
                size = _helper("size_of", g, [p, Constant(axis)])
        elif isinstance(axis, (tuple, list)):
            parts = []
            for j, a in enumerate(axis):
                item = g.apply(P["getitem"], p, j)
                if isinstance(a, int):
                    parts.append(_helper("move_in", g, [item, Constant(a)]))
                    if size is None:
                        size = _helper("size_of", g, [item, Constant(a)])
                elif a is None:
                    parts.append(item)
                else:
                    raise VmapError("vmap: nested in_axes deeper than one level are not "
                                    "supported yet")
            moved.append(g.apply(P["make_list" if isinstance(axis, list) else "make_tuple"],
                                 *parts))
        else:
            moved.append(p)
    if size is None:
        raise VmapError("vmap: no argument is mapped (in_axes is None everywhere); give "
                        "axis_size")
    if each:
        if any(isinstance(a, (tuple, list)) for a in in_axes):
            raise VmapError("vmap: nested in_axes are not supported where the batched "
                            "code runs once per element", fg.loc)
        out = _helper("per_element", g, [Constant(fg), size, Constant(tuple(
            a is not None for a in in_axes)), g.apply(P["make_tuple"], *moved)])
    else:
        vg = VTransform(outer, example_ndim, derivative, example_items).root(
            fg, trees, g if into is not None else None)
        out = g.apply(Constant(vg), size, *moved, loc=fg.loc)
    g.effects = [out]
    if isinstance(out_axes, int):
        g.output = _helper("move_out", g, [out, Constant(out_axes)])
    elif isinstance(out_axes, (tuple, list)) and all(isinstance(a, int) for a in out_axes):
        g.output = g.apply(P["make_tuple"], *[
            _helper("move_out", g, [g.apply(P["getitem"], out, j), Constant(a)])
            for j, a in enumerate(out_axes)])
    else:
        raise VmapError(f"vmap: out_axes {out_axes!r}: give an int, or a tuple of ints "
                        "matching a tuple result")
    return g
