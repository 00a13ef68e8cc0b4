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
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

HELPERS = '''

def _nt_ints_join(a, b):
    n = len(a)
    out = np.empty(n + len(b), np.int64)
    for i in range(n):
        out[i] = a[i]
    for i in range(len(b)):
        out[n + i] = b[i]
    return out


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
        _Rewrite(made).visit(self.tree)
        helpers = ast.parse(HELPERS)
        # (past the module's lines: they map to the user's)
        ast.increment_lineno(helpers, max(getattr(n, "end_lineno", 0) or 0
                                          for n in self.tree.body) + 1)
        self.tree.body.extend(helpers.body)
        return len(names)


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
