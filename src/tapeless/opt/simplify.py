"""Inlining, constant folding, switches on constants, and common-subexpression
elimination."""

from __future__ import annotations

import numpy as np

from ..ir.clone import inline_body, node_count
from ..ir.edit import set_effects, set_output
from ..ir.nodes import Apply, Constant, Graph, Node, graph_nodes, is_constant_graph, prim_of
from ..runtime import ZERO
from .patterns import const, is_prim
from .rules import INLINE_MAX_NODES, Context, P, rewrite, step

# Steps of the driver's sweep that are not rewrites of one primitive's nodes.
step("inline")
step("select_constants")
step("constant_fold")
step("cse")


def input_key(x: Node) -> object:
    """What identifies an input for common subexpressions: a node's id, or a constant's
    value (a tuple, never an int)."""
    if type(x) is not Constant:
        return x.id
    return _value_key(x.value)


# The keys of the numbers and strings seen (`_value_key`), by type and value: each is
# spelled once, not at every node of every round that reads it. (Only where equal values
# have one key: not 0.0 and -0.0, which are equal, nor NaN, which equals nothing.)
_VALUE_KEYS: dict[tuple[type, object], tuple] = {}
_VALUE_KEYS_MAX = 1 << 14


def _value_key(v: object) -> object:
    t = type(v)
    if v is None or t is bool or t is int or t is float or t is str:
        if t is float and (v == 0.0 or v != v):
            return ("v", "float", repr(v))
        found = _VALUE_KEYS.get((t, v))
        if found is None:
            if len(_VALUE_KEYS) >= _VALUE_KEYS_MAX:
                _VALUE_KEYS.clear()
            found = _VALUE_KEYS[(t, v)] = ("v", t.__name__, repr(v))
        return found
    if t is slice:
        assert isinstance(v, slice)
        return ("s", _value_key(v.start), _value_key(v.stop), _value_key(v.step))
    if t is tuple:
        assert isinstance(v, tuple)
        return ("t",) + tuple(_value_key(i) for i in v)
    return ("o", id(v))


def cse(ctx: Context, node: Apply) -> Node | None:
    """A pure primitive (`Primitive.pure`: not iterators such as `enumerate(xs)`, which a
    first use consumes, nor fresh mutable stacks) applied to the same inputs as an
    earlier node of its graph is that node."""
    p = prim_of(node)
    if p is None or p.effect or p.statement or not p.pure:
        return None
    key = (node.graph.id, *[x.id if type(x) is not Constant else _value_key(x.value)
                            for x in node.inputs])
    first = ctx.computed.setdefault(key, node)
    return None if first is node else first


@rewrite("switch")
def _switch_constant(ctx: Context, node: Apply) -> Node | None:
    c = node.inputs[1]
    if isinstance(c, Constant) and not isinstance(c.value, Graph):
        try:
            return node.inputs[2] if c.value else node.inputs[3]
        except Exception:  # noqa: BLE001  (an object whose truth raises: leave it)
            return None
    return None


def fold_constants(ctx: Context, node: Apply) -> Node | None:
    p = prim_of(node)
    if p is None or not p.foldable or p.impl is None:
        return None
    args = node.inputs[1:]
    if not all(const(a) for a in args):
        return None
    values = [a.value for a in args if isinstance(a, Constant)]  # (all of them)
    if any(v is ZERO for v in values) and p.name not in ("is_", "is_not"):
        return None
    # An array constant (a global array, a default value) is read when the code runs,
    # as CPython reads it: the values it holds may change in place after compiling.
    if not p.ignores_values and any(isinstance(v, np.ndarray) for v in values):
        return None
    try:
        return Constant(p.impl(*values))
    except Exception:  # noqa: BLE001  (folding must never change which error is raised)
        return None


def inline_call(ctx: Context, node: Apply) -> tuple[Node, list[Node]] | None:
    callee = node.inputs[0]
    if not is_constant_graph(callee):
        return None
    g: Graph = callee.value
    if g is ctx.root or g.output is None or len(node.inputs) - 1 != len(g.parameters):
        return None
    if ctx.is_recursive(g) or g.recomputed:
        return None
    if ctx.call_sites.get(g.id, 0) > 1 and node_count(g) > INLINE_MAX_NODES:
        special = specialize_call(ctx, node, g)
        return None if special is None else (special, [])
    return inline_body(g, node.graph, node.inputs[1:], loc=node.loc)


# The constants a call's arguments may be specialized to: numbers, truth values, None and
# strings, whose meaning (type and value) `input_key` gives.
_SPECIALIZED_TYPES = (bool, int, float, str, type(None))
# The most specialized copies of one callee (by distinct constant arguments).
SPECIALIZE_MAX_COPIES = 4


def specialize_call(ctx: Context, node: Apply, g: Graph) -> Apply | None:
    """A call of `g` (too large to inline at each of its call sites) that passes
    constants, e.g. the exponent 2 of `x ** 2` to the reverse rule's code that a second
    derivative differentiates (`_pow_back(d, a, 2, out)`): a call of a copy of `g` with
    those parameters bound to the constants, so that its tests of them
    (`isinstance(b, int)`, `b != 0`) fold and only the code for them remains. One copy per
    callee and constants' meanings (2, 2.0 and True are different constants), shared by
    the call sites that pass them; a callee with effects is left as it is."""
    if g.vararg or g.effects or ctx.is_recursive(g):
        return None
    args = node.inputs[1:]
    fixed = tuple((i, input_key(a)) for i, a in enumerate(args)
                  if type(a) is Constant and type(a.value) in _SPECIALIZED_TYPES)
    if not fixed:
        return None
    key = (g.id, fixed)
    copy = ctx.specialized.get(key)
    if copy is None:
        if sum(1 for k in ctx.specialized if k[0] == g.id) >= SPECIALIZE_MAX_COPIES:
            return None
        constant = {i for i, _ in fixed}
        copy = Graph(g.name, g.parent, g.loc)
        copy.copy_attributes(g)
        bound: list[Node] = [a if i in constant else copy.add_parameter(p.name, p.loc)
                             for i, (p, a) in enumerate(zip(g.parameters, args, strict=True))]
        output, effects = inline_body(g, copy, bound)
        set_output(copy, output)
        set_effects(copy, effects)
        ctx.specialized[key] = copy
    rest = [a for i, a in enumerate(args) if all(i != j for j, _ in fixed)]
    return node.graph.apply(Constant(copy), *rest, loc=node.loc, name=node.name)


def select_constants(ctx: Context, node: Apply) -> Node | None:
    """`switch(c, lambda: A, lambda: B)()` where each branch only returns a constant is
    `switch(c, A, B)`: a plain selection (then calling it is an ordinary `if`)."""
    if len(node.inputs) != 1 or not is_prim(node.inputs[0], "switch"):
        return None
    sw = node.inputs[0]
    assert isinstance(sw, Apply)
    outs = []
    for b in sw.inputs[2:4]:
        if not is_constant_graph(b):
            return None
        g: Graph = b.value
        if g.parameters or g.effects or not isinstance(g.output, Constant) or graph_nodes(g):
            return None
        outs.append(g.output)
    return node.graph.apply(P["switch"], sw.inputs[1], *outs, loc=node.loc, name=node.name)


def pure(node: Node) -> bool:
    """Whether `node`'s only effect is its value: a primitive without effects, which does
    not call a function with effects that it is given (`[f(x) for x in xs]`, which
    is `list_map`, with a draw or a print in f; `f(*args)`, whose f is any value)."""
    p = prim_of(node)
    if p is None or p.effect or p.statement or p is P["call_star"]:
        return False
    assert isinstance(node, Apply)  # (prim_of says so)
    return not any(is_constant_graph(i) and i.value.effects for i in node.inputs[1:])


def idle_loop(node: Node) -> bool:
    """A loop over a range of constant bounds, without state, whose body does nothing
    (`for j in range(1, 3): pass`, what remains of a loop whose results are unused)."""
    if not is_prim(node, "for_range") or len(node.inputs) != 5:
        return False
    start, stop, step, body = node.inputs[1:]
    bounds = [b.value for b in (start, stop, step)
              if isinstance(b, Constant) and type(b.value) is int]
    if len(bounds) != 3 or bounds[2] == 0 or not is_constant_graph(body):
        return False
    g: Graph = body.value
    return not g.effects and isinstance(g.output, Constant) and \
        type(g.output.value) is tuple and not g.output.value and not graph_nodes(g)
