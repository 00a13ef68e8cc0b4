"""`tl.checkpoint` of a function that reaches itself: a recursion that checkpoints its
top levels (less memory, the subtrees run again in the backward pass). The checkpoint's
rule reads the function's body, which is half built while the function is compiled
through the recursion: it used to see no nodes at all, and the gradient raised an
internal error ("used before it was transformed")."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import elementwise_fd
from peak_memory import peak_bytes
from research_programs import det_laplace as plain_det

import tapeless as tl


def minor(A, row, cols):
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    sign = 1.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        total = total + sign * A[row, cols[k]] * minor_top_checkpointed(A, row + 1, rest)
        sign = -sign
    return total


def minor_top_checkpointed(A, row, cols):
    if row < 2:
        return checkpointed_minor(A, row, cols)
    return minor(A, row, cols)


checkpointed_minor = tl.checkpoint(minor)


def det(A):
    return minor(A, 0, list(range(A.shape[0])))


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_checkpointed_recursion_gives_the_plain_gradient(n: int) -> None:
    A = np.random.default_rng(n).normal(size=(n, n))
    g = tl.grad(det)(A)
    # d det / dA = det(A) A^{-T}
    np.testing.assert_allclose(g, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g, tl.grad(plain_det)(A), rtol=1e-12, atol=1e-14)


def test_checkpointed_recursion_saves_less(monkeypatch) -> None:
    from tapeless.opt import driver, lift, unwind

    # (the records the plain recursion keeps where its backward pass is not fused into
    # its forward one, `unwind._fuse_all`)
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)
    A = np.random.default_rng(0).normal(size=(7, 7))
    checkpointed = tl.grad(det)
    # (against the plain recursion's records as the checkpointed one keeps them: its
    # mutual recursion is not lifted, so neither made leaner nor summed into one buffer)
    monkeypatch.setattr(lift, "lean_records", lambda root, pairs: 0)
    monkeypatch.setattr(driver, "accumulate_down", lambda root: 0)
    plain = tl.grad(plain_det)
    checkpointed(A), plain(A)
    assert peak_bytes(lambda: checkpointed(A)) < 0.7 * peak_bytes(lambda: plain(A))


def test_second_order_through_a_checkpointed_recursion() -> None:
    A = np.random.default_rng(5).normal(size=(4, 4))
    V = np.random.default_rng(6).normal(size=(4, 4))
    hvp = tl.grad(lambda M: np.sum(tl.grad(det)(M) * V))(A)
    np.testing.assert_allclose(hvp, tl.grad(lambda M: np.sum(tl.grad(plain_det)(M) * V))(A),
                               rtol=1e-10, atol=1e-12)


def scaled_sum(x, i):
    if i == x.shape[0]:
        return 0.0
    return np.sin(x[i]) * x[i] + checkpointed_rest(x, i + 1)


checkpointed_rest = tl.checkpoint(scaled_sum)


def test_a_function_checkpointing_each_of_its_recursive_calls() -> None:
    x = np.random.default_rng(1).normal(size=9)
    g = tl.grad(lambda v: scaled_sum(v, 0))(x)
    np.testing.assert_allclose(g, np.cos(x) * x + np.sin(x), rtol=1e-12)
    fd = elementwise_fd(lambda v: scaled_sum(v, 0), x)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def noisy_rest(x, i):
    if i == x.shape[0]:
        return 0.0
    print("step", i)
    return x[i] * checkpointed_noisy(x, i + 1)


checkpointed_noisy = tl.checkpoint(noisy_rest)


def test_effects_in_a_checkpointed_recursion_are_refused_every_time() -> None:
    # (The refusal comes once the recursion is compiled; a second try refuses again
    # rather than finding a rule-less graph.)
    for _ in range(2):
        with pytest.raises(tl.CompileError, match="print, which the backward pass would run"):
            tl.grad(lambda v: noisy_rest(v, 0))(np.ones(3))


def test_the_module_has_no_leftover_finishing_steps() -> None:
    from tapeless.frontend.parser import RESOLVER

    assert RESOLVER.building == 0 and not RESOLVER.finishing and not RESOLVER.started


LEVELS = 1


def halving(x, i):
    if i == 0:
        return x
    return halving_top(x, i - 1) * 2.0


def halving_top(x, i):
    if i < LEVELS:
        return checkpointed_halving(x, i) * 3.0
    return halving(x, i)


checkpointed_halving = tl.checkpoint(halving)


def test_a_rebound_global_reaches_a_checkpointed_recursion(monkeypatch) -> None:
    g = tl.grad(lambda x: halving_top(x, 3))
    for levels in (0, 1, 2, 3):
        monkeypatch.setitem(globals(), "LEVELS", levels)
        expected = 8.0 * 3.0 ** levels
        assert halving_top(1.0, 3) == expected
        assert g(1.0) == expected
        assert tl.jit(lambda x: halving_top(x, 3))(1.0) == expected
