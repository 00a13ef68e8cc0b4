"""Recurrent programs whose parameters' rows are read in a loop nested in another (the
layers of a stacked RNN inside the loop over time steps): the gradient of those rows
goes into one buffer for the whole backward pass (`loops.hoist_accumulators`), not into
fresh zeros added to a running sum at each outer step, and rows read at constant indices
in the outer loop are added in place too (`loops.accumulate_in_place`). Values against
autograd and finite differences, with the optimizer on and off, and the shape of the
code (issue 12: the LSTM's gradient)."""

from __future__ import annotations

import re

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import elementwise_fd, in_place_adds

import tapeless as tl
import tapeless.opt.loops as loops


def elman(W, U, V, xs):
    """A stacked Elman RNN: W's and U's rows read by the layer loop, V's rows at
    constant indices by the loop over time steps."""
    T = xs.shape[0]
    L = W.shape[0]
    hs = [np.zeros(W.shape[1]) for _ in range(L)]
    loss = 0.0
    for t in range(T):
        x = xs[t] * V[0] + V[1]
        new = []
        for j in range(L):
            h = np.tanh(x * W[j] + hs[j] * U[j])
            new = new + [h]
            x = h
        hs = new
        loss = loss + np.sum((x - V[2]) ** 2)
    return loss


def gru(Wz, Wr, Wh, V, xs):
    """GRU cells stacked, one hidden state passed from layer to layer."""
    T, n = xs.shape
    h = np.zeros(n)
    out = 0.0
    for t in range(T):
        x = xs[t] * V[0]
        for j in range(Wz.shape[0]):
            z = 1.0 / (1.0 + np.exp(-(Wz[j] * x + V[1] * h)))
            r = 1.0 / (1.0 + np.exp(-(Wr[j] * x + V[2] * h)))
            c = np.tanh(Wh[j] * x + r * h)
            h = (1.0 - z) * h + z * c
            x = h
        out = out + np.sum(h * V[3])
    return out


def ragged(W, xs):
    """Layer loops of varying length, none at some steps: the row sums pass through an
    inner loop that runs no iteration."""
    h = np.zeros(W.shape[1])
    total = 0.0
    for t in range(xs.shape[0]):
        h = h + xs[t]
        for j in range(t % 3):
            h = np.sin(h * W[j])
        total = total + np.sum(h * h)
    return total


def three_deep(W, xs):
    """Loops three deep, W's rows read by the innermost."""
    h = np.zeros(W.shape[1])
    for t in range(xs.shape[0]):
        for k in range(2):
            h = h + xs[t] * (k + 1)
            for j in range(W.shape[0]):
                h = np.tanh(h * W[j])
    return np.sum(h)


def shared_rows(W, xs):
    """Every layer reads the same two rows: the inner loop adds into each of them once
    per iteration (into the outer sum one piece after the other, once hoisted)."""
    h = np.zeros(W.shape[1])
    total = 0.0
    for t in range(xs.shape[0]):
        h = h * 0.5 + xs[t]
        for j in range(3):
            h = np.tanh(h * W[0] + W[1] * (j + 1.0))
        total = total + np.sum(h)
    return total


def _anp(fn):
    """The same program on autograd's numpy."""
    g = dict(fn.__globals__, np=anp)
    return type(fn)(fn.__code__, g, fn.__name__)


def _data(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s) * 0.5 for s in shapes)


CASES = [
    (elman, [(3, 5), (3, 5), (3, 5), (7, 5)], (0, 1, 2)),
    (gru, [(2, 5), (2, 5), (2, 5), (4, 5), (6, 5)], (0, 1, 2, 3)),
    (ragged, [(2, 4), (8, 4)], (0,)),
    (three_deep, [(3, 4), (5, 4)], (0,)),
    (shared_rows, [(2, 4), (6, 4)], (0,)),
]


@pytest.mark.parametrize("fn, shapes, argnums", CASES, ids=[c[0].__name__ for c in CASES])
def test_gradients_match_autograd(optimize, fn, shapes, argnums) -> None:
    args = _data(shapes)
    got = tl.grad(fn, argnums=argnums)(*args)
    want = autograd.grad(_anp(fn), argnum=argnums)(*args)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_elman_against_finite_differences() -> None:
    W, U, V, xs = _data([(3, 5), (3, 5), (3, 5), (7, 5)], seed=1)
    dW, dU, dV = tl.grad(elman, argnums=(0, 1, 2))(W, U, V, xs)
    np.testing.assert_allclose(dW, elementwise_fd(lambda w: elman(w, U, V, xs), W),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dV, elementwise_fd(lambda v: elman(W, U, v, xs), V),
                               rtol=1e-6, atol=1e-8)


def _zeros_in_loops(source: str, name: str) -> list[str]:
    """Lines of `source` that make zeros for the sensitivity of `name` inside a loop (more
    indented than the function's body)."""
    return re.findall(rf"^ {{8,}}d_{name}\w* = \w*\.?zeros\(.*$", source, re.M)


@pytest.mark.parametrize("fn, shapes, argnums, names", [
    (elman, [(3, 5), (3, 5), (3, 5), (7, 5)], (0, 1, 2), ["W", "U"]),
    (gru, [(2, 5), (2, 5), (2, 5), (4, 5), (6, 5)], (0, 1, 2, 3), ["Wz", "Wr", "Wh"]),
    (shared_rows, [(2, 4), (6, 4)], 0, ["W"]),
])
def test_row_sums_of_inner_loops_go_into_one_buffer(monkeypatch, fn, shapes, argnums,
                                                    names) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    args = _data(shapes)
    source = tl.grad(fn, argnums=argnums).source_for(*args)
    for name in names:
        assert not _zeros_in_loops(source, name), source
        assert f"_gadd(d_{name}" not in source, source
    assert in_place_adds(source) >= len(names)
    # Without the hoisting: zeros each outer step, the same values.
    got = tl.grad(fn, argnums=argnums)(*args)
    monkeypatch.setattr(loops, "hoist_accumulators", lambda graphs, use: 0)
    g = tl.grad(fn, argnums=argnums)
    off = g.source_for(*args)
    assert _zeros_in_loops(off, names[0]), off
    for a, b in zip(got, g(*args), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_rows_read_at_constant_indices_are_added_in_place(monkeypatch) -> None:
    """`V[0]`, `V[1]`, `V[2]` read by the outer loop: their sensitivities are added into
    V's zeros by statements (the indices a folded constant tuple), not by a
    `scatter_add_known` call each step."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    args = _data([(3, 5), (3, 5), (3, 5), (7, 5)])
    source = tl.grad(elman, argnums=(0, 1, 2)).source_for(*args)
    assert "scatter_add_known(d_V" not in source, source
    assert len(re.findall(r"^\s+d_V\w*\[[0-2]\] \+= ", source, re.M)) == 3, source
