"""Backends: IR graphs to runnable code."""

from .pygen import Compiled, compile_graph

__all__ = ["Compiled", "compile_graph"]
