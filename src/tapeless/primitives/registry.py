"""The primitive registry: one `Primitive` (`tapeless.ir.primitive`) per operation, with
its signature, its run-time implementation, its declared properties and (registered by
the rules modules) its reverse rule. How a backend spells it is the backend's (the
Python backend's table: `tapeless.backend.spelling`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ir.primitive import Primitive

__all__ = ["Primitive", "PRIMITIVES", "BY_CALLABLE", "METHODS", "ATTRIBUTES", "register",
           "lookup_callable", "rule", "jvp", "linear", "jvp_from_reverse"]


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


def jvp(*names: str, joint: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a forward rule (see `Primitive.jvp_rule`): a function in the supported
    subset that takes the primitive's parameters and returns (value, one map per
    parameter from its tangent to the result's tangent, None where it has none); with
    `joint`, it takes the parameters and then their tangents and returns (value,
    tangent)."""

    def register_rule(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            # (One forward rule per primitive: a second would silently replace the first.)
            assert PRIMITIVES[name].jvp_rule is None and not PRIMITIVES[name].linear and \
                not PRIMITIVES[name].jvp_from_reverse, f"two forward rules for {name}"
            PRIMITIVES[name].jvp_rule = fn
            PRIMITIVES[name].jvp_joint = joint
        return fn

    return register_rule


def linear(positions: tuple[int, ...], *names: str) -> None:
    """Declare primitives linear (jointly) in the parameters at `positions`: their
    forward rule is the primitive applied to those parameters' tangents."""
    for name in names:
        assert PRIMITIVES[name].jvp_rule is None and not PRIMITIVES[name].linear, \
            f"two forward rules for {name}"
        PRIMITIVES[name].linear = positions


def jvp_from_reverse(*names: str) -> None:
    """Declare one-parameter primitives whose Jacobian is diagonal: the backpropagator
    of their reverse rule maps a tangent to the result's."""
    for name in names:
        prim = PRIMITIVES[name]
        assert len(prim.param_names) == 1 and prim.reverse_rule is not None, name
        prim.jvp_from_reverse = True
