"""`f(**kwargs)` where the dict's keys are known only at run time and `f` is known when
compiling: each parameter not otherwise given is looked up in the dict
(`kwarg_or(kwargs, name, default, fname)`), a `**rest` parameter receives the others
(`dict_without`), and `check_kwargs` raises Python's errors for keys that do not fit."""

# ruff: noqa: E731
from __future__ import annotations

from typing import Any

from .. import runtime as rt
from ..runtime import ZERO, dict_without, kwarg_or
from .registry import Primitive, register, rule


def _register(name: str, spec: str, **properties: Any) -> Primitive:
    fn = getattr(rt, name)
    return register(Primitive(name, fn, spec, **properties), fn)


_register("kwarg_or", "kwargs, name, default, fname", selects=True)
_register("dict_without", "d, names", pure=True, passes_on=True)
_register("check_kwargs", "kwargs, bound, accepted, rest, fname", effect=True,
          differentiable=False)


@rule("kwarg_or")
def _kwarg_or(kwargs, name, default, fname):
    found = name in kwargs
    back = lambda d: ({name: d} if found else ZERO, ZERO, ZERO if found else d, ZERO)
    return kwarg_or(kwargs, name, default, fname), back


@rule("dict_without")
def _dict_without(d, names):
    # (A projection: its adjoint is itself.)
    back = lambda dd: (dict_without(dd, names) if isinstance(dd, dict) else dd, ZERO)
    return dict_without(d, names), back
