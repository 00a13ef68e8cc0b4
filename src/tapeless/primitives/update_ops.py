"""In-place updates, functionalized: `x[index] = v` is `x = index_update(x, index, v)`
and `np.add.at(x, index, v)` is `x = index_add(x, index, v)` (the front end decides
when that is what CPython computes: `tapeless.frontend.mutation`). Each copies, then
assigns; their reverse rules gather the sensitivity at the index, and zero it there
for an assignment. The rules' helpers are linear and come in adjoint pairs, so the
rules differentiate again."""

# ruff: noqa: E731
from __future__ import annotations

from typing import Any

from .. import runtime as rt
from ..runtime import (
    ZERO,
    immutable_item,
    index_add,
    index_update,
    list_append,
    list_extend,
    update_rest_sens,
    update_value_scatter,
    update_value_sens,
)
from .registry import Primitive, register, rule


def _register(name: str, spec: str, **properties: Any) -> Primitive:
    fn = getattr(rt, name)
    return register(Primitive(name, fn, spec, **properties), fn)


_register("index_update", "x, index, value", fresh=True, pure=True, passes_on=True,
          never_zero=True)
_register("index_add", "x, index, value", fresh=True, pure=True, never_zero=True)
_register("update_rest_sens", "d, index", zero_preserving=True, accepts_zero=True, pure=True,
          fresh=True)
_register("update_value_sens", "d, index, value, add", zero_preserving=True,
          accepts_zero=True, pure=True)
_register("update_value_scatter", "dd, like, index, value, add", zero_preserving=True,
          accepts_zero=True, pure=True, fresh=True)


@rule("index_update")
def _index_update(x, index, value):
    back = lambda d: (update_rest_sens(d, index), ZERO,
                      update_value_sens(d, index, value, False))
    return index_update(x, index, value), back


@rule("index_add")
def _index_add(x, index, value):
    back = lambda d: (d, ZERO, update_value_sens(d, index, value, True))
    return index_add(x, index, value), back


@rule("update_rest_sens")
def _update_rest_sens(d, index):
    # (A projection: its adjoint is itself.)
    back = lambda dd: (update_rest_sens(dd, index), ZERO)
    return update_rest_sens(d, index), back


@rule("update_value_sens")
def _update_value_sens(d, index, value, add):
    back = lambda dd: (update_value_scatter(dd, d, index, value, add), ZERO, ZERO, ZERO)
    return update_value_sens(d, index, value, add), back


@rule("update_value_scatter")
def _update_value_scatter(dd, like, index, value, add):
    back = lambda d3: (update_value_sens(d3, index, value, add), ZERO, ZERO, ZERO, ZERO)
    return update_value_scatter(dd, like, index, value, add), back


# (An effect: the check must run even where the updated container is never read.)
_register("immutable_item", "container, item", selects=True, effect=True)
_register("list_append", "lst, item", pure=True, passes_on=True)
_register("list_extend", "lst, items", pure=True, passes_on=True)


@rule("immutable_item")
def _immutable_item(container, item):
    back = lambda d: (ZERO, d)
    return immutable_item(container, item), back


@rule("list_append")
def _list_append(lst, item):
    n = len(lst)
    back = lambda d: (ZERO, ZERO) if d is ZERO else (d[:n], d[n])
    return list_append(lst, item), back


@rule("list_extend")
def _list_extend(lst, items):
    n = len(lst)

    def back(d):
        if d is ZERO:
            return ZERO, ZERO
        rest = d[n:]
        return d[:n], (tuple(rest) if isinstance(items, tuple) else rest)

    return list_extend(lst, items), back


# Their in-place forms, which only the optimizer makes, where nothing else can see the
# array (`tapeless.opt.updates`).
_register("index_update_inplace", "x, index, value", differentiable=False, after_ad=True)
_register("index_add_inplace", "x, index, value", differentiable=False, after_ad=True)
_register("update_rest_inplace", "d, index", differentiable=False, after_ad=True)
