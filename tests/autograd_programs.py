"""Array programs whose gradients tapeless and HIPS autograd must agree on (see
tests/test_grad.py). The module is loaded twice: as written (for tapeless) and with
`import numpy as np` replaced by `import autograd.numpy as np` (for autograd), so the
programs use only what both support: no in-place updates, NumPy functions and a few
array methods.

`PROGRAMS` maps each name to (argument factory, argnums)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PROGRAMS: dict[str, tuple[Callable[[Any], tuple], tuple[int, ...]]] = {}


def program(make: Callable[[Any], tuple], argnums: tuple[int, ...] = (0,)) -> Callable:
    def deco(fn: Callable) -> Callable:
        PROGRAMS[fn.__name__] = (make, argnums)
        return fn

    return deco


def _n(r: Any, *shape: int) -> Any:
    return r.normal(size=shape)


@program(lambda r: (_n(r, 4, 3), _n(r, 4), _n(r, 2, 4), _n(r, 2), _n(r, 5, 3)),
         (0, 1, 2, 3))
def mlp(w1, b1, w2, b2, x):
    h = np.tanh(x @ w1.T + b1)
    out = h @ w2.T + b2
    return np.mean(out ** 2)


@program(lambda r: (_n(r, 3, 4), _n(r, 5, 4), np.array([0, 2, 1, 1, 0])), (0,))
def softmax_cross_entropy(w, x, labels):
    logits = x @ w.T
    m = np.max(logits, axis=1, keepdims=True)
    logp = logits - m - np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
    return -np.mean(logp[np.arange(5), labels])


@program(lambda r: (_n(r, 3, 4),))
def logsumexp_stable(x):
    m = np.max(x, axis=-1, keepdims=True)
    return np.sum(m[..., 0] + np.log(np.sum(np.exp(x - m), axis=-1)))


@program(lambda r: (_n(r, 3), _n(r, 3, 2), _n(r, 3, 2) * 0.3, _n(r, 6, 2)), (0, 1, 2))
def gmm_log_likelihood(logits, means, log_scales, x):
    log_w = logits - np.log(np.sum(np.exp(logits)))
    diff = (x[:, None, :] - means[None, :, :]) / np.exp(log_scales)[None, :, :]
    comp = -0.5 * np.sum(diff ** 2, axis=2) - np.sum(log_scales, axis=1) + log_w
    m = np.max(comp, axis=1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(comp - m), axis=1)) + m[:, 0])


@program(lambda r: (_n(r, 5),))
def repeated_fancy_index(x):
    picked = x[np.array([0, 2, 0, 4, 2, 2])]
    return np.sum(picked ** 2 * np.arange(6.0))


@program(lambda r: (_n(r, 4, 3),))
def fancy_index_2d(x):
    rows = np.array([0, 3, 3, 1])
    cols = np.array([2, 0, 0, 1])
    return np.sum(np.sin(x[rows, cols])) + np.sum(x[rows] ** 2)


@program(lambda r: (_n(r, 4, 5),))
def slicing(x):
    return np.sum(x[1:, ::2] ** 2) + np.sum(x[-1, 1:4] * x[0, :3]) + x[2, -1]


@program(lambda r: (_n(r, 4), _n(r, 3)), (0, 1))
def broadcast_pairwise(x, y):
    d = (x[:, None] - y[None, :]) ** 2
    return np.sum(np.exp(-d)) + np.sum(d * y)


@program(lambda r: (np.array([1.0, 3.0, 3.0, 2.0, -1.0]),))
def max_with_ties(x):
    return np.max(x) * 2.0 + np.min(np.array([x[0], x[0], x[4], x[4]]))


@program(lambda r: (np.array([[1.0, 2.0, 2.0], [0.5, 0.5, -1.0]]),))
def max_axis_with_ties(x):
    return np.sum(np.max(x, axis=1) * np.array([1.0, 3.0])) + np.sum(np.min(x, axis=0))


@program(lambda r: (np.array([1.0, -2.0, 0.5, 3.0]), np.array([1.0, 1.0, 0.5, -3.0])), (0, 1))
def maximum_minimum_at_ties(x, y):
    return np.sum(np.maximum(x, y) * np.arange(1.0, 5.0)) + np.sum(np.minimum(x, y) ** 2)


@program(lambda r: (np.array([0.0, -1.5, 2.0, 0.0]),))
def abs_at_zero(x):
    return np.sum(np.abs(x) * np.array([1.0, 2.0, 3.0, 4.0])) + np.sum(np.abs(x * x - 4.0))


@program(lambda r: (_n(r, 3, 4), _n(r, 3, 4)), (0, 1))
def where_select(x, y):
    return np.sum(np.where(x > y, x * y, np.sin(y)) + np.where(x > 0, x, 0.0))


@program(lambda r: (_n(r, 2, 3), _n(r, 3, 4), _n(r, 4)), (0, 1, 2))
def einsum_chain(a, b, v):
    m = np.einsum("ij,jk->ik", a, b)
    return np.einsum("ik,k->", m, v) + np.einsum("ij,ij->", a, a)


@program(lambda r: (2.0 * np.eye(3) + 0.3 * _n(r, 3, 3),))
def inverse(a):
    return np.sum(np.linalg.inv(a) @ np.arange(3.0))


@program(lambda r: (2.0 * np.eye(3) + 0.3 * _n(r, 3, 3), _n(r, 3), _n(r, 3, 2)), (0, 1, 2))
def solve(a, b, c):
    return np.sum(np.linalg.solve(a, b) ** 2) + np.sum(np.linalg.solve(a, c))


@program(lambda r: (2.0 * np.eye(3) + 0.3 * _n(r, 3, 3),))
def determinant(a):
    return np.linalg.det(a) + np.linalg.slogdet(a)[1] * 2.0


@program(lambda r: (_n(r, 3, 4),))
def norms(x):
    return np.linalg.norm(x) + np.sum(np.linalg.norm(x, axis=1)) + \
        np.linalg.norm(x[0]) ** 2 + np.sum(np.linalg.norm(x, axis=0) ** 3)


@program(lambda r: (_n(r, 2, 3, 4),))
def reductions_axis_keepdims(x):
    a = np.sum(x, axis=1, keepdims=True) * x
    b = np.mean(x, axis=(0, 2))
    c = np.sum(x ** 2, axis=-1)
    return np.sum(a) + np.sum(b * b) + np.sum(np.mean(c, axis=0, keepdims=True) * c)


@program(lambda r: (_n(r, 2, 3), _n(r, 1, 3), _n(r, 2, 2)), (0, 1, 2))
def concatenate_stack(a, b, c):
    m = np.concatenate([a, b, a * 2.0], axis=0)
    s = np.stack([a, a * a], axis=1)
    h = np.concatenate((a, c), axis=1)
    return np.sum(m ** 2) + np.sum(s[:, 1] * s[:, 0]) + np.sum(h * np.arange(5.0))


@program(lambda r: (_n(r, 6, 2),))
def split_parts(x):
    p = np.split(x, 3, axis=0)
    q = np.split(x, [1, 4], axis=0)
    return np.sum(p[0] * p[2]) + np.sum(q[1] ** 2) - np.sum(q[2] ** 3)


@program(lambda r: (_n(r, 3, 4),))
def cumulative_sums(x):
    return np.sum(np.cumsum(x, axis=1) ** 2) + np.sum(np.cumsum(x) * np.arange(12.0))


@program(lambda r: (_n(r, 3, 4),))
def variance_std(x):
    return np.var(x) + np.sum(np.std(x, axis=0)) + np.sum(np.var(x, axis=1, ddof=1)) + \
        np.std(x[0], ddof=1)


@program(lambda r: (_n(r, 2, 3) + 2.0,))
def product(x):
    return np.prod(x) + np.sum(np.prod(x, axis=0))


@program(lambda r: (_n(r, 2, 3, 4),))
def shape_ops(x):
    y = np.transpose(x, (2, 0, 1)).reshape(4, 6)
    z = np.swapaxes(x, 0, 2)
    w = np.expand_dims(np.squeeze(x[:, :1, :], axis=1), 0)
    return np.sum(y * np.arange(24.0).reshape(4, 6)) + np.sum(z[1] ** 2) + np.sum(w ** 3)


@program(lambda r: (_n(r, 2, 3, 4), _n(r, 4, 2), _n(r, 3)), (0, 1, 2))
def matmul_batched(a, b, v):
    m = a @ b
    return np.sum(np.tanh(m)) + np.sum(np.outer(v, v)) + np.dot(v, v) + np.sum(np.dot(m, b.T))


@program(lambda r: (np.array([-2.0, -0.5, 0.25, 1.0, 3.0]),))
def clip_values(x):
    return np.sum(np.clip(x, -1.0, 2.0) ** 2) + np.sum(np.clip(x * 2.0, -1.0, 1.0))


@program(lambda r: (np.abs(_n(r, 5)) + 0.5,))
def elementwise_chain(x):
    return np.sum(np.log(x) * np.exp(-x) + np.sqrt(x) - np.log1p(x) + np.expm1(-x) + np.square(x)
                  + np.arctan(x) + np.tanh(x) / x + np.logaddexp(x, -x) + x ** 2.5)


@program(lambda r: (_n(r, 2, 3, 4), _n(r, 4, 3, 2)), (0, 1))
def tensordot_axes(a, b):
    return np.sum(np.tensordot(a, b, axes=((1, 2), (1, 0))) ** 2) + \
        np.sum(np.tensordot(a, b, axes=1))


@program(lambda r: (_n(r, 4, 4), _n(r, 3)), (0, 1))
def trace_diag_triangles(a, v):
    return np.trace(a) * 2.0 + np.sum(np.diag(a) ** 2) + np.sum(np.diag(v) @ a[:3, :3]) + \
        np.sum(np.tril(a) * np.triu(a, 1).T)


@program(lambda r: (_n(r, 3, 4),))
def reverse_and_gather(x):
    f = x[:, ::-1]
    t = x[np.array([0, 2, 2])]
    return np.sum(f * np.arange(12.0).reshape(3, 4)) + np.sum(t ** 2) + \
        np.sum(np.ravel(x)[np.array([5, 5, 0])])


@program(lambda r: (_n(r, 3), _n(r, 3)), (0, 1))
def python_control_flow(x, y):
    total = 0.0
    for i in range(3):
        if np.sum(x) > i - 2.0:
            total = total + np.sum(np.sin(x * y + i))
        else:
            total = total - np.sum(x ** 2)
    k = 0
    z = x
    while np.sum(z ** 2) < 40.0 and k < 10:
        z = z * 1.5 + y
        k = k + 1
    return total + np.sum(z)


@program(lambda r: ([_n(r, 3), _n(r, 3)], _n(r, 3)), (0, 1))
def list_of_arrays(xs, w):
    return sum([np.sum(x * w) ** 2 for x in xs]) + np.sum(np.hstack(xs) ** 2)


@program(lambda r: (_n(r, 3, 3), _n(r, 3)), (0, 1))
def rnn(w, h0):
    h = h0
    for t in range(4):
        h = np.tanh(w @ h + 0.1 * t)
    return np.sum(h ** 2)


@program(lambda r: (_n(r, 2), _n(r, 2)), (0, 1))
def arctan2_hypot(x, y):
    return np.sum(np.arctan2(x, y + 3.0) + np.hypot(x, y))


@program(lambda r: (_n(r, 2, 3),))
def vstack_hstack(x):
    return np.sum(np.vstack([x, x[:1] * 3.0]) ** 2) + np.sum(np.hstack([x[0], x[1] ** 2]))
