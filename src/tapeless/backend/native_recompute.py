"""Saved items recomputed where they are read: a loop's stack keeps fewer values.

A forward loop saves per turn the values its backward loop reads, among them products
of other saved values and of values the loop does not change, e.g. the particle's
`(drag * speed, vy, speed, 0.001 * drag, (0.001 * drag) * speed, vx)`: six floats
appended to the stack each turn where three would do. Here an item of the saved tuple
whose value is `+`, `-`, `*`, `/` of constants, of other items kept and of names bound
once in the function outside the loop (so of the same value where the backward loop
reads it) is left out of the tuple, and each read `saved[k]` of it becomes the same
operations on the items kept (`saved[k']`) and those names: the same operations on the
same values, so the same result, bit for bit.

Only a stack of the form the lowering leaves is rewritten: `stack = []` bound once,
appended to at one place (`stack_append(tuple)` with `stack_append = stack.append`, or
`stack.append(tuple)`), a statement of the loop's body, and read only as `len(s)` and
`s[i]` (`s` the stack or a name bound once to it), each item read bound once to a name
read only as `name[k]`, `k` a constant.
"""

from __future__ import annotations

import ast
import copy

from .native_ast import parents

_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
# (at most this many operations recomputed per item read)
MAX_OPS = 4


def recompute_saved_items(tree: ast.Module) -> int:
    """Leave out of the stacks of `tree` the items recomputable from the others (see the
    module's docstring); returns how many items were left out."""
    done = 0
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        stores = _stores(fn)
        for stmt in list(ast.walk(fn)):
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                    isinstance(stmt.targets[0], ast.Name) and \
                    isinstance(stmt.value, ast.List) and not stmt.value.elts and \
                    stores.get(stmt.targets[0].id) == 1:
                done += _rewrite(fn, stmt.targets[0].id, stores)
    return done


def _stores(fn: ast.FunctionDef) -> dict[str, int]:
    out: dict[str, int] = {a.arg: 1 for a in fn.args.args}
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out[n.id] = out.get(n.id, 0) + 1
    return out


def _rewrite(fn: ast.FunctionDef, stack: str, stores: dict[str, int]) -> int:
    parent = parents(fn)
    names = {stack}  # the stack and the names bound to it
    appends: set[str] = set()  # `stack_append = stack.append`
    pushes: list[ast.Call] = []
    items: set[str] = set()  # names bound to `s[i]`
    reads: list[ast.Subscript] = []  # `item[k]`
    # (bindings first: a name bound once to the stack or its `append`)
    for n in ast.walk(fn):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and \
                isinstance(n.targets[0], ast.Name) and stores.get(n.targets[0].id) == 1:
            v, t = n.value, n.targets[0].id
            if isinstance(v, ast.Name) and v.id == stack:
                names.add(t)
            elif isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and \
                    v.value.id == stack and v.attr == "append":
                appends.add(t)
    for n in ast.walk(fn):
        if not (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)):
            continue
        up = parent.get(id(n))
        if n.id in appends:
            if not (isinstance(up, ast.Call) and up.func is n):
                if not (isinstance(up, ast.Assign) and up.value is n):
                    return 0
                continue
            pushes.append(up)
        elif n.id in names:
            if isinstance(up, ast.Assign) and up.value is n and up.targets[0] is not n:
                continue  # (bound to another name: followed above)
            if isinstance(up, ast.Attribute) and up.attr == "append":
                grand = parent.get(id(up))
                if isinstance(grand, ast.Call) and grand.func is up:
                    pushes.append(grand)
                    continue
                if isinstance(grand, ast.Assign) and grand.value is up:
                    continue
                return 0
            if isinstance(up, ast.Call) and isinstance(up.func, ast.Name) and \
                    up.func.id == "len" and len(up.args) == 1:
                continue
            if isinstance(up, ast.Subscript) and up.value is n:
                bind = parent.get(id(up))
                if isinstance(bind, ast.Assign) and len(bind.targets) == 1 and \
                        isinstance(bind.targets[0], ast.Name) and \
                        stores.get(bind.targets[0].id) == 1:
                    items.add(bind.targets[0].id)
                    continue
            return 0
    if len(pushes) != 1 or len(pushes[0].args) != 1 or \
            not isinstance(pushes[0].args[0], ast.Tuple) or not items:
        return 0
    push = pushes[0]
    saved_tuple = push.args[0]
    assert isinstance(saved_tuple, ast.Tuple)
    fields = saved_tuple.elts
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in items:
            up = parent.get(id(n))
            if not (isinstance(up, ast.Subscript) and up.value is n and
                    isinstance(up.slice, ast.Constant) and type(up.slice.value) is int and
                    0 <= up.slice.value < len(fields)):
                return 0
            reads.append(up)
    # The loop whose body makes the push, and the values its body binds once.
    stmt = parent.get(id(push))
    loop = parent.get(id(stmt)) if isinstance(stmt, ast.Expr) else None
    if not isinstance(loop, (ast.For, ast.While)) or stmt not in loop.body:
        return 0
    defined: dict[str, ast.expr] = {}  # a name bound once, in the loop's body, before the push
    for s in loop.body[:loop.body.index(stmt)]:
        if isinstance(s, ast.Assign) and len(s.targets) == 1 and \
                isinstance(s.targets[0], ast.Name) and stores.get(s.targets[0].id) == 1:
            defined[s.targets[0].id] = s.value
    # Names of one value from before the push on: the parameters not bound again, and
    # the names bound once by a statement of the function's body before the one that
    # holds the loop.
    top = next(i for i, s in enumerate(fn.body) if any(n is push for n in ast.walk(s)))
    outer = {a.arg for a in fn.args.args} | {
        s.targets[0].id for s in fn.body[:top] if isinstance(s, ast.Assign) and
        len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)}
    # (an item is a source of others only if the loop's body does not bind it before
    # the push: the value the others read is the one saved)
    early = {n.id for s in loop.body[:loop.body.index(stmt)] for n in ast.walk(s)
             if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    by_name = {f.id: i for i, f in enumerate(fields) if isinstance(f, ast.Name) and
               (f.id not in early or stores.get(f.id) == 1)}

    # (a name whose value may change in place: an item or attribute stored into, or
    # passed to a call other than `len`, or a method's receiver)
    touched = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and
               _may_change(n, parent)}

    def steady(name: str) -> bool:
        """Of one value wherever an item is made or read."""
        return stores.get(name) == 1 and name in outer and name not in touched

    def expansion(e: ast.expr, kept: set[int], budget: list[int]) -> ast.expr | None:
        """`e` as operations on the kept items (`\0k` names) and steady names."""
        if isinstance(e, ast.Constant) and type(e.value) in (int, float):
            return copy.copy(e)
        if isinstance(e, ast.Name):
            if e.id in by_name and by_name[e.id] in kept:
                return ast.Name(f"\0{by_name[e.id]}", ast.Load())
            if steady(e.id):
                return ast.Name(e.id, ast.Load())
            if e.id in defined:
                return expansion(defined[e.id], kept, budget)
            return None
        if isinstance(e, ast.BinOp) and isinstance(e.op, _OPS) or \
                isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            budget[0] -= 1
            if budget[0] < 0:
                return None
            parts = [expansion(p, kept, budget) for p in
                     ((e.left, e.right) if isinstance(e, ast.BinOp) else (e.operand,))]
            if any(p is None for p in parts):
                return None
            if isinstance(e, ast.BinOp):
                return ast.BinOp(parts[0], e.op, parts[1])  # type: ignore[arg-type]
            return ast.UnaryOp(e.op, parts[0])  # type: ignore[arg-type]
        return None

    # Items left out: each one's value recomputable from the items kept (greedy, in
    # order: an item left out is not a source of another's).
    kept = set(range(len(fields)))
    recomputed: dict[int, ast.expr] = {}
    for i, f in enumerate(fields):
        if not isinstance(f, ast.Name) or f.id not in defined:
            continue
        if not any(isinstance(r.slice, ast.Constant) and r.slice.value == i for r in reads):
            continue
        trial = kept - {i}
        value = expansion(defined[f.id], trial, [MAX_OPS])
        if value is None:
            continue
        kept = trial
        recomputed[i] = value
    # (an item left out whose expansion reads one left out later: expanded again)
    for i in list(recomputed):
        field = fields[i]
        assert isinstance(field, ast.Name)
        value = expansion(defined[field.id], kept, [MAX_OPS])
        if value is None:
            return 0
        recomputed[i] = value
    if not recomputed:
        return 0
    order = sorted(kept)
    place = {old: new for new, old in enumerate(order)}
    push.args[0] = ast.copy_location(ast.Tuple([fields[i] for i in order], ast.Load()),
                                     push.args[0])
    for read in reads:
        assert isinstance(read.slice, ast.Constant) and type(read.slice.value) is int
        k: int = read.slice.value
        assert isinstance(read.value, ast.Name)
        item = read.value.id
        if k in recomputed:
            new = _fill(copy.deepcopy(recomputed[k]), item, place)
            up = parent[id(read)]
            _replace(up, read, ast.copy_location(new, read))
        else:
            read.slice = ast.copy_location(ast.Constant(place[k]), read.slice)
    return len(recomputed)


def _may_change(n: ast.Name, parent: dict[int, ast.AST]) -> bool:
    up = parent.get(id(n))
    if isinstance(up, (ast.Subscript, ast.Attribute)) and up.value is n:
        above = parent.get(id(up))
        return not isinstance(up.ctx, ast.Load) or \
            isinstance(above, ast.Call) and above.func is up
    if isinstance(up, ast.AugAssign):
        return True
    return isinstance(up, ast.Call) and n in up.args and \
        not (isinstance(up.func, ast.Name) and up.func.id == "len")


def _fill(e: ast.expr, item: str, place: dict[int, int]) -> ast.expr:
    """The `\0k` names of `e` as reads `item[k']` of the kept items."""
    for n in ast.walk(e):
        for field, value in ast.iter_fields(n):
            if isinstance(value, ast.Name) and value.id.startswith("\0"):
                k = int(value.id[1:])
                setattr(n, field, ast.Subscript(ast.Name(item, ast.Load()),
                                                ast.Constant(place[k]), ast.Load()))
    if isinstance(e, ast.Name) and e.id.startswith("\0"):
        return ast.Subscript(ast.Name(item, ast.Load()), ast.Constant(place[int(e.id[1:])]),
                             ast.Load())
    return e


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                if v is old:
                    value[i] = new
                    return
    raise AssertionError("a node outside its parent")
