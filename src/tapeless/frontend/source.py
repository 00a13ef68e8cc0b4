"""Finding a Python function's syntax tree and the names each scope binds."""

from __future__ import annotations

import ast
import linecache
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any, cast

from ..errors import CompileError
from ..ir.nodes import Location

_module_cache: dict[str, tuple[int, ast.Module]] = {}
# Per parsed module: its function definitions by (name, line of `def` or of a decorator)
# and its lambdas by line, so finding a function is a lookup, not a walk of the module.
_Defs = dict[tuple[str, int], ast.FunctionDef | ast.AsyncFunctionDef]
_Lambdas = dict[int, list[ast.Lambda]]
_index_cache: dict[int, tuple[ast.Module, tuple[_Defs, _Lambdas]]] = {}


def _index(tree: ast.Module) -> tuple[_Defs, _Lambdas]:
    cached = _index_cache.get(id(tree))
    if cached is not None and cached[0] is tree:
        return cached[1]
    defs: _Defs = {}
    lambdas: _Lambdas = {}
    for cand in ast.walk(tree):
        if isinstance(cand, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for line in [cand.lineno] + [d.lineno for d in cand.decorator_list]:
                defs.setdefault((cand.name, line), cand)  # first in walk order wins
        elif isinstance(cand, ast.Lambda):
            lambdas.setdefault(cand.lineno, []).append(cand)
    _index_cache[id(tree)] = (tree, (defs, lambdas))
    return defs, lambdas


@dataclass
class FunctionSource:
    node: ast.FunctionDef | ast.Lambda
    filename: str
    lines: list[str]

    def loc(self, node: ast.AST) -> Location:
        return _location(self.filename, self.lines, node)


def _location(filename: str, lines: list[str], node: ast.AST) -> Location:
    line = getattr(node, "lineno", 0)
    col = getattr(node, "col_offset", 0)
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return Location(filename, line, col, text)


def _parse_file(filename: str) -> tuple[list[str], ast.Module] | None:
    lines = linecache.getlines(filename)
    if not lines:
        return None
    text = "".join(lines)
    cached = _module_cache.get(filename)
    if cached is not None and cached[0] == hash(text):
        return lines, cached[1]
    try:
        tree = ast.parse(text, filename)
    except SyntaxError:
        return None
    _module_cache[filename] = (hash(text), tree)
    return lines, tree


_segment_cache: dict[tuple[str, int, str], ast.FunctionDef | ast.AsyncFunctionDef | None] = {}


def _last_line(code: CodeType) -> int:
    """The last line with bytecode of `code` or of a function nested in it."""
    last = max((line for _, _, line in code.co_lines() if line is not None), default=0)
    for c in code.co_consts:
        if isinstance(c, CodeType):
            last = max(last, _last_line(c))
    return last


def _top_level_def(code: CodeType) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """A module-level `def`, parsed alone (its lines up to the next module-level
    statement), not with its whole module: most of a first compile's time in a big file.
    None where that does not work out (then the module is parsed)."""
    filename, first = code.co_filename, code.co_firstlineno
    lines = linecache.getlines(filename)
    if not (0 < first <= len(lines)) or not lines[first - 1][:1].strip():
        return None
    end = first
    while end < len(lines) and lines[end - 1].startswith("@"):  # decorators, then `def`
        end += 1
    # Up to the next line that starts at column 0 (other than a comment or a bracket).
    while end < len(lines) and (not lines[end][:1].strip() or lines[end][:1] in "#)]}"):
        end += 1
    text = "".join(lines[first - 1:end])
    key = (filename, first, text)
    if key in _segment_cache:
        return _segment_cache[key]
    node: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    try:
        # (Blank lines in front give the nodes their line numbers in the file: cheaper
        # than renumbering every node afterwards.)
        tree = ast.parse("\n" * (first - 1) + text, filename)
    except SyntaxError:
        tree = None
    if tree is not None and len(tree.body) == 1 and \
            isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) and \
            tree.body[0].name == code.co_name:
        if (tree.body[0].end_lineno or 0) >= _last_line(code):
            node = tree.body[0]
    _segment_cache[key] = node
    return node


def function_source(fn: FunctionType) -> FunctionSource:
    """The syntax tree of `fn` (a `def` or a `lambda`), located in its file."""
    code = fn.__code__
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | None = \
        _top_level_def(code) if code.co_name != "<lambda>" else None
    if node is not None:
        lines = linecache.getlines(code.co_filename)
    else:
        parsed = _parse_file(code.co_filename)
        if parsed is None:
            raise CompileError(
                f"the source of {fn.__qualname__} is not available "
                f"(defined in {code.co_filename})", None,
                "define the function in a .py file so tapeless can read its source")
        lines, tree = parsed
        first = code.co_firstlineno
        defs, lambdas = _index(tree)
        if code.co_name == "<lambda>":
            node = _find_lambda(lambdas.get(first, []), code)
        else:
            node = defs.get((code.co_name, first))
        if node is None:
            raise CompileError(f"could not find the source of {fn.__qualname__} in "
                               f"{code.co_filename}:{first}")
    if isinstance(node, ast.AsyncFunctionDef):
        raise CompileError("async functions are not supported",
                           _location(code.co_filename, lines, node), "write an ordinary `def`")
    return FunctionSource(node, code.co_filename, lines)


def _find_lambda(candidates: list[ast.Lambda], code: CodeType) -> ast.Lambda | None:
    first = code.co_firstlineno
    argnames = list(code.co_varnames[:code.co_argcount])
    positions = [(p[0], p[2]) for p in code.co_positions()
                 if p[0] is not None and p[2] is not None]
    best = None
    best_key = None
    for cand in candidates:
        if cand.lineno != first:
            continue
        if [a.arg for a in cand.args.posonlyargs + cand.args.args] != argnames:
            continue
        body = cand.body
        start = (body.lineno, body.col_offset)
        end = (body.end_lineno or body.lineno, body.end_col_offset or 0)
        inside = sum(1 for p in positions if start <= p <= end)
        size = (end[0] - start[0]) * 10000 + (end[1] - start[1])
        key = (-inside, size)
        if best_key is None or key < best_key:
            best, best_key = cand, key
    return best


# --- scopes -----------------------------------------------------------------------


@dataclass
class ScopeInfo:
    """The names a function scope binds, where each is assigned, and what is declared
    global/nonlocal."""

    assigned: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    def_only: set[str] = field(default_factory=set)
    declared: dict[str, ast.AST] = field(default_factory=dict)


def analyze_scope(fn: ast.FunctionDef | ast.Lambda | None, body: Sequence[ast.AST],
                  params: list[str]) -> ScopeInfo:
    info = ScopeInfo()
    for p in params:
        info.assigned.setdefault(p, []).append((0, 0))
    kinds: dict[str, set[str]] = {}

    def bind(name: str, node: ast.stmt | ast.expr, kind: str) -> None:
        info.assigned.setdefault(name, []).append((node.lineno, node.col_offset))
        kinds.setdefault(name, set()).add(kind)

    # The loops of this scope around the node being visited: a nested function defined
    # inside a loop must not read a variable that the loop assigns (see _check_capture).
    loops: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        if type(node) is ast.Name:
            if type(node.ctx) is ast.Store:
                bind(node.id, node, "assign")
            return
        if type(node) is ast.Constant:
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            # (An attribute of tapeless's own on the AST node, read by _check_capture.)
            cast(Any, node)._tapeless_loops = list(loops)
        if isinstance(node, (ast.For, ast.While)):
            if isinstance(node, ast.For):
                visit(node.target)
                visit(node.iter)
            loops.append(node)
            for child in ([node.test] if isinstance(node, ast.While) else []) + node.body:
                visit(child)
            loops.pop()
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:  # (`import a.b` binds `a`)
                bind(alias.asname or alias.name.split(".")[0], node, "assign")
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bind(node.name, node, "def")
            for d in getattr(node, "decorator_list", []):
                visit(d)
            if not isinstance(node, ast.ClassDef):
                for d in node.args.defaults + [d for d in node.args.kw_defaults if d]:
                    visit(d)
            return
        if isinstance(node, ast.Lambda):
            for d in node.args.defaults:
                visit(d)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            visit(node.generators[0].iter)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bind(node.id, node, "assign")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                info.declared[name] = node
        elif isinstance(node, ast.NamedExpr):
            bind(node.target.id, node.target, "assign")
            visit(node.value)
            return
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bind((alias.asname or alias.name).split(".")[0], node, "import")
        for sub in ast.iter_child_nodes(node):
            visit(sub)

    for stmt in body:
        visit(stmt)
    info.def_only = {n for n, k in kinds.items()
                     if k == {"def"} and len(info.assigned[n]) == 1 and n not in params}
    return info


def param_names(args: ast.arguments) -> list[str]:
    names = [a.arg for a in args.posonlyargs + args.args]
    if args.vararg:
        names.append(args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append(args.kwarg.arg)
    return names


def unwrap(fn: Any) -> Any:
    while hasattr(fn, "__tapeless_wrapped__"):
        fn = fn.__tapeless_wrapped__
    return fn
