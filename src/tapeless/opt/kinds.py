"""A small inference of what kind of value a node holds: enough to fold the type tests
derivative rules make (`isinstance(a, (tuple, list))`) and to drop the broadcasting
bookkeeping between Python scalars. Parameters of a compiled function get a kind from
the arguments it is specialized for; loop state gets one by induction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir.nodes import Apply, Constant, Node, Parameter
from ..primitives import Primitive

if TYPE_CHECKING:
    from .loops import LoopFacts

FLOAT = "float"      # a Python float
INT = "int"          # a Python int
NUMERIC = "numeric"  # a number or an array: never a tuple, list, dict or function
_SCALAR_OPS = {"add", "sub", "mul", "truediv", "pow", "neg", "pos", "abs", "mod"}
_SAME_AS_FIRST = {"unbroadcast", "sens_of", "check_scalar_output", "gadd"}
_NOT_NUMERIC = {"np.split", "np.shape", "np.linalg.slogdet"}
_MATH_INT = {"math.floor", "math.ceil", "math.trunc", "math.factorial"}


def array(ndim: int) -> str:
    """The kind of a NumPy array with `ndim` axes."""
    return f"array{ndim}"


def ndim_of(k: str | None) -> int | None:
    if k is not None and k.startswith("array"):
        return int(k[5:])
    return None


def value_kind(value: object) -> str | None:
    """The kind of a run-time value (for specializing on arguments)."""
    if type(value) is float:
        return FLOAT
    if type(value) is int:
        return INT
    if type(value).__name__ == "ndarray" and type(value).__module__ == "numpy":
        return array(value.ndim)  # type: ignore[attr-defined]
    return None


_ELEMENTWISE = {"add", "sub", "mul", "truediv", "pow", "mod", "floordiv", "gadd",
                "np.add", "np.subtract", "np.multiply", "np.divide", "np.power",
                "np.maximum", "np.minimum", "np.logaddexp", "np.arctan2", "np.where",
                "np.hypot"}
_SAME_SHAPE = {"neg", "pos", "abs", "np.swapaxes", "np.transpose", "np.flip", "np.copy",
               "np.tril", "np.triu", "np.cumsum", "np.clip", "np.sign", "np.square"}


def _array_kind(name: str, node: Apply, args: list[str | None]) -> str | None:
    """Kinds of array operations whose rank follows from their inputs' ranks."""
    ranks = [ndim_of(a) if ndim_of(a) is not None else (0 if a in (FLOAT, INT) else None)
             for a in args]
    if not any(ndim_of(a) is not None for a in args):
        return None
    if name in _ELEMENTWISE or name in _SAME_SHAPE:
        if all(r is not None for r in ranks):
            return array(max(r for r in ranks if r is not None))
        return None
    if name in ("matmul", "np.matmul") and None not in ranks[:2]:
        a, b = ranks[0], ranks[1]
        assert a is not None and b is not None
        if a == 1 and b == 1:
            return NUMERIC
        if a == 1 or b == 1:
            return array(max(a, b) - 1)
        return array(max(a, b))
    if name in ("expand_reduced", "broadcast_like"):
        return args[1] if ndim_of(args[1]) is not None else None
    if name == "unbroadcast":
        return args[1] if ndim_of(args[1]) is not None else None
    if name.startswith("np.") and name[3:] in _UNARY_NUMPY and ranks[0] is not None:
        return array(ranks[0])
    return None


_UNARY_NUMPY = set("exp log log1p expm1 sqrt sin cos tan tanh sinh cosh arcsin arccos arctan "
                   "arcsinh arccosh arctanh abs square negative positive reciprocal exp2 log2 "
                   "log10 cbrt deg2rad rad2deg sign floor ceil".split())


def kind(node: Node, facts: LoopFacts | None = None, depth: int = 0,
         assumed: set | None = None) -> str | None:
    """FLOAT/INT/NUMERIC when known, else None."""
    if isinstance(node, Constant):
        v = node.value
        if type(v) is float:
            return FLOAT
        if type(v) is int:
            return INT
        if isinstance(v, (int, float, complex)) or type(v).__module__ == "numpy":
            return NUMERIC
        return None
    if node.kind is not None:
        return node.kind
    if depth > 40:
        return None
    if isinstance(node, Parameter):
        if facts is None:
            return None
        assumed = set() if assumed is None else assumed
        for candidate in (FLOAT, INT, NUMERIC):
            if facts.inductive(node, lambda n, a, c=candidate: _at_most(
                    kind(n, facts, depth + 1, a), c), assumed):
                return candidate
        return None
    if not isinstance(node, Apply):
        return None
    callee = node.inputs[0]
    if not (isinstance(callee, Constant) and isinstance(callee.value, Primitive)):
        return None
    name = callee.value.name
    if name.startswith("math."):
        return INT if name in _MATH_INT else FLOAT
    if name == "tuple_getitem" and facts is not None:
        found = facts.result_of(node)
        if found is not None:
            info, j = found
            return kind(info.params(j)[0], facts, depth + 1, assumed)
    args = [kind(a, facts, depth + 1, assumed) for a in node.inputs[1:]
            if not (isinstance(a, Constant) and a.value is None)]
    found = _array_kind(name, node, args)
    if found is not None:
        return found
    if name.startswith("np.") and name not in _NOT_NUMERIC:
        return NUMERIC
    if name == "sens_of":
        return args[0] if args[0] is not None else args[1] if len(args) > 1 else None
    if name in _SAME_AS_FIRST:
        return args[0] if args else None
    if name == "ones_like_output":
        return args[0] if args and args[0] == FLOAT else (NUMERIC if args[0] else None)
    if name in _SCALAR_OPS or name == "floordiv":
        if all(a in (FLOAT, INT) for a in args):
            if all(a == INT for a in args):
                return FLOAT if name in ("truediv",) else (INT if name != "pow" else None)
            return FLOAT
        if all(a is not None for a in args):
            return NUMERIC
    if name in ("matmul", "float") and all(a is not None for a in args):
        return FLOAT if name == "float" else NUMERIC
    return None


def _at_most(found: str | None, expected: str) -> bool:
    if found is None:
        return False
    if expected == NUMERIC:
        return True
    return found == expected
