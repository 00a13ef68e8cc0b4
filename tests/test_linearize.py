"""`tl.linearize`: the primal runs once, at linearize time; `f_jvp` runs only the tangent
part of the forward-mode program (`tapeless.ad.linearize`), and gives what `tl.jvp`
gives, on the differential corpus and programs written for these tests."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
from gradcheck import random_like, vdot
from test_forward import _zero_like
from test_grad import CORPUS, CORPUS_SKIP, _quiet

import tapeless as tl
from tapeless.fwd_api import _jvp_function, _Linearized


def _parts(fn: Any) -> _Linearized:
    """The linearized parts compiled for `fn` (one argument signature)."""
    found = [v for k, v in _jvp_function(fn)._compiled.items() if k[0] == "linearize"]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(("name", "k", "fn", "args", "argnums"), CORPUS)
def test_linearize_equals_jvp_on_the_corpus(name: str, k: int, fn: Any, args: tuple,
                                           argnums: tuple[int, ...], optimize: str) -> None:
    if (name, k) in CORPUS_SKIP:
        pytest.skip(CORPUS_SKIP[(name, k)])
    rng = np.random.default_rng(k + 11)
    with _quiet():
        value = tl.jvp(fn, args, tuple(_zero_like(a) for a in args))[0]
        out, f_jvp = tl.linearize(fn, *args)
        assert vdot(out, out) == pytest.approx(vdot(value, value), rel=1e-12, abs=1e-12)
        for _ in range(3):
            tangents = tuple(random_like(rng, a) if i in argnums else _zero_like(a)
                             for i, a in enumerate(args))
            expected = tl.jvp(fn, args, tangents)[1]
            got = f_jvp(*tangents)
            assert vdot(got, got) == pytest.approx(vdot(expected, expected), rel=1e-9,
                                                   abs=1e-12), name
            assert vdot(got, expected) == pytest.approx(vdot(expected, expected),
                                                        rel=1e-9, abs=1e-12), name


def mlp(params, x):
    (w1, b1), (w2, b2) = params
    h = np.tanh(w1 @ x + b1)
    return np.sum(np.tanh(w2 @ h + b2) ** 2)


def test_the_tangent_part_has_no_primal_work() -> None:
    rng = np.random.default_rng(0)
    params = ((rng.normal(size=(4, 3)), rng.normal(size=(4, 1))),
              (rng.normal(size=(2, 4)), rng.normal(size=(2, 1))))
    x = rng.normal(size=(3, 5))
    out, f_jvp = tl.linearize(mlp, params, x)
    assert out == pytest.approx(mlp(params, x), rel=1e-12)
    zero_x = np.zeros_like(x)
    for _ in range(5):
        t = random_like(rng, params)
        np.testing.assert_allclose(f_jvp(t, zero_x), tl.jvp(mlp, (params, x), (t, zero_x))[1],
                                   rtol=1e-12)
    parts = _parts(mlp)
    (tangent_part,) = parts.tangents.values()
    # The nonlinearities ran in the primal part: the tangent part multiplies by their
    # slopes, read from the residuals; its products are the tangents' (w1_dot @ x and
    # w1 @ x_dot per layer), none of the primal's.
    assert "tanh" not in tangent_part.source
    assert "tanh" in parts.primal.source
    assert parts.primal.source.count("@") == 2
    assert tangent_part.source.count("@") == 4
    assert "w1_dot" in tangent_part.source and "w1 @ x_dot" in tangent_part.source


def printing(w, x):
    print("primal")
    y = np.sin(w * x)
    if np.sum(y) > 0.0:
        z = y * w
    else:
        z = np.cos(y) * x
    return {"z": z, "s": np.sum(z * z)}


def test_the_primal_runs_once() -> None:
    w, x = np.array([0.3, 0.5]), np.array([1.5, -0.5])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        out, f_jvp = tl.linearize(printing, w, x)
    assert printed.getvalue() == "primal\n"
    rng = np.random.default_rng(1)
    results = []
    with contextlib.redirect_stdout(printed):
        for _ in range(4):
            t = (rng.normal(size=2), rng.normal(size=2))
            results.append((f_jvp(*t), t))
    assert printed.getvalue() == "primal\n"  # f_jvp printed nothing
    for got, t in results:
        with _quiet():
            expected = tl.jvp(printing, (w, x), t)[1]
        assert set(got) == {"z", "s"}
        np.testing.assert_allclose(got["z"], expected["z"], rtol=1e-12)
        assert got["s"] == pytest.approx(expected["s"], rel=1e-12)


def loops(x, n):
    total = 0.0
    for i in range(n):
        total = total + np.sum(np.sin(x * i))
    k = 0
    while total > 0.1 and k < 50:
        total = total * 0.9 + np.sum(x) * 0.01
        k += 1
    return total * np.exp(x[0])


@pytest.mark.parametrize("backend", ["python", "native"])
def test_loops_branches_and_pytrees(backend: str) -> None:
    pytest.importorskip("numba") if backend == "native" else None
    x = np.array([0.4, 0.7, -0.2])
    out, f_jvp = tl.linearize(loops, x, 4, backend=backend)
    assert out == pytest.approx(loops(x, 4), rel=1e-12)
    rng = np.random.default_rng(2)
    for _ in range(4):
        t = rng.normal(size=3)
        assert f_jvp(t, 0.0) == pytest.approx(tl.jvp(loops, (x, 4), (t, 0.0))[1], rel=1e-12)
        h = 1e-6
        fd = (loops(x + h * t, 4) - loops(x - h * t, 4)) / (2 * h)
        assert f_jvp(t, 0.0) == pytest.approx(fd, rel=1e-6)


def test_tangents_are_checked_and_other_dtypes_fall_back() -> None:
    x = np.array([0.3, -0.2])
    _, f_jvp = tl.linearize(lambda v: np.sin(v) * v, x)
    with pytest.raises(tl.TapelessError, match="shape"):
        f_jvp(np.ones(3))
    with pytest.raises(tl.TapelessError, match="takes 1 tangents"):
        f_jvp(np.ones(2), np.ones(2))
    t = np.array([1.0, 2.0], dtype=np.float32)
    np.testing.assert_allclose(f_jvp(t), (np.cos(x) * x + np.sin(x)) * t, rtol=1e-6)
