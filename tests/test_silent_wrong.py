"""Gradients that used to be silently wrong (a wrong number, no error): each is checked
against its exact value with the optimizer on and off (a fresh `tl.grad` per setting:
compiling reads TAPELESS_OPTIMIZE)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapeless as tl


def same(got: object, expected: object) -> None:
    """Exactly the expected value (tuples item by item), nan nowhere."""
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            same(g, e)
        return
    assert not np.any(np.isnan(got)), got
    np.testing.assert_array_equal(got, expected)
    assert np.shape(got) == np.shape(expected)


# --- 1. np.mod / np.remainder / np.fmod ----------------------------------------------------


def test_np_mod_scalars(optimize: str) -> None:
    same(tl.grad(lambda x, y: np.mod(x, y), argnums=(0, 1))(0.7, 0.3), (1.0, -2.0))
    same(tl.grad(lambda x, y: np.remainder(x, y), argnums=(0, 1))(0.7, 0.3), (1.0, -2.0))
    # (as the `%` operator: floor division)
    same(tl.grad(lambda x, y: np.mod(x, y), argnums=(0, 1))(-0.7, 0.3), (1.0, 3.0))
    same(tl.grad(lambda x, y: x % y, argnums=(0, 1))(-0.7, 0.3), (1.0, 3.0))


def test_np_mod_broadcasting(optimize: str) -> None:
    x = np.array([[0.7, -0.7, 2.5], [1.1, 0.2, -3.5]])
    y = np.array([0.3, 0.3, 1.0])
    gx, gy = tl.grad(lambda x, y: np.sum(np.mod(x, y)), argnums=(0, 1))(x, y)
    same(gx, np.ones((2, 3)))
    same(gy, -np.sum(np.floor_divide(x, y), axis=0))
    np.testing.assert_array_equal(gy, [-5.0, 3.0, 2.0])


def test_np_fmod_and_math_fmod(optimize: str) -> None:
    # fmod truncates: fmod(-0.7, 0.3) = -0.7 + 2 * 0.3
    same(tl.grad(lambda x, y: np.fmod(x, y), argnums=(0, 1))(-0.7, 0.3), (1.0, 2.0))
    same(tl.grad(lambda x, y: math.fmod(x, y), argnums=(0, 1))(-0.7, 0.3), (1.0, 2.0))
    same(tl.grad(lambda x, y: math.fmod(x, y), argnums=(0, 1))(0.7, 0.3), (1.0, -2.0))
    x = np.array([-0.7, 0.7, 2.5])
    gx, gy = tl.grad(lambda x, y: np.sum(np.fmod(x, y)), argnums=(0, 1))(x, 0.3)
    same(gx, np.ones(3))
    same(gy, 2.0 - 2.0 - 8.0)


def test_np_floor_divide_has_zero_derivative(optimize: str) -> None:
    same(tl.grad(lambda x, y: np.floor_divide(x, y) * 1.0, argnums=(0, 1))(0.7, 0.3),
         (0.0, 0.0))


# --- 2. np.r_ and np.c_ -----------------------------------------------------------------------

C = np.array([1.0, 2.0])
W4 = np.array([1.0, 2.0, 3.0, 4.0])


def r_loss(x):
    return np.sum(np.r_[x, C] * W4)


def test_np_r_(optimize: str) -> None:
    same(tl.grad(r_loss)(np.array([0.5, -0.5])), np.array([1.0, 2.0]))


def r_mixed(x, s):
    return np.sum(np.r_[x, s, 0:2, C] * np.arange(1.0, 8.0))


def test_np_r_numbers_and_slices(optimize: str) -> None:
    same(tl.grad(r_mixed, argnums=(0, 1))(np.array([0.5, -0.5]), 2.0),
         (np.array([1.0, 2.0]), 3.0))


def c_loss(x, m):
    return np.sum(np.c_[m, x, 3.0 * x] * np.arange(1.0, 9.0).reshape(2, 4))


def test_np_c_(optimize: str) -> None:
    gx, gm = tl.grad(c_loss, argnums=(0, 1))(np.array([0.5, -0.5]), np.ones((2, 2)))
    same(gx, np.array([3.0 + 3.0 * 4.0, 7.0 + 3.0 * 8.0]))
    same(gm, np.array([[1.0, 2.0], [5.0, 6.0]]))


def c_numbers(s):
    return np.sum(np.c_[s, 2.0 * s] ** 2)


def test_np_c_numbers_second_order(optimize: str) -> None:
    same(tl.grad(c_numbers)(1.5), 15.0)
    same(tl.grad(tl.grad(c_numbers))(1.5), 10.0)


def r_directive(x):
    return np.sum(np.r_["0", x, C] * W4)


def test_getitem_into_another_object_raises_rather_than_zero(optimize: str) -> None:
    """A subscript the front end does not compile to a concatenation (a string
    directive) is a getitem into np.r_: its index's sensitivity is unknown. The gradient
    raises, optimized or not (the optimizer used to drop the unoptimized program's
    error along with the index's sensitivity, which the rule said was zero, and return
    zeros)."""
    with pytest.raises(TypeError, match="cannot differentiate indexing into RClass"):
        tl.grad(r_directive)(np.array([0.5, -0.5]))


def r_constant_slice(x):
    return np.sum(np.r_[0:3] * x)


def test_getitem_of_constant_slice_into_r_(optimize: str) -> None:
    same(tl.grad(r_constant_slice)(np.ones(3)), np.array([0.0, 1.0, 2.0]))


# --- 3. einsum ---------------------------------------------------------------------------------

M23 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_einsum_sublist_transpose(optimize: str) -> None:
    g = tl.grad(lambda x: np.sum(np.einsum(x, [0, 1], [1, 0]) * M23.T))(np.zeros((2, 3)))
    same(g, M23)


def test_einsum_sublist_product(optimize: str) -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, -1.0, 2.0], [0.5, 3.0, 1.0]])
    ga, gb = tl.grad(lambda a, b: np.sum(np.einsum(a, [0, 1], b, [1, 2], [0, 2])),
                     argnums=(0, 1))(a, b)
    same(ga, np.ones((2, 3)) @ b.T)
    same(gb, a.T @ np.ones((2, 3)))
    ga, gb = tl.grad(lambda a, b: np.sum(np.einsum(a, [0, 1], b, [1, 2])),  # implicit
                     argnums=(0, 1))(a, b)
    same(ga, np.ones((2, 3)) @ b.T)
    same(gb, a.T @ np.ones((2, 3)))


def test_einsum_ellipsis_and_implicit(optimize: str) -> None:
    a = np.arange(12.0).reshape(3, 2, 2)
    b = np.arange(12.0).reshape(3, 2, 2) - 5.0
    ga, gb = tl.grad(lambda a, b: np.sum(np.einsum("...ij,...jk->...ik", a, b)),
                     argnums=(0, 1))(a, b)
    same(ga, np.ones((3, 2, 2)) @ np.swapaxes(b, -1, -2))
    same(gb, np.swapaxes(a, -1, -2) @ np.ones((3, 2, 2)))
    # broadcast along the ellipsis: a's batch axis of 1 is summed back
    a1 = a[:1]
    ga1, gb1 = tl.grad(lambda a, b: np.sum(np.einsum("...ij,...jk->...ik", a, b)),
                       argnums=(0, 1))(a1, b)
    same(ga1, np.sum(np.ones((3, 2, 2)) @ np.swapaxes(b, -1, -2), axis=0, keepdims=True))
    same(gb1, np.broadcast_to(np.swapaxes(a1, -1, -2) @ np.ones((1, 2, 2)), (3, 2, 2)))
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    ga, gb = tl.grad(lambda a, b: np.sum(np.einsum("ij,jk", a, b)), argnums=(0, 1))(m, m.T)
    same(ga, np.ones((2, 2)) @ m)
    same(gb, m.T @ np.ones((2, 2)))


# --- 4. nan where the derivative is 0 ----------------------------------------------------------

Z3 = np.zeros(3)


def pow_zero(x):
    return x ** 0.0


def pow_int_zero(x):
    return x ** 0


def np_pow_zero(x):
    return np.sum(np.power(x, 0.0))


def np_pow(x, y):
    return np.sum(np.power(x, y))


def star_pow(x, y):
    return np.sum(x ** y)


def math_pow(x, y):
    return math.pow(x, y)


def test_power_zero_exponent_at_zero(optimize: str) -> None:
    same(tl.grad(pow_zero)(0.0), 0.0)
    same(tl.grad(tl.grad(pow_zero))(0.0), 0.0)
    same(tl.grad(pow_int_zero)(0.0), 0.0)
    same(tl.grad(np_pow_zero)(Z3), Z3)
    same(tl.grad(lambda x: np.sum(tl.grad(np_pow_zero)(x)))(Z3), Z3)
    same(tl.grad(math_pow, argnums=(0, 1))(0.0, 0.0), (0.0, 0.0))
    same(tl.grad(tl.grad(math_pow))(0.0, 0.0), 0.0)


def test_power_zero_exponent_keeps_its_derivative_in_the_exponent(optimize: str) -> None:
    """Away from x == 0 the slope y x^(y - 1) at y == 0 is 0, and its derivative in y is
    x^-1: the fix of the nan at x == 0 must not make it 0 (the second-order audit of
    tests/test_special_points.py found that)."""
    same(tl.grad(lambda x, y: tl.grad(star_pow)(x, y), argnums=1)(2.0, 0.0), 0.5)
    same(tl.grad(lambda x, y: tl.grad(np_pow)(x, y), argnums=1)(2.0, 0.0), 0.5)
    same(tl.grad(lambda x, y: tl.grad(math_pow)(x, y), argnums=1)(2.0, 0.0), 0.5)
    same(tl.grad(lambda x, y: np.sum(tl.grad(np_pow)(x, y)), argnums=1)(
        np.array([2.0, 4.0]), np.array([0.0, 0.0])), np.array([0.5, 0.25]))


def test_power_array_exponent_with_zeros(optimize: str) -> None:
    y = np.array([0.0, 1.0, 2.5])
    same(tl.grad(np_pow, argnums=(0, 1))(Z3, y), (np.array([0.0, 1.0, 0.0]), Z3))
    same(tl.grad(star_pow, argnums=(0, 1))(Z3, y), (np.array([0.0, 1.0, 0.0]), Z3))
    # d/dx of y x^(y - 1) is y (y - 1) x^(y - 2): 0 at x = 0 for y = 0, 1, 2.5
    same(tl.grad(lambda x, y: np.sum(tl.grad(np_pow)(x, y)))(Z3, y), Z3)


def test_power_of_zero_base(optimize: str) -> None:
    """0 ** y is 0 for y > 0: both derivatives 0, first and second order."""
    for f in (np_pow, star_pow):
        same(tl.grad(f, argnums=(0, 1))(0.0, 2.5), (0.0, 0.0))
        same(tl.grad(f, argnums=(0, 1))(Z3, 2.5), (Z3, 0.0))
        same(tl.grad(tl.grad(f, argnums=1), argnums=1)(Z3, 2.5), 0.0)
        same(tl.grad(tl.grad(f, argnums=1), argnums=1)(0.0, 2.5), 0.0)
        same(tl.grad(tl.grad(f, argnums=1), argnums=0)(Z3, 2.5), Z3)
    same(tl.grad(lambda x, y: np.sum(tl.grad(np_pow)(x, y)), argnums=1)(Z3, 2.5), 0.0)
    same(tl.grad(lambda x, y: np.sum(tl.grad(star_pow)(x, y)), argnums=1)(Z3, 2.5), 0.0)
    same(tl.grad(math_pow, argnums=(0, 1))(0.0, 2.5), (0.0, 0.0))
    same(tl.grad(tl.grad(math_pow, argnums=1), argnums=1)(0.0, 2.5), 0.0)


def std_all(x):
    return np.std(x)


def std_rows(x):
    return np.sum(np.std(x, axis=1))


def var_all(x):
    return np.var(x)


def test_std_where_it_is_zero(optimize: str) -> None:
    """std of one element, or along an axis of length 1, is identically 0: gradient 0
    (it was nan); where equal elements make it 0, 0 too (the convention of abs'(0))."""
    same(tl.grad(std_all)(np.array([0.5])), np.zeros(1))
    same(tl.grad(lambda x: np.sum(tl.grad(std_all)(x)))(np.array([0.5])), np.zeros(1))
    same(tl.grad(std_rows)(np.ones((2, 1))), np.zeros((2, 1)))
    same(tl.grad(lambda x: np.sum(tl.grad(std_rows)(x) ** 2))(np.ones((2, 1))),
         np.zeros((2, 1)))
    same(tl.grad(std_all)(np.ones(3)), Z3)
    same(tl.grad(var_all)(np.array([0.5])), np.zeros(1))
    # rows of length 2 where one row is constant: that row gets 0, the other its gradient
    x = np.array([[1.0, 1.0], [1.0, 3.0]])
    same(tl.grad(std_rows)(x), np.array([[0.0, 0.0], [-0.5, 0.5]]))


# --- 5. found by the special-points audit (tests/test_special_points.py) ---------------------


def prod_all(x):
    return np.prod(x)


def prod_rows(x):
    return np.sum(np.prod(x, axis=1))


def test_prod_with_zeros(optimize: str) -> None:
    """d prod / d x_i is the product of the others: out / x_i gave nan at a zero."""
    same(tl.grad(prod_all)(np.array([0.0, 2.0, 3.0])), np.array([6.0, 0.0, 0.0]))
    same(tl.grad(prod_all)(np.array([0.0, 2.0, 0.0])), np.zeros(3))
    x = np.array([[0.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    same(tl.grad(prod_rows)(x),
         np.array([[6.0, 0.0, 0.0], [6.0, 3.0, 2.0], [0.0, 0.0, 0.0]]))
    # second order: d2 prod / dx0 dx1 = x2
    same(tl.grad(lambda x: tl.grad(prod_all)(x)[0])(np.array([0.0, 0.0, 3.0])),
         np.array([0.0, 3.0, 0.0]))


def clip_sum(x, lo, hi):
    return np.sum(np.clip(x, lo, hi))


def test_clip_with_min_above_max(optimize: str) -> None:
    """np.clip(x, 1.0, 0.5) is 0.5 everywhere (NumPy's minimum(maximum(x, lo), hi)): all
    of the sensitivity goes to a_max (a_min got it where x < a_min)."""
    x = np.array([-1.0, 0.7, 2.0])
    same(tl.grad(clip_sum, argnums=(0, 1, 2))(x, 1.0, 0.5), (np.zeros(3), 0.0, 3.0))
    same(tl.grad(clip_sum, argnums=(0, 1, 2))(x, -0.5, 0.5),
         (np.array([0.0, 0.0, 0.0]), 1.0, 2.0))
    same(tl.grad(clip_sum, argnums=(0, 1, 2))(np.array([0.2]), -0.5, 0.5),
         (np.ones(1), 0.0, 0.0))


def divmod_rest(x, y):
    q, r = divmod(x, y)
    return r + 0.0 * q


def test_divmod_remainder(optimize: str) -> None:
    """divmod was registered as non-differentiable: its remainder's gradient was 0."""
    same(tl.grad(divmod_rest, argnums=(0, 1))(0.7, 0.3), (1.0, -2.0))
    same(tl.grad(lambda x, y: np.sum(divmod(x, y)[1]), argnums=(0, 1))(
        np.array([0.7, -0.7]), 0.3), (np.ones(2), 1.0))


def arange_start(x):
    return np.sum(np.arange(x, x + 3.0) * np.array([1.0, 2.0, 3.0]))


def arange_step(x, s):
    return np.sum(np.arange(x, 4.0, s) ** 2)


def test_arange_with_float_arguments(optimize: str) -> None:
    """np.arange was registered as non-differentiable: a float start or step had a
    silently zero gradient."""
    same(tl.grad(arange_start)(0.5), 6.0)
    # arange(0.5, 4.0, 1.5) = [0.5, 2.0, 3.5]
    same(tl.grad(arange_step, argnums=(0, 1))(0.5, 1.5), (12.0, 18.0))
    same(tl.grad(lambda n: np.sum(np.arange(3) * n))(2.0), 3.0)


def check_nonnegative(x):
    if x < 0:
        raise ValueError("negative")
    return x


def calls_check_as_statement(x):
    check_nonnegative(x)
    return x * 2


def calls_check_unused(x):
    y = check_nonnegative(x)  # noqa: F841 (unused: the call must still run)
    return x * 2


@pytest.mark.parametrize("fn", [calls_check_as_statement, calls_check_unused])
def test_a_call_that_may_raise_is_kept_where_its_value_is_unused(fn, optimize) -> None:
    # (The optimizer dropped the inlined call and returned -2.0.)
    with pytest.raises(ValueError, match="negative"):
        tl.jit(fn)(-1.0)
    with pytest.raises(ValueError, match="negative"):
        tl.grad(fn)(-1.0)
    assert tl.jit(fn)(1.5) == 3.0


# --- A variable unbound on the path taken ------------------------------------------------
# (It used to come back as the `UNBOUND` placeholder, or a TypeError from it.)

def last_of_loop(n):
    for i in range(n):
        last = i * 2.0
    return last


def assigned_in_one_branch(x, c):
    if c:
        y = x * 2.0
    return y


def assigned_in_while(x, n):
    i = 0
    while i < n:
        z = x * i
        i += 1
    return z + 1.0


def loop_variable_after_loop(x, n):
    for i in range(n):  # noqa: B007 (read after the loop)
        x = x * 1.5
    return x * i


def read_twice(x, c):
    if c:
        y = x * 3.0
    return y * y + y


@pytest.mark.parametrize("fn, args", [
    (last_of_loop, (0,)), (assigned_in_one_branch, (1.0, False)),
    (assigned_in_while, (1.0, 0)), (loop_variable_after_loop, (2.0, 0)),
    (read_twice, (2.0, False)),
])
def test_unbound_variable_raises_as_cpython(fn, args, optimize: str) -> None:
    with pytest.raises(UnboundLocalError):
        fn(*args)
    with pytest.raises(UnboundLocalError, match=r"test_silent_wrong\.py:\d+:\d+: local "
                       r"variable '\w+' is used before it is assigned"):
        tl.jit(fn)(*args)


@pytest.mark.parametrize("fn, args, dx", [
    (assigned_in_one_branch, (1.5, True), 2.0), (assigned_in_while, (1.5, 3), 2.0),
    (loop_variable_after_loop, (2.0, 3), 1.5 ** 3 * 2), (read_twice, (2.0, True), 39.0),
])
def test_bound_on_the_path_taken(fn, args, dx, optimize: str) -> None:
    assert tl.jit(fn)(*args) == fn(*args)
    assert tl.grad(fn)(*args) == pytest.approx(dx)
    with pytest.raises(UnboundLocalError):
        tl.grad(fn)(*(args[:-1] + (type(args[-1])(0),)))


# --- A loop's next value computed into the variable that an inner loop's result shares -----
# (The second derivative through nested loops read the outer state's new value where it
# needed the inner loop's result: a wrong Hessian-vector product with the optimizer on.)

def nested_loops(w, x, n):
    for _ in range(n):
        for _ in range(3):
            x = np.tanh(w @ x)
        x = x + 0.5 * x * x
    return np.sum(x)


def _nested_loops_autograd(w, x, n):
    import autograd.numpy as anp

    for _ in range(n):
        for _ in range(3):
            x = anp.tanh(anp.dot(w, x))
        x = x + 0.5 * x * x
    return anp.sum(x)


@pytest.mark.parametrize("n", [1, 3])
def test_hessian_vector_product_through_nested_loops(n, optimize: str) -> None:
    autograd = pytest.importorskip("autograd")
    import autograd.numpy as anp

    rng = np.random.default_rng(2)
    w, x = rng.normal(size=(4, 4)) / 2, rng.normal(size=4)
    v = np.linspace(-1.0, 1.0, 4)

    def hvp(y):
        return np.dot(tl.grad(nested_loops, argnums=1)(w, y, n), v)

    expected = autograd.grad(
        lambda y: anp.dot(autograd.grad(_nested_loops_autograd, 1)(w, y, n), v))(x)
    np.testing.assert_allclose(tl.grad(hvp)(x), expected, rtol=1e-12, atol=1e-14)


# --- vmap: values whose structure differs across the batch ----------------------------


def doubled_until(y, c):
    while y < 10.0:
        y = y * c + 1.0
    return y


def doubled_until_capped(y):
    n = 0
    while y < 10.0 and n < 50:
        y = y * 2.0 + 1.0
        n += 1
    return y


def linked_steps(y):
    t = None
    while y < 10.0:
        y = y * 2.0 + 1.0
        t = ((), t)
    n = 0
    while t is not None:
        t = t[1]
        n += 1
    return n * 1.0


def smallest_of_sorted(x):
    return sorted(x)[0]


def smallest_of_list(x):
    items = list(x)
    return items[int(np.argmin(x))] * items[0]


def test_vmap_of_a_gradient_through_a_while_whose_trip_count_differs(optimize: str) -> None:
    # (Its gradient's loops push per-step values: each example's stack has its own depth.
    # This gave every example the deepest one's gradient.)
    ys, cs = np.array([3.0, 1.0, 0.1]), np.array([2.0, 2.0, 3.0])
    want = np.array([tl.grad(doubled_until)(y, c) for y, c in zip(ys, cs, strict=True)])
    same(tl.vmap(tl.grad(doubled_until))(ys, cs), want)
    assert list(want) == [4.0, 8.0, 27.0]
    want = np.array([tl.grad(doubled_until_capped)(y) for y in ys])
    same(tl.vmap(tl.grad(doubled_until_capped))(ys), want)
    assert list(want) == [4.0, 8.0, 16.0]


def test_vmap_of_a_structure_that_grows_differently_runs_per_element(optimize: str) -> None:
    # (one batched value cannot hold it: called from Python, what a loop computes)
    ys = np.array([3.0, 1.0, 0.1])
    assert [linked_steps(y) for y in ys] == [2.0, 3.0, 4.0]
    same(tl.vmap(linked_steps)(ys), np.array([2.0, 3.0, 4.0]))


@pytest.mark.parametrize("fn", [smallest_of_sorted, smallest_of_list])
def test_vmap_of_a_gradient_whose_nonzero_entries_differ(fn, optimize: str) -> None:
    # (Per-example sensitivities zero in different places: the first example's zeros
    # were taken for all.)
    xs = np.random.default_rng(0).normal(size=(4, 3))
    want = np.array([tl.grad(fn)(x) for x in xs])
    same(tl.vmap(tl.grad(fn))(xs), want)
    assert len({tuple(np.flatnonzero(w)) for w in want}) > 1
