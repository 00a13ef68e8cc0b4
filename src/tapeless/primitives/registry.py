"""The primitive registry: one `Primitive` (`tapeless.ir.primitive`) per operation, with
its signature, its run-time implementation, its declared properties and (registered by
the rules modules) its reverse rule. How a backend spells it is the backend's (the
Python backend's table: `tapeless.backend.spelling`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ir.primitive import Primitive

__all__ = ["Primitive", "PRIMITIVES", "BY_CALLABLE", "METHODS", "ATTRIBUTES", "register",
           "lookup_callable", "rule"]


# Every primitive by name, and the Python callables (np.tanh, math.exp, len, ...) that
# user code may call, mapped to the primitive they compile to.
PRIMITIVES: dict[str, Primitive] = {}
BY_CALLABLE: dict[int, Primitive] = {}
# Method name -> primitive whose first parameter is the receiver.
METHODS: dict[str, Primitive] = {}
# Attribute name on values -> primitive with one parameter (the value).
ATTRIBUTES: dict[str, Primitive] = {}


def register(prim: Primitive, *callables: Any) -> Primitive:
    assert prim.name not in PRIMITIVES, prim.name
    PRIMITIVES[prim.name] = prim
    for fn in callables:
        BY_CALLABLE[id(fn)] = prim
    return prim


def lookup_callable(fn: Any) -> Primitive | None:
    if isinstance(fn, Primitive):
        return fn
    try:
        return BY_CALLABLE.get(id(fn))
    except TypeError:
        return None


def rule(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a reverse rule: a function in the supported subset that takes the
    primitive's parameters and returns (value, backpropagator); the backpropagator maps
    the output's sensitivity to a tuple with one sensitivity per parameter."""

    def register_rule(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            PRIMITIVES[name].reverse_rule = fn
        return fn

    return register_rule
