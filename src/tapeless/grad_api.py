"""The derivative API: `grad`, `value_and_grad`, `vjp` (JAX's names and signatures)."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from .ad.api_graphs import TRANSFORM, VMAP_STAND_INS, grad_graph
from .ad.reverse import JTransform
from .api import (
    BOUND,
    BOUND_TYPES,
    LIST_OF,
    Compiled,
    Transformed,
    _api,
    _signature,
    building,
    check_backend,
    draws_or_prints,
    each_element_copy,
    for_positional,
    graph_for_argument_kinds,
    graph_of,
    jit,
    load,
    positional_arguments,
    python_function,
    value_kind,
)
from .errors import GradError
from .frontend.expressions import constant_node
from .frontend.parser import RESOLVER
from .ir.nodes import Constant, Graph, reachable_graphs
from .primitives import PRIMITIVES as P
from .primitives.batch_rules import RaggedBatch
from .primitives.random_ops import GENERATOR_TYPES
from .runtime import from_structure, is_struct, to_structure


def _bool_itself(x: Any) -> str | None:
    """A description of `x` where it is a bool or a bool array (never differentiated)."""
    if isinstance(x, (bool, np.bool_)):
        return "a bool"
    if isinstance(x, np.ndarray) and x.dtype.kind == "b":
        return f"an array of dtype {x.dtype}"
    return None


def _integer_leaf(x: Any) -> str | None:
    """A description of the first integer leaf of a pytree, if any. (A bool inside a
    container or record is a constant, like a static field: `runtime.to_structure`
    gives it back as it is; `_bool_itself` refuses a bool argument.)"""
    if isinstance(x, (bool, np.bool_)) or (isinstance(x, np.ndarray) and x.dtype.kind == "b"):
        return None
    if isinstance(x, (int, np.integer)):
        return "an int"
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
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
    leaf of tuples, lists, dicts with string keys, NamedTuples and dataclasses (every
    field, `dataclasses.fields`: what `_integer_leaf` walks) up to their size and depth
    limits and the dtype of every array, so for floats, float arrays and containers of
    them they prove it, and the check need not walk the arguments again on later calls;
    another dict, dataclass or NamedTuple, an array subclass, a long or deep container
    has only its type."""
    if isinstance(sig, type):
        import dataclasses

        return not issubclass(sig, _MAYBE_INTEGER) and not dataclasses.is_dataclass(sig)
    head, rest = sig
    if head is BOUND:
        return True  # (refused by check_arguments where differentiated)
    if head is dict:
        return all(_shows_no_integer(s) for _, s in rest)
    if isinstance(head, type):  # a tuple, a list, a NamedTuple or a dataclass
        return all(_shows_no_integer(s) for s in rest)
    if head == LIST_OF:
        return _shows_no_integer(rest)
    return np.dtype(rest).kind not in "biu"  # an array: (shape, dtype.str)


def _is_bound(sig: Any) -> bool:
    """Whether a signature is that of an argument bound by identity (`api.BOUND_TYPES`)."""
    return isinstance(sig, type) and sig in BOUND_TYPES


def _refuse_uncallable(fn: GradFunction, i: int, value: Any) -> None:
    """Refuse a function passed as an argument that derivative code cannot call: what
    tapeless does not compile (a bound method, a `functools.partial`, a class other than
    a number type, a dataclass or a NamedTuple)."""
    import dataclasses

    from .frontend.expressions import _is_namedtuple
    from .frontend.parser import unwrap
    from .primitives import lookup_callable

    v = unwrap(value)
    if isinstance(value, Transformed) or isinstance(v, types.FunctionType) or \
            getattr(value, "__tapeless_custom__", False) or \
            lookup_callable(v) is not None or _is_namedtuple(v) or \
            (isinstance(v, type) and dataclasses.is_dataclass(v)):
        return
    raise GradError(
        f"{fn.kind} of {fn.__tapeless_wrapped__.__qualname__}: argument {i} is {value!r}, "
        "which derivative code cannot call; pass a Python function, a NumPy or math "
        "function, a number type, a dataclass or NamedTuple class, or a tapeless "
        "transform (write a bound method as a function taking what it reads)")


def _refuse_nested_functions(fn: GradFunction, key: tuple) -> None:
    """A function inside a tuple, list, dict, NamedTuple or dataclass argument cannot be
    bound by identity (it would be called without its derivative): refuse it, saying
    what to do instead."""
    def holds(sig: Any) -> bool:
        if type(sig) is not tuple or not sig or sig[0] is BOUND:
            return False
        head, rest = sig
        if head is dict:
            items = [s for _, s in rest]
        elif isinstance(head, type):  # a tuple, a list, a NamedTuple or a dataclass
            items = list(rest)
        elif head == LIST_OF:
            items = [rest]
        else:  # an array: (shape, dtype)
            return False
        return any(_is_bound(s) or holds(s) for s in items)

    for i, sig in enumerate(key):
        if holds(sig):
            raise GradError(
                f"{fn.kind} of {fn.__tapeless_wrapped__.__qualname__}: argument {i} is a "
                "container holding a function or a class, which derivative code cannot "
                "call; pass each function as an argument of its own, or refer to it from "
                "the function's body (a global or a closure)")


class GradFunction(Transformed):
    kind = "grad"

    def __init__(self, fun: Callable[..., Any], argnums: int | tuple[int, ...],
                 has_aux: bool, with_value: bool, backend: str | None = None):
        super().__init__(fun, backend)
        self.binds_functions = True
        if not isinstance(argnums, int) and not (
                isinstance(argnums, tuple) and all(isinstance(a, int) for a in argnums)):
            raise GradError(f"argnums must be an int or a tuple of ints, not {argnums!r}")
        self.argnums = argnums
        # Gradient graphs with functions passed as arguments put in, by their positions
        # and identities (the functions are kept alive with them).
        self._bound_graphs: dict[tuple, tuple[Graph, list]] = {}
        # Gradient graphs by argument signatures, where the function calls `tl.vmap` (each
        # batched for the shapes of its arguments).
        self._kinds_graphs: dict[tuple, Graph] = {}
        self.has_aux = has_aux
        self.with_value = with_value
        if with_value:
            self.kind = "value_and_grad"

    def build_graph(self) -> Graph:
        return grad_graph(graph_of(self.fun), self.argnums, self.has_aux, self.with_value)

    def with_fun(self, fun: Transformed) -> Transformed:
        return GradFunction(fun, self.argnums, self.has_aux, self.with_value, self.backend)

    def start_description(self) -> tuple | None:
        if type(self) is not GradFunction:
            return None
        return ("grad", self.backend, repr(self.argnums), self.has_aux, self.with_value,
                self.fun)

    def invalidate(self) -> None:
        super().invalidate()
        self._bound_graphs = {}
        self._kinds_graphs = {}

    def build_graph_for(self, key: tuple) -> Graph:
        """The gradient's graph, where the functions passed as arguments are constants:
        the graph of `lambda *args: fun(*args)` with those arguments put in."""
        bound = {i: s[1] for i, s in enumerate(key) if type(s) is tuple and s and s[0] is BOUND}
        _refuse_nested_functions(self, key)
        if not bound:
            plain: Graph | None
            if isinstance(self.fun, GradFunction):
                plain, primal = graph_of(self.fun), self.fun.graph_for(key)
            else:
                plain, primal = graph_for_argument_kinds(self.fun, key)
            if primal is plain:
                return self.graph
            # (a `tl.vmap` inside, batched for these arguments' shapes)
            if key not in self._kinds_graphs:
                self._kinds_graphs[key] = grad_graph(primal, self.argnums, self.has_aux,
                                                     self.with_value)
            return self._kinds_graphs[key]
        for i, v in bound.items():
            _refuse_uncallable(self, i, v)
        cache_key = tuple(sorted((i, id(v)) for i, v in bound.items()))
        if cache_key not in self._bound_graphs:
            # (The gradient of a gradient: the inner one takes the same arguments, and
            # puts in the same functions.)
            g = self.fun.graph_for(key) if isinstance(self.fun, GradFunction) else \
                graph_for_argument_kinds(self.fun, key)[1]
            w = Graph(g.name, None, g.loc)
            params = [w.add_parameter(p.name, p.loc) for p in g.parameters]
            w.take_signature(g)
            w.output = w.apply(Constant(g), *[
                constant_node(bound[i], RESOLVER, g.loc) if i in bound else p
                for i, p in enumerate(params)], loc=g.loc)
            self._bound_graphs[cache_key] = (grad_graph(
                w, self.argnums, self.has_aux, self.with_value), list(bound.values()))
        return self._bound_graphs[cache_key][0]

    def each_element(self, key: tuple, args: tuple) -> Compiled | None:
        """The gradient of the function with each `tl.vmap` inside calling its function
        on each element (`reverse.EACH_ELEMENT`): where a loop's trip count differs
        across the batch and its state's shape with it (a loop over layers of different
        widths with a `break`), the gradient a loop over the batch gives. Built once per
        argument signature; None where the function draws random numbers or prints (the
        batched code did some of that already)."""
        if key in self._each:
            return self._each[key]
        from .ad.reverse import EACH_ELEMENT_ON

        if draws_or_prints(self.graph_for(key)):
            self._each[key] = None
            return None
        kept = self._graph, self._kinds_graphs, self._bound_graphs
        self._graph, self._kinds_graphs, self._bound_graphs = None, {}, {}
        EACH_ELEMENT_ON.append(True)
        try:
            compiled = self._build(key, tuple(value_kind(a) for a in args))
        finally:
            EACH_ELEMENT_ON.pop()
            self._graph, self._kinds_graphs, self._bound_graphs = kept
        self._each[key] = compiled
        return compiled

    def check_arguments(self, args: tuple) -> None:
        nums = (self.argnums,) if isinstance(self.argnums, int) else self.argnums
        for a in nums:
            if not -len(args) <= a < len(args):
                raise GradError(f"argnums={self.argnums!r} is out of range: the function "
                                f"was called with {len(args)} arguments")
            found = _bool_itself(args[a]) or _integer_leaf(args[a])
            if _is_bound(type(args[a])):
                found = "a function or a class"
            if isinstance(args[a], GENERATOR_TYPES):
                found = "a random generator"
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


BOUND_TYPES.add(GradFunction)


@_api
def grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
         has_aux: bool = False, backend: str | None = None) -> GradFunction:
    """The gradient of the scalar function `fun` with respect to argument(s) `argnums`;
    with `has_aux`, `fun` returns `(value, aux)` and the result returns `(grad, aux)`.
    `backend` is as in `jit`."""
    return GradFunction(fun, argnums, has_aux, with_value=False, backend=backend)


@_api
def value_and_grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
                   has_aux: bool = False, backend: str | None = None) -> GradFunction:
    """Like `grad`, but the result returns `(value, grad)` (`((value, aux), grad)`)."""
    return GradFunction(fun, argnums, has_aux, with_value=True, backend=backend)


_VJP_CACHE: dict[Any, Any] = {}
_VJP_NATIVE: dict[int, tuple[Graph, Transformed, Transformed]] = {}


def vjp_graph(g: Graph) -> Graph:
    """`(x_1, ..., x_n, cotangent) -> (value, (d_x_1, ..., d_x_n))`: the value of `g` and
    the sensitivities of its arguments for one cotangent, in one program (what the native
    backend compiles for `vjp`: native code returns no closures)."""
    jg = TRANSFORM.graph(g)
    out = Graph(f"vjp_{g.name}", None, g.loc)
    out.derived = True
    params = [out.add_parameter(p.name, p.loc) for p in g.parameters]
    cotangent = out.add_parameter("cotangent", g.loc)
    call = out.apply(Constant(jg), *params, loc=g.loc)
    out.effects.append(call)
    value = out.apply(P["tuple_getitem"], call, 0, name="value")
    backprop = out.apply(P["tuple_getitem"], call, 1, name="backprop")
    sens = out.apply(backprop, out.apply(P["from_structure"], cotangent), name="sensitivities")
    out.output = out.apply(P["make_tuple"], value, out.apply(P["make_tuple"], *[
        out.apply(P["to_structure"], out.apply(P["tuple_getitem"], sens, 1 + i), p,
                  name=f"d_{p.name}") for i, p in enumerate(params)]))
    return out


class _VjpFunction(Transformed):
    """`vjp_graph` of a function, compiled per argument signature."""

    kind = "vjp"

    def __init__(self, fun: Callable[..., Any], graph: Graph, backend: str):
        super().__init__(fun, backend)
        self._vjp = graph
        self.binds_functions = False

    def build_graph(self) -> Graph:
        return self._vjp

    def bind(self, args: tuple, kwargs: dict) -> tuple:
        return args

    def for_call(self, args: tuple, kwargs: dict) -> Transformed:
        return self  # (its arguments are the primals bound, then the cotangent)


def _for_argument_kinds(fun: Callable[..., Any], g: Graph, args: list[Any]
                        ) -> Compiled | None:
    """The vjp's code for arguments like `args` where `fun` is a `tl.vmap` object or
    calls `tl.vmap` (`g`, its graph, reaches a `tl.vmap` stand-in): built once per
    argument signature with each batched for the arguments' kinds (`building`), as
    `jit` and `grad` build it, not the generic batched code that tests kinds and shapes
    at run time. None for other functions: one version for all arguments."""
    # (`_VJP_CACHE` keys on graph ids, which are serial numbers: never reused)
    if not (isinstance(fun, Transformed) and fun.kind == "vmap"):
        if (g.id, "vmap") not in _VJP_CACHE:
            _VJP_CACHE[g.id, "vmap"] = any(h in VMAP_STAND_INS for h in reachable_graphs(g))
        if not _VJP_CACHE[g.id, "vmap"]:
            return None
    key = tuple(map(_signature, args))
    if (g.id, key) not in _VJP_CACHE:
        kinds = tuple(value_kind(a) for a in args)
        with building(key, kinds):
            primal = graph_for_argument_kinds(fun, key)[1]
            _VJP_CACHE[g.id, key] = load(TRANSFORM.graph(primal), kinds)
    return cast(Compiled, _VJP_CACHE[g.id, key])


@_api
def vjp(fun: Callable[..., Any], *primals: Any,
        backend: str | None = None) -> tuple[Any, Callable[[Any], tuple]]:
    """`(fun(*primals), vjp_fn)`, where `vjp_fn(cotangent)` returns the tuple of
    sensitivities of the primals (each shaped like its primal). With the native backend
    (`backend`, as in `jit`), `vjp_fn` runs the function again with its derivative, as
    one native program (native code returns no closures)."""
    fun = for_positional(fun, primals)
    g = graph_of(fun)
    args = positional_arguments(python_function(fun), primals, {})
    if check_backend(backend) == "native":
        hit = _VJP_NATIVE.get(g.id)
        if hit is None or hit[0] is not g:
            hit = _VJP_NATIVE[g.id] = (g, jit(fun, backend="native"),
                                       _VjpFunction(fun, vjp_graph(g), "native"))
        _, value_of, program = hit
        out = value_of(*primals)

        def native_vjp_fn(cotangent: Any) -> tuple:
            try:
                sens = program(*args, cotangent)[1]
            except RaggedBatch:
                # (a `tl.vmap` met a shape that differs across the batch: the Python
                # backend's program, which calls the function on each element)
                return _python_vjp(fun, g, args)[1](cotangent)
            # (The types the Python backend's `vjp_fn` gives: a float for a float.)
            return tuple(float(s) if type(p) is float and isinstance(s, np.floating) else s
                         for s, p in zip(sens, args, strict=True))

        return out, native_vjp_fn
    return _python_vjp(fun, g, args)


def _python_vjp(fun: Callable[..., Any], g: Graph, args: list[Any]
                ) -> tuple[Any, Callable[[Any], tuple]]:
    """`vjp` on the Python backend (`g`: `fun`'s graph, `args` in parameter order)."""
    key = g.id
    compiled = _for_argument_kinds(fun, g, args)
    if compiled is None:
        if key not in _VJP_CACHE:
            _VJP_CACHE[key] = load(TRANSFORM.graph(g))
        compiled = _VJP_CACHE[key]
    try:
        out, backprop = compiled.fn(*args)
    except RaggedBatch:
        # (a `tl.vmap` inside met a shape that differs across the batch: each one calls
        # its function on each element, as `jit` and `grad` do; refused where the
        # function draws random numbers or prints)
        # (a vmap object's per-element program holds the batch's size: one per signature)
        mapped = isinstance(fun, Transformed) and fun.kind == "vmap"
        each_key = (key, "each", *(map(_signature, args) if mapped else ()))
        if each_key not in _VJP_CACHE:
            each = cast(Any, fun).each_element_graph(tuple(args)) if mapped else \
                each_element_copy(g)
            _VJP_CACHE[each_key] = None if each is None else load(JTransform().graph(each))
        if _VJP_CACHE[each_key] is None:
            raise
        compiled = _VJP_CACHE[each_key]
        out, backprop = compiled.fn(*args)

    def vjp_fn(cotangent: Any) -> tuple:
        sens = backprop(from_structure(cotangent))
        return tuple(to_structure(s, p) for s, p in zip(sens[1:], args, strict=True))

    vjp_fn.source = compiled.source  # type: ignore[attr-defined]  # (the code run)
    return out, vjp_fn
