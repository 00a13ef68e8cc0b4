"""Forward mode and the derivative API on it: `tl.jvp`, `jacfwd`, `jacrev`, `hessian`,
`stop_gradient`, in every order and mix of modes, on the differential corpus, the
random programs and programs written for these tests."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest
from gradcheck import random_cotangent, random_like, vdot
from test_grad import CORPUS, CORPUS_SKIP, _quiet
from test_higher_order import EXACT, _poly4

import tapeless as tl


def _dot(ct: Any, t: Any) -> float:
    """<ct, t> over the parts of `ct` that are floats (a random cotangent has None where
    the output is not a float; the tangent has a zero there)."""
    if ct is None:
        return 0.0
    if isinstance(ct, (tuple, list)):
        return sum(_dot(c, x) for c, x in zip(ct, t, strict=True))
    if isinstance(ct, dict):
        return sum(_dot(ct[k], t[k]) for k in ct)
    if hasattr(ct, "__dataclass_fields__"):
        return sum(_dot(getattr(ct, k), getattr(t, k)) for k in ct.__dataclass_fields__)
    return float(np.sum(np.asarray(ct, dtype=float) * np.asarray(t, dtype=float)))


def _zero_like(x: Any) -> Any:
    return tl.tree_map(lambda v: np.zeros(np.shape(v)) if isinstance(v, np.ndarray)
                       else 0.0, x)


# --- forward and reverse agree: <v, J u> == <J^T v, u> --------------------------------------


@pytest.mark.parametrize(("name", "k", "fn", "args", "argnums"), CORPUS)
def test_forward_and_reverse_agree_on_the_corpus(name: str, k: int, fn: Any, args: tuple,
                                                 argnums: tuple[int, ...],
                                                 optimize: str) -> None:
    if (name, k) in CORPUS_SKIP:
        pytest.skip(CORPUS_SKIP[(name, k)])
    rng = np.random.default_rng(k + 7)
    tangents = tuple(random_like(rng, a) if i in argnums else _zero_like(a)
                     for i, a in enumerate(args))
    with _quiet():
        out, vjp_fn = tl.vjp(fn, *args)
        value, tangent = tl.jvp(fn, args, tangents)
        ct = random_cotangent(rng, out)
        sens = vjp_fn(ct)
    assert vdot(ct, value) == pytest.approx(vdot(ct, out), rel=1e-12, abs=1e-12)
    forward = _dot(ct, tangent)
    reverse = sum(vdot(sens[i], tangents[i]) for i in argnums)
    assert forward == pytest.approx(reverse, rel=1e-9, abs=1e-9), name


# --- hessian and higher orders against exact derivatives -------------------------------------


@pytest.mark.parametrize("name", sorted(EXACT))
def test_hessian_through_branches_loops_recursion_closures(name: str, optimize: str) -> None:
    fn, x, d1, d2 = EXACT[name]
    if d1 is None:
        d1, d2 = _poly4(x)
    assert tl.jvp(fn, (x,), (1.0,))[1] == pytest.approx(d1, rel=1e-12)
    h = tl.hessian(fn)
    assert h(x) == pytest.approx(d2, rel=1e-12)
    # (the second call runs every column in one batched pass; unoptimized, the
    # generated code of some tests a column's values, which differ across the batch:
    # one jvp per column again)
    assert h(x) == pytest.approx(d2, rel=1e-12)
    assert h.batched.last == "batched" or (optimize == "off" and h.batched.refused), \
        h.batched.refused
    # forward over forward, reverse over forward, forward over reverse
    assert tl.jvp(lambda y: tl.jvp(fn, (y,), (1.0,))[1], (x,), (1.0,))[1] == \
        pytest.approx(d2, rel=1e-12)
    assert tl.grad(lambda y: tl.jvp(fn, (y,), (1.0,))[1])(x) == pytest.approx(d2, rel=1e-12)
    assert tl.jvp(tl.grad(fn), (x,), (1.0,))[1] == pytest.approx(d2, rel=1e-12)


def third(x):
    return tl.jvp(lambda y: tl.grad(lambda z: z ** 4 * np.sin(z))(y), (x,), (1.0,))[1]


def test_third_derivative_mixing_modes_inside_compiled_code() -> None:
    # d^3/dx^3 of x^4 sin x
    x = 0.7
    s, c = math.sin(x), math.cos(x)
    exact = 24 * x * s + 36 * x * x * c - 12 * x ** 3 * s - x ** 4 * c
    assert tl.grad(third)(x) == pytest.approx(exact, rel=1e-10)
    assert tl.jvp(third, (x,), (1.0,))[1] == pytest.approx(exact, rel=1e-10)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_loop(x):
    total = 0.0
    for i in range(x.shape[0] - 1):
        total = total + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


def _rosenbrock_hessian(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    h = np.zeros((n, n))
    for i in range(n - 1):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i + 1, i + 1] += 200
        h[i, i + 1] += -400 * x[i]
        h[i + 1, i] += -400 * x[i]
    return h


@pytest.mark.parametrize("fn", [rosenbrock, rosenbrock_loop])
def test_hessian_of_rosenbrock_in_two_spellings(fn: Any, optimize: str) -> None:
    x = np.array([0.3, -0.8, 1.1, 0.5])
    h = tl.hessian(fn)
    np.testing.assert_allclose(h(x), _rosenbrock_hessian(x), rtol=1e-12)
    assert h.batched.last == "columns"  # (the first call: one jvp per column)
    np.testing.assert_allclose(h(x), _rosenbrock_hessian(x), rtol=1e-12)
    assert h.batched.last == "batched"
    x7 = np.linspace(-1.0, 1.0, 7)  # (another signature: columns, then batched)
    np.testing.assert_allclose(h(x7), _rosenbrock_hessian(x7), rtol=1e-12)
    np.testing.assert_allclose(h(x7), _rosenbrock_hessian(x7), rtol=1e-12)
    assert h.batched.last == "batched"
    v = np.array([1.0, -2.0, 0.5, 0.25])
    hvp = tl.jvp(tl.grad(fn), (x,), (v,))[1]
    np.testing.assert_allclose(hvp, _rosenbrock_hessian(x) @ v, rtol=1e-12)


def mlp(params, x):
    w1, b1, w2 = params
    return np.tanh(np.tanh(x @ w1 + b1) @ w2)


def test_jacfwd_equals_jacrev_and_finite_differences(optimize: str) -> None:
    rng = np.random.default_rng(0)
    params = (rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2)))
    x = rng.normal(size=(5, 3))
    jf = tl.jacfwd(mlp, argnums=1)(params, x)
    jr = tl.jacrev(mlp, argnums=1)(params, x)
    assert jf.shape == (5, 2, 5, 3)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-14)
    h = 1e-6
    e = np.zeros_like(x)
    e[2, 1] = 1.0
    fd = (mlp(params, x + h * e) - mlp(params, x - h * e)) / (2 * h)
    np.testing.assert_allclose(jf[:, :, 2, 1], fd, rtol=1e-6, atol=1e-9)
    # a tuple of parameters: a tuple of Jacobians, one per leaf
    jp = tl.jacfwd(mlp)(params, x)
    jpr = tl.jacrev(mlp)(params, x)
    assert isinstance(jp, tuple) and [j.shape for j in jp] == [(5, 2, 3, 4), (5, 2, 4),
                                                                 (5, 2, 4, 2)]
    for a, b in zip(jp, jpr, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_jacobians_with_argnums_tuples_and_aux() -> None:
    def f(x, y):
        return x * y ** 2, np.sum(x)

    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    (jx, jy), aux = tl.jacfwd(f, argnums=(0, 1), has_aux=True)(x, y)
    np.testing.assert_allclose(jx, np.diag(y ** 2))
    np.testing.assert_allclose(jy, np.diag(2 * x * y))
    assert aux == 3.0
    (rx, ry), aux = tl.jacrev(f, argnums=(0, 1), has_aux=True)(x, y)
    np.testing.assert_allclose(rx, jx)
    np.testing.assert_allclose(ry, jy)


def test_hessian_of_a_scalar_function_with_several_arguments() -> None:
    def f(x, y):
        return np.sum(np.sin(x) * y) + y[0] ** 3

    x, y = np.array([0.2, 0.4]), np.array([1.5, -0.5])
    hx = tl.hessian(f)(x, y)
    np.testing.assert_allclose(hx, np.diag(-np.sin(x) * y), rtol=1e-12)
    hy = tl.hessian(f, argnums=1)(x, y)
    np.testing.assert_allclose(hy, np.array([[6 * 1.5, 0.0], [0.0, 0.0]]), rtol=1e-12)


# --- the batched Hessian (every column in one pass) against one jvp per column ----------


def _batched_and_columns(fn: Any, args: tuple, **kw: Any) -> tuple[Any, Any]:
    """`tl.hessian(fn)(*args)` by one jvp per column (the first call) and batched (the
    second), checking which way each went."""
    h = tl.hessian(fn, **kw)
    columns = h(*args)
    assert h.batched.last == "columns"
    batched = h(*args)
    assert h.batched.last == "batched", h.batched.refused
    return columns, batched


def _assert_trees_close(a: Any, b: Any) -> None:
    la, lb = tl.tree_leaves(a), tl.tree_leaves(b)
    assert tl.tree_map(lambda v: 0, a) == tl.tree_map(lambda v: 0, b)
    for x, y in zip(la, lb, strict=True):
        assert np.shape(x) == np.shape(y) and type(x) is type(y)
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)


def halvings(x):
    # A while loop whose number of iterations depends on the data (the primal).
    s = np.sum(x ** 2)
    while s > 0.1:
        s = s * 0.5
    return np.sum(np.sin(x) * x) * s


def test_batched_hessian_through_a_data_dependent_while_loop(optimize: str) -> None:
    x = np.array([0.3, -1.2, 0.8, 2.0])
    columns, batched = _batched_and_columns(halvings, (x,))
    np.testing.assert_allclose(batched, columns, rtol=1e-12, atol=1e-13)
    eps = 1e-6
    g = tl.grad(halvings)
    for j in range(4):
        e = np.zeros(4)
        e[j] = eps
        np.testing.assert_allclose(batched[:, j], (g(x + e) - g(x - e)) / (2 * eps),
                                   rtol=1e-6, atol=1e-8)


def test_batched_hessian_of_parameter_trees_with_argnums_and_aux(optimize: str) -> None:
    rng = np.random.default_rng(3)
    params = (rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2)))
    x = rng.normal(size=(5, 3))

    def loss(params, x):
        return np.sum(mlp(params, x) ** 2)

    columns, batched = _batched_and_columns(loss, (params, x))
    _assert_trees_close(batched, columns)
    assert batched[0][2].shape == (3, 4, 4, 2)
    # H[i][j] is the transpose of H[j][i]
    np.testing.assert_allclose(batched[0][2], np.transpose(batched[2][0], (2, 3, 0, 1)),
                               rtol=1e-12, atol=1e-13)
    columns, batched = _batched_and_columns(loss, (params, x), argnums=(0, 1))
    _assert_trees_close(batched, columns)

    def with_aux(p, q, d):
        value = tree_loss(p, q, d) + p.b ** 3 * q.a
        return value, (value, p.b)

    p, q, d = Params(np.array([0.1, -0.3]), 1.5), Pair(2.0, np.array([1.0, 2.0])), {"k": 3.0}
    (hc, auxc), (hb, auxb) = _batched_and_columns(with_aux, (p, q, d), argnums=(0, 2),
                                                  has_aux=True)
    _assert_trees_close(hb, hc)
    assert auxb == auxc
    # (tapeless.jacfwd's layout: per argument differentiated, the Jacobian of the gradient)
    assert hb[0][0].b.b == pytest.approx(6 * p.b * q.a)


def test_hessian_falls_back_to_columns_where_vmap_refuses(monkeypatch, optimize: str) -> None:
    from tapeless.primitives import batch_rules

    def f(x):
        return np.sum(np.tanh(x) * x)

    x = np.array([0.2, -0.4, 0.9])
    expected = np.diag(2 / np.cosh(x) ** 2 - 2 * x * np.tanh(x) / np.cosh(x) ** 2)
    # (the tangents' products: what the batched program cannot do without)
    monkeypatch.delitem(batch_rules.BATCH, "mul")
    h = tl.hessian(f)
    for _ in range(3):
        np.testing.assert_allclose(h(x), expected, rtol=1e-12, atol=1e-14)
        assert h.batched.last == "columns"
    assert "no batching rule for mul" in h.batched.refused[1]


COLUMNS = np.array([0, 2, 1, 2])


def gathered(a):
    # An index array closed over (a constant of the program, as the GMM's data is).
    return np.sum(a[:, COLUMNS] ** 2)


def test_gradient_and_hessian_vector_product_with_an_index_array_closed_over(
        optimize: str) -> None:
    a = np.arange(6.0).reshape(2, 3)
    counts = np.array([1.0, 1.0, 2.0])
    np.testing.assert_allclose(tl.grad(gathered)(a), 2 * a * counts)
    v = np.ones((2, 3))
    np.testing.assert_allclose(tl.jvp(tl.grad(gathered), (a,), (v,))[1], 2 * v * counts)


# --- pytrees ------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    w: np.ndarray
    b: float


class Pair(NamedTuple):
    a: float
    b: np.ndarray


def tree_loss(p, q, d):
    return np.sum(np.tanh(p.w) * p.b) + q.a * np.sum(q.b) + d["k"] ** 2


def tree_out(p):
    return {"y": p.w * p.b, "z": (p.b, np.sum(p.w))}


def test_jvp_with_dataclasses_namedtuples_and_dicts(optimize: str) -> None:
    p, q, d = Params(np.array([0.1, -0.3]), 1.5), Pair(2.0, np.array([1.0, 2.0])), {"k": 3.0}
    tp = Params(np.array([1.0, 0.5]), -1.0)
    tq = Pair(0.5, np.array([0.0, 1.0]))
    td = {"k": 2.0}
    value, tangent = tl.jvp(tree_loss, (p, q, d), (tp, tq, td))
    assert value == pytest.approx(tree_loss(p, q, d))
    expected = (np.sum(tp.w * p.b / np.cosh(p.w) ** 2) + np.sum(np.tanh(p.w)) * tp.b +
                tq.a * np.sum(q.b) + q.a * np.sum(tq.b) + 2 * d["k"] * td["k"])
    assert tangent == pytest.approx(expected, rel=1e-12)
    value, tangent = tl.jvp(tree_out, (p,), (tp,))
    assert isinstance(tangent, dict) and set(tangent) == {"y", "z"}
    np.testing.assert_allclose(tangent["y"], tp.w * p.b + p.w * tp.b)
    assert tangent["z"][0] == tp.b and tangent["z"][1] == pytest.approx(1.5)


# --- stop_gradient ----------------------------------------------------------------------


def inner_step(w, x, y):
    return w - 0.1 * tl.grad(lambda v: np.mean((x @ v - y) ** 2))(w)


def maml_first_order(w, x, y):
    # First-order MAML: the inner gradient is a constant of the outer derivative.
    adapted = w - tl.stop_gradient(w - inner_step(w, x, y))
    return np.mean((x @ adapted - y) ** 2)


def test_stop_gradient_is_zero_in_every_mode_and_order(optimize: str) -> None:
    assert tl.grad(lambda x: x * tl.stop_gradient(x))(3.0) == 3.0
    assert tl.jvp(lambda x: x * tl.stop_gradient(x), (3.0,), (1.0,)) == (9.0, 3.0)
    assert tl.hessian(lambda x: x ** 3 * tl.stop_gradient(x))(2.0) == pytest.approx(24.0)
    assert tl.grad(tl.grad(lambda x: x ** 3 * tl.stop_gradient(x)))(2.0) == pytest.approx(24.0)
    assert tl.stop_gradient(np.array([1.0])) == np.array([1.0])


def test_first_order_maml_with_stop_gradient(optimize: str) -> None:
    rng = np.random.default_rng(1)
    w, x, y = rng.normal(size=3), rng.normal(size=(6, 3)), rng.normal(size=6)
    g = tl.grad(maml_first_order)(w, x, y)
    adapted = inner_step(w, x, y)
    # d/dw of the loss at `adapted`, with adapted - w held constant: the loss's gradient
    expected = 2 * x.T @ (x @ adapted - y) / 6
    np.testing.assert_allclose(g, expected, rtol=1e-12)


# --- inside compiled code, and function values -----------------------------------------------


def apply_twice(f, x):
    return f(f(x))


def jvp_of_passed_function(x, act):
    return tl.jvp(lambda y: apply_twice(act, y), (x,), (1.0,))


def scaled(y, s=2.0):
    return y * s


def test_jvp_inside_compiled_code_of_functions_from_outside(optimize: str) -> None:
    f = tl.jit(jvp_of_passed_function)
    value, tangent = f(0.5, np.tanh)
    assert value == pytest.approx(np.tanh(np.tanh(0.5)))
    assert tangent == pytest.approx((1 - np.tanh(np.tanh(0.5)) ** 2) *
                                    (1 - np.tanh(0.5) ** 2))
    assert f(0.5, scaled) == (2.0, 4.0)  # (a default filled in)


def tangent_of_passed(x, t, act):
    return tl.jvp(lambda z: act(z) * z, (x,), (t,))[1]


def inner_sum(w, f):
    return np.sum(f(w) * w)


def grad_of_passed(x, act):
    return tl.grad(inner_sum)(x, act) * x


def _fd(f: Any, x: float, h: float = 1e-5) -> float:
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("act", [np.tanh, scaled], ids=["numpy", "default"])
def test_every_mode_over_a_jvp_inside_compiled_code_given_a_function(act: Any,
                                                                     optimize: str) -> None:
    # Reverse and forward mode over a tl.jvp given a function from outside it (its J- or
    # F-callable derived again with F innermost), to the third order, against finite
    # differences of the compiled function.
    x, t = 0.3, 0.7
    f = tl.jit(tangent_of_passed)
    d_x = tl.grad(tangent_of_passed, (0, 1))(x, t, act)
    assert d_x[0] == pytest.approx(_fd(lambda a: f(a, t, act), x), rel=1e-7)
    assert d_x[1] == pytest.approx(_fd(lambda b: f(x, b, act), t), rel=1e-7)
    assert tl.jvp(lambda a: tangent_of_passed(a, t, act), (x,), (1.0,))[1] == \
        pytest.approx(d_x[0], rel=1e-12)
    g = tl.jit(lambda a: tl.grad(tangent_of_passed)(a, t, act))
    second = _fd(g, x)
    assert tl.grad(lambda a: tl.grad(tangent_of_passed)(a, t, act))(x) == \
        pytest.approx(second, rel=1e-6)
    assert tl.jvp(lambda a: tl.grad(tangent_of_passed)(a, t, act), (x,), (1.0,))[1] == \
        pytest.approx(second, rel=1e-6)
    h = tl.jit(lambda a: tl.jvp(lambda z: tangent_of_passed(z, t, act), (a,), (1.0,))[1])
    assert tl.jvp(h, (x,), (1.0,))[1] == pytest.approx(second, rel=1e-6)


@pytest.mark.parametrize("act", [np.tanh, lambda z: z * z * z], ids=["numpy", "lambda"])
def test_forward_mode_over_a_grad_inside_compiled_code_given_a_function(
        act: Any, optimize: str) -> None:
    # F of the function's J-callable, derived again from the F-callable forward mode
    # holds: against finite differences of the compiled function, element by element.
    x = np.array([0.1, -0.4, 0.7])
    f = tl.jit(grad_of_passed)
    value, tangent = tl.jvp(lambda a: grad_of_passed(a, act), (x,), (np.ones(3),))
    assert value == pytest.approx(f(x, act), rel=1e-12)
    for i in range(3):
        e = np.eye(3)[i]
        fd = _fd(lambda s: f(x + s * e, act)[i], 0.0)
        assert tangent[i] == pytest.approx(fd, rel=1e-6)
    second = tl.jvp(lambda a: tl.jvp(lambda b: grad_of_passed(b, act), (a,),
                                     (np.ones(3),))[1], (x,), (np.ones(3),))[1]
    first = tl.jit(lambda a: tl.jvp(lambda b: grad_of_passed(b, act), (a,),
                                    (np.ones(3),))[1])
    assert second == pytest.approx(_fd(lambda s: first(x + s), 0.0), rel=1e-6)


def cast_square(z, dt):
    return np.sum(z * z.astype(dt))


def grad_cast(x, dt):
    return np.sum(tl.grad(cast_square)(x, dt) * x)


def grad_grad_cast(x, dt):
    return np.sum(tl.grad(grad_cast)(x, dt) * x)


def jvp_cast(x, dt):
    return tl.jvp(lambda z: cast_square(z, dt), (x,), (x,))[1]


def call_cast(f, z, dt):
    return f(z, dt)


def grad_call_cast(x, dt):
    return np.sum(tl.grad(lambda z: call_cast(cast_square, z, dt))(x) * x)


def grad_call_float64(x, dt):
    return np.sum(tl.grad(lambda z: call_cast(cast_square, z, np.float64))(x) * x)


@pytest.mark.parametrize("dt", [np.float64, float], ids=["numpy", "builtin"])
@pytest.mark.parametrize(("fn", "scale"), [(grad_cast, 4.0), (grad_grad_cast, 8.0),
                                           (jvp_cast, 4.0), (grad_call_cast, 4.0),
                                           (grad_call_float64, 4.0)],
                         ids=["grad", "grad_grad", "jvp", "grad_call", "grad_call_const"])
def test_a_class_passed_as_data_through_transforms_inside_compiled_code(
        fn: Any, scale: float, dt: type, optimize: str) -> None:
    # A class used as data (`astype`) inside a tl.grad or tl.jvp called inside compiled
    # code, which reverse or forward mode differentiates again: the J- or F-callable
    # the class becomes there (derived again where it comes from outside) stands for the
    # class, so `astype` gets the class, not a function. Each is scale / 2 * sum(x ** 2).
    x, t = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    assert tl.jit(fn)(x, dt) == pytest.approx(scale / 2 * np.sum(x * x), rel=1e-12)
    assert tl.grad(fn)(x, dt) == pytest.approx(scale * x, rel=1e-12)
    assert tl.jvp(lambda z: fn(z, dt), (x,), (t,))[1] == \
        pytest.approx(scale * np.dot(x, t), rel=1e-12)


class Affine:
    def __init__(self, a):
        self.a = a

    def __call__(self, x):
        return self.a * x + 1.0


LAYERS = [np.sin, lambda z: z * z]


def through_objects(x, layer):
    return layer(x) + LAYERS[0](x) + LAYERS[1](x)


@dataclass(frozen=True)
class AffineField:
    a: float

    def __call__(self, x):
        return self.a * x + 1.0


def test_jvp_calls_objects_and_functions_held_in_containers(optimize: str) -> None:
    value, tangent = tl.jvp(through_objects, (0.3, Affine(2.0)), (1.0, 0.0))
    assert value == pytest.approx(0.6 + 1 + math.sin(0.3) + 0.09)
    assert tangent == pytest.approx(2.0 + math.cos(0.3) + 0.6)
    # a dataclass's fields have tangents
    _, tangent = tl.jvp(through_objects, (0.3, AffineField(2.0)), (1.0, AffineField(0.5)))
    assert tangent == pytest.approx(2.0 + 0.5 * 0.3 + math.cos(0.3) + 0.6)
    # a plain object's cannot: refused, never dropped
    with pytest.raises(tl.GradError, match="make its class a dataclass"):
        tl.jvp(through_objects, (0.3, Affine(2.0)), (1.0, Affine(0.5)))


def test_forward_mode_source_is_readable() -> None:
    from tapeless.fwd_api import _jvp_function

    source = _jvp_function(rosenbrock)._get((np.ones(3), np.ones(3))).source
    assert "x_dot" in source and "ZERO" not in source


# --- errors ------------------------------------------------------------------------


def test_tangents_must_match_primals() -> None:
    with pytest.raises(tl.GradError, match="tangent 0 does not have the structure"):
        tl.jvp(tree_loss, ((1.0, 2.0), 1.0, 1.0), ((1.0,), 1.0, 1.0))
    with pytest.raises(tl.GradError, match=r"shape \(2,\)"):
        tl.jvp(np.sin, (np.ones(3),), (np.ones(2),))
    with pytest.raises(tl.GradError, match="2 primals but 1 tangents"):
        tl.jvp(lambda a, b: a * b, (1.0, 2.0), (1.0,))
    with pytest.raises(tl.GradError, match="must be tuples"):
        tl.jvp(np.sin, 1.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(tl.GradError, match="only floating-point values"):
        tl.jvp(lambda n: n * 2.0, (3,), (1,))


def test_integer_primals_with_zero_tangents_are_allowed() -> None:
    def power(x, n):
        return x ** n

    assert tl.jvp(power, (2.0, 3), (1.0, 0)) == (8.0, 12.0)


def test_random_programs_forward_equals_reverse() -> None:
    import tempfile
    from pathlib import Path

    from test_grad import _load_random, generate_program  # noqa: PLC0415
    from test_random_programs import RandomChoices

    checked = 0
    with tempfile.TemporaryDirectory() as d:
        for seed in range(25):
            fn = _load_random(generate_program(RandomChoices(seed)), Path(d)).f
            for point in [(0.3, -0.7, 3), (1.1, 0.4, 5)]:
                with _quiet():
                    try:
                        expected = tl.grad(fn, (0, 1))(*point)
                    except Exception:  # noqa: BLE001 - programs that raise
                        continue
                    value, tx = tl.jvp(fn, point, (1.0, 0.0, 0))
                    _, ty = tl.jvp(fn, point, (0.0, 1.0, 0))
                if not all(math.isfinite(v) for v in (*expected, tx, ty)):
                    continue
                assert value == pytest.approx(fn(*point), rel=1e-12, abs=1e-12)
                assert tx == pytest.approx(expected[0], rel=1e-9, abs=1e-9)
                assert ty == pytest.approx(expected[1], rel=1e-9, abs=1e-9)
                checked += 1
    assert checked >= 20



def svd_loss(a):
    return np.sum(np.linalg.svd(a, compute_uv=False) ** 2) + np.sum(np.tanh(a))


def test_forward_rules_by_transposition_of_the_reverse_rule(monkeypatch) -> None:
    """A primitive that declares `jvp_by_transposition` gets the tangent of its reverse
    rule's transpose: the same as its written rule's, at first and second order."""
    from tapeless.primitives import PRIMITIVES

    a = np.array([[1.0, 0.3, -0.2], [0.4, 2.0, 0.1]])
    v = np.array([[0.5, -1.0, 0.2], [0.3, 0.1, -0.7]])
    written = tl.jvp(svd_loss, (a,), (v,))[1]
    hvp_written = tl.jvp(tl.grad(svd_loss), (a,), (v,))[1]
    for name in ("np.linalg.svd", "np.tanh"):
        monkeypatch.setattr(PRIMITIVES[name], "jvp_by_transposition", True)
    fresh = _copy_function(svd_loss)
    assert tl.jvp(fresh, (a,), (v,))[1] == pytest.approx(written, rel=1e-10)
    np.testing.assert_allclose(tl.jvp(tl.grad(_copy_function(svd_loss)), (a,), (v,))[1],
                               hvp_written, rtol=1e-9)


def _copy_function(fn: Any) -> Any:
    import types

    return types.FunctionType(fn.__code__, fn.__globals__, fn.__name__)
