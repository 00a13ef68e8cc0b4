"""Loops over layers: loop state whose kind the induction proves through a derivative
rule's run-time shape tests (`if np.ndim(a) == 0 ...`, decided under the kinds assumed
for the state), variables first assigned in a loop's body read after it, and lists of
layers (a list of containers keeps its length in its signature, as a tuple does: its
loop is unrolled). Gradients against finite differences and a loop of `tl.grad`; the
generated code against the run-time helpers it no longer needs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tapeless as tl
from tapeless.opt.kinds import ListItemsKind, value_kind

# Helpers of generic derivative code that kinds make unnecessary.
GENERIC = ("np.ndim", "_ndim", "einsum_specs", "_rt.unbroadcast", "_unbroadcast",
           "tensordot_subscripts", "check_bound", "_rt.sens_of", "_sens_of")


def generic_left(source: str) -> list[str]:
    return [h for h in GENERIC if h in source]


def has_loop(source: str) -> bool:
    return "for " in source or "while " in source


def close(a: Any, b: Any, tol: float = 1e-10) -> None:
    la, lb = tl.tree_leaves(a), tl.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def numeric_grad(f: Any, args: tuple, argnum: int, eps: float = 1e-6) -> Any:
    """Central differences of f with respect to every float leaf of args[argnum], in the
    argument's structure (tuples and lists rebuilt as they were)."""
    leaves = tl.tree_leaves(args[argnum])

    def rebuild(tree: Any, it: Any) -> Any:
        if isinstance(tree, (tuple, list)):
            return type(tree)(rebuild(t, it) for t in tree)
        return next(it)

    grads = []
    for k, leaf in enumerate(leaves):
        leaf = np.asarray(leaf, dtype=float)
        g = np.zeros_like(leaf)
        for idx in np.ndindex(leaf.shape):
            out = []
            for sign in (1, -1):
                moved = leaf.copy()
                moved[idx] += sign * eps
                new = [moved if j == k else v for j, v in enumerate(leaves)]
                a = list(args)
                a[argnum] = rebuild(args[argnum], iter(new))
                out.append(f(*a))
            g[idx] = (out[0] - out[1]) / (2 * eps)
        grads.append(g)
    return rebuild(args[argnum], iter(grads))


# --- programs written for these tests (not the bench's) ---------------------------------

def repeated(W, x):
    """One weight applied three times: loop state through `np.dot`'s derivative."""
    for _ in range(3):
        x = np.tanh(np.dot(x, W))
    return np.sum(x * x)


def over_list(Ws, x):
    """A list of same-shape arrays (a list kind without a length: stays a loop)."""
    for W in Ws:
        x = np.sin(np.dot(x, W)) + x
    return np.sum(x)


def residual(params, x):
    """Layers as (W, b, scale) triples, a residual connection, the last layer's output
    first assigned in the loop's body."""
    for W, b, s in params:
        h = np.tanh(x @ W + b) * s
        x = x + h
    return np.sum(h ** 2) + 0.5 * np.sum(x)


def zipped(Ws, bs, x):
    for W, b in zip(Ws, bs):  # noqa: B905  (as users write it)
        x = np.tanh(np.dot(x, W) + b)
    return np.sum((x - 0.25) ** 2)


def enumerated(params, x):
    total = 0.0
    for k, (W, b) in enumerate(params):
        x = np.tanh(np.dot(x, W) + b)
        total = total + (k + 1.0) * np.mean(x)
    return total


def mse(params, inputs, targets):
    """JAX README's shape, spelled otherwise: `np.matmul`, a mean, `W.T`-shaped layers."""
    for W, b in params:
        out = np.matmul(inputs, W.T) + b
        inputs = np.tanh(out)
    return np.mean((out - targets) ** 2)


def layers(rng: Any, widths: list[int], transposed: bool = False) -> list:
    return [((rng.normal(size=(n, m)) if transposed else rng.normal(size=(m, n))) / 3,
             rng.normal(size=n)) for m, n in zip(widths, widths[1:], strict=False)]


# --- kinds of loop state through a derivative rule's shape tests ------------------------

@pytest.mark.parametrize("shape", [(4,), (2, 4)])
def test_loop_state_kind_through_a_derivative_rules_tests(
        monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...]) -> None:
    """The state `x` of a `range` loop keeps its kind through `np.dot`'s derivative,
    whose branches on `np.ndim` are decided under the kind assumed for it: the gradient
    is the loop of matrix products, without the rule's generic branches."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(0)
    W, x = rng.normal(size=(4, 4)) / 2, rng.normal(size=shape)
    g = tl.grad(repeated, argnums=(0, 1))
    source = g.source_for(W, x)
    assert not generic_left(source), source
    close(g(W, x), (numeric_grad(repeated, (W, x), 0), numeric_grad(repeated, (W, x), 1)),
          1e-7)


def test_list_of_arrays_stays_a_loop_with_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list of same-shape arrays has a list kind without a length: its loop stays a
    loop, and its state and items have kinds in it."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(1)
    Ws, x = [rng.normal(size=(3, 3)) / 2 for _ in range(4)], rng.normal(size=(2, 3))
    g = tl.grad(over_list, argnums=(0, 1))
    source = g.source_for(Ws, x)
    assert has_loop(source) and not generic_left(source), source
    got = g(Ws, x)
    close(got, (numeric_grad(over_list, (Ws, x), 0), numeric_grad(over_list, (Ws, x), 1)),
          1e-7)
    assert type(got[0]) is list
    # (one build for lists of any length: no length in the signature)
    g(Ws[:2], x)
    assert g.compile_count == 1


def test_zip_of_lists_with_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(2)
    ps = layers(rng, [3, 3, 3, 3])
    Ws, bs = [w for w, _ in ps], [b for _, b in ps]
    x = rng.normal(size=(5, 3))
    g = tl.grad(zipped, argnums=(0, 1, 2))
    source = g.source_for(Ws, bs, x)
    assert not generic_left(source), source
    close(g(Ws, bs, x), tuple(numeric_grad(zipped, (Ws, bs, x), k) for k in range(3)), 1e-7)


# --- lists of layers: structures, unrolled ----------------------------------------------

def test_lists_of_layers_keep_their_length() -> None:
    rng = np.random.default_rng(3)
    ps = layers(rng, [4, 4, 4])
    k = value_kind(ps)
    assert k == ListItemsKind((value_kind(ps[0]),) * 2)
    assert value_kind(ps[:1]) != k


@pytest.mark.parametrize("widths", [[3, 3], [4, 4, 4], [3, 3, 3, 3, 3], [2, 2, 2, 2]])
@pytest.mark.parametrize("container", [list, tuple])
def test_gradient_of_layers(monkeypatch: pytest.MonkeyPatch, widths: list[int],
                            container: type) -> None:
    """Depths 1 to 4, layers of one shape or not, a list or a tuple: the loop over the
    layers unrolled, straight-line code without generic helpers, the gradient a list or
    a tuple of triples as the argument is, equal to finite differences."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(len(widths))
    params = container((W, b, rng.uniform(0.5, 1.5, size=b.shape)) for W, b in layers(rng, widths))
    x = rng.normal(size=(3, widths[0]))
    g = tl.grad(residual)
    source = g.source_for(params, x)
    assert not has_loop(source) and not generic_left(source), source
    got = g(params, x)
    assert type(got) is container and all(type(t) is tuple for t in got)
    close(got, numeric_grad(residual, (params, x), 0), 1e-7)


@pytest.mark.parametrize("widths", [[3, 3, 3], [4, 4, 4, 4], [5, 3, 3, 2]])
def test_enumerate_over_layers(monkeypatch: pytest.MonkeyPatch, widths: list[int]) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(7)
    params, x = layers(rng, widths), rng.normal(size=(2, widths[0]))
    g = tl.grad(enumerated, argnums=(0, 1))
    source = g.source_for(params, x)
    assert not has_loop(source) and not generic_left(source), source
    close(g(params, x), (numeric_grad(enumerated, (params, x), 0),
                         numeric_grad(enumerated, (params, x), 1)), 1e-7)


@pytest.mark.parametrize("widths", [[6, 6, 6], [6, 6, 6, 6], [6, 4, 4, 3]])
@pytest.mark.parametrize("batch", [1, 5])
def test_per_example_gradients_of_layers(monkeypatch: pytest.MonkeyPatch,
                                         widths: list[int], batch: int) -> None:
    """`tl.vmap(tl.grad(...))` over the rows of a batch, parameters a list of layers of
    one shape (or not): equal to a loop of `tl.grad` over the rows, straight-line
    batched code (no loop, no per-element fallback)."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(batch)
    params = layers(rng, widths, transposed=True)
    X, Y = rng.normal(size=(batch, widths[0])), rng.normal(size=(batch, widths[-1]))
    g = tl.grad(mse)
    v = tl.vmap(g, in_axes=(None, 0, 0))
    source = v.source_for(params, X, Y)
    assert not has_loop(source) and "call_value" not in source and \
        not generic_left(source), source
    got = v(params, X, Y)
    for i in range(batch):
        close(tl.tree_map(lambda a, i=i: a[i], got), g(params, X[i], Y[i]), 1e-12)
    close(g(params, X[0], Y[0]), numeric_grad(mse, (params, X[0], Y[0]), 0), 1e-7)


def test_a_variable_first_assigned_in_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable first assigned in a loop's body and read after it: its check is dropped
    where the loop is unrolled (`residual`'s `h`, above), and kept where it stays a loop,
    even where the gradient does not need the value (an empty loop raises)."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)

    def last(xs, w):
        for x in xs:
            y = np.tanh(x * w)
        return np.sum(y * y)

    def unused(xs, w):
        for x in xs:
            y = x * w
        return np.sum(y) + np.sum(w)

    rng = np.random.default_rng(9)
    xs, w = [rng.normal(size=3) for _ in range(4)], rng.normal(size=3)
    y = np.tanh(xs[-1] * w)
    close(tl.grad(last, argnums=1)(xs, w), 2 * y * (1 - y * y) * xs[-1])
    close(tl.grad(unused, argnums=1)(xs, w), xs[-1] + 1.0)
    for fn in (last, unused):
        with pytest.raises(UnboundLocalError, match="'y'"):
            tl.grad(fn, argnums=1)([], w)
