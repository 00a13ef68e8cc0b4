"""Compaction of masked loops under `tl.vmap` (`VTransform._compacted_trip`, on where
TAPELESS_VMAP_COMPACT_LEAST gives the least width): where at most half the elements are
still active after a trip, the loop goes on with theirs alone, gathered (state and the
batched values the loop reads from outside), each finished element's state put back
into the batch-wide results. The results equal a loop over the batch of the unbatched
function (exact for ints and bools, 1e-12 for floats) and the masked loop's."""

from __future__ import annotations

import numpy as np
import pytest
import vmap_programs as vp
from test_vmap_loop_steps import loop_over, same

import tapeless as tl


@pytest.fixture(autouse=True)
def _compacting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    monkeypatch.setenv("TAPELESS_VMAP_COMPACT_LEAST", "1")


cube_root = vp.cube_root_with_break


def collatz(n):
    steps = 0
    biggest = n
    while n != 1:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
        biggest = max(biggest, n)
        steps += 1
    return steps, biggest


def first_power_over(b, limit):
    k = 0
    p = 1.0
    for i in range(200):
        if i % 3 == 2:
            continue
        p = p * b
        k += 1
        if p > limit:
            return k, p
    return -1, p


def nested(n):
    total = 0
    i = 0
    while i < n:
        j = 0
        while j * j < i:
            total += j
            j += 1
            if total > 500:
                break
        i += 1
    return total, i


def loops_twice(x):
    y = x
    while y > 1.0:
        y = y / 2.0
    k = 0
    while y < 10.0:
        y = y * 1.5
        k += 1
    return y, k


def scaled_root(a, tol):
    x = a
    while abs(x * x - a) > tol * a:
        x = 0.5 * (x + a / x)
    return x


def masked_result(fn, *args, **kw):
    import os
    old = os.environ.pop("TAPELESS_VMAP_COMPACT_LEAST")
    try:
        return tl.vmap(lambda *xs: fn(*xs), **kw)(*args)
    finally:
        os.environ["TAPELESS_VMAP_COMPACT_LEAST"] = old


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_elements_finishing_at_different_trips(n):
    a = np.abs(np.random.default_rng(n).normal(size=n)) * 100 + 0.01
    got = tl.vmap(cube_root)(a)
    same(got, loop_over(cube_root, a))
    same(got, masked_result(cube_root, a))


def test_the_loop_compacts():
    src = tl.vmap(cube_root).source_for(np.linspace(0.5, 1e6, 50))
    assert "index_update" in src and "width" in src


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_integer_state_and_a_branch_in_the_body(n):
    xs = np.random.default_rng(n).integers(1, 3000, size=n)
    same(tl.vmap(collatz)(xs), loop_over(collatz, xs))


@pytest.mark.parametrize("n", [1, 2, 300])
def test_break_continue_and_return_inside_a_loop(n):
    rng = np.random.default_rng(n)
    b = rng.uniform(1.01, 3.0, size=n)
    limit = rng.uniform(1.0, 1e6, size=n)
    same(tl.vmap(first_power_over)(b, limit), loop_over(first_power_over, b, limit))


@pytest.mark.parametrize("n", [1, 2, 200])
def test_nested_loops_with_a_break(n):
    xs = np.random.default_rng(n).integers(0, 60, size=n)
    same(tl.vmap(nested)(xs), loop_over(nested, xs))


def test_two_loops_one_after_the_other():
    xs = np.exp(np.random.default_rng(3).uniform(-5, 12, size=500))
    same(tl.vmap(loops_twice)(xs), loop_over(loops_twice, xs))


def test_an_unbatched_argument_read_in_the_loop():
    a = np.exp(np.random.default_rng(4).uniform(-10, 20, size=400))
    got = tl.vmap(scaled_root, in_axes=(0, None))(a, 1e-12)
    same(got, loop_over(lambda x: scaled_root(x, 1e-12), a))
    tols = np.full(400, 1e-9)
    tols[::3] = 1e-14
    same(tl.vmap(scaled_root)(a, tols), loop_over(scaled_root, a, tols))


def test_a_loop_inside_a_branch_mask():
    def f(x):
        if x > 0.5:
            while x < 1e4:
                x = x * 1.7
        return x

    xs = np.random.default_rng(5).uniform(0.0, 1.0, size=300) * np.exp(
        np.random.default_rng(6).uniform(0, 8, size=300))
    same(tl.vmap(f)(xs), loop_over(f, xs))


def test_inside_compiled_code():
    @tl.jit
    def g(a):
        return tl.vmap(lambda x: cube_root(x)[0])(a) * 2.0

    a = np.exp(np.random.default_rng(7).uniform(-6, 14, size=256))
    same(g(a), 2.0 * loop_over(lambda x: cube_root(x)[0], a))


def test_vmap_of_grad_through_the_loop():
    def f(a):
        return cube_root(a)[0] * a

    a = np.exp(np.random.default_rng(8).uniform(-3, 9, size=64))
    want = np.array([tl.grad(f)(float(x)) for x in a])
    same(tl.vmap(tl.grad(f))(a), want)


def test_grad_of_vmap_through_the_loop():
    def loss(a):
        return np.sum(tl.vmap(lambda x: cube_root(x)[0])(a) ** 2)

    a = np.exp(np.random.default_rng(9).uniform(-3, 9, size=64))
    want = np.array([tl.grad(lambda x: cube_root(x)[0] ** 2)(float(x)) for x in a])
    np.testing.assert_allclose(tl.grad(loss)(a), want, rtol=1e-10)
