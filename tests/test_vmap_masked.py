"""Masked loops under `tl.vmap`: loops whose trip count differs across the batch give,
element by element, what a loop over the batch gives: elements finishing at different
trips (none, one, many), `break` and `continue`, flags read after the loop, loops inside
branches and inside loops, and nested `vmap`. Also what the masked loop no longer does
per trip (a stop flag is not carried)."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl


def stacked(fn, *columns):
    """`fn` applied element by element (Python, no tapeless), results stacked per
    output."""
    rows = [fn(*args) for args in zip(*columns, strict=True)]
    if isinstance(rows[0], tuple):
        return tuple(np.array([r[j] for r in rows]) for j in range(len(rows[0])))
    return np.array(rows)


def check(fn, *columns, exact=True):
    got = tl.vmap(fn)(*columns)
    want = stacked(fn, *[np.asarray(c).tolist() for c in columns])
    if not isinstance(want, tuple):
        got, want = (got,), (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if exact:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=0)
    return got


# --- programs ----------------------------------------------------------------------------

def halve_with_break(x):
    """A `while True` stopped by a `break`; the trip count is the element's."""
    k = 0
    while True:
        x = x * 0.5
        k += 1
        if x < 1.0:
            break
    return x, k


def break_and_continue(n):
    """`continue` skips multiples of 3, `break` stops at the first square past n; the
    loop's own condition ends the others."""
    i = 0
    s = 0
    while i < 40:
        i += 1
        if i % 3 == 0:
            continue
        s += i
        if i * i > n:
            break
    return i, s


def broke_or_ran_out(x, limit):
    """The `break` flag is read after the loop (a `while ... else`)."""
    k = 0
    while k < limit:
        k += 1
        x = x * 1.5
        if x > 10.0:
            break
    else:
        k = -k
    return k, x


def loop_in_a_branch(x):
    """A loop with a `break` in one branch, a plain loop in the other."""
    if x > 0:
        k = 0
        while True:
            k += 1
            x = x / 2.0
            if x < 0.5:
                break
        return x + k
    y = x
    while y < -0.5:
        y = y / 3.0
    return y


def nested_breaks(x):
    """A loop with a `break` inside a loop with a `break`: each flag its own."""
    total = 0.0
    outer = 0
    while True:
        outer += 1
        inner = 0
        while True:
            inner += 1
            total += x * inner
            if inner >= outer or total > 50.0:
                break
        if total > 20.0 or outer > 12:
            break
    return total, outer


def flag_read_in_body(x):
    """The stop flag is read in the body (it is False whenever the body runs) and set by
    a comparison, not only to True."""
    done = False
    k = 0
    while not done:
        if done:
            x = -1000.0
        k += 1
        x = x + 1.5
        done = x > 7.0
    return x, k, done


def int_flag(x):
    """A flag that is an int, not a bool: not a stop flag (the loop stays as it was)."""
    stop = 0
    k = 0
    while not stop:
        k += 1
        x = x * 2.0
        if x > 9.0:
            stop = 1
    return x, k, stop


def flag_maybe_unset(x):
    """A flag the body may set back to False: still a bool after each trip."""
    done = False
    k = 0
    while not done:
        k += 1
        done = k * x > 5.0
        if k > 100:
            done = True
    return k, done


def for_with_break(x, n):
    """A `for` over a range, left by a `break`."""
    acc = 0.0
    last = -1
    for i in range(n):
        acc += x * i
        last = i
        if acc > 10.0:
            break
    return acc, last


def condition_and_break(x):
    """A loop's own condition and a `break`: `False if flag else x > 1.0`."""
    k = 0
    while x > 1.0:
        x = x * 0.7
        k += 1
        if x * k > 20.0:
            break
    return x, k


def guarded_read(xs, t):
    """The condition reads `xs[i]`, which is out of range once the `break` is taken: it
    must not run for an element past its break."""
    i = 0
    while xs[i] < t:
        i += 1
        if i >= len(xs):
            break
    return i


def condition_and_break_in_a_branch(x, n):
    """`while c: ... break` under a branch's mask; `while 1` (a condition the same for
    every element) with a `break` in the other branch."""
    k = 0
    if x > 2.0:
        while k < n:
            k += 1
            x = x * 1.3
            if x > 30.0:
                break
    else:
        while 1:
            k += 2
            x = x + 0.75
            if x > 2.0 or k > n:
                break
    return x, k


def return_from_a_loop(x):
    i = 0
    while i < 10:
        i += 1
        if x * i > 5.0:
            return x * i
    return -x


def cube_root(a):
    x = a
    while True:
        step = (x * x * x - a) / (3.0 * x * x)
        x = x - step
        if abs(step) <= 1e-12 * abs(x):
            break
    return x


# --- tests ---------------------------------------------------------------------------------

def test_elements_finish_at_different_trips():
    # (0.5: done on the first trip; 1e6: on the twentieth)
    x = np.array([0.5, 1.5, 3.0, 1e6, 7.0, 0.9, 64.0])
    _, k = check(halve_with_break, x)
    assert len(set(k.tolist())) > 4


def test_break_and_continue_in_one_loop():
    n = np.array([0, 1, 5, 17, 50, 200, 2000, 3])
    i, _ = check(break_and_continue, n)
    assert i.max() == 40 and i.min() < 5  # (the loop's own end and early breaks)


def test_a_break_flag_read_after_the_loop():
    # (5.0 runs out after one trip, where one more would break: a finished element's
    # flag is the one it finished with)
    x = np.array([0.5, 2.0, 9.0, 11.0, 0.01, 3.0, 5.0, 5.0])
    lim = np.array([3, 5, 1, 4, 6, 0, 1, 2])
    k, _ = check(broke_or_ran_out, x, lim)
    assert (k < 0).any() and (k > 0).any()


def test_loops_inside_branches():
    check(loop_in_a_branch, np.array([3.0, -4.0, 0.1, -0.2, 100.0, -50.0, 0.0]))


def test_a_loop_with_a_break_inside_a_loop_with_a_break():
    check(nested_breaks, np.array([0.1, 0.7, 2.0, 5.0, 30.0, 0.01]), exact=False)


def test_a_stop_flag_read_in_the_body_and_set_by_a_comparison():
    _, _, done = check(flag_read_in_body, np.array([0.0, 6.0, -3.0, 7.5, 1.25]))
    assert done.dtype == bool


@pytest.mark.parametrize("fn", [int_flag, flag_maybe_unset])
def test_flags_that_are_not_plain_stop_flags(fn):
    check(fn, np.array([0.1, 1.0, 4.0, 9.5, 2.5]))


def test_a_for_left_by_a_break_at_a_trip_that_differs():
    # (the range is the same for every element; a `for` over a range whose bounds differ
    # and that a `break` leaves is not batched yet: the range is made per element)
    x = np.array([0.5, 3.0, 0.1, 20.0, 1.0, 0.0])
    for n in (0, 4, 30):
        acc, last = tl.vmap(for_with_break, in_axes=(0, None))(x, n)
        want = [for_with_break(float(v), n) for v in x]
        np.testing.assert_array_equal(acc, [w[0] for w in want])
        np.testing.assert_array_equal(last, [w[1] for w in want])


def test_nested_vmap_of_a_loop_with_a_break():
    grid = np.array([[0.5, 3.0, 1e4], [64.0, 0.9, 7.0]])
    x, k = tl.vmap(tl.vmap(halve_with_break))(grid)
    want = [[halve_with_break(float(v)) for v in row] for row in grid]
    np.testing.assert_array_equal(x, [[w[0] for w in row] for row in want])
    np.testing.assert_array_equal(k, [[w[1] for w in row] for row in want])


def test_a_masked_loop_inside_jit_and_under_a_branch_mask():
    # (the loop under `tl.jit` of the batched function; and batched where the
    # arguments' kinds are not known, inside compiled code)
    x = np.array([0.5, 1.5, 3.0, 1e6, -7.0])
    np.testing.assert_array_equal(tl.jit(tl.vmap(loop_in_a_branch))(x),
                                  [loop_in_a_branch(float(v)) for v in x])

    def mapped_in_code(xs):
        return tl.vmap(halve_with_break)(xs)[1] * 2

    np.testing.assert_array_equal(tl.jit(mapped_in_code)(x),
                                  [2 * halve_with_break(float(v))[1] for v in x])


def test_the_stop_flag_is_not_carried_by_the_masked_loop():
    # (a `break`'s flag is False for every active element as a trip starts: the body
    # reads the constant and the loop carries no flag, where nothing reads it after)
    a = np.abs(np.random.default_rng(1).normal(size=50)) * 100 + 0.01
    v = tl.vmap(cube_root)
    np.testing.assert_allclose(v(a), [cube_root(float(x)) for x in a], rtol=1e-15)
    loop = v.source_for(a).partition("while ")[2]
    assert "break" not in loop and "logical_or" not in loop, loop
    assert loop.count("where(") == 1, loop  # (x's select alone)


def test_a_loop_condition_and_a_break():
    x = np.array([0.5, 1.5, 3.0, 1e6, 7.0, 40.0, 2.0])
    _, k = check(condition_and_break, x)
    assert len(set(k.tolist())) > 3


def test_the_condition_does_not_run_past_a_break():
    xs = np.array([1.0, 3.0, 2.0, 8.0, 5.0])
    ts = np.array([0.5, 2.5, 4.0, 9.0, 100.0, 7.9])
    got = tl.vmap(guarded_read, in_axes=(None, 0))(xs, ts)
    np.testing.assert_array_equal(got, [guarded_read(list(xs), float(t)) for t in ts])
    rows = np.stack([xs, xs[::-1], xs * 2, xs - 3, xs, xs])
    got = tl.vmap(guarded_read)(rows, ts)
    np.testing.assert_array_equal(got, [guarded_read(list(r), float(t))
                                        for r, t in zip(rows, ts, strict=True)])
    # (every element breaks: the condition never runs after the first trip)
    big = np.array([50.0, 60.0])
    np.testing.assert_array_equal(tl.vmap(guarded_read, in_axes=(None, 0))(xs, big), [5, 5])


def test_a_return_from_inside_a_loop():
    check(return_from_a_loop, np.array([0.1, 0.3, 0.6, 1.0, 2.6, 6.0, -1.0]))


def test_a_condition_and_a_break_select_once():
    # (the condition runs for the elements whose flag is False, no select between the
    # flag's False and the condition, and no flag carried)
    x = np.linspace(0.5, 300.0, 40)
    v = tl.vmap(condition_and_break)
    check(condition_and_break, x)
    loop = v.source_for(x).partition("while count")[2].partition("\n    return")[0]
    assert loop and "break" not in loop and "UNBOUND" not in loop and "full(" not in loop, loop


def test_a_condition_and_a_break_under_a_branch_mask():
    x = np.array([0.5, 2.5, 3.0, 29.0, -4.0, 10.0, 1.9, 2.1])
    n = np.array([3, 10, 0, 4, 2, 1, 5, 20])
    check(condition_and_break_in_a_branch, x, n, exact=False)


def _steps_in_code(xs):
    return tl.vmap(condition_and_break)(xs)[1] + 1


def _reads_in_code(xs, ts):
    return tl.vmap(guarded_read, in_axes=(None, 0))(xs, ts) * 2


def test_a_condition_and_a_break_mapped_inside_compiled_code():
    x = np.array([0.5, 1.5, 3.0, 1e6, 7.0, 40.0, 2.0])
    np.testing.assert_array_equal(tl.jit(_steps_in_code)(x),
                                  [condition_and_break(float(v))[1] + 1 for v in x])
    xs = np.array([1.0, 3.0, 2.0, 8.0, 5.0])
    ts = np.array([0.5, 2.5, 4.0, 9.0, 100.0, 7.9])
    np.testing.assert_array_equal(tl.jit(_reads_in_code)(xs, ts),
                                  [2 * guarded_read(list(xs), float(t)) for t in ts])


# --- selects item by item where one side is an inner branch ------------------------------

def first_hit(v, scale):
    """A value first bound inside the loop (a placeholder until an element's trip binds
    it), an array per element, read after the loop under the `break`'s flag."""
    i = 0
    hit = v
    while i < 8:
        i += 1
        if np.sum(v) * i > scale:
            found = v * i
            hit = found + 1.0
            break
    return hit, i


def skip_then_stop(n):
    """A `continue` whose other side holds an inner `if` with a `break`: the state the
    inner `if` leaves alone (`i`), the state only one side changes (`s`), the flag."""
    i = 0
    s = 0.0
    t = 1
    while i < 30:
        i += 1
        if i % 4 == 1:
            t = t + 2
            continue
        s = s + i * 0.5
        if s > n:
            break
    return i, s, t


def test_a_value_first_bound_in_the_loop_with_elements_binding_it_at_different_trips():
    vs = np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [-1.0, 0.5, 0.1], [0.0, 0.0, 0.0],
                   [5.0, 1.0, 1.0]])
    scales = np.array([1.0, 4.0, 0.5, 3.0, 2.0])
    got = tl.vmap(first_hit)(vs, scales)
    for j, (v, sc) in enumerate(zip(vs, scales, strict=True)):
        hit, i = first_hit(v, sc)
        np.testing.assert_array_equal(got[0][j], hit)
        assert got[1][j] == i
    # (the loop's selects are NumPy's, not the generic pytree code)
    source = tl.vmap(first_hit).source_for(vs, scales)
    assert "tree_leaves" not in source.partition("while ")[2].partition("\n    return")[0], \
        source


def test_a_continue_beside_an_inner_break_selects_item_by_item():
    n = np.array([0.0, 1.0, 5.0, 17.0, 50.0, 200.0, 2000.0, 3.5])
    check(skip_then_stop, n)
    check(break_and_continue, np.array([0, 1, 5, 17, 50, 200, 2000, 3]))
    for fn, arg in ((skip_then_stop, n), (break_and_continue, n.astype(int))):
        source = tl.vmap(fn).source_for(arg)
        assert "tree_leaves" not in source and "_select_same" not in source, source
    # (every element stopped by the `break` at its first chance, and none: the
    # `continue`'s side alone, then the other's alone)
    check(skip_then_stop, np.array([-1.0, -2.0, -0.5]))
    check(skip_then_stop, np.array([1e9, 1e9]))
