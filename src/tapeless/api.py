"""The public API: `jit`, `ir` (and, in `tapeless.grad_api`, the derivatives)."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .backend import Compiled, compile_graph
from .frontend import parse
from .frontend.parser import unwrap
from .ir import print_graph

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


def load(graph_source: Any) -> Compiled:
    compiled = compile_graph(graph_source)
    GENERATED[compiled.filename] = compiled
    return compiled


class CompiledFunction:
    """A function compiled by tapeless; call it like the original."""

    def __init__(self, fn: Callable[..., Any]):
        self.__tapeless_wrapped__ = unwrap(fn)
        functools.update_wrapper(self, self.__tapeless_wrapped__)
        self._compiled: Compiled | None = None
        self._nparams = len(inspect.signature(self.__tapeless_wrapped__).parameters)
        self._simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                           for p in inspect.signature(self.__tapeless_wrapped__)
                           .parameters.values())

    def _get(self) -> Compiled:
        if self._compiled is None:
            self._compiled = load(parse(self.__tapeless_wrapped__))
        return self._compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        compiled = self._get()
        if kwargs or not self._simple or len(args) != self._nparams:
            args = tuple(positional_arguments(self.__tapeless_wrapped__, args, kwargs))
        if sys.getrecursionlimit() < _RECURSION_LIMIT:
            sys.setrecursionlimit(_RECURSION_LIMIT)
        try:
            return compiled.fn(*args)
        except Exception as exc:
            annotate_error(exc, exc.__traceback__)
            raise

    @property
    def source(self) -> str:
        """The generated Python source."""
        return self._get().source

    @property
    def ir(self) -> str:
        return print_graph(parse(self.__tapeless_wrapped__))

    def __repr__(self) -> str:
        return f"<tapeless.jit {self.__tapeless_wrapped__.__qualname__}>"


@_api
def jit(fn: Callable[..., Any]) -> CompiledFunction:
    """Compile `fn` ahead of time; the result computes exactly what `fn` computes."""
    return CompiledFunction(fn)


@_api
def ir(fn: Callable[..., Any]) -> str:
    """The IR of `fn` as readable text."""
    return print_graph(parse(fn))
