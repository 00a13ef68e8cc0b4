"""Constructs the research examples (examples/) were first written with, which tapeless
refused or got wrong; the examples work around each (the comment at the workaround
names it). Each test is the construct, reduced, expected to work: xfail until the
compiler handles it (then delete the marker, and the workaround in examples/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import tapeless as tl


@dataclass(frozen=True)
class SGD:
    lr: float

    def update(self, p: Any, g: Any) -> Any:
        return p - self.lr * g


def optimizer_step(opt: Any, p: Any, g: Any) -> Any:
    return opt.update(p, g)


@pytest.mark.xfail(raises=tl.CompileError,
                   reason="a user's method named like a mutating list/dict method "
                          "(`update`) is refused by name: examples/lib/optim.py uses `step`")
def test_a_method_named_update_on_a_dataclass() -> None:
    assert np.allclose(tl.jit(optimizer_step)(SGD(0.1), np.ones(2), np.ones(2)), 0.9)


@dataclass(frozen=True)
class Autoencoder:
    W: np.ndarray

    def encode(self, x: Any) -> Any:
        return np.tanh(x @ self.W)

    def __call__(self, x: Any) -> Any:
        return self.encode(x) @ self.W.T


def reconstruction(m: Any, x: Any) -> Any:
    return np.sum((m(x) - x) ** 2)


@pytest.mark.xfail(raises=tl.CompileError,
                   reason="a user's method named like a str method (`encode`) is refused: "
                          "examples/lib/models.py names it `code`")
def test_a_method_named_encode_on_a_dataclass() -> None:
    g = tl.grad(reconstruction)(Autoencoder(np.full((3, 2), 0.1)), np.ones((4, 3)))
    assert g.W.shape == (3, 2)


def generic_step(cost: Any, w: Any, x: Any) -> Any:
    value, grad = tl.value_and_grad(cost)(w, x)
    return w - 0.1 * grad, value


def quadratic(w: Any, x: Any) -> Any:
    return np.sum((x @ w) ** 2)


@pytest.mark.xfail(raises=tl.CompileError,
                   reason="tl.value_and_grad(cost) inside compiled code, on a function "
                          "argument: 'must be known when compiling'; examples/lib/train.py "
                          "takes tl.value_and_grad(cost) from its caller")
def test_value_and_grad_of_a_function_argument_inside_jit() -> None:
    w, value = tl.jit(generic_step)(quadratic, np.ones(3), np.ones((2, 3)))
    assert np.isclose(value, 18.0) and np.allclose(w, 1.0 - 0.1 * 12.0)


def weighted_cost(w: Any, x: Any, weights: Any) -> Any:
    return np.sum(weights * (x @ w) ** 2) / np.sum(weights)


def after_one_step(w: Any, x: Any, weights: Any) -> Any:
    g = tl.grad(weighted_cost)(w, x, weights)
    return weighted_cost(w - 0.1 * g, x, weights)


@pytest.mark.xfail(raises=TypeError,
                   reason="second order through `/ np.sum(weights)` of an undifferentiated "
                          "argument: TypeError `_Zero / float` in the generated code; "
                          "examples/lib/costs.py:soft_cross_entropy takes normalized weights")
def test_second_order_through_a_division_by_a_constant_sum() -> None:
    rng = np.random.default_rng(0)
    w, x, weights = rng.normal(size=3), rng.normal(size=(4, 3)), np.ones(4)
    g = tl.grad(after_one_step)(w, x, weights)
    eps = 1e-6
    numeric = [(after_one_step(w + eps * e, x, weights) - after_one_step(w - eps * e, x, weights))
               / (2 * eps) for e in np.eye(3)]
    assert np.allclose(g, numeric, rtol=1e-5)


@dataclass(frozen=True)
class Net:
    W: np.ndarray
    relu: bool

    def __call__(self, x: Any) -> Any:
        z = x @ self.W
        return np.maximum(z, 0.0) if self.relu else np.tanh(z)


def net_loss(m: Any, x: Any) -> Any:
    return np.sum(m(x) ** 2)


@pytest.mark.xfail(raises=tl.GradError,
                   reason="a model with a bool field: tl.grad from Python refuses it "
                          "(GradError) though the same grad inside compiled code accepts it; "
                          "examples/lib/models.py has SigmoidMLP instead of a flag")
def test_grad_of_a_model_with_a_bool_field() -> None:
    m, x = Net(np.full((3, 2), 0.1), True), np.ones((4, 3))
    assert tl.grad(net_loss)(m, x).W.shape == (3, 2)


@pytest.mark.xfail(raises=tl.CompileError,
                   reason="tl.jit of a bound method: 'can only compile Python functions'")
def test_jit_of_a_bound_method() -> None:
    assert np.allclose(tl.jit(SGD(0.1).update)(np.ones(2), np.ones(2)), 0.9)


@dataclass(frozen=True)
class Linear:
    W: np.ndarray

    def __call__(self, x: Any) -> Any:
        return x @ self.W


def linear_cost(m: Any, x: Any) -> Any:
    return np.sum(m(x) ** 2)


def adapted_loss(m: Any, x: Any) -> Any:
    g = tl.grad(linear_cost)(m, x)
    return linear_cost(Linear(m.W - 0.1 * g.W), x)


@pytest.mark.skipif(not hasattr(tl, "vmap"), reason="tl.vmap is not in this tapeless")
def test_vmap_of_an_inner_gradient_step_on_a_model_object() -> None:
    m, xs = Linear(np.ones(3)), np.random.default_rng(0).normal(size=(4, 2, 3))
    batched = tl.vmap(adapted_loss, in_axes=(None, 0))(m, xs)  # type: ignore[attr-defined]
    assert np.allclose(batched, [adapted_loss(m, x) for x in xs])
