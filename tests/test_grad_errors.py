"""Errors of the derivative API: what cannot be differentiated is refused with a
`tl.TapelessError` that says why and what to do instead."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import tapeless as tl


def mul(x, y):
    return x * y


def scale(x):
    return x * 2.0


def pair(x):
    return x, x * 2.0


def returns_int_in_a_branch(x):
    if x < 0.0:
        return 0
    return x * x


# --- differentiating with respect to ints and bools ---------------------------------------


@pytest.mark.parametrize(("args", "argnums", "what"), [
    ((3, 2.0), 0, "an int"),
    ((True, 2.0), 0, "a bool"),
    ((2.0, np.arange(3)), (0, 1), "an array of dtype int"),
    (((1.0, 2), 3.0), 0, "an int"),
    (({"a": 1.0, "b": np.int64(4)}, 3.0), 0, "an int"),
])
def test_grad_with_respect_to_an_integer_is_refused(args: tuple, argnums: int | tuple,
                                                    what: str) -> None:
    i = argnums if isinstance(argnums, int) else argnums[-1]
    with pytest.raises(tl.TapelessError, match=rf"argument {i}: it is \(or contains\) {what}"):
        tl.grad(mul, argnums)(*args)


def test_integer_error_says_what_to_do() -> None:
    with pytest.raises(tl.GradError) as info:
        tl.value_and_grad(mul)(3, 2.0)
    text = str(info.value)
    assert "value_and_grad of mul" in text and "pass a float (e.g. 3.0)" in text
    assert "argnums" in text


def test_integer_arguments_outside_argnums_are_fine() -> None:
    assert tl.grad(mul, 1)(3, 2.0) == 3.0
    assert tl.grad(returns_int_in_a_branch)(-1.0) == 0.0
    assert tl.grad(returns_int_in_a_branch)(1.5) == 3.0


# --- non-scalar outputs ----------------------------------------------------------------------


def test_non_scalar_output_mentions_vjp() -> None:
    with pytest.raises(tl.GradError, match=r"returned an array of shape \(3,\).*tl\.vjp"):
        tl.grad(scale)(np.ones(3))


def test_tuple_output_mentions_vjp_and_has_aux() -> None:
    with pytest.raises(tl.TapelessError) as info:
        tl.grad(pair)(1.0)
    assert "tl.vjp" in str(info.value) and "has_aux" in str(info.value)


def test_value_and_grad_of_non_scalar_output() -> None:
    with pytest.raises(tl.GradError, match="tl.vjp"):
        tl.value_and_grad(scale)(np.ones((2, 2)))


def test_vjp_handles_non_scalar_outputs() -> None:
    out, vjp_fn = tl.vjp(scale, np.ones(3))
    np.testing.assert_array_equal(vjp_fn(np.arange(3.0))[0], 2.0 * np.arange(3.0))


def returns_string(x):
    return "not a number"


def test_string_output_is_refused() -> None:
    with pytest.raises(tl.GradError, match="returned str"):
        tl.grad(returns_string)(1.0)


def aux_missing(x):
    return x * 3.0


def test_has_aux_without_a_pair_is_refused() -> None:
    with pytest.raises(tl.GradError, match="has_aux"):
        tl.grad(aux_missing, has_aux=True)(1.0)


# --- argnums ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argnums", [2, -3, (0, 2), (5,)])
def test_argnums_out_of_range(argnums: int | tuple) -> None:
    with pytest.raises(tl.GradError, match="out of range"):
        tl.grad(mul, argnums)(1.0, 2.0)


@pytest.mark.parametrize("argnums", [[0], 1.0, "0", (0, 1.0)])
def test_argnums_of_the_wrong_type(argnums: object) -> None:
    with pytest.raises(tl.GradError, match="argnums must be an int or a tuple of ints"):
        tl.grad(mul, argnums)


def test_negative_argnums_count_from_the_end() -> None:
    assert tl.grad(mul, -1)(3.0, 2.0) == 3.0
    assert tl.grad(mul, (-2, -1))(3.0, 2.0) == (2.0, 3.0)


# --- unsupported constructs in differentiated code -------------------------------------------


def uses_try(x):
    try:  # construct: try
        y = 1.0 / x
    except ZeroDivisionError:
        y = 0.0
    return y


def sorts(x):
    ys = [x, 1.0]
    ys.sort()  # construct: sort
    return ys[0]


def uses_yield(x):
    yield x * 2.0  # construct: yield


def helper_with_global(x):
    global _COUNTER
    _COUNTER = x  # construct: global
    return x


def calls_bad_helper(x):
    return helper_with_global(x) * 2.0


_COUNTER = 0.0


def _line_of(fn: object, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    for k, line in enumerate(lines):
        if f"# construct: {marker}" in line:
            return start + k
    raise AssertionError(marker)


@pytest.mark.parametrize(("fn", "where", "marker", "message"), [
    (uses_try, uses_try, "try", "try"),
    (sorts, sorts, "sort", "mutates"),
    (uses_yield, uses_yield, "yield", "yield"),
    (calls_bad_helper, helper_with_global, "global", "global"),
])
@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "vjp"])
def test_unsupported_construct_is_located(fn: object, where: object, marker: str,
                                          message: str, transform: str) -> None:
    with pytest.raises(tl.CompileError) as info:
        if transform == "vjp":
            tl.vjp(fn, 1.0)
        else:
            getattr(tl, transform)(fn)(1.0)
    exc = info.value
    assert isinstance(exc, tl.TapelessError)
    line = _line_of(where, marker)
    assert re.search(rf"test_grad_errors\.py:{line}:\d+", str(exc)), str(exc)
    assert message in str(exc).lower()
    assert exc.loc is not None and exc.loc.line == line


def test_grad_error_is_a_tapeless_error() -> None:
    assert issubclass(tl.GradError, tl.TapelessError)
    assert issubclass(tl.CompileError, tl.TapelessError)


def _pick_and_grad(x, k):
    def f(z):
        return (z * k, z)

    g = f if k > 0 else (lambda z: (z, z))
    return tl.grad(lambda y: g(y)[0] * y)(x)


def test_a_function_value_of_the_code_around_a_nested_grad_is_refused_not_miscompiled() -> None:
    # (The value `g` was left out of the generated code, a NameError, and the derivative
    # code called the primal function as if it were its J-callable.)
    with pytest.raises(tl.GradError, match="made inside compiled code, is passed to a "
                                           "tl.grad"):
        tl.jit(_pick_and_grad)(0.5, 2.0)
