"""End-to-end checks of the public API on a few representative programs."""

import numpy as np

import tapeless as tl


def loss(w, x):
    h = x
    for _ in range(3):
        h = np.tanh(h @ w)
    return np.sum(h ** 2)


def test_readme_example_matches_cpython():
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(4, 4)), rng.normal(size=(2, 4))
    f = tl.jit(loss)
    assert f(w, x) == loss(w, x)
    assert "def loss(w, x):" in f.source
    assert "np.tanh" in f.source
    assert "graph @loss" in tl.ir(loss)


def test_demo_runs(capsys):
    from tapeless.demo import run_demo

    assert run_demo() == 0
    assert "MISMATCH" not in capsys.readouterr().out
