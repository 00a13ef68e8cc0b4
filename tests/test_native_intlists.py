"""Recursions over lists of ints on the native backend (issue 15): read-only lists of ints
as int64 arrays (`backend/native_intlists.py`), the lifted records in Numba's own lists,
and a recursion's base case making no stack list. Results: the Python backend's (1e-12),
the gradients also against finite differences."""

from __future__ import annotations

import ast
import textwrap
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

from test_corpus import assert_same  # noqa: E402

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "0")


def _entry(transformed: Any, *args: Any) -> native.NativeFunction:
    entry = transformed._get(transformed.bind(args, {})).fn
    assert isinstance(entry, native.NativeFunction)
    return entry


def _source(transformed: Any, *args: Any) -> str:
    return native.native_source(transformed._get(transformed.bind(args, {})))


# --- programs not written for the determinant ----------------------------------------------


def esp(x, idx, k):
    """The elementary symmetric polynomial of degree k of x[idx]: take idx[0] or not."""
    if k == 0:
        return 1.0
    if len(idx) < k:
        return 0.0
    rest = idx[1:]
    return x[idx[0]] * esp(x, rest, k - 1) + esp(x, rest, k)


def esp3(x):
    return esp(x, list(range(x.shape[0])), 3)


def rotations(x, order, depth):
    """Reads the list from both ends and rotates it as it goes down."""
    if depth == 0:
        return x[order[-1]] * x[order[0]]
    turned = order[1:] + order[:1]
    total = 0.0
    for j in order:
        total = total + x[j] * x[order[-1 - depth % len(order)]]
    return 0.5 * total + rotations(x, turned, depth - 1)


def rotations_root(x):
    return rotations(x, [2, 0, 1, 3], 5)


def tours(D, here, left):
    """The shortest tour through the cities `left` from `here` (a soft minimum, so
    differentiable): a recursion removing one city per call."""
    if len(left) == 0:
        return D[here, 0]
    best = 0.0
    for k in range(len(left)):
        nxt = left[k]
        rest = left[:k] + left[k + 1:]
        best = best + np.exp(-(D[here, nxt] + tours(D, nxt, rest)))
    return -np.log(best)


def tours_root(D):
    return tours(D, 0, list(range(1, D.shape[0])))


def _fd(f: Any, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize(("fn", "make_args"), [
    (esp3, lambda rng: (rng.standard_normal(6),)),
    (rotations_root, lambda rng: (rng.standard_normal(4),)),
    (tours_root, lambda rng: (rng.uniform(0.5, 2.0, (5, 5)),)),
], ids=["esp", "rotations", "tours"])
def test_int_list_recursions_native_and_same(fn: Any, make_args: Any) -> None:
    """Recursions that slice, join and index lists of ints: the objective runs natively,
    the lists as int64 arrays, with the Python backend's result; the gradient gives the
    Python backend's values and matches finite differences. (These gradients fall back
    for reasons of their own, as before this lowering: a closure capturing a value that
    changes, `scatter_sens`, records of another shape; the determinant's is native.)"""
    args = make_args(np.random.default_rng(3))
    f = tl.jit(fn, backend="native")
    assert_same(tl.jit(fn)(*args), f(*args))
    assert _entry(f, *args).is_native, _entry(f, *args).fallback
    source = _source(f, *args)
    assert "np.arange(" in source or "np.array([" in source, source
    assert "_nt_ints_at(" in source, source
    assert_same(tl.grad(fn)(*args), tl.grad(fn, backend="native")(*args))
    np.testing.assert_allclose(tl.grad(fn, backend="native")(*args), _fd(fn, args[0]),
                               rtol=1e-6, atol=1e-8)


def test_lowered_lists_and_those_left() -> None:
    """Which lists the lowering makes arrays: those made of ranges, slices and joins and
    only read; not one that is appended to, returned, kept in a tuple, or the entry's
    argument (the caller's list), nor what flows into those."""
    source = textwrap.dedent("""\
        def root(x, given):
            a = f(x, list(range(4)))
            b = g(x, list(range(3)))
            return a + b + h(x, given)

        def f(x, cols):
            if len(cols) == 1:
                return x[cols[0]]
            rest = cols[1:] + cols[:1]
            return x[cols[-1]] + f(x, rest[1:])

        def g(x, cols):
            more = cols + [7]
            more.append(1)
            kept = (cols, 1.0)
            return x[more[0]] + x[kept[0][0]]

        def h(x, given):
            return x[given[0]]
        """)
    tree = native.lower_source(source, {}, "root")[0]
    functions = {n.name: ast.unparse(n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "f(x, np.arange(4))" in functions["root"]
    assert "g(x, list(range(3)))" in functions["root"]
    assert "rest = _nt_ints_join(cols[1:], cols[:1])" in functions["f"]
    assert "_nt_ints_at(cols, -1)" in functions["f"]
    assert "_nt_ints" not in functions["g"] and "_nt_ints" not in functions["h"]
    assert "_nt_ints_join" in functions and "_nt_ints_at" in functions


def out_of_range(x, cols):
    return x[cols[len(cols)]]


def out_of_range_root(x):
    return out_of_range(x, list(range(3)))


def negative_items(x, cols):
    return x[cols[-1]] + x[cols[-len(cols)]] + len(cols[5:]) + len(cols[-2:])


def negative_items_root(x):
    return negative_items(x, list(range(4)))


def test_index_out_of_range_raises_as_cpython() -> None:
    """An array in Numba reads past its end without a check; a list raises IndexError:
    the lowered read checks, and the call raises CPython's error (run again on the
    Python backend). Negative indices and slices past the end mean what they mean for a
    list."""
    x = np.arange(1.0, 6.0)
    f = tl.jit(out_of_range_root, backend="native")
    with pytest.raises(IndexError):
        f(x)
    with pytest.raises(IndexError):
        tl.jit(out_of_range_root)(x)
    g = tl.jit(negative_items_root, backend="native")
    assert_same(tl.jit(negative_items_root)(x), g(x))
    assert g(x) == negative_items_root(x)
    assert _entry(g, x).is_native
    assert ", -1)" in _source(g, x) and "_nt_ints_at(" in _source(g, x)


def test_records_in_numba_lists_and_no_stack_list_in_the_base_case(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The determinant's gradient: its records are kept in Numba's own lists (`[]`, typed
    by the append that never runs), and no call makes a list of its loop items: they go
    into one list for the run (`native_records.share_item_lists`), appended to only in
    the branch that loops."""
    from tapeless.opt import unwind

    # (the records kept where the backward pass is not fused into the forward one:
    # by default it is, `unwind.fuse_native`, tests/test_recursion_fuse.py)
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)
    from research_programs import det_laplace

    A = np.random.default_rng(12).standard_normal((4, 4))
    f = tl.grad(det_laplace, backend="native")
    assert_same(tl.grad(det_laplace)(A), f(A))
    assert _entry(f, A).is_native
    tree = ast.parse(_source(f, A))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    root = ast.unparse(functions["grad_det_laplace"])
    assert "_nt_records0_det_minor = []" in root and "_nt_List" not in root
    j = functions["J_det_minor"]
    top = [ast.unparse(s) for s in j.body]
    assert not any(s.startswith("_nt_items") for s in top), top
    assert "_nt_items" not in ast.unparse(j)
    branch = j.body[-1]
    assert isinstance(branch, ast.If)
    assert "_nt_arena_det_minor.append(" in ast.unparse(branch.orelse)
    assert "_nt_arena_det_minor.append(" not in ast.unparse(branch.body)
    assert "_nt_arena_det_minor = []" in root
    assert "np.arange(4)" in root


# --- comprehensions with a filter ----------------------------------------------------------


def filtered_squares(x, n):
    idx = [i for i in range(n) if i % 3 != 1]
    total = 0.0
    for i in idx:
        total = total + x[i] * x[i]
    return total


def filtered_squares_root(x):
    return filtered_squares(x, x.shape[0])


def kept_values(x, low):
    idx = list(range(x.shape[0]))
    idx = [i for i in idx if x[i] > low]
    total = 0.0
    for i in idx:
        total = total + x[i] * x[i]
    return total


@pytest.mark.parametrize(("fn", "args"), [
    (filtered_squares_root, (np.linspace(-1.0, 2.0, 7),)),
    (kept_values, (np.linspace(-1.0, 2.0, 7), 0.25)),
], ids=["indices", "rebinding"])
def test_filtered_comprehension_native(fn: Any, args: tuple) -> None:
    """`[y for x in xs if p(x)]` (a local function returning `[x]` or `[]` per item, in
    the generated code) runs natively as a loop appending to the list, with the Python
    backend's results; the gradient too gives the Python backend's values. A
    comprehension rebinding the name it reads keeps its order of evaluation."""
    f = tl.jit(fn, backend="native")
    assert_same(tl.jit(fn)(*args), f(*args))
    assert _entry(f, *args).is_native, _entry(f, *args).fallback
    assert_same(tl.grad(fn)(*args), tl.grad(fn, backend="native")(*args))


def test_det_laplace_filter_objective_native() -> None:
    """The determinant spelled with `enumerate`, a filtering comprehension and a
    conditional expression: its objective is native (its gradient falls back: its
    records keep each term's branch backpropagators, closures)."""
    from research_programs import det_laplace_filter

    A = np.random.default_rng(5).standard_normal((5, 5))
    f = tl.jit(det_laplace_filter, backend="native")
    assert_same(tl.jit(det_laplace_filter)(A), f(A))
    assert _entry(f, A).is_native, _entry(f, A).fallback
    assert "def comprehension" not in _source(f, A)
    g = tl.grad(det_laplace_filter, backend="native")
    assert_same(tl.grad(det_laplace_filter)(A), g(A))


def test_filter_rewrite_keeps_captured_values() -> None:
    """A comprehension's function captures `c` by a keyword default (its value where the
    function is made): rewritten as a loop where nothing binds `c` in between, left as
    it is where something does (the loop would read the new value; the closure is then
    refused, as before)."""
    source = textwrap.dedent("""\
        def f(xs, c):
            def comprehension(item, *, c=c):
                if item != c:
                    return [item]
                else:
                    return []
            n = len(xs)
            kept = [_y for _x in xs for _y in comprehension(_x)]
            return kept, n
        """)
    tree = native.lower_source(source, {}, "f")[0]
    assert "def comprehension" not in ast.unparse(tree)
    assert ".append(" in ast.unparse(tree)
    rebound = source.replace("n = len(xs)", "c = len(xs)")
    with pytest.raises(native._Refused, match="closure comprehension"):  # (left a closure)
        native.lower_source(rebound, {}, "f")
    namespace: dict[str, Any] = {}
    exec(ast.unparse(native.lower_source(source, {}, "f")[0]), namespace)  # noqa: S102
    assert namespace["f"]([1, 2, 3, 2], 2) == ([1, 3], 4)
