"""`tl.jacfwd(tl.jacrev(f))` and `tl.jacfwd` / `tl.jacrev` of `tl.vmap(f)` inside
compiled code, where f returns a number, reads globals, or is a closure (issue 14:
transforms compose; BENCHMARKS.md, "`tl.jacfwd(tl.jacrev(f))` of a function returning a
number, and of a closure").

Inside compiled code `tl.jacfwd(g)` is a `tl.vmap` of a `tl.jvp` of g, and the jvp of a g
that calls `tl.vmap` (the jacrev's rows) is taken with those calls batched for the
primals' kinds (`vmap_api._jvp_for_kinds`). That did not happen where

- f returns a number: `np.size`/`np.shape` of a number and a full reduction of one had
  no kind, so the rows' argument `basis(y)` had none;
- the jvp's function is a closure, or the jvp stands inside the closed copy of the outer
  `tl.vmap`'s function (`vmap_api._closed`): the copies of the stand-ins lost what they
  stand for;
- the jvp's function is the `tl.vmap` itself (`tl.jacfwd(tl.vmap(f))`).

Then F differentiated the batching rules' run-time decisions, and the outer `tl.vmap`
batched those: 27,000-33,000 lines and 40-50 s of compile. Given kinds, the code
took a path it never took before, where the outer `tl.vmap` batched a number of axes
that is the same for every element (an int array) and its rule for `*` multiplied a
tuple by it: `(1,) * k` as NumPy's product, an int array, then concatenated with an empty
shape `()`, read as an array of shape (0,) ("operands could not be broadcast together
with shapes (4,) (0,)"). `seq * n` of a batched count is a repetition now
(`batch_rules.repeated`). Against JAX (float64), by-hand derivatives and finite
differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_compose_matrix import field, looped  # (a loop and an if on values)

import tapeless as tl

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

RNG = np.random.default_rng(5)
W = RNG.normal(size=(3, 4))
B = RNG.normal(size=3)
X = RNG.normal(size=4)


def cube_sum(v: Any) -> Any:
    return np.sum(v ** 3)


def reads_globals(v: Any) -> Any:
    return np.sum(np.sin(W @ v + B) * W[:, 0]) + np.sum(v ** 3) * B[1]


def reads_globals_jax(v: Any) -> Any:
    return jnp.sum(jnp.sin(W @ v + B) * W[:, 0]) + jnp.sum(v ** 3) * B[1]


def field_jax(v: Any) -> Any:
    return jnp.sin(v) * v + jnp.roll(v, 1) ** 2 * 0.5


def hessian_of_cube_sum(x: Any) -> Any:
    return tl.jacfwd(tl.jacrev(cube_sum))(x)


def hessian_of_reads_globals(x: Any) -> Any:
    return tl.jacfwd(tl.jacrev(reads_globals))(x)


def second_derivatives_of_field(x: Any) -> Any:
    return tl.jacfwd(tl.jacrev(field))(x)


def hessian_of_closure(w: Any, x: Any, b: Any) -> Any:
    return tl.jacfwd(tl.jacrev(lambda v: np.sum(np.sin(w @ v + b) * w[:, 0]) +
                               np.sum(v ** 3) * b[1]))(x)


def close(got: Any, want: Any) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-12)


def lines(jitted: Any, *args: Any) -> int:
    return len(jitted._get(args).source.splitlines())


def test_hessian_of_a_function_returning_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    jitted = tl.jit(hessian_of_cube_sum)
    close(jitted(X), np.diag(6 * X))
    # (27,600 lines when F differentiated the rows' run-time batching rules)
    # (13,700 lines since a full reduction of a number has no kind again: a number's
    # kind is float, and `x ** 0.5` of a negative float is complex in Python; with it,
    # 4,640)
    assert lines(jitted, X) < 16000


def test_hessian_of_a_function_reading_globals_through_a_matrix_product(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # (raised "operands could not be broadcast together with shapes (4,) (0,)" once kinds
    # were given: the outer tl.vmap's `(1,) * k` of a batched k)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    close(tl.jit(hessian_of_reads_globals)(X), jax.hessian(reads_globals_jax)(X))


def test_hessian_of_a_closure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    jitted = tl.jit(hessian_of_closure)
    close(jitted(W, X, B), jax.hessian(reads_globals_jax)(X))
    # (33,600 lines when the closed copy's stand-ins had lost what they stand for)
    # (18,000 lines without a kind for a full reduction of a number, as above)
    assert lines(jitted, W, X, B) < 21000


def test_second_derivatives_of_a_function_returning_an_array(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    close(tl.jit(second_derivatives_of_field)(X), jax.jacfwd(jax.jacrev(field_jax))(X))


def jacfwd_of_vmap(x: Any) -> Any:
    return tl.jacfwd(tl.vmap(looped))(x)


def jacrev_of_vmap(x: Any) -> Any:
    return tl.jacrev(tl.vmap(looped))(x)


def finite_differences(f: Any, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    cols = []
    for i in range(x.size):
        d = np.zeros(x.size)
        d[i] = eps
        d = d.reshape(x.shape)
        cols.append((np.asarray(f(x + d)) - np.asarray(f(x - d))) / (2 * eps))
    return np.moveaxis(np.array(cols), 0, -1).reshape(np.shape(f(x)) + x.shape)


# (`tl.jacrev(tl.vmap(looped))` is not batched for kinds yet: about 90 s of compile.
# With three columns it raises "'_Unbound' object is not subscriptable" on `main` too.)
@pytest.mark.parametrize("comp", [jacfwd_of_vmap,
                                  pytest.param(jacrev_of_vmap, marks=pytest.mark.slow)])
def test_jacobians_of_vmap_of_a_looped_function(comp: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    # (rows whose sums take each branch of the if)
    xs = np.array([[0.3, -0.2], [-1.1, 0.4]])
    got = tl.jit(comp)(xs)
    want = finite_differences(lambda z: np.array([looped(r) for r in z]), xs)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_jacfwd_of_vmap_is_batched_for_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    xs = np.array([[0.3, -0.2], [-1.1, 0.4]])
    jitted = tl.jit(jacfwd_of_vmap)
    jitted(xs)
    # (27,700 lines when the jvp of the tl.vmap itself was not batched for kinds)
    assert lines(jitted, xs) < 4000


def repeat(k: Any) -> Any:
    return len((1,) * k) + 0 * k


def unit_axes(x: Any, k: Any) -> Any:
    return np.reshape(x, (1,) * k + np.shape(x))


def test_a_tuple_repeated_by_a_batched_count() -> None:
    # (`(1,) * k` of a batched k was NumPy's product: an int array, not a tuple)
    ks = np.array([2, 2, 2])
    np.testing.assert_array_equal(tl.vmap(repeat)(ks), [2, 2, 2])
    np.testing.assert_array_equal(tl.jit(lambda z: tl.vmap(repeat)(z))(ks), [2, 2, 2])
    assert tl.vmap(unit_axes)(np.ones((3, 2)), ks).shape == (3, 1, 1, 2)
    # (counts that differ: sequences of different lengths, each element on its own)
    np.testing.assert_array_equal(tl.vmap(repeat)(np.array([1, 2, 3])), [1, 2, 3])
    # (no count, and a negative one, as Python repeats; a count that is not an int
    # raises Python's TypeError, as a loop over the batch would)
    np.testing.assert_array_equal(tl.vmap(repeat)(np.array([0, 0])), [0, 0])
    np.testing.assert_array_equal(tl.vmap(repeat)(np.array([-2, -2])), [0, 0])
    for bad in (np.array([2.0, 2.0]), np.array([True, True])):
        with pytest.raises(TypeError, match="non-int"):
            tl.vmap(repeat)(bad)


def test_sizes_and_shapes_of_numbers_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)

    def sizes(x: Any) -> Any:
        y = np.sum(x)  # (a NumPy scalar)
        return np.zeros(np.shape(x)) + np.size(x) + np.size(y) + len(np.shape(y)) + \
            np.sum(y)

    jitted = tl.jit(sizes)
    close(jitted(X), np.zeros(4) + 5.0 + np.sum(X))
    source = jitted.source_for(X)
    assert "np.size" not in source and "np.shape" not in source
