"""Constructs research code uses that compile as written: `import` inside a function
(bound when compiling, like a global), `dict(a=..., b=...)` and `dataclasses.replace`;
values as CPython's, gradients against finite differences, optimizer on and off."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl


def imports_module(x):
    import math

    return math.sin(x) * x


def imports_as(x):
    import numpy as numpy_alias

    return numpy_alias.sum(numpy_alias.tanh(x) ** 2)


def imports_from(x):
    from math import cos
    from math import exp as e

    return cos(x) + e(0.5 * x)


def imports_submodule(a):
    import numpy.linalg

    return numpy.linalg.det(a)


@pytest.mark.parametrize("fn, arg", [
    (imports_module, 0.7),
    (imports_as, np.array([0.3, -1.2, 0.5])),
    (imports_from, 1.3),
    (imports_submodule, np.array([[2.0, 0.5], [0.25, 1.5]])),
])
def test_import_inside_a_function(fn, arg, optimize: str) -> None:
    assert tl.jit(fn)(arg) == pytest.approx(fn(arg), rel=1e-13)
    check_directional(tl.grad(fn)(arg), fn, (arg,), (0,), np.random.default_rng(0))


def test_an_import_that_fails_names_the_line() -> None:
    def bad(x):
        from math import no_such_function

        return no_such_function(x)

    with pytest.raises(tl.CompileError, match="cannot import inside the compiled function"):
        tl.jit(bad)(1.0)


def dict_by_keywords(x, w):
    params = dict(weight=w, scale=2.0)
    return np.sum(params["weight"] * x) * params["scale"]


def test_dict_built_with_keywords(optimize: str) -> None:
    x, w = np.array([0.5, -1.0]), np.array([1.5, 0.25])
    assert tl.jit(dict_by_keywords)(x, w) == pytest.approx(dict_by_keywords(x, w))
    g = tl.grad(dict_by_keywords, argnums=(0, 1))(x, w)
    check_directional(g, dict_by_keywords, (x, w), (0, 1), np.random.default_rng(1))


@dataclass(frozen=True)
class Params:
    w: np.ndarray
    b: float


def sgd_then_loss(p, x):
    # One step of gradient descent on a dataclass of parameters, updated with
    # dataclasses.replace, inside the function differentiated (second order).
    g = tl.grad(inner_loss)(p, x)
    q = dataclasses.replace(p, w=p.w - 0.1 * g.w, b=p.b - 0.1 * g.b)
    return inner_loss(q, x)


def inner_loss(p, x):
    return np.sum(np.tanh(x @ p.w + p.b) ** 2)


def replaced_product(p):
    q = dataclasses.replace(p, b=p.b * 3.0)
    return np.sum(q.w) * q.b


def test_dataclasses_replace(optimize: str) -> None:
    rng = np.random.default_rng(2)
    p = Params(rng.normal(size=3), 0.4)
    x = rng.normal(size=(4, 3))
    assert tl.jit(replaced_product)(p) == pytest.approx(replaced_product(p))
    g = tl.grad(replaced_product)(p)
    assert type(g) is Params
    check_directional(g, replaced_product, (p,), (0,), rng)
    assert tl.jit(sgd_then_loss)(p, x) == pytest.approx(
        inner_loss(Params(p.w - 0.1 * tl.grad(inner_loss)(p, x).w,
                          p.b - 0.1 * tl.grad(inner_loss)(p, x).b), x), rel=1e-12)
    check_directional(tl.grad(sgd_then_loss)(p, x), sgd_then_loss, (p, x), (0,), rng,
                      rtol=1e-5)


def weighted_by_sorted_keys(d):
    return sum(d[k] * (i + 1.0) for i, k in enumerate(sorted(d)))


def test_sorted_keys_of_a_dict(optimize: str) -> None:
    # (The keys have no sensitivity: the dict's gradient is the weights, by key.)
    d = {"b": 1.5, "a": -2.0, "c": 0.25}
    assert tl.jit(weighted_by_sorted_keys)(d) == pytest.approx(weighted_by_sorted_keys(d))
    assert tl.grad(weighted_by_sorted_keys)(d) == {"a": 1.0, "b": 2.0, "c": 3.0}


def merged_config(x, base):
    config = {**base, "scale": x * 2.0, "shift": 0.5}
    more = {"extra": x, **config}
    return more["scale"] * more["w"] + more["shift"] + more["extra"] * base["w"]


def test_dict_displays_with_double_star(optimize: str) -> None:
    base = {"w": 1.5, "scale": 100.0}
    assert tl.jit(merged_config)(0.3, base) == pytest.approx(merged_config(0.3, base))
    g = tl.grad(merged_config, argnums=(0, 1))(0.3, base)
    assert g[1]["scale"] == 0.0  # (overwritten by the later key)
    check_directional(g, merged_config, (0.3, base), (0, 1), np.random.default_rng(3))


def sum_of_fields(p):
    return sum(getattr(p, f.name) * (i + 1.0) for i, f in enumerate(dataclasses.fields(p)))


def test_dataclasses_fields(optimize: str) -> None:
    p = Params(np.array([0.5, 1.5]), 2.0)
    np.testing.assert_allclose(tl.jit(sum_of_fields)(p), sum_of_fields(p))
    g = tl.grad(lambda p: np.sum(sum_of_fields(p)))(p)
    assert type(g) is Params
    np.testing.assert_array_equal(g.w, [1.0, 1.0])
    assert g.b == 4.0


# --- zip(..., strict=True) ------------------------------------------------------------------

def zip_loop(xs, ys):
    s = 0.0
    for a, b in zip(xs, ys, strict=True):
        s = s + a * b
    return s


def zip_loop_three(xs, ys, zs):
    s = 0.0
    for a, b, c in zip(xs, ys, zs, strict=True):
        s = s + a * b * c
    return s


def zip_value(xs, ys):
    pairs = list(zip(xs, ys, strict=True))
    return sum(a * b for a, b in pairs) + len(pairs)


def zip_not_strict(xs, ys):
    return sum(a * b for a, b in zip(xs, ys, strict=False))


@pytest.mark.parametrize("fn", [zip_loop, zip_value, zip_not_strict])
def test_zip_strict(fn, optimize: str) -> None:
    xs, ys = [1.0, 2.0, 3.0], np.array([0.5, -1.0, 2.0])
    assert tl.jit(fn)(xs, ys) == fn(xs, ys)
    assert tl.grad(fn)(xs, ys) == pytest.approx(list(ys))
    np.testing.assert_allclose(tl.grad(fn, argnums=1)(xs, ys), xs)


@pytest.mark.parametrize("fn, args", [
    (zip_loop, ([1.0, 2.0], [1.0])), (zip_loop, ([1.0], [1.0, 2.0])),
    (zip_value, ([1.0, 2.0], [1.0])), (zip_loop_three, ([1.0], [2.0], [1.0, 3.0])),
])
def test_zip_strict_lengths_differ(fn, args, optimize: str) -> None:
    with pytest.raises(ValueError) as expected:
        fn(*args)
    with pytest.raises(ValueError, match=re.escape(str(expected.value))):
        tl.jit(fn)(*args)
    with pytest.raises(ValueError, match=re.escape(str(expected.value))):
        tl.grad(fn)(*args)
    assert zip_not_strict([1.0, 2.0], [3.0]) == tl.jit(zip_not_strict)([1.0, 2.0], [3.0])


# --- tuple unpacking: the length is checked as CPython checks it ---------------------

def unpack_two(x, t):
    a, b = t
    return a * x + b


def unpack_in_loop(x, pairs):
    s = 0.0
    for p in pairs:
        a, b = p
        s = s + a * b * x
    return s


def unpack_for_target(x, pairs):
    s = 0.0
    for a, b in pairs:
        s = s + a * np.sin(b * x)
    return s


def unpack_array(x):
    a, b, c = x
    return a * b * np.sin(c)


def unpack_nested(x):
    (a, b), c = (x, x * 2.0), x * 3.0
    return a * b * c


def unpack_result(x):
    q, r = divmod(x, 0.75)
    return q + r * x


def unpack_dict_keys(x, d):
    a, b = d
    return x * d[a] + d[b]


@pytest.mark.parametrize("fn, args", [
    (unpack_two, (1.5, (2.0, 3.0))), (unpack_two, (1.5, [2.0, 3.0])),
    (unpack_two, (1.5, np.array([2.0, 3.0]))),
    (unpack_in_loop, (1.5, [(1.0, 2.0), (3.0, -1.0)])),
    (unpack_for_target, (0.7, [(1.0, 2.0), (3.0, -1.0)])),
    (unpack_array, (np.array([0.5, -1.5, 2.0]),)), (unpack_nested, (1.25,)),
    (unpack_result, (2.3,)), (unpack_dict_keys, (0.5, {"p": 2.0, "q": 3.0})),
])
def test_unpacking_of_the_right_length(fn, args, optimize: str) -> None:
    assert tl.jit(fn)(*args) == pytest.approx(fn(*args), rel=1e-13)
    check_directional(tl.grad(fn)(*args), fn, args, (0,), np.random.default_rng(1))


@pytest.mark.parametrize("fn, args", [
    (unpack_two, (1.5, (2.0, 3.0, 4.0))), (unpack_two, (1.5, [2.0])),
    (unpack_two, (1.5, np.array([2.0, 3.0, 4.0]))), (unpack_two, (1.5, 2.0)),
    (unpack_in_loop, (1.5, [(1.0, 2.0), (3.0, -1.0, 0.0)])),
    (unpack_for_target, (0.7, [(1.0, 2.0), (3.0,)])),
    (unpack_array, (np.array([0.5, -1.5]),)),
    (unpack_dict_keys, (0.5, {"p": 2.0, "q": 3.0, "r": 1.0})),
])
def test_unpacking_of_the_wrong_length(fn, args, optimize: str) -> None:
    with pytest.raises((ValueError, TypeError)) as expected:
        fn(*args)
    for compiled in (tl.jit(fn), tl.grad(fn)):
        with pytest.raises(expected.type, match=re.escape(str(expected.value))):
            compiled(*args)


def test_unpacking_under_vmap_takes_each_examples_items() -> None:
    xs = np.random.default_rng(2).normal(size=(5, 3))
    want = np.array([unpack_array(x) for x in xs])
    np.testing.assert_allclose(tl.vmap(unpack_array)(xs), want, rtol=1e-13)
    np.testing.assert_allclose(tl.vmap(unpack_array, in_axes=1)(xs.T.copy()), want,
                               rtol=1e-13)
    grads = np.array([tl.grad(unpack_array)(x) for x in xs])
    np.testing.assert_allclose(tl.vmap(tl.grad(unpack_array))(xs), grads, rtol=1e-13)


def slices_made_by_the_builtin(x):
    s = slice(1, 3)
    return (np.sum(x[s] ** 2) + np.sum(x[slice(2)] * x[slice(None, None, -1)][:2]) +
            x[slice(0, 4, 2)][1])


def test_slice_builtin() -> None:
    """`slice(...)` in compiled code (one, two or three arguments), differentiated,
    batched and native, against CPython and finite differences."""
    f = slices_made_by_the_builtin
    x = np.array([0.5, -1.0, 2.0, 0.3])
    assert tl.jit(f)(x) == f(x)
    want = np.array([x[3], 2 * x[1] + x[2], 2 * x[2] + x[1] + 1.0, x[0]])
    np.testing.assert_allclose(tl.grad(f)(x), want, rtol=1e-12)
    np.testing.assert_allclose(tl.grad(f, backend="native")(x), want, rtol=1e-12)
    e = 1e-6
    fd = np.array([(f(x + e * d) - f(x - e * d)) / (2 * e) for d in np.eye(4)])
    np.testing.assert_allclose(want, fd, rtol=1e-6, atol=1e-8)
    xs = np.stack([x, 2 * x])
    np.testing.assert_allclose(tl.vmap(tl.grad(f))(xs), np.stack([tl.grad(f)(v) for v in xs]),
                               rtol=1e-12)
