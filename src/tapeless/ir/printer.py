"""Readable text for IR graphs (what `tl.ir(f)` and `tapeless show` print)."""

from __future__ import annotations

from typing import Any

from .nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    Parameter,
    free_variables,
    graph_nodes,
    reachable_graphs,
)
from .primitive import Primitive


def _graph_label(g: Graph) -> str:
    return f"@{g.name}"


def _const_text(value: Any) -> str:
    if isinstance(value, Graph):
        return _graph_label(value)
    if isinstance(value, Primitive):
        return value.name
    if callable(value) and hasattr(value, "__name__"):
        mod = getattr(value, "__module__", None) or ""
        return f"{mod.split('.')[0] + '.' if mod and mod != 'builtins' else ''}{value.__name__}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Names:
    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.used: set[str] = set()

    def __call__(self, node: Node) -> str:
        if isinstance(node, Constant):
            return _const_text(node.value)
        if node.id not in self.names:
            base = node.name or ("p" if isinstance(node, Parameter) else "")
            name = base if base and base not in self.used else f"{base}{len(self.names)}"
            self.used.add(name)
            self.names[node.id] = name
        return "%" + self.names[node.id]


def print_graph(root: Graph) -> str:
    """Print `root` and every graph it references, one block per graph."""
    names = _Names()
    blocks = []
    for g in reachable_graphs(root):
        params = ", ".join(names(p) for p in g.parameters)
        header = f"graph {_graph_label(g)}({params})"
        fvs = free_variables(g)
        if fvs:
            header += "  # free variables: " + ", ".join(names(fv) for fv in fvs)
        if g.loc is not None:
            header += f"  # {g.loc}"
        lines = [header + ":"]
        for node in graph_nodes(g):
            assert isinstance(node, Apply)
            callee, *args = node.inputs
            text = f"{names(callee)}({', '.join(names(a) for a in args)})"
            effect = "  # effect" if node in g.effects else ""
            lines.append(f"    {names(node)} = {text}{effect}")
        lines.append(f"    return {names(g.output) if g.output is not None else '?'}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
