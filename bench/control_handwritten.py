"""Hand-written NumPy gradients of the programs in bench/control_programs.py that have a
natural hand-written adjoint (determinant, recursive walk, RK4, polynomial least squares,
classifier; the GMM's is bench/handwritten.gmm_grad). Each forward pass follows the
first spelling of its program operation for operation; bench/bench_control.py checks
each one against central finite differences (handwritten.check_against_fd) before
timing.
"""

from __future__ import annotations

import numpy as np


def det_laplace_grad(A):
    """Gradient of control_programs.det_laplace: the same recursion, returning the minor's
    value and adding each read's sensitivity into one buffer."""
    G = np.zeros_like(A)

    def value(row, cols):
        if len(cols) == 1:
            return A[row, cols[0]]
        total, sign = 0.0, 1.0
        for k in range(len(cols)):
            total += sign * A[row, cols[k]] * value(row + 1, cols[:k] + cols[k + 1:])
            sign = -sign
        return total

    def backward(row, cols, g):
        if len(cols) == 1:
            G[row, cols[0]] += g
            return
        sign = 1.0
        for k in range(len(cols)):
            rest = cols[:k] + cols[k + 1:]
            G[row, cols[k]] += g * sign * value(row + 1, rest)
            backward(row + 1, rest, g * sign * A[row, cols[k]])
            sign = -sign

    backward(0, list(range(A.shape[0])), 1.0)
    return G


def walk_energy_grad(A):
    """Gradient of control_programs.walk_energy: two adds per step into one buffer."""
    n = A.shape[0]
    G = np.zeros_like(A)
    for i in range(n):
        j = (7 * i) % n
        G[i, i] += A[i, j]
        G[i, j] += A[i, i]
    return G


def rk4_loss_grad(A, y0):
    """Gradient of control_programs.rk4_loss in (A, y0)."""
    return rk4_steps_grad(A, y0, 1000)


def rk4_steps_grad(A, y0, n):
    """Gradient of control_programs.rk4_steps in (A, y0): the discrete adjoint of RK4,
    saving each step's stage inputs."""
    h = 0.001
    y = y0
    tape = []
    for _ in range(n):
        k1 = A @ y
        u2 = y + 0.5 * h * k1
        k2 = A @ u2
        u3 = y + 0.5 * h * k2
        k3 = A @ u3
        u4 = y + h * k3
        k4 = A @ u4
        tape.append((y, u2, u3, u4))
        y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    lam = 2.0 * y
    dA = np.zeros_like(A)
    for y, u2, u3, u4 in reversed(tape):
        dk4 = (h / 6.0) * lam
        dk3 = (h / 3.0) * lam
        dk2 = (h / 3.0) * lam
        dk1 = (h / 6.0) * lam
        dy = lam
        du4 = A.T @ dk4
        dA += np.outer(dk4, u4)
        dy = dy + du4
        dk3 = dk3 + h * du4
        du3 = A.T @ dk3
        dA += np.outer(dk3, u3)
        dy = dy + du3
        dk2 = dk2 + 0.5 * h * du3
        du2 = A.T @ dk2
        dA += np.outer(dk2, u2)
        dy = dy + du2
        dk1 = dk1 + 0.5 * h * du2
        dA += np.outer(dk1, y)
        lam = dy + A.T @ dk1
    return dA, lam


def poly_loss_grad(c, x, y):
    """Gradient of control_programs.poly_loss in c."""
    powers = [x ** k for k in range(c.shape[0])]
    pred = np.zeros_like(x)
    for k in range(c.shape[0]):
        pred = pred + c[k] * powers[k]
    r = (2.0 / x.shape[0]) * (pred - y)
    return np.array([np.dot(r, p) for p in powers])


def classifier_loss_grad(W1, b1, W2, b2, X, labels):
    """Gradient of control_programs.classifier_loss in (W1, b1, W2, b2)."""
    n = X.shape[0]
    z = X @ W1 + b1
    h = np.maximum(z, 0.0)
    logits = h @ W2 + b2
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    e = np.exp(shifted)
    dlogits = e / np.sum(e, axis=1, keepdims=True)
    dlogits[np.arange(n), labels] -= 1.0
    dlogits /= n
    dW2 = h.T @ dlogits
    db2 = np.sum(dlogits, axis=0)
    dz = (dlogits @ W2.T) * (z > 0)
    dW1 = X.T @ dz
    db1 = np.sum(dz, axis=0)
    return dW1, db1, dW2, db2


def drift_while_grad(k, x0, T):
    """Gradient of control_programs.drift_while in (k, x0): the loop again, saving each
    step's x and t, then the adjoint backwards."""
    import math

    h = 0.001
    x, t = x0, 0.0
    tape = []
    while t < T:
        tape.append((x, t))
        x = x + h * (k * math.cos(t) - 0.02 * math.sin(x))
        t = t + h
    dx, dk = 2.0 * x, 0.0
    for x, t in reversed(tape):
        dk += dx * h * math.cos(t)
        dx = dx * (1.0 - 0.02 * h * math.cos(x))
    return dk, dx
