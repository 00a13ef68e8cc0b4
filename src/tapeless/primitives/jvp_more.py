"""Forward rules of random draws, in-place updates, the loop primitives' general form, and
the declaration of the primitives whose forward rule is their reverse rule transposed
(see `tapeless.ad.forward`: `jvp_by_transposition`)."""

# ruff: noqa: E731
from __future__ import annotations

import numpy as np

from ..runtime import (
    ZERO,
    broadcast_like,
    dense,
    exponential_and_standard,
    immutable_item,
    index_concat,
    index_concat_dense,
    normal_and_standard,
    rng_choice,
    rng_permutation,
    standard_variates,
    uniform_and_unit,
)
from . import (  # noqa: F401 (first: their primitives and rules)
    jvp_rules,
    keyword_ops,
    random_ops,
    rules_linalg,
    rules_random,
    update_ops,
)
from .registry import PRIMITIVES, jvp, jvp_from_reverse, linear

# --- random draws: the sample is drawn once, as CPython draws it ------------------------
# A reparameterized draw's tangent is that of loc + scale * z (normal), low + (high - low)
# * u (uniform), scale * e (exponential), with the standard variates the draw was made
# from; a choice or permutation of an array takes the tangent's items at the indices
# drawn.


@jvp("rng_normal")
def _rng_normal(rng, loc, scale, size):
    drawn = normal_and_standard(rng, loc, scale, size)
    z = standard_variates(drawn, loc, scale)
    y = drawn[0]
    return y, None, lambda t: broadcast_like(t, y), lambda t: t * z, None


@jvp("np.random.normal")
def _np_normal(loc, scale, size):
    drawn = normal_and_standard(None, loc, scale, size)
    z = standard_variates(drawn, loc, scale)
    y = drawn[0]
    return y, lambda t: broadcast_like(t, y), lambda t: t * z, None


@jvp("normal_and_standard")
def _normal_and_standard(rng, loc, scale, size):
    drawn = normal_and_standard(rng, loc, scale, size)
    z = standard_variates(drawn, loc, scale)
    return drawn, None, lambda t: (broadcast_like(t, drawn[0]), ZERO), \
        lambda t: (t * z, ZERO), None


@jvp("rng_uniform")
def _rng_uniform(rng, low, high, size):
    drawn = uniform_and_unit(rng, low, high, size)
    u = standard_variates(drawn, low, high - low)
    return drawn[0], None, lambda t: t * (1.0 - u), lambda t: t * u, None


@jvp("np.random.uniform")
def _np_uniform(low, high, size):
    drawn = uniform_and_unit(None, low, high, size)
    u = standard_variates(drawn, low, high - low)
    return drawn[0], lambda t: t * (1.0 - u), lambda t: t * u, None


@jvp("uniform_and_unit")
def _uniform_and_unit(rng, low, high, size):
    drawn = uniform_and_unit(rng, low, high, size)
    u = standard_variates(drawn, low, high - low)
    return drawn, None, lambda t: (t * (1.0 - u), ZERO), lambda t: (t * u, ZERO), None


@jvp("rng_exponential")
def _rng_exponential(rng, scale, size):
    drawn = exponential_and_standard(rng, scale, size)
    e = standard_variates(drawn, 0.0, scale)
    return drawn[0], None, lambda t: t * e, None


@jvp("np.random.exponential")
def _np_exponential(scale, size):
    drawn = exponential_and_standard(None, scale, size)
    e = standard_variates(drawn, 0.0, scale)
    return drawn[0], lambda t: t * e, None


@jvp("exponential_and_standard")
def _exponential_and_standard(rng, scale, size):
    drawn = exponential_and_standard(rng, scale, size)
    e = standard_variates(drawn, 0.0, scale)
    return drawn, None, lambda t: (t * e, ZERO), None


@jvp("rng_choice")
def _rng_choice(rng, a, size, replace, p, axis, shuffle):
    # (The indices are the numbers CPython draws for `a`: they depend on its length.)
    scalar = np.ndim(a) == 0
    index = rng_choice(rng, a if scalar else np.shape(a)[axis], size, replace, p,
                       axis if scalar else 0, shuffle)
    y = index if scalar else np.take(np.asarray(a), index, axis)
    return y, None, lambda t: np.take(dense(t, a), index, axis), None, None, None, None, \
        None


@jvp("np.random.choice")
def _np_choice(a, size, replace, p):
    scalar = np.ndim(a) == 0
    index = np.random.choice(a if scalar else _length_1d(a), size, replace, p)
    y = index if scalar else np.take(np.asarray(a), index, 0)
    return y, lambda t: np.take(dense(t, a), index, 0), None, None, None


def _length_1d(a):
    if np.ndim(a) != 1:
        raise ValueError("a must be 1-dimensional")  # (NumPy's message)
    return len(a)


@jvp("rng_permutation")
def _rng_permutation(rng, x, axis):
    scalar = np.ndim(x) == 0
    index = rng_permutation(rng, x if scalar else np.shape(x)[axis], axis if scalar else 0)
    y = index if scalar else np.take(np.asarray(x), index, axis)
    return y, None, lambda t: np.take(dense(t, x), index, axis), None


@jvp("np.random.permutation")
def _np_permutation(x):
    scalar = np.ndim(x) == 0
    index = np.random.permutation(x if scalar else len(x))
    y = index if scalar else np.take(np.asarray(x), index, 0)
    return y, lambda t: np.take(dense(t, x), index, 0)


# --- np.r_ / np.c_: the tangents of the items (zeros for slices and numbers) -------------

PRIMITIVES["index_concat"].linear = ()


@jvp("index_concat")
def _index_concat(axis, items):
    return index_concat(axis, items), None, lambda t: index_concat_dense(t, axis, items)


# --- in-place updates (functionalized): linear in what they write ------------------------

linear((0, 2), "index_update", "index_add")
linear((0, 1), "list_append", "list_extend")
linear((0,), "update_rest_sens", "update_value_sens", "update_value_scatter",
       "dict_without")
linear((0, 2), "kwarg_or")


@jvp("immutable_item")
def _immutable_item(container, item):
    return immutable_item(container, item), None, lambda t: t


# --- loops whose body is known only at run time -------------------------------------------
# (F of a loop whose body is a known graph is a loop over the state and its tangents,
# built by the transform; these rules are for a body that is a value: an F-callable,
# taking the state then its tangents.)


@jvp("for_range", joint=True)
def _for_range(start, stop, step, body, state, t_start, t_stop, t_step, t_body, t_state):
    tangents = (ZERO,) * len(state) if t_state is ZERO else tuple(t_state)
    for i in range(start, stop, step):
        r = body(i, *state, ZERO, *tangents)
        state = r[0]
        tangents = (ZERO,) * len(state) if r[1] is ZERO else tuple(r[1])
    return state, tangents


@jvp("while_loop", joint=True)
def _while_loop(cond, body, state, t_cond, t_body, t_state):
    tangents = (ZERO,) * len(state) if t_state is ZERO else tuple(t_state)
    while cond(*state, *tangents)[0]:
        r = body(*state, *tangents)
        state = r[0]
        tangents = (ZERO,) * len(state) if r[1] is ZERO else tuple(r[1])
    return state, tangents


# --- by transposition: J t = grad_c <back(c), t> -------------------------------------------
# Linear algebra's factorizations and the functions whose forward rule is not written yet:
# the transform runs the reverse rule's backpropagator in reverse (it is linear in the
# cotangent), exact at every order. It costs about three evaluations of the rule; a rule
# written out is faster.

TRANSPOSED = [
    "np.linalg.svd", "np.linalg.eigh", "np.linalg.eigvalsh", "np.linalg.cholesky",
    "np.linalg.qr", "np.linalg.pinv", "np.linalg.matrix_power", "np.linalg.lstsq",
    "np.linalg.norm", "np.diagonal", "scipy.linalg.cho_factor", "scipy.linalg.cho_solve",
    "scipy.linalg.solve_triangular",
]
for _name in TRANSPOSED:
    if _name in PRIMITIVES and PRIMITIVES[_name].jvp_rule is None and \
            not PRIMITIVES[_name].linear:
        PRIMITIVES[_name].jvp_by_transposition = True

# The one-argument elementwise functions registered since `jvp_rules` declared theirs.
jvp_from_reverse(*[name for name, p in PRIMITIVES.items()
                   if p.differentiable and p.reverse_rule is not None and
                   len(p.param_names) == 1 and p.elementwise and p.jvp_rule is None and
                   not p.jvp_from_reverse and not p.linear])
