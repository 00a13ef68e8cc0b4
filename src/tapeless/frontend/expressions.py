"""Compiling Python expressions to IR nodes (mixed into the front end's Compiler)."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import inspect
import math
import types
import weakref
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import numpy as np

from ..errors import CompileError
from ..ir.nodes import (
    PENDING_TRANSFORMS,
    Apply,
    Constant,
    Graph,
    Node,
    TransformSpec,
    is_constant_graph,
)
from ..primitives import METHODS, PRIMITIVES, Primitive, lookup_callable, random_ops
from ..runtime import NO_DEFAULT
from ..vmap_axes import AxesMismatch, Param, call_axes, generic_axes
from . import jacobians
from .guards import MISSING
from .libraries import installed_package, library_error, public_name, refusal

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..ir.nodes import Location
    from .guards import Entry
    from .parser import Resolver
    from .scopes import Block

P = PRIMITIVES

BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
          ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow", ast.MatMult: "matmul",
          ast.BitAnd: "bitand", ast.BitOr: "bitor", ast.BitXor: "bitxor",
          ast.LShift: "lshift", ast.RShift: "rshift"}
CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq",
          ast.NotEq: "ne", ast.Is: "is_", ast.IsNot: "is_not", ast.In: "contains",
          ast.NotIn: "not_contains"}
UNARY = {ast.USub: "neg", ast.UAdd: "pos", ast.Not: "not_", ast.Invert: "invert"}
# Modules whose functions must be registered primitives to be called.
NATIVE_MODULES = ("numpy", "math", "builtins", "scipy", "operator", "random")


class ExpressionMixin:
    """Expression compilation; relies on the Compiler's `error`, `loc`, `define`,
    `resolve_free`, `assign`, `_branch`, `lookup_global`, `entry` and `resolver`."""

    if TYPE_CHECKING:
        # What the Compiler (frontend.parser) provides, declared for the type checker
        # only: at run time these come from the Compiler, the mixin's only user.
        resolver: Resolver
        entry: Entry
        maybe_unbound: set[Node]

        def error(self, message: str, node: ast.AST, hint: str = "") -> CompileError: ...
        def loc(self, node: ast.AST) -> Location: ...
        def may_be_unbound(self, node: Node | None) -> bool: ...
        def lookup_global(self, name: str) -> Any: ...
        def resolve_free(self, name: str, block: Block, at: ast.AST) -> Node | None: ...
        def define(self, node: ast.FunctionDef | ast.Lambda, block: Block) -> Graph: ...
        def assign(self, target: ast.AST, value: Node, block: Block) -> None: ...
        def _branch(self, block: Block, name: str, build: Callable[[Block], Node],
                    at: ast.AST, params: Sequence[str] = (),
                    param_label: dict[str, str] | None = None) -> Graph: ...

    def expr(self, node: ast.expr, block: Block) -> Node:
        method: Callable[[ast.expr, Block], Node] | None = \
            getattr(self, "expr_" + type(node).__name__, None)
        if method is None:
            raise self.error(f"{_describe(node)} is not supported", node,
                             _EXPR_HINTS.get(type(node), ""))
        return method(node, block)

    def expr_Constant(self, node: ast.Constant, block: Block) -> Node:
        return Constant(node.value, self.loc(node))

    def expr_Name(self, node: ast.Name, block: Block) -> Node:
        name = node.id
        injected: dict[str, Node] | None = self.__dict__.get("injected")
        if injected and name in injected:  # (`_jacobian_call`'s names)
            return injected[name]
        if block.scope.is_local(name):
            found = block.lookup(name)
            if found is None:
                raise self.error(f"local variable '{name}' is used before it is assigned",
                                 node, f"assign '{name}' on every path before this line")
            if self.may_be_unbound(found):
                # Unbound on some path (CPython raises UnboundLocalError there); once
                # checked, later reads in this block need no check.
                found = block.graph.apply(P["check_bound"], found, Constant(name),
                                          Constant(str(self.loc(node))), loc=self.loc(node),
                                          name=name)
                block.vars[name] = found
            return found
        free = self.resolve_free(name, block, node)
        if free is not None:
            return free
        return self.global_value(name, node)

    def global_value(self, name: str, node: ast.AST) -> Node:
        value = self.lookup_global(name)
        if value is not MISSING:
            return self.constant_for(value, node, name)
        if hasattr(builtins, name):
            return self.constant_for(getattr(builtins, name), node)
        raise self.error(f"name '{name}' is not defined", node,
                         f"define '{name}' before this line, or import it at the top of "
                         "the file")

    def constant_for(self, value: Any, node: ast.AST, name: str = "") -> Node:
        """The constant of a compile-time value; `name`, the global, closure variable
        or attribute it was read from, names it in the generated code."""
        c = constant_node(value, self.resolver, self.loc(node))
        if name and not isinstance(c.value, Graph):
            c.name = name
        return c

    def expr_BinOp(self, node: ast.BinOp, block: Block) -> Node:
        left = self.expr(node.left, block)
        right = self.expr(node.right, block)
        return self.binop(node.op, left, right, block, node)

    def binop(self, op: ast.operator, left: Node, right: Node, block: Block,
              at: ast.AST) -> Node:
        if type(op) is ast.Div and (x := _logistic_argument(left, right)) is not None:
            return block.graph.apply(P["logistic"], x, loc=self.loc(at))
        return block.graph.apply(P[BINOPS[type(op)]], left, right, loc=self.loc(at))

    def expr_UnaryOp(self, node: ast.UnaryOp, block: Block) -> Node:
        operand = self.expr(node.operand, block)
        return block.graph.apply(P[UNARY[type(node.op)]], operand, loc=self.loc(node))

    def expr_Compare(self, node: ast.Compare, block: Block) -> Node:
        left = self.expr(node.left, block)
        return self._compare(left, list(zip(node.ops, node.comparators, strict=True)),
                             block, node)

    def _compare(self, left: Node, rest: list[tuple[ast.cmpop, ast.expr]], block: Block,
                 at: ast.AST) -> Node:
        op, right_expr = rest[0]
        right = self.expr(right_expr, block)
        result = block.graph.apply(P[CMPOPS[type(op)]], left, right, loc=self.loc(at))
        if len(rest) == 1:
            return result
        # a < b < c is (a < b) and (b < c), with b evaluated once.
        return self._short_circuit(result, lambda b: self._compare(right, rest[1:], b, at),
                                   True, block, at)

    def expr_BoolOp(self, node: ast.BoolOp, block: Block) -> Node:
        is_and = isinstance(node.op, ast.And)

        def chain(values: list[ast.expr], b: Block) -> Node:
            first = self.expr(values[0], b)
            if len(values) == 1:
                return first
            return self._short_circuit(first, lambda bb: chain(values[1:], bb), is_and, b,
                                       node)

        return chain(node.values, block)

    def _short_circuit(self, first: Node, rest: Any, is_and: bool, block: Block,
                       at: ast.AST) -> Node:
        """`first and rest` / `first or rest` with Python's value semantics."""
        g_rest = self._branch(block, "and" if is_and else "or", self.lossy(rest), at)
        g_first = self._branch(block, "short", lambda _: first, at)
        branches = (g_rest, g_first) if is_and else (g_first, g_rest)
        sw = block.graph.apply(P["switch"], first, *branches, loc=self.loc(at))
        out = block.graph.apply(sw, loc=self.loc(at))
        if g_rest.effects:
            block.graph.effects.append(out)
        return out

    def lossy(self, build: Callable[[Block], Node]) -> Callable[[Block], Node]:
        """`build(block)`, compiled where an assignment expression's binding would not
        reach the rest of the function (a branch of an expression, a loop condition)."""

        def run(b: Block) -> Node:
            scopes = self.__dict__.setdefault("_lossy_scopes", [])
            scopes.append(b.scope)
            try:
                return build(b)
            finally:
                scopes.pop()

        return run

    def expr_IfExp(self, node: ast.IfExp, block: Block) -> Node:
        cond = self.expr(node.test, block)
        g_true = self._branch(block, "if_true", self.lossy(lambda b: self.expr(node.body, b)),
                              node)
        g_false = self._branch(block, "if_false",
                               self.lossy(lambda b: self.expr(node.orelse, b)), node)
        sw = block.graph.apply(P["switch"], cond, g_true, g_false, loc=self.loc(node))
        out = block.graph.apply(sw, loc=self.loc(node))
        if g_true.effects or g_false.effects:
            block.graph.effects.append(out)
        return out

    def expr_NamedExpr(self, node: ast.NamedExpr, block: Block) -> Node:
        scope = block.scope
        while scope.immediate and scope.parent is not None:  # comprehensions bind outside
            scope = scope.parent
        if any(scope is s for s in getattr(self, "_lossy_scopes", ())):
            raise self.error("an assignment expression (`:=`) inside `and`/`or`, a "
                             "conditional expression, a comprehension or a `while` "
                             "condition is not supported", node,
                             "assign the value in a statement of its own")
        value = self.expr(node.value, block)
        self.assign(node.target, value, block)
        return value

    # --- containers -------------------------------------------------------------

    def _elements(self, elts: list[ast.expr], block: Block) -> Node:
        """A tuple of the elements, splicing `*starred` ones."""
        g = block.graph
        parts: list[Node] = []
        pending: list[Node] = []
        for e in elts:
            if isinstance(e, ast.Starred):
                if pending:
                    parts.append(g.apply(P["make_tuple"], *pending, loc=self.loc(e)))
                    pending = []
                parts.append(g.apply(P["tuple"], self.expr(e.value, block), loc=self.loc(e)))
            else:
                pending.append(self.expr(e, block))
        if pending or not parts:
            parts.append(g.apply(P["make_tuple"], *pending))
        out = parts[0]
        for p in parts[1:]:
            out = g.apply(P["add"], out, p)
        return out

    def expr_Tuple(self, node: ast.Tuple, block: Block) -> Node:
        out = self._elements(node.elts, block)
        if isinstance(out, Apply):
            out.loc = self.loc(node)
        return out

    def expr_List(self, node: ast.List, block: Block) -> Node:
        if not any(isinstance(e, ast.Starred) for e in node.elts):
            return block.graph.apply(P["make_list"], *[self.expr(e, block) for e in node.elts],
                                     loc=self.loc(node))
        return block.graph.apply(P["list"], self._elements(node.elts, block),
                                 loc=self.loc(node))

    def expr_Dict(self, node: ast.Dict, block: Block) -> Node:
        g = block.graph
        if any(k is None for k in node.keys):
            # {**a, "k": v, **b}: displays of the runs of pairs and the dicts spliced,
            # merged in order.
            parts: list[Node] = []
            run: list[tuple[ast.expr, ast.expr]] = []

            def close_run() -> None:
                if run:
                    display = ast.Dict([a for a, _ in run], [b for _, b in run])
                    parts.append(self.expr(ast.copy_location(display, node), block))
                    run.clear()

            for k, v in zip(node.keys, node.values, strict=True):
                if k is not None:
                    run.append((k, v))
                else:
                    close_run()
                    parts.append(self.expr(v, block))
            close_run()
            return g.apply(P["dict_merge"], g.apply(P["make_tuple"], *parts),
                           loc=self.loc(node))
        keys = g.apply(P["make_tuple"], *[self.expr(k, block) for k in node.keys
                                          if k is not None])  # (none is, see above)
        values = g.apply(P["make_tuple"], *[self.expr(v, block) for v in node.values])
        return g.apply(P["make_dict"], keys, values, loc=self.loc(node))

    def expr_Subscript(self, node: ast.Subscript, block: Block) -> Node:
        value = self.expr(node.value, block)
        if isinstance(value, Constant) and (value.value is np.r_ or value.value is np.c_):
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            # `np.r_[a, b, ...]` / `np.c_[a, b, ...]` of arrays, numbers and slices are
            # concatenations, differentiated item by item (a string directive such as
            # np.r_['0,2', ...] or a starred item stays a getitem, whose index is not
            # differentiated: it raises if a derivative must flow through it).
            if not any(isinstance(e, ast.Starred) or (isinstance(e, ast.Constant) and
                                                       isinstance(e.value, str))
                       for e in elts):
                items = [self._index(e, block) for e in elts]
                axis = 0 if value.value is np.r_ else -1
                return block.graph.apply(P["index_concat"], Constant(axis),
                                         block.graph.apply(P["make_tuple"], *items),
                                         loc=self.loc(node))
        index = self._index(node.slice, block)
        return block.graph.apply(P["getitem"], value, index, loc=self.loc(node))

    def _index(self, node: ast.expr, block: Block) -> Node:
        if isinstance(node, ast.Slice):
            parts = [self.expr(p, block) if p is not None else Constant(None)
                     for p in (node.lower, node.upper, node.step)]
            return block.graph.apply(P["make_slice"], *parts, loc=self.loc(node))
        if isinstance(node, ast.Tuple):
            return block.graph.apply(P["make_tuple"], *[self._index(e, block)
                                                        for e in node.elts])
        return self.expr(node, block)

    def expr_JoinedStr(self, node: ast.JoinedStr, block: Block) -> Node:
        g = block.graph
        parts: list[Node] = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(Constant(v.value))
            else:
                assert isinstance(v, ast.FormattedValue)
                value = self.expr(v.value, block)
                if v.conversion != -1:
                    conv = {ord("r"): repr, ord("s"): str, ord("a"): ascii}[v.conversion]
                    value = g.apply(P["convert"], value, conv)
                spec = self.expr(v.format_spec, block) if v.format_spec else Constant("")
                parts.append(g.apply(P["format"], value, spec))
        return g.apply(P["join_strings"], g.apply(P["make_tuple"], *parts),
                       loc=self.loc(node))

    # --- attributes and calls -----------------------------------------------------

    def expr_Attribute(self, node: ast.Attribute, block: Block) -> Node:
        value = self.expr(node.value, block)
        if isinstance(value, Constant) and not isinstance(value.value, Graph) and \
                _is_namespace(value.value):
            if not hasattr(value.value, node.attr):
                raise self.error(f"{_qualname(value.value)}.{node.attr} does not exist", node,
                                 "check the spelling; docs/language.md lists the functions "
                                 "tapeless supports")
            self._record_attribute(value.value, node.attr)
            return self.constant_for(getattr(value.value, node.attr), node, node.attr)
        return block.graph.apply(P["getattr"], value, node.attr, loc=self.loc(node))

    def _record_attribute(self, namespace: Any, attr: str) -> None:
        """Record an attribute of a module or a class read when compiling (`config.LR`,
        `Model.SCALE`) for the guards: the object in the namespace's `__dict__`. Not for
        the libraries whose functions are primitives (`np.tanh`, `math.pi`) nor for
        attributes a class inherits or a module computes (`__getattr__`)."""
        if isinstance(namespace, types.ModuleType):
            module = namespace.__name__
        else:
            module = getattr(namespace, "__module__", None) or ""
        if module.split(".")[0] in NATIVE_MODULES + ("tapeless",):
            return
        space = vars(namespace)
        raw = space.get(attr)
        if raw is not None or attr in space:
            self.entry.record(space, attr, raw)

    def expr_Call(self, node: ast.Call, block: Block) -> Node:
        g = block.graph
        loc = self.loc(node)
        if isinstance(node.func, ast.Attribute):
            receiver = self.expr(node.func.value, block)
            if not (isinstance(receiver, Constant) and _is_namespace(receiver.value)):
                return self._method_call(receiver, node.func.attr, node, block)
            callee = self.expr_Attribute(node.func, block)
        else:
            callee = self.expr(node.func, block)
        spread: list[tuple[Node, ast.expr]] = []
        kwargs = self._keywords(node, block, spread)
        starred = any(isinstance(a, ast.Starred) for a in node.args)
        if spread and (starred or not (isinstance(callee, Constant) and
                                       isinstance(callee.value, Graph))):
            raise self._unknown_keys(spread[0][1])
        if isinstance(callee, Constant):
            fn = callee.value
            if _is_api(fn):
                return self.api_call(fn, node, block)
            if isinstance(fn, type) and getattr(fn, "__tapeless_custom__", False):
                name = f"tl.{fn.__name__}"
                raise self.error(f"{name}(...) inside compiled code is not supported", node,
                                 f"decorate the function with @{name} where it is defined "
                                 "(at module level) and call it here")
            prim = lookup_callable(fn) if not isinstance(fn, Graph) else None
            if fn is dataclasses.replace:
                # dataclasses.replace(obj, f=v, ...): the fields replaced at run time.
                if len(node.args) != 1 or starred:
                    raise self.error("dataclasses.replace takes the object and keyword "
                                     "arguments", node)
                return g.apply(P["replace_fields"], self.expr(node.args[0], block),
                               Constant(tuple(kwargs)),
                               g.apply(P["make_tuple"], *kwargs.values()), loc=loc)
            if fn is builtins.zip and "strict" in kwargs:
                return self._zip_strict(node, kwargs, block)
            if fn is builtins.dict and kwargs and not node.args:
                # dict(a=x, b=y): the display {"a": x, "b": y}.
                return g.apply(P["make_dict"], Constant(tuple(kwargs)),
                               g.apply(P["make_tuple"], *kwargs.values()), loc=loc)
            if prim is not None:
                args = self._call_args(node, block, starred)
                bound = self.bind_primitive(prim, args, kwargs, node, block, starred)
                out = g.apply(prim, *bound, loc=loc)
                if prim.effect:
                    g.effects.append(out)
                return out
            if isinstance(fn, Graph):
                args = self._call_args(node, block, starred)
                if starred:
                    if kwargs:
                        raise self.error("keyword arguments together with `*args` are not "
                                         "supported", node)
                    if fn in VMAP_CALLS and _axes_by_call(fn):
                        raise self._vmap_unknown_call(node, "called with *args",
                                                      "pass the arguments one by one")
                    out = g.apply(P["call_star"], callee, args[0], loc=loc)
                else:
                    if fn in VMAP_CALLS:  # (`tl.vmap(f)`: its axes for this call)
                        if spread:
                            raise self._vmap_unknown_call(
                                node, "called with **kwargs", "pass the keyword arguments "
                                "by name")
                        fn = self._vmap_for_call(fn, node, len(args), list(kwargs))
                        callee = Constant(fn, callee.loc)
                    bound = self.bind_graph(fn, args, kwargs, node, block,
                                            [d for d, _ in spread])
                    out = g.apply(callee, *bound, loc=loc)
                g.effects.append(out)
                return out
            if isinstance(fn, type) and (dataclasses.is_dataclass(fn) or _is_namedtuple(fn)):
                args = self._call_args(node, block, starred)
                if starred:
                    raise self.error("`*args` in a constructor call is not supported", node)
                bound = self._bind_class(fn, args, kwargs, node)
                return g.apply(P["construct"], fn, self._pack(bound, node, block), loc=loc)
            if isinstance(fn, type) and issubclass(fn, BaseException):
                if kwargs:
                    raise self.error("keyword arguments to an exception are not supported",
                                     node, "pass the arguments positionally")
                args = self._call_args(node, block, starred)
                fields = args[0] if starred else self._pack(args, node, block)
                return g.apply(P["construct"], fn, fields, loc=loc)
            if not isinstance(fn, type) and isinstance(inspect.getattr_static(
                    type(fn), "__call__", None), types.FunctionType):
                # An object of the user's class with `__call__` (a global `model`): called
                # as a value, as one passed in is, so its fields are read when it runs.
                if kwargs:
                    raise self.error(f"keyword arguments to the object {_qualname(fn)} are "
                                     "not supported", node, "pass them positionally")
                return self._call_value(callee, node, block)
            raise self._unknown_callable(fn, node)
        if kwargs:
            raise self.error("keyword arguments are only supported when the called "
                             "function is known at compile time", node,
                             "pass the arguments positionally")
        return self._call_value(callee, node, block)

    def _call_value(self, callee: Node, node: ast.Call, block: Block) -> Node:
        """A call of a value known at run time only, with positional arguments."""
        g, loc = block.graph, self.loc(node)
        starred = any(isinstance(a, ast.Starred) for a in node.args)
        args = self._call_args(node, block, starred)
        if starred:
            out = g.apply(P["call_star"], callee, args[0], loc=loc)
        else:
            out = g.apply(callee, *args, loc=loc)
        g.effects.append(out)
        return out

    def _zip_strict(self, node: ast.Call, kwargs: dict[str, Node], block: Block) -> Node:
        """`zip(a, b, ..., strict=flag)` with `flag` known when compiling."""
        g = block.graph
        strict = kwargs.pop("strict")
        if kwargs or any(isinstance(a, ast.Starred) for a in node.args) or \
                not (isinstance(strict, Constant) and isinstance(strict.value, bool)):
            raise self.error("zip() here takes its iterables as positional arguments and "
                             "`strict=True` or `strict=False` written as a constant", node)
        seqs = g.apply(P["make_tuple"], *[self.expr(a, block) for a in node.args])
        if strict.value and len(node.args) > 1:
            seqs = g.apply(P["zip_strict"], seqs, loc=self.loc(node))
        return g.apply(P["zip"], seqs, loc=self.loc(node))

    def _keywords(self, node: ast.Call, block: Block,
                  spread: list[tuple[Node, ast.expr]] | None = None) -> dict[str, Node]:
        """The keyword arguments of a call, by name; `**d` spreads a dict whose keys are
        known when compiling (a display, `dict(...)`, and updates of them). Other dicts
        spread are collected in `spread` (for a call of a known function), or refused."""
        out: dict[str, Node] = {}
        for k in node.keywords:
            if k.arg is not None:
                items = [(k.arg, self.expr(k.value, block))]
            else:
                value = self.expr(k.value, block)
                found = known_items(value)
                if found is None:
                    if spread is None:
                        raise self._unknown_keys(k.value)
                    spread.append((value, k.value))
                    continue
                items = found
            for key, item in items:
                if key in out:
                    raise self.error(f"keyword argument '{key}' is given twice", node)
                out[key] = item
        return out

    def _unknown_keys(self, at: ast.expr) -> CompileError:
        return self.error("`**` here needs a dict whose keys are known when compiling (a "
                          "dict passed to a function defined in Python may have any keys)",
                          at, "pass keyword arguments by name, or a dict display such as "
                          "`{'a': a}` or `dict(a=a)`")

    def _call_args(self, node: ast.Call, block: Block, starred: bool) -> list[Node]:
        if starred:
            return [self._elements(node.args, block)]
        args = [self.expr(a, block) for a in node.args]
        for a, at in zip(args, node.args, strict=True):
            if is_constant_graph(a) and a.value in VMAP_CALLS and _axes_by_call(a.value):
                raise self._vmap_unknown_call(at, "passed as a value", "call it where it is "
                                              "made, or pass a lambda that calls it: "
                                              "`lambda x, w: tl.vmap(f)(x, w)`")
        return args

    def _vmap_unknown_call(self, at: ast.expr, how: str, hint: str) -> CompileError:
        """The error for a `tl.vmap` of a function with defaults, `*args` or keyword
        parameters whose call is not known when compiling (which arguments it maps
        depends on what the call passes, `vmap_axes`)."""
        return self.error(f"a tl.vmap of a function with defaults, *args or keyword-only "
                          f"parameters {how} inside compiled code: which arguments it "
                          "maps depends on the arguments each call passes, not known when "
                          "compiling", at, hint)

    def _method_call(self, receiver: Node, name: str, node: ast.Call, block: Block) -> Node:
        mutating = name in ("append", "extend", "insert", "pop", "remove", "update",
                            "setdefault", "clear", "sort", "reverse", "fill", "resize", "add",
                            "discard")
        if mutating and (_built_in(receiver) or _array_method(name)):
            raise self.error(f"the method .{name}() mutates its object in place, which is "
                             "not supported", node,
                             "build a new value instead, e.g. `xs = xs + [v]` or a list "
                             "comprehension")
        prim = None if mutating else METHODS.get(name)
        if prim is None:  # a random generator's method (`rng.normal(size=3)`): a draw
            known = receiver.value if isinstance(receiver, Constant) else None
            if (hint := random_ops.in_place_hint(name, known)) is not None:
                raise self.error(f"the method .{name}() of a random generator changes its "
                                 "argument in place, which is not supported", node, hint)
            prim = random_ops.method_primitive(name, known)
        if prim is None:
            # A method of the user's class (`model.apply(x)`): the bound method, called
            # like any value (derivative code calls J of the function on the object).
            # One named like a built-in type's (`opt.update(p, g)`) is read so that a
            # built-in receiver is refused when the code runs (`user_method`).
            like_built_in = mutating or any(hasattr(t, name) for t in BUILTIN_RECEIVERS)
            if like_built_in and (_built_in(receiver) or _array_method(name)):
                raise self.error(f"the method .{name}() is not supported", node,
                                 "call the corresponding NumPy function, e.g. np.f(x)")
            if node.keywords:
                raise self.error(f"keyword arguments to the method .{name}() are not "
                                 "supported", node, "pass them positionally")
            bound_method = block.graph.apply(
                P["user_method" if like_built_in else "getattr"], receiver, Constant(name),
                loc=self.loc(node))
            return self._call_value(bound_method, node, block)
        starred = any(isinstance(a, ast.Starred) for a in node.args)
        args = [receiver] + self._call_args(node, block, starred)
        kwargs = self._keywords(node, block)
        bound = self.bind_primitive(prim, args, kwargs, node, block, starred)
        out = block.graph.apply(prim, *bound, loc=self.loc(node))
        if prim.effect:
            block.graph.effects.append(out)
        return out

    def _unknown_callable(self, fn: Any, node: ast.AST) -> Exception:
        name = _qualname(fn)
        module = getattr(fn, "__module__", None) or ""
        if fn in (builtins.exec, builtins.eval, builtins.compile):
            return self.error(f"`{name}` is not supported: tapeless compiles the source "
                              "it can read, not code built at run time", node,
                              "write the code directly in the function")
        if (hint := random_ops.REFUSED.get(id(fn))) is not None:
            return self.error(f"{name} changes its argument in place, which is not "
                              "supported", node, hint)
        if isinstance(fn, types.BuiltinFunctionType) or isinstance(fn, np.ufunc) or \
                module.split(".")[0] in NATIVE_MODULES:
            return self.error(f"{name} is not supported by tapeless (no primitive is "
                              "registered for it)", node,
                              "see docs/language.md for the supported NumPy and math "
                              "functions, or write it with supported operations")
        return self.error(f"cannot call {name}: only Python functions, registered "
                          "primitives, dataclasses and NamedTuples can be called", node,
                          "call a Python function defined in a .py file")

    # --- binding arguments --------------------------------------------------------

    def bind_primitive(self, prim: Primitive, args: list[Node], kwargs: dict[str, Node],
                       at: ast.AST, block: Block, starred: bool = False) -> list[Node]:
        params = list(prim.signature.parameters.values())
        vi = prim.vararg_index
        if starred:
            if vi != 0 or len(args) != 1:
                raise self.error(f"`*args` cannot be passed to {prim.name}", at)
            bound: list[Node] = [args[0]]
            rest = params[1:]
        else:
            bound = []
            rest = params
            npos = len(params) if vi is None else vi
            if len(args) > npos and vi is None:
                raise self.error(f"{prim.name} takes at most {npos} positional arguments "
                                 f"({len(args)} given)", at)
            for i in range(min(len(args), npos)):
                bound.append(args[i])
            if vi is not None:
                bound.append(Constant(()) if len(args) <= vi else
                             self._pack(args[vi:], at, block))
            rest = params[len(bound):]
        for p in rest:
            if p.name in kwargs:
                bound.append(kwargs.pop(p.name))
            elif p.default is not inspect.Parameter.empty:
                bound.append(Constant(p.default))
            elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                bound.append(Constant(()))
            else:
                raise self.error(f"{_prim_label(prim)} is missing its argument '{p.name}'", at)
        if kwargs:
            raise self.error(f"{_prim_label(prim)} got an unexpected keyword argument "
                             f"'{next(iter(kwargs))}'", at,
                             f"its parameters are: {prim.spec}")
        return bound

    def _pack(self, nodes: list[Node], at: ast.AST, block: Block) -> Node:
        return block.graph.apply(P["make_tuple"], *nodes, loc=self.loc(at))

    def bind_graph(self, graph: Graph, args: list[Node], kwargs: dict[str, Node],
                   at: ast.AST, block: Block, spread: Sequence[Node] = ()) -> list[Node]:
        specs = graph.signature
        if specs is None:  # being compiled right now (recursion): positional only
            if kwargs or spread:
                raise self.error("keyword arguments in a recursive call are not supported",
                                 at, "pass them positionally")
            return args
        bound: list[Node] = []
        remaining = list(args)
        kwargs = dict(kwargs)
        if spread:
            self._check_spread(graph, spread, at, block)
        for spec in specs:
            if spec.kind == "pos":
                if remaining:
                    bound.append(remaining.pop(0))
                    if spec.name in kwargs:
                        raise self.error(f"{graph.name}() got multiple values for argument "
                                         f"'{spec.name}'", at)
                elif spec.name in kwargs:
                    bound.append(kwargs.pop(spec.name))
                elif spread:
                    bound.append(self._from_spread(graph, spec, spread, at, block))
                elif spec.default is not None:
                    bound.append(spec.default)
                else:
                    raise self.error(f"{graph.name}() is missing the argument '{spec.name}'",
                                     at)
            elif spec.kind == "vararg":
                bound.append(self._pack(remaining, at, block) if remaining else Constant(()))
                remaining = []
            elif spec.kind == "varkw":
                rest: Node = block.graph.apply(P["make_dict"], Constant(tuple(kwargs)),
                                               self._pack(list(kwargs.values()), at, block),
                                               loc=self.loc(at))
                if spread:
                    rest = self._spread_rest(graph, spread, rest, at, block)
                bound.append(rest)
                kwargs = {}
            else:
                if spec.name in kwargs:
                    bound.append(kwargs.pop(spec.name))
                elif spread:
                    bound.append(self._from_spread(graph, spec, spread, at, block))
                elif spec.default is not None:
                    bound.append(spec.default)
                else:
                    raise self.error(f"{graph.name}() is missing the keyword argument "
                                     f"'{spec.name}'", at)
        if remaining:
            raise self.error(f"{graph.name}() takes {len(bound)} positional arguments but "
                             f"{len(args)} were given", at)
        if kwargs:
            raise self.error(f"{graph.name}() got an unexpected keyword argument "
                             f"'{next(iter(kwargs))}'", at)
        return bound

    def _spread_dict(self, spread: Sequence[Node], at: ast.AST, block: Block) -> Node:
        if len(spread) == 1:
            return spread[0]
        return block.graph.apply(P["dict_merge"], self._pack(list(spread), at, block),
                                 loc=self.loc(at))

    def _check_spread(self, graph: Graph, spread: Sequence[Node], at: ast.AST,
                      block: Block) -> None:
        """The check that the keys of the dicts spread into a call (`f(**kw)` with keys
        known at run time) fit the parameters: Python's TypeErrors otherwise."""
        g = block.graph
        specs = graph.signature or []
        g.effects.append(g.apply(P["check_kwargs"], self._spread_dict(spread, at, block),
                                 Constant(self._given_names(graph, at)),
                                 Constant(tuple(s.name for s in specs
                                                if s.kind in ("pos", "kwonly"))),
                                 Constant(any(s.kind == "varkw" for s in specs)),
                                 Constant(graph.name), loc=self.loc(at)))

    def _from_spread(self, graph: Graph, spec: Any, spread: Sequence[Node], at: ast.AST,
                     block: Block) -> Node:
        """A parameter's argument from the dicts spread into the call, else its
        default."""
        g = block.graph
        merged = self._spread_dict(spread, at, block)
        default = spec.default if spec.default is not None else Constant(NO_DEFAULT)
        return g.apply(P["kwarg_or"], merged, Constant(spec.name), default,
                       Constant(graph.name), loc=self.loc(at), name=spec.name)

    def _given_names(self, graph: Graph, at: ast.AST) -> tuple:
        """The parameters a call gives positionally or by name (a dict spread into it
        must not name them again)."""
        assert isinstance(at, ast.Call)
        specs = graph.signature or []
        positional = [s.name for s in specs if s.kind == "pos"][:len(at.args)]
        return tuple(positional + [k.arg for k in at.keywords if k.arg is not None])

    def _spread_rest(self, graph: Graph, spread: Sequence[Node], named: Node, at: ast.AST,
                     block: Block) -> Node:
        """What a `**rest` parameter receives: the spread items no parameter takes, and
        the other keyword arguments given by name."""
        g = block.graph
        merged = self._spread_dict(spread, at, block)
        params = tuple(s.name for s in graph.signature or [] if s.kind in ("pos", "kwonly"))
        rest = g.apply(P["dict_without"], merged, Constant(params), loc=self.loc(at))
        return g.apply(P["dict_merge"], self._pack([named, rest], at, block), loc=self.loc(at))

    def _bind_class(self, cls: type, args: list[Node], kwargs: dict[str, Node],
                    at: ast.AST) -> list[Node]:
        if dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls) if f.init]
            defaults = {f.name: f.default for f in dataclasses.fields(cls)
                        if f.default is not dataclasses.MISSING}
        else:
            names = list(cast(Any, cls)._fields)  # (a namedtuple class)
            defaults = dict(getattr(cls, "_field_defaults", {}))
        if len(args) > len(names):
            raise self.error(f"{cls.__name__}() takes {len(names)} arguments", at)
        bound = list(args)
        for name in names[len(args):]:
            if name in kwargs:
                bound.append(kwargs.pop(name))
            elif name in defaults:
                bound.append(Constant(defaults[name]))
            else:
                raise self.error(f"{cls.__name__}() is missing the field '{name}'", at)
        if kwargs:
            raise self.error(f"{cls.__name__}() has no field '{next(iter(kwargs))}'", at)
        return bound

    # --- functions as values ------------------------------------------------------

    def expr_Lambda(self, node: ast.Lambda, block: Block) -> Node:
        return Constant(self.define(node, block), self.loc(node))

    def expr_ListComp(self, node: ast.ListComp, block: Block) -> Node:
        return self._comprehension(node, block, lambda b: self.expr(node.elt, b))

    expr_GeneratorExp = expr_ListComp

    def expr_DictComp(self, node: ast.DictComp, block: Block) -> Node:
        def element(b: Block) -> Node:
            return b.graph.apply(P["make_tuple"], self.expr(node.key, b),
                                 self.expr(node.value, b))

        pairs = self._comprehension(node, block, element)
        return block.graph.apply(P["dict"], block.graph.apply(P["make_tuple"], pairs),
                                 loc=self.loc(node))

    def _comprehension(self, node: Any, block: Block, element: Any) -> Node:
        from .scopes import Block as BlockCls
        from .scopes import Scope
        from .source import ScopeInfo

        info = ScopeInfo()
        for gen in node.generators:
            if gen.is_async:
                raise self.error("async comprehensions are not supported", node)
            for t in ast.walk(gen.target):
                if isinstance(t, ast.Name):
                    info.assigned.setdefault(t.id, []).append((t.lineno, t.col_offset))
        scope = Scope(info, block.scope, node, immediate=True)
        loc = self.loc(node)

        def build(i: int, b: Block) -> Node:
            gen = node.generators[i]
            seq = self.expr(gen.iter, b)
            fn = Graph("comprehension", b.graph, loc)
            fb = BlockCls(fn, scope, b)
            item = fn.add_parameter("item")
            self.assign(gen.target, item, fb)
            last = i == len(node.generators) - 1

            def inner(bb: Block) -> Node:
                if last:
                    value = element(bb)
                    return bb.graph.apply(P["make_list"], value) if gen.ifs else value
                return build(i + 1, bb)

            if gen.ifs:
                conds = gen.ifs

                def filtered(bb: Block, k: int = 0) -> Node:
                    c = self.expr(conds[k], bb)
                    keep: Callable[[Block], Node] = \
                        (lambda b3: filtered(b3, k + 1)) if k + 1 < len(conds) else inner
                    g_keep = self._branch(bb, "keep", keep, node)
                    g_skip = self._branch(bb, "skip", lambda b3: b3.graph.apply(
                        P["make_list"]), node)
                    sw = bb.graph.apply(P["switch"], c, g_keep, g_skip)
                    return bb.graph.apply(sw)

                fn.output = filtered(fb)
                kind = "list_flatmap"
            else:
                fn.output = inner(fb)
                kind = "list_map" if last else "list_flatmap"
            out = b.graph.apply(P[kind], fn, seq, loc=loc)
            if fn.effects:
                b.graph.effects.append(out)
            return out

        return self.lossy(lambda b: build(0, b))(block)

    def api_call(self, fn: Any, node: ast.Call, block: Block) -> Node:
        """`tl.grad(f, ...)`, `tl.value_and_grad(f, ...)` or `tl.jit(f)` inside compiled
        code: `f` must be known at compile time (a function, lambda or nested def); the
        result is a graph that stands for the transformed function, whose body the AD
        stage builds (`TransformSpec`; the front end knows no AD)."""
        name = fn.__name__
        if name == "jvp":
            return self._jvp_call(node, block)
        if name == "vmap" and node.args:
            return self._vmap_call(node, block)
        if name in jacobians.KINDS and node.args:
            return self._jacobian_call(name, node, block)
        if name == "vjp" and node.args:
            return self._vjp_call(node, block)
        if name not in ("grad", "value_and_grad", "jit") or not node.args:
            raise self.error(f"tapeless.{name} cannot be called inside compiled code", node,
                             "call it outside the compiled function")
        target = self.expr(node.args[0], block)
        if name == "jit":
            return target
        options: dict[str, Any] = {"argnums": 0, "has_aux": False}
        for i, arg in enumerate(node.args[1:]):
            options[("argnums", "has_aux")[i]] = self._compile_time(arg, block)
        for kw in node.keywords:
            if kw.arg not in options:
                raise self.error(f"unexpected argument {kw.arg!r} to tapeless.{name}", kw)
            options[kw.arg] = self._compile_time(kw.value, block)
        if not (isinstance(target, Constant) and isinstance(target.value, Graph)):
            if isinstance(target, Constant):
                raise self.error(f"tapeless.{name} inside compiled code takes a function "
                                 f"(a def, lambda or function value), not "
                                 f"{type(target.value).__name__}", node.args[0],
                                 "define the function to differentiate with def or lambda")
            # A function known only when the code runs (an argument): its transform, made
            # then (once per function), called as a value.
            return block.graph.apply(P["transform_of"], Constant(name), target,
                                     Constant(options["argnums"]),
                                     Constant(options["has_aux"]), loc=self.loc(node))
        return self._stand_in(name, target.value, options["argnums"], options["has_aux"],
                              node)

    def _jacobian_call(self, name: str, node: ast.Call, block: Block) -> Node:
        """`tl.jacfwd(f, argnums)`, `tl.jacrev(...)` or `tl.hessian(...)` inside compiled
        code: a lambda made of `tl.jvp`, `tl.grad` and `tl.vmap` (`frontend/jacobians.py`),
        compiled here, so that `f` may be a closure."""
        target = self.expr(node.args[0], block)
        if not is_constant_graph(target):
            raise self.error(f"the function passed to tapeless.{name} inside compiled code "
                             "must be known when compiling (a def, lambda or global "
                             "function)", node.args[0], "define the function with def or "
                             "lambda")
        graph: Graph = target.value
        options: dict[str, Any] = {"argnums": 0, "has_aux": False}
        for i, arg in enumerate(node.args[1:3]):
            options[("argnums", "has_aux")[i]] = self._compile_time(arg, block)
        for kw in node.keywords:
            if kw.arg not in options:
                raise self.error(f"unexpected argument {kw.arg!r} to tapeless.{name} inside "
                                 "compiled code", kw, "pass argnums or call it outside")
            options[kw.arg] = self._compile_time(kw.value, block)
        n, a = len(graph.parameters), options["argnums"]
        if options["has_aux"] or not isinstance(a, int) or graph.vararg or \
                not -n <= a < n or len(node.args) > 3:
            raise self.error(f"tapeless.{name} inside compiled code takes a function of "
                             "positional parameters and an int argnums, without has_aux",
                             node, f"call tl.{name} outside the compiled function for "
                             "tuples of argnums or has_aux")
        return self._injected_expr(jacobians.jacobian_expression(name, n, a % n), target,
                                   node, block)

    def _vjp_call(self, node: ast.Call, block: Block) -> Node:
        """`tl.vjp(f, *primals)` inside compiled code: `(f(*primals), vjp_fn)`, the
        pullback made of `tl.grad` (`frontend/jacobians.py`)."""
        target = self.expr(node.args[0], block)
        if not is_constant_graph(target) or node.keywords or \
                any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error("tapeless.vjp inside compiled code takes a function known when "
                             "compiling (a def, lambda or global function) and its primals "
                             "as positional arguments", node, "call tl.vjp outside the "
                             "compiled function for has_aux or *primals")
        lam = self._injected_expr(jacobians.vjp_expression(len(node.args) - 1), target,
                                  node, block)
        call = ast.Call(func=ast.Name("__tl_vjp", ast.Load()), args=node.args[1:],
                        keywords=[])
        ast.copy_location(call.func, node)
        ast.copy_location(call, node)
        return self._with_names({"__tl_vjp": lam}, call, block)

    def _injected_expr(self, text: str, target: Node, node: ast.Call, block: Block) -> Node:
        """The expression `text` (frontend/jacobians.py), compiled here with its helper
        names bound to nodes and `__tl_F` to `target`."""
        lam = ast.parse(text, mode="eval").body
        for part in ast.walk(lam):
            ast.copy_location(part, node)
        injected = {k: target if k == "__tl_F" else self.constant_for(v, node)
                    for k, v in jacobians.names(None).items()}
        return self._with_names(injected, lam, block)

    def _with_names(self, names: dict[str, Node], expr: ast.expr, block: Block) -> Node:
        """`expr` compiled with the names `names` bound to those nodes (`expr_Name`)."""
        saved = self.__dict__.get("injected")
        self.__dict__["injected"] = {**(saved or {}), **names}
        try:
            return self.expr(expr, block)
        finally:
            self.__dict__["injected"] = saved

    def _stand_in(self, name: str, graph: Graph, options: Any, has_aux: bool,
                  node: ast.Call) -> Node:
        """A graph with `graph`'s parameters standing for a transform of it, whose body
        the AD stage builds (`TransformSpec`)."""
        return Constant(transform_stand_in(name, graph, options, has_aux), self.loc(node))

    def _jvp_call(self, node: ast.Call, block: Block) -> Node:
        """`tl.jvp(f, primals, tangents)` inside compiled code: a call of a graph that
        stands for `f`'s jvp, `(*primals, *tangents) -> (value, tangent)`, built by the AD
        stage (`TransformSpec` of kind "jvp")."""
        if len(node.args) != 3 or node.keywords:
            raise self.error("tapeless.jvp takes three arguments: tl.jvp(f, primals, "
                             "tangents)", node)
        target = self.expr(node.args[0], block)
        if not is_constant_graph(target):
            raise self.error("the function passed to tapeless.jvp inside compiled code must "
                             "be known when compiling (a def, lambda or global function)",
                             node.args[0], "define the function with def or lambda")
        graph: Graph = target.value
        n = len(graph.parameters)
        if graph in VMAP_CALLS:  # (`tl.jvp(tl.vmap(f), ...)`: every primal positional)
            graph = self._vmap_for_call(graph, node.args[0], n, [])
        if graph.vararg:
            raise self.error("tapeless.jvp inside compiled code of a function with *args "
                             "is not supported", node.args[0], "take a tuple instead")
        items: list[Node] = []
        for arg in node.args[1:]:
            value = self.expr(arg, block)
            if isinstance(arg, (ast.Tuple, ast.List)) and len(arg.elts) != n:
                raise self.error(f"tapeless.jvp: {graph.name} takes {n} arguments, but "
                                 f"{len(arg.elts)} are given here", arg)
            items += [block.graph.apply(P["tuple_getitem"], value, i, loc=self.loc(arg))
                      for i in range(n)]
        stand_in = Graph(f"jvp_{graph.name}", None, graph.loc)
        for p in graph.parameters:
            stand_in.add_parameter(p.name, p.loc)
        for p in graph.parameters:
            stand_in.add_parameter(f"{p.name}_dot", p.loc)
        stand_in.transform = TransformSpec("jvp", graph, None, False)
        PENDING_TRANSFORMS.add(stand_in)
        call = block.graph.apply(Constant(stand_in, self.loc(node)), *items, loc=self.loc(node))
        return call

    def _vmap_call(self, node: ast.Call, block: Block) -> Node:
        """`tl.vmap(f, in_axes, out_axes, axis_size)` inside compiled code: a stand-in
        for the batched function (`TransformSpec` of kind "vmap", options known when
        compiling), built by the V transform."""
        target = self.expr(node.args[0], block)
        if not (isinstance(target, Constant) and isinstance(target.value, Graph)):
            raise self.error("the function passed to tapeless.vmap inside compiled code "
                             "must be known when compiling (a def, lambda or global "
                             "function)", node.args[0], "define it with def or lambda")
        names = ("in_axes", "out_axes", "axis_size")
        options: dict[str, Any] = {"in_axes": 0, "out_axes": 0, "axis_size": None}
        for i, arg in enumerate(node.args[1:]):
            options[names[i]] = self._compile_time(arg, block)
        for kw in node.keywords:
            if kw.arg not in options:
                raise self.error(f"unexpected argument {kw.arg!r} to tapeless.vmap", kw)
            options[kw.arg] = self._compile_time(kw.value, block)
        return Constant(vmap_stand_in(target.value, options["in_axes"], options["out_axes"],
                                      options["axis_size"], self.loc(node)), self.loc(node))

    def _vmap_for_call(self, stand_in: Graph, node: ast.expr, npos: int,
                       nkeys: list[str]) -> Graph:
        """The `tl.vmap` stand-in a call of `stand_in` passing `npos` positional
        arguments and the keywords `nkeys` runs: its axes are those of the arguments the
        call passes (JAX's rules, `vmap_axes.call_axes`), one stand-in per kind of call.
        A located `VmapError` where a tuple `in_axes` has not one entry per positional
        argument passed."""
        graph, in_axes, out_axes, axis_size, generic, made = VMAP_CALLS[stand_in]
        params = graph_params(graph)
        if params is None:
            return stand_in
        try:
            axes = tuple(call_axes(params, in_axes, npos, nkeys, graph.name))
        except AxesMismatch as exc:
            from ..errors import VmapError

            raise VmapError(str(exc), self.loc(node)) from None
        if axes == generic:
            return stand_in
        key = repr(axes)
        if key not in made:
            made[key] = transform_stand_in("vmap", graph, (axes, out_axes, axis_size), False)
        return made[key]

    def _compile_time(self, node: ast.expr, block: Block) -> Any:
        value = self.expr(node, block)
        if isinstance(value, Apply) and isinstance(value.inputs[0], Constant) and \
                value.inputs[0].value is P["make_tuple"]:
            parts = [self._compile_time_node(v, node) for v in value.inputs[1:]]
            return tuple(parts)
        return self._compile_time_node(value, node)

    def _compile_time_node(self, value: Node, node: ast.AST) -> Any:
        if not isinstance(value, Constant):
            raise self.error("this argument must be a constant known when compiling", node)
        return value.value


# The types whose methods tapeless registers one by one (`primitives.METHODS`): a method
# of theirs that is not registered is refused when compiling, where a method of another
# class is called as the user's (`model.apply(x)`).
BUILTIN_RECEIVERS = (np.ndarray, np.generic, list, tuple, dict, str, float, int)
# What makes a value of a built-in type, known when compiling (a receiver whose methods
# are those of its type).
_BUILT_IN_MAKERS = frozenset({"make_list", "make_tuple", "make_dict", "list", "tuple", "dict",
                              "list_append", "list_extend", "dict_merge", "str", "format"})


def _array_method(name: str) -> bool:
    """Whether `name` is a method of NumPy arrays (`x.nonzero()`): refused when compiling,
    whatever the receiver (an array, most likely); a name only lists, dicts or strings
    have (`update`, `encode`) may be the user's method, refused when the code runs if the
    receiver is built-in."""
    return hasattr(np.ndarray, name) or hasattr(np.generic, name)


def _built_in(receiver: Node) -> bool:
    """Whether `receiver` is known, when compiling, to be of a built-in type (a constant,
    a display, what `list(...)`, `dict(...)`, ... make, an array primitive's result)."""
    if isinstance(receiver, Constant):
        return isinstance(receiver.value, BUILTIN_RECEIVERS)
    if isinstance(receiver, Apply) and isinstance(receiver.inputs[0], Constant) and \
            isinstance(receiver.inputs[0].value, Primitive):
        prim = receiver.inputs[0].value
        return prim.name in _BUILT_IN_MAKERS or prim.name.startswith("np.")
    return False


def known_items(d: Node) -> list[tuple[str, Node]] | None:
    """The (key, value node) pairs of a dict built from string keys known when compiling
    (a display, `dict(k=v)`, `{**a, **b}`, `d[k] = v`), in the dict's order; None
    otherwise."""
    if not (isinstance(d, Apply) and isinstance(d.inputs[0], Constant)):
        return None
    prim = d.inputs[0].value
    if prim is P["make_dict"]:
        keys = _constant_items(d.inputs[1])
        if keys is None or not all(isinstance(k, str) for k in keys):
            return None
        values = d.inputs[2]
        if isinstance(values, Apply) and isinstance(values.inputs[0], Constant) and \
                values.inputs[0].value is P["make_tuple"]:
            return list(dict(zip(keys, values.inputs[1:], strict=True)).items())
        return None
    if prim is P["dict_merge"]:
        parts = d.inputs[1]
        if not (isinstance(parts, Apply) and isinstance(parts.inputs[0], Constant) and
                parts.inputs[0].value is P["make_tuple"]):
            return None
        merged: dict[str, Node] = {}
        for part in parts.inputs[1:]:
            found = known_items(part)
            if found is None:
                return None
            merged.update(found)
        return list(merged.items())
    if prim is P["index_update"] and isinstance(d.inputs[2], Constant) and \
            isinstance(d.inputs[2].value, str):
        found = known_items(d.inputs[1])
        if found is None:
            return None
        updated = dict(found)
        updated[d.inputs[2].value] = d.inputs[3]
        return list(updated.items())
    return None


def _constant_items(node: Node) -> tuple | None:
    if isinstance(node, Constant) and isinstance(node.value, tuple):
        return node.value
    if isinstance(node, Apply) and isinstance(node.inputs[0], Constant) and \
            node.inputs[0].value is P["make_tuple"]:
        items = [i for i in node.inputs[1:] if isinstance(i, Constant)]
        if len(items) == len(node.inputs) - 1:
            return tuple(i.value for i in items)
    return None


def _is_one(node: Node) -> bool:
    return isinstance(node, Constant) and type(node.value) in (int, float) and \
        node.value == 1


def _logistic_argument(left: Node, right: Node) -> Node | None:
    """x, where `left / right` is the logistic function `1 / (1 + np.exp(-x))` (either
    order of the sum; 1 or 1.0), written as one expression: it compiles to the `logistic`
    primitive, which computes it the same way and differentiates it from its value. (Not
    where a part is a variable, `e = np.exp(-x)`, which the program may read elsewhere.)"""
    def applies(node: Node, name: str) -> TypeGuard[Apply]:
        return isinstance(node, Apply) and len(node.inputs) >= 2 and not node.name and \
            isinstance(node.inputs[0], Constant) and node.inputs[0].value is P[name]

    if not _is_one(left) or not applies(right, "add"):
        return None
    a, b = right.inputs[1:]
    e = b if _is_one(a) else a if _is_one(b) else None
    if e is None or not applies(e, "np.exp") or len(e.inputs) != 2:
        return None
    n = e.inputs[1]
    return n.inputs[1] if applies(n, "neg") else None


def transform_stand_in(name: str, graph: Graph, options: Any, has_aux: bool) -> Graph:
    """A graph with `graph`'s parameters standing for the transform `name` of it, whose
    body the AD stage builds (`TransformSpec`)."""
    stand_in = Graph(f"{name}_{graph.name}", None, graph.loc)
    for p in graph.parameters:
        stand_in.add_parameter(p.name, p.loc)
    stand_in.take_signature(graph)
    stand_in.transform = TransformSpec(name, graph, options, has_aux)
    PENDING_TRANSFORMS.add(stand_in)
    return stand_in


# The `tl.vmap` stand-ins made where compiled code writes `tl.vmap(f, ...)` or reads a
# vmap object: the function, the options as given, the axes of the stand-in (one per
# parameter, for the call `vmap_axes.generic_call` describes) and the stand-ins made for
# other calls, by their axes (`_vmap_for_call`).
VMAP_CALLS: weakref.WeakKeyDictionary[
    Graph, tuple[Graph, Any, Any, Any, Any, dict[str, Graph]]] = \
    weakref.WeakKeyDictionary()


def graph_params(graph: Graph) -> list[Param] | None:
    """A function's parameters as `vmap_axes` reads them (None where its signature is
    not known: a function being compiled)."""
    specs = graph.signature
    if specs is None or len(specs) != len(graph.parameters):
        return None
    return [(s.name, s.kind, s.default is not None) for s in specs]


def _axes_by_call(stand_in: Graph) -> bool:
    """Whether the axes of the `tl.vmap` stand-in's function depend on more than the
    number of arguments a call passes (it has defaults, `*args` or keyword-only
    parameters, or its signature is not known yet)."""
    params = graph_params(VMAP_CALLS[stand_in][0])
    return params is None or any(k != "pos" or d for _, k, d in params)


def vmap_stand_in(graph: Graph, in_axes: Any, out_axes: Any, axis_size: Any,
                  loc: Any) -> Graph:
    """The stand-in of `tl.vmap(graph, in_axes, out_axes, axis_size)` in compiled code:
    one axis per parameter, for the call `vmap_axes.generic_call` describes (a call
    whose arguments are known when compiling gets its own: `_vmap_for_call`)."""
    params = graph_params(graph)
    axes = in_axes
    if params is not None:
        try:
            axes = tuple(generic_axes(params, in_axes, graph.name))
        except AxesMismatch as exc:
            from ..errors import VmapError

            raise VmapError(str(exc), loc) from None
    stand_in = transform_stand_in("vmap", graph, (axes, out_axes, axis_size), False)
    VMAP_CALLS[stand_in] = (graph, in_axes, out_axes, axis_size, axes, {})
    return stand_in


def constant_node(value: Any, resolver: Any, loc: Any = None) -> Constant:
    """A compile-time value: Python functions become graphs (compiled once), and so do
    functions transformed by tapeless (a global `g = tl.grad(h)` is the gradient's
    graph, not h's)."""
    from .source import unwrap

    if getattr(value, "__tapeless_transform__", False):  # (a `tapeless.api.Transformed`)
        spec = value.stand_in_options() if hasattr(value, "stand_in_options") else None
        if spec is not None:
            # (a global `tl.vmap(f)` object: the stand-in `tl.vmap(f, ...)` written here
            # makes, batched for the kinds of the call, with its per-element twin)
            fun, options = spec
            in_axes, out_axes, axis_size = options
            return Constant(vmap_stand_in(resolver.graph_for(fun), in_axes, out_axes,
                                          axis_size, loc), loc)
        return Constant(value.graph, loc)
    made = getattr(value, "__tapeless_jacobian__", None)
    if made is not None:  # (`h = tl.hessian(f)`, a global called in compiled code)
        fn = made()
        if fn is None:
            raise CompileError(f"{loc}: {value.__name__} (made by tl.jacfwd, tl.jacrev or "
                               "tl.hessian with a tuple of argnums, has_aux or a function "
                               "with *args or defaults) cannot be called inside compiled "
                               "code; call it outside the compiled function")
        return Constant(resolver.graph_for(fn), loc)
    if getattr(value, "__tapeless_custom__", False) and not isinstance(value, type):
        # (a function made by `tl.custom_jvp`, `tl.custom_vjp`, `tl.checkpoint`)
        return Constant(value.custom_graph(), loc)
    value = unwrap(value)
    if isinstance(value, types.FunctionType) and lookup_callable(value) is None \
            and not _is_api(value) and value is not dataclasses.replace:
        # A library's function is refused, or its errors reported, at this reference.
        if (refused := refusal(value, loc)) is not None:
            raise refused
        if not installed_package(value):
            return Constant(resolver.graph_for(value), loc)
        try:
            return Constant(resolver.graph_for(value), loc)
        except CompileError as e:
            raise library_error(value, e, loc) from e
    return Constant(value, loc)


def _is_api(fn: Any) -> bool:
    return getattr(fn, "__tapeless_api__", False)


def _is_namespace(value: Any) -> bool:
    return isinstance(value, types.ModuleType) or (
        isinstance(value, type) and not dataclasses.is_dataclass(value)
        and not _is_namedtuple(value) and value.__module__ not in ("builtins",))


def _is_namedtuple(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def _qualname(value: Any) -> str:
    if isinstance(value, types.ModuleType):
        return value.__name__
    return public_name(value)


def _prim_label(prim: Primitive) -> str:
    return prim.name.replace("method.", ".") + "()"


def _describe(node: ast.AST) -> str:
    names = {ast.Yield: "`yield`", ast.YieldFrom: "`yield from`", ast.Await: "`await`",
             ast.SetComp: "a set comprehension", ast.Set: "a set display",
             ast.Starred: "`*` unpacking here"}
    return names.get(type(node), f"the expression `{type(node).__name__}`")


_EXPR_HINTS = {
    ast.Yield: "return a list or tuple of the values instead",
    ast.YieldFrom: "return a list or tuple of the values instead",
    ast.Await: "compile synchronous code only",
    ast.SetComp: "use a list or dict comprehension",
    ast.Set: "use a tuple or list",
}

_ = math
