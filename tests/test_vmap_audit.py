"""`tl.vmap` on programs written as a researcher coming from JAX or PyTorch writes them:
the batched result equals stacking the plain Python function's results over the batch
(exactly for ints and bools, to 1e-12 for floats), and per-example derivatives equal a
loop of `tl.grad` (or JAX). Each case is one program the other vmap tests do not run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from corpus.programs import collatz_steps  # (the corpus' program, batched here)

import tapeless as tl

RNG = np.random.default_rng(14)


def stacked(fn, *columns):
    return np.stack([np.asarray(fn(*args)) for args in zip(*columns, strict=True)])


def same(got: Any, want: Any, tol: float = 1e-12) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "biu":
        assert got.dtype.kind == want.dtype.kind, (got.dtype, want.dtype)
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# --- the programs ------------------------------------------------------------------------


def set_at(x, i):
    y = np.zeros(5)
    y[i] = x
    y[(i + 1) % 5] += 2 * x
    return y


def scaled_in_place(v, i):
    a = np.ones(4)
    a[i] += v
    a[i] *= 2.0
    return a


def branches_bind_different_names(x):
    if x > 0:
        a = x * 2
        b = 1.0
    else:
        a = -x
        b = x ** 2
    return a + b


def bound_in_one_branch_only(x):
    y = x
    if x > 1:
        y = x * 10
        z = 3
    else:
        z = 4
    return y * z


def while_break_continue(x):
    n = 0
    s = 0.0
    while n < 20:
        n += 1
        if n % 3 == 0:
            continue
        s += x * n
        if s > 10:
            break
    return s + n


def return_inside_while_true(x):
    k = 0
    while True:
        x = x * 0.5
        k += 1
        if x < 1:
            return x + k


def power_series(x, n):
    s = 0.0
    for i in range(n):
        s = s + x ** i
    return s


def strided_range(x, a, b):
    s = 0.0
    for i in range(a, b, 2):
        s += x * i
    return s


def power_by_recursion(x, n):
    if n == 0:
        return 1.0
    return x * power_by_recursion(x, n - 1)


def has_negative(x):
    found = False
    for i in range(x.shape[0]):
        if x[i] < 0:
            found = True
    return found


def linear_algebra(a, b):
    x = np.linalg.solve(a, b)
    return np.linalg.det(a) + np.linalg.norm(x) + np.sum(np.linalg.inv(a))


def reductions_with_axes(x):
    m = x.mean(axis=0, keepdims=True)
    s = np.sum(x - m, axis=1)
    return np.max(x, axis=-1) + s + np.min(x) + np.prod(x, axis=0, keepdims=True).sum()


def leaky_clipped(x, lo):
    y = np.where(x > 0, x, 0.1 * x)
    return np.clip(y, lo, 1.0) + np.maximum(x, lo) + np.minimum(y, 0.5)


def matmul(a, b):
    return a @ b


def against_higher_rank(x, m):
    return m * x + m.sum()


def scaled_by(x, c):
    return x * c + c ** 2


def squared_norm(x):
    return np.sum(x ** 2)


def int_arithmetic(a, b):
    return a // b, a % b, -a // b, a ** 2 // 3, divmod(a, b)[0]


def int_state(n, x):
    k = n
    s = 0
    while k > 0:
        s += k
        k -= 2
    return s * x, s


def bool_logic(x, y):
    return (x > 0) & (y < 0) | (x == y), np.logical_xor(x > 0, y > 0), not (x > 0)


def short_circuit(x, y):
    if x > 0 and y > 0:
        return 1.0
    elif x > 0 or y > 0:
        return 2.0
    return 3.0


def and_or_values(x, y):
    return (x and y) + (x or y)


def python_builtins(x, y):
    return max(x, y) + min(x, 0.0) + abs(x - y) + (x if x > 0 else -2 * x)


def max_of_items(x):
    return max(x[0], x[1], x[2]) + min([x[0], x[1]])


def sorting(x):
    i = np.argmax(x)
    return np.sort(x)[1] + x[i] + np.argsort(x)[0]


def cumulative(x):
    out = np.zeros_like(x)
    acc = 0.0
    for k in range(x.shape[0]):
        acc = acc + x[k]
        out[k] = acc
    return out


def row_overwritten(v, w):
    a = w.copy()
    a[0, :] = v
    return a.sum(axis=0)


def mutated_in_a_branch(x):
    y = np.zeros(3)
    if x[0] > 0:
        y[0] = x[1]
    else:
        y[2] = x[2]
        y[1] += 1.0
    return y


def filled_in_a_while(x, n):
    y = np.zeros(6)
    i = 0
    while i < n:
        y[i] = x * i
        i += 1
    return y


def list_summed(x, n):
    out = []
    for i in range(n):
        out.append(x * i)
    return sum(out)


def indexed_both_ways(m, i, j):
    return m[i, j] + m[i].sum() + m[:, j].sum()


def negative_index(x, k):
    return x[-k] + x[k - 1]


def gathered(x, idx):
    return x[idx]


def tail_zeroed_doubled(x, i):
    x = x.copy()
    x[i] = 0.0
    x[i:] *= 2
    return x


def sliced_at(x, k):
    return x[k:].sum() + x[:k].prod()


def positive_sum(x):
    return x[x > 0].sum()


X5 = RNG.normal(size=(4, 5))
I4 = np.array([0, 2, 4, 1])
XS = RNG.normal(size=4)
NS = np.array([0, 1, 4, 2])
A33 = RNG.normal(size=(4, 3, 3)) + 3 * np.eye(3)
B3 = RNG.normal(size=(4, 3))
X345 = RNG.normal(size=(3, 4, 5))
M325 = RNG.normal(size=(2, 5, 3))
W35 = RNG.normal(size=(3, 5))
A32 = RNG.normal(size=(4, 3, 2))
B25 = RNG.normal(size=(2, 5))
B425 = RNG.normal(size=(4, 2, 5))
A_32 = RNG.normal(size=(3, 2))
V42 = RNG.normal(size=(4, 2))
T232 = RNG.normal(size=(2, 3, 2))
IA = np.array([7, -7, 3, 0, 10])
IB = np.array([2, 3, -4, 5, 3])
BX = np.array([1.0, -1.0, 0.0, 2.0])
BY = np.array([-1.0, -1.0, 0.0, 3.0])

# (name, function, arguments, in_axes): arguments mapped along their in_axes
CASES: list[tuple[str, Any, tuple, Any]] = [
    ("set_at", set_at, (XS, I4), 0),
    ("scaled_in_place", scaled_in_place, (XS, I4 % 4), 0),
    ("branches_bind_different_names", branches_bind_different_names,
     (np.array([-1.5, 0.0, 2.0, 3.0, -0.2]),), 0),
    ("bound_in_one_branch_only", bound_in_one_branch_only,
     (np.array([-1.5, 0.0, 2.0, 3.0, -0.2]),), 0),
    ("while_break_continue", while_break_continue,
     (np.array([0.1, 1.0, 3.0, -1.0, 100.0]),), 0),
    ("return_inside_while_true", return_inside_while_true, (np.array([0.5, 3.0, 100.0]),), 0),
    ("power_series", power_series, (XS, NS), 0),
    ("strided_range", strided_range, (XS, np.array([0, 1, 5, 3]), np.array([5, 1, 9, 10])), 0),
    ("power_by_recursion", power_by_recursion, (XS, NS), 0),
    ("collatz_steps", collatz_steps, (np.array([1, 2, 3, 7, 27]),), 0),
    ("has_negative", has_negative, (RNG.normal(size=(6, 3)),), 0),
    ("linear_algebra", linear_algebra, (A33, B3), 0),
    ("linear_algebra_unbatched_matrix", linear_algebra, (A33[0], B3), (None, 0)),
    ("reductions_with_axes", reductions_with_axes, (X345,), 0),
    ("reductions_with_axes_axis_1", reductions_with_axes, (X345,), 1),
    ("leaky_clipped", leaky_clipped, (X5, np.array([-0.5, -0.1, 0.0, 0.2])), 0),
    ("leaky_clipped_unbatched_bound", leaky_clipped, (X5, -0.3), (0, None)),
    ("matmul_batched_left", matmul, (A32, B25), (0, None)),
    ("matmul_batched_right", matmul, (A_32, B425), (None, 0)),
    ("matrix_vector_batched_vector", matmul, (A_32, V42), (None, 0)),
    ("vector_matrix_batched_vector", matmul, (V42, B25), (0, None)),
    ("vector_dot", matmul, (B3, B3), 0),
    ("stacked_matmul_unbatched_left", matmul, (T232, B425), (None, 0)),
    ("against_higher_rank", against_higher_rank, (B3, M325), (0, None)),
    ("number_against_higher_rank", against_higher_rank, (XS, M325), (0, None)),
    ("scaled_by_python_float", scaled_by, (XS, 2.5), (0, None)),
    ("scaled_by_0d_array", scaled_by, (XS, np.array(2.5)), (0, None)),
    ("batch_of_one", squared_norm, (np.ones((1, 3)),), 0),
    ("while_batch_of_one", while_break_continue, (np.array([3.0]),), 0),
    ("int_arithmetic", int_arithmetic, (IA, IB), 0),
    ("int_state", int_state, (np.array([0, 1, 5, 4]), XS), 0),
    ("bool_logic", bool_logic, (BX, BY), 0),
    ("short_circuit", short_circuit, (BX, BY), 0),
    ("and_or_values", and_or_values, (BX, BY), 0),
    ("python_builtins", python_builtins, (BX, BY), 0),
    ("max_of_items", max_of_items, (X5,), 0),
    ("sorting", sorting, (X5,), 0),
    ("cumulative", cumulative, (X5,), 0),
    ("row_overwritten", row_overwritten, (X5, W35), (0, None)),
    ("mutated_in_a_branch", mutated_in_a_branch, (X5,), 0),
    ("filled_in_a_while", filled_in_a_while, (XS, np.array([0, 6, 2, 3])), 0),
    ("list_summed", list_summed, (XS, np.array([0, 6, 2, 3])), 0),
    ("indexed_both_ways", indexed_both_ways, (A33, np.array([0, 1, 2, 2]),
                                              np.array([2, 0, 1, 2])), 0),
    ("indexed_both_ways_unbatched_matrix", indexed_both_ways,
     (A33[0], np.array([0, 1, 2, 2]), np.array([2, 0, 1, 2])), (None, 0, 0)),
    ("negative_index", negative_index, (X5, I4 + 1), 0),
    ("gathered", gathered, (X5, np.array([[0, 1], [2, 2], [4, 0], [1, 3]])), 0),
    ("gathered_unbatched_indices", gathered, (X5, np.array([4, 0, 4])), (0, None)),
    ("gathered_unbatched_array", gathered, (X5[0], np.array([[0, 1], [2, 2], [4, 0]])),
     (None, 0)),
    # (values whose shapes differ across the batch: called from Python, per element)
    ("tail_zeroed_doubled", tail_zeroed_doubled, (X5, I4), 0),
    ("sliced_at", sliced_at, (X5, I4), 0),
    ("positive_sum", positive_sum, (X5,), 0),
]


def _element(arg: Any, axis: Any, i: int) -> Any:
    return arg if axis is None else np.take(arg, i, axis=axis)


def _loop(fn, args: tuple, in_axes: Any) -> Any:
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    size = next(np.shape(a)[ax] for a, ax in zip(args, axes, strict=True) if ax is not None)
    outs = [fn(*[_element(a, ax, i) for a, ax in zip(args, axes, strict=True)])
            for i in range(size)]
    if isinstance(outs[0], tuple):
        return tuple(np.stack([np.asarray(o[k]) for o in outs]) for k in range(len(outs[0])))
    return np.stack([np.asarray(o) for o in outs])


def _same_tree(got: Any, want: Any) -> None:
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            same(g, w)
    else:
        same(got, want)


@pytest.mark.parametrize(("fn", "args", "in_axes"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_vmap_equals_a_loop(fn, args, in_axes) -> None:
    _same_tree(tl.vmap(fn, in_axes=in_axes)(*args), _loop(fn, args, in_axes))


def test_empty_batch() -> None:
    same(tl.vmap(squared_norm)(np.zeros((0, 3))), np.zeros(0))
    same(tl.vmap(while_break_continue)(np.zeros(0)), np.zeros(0))


# --- arguments and results that are trees -------------------------------------------------


def tanh_layer(p, x):
    return np.tanh(p["w"] @ x + p["b"]).sum()


def doubled_and_summary(x):
    return x * 2, x.sum()


@dataclass
class Affine:
    w: np.ndarray
    b: float


@dataclass
class Pair:
    m: np.ndarray
    n: np.ndarray


def affine(p, x):
    return p.w @ x + p.b


def as_pair(x):
    return Pair(x * 2, x.sum())


def test_dict_and_dataclass_arguments_and_results() -> None:
    p = {"w": RNG.normal(size=(3, 4)), "b": RNG.normal(size=3)}
    xs = RNG.normal(size=(5, 4))
    same(tl.vmap(tanh_layer, in_axes=(None, 0))(p, xs), stacked(lambda x: tanh_layer(p, x), xs))
    q = Affine(RNG.normal(size=(2, 3)), 0.5)
    same(tl.vmap(affine, in_axes=(None, 0))(q, B3), stacked(lambda x: affine(q, x), B3))
    out = tl.vmap(as_pair)(B3)
    assert isinstance(out, Pair)
    same(out.m, B3 * 2)
    same(out.n, B3.sum(axis=1))


def test_out_axes_nonzero_and_axis_size() -> None:
    first, second = tl.vmap(doubled_and_summary, out_axes=(1, 0))(X5)
    same(first, (X5 * 2).T)
    same(second, X5.sum(axis=1))
    same(tl.vmap(lambda x: np.outer(x, x), out_axes=-1)(B3),
         np.stack([np.outer(x, x) for x in B3], -1))
    same(tl.vmap(lambda w: w * 2, in_axes=None, axis_size=3)(np.ones(2)), np.full((3, 2), 2.0))


# --- closures and callables ------------------------------------------------------------------

W33 = RNG.normal(size=(3, 3))


def reads_an_unbatched_global(x):
    def inner(y):
        return W33 @ y + x
    return inner(x * 2).sum()


def closure_over_a_batched_value(x, s):
    def inner(y):
        return y * s
    total = 0.0
    for k in range(3):
        total = total + inner(x[k])
    return total


def test_closures() -> None:
    same(tl.vmap(reads_an_unbatched_global)(B3), stacked(reads_an_unbatched_global, B3))
    same(tl.vmap(closure_over_a_batched_value)(B3, XS),
         stacked(closure_over_a_batched_value, B3, XS))


# --- random draws: the numbers a loop over the batch draws (README) -------------------------


def plus_normal(x, rng):
    return x + rng.normal()


def plus_normals(x, rng):
    return x + rng.normal(size=3)


def normal_around(x, rng):
    return rng.normal(loc=x, scale=2.0)


def plus_integer(x, rng):
    return x + rng.integers(0, 10)


@pytest.mark.parametrize("fn", [plus_normal, plus_normals, normal_around, plus_integer])
def test_draws_as_a_loop_draws(fn) -> None:
    xs = RNG.normal(size=5)
    rng = np.random.default_rng(7)
    got = tl.vmap(fn, in_axes=(0, None))(xs, rng)
    after = rng.normal()
    loop_rng = np.random.default_rng(7)
    same(got, np.stack([fn(x, loop_rng) for x in xs]))
    assert after == loop_rng.normal()


# --- composed with derivatives, jit and itself -----------------------------------------------


def branchy_loss(w, x, y):
    h = np.tanh(w @ x)
    if h.sum() > 0:
        r = h * y
    else:
        r = h ** 2
    return np.sum(r)


def mean_branchy_loss(w, xs, ys):
    return np.mean(tl.vmap(branchy_loss, in_axes=(None, 0, 0))(w, xs, ys))


def test_per_example_gradients_and_gradient_of_vmap() -> None:
    w, xs, ys = RNG.normal(size=(3, 4)), RNG.normal(size=(6, 4)), RNG.normal(size=(6, 3))
    for argnums in (0, 1):
        g = tl.grad(branchy_loss, argnums=argnums)
        same(tl.vmap(g, in_axes=(None, 0, 0))(w, xs, ys),
             stacked(lambda x, y, g=g: g(w, x, y), xs, ys))
    g0 = tl.grad(branchy_loss)
    same(tl.grad(mean_branchy_loss)(w, xs, ys),
         np.mean(stacked(lambda x, y: g0(w, x, y), xs, ys), axis=0))
    same(tl.jit(mean_branchy_loss)(w, xs, ys),
         np.mean(stacked(lambda x, y: branchy_loss(w, x, y), xs, ys)))


def doubled_until_above(x, y):
    k = 0
    while x < y:
        x = x * 2 + 0.1
        k += 1
    return x + k


def test_vmap_of_vmap() -> None:
    a, b = np.abs(RNG.normal(size=(3, 4))), np.abs(RNG.normal(size=(3, 4))) * 10
    same(tl.vmap(tl.vmap(doubled_until_above))(a, b),
         np.array([[doubled_until_above(p, q) for p, q in zip(ra, rb, strict=True)]
                   for ra, rb in zip(a, b, strict=True)]))
    outer = tl.vmap(tl.vmap(doubled_until_above, in_axes=(None, 0)), in_axes=(0, None))
    same(outer(a[:, 0], b[0]), np.array([[doubled_until_above(p, q) for q in b[0]]
                                         for p in a[:, 0]]))


def sin_exp(x):
    return np.array([np.sin(x[0]) * x[1], x[0] ** 2 + np.exp(x[1])])


def branch_returns(x):
    if x[0] > 0:
        return np.sin(x[0]) * x[1] ** 3
    return x[0] ** 2 * x[1]


def branch_assigns(x):
    if x[0] > 0:
        r = np.sin(x[0]) * x[1] ** 3
    else:
        r = x[0] ** 2 * x[1]
    return r


def _jax_hessian_of_branch(x):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    return np.asarray(jax.hessian(lambda x: jnp.where(
        x[0] > 0, jnp.sin(x[0]) * x[1] ** 3, x[0] ** 2 * x[1]))(x))


@pytest.mark.parametrize("jac", [tl.jacfwd, pytest.param(tl.jacrev, marks=pytest.mark.slow)])
def test_jacobians_under_vmap(jac) -> None:
    xs = RNG.normal(size=(5, 2))
    same(tl.vmap(jac(sin_exp))(xs), stacked(tl.jacfwd(sin_exp), xs))


XS_AROUND_0 = np.array([[0.7, -1.2], [-0.4, 0.9], [1.5, 0.3], [-2.0, -0.5]])


def test_hessian_under_vmap_of_a_branch_that_differs_across_the_batch() -> None:
    # (The Hessian's forward code returns each branch's saved values, tuples of
    # different lengths: selecting between them raised "a value's structure differs
    # across the batch". One batched value cannot hold them: per element, as a loop.)
    want = stacked(tl.hessian(branch_assigns), XS_AROUND_0)
    same(want, np.stack([_jax_hessian_of_branch(x) for x in XS_AROUND_0]))
    same(tl.vmap(tl.hessian(branch_assigns))(XS_AROUND_0), want)


@pytest.mark.slow
@pytest.mark.parametrize("fn", [branch_returns, branch_assigns])
def test_second_derivatives_under_vmap_of_a_branch_every_spelling(fn) -> None:
    want = np.stack([_jax_hessian_of_branch(x) for x in XS_AROUND_0])
    same(tl.vmap(tl.hessian(fn))(XS_AROUND_0), want)
    same(tl.vmap(tl.jacfwd(tl.grad(fn)))(XS_AROUND_0), want)
    same(tl.vmap(tl.jacrev(tl.grad(fn)))(XS_AROUND_0), want)
    same(tl.jit(lambda xs: tl.vmap(tl.hessian(fn))(xs))(XS_AROUND_0), want)


def newton_cube(a):
    x = a
    while abs(x * x - a) > 1e-10 * a:
        x = 0.5 * (x + a / x)
    return x * x * x


def test_per_example_gradient_of_a_loop_to_a_tolerance() -> None:
    a = np.array([0.5, 2.0, 9.0, 100.0])
    same(tl.vmap(tl.grad(newton_cube))(a), 1.5 * np.sqrt(a), 1e-7)
    same(tl.vmap(tl.grad(newton_cube))(a), stacked(tl.grad(newton_cube), a), 1e-9)


def sliced_total(xs, ks):
    return np.sum(tl.vmap(sliced_at)(xs, ks))


def test_ragged_slices_composed() -> None:
    # (a slice whose bounds differ across the batch: per element, in jit and grad too)
    g = tl.grad(sliced_at)
    same(tl.jit(sliced_total)(X5, I4), sum(sliced_at(x, k) for x, k in zip(X5, I4, strict=True)))
    same(tl.grad(sliced_total)(X5, I4), stacked(g, X5, I4))
    same(tl.vmap(g)(X5, I4), stacked(g, X5, I4))


def sines_up_to(x, n):
    s = 0.0
    for i in range(n):
        s = s + np.sin(x * i)
    return s


@pytest.mark.parametrize(("fn", "args"), [
    (sines_up_to, (XS, np.array([0, 3, 1, 7]))),
    (collatz_steps, (np.array([1, 2, 3, 7, 27]),)),
    (set_at, (XS, I4)),
])
def test_native_backend(fn, args) -> None:
    pytest.importorskip("numba")
    same(tl.vmap(fn, backend="native")(*args), stacked(fn, *args))


# --- array functions whose axes the batch shifts --------------------------------------------

X432 = RNG.normal(size=(4, 3, 2))
X132 = RNG.normal(size=(1, 3, 2))
V45 = RNG.normal(size=(4, 5))
S4 = RNG.normal(size=4)
V113 = RNG.normal(size=(1, 1, 3))
X, X1, V, S, V1 = X432, X132, V45, S4, V113

# (name: (function of one example, batched arguments)); batch of one with np.squeeze
ARRAY_FUNCTIONS: dict[str, tuple[Any, list]] = {
    "transpose_noaxes": (lambda x: np.transpose(x) * 1.0, [X]),
    "dotT": (lambda x: x.T @ x, [X]),
    "transpose_axes": (lambda x: np.transpose(x, (1, 0)).sum(axis=0), [X]),
    "swapaxes": (lambda x: np.swapaxes(x, 0, 1)[0], [X]),
    "reshape_m1": (lambda x: x.reshape(-1) * 2, [X]),
    "reshape_shape": (lambda x: x.reshape(2, 3), [X]),
    "reshape_tuple": (lambda x: np.reshape(x, (2, -1)), [X]),
    "flatten": (lambda x: x.flatten()[1:], [X]),
    "ravel": (lambda x: np.ravel(x)[::2], [X]),
    "squeeze1": (lambda x: np.squeeze(x), [V1]),
    "squeeze_b1": (lambda x: np.squeeze(x), [X1]),
    "squeeze_b1_axis": (lambda x: np.squeeze(x, axis=0), [V1]),
    "expand_dims": (lambda x: np.expand_dims(x, 0) + np.expand_dims(x, -1)[..., 0], [V]),
    "newaxis": (lambda x: x[None, :] * x[:, None], [V]),
    "ellipsis": (lambda x: x[..., 0] + x[0, ...].sum(), [X]),
    "shape0": (lambda x: x.shape[0] + len(x) + x.ndim + x.size + np.size(x) + x.shape[-1], [X]),
    "cumsum_noaxis": (lambda x: np.cumsum(x), [X]),
    "cumsum_axis0": (lambda x: np.cumsum(x, axis=0), [X]),
    "cumprod_axis1": (lambda x: np.cumprod(x, axis=1), [X]),
    "argmax_noaxis": (lambda x: np.argmax(x), [X]),
    "argmax_axis0": (lambda x: np.argmax(x, axis=0), [X]),
    "argmin_method": (lambda x: x.argmin(), [X]),
    "roll_noaxis": (lambda x: np.roll(x, 1), [X]),
    "roll_axis0": (lambda x: np.roll(x, 1, axis=0), [X]),
    "sort_axis0": (lambda x: np.sort(x, axis=0), [X]),
    "sort_none": (lambda x: np.sort(x, axis=None), [X]),
    "diag_vec": (lambda x: np.diag(x), [V]),
    "diag_mat": (lambda x: np.diag(x @ x.T), [X]),
    "trace": (lambda x: np.trace(x @ x.T), [X]),
    "tril": (lambda x: np.tril(np.outer(x, x)), [V]),
    "triu_k": (lambda x: np.triu(np.outer(x, x), 1), [V]),
    "kron": (lambda x: np.kron(x, np.ones(2)), [V]),
    "tile": (lambda x: np.tile(x, 2), [V]),
    "tile2": (lambda x: np.tile(x, (2, 1)), [V]),
    "repeat": (lambda x: np.repeat(x, 2), [V]),
    "repeat_axis": (lambda x: np.repeat(x, 2, axis=0), [X]),
    "inner": (lambda x: np.inner(x, x), [V]),
    "tensordot": (lambda x: np.tensordot(x, x, axes=([0], [0])), [X]),
    "tensordot2": (lambda x: np.tensordot(x, x, axes=2), [X]),
    "einsum": (lambda x: np.einsum("ij,ik->jk", x, x), [X]),
    "einsum_trace": (lambda x: np.einsum("ii", x[:2, :2]), [X]),
    "dot2d": (lambda x: np.dot(x, x.T), [X]),
    "dot1d": (lambda x: np.dot(x, x), [V]),
    "outer": (lambda x: np.outer(x, x[:2]), [V]),
    "norm_fro": (lambda x: np.linalg.norm(x), [X]),
    "norm_axis": (lambda x: np.linalg.norm(x, axis=0), [X]),
    "norm_ord1": (lambda x: np.linalg.norm(x, ord=1), [V]),
    "norm_inf": (lambda x: np.linalg.norm(x, ord=np.inf), [V]),
    "norm_mat2": (lambda x: np.linalg.norm(x @ x.T, ord=2), [X]),
    "norm_mat_fro_axis": (lambda x: np.linalg.norm(x, axis=(0, 1)), [X]),
    "sum_tuple_axis": (lambda x: np.sum(x, axis=(0, 1)), [X]),
    "sum_pos_axis": (lambda x: x.sum(0) + np.mean(x, 0), [X]),
    "mean_neg": (lambda x: np.mean(x, axis=-2, keepdims=True), [X]),
    "std_ddof": (lambda x: np.std(x, ddof=1) + np.var(x, axis=0).sum(), [X]),
    "median": (lambda x: np.median(x), [V]),
    "median_axis": (lambda x: np.median(x, axis=0), [X]),
    "percentile": (lambda x: np.percentile(x, 30), [V]),
    "average_w": (lambda x: np.average(x, weights=np.arange(1.0, 6.0)), [V]),
    "average_axis": (lambda x: np.average(x, axis=0), [X]),
    "max_method": (lambda x: x.max() - x.min(axis=1).sum(), [X]),
    "any_all": (lambda x: np.any(x > 1) + np.all(x > -1, axis=0), [X]),
    "count_nonzero": (lambda x: np.count_nonzero(x > 0), [X]),
    "full": (lambda s: np.full(3, s), [S]),
    "full_shape": (lambda s: np.full((2, 2), s) + np.ones_like(np.full((2, 2), s)), [S]),
    "array_of_scalars": (lambda s: np.array([s, 2 * s, 1.0]), [S]),
    "array_2d_scalars": (lambda s: np.array([[s, 0.0], [0.0, s * s]]), [S]),
    "stack_mixed": (lambda x: np.stack([x, np.ones(5)]), [V]),
    "concat_mixed": (lambda x: np.concatenate([x, np.zeros(2), x[:1]]), [V]),
    "concat_axis1": (lambda x: np.concatenate([x, x], axis=1), [X]),
    "hstack": (lambda x: np.hstack([x, x]), [X]),
    "vstack": (lambda x: np.vstack([x, x]), [V]),
    "column_stack": (lambda x: np.column_stack([x, x]), [V]),
    "float_int": (lambda s: float(s) * 2 + int(s * 10), [S]),
    "math_funcs": (lambda s: math.sin(s) + math.exp(s) + math.sqrt(abs(s)) + math.floor(s), [S]),
    "item": (lambda x: x[0].item() * 2, [V]),
    "round": (lambda s: round(s, 2) + np.round(s * 10), [S]),
    "sign_floor": (lambda s: np.sign(s) + np.floor(s) + np.ceil(s) + np.trunc(s), [S]),
    "arctan2": (lambda x: np.arctan2(x[0], x[1]) + np.hypot(x[0], x[1]), [V]),
    "linspace": (lambda s: np.linspace(0, s, 5), [S]),
    "arange_mul": (lambda s: np.arange(4) * s, [S]),
    "interp": (lambda s: np.interp(s, [0.0, 1.0, 2.0], [1.0, 3.0, 2.0]), [S]),
    "isclose": (lambda x: np.isclose(x, 0.5, atol=0.6), [V]),
    "logsumexp": (lambda x: np.log(np.sum(np.exp(x - x.max()))) + x.max(), [V]),
    "softmax_axis": (lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True), [X]),
    "matrix_power": (lambda x: np.linalg.matrix_power(x @ x.T, 3), [X]),
    "eigh": (lambda x: np.linalg.eigh(x @ x.T + np.eye(3))[0], [X]),
    "cholesky": (lambda x: np.linalg.cholesky(x @ x.T + np.eye(3)), [X]),
    "slogdet": (lambda x: np.linalg.slogdet(x @ x.T + np.eye(3))[1], [X]),
    "lstsq_pinv": (lambda x: np.linalg.pinv(x), [X]),
    "qr": (lambda x: np.abs(np.linalg.qr(x)[1]), [X]),
    "svd": (lambda x: np.linalg.svd(x, compute_uv=False), [X]),
    "solve_vec_mat": (lambda x: np.linalg.solve(x @ x.T + np.eye(3), np.eye(3)), [X]),
    "abs_neg_pow": (lambda x: np.abs(x) ** 0.5 - (-x) ** 2 + x ** -1.0, [V]),
    "int_pow": (lambda n: n ** 2 + 2 ** n, [np.array([0, 1, 3, 5])]),
    "bool_sum": (lambda x: np.sum(x > 0) + (x > 0).astype(float).mean(), [V]),
    "astype_int": (lambda x: (x * 10).astype(int), [V]),
    "where_1arg": (lambda x: np.where(x > 0, 1, 0), [V]),
    "where_scalar_sides": (lambda x: np.where(x > 0, x, 0.0).sum(), [V]),
    "clip_none": (lambda x: np.clip(x, None, 0.5), [V]),
    "maximum_scalar": (lambda x: np.maximum(0, x), [V]),
    "select_chain": (lambda s: np.select([s < -1, s < 1], [s * 0, s], s * 2), [S]),
}


@pytest.mark.parametrize("name", list(ARRAY_FUNCTIONS))
def test_array_functions_equal_a_loop(name) -> None:
    fn, args = ARRAY_FUNCTIONS[name]
    same(tl.vmap(fn)(*args), stacked(fn, *args), 1e-10)


# --- per-example derivatives of programs with control flow -----------------------------------


def weighted_scatter(x, i):
    y = np.zeros(5)
    y[i] = x ** 2
    y[(i + 1) % 5] += 3 * x
    return np.sum(y * np.arange(1.0, 6.0))


def solved(a, b):
    return np.linalg.solve(a, b).sum() + np.log(abs(np.linalg.det(a))) + \
        np.linalg.norm(np.linalg.inv(a))


def clipped_loss(x, lo):
    y = np.where(x > 0, x, 0.1 * x)
    return np.sum(np.clip(y, lo, 1.0) + np.maximum(x, lo) ** 2 + np.minimum(y, 0.5))


ND = np.array([0.3, 1.7, 4.0, -0.6])


@pytest.mark.parametrize(("fn", "args", "argnums"), [
    (while_break_continue, (ND,), 0),
    (power_by_recursion, (ND, np.array([0, 3, 1, 5])), 0),
    (sines_up_to, (ND, np.array([0, 3, 1, 5])), 0),
    (weighted_scatter, (ND, np.array([0, 4, 2, 1])), 0),
    (solved, (A33, B3), 0),
    (solved, (A33, B3), 1),
    (clipped_loss, (X5, np.array([-0.5, -0.1, 0.0, 0.2])), 0),
    (clipped_loss, (X5, np.array([-0.5, -0.1, 0.0, 0.2])), 1),
], ids=lambda v: getattr(v, "__name__", None))
def test_per_example_gradients_equal_a_loop(fn, args, argnums) -> None:
    g = tl.grad(fn, argnums=argnums)
    same(tl.vmap(g)(*args), stacked(g, *args), 1e-10)


def test_per_example_gradient_of_linear_algebra_against_jax() -> None:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    jg = jax.grad(lambda a, b: jnp.linalg.solve(a, b).sum() + jnp.log(jnp.abs(
        jnp.linalg.det(a))) + jnp.linalg.norm(jnp.linalg.inv(a)))
    same(tl.vmap(tl.grad(solved))(A33, B3),
         np.stack([np.asarray(jg(a, b)) for a, b in zip(A33, B3, strict=True)]), 1e-9)


def test_vmap_of_vmap_of_a_gradient_whose_trip_counts_differ() -> None:
    # (The inner vmap differentiates its batched function, whose stacks the outer one
    # cannot batch again: this raised "vmap of derivative code under a condition that
    # differs across the batch". The outer batch runs as a loop.)
    g = tl.grad(sines_up_to)
    xs, ns = np.stack([ND, ND * 2]), np.array([[0, 3, 1, 5], [5, 1, 3, 0]])
    want = np.array([[g(x, n) for x, n in zip(rx, rn, strict=True)]
                     for rx, rn in zip(xs, ns, strict=True)])
    f = tl.vmap(tl.vmap(g))
    same(f(xs, ns), want)
    same(f(xs, ns), want)
    same(tl.vmap(tl.vmap(g), in_axes=1, out_axes=1)(xs.T, ns.T), want.T)


def test_value_and_grad_and_aux_under_vmap() -> None:
    lo = np.array([-0.5, -0.1, 0.0, 0.2])
    v, g = tl.vmap(tl.value_and_grad(clipped_loss))(X5, lo)
    same(v, stacked(clipped_loss, X5, lo))
    same(g, stacked(tl.grad(clipped_loss), X5, lo))
    g, aux = tl.vmap(tl.grad(lambda x: (np.sum(x ** 2), x.max()), has_aux=True))(X5)
    same(g, 2 * X5)
    same(aux, X5.max(axis=1))


def test_out_axes_past_the_result_says_which_axes_there_are() -> None:
    # (NumPy's "destination: axis 1 is out of bounds for array of dimension 1" before)
    for fn in (lambda a: a.sum(), lambda a: (a.sum(), a)):
        with pytest.raises(ValueError, match="out_axes 1 is not an axis of a result with 1 "):
            tl.vmap(fn, out_axes=1)(np.ones((3, 2)))


# --- loops, recursions and calls whose paths differ across the batch ---------------------------


def accumulated_in_a_while(x, n):
    acc = np.zeros(3)
    i = 0
    while i < n:
        acc = acc + x * i
        i += 1
    return acc


def return_inside_for(x, n):
    for i in range(n):
        x = x * 1.5
        if x > 5:
            return x, i
    return x, -1


def accumulator_recursion(x, n, acc):
    if n <= 0:
        return acc
    return accumulator_recursion(x, n - 1, acc * x + n)


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def nested_loops(x, n, m):
    s = 0.0
    for i in range(n):
        j = 0
        while j < m:
            if (i + j) % 2 == 0:
                s += x
            else:
                s -= 0.5 * x
            j += 1
    return s


def jacobi(a, b):
    x = np.zeros_like(b)
    d = np.diag(a)
    it = 0
    while np.linalg.norm(a @ x - b) > 1e-10 and it < 500:
        x = (b - (a @ x - d * x)) / d
        it += 1
    return x, it


def descent(w0, x, y, steps):
    w = w0
    for _ in range(steps):
        g = 2 * x * (w * x - y)
        w = w - 0.1 * g
        if abs(g) < 1e-3:
            break
    return w


_jitted_branch = tl.jit(lambda x: np.sin(x) if x > 0 else np.cos(x))
_grad_of_branch = tl.grad(lambda x: np.sin(x) * x if x > 0 else x ** 3)


def calls_compiled(x):
    return _jitted_branch(x) * 2 + _grad_of_branch(x)


DOMINANT = RNG.normal(size=(4, 3, 3)) * 0.3 + np.eye(3) * np.array([2, 3, 5, 8])[:, None, None]
LOOP_CASES: list[tuple[str, Any, tuple, Any]] = [
    ("constant_result", lambda x: 1.0, (ND,), 0),
    ("accumulated_in_a_while", accumulated_in_a_while, (np.arange(3.0), np.array([0, 2, 5])),
     (None, 0)),
    ("return_inside_for", return_inside_for, (ND, np.array([0, 2, 10, 10])), 0),
    ("accumulator_recursion", accumulator_recursion, (ND, np.array([0, 1, 3, 2]), 1.0),
     (0, 0, None)),
    ("fib", fib, (np.array([0, 1, 5, 7, 3]),), 0),
    ("nested_loops", nested_loops, (ND, np.array([0, 3, 2, 4]), np.array([2, 0, 3, 1])), 0),
    ("jacobi", jacobi, (DOMINANT, B3), 0),
    ("jacobi_unbatched_matrix", jacobi, (DOMINANT[0], B3), (None, 0)),
    ("descent", descent, (0.0, ND, ND * 2, 50), (None, 0, 0, None)),
    ("calls_compiled", calls_compiled, (ND,), 0),
]


@pytest.mark.parametrize(("fn", "args", "in_axes"), [c[1:] for c in LOOP_CASES],
                         ids=[c[0] for c in LOOP_CASES])
def test_paths_that_differ_equal_a_loop(fn, args, in_axes) -> None:
    _same_tree(tl.vmap(fn, in_axes=in_axes)(*args), _loop(fn, args, in_axes))


def test_gradient_of_nested_loops_whose_bounds_differ() -> None:
    g = tl.grad(nested_loops)
    args = (ND, np.array([0, 3, 2, 4]), np.array([2, 0, 3, 1]))
    same(tl.vmap(g)(*args), stacked(g, *args))
