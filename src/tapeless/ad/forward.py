"""Forward mode by source transformation: the F transform.

For every graph `g(x_1, ..., x_n)`, `F(g)` takes `(x_1, ..., x_n, t_1, ..., t_n)`, the
arguments and their tangents, and returns `(value, tangent)`. Tangents have the structure
of sensitivities (`tapeless.runtime`: `ZERO` for a zero of any structure, a dict for a
dataclass). A function value is its F-callable, which closes over the tangents of what it
captures, so its own tangent is ZERO; a call `f(a, ...)` becomes `F(f)(a, ..., t_a, ...)`.

A primitive's forward rule (`Primitive.jvp_rule`, registered by `tapeless.primitives.
jvp_rules`) takes the primitive's parameters and returns `(value, m_1, ..., m_n)`, where
`m_i` maps the tangent of parameter i to its contribution to the result's tangent (None
where the parameter has no derivative): the transform applies only the maps of tangents
that are not known to be zero, so a constant argument costs nothing. A map is given a
value, never ZERO (`sens_of` makes one), except where the parameter's own value is None
(an optional argument left out), whose tangent stays ZERO. A joint rule
(`jvp_joint`) takes the parameters and then their tangents and returns `(value,
tangent)`: for primitives that call function values, which are F-callables here. Two
declared properties give a rule without writing one: `linear` (the tangent is the
primitive applied to the tangents) and `jvp_from_reverse` (a one-argument function whose
Jacobian is diagonal, so its backpropagator maps tangents too).

Loops stay loops: the body's F carries the state's tangents alongside the state, with no
stack. The output is ordinary IR, so F and J apply to it again (derivatives of any order,
in any mix of modes)."""

from __future__ import annotations

from typing import Any

from ..errors import GradError
from ..ir.clone import inline_body, is_internal, is_recursive
from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Location,
    Node,
    graph_nodes,
    is_constant_graph,
    reachable_graphs,
)
from ..primitives import PRIMITIVES, Primitive, lookup_callable
from ..runtime import ZERO
from .callees import known_callee

P = PRIMITIVES


def _primitive(node: Node) -> Primitive | None:
    if isinstance(node, Constant) and isinstance(node.value, Primitive):
        return node.value
    return None


def _is_zero(node: Node) -> bool:
    return isinstance(node, Constant) and node.value is ZERO


def _where(loc: Location | None) -> str:
    return f"{loc}: " if loc is not None else ""


def _derived_graph(name: str, parent: Graph | None, loc: Location | None) -> Graph:
    g = Graph(name, parent, loc)
    g.derived = True
    return g


def _derived(g: Graph) -> Graph:
    if not g.derived:
        for h in reachable_graphs(g):
            h.derived = True
    return g


class OptimizedCodeRefused(GradError):
    """F met, in optimized code, a primitive only the optimizer makes that has no forward
    rule (`Primitive.after_ad`): the caller differentiates the code as it was before
    optimizing instead."""


def tangent_name(name: str) -> str:
    """The name of a value's tangent in generated code: `x_dot` for `x`."""
    return f"{name}_dot" if name and name.isidentifier() and name.strip("_") else ""


class FTransform:
    """Maps graphs to their F graphs (each graph is transformed once)."""

    def __init__(self, outer: dict[int, Node] | None = None,
                 parent: Graph | None = None) -> None:
        """`outer`: the nodes of code around the graphs transformed (the free variables
        of a function whose `jvp` is taken inside compiled code), by id, with what F
        sees for each (made by `lift_fwd` in `parent`): constants, whose tangents are
        zero. `parent`: the graph the transformed graphs nest in, if any."""
        self.graphs: dict[int, Graph] = {}
        self.values: dict[int, Node] = dict(outer or {})
        self.tangents: dict[int, Node] = {i: Constant(ZERO) for i in outer or {}}
        self.wrappers: dict[str, Graph] = {}
        self.value_graphs: dict[int, Graph] = {}
        self.transposed: dict[str, Graph] = {}  # primitive -> J of its `reverse_along`
        self.parent = parent

    # --- graphs -------------------------------------------------------------------

    def graph(self, g: Graph) -> Graph:
        """F of `g`, as called where `g` is known: one parameter per parameter of `g` (a
        `*args` one takes the tuple the call packs), then one tangent per parameter."""
        if g.id in self.graphs:
            return self.graphs[g.id]
        before = set(self.graphs)
        try:
            return self._graph(g)
        except BaseException:
            # (A graph half built is never handed out again: a later try starts over.)
            for key in set(self.graphs) - before:
                del self.graphs[key]
            self.value_graphs = {k: v for k, v in self.value_graphs.items() if k in before}
            raise

    def _graph(self, g: Graph) -> Graph:
        if g.custom is not None and g.custom.kind != "checkpoint":
            # (A checkpoint saves nothing in forward mode anyway: F of its body.)
            return self._custom(g)
        parent = self.graphs.get(g.parent.id, self.parent) if g.parent is not None else \
            self.parent
        fg = _derived_graph(f"F_{g.name}", parent, g.loc)
        self.graphs[g.id] = fg
        fg.stands_for = g.stands_for
        for p in g.parameters:
            self.values[p.id] = fg.add_parameter(p.name, p.loc)
        for p in g.parameters:
            self.tangents[p.id] = fg.add_parameter(tangent_name(p.name) or "t", p.loc)
        fg.effects = self._body(g, fg)
        fg.output = fg.apply(P["make_tuple"], self.value(g.output, fg),
                             self.tangent(g.output), loc=g.loc)
        return fg

    def _custom(self, g: Graph) -> Graph:
        """F of a function with the user's derivative rules (`tl.custom_jvp`,
        `tl.custom_vjp`): the rules' code (`tapeless.ad.custom`), not the body's F."""
        from . import custom

        rule = g.custom
        assert rule is not None
        helper: Any
        fg = _derived_graph(f"F_{g.name}", None, g.loc)
        self.graphs[g.id] = fg
        xs = [fg.add_parameter(p.name, p.loc) for p in g.parameters]
        ts = [fg.add_parameter(tangent_name(p.name) or "t", p.loc) for p in g.parameters]
        diff = custom.differentiated(rule)
        if rule.kind == "vjp":
            from .reverse import JTransform

            helper, first = custom.vjp_forward, [
                Constant(rule.fwd), Constant(JTransform().graph(custom.along_graph(rule)))]
        else:
            helper, first = custom.jvp_forward, [Constant(rule.rule)]
        fg.output, fg.effects = inline_body(custom.prepared(helper), fg, [
            *first, fg.apply(P["make_tuple"], *xs), fg.apply(P["make_tuple"], *ts),
            Constant(diff), Constant(rule.nondiff)], loc=g.loc)
        return fg

    def _body(self, g: Graph, fg: Graph) -> list[Node]:
        """Transform `g`'s nodes into `fg`; returns the nodes carrying `g`'s effects."""
        effect_ids = {e.id for e in g.effects}
        effects: list[Node] = []
        for node in graph_nodes(g):
            made = self._forward(node, fg)
            if node.id in effect_ids:
                effects.extend(made)
        return effects

    def value(self, node: Node | None, fg: Graph) -> Node:
        """The F-space value of a primal node: data is itself; functions are their F."""
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
            if isinstance(v, type) and v not in (float, int, bool, complex, str):
                # (A class called in derivative code: not yet an F-callable.)
                return node
            return node
        if node.id not in self.values:
            raise GradError(f"internal error: {node!r} of {node.graph} used before it was "
                            "transformed")
        return self.values[node.id]

    def tangent(self, node: Node | None) -> Node:
        if node is None or isinstance(node, Constant):
            return Constant(ZERO)
        return self.tangents[node.id]

    # --- nodes --------------------------------------------------------------------

    def _forward(self, node: Apply, fg: Graph) -> list[Node]:
        """Transform one node; returns the nodes that carry its effects."""
        callee, args = node.inputs[0], node.inputs[1:]
        prim = _primitive(callee)
        if prim is not None and prim.loop:
            made = self._loop(node, prim, fg)
            if made is not None:
                return made
        if prim is not None:
            return self._primitive_call(node, prim, fg)
        vals = [self.value(a, fg) for a in args]
        tans = [self.tangent(a) for a in args]
        if is_constant_graph(callee):
            g = callee.value
            fgraph = self.graph(g)
            fcallee: Node = Constant(fgraph, callee.loc)
            if is_internal(g.loc) and g.custom is None and not is_recursive(g):
                # A helper of a rule (`_matmul_back`): copied in place, like the rule, so
                # that each copy is simplified for its own arguments' kinds.
                out, effects = inline_body(fgraph, fg, [*vals, *tans], loc=node.loc)
                self._set(node, *self._pair(out, fg, node))
                return effects
            call = fg.apply(fcallee, *vals, *tans, loc=node.loc)
        else:
            fcallee = self.value(callee, fg)
            if node.graph.derived or known_callee(fcallee):
                call = fg.apply(fcallee, *vals, *tans, loc=node.loc)
            else:
                # A callee known only at run time: an F-callable (a function of
                # generated code), or a callable that gets one there (a function held
                # in a container, a callable object).
                call = fg.apply(P["call_fwd"], fcallee, self.tangent(callee),
                                fg.apply(P["make_tuple"], *vals),
                                fg.apply(P["make_tuple"], *tans), loc=node.loc)
        self._set(node, fg.apply(P["tuple_getitem"], call, 0, loc=node.loc, name=node.name),
                  fg.apply(P["tuple_getitem"], call, 1, loc=node.loc,
                           name=tangent_name(node.name)))
        return [call]

    def _set(self, node: Node, value: Node, tangent: Node) -> None:
        self.values[node.id] = value
        self.tangents[node.id] = tangent

    def _primitive_call(self, node: Apply, prim: Primitive, fg: Graph) -> list[Node]:
        args = node.inputs[1:]
        vals = [self.value(a, fg) for a in args]
        tans = [self.tangent(a) for a in args]
        if not prim.differentiable and not (prim.after_ad and prim.linear):
            if prim.after_ad and not all(_is_zero(t) for t in tans):
                raise OptimizedCodeRefused(
                    f"forward mode: {prim.name} (made by the optimizer) has no forward rule")
            plain = fg.apply(node.inputs[0], *vals, loc=node.loc, name=node.name)
            self._set(node, plain, Constant(ZERO))
            return [plain]
        if prim.alias and prim.jvp_rule is None and not prim.linear and \
                not prim.jvp_from_reverse and not prim.jvp_by_transposition:
            prim = P[prim.alias]  # (a method: the function's rule, on the same parameters)
        if prim.variadic:
            fixed = len(prim.param_names) - 1
            packed_t: Node = Constant(ZERO) if all(_is_zero(t) for t in tans[fixed:]) else \
                fg.apply(P["make_tuple"], *tans[fixed:])
            pvals = vals[:fixed] + [fg.apply(P["make_tuple"], *vals[fixed:])]
            ptans = tans[:fixed] + [packed_t]
        else:
            pvals, ptans = vals, tans
        if prim.jvp_joint:
            out, effects = inline_body(self.rule(prim, node.loc), fg, pvals + ptans,
                                       loc=node.loc)
            self._set(node, *self._pair(out, fg, node))
            return effects
        if all(_is_zero(t) for t in ptans):
            plain = fg.apply(node.inputs[0], *vals, loc=node.loc, name=node.name)
            self._set(node, plain, Constant(ZERO))
            return [plain]
        if prim.jvp_by_transposition:
            return self._transposed(node, prim, fg, pvals, ptans)
        if prim.linear:
            value: Node = fg.apply(node.inputs[0], *vals, loc=node.loc, name=node.name)
            targs: list[Node] = list(pvals)
            # (Sensitivity plumbing and displays take a symbolic zero as it is; other
            # functions are given a tangent made of values.)
            takes_zero = prim.zero_preserving or prim.variadic or prim is P["gadd"]
            for i in prim.linear:
                targs[i] = ptans[i] if takes_zero else \
                    fg.apply(P["dense"], ptans[i], pvals[i])
            if prim.variadic:
                fixed = len(prim.param_names) - 1
                spread: list[Node] = [fg.apply(P["tuple_getitem"], targs[fixed], j)
                                      for j in range(len(vals) - fixed)]
                targs = targs[:fixed] + spread
            tangent = fg.apply(node.inputs[0], *targs, loc=node.loc,
                               name=tangent_name(node.name))
            self._set(node, value, tangent)
            return [value]
        out, effects = inline_body(self.rule(prim, node.loc), fg, pvals, loc=node.loc)
        if not (isinstance(out, Apply) and _primitive(out.inputs[0]) is P["make_tuple"]):
            raise GradError(f"internal error: the forward rule of {prim.name} must return "
                            "a tuple display (value, map, ...)")
        value = out.inputs[1]
        maps = out.inputs[2:]
        if prim.jvp_from_reverse:  # (value, backpropagator) of the reverse rule
            maps = [maps[0]]
        if isinstance(value, Apply) and value.graph is fg and node.name and not value.name:
            value.name = node.name
        total: Node | None = None
        for i, t in enumerate(ptans):
            if _is_zero(t):
                continue
            m = maps[i] if i < len(maps) else Constant(None)
            if isinstance(m, Constant) and (m.value is None or m.value is ZERO):
                continue  # (no derivative in this parameter)
            if not prim.accepts_zero:
                t = fg.apply(P["sens_of"], t, pvals[i])
            part = self._apply_map(m, t, fg, node.loc)
            if prim.jvp_from_reverse:
                part = fg.apply(P["tuple_getitem"], part, 0)
            total = part if total is None else fg.apply(P["gadd"], total, part)
        if total is None:
            total = Constant(ZERO)
        elif isinstance(total, Apply) and not total.name:
            total.name = tangent_name(node.name)
        self._set(node, value, total)
        return effects

    def _transposed(self, node: Apply, prim: Primitive, fg: Graph, pvals: list[Node],
                    ptans: list[Node]) -> list[Node]:
        """The tangent of a primitive whose forward rule is its reverse rule transposed:
        the cotangent's sensitivity in J of `<back(c), t>` (`ad/custom.reverse_along`),
        at c = 1 (it is linear in c)."""
        from . import custom
        from .reverse import JTransform

        if prim.name not in self.transposed:
            rule = JTransform().rule(prim)
            self.transposed[prim.name] = JTransform().graph(
                custom.transposed_graph(rule, prim.name.replace(".", "_")))
        value = fg.apply(node.inputs[0], *[self.value(a, fg) for a in node.inputs[1:]],
                         loc=node.loc, name=node.name)
        # (At c = 1, not 0: a rule may treat a zero cotangent apart, e.g. the terms of an
        # svd's derivative that the loss does not see.)
        point = fg.apply(P["ones_like_value"], value)
        call = fg.apply(Constant(self.transposed[prim.name]), point,
                        fg.apply(P["make_tuple"], *pvals), fg.apply(P["make_tuple"], *ptans),
                        loc=node.loc)
        sens = fg.apply(fg.apply(P["tuple_getitem"], call, 1), Constant(1.0), loc=node.loc)
        self._set(node, value, fg.apply(P["tuple_getitem"], sens, 1,
                                        name=tangent_name(node.name)))
        return [value, call] if prim.effect else [call]

    def _apply_map(self, m: Node, t: Node, fg: Graph, loc: Location | None) -> Node:
        if is_constant_graph(m) and len(m.value.parameters) == 1 and m.value.parent is fg:
            out, _ = inline_body(m.value, fg, [t], loc=loc)
            return out
        return fg.apply(m, t, loc=loc)

    def _pair(self, out: Node, fg: Graph, node: Apply) -> tuple[Node, Node]:
        if isinstance(out, Apply) and _primitive(out.inputs[0]) is P["make_tuple"] and \
                len(out.inputs) == 3:
            return out.inputs[1], out.inputs[2]
        return (fg.apply(P["tuple_getitem"], out, 0, loc=node.loc, name=node.name),
                fg.apply(P["tuple_getitem"], out, 1, loc=node.loc,
                         name=tangent_name(node.name)))

    # --- loops --------------------------------------------------------------------
    # A loop's F is a loop over the state and its tangents: no stack is needed.

    def _loop(self, node: Apply, prim: Primitive, fg: Graph) -> list[Node] | None:
        kind = prim.name
        body_at = 4 if kind == "for_range" else 2
        body_node = node.inputs[body_at]
        cond_node = node.inputs[1] if kind == "while_loop" else None
        if not is_constant_graph(body_node) or (
                cond_node is not None and not is_constant_graph(cond_node)):
            return None
        body: Graph = body_node.value
        init = node.inputs[body_at + 1:]
        k = len(init)
        lead = 1 if kind == "for_range" else 0
        fb = self._loop_body(body, fg, lead, k)
        vals = [self.value(a, fg) for a in init]
        tans = [self.tangent(a) for a in init]
        if kind == "for_range":
            bounds = [self.value(a, fg) for a in node.inputs[1:4]]
            loop = fg.apply(P["for_range"], *bounds, Constant(fb), *vals, *tans, loc=node.loc)
        else:
            assert cond_node is not None
            cond: Graph = cond_node.value
            fc = _derived_graph(f"F_{cond.name}", fg, cond.loc)
            self.graphs[cond.id] = fc
            for p in cond.parameters:
                self.values[p.id] = fc.add_parameter(p.name, p.loc)
            for p in cond.parameters:
                self.tangents[p.id] = fc.add_parameter(tangent_name(p.name) or "t", p.loc)
            fc.effects = self._body(cond, fc)
            fc.output = self.value(cond.output, fc)
            loop = fg.apply(P["while_loop"], Constant(fc), Constant(fb), *vals, *tans,
                            loc=node.loc)
        self._set(node, fg.apply(P["make_tuple"], *[fg.apply(P["tuple_getitem"], loop, j)
                                                    for j in range(k)], name=node.name),
                  fg.apply(P["make_tuple"], *[fg.apply(P["tuple_getitem"], loop, k + j)
                                              for j in range(k)]))
        return [loop]

    def _loop_body(self, body: Graph, fg: Graph, lead: int, k: int) -> Graph:
        """F of a loop body `(i?, *state) -> state`: `(i?, *state, *tangents) -> (*state,
        *tangents)` (the index of a `for_range` has no tangent)."""
        fb = _derived_graph(f"F_{body.name}", fg, body.loc)
        self.graphs[body.id] = fb
        for p in body.parameters:
            self.values[p.id] = fb.add_parameter(p.name, p.loc)
        for j, p in enumerate(body.parameters):
            self.tangents[p.id] = Constant(ZERO) if j < lead else \
                fb.add_parameter(tangent_name(p.name) or "t", p.loc)
        effects = self._body(body, fb)
        out, tout = self.value(body.output, fb), self.tangent(body.output)
        fb.output = fb.apply(
            P["make_tuple"], *[fb.apply(P["tuple_getitem"], out, j) for j in range(k)],
            *[fb.apply(P["tuple_getitem"], tout, j) for j in range(k)])
        fb.effects = effects
        return fb

    # --- rules and values ---------------------------------------------------------

    def rule(self, prim: Primitive, loc: Location | None = None) -> Graph:
        """The graph of a primitive's forward rule (compiled once)."""
        from ..frontend.parser import parse

        fn = prim.reverse_rule if prim.jvp_from_reverse else prim.jvp_rule
        if fn is None:
            raise GradError(f"{_where(loc)}forward mode: no forward rule is registered for "
                            f"the primitive {prim.name}; use reverse mode (tl.grad, tl.vjp, "
                            "tl.jacrev) for this function")
        return _derived(parse(fn))

    def graph_value(self, g: Graph) -> Graph:
        """F of a graph used as a value. Python calls it with the arguments it passes,
        so where `g` has defaults or `*args`, a wrapper `(*args, *tangents)` fills the
        defaults in (with zero tangents) and packs the extra arguments and their tangents
        before calling F(g)."""
        specs = g.signature
        if not g.vararg and (specs is None or all(s.kind == "pos" and s.default is None
                                                  for s in specs)):
            fg = self.graph(g)
            fg.derivative_of = ("F", g)
            return fg
        if g.id not in self.value_graphs:
            specs = specs or []
            if any(s.kind == "kwonly" for s in specs) or any(
                    s.default is not None and not isinstance(s.default, Constant)
                    for s in specs):
                raise GradError(f"{_where(g.loc)}forward mode does not support calling "
                                f"{g.name}, which has keyword-only parameters or defaults "
                                "computed at run time, as a value yet; wrap it in a lambda")
            npos = sum(s.kind == "pos" for s in specs) if specs else \
                len(g.parameters) - int(g.vararg)
            defaults = tuple(s.default.value for s in specs
                             if s.kind == "pos" and s.default is not None)
            fg = self.graph(g)
            from ..frontend.parser import ParamSpec

            w = _derived_graph(f"{fg.name}_value", fg.parent, g.loc)
            args = w.add_parameter("args")
            w.vararg = True
            w.signature = [ParamSpec("args", "vararg")]
            laid = w.apply(P["split_fwd"], args, npos, Constant(defaults),
                           Constant(g.vararg))
            w.output = w.apply(P["call_star"], Constant(fg), laid, loc=g.loc)
            w.effects = [w.output]
            w.stands_for = g.stands_for  # (a class passed as a value: see `fg`)
            w.derivative_of = ("F", g)
            self.value_graphs[g.id] = w
        return self.value_graphs[g.id]

    def primitive_value(self, prim: Primitive) -> Graph:
        """A primitive used as a value (`np.tanh` passed to a function): the F-callable
        of a graph calling it, `(*args, *tangents)`, its defaults filled in as Python
        binds them (for primitives with positional parameters only)."""
        import inspect

        from ..frontend.parser import ParamSpec

        if prim.name not in self.wrappers:
            params = list(prim.signature.parameters.values())
            if prim.variadic or any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD
                                    for p in params):
                raise GradError(f"forward mode does not support passing {prim.name} as a "
                                "value yet; wrap it in a lambda")
            inner = Graph(prim.name.replace(".", "_"), None, None)
            ps = [inner.add_parameter(p.name) for p in params]
            inner.signature = [ParamSpec(p.name, "pos", None if p.default is p.empty
                                         else Constant(p.default)) for p in params]
            inner.output = inner.apply(Constant(prim), *ps)
            inner.effects = [inner.output] if prim.effect else []
            self.wrappers[prim.name] = self.graph_value(inner)
        return self.wrappers[prim.name]

