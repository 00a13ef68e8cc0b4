"""`tl.jacfwd`, `tl.jacrev` and `tl.hessian` inside compiled code (JAX's `jit(hessian(f))`
and friends), called there or made once as globals: the same Jacobians as outside
compiled code, differentiable again, batched by `tl.vmap`, and refused with a located
error where not supported (tuples of argnums, has_aux)."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import elementwise_fd

import tapeless as tl

SCALE = 1.5


def field(x, s):
    return np.sin(x) * x * s + np.roll(x, 1) ** 2


def energy(x, s):
    return np.sum(np.cos(x) * x ** 2) * s + np.sum(x[:1] * x[-1:])


RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 3))
V = RNG.normal(size=4)


@pytest.mark.parametrize("kind", ["jacfwd", "jacrev"])
@pytest.mark.parametrize("x", [X, V, 0.7], ids=["matrix", "vector", "float"])
def test_jacobians_inside_jit(kind: str, x) -> None:
    jac = getattr(tl, kind)

    def inside(x, s):
        return jac(field)(x, s) + 0.0

    np.testing.assert_allclose(tl.jit(inside)(x, 1.5), jac(field)(x, 1.5), rtol=1e-12)
    # with respect to the second argument
    np.testing.assert_allclose(tl.jit(lambda x, s: jac(field, 1)(x, s))(x, 1.5),
                               jac(field, 1)(x, 1.5), rtol=1e-12)


@pytest.mark.parametrize("x", [V, X], ids=["vector", "matrix"])
def test_hessian_inside_jit(x) -> None:
    def inside(x, s):
        return tl.hessian(energy)(x, s)

    H = tl.jit(inside)(x, 2.0)
    np.testing.assert_allclose(H, tl.hessian(energy)(x, 2.0), rtol=1e-12)
    assert H.shape == x.shape * 2


def cubic(x):
    return np.sum(np.sin(x) * x ** 2)


def test_the_gradient_of_a_hessian_inside_jit() -> None:
    # d/dx of sum(H * W): a third derivative, against finite differences of the Hessian
    x = np.array([0.3, -1.2])
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = tl.grad(lambda u: np.sum(tl.hessian(cubic)(u) * W))(x)
    fd = elementwise_fd(lambda u: float(np.sum(tl.hessian(cubic)(u) * W)), x)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_a_closure_inside_compiled_code() -> None:
    def loss(w, x):
        def model(v):
            return np.tanh(w @ v)

        J = tl.jacfwd(model)(x)
        Jr = tl.jacrev(model)(x)
        return np.sum(J ** 2) + np.sum(Jr * J)

    w, x = RNG.normal(size=(3, 4)), RNG.normal(size=4)

    def reference(w, x):
        J = tl.jacfwd(lambda v: np.tanh(w @ v))(x)
        return np.sum(J ** 2) * 2.0

    assert tl.jit(loss)(w, x) == pytest.approx(reference(w, x), rel=1e-12)
    g = tl.grad(loss)(w, x)
    np.testing.assert_allclose(g, elementwise_fd(lambda u: reference(u, x), w), rtol=1e-5,
                               atol=1e-7)


def scaled_cube(x):
    return SCALE * np.sum(x ** 3)


def scaled_square(x):
    return SCALE * x ** 2


hessian_of_cube = tl.hessian(scaled_cube)
jacfwd_of_square = tl.jacfwd(scaled_square)
jacrev_of_square = tl.jacrev(scaled_square)


def calls_the_globals(x):
    return hessian_of_cube(x) + jacfwd_of_square(x) - jacrev_of_square(x)


def test_globals_made_by_the_transforms(monkeypatch) -> None:
    x = np.array([1.0, 2.0, -0.5])
    f = tl.jit(calls_the_globals)
    np.testing.assert_allclose(f(x), np.diag(6.0 * SCALE * x), rtol=1e-12)
    monkeypatch.setitem(globals(), "SCALE", 4.0)  # a global the functions read, rebound
    np.testing.assert_allclose(f(x), np.diag(24.0 * x), rtol=1e-12)
    np.testing.assert_allclose(tl.grad(lambda x: np.sum(jacfwd_of_square(x)))(x),
                               np.full(3, 8.0), rtol=1e-12)


pair_hessian = tl.hessian(energy, argnums=(0, 1))


def test_what_is_not_supported_is_refused_where_it_is_written() -> None:
    with pytest.raises(tl.CompileError, match="int argnums, without has_aux") as e:
        tl.jit(lambda x: tl.jacfwd(field, (0, 1))(x, 1.0))(V)
    assert "test_compiled_jacobians.py" in str(e.value)
    with pytest.raises(tl.CompileError, match="int argnums, without has_aux"):
        tl.jit(lambda x: tl.jacrev(field, has_aux=True)(x, 1.0))(V)
    with pytest.raises(tl.CompileError, match="cannot be called inside compiled code") as e:
        tl.jit(lambda x: pair_hessian(x, 1.0))(V)
    assert "test_compiled_jacobians.py" in str(e.value)


def test_vmap_of_the_gradient_of_a_closure_inside_compiled_code() -> None:
    # (The gradient's stand-in reads the enclosing function's values: vmap refused it,
    # "outside its scope".)
    def loss(w, x):
        def model(v):
            return np.tanh(w @ v)

        rows = tl.vmap(lambda c: tl.grad(lambda u, c: np.sum(model(u) * c))(x, c))(np.eye(3))
        return np.sum(rows ** 2)

    w, x = RNG.normal(size=(3, 4)), RNG.normal(size=4)
    J = tl.jacrev(lambda v: np.tanh(w @ v))(x)
    assert tl.jit(loss)(w, x) == pytest.approx(np.sum(J ** 2), rel=1e-12)


def g_of_two(u, c):
    return np.sum(np.sin(u) * c)


NESTED = {
    # (vmap over examples of a vmap over cotangents of a gradient: the gradient's graph
    # is batched as a graph of its own, which takes the batch size first, and the
    # comprehension over a tree's leaves inside it called it without: "missing 1
    # required positional argument")
    "vmap(vmap(grad))": lambda x: tl.vmap(lambda c: tl.grad(g_of_two)(x, c))(np.eye(3)),
    "vmap(vmap(grad of a closure))": lambda x: tl.vmap(
        lambda c: tl.grad(lambda u, c: np.sum(np.sin(u) * c * x))(x, c))(np.eye(3)),
    # (a select of masked state whose leaves had other batch axes: a broadcast error)
    "vmap(vmap(jvp))": lambda x: tl.vmap(
        lambda t: tl.jvp(lambda u: np.sin(u), (x,), (t,))[1])(np.eye(3)),
    "vmap(jacfwd)": lambda x: tl.jacfwd(field)(x, 1.0),
    "vmap(jacrev)": lambda x: tl.jacrev(field)(x, 1.0),
    "vmap(hessian)": lambda x: tl.hessian(energy)(x, 1.0),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_vmap_of_functions_taking_derivatives_batched_inside(name: str) -> None:
    f = NESTED[name]
    xs = np.random.default_rng(2).normal(size=(4, 3))
    np.testing.assert_allclose(tl.vmap(f)(xs), np.stack([f(x) for x in xs]), rtol=1e-12,
                               atol=1e-14)


def two_args(x, s):
    return np.sin(x) * s + x ** 2 * s ** 2


def test_vjp_inside_compiled_code() -> None:
    # (Refused before: "tapeless.vjp cannot be called inside compiled code".)
    def inside(x, s, c):
        y, pull = tl.vjp(two_args, x, s)
        gx, gs = pull(c)
        return y, gx, gs, pull(2.0 * c)[1]

    x, c = RNG.normal(size=3), RNG.normal(size=3)
    y, pull = tl.vjp(two_args, x, 1.5)
    got = tl.jit(inside)(x, 1.5, c)
    np.testing.assert_allclose(got[0], y, rtol=1e-12)
    for a, b in zip(got[1:3], pull(c), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert got[3] == pytest.approx(2.0 * pull(c)[1], rel=1e-12)
    # a scalar function of a matrix: the pullback of a number
    y, pull = tl.vjp(energy, X, 2.0)
    got = tl.jit(lambda x: tl.vjp(energy, x, 2.0)[1](0.5))(X)
    np.testing.assert_allclose(got[0], 0.5 * pull(1.0)[0], rtol=1e-12)


def test_the_gradient_of_a_vjp_of_a_closure() -> None:
    # Gauss-Newton-like: |J^T J x|^2 through a closure over w, differentiated in w
    def loss(w, x):
        def model(v):
            return np.tanh(w @ v)

        y, pull = tl.vjp(model, x)
        (g,) = pull(y)
        return np.sum(g ** 2)

    w, x = RNG.normal(size=(2, 3)), RNG.normal(size=3)

    def reference(w):
        J = tl.jacfwd(lambda v: np.tanh(w @ v))(x)
        return float(np.sum((J.T @ np.tanh(w @ x)) ** 2))

    assert tl.jit(loss)(w, x) == pytest.approx(reference(w), rel=1e-12)
    np.testing.assert_allclose(tl.grad(loss)(w, x), elementwise_fd(reference, w), rtol=1e-5,
                               atol=1e-7)


def test_vjp_and_linearize_refusals_inside_compiled_code() -> None:
    with pytest.raises(tl.CompileError, match="primals as positional arguments") as e:
        tl.jit(lambda x: tl.vjp(field, x, 1.0, backend="python"))(V)
    assert "test_compiled_jacobians.py" in str(e.value)
    with pytest.raises(tl.CompileError, match="cannot be called inside compiled code"):
        tl.jit(lambda x: tl.linearize(field, x, 1.0))(V)


def test_transforms_of_a_jacobian_called_from_python() -> None:
    # (Compiled the Python computing the Jacobian outside compiled code: refused, "tl.vjp
    # cannot be called inside compiled code", "tl.jvp takes three arguments".)
    x, t = np.array([0.1, 0.2, -0.3]), np.array([1.0, -0.5, 2.0])

    def sq(x):
        return np.sin(x) * x

    J, R = tl.jacfwd(sq), tl.jacrev(sq)
    want = np.diag(t * (2.0 * np.cos(x) - x * np.sin(x)))
    for jac in (J, R):
        np.testing.assert_allclose(tl.jvp(jac, (x,), (t,))[1], want, rtol=1e-12)
        np.testing.assert_allclose(tl.jit(jac)(x), jac(x), rtol=1e-12)
    H = tl.hessian(lambda u: np.sum(sq(u)))
    np.testing.assert_allclose(tl.jvp(H, (x,), (t,))[1],
                               np.diag(t * (-3.0 * np.sin(x) - x * np.cos(x))), rtol=1e-12)
    np.testing.assert_allclose(tl.jacfwd(R)(x), tl.jacrev(J)(x), rtol=1e-12)
    assert tl.jacfwd(R)(x).shape == (3, 3, 3)
    np.testing.assert_allclose(tl.vjp(R, x)[1](np.eye(3))[0],
                               2.0 * np.cos(x) - x * np.sin(x), rtol=1e-12)


@pytest.mark.parametrize("kind", ["jacfwd", "jacrev", "hessian"])
def test_an_argument_of_no_elements(kind: str) -> None:
    # (vmap over no tangents cannot know the output's shape: zeros of shape(out) +
    # shape(x), as outside compiled code)
    jac = getattr(tl, kind)
    fn = energy if kind == "hessian" else field
    empty = np.zeros(0)
    inside = tl.jit(lambda x: jac(fn)(x, 1.0))(empty)
    assert inside.shape == jac(fn)(empty, 1.0).shape == (0, 0)
