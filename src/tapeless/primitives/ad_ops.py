"""Primitives that derivative code uses: sensitivity arithmetic and the linear adjoints of
structural operations (see `tapeless.runtime`)."""

from __future__ import annotations

from .. import runtime as rt
from .registry import Primitive, call_emitter, register


def _helper(name: str, spec: str, differentiable: bool = True,
            effect: bool = False) -> Primitive:
    fn = getattr(rt, name)
    return register(Primitive(name, fn, spec, call_emitter(f"_rt.{name}", 99, spec),
                              differentiable=differentiable, effect=effect), fn)


_helper("gadd", "a, b")
_helper("sens_of", "d, like")
_helper("unbroadcast", "d, x")
_helper("broadcast_like", "d, x")
_helper("reshape_like", "d, x")
_helper("expand_reduced", "d, x, axis, keepdims")
_helper("reduced_count", "x, axis", differentiable=False)
_helper("reduced_axes", "x, axis", differentiable=False)
_helper("tuple_sens", "d, i, like")
_helper("getitem_sens", "d, x, index")
# Only the optimizer makes it (from gadd of getitem_sens), after differentiation.
_helper("scatter_sens", "x, indices, ds", differentiable=False)
# The optimizer's in-place form of `gadd(acc, scatter_sens(...))` for loop accumulators.
_helper("scatter_add", "acc, x, indices, ds", differentiable=False)
# ... where kinds prove what it tests (`tapeless.opt.passes._scatter_known`).
_helper("scatter_add_known", "acc, x, indices, ds", differentiable=False)
# A matrix product contracting a long axis, in blocks (made by the optimizer, last).
_helper("matmul_tn", "a, b, block", differentiable=False)
# Division and power with IEEE results where Python's floats raise (reverse rules use them).
_helper("fdiv", "a, b")
_helper("fpow", "a, b")
_helper("getattr_sens", "d, x, name")
_helper("sens_getattr", "dd, x, name")
_helper("field_sens", "d, cls, n")
_helper("struct_sens", "ds, cls")
_helper("construct_value", "cls, fields")
_helper("repeat_sens", "d, seq")
_helper("zeros_like_value", "x", differentiable=False)
# A check kept for the error it may raise, even where the derivative ignores the output.
_helper("check_scalar_output", "out", effect=True)
_helper("check_aux_output", "out")
_helper("ones_like_output", "out", differentiable=False)
_helper("to_structure", "sens, like")
# Only the optimizer makes it: a dataclass's gradient from its fields' (see passes.py).
_helper("replace_fields", "like, names, values", differentiable=False)
# Only the optimizer makes it: a gradient array copied for the caller (see passes.py).
_helper("own", "x", differentiable=False)
_helper("from_structure", "value")
_helper("polygamma", "n, x")
_helper("sens_index", "dd, index")
_helper("einsum_specs", "subscripts, operands", differentiable=False)
_helper("einsum_sublist_spec", "first, rest", differentiable=False)
_helper("tensordot_subscripts", "a_ndim, b_ndim, axes", differentiable=False)
_helper("split_indices", "arrays, axis", differentiable=False)
_helper("concat_sens", "d, arrays, axis")
_helper("take_sens", "d, a, indices, axis")
# The index's sensitivity in `x[index]`: ZERO, or an error where x is not a container.
_helper("index_sens", "d, x, index", differentiable=False)
_helper("index_concat_sens", "d, axis, items")
_helper("index_concat_dense", "ds, axis, items")


def _emit_index_concat(a: list[str]) -> str:
    from .registry import _star

    inner = _star(a[1])  # `(x, c)` -> `x, c`; a tuple `t` -> `*t`, written `t`
    return f"{'np.r_' if a[0] == '0' else 'np.c_'}[{a[1] if inner[:1] == '*' else inner}]"


# `np.r_[a, b, ...]` (axis 0) and `np.c_[a, b, ...]` (axis -1), as the front end compiles
# them: index_concat(axis, (a, b, ...)).
register(Primitive("index_concat", rt.index_concat, "axis, items", _emit_index_concat),
         rt.index_concat)
_helper("diag_sens", "d, v, k")

# A loop's stack of saved values as a Python list, when the optimizer proves the forward
# loop's pushes are popped exactly once by a backward loop in the same graph
# (`tapeless.opt.loops.lower_stacks`); otherwise the stack is immutable cons cells.
register(Primitive("stack_new", lambda: [], "", lambda a: "[]", differentiable=False))
register(Primitive("stack_push", lambda s, x: s.append(x), "stack, x",
                   lambda a: f"{a[0]}.append({a[1]})", effect=True, statement=True,
                   differentiable=False))
register(Primitive("stack_pop", lambda s: s.pop(), "stack", lambda a: f"{a[0]}.pop()",
                   effect=True, differentiable=False))
register(Primitive("stack_nonempty", bool, "stack", lambda a: a[0], differentiable=False))
