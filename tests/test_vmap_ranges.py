"""`for` loops over ranges whose bounds differ across the batch, and indexing by an index
that differs across the batch (a gather), under `tl.vmap`: equal to a loop over the batch
(exact for ints, 1e-12 for floats), with `break`, zero-trip elements, nested loops,
per-example gradients, negative and out-of-range indices, 2-D tables, a batched table and
index; and the gather runs once on the whole batch, not per element."""

from __future__ import annotations

import numpy as np
import pytest

import tapeless as tl


def stacked(fn, *columns):
    rows = [fn(*args) for args in zip(*columns, strict=True)]
    return np.array(rows)


def check(fn, *columns, exact=False, vmapped=None):
    got = (vmapped or tl.vmap(fn))(*columns)
    want = stacked(fn, *[list(c) if isinstance(c, np.ndarray) and c.ndim > 1 else
                         np.asarray(c).tolist() for c in columns])
    if exact:
        np.testing.assert_array_equal(got, want)
        assert np.asarray(got).dtype.kind == np.asarray(want).dtype.kind
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    return got


XS = np.array([0.3, -1.2, 0.75, 2.0, 0.1, 1.5])
NS = np.array([0, 3, 1, 7, 2, 4])


# --- ranges ------------------------------------------------------------------------------

def sum_to(x, n):
    s = 0.0
    for i in range(n):
        s = s + x * i
    return s


def int_sum(n):
    s = 0
    for i in range(n):
        s = s + i * i
    return s


def start_stop_step(x, a, b, c):
    s = 0.0
    for i in range(a, b, c):
        s = s * 0.5 + x * i
    return s


def with_break(x, n):
    s = 0.0
    for i in range(n):
        if s > 1.0:
            break
        s = s + x * x * i
    return s


def int_break(a, b):
    k = 0
    for i in range(a, b):
        k = k + i
        if k > 6:
            break
    return k


def nested(x, n):
    s = 0.0
    for i in range(n):
        for j in range(i, n):
            s = s + x * (i + 1) * j
    return s


def nested_break(x, n):
    s = 0.0
    for i in range(n):
        for j in range(i):
            if j > 2:
                break
            s = s + x * j
    return s


def test_range_of_a_batched_stop():
    check(sum_to, XS, NS)
    check(int_sum, NS, exact=True)


def test_zero_trip_elements_and_an_all_zero_batch():
    check(sum_to, XS, np.array([0, 0, 5, 0, 0, 1]))
    check(sum_to, XS, np.zeros(6, dtype=np.int64))
    check(int_sum, np.array([-3, 0, 2]), exact=True)


def test_batched_start_stop_step():
    a = np.array([0, 5, -2, 3, 1, 0])
    b = np.array([4, 0, 6, 3, 9, -4])
    c = np.array([1, -2, 3, 1, 2, -1])
    check(start_stop_step, XS, a, b, c)
    check(start_stop_step, XS, a, b, np.full(6, 2))   # (the step alone unbatched)
    check(lambda x, a: start_stop_step(x, a, 7, 2), XS, a)


def test_break_inside():
    check(with_break, XS, NS)
    check(int_break, np.array([0, 3, -5, 2, 8]), np.array([2, 9, 9, 2, 20]), exact=True)
    # (unsigned and narrower bounds count as Python ints do)
    check(int_break, np.array([0, 3, 5], dtype=np.uint32), np.array([2, 9, 1], dtype=np.uint8),
          exact=True)


def test_nested_loops():
    check(nested, XS, NS)
    check(nested_break, XS, NS)


def test_bounds_unbatched_by_in_axes():
    got = tl.vmap(sum_to, in_axes=(None, 0))(0.7, NS)
    np.testing.assert_allclose(got, [sum_to(0.7, int(n)) for n in NS], rtol=1e-12)


def test_a_zero_step_raises_as_range_does():
    with pytest.raises(ValueError, match="must not be zero"):
        tl.vmap(start_stop_step)(XS[:2], np.array([0, 0]), np.array([3, 3]),
                                 np.array([1, 0]))


@pytest.mark.parametrize("fn", [sum_to, with_break, nested, nested_break])
def test_per_example_gradients_against_a_loop_of_grad(fn):
    got = tl.vmap(tl.grad(fn))(XS, NS)
    g = tl.grad(fn)
    want = [g(float(x), int(n)) for x, n in zip(XS, NS, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_range_objects_used_otherwise_still_made_per_element():
    # (a range whose bounds differ is kept as its bounds while only its length and
    # items are read; another use makes the range objects per element, which stack
    # where their lengths agree; where they differ, called from Python, the function
    # runs per element)
    def listed(a):
        r = range(a, a + 3)
        return len(r) + sum(r) + r[-1]

    check(listed, NS, exact=True)

    def counted(n):
        return sum(range(n))

    np.testing.assert_array_equal(tl.vmap(counted)(NS), [counted(int(n)) for n in NS])


# --- gathers -----------------------------------------------------------------------------

TABLE = np.array([1.5, -2.0, 3.25, 4.0, -0.5, 6.0, 7.75])
GRID = np.arange(35.0).reshape(7, 5) ** 1.5


def lookup(i):
    return TABLE[i]


def lookup_2d(i, j):
    return GRID[i, j]


def row_of(i):
    return GRID[i]


def lookup_col(i):
    return GRID[i, 2]


def table_walk(x, n):
    s = 0.0
    for i in range(n):
        s = s + TABLE[i] * x
    return s


def find_first(t):
    i = 0
    while TABLE[i] < t:
        i += 1
        if i >= 6:
            break
    return i


class Counting(np.ndarray):
    """An array that counts its indexings by a scalar (a per-element run's)."""

    scalar_reads = 0

    def __getitem__(self, index):
        if np.ndim(index) == 0 and not isinstance(index, (tuple, slice)):
            Counting.scalar_reads += 1
        return super().__getitem__(index)


def test_gather_from_an_unbatched_table():
    check(lookup, np.array([0, 3, 6, 1, 1, 5]))
    check(lookup_2d, np.array([0, 3, 6, 1]), np.array([4, 0, 2, 1]))
    check(row_of, np.array([0, 3, 6, 1]))
    check(lookup_col, np.array([0, 3, 6, 1]))


def test_negative_indices_wrap():
    check(lookup, np.array([-1, -7, 0, -3, 6]))
    check(lookup_2d, np.array([-1, -7, 2]), np.array([-5, 4, -1]))


def test_out_of_range_raises_index_error():
    with pytest.raises(IndexError):
        tl.vmap(lookup)(np.array([0, 7, 2]))
    with pytest.raises(IndexError):
        tl.vmap(lookup)(np.array([0, -8, 2]))
    with pytest.raises(IndexError):
        tl.vmap(lookup_2d)(np.array([0, 1]), np.array([1, 5]))


def test_gathers_in_loops_and_masked_loops():
    check(table_walk, XS, NS)
    # (an element past its `break` holds i = 6 ... the loop reads TABLE[i] only for the
    # active elements; none reads out of range)
    check(find_first, np.array([0.0, 2.0, 100.0, -3.0, 5.0, 7.0]), exact=True)


def test_table_passed_unbatched_by_in_axes():
    def pick(t, i):
        return t[i] * 2.0

    got = tl.vmap(pick, in_axes=(None, 0))(TABLE, np.array([2, -1, 0, 4]))
    np.testing.assert_array_equal(got, [TABLE[i] * 2.0 for i in [2, -1, 0, 4]])
    got = tl.vmap(pick, in_axes=(None, 0))(GRID, np.array([2, -1, 0]))
    np.testing.assert_array_equal(got, np.stack([GRID[i] * 2.0 for i in [2, -1, 0]]))


def test_batched_table_and_batched_index():
    def pick(t, i):
        return t[i]

    tables = np.arange(24.0).reshape(4, 6) ** 2
    idx = np.array([5, -2, 0, 3])
    got = tl.vmap(pick)(tables, idx)
    np.testing.assert_array_equal(got, [tables[k][idx[k]] for k in range(4)])
    cubes = np.arange(60.0).reshape(4, 5, 3)
    got = tl.vmap(pick)(cubes, idx % 5)
    np.testing.assert_array_equal(got, np.stack([cubes[k][idx[k] % 5] for k in range(4)]))

    def pick2(t, i, j):
        return t[i, j]

    j = np.array([2, 0, -1, 1])
    got = tl.vmap(pick2)(cubes, idx % 5, j)
    np.testing.assert_array_equal(got, [cubes[k][idx[k] % 5, j[k]] for k in range(4)])
    with pytest.raises(IndexError):
        tl.vmap(pick)(tables, np.array([0, 6, 1, 1]))


def test_gather_of_a_list_per_element_as_before():
    items = [1.5, 2, -3.0]

    def pick(i):
        return items[i]

    check(pick, np.array([0, 2, -1, 1]))


def test_per_example_gradient_through_a_gather():
    def f(x, i):
        return TABLE[i] * x * x + GRID[i % 7, 1] * x

    idx = np.array([0, 3, -1, 6, 2, 5])
    got = tl.vmap(tl.grad(f))(XS, idx)
    g = tl.grad(f)
    want = [g(float(x), int(i)) for x, i in zip(XS, idx, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_gather_runs_once_on_the_batch():
    counted = TABLE.view(Counting)

    def pick(t, i):
        return t[i]

    mapped = tl.vmap(pick, in_axes=(None, 0))
    idx = np.arange(50) % 7
    mapped(counted, idx)  # (compiles)
    Counting.scalar_reads = 0
    got = mapped(counted, idx)
    assert Counting.scalar_reads == 0
    np.testing.assert_array_equal(got, TABLE[idx])


def test_inside_compiled_code_and_nested_vmap():
    @tl.jit
    def both(xs, ns):
        return tl.vmap(with_break)(xs, ns) + tl.vmap(lookup)(ns % 7)

    want = np.array([with_break(float(x), int(n)) for x, n in zip(XS, NS, strict=True)])
    np.testing.assert_allclose(both(XS, NS), want + TABLE[NS % 7], rtol=1e-12, atol=1e-12)
    idx = np.array([[0, -1, 3], [6, 2, -7]])
    np.testing.assert_array_equal(tl.vmap(tl.vmap(lookup))(idx), TABLE[idx])
