"""Constructs research code uses that compile as written: `import` inside a function
(bound when compiling, like a global) and `dict(a=..., b=...)`; values as CPython's,
gradients against finite differences, optimizer on and off."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl


@pytest.fixture(params=["optimized", "unoptimized"])
def optimize(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "unoptimized":
        monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    return request.param


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
