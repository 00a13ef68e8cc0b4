"""A small inference of what kind of value a node holds: enough to fold the type tests
derivative rules make (`isinstance(a, (tuple, list))`, `np.ndim(a) == 1`) and the
broadcasting bookkeeping where shapes are known. Parameters of a compiled function get a
kind from the arguments it is specialized for (Python float or int, NumPy array of a
given dtype and shape); loop state gets one by induction.

Kinds are strings: "float", "int", "scalar" (a NumPy scalar), "numeric" (some number or
array), and "array<dtype>[d0,d1,...]" for arrays ("f8" or "?" for the dtype)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..ir.nodes import Apply, Constant, Node, Parameter
from ..primitives import Primitive

if TYPE_CHECKING:
    from .loops import LoopFacts

FLOAT = "float"      # a Python float
INT = "int"          # a Python int
SCALAR = "scalar"    # a NumPy scalar (what a full reduction returns)
NUMERIC = "numeric"  # a number or an array: never a tuple, list, dict or function
_SCALAR_OPS = {"add", "sub", "mul", "truediv", "pow", "neg", "pos", "abs", "mod"}
_NOT_NUMERIC = {"np.split", "np.shape", "np.linalg.slogdet"}
_MATH_INT = {"math.floor", "math.ceil", "math.trunc", "math.factorial"}
_ELEMENTWISE = {"add", "sub", "mul", "truediv", "pow", "mod", "gadd", "np.add",
                "np.subtract", "np.multiply", "np.divide", "np.power", "np.maximum",
                "np.minimum", "np.logaddexp", "np.arctan2", "np.hypot", "np.fmax", "np.fmin"}
_UNARY = {"neg", "pos", "abs"} | {f"np.{n}" for n in (
    "exp log log1p expm1 sqrt sin cos tan tanh sinh cosh arcsin arccos arctan arcsinh "
    "arccosh arctanh abs square negative positive reciprocal exp2 log2 log10 cbrt deg2rad "
    "rad2deg sign copy").split()}
_REDUCTIONS = {"np.sum", "np.mean", "np.max", "np.min", "np.amax", "np.amin", "np.prod",
               "method.sum", "method.mean", "method.max", "method.min", "method.prod"}


def array(dtype: str, shape: tuple[int, ...]) -> str:
    return f"array{dtype}[{','.join(str(n) for n in shape)}]"


def shape_of(k: str | None) -> tuple[int, ...] | None:
    if k is None or not k.startswith("array"):
        return None
    inner = k[k.index("[") + 1:-1]
    return tuple(int(n) for n in inner.split(",")) if inner else ()


def dtype_of(k: str | None) -> str | None:
    if k is None or not k.startswith("array"):
        return None
    return k[5:k.index("[")]


def ndim_of(k: str | None) -> int | None:
    shape = shape_of(k)
    return None if shape is None else len(shape)


def value_kind(value: object) -> str | None:
    """The kind of a run-time value (for specializing on arguments)."""
    if type(value) is float:
        return FLOAT
    if type(value) is int:
        return INT
    if type(value).__name__ == "ndarray" and type(value).__module__ == "numpy":
        dtype = "f8" if value.dtype.str in ("<f8", "=f8") else "?"  # type: ignore[attr-defined]
        return array(dtype, value.shape)  # type: ignore[attr-defined]
    return None


def _scalar_shape(k: str | None) -> tuple[int, ...] | None:
    """Shapes for broadcasting: scalars are ()."""
    if k in (FLOAT, INT, SCALAR):
        return ()
    return shape_of(k)


def _dtype(kinds: list[str | None]) -> str:
    for k in kinds:
        if k is not None and k.startswith("array") and dtype_of(k) != "f8":
            return "?"
        if k not in (FLOAT, INT, SCALAR) and not (k or "").startswith("array"):
            return "?"
    return "f8"


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        sizes = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        sizes.discard(1)
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _const(node: Node) -> object:
    return node.value if isinstance(node, Constant) else _MISSING


_MISSING = object()


def _array_kind(name: str, node: Apply, args: list[str | None]) -> str | None:
    """Kinds of array operations whose shape follows from their inputs' shapes."""
    if not any((a or "").startswith("array") for a in args):
        return None
    shapes = [_scalar_shape(a) for a in args]
    if name in _ELEMENTWISE or name in _UNARY:
        if any(s is None for s in shapes):
            return None
        shape = _broadcast(shapes)  # type: ignore[arg-type]
        return array(_dtype(args), shape) if shape is not None else None
    first = shapes[0]
    if first is None:
        return None
    if name in ("matmul", "np.matmul") and shapes[1] is not None:
        a, b = first, shapes[1]
        assert b is not None
        if len(a) == 0 or len(b) == 0:
            return None
        if len(a) == 1 and len(b) == 1:
            return SCALAR
        if len(a) == 1:
            return array(_dtype(args[:2]), b[:-2] + b[-1:])
        if len(b) == 1:
            return array(_dtype(args[:2]), a[:-1])
        batch = _broadcast([a[:-2], b[:-2]])
        return array(_dtype(args[:2]), batch + (a[-2], b[-1])) if batch is not None else None
    if name in ("expand_reduced", "broadcast_like", "unbroadcast", "reshape_like"):
        other = args[1] if len(args) > 1 else None
        if other in (FLOAT, INT):
            return FLOAT if args[0] in (FLOAT, INT) else None
        return array(_dtype(args[:1]), shape_of(other)) if shape_of(other) is not None else None
    if name in ("np.swapaxes",):
        i, j = _const(node.inputs[2]), _const(node.inputs[3])
        if isinstance(i, int) and isinstance(j, int) and -len(first) <= min(i, j) and \
                max(i, j) < len(first):
            s = list(first)
            s[i], s[j] = s[j], s[i]
            return array(_dtype(args[:1]), tuple(s))
        return None
    if name == "np.transpose" and _const(node.inputs[2]) is None:
        return array(_dtype(args[:1]), tuple(reversed(first)))
    if name == "getattr" and _const(node.inputs[2]) == "T":
        return array(_dtype(args[:1]), tuple(reversed(first)))
    if name in _REDUCTIONS:
        axis, keepdims = _const(node.inputs[2]), _const(node.inputs[-1])
        if axis is None and keepdims is False:
            return SCALAR
        if keepdims is _MISSING or axis is _MISSING:
            return None
        axes = (axis,) if isinstance(axis, int) else tuple(axis) if axis is not None \
            else tuple(range(len(first)))
        axes = tuple(a % len(first) for a in axes)  # type: ignore[operator]
        shape = tuple(1 if i in axes else n for i, n in enumerate(first)) if keepdims else \
            tuple(n for i, n in enumerate(first) if i not in axes)
        return array(_dtype(args[:1]), shape)
    return None


def kind(node: Node, facts: LoopFacts | None = None, depth: int = 0,
         assumed: dict | None = None) -> str | None:
    """The kind of `node`'s value when known, else None."""
    if facts is None:
        return _kind(node, facts, depth, assumed)
    # Memoized per assumption set (loop state assumed to have a kind while checking the
    # loop body), so shared subexpressions are inferred once.
    key = (node.id, tuple(sorted(assumed.items())) if assumed else ())
    if key not in facts.kinds:
        facts.kinds[key] = _kind(node, facts, depth, assumed)  # type: ignore[index]
    return facts.kinds[key]  # type: ignore[index]


def _kind(node: Node, facts: LoopFacts | None, depth: int,
          assumed: dict | None) -> str | None:
    if isinstance(node, Constant):
        v = node.value
        if type(v) is float:
            return FLOAT
        if type(v) is int:
            return INT
        if isinstance(v, (int, float, complex)) or type(v).__module__ == "numpy":
            return value_kind(v) or NUMERIC
        return None
    if node.kind is not None:
        return node.kind
    if depth > 40:
        return None
    if isinstance(node, Parameter):
        # Loop state has the kind of its initial value if the body keeps it (assuming
        # the state has that kind while checking the body: induction).
        state = facts.state_of.get(node.id) if facts is not None else None
        if state is None:
            return None
        info, j = state
        outputs = info.outputs
        if outputs is None:
            return None
        assumed = {} if assumed is None else assumed
        key = (info.node.id, j)
        if key in assumed:
            return assumed[key]
        initial = kind(info.init[j], facts, depth + 1, assumed)
        if initial is None:
            return None
        assumed[key] = initial
        try:
            return initial if kind(outputs[j], facts, depth + 1, assumed) == initial else None
        finally:
            del assumed[key]
    if not isinstance(node, Apply):
        return None
    callee = node.inputs[0]
    if not (isinstance(callee, Constant) and isinstance(callee.value, Primitive)):
        return None
    name = callee.value.name
    if name.startswith("math."):
        return INT if name in _MATH_INT else FLOAT
    if name == "tuple_getitem":
        seq, index = node.inputs[1], node.inputs[2]
        if facts is not None:
            found_loop = facts.result_of(node)
            if found_loop is not None:
                info, j = found_loop
                return kind(info.params(j)[0], facts, depth + 1, assumed)
            if node.id in facts.popped:
                return kind(facts.popped[node.id], facts, depth + 1, assumed)
        if isinstance(index, Constant) and isinstance(index.value, int):
            item = _item(seq, index.value, facts)
            if item is not None:
                return _common([kind(i, facts, depth + 1, assumed) for i in item])
    if _is_switch_call(node):
        outs = [b.value.output for b in node.inputs[0].inputs[2:4]]  # type: ignore
        return _common([kind(o, facts, depth + 1, assumed) for o in outs])
    args = [kind(a, facts, depth + 1, assumed) for a in node.inputs[1:]]
    result = _array_kind(name, node, args)
    if result is not None:
        return result
    if name in ("sens_of", "check_scalar_output", "to_structure"):
        return args[0] if args[0] is not None else (args[1] if len(args) > 1 else None)
    if name == "gadd":
        return args[0] if args[0] == args[1] else None
    if name == "ones_like_output":
        return args[0] if args[0] in (FLOAT, SCALAR) else None
    if name == "unbroadcast" and args[1] in (FLOAT, INT) and args[0] in (FLOAT, INT):
        return FLOAT
    if name in _SCALAR_OPS or name == "floordiv":
        if all(a in (FLOAT, INT) for a in args):
            if all(a == INT for a in args):
                return FLOAT if name == "truediv" else (INT if name != "pow" else None)
            return FLOAT
        if all(a is not None for a in args):
            return NUMERIC
    if name == "float":
        return FLOAT
    if name.startswith("np.") and name not in _NOT_NUMERIC:
        return NUMERIC
    return None


def _is_switch_call(node: Node) -> bool:
    if not (isinstance(node, Apply) and len(node.inputs) == 1):
        return False
    sw = node.inputs[0]
    return isinstance(sw, Apply) and isinstance(sw.inputs[0], Constant) and \
        getattr(sw.inputs[0].value, "name", None) == "switch" and all(
            isinstance(b, Constant) and hasattr(b.value, "parameters") for b in sw.inputs[2:4])


def _item(seq: Node, i: int, facts: LoopFacts | None) -> list[Node] | None:
    """The nodes `seq[i]` may be: an element of a tuple display, or of each branch's."""
    if isinstance(seq, Apply) and isinstance(seq.inputs[0], Constant) and \
            getattr(seq.inputs[0].value, "name", None) == "make_tuple":
        return [seq.inputs[1 + i]] if 0 <= i < len(seq.inputs) - 1 else None
    if facts is not None and seq.id in facts.popped:
        return _item(facts.popped[seq.id], i, facts)
    if _is_switch_call(seq):
        items = []
        for b in seq.inputs[0].inputs[2:4]:  # type: ignore[union-attr]
            found = _item(b.value.output, i, facts)
            if found is None:
                return None
            items.extend(found)
        return items
    return None


def _common(kinds: list[str | None]) -> str | None:
    return kinds[0] if kinds and all(k == kinds[0] for k in kinds) else None


def same_array(a: str | None, b: str | None) -> bool:
    """Both the same float64 array kind (same shape), or both Python floats."""
    return a is not None and a == b and (a == FLOAT or dtype_of(a) == "f8")


_ = math
