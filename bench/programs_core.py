"""Programs for the compiler-core benchmarks (`bench/bench_core.py`).

`train_step` is the "realistic 50-line function" whose compile latency is measured; the
other functions are the CPython-vs-compiled overhead workloads.
"""

import math

import numpy as np


def train_step(params, x, y, lr, steps):
    """A few steps of a two-layer tanh MLP trained by hand-written gradient descent,
    with gradient clipping, a learning-rate schedule and early stopping."""
    (w1, b1), (w2, b2) = params

    def forward(w1, b1, w2, b2, x):
        h = np.tanh(x @ w1 + b1)
        return h, h @ w2 + b2

    def clip(g, limit):
        norm = np.sqrt(np.sum(g * g))
        if norm > limit:
            return g * (limit / norm)
        return g

    n = x.shape[0]
    history = []
    best, stall = math.inf, 0
    for step in range(steps):
        h, out = forward(w1, b1, w2, b2, x)
        err = out - y
        loss = np.mean(err ** 2)
        if loss < best - 1e-9:
            best, stall = loss, 0
        else:
            stall = stall + 1
        if stall > 3:
            break
        d_out = 2.0 * err / n
        g_w2 = h.T @ d_out
        g_b2 = np.sum(d_out, axis=0)
        d_h = (d_out @ w2.T) * (1.0 - h ** 2)
        g_w1 = x.T @ d_h
        g_b1 = np.sum(d_h, axis=0)
        scale = lr / (1.0 + 0.1 * step) if step > 0 else lr
        w1 = w1 - scale * clip(g_w1, 10.0)
        b1 = b1 - scale * clip(g_b1, 10.0)
        w2 = w2 - scale * clip(g_w2, 10.0)
        b2 = b2 - scale * clip(g_b2, 10.0)
        history = history + [loss]
    k = 0
    total = 0.0
    while k < len(history):
        total = total + history[k]
        k += 1
    mean_loss = total / max(len(history), 1)
    return ((w1, b1), (w2, b2)), best, mean_loss


def scalar_for(x, n):
    """A scalar `for` loop: interpreter-bound."""
    for i in range(n):
        x = math.sin(x) * 1.01 + i * 1e-9
    return x


def scalar_while(x, n):
    """The same loop written as a `while`."""
    i = 0
    while i < n:
        x = math.sin(x) * 1.01 + i * 1e-9
        i += 1
    return x


def array_mlp(w1, w2, w3, x, reps):
    """Array code dominated by NumPy calls (256x256 matmuls and tanh)."""
    h = x
    for _ in range(reps):
        h = np.tanh(h @ w1)
        h = np.tanh(h @ w2) + h
        h = h @ w3 / 16.0
    return np.sum(h * h)


def make_train_inputs(seed=0):
    rng = np.random.default_rng(seed)
    params = ((rng.normal(size=(8, 16)) / 4, np.zeros(16)),
              (rng.normal(size=(16, 1)) / 4, np.zeros(1)))
    x = rng.normal(size=(32, 8))
    y = np.sin(x.sum(axis=1, keepdims=True))
    return params, x, y, 0.05, 20


def make_array_inputs(size=256, seed=0):
    rng = np.random.default_rng(seed)
    w1, w2, w3 = (rng.normal(size=(size, size)) / math.sqrt(size) for _ in range(3))
    x = rng.normal(size=(size, size))
    return w1, w2, w3, x
