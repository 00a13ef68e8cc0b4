"""Gradients that used to be silently wrong (a wrong number, no error): each is checked
against its exact value with the optimizer on and off (a fresh `tl.grad` per setting:
compiling reads TAPELESS_OPTIMIZE)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapeless as tl


@pytest.fixture(params=["on", "off"])
def optimize(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "off":
        monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    else:
        monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    return request.param


def same(got: object, expected: object) -> None:
    """Exactly the expected value (tuples item by item), nan nowhere."""
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            same(g, e)
        return
    assert not np.any(np.isnan(got)), got
    np.testing.assert_array_equal(got, expected)
    assert np.shape(got) == np.shape(expected)


# --- 1. np.mod / np.remainder / np.fmod ----------------------------------------------------


def test_np_mod_scalars(optimize: str) -> None:
    same(tl.grad(lambda x, y: np.mod(x, y), argnums=(0, 1))(0.7, 0.3), (1.0, -2.0))
    same(tl.grad(lambda x, y: np.remainder(x, y), argnums=(0, 1))(0.7, 0.3), (1.0, -2.0))
    # (as the `%` operator: floor division)
    same(tl.grad(lambda x, y: np.mod(x, y), argnums=(0, 1))(-0.7, 0.3), (1.0, 3.0))
    same(tl.grad(lambda x, y: x % y, argnums=(0, 1))(-0.7, 0.3), (1.0, 3.0))


def test_np_mod_broadcasting(optimize: str) -> None:
    x = np.array([[0.7, -0.7, 2.5], [1.1, 0.2, -3.5]])
    y = np.array([0.3, 0.3, 1.0])
    gx, gy = tl.grad(lambda x, y: np.sum(np.mod(x, y)), argnums=(0, 1))(x, y)
    same(gx, np.ones((2, 3)))
    same(gy, -np.sum(np.floor_divide(x, y), axis=0))
    np.testing.assert_array_equal(gy, [-5.0, 3.0, 2.0])


def test_np_fmod_and_math_fmod(optimize: str) -> None:
    # fmod truncates: fmod(-0.7, 0.3) = -0.7 + 2 * 0.3
    same(tl.grad(lambda x, y: np.fmod(x, y), argnums=(0, 1))(-0.7, 0.3), (1.0, 2.0))
    same(tl.grad(lambda x, y: math.fmod(x, y), argnums=(0, 1))(-0.7, 0.3), (1.0, 2.0))
    same(tl.grad(lambda x, y: math.fmod(x, y), argnums=(0, 1))(0.7, 0.3), (1.0, -2.0))
    x = np.array([-0.7, 0.7, 2.5])
    gx, gy = tl.grad(lambda x, y: np.sum(np.fmod(x, y)), argnums=(0, 1))(x, 0.3)
    same(gx, np.ones(3))
    same(gy, 2.0 - 2.0 - 8.0)


def test_np_floor_divide_has_zero_derivative(optimize: str) -> None:
    same(tl.grad(lambda x, y: np.floor_divide(x, y) * 1.0, argnums=(0, 1))(0.7, 0.3),
         (0.0, 0.0))
