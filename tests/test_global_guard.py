"""Globals and closure cells rebound after compiling: compiled code (a fresh transform
or one already called) computes with their current values, as CPython does, through
called functions, nested transforms and `tl.grad` inside compiled code; a rebinding
recompiles once, not on every call afterwards. In-place changes of a global NumPy
array are seen as in CPython (the array is read when the code runs)."""

from __future__ import annotations

import math
import types

import numpy as np
import numpy as npx  # rebound by a test: only `uses_module` reads it
import pytest

import tapeless as tl

LR = 0.1
SCALE = 3.0
W = np.array([1.0, 2.0, 3.0])


def step(w):
    return w - LR * w


def loss(w):
    return LR * w * w


def helper(w):
    return LR * w


def through_helper(w):
    return w - helper(w)


def other_helper(w):
    return SCALE * w


def twice(fn, w):
    return fn(fn(w))


def helper_as_value(w):
    return twice(helper, w)


def apply_fn(fn, w):
    return fn(w) * w


def nested_def(w):
    def inner(v):
        return v * LR
    return inner(w) + w


def grad_inside(w):
    return tl.grad(loss)(w) * w


GRAD_LOSS = tl.grad(loss)


def uses_global_grad(w):
    return GRAD_LOSS(w) * w


def uses_module(x):
    return npx.tanh(x) * SCALE


def uses_builtin(x):
    return abs(x) * SCALE


def doubled(x):
    return 2.0 * x


CFG = types.ModuleType("cfg")
CFG.LR = 0.1


def uses_module_attribute(w):
    return w - CFG.LR * w


class Consts:
    SCALE = 3.0

    @staticmethod
    def scale(w):
        return Consts.SCALE * w


def uses_class(w):
    return Consts.scale(w) + Consts.SCALE


def uses_array(x):
    return np.sum(W * 2.0 * x) + np.sum(W / 2.0) * x


def uses_array_length(x):
    return x * len(W)


def make(lr):
    def closure_step(w):
        return w - lr * w

    def set_lr(value):
        nonlocal lr
        lr = value

    return closure_step, set_lr


@pytest.fixture(params=["optimized", "unoptimized"])
def opt(request, monkeypatch):
    """Each test runs with the optimizer on (default) and off; transforms are made
    inside the tests, so each level gets fresh ones."""
    if request.param == "unoptimized":
        monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    else:
        monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    return request.param


def rebind(monkeypatch, name, value):
    monkeypatch.setitem(globals(), name, value)


def test_fresh_jit_and_existing_jit_see_a_rebound_global(opt, monkeypatch):
    assert tl.jit(step)(1.0) == step(1.0) == 0.9
    rebind(monkeypatch, "LR", 0.5)
    assert tl.jit(step)(1.0) == step(1.0) == 0.5
    f = tl.jit(step)
    rebind(monkeypatch, "LR", 0.25)
    assert f(1.0) == step(1.0) == 0.75


def test_a_called_transform_recompiles_once(opt, monkeypatch):
    f = tl.jit(step)
    assert f(1.0) == 0.9
    assert f(2.0) == step(2.0)
    assert f.compile_count == 1
    rebind(monkeypatch, "LR", 0.5)
    for _ in range(5):
        assert f(1.0) == step(1.0) == 0.5
    assert f.compile_count == 2
    rebind(monkeypatch, "LR", 0.25)
    assert f(1.0) == 0.75
    assert f(1.0) == 0.75
    assert f.compile_count == 3


def test_rebinding_to_the_same_object_does_not_recompile(opt, monkeypatch):
    f = tl.jit(step)
    f(1.0)
    rebind(monkeypatch, "LR", LR)
    f(1.0)
    assert f.compile_count == 1


def test_grad_sees_a_rebound_coefficient(opt, monkeypatch):
    g = tl.grad(loss)
    vg = tl.value_and_grad(loss)
    assert g(3.0) == pytest.approx(2 * 0.1 * 3.0)
    assert vg(3.0) == pytest.approx((loss(3.0), 2 * 0.1 * 3.0))
    rebind(monkeypatch, "LR", 0.5)
    assert tl.grad(loss)(3.0) == pytest.approx(2 * 0.5 * 3.0)
    assert g(3.0) == pytest.approx(2 * 0.5 * 3.0)
    assert vg(3.0) == pytest.approx((loss(3.0), 2 * 0.5 * 3.0))
    assert g(3.0) == pytest.approx(3.0)
    assert g.compile_count == 2 and vg.compile_count == 2


def test_grad_of_grad_jit_of_grad_and_vjp(opt, monkeypatch):
    gg = tl.grad(tl.grad(loss))
    jg = tl.jit(tl.grad(loss))
    assert gg(3.0) == pytest.approx(0.2)
    assert jg(3.0) == pytest.approx(0.6)
    out, vjp_fn = tl.vjp(loss, 3.0)
    assert out == pytest.approx(0.9) and vjp_fn(1.0)[0] == pytest.approx(0.6)
    rebind(monkeypatch, "LR", 0.5)
    assert gg(3.0) == pytest.approx(1.0)
    assert jg(3.0) == pytest.approx(3.0)
    assert tl.grad(tl.grad(loss))(3.0) == pytest.approx(1.0)
    out, vjp_fn = tl.vjp(loss, 3.0)
    assert out == pytest.approx(loss(3.0)) and vjp_fn(1.0)[0] == pytest.approx(3.0)
    assert gg(3.0) == pytest.approx(1.0)
    assert gg.compile_count == 2 and jg.compile_count == 2


def test_global_read_by_a_called_function(opt, monkeypatch):
    f = tl.jit(through_helper)
    g = tl.grad(through_helper)
    assert f(2.0) == pytest.approx(through_helper(2.0))
    assert g(2.0) == pytest.approx(0.9)
    rebind(monkeypatch, "LR", 0.5)
    assert f(2.0) == pytest.approx(through_helper(2.0)) == pytest.approx(1.0)
    assert g(2.0) == pytest.approx(0.5)
    assert tl.jit(through_helper)(2.0) == pytest.approx(1.0)
    assert f.compile_count == 2


def test_rebinding_the_called_function(opt, monkeypatch):
    f = tl.jit(through_helper)
    g = tl.grad(through_helper)
    assert f(2.0) == pytest.approx(1.8)
    assert g(2.0) == pytest.approx(0.9)
    rebind(monkeypatch, "helper", other_helper)
    assert f(2.0) == pytest.approx(through_helper(2.0)) == pytest.approx(-4.0)
    assert g(2.0) == pytest.approx(-2.0)
    assert tl.jit(through_helper)(2.0) == pytest.approx(-4.0)


def test_function_passed_as_a_value_and_nested_def(opt, monkeypatch):
    f = tl.jit(helper_as_value)
    n = tl.jit(nested_def)
    gn = tl.grad(nested_def)
    assert f(2.0) == pytest.approx(helper_as_value(2.0))
    assert n(2.0) == pytest.approx(nested_def(2.0))
    assert gn(2.0) == pytest.approx(1.1)
    rebind(monkeypatch, "LR", 0.5)
    assert f(2.0) == pytest.approx(helper_as_value(2.0)) == pytest.approx(0.5)
    assert n(2.0) == pytest.approx(nested_def(2.0)) == pytest.approx(3.0)
    assert gn(2.0) == pytest.approx(1.5)


def test_function_argument_bound_by_a_gradient(opt, monkeypatch):
    g = tl.grad(apply_fn, argnums=1)
    assert g(helper, 2.0) == pytest.approx(2 * 0.1 * 2.0)
    rebind(monkeypatch, "LR", 0.5)
    assert g(helper, 2.0) == pytest.approx(2 * 0.5 * 2.0)


def test_grad_inside_compiled_code(opt, monkeypatch):
    f = tl.jit(grad_inside)
    g = tl.grad(grad_inside)
    assert f(3.0) == pytest.approx(grad_inside(3.0)) == pytest.approx(1.8)
    assert g(3.0) == pytest.approx(4 * 0.1 * 3.0)
    rebind(monkeypatch, "LR", 0.5)
    assert f(3.0) == pytest.approx(grad_inside(3.0)) == pytest.approx(9.0)
    assert g(3.0) == pytest.approx(4 * 0.5 * 3.0)


def test_global_gradient_called_in_compiled_code(opt, monkeypatch):
    f = tl.jit(uses_global_grad)
    g = tl.grad(uses_global_grad)
    assert f(3.0) == pytest.approx(uses_global_grad(3.0)) == pytest.approx(1.8)
    assert g(3.0) == pytest.approx(1.2)
    rebind(monkeypatch, "LR", 0.5)
    assert GRAD_LOSS(3.0) == pytest.approx(3.0)
    assert f(3.0) == pytest.approx(uses_global_grad(3.0)) == pytest.approx(9.0)
    assert g(3.0) == pytest.approx(6.0)
    # Rebinding the global transform itself.
    rebind(monkeypatch, "GRAD_LOSS", tl.jit(other_helper))
    assert f(3.0) == pytest.approx(uses_global_grad(3.0)) == pytest.approx(27.0)
    assert g(3.0) == pytest.approx(18.0)


def test_closure_cell_rebound_with_nonlocal(opt):
    closure_step, set_lr = make(0.1)
    f = tl.jit(closure_step)
    g = tl.grad(closure_step)
    assert f(1.0) == closure_step(1.0) == 0.9
    assert g(1.0) == pytest.approx(0.9)
    set_lr(0.5)
    assert f(1.0) == closure_step(1.0) == 0.5
    assert g(1.0) == pytest.approx(0.5)
    assert tl.jit(closure_step)(1.0) == 0.5
    assert f.compile_count == 2
    # Each call of `make` makes a new function: its own code, its own value.
    other, _ = make(0.25)
    assert tl.jit(other)(1.0) == 0.75
    assert f(1.0) == 0.5


def test_rebound_module(opt, monkeypatch):
    f = tl.jit(uses_module)
    g = tl.grad(uses_module)
    assert f(0.5) == pytest.approx(uses_module(0.5))
    fake = types.ModuleType("fake_numpy")
    fake.tanh = np.sin
    rebind(monkeypatch, "npx", fake)
    assert f(0.5) == pytest.approx(uses_module(0.5)) == pytest.approx(3 * math.sin(0.5))
    assert g(0.5) == pytest.approx(3 * math.cos(0.5))


def test_global_shadowing_a_builtin(opt, monkeypatch):
    f = tl.jit(uses_builtin)
    assert f(-1.0) == uses_builtin(-1.0) == 3.0
    rebind(monkeypatch, "abs", doubled)
    assert f(-1.0) == uses_builtin(-1.0) == -6.0
    monkeypatch.delitem(globals(), "abs")
    assert f(-1.0) == uses_builtin(-1.0) == 3.0


def test_module_attribute(opt, monkeypatch):
    f = tl.jit(uses_module_attribute)
    g = tl.grad(uses_module_attribute)
    assert f(1.0) == 0.9 and g(1.0) == pytest.approx(0.9)
    monkeypatch.setattr(CFG, "LR", 0.5)
    assert f(1.0) == uses_module_attribute(1.0) == 0.5
    assert g(1.0) == pytest.approx(0.5)


def test_class_attribute(opt, monkeypatch):
    f = tl.jit(uses_class)
    g = tl.grad(uses_class)
    assert f(2.0) == uses_class(2.0) == 9.0
    assert g(2.0) == 3.0
    f(2.0)
    assert f.compile_count == 1
    monkeypatch.setattr(Consts, "SCALE", 0.5)
    assert f(2.0) == uses_class(2.0) == 1.5
    assert g(2.0) == 0.5
    f(2.0)
    assert f.compile_count == 2


def test_deleted_global(opt, monkeypatch):
    f = tl.jit(step)
    assert f(1.0) == 0.9
    monkeypatch.delitem(globals(), "LR")
    with pytest.raises(tl.TapelessError, match="name 'LR' is not defined"):
        f(1.0)
    with pytest.raises(tl.TapelessError, match="name 'LR' is not defined"):
        tl.grad(loss)(1.0)
    monkeypatch.setitem(globals(), "LR", 0.5)
    assert f(1.0) == 0.5


def test_global_array_changed_in_place(opt, monkeypatch):
    """A global array is read when the code runs, not folded at compile time: changing
    its values in place is seen, as in CPython."""
    monkeypatch.setitem(globals(), "W", np.array([1.0, 2.0, 3.0]))
    f = tl.jit(uses_array)
    g = tl.grad(uses_array)
    assert f(2.0) == pytest.approx(uses_array(2.0))
    assert g(2.0) == pytest.approx(2 * 6.0 + 3.0)
    W[:] = [5.0, -1.0, 7.0]
    assert f(2.0) == pytest.approx(uses_array(2.0))
    assert g(2.0) == pytest.approx(2 * 11.0 + 5.5)
    assert f.compile_count == 1
    # A new array (another length) bound to the name: compiled again.
    n = tl.jit(uses_array_length)
    assert n(2.0) == 6.0
    rebind(monkeypatch, "W", np.ones(5))
    assert f(2.0) == pytest.approx(uses_array(2.0))
    assert n(2.0) == uses_array_length(2.0) == 10.0


def test_a_guard_is_cheap_to_hold(opt, monkeypatch):
    """Calls after a rebinding run the new code without compiling again, for every
    argument signature seen since."""
    f = tl.jit(step)
    f(1.0)
    f(np.ones(3))
    assert f.compile_count == 2
    rebind(monkeypatch, "LR", 0.5)
    assert f(np.ones(3)) == pytest.approx(np.full(3, 0.5))
    assert f(1.0) == 0.5
    for _ in range(3):
        f(1.0)
        f(np.ones(3))
    assert f.compile_count == 4


def test_ir_and_source_see_the_current_value(monkeypatch):
    f = tl.jit(step)
    f(1.0)
    rebind(monkeypatch, "LR", 0.5)
    assert "0.5" in tl.ir(step)
    assert "0.5" in f.source


# --- functions with derivative rules (tl.checkpoint, tl.custom_jvp, tl.custom_vjp) -------
# Their graphs were built once and kept: a global read by the function or by a rule,
# rebound, left compiled code computing with the old value, without an error.


def scaled(x):
    return LR * x


checkpointed_scaled = tl.checkpoint(scaled)


@tl.custom_jvp
def jvp_scaled(x):
    return LR * x


@jvp_scaled.defjvp
def jvp_scaled_rule(primals, tangents):
    return jvp_scaled(primals[0]), SCALE * tangents[0]


@tl.custom_vjp
def vjp_scaled(x):
    return LR * x


def vjp_scaled_fwd(x):
    return vjp_scaled(x), None


def vjp_scaled_bwd(res, g):
    return (SCALE * g,)


vjp_scaled.defvjp(vjp_scaled_fwd, vjp_scaled_bwd)


def calls_checkpointed(x):
    return checkpointed_scaled(x) + 1.0


def calls_jvp_scaled(x):
    return jvp_scaled(x) + 1.0


def calls_vjp_scaled(x):
    return vjp_scaled(x) + 1.0


def test_a_checkpointed_function_sees_a_rebound_global(opt, monkeypatch):
    f, g = tl.jit(calls_checkpointed), tl.grad(calls_checkpointed)
    assert f(2.0) == pytest.approx(1.2) and g(2.0) == pytest.approx(0.1)
    rebind(monkeypatch, "LR", 0.5)
    assert f(2.0) == pytest.approx(2.0) and g(2.0) == pytest.approx(0.5)
    assert tl.jit(calls_checkpointed)(2.0) == pytest.approx(2.0)
    assert tl.grad(checkpointed_scaled)(2.0) == pytest.approx(0.5)


def test_a_custom_function_and_its_rules_see_rebound_globals(opt, monkeypatch):
    jf, jg = tl.jit(calls_jvp_scaled), tl.grad(calls_jvp_scaled)
    vf, vg = tl.jit(calls_vjp_scaled), tl.grad(calls_vjp_scaled)
    assert jf(2.0) == vf(2.0) == pytest.approx(1.2)
    assert jg(2.0) == vg(2.0) == pytest.approx(3.0)
    rebind(monkeypatch, "LR", 0.5)  # read by the functions
    assert jf(2.0) == vf(2.0) == pytest.approx(2.0)
    rebind(monkeypatch, "SCALE", 4.0)  # read by the rules only
    assert jg(2.0) == vg(2.0) == pytest.approx(4.0)
    assert tl.jvp(calls_jvp_scaled, (2.0,), (1.0,))[1] == pytest.approx(4.0)
    assert tl.jvp(calls_vjp_scaled, (2.0,), (1.0,))[1] == pytest.approx(4.0)
