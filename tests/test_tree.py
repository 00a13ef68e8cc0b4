"""`tl.tree_map`, `tl.tree_leaves`, `tl.tree_structure`, `tl.tree_unflatten` (JAX's names):
in Python, and inside compiled code, where they are differentiated (an Adam update over a
dict or a dataclass of parameters compiles as written)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl


@dataclass(frozen=True)
class Layer:
    w: np.ndarray
    b: float


class Pair(NamedTuple):
    first: float
    second: np.ndarray


def make_params() -> dict:
    rng = np.random.default_rng(0)
    return {"out": Layer(rng.normal(size=3), 0.25), "hidden": [rng.normal(size=(2, 3)), None],
            "extra": Pair(-0.5, rng.normal(size=2))}


def test_leaves_structure_and_map_in_python() -> None:
    params = make_params()
    leaves = tl.tree_leaves(params)
    # Dict keys sorted (as JAX orders them), None has no leaves, records by field order.
    assert [np.shape(x) for x in leaves] == [(), (2,), (2, 3), (3,), ()]
    doubled = tl.tree_map(lambda x: x * 2.0, params)
    assert type(doubled["out"]) is Layer and type(doubled["extra"]) is Pair
    assert doubled["hidden"][1] is None and list(doubled) == list(params)
    np.testing.assert_array_equal(doubled["out"].w, 2.0 * params["out"].w)
    tree = tl.tree_structure(params)
    assert tree.num_leaves == 5
    rebuilt = tl.tree_unflatten(tree, [x + 1.0 for x in leaves])
    np.testing.assert_array_equal(rebuilt["hidden"][0], params["hidden"][0] + 1.0)
    summed = tl.tree_map(lambda a, b: a + b, params, doubled)
    assert summed["out"].b == pytest.approx(0.75)


def adam_step(params, grads, m, v, lr):
    m = tl.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
    v = tl.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
    params = tl.tree_map(lambda p, m, v: p - lr * m / (np.sqrt(v) + 1e-8), params, m, v)
    return params, m, v


def loss(params, x):
    layer = params["out"]
    h = np.tanh(x @ params["hidden"][0].T)
    return np.sum((h @ layer.w[:2] + layer.b) ** 2) + np.sum(params["extra"].second ** 2) * \
        params["extra"].first ** 2


def trained_loss(params, x):
    # Two Adam steps inside the function differentiated: second order through tree_map.
    m = tl.tree_map(lambda p: p * 0.0, params)
    v = tl.tree_map(lambda p: p * 0.0 + 1.0, params)
    for _ in range(2):
        grads = tl.grad(loss)(params, x)
        params, m, v = adam_step(params, grads, m, v, 0.05)
    return loss(params, x)


def test_adam_over_a_tree_of_parameters_compiles(optimize: str) -> None:
    params = make_params()
    x = np.random.default_rng(1).normal(size=(4, 3))
    grads = tl.grad(loss)(params, x)
    zeros = tl.tree_map(lambda p: p * 0.0, params)
    ones = tl.tree_map(lambda p: p * 0.0 + 1.0, params)
    got = tl.jit(adam_step)(params, grads, zeros, ones, 0.1)
    want = adam_step(params, grads, zeros, ones, 0.1)
    for a, b in zip(tl.tree_leaves(got), tl.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert tl.jit(trained_loss)(params, x) == pytest.approx(trained_loss(params, x), rel=1e-12)
    g = tl.grad(trained_loss)(params, x)
    assert type(g["out"]) is Layer and g["hidden"][1] is None
    check_directional(g, trained_loss, (params, x), (0,), np.random.default_rng(2), rtol=1e-5)


def test_trees_of_different_structures_are_refused(optimize: str) -> None:
    def add(a, b):
        return tl.tree_map(lambda x, y: x + y, a, b)

    for fn in (add, tl.jit(add)):
        with pytest.raises(ValueError, match="one structure"):
            fn((1.0, 2.0), (1.0,))
