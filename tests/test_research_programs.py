"""Research programs written as researchers write them (tests/research_programs.py),
each checked against CPython (`tl.jit(f)` against `f`) and finite differences, first
and second order (a Hessian-vector product, the gradient of a scalar function of
`tl.grad`, against finite differences of `tl.grad`), with the optimizer on and off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("scipy")

import research_programs as rp  # noqa: E402
from gradcheck import assert_same_structure, check_directional, random_like, vdot  # noqa: E402

import tapeless as tl  # noqa: E402


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)))


def assert_close(got: Any, want: Any, rtol: float = 1e-10) -> None:
    assert type(got) is type(want) or np.isscalar(want), (type(got), type(want))
    for g, w in zip(tl.tree_leaves(got), tl.tree_leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-12)


def check_program(f: Callable[..., Any], args: tuple, argnums: tuple[int, ...],
                  second_order: Callable[..., Any] | None = None) -> None:
    """tl.jit(f) is f; tl.value_and_grad(f) gives f's value and a gradient of the
    arguments' structure that matches finite differences; the gradient of
    <tl.grad(f), v> (H v) matches finite differences of tl.grad(f)."""
    rng = rng_for(f.__name__)
    assert_close(tl.jit(f)(*args), f(*args))
    value, grads = tl.value_and_grad(f, argnums=argnums)(*args)
    assert_close(value, f(*args))
    assert_same_structure(grads, tuple(args[i] for i in argnums))
    check_directional(grads, f, args, argnums, rng, what=f"grad {f.__name__}")
    # Second order, in the first argument: H v by tl.grad of <tl.grad(f), v>.
    v = random_like(rng, args[0])
    directional = second_order or rp.grad_dot(f)
    hvp = tl.grad(directional)(args[0], v, *args[1:])
    assert_same_structure(hvp, args[0])

    def grad_along_v(p: Any, *rest: Any) -> float:
        return vdot(tl.grad(f)(p, *rest), v)

    check_directional(hvp, grad_along_v, args, (0,), rng, rtol=1e-5, atol=1e-7,
                      what=f"H v of {f.__name__}")


# --- meta-learning --------------------------------------------------------------------


def maml_setup(n_tasks: int = 2) -> tuple:
    rng = rng_for("maml")
    d, h = 2, 5
    params = (rng.normal(size=(d, h)), 0.1 * rng.normal(size=h), rng.normal(size=(h, 1)),
              np.zeros(1))
    tasks = []
    for _ in range(n_tasks):
        amp, phase = rng.uniform(0.5, 2.0), rng.uniform(0.0, np.pi)
        x = rng.uniform(-2, 2, size=(6, d))
        y = amp * np.sin(x[:, :1] + phase)
        tasks.append((x[:3], y[:3], x[3:], y[3:]))
    return params, tasks


@pytest.mark.parametrize("act", [np.tanh, rp.softplus, rp.sigmoid],
                         ids=["np.tanh", "softplus", "sigmoid"])
def test_maml_with_the_activation_passed_in(optimize: str, act: Any) -> None:
    params, tasks = maml_setup()
    check_program(rp.maml_loss, (params, tasks, act), (0,), second_order=rp.maml_directional)


def test_maml_two_inner_steps(optimize: str) -> None:
    params, tasks = maml_setup(1)

    def loss(p: Any, ts: Any, act: Any) -> Any:
        return rp.maml_loss(p, ts, act, 0.05, 2)

    assert_close(tl.jit(loss)(params, tasks, np.tanh), loss(params, tasks, np.tanh))
    g = tl.grad(loss)(params, tasks, np.tanh)
    check_directional(g, loss, (params, tasks, np.tanh), (0,), rng_for("two"))


@pytest.mark.xfail(strict=True, reason="a function passed through `*args` to a "
                   "differentiated function is refused: grad checks each argument and the "
                   "packed `*rest` tuple holds a function (GradError 'argument 2 is a "
                   "container holding a function or a class')")
def test_maml_hvp_with_the_activation_in_star_args() -> None:
    params, tasks = maml_setup(1)
    v = random_like(rng_for("star"), params)
    tl.grad(rp.grad_dot(rp.maml_loss))(params, v, tasks, np.tanh)


# --- a model object and Adam over a dict -----------------------------------------------


def mlp_setup() -> tuple:
    rng = rng_for("mlp")
    params = {"W0": rng.normal(size=(3, 6)) / np.sqrt(3), "b0": np.zeros(6),
              "W1": rng.normal(size=(6, 1)) / np.sqrt(6), "b1": np.zeros(1)}
    x = rng.normal(size=(16, 3))
    y = np.sin(x[:, 0]) + 0.3 * x[:, 1]
    return params, x, y


def test_model_object_over_a_dict(optimize: str) -> None:
    params, x, y = mlp_setup()
    check_program(rp.objective, (params, x, y), (0,))


def test_gradient_in_the_model_object_is_a_model(optimize: str) -> None:
    params, x, y = mlp_setup()
    model = rp.MLP(params)
    check_program(rp.model_loss, (model, x, y), (0,))
    assert isinstance(tl.grad(rp.model_loss)(model, x, y), rp.MLP)


def test_adam_over_a_dict_compiled_with_tree_map(optimize: str) -> None:
    params, x, y = mlp_setup()
    state = rp.adam_init(params)
    compiled = tl.jit(rp.adam_step)
    for _ in range(3):
        grads = tl.grad(rp.objective)(params, x, y)
        new, new_state = compiled(params, grads, state)
        want, want_state = rp.adam_step(params, grads, state)
        assert_close(new, want, rtol=1e-12)
        assert_close(new_state, want_state, rtol=1e-12)
        assert new_state.step == want_state.step
        params, state = new, new_state


def test_training_with_adam(optimize: str) -> None:
    params, x, y = mlp_setup()
    compiled, losses = rp.train(params, x, y, 40, tl.jit(tl.value_and_grad(rp.objective)),
                                tl.jit(rp.adam_step))
    plain, plain_losses = rp.train(params, x, y, 40, tl.value_and_grad(rp.objective),
                                   rp.adam_step)
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-9)
    assert_close(compiled, plain, rtol=1e-8)
    assert losses[-1] < 0.5 * losses[0]


def test_compiled_train_step(optimize: str) -> None:
    params, x, y = mlp_setup()
    state = rp.adam_init(params)
    step = tl.jit(rp.train_step)
    p1, s1 = params, state
    p2, s2 = params, state
    for _ in range(3):
        p1, s1, v1 = step(p1, s1, x, y)
        p2, s2, v2 = rp.train_step(p2, s2, x, y)
        assert_close(v1, v2)
        assert_close(p1, p2, rtol=1e-10)


def test_linear_probe_on_a_frozen_encoder(optimize: str) -> None:
    # Callable objects passed in and not differentiated (a dataclass, a plain class).
    rng = rng_for("probe")
    x = rng.normal(loc=2.0, scale=3.0, size=(12, 3))
    encoder = rp.Encoder(rng.normal(size=(3, 4)), 0.1 * rng.normal(size=4))
    preprocess = rp.Standardize(x.mean(axis=0), x.std(axis=0))
    w, y = rng.normal(size=4), rng.normal(size=12)
    check_program(rp.probe_loss, (w, x, y, encoder, preprocess), (0, 3))


# --- a classifier, an embedding, recurrent networks, a mixture --------------------------


def test_classifier_with_logsumexp(optimize: str) -> None:
    rng = rng_for("clf")
    x = rng.normal(size=(10, 3))
    labels = rng.integers(0, 4, size=10)
    W, b = rng.normal(size=(3, 4)), 0.1 * rng.normal(size=4)
    check_program(rp.classifier_loss, (W, b, x, labels), (0, 1))


def test_embedding_loss_with_triu_indices(optimize: str) -> None:
    rng = rng_for("emb")
    E = rng.normal(size=(6, 2))
    target = np.abs(rng.normal(size=15)) + 0.5
    check_program(rp.embedding_loss, (E, target), (0,))


def test_lstm(optimize: str) -> None:
    rng = rng_for("lstm")
    h = 3
    params = {"Wx": 0.5 * rng.normal(size=(2, 4 * h)), "Wh": 0.5 * rng.normal(size=(h, 4 * h)),
              "b": 0.1 * rng.normal(size=4 * h), "Wy": rng.normal(size=(h, 1))}
    xs, ys = rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2))
    check_program(rp.lstm_loss, (params, xs, ys), (0,))


def test_rnn_with_a_while_loop(optimize: str) -> None:
    rng = rng_for("rnn")
    W, U = 0.5 * rng.normal(size=(3, 3)), rng.normal(size=(3, 2))
    xs, ys = rng.normal(size=(5, 2)), rng.normal(size=5)
    check_program(rp.rnn_loss, (W, U, xs, ys), (0, 1))


def test_gmm_negative_log_likelihood(optimize: str) -> None:
    rng = rng_for("gmm")
    gmm = rp.GMM(rng.normal(size=3), rng.normal(size=(3, 2)), 0.3 * rng.normal(size=(3, 2)))
    x = rng.normal(size=(7, 2))
    check_program(rp.gmm_nll, (gmm, x), (0,))
    assert isinstance(tl.grad(rp.gmm_nll)(gmm, x), rp.GMM)
