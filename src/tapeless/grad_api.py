"""The derivative API: `grad`, `value_and_grad`, `vjp` (JAX's names and signatures)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .ad.api_graphs import TRANSFORM, grad_graph
from .api import Transformed, _api, graph_of, load, positional_arguments, python_function
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
