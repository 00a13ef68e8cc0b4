"""User-given derivative rules (`tl.custom_jvp`, `tl.custom_vjp`), in every mode.

A rule written once gives both modes: a `custom_vjp`'s forward-mode tangent is the
transpose of its backward function (`J t = grad_c <bwd(res, c), t>`, exact since `bwd` is
linear in `c`), and a `custom_jvp`'s backpropagator the transpose of its tangent map
(`J^T c = grad_t <c, rule(x, t)[1]>`). The functions below are compiled by tapeless's own
front end (the supported subset) and copied into the derivative program, so every order
above is ordinary differentiation of the user's rules."""

# ruff: noqa: E731
from __future__ import annotations

from typing import Any

import numpy as np

from ..frontend.parser import parse
from ..ir.clone import inline_body
from ..ir.nodes import Constant, CustomRule, Graph, reachable_graphs
from ..runtime import (
    ZERO,
    dense,
    from_structure,
    to_structure,
    tree_leaves,
    zeros_like_value,
)


def prepared(fn: Any) -> Graph:
    """The graph of one of the functions below, marked as derivative code."""
    g = parse(fn)
    for h in reachable_graphs(g):
        h.derived = True
    return g


def differentiated(rule: CustomRule) -> tuple[int, ...]:
    """The positions of the arguments a rule differentiates (all but `nondiff`)."""
    return tuple(i for i in range(len(rule.fun.parameters)) if i not in rule.nondiff)


def transposed_graph(rule: Graph, name: str) -> Graph:
    """`(c, xs, ts) -> <back(c), ts>` for the reverse rule `rule` (see `reverse_along`)."""
    g = Graph(f"{name}_transposed")
    params = [g.add_parameter(n) for n in ("c", "xs", "ts")]
    g.output, g.effects = inline_body(parse(reverse_along), g, [Constant(rule), *params])
    return g


def along_graph(rule: CustomRule) -> Graph:
    """The scalar whose gradient transposes a rule: for a custom_jvp, `<c, J t>` as a
    function `(c, y, xs, ts)`, linear in the tangents `ts`; for a custom_vjp, `<bwd(res,
    c), t>` as a function `(c, res, y, xs, ts)`, linear in the cotangent `c`. Its J (the
    transform's caller makes it) gives the transpose as a sensitivity."""
    g = Graph(f"{rule.fun.name}_transposed", None, rule.fun.loc)
    helper: Any
    if rule.kind == "jvp":
        names, helper, first = ["c", "y", "xs", "ts"], jvp_along, rule.rule
    else:
        names, helper, first = ["c", "res", "y", "xs", "ts"], vjp_along, rule.bwd
    params = [g.add_parameter(n) for n in names]
    g.output, g.effects = inline_body(parse(helper), g, [
        Constant(first), *params, Constant(differentiated(rule)), Constant(rule.nondiff)])
    return g


def tree_vdot(a, b):
    """<a, b> over the leaves of two sensitivities of one structure."""
    la = tree_leaves(a)
    lb = tree_leaves(b)
    total = 0.0
    for i in range(len(la)):
        if la[i] is not ZERO and lb[i] is not ZERO:  # (a bool's, a string's: none)
            total = total + np.sum(la[i] * lb[i])
    return total


def pick(xs, positions):
    return tuple(xs[i] for i in positions)


def spread(parts, positions, n):
    """A tuple of `n` sensitivities, `parts` at `positions` (None: zero), ZERO elsewhere."""
    out: tuple = ()
    for i in range(n):
        v = ZERO
        for k in range(len(positions)):
            if positions[k] == i:
                v = ZERO if parts[k] is None else from_structure(parts[k])
        out = out + (v,)
    return out


def cotangent_dot(cts, ts, xs):
    """<cts, ts>: cotangents given by a user's `bwd` (None: zero), tangents of `xs`."""
    total = 0.0
    for k in range(len(xs)):
        if cts[k] is not None:
            total = total + tree_vdot(from_structure(cts[k]), dense(ts[k], xs[k]))
    return total


def jvp_along(rule, c, y, xs, ts, diff, nondiff):
    fixed = pick(xs, nondiff)
    primals = pick(xs, diff)
    return tree_vdot(dense(c, y), from_structure(rule(*fixed, primals, ts)[1]))


def vjp_along(bwd, c, res, y, xs, ts, diff, nondiff):
    fixed = pick(xs, nondiff)
    return cotangent_dot(bwd(*fixed, res, to_structure(c, y)), pick(ts, diff),
                         pick(xs, diff))


def reverse_along(rule, c, xs, ts):
    """<back(c), t> for a primitive's reverse rule (its forward rule by transposition:
    `tapeless.ad.forward`), linear in the cotangent `c`."""
    back = rule(*xs)[1]
    d = back(c)
    total = 0.0
    for i in range(len(xs)):
        if ts[i] is not ZERO and d[i] is not ZERO:
            total = total + tree_vdot(dense(d[i], xs[i]), dense(ts[i], xs[i]))
    return total


# --- reverse mode (J): (value, backpropagator (d_env, d_args...)) ---------------------------


def vjp_reverse(fwd, bwd, xs, diff, nondiff):
    out = fwd(*xs)
    y = out[0]
    res = out[1]
    fixed = pick(xs, nondiff)
    n = len(xs)
    return y, lambda c: ((),) + spread(bwd(*fixed, res, to_structure(c, y)), diff, n)


def jvp_reverse(fun, j_along, xs, diff, nondiff):
    # (j_along: J of `jvp_along` with the rule put in)
    y = fun(*xs)
    primals = pick(xs, diff)
    n = len(xs)

    def back(c):
        if c is ZERO:
            return ((),) + (ZERO,) * n
        zeros = tuple(to_structure(zeros_like_value(p), p) for p in primals)
        sens = j_along(c, y, xs, zeros)[1](1.0)
        return ((),) + spread(to_structure(sens[4], zeros), diff, n)

    return y, back


def checkpoint_reverse(fun, j_fun, xs):
    # (j_fun: J of the function; run again in the backward pass, which saves nothing
    # from the forward pass but the arguments)
    y = fun(*xs)
    return y, lambda c: j_fun(*xs)[1](c)


def checkpoint_saving_reverse(saving, j_reusing, xs):
    # (saving: the function, also returning the values its policy saves; j_reusing: J of
    # the function reading them (`tapeless.ad.checkpoint`), run in the backward pass)
    out = saving(*xs)
    y = out[0]
    saved = out[1]
    return y, lambda c: j_reusing(*(xs + (saved,)))[1](c)[:-1]


# --- forward mode (F): (value, tangent) ------------------------------------------------------


def jvp_forward(rule, xs, ts, diff, nondiff):
    fixed = pick(xs, nondiff)
    primals = pick(xs, diff)
    tangents = tuple(to_structure(dense(ts[i], xs[i]), xs[i]) for i in diff)
    out = rule(*fixed, primals, tangents)
    return out[0], from_structure(out[1])


def vjp_forward(fwd, j_along, xs, ts, diff, nondiff):
    # (j_along: J of `vjp_along` with the backward function put in)
    out = fwd(*xs)
    y = out[0]
    res = out[1]
    # (At c = 0: the user's bwd is linear in c, or, like a clipped gradient, has there
    # the slope its author means.)
    sens = j_along(zeros_like_value(y), res, y, xs, ts)[1](1.0)
    return y, sens[1]
