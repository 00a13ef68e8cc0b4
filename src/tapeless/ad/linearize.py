"""Linearization: an F program split into its primal part and its tangent part.

`tl.linearize(f, *primals)` runs the primal computation once and returns `f_jvp`, which
runs only tangent work. Given `F(f)` (optimized for the arguments' kinds), a binding-time
analysis marks each node *dynamic* when its value depends on a tangent parameter, per
item for tuples (a loop's state, a branch's `(value, tangent)` pair): values never
depend on tangents in F code, so the primal items of a loop or a branch are static
even where the node as a whole carries tangents too. Then:

- the primal part `P(*primals, *tangents) -> (value, residuals)` is F(f) whose output is
  the value and the *residuals*: the static nodes that dynamic nodes read (as inputs, or
  as free variables of the closures they call). Static work the value does not need
  and dynamic work are dead there, and the optimizer drops them. A loop or branch that
  carries tangents and primal results both runs whole (its tangents are zero there);
- the tangent part `T(*primals, *tangents, *residuals) -> tangent` is F(f) with each
  residual read from a parameter: the static work upstream of them is dead there.

Inside a loop that carries tangents the primal work stays (its per-iteration values
are recomputed in `T`, not saved), and so does a recursive call's; everything around
them is split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import GradError
from ..ir.clone import copy_module
from ..ir.edit import set_inputs, set_output
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    Parameter,
    free_variables,
    graph_nodes,
    is_constant_graph,
    prim_of,
    reachable_graphs,
)
from ..primitives import PRIMITIVES as P

# A binding time: False (static: known from the primals), True (dynamic: depends on a
# tangent), or a tuple of binding times, one per item of a tuple.
Time = Any


def _any(t: Time) -> bool:
    return any(_any(x) for x in t) if isinstance(t, tuple) else bool(t)


def _join(a: Time, b: Time) -> Time:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple(_join(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple) or isinstance(b, tuple):
        return _any(a) or _any(b)
    return a or b


def _items(t: Time, k: int) -> list[Time]:
    """`t` as `k` items (a tuple's own, or `t` repeated for a whole value)."""
    if isinstance(t, tuple) and len(t) == k:
        return list(t)
    return [_any(t)] * k


class BindingTimes:
    """The binding time of every node of a graph and the graphs it calls."""

    def __init__(self) -> None:
        self.times: dict[int, Time] = {}
        self.memo: dict[tuple[int, Any], Time] = {}

    def of(self, node: Node | None) -> Time:
        if node is None:
            return False
        if isinstance(node, Constant):
            if is_constant_graph(node):  # a closure: dynamic if what it captures is
                return any(_any(self.times.get(fv.id, False))
                           for fv in free_variables(node.value))
            return False
        return self.times.get(node.id, True)

    def graph(self, g: Graph, params: list[Time]) -> Time:
        """The binding time of `g`'s output for parameters of binding times `params`."""
        # (What the graph captures is part of the key: a branch's free variables.)
        key = (g.id, repr((params, [self.of(fv) for fv in free_variables(g)])))
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = True  # (a recursive call: dynamic, conservatively)
        if len(params) != len(g.parameters):
            params = [_any(tuple(params))] * len(g.parameters)
        for p, t in zip(g.parameters, params, strict=True):
            self.times[p.id] = t
        for node in graph_nodes(g):
            self.times[node.id] = self._node(node)
        out = self.of(g.output)
        self.memo[key] = out
        return out

    def _node(self, node: Apply) -> Time:
        callee, args = node.inputs[0], node.inputs[1:]
        prim = prim_of(node)
        if prim is P["make_tuple"]:
            return tuple(self.of(a) for a in args)
        if prim is P["tuple_getitem"] and isinstance(args[1], Constant) and \
                type(args[1].value) is int:
            t = self.of(args[0])
            i = args[1].value
            if isinstance(t, tuple):
                return t[i] if -len(t) <= i < len(t) else True
            return t
        if prim is not None and prim.loop:
            return self._loop(node, prim.name)
        if is_constant_graph(callee):
            return self.graph(callee.value, [self.of(a) for a in args])
        if isinstance(callee, Apply) and prim_of(callee) is P["switch"]:
            cond, if_true, if_false = callee.inputs[1:]
            if is_constant_graph(if_true) and is_constant_graph(if_false):
                if _any(self.of(cond)):
                    return True
                ts = [self.of(a) for a in args]
                return _join(self.graph(if_true.value, ts), self.graph(if_false.value, ts))
        return any(_any(self.of(i)) for i in node.inputs)

    def _loop(self, node: Apply, kind: str) -> Time:
        body_at = 4 if kind == "for_range" else 2
        body = node.inputs[body_at]
        cond = node.inputs[1] if kind == "while_loop" else None
        init = node.inputs[body_at + 1:]
        heads = node.inputs[1:body_at]
        if not is_constant_graph(body) or (cond is not None and not is_constant_graph(cond)) \
                or any(_any(self.of(h)) for h in heads if not is_constant_graph(h)):
            return any(_any(self.of(i)) for i in node.inputs)
        state = [_any(self.of(a)) for a in init]
        lead = [False] if kind == "for_range" else []
        while True:
            out = _items(self.graph(body.value, lead + state), len(state))
            new = [s or _any(o) for s, o in zip(state, out, strict=True)]
            if cond is not None and _any(self.graph(cond.value, list(new))):
                return True
            if new == state:
                return tuple(state)
            state = new


@dataclass
class Split:
    """The two parts of a linearized F program (module copies: see the module's doc)."""

    primal: Graph    # (*primals, *tangents) -> (value, residuals)
    tangent: Graph   # (*primals, *tangents, *residuals) -> tangent
    residuals: int   # how many


def split(fg: Graph) -> Split:
    """Split the F program `fg` (`(*primals, *tangents) -> (value, tangent)`, its
    parameters half primals, half tangents) into its primal and tangent parts."""
    n = len(fg.parameters) // 2
    times = BindingTimes()
    times.graph(fg, [False] * n + [True] * n)
    out = fg.output
    if isinstance(out, Apply) and prim_of(out) is P["make_tuple"] and len(out.inputs) == 3:
        value, tangent = out.inputs[1], out.inputs[2]
    else:
        raise GradError("internal error: linearize expects F code returning a pair")

    def static(node: Node) -> bool:
        return isinstance(node, (Apply, Parameter)) and node.graph is fg and \
            not _any(times.of(node))

    # The residuals: static nodes of fg read by its dynamic nodes (their inputs, and
    # what the closures they use capture) and by the tangent output.
    residuals: dict[int, Node] = {}
    reads: list[Node] = [tangent]
    for node in graph_nodes(fg):
        if not _any(times.of(node)):
            continue
        for inp in node.inputs:
            reads.append(inp)
            if is_constant_graph(inp):
                reads.extend(free_variables(inp.value))
    for e in fg.effects:
        if _any(times.of(e)):
            reads.append(e)
    # (A primal parameter read by tangent code is the tangent part's own parameter.)
    for r in reads:
        if static(r) and r.id not in residuals:
            residuals[r.id] = r
    order = [i for i in residuals if not isinstance(residuals[i], Parameter)]

    primal = copy_module(fg)
    pmap = _node_map(fg, primal)
    primal.output = primal.apply(P["make_tuple"], pmap(value), primal.apply(
        P["make_tuple"], *[pmap(residuals[i]) for i in order]))
    primal.invalidate()

    tan = copy_module(fg)
    tmap = _node_map(fg, tan)
    params = {tmap(residuals[i]).id: tan.add_parameter(_residual_name(residuals[i]))
              for i in order}
    tangent_out = tmap(tangent)
    dynamic_effects = [tmap(e) for e in fg.effects if _any(times.of(e))]
    for h in reachable_graphs(tan):
        for node in graph_nodes(h):
            set_inputs(node, [params.get(i.id, i) for i in node.inputs])
        if h is not tan and h.output is not None:
            set_output(h, params.get(h.output.id, h.output))
        h.invalidate()
    _drop_primal_items(fg, times, tmap)
    tan.output = params.get(tangent_out.id, tangent_out)
    tan.effects = [e for e in dynamic_effects if e.id not in params]
    tan.invalidate()
    return Split(primal, tan, len(order))


def _drop_primal_items(fg: Graph, times: BindingTimes, mapped: Any) -> None:
    """In the tangent part (a copy of `fg`; `mapped` maps fg's nodes to it), the primal
    items of a branch's results become None where only the residuals stand for them (the
    call is read only through its items), so that the optimizer drops their work."""
    root = mapped(fg.output).graph
    uses: dict[int, int] = {}
    readers: dict[int, list[Node]] = {}
    for h in reachable_graphs(root):
        for node in graph_nodes(h):
            for i in node.inputs:
                readers.setdefault(i.id, []).append(node)
                if is_constant_graph(i):
                    uses[i.value.id] = uses.get(i.value.id, 0) + 1
        for e in [h.output, *h.effects]:
            if e is not None:
                readers.setdefault(e.id, []).append(e)
    for node in graph_nodes(fg):
        t = times.of(node)
        if not isinstance(t, tuple) or not _any(t) or all(map(_any, t)):
            continue
        copy = mapped(node)
        callee = copy.inputs[0]
        if not isinstance(callee, Apply) or prim_of(callee) is not P["switch"] or not all(
                is_constant_graph(b) and uses.get(b.value.id, 0) == 1
                for b in callee.inputs[2:]):
            continue
        if not all(isinstance(r, Apply) and prim_of(r) is P["tuple_getitem"] and
                   r.inputs[1] is copy and
                   isinstance(r.inputs[2], Constant) for r in readers.get(copy.id, [])):
            continue
        for b in callee.inputs[2:]:
            assert is_constant_graph(b)
            g = b.value
            out = g.output
            if prim_of(out) is P["make_tuple"] and isinstance(out, Apply) and \
                    len(out.inputs) == len(t) + 1:
                g.output = g.apply(P["make_tuple"], *[
                    a if _any(ti) else Constant(None)
                    for a, ti in zip(out.inputs[1:], t, strict=True)])
                g.invalidate()


def _residual_name(node: Node) -> str:
    return node.name if getattr(node, "name", "") else "residual"


def _node_map(old: Graph, new: Graph) -> Any:
    """Maps a node of `old`'s own (a parameter or a node it schedules) to its copy in
    `new` (a `copy_module` of `old`: parameters and schedules correspond in order)."""
    table: dict[int, Node] = {}
    for a, b in zip(old.parameters, new.parameters, strict=True):
        table[a.id] = b
    for x, y in zip(graph_nodes(old), graph_nodes(new), strict=True):
        assert len(x.inputs) == len(y.inputs) and x.name == y.name
        table[x.id] = y

    def mapped(node: Any) -> Any:
        return table.get(node.id, node)

    return mapped
