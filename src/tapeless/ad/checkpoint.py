"""Checkpoint policies (`tl.checkpoint(f, policy=...)`): which of `f`'s values reverse
mode saves; the rest is recomputed in the backward pass.

A policy that saves some values splits `f` in two graphs (`saving_graphs`):

- `saving(*xs) -> (y, saved)`: `f`, also returning the values the policy saves (the
  forward pass runs it, saving nothing else);
- `reusing(*xs, saved) -> y`: `f` where each saved value is read from `saved`, through
  a function whose value is the saved one and whose reverse rule is the primitive's,
  with the saved value standing for the one the rule computes (`reuse_rule`): the
  backward pass runs J of `reusing`, so the saved primitive is not computed again (a
  product's backpropagator does not read its value; the rule of a `tanh` whose value is
  saved reads the saved one).

The policy sees the primitives `f`'s own body applies (not those inside its loops,
branches or the functions it calls, which are recomputed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..frontend.parser import ParamSpec, parse
from ..ir.clone import clone_graph, copy_module, inline_body
from ..ir.edit import set_inputs, set_output
from ..ir.nodes import Apply, Constant, CustomRule, Graph, graph_nodes, prim_of, reachable_graphs
from ..primitives import PRIMITIVES as P
from ..primitives import Primitive

# A policy: whether a node applying a primitive (with these inputs) is saved.
Saveable = Callable[[Primitive, list[Any]], bool]


def saved_value(s, args):
    return s


def saved_fwd(s, args):
    return s, (s,) + args


def saved_bwd(rule, res, c):
    return None, rule(*res)[1](c)


def reuse_rule(prim: Primitive) -> Graph:
    """`(saved, *params) -> (value, backpropagator)`: the primitive's reverse rule with
    its value replaced by `saved` wherever the backpropagator reads it (the rule is
    called with the saved value's arguments; its own value is then dead code)."""
    from .reverse import JTransform

    rule = copy_module(JTransform().rule(prim))
    s = rule.add_parameter("saved")
    rule.parameters.remove(s)
    rule.parameters.insert(0, s)
    if rule.signature is not None:
        rule.signature = [ParamSpec("saved", "pos"), *rule.signature]
    out = rule.output
    if isinstance(out, Apply) and prim_of(out) is P["make_tuple"] and len(out.inputs) == 3 \
            and isinstance(out.inputs[1], Apply):
        value = out.inputs[1]
        for h in reachable_graphs(rule):
            for node in graph_nodes(h):
                if node is not out:
                    set_inputs(node, [s if i is value else i for i in node.inputs])
            if h is not rule and h.output is value:
                set_output(h, s)
            h.invalidate()
    for h in reachable_graphs(rule):
        h.derived = True
    return rule


def _reuse_graph(prim: Primitive) -> Graph:
    """A function `(saved, args) -> saved` whose reverse rule is the primitive's (its
    `reuse_rule`), as a custom_vjp (so it has derivatives of every order)."""
    name = f"saved_{prim.name.replace('.', '_')}"
    g = Graph(name)
    params = [g.add_parameter(n) for n in ("saved", "args")]
    fun = parse(saved_value)
    g.output = g.apply(Constant(fun), *params)
    bwd = Graph(f"{name}_bwd")
    res, c = bwd.add_parameter("res"), bwd.add_parameter("c")
    bwd.output, bwd.effects = inline_body(parse(saved_bwd), bwd,
                                          [Constant(reuse_rule(prim)), res, c])
    g.custom = CustomRule("vjp", fun, fwd=parse(saved_fwd), bwd=bwd)
    return g


def saving_graphs(fun: Graph, saveable: Saveable) -> tuple[Graph, Graph] | None:
    """`(saving, reusing)` for `fun` (see the module's doc), or None where the policy
    saves none of its values."""
    def saves(p: Primitive | None, n: Apply) -> bool:
        return p is not None and p.differentiable and not p.effect and (
            p.reverse_rule is not None or (
                p.alias is not None and P[p.alias].reverse_rule is not None)) and \
            saveable(p, n.inputs[1:])

    if not any(saves(prim_of(n), n) for n in graph_nodes(fun)):
        return None
    saving = clone_graph(fun, None, {})
    picked = [n for n in graph_nodes(saving) if saves(prim_of(n), n)]
    saving.output = saving.apply(P["make_tuple"], saving.output,
                                 saving.apply(P["make_tuple"], *picked))
    saving.invalidate()

    reusing = clone_graph(fun, None, {})
    saved = reusing.add_parameter("saved")
    if reusing.signature is not None:
        reusing.signature = [*reusing.signature, ParamSpec("saved", "pos")]
    picked = [n for n in graph_nodes(reusing) if saves(prim_of(n), n)]
    for i, node in enumerate(picked):
        prim = prim_of(node)
        assert prim is not None
        args = reusing.apply(P["make_tuple"], *node.inputs[1:])
        item = reusing.apply(P["tuple_getitem"], saved, i)
        set_inputs(node, [Constant(_reuse_graph(prim)), item, args])
    reusing.invalidate()
    return saving, reusing
