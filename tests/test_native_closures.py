"""Branch backpropagators kept in records, and filters of int lists, on the native backend
(issue 15): the closures a conditional expression's derivative saves per step as tagged
tuples (`backend/native_closures.py`), and `[d for d in cols if p(d)]` over a list of ints
as an int64 buffer (`backend/native_intlists.py`). Results: the Python backend's (1e-12),
gradients also against finite differences."""

from __future__ import annotations

import ast
import textwrap
from typing import Any

import numpy as np
import pytest
from gradcheck import elementwise_fd

pytest.importorskip("numba")

from test_corpus import assert_same  # noqa: E402
from test_native_intlists import _entry, _own_cache, _source  # noqa: E402, F401

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402
from tapeless.backend.native_closures import (  # noqa: E402
    lift_branch_closures,
    lower_branch_selects,
)
from tapeless.runtime import ZERO  # noqa: E402


@pytest.fixture(autouse=True)
def _plain_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)



# --- programs not written for the determinant ----------------------------------------------


def signed_minors(A, row, cols):
    """A determinant-like recursion written here: the columns below and above the one
    taken, two filters joined; a conditional expression picks the sign, odd first."""
    if len(cols) == 1:
        return 2.0 * A[row, cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        below = [d for d in cols if d < c]
        above = [d for d in cols if d > c]
        rest = below + above
        term = A[row, c] * signed_minors(A, row + 1, rest)
        total = total - term if k % 2 == 1 else total + term
    return total


def signed_root(A):
    return signed_minors(A, 0, list(range(A.shape[0])))


def tours_filter(D, here, left):
    """A soft shortest tour through the cities `left` from `here`, removing the city it
    goes to with a filter; the conditional expression's branches differ in form, so the
    backward pass selects which branch's sensitivity it reads."""
    if len(left) == 0:
        return D[here, 0]
    best = 0.0
    for k, nxt in enumerate(left):
        rest = [c for c in left if c != nxt]
        cost = D[here, nxt] * tours_filter(D, nxt, rest)
        best = best + cost if k % 2 == 0 else best + 0.5 * cost * cost
    return best


def tours_root(D):
    return tours_filter(D, 0, list(range(1, D.shape[0])))


def branch_loop(x):
    """A loop (no recursion) whose conditional expression saves one of two branch
    backpropagators per step."""
    total = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        total = total * v if i % 2 == 0 else total + v
    return total


@pytest.mark.parametrize(("fn", "x"), [
    (signed_root, np.random.default_rng(1).standard_normal((5, 5))),
    (tours_root, np.abs(np.random.default_rng(1).standard_normal((5, 5))) + 0.5),
    (branch_loop, np.array([0.7, 0.2, 1.4, -0.3, 0.9, 0.6])),
], ids=["signed_minors", "tours", "loop"])
def test_branch_closures_native(fn: Any, x: np.ndarray) -> None:
    """The gradient runs natively with the Python backend's values and finite
    differences'."""
    g = tl.grad(fn, backend="native")
    expected = tl.grad(fn)(x)
    assert_same(expected, g(x))
    assert _entry(g, x).is_native, _entry(g, x).fallback
    np.testing.assert_allclose(expected, elementwise_fd(fn, x), rtol=1e-6, atol=1e-7)
    assert_same(tl.grad(fn)(x + 0.25), g(x + 0.25))  # (a second call)
    f = tl.jit(fn, backend="native")
    assert_same(tl.jit(fn)(x), f(x))
    assert _entry(f, x).is_native, _entry(f, x).fallback


def test_det_laplace_filter_gradient_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """The determinant spelled with a filter and a conditional expression: its gradient
    is native, its column lists int64 buffers (no list appended to), and it equals the
    Python backend's and `det(A) inv(A)^T`."""
    from research_programs import det_laplace_filter

    from tapeless.opt import unwind

    # (the records, closures in them, kept where the backward pass is not fused into
    # the forward one: by default it is, tests/test_recursion_fuse.py)
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)

    A = np.random.default_rng(5).standard_normal((5, 5))
    g = tl.grad(det_laplace_filter, backend="native")
    expected = tl.grad(det_laplace_filter)(A)
    assert_same(expected, g(A))
    assert _entry(g, A).is_native, _entry(g, A).fallback
    np.testing.assert_allclose(g(A), np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-10)
    source = _source(g, A)
    assert "_nt_call_closure" in source and ".append(_nt_c" not in source
    assert "_nt_ints_filter0_J_det_minor_filter = np.empty(len(cols), np.int64)" in source
    f = tl.jit(det_laplace_filter, backend="native")
    assert_same(tl.jit(det_laplace_filter)(A), f(A))
    assert ".append(" not in _source(f, A)


def optional_pieces(x):
    """A loop whose conditional expression reads x[i] on one branch only: the other
    gives x[i] no sensitivity, so the piece added at i is None or a number (optional
    where the branches meet)."""
    total = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        total = total + 2.0 * v * v if v > 0.5 else total - v
    return total


@pytest.mark.parametrize(("fn", "x"), [
    (optional_pieces, np.array([0.2, 0.7, 0.9, 0.1, 0.6, 1.3])),
    (optional_pieces, np.array([0.2, 0.1, -0.4])),  # (every piece None: no sensitivity)
], ids=["vector", "vector-none-taken"])
def test_optional_pieces_scatter_native(fn: Any, x: np.ndarray) -> None:
    """An optional sensitivity reaching `scatter_add` (None: that branch gave the element
    none) runs natively, None adding nothing, as the Python backend skips ZERO."""
    g = tl.grad(fn, backend="native")
    expected = tl.grad(fn)(x)
    assert_same(expected, g(x))
    assert _entry(g, x).is_native, _entry(g, x).fallback
    np.testing.assert_allclose(expected, elementwise_fd(fn, x), rtol=1e-6, atol=1e-7)
    assert_same(tl.grad(fn)(x * 1.5), g(x * 1.5))  # (a second call, other branches)


def test_scatter_add_optional_pieces_kernel() -> None:
    """The native `scatter_add` of optional pieces against `runtime.scatter_add`: an
    index given twice (its pieces summed, None skipped), an element index of a matrix,
    an accumulator given or not."""
    import numba

    from tapeless import runtime as rt

    native._register_overloads()
    add = native._nt_scatter_add

    @numba.njit
    def vector(acc, x, a, b, c, take):
        # (each piece Optional(float64): None where its flag is off)
        pa = a if take[0] else None
        pb = b if take[1] else None
        pc = c if take[2] else None
        return add(acc, x, (2, 0, 2), (pa, pb, pc))

    @numba.njit
    def element(x, a, b, take):
        pa = a if take[0] else None
        pb = b if take[1] else None
        return add(None, x, ((1, 0), (0, 2)), (pa, pb))

    x = np.arange(4.0)
    for take in [(1, 1, 1), (1, 0, 1), (0, 1, 0), (0, 0, 0), (0, 1, 1)]:
        ds = tuple(v if t else ZERO for v, t in zip((0.5, -1.25, 2.0), take, strict=True))
        for acc in (None, np.array([1.0, 2.0, 3.0, 4.0])):
            expected = rt.scatter_add(ZERO if acc is None else acc.copy(), x, (2, 0, 2), ds)
            got = vector(None if acc is None else acc.copy(), x, 0.5, -1.25, 2.0,
                         np.array(take, bool))
            assert_same(rt.to_structure(expected, x), got)
    M = np.zeros((2, 3))
    for take in [(1, 1), (0, 1), (1, 0)]:
        ds = tuple(v if t else ZERO for v, t in zip((0.5, -1.25), take, strict=True))
        expected = rt.scatter_add(ZERO, M, ((1, 0), (0, 2)), ds)
        assert_same(rt.to_structure(expected, M), element(M, 0.5, -1.25, np.array(take, bool)))


# --- the rewrites on modules written here ----------------------------------------------------


_TWO = textwrap.dedent("""\
    def J(x, n):
        stack = None
        for i in range(n):
            def B_a(d, *, x=x):
                return d * x
            if i % 2 == 0:
                y, b = x + 1.0, B_a
            else:
                t = x * 2.0
                def B_b(d, *, t=t, x=x):
                    return d * t + x
                y, b = t, B_b
            stack = (b, stack)
            x = y
        return x, stack

    def B(stack, d):
        while stack is not None:
            f = stack[0]
            d = f(d)
            stack = stack[1]
        return d
    """)


def test_closures_as_tagged_tuples() -> None:
    """Two closures meeting in one name: each `def` a tuple (tag, slots), the call through
    the value a call of the dispatcher; run as Python, the rewritten module gives the
    closures' results."""
    tree = ast.parse(_TWO)
    assert lift_branch_closures(tree) == (2, [])
    text = ast.unparse(tree)
    assert "B_a = (0, x, None)" in text and "B_b = (1, x, t)" in text
    assert "d = _nt_call_closure(d, f)" in text
    assert "def J__B_a(d, _nt_closure)" in text and "def J__B_b(d, _nt_closure)" in text
    expected: dict[str, Any] = {}
    exec(_TWO, expected)  # noqa: S102
    got: dict[str, Any] = {"_nt_unwrap": lambda v: v}
    exec(text, got)  # noqa: S102
    for n in range(5):
        x, stack = expected["J"](0.3, n)
        x2, stack2 = got["J"](0.3, n)
        assert x == x2 and expected["B"](stack, 1.5) == got["B"](stack2, 1.5)


def test_closures_left_with_why() -> None:
    """Nothing is rewritten where a closure's value goes elsewhere than a plain
    assignment, a module function is used as a value, or a call through a value passes
    another number of arguments; each closure is reported with why."""
    cases = {
        "used as an argument": _TWO.replace("stack = (b, stack)", "stack = (b, stack)\n"
                                            "        print(B_a)"),
        "used as a value": _TWO.replace("x = y\n", "x = y\n        g = B\n"),
        "other arguments": _TWO.replace("d = f(d)", "d = f(d, d)"),
        "lambda": _TWO.replace("x = y\n", "x = y\n        h = lambda v: v\n"),
        "without capturing": _TWO.replace("return d * x\n", "return d * x * i\n"),
    }
    for what, source in cases.items():
        tree = ast.parse(source)
        done, left = lift_branch_closures(tree)
        assert done == 0 and left, what
        assert ast.unparse(tree) == ast.unparse(ast.parse(source)), what
        assert all(isinstance(reason, str) and reason for _, reason in left), what


def test_fallback_names_the_closure() -> None:
    """Where a recursion's records keep a closure the lowering does not rewrite, the
    fallback says which and why, at the user's line."""
    source = textwrap.dedent("""\
        def J_f(x, n, k):
            c = n == 0
            if c:
                v, s = x, None
            else:
                t = J_f(x, n - 1, k)
                def B_g(d, *, x=x):
                    return d * x * k
                v, s = t[0] * x, (B_g, t[1])
            return v, (c, s)

        def B_f(record, d):
            if record[0]:
                return d
            else:
                return B_f(record[1][1], record[1][0](d))
        """)
    with pytest.raises(native._Refused, match="B_g reads k of J_f without capturing it"):
        native.lower_source(source, {}, "J_f")


def test_branch_selects_item_by_item() -> None:
    """`X = (None, d, None) if c else (None, None, d)` read as `Y = X[1]`, `Y[0]`: each
    item read is a selection of items (None for ZERO's); left where a name it reads is
    bound again before the read, or `Y` is read whole."""
    source = textwrap.dedent("""\
        def f(saved, d):
            s = (None, d, None) if saved[1] else (None, None, d)
            a = s[1]
            b = s[2]
            return g(a[0], b[1]), g(a[1], b[0])

        def g(p, q):
            return (0.0 if p is None or p is Z else p) + (0.0 if q is None or q is Z else q)
        """)
    tree = ast.parse(source)
    assert lower_branch_selects(tree) == 1
    text = ast.unparse(tree)
    assert "return (g(d[0] if saved[1] else None, None if saved[1] else d[1]), " \
        "g(d[1] if saved[1] else None, None if saved[1] else d[0]))" in text
    # (the original run with ZERO for None: an item of ZERO is ZERO)
    zero = source.replace("(None, d, None) if saved[1] else (None, None, d)",
                          "(Z, d, Z) if saved[1] else (Z, Z, d)")
    got: dict[str, Any] = {"Z": ZERO}
    expected: dict[str, Any] = {"Z": ZERO}
    exec(text, got)  # noqa: S102
    exec(zero, expected)  # noqa: S102
    for test in (True, False):
        assert got["f"]((0, test), (1.5, 2.5)) == expected["f"]((0, test), (1.5, 2.5))
    for changed in (source.replace("b = s[2]", "b = s[2]\n    d = None"),
                    source.replace("return g(", "return a, g(")):
        tree = ast.parse(changed)
        assert lower_branch_selects(tree) == 0
        assert ast.unparse(tree) == ast.unparse(ast.parse(changed))


# --- filters of int lists --------------------------------------------------------------------


def _lowered_as_python(source: str, up_to: int) -> str:
    """The module `source` lowered (its entry `f`), checked to give `f(n)` as `source`
    does run as Python for n in 1..up_to - 1; its text."""
    text = ast.unparse(native.lower_source(source, {}, "f")[0])
    namespace: dict[str, Any] = {"np": np}
    exec(text, namespace)  # noqa: S102
    expected: dict[str, Any] = {}
    exec(source, expected)  # noqa: S102
    for n in range(1, up_to):
        assert namespace["f"](n) == expected["f"](n)
    return text


def test_filter_lowered_where_its_list_is_an_int_list() -> None:
    """`L = []; for x in xs: if p(x): L.append(x)` over an int list is an int64 buffer
    (reused across the loop where `xs` is a parameter and the list is only read); over a
    list the caller passes, or appending another value, it stays a list."""
    source = textwrap.dedent("""\
        def f(n):
            return g(list(range(n)), 2) + h(list(range(n)))

        def g(cols, c):
            total = 0
            for i in range(len(cols)):
                kept = []
                for x in cols:
                    y = x
                    if y != cols[i]:
                        kept.append(y)
                rest = kept
                total = total + len(rest) * c + k(rest)
            return total

        def h(cols):
            out = []
            for x in cols:
                out.append(x * 2)
            return len(out)

        def k(r):
            return r[0] if len(r) > 0 else 0
        """)
    text = _lowered_as_python(source, 6)
    assert "_nt_ints_filter0_g = np.empty(len(cols), np.int64)\n    for i in" in text
    assert "kept = _nt_ints_filter0_g[:_nt_ints_filter0_g_n]" in text
    assert "out.append(x * 2)" in text  # (not the item: left a list)
    # (a list from the caller: its items may be anything)
    entry = source.replace("def f(n):\n    return g(list(range(n)), 2)",
                           "def f(n):\n    return g(n, 2)")
    assert "kept.append(y)" in ast.unparse(native.lower_source(entry, {}, "f")[0])


def test_filter_buffer_not_reused_where_the_list_is_kept() -> None:
    """A filtered list bound to a name the loop reads before filtering again keeps its own
    array per filter (the buffer would be written under it)."""
    source = textwrap.dedent("""\
        def f(n):
            return g(list(range(n)))

        def g(cols):
            total = 0
            prev = cols[:0]
            for i in range(len(cols)):
                kept = []
                for x in cols:
                    if x != cols[i] and len(prev) >= 0:
                        kept.append(x)
                total = total + len(kept) + len(prev)
                prev = kept
            return total
        """)
    text = _lowered_as_python(source, 5)
    assert "for i in range(len(cols)):\n        _nt_ints_filter0_g = np.empty" in text
