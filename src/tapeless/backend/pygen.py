"""The reference backend: IR graphs to Python source that calls NumPy.

Each graph without free variables becomes a module-level `def`; a closure becomes a
nested `def` whose free variables are bound as keyword-only defaults (so a closure made
inside a loop keeps that iteration's values); branch graphs of `switch(...)()` and the
bodies of loop primitives are emitted inline as `if`, `while` and `for` statements.
"""

from __future__ import annotations

import builtins
import itertools
import keyword
import linecache
import math
import sys
import types
from dataclasses import dataclass
from typing import Any, TypeGuard, cast

import numpy as np

from .. import runtime
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
    reachable_graphs,
)
from ..primitives import PRIMITIVES, Primitive
from ..primitives.ad_ops import IN_PLACE_OF
from .spelling import ATOM, PRECEDENCE, _star, one_group, spelling

P = PRIMITIVES
# The statements whose value is their first argument, updated in place (`acc[i] += d`,
# `a *= b`): named by it, and it by a name of its own.
_UPDATES_FIRST = {P["add_into_known"], *(P[name] for name in IN_PLACE_OF.values())}
_counter = itertools.count()


@dataclass
class Compiled:
    fn: Any
    source: str
    filename: str
    linemap: dict[int, Location]


def _prim_of(node: Node | None) -> Primitive | None:
    if isinstance(node, Apply) and isinstance(node.inputs[0], Constant) and \
            isinstance(node.inputs[0].value, Primitive):
        return node.inputs[0].value
    return None


def _calls(node: Node | None, prim: Primitive) -> TypeGuard[Apply]:
    """Whether `node` applies `prim` (then it is an Apply)."""
    return _prim_of(node) is prim


def _is_switch_call(node: Node | None) -> TypeGuard[Apply]:
    return isinstance(node, Apply) and len(node.inputs) == 1 and \
        _prim_of(node.inputs[0]) is P["switch"]


def _switch_of(call: Apply) -> Apply:
    """The `switch(cond, if_true, if_false)` node that a switch call (`_is_switch_call`)
    calls."""
    sw = call.inputs[0]
    assert isinstance(sw, Apply)
    return sw


def _branches(call: Apply) -> tuple[Graph, Graph]:
    """The branch graphs of a switch call whose branches are constant graphs (as
    `FunctionEmitter._inline_switch` checks)."""
    if_true, if_false = _switch_of(call).inputs[2:4]
    assert is_constant_graph(if_true) and is_constant_graph(if_false)
    return if_true.value, if_false.value


def _value(node: Node) -> Any:
    """The value of `node`, known to be a Constant (e.g. a `tuple_getitem` index)."""
    assert isinstance(node, Constant)
    return node.value


def _known_names() -> dict[int, str]:
    """How generated code spells NumPy, math and builtin objects it refers to. Reads the
    modules' namespaces directly (getattr on numpy would import its lazy submodules)."""
    names: dict[int, str] = {}
    for mod, prefix in ((np, "np"), (math, "math"), (np.linalg, "np.linalg")):
        for attr, value in vars(mod).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, (type, types.BuiltinFunctionType, types.FunctionType,
                                  np.ufunc)):
                names.setdefault(id(value), f"{prefix}.{attr}")
    for attr, value in vars(builtins).items():
        if isinstance(value, (type, types.BuiltinFunctionType)):
            names[id(value)] = attr
    return names


_KNOWN: dict[int, str] | None = None


class ModuleEmitter:
    """Emits every graph reachable from a root graph into one Python module."""

    def __init__(self, root: Graph, state_tails: bool = True):
        global _KNOWN
        if _KNOWN is None:
            _KNOWN = _known_names()
        self.root = root
        self.graphs = reachable_graphs(root)
        self.namespace: dict[str, Any] = {"np": np, "math": math, "_rt": runtime,
                                          "__builtins__": builtins}
        # scipy.special, where SciPy is installed (its functions are spelled `_sp.name`).
        special = sys.modules.get("scipy.special")
        if special is not None:
            self.namespace["_sp"] = special
        # scipy.linalg likewise (`_sla.name`).
        scipy_linalg = sys.modules.get("scipy.linalg")
        if scipy_linalg is not None:
            self.namespace["_sla"] = scipy_linalg
        self.suffix: dict[str, int] = {}  # base -> the next suffix to try (`fresh`)
        self.taken: set[str] = set(dir(builtins)) | set(keyword.kwlist) | \
            {"np", "math", "_rt", "_sp", "_sla", "_x", "_y"}
        self.names: dict[int, str] = {}
        # Nodes named by the statement that computes them (loop and `if` results).
        self.aliases: set[int] = set()
        # The nodes named after each base name (a user's variable), in order: a value
        # assigned again may take its old value's name (`h = f(h)`).
        self.by_base: dict[str, list[Node]] = {}
        # A loop state parameter (body or condition) -> its loop node; the values a loop
        # body computes straight into a state variable (`_coalesce_state`).
        self.state_of: dict[int, Node] = {}
        self.coalesced: dict[int, Node] = {}
        self.coalesced_values: dict[int, Apply] = {}  # (by id, the values themselves)
        # New values of loop state rendered in the body's closing assignment, though
        # named (`_coalesce_state`).
        self.in_state_tail: set[int] = set()
        # Whether they may be (not for the native backend: its lowering reads the stack
        # a backward loop moves on to, `rest = S[1]`, and a list's growth, `xs_1 = xs +
        # [...]`, as statements of their own).
        self.state_tails = state_tails
        self.const_names: dict[int, str] = {}
        # The user's names of constants read from globals, closure variables and
        # attributes (`W` for a global array), by the value's identity.
        self.const_origin: dict[int, str] = {}
        self.keep_names = True
        self.lines: list[str] = []
        self.line_locs: list[Location | None] = []
        self._analyze()

    # --- analysis ---------------------------------------------------------------

    def _analyze(self) -> None:
        self.uses: dict[int, list[tuple[Apply | None, Graph]]] = {}
        self.graph_uses: dict[int, list[tuple[Apply | None, int]]] = {}
        self.nodes_of: dict[int, list[Apply]] = {}
        for g in self.graphs:
            nodes = graph_nodes(g)
            self.nodes_of[g.id] = nodes
            for n in nodes:
                for i, inp in enumerate(n.inputs):
                    self.uses.setdefault(inp.id, []).append((n, g))
                    if inp.name and isinstance(inp, Constant):
                        self.const_origin.setdefault(id(inp.value), inp.name)
                    if is_constant_graph(inp):
                        self.graph_uses.setdefault(inp.value.id, []).append((n, i))
            if g.output is not None:
                self.uses.setdefault(g.output.id, []).append((None, g))
                if g.output.name and isinstance(g.output, Constant):
                    self.const_origin.setdefault(id(g.output.value), g.output.name)
                if is_constant_graph(g.output):
                    self.graph_uses.setdefault(g.output.value.id, []).append((None, -1))
        # Graphs emitted inline: used exactly once, as a branch of an immediately
        # called switch or as the body/condition of a loop.
        self.inline: set[int] = set()
        for g in self.graphs:
            uses = self.graph_uses.get(g.id, [])
            if len(uses) != 1 or g is self.root:
                continue
            user, pos = uses[0]
            if user is None:
                continue
            prim = _prim_of(user)
            if prim is P["switch"] and pos in (2, 3) and self._called_once(user) \
                    and not g.parameters:
                other = user.inputs[5 - pos]
                if is_constant_graph(other) and other.value is not g and \
                        len(self.graph_uses.get(other.value.id, [])) == 1 and \
                        not other.value.parameters:
                    self.inline.add(g.id)
            elif prim is P["while_loop"] and pos in (1, 2):
                self.inline.add(g.id)
            elif prim is P["for_range"] and pos == 4:
                self.inline.add(g.id)
        self.depth: dict[int, int] = {}
        self.owner: dict[int, Graph | None] = {}
        for g in self.graphs:
            fvs = free_variables(g)
            owners = [fv.graph for fv in fvs if fv.graph is not None]
            self.owner[g.id] = max(owners, key=self._depth) if owners else None
        self.closures_of: dict[int, list[Graph]] = {}
        for g in self.graphs:
            owner = self.owner[g.id]
            if g.id not in self.inline and owner is not None:
                self.closures_of.setdefault(owner.id, []).append(g)

    def _called_once(self, switch_node: Node) -> bool:
        uses = self.uses.get(switch_node.id, [])
        return len(uses) == 1 and uses[0][0] is not None and _is_switch_call(uses[0][0])

    def _depth(self, g: Graph) -> int:
        if g.id not in self.depth:
            d, p = 0, g.parent
            while p is not None:
                d, p = d + 1, p.parent
            self.depth[g.id] = d
        return self.depth[g.id]

    def single_use_here(self, node: Node, g: Graph) -> bool:
        uses = self.uses.get(node.id, [])
        return len(uses) == 1 and uses[0][1] is g

    # --- names ------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "v"
        if base[0].isdigit():
            base = "_" + base
        name = base
        # (The first free suffix: `taken` only grows, so the suffixes below the last one
        # given for `base` stay taken, and the search starts there, not at 1, which was
        # quadratic in the count of temporaries.)
        k = self.suffix.get(base, 1)
        while name in self.taken:
            name = f"{base}_{k}"
            k += 1
        self.suffix[base] = k
        self.taken.add(name)
        return name

    def name_of(self, node: Node) -> str:
        if node.id not in self.names:
            base = node.name or ("p" if isinstance(node, Parameter) else "_t")
            self.names[node.id] = self.fresh(base)
            if node.name:
                self.by_base.setdefault(node.name, []).append(node)
        return self.names[node.id]

    def holders(self, name: str) -> list[int]:
        """The nodes that the generated code names `name`."""
        return [k for k, v in self.names.items() if v == name]

    def graph_name(self, g: Graph) -> str:
        if g.id not in self.names:
            self.names[g.id] = self.fresh(g.name)
        return self.names[g.id]

    def constant(self, value: Any) -> str:
        if isinstance(value, Graph):
            return self.graph_name(value)
        if value is None or value is Ellipsis or isinstance(value, (bool, str, bytes)):
            return repr(value)
        if isinstance(value, int) and type(value) is int:
            return repr(value) if value >= 0 else f"({value!r})"
        if type(value) is float:
            if math.isfinite(value):
                return repr(value) if value >= 0 and not math.copysign(1, value) < 0 \
                    else f"({value!r})"
            return f"float({str(value)!r})"
        if type(value) is tuple and all(_simple(v) for v in value):
            inner = ", ".join(self.constant(v) for v in value)
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        if isinstance(value, slice):
            return f"slice({self.constant(value.start)}, {self.constant(value.stop)}, " \
                   f"{self.constant(value.step)})"
        if value is runtime.UNBOUND:
            return "_rt.UNBOUND"
        if value is runtime.ZERO:
            return "_rt.ZERO"
        if value is np:
            return "np"
        if value is math:
            return "math"
        assert _KNOWN is not None
        try:
            known = _KNOWN.get(id(value))
        except TypeError:
            known = None
        if known is not None:
            return known
        return self.named(value)

    def named(self, value: Any) -> str:
        """A name of the module's namespace bound to `value` (after the global it came
        from, where known)."""
        if id(value) not in self.const_names:
            base = self.const_origin.get(id(value)) or getattr(value, "__name__", None)
            if not isinstance(base, str) or not base:
                base = "_array" if isinstance(value, np.ndarray) else "_const"
            name = self.fresh(base)
            self.namespace[name] = value
            self.const_names[id(value)] = name
        return self.const_names[id(value)]

    # --- output -----------------------------------------------------------------

    def emit_line(self, indent: int, text: str, loc: Location | None = None) -> None:
        self.lines.append("    " * indent + text)
        self.line_locs.append(loc)

    def build(self) -> Compiled:
        top = [g for g in self.graphs if self.owner[g.id] is None and g.id not in self.inline]
        for g in top:
            self.graph_name(g)
        for g in top:
            FunctionEmitter(self, g, 0).emit_def([])
            self.emit_line(0, "")
        source = "\n".join(self.lines) + "\n"
        filename = generated_filename(self.root.name, source)
        code = compile(source, filename, "exec")
        exec(code, self.namespace)  # noqa: S102
        for g in top:
            fn = self.namespace[self.graph_name(g)]
            # Its graph, for J of it while derivative code runs (`tapeless.dynamic.lift`).
            fn.__tapeless_graph__ = g
            if g.stands_for is not None:  # a class passed as a value, as a J-callable
                fn.__tapeless_class__ = g.stands_for
        linemap = {i + 1: loc for i, loc in enumerate(self.line_locs) if loc is not None}
        fn = self.namespace[self.graph_name(self.root)]
        specs = _signature(self.root)
        if specs is not None and any(spec.kind != "pos" for spec in specs):
            fn = _packed_entry(fn, [spec.kind for spec in specs],
                               [self.name_of(p) for p in self.root.parameters])
        return Compiled(fn, source, filename, linemap)


def generated_filename(name: str, source: str) -> str:
    """A new file name for generated code (`runtime.is_generated` knows it), with its
    source in `linecache` (for tracebacks)."""
    filename = f"<tapeless-{next(_counter)}:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return filename


def _signature(g: Graph) -> list[Any] | None:
    """The front end's parameter specs of a user function (kind "pos", "vararg" or
    "kwonly", and default node), one per parameter; None for other graphs."""
    specs = g.signature
    if specs is None or len(specs) != len(g.parameters):
        return None
    return specs


def _packed_entry(fn: Any, kinds: list[str], names: list[str]) -> Any:
    """`fn` called the way compiled functions are: every parameter positionally, with
    `*args` packed into one tuple."""

    def entry(*args: Any) -> Any:
        pos: list[Any] = []
        kwargs: dict[str, Any] = {}
        for kind, name, arg in zip(kinds, names, args, strict=True):
            if kind == "pos":
                pos.append(arg)
            elif kind == "vararg":
                pos.extend(arg)
            else:
                kwargs[name] = arg
        return fn(*pos, **kwargs)

    cast(Any, entry).__wrapped__ = fn
    return entry


def _simple(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str)) or \
        (type(v) is tuple and all(_simple(x) for x in v))


class FunctionEmitter:
    """Emits one graph as a `def`, with the graphs inlined into it."""

    def __init__(self, mod: ModuleEmitter, g: Graph, indent: int):
        self.mod = mod
        self.g = g
        self.indent = indent
        # Inside a loop, `math.sin(x)` calls a local bound once before it (`_sin(x)`):
        # one fast local load per iteration instead of a global and an attribute.
        self.loop_depth = 0
        self.hoisted: dict[str, str] = {}
        self.pushes: dict[int, str] = {}  # stack_push node -> its bound `append`

    def emit_def(self, captures: list[Node]) -> None:
        g, mod = self.g, self.mod
        params = [mod.name_of(p) for p in g.parameters]
        specs = _signature(g)
        star = False
        if specs is not None:
            # The user's signature, so that calls through function values bind like
            # Python's: `*args`, keyword-only parameters, and constant defaults.
            defaults: set[int] = set()
            for i in reversed(range(len(specs))):
                if specs[i].kind == "pos":
                    if not isinstance(specs[i].default, Constant):
                        break
                    defaults.add(i)
            out = []
            for i, (name, spec) in enumerate(zip(params, specs, strict=True)):
                if spec.kind == "vararg":
                    out.append("*" + name)
                    star = True
                    continue
                if spec.kind in ("kwonly", "varkw") and not star:
                    out.append("*")
                    star = True
                if isinstance(spec.default, Constant) and (spec.kind in ("kwonly", "varkw")
                                                           or i in defaults):
                    name = f"{name}={mod.constant(spec.default.value)}"
                out.append(name)
            params = out
        if captures:
            params += ([] if star else ["*"]) + \
                [f"{mod.name_of(c)}={mod.name_of(c)}" for c in captures]
        mod.emit_line(self.indent, f"def {mod.graph_name(g)}({', '.join(params)}):", g.loc)
        start = len(mod.lines)
        self.region(g, self.indent + 1, ("return",))
        if len(mod.lines) == start:
            mod.emit_line(self.indent + 1, "pass")
        for k, (callee, local) in enumerate(self.hoisted.items()):
            mod.lines.insert(start + k, "    " * (self.indent + 1) + f"{local} = {callee}")
            mod.line_locs.insert(start + k, g.loc)

    # --- regions: one graph's nodes, emitted at an indent ------------------------

    def region(self, g: Graph, indent: int, target: tuple) -> None:
        mod = self.mod
        pending = list(mod.closures_of.get(g.id, []))
        done: set[int] = set(p.id for p in g.parameters)
        self._emit_ready_closures(pending, done, g, indent)
        for node in mod.nodes_of[g.id]:
            if node.id in mod.aliases:
                done.add(node.id)
                self._emit_ready_closures(pending, done, g, indent)
                continue
            if node is g.output and self._tail_handles(node, g):
                continue
            if self._inlined(node, g):
                continue
            self.statement(node, g, indent)
            done.add(node.id)
            self._emit_ready_closures(pending, done, g, indent)
        for c in pending:  # closures whose free variables are all outside this graph
            self._emit_closure(c, indent)
        self.tail(g.output, g, indent, target)

    def _emit_ready_closures(self, pending: list[Graph], done: set[int], g: Graph,
                             indent: int) -> None:
        for c in list(pending):
            if all(fv.graph is not g or fv.id in done for fv in free_variables(c)):
                pending.remove(c)
                self._emit_closure(c, indent)

    def _emit_closure(self, c: Graph, indent: int) -> None:
        FunctionEmitter(self.mod, c, indent).emit_def(free_variables(c))

    def _tail_handles(self, node: Apply, g: Graph) -> bool:
        """The output is emitted by `tail` (not as a statement) when only the output
        uses it."""
        if not self.mod.single_use_here(node, g):
            return False
        prim = _prim_of(node)
        if prim is not None and (prim.loop or prim in _UPDATES_FIRST):
            return False  # (a statement: `acc[i] += d`, then `return acc`)
        # An effect may only move to the end when nothing is scheduled after it.
        return node not in g.effects or self.mod.nodes_of[g.id][-1] is node

    def _inlined(self, node: Apply, g: Graph) -> bool:
        """Pure single-use nodes are rendered inside the expression that uses them."""
        if node in g.effects or not self.mod.single_use_here(node, g):
            return False
        if node.name and not node.name.startswith("#") and self.mod.keep_names and \
                node.id not in self.mod.in_state_tail:
            return False  # the user named it: keep it a statement
        if _is_switch_call(node):
            return self._inline_switch(node) and all(
                self._expression_only(b) for b in _branches(node))
        prim = _prim_of(node)
        if prim is None or prim.effect or prim.statement or prim.loop:
            return False
        user = self.mod.uses[node.id][0][0]
        if user is None or prim is P["stack_new"]:
            return True
        user_prim = _prim_of(user)
        # (`acc[i] += d` names its value by its first argument: a name, not a call again)
        return not (user_prim is not None and (user_prim.loop or (
            user_prim in _UPDATES_FIRST and user.inputs[1] is node)))

    def _expression_only(self, g: Graph) -> bool:
        """Whether an inline graph needs no statements: it renders as one expression."""
        if g.effects or self.mod.closures_of.get(g.id):
            return False
        out = g.output
        for n in self.mod.nodes_of[g.id]:
            if n is out:
                if not self._tail_handles(n, g) or (_is_switch_call(n) and not
                                                    self._inlined_as_value(n, g)):
                    return False
                prim = _prim_of(n)
                if prim is not None and prim.statement:  # `raise` is not an expression
                    return False
            elif not self._inlined(n, g):
                return False
        return True

    def _inlined_as_value(self, node: Apply, g: Graph) -> bool:
        return self._inline_switch(node) and all(
            self._expression_only(b) for b in _branches(node))

    # --- statements -------------------------------------------------------------

    def statement(self, node: Apply, g: Graph, indent: int) -> None:
        mod = self.mod
        prim = _prim_of(node)
        if prim is not None and prim.loop:
            self.loop(node, g, indent)
            return
        if _is_switch_call(node) and self._inline_switch(node) and not \
                self._inlined_as_value(node, g):
            self.if_statement(node, g, indent, self._result_target(node))
            return
        if prim is not None and prim.statement:
            mod.emit_line(indent, self.render_call(node), node.loc)
            if prim in _UPDATES_FIRST:  # (its value: its first argument, updated)
                mod.names[node.id] = self.render(node.inputs[1], g)
                mod.aliases.add(node.id)
            return
        text = self.render_call(node)
        if not mod.uses.get(node.id):
            mod.emit_line(indent, _strip(text), node.loc)
        else:
            self._reuse_name(node, g)
            mod.emit_line(indent, f"{mod.name_of(node)} = {_strip(text)}", node.loc)

    def _reuse_name(self, node: Apply, g: Graph) -> None:
        """A value named like an earlier value of the same region that nothing reads
        after it takes that value's name: `y = np.sin(y) + x`, not `y_1 = ...`."""
        mod = self.mod
        if node.id in mod.names or not node.name or not mod.keep_names:
            return
        olds = mod.by_base.get(node.name)
        if not olds:
            return
        old = olds[-1]
        name = mod.names.get(old.id)
        if name is None or old.graph is not g or old.id in mod.aliases or \
                not self._reads(node, old, g) or mod.holders(name) != [old.id] or \
                not self._dead_after(old, node, g):
            return
        mod.names[node.id] = name
        olds.append(node)

    def _reads(self, node: Apply, old: Node, g: Graph, depth: int = 0) -> bool:
        """Whether `node`'s statement reads `old` (a new value of the same variable,
        `x = f(x)`; two unrelated values that happen to share a name keep two names)."""
        for inp in node.inputs:
            if inp is old:
                return True
            if depth < 20 and isinstance(inp, Apply) and inp.graph is g and \
                    inp.id not in self.mod.names and self._inlined(inp, g) and \
                    self._reads(inp, old, g, depth + 1):
                return True
        return False

    def _dead_after(self, old: Node, node: Node, g: Graph) -> bool:
        """Whether every read of `old` is evaluated at or before `node` (its inputs are
        evaluated before it is assigned), in `g`'s region."""
        pos = self._positions(g)
        at = pos.get(node.id)
        if at is None:
            return False
        for u, _ in self.mod.uses.get(old.id, []):
            if u is None:
                return False
            where = self._effective_position(u, g, pos)
            if where is None or where > at:
                return False
        return True

    def _positions(self, g: Graph) -> dict[int, int]:
        cache: dict[int, dict[int, int]] = self.__dict__.setdefault("_pos_cache", {})
        if g.id not in cache:
            cache[g.id] = {n.id: i for i, n in enumerate(self.mod.nodes_of[g.id])}
        return cache[g.id]

    def _inline_switch(self, call: Apply) -> bool:
        sw = _switch_of(call)
        return all(is_constant_graph(b) and b.value.id in self.mod.inline
                   for b in sw.inputs[2:4])

    def _result_target(self, node: Apply) -> tuple[str, list[str]]:
        """Where an `if` statement's result goes: `("unpack", names)`, one name per
        `tuple_getitem` use (the branches' tuples are unpacked, even 1-tuples), else
        `("assign", [name])`."""
        mod = self.mod
        uses = mod.uses.get(node.id, [])
        getitems = [u for u, _ in uses if u is not None and _prim_of(u) is P["tuple_getitem"]
                    and isinstance(u.inputs[2], Constant)]
        # Split only where the branches build the tuple (a value that merely happens to
        # be a tuple, e.g. a call's result, is one name); unused elements still need a
        # target: `_, y = a, b`, not `y = a, b`.
        width = _result_width(node)
        if uses and len(getitems) == len(uses) and node.id not in mod.names and width:
            width = max([_value(u.inputs[2]) + 1 for u in getitems] + [width])
            names: list[str | None] = [None] * width
            for u in getitems:
                i = _value(u.inputs[2])
                name = names[i]
                if name is None:
                    names[i] = mod.name_of(u)
                else:
                    mod.names[u.id] = name
                mod.aliases.add(u.id)
            return "unpack", [n if n is not None else "_" for n in names]
        return "assign", [mod.name_of(node)]

    def if_statement(self, call: Apply, g: Graph, indent: int, target: tuple) -> None:
        cond = _switch_of(call).inputs[1]
        g_true, g_false = _branches(call)
        self.mod.emit_line(indent, f"if {_strip(self.render(cond, g))}:", call.loc)
        for k, branch in enumerate((g_true, g_false)):
            if k:
                self.mod.emit_line(indent, "else:", call.loc)
            mark = len(self.mod.lines)
            self.region(branch, indent + 1, target)
            if len(self.mod.lines) == mark:  # e.g. a `continue` with nothing to copy
                self.mod.emit_line(indent + 1, "pass")

    def tail(self, out: Node | None, g: Graph, indent: int, target: tuple) -> None:
        mod = self.mod
        if out is None:
            return
        if isinstance(out, Apply) and out.graph is g and self._tail_handles(out, g):
            if _is_switch_call(out) and self._inline_switch(out) and not (
                    target[0] == "assign" and len(target[1]) == 1
                    and self._inlined_as_value(out, g)):
                self.if_statement(out, g, indent, target)
                return
            if _prim_of(out) is P["raise"]:
                mod.emit_line(indent, self.render_call(out), out.loc)
                return
        loc = out.loc
        if target[0] == "return":
            mod.emit_line(indent, f"return {_strip(self.render(out, g))}", loc)
            return
        names = target[1]
        if not names:
            if isinstance(out, Apply) and out.graph is g and _prim_of(out) is not \
                    P["make_tuple"] and self._tail_handles(out, g):
                mod.emit_line(indent, _strip(self.render(out, g)), loc)
            return
        # A loop body's state and an unpacked `if` result are tuples, even of one value.
        if len(names) == 1 and target[0] == "assign":
            mod.emit_line(indent, f"{names[0]} = {_strip(self.render(out, g))}", loc)
            return
        if _calls(out, P["make_tuple"]) and out.graph is g and \
                self._tail_handles(out, g) and len(out.inputs) - 1 == len(names):
            values = [self.render(v, g) for v in out.inputs[1:]]
            pairs = [(n, v) for n, v in zip(names, values, strict=True)
                     if n is not None and n != v]
            if len(pairs) == 1:
                mod.emit_line(indent, f"{pairs[0][0]} = {_strip(pairs[0][1])}", loc)
            elif pairs:
                lhs = ", ".join(n for n, _ in pairs)
                rhs = ", ".join(_strip_element(v) for _, v in pairs)
                mod.emit_line(indent, f"{lhs} = {rhs}", loc)
            return
        lhs = ", ".join(n or "_" for n in names) + ("," if len(names) == 1 else "")
        mod.emit_line(indent, f"{lhs} = {_strip(self.render(out, g))}", loc)

    def loop(self, node: Apply, g: Graph, indent: int) -> None:
        mod = self.mod
        prim = _prim_of(node)
        assert prim is not None
        if prim.name == "while_loop":
            cond_node, body_node, init = node.inputs[1], node.inputs[2], node.inputs[3:]
            skip = 0
        else:
            cond_node, body_node, init = None, node.inputs[4], node.inputs[5:]
            skip = 1
        body: Graph | None = body_node.value if is_constant_graph(body_node) else None
        cond: Graph | None = cond_node.value if cond_node is not None and \
            is_constant_graph(cond_node) else None
        inline_ok = body is not None and body.id in mod.inline and (
            cond_node is None or (cond is not None and cond.id in mod.inline))
        names = self._result_names_loop(node, body, skip)
        if len(names) != len(init):
            names = names + [mod.fresh("_s") for _ in range(len(init) - len(names))]
        dead: set[int] = set()
        popped = None
        if inline_ok:
            assert body is not None
            dead = self._dead_slots(node, body, cond, skip)
            popped = self._popping_loop(body, cond)
        for j, (n, v) in enumerate(zip(names, init, strict=True)):
            text = self.render(v, g)
            if popped is not None and j == popped[0] and text.isidentifier():
                names[j] = text  # iterated over, never assigned: no copy needed
            elif text != n and j not in dead:
                mod.emit_line(indent, f"{n} = {_strip(text)}", node.loc)
        if not inline_ok:
            fn = self.render(body_node, g)
            state = ", ".join(names) + ("," if len(names) == 1 else "")
            if prim.name == "while_loop":
                assert cond_node is not None
                c = self.render(cond_node, g)
                mod.emit_line(indent, f"while {c}({', '.join(names)}):", node.loc)
                mod.emit_line(indent + 1, f"{state} = {fn}({', '.join(names)})", node.loc)
            else:
                i = mod.fresh("i")
                mod.emit_line(indent, f"for {i} in {self._range(node, g)}:", node.loc)
                mod.emit_line(indent + 1, f"{state} = {fn}({', '.join([i] + names)})",
                              node.loc)
            self._bind_loop_result(node, names, indent)
            return
        assert body is not None
        for p, n in zip(body.parameters[skip:], names, strict=True):
            mod.names[p.id] = n
            mod.state_of[p.id] = node
        for e in body.effects:  # `push = stack.append` once, `push(x)` per iteration
            if _calls(e, P["stack_push"]) and e.inputs[1] in body.parameters[skip:]:
                j = body.parameters.index(e.inputs[1]) - skip
                self.pushes[e.id] = mod.fresh(f"{names[j]}_append")
                mod.emit_line(indent, f"{self.pushes[e.id]} = {names[j]}.append", node.loc)
        self.loop_depth += 1
        if popped is not None:  # `while stack: x = stack.pop()` is a reversed iteration
            t, pop = popped
            mod.names[pop.id] = mod.name_of(pop)
            mod.aliases.add(pop.id)
            mod.emit_line(indent, f"for {mod.names[pop.id]} in reversed({names[t]}):",
                          node.loc)
        elif cond is not None:
            for p, n in zip(cond.parameters, names, strict=True):
                mod.names[p.id] = n
                mod.state_of[p.id] = node
            mark = len(mod.lines)
            c = mod.fresh("_go")
            self.region(cond, indent + 1, ("assign", [c]))
            cond_lines = mod.lines[mark:]
            cond_locs = mod.line_locs[mark:]
            del mod.lines[mark:]
            del mod.line_locs[mark:]
            prefix = "    " * (indent + 1) + f"{c} = "
            if len(cond_lines) == 1 and cond_lines[0].startswith(prefix):
                mod.emit_line(indent, f"while {cond_lines[0][len(prefix):]}:", node.loc)
            else:
                mod.emit_line(indent, "while True:", node.loc)
                mod.lines.extend(cond_lines)
                mod.line_locs.extend(cond_locs)
                mod.emit_line(indent + 1, f"if not {c}:", node.loc)
                mod.emit_line(indent + 2, "break", node.loc)
        else:
            i = mod.name_of(body.parameters[0])
            mod.emit_line(indent, f"for {i} in {self._range(node, g)}:", node.loc)
        mark = len(mod.lines)
        self._loop_node = node
        self._coalesce_state(body, names, skip)
        live = [None if j in dead else n for j, n in enumerate(names)]
        self.region(body, indent + 1, ("state", live))
        self.loop_depth -= 1
        if len(mod.lines) == mark:
            mod.emit_line(indent + 1, "pass")
        self._bind_loop_result(node, names, indent)

    def _popping_loop(self, body: Graph, cond: Graph | None) -> tuple[int, Apply] | None:
        """For a backward loop over a list stack (`tapeless.opt.loops.lower_stacks`): the
        stack's slot and its `pop` node, when the loop runs until the list is empty."""
        if cond is None:
            return None
        test = cond.output
        if not _calls(test, P["stack_nonempty"]) or test.inputs[1] not in cond.parameters:
            return None
        t = cond.parameters.index(test.inputs[1])
        q = body.parameters[t]
        pops = [e for e in body.effects if _calls(e, P["stack_pop"]) and e.inputs[1] is q]
        out = body.output
        if len(pops) != 1 or not _calls(out, P["make_tuple"]) or out.inputs[1 + t] is not q \
                or len(self.mod.uses.get(q.id, [])) != 2:
            return None
        return t, pops[0]

    def _dead_slots(self, node: Apply, body: Graph, cond: Graph | None,
                    skip: int) -> set[int]:
        """State slots that nothing reads: not the body, not the condition, not the code
        after the loop (e.g. the variable of a `for` loop that is not used after it)."""
        mod = self.mod
        used_after: set[int] = set()
        for u, _ in mod.uses.get(node.id, []):
            if u is None or _prim_of(u) is not P["tuple_getitem"] or \
                    not isinstance(u.inputs[2], Constant):
                return set()
            used_after.add(_value(u.inputs[2]))
        dead = set()
        for j, p in enumerate(body.parameters[skip:]):
            if j in used_after or mod.uses.get(p.id):
                continue
            if cond is not None and mod.uses.get(cond.parameters[j].id):
                continue
            dead.add(j)
        return dead

    def _effective_position(self, n: Apply, body: Graph, pos: dict[int, int]) -> int | None:
        """Where `n` (a node of `body` or of a graph inlined in it) is evaluated, as an
        index into `body`'s schedule: an inlined node is evaluated by its user."""
        mod = self.mod
        g = n.graph
        while g is not None and g is not body:  # a node of an inline graph inside body
            if g.id not in mod.inline:
                return None
            guses = mod.graph_uses.get(g.id, [])
            if len(guses) != 1 or guses[0][0] is None:
                return None
            n, g = guses[0][0], guses[0][0].graph
        if g is None or n.id not in pos:
            return None
        while self._inlined(n, body):
            user = mod.uses[n.id][0][0]
            if user is None or user.id not in pos:
                return len(pos)  # rendered by the tail
            n = user
        return pos[n.id]

    def _coalesce_state(self, body: Graph, names: list[str], skip: int) -> None:
        """Compute a loop variable's new value straight into its state variable
        (`x = f(x)`, not `x_2 = f(x)` ... `x = x_2`) when the old value is not read
        after the new one is computed."""
        mod = self.mod
        out = body.output
        if not _calls(out, P["make_tuple"]) or out.graph is not body or \
                mod.closures_of.get(body.id):
            return
        order = mod.nodes_of[body.id]
        pos = {n.id: i for i, n in enumerate(order)}
        params = body.parameters[skip:]
        values = out.inputs[1:]
        if not (len(values) == len(params) == len(names)):
            return
        # A new value that cannot be computed into its variable (the old value is read
        # after it) and that only the closing assignment reads is rendered there:
        # `x, x_dot = sin(x) * c, x_dot * cos(x) * c`, not `y = sin(x) * c` first and
        # `x, x_dot = y, ...` (a store and a load per iteration fewer). Decided for every
        # slot before any is coalesced: the reads this moves later are then known.
        for p, v in zip(params, values, strict=True):
            if not (mod.state_tails and isinstance(v, Apply) and v.graph is body and
                    v.name and mod.keep_names and v.id in pos and v.id not in mod.names):
                continue
            last = self._last_read(p, out, body, pos)
            if last is None or last <= pos[v.id]:
                continue  # (computed into its variable, below)
            mod.in_state_tail.add(v.id)
            if not self._inlined(v, body):  # (read elsewhere too, an effect, a loop...)
                mod.in_state_tail.discard(v.id)
        taken: set[int] = set()
        for j, (p, v) in enumerate(zip(params, values, strict=True)):
            prim = _prim_of(v)
            if not isinstance(v, Apply) or v.graph is not body or v.id in mod.names or \
                    v.id in taken or v.id not in pos or prim is None or \
                    prim.loop or prim is P["tuple_getitem"] or \
                    (prim in _UPDATES_FIRST and prim is not P["add_into_known"]) or \
                    self._inlined(v, body):
                continue
            if any(w is p for k, w in enumerate(values) if k != j):
                continue
            last = self._last_read(p, out, body, pos)
            if last is None or last > pos[v.id]:
                continue
            mod.names[v.id] = names[j]
            mod.coalesced[v.id] = self._loop_node
            mod.coalesced_values[v.id] = v
            taken.add(v.id)

    def _last_read(self, p: Parameter, out: Apply, body: Graph,
                   pos: dict[int, int]) -> int | None:
        """The position in `body`'s schedule of the last read of `p` (a state parameter)
        other than by the body's output `out`, -1 if none; None if one is not known."""
        last = -1
        for u, _ in self.mod.uses.get(p.id, []):
            if u is out:
                continue
            at = None if u is None else self._effective_position(u, body, pos)
            if at is None:
                return None
            last = max(last, at)
        return last

    def _range(self, node: Apply, g: Graph) -> str:
        start, stop, step = node.inputs[1:4]
        s = [self.render(x, g) for x in (start, stop, step)]
        if s[2] == "1":
            return f"range({_strip(s[1])})" if s[0] == "0" else \
                f"range({_strip(s[0])}, {_strip(s[1])})"
        return f"range({_strip(s[0])}, {_strip(s[1])}, {_strip(s[2])})"

    def _result_names_loop(self, node: Apply, body: Graph | None, skip: int) -> list[str]:
        mod = self.mod
        uses = mod.uses.get(node.id, [])
        params = body.parameters[skip:] if body is not None else []
        init = node.inputs[(3 if skip == 0 else 5):]
        given = [self._init_name(node, init[j]) if j < len(init) and
                 init[j].name == p.name else None for j, p in enumerate(params)]
        names = [n or mod.fresh(p.name or "_s") for n, p in zip(given, params, strict=True)]
        if body is None:
            names = [mod.fresh("_s") for _ in init]
        for u, _ in uses:
            if u is not None and _prim_of(u) is P["tuple_getitem"] and \
                    isinstance(u.inputs[2], Constant):
                mod.names[u.id] = names[_value(u.inputs[2])]
                mod.aliases.add(u.id)
        return names

    def _init_name(self, node: Apply, v: Node) -> str | None:
        """The name of a loop's initial value `v` (a value of the same variable), when
        the loop's state variable may take it (`h = f(h)` in the loop, with no
        `h_1 = h` before it): nothing but the loop reads `v`, and no other value still
        needed has its name."""
        mod = self.mod
        name = mod.names.get(v.id)
        if name is None or isinstance(v, Constant) or \
                mod.uses.get(v.id, []) != [(node, node.graph)]:
            return None
        # `v` may share its name with the other values of a loop's state variable:
        # inside that loop (v is its state), they are all read before this loop or
        # assigned after it; after that loop (v is its result), those inside it are done.
        loop, inside = mod.state_of.get(v.id), True
        if loop is None and v.id in mod.aliases and isinstance(v, Apply) and \
                _prim_of(v) is P["tuple_getitem"] and (_prim_of(v.inputs[1]) or P["add"]).loop:
            loop, inside = v.inputs[1], False
        results = {u.id for u, _ in mod.uses.get(loop.id, []) if u is not None} \
            if loop is not None else set()
        for k in mod.holders(name):
            if k == v.id:
                continue
            if loop is None:
                return None
            if mod.state_of.get(k) is loop:
                continue
            if mod.coalesced.get(k) is loop:
                # The loop's next value, computed into the variable: this loop's results
                # may share its name only if none is read after it is assigned.
                if inside and self._read_after(node, k):
                    return None
                continue
            if k in results and (inside or not mod.uses.get(k)):
                continue
            return None
        return name

    def _read_after(self, node: Apply, k: int) -> bool:
        """Whether a result of the loop `node` may be read after the node `k` (a value of
        an enclosing loop's body, computed into that loop's state variable) is."""
        mod = self.mod
        holder = mod.coalesced_values.get(k)
        body = holder.graph if holder is not None else None
        if body is None or body.id not in mod.nodes_of:
            return True
        pos = {n.id: i for i, n in enumerate(mod.nodes_of[body.id])}
        limit = pos.get(k)
        if limit is None:
            return True
        for r, _ in mod.uses.get(node.id, []):
            if r is None:
                return True
            for u, _ in mod.uses.get(r.id, []):
                at = None if u is None else self._effective_position(u, body, pos)
                if at is None or at > limit:
                    return True
        return False

    def _bind_loop_result(self, node: Apply, names: list[str], indent: int) -> None:
        mod = self.mod
        others = [u for u, _ in mod.uses.get(node.id, []) if u is None or
                  _prim_of(u) is not P["tuple_getitem"] or not isinstance(u.inputs[2],
                                                                          Constant)]
        if others:
            tup = ", ".join(names) + ("," if len(names) == 1 else "")
            mod.emit_line(indent, f"{mod.name_of(node)} = ({tup})", node.loc)

    # --- expressions ------------------------------------------------------------

    def render_operand(self, node: Node, g: Graph, min_prec: int) -> str:
        text, prec = self.render_prec(node, g)
        return text if prec >= min_prec else f"({text})"

    def render_prec(self, node: Node, g: Graph) -> tuple[str, int]:
        """The expression for `node` without outer parentheses, and its precedence."""
        if isinstance(node, Constant) and isinstance(node.value, (int, float)) and \
                not isinstance(node.value, bool) and math.isfinite(node.value) and (
                    node.value < 0 or (isinstance(node.value, float)
                                       and math.copysign(1, node.value) < 0)):
            return repr(node.value), PRECEDENCE["unary"]
        if isinstance(node, Apply) and node.graph is g and node.id not in self.mod.names \
                and (self._inlined(node, g) or (node is g.output and self._tail_handles(
                    node, g))):
            return self.expression(node)
        return self.render(node, g), ATOM

    def expression(self, node: Apply) -> tuple[str, int]:
        """`node`'s own expression (its inputs rendered as needed), with its precedence."""
        g = node.graph
        assert g is not None
        prim = _prim_of(node)
        emit = spelling(prim) if prim is not None else None
        if emit is not None and hasattr(emit, "op"):
            op = emit.op
            p = PRECEDENCE[op]
            a, b = node.inputs[1:3]
            if op in ("is", "is not") and isinstance(a, Constant) and isinstance(b, Constant) \
                    and _simple(a.value) and _simple(b.value):
                # `1 is not None` is a SyntaxWarning: decide it here.
                return repr((a.value is b.value) == (op == "is")), ATOM
            if op == "**":
                left = self.render_operand(a, g, p + 1)
                right = self.render_operand(b, g, PRECEDENCE["unary"])
            elif p == 5:  # comparisons chain: parenthesize nested ones
                left = self.render_operand(a, g, p + 1)
                right = self.render_operand(b, g, p + 1)
            else:
                left = self.render_operand(a, g, p)
                right = self.render_operand(b, g, p + 1)
            return f"{left} {op} {right}", p
        if emit is not None and hasattr(emit, "unary"):
            op = emit.unary
            p = PRECEDENCE["not "] if op == "not " else PRECEDENCE["unary"]
            return f"{op}{self.render_operand(node.inputs[1], g, p)}", p
        text = self.render_call(node)
        if _is_switch_call(node) and self._inline_switch(node):
            return _strip(text), PRECEDENCE["if"]
        return text, ATOM

    def render(self, node: Node, g: Graph) -> str:
        mod = self.mod
        if isinstance(node, Constant):
            return mod.constant(node.value)
        if node.id in mod.names:
            return mod.names[node.id]
        if isinstance(node, Apply) and node.graph is g and (self._inlined(node, g) or (
                node is g.output and self._tail_handles(node, g))):
            text, prec = self.render_prec(node, g)
            return text if prec == ATOM else f"({text})"
        return mod.name_of(node)

    def render_call(self, node: Apply) -> str:
        g = node.graph
        assert g is not None
        callee, args = node.inputs[0], node.inputs[1:]
        prim = _prim_of(node)
        if prim is not None:
            if node.id in self.pushes:
                return f"{self.pushes[node.id]}({self.render_operand(args[1], g, 1)})"
            if prim is P["make_tuple"]:
                parts = [self.render_operand(a, g, 1) for a in args]
                return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"
            if prim is P["make_list"]:
                return "[" + ", ".join(self.render_operand(a, g, 1) for a in args) + "]"
            if prim in (P["getitem"], P["tuple_getitem"]):
                base = self.render_operand(args[0], g, ATOM)
                if isinstance(args[0], Constant) and type(args[0].value) in (int, float, bool):
                    # (A number subscripted, in a branch that cannot run: as a literal,
                    # Python would warn when compiling the module.)
                    base = self.mod.named(args[0].value)
                return f"{base}[{self.render_index(args[1], g)}]"
            if prim is P["add_into_known"]:
                return f"{self.render_operand(args[0], g, ATOM)}" \
                    f"[{self.render_index(args[1], g)}] += {_strip(self.render(args[2], g))}"
            if prim in _UPDATES_FIRST:  # (`a *= b`)
                update: str = cast(Any, spelling(prim))([self.render_operand(args[0], g, ATOM),
                                                         _strip(self.render(args[1], g))])
                return update
            if prim is P["assert"]:
                msg = "" if _is_none(args[1]) else f"({_strip(self.render(args[1], g))})"
                return f"if not {self.render(args[0], g)}: raise AssertionError{msg}"
            emit = spelling(prim)
            assert emit is not None, prim.name  # (loops are emitted as statements)
            if hasattr(emit, "op") or hasattr(emit, "unary"):
                return self.expression(node)[0]
            if getattr(emit, "call", False):
                text = emit([self.render_operand(a, g, 1) for a in args])
                name: str = cast(Any, emit).callee
                if self.loop_depth and "." in name and text.startswith(name + "("):
                    local = self.hoisted.get(name)
                    if local is None:
                        local = self.hoisted[name] = self.mod.fresh(
                            "_" + name.rsplit(".", 1)[1])
                    text = local + text[len(name):]
                return text
            return emit([self.render_operand(a, g, ATOM) for a in args])
        if _is_switch_call(node):
            sw = _switch_of(node)
            if self._inline_switch(node):
                c = self.render_operand(sw.inputs[1], g, PRECEDENCE["or"])
                t, f = (self.render_operand(_output(b), b, PRECEDENCE["or"])
                        for b in _branches(node))
                return f"({t} if {c} else {f})"
            c, t, f = (self.render(x, g) for x in sw.inputs[1:4])
            return f"({t} if {c} else {f})()"
        fn: Graph | None = callee.value if is_constant_graph(callee) else None
        specs = _signature(fn) if fn is not None else None
        if fn is not None and specs is not None and len(specs) == len(args) and \
                any(spec.kind != "pos" for spec in specs):
            # The IR passes `*args` as one tuple and keyword-only parameters in order.
            parts = []
            for a, spec, p in zip(args, specs, fn.parameters, strict=True):
                text = self.render_operand(a, g, 1)
                if spec.kind == "vararg":
                    text = _star(text)
                elif spec.kind in ("kwonly", "varkw"):  # (`**name` is a keyword dict)
                    text = f"{self.mod.name_of(p)}={text}"
                if text:
                    parts.append(text)
            return f"{self.render_operand(callee, g, ATOM)}({', '.join(parts)})"
        return f"{self.render_operand(callee, g, ATOM)}(" \
               f"{', '.join(self.render_operand(a, g, 1) for a in args)})"

    def render_index(self, node: Node, g: Graph) -> str:
        """Render a subscript with slice syntax where the index is built in place."""
        prim = _prim_of(node)
        if prim is P["make_slice"] and isinstance(node, Apply) and node.graph is g and \
                self._inlined(node, g):
            parts = ["" if _is_none(x) else _strip(self.render(x, g)) for x in node.inputs[1:]]
            return f"{parts[0]}:{parts[1]}" + (f":{parts[2]}" if parts[2] else "")
        if prim is P["make_tuple"] and isinstance(node, Apply) and node.graph is g and \
                self._inlined(node, g) and len(node.inputs) > 2:
            return ", ".join(self.render_index(x, g) for x in node.inputs[1:])
        if isinstance(node, Constant) and isinstance(node.value, tuple) and node.value:
            return ", ".join(_index_constant(self.mod, v) for v in node.value)
        if isinstance(node, Constant):
            return _index_constant(self.mod, node.value)
        return _strip(self.render(node, g))


def _result_width(node: Node, depth: int = 0) -> int:
    """How many values an `if` statement's branches produce (0 if not known, or where
    two branches give tuples of different lengths: a branch whose tuple is too short
    for an item read only where the other branch ran cannot be unpacked)."""
    if depth > 50 or not _is_switch_call(node):
        return 0
    found = 0
    for b in _switch_of(node).inputs[2:4]:
        if is_constant_graph(b):
            out = b.value.output
            if _calls(out, P["make_tuple"]):
                width = len(out.inputs) - 1
            elif isinstance(out, Constant) and type(out.value) is tuple:
                width = len(out.value) or -1  # (an empty tuple: unpacks to nothing)
            elif isinstance(out, Constant):
                return 0  # (ZERO, a number: no tuple to unpack; its items are read)
            else:
                width = _result_width(out, depth + 1) if out is not None else 0
            if width and found and width != found:
                return 0
            found = found or width
    return max(found, 0)


def _output(g: Graph) -> Node:
    """The output of `g`, a graph that has one (an inline branch)."""
    assert g.output is not None
    return g.output


def _index_constant(mod: ModuleEmitter, v: Any) -> str:
    if isinstance(v, slice):
        parts = ["" if x is None else mod.constant(x) for x in (v.start, v.stop, v.step)]
        return f"{parts[0]}:{parts[1]}" + (f":{parts[2]}" if parts[2] else "")
    if v is Ellipsis:
        return "..."
    return mod.constant(v)


def _is_none(node: Node) -> bool:
    return isinstance(node, Constant) and node.value is None


def _strip(text: str) -> str:
    """Drop one pair of redundant outer parentheses."""
    if len(text) >= 2 and text[0] == "(" and text[-1] == ")":
        if not one_group(text):
            return text
        inner = text[1:-1]
        if inner.rstrip().endswith(",") or inner.strip() == "":
            return text
        return inner
    return text


def _strip_element(text: str) -> str:
    """`_strip`, but keep the parentheses of a tuple display (an element of `a, b = ...`)."""
    inner = _strip(text)
    if inner is text:
        return text
    depth = 0
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            return text
    return inner


def compile_graph(root: Graph, state_tails: bool = True) -> Compiled:
    """Generate, compile and load the Python source of `root` (and what it calls);
    `state_tails=False` (for the native backend's lowering) keeps each named new value
    of loop state a statement of its own."""
    return ModuleEmitter(root, state_tails).build()
