"""The workloads written for the peer tools, as a user of each tool would write them:
HIPS autograd (`autograd.numpy`), JAX (`jax.numpy`, `jit`, `lax.fori_loop` / `lax.scan`)
and PyTorch eager on the CPU. Each computes exactly the function of bench/workloads.py;
where a tool has its own log-sum-exp or sigmoid, the idiomatic one is used.

The workloads are written once, over an `Ops` record of the few array functions whose
names or signatures differ between the tools (PyTorch's `dim=` for NumPy's `axis=`, its
`cat` for `concatenate`, ...); loops are Python loops, except under JAX, which traces
them: its scalar loop is a `lax.fori_loop` and its LSTM a `lax.scan` over the same step.

Each `*_setup` function takes the NumPy inputs of a workload and returns
`(primal, gradient, to_numpy)`: two argument-less callables that run the objective and
its gradient on inputs already converted for the tool (JAX results are blocked until
ready), and a function converting the gradient's result to a tuple of NumPy arrays.
JAX and torch are imported lazily, so this module can be imported without them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ops:
    """One tool's array functions, with NumPy's signatures."""

    exp: Callable
    tanh: Callable
    sin: Callable
    sum: Callable         # sum(x, axis=None)
    concatenate: Callable  # concatenate(list, axis=0)
    zeros: Callable       # zeros(shape), float64
    swapaxes: Callable    # swapaxes(x, a, b)
    logsumexp: Callable   # logsumexp(x, axis)
    sigmoid: Callable


def _wishart_constant(n, d, K, gamma, m):
    """The constant part of the GMM objective (plain Python; all tools use it)."""
    n2 = d + m + 1
    lgd = 0.25 * d * (d - 1) * math.log(math.pi)
    for j in range(1, d + 1):
        lgd += math.lgamma(0.5 * n2 + 0.5 * (1 - j))
    return (-n * d * 0.5 * math.log(2.0 * math.pi)
            + K * (n2 * d * math.log(gamma / math.sqrt(2.0)) - lgd))


# --- the workloads, once ------------------------------------------------------------------


def _mlp(o: Ops) -> Callable:
    def f(W1, b1, W2, b2, X):
        h = o.tanh(W1 @ X + b1)
        return o.sum(o.tanh(W2 @ h + b2))
    return f


def _scalar_loop(o: Ops) -> Callable:
    def f(x):
        for _ in range(1000):
            x = o.sin(x) * 1.01
        return x
    return f


def _gmm(o: Ops, args: tuple) -> Callable:
    """The objective of (alpha, mu, q, l, x, idx); gamma, m and the constant are fixed."""
    alpha0, _, _, _, x0, _, gamma, m = args
    n, d = x0.shape
    K = alpha0.shape[0]
    const = _wishart_constant(n, d, K, gamma, m)

    def f(alpha, mu, q, l, x, idx):
        qexp = o.exp(q)
        packed = o.concatenate([o.zeros((K, 1)), qexp, l], axis=1)
        Q = packed[:, idx]
        xc = x[None, :, :] - mu[:, None, :]
        Qx = xc @ o.swapaxes(Q, 1, 2)
        main = (alpha + o.sum(q, axis=1))[:, None] - 0.5 * o.sum(Qx * Qx, axis=2)
        prior = (-0.5 * gamma * gamma * (o.sum(qexp * qexp) + o.sum(l * l))
                 + m * o.sum(q))
        return const + o.sum(o.logsumexp(main, 0)) - n * o.logsumexp(alpha, 0) + prior
    return f


def _lstm_step(o: Ops, main_params, extra_params, st, x, target):
    """One character: the layers' new states (a list) and the step's log-likelihood."""
    b = x.shape[0]
    h = x * extra_params[0]
    new = []
    for j in range(len(st) // 2):
        w, v = main_params[2 * j], main_params[2 * j + 1]
        g = o.concatenate([h, st[2 * j], h, st[2 * j]]) * w + v
        s = st[2 * j + 1] * o.sigmoid(g[0:b]) + o.sigmoid(g[b:2 * b]) * o.tanh(g[3 * b:4 * b])
        h = o.sigmoid(g[2 * b:3 * b]) * o.tanh(s)
        new += [h, s]
    y = h * extra_params[1] + extra_params[2]
    return new, o.sum(target * (y - o.logsumexp(y, 0)))


def _lstm(o: Ops) -> Callable:
    def f(main_params, extra_params, state, sequence):
        c, b = sequence.shape
        st = [state[i] for i in range(state.shape[0])]
        total = 0.0
        for t in range(c - 1):
            st, term = _lstm_step(o, main_params, extra_params, st, sequence[t],
                                  sequence[t + 1])
            total = total + term
        return -total / ((c - 1) * b)
    return f


_ARGNUMS = {"mlp": (0, 1, 2, 3), "scalar": 0, "gmm": (0, 1, 2, 3), "lstm": (0, 1)}


def _workload(o: Ops, workload: str, args: tuple) -> tuple[Callable, tuple]:
    """The objective and the arguments it takes (GMM: the first six)."""
    if workload == "mlp":
        return _mlp(o), args
    if workload == "scalar":
        return _scalar_loop(o), args
    if workload == "gmm":
        return _gmm(o, args), args[:6]
    if workload == "lstm":
        return _lstm(o), args
    raise ValueError(workload)


def _tuple_to_numpy(r):
    return tuple(np.asarray(x) for x in r) if isinstance(r, tuple) else (np.asarray(r),)


# --- HIPS autograd --------------------------------------------------------------------


def autograd_setup(workload, args):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    o = Ops(exp=anp.exp, tanh=anp.tanh, sin=anp.sin, sum=anp.sum,
            concatenate=anp.concatenate, zeros=anp.zeros, swapaxes=anp.swapaxes,
            logsumexp=lambda x, axis: logsumexp(x, axis=axis),
            sigmoid=lambda x: 1.0 / (1.0 + anp.exp(-x)))
    f, fargs = _workload(o, workload, args)
    g = autograd.grad(f, _ARGNUMS[workload])
    return (lambda: f(*fargs)), (lambda: g(*fargs)), _tuple_to_numpy


# --- JAX --------------------------------------------------------------------------------


def jax_setup(workload, args, jit: bool = True):
    """`jit=False`: JAX eager, op by op (`grad` without `jit`; `lax` loops still compile
    their bodies)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax
    from jax.scipy.special import logsumexp

    o = Ops(exp=jnp.exp, tanh=jnp.tanh, sin=jnp.sin, sum=jnp.sum,
            concatenate=jnp.concatenate, zeros=jnp.zeros, swapaxes=jnp.swapaxes,
            logsumexp=lambda x, axis: logsumexp(x, axis=axis), sigmoid=jax.nn.sigmoid)
    if workload == "scalar":
        def f(x):
            return lax.fori_loop(0, 1000, lambda i, x: jnp.sin(x) * 1.01, x)
        jargs = (jnp.asarray(args[0], dtype=jnp.float64),)
    elif workload == "lstm":
        def f(main_params, extra_params, state, sequence):
            c, b = sequence.shape

            def step(carry, xs):
                st, total = carry
                new, term = _lstm_step(o, main_params, extra_params, st, *xs)
                return (jnp.stack(new), total + term), None

            (_, total), _ = lax.scan(step, (state, jnp.zeros(())),
                                     (sequence[:-1], sequence[1:]))
            return -total / ((c - 1) * b)
        jargs = tuple(jnp.asarray(a) for a in args)
    else:
        f, fargs = _workload(o, workload, args)
        jargs = tuple(jnp.asarray(a) for a in fargs)
    fj = jax.jit(f) if jit else f
    gj = jax.grad(f, _ARGNUMS[workload])
    gj = jax.jit(gj) if jit else gj

    def primal():
        return fj(*jargs).block_until_ready()

    def gradient():
        return jax.block_until_ready(gj(*jargs))

    gradient.jitted = gj
    gradient.jargs = jargs
    return primal, gradient, _tuple_to_numpy


# --- PyTorch (eager, CPU) -----------------------------------------------------------------


def torch_setup(workload, args):
    import torch

    torch.set_num_threads(1)
    o = Ops(exp=torch.exp, tanh=torch.tanh, sin=torch.sin,
            sum=lambda x, axis=None: torch.sum(x) if axis is None else torch.sum(x, dim=axis),
            concatenate=lambda xs, axis=0: torch.cat(xs, dim=axis),
            zeros=lambda shape: torch.zeros(shape, dtype=torch.float64),
            swapaxes=torch.transpose,
            logsumexp=lambda x, axis: torch.logsumexp(x, dim=axis), sigmoid=torch.sigmoid)
    f, fargs = _workload(o, workload, args)
    nums = _ARGNUMS[workload]
    nums = (nums,) if isinstance(nums, int) else nums
    tensors = [torch.tensor(a, dtype=torch.float64) if isinstance(a, float) else torch.tensor(a)
               for a in fargs]
    params = [tensors[i].requires_grad_() for i in nums]

    def primal():
        with torch.no_grad():
            return f(*tensors)

    def gradient():
        return torch.autograd.grad(f(*tensors), params)

    def to_numpy(r):
        return tuple(x.detach().numpy() for x in r)

    return primal, gradient, to_numpy
