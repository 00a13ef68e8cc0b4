"""The public API: `jit` and `ir` (the derivative API is in `tapeless.grad_api`)."""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, cast

import numpy as np

from .ad.api_graphs import expand_transforms
from .backend import Compiled, compile_graph
from .errors import CompileError, TapelessError
from .frontend import parse
from .frontend.guards import make_guard, reads_of
from .frontend.parser import RESOLVER, unwrap
from .ir import Constant, Graph, print_graph
from .ir.clone import copy_module, is_recursive
from .ir.edit import set_kind
from .opt import optimize, passes_up_to
from .opt.kinds import (
    MAX_TUPLE_DEPTH,
    MAX_TUPLE_ITEMS,
    ArrayKind,
    ListKind,
    TupleKind,
    record_fields,
    value_kind,
)
from .primitives.batch_rules import RaggedBatch

# Generated files by name, so run-time errors can point back at the user's source.
GENERATED: dict[str, Compiled] = {}
_RECURSION_LIMIT = 100_000

# The argument signatures and kinds of the compiled versions being built (innermost
# last): a `tl.vmap` called inside the function is batched for the kinds of its
# arguments there (`with_argument_kinds`).
_BUILDING: list[tuple[tuple | None, tuple]] = []
# Set by `tapeless.vmap_api`: `graph` with each `tl.vmap` inside it batched for the kinds
# its arguments have when `graph` is called with arguments of the given kinds.
BATCH_FOR_KINDS: Callable[..., Graph | None] | None = None


def building_kinds(key: tuple) -> tuple | None:
    """The kinds of the arguments a compiled version for signatures `key` is being built
    for, or None where none is being built for them."""
    return _BUILDING[-1][1] if _BUILDING and _BUILDING[-1][0] == key else None


@contextlib.contextmanager
def building(key: tuple | None, kinds: tuple) -> Iterator[None]:
    """Build graphs for arguments of signatures `key` and kinds `kinds` (what `_get`
    says while it compiles a version: `with_argument_kinds`, `building_kinds`; key None:
    for none)."""
    _BUILDING.append((key, kinds))
    try:
        yield
    finally:
        _BUILDING.pop()


@contextlib.contextmanager
def compiling(key: tuple | None, kinds: tuple) -> Iterator[None]:
    """`building(key, kinds)` with the cyclic garbage collector paused: compiling makes
    many IR objects that live until it ends (graphs and nodes refer to each other), which
    the collector would scan again and again for nothing (about a tenth of a small
    function's compile time). It runs again afterwards."""
    paused = gc.isenabled()
    gc.disable()
    try:
        with building(key, kinds):
            yield
    finally:
        if paused:
            gc.enable()


def with_argument_kinds(graph: Graph, key: tuple) -> Graph:
    """`graph` for arguments with signatures `key` while a compiled version for them is
    being built: each `tl.vmap` inside batched for the shapes its arguments have there
    (so that the optimizer knows every shape of the batched code); else `graph`."""
    if BATCH_FOR_KINDS is None or not _BUILDING or _BUILDING[-1][0] != key:
        return graph
    batched = BATCH_FOR_KINDS(graph, _BUILDING[-1][1])
    assert batched is not None  # (None only where the calls are not built yet)
    return batched


def graph_for_argument_kinds(fn: Any, key: tuple) -> tuple[Graph | None, Graph]:
    """`(graph_of(fn), with_argument_kinds(graph_of(fn), key))`, except where
    `batched_before_expanding` gives the second: then `(None, it)`."""
    batched = batched_before_expanding(fn, key)
    if batched is not None:
        return None, batched
    plain = graph_of(fn)
    return plain, with_argument_kinds(plain, key)


def batched_before_expanding(fn: Any, key: tuple) -> Graph | None:
    """`with_argument_kinds(graph_of(fn), key)` where `fn` is a Python function each of
    whose own `tl.vmap` calls is batched for the argument kinds, or a `tl.vmap` itself
    (else None): built from
    its parsed graph, those calls are never batched without the kinds first (the work a
    first call would do, then throw away)."""
    if BATCH_FOR_KINDS is None or not _BUILDING or _BUILDING[-1][0] != key:
        return None
    if isinstance(fn, Transformed) and fn.kind == "vmap":
        # (`tl.jit(tl.vmap(f))`, `tl.grad(tl.vmap(f))`: batched for these arguments'
        # kinds, as a `tl.vmap` called inside the function is)
        return fn.graph_for(key)
    if not isinstance(fn, types.FunctionType) or \
            getattr(fn, "__tapeless_custom__", False):
        return None
    parsed = expand_transforms(parse(jacobian_function(fn)), defer_vmap=True)
    return BATCH_FOR_KINDS(parsed, _BUILDING[-1][1], True)


def _api(fn: Callable[..., Any]) -> Callable[..., Any]:
    cast(Any, fn).__tapeless_api__ = True
    return fn


def each_element_copy(graph: Graph) -> Graph | None:
    """A copy of `graph` and the graphs it reaches where each batched graph of a
    `tl.vmap` call that has a per-element twin (`reverse.EACH_ELEMENT`) is that twin: the
    program with each `tl.vmap` inside calling its function on each element. None where
    the program draws random numbers or prints (run again after its batched code failed,
    it would draw or print twice), and where it has no such graph."""
    from .ad.reverse import EACH_ELEMENT
    from .ir.nodes import reachable_graphs

    if draws_or_prints(graph) or not any(g in EACH_ELEMENT for g in reachable_graphs(graph)):
        return None
    return copy_module(graph, replace=lambda g: EACH_ELEMENT[g]() if g in EACH_ELEMENT
                       else None)


def draws_or_prints(graph: Graph) -> bool:
    """Whether `graph` or a graph it reaches draws random numbers or prints (an effect
    a loop over a batch has once per element: `batch.per_element_effect`)."""
    from .ad.batch import per_element_effect
    from .ir.nodes import graph_nodes, prim_of, reachable_graphs

    return any(p is not None and per_element_effect(p)
               for g in reachable_graphs(graph) for node in graph_nodes(g)
               for p in (prim_of(node),))


def positional_arguments(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[Any]:
    """Bind a call like Python would and return the arguments in parameter order, with
    `*args` packed into one tuple (the calling convention of compiled functions)."""
    sig = inspect.signature(fn)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    out = []
    for name, param in sig.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            out.append(dict(bound.arguments.get(name, {})))  # (`**name`: one dict)
            continue
        out.append(bound.arguments[name])
    return out


def annotate_error(exc: BaseException, tb: TracebackType | None) -> None:
    """Add a note naming the user's source line for each generated frame."""
    notes = []
    while tb is not None:
        compiled = GENERATED.get(tb.tb_frame.f_code.co_filename)
        if compiled is not None:
            loc = compiled.linemap.get(tb.tb_lineno)
            if loc is not None:
                notes.append(f"  in {loc}: {loc.source_line.strip()}")
        tb = tb.tb_next
    if notes and hasattr(exc, "add_note") and not getattr(exc, "__tapeless_noted__", False):
        exc.add_note("tapeless: raised by compiled code from\n" + "\n".join(notes))
        try:
            cast(Any, exc).__tapeless_noted__ = True
        except AttributeError:
            pass


def optimization_passes() -> set[str] | None:
    """The optimizer passes to run: all of them, unless TAPELESS_OPTIMIZE=N enables only
    the first N (0: the optimizer is off). The test suites run at several levels, to
    check that optimization never changes results."""
    level = os.environ.get("TAPELESS_OPTIMIZE", "")
    if level in ("", "all"):
        return None
    return passes_up_to(int(level))


BACKENDS = ("python", "native")
LOOP_CHECKPOINT_MODES = ("auto", "always", "never")


class Config:
    """Process-wide settings. `backend` is what `jit` and the transforms use when they
    are not given one: "python" (the default) or "native" (Numba; see
    `tapeless.backend.native`); the environment variable `TAPELESS_BACKEND` sets it at
    import."""

    def __init__(self) -> None:
        self._backend = "python"
        self.backend = os.environ.get("TAPELESS_BACKEND", "") or "python"
        self._loop_checkpoint = "auto"
        self.loop_checkpoint = os.environ.get("TAPELESS_LOOP_CHECKPOINT", "") or "auto"
        self._loop_memory = 1 << 30
        self.loop_memory = int(os.environ.get("TAPELESS_LOOP_MEMORY", "") or 1 << 30)

    @property
    def loop_checkpoint(self) -> str:
        """Which `for` and `while` loops of a gradient may be checkpointed (see
        docs/design.md, "Checkpointed loops"): "auto" (those whose saved values are not
        proven to fit in `loop_memory` bytes when compiling), "always" or "never"; a
        recursion is checkpointed with "always", and with "auto" where `loop_memory` is
        below its default (its records then decided at run time). Read when a function
        is compiled."""
        return self._loop_checkpoint

    @loop_checkpoint.setter
    def loop_checkpoint(self, value: str) -> None:
        if value not in LOOP_CHECKPOINT_MODES:
            raise TapelessError(f"unknown loop_checkpoint {value!r}: use one of "
                                f"{', '.join(LOOP_CHECKPOINT_MODES)}")
        self._loop_checkpoint = value

    @property
    def loop_memory(self) -> int:
        """The bytes a gradient's `for` loop may save for its backward pass before it is
        checkpointed (1 GiB by default; `TAPELESS_LOOP_MEMORY`); also the bytes of records
        a recursion's gradient keeps per recording region before the records of further
        calls are made again in the backward pass (Python backend; docs/design.md)."""
        return self._loop_memory

    @loop_memory.setter
    def loop_memory(self, value: int) -> None:
        if not isinstance(value, int) or value < 0:
            raise TapelessError(f"loop_memory must be a number of bytes (an int >= 0), not "
                                f"{value!r}")
        self._loop_memory = value

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_backend(value)


def check_backend(backend: str | None) -> str:
    """`backend`, or the process-wide default where it is None; refuses other names, and
    "native" where Numba is not installed."""
    if backend is None:
        return config.backend
    if backend not in BACKENDS:
        raise TapelessError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "native":
        from .backend.native import available

        if not available():
            raise TapelessError('backend="native" needs Numba: pip install "tapeless[native]"'
                                ' (or leave backend at "python")')
    return backend


config = Config()


def load(graph: Graph, kinds: tuple = (), backend: str = "python") -> Compiled:
    """Optimize a copy of `graph` (graphs are shared between compiled functions, so
    they are never rewritten in place), specialized to arguments of the given kinds
    (see `tapeless.opt.kinds`), generate its code and load it (as native code with
    `backend="native"`, where Numba can type it; where it cannot, the entry runs the
    Python backend's program, built then: `NativeFunction.use_python_backend`)."""
    expand_transforms(graph)
    given = graph
    passes = optimization_passes()
    if passes is None or passes:
        graph = copy_module(graph)
        # The arguments' kinds hold inside the function unless it calls itself (with
        # other arguments: a recursion on array halves sees other shapes).
        if not is_recursive(graph):
            for p, k in zip(graph.parameters, kinds, strict=False):
                set_kind(p, k)
        optimize(graph, passes, loops=(config.loop_checkpoint, config.loop_memory),
                 python=backend != "native")
    compiled = compile_graph(graph, state_tails=backend != "native")
    GENERATED[compiled.filename] = compiled
    if backend == "native":
        from .backend.native import compile_native

        compiled = compile_native(compiled, largest_array(kinds))
        # (A program that falls back runs the Python backend's own program, optimized
        # for CPython, not the code lowered for Numba: built when it falls back.)
        compiled.fn.python_backend = lambda: load(given, kinds, "python")
        if compiled.fn.fallback is not None:
            compiled.fn.use_python_backend()
    return compiled


def largest_array(kinds: tuple) -> int:
    """The most elements of an array among arguments of these kinds (in tuples and
    lists too); 0 where there is none."""
    largest = 0
    todo = list(kinds)
    while todo:
        k = todo.pop()
        if type(k) is ArrayKind:
            size = 1
            for n in k.shape:
                size *= n
            largest = max(largest, size)
        elif type(k) is TupleKind:
            todo.extend(k.items)
        elif type(k) is ListKind:
            todo.append(k.element)
    return largest


# The head of the signature of a list whose items all have one signature: it does not
# hold the length (see `_signature`); other signatures start with a type or a shape.
LIST_OF = "list_of"


def _structured(value: Any) -> bool:
    """A tuple, list, dict, NamedTuple or dataclass: a list of them (of `(W, b)` layers)
    is a structure whose signature keeps its length, as a tuple's does."""
    t = type(value)
    return t is tuple or t is list or t is dict or record_fields(t) is not None


def _signature(value: Any, depth: int = 0) -> Any:
    """What a compiled specialization depends on (`value_kind` is a function of it):
    cheap to compute on every call. A tuple's is its items' (up to a size and a depth,
    like its kind), so a tuple of two arrays never runs code made for three. A list's is
    its items' one signature when they all have the same, without the length, since its
    kind `list<K>` has none: lists of 2 and of 20 floats share code (items of one
    signature have one kind, of which the list's kind is a function). Other lists (empty,
    with items of several signatures, or of containers: a list of layers is a structure,
    as in a pytree) keep all their items' signatures, like tuples;
    lists too long or too deep to have a kind have only their type, like such tuples.
    A dict (exactly `dict`) whose keys are all strings (exactly `str`) has its (key,
    signature) pairs in order, and a NamedTuple or a dataclass of a class that gets
    record kinds (`record_fields`) its class and its fields' signatures in order, within
    the same limits; other dicts and instances have only their type."""
    t = type(value)
    if t is np.ndarray:
        return (value.shape, value.dtype.str)
    if t is float or t is int:
        return t
    if (t is tuple or t is list) and len(value) <= MAX_TUPLE_ITEMS and depth < MAX_TUPLE_DEPTH:
        items = [_signature(v, depth + 1) for v in value]
        if t is list and items and items.count(items[0]) == len(items) and \
                not _structured(value[0]):
            return (LIST_OF, items[0])
        return (t, tuple(items))
    if t is dict:
        if len(value) <= MAX_TUPLE_ITEMS and depth < MAX_TUPLE_DEPTH and \
                all(type(k) is str for k in value):
            return (dict, tuple([(k, _signature(v, depth + 1)) for k, v in value.items()]))
        return t
    fields = record_fields(t)
    if fields is not None and depth < MAX_TUPLE_DEPTH:
        parts = list(value) if isinstance(value, tuple) else [getattr(value, f) for f in fields]
        if len(parts) == len(fields):
            return (t, tuple([_signature(v, depth + 1) for v in parts]))
    return t


# The signature of an argument bound into the compiled code by its identity: a function,
# a class or a tapeless transform passed to a function being differentiated.
# (The types of tapeless transforms are added where they are defined.)
BOUND = "bound"
BOUND_TYPES = {types.FunctionType, types.BuiltinFunctionType, types.MethodType, np.ufunc,
               type, functools.partial}


def _bound(key: tuple, args: tuple) -> tuple:
    """`key` with the signature of each argument bound by identity (a function, a class or
    a tapeless transform) replaced by `(BOUND, the argument)`."""
    if BOUND_TYPES.isdisjoint(key):
        return key
    return tuple((BOUND, a) if s in BOUND_TYPES else s for s, a in zip(key, args, strict=True))


def graph_of(fn: Any, defer_vmap: bool = False) -> Graph:
    """The IR graph of a Python function or of a tapeless-transformed function. With
    `defer_vmap`, a Python function's own `tl.vmap` calls are left to build
    (`expand_transforms`)."""
    if isinstance(fn, Transformed):
        return fn.graph
    if getattr(fn, "__tapeless_custom__", False):  # (`tl.custom_jvp`, `tl.custom_vjp`)
        graph: Graph = fn.custom_graph()
        return expand_transforms(graph)
    if is_bound_method(fn):
        return _bound_method_graph(fn)
    return expand_transforms(parse(jacobian_function(fn)), defer_vmap)


def for_positional(fn: Any, primals: Any) -> Any:
    """What a call of `fn` passing `primals` positionally runs (`tl.jvp`, `tl.vjp`,
    `tl.linearize`): a `tl.vmap` object's axes depend on the arguments a call passes
    (`Transformed.for_call`)."""
    if isinstance(fn, Transformed) and isinstance(primals, (tuple, list)):
        return fn.for_call(tuple(primals), {})
    return fn


def is_bound_method(fn: Any) -> bool:
    """Whether `fn` is a method bound to an object (`obj.method`, not a classmethod nor
    a module's function), whose function is a Python function."""
    return isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType) \
        and not isinstance(fn.__self__, (type, types.ModuleType))


def _bound_method_graph(fn: types.MethodType) -> Graph:
    """The graph of `obj.method`: the method's graph called with `obj`, held as a
    constant (as a closure holds it: `tl.jit(obj.method)` sees the object it was given,
    like `jax.jit` of a bound method), then the arguments."""
    method = graph_of(fn.__func__)
    if method.signature is None or not method.parameters or method.signature[0].kind != "pos":
        raise CompileError(f"tapeless cannot compile the bound method {fn.__qualname__}: "
                           "its function takes no positional `self` parameter")
    g = Graph(fn.__func__.__name__, loc=method.loc)
    params = [g.add_parameter(p.name) for p in method.parameters[1:]]
    g.signature = method.signature[1:]
    g.vararg = method.vararg
    out = g.apply(Constant(method), Constant(fn.__self__), *params)
    g.effects = [out]
    g.output = out
    return g


def python_function(fn: Any) -> Callable[..., Any]:
    """The user's Python function underneath any number of transforms."""
    while isinstance(fn, Transformed):
        fn = fn.fun
    found: Callable[..., Any] = jacobian_function(unwrap(fn))
    return found


def jacobian_function(fn: Any) -> Any:
    """For a function made by `tl.jacfwd`, `tl.jacrev` or `tl.hessian` (int argnums), the
    one compiled code calls (`frontend/jacobians.py`), so that `tl.jvp(tl.jacrev(f))`
    and `tl.vmap(tl.jacfwd(f))` transform the Jacobian, not the Python computing it
    outside (whose `*args` and calls of `tl.vjp` compiled code refuses); else fn."""
    made = getattr(fn, "__tapeless_jacobian__", None)
    return fn if made is None or made() is None else made()


class Transformed:
    """A function compiled by tapeless (`jit`, `grad`, ...); call it like the original.
    The generated code is dynamically typed, so one compiled version serves every
    argument signature: after the first call, calls do no compiling.

    Compiled code holds the values that the globals and closure cells it read had when
    it was compiled (in the function and in every function it reaches). Each call first
    tests one guard over all of them (`_guard`: an identity test per name); when a name
    was rebound, the graph and every compiled version are dropped (`invalidate`) and
    built again from the current values."""

    kind = "jit"
    # (How the front end knows one when the compiled code reads it as a global.)
    __tapeless_transform__ = True
    # Whether a native program may start from its record in the cache (`_start`):
    # `tapeless show` builds it, to show what it is.
    start_from_cache = True

    def __init__(self, fun: Callable[..., Any], backend: str | None = None):
        self.fun = fun
        self.backend = check_backend(backend)
        self.__tapeless_wrapped__ = python_function(fun)
        functools.update_wrapper(self, self.__tapeless_wrapped__)
        self._graph: Graph | None = None
        self._compiled: dict[tuple, Compiled] = {}
        sig = inspect.signature(self.__tapeless_wrapped__)
        self._nparams = len(sig.parameters)
        self._simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                           for p in sig.parameters.values())
        self.compile_count = 0
        # Whether functions passed as arguments are bound by identity (see `key`): where
        # a derivative is taken, here or in the function transformed.
        self.binds_functions: bool = isinstance(fun, Transformed) and fun.binds_functions
        # Arguments are checked when their signatures are first seen, and on every call
        # for these signatures, which do not prove them fit (`check_each_call`).
        self._check_each_call: set[tuple] = set()
        # The resolver's entries of the functions the graphs built here came from, and
        # the guard over the globals and cells they read (None: nothing to test).
        self._deps: set[Any] = set()
        self._guard: Callable[[], bool] | None = None
        # The globals and cells read by the programs started from the native cache
        # (`_start`), which the guard tests too.
        self._start_reads: list[Any] = []
        # The code where each `tl.vmap` inside runs per element, by argument signature
        # (`each_element`; None: refused).
        self._each: dict[tuple, Compiled | None] = {}

    def _validate(self) -> None:
        """Drop the graph and the compiled code if a global or a cell they read was
        rebound since."""
        if self._guard is not None and not self._guard():
            self.invalidate()

    def invalidate(self) -> None:
        """Forget the graph and every compiled version (the next call compiles anew,
        from the globals' current values)."""
        self._graph = None
        self._compiled = {}
        self._deps = set()
        self._guard = None
        self._start_reads = []
        self._each = {}

    def _used(self, deps: set[Any]) -> None:
        """Add the entries a graph built here used to the guard, and report them to
        whatever graph is being built from this one."""
        if not deps <= self._deps:
            self._deps |= deps
            self._guard = make_guard(reads_of(self._deps) + self._start_reads)
        RESOLVER.note(*self._deps)

    @property
    def graph(self) -> Graph:
        self._validate()
        if self._graph is None:
            with RESOLVER.recording() as deps:
                graph = self.build_graph()
            self._graph = graph
            self._used(deps)
        else:
            RESOLVER.note(*self._deps)
        return self._graph

    def build_graph(self) -> Graph:
        return graph_of(self.fun)

    def _get(self, args: tuple = ()) -> Compiled:  # noqa: D401
        """The code for arguments like `args`: compiled once per argument signature
        (Python floats and ints, NumPy arrays by dtype and shape, tuples, dicts,
        NamedTuples and dataclasses of them by their structure and lists by their items'
        one signature, whatever their length, are specialized; other values share
        generic code)."""
        self._validate()
        key = self.key(args)
        compiled = self._compiled.get(key)
        if compiled is None:
            if self.check_each_call(key):
                self._check_each_call.add(key)
            kinds = tuple(value_kind(a) for a in args)
            start = self._start_key(key)
            if start is not None:
                compiled = self._start(key, kinds, *start)
            if compiled is None:
                compiled = self._build(key, kinds, start)
            self._compiled[key] = compiled
            self.compile_count += 1
        return compiled

    def _build(self, key: tuple, kinds: tuple, start: tuple[str, list] | None = None
               ) -> Compiled:
        """Build and compile the code for arguments with signatures `key` and `kinds`;
        with a start key (`_start_key`), a native program writes its start record once
        its first call settles it, and one recorded as falling back is not lowered."""
        fallback = None
        if start is not None:
            from .backend.native_cache import load_fallback

            fallback = load_fallback(start[0])
        # (`compiling` pauses the garbage collector. `tl.vmap(f)` builds f's graph for one
        # example's kinds, not these.)
        with compiling(*((key, kinds) if self.kind != "vmap" else (None, ()))):
            # (A program recorded as falling back is built for the Python backend.)
            compiled = load(self.graph_for(key), kinds,
                            self.backend if fallback is None else "python")
        if start is not None:
            from .backend.native import NativeFunction
            from .backend.native_cache import save

            if fallback is not None:
                # (recorded by an earlier process: Numba is not tried again)
                compiled = Compiled(NativeFunction(compiled.fn, None, None, fallback),
                                    compiled.source, compiled.filename, compiled.linemap)
            elif isinstance(compiled.fn, NativeFunction):
                if compiled.fn.fallback is not None:  # (refused by the lowering)
                    save(start[0], compiled.fn)
                else:
                    compiled.fn.on_settled = functools.partial(save, start[0])
        return compiled

    def start_description(self) -> tuple | None:
        """What this transform is, for the key that a native program starts from the
        cache by (`tapeless.backend.native_cache`): its kind and parameters, then the
        function it applies to; None where it has none (only `jit` and the gradients
        have one)."""
        return ("jit", self.backend, self.fun) if type(self) is Transformed else None

    def _start_key(self, key: tuple) -> tuple[str, list] | None:
        """The start key of the native program for arguments with signatures `key`, and
        the reads its guard tests; None where it is not started from the cache (another
        backend, a build inside another's, no cache directory, no key)."""
        if self.backend != "native" or _BUILDING or not self.start_from_cache:
            return None
        description = self.start_description()
        if description is None:
            return None
        from .backend import native, native_cache

        if native.cache_dir() is None:
            return None
        from .opt import unwind

        return native_cache.start_key(description, key, (
            os.environ.get("TAPELESS_OPTIMIZE", ""), config.loop_checkpoint,
            config.loop_memory, unwind.FUSE_VALUES,
            os.environ.get("TAPELESS_VMAP_COMPACT_LEAST", "")))

    def _start(self, key: tuple, kinds: tuple, start: str, reads: list) -> Compiled | None:
        """The native program for arguments with signatures `key` started from its record
        in the cache (a second process: nothing is parsed, differentiated or optimized),
        or None where there is none."""
        from .backend.native_cache import load as load_started

        found = load_started(start, lambda: self._build(key, kinds).fn)
        if found is None:
            return None
        entry, source, filename, linemap = found
        self._start_reads = self._start_reads + reads
        self._guard = make_guard(reads_of(self._deps) + self._start_reads)
        compiled = Compiled(entry, source, filename, linemap)
        if linemap:  # (the Python backend's program of one that falls back: its errors
            GENERATED[filename] = compiled  # say where in the user's code)
        return compiled

    def bind(self, args: tuple, kwargs: dict) -> tuple:
        if kwargs or not self._simple or len(args) != self._nparams:
            return tuple(positional_arguments(self.__tapeless_wrapped__, args, kwargs))
        return args

    def key(self, args: tuple) -> tuple:
        """The signatures of the arguments, which select the compiled code. Where a
        derivative is taken (`binds_functions`), a function, a class or a tapeless
        transform passed as an argument counts by its identity: derivative code calls it
        through its derivative, compiled with the program (`graph_for`)."""
        key = tuple(map(_signature, args))
        return _bound(key, args) if self.binds_functions else key

    def graph_for(self, key: tuple) -> Graph:
        """The graph to compile for arguments with signatures `key` (`build_graph_for`),
        guarded like `graph`."""
        self._validate()
        with RESOLVER.recording() as deps:
            graph = self.build_graph_for(key)
        self._used(deps)
        return graph

    def build_graph_for(self, key: tuple) -> Graph:
        """The graph for arguments with signatures `key`: where the transformed function
        binds the functions passed as arguments (`jit` of a `grad`), its graph for them."""
        if self.binds_functions:
            assert isinstance(self.fun, Transformed)  # (binds_functions says so)
            return self.fun.graph_for(key)
        if type(self).build_graph is Transformed.build_graph:  # (the graph of `fun`)
            batched = batched_before_expanding(self.fun, key)
            if batched is not None:
                return batched
        return with_argument_kinds(self.graph, key)

    def for_call(self, args: tuple, kwargs: dict) -> Transformed:
        """The transform that runs a call passing these arguments: itself, but where the
        function transformed is a `tl.vmap` object (`tl.jit(tl.vmap(f))`,
        `tl.grad(tl.vmap(f))`), whose axes depend on the arguments a call passes
        (JAX's rules: `Vmapped.for_call`), the same transform of the vmap object the
        call runs (`with_fun`), made once."""
        fun = self.fun
        if not isinstance(fun, Transformed):
            return self
        inner = fun.for_call(args, kwargs)
        if inner is fun:
            return self
        made = self.__dict__.setdefault("_for_calls", {})
        if id(inner) not in made:
            made[id(inner)] = (inner, self.with_fun(inner))  # (inner kept alive)
        return cast(Transformed, made[id(inner)][1])

    def with_fun(self, fun: Transformed) -> Transformed:
        """This transform of `fun` instead (`for_call`)."""
        assert type(self) is Transformed, type(self)  # (subclasses: their own)
        return Transformed(fun, self.backend)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.fun, Transformed) and \
                (target := self.for_call(args, kwargs)) is not self:
            return target(*args, **kwargs)
        guard = self._guard
        if guard is not None and not guard():
            self.invalidate()
        args = self.bind(args, kwargs)
        key = tuple(map(_signature, args))
        if self.binds_functions:
            key = _bound(key, args)
        compiled = self._compiled.get(key)
        # (A function that never needs a second check pays one truth test of an empty set.)
        if compiled is None or (self._check_each_call and key in self._check_each_call):
            self.check_arguments(args)
            if compiled is None:
                compiled = self._get(args)
        if sys.getrecursionlimit() < _RECURSION_LIMIT:
            sys.setrecursionlimit(_RECURSION_LIMIT)
        try:
            return compiled.fn(*args)
        except Exception as exc:
            if isinstance(exc, RaggedBatch) and \
                    (each := self.each_element(key, args)) is not None:
                return each.fn(*args)
            annotate_error(exc, exc.__traceback__)
            raise

    def each_element(self, key: tuple, args: tuple) -> Compiled | None:
        """The code for arguments like `args` where each `tl.vmap` inside calls its
        function on each element (a loop over the batch), for a program whose batched
        code met a value whose shape differs across the batch (`RaggedBatch`: a loop
        whose trip count differs across the batch and its state's shape with it). Built
        once per argument signature: a copy of the program with each batched graph that
        has a per-element twin (`reverse.EACH_ELEMENT`) replaced by it. None where the
        function draws random numbers or prints (the batched code did some of that
        already: run again, it would draw or print twice), and for transforms other
        than `jit` (`grad` overrides it)."""
        if type(self) is not Transformed:
            return None
        if isinstance(self.fun, Transformed):  # (`jit` of a `grad` or a `vmap`: theirs)
            return self.fun.each_element(key, args)
        if key in self._each:
            return self._each[key]
        kinds = tuple(value_kind(a) for a in args)
        with compiling(key, kinds):
            graph = each_element_copy(self.graph_for(key))
            compiled = None if graph is None else load(graph, kinds, self.backend)
        self._each[key] = compiled
        return compiled

    def check_arguments(self, args: tuple) -> None:
        """Refuse arguments this transform cannot take (overridden by `grad`)."""

    def check_each_call(self, key: tuple) -> bool:
        """Whether arguments with the signatures `key` must be checked on every call,
        not only on the first: when the signatures do not prove that `check_arguments`
        accepts every value that has them (overridden by `grad`; here nothing is
        checked)."""
        return False

    @property
    def source(self) -> str:
        """The generated Python source (the generic build, for arguments of any kind)."""
        return self._get().source

    def source_for(self, *args: Any, **kwargs: Any) -> str:
        """The generated Python source specialized for arguments like these (what a call
        with them runs: where the axes of a `tl.vmap` depend on the call, `for_call`'s)."""
        target = self.for_call(args, kwargs)
        if target is not self:
            return target.source_for(*args, **kwargs)
        return self._get(self.bind(args, kwargs)).source

    @property
    def ir(self) -> str:
        """The IR, as readable text."""
        return print_graph(self.graph)

    def __repr__(self) -> str:
        return f"<tapeless.{self.kind} {self.__tapeless_wrapped__.__qualname__}>"


CompiledFunction = Transformed
BOUND_TYPES.add(Transformed)

@_api
def jit(fn: Callable[..., Any], backend: str | None = None) -> Transformed:
    """Compile `fn` ahead of time; the result computes exactly what `fn` computes. With
    `backend="native"` the code is compiled by Numba where it can be (default: the
    process-wide `tapeless.config.backend`)."""
    return Transformed(fn, backend)


@_api
def ir(fn: Callable[..., Any]) -> str:
    """The IR of `fn` as readable text."""
    return print_graph(graph_of(fn))
