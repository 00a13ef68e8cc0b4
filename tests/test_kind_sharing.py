"""Kinds shared between assumption sets (`opt.kinds.kind`): a kind inferred under one
set is reused under another that holds the same at each assumption it looked up. The
generated code must be what inferring each kind afresh under each set makes, and fewer
kinds are inferred."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl
from tapeless.opt import driver, kinds
from tests import golden_programs as gp


def _landing(v, a):
    x, y, vx, vy = 0.0, 0.0, v * np.cos(a), v * np.sin(a)
    while y >= 0.0:
        x, y = x + 0.05 * vx, y + 0.05 * vy
        vx, vy = vx * 0.99, vy - 0.5
    return x


def aimed_closure(v, target):
    """A `while` loop in a lambda differentiated inside a `for` loop (a closure over v
    and target): each induction step over the outer loop's state asks again for the
    kinds of the lambda's body, most of which do not depend on that state."""
    angle = 0.6
    for _ in range(3):
        slope = tl.grad(lambda a: (_landing(v, a) - target) ** 2)(angle)
        angle = angle - 0.002 * slope
    return _landing(v, angle) + 0.01 * v * v


def nested_loops(w, xs):
    """Loops inside loops over arrays, with a list that starts empty and a tuple state."""
    h = np.zeros(3)
    acc = []
    pair = (0.0, h)
    for t in range(xs.shape[0]):
        for _ in range(2):
            h = np.tanh(w @ h + xs[t])
        acc.append(h)
        pair = (pair[0] + np.sum(h), pair[1] * 0.5 + h)
    return np.sum(np.stack(acc)) + pair[0] + np.sum(pair[1])


def called_in_loop(a, b):
    """A helper called with new argument kinds each step of a loop (a float that becomes
    a NumPy scalar)."""
    s = 0.0
    for i in range(4):
        s = gp.branchy(s + a, b) + np.float64(i)
    return s


W = np.linspace(-0.5, 0.5, 9).reshape(3, 3)
XS = np.linspace(0.0, 1.0, 12).reshape(4, 3)

CASES = [
    pytest.param(lambda: tl.grad(aimed_closure, argnums=(0, 1)), (3.0, 2.0), id="aimed_closure"),
    pytest.param(lambda: tl.grad(nested_loops), (W, XS), id="nested_loops"),
    pytest.param(lambda: tl.jit(nested_loops), (W, XS), id="nested_loops/jit"),
    pytest.param(lambda: tl.grad(called_in_loop, argnums=(0, 1)), (1.5, 0.5),
                 id="called_in_loop"),
    pytest.param(lambda: tl.grad(gp.mlp, argnums=(0, 1, 2, 3)), gp.small_mlp_args(), id="mlp"),
    pytest.param(lambda: tl.grad(gp.scalar_loop), (0.3,), id="scalar_loop"),
    pytest.param(lambda: tl.grad(gp.newton_sqrt), (3.0,), id="newton_sqrt"),
    pytest.param(lambda: tl.grad(tl.grad(gp.branchy)), (1.5, 0.5), id="branchy''"),
    pytest.param(lambda: tl.grad(gp.recursive_halves), (np.arange(1.0, 9.0),),
                 id="recursive_halves"),
]


def _compile(make, args, share: bool, monkeypatch) -> tuple[str, int]:
    """The generated source and the number of kinds inferred (memo misses)."""
    monkeypatch.setattr(kinds, "SHARE_KINDS", share)
    inferred = [0]
    infer = kinds._kind

    def counted(node, facts, depth, assumed):
        if facts is not None:
            inferred[0] += 1
        return infer(node, facts, depth, assumed)

    monkeypatch.setattr(kinds, "_kind", counted)
    try:
        return make().source_for(*args), inferred[0]
    finally:
        monkeypatch.setattr(kinds, "_kind", infer)


@pytest.mark.parametrize("make, args", CASES)
def test_sharing_makes_the_same_program(make, args, monkeypatch):
    shared, _ = _compile(make, args, True, monkeypatch)
    afresh, _ = _compile(make, args, False, monkeypatch)
    assert shared == afresh


@pytest.mark.parametrize("make, args", CASES[:2])
def test_sharing_infers_fewer_kinds(make, args, monkeypatch):
    _, shared = _compile(make, args, True, monkeypatch)
    _, afresh = _compile(make, args, False, monkeypatch)
    assert shared < afresh


def test_gradients_with_sharing_are_right():
    """The programs above differentiated with sharing on, against central differences."""
    eps = 1e-6
    g = tl.grad(aimed_closure, argnums=(0, 1))(3.0, 2.0)
    for i in range(2):
        plus, minus = [3.0, 2.0], [3.0, 2.0]
        plus[i] += eps
        minus[i] -= eps
        fd = (aimed_closure(*plus) - aimed_closure(*minus)) / (2 * eps)
        assert g[i] == pytest.approx(fd, rel=1e-4, abs=1e-7)
    gw = tl.grad(nested_loops)(W, XS)
    fd_w = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        d = np.zeros_like(W)
        d[idx] = eps
        fd_w[idx] = (nested_loops(W + d, XS) - nested_loops(W - d, XS)) / (2 * eps)
    np.testing.assert_allclose(gw, fd_w, rtol=1e-5, atol=1e-8)


def _compile_carrying(make, args, carry: bool, monkeypatch) -> tuple[str, int]:
    """The generated source and the kinds inferred, with the facts a round leaves valid
    carried to the next round and the steps after the rounds (opt.driver.CARRY_FACTS)
    or made afresh."""
    monkeypatch.setattr(driver, "CARRY_FACTS", carry)
    try:
        return _compile(make, args, True, monkeypatch)
    finally:
        monkeypatch.setattr(driver, "CARRY_FACTS", True)


@pytest.mark.parametrize("make, args", CASES)
def test_carried_facts_make_the_same_program(make, args, monkeypatch):
    carried, _ = _compile_carrying(make, args, True, monkeypatch)
    afresh, _ = _compile_carrying(make, args, False, monkeypatch)
    assert carried == afresh


def test_carried_facts_infer_fewer_kinds(monkeypatch):
    make, args = CASES[1].values  # (nested loops: rounds of loop-state steps)
    _, carried = _compile_carrying(make, args, True, monkeypatch)
    _, afresh = _compile_carrying(make, args, False, monkeypatch)
    assert carried < afresh


def test_loop_body_kinds_serve_questions_without_assumptions(monkeypatch):
    """Without assumptions, a loop body's node takes the kind the induction's last step
    gave it (the slots hold their proved kinds): fewer kinds inferred than where only
    kinds that looked up no assumption are shared with such questions."""
    make, args = CASES[1].values
    _, shared = _compile(make, args, True, monkeypatch)
    agrees = kinds._agrees

    def strict(deps, assumed, facts):
        if not assumed:
            return all(v is kinds._MISSING for v in deps.values())
        return agrees(deps, assumed, facts)

    monkeypatch.setattr(kinds, "_agrees", strict)
    source_strict, strict_count = _compile(make, args, True, monkeypatch)
    monkeypatch.setattr(kinds, "_agrees", agrees)
    source, _ = _compile(make, args, True, monkeypatch)
    assert source == source_strict
    assert shared < strict_count
