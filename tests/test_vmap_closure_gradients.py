"""Gradients with respect to values a `tl.vmap`ped closure reads from the code around it,
where the `tl.vmap` call sits in a function nested in the one differentiated (an `if`
branch of a nested def, a conditional expression of a lambda, a def inside a def, the
code `tl.jacrev` / `tl.jacfwd` / `tl.hessian` write inside compiled code). Batched for the
kinds of its arguments (`vmap_api._batch_for_kinds`), such a call is given those values
as unmapped arguments; the functions enclosing the call must then be seen to read them,
or reverse mode gives them no sensitivity (it gave zero, silently). Against finite
differences of the same function written with NumPy only."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import elementwise_fd

import tapeless as tl

RNG = np.random.default_rng(7)
W = RNG.normal(size=(3, 4))
X = RNG.normal(size=4)
C = RNG.normal(size=(3, 4))


def check(f, reference, argnums=(0, 1)) -> None:
    args = (W, X)
    assert tl.jit(f)(*args) == pytest.approx(reference(*args), rel=1e-10)
    for a in argnums:
        g = tl.grad(f, a)(*args)

        def at(u, a=a):
            return reference(*[u if i == a else v for i, v in enumerate(args)])

        np.testing.assert_allclose(g, elementwise_fd(at, args[a]), rtol=1e-5, atol=1e-7)


def rows(w, x):
    return np.stack([np.tanh(w @ x) * c for c in np.eye(3)])


def test_vmap_of_a_closure_in_a_branch_of_a_nested_def() -> None:
    def f(w, x):
        def inner(x):
            if x[0] > 100:
                return 0.0
            return tl.vmap(lambda c: np.sin(w[0] * c))(x)
        return np.sum(inner(x) * x)

    check(f, lambda w, x: np.sum(np.sin(np.outer(x, w[0])) * x))


def test_vmap_of_a_closure_in_a_conditional_expression_of_a_lambda() -> None:
    def f(w, x):
        J = (lambda: 0.0 if x[0] > 100 else tl.vmap(lambda c: np.tanh(w @ x) * c)(np.eye(3)))()
        return np.sum(J * C[:, :3])

    check(f, lambda w, x: np.sum(rows(w, x) * C[:, :3]))


def test_vmap_of_a_closure_in_a_def_inside_a_def() -> None:
    def f(w, x):
        def outer():
            def inner():
                return tl.vmap(lambda c: np.tanh(w @ x) * c)(np.eye(3))
            return inner()
        return np.sum(outer() * C[:, :3])

    check(f, lambda w, x: np.sum(rows(w, x) * C[:, :3]))


def test_vmap_of_a_closure_taking_a_gradient_in_a_branch() -> None:
    # (the closure mapped takes a `tl.grad` of a closure of its own: the rows of the
    # Jacobian of tanh(w @ x) in x)
    def f(w, x):
        def inner(x):
            if x[0] > 100:
                return 0.0
            return tl.vmap(lambda c: tl.grad(lambda p: np.sum(np.tanh(w @ p) * c))(x))(
                np.eye(3))
        return np.sum(inner(x) * C)

    def reference(w, x):
        return np.sum((1 - np.tanh(w @ x) ** 2)[:, None] * w * C)

    check(f, reference)


def jacobian(w, x):
    return (1 - np.tanh(w @ x) ** 2)[:, None] * w


def test_jacrev_of_a_closure() -> None:
    def f(w, x):
        def model(v):
            return np.tanh(w @ v)
        return np.sum(tl.jacrev(model)(x) * C)

    check(f, lambda w, x: np.sum(jacobian(w, x) * C))


def test_jacfwd_of_a_closure() -> None:
    def f(w, x):
        return np.sum(tl.jacfwd(lambda v: np.tanh(w @ v))(x) * C)

    check(f, lambda w, x: np.sum(jacobian(w, x) * C))


def test_hessian_of_a_closure() -> None:
    def f(w, x):
        return np.sum(tl.hessian(lambda v: np.sum(np.sin(w @ v) * w[:, 0]))(x) * np.outer(x, x))

    def reference(w, x):
        H = (w.T * (-np.sin(w @ x) * w[:, 0])) @ w
        return np.sum(H * np.outer(x, x))

    check(f, reference)


def test_vmap_of_a_closure_in_a_branch_inside_jit_inside_grad() -> None:
    def f(w, x):
        def inner(x):
            if x[0] > 100:
                return 0.0
            return tl.vmap(lambda c: np.tanh(w @ x) * c)(np.eye(3))
        return np.sum(tl.jit(inner)(x) * C[:, :3])

    check(f, lambda w, x: np.sum(rows(w, x) * C[:, :3]))


def test_vmap_of_a_closure_over_a_matrix_in_a_branch() -> None:
    # (mapped over rows of an argument, the closure reading an array of known kind)
    def f(w, x):
        def inner(A):
            if A[0, 0] > 100:
                return 0.0 * A
            return tl.vmap(lambda a: np.tanh(a * x) @ w.T)(A)
        return np.sum(inner(w) ** 2)

    def reference(w, x):
        return np.sum((np.tanh(w * x) @ w.T) ** 2)

    check(f, reference)
