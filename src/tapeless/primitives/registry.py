"""The primitive registry: one `Primitive` per operation, holding its signature, its
run-time implementation, how the backend spells a call to it, and (registered by
`tapeless.primitives.rules`) its reverse rule."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

Emitter = Callable[[list[str]], str]


class Primitive:
    """An operation the compiler does not look inside.

    `signature` binds call-site arguments (positional and keyword) to the primitive's
    parameters; a `*name` parameter is passed as one tuple. `emit` turns the rendered
    arguments (one string per parameter, in order) into Python source."""

    def __init__(self, name: str, impl: Callable[..., Any] | None, spec: str, emit: Emitter,
                 *, effect: bool = False, statement: bool = False,
                 differentiable: bool = True, variadic: bool = False):
        self.name = name
        self.impl = impl
        self.spec = spec
        self.signature = inspect.signature(eval(f"lambda {spec}: None")) if spec else \
            inspect.Signature()
        self.emit = emit
        self.effect = effect
        self.statement = statement
        self.differentiable = differentiable
        # Variadic in the IR: its trailing arguments are separate inputs, which its rule
        # receives packed as one `*args` tuple.
        self.variadic = variadic
        # Filled in by the rules module: a Python function written in the supported
        # subset that returns (value, backpropagator).
        self.reverse_rule: Callable[..., Any] | None = None

    @property
    def param_names(self) -> list[str]:
        return list(self.signature.parameters)

    @property
    def vararg_index(self) -> int | None:
        for i, p in enumerate(self.signature.parameters.values()):
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                return i
        return None

    def default(self, index: int) -> Any:
        p = list(self.signature.parameters.values())[index]
        return p.default

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *args: Any) -> Any:
        """Run the primitive with its parameters in order (varargs as one tuple)."""
        assert self.impl is not None, self.name
        return self.impl(*args)


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
