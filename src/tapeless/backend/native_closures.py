"""Backpropagator closures kept in records, in native code: tagged tuples.

The derivative of `total + term if k % 2 == 0 else total - term` saves, per term, the
backpropagator of the branch that ran: `def B_if_true(d, *, total=total, term=term)` on
one path, `def B_if_false(d, *, t=t, total=total, term=term)` on the other, the one that
ran bound to one name and kept in the loop's saved tuple, and the backward pass calls it
(`saved[1](d_total)`). `opt/lift` turns into records only the closures that every call
site sees alone; two closures meeting at one call stay closures, and Numba compiles no
closure kept in a value.

This module rewrites, in the generated module's source, such closures as data
(defunctionalization): each `def` becomes the tuple `(tag, slot, ...)` of its captures,
evaluated where the `def` ran (the keyword defaults), with one slot per name any of them
captures (`None` in the slots a closure does not capture: Numba types the slot as an
optional value where the closures meet); its body becomes a function of the module
`F__B(d, _nt_closure)` that reads its captures from its slots; and every call through a
value, `x(d)`, becomes `_nt_call_closure(d, x)`, which calls the function of `x`'s tag.

Only where it is safe for every closure of the module at once (a call through a value
can only call one of them): every function nested in a function of the module is such a
closure (positional parameters and captures by keyword defaults of the same names, no
function nested in it, reading no local of its function but its captures), its name is
read only as the value of a plain assignment to a name (`v = B`, `a, v = x, B`) bound
only so, no function of the module is used as a value, and every call through a value
passes as many positional arguments as the closures take. Otherwise nothing changes and
the closures left are reported, each with why (the lowering then refuses the module).

Where the branches differ in form, the backward pass reads the sensitivity of the branch
that ran through a selection of tuples, `(None, d, None) if c else (None, None, d)`,
whose items are then indexed; Numba fails on an item of an optional tuple, so
`lower_branch_selects` reads each item as a selection of items instead.
"""

from __future__ import annotations

import ast
import copy
import sys

from .native_ast import block_of, blocks, is_name, parents

HELPER = "_nt_call_closure"
SLOTS = "_nt_closure"


def lift_branch_closures(tree: ast.Module) -> tuple[int, list[tuple[ast.AST, str]]]:
    """Rewrite the closures of `tree` as tagged tuples (see the module's doc). Returns how
    many closures were rewritten and, where none could be, each closure with why."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    parent = parents(tree)
    found: list[tuple[ast.FunctionDef, ast.FunctionDef]] = []  # (function, closure)
    left: list[tuple[ast.AST, str]] = []
    for fn in functions.values():
        for node in ast.walk(fn):
            if node is fn or not isinstance(node, (ast.FunctionDef, ast.Lambda)):
                continue
            why = _not_liftable(fn, node, parent) if isinstance(node, ast.FunctionDef) \
                else "a lambda"
            if why is None:
                assert isinstance(node, ast.FunctionDef)
                found.append((fn, node))
            else:
                left.append((node, why))
    if not found or left:
        return 0, left
    names = [b.name for _, b in found]
    arity = {len(b.args.args) for _, b in found}
    why = None
    if len(set(names)) != len(names):
        why = "two closures of one name"
    elif len(arity) != 1:
        why = "closures taking different numbers of arguments"
    elif any(f"{fn.name}__{b.name}" in functions for fn, b in found) or HELPER in functions:
        why = "a function of the module has the name the lowering gives a closure"
    else:
        why = _value_uses(tree, functions, parent, arity.pop())
    if why is not None:
        return 0, [(b, f"{b.name}: {why}") for _, b in found]
    slots: list[str] = []
    for _, b in found:
        for a in b.args.kwonlyargs:
            if a.arg not in slots:
                slots.append(a.arg)
    load = ast.Load()
    lifted: list[ast.FunctionDef] = []
    for tag, (fn, b) in enumerate(found):
        captures = [a.arg for a in b.args.kwonlyargs]
        value = ast.Tuple([ast.Constant(tag), *(
            ast.Name(s, load) if s in captures else ast.Constant(None) for s in slots)], load)
        block = block_of(b, parent)
        block[block.index(b)] = ast.copy_location(
            ast.Assign([ast.Name(b.name, ast.Store())], value), b)
        unpack: list[ast.stmt] = [
            ast.copy_location(ast.Assign([ast.Name(c, ast.Store())], ast.Call(
                ast.Name("_nt_unwrap", load), [ast.Subscript(
                    ast.Name(SLOTS, load), ast.Constant(slots.index(c) + 1), load)], [])), b)
            for c in captures]
        lifted.append(_function(f"{fn.name}__{b.name}", [*(a.arg for a in b.args.args),
                                                          SLOTS], unpack + b.body, b))
    params = [f"_nt_a{i}" for i in range(len(found[0][1].args.args))]
    args: list[ast.expr] = [ast.Name(p, load) for p in params]
    body: list[ast.stmt] = [ast.Return(ast.Call(
        ast.Name(lifted[-1].name, load), [*args, ast.Name(SLOTS, load)], []))]
    for tag in reversed(range(len(lifted) - 1)):
        body = [ast.If(ast.Compare(ast.Subscript(ast.Name(SLOTS, load), ast.Constant(0), load),
                                   [ast.Eq()], [ast.Constant(tag)]),
                       [ast.Return(ast.Call(ast.Name(lifted[tag].name, load),
                                            [*args, ast.Name(SLOTS, load)], []))], body)]
    dispatch = _function(HELPER, [*params, SLOTS], body, found[-1][1])
    last = max(tree.body.index(fn) for fn, _ in found)
    tree.body[last + 1:last + 1] = [*lifted, dispatch]
    _CallsThroughValues({*functions, *(f.name for f in lifted)}).visit(tree)
    ast.fix_missing_locations(tree)
    return len(found), []


def _function(name: str, params: list[str], body: list[ast.stmt], where: ast.AST
              ) -> ast.FunctionDef:
    fn = ast.FunctionDef(name=name, args=ast.arguments(
        posonlyargs=[], args=[ast.arg(p) for p in params], vararg=None, kwonlyargs=[],
        kw_defaults=[], kwarg=None, defaults=[]), body=body, decorator_list=[], returns=None)
    if sys.version_info >= (3, 12):
        setattr(fn, "type_params", [])  # noqa: B010 - (a field since 3.12)
    ast.copy_location(fn, where)
    for node in ast.walk(fn):
        if isinstance(node, (ast.stmt, ast.expr)) and not hasattr(node, "lineno"):
            ast.copy_location(node, where)
    return fn


def _not_liftable(fn: ast.FunctionDef, b: ast.FunctionDef, parent: dict[int, ast.AST]
                  ) -> str | None:
    """Why the closure `b` nested in `fn` is not one this module rewrites, or None."""
    a = b.args
    if a.vararg or a.kwarg or a.defaults or a.posonlyargs or b.decorator_list or not all(
            isinstance(d, ast.Name) and d.id == k.arg
            for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)):
        return f"{b.name} takes other than positional parameters and keyword-default captures"
    if not isinstance(parent.get(id(b)), (ast.FunctionDef, ast.If, ast.For, ast.While)) or \
            isinstance(parent.get(id(b)), ast.FunctionDef) and parent[id(b)] is not fn:
        return f"{b.name} is nested in another closure or statement"
    if any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not b for n in ast.walk(b)):
        return f"{b.name} nests a function"
    inner = {id(n) for n in ast.walk(b)}
    own = {p.arg for p in a.args} | {k.arg for k in a.kwonlyargs} | {
        n.id for n in ast.walk(b) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    outer = {p.arg for p in fn.args.args} | {
        n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and
        not isinstance(n.ctx, ast.Load) and id(n) not in inner} | {
        n.name for n in ast.walk(fn) if isinstance(n, ast.FunctionDef) and n is not fn}
    read = sorted({n.id for n in ast.walk(b) if isinstance(n, ast.Name) and
                   n.id in outer - own})
    if read:
        return f"{b.name} reads {', '.join(read[:3])} of {fn.name} without capturing it"
    defs = [n for n in ast.walk(fn) if isinstance(n, ast.FunctionDef) and n.name == b.name]
    if len(defs) != 1:
        return f"{b.name} is defined more than once"
    for n in ast.walk(fn):
        if not is_name(n, b.name) or id(n) in inner:
            continue
        if not isinstance(n.ctx, ast.Load):  # type: ignore[attr-defined]
            return f"{b.name} is bound again"
        target = _bound_to(n, parent)
        if target is None:
            return f"{b.name} is used other than as the value of an assignment to a name"
    return None


def _bound_to(value: ast.AST, parent: dict[int, ast.AST]) -> str | None:
    """The name `value` is assigned to (`v = value`, `a, v = x, value`), else None."""
    p = parent.get(id(value))
    if isinstance(p, ast.Assign) and p.value is value and len(p.targets) == 1 and \
            isinstance(p.targets[0], ast.Name):
        return p.targets[0].id
    if isinstance(p, ast.Tuple) and isinstance(a := parent.get(id(p)), ast.Assign) and \
            a.value is p and len(a.targets) == 1 and isinstance(t := a.targets[0], ast.Tuple) \
            and len(t.elts) == len(p.elts):
        i = next(k for k, e in enumerate(p.elts) if e is value)
        name = t.elts[i]
        return name.id if isinstance(name, ast.Name) else None
    return None


def _value_uses(tree: ast.Module, functions: dict[str, ast.FunctionDef],
                parent: dict[int, ast.AST], arity: int) -> str | None:
    """Why a call through a value could call something else than the closures (a function
    of the module used as a value), or pass them other arguments; None where none can."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in functions and \
                isinstance(node.ctx, ast.Load):
            call = parent.get(id(node))
            if not (isinstance(call, ast.Call) and call.func is node):
                return f"the function {node.id} of the module is used as a value"
    for fn in functions.values():
        bound = _local_names(fn)
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and _through_value(node, functions, bound) and (
                    len(node.args) != arity or node.keywords or
                    any(isinstance(x, ast.Starred) for x in node.args)):
                return "a call through a value passes other arguments than the closures take"
    return None


def _local_names(fn: ast.FunctionDef) -> dict[str, bool]:
    """The names `fn` binds, each with whether every binding is `name = attribute`
    (`_sens_of = _rt.sens_of`: a runtime helper, not a value the closures reach)."""
    out: dict[str, bool] = {p.arg: False for p in fn.args.args + fn.args.kwonlyargs}
    plain = {id(n.targets[0]) for n in ast.walk(fn) if isinstance(n, ast.Assign) and
             len(n.targets) == 1 and isinstance(n.targets[0], ast.Name) and
             isinstance(n.value, ast.Attribute)}
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out[n.id] = out.get(n.id, True) and id(n) in plain
    return out


def _through_value(call: ast.Call, functions: dict[str, ast.FunctionDef] | set[str],
                   bound: dict[str, bool]) -> bool:
    """Whether `call` calls a value (a local name, an item): not a function of the module,
    a global, a builtin, an attribute or a local bound only to an attribute (`bound`:
    `_local_names` of its function)."""
    f = call.func
    if isinstance(f, ast.Attribute):
        return False
    if not isinstance(f, ast.Name):
        return True
    return f.id not in functions and f.id != HELPER and f.id in bound and not bound[f.id]


class _CallsThroughValues(ast.NodeTransformer):
    """`x(a)` through a value -> `_nt_call_closure(a, x)`."""

    def __init__(self, functions: set[str]) -> None:
        self.functions = functions
        self.bound: dict[str, bool] = {}

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        outer = self.bound
        self.bound = _local_names(node)
        self.generic_visit(node)
        self.bound = outer
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if _through_value(node, self.functions, self.bound):
            return ast.copy_location(ast.Call(ast.Name(HELPER, ast.Load()),
                                              [*node.args, node.func], []), node)
        return node


def lower_branch_selects(tree: ast.Module) -> int:
    """`X = (a0, a1, ...) if c else (b0, b1, ...)` (the sensitivity of a conditional
    expression's branches: each item a name or None, ZERO), read only as `Y = X[k]` with
    each such `Y` read only as `Y[j]`: every `Y[j]` becomes `(ak[j] if c else bk[j])`
    (None for a None item: an item of ZERO is ZERO) and the two assignments go. Numba
    types `Y` as an optional tuple and fails on its items. Only where `c` is a name or
    an item of one by a constant, `X` and the `Y`s are bound once in their function, and
    the reads follow `X` in its block with nothing binding a name the selection reads in
    between. Run after `_Lowering` (ZERO is None there). Returns how many were
    rewritten."""
    done = 0
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
        while _select_once(fn):
            done += 1
    if done:
        ast.fix_missing_locations(tree)
    return done


def _select_once(fn: ast.FunctionDef) -> bool:
    """Rewrite the first selection of `fn` that `lower_branch_selects` takes."""
    parent = parents(fn)
    stores: dict[str, int] = {}
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            stores[n.id] = stores.get(n.id, 0) + 1
    for block in blocks(fn, ("body", "orelse")):
        for i, st in enumerate(block):
            sel = st.value if isinstance(st, ast.Assign) else None
            if not (isinstance(st, ast.Assign) and len(st.targets) == 1 and
                    isinstance(x := st.targets[0], ast.Name) and stores.get(x.id) == 1 and
                    isinstance(sel, ast.IfExp) and _plain(sel.test) and
                    isinstance(sel.body, ast.Tuple) and isinstance(sel.orelse, ast.Tuple) and
                    len(sel.body.elts) == len(sel.orelse.elts) and
                    all(isinstance(e, ast.Name) or _is_none(e)
                        for e in sel.body.elts + sel.orelse.elts)):
                continue
            later = block[i + 1:]
            items = _item_reads(fn, x.id, len(sel.body.elts), later, parent, stores)
            if items is None:
                continue
            uses = [(u, k) for a, k in items for u in _subscripts_of(fn, a, parent)]
            if any(u is None for u, _ in uses):
                continue
            last = max((j for j, s in enumerate(later)
                        if any(any(m is u for m in ast.walk(s)) for u, _ in uses)), default=-1)
            if len(uses) != sum(any(m is u for m in ast.walk(s)) for s in later
                                for u, _ in uses):
                continue
            read = {n.id for n in ast.walk(sel) if isinstance(n, ast.Name)}
            if any(isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and n.id in read
                   for s in later[:last + 1] for n in ast.walk(s)):
                continue
            for u, k in uses:
                assert isinstance(u, ast.Subscript) and isinstance(u.slice, ast.Constant)
                j = u.slice.value
                assert isinstance(j, int)
                new = ast.copy_location(ast.IfExp(
                    copy.deepcopy(sel.test), _item(sel.body.elts[k], j),
                    _item(sel.orelse.elts[k], j)), u)
                _replace(parent[id(u)], u, new)
            for a, _ in items:
                block.remove(a)
            block.remove(st)
            return True
    return False


def _plain(e: ast.expr) -> bool:
    """A name, or an item of one by an int constant (read again, the same value)."""
    return isinstance(e, ast.Name) or isinstance(e, ast.Subscript) and \
        isinstance(e.value, ast.Name) and isinstance(e.slice, ast.Constant) and \
        type(e.slice.value) is int


def _is_none(e: ast.expr) -> bool:
    return isinstance(e, ast.Constant) and e.value is None


def _item(e: ast.expr, j: int) -> ast.expr:
    if _is_none(e):
        return ast.Constant(None)
    assert isinstance(e, ast.Name)
    return ast.Subscript(ast.Name(e.id, ast.Load()), ast.Constant(j), ast.Load())


def _item_reads(fn: ast.FunctionDef, x: str, n: int, later: list[ast.stmt],
                parent: dict[int, ast.AST], stores: dict[str, int]
                ) -> list[tuple[ast.Assign, int]] | None:
    """The statements `Y = X[k]` of `later` (with k) if they are all the reads of `x` in
    `fn` and each `Y` is bound only there; else None."""
    out: list[tuple[ast.Assign, int]] = []
    for r in ast.walk(fn):
        if not (is_name(r, x) and isinstance(r.ctx, ast.Load)):  # type: ignore[attr-defined]
            continue
        sub, a = parent.get(id(r)), None
        if isinstance(sub, ast.Subscript):
            a = parent.get(id(sub))
        if not (isinstance(sub, ast.Subscript) and sub.value is r and
                isinstance(sub.slice, ast.Constant) and
                type(k := sub.slice.value) is int and 0 <= k < n and
                isinstance(a, ast.Assign) and a.value is sub and len(a.targets) == 1 and
                isinstance(y := a.targets[0], ast.Name) and stores.get(y.id) == 1 and
                any(s is a for s in later)):
            return None
        out.append((a, k))
    return out or None


def _subscripts_of(fn: ast.FunctionDef, a: ast.Assign, parent: dict[int, ast.AST]
                   ) -> list[ast.Subscript | None]:
    """The reads `Y[j]` (an int constant) of the name `a` binds; None for another read."""
    y = a.targets[0]
    assert isinstance(y, ast.Name)
    out: list[ast.Subscript | None] = []
    for n in ast.walk(fn):
        if is_name(n, y.id) and n is not y:
            sub = parent.get(id(n))
            ok = isinstance(sub, ast.Subscript) and sub.value is n and \
                isinstance(sub.slice, ast.Constant) and type(sub.slice.value) is int and \
                isinstance(sub.ctx, ast.Load)
            out.append(sub if ok else None)  # type: ignore[arg-type]
    return out


def _replace(p: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for field, value in ast.iter_fields(p):
        if value is old:
            setattr(p, field, new)
        elif isinstance(value, list):
            for q, v in enumerate(value):
                if v is old:
                    value[q] = new
