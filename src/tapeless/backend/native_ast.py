"""Small helpers over Python's `ast` shared by the native lowering's passes
(`native_*.py`): a node's parents, the statement lists of a node, name tests."""

from __future__ import annotations

import ast


def parents(node: ast.AST) -> dict[int, ast.AST]:
    """Each node under `node` (by id) to its parent."""
    return {id(c): n for n in ast.walk(node) for c in ast.iter_child_nodes(n)}


def blocks(node: ast.AST, fields: tuple[str, ...] = ("body", "orelse", "finalbody")
           ) -> list[list[ast.stmt]]:
    """The statement lists of `node` and of every node in it (their `fields`), outermost
    first."""
    out: list[list[ast.stmt]] = []
    for n in ast.walk(node):
        for field in fields:
            block = getattr(n, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                out.append(block)
    return out


def block_of(stmt: ast.stmt, parent: dict[int, ast.AST]) -> list[ast.stmt]:
    """The statement list of its parent that holds `stmt`."""
    p = parent[id(stmt)]
    for field in ("body", "orelse", "finalbody"):
        block = getattr(p, field, None)
        if isinstance(block, list) and any(s is stmt for s in block):
            return block
    raise AssertionError("a statement outside its parent's blocks")


def is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name
