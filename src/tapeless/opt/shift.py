"""Whether a program's objective is invariant under shifting the max a stable softmax
subtracts, whichever way it is written.

Stable log-softmax, softmax and log-sum-exp subtract `mx = max_k a_k` and add it back
(or divide it out): `logits - mx` followed by `shifted - log(Σ exp(shifted))`,
`exp(shifted) / Σ exp(shifted)`, `log(Σ exp(a - mx[None, :])) + mx`, a gather
`(a - mx)[np.arange(n), labels] - lse`... The objective then does not depend on `mx`:
the derivative's share through the max is zero (`softmax.py` drops it). This module
proves that from the program's meaning, not its spelling: it replaces `mx` by `mx + δ`
(δ of mx's shape) and follows, from the objective back to `mx`, how each value depends
on δ:

- NONE: not at all;
- `Shift(c, axes)`: the value plus `c · δ`, laid out along `axes` of the value (its
  axes counted from the end, one per axis of δ, so that broadcasting keeps them);
- `Scale(c, axes)`: the value times `exp(c · δ)`, laid out likewise.

`a − mx` is a Shift by −1, its `exp` a Scale by −1, a sum of that over the reduced axes
still a Scale, whose `log` is a Shift by −1 again, which cancels against the first: the
log-softmax is NONE. Anything the rules below do not cover is UNKNOWN (not invariant).
This module only reads the IR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from ..ir.nodes import (
    Apply,
    Constant,
    Graph,
    Node,
    free_variables,
    graph_nodes,
    prim_of,
    reachable_graphs,
)
from .kinds import FLOAT, INT, SCALAR, dtype_of, kind, normalized_axes, shape_of

if TYPE_CHECKING:
    from .loop_facts import LoopFacts


@dataclass(frozen=True)
class Shift:
    c: float
    axes: tuple[int, ...]  # negative: counted from the value's last axis


@dataclass(frozen=True)
class Scale:
    c: float
    axes: tuple[int, ...]


NONE = "none"
UNKNOWN = "unknown"
Effect = Shift | Scale | str

DEPTH_MAX = 400  # nodes followed back from the objective, at most


# The objective of each program being optimized, found before the optimizer drops its
# `check_scalar_output` (`remember_objective`); None where there is no single one.
_OBJECTIVES: WeakKeyDictionary[Graph, Node | None] = WeakKeyDictionary()


def objective_of(root: Graph) -> Node | None:
    """The value a reverse derivative of the compiled program differentiates: the input
    of its one `check_scalar_output`, where there is one, in the root graph, and one
    seed of it (`ones_like_output`); None otherwise (several derivatives, a derivative
    in a loop or a called function: not followed). Once the check is gone, the value it
    had (which the derivative may no longer compute: its nodes keep the form they had
    then, an equal value)."""
    if root in _OBJECTIVES:
        return _OBJECTIVES[root]
    checks = []
    seeds = 0
    for g in reachable_graphs(root):
        for node in graph_nodes(g):
            p = prim_of(node)
            if p is not None and p.name == "check_scalar_output":
                checks.append(node)
            elif p is not None and p.name == "ones_like_output":
                seeds += 1
    if len(checks) != 1 or seeds != 1 or checks[0].graph is not root:
        return None
    return checks[0].inputs[1]


def remember_objective(root: Graph) -> None:
    """Called before the optimizer drops the check of the objective."""
    if root not in _OBJECTIVES:
        _OBJECTIVES[root] = objective_of(root)


def invariant_in(objective: Node, mx: Node, reduced: tuple[int, ...], keepdims: bool,
                 ndim: int, facts: LoopFacts | None) -> bool:
    """Whether `objective` does not change when `mx`, the max of an `ndim`-dimensional
    array over the axes `reduced` (kept as size 1 where `keepdims`), is shifted, and
    depends on mx at all (else there is nothing to cancel)."""
    free = [i for i in range(ndim) if i not in reduced]  # (none: one number)
    own = tuple(i - ndim for i in free) if keepdims else \
        tuple(range(-len(free), 0))
    if mx.graph is not objective.graph:
        return False
    walk = _Walk(mx, Shift(1.0, own), facts)
    return walk.effect(objective, 0) == NONE and walk.reached


class _Walk:
    def __init__(self, mx: Node, start: Effect, facts: LoopFacts | None):
        self.mx, self.start, self.facts = mx, start, facts
        self.memo: dict[int, Effect] = {}
        self.reached = False

    def effect(self, node: Node, depth: int) -> Effect:
        if node is self.mx:
            self.reached = True
            return self.start
        if not isinstance(node, Apply):
            return NONE  # (parameters and constants; graphs: `_opaque`)
        if node.id in self.memo:
            return self.memo[node.id]
        if depth > DEPTH_MAX:
            return UNKNOWN
        self.memo[node.id] = UNKNOWN  # (cycles do not occur; a guard all the same)
        result = self._effect(node, depth)
        self.memo[node.id] = result
        return result

    def _effect(self, node: Apply, depth: int) -> Effect:
        p = prim_of(node)
        args = node.inputs[1:]
        if p is None or any(isinstance(a, Constant) and isinstance(a.value, Graph)
                            for a in node.inputs):
            return self._opaque(node, depth)
        effects = [self.effect(a, depth + 1) for a in args]
        if all(e == NONE for e in effects):
            return NONE
        if UNKNOWN in effects:
            return UNKNOWN
        rule = _RULES.get(p.name)
        if rule is None and p.reduction is not None:
            rule = _reduction
        return rule(self, node, effects) if rule is not None else UNKNOWN

    def _opaque(self, node: Apply, depth: int) -> Effect:
        """A call or a loop: NONE if nothing it uses depends on mx."""
        for a in node.inputs:
            if isinstance(a, Constant) and isinstance(a.value, Graph):
                if any(self.effect(fv, depth + 1) != NONE for fv in free_variables(a.value)):
                    return UNKNOWN
            elif self.effect(a, depth + 1) != NONE:
                return UNKNOWN
        return NONE

    def ndim(self, node: Node) -> int | None:
        k = kind(node, self.facts)
        if k in (FLOAT, INT, SCALAR):
            return 0
        s = shape_of(k)
        return len(s) if s is not None and dtype_of(k) in ("f8", "i8") else None


def _number(node: Node) -> float | None:
    if isinstance(node, Constant) and type(node.value) in (float, int):
        return float(node.value)
    return None


def _same_layout(a: Effect, b: Effect) -> bool:
    return isinstance(a, (Shift, Scale)) and isinstance(b, (Shift, Scale)) and \
        type(a) is type(b) and a.axes == b.axes


def _made(cls: type[Shift] | type[Scale], c: float, axes: tuple[int, ...]) -> Effect:
    return NONE if c == 0.0 else cls(c, axes)


def _add(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    a, b = effects
    sign = -1.0 if _applies(node, "sub") else 1.0
    if b == NONE:
        return a if isinstance(a, Shift) else UNKNOWN
    if not isinstance(b, Shift):
        return UNKNOWN
    if a == NONE:
        return Shift(sign * b.c, b.axes)
    if isinstance(a, Shift) and _same_layout(a, b):
        return _made(Shift, a.c + sign * b.c, a.axes)
    return UNKNOWN


def _neg(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    e = effects[0]
    return Shift(-e.c, e.axes) if isinstance(e, Shift) else e


def _mul(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    """A Scale times anything that does not depend on mx; a Shift times a constant
    number; two Scales of one layout."""
    a, b = effects
    args = node.inputs[1:]
    for e, other, o in ((a, b, args[1]), (b, a, args[0])):
        if other != NONE:
            continue
        if isinstance(e, Scale):
            return e
        k = _number(o)
        return _made(Shift, e.c * k, e.axes) if isinstance(e, Shift) and k is not None \
            else UNKNOWN
    if isinstance(a, Scale) and isinstance(b, Scale) and _same_layout(a, b):
        return _made(Scale, a.c + b.c, a.axes)
    return UNKNOWN


def _truediv(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    """A Scale divided by anything that does not depend on mx, or divided into it; a
    Shift by a constant number; two Scales of one layout."""
    a, b = effects
    if b == NONE:
        if isinstance(a, Scale):
            return a
        k = _number(node.inputs[2])
        return Shift(a.c / k, a.axes) if isinstance(a, Shift) and k else UNKNOWN
    if not isinstance(b, Scale):
        return UNKNOWN
    if a == NONE:
        return Scale(-b.c, b.axes)
    if isinstance(a, Scale) and _same_layout(a, b):
        return _made(Scale, a.c - b.c, a.axes)
    return UNKNOWN


def _exp(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    e = effects[0]
    return Scale(e.c, e.axes) if isinstance(e, Shift) else UNKNOWN


def _log(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    e = effects[0]
    return Shift(e.c, e.axes) if isinstance(e, Scale) else UNKNOWN


def _moved(walk: _Walk, x: Node, e: Effect, new_axes: dict[int, int] | None,
           new_ndim: int) -> Effect:
    """e with its axes moved where `new_axes` (old axis → new axis, both counted from
    the start) puts them, in a value of `new_ndim` axes."""
    n = walk.ndim(x)
    if n is None or new_axes is None or not isinstance(e, (Shift, Scale)):
        return UNKNOWN
    moved = []
    for a in e.axes:
        if a + n not in new_axes:
            return UNKNOWN
        moved.append(new_axes[a + n] - new_ndim)
    return type(e)(e.c, tuple(moved))


def _reduction(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    """A sum keeps a Scale over the axes δ is constant along; a mean, a max or a min
    keeps a Shift likewise, and a sum multiplies it by the count."""
    x, axis, keep = node.inputs[1], node.inputs[2], node.inputs[-1]
    e = effects[0]
    n = walk.ndim(x)
    p = prim_of(node)
    assert p is not None  # (this walk's table maps reductions here)
    reduction = p.reduction
    if n is None or not isinstance(axis, Constant) or not isinstance(keep, Constant) or \
            type(keep.value) is not bool or any(x != NONE for x in effects[1:]):
        return UNKNOWN
    # (Not NONE: the other arguments are, and not all are; not UNKNOWN: `_effect`.)
    assert isinstance(e, (Shift, Scale))
    axes = tuple(range(n)) if axis.value is None else normalized_axes(axis.value, n)
    if axes is None or any(a + n in axes for a in e.axes):
        return UNKNOWN
    if isinstance(e, Scale) and reduction != "sum":
        return UNKNOWN
    if isinstance(e, Shift):
        if reduction == "sum":
            s = shape_of(kind(x, walk.facts))
            if s is None:
                return UNKNOWN
            count = 1
            for a in axes:
                count *= s[a]
            e = Shift(e.c * count, e.axes)
        elif reduction not in ("mean", "max", "min"):
            return UNKNOWN
    if keep.value:
        return e
    kept = [i for i in range(n) if i not in axes]
    return _moved(walk, x, e, {old: new for new, old in enumerate(kept)}, len(kept))


def _getitem(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    """`x[:, None]` (whole slices and new axes) moves the axes; a gather
    `x[np.arange(n), labels]` (integer arrays of shape (n,), `np.arange(n)` along the
    one axis δ is laid out on, of length n) takes each row's δ to the row's element."""
    x, index = node.inputs[1:]
    e = effects[0]
    n = walk.ndim(x)
    if n is None or not isinstance(e, (Shift, Scale)) or effects[1] != NONE:
        return UNKNOWN
    if not e.axes:
        return e  # (one number added to every element, or multiplied into each)
    if isinstance(index, Constant):
        parts = index.value if type(index.value) is tuple else (index.value,)
        if not all(p is None or p == slice(None) for p in parts):
            return UNKNOWN
        new_axes, out, old = {}, 0, 0
        for p in parts:
            if p is not None:
                new_axes[old] = out
                old += 1
            out += 1
        if old > n:
            return UNKNOWN
        for rest in range(old, n):
            new_axes[rest] = out
            out += 1
        return _moved(walk, x, e, new_axes, out)
    if not _applies(index, "make_tuple"):
        return UNKNOWN
    assert isinstance(index, Apply)
    items = list(index.inputs[1:])
    shape = shape_of(kind(x, walk.facts))
    if len(e.axes) != 1 or shape is None or len(items) > n:
        return UNKNOWN
    along = e.axes[0] + n
    rows = shape[along] if along < len(items) else None
    for i, p in enumerate(items):
        k = kind(p, walk.facts)
        if dtype_of(k) != "i8" or shape_of(k) != (rows,):
            return UNKNOWN
        if i == along and not _arange_of(p, rows):
            return UNKNOWN
    # The result: the gathered rows, then x's axes after the indexed ones.
    return type(e)(e.c, (-1 - (n - len(items)),))


def _applies(node: Node, name: str) -> bool:
    p = prim_of(node)
    return p is not None and p.name == name


def _arange_of(node: Node, n: int | None) -> bool:
    """Whether node is `np.arange(n)`."""
    if not _applies(node, "np.arange") or not isinstance(node, Apply):
        return False
    ends = node.inputs[1]
    if isinstance(ends, Constant):
        return bool(ends.value == (n,))
    return _applies(ends, "make_tuple") and isinstance(ends, Apply) and \
        len(ends.inputs) == 2 and _number(ends.inputs[1]) == n


def _expand_dims(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    x, axis = node.inputs[1:]
    n = walk.ndim(x)
    if n is None or not isinstance(axis, Constant) or effects[1] != NONE:
        return UNKNOWN
    added = normalized_axes(axis.value, n + (len(axis.value) if type(axis.value) is tuple
                                             else 1))
    if added is None:
        return UNKNOWN
    kept = [i for i in range(n + len(added)) if i not in added]
    return _moved(walk, x, effects[0], dict(enumerate(kept)), n + len(added))


def _passes(walk: _Walk, node: Apply, effects: list[Effect]) -> Effect:
    return effects[0] if all(e == NONE for e in effects[1:]) else UNKNOWN


_RULES = {
    "add": _add, "sub": _add, "neg": _neg, "mul": _mul, "truediv": _truediv,
    "np.exp": _exp, "np.log": _log, "getitem": _getitem, "np.expand_dims": _expand_dims,
    "check_scalar_output": _passes,
}
