"""Which `return` of a program's entry native code took, for the result's NumPy types.

Numba returns Python numbers; the Python backend's result may hold NumPy scalars
(`np.sum(x)` is an `np.float64`, `np.logical_not(x)` an `np.bool_`), and native code
gives its result the types the Python backend's had (`native.type_spec`). Where the
entry returns from several places, those types may differ by the place
(`np.sum(x) if c else 1.0`: `np.float64` or `float`; `~` of an `np.bool_` is not `~` of
a bool). So a non-recursive entry with two or more `return` statements is called through
a copy of it (`add_path_entry`) whose each `return v` is `return v, k`, k the statement's
number: the first call that takes a `return` is checked against the Python backend, as
the program's first call is, and gives later calls through that `return` its types."""

from __future__ import annotations

import ast
import copy

# The copy's name: the entry's, with this after it.
SUFFIX = "_nt_paths"


def own_returns(fn: ast.FunctionDef) -> list[ast.Return]:
    """The `return` statements of `fn` itself (not of the functions defined in it), in
    the order of the source."""
    found: list[ast.Return] = []
    todo: list[ast.AST] = list(fn.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Return):
            found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                 ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
    return sorted(found, key=lambda r: (r.lineno, r.col_offset))


def add_path_entry(tree: ast.Module, root: str) -> str | None:
    """Add to the lowered module `tree` the copy of its entry `root` that returns
    `(value, k)` at its k-th `return` (see the module's docstring), after `root`; its
    name, or None where `root` returns from one place (or is not a function of
    `tree`)."""
    at = next((i for i, n in enumerate(tree.body)
               if isinstance(n, ast.FunctionDef) and n.name == root), None)
    if at is None:
        return None
    fn = tree.body[at]
    assert isinstance(fn, ast.FunctionDef)
    if len(own_returns(fn)) < 2:
        return None
    paths = copy.deepcopy(fn)
    paths.name = root + SUFFIX
    for k, ret in enumerate(own_returns(paths)):
        value = ret.value if ret.value is not None else ast.Constant(None)
        ret.value = ast.copy_location(ast.Tuple([value, ast.Constant(k)], ast.Load()), ret)
    tree.body.insert(at + 1, ast.fix_missing_locations(paths))
    return paths.name
