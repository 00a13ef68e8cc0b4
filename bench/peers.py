"""The workloads written for the peer tools, as a user of each tool would write them:
HIPS autograd (`autograd.numpy`), JAX (`jax.numpy`, `jit`, `lax.fori_loop` / `lax.scan`)
and PyTorch eager on the CPU. Each computes exactly the function of bench/workloads.py;
where a tool has its own log-sum-exp or sigmoid, the idiomatic one is used.

Each `*_setup` function takes the NumPy inputs of a workload and returns
`(primal, gradient, to_numpy)`: two argument-less callables that run the objective and
its gradient on inputs already converted for the tool (JAX results are blocked until
ready), and a function converting the gradient's result to a tuple of NumPy arrays.
JAX and torch are imported lazily, so this module can be imported without them.
"""

from __future__ import annotations

import math

import numpy as np


def _wishart_constant(n, d, K, gamma, m):
    """The constant part of the GMM objective (plain Python; all tools use it)."""
    n2 = d + m + 1
    lgd = 0.25 * d * (d - 1) * math.log(math.pi)
    for j in range(1, d + 1):
        lgd += math.lgamma(0.5 * n2 + 0.5 * (1 - j))
    return (-n * d * 0.5 * math.log(2.0 * math.pi)
            + K * (n2 * d * math.log(gamma / math.sqrt(2.0)) - lgd))


# --- HIPS autograd --------------------------------------------------------------------


def autograd_setup(workload, args):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    if workload == "mlp":
        def f(W1, b1, W2, b2, X):
            h = anp.tanh(W1 @ X + b1)
            return anp.sum(anp.tanh(W2 @ h + b2))
        argnums = (0, 1, 2, 3)
    elif workload == "scalar":
        def f(x):
            for _ in range(1000):
                x = anp.sin(x) * 1.01
            return x
        argnums = 0
    elif workload == "gmm":
        alpha0, mu0, q0, l0, x0, idx0, gamma0, m0 = args

        def f(alpha, mu, q, l, x, idx, gamma, m):
            n, d = x.shape
            K = alpha.shape[0]
            qexp = anp.exp(q)
            packed = anp.concatenate([anp.zeros((K, 1)), qexp, l], axis=1)
            Q = packed[:, idx]
            xc = x[None, :, :] - mu[:, None, :]
            Qx = xc @ anp.swapaxes(Q, 1, 2)
            main = (alpha + anp.sum(q, axis=1))[:, None] - 0.5 * anp.sum(Qx * Qx, axis=2)
            prior = (-0.5 * gamma * gamma * (anp.sum(qexp * qexp) + anp.sum(l * l))
                     + m * anp.sum(q))
            return (_wishart_constant(n, d, K, gamma, m) + anp.sum(logsumexp(main, axis=0))
                    - n * logsumexp(alpha) + prior)
        argnums = (0, 1, 2, 3)
    elif workload == "lstm":
        def sigmoid(x):
            return 1.0 / (1.0 + anp.exp(-x))

        def f(main_params, extra_params, state, sequence):
            c, b = sequence.shape
            layers = state.shape[0] // 2
            st = [state[i] for i in range(2 * layers)]
            total = 0.0
            x = sequence[0]
            for t in range(c - 1):
                h = x * extra_params[0]
                new = []
                for j in range(layers):
                    w, v = main_params[2 * j], main_params[2 * j + 1]
                    g = anp.concatenate([h, st[2 * j], h, st[2 * j]]) * w + v
                    s = (st[2 * j + 1] * sigmoid(g[0:b])
                         + sigmoid(g[b:2 * b]) * anp.tanh(g[3 * b:4 * b]))
                    h = sigmoid(g[2 * b:3 * b]) * anp.tanh(s)
                    new += [h, s]
                st = new
                y = h * extra_params[1] + extra_params[2]
                total = total + anp.sum(sequence[t + 1] * (y - logsumexp(y)))
                x = sequence[t + 1]
            return -total / ((c - 1) * b)
        argnums = (0, 1)
    else:
        raise ValueError(workload)
    g = autograd.grad(f, argnums)

    def to_numpy(r):
        return tuple(np.asarray(x) for x in r) if isinstance(r, tuple) else (np.asarray(r),)

    return (lambda: f(*args)), (lambda: g(*args)), to_numpy


# --- JAX --------------------------------------------------------------------------------


def jax_setup(workload, args):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax
    from jax.scipy.special import logsumexp

    if workload == "mlp":
        def f(W1, b1, W2, b2, X):
            h = jnp.tanh(W1 @ X + b1)
            return jnp.sum(jnp.tanh(W2 @ h + b2))
        argnums = (0, 1, 2, 3)
        jargs = tuple(jnp.asarray(a) for a in args)
    elif workload == "scalar":
        def f(x):
            return lax.fori_loop(0, 1000, lambda i, x: jnp.sin(x) * 1.01, x)
        argnums = 0
        jargs = (jnp.asarray(args[0], dtype=jnp.float64),)
    elif workload == "gmm":
        alpha0, mu0, q0, l0, x0, idx0, gamma, m = args
        n, d = x0.shape
        K = alpha0.shape[0]
        const = _wishart_constant(n, d, K, gamma, m)

        def f(alpha, mu, q, l, x, idx):
            qexp = jnp.exp(q)
            packed = jnp.concatenate([jnp.zeros((K, 1)), qexp, l], axis=1)
            Q = packed[:, idx]
            xc = x[None, :, :] - mu[:, None, :]
            Qx = xc @ jnp.swapaxes(Q, 1, 2)
            main = (alpha + jnp.sum(q, axis=1))[:, None] - 0.5 * jnp.sum(Qx * Qx, axis=2)
            prior = (-0.5 * gamma * gamma * (jnp.sum(qexp * qexp) + jnp.sum(l * l))
                     + m * jnp.sum(q))
            return (const + jnp.sum(logsumexp(main, axis=0)) - n * logsumexp(alpha) + prior)
        argnums = (0, 1, 2, 3)
        jargs = tuple(jnp.asarray(a) for a in args[:6])
    elif workload == "lstm":
        def f(main_params, extra_params, state, sequence):
            c, b = sequence.shape
            layers = state.shape[0] // 2

            def step(carry, xs):
                st, total = carry
                x, target = xs
                h = x * extra_params[0]
                new = []
                for j in range(layers):
                    w, v = main_params[2 * j], main_params[2 * j + 1]
                    g = jnp.concatenate([h, st[2 * j], h, st[2 * j]]) * w + v
                    s = (st[2 * j + 1] * jax.nn.sigmoid(g[0:b])
                         + jax.nn.sigmoid(g[b:2 * b]) * jnp.tanh(g[3 * b:4 * b]))
                    h = jax.nn.sigmoid(g[2 * b:3 * b]) * jnp.tanh(s)
                    new += [h, s]
                y = h * extra_params[1] + extra_params[2]
                total = total + jnp.sum(target * (y - logsumexp(y)))
                return (jnp.stack(new), total), None

            (_, total), _ = lax.scan(step, (state, jnp.zeros(())),
                                     (sequence[:-1], sequence[1:]))
            return -total / ((c - 1) * b)
        argnums = (0, 1)
        jargs = tuple(jnp.asarray(a) for a in args)
    else:
        raise ValueError(workload)
    fj = jax.jit(f)
    gj = jax.jit(jax.grad(f, argnums))

    def primal():
        return fj(*jargs).block_until_ready()

    def gradient():
        return jax.block_until_ready(gj(*jargs))

    def to_numpy(r):
        return tuple(np.asarray(x) for x in r) if isinstance(r, tuple) else (np.asarray(r),)

    gradient.jitted = gj
    gradient.jargs = jargs
    return primal, gradient, to_numpy


# --- PyTorch (eager, CPU) -----------------------------------------------------------------


def torch_setup(workload, args):
    import torch

    torch.set_num_threads(1)
    if workload == "mlp":
        def f(W1, b1, W2, b2, X):
            h = torch.tanh(W1 @ X + b1)
            return torch.sum(torch.tanh(W2 @ h + b2))
        params = [torch.tensor(a, requires_grad=True) for a in args[:4]]
        data = [torch.tensor(args[4])]
    elif workload == "scalar":
        def f(x):
            for _ in range(1000):
                x = torch.sin(x) * 1.01
            return x
        params = [torch.tensor(args[0], dtype=torch.float64, requires_grad=True)]
        data = []
    elif workload == "gmm":
        alpha0, mu0, q0, l0, x0, idx0, gamma, m = args
        n, d = x0.shape
        K = alpha0.shape[0]
        const = _wishart_constant(n, d, K, gamma, m)

        def f(alpha, mu, q, l, x, idx):
            qexp = torch.exp(q)
            packed = torch.cat([torch.zeros((K, 1), dtype=torch.float64), qexp, l], dim=1)
            Q = packed[:, idx]
            xc = x[None, :, :] - mu[:, None, :]
            Qx = xc @ torch.transpose(Q, 1, 2)
            main = (alpha + torch.sum(q, dim=1))[:, None] - 0.5 * torch.sum(Qx * Qx, dim=2)
            prior = (-0.5 * gamma * gamma * (torch.sum(qexp * qexp) + torch.sum(l * l))
                     + m * torch.sum(q))
            return (const + torch.sum(torch.logsumexp(main, dim=0))
                    - n * torch.logsumexp(alpha, dim=0) + prior)
        params = [torch.tensor(a, requires_grad=True) for a in args[:4]]
        data = [torch.tensor(x0), torch.tensor(idx0)]
    elif workload == "lstm":
        def f(main_params, extra_params, state, sequence):
            c, b = sequence.shape
            layers = state.shape[0] // 2
            st = list(state.unbind(0))
            total = 0.0
            x = sequence[0]
            for t in range(c - 1):
                h = x * extra_params[0]
                new = []
                for j in range(layers):
                    w, v = main_params[2 * j], main_params[2 * j + 1]
                    g = torch.cat([h, st[2 * j], h, st[2 * j]]) * w + v
                    s = (st[2 * j + 1] * torch.sigmoid(g[0:b])
                         + torch.sigmoid(g[b:2 * b]) * torch.tanh(g[3 * b:4 * b]))
                    h = torch.sigmoid(g[2 * b:3 * b]) * torch.tanh(s)
                    new += [h, s]
                st = new
                y = h * extra_params[1] + extra_params[2]
                total = total + torch.sum(sequence[t + 1] * (y - torch.logsumexp(y, 0)))
                x = sequence[t + 1]
            return -total / ((c - 1) * b)
        params = [torch.tensor(a, requires_grad=True) for a in args[:2]]
        data = [torch.tensor(args[2]), torch.tensor(args[3])]
    else:
        raise ValueError(workload)

    def primal():
        with torch.no_grad():
            return f(*params, *data)

    def gradient():
        return torch.autograd.grad(f(*params, *data), params)

    def to_numpy(r):
        return tuple(x.detach().numpy() for x in r)

    return primal, gradient, to_numpy
