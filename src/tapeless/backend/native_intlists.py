"""Lists of ints that are only read, in native code: int64 arrays.

A recursion over the columns still to expand (`det_minor(A, row + 1, cols[:k] +
cols[k + 1:])`), a list of indices sliced and joined as it goes down, is in Numba a list
of ints: each slice and each `+` allocates a list object (the header, its payload and
Numba's reference counting), three per call for that determinant, and reading an item
goes through the list's accessors. An int64 array does the same work with a slice that is
a view and one allocation per join, and its items are read as memory.

This module rewrites, in the generated module's source, the lists that are lists of ints
by how they are made and that no one can see changed:

- made by `list(range(...))`, a list display of int constants, a slice of such a list,
  or `+` of two such lists; passed down as the argument of a module function's parameter
  whose every call passes such a list (never the program's entry, whose arguments come
  from the caller, nor a function used as a value);
- used only by `len(x)`, `x[i]` (an int index), `x[a:b]` (again such a list), `x + y`,
  `for v in x`, or as such an argument or assignment. A list appended to, assigned into,
  returned, compared, kept in a tuple or a record, or read by a closure is left a list
  (and so is everything that flows into it).

The rewrite: `list(range(...))` is `np.arange(...)`, a display `np.array([...],
np.int64)`, `x + y` `_nt_ints_join(x, y)` (a new array), `x[i]` `_nt_ints_at(x, i)`
(which raises IndexError where the list would: arrays in Numba are not bounds-checked,
and the native backend runs a call that raises again on the Python backend); a slice is
NumPy's view, which nothing writes to. Items are int64 either way, so no result changes.

A join in a loop whose list no one holds when it runs again (`rest = cols[:k] +
cols[k + 1:]` passed down and read, never kept: `_IntLists._reuse_buffers`) writes one
buffer per call, bound before the loop as long as the lists it reads, and `rest` is a view
of its first items: `_nt_ints_splice` for `x[:i] + x[j:]`, `_nt_ints_fill` for another
join. For the determinant that is one allocation per call that expands a minor instead
of one per minor.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from typing import Any

from .native_ast import block_of, blocks, is_name

HELPERS = '''

def _nt_ints_join(a, b):
    out = np.empty(len(a) + len(b), np.int64)
    _nt_ints_fill(out, a, b)
    return out


def _nt_ints_fill(buf, a, b):
    n = len(a)
    for i in range(n):
        buf[i] = a[i]
    for i in range(len(b)):
        buf[n + i] = b[i]
    return n + len(b)


def _nt_ints_splice(buf, a, i, j):
    n = len(a)
    lo = i + n if i < 0 else i
    lo = 0 if lo < 0 else n if lo > n else lo
    hi = j + n if j < 0 else j
    hi = 0 if hi < 0 else n if hi > n else hi
    k = 0
    t = 0
    for x in a:  # (two passes over the items, not two index loops: the determinant's
        if t < lo:  # objective in 0.9x the time; a[:lo] then a[hi:], hi < lo too)
            buf[k] = x
            k += 1
        t += 1
    t = 0
    for x in a:
        if t >= hi:
            buf[k] = x
            k += 1
        t += 1
    return k


def _nt_ints_at(a, i):
    n = len(a)
    j = i + n if i < 0 else i
    if j < 0 or j >= n:
        raise IndexError("list index out of range")
    return a[j]
'''

_Var = tuple[str, str]  # (function, name)


def lower_int_lists(tree: ast.Module, root: str | None) -> int:
    """Rewrite the read-only lists of ints of `tree` as int64 arrays (see the module's
    docstring); `root` is the program's entry (its parameters are never rewritten).
    Returns how many names were rewritten."""
    return _IntLists(tree, root).lower()


class _IntLists:
    def __init__(self, tree: ast.Module, root: str | None) -> None:
        self.tree = tree
        self.functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        self.root = root
        self.parent: dict[int, ast.AST] = {}
        self.owner: dict[int, str] = {}  # (a node's top-level function)
        for fn in self.functions.values():
            for node in ast.walk(fn):
                self.owner[id(node)] = fn.name
                for child in ast.iter_child_nodes(node):
                    self.parent[id(child)] = node
        self.calls = self._calls()
        self.filters = self._filters()

    def _calls(self) -> dict[str, list[ast.Call]]:
        """Each module function's calls by name; a function named anywhere but as the
        callee of a call with positional arguments is absent (its parameters are not
        rewritten)."""
        calls: dict[str, list[ast.Call]] = {name: [] for name in self.functions}
        bad: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and node.id in calls:
                call = self.parent.get(id(node))
                fn = self.functions[node.id]
                if isinstance(call, ast.Call) and call.func is node and not call.keywords \
                        and len(call.args) == len(fn.args.args) and \
                        not any(isinstance(a, ast.Starred) for a in call.args):
                    calls[node.id].append(call)
                else:
                    bad.add(node.id)
        return {k: v for k, v in calls.items() if k not in bad}

    def _filters(self) -> dict[_Var, tuple[ast.Assign, ast.For, list[ast.Expr]]]:
        """The lists built by a filter of a list (`L = []` followed by `for x in xs:`
        whose body appends to `L` only the item `x`, or a name bound only to it, and
        reads `L` nowhere else; `L` bound nowhere else): each with its `L = []`, its
        loop and its appends. A filter of a list of ints is a list of ints."""
        out: dict[_Var, tuple[ast.Assign, ast.For, list[ast.Expr]]] = {}
        for fn in self.functions.values():
            for block in blocks(fn, ("body", "orelse")):
                for made, loop in zip(block, block[1:], strict=False):
                    if not (isinstance(made, ast.Assign) and len(made.targets) == 1 and
                            isinstance(t := made.targets[0], ast.Name) and
                            isinstance(made.value, ast.List) and not made.value.elts and
                            isinstance(loop, ast.For) and not loop.orelse and
                            isinstance(loop.target, ast.Name) and
                            isinstance(loop.iter, ast.Name)):
                        continue
                    appends = self._appends(fn, t.id, made, loop)
                    if appends is not None:
                        out[(fn.name, t.id)] = (made, loop, appends)
        return out

    def _appends(self, fn: ast.FunctionDef, name: str, made: ast.Assign, loop: ast.For
                 ) -> list[ast.Expr] | None:
        """The statements `name.append(item)` of `loop` if they are all it does with
        `name` and each appends its item (see `_filters`), else None."""
        assert isinstance(loop.target, ast.Name)
        x = loop.target.id
        inside = {id(n) for n in ast.walk(loop)}
        stored = [n for n in ast.walk(fn) if isinstance(n, ast.Name) and
                  not isinstance(n.ctx, ast.Load)]
        if any(n.id == x and n is not loop.target for n in stored) or \
                any(n.id == name and n is not made.targets[0] for n in stored):
            return None
        items = {x} | {n.id for n in stored if id(n) in inside and isinstance(
            a := self.parent.get(id(n)), ast.Assign) and len(a.targets) == 1 and
            a.targets[0] is n and is_name(a.value, x)}
        items = {i for i in items if i == x or all(
            id(n) in inside and isinstance(a := self.parent.get(id(n)), ast.Assign) and
            is_name(a.value, x) for n in stored if n.id == i)}
        appends: list[ast.Expr] = []
        for n in ast.walk(loop):
            if not is_name(n, name):
                continue
            attr = self.parent.get(id(n))
            call = self.parent.get(id(attr))
            stmt = self.parent.get(id(call))
            if not (isinstance(attr, ast.Attribute) and attr.attr == "append" and
                    isinstance(call, ast.Call) and call.func is attr and
                    len(call.args) == 1 and not call.keywords and
                    isinstance(item := call.args[0], ast.Name) and item.id in items and
                    isinstance(stmt, ast.Expr) and stmt.value is call):
                return None
            appends.append(stmt)
        return appends or None

    def candidates(self) -> set[_Var]:
        """Every name that may hold such a list: the locals bound only by plain
        assignments and the parameters of functions called only directly, in functions
        with no nested function (whose closures could read them)."""
        out: set[_Var] = set()
        for fn in self.functions.values():
            if any(isinstance(n, (ast.FunctionDef, ast.Lambda, ast.AsyncFunctionDef))
                   for n in ast.walk(fn) if n is not fn):
                continue
            a = fn.args
            if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
                params: list[str] = []
            elif fn.name == self.root or fn.name not in self.calls or \
                    not self.calls[fn.name]:
                params = []
            else:
                params = [p.arg for p in a.args]
            stored: dict[str, bool] = {}  # (name: whether every binding is a plain one)
            for node in ast.walk(fn):
                if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                    plain = isinstance(node.ctx, ast.Store) and self._assigned(node) is not None
                    stored[node.id] = stored.get(node.id, True) and plain
            binds = {p.arg for p in a.args + a.kwonlyargs + a.posonlyargs}
            for name, plain in stored.items():
                if plain and (name not in binds or name in params):
                    out.add((fn.name, name))
            out.update((fn.name, p) for p in params)
        return out

    def _assigned(self, target: ast.Name) -> ast.expr | None:
        """The value a plain assignment binds to `target` (`x = e`, or `x` among the
        names of `a, x = (e1, e2)`), else None."""
        p = self.parent.get(id(target))
        if isinstance(p, ast.Assign) and len(p.targets) == 1 and p.targets[0] is target:
            return p.value
        if isinstance(p, ast.Tuple) and isinstance(self.parent.get(id(p)), ast.Assign):
            assign = self.parent[id(p)]
            assert isinstance(assign, ast.Assign)
            if len(assign.targets) == 1 and assign.targets[0] is p and \
                    isinstance(assign.value, ast.Tuple) and \
                    len(assign.value.elts) == len(p.elts) and \
                    not any(isinstance(e, ast.Starred) for e in p.elts + assign.value.elts):
                return assign.value.elts[p.elts.index(target)]
        return None

    def is_list(self, e: ast.AST, fn: str, names: set[_Var]) -> bool:
        """Whether `e` (in `fn`) is a list of ints made as the docstring says."""
        if isinstance(e, ast.Name) and isinstance(e.ctx, ast.Load):
            return (fn, e.id) in names
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "list" \
                and len(e.args) == 1 and not e.keywords:
            r = e.args[0]
            return isinstance(r, ast.Call) and isinstance(r.func, ast.Name) and \
                r.func.id == "range" and 1 <= len(r.args) <= 3 and not r.keywords and \
                "range" not in self.functions and "list" not in self.functions and \
                not any(isinstance(x, ast.Starred) for x in r.args)
        if isinstance(e, ast.List) and isinstance(e.ctx, ast.Load):
            return all(isinstance(x, ast.Constant) and type(x.value) is int for x in e.elts)
        if isinstance(e, ast.Subscript) and isinstance(e.ctx, ast.Load) and \
                isinstance(e.slice, ast.Slice):
            return self.is_list(e.value, fn, names)
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add):
            return self.is_list(e.left, fn, names) and self.is_list(e.right, fn, names)
        return False

    def flows_ok(self, e: ast.AST, fn: str, names: set[_Var]) -> bool:
        """Whether the list `e` (in `fn`) goes only where an array means the same."""
        p = self.parent.get(id(e))
        if isinstance(e, ast.Name) and (fn, e.id) in self.filters and \
                isinstance(p, ast.Attribute):
            return any(a.value.func is p  # type: ignore[attr-defined]
                       for a in self.filters[(fn, e.id)][2])
        if isinstance(p, ast.Call):
            if isinstance(p.func, ast.Name) and p.func.id == "len" and p.args == [e] and \
                    not p.keywords and "len" not in self.functions:
                return True
            callee = p.func.id if isinstance(p.func, ast.Name) else None
            if callee in self.calls and e in p.args:
                param = self.functions[callee].args.args[p.args.index(e)].arg
                return (callee, param) in names
            return False
        if isinstance(p, ast.Subscript) and p.value is e and isinstance(p.ctx, ast.Load):
            if isinstance(p.slice, ast.Slice):
                return self.flows_ok(p, fn, names)
            return not isinstance(p.slice, ast.Tuple)
        if isinstance(p, ast.BinOp) and isinstance(p.op, ast.Add):
            return self.is_list(p, fn, names) and self.flows_ok(p, fn, names)
        if isinstance(p, ast.For) and p.iter is e:
            return True
        if isinstance(p, ast.Assign) and p.value is e and len(p.targets) == 1:
            t = p.targets[0]
            return isinstance(t, ast.Name) and (fn, t.id) in names
        if isinstance(p, ast.Tuple) and isinstance(self.parent.get(id(p)), ast.Assign):
            assign = self.parent[id(p)]
            assert isinstance(assign, ast.Assign)
            if assign.value is p and len(assign.targets) == 1 and \
                    isinstance(assign.targets[0], ast.Tuple):
                targets = assign.targets[0].elts
                i = next(k for k, x in enumerate(p.elts) if x is e)
                if len(targets) == len(p.elts):
                    t = targets[i]
                    return isinstance(t, ast.Name) and self._assigned(t) is e and \
                        (fn, t.id) in names
        return False

    def _uses(self, var: _Var) -> Iterator[ast.Name]:
        fn, name = var
        for node in ast.walk(self.functions[fn]):
            if isinstance(node, ast.Name) and node.id == name and \
                    isinstance(node.ctx, ast.Load):
                yield node

    def _holds(self, var: _Var, names: set[_Var]) -> bool:
        """Whether every binding of `var` binds such a list and every use keeps it so."""
        fn, name = var
        node_fn = self.functions[fn]
        if name in {p.arg for p in node_fn.args.args}:
            i = [p.arg for p in node_fn.args.args].index(name)
            for call in self.calls[fn]:
                if not self.is_list(call.args[i], self.owner[id(call)], names):
                    return False
        if var in self.filters and not self.is_list(self.filters[var][1].iter, fn, names):
            return False
        for node in ast.walk(node_fn):
            if isinstance(node, ast.Name) and node.id == name and \
                    isinstance(node.ctx, ast.Store):
                value = self._assigned(node)
                if value is None or not self.is_list(value, fn, names):
                    return False
        return all(self.flows_ok(use, fn, names) for use in self._uses(var))

    def lower(self) -> int:
        names = self.candidates()
        while True:
            kept = {v for v in names if self._holds(v, names)}
            if kept == names:
                break
            names = kept
        if not names:
            return 0
        # Every list expression whose value flows where the arrays go.
        made: set[int] = set()
        for fn in self.functions.values():
            for node in ast.walk(fn):
                if isinstance(node, ast.expr) and self.is_list(node, fn.name, names) and \
                        self.flows_ok(node, fn.name, names):
                    made.add(id(node))
        if not made:
            return 0
        reused = self._reuse_buffers(made, names)
        for var in sorted(names & set(self.filters)):
            self._lower_filter(var, made, names)
        _Rewrite(made).visit(self.tree)
        for assign, buf in reused:
            # (`t = a + b` -> `m = _nt_ints_fill(buf, a, b)`, `t = buf[:m]`; the
            # splice `x[:i] + x[j:]` -> `m = _nt_ints_splice(buf, x, i, j)`)
            call = assign.value
            assert isinstance(call, ast.Call)
            count = f"{buf}_n"
            left, right = call.args
            if isinstance(left, ast.Subscript) and isinstance(right, ast.Subscript) and \
                    isinstance(left.value, ast.Name) and isinstance(right.value, ast.Name) \
                    and left.value.id == right.value.id and \
                    isinstance(left.slice, ast.Slice) and isinstance(right.slice, ast.Slice) \
                    and left.slice.lower is None and left.slice.upper is not None and \
                    left.slice.step is None and right.slice.lower is not None and \
                    right.slice.upper is None and right.slice.step is None:
                fill = ast.Call(ast.Name("_nt_ints_splice", ast.Load()), [
                    ast.Name(buf, ast.Load()), left.value, left.slice.upper,
                    right.slice.lower], [])
            else:
                fill = ast.Call(ast.Name("_nt_ints_fill", ast.Load()),
                                [ast.Name(buf, ast.Load()), left, right], [])
            first = ast.Assign([ast.Name(count, ast.Store())], fill)
            assign.value = ast.Subscript(ast.Name(buf, ast.Load()), ast.Slice(
                None, ast.Name(count, ast.Load()), None), ast.Load())
            block = block_of(assign, self.parent)
            block.insert(block.index(assign), ast.copy_location(first, assign))
            ast.fix_missing_locations(first)
            ast.fix_missing_locations(assign)
        helpers = ast.parse(HELPERS)
        # (past the module's lines: they map to the user's)
        ast.increment_lineno(helpers, max(getattr(n, "end_lineno", 0) or 0
                                          for n in self.tree.body) + 1)
        self.tree.body.extend(helpers.body)
        return len(names)

    def _reuse_buffers(self, made: set[int], names: set[_Var]
                       ) -> list[tuple[ast.Assign, str]]:
        """The joins `t = a + b` in a loop whose array can be written again in place each
        time round (returned with the name of their buffer, whose binding is put before
        the function's outermost loop holding the join): the new array is held by `t`
        alone, so when the join runs again the old one is read by no one. That holds
        where `a` and `b` do not read `t` and every read of `t` in the function is
        `len(t)`, `t[i]` (an int), a slice of `t` or `t` itself as the argument of a
        module function (whose frame ends before the join runs again: it cannot return
        the list or keep it) or as an operand of a join (which copies), or a slice of `t`
        under `len`; and where the join reads only parameters bound nowhere in the
        function (its list is no longer than their lengths, one for each read: the
        buffer's). A `for` over `t`, `t` bound to another name, or a join reading a
        display, a range or a local keeps the join allocating (a buffer that grows costs
        more than the allocation it saves)."""
        out: list[tuple[ast.Assign, str]] = []
        for fn in self.functions.values():
            params = {p.arg for p in fn.args.args}
            stored = {m.id for m in ast.walk(fn) if isinstance(m, ast.Name) and
                      not isinstance(m.ctx, ast.Load)}
            for node in ast.walk(fn):
                if not (isinstance(node, ast.BinOp) and id(node) in made):
                    continue
                assign = self.parent.get(id(node))
                if not (isinstance(assign, ast.Assign) and assign.value is node and
                        len(assign.targets) == 1 and isinstance(assign.targets[0], ast.Name)):
                    continue
                name = assign.targets[0].id
                loop = self._outer_loop(assign, fn)
                if loop is None or any(isinstance(m, ast.Name) and m.id == name
                                       for m in ast.walk(node)) or \
                        not all(self._read_only(use, made)
                                for use in self._uses((fn.name, name))):
                    continue
                read = [m.id for m in ast.walk(node) if isinstance(m, ast.Name) and
                        (fn.name, m.id) in names]
                # (two operands only: a longer join's inner joins would still allocate)
                if not read or not set(read) <= params - stored or any(
                        isinstance(m, (ast.List, ast.Call)) for m in ast.walk(node)) or \
                        isinstance(node.left, ast.BinOp) or isinstance(node.right, ast.BinOp):
                    continue
                buf = f"_nt_ints_buf{len(out)}_{fn.name}"
                np_ = ast.Name("np", ast.Load())
                lengths = [ast.Call(ast.Name("len", ast.Load()), [ast.Name(r, ast.Load())], [])
                           for r in read]
                size: ast.expr = lengths[0]
                for length in lengths[1:]:
                    size = ast.BinOp(size, ast.Add(), length)
                init = ast.Assign([ast.Name(buf, ast.Store())], ast.Call(
                    ast.Attribute(np_, "empty", ast.Load()),
                    [size, ast.Attribute(np_, "int64", ast.Load())], []))
                ast.copy_location(init, loop)
                ast.fix_missing_locations(init)
                block = block_of(loop, self.parent)
                block.insert(block.index(loop), init)
                out.append((assign, buf))
        return out

    def _lower_filter(self, var: _Var, made: set[int], names: set[_Var]) -> None:
        """The filter `L = []; for x in xs: ... L.append(x) ...` of an int list (`var`:
        L), as `buf = np.empty(len(xs), np.int64); n = 0; for x in xs: ... buf[n] = x;
        n += 1 ...; L = buf[:n]`: a filter keeps at most every item. The buffer is bound
        before the outermost loop holding the filter where `xs` is a parameter bound
        nowhere in the function and every read of `L` (or of the name bound to it right
        after the loop) keeps no reference to it past its statement (`_read_only`), and
        the filter's loop reads neither: then no one reads the list when the filter
        writes the buffer again."""
        fn_name, name = var
        fn = self.functions[fn_name]
        init, loop, appends = self.filters[var]
        made.discard(id(init.value))
        assert isinstance(loop.iter, ast.Name)
        xs = loop.iter.id
        buf = f"_nt_ints_filter{len([v for v in self.filters if v < var])}_{fn_name}"
        count = f"{buf}_n"
        load, store = ast.Load(), ast.Store()
        np_ = ast.Name("np", load)
        alloc = ast.Assign([ast.Name(buf, store)], ast.Call(
            ast.Attribute(np_, "empty", load),
            [ast.Call(ast.Name("len", load), [ast.Name(xs, load)], []),
             ast.Attribute(np_, "int64", load)], []))
        outer = self._outer_loop(init, fn)
        params = {p.arg for p in fn.args.args}
        stored = {m.id for m in ast.walk(fn) if isinstance(m, ast.Name) and
                  not isinstance(m.ctx, ast.Load)}
        block = block_of(init, self.parent)
        after = block.index(loop) + 1
        readers = [name]
        if after < len(block) and isinstance(bind := block[after], ast.Assign) and \
                len(bind.targets) == 1 and isinstance(r := bind.targets[0], ast.Name) and \
                is_name(bind.value, name) and (fn_name, r.id) in names and \
                sum(isinstance(m, ast.Name) and m.id == r.id and
                    not isinstance(m.ctx, ast.Load) for m in ast.walk(fn)) == 1:
            readers.append(r.id)
        appended = {id(a.value.func.value) for a in appends}  # type: ignore[attr-defined]
        reuse = outer is not None and xs in params - stored and not any(
            isinstance(m, ast.Name) and m.id in readers[1:] for m in ast.walk(loop)) and all(
            id(use) in appended or self._read_only(use, made) or
            isinstance(self.parent.get(id(use)), ast.Assign) and
            self.parent[id(use)] is (block[after] if len(readers) > 1 else None)
            for reader in readers for use in self._uses((fn_name, reader)))
        if reuse:
            assert outer is not None
            ast.copy_location(alloc, outer)
            outer_block = block_of(outer, self.parent)
            outer_block.insert(outer_block.index(outer), alloc)
            start = [ast.Assign([ast.Name(count, store)], ast.Constant(0))]
        else:
            start = [alloc, ast.Assign([ast.Name(count, store)], ast.Constant(0))]
        view = ast.Assign([ast.Name(name, store)], ast.Subscript(
            ast.Name(buf, load), ast.Slice(None, ast.Name(count, load), None), load))
        block[block.index(loop) + 1:block.index(loop) + 1] = [view]
        block[block.index(init):block.index(init) + 1] = start
        for a in appends:
            call = a.value
            assert isinstance(call, ast.Call)
            write = ast.Assign([ast.Subscript(ast.Name(buf, load), ast.Name(count, load),
                                              store)], call.args[0])
            step = ast.AugAssign(ast.Name(count, store), ast.Add(), ast.Constant(1))
            where = block_of(a, self.parent)
            where[where.index(a):where.index(a) + 1] = [write, step]
            for st in (write, step):
                ast.copy_location(st, a)
        for st in [*start, view]:
            ast.copy_location(st, init)
        for st in (alloc, *start, view):
            ast.fix_missing_locations(st)
        for m in ast.walk(loop):
            if isinstance(m, (ast.stmt, ast.expr)) and not hasattr(m, "lineno"):
                ast.copy_location(m, loop)
        ast.fix_missing_locations(loop)

    def _outer_loop(self, node: ast.AST, fn: ast.FunctionDef) -> ast.stmt | None:
        """The outermost `for` or `while` of `fn` holding `node`, or None."""
        loop = None
        p = self.parent.get(id(node))
        while p is not None and p is not fn:
            if isinstance(p, (ast.For, ast.While)) and \
                    not (isinstance(p, ast.For) and _within(node, p.iter)) and \
                    not (isinstance(p, ast.While) and _within(node, p.test)):
                loop = p
            p = self.parent.get(id(p))
        return loop

    def _read_only(self, use: ast.Name, made: set[int]) -> bool:
        """Whether the read `use` of a list keeps no reference to it past the statement
        (see `_reuse_buffers`)."""
        e: ast.AST = use
        p = self.parent.get(id(e))
        if isinstance(p, ast.Subscript) and p.value is e:
            if not isinstance(p.slice, ast.Slice):
                return True
            e, p = p, self.parent.get(id(p))
        if isinstance(p, ast.Call):
            if isinstance(p.func, ast.Name) and p.func.id == "len":
                return True
            return isinstance(p.func, ast.Name) and p.func.id in self.calls and \
                any(a is e for a in p.args)
        return isinstance(p, ast.BinOp) and id(p) in made


def _within(node: ast.AST, tree: ast.AST) -> bool:
    return any(m is node for m in ast.walk(tree))


class _Rewrite(ast.NodeTransformer):
    def __init__(self, made: set[int]) -> None:
        self.made = made

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        listed = id(node.value) in self.made
        self.generic_visit(node)
        if listed and not isinstance(node.slice, ast.Slice) and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Call(ast.Name("_nt_ints_at", ast.Load()),
                                              [node.value, node.slice], []), node)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        made = id(node) in self.made
        self.generic_visit(node)
        if made:
            return ast.copy_location(ast.Call(ast.Name("_nt_ints_join", ast.Load()),
                                              [node.left, node.right], []), node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        made = id(node) in self.made
        self.generic_visit(node)
        if made:  # (`list(range(...))`)
            r = node.args[0]
            assert isinstance(r, ast.Call)
            return ast.copy_location(ast.Call(
                ast.Attribute(ast.Name("np", ast.Load()), "arange", ast.Load()),
                r.args, []), node)
        return node

    def visit_List(self, node: ast.List) -> ast.AST:
        if id(node) not in self.made:
            self.generic_visit(node)
            return node
        np_ = ast.Name("np", ast.Load())
        if not node.elts:
            return ast.copy_location(ast.Call(ast.Attribute(np_, "empty", ast.Load()), [
                ast.Constant(0), ast.Attribute(np_, "int64", ast.Load())], []), node)
        return ast.copy_location(ast.Call(ast.Attribute(np_, "array", ast.Load()), [
            node, ast.Attribute(np_, "int64", ast.Load())], []), node)


def lower_flat_comprehensions(tree: ast.Module) -> int:
    """`[y for x in xs if p(x)]`, which the frontend writes as a comprehension over a
    function returning a list of zero or more items per `x`
    (`def comprehension(item, *, c=c): if item != c: return [item] else: return []`;
    `rest = [_y for _x in xs for _y in comprehension(_x)]`), as a loop appending to the
    list: Numba cannot type the function's empty list `[]`, and types the appends.

    Only where the function is defined earlier in the same block (or is a function of
    the module or of the function capturing nothing), named nowhere else, takes one
    parameter and reads its captures by keyword defaults of the same names (the values
    those names have at the assignment: nothing binds them between), binds names only
    by plain assignments, and every path of its body is `if`/`else` and assignments
    ending in `return [...]` (a list display). Its parameter and locals are renamed
    apart; each `return [a, b]` becomes appends of `a` and `b` to a list of its own
    name, bound to the comprehension's name after the loop. Returns how many
    comprehensions were rewritten."""
    done = 0
    counter = iter(range(1, 1 << 30))
    top = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for stmts in _blocks(fn):
            i = 0
            while i < len(stmts):
                s = stmts[i]
                if isinstance(s, ast.Assign) and isinstance(s.value, ast.ListComp):
                    # (the function: defined right before, or a function of the module)
                    name = _called(s.value)
                    # (a function of `fn`: earlier in this block, where its captures
                    # are bound by nothing in between, or one reading its free names
                    # as they are at the call; else a function of the module)
                    before = [j for j in range(i) if isinstance(stmts[j], ast.FunctionDef)
                              and getattr(stmts[j], "name", None) == name]
                    fdef = stmts[before[-1]] if before else None
                    local = isinstance(fdef, ast.FunctionDef) and not _binds(
                        stmts[before[-1] + 1:i], {k.arg for k in fdef.args.kwonlyargs})
                    nested = [d for d in ast.walk(fn) if isinstance(d, ast.FunctionDef)
                              and d.name == name and d is not fn]
                    f = stmts[before[-1]] if local else nested[0] if len(nested) == 1 \
                        else None if nested else top.get(name or "")
                    loop = None if not isinstance(f, ast.FunctionDef) else \
                        _flat_comprehension(fn if local or nested else tree, fn, f, s,
                                            local, bool(nested), next(counter))
                    if loop is not None:
                        stmts[i:i + 1] = loop
                        if local or nested:
                            for block in _blocks(fn):
                                if f in block:
                                    block.remove(f)
                                    break
                        done += 1
                        continue
                i += 1
    return done


def _binds(stmts: list[ast.stmt], names: set[str]) -> bool:
    """Whether `stmts` may bind one of `names`."""
    return any(isinstance(m, ast.Name) and not isinstance(m.ctx, ast.Load) and m.id in names
               or isinstance(m, (ast.FunctionDef, ast.ClassDef)) and m.name in names
               or isinstance(m, (ast.Global, ast.Nonlocal, ast.Import, ast.ImportFrom))
               for s in stmts for m in ast.walk(s))


def _called(comp: ast.ListComp) -> str | None:
    """`f` in `[y for x in xs for y in f(x)]`."""
    if len(comp.generators) == 2 and isinstance(comp.generators[1].iter, ast.Call) and \
            isinstance(comp.generators[1].iter.func, ast.Name):
        return comp.generators[1].iter.func.id
    return None


def _blocks(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for n in ast.walk(node):
        for field in ("body", "orelse"):
            block = getattr(n, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield block


def _ends_in_returns(body: list[ast.stmt]) -> bool:
    """Whether every path of `body` is assignments and `if`s ending in `return [...]`."""
    if not body:
        return False
    *head, last = body
    if not all(isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) for t in s.targets)
               for s in head):
        return False
    if isinstance(last, ast.Return):
        return isinstance(last.value, ast.List) and \
            not any(isinstance(e, ast.Starred) for e in last.value.elts)
    return isinstance(last, ast.If) and _ends_in_returns(last.body) and \
        _ends_in_returns(last.orelse)


def _flat_comprehension(scope: ast.AST, fn: ast.FunctionDef, f: ast.FunctionDef,
                        assign: ast.Assign, local: bool, nested: bool, n: int
                        ) -> list[ast.stmt] | None:
    """The loop for `assign` (`name = [y for x in xs for y in f(x)]`), `f` defined in
    its block before it (`local`), in `fn` (`nested`) or a function of the module, named nowhere in
    `scope` but by that call; None where the docstring above does not hold."""
    if not (len(assign.targets) == 1 and isinstance(assign.targets[0], ast.Name) and
            isinstance(assign.value, ast.ListComp)):
        return None
    if not local and f.args.kwonlyargs:
        return None
    if not (local or nested):  # (a function of the module reads globals fn may shadow)
        free = {m.id for m in ast.walk(f) if isinstance(m, ast.Name)}
        bound = {m.id for m in ast.walk(fn) if isinstance(m, ast.Name) and
                 not isinstance(m.ctx, ast.Load)}
        if free & (bound | {p.arg for p in ast.walk(fn) if isinstance(p, ast.arg)}):
            return None
    comp = assign.value
    if len(comp.generators) != 2 or any(g.ifs or g.is_async for g in comp.generators):
        return None
    outer, inner = comp.generators
    if not (isinstance(outer.target, ast.Name) and isinstance(inner.target, ast.Name) and
            isinstance(comp.elt, ast.Name) and comp.elt.id == inner.target.id and
            isinstance(inner.iter, ast.Call) and isinstance(inner.iter.func, ast.Name) and
            inner.iter.func.id == f.name and not inner.iter.keywords and
            len(inner.iter.args) == 1 and isinstance(inner.iter.args[0], ast.Name) and
            inner.iter.args[0].id == outer.target.id):
        return None
    a = f.args
    if len(a.args) != 1 or a.vararg or a.kwarg or a.posonlyargs or a.defaults or \
            f.decorator_list or not all(
                isinstance(d, ast.Name) and d.id == k.arg
                for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)) or \
            not _ends_in_returns(f.body):
        return None
    # (named only by that call; the outer iterable does not name the comprehension's
    # own names)
    uses = [m for m in ast.walk(scope) if isinstance(m, ast.Name) and m.id == f.name]
    if uses != [inner.iter.func] or any(
            isinstance(m, ast.Name) and m.id in (outer.target.id, inner.target.id)
            for m in ast.walk(outer.iter)):
        return None
    captured = {k.arg for k in a.kwonlyargs}
    own = {a.args[0].arg} | {m.id for m in ast.walk(f) if isinstance(m, ast.Name) and
                             isinstance(m.ctx, ast.Store)}
    if own & captured or any(isinstance(m, (ast.FunctionDef, ast.Lambda, ast.ListComp,
                                              ast.SetComp, ast.DictComp, ast.GeneratorExp,
                                              ast.Global, ast.Nonlocal))
                               for s in f.body for m in ast.walk(s)):
        return None
    # (made under a name of its own, then bound: the loop may read the name's old value)
    target = f"_nt_c{n}_list"
    renamed = {name: f"_nt_c{n}_{name}" for name in own}
    x = f"_nt_c{n}_x"

    class _Inline(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in renamed:
                return ast.copy_location(ast.Name(renamed[node.id], node.ctx), node)
            return node

        def visit_Return(self, node: ast.Return) -> Any:
            assert isinstance(node.value, ast.List)
            return [ast.copy_location(ast.Expr(ast.Call(
                ast.Attribute(ast.Name(target, ast.Load()), "append", ast.Load()),
                [self.visit(e)], [])), node) for e in node.value.elts] or \
                [ast.copy_location(ast.Pass(), node)]

    body: list[ast.stmt] = [ast.Assign([ast.Name(renamed[a.args[0].arg], ast.Store())],
                                       ast.Name(x, ast.Load()))]
    for s in copy.deepcopy(f.body):
        out = _Inline().visit(s)
        body.extend(out if isinstance(out, list) else [out])
    made = ast.Assign([ast.Name(target, ast.Store())], ast.List([], ast.Load()))
    loop = ast.For(ast.Name(x, ast.Store()), outer.iter, body, [])
    bind = ast.Assign([ast.Name(assign.targets[0].id, ast.Store())],
                      ast.Name(target, ast.Load()))
    for s in (made, loop, bind):
        ast.copy_location(s, assign)
        for m in ast.walk(s):
            if not hasattr(m, "lineno") and isinstance(m, (ast.stmt, ast.expr)):
                ast.copy_location(m, assign)
    return [made, loop, bind]
