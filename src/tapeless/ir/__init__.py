"""The graph IR (nodes, graphs) and its printer."""

from .nodes import Apply, Constant, Graph, Location, Node, Parameter
from .printer import print_graph

__all__ = ["Apply", "Constant", "Graph", "Location", "Node", "Parameter", "print_graph"]
