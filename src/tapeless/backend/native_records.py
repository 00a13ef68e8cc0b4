"""A recursion's lifted backpropagator records in native code: lists and indices.

For the derivative of a recursive function `f`, `opt/lift.py` makes `J_f(args)` return
`(value, record)`, the record the tuple of the values its backpropagator reads, and
`B_f(record, d)` a function of the module. Numba cannot type those records: a record
holds the callees' records (on its loop's stack), so its type would contain itself, and
the two branches of the recursion (base case, recursive case) make records of two
different types in one variable.

This module rewrites such a pair in the generated module's source so that Numba can
compile it. Each branch of `J_f` appends its own record (a tuple of one type) to a list
of that branch's records (a Numba list of one item type), and returns the record's index
`2 * i + branch` (an int) in its place: a record refers to its callees' records by their
ints, so no type contains itself. `B_f(ref, d)` reads `ref`'s record from its branch's
list, in a copy of its body for each branch where the test of the branch (the record's
item that `J_f` branched on) is that branch's constant. The lists are made where the
program first calls `J_f` and passed to every call of `J_f` and `B_f`; they are typed
(Numba types an empty list `[]` by the `append`s of the function that makes it) by an
`append` that never runs of what a probe returns: a copy of the branch of `J_f` whose
recursive calls run `J_f`'s value alone (`V_f`, the forward pass without records) and
return the index 0.

Only the shape that `lift` makes is rewritten: `J_f`'s body ends in `if c: ... else:
...` and `return v, (fields...)` with `c` among the fields, its recursive calls are
`t = J_f(...)`, and `B_f`'s first parameter is `record`, tested as `record[k]` (k: the
place of `c`) in an `if` of its body, which ends in a `return`. Anything else is left
as it is (and refused later, as a closure or a type Numba cannot represent).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from typing import NamedTuple

from .native_ast import blocks as _blocks
from .native_ast import parents as _parents

_LISTS = ("_nt_records0", "_nt_records1")


def lower_recursive_records(tree: ast.Module) -> tuple[int, list[tuple[ast.AST, str]]]:
    """Rewrite the lifted recursive backpropagators of `tree` (see the module's doc);
    returns how many pairs were rewritten, and for each pair left as it is whose records
    hold the callees' (`B_f` calls itself), the recursive call of `J_f` and why (where
    the lowering refuses it: Numba cannot type such a record)."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    done = 0
    left: list[tuple[ast.AST, str]] = []
    for j in list(functions.values()):
        if not j.name.startswith("J_"):
            continue
        b = functions.get("B_" + j.name[2:])
        if b is None or not b.args.args or b.args.args[0].arg != "record":
            continue
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        value_fn, probes = f"V_{j.name[2:]}", [f"P{i}_{j.name[2:]}" for i in (0, 1)]
        shape = _j_shape(j)
        if shape is None or _b_split(b, shape[1]) is None or \
                not _calls_only_assigned(tree, j.name) or not all(
                    _lists_at(fn, j.name, b.name) is not None
                    for fn in tree.body if isinstance(fn, ast.FunctionDef) and
                    fn not in (j, b)) or \
                any(n in functions or n in names for n in (value_fn, *probes)):
            if _calls_of(b, b.name):
                left.append((next(iter(_calls_of(j, j.name)), j), _why(j, b)))
            continue
        k = shape[1]
        lists = [f"{name}_{j.name[2:]}" for name in _LISTS]
        new = [_value_function(j, value_fn), *(_probe(j, value_fn, name, arm)
                                               for name, arm in zip(probes, (0, 1),
                                                                    strict=True))]
        _record_function(j, lists)
        _backward_function(b, k, lists)
        for fn in [f for f in tree.body if isinstance(f, ast.FunctionDef)]:
            if fn is not j and fn is not b:
                _make_lists(fn, j.name, b.name, lists, probes)
        for fn in new:
            tree.body.insert(tree.body.index(j), fn)
        _slim_records(tree, j, b, new[1:], lists)
        done += 1
    if done:
        ast.fix_missing_locations(tree)
    return done, left


def _why(j: ast.FunctionDef, b: ast.FunctionDef) -> str:
    """Why the records of the lifted pair (J_f, B_f) are not kept in lists by branch."""
    what = (f"{j.name} is recursive and the records of its lifted backpropagator {b.name} "
            "hold the callees' records (a type that contains itself, which Numba cannot "
            "represent)")
    closures = sorted({n.name for fn in (j, b) for n in ast.walk(fn)
                       if isinstance(n, ast.FunctionDef) and n is not fn})
    if closures:
        return (f"{what}; they keep closures ({', '.join(closures[:4])}), which native code "
                "cannot hold, so they are not kept in lists by branch")
    return (f"{what}; they are not in the form the native lowering keeps in lists by branch "
            f"({j.name} ending in `if c: ... else: ...` and `return value, (fields)`, "
            f"{b.name} testing the record's `c`, every call of {j.name} assigned to a "
            "name): see docs/design.md, \"The native backend\"")


def _j_shape(j: ast.FunctionDef) -> tuple[str, int] | None:
    """(the name `J_f` branches on, its place among the record's fields)."""
    if len(j.body) < 2 or not isinstance(ret := j.body[-1], ast.Return) or \
            not isinstance(branch := j.body[-2], ast.If) or not branch.orelse or \
            not isinstance(branch.test, ast.Name):
        return None
    out = ret.value
    if not (isinstance(out, ast.Tuple) and len(out.elts) == 2 and
            isinstance(fields := out.elts[1], ast.Tuple) and
            all(isinstance(f, ast.Name) for f in fields.elts)):
        return None
    names = [f.id for f in fields.elts]  # type: ignore[attr-defined]
    if branch.test.id not in names:
        return None
    # (No function nested in J_f: it would see the rewritten names.)
    if any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not j for n in ast.walk(j)):
        return None
    return branch.test.id, names.index(branch.test.id)


def _is_record_test(node: ast.AST, k: int) -> bool:
    return isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
        node.value.id == "record" and isinstance(node.slice, ast.Constant) and \
        node.slice.value == k


def _b_split(b: ast.FunctionDef, k: int) -> int | None:
    """The place in `B_f`'s body of its `if record[k]:`, where its body ends in a
    return (or in that `if`, each of its arms ending in one) and `record` is only read,
    and only by item."""
    if not b.body or not (isinstance(last := b.body[-1], ast.Return) or
                          isinstance(last, ast.If) and _returns(last.body) and
                          _returns(last.orelse)):
        return None
    if any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not b for n in ast.walk(b)):
        return None
    parents = _parents(b)
    for n in ast.walk(b):
        if isinstance(n, ast.Name) and n.id == "record" and (
                not isinstance(n.ctx, ast.Load) or
                not isinstance(parents.get(id(n)), ast.Subscript)):
            return None
    alias = _test_alias(b, k)
    for i, stmt in enumerate(b.body):
        if isinstance(stmt, ast.If) and (_is_record_test(stmt.test, k) or alias is not None
                                         and _is_name(stmt.test, alias)):
            return i
    return None


def _returns(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return)


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _test_alias(b: ast.FunctionDef, k: int) -> str | None:
    """The name `t` of `t = record[k]`, a statement of `B_f`'s body, where `t` is bound
    nowhere else."""
    for stmt in b.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(t := stmt.targets[0], ast.Name) and _is_record_test(stmt.value, k):
            bound = [n for n in ast.walk(b) if isinstance(n, ast.Name) and n.id == t.id and
                     not isinstance(n.ctx, ast.Load)]
            if len(bound) == 1 and t.id not in {a.arg for a in b.args.args}:
                return t.id
    return None


def _calls_only_assigned(tree: ast.Module, name: str) -> bool:
    """Whether every use of `name` is a call `t = name(...)` (with `t` a name)."""
    parents = _parents(tree)
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id == name:
            call = parents.get(id(n))
            if not isinstance(call, ast.Call) or call.func is not n:
                return False
            stmt = parents.get(id(call))
            if not (isinstance(stmt, ast.Assign) and stmt.value is call and
                    len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
                return False
    return True


def _name(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


def _call(fn: str, args: list[ast.expr]) -> ast.Call:
    return ast.Call(_name(fn), args, [])


def _int0() -> ast.expr:
    """`np.int64(0)`: an int64, not the literal 0 (the type of a record's index)."""
    return ast.Call(ast.Attribute(_name("np"), "int64", ast.Load()), [ast.Constant(0)], [])


class _Calls(ast.NodeTransformer):
    """Rewrites the calls of `name` (`t = name(args)`)."""

    def __init__(self, name: str, make: object) -> None:
        self.name = name
        self.make = make

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == self.name:
            made: ast.AST = self.make(node)  # type: ignore[operator]
            return made
        return node


def _value_calls(body: list[ast.stmt], j_name: str, value_fn: str) -> list[ast.stmt]:
    """`body` with each `J_f(args)` as `(V_f(args), np.int64(0))`."""
    def make(call: ast.Call) -> ast.expr:
        return ast.Tuple([_call(value_fn, call.args), _int0()], ast.Load())
    calls = _Calls(j_name, make)
    return [calls.visit(copy.deepcopy(s)) for s in body]


def _renamed(j: ast.FunctionDef, name: str, body: list[ast.stmt]) -> ast.FunctionDef:
    fn = copy.copy(j)
    fn.name, fn.args, fn.body, fn.decorator_list = name, copy.deepcopy(j.args), body, []
    return fn


def _value_function(j: ast.FunctionDef, value_fn: str) -> ast.FunctionDef:
    """`V_f`: `J_f`'s value alone (each branch returns it)."""
    branch, ret = j.body[-2], j.body[-1]
    assert isinstance(branch, ast.If) and isinstance(ret, ast.Return) and \
        isinstance(ret.value, ast.Tuple)
    value = ret.value.elts[0]
    arms = [[*arm, ast.Return(copy.deepcopy(value))] for arm in (branch.body, branch.orelse)]
    body = [*j.body[:-2], ast.If(branch.test, arms[0], arms[1])]
    return _renamed(j, value_fn, _value_calls(body, j.name, value_fn))


def _probe(j: ast.FunctionDef, value_fn: str, name: str, arm: int) -> ast.FunctionDef:
    """A record of the branch `arm` (what types that branch's list; never run)."""
    branch, ret = j.body[-2], j.body[-1]
    assert isinstance(branch, ast.If) and isinstance(ret, ast.Return) and \
        isinstance(ret.value, ast.Tuple)
    fields = ret.value.elts[1]
    body = [*j.body[:-2], *(branch.body if arm == 0 else branch.orelse),
            ast.Return(copy.deepcopy(fields))]
    return _renamed(j, name, _value_calls(body, j.name, value_fn))


def _with_lists(call: ast.Call, lists: list[str]) -> ast.Call:
    return ast.Call(call.func, [*call.args, *map(_name, lists)], call.keywords)


def _record_function(j: ast.FunctionDef, lists: list[str]) -> None:
    """`J_f` appends each branch's record to its list and returns its index."""
    branch = j.body[-2]
    ret = j.body[-1]
    assert isinstance(branch, ast.If) and isinstance(ret, ast.Return)
    value, fields = ret.value.elts  # type: ignore[union-attr]
    arms = []
    for arm, stmts in enumerate((branch.body, branch.orelse)):
        records = _name(lists[arm])
        append = ast.Expr(ast.Call(ast.Attribute(records, "append", ast.Load()),
                                   [copy.deepcopy(fields)], []))
        # 2 * (len(records) - 1) + arm
        index = ast.BinOp(ast.BinOp(ast.Constant(2), ast.Mult(), ast.BinOp(
            _call("len", [_name(lists[arm])]), ast.Sub(), ast.Constant(1))),
            ast.Add(), ast.Constant(arm))
        arms.append([*stmts, append,
                     ast.Return(ast.Tuple([copy.deepcopy(value), index], ast.Load()))])
    j.body[-2:] = [ast.copy_location(ast.If(branch.test, arms[0], arms[1]), branch)]
    j.args.args.extend(ast.arg(name) for name in lists)
    _Calls(j.name, lambda c: _with_lists(c, lists)).visit(j)


class _Constant(ast.NodeTransformer):
    """`record[k]` (and the name `alias` bound to it) as a constant, and the branches
    on it that are not taken left out."""

    def __init__(self, k: int, value: bool, alias: str | None) -> None:
        self.k = k
        self.value = value
        self.alias = alias

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if _is_record_test(node, self.k):
            return ast.copy_location(ast.Constant(self.value), node)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if self.alias is not None and node.id == self.alias and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Constant(self.value), node)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.test, ast.Constant) and type(node.test.value) is bool:
            return node.body if node.test.value else node.orelse
        return node

    def visit_If(self, node: ast.If) -> ast.AST | list[ast.stmt]:
        self.generic_visit(node)
        if isinstance(node.test, ast.Constant) and type(node.test.value) is bool:
            taken = node.body if node.test.value else node.orelse
            return taken or [ast.copy_location(ast.Pass(), node)]
        return node


def _backward_function(b: ast.FunctionDef, k: int, lists: list[str]) -> None:
    """`B_f(ref, d)`: a copy of its body for each branch, reading the record there."""
    at = _b_split(b, k)
    assert at is not None
    test = b.body[at]
    assert isinstance(test, ast.If)
    ref = "_nt_ref"
    arms = []
    for arm in (0, 1):
        read = ast.Assign([ast.Name("record", ast.Store())], ast.Subscript(
            _name(lists[arm]), ast.BinOp(_name(ref), ast.RShift(), ast.Constant(1)),
            ast.Load()))
        body = b.body
        constant = _Constant(k, arm == 0, _test_alias(b, k))
        stmts: list[ast.stmt] = []
        for s in body:
            done = constant.visit(copy.deepcopy(s))
            stmts.extend(done if isinstance(done, list) else [done])
        arms.append([read, *stmts])
    is_base = ast.Compare(ast.BinOp(_name(ref), ast.BitAnd(), ast.Constant(1)), [ast.Eq()],
                          [ast.Constant(0)])
    b.body = [ast.copy_location(ast.If(is_base, arms[0], arms[1]), test)]
    b.args.args[0] = ast.arg(ref)
    b.args.args.extend(ast.arg(name) for name in lists)
    _Calls(b.name, lambda c: _with_lists(c, lists)).visit(b)


def _calls_of(node: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and
            isinstance(n.func, ast.Name) and n.func.id == name]


def _lists_at(fn: ast.FunctionDef, j_name: str, b_name: str
              ) -> tuple[list[ast.stmt], int, ast.Call] | None | bool:
    """Where `fn` makes the lists: (the block, the place in it, the first call of
    `J_f`), that is the statement of the innermost block holding the first call of `J_f`
    (in the order of `_blocks`), where every call of `J_f` and `B_f` in `fn` is in that
    statement or after it in that block; True where `fn` calls neither; None where it
    cannot make them."""
    j_calls, b_calls = _calls_of(fn, j_name), _calls_of(fn, b_name)
    if not j_calls:
        return None if b_calls else True
    for stmts in _blocks(fn):
        for i, stmt in enumerate(stmts):
            first = _calls_of(stmt, j_name)
            if not first:
                continue
            after = {id(n) for s in stmts[i:] for n in ast.walk(s)}
            if all(id(c) in after for c in j_calls + b_calls):
                return stmts, i, first[0]
    return None


def _make_lists(fn: ast.FunctionDef, j_name: str, b_name: str, lists: list[str],
                probes: list[str]) -> None:
    """Where `fn` calls `J_f`: make the lists before its first call (typed by an append
    of the probes' records that never runs) and pass them to the calls of `J_f` and
    `B_f`."""
    at = _lists_at(fn, j_name, b_name)
    if not isinstance(at, tuple):
        return
    stmts, i, call = at
    stmt = stmts[i]
    # (Numba's own lists, `[]`, typed by that append: `numba.typed.List` appends through
    # an untyped byte copy, slower by about a third for the determinant's gradient.)
    made: list[ast.stmt] = [ast.Assign([ast.Name(name, ast.Store())], ast.List([], ast.Load()))
                            for name in lists]
    typed: list[ast.stmt] = [
        ast.Expr(ast.Call(ast.Attribute(_name(name), "append", ast.Load()),
                          [_call(probe, copy.deepcopy(call.args))], []))
        for name, probe in zip(lists, probes, strict=True)]
    made.append(ast.If(_call("_nt_never", []), typed, []))
    for m in made:
        ast.copy_location(m, stmt)
    stmts[i:i] = made
    for name in (j_name, b_name):
        _Calls(name, lambda c: _with_lists(c, lists)).visit(fn)


# --- what the records keep ------------------------------------------------------------------


def _slim_records(tree: ast.Module, j: ast.FunctionDef, b: ast.FunctionDef,
                  probes: list[ast.FunctionDef], lists: list[str]) -> None:
    """Keep in the records only what `B_f` reads, and not what every call of the
    recursion passes on unchanged.

    A field that is a parameter of `J_f` which every recursive call passes on as it is
    (the matrix `A` of the determinant) holds the same value in every record of one run:
    `B_f` takes it as a parameter instead, from each function that calls it (where that
    function gives `J_f` one of its own parameters there, never rebound) and from
    itself. Then the fields `B_f` reads nowhere (the branch test, which its copy per
    branch knows) are dropped, and its reads renumbered. Each record is then smaller
    (an array in a record is nine words and a reference count, per call)."""
    appends = [n.value for n in ast.walk(j) if isinstance(n, ast.Expr) and
               isinstance(n.value, ast.Call) and isinstance(f := n.value.func, ast.Attribute)
               and f.attr == "append" and isinstance(f.value, ast.Name) and
               f.value.id in lists]
    made = [a.args[0] for a in appends if len(a.args) == 1] + \
        [last.value for p in probes if isinstance(last := p.body[-1], ast.Return)]
    tuples = [t for t in made if isinstance(t, ast.Tuple)]
    if len(appends) != 2 or len(tuples) != 4 or \
            not all(ast.dump(t) == ast.dump(tuples[0]) for t in tuples):
        return
    fields = tuples[0].elts
    reads: list[tuple[ast.Subscript, int]] = []
    parents = _parents(b)
    for n in ast.walk(b):
        if isinstance(n, ast.Name) and n.id == "record":
            if isinstance(n.ctx, ast.Store):
                continue
            sub = parents.get(id(n))
            if not (isinstance(sub, ast.Subscript) and sub.value is n and
                    isinstance(k := sub.slice, ast.Constant) and type(k.value) is int and
                    0 <= k.value < len(fields)):
                return
            reads.append((sub, k.value))
    for i, field in enumerate(fields):
        if any(at == i for _, at in reads) and \
                (passed := _passed_on(tree, j, b, probes, field)) is not None:
            param = f"_nt_same{i}"
            if param in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}:
                continue
            for r, _ in [(r, at) for r, at in reads if at == i]:
                holder = parents[id(r)]
                for name, value in ast.iter_fields(holder):
                    if value is r:
                        setattr(holder, name, _name(param))
                    elif isinstance(value, list):
                        value[:] = [_name(param) if v is r else v for v in value]
            reads = [(r, at) for r, at in reads if at != i]
            b.args.args.append(ast.arg(param))
            own = {id(c) for c in _calls_of(b, b.name)}
            for call, value in passed.items():
                call.args.append(_name(param) if id(call) in own else value)
    keep = sorted({at for _, at in reads}) or [0]
    if len(keep) == len(fields):
        return
    for t in tuples:
        t.elts = [t.elts[i] for i in keep]
    for r, at in reads:
        r.slice = ast.Constant(keep.index(at))


def _passed_on(tree: ast.Module, j: ast.FunctionDef, b: ast.FunctionDef,
               probes: list[ast.FunctionDef], field: ast.expr
               ) -> dict[ast.Call, ast.expr] | None:
    """Where `field` (a record's field) is a parameter of `J_f` that every recursive
    call passes on unchanged, and every other function calling `B_f` gives `J_f` there
    one of its own parameters, never rebound: each call of `B_f` with the value it is
    to pass (its caller's parameter; in `B_f` itself, None: its own new parameter)."""
    params = [a.arg for a in j.args.args]
    if not isinstance(field, ast.Name) or field.id not in params:
        return None
    at = params.index(field.id)

    def rebinds(fn: ast.FunctionDef, name: str) -> bool:
        return any(isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load)
                   for n in ast.walk(fn))

    if rebinds(j, field.id) or not all(
            len(c.args) > at and _is_name(c.args[at], field.id) for c in _calls_of(j, j.name)):
        return None
    out: dict[ast.Call, ast.expr] = {c: _name("") for c in _calls_of(b, b.name)}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or fn is j or fn is b or fn in probes:
            continue
        b_calls = _calls_of(fn, b.name)
        if not b_calls:
            continue
        given = {ast.dump(c.args[at]) if len(c.args) > at else "" for c in _calls_of(fn, j.name)}
        first = next(iter(_calls_of(fn, j.name)), None)
        if len(given) != 1 or first is None or not isinstance(q := first.args[at], ast.Name) \
                or q.id not in {a.arg for a in fn.args.args} or rebinds(fn, q.id):
            return None
        out.update({c: _name(q.id) for c in b_calls})
    return out


# --- the sensitivity accumulated in place down the recursion ------------------------------

ACC = "_nt_acc"


def accumulate_recursive_sens(tree: ast.Module) -> int:
    """`accumulate_in_place` for each backpropagator `lower_recursive_records` rewrote
    (its first parameter `_nt_ref`), once the module is lowered (its helpers named
    `_nt_...`). Returns how many were rewritten."""
    return sum(accumulate_in_place(tree, fn) for fn in tree.body
               if isinstance(fn, ast.FunctionDef) and fn.args.args and
               fn.args.args[0].arg == "_nt_ref")


def accumulate_in_place(tree: ast.Module, b: ast.FunctionDef) -> bool:
    """Pass the sensitivity a recursive backpropagator `B_f` gives back down the
    recursion as an accumulator, instead of summing each call's result going up.

    `B_f(args..., acc)` gives `gadd_owned(acc, B_f(args...))`: what it gave before added
    into `acc`, an array that no one else holds (or None, the zero), in place. Each of
    its returns is rewritten to that: the sensitivity of one element
    (`element_sens_small(d, x, i)`: a dense array made per base case) is added into
    `acc` (`add_element`); a loop's sum (`v = None`, then `v = gadd_owned(v, w)` each
    iteration) starts from `acc` instead of None, and where `w` is what a call of `B_f`
    in the same iteration gave back, through `scatter_add_known` (adds in place into
    what it is given, which the optimizer proved owned), that call is given `v` as its
    accumulator and `v` becomes `w`: the iteration adds into the one buffer. Every other
    call of `B_f` is given None. Where a return has another form, or the names involved
    are read elsewhere, nothing changes. Returns whether `b` was rewritten."""
    name = b.name
    parents = _parents(tree)
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id == name and not (
                isinstance(call := parents.get(id(n)), ast.Call) and call.func is n):
            return False
    returns = [n for n in ast.walk(b) if isinstance(n, ast.Return)]
    if not returns or any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not b
                          for n in ast.walk(b)) or ACC in {
                              n.id for n in ast.walk(b) if isinstance(n, ast.Name)}:
        return False
    aliases = _aliases(b)
    plans: list[Callable[[], set[int]]] = []
    for ret in returns:
        block = next((blk for blk in _blocks(b) if ret in blk), None)
        plan = None if block is None else \
            _return_plan(b, block, block.index(ret), name, aliases)
        if plan is None:
            return False
        plans.append(plan)
    threaded: set[int] = set()
    for plan in plans:
        threaded |= plan()
    b.args.args.append(ast.arg(ACC))
    same = _summed_into(b, aliases)
    for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call) and
                 isinstance(n.func, ast.Name) and n.func.id == name]:
        if id(call) not in threaded:
            # (the first accumulator: the zeros of the array whose sensitivity it is,
            # where that is a parameter given by name; else None. One type for `acc`:
            # B_f is compiled for one signature, which Numba can cache.)
            x = call.args[same] if same is not None and same < len(call.args) else None
            call.args.append(_call("_nt_zeros_for", [_name(x.id)])
                             if isinstance(x, ast.Name) else ast.Constant(None))
    ast.fix_missing_locations(tree)
    return True


def _summed_into(b: ast.FunctionDef, aliases: dict[str, str]) -> int | None:
    """The place among `b`'s parameters of the array every sum into the accumulator is
    shaped like (the `x` of each `add_element` and `scatter_add_known`, a parameter
    never rebound, or a name bound only to it), or None."""
    params = [a.arg for a in b.args.args]
    xs = set()
    for n in ast.walk(b):
        if _is_call(n, "_nt_add_element", 4, aliases):
            xs.add(n.args[2])  # type: ignore[attr-defined]
        elif _is_call(n, "_nt_scatter_add_known", 4, aliases):
            xs.add(n.args[1])  # type: ignore[attr-defined]
    names = {aliases.get(x.id, x.id) if isinstance(x, ast.Name) else None for x in xs}
    if len(names) != 1 or (x := names.pop()) not in params or any(
            isinstance(n, ast.Name) and n.id == x and not isinstance(n.ctx, ast.Load)
            for n in ast.walk(b)):
        return None
    return params.index(x)


def _uses(block: list[ast.stmt], name: str) -> list[ast.Name]:
    """The names `name` in `block` (a block ending in a return: no other path reaches
    what it binds, and what is bound before it is bound again where it matters)."""
    return [n for s in block for n in ast.walk(s) if isinstance(n, ast.Name) and n.id == name]


def _is_call(node: ast.AST, fn: str, arity: int, aliases: dict[str, str]) -> bool:
    """Whether `node` calls the helper `fn` (by its name or a name bound to it only)."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
        aliases.get(node.func.id, node.func.id) == fn and \
        len(node.args) == arity and not node.keywords


def _aliases(b: ast.FunctionDef) -> dict[str, str]:
    """The names `b` binds only to a helper (`_gadd = _nt_gadd`), with the helper's name."""
    values: dict[str, set[str]] = {}
    counts: dict[str, int] = {}  # (bindings to a helper)
    stores: dict[str, int] = {}  # (bindings of any kind)
    for n in ast.walk(b):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and \
                isinstance(t := n.targets[0], ast.Name) and isinstance(n.value, ast.Name) and \
                n.value.id.startswith("_nt_"):
            values.setdefault(t.id, set()).add(n.value.id)
            counts[t.id] = counts.get(t.id, 0) + 1
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            stores[n.id] = stores.get(n.id, 0) + 1
    params = {a.arg for a in b.args.args}
    return {k: next(iter(v)) for k, v in values.items()
            if len(v) == 1 and k not in params and counts[k] == stores.get(k, 0)}


def _return_plan(b: ast.FunctionDef, block: list[ast.stmt], at: int, name: str,
                 aliases: dict[str, str]) -> Callable[[], set[int]] | None:
    """How `block[at]`, a return of `b`, gives `gadd_owned(acc, what it gave)`: a
    function making the change (it returns the ids of the calls of `b` it gave an
    accumulator), or None where the return has no form `accumulate_in_place` knows."""
    ret = block[at]
    assert isinstance(ret, ast.Return)
    plan = _value_plan(b, block, at, ret.value, name, aliases)
    if plan is None:
        return None

    def run() -> set[int]:
        value, threaded = plan(_name(ACC), True)
        ret.value = value
        return threaded
    return run


# (what a value plus the accumulator is: the accumulator's expression, and whether it is
# `_nt_acc` itself, a name a loop's sum may start from) -> (the expression, the calls of
# `B_f` given an accumulator)
_Plan = Callable[[ast.expr, bool], tuple[ast.expr, set[int]]]


def _value_plan(b: ast.FunctionDef, block: list[ast.stmt], at: int, value: ast.expr | None,
                name: str, aliases: dict[str, str]) -> _Plan | None:
    """`_return_plan` for the value `value` of `block[at]`: None (the zero); an element's
    sensitivity; `gadd_owned` of two such values, of which at most one is a loop's sum;
    an item of a tuple display bound in the block (an `if`'s value and what it saved);
    a name bound to another (`t = v`), to an element's sensitivity, or a loop's sum
    (`_loop_sum_plan`); a name's plan rewrites where it is bound, so it is given `_nt_acc`
    itself (`own`)."""
    if value is None or isinstance(value, ast.Constant) and value.value is None:
        return lambda acc, own: (acc, set())
    if _is_call(value, "_nt_element_sens_small", 3, aliases):
        assert isinstance(value, ast.Call)
        args = value.args
        return lambda acc, own: (_call("_nt_add_element", [acc, *args]), set())
    if _is_call(value, "_nt_gadd_owned", 2, aliases):
        assert isinstance(value, ast.Call)
        parts = [_resolved(a, block, at) for a in value.args]
        plans = [_value_plan(b, block, at, a, name, aliases) for a in parts]
        sums = [a for a in parts if isinstance(a, ast.Name)]
        if any(p is None for p in plans) or len(sums) > 1 or \
                any(_is_call(a, "_nt_gadd_owned", 2, aliases) for a in parts):
            return None
        # (the loop's sum first: it starts from the accumulator itself)
        order = sorted(zip(parts, plans, strict=True),
                       key=lambda ap: not isinstance(ap[0], ast.Name))

        def both(acc: ast.expr, own: bool) -> tuple[ast.expr, set[int]]:
            threaded: set[int] = set()
            for _, plan in order:
                assert plan is not None
                acc, more = plan(acc, own)
                own = False
                threaded |= more
            return acc, threaded
        return both
    if isinstance(value, ast.Name):
        v = value.id
        # (`t = v; return t`, `t` named nowhere else: the sum `v`)
        while len(uses := _uses(block, v)) == 2 and (bind := next(
                (s for s in block[:at] if isinstance(s, ast.Assign) and len(s.targets) == 1
                 and _is_name(s.targets[0], v) and isinstance(s.value, ast.Name)),
                None)) is not None and any(u is bind.targets[0] for u in uses):
            v = bind.value.id  # type: ignore[attr-defined]
        binds = [s for s in block[:at] if isinstance(s, ast.Assign) and len(s.targets) == 1
                 and _is_name(s.targets[0], v)]
        if len(binds) == 1 and len(_uses(block, v)) == 2 and \
                _is_call(element := binds[0].value, "_nt_element_sens_small", 3, aliases):
            # (an element's sensitivity bound to a name: added into acc there)
            args = element.args  # type: ignore[attr-defined]

            def at_bind(acc: ast.expr, own: bool) -> tuple[ast.expr, set[int]]:
                assert own  # (acc is `_nt_acc`, which the binding can read)
                binds[0].value = _call("_nt_add_element", [acc, *args])
                return _name(v), set()
            return at_bind
        return _loop_sum_plan(b, block, at, v, name, aliases)
    resolved = _resolved(value, block, at)
    if resolved is not value:
        return _value_plan(b, block, at, resolved, name, aliases)
    return None


def _resolved(value: ast.expr, block: list[ast.stmt], at: int) -> ast.expr:
    """`t[i]`, where `t` is bound once in `block[:at]` to a tuple display and read only
    by constant items: that item (a copy); else `value`."""
    if not (isinstance(value, ast.Subscript) and isinstance(t := value.value, ast.Name) and
            isinstance(k := value.slice, ast.Constant) and type(k.value) is int):
        return value
    binds = [s for s in block[:at] if isinstance(s, ast.Assign) and len(s.targets) == 1 and
             _is_name(s.targets[0], t.id)]
    uses = _uses(block, t.id)
    if len(binds) != 1 or not isinstance(display := binds[0].value, ast.Tuple) or \
            not 0 <= k.value < len(display.elts):
        return value
    parents = {id(c): n for s in block for n in ast.walk(s) for c in ast.iter_child_nodes(n)}
    for u in uses:
        if u is binds[0].targets[0]:
            continue
        sub = parents.get(id(u))
        if not (isinstance(sub, ast.Subscript) and sub.value is u and
                isinstance(sub.slice, ast.Constant) and type(sub.slice.value) is int):
            return value
    return copy.deepcopy(display.elts[k.value])


def _loop_sum_plan(b: ast.FunctionDef, block: list[ast.stmt], at: int, v: str, name: str,
                   aliases: dict[str, str]) -> _Plan | None:
    """`v = None; <loop whose body updates v = gadd_owned(v, w)>; return v` (`v` read
    nowhere else): see `accumulate_in_place`."""
    uses = _uses(block, v)
    if len(uses) != 4 or v in {a.arg for a in b.args.args}:
        return None
    init = next((i for i, s in enumerate(block[:at]) if isinstance(s, ast.Assign) and
                 len(s.targets) == 1 and _is_name(s.targets[0], v)), None)
    if init is None or not (isinstance(c := block[init].value, ast.Constant) and  # type: ignore[attr-defined]
                            c.value is None):
        return None
    loops = [s for s in block[init + 1:at] if isinstance(s, (ast.While, ast.For)) and
             any(u in ast.walk(s) for u in uses)]
    if len(loops) != 1 or loops[0].orelse:
        return None
    body = loops[0].body
    update = _gadd_update(body, v, aliases)
    if update is None:
        return None
    stmt_at, slot, w = update
    chain = _chain_to_call(b, block, body, stmt_at, w, name, aliases)
    if chain is None:
        return None
    call = chain

    def loop_sum(acc: ast.expr, own: bool) -> tuple[ast.expr, set[int]]:
        assert own  # (a loop's sum starts from the accumulator: see `_value_plan`)
        block[init].value = acc  # type: ignore[attr-defined]
        call.args.append(_name(v))
        slot.value = _name(w)
        return _name(v), {id(call)}
    return loop_sum


class _Slot:
    """Where a value sits in a statement (`value`, settable)."""

    def __init__(self, parent: ast.AST, field: str, index: int | None) -> None:
        self.parent, self.field, self.index = parent, field, index

    @property
    def value(self) -> ast.expr:
        got = getattr(self.parent, self.field)
        return got if self.index is None else got[self.index]  # type: ignore[no-any-return]

    @value.setter
    def value(self, new: ast.expr) -> None:
        if self.index is None:
            setattr(self.parent, self.field, new)
        else:
            getattr(self.parent, self.field)[self.index] = new


def _gadd_update(body: list[ast.stmt], v: str, aliases: dict[str, str]
                 ) -> tuple[int, _Slot, str] | None:
    """The statement of `body` binding `v = gadd_owned(v, w)` (alone or as an item of a
    tuple assignment), where the value sits, and `w` (a name)."""
    for i, s in enumerate(body):
        if not (isinstance(s, ast.Assign) and len(s.targets) == 1):
            continue
        target = s.targets[0]
        slot: _Slot | None = None
        if _is_name(target, v):
            slot = _Slot(s, "value", None)
        elif isinstance(target, ast.Tuple) and isinstance(s.value, ast.Tuple) and \
                len(target.elts) == len(s.value.elts):
            k = next((k for k, t in enumerate(target.elts) if _is_name(t, v)), None)
            if k is not None:
                slot = _Slot(s.value, "elts", k)
        if slot is None:
            continue
        value = slot.value
        if not _is_call(value, "_nt_gadd_owned", 2, aliases):
            return None
        a, c = value.args  # type: ignore[attr-defined]
        if _is_name(a, v) and isinstance(c, ast.Name):
            return i, slot, c.id
        if _is_name(c, v) and isinstance(a, ast.Name):
            return i, slot, a.id
        return None
    return None


def _chain_to_call(b: ast.FunctionDef, block: list[ast.stmt], body: list[ast.stmt],
                   before: int, w: str, name: str, aliases: dict[str, str]
                   ) -> ast.Call | None:
    """The call of `name` whose result `w` is, where `w` is bound once in `block`, in
    `body[:before]`, and read once: by `name(...)`, or by `scatter_add_known(u, ...)`
    of such a `u`."""
    while True:
        uses = _uses(block, w)
        binds = [i for i, s in enumerate(body[:before]) if any(
            isinstance(n, ast.Name) and n.id == w and isinstance(n.ctx, ast.Store)
            for n in ast.walk(s))]
        if len(uses) != 2 or len(binds) != 1 or w in {a.arg for a in b.args.args}:
            return None
        stmt = body[binds[0]]
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and
                _is_name(stmt.targets[0], w)):
            return None
        value = stmt.value
        if isinstance(value, ast.Call) and _is_name(value.func, name) and not value.keywords:
            return value
        if _is_call(value, "_nt_scatter_add_known", 4, aliases) and \
                isinstance(u := value.args[0], ast.Name):  # type: ignore[attr-defined]
            w, before = u.id, binds[0]
            continue
        return None


# --- the items of every call's loop in one list ----------------------------------------------


def share_item_lists(tree: ast.Module) -> int:
    """For each pair `lower_recursive_records` rewrote, once the module is lowered: the
    list of saved items that each call of `J_f` makes for its loop (`_nt_itemsN = []`,
    a stack `(items, start, len(items))` in its record, `linked stacks` below) is one
    list for the whole run, passed down like the records' lists, in which each item
    names the one its call saved before it (a linked stack by index: the callee's items
    come between a call's own). Its backward loop follows those links instead of
    counting down. A Numba list made per call was most of the forward pass of the
    determinant's gradient (3,620 lists for a 7x7 matrix). Where the pair has another
    shape (not exactly one such list in `J_f` and its probe, one backward loop over it
    in `B_f`), nothing changes. Returns how many pairs were rewritten."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    done = 0
    for b in list(functions.values()):
        if not (b.args.args and b.args.args[0].arg == "_nt_ref"):
            continue
        f = b.name[2:]
        j, probe = functions.get("J_" + f), functions.get("P1_" + f)
        arena, maker = f"_nt_arena_{f}", f"Q1_{f}"
        if j is None or probe is None or maker in functions or \
                arena in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}:
            continue
        own, theirs, pop = _item_list(j), _item_list(probe), _pop_loop(b)
        if own is None or theirs is None or pop is None or own.width != theirs.width:
            continue
        callers = [fn for fn in functions.values()
                   if fn not in (j, b, probe) and _calls_of(fn, j.name)]
        made = [_records_made(fn, f) for fn in callers]
        if any(m is None for m in made):
            continue
        maker_fn = _renamed(probe, maker, copy.deepcopy(probe.body))
        _link_items(j, own, arena, fresh=False)
        _link_items(probe, theirs, theirs.name, fresh=True)
        body = maker_fn.body
        maker_list = _item_list(maker_fn)
        assert maker_list is not None
        _link_items(maker_fn, maker_list, maker_list.name, fresh=True)
        body[-1] = ast.Return(_name(maker_list.name))
        _follow_links(pop, own.width)
        j.args.args.append(ast.arg(arena))
        for call in _calls_of(j, j.name):
            call.args.append(_name(arena))
        for fn, m in zip(callers, made, strict=True):
            assert m is not None
            stmts, at, typed, probe_call = m
            stmts.insert(at + 1, ast.Assign([ast.Name(arena, ast.Store())],
                                            ast.List([], ast.Load())))
            typed.append(ast.Expr(ast.Call(ast.Attribute(_name(arena), "extend", ast.Load()),
                                           [_call(maker, copy.deepcopy(probe_call.args))], [])))
            for call in _calls_of(fn, j.name):
                call.args.append(_name(arena))
        tree.body.insert(tree.body.index(probe) + 1, maker_fn)
        done += 1
    if done:
        ast.fix_missing_locations(tree)
    return done


class _ItemList(NamedTuple):
    """A function's one list of saved items (`_item_list`)."""
    name: str
    made: ast.Assign  # (`X = []`)
    start: ast.Assign  # (`S = len(X)`)
    width: int  # (the items' length)
    appends: list[ast.Expr]
    stack: ast.Tuple  # (`(X, S, len(X))`)


def _item_list(fn: ast.FunctionDef) -> _ItemList | None:
    """The one list of saved items `fn` makes: its name, `X = []`, `S = len(X)`, the
    items' length, its appends (each of a tuple display of that length), and the stack
    display `(X, S, len(X))`; None where `fn` has not exactly that."""
    made = [s for s in ast.walk(fn) if isinstance(s, ast.Assign) and len(s.targets) == 1 and
            isinstance(t := s.targets[0], ast.Name) and t.id.startswith("_nt_items") and
            isinstance(s.value, ast.List) and not s.value.elts]
    if len(made) != 1:
        return None
    x = made[0].targets[0].id  # type: ignore[attr-defined]
    uses = [n for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id == x]
    parents = _parents(fn)
    start: ast.Assign | None = None
    appends: list[ast.Expr] = []
    stack: ast.Tuple | None = None
    width = -1
    for u in uses:
        up = parents.get(id(u))
        if u is made[0].targets[0]:
            continue
        if isinstance(up, ast.Call) and _is_name(up.func, "len") and \
                isinstance(s := parents.get(id(up)), ast.Assign) and s.value is up and \
                len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) and start is None:
            start = s
        elif isinstance(up, ast.Attribute) and up.attr == "append" and \
                isinstance(call := parents.get(id(up)), ast.Call) and len(call.args) == 1 and \
                isinstance(item := call.args[0], ast.Tuple) and \
                isinstance(e := parents.get(id(call)), ast.Expr) and \
                width in (-1, len(item.elts)):
            width = len(item.elts)
            appends.append(e)
        elif isinstance(up, ast.Tuple) and stack is None and len(up.elts) == 3 and \
                up.elts[0] is u:
            stack = up
        elif not (isinstance(up, ast.Call) and _is_name(up.func, "len") and stack is not None
                  and up is stack.elts[2]):
            return None
    if start is None or stack is None or not appends or \
            not _is_name(stack.elts[1], start.targets[0].id):  # type: ignore[attr-defined]
        return None
    s_name = start.targets[0].id  # type: ignore[attr-defined]
    if sum(1 for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id == s_name) != 2:
        return None
    return _ItemList(x, made[0], start, width, appends, stack)


def _link_items(fn: ast.FunctionDef,
                found: _ItemList, into: str, fresh: bool) -> None:
    """`fn`'s items appended to `into`, each with the index of the one before it (the
    stack's top, -1 at first), the stack `(into, top, 0)`; `fresh`: `fn` still makes
    the list (a probe), else it is a parameter."""
    made, start, appends, stack = found.made, found.start, found.appends, found.stack
    top = start.targets[0].id  # type: ignore[attr-defined]
    start.value = ast.UnaryOp(ast.USub(), ast.Constant(1))
    for block in _blocks(fn):
        for e in [a for a in appends if any(s is a for s in block)]:
            at = next(i for i, s in enumerate(block) if s is e)
            call = e.value
            assert isinstance(call, ast.Call) and isinstance(call.args[0], ast.Tuple)
            item = ast.Tuple([*call.args[0].elts, _name(top)], ast.Load())
            block[at:at + 1] = [
                ast.Expr(ast.Call(ast.Attribute(_name(into), "append", ast.Load()), [item], [])),
                ast.Assign([ast.Name(top, ast.Store())], ast.BinOp(
                    _call("len", [_name(into)]), ast.Sub(), ast.Constant(1)))]
        if not fresh and made in block:
            block.remove(made)
    stack.elts = [_name(into), _name(top), ast.Constant(0)]


def _pop_loop(b: ast.FunctionDef) -> tuple[ast.Tuple, ast.While, ast.Assign, ast.BinOp] | None:
    """`B_f`'s one backward loop over a stack (`L, low, k = (S[0], S[1], S[2] - 1)`, `while
    k >= low:`, `saved = L[k]` first in it, `k - 1` its next `k`): those parts."""
    found = []
    for block in _blocks(b):
        for i, s in enumerate(block):
            if not (isinstance(s, ast.Assign) and len(s.targets) == 1 and
                    isinstance(t := s.targets[0], ast.Tuple) and len(t.elts) == 3 and
                    all(isinstance(e, ast.Name) and e.id.startswith(p)
                        for e, p in zip(t.elts, ("_nt_list", "_nt_low", "_nt_k"), strict=True))
                    and isinstance(v := s.value, ast.Tuple) and len(v.elts) == 3):
                continue
            names = [e.id for e in t.elts]  # type: ignore[attr-defined]
            loop = block[i + 1] if i + 1 < len(block) else None
            if not (isinstance(loop, ast.While) and loop.body and
                    isinstance(first := loop.body[0], ast.Assign) and len(first.targets) == 1
                    and isinstance(first.targets[0], ast.Name) and
                    isinstance(first.value, ast.Subscript) and
                    _is_name(first.value.value, names[0]) and
                    _is_name(first.value.slice, names[2])):
                return None
            steps = [n for n in ast.walk(loop) if isinstance(n, ast.BinOp) and
                     _is_name(n.left, names[2]) and isinstance(n.op, ast.Sub)]
            uses = [n for n in ast.walk(loop) if _is_name(n, names[2])]
            if len(steps) != 1 or len(uses) != 4:  # (the test, the read, the step, its target)
                return None
            found.append((v, loop, first, steps[0]))
    return found[0] if len(found) == 1 else None


def _follow_links(pop: tuple[ast.Tuple, ast.While, ast.Assign, ast.BinOp], width: int) -> None:
    """The backward loop `pop` walks a linked stack: from the top it reads, to the item
    each names (the last of the item)."""
    start, loop, first, step = pop
    s = start.elts[0].value  # type: ignore[attr-defined]
    start.elts[1:] = [ast.Constant(0), ast.Subscript(copy.deepcopy(s), ast.Constant(1),
                                                     ast.Load())]
    saved = first.targets[0].id  # type: ignore[attr-defined]
    parents = _parents(loop)
    holder = parents[id(step)]
    replacement = ast.Subscript(_name(saved), ast.Constant(width), ast.Load())
    for field, value in ast.iter_fields(holder):
        if value is step:
            setattr(holder, field, replacement)
        elif isinstance(value, list):
            value[:] = [replacement if v is step else v for v in value]


def _records_made(fn: ast.FunctionDef, f: str
                  ) -> tuple[list[ast.stmt], int, list[ast.stmt], ast.Call] | None:
    """Where `fn` makes the records' lists of `f` (`_make_lists`): the block, the place
    of the second list, the body of the `if _nt_never():` typing them, and its call of
    the probe of the recursive branch."""
    second = f"{_LISTS[1]}_{f}"
    for block in _blocks(fn):
        for i, s in enumerate(block):
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and \
                    _is_name(s.targets[0], second) and i + 1 < len(block) and \
                    isinstance(typed := block[i + 1], ast.If) and \
                    _is_call(typed.test, "_nt_never", 0, {}):
                probe = [c for c in _calls_of(typed, f"P1_{f}")]
                if len(probe) == 1:
                    return block, i, typed.body, probe[0]
    return None
