"""Loops over a few items of different kinds are unrolled (`opt/unroll.py`), and list
arguments whose items have different kinds get item-wise kinds (`ListItemsKind`): the
per-example-gradient example of JAX's README (`vp.layers_loss`, a loop over a list of
`(W, b)` layers) compiles to the hand-written code, under `grad`, `vmap`, `jit` and
nested derivatives, with the values of a loop of `tl.grad` and of JAX."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tapeless as tl
from tapeless.opt.kinds import ListItemsKind, value_kind
from tapeless.opt.unroll import UNROLL_MAX_TRIPS

# (bench/vmap_programs.py, whose name tests/vmap_programs.py takes on the test path)
_spec = importlib.util.spec_from_file_location(
    "bench_vmap_programs", Path(__file__).parent.parent / "bench" / "vmap_programs.py")
assert _spec is not None and _spec.loader is not None
vp: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vp)

WIDTHS = [[3, 2], [3, 5, 2], [4, 6, 3, 2], [2, 7, 5, 3, 1]]  # 1 to 4 layers


def layers(widths: list[int], seed: int = 0, as_list: bool = True) -> Any:
    rng = np.random.default_rng(seed)
    ps = [(rng.normal(size=(m, n)) / 2, rng.normal(size=n))
          for m, n in zip(widths, widths[1:], strict=False)]
    return ps if as_list else tuple(ps)


def data(widths: list[int], batch: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, widths[0])), rng.normal(size=(batch, widths[-1]))


def close(a: Any, b: Any, tol: float = 1e-12) -> None:
    la, lb = tl.tree_leaves(a), tl.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def has_loop(source: str) -> bool:
    return re.search(r"^\s*(for|while) ", source, re.M) is not None


@pytest.mark.parametrize("as_list", [True, False], ids=["list", "tuple"])
@pytest.mark.parametrize("widths", WIDTHS, ids=lambda w: f"{len(w) - 1}layers")
def test_per_example_gradients_of_readme_spelling(widths: list[int], as_list: bool) -> None:
    params = layers(widths, as_list=as_list)
    X, Y = data(widths)
    g = tl.grad(vp.layers_loss)
    v = tl.vmap(g, in_axes=(None, 0, 0))
    got = v(params, X, Y)
    assert type(got) is type(params)
    for i in range(len(X)):
        one = g(params, X[i], Y[i])
        assert type(one) is type(params)
        close(tl.tree_map(lambda a, i=i: a[i], got), one)
    if len(widths) == 3:  # two layers: the hand-written per-example gradients
        close(got, vp.layers_hand(params, X, Y), 1e-10)
    # Specialized: no loop, no fallback to the gradient of the batched function, no
    # run-time branch of np.dot's gradient.
    if as_list and len(params) == 1:
        return  # (a list of items of one signature: its length is not in its signature)
    src = v.source_for(params, X, Y)
    assert not has_loop(src) and "einsum_specs" not in src and "per_example" not in src
    assert not has_loop(g.source_for(params, X[0], Y[0]))


@pytest.mark.parametrize("widths", WIDTHS[:3], ids=lambda w: f"{len(w) - 1}layers")
def test_against_jax(widths: list[int]) -> None:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = pytest.importorskip("jax.numpy")

    def loss(params: Any, inputs: Any, targets: Any) -> Any:
        for W, b in params:
            outputs = jnp.dot(inputs, W) + b
            inputs = jnp.tanh(outputs)
        return jnp.sum((outputs - targets) ** 2)

    params = layers(widths)
    X, Y = data(widths)
    want = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, X, Y)
    got = tl.vmap(tl.grad(vp.layers_loss), in_axes=(None, 0, 0))(params, X, Y)
    close(got, [tuple(np.asarray(a) for a in layer) for layer in want], 1e-10)


def test_jit_unrolls_and_keeps_values() -> None:
    params = layers(WIDTHS[2])
    X, _ = data(WIDTHS[2])
    f = tl.jit(vp.layers_predict)
    close(f(params, X[0]), vp.layers_predict(params, X[0]))
    close(tl.vmap(vp.layers_predict, in_axes=(None, 0))(params, X),
          np.stack([vp.layers_predict(params, x) for x in X]))
    assert not has_loop(f.source_for(params, X[0]))


def blocks_loss(blocks: Any, x: Any) -> Any:
    """Nested tuples: a loop over blocks, each a loop over its layers."""
    for block in blocks:
        for W, b in block:
            x = np.tanh(x @ W + b)
    return np.sum(x * x)


def test_nested_tuples() -> None:
    a, b, c = layers([3, 4, 5, 2], as_list=False)
    blocks = ((a,), (b, c))
    X, _ = data([3, 2])
    g = tl.grad(blocks_loss)
    v = tl.vmap(g, in_axes=(None, 0))
    got = v(blocks, X)
    for i in range(len(X)):
        close(tl.tree_map(lambda t, i=i: t[i], got), g(blocks, X[i]))
    eps = 1e-6
    W = blocks[1][0][0]
    for j, k in [(0, 0), (2, 3)]:  # finite differences of one weight
        Wp, Wm = W.copy(), W.copy()
        Wp[j, k] += eps
        Wm[j, k] -= eps
        fd = (blocks_loss((blocks[0], ((Wp, blocks[1][0][1]), blocks[1][1])), X[0]) -
              blocks_loss((blocks[0], ((Wm, blocks[1][0][1]), blocks[1][1])), X[0])) / (2 * eps)
        assert abs(g(blocks, X[0])[1][0][0][j, k] - fd) < 1e-6
    assert not has_loop(g.source_for(blocks, X[0]))


def capped_loss(params: Any, x: Any) -> Any:
    """A loop with a break whose trip differs across examples."""
    for W, b in params:
        x = np.tanh(x @ W + b)
        if np.sum(x) > -1.3:
            break
    return np.sum(x * x)


@pytest.mark.parametrize("same_shapes", [False, True])
def test_loop_with_a_break(same_shapes: bool) -> None:
    """Layers of different shapes (not batched: the examples' values would have different
    shapes where they break at different layers), or of one shape with biases of
    different kinds (an array, a float)."""
    params = layers([3, 3, 4, 2])
    if same_shapes:
        params = [params[0], (params[1][0][:, :3], 0.25), (params[0][0].T, params[0][1])]
    X, _ = data([3, 2], batch=12)
    g = tl.grad(capped_loss)
    plain = [capped_loss(params, x) for x in X]
    close(tl.jit(capped_loss)(params, X[0]), plain[0])
    for x in X[:4]:
        one = g(params, x)
        eps = 1e-6
        b = params[0][1]
        for k in range(len(b)):
            bp, bm = b.copy(), b.copy()
            bp[k] += eps
            bm[k] -= eps
            fd = (capped_loss([(params[0][0], bp)] + params[1:], x) -
                  capped_loss([(params[0][0], bm)] + params[1:], x)) / (2 * eps)
            assert abs(one[0][1][k] - fd) < 1e-6
    if same_shapes:
        assert len(set(np.sum(np.tanh(x @ params[0][0] + params[0][1])) > -1.3 for x in X)) == 2
        close(tl.vmap(capped_loss, in_axes=(None, 0))(params, X), np.array(plain))
        # (vmap of its gradient where the biases' kinds differ fails on main as here: the
        # per-example fallback selects a float and an array; with arrays it runs.)
        same = [params[0], (params[1][0], params[0][1]), params[2]]
        per = tl.vmap(g, in_axes=(None, 0))(same, X)
        for i in range(len(X)):
            close(tl.tree_map(lambda a, i=i: a[i], per), g(same, X[i]))


def test_second_order() -> None:
    params = layers([3, 4, 2], as_list=False)
    X, Y = data([3, 2])

    def gnorm(params: Any, x: Any, y: Any) -> Any:
        g = tl.grad(vp.layers_loss)(params, x, y)
        return sum(np.sum(dW * dW) + np.sum(db * db) for dW, db in g)

    hg = tl.grad(gnorm)
    got = hg(params, X[0], Y[0])
    eps = 1e-6
    W = params[1][0]
    for j, k in [(0, 0), (3, 1)]:
        Wp, Wm = W.copy(), W.copy()
        Wp[j, k] += eps
        Wm[j, k] -= eps
        fd = (gnorm((params[0], (Wp, params[1][1])), X[0], Y[0]) -
              gnorm((params[0], (Wm, params[1][1])), X[0], Y[0])) / (2 * eps)
        assert abs(got[1][0][j, k] - fd) < 1e-5 * max(1.0, abs(fd))


def test_loops_with_one_kind_are_not_unrolled() -> None:
    """Loops whose values already have one kind a trip stay loops (over a tuple of
    arrays, a range); over a tuple or a list of layers (containers: the list's length is
    in its signature), the loop is unrolled."""
    rng = np.random.default_rng(3)
    same = [(rng.normal(size=(4, 4)), rng.normal(size=4)) for _ in range(3)]
    X, Y = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    g = tl.grad(vp.layers_loss)
    assert not has_loop(g.source_for(tuple(same), X[0], Y[0]))
    assert not has_loop(g.source_for(same, X[0], Y[0]))
    close(g(tuple(same), X[0], Y[0]), g(same, X[0], Y[0]))
    per = tl.vmap(g, in_axes=(None, 0, 0))(tuple(same), X, Y)
    for i in range(len(X)):
        close(tl.tree_map(lambda a, i=i: a[i], per), g(same, X[i], Y[i]))

    def squares(Ws: Any, x: Any) -> Any:
        for W in Ws:
            x = np.tanh(W @ x)
        return x

    Ws = tuple(w for w, _ in same)
    assert has_loop(tl.jit(squares).source_for(Ws, X[0]))

    def over_range(x: Any) -> Any:
        for _ in range(3):
            x = np.tanh(x)
        return np.sum(x)

    assert has_loop(tl.grad(over_range).source_for(X[0]))


def test_too_many_trips_stay_a_loop() -> None:
    n = UNROLL_MAX_TRIPS + 1
    rng = np.random.default_rng(4)
    params = tuple((rng.normal(size=(3, 3)) / 2, rng.normal(size=3 if i % 2 else (1, 3)))
                   for i in range(n))

    def f(params: Any, x: Any) -> Any:
        for W, b in params:
            x = np.tanh(x @ W + b)
        return np.sum(x)

    x = rng.normal(size=3)
    g = tl.grad(f)
    assert has_loop(g.source_for(params, x))
    got = g(params, x)
    eps = 1e-6
    b = params[0][1]
    bp, bm = b.copy(), b.copy()
    bp[0, 1] += eps
    bm[0, 1] -= eps
    fd = (f(((params[0][0], bp),) + params[1:], x) - f(((params[0][0], bm),) + params[1:], x)) \
        / (2 * eps)
    assert abs(got[0][1][0, 1] - fd) < 1e-6


def test_effects_keep_their_order(capsys: pytest.CaptureFixture[str]) -> None:
    def f(items: Any, x: Any) -> Any:
        for a in items:
            print(np.shape(a))
            x = x + np.sum(a)
        return x

    items = [np.ones(2), 1.5, np.ones((2, 3))]
    value = f(items, 1.0)
    want = capsys.readouterr().out
    c = tl.jit(f)
    assert c(items, 1.0) == value
    assert capsys.readouterr().out == want
    assert not has_loop(c.source_for(items, 1.0))


def test_list_items_kind() -> None:
    assert value_kind([np.ones(2), 1.0]) == ListItemsKind((value_kind(np.ones(2)),
                                                           value_kind(1.0)))
    assert str(value_kind([1, 2.0])) == "list<int|float>"
    assert value_kind([1.0, 2.0]) == tl.opt.kinds.list_of(tl.opt.kinds.FLOAT)  # as before
    # (a list of containers keeps its length in its signature: item-wise, items of one kind)
    one = value_kind((np.ones(2),))
    assert value_kind([(np.ones(2),), (np.ones(2),)]) == ListItemsKind((one, one))


def test_gradient_of_an_empty_dict_beside_a_list_of_items_of_different_kinds() -> None:
    """The gradient of an empty dict argument is an empty dict, beside a list argument
    whose items have different kinds (its gradient a list display, item by item): the
    keys of neither tell which display to build (an IndexError once, on `{}`)."""
    def f(x: Any, d: Any, items: Any) -> Any:
        return x * 2.0 + len(d) + items[1] * items[0][0]

    items = [np.arange(2.0), 3.0]
    got = tl.grad(f, argnums=(0, 1, 2))(1.5, {}, items)
    assert got[1] == {} and type(got[2]) is list
    close(got, (2.0, {}, [np.array([3.0, 0.0]), 0.0]))

    def g(x: Any) -> Any:
        return np.sum(x), {}, [x, {}]

    (back,) = tl.vjp(g, np.ones(2))[1]((1.0, {}, [np.ones(2), {}]))
    close(back, np.full(2, 2.0))


@pytest.mark.parametrize("n", [0, 1])
def test_loops_of_one_trip_or_none_stay_loops(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """A loop of one trip or none over items of one kind is not unrolled (nothing to
    specialize): the rows of its gradient are still added in place, no run-time
    helper. (A one-item list of layers is a structure, as a one-item tuple is: its
    gradient is the tuple's.)"""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)

    def rows(w: Any, xs: Any) -> Any:
        total = 0.0
        for i in range(w.shape[0]):
            total = total + np.sum(np.tanh(w[i] * xs[i]))
        return total

    rng = np.random.default_rng(5)
    w, xs = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    g = tl.grad(rows, argnums=(0, 1))
    source = g.source_for(w, xs)
    assert has_loop(source) and "_rt.scatter_sens" not in source, source
    y = np.tanh(w * xs)
    close(g(w, xs), ((1 - y * y) * xs, (1 - y * y) * w))
    one = [(rng.normal(size=(3, 2)), rng.normal(size=2))]
    X, Y = data([3, 2])
    h = tl.grad(vp.layers_loss)
    close(h(one, X[0], Y[0]), h(tuple(one), X[0], Y[0]))
