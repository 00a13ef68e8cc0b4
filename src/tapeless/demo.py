"""`tapeless demo`: compile an example model's loss, show the code, run it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import api

Layer = tuple[np.ndarray, np.ndarray]  # (weights, bias)


def mlp_loss(params: tuple[Layer, Layer], x: np.ndarray, y: np.ndarray) -> Any:
    """A two-layer tanh network with a squared-error loss."""
    (w1, b1), (w2, b2) = params
    h = np.tanh(x @ w1 + b1)
    out = h @ w2 + b2
    return np.mean((out - y) ** 2)


def run_demo() -> int:
    rng = np.random.default_rng(0)
    params = ((rng.normal(size=(8, 16)) / 4, np.zeros(16)),
              (rng.normal(size=(16, 1)) / 4, np.zeros(1)))
    x = rng.normal(size=(32, 8))
    y = np.sin(x.sum(axis=1, keepdims=True))
    loss = api.jit(mlp_loss)
    print("tapeless demo: a two-layer MLP loss, compiled ahead of time\n")
    print("# IR")
    print(api.ir(mlp_loss))
    print("# generated Python")
    print(loss.source)
    t0 = time.perf_counter()
    value = loss(params, x, y)
    t1 = time.perf_counter()
    expected = mlp_loss(params, x, y)
    print(f"loss (compiled) = {value:.12f}   ({(t1 - t0) * 1e3:.1f} ms including compilation)")
    print(f"loss (CPython)  = {expected:.12f}")
    if not np.isclose(value, expected, rtol=1e-12):
        print("MISMATCH")
        return 1
    try:
        from . import grad
    except ImportError:
        return 0
    g = grad(mlp_loss)
    grads = g(params, x, y)
    print("\n# generated gradient code (specialized to these arguments' shapes)")
    print(g.source_for(params, x, y))
    print("gradient norms:", [float(np.linalg.norm(d)) for layer in grads for d in layer])
    # one entry of the gradient against a central finite difference
    h = 1e-6
    w1 = params[0][0]
    bumped = [w1.copy(), w1.copy()]
    bumped[0][2, 3] += h
    bumped[1][2, 3] -= h
    fd = (mlp_loss(((bumped[0], params[0][1]), params[1]), x, y) -
          mlp_loss(((bumped[1], params[0][1]), params[1]), x, y)) / (2 * h)
    print(f"d loss / d w1[2, 3] = {grads[0][0][2, 3]:.9f} (finite difference {fd:.9f})")
    if not np.isclose(grads[0][0][2, 3], fd, rtol=1e-5, atol=1e-9):
        print("MISMATCH")
        return 1
    return 0
