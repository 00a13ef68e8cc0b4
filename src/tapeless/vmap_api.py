"""`tl.vmap`: a function written for one example, run on a batch (JAX's semantics for
`in_axes`, `out_axes` and `axis_size`), by the V transform (`tapeless.ad.batch`).

The batched function is itself a graph (`vmap_graph`): it moves each mapped axis first,
calls the V transform of the function, and moves the batch axis of the results where
`out_axes` says. So `tl.vmap` composes like the other transforms: `tl.grad` of it,
`tl.jit` of it, `tl.vmap` of it, and calls of it inside compiled code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .ad.batch import B, Tup, U, VmapError, VTransform
from .api import BOUND_TYPES, Transformed, _api, graph_of
from .ir import Graph
from .ir.clone import inline_body
from .ir.nodes import Constant, Node
from .primitives import PRIMITIVES as P
from .runtime import tree_leaves


def _tree(axis: Any, where: str) -> Any:
    if axis is None:
        return U
    if isinstance(axis, int):
        return B
    if isinstance(axis, (tuple, list)):
        trees = tuple(_tree(a, f"{where}[{i}]") for i, a in enumerate(axis))
        return U if all(t == U for t in trees) else Tup(trees, isinstance(axis, list))
    raise VmapError(f"vmap: {where}: an axis is an int, None, or a tuple or list of them "
                    f"matching a tuple or list argument, not {axis!r}")


def _helper(name: str, g: Graph, args: list[Node]) -> Node:
    from .frontend.parser import parse
    from .primitives import batch_rules

    out, _ = inline_body(parse(getattr(batch_rules, name)), g, args)
    return out


def vmap_graph(fg: Graph, in_axes: list[Any], out_axes: Any, axis_size: int | None,
               name: str) -> Graph:
    """The graph of `vmap(f)` (see the module's docstring)."""
    g = Graph(f"vmap_{name}", None, fg.loc)
    for p in fg.parameters:
        g.add_parameter(p.name, p.loc)
    g.signature = fg.signature
    g.vararg = fg.vararg
    trees = [_tree(a, f"in_axes[{i}]") for i, a in enumerate(in_axes)]
    moved: list[Node] = []
    size: Node | None = Constant(axis_size) if axis_size is not None else None
    for p, axis in zip(g.parameters, in_axes, strict=True):
        if isinstance(axis, int):
            moved.append(_helper("move_in", g, [p, Constant(axis)]))
            if size is None:
                size = _helper("size_of", g, [p, Constant(axis)])
        elif isinstance(axis, (tuple, list)):
            parts = []
            for j, a in enumerate(axis):
                item = g.apply(P["getitem"], p, j)
                if isinstance(a, int):
                    parts.append(_helper("move_in", g, [item, Constant(a)]))
                    if size is None:
                        size = _helper("size_of", g, [item, Constant(a)])
                elif a is None:
                    parts.append(item)
                else:
                    raise VmapError("vmap: nested in_axes deeper than one level are not "
                                    "supported yet")
            moved.append(g.apply(P["make_list" if isinstance(axis, list) else "make_tuple"],
                                 *parts))
        else:
            moved.append(p)
    if size is None:
        raise VmapError("vmap: no argument is mapped (in_axes is None everywhere); give "
                        "axis_size")
    vg = VTransform().root(fg, trees)
    out = g.apply(Constant(vg), size, *moved, loc=fg.loc)
    g.effects = [out]
    if isinstance(out_axes, int):
        g.output = _helper("move_out", g, [out, Constant(out_axes)])
    elif isinstance(out_axes, (tuple, list)) and all(isinstance(a, int) for a in out_axes):
        g.output = g.apply(P["make_tuple"], *[
            _helper("move_out", g, [g.apply(P["getitem"], out, j), Constant(a)])
            for j, a in enumerate(out_axes)])
    else:
        raise VmapError(f"vmap: out_axes {out_axes!r}: give an int, or a tuple of ints "
                        "matching a tuple result")
    return g


class Vmapped(Transformed):
    """`tl.vmap(f)`: `f` mapped over a batch axis of its arguments."""

    kind = "vmap"

    def __init__(self, fun: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
                 axis_size: int | None = None):
        super().__init__(fun)
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.axis_size = axis_size

    def _axes(self, n: int) -> list[Any]:
        if isinstance(self.in_axes, (int, type(None))):
            return [self.in_axes] * n
        axes = list(self.in_axes)
        if len(axes) != n:
            raise VmapError(f"vmap: in_axes has {len(axes)} entries for {n} arguments")
        return axes

    def build_graph(self) -> Graph:
        return self._vmapped(graph_of(self.fun))

    def build_graph_for(self, key: tuple) -> Graph:
        if self.binds_functions:  # (`vmap(grad(f))`: the gradient for these arguments)
            assert isinstance(self.fun, Transformed)
            return self._vmapped(self.fun.graph_for(key))
        return self.graph

    def _vmapped(self, fg: Graph) -> Graph:
        return vmap_graph(fg, self._axes(len(fg.parameters)), self.out_axes,
                          self.axis_size, fg.name)

    def check_arguments(self, args: tuple) -> None:
        """The mapped axes must exist and have one length."""
        sizes = set()
        for i, (a, axis) in enumerate(zip(args, self._axes(len(args)), strict=True)):
            pairs = [(a, axis)] if not isinstance(axis, (tuple, list)) else \
                list(zip(a, axis, strict=False))
            for value, ax in pairs:
                if not isinstance(ax, int):
                    continue
                for leaf in tree_leaves(value):
                    nd = np.ndim(leaf)
                    if not -nd <= ax < nd:
                        raise VmapError(f"vmap: argument {i} has no axis {ax} to map over "
                                        f"(its shape is {np.shape(leaf)}); give it in_axes "
                                        "None or an array with that axis")
                    sizes.add(np.shape(leaf)[ax])
        if self.axis_size is not None:
            sizes.add(self.axis_size)
        if len(sizes) > 1:
            raise VmapError(f"vmap: the mapped axes have different lengths: {sorted(sizes)}")

    def check_each_call(self, key: tuple) -> bool:
        return True


BOUND_TYPES.add(Vmapped)


@_api
def vmap(fun: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None) -> Vmapped:
    """`fun` mapped over an axis of its arguments: `vmap(f)(xs)[i] == f(xs[i])`.

    `in_axes`: the axis of each argument to map over (an int for all of them, or one
    entry per argument: an int, None for an argument passed whole to every element, or
    a tuple or list matching a tuple or list argument); `out_axes`: where the batch axis
    goes in the results; `axis_size`: the batch's length where no argument is mapped.
    Python control flow on values that differ across the batch runs per element (see
    `tapeless.ad.batch`)."""
    return Vmapped(fun, in_axes, out_axes, axis_size)
