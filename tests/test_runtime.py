"""The run-time helpers of derivative code: sums of scattered sensitivities."""

import numpy as np
import pytest

from tapeless import runtime as rt


def test_scatter_into_a_list_is_a_list_of_element_sensitivities():
    x = [np.ones(2), np.ones(2), np.ones(2)]
    d = np.array([1.0, 2.0])
    out = rt.scatter_sens(x, (2, 0, 2), (d, d, 3 * d))
    assert type(out) is list and out[1] is rt.ZERO
    np.testing.assert_array_equal(out[0], d)
    np.testing.assert_array_equal(out[2], 4 * d)
    assert rt.scatter_sens(x, (1,), (rt.ZERO,)) is rt.ZERO


def test_scatter_add_sums_like_gadd_and_adds_in_place():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    ds = [rng.normal(size=4) for _ in range(4)]
    acc = rt.scatter_add(rt.ZERO, x, (0, 2), (ds[0], ds[1]))
    np.testing.assert_array_equal(acc, rt.scatter_sens(x, (0, 2), (ds[0], ds[1])))
    expected = rt.gadd(acc.copy(), rt.scatter_sens(x, (2, 1), (ds[2], ds[3])))
    same = rt.scatter_add(acc, x, (2, 1), (ds[2], ds[3]))
    assert same is acc  # distinct int rows of a float array: added in place
    np.testing.assert_array_equal(same, expected)


def test_scatter_add_falls_back_where_in_place_would_differ():
    x = np.zeros((2, 3))
    acc = np.ones((2, 3))
    d = np.arange(3.0)
    # the same row twice: (acc + (d + d)) is the sum, not ((acc + d) + d)
    out = rt.scatter_add(acc, x, (1, 1), (d, d))
    assert out is not acc
    np.testing.assert_array_equal(out, acc + rt.scatter_sens(x, (1, 1), (d, d)))
    # a complex piece: a new array of the wider type
    out = rt.scatter_add(acc, x, (0,), (d * 1j,))
    assert out is not acc and out.dtype == np.complex128


def test_scatter_add_into_a_list_accumulator():
    x = [np.ones(2)] * 3
    acc = rt.scatter_add(rt.ZERO, x, (0,), (np.ones(2),))
    out = rt.scatter_add(acc, x, (0, 2), (np.ones(2), rt.ZERO))
    assert out is acc and out[2] is rt.ZERO
    np.testing.assert_array_equal(out[0], [2.0, 2.0])


def test_scatter_add_checks_every_index_and_piece():
    x = np.zeros((3, 2))
    d = np.arange(2.0)
    # the same row among three: a new array with (acc + (d + d + d))
    acc = np.ones((3, 2))
    out = rt.scatter_add(acc, x, (2, 0, 2), (d, d, d))
    assert out is not acc
    np.testing.assert_array_equal(out, acc + rt.scatter_sens(x, (2, 0, 2), (d, d, d)))
    # a float32 piece or accumulator, a Python float piece, a NumPy int index
    out = rt.scatter_add(acc, x, (0,), (d.astype(np.float32),))
    assert out is not acc
    acc32 = np.ones((3, 2), dtype=np.float32)
    assert rt.scatter_add(acc32, x, (0,), (d,)) is not acc32
    assert rt.scatter_add(acc, x, (np.int64(1),), (d,)) is not acc
    same = rt.scatter_add(acc, x, (1, 0), (2.0, rt.ZERO))
    assert same is acc
    np.testing.assert_array_equal(same, [[1.0, 1.0], [3.0, 3.0], [1.0, 1.0]])


def test_scatter_add_known_sums_like_scatter_add():
    """The optimizer's form where kinds prove scatter_add's tests: the same sums, to the
    bit, into arrays and lists, with indices given twice too."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3))
    items = [rng.normal(size=3) for _ in range(4)]
    for indices in [(0, 2), (3, 3), (1, 0, 1), (2,)]:
        ds = tuple(items[:len(indices)])
        for like in (x, list(x)):
            expected = rt.scatter_add(rt.ZERO, like, indices, ds)
            got = rt.scatter_add_known(rt.ZERO, like, indices, ds)
            again = rt.scatter_add(expected, like, (1, 2), (items[3], items[0]))
            got = rt.scatter_add_known(got, like, (1, 2), (items[3], items[0]))
            if isinstance(like, list):
                assert type(got) is list and len(got) == 4
                for a, b in zip(got, again, strict=True):
                    assert (a is rt.ZERO) == (b is rt.ZERO)
                    if a is not rt.ZERO:
                        np.testing.assert_array_equal(a, b)
            else:
                assert got.dtype == np.float64
                np.testing.assert_array_equal(got, again)


def test_matmul_tn_is_the_transposed_product_in_blocks():
    rng = np.random.default_rng(3)
    for a_shape, b_shape, block in [((5, 450, 33), (5, 450, 40), 150), ((450, 33), (450, 40), 200),
                                    ((2, 3, 401, 4), (401, 5), 200), ((7, 2), (7, 3), 10)]:
        a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
        want = np.swapaxes(a, -1, -2) @ b
        got = rt.matmul_tn(a, b, block)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_symbolic_zero_computes_as_a_zero():
    x = np.array([1.0, -2.0])
    for got in (rt.ZERO * x, x * rt.ZERO, x @ rt.ZERO, -rt.ZERO, rt.ZERO / 2.0,
                np.multiply(x, rt.ZERO), np.sum(rt.ZERO)):
        assert got is rt.ZERO
    for got in (rt.ZERO + x, x + rt.ZERO, x - rt.ZERO, np.add(rt.ZERO, x)):
        np.testing.assert_array_equal(got, x)
        assert got is not x  # (a sum is a new array: it may be updated in place)
    np.testing.assert_array_equal(rt.ZERO - x, -x)
    assert rt.ZERO + 2.5 == 2.5 and 2.5 - rt.ZERO == 2.5
    with pytest.raises(TypeError):
        x / rt.ZERO
    with pytest.raises(TypeError):
        np.exp(rt.ZERO)
