"""A recursion's sensitivity accumulated in place down the recursion on the native backend
(issue 15, `backend/native_records.accumulate_in_place`), and records that keep only what
the backward pass reads (`_slim_records`). Programs written here, not for the determinant:
weighted paths through a DAG (a base case that reads nothing), walks of a fixed length
(a base case that reads an element), and a hand-written lowered module (the forms that
are rewritten and the ones left alone). Results: the Python backend's (1e-12) and finite
differences."""

from __future__ import annotations

import ast
import math
import textwrap
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

from test_corpus import assert_same  # noqa: E402
from test_native_intlists import _entry, _own_cache  # noqa: E402,F401 (its cache fixture)

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402
from tapeless.backend.native_records import accumulate_in_place  # noqa: E402


@pytest.fixture(autouse=True)
def _optimized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


def _functions(transformed: Any, *args: Any) -> dict[str, ast.FunctionDef]:
    source = native.native_source(transformed._get(transformed.bind(args, {})))
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}


def paths(W, i):
    """The sum over the paths from node i to the last node of a DAG (edges i -> j, j > i)
    of the product of the weights sin(W[i, j]) along the path."""
    n = W.shape[0]
    if i == n - 1:
        return 1.0
    total = 0.0
    for j in range(i + 1, n):
        total = total + math.sin(W[i, j]) * paths(W, j)
    return total


def all_paths(W):
    return paths(W, 0)


def walks(W, i, k):
    """The sum over the walks of k steps from i of the weights along the walk times the
    weight of the node where it ends (W[j, j])."""
    if k == 0:
        return W[i, i]
    total = 0.0
    for j in range(W.shape[0]):
        total = total + W[i, j] * walks(W, j, k - 1)
    return total


def walks4(W):
    return walks(W, 0, 4) + 0.5 * walks(W, 1, 3)


def _finite_differences(f: Any, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        out[index] = (f(up) - f(down)) / (2 * eps)
    return out


@pytest.mark.parametrize("program,n", [(all_paths, 7), (walks4, 4)])
def test_recursive_gradient_accumulates_in_place(program: Any, n: int) -> None:
    """The gradient native, equal to the Python backend's and to finite differences; its
    backpropagator takes the accumulator (`_nt_acc`), adds into it, makes no dense
    array per call and sums no callee's array going up; the records keep neither the
    matrix every call passes on (a parameter of the backward pass instead) nor the branch
    test; the forward pass makes no list per call (one list of items for the run)."""
    W = np.random.default_rng(3).uniform(-1.0, 1.0, (n, n))
    g = tl.grad(program, backend="native")
    got = g(W)
    entry = _entry(g, W)
    assert entry.is_native
    # (the first accumulator is an array, as the ones passed down: B_f has one signature,
    # so the recursion's code is cached; or this process started it from the cache)
    assert entry.module is None or entry.module.cached
    assert_same(tl.grad(program)(W), got)
    np.testing.assert_allclose(got, _finite_differences(program, W), rtol=1e-6, atol=1e-8)
    functions = _functions(g, W)
    name = next(k for k in functions if k.startswith("B_"))
    b = functions[name]
    text = ast.unparse(b)
    assert b.args.args[-1].arg == "_nt_acc", text
    assert "_nt_element_sens_small" not in text and "_nt_gadd_owned(" not in text, text
    assert any(a.arg.startswith("_nt_same") for a in b.args.args), text
    j_fn = functions["J_" + name[2:]]
    # (the loop's saved items in one list for the run, linked by index: no list per call)
    assert j_fn.args.args[-1].arg.startswith("_nt_arena_"), ast.unparse(j_fn)
    assert not [n for n in ast.walk(j_fn) if isinstance(n, ast.List)], ast.unparse(j_fn)
    j = ast.unparse(j_fn)
    appended = [n for n in ast.walk(ast.parse(j)) if isinstance(n, ast.Call) and
                isinstance(n.func, ast.Attribute) and n.func.attr == "append" and
                isinstance(n.func.value, ast.Name) and
                n.func.value.id.startswith("_nt_records")]
    assert len(appended) == 2
    for call in appended:
        fields = call.args[0]
        assert isinstance(fields, ast.Tuple)
        assert not any(isinstance(f, ast.Name) and f.id == "W" or
                       isinstance(f, ast.Name) and f.id.startswith("W_") for f in fields.elts), j


def test_recursive_gradient_called_again_starts_from_zero() -> None:
    """The accumulator is made per call: two calls, and a vjp with two cotangents, give
    the Python backend's values (nothing left over from the call before)."""
    W = np.random.default_rng(5).uniform(-1.0, 1.0, (4, 4))
    g = tl.grad(walks4, backend="native")
    first = g(W)
    assert_same(first, g(W))
    out, vjp_fn = tl.vjp(walks4, W, backend="native")
    out_py, vjp_py = tl.vjp(walks4, W)
    assert_same(out_py, out)
    for cotangent in (1.0, -2.5, 0.0):
        assert_same(vjp_py(cotangent), vjp_fn(cotangent))


_LOWERED = textwrap.dedent("""\
    def B_f(_nt_ref, dout, r0, r1):
        _gadd_owned = _nt_gadd_owned
        if _nt_ref & 1 == 0:
            record = r0[_nt_ref >> 1]
            return _nt_element_sens_small(dout, record[0], record[1])
        else:
            record = r1[_nt_ref >> 1]
            d = None
            for k in range(3):
                t = B_f(record[2], dout, r0, r1)
                u = _nt_scatter_add_known(t, record[0], (record[1],), (dout,))
                d = _gadd_owned(d, u)
            return d
    """)


def test_accumulate_in_place_forms() -> None:
    """The forms rewritten: an element's sensitivity added into the accumulator, a
    loop's sum started from it and threaded through the recursive call (through an
    alias of `gadd_owned`); each is left alone where a name of the chain is read
    elsewhere, or the sum is not a recursive call's."""
    tree = ast.parse(_LOWERED)
    b = tree.body[0]
    assert isinstance(b, ast.FunctionDef)
    assert accumulate_in_place(tree, b)
    text = ast.unparse(tree)
    assert "return _nt_add_element(_nt_acc, dout, record[0], record[1])" in text
    assert "d = _nt_acc" in text and "t = B_f(record[2], dout, r0, r1, d)" in text
    assert "d = u" in text and "_gadd_owned(d" not in text
    for broken in (
            # (the callee's sensitivity read twice: not owned by the sum)
            _LOWERED.replace("d = _gadd_owned(d, u)", "d = _gadd_owned(d, u) + t"),
            # (the sum read elsewhere in the loop)
            _LOWERED.replace("for k in range(3):", "for k in range(3):\n"
                             "            dout = dout * d[0, 0]"),
            # (a sum of something else than the recursive call)
            _LOWERED.replace("t = B_f(record[2], dout, r0, r1)", "t = g(record[2])"),
            # (a return of another form)
            _LOWERED.replace("return d", "return d * 2.0")):
        tree = ast.parse(broken)
        b = tree.body[0]
        assert isinstance(b, ast.FunctionDef)
        assert not accumulate_in_place(tree, b), broken
        assert ast.unparse(tree) == ast.unparse(ast.parse(broken))
