"""Generated code keeps the user's names: constants are named after the globals they
came from, sensitivities after their variables (`d_<name>`), and a variable assigned
again keeps its name."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

import tapeless as tl
from bench import workloads as w

W = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
_rt = np.full(4, 2.0)  # a global named like the generated code's runtime module


def global_array(x):
    return np.sum(np.tanh(x @ W))


def global_named_like_runtime(x):
    return np.sum(np.tanh(x @ W) * _rt)


def make_closure():
    V = np.arange(4.0)

    def f(x):
        return np.sum((x @ W) * V)

    return f


def rnn(h, w):
    for _ in range(3):
        h = np.tanh(h @ w)
    return np.sum(h)


def reassigned(x):
    y = x * 2.0
    y = np.sin(y) + x
    return y * y


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x


optimized = pytest.mark.skipif(os.environ.get("TAPELESS_OPTIMIZE", "") not in ("", "all"),
                               reason="the shape of the fully optimized code")


def _defs(source):
    """The names a source assigns or binds as parameters."""
    return set(re.findall(r"^\s*(\w+) = ", source, re.M)) | \
        set(re.findall(r"def \w+\(([^)]*)\)", source)[0].replace(" ", "").split(","))


def test_a_global_array_is_named_after_its_global():
    x = np.ones((2, 3))
    for f in (tl.jit(global_array), tl.grad(global_array)):
        source = f.source_for(x)
        assert "@ W" in source and "_const" not in source, source
    np.testing.assert_allclose(tl.grad(global_array)(x),
                               (1.0 - np.tanh(x @ W) ** 2) @ W.T, rtol=1e-13)


def test_a_global_never_shadows_what_the_generated_code_needs():
    x = np.ones((2, 3))
    g = tl.grad(global_named_like_runtime)
    source = g.source_for(x)
    assert "_rt_1" in source, source
    np.testing.assert_allclose(g(x), ((1.0 - np.tanh(x @ W) ** 2) * _rt) @ W.T, rtol=1e-13)


def test_a_closure_variable_is_named_after_it():
    f = make_closure()
    x = np.ones((2, 3))
    source = tl.grad(f).source_for(x)
    assert re.search(r"\bV\b", source) and "_const" not in source, source
    np.testing.assert_allclose(tl.grad(f)(x), np.ones((2, 4)) * np.arange(4.0) @ W.T)


@optimized
def test_mlp_sensitivities_and_values_are_named_after_their_variables():
    args = w.mlp_data(8, 4)
    source = tl.grad(w.mlp, argnums=(0, 1, 2, 3)).source_for(*args)
    # `h = np.tanh(...)` keeps the user's name, not the tanh rule's `y`
    assert re.search(r"^    h = np\.tanh\(W1 @ X \+ b1\)$", source, re.M), source
    args = w.gmm_data(10, 3, 4)
    source = tl.grad(w.gmm_objective, argnums=(0, 1, 2, 3)).source_for(*args)
    for name in ("d_mu", "d_Qx", "d_q", "d_l", "d_alpha", "qexp"):
        assert re.search(rf"^    {name} = ", source, re.M), (name, source)
    assert "return d_alpha, d_mu, d_q, d_l" in source, source


@optimized
def test_loop_state_and_its_sensitivity_keep_the_variables_name():
    h, wt = np.ones((2, 3)) * 0.1, np.eye(3) * 0.5
    source = tl.grad(rnn).source_for(h, wt)
    assert "h = _tanh(h @ w)" in source, source      # no `h_1 = h` copy before the loop
    assert "d_h = d_h * " in source, source           # the backward loop's state
    assert not re.search(r"\bd\d\b", source), source
    jsource = tl.jit(rnn).source_for(h, wt)
    assert "h_1" not in jsource and "h = _tanh(h @ w)" in jsource, jsource
    source = tl.grad(newton_sqrt).source_for(2.0)
    assert "d_x = 1.0" in source and "d0" not in source, source
    assert tl.grad(newton_sqrt)(2.0) == pytest.approx(0.5 / math.sqrt(2.0), rel=1e-12)


def test_a_reassigned_variable_keeps_its_name():
    source = tl.jit(reassigned).source_for(0.3)
    assert "y = np.sin(y) + x" in source and "y_1" not in source, source
    assert tl.jit(reassigned)(0.3) == reassigned(0.3)
    h = 1e-6
    fd = (reassigned(0.3 + h) - reassigned(0.3 - h)) / (2 * h)
    assert tl.grad(reassigned)(0.3) == pytest.approx(fd, rel=1e-8)


def test_names_are_unique_identifiers_and_not_builtins_used():
    import builtins
    import keyword

    args = w.lstm_data(2, 5)
    source = tl.grad(w.lstm_objective, argnums=(0, 1, 2)).source_for(*args)
    for name in _defs(source):
        name = name.split("=")[0].lstrip("*")
        if name:
            assert name.isidentifier() and not keyword.iskeyword(name), name
            assert name not in ("np", "math", "_rt") and not hasattr(builtins, name), name
