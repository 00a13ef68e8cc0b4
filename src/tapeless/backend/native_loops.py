"""Loop state in native code: linked stacks as lists, sums of element sensitivities
in place.

The derivative of a loop that the optimizer could not give a Python list (`lower_stacks`
in `opt/loops.py`: the inner loop of a loop nest, whose stack is saved on the outer
loop's stack) saves its values on a linked stack of pairs: `stack = None` before the
loop, `stack = (saved, stack)` in it, and a backward loop
`while stack is not None: rest = stack[1]; saved = stack[0]; ...; stack = rest`.
Numba cannot type a tuple that nests one level deeper each turn. This module rewrites
such a stack, in the generated module's source, as a list that the forward loop appends
to and the backward loop reads from its end by an index (without popping: a stack read
twice reads the same values).

The rewrite is made only where it cannot be observed: the list is made fresh where the
linked stack starts (`stack = None`), nothing reads it while the loop that pushes runs,
and nothing pushes onto it after that loop; the backward loop reads it only through
`[0]` and `[1]` and passes `[1]` on as its next state. Any push left as a pair keeps
the module off the native backend (the lowering refuses it), so every backward loop
rewritten reads a list.

A backward loop that reads `x[j]` forward gathers its sensitivity as
`d_x = gadd(d_x, g)` with `g = getitem_sens(d, x, j)`: an array of x's shape, zero but
at j, made each turn. Where `d_x` starts as ZERO (`None`) right before the loop and is
named in the loop only there, each array it holds is made by that sum and seen by no one
else until the loop ends, so the sum can go into it in place (`_nt_scatter_into`); where
x is a parameter, `d_x` starts as x's zeros (`_nt_zeros_for`), the same sum: the loop
then never tests for None.
Any other sum `d_x = gadd(d_x, g)` of such an accumulator copies the first `g` and adds
the others into that copy (`_nt_add_into`).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from typing import cast

from .native_ast import parents as _parents


def lower_linked_stacks(tree: ast.Module) -> int:
    """Rewrite the linked stacks of `tree` as lists (see the module's docstring); returns
    how many stacks were rewritten (backward loops are rewritten only if one was)."""
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    counter = itertools.count(1)
    for fn in scopes:
        _join_pushes(fn)
    pushed = sum(_lower_pushes(fn, counter) for fn in scopes)
    if pushed:
        for fn in scopes:
            _lower_pops(fn, counter)
    return pushed


def lower_item_sums(tree: ast.Module) -> int:
    """Rewrite the sums of element sensitivities of `tree`'s loops in place (see the
    module's docstring); returns how many were rewritten."""
    done = 0
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for stmts in list(_statement_lists(fn)):
            for i, start in enumerate(stmts):
                if isinstance(start, ast.Assign) and len(start.targets) == 1 and \
                        isinstance(start.targets[0], ast.Name) and _is_zero(start.value):
                    done += _lower_item_sum(fn, stmts, i, start.targets[0].id)
    return done


def _lower_item_sum(fn: ast.FunctionDef, stmts: list[ast.stmt], i: int, acc: str) -> int:
    """`acc = None` at `stmts[i]`, then a loop in which `acc` appears only as
    `acc = _gadd(acc, g)` (an element sensitivity where `g = _getitem_sens(...)` is named
    nowhere else)."""
    loops = [s for s in stmts[i + 1:] if isinstance(s, (ast.For, ast.While))]
    if not loops:
        return 0
    loop = loops[0]
    if any(_is_name(n, acc) for s in stmts[i + 1:stmts.index(loop)] for n in ast.walk(s)):
        return 0
    sums: list[tuple[ast.Call, ast.Name]] = []  # (the `_gadd` call, the `g` it adds)
    for node in ast.walk(loop):
        if isinstance(node, ast.Assign):
            for target, value in _pairs(node) or []:
                if _is_name(target, acc) and isinstance(value, ast.Call) and \
                        _calls(value, "gadd") and len(value.args) == 2 and \
                        all(isinstance(a, ast.Name) for a in value.args) and \
                        sum(_is_name(a, acc) for a in value.args) == 1:
                    other = value.args[1] if _is_name(value.args[0], acc) else value.args[0]
                    assert isinstance(other, ast.Name)
                    sums.append((value, other))
    if not sums:
        return 0
    allowed = {id(n) for call, _ in sums for n in ast.walk(call)}
    allowed |= {id(t) for node in ast.walk(loop) if isinstance(node, ast.Assign)
                for t, v in _pairs(node) or [] if any(v is call for call, _ in sums)}
    if any(_is_name(n, acc) and id(n) not in allowed for n in ast.walk(loop)) or \
            any(isinstance(n, (ast.FunctionDef, ast.Lambda)) for n in ast.walk(loop)):
        return 0
    done, scattered = 0, []
    for call, g in sums:
        made = [s for s in ast.walk(loop) if isinstance(s, ast.Assign) and
                len(s.targets) == 1 and _is_name(s.targets[0], g.id) and
                _calls(s.value, "getitem_sens")]
        uses = [n for n in _own_nodes(fn) if _is_name(n, g.id)]
        call.func = ast.copy_location(ast.Name("_nt_add_into", ast.Load()), call.func)
        call.args = [ast.Name(acc, ast.Load()), g]
        done += 1
        if len(made) != 1 or len(uses) != 2:
            continue
        assert isinstance(made[0].value, ast.Call)
        made[0].value.func = ast.copy_location(ast.Name("_nt_item_sens", ast.Load()),
                                               made[0].value.func)
        call.func = ast.copy_location(ast.Name("_nt_scatter_into", ast.Load()), call.func)
        scattered.append(made[0].value.args[1])
    # Where every sum scatters into one parameter's shape, the accumulator starts as an
    # array of zeros (`_nt_zeros_for`): no test for None in the loop.
    params = {a.arg for a in fn.args.args}
    first = scattered[0] if scattered else None
    if isinstance(first, ast.Name) and len(scattered) == len(sums) and \
            all(_is_name(x, first.id) for x in scattered) and first.id in params and \
            not any(isinstance(n, ast.Name) and n.id == first.id and
                    isinstance(n.ctx, ast.Store) for n in _own_nodes(fn)):
        start = stmts[i]
        assert isinstance(start, ast.Assign)
        start.value = ast.copy_location(ast.Call(ast.Name("_nt_zeros_for", ast.Load()),
                                                 [ast.Name(first.id, ast.Load())], []),
                                        start.value)
    return done


def lower_list_growth(tree: ast.Module) -> int:
    """`xs = []` before a loop that only grows it, `xs = xs + [a, b]`, as appends: Numba
    cannot type the empty list from a concatenation, and can from `append`. The lists
    concatenated in the loop are seen by no one until it ends, so appending to one list
    gives the same list. The same through a name, `t = xs + [a, b]; ...; xs = t`
    (`_lower_growth_via`; `t` becomes `xs`). Returns how many lists were rewritten."""
    done = 0
    counter = itertools.count(1)
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for stmts in list(_statement_lists(fn)):
            for i, start in enumerate(stmts):
                if isinstance(start, ast.Assign) and len(start.targets) == 1 and \
                        isinstance(start.targets[0], ast.Name) and \
                        isinstance(start.value, ast.List) and not start.value.elts:
                    name = start.targets[0].id
                    done += _lower_growth(stmts, i, name) or \
                        _lower_growth_via(fn, stmts, i, name, counter)
    return done


def _lower_growth(stmts: list[ast.stmt], i: int, name: str) -> int:
    loop = next((s for s in stmts[i + 1:] if isinstance(s, (ast.For, ast.While))), None)
    if loop is None or any(_is_name(n, name) for s in stmts[i + 1:stmts.index(loop)]
                           for n in ast.walk(s)):
        return 0
    grows = [s for s in ast.walk(loop) if isinstance(s, ast.Assign) and len(s.targets) == 1
             and _is_name(s.targets[0], name) and isinstance(s.value, ast.BinOp) and
             isinstance(s.value.op, ast.Add) and _is_name(s.value.left, name) and
             isinstance(s.value.right, ast.List) and s.value.right.elts]
    inside = {id(s.targets[0]) for s in grows}
    inside |= {id(s.value.left) for s in grows if isinstance(s.value, ast.BinOp)}
    if not grows or any(_is_name(n, name) and id(n) not in inside for n in ast.walk(loop)) \
            or any(isinstance(n, (ast.FunctionDef, ast.Lambda)) for n in ast.walk(loop)):
        return 0
    for grow in grows:
        assert isinstance(grow.value, ast.BinOp) and isinstance(grow.value.right, ast.List)
        appends = [ast.copy_location(ast.Expr(ast.Call(
            ast.Attribute(ast.Name(name, ast.Load()), "append", ast.Load()), [e], [])), grow)
            for e in grow.value.right.elts]
        for block in _blocks(loop):
            if grow in block:
                at = block.index(grow)
                block[at:at + 1] = appends
    return len(grows)


def _lower_growth_via(fn: ast.FunctionDef, stmts: list[ast.stmt], i: int, name: str,
                      counter: itertools.count) -> int:
    """`xs = []` before a loop that grows it as `t = xs + [a, b]` and later, in the same
    block, `xs = t` (the derivative of a loop saves the list it had before growing it: the
    LSTM's `new_state`): the growth becomes `n = len(xs)` and appends, `t` is `xs`
    itself (`xs = t` goes), and a read of `xs` between the two statements the list as it
    was, `xs[:n]` (a copy; `len(xs)` is `n`). Only where nothing else in the loop names
    `xs`, `t` is named only there, and no `break`, `continue` or `return` can skip
    `xs = t` after the appends."""
    loop = next((s for s in stmts[i + 1:] if isinstance(s, (ast.For, ast.While))), None)
    if loop is None or any(_is_name(n, name) for s in stmts[i + 1:stmts.index(loop)]
                           for n in ast.walk(s)):
        return 0
    if any(isinstance(n, (ast.FunctionDef, ast.Lambda)) for n in ast.walk(loop)):
        return 0
    for block in _blocks(loop):
        for g_at, grow in enumerate(block):
            if not (isinstance(grow, ast.Assign) and len(grow.targets) == 1 and
                    isinstance(grow.targets[0], ast.Name) and
                    isinstance(grow.value, ast.BinOp) and isinstance(grow.value.op, ast.Add)
                    and _is_name(grow.value.left, name) and
                    isinstance(grow.value.right, ast.List) and grow.value.right.elts and
                    not any(_is_name(n, name) for e in grow.value.right.elts
                            for n in ast.walk(e))):
                continue
            grown = grow.targets[0].id
            rebind = next((s for s in block[g_at + 1:] if isinstance(s, ast.Assign) and
                           any(_is_name(t, name) and _is_name(v, grown)
                               for t, v in _pairs(s) or [])), None)
            if rebind is None:
                return 0
            between = block[g_at + 1:block.index(rebind)]
            if any(isinstance(n, (ast.Break, ast.Continue, ast.Return))
                   for s in between for n in ast.walk(s)):
                return 0
            rebind_nodes = {id(t) for t, v in _pairs(rebind) or [] if _is_name(t, name)}
            rebind_nodes |= {id(v) for t, v in _pairs(rebind) or [] if _is_name(v, grown)}
            reads = [n for s in between for n in ast.walk(s) if _is_name(n, name)]
            if any(isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) for n in reads):
                return 0
            allowed = {id(n) for n in reads} | rebind_nodes | {id(grow.value.left)}
            if any(_is_name(n, name) and id(n) not in allowed for n in ast.walk(loop)):
                return 0
            uses = [n for n in _own_nodes(fn) if _is_name(n, grown)]
            if len(uses) != 2 or any(n is not grow.targets[0] and id(n) not in rebind_nodes
                                     for n in uses):
                return 0
            size = f"_nt_len{next(counter)}"
            load = ast.Load()
            _replace_reads(between, name, size)
            new: list[ast.stmt] = [ast.Assign([ast.Name(size, ast.Store())],
                              ast.Call(ast.Name("len", load), [ast.Name(name, load)], []))]
            new += [ast.Expr(ast.Call(ast.Attribute(ast.Name(name, load), "append", load),
                                      [e], [])) for e in grow.value.right.elts]
            # (`t` is `xs` itself now: `t = xs` and `xs = t` go. Numba's type inference
            # does not refine an empty list's type through such a copy of its name.)
            at = block.index(rebind)
            rest = _without(rebind, name)
            block[at:at + 1] = [] if rest is None else [rest]
            block[g_at:g_at + 1] = [ast.copy_location(s, grow) for s in new]
            return 1
    return 0


def _replace_reads(stmts: list[ast.stmt], name: str, size: str) -> None:
    """In `stmts`, `len(name)` as `size` and any other read of `name` as `name[:size]`."""
    load = ast.Load()

    class Reads(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            if _is_name(node.func, "len") and len(node.args) == 1 and \
                    _is_name(node.args[0], name) and not node.keywords:
                return ast.copy_location(ast.Name(size, load), node)
            self.generic_visit(node)
            return node

        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id != name:
                return node
            return ast.copy_location(ast.Subscript(
                ast.Name(name, load), ast.Slice(None, ast.Name(size, load), None), load), node)

    for k, s in enumerate(stmts):
        stmts[k] = Reads().visit(s)


def lower_saved_lengths(tree: ast.Module) -> int:
    """A list saved only for its length: where the module's one lowered stack
    (`_nt_itemsN.append((..., xs[:n], ...))`, the copy `lower_list_growth` makes of a
    growing list) is popped only as `saved = _nt_listK[k]` and every read of that item is
    `len(saved[i])`, or `v = saved[i]` with `v` (bound once) read only as `len(v)`, the
    stack keeps `n` and the reads read it: no list copied per turn (the derivative of
    `xs + [a, b]` needs only `len(xs)`, to split the sensitivity). With one push in the
    module every stack popped holds its tuples. Returns how many items were rewritten."""
    nodes = list(ast.walk(tree))
    parents = _parents(tree)
    appends = [n for n in nodes if isinstance(n, ast.Call) and
               isinstance(n.func, ast.Attribute) and n.func.attr == "append" and
               isinstance(n.func.value, ast.Name) and n.func.value.id.startswith("_nt_items")]
    if len(appends) != 1 or len(appends[0].args) != 1 or \
            not isinstance(appends[0].args[0], ast.Tuple):
        return 0
    items = appends[0].args[0].elts
    # (Every read of a popped list: `saved = _nt_listK[k]`, `saved` bound once.)
    saved: list[str] = []
    for n in nodes:
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and \
                n.value.id.startswith("_nt_list"):
            bind = parents.get(id(n))
            if not (isinstance(bind, ast.Assign) and len(bind.targets) == 1 and
                    isinstance(bind.targets[0], ast.Name) and bind.value is n):
                return 0
            saved.append(bind.targets[0].id)
    if not saved:
        return 0
    stores = [n.id for n in nodes if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)]
    stores += [n.arg for n in nodes if isinstance(n, ast.arg)]
    if any(stores.count(name) != 1 for name in saved):
        return 0
    uses: dict[int, list[ast.Subscript]] = {}
    for n in nodes:
        if isinstance(n, ast.Name) and n.id in saved and isinstance(n.ctx, ast.Load):
            item = parents.get(id(n))
            if not (isinstance(item, ast.Subscript) and item.value is n and
                    isinstance(item.slice, ast.Constant) and type(item.slice.value) is int
                    and 0 <= item.slice.value < len(items)):
                return 0
            uses.setdefault(item.slice.value, []).append(item)

    def length_of(node: ast.AST) -> ast.Call | None:
        call = parents.get(id(node))
        if isinstance(call, ast.Call) and _is_name(call.func, "len") and \
                call.args == [node] and not call.keywords:
            return call
        return None

    done = 0
    for k, item in enumerate(items):
        if not (isinstance(item, ast.Subscript) and isinstance(item.value, ast.Name) and
                isinstance(item.slice, ast.Slice) and item.slice.lower is None and
                item.slice.step is None and isinstance(item.slice.upper, ast.Name)):
            continue
        lengths: list[tuple[ast.AST, ast.Call]] = []  # (the call's parent, the call)
        for read in uses.get(k, []):
            call = length_of(read)
            bind = parents.get(id(read))
            if call is None and isinstance(bind, ast.Assign) and len(bind.targets) == 1 and \
                    isinstance(bind.targets[0], ast.Name) and bind.value is read and \
                    stores.count(bind.targets[0].id) == 1:
                v = bind.targets[0].id
                reads = [n for n in nodes if _is_name(n, v) and n is not bind.targets[0]]
                calls = [length_of(n) for n in reads]
                if not all(calls):
                    lengths = []
                    break
                lengths += [(parents[id(c)], c) for c in calls if c is not None]
            elif call is not None:
                lengths.append((parents[id(call)], call))
            else:
                lengths = []
                break
        if not lengths and uses.get(k):
            continue
        for parent, call in lengths:
            arg = call.args[0]
            for field, value in ast.iter_fields(parent):
                if value is call:
                    setattr(parent, field, arg)
                elif isinstance(value, list):
                    value[:] = [arg if v is call else v for v in value]
        items[k] = ast.copy_location(ast.Name(item.slice.upper.id, ast.Load()), item)
        done += 1
    return done


def lower_list_sens(tree: ast.Module) -> int:
    """The sensitivity of a list or tuple taken apart, as overloads Numba can type:
    `(ZERO,) * k if d is ZERO else tuple(d)` (the derivative of making a tuple or a
    list of k items) as `_nt_items_of(d, k)`, and `(ZERO, ZERO) if d is ZERO else
    (d[:n], d[n:])` (of joining two) as `_nt_split_at(d, n)`: Numba cannot make a tuple
    of a list, and does not narrow `d`'s optional type in a conditional expression.
    Returns how many were rewritten."""
    done = 0

    class Sens(ast.NodeTransformer):
        def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
            nonlocal done
            self.generic_visit(node)
            t = node.test
            if not (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and
                    len(t.ops) == 1 and isinstance(t.ops[0], ast.Is) and
                    _is_zero(t.comparators[0])):
                return node
            d = t.left.id
            body, other = node.body, node.orelse
            if isinstance(body, ast.BinOp) and isinstance(body.op, ast.Mult) and \
                    isinstance(body.left, ast.Tuple) and len(body.left.elts) == 1 and \
                    _is_zero(body.left.elts[0]) and isinstance(body.right, ast.Constant) and \
                    type(body.right.value) is int and isinstance(other, ast.Call) and \
                    _is_name(other.func, "tuple") and len(other.args) == 1 and \
                    _is_name(other.args[0], d) and not other.keywords:
                done += 1
                return ast.copy_location(ast.Call(ast.Name("_nt_items_of", ast.Load()), [
                    ast.Name(d, ast.Load()), ast.Constant(body.right.value)], []), node)
            if isinstance(body, ast.Tuple) and len(body.elts) == 2 and \
                    all(_is_zero(e) for e in body.elts) and isinstance(other, ast.Tuple) and \
                    len(other.elts) == 2 and all(
                        isinstance(e, ast.Subscript) and _is_name(e.value, d) and
                        isinstance(e.slice, ast.Slice) and e.slice.step is None
                        for e in other.elts):
                head, tail = (cast(ast.Slice, cast(ast.Subscript, e).slice)
                              for e in other.elts)  # (tested above)
                if head.lower is None and tail.upper is None and \
                        isinstance(head.upper, (ast.Name, ast.Constant)) and \
                        tail.lower is not None and ast.dump(head.upper) == ast.dump(tail.lower):
                    done += 1
                    return ast.copy_location(ast.Call(
                        ast.Name("_nt_split_at", ast.Load()),
                        [ast.Name(d, ast.Load()), head.upper], []), node)
            return node

    Sens().visit(tree)
    return done


def lower_split_items(tree: ast.Module) -> int:
    """`t = _nt_split_at(d, n); ...; b = t[1]; ...; c = _nt_items_of(b, k)` (the
    derivative of `xs + [a, b]`: the sensitivity of the joined list split, its tail then
    taken apart) as `t = _nt_split_items(d, n, k)`, whose second item is the tuple of the
    tail's k items: one list made, not two (Numba allocates each list twice, its header
    and its items). Only where `t` is read only as `t[0]` and `t[1]` and `b` (bound once)
    only by that `_nt_items_of`, which returns a tuple of k items as it is. Returns how
    many were rewritten."""
    done = 0
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        own = list(_own_nodes(fn))
        parents = {id(c): p for p in own for c in ast.iter_child_nodes(p)}
        nested = {n.id for f in ast.walk(fn) if isinstance(f, (ast.FunctionDef, ast.Lambda))
                  and f is not fn for n in ast.walk(f) if isinstance(n, ast.Name)}
        for node in own:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and
                    isinstance(node.targets[0], ast.Name) and
                    isinstance(node.value, ast.Call) and
                    _is_name(node.value.func, "_nt_split_at") and len(node.value.args) == 2):
                continue
            t = node.targets[0].id
            if t in nested:
                continue
            reads = [n for n in own if _is_name(n, t) and n is not node.targets[0]]
            if any(isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) or not (
                    isinstance(parents.get(id(n)), ast.Subscript) and
                    isinstance(parents[id(n)].slice, ast.Constant)  # type: ignore[attr-defined]
                    and parents[id(n)].slice.value in (0, 1))  # type: ignore[attr-defined]
                    for n in reads):
                continue
            tails = [parents[id(n)] for n in reads
                     if parents[id(n)].slice.value == 1]  # type: ignore[attr-defined]
            bind = parents.get(id(tails[0])) if len(tails) == 1 else None
            if not (isinstance(bind, ast.Assign) and len(bind.targets) == 1 and
                    isinstance(bind.targets[0], ast.Name) and bind.value is tails[0]):
                continue
            b = bind.targets[0].id
            if b in nested:
                continue
            uses = [n for n in own if _is_name(n, b) and n is not bind.targets[0]]
            call = parents.get(id(uses[0])) if len(uses) == 1 else None
            if not (isinstance(call, ast.Call) and _is_name(call.func, "_nt_items_of") and
                    len(call.args) == 2 and call.args[0] is uses[0] and
                    isinstance(call.args[1], ast.Constant) and
                    type(call.args[1].value) is int) or \
                    sum(1 for n in own if isinstance(n, ast.Name) and n.id == b and
                        not isinstance(n.ctx, ast.Load)) != 1:
                continue
            node.value.func = ast.copy_location(ast.Name("_nt_split_items", ast.Load()),
                                                node.value.func)
            node.value.args.append(ast.copy_location(ast.Constant(call.args[1].value),
                                                     call.args[1]))
            done += 1
    return done


def _blocks(node: ast.AST) -> list[list[ast.stmt]]:
    """The statement lists in `node` (itself a statement), functions left out."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.Lambda)):
            continue
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(n, field, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                out.append(stmts)
    return out


def _is_zero(node: ast.AST) -> bool:
    """The symbolic zero sensitivity: `_rt.ZERO` (None in native code)."""
    return isinstance(node, ast.Constant) and node.value is None or \
        isinstance(node, ast.Attribute) and _is_name(node.value, "_rt") and node.attr == "ZERO"


def _calls(node: ast.AST, helper: str) -> bool:
    """Whether `node` calls the runtime helper `helper` (`_rt.helper`, or the name
    `_helper` the generated code binds it to)."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return _is_name(f, f"_{helper}") or isinstance(f, ast.Attribute) and \
        _is_name(f.value, "_rt") and f.attr == helper


def _own_nodes(fn: ast.FunctionDef) -> Iterator[ast.AST]:
    """The nodes of `fn`'s body, not those of functions nested in it."""
    todo: list[ast.AST] = list(fn.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def _statement_lists(fn: ast.FunctionDef) -> Iterator[list[ast.stmt]]:
    yield fn.body
    for node in _own_nodes(fn):
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt) and \
                    not isinstance(node, (ast.FunctionDef, ast.Lambda)):
                yield stmts


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _pairs(stmt: ast.Assign) -> list[tuple[ast.expr, ast.expr]] | None:
    """The (target, value) pairs of `a = x` or `a, b = x, y`; None for other forms."""
    if len(stmt.targets) != 1:
        return None
    target = stmt.targets[0]
    if isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple):
        if len(target.elts) != len(stmt.value.elts) or \
                any(isinstance(e, ast.Starred) for e in target.elts + stmt.value.elts):
            return None
        return list(zip(target.elts, stmt.value.elts, strict=True))
    return [(target, stmt.value)]


def _push_of(stmt: ast.AST) -> tuple[str, ast.expr] | None:
    """(S, item) where `stmt` assigns `(item, S)` to S (alone or among others)."""
    if not isinstance(stmt, ast.Assign):
        return None
    for target, value in _pairs(stmt) or []:
        if isinstance(target, ast.Name) and isinstance(value, ast.Tuple) and \
                len(value.elts) == 2 and _is_name(value.elts[1], target.id):
            return target.id, value.elts[0]
    return None


def _without(stmt: ast.Assign, name: str) -> ast.stmt | None:
    """`stmt` without its pair that assigns `name` (None if nothing is left)."""
    pairs = [(t, v) for t, v in _pairs(stmt) or [] if not _is_name(t, name)]
    if not pairs:
        return None
    if len(pairs) == 1:
        out = ast.Assign([pairs[0][0]], pairs[0][1])
    else:
        out = ast.Assign([ast.Tuple([t for t, _ in pairs], ast.Store())],
                         ast.Tuple([v for _, v in pairs], ast.Load()))
    return ast.copy_location(out, stmt)


def _join_pushes(fn: ast.FunctionDef) -> int:
    """`T = (item, S)` right before `..., S = ..., T`, with `T` named nowhere else in
    `fn`, as the one push `..., S = ..., (item, S)` (the derivative of a loop whose body
    ends in a conditional expression pushes in two steps; the right side of the second is
    evaluated before it binds anything, so nothing reads another value). Returns how
    many were joined."""
    done = 0
    for stmts in list(_statement_lists(fn)):
        i = 0
        while i + 1 < len(stmts):
            first, second = stmts[i], stmts[i + 1]
            i += 1
            if not (isinstance(first, ast.Assign) and len(first.targets) == 1 and
                    isinstance(t := first.targets[0], ast.Name) and
                    isinstance(first.value, ast.Tuple) and len(first.value.elts) == 2 and
                    isinstance(s := first.value.elts[1], ast.Name) and
                    isinstance(second, ast.Assign)):
                continue
            pair = next(((target, value) for target, value in _pairs(second) or []
                         if _is_name(target, s.id) and _is_name(value, t.id)), None)
            if pair is None or sum(_is_name(n, t.id) for n in _own_nodes(fn)) != 2 or \
                    any(isinstance(n, (ast.FunctionDef, ast.Lambda)) for n in _own_nodes(fn)):
                continue
            value = pair[1]
            if second.value is value:
                second.value = first.value
            else:
                assert isinstance(second.value, ast.Tuple)
                second.value.elts[second.value.elts.index(value)] = first.value
            del stmts[i - 1]
            done += 1
    return done


def _lower_pushes(fn: ast.FunctionDef, counter: itertools.count) -> int:
    pushes: dict[str, list[ast.Assign]] = {}
    for node in _own_nodes(fn):
        found = _push_of(node)
        if found is not None:
            assert isinstance(node, ast.Assign)
            pushes.setdefault(found[0], []).append(node)
    lowered = 0
    for name, stmts in pushes.items():
        if _lower_push(fn, name, stmts, counter):
            lowered += 1
    return lowered


def _lower_push(fn: ast.FunctionDef, name: str, pushes: list[ast.Assign],
                counter: itertools.count) -> bool:
    """Rewrite the stack `name` if its start (`name = None`) and the loop that pushes
    onto it are statements of one block, nothing else in the loop reads or assigns it,
    and nothing else assigns it at all."""
    for stmts in _statement_lists(fn):
        for i, start in enumerate(stmts):
            if not (isinstance(start, ast.Assign) and len(start.targets) == 1 and
                    _is_name(start.targets[0], name) and
                    isinstance(start.value, ast.Constant) and start.value.value is None):
                continue
            loop = next((s for s in stmts[i + 1:] if isinstance(s, (ast.For, ast.While)) and
                         all(any(p is n for n in ast.walk(s)) for p in pushes)), None)
            if loop is None:
                return False
            between = stmts[i + 1:stmts.index(loop)]
            if any(_is_name(n, name) for s in between for n in ast.walk(s)):
                return False
            # (In the loop only the pushes name it; elsewhere only reads and the start.)
            inside_pushes = {id(n) for p in pushes for n in ast.walk(p)}
            for n in ast.walk(loop):
                if _is_name(n, name) and id(n) not in inside_pushes:
                    return False
            # (A loop that pops the stack may pass its rest on under the same name: the
            # derivative of a loop inside a loop whose backward loop was inlined next to
            # it. `_lower_pop` rewrites that loop's moves; any other store keeps it linked.)
            pops = [n for n in _own_nodes(fn) if isinstance(n, ast.While) and
                    _pops(n) == name]
            for n in _own_nodes(fn):
                if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) \
                        and n is not start.targets[0] and \
                        not any(n is t for p in pushes for t in ast.walk(p)) and \
                        not any(_moves_on(pop, n) for pop in pops):
                    return False
            # (Where no loop runs the start again, the list is made there: a recursion's
            # base case, which pushes nothing, makes none. Asked before the start is
            # replaced below.)
            again = any(isinstance(n, (ast.For, ast.While)) and
                        any(m is start for m in ast.walk(n)) for n in _own_nodes(fn))
            n = next(counter)
            items, first = f"_nt_items{n}", f"_nt_start{n}"
            load = ast.Load()
            stmts[i] = ast.copy_location(ast.Assign(
                [ast.Name(first, ast.Store())],
                ast.Call(ast.Name("len", load), [ast.Name(items, load)], [])), start)
            # (Stacks made by other runs of the loop share the list: each is a range.)
            view = ast.Assign([ast.Name(name, ast.Store())], ast.Tuple(
                [ast.Name(items, load), ast.Name(first, load),
                 ast.Call(ast.Name("len", load), [ast.Name(items, load)], [])], load))
            at = stmts.index(loop)
            stmts.insert(at + 1, ast.copy_location(view, loop))
            made = ast.copy_location(
                ast.Assign([ast.Name(items, ast.Store())], ast.List([], load)),
                fn.body[0] if again else start)
            if again:
                fn.body.insert(0, made)
            else:
                stmts.insert(i, made)
            for p in pushes:
                _replace_push(fn, p, items)
            return True
    return False


def _replace_push(fn: ast.FunctionDef, push: ast.Assign, items: str) -> None:
    found = _push_of(push)
    assert found is not None
    append = ast.copy_location(ast.Expr(ast.Call(
        ast.Attribute(ast.Name(items, ast.Load()), "append", ast.Load()), [found[1]], [])),
        push)
    rest = _without(push, found[0])
    for stmts in _statement_lists(fn):
        for i, s in enumerate(stmts):
            if s is push:
                stmts[i:i + 1] = [append] + ([rest] if rest is not None else [])
                return


def _pops(loop: ast.While) -> str | None:
    """S where `loop` is `while S is not None: ...` (no `else`)."""
    test = loop.test
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and \
            len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot) and \
            isinstance(test.comparators[0], ast.Constant) and \
            test.comparators[0].value is None and not loop.orelse:
        return test.left.id
    return None


def _moves_on(loop: ast.While, target: ast.Name) -> bool:
    """Whether `target` is S in a statement of `loop`'s body (which pops S) that moves S to
    its rest: `S = rest` or `S = S[1]` (alone or among other pairs)."""
    name = target.id
    for s in loop.body:
        if isinstance(s, ast.Assign):
            for t, v in _pairs(s) or []:
                if t is target and (isinstance(v, ast.Name) or isinstance(v, ast.Subscript)
                                    and _is_name(v.value, name) and
                                    isinstance(v.slice, ast.Constant) and v.slice.value == 1):
                    return True
    return False


def _lower_pops(fn: ast.FunctionDef, counter: itertools.count) -> None:
    for node in list(_own_nodes(fn)):
        if isinstance(node, ast.While):
            _lower_pop(fn, node, counter)


def _lower_pop(fn: ast.FunctionDef, loop: ast.While, counter: itertools.count) -> bool:
    """`while S is not None: rest = S[1]; item = S[0]...; S = rest` as a loop over the
    list S from its end, by an index; S read nowhere else in `fn`."""
    test = loop.test
    name = _pops(loop)
    if name is None:
        return False
    assert isinstance(test, ast.Compare)
    _name_rest(loop, name, counter)
    rest_stmts = [s for s in loop.body if isinstance(s, ast.Assign) and len(s.targets) == 1
                  and isinstance(s.targets[0], ast.Name) and isinstance(s.value, ast.Subscript)
                  and _is_name(s.value.value, name) and isinstance(s.value.slice, ast.Constant)
                  and s.value.slice.value == 1]
    if len(rest_stmts) != 1:
        return False
    rest_stmt = rest_stmts[0]
    assert isinstance(rest_stmt.targets[0], ast.Name)
    rest = rest_stmt.targets[0].id
    heads = [n for s in loop.body for n in ast.walk(s) if isinstance(n, ast.Subscript) and
             _is_name(n.value, name) and isinstance(n.slice, ast.Constant) and
             n.slice.value == 0]
    nexts = [s for s in loop.body if isinstance(s, ast.Assign) and
             any(_is_name(t, name) and _is_name(v, rest) for t, v in _pairs(s) or [])]
    # (No `S[0]`: the items are read by no one, `()` pushed for the count of turns.)
    if len(heads) > 1 or len(nexts) != 1:
        return False
    # S: read only by the test, `S[0]` and `S[1]`; rest: only passed on as S.
    assert isinstance(rest_stmt.value, ast.Subscript)
    allowed = {id(test.left), id(rest_stmt.value.value), *(id(h.value) for h in heads)}
    allowed |= {id(t) for s in nexts for t, v in _pairs(s) or [] if _is_name(t, name)}
    for n in _own_nodes(fn):
        if _is_name(n, name) and id(n) not in allowed:
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and \
                    not any(n is x for x in ast.walk(loop)):
                continue  # (where S is bound, before the loop)
            return False
        if _is_name(n, rest) and n is not rest_stmt.targets[0] and \
                not any(_is_name(v, rest) and n is v for s in nexts for _, v in _pairs(s) or []):
            return False
    n = next(counter)
    index, items, low = f"_nt_k{n}", f"_nt_list{n}", f"_nt_low{n}"
    load = ast.Load()
    for head in heads:
        head.slice = ast.Name(index, load)
        head.value = ast.Name(items, load)
    loop.test = ast.copy_location(ast.Compare(ast.Name(index, load), [ast.GtE()], [
        ast.Name(low, load)]), test)
    step = ast.BinOp(ast.Name(index, load), ast.Sub(), ast.Constant(1))
    nxt = nexts[0]
    pairs = [(ast.Name(index, ast.Store()), step) if _is_name(t, name) else (t, v)
             for t, v in _pairs(nxt) or []]
    replacement = ast.Assign([pairs[0][0]], pairs[0][1]) if len(pairs) == 1 else \
        ast.Assign([ast.Tuple([t for t, _ in pairs], ast.Store())],
                   ast.Tuple([v for _, v in pairs], load))
    loop.body = [ast.copy_location(replacement, nxt) if s is nxt else s
                 for s in loop.body if s is not rest_stmt]
    # (The list and the range's start read once, before the loop: S no longer changes
    # inside it, and reading a list out of a tuple per step costs a reference count.)
    start = ast.Assign([ast.Tuple([ast.Name(v, ast.Store()) for v in (items, low, index)],
                                  ast.Store())], ast.Tuple([
        ast.Subscript(ast.Name(name, load), ast.Constant(0), load),
        ast.Subscript(ast.Name(name, load), ast.Constant(1), load),
        ast.BinOp(ast.Subscript(ast.Name(name, load), ast.Constant(2), load), ast.Sub(),
                  ast.Constant(1))], load))
    for stmts in _statement_lists(fn):
        for i, s in enumerate(stmts):
            if s is loop:
                stmts[i:i] = [ast.copy_location(start, loop)]
                return True
    return False


# Accumulations whose result owns its array (made fresh from None, else the accumulator
# summed into in place): `lower_nested_sums` may start them from another accumulator.
_SCATTERS = ("_scatter_add", "_scatter_add_known", "_nt_scatter_add", "_nt_scatter_add_known")
_OWNING_SUMS = (*_SCATTERS, "_nt_scatter_into", "_nt_add_into")


def lower_nested_sums(tree: ast.Module) -> int:
    """A sensitivity summed in an inner loop and then into an outer accumulator,
    `inner = None; <loop: inner = _scatter_add(inner, ...)>; outer = _nt_add_into(outer,
    inner)` (alone or as one pair of a tuple assignment, as in the LSTM's gradient) (the
    derivative of a loop inside a loop reading elements of one array), as one sum:
    `inner = outer` before the inner loop and `outer = inner` after it, so the inner loop
    adds into the outer accumulator in place instead of into an array made per outer
    turn. The same sum in another order (a rounding apart; the first call's check
    against the Python backend stands). Only where `inner` is named nowhere else, the
    inner loop only accumulates into it with sums that own their result (`_OWNING_SUMS`:
    from None each makes a fresh array), `outer` is not named between the two statements,
    and `outer` owns its array: bound only to None, to `_nt_zeros_for(x)` or by this sum,
    and read elsewhere only after the statement of the function's body that holds the
    loops. Returns how many were rewritten."""
    done = 0
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for stmts in list(_statement_lists(fn)):
            for start in list(stmts):
                if isinstance(start, ast.Assign) and len(start.targets) == 1 and \
                        isinstance(start.targets[0], ast.Name) and _is_zero(start.value):
                    done += _lower_nested_sum(fn, stmts, stmts.index(start),
                                              start.targets[0].id)
    return done


def _owning_sum(value: ast.AST, acc: str) -> bool:
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
        value.func.id in _OWNING_SUMS and bool(value.args) and _is_name(value.args[0], acc)


def _adds_into(stmt: ast.stmt, inner: str) -> tuple[str, ast.Call] | None:
    """(outer, the call) where `stmt` assigns `outer = _nt_add_into(outer, inner)`, alone
    or as one pair of a tuple assignment."""
    if not isinstance(stmt, ast.Assign):
        return None
    for target, value in _pairs(stmt) or []:
        if isinstance(target, ast.Name) and isinstance(value, ast.Call) and \
                _is_name(value.func, "_nt_add_into") and len(value.args) == 2 and \
                _is_name(value.args[1], inner) and _is_name(value.args[0], target.id):
            return target.id, value
    return None


def _lower_nested_sum(fn: ast.FunctionDef, stmts: list[ast.stmt], i: int, inner: str) -> int:
    end = next((s for s in stmts[i + 1:] if _adds_into(s, inner) is not None), None)
    found = _adds_into(end, inner) if end is not None else None
    if end is None or found is None:
        return 0
    assert isinstance(end, ast.Assign)
    outer, add = found
    between = stmts[i + 1:stmts.index(end)]
    own = list(_own_nodes(fn))
    owned = {id(n) for n in own}
    if any((_is_name(n, inner) or _is_name(n, outer)) and id(n) not in owned
           for n in ast.walk(fn)):
        return 0  # (a nested function names one of them)
    if any(_is_name(n, outer) for s in between for n in ast.walk(s)):
        return 0
    # (Where `end` assigns other names too, none of its other values reads `outer`.)
    if any(_is_name(n, outer) for n in ast.walk(end.value) if
           not any(n is m for m in ast.walk(add))):
        return 0
    # `inner`: bound at the start, accumulated in `between`, read by `end`; nothing else.
    allowed = {id(stmts[i].targets[0]), id(add.args[1])}  # type: ignore[attr-defined]
    sums = 0
    for s in between:
        for node in ast.walk(s):
            if isinstance(node, ast.Assign):
                for target, value in _pairs(node) or []:
                    if _is_name(target, inner):
                        if not _owning_sum(value, inner):
                            return 0
                        assert isinstance(value, ast.Call)
                        allowed |= {id(target), id(value.args[0])}
                        sums += 1
    if not sums or any(_is_name(n, inner) and id(n) not in allowed for n in own):
        return 0
    # `outer` owns its array, and no one reads it while the loops run.
    top = next(s for s in fn.body if any(n is end for n in ast.walk(s)))
    at = fn.body.index(top)
    for n in own:
        if not _is_name(n, outer) or any(n is x for x in ast.walk(end)):
            continue
        assert isinstance(n, ast.Name)
        stmt_at = next(k for k, s in enumerate(fn.body) if any(n is x for x in ast.walk(s)))
        if isinstance(n.ctx, ast.Load):
            if stmt_at <= at:
                return 0
            continue
        bind = fn.body[stmt_at]
        if not (stmt_at < at and isinstance(bind, ast.Assign) and len(bind.targets) == 1 and
                bind.targets[0] is n and (_is_zero(bind.value) or (
                    isinstance(bind.value, ast.Call) and
                    _is_name(bind.value.func, "_nt_zeros_for")))):
            return 0
    load = ast.Load()
    start = stmts[i]
    assert isinstance(start, ast.Assign)
    start.value = ast.copy_location(ast.Name(outer, load), start.value)
    if end.value is add:
        end.value = ast.copy_location(ast.Name(inner, load), add)
    else:
        assert isinstance(end.value, ast.Tuple)
        k = next(k for k, v in enumerate(end.value.elts) if v is add)
        end.value.elts[k] = ast.copy_location(ast.Name(inner, load), add)
    # Where the outer sum starts as None and every inner sum scatters into the shape of
    # one parameter, it starts as that parameter's zeros (as `lower_item_sums`'
    # accumulators): the loops then never test for None.
    shapes = [v.args[1] for s in between for node in ast.walk(s) if isinstance(node, ast.Assign)
              for t, v in _pairs(node) or [] if _is_name(t, inner) and
              isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and
              v.func.id in _SCATTERS and len(v.args) > 1]
    params = {a.arg for a in fn.args.args}
    first = shapes[0] if len(shapes) == sums else None
    starts = [s for s in fn.body if isinstance(s, ast.Assign) and len(s.targets) == 1 and
              _is_name(s.targets[0], outer)]
    if isinstance(first, ast.Name) and first.id in params and len(starts) == 1 and \
            _is_zero(starts[0].value) and all(_is_name(x, first.id) for x in shapes) and \
            not any(isinstance(n, ast.Name) and n.id == first.id and
                    not isinstance(n.ctx, ast.Load) for n in own):
        starts[0].value = ast.copy_location(ast.Call(
            ast.Name("_nt_zeros_for", load), [ast.Name(first.id, load)], []),
            starts[0].value)
    return 1


def _name_rest(loop: ast.While, name: str, counter: itertools.count) -> None:
    """`S, x = S[1], e` in the loop (the lifted backpropagator of a recursion moves to the
    rest of its stack so) as `rest = S[1]` first in the loop's body and `S, x = rest, e`:
    the form `_lower_pop` reads. (S[1] reads a tuple: it is the same value at the top of
    the body, where S is the same.)"""
    if any(isinstance(s, ast.Assign) and len(s.targets) == 1 and
           isinstance(s.targets[0], ast.Name) and s.targets[0].id != name and
           isinstance(s.value, ast.Subscript) and
           _is_name(s.value.value, name) and isinstance(s.value.slice, ast.Constant) and
           s.value.slice.value == 1 for s in loop.body):
        return
    moves = [s for s in loop.body if isinstance(s, ast.Assign) and
             any(_is_name(t, name) for t, _ in _pairs(s) or [])]
    if len(moves) != 1:
        return
    move = moves[0]
    pairs = _pairs(move) or []
    rest = [v for t, v in pairs if _is_name(t, name)]
    if len(rest) != 1 or not (isinstance(v := rest[0], ast.Subscript) and
                              _is_name(v.value, name) and isinstance(v.slice, ast.Constant)
                              and v.slice.value == 1):
        return
    if any(_is_name(n, name) for _, w in pairs if w is not v for n in ast.walk(w)):
        return
    fresh = f"_nt_rest{next(counter)}"
    load = ast.Load()
    if isinstance(move.value, ast.Tuple) and len(pairs) > 1:
        move.value.elts = [ast.copy_location(ast.Name(fresh, load), w) if w is v else w
                           for w in move.value.elts]
    elif len(pairs) == 1:
        move.value = ast.copy_location(ast.Name(fresh, load), v)
    else:
        return
    loop.body.insert(0, ast.copy_location(ast.Assign([ast.Name(fresh, ast.Store())], v), move))
