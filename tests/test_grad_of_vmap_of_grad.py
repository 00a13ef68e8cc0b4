"""`tl.grad` of a function that calls `tl.vmap` of a gradient (and so derivatives of
Jacobians and Hessians taken inside compiled code).

This was silently zero (found by the compositions matrix, fixed 2026-12-07) where the
inner function read elements of its argument (`x[0] * x[1]`), for two reasons:
- `tl.vmap` inside compiled code batches the function as the optimizer leaves it, and
  that code had steps only the optimizer makes (`own`, ...), which reverse mode took as
  constants. J now differentiates the same `tl.vmap` batched as parsed where the
  optimized one reaches such a step (`reverse._batched_as_parsed`), and raises where it
  meets one elsewhere, instead of giving zeros.
- `getitem_sens` over a batch is a `scatter_sens`, which had no reverse rule.

Each case is checked against central finite differences and against the same program
with a Python loop over the batch instead of `tl.vmap` (an independent spelling)."""

from typing import Any

import numpy as np
import pytest

import tapeless as tl
from tapeless.errors import GradError

X = np.array([0.3, -0.7])
E = np.eye(2)


def _fd(h: Any, x: np.ndarray = X) -> np.ndarray:
    e = 1e-6
    return np.array([(h(x + e * d) - h(x - e * d)) / (2 * e) for d in np.eye(x.size)])


INNER = {
    "two element reads": lambda x: x[0] * x[1],
    "one element read twice": lambda x: x[0] * x[0],
    "sin(x0) * x1": lambda x: np.sin(x[0]) * x[1],
    "one element read": lambda x: x[0] ** 3,
    "slices": lambda x: np.sum(x[:1] * x[1:]),
    "np.prod": lambda x: np.prod(x),
    "element and dense": lambda x: x[0] ** 2 + np.sum(x * x),
    "element and sum": lambda x: x[0] ** 2 + np.sum(x),
    "element times sum": lambda x: x[0] * np.sum(x),
    "element in exp": lambda x: np.exp(x[1]) * np.cos(x[0]) + x[1] ** 2,
}


@pytest.mark.parametrize("name", list(INNER))
def test_closure_over_the_differentiated_argument(name: str) -> None:
    gf = tl.grad(INNER[name])

    def h(u: np.ndarray) -> Any:
        return np.sum(tl.vmap(lambda t: gf(u) * t)(E))

    def looped(u: np.ndarray) -> Any:
        return np.sum(np.stack([gf(u) * t for t in E]))

    got = tl.grad(h)(X)
    np.testing.assert_allclose(got, _fd(h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got, tl.grad(looped)(X), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(INNER))
def test_batched_argument(name: str) -> None:
    gf = tl.grad(INNER[name])
    w = np.array([[1.0, -2.0], [0.5, 3.0], [2.0, 0.25]])

    def h(u: np.ndarray) -> Any:
        return np.sum(w * tl.vmap(gf)(np.stack([u, 2 * u, u * u])))

    def looped(u: np.ndarray) -> Any:
        return np.sum(w * np.stack([gf(v) for v in (u, 2 * u, u * u)]))

    got = tl.grad(h)(X)
    np.testing.assert_allclose(got, _fd(h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got, tl.grad(looped)(X), rtol=1e-12, atol=1e-14)


def test_gradient_of_a_hessian_taken_inside_compiled_code() -> None:
    f = INNER["sin(x0) * x1"]
    hess = tl.hessian(f)

    def h(u: np.ndarray) -> Any:
        return np.sum(hess(u) * np.array([[1.0, 2.0], [3.0, 4.0]]))

    np.testing.assert_allclose(tl.grad(h)(X), _fd(h), rtol=1e-6, atol=1e-8)


def test_third_derivative_through_a_reversed_array() -> None:
    # (what the compositions matrix found: a wrong third derivative through `x[::-1]`)
    def f(x: np.ndarray) -> Any:
        y = x[::-1]
        return y[0] ** 3 * y[1] + np.sin(y[1])

    jac = tl.jacrev(tl.grad(f))

    def h(u: np.ndarray) -> Any:
        return np.sum(jac(u))

    np.testing.assert_allclose(tl.grad(h)(X), _fd(h), rtol=1e-5, atol=1e-7)


def test_jvp_agrees() -> None:
    gf = tl.grad(INNER["two element reads"])

    def h(u: np.ndarray) -> Any:
        return np.sum(tl.vmap(gf)(np.stack([u, 2 * u])))

    t = np.array([0.7, -1.1])
    _, tangent = tl.jvp(h, (X,), (t,))
    np.testing.assert_allclose(tangent, tl.grad(h)(X) @ t, rtol=1e-12)


def test_reverse_mode_refuses_a_step_only_the_optimizer_makes() -> None:
    """A primitive made only by the optimizer, with no reverse rule, is refused by J
    (it used to be taken as a constant: zero sensitivities, silently)."""
    from tapeless.ad.reverse import JTransform
    from tapeless.ir.nodes import Graph
    from tapeless.primitives import PRIMITIVES

    names = [name for name, p in PRIMITIVES.items() if p.after_ad and not p.differentiable]
    assert "own" in names and "scatter_add" in names
    for name in names:
        prim = PRIMITIVES[name]
        g = Graph("f", None, None)
        args = [g.add_parameter(f"a{i}", None) for i in range(len(prim.param_names))]
        g.output = g.apply(prim, *args)
        with pytest.raises(GradError, match="only the optimizer makes"):
            JTransform().graph(g)


def test_scatter_sens_reverse_rule() -> None:
    """`scatter_sens` (what `getitem_sens` becomes over a batch) differentiated: each
    piece's sensitivity is the output's sensitivity read at its index."""
    from tapeless.runtime import scatter_sens

    x = np.zeros((3, 2))
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])

    def f(d0: Any, d1: Any) -> Any:
        out = scatter_sens(x, (0, 2), (d0, d1))  # (rows 0 and 2)
        return np.sum(out * w * out)

    d0, d1 = np.array([0.5, -1.0]), np.array([1.5, 0.25])
    g0, g1 = tl.grad(f, argnums=(0, 1))(d0, d1)
    np.testing.assert_allclose(g0, 2 * w[0] * d0)
    np.testing.assert_allclose(g1, 2 * w[2] * d1)
