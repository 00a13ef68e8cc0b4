"""Forward rules of in-place updates, and the declaration of the primitives whose forward
rule is their reverse rule transposed (see `tapeless.ad.forward`: `jvp_by_transposition`)
where none is written out: a primitive registered without a forward rule gets one that
is exact at every order, if slower, rather than none."""

# ruff: noqa: E731
from __future__ import annotations

from ..runtime import immutable_item
from . import (  # noqa: F401 (first: their primitives and rules)
    jvp_arrays,
    jvp_random,
    jvp_rules,
    keyword_ops,
    random_ops,
    rules_linalg,
    rules_random,
    update_ops,
)
from .registry import PRIMITIVES, jvp, jvp_from_reverse, linear

# --- in-place updates (functionalized): linear in what they write ------------------------

linear((0, 2), "index_update", "index_add")
linear((0, 1), "list_append", "list_extend")
linear((0,), "update_rest_sens", "update_value_sens", "update_value_scatter",
       "dict_without")
linear((0, 2), "kwarg_or")

# --- what only the optimizer makes (`Primitive.after_ad`), for forward mode over an
# optimized gradient (`tapeless.fwd_api`): each is linear in its sensitivities. (Those
# that write in place, and the loops and stacks of the final steps, have no rule: forward
# mode refuses them, and the jvp is taken of the gradient as differentiated.)
linear((0,), "own", "dense_sens", "max_sens")
linear((1,), "where_zero")
linear((2,), "scatter_sens")


@jvp("immutable_item")
def _immutable_item(container, item):
    return immutable_item(container, item), None, lambda t: t


# --- by transposition: J t = grad_c <back(c), t> -------------------------------------------
# A primitive may declare `jvp_by_transposition` instead of writing its forward rule: the
# transform then runs its reverse rule's backpropagator in reverse (it is linear in the
# cotangent), exact at every order, for about three evaluations of the rule. Every
# primitive has its rule written out today; `tests/test_forward.py` checks the mechanism.

# The one-argument elementwise functions registered since `jvp_rules` declared theirs.
jvp_from_reverse(*[name for name, p in PRIMITIVES.items()
                   if p.differentiable and p.reverse_rule is not None and
                   len(p.param_names) == 1 and p.elementwise and p.jvp_rule is None and
                   not p.jvp_from_reverse and not p.linear])
