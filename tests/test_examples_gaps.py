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


def test_a_method_named_encode_on_a_dataclass() -> None:
    g = tl.grad(reconstruction)(Autoencoder(np.full((3, 2), 0.1)), np.ones((4, 3)))
    assert g.W.shape == (3, 2)


def test_gradient_through_a_method_named_like_a_built_in_one() -> None:
    """The gradient reaches the object's fields through `self.encode(x)` (checked against
    finite differences), from Python and inside compiled code."""
    rng = np.random.default_rng(2)
    W, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    eps = 1e-6
    numeric = np.zeros((3, 2))
    for i, j in np.ndindex(3, 2):
        e = np.zeros((3, 2))
        e[i, j] = eps
        numeric[i, j] = (reconstruction(Autoencoder(W + e), x) -
                         reconstruction(Autoencoder(W - e), x)) / (2 * eps)
    g = tl.grad(reconstruction)(Autoencoder(W), x)
    assert np.allclose(g.W, numeric, rtol=1e-6, atol=1e-9)
    inside = tl.jit(lambda m, x: tl.grad(reconstruction)(m, x))(Autoencoder(W), x)
    assert np.allclose(inside.W, numeric, rtol=1e-6, atol=1e-9)


def appended(xs: Any, v: Any) -> Any:
    ys = xs.append(v)
    return ys


def encoded(s: Any) -> Any:
    return s.encode()


def test_a_built_in_receiver_of_such_a_method_is_still_refused() -> None:
    """Where the compiler cannot see that the receiver is a list or a string, the call
    is refused when it runs (a list's `.append` would change it in place)."""
    with pytest.raises(tl.CompileError, match=r"\.append\(\) of a list is not supported"):
        tl.jit(appended)([1.0], 2.0)
    with pytest.raises(tl.CompileError, match=r"\.encode\(\) of a str is not supported"):
        tl.jit(encoded)("ab")


def generic_step(cost: Any, w: Any, x: Any) -> Any:
    value, grad = tl.value_and_grad(cost)(w, x)
    return w - 0.1 * grad, value


def quadratic(w: Any, x: Any) -> Any:
    return np.sum((x @ w) ** 2)


def test_value_and_grad_of_a_function_argument_inside_jit() -> None:
    w, value = tl.jit(generic_step)(quadratic, np.ones(3), np.ones((2, 3)))
    assert np.isclose(value, 18.0) and np.allclose(w, 1.0 - 0.1 * 12.0)


def wavy(w: Any, x: Any) -> Any:
    return np.sum(np.sin(x @ w) ** 2)


def swapped_with_aux(x: Any, w: Any) -> Any:
    return np.sum(np.tanh(x @ w)), x.shape[0]


def grad_with_options(cost: Any, w: Any, x: Any) -> Any:
    return tl.grad(cost, 1, True)(x, w)


def test_grad_of_function_arguments_inside_jit_match_python() -> None:
    """Each function passed gets its own transform (made once: a second call compiles
    nothing); `argnums` and `has_aux` as written; finite differences agree."""
    rng = np.random.default_rng(3)
    w, x = rng.normal(size=3), rng.normal(size=(2, 3))
    step = tl.jit(generic_step)
    for cost in (quadratic, wavy):
        new_w, value = step(cost, w, x)
        eps = 1e-6
        numeric = np.array([(cost(w + eps * e, x) - cost(w - eps * e, x)) / (2 * eps)
                            for e in np.eye(3)])
        assert np.isclose(value, cost(w, x))
        assert np.allclose(new_w, w - 0.1 * numeric, rtol=1e-6, atol=1e-9)
    g, aux = tl.jit(grad_with_options)(swapped_with_aux, w, x)
    want, want_aux = grad_with_options(swapped_with_aux, w, x)
    assert np.allclose(g, want, rtol=1e-12) and aux == want_aux == 2


def step_norm(w: Any, x: Any, cost: Any) -> Any:
    new_w, value = generic_step(cost, w, x)
    return np.sum(new_w ** 2) + value


def test_grad_of_a_function_argument_in_differentiated_code_is_refused() -> None:
    """In code that is itself differentiated a function value is its derivative code,
    not the function: refused with the user's line, never a wrong number."""
    with pytest.raises(tl.GradError, match="function value made by compiled code") as info:
        tl.grad(step_norm)(np.ones(3), np.ones((2, 3)), quadratic)
    assert any("tl.value_and_grad(cost)" in n for n in getattr(info.value, "__notes__", []))


def weighted_cost(w: Any, x: Any, weights: Any) -> Any:
    return np.sum(weights * (x @ w) ** 2) / np.sum(weights)


def after_one_step(w: Any, x: Any, weights: Any) -> Any:
    g = tl.grad(weighted_cost)(w, x, weights)
    return weighted_cost(w - 0.1 * g, x, weights)


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


def test_grad_of_a_model_with_a_bool_field() -> None:
    m, x = Net(np.full((3, 2), 0.1), True), np.ones((4, 3))
    assert tl.grad(net_loss)(m, x).W.shape == (3, 2)


@dataclass(frozen=True)
class MaskedNet:
    W: np.ndarray
    relu: bool
    mask: np.ndarray  # (of bools)

    def __call__(self, x: Any) -> Any:
        z = (x @ self.W) * self.mask * self.relu  # (bools used in arithmetic too)
        return np.maximum(z, 0.0) if self.relu else np.tanh(z)


def masked_grad(m: Any, x: Any) -> Any:
    return tl.grad(net_loss)(m, x)


@pytest.mark.parametrize("relu", [True, False])
def test_bool_fields_are_constants_in_python_and_in_compiled_code(relu: bool) -> None:
    """A bool leaf of a differentiated argument is a constant, like a static field: the
    gradient holds it as it is, from Python and inside compiled code alike; the other
    fields' gradients are the finite differences'."""
    rng = np.random.default_rng(1)
    m = MaskedNet(rng.normal(size=(3, 2)), relu, np.array([True, False]))
    x = rng.normal(size=(4, 3))
    for g in (tl.grad(net_loss)(m, x), tl.jit(masked_grad)(m, x)):
        assert g.relu is relu and g.mask is m.mask
        eps = 1e-6
        for i, j in np.ndindex(3, 2):
            e = np.zeros((3, 2))
            e[i, j] = eps
            numeric = (net_loss(MaskedNet(m.W + e, relu, m.mask), x) -
                       net_loss(MaskedNet(m.W - e, relu, m.mask), x)) / (2 * eps)
            assert np.isclose(g.W[i, j], numeric, rtol=1e-5, atol=1e-8)


def test_grad_with_respect_to_a_bool_itself_is_refused() -> None:
    with pytest.raises(tl.GradError, match="a bool"):
        tl.grad(lambda b, x: np.sum(x) * b)(True, 2.0)


def test_jit_of_a_bound_method() -> None:
    assert np.allclose(tl.jit(SGD(0.1).update)(np.ones(2), np.ones(2)), 0.9)


@dataclass
class Scaled:
    """A mutable object: a bound method's compiled code reads its fields when called."""
    s: float

    def loss(self, w: Any, x: Any, *rest: Any, offset: float = 0.0) -> Any:
        return self.s * np.sum(np.tanh(x @ w)) + sum(rest) + offset


def test_grad_and_jit_of_a_bound_method_with_varargs_and_keywords() -> None:
    obj = Scaled(0.5)
    w, x = np.array([0.3, -0.2, 0.1]), np.arange(6.0).reshape(2, 3) / 5
    assert np.isclose(tl.jit(obj.loss)(w, x, 1.0, 2.0, offset=4.0),
                      obj.loss(w, x, 1.0, 2.0, offset=4.0))
    eps = 1e-6
    numeric = [(obj.loss(w + eps * e, x) - obj.loss(w - eps * e, x)) / (2 * eps)
               for e in np.eye(3)]
    assert np.allclose(tl.grad(obj.loss)(w, x), numeric, rtol=1e-6)
    jitted = tl.jit(obj.loss)
    before = jitted(w, x)
    obj.s = 2.0
    assert np.isclose(jitted(w, x), 4 * before)


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
