"""The optimizer's rewrite registry: a rewrite is registered once, by the primitives it
matches (`rewrite`), and a step that is not a rewrite (inlining, loop transformations)
by its name (`step`). The order of registration is the pass order: `TAPELESS_OPTIMIZE=N`
enables the first N (`passes_up_to`), and the rules of one primitive are tried in it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..ir.clone import is_recursive
from ..ir.nodes import Apply, Graph, Node
from ..primitives import PRIMITIVES

if TYPE_CHECKING:
    from .loop_facts import LoopFacts

P = PRIMITIVES
INLINE_MAX_NODES = 60

Rewrite = Callable[["Context", Apply], "Node | None"]
# Rewrites by the name of the primitive they match, in the order they are tried.
RULES: dict[str, list[tuple[str, Rewrite]]] = {}
# Every rewrite's and step's name, in the order of registration.
PASS_ORDER: list[str] = []


def rewrite(*prims: str) -> Callable[[Rewrite], Rewrite]:
    """Register a rewrite of nodes applying any of `prims`, named after the function."""
    def register(fn: Rewrite) -> Rewrite:
        name = fn.__name__.lstrip("_")
        step(name)
        for p in prims:
            assert p in PRIMITIVES, f"{name} rewrites the unknown primitive {p}"
            RULES.setdefault(p, []).append((name, fn))
        return fn

    return register


def step(name: str) -> str:
    """Register a step of the optimizer that is not a rewrite of one node."""
    assert name not in PASS_ORDER, f"two passes are named {name}"
    PASS_ORDER.append(name)
    return name


def passes_up_to(level: int | str) -> set[str]:
    """The passes enabled at a level: a count, or the name of the last pass."""
    if isinstance(level, str):
        if level not in PASS_ORDER:
            raise ValueError(f"unknown pass {level!r}; passes: {', '.join(PASS_ORDER)}")
        return set(PASS_ORDER[:PASS_ORDER.index(level) + 1])
    return set(PASS_ORDER[:level])


def allowed(enabled: set[str] | None, name: str) -> bool:
    return enabled is None or name in enabled


@dataclass
class Context:
    """What rewrites of one round share: the loop facts, call counts and the
    expressions computed so far (common subexpressions)."""

    root: Graph
    facts: LoopFacts | None = None
    call_sites: dict[int, int] = field(default_factory=dict)
    recursive: dict[int, bool] = field(default_factory=dict)
    enabled: set[str] | None = None
    # Common subexpressions: the first node computing each (graph, primitive, inputs).
    computed: dict[tuple, Node] = field(default_factory=dict)
    # Copies of callees specialized to constant arguments (`specialize_call`), by the
    # callee and the constants' meanings.
    specialized: dict[tuple, Graph] = field(default_factory=dict)

    def is_recursive(self, g: Graph) -> bool:
        if g.id not in self.recursive:
            self.recursive[g.id] = is_recursive(g)
        return self.recursive[g.id]
