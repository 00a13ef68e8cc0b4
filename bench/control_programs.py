"""Programs with control flow that only tapeless runs as written (issue 12): recursion over
a list of columns, a `while` loop with a data-dependent trip count, derivatives nested
inside the function being differentiated, loops over vectors, and everyday losses written
in more than one spelling. Each is written as a user would; `bench/bench_control.py`
times their gradients against the objective itself and, where there is one, a hand-written
NumPy gradient (`bench/control_handwritten.py`).

Data generators are at the end; they are ordinary Python, never compiled.
"""

from __future__ import annotations

import math

import numpy as np

import tapeless as tl

# --- determinant by Laplace expansion along the first remaining row ------------------------


def det_minor(A, row, cols):
    """det of the rows row.. of A restricted to the columns `cols` (a list of ints)."""
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


def det_checkpointed_top(levels: int):
    """The determinant of `det_laplace` whose minors on the rows 1..levels - 1 are
    `tl.checkpoint`-ed (the user's own trade of memory for time, not a benchmark spelling:
    `bench/bench_loop_memory.py --only recursion`): their records are not kept, and the
    backward pass computes each again."""

    def minor(A, row, cols):
        if len(cols) == 1:
            return A[row, cols[0]]
        total = 0.0
        sign = 1.0
        for k in range(len(cols)):
            rest = cols[:k] + cols[k + 1:]
            sub = checkpointed(A, row + 1, rest) if row + 1 < levels else \
                minor(A, row + 1, rest)
            total = total + sign * A[row, cols[k]] * sub
            sign = -sign
        return total

    checkpointed = tl.checkpoint(minor)

    def det(A):
        return minor(A, 0, list(range(A.shape[0])))

    return det


# --- a recursion reading two elements of a large matrix per call --------------------------


def walk(A, i):
    n = A.shape[0]
    if i == n:
        return 0.0
    return A[i, i] * A[i, (7 * i) % n] + walk(A, i + 1)


def walk_energy(A):
    return walk(A, 0)


def walk_energy_loop(A):
    """The same sum as a `for` loop (the optimizer knows A's kind there)."""
    n = A.shape[0]
    total = 0.0
    for i in range(n):
        total = total + A[i, i] * A[i, (7 * i) % n]
    return total


# --- a particle flown by a `while` loop; launch angle chosen by gradient descent -----------

GRAVITY = 9.81
DRAG = 0.1
DT = 0.01


def landing(v, angle):
    """Where a particle launched at speed v and `angle` hits the ground (linear drag),
    interpolated between the last two steps of the `while` loop."""
    x, y = 0.0, 0.0
    vx = v * math.cos(angle)
    vy = v * math.sin(angle)
    px, py = x, y
    while y >= 0.0:
        px, py = x, y
        x = x + vx * DT
        y = y + vy * DT
        vx = vx - DRAG * vx * DT
        vy = vy - (GRAVITY + DRAG * vy) * DT
    return px + (x - px) * py / (py - y)


def miss(angle, v, target):
    return (landing(v, angle) - target) ** 2


def aimed_landing(v, target):
    """Aim by 8 steps of gradient descent on the launch angle (each step differentiates
    the `while` loop), then report where the shot lands plus a cost of the speed."""
    angle = 0.6
    for _ in range(8):
        angle = angle - 0.002 * tl.grad(miss)(angle, v, target)
    return landing(v, angle) + 0.01 * v * v


def fly_step(state):
    x, y, vx, vy = state
    return (x + vx * DT, y + vy * DT, vx - DRAG * vx * DT,
            vy - (GRAVITY + DRAG * vy) * DT)


def landing_state(v, angle):
    """landing, with the state kept as a tuple advanced by a step function."""
    state = (0.0, 0.0, v * math.cos(angle), v * math.sin(angle))
    prev = state
    while state[1] >= 0.0:
        prev = state
        state = fly_step(state)
    return prev[0] + (state[0] - prev[0]) * prev[1] / (prev[1] - state[1])


def aimed_landing_closure(v, target):
    """aimed_landing, differentiating a lambda over the angle (a closure over v, target)."""
    angle = 0.6
    for _ in range(8):
        slope = tl.grad(lambda a: (landing_state(v, a) - target) ** 2)(angle)
        angle = angle - 0.002 * slope
    return landing_state(v, angle) + 0.01 * v * v


# --- RK4 over vectors: y' = A y, 1,000 steps -------------------------------------------------


def linear_rhs(A, y):
    return A @ y


def rk4_loss(A, y0):
    h = 0.001
    y = y0
    for _ in range(1000):
        k1 = linear_rhs(A, y)
        k2 = linear_rhs(A, y + 0.5 * h * k1)
        k3 = linear_rhs(A, y + 0.5 * h * k2)
        k4 = linear_rhs(A, y + h * k3)
        y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return np.sum(y * y)


def rk4_step(f, y, h):
    k1 = f(y)
    k2 = f(y + h / 2 * k1)
    k3 = f(y + h / 2 * k2)
    k4 = f(y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def rk4_loss_lambda(A, y0):
    """rk4_loss with a generic stepper given the right-hand side as a lambda."""
    y = y0
    for _ in range(1000):
        y = rk4_step(lambda z: A @ z, y, 0.001)
    return np.dot(y, y)



# --- long loops, their length an argument (bench/bench_control_memory.py: memory over n) ---


def rk4_steps(A, y0, n):
    """rk4_loss over `n` steps (step 0.001): the loop whose saved values grow with n."""
    h = 0.001
    y = y0
    for _ in range(n):
        k1 = A @ y
        k2 = A @ (y + 0.5 * h * k1)
        k3 = A @ (y + 0.5 * h * k2)
        k4 = A @ (y + h * k3)
        y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return np.sum(y * y)


DRIFT_STEP = 0.001


def drift_while(k, x0, T):
    """A scalar ODE x' = k cos(t) - 0.02 sin(x), explicit Euler `while t < T`: a scalar
    `while` loop whose trip count (about T / 0.001) is known only once it stops."""
    x = x0
    t = 0.0
    while t < T:
        x = x + DRIFT_STEP * (k * math.cos(t) - 0.02 * math.sin(x))
        t = t + DRIFT_STEP
    return x * x

# --- a saddle point by nested gradient descent -----------------------------------------------


def game(x, y, a, b):
    """Convex in x, concave in y."""
    return 0.5 * x * x + a * x * y - 0.5 * y * y + b * math.sin(x)


def saddle_value(a, b):
    """max over y of min over x of game: 12 ascent steps on y, each after 15 descent
    steps on x, every step calling tl.grad."""
    y = 0.0
    x = 0.0
    for _ in range(12):
        for _ in range(15):
            x = x - 0.3 * tl.grad(game, argnums=0)(x, y, a, b)
        y = y + 0.3 * tl.grad(game, argnums=1)(x, y, a, b)
    return game(x, y, a, b)


def descend_x(x, y, a, b):
    return x - 0.3 * tl.grad(lambda s: game(s, y, a, b))(x)


def ascend_y(x, y, a, b):
    return y + 0.3 * tl.grad(lambda t: game(x, t, a, b))(y)


def saddle_value_closure(a, b):
    """saddle_value with each derivative taken of a lambda closing over the other
    variables (in a helper, so that the closure captures values that do not change)."""
    y = 0.0
    x = 0.0
    for _ in range(12):
        for _ in range(15):
            x = descend_x(x, y, a, b)
        y = ascend_y(x, y, a, b)
    return game(x, y, a, b)


# --- polynomial least squares, a loop over coefficients -------------------------------------


def poly_loss(c, x, y):
    pred = np.zeros_like(x)
    for k in range(c.shape[0]):
        pred = pred + c[k] * x ** k
    return np.mean((pred - y) ** 2)


def poly_loss_horner(c, x, y):
    pred = np.zeros_like(x)
    for k in range(c.shape[0] - 1, -1, -1):
        pred = pred * x + c[k]
    r = pred - y
    return np.sum(r * r) / x.shape[0]


# --- a classifier: ReLU, max-shifted log-softmax, integer labels -----------------------------


def classifier_loss(W1, b1, W2, b2, X, labels):
    h = np.maximum(X @ W1 + b1, 0.0)
    logits = h @ W2 + b2
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(logp[np.arange(X.shape[0]), labels])


def classifier_loss_where(W1, b1, W2, b2, X, labels):
    """The same loss: ReLU as np.where, the max subtracted through a broadcast index."""
    z = X @ W1 + b1
    h = np.where(z > 0, z, 0.0)
    logits = h @ W2 + b2
    mx = np.max(logits, axis=1)
    inner = logits - mx[:, None]
    lse = np.log(np.sum(np.exp(inner), axis=1))
    n = X.shape[0]
    return -np.sum(inner[np.arange(n), labels] - lse) / n


# --- GMM (WORKLOADS.md), a loop over components --------------------------------------------


def gmm_objective_loop(alpha, mu, q, l, x, idx, gamma, m):
    """WORKLOADS.md's GMM, one component at a time: Q_k gathered from its own packed row,
    the log-sum-exp over components written with the max subtracted by broadcasting."""
    n, d = x.shape
    K = alpha.shape[0]
    rows = []
    for k in range(K):
        packed = np.concatenate([np.zeros(1), np.exp(q[k]), l[k]])
        Q = packed[idx]
        Qx = (x - mu[k]) @ Q.T
        rows.append(alpha[k] + np.sum(q[k]) - 0.5 * np.sum(Qx ** 2, axis=1))
    main = np.stack(rows)
    mx = np.max(main, axis=0)
    slse = np.sum(np.log(np.sum(np.exp(main - mx[None, :]), axis=0)) + mx)
    amax = np.max(alpha)
    lse_alpha = np.log(np.sum(np.exp(alpha - amax))) + amax
    prior = (-0.5 * gamma ** 2 * (np.sum(np.exp(q) ** 2) + np.sum(l ** 2))
             + m * np.sum(q))
    n2 = d + m + 1
    lgd = 0.25 * d * (d - 1) * math.log(math.pi)
    for j in range(1, d + 1):
        lgd = lgd + math.lgamma(0.5 * n2 + 0.5 * (1 - j))
    const = (-n * d * 0.5 * math.log(2.0 * math.pi)
             + K * (n2 * d * math.log(gamma / math.sqrt(2.0)) - lgd))
    return const + slse - n * lse_alpha + prior


# --- data (never compiled) ----------------------------------------------------------------


def det_data(n=7):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, n)),)


def walk_data(n=600):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, n)),)


def particle_data():
    return 12.0, 9.0


def saddle_data():
    return 0.7, 0.4


def rk4_data(n=8):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)) / math.sqrt(n) - np.eye(n)
    return A, rng.standard_normal(n)


def rotation_data(n=64):
    """A skew-symmetric A (y' = A y turns y: its size stays about 1 over any number of
    steps) and y0, for rk4_steps."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((n, n))
    return (M - M.T) / (2.0 * math.sqrt(n)), rng.standard_normal(n)


def poly_data(n=1000, degree=8):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, size=n)
    y = np.sin(3.0 * x) + 0.1 * rng.standard_normal(n)
    return rng.standard_normal(degree + 1) * 0.1, x, y


def classifier_data(n=256, d=64, hidden=128, classes=10):
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((d, hidden)) / math.sqrt(d)
    b1 = rng.standard_normal(hidden) * 0.1
    W2 = rng.standard_normal((hidden, classes)) / math.sqrt(hidden)
    b2 = rng.standard_normal(classes) * 0.1
    X = rng.standard_normal((n, d))
    labels = rng.integers(0, classes, size=n)
    return W1, b1, W2, b2, X, labels
