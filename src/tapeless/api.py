"""The public API: `jit` and `ir` (the derivative API is in `tapeless.grad_api`)."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .backend import Compiled, compile_graph
from .frontend import parse
from .frontend.parser import unwrap
from .ir import Graph, print_graph
from .ir.clone import copy_module
from .opt.kinds import value_kind
from .opt.passes import optimize

# Generated files by name, so run-time errors can point back at the user's source.
GENERATED: dict[str, Compiled] = {}
_RECURSION_LIMIT = 100_000


def _api(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn.__tapeless_api__ = True  # type: ignore[attr-defined]
    return fn


def positional_arguments(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[Any]:
    """Bind a call like Python would and return the arguments in parameter order, with
    `*args` packed into one tuple (the calling convention of compiled functions)."""
    sig = inspect.signature(fn)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    out = []
    for name, param in sig.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
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
            exc.__tapeless_noted__ = True  # type: ignore[attr-defined]
        except AttributeError:
            pass


def optimization_enabled() -> bool:
    """The optimizer runs unless TAPELESS_OPTIMIZE=0 (the test suites also run that way,
    to check that optimization never changes results)."""
    return os.environ.get("TAPELESS_OPTIMIZE", "1") != "0"


def load(graph: Graph, kinds: tuple = ()) -> Compiled:
    """Optimize a copy of `graph` (graphs are shared between compiled functions, so
    they are never rewritten in place), specialized to arguments of the given kinds
    (see `tapeless.opt.kinds`), generate its code and load it."""
    if optimization_enabled():
        graph = copy_module(graph)
        for p, k in zip(graph.parameters, kinds, strict=False):
            p.kind = k
        optimize(graph)
    compiled = compile_graph(graph)
    GENERATED[compiled.filename] = compiled
    return compiled


def graph_of(fn: Any) -> Graph:
    """The IR graph of a Python function or of a tapeless-transformed function."""
    if isinstance(fn, Transformed):
        return fn.graph
    return parse(fn)


def python_function(fn: Any) -> Callable[..., Any]:
    """The user's Python function underneath any number of transforms."""
    while isinstance(fn, Transformed):
        fn = fn.fun
    return unwrap(fn)


class Transformed:
    """A function compiled by tapeless (`jit`, `grad`, ...); call it like the original.
    The generated code is dynamically typed, so one compiled version serves every
    argument signature: after the first call, calls do no compiling."""

    kind = "jit"

    def __init__(self, fun: Callable[..., Any]):
        self.fun = fun
        self.__tapeless_wrapped__ = python_function(fun)
        functools.update_wrapper(self, self.__tapeless_wrapped__)
        self._graph: Graph | None = None
        self._compiled: dict[tuple, Compiled] = {}
        sig = inspect.signature(self.__tapeless_wrapped__)
        self._nparams = len(sig.parameters)
        self._simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                           for p in sig.parameters.values())
        self.compile_count = 0

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = self.build_graph()
        return self._graph

    def build_graph(self) -> Graph:
        return graph_of(self.fun)

    def _get(self, args: tuple = ()) -> Compiled:
        """The code for arguments like `args`: compiled once per argument signature
        (Python floats and ints are specialized; other values share generic code)."""
        key = tuple(value_kind(a) for a in args)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = load(self.graph, key)
            self.compile_count += 1
        return compiled

    def bind(self, args: tuple, kwargs: dict) -> tuple:
        if kwargs or not self._simple or len(args) != self._nparams:
            return tuple(positional_arguments(self.__tapeless_wrapped__, args, kwargs))
        return args

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = self.bind(args, kwargs)
        compiled = self._get(args)
        self.check_arguments(args)
        if sys.getrecursionlimit() < _RECURSION_LIMIT:
            sys.setrecursionlimit(_RECURSION_LIMIT)
        try:
            return compiled.fn(*args)
        except Exception as exc:
            annotate_error(exc, exc.__traceback__)
            raise

    def check_arguments(self, args: tuple) -> None:
        """Refuse arguments this transform cannot take (overridden by `grad`)."""

    @property
    def source(self) -> str:
        """The generated Python source."""
        return self._get().source

    @property
    def ir(self) -> str:
        """The IR, as readable text."""
        return print_graph(self.graph)

    def __repr__(self) -> str:
        return f"<tapeless.{self.kind} {self.__tapeless_wrapped__.__qualname__}>"


CompiledFunction = Transformed


@_api
def jit(fn: Callable[..., Any]) -> Transformed:
    """Compile `fn` ahead of time; the result computes exactly what `fn` computes."""
    return Transformed(fn)


@_api
def ir(fn: Callable[..., Any]) -> str:
    """The IR of `fn` as readable text."""
    return print_graph(graph_of(fn))
