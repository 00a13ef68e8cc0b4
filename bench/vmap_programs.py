"""Workloads of `bench/bench_vmap.py` (issue 14), written as a user writes them for one
example, each in two spellings."""

from __future__ import annotations

import numpy as np

import tapeless as tl

# --- per-example gradients of the MLP (WORKLOADS.md's MLP, one example a column) --------

def mlp_loss(W1, b1, W2, b2, x):
    """One example `x` (a vector): the MLP's loss."""
    return np.sum(np.tanh(W2 @ np.tanh(W1 @ x + b1) + b2))


def mlp_loss_params(params, x):
    """The same, with the parameters as one tuple."""
    W1, b1, W2, b2 = params
    h = np.tanh(np.dot(W1, x) + b1)
    return np.tanh(np.dot(W2, h) + b2).sum()


def mlp_problem(batch, n=64):
    """The per-example MLP's parameters and a batch of inputs (seeded)."""
    rng = np.random.default_rng(0)
    W1, W2 = rng.normal(size=(n, n)) / 8, rng.normal(size=(n, n)) / 8
    b1, b2 = rng.normal(size=n), rng.normal(size=n)
    return W1, b1, W2, b2, rng.normal(size=(batch, n))


def per_example_hand(W1, b1, W2, b2, X):
    """Hand-written NumPy: the per-example gradients of a batch (rows of X)."""
    h = np.tanh(X @ W1.T + b1)
    o = np.tanh(h @ W2.T + b2)
    do = 1.0 - o * o
    dh = (do @ W2) * (1.0 - h * h)
    return dh[:, :, None] * X[:, None, :], dh, do[:, :, None] * h[:, None, :], do


# --- per-example gradients as in JAX's README: a list of (W, b) layers, rows x @ W, a loop

def layers_predict(params, inputs):
    """The shape of the per-example-gradient example in JAX's README (not written for
    this benchmark; `jnp` spelled `np`): a loop over a list of `(W, b)` layers."""
    for W, b in params:
        outputs = np.dot(inputs, W) + b
        inputs = np.tanh(outputs)
    return outputs


def layers_loss(params, inputs, targets):
    preds = layers_predict(params, inputs)
    return np.sum((preds - targets) ** 2)


def layers_hand(params, X, Y):
    """Hand-written NumPy: `layers_loss`'s per-example gradients for two layers (rows of
    X and Y), as the same list of `(dW, db)` pairs."""
    (W1, b1), (W2, b2) = params
    h = np.tanh(X @ W1 + b1)
    d = 2.0 * (h @ W2 + b2 - Y)
    dh = (d @ W2.T) * (1.0 - h * h)
    return [(X[:, :, None] * dh[:, None, :], dh), (h[:, :, None] * d[:, None, :], d)]


# --- MAML on sinusoid regression (Finn et al. 2017): a 1-40-40-1 tanh MLP ---------------

def mlp40(params, x):
    W1, b1, W2, b2, W3, b3 = params
    h = np.tanh(x @ W1 + b1)
    h = np.tanh(h @ W2 + b2)
    return h @ W3 + b3


def mse(params, x, y):
    return np.mean((mlp40(params, x) - y) ** 2)


def task_loss(params, task):
    """Five inner SGD steps on the support set, then the loss on the query set."""
    xs, ys, xq, yq = task
    p = params
    for _ in range(5):
        g = tl.grad(mse)(p, xs, ys)
        p = (p[0] - 0.01 * g[0], p[1] - 0.01 * g[1], p[2] - 0.01 * g[2],
             p[3] - 0.01 * g[3], p[4] - 0.01 * g[4], p[5] - 0.01 * g[5])
    return mse(p, xq, yq)


def meta_loss_vmap(params, tasks):
    return np.mean(tl.vmap(task_loss, in_axes=(None, 0))(params, tasks))


def meta_loss_loop(params, tasks):
    xs, ys, xq, yq = tasks
    total = 0.0
    for i in range(xs.shape[0]):
        total = total + task_loss(params, (xs[i], ys[i], xq[i], yq[i]))
    return total / xs.shape[0]


def maml_data(seed: int = 0, tasks: int = 8, shots: int = 10):
    rng = np.random.default_rng(seed)
    sizes = [(1, 40), (40,), (40, 40), (40,), (40, 1), (1,)]
    params = tuple(rng.normal(size=s) * (0.5 if len(s) == 2 else 0.0) for s in sizes)
    amp = rng.uniform(0.1, 5.0, size=(tasks, 1, 1))
    phase = rng.uniform(0, np.pi, size=(tasks, 1, 1))
    xs = rng.uniform(-5, 5, size=(tasks, shots, 1))
    xq = rng.uniform(-5, 5, size=(tasks, shots, 1))
    return params, (xs, amp * np.sin(xs + phase), xq, amp * np.sin(xq + phase))


# --- Newton iterations to a per-element tolerance (a data-dependent while) ---------------

def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x


def newton_cbrt(a):
    """The same shape of loop, spelled with a step count and a break."""
    x = a
    steps = 0
    while True:
        step = (x * x * x - a) / (3.0 * x * x)
        x = x - step
        steps += 1
        if abs(step) <= 1e-12 * abs(x):
            break
    return x
