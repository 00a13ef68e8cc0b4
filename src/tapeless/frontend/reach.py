"""Which functions of a script tapeless compiles, read from its syntax tree, for
`tapeless check`.

A function is compiled when it is given to a transform (`tl.jit(f)`, `tl.grad(f)`,
`@tl.jit`, `tl.value_and_grad(f)(...)`, also inside compiled code), when it is named
with `--entry`, or when compiled code reaches it: it calls it or passes it along (a
function of the file referred to by name), it calls a method of that name that a class
of the file defines (`model.apply(x)`), or it is the `__call__` of a class whose
instance is given to a transform or to a transformed function. A function the file
imports by name and gives to a transform is compiled too. What the driver code
does (`main()`, argparse, printing, file I/O, classes used only there) is not compiled,
so it is not checked."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ..errors import TapelessError

# tapeless's functions that compile the function given to them.
TRANSFORMS = frozenset({"jit", "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev",
                        "hessian", "linearize", "vmap", "checkpoint", "ir"})

Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
Scope = ast.Module | Function


@dataclass
class Reached:
    """The compiled functions of a file: their syntax trees, in the order found."""
    functions: list[Function] = field(default_factory=list)
    # The class each method belongs to (methods only).
    owner: dict[Function, ast.ClassDef] = field(default_factory=dict)
    # Names the file imports (`from model import loss`) and gives to a transform.
    imported: list[str] = field(default_factory=list)


class _Index:
    """Where each name of the file is defined: the functions, lambdas bound to a name and
    classes of each scope, and each function's enclosing scope."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.defs: dict[Scope, dict[str, ast.AST]] = {}
        self.parent: dict[Function, Scope] = {}
        self.owner: dict[Function, ast.ClassDef] = {}
        self.classes: list[ast.ClassDef] = []
        # What each name of each scope is bound to, by plain assignment (`model = MLP(...)`,
        # `step = tl.jit(train_step)`).
        self.assigned: dict[Scope, dict[str, ast.expr]] = {}
        # Names bound by `from M import name` at the top level.
        self.imported = {a.asname or a.name for node in tree.body
                         if isinstance(node, ast.ImportFrom) for a in node.names}
        self._scan(tree.body, tree, None)

    def _scan(self, stmts: list[ast.stmt], scope: Scope, cls: ast.ClassDef | None) -> None:
        defs = self.defs.setdefault(scope, {})
        assigned = self.assigned.setdefault(scope, {})
        for node in _statements(stmts):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if cls is None:
                    defs[node.name] = node
                else:
                    self.owner[node] = cls
                self.parent[node] = scope
                self._scan(node.body, node, None)
            elif isinstance(node, ast.ClassDef):
                defs[node.name] = node
                self.classes.append(node)
                self._scan(node.body, scope, node)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                    isinstance(node.targets[0], ast.Name) and cls is None:
                name = node.targets[0].id
                assigned[name] = node.value
                if isinstance(node.value, ast.Lambda):
                    defs[name] = node.value
        for lam in _lambdas(stmts):
            self.parent[lam] = scope
            self._scan([ast.Expr(lam.body)], lam, None)

    def scope_chain(self, scope: Scope) -> list[Scope]:
        chain = [scope]
        while not isinstance(chain[-1], ast.Module):
            chain.append(self.parent.get(chain[-1], self.tree))
        return chain

    def lookup(self, name: str, scope: Scope) -> ast.AST | None:
        for s in self.scope_chain(scope):
            found = self.defs.get(s, {}).get(name)
            if found is not None:
                return found
        return None

    def assignment(self, name: str, scope: Scope) -> ast.expr | None:
        for s in self.scope_chain(scope):
            found = self.assigned.get(s, {}).get(name)
            if found is not None:
                return found
        return None

    def methods(self, cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        return {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef,
                                                              ast.AsyncFunctionDef))}


def _statements(stmts: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of a body, those nested in `if`/`for`/`while`/`with`/`try` included
    (not those of nested functions or classes)."""
    out: list[ast.stmt] = []
    for s in stmts:
        out.append(s)
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody"):
            out += _statements(getattr(s, name, []) or [])
        for handler in getattr(s, "handlers", []) or []:
            out += _statements(handler.body)
        for case in getattr(s, "cases", []) or []:
            out += _statements(case.body)
    return out


def _lambdas(stmts: list[ast.stmt]) -> list[ast.Lambda]:
    """The lambdas directly in these statements (not in nested functions or lambdas)."""
    found: list[ast.Lambda] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Lambda):
                found.append(child)
            elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                        ast.ClassDef)):
                visit(child)

    for s in stmts:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in s.decorator_list + s.args.defaults + \
                    [d for d in s.args.kw_defaults if d is not None]:
                if isinstance(d, ast.Lambda):
                    found.append(d)
                else:
                    visit(d)
        elif isinstance(s, ast.ClassDef):
            continue
        else:
            visit(s)
    return found


class _Transforms:
    """How the file names tapeless's transforms: `import tapeless as tl` (any alias),
    `import tapeless`, `from tapeless import grad [as g]`."""

    def __init__(self, tree: ast.Module):
        self.modules: set[str] = set()
        self.functions: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "tapeless":
                        self.modules.add(a.asname or "tapeless")
            elif isinstance(node, ast.ImportFrom) and node.module == "tapeless" and \
                    not node.level:
                for a in node.names:
                    if a.name in TRANSFORMS:
                        self.functions[a.asname or a.name] = a.name

    def name(self, node: ast.AST) -> str | None:
        """The transform `node` refers to (`tl.grad` -> 'grad'), or None."""
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in self.modules and node.attr in TRANSFORMS:
            return node.attr
        if isinstance(node, ast.Name):
            return self.functions.get(node.id)
        return None

    def is_transform_call(self, node: ast.AST) -> bool:
        """`tl.grad(f, ...)`, `functools.partial(tl.grad, ...)`."""
        if not isinstance(node, ast.Call):
            return False
        if self.name(node.func) is not None:
            return True
        return _is_partial(node.func) and bool(node.args) and \
            self.name(node.args[0]) is not None


def _is_partial(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "partial") or (
        isinstance(node, ast.Attribute) and node.attr == "partial")


class _Reacher:
    def __init__(self, tree: ast.Module, builtin_methods: frozenset[str]):
        self.index = _Index(tree)
        self.transforms = _Transforms(tree)
        self.builtin_methods = builtin_methods
        self.reached = Reached()
        self.seen: set[ast.AST] = set()
        self.todo: list[Function] = []

    # --- what is compiled ---------------------------------------------------------

    def add(self, fn: Function) -> None:
        if fn not in self.seen:
            self.seen.add(fn)
            self.reached.functions.append(fn)
            if fn in self.index.owner:
                self.reached.owner[fn] = self.index.owner[fn]
            self.todo.append(fn)

    def add_class(self, cls: ast.ClassDef) -> None:
        """An instance of `cls` is compiled code's data: calling it runs `__call__`."""
        if cls in self.seen:
            return
        self.seen.add(cls)
        call = self.index.methods(cls).get("__call__")
        if call is not None:
            self.add(call)

    def add_value(self, expr: ast.AST, scope: Scope) -> None:
        """`expr` is given to a transform or to transformed code: the functions, lambdas
        and instances of the file's classes it stands for are compiled."""
        if isinstance(expr, ast.Lambda):
            self.add(expr)
        elif isinstance(expr, ast.Name):
            found = self.index.lookup(expr.id, scope)
            if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                self.add(found)
            elif found is None and (value := self.index.assignment(expr.id, scope)) \
                    is not None and not isinstance(value, ast.Name):
                self.add_value(value, scope)
            elif found is None and expr.id in self.index.imported and \
                    expr.id not in self.reached.imported:
                self.reached.imported.append(expr.id)
        elif isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            cls = self.index.lookup(expr.value.id, self.index.tree)
            if isinstance(cls, ast.ClassDef):  # `Model.loss`
                method = self.index.methods(cls).get(expr.attr)
                if method is not None:
                    self.add(method)
        elif isinstance(expr, ast.Call):
            if self.transforms.is_transform_call(expr):  # tl.jit(tl.grad(f))
                self.site(expr, scope)
            elif _is_partial(expr.func) and expr.args:  # partial(loss, x=...)
                self.add_value(expr.args[0], scope)
                for a in expr.args[1:] + [k.value for k in expr.keywords]:
                    self.add_value(a, scope)
            elif isinstance(expr.func, ast.Name):
                cls = self.index.lookup(expr.func.id, scope)
                if isinstance(cls, ast.ClassDef):  # MLP(w1, b1, ...)
                    self.add_class(cls)
                    for a in expr.args + [k.value for k in expr.keywords]:
                        self.add_value(a, scope)
        elif isinstance(expr, (ast.Tuple, ast.List)):
            for e in expr.elts:
                self.add_value(e, scope)
        elif isinstance(expr, ast.Dict):
            for v in expr.values:
                self.add_value(v, scope)

    def site(self, call: ast.Call, scope: Scope) -> None:
        """A call of a transform: its function (and a partial's arguments) is compiled."""
        args = call.args[1:] if _is_partial(call.func) else call.args
        if args:
            self.add_value(args[0], scope)
        for k in call.keywords:
            if k.arg in ("fun", "fn", "f"):
                self.add_value(k.value, scope)

    def transformed(self, expr: ast.AST, scope: Scope) -> bool:
        """Whether `expr` is a transformed function: `tl.grad(f)`, or a name bound to one
        (`step = tl.jit(train_step)`, a function decorated with `@tl.jit`)."""
        if self.transforms.is_transform_call(expr):
            return True
        if isinstance(expr, ast.Name):
            found = self.index.lookup(expr.id, scope)
            if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return any(self._is_transform(d) for d in found.decorator_list)
            value = self.index.assignment(expr.id, scope)
            return value is not None and self.transforms.is_transform_call(value)
        return False

    def _is_transform(self, decorator: ast.AST) -> bool:
        return self.transforms.name(decorator) is not None or \
            self.transforms.is_transform_call(decorator)

    # --- walking the file and what is compiled -------------------------------------

    def sites(self, node: ast.AST, scope: Scope) -> None:
        """Every transform call and decorator of the file, and every call of a
        transformed function (its arguments are compiled code's data)."""
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = child
                if not isinstance(child, ast.Lambda) and \
                        any(self._is_transform(d) for d in child.decorator_list):
                    self.add(child)
            if isinstance(child, ast.Call):
                if self.transforms.is_transform_call(child):
                    self.site(child, scope)
                elif self.transformed(child.func, scope):
                    for a in child.args + [k.value for k in child.keywords]:
                        self.add_value(a.value if isinstance(a, ast.Starred) else a, scope)
            self.sites(child, inner)

    def follow(self, fn: Function) -> None:
        """What compiled `fn` reaches: the file's functions it refers to, the methods of
        the file's classes it calls by name."""
        self._follow(fn, fn)

    def _follow(self, node: ast.AST, scope: Scope) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = child
            elif isinstance(child, ast.ClassDef):
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                found = self.index.lookup(child.id, scope)
                if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    self.add(found)
                elif isinstance(found, ast.ClassDef):
                    self.add_class(found)
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and \
                    child.func.attr not in self.builtin_methods:
                for cls in self.index.classes:
                    method = self.index.methods(cls).get(child.func.attr)
                    if method is not None:
                        self.add(method)
            self._follow(child, inner)

    def run(self, entries: list[str]) -> Reached:
        tree = self.index.tree
        for entry in entries:
            self._entry(entry)
        self.sites(tree, tree)
        while self.todo:
            self.follow(self.todo.pop(0))
        return self.reached

    def _entry(self, entry: str) -> None:
        tree = self.index.tree
        name, _, method = entry.partition(".")
        found = self.index.lookup(name, tree)
        if method and isinstance(found, ast.ClassDef):
            found = self.index.methods(found).get(method)
        if not isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            raise TapelessError(f"--entry {entry}: no function of that name at the top "
                                "level of the file (write NAME or CLASS.METHOD)")
        self.add(found)


def compiled_functions(tree: ast.Module, entries: list[str],
                       builtin_methods: frozenset[str]) -> Reached:
    """The functions of `tree` that tapeless compiles (see the module's docstring).
    `builtin_methods`: method names of arrays, lists, dicts and strings (a call
    `x.sum()` does not reach a user's method `sum`)."""
    return _Reacher(tree, builtin_methods).run(entries)
