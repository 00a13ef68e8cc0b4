"""Hand-written NumPy gradients of the workloads in bench/workloads.py: the reference every
tool's gradient is checked against, and the speed (and memory) baseline.

Each forward pass follows the formulation of the corresponding function in
bench/workloads.py operation for operation (so the comparison is of differentiation, not
of formulations), keeps what the backward pass needs, and the backward pass is derived by
hand. `check_against_fd` checks each one against central finite differences.
"""

from __future__ import annotations

import math

import numpy as np

# --- MLP ------------------------------------------------------------------------------


def mlp_grad(W1, b1, W2, b2, X):
    h = np.tanh(W1 @ X + b1)
    o = np.tanh(W2 @ h + b2)
    d2 = 1.0 - o * o
    gW2 = d2 @ h.T
    gb2 = np.sum(d2, axis=1, keepdims=True)
    d1 = (W2.T @ d2) * (1.0 - h * h)
    gW1 = d1 @ X.T
    gb1 = np.sum(d1, axis=1, keepdims=True)
    return gW1, gb1, gW2, gb2


# --- scalar loop ------------------------------------------------------------------------


def scalar_loop_grad(x):
    """Forward loop saving every x, then the backward loop."""
    xs = []
    for _ in range(1000):
        xs.append(x)
        x = math.sin(x) * 1.01
    g = 1.0
    for x in reversed(xs):
        g = g * (math.cos(x) * 1.01)
    return g


# --- GMM ------------------------------------------------------------------------------


def _lower_positions(d):
    """Row and column indices of the strict lower triangle, column by column (l's order)."""
    rows = [i for j in range(d) for i in range(j + 1, d)]
    cols = [j for j in range(d) for i in range(j + 1, d)]
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def gmm_grad(alpha, mu, q, l, x, idx, gamma, m):
    """Gradient of workloads.gmm_objective with respect to (alpha, mu, q, l)."""
    n, d = x.shape
    K = alpha.shape[0]
    qexp = np.exp(q)
    packed = np.concatenate([np.zeros((K, 1)), qexp, l], axis=1)
    Q = packed[:, idx]                                      # K x d x d
    xc = x[None, :, :] - mu[:, None, :]                     # K x n x d
    Qx = xc @ np.swapaxes(Q, 1, 2)                          # K x n x d
    main = (alpha + np.sum(q, axis=1))[:, None] - 0.5 * np.sum(Qx * Qx, axis=2)
    mx = np.max(main, axis=0)
    w = np.exp(main - mx)
    w /= np.sum(w, axis=0)                                  # softmax over k: K x n
    # backward
    wsum = np.sum(w, axis=1)                                # K
    a = np.exp(alpha - np.max(alpha))
    d_alpha = wsum - n * (a / np.sum(a))
    dQx = Qx * (-w[:, :, None])                             # K x n x d
    dQ = np.swapaxes(dQx, 1, 2) @ xc                        # K x d x d
    d_mu = -np.sum(dQx @ Q, axis=1)                         # K x d
    diag = np.arange(d)
    rows, cols = _lower_positions(d)
    d_q = wsum[:, None] + dQ[:, diag, diag] * qexp - gamma * gamma * qexp * qexp + m
    d_l = dQ[:, rows, cols] - gamma * gamma * l
    return d_alpha, d_mu, d_q, d_l


# --- LSTM -----------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_grad(main_params, extra_params, state, sequence):
    """Gradient of workloads.lstm_objective with respect to (main_params, extra_params)."""
    c, b = sequence.shape
    layers = state.shape[0] // 2
    w = [main_params[2 * j] for j in range(layers)]
    v = [main_params[2 * j + 1] for j in range(layers)]
    hs = [state[2 * j] for j in range(layers)]
    ss = [state[2 * j + 1] for j in range(layers)]
    tape = []
    for t in range(c - 1):
        inp0 = sequence[t]
        x = inp0 * extra_params[0]
        cells = []
        for j in range(layers):
            h, s = hs[j], ss[j]
            cat = np.concatenate([x, h, x, h])
            g = cat * w[j] + v[j]
            f = _sigmoid(g[0:b])
            i = _sigmoid(g[b:2 * b])
            o = _sigmoid(g[2 * b:3 * b])
            ch = np.tanh(g[3 * b:4 * b])
            s2 = s * f + i * ch
            T = np.tanh(s2)
            h2 = o * T
            cells.append((cat, s, f, i, o, ch, T))
            hs[j], ss[j] = h2, s2
            x = h2
        y = x * extra_params[1] + extra_params[2]
        e = np.exp(y)
        tape.append((inp0, cells, x, e / np.sum(e)))
    scale = -1.0 / ((c - 1) * b)
    d_main = np.zeros_like(main_params)
    d_extra = np.zeros_like(extra_params)
    dh = [np.zeros(b) for _ in range(layers)]
    ds = [np.zeros(b) for _ in range(layers)]
    for t in range(c - 2, -1, -1):
        inp0, cells, xl, soft = tape[t]
        dyn = scale * sequence[t + 1]
        dy = dyn - soft * np.sum(dyn)
        d_extra[2] += dy
        d_extra[1] += dy * xl
        dx = dy * extra_params[1]
        for j in range(layers - 1, -1, -1):
            cat, s, f, i, o, ch, T = cells[j]
            dh2 = dx + dh[j]
            ds2 = ds[j] + dh2 * o * (1.0 - T * T)
            dg = np.concatenate([ds2 * s * f * (1.0 - f), ds2 * ch * i * (1.0 - i),
                                 dh2 * T * o * (1.0 - o), ds2 * i * (1.0 - ch * ch)])
            d_main[2 * j + 1] += dg
            d_main[2 * j] += dg * cat
            dcat = dg * w[j]
            dx = dcat[0:b] + dcat[2 * b:3 * b]
            dh[j] = dcat[b:2 * b] + dcat[3 * b:4 * b]
            ds[j] = ds2 * f
        d_extra[0] += dx * inp0
    return d_main, d_extra


# --- finite-difference check ----------------------------------------------------------------


def check_against_fd(f, grad, args, argnums, directions=3, eps=1e-6, rtol=1e-5, seed=1):
    """Compare the directional derivatives of `grad` with central differences of `f` along
    random directions; returns the worst relative error (relative to |grad| |direction|)."""
    rng = np.random.default_rng(seed)
    g = grad(*args)
    if not isinstance(g, tuple):
        g = (g,)
    norm = math.sqrt(sum(float(np.sum(np.square(gi))) for gi in g))
    worst = 0.0
    for _ in range(directions):
        vs = [rng.standard_normal(np.shape(args[a])) for a in argnums]
        vnorm = math.sqrt(sum(float(np.sum(vi * vi)) for vi in vs))
        vs = [vi / vnorm for vi in vs]
        plus, minus = list(args), list(args)
        for a, vi in zip(argnums, vs, strict=True):
            plus[a] = args[a] + eps * vi
            minus[a] = args[a] - eps * vi
        fd = (f(*plus) - f(*minus)) / (2 * eps)
        exact = sum(float(np.sum(gi * vi)) for gi, vi in zip(g, vs, strict=True))
        worst = max(worst, abs(fd - exact) / max(norm, 1e-300))
    if worst > rtol:
        raise AssertionError(f"hand-written gradient disagrees with finite differences "
                             f"(relative error {worst:.2e})")
    return worst
