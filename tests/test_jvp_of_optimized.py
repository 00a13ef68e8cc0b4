"""Forward over reverse of the optimized gradient (`tapeless.fwd_api.JvpFunction.
of_optimized_gradient`): the jvp of `tl.grad(f)` (a Hessian-vector product, `tl.hessian`'s
columns) is F of the gradient as the optimizer leaves it, not of the gradient as
differentiated. Checked: the same products as the jvp of the gradient as differentiated
(`TAPELESS_JVP_OF_OPTIMIZED=0`) and as finite differences of the gradient, which path
ran, the forward rules of what only the optimizer makes (`Primitive.after_ad`), and the
refusals that send a jvp back to the gradient as differentiated."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import tapeless as tl
from tapeless import fwd_api
from tapeless.ad.api_graphs import jvp_graph
from tapeless.ad.forward import FTransform, OptimizedCodeRefused
from tapeless.api import load
from tapeless.ir.nodes import Constant, Graph
from tapeless.opt.kinds import value_kind
from tapeless.primitives import PRIMITIVES


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def clipped(x):
    # (np.maximum's tie share and np.where's zeros: `max_sens`, `where_zero`)
    return np.sum(np.maximum(x, 0.3) ** 2) + np.sum(np.where(x > 0, x, 0.0) ** 3)


def looped(x):
    total = 0.0
    for i in range(x.shape[0] - 1):
        total = total + np.sin(x[i] * x[i + 1]) * x[i]
    return total


def recursive_sum(x, n):
    if n == 0:
        return np.sum(x ** 2)
    return np.sum(np.tanh(x)) * recursive_sum(x * 0.5, n - 1)


def lse_mixture(w, c):
    z = np.linspace(-1.0, 1.0, 12).reshape(4, 3)[None, :, :] - c[:, None, :]
    a = -0.5 * np.sum((z @ w) ** 2, axis=2)
    top = np.max(a, axis=0, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(a - top), axis=0)) + top[0])


def _cases() -> list[tuple[str, Any, tuple, tuple, Any]]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(7)
    w, c = rng.standard_normal((3, 3)), rng.standard_normal((2, 3))
    return [
        ("rosenbrock", rosenbrock, (x,), (rng.standard_normal(7),), 0),
        ("clipped", clipped, (x,), (rng.standard_normal(7),), 0),
        ("looped", looped, (x,), (rng.standard_normal(7),), 0),
        ("recursive", recursive_sum, (x, 2), (rng.standard_normal(7), 0.0), 0),
        ("mixture", lse_mixture, (w, c), (rng.standard_normal((3, 3)),
                                          rng.standard_normal((2, 3))), (0, 1)),
    ]


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each jvp compiled since took the optimized gradient."""
    seen: list[bool] = []
    original = fwd_api.JvpFunction.of_optimized_gradient

    def spy(self: Any, key: tuple, kinds: tuple) -> Any:
        made = original(self, key, kinds)
        seen.append(made is not None)
        return made

    monkeypatch.setattr(fwd_api.JvpFunction, "of_optimized_gradient", spy)
    return seen


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_products_match_the_gradient_as_differentiated(case: tuple, taken: list[bool],
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    name, fn, args, tans, argnums = case
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    g = tl.grad(fn, argnums=argnums)
    grad, hv = tl.jvp(g, args, tans)
    assert taken == [True]
    monkeypatch.setenv("TAPELESS_JVP_OF_OPTIMIZED", "0")
    grad0, hv0 = tl.jvp(tl.grad(fn, argnums=argnums), args, tans)
    for a, b in zip(tl.tree_leaves((grad, hv)), tl.tree_leaves((grad0, hv0)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    eps = 1e-6
    pairs = list(zip(args, tans, strict=True))
    up = g(*(a + eps * t if isinstance(a, np.ndarray) else a for a, t in pairs))
    down = g(*(a - eps * t if isinstance(a, np.ndarray) else a for a, t in pairs))
    for h, u, d in zip(tl.tree_leaves(hv), tl.tree_leaves(up), tl.tree_leaves(down),
                       strict=True):
        np.testing.assert_allclose(h, (u - d) / (2 * eps), rtol=1e-5, atol=1e-5)


def test_hessian_columns_take_the_optimized_gradient(taken: list[bool]) -> None:
    x = np.linspace(-1.0, 1.0, 9)
    h = tl.hessian(rosenbrock)
    first, second = h(x), h(x)  # (column by column, then batched)
    assert taken and all(taken)
    assert h.batched.last == "batched"
    expected = np.zeros((9, 9))
    for i in range(8):
        expected[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
        expected[i, i + 1] = expected[i + 1, i] = -400.0 * x[i]
        expected[i + 1, i + 1] += 200.0
    np.testing.assert_allclose(first, expected, rtol=1e-12)
    np.testing.assert_allclose(second, expected, rtol=1e-12)


def test_user_rules_inside(taken: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """A `custom_jvp` function inside: the Hessian-vector product is the rule's
    derivative, whichever way it is taken. (Its gradient's comprehensions over constant
    tuples are unrolled by the optimizer, so no closure of theirs is left to nest
    outside the values it reads in F's code, and the optimized gradient is taken; the
    gradient as differentiated gives the same product.)"""

    @tl.custom_jvp
    def softplus(x):
        return np.log1p(np.exp(x))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t / (1.0 + np.exp(-x))

    def f(x):
        return np.sum(softplus(x) * x)

    x = np.array([0.5, 30.0, -3.0])
    v = np.array([1.0, 1.0, 1.0])
    _, hv = tl.jvp(tl.grad(f), (x,), (v,))
    assert taken == [True]
    s = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(hv, (2.0 * s + x * s * (1.0 - s)) * v, rtol=1e-12)
    monkeypatch.setenv("TAPELESS_JVP_OF_OPTIMIZED", "0")
    _, hv = tl.jvp(tl.grad(f), (x,), (v,))
    assert taken == [True, False]
    np.testing.assert_allclose(hv, (2.0 * s + x * s * (1.0 - s)) * v, rtol=1e-12)


def test_closures_nested_outside_their_reads_are_refused() -> None:
    """`_nested_in_owners`: a closure whose parent is not the graph that owns a value it
    reads (as a closure copied with its callee by the optimizer can be) sends a jvp
    back to the gradient as differentiated; one nested in that graph is accepted."""
    from tapeless.fwd_api import _nested_in_owners

    for nested in (False, True):
        root = Graph("root")
        x = root.add_parameter("x")
        owner = Graph("owner", root)
        y = owner.add_parameter("y")
        doubled = owner.apply(Constant(PRIMITIVES["mul"]), y, Constant(2.0))
        closure = Graph("closure", owner if nested else root)
        closure.output = closure.apply(Constant(PRIMITIVES["add"]), doubled, Constant(1.0))
        owner.output = owner.apply(Constant(PRIMITIVES["make_tuple"]), doubled,
                                   Constant(closure))
        root.output = root.apply(Constant(owner), x)
        assert _nested_in_owners(root) is nested


# Arguments for each primitive only the optimizer makes that has a forward rule: the
# parameters, and which of them is the tangent's (the others' tangents are zero).
AFTER_AD_SAMPLES: dict[str, tuple[tuple, int]] = {
    "own": ((np.array([1.0, -2.0, 3.0]),), 0),
    "dense_sens": ((np.array([1.0, -2.0, 3.0]),), 0),
    "max_sens": ((np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.2, 0.2]), 0.2), 0),
    "where_zero": ((np.array([True, False, True]), np.array([1.0, -2.0, 3.0])), 1),
    "scatter_sens": ((np.zeros(5), (slice(0, 3), 4), (np.array([1.0, 2.0, 3.0]), 4.0)), 2),
}


def _one_call(name: str, n: int) -> Graph:
    g = Graph(f"call_{name}".replace(".", "_"))
    params = [g.add_parameter(f"a{i}") for i in range(n)]
    g.output = g.apply(Constant(PRIMITIVES[name]), *params)
    return g


def test_every_after_ad_primitive_has_a_sample_or_is_refused() -> None:
    after = {n for n, p in PRIMITIVES.items() if p.after_ad}
    # (`scatter_sens` has a sample and is no longer after_ad: batching rules make it
    # too, in code reverse mode differentiates, so it has a reverse rule)
    assert {n for n in after if PRIMITIVES[n].linear} == \
        {n for n in AFTER_AD_SAMPLES if PRIMITIVES[n].after_ad}
    assert {n for n in AFTER_AD_SAMPLES if not PRIMITIVES[n].after_ad} == {"scatter_sens"}
    for name in sorted(after - set(AFTER_AD_SAMPLES)):
        if not PRIMITIVES[name].param_names:
            continue  # (`stack_new()`: no tangent to refuse)
        g = _one_call(name, len(PRIMITIVES[name].param_names))
        with pytest.raises(OptimizedCodeRefused, match=name):
            FTransform().graph(g)


@pytest.mark.parametrize("name", sorted(AFTER_AD_SAMPLES))
def test_forward_rules_of_what_the_optimizer_makes(name: str) -> None:
    """Each is linear in one parameter: its tangent is the primitive applied to that
    parameter's tangent, which equals the directional derivative (exactly: linear)."""
    args, at = AFTER_AD_SAMPLES[name]
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(5)
    tangent = tl.tree_map(lambda v: rng.standard_normal(np.shape(v)), args[at])
    tans = tuple(tangent if i == at else tl.tree_map(
        lambda v: np.zeros(np.shape(v)) if isinstance(v, np.ndarray) else 0.0, a)
        for i, a in enumerate(args))
    both = (*args, *tans)
    jg = jvp_graph(_one_call(name, len(args)), FTransform())
    value, t = load(jg, tuple(value_kind(a) for a in both)).fn(*both)

    def dense(v: Any) -> Any:
        return v.dense() if hasattr(v, "dense") else v

    def moved(s: float) -> Any:
        return dense(prim(*(tl.tree_map(lambda a, d: a + s * d, args[at], tangent)
                            if i == at else a for i, a in enumerate(args))))

    np.testing.assert_allclose(dense(value), dense(prim(*args)))
    expected = (moved(0.5) - moved(-0.5)) / 1.0
    np.testing.assert_allclose(dense(t), expected, rtol=1e-12, atol=1e-12)
    assert not math.isnan(float(np.sum(dense(t))))
