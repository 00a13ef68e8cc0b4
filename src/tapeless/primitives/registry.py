"""The primitive registry: one `Primitive` (`tapeless.ir.primitive`) per operation, with
its signature, its run-time implementation, its declared properties, how the Python
backend spells a call to it, and (registered by the rules modules) its reverse rule."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..ir.primitive import Emitter, Primitive

__all__ = ["Emitter", "Primitive", "PRIMITIVES", "BY_CALLABLE", "METHODS", "ATTRIBUTES",
           "register", "lookup_callable", "rule"]


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


# --- emitters -------------------------------------------------------------------------


def call_emitter(callee: str, npos: int | None = None,
                 spec: str = "") -> Emitter:
    """`callee(a, b, name=c)`: the first `npos` parameters positionally, the rest by
    keyword, omitted when they are the literal default (positional ones when nothing
    follows them)."""
    params = list(inspect.signature(eval(f"lambda {spec}: None")).parameters.values()) \
        if spec else []

    def emit(args: list[str]) -> str:
        parts = []
        droppable = 0  # trailing positional parts that are their parameter's default
        for i, text in enumerate(args):
            if i < len(params):
                p = params[i]
                if p.kind is inspect.Parameter.VAR_POSITIONAL:
                    parts.append(_star(text))
                    droppable = 0
                    continue
                required = p.default is inspect.Parameter.empty
                if (npos is None and required) or (npos is not None and i < npos):
                    parts.append(text)
                    default = not required and text == repr(p.default)
                    droppable = droppable + 1 if default else 0
                    continue
                if text == repr(p.default):
                    continue
                parts.append(f"{p.name}={text}")
            else:
                parts.append(text)
            droppable = 0
        parts = parts[:len(parts) - droppable]
        return f"{callee}({', '.join(p for p in parts if p)})"

    emit.call = True  # type: ignore[attr-defined]
    emit.callee = callee  # type: ignore[attr-defined]
    return emit


def _star(text: str) -> str:
    """Splice a rendered tuple into a call: `(a, b)` -> `a, b`, `t` -> `*t`."""
    if text.startswith("(") and text.endswith(")") and _balanced_tuple(text):
        inner = text[1:-1].rstrip()
        if inner.endswith(","):
            inner = inner[:-1]
        return inner
    return "*" + text


def _balanced_tuple(text: str) -> bool:
    """True when `text` is one parenthesized tuple display (not `(a)(b)`)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return text == "()" or "," in text


# Python's operator precedence, lowest first; used to parenthesize only where needed.
PRECEDENCE = {"if": 1, "or": 2, "and": 3, "not ": 4, "in": 5, "not in": 5, "is": 5,
              "is not": 5, "<": 5, "<=": 5, ">": 5, ">=": 5, "==": 5, "!=": 5, "|": 6,
              "^": 7, "&": 8, "<<": 9, ">>": 9, "+": 10, "-": 10, "*": 11, "@": 11, "/": 11,
              "//": 11, "%": 11, "unary": 12, "**": 13}
ATOM = 16


def infix(op: str) -> Emitter:
    def emit(a: list[str]) -> str:
        return f"({a[0]} {op} {a[1]})"

    emit.op = op  # type: ignore[attr-defined]
    return emit


def prefix(op: str) -> Emitter:
    def emit(a: list[str]) -> str:
        return f"({op}{a[0]})"

    emit.unary = op  # type: ignore[attr-defined]
    return emit


def method_emitter(name: str, spec: str, npos: int | None = None) -> Emitter:
    inner = call_emitter(f".{name}", npos, spec)

    def emit(args: list[str]) -> str:
        return f"{args[0]}{inner(args[1:])}"

    return emit


def rule(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a reverse rule: a function in the supported subset that takes the
    primitive's parameters and returns (value, backpropagator); the backpropagator maps
    the output's sensitivity to a tuple with one sensitivity per parameter."""

    def register_rule(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            PRIMITIVES[name].reverse_rule = fn
        return fn

    return register_rule
