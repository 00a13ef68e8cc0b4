"""The code forward mode generates for programs that loop over layers and for batched
Hessians (issue 13's speed targets): what the optimizer resolves when compiling, checked
for values against autograd and finite differences and for the shape of the code.

- a tuple indexed by a loop variable has the kind its items share (`layers[i]`), and the
  tangents of such a tuple display are indexed as plainly (`layers_dot[i]`, not the
  generic `sens_index`), so no ZERO tests, `sens_of`, `gadd` or `unpack` remain per layer;
- a bias's tangent added to a product's is added as it is (`a + b_dot`, not
  `a + broadcast_like(b_dot, y)`: the sum broadcasts it);
- a comprehension over a constant tuple of a few items is unrolled and folds (the batching
  rule's `[_lead(i) for i in indices]` over a slicing's constant indices);
- `scatter_sens` writes its first piece instead of adding it into zeros."""

from __future__ import annotations

from typing import Any

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import tapeless as tl
from tapeless import fwd_api, runtime


@pytest.fixture(autouse=True)
def optimized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


def mlp_layers(W1, b1, W2, b2, X):
    h = X
    for W, b in ((W1, b1), (W2, b2)):
        h = np.tanh(np.matmul(W, h) + b)
    return h.sum()


def mlp_indexed(W1, b1, W2, b2, X):
    layers = ((W1, b1), (W2, b2))
    h = X
    for i in range(len(layers)):
        W = layers[i][0]
        b = layers[i][1]
        h = np.tanh(W @ h + b)
    return np.sum(h)


def mlp_autograd(W1, b1, W2, b2, X):
    h = anp.tanh(anp.matmul(W1, X) + b1)
    return anp.sum(anp.tanh(anp.matmul(W2, h) + b2))


def _mlp_args(seed: int = 0) -> tuple[tuple, tuple]:
    rng = np.random.default_rng(seed)
    shapes = [(6, 6), (6, 1), (6, 6), (6, 1), (6, 4)]
    args = tuple(rng.standard_normal(s) for s in shapes)
    tangents = tuple(rng.standard_normal(s) for s in shapes)
    return args, tangents


def _jvp_source(fn: Any, args: tuple, tangents: tuple) -> str:
    tl.jvp(fn, args, tangents)
    return fwd_api._jvp_function(fn, "python").source_for(*args, *tangents)


@pytest.mark.parametrize("fn", [mlp_layers, mlp_indexed])
def test_jvp_of_a_loop_over_layers(fn: Any) -> None:
    args, tangents = _mlp_args()
    value, tangent = tl.jvp(fn, args, tangents)
    expected = autograd.grad(mlp_autograd, argnum=(0, 1, 2, 3, 4))(*args)
    assert value == pytest.approx(mlp_autograd(*args), rel=1e-12)
    assert tangent == pytest.approx(sum(float(np.sum(g * t)) for g, t in
                                        zip(expected, tangents, strict=True)), rel=1e-10)
    eps = 1e-6
    up = fn(*(a + eps * t for a, t in zip(args, tangents, strict=True)))
    down = fn(*(a - eps * t for a, t in zip(args, tangents, strict=True)))
    assert tangent == pytest.approx((up - down) / (2 * eps), rel=1e-6)


@pytest.mark.parametrize("fn", [mlp_layers, mlp_indexed])
def test_a_loop_over_layers_indexes_its_tangents_plainly(fn: Any) -> None:
    args, tangents = _mlp_args()
    source = _jvp_source(fn, args, tangents)
    for helper in ("sens_index", "sens_of", "gadd", "unpack", "broadcast_like", "dense",
                   "isinstance"):
        assert helper not in source, (helper, source)


def test_a_bias_tangent_is_added_as_it_is() -> None:
    def mlp(W1, b1, W2, b2, X):
        h = np.tanh(W1 @ X + b1)
        return np.sum(np.tanh(W2 @ h + b2))

    args, tangents = _mlp_args(1)
    source = _jvp_source(mlp, args, tangents)
    assert "broadcast_like" not in source
    _, tangent = tl.jvp(mlp, args, tangents)
    expected = autograd.grad(mlp_autograd, argnum=(0, 1, 2, 3, 4))(*args)
    assert tangent == pytest.approx(sum(float(np.sum(g * t)) for g, t in
                                        zip(expected, tangents, strict=True)), rel=1e-10)


def test_a_bias_of_another_shape_is_still_broadcast() -> None:
    """`W @ h + b` where b has more elements than the product (the sum is b's shape, not
    the product's): the rewrite applies only where the other term has the sum's shape."""

    def f(W, h, b):
        return np.sum(np.sin(W @ h + b))

    rng = np.random.default_rng(3)
    args = (rng.standard_normal((1, 3)), rng.standard_normal((3, 1)),
            rng.standard_normal((4, 5)))
    tangents = tuple(rng.standard_normal(np.shape(a)) for a in args)
    _, tangent = tl.jvp(f, args, tangents)
    eps = 1e-6
    up = f(*(a + eps * t for a, t in zip(args, tangents, strict=True)))
    down = f(*(a - eps * t for a, t in zip(args, tangents, strict=True)))
    assert tangent == pytest.approx((up - down) / (2 * eps), rel=1e-6)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_named(x):
    head = x[:-1]
    tail = x[1:]
    return np.sum(100.0 * np.square(tail - head * head) + np.square(1.0 - head))


def rosenbrock_autograd(x):
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("fn", [rosenbrock, rosenbrock_named])
def test_batched_hessian_folds_the_scatter_indices(fn: Any) -> None:
    x = np.linspace(-1.0, 1.0, 30)
    h = tl.hessian(fn)
    first, second = h(x), h(x)  # (column by column, then batched)
    assert h.batched.last == "batched"
    expected = autograd.hessian(rosenbrock_autograd)(x)
    np.testing.assert_allclose(first, expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(second, expected, rtol=1e-12, atol=1e-9)
    plan = next(iter(h.batched.plans.values()))
    source = plan.mapped.source_for(x, *plan.tangents)
    assert "comprehension" not in source, source
    assert "scatter_sens" in source  # (the two slices' adjoints, one array)


def test_a_comprehension_over_constants_is_unrolled() -> None:
    def f(x):
        scaled = [x * c for c in (1.0, 2.0, 3.0)]
        return scaled[0] + scaled[1] * scaled[2]

    compiled = tl.jit(f)
    assert compiled(1.5) == f(1.5)
    assert "for _x in" not in compiled.source_for(1.5)
    assert tl.grad(f)(1.5) == pytest.approx(1.0 + 12.0 * 1.5)


def test_a_comprehension_with_effects_is_not_unrolled() -> None:
    def f(x):
        out = [x * c for c in (1.0, 2.0)]
        print("once")
        return out[0] + out[1]

    assert tl.jit(f)(2.0) == 6.0


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_scatter_sens_writes_its_first_piece(dtype: Any) -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((5, 7), dtype=dtype)
    indices = ((slice(None), slice(None, -1)), (slice(None), slice(1, None)),
               (slice(None), 3), 2)
    ds = (rng.standard_normal((5, 6)).astype(dtype), rng.standard_normal((5, 6)),
          rng.standard_normal(5), 1.5)
    expected = np.zeros((5, 7), dtype=dtype)
    for i, d in zip(indices, ds, strict=True):
        expected[i] += d
    out = runtime.dense_sens(runtime.scatter_sens(x, indices, ds))
    np.testing.assert_array_equal(out, expected)
    # (A first piece that broadcasts, and a ZERO one skipped before it.)
    out = runtime.dense_sens(runtime.scatter_sens(
        x, (0, (slice(None), slice(0, 2)), 1), (runtime.ZERO, 2.0, ds[2][:, None][0])))
    expected = np.zeros((5, 7), dtype=dtype)
    expected[:, 0:2] += 2.0
    expected[1] += ds[2][:, None][0]
    np.testing.assert_array_equal(out, expected)


def scalar_loop(x):
    for _ in range(50):
        x = np.sin(x) * 1.01
    return x


def scalar_loop_while(x):
    i = 0
    while i < 50:
        x = np.sin(x) * 1.01
        i += 1
    return x


@pytest.mark.parametrize("fn", [scalar_loop, scalar_loop_while])
def test_a_loop_state_read_after_its_new_value_is_assigned_at_the_end(fn: Any) -> None:
    """The jvp's new `x` cannot be computed into `x` (the tangent reads the old `x`
    after it): it is rendered in the body's closing assignment, with no temporary."""
    value, tangent = tl.jvp(fn, (0.5,), (1.0,))
    assert value == pytest.approx(fn(0.5), rel=1e-14)
    expected = autograd.grad(lambda x: _scalar_loop_autograd(x, fn is scalar_loop))(0.5)
    assert tangent == pytest.approx(expected, rel=1e-12)
    source = _jvp_source(fn, (0.5,), (1.0,))
    body = [line.strip() for line in source.splitlines() if "x_dot" in line and "=" in line
            and not line.strip().startswith(("def", "return"))]
    assert any(line.startswith("x, x_dot = ") and "sin" in line for line in body), source
    assert not any(line.startswith("y") for line in body), source


def _scalar_loop_autograd(x: Any, _for: bool) -> Any:
    for _ in range(50):
        x = anp.sin(x) * 1.01
    return x


def test_state_read_after_in_another_order() -> None:
    """Fibonacci-like state, `a, b = b, a + b`, and a state whose new value is read by
    another's: what CPython computes."""

    def fib(a, b, n):
        for _ in range(n):
            c = a + b
            a = b
            b = c * 0.5
        return a, b

    def mixed(x, y):
        for _ in range(5):
            nx = np.sin(x) + y
            y = np.cos(x) * nx
            x = nx
        return x + y

    assert tl.jit(fib)(1.0, 2.0, 7) == fib(1.0, 2.0, 7)
    assert tl.jit(mixed)(0.3, 0.7) == pytest.approx(mixed(0.3, 0.7), rel=1e-15)
    _, t = tl.jvp(mixed, (0.3, 0.7), (1.0, -0.5))
    eps = 1e-6
    fd = (mixed(0.3 + eps, 0.7 - 0.5 * eps) - mixed(0.3 - eps, 0.7 + 0.5 * eps)) / (2 * eps)
    assert t == pytest.approx(fd, rel=1e-6)


def einsum_shapes(a, b):
    y = np.einsum("ij,jk->ik", a, b)
    z = np.einsum("ij,ij", y, y)
    return y.shape[0] * 1.0 + y.shape[1] + z


def einsum_implicit(a, b):
    y = np.einsum("ij,kj", a, b)  # (the output: the labels used once, sorted: "ik")
    return y.shape[0] * 10.0 + y.shape[1] + np.sum(np.sin(y))


@pytest.mark.parametrize("fn, b_shape", [(einsum_shapes, (4, 5)), (einsum_implicit, (5, 4))])
def test_einsum_results_have_known_shapes(fn: Any, b_shape: tuple) -> None:
    """`np.einsum` with constant subscripts of float64 arrays of known shapes has a known
    kind: `y.shape` folds to the numbers, and the gradient agrees with autograd's."""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(b_shape)
    compiled = tl.jit(fn)
    assert compiled(a, b) == pytest.approx(fn(a, b), rel=1e-14)
    assert ".shape" not in compiled.source_for(a, b)

    def ag(a, b):
        spec = "ij,jk->ik" if fn is einsum_shapes else "ij,kj"
        y = anp.einsum(spec, a, b)
        return anp.einsum("ij,ij", y, y) if fn is einsum_shapes else anp.sum(anp.sin(y))

    for got, want in zip(tl.grad(fn, argnums=(0, 1))(a, b),
                         autograd.grad(ag, argnum=(0, 1))(a, b), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_einsum_of_four_operands() -> None:
    """More operands than `_einsum_call` spells inline (the rest in `_einsum_call_more`)."""

    def f(a, b, c, d):
        return np.einsum("ij,jk,kl,lm->im", a, b, c, d).sum()

    rng = np.random.default_rng(5)
    args = tuple(rng.standard_normal((3, 3)) for _ in range(4))
    got = tl.grad(f, argnums=(0, 1, 2, 3))(*args)
    want = autograd.grad(lambda a, b, c, d: anp.einsum("ij,jk,kl,lm->im", a, b, c, d).sum(),
                         argnum=(0, 1, 2, 3))(*args)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    _, t = tl.jvp(f, args, args)
    assert t == pytest.approx(sum(float(np.sum(w * a)) for w, a in zip(want, args,
                                                                          strict=True)))


def test_layers_of_different_shapes() -> None:
    """Layers whose items do not share a kind (other shapes): `layers[i]` has no kind,
    and the generic code gives the same derivatives."""

    def net(W1, b1, W2, b2, X):
        h = X
        for W, b in ((W1, b1), (W2, b2)):
            h = np.tanh(W @ h + b)
        return np.sum(h)

    def net_ag(W1, b1, W2, b2, X):
        h = anp.tanh(anp.dot(W1, X) + b1)
        return anp.sum(anp.tanh(anp.dot(W2, h) + b2))

    rng = np.random.default_rng(6)
    shapes = [(5, 3), (5, 1), (2, 5), (2, 1), (3, 4)]
    args = tuple(rng.standard_normal(s) for s in shapes)
    tangents = tuple(rng.standard_normal(s) for s in shapes)
    value, tangent = tl.jvp(net, args, tangents)
    grads = autograd.grad(net_ag, argnum=(0, 1, 2, 3, 4))(*args)
    assert value == pytest.approx(net_ag(*args), rel=1e-12)
    assert tangent == pytest.approx(sum(float(np.sum(g * t)) for g, t in
                                        zip(grads, tangents, strict=True)), rel=1e-10)
    hvp = tl.jvp(tl.grad(net, argnums=(0, 1, 2, 3)), args, tangents)[1]
    eps = 1e-6
    g = tl.grad(net, argnums=(0, 1, 2, 3))
    up = g(*(a + eps * t for a, t in zip(args, tangents, strict=True)))
    down = g(*(a - eps * t for a, t in zip(args, tangents, strict=True)))
    for h, u, d in zip(hvp, up, down, strict=True):
        np.testing.assert_allclose(h, (u - d) / (2 * eps), rtol=1e-5, atol=1e-6)
