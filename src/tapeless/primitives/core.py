"""Structural primitives (tuples, control flow, attribute access), Python operators and
builtins."""

from __future__ import annotations

import builtins
import operator
from typing import Any

from .registry import Primitive, call_emitter, infix, prefix, register


def _prim(name: str, impl: Any, spec: str, emit: Any, *callables: Any, **kw: Any) -> Primitive:
    return register(Primitive(name, impl, spec, emit, **kw), *callables)


# --- structure ------------------------------------------------------------------------


def _emit_tuple(a: list[str]) -> str:
    inner = a[0]
    if inner.startswith("(") and inner.endswith(")"):
        return inner
    return f"tuple({inner})"


# make_tuple and make_list take their elements as separate inputs.
make_tuple = _prim("make_tuple", lambda *xs: xs, "*xs", _emit_tuple, variadic=True)
tuple_getitem = _prim("tuple_getitem", lambda t, i: t[i], "t, i", lambda a: f"{a[0]}[{a[1]}]")
getitem = _prim("getitem", operator.getitem, "x, index", lambda a: f"{a[0]}[{a[1]}]",
                operator.getitem)
make_list = _prim("make_list", lambda *xs: list(xs), "*xs", variadic=True, emit=
                  lambda a: "[" + a[0][1:-1].rstrip().rstrip(",") + "]"
                  if a[0].startswith("(") else f"list({a[0]})")
make_dict = _prim("make_dict", lambda ks, vs: dict(zip(ks, vs, strict=True)), "keys, values",
                  lambda a: f"dict(zip({a[0]}, {a[1]}))")
make_slice = _prim("make_slice", slice, "start, stop, step",
                   lambda a: f"slice({a[0]}, {a[1]}, {a[2]})", differentiable=False)
def _emit_getattr(a: list[str]) -> str:
    name = a[1]
    if len(name) > 2 and name[0] == name[-1] and name[0] in "'\"" and name[1:-1].isidentifier():
        return f"{a[0]}.{name[1:-1]}"
    return f"getattr({a[0]}, {name})"


getattr_ = _prim("getattr", getattr, "x, name", _emit_getattr, getattr)
# switch(c, a, b) is `a if c else b`; an `if` statement is switch(c, g_true, g_false)().
switch = _prim("switch", lambda c, a, b: a if c else b, "cond, if_true, if_false",
               lambda a: f"({a[1]} if {a[0]} else {a[2]})")


def _while_loop(cond: Any, body: Any, state: tuple) -> tuple:
    while cond(*state):
        state = body(*state)
    return state


def _for_range(start: int, stop: int, step: int, body: Any, state: tuple) -> tuple:
    for i in range(start, stop, step):
        state = body(i, *state)
    return state


# Loops: while_loop(cond, body, *state) runs `state = body(*state)` while `cond(*state)`
# and returns the final state tuple; for_range runs `state = body(i, *state)` over a range.
while_loop = _prim("while_loop", _while_loop, "cond, body, *state", None, effect=True,
                   variadic=True)
for_range = _prim("for_range", _for_range, "start, stop, step, body, *state", None,
                  effect=True, variadic=True)
call_star = _prim("call_star", lambda f, args: f(*args), "fn, args",
                  lambda a: f"{a[0]}(*{a[1]})")


def _assert(cond: Any, msg: Any) -> None:
    if not cond:
        raise AssertionError(msg) if msg is not None else AssertionError


assert_ = _prim("assert", _assert, "cond, msg",
                lambda a: f"assert {a[0]}" + ("" if a[1] == "None" else f", {a[1]}"),
                effect=True, statement=True, differentiable=False)
print_ = _prim("print", lambda args, sep, end: print(*args, sep=sep, end=end),
               "*args, sep=' ', end='\\n'", call_emitter("print", spec="*args, sep=' ', end='\\n'"),
               builtins.print, effect=True, differentiable=False)

# --- operators ------------------------------------------------------------------------

BINARY = {
    "add": (operator.add, "+"), "sub": (operator.sub, "-"), "mul": (operator.mul, "*"),
    "truediv": (operator.truediv, "/"), "floordiv": (operator.floordiv, "//"),
    "mod": (operator.mod, "%"), "pow": (operator.pow, "**"), "matmul": (operator.matmul, "@"),
    "lt": (operator.lt, "<"), "le": (operator.le, "<="), "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="), "eq": (operator.eq, "=="), "ne": (operator.ne, "!="),
    "is_": (operator.is_, "is"), "is_not": (operator.is_not, "is not"),
    "bitand": (operator.and_, "&"), "bitor": (operator.or_, "|"),
    "bitxor": (operator.xor, "^"), "lshift": (operator.lshift, "<<"),
    "rshift": (operator.rshift, ">>"),
}
NON_DIFFERENTIABLE_OPS = {"floordiv", "lt", "le", "gt", "ge", "eq", "ne", "is_", "is_not",
                          "bitand", "bitor", "bitxor", "lshift", "rshift"}
for _name, (_fn, _sym) in BINARY.items():
    _prim(_name, _fn, "a, b", infix(_sym), _fn,
          differentiable=_name not in NON_DIFFERENTIABLE_OPS)

_prim("contains", lambda a, b: a in b, "a, b", infix("in"), differentiable=False)
_prim("not_contains", lambda a, b: a not in b, "a, b", infix("not in"), differentiable=False)
_prim("neg", operator.neg, "a", prefix("-"), operator.neg)
_prim("pos", operator.pos, "a", prefix("+"), operator.pos)
_prim("not_", operator.not_, "a", prefix("not "), operator.not_, differentiable=False)
_prim("invert", operator.invert, "a", prefix("~"), operator.invert, differentiable=False)
_prim("truth", bool, "a", call_emitter("bool", spec="a"), builtins.bool, differentiable=False)

# --- builtins -------------------------------------------------------------------------


def _builtin(name: str, spec: str, differentiable: bool = True, **kw: Any) -> Primitive:
    # Passed positionally: several builtins (float, int, list, ...) take no keywords.
    fn = getattr(builtins, name)
    return _prim(name, fn, spec, call_emitter(name, 99, spec), fn,
                 differentiable=differentiable, **kw)


_builtin("len", "obj", differentiable=False)
_builtin("abs", "x")
_builtin("float", "x=0.0")
_builtin("int", "x=0", differentiable=False)
_builtin("round", "number, ndigits=None", differentiable=False)
_builtin("isinstance", "obj, classinfo", differentiable=False)
_builtin("range", "*args", differentiable=False)
_builtin("zip", "*iterables")
_builtin("enumerate", "iterable, start=0")
_builtin("reversed", "seq")
_builtin("divmod", "a, b")
_builtin("any", "iterable", differentiable=False)
_builtin("all", "iterable", differentiable=False)
_builtin("sorted", "iterable")
_builtin("tuple", "iterable=()")
_builtin("list", "iterable=()")
_builtin("dict", "*args")
_builtin("hasattr", "obj, name", differentiable=False)
_builtin("callable", "obj", differentiable=False)
_builtin("str", "obj=''", differentiable=False)
_prim("sum", builtins.sum, "iterable, start=0", call_emitter("sum", spec="iterable, start=0"),
      builtins.sum)
# min/max take either one iterable or several arguments; both forms pass one tuple.
_prim("min", lambda args: builtins.min(*args), "*args", call_emitter("min", spec="*args"),
      builtins.min)
_prim("max", lambda args: builtins.max(*args), "*args", call_emitter("max", spec="*args"),
      builtins.max)


def _raise(exc: Any) -> None:
    raise exc


_prim("raise", _raise, "exc", lambda a: f"raise {a[0]}", effect=True, statement=True,
      differentiable=False)


def _as_sequence(iterable: Any) -> Any:
    from ..runtime import as_sequence

    return as_sequence(iterable)


def _class_of(classinfo: Any) -> Any:
    from ..runtime import class_of

    return class_of(classinfo)


# class_of(c): the class that `c` stands for (J turns a class passed as a value into a
# J-callable; J of `isinstance(x, c)` tests against class_of(c)).
_prim("class_of", _class_of, "classinfo", call_emitter("_rt.class_of", spec="classinfo"),
      differentiable=False)
_prim("as_sequence", _as_sequence, "iterable", call_emitter("_rt.as_sequence", spec="iterable"))
# Comprehensions: list_map(f, xs) is [f(x) for x in xs]; list_flatmap(f, xs) is
# [y for x in xs for y in f(x)].
_prim("list_map", lambda f, xs: [f(x) for x in xs], "fn, seq",
      lambda a: f"[{a[0]}(_x) for _x in {a[1]}]")
_prim("list_flatmap", lambda f, xs: [y for x in xs for y in f(x)], "fn, seq",
      lambda a: f"[_y for _x in {a[1]} for _y in {a[0]}(_x)]")
# construct(cls, *fields): a dataclass or NamedTuple built from its fields in order.
_prim("construct", lambda cls, fields: cls(*fields), "cls, *fields",
      lambda a: f"{a[0]}({_splice(a[1])})")
_prim("format", format, "value, spec", lambda a: f"format({a[0]}, {a[1]})",
      differentiable=False)
_prim("convert", lambda v, fn: fn(v), "value, fn", lambda a: f"{a[1]}({a[0]})",
      differentiable=False)
_prim("join_strings", lambda parts: "".join(parts), "*parts",
      lambda a: f"''.join({a[0]})", differentiable=False)


def _splice(text: str) -> str:
    from .registry import _star

    return _star(text)
