"""Compiling in-place updates to new values (mixed into the front end's Compiler):
`x[i] = v`, `x[i] op= v`, `xs.append(v)`, `xs.extend(vs)`, `d.update(e)`,
`a.fill(v)` and `np.add.at(a, i, v)` rebind the variable to the updated value, where
`frontend.mutation` proves that CPython's in-place change is seen through that variable
alone."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ir.nodes import Apply, Constant, Graph, Node, Parameter
from ..primitives import PRIMITIVES
from .mutation import UPDATE_METHODS, allocates, visible_values

if TYPE_CHECKING:
    from ..errors import CompileError
    from .mutation import Ownership
    from .scopes import Block, LoopContext
    from .source import FunctionSource

P = PRIMITIVES



def _copy_hint(name: str) -> str:
    return (f"copy it first and update the copy: `{name} = {name}.copy()` (a list: "
            f"`{name} = list({name})`, a dict: `{name} = dict({name})`), or build a new "
            "value")


class UpdateMixin:
    """In-place updates; relies on the Compiler's `error`, `expr`, `_index`, `binop`,
    `ownership` and `exits`."""

    if TYPE_CHECKING:
        ownership: Ownership
        exits: dict[int, list[dict[str, Node]]]
        src: FunctionSource

        def error(self, message: str, node: ast.AST, hint: str = "") -> CompileError: ...
        def expr(self, node: ast.expr, block: Block) -> Node: ...
        def _index(self, node: ast.expr, block: Block) -> Node: ...
        def binop(self, op: ast.operator, left: Node, right: Node, block: Block,
                  at: ast.AST) -> Node: ...
        def bind_primitive(self, prim: Any, args: list[Node], kwargs: dict[str, Node],
                           at: ast.AST, block: Block, starred: bool = False) -> list[Node]: ...

    # --- the statements ---------------------------------------------------------------

    def store_item(self, target: ast.Subscript, value: Node, block: Block) -> None:
        """`x[index] = value`."""
        name = self._updated_variable(target, "item assignment")
        index = self._index(target.slice, block)
        current = self.owned_value(name, block, target, f"`{name}[...] = ...`")
        self._not_stored_in_itself(name, current, [value], block, target)
        self._rebind(name, block.graph.apply(P["index_update"], current, index, value,
                                             loc=self._loc(target)), block)

    def augment_item(self, s: ast.AugAssign, block: Block) -> None:
        """`x[index] op= value`: `x[index] = x[index] op value`, with x and the index
        evaluated once."""
        target = s.target
        assert isinstance(target, ast.Subscript)
        name = self._updated_variable(target, "augmented item assignment")
        current = self.owned_value(name, block, target, f"`{name}[...] {_op(s.op)}= ...`")
        index = self._index(target.slice, block)
        g = block.graph
        item: Node = g.apply(P["getitem"], current, index, loc=self._loc(target))
        if not _made_by_numpy(current, strict=True):
            # (An item of a list or dict: CPython's `item.__iadd__` would change an array
            # or a list item in place; compiled code raises there rather than differ.)
            item = g.apply(P["immutable_item"], current, item, loc=self._loc(target))
            g.effects.append(item)
        new = self.binop(s.op, item, self.expr(s.value, block), block, s)
        self._rebind(name, g.apply(P["index_update"], current, index, new,
                                   loc=self._loc(target)), block)

    def update_call(self, call: ast.expr, block: Block) -> bool:
        """A call statement that updates a variable in place: compiled (True), or not
        one (False: it is compiled as an expression)."""
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            return False
        func = call.func
        if func.attr == "at" and isinstance(func.value, ast.Attribute) and \
                func.value.attr == "add":
            ufunc = self.expr(func.value, block)
            if not (isinstance(ufunc, Constant) and ufunc.value is np.add):
                return False
            return self._add_at(call, block)
        if func.attr not in UPDATE_METHODS or not isinstance(func.value, ast.Name):
            return False
        name = func.value.id
        what = f"`{name}.{func.attr}(...)`"
        if any(isinstance(a, ast.Starred) for a in call.args) or \
                any(k.arg is None for k in call.keywords):
            raise self.error(f"{what} with `*` or `**` arguments is not supported", call,
                             "pass the arguments one by one")
        g = block.graph
        loc = self._loc(call)
        if func.attr == "update":
            if len(call.args) > 1:
                raise self.error(f"{what} takes at most one positional argument", call)
            parts: list[Node] = []
            if call.args:
                parts.append(g.apply(P["dict"], g.apply(P["make_tuple"],
                                                        self.expr(call.args[0], block)),
                                     loc=loc))
            if call.keywords:
                keys = tuple(k.arg for k in call.keywords)
                values = [self.expr(k.value, block) for k in call.keywords]
                parts.append(g.apply(P["make_dict"], Constant(keys),
                                     g.apply(P["make_tuple"], *values), loc=loc))
            current = self.owned_value(name, block, call, what)
            self._not_stored_in_itself(name, current, parts, block, call)
            self._rebind(name, g.apply(P["dict_merge"], g.apply(P["make_tuple"], current,
                                                                *parts), loc=loc), block)
            return True
        if call.keywords or len(call.args) != 1:
            raise self.error(f"{what} takes exactly one argument", call)
        value = self.expr(call.args[0], block)
        current = self.owned_value(name, block, call, what)
        if func.attr == "fill":
            new = g.apply(P["index_update"], current, Constant(Ellipsis), value, loc=loc)
        else:
            self._not_stored_in_itself(name, current, [value], block, call)
            new = g.apply(P[f"list_{func.attr}"], current, value, loc=loc)
        self._rebind(name, new, block)
        return True

    def _add_at(self, call: ast.Call, block: Block) -> bool:
        """`np.add.at(a, index, values)`."""
        if len(call.args) != 3 or call.keywords or \
                any(isinstance(a, ast.Starred) for a in call.args):
            raise self.error("np.add.at takes three arguments: the array, the index and "
                             "the values", call)
        first = call.args[0]
        if not isinstance(first, ast.Name):
            raise self.error("np.add.at changes its first argument in place: pass a "
                             "variable", first, "assign the array to a variable first")
        name = first.id
        index = self._index(call.args[1], block)
        value = self.expr(call.args[2], block)
        current = self.owned_value(name, block, call, f"`np.add.at({name}, ...)`")
        self._rebind(name, block.graph.apply(P["index_add"], current, index, value,
                                             loc=self._loc(call)), block)
        return True

    # --- the rule -------------------------------------------------------------------

    def owned_value(self, name: str, block: Block, at: ast.AST, what: str) -> Node:
        """The current value of the variable `name`, which `what` changes in place:
        refused unless the function owns it and nothing else refers to it."""
        if not block.scope.is_local(name):
            raise self.error(f"{what} changes '{name}' in place, a variable of an enclosing "
                             "function or a global, which tapeless compiles as a new value",
                             at, "update a copy made in this function, and return it")
        node = block.lookup(name)
        if node is None:
            raise self.error(f"local variable '{name}' is used before it is assigned", at,
                             f"assign '{name}' on every path before this line")
        own = self.ownership
        params: list[Parameter] = []
        if not own.owned(node, params=params):
            if isinstance(node, Parameter) and node not in own.param_init and \
                    node.graph is not None and node.graph.signature is not None:
                raise self.error(f"{what} changes the argument '{name}' in place, which the "
                                 "caller would see; tapeless compiles updates as new values",
                                 at, _copy_hint(name))
            raise self.error(f"{what} changes '{name}' in place, but '{name}' may refer to "
                             "an object this function did not make (an argument, a global, "
                             "an item of a container, a view, the result of a call), which "
                             "others would see changed; tapeless compiles updates as new "
                             "values", at, _copy_hint(name))
        target = own.same_object(node)
        memo: dict[int, int] = {}
        for other, value in visible_values(block, name).items():
            if own.holds(value, target, memo):
                raise self._shared_error(what, name, other, at)
        for p in params:
            own.assumed.append((p, name, at))
        return node

    def _shared_error(self, what: str, name: str, other: str, at: ast.AST) -> CompileError:
        holder = f"'{other}'" if not other.startswith("#") else "the value returned"
        return self.error(f"{what} changes '{name}' in place, but {holder} refers to the "
                          f"same object (or to a part or a view of it), which CPython would "
                          "change too; tapeless compiles updates as new values", at,
                          f"copy where the object is shared (e.g. `{other} = {name}.copy()`)"
                          if not other.startswith("#") else _copy_hint(name))

    def _not_stored_in_itself(self, name: str, current: Node, values: list[Node],
                              block: Block, at: ast.AST) -> None:
        """A container updated to hold itself (`xs.append(xs)`) would hold the old
        value; an array copies what it is given, so an array (made by NumPy) may be
        updated from itself (`a[1:] = a[:-1]`)."""
        if _made_by_numpy(current):
            return
        target = self.ownership.same_object(current)
        memo: dict[int, int] = {}
        if any(self.ownership.holds(v, target, memo) for v in values):
            raise self.error(f"the update stores '{name}' (or a part of it) into itself",
                             at, f"store a copy: `{name}.copy()`")

    def check_loop_updates(self, body: Graph, ctx: LoopContext) -> None:
        """Each path through a loop body that updates a state variable in place must
        leave it owned and unshared: the next iteration updates that value."""
        own = self.ownership
        exits = self.exits.pop(id(ctx), [])
        keep = []
        for param, name, at in own.assumed:
            if param.graph is not body:
                keep.append((param, name, at))
                continue
            assert isinstance(at, ast.AST)
            for values in exits:
                final = values.get(name)
                if final is None or any(_is_true(values.get(flag))
                                        for flag in ("#break", "#return")):
                    continue  # (a path that leaves the loop: no next iteration)
                if not own.owned(final):
                    raise self.error(
                        f"'{name}' is changed in place in the loop, but at the end of an "
                        f"iteration it may refer to an object this function did not make, "
                        "which the next iteration would change", at, _copy_hint(name))
                target = own.same_object(final)
                memo: dict[int, int] = {}
                for other, value in values.items():
                    if other != name and own.holds(value, target, memo):
                        holder = f"'{other}'" if not other.startswith("#") else \
                            "the value returned"
                        raise self.error(
                            f"'{name}' is changed in place in the loop, but at the end of "
                            f"an iteration {holder} refers to the same object (or to a part "
                            "or a view of it), which CPython would change too in the next "
                            "iteration; tapeless compiles updates as new values", at,
                            f"copy where the object is shared (e.g. `{other} = "
                            f"{name}.copy()`)" if not other.startswith("#")
                            else _copy_hint(name))
        own.assumed = keep

    # --- helpers --------------------------------------------------------------------

    def _updated_variable(self, target: ast.Subscript, what: str) -> str:
        if not isinstance(target.value, ast.Name):
            raise self.error(f"in-place {what} is supported on a variable (`x[i] = v`), "
                             "not on an item or an attribute of another value", target,
                             "for an array, index once (`x[i, j] = v`); otherwise build "
                             "the new value and assign it")
        return target.value.id

    def _rebind(self, name: str, node: Apply, block: Block) -> None:
        node.name = name
        block.vars[name] = node

    def _loc(self, node: ast.AST) -> Any:
        return self.src.loc(node)


def _made_by_numpy(node: Node, strict: bool = False) -> bool:
    """Whether an owned value is an array a NumPy function made (updates included);
    unless `strict`, arithmetic results count (they are arrays unless the program adds
    lists)."""
    while isinstance(node, Apply) and isinstance(node.inputs[0], Constant):
        prim = node.inputs[0].value
        name = getattr(prim, "name", "")
        if name in ("index_update", "index_add"):
            node = node.inputs[1]
            continue
        return name.startswith("np.") or (not strict and getattr(prim, "fresh", False) and
                                          allocates(prim) and not name.startswith("list"))
    return False


def _op(op: ast.operator) -> str:
    return {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.Pow: "**", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
            ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}.get(type(op), "op")


def _is_true(flag: Node | None) -> bool:
    """Whether a loop exit's flag (`#break`, `#return`) is the constant True."""
    return isinstance(flag, Constant) and flag.value is True
