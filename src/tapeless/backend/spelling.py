"""How the Python backend spells each primitive: one table (`spelling`). A NumPy or
`math` function is spelled `np.name(...)` / `math.name(...)` (a `scipy.special`
function `_sp.name(...)`, a `scipy.linalg` one `_sla.name(...)`), a method `x.name(...)`, a
builtin by its name and a runtime helper `_rt.name(...)`, by where its callable lives;
the operators and the structural primitives are written out here. Another backend keeps
its own table."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable
from typing import Any, cast

from .. import runtime
from ..ir.primitive import Primitive
from ..primitives import PRIMITIVES

# A spelling: the rendered arguments (one string per parameter, in order) -> source.
Emitter = Callable[[list[str]], str]


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

    marked = cast(Any, emit)  # (what the backend asks of a call's spelling)
    marked.call = True
    marked.callee = callee
    return emit


def _star(text: str) -> str:
    """Splice a rendered tuple into a call: `(a, b)` -> `a, b`, `t` -> `*t`."""
    if text.startswith("(") and text.endswith(")") and _balanced_tuple(text):
        inner = text[1:-1].rstrip()
        if inner.endswith(","):
            inner = inner[:-1]
        return inner
    return "*" + text


def one_group(text: str) -> bool:
    """Whether `text`, which starts with an opening bracket, is one bracketed group (not
    `(a)(b)` or `(a) + (b)`): its first bracket closes at its last character."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return True


def _balanced_tuple(text: str) -> bool:
    """True when `text` is one parenthesized tuple display (not `(a)(b)`)."""
    return one_group(text) and (text == "()" or "," in text)


# Python's operator precedence, lowest first; used to parenthesize only where needed.
PRECEDENCE = {"if": 1, "or": 2, "and": 3, "not ": 4, "in": 5, "not in": 5, "is": 5,
              "is not": 5, "<": 5, "<=": 5, ">": 5, ">=": 5, "==": 5, "!=": 5, "|": 6,
              "^": 7, "&": 8, "<<": 9, ">>": 9, "+": 10, "-": 10, "*": 11, "@": 11, "/": 11,
              "//": 11, "%": 11, "unary": 12, "**": 13}
ATOM = 16


def infix(op: str) -> Emitter:
    def emit(a: list[str]) -> str:
        return f"({a[0]} {op} {a[1]})"

    cast(Any, emit).op = op  # (an operator: the backend writes it inline)
    return emit


def prefix(op: str) -> Emitter:
    def emit(a: list[str]) -> str:
        return f"({op}{a[0]})"

    cast(Any, emit).unary = op
    return emit


def method_emitter(name: str, spec: str, npos: int | None = None) -> Emitter:
    inner = call_emitter(f".{name}", npos, spec)

    def emit(args: list[str]) -> str:
        return f"{args[0]}{inner(args[1:])}"

    return emit


def _required(spec: str) -> int:
    """How many leading parameters have no default (and are not `*args`)."""
    count = 0
    for part in spec.split(","):
        part = part.strip()
        if part == "/":  # (the end of the positional-only parameters)
            continue
        if not part or "=" in part or part.startswith("*"):
            break
        count += 1
    return count


def _emit_getattr(a: list[str]) -> str:
    name = a[1]
    if len(name) > 2 and name[0] == name[-1] and name[0] in "'\"" and name[1:-1].isidentifier():
        return f"{a[0]}.{name[1:-1]}"
    return f"getattr({a[0]}, {name})"


def _emit_index_concat(a: list[str]) -> str:
    inner = _star(a[1])  # `(x, c)` -> `x, c`; a tuple `t` -> `*t`, written `t`
    return f"{'np.r_' if a[0] == '0' else 'np.c_'}[{a[1] if inner[:1] == '*' else inner}]"


def _emit_count_nonzero(a: list[str]) -> str:
    """`np.count_nonzero(a)` of a whole array is `_rt.count_all(a)`, NumPy's C function
    without its Python wrapper; with an axis, NumPy's function."""
    if len(a) < 2 or a[1] == "None":
        return f"_rt.count_all({a[0]})"
    return _COUNT_ALONG(a)


_COUNT_ALONG = call_emitter("np.count_nonzero", 1, "a, axis=None")
cast(Any, _emit_count_nonzero).call = True
cast(Any, _emit_count_nonzero).callee = "_rt.count_all"


# Binary operators by primitive name.
OPERATORS = {
    "add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%",
    "pow": "**", "matmul": "@", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==",
    "ne": "!=", "is_": "is", "is_not": "is not", "bitand": "&", "bitor": "|", "bitxor": "^",
    "lshift": "<<", "rshift": ">>", "contains": "in", "not_contains": "not in",
}
UNARY = {"neg": "-", "pos": "+", "not_": "not ", "invert": "~"}
# Methods that take no keyword arguments (`dict.get`).
POSITIONAL_METHODS = {"get"}
# Written by the emitter itself, from their inputs (displays, indexing, `if not c: raise`).
STATEMENTS_AND_DISPLAYS = {"make_tuple", "make_list", "getitem", "tuple_getitem", "assert"}
# The primitives whose spelling is not that of where their callable lives.
WRITTEN: dict[str, Emitter] = {
    "make_dict": lambda a: f"dict(zip({a[0]}, {a[1]}))",
    "make_slice": lambda a: f"slice({a[0]}, {a[1]}, {a[2]})",
    "getattr": _emit_getattr,
    "switch": lambda a: f"({a[1]} if {a[0]} else {a[2]})",
    "call_star": lambda a: f"{a[0]}(*{a[1]})",
    "print": call_emitter("print", spec="*args, sep=' ', end='\\n'"),
    "truth": call_emitter("bool", spec="a"),
    "sum": call_emitter("sum", spec="iterable, start=0"),
    "min": call_emitter("min", spec="*args"),
    "max": call_emitter("max", spec="*args"),
    "slice": call_emitter("slice", spec="*args"),
    "raise": lambda a: f"raise {a[0]}",
    "class_of": call_emitter("_rt.class_of", spec="classinfo"),
    "as_sequence": call_emitter("_rt.as_sequence", spec="iterable"),
    "list_map": lambda a: f"[{a[0]}(_x) for _x in {a[1]}]",
    "list_flatmap": lambda a: f"[_y for _x in {a[1]} for _y in {a[0]}(_x)]",
    "construct": lambda a: f"{a[0]}({_star(a[1])})",
    "format": lambda a: f"format({a[0]}, {a[1]})",
    "convert": lambda a: f"{a[1]}({a[0]})",
    "join_strings": lambda a: f"''.join({a[0]})",
    "logistic": lambda a: f"(1.0 / (1.0 + np.exp(-{a[0]})))",
    "index_concat": _emit_index_concat,
    "np.count_nonzero": _emit_count_nonzero,
    "stack_new": lambda a: "[]",
    "stack_push": lambda a: f"{a[0]}.append({a[1]})",
    "stack_pop": lambda a: f"{a[0]}.pop()",
    "stack_nonempty": lambda a: a[0],
    "add_into_known": lambda a: f"{a[0]}[{a[1]}] += {a[2]}",
    "add_in_place": lambda a: f"{a[0]} += {a[1]}",
    "sub_in_place": lambda a: f"{a[0]} -= {a[1]}",
    "mul_in_place": lambda a: f"{a[0]} *= {a[1]}",
    "truediv_in_place": lambda a: f"{a[0]} /= {a[1]}",
}

_TABLE: dict[str, Emitter | None] = {}


def spelling(prim: Primitive) -> Emitter | None:
    """How a call of `prim` is written: a function of the rendered arguments (one string
    per parameter, in order); None for the loops and the primitives the emitter writes
    from their inputs itself (`STATEMENTS_AND_DISPLAYS`)."""
    if prim.name not in _TABLE:
        _TABLE[prim.name] = _spelling(prim)
    return _TABLE[prim.name]


def _spelling(prim: Primitive) -> Emitter | None:
    name, spec = prim.name, prim.spec
    if name in WRITTEN:
        return WRITTEN[name]
    if name in OPERATORS:
        return infix(OPERATORS[name])
    if name in UNARY:
        return prefix(UNARY[name])
    if prim.loop or name in STATEMENTS_AND_DISPLAYS:
        return None
    if name.startswith("math."):
        return call_emitter(name, 99, spec)  # (math's functions take no keywords)
    if name.startswith("np."):
        return call_emitter(name, max(_required(spec), 1), spec)
    if name.startswith("scipy.special."):  # (`_sp` is scipy.special in generated code)
        return call_emitter(f"_sp.{name[len('scipy.special.'):]}", max(_required(spec), 1),
                            spec)
    if name.startswith("scipy.linalg."):  # (`_sla` is scipy.linalg in generated code)
        return call_emitter(f"_sla.{name[len('scipy.linalg.'):]}", max(_required(spec), 1),
                            spec)
    if name.startswith("method."):
        method = name[len("method."):]
        rest = spec.partition(",")[2].strip()
        return method_emitter(method, rest, 99 if method in POSITIONAL_METHODS else None)
    if getattr(runtime, name, None) is prim.impl:
        return call_emitter(f"_rt.{name}", 99, spec)
    if getattr(builtins, name, None) is prim.impl:
        # (Passed positionally: several builtins, float, int, list, ..., take no keywords.)
        return call_emitter(name, 99, spec)
    raise KeyError(f"the Python backend has no spelling for the primitive {name}")


def check_table() -> list[str]:
    """The registered primitives the table cannot spell (none, when complete)."""
    missing = []
    for prim in PRIMITIVES.values():
        try:
            spelling(prim)
        except KeyError:
            missing.append(prim.name)
    return missing

