"""The benchmark workloads of /work/shared/WORKLOADS.md, written as a user would write them
for tapeless: plain NumPy and `math`, in a module file (tapeless reads source from files).

These same functions are the plain-NumPy primal that the hand-written gradients are
compared with (bench/handwritten.py). Data generators are at the end; they are ordinary
Python, never compiled.

tapeless programs are functional (no `a[i] = v`), so:
- GMM builds the lower-triangular Q_k by gathering from a packed vector
  `[0, exp(q_k), l_k]` with a precomputed integer index matrix (`Q = packed[:, idx]`);
- the LSTM keeps its state as a list of rows and rebuilds it with list concatenation.
"""

from __future__ import annotations

import math

import numpy as np

# --- MLP ------------------------------------------------------------------------------


def mlp(W1, b1, W2, b2, X):
    h = np.tanh(W1 @ X + b1)
    return np.sum(np.tanh(W2 @ h + b2))


# --- scalar loop ------------------------------------------------------------------------


def scalar_loop(x):
    for _ in range(1000):
        x = math.sin(x) * 1.01
    return x


# --- GMM ------------------------------------------------------------------------------


def log_gamma_distrib(a, p):
    """log of the multivariate gamma function Γ_p(a)."""
    out = 0.25 * p * (p - 1) * math.log(math.pi)
    for j in range(1, p + 1):
        out = out + math.lgamma(a + 0.5 * (1 - j))
    return out


def logsumexp(a, axis):
    mx = np.max(a, axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(a - mx), axis=axis)) + np.squeeze(mx, axis=axis)


def gmm_objective(alpha, mu, q, l, x, idx, gamma, m):
    n, d = x.shape
    K = alpha.shape[0]
    qexp = np.exp(q)
    # Q_k = diag(exp(q_k)) + L_k, gathered from [0, exp(q_k), l_k] (K x d x d)
    packed = np.concatenate([np.zeros((K, 1)), qexp, l], axis=1)
    Q = packed[:, idx]
    xc = x[None, :, :] - mu[:, None, :]                     # K x n x d
    Qx = xc @ np.swapaxes(Q, 1, 2)                          # K x n x d: Q_k (x_i - mu_k)
    main = (alpha + np.sum(q, axis=1))[:, None] - 0.5 * np.sum(Qx * Qx, axis=2)   # K x n
    slse = np.sum(logsumexp(main, 0))
    prior = -0.5 * gamma * gamma * (np.sum(qexp * qexp) + np.sum(l * l)) + m * np.sum(q)
    n2 = d + m + 1
    const = (-n * d * 0.5 * math.log(2.0 * math.pi)
             + K * (n2 * d * math.log(gamma / math.sqrt(2.0))
                    - log_gamma_distrib(0.5 * n2, d)))
    return const + slse - n * logsumexp(alpha, 0) + prior


# --- LSTM -----------------------------------------------------------------------------


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_model(weight, bias, hidden, cell, inp):
    b = hidden.shape[0]
    gates = np.concatenate([inp, hidden, inp, hidden]) * weight + bias
    forget = sigmoid(gates[0:b])
    ingate = sigmoid(gates[b:2 * b])
    outgate = sigmoid(gates[2 * b:3 * b])
    change = np.tanh(gates[3 * b:4 * b])
    cell = cell * forget + ingate * change
    hidden = outgate * np.tanh(cell)
    return hidden, cell


def lstm_predict(main_params, extra_params, state, inp):
    x = inp * extra_params[0]
    new_state = []
    for j in range(len(state) // 2):
        h, s = lstm_model(main_params[2 * j], main_params[2 * j + 1],
                          state[2 * j], state[2 * j + 1], x)
        new_state = new_state + [h, s]
        x = h
    return x * extra_params[1] + extra_params[2], new_state


def lstm_objective(main_params, extra_params, state, sequence):
    c, b = sequence.shape
    st = [state[i] for i in range(state.shape[0])]
    total = 0.0
    x = sequence[0]
    for t in range(c - 1):
        y, st = lstm_predict(main_params, extra_params, st, x)
        ynorm = y - np.log(np.sum(np.exp(y)))
        total = total + np.sum(sequence[t + 1] * ynorm)
        x = sequence[t + 1]
    return -total / ((c - 1) * b)


# --- warm-up function for the "warm process" compile latency ---------------------------


def warmup_function(a, b):
    return np.sum(np.tanh(a @ b) * np.exp(-a)) + np.max(a) / np.sum(b * b)


# --- data (never compiled) --------------------------------------------------------------


def mlp_data(N, B):
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((N, N)) / 8
    b1 = rng.standard_normal((N, 1))
    W2 = rng.standard_normal((N, N)) / 8
    b2 = rng.standard_normal((N, 1))
    X = rng.standard_normal((N, B))
    return W1, b1, W2, b2, X


def gmm_index(d):
    """d x d integer matrix into the packed vector [0, exp(q) (d), l (d(d-1)/2)]:
    the diagonal reads exp(q), the strict lower triangle reads l column by column,
    the upper triangle reads the leading 0."""
    idx = np.zeros((d, d), dtype=np.int64)
    for i in range(d):
        idx[i, i] = 1 + i
    pos = 1 + d
    for j in range(d):
        for i in range(j + 1, d):
            idx[i, j] = pos
            pos += 1
    return idx


def gmm_data(n, d, K):
    """(alpha, mu, q, l, x, idx, gamma, m), drawn in that order with default_rng(0)."""
    rng = np.random.default_rng(0)
    alpha = rng.standard_normal(K)
    mu = rng.uniform(size=(K, d))
    q = rng.standard_normal((K, d))
    l = rng.standard_normal((K, d * (d - 1) // 2))
    x = rng.uniform(size=(n, d))
    return alpha, mu, q, l, x, gmm_index(d), 1.0, 0


def lstm_data(layers, c, b=14):
    """(main_params, extra_params, state, sequence), drawn in that order with default_rng(0);
    the sequence's one-hot positions are `rng.integers(0, b, size=c)`."""
    rng = np.random.default_rng(0)
    main_params = rng.standard_normal((2 * layers, 4 * b)) * 0.1
    extra_params = rng.standard_normal((3, b)) * 0.1
    state = rng.standard_normal((2 * layers, b))
    sequence = np.eye(b)[rng.integers(0, b, size=c)]
    return main_params, extra_params, state, sequence


def lstm_objective_flat(main_params, extra_params, state, sequence):
    """lstm_objective with lstm_predict's layer loop written inline in the sequence loop."""
    c, b = sequence.shape
    st = [state[i] for i in range(state.shape[0])]
    total = 0.0
    x = sequence[0]
    for t in range(c - 1):
        h = x * extra_params[0]
        new_state = []
        for j in range(len(st) // 2):
            h, s = lstm_model(main_params[2 * j], main_params[2 * j + 1],
                              st[2 * j], st[2 * j + 1], h)
            new_state = new_state + [h, s]
        st = new_state
        y = h * extra_params[1] + extra_params[2]
        ynorm = y - np.log(np.sum(np.exp(y)))
        total = total + np.sum(sequence[t + 1] * ynorm)
        x = sequence[t + 1]
    return -total / ((c - 1) * b)
