"""J-callables made while derivative code runs, for callees the compiler could not see.

Derivative code calls a function value through its J-callable (see `tapeless.ad.reverse`).
Where the compiler cannot know the callee (a function held in a container, a callable
object passed as an argument, a function passed to a `tl.grad` called inside compiled
code), the generated code asks `tapeless.runtime.call_value` or `tapeless.runtime.lift`,
which come here: the callee's J-callable is compiled on first use and cached. Callable
objects are data in derivative code (their fields are what is differentiated), so a
call `obj(x)` runs J of `type(obj).__call__` on `(obj, x)` and gives the sensitivity of
`obj` as the callee's."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any

from . import runtime
from .ad.api_graphs import FORWARD, TRANSFORM
from .api import Transformed, graph_of, load
from .errors import GradError
from .frontend.guards import make_guard, reads_of
from .frontend.parser import RESOLVER, unwrap
from .frontend.scopes import ParamSpec
from .ir.nodes import Constant, Graph, Node, free_variables
from .primitives import PRIMITIVES as P
from .primitives import Primitive, lookup_callable

# (callee or its method, order) -> (the callee, kept alive so its id is not reused; the
# J-callable; the guard over the globals it read, or None).
# (The order is an int for J-callables, -1 for F-callables, ("fwd", order, arity) for F
# of J-callables.)
_CACHE: dict[tuple[int, Any], tuple[Any, Callable[..., Any], Callable[[], bool] | None]] = {}


def _j_graph(g: Graph, level: int) -> Graph:
    """J applied `level` times to `g`, as a value (Python's calling convention)."""
    for _ in range(level):
        g = TRANSFORM.graph_value(g)
    return g


def _compiled(key_object: Any, level: Any, make: Callable[[], Graph]) -> Callable[..., Any]:
    key = (id(key_object), level)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not key_object or (hit[2] is not None and not hit[2]()):
        # Compiled with the globals it reads guarded, as the API's transforms are: one
        # rebound since compiles it again. (The generated function itself, called as
        # Python calls values, not the entry that takes `*args` packed.)
        with RESOLVER.recording() as deps:
            graph = make()
        fn = load(graph).fn
        guard = make_guard(reads_of(deps))
        hit = _CACHE[key] = (key_object, getattr(fn, "__wrapped__", fn), guard)
    return hit[1]


def _method(obj: Any) -> types.FunctionType | None:
    """The Python function `type(obj).__call__`, for a callable object of a user class."""
    call = None
    for klass in type(obj).__mro__:  # (the class's own, or a base class's, in Python)
        if "__call__" in vars(klass):
            call = vars(klass)["__call__"]
            break
    return call if isinstance(call, types.FunctionType) else None


def _graph_of_function(fn: Any) -> Graph:
    g = _function_graph(fn)
    assert g is not None
    return g


def _function_graph(fn: Any) -> Graph | None:
    """The graph of a callee known by value: a Python function, a tapeless transform, a
    NumPy or math function, a dataclass or NamedTuple class, a number type."""
    if isinstance(fn, Transformed) or getattr(fn, "__tapeless_custom__", False):
        return graph_of(fn)
    fn = unwrap(fn)
    if isinstance(fn, types.FunctionType):
        return graph_of(fn)
    return None


def j_callable(fn: Any, level: int) -> Callable[..., Any]:
    """The J-callable of order `level` of a callee that generated code did not make."""
    if isinstance(fn, (Transformed, types.FunctionType)) or \
            isinstance(unwrap(fn), types.FunctionType):
        # (Its graph is made where the globals it reads are recorded, for the guard.)
        return _compiled(fn, level, lambda: _j_graph(_graph_of_function(fn), level))
    prim = lookup_callable(fn)
    if prim is not None and not isinstance(fn, type):
        return _compiled(fn, level, lambda: _j_graph(TRANSFORM.primitive_value(prim),
                                                     level - 1))
    if isinstance(fn, type):
        if dataclasses.is_dataclass(fn) or (issubclass(fn, tuple) and hasattr(fn, "_fields")):
            return _compiled(fn, level, lambda: _j_graph(TRANSFORM.constructor(fn), level - 1))
        if prim is not None:
            def make() -> Graph:
                g = _j_graph(TRANSFORM.primitive_value(prim), level - 1)
                # It stands for the class (as `JTransform.class_value` marks it), which
                # `runtime.class_of` gives back where the class is data: `dtype=`,
                # `astype`, `isinstance`.
                g.stands_for = fn
                return g

            return _compiled(fn, level, make)
    raise GradError(
        f"derivative code cannot call {fn!r}: tapeless differentiates Python functions, "
        "tapeless transforms, NumPy and math functions, dataclass and NamedTuple classes "
        "and objects whose class defines __call__ in Python; call a function instead")


def call(level: int, fn: Any, args: tuple) -> Any:
    """`fn(*args)` in derivative code of order `level` (see `runtime.call_value`)."""
    if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType):
        # `obj.method(...)`: the method's function on the object, whose sensitivity is the
        # bound method's (`runtime.getattr_sens` gives it to the object as it is).
        obj, func = fn.__self__, fn.__func__
        if isinstance(obj, type):
            raise GradError(
                f"derivative code cannot call the classmethod {func.__qualname__}; "
                "write it as a function or a staticmethod")
        if isinstance(obj, types.ModuleType) or not runtime.is_method(obj, func.__name__):
            raise GradError(
                f"derivative code cannot call the bound method {func.__qualname__} "
                "taken from somewhere else than its object; call it as `obj.method(...)` "
                "or pass a function")
        return _object_call(level, func, obj, args)
    method = _method(fn) if not isinstance(fn, (types.FunctionType, type, Transformed)) \
        else None
    if method is None:
        return j_callable(fn, level)(*args)
    return _object_call(level, method, fn, args)


def _object_call(level: int, method: types.FunctionType, obj: Any, args: tuple) -> Any:
    """`method(obj, *args)` as the call of a value standing for `obj` (the object called,
    or its bound method) in derivative code of order `level`."""
    # The call as derivative code of order 1 sees it (`_bound_call`); at order n, J of
    # that, n - 1 times, whose backpropagator gives (d_env, d_obj, d_args...) where a
    # value call's gives (d_callee, d_args...): the callee here is the object.
    if level == 1:
        return _compiled(method, 1, lambda: _bound_call(method))(obj, *args)
    value, backprop = _compiled(method, level, lambda: _j_graph(_bound_call(method),
                                                                level - 1))(obj, *args)
    return value, lambda d: backprop(d)[1:]


def _bound_call(method: types.FunctionType) -> Graph:
    """`obj(*args)` in derivative code of order 1, as a graph (derivative code itself, so
    J applies to it for higher orders): J of `type(obj).__call__` on `(obj, *args)`,
    whose backpropagator's sensitivities, (d_env, d_obj, d_args...), are laid out as a
    value call's, (d_obj, d_args...): the object's sensitivity is the callee's."""
    jm = Constant(_j_graph(graph_of(method), 1))
    g = Graph(f"call_{method.__qualname__.replace('.', '_')}")
    g.derived = True
    obj, args = g.add_parameter("obj"), g.add_parameter("args")
    g.vararg = True
    g.signature = [ParamSpec("obj", "pos"), ParamSpec("args", "vararg")]
    pair = g.apply(P["call_star"], jm, g.apply(P["add"], g.apply(P["make_tuple"], obj), args))
    return _without_environment(g, pair)


def _without_environment(g: Graph, pair: Node) -> Graph:
    """`g` returning `pair`'s value and a backpropagator that drops the environment's
    sensitivity from `pair`'s (the object's is then the callee's)."""
    back = Graph("back", g)
    back.derived = True
    d = back.add_parameter("d")
    sens = back.apply(g.apply(P["tuple_getitem"], pair, 1), d)
    back.output = back.apply(P["getitem"], sens, Constant(slice(1, None, None)))
    g.output = g.apply(P["make_tuple"], g.apply(P["tuple_getitem"], pair, 0), Constant(back))
    g.effects = [pair]
    return g


def _chain(value: Any) -> tuple[list[str], Any] | None:
    """For a function of generated code made by differentiation (a J- or F-callable of a
    function that closes over nothing), the transforms that made it, innermost first, and
    the graph or primitive they were applied to; None for any other value."""
    graph = getattr(value, "__tapeless_graph__", None) if runtime.is_generated(value) \
        else None
    if graph is None or graph.derivative_of is None:
        return None
    kinds: list[str] = []
    base: Any = graph
    while isinstance(base, Graph) and base.derivative_of is not None:
        kind, base = base.derivative_of
        kinds.append(kind)
    if isinstance(base, Graph) and free_variables(base):
        return None  # (a closure: its J- or F-callable holds what it captures)
    kinds.reverse()
    return kinds, base


def derivable(value: Any) -> bool:
    """Whether `value` is a J- or F-callable that `lift` and `lift_fwd` can derive again
    with another transform innermost."""
    return _chain(value) is not None


def _apply(kind: str, base: Any) -> Graph:
    """J or F of a graph or primitive used as a value."""
    if kind == "J":
        return TRANSFORM.primitive_value(base) if isinstance(base, Primitive) else \
            TRANSFORM.graph_value(base)
    return FORWARD.primitive_value(base) if isinstance(base, Primitive) else \
        FORWARD.graph_value(base)


def _derived_again(value: Any, inner: str) -> Callable[..., Any] | None:
    """For a J- or F-callable `value` = T_n(...T_1(f)), T_n(...T_1(inner(f))): what a
    function passed into a transform (`inner`, J for a `tl.grad`, F for a `tl.jvp`) called
    inside derivative code of that value's order is there. None where `value` is not one
    (`_chain`)."""
    found = _chain(value)
    if found is None:
        return None
    kinds, base = found
    # A J-callable that stands for a class (a class passed as a value: `dtype=`,
    # `astype`, `isinstance` take the class back from it by `runtime.class_of`) stands
    # for it derived again too. The class is the value's, not its base's: the wrapper of
    # a class's primitive is marked where the class is passed (`JTransform.class_value`),
    # and this module's transforms make their own, unmarked, wrappers.
    cls = value.__tapeless_graph__.stands_for

    def make() -> Graph:
        g = _apply(inner, base)
        for kind in kinds:
            g = _apply(kind, g)
        if cls is not None:
            g.stands_for = cls
        return g

    return _compiled(value, ("again", inner), make)


def lift(value: Any) -> Any:
    """A callable passed into derivative code (see `runtime.lift`): a function becomes
    its J-callable one order above the code it comes from; a callable object is data."""
    if isinstance(value, (types.FunctionType, Transformed, type)) or (
            _method(value) is None and lookup_callable(value) is not None):
        if runtime.is_generated(value):
            again = _derived_again(value, "J")
            if again is not None:
                return again
            graph = getattr(value, "__tapeless_graph__", None)
            if graph is None:
                raise GradError(
                    f"the function {value.__qualname__}, made inside compiled code, is "
                    "passed to a tl.grad called there; define it at module level, or "
                    "call it inside the function differentiated instead of passing it")
            return _compiled(value, 1, lambda: _j_graph(graph, 1))
        return j_callable(value, 1)
    return value


def call_fwd(fn: Any, t_fn: Any, args: tuple, tangents: tuple) -> Any:
    """`fn(*args)` in forward-mode code, where `fn` is not an F-callable (see
    `runtime.call_fwd`): F of the function, compiled on first use; a callable object's
    (or a bound method's) `__call__` takes the object, whose tangent is `t_fn`."""
    # (Cached apart from J-callables: order -1.)
    if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType) and \
            not isinstance(fn.__self__, (type, types.ModuleType)):
        func = fn.__func__
        return _compiled(func, -1, lambda: FORWARD.graph(graph_of(func)))(
            fn.__self__, *args, t_fn, *tangents)
    method = _method(fn) if not isinstance(fn, (types.FunctionType, type, Transformed)) \
        else None
    if method is not None:
        return _compiled(method, -1, lambda: FORWARD.graph(graph_of(method)))(
            fn, *args, t_fn, *tangents)
    if isinstance(fn, (Transformed, types.FunctionType)) or \
            isinstance(unwrap(fn), types.FunctionType):
        return _compiled(fn, -1, lambda: FORWARD.graph_value(_graph_of_function(fn)))(
            *args, *tangents)
    prim = lookup_callable(fn)
    if prim is not None and not isinstance(fn, type):
        return _compiled(fn, -1, lambda: FORWARD.primitive_value(prim))(*args, *tangents)
    raise GradError(
        f"forward mode cannot call {fn!r}: it differentiates Python functions, tapeless "
        "transforms, NumPy and math functions and objects whose class defines __call__ "
        "in Python; call a function instead")


def lift_fwd(value: Any) -> Any:
    """A callable passed into forward-mode code from the code around it (see
    `runtime.lift_fwd`): a function becomes its F-callable; a callable object is data
    (`call_fwd` calls its `__call__`)."""
    if isinstance(value, (types.FunctionType, Transformed)) or (
            _method(value) is None and lookup_callable(value) is not None and
            not isinstance(value, type)):
        if runtime.is_generated(value):
            again = _derived_again(value, "F")
            if again is not None:
                return again
            graph = getattr(value, "__tapeless_graph__", None)
            if graph is None:
                raise GradError(
                    f"the function {value!r}, made inside compiled code, is "
                    "used by a tl.jvp called there; define it at module level, or call "
                    "it inside the function differentiated")
            return _compiled(value, -1, lambda: FORWARD.graph_value(graph))
        if isinstance(value, (Transformed, types.FunctionType)):
            return _compiled(value, -1, lambda: FORWARD.graph_value(_graph_of_function(value)))
        prim = lookup_callable(value)
        assert prim is not None
        return _compiled(value, -1, lambda: FORWARD.primitive_value(prim))
    return value


def call_value_fwd(level: int, fn: Any, t_fn: Any, args: tuple, tangents: tuple) -> Any:
    """F of `call_value(level, fn, args)` (forward mode over derivative code of order
    `level`), where `fn` is not generated: F of its J-callable of that order, compiled on
    first use, called with the arguments and then their tangents (a callable object's
    `__call__` takes the object, whose tangent is `t_fn`)."""
    n = len(args)
    # (A function first: a tapeless wrapper, such as a custom_jvp function, is one.)
    if isinstance(fn, (Transformed, types.FunctionType)) or \
            isinstance(unwrap(fn), types.FunctionType):
        return _compiled(fn, ("fwd", level, n), lambda: FORWARD.graph_value(
            _j_graph(_graph_of_function(fn), level)))(*args, *tangents)
    func = fn.__func__ if isinstance(fn, types.MethodType) else None
    if isinstance(func, types.FunctionType) and \
            not isinstance(fn.__self__, (type, types.ModuleType)):
        bound = func
        return _compiled(bound, ("fwd", level, n), lambda: FORWARD.graph(
            _object_graph(bound, level, n)))(fn.__self__, *args, t_fn, *tangents)
    method = _method(fn) if not isinstance(fn, (types.FunctionType, type, Transformed)) \
        else None
    if method is not None:
        call_method = method
        return _compiled(call_method, ("fwd", level, n), lambda: FORWARD.graph(
            _object_graph(call_method, level, n)))(fn, *args, t_fn, *tangents)
    prim = lookup_callable(fn)
    if prim is not None and not isinstance(fn, type):
        return _compiled(fn, ("fwd", level, n), lambda: FORWARD.graph(
            _j_graph(_primitive_graph(prim, n), level)))(*args, *tangents)
    raise GradError(
        f"forward mode over derivative code cannot call {fn!r}: it differentiates Python "
        "functions, tapeless transforms, NumPy and math functions and objects whose class "
        "defines __call__ in Python; call a function instead")


def _primitive_graph(prim: Any, n: int) -> Graph:
    """`prim(a_1, ..., a_n)` as a graph of n parameters (the others' defaults bound)."""
    import inspect

    params = list(prim.signature.parameters.values())
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params) or \
            n > len(params):
        raise GradError(f"forward mode over derivative code cannot call {prim.name} as a "
                        "value; wrap it in a lambda")
    g = Graph(prim.name.replace(".", "_"))
    g.derived = True
    xs = [g.add_parameter(p.name) for p in params[:n]]
    g.output = g.apply(Constant(prim), *xs, *[Constant(p.default) for p in params[n:]])
    g.effects = [g.output] if prim.effect else []
    return g


def _object_graph(method: types.FunctionType, level: int, n: int) -> Graph:
    """`obj(a_1, ..., a_n)` in derivative code of order `level` as a graph of fixed arity
    (what F transforms), as `_object_call` computes it: J of `type(obj).__call__` on
    `(obj, a_1, ...)`, its backpropagator's sensitivities laid out as a value call's
    (the object's is the callee's), and J of that for higher orders."""
    g1 = _sliced(Constant(_j_graph(graph_of(method), 1)), n, f"call_{method.__name__}")
    return g1 if level == 1 else _sliced(Constant(_j_graph(g1, level - 1)), n,
                                         f"call_{method.__name__}_{level}")


def _sliced(jm: Constant, n: int, name: str) -> Graph:
    """`(obj, a_1, ..., a_n) -> (value, d -> backprop(d)[1:])` around the J-callable
    `jm`, whose backpropagator gives an environment sensitivity first."""
    g = Graph(name)
    g.derived = True
    obj = g.add_parameter("obj")
    xs = [g.add_parameter(f"a{i}") for i in range(n)]
    return _without_environment(g, g.apply(jm, obj, *xs))


# (kind, id of the function, argnums, has_aux) -> (the function, kept alive so its id
# is not reused; its transform).
_TRANSFORMS: dict[tuple, tuple[Any, Any]] = {}


def transform(kind: str, fn: Any, argnums: Any, has_aux: bool) -> Any:
    """`tl.grad(fn, ...)` or `tl.value_and_grad(fn, ...)` called inside compiled code on a
    function value (`runtime.transform_of`): made on first use, then the same object (its
    compiled code is reused)."""
    from .grad_api import grad, value_and_grad

    if runtime.is_generated(fn):
        # (A function of generated code: a lambda made in compiled code, or in derivative
        # code a function's J-callable, whose own function is not known here.)
        raise GradError(
            f"tl.{kind} inside compiled code, of a function value made by compiled code (a "
            "lambda or nested def passed along, or any function value in code that is "
            f"itself differentiated), is not supported; apply tl.{kind} where the function "
            "is named and pass the result, or to a def or lambda written at the call")
    key = (kind, id(fn), argnums, has_aux)
    found = _TRANSFORMS.get(key)
    if found is None or found[0] is not fn:
        make = value_and_grad if kind == "value_and_grad" else grad
        found = _TRANSFORMS[key] = (fn, make(fn, argnums, has_aux))
    return found[1]


class _Dynamic:
    transform = staticmethod(transform)
    call = staticmethod(call)
    lift = staticmethod(lift)
    call_fwd = staticmethod(call_fwd)
    lift_fwd = staticmethod(lift_fwd)
    call_value_fwd = staticmethod(call_value_fwd)
    derivable = staticmethod(derivable)


runtime.DYNAMIC = _Dynamic()
