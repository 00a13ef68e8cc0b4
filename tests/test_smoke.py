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


def uses_a_set(x):
    return {x} | {1}


def test_compiling_pauses_the_garbage_collector_only_while_it_runs():
    import gc

    import pytest

    seen = []
    real_load = tl.api.load

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real_load(*args, **kwargs)

    tl.api.load = spy
    try:
        assert gc.isenabled()
        tl.jit(loss)(np.eye(2), np.ones((1, 2)))
        assert seen == [False] and gc.isenabled()
        with pytest.raises(tl.TapelessError):  # a failed compile turns it back on too
            tl.jit(uses_a_set)(1.0)
        assert gc.isenabled()
        gc.disable()  # and leaves it off if it was off
        try:
            tl.jit(loss)(np.eye(3), np.ones((1, 3)))
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        tl.api.load = real_load
