"""`tapeless check FILE.py`: every construct tapeless cannot compile, one finding each,
like a code reviewer's comments."""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import linecache
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CompileError, format_error
from ..ir.nodes import Location
from ..primitives import BY_CALLABLE, METHODS
from .expressions import BUILTIN_RECEIVERS, _array_method
from .libraries import installed_package, refused_library
from .reach import Function, compiled_functions

Definition = ast.FunctionDef | ast.AsyncFunctionDef

_MUTATING = {"append", "extend", "insert", "pop", "remove", "update", "setdefault", "clear",
             "sort", "reverse", "fill", "resize", "add", "discard"}


# Constructs whose support is being added: the static checks defer to the compiler,
# asked once with a probe of each (so the checker and the compiler cannot disagree).
def _probe_item_assignment(a: Any) -> Any:
    a[0] = 1.0
    return a


def _probe_append(xs: Any) -> Any:
    xs.append(1.0)
    return xs


def _probe_kwargs(**options: Any) -> Any:
    return options


def _probe_double_star(f: Any, options: Any) -> Any:
    return f(**options)


@functools.cache
def compiler_refuses(probe: Callable[..., Any]) -> bool:
    """Whether the compiler refuses the construct `probe` is written with."""
    from .parser import parse

    try:
        parse(probe)
    except CompileError:
        return True
    return False


@dataclass(frozen=True)
class Finding:
    loc: Location
    message: str
    hint: str

    def __str__(self) -> str:
        return format_error(self.message, self.loc, self.hint)


def _built_in(node: ast.expr) -> bool:
    """Whether an expression's value is, by its syntax, of a built-in type (a literal, a
    display, a comprehension, an f-string, `list(...)`, `dict(...)`, `np.f(...)`): its
    methods are its type's (`tapeless.frontend.expressions._built_in`)."""
    if isinstance(node, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.ListComp,
                         ast.DictComp, ast.JoinedStr)):
        return True
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name) and f.id in ("list", "tuple", "dict", "str"):
            return True
        return isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
            f.value.id in ("np", "numpy")
    return False


class _Checker(ast.NodeVisitor):
    def __init__(self, filename: str, lines: list[str], modules: dict[str, object]):
        self.filename = filename
        self.lines = lines
        self.modules = modules
        self.findings: list[Finding] = []
        # Names declared `global` or `nonlocal` in the function being visited, and how.
        self.declared: dict[str, str] = {}
        # Calls that are statements of their own (`xs.append(v)`: an update in place).
        self.statement_calls: set[int] = set()

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Call):
            self.statement_calls.add(id(node.value))
        self.generic_visit(node)

    def add(self, node: ast.AST, message: str, hint: str) -> None:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        self.findings.append(Finding(Location(self.filename, line, col, text),
                                     message, hint))

    def visit_Try(self, node: ast.AST) -> None:
        self.add(node, "`try` statements are not supported",
                 "check the condition with `if` before the operation instead")
        self.generic_visit(node)

    visit_TryStar = visit_Try

    def visit_With(self, node: ast.With) -> None:
        self.add(node, "`with` statements are not supported",
                 "move the context manager outside the compiled function")
        self.generic_visit(node)

    def visit_AsyncWith(self, node: ast.AST) -> None:
        self.add(node, "`async with` is not supported", "use ordinary code")

    def visit_AsyncFor(self, node: ast.AST) -> None:
        self.add(node, "`async for` is not supported", "use an ordinary `for` loop")

    def visit_AsyncFunctionDef(self, node: ast.AST) -> None:
        self.add(node, "async functions are not supported", "write an ordinary `def`")

    def visit_Await(self, node: ast.AST) -> None:
        self.add(node, "`await` is not supported", "compile synchronous code only")

    def visit_Yield(self, node: ast.AST) -> None:
        self.add(node, "`yield` is not supported",
                 "return a list or tuple of the values instead")

    visit_YieldFrom = visit_Yield

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.add(node, "`class` inside a function is not supported",
                 "define the class at module level")

    def visit_Delete(self, node: ast.Delete) -> None:
        self.add(node, "`del` is not supported",
                 "let the variable go out of use instead of deleting it")

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        # An import inside a compiled function is bound when compiling: report one that
        # cannot be.
        import importlib

        for alias in node.names:
            try:
                if isinstance(node, ast.Import):
                    importlib.import_module(alias.name)
                elif node.level or alias.name == "*":
                    raise ImportError("relative and `*` imports")
                else:
                    getattr(importlib.import_module(node.module or ""), alias.name)
            except (ImportError, AttributeError) as exc:
                self.add(node, f"cannot import inside the compiled function: {exc}",
                         "import at the top of the file")
                continue
            if isinstance(node, ast.Import):  # (what the function's body then reads)
                name = alias.asname or alias.name.split(".")[0]
                self.modules[name] = importlib.import_module(
                    alias.name if alias.asname else alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        self.declared.update(dict.fromkeys(node.names, "global"))

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.declared.update(dict.fromkeys(node.names, "nonlocal"))

    def visit_Match(self, node: ast.AST) -> None:
        self.add(node, "`match` statements are not supported", "use if/elif/else")

    def visit_SetComp(self, node: ast.AST) -> None:
        self.add(node, "a set comprehension is not supported",
                 "use a list or dict comprehension")

    def visit_Set(self, node: ast.AST) -> None:
        self.add(node, "a set display is not supported", "use a tuple or list")

    def visit_Lambda(self, node: ast.Lambda) -> None:
        if node.args.kwarg is not None and compiler_refuses(_probe_kwargs):
            self.add(node.args.kwarg, "`**kwargs` parameters are not supported",
                     "name each keyword parameter explicitly")
        self._visit_scope(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.args.kwarg is not None and compiler_refuses(_probe_kwargs):
            self.add(node.args.kwarg, "`**kwargs` parameters are not supported",
                     "name each keyword parameter explicitly")
        self._visit_scope(node)

    def _visit_scope(self, node: ast.AST) -> None:
        """`global`/`nonlocal` declarations hold in their own function only."""
        outer, self.declared = self.declared, {}
        self.generic_visit(node)
        self.declared = outer

    def _target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Subscript) and compiler_refuses(_probe_item_assignment):
            self.add(target, "in-place item assignment is not supported (tapeless programs "
                     "are functional)", "build a new value instead, e.g. "
                     "`a = np.where(mask, v, a)` or `a = np.concatenate(...)`")
        elif isinstance(target, ast.Attribute):
            self.add(target, "in-place attribute assignment is not supported",
                     "build a new object, e.g. `dataclasses.replace(obj, field=v)` outside, "
                     "or return the new value")
        elif isinstance(target, ast.Name) and target.id in self.declared:
            self.add(target, f"assigning to the {self.declared[target.id]} variable "
                     f"'{target.id}' is not supported",
                     "return the new value from the function instead")
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                if isinstance(elt, ast.Starred):
                    self.add(elt, "starred assignment targets are not supported",
                             "index the sequence explicitly")
                else:
                    self._target(elt)

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            self._target(t)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("exec", "eval", "compile"):
            self.add(node, f"`{func.id}` is not supported",
                     "write the code directly in the function")
        elif isinstance(func, ast.Attribute):
            resolved = self._resolve(func)
            if resolved is not None:
                path, value = resolved
                if callable(value) and id(value) not in BY_CALLABLE and \
                        not isinstance(value, type):
                    self.add(node, f"{path} is not supported by tapeless (no primitive is "
                             "registered for it)", "see docs/language.md for the supported "
                             "functions, or write it with supported operations")
            elif func.attr in _MUTATING and compiler_refuses(_probe_append) and \
                    (_built_in(func.value) or id(node) in self.statement_calls or
                     _array_method(func.attr)):
                # (An update of a variable as a statement, or of a built-in value; a
                # user's method so named compiles: `new = opt.update(p, g)`.)
                self.add(node, f"the method .{func.attr}() mutates its object in place, "
                         "which is not supported", "build a new value instead, e.g. "
                         "`xs = xs + [v]` or a list comprehension")
            elif func.attr not in METHODS and \
                    (_built_in(func.value) or _array_method(func.attr)) and \
                    any(hasattr(t, func.attr) for t in BUILTIN_RECEIVERS):
                # (A method of another class is the user's: `model.apply(x)` and
                # `opt.update(p, g)` compile; a built-in receiver the compiler does not
                # see is refused when the code runs.)
                self.add(node, f"the method .{func.attr}() is not supported",
                         "call the corresponding NumPy function, e.g. np.f(x)")
        for kw in node.keywords:
            if kw.arg is None and compiler_refuses(_probe_double_star):
                self.add(kw.value, "`**` in calls is not supported",
                         "pass keyword arguments by name")
        self.generic_visit(node)

    def _resolve(self, node: ast.AST) -> tuple[str, object] | None:
        if isinstance(node, ast.Name) and node.id in self.modules:
            module = self.modules[node.id]
            return getattr(module, "__name__", node.id), module
        if isinstance(node, ast.Attribute):
            inner = self._resolve(node.value)
            if inner is None:
                return None
            path, value = inner
            if not hasattr(value, node.attr):
                return f"{path}.{node.attr}", None
            return f"{path}.{node.attr}", getattr(value, node.attr)
        return None


def _module_aliases(tree: ast.Module) -> dict[str, object]:
    known = {"numpy": np, "math": math, "numpy.linalg": np.linalg}
    aliases: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known:
                    aliases[a.asname or a.name.split(".")[0]] = known[a.name] \
                        if a.asname else known[a.name.split(".")[0]]
        elif isinstance(node, ast.ImportFrom) and node.module in ("numpy",):
            for a in node.names:
                if a.name == "linalg":
                    aliases[a.asname or "linalg"] = np.linalg
    return aliases


def check_file(path: str, entries: list[str] | None = None,
               notes: list[str] | None = None) -> list[Finding]:
    """Every construct that tapeless cannot compile in the functions of `path` that it
    compiles (see `frontend.reach`: those given to a transform in the file, those named
    in `entries`, and what they reach). A file that gives none of its functions to a
    transform and names no entry is a module of functions compiled elsewhere: all its
    top-level functions are checked. What limited the check (a file that does not
    import, so only the static checks ran) is appended to `notes`."""
    filename = str(Path(path).resolve())
    text = Path(path).read_text()
    lines = text.splitlines(True)
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as e:
        line = e.lineno or 0
        loc = Location(filename, line, max((e.offset or 1) - 1, 0),
                       lines[line - 1] if 0 < line <= len(lines) else "")
        return [Finding(loc, f"syntax error: {e.msg}", "fix the syntax; Python cannot "
                        "run this file either")]
    modules = _module_aliases(tree)
    builtin_methods = frozenset(METHODS) | frozenset(
        name for t in BUILTIN_RECEIVERS for name in dir(t))
    reached = compiled_functions(tree, list(entries or ()), builtin_methods)
    if reached.functions or reached.imported:
        functions = _outermost(reached.functions)
    else:
        functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef,
                                                            ast.AsyncFunctionDef))]
    checker = _Checker(filename, lines, modules)
    for fn in functions:
        checker.declared = {}
        if isinstance(fn, ast.AsyncFunctionDef):
            checker.visit_AsyncFunctionDef(fn)
        else:
            checker.visit(fn)
    findings = checker.findings
    seen = {(f.loc.filename, f.loc.line, f.loc.col) for f in findings}
    compiled: list[tuple[ast.ClassDef | None, Definition]] = [
        (reached.owner.get(fn), fn) for fn in functions
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and
        (fn in reached.owner or fn in tree.body)]
    notes = notes if notes is not None else []
    # (Two functions may reach one error: it is reported once.)
    for f in _compile_each(path, compiled, notes, reached.imported):
        if (f.loc.filename, f.loc.line, f.loc.col) not in seen:
            seen.add((f.loc.filename, f.loc.line, f.loc.col))
            findings.append(f)
    # (The file's own findings first, then those in the modules it imports.)
    return sorted(findings, key=lambda f: (f.loc.filename != filename, f.loc.filename,
                                           f.loc.line, f.loc.col))


def _outermost(functions: list[Function]) -> list[Function]:
    """The functions not nested in another of them (checking one checks its nested
    functions)."""
    inside = {id(n) for fn in functions for n in ast.walk(fn) if n is not fn}
    return [fn for fn in functions if id(fn) not in inside]


def _compile_each(path: str, functions: list[tuple[ast.ClassDef | None, Definition]],
                  notes: list[str], imported: list[str]) -> list[Finding]:
    """Compile each top-level function and method, and the functions imported by name
    and given to a transform, for what only the compiler finds. The file is imported as
    a module (not run as `__main__`)."""
    from .parser import parse
    from .source import unwrap

    name = f"_tapeless_check_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return []
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # (As `python FILE.py` does, the file's folder comes first on the import path.)
    folder = str(Path(path).resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # (it does not import: static checks only)
        sys.modules.pop(name, None)
        notes.append(f"{path} does not import ({type(e).__name__}: {e}): only the checks "
                     "that need no compiling ran")
        return []
    finally:
        sys.path.remove(folder)
    found: list[Finding] = []
    targets: list[tuple[Any, int, int]] = []
    for cls, fn_node in functions:
        owner = module if cls is None else getattr(module, cls.name, None)
        fn = inspect.getattr_static(owner, fn_node.name, None) if owner is not None else None
        targets.append((fn, fn_node.lineno, fn_node.col_offset))
    for imported_name in imported:
        fn = unwrap(getattr(module, imported_name, None))
        if isinstance(fn, types.FunctionType):
            targets.append((fn, fn.__code__.co_firstlineno, 0))
    for fn, line, col in targets:
        fn = getattr(fn, "__func__", fn)  # (a staticmethod's or classmethod's function)
        if not isinstance(fn, types.FunctionType) or refused_library(fn) or \
                installed_package(fn):
            continue
        try:
            parse(fn)
        except CompileError as e:
            filename = fn.__code__.co_filename
            loc = e.loc or Location(filename, line, col, linecache.getline(filename, line))
            found.append(Finding(loc, e.message, e.hint))
        except Exception as e:  # noqa: BLE001  (a bug of tapeless's: say so, go on)
            notes.append(f"compiling {fn.__qualname__} failed inside tapeless "
                         f"({type(e).__name__}: {e}); please report it")
    sys.modules.pop(name, None)
    return found
