"""From Python syntax to IR graphs.

Control flow is structured and functional:
- an `if` whose branches only assign is `switch(c, g_true, g_false)()`, where each
  branch graph returns the variables it may change;
- an `if` containing `return`/`break`/`continue`/`raise` ends the current graph with
  that switch in tail position, each branch continuing with the rest of the block;
- loops are the primitives `while_loop(cond, body, *state)` and
  `for_range(start, stop, step, body, *state)`, whose state holds the variables the
  body assigns (plus flags for `break` and `return`).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import types
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import CompileError
from ..ir.nodes import Apply, Constant, Graph, Location, Node
from ..primitives import METHODS, PRIMITIVES, Primitive, lookup_callable
from ..runtime import UNBOUND
from .expressions import ExpressionMixin
from .guards import MISSING, Entry, Recorder, current
from .libraries import refusal
from .mutation import Ownership, mutated_name
from .scopes import Block, LoopContext, ParamSpec, Scope
from .source import FunctionSource, ScopeInfo, analyze_scope, function_source, param_names, unwrap
from .updates import UpdateMixin

P = PRIMITIVES
BRK, RET, RETVAL, IDX = "#break", "#return", "#retval", "#index"


FUNCTION = "function"  # the jump context of a function body


class _ReturnValue(ast.stmt):
    """A synthetic `return` of an already-compiled value (after a loop that returned)."""

    _fields = ()

    def __init__(self, value: Node, like: ast.AST):
        super().__init__()
        self.value_node = value
        self.lineno = getattr(like, "lineno", 0)
        self.col_offset = getattr(like, "col_offset", 0)


class _LoopElse(ast.stmt):
    """A synthetic statement: the `else` clause of a loop that may `break`, run when
    `broke` (the loop's break flag) is false."""

    _fields = ()

    def __init__(self, loop: ast.While | ast.For, broke: Node | None):
        super().__init__()
        self.loop = loop
        self.broke = broke
        self.lineno = loop.lineno
        self.col_offset = loop.col_offset


class Compiler(UpdateMixin, ExpressionMixin):
    """Compiles one Python function (and what it defines inside) to a graph."""

    def __init__(self, fn: types.FunctionType, resolver: Resolver, entry: Entry):
        self.fn = fn
        self.resolver = resolver
        self.src: FunctionSource = function_source(fn)
        # Globals and closure cells are read when compiling; each read is recorded in
        # the function's entry (see `guards`), so a graph is compiled again once a name
        # it read is bound to another object.
        self.entry = entry
        self.fn_globals: dict[str, Any] = fn.__globals__
        self.cells: dict[str, types.CellType] = dict(
            zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True))
        # Which objects the function owns, for in-place updates (`frontend.mutation`).
        self.ownership = Ownership()
        # Per loop context: the state each path through its body leaves.
        self.exits: dict[int, list[dict[str, Node]]] = {}
        # Variables' values that are UNBOUND on some path (a name first assigned in a
        # loop's body or in one branch): a read of one checks it (`runtime.check_bound`).
        self.maybe_unbound: set[Node] = set()

    def lookup_global(self, name: str) -> Any:
        """The value of a global name (or of a closure cell of the function compiled),
        MISSING when it is unbound; recorded for the guards."""
        cell = self.cells.get(name)
        if cell is not None:
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: the name is not defined
                return MISSING
            self.entry.record(cell, None, value)
            return value
        value = self.fn_globals.get(name, MISSING)
        self.entry.record(self.fn_globals, name, value)
        return value

    def error(self, message: str, node: ast.AST, hint: str = "") -> CompileError:
        return CompileError(message, self.src.loc(node), hint)

    def loc(self, node: ast.AST) -> Location:
        return self.src.loc(node)

    # --- functions --------------------------------------------------------------

    def compile_top(self, graph: Graph) -> Graph:
        node = self.src.node
        fn = self.fn
        defaults = fn.__defaults__ or ()
        kwdefaults = fn.__kwdefaults__ or {}
        return self._function(node, graph, None, None,
                              [Constant(d) for d in defaults],
                              {k: Constant(v) for k, v in kwdefaults.items()})

    def _function(self, node: ast.FunctionDef | ast.Lambda, graph: Graph,
                  parent_block: Block | None, parent_scope: Scope | None,
                  defaults: list[Node], kwdefaults: dict[str, Node]) -> Graph:
        args = node.args
        body: list[ast.stmt] = node.body if isinstance(node, ast.FunctionDef) else [
            ast.Return(value=node.body, lineno=node.body.lineno,
                       col_offset=node.body.col_offset)]
        info = analyze_scope(node, body, param_names(args))
        scope = Scope(info, parent_scope, node)
        self._check_declarations(info)
        graph.loc = self.loc(node)
        block = Block(graph, scope, parent_block)
        specs: list[ParamSpec] = []
        positional = args.posonlyargs + args.args
        first_default = len(positional) - len(defaults)
        for i, a in enumerate(positional):
            p = graph.add_parameter(a.arg, self.loc(a))
            block.vars[a.arg] = p
            specs.append(ParamSpec(a.arg, "pos", defaults[i - first_default]
                                   if i >= first_default else None))
        if args.vararg:
            p = graph.add_parameter(args.vararg.arg, self.loc(args.vararg))
            block.vars[args.vararg.arg] = p
            specs.append(ParamSpec(args.vararg.arg, "vararg"))
            graph.vararg = True
        for a in args.kwonlyargs:
            p = graph.add_parameter(a.arg, self.loc(a))
            block.vars[a.arg] = p
            specs.append(ParamSpec(a.arg, "kwonly", kwdefaults.get(a.arg)))
        if args.kwarg is not None:
            # `**name`: a dict of the other keyword arguments (empty by default), new at
            # each call, so the function owns it.
            p = graph.add_parameter(args.kwarg.arg, self.loc(args.kwarg))
            block.vars[args.kwarg.arg] = p
            specs.append(ParamSpec(args.kwarg.arg, "varkw", Constant({})))
            self.ownership.fresh_params.add(p)
        graph.signature = specs
        self._body(body, block, FUNCTION)
        return graph

    def _check_declarations(self, info: ScopeInfo) -> None:
        for name, decl in info.declared.items():
            stores = [p for p in info.assigned.get(name, [])]
            if stores:
                line, col = stores[0]
                where = ast.Name(id=name, lineno=line, col_offset=col)
                kind = "global" if isinstance(decl, ast.Global) else "nonlocal"
                raise self.error(f"assigning to the {kind} variable '{name}' is not "
                                 "supported", where,
                                 "return the new value from the function instead")

    def _body(self, stmts: list[ast.stmt], block: Block, ctx: Any) -> Node:
        """Compile a statement list to the end of `block`'s graph; returns its output."""
        if not self.stmts(stmts, block, ctx):
            self._fall_through(block, ctx)
        assert block.graph.output is not None
        return block.graph.output

    def _fall_through(self, block: Block, ctx: Any) -> None:
        if ctx is FUNCTION:
            block.graph.output = Constant(None)
        elif isinstance(ctx, LoopContext):
            block.graph.output = self._state_tuple(block, ctx)
        else:  # a value-if branch: the variables it may have changed
            block.graph.output = self._vars_tuple(block, ctx)

    def _state_tuple(self, block: Block, ctx: LoopContext) -> Node:
        values = [self._read_or_unbound(block, n) for n in ctx.state]
        self.exits.setdefault(id(ctx), []).append(dict(zip(ctx.state, values, strict=True)))
        return block.graph.apply(P["make_tuple"], *values)

    def _vars_tuple(self, block: Block, names: list[str]) -> Node:
        values = [self._read_or_unbound(block, n) for n in names]
        if len(values) == 1:
            return values[0]
        return block.graph.apply(P["make_tuple"], *values)

    def may_be_unbound(self, node: Node | None) -> bool:
        return isinstance(node, Constant) and node.value is UNBOUND or \
            node in self.maybe_unbound

    def _read_or_unbound(self, block: Block, name: str) -> Node:
        node = block.lookup(name)
        if node is None:
            return Constant(False) if name in (BRK, RET) else Constant(UNBOUND)
        return node

    # --- statements -------------------------------------------------------------

    def stmts(self, stmts: list[ast.stmt], block: Block, ctx: Any) -> bool:
        """Compile statements into `block`; True when every path jumped (returned,
        broke, continued or raised) and the graph's output is set."""
        for i, s in enumerate(stmts):
            rest = stmts[i + 1:]
            if isinstance(s, ast.If):
                cond = self.expr(s.test, block)
                if self._has_jump(s.body + s.orelse, ctx):
                    self._tail_if(cond, s.body + rest, s.orelse + rest, block, ctx, s)
                    return True
                self._value_if(cond, s.body, s.orelse, block, s)
                continue
            if isinstance(s, (ast.While, ast.For)):
                loop_ctx = self._loop(s, block)
                # What runs after the loop unless it returned: its `else` (unless it
                # broke), then the rest of the block.
                after: list[ast.stmt] = rest
                if s.orelse:
                    after = [_LoopElse(s, loop_ctx.broke)] + rest if loop_ctx.has_break \
                        else s.orelse + rest
                if loop_ctx.has_return:
                    ret, value = block.vars[RET], block.vars[RETVAL]
                    self._tail_if(ret, [_ReturnValue(value, s)], after, block, ctx, s)
                    return True
                return self.stmts(after, block, ctx)
            if isinstance(s, _LoopElse):
                assert s.broke is not None
                if self._has_jump(s.loop.orelse, ctx):
                    self._tail_if(s.broke, rest, s.loop.orelse + rest, block, ctx, s.loop)
                    return True
                self._value_if(s.broke, [], s.loop.orelse, block, s.loop)
                continue
            if self.stmt(s, block, ctx):
                return True
        return False

    def _tail_if(self, cond: Node, body: list[ast.stmt], orelse: list[ast.stmt],
                 block: Block, ctx: Any, at: ast.AST) -> None:
        g_true = self._branch(block, "if_true", lambda b: self._body(body, b, ctx), at)
        g_false = self._branch(block, "if_false", lambda b: self._body(orelse, b, ctx), at)
        sw = block.graph.apply(P["switch"], cond, g_true, g_false, loc=self.loc(at))
        block.graph.output = block.graph.apply(sw, loc=self.loc(at))
        if g_true.effects or g_false.effects:
            # (An effect too: where this graph is inlined, its effects keep their place
            # among the caller's.)
            block.graph.effects.append(block.graph.output)

    def _value_if(self, cond: Node, body: list[ast.stmt], orelse: list[ast.stmt],
                  block: Block, at: ast.AST) -> None:
        names = _ordered(assigned_names(body) + assigned_names(orelse))
        names = [n for n in names if block.scope.is_local(n)]
        g_true = self._branch(block, "if_true", lambda b: self._body(body, b, names), at)
        g_false = self._branch(block, "if_false", lambda b: self._body(orelse, b, names), at)
        sw = block.graph.apply(P["switch"], cond, g_true, g_false, loc=self.loc(at))
        result = block.graph.apply(sw, loc=self.loc(at))
        if g_true.effects or g_false.effects:
            block.graph.effects.append(result)
        self._bind_results(block, names, result, at)
        for i, n in enumerate(names):
            if any(self.may_be_unbound(_branch_value(g, i, len(names)))
                   for g in (g_true, g_false)):
                self.maybe_unbound.add(block.vars[n])

    def _bind_results(self, block: Block, names: list[str], result: Node,
                      at: ast.AST) -> None:
        if len(names) == 1:
            if not names[0].startswith("#") and isinstance(result, Apply):
                result.name = names[0]
            block.vars[names[0]] = result
            return
        for i, n in enumerate(names):
            block.vars[n] = block.graph.apply(P["tuple_getitem"], result, i, loc=self.loc(at),
                                              name=n if not n.startswith("#") else "")

    def _branch(self, block: Block, name: str, build: Callable[[Block], Node],
                at: ast.AST, params: Sequence[str] = (),
                param_label: dict[str, str] | None = None,
                inits: dict[str, Node] | None = None) -> Graph:
        """A graph for a block nested in `block` (a branch, a loop body); `inits` gives
        a loop body's state parameters their initial values (see `mutation`)."""
        param_label = param_label or {}
        g = Graph(name, block.graph, self.loc(at))
        b = Block(g, block.scope, block)
        for p in params:
            param = b.vars[p] = g.add_parameter(param_label.get(p, p.lstrip("#")))
            if inits is not None and p in inits:
                self.ownership.param_init[param] = inits[p]
        if inits is not None:
            for p in params:
                if p in inits and self.may_be_unbound(inits[p]):
                    self.maybe_unbound.add(b.vars[p])
        g.output = build(b)
        return g

    def _has_jump(self, stmts: list[ast.stmt], ctx: Any) -> bool:
        in_loop = isinstance(ctx, LoopContext)
        return any(_contains_jump(s, in_loop) for s in stmts)

    def stmt(self, s: ast.stmt, block: Block, ctx: Any) -> bool:
        g = block.graph
        if isinstance(s, _ReturnValue):
            return self._jump_return(s.value_node, block, ctx)
        if isinstance(s, ast.Return):
            value = self.expr(s.value, block) if s.value is not None else Constant(None)
            return self._jump_return(value, block, ctx)
        if isinstance(s, ast.Break):
            block.vars[BRK] = Constant(True)
            g.output = self._state_tuple(block, ctx)
            return True
        if isinstance(s, ast.Continue):
            g.output = self._state_tuple(block, ctx)
            return True
        if isinstance(s, ast.Raise):
            if s.exc is None:
                raise self.error("a bare `raise` is not supported", s,
                                 "raise an exception instance, e.g. `raise ValueError(...)`")
            exc = self.expr(s.exc, block)
            g.output = g.apply(P["raise"], exc, loc=self.loc(s))
            # (An effect: a call of this block, or of a function ending in it, is kept
            # even where its value is unused.)
            g.effects.append(g.output)
            return True
        if isinstance(s, ast.Assign):
            value = self.expr(s.value, block)
            for target in s.targets:
                self.assign(target, value, block)
            return False
        if isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self.assign(s.target, self.expr(s.value, block), block)
            return False
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            self._import(s, block)
            return False
        if isinstance(s, ast.AugAssign):
            if isinstance(s.target, ast.Subscript):
                self.augment_item(s, block)
                return False
            if not isinstance(s.target, ast.Name):
                raise self._mutation_error(s.target)
            current = self.expr(ast.Name(id=s.target.id, ctx=ast.Load(), lineno=s.lineno,
                                         col_offset=s.col_offset), block)
            value = self.binop(s.op, current, self.expr(s.value, block), block, s)
            self.assign(s.target, value, block)
            return False
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant):
                return False  # docstrings and bare constants do nothing
            if self.update_call(s.value, block):
                return False
            value = self.expr(s.value, block)
            if isinstance(value, Apply) and value not in g.effects and value.graph is g:
                g.effects.append(value)
            return False
        if isinstance(s, ast.Pass):
            return False
        if isinstance(s, ast.Assert):
            test = self.expr(s.test, block)
            msg = self.expr(s.msg, block) if s.msg is not None else Constant(None)
            g.effects.append(g.apply(P["assert"], test, msg, loc=self.loc(s)))
            return False
        if isinstance(s, ast.FunctionDef):
            if s.decorator_list:
                raise self.error("decorators on nested functions are not supported",
                                 s.decorator_list[0], "apply the decorator outside")
            graph = self.define(s, block)
            block.vars[s.name] = Constant(graph)
            return False
        if isinstance(s, (ast.Global, ast.Nonlocal)):
            return False
        raise self._unsupported_statement(s)

    def _jump_return(self, value: Node, block: Block, ctx: Any) -> bool:
        if ctx is FUNCTION:
            block.graph.output = value
        else:
            assert isinstance(ctx, LoopContext)
            block.vars[RET] = Constant(True)
            block.vars[RETVAL] = value
            block.graph.output = self._state_tuple(block, ctx)
        return True

    def _mutation_error(self, target: ast.AST) -> CompileError:
        what = "item" if isinstance(target, ast.Subscript) else "attribute"
        return self.error(f"in-place {what} assignment is not supported (tapeless programs "
                          "are functional)", target,
                          "build a new value instead, e.g. `a = np.where(mask, v, a)` or "
                          "`a = np.concatenate(...)`, or a new tuple/dataclass")

    def _import(self, s: ast.Import | ast.ImportFrom, block: Block) -> None:
        """`import m`, `import m as n`, `from m import x`: the module (or what it holds)
        is bound when compiling, a constant of the compiled code, as a global is."""
        for alias in s.names:
            try:
                if isinstance(s, ast.Import):
                    module = importlib.import_module(alias.name)
                    top = alias.name.split(".")[0]
                    value = module if alias.asname else importlib.import_module(top)
                    name = alias.asname or top
                else:
                    if s.level or alias.name == "*":
                        raise ImportError("relative and `*` imports")
                    value = getattr(importlib.import_module(s.module or ""), alias.name)
                    name = alias.asname or alias.name
            except (ImportError, AttributeError) as exc:
                raise self.error(f"cannot import inside the compiled function: {exc}", s,
                                 "import at the top of the file") from None
            block.vars[name] = self.constant_for(value, s)

    def _unsupported_statement(self, s: ast.stmt) -> CompileError:
        hints = {
            ast.Try: ("`try` statements are not supported",
                      "check the condition with `if` before the operation instead"),
            ast.With: ("`with` statements are not supported",
                       "move the context manager outside the compiled function"),
            ast.AsyncWith: ("`async with` is not supported", "use ordinary code"),
            ast.AsyncFor: ("`async for` is not supported", "use an ordinary `for` loop"),
            ast.ClassDef: ("`class` inside a function is not supported",
                           "define the class at module level"),
            ast.Delete: ("`del` is not supported",
                         "let the variable go out of use instead of deleting it"),
            ast.AsyncFunctionDef: ("async functions are not supported", "use `def`"),
        }
        message, hint = hints.get(type(s), (f"`{type(s).__name__}` statements are not "
                                            "supported", "rewrite it with if/for/while"))
        if isinstance(s, ast.Match):
            message, hint = "`match` statements are not supported", "use if/elif/else"
        return self.error(message, s, hint)

    # --- assignment -------------------------------------------------------------

    def assign(self, target: ast.AST, value: Node, block: Block) -> None:
        if isinstance(target, ast.Name):
            if block.scope.info.declared.get(target.id) is not None:
                raise self.error(f"assigning to global variable '{target.id}' is not "
                                 "supported", target, "return the value instead")
            if isinstance(value, Apply) and not value.name and value.graph is block.graph:
                value.name = target.id
            block.vars[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                if isinstance(elt, ast.Starred):
                    raise self.error("starred assignment targets are not supported", elt,
                                     "index the sequence explicitly")
            if isinstance(value, Apply) and isinstance(value.inputs[0], Constant) and \
                    value.inputs[0].value is P["make_tuple"] and \
                    len(value.inputs) - 1 == len(target.elts):
                for elt, item in zip(target.elts, value.inputs[1:], strict=True):
                    self.assign(elt, item, block)
                return
            value = block.graph.apply(P["unpack"], value, len(target.elts),
                                      loc=self.loc(target))
            for i, elt in enumerate(target.elts):
                item = block.graph.apply(P["tuple_getitem"], value, i, loc=self.loc(elt))
                self.assign(elt, item, block)
        elif isinstance(target, ast.Subscript):
            self.store_item(target, value, block)
        elif isinstance(target, ast.Attribute):
            raise self._mutation_error(target)
        else:
            raise self.error(f"cannot assign to {type(target).__name__}", target)

    # --- loops ------------------------------------------------------------------

    def _loop(self, s: ast.While | ast.For, block: Block) -> LoopContext:
        has_break = any(_contains_jump(x, True, kinds=(ast.Break,)) for x in s.body)
        has_return = any(_contains_jump(x, False, kinds=(ast.Return,)) for x in s.body)
        names = assigned_names(s.body)
        if isinstance(s, ast.For):
            names = _ordered(assigned_names([ast.Assign(targets=[s.target],
                                                        value=ast.Constant(None))]) + names)
        names = [n for n in names if block.scope.is_local(n)]
        flags = ([BRK] if has_break else []) + ([RET, RETVAL] if has_return else [])
        ctx = LoopContext(names + flags, has_break, has_return)
        loc = self.loc(s)
        init = [self._read_or_unbound(block, n) for n in ctx.state]
        result: Node
        if isinstance(s, ast.While):
            cond = self._loop_cond(block, ctx, self.lossy(lambda b: self.expr(s.test, b)), s)
            body = self._branch(block, "while_body",
                                lambda b: self._body(s.body, b, ctx), s, ctx.state,
                                inits=dict(zip(ctx.state, init, strict=True)))
            self.check_loop_updates(body, ctx)
            result = block.graph.apply(P["while_loop"], cond, body, *init, loc=loc)
            offset = 0
        else:
            result, offset = self._for(s, block, ctx, init)
        block.graph.effects.append(result)
        outer_break = block.vars.get(BRK)
        for i, n in enumerate(ctx.state):
            block.vars[n] = block.graph.apply(P["tuple_getitem"], result, i + offset, loc=loc,
                                              name=n if not n.startswith("#") else "")
            if self.may_be_unbound(init[i]):
                self.maybe_unbound.add(block.vars[n])
        if has_break:
            # This loop's break flag is not that of an enclosing loop.
            ctx.broke = block.vars.pop(BRK)
            if outer_break is not None:
                block.vars[BRK] = outer_break
        return ctx

    def _loop_cond(self, block: Block, ctx: LoopContext, test: Callable[[Block], Node],
                   at: ast.AST, extra: Sequence[str] = ()) -> Graph:
        def build(b: Block) -> Node:
            flags = [f for f in (BRK, RET) if f in ctx.state]
            return self._and_not_flags(b, flags, test, at)

        return self._branch(block, "while_cond", build, at, list(extra) + ctx.state)

    def _and_not_flags(self, b: Block, flags: list[str], test: Callable[[Block], Node],
                       at: ast.AST) -> Node:
        if not flags:
            return test(b)
        flag = b.lookup(flags[0])
        g_false = self._branch(b, "stop", lambda _: Constant(False), at)
        g_go = self._branch(b, "go", lambda bb: self._and_not_flags(bb, flags[1:], test, at),
                            at)
        sw = b.graph.apply(P["switch"], flag, g_false, g_go, loc=self.loc(at))
        return b.graph.apply(sw, loc=self.loc(at))

    def _for(self, s: ast.For, block: Block, ctx: LoopContext,
             init: list[Node]) -> tuple[Node, int]:
        """The loop node, and where the caller's state starts in its result."""
        g = block.graph
        loc = self.loc(s)
        simple_range = self._range_args(s.iter, block)
        if simple_range is not None and not ctx.has_break and not ctx.has_return:
            start, stop, step = simple_range

            def body_range(b: Block) -> Node:
                self.assign(s.target, b.vars["#i"], b)
                return self._body(s.body, b, ctx)

            label = {"#i": s.target.id} if isinstance(s.target, ast.Name) else {}
            body = self._branch(block, "for_body", body_range, s, ["#i"] + ctx.state, label,
                                dict(zip(ctx.state, init, strict=True)))
            self.check_loop_updates(body, ctx)
            return g.apply(P["for_range"], start, stop, step, body, *init, loc=loc), 0
        length: Node
        if simple_range is not None:
            seq = g.apply(P["range"], g.apply(P["make_tuple"], *simple_range), loc=loc)
            length, element = g.apply(P["len"], seq, loc=loc), \
                (lambda b, i: b.graph.apply(P["getitem"], seq, i, loc=loc))
        else:
            length, element = self._iteration(s.iter, block)
        if not ctx.has_break and not ctx.has_return:
            def body_seq(b: Block) -> Node:
                self.assign(s.target, element(b, b.vars["#i"]), b)
                return self._body(s.body, b, ctx)

            body = self._branch(block, "for_body", body_seq, s, ["#i"] + ctx.state,
                                inits=dict(zip(ctx.state, init, strict=True)))
            self.check_loop_updates(body, ctx)
            return g.apply(P["for_range"], 0, length, 1, body, *init, loc=loc), 0
        # A loop that may break or return: a while loop over an explicit index.
        index_ctx = LoopContext([IDX] + ctx.state, ctx.has_break, ctx.has_return)

        def test(b: Block) -> Node:
            return b.graph.apply(P["lt"], b.lookup(IDX), length, loc=loc)

        def body_while(b: Block) -> Node:
            i = b.vars[IDX]
            b.vars[IDX] = b.graph.apply(P["add"], i, 1, loc=loc)
            self.assign(s.target, element(b, i), b)
            return self._body(s.body, b, index_ctx)

        cond = self._loop_cond(block, ctx, test, s, [IDX])
        body = self._branch(block, "for_body", body_while, s, index_ctx.state,
                            inits=dict(zip(ctx.state, init, strict=True)))
        self.check_loop_updates(body, index_ctx)
        return g.apply(P["while_loop"], cond, body, Constant(0), *init, loc=loc), 1

    def _range_args(self, it: ast.expr, block: Block) -> tuple[Node, Node, Node] | None:
        """`range(...)`'s start, stop and step, or those of the range that
        `reversed(range(...))` iterates over (so that both loops are `for_range` over ints:
        a reversed range otherwise goes through the generic sequence loop, whose index
        has no kind in derivative code)."""
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and \
                it.func.id == "reversed" and not it.keywords and len(it.args) == 1 and \
                self._is_global_builtin("reversed", block):
            inner = it.args[0]
            bounds = self._range_args(inner, block)
            if bounds is None:
                return None
            g, loc = block.graph, self.loc(it)
            start, stop, step = bounds
            if isinstance(step, Constant) and type(step.value) is int and \
                    step.value in (1, -1):
                # range(a, b) reversed is range(b - 1, a - 1, -1), also where it is empty
                # (and range(a, b, -1) reversed is range(b + 1, a + 1)).
                s = step.value
                return (g.apply(P["sub"], stop, s, loc=loc),
                        g.apply(P["sub"], start, s, loc=loc), Constant(-s))
            # In general, with L = len(range(a, b, s)): range(a + (L - 1) * s, a - s, -s).
            n = g.apply(P["len"], g.apply(P["range"], g.apply(P["make_tuple"], *bounds),
                                          loc=loc), loc=loc)
            last = g.apply(P["add"], start, g.apply(
                P["mul"], g.apply(P["sub"], n, 1, loc=loc), step, loc=loc), loc=loc)
            return (last, g.apply(P["sub"], start, step, loc=loc),
                    g.apply(P["neg"], step, loc=loc))
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                and it.func.id == "range" and not it.keywords
                and self._is_global_builtin(it.func.id, block)
                and 1 <= len(it.args) <= 3
                and not any(isinstance(a, ast.Starred) for a in it.args)):
            return None
        args = [self.expr(a, block) for a in it.args]
        if len(args) == 1:
            return Constant(0), args[0], Constant(1)
        if len(args) == 2:
            return args[0], args[1], Constant(1)
        return args[0], args[1], args[2]

    def _is_global_builtin(self, name: str, block: Block) -> bool:
        scope: Scope | None = block.scope
        while scope is not None:
            if scope.is_local(name):
                return False
            scope = scope.parent
        return self.lookup_global(name) is MISSING and hasattr(builtins, name)

    def _iteration(self, it: ast.expr, block: Block) -> tuple[Node, Callable[..., Node]]:
        """The length of what a `for` loop iterates over, and how to get element i."""
        g = block.graph
        loc = self.loc(it)
        length: Node
        strict = _zip_strict_flag(it)
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and \
                (not it.keywords or strict is not None and it.func.id == "zip") \
                and self._is_global_builtin(it.func.id, block):
            name = it.func.id
            if name == "zip" and it.args and \
                    not any(isinstance(a, ast.Starred) for a in it.args):
                parts = [self._iteration(a, block) for a in it.args]
                lengths = g.apply(P["make_tuple"], *[p[0] for p in parts])
                length = g.apply(P["zip_strict_length" if strict else "min"], lengths,
                                 loc=loc)
                return length, lambda b, i: b.graph.apply(
                    P["make_tuple"], *[p[1](b, i) for p in parts], loc=loc)
            if name == "enumerate" and len(it.args) in (1, 2):
                length, inner = self._iteration(it.args[0], block)
                start = self.expr(it.args[1], block) if len(it.args) == 2 else Constant(0)
                def numbered(b: Block, i: Node) -> Node:
                    count = i if isinstance(start, Constant) and start.value == 0 else \
                        b.graph.apply(P["add"], i, start, loc=loc)
                    return b.graph.apply(P["make_tuple"], count, inner(b, i), loc=loc)

                return length, numbered
            if name == "reversed" and len(it.args) == 1:
                length, inner = self._iteration(it.args[0], block)
                last = g.apply(P["sub"], length, 1, loc=loc)
                return length, lambda b, i: inner(b, b.graph.apply(P["sub"], last, i, loc=loc))
        seq = g.apply(P["as_sequence"], self.expr(it, block), loc=loc)
        return g.apply(P["len"], seq, loc=loc), \
            (lambda b, i: b.graph.apply(P["getitem"], seq, i, loc=loc))

    # --- nested functions -------------------------------------------------------

    def define(self, node: ast.FunctionDef | ast.Lambda, block: Block) -> Graph:
        name = node.name if isinstance(node, ast.FunctionDef) else "lambda"
        graph = block.scope.def_graphs.get(name) if isinstance(node, ast.FunctionDef) \
            else None
        # A `def` compiled a second time (code after an `if` that returns is compiled
        # once per branch) is a new closure, over that branch's values.
        if graph is None or graph.signature is not None:
            graph = Graph(name, block.graph)
            if isinstance(node, ast.FunctionDef) and name in block.scope.info.def_only:
                block.scope.def_graphs[name] = graph
        graph.parent = block.graph
        if isinstance(node, ast.FunctionDef):
            block.vars[name] = Constant(graph)  # visible to its own body (recursion)
        defaults = [self.expr(d, block) for d in node.args.defaults]
        kwdefaults = {a.arg: self.expr(d, block)
                      for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
                      if d is not None}
        return self._function(node, graph, block, block.scope, defaults, kwdefaults)

    def resolve_free(self, name: str, block: Block, at: ast.AST) -> Node | None:
        """A variable of an enclosing function, seen from a nested one."""
        inner = block.scope
        b: Block | None = block
        while b is not None and b.scope is inner:
            b = b.parent
        scope = inner.parent
        while scope is not None and b is not None:
            if scope.is_local(name):
                if name in scope.info.def_only:
                    graph = scope.def_graphs.get(name)
                    if graph is None:
                        graph = Graph(name, b.graph)
                        scope.def_graphs[name] = graph
                    return Constant(graph)
                self._check_capture(name, scope, inner, at)
                node = b.lookup(name)
                if node is None:
                    raise self.error(f"'{name}' is used by a nested function before the "
                                     "enclosing function assigns it", at,
                                     "assign it before the nested function is defined")
                return node
            inner = scope
            while b is not None and b.scope is scope:
                b = b.parent
            scope = scope.parent
        return None

    def _check_capture(self, name: str, owner: Scope, child: Scope, at: ast.AST) -> None:
        """Closures see a variable's latest value; ours see the value at definition.
        Refuse the programs where the two differ."""
        if child.immediate:
            return
        where = child.def_node
        assert where is not None
        pos = (where.lineno, where.col_offset)
        later = [p for p in owner.info.assigned.get(name, []) if p > pos]
        loops = getattr(where, "_tapeless_loops", [])
        in_loop = [p for p in owner.info.assigned.get(name, []) for lo in loops
                   if lo.lineno <= p[0] <= (lo.end_lineno or lo.lineno)]
        if later or in_loop:
            line = (later or in_loop)[0][0]
            again = "again" if later else "in a loop around the nested function"
            raise self.error(
                f"the nested function reads '{name}', which the enclosing function assigns "
                f"{again} (line {line}); Python closures would see the new value", at,
                f"pass '{name}' to the nested function as an argument, or give each value "
                "its own name")


def _zip_strict_flag(it: ast.expr) -> bool | None:
    """For `zip(..., strict=<True or False>)`, the flag; otherwise None."""
    if isinstance(it, ast.Call) and len(it.keywords) == 1 and \
            it.keywords[0].arg == "strict" and isinstance(it.keywords[0].value, ast.Constant) \
            and isinstance(it.keywords[0].value.value, bool):
        return it.keywords[0].value.value
    return None


def _branch_value(g: Graph, i: int, n: int) -> Node | None:
    """The value a value-if branch `g` leaves for the `i`-th of its `n` variables."""
    out = g.output
    if n == 1 or not isinstance(out, Apply):
        return out
    return out.inputs[1 + i]


def _ordered(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def assigned_names(stmts: list[ast.stmt]) -> list[str]:
    """Names bound by these statements (not inside nested functions), in order."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.GeneratorExp,
                             ast.DictComp)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.append(node.id)
        changed = mutated_name(node)
        if changed is not None:
            out.append(changed)
        if isinstance(node, ast.NamedExpr):
            out.append(node.target.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for s in stmts:
        visit(s)
    return _ordered(out)


def _contains_jump(node: ast.AST, in_loop: bool,
                   kinds: tuple[type, ...] = (ast.Return, ast.Break, ast.Continue, ast.Raise,
                                              _ReturnValue)) -> bool:
    """Whether `node` jumps out of the current block: returns (anywhere), raises, or
    break/continue of the current loop (not of a nested one)."""
    if isinstance(node, kinds):
        if isinstance(node, (ast.Break, ast.Continue)):
            return in_loop
        return True
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
        return False
    if isinstance(node, (ast.For, ast.While)):  # a loop's `else` is outside the loop
        return any(_contains_jump(c, False, kinds) for c in node.body) or \
            any(_contains_jump(c, in_loop, kinds) for c in node.orelse)
    if isinstance(node, ast.expr):
        return False
    return any(_contains_jump(c, in_loop, kinds) for c in ast.iter_child_nodes(node))


class Resolver(Recorder):
    """Compiles Python functions to graphs, once each while the globals and closure
    cells they read (and those of the functions they reach) keep their values, and
    resolves global names. A function whose reads no longer hold is compiled again (a
    new graph; code built from the old one keeps it). Lookups made while a graph is built
    (`recording`) are collected, so whatever is built from them knows what it read.
    tapeless's own functions (reverse rules, runtime helpers) are compiled once and not
    guarded."""

    def __init__(self) -> None:
        super().__init__()
        self.graphs: dict[Any, Entry] = {}
        self.building = 0  # functions whose graphs are being built, one inside another
        self.finishing: list[Callable[[], None]] = []
        self.started: list[Any] = []  # the functions whose graphs this build made

    def once_built(self, step: Callable[[], None]) -> None:
        """Run `step` once every graph being built is finished (now, where none is): a
        step that reads a function's body must not see it half built, as it is where a
        function, while being compiled, reaches itself (recursion through a
        `tl.checkpoint`). A step that raises fails the outermost function's build, and
        every graph made for it is dropped (they may hold what the step left undone)."""
        if self.building:
            self.finishing.append(step)
        else:
            step()

    def graph_for(self, fn: types.FunctionType) -> Graph:
        return self.entry_for(fn).graph

    def entry_for(self, fn: types.FunctionType) -> Entry:
        key = fn
        entry = self.graphs.get(key)
        if entry is not None and entry.done and not entry.exempt and not current([entry]):
            entry = None  # stale: a name it read was rebound
        if entry is None:
            graph = Graph(fn.__name__ if fn.__name__ != "<lambda>" else "lambda")
            exempt = (getattr(fn, "__module__", None) or "").startswith("tapeless.")
            entry = self.graphs[key] = Entry(fn, graph, exempt)
            self.building += 1
            self.started.append(key)
            try:
                with self.recording() as deps:
                    Compiler(fn, self, entry).compile_top(graph)
                if self.building == 1:
                    try:
                        while self.finishing:
                            self.finishing.pop(0)()
                    except BaseException:
                        for started in self.started:
                            self.graphs.pop(started, None)
                        raise
            except BaseException:
                self.graphs.pop(key, None)
                if self.building == 1:
                    self.finishing.clear()
                raise
            finally:
                self.building -= 1
                if not self.building:
                    self.started.clear()
            deps.discard(entry)
            entry.deps = deps
            entry.done = True
        if not entry.exempt:
            self.note(entry)
        return entry


RESOLVER = Resolver()


def parse(fn: Callable[..., Any]) -> Graph:
    """The IR graph of a Python function (compiled once, then cached)."""
    fn = unwrap(fn)
    if not isinstance(fn, types.FunctionType):
        raise CompileError(f"tapeless can only compile Python functions, not {fn!r}")
    if (refused := refusal(fn, None)) is not None:  # (`tl.grad(statistics.fmean)`)
        raise refused
    return RESOLVER.graph_for(fn)


__all__ = ["Compiler", "Primitive", "RESOLVER", "parse", "METHODS", "lookup_callable", "ParamSpec",
           "unwrap", "Block", "Scope", "LoopContext"]
