"""A join of lists of ints in a loop written again in place each time round on the native
backend (`backend/native_intlists._IntLists._reuse_buffers`): where the joined list is
held by one name that keeps no other reference to it, its int64 array is one buffer per
call, not one allocation per join. Programs written here, not for the determinant: a
permutation enumeration splicing a rotated rest, a recursion joining a join, a buffer
that grows; and lowered modules showing the joins left allocating (a `for` over the
list, the list bound to another name, a join reading its own target). Results: the Python
backend's (exact for ints, 1e-12 for floats), gradients also against finite differences."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

from test_corpus import assert_same  # noqa: E402
from test_native_intlists import _entry, _fd, _own_cache, _source  # noqa: E402,F401

import tapeless as tl  # noqa: E402
from tapeless.backend import native, native_intlists  # noqa: E402


@pytest.fixture(autouse=True)
def _optimized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


def orders(W, row, left):
    """A sum over the permutations of `left`, each spliced as the rest after item k
    followed by the rest before it (a rotation, not the determinant's order), of the
    weights W[row, item] along the permutation."""
    if len(left) == 0:
        return 1.0
    total = 0.0
    for k in range(len(left)):
        rest = left[k + 1:] + left[:k]
        total = total + np.sin(W[row, left[k]] + 0.1 * k) * orders(W, row + 1, rest)
    return total


def orders_root(W):
    return orders(W, 0, list(range(W.shape[0])))


def count_orders(items, depth):
    """How many sequences of `depth` distinct items there are whose items, rotated by one
    after each pick, keep the smallest first (an int, exact)."""
    if depth == 0:
        return 1
    n = 0
    for k in range(len(items)):
        rest = items[:k] + items[k + 1:]
        turned = rest[1:] + rest[:1]
        if len(turned) == 0 or turned[0] >= items[0]:
            n = n + count_orders(turned, depth - 1) + len(rest)
    return n


def count_root(x):
    return x[0] * 0.0 + count_orders(list(range(6)), 4)


def grow(x, cols, rounds):
    """A join in nested loops reading a display (left allocating), the last list read
    after the loops."""
    total = 0.0
    acc = cols[:0]
    for r in range(rounds):
        for j in range(len(cols)):
            acc = cols[j:] + [0, 1, 2, 3][:r] + cols[:j]
            total = total + x[acc[0]] * x[acc[-1]] + len(acc)
    return total + x[acc[len(acc) // 2]]


def grow_root(x):
    return grow(x, list(range(x.shape[0])), 4)


@pytest.mark.parametrize(("fn", "make_args", "written"), [
    (orders_root, lambda rng: (rng.uniform(-1.0, 1.0, (5, 5)),), "_nt_ints_fill("),
    (count_root, lambda rng: (rng.standard_normal(3),), "_nt_ints_splice("),
    (grow_root, lambda rng: (rng.standard_normal(5),), None),
], ids=["orders", "count", "grow"])
def test_reused_joins_native_and_same(fn: Any, make_args: Any, written: str | None) -> None:
    """The joins in loops write one buffer per call (`x[k + 1:] + x[:k]` by
    `_nt_ints_fill`, `x[:k] + x[k + 1:]` by `_nt_ints_splice`); one reading a display
    allocates; results are the Python backend's and the gradients match finite
    differences."""
    args = make_args(np.random.default_rng(5))
    f = tl.jit(fn, backend="native")
    assert_same(tl.jit(fn)(*args), f(*args))
    assert _entry(f, *args).is_native, _entry(f, *args).fallback
    source = _source(f, *args)
    if written is None:
        assert "_nt_ints_join(" in source and "_nt_ints_buf" not in source, source
    else:
        assert written in source, source
    g = tl.grad(fn, backend="native")
    assert_same(tl.grad(fn)(*args), g(*args))
    np.testing.assert_allclose(g(*args), _fd(fn, args[0]), rtol=1e-6, atol=1e-7)


def test_count_is_exact() -> None:
    """The int the recursion counts is CPython's, exactly."""
    x = np.ones(3)
    assert tl.jit(count_root, backend="native")(x) == count_root(x)
    assert tl.jit(count_root, backend="native")(x) == tl.jit(count_root)(x)


def spliced(x, cols):
    if len(cols) == 1:
        return x[cols[0]]
    total = 0.0
    for rnd in range(2):
        for k in range(len(cols)):
            rest = cols[:k] + cols[k + 1:]
            total = total + x[rest[0]] + spliced(x, rest) + len(rest[1:]) + rnd
    once = cols[1:] + cols[:1]
    return total + x[once[0]]


def kept_lists(x, cols):
    total = 0.0
    for k in range(len(cols)):
        a = cols[:k] + cols[k + 1:]
        for v in a:
            total = total + x[v]
        b = cols[k:] + cols[:k]
        kept = b
        total = total + x[kept[0]]
        c = cols[:1] + cols[1:]
        c = c[1:] + c[:1]
        total = total + x[c[0]]
    return total


def spliced_root(x):
    return spliced(x, list(range(4))) + kept_lists(x, list(range(4)))


MODULE = "\n\n".join(textwrap.dedent(inspect.getsource(f))
                       for f in (spliced_root, spliced, kept_lists))


def test_joins_reused_and_those_left() -> None:
    """Which joins write a buffer again: in a loop, held by one name read only by `len`,
    an int index, a slice or the name given to a module function or to another join;
    the buffer bound before the outermost loop, sized by the parameters the join reads.
    Left allocating: a join outside any loop, a `for` over its list, its list bound to
    another name, a join reading its own target (the join before it, whose list that
    one reads and replaces, is written again: its list is dead when it runs again)."""
    source = MODULE
    tree = native.lower_source(source, {}, "spliced_root")[0]
    functions = {n.name: ast.unparse(n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    f = functions["spliced"]
    assert "_nt_ints_buf0_spliced = np.empty(len(cols) + len(cols), np.int64)\n    for rnd in" \
        in f, f
    assert "_nt_ints_buf0_spliced_n = _nt_ints_splice(_nt_ints_buf0_spliced, cols, k, k + 1)" \
        "\n            rest = _nt_ints_buf0_spliced[:_nt_ints_buf0_spliced_n]" in f, f
    assert "once = _nt_ints_join(cols[1:], cols[:1])" in f, f
    g = functions["kept_lists"]
    assert "_nt_ints_splice(_nt_ints_buf1_kept_lists, cols, 1, 1)" in g, g
    assert "c = _nt_ints_join(c[1:], c[:1])" in g, g
    assert g.count("_nt_ints_splice(") == 1 and g.count("_nt_ints_join(") == 3, g


def test_splice_and_fill_as_lists() -> None:
    """`_nt_ints_splice(buf, x, i, j)` writes `x[:i] + x[j:]` for every `i` and `j`
    (negative, past the end, overlapping) and `_nt_ints_fill` `a + b`, compiled."""
    from numba import njit

    namespace: dict[str, Any] = {"np": np}
    exec(native_intlists.HELPERS, namespace)
    splice = njit(namespace["_nt_ints_splice"])
    fill = njit(namespace["_nt_ints_fill"])
    for n in range(5):
        x = list(range(10, 10 + n))
        for i in range(-n - 2, n + 3):
            for j in range(-n - 2, n + 3):
                buf = np.full(2 * n, -1, np.int64)
                m = splice(buf, np.array(x, np.int64), i, j)
                assert buf[:m].tolist() == x[:i] + x[j:], (n, i, j)
                buf = np.full(2 * n, -1, np.int64)
                m = fill(buf, np.array(x[i:], np.int64), np.array(x[:j], np.int64))
                assert buf[:m].tolist() == x[i:] + x[:j], (n, i, j)


def test_reused_programs_run_as_cpython() -> None:
    """The module above, compiled (where the optimizer's rewrites leave which joins
    written again): every join gives CPython's lists."""
    root = spliced_root
    x = np.random.default_rng(1).standard_normal(4)
    jitted = tl.jit(root, backend="native")
    assert_same(root(x), jitted(x))
    assert_same(tl.jit(root)(x), jitted(x))
    assert _entry(jitted, x).is_native, _entry(jitted, x).fallback
