"""In-place updates, functionalized: `x[i] = v`, `x[i] += v`, `x[:, j] = v`, `x[mask] =
v`, `x[idx] = v` with integer arrays, `np.add.at`, `xs.append(v)`, `xs.extend(vs)`,
`xs[i] = v`, `d[k] = v`, `d.update(...)`, `a.fill(v)`, in loops, branches and nested
functions. Values against CPython, gradients against finite differences (first and
second order), optimizer on and off; the programs CPython would run differently (an
update another name, a container, a closure or the caller would see) are refused with
a located error that says what to do."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_directional

import tapeless as tl

# --- programs -----------------------------------------------------------------------


def item_and_slice(x):
    y = np.zeros(3)
    y[0] = x
    y[1:] += 2.0 * x
    y[2] *= x
    return np.sum(y * y)


def column_and_row(a, v):
    m = np.ones((3, 4))
    m[:, 1] = v
    m[0] = m[0] * a[0]
    m[1:, 2:] -= np.outer(v[1:], a[:2])
    return np.sum(np.sin(m))


def masked(x):
    y = x.copy()
    y[x > 0] = np.sin(x[x > 0])
    y[x <= 0] *= 3.0
    return np.sum(y ** 2)


def repeated_assignment(x):
    # Index 0 is named twice: the last value written stays (x[2]).
    y = np.zeros(4)
    y[np.array([0, 2, 0])] = x
    return np.sum(y * np.array([1.0, 2.0, 3.0, 4.0]))


def repeated_augmented(x):
    # `y[idx] += x` gathers, adds, then assigns: a repeated index keeps one sum.
    y = np.ones(4)
    y[np.array([0, 2, 0])] += x * x
    return np.sum(y * np.array([1.0, 2.0, 3.0, 4.0]))


def scatter_add(x):
    acc = np.zeros(4)
    np.add.at(acc, np.array([0, 1, 1, 3, 1]), x)
    return np.sum(acc ** 2)


def two_dim_index_in_loops(x):
    n = x.shape[0]
    m = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            m[i, j] = x[i] * x[j]
    return np.sum(m @ x)


def fill_and_extend(x):
    y = np.empty(3)
    y.fill(x)
    ys = [x]
    ys.extend([2.0 * x, x * x])
    ys.append(np.sum(y))
    ys[1] = ys[1] + 1.0
    ys[0] += 3.0
    return ys[0] * ys[1] + ys[2] * ys[3]


def dict_updates(x):
    d = {}
    d["a"] = x
    d["b"] = x * x
    d["a"] += 1.0
    d.update({"c": 3.0 * x})
    d.update(e=np.sin(x))
    return d["a"] * d["b"] + d["c"] * d["e"]


def in_branches(x):
    y = np.zeros(3)
    if x > 0:
        y[0] = x * x
    else:
        y[1] = -x
        y[2] = np.exp(x)
    y[2] += x
    return np.sum(y * np.array([1.0, 2.0, 3.0]))


def in_while_with_break(x):
    y = np.zeros(5)
    i = 0
    while True:
        if i >= 4:
            break
        y[i] = x ** (i + 1)
        i += 1
    return np.sum(y)


def in_nested_function(x):
    def embed(v, k):
        z = np.zeros(3)
        z[k] = v
        return z

    return np.sum(embed(x, 1) * embed(2.0 * x, 1) + embed(x, 2))


def rnn(w, xs):
    steps = xs.shape[0]
    hidden = np.zeros((steps, w.shape[0]))
    h = np.zeros(w.shape[0])
    for t in range(steps):
        h = np.tanh(w @ h + xs[t])
        hidden[t] = h
    return np.sum(hidden ** 2) + np.sum(hidden[-1])


def rnn_list(w, xs):
    hs = []
    h = np.zeros(w.shape[0])
    for t in range(xs.shape[0]):
        h = np.tanh(w @ h + xs[t])
        hs.append(h)
    return np.sum(np.stack(hs) ** 2)


def shift(x):
    y = x * 1.0
    y[1:] = y[:-1]
    return np.sum(y * np.arange(1.0, 1.0 + x.shape[0]))


def rebound_alias(x):
    # `z` stopped referring to y's object before the update: allowed.
    y = np.zeros(2)
    z = y
    z = np.ones(2)
    y[0] = x
    return np.sum(y) + np.sum(z) * x


def referenced_after_last_update(x):
    y = np.zeros(3)
    for i in range(3):
        y[i] = x * i
    out = (y, y[1:])
    return np.sum(out[0]) + np.sum(out[1] ** 2)


def list_of_rows(x):
    rows = [np.zeros(2), np.zeros(2)]
    rows[0] = x[:2]
    rows[1] = rows[0] * x[1:]
    return np.sum(np.stack(rows) ** 2)


def nested_loops_continue(x):
    m = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            if j > i:
                continue
            m[i, j] += x * (i + 1) * (j + 1)
    return np.sum(m ** 2)


def returns_from_loop(x):
    y = np.zeros(4)
    for i in range(4):
        y[i] = x * i
        if i == 2:
            return np.sum(y ** 2)
    return 0.0


def appends_in_branches(x):
    out = []
    i = 0
    while i < 4:
        if i % 2 == 0:
            out.append(x * x * i)
        else:
            out.append(-x)
        i += 1
    return sum(out) * out[1]


def leaves_a_loop_sharing_the_array(x):
    # The paths that leave a loop (return, break) are not followed by an iteration:
    # another name may refer to the array updated there.
    y = np.zeros(4)
    keep = np.ones(4)
    for i in range(4):
        y[i] = x * i
        if i == 1:
            keep = y
            break
    z = np.zeros(3)
    for i in range(3):
        z[i] = keep[i] * x
        if i == 1:
            return np.sum(z ** 2) + np.sum(y)
    return 0.0


def _buffer(n):
    return np.zeros((n, 2))


def _pick(n, c):
    if c:
        return np.ones(n)
    return np.zeros(n)


def made_by_a_helper(x):
    h = _buffer(3)
    h[0] = x
    h[2, 1] += x * x
    v = _pick(2, x > 0)
    v[1] = np.sin(x)
    return np.sum(h ** 2) + np.sum(v * h[0])


VECTOR = np.array([0.7, -0.4, 1.3])
PROGRAMS = [
    (item_and_slice, (0.8,)),
    (column_and_row, (np.array([0.5, -1.1, 0.3, 0.9]), VECTOR)),
    (masked, (VECTOR,)),
    (repeated_assignment, (VECTOR,)),
    (repeated_augmented, (VECTOR,)),
    (scatter_add, (np.array([0.5, -1.0, 2.0, 0.3, 1.5]),)),
    (two_dim_index_in_loops, (VECTOR,)),
    (fill_and_extend, (0.9,)),
    (dict_updates, (0.6,)),
    (in_branches, (0.7,)),
    (in_branches, (-0.7,)),
    (in_while_with_break, (0.9,)),
    (in_nested_function, (1.2,)),
    (rnn, (np.array([[0.5, -0.3], [0.2, 0.8]]), np.array([[0.1, 0.2], [-0.3, 0.5],
                                                         [0.7, -0.1]]))),
    (rnn_list, (np.array([[0.5, -0.3], [0.2, 0.8]]), np.array([[0.1, 0.2], [-0.3, 0.5]]))),
    (shift, (VECTOR,)),
    (rebound_alias, (0.4,)),
    (referenced_after_last_update, (0.4,)),
    (list_of_rows, (VECTOR,)),
    (nested_loops_continue, (0.5,)),
    (returns_from_loop, (0.7,)),
    (appends_in_branches, (0.3,)),
    (leaves_a_loop_sharing_the_array, (0.8,)),
    (made_by_a_helper, (0.6,)),
    (made_by_a_helper, (-0.6,)),
]
IDS = [f"{f.__name__}-{i}" for i, (f, _) in enumerate(PROGRAMS)]


@pytest.mark.parametrize(("fn", "args"), PROGRAMS, ids=IDS)
def test_values_as_cpython(fn, args, optimize: str) -> None:
    before = [np.copy(a) for a in args]
    assert tl.jit(fn)(*args) == pytest.approx(fn(*args), rel=1e-12)
    for a, b in zip(args, before, strict=True):
        np.testing.assert_array_equal(a, b)  # (the caller's arguments are unchanged)


@pytest.mark.parametrize(("fn", "args"), PROGRAMS, ids=IDS)
def test_gradients_against_finite_differences(fn, args, optimize: str) -> None:
    argnums = tuple(range(len(args)))
    grads = tl.grad(fn, argnums=argnums)(*args)
    check_directional(grads, fn, args, argnums, np.random.default_rng(0), what=fn.__name__)


def test_repeated_index_gradient_follows_the_value_written() -> None:
    g = tl.grad(repeated_assignment)(VECTOR)
    np.testing.assert_allclose(g, [0.0, 3.0, 1.0])
    g = tl.grad(repeated_augmented)(VECTOR)
    np.testing.assert_allclose(g, [0.0, 3.0 * 2 * VECTOR[1], 2 * VECTOR[2]])
    g = tl.grad(scatter_add)(np.array([0.5, -1.0, 2.0, 0.3, 1.5]))
    np.testing.assert_allclose(g, [1.0, 5.0, 5.0, 0.6, 5.0])


def test_integer_array_keeps_its_dtype() -> None:
    def truncates(x):
        y = np.zeros(3, dtype=int)
        y[0] = x
        y[1:] = 2.9
        return y

    out = tl.jit(truncates)(2.7)
    np.testing.assert_array_equal(out, truncates(2.7))
    assert out.dtype == truncates(2.7).dtype


def test_augmented_item_of_a_list_that_is_an_array_raises() -> None:
    # CPython's `rows[0] += 1.0` changes the array `a` in place (and `rows[0]` with it);
    # compiled code refuses rather than leave `a` unchanged.
    def shares(x):
        a = np.zeros(2)
        rows = [np.ones(2)]
        rows = rows + [a]
        rows[1] += x
        return np.sum(a)

    with pytest.raises(TypeError, match=r"changes that item in place"):
        tl.jit(shares)(1.0)
    assert shares(1.0) == 2.0


def test_item_assignment_on_a_number_raises_as_cpython() -> None:
    def sets_float(x):
        y = x + 1.0
        y[0] = 2.0
        return y

    with pytest.raises(TypeError, match="does not support item assignment"):
        tl.jit(sets_float)(1.0)


# --- second order ---------------------------------------------------------------------


def scalar_updates(x):
    y = np.zeros(4)
    y[1] = x ** 2
    y[np.array([0, 0])] += np.sin(x)
    np.add.at(y, np.array([2, 2, 3]), x * y[1])
    ys = [x]
    ys.append(y[2] * x)
    d = {"k": ys[1]}
    d["k"] *= x
    return np.sum(y ** 2) + d["k"]


def scalar_rnn(a):
    hidden = np.zeros(4)
    h = 0.5
    for t in range(4):
        h = np.tanh(a * h + 0.1 * t)
        hidden[t] = h
    return np.sum(hidden ** 2)


@pytest.mark.parametrize("fn, x", [(scalar_updates, 0.7), (scalar_rnn, 0.9),
                                   (item_and_slice, 0.8), (in_branches, 0.6),
                                   (fill_and_extend, 0.9), (dict_updates, 0.6)])
def test_second_derivative(fn, x, optimize: str) -> None:
    d2 = tl.grad(tl.grad(fn))(x)
    d1 = tl.grad(fn)
    h = 1e-4
    numeric = (-d1(x + 2 * h) + 8 * d1(x + h) - 8 * d1(x - h) + d1(x - 2 * h)) / (12 * h)
    assert d2 == pytest.approx(numeric, rel=1e-6, abs=1e-8)


# --- refused: CPython would show the change elsewhere -----------------------------------

G = np.zeros(3)


def mutates_argument(a, v):
    a[0] = v
    return np.sum(a)


def appends_to_argument(xs, v):
    xs.append(v)
    return xs


def mutates_alias(x):
    y = np.zeros(3)
    z = y
    y[0] = x
    return np.sum(z)


def mutates_viewed(x):
    y = np.zeros((2, 3))
    row = y[0]
    y[0, 1] = x
    return np.sum(row)


def mutates_contained(x):
    y = np.zeros(2)
    box = [y]
    y[0] = x
    return np.sum(box[0])


def mutates_captured(x):
    y = np.zeros(2)
    g = lambda: np.sum(y)  # noqa: E731
    y[0] = x
    return g()


def alias_across_iterations(x):
    y = np.zeros(2)
    prev = np.zeros(2)
    for i in range(2):
        y[i] = x
        prev = y
    return np.sum(prev)


def alias_on_continue(x):
    y = np.zeros(3)
    keep = np.zeros(3)
    for i in range(3):
        if i == 1:
            keep = y
            continue
        y[i] = x
    return np.sum(keep)


def _passthrough(a):
    return a


def mutates_what_a_helper_passed_on(x, a):
    b = _passthrough(a)
    b[0] = x
    return b


def mutates_global(x):
    y = G
    y[0] = x
    return np.sum(y)


def mutates_item(xs, v):
    a = xs[0]
    a[0] = v
    return np.sum(a)


def mutates_enclosing(x):
    y = np.zeros(2)

    def inner(v):
        y[0] = v
        return np.sum(y)

    return inner(x)


def stores_itself(x):
    xs = [x]
    xs.append(xs)
    return xs[0]


def nested_item(x):
    m = [[0.0, 0.0]]
    m[0][1] = x
    return m


REFUSED = [
    (mutates_argument, "a[0] = v", r"changes the argument 'a' in place", r"a = a\.copy\(\)"),
    (appends_to_argument, "xs.append", r"changes the argument 'xs' in place", "copy"),
    (mutates_alias, "y[0] = x", r"but 'z' refers to the same object", r"z = y\.copy\(\)"),
    (mutates_viewed, "y[0, 1]", r"but 'row' refers to the same object", "copy"),
    (mutates_contained, "y[0] = x", r"but 'box' refers to the same object", "copy"),
    (mutates_captured, "y[0] = x", r"but 'g' refers to the same object", "copy"),
    (alias_across_iterations, "y[i] = x",
     r"changed in place in the loop, but at the end of an iteration 'prev' refers",
     r"prev = y\.copy\(\)"),
    (alias_on_continue, "y[i] = x", r"at the end of an iteration 'keep' refers", "copy"),
    (mutates_global, "y[0] = x", r"may refer to an object this function did not make",
     r"y = y\.copy\(\)"),
    (mutates_item, "a[0] = v", r"may refer to an object this function did not make", "copy"),
    (mutates_what_a_helper_passed_on, "b[0] = x",
     r"may refer to an object this function did not make", r"b = b\.copy\(\)"),
    (mutates_enclosing, "y[0] = v", r"a variable of an enclosing function", "copy"),
    (stores_itself, "xs.append", r"stores 'xs' .* into itself", "copy"),
    (nested_item, "m[0][1]", r"supported on a variable", r"x\[i, j\] = v"),
]


@pytest.mark.parametrize(("fn", "anchor", "message", "hint"), REFUSED,
                         ids=[r[0].__name__ for r in REFUSED])
def test_refused_with_a_located_error(fn, anchor: str, message: str, hint: str) -> None:
    import inspect
    import re

    with pytest.raises(tl.CompileError) as info:
        tl.jit(fn).source  # noqa: B018  (compiling is what raises)
    err = info.value
    lines, first = inspect.getsourcelines(fn)
    line = next(first + i for i, text in enumerate(lines) if anchor in text)
    assert err.loc is not None and err.loc.line == line, str(err)
    assert err.loc.col == lines[line - first].index(anchor), str(err)
    assert re.search(message, err.message), err.message
    assert re.search(hint, err.hint), err.hint


def test_refused_under_grad_too() -> None:
    with pytest.raises(tl.CompileError, match="changes the argument 'a' in place"):
        tl.grad(mutates_argument)(np.zeros(3), 1.0)


# --- the optimizer ------------------------------------------------------------------------


def test_optimized_updates_assign_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where nothing else can see the array (made by the function, read by no one but
    the next update), the optimized program assigns into it: filling `hidden` row by
    row is not T copies of it."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    w = np.array([[0.5, -0.3], [0.2, 0.8]])
    xs = np.array([[0.1, 0.2], [-0.3, 0.5], [0.7, -0.1]])
    forward = tl.jit(rnn).source_for(w, xs)
    assert "index_update_inplace(hidden, t, h)" in forward, forward
    assert "_rt.index_update(" not in forward
    gradient = tl.grad(rnn).source_for(w, xs)
    assert "index_update_inplace(" in gradient, gradient
    straight = tl.jit(item_and_slice).source_for(0.8)
    assert "index_update(" not in straight.replace("index_update_inplace(", ""), straight
    # The values (checked against CPython above) do not depend on it.
    assert tl.jit(rnn)(w, xs) == pytest.approx(rnn(w, xs), rel=1e-13)


def test_an_array_read_apart_from_its_update_is_copied(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    # `doubled` does not feed the second update: nothing orders its read of `y` before
    # the write, so that update copies. (`y[1:] = y[:-1]` reads y for the update
    # itself, which may then write in place: NumPy copies overlapping memory first.)
    def reads_apart(x):
        y = np.zeros(3)
        y[0] = x
        doubled = y * 2.0
        y[1] = x
        y[1:] = y[:-1]
        return np.sum(doubled) + np.sum(y * np.array([1.0, 2.0, 3.0]))

    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = tl.jit(reads_apart).source_for(0.5)
    assert "index_update(y, 1, x)" in source, source
    assert "index_update_inplace(" in source, source
    assert tl.jit(reads_apart)(0.5) == reads_apart(0.5)
