"""Reverse mode by source transformation: the J transform of Pearlmutter & Siskind.

For every graph `g`, `J(g)` takes the same arguments and returns `(value,
backpropagator)`. The backpropagator maps the sensitivity of the output to
`(d_free_variables, d_arg_1, ..., d_arg_n)`, where `d_free_variables` is a tuple laid out
like `free_variables(g)`. Every call `f(a, ...)` in `g` becomes `J(f)(J(a), ...)`; a
primitive's J is its reverse rule, itself a graph compiled from Python, so the output
of J is ordinary IR that J applies to again (derivatives of any order). No tape: what the
backward pass needs is held by the backpropagator closures."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeGuard

from ..errors import GradError
from ..ir.clone import inline_body
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Location,
    Node,
    Parameter,
    free_variables,
    graph_nodes,
    is_constant_graph,
    prim_of,
    reachable_graphs,
    serial_mark,
)
from ..primitives import PRIMITIVES, Primitive, lookup_callable
from ..runtime import ZERO
from .activity import Activity
from .callees import known_callee

P = PRIMITIVES


# What the backward pass of a loop needs from its forward pass: the loop's body, the
# body's backpropagator, the values saved each iteration, the final stack, and how many
# leading parameters (the index of a `for_range`) the body has before the loop state.
_LoopParts = tuple[Graph, Graph, list[Node], Node, int]


def _is_pair(node: Node) -> TypeGuard[Apply]:
    return isinstance(node, Apply) and isinstance(node.inputs[0], Constant) and \
        node.inputs[0].value is P["make_tuple"] and len(node.inputs) == 3


def _is_struct_class(node: Node) -> bool:
    import dataclasses

    v = node.value if isinstance(node, Constant) else None
    return isinstance(v, type) and (dataclasses.is_dataclass(v) or (
        issubclass(v, tuple) and hasattr(v, "_fields")))


def _may_be_class_value(classinfo: Node) -> bool:
    """Whether the class(es) `isinstance` tests against may have been passed as values
    (and so be J-callables in derivative code): not constants, or tuples of them."""
    if isinstance(classinfo, Constant):
        return False
    if isinstance(classinfo, Apply) and _primitive(classinfo.inputs[0]) is P["make_tuple"]:
        return any(_may_be_class_value(c) for c in classinfo.inputs[1:])
    return True


def _may_hold_class_value(node: Node) -> bool:
    """Whether `node` may be a class passed as a value (a J-callable in derivative code):
    a parameter, what a call returns, or an item taken out of a container or a branch;
    not a constant or what another primitive makes."""
    if isinstance(node, Parameter):
        return True
    if not isinstance(node, Apply):
        return False
    prim = _primitive(node.inputs[0])
    if prim is None:
        return True
    if prim is P["make_tuple"]:
        return any(_may_hold_class_value(i) for i in node.inputs[1:])
    return prim.selects


def _class_positions(prim: Primitive) -> list[int]:
    """The positions of a primitive's parameters that take a class (`dtype`, `cls`)."""
    return [i for i, name in enumerate(prim.signature.parameters) if name in ("dtype", "cls")]


def _may_call_parameter(g: Graph, i: int) -> bool:
    """Whether the value `g` receives as parameter i may be called: it is called, in `g`
    or a graph nested in it, or passed to (or returned by) something other than a
    primitive, which might call it."""
    if g.vararg or not 0 <= i < len(g.parameters):
        return True
    p = g.parameters[i]
    for h in reachable_graphs(g):
        if h.output is p:
            return True
        for n in graph_nodes(h):
            inputs = n.inputs
            if inputs[0] is p:
                return True
            if p in inputs[1:]:
                prim = _primitive(inputs[0])
                if prim is None or prim.passes_on:
                    return True
    return False


def _derived_graph(name: str, parent: Graph | None = None,
                   loc: Location | None = None) -> Graph:
    g = Graph(name, parent, loc)
    g.derived = True
    return g


def _derived(g: Graph) -> Graph:
    """A rule's graph (and the graphs inside it), marked as derivative code."""
    if not g.derived:
        for h in reachable_graphs(g):
            h.derived = True
    return g


# Batched graphs built from a function as the optimizer left it (`tl.vmap` inside compiled
# code: `api_graphs.expand_transforms`, `vmap_api`), each with how to batch the function
# as parsed instead: what J differentiates where the optimized code reaches a step only
# the optimizer makes (`Primitive.after_ad`, with no reverse rule).
AS_PARSED: weakref.WeakKeyDictionary[Graph, Callable[[], Graph]] = \
    weakref.WeakKeyDictionary()


def _batched_as_parsed(g: Graph) -> Graph | None:
    """For a graph batched from a function as the optimizer left it (`AS_PARSED`)
    that reaches a step only the optimizer makes (`Primitive.after_ad`, which has no
    reverse rule: J gave it zero sensitivities, silently): the same function batched as
    parsed, which J differentiates instead. None for any other graph."""
    build = AS_PARSED.get(g)
    if build is None or not any(
            (p := prim_of(n)) is not None and p.after_ad and not p.differentiable
            for h in reachable_graphs(g) for n in graph_nodes(h)):
        return None
    return build()


# The same graphs (and the stand-ins of `tl.vmap` calls), each with how to build one that
# calls the function on each element and stacks the results (`batch.vmap_graph`'s
# `each`): what J differentiates while `EACH_ELEMENT_ON` holds, for a program whose
# batched code met a value whose shape differs across the batch (`RaggedBatch`; see
# `grad_api.GradFunction.each_element`).
EACH_ELEMENT: weakref.WeakKeyDictionary[Graph, Callable[[], Graph]] = \
    weakref.WeakKeyDictionary()
EACH_ELEMENT_ON: list[bool] = []


def _optimizer_step_refused(prim: Primitive, loc: Location | None) -> GradError:
    """Reverse mode met a step only the optimizer makes (`Primitive.after_ad`), which has
    no reverse rule: refused, where a zero sensitivity would be silently wrong."""
    where = f"{loc}: " if loc is not None else ""
    return GradError(
        f"{where}internal error: reverse mode met {prim.name}, which only the optimizer "
        f"makes and which has no reverse rule (in code optimized before it was "
        f"differentiated). Please report it; TAPELESS_OPTIMIZE=0 avoids it")


def _primitive(node: Node) -> Primitive | None:
    if isinstance(node, Constant):
        if isinstance(node.value, Primitive):
            return node.value
    return None


class JTransform:
    """Maps primal graphs to their J graphs. One instance shares work between the graphs
    it transforms (a graph is transformed once)."""

    def __init__(self, outer: list[Node] | dict[int, Node] | None = None,
                 activity: Activity | None = None) -> None:
        """`outer`: nodes of code around the graphs transformed (the free variables of a
        function differentiated inside compiled code), which J sees as plain values; or,
        by id, what J sees for each (a function made J-callable by `lift`). `activity`:
        which values to differentiate (`ad/activity.py`; None: all of them); the others
        are computed as constants are, with no backpropagator, no sensitivity and no
        place on a loop's stack."""
        self.activity = activity
        self.graphs: dict[int, Graph] = {}
        # primal -> J value
        self.values: dict[int, Node] = dict(outer) if isinstance(outer, dict) else \
            {n.id: n for n in outer or ()}
        self.backprops: dict[int, Node] = {}  # primal node -> its backpropagator
        self.calls: dict[int, list[Node]] = {}  # primal node -> the call computing both
        self.wrappers: dict[str, Graph] = {}
        self.value_graphs: dict[int, Graph] = {}  # graph -> its J as a Python callable
        self.constructors: dict[type, Graph] = {}
        self.loops: dict[int, _LoopParts] = {}  # primal loop node -> what its backward needs
        # Whether J of a known callee is copied into a loop's body (`_inline_in_loop`):
        # for a gradient taken inside compiled code, whose derivative code J may see
        # again (a first-order gradient's loops save the callee's backpropagator, and
        # the optimizer rebuilds it from its free variables in the backward loop).
        self.copy_loop_callees = False

    def active(self, node: Node) -> bool:
        """Whether `node` (a primal node) is differentiated."""
        return self.activity is None or self.activity.active(node)

    # --- graphs -------------------------------------------------------------------

    def graph(self, g: Graph) -> Graph:
        if g.id in self.graphs:
            return self.graphs[g.id]
        before = set(self.graphs)
        try:
            if g.custom is not None:
                return self._custom(g)
            if EACH_ELEMENT_ON and g in EACH_ELEMENT:
                self.graphs[g.id] = jg = self.graph(EACH_ELEMENT[g]())
                return jg
            unoptimized = _batched_as_parsed(g)
            if unoptimized is not None:
                self.graphs[g.id] = jg = self.graph(unoptimized)
                return jg
            return self._graph(g)
        except BaseException:
            # (A graph half built is never handed out again: a later try starts over.)
            for key in set(self.graphs) - before:
                del self.graphs[key]
            raise

    def _graph(self, g: Graph) -> Graph:
        parent = self.graphs.get(g.parent.id) if g.parent is not None else None
        jg = _derived_graph(f"J_{g.name}", parent, g.loc)
        self.graphs[g.id] = jg
        jg.take_signature(g)
        jg.stands_for = g.stands_for
        for p in g.parameters:
            self.values[p.id] = jg.add_parameter(p.name, p.loc)
        for node in graph_nodes(g):
            self._forward(node, jg)
        value = self.value(g.output, jg)
        backprop = self._backward(g, jg)
        jg.output = jg.apply(P["make_tuple"], value, Constant(backprop), loc=g.loc)
        jg.effects = self._effects(g)
        return jg

    def _custom(self, g: Graph) -> Graph:
        """J of a function with the user's derivative rules (`tl.custom_vjp`,
        `tl.custom_jvp`): the rules' code (`tapeless.ad.custom`), not the body's J."""
        from . import custom

        rule = g.custom
        assert rule is not None
        helper: Any
        jg = _derived_graph(f"J_{g.name}", None, g.loc)
        self.graphs[g.id] = jg
        jg.take_signature(g)
        params = [jg.add_parameter(p.name, p.loc) for p in g.parameters]
        xs = jg.apply(P["make_tuple"], *params)
        diff = custom.differentiated(rule)
        if rule.kind == "checkpoint" and rule.fwd is not None and rule.bwd is not None:
            recompute = self.graph(rule.bwd)
            recompute.recomputed = True
            jg.output, jg.effects = inline_body(
                custom.prepared(custom.checkpoint_saving_reverse), jg,
                [Constant(rule.fwd), Constant(recompute), xs], loc=g.loc)
            return jg
        if rule.kind == "checkpoint":
            recompute = self.graph(rule.fun)
            recompute.recomputed = True
            jg.output, jg.effects = inline_body(custom.prepared(custom.checkpoint_reverse), jg, [
                Constant(rule.fun), Constant(recompute), xs], loc=g.loc)
            return jg
        if rule.kind == "vjp":
            helper, first = custom.vjp_reverse, [Constant(rule.fwd), Constant(rule.bwd)]
        else:
            helper, first = custom.jvp_reverse, [Constant(rule.fun),
                                                 Constant(self.graph(custom.along_graph(rule)))]
        jg.output, jg.effects = inline_body(custom.prepared(helper), jg, [
            *first, xs, Constant(diff), Constant(rule.nondiff)], loc=g.loc)
        return jg

    def _effects(self, g: Graph) -> list[Node]:
        return [c for e in g.effects for c in self.calls.get(e.id, [])]

    def value(self, node: Node | None, jg: Graph) -> Node:
        """The J-space value of a primal node: data is itself; functions are their J."""
        if node is None:
            return Constant(None)
        if isinstance(node, Constant):
            v = node.value
            if isinstance(v, Graph):
                return Constant(self.graph_value(v), node.loc)
            prim = v if isinstance(v, Primitive) else (
                lookup_callable(v) if callable(v) and not isinstance(v, type) else None)
            if prim is not None:
                return Constant(self.primitive_value(prim), node.loc)
            return node
        if node.id not in self.values:
            raise GradError(f"internal error: {node!r} of {node.graph} used before it was "
                            "transformed")
        return self.values[node.id]

    # --- forward ------------------------------------------------------------------

    def _forward(self, node: Node, jg: Graph) -> None:
        assert isinstance(node, Apply)
        callee, args = node.inputs[0], node.inputs[1:]
        prim = _primitive(callee)
        if prim is not None and prim.name in ("for_range", "while_loop") and \
                self._loop_forward(node, prim.name, jg):
            return
        jargs = [self.value(a, jg) for a in args]
        if prim is not None:
            # A class passed as a value and used as a dtype or to make an instance: the
            # class, not its J-callable.
            for i in _class_positions(prim):
                if i < len(args) and _may_hold_class_value(args[i]):
                    jargs[i] = jg.apply(P["class_of"], jargs[i], loc=node.loc)
        if prim is not None and not prim.differentiable:
            if prim.after_ad:
                raise _optimizer_step_refused(prim, node.loc)
            if prim.name == "isinstance" and len(args) == 2 and _may_be_class_value(args[1]):
                # The class may have been passed as a value: in derivative code it is
                # then a J-callable, which knows the class it stands for.
                jargs[1] = jg.apply(P["class_of"], jargs[1], loc=node.loc)
            elif prim.equality and \
                    any(_is_struct_class(a) or isinstance(getattr(a, "value", None), type)
                        for a in args):
                # (`c is float`, `c == float`: likewise, against a class.)
                jargs = [jg.apply(P["class_of"], j, loc=node.loc) if _may_be_class_value(a)
                         else j for a, j in zip(args, jargs, strict=True)]
            plain = jg.apply(callee, *jargs, loc=node.loc, name=node.name)
            self.values[node.id] = plain
            self.calls[node.id] = [plain]
            return
        if prim is not None and prim.name in ("list_map", "list_flatmap") and \
                not self.active(node) and is_constant_graph(args[0]) and \
                len(args[0].value.parameters) == 1 and not args[0].value.vararg:
            # A comprehension J need not differentiate (a list of column indices
            # filtered): its values alone, by the function's J with its value taken, not
            # the rule's (value, backpropagator) pairs and their projection.
            fn = _derived_graph(f"value_{args[0].value.name}", jg, node.loc)
            item = fn.add_parameter("item", node.loc)
            fn.output = fn.apply(P["tuple_getitem"], fn.apply(jargs[0], item, loc=node.loc),
                                 0, loc=node.loc)
            plain = jg.apply(callee, Constant(fn, node.loc), jargs[1], loc=node.loc,
                             name=node.name)
            self.values[node.id] = plain
            self.calls[node.id] = [plain]
            return
        if prim is not None:
            rule = self.rule(prim)
            if prim.variadic:
                fixed = len(rule.parameters) - 1
                jargs = jargs[:fixed] + [jg.apply(P["make_tuple"], *jargs[fixed:])]
            # The rule's body is copied in place, so the backpropagator it makes is a
            # known closure, which the backward pass inlines in turn.
            mark = _watermark()
            out, effects = inline_body(rule, jg, jargs, loc=node.loc)
            self.calls[node.id] = effects
            if _is_pair(out):
                value, backprop = out.inputs[1], out.inputs[2]
                if isinstance(value, Apply) and value.graph is jg and value.id > mark and \
                        (node.name or not value.name):
                    value.name = node.name  # the user's name, not the rule's (`y`)
                self.values[node.id] = value
                if self.active(node):
                    self.backprops[node.id] = backprop
                return
            call = out
        else:
            # A known graph takes one input per parameter; a value is called the way
            # Python calls it. A dataclass or NamedTuple passed to a call becomes
            # J-callable there (like a primitive passed as a value, it is then a
            # function in derivative code, not a class to test instances against).
            jcallee = Constant(self.graph(callee.value), callee.loc) \
                if is_constant_graph(callee) else self.value(callee, jg)
            known = callee.value if is_constant_graph(callee) else None
            jargs = [self.class_value(a, known, i) or j
                     for i, (a, j) in enumerate(zip(args, jargs, strict=True))]
            copied = self._inline_in_loop(jcallee, jg, len(jargs)) \
                if known is not None and self.copy_loop_callees else None
            if copied is not None:
                # In a loop's body: J of the callee copied in place, so that its
                # backpropagator is a known closure whose free variables (numbers,
                # arrays) the loop saves, not a closure made each iteration (which J
                # of derivative code, a nested gradient's, would have to save and
                # differentiate as a value).
                out, effects = inline_body(copied, jg, jargs, loc=node.loc)
                self.calls[node.id] = effects
                if _is_pair(out):
                    self.values[node.id] = out.inputs[1]
                    if self.active(node):
                        self.backprops[node.id] = out.inputs[2]
                    return
                call = out
            elif known is not None or node.graph.derived or known_callee(jcallee):
                call = jg.apply(jcallee, *jargs, loc=node.loc)
            else:
                # A callee known only at run time may be other than a J-callable (a
                # callable object, a function held in a container): `call_value` gives
                # it one (the optimizer calls a callee it comes to know directly).
                call = jg.apply(P["call_value"], Constant(1), jcallee,
                                jg.apply(P["make_tuple"], *jargs), loc=node.loc)
            self.calls[node.id] = [call]
        self.values[node.id] = jg.apply(P["tuple_getitem"], call, 0, loc=node.loc,
                                        name=node.name)
        if not self.active(node):
            return
        self.backprops[node.id] = jg.apply(P["tuple_getitem"], call, 1, loc=node.loc,
                                           name=f"{node.name}_backprop" if node.name else "")

    # --- loops ------------------------------------------------------------------
    # A loop's J is a loop: the forward loop runs J of the body with the state kept flat
    # and pushes, each iteration, the values the body's backpropagator needs (not a
    # closure) onto a stack; the backward pass is a while loop that pops them and runs a
    # copy of that backpropagator. No recursion, however many iterations.

    @staticmethod
    def _inline_in_loop(jcallee: Node, jg: Graph, nargs: int) -> Graph | None:
        """J of a known callee, `jcallee`, where it is copied into `jg` rather than
        called (else None): `jg` is (in) the J of a loop's body, and the callee's J is
        complete (not a graph of a recursion still being built), takes its arguments
        one per parameter, has no effects, and returns its `(value, backpropagator)`
        pair as a display."""
        h: Graph | None = jg
        while h is not None and h.loop_role != "forward":
            h = h.parent
        if h is None or not is_constant_graph(jcallee):
            return None
        callee: Graph = jcallee.value
        if callee.output is not None and not callee.vararg and \
                len(callee.parameters) == nargs and not callee.effects and \
                _is_pair(callee.output) and callee is not jg and \
                not any(g is callee for g in _ancestors(jg)):
            return callee
        return None

    def _loop_forward(self, node: Apply, kind: str, jg: Graph) -> bool:
        body_at = 4 if kind == "for_range" else 2
        body_node = node.inputs[body_at]
        cond_node = node.inputs[1] if kind == "while_loop" else None
        if not isinstance(body_node, Constant) or not isinstance(body_node.value, Graph):
            return False
        if cond_node is not None and not (isinstance(cond_node, Constant)
                                          and isinstance(cond_node.value, Graph)):
            return False
        body: Graph = body_node.value
        init = node.inputs[body_at + 1:]
        k = len(init)
        lead = 1 if kind == "for_range" else 0
        fb = _derived_graph(f"J_{body.name}", jg, body.loc)
        fb.loop_role = "forward"  # (pushes onto a stack)
        self.graphs[body.id] = fb  # graphs nested in the body nest in its J
        for p in body.parameters:
            self.values[p.id] = fb.add_parameter(p.name, p.loc)
        stack = fb.add_parameter("stack")
        for n in graph_nodes(body):
            self._forward(n, fb)
        out = self.value(body.output, fb)
        backprop = self._backward(body, fb)
        saved = [fv for fv in free_variables(backprop) if fv.graph is fb]
        # (A loop nothing differentiates through saves nothing: no backward loop.)
        active = self.active(node)
        pushed = fb.apply(P["make_tuple"], fb.apply(P["make_tuple"], *saved), stack,
                          name="stack") if active else stack
        fb.output = fb.apply(P["make_tuple"], *[fb.apply(P["tuple_getitem"], out, j)
                                                for j in range(k)], pushed)
        fb.effects = self._effects(body)
        jinit = [self.value(a, jg) for a in init]
        if kind == "for_range":
            bounds = [self.value(a, jg) for a in node.inputs[1:4]]
            loop = jg.apply(P["for_range"], *bounds, Constant(fb), *jinit, Constant(None),
                            loc=node.loc)
        else:
            assert isinstance(cond_node, Constant)  # (tested above, for a while loop)
            cond: Graph = cond_node.value
            fc = _derived_graph(f"J_{cond.name}", jg, cond.loc)
            self.graphs[cond.id] = fc
            for p in cond.parameters:
                self.values[p.id] = fc.add_parameter(p.name, p.loc)
            fc.add_parameter("stack")
            for n in graph_nodes(cond):
                self._forward(n, fc)
            fc.output = self.value(cond.output, fc)
            fc.effects = self._effects(cond)
            loop = jg.apply(P["while_loop"], Constant(fc), Constant(fb), *jinit,
                            Constant(None), loc=node.loc)
        self.calls[node.id] = [loop]
        self.values[node.id] = jg.apply(P["make_tuple"], *[
            jg.apply(P["tuple_getitem"], loop, j) for j in range(k)], name=node.name)
        final_stack = jg.apply(P["tuple_getitem"], loop, k, name="stack")
        if active:
            self.loops[node.id] = (body, backprop, saved, final_stack, lead)
        return True

    def _loop_backward(self, node: Apply, d: Node, bg: Graph,
                       contribute: Callable[[Node, Node], None]) -> None:
        body, backprop, saved, final_stack, lead = self.loops[node.id]
        init = node.inputs[len(node.inputs) - len(body.parameters) + lead:]
        k = len(init)
        fvs = free_variables(body)
        bb = _derived_graph(f"B_{body.name}", bg, body.loc)
        bb.loop_role = "backward"  # (pops what `fb` pushed)
        stack = bb.add_parameter("stack")
        ds = [bb.add_parameter(_sens_name(p) or "_d") for p in body.parameters[lead:lead + k]]
        denv = [bb.add_parameter(_sens_name(fv) or "d_env") for fv in fvs]
        values = bb.apply(P["tuple_getitem"], stack, 0, name="saved")
        rest = bb.apply(P["tuple_getitem"], stack, 1, name="rest")
        substitute = {fv.id: bb.apply(P["tuple_getitem"], values, j, name=fv.name)
                      for j, fv in enumerate(saved)}
        out, _ = inline_body(backprop, bb, [bb.apply(P["make_tuple"], *ds)], substitute,
                             loc=node.loc)
        env = bb.apply(P["tuple_getitem"], out, 0)
        new_ds = [bb.apply(P["tuple_getitem"], out, 1 + lead + j) for j in range(k)]
        new_env = [bb.apply(P["gadd"], denv[t], bb.apply(P["tuple_getitem"], env, t))
                   for t in range(len(fvs))]
        bb.output = bb.apply(P["make_tuple"], rest, *new_ds, *new_env)
        bc = _derived_graph("B_cond", bg, body.loc)
        stack_c = bc.add_parameter("stack")
        for j in range(k + len(fvs)):
            bc.add_parameter(f"_{j}")
        bc.output = bc.apply(P["is_not"], stack_c, Constant(None))
        start = [bg.apply(P["tuple_getitem"], d, j) for j in range(k)]
        loop = bg.apply(P["while_loop"], Constant(bc), Constant(bb), final_stack, *start,
                        *[Constant(ZERO)] * len(fvs), loc=node.loc)
        for j, a in enumerate(init):
            if not (isinstance(a, Constant) and not isinstance(a.value, Graph)):
                contribute(a, bg.apply(P["tuple_getitem"], loop, 1 + j, name=_sens_name(a)))
        for t, fv in enumerate(fvs):
            contribute(fv, bg.apply(P["tuple_getitem"], loop, 1 + k + t, name=_sens_name(fv)))

    def rule(self, prim: Primitive) -> Graph:
        """The graph of a primitive's reverse rule (compiled once)."""
        from ..frontend.parser import parse

        fn = prim.reverse_rule
        if fn is None and prim.alias:
            fn = P[prim.alias].reverse_rule
        if fn is None:
            raise GradError(f"no derivative rule is registered for the primitive {prim.name}")
        return _derived(parse(fn))

    def graph_value(self, g: Graph) -> Graph:
        """J of a graph used as a value. Python calls it with `*args` spread and
        defaults filled in, so its backpropagator must return one sensitivity per
        positional argument passed: where `g` has `*args`, keyword-only parameters or
        defaults, a wrapper `(*args) -> J(g)(*args)` lays its sensitivities out that
        way."""
        jg = self.graph(g)
        specs = g.signature
        if specs is None or all(s.kind == "pos" and s.default is None for s in specs):
            jg.derivative_of = ("J", g)
            return jg
        if g.id not in self.value_graphs:
            npos = sum(s.kind == "pos" for s in specs)
            w = self._value_wrapper(f"{jg.name}_value", jg.parent, g.loc, Constant(jg),
                                    npos, True)
            w.stands_for = g.stands_for
            w.derivative_of = ("J", g)
            self.value_graphs[g.id] = w
        return self.value_graphs[g.id]

    def _value_wrapper(self, name: str, parent: Graph | None, loc: Location | None,
                       callee: Constant, npos: int, has_env: bool,
                       bind: list | None = None) -> Graph:
        """A J-callable `(*args) -> (value, backpropagator)`. Without `bind`, it calls
        the J graph `callee` with the arguments; with `bind`, it binds them to the
        parameters of a primitive by `bind_args(*bind)` and applies `callee` (the
        primitive's rule, or the primitive itself where it is not differentiable) to
        them. Its backpropagator returns the environment's sensitivity, then one per
        argument passed."""
        from ..frontend.parser import ParamSpec, parse
        from ..primitives.rules_core import bind_args, value_sens

        w = _derived_graph(name, parent, loc)
        args = w.add_parameter("args")
        w.vararg = True
        w.signature = [ParamSpec("args", "vararg")]
        if bind is None:
            call = w.apply(P["call_star"], callee, args, loc=loc)
        else:
            bound, effects = inline_body(_derived(parse(bind_args)), w,
                                         [Constant(bind[0]), args, *map(Constant, bind[1:])])
            n = bind[1] + int(bind[3]) + len(bind[4])  # positional, `*args`, keyword-only
            call = w.apply(callee, *[w.apply(P["tuple_getitem"], bound, i) for i in range(n)])
        back = _derived_graph(f"B_{name}", w, loc)
        d = back.add_parameter("d")
        m = back.apply(P["len"], args)
        if isinstance(callee.value, Primitive):  # not differentiable: zero sensitivities
            back.output = back.apply(P["mul"], Constant((ZERO,)),
                                     back.apply(P["add"], Constant(1), m))
            w.output = w.apply(P["make_tuple"], call, Constant(back))
            w.effects = [call]
            return w
        inner = w.apply(P["tuple_getitem"], call, 1)
        sens = back.apply(inner, d)
        out, _ = inline_body(_derived(parse(value_sens)), back, [sens, Constant(int(has_env)),
                                                       Constant(npos), m])
        back.output = out if has_env else back.apply(
            P["add"], back.apply(P["make_tuple"], Constant(ZERO)), out)
        w.output = w.apply(P["make_tuple"], w.apply(P["tuple_getitem"], call, 0),
                           Constant(back))
        w.effects = [call]
        return w

    def class_value(self, node: Node, callee: Graph | None = None, i: int = -1
                    ) -> Constant | None:
        """A class passed to a call, as a J-callable (None for other arguments, and for a
        class the known `callee` never calls, which keeps it a class for `is`, `==`,
        `dtype=`...): the constructor of a dataclass or NamedTuple, or a primitive's
        wrapper (`float`, `range`, ...). It stands for the class: `class_of` gives the
        class back, for `isinstance`."""
        if not isinstance(node, Constant) or not isinstance(node.value, type):
            return None
        if callee is not None and not _may_call_parameter(callee, i):
            return None
        cls = node.value
        if _is_struct_class(node):
            return Constant(self.constructor(cls), node.loc)
        prim = lookup_callable(cls)
        if prim is None:
            return None
        w = self.primitive_value(prim)
        w.stands_for = cls
        return Constant(w, node.loc)

    def constructor(self, cls: type) -> Graph:
        """A dataclass or NamedTuple passed as a value, as a J-callable: J of a graph
        `(*fields) -> cls(*fields)`."""
        if cls not in self.constructors:
            from ..frontend.parser import ParamSpec

            g = _derived_graph(cls.__name__)
            fields = g.add_parameter("fields")
            g.vararg = True
            g.signature = [ParamSpec("fields", "vararg")]
            g.output = g.apply(P["construct"], Constant(cls), fields)
            g.stands_for = cls
            self.constructors[cls] = self.graph_value(g)
        return self.constructors[cls]

    def primitive_value(self, prim: Primitive) -> Graph:
        """A primitive used as a value (e.g. `np.tanh` passed to a function): a graph
        with the calling convention of J graphs (its backpropagator returns an
        environment sensitivity first). Python passes the arguments positionally; they
        are bound to the primitive's parameters (defaults filled in, `*args` packed) for
        its rule, and the rule's sensitivities laid out per argument passed."""
        import inspect

        if prim.name not in self.wrappers:
            kinds = inspect.Parameter
            params = list(prim.signature.parameters.values())
            pos = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY,
                                                   kinds.POSITIONAL_OR_KEYWORD)]
            pos_defaults = tuple(p.default for p in pos if p.default is not p.empty)
            star = any(p.kind is kinds.VAR_POSITIONAL for p in params)
            kw_defaults = tuple(p.default for p in params if p.kind is kinds.KEYWORD_ONLY)
            if prim.after_ad and not prim.differentiable:
                raise _optimizer_step_refused(prim, None)
            callee = Constant(self.rule(prim) if prim.differentiable else prim)
            self.wrappers[prim.name] = self._value_wrapper(
                f"J_{prim.name}", None, None, callee, len(pos), False,
                [prim.name, len(pos), pos_defaults, star, kw_defaults])
            self.wrappers[prim.name].derivative_of = ("J", prim)
        return self.wrappers[prim.name]

    # --- backward -----------------------------------------------------------------

    def _backward(self, g: Graph, jg: Graph) -> Graph:
        bg = _derived_graph(f"B_{g.name}", jg, g.loc)
        dout = bg.add_parameter(_sens_name(g.output) if g.output is not None and
                                _sens_name(g.output) else "dout")
        sens: dict[int, list[Node]] = {}
        fvs = free_variables(g)

        def contribute(node: Node, d: Node) -> None:
            if isinstance(node, Constant):
                if isinstance(node.value, Graph):
                    for k, fv in enumerate(free_variables(node.value)):
                        contribute(fv, bg.apply(P["tuple_getitem"], d, k))
                return
            if not self.active(node):  # (a constant to the derivative: no sensitivity)
                return
            sens.setdefault(node.id, []).append(d)

        if g.output is not None:
            contribute(g.output, dout)
        for node in reversed(graph_nodes(g)):
            parts = sens.get(node.id)
            if parts and node.id in self.loops:
                self._loop_backward(node, self._sum(bg, parts, node), bg, contribute)
                continue
            if not parts or node.id not in self.backprops:
                continue
            d = self._sum(bg, parts, node)
            prim = _primitive(node.inputs[0])
            if prim is not None and not prim.accepts_zero:
                d = bg.apply(P["sens_of"], d, self.values[node.id])
            backprop = self.backprops[node.id]
            mark = _watermark()
            if isinstance(backprop, Constant) and isinstance(backprop.value, Graph) and \
                    len(backprop.value.parameters) == 1:
                grads, _ = inline_body(backprop.value, bg, [d], loc=node.loc)
            else:
                grads = bg.apply(backprop, d, loc=node.loc)
            offset = 0
            if prim is None:
                contribute(node.inputs[0], bg.apply(P["tuple_getitem"], grads, 0))
                offset = 1
            # A copied rule's sensitivities are the items of its output tuple.
            items = grads.inputs[1:] if isinstance(grads, Apply) and grads.graph is bg and \
                grads.id > mark and _primitive(grads.inputs[0]) is P["make_tuple"] else None
            for i, inp in enumerate(node.inputs[1:]):
                if isinstance(inp, Constant) and not isinstance(inp.value, Graph):
                    continue
                if items is not None and i + offset < len(items):
                    contribute(inp, items[i + offset])
                    continue
                contribute(inp, bg.apply(P["tuple_getitem"], grads, i + offset, loc=node.loc,
                                         name=_sens_name(inp)))
        env = [self._sum(bg, sens[fv.id], fv) if fv.id in sens else Constant(ZERO)
               for fv in fvs]
        params = [self._sum(bg, sens[p.id], p) if p.id in sens else Constant(ZERO)
                  for p in g.parameters]
        bg.output = bg.apply(P["make_tuple"], bg.apply(P["make_tuple"], *env), *params)
        return bg

    def _sum(self, bg: Graph, parts: list[Node], like: Node) -> Node:
        total = parts[0]
        for p in parts[1:]:
            total = bg.apply(P["gadd"], total, p)
        # The sensitivity of a named value is named after it (a single part, where
        # nothing named it yet: the sensitivity of `x` in `x + y` may be the sum's; not
        # an item taken out of a tuple, which is written where it is used).
        if _sens_name(like) and isinstance(total, Apply) and total.graph is bg and (
                len(parts) > 1 or not (total.name or _primitive(total.inputs[0]) is
                                       P["tuple_getitem"])):
            total.name = _sens_name(like)
        return total


def _sens_name(node: Node | None) -> str:
    """The name of the sensitivity of a named value: `d_h` for `h` ("" for a value
    without a name, `_`, or a name that is not an identifier, such as a loop's flag)."""
    name = node.name if node is not None else ""
    return f"d_{name}" if name and name.isidentifier() and name.strip("_") else ""


def _watermark() -> int:
    """An id below every node made from now on (node ids increase)."""
    return serial_mark()


def is_parameter(node: Node) -> bool:
    return isinstance(node, Parameter)


def _ancestors(g: Graph) -> list[Graph]:
    out = []
    h = g.parent
    while h is not None:
        out.append(h)
        h = h.parent
    return out
