"""The derivative API: `grad`, `value_and_grad`, `vjp` (JAX's names and signatures)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .ad.api_graphs import TRANSFORM, grad_graph
from .api import (
    LIST_OF,
    Transformed,
    _api,
    graph_of,
    load,
    positional_arguments,
    python_function,
)
from .errors import GradError
from .runtime import from_structure, is_struct, to_structure


def _integer_leaf(x: Any) -> str | None:
    """A description of the first integer or boolean leaf of a pytree, if any."""
    if isinstance(x, (bool, np.bool_)):
        return "a bool"
    if isinstance(x, (int, np.integer)):
        return "an int"
    if isinstance(x, np.ndarray) and x.dtype.kind in "biu":
        return f"an array of dtype {x.dtype}"
    if isinstance(x, (tuple, list)):
        items = list(x)
    elif isinstance(x, dict):
        items = list(x.values())
    elif is_struct(x):
        import dataclasses

        items = [getattr(x, f.name) for f in dataclasses.fields(x)]
    else:
        return None
    for item in items:
        found = _integer_leaf(item)
        if found is not None:
            return found
    return None


# Leaf types whose values may be (or hold) an integer leaf: a signature that is one of
# these types does not show what the value holds, or is one (`_integer_leaf`'s cases).
_MAYBE_INTEGER = (int, np.integer, np.bool_, np.ndarray, tuple, list, dict)


def _shows_no_integer(sig: Any) -> bool:
    """Whether every value with this signature (`tapeless.api._signature`) has no integer
    or boolean leaf (`_integer_leaf` finds none). Signatures record the type of every
    leaf of tuples and lists up to their size and depth limits and the dtype of every
    array, so for floats, float arrays and tuples and lists of them they prove it, and
    the check need not walk the arguments again on later calls; a dict, a dataclass, a
    NamedTuple, an array subclass, a long or deep tuple or list has only its type."""
    if isinstance(sig, type):
        import dataclasses

        return not issubclass(sig, _MAYBE_INTEGER) and not dataclasses.is_dataclass(sig)
    head, rest = sig
    if head is tuple or head is list:
        return all(_shows_no_integer(s) for s in rest)
    if head == LIST_OF:
        return _shows_no_integer(rest)
    return np.dtype(rest).kind not in "biu"  # an array: (shape, dtype.str)


class GradFunction(Transformed):
    kind = "grad"

    def __init__(self, fun: Callable[..., Any], argnums: int | tuple[int, ...],
                 has_aux: bool, with_value: bool):
        super().__init__(fun)
        if not isinstance(argnums, int) and not (
                isinstance(argnums, tuple) and all(isinstance(a, int) for a in argnums)):
            raise GradError(f"argnums must be an int or a tuple of ints, not {argnums!r}")
        self.argnums = argnums
        self.has_aux = has_aux
        self.with_value = with_value
        if with_value:
            self.kind = "value_and_grad"

    def build_graph(self):  # noqa: ANN201
        return grad_graph(graph_of(self.fun), self.argnums, self.has_aux, self.with_value)

    def check_arguments(self, args: tuple) -> None:
        nums = (self.argnums,) if isinstance(self.argnums, int) else self.argnums
        for a in nums:
            if not -len(args) <= a < len(args):
                raise GradError(f"argnums={self.argnums!r} is out of range: the function "
                                f"was called with {len(args)} arguments")
            found = _integer_leaf(args[a])
            if found is not None:
                raise GradError(
                    f"{self.kind} of {self.__tapeless_wrapped__.__qualname__} with respect to "
                    f"argument {a}: it is (or contains) {found}, and only floating-point "
                    "values can be differentiated; pass a float (e.g. 3.0), or leave "
                    "this argument out of argnums")

    def check_each_call(self, key: tuple) -> bool:
        """Arguments are checked again on each call unless their signatures show that
        the differentiated ones have no integer leaf (one walk of them per call, the
        signature's): containers of floats and arrays are not walked twice."""
        nums = (self.argnums,) if isinstance(self.argnums, int) else self.argnums
        return not all(-len(key) <= a < len(key) and _shows_no_integer(key[a]) for a in nums)


@_api
def grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
         has_aux: bool = False) -> GradFunction:
    """The gradient of the scalar function `fun` with respect to argument(s) `argnums`;
    with `has_aux`, `fun` returns `(value, aux)` and the result returns `(grad, aux)`."""
    return GradFunction(fun, argnums, has_aux, with_value=False)


@_api
def value_and_grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
                   has_aux: bool = False) -> GradFunction:
    """Like `grad`, but the result returns `(value, grad)` (`((value, aux), grad)`)."""
    return GradFunction(fun, argnums, has_aux, with_value=True)


_VJP_CACHE: dict[int, Any] = {}


@_api
def vjp(fun: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple]]:
    """`(fun(*primals), vjp_fn)`, where `vjp_fn(cotangent)` returns the tuple of
    sensitivities of the primals (each shaped like its primal)."""
    g = graph_of(fun)
    key = g.id
    if key not in _VJP_CACHE:
        _VJP_CACHE[key] = load(TRANSFORM.graph(g))
    compiled = _VJP_CACHE[key]
    args = positional_arguments(python_function(fun), primals, {})
    out, backprop = compiled.fn(*args)

    def vjp_fn(cotangent: Any) -> tuple:
        sens = backprop(from_structure(cotangent))
        return tuple(to_structure(s, p) for s, p in zip(sens[1:], args, strict=True))

    return out, vjp_fn
