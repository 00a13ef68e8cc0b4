"""When an in-place update may be compiled as a new value.

`x[i] = v`, `x[i] += v`, `np.add.at(x, i, v)`, `xs.append(v)`, `d[k] = v`, ... change
an object in place; the front end compiles them to a new value bound to the same name
(`x = index_update(x, i, v)`). That computes what CPython computes exactly when nothing
else can see the object: the rule (docs/language.md, "In-place updates") is that the
variable's value must be *owned*, made by this function (a NumPy constructor, a copy, a
list or dict display or comprehension, an arithmetic result, an earlier update), and
that no other live variable, container or closure refers to it or to a view of it.
Anything else (an argument, a global, an item of a container, the result of a call or
of indexing, a value another name also holds) is refused with a located error.

The analysis reads the IR the front end has built so far: a variable's current value
is a node, and what the other variables' values may hold is found by walking their
inputs. Loop state is an owned value when its initial value is; at the end of each path
through a loop body that updates it, it is checked again (the next iteration updates
what the path leaves)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..ir.nodes import Apply, Constant, Graph, Node, Parameter, free_variables
from ..primitives import PRIMITIVES, Primitive

if TYPE_CHECKING:
    from .scopes import Block

P = PRIMITIVES

# Primitives whose result is a new list or dict (a new array: `Primitive.fresh`).
_NEW_CONTAINERS = {"list", "dict", "sorted", "make_list", "make_dict", "list_map",
                   "list_flatmap", "dict_merge", "list_append", "list_extend"}
# Of those, the ones whose result holds its inputs (or their items) by reference.
_CONTAINERS = {"make_tuple", "make_list", "make_dict", "list_map", "list_flatmap",
               "dict_merge", "index_update", "list_append", "list_extend", "list", "dict",
               "tuple", "sorted", "construct", "replace_fields"}

# The methods that change their object, compiled as updates where they are a statement.
UPDATE_METHODS = ("append", "extend", "update", "fill")

NO, HELD, SAME = 0, 1, 2  # what a value holds of an object: nothing, an item, itself


def _prim(node: Node) -> Primitive | None:
    if isinstance(node, Apply) and isinstance(node.inputs[0], Constant) and \
            isinstance(node.inputs[0].value, Primitive):
        return node.inputs[0].value
    return None


def allocates(prim: Primitive) -> bool:
    return prim.fresh or prim.name in _NEW_CONTAINERS or prim.reduction is not None


def _switch_call(node: Node) -> Apply | None:
    """The `switch(c, g_true, g_false)` node that `node` calls, if it is such a call."""
    if isinstance(node, Apply) and len(node.inputs) == 1 and _prim(node.inputs[0]) is P["switch"]:
        sw = node.inputs[0]
        assert isinstance(sw, Apply)
        return sw
    return None


def _loop_parts(node: Node) -> tuple[Graph, list[Node]] | None:
    """The body and initial state of a loop node."""
    p = _prim(node)
    if p is P["while_loop"] or p is P["for_range"]:
        assert isinstance(node, Apply)
        first = 2 if p is P["while_loop"] else 4
        body = node.inputs[first]
        if isinstance(body, Constant) and isinstance(body.value, Graph):
            return body.value, node.inputs[first + 1:]
    return None


def slots(node: Node | None, k: int) -> list[Node] | None:
    """The nodes that may be item k of the tuple `node` gives (a display, or a branch
    that ends with one); None where that is not known."""
    if node is None:
        return None
    if _prim(node) is P["make_tuple"]:
        assert isinstance(node, Apply)
        return [node.inputs[1 + k]] if 1 + k < len(node.inputs) else None
    sw = _switch_call(node)
    if sw is not None:
        out: list[Node] = []
        for g in sw.inputs[2:]:
            if not (isinstance(g, Constant) and isinstance(g.value, Graph)):
                return None
            found = slots(g.value.output, k)
            if found is None:
                return None
            out += found
        return out
    return None


def _returns_new(out: Node | None, g: Graph) -> bool:
    """Whether the graph `g` returns (as `out`, its output or a branch's) an object made
    by an operation of its own that allocates it."""
    if out is None:
        return False
    p = _prim(out)
    if p is not None and allocates(p):
        return out.graph is g
    sw = _switch_call(out)
    if sw is not None:
        outs = _branch_outputs(sw)
        return outs is not None and all(
            _returns_new(o, b.value) for o, b in zip(outs, sw.inputs[2:], strict=True)
            if isinstance(b, Constant))
    return False


def _branch_outputs(sw: Apply) -> list[Node] | None:
    outs = []
    for g in sw.inputs[2:]:
        if not (isinstance(g, Constant) and isinstance(g.value, Graph)) or \
                g.value.output is None:
            return None
        outs.append(g.value.output)
    return outs


@dataclass
class Ownership:
    """What the front end knows of the objects a function owns, while compiling it."""

    # A loop body's state parameter -> the state's initial value.
    param_init: dict[Parameter, Node] = field(default_factory=dict)
    # Loop state parameters whose updates were allowed because the initial value is
    # owned: (parameter, variable, node of the update) -> checked at the loop's end.
    assumed: list[tuple[Parameter, str, object]] = field(default_factory=list)
    # The `**kwargs` parameters: a new dict at each call.
    fresh_params: set[Parameter] = field(default_factory=set)

    def owned(self, node: Node, seen: frozenset[int] = frozenset(),
              params: list[Parameter] | None = None) -> bool:
        """Whether `node` is an object this function made and holds through one name:
        `params` collects the loop state parameters this relies on."""
        if node.id in seen:
            return True  # (a cycle through a loop: the other paths decide)
        seen = seen | {node.id}
        if isinstance(node, Parameter):
            init = self.param_init.get(node)
            if init is None:
                return node in self.fresh_params
            if params is not None:
                params.append(node)
            return self.owned(init, seen, params)
        p = _prim(node)
        if p is not None and allocates(p):
            return True
        callee = node.inputs[0] if isinstance(node, Apply) else None
        if isinstance(callee, Constant) and isinstance(callee.value, Graph):
            # A Python function that returns a new object it made (`return np.zeros(n)`):
            # the caller is the only one to see it.
            return _returns_new(callee.value.output, callee.value)
        if p is P["tuple_getitem"]:
            assert isinstance(node, Apply)
            k = node.inputs[2]
            if not isinstance(k, Constant) or not isinstance(k.value, int):
                return False
            source = node.inputs[1]
            loop = _loop_parts(source)
            if loop is not None:
                body, start = loop
                exits = slots(body.output, k.value)
                return exits is not None and k.value < len(start) and \
                    self.owned(start[k.value], seen, params) and \
                    all(self.owned(s, seen, params) for s in exits)
            joined = slots(source, k.value) if _switch_call(source) is not None else None
            return joined is not None and all(self.owned(s, seen, params) for s in joined)
        sw = _switch_call(node)
        if sw is not None:
            outs = _branch_outputs(sw)
            return outs is not None and all(self.owned(o, seen, params) for o in outs)
        return False

    def same_object(self, node: Node) -> set[int]:
        """The nodes that stand for the same object as `node` (an owned value): itself,
        and through the joins of loops and branches, the values they join."""
        out: set[int] = set()
        todo = [node]
        while todo:
            n = todo.pop()
            if n.id in out:
                continue
            out.add(n.id)
            if isinstance(n, Parameter) and n in self.param_init:
                todo.append(self.param_init[n])
            elif _prim(n) is P["tuple_getitem"]:
                assert isinstance(n, Apply)
                k = n.inputs[2]
                if isinstance(k, Constant) and isinstance(k.value, int):
                    loop = _loop_parts(n.inputs[1])
                    if loop is not None:
                        todo += slots(loop[0].output, k.value) or []
                        if k.value < len(loop[1]):
                            todo.append(loop[1][k.value])
                    elif _switch_call(n.inputs[1]) is not None:
                        todo += slots(n.inputs[1], k.value) or []
            elif (sw := _switch_call(n)) is not None:
                todo += _branch_outputs(sw) or []
        return out

    def holds(self, node: Node, target: set[int], memo: dict[int, int]) -> int:
        """What the value of `node` may hold of the object `target` stands for: NO,
        HELD (an item of a container holds it) or SAME (it, or a view of it)."""
        if node.id in target:
            return SAME
        if node.id in memo:
            return memo[node.id]
        memo[node.id] = NO  # (cycles through recursive graphs)
        result = self._holds(node, target, memo)
        memo[node.id] = result
        return result

    def _holds(self, node: Node, target: set[int], memo: dict[int, int]) -> int:
        if isinstance(node, Parameter):
            init = self.param_init.get(node)
            return self.holds(init, target, memo) if init is not None else NO
        if isinstance(node, Constant):
            if isinstance(node.value, Graph) and node.value.output is not None:
                # A closure holds what it reads.
                fvs = free_variables(node.value)
                return SAME if any(self.holds(f, target, memo) for f in fvs) else NO
            return NO
        assert isinstance(node, Apply)
        p = _prim(node)
        if p is P["tuple_getitem"]:
            k = node.inputs[2]
            if isinstance(k, Constant) and isinstance(k.value, int):
                source = node.inputs[1]
                loop = _loop_parts(source)
                found: list[Node] | None = None
                if loop is not None:
                    found = slots(loop[0].output, k.value)
                    if found is not None and k.value < len(loop[1]):
                        found = found + [loop[1][k.value]]
                elif _prim(source) is P["make_tuple"] or _switch_call(source) is not None:
                    found = slots(source, k.value)
                if found is not None:
                    return max((self.holds(f, target, memo) for f in found), default=NO)
        sw = _switch_call(node)
        if sw is not None:
            outs = _branch_outputs(sw)
            if outs is not None:
                return max((self.holds(o, target, memo) for o in outs), default=NO)
        loop = _loop_parts(node)
        if loop is not None:
            parts = [loop[0].output] if loop[0].output is not None else []
            level = max((self.holds(n, target, memo) for n in parts + loop[1]), default=NO)
            return HELD if level else NO
        levels = [self.holds(i, target, memo) for i in node.inputs[1:]]
        level = max(levels, default=NO)
        if p is not None:
            if p.name in _CONTAINERS:
                return HELD if level else NO
            if allocates(p):
                # A new array; arithmetic on lists (`xs + [x]`) keeps their items.
                return HELD if HELD in levels else NO
            return SAME if level else NO
        callee = self.holds(node.inputs[0], target, memo)
        return SAME if max(level, callee) else NO


def visible_values(block: Block, skip: str) -> dict[str, Node]:
    """The current value of each variable of the function `block` belongs to, other than
    `skip`, as seen from `block`."""
    out: dict[str, Node] = {}
    b: Block | None = block
    while b is not None and b.scope is block.scope:
        for name, node in b.vars.items():
            if name != skip and name not in out:
                out[name] = node
        b = b.parent
    return out


def mutated_name(node: ast.AST) -> str | None:
    """The variable a statement-level in-place update changes (`x[i] = v`, `x[i] += v`,
    `x.append(v)`, `np.add.at(x, i, v)`), read from the syntax: it is loop state or a
    branch's result like a variable the statement assigns."""
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and \
            isinstance(node.value, ast.Name):
        return node.value.id
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                func.attr in UPDATE_METHODS:
            return func.value.id
        if isinstance(func, ast.Attribute) and func.attr == "at" and \
                isinstance(func.value, ast.Attribute) and func.value.attr == "add" and \
                node.value.args and isinstance(node.value.args[0], ast.Name):
            return node.value.args[0].id
    return None
