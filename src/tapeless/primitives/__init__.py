"""Primitives: the operations tapeless does not look inside, each registered once with
its signature, implementation, emission and derivative rule."""

from . import core, numpy_ops  # noqa: F401  (registration side effects)
from .registry import ATTRIBUTES, BY_CALLABLE, METHODS, PRIMITIVES, Primitive, lookup_callable

__all__ = ["ATTRIBUTES", "BY_CALLABLE", "METHODS", "PRIMITIVES", "Primitive", "lookup_callable"]
