"""Checkpointed loops (`tapeless.opt.checkpoint`, `runtime.checkpoint_for`): a gradient's
`for` loop that would save more than `tl.config.loop_memory` bytes saves a starting
state instead and makes the values again by bisection. The gradients must be exactly those
of the loop that saves everything; the memory must grow like log(n), not n."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from peak_memory import peak_bytes

import tapeless as tl


@pytest.fixture
def loops() -> Iterator[None]:
    """Restore the loop settings after a test."""
    mode, memory = tl.config.loop_checkpoint, tl.config.loop_memory
    yield
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory


def _with(mode: str, memory: int = 1 << 30) -> None:
    tl.config.loop_checkpoint = mode
    tl.config.loop_memory = memory


def rk4(A, y0, n):
    h = 0.01
    y = y0
    for _ in range(n):
        k1 = A @ y
        k2 = A @ (y + 0.5 * h * k1)
        k3 = A @ (y + 0.5 * h * k2)
        k4 = A @ (y + h * k3)
        y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return np.sum(y * y)


def strided(w, x, n):
    """A loop with a step, a negative one, state of several kinds and an int counter."""
    s = 0.0
    count = 0
    for i in range(n, 0, -2):
        x = np.tanh(w * x + 0.1 * i)
        s = s + np.sum(x) * 0.5
        count = count + 1
    for _ in range(1, n, 3):
        x = np.sin(x) * w
    return s + np.sum(x * x) + count


def nested(w, x, n):
    """An outer loop around an inner one, both reading an argument (the environment's
    sensitivity is gathered across segments)."""
    for _ in range(n):
        for _ in range(3):
            x = np.tanh(w @ x)
        x = x + 0.5 * x * x
    return np.sum(x)


def _args_rk4(n):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(6, 6)) / 3, rng.normal(size=6), n)


def _args_strided(n):
    rng = np.random.default_rng(1)
    return (rng.normal(size=5), rng.normal(size=5), n)


def _args_nested(n):
    rng = np.random.default_rng(2)
    return (rng.normal(size=(4, 4)) / 2, rng.normal(size=4), n)


CASES = [(rk4, _args_rk4), (strided, _args_strided), (nested, _args_nested)]


@pytest.mark.parametrize("fn, make", CASES)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 64])
@pytest.mark.parametrize("memory", [0, 300, 5000])
def test_same_gradient_as_saving_everything(fn, make, n, memory, loops) -> None:
    args = make(n)
    _with("never")
    plain = tl.grad(fn, argnums=(0, 1))
    expected = plain(*args)
    assert "checkpoint_for" not in plain.source_for(*args)
    _with("always", memory)
    checkpointed = tl.grad(fn, argnums=(0, 1))
    got = checkpointed(*args)
    assert "checkpoint_for" in checkpointed.source_for(*args)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("fn, make", CASES)
def test_second_order_through_a_checkpointed_loop(fn, make, loops) -> None:
    args = make(5)
    v = np.linspace(-1.0, 1.0, args[1].size)

    def hvp(x):
        return np.dot(tl.grad(fn, argnums=1)(args[0], x, args[2]), v)

    _with("never")
    expected = tl.grad(hvp)(args[1])
    _with("always", 200)
    np.testing.assert_allclose(tl.grad(hvp)(args[1]), expected, rtol=1e-12, atol=1e-14)


def test_value_and_grad_and_vjp(loops) -> None:
    args = _args_rk4(40)
    _with("never")
    value, grads = tl.value_and_grad(rk4, argnums=(0, 1))(*args)
    _with("always", 500)
    value2, grads2 = tl.value_and_grad(rk4, argnums=(0, 1))(*args)
    assert value2 == value
    for a, b in zip(grads, grads2, strict=True):
        np.testing.assert_array_equal(a, b)


def test_memory_grows_like_log_n(loops) -> None:
    rng = np.random.default_rng(3)
    A, y0 = rng.normal(size=(16, 16)) / 4, rng.normal(size=16)
    _with("always", 20_000)
    g = tl.grad(rk4)
    small, large = peak_bytes(g, A, y0, 256), peak_bytes(g, A, y0, 4096)
    _with("never")
    g_plain = tl.grad(rk4)
    plain_small, plain_large = peak_bytes(g_plain, A, y0, 256), peak_bytes(g_plain, A, y0, 4096)
    # Saving everything: 16 times the iterations, about 16 times the memory.
    assert plain_large > 10 * plain_small
    # Checkpointed: the budget, plus a snapshot per halving (4 more of them).
    assert large < small + 8_000
    assert large < plain_large / 10


def test_auto_checkpoints_a_loop_proven_too_large(loops) -> None:
    A, y0 = _args_rk4(50)[:2]

    def fixed(A, y0):
        return rk4(A, y0, 200)

    _with("auto", 10_000)  # 200 iterations of 4 saved vectors: more than 10 kB
    checkpointed = tl.grad(fixed)
    assert "checkpoint_for" in checkpointed.source_for(A, y0)
    _with("auto", 1 << 30)
    saving = tl.grad(fixed)
    assert "checkpoint_for" not in saving.source_for(A, y0)
    np.testing.assert_array_equal(checkpointed(A, y0), saving(A, y0))
    # The trip count unknown: scalars per iteration are left as they are.
    assert "checkpoint_for" not in tl.grad(scalar_loop).source_for(0.5, 10)


def scalar_loop(x, n):
    for _ in range(n):
        x = x * 0.9 + np.sin(x)
    return x


def drawing(w, n, rng):
    x = 0.0
    for _ in range(n):
        x = x + w * rng.normal()
    return x


def printing(w, n):
    x = w
    for i in range(n):
        print(i)
        x = np.tanh(x)
    return x


def test_loops_with_effects_are_not_checkpointed(loops, capsys) -> None:
    # (Running the body again would draw other numbers, or print again.)
    _with("always", 0)
    g = tl.grad(drawing)
    np.testing.assert_allclose(g(1.5, 4, np.random.default_rng(0)),
                               np.sum(np.random.default_rng(0).normal(size=4)))
    assert "checkpoint_for" not in g.source_for(1.5, 4, np.random.default_rng(0))
    p = tl.grad(printing)
    p(0.3, 3)
    assert capsys.readouterr().out.split() == ["0", "1", "2"]
    assert "checkpoint_for" not in p.source_for(0.3, 3)


def test_settings_are_checked(loops) -> None:
    with pytest.raises(tl.TapelessError, match="unknown loop_checkpoint 'sometimes'"):
        tl.config.loop_checkpoint = "sometimes"
    with pytest.raises(tl.TapelessError, match="loop_memory must be a number of bytes"):
        tl.config.loop_memory = -1
