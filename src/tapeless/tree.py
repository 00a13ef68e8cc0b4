"""Trees of values, with JAX's names: `tree_map`, `tree_leaves`, `tree_structure` and
`tree_unflatten`. A tree is a tuple, a list, a dict (keys sorted, as JAX orders them), a
NamedTuple or a dataclass of trees; None has no leaves; anything else is a leaf. The same
functions work in Python and inside compiled code, where they are differentiable (an Adam
update over a dict or a dataclass of parameters compiles as written)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .runtime import tree_leaves, tree_unflatten

__all__ = ["TreeDef", "tree_leaves", "tree_map", "tree_structure", "tree_unflatten"]


@dataclass(frozen=True)
class TreeDef:
    """The structure of a tree: the tree itself, its leaves standing for their places."""

    skeleton: Any

    @property
    def num_leaves(self) -> int:
        return len(tree_leaves(self.skeleton))


def tree_structure(tree: Any) -> TreeDef:
    """The structure of `tree`, for `tree_unflatten`."""
    return TreeDef(tree)


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """A tree of `tree`'s structure whose leaves are `f(leaf, *leaves of rest)`; each of
    `rest` has `tree`'s structure. (Written in the subset tapeless compiles: compiled
    code calling it is differentiated through it.)"""
    leaves = tree_leaves(tree)
    others = [tree_leaves(r) for r in rest]
    for o in others:
        if len(o) != len(leaves):
            raise ValueError(f"tree_map: a tree of {len(o)} leaves where {len(leaves)} "
                             "were expected (the trees must have one structure)")
    return tree_unflatten(tree, [f(leaves[i], *[o[i] for o in others])
                                 for i in range(len(leaves))])
