"""Second spellings of the benchmark workloads for `bench_forward.py`, as a user might write
them (a loop over layers, a `while` loop, einsum and scipy's logsumexp), and functions
made fresh for first-call timings."""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np
from scipy.special import logsumexp
from workloads import log_gamma_distrib


def mlp_layers(W1, b1, W2, b2, X):
    h = X
    for W, b in ((W1, b1), (W2, b2)):
        h = np.tanh(np.matmul(W, h) + b)
    return h.sum()


def scalar_loop_while(x):
    i = 0
    while i < 1000:
        x = math.sin(x) * 1.01
        i += 1
    return x


def gmm_einsum(alpha, mu, q, l, x, idx, gamma, m):
    n, d = x.shape
    K = alpha.shape[0]
    qexp = np.exp(q)
    packed = np.concatenate([np.zeros((K, 1)), qexp, l], axis=1)
    Q = packed[:, idx]
    xc = x[None, :, :] - mu[:, None, :]
    Qx = np.einsum("kij,knj->kni", Q, xc)
    main = (alpha + q.sum(axis=1))[:, None] - 0.5 * np.einsum("kni,kni->kn", Qx, Qx)
    slse = logsumexp(main, axis=0).sum()
    prior = -0.5 * gamma ** 2 * ((qexp ** 2).sum() + (l ** 2).sum()) + m * q.sum()
    n2 = d + m + 1
    const = (-n * d * 0.5 * math.log(2.0 * math.pi)
             + K * (n2 * d * math.log(gamma / math.sqrt(2.0))
                    - log_gamma_distrib(0.5 * n2, d)))
    return const + slse - n * logsumexp(alpha) + prior


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_loop(x):
    total = 0.0
    for i in range(x.shape[0] - 1):
        total = total + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


def _copy(fn: Any) -> Any:
    """A new function object with `fn`'s code: compiled anew (tapeless caches by function)."""
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                             fn.__closure__)
    new.__qualname__ = fn.__qualname__
    return new


def fresh_mlp() -> Any:
    from workloads import mlp

    return _copy(mlp)


def fresh_rosenbrock() -> Any:
    return _copy(rosenbrock)
