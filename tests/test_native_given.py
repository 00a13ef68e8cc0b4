"""`backend/native_given.py`: a parameter a function of the lowered module gives back
unchanged (the recursion's accumulator) is not given back, and names that only hold it
read it; and `_nt_ints_splice` (`native_intlists`) against Python's slices. The rewrite
is checked on hand-written modules run by CPython before and after (the same results),
and on recursions' native gradients against the Python backend."""

from __future__ import annotations

import ast
import textwrap

import numpy as np
import pytest

import tapeless as tl
from tapeless.backend import native_intlists
from tapeless.backend.native_given import give_back_nothing

# --- the rewrite on hand-written modules ----------------------------------------------------

ACCUMULATING = """
def entry(x, n):
    r = walk(x, 0, n, 1.0, np.zeros(3))
    return r[0] * 2.0, r[1]

def walk(x, i, n, d, acc):
    if i == n:
        acc[0] += d
        out, v = acc, 1.0
    else:
        v = 0.0
        buf = acc
        for k in range(2):
            t = walk(x, i + 1, n, d * x[k], buf)
            v = v + x[k] * t[1]
            got = t[0]
            got[k + 1] += d * t[1]
            buf = got
        out = buf
    return out, v
"""


def _run(source: str, *args):
    namespace = {"np": np}
    exec(compile(source, "<test>", "exec"), namespace)  # noqa: S102
    return namespace["entry"](*args)


def _rewritten(source: str) -> tuple[str, int]:
    tree = ast.parse(textwrap.dedent(source))
    n = give_back_nothing(tree, "entry")
    return ast.unparse(tree), n


def test_the_accumulator_is_not_given_back() -> None:
    after, n = _rewritten(ACCUMULATING)
    assert n == 1
    assert "return (None, v)" in after and "buf" not in after and "got" not in after, after
    assert "walk(x, i + 1, n, d * x[k], acc)" in after, after
    x = np.array([0.3, -1.2])
    for depth in range(4):
        before = _run(ACCUMULATING, x, depth)
        now = _run(after, x, depth)
        np.testing.assert_array_equal(before[0], now[0])
        assert before[1] == now[1]


@pytest.mark.parametrize("change", [
    # the parameter bound again: not the object it was given
    ("        acc[0] += d\n", "        acc = acc + 0.0\n        acc[0] += d\n"),
    # a result read whole
    ("    return r[0] * 2.0, r[1]\n", "    return r\n"),
    # the argument bound again between the call and the read
    ("            got = t[0]\n", "            buf = np.zeros(3)\n            got = t[0]\n"),
    # one return gives something else
    ("        out = buf\n", "        out = buf + 0.0\n"),
])
def test_not_rewritten_where_not_the_same_object(change) -> None:
    source = ACCUMULATING.replace(*change)
    assert source != ACCUMULATING
    after, n = _rewritten(source)
    assert n == 0 and "None" not in after, after


def test_the_entry_keeps_its_results() -> None:
    source = "def entry(acc):\n    acc[0] += 1.0\n    return acc, 2.0\n"
    assert _rewritten(source)[1] == 0


# --- the helper `_nt_ints_splice` -----------------------------------------------------------


def test_splice_is_python_slices_joined() -> None:
    namespace: dict = {"np": np}
    exec(native_intlists.HELPERS, namespace)  # noqa: S102
    helpers = [namespace["_nt_ints_splice"]]
    numba = pytest.importorskip("numba")
    helpers.append(numba.njit(boundscheck=True)(namespace["_nt_ints_splice"]))
    for n in range(5):
        a = list(range(10, 10 + n))
        for i in range(-n - 2, n + 3):
            for j in range(-n - 2, n + 3):
                want = a[:i] + a[j:]
                for splice in helpers:
                    buf = np.empty(2 * n + 1, np.int64)
                    got = splice(buf, np.array(a, np.int64), i, j)
                    assert list(buf[:got]) == want, (n, i, j)


# --- recursions' native gradients -------------------------------------------------------------


def minor(A, row, cols):
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    sign = 1.0
    for k in range(len(cols)):
        total = total + sign * np.sin(A[row, cols[k]]) * minor(A, row + 1,
                                                              cols[:k] + cols[k + 1:])
        sign = -sign
    return total


def sine_det(A):
    return minor(A, 0, list(range(A.shape[0])))


def chain(x, idx):
    """A recursion over index lists, two items dropped per call (an empty list: 0)."""
    if len(idx) == 1:
        return x[idx[0]]
    total = 0.0
    for k in range(len(idx)):
        total = total + x[idx[k]] * chain(x, idx[:k] + idx[k + 2:])
    return total


def chain_loss(x):
    return chain(x, list(range(x.shape[0])))


@pytest.mark.parametrize("fn, shape", [(sine_det, (5, 5)), (chain_loss, (7,))])
def test_native_gradient_gives_back_no_buffer(fn, shape) -> None:
    pytest.importorskip("numba")
    from tapeless.backend import native

    A = np.random.default_rng(5).normal(size=shape)
    g = tl.grad(fn, backend="native")
    compiled = g._get(g.bind((A,), {}))
    assert isinstance(compiled.fn, native.NativeFunction) and compiled.fn.fallback is None
    source = native.native_source(compiled)
    assert "return (None, " in source, source
    want = tl.grad(fn)(A)
    np.testing.assert_allclose(g(A), want, rtol=1e-12, atol=1e-13)
    value, grad = tl.value_and_grad(fn, backend="native")(A)
    assert value == pytest.approx(fn(A), rel=1e-12)
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-13)
