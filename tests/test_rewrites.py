"""Rewrites of the optimizer (`tapeless.opt`), checked against NumPy, the
unoptimized gradient and finite differences, including where they must not apply."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import tapeless as tl
from tests.gradcheck import directional_fd, in_place_adds


def _check(fn, args, argnums, monkeypatch):
    g = tl.grad(fn, argnums=argnums)
    got = g(*args)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    expected = tl.grad(fn, argnums=argnums)(*args)
    monkeypatch.delenv("TAPELESS_OPTIMIZE")
    for x, y in zip(got, expected, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    directions = [np.random.default_rng(0).normal(size=args[i].shape) for i in argnums]
    fd = directional_fd(fn, args, argnums, directions)
    assert np.isclose(sum(np.sum(x * v) for x, v in zip(got, directions, strict=True)),
                      fd, rtol=1e-7)
    return g.source_for(*args)


# --- transpositions ------------------------------------------------------------------------


def quadratic_form(xc, Q):
    """The GMM's K x n x d quadratic forms: the gradient of Q is a product of transposes."""
    Qx = xc @ np.swapaxes(Q, 1, 2)
    return np.sum(Qx * Qx)


def transposed_product(a, b):
    return np.swapaxes(np.swapaxes(a, -1, -2) @ b, 1, 2)


def matrix_transposes(a, b):
    return (a.T @ b).T + b.T.T[:4, :3]


def swap_other_axes(a, b):
    """Axes 0 and 1 of a 3-d product are not the product's rows and columns."""
    return np.swapaxes(np.swapaxes(a, 0, 1) @ b, 0, 1)


def test_quadratic_form_gradient_has_no_double_transposition(monkeypatch):
    r = np.random.default_rng(2)
    args = (r.normal(size=(3, 7, 2)), r.normal(size=(3, 2, 2)))
    source = _check(quadratic_form, args, (0, 1), monkeypatch)
    assert source.count("swapaxes") == 2, source  # the forward one, and one in the gradient


@pytest.mark.parametrize("fn, shapes, expected", [
    (transposed_product, ((3, 5, 2), (3, 5, 4)), "np.swapaxes(b, -1, -2) @ a"),
    (matrix_transposes, ((5, 3), (5, 4)), "b.T @ a + b[:4, :3]"),
    (swap_other_axes, ((4, 3, 5), (3, 5, 2)), "np.swapaxes(np.swapaxes(a, 0, 1) @ b, 0, 1)"),
])
def test_transpositions_of_products(fn, shapes, expected):
    r = np.random.default_rng(4)
    args = tuple(r.normal(size=s) for s in shapes)
    f = tl.jit(fn)
    np.testing.assert_allclose(f(*args), fn(*args), rtol=1e-13, atol=1e-13)
    assert f"return {expected}\n" in f.source_for(*args), f.source_for(*args)


def outer_transposed_index(u, v):
    return (u[:, None] * v[None, :]).T


def outer_transposed_expand(u, v):
    return np.transpose(np.expand_dims(u, 1) * np.expand_dims(v, 0))


def outer_transposed_broadcast(u, v):
    return (v * u[:, None]).T


@pytest.mark.parametrize("fn", [outer_transposed_index, outer_transposed_expand,
                                outer_transposed_broadcast])
def test_a_transposed_outer_product_is_the_other_outer_product(fn):
    """Each spelling of u v^T transposed is v u^T, made without a transposed copy."""
    r = np.random.default_rng(5)
    u, v = r.normal(size=4), r.normal(size=3)
    f = tl.jit(fn)
    np.testing.assert_array_equal(f(u, v), fn(u, v))
    assert "    return v[:, None] * u\n" in f.source_for(u, v), f.source_for(u, v)


# --- gradients the caller owns -------------------------------------------------------------------


def times_other(x, y):
    return np.sum(x * y)  # d/dx is y itself


def total(x, y):
    return np.sum(x) + 2.0 * np.sum(y)  # the gradients are broadcast numbers


def row_of_other(x, y):
    return np.sum(x * y[0])  # d/dx is a view of y


@pytest.mark.parametrize("optimize", ["", "0"])
@pytest.mark.parametrize("fn", [times_other, total, row_of_other])
def test_gradients_are_new_writable_arrays(monkeypatch, fn, optimize):
    """A gradient is an array of the caller's: never an argument, a view of one or a
    read-only broadcast (`x * y`'s gradient in x has y's values, in a new array)."""
    if optimize:
        monkeypatch.setenv("TAPELESS_OPTIMIZE", optimize)
    r = np.random.default_rng(11)
    x, y = r.normal(size=(3, 4)), r.normal(size=(3, 4))
    if fn is row_of_other:
        y = r.normal(size=(2, 4))
    y_before = y.copy()
    grads = tl.grad(fn, argnums=(0, 1))(x, y)
    _, vgrads = tl.value_and_grad(fn, argnums=(0, 1))(x, y)
    for g in [*grads, *vgrads, tl.grad(fn)(x, y)]:
        assert g.flags.writeable and g.flags.owndata
        assert not np.shares_memory(g, x) and not np.shares_memory(g, y)
        g += 1.0  # the caller may change it
    np.testing.assert_array_equal(y, y_before)


def scaled_by_one(x):
    return x * 1.0  # a new array in CPython, whose value is x's


def scaled_pair(x, y):
    return x * 1.0, y  # a new array, and y itself


def test_results_new_in_cpython_stay_new():
    x, y = np.ones(3), np.ones(2)
    got = tl.jit(scaled_by_one)(x)
    assert got is not x and not np.shares_memory(got, x)
    a, b = tl.jit(scaled_pair)(x, y)
    assert a is not x and not np.shares_memory(a, x) and b is y  # (as CPython returns it)
    assert tl.jit(scaled_by_one)(2.0) == 2.0


def scaled_in_while(x, n):
    i = 0
    while i < n:
        x = x * 1.0
        i += 1
    return x


def shifted_in_for(x, n):
    for _ in range(n):
        x = x + 0.0
    return x, x


def copied_then_looped(x, n):
    y = x * 1.0
    for _ in range(n):
        y = y - 0.0
    return y


def scaled_in_branch(x, c):
    if c > 0:
        y = x + 0.0
    else:
        y = scaled_by_one(x)
    return y


@pytest.mark.parametrize("fn, args", [
    (scaled_in_while, (0,)), (scaled_in_while, (3,)), (shifted_in_for, (0,)),
    (shifted_in_for, (2,)), (copied_then_looped, (0,)), (copied_then_looped, (2,)),
    (scaled_in_branch, (1,)), (scaled_in_branch, (-1,))])
def test_results_alias_arguments_as_in_cpython(fn, args):
    """A result made new by a loop step, a branch or a call stays new where `x * 1.0`
    simplifies away; where CPython returns the argument itself (a loop of no steps), so
    does tapeless."""
    x = np.ones(3)
    want, got = fn(x, *args), tl.jit(fn)(x, *args)
    want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
    assert [w is x for w in want] == [g is x for g in got]
    assert [np.shares_memory(w, x) for w in want] == [np.shares_memory(g, x) for g in got]
    assert [w is want[0] for w in want] == [g is got[0] for g in got]


# --- additions of zero, sums over no axes -------------------------------------------------------


def plus_zero(x):
    return np.sum(np.tanh(x + 0.0) * (0.0 + x) - (x - 0.0))


def sum_over_no_axes(x):
    return np.sum(np.sum(x * x, axis=()) * np.sum(np.sin(x), axis=(), keepdims=True))


def int_plus_zero(n, x):
    return np.sum((n + 0.0) * x)  # an int array plus 0.0 is a float array: kept


def zero_d_sum_over_no_axes(x):
    return np.sum(x, axis=()) * 2.0  # a 0-d array's sum over no axes is a NumPy scalar


@pytest.mark.parametrize("fn, gone", [(plus_zero, "0.0"), (sum_over_no_axes, "axis=()")])
def test_zero_additions_and_sums_over_no_axes_disappear(monkeypatch, fn, gone):
    r = np.random.default_rng(12)
    args = (r.normal(size=(3, 4)),)
    f = tl.jit(fn)
    np.testing.assert_allclose(f(*args), fn(*args), rtol=1e-13)
    assert gone not in f.source_for(*args), f.source_for(*args)
    source = _check(fn, args, (0,), monkeypatch)
    assert gone not in source, source


def test_zero_additions_that_change_a_type_stay():
    n, x = np.arange(3), np.ones(3)
    f = tl.jit(int_plus_zero)
    assert f(n, x) == int_plus_zero(n, x) and "0.0" in f.source_for(n, x)
    z = np.array(2.0)
    g = tl.jit(zero_d_sum_over_no_axes)
    assert type(g(z)) is type(zero_d_sum_over_no_axes(z)) and g(z) == 4.0


# --- arguments nothing uses --------------------------------------------------------------------


def _scale_first(a, unused):
    return a * 2.0


def sum_scaled(x, y):
    return np.sum(_scale_first(x, y))


def through_unused_argument(x, y):
    """`unused`'s sensitivity is ZERO: the scaling of x that feeds it does no work in the
    gradient, and the gradient in x is a filled array (x * 2.0 is not computed for its
    shape)."""
    return np.sum(_scale_first(x, -x * 3.0)) + np.sum(x * y)


def test_the_sensitivity_of_an_unused_argument_does_no_work(monkeypatch):
    r = np.random.default_rng(13)
    args = (r.normal(size=(3, 4)), r.normal(size=(3, 4)))
    source = _check(through_unused_argument, args, (0,), monkeypatch)
    for gone in ("sens_of", "ZERO", "3.0", "expand_reduced"):
        assert gone not in source, (gone, source)
    only_x = tl.grad(sum_scaled)
    assert "np.full((3, 4), 2.0)" in only_x.source_for(args[0], args[1])
    assert only_x(args[0], args[1]).flags.writeable
    np.testing.assert_array_equal(only_x(args[0], args[1]), np.full((3, 4), 2.0))


# --- sums of products -------------------------------------------------------------------------


def offset_points(x, mu, Q):
    """The GMM's shape: K x n points share an offset mu_k; mu's gradient is a sum over the
    n points of a product, which becomes one product of the sum."""
    Qx = (x[None, :, :] - mu[:, None, :]) @ np.swapaxes(Q, 1, 2)
    return np.sum(np.exp(-0.5 * np.sum(Qx * Qx, axis=2)))


def test_sum_of_products_over_points_is_one_product(monkeypatch):
    r = np.random.default_rng(7)
    args = (r.normal(size=(9, 3)), r.normal(size=(4, 3)), r.normal(size=(4, 3, 3)))
    source = _check(offset_points, args, (1, 2), monkeypatch)
    # (then the row sum of the scaled Qx is a vector-matrix product: weighted_row_sum)
    # (np.expand_dims(_t_1, -2), spelled as an index for the Python backend)
    assert "_t_1[:, None, :] @ Qx @ Q" in source, source


@pytest.mark.parametrize("fn, shapes, applies", [
    (lambda a, b: np.sum(a @ b, axis=0), ((5, 3), (3, 4)), True),          # rows
    (lambda a, b: np.sum(a @ b, axis=-1), ((5, 3), (3, 4)), True),         # columns
    (lambda a, b: np.sum(a @ b), ((5, 3), (3, 4)), True),                  # both
    (lambda a, b: np.sum(a @ b, axis=(0, 1), keepdims=True), ((2, 5, 3), (3, 4)), True),
    (lambda a, b: np.sum(a @ b, axis=1), ((5, 3), (2, 3, 4)), True),       # broadcast batch
    (lambda a, b: np.sum(a @ b, axis=0), ((2, 5, 3), (2, 3, 4)), False),   # batch axis
    (lambda a, b: np.sum(a @ b, axis=0), ((5, 3), (3,)), False),           # a vector
    (lambda a, b: np.sum(a @ b, axis=0), ((1, 3), (3, 4)), False),         # one row
])
def test_sums_of_products(fn, shapes, applies):
    r = np.random.default_rng(8)
    args = tuple(r.normal(size=s) for s in shapes)
    f = tl.jit(fn)
    np.testing.assert_allclose(f(*args), fn(*args), rtol=1e-12, atol=1e-12)
    assert np.shape(f(*args)) == np.shape(fn(*args))
    assert ("keepdims=True) @" in f.source_for(*args) or
            "@ np.sum(" in f.source_for(*args)) == applies, f.source_for(*args)


# --- accumulators of rows ----------------------------------------------------------------------


def parameter_rows(w, xs):
    """Rows i and i + 1 (mod n) of w each step: the gradient gathers two rows a step."""
    total = 0.0
    n = w.shape[0]
    for i in range(n):
        total = total + np.sum(np.tanh(w[i] * xs[i]) * w[(i + 1) % n])
    return total


def parameter_rows_in_a_dict(p, xs):
    w = p[0]  # (a dict with an int key has no kind)
    total = 0.0
    for i in range(3):
        total = total + np.sum(np.tanh(w[i] * xs[i]) * w[(i + 1) % 3])
    return total


@pytest.mark.parametrize("rows", [3, 1])  # (one row: the same row twice each step)
def test_rows_gathered_without_run_time_tests_where_kinds_prove_them(monkeypatch, rows):
    r = np.random.default_rng(9)
    args = (r.normal(size=(rows, 4)), r.normal(size=(rows, 4)))
    source = _check(parameter_rows, args, (0, 1), monkeypatch)
    # (Python backend: the pieces go into the zeros of w and xs by `d_w[i] += ...`, no
    # helper at all)
    assert in_place_adds(source) == 3 and "_scatter_add" not in source, source


def test_rows_of_a_value_without_kind_keep_the_tested_accumulator(monkeypatch):
    r = np.random.default_rng(10)
    p, xs = {0: r.normal(size=(3, 4))}, r.normal(size=(3, 4))
    g = tl.grad(parameter_rows_in_a_dict)
    source = g.source_for(p, xs)
    assert "_scatter_add(" in source and "_scatter_add_known" not in source, source
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    expected = tl.grad(parameter_rows_in_a_dict)(p, xs)
    np.testing.assert_allclose(g(p, xs)[0], expected[0], rtol=1e-12, atol=1e-12)


# --- loops that do nothing -------------------------------------------------------------------


def unused_loop(x):
    total = 0.0
    for j in range(1, 4):
        total = total + float(j)
    return np.sum(x * x) + total


def test_a_loop_without_effect_on_the_gradient_disappears():
    x = np.arange(3.0)
    g = tl.grad(unused_loop)
    np.testing.assert_allclose(g(x), 2.0 * x)
    assert "for " not in g.source_for(x)


# --- scalings of a broadcast number ----------------------------------------------------------


def mean_squared_error(w, x, y):
    return np.mean((x @ w - y) ** 2)


def sum_of_quotients(x, w):
    return np.sum(x / w) + np.mean(x) / 3.0


def test_mean_squared_error_gradient_scales_once(monkeypatch):
    r = np.random.default_rng(5)
    args = (r.normal(size=(3, 2)), r.normal(size=(8, 3)), r.normal(size=(8, 2)))
    source = _check(mean_squared_error, args, (0,), monkeypatch)
    # d/d(x @ w - y) is 2 / 16 * (x @ w - y): one scaling by a folded constant, no
    # broadcast number scaled per element, no `** 1`
    assert "0.125 * " in source and "expand_reduced" not in source and "** 1" not in source, \
        source


def test_a_broadcast_number_divided_by_an_array(monkeypatch):
    r = np.random.default_rng(6)
    args = (r.normal(size=(4, 3)), r.uniform(1.0, 2.0, size=(4, 3)))
    source = _check(sum_of_quotients, args, (0, 1), monkeypatch)
    # (divided by an array, the broadcast becomes implicit; negated, it is -1.0)
    assert "expand_reduced" not in source and "return d_x, -out / w" in source, source


# --- a float that accumulates NumPy scalars ---------------------------------------------------


def log_softmax_total(w, xs):
    """A Python float that becomes a NumPy scalar in the loop, used nonlinearly after."""
    total = 0.0
    for t in range(xs.shape[0]):
        y = xs[t] * w
        ynorm = y - np.log(np.sum(np.exp(y)))
        total = total + np.sum(xs[t] * ynorm) * (1.0 + 0.01 * total)
    return -total * total / xs.shape[0]


def log_softmax_sum(w, xs):
    """The LSTM objective's float accumulator, linear in the loop."""
    total = 0.0
    for t in range(xs.shape[0]):
        y = xs[t] * w
        total = total + np.sum(xs[t] * (y - np.log(np.sum(np.exp(y)))))
    return -total / xs.shape[0]


def int_then_scalar(w, xs):
    """An int accumulator that becomes a NumPy scalar: no 0-d number kind for it."""
    total = 0
    for t in range(xs.shape[0]):
        total = total + np.sum(xs[t] * w)
    return total * total


@pytest.mark.parametrize("fn", [log_softmax_sum, log_softmax_total, int_then_scalar])
def test_a_float_accumulating_numpy_scalars_is_a_number(fn, monkeypatch):
    r = np.random.default_rng(5)
    args = (r.normal(size=4), r.normal(size=(6, 4)))
    source = _check(fn, args, (0, 1), monkeypatch)
    if fn is log_softmax_sum:
        # The float's sensitivity is a float: no shape bookkeeping, no output check.
        assert "unbroadcast" not in source and "expand_reduced" not in source, source
        assert "check_scalar_output" not in source, source
    if fn is log_softmax_total:
        assert "check_scalar_output" not in source, source


def test_a_float_accumulating_float32_scalars(monkeypatch):
    r = np.random.default_rng(6)
    args = (r.normal(size=4).astype(np.float32), r.normal(size=(6, 4)).astype(np.float32))
    g = tl.grad(log_softmax_total, argnums=(0, 1))
    got = g(*args)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    expected = tl.grad(log_softmax_total, argnums=(0, 1))(*args)
    for x, y in zip(got, expected, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


# --- values a loop saves that its backward loop computes again ---------------------------------


def sigmoid_steps(w, xs):
    """Each step saves `y = exp(-z)`; `1.0 + y` and `1.0 / (1.0 + y)` are computed again
    from it in the backward loop, not saved."""
    h = xs[0]
    for t in range(1, xs.shape[0]):
        y = np.exp(-(h * w + xs[t]))
        s = 1.0 / (1.0 + y)
        u = np.tanh(s)
        h = s * (2.0 * u) - 0.5 * s
    return np.sum(h * h)


def test_saved_values_recomputed_from_other_saved_values(monkeypatch):
    r = np.random.default_rng(7)
    args = (r.normal(size=5), r.normal(size=(6, 5)))
    source = _check(sigmoid_steps, args, (0, 1), monkeypatch)
    forward, backward = source.split("for saved in reversed", 1)
    saved = forward[forward.index("stack_append(("):].split("\n")[0]
    assert "1.0 + " in backward and "1.0 / " in backward, source
    assert saved.count(",") == 3 and "out" not in saved, saved  # (h, tanh, y, t)
    # A second call (the stack is a fresh list each time) gives the same.
    g = tl.grad(sigmoid_steps, argnums=(0, 1))
    for x, y in zip(g(*args), g(*args), strict=True):
        np.testing.assert_array_equal(x, y)


def parameter_row_steps(w, xs):
    """Each step reads row t of w and its row 0; the loop does not change w, which the
    backward loop sees too: the rows are read again there, not saved (neither is the
    row of the constant index)."""
    h = xs[0]
    for t in range(1, xs.shape[0]):
        h = np.tanh(h * w[t] + xs[t] * w[0])
    return np.sum(h * h)


def test_items_of_unchanged_values_read_again_not_saved(monkeypatch):
    r = np.random.default_rng(8)
    args = (r.normal(size=(6, 5)), r.normal(size=(6, 5)))
    source = _check(parameter_row_steps, args, (0, 1), monkeypatch)
    forward, backward = source.split("for saved in reversed", 1)
    saved = forward[forward.index("stack_append(("):].split("\n")[0]
    assert "w[" not in saved and "w[" in backward, source
    assert saved.count(",") == 2, saved  # (t, tanh, h)


# --- kinds that must stay unknown -------------------------------------------------------------


OFFSETS = np.array([1.0, 2.0, 3.0])


def item_of_object_array(a, x):
    item = a[0]
    return x * 2.0 if isinstance(item, (tuple, list)) else x


def list_of_a_constant_array(x):
    return np.sum(np.array(list(OFFSETS)) * x)


def sum_over_axis_of_a_number(x):
    return np.sum(x, axis=0)


def test_kinds_of_unusual_values_are_not_guessed():
    # An item of an object array may be a tuple: `isinstance` must not fold.
    a = np.empty(2, dtype=object)
    a[0], a[1] = (1.0, 2.0), 3.0
    assert tl.jit(item_of_object_array)(a, 1.5) == 3.0
    # `list()` of a constant array compiles; so does a reduction over axis 0 of a 0-d
    # array (which NumPy allows), whose kind is not inferred (it crashed the compiler).
    assert tl.jit(list_of_a_constant_array)(2.0) == list_of_a_constant_array(2.0)
    x = np.array(1.5)
    assert tl.jit(sum_over_axis_of_a_number)(x) == sum_over_axis_of_a_number(x)
    assert tl.grad(sum_over_axis_of_a_number)(x) == 1.0


# --- kinds of calls with constant axes, against NumPy ---------------------------------------

_REDUCTIONS = ("np.sum", "np.mean", "np.prod", "np.max", "method.sum", "method.max")
_AXES = (None, 0, 1, -1, 2, -3, 3, -4, (), (0, 2), (2, 0), (-1, 0), (0, -3), (1, 1),
         (0, 3), True, [0])


def _axis_calls():
    """(primitive, shape, arguments after the array) for reductions, `squeeze` and
    `expand_dims`, valid and not."""
    for name in _REDUCTIONS:
        dtype = () if name.endswith(("max", "min")) else (None,)
        for shape in ((2, 1, 3), ()):
            for axis in _AXES:
                for keepdims in (False, True):
                    yield name, shape, (axis, *dtype, keepdims)
        yield name, (2, 1, 3), (0, *dtype, None)  # keepdims=None: a TypeError
    for name in ("np.squeeze", "method.squeeze"):
        for shape in ((2, 1, 3), (1, 1), ()):
            for axis in _AXES:
                yield name, shape, (axis,)
    for shape in ((2, 1, 3), ()):
        for axis in (None, 0, 3, -1, -4, 4, -5, (), (0, -1), (-1, 0), (1, 3), (0, 0),
                     (0, -4), (0, 4), (0, -5), (0, 1, 2, 3, 4), True, [0]):
            yield "np.expand_dims", shape, (axis,)


def _numpy_kind(name, shape, args):
    """The kind of what NumPy returns for the call, or "raises"."""
    from tapeless.opt.kinds import SCALAR, array

    x = np.zeros(shape)
    fn = functools.partial(getattr(np, name[3:]), x) if name.startswith("np.") else \
        getattr(x, name[7:])
    keywords = dict(zip(("axis", "keepdims") if len(args) == 2 else
                        ("axis", "dtype", "keepdims"), args, strict=False))
    try:
        r = fn(**keywords)
    except (TypeError, ValueError):  # (AxisError is a ValueError)
        return "raises"
    if isinstance(r, np.generic):
        return SCALAR
    assert isinstance(r, np.ndarray) and r.dtype == np.float64
    return array("f8", r.shape)


@pytest.mark.parametrize("name, shape, args", list(_axis_calls()),
                         ids=lambda v: str(v).replace(" ", ""))
def test_kinds_of_calls_with_constant_axes_are_numpys(name, shape, args):
    """Negative axes, tuples of axes (`expand_dims`'s against the result's dimensions),
    duplicates and axes out of range (where NumPy raises, the kind is unknown: never a
    shape), `squeeze` of an axis of length other than 1."""
    from tapeless.ir.nodes import Graph
    from tapeless.opt.kinds import NUMERIC, array, kind
    from tapeless.primitives import PRIMITIVES as P

    g = Graph("f")
    x = g.add_parameter("x")
    x.kind = array("f8", shape)
    got = kind(g.apply(P[name], x, *args))
    if got == NUMERIC:  # (some number or array: says no more than None)
        got = None
    expected = _numpy_kind(name, shape, args)
    axis = args[0]
    # Calls whose kind may stay unknown although NumPy gives a value: bools and lists as
    # axes, squeeze of all axes of length 1, axis 0 (or -1) of a 0-d array.
    guessed = type(axis) in (int, tuple) or (axis is None and name in _REDUCTIONS)
    if name != "np.expand_dims" and shape == () and axis not in (None, ()):
        guessed = False
    if expected == "raises":
        assert got is None, (got, expected)
    elif guessed:
        assert got == expected, (got, expected)
    else:
        assert got in (None, expected), (got, expected)


@pytest.mark.parametrize("count, shape, axis", [(3, (4,), 0), (3, (4,), 1), (3, (4,), -1),
                                                (2, (2, 5), -2), (2, (2, 5), 2), (1, (), 0),
                                                (3, (4,), 2), (3, (4,), -3), (0, (4,), 0)])
def test_kinds_of_stacks_are_numpys(count, shape, axis):
    """`np.stack` of a display of float64 arrays (or floats), of a list made by appending
    and of a comprehension: NumPy's shape, and no kind where NumPy raises (an axis out of
    range, nothing to stack)."""
    from tapeless.ir.nodes import Graph
    from tapeless.opt.kinds import FLOAT, array, kind, list_length
    from tapeless.primitives import PRIMITIVES as P

    g = Graph("f")
    x = g.add_parameter("x")
    x.kind = array("f8", shape) if shape else FLOAT
    display = g.apply(P["make_list"], *[x] * count)
    appended = g.apply(P["list"])
    for _ in range(count):
        appended = g.apply(P["list_append"], appended, x)
    assert list_length(display) == list_length(appended) == count
    try:
        expected = array("f8", np.stack([np.zeros(shape)] * count, axis).shape)
    except (ValueError, np.exceptions.AxisError):
        expected = None
    for seq in (display, appended):
        assert kind(g.apply(P["np.stack"], seq, axis)) == expected


def _doubled_if_matrix(s):
    return s * 2.0 if np.ndim(s) == 2 else s


def rows_appended(a, w):
    rows = []
    for k in range(a.shape[0]):
        rows.append(a[k] * w)
    return _doubled_if_matrix(np.stack(rows, axis=1))


def rows_added(a, w):
    rows = [w]
    for k in range(1, 3):
        rows = rows + [a[k] * w, w]
    return _doubled_if_matrix(np.stack(rows))


def rows_of_a_comprehension(a, w):
    return _doubled_if_matrix(np.stack([a[k] * w for k in range(2)], axis=-1))


def rows_while(a, w):
    rows = []
    k = 0
    while k < 2:
        rows.append(a[k] * w)
        k += 1
    return _doubled_if_matrix(np.stack(rows))


@pytest.mark.parametrize("fn, folded", [(rows_appended, True), (rows_added, True),
                                        (rows_of_a_comprehension, True), (rows_while, False)])
def test_lists_built_by_loops_have_lengths(fn, folded):
    """A list that a `for` loop over a known range appends to (or adds a display to), or
    a comprehension over one, has a known length, and `np.stack` of it a kind: the test
    `np.ndim(s) == 2` folds. A `while` loop's trip count is not known: it stays."""
    a, w = np.arange(12.0).reshape(3, 4), np.linspace(0.0, 1.0, 4)
    np.testing.assert_array_equal(tl.jit(fn)(a, w), fn(a, w))
    assert ("np.ndim" not in tl.jit(fn).source_for(a, w)) == folded


def squeeze_twice(x):
    s = np.squeeze(x, (1, 1))
    return x * 2.0 if np.ndim(s) == 2 else x


def sum_twice(x):
    s = np.sum(x, axis=(0, 0))
    return x * 2.0 if np.ndim(s) == 2 else x


@pytest.mark.parametrize("fn", [squeeze_twice, sum_twice])
def test_calls_naming_an_axis_twice_raise_as_in_numpy(fn):
    """A kind given to a call NumPy refuses folded `np.ndim` of it (and dropped the call)."""
    x = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="duplicate value in 'axis'"):
        fn(x)
    with pytest.raises(ValueError, match="duplicate value in 'axis'"):
        tl.jit(fn)(x)


def test_equal_assumptions_share_one_memo_id():
    """Kinds are memoized by (node, id of the assumptions): equal sets, made apart, must
    share an id, and other sets must not."""
    from tapeless.opt.kinds import FLOAT, INT, array, assume

    a = assume(None, {(1, -1): FLOAT, (2, 0): array("f8", (3,))})
    b = assume(assume(None, {(2, 0): array("f8", (3,))}), {(1, -1): FLOAT})
    assert a.id == b.id != 0
    assert assume(a, {(1, -1): INT}).id not in (a.id, 0)
    assert assume(None, {}).id == 0


# --- products contracting a long axis, in blocks ------------------------------------------


def weighted_quadratic(Q, X, w):
    # d/dQ is swapaxes(w * (X @ Q^T)) @ X: a product contracting X's rows
    return np.sum(w[:, :, None] * (X @ np.swapaxes(Q, 1, 2)) ** 2)


@pytest.mark.parametrize("n, d, blocked", [(1000, 64, True), (1000, 32, True), (300, 64, False),
                                           (1000, 10, False), (1000, 128, False)])
def test_long_products_are_computed_in_blocks(n, d, blocked):
    rng = np.random.default_rng(4)
    Q, X, w = rng.normal(size=(3, d, d)), rng.normal(size=(3, n, d)), rng.random((3, n))
    g = tl.grad(weighted_quadratic)
    assert ("matmul_tn" in g.source_for(Q, X, w)) == blocked
    want = 4 * np.swapaxes(w[:, :, None] * (X @ np.swapaxes(Q, 1, 2)), 1, 2) @ X
    np.testing.assert_allclose(g(Q, X, w), want / 2, rtol=1e-12,
                               atol=1e-13 * np.abs(want).max())  # (sums in another order)


# --- sums of rows scaled row by row -------------------------------------------------------


def rows_weighted_keep(c, a):
    return np.sum(np.expand_dims(c, 2) * a, axis=-2, keepdims=True)


def rows_weighted_flat(c, a):
    return np.sum(a * np.expand_dims(c, -1), axis=0)


def rows_weighted_stack(c, a):
    return np.sum(np.expand_dims(c, -1) * a, axis=1)


def columns_weighted(c, a):
    return np.sum(np.expand_dims(c, -1) * a, axis=-1)  # (not a row sum)


@pytest.mark.parametrize("fn, c_shape, a_shape, applies", [
    (rows_weighted_keep, (3, 50), (3, 50, 4), True),
    (rows_weighted_flat, (50,), (50, 4), True),
    (rows_weighted_stack, (3, 50), (3, 50, 4), True),
    (columns_weighted, (3, 50), (3, 50, 4), False),
    (rows_weighted_stack, (1, 50), (3, 50, 4), False),  # (c broadcast over the stack)
])
def test_weighted_row_sums_are_products(fn, c_shape, a_shape, applies):
    rng = np.random.default_rng(5)
    c, a = rng.normal(size=c_shape), rng.normal(size=a_shape)
    f = tl.jit(fn)
    assert ("@" in f.source_for(c, a)) == applies
    got, want = f(c, a), fn(c, a)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    ints = np.arange(np.prod(a_shape)).reshape(a_shape)
    assert "@" not in f.source_for(c, ints)  # (float64 only)
    np.testing.assert_array_equal(f(c, ints), fn(c, ints))


# --- the logistic function ----------------------------------------------------------------


def logistic_a(x):
    return np.sum(1.0 / (1.0 + np.exp(-x)) * x)


def logistic_b(x):
    return np.sum(1 / (np.exp(-x) + 1) * x)


def not_logistic_c(x):
    return np.sum(2.0 / (1.0 + np.exp(-x)) * x)


def not_logistic_d(x):
    return np.sum(1.0 / (1.0 + np.exp(x)) * x)


def not_logistic_e(x):
    return np.sum(1.0 / (1.0 - np.exp(-x)) * x)


@pytest.mark.parametrize("fn, recognized", [(logistic_a, True), (logistic_b, True),
                                            (not_logistic_c, False), (not_logistic_d, False),
                                            (not_logistic_e, False)])
def test_the_logistic_function_is_recognized(fn, recognized):
    """`1 / (1 + np.exp(-x))` compiles to the `logistic` primitive: computed the same way
    (same values, to the bit, also where exp overflows) and differentiated from its value
    (`d * s * (1 - s)`)."""
    assert ("logistic(" in tl.ir(fn)) == recognized
    x = np.array([-800.0, -3.0, -0.5, 0.0, 0.7, 4.0, 40.0])
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(tl.jit(fn)(x), fn(x))
        assert tl.jit(fn)(0.25) == fn(0.25)
    x = x[[1, 2, 4, 5]]
    g = tl.grad(fn)(x)
    v = np.random.default_rng(9).normal(size=x.shape)
    assert np.dot(g, v) == pytest.approx(directional_fd(fn, (x,), (0,), (v,)), rel=1e-6)
    if recognized:
        s = 1.0 / (1.0 + np.exp(-x))
        np.testing.assert_allclose(g, s + x * s * (1 - s), rtol=1e-13)
        h = tl.grad(lambda a: tl.grad(fn)(a)[2])(x)  # a row of the Hessian (diagonal)
        sa = s[2]
        want = np.zeros_like(x)
        want[2] = 2 * sa * (1 - sa) + x[2] * sa * (1 - sa) * (1 - 2 * sa)
        np.testing.assert_allclose(h, want, rtol=1e-10, atol=1e-14)


def logistic_of_a_variable(x):
    e = np.exp(-x)  # (a variable: the program may read it again)
    return np.sum(1.0 / (1.0 + e) * x)


def test_the_logistic_function_of_a_variable_is_left_as_written():
    assert "logistic(" not in tl.ir(logistic_of_a_variable)


# --- unused parameters --------------------------------------------------------------------


def halve(x, unused, n):
    if n == 0:
        return x
    return halve(x * 0.5, unused, n - 1)


def swap_halve(x, other, n):
    if n == 0:
        return x
    return swap_halve(other * 0.5, x, n - 1)  # (other is read: passed in another place)


def apply_twice(f, x):
    return f(f(x, 0.0, 1), 0.0, 1)


def with_unused(x):
    return np.sum(halve(x, x * 3.0, 4)) + np.sum(swap_halve(x, x * 5.0, 3)) + \
        np.sum(apply_twice(halve, x))


def test_unused_parameters_are_removed():
    """A parameter a recursive function only passes on to itself in the same place is
    removed, with what its callers compute for it; one passed in another place, or of a
    function used as a value, stays."""
    x = np.arange(1.0, 5.0)
    source = tl.jit(with_unused).source_for(x)
    assert "3.0" not in source and "def halve(x, n)" in source.replace("x_1", "x"), source
    assert "5.0" in source  # (swap_halve reads both)
    assert tl.jit(with_unused)(x) == with_unused(x)
    # d/dx of x / 16 + 1.25 x (5x/2, x/2, 2.5x/2 in turn) + x / 4
    np.testing.assert_allclose(tl.grad(with_unused)(x), np.full(4, 0.0625 + 1.25 + 0.25),
                               rtol=1e-15)


def reshaped_to_own_shape(x):
    return x.reshape(3, 4) * x.reshape((3, 4)) + x.reshape(4, 3).T


def test_reshapes_to_the_shape_a_value_has_are_nothing():
    x = np.arange(12.0).reshape(3, 4)
    source = tl.jit(reshaped_to_own_shape).source_for(x)
    assert source.count(".reshape(") == 1 and ".reshape(4, 3)" in source, source
    np.testing.assert_array_equal(tl.jit(reshaped_to_own_shape)(x), reshaped_to_own_shape(x))
    ints = np.arange(12).reshape(3, 4)  # (float64 only)
    assert tl.jit(reshaped_to_own_shape).source_for(ints).count(".reshape(") == 3


def variable_nothing_reads(w, xs):
    h = xs[0]
    for t in range(1, xs.shape[0]):
        e = np.exp(-(h * w + xs[t]))  # noqa: F841  (assigned on each step, never read)
        h = np.tanh(h * w + xs[t])
    return np.sum(h * h)


def test_the_sensitivity_of_a_variable_nothing_reads_does_no_work():
    """Its sensitivity is a zero made concrete for exp's rule (`d * y`); zeros times a
    float64 array stay zeros, so the gradient neither computes nor saves e, and gives 0,
    not nan, where e overflows."""
    r = np.random.default_rng(7)
    w, xs = r.normal(size=5), r.normal(size=(6, 5))
    g = tl.grad(variable_nothing_reads)
    assert "exp" not in g.source_for(w, xs)
    h = 1e-6
    fd = [(variable_nothing_reads(w + h * e, xs) - variable_nothing_reads(w - h * e, xs))
          / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(g(w, xs), fd, rtol=1e-6)
    xs[1:, 0] = -800.0  # exp(-(...)) overflows to inf in the first column
    with np.errstate(over="ignore"):
        assert np.all(np.isfinite(g(w, xs)))


# --- ReLU and np.maximum: one comparison, whichever spelling --------------------------------


def relu_maximum(z, w):
    return np.sum(np.maximum(z @ w, 0.0) ** 2)


def relu_zero_first(z, w):
    return np.sum(np.maximum(0.0, z @ w) * w[0])


def clipped_above(z, w):
    return np.sum(np.sin(np.minimum(z @ w, 0.25)))


def maximum_of_two(z, w):
    """Both arguments arrays: each gets its share (ties split)."""
    return np.sum(np.maximum(z, np.tanh(z)) * np.maximum(w[:1], w[1:2]))


def embedding_hinge(E, target):
    """tests/research_programs.embedding_loss's hinge term."""
    from tests.research_programs import embedding_loss

    return embedding_loss(E, target)


def _ties(shape, seed):
    """Values with exact zeros and repeats, where a max ties."""
    z = np.random.default_rng(seed).normal(size=shape)
    z.flat[::3] = 0.0
    return z


@pytest.mark.parametrize("fn", [relu_maximum, relu_zero_first, clipped_above, maximum_of_two])
def test_the_derivative_of_a_max_is_one_comparison(fn, monkeypatch):
    r = np.random.default_rng(4)
    args = (r.normal(size=(6, 3)), r.normal(size=(3, 3)))
    source = _check(fn, args, (0, 1), monkeypatch)
    assert "max_sens(" in source and "np.where(np.greater" not in source, source
    # Ties (z @ w == 0 exactly, z == tanh(z) at 0) share as the reverse rule does.
    tied = (_ties((6, 3), 1), np.eye(3))
    got = tl.grad(fn, argnums=(0, 1))(*tied)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    expected = tl.grad(fn, argnums=(0, 1))(*tied)
    monkeypatch.delenv("TAPELESS_OPTIMIZE")
    for x, y in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, y)


def test_research_embedding_hinge_is_one_comparison(monkeypatch):
    r = np.random.default_rng(6)
    args = (r.normal(size=(7, 2)), r.uniform(0.5, 2.0, size=21))
    source = _check(embedding_hinge, args, (0,), monkeypatch)
    assert "max_sens(" in source, source


def test_max_sens_matches_the_mask_with_nans_and_infinities():
    from tapeless.runtime import max_sens

    a = np.array([[1.0, 0.0, np.nan, -2.0], [0.0, 3.0, np.inf, -np.inf]])
    d = np.array([[2.0, np.inf, 1.0, np.nan], [-1.0, 4.0, 5.0, 6.0]])
    for b in (0.0, np.array([1.0, 0.0, np.inf, -np.inf])):
        mask = np.where(np.greater(a, b), 1.0, np.where(np.equal(a, b), 0.5, 0.0))
        np.testing.assert_array_equal(max_sens(d, a, b), d * mask)
        np.testing.assert_array_equal(max_sens(d[0], a, b), d[0] * mask)


# --- gathers by integer arrays -----------------------------------------------------------------


def nll_by_label(logp, labels):
    return -np.mean(logp[np.arange(logp.shape[0]), labels] ** 2)


def rows_by_label(x, labels):
    """A 3-d array: each row's label selects a vector."""
    return np.sum(np.sin(x[np.arange(x.shape[0]), labels]))


def gather_with_repeats(x, labels):
    """No np.arange: positions may repeat, their sensitivities add."""
    return np.sum(x[labels, labels[::-1]] ** 2)


@pytest.mark.parametrize("fn, shape", [(nll_by_label, (6, 4)), (rows_by_label, (6, 4, 3)),
                                       (gather_with_repeats, (6, 6))])
def test_gather_sensitivities(fn, shape, monkeypatch):
    r = np.random.default_rng(7)
    args = (r.normal(size=shape), np.array([0, 3, 3, 1, 2, 0]))
    source = _check(fn, args, (0,), monkeypatch)
    if fn is gather_with_repeats:
        assert "index_update" not in source, source  # (repeats add: not an assignment)
    else:
        assert "_rt." not in source.replace("_rt.index_update_inplace(np.zeros(", ""), source


def relu_where(z, w):
    """ReLU as np.where of a comparison operator: every kind is known."""
    h = z @ w
    return np.sum(np.where(h > 0, h, 0.0) ** 2)


def test_comparison_operators_have_kinds(monkeypatch):
    r = np.random.default_rng(8)
    source = _check(relu_where, (r.normal(size=(5, 3)), r.normal(size=(3, 2))), (0, 1),
                    monkeypatch)
    assert "_rt." not in source.replace("_rt.where_zero(", "") and "np.ndim" not in source \
        and "np.where" not in source, source


def test_where_zero_matches_np_where_with_nans_and_infinities():
    from tapeless.runtime import where_zero

    c = np.array([[True, False, False, True], [False, False, True, True]])
    for x in (np.array([[1.0, -2.0, 3.0, -0.0], [0.5, 4.0, -1.0, 2.0]]),
              np.array([[1.0, np.inf, np.nan, 2.0], [-np.inf, 1.0, np.nan, np.inf]])):
        got, expected = where_zero(c, x), np.where(c, x, 0.0)
        np.testing.assert_array_equal(got, expected)  # (-0.0 == 0.0)
        np.testing.assert_array_equal(np.signbit(got[c]), np.signbit(expected[c]))
    np.testing.assert_array_equal(where_zero(c[0], x), np.where(c[0], x, 0.0))


def relu_layer(w, x):
    return np.sum(np.maximum(x @ w, 0.0) ** 2)


def test_per_example_gradients_of_a_relu_layer():
    """`max_sens` in the optimized per-example gradient is batched element by element."""
    r = np.random.default_rng(9)
    w, xs = r.normal(size=(3, 4)), r.normal(size=(5, 2, 3))
    xs[0, 0] = 0.0  # (a tie at zero)
    g = tl.grad(relu_layer)
    assert "max_sens(" in g.source_for(w, xs[0])
    got = tl.vmap(g, in_axes=(None, 0))(w, xs)
    np.testing.assert_allclose(got, np.stack([g(w, x) for x in xs]), rtol=1e-14, atol=0)


# --- a loop over coefficients: dot products, one accumulator -------------------------------


def coefficient_loop(c, x, y):
    """bench/control_programs.poly_loss: every kind inside the loop is known."""
    pred = np.zeros_like(x)
    for k in range(c.shape[0]):
        pred = pred + c[k] * x ** k
    return np.mean((pred - y) ** 2)


def sum_of_products_2d(a, b):
    """Not vectors: the sum stays a sum."""
    return np.sum(np.sin(a) * b)


def sum_of_products_1d(a, b):
    return np.sum(np.sin(a) * b)


def test_coefficient_loop_gradient_is_dots_into_one_accumulator(monkeypatch):
    r = np.random.default_rng(10)
    args = (r.normal(size=5), r.uniform(-1.0, 1.0, size=40), r.normal(size=40))
    source = _check(coefficient_loop, args, (0,), monkeypatch)
    # (without run-time tests: each piece `d @ x ** k` is a float64 number)
    assert in_place_adds(source) == 1 and "_scatter_add" not in source and \
        "getitem_sens" not in source and "np.sum(" not in source and " @ " in source and \
        "unbroadcast" not in source, source


@pytest.mark.parametrize("shape, dot", [((3, 4), False), ((7,), True)])
def test_a_sum_of_products_of_vectors_is_a_dot_product(shape, dot):
    r = np.random.default_rng(11)
    a, b = r.normal(size=shape), r.normal(size=shape)
    f = tl.jit(sum_of_products_2d if len(shape) == 2 else sum_of_products_1d)
    np.testing.assert_allclose(f(a, b), np.sum(np.sin(a) * b), rtol=1e-14)
    source = f.source_for(a, b)
    # (a sum spelled as the array's method for the Python backend)
    assert (".sum()" in source) != dot and (" @ " in source) == dot, source


# --- loop bodies over components (the GMM written one component at a time) ----------------


def row_read_twice(q, w):
    """q[k] read twice in one iteration: its two sensitivities, one piece."""
    total = 0.0
    for k in range(q.shape[0]):
        total = total + np.sum(q[k]) * np.sum(np.exp(q[k]) * w)
    return total


def row_read_twice_constant(q, w):
    """The same with constant indices, no loop."""
    return np.sum(q[1] * w) * np.sum(np.cos(q[1])) + np.sum(q[0] * q[1])


@pytest.mark.parametrize("fn", [row_read_twice, row_read_twice_constant])
def test_pieces_scattered_to_one_index_are_summed_first(fn, monkeypatch):
    r = np.random.default_rng(12)
    source = _check(fn, (r.normal(size=(3, 4)), r.normal(size=4)), (0, 1), monkeypatch)
    assert "(k_1, k_1)" not in source and "(1, 1)" not in source, source
    if fn is row_read_twice:
        assert in_place_adds(source) == 1 and "_scatter_add" not in source, source


def squares_by_row(y, v):
    """`np.sum(y ** 2, axis=1)`: its gradient `expand_reduced(-0.5 * d, y, 1) * 2 * y`
    scales the small array before broadcasting it."""
    return np.sum(-0.5 * np.sum(y ** 2, axis=1) * v)


def squares_by_row_in_a_loop(y, m):
    rows = []
    for k in range(m.shape[0]):
        rows.append(np.sum(((y - m[k]) * 3.0) ** 2, axis=-1))
    return np.sum(np.stack(rows) ** 2) / 7.0


@pytest.mark.parametrize("fn", [squares_by_row, squares_by_row_in_a_loop])
def test_a_broadcast_array_scaled_by_a_number_is_scaled_first(fn, monkeypatch):
    r = np.random.default_rng(13)
    args = (r.normal(size=(6, 3)), r.normal(size=6) if fn is squares_by_row
            else r.normal(size=(2, 3)))
    source = _check(fn, args, (0, 1), monkeypatch)
    assert "expand_reduced" not in source, source


def rows_through_a_transpose(m, Q, x):
    """`(x - m[k]) @ Q[k].T` one component at a time: Q's sensitivity through `.T` is a
    transpose, not a run-time helper."""
    total = 0.0
    for k in range(m.shape[0]):
        total = total + np.sum(np.tanh((x - m[k]) @ Q[k].T))
    return total


def transpose_of_a_product(a, b):
    return np.sum(np.sin((a @ b).T) * a[0, 0])


@pytest.mark.parametrize("fn", [rows_through_a_transpose, transpose_of_a_product])
def test_the_sensitivity_through_a_transpose_is_a_transpose(fn, monkeypatch):
    r = np.random.default_rng(14)
    if fn is rows_through_a_transpose:
        args, nums = (r.normal(size=(2, 3)), r.normal(size=(2, 3, 3)), r.normal(size=(5, 3))), \
            (0, 1, 2)
    else:
        args, nums = (r.normal(size=(3, 4)), r.normal(size=(4, 2))), (0, 1)
    source = _check(fn, args, nums, monkeypatch)
    assert "getattr_sens" not in source, source


def matrix_in_two_products(A, x, y):
    """A's gradient: the outer products of two sensitivities with x and y, summed."""
    return np.sum(np.tanh(A @ x)) + np.sum(np.sin(A @ y) * 0.5) + np.sum(A @ (x * y))


def outer_products_written_out(u, v, w, z):
    m = u[:, None] * v + w[:, None] * z + np.expand_dims(u * w, -1) * np.cos(z)
    return np.sum(np.tanh(m))


def outer_products_of_other_shapes(u, v, w, z):
    """Not one product: the outer products have different shapes (broadcast)."""
    return np.sum(np.tanh(u[:, None] * v + w[:, None] * z[:1]))


@pytest.mark.parametrize("fn, args, merged", [
    (matrix_in_two_products, ((4, 3), (3,), (3,)), True),
    (outer_products_written_out, ((4,), (3,), (4,), (3,)), True),
    (outer_products_of_other_shapes, ((4,), (3,), (4,), (3,)), False)],
    ids=lambda v: getattr(v, "__name__", ""))
def test_a_sum_of_outer_products_is_one_product(fn, args, merged, monkeypatch):
    r = np.random.default_rng(15)
    values = tuple(r.normal(size=s) for s in args)
    source = _check(fn, values, tuple(range(len(args))), monkeypatch)
    # (np.stack of the vectors spelled as np.array for the Python backend)
    assert ("np.array((" in source) == merged and "np.stack(" not in source, source
    if merged:
        np.testing.assert_allclose(tl.jit(fn)(*values), fn(*values), rtol=1e-13)


def horner(c, x, y):
    pred = np.zeros_like(x)
    for k in range(c.shape[0] - 1, -1, -1):
        pred = pred * x + c[k]
    return np.sum((pred - y) ** 2)


def horner_written_otherwise(c, x):
    """Horner written `c[k] + x * p`, a mean of a sine as the loss."""
    pred = np.zeros_like(x)
    for k in range(c.shape[0] - 1, -1, -1):
        pred = c[k] + x * pred
    return np.mean(np.sin(pred))


@pytest.mark.parametrize("fn", [horner, horner_written_otherwise])
def test_a_coefficients_sum_goes_into_its_accumulator_without_tests(fn, monkeypatch):
    """The piece of a coefficient `c[k]` is a float64 array's sum (its kind says only
    "a NumPy scalar"): `scatter_add_known`."""
    r = np.random.default_rng(16)
    args = (r.normal(size=4), r.uniform(-1.0, 1.0, size=30)) + \
        ((r.normal(size=30),) if fn is horner else ())
    source = _check(fn, args, (0,), monkeypatch)
    assert in_place_adds(source) == 1 and "_scatter_add" not in source, source
