"""Guards on the global names and closure cells that compiled code read.

The front end reads globals (and the closure cells of the function it compiles) when
it compiles: their values become constants of the graph. Each compiled function keeps
what it read (`Entry.reads`: the namespace, the name and the value); a graph is current
while every name it read, in its function and in every function it reached (`deps`),
is still bound to the same object (an identity test, as `torch.compile` does). The
resolver compiles a function again when its graph is no longer current, and each
tapeless transform tests, on every call, one guard over everything its code read
(`make_guard`), dropping its compiled code when one was rebound."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..ir.nodes import Graph


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


# The value recorded for a name that was not bound (a builtin read through a module's
# globals): the guard holds while the name stays unbound there.
MISSING: Any = _Missing()

# A read: (namespace, name, value), the namespace being a dict (a module's globals, a
# module's `__dict__`) or a class's mappingproxy; or (cell, None, value) for a closure
# cell.
Read = tuple[Any, Any, Any]


class Entry:
    """A function compiled by the resolver: its graph, the globals and cells it read,
    and the entries of the functions (and transforms) its graph was built from."""

    __slots__ = ("fn", "graph", "reads", "deps", "done", "exempt", "__weakref__")

    def __init__(self, fn: types.FunctionType, graph: Graph, exempt: bool):
        self.fn = fn
        self.graph = graph
        # (id(namespace), name) -> read; cells by (id(cell), None).
        self.reads: dict[tuple[int, Any], Read] = {}
        self.deps: set[Any] = set()  # Entry, or a transform's set of entries
        self.done = False
        self.exempt = exempt

    def record(self, namespace: Any, name: Any, value: Any) -> None:
        if not self.exempt:
            self.reads.setdefault((id(namespace), name), (namespace, name, value))


def holds(read: Read) -> bool:
    """Whether a recorded read would read the same object now."""
    namespace, name, value = read
    if name is None:
        try:
            return namespace.cell_contents is value
        except ValueError:  # the cell was emptied
            return False
    return namespace.get(name, MISSING) is value


def entries_of(roots: Iterable[Entry]) -> list[Entry]:
    """The entries reachable from `roots` through `deps`, each once."""
    seen: dict[int, Entry] = {}
    stack = list(roots)
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen[id(e)] = e
        stack.extend(e.deps)
    return list(seen.values())


def reads_of(roots: Iterable[Entry]) -> list[Read]:
    """Every read of the entries reachable from `roots`, each (namespace, name) once."""
    out: dict[tuple[int, Any], Read] = {}
    for e in entries_of(roots):
        for k, r in e.reads.items():
            out.setdefault(k, r)
    return list(out.values())


def current(roots: Iterable[Entry]) -> bool:
    """Whether every read of the entries reachable from `roots` still holds."""
    return all(holds(r) for e in entries_of(roots) for r in e.reads.values())


def make_guard(reads: list[Read]) -> Callable[[], bool] | None:
    """A function that says, cheaply, whether every read still holds (None when there is
    nothing to check): generated code, one identity test per read (`ns["name"] is v`,
    `cell.cell_contents is v`, `"name" not in ns` for a name that was unbound), with
    the namespaces and values bound as default values; a name deleted since, or a
    cell emptied, fails it."""
    if not reads:
        return None
    spaces: dict[int, str] = {}
    params: list[str] = []
    values: list[Any] = []
    tests: list[str] = []
    for i, (namespace, name, value) in enumerate(reads):
        ns = spaces.get(id(namespace))
        if ns is None:
            ns = spaces[id(namespace)] = f"n{len(spaces)}"
            params.append(ns)
            values.append(namespace)
        if name is None:
            tests.append(f"{ns}.cell_contents is v{i}")
        elif value is MISSING:
            tests.append(f"{name!r} not in {ns}")
            continue
        else:
            tests.append(f"{ns}[{name!r}] is v{i}")
        params.append(f"v{i}")
        values.append(value)
    # (Defaults are read as fast locals: a little faster than closure variables.)
    source = (f"def guard({', '.join(f'{p}={p}' for p in params)}):\n"
              "    try:\n"
              f"        return {' and '.join(tests)}\n"
              "    except (KeyError, ValueError):\n"
              "        return False\n")
    scope: dict[str, Any] = dict(zip(params, values, strict=True))
    exec(compile(source, "<tapeless guard>", "exec"), scope)  # noqa: S102
    guard: Callable[[], bool] = scope["guard"]
    return guard


class Recorder:
    """Collects the entries used while a graph is built (`recording`): each function
    the resolver hands out, and the entries of each transform whose graph is used."""

    def __init__(self) -> None:
        self.stack: list[set[Any]] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[set[Any]]:
        deps: set[Any] = set()
        self.stack.append(deps)
        try:
            yield deps
        finally:
            self.stack.pop()

    def note(self, *entries: Entry) -> None:
        if self.stack:
            self.stack[-1].update(entries)
