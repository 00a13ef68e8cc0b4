"""What one trip of a masked loop under `tl.vmap` costs beyond the step itself, and that
it still computes what a loop over the batch does.

- The select that keeps a finished element's state (`batch_rules.kept_unless_every`)
  tests the two sides' shapes before `np.where`; where the kinds give both shapes
  (`np.full`, the logical operations, `np.shape(x)[0]` and a branch that raises have
  kinds), the test is folded away.
- Arithmetic into a temporary that nothing else reads is written in place in loops
  (`opt.updates.arithmetic_in_place`: `step = x * x; step *= x`), never into a value
  read again, an argument, or an array whose shape or dtype the result changes.

Programs not written for the benchmark: a bisection per element, a while loop with a
per-element tolerance and two carried values, values read after the loop of the
elements that finished first."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl


@pytest.fixture(autouse=True)
def _optimized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


def loop_over(fn, *columns):
    rows = [fn(*args) for args in zip(*[np.asarray(c).tolist() for c in columns],
                                      strict=True)]
    if isinstance(rows[0], tuple):
        return tuple(np.array([r[j] for r in rows]) for j in range(len(rows[0])))
    return np.array(rows)


def same(got, want):
    if not isinstance(want, tuple):
        got, want = (got,), (want,)
    for g, w in zip(got, want, strict=True):
        if np.asarray(w).dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=0)


def loop_text(source: str) -> str:
    return source.partition("while ")[2].partition("\n    return")[0]


# --- programs ------------------------------------------------------------------------

def bisect_log(c):
    """The logarithm of c > 0 by bisection on exp, to a tolerance relative to the
    bracket's lower end, with the trip count."""
    lo, hi = -40.0, 40.0
    n = 0
    while hi - lo > 1e-12 * (1.0 + abs(lo)) and n < 200:
        mid = (lo + hi) / 2.0
        if np.exp(mid) > c:
            hi = mid
        else:
            lo = mid
        n += 1
    return lo, n


def agm(a, b):
    """The arithmetic-geometric mean: two carried values, a per-element tolerance."""
    while abs(a - b) > 1e-14 * a:
        a, b = 0.5 * (a + b), np.sqrt(a * b)
    return a


def shrink_or_square(x):
    """Steps and the value when it stopped, both read after the loop (the elements that
    stop first keep theirs for many trips)."""
    n = 0
    while True:
        x = x / 1.5 if x > 2.0 else x * x * 0.5 + 0.4
        n += 1
        if x < 0.9 or n >= 40:
            break
    return x * n + 1.0, n


def tolerance_step(a, t):
    """Newton's iteration for 1/a, to a tolerance given per element."""
    x = 0.1 / a
    k = 0
    while abs(x * a - 1.0) > t:
        x = x * (2.0 - a * x)
        k += 1
    return x, k


# --- values ----------------------------------------------------------------------------

def test_a_bisection_per_element():
    c = np.array([0.001, 0.5, 1.0, 2.0, 27.0, 1000.0, 3.3e5, 7.0, 1e-9])
    got = tl.vmap(bisect_log)(c)
    want = loop_over(bisect_log, c)
    same(got, want)
    assert len(set(want[1].tolist())) > 1


def test_two_carried_values_to_a_tolerance_per_element():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.1, 50.0, 60), rng.uniform(0.1, 50.0, 60)
    same(tl.vmap(agm)(a, b), loop_over(agm, a, b))


def test_values_of_elements_that_finished_first_read_after_the_loop():
    x = np.array([0.1, 3.0, 10.0, 0.6, 7.5, 1.3, 1.44, 1.45, 50.0])
    got = tl.vmap(shrink_or_square)(x)
    want = loop_over(shrink_or_square, x)
    same(got, want)
    assert len(set(want[1].tolist())) > 3  # (they finish at different trips)


def test_a_tolerance_given_per_element():
    a = np.array([0.5, 2.0, 3.0, 9.0, 0.25, 1.5])
    t = np.array([1e-3, 1e-12, 1e-6, 1e-14, 0.5, 1e-9])
    same(tl.vmap(tolerance_step)(a, t), loop_over(tolerance_step, a, t))


# --- the select's shape test -------------------------------------------------------------

def test_a_select_of_known_shapes_tests_no_shapes():
    a = np.array([0.5, 2.0, 3.0, 9.0, 0.25, 1.5])
    t = np.full(6, 1e-9)
    v = tl.vmap(tolerance_step)
    same(v(a, t), loop_over(tolerance_step, a, t))
    loop = loop_text(v.source_for(a, t))
    assert "where(" in loop and "shape" not in loop and "RaggedBatch" not in loop, loop


def test_a_break_flag_loop_tests_no_shapes():
    x = np.array([0.1, 0.45, 0.9, 3.0, 10.0])
    v = tl.vmap(shrink_or_square)
    v(x)
    loop = loop_text(v.source_for(x))
    assert "shape" not in loop and "RaggedBatch" not in loop, loop


def test_kinds_of_filled_and_logical_arrays_fold_a_shape_test():
    def f(x):
        m = np.logical_not(np.full(np.shape(x)[0], False))
        m = np.logical_and(m, x > 0.0)
        if np.shape(m) != np.shape(x):
            raise ValueError("shapes differ")
        return np.where(m, x, 0.0)

    x = np.array([1.0, -2.0, 3.0])
    jf = tl.jit(f)
    np.testing.assert_array_equal(jf(x), [1.0, 0.0, 3.0])
    assert "raise" not in jf.source_for(x) and "!=" not in jf.source_for(x)


def test_shapes_that_differ_still_raise_where_kinds_say_so():
    def f(x, y):
        z = x * 2.0
        if np.shape(z) != np.shape(y):
            raise ValueError("shapes differ")
        return z + y

    with pytest.raises(ValueError, match="shapes differ"):
        tl.jit(f)(np.ones(3), np.ones(4))
    np.testing.assert_array_equal(tl.jit(f)(np.ones(3), np.ones(3)), [3.0, 3.0, 3.0])


# --- arithmetic in place ---------------------------------------------------------------

def test_a_masked_step_computes_into_its_temporaries():
    c = np.array([0.001, 0.5, 1.0, 2.0, 27.0, 1000.0])
    v = tl.vmap(tolerance_step)
    t = np.full(6, 1e-12)
    same(v(c, t), loop_over(tolerance_step, c, t))
    loop = loop_text(v.source_for(c, t))
    # (`x * (2.0 - a * x)`: `a * x` is a new array only this subtraction reads; `2.0 -
    # it` is not written in place, a subtraction from a constant)
    assert "*=" in loop or "-=" in loop or "+=" in loop, loop


def test_the_arguments_are_never_written_into():
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=40)) * 100 + 0.01
    b = rng.uniform(0.1, 50.0, 40)
    kept_a, kept_b = a.copy(), b.copy()
    tl.vmap(agm)(a, b)
    tl.vmap(tolerance_step)(a, np.full(40, 1e-9))
    np.testing.assert_array_equal(a, kept_a)
    np.testing.assert_array_equal(b, kept_b)


def saved_and_updated(x):
    out = []
    for _ in range(3):
        t = x * 2.0
        out.append(t)  # (t is read again: not written into)
        x = t + 1.0
    return out[0] + out[1] + out[2] + x


def widened(x, m):
    s = 0.0 * m
    for _ in range(2):
        t = x * 2.0  # (an (n,) array; t + m is (k, n): not into t)
        s = s + (t + m)
    return s


def int_to_float(n):
    s = 0.0 * n
    for k in range(3):
        t = n * 3  # (ints; t / 2 is float64: not into t)
        s = s + t / 2 + k
    return s


def commuted(x, c):
    y = x
    for _ in range(4):
        y = c + y * 0.5  # (into `y * 0.5`, the right operand)
    return y


def made_before_the_loop(x, n):
    t = x * 2.0  # (read by the loop's every trip: never written into)
    s = x
    for _ in range(n):
        s = t + s
        s = s * 0.5 + x * 3.0  # (`x * 3.0` is the same every trip: hoisted, or not)
    return s


def test_a_temporary_of_the_code_around_a_loop_is_not_written_into():
    x = np.array([1.0, 2.5, -3.0])
    for n in (0, 1, 4):
        np.testing.assert_array_equal(tl.jit(made_before_the_loop)(x, n),
                                      made_before_the_loop(x, n))


def test_in_place_arithmetic_only_where_no_one_can_tell():
    x = np.array([1.0, 2.5, -3.0])
    m = np.arange(12.0).reshape(4, 3)
    n = np.array([1, 2, 3, 7])
    c = np.array([0.25, -1.0, 3.0])
    for fn, args in ((saved_and_updated, (x,)), (widened, (x, m)), (int_to_float, (n,)),
                     (commuted, (x, c))):
        kept = [a.copy() for a in args]
        got = tl.jit(fn)(*args)
        want = fn(*args)
        np.testing.assert_array_equal(got, want)
        assert np.asarray(got).dtype == np.asarray(want).dtype
        for a, k in zip(args, kept, strict=True):
            np.testing.assert_array_equal(a, k)
    src = tl.jit(commuted).source_for(x, c)
    assert "+= c" in src, src  # (`y * 0.5` reads y: not into it)
    assert "/=" not in tl.jit(int_to_float).source_for(n)


def test_straight_line_code_keeps_its_expressions():
    def f(x, b):
        return np.tanh(x * 2.0 + b) * 3.0

    x = np.array([0.1, 0.2])
    src = tl.jit(f).source_for(x, x)
    assert "*=" not in src and "+=" not in src, src


# --- where `a += b` would change a value someone else reads (review) ---------------------


def _made_outside_the_inner_loop(x):
    out = 0.0
    for _ in range(2):
        u = x * 2.0 + 1.0
        k = 0
        while k < 3:
            out = out + np.sum(u * 2.0)
            k = k + 1
    return out


def _einsum_views(A):
    s = 0.0
    for _ in range(3):
        d = np.einsum("ii->i", A) + 1.0
        t = np.einsum("ij->ji", A) * 2.0
        s = s + np.sum(d) + np.sum(t) + np.sum(A)
    return s


@pytest.mark.parametrize("fn, arg", [(_made_outside_the_inner_loop, np.arange(3.0)),
                                     (_einsum_views, np.eye(2) + 0.5)])
def test_no_in_place_arithmetic_on_a_value_read_again_or_a_view(fn, arg):
    # (`u`, made in place in the outer loop, is read by every trip of the inner one: not
    # `u *= 2.0` there; NumPy's one-operand einsum is a view of its operand: not `+=`)
    before = arg.copy()
    assert tl.jit(fn)(arg) == pytest.approx(fn(before), rel=1e-14)
    np.testing.assert_array_equal(arg, before)
