"""Reverse mode by source transformation: the J transform of Pearlmutter & Siskind.

For every graph `g`, `J(g)` takes the same arguments and returns `(value,
backpropagator)`. The backpropagator maps the sensitivity of the output to
`(d_free_variables, d_arg_1, ..., d_arg_n)`, where `d_free_variables` is a tuple laid out
like `free_variables(g)`. Every call `f(a, ...)` in `g` becomes `J(f)(J(a), ...)`; a
primitive's J is its reverse rule, itself a graph compiled from Python, so the output
of J is ordinary IR that J applies to again (derivatives of any order). No tape: what the
backward pass needs is held by the backpropagator closures."""

from __future__ import annotations

from ..errors import GradError
from ..ir.nodes import Apply, Constant, Graph, Node, Parameter, free_variables, graph_nodes
from ..primitives import PRIMITIVES, Primitive, lookup_callable
from ..runtime import ZERO

P = PRIMITIVES
_STRUCTURAL_ZERO_OK = {"make_tuple", "make_list", "tuple_getitem", "getitem", "switch",
                       "getattr", "construct", "gadd", "call_star", "while_loop",
                       "for_range", "list_map", "list_flatmap", "as_sequence", "make_dict",
                       "tuple", "list", "sens_of", "tuple_sens", "getitem_sens",
                       "sens_index", "getattr_sens", "sens_getattr", "field_sens",
                       "struct_sens", "to_structure", "from_structure", "unbroadcast",
                       "broadcast_like", "reshape_like", "expand_reduced", "take_sens",
                       "diag_sens", "check_scalar_output", "method.items", "method.values",
                       "method.get", "sum", "max", "min"}


def _primitive(node: Node) -> Primitive | None:
    if isinstance(node, Constant):
        if isinstance(node.value, Primitive):
            return node.value
    return None


class JTransform:
    """Maps primal graphs to their J graphs. One instance shares work between the graphs
    it transforms (a graph is transformed once)."""

    def __init__(self) -> None:
        self.graphs: dict[int, Graph] = {}
        self.values: dict[int, Node] = {}   # primal node -> its J-space value
        self.backprops: dict[int, Node] = {}  # primal node -> its backpropagator
        self.calls: dict[int, Node] = {}    # primal node -> the call computing both
        self.wrappers: dict[str, Graph] = {}

    # --- graphs -------------------------------------------------------------------

    def graph(self, g: Graph) -> Graph:
        if g.id in self.graphs:
            return self.graphs[g.id]
        parent = self.graphs.get(g.parent.id) if g.parent is not None else None
        jg = Graph(f"J_{g.name}", parent, g.loc)
        self.graphs[g.id] = jg
        jg.vararg = g.vararg
        if hasattr(g, "signature"):
            jg.signature = g.signature  # type: ignore[attr-defined]
        for p in g.parameters:
            self.values[p.id] = jg.add_parameter(p.name, p.loc)
        for node in graph_nodes(g):
            self._forward(node, jg)
        value = self.value(g.output, jg)
        backprop = self._backward(g, jg)
        jg.output = jg.apply(P["make_tuple"], value, Constant(backprop), loc=g.loc)
        jg.effects = [self.calls[e.id] for e in g.effects if e.id in self.calls]
        return jg

    def value(self, node: Node | None, jg: Graph) -> Node:
        """The J-space value of a primal node: data is itself; functions are their J."""
        if node is None:
            return Constant(None)
        if isinstance(node, Constant):
            v = node.value
            if isinstance(v, Graph):
                return Constant(self.graph(v), node.loc)
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
        jargs = [self.value(a, jg) for a in args]
        if prim is not None and not prim.differentiable:
            out = jg.apply(callee, *jargs, loc=node.loc, name=node.name)
            self.values[node.id] = out
            self.calls[node.id] = out
            return
        if prim is not None:
            rule = self.rule(prim)
            if prim.variadic:
                fixed = len(rule.parameters) - 1
                jargs = jargs[:fixed] + [jg.apply(P["make_tuple"], *jargs[fixed:])]
            call = jg.apply(Constant(rule), *jargs, loc=node.loc)
        else:
            call = jg.apply(self.value(callee, jg), *jargs, loc=node.loc)
        self.calls[node.id] = call
        self.values[node.id] = jg.apply(P["tuple_getitem"], call, 0, loc=node.loc,
                                        name=node.name)
        self.backprops[node.id] = jg.apply(P["tuple_getitem"], call, 1, loc=node.loc,
                                           name=f"{node.name}_backprop" if node.name else "")

    def rule(self, prim: Primitive) -> Graph:
        """The graph of a primitive's reverse rule (compiled once)."""
        from ..frontend.parser import parse

        fn = prim.reverse_rule
        if fn is None and getattr(prim, "alias", None):
            fn = P[prim.alias].reverse_rule  # type: ignore[attr-defined]
        if fn is None:
            raise GradError(f"no derivative rule is registered for the primitive {prim.name}")
        return parse(fn)

    def primitive_value(self, prim: Primitive) -> Graph:
        """A primitive used as a value (e.g. `np.tanh` passed to a function): a graph
        with the calling convention of J graphs (its backpropagator returns an
        environment sensitivity first)."""
        if prim.name in self.wrappers:
            return self.wrappers[prim.name]
        w = Graph(f"J_{prim.name}")
        self.wrappers[prim.name] = w
        args = w.add_parameter("args")
        w.vararg = True
        if prim.differentiable:
            call = w.apply(P["call_star"], Constant(self.rule(prim)), args)
            value = w.apply(P["tuple_getitem"], call, 0)
            inner = w.apply(P["tuple_getitem"], call, 1)
        else:
            value = w.apply(P["call_star"], Constant(prim), args)
            inner = None
        back = Graph(f"B_{prim.name}", w)
        d = back.add_parameter("d")
        if inner is None:
            back.output = Constant((ZERO,))
        else:
            sens = back.apply(inner, d)
            back.output = back.apply(P["add"], back.apply(P["make_tuple"], Constant(ZERO)),
                                     back.apply(P["tuple"], sens))
        w.output = w.apply(P["make_tuple"], value, Constant(back))
        return w

    # --- backward -----------------------------------------------------------------

    def _backward(self, g: Graph, jg: Graph) -> Graph:
        bg = Graph(f"B_{g.name}", jg, g.loc)
        dout = bg.add_parameter(f"d_{g.output.name}" if g.output is not None and
                                g.output.name else "dout")
        sens: dict[int, list[Node]] = {}
        fvs = free_variables(g)

        def contribute(node: Node, d: Node) -> None:
            if isinstance(node, Constant):
                if isinstance(node.value, Graph):
                    for k, fv in enumerate(free_variables(node.value)):
                        contribute(fv, bg.apply(P["tuple_getitem"], d, k))
                return
            sens.setdefault(node.id, []).append(d)

        if g.output is not None:
            contribute(g.output, dout)
        for node in reversed(graph_nodes(g)):
            parts = sens.get(node.id)
            if not parts or node.id not in self.backprops:
                continue
            d = self._sum(bg, parts, node)
            prim = _primitive(node.inputs[0])
            if prim is not None and prim.name not in _STRUCTURAL_ZERO_OK:
                d = bg.apply(P["sens_of"], d, self.values[node.id])
            grads = bg.apply(self.backprops[node.id], d, loc=node.loc)
            offset = 0
            if prim is None:
                contribute(node.inputs[0], bg.apply(P["tuple_getitem"], grads, 0))
                offset = 1
            for i, inp in enumerate(node.inputs[1:]):
                if isinstance(inp, Constant) and not isinstance(inp.value, Graph):
                    continue
                contribute(inp, bg.apply(P["tuple_getitem"], grads, i + offset, loc=node.loc,
                                         name=f"d_{inp.name}" if inp.name else ""))
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
        if len(parts) > 1 and like.name and isinstance(total, Apply):
            total.name = f"d_{like.name}"
        return total


def is_parameter(node: Node) -> bool:
    return isinstance(node, Parameter)
