"""What the front end keeps while it compiles a function: its scopes, the block of a
graph under construction with the current value of each variable, loop contexts, and
the parameter specs it records on graphs."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ..ir.nodes import Graph, Node
from .source import ScopeInfo


@dataclass
class ParamSpec:
    name: str
    kind: str  # "pos", "vararg", "kwonly" or "varkw" (`**name`, a dict)
    default: Node | None = None


@dataclass
class Scope:
    """A Python function scope (def, lambda or comprehension) being compiled."""

    info: ScopeInfo
    parent: Scope | None
    def_node: ast.stmt | ast.expr | None  # where this scope is defined in its parent
    immediate: bool = False  # a comprehension: runs where it is defined
    def_graphs: dict[str, Graph] = field(default_factory=dict)

    def is_local(self, name: str) -> bool:
        return name in self.info.assigned and name not in self.info.declared


class Block:
    """A graph under construction, with the current value of each variable."""

    def __init__(self, graph: Graph, scope: Scope, parent: Block | None):
        self.graph = graph
        self.scope = scope
        self.parent = parent
        self.vars: dict[str, Node] = {}

    def lookup(self, name: str) -> Node | None:
        block: Block | None = self
        while block is not None and block.scope is self.scope:
            if name in block.vars:
                return block.vars[name]
            block = block.parent
        return None


@dataclass
class LoopContext:
    state: list[str]
    has_break: bool
    has_return: bool
    broke: Node | None = None  # after the loop: whether it ended by `break`
