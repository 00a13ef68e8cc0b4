"""Programs whose optimized generated code is checked against tests/golden/*.py."""

import math

import numpy as np


def mlp(W1, b1, W2, b2, X):
    return np.sum(np.tanh(W2 @ np.tanh(W1 @ X + b1) + b2))


def small_mlp_args():
    """Arguments of `mlp`: 8 units, batch 5."""
    rng = np.random.default_rng(1)
    return (rng.normal(size=(8, 8)) / 4, rng.normal(size=(8, 1)), rng.normal(size=(8, 8)) / 4,
            rng.normal(size=(8, 1)), rng.normal(size=(8, 5)))


def mlp_hand_gradient(W1, b1, W2, b2, X):
    h1 = np.tanh(W1 @ X + b1)
    h2 = np.tanh(W2 @ h1 + b2)
    g2 = 1.0 - h2 * h2
    g1 = (W2.T @ g2) * (1.0 - h1 * h1)
    return g1 @ X.T, g1.sum(axis=1, keepdims=True), g2 @ h1.T, g2.sum(axis=1, keepdims=True)


def tuple_mlp(params, x, y):
    """The demo's model: parameters as a tuple of (weight, bias) tuples."""
    (w1, b1), (w2, b2) = params
    h = np.tanh(x @ w1 + b1)
    out = h @ w2 + b2
    return np.mean((out - y) ** 2)


def scalar_loop(x):
    for _ in range(1000):
        x = math.sin(x) * 1.01
    return x


def branchy(x, y):
    if x > y:
        z = x * y
    else:
        z = math.exp(x) - y
    return z * z


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x


def cell(h, x, w):
    return math.tanh(w * h + x)


def nested_loops(w, xs):
    """A recurrent cell called in a loop over layers inside a loop over time: the
    backpropagator of each call is rebuilt from saved values, not saved as a closure."""
    total = 0.0
    for x in xs:
        h = x
        for _ in range(3):
            h = cell(h, x, w)
        total = total + h * h
    return total


def rows_through_layers(state, weights, steps):
    """Lists of arrays carried by loops (a list that starts empty, filled in a loop):
    their elements' shapes are known, so `x.shape[0]` and the slices fold."""
    st = [state[i] for i in range(state.shape[0])]
    for _ in range(steps):
        new = []
        for j in range(len(st)):
            g = np.concatenate([st[j], st[j]]) * weights[j]
            b = st[j].shape[0]
            new = new + [np.tanh(g[0:b] * g[b:2 * b])]
        st = new
    return np.sum(st[0] * st[-1])


def recursive_halves(x):
    if x.shape[0] == 1:
        return x[0]
    mid = x.shape[0] // 2
    return recursive_halves(x[:mid]) + recursive_halves(x[mid:]) * 2.0


def slices_of_one_array(x):
    a = x[0:3]
    b = x[3:6]
    return np.sum(np.tanh(a) * b) + x[1] * x[4] - np.sum(-a * b / 2.0)


def logsumexp(a, axis):
    mx = np.max(a, axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(a - mx), axis=axis)) + np.squeeze(mx, axis=axis)


def mixture_log_likelihood(scores, alpha):
    """The log-sum-exp terms of the GMM objective (scores: K x n, alpha: K): the gradient
    is two softmaxes, without the max's tie bookkeeping."""
    return np.sum(logsumexp(scores, 0)) - scores.shape[1] * logsumexp(alpha, 0)


def gated_layers(params, state, xs):
    """The LSTM benchmark's shape, small: a list of per-layer states carried through a
    loop over time, rebuilt by a loop over layers (`new = new + [h, s]`), each layer a
    gated cell on a concatenation of its input and its state."""
    st = [state[i] for i in range(state.shape[0])]
    total = 0.0
    for t in range(xs.shape[0]):
        x = xs[t]
        new = []
        for j in range(len(st) // 2):
            b = x.shape[0]
            g = np.concatenate([x, st[2 * j], x]) * params[2 * j] + params[2 * j + 1]
            f = 1.0 / (1.0 + np.exp(-g[0:b]))
            s = st[2 * j + 1] * f + np.tanh(g[b:2 * b]) * g[2 * b:3 * b]
            h = f * np.tanh(s)
            new = new + [h, s]
            x = h
        st = new
        total = total + np.sum(x * xs[t])
    return total / xs.shape[0]
