"""`**kwargs` parameters (the function receives a dict) and `f(**d)` in calls: with
keys known when compiling (a display, `dict(...)`, updates of them), and, for a
function known when compiling, with keys known only at run time (looked up per
parameter, with Python's TypeErrors); gradients flow through the dict's values. Values
against CPython, gradients against finite differences, optimizer on and off."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl


def layer(x, w, scale=1.0, **opts):
    y = np.tanh(x * w) * scale
    if "bias" in opts:
        y = y + opts["bias"]
    return np.sum(y)


def with_display(x, w):
    cfg = {"scale": 2.0, "bias": w * 0.5}
    cfg["extra"] = x[0]
    return layer(x, w, **cfg) + layer(x, w, **dict(scale=w))


def merged_dicts(x, w):
    base = {"scale": w}
    return layer(x, **{**base, "w": 0.5 * w}, bias=x[1])


def forwards(x, w, **kw):
    return layer(x, w, **kw) * kw["scale"]


def forwards_twice(x, **kw):
    return layer(x, **kw) + layer(2.0 * x, **kw)


def spreads_argument(x, d):
    return forwards(x, 0.3, **d)


def collects(**kw):
    total = 0.0
    for k in kw:
        total = total + kw[k] * len(k)
    return total


def updates_own_kwargs(x, **kw):
    kw["scale"] = kw["scale"] * 2.0
    kw.update(bias=x[0])
    return layer(x, 0.7, **kw)


X = np.array([0.3, -0.5])


@pytest.mark.parametrize(("fn", "args", "kwargs"), [
    (with_display, (X, 0.7), {}),
    (merged_dicts, (X, 0.7), {}),
    (forwards, (X, 0.7), {"scale": 3.0, "bias": 1.0}),
    (forwards_twice, (X,), {"w": 0.4, "scale": 1.5}),
    (spreads_argument, (X, {"scale": 2.0, "bias": -0.5}), {}),
    (collects, (), {"a": 1.0, "bcd": 2.0}),
    (updates_own_kwargs, (X,), {"scale": 1.2}),
])
def test_values_as_cpython(fn, args, kwargs, optimize: str) -> None:
    assert tl.jit(fn)(*args, **kwargs) == pytest.approx(fn(*args, **kwargs), rel=1e-12)


@pytest.mark.parametrize(("fn", "args"), [
    (with_display, (X, 0.7)),
    (merged_dicts, (X, 0.7)),
    (spreads_argument, (X, {"scale": 2.0, "bias": -0.5})),
])
def test_gradients_through_dict_values(fn, args, optimize: str) -> None:
    grads = tl.grad(fn, argnums=(0, 1))(*args)
    check_directional(grads, fn, args, (0, 1), np.random.default_rng(1))


def test_gradient_of_a_kwargs_parameter(optimize: str) -> None:
    g = tl.grad(forwards, argnums=(0, 1, 2))(X, 0.7, scale=3.0, bias=1.0)
    assert set(g[2]) == {"scale", "bias"}
    check_directional(g, lambda x, w, kw: forwards(x, w, **kw), (X, 0.7, {"scale": 3.0,
                                                                             "bias": 1.0}),
                      (0, 1, 2), np.random.default_rng(2))


def test_second_order_through_kwargs(optimize: str) -> None:
    def f(s):
        return forwards(X, s, scale=s, bias=s * s)

    d1 = tl.grad(f)
    h = 1e-4
    numeric = (-d1(0.7 + 2 * h) + 8 * d1(0.7 + h) - 8 * d1(0.7 - h) + d1(0.7 - 2 * h)) / (12 * h)
    assert tl.grad(tl.grad(f))(0.7) == pytest.approx(numeric, rel=1e-6)


def test_python_errors_for_keys_that_do_not_fit() -> None:
    def no_rest(x, w):
        return x * w

    def spreads(x, d):
        return no_rest(x, **d)

    compiled = tl.jit(spreads)
    with pytest.raises(TypeError, match="unexpected keyword argument 'v'"):
        compiled(1.0, {"w": 2.0, "v": 1.0})
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        compiled(1.0, {"w": 2.0, "x": 1.0})
    with pytest.raises(TypeError, match="missing 1 required argument: 'w'"):
        compiled(1.0, {})
    assert compiled(1.5, {"w": 2.0}) == 3.0


def test_spread_into_a_primitive_needs_known_keys() -> None:
    def spreads(x, d):
        return np.sum(x, **d)

    with pytest.raises(tl.CompileError, match="needs a dict whose keys are known"):
        tl.jit(spreads)(X, {"axis": 0})
