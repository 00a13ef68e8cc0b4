"""The research examples (examples/*.py) in their --quick mode, each checked for its
qualitative result, not only for running; and the library they share (examples/lib),
checked against NumPy and finite differences."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")
from threadpoolctl import threadpool_limits  # noqa: E402  (installed with scikit-learn)

import tapeless as tl  # noqa: E402
from tapeless.cli import main as cli  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module", autouse=True)
def examples_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    # One BLAS thread: the examples' matrices are small, and threads competing for two
    # cores made them ten times slower.
    with threadpool_limits(1):
        yield
    sys.path.remove(str(EXAMPLES))


def example(name: str) -> ModuleType:
    return importlib.import_module(name)


def run(name: str, tmp_path: Path) -> Any:
    result = example(name).main(["--quick", "--results", str(tmp_path)])
    assert list(tmp_path.glob("*.png")), "the example saves its plots"
    return result


# --- the examples -------------------------------------------------------------------------


def test_greedy_pretraining_beats_random_init(tmp_path: Path) -> None:
    errors = run("greedy_pretraining", tmp_path)
    assert errors["pretrained"] < 0.2
    assert errors["pretrained"] < errors["random init"] - 0.1


def test_image_topology_recovers_neighbours(tmp_path: Path) -> None:
    r = run("image_topology", tmp_path)
    assert r["recovered"] > 3 * r["chance"]
    # The recovered layout fills hidden pixels better than random pixels and the means.
    assert r["recovered neighbours"] < r["random pixels"]
    assert r["recovered neighbours"] < r["pixel means"]


def test_unlearning_raises_the_forget_loss(tmp_path: Path) -> None:
    results = run("unlearning", tmp_path)
    for (forget_set, method), r in results.items():
        assert r["after"] > r["before"] + 0.05, (forget_set, method)
        # Within the quick run's steps, each forget set reaches the loss of never-seen text.
        assert r["steps_needed"] is not None, (forget_set, method)
    # There, gradient difference has kept the retain loss lower than plain ascent.
    for forget_set in {name for name, _ in results}:
        assert (results[(forget_set, "gradient difference")]["retain_at_1"]
                < results[(forget_set, "gradient ascent")]["retain_at_1"])


def test_maml_variants_beat_chance(tmp_path: Path) -> None:
    accuracy = run("maml", tmp_path)
    for name in ("MAML", "first-order MAML", "Proto-MAML"):
        assert accuracy[name] > accuracy["chance"] + 0.2, name


def test_tapeless_check_reports_nothing(capsys: pytest.CaptureFixture) -> None:
    for path in sorted(EXAMPLES.glob("*.py")):
        assert cli(["check", str(path)]) == 0, capsys.readouterr().out
        assert capsys.readouterr().out.strip() == f"0 findings in {path}"


# --- the library -----------------------------------------------------------------------------


def test_costs_match_numpy() -> None:
    costs = example("lib.costs")
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    nll = -np.log(p[np.arange(5), labels])
    assert np.isclose(costs.cross_entropy(logits, labels), nll.mean())
    assert np.allclose(costs.cross_entropy_each(logits, labels), nll)
    w = np.array([0.5, 0.5, 0.0, 0.0, 0.0])
    assert np.isclose(costs.soft_cross_entropy(logits, np.eye(4)[labels], w), nll[:2].mean())
    x, x_hat = rng.random((3, 6)), rng.random((3, 6))
    bce = -(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat)).sum(axis=1).mean()
    assert np.isclose(costs.reconstruction(x_hat, x), bce)


def apply_step(optimizer: Any, params: Any, grads: Any, state: Any) -> Any:
    # (`tl.jit(optimizer.step)` is refused: tapeless compiles functions, not bound methods.)
    return optimizer.step(params, grads, state)


def test_optimizers_take_the_textbook_steps() -> None:
    optim = example("lib.optim")
    step = tl.jit(apply_step)
    params = {"w": np.array([1.0, -2.0]), "b": (np.array(0.5),)}
    grads = {"w": np.array([0.1, 0.3]), "b": (np.array(-1.0),)}
    new, _ = step(optim.SGD(0.1), params, grads, 0)
    assert np.allclose(new["w"], [0.99, -2.03]) and np.allclose(new["b"][0], 0.6)
    momentum = optim.Momentum(0.1, 0.9)
    p, v = step(momentum, params, grads, momentum.init(params))
    p, v = step(momentum, p, grads, v)
    assert np.allclose(p["w"], params["w"] - 0.1 * (0.1 + 0.19) * np.array([1.0, 3.0]))
    adam = optim.Adam(0.01)
    p, state = step(adam, params, grads, adam.init(params))
    # Adam's first step moves each parameter by lr against the gradient's sign.
    assert np.allclose(p["w"], params["w"] - 0.01 * np.sign(grads["w"]), atol=1e-6)
    assert state.step == 1.0


def test_recurrent_cells_differentiate(optimize: str) -> None:
    models = example("lib.models")
    costs = example("lib.costs")
    rng = np.random.default_rng(1)
    model = models.char_rnn(rng, 7, 3, 4)
    chars, targets = rng.integers(0, 7, size=(2, 5)), rng.integers(0, 7, size=10)

    def loss(m: Any) -> Any:
        return costs.cross_entropy(m(chars).reshape(10, 7), targets)

    grads = tl.grad(loss)(model)
    assert isinstance(grads, models.CharRNN)
    direction = tl.tree_map(lambda p: rng.normal(size=np.shape(p)), model)
    eps = 1e-6
    shifted = [tl.tree_map(lambda p, d, s=s: p + s * eps * d, model, direction)
               for s in (1.0, -1.0)]
    numeric = (loss(shifted[0]) - loss(shifted[1])) / (2 * eps)
    analytic = sum(np.sum(g * d) for g, d in zip(tl.tree_leaves(grads),
                                                  tl.tree_leaves(direction), strict=True))
    assert np.isclose(numeric, analytic, rtol=1e-5)


def test_maml_meta_gradients_are_right() -> None:
    # Second order: against central differences. First order: the query loss's gradient
    # at the adapted parameters (what stop_gradient on the inner gradients leaves).
    maml = example("maml")
    data = example("lib.data")
    x, y = data.digits()
    rng = np.random.default_rng(3)
    episodes = [maml.sample_episode(rng, x, y, maml.META_TRAIN_CLASSES, 3, 2, 2)
                for _ in range(2)]
    model = maml.classifier(rng, [64, 8], 3)
    model = maml.Classifier(model.features, maml.models.Dense(
        rng.normal(0.0, 0.5, size=(8, 3)), rng.normal(0.0, 0.5, size=3)))
    args = (episodes, 2, 0.5)

    second = tl.grad(maml.meta_loss)(model, *args, False, False)
    direction = tl.tree_map(lambda p: rng.normal(size=np.shape(p)), model)
    eps = 1e-6
    plus, minus = (tl.tree_map(lambda p, d, s=s: p + s * eps * d, model, direction)
                   for s in (1.0, -1.0))
    numeric = (maml.meta_loss(plus, *args, False, False)
               - maml.meta_loss(minus, *args, False, False)) / (2 * eps)
    analytic = sum(np.sum(g * d) for g, d in zip(tl.tree_leaves(second),
                                                  tl.tree_leaves(direction), strict=True))
    assert np.isclose(numeric, analytic, rtol=1e-5)

    first = tl.grad(maml.meta_loss)(model, *args, True, False)
    expected = None
    for episode in episodes:
        adapted = maml.adapt(model, episode, 2, 0.5, True, False)
        g = tl.grad(maml.episode_cost)(adapted, episode.query_x, episode.query_y,
                                      episode.query_w, episode.mask)
        expected = g if expected is None else tl.tree_map(np.add, expected, g)
    for a, b in zip(tl.tree_leaves(first), tl.tree_leaves(expected), strict=True):
        assert np.allclose(a, b / len(episodes), atol=1e-12)
    assert not all(np.allclose(a, b) for a, b in zip(tl.tree_leaves(first),
                                                     tl.tree_leaves(second), strict=True))
