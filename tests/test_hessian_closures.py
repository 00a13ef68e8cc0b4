"""Second derivatives of closures inside compiled code (issue 14: transforms compose):
`tl.hessian`, `tl.jacfwd(tl.jacrev(...))` of a function that reads values of the code
around it, and derivatives of such code with respect to those values.

`tl.hessian(f)` inside compiled code is `tl.vmap` of `tl.jvp` of `tl.grad(f)`
(`frontend/jacobians.py`); each is a stand-in whose body is built later
(`ad/api_graphs.expand_transforms`). The jvp's stand-in was given the free variables of
the grad's stand-in before that was built, so none: the closure's outside value `w` was
missing ("%w used before it was transformed", a `GradError`). Now a stand-in's target is
built first. Against JAX (float64) to 1e-8."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

RNG = np.random.default_rng(11)
W = RNG.normal(size=(3, 4))
X = RNG.normal(size=4)
B = RNG.normal(size=3)
C = RNG.normal(size=(4, 4))


def inner(np_, w, b):
    """The closure's body, in `jax.numpy` (the reference)."""
    return lambda v: np_.sum(np_.sin(w @ v + b) * w[:, 0]) + np_.sum(v ** 3) * b[1]


def close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-8, atol=1e-10)


def hessian_of_closure(w, x, b):
    def g(v):
        return np.sum(np.sin(w @ v + b) * w[:, 0]) + np.sum(v ** 3) * b[1]
    return np.sum(tl.hessian(g)(x) * C)


def jacfwd_of_jacrev_of_closure(w, x, b):
    jac = tl.jacfwd(tl.jacrev(lambda v: np.sum(np.sin(w @ v + b) * w[:, 0]) +
                              np.sum(v ** 3) * b[1]))
    return np.sum(jac(x) * C)


def reference(w, x, b):
    return jnp.sum(jax.hessian(inner(jnp, w, b))(x) * C)


# (`tl.jacfwd(tl.jacrev(...))` compiles slowly: about 80 s of CPU on the loaded
# 2-core machine, the jacrev's own `tl.vmap` inside the jvp batched without its
# arguments' kinds)
SPELLINGS = [hessian_of_closure,
             pytest.param(jacfwd_of_jacrev_of_closure, marks=pytest.mark.slow)]


@pytest.mark.parametrize("f", SPELLINGS)
def test_inside_jit(f) -> None:
    close(tl.jit(f)(W, X, B), reference(W, X, B))


@pytest.mark.parametrize("f", SPELLINGS)
@pytest.mark.parametrize("argnums", [0, 1, 2, (0, 2)])
def test_inside_grad(f, argnums) -> None:
    # (argnums 0: the gradient with respect to the closure's outer value `w`, read by
    # the closure and differentiated by the enclosing `tl.grad`, `b` not; 2: the other way
    # round; 1: neither, the Hessian's point)
    got = tl.grad(f, argnums)(W, X, B)
    want = jax.grad(reference, argnums)(W, X, B)
    if isinstance(argnums, int):
        got, want = (got,), (want,)
    for g, r in zip(got, want, strict=True):
        close(g, r)


def test_jvp_along_the_outer_value() -> None:
    # (tangents of `w` flow through the Hessian's own forward mode)
    tw = RNG.normal(size=W.shape)
    value, tangent = tl.jvp(lambda w: hessian_of_closure(w, X, B), (W,), (tw,))
    want_value, want_tangent = jax.jvp(lambda w: reference(w, X, B), (W,), (tw,))
    close(value, want_value)
    close(tangent, want_tangent)


@pytest.mark.slow  # (a fourth derivative: did not finish in 10 minutes on the loaded machine)
def test_hessian_with_respect_to_the_outer_value() -> None:
    # (a Hessian of code that takes a Hessian of a closure over the differentiated value)
    def f(b):
        return hessian_of_closure(W, X, b)

    close(tl.jit(tl.hessian(f))(B), jax.hessian(lambda b: reference(W, X, b))(B))


def test_inside_jit_inside_grad() -> None:
    def f(w, x, b):
        return tl.jit(hessian_of_closure)(w, x, b) * 2.0

    close(tl.grad(f)(W, X, B), 2.0 * jax.grad(reference)(W, X, B))


def test_hessian_of_a_closure_called_in_a_loop() -> None:
    # (the closure's outside value differs from one trip of a loop to the next)
    def f(w, x):
        def term(s):
            return np.sum(tl.hessian(lambda v: np.sum(np.tanh(s @ v)))(x) * C)

        total = 0.0
        for k in range(2):
            total = total + term(w * (k + 1.0))
        return total

    def ref(w, x):
        return sum(jnp.sum(jax.hessian(lambda v: jnp.sum(jnp.tanh(w * (k + 1.0) @ v)))(x) * C)
                   for k in range(2))

    close(tl.jit(f)(W, X), ref(W, X))
    close(tl.grad(f)(W, X), jax.grad(ref)(W, X))
