"""A parameter that a function of the lowered module gives back unchanged, not given
back (the native backend's, last).

A recursive backpropagator that adds into one buffer (`acc[i] += d`: `lift.accumulate_down`,
`native_records.accumulate_in_place`, `unwind.fuse_native`) gives that buffer back as an
item of its result, `return (d_A, total)`, where `d_A` is, on every path, the array its
parameter `acc` holds: bound to it, or to item 0 of what its own recursive call gave for
`acc`. Each such return costs a tuple holding an array (its reference count taken and
dropped at each level and each read), about an eighth of the determinant's gradient.

`give_back_nothing` proves, per function `f` (not the module's entry) and item m, that
item m of each of `f`'s returns is the object its parameter p holds: p is never bound
again, and every name the item reads is, at each of its bindings, p, such a name, or
item m of a call of `f` whose argument p is one (by induction over the calls: the
greatest set of names so bound). Then each return gives `None` as item m, and each
read `c[m]` of a call's result `c = f(..., a, ...)` reads `a` instead: the same object
(an argument that is not a name is first bound to one). Where a result is read other
than by a constant index, or the argument is bound again between the call and a read
(or the read is not after the call in its statement list), nothing changes."""

from __future__ import annotations

import ast
import itertools

from .native_ast import block_of, parents

_fresh = itertools.count()


def give_back_nothing(tree: ast.Module, root: str | None) -> int:
    """Rewrite each function of `tree` (not `root`, the entry) that gives back one of its
    parameters unchanged as an item of every result (see the module). Returns how many
    items were dropped."""
    functions = {fn.name: fn for fn in tree.body if isinstance(fn, ast.FunctionDef)}
    done = 0
    for name, fn in functions.items():
        if name == root or not _only_called(tree, name):
            continue
        for m, p in _given(fn):
            if _rewrite(tree, fn, m, p):
                done += 1
                break  # (the function changed: one item per function)
    if done:
        for fn in functions.values():
            _drop_aliases(fn)
        ast.fix_missing_locations(tree)
    return done


def _drop_aliases(fn: ast.FunctionDef) -> int:
    """Each name of `fn` that holds, at each of its bindings, a parameter never bound
    again or another such name (`d_A = acc`, then `d_A = _t_8` with `_t_8 = d_A`: the
    buffer carried as a loop's state once its calls give nothing back) read as the
    parameter, its bindings dropped: the same object, without the reference counts a
    name's binding costs in Numba. Returns how many names."""
    if fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.posonlyargs or \
            any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not fn
                for n in ast.walk(fn)):
        return 0
    bound = _bindings(fn)
    of: dict[str, str] = {}
    for p in [a.arg for a in fn.args.args]:
        if p in bound:
            continue
        same = {k for k in bound if k not in of}
        changed = True
        while changed:
            changed = False
            for k in list(same):
                if not all(isinstance(v, ast.Name) and (v.id == p or v.id in same)
                           for v in bound[k]):
                    same.discard(k)
                    changed = True
        of.update((k, p) for k in same)
    if not of:
        return 0
    def read(x: ast.AST) -> ast.AST:
        return ast.Name(of[x.id], ast.Load()) if isinstance(x, ast.Name) and \
            isinstance(x.ctx, ast.Load) and x.id in of else x

    for n in ast.walk(fn):
        for field, value in ast.iter_fields(n):
            if isinstance(value, list) and value:
                kept = [read(x) for x in value
                        if not (isinstance(x, ast.Assign) and _drop_bindings(x, of))]
                value[:] = kept or [ast.Pass()]
            elif isinstance(value, ast.AST):
                setattr(n, field, read(value))
    return len(of)


def _drop_bindings(stmt: ast.Assign, of: dict[str, str]) -> bool:
    """Drop the bindings of the names in `of` from `stmt` (their values are names: no
    effect); True where nothing is left of it."""
    if len(stmt.targets) != 1:
        return False
    t = stmt.targets[0]
    if isinstance(t, ast.Name):
        return t.id in of
    if isinstance(t, ast.Tuple) and isinstance(stmt.value, ast.Tuple) and \
            len(t.elts) == len(stmt.value.elts):
        pairs = [(x, v) for x, v in zip(t.elts, stmt.value.elts, strict=True)
                 if not (isinstance(x, ast.Name) and x.id in of)]
        if not pairs:
            return True
        if len(pairs) == 1:
            stmt.targets = [pairs[0][0]]
            stmt.value = pairs[0][1]
        else:
            t.elts = [x for x, _ in pairs]
            stmt.value.elts = [v for _, v in pairs]
    return False


def _only_called(tree: ast.Module, name: str) -> bool:
    """Whether each use of `name` calls it with positional arguments only."""
    up = parents(tree)
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id == name:
            call = up.get(id(n))
            if not (isinstance(call, ast.Call) and call.func is n and not call.keywords and
                    not any(isinstance(a, ast.Starred) for a in call.args)):
                return False
    return True


def _tuple_returns(fn: ast.FunctionDef) -> list[ast.Tuple] | None:
    """The tuple displays `fn` returns, one per `return` (None where one is not, or a
    function or lambda is nested in it: their returns are not `fn`'s)."""
    out = []
    for n in ast.walk(fn):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and n is not fn:
            return None
        if isinstance(n, ast.Return):
            if not isinstance(n.value, ast.Tuple):
                return None
            out.append(n.value)
    return out or None


def _bindings(fn: ast.FunctionDef) -> dict[str, list[ast.expr | None]]:
    """What each name `fn` binds is bound to, per binding (an item of a tuple display
    unpacked: that item; None: not known, e.g. a loop target or an augmented
    assignment)."""
    out: dict[str, list[ast.expr | None]] = {}
    known: set[int] = set()
    for n in ast.walk(fn):
        if not isinstance(n, ast.Assign):
            continue
        for target in n.targets:
            pairs = [(target, n.value)] if isinstance(target, ast.Name) else \
                list(zip(target.elts, n.value.elts, strict=True)) \
                if isinstance(target, ast.Tuple) and isinstance(n.value, ast.Tuple) and \
                len(target.elts) == len(n.value.elts) else []
            for t, v in pairs:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append(v)
                    known.add(id(t))
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and id(n) not in known:
            out.setdefault(n.id, []).append(None)
    return out


def _given(fn: ast.FunctionDef) -> list[tuple[int, int]]:
    """The (item m, parameter place p) where each return's item m is the object that
    parameter p holds (see the module)."""
    returns = _tuple_returns(fn)
    if returns is None or len({len(t.elts) for t in returns}) != 1:
        return []
    params = [a.arg for a in fn.args.args]
    if fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.posonlyargs:
        return []
    bound = _bindings(fn)
    found = []
    for m in range(len(returns[0].elts)):
        for ip, p in enumerate(params):
            if p in bound:
                continue
            same = _same_as(fn, bound, params, m, ip)
            if all(_is_same(t.elts[m], same, p, fn.name, m, ip, len(params), bound)
                   for t in returns):
                found.append((m, ip))
    return found


def _same_as(fn: ast.FunctionDef, bound: dict[str, list[ast.expr | None]],
             params: list[str], m: int, ip: int) -> set[str]:
    """The greatest set of names each of whose bindings is parameter `ip`, a name of
    the set, or item m of a call of `fn` whose argument `ip` is one."""
    same = {k for k in bound if k not in params}
    p = params[ip]
    changed = True
    while changed:
        changed = False
        for k in list(same):
            if not all(v is not None and _is_same(v, same, p, fn.name, m, ip, len(params),
                                                  bound) for v in bound[k]):
                same.discard(k)
                changed = True
    return same


def _is_same(e: ast.expr, same: set[str], p: str, f: str, m: int, ip: int, arity: int,
             bound: dict[str, list[ast.expr | None]]) -> bool:
    if isinstance(e, ast.Name):
        return e.id == p or e.id in same
    if isinstance(e, ast.Subscript) and isinstance(e.slice, ast.Constant) and \
            e.slice.value == m and type(e.slice.value) is int and \
            isinstance(e.value, ast.Name):
        values = bound.get(e.value.id, [])
        return bool(values) and all(
            isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == f and
            len(v.args) == arity and isinstance(a := v.args[ip], ast.Name) and
            (a.id == p or a.id in same) for v in values)
    return False


def _rewrite(tree: ast.Module, fn: ast.FunctionDef, m: int, ip: int) -> bool:
    """Each call's `c[m]` read as the argument, then each return's item m as None; False
    (nothing changed) where a call's result is read otherwise (see the module)."""
    edits = []
    up = parents(tree)
    for caller in [f for f in tree.body if isinstance(f, ast.FunctionDef)]:
        for call in [n for n in ast.walk(caller) if isinstance(n, ast.Call) and
                     isinstance(n.func, ast.Name) and n.func.id == fn.name]:
            stmt: ast.AST = call
            while not isinstance(stmt, ast.stmt):
                stmt = up[id(stmt)]
            block = block_of(stmt, up)
            plan = _call_plan(caller, block, block.index(stmt), stmt, call, m, ip, up)
            if plan is None:
                return False
            edits.append(plan)
    for t in _tuple_returns(fn) or []:
        t.elts[m] = ast.copy_location(ast.Constant(None), t.elts[m])
    for block, stmt, call, reads in edits:
        arg = call.args[ip]
        if not isinstance(arg, ast.Name):  # (`_call_plan`: every argument pure)
            name = f"_nt_given{next(_fresh)}"
            block.insert(block.index(stmt), ast.copy_location(
                ast.Assign([ast.Name(name, ast.Store())], arg), stmt))
            call.args[ip] = arg = ast.Name(name, ast.Load())
        for read in reads:
            holder = up[id(read)]
            for field, value in ast.iter_fields(holder):
                if value is read:
                    setattr(holder, field, ast.Name(arg.id, ast.Load()))
                elif isinstance(value, list):
                    for i, x in enumerate(value):
                        if x is read:
                            value[i] = ast.Name(arg.id, ast.Load())
    return True


def _call_plan(caller: ast.FunctionDef, block: list[ast.stmt], at: int, stmt: ast.stmt,
               call: ast.Call, m: int, ip: int, up: dict[int, ast.AST]
               ) -> tuple[list[ast.stmt], ast.stmt, ast.Call, list[ast.Subscript]] | None:
    """(block, statement, call, the reads `c[m]` to replace) for a call bound alone to a
    name `c` bound nowhere else in `caller` and read only by constant indices, each read
    later in `block` with the argument not bound again up to it; None otherwise."""
    if not (isinstance(stmt, ast.Assign) and stmt.value is call and len(stmt.targets) == 1 and
            isinstance(c := stmt.targets[0], ast.Name)):
        return None
    arg = call.args[ip] if ip < len(call.args) else None
    if arg is None or not isinstance(arg, ast.Name) and not all(_pure(a) for a in call.args):
        return None  # (an argument bound to a name first: the others evaluated after it)
    stores = [n for n in ast.walk(caller) if isinstance(n, ast.Name) and n.id == c.id and
              not isinstance(n.ctx, ast.Load)]
    if len(stores) != 1 or any(isinstance(n, ast.Name) and n.id == c.id for n in ast.walk(call)):
        return None
    loads = [n for n in ast.walk(caller) if isinstance(n, ast.Name) and n.id == c.id and
             isinstance(n.ctx, ast.Load)]
    reads = []
    later = block[at + 1:]
    for n in loads:
        sub = up.get(id(n))
        if not (isinstance(sub, ast.Subscript) and sub.value is n and
                isinstance(sub.slice, ast.Constant) and type(sub.slice.value) is int and
                isinstance(sub.ctx, ast.Load)):
            return None
        if sub.slice.value != m:
            continue
        where = next((i for i, s in enumerate(later) if any(x is n for x in ast.walk(s))),
                     None)
        if where is None:
            return None
        if isinstance(arg, ast.Name) and any(
                isinstance(x, ast.Name) and x.id == arg.id and not isinstance(x.ctx, ast.Load)
                for s in later[:where + 1] for x in ast.walk(s)):
            return None
        reads.append(sub)
    return block, stmt, call, reads


def _pure(e: ast.expr) -> bool:
    """Whether evaluating `e` has no effect: names, constants, arithmetic, tuples and
    calls of NumPy's functions (`np.zeros(...)`) on such values."""
    if isinstance(e, (ast.Name, ast.Constant)):
        return True
    if isinstance(e, ast.Tuple):
        return all(_pure(x) for x in e.elts)
    if isinstance(e, ast.BinOp):
        return _pure(e.left) and _pure(e.right)
    if isinstance(e, ast.UnaryOp):
        return _pure(e.operand)
    if isinstance(e, ast.Attribute):
        return _pure(e.value)
    return isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and \
        isinstance(e.func.value, ast.Name) and e.func.value.id == "np" and \
        all(_pure(a) for a in e.args) and all(_pure(k.value) for k in e.keywords)
