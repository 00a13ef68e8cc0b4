"""Structural primitives (tuples, control flow, attribute access), Python operators and
builtins."""

from __future__ import annotations

import builtins
import operator
from typing import Any

from ..ir.primitive import MAKE_TUPLE
from .registry import Primitive, register


def _prim(name: str, impl: Any, spec: str, *callables: Any, **kw: Any) -> Primitive:
    return register(Primitive(name, impl, spec, **kw), *callables)


# --- structure ------------------------------------------------------------------------


# make_tuple and make_list take their elements as separate inputs.
make_tuple = register(MAKE_TUPLE)  # (the IR's own: see `tapeless.ir.primitive`)
tuple_getitem = _prim("tuple_getitem", lambda t, i: t[i], "t, i",
                      pure=True, foldable=True, accepts_zero=True, selects=True,
                      ignores_values=True)
getitem = _prim("getitem", operator.getitem, "x, index",
                operator.getitem, pure=True, accepts_zero=True, selects=True)
make_list = _prim("make_list", lambda *xs: list(xs), "*xs", variadic=True, never_zero=True,
                  accepts_zero=True, passes_on=True)
make_dict = _prim("make_dict", lambda ks, vs: dict(zip(ks, vs, strict=True)), "keys, values",
                  accepts_zero=True, passes_on=True)
make_slice = _prim("make_slice", slice, "start, stop, step", differentiable=False,
                   pure=True, foldable=True, ignores_values=True)
getattr_ = _prim("getattr", getattr, "x, name", getattr, pure=True,
                 accepts_zero=True, selects=True)
# switch(c, a, b) is `a if c else b`; an `if` statement is switch(c, g_true, g_false)().
switch = _prim("switch", lambda c, a, b: a if c else b, "cond, if_true, if_false", pure=True,
               accepts_zero=True, blocks=(1, 2), selects=True)


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
while_loop = _prim("while_loop", _while_loop, "cond, body, *state", effect=True,
                   variadic=True, accepts_zero=True, loop=True, blocks=(0, 1))
for_range = _prim("for_range", _for_range, "start, stop, step, body, *state",
                  effect=True, variadic=True, accepts_zero=True, loop=True, blocks=(3,))
call_star = _prim("call_star", lambda f, args: f(*args), "fn, args", accepts_zero=True,
                  passes_on=True)


def _assert(cond: Any, msg: Any) -> None:
    if not cond:
        raise AssertionError(msg) if msg is not None else AssertionError


assert_ = _prim("assert", _assert, "cond, msg",
                effect=True, statement=True, differentiable=False)
print_ = _prim("print", lambda args, sep, end: print(*args, sep=sep, end=end),
               "*args, sep=' ', end='\\n'",
               builtins.print, effect=True, differentiable=False)

# --- operators ------------------------------------------------------------------------

BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
    "pow": operator.pow, "matmul": operator.matmul, "lt": operator.lt, "le": operator.le,
    "gt": operator.gt, "ge": operator.ge, "eq": operator.eq, "ne": operator.ne,
    "is_": operator.is_, "is_not": operator.is_not, "bitand": operator.and_,
    "bitor": operator.or_, "bitxor": operator.xor, "lshift": operator.lshift,
    "rshift": operator.rshift,
}
# The comparison operators (`a < b`, ...; NumPy's functions declare `comparison`): a bool,
# or a bool array for arrays.
COMPARISON_OPERATORS = ("lt", "le", "gt", "ge", "eq", "ne")
NON_DIFFERENTIABLE_OPS = {"floordiv", "lt", "le", "gt", "ge", "eq", "ne", "is_", "is_not",
                          "bitand", "bitor", "bitxor", "lshift", "rshift"}
# Declared properties of the operators (see `Primitive`).
_ARITHMETIC = dict(number_op=True, never_zero=True, fresh=True, pure=True)
_OPERATOR_PROPERTIES: dict[str, dict[str, Any]] = {
    # (add's rule takes ZERO as it is: the sensitivity of a concatenation of lists of
    # ints stays ZERO instead of becoming lists of zeros that are split and summed)
    "add": dict(_ARITHMETIC, elementwise=True, foldable=True, cheap=True, accepts_zero=True),
    "sub": dict(_ARITHMETIC, elementwise=True, foldable=True, cheap=True),
    "mul": dict(_ARITHMETIC, elementwise=True, foldable=True, cheap=True),
    "truediv": dict(_ARITHMETIC, elementwise=True, foldable=True, cheap=True),
    "pow": dict(_ARITHMETIC, elementwise=True),
    "mod": dict(_ARITHMETIC, elementwise=True),
    "floordiv": _ARITHMETIC,
    "matmul": dict(never_zero=True, fresh=True, pure=True),
    **{c: dict(pure=True, foldable=True) for c in ("lt", "le", "gt", "ge")},
    **{c: dict(pure=True, foldable=True, equality=True) for c in ("eq", "ne")},
    **{c: dict(pure=True, foldable=True, equality=True, ignores_values=True)
       for c in ("is_", "is_not")},
}
for _name, _fn in BINARY.items():
    _prim(_name, _fn, "a, b", _fn,
          differentiable=_name not in NON_DIFFERENTIABLE_OPS,
          **_OPERATOR_PROPERTIES.get(_name, {}))

_prim("contains", lambda a, b: a in b, "a, b", differentiable=False,
      foldable=True)
_prim("not_contains", lambda a, b: a not in b, "a, b", differentiable=False,
      foldable=True)
_prim("neg", operator.neg, "a", operator.neg, **_ARITHMETIC, elementwise=True,
      foldable=True, cheap=True)
_prim("pos", operator.pos, "a", operator.pos, **_ARITHMETIC, elementwise=True)
_prim("not_", operator.not_, "a", operator.not_, differentiable=False,
      pure=True, foldable=True)
_prim("invert", operator.invert, "a", operator.invert, differentiable=False)
_prim("truth", bool, "a", builtins.bool, differentiable=False,
      foldable=True)

# --- builtins -------------------------------------------------------------------------


def _builtin(name: str, spec: str, differentiable: bool = True, **kw: Any) -> Primitive:
    # Passed positionally: several builtins (float, int, list, ...) take no keywords.
    fn = getattr(builtins, name)
    return _prim(name, fn, spec, fn,
                 differentiable=differentiable, **kw)


_builtin("len", "obj", differentiable=False, pure=True, foldable=True, ignores_values=True)
_builtin("abs", "x", **_ARITHMETIC, elementwise=True)
_builtin("float", "x=0.0", never_zero=True, pure=True)
_builtin("int", "x=0", differentiable=False)
_builtin("round", "number, ndigits=None", differentiable=False)
_builtin("isinstance", "obj, classinfo", differentiable=False, foldable=True,
         ignores_values=True)
_builtin("range", "*args", differentiable=False)
# (its arguments passed as one tuple, as min's and max's)
_prim("slice", lambda args: builtins.slice(*args), "*args", builtins.slice,
      differentiable=False, pure=True, foldable=True)
_builtin("zip", "*iterables")
_builtin("enumerate", "iterable, start=0")
_builtin("reversed", "seq")
_builtin("divmod", "a, b")
_builtin("any", "iterable", differentiable=False)
_builtin("all", "iterable", differentiable=False)
_builtin("sorted", "iterable")
_builtin("tuple", "iterable=()", accepts_zero=True, passes_on=True)
_builtin("list", "iterable=()", accepts_zero=True, passes_on=True)
_builtin("dict", "*args")
_builtin("hasattr", "obj, name", differentiable=False)
_builtin("callable", "obj", differentiable=False)
_builtin("str", "obj=''", differentiable=False)
_prim("sum", builtins.sum, "iterable, start=0",
      builtins.sum, never_zero=True, accepts_zero=True)
# min/max take either one iterable or several arguments; both forms pass one tuple.
_prim("min", lambda args: builtins.min(*args), "*args",
      builtins.min, never_zero=True, accepts_zero=True)
_prim("max", lambda args: builtins.max(*args), "*args",
      builtins.max, never_zero=True, accepts_zero=True)


def _raise(exc: Any) -> None:
    raise exc


_prim("raise", _raise, "exc", effect=True, statement=True,
      differentiable=False)


def _as_sequence(iterable: Any) -> Any:
    from ..runtime import as_sequence

    return as_sequence(iterable)


def _class_of(classinfo: Any) -> Any:
    from ..runtime import class_of

    return class_of(classinfo)


# class_of(c): the class that `c` stands for (J turns a class passed as a value into a
# J-callable; J of `isinstance(x, c)` tests against class_of(c)).
_prim("class_of", _class_of, "classinfo",
      differentiable=False)
_prim("as_sequence", _as_sequence, "iterable",
      accepts_zero=True)
# Comprehensions: list_map(f, xs) is [f(x) for x in xs]; list_flatmap(f, xs) is
# [y for x in xs for y in f(x)].
_prim("list_map", lambda f, xs: [f(x) for x in xs], "fn, seq", accepts_zero=True)
_prim("list_flatmap", lambda f, xs: [y for x in xs for y in f(x)], "fn, seq", accepts_zero=True)
# construct(cls, *fields): a dataclass or NamedTuple built from its fields in order.
_prim("construct", lambda cls, fields: cls(*fields), "cls, *fields", accepts_zero=True)
_prim("format", format, "value, spec",
      differentiable=False)
_prim("convert", lambda v, fn: fn(v), "value, fn",
      differentiable=False)
_prim("join_strings", lambda parts: "".join(parts), "*parts", differentiable=False)
