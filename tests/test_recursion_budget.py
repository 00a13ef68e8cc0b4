"""Checkpointed recursion (`opt.checkpoint.checkpoint_recursion`, `runtime.recursion_call`):
a lifted recursion's gradient keeps the records of `tl.config.loop_memory` bytes of calls
per recording region; a call past them leaves its arguments, and the backward pass makes
its record again. The gradients must be those of the recursion that keeps every record
(and of finite differences), on every budget; the memory must fall with the budget, down
to one call's record per level of the recursion with budget 0."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from gradcheck import elementwise_fd
from peak_memory import peak_bytes
from research_programs import det_laplace, det_laplace_filter

import tapeless as tl
from tapeless import runtime


@pytest.fixture(autouse=True)
def settings() -> Iterator[None]:
    """Restore the loop settings after a test."""
    mode, memory = tl.config.loop_checkpoint, tl.config.loop_memory
    yield
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory


def _grad(f, mode: str, memory: int = 1 << 30, **options):
    """`tl.grad(f)` compiled under these settings (read at the first call: made here)."""
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory
    return tl.grad(f, **options)


def tree(w, x, lo, hi):
    """A binary recursion whose records hold arrays (each leaf's and node's values)."""
    if hi - lo == 1:
        return np.tanh(w * x[lo])
    mid = (lo + hi) // 2
    left = tree(w, x, lo, mid)
    return np.sin(left) * tree(w, x, mid, hi) + left


def tree_loss(w, x):
    return np.sum(tree(w, x, 0, x.shape[0]))


BUDGETS = [0, 300, 3000, 1 << 30]


@pytest.mark.parametrize("memory", BUDGETS)
@pytest.mark.parametrize("f", [det_laplace, det_laplace_filter])
def test_determinant_on_every_budget(f, memory: int) -> None:
    A = np.random.default_rng(3).normal(size=(5, 5))
    plain = _grad(f, "never")(A)
    g = _grad(f, "auto", memory)
    np.testing.assert_allclose(g(A), plain, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(g(A), np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9)
    np.testing.assert_allclose(g(A), elementwise_fd(f, A), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("memory", BUDGETS)
def test_array_records_on_every_budget(memory: int) -> None:
    rng = np.random.default_rng(1)
    w, x = rng.normal(size=4), rng.normal(size=11)
    g = _grad(tree_loss, "auto", memory, argnums=(0, 1))
    plain = _grad(tree_loss, "never", argnums=(0, 1))(w, x)
    for got, want in zip(g(w, x), plain, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(g(w, x)[0], elementwise_fd(lambda v: tree_loss(v, x), w),
                               rtol=1e-6, atol=1e-8)


def test_the_source_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = np.eye(4)
    assert "recursion_call" in _grad(det_laplace, "auto", 100_000).source_for(A)
    assert "recursion_call" in _grad(det_laplace, "always").source_for(A)
    assert "recursion_call" not in _grad(det_laplace, "never", 0).source_for(A)
    # (under the default budget "auto" leaves the calls as they are: no counting)
    assert "recursion_call" not in _grad(det_laplace, "auto").source_for(A)


def test_memory_falls_with_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from tapeless.opt import unwind

    # (against the records the plain gradient keeps where its backward pass is not fused
    # into its forward one, `unwind._fuse_all`: by default it keeps none)
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)
    A = np.random.default_rng(0).normal(size=(7, 7))
    plain = peak_bytes(_grad(det_laplace, "never"), A)
    large = peak_bytes(_grad(det_laplace, "always"), A)
    some = peak_bytes(_grad(det_laplace, "auto", 30_000), A)
    none = peak_bytes(_grad(det_laplace, "auto", 0), A)
    # (the default budget keeps every record, as without checkpointing)
    assert 0.9 * plain < large < 1.1 * plain
    # About the depth times the budget, and one call's record per level with none: the
    # hand-written gradient (bench/control_handwritten.py) peaks at about 2 kB here.
    assert some < 7 * 30_000 and some < plain / 20
    assert none < 20_000 and none < plain / 100


@pytest.mark.parametrize("name", ["det_laplace", "permanent"])
def test_second_order_through_a_checkpointed_recursion(name: str) -> None:
    # (the permanent's is streamed under budget 0: `stream_recursion`, below)
    f = globals()[name]
    A = np.random.default_rng(5).normal(size=(4, 4))
    V = np.random.default_rng(6).normal(size=(4, 4))

    def inner(M):
        return np.sum(tl.grad(f)(M) * V)

    want = _grad(inner, "never")(A)
    np.testing.assert_allclose(_grad(inner, "auto", 0)(A), want, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(want, elementwise_fd(inner, A), rtol=1e-5, atol=1e-7)


def loud(x, n):
    if n == 0:
        return x
    print("level", n)
    return np.sin(loud(x, n - 1)) + loud(x * 0.5, n - 1)


def test_a_recursion_that_prints_runs_once(capsys: pytest.CaptureFixture[str]) -> None:
    g = _grad(lambda x: loud(x, 3), "auto", 0)
    assert g(0.3) == pytest.approx(_grad(lambda x: loud(x, 3), "never")(0.3), rel=1e-13)
    capsys.readouterr()
    g(0.3)
    assert capsys.readouterr().out.count("level") == 7
    assert "recursion_call" not in g.source_for(0.3)


def test_native_gives_the_same_gradient() -> None:
    pytest.importorskip("numba")
    A = np.random.default_rng(2).normal(size=(5, 5))
    g = _grad(det_laplace, "auto", 0)
    native = _grad(det_laplace, "auto", 0, backend="native")
    np.testing.assert_allclose(native(A), g(A), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(native(A), np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9)


def test_a_tape_is_made_again_in_a_region_of_its_own() -> None:
    """The counter is restored after a region, also when the recursion raises."""
    def fn(x, n):
        if n == 0:
            raise ValueError("stop")
        return runtime.recursion_call(fn, (x, n - 1))

    before = runtime._RECORDING.count, runtime._RECORDING.limit
    with pytest.raises(ValueError):
        runtime.recursion_enter(fn, 1000, (1.0, 5))
    assert (runtime._RECORDING.count, runtime._RECORDING.limit) == before


def chain(x, i):
    """A linear recursion whose levels run a loop: its backward pass is unwound into a
    loop (`opt.unwind`), its forward pass stays recursive."""
    if i == 0:
        return x[0]
    s = 0.0
    for k in range(3):
        s = s + np.sin(x[i] * k)
    return s * chain(x, i - 1)


def chain_loss(x):
    return chain(x, x.shape[0] - 1)


@pytest.mark.parametrize("memory", [0, 200, 5000])
def test_a_recursion_whose_backward_pass_was_unwound_is_left_as_it_is(memory: int) -> None:
    # (checkpointing its forward calls left tapes where the unwound backward loop reads
    # records: "'RecursionTape' object is not subscriptable")
    x = np.random.default_rng(9).standard_normal(9) * 0.5
    plain = _grad(chain_loss, "never")(x)
    np.testing.assert_allclose(_grad(chain_loss, "auto", memory)(x), plain, rtol=1e-13)
    np.testing.assert_allclose(plain, elementwise_fd(chain_loss, x), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("memory", [300, 900])
def test_a_small_budget_measures_the_record_size(memory: int) -> None:
    # (a region of fewer than CALLS_MEASURED calls never measured it: the 64-byte guess
    # stayed, and a region kept several times the budget)
    runtime._CALL_BYTES.clear()
    g = _grad(lambda x: tree_loss(1.3, x), "auto", memory)
    x = np.full(200, 0.3)
    g(x)
    assert runtime._CALL_BYTES and min(runtime._CALL_BYTES.values()) > 64


# --- budget 0: the backward pass run forward, one child at a time (`stream_recursion`) ---


def perm_minor(A, row, cols):
    """The permanent: Laplace's expansion without signs, the product in another order."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        rest = cols[k + 1:] + cols[:k]  # (a rotation: another order of the minors)
        a = A[row, cols[k]]
        total = total + perm_minor(A, row + 1, rest) * (a * a - 0.5)
    return total


def permanent(A):
    return perm_minor(A, 0, list(range(A.shape[0])))


def tours(x, i, left):
    """A sum over the orders of visiting `left` from i, of products of sines of the
    steps' entries (a vector, read at two places per step)."""
    if len(left) == 0:
        return x[i]
    total = 0.0
    for k in range(len(left)):
        j = left[k]
        total = total + np.sin(x[j] - x[i]) * tours(x, j, left[:k] + left[k + 1:])
    return total


def tours_loss(x):
    return tours(x, 0, list(range(1, x.shape[0])))


def two_arrays(A, W, row, cols):
    """Reads two arrays per step (two sensitivities: one accumulator is not enough)."""
    if len(cols) == 1:
        return A[row, cols[0]] * W[cols[0]]
    total = 0.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        total = total + W[k] * A[row, cols[k]] * two_arrays(A, W, row + 1, rest)
    return total


def is_even(x, n):
    if n == 0:
        return x
    total = 0.0
    for k in range(2):
        total = total + np.cos(x * k) * is_odd(x, n - 1)
    return total


def is_odd(x, n):
    if n == 0:
        return x * x
    return np.sin(is_even(x, n - 1))


def halved_minor(A, row, cols):
    """The filter spelling's conditional expression, each branch passing the total on as
    it is (its branch records' sensitivity of `total` proven so), the row in the test.
    (A branch scaling the term gives branch records of another form: not streamed.)"""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        term = A[row, c] * halved_minor(A, row + 1, [d for d in cols if d != c])
        total = total + term if (k + row) % 2 == 0 else total - term
    return total


def halved_filter(A):
    return halved_minor(A, 0, list(range(A.shape[0])))


def scaled_minor(A, row, cols):
    """A branch that scales the total (its sensitivity is not passed on as it is)."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        term = A[row, c] * scaled_minor(A, row + 1, [d for d in cols if d != c])
        total = total * 0.5 + term if k % 2 == 0 else total - term
    return total


def scaled_filter(A):
    return scaled_minor(A, 0, list(range(A.shape[0])))


def _streamed(g, *args) -> bool:
    return "_stream" in g.source_for(*args)


@pytest.mark.parametrize("f, make", [
    (permanent, lambda: np.random.default_rng(4).normal(size=(5, 5))),
    (det_laplace, lambda: np.random.default_rng(6).normal(size=(6, 6))),
    (det_laplace_filter, lambda: np.random.default_rng(7).normal(size=(5, 5))),
    (halved_filter, lambda: np.random.default_rng(8).normal(size=(5, 5)))])
def test_streamed_on_every_budget(f, make, monkeypatch: pytest.MonkeyPatch) -> None:
    """Budget 0 runs each level's backward loop forward (`R`, a stream of the level's
    children), the values by `V` (no records); the other budgets read V's values past
    their limits. Against the gradient keeping every record and finite differences."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    x = make()
    plain = _grad(f, "never")(x)
    for memory in (0, 500, 5000):
        g = _grad(f, "auto", memory)
        assert _streamed(g, x)
        np.testing.assert_allclose(g(x), plain, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(g(x), g(x), rtol=0, atol=0)
    np.testing.assert_allclose(plain, elementwise_fd(f, x), rtol=1e-6, atol=1e-8)


def test_streamed_value_and_grad() -> None:
    A = np.random.default_rng(7).normal(size=(5, 5))
    tl.config.loop_checkpoint, tl.config.loop_memory = "auto", 0
    value, grad = tl.value_and_grad(det_laplace)(A)
    np.testing.assert_allclose(value, np.linalg.det(A), rtol=1e-12)
    np.testing.assert_allclose(grad, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9)


@pytest.mark.parametrize("memory", [0, 3000])
def test_what_is_not_streamed_is_right(memory: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backward loop whose carried sensitivity changes per iteration (a conditional
    expression's branch scaling the total), two arrays' sensitivities, a mutual
    recursion: left to the tapes, the same gradients."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = np.random.default_rng(8).normal(size=(5, 5))
    g = _grad(scaled_filter, "auto", memory)
    assert not _streamed(g, A)
    np.testing.assert_allclose(g(A), _grad(scaled_filter, "never")(A), rtol=1e-13,
                               atol=1e-14)
    np.testing.assert_allclose(g(A), elementwise_fd(scaled_filter, A), rtol=1e-6, atol=1e-8)
    W = np.random.default_rng(9).normal(size=5)

    def two(A, W):
        return two_arrays(A, W, 0, list(range(5)))

    got = _grad(two, "auto", memory, argnums=(0, 1))(A, W)
    want = _grad(two, "never", argnums=(0, 1))(A, W)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[1], elementwise_fd(lambda v: two(A, v), W), rtol=1e-6,
                               atol=1e-8)
    x = np.random.default_rng(5).normal(size=6)  # (its B sums what its calls give back)
    np.testing.assert_allclose(_grad(tours_loss, "auto", memory)(x),
                               _grad(tours_loss, "never")(x), rtol=1e-13, atol=1e-14)
    mutual = _grad(lambda x: is_even(x, 5), "auto", memory)(0.7)
    assert mutual == pytest.approx(_grad(lambda x: is_even(x, 5), "never")(0.7), rel=1e-13)
    h = 1e-6
    assert mutual == pytest.approx((is_even(0.7 + h, 5) - is_even(0.7 - h, 5)) / (2 * h),
                                   rel=1e-6)





@pytest.mark.parametrize("f", [det_laplace, det_laplace_filter])
@pytest.mark.parametrize("n", [5, 6, 7])
def test_budget_zero_holds_the_path(f, n: int) -> None:
    """Budget 0: about the hand-written gradient's memory (which makes each minor's
    value again and holds one path), at every size."""
    A = np.random.default_rng(n).normal(size=(n, n))

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    try:
        from control_handwritten import det_laplace_grad as by_hand
    finally:
        sys.path.pop(0)
    g = _grad(f, "auto", 0)
    np.testing.assert_allclose(g(A), by_hand(A), rtol=1e-11, atol=1e-12)
    # (the filter spelling's levels each hold the comprehension's closure too, 0.15 kB:
    # 2.0-2.3x; main 2.2-3.1x)
    assert peak_bytes(g, A) < (1.5 if f is det_laplace else 2.5) * peak_bytes(by_hand, A)
