"""Programs for tests/test_vmap.py: written as a user writes them for one example."""

import math

import numpy as np

import tapeless as tl


def affine_tanh(x, w):
    return np.tanh(w @ x) * 2.0 + np.sum(x)


def branch(x):
    if x > 0:
        y = math.sin(x)
    else:
        y = x * x
    return y


def halve_until_small(x):
    n = 0
    while x > 1.0:
        x = x / 2.0
        n += 1
    return x + n


def scaled_factorial(n, x):
    if n <= 0:
        return x
    return n * scaled_factorial(n - 1, x)


def list_of_multiples(x):
    out = []
    for i in range(3):
        out.append(x * i)
    return out[2] + len(out)


def loss(w, x, y):
    h = np.tanh(w @ x)
    return np.sum((h - y) ** 2)


def mlp(W1, b1, W2, b2, x):
    return np.sum(np.tanh(W2 @ np.tanh(W1 @ x + b1) + b2))


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-10:
        x = 0.5 * (x + a / x)
    return x


def one_sgd_step(w, x):
    g = tl.grad(lambda w: np.sum(np.tanh(w @ x) ** 2))(w)
    return np.sum((w - 0.1 * g) ** 2)


def tuple_io(pair, scale):
    a, b = pair
    return a * scale, np.sum(b) * scale


def draw_under_branch(x):
    if x > 0:
        return x + np.random.normal()
    return x


def reductions(x):
    return np.mean(x, axis=0) + np.max(x) + x.sum(axis=1)[0] + np.linalg.det(x)


def mlp_list(params, x):
    W1, b1, W2, b2 = params
    return np.sum(np.tanh(W2 @ np.tanh(W1 @ x + b1) + b2))


def noisy(x):
    return x + np.random.normal() * 0.1 + np.random.uniform(size=2)


def noisy_rng(x, rng):
    return x * rng.normal(size=3)


def lengths_and_types(x):
    n = len(x)
    return x * n, x.shape[0], isinstance(x[0], float)


def through_a_per_element_call(x):
    return np.sort(x) + np.percentile(x, 50.0)


def _small_mlp(p, x):
    W1, b1, W2 = p
    return np.tanh(x @ W1 + b1) @ W2


def _small_mse(p, x, y):
    return np.mean((_small_mlp(p, x) - y) ** 2)


def inner_steps_loss(p, task):
    """MAML's task loss, small: SGD steps on a tuple of parameters (a second-order
    gradient whose backward loop saves backpropagators on its stack)."""
    x, y = task
    for _ in range(2):
        g = tl.grad(_small_mse)(p, x, y)
        p = (p[0] - 0.1 * g[0], p[1] - 0.1 * g[1], p[2] - 0.1 * g[2])
    return _small_mse(p, x, y)


def inner_steps_meta_loss(p, tasks):
    """MAML's meta-loss over tasks mapped with `tl.vmap` (a `tl.grad` inside the function
    mapped, in compiled code)."""
    return np.mean(tl.vmap(inner_steps_loss, in_axes=(None, 0))(p, tasks))


def cube_root_with_break(a):
    """Newton to a per-element tolerance, spelled with a step count and a `break`."""
    x = a
    steps = 0
    while True:
        step = (x * x * x - a) / (3.0 * x * x)
        x = x - step
        steps += 1
        if abs(step) <= 1e-12 * abs(x):
            break
    return x, steps


# --- gradients whose path differs across the batch (vmap(grad(f))) ---------------------


def grown_until(x, n):
    if x > 4.0 or n > 20:
        return x
    return grown_until(x * 1.5 + 0.1, n + 1)


def grown(x):
    return grown_until(x, 0)


def skipping_loop(x):
    s = 0.0
    for i in range(6):
        if x * i > 1.0:
            continue
        s = s + x * x * i
    return s


def nested_branches(x):
    if x > 0:
        if x > 1:
            y = x * x
        else:
            y = x
    else:
        y = -x * 3
    return y


def early_return(x):
    for i in range(5):
        if x * i > 2.0:
            return x * i
    return -x
