"""`tl.custom_jvp` and `tl.custom_vjp`: a rule written once gives correct derivatives in
both modes and at every order (forward mode transposes a custom_vjp's backward function,
reverse mode a custom_jvp's tangent map, higher orders differentiate the rules)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import tapeless as tl


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


@tl.custom_jvp
def softplus(x):
    return np.log1p(np.exp(x))


@softplus.defjvp
def softplus_jvp(primals, tangents):
    (x,) = primals
    (t,) = tangents
    return softplus(x), t * _expit(x)


@tl.custom_vjp
def safe_sqrt(x):
    return np.sqrt(x)


def safe_sqrt_fwd(x):
    y = np.sqrt(x)
    return y, y


def safe_sqrt_bwd(y, g):
    # 0 at 0, where the true slope is infinite (the rule's choice, kept in every mode)
    positive = y > 0
    return (np.where(positive, g / (2.0 * np.where(positive, y, 1.0)), 0.0),)


safe_sqrt.defvjp(safe_sqrt_fwd, safe_sqrt_bwd)


def _sp(x):
    return np.log1p(np.exp(x))


def _d1(x):
    return 1.0 / (1.0 + np.exp(-x))


def _d2(x):
    s = _d1(x)
    return s * (1.0 - s)


def _d3(x):
    s = _d1(x)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


@pytest.mark.parametrize("x", [-3.0, 0.0, 2.0])
def test_custom_jvp_in_every_mode_and_order(x: float, optimize: str) -> None:
    assert softplus(x) == pytest.approx(_sp(x))  # (Python: the function itself)
    assert tl.jit(softplus)(x) == pytest.approx(_sp(x))
    assert tl.jvp(softplus, (x,), (1.0,)) == pytest.approx((_sp(x), _d1(x)), rel=1e-12)
    assert tl.grad(softplus)(x) == pytest.approx(_d1(x), rel=1e-12)  # transposed
    assert tl.hessian(softplus)(x) == pytest.approx(_d2(x), rel=1e-12)
    assert tl.grad(tl.grad(softplus))(x) == pytest.approx(_d2(x), rel=1e-12)
    assert tl.jvp(lambda y: tl.jvp(softplus, (y,), (1.0,))[1], (x,), (1.0,))[1] == \
        pytest.approx(_d2(x), rel=1e-12)
    assert tl.grad(tl.grad(tl.grad(softplus)))(x) == pytest.approx(_d3(x), rel=1e-9)


def test_custom_jvp_rule_is_used_where_the_naive_derivative_overflows(optimize: str) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        naive = tl.grad(_sp)(1000.0)
        assert not math.isfinite(naive)
        assert tl.grad(softplus)(1000.0) == 1.0
        assert tl.jvp(softplus, (1000.0,), (2.0,))[1] == 2.0
        assert tl.hessian(softplus)(1000.0) == 0.0


@pytest.mark.parametrize("x", [0.0, 0.25, 4.0])
def test_custom_vjp_in_every_mode_and_order(x: float, optimize: str) -> None:
    d1 = 0.0 if x == 0 else 0.5 / math.sqrt(x)
    d2 = 0.0 if x == 0 else -0.25 * x ** -1.5
    with np.errstate(divide="ignore", invalid="ignore"):
        assert tl.grad(safe_sqrt)(x) == pytest.approx(d1, rel=1e-12)
        assert tl.jvp(safe_sqrt, (x,), (1.0,))[1] == pytest.approx(d1, rel=1e-12)  # transposed
        if x == 0:
            return  # (the second derivative differentiates the rule's sqrt at 0: inf * 0)
        assert tl.hessian(safe_sqrt)(x) == pytest.approx(d2, rel=1e-12)
        assert tl.grad(tl.grad(safe_sqrt))(x) == pytest.approx(d2, rel=1e-12)
        assert tl.grad(lambda y: tl.jvp(safe_sqrt, (y,), (1.0,))[1])(x) == \
            pytest.approx(d2, rel=1e-12)


def model(w, xs, act):
    h = xs
    for _ in range(2):
        h = act(h @ w)
    return np.sum(h)


def test_custom_functions_inside_programs_loops_and_as_values(optimize: str) -> None:
    rng = np.random.default_rng(0)
    w, xs = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(4, 3))
    g = tl.grad(model)(w, xs, softplus)
    expected = tl.grad(model)(w, xs, _sp)
    np.testing.assert_allclose(g, expected, rtol=1e-10)
    v = rng.normal(size=(3, 3))
    hv = tl.jvp(tl.grad(model), (w, xs, softplus), (v, np.zeros_like(xs), 0.0))[1]
    hv_expected = tl.jvp(tl.grad(model), (w, xs, _sp), (v, np.zeros_like(xs), 0.0))[1]
    np.testing.assert_allclose(hv, hv_expected, rtol=1e-9)


@tl.custom_vjp
def clip_gradient(lo, hi, x):
    return x


def clip_gradient_fwd(lo, hi, x):
    return x, None


def clip_gradient_bwd(lo, hi, res, g):
    return (np.clip(g, lo, hi),)


clip_gradient.defvjp(clip_gradient_fwd, clip_gradient_bwd)
clip_gradient.nondiff_argnums = (0, 1)


@tl.custom_jvp
def scaled_tanh(scale, x):
    return np.tanh(x) * scale


@scaled_tanh.defjvp
def scaled_tanh_jvp(scale, primals, tangents):
    (x,) = primals
    (t,) = tangents
    y = np.tanh(x)
    return y * scale, t * (1.0 - y * y) * scale


scaled_tanh.nondiff_argnums = (0,)


def test_nondiff_argnums(optimize: str) -> None:
    x = np.array([0.5, -2.0, 3.0])
    g = tl.grad(lambda v: np.sum(clip_gradient(-1.0, 1.0, v) * 3.0))(x)
    np.testing.assert_array_equal(g, np.ones(3))
    # forward mode of the custom_vjp: the transpose of the clipped backward (linear in g)
    _, t = tl.jvp(lambda v: clip_gradient(-1.0, 1.0, v), (x,), (np.array([0.5, 2.0, -3.0]),))
    np.testing.assert_array_equal(t, np.array([0.5, 2.0, -3.0]))
    assert tl.grad(lambda v: scaled_tanh(2.0, v))(0.3) == pytest.approx(
        2.0 * (1 - math.tanh(0.3) ** 2))
    assert tl.hessian(lambda v: scaled_tanh(2.0, v))(0.3) == pytest.approx(
        2.0 * -2 * math.tanh(0.3) * (1 - math.tanh(0.3) ** 2))


@tl.custom_jvp
def no_rule(x):
    return x


def test_a_custom_function_without_its_rule_is_refused() -> None:
    with pytest.raises(tl.CompileError, match="call no_rule.defjvp"):
        tl.grad(no_rule)(1.0)


# --- tl.checkpoint ---------------------------------------------------------------------


@tl.checkpoint
def block(w, h):
    for _ in range(3):
        h = np.tanh(h @ w)
    return h


def checkpointed_loss(w, x):
    return np.sum(block(w, block(w, x)) ** 2)


def plain_loss(w, x):
    h = x
    for _ in range(6):
        h = np.tanh(h @ w)
    return np.sum(h ** 2)


def test_checkpoint_gives_the_same_derivatives_in_every_mode(optimize: str) -> None:
    rng = np.random.default_rng(3)
    w, x, v = rng.normal(size=(4, 4)) * 0.5, rng.normal(size=(3, 4)), rng.normal(size=(4, 4))
    np.testing.assert_allclose(tl.grad(checkpointed_loss)(w, x), tl.grad(plain_loss)(w, x),
                               rtol=1e-12)
    np.testing.assert_allclose(tl.jvp(tl.grad(checkpointed_loss), (w, x), (v, 0 * x))[1],
                               tl.jvp(tl.grad(plain_loss), (w, x), (v, 0 * x))[1], rtol=1e-10)
    np.testing.assert_allclose(
        tl.grad(lambda u: np.sum(tl.grad(checkpointed_loss)(u, x) * v))(w),
        tl.grad(lambda u: np.sum(tl.grad(plain_loss)(u, x) * v))(w), rtol=1e-10)
    assert tl.jvp(checkpointed_loss, (w, x), (v, 0 * x))[1] == pytest.approx(
        tl.jvp(plain_loss, (w, x), (v, 0 * x))[1], rel=1e-12)


def test_checkpoint_recomputes_instead_of_saving() -> None:
    rng = np.random.default_rng(4)
    w, x = rng.normal(size=(4, 4)) * 0.5, rng.normal(size=(3, 4))
    source = tl.grad(checkpointed_loss).source_for(w, x)
    head = source.split("\ndef ")[0]
    # The forward pass runs the blocks as plain loops, saving nothing; the backward pass
    # runs their derivative again.
    assert "stack" not in head and "J_block(" in head


@tl.checkpoint
def noisy(x):
    print("side effect")
    return x * 2.0


def test_checkpoint_refuses_effects() -> None:
    with pytest.raises(tl.CompileError, match="print, which the backward pass would run"):
        tl.grad(noisy)(1.0)


def test_checkpoint_policies() -> None:
    with pytest.raises(tl.CompileError, match="unknown policy"):
        tl.checkpoint(plain_loss, policy="dots")
    saved = tl.checkpoint(plain_loss, policy="everything")
    x = np.ones((2, 4))
    w = np.eye(4) * 0.3
    np.testing.assert_allclose(tl.grad(saved)(w, x), tl.grad(plain_loss)(w, x), rtol=1e-12)


def test_linearize() -> None:
    x = np.array([0.3, -0.2])
    out, f_jvp = tl.linearize(lambda v: np.sin(v) * v, x)
    np.testing.assert_allclose(out, np.sin(x) * x)
    for t in (np.array([1.0, 0.0]), np.array([0.5, 2.0])):
        np.testing.assert_allclose(f_jvp(t), (np.cos(x) * x + np.sin(x)) * t, rtol=1e-12)


def two_layers(w, h):
    a = np.tanh(h @ w)
    a = tl.checkpoint_name(a, "a")
    return np.sin(a @ w)


POLICIES = {
    "default": None,
    "nothing": tl.checkpoint_policies.nothing_saveable,
    "dots": tl.checkpoint_policies.dots_saveable,
    "names": tl.checkpoint_policies.save_only_these_names("a"),
    "other names": tl.checkpoint_policies.save_only_these_names("b"),
    "everything": tl.checkpoint_policies.everything_saveable,
}


def _loss_with(policy: Any) -> Any:
    layers = tl.checkpoint(two_layers, policy=policy)

    def loss(w, x):
        return np.sum(layers(w, layers(w, x)) ** 2)

    return loss


def plain_two(w, x):
    return np.sum(two_layers(w, two_layers(w, x)) ** 2)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_gives_the_same_derivatives(policy: str, optimize: str) -> None:
    loss = _loss_with(POLICIES[policy])
    rng = np.random.default_rng(5)
    w, x, v = rng.normal(size=(4, 4)) * 0.5, rng.normal(size=(3, 4)), rng.normal(size=(4, 4))
    g = tl.grad(loss)(w, x)
    np.testing.assert_allclose(g, tl.grad(plain_two)(w, x), rtol=1e-12)
    h = 1e-6
    fd = (plain_two(w + h * v, x) - plain_two(w - h * v, x)) / (2 * h)
    assert np.sum(g * v) == pytest.approx(fd, rel=1e-6)
    # second order: forward over reverse and reverse over reverse
    np.testing.assert_allclose(tl.jvp(tl.grad(loss), (w, x), (v, 0 * x))[1],
                               tl.jvp(tl.grad(plain_two), (w, x), (v, 0 * x))[1], rtol=1e-10)
    np.testing.assert_allclose(
        tl.grad(lambda u: np.sum(tl.grad(loss)(u, x) * v))(w),
        tl.grad(lambda u: np.sum(tl.grad(plain_two)(u, x) * v))(w), rtol=1e-10)


def test_a_policy_changes_what_is_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    w, x = rng.normal(size=(4, 4)) * 0.5, rng.normal(size=(3, 4))
    # (The optimizer off: the derivative program's functions keep their names.)
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")

    def source(policy: str) -> str:
        return tl.grad(_loss_with(POLICIES[policy])).source_for(w, x)

    nothing, dots, names = source("nothing"), source("dots"), source("names")
    # Saving nothing, the backward pass runs J of the whole block again; saving the
    # products, it runs J of a copy that reads them (each through the product's rule,
    # `saved_matmul`); saving "a", J of a copy that reads a.
    assert "saved_" not in nothing and "J_two_layers(" in nothing
    assert "J_saved_matmul" in dots and "J_saved_checkpoint_name" not in dots
    assert "J_saved_checkpoint_name" in names and "J_saved_matmul" not in names
    assert "saved_" not in source("other names")


def _checkpointed_inside(x):
    return tl.checkpoint(np.sin)(x) * 2.0


def test_decorating_inside_compiled_code_is_refused_at_the_call():
    # (It crashed with a TypeError from the class itself taken for a decorated function.)
    with pytest.raises(tl.CompileError, match=r"tl\.checkpoint\(\.\.\.\) inside compiled") as e:
        tl.grad(_checkpointed_inside)(0.5)
    assert "test_custom.py" in str(e.value) and "@tl.checkpoint" in str(e.value)


@tl.custom_jvp
def halved_slope(x):
    return x


@halved_slope.defjvp
def halved_slope_jvp(primals, tangents):
    return halved_slope(primals[0]), 0.5 * tangents[0]


def calls_halved_slope(x):
    return halved_slope(x) * 2.0 + LATER_OFFSET  # noqa: F821 (defined by the test)


def test_a_rule_survives_a_failed_compile_of_its_caller(monkeypatch) -> None:
    # (The rule is made once the parse around it finishes; a parse that failed first left
    # the function's graph without its rule, and the body was differentiated: slope 1,
    # silently.)
    with pytest.raises(tl.CompileError, match="LATER_OFFSET"):
        tl.grad(calls_halved_slope)(1.0)
    monkeypatch.setitem(globals(), "LATER_OFFSET", 0.0)
    assert tl.grad(calls_halved_slope)(1.0) == 1.0
    assert tl.grad(lambda x: halved_slope(x) * 2.0)(1.0) == 1.0
