"""Primitives that derivative code uses: sensitivity arithmetic and the linear adjoints of
structural operations (see `tapeless.runtime`)."""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

from .. import runtime as rt
from .registry import BY_CALLABLE, Primitive, register


def _helper(name: str, spec: str, differentiable: bool = True, effect: bool = False,
            **properties: Any) -> Primitive:
    fn = getattr(rt, name)
    return register(Primitive(name, fn, spec,
                              differentiable=differentiable, effect=effect, **properties),
                    fn)


# Sensitivity plumbing whose result is the symbolic zero exactly when its first input
# is, which takes a zero sensitivity as it is, and computes from its inputs alone.
_PLUMBING: dict[str, Any] = dict(zero_preserving=True, accepts_zero=True, pure=True)


_helper("gadd", "a, b", elementwise=True, accepts_zero=True, pure=True)
_helper("sens_of", "d, like", **_PLUMBING)
_helper("unbroadcast", "d, x", **_PLUMBING, shaped_like=1)
_helper("broadcast_like", "d, x", **_PLUMBING, shaped_like=1)
_helper("reshape_like", "d, x", **_PLUMBING, shaped_like=1, reshapes=True)
_helper("expand_reduced", "d, x, axis, keepdims", **_PLUMBING, shaped_like=1)
_helper("reduced_count", "x, axis", differentiable=False, pure=True)
_helper("reduced_axes", "x, axis", differentiable=False, pure=True)
_helper("tuple_sens", "d, i, like", **_PLUMBING)
_helper("getitem_sens", "d, x, index", **_PLUMBING, fresh=True, sparse_result=True)
# A gradient the caller receives, built as an array if it is sparse (tapeless.sparse_sens):
# only the optimizer makes it (`opt.results.settle_owns`).
_helper("dense_sens", "d", after_ad=True, differentiable=False, fresh=True)
# The optimizer makes it (from gadd of getitem_sens), after differentiation; batching
# rules make it too (`getitem_sens` over a batch), in code that may be differentiated
# again: its reverse rule reads each piece's sensitivity back (`rules_core`).
_helper("scatter_sens", "x, indices, ds", fresh=True, sparse_result=True)
# The optimizer's in-place form of `gadd(acc, scatter_sens(...))` for loop accumulators.
_helper("scatter_add", "acc, x, indices, ds", after_ad=True, differentiable=False, fresh=True,
        sparse_result=True)
# `gadd(scatter_sens(...), acc)` leaving acc as it is (made by the optimizer, last).
# (not fresh: with no piece to add, it gives acc back)
_helper("scatter_onto", "acc, x, indices, ds", after_ad=True, differentiable=False,
        sparse_result=True)
# ... where kinds prove x a float64 array and the indices ints (`opt.scatter`).
_helper("scatter_onto_known", "acc, x, indices, ds", after_ad=True, differentiable=False,
        sparse_result=True)
# ... where kinds prove what it tests (`tapeless.opt.driver.scatter_known`).
_helper("scatter_add_known", "acc, x, indices, ds", after_ad=True, differentiable=False,
        fresh=True)
# ... with two pieces given as they are, not as tuples (`opt.scatter.scatter_pairs`).
_helper("scatter_add_pair_known", "acc, x, i, j, di, dj", after_ad=True, differentiable=False,
        fresh=True)
# `getitem_sens` of a small float64 array's element (`opt.scatter.OwnedSlots`).
_helper("element_sens_small", "d, x, index", after_ad=True, differentiable=False,
        fresh=True)
# `gadd(a, b)` into `a`, in place, both proven owned (`opt.scatter.OwnedSlots`).
_helper("gadd_owned", "a, b", after_ad=True, differentiable=False, fresh=True)
# `acc[index] += d` in place, a statement (`accumulate_in_place`, Python backend only).
_helper("add_into_known", "acc, index, d", after_ad=True, differentiable=False,
        statement=True)
# `a OP= b` in place, a statement whose value is `a`, where `a` is a new array that
# nothing else reads and that has the result's dtype and shape (by the operator's name;
# `tapeless.opt.updates.arithmetic_in_place`, Python backend only).
IN_PLACE_OF: dict[str, str] = {"add": "add_in_place", "sub": "sub_in_place",
                               "mul": "mul_in_place", "truediv": "truediv_in_place"}
for _op, _fn in (("add", operator.iadd), ("sub", operator.isub), ("mul", operator.imul),
                 ("truediv", operator.itruediv)):
    register(Primitive(IN_PLACE_OF[_op], _fn, "a, b", differentiable=False,
                       statement=True, after_ad=True))
# A matrix product contracting a long axis, in blocks (made by the optimizer, last).
_helper("matmul_tn", "a, b, block", after_ad=True, differentiable=False, fresh=True)
# `d * (the max's tie-sharing mask)` in one comparison (made by the optimizer).
_helper("max_sens", "d, a, b", after_ad=True, differentiable=False, fresh=True, pure=True)
# `np.where(condition, x, 0.0)` as a product (made by the optimizer).
_helper("where_zero", "condition, x", after_ad=True, differentiable=False, fresh=True,
        pure=True)
# Division and power with IEEE results where Python's floats raise (reverse rules use them).
_helper("fdiv", "a, b", elementwise=True, number_op=True, never_zero=True, fresh=True,
        pure=True)
_helper("fpow", "a, b", elementwise=True, number_op=True, never_zero=True, fresh=True,
        pure=True)
_helper("getattr_sens", "d, x, name", accepts_zero=True, pure=True)
_helper("sens_getattr", "dd, x, name", accepts_zero=True)
_helper("field_sens", "d, cls, n", accepts_zero=True)
_helper("struct_sens", "ds, cls", accepts_zero=True)
_helper("construct_value", "cls, fields")
_helper("repeat_sens", "d, seq")
_helper("zeros_like_value", "x", differentiable=False)
_helper("ones_like_value", "x", differentiable=False)
# A check kept for the error it may raise, even where the derivative ignores the output.
_helper("check_scalar_output", "out", effect=True, accepts_zero=True)
_helper("check_aux_output", "out", accepts_zero=True)
_helper("ones_like_output", "out", differentiable=False, never_zero=True)
_helper("to_structure", "sens, like", accepts_zero=True, pure=True)
# Only the optimizer makes it: a dataclass's gradient from its fields' (see passes.py).
_helper("replace_fields", "like, names, values")
_helper("without_fields", "d, like, names", accepts_zero=True)
# `dataclasses.fields(obj)` (its fields' names read with getattr).
BY_CALLABLE[id(dataclasses.fields)] = _helper("fields_of", "obj", differentiable=False)
# `{**a, "k": v}`: a tuple of dicts merged.
_helper("dict_merge", "parts", passes_on=True, accepts_zero=True)
_helper("dict_merge_sens", "d, parts, i", accepts_zero=True)
# Trees (`tapeless.tree`): their leaves, a tree of a structure from leaves, and the
# sensitivities between the two forms.
_helper("tree_leaves", "tree")
_helper("same_structure", "a, b", differentiable=False, pure=True)
_helper("tree_unflatten", "like, leaves")
_helper("tree_leaves_sens", "like, d", accepts_zero=True)
_helper("tree_unflatten_sens", "like, ds", accepts_zero=True)
# Only the optimizer makes it: a gradient array copied for the caller (see passes.py).
_helper("own", "x", after_ad=True, differentiable=False)
_helper("from_structure", "value", accepts_zero=True)
_helper("polygamma", "n, x")
_helper("sens_index", "dd, index", accepts_zero=True)
_helper("einsum_specs", "subscripts, operands", differentiable=False)
_helper("einsum_sublist_spec", "first, rest", differentiable=False)
_helper("einsum_matmul_plan", "subscripts, a, b", differentiable=False)
_helper("tensordot_subscripts", "a_ndim, b_ndim, axes", differentiable=False)
_helper("split_indices", "arrays, axis", differentiable=False, pure=True)
_helper("concat_sens", "d, arrays, axis", zero_preserving=True, fresh=True)
_helper("take_sens", "d, a, indices, axis", **_PLUMBING)
_helper("diag_sens", "d, v, k", **_PLUMBING)
_helper("take_along_axis_sens", "d, arr, indices, axis", **_PLUMBING)
# A call of a value in derivative code of a given order, and a value passed into
# derivative code from the code around it (see `tapeless.runtime.call_value`, `lift`).
_helper("call_value", "level, fn, args", effect=True, accepts_zero=True, passes_on=True)
_helper("lift", "value", accepts_zero=True)
# Forward mode (`tapeless.ad.forward`): a call of a value known only at run time, and a
# tangent with its symbolic zeros made concrete.
_helper("call_fwd", "fn, t_fn, args, tangents", effect=True, accepts_zero=True, passes_on=True)
_helper("dense", "d, like", accepts_zero=True, pure=True)
_helper("call_value_fwd", "level, fn, t_fn, args, tangents", effect=True, accepts_zero=True,
        passes_on=True)
_helper("lift_fwd", "value", accepts_zero=True)
# (The identity on data, refusing a function: differentiable, so the data's derivative
# flows through it.)
_helper("data_only", "value", accepts_zero=True)
_helper("generated_only", "fn", differentiable=False)
_helper("data_only_grad", "value", differentiable=False)
_helper("split_fwd", "args, npos, defaults, star", accepts_zero=True, pure=True)
# `tl.grad(f)` / `tl.value_and_grad(f)` inside compiled code of a function value.
_helper("transform_of", "kind, fn, argnums, has_aux", differentiable=False, pure=True)
# `x.name` for a call of a user's method named like a built-in type's (`opt.update`):
# getattr, refusing a built-in receiver at run time; getattr's rules.
_helper("user_method", "x, name", accepts_zero=True, pure=True, selects=True, alias="getattr")
# A read of a variable that is unbound on some path: the value, or UnboundLocalError.
_helper("check_bound", "value, name, where", accepts_zero=True, pure=True)
# `zip(..., strict=True)`: the sequences once their lengths agree; a `for` loop's length.
_helper("zip_strict", "seqs", accepts_zero=True, pure=True)
_helper("zip_strict_length", "lengths", differentiable=False, pure=True)
# `a, b = value`: the value once its length is right (CPython's ValueError otherwise).
_helper("unpack", "value, n", accepts_zero=True, pure=True)
# A gradient's forward and backward loops, checkpointed (`tapeless.opt.checkpoint`): only
# the optimizer makes them, last.
_helper("checkpoint_for", "start, stop, step, body, slot, budget, init", after_ad=True,
        differentiable=False,
        effect=True)
_helper("checkpoint_while", "cond, body, slot, init", after_ad=True, differentiable=False,
        effect=True)
_helper("checkpoint_while_loop", "cond, body, slot, budget, init", after_ad=True,
        differentiable=False, effect=True)
# A lifted recursion's calls, checkpointed (`opt.checkpoint.checkpoint_recursion`): only
# the optimizer makes them, last.
_helper("recursion_enter", "fn, budget, args, value=None, stream=None", after_ad=True,
        differentiable=False)
_helper("recursion_call", "fn, args, value=None, stream=None", after_ad=True,
        differentiable=False)
_helper("recursion_back", "fn, record, d, acc=None", after_ad=True, differentiable=False)
# `tl.stop_gradient(x)`: x, whose derivative is zero (its rules say so).
_helper("stop_gradient", "x", pure=True, accepts_zero=True)
# `tl.checkpoint_name(x, name)`: x, marked for a checkpoint policy that saves it by name.
_helper("checkpoint_name", "x, name", pure=True, accepts_zero=True)
# The index's sensitivity in `x[index]`: ZERO, or an error where x is not a container.
_helper("index_sens", "d, x, index", differentiable=False)
_helper("index_concat_sens", "d, axis, items")
_helper("index_concat_dense", "ds, axis, items")


# `np.r_[a, b, ...]` (axis 0) and `np.c_[a, b, ...]` (axis -1), as the front end compiles
# them: index_concat(axis, (a, b, ...)).
register(Primitive("index_concat", rt.index_concat, "axis, items",
                   fresh=True), rt.index_concat)

# A loop's stack of saved values as a Python list, when the optimizer proves the forward
# loop's pushes are popped exactly once by a backward loop in the same graph
# (`tapeless.opt.loops.lower_stacks`); otherwise the stack is immutable cons cells.
register(Primitive("stack_new", lambda: [], "", differentiable=False, after_ad=True))
register(Primitive("stack_push", lambda s, x: s.append(x), "stack, x", effect=True, statement=True,
                   differentiable=False, after_ad=True))
register(Primitive("stack_pop", lambda s: s.pop(), "stack",
                   effect=True, differentiable=False, after_ad=True))
register(Primitive("stack_nonempty", bool, "stack", differentiable=False, after_ad=True))
