"""Graphs for the derivative API: `grad` and `value_and_grad` of a graph, as ordinary IR
(so they can be compiled, called inside other compiled code, and differentiated again)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ..ir.nodes import (
    PENDING_TRANSFORMS,
    Constant,
    Graph,
    Node,
    TransformSpec,
    free_variables,
    graph_nodes,
    prim_of,
    reachable_graphs,
)
from ..primitives import PRIMITIVES
from ..runtime import ZERO
from . import activity
from .forward import FTransform, tangent_name
from .reverse import AS_PARSED, EACH_ELEMENT, JTransform

P = PRIMITIVES
TRANSFORM = JTransform()
FORWARD = FTransform()

# The stand-ins of `tl.vmap` calls inside compiled code whose bodies were batched without
# the arguments' kinds, with what they stand for: a compiled version built for known
# argument kinds batches them again for those kinds (`tapeless.vmap_api`).
VMAP_STAND_INS: weakref.WeakKeyDictionary[Graph, TransformSpec] = weakref.WeakKeyDictionary()
# The stand-ins of `tl.jvp` calls inside compiled code whose function calls `tl.vmap` (a
# stand-in above): a compiled version built for known argument kinds takes the jvp of
# the function with those calls batched for the kinds (`tapeless.vmap_api`), not F of
# their batching rules' run-time decisions (`tl.jacfwd(tl.jacrev(f))`).
JVP_OF_VMAP: weakref.WeakKeyDictionary[Graph, TransformSpec] = weakref.WeakKeyDictionary()


def grad_graph(g: Graph, argnums: int | tuple[int, ...], has_aux: bool, with_value: bool,
               transform: JTransform | None = None, lift: bool = False,
               into: Graph | None = None) -> Graph:
    """A graph computing the gradient of `g` (and optionally its value) with respect to
    the arguments in `argnums`. With `lift` (a `tl.grad` called inside compiled code),
    the arguments are values of the code around it and pass into derivative code through
    `lift`: a function among them becomes its J-callable. With `into`, the body is built
    in that graph (a stand-in made by the front end, with `g`'s parameters).

    J differentiates only the values that the arguments in `argnums` vary and that the
    output depends on (`ad/activity.py`; a fresh transform per gradient, since its J
    graphs leave out the sensitivities of the other arguments), unless
    `TAPELESS_ACTIVITY=0`."""
    expand_transforms(g)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    n = len(into.parameters) if into is not None else len(g.parameters)
    for a in nums:
        if not -n <= a < n:
            from ..errors import GradError

            raise GradError(f"argnums={argnums!r} is out of range: {g.name} takes "
                            f"{n} arguments")
    if activity.enabled():
        transform = transform or JTransform()
        transform.activity = activity.Activity(g, nums)
    transform = transform or TRANSFORM
    jg = transform.graph(g)
    prefix = "value_and_grad" if with_value else "grad"
    out = into if into is not None else Graph(f"{prefix}_{g.name}", None, g.loc)
    out.derived = True
    if into is None:
        for p in g.parameters:
            out.add_parameter(p.name, p.loc)
        out.take_signature(g)
    params = out.parameters
    jargs = [out.apply(P["lift"], p) for p in params] if lift else params
    call = out.apply(Constant(jg), *jargs, loc=g.loc)
    out.effects.append(call)
    value = out.apply(P["tuple_getitem"], call, 0, name="value")
    if has_aux:
        value = out.apply(P["check_aux_output"], value, name="value")
    backprop = out.apply(P["tuple_getitem"], call, 1, name="backprop")
    primary = out.apply(P["tuple_getitem"], value, 0) if has_aux else value
    checked = out.apply(P["check_scalar_output"], primary)
    out.effects.append(checked)
    seed = out.apply(P["ones_like_output"], checked, name="seed")
    if has_aux:
        seed = out.apply(P["make_tuple"], seed, Constant(ZERO))
    sens = out.apply(backprop, seed, name="sensitivities")
    grads = [out.apply(P["to_structure"], out.apply(P["tuple_getitem"], sens, 1 + a % len(params)),
                       params[a], name=f"d_{params[a].name}") for a in nums]
    result = grads[0] if isinstance(argnums, int) else out.apply(P["make_tuple"], *grads)
    if with_value:
        out.output = out.apply(P["make_tuple"], value, result)
    elif has_aux:
        out.output = out.apply(P["make_tuple"], result,
                               out.apply(P["tuple_getitem"], value, 1, name="aux"))
    else:
        out.output = result
    return out


def jvp_graph(g: Graph, transform: FTransform | None = None,
              into: Graph | None = None) -> Graph:
    """A graph `(x_1, ..., x_n, t_1, ..., t_n) -> (value, tangent)`: F of `g`, with the
    tangents taken and given in the primals' structures. With `into`, the body is built
    in that graph (a stand-in made by the front end, with those parameters)."""
    expand_transforms(g)
    fg = (transform or FORWARD).graph(g)
    out = into if into is not None else Graph(f"jvp_{g.name}", None, g.loc)
    out.derived = True
    if into is None:
        for p in g.parameters:
            out.add_parameter(p.name, p.loc)
        for p in g.parameters:
            out.add_parameter(tangent_name(p.name) or "t", p.loc)
    n = len(g.parameters)
    xs, ts = out.parameters[:n], out.parameters[n:]
    call = out.apply(Constant(fg), *xs,
                     *[out.apply(P["from_structure"], t) for t in ts], loc=g.loc)
    out.effects.append(call)
    value = out.apply(P["tuple_getitem"], call, 0, name="value")
    tangent = out.apply(P["to_structure"], out.apply(P["tuple_getitem"], call, 1), value,
                        name="tangent")
    out.output = out.apply(P["make_tuple"], value, tangent)
    return out


def _may_be_called(node: Node, target: Graph) -> bool:
    """Whether the graphs of `target` call `node` or hand it to something that may call
    it (a call of a graph or a value, or a primitive that passes values on)."""
    for g in reachable_graphs(target):
        for n in graph_nodes(g):
            if n.inputs[0] is node:
                return True
            if any(i is node for i in n.inputs[1:]):
                prim = prim_of(n)
                if prim is None or prim.passes_on:
                    return True
    return False


def _as_parsed_twin(h: Graph, target: Graph, axes: list, out_axes: Any,
                    axis_size: int | None, outer: dict[int, Node],
                    each: bool = False) -> Callable[[], Graph]:
    """How to build a twin of the `tl.vmap` stand-in `h` (same parent, parameters and
    free values) whose body batches `target` as parsed, not optimized first (`each`:
    calls it on each element, `reverse.EACH_ELEMENT`)."""
    def build() -> Graph:
        from .batch import vmap_graph

        twin = Graph(h.name, h.parent, h.loc)
        for p in h.parameters:
            twin.add_parameter(p.name, p.loc)
        twin.take_signature(h)
        return vmap_graph(target, axes, out_axes, axis_size, target.name, into=twin,
                          outer=outer, prepare=False, each=each)
    return build


def expand_transforms(root: Graph, defer_vmap: bool = False) -> Graph:
    """Build the body of every graph reachable from `root` that stands for a transform
    (`TransformSpec`: a `tl.grad` called inside compiled code), once; returns `root`.
    With `defer_vmap`, the `tl.vmap` calls of `root` itself are left to build (those a
    compiled version for known argument kinds batches for them: `vmap_api`); those inside
    other transforms are built with them."""
    if not PENDING_TRANSFORMS:  # (no program has one: nothing to walk)
        return root
    graphs = reachable_graphs(root)
    pending = [h for h in graphs if h.transform is not None and
               not (defer_vmap and h.transform.kind == "vmap")]
    if not pending:
        return root
    for h in pending:
        spec = h.transform
        if spec is None:  # (built meanwhile, as a part of another)
            continue
        h.transform = None
        PENDING_TRANSFORMS.discard(h)
        # The function's free variables are values of the enclosing (primal) code: the
        # transform sees them as they are.
        try:
            # (Those the function calls first: a built body may read values of the code
            # around it that the stand-in's empty body did not, free variables that this
            # transform must be given: `tl.jvp` of a `tl.grad` of a closure, which
            # `tl.hessian` of a closure writes.)
            expand_transforms(spec.target)
            if spec.kind == "vmap":
                from .batch import vmap_graph

                in_axes, out_axes, axis_size = spec.argnums
                n = len(spec.target.parameters)
                axes = [in_axes] * n if isinstance(in_axes, int) or in_axes is None \
                    else list(in_axes)
                outer_values = {fv.id: fv for fv in free_variables(spec.target)}
                vmap_graph(spec.target, axes, out_axes, axis_size, spec.target.name,
                           into=h, outer=outer_values)
                VMAP_STAND_INS[h] = spec
                AS_PARSED[h] = _as_parsed_twin(h, spec.target, axes, out_axes, axis_size,
                                               outer_values)
                EACH_ELEMENT[h] = _as_parsed_twin(h, spec.target, axes, out_axes,
                                                  axis_size, outer_values, each=True)
            elif spec.kind == "jvp":
                # (A function among them becomes its F-callable.)
                outer: dict[int, Node] = {fv.id: h.apply(P["lift_fwd"], fv)
                                          for fv in free_variables(spec.target)}
                jvp_graph(spec.target, FTransform(outer, parent=h), h)
                if any(g in VMAP_STAND_INS for g in reachable_graphs(spec.target)):
                    JVP_OF_VMAP[h] = spec
            else:
                # (A function among them, which the derivative code calls, becomes its
                # J-callable: `lift`.)
                lifted: dict[int, Node] = {
                    fv.id: h.apply(P["lift"], fv) if _may_be_called(fv, spec.target) else fv
                    for fv in free_variables(spec.target)}
                inner = JTransform(outer=lifted)
                inner.copy_loop_callees = True  # (J may differentiate this code again)
                grad_graph(spec.target, spec.argnums, spec.has_aux,
                           spec.kind == "value_and_grad", inner, lift=True, into=h)
        except BaseException:
            h.transform = spec
            PENDING_TRANSFORMS.add(h)
            h.effects, h.output = [], None
            raise
        finally:
            h.invalidate()  # (what was computed from its empty body)
    # What the graphs around them computed from their empty bodies is stale too: a graph
    # that calls one schedules the free variables the built body reads (`g` in
    # `g = f if c else h; tl.grad(lambda y: g(y))(x)` was left out of the code).
    for g in graphs:
        g.invalidate()
    return root

