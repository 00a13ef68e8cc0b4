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
    return and `record` is only read, and only by item."""
    if not b.body or not isinstance(b.body[-1], ast.Return):
        return None
    if any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not b for n in ast.walk(b)):
        return None
    parents = {id(c): n for n in ast.walk(b) for c in ast.iter_child_nodes(n)}
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
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
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


def _blocks(node: ast.AST) -> list[list[ast.stmt]]:
    """The statement lists of `node`, outermost first."""
    out: list[list[ast.stmt]] = []
    for n in ast.walk(node):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(n, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                out.append(block)
    return out
