"""Research programs written as a researcher writes them, for
tests/test_research_programs.py: ordinary NumPy/SciPy, model objects with methods,
functions passed in, `tl.grad` inside the loss, Adam over a dict compiled with
`tl.tree_map`. No in-place updates and no random draws inside compiled code."""

# ruff: noqa: B905  (zip without strict=, as researchers write it)

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

import tapeless as tl

# --- meta-learning (MAML) with the activation passed in ------------------------------


def softplus(z):
    return np.logaddexp(0.0, z)


def mlp(params, x, act):
    w1, b1, w2, b2 = params
    return act(x @ w1 + b1) @ w2 + b2


def task_loss(params, x, y, act):
    return np.mean((mlp(params, x, act) - y) ** 2)


def maml_loss(params, tasks, act, alpha=0.1, inner_steps=1):
    total = 0.0
    for x_train, y_train, x_test, y_test in tasks:
        adapted = params
        for _ in range(inner_steps):
            grads = tl.grad(task_loss)(adapted, x_train, y_train, act)
            adapted = tuple(p - alpha * g for p, g in zip(adapted, grads))
        total = total + task_loss(adapted, x_test, y_test, act)
    return total / len(tasks)


# --- a model object trained with Adam over a dict of parameters ----------------------


@dataclass(frozen=True)
class MLP:
    params: dict

    def layer(self, h, i):
        return h @ self.params[f"W{i}"] + self.params[f"b{i}"]

    def __call__(self, x):
        h = np.tanh(self.layer(x, 0))
        return self.layer(h, 1)[:, 0]

    def loss(self, x, y):
        return np.mean((self(x) - y) ** 2) + 1e-3 * self.l2()

    def l2(self):
        return sum(np.sum(w ** 2) for k, w in self.params.items() if k.startswith("W"))


def objective(params, x, y):
    return MLP(params).loss(x, y)


def model_loss(model, x, y):
    return model.loss(x, y)


@dataclass(frozen=True)
class AdamState:
    m: dict
    v: dict
    step: int


def adam_init(params):
    return AdamState(tl.tree_map(np.zeros_like, params), tl.tree_map(np.zeros_like, params), 0)


def adam_step(params, grads, state, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    step = state.step + 1
    m = tl.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.m, grads)
    v = tl.tree_map(lambda v, g: b2 * v + (1 - b2) * g ** 2, state.v, grads)
    m_hat = tl.tree_map(lambda m: m / (1 - b1 ** step), m)
    v_hat = tl.tree_map(lambda v: v / (1 - b2 ** step), v)
    new_params = tl.tree_map(lambda p, m, v: p - lr * m / (np.sqrt(v) + eps),
                             params, m_hat, v_hat)
    return new_params, AdamState(m, v, step)


def train(params, x, y, steps, loss_and_grad, update):
    state = adam_init(params)
    losses = []
    for _ in range(steps):
        value, grads = loss_and_grad(params, x, y)
        params, state = update(params, grads, state)
        losses.append(float(value))
    return params, losses


# --- a linear probe on a frozen encoder, with a standardizing preprocessor -------------


@dataclass(frozen=True)
class Encoder:
    W: np.ndarray
    b: np.ndarray

    def __call__(self, x):
        return np.tanh(x @ self.W + self.b)


class Standardize:
    def __init__(self, mean, std):
        self.mean = mean
        self.std = std

    def __call__(self, x):
        return (x - self.mean) / self.std


def probe_loss(w, x, y, encoder, preprocess):
    return np.mean((encoder(preprocess(x)) @ w - y) ** 2)


# --- a classifier using scipy.special.logsumexp ---------------------------------------


def classifier_loss(W, b, x, labels, weight_decay=1e-2):
    logits = x @ W + b
    log_probs = logits - logsumexp(logits, axis=1, keepdims=True)
    nll = -np.mean(log_probs[np.arange(x.shape[0]), labels])
    return nll + weight_decay * np.sum(W ** 2)


# --- an embedding loss over all pairs, with np.triu_indices ---------------------------


def embedding_loss(E, target_dist, margin=0.1):
    n = E.shape[0]
    i, j = np.triu_indices(n, k=1)
    diff = E[i] - E[j]
    dist = np.sqrt(np.sum(diff ** 2, axis=1) + 1e-9)
    stress = np.mean((dist - target_dist) ** 2)
    return stress + np.mean(np.maximum(margin - dist, 0.0) ** 2)


# --- a small LSTM, and an Elman RNN with a while loop ---------------------------------


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_cell(params, h, c, x):
    z = x @ params["Wx"] + h @ params["Wh"] + params["b"]
    H = h.shape[1]
    i = sigmoid(z[:, :H])
    f = sigmoid(z[:, H:2 * H])
    o = sigmoid(z[:, 2 * H:3 * H])
    g = np.tanh(z[:, 3 * H:])
    c = f * c + i * g
    h = o * np.tanh(c)
    return h, c


def lstm_loss(params, xs, ys):
    batch, hidden = xs.shape[1], params["Wh"].shape[0]
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    outputs = []
    for t in range(xs.shape[0]):
        h, c = lstm_cell(params, h, c, xs[t])
        outputs = outputs + [h @ params["Wy"]]
    preds = np.stack(outputs)[:, :, 0]
    return np.mean((preds - ys) ** 2)


def rnn_loss(W, U, xs, ys):
    h = np.zeros(W.shape[0])
    t = 0
    total = 0.0
    while t < len(xs):
        h = np.tanh(W @ h + U @ xs[t])
        total = total + (np.sum(h) - ys[t]) ** 2
        t += 1
    return total / len(xs)


# --- a Gaussian mixture's negative log-likelihood -------------------------------------


class GMM(NamedTuple):
    logits: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    log_scales: np.ndarray  # (K, D)


def gmm_nll(gmm, x):
    D = x.shape[1]
    log_weights = gmm.logits - logsumexp(gmm.logits)
    z = (x[:, None, :] - gmm.means[None, :, :]) / np.exp(gmm.log_scales)[None, :, :]
    log_comp = (-0.5 * np.sum(z ** 2, axis=2) - np.sum(gmm.log_scales, axis=1)
                - 0.5 * D * np.log(2 * np.pi))
    return -np.mean(logsumexp(log_weights + log_comp, axis=1))


# --- second order: a scalar function of tl.grad ---------------------------------------


def tree_dot(a, b):
    return sum(np.sum(u * w) for u, w in zip(tl.tree_leaves(a), tl.tree_leaves(b)))


def grad_dot(f):
    """params, v, *rest -> <grad f(params, *rest), v>, whose gradient in `params` is the
    Hessian-vector product H v."""

    def directional(params, v, *rest):
        return tree_dot(tl.grad(f)(params, *rest), v)

    return directional


def maml_directional(params, v, tasks, act):
    """<grad maml_loss, v>, written out for MAML (its activation is an argument of its
    own: see the xfail in tests/test_research_programs.py)."""
    return tree_dot(tl.grad(maml_loss)(params, tasks, act), v)


def train_step(params, state, x, y):
    """One compiled step: the loss and its gradient, then Adam."""
    value, grads = tl.value_and_grad(objective)(params, x, y)
    params, state = adam_step(params, grads, state)
    return params, state, value


# --- a determinant by recursive Laplace expansion (tests of activity, sparse
# sensitivities and the native backend) ------------------------------------------------

def det_minor(A, row, cols):
    """Laplace expansion over a list of remaining columns (ints) and a row index."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    sign = 1.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        total = total + sign * A[row, cols[k]] * det_minor(A, row + 1, rest)
        sign = -sign
    return total


def det_laplace(A):
    return det_minor(A, 0, list(range(A.shape[0])))


def det_minor_filter(A, row, cols):
    """The same expansion, spelled with enumerate and a list comprehension."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        rest = [d for d in cols if d != c]
        term = A[row, c] * det_minor_filter(A, row + 1, rest)
        total = total + term if k % 2 == 0 else total - term
    return total


def det_laplace_filter(A):
    return det_minor_filter(A, 0, list(range(A.shape[0])))


# --- a recursive walk over the diagonal (tests of scalar specialization and lifted
# backpropagators) ------------------------------------------------------------------

def walk(A, i):
    n = A.shape[0]
    if i == n:
        return 0.0
    return A[i, i] * A[i, (3 * i) % n] + walk(A, i + 1)


def walk_energy(A):
    return walk(A, 0)
