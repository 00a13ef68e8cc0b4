"""What the native lowering says of `tl.vmap`'s batched code it cannot lower.

Where `tl.vmap` batches an `if` (or an `and`/`or`, a `break` or a `continue` in a masked
loop) whose condition differs across the batch, it selects between the branches' values
per element. Where it knew, as it batched, how many axes each example of the values has,
the select is `np.where` of arrays (`batch_rules.select_shaped`), which native code runs;
where it did not (a branch that returns the loop's state as a tuple through another
branch, a flag read before vmap knew its kind), the select is the generic
`batch_rules.select`: it tests for placeholders of unbound variables and walks
`tree_leaves` of tuples whose items differ in type, pytree code that Numba cannot type.
Such a program runs on the Python backend; `generic_select` says why, at the user's
line of the `if` (or loop) whose values it joins, not at the helper's lines."""

from __future__ import annotations

import ast

from .. import runtime as _rt
from .native_ast import parents

# The runtime's pytree helpers that only vmap's generic select leaves in a module (by the
# runtime's functions, whose names generated code spells).
_PYTREE_HELPERS = tuple(f.__name__ for f in (_rt.tree_leaves, _rt.tree_unflatten,
                                             _rt.same_structure))


def _helper_named(node: ast.AST, aliases: set[str]) -> str | None:
    """The pytree helper `node` (`_rt.tree_leaves`, or a name bound to it) names."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
            node.value.id == "_rt" and node.attr in _PYTREE_HELPERS:
        return node.attr
    if isinstance(node, ast.Name) and node.id in aliases:
        return node.id
    return None


def generic_select(tree: ast.Module) -> tuple[str, list[int]] | None:
    """Why the generated module `tree` is not lowered, with the lines of the first
    generic select's call of a pytree helper and of the `if` and `while` statements
    around it, innermost first (the first with a line of the user's own, not of the
    helper inlined, is the user's condition), or None where no pytree helper is
    called (or the module is not batched code: it never raises `RaggedBatch`)."""
    if not any(isinstance(n, ast.Name) and n.id == "RaggedBatch" for n in ast.walk(tree)):
        return None
    aliases = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
               for t in n.targets if isinstance(t, ast.Name) and
               _helper_named(n.value, set()) is not None}
    parent = parents(tree)
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and
                 _helper_named(n.func, aliases) is not None]
        if calls:
            first = min(calls, key=lambda n: n.lineno)
            lines = [first.lineno]
            up = parent.get(id(first))
            while up is not None and up is not fn:
                if isinstance(up, (ast.If, ast.While)):
                    lines.append(up.lineno)
                up = parent.get(id(up))
            return ("tl.vmap's select between the values of branches whose condition "
                    "differs across the batch, where vmap did not know how many axes "
                    "each example of them has when it batched the code (the generic "
                    "`batch_rules.select`: tests for unbound placeholders and "
                    "`tree_leaves` over tuples whose items differ in type), which Numba "
                    "cannot type: a gap of tl.vmap's batching, not of the program; it "
                    "runs on the Python backend", lines)
    return None
