"""Callees that derivative code cannot see when compiling: callable objects passed as
arguments, functions held in containers or default arguments, functions passed through
to a `tl.grad` called inside compiled code. Each computes what CPython computes, and its
gradient agrees with finite differences (before the fix, several gave a wrong value and
gradient without an error), or is refused with an error naming the user's line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl

RNG = np.random.default_rng(7)
W = RNG.normal(size=(3, 4))
B = RNG.normal(size=4)
w0 = RNG.normal(size=4)
X = RNG.normal(size=(5, 3))
Y = RNG.normal(size=5)




@dataclass(frozen=True)
class Encoder:
    W: np.ndarray
    b: np.ndarray

    def __call__(self, x):
        return np.tanh(x @ self.W + self.b)


class Standardize:
    """A plain class with `__call__` (not a dataclass)."""

    def __init__(self, mean, scale):
        self.mean = mean
        self.scale = scale

    def __call__(self, x):
        return (x - self.mean) / self.scale


def probe_loss(w, x, y, encoder):
    return np.mean((encoder(x) @ w - y) ** 2)


def standardized_loss(w, x, pre):
    return np.sum(pre(x) @ w[:3] ** 2)


def test_callable_dataclass_argument_not_differentiated(optimize: str) -> None:
    # The example: the loss was 3.95 where CPython gives 2.06, with no error.
    enc = Encoder(W, B)
    value, g = tl.value_and_grad(probe_loss)(w0, X, Y, enc)
    assert value == pytest.approx(probe_loss(w0, X, Y, enc), rel=1e-12)
    check_directional(g, probe_loss, (w0, X, Y, enc), (0,), np.random.default_rng(0))


def test_callable_plain_object_argument_not_differentiated(optimize: str) -> None:
    pre = Standardize(0.3, 2.0)
    value, g = tl.value_and_grad(standardized_loss)(w0, X, pre)
    assert value == pytest.approx(standardized_loss(w0, X, pre), rel=1e-12)
    check_directional(g, standardized_loss, (w0, X, pre), (0,), np.random.default_rng(1))


def test_differentiating_with_respect_to_a_callable_object(optimize: str) -> None:
    def loss(model, x):
        return np.sum(model(x) ** 2)

    enc = Encoder(W, B)
    g = tl.grad(loss)(enc, X)
    assert type(g) is Encoder
    check_directional(g, loss, (enc, X), (0,), np.random.default_rng(2))


def test_callable_object_called_in_a_helper_and_in_a_loop(optimize: str) -> None:
    def apply_twice(f, h):
        return f(f(h) @ W.T)

    def loss(x, enc):
        total = 0.0
        for _ in range(3):
            total = total + np.sum(apply_twice(enc, x) * x[:, :1])
        return total

    enc = Encoder(W, B)
    g = tl.grad(loss)(X, enc)
    assert tl.jit(loss)(X, enc) == pytest.approx(loss(X, enc), rel=1e-12)
    check_directional(g, loss, (X, enc), (0,), np.random.default_rng(3))


def relu(z):
    return np.maximum(z, 0.0)


def inner(w, act):
    return np.sum(act(w * 2.0) * w)


def outer(w, act):
    g = tl.grad(inner)(w, act)
    return np.sum((w - 0.1 * g) ** 2)


def outer_python(w, act, h=1e-6):
    # inner's gradient by central differences, then outer's value as CPython computes it.
    g = np.array([(inner(w + h * e, act) - inner(w - h * e, act)) / (2 * h)
                  for e in np.eye(len(w))])
    return np.sum((w - 0.1 * g) ** 2)


@pytest.mark.parametrize("act", [relu, np.tanh, lambda z: z * np.sin(z)],
                         ids=["relu", "np.tanh", "lambda"])
def test_function_passed_through_to_a_grad_inside_compiled_code(act, optimize: str) -> None:
    # It failed at run time with "'numpy.ndarray' object is not callable".
    w = np.array([0.3, -0.2, 0.5])
    assert tl.jit(outer)(w, act) == pytest.approx(outer_python(w, act), rel=1e-7)
    g = tl.grad(outer)(w, act)
    check_directional(g, outer, (w, act), (0,), np.random.default_rng(4))


def with_default(x, f=np.tanh):
    return np.sum(f(x) * x)


def layer(h, act=np.sin):
    return act(h) * 2.0


def through_default(x):
    return np.sum(layer(x) + layer(x, np.cos))


ACTIVATIONS = [lambda z: np.tanh(z), lambda z: np.sin(z) * z, np.exp]


def from_global_list(x):
    total = 0.0
    for f in ACTIVATIONS:
        total = total + np.sum(f(x))
    return total + np.sum(ACTIVATIONS[1](x))


@pytest.mark.parametrize("fn", [with_default, through_default, from_global_list])
def test_functions_in_default_arguments_and_global_lists(fn, optimize: str) -> None:
    x = np.array([0.3, -0.7, 1.1])
    assert tl.jit(fn)(x) == pytest.approx(fn(x), rel=1e-12)
    check_directional(tl.grad(fn)(x), fn, (x,), (0,), np.random.default_rng(5))
    # Second order: the functions' J of order two is made while the code runs.
    hess_row = tl.grad(lambda x: tl.grad(fn)(x)[0])(x)
    h = 1e-5
    fd = (tl.grad(fn)(x + h * np.eye(3)[0]) - tl.grad(fn)(x - h * np.eye(3)[0])) / (2 * h)
    np.testing.assert_allclose(hess_row, fd, rtol=1e-6, atol=1e-8)


def _object_loss(x, enc):
    return np.sum(enc(x) ** 2)


def _gradient_sum(x, enc):
    return np.sum(tl.grad(_object_loss)(x, enc) * x)


def test_second_order_through_a_callable_object(optimize: str) -> None:
    # grad of a function that takes grad through `enc(x)`: in x and in the object's fields.
    enc = Encoder(W, B)
    rng = np.random.default_rng(6)
    check_directional(tl.grad(_gradient_sum)(X, enc), _gradient_sum, (X, enc), (0,), rng,
                      rtol=1e-5)
    g = tl.grad(_gradient_sum, argnums=1)(X, enc)
    assert type(g) is Encoder
    check_directional(g, _gradient_sum, (X, enc), (1,), rng, rtol=1e-5)


@dataclass(frozen=True)
class Model:
    W: np.ndarray
    b: np.ndarray

    def apply(self, x):
        return np.tanh(x @ self.W + self.b)

    def __call__(self, x):
        return self.apply(x) * 2.0

    def loss(self, x, y):
        return np.mean((self(x) - y) ** 2)


def model_objective(model, x, y):
    return model.loss(x, y) + np.sum(model.apply(x))


def model_gradient_sum(x, model, y):
    return np.sum(tl.grad(model_objective, argnums=1)(model, x, y) ** 2)


def test_methods_of_the_users_class(optimize: str) -> None:
    # model.loss calls self(x), which calls self.apply(x): methods and __call__, first
    # and second order, in the model's fields and in x.
    model = Model(W[:, :2], B[:2])
    y = RNG.normal(size=(5, 2))
    assert tl.jit(model_objective)(model, X, y) == pytest.approx(
        model_objective(model, X, y), rel=1e-12)
    rng = np.random.default_rng(8)
    g = tl.grad(model_objective)(model, X, y)
    assert type(g) is Model
    check_directional(g, model_objective, (model, X, y), (0,), rng)
    check_directional(tl.grad(model_gradient_sum)(X, model, y), model_gradient_sum,
                      (X, model, y), (0,), rng, rtol=1e-5)


def test_a_bound_method_held_in_a_list(optimize: str) -> None:
    # A bound method's sensitivity is its object's, wherever the method is taken: from a
    # list here, and the gradient in the model's fields reaches the model.
    def loss(model, x):
        funcs = [model.apply, np.tanh]
        return np.sum(funcs[0](x) * funcs[1](x[:, :2]))

    model = Model(W[:, :2], B[:2])
    assert tl.jit(loss)(model, X) == pytest.approx(loss(model, X), rel=1e-12)
    rng = np.random.default_rng(9)
    g = tl.grad(loss)(model, X)
    assert type(g) is Model
    check_directional(g, loss, (model, X), (0,), rng)
    check_directional(tl.grad(loss, argnums=1)(model, X), loss, (model, X), (1,), rng)


SCALE = 2.0


class Scaler:
    def __call__(self, x):
        return x * SCALE


SCALED = [lambda z: z * SCALE]


def scaled_loss(x, pre):
    return np.sum(pre(x) ** 2) + np.sum(SCALED[0](x))


def test_callees_compiled_at_run_time_see_a_global_rebound(optimize: str) -> None:
    # (The J-callables made while derivative code runs are guarded like the API's.)
    global SCALE
    x = np.array([1.0, 2.0])
    g = tl.grad(scaled_loss)
    try:
        np.testing.assert_allclose(g(x, Scaler()), 2 * x * 4 + 2)
        SCALE = 3.0
        np.testing.assert_allclose(g(x, Scaler()), 2 * x * 9 + 3)
    finally:
        SCALE = 2.0


@dataclass(frozen=True)
class WithStatic:
    w: np.ndarray

    @staticmethod
    def act(z):
        return np.tanh(z)

    @classmethod
    def doubled(cls, z):
        return 2.0 * z

    def __call__(self, x):
        return self.act(x * self.w)


def test_staticmethods_work_and_classmethods_are_refused(optimize: str) -> None:
    m, x = WithStatic(np.array([0.5, -1.0])), np.array([1.0, 2.0])

    def loss(m, x):
        return np.sum(m(x))

    check_directional(tl.grad(loss)(m, x), loss, (m, x), (0,), np.random.default_rng(10))
    with pytest.raises(tl.GradError, match="classmethod"):
        tl.grad(lambda m, x: np.sum(m.doubled(x) * m.w))(m, x)


# --- a callable object held by a global or a closure cell (`model = MLP(...)` at module
# level, `def loss(w): ... model(x) ...`): it was refused ("cannot call
# main__.<__main__.Standardize object at 0x...>"); it is called as a value, so its
# fields are read when the code runs, as CPython reads them.

GLOBAL_ENCODER = Encoder(W, B)
GLOBAL_SCALER = Standardize(0.3, 2.0)


def global_model_loss(w, x, y):
    return np.mean((GLOBAL_ENCODER(GLOBAL_SCALER(x)) @ w - y) ** 2)


def test_a_global_callable_object(optimize: str) -> None:
    value, g = tl.value_and_grad(global_model_loss)(w0, X, Y)
    assert value == pytest.approx(global_model_loss(w0, X, Y), rel=1e-12)
    check_directional(g, global_model_loss, (w0, X, Y), (0,), np.random.default_rng(3))
    gx = tl.grad(global_model_loss, 1)(w0, X, Y)
    check_directional(gx, global_model_loss, (w0, X, Y), (1,), np.random.default_rng(4))


def test_a_global_callable_objects_fields_are_read_when_it_runs(optimize: str) -> None:
    f = tl.jit(global_model_loss)
    before = f(w0, X, Y)
    try:
        GLOBAL_SCALER.scale = 4.0  # a field changed in place, after compiling
        assert f(w0, X, Y) == pytest.approx(global_model_loss(w0, X, Y), rel=1e-12)
        assert f(w0, X, Y) != pytest.approx(before)
        check_directional(tl.grad(global_model_loss)(w0, X, Y), global_model_loss,
                          (w0, X, Y), (0,), np.random.default_rng(5))
    finally:
        GLOBAL_SCALER.scale = 2.0


def test_a_callable_object_in_a_closure_cell(optimize: str) -> None:
    pre = Standardize(0.5, 3.0)

    def loss(w, x):
        return np.sum(pre(x) @ w[:3] ** 2)

    value, g = tl.value_and_grad(loss)(w0, X)
    assert value == pytest.approx(loss(w0, X), rel=1e-12)
    check_directional(g, loss, (w0, X), (0,), np.random.default_rng(6))


def test_an_object_without_call_is_refused_by_its_class_name() -> None:
    class Plain:
        pass

    thing = Plain()

    def f(x):
        return thing(x)

    with pytest.raises(tl.CompileError, match="cannot call an object of class") as e:
        tl.jit(f)(1.0)
    assert "main__." not in str(e.value) and "test_callables.py" in str(e.value)
