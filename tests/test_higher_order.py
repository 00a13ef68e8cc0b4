"""Derivatives of derivatives: grad(grad(f)) and grad of value_and_grad through
branches, loops (with break), closures and recursion; Hessian-vector products against
finite differences; third order; MAML (a gradient step taken inside the differentiated
loss) against a hand-derived gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import directional_fd

import tapeless as tl

# --- scalar programs and their exact first and second derivatives ------------------------


def branch(x):
    if x > 0.0:
        y = x ** 3
    else:
        y = math.sin(x)
    return y * 2.0


def branch_early_return(x):
    if x < -1.0:
        return x * x
    if x < 1.0:
        return math.exp(x)
    return x ** 4


def while_loop(x):
    k = 0
    y = x
    while k < 3:
        y = y * x + 1.0
        k = k + 1
    return y  # x^4 + x^2 + x + 1 (y = x, then x^2+1, x^3+x+1, x^4+x^2+x+1)


def for_break(x):
    y = 1.0
    for i in range(10):
        if i >= 4:
            break
        y = y * (x + i)
    return y  # x (x+1) (x+2) (x+3)


def closure(x):
    a = x * x

    def f(t):
        return a * t + math.sin(t * x)

    return f(2.0)  # 2 x^2 + sin(2x)


def h_pow(x, n):
    if n == 0:
        return 1.0
    return x * h_pow(x, n - 1)


def recursion(x):
    return h_pow(x, 4) + h_pow(math.cos(x), 2)  # x^4 + cos^2 x


def cos2(x):
    return math.cos(x) ** 2


EXACT = {  # name: (function, point, f', f'')
    "branch-positive": (branch, 0.7, 6 * 0.49, 12 * 0.7),
    "branch-negative": (branch, -0.7, 2 * math.cos(-0.7), -2 * math.sin(-0.7)),
    "branch-early-return": (branch_early_return, 0.3, math.exp(0.3), math.exp(0.3)),
    "branch-early-return-last": (branch_early_return, 1.5, 4 * 1.5 ** 3, 12 * 1.5 ** 2),
    "while": (while_loop, 0.8, 4 * 0.8 ** 3 + 2 * 0.8 + 1, 12 * 0.64 + 2),
    "for-break": (for_break, 0.5, None, None),
    "closure": (closure, 0.6, 4 * 0.6 + 2 * math.cos(1.2), 4 - 4 * math.sin(1.2)),
    "recursion": (recursion, 0.4, 4 * 0.4 ** 3 - math.sin(0.8), 12 * 0.16 - 2 * math.cos(0.8)),
}


def _poly4(x: float) -> tuple[float, float]:
    # x (x+1) (x+2) (x+3) = x^4 + 6x^3 + 11x^2 + 6x
    return 4 * x ** 3 + 18 * x ** 2 + 22 * x + 6, 12 * x ** 2 + 36 * x + 22


@pytest.mark.parametrize("name", sorted(EXACT))
def test_grad_of_grad(name: str) -> None:
    fn, x, d1, d2 = EXACT[name]
    if d1 is None:
        d1, d2 = _poly4(x)
    assert tl.grad(fn)(x) == pytest.approx(d1, rel=1e-12)
    assert tl.grad(tl.grad(fn))(x) == pytest.approx(d2, rel=1e-12)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_grad_of_value_and_grad(name: str) -> None:
    fn, x, d1, d2 = EXACT[name]
    if d1 is None:
        d1, d2 = _poly4(x)
    value, g = tl.value_and_grad(fn)(x)
    assert value == pytest.approx(fn(x), rel=1e-14)
    assert g == pytest.approx(d1, rel=1e-12)
    # d/dx of (f(x), f'(x)) summed: f' + f''
    both = tl.grad(lambda t: sum(tl.value_and_grad(fn)(t)))
    assert both(x) == pytest.approx(d1 + d2, rel=1e-12)


def test_third_derivative() -> None:
    f = lambda x: math.sin(x) * x ** 3  # noqa: E731
    x = 0.9
    d3 = -math.cos(x) * x ** 3 - 9 * math.sin(x) * x ** 2 + 18 * math.cos(x) * x + \
        6 * math.sin(x)
    assert tl.grad(tl.grad(tl.grad(f)))(x) == pytest.approx(d3, rel=1e-11)


def mixed(x, y):
    z = x
    for _ in range(3):
        z = math.tanh(z * y + x)
    return z * x


def test_mixed_partials_are_symmetric() -> None:
    dxy = tl.grad(tl.grad(mixed, 0), 1)(0.4, 0.7)
    dyx = tl.grad(tl.grad(mixed, 1), 0)(0.4, 0.7)
    assert dxy == pytest.approx(dyx, rel=1e-10)
    fd = directional_fd(lambda y: tl.grad(mixed, 0)(0.4, y), (0.7,), (0,), (1.0,))
    assert dxy == pytest.approx(fd, rel=1e-8)


# --- Hessian-vector products ---------------------------------------------------------------


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp_loss(w, x, y):
    h = np.tanh(x @ w[0])
    out = h @ w[1]
    return np.mean((out - y) ** 2) + 0.01 * np.sum(w[0] ** 2)


def hvp_rosenbrock(x, v):
    g = tl.grad(rosenbrock)(x)
    return np.sum(g * v)


def hvp_mlp(w, v, x, y):
    g = tl.grad(mlp_loss)(w, x, y)
    return np.sum(g[0] * v[0]) + np.sum(g[1] * v[1])


def _rosenbrock_hvp_fd(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H v of Rosenbrock by the 4-point central difference of its gradient along v."""
    grad = tl.grad(rosenbrock)
    return sum(c * grad(x + k * 1e-3 * v) for c, k in ((-1, 2), (8, 1), (-8, -1), (1, -2))) \
        / (12 * 1e-3)


def test_hessian_vector_product_rosenbrock() -> None:
    rng = np.random.default_rng(0)
    x, v = rng.normal(size=5), rng.normal(size=5)
    hv = tl.grad(hvp_rosenbrock)(x, v)
    np.testing.assert_allclose(hv, _rosenbrock_hvp_fd(x, v), rtol=1e-7, atol=1e-7)
    # The exact Hessian of Rosenbrock, for one more check.
    h = np.zeros((5, 5))
    for i in range(4):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i + 1, i + 1] += 200
        h[i, i + 1] += -400 * x[i]
        h[i + 1, i] += -400 * x[i]
    np.testing.assert_allclose(hv, h @ v, rtol=1e-11)


def test_second_order_rule_code_is_specialized_to_a_constant_exponent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Reverse over reverse differentiates the pow rule's code, called with the exponent
    2 at three places: a copy specialized to 2 folds its run-time tests of the exponent
    (`isinstance(b, int)`, `b != 0`, the general `fpow`) and is inlined."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)  # (what the optimizer makes)
    rng = np.random.default_rng(1)
    x, v = rng.normal(size=6), rng.normal(size=6)
    hvp = tl.grad(hvp_rosenbrock)
    source = hvp.source_for(x, v)
    assert "_pow_back" not in source and "isinstance" not in source and "fpow" not in \
        source, source
    h = np.zeros((6, 6))
    for i in range(5):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i + 1, i + 1] += 200
        h[i, i + 1] += -400 * x[i]
        h[i + 1, i] += -400 * x[i]
    np.testing.assert_allclose(hvp(x, v), h @ v, rtol=1e-11)


def _star_data_loss(w, b, x, y):
    return np.sum((np.tanh(x @ w + b) - y) ** 2) + 0.5 * np.sum(w ** 3)


STAR_DATA = (np.linspace(-1.0, 1.0, 12).reshape(4, 3), np.array([0.5, -0.2, 0.1, 0.3]))


def _star_data_params(w, b):
    return _star_data_loss(w, b, *STAR_DATA)


def test_hessian_vector_product_of_a_closure_calling_with_star_data(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward over the gradient of a function that calls another with `*data`: the
    call through a value becomes a direct call once the callee is known (inlined, no
    run-time dispatch), and the product is the finite difference of the gradient."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)  # (what the optimizer makes)
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=3), 0.3
    tw, tb = rng.normal(size=3), -0.7
    grad = tl.grad(_star_data_params, argnums=(0, 1))
    (gw, gb), (hw, hb) = tl.jvp(grad, (w, b), (tw, tb))
    eps = 1e-4
    plus, minus = grad(w + eps * tw, b + eps * tb), grad(w - eps * tw, b - eps * tb)
    np.testing.assert_allclose(hw, (plus[0] - minus[0]) / (2 * eps), rtol=1e-6, atol=1e-8)
    assert hb == pytest.approx((plus[1] - minus[1]) / (2 * eps), rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(gw, grad(w, b)[0], rtol=1e-14)
    from tapeless.fwd_api import _jvp_function

    source = _jvp_function(grad).source_for(w, b, tw, tb)
    assert "call_value_fwd" not in source, source


def test_hessian_vector_product_never_computes_with_the_symbolic_zero(monkeypatch) -> None:
    """The optimizer removes a `sens_of` only where it proves the value is never ZERO.
    A rewrite that later made zeros ZERO (zeros given to `unbroadcast`, a sum with zeros)
    broke such a proof, and the code then multiplied ZERO (right only because ZERO's
    arithmetic is a zero's). Here ZERO's arithmetic raises: the code must not reach it."""
    from tapeless import runtime

    def refuse(*args: object) -> None:
        raise AssertionError("arithmetic on the symbolic zero")

    for name in ("__mul__", "__rmul__", "__add__", "__radd__", "__sub__", "__rsub__",
                 "__truediv__", "__matmul__"):
        monkeypatch.setattr(runtime._Zero, name, refuse)
    rng = np.random.default_rng(0)
    x, v = rng.normal(size=5), rng.normal(size=5)
    hv = tl.grad(hvp_rosenbrock)(x, v)
    np.testing.assert_allclose(hv, _rosenbrock_hvp_fd(x, v), rtol=1e-7, atol=1e-7)


def test_hessian_vector_product_mlp() -> None:
    rng = np.random.default_rng(1)
    w = (rng.normal(size=(3, 4)) / 2, rng.normal(size=(4,)) / 2)
    v = (rng.normal(size=(3, 4)), rng.normal(size=(4,)))
    x, y = rng.normal(size=(6, 3)), rng.normal(size=6)
    hv = tl.grad(hvp_mlp)(w, v, x, y)
    assert isinstance(hv, tuple) and hv[0].shape == (3, 4) and hv[1].shape == (4,)
    grad = tl.grad(mlp_loss)

    def moved(t: float) -> tuple:
        return tuple(a + t * b for a, b in zip(w, v, strict=True))

    h = 1e-3
    parts = [grad(moved(k * h), x, y) for k in (2, 1, -1, -2)]
    for j in range(2):
        fd = (-parts[0][j] + 8 * parts[1][j] - 8 * parts[2][j] + parts[3][j]) / (12 * h)
        np.testing.assert_allclose(hv[j], fd, rtol=1e-7, atol=1e-9)


def quadratic(x, a):
    return x @ a @ x


def test_hessian_of_quadratic_is_exact() -> None:
    rng = np.random.default_rng(2)
    a, x = rng.normal(size=(3, 3)), rng.normal(size=3)
    rows = [tl.grad(lambda t, e: np.sum(tl.grad(quadratic)(t, a) * e))(x, e)
            for e in np.eye(3)]
    np.testing.assert_allclose(np.array(rows), a + a.T, rtol=1e-13, atol=1e-14)


# --- MAML ----------------------------------------------------------------------------------


def mse(w, x, y):
    r = x @ w - y
    return np.sum(r * r) / x.shape[0]


def maml_loss(w, x_train, y_train, x_test, y_test, alpha):
    w_adapted = w - alpha * tl.grad(mse)(w, x_train, y_train)
    return mse(w_adapted, x_test, y_test)


def maml_loss_steps(w, x_train, y_train, x_test, y_test, alpha, steps):
    for _ in range(steps):
        w = w - alpha * tl.grad(mse)(w, x_train, y_train)
    return mse(w, x_test, y_test)


def _regression_task(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=3)
    x_train, x_test = rng.normal(size=(8, 3)), rng.normal(size=(5, 3))
    true_w = rng.normal(size=3)
    return (w, x_train, x_train @ true_w + 0.1 * rng.normal(size=8), x_test,
            x_test @ true_w, 0.05)


def _maml_gradient(w, x_train, y_train, x_test, y_test, alpha, steps=1):
    """By hand: w_{k+1} = w_k - alpha g_tr(w_k), g(w) = 2 X^T (X w - y) / n, so
    dw_{k+1}/dw_k = I - alpha H_tr with H_tr = 2 X_tr^T X_tr / n_tr, and
    d loss/dw = (I - alpha H_tr)^steps g_te(w_steps) (H_tr is symmetric)."""
    n_tr, n_te = len(y_train), len(y_test)
    for _ in range(steps):
        w = w - alpha * 2 * x_train.T @ (x_train @ w - y_train) / n_tr
    jac = np.linalg.matrix_power(np.eye(3) - alpha * 2 * x_train.T @ x_train / n_tr, steps)
    return jac.T @ (2 * x_test.T @ (x_test @ w - y_test) / n_te)


def test_maml_one_inner_step_matches_hand_derived_gradient() -> None:
    task = _regression_task(0)
    g = tl.grad(maml_loss)(*task)
    np.testing.assert_allclose(g, _maml_gradient(*task), rtol=1e-12, atol=1e-14)


def test_maml_inner_loop_matches_hand_derived_gradient() -> None:
    task = _regression_task(1)
    g = tl.grad(maml_loss_steps)(*task, 3)
    np.testing.assert_allclose(g, _maml_gradient(*task, steps=3), rtol=1e-11, atol=1e-13)


def test_maml_gradient_with_respect_to_step_size() -> None:
    task = _regression_task(2)
    g_alpha = tl.grad(maml_loss, 5)(*task)
    fd = directional_fd(lambda a: maml_loss(*task[:5], a), (task[5],), (0,), (1.0,))
    assert g_alpha == pytest.approx(fd, rel=1e-8)
