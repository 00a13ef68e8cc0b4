"""A recursive backward pass given the array to add into (`tapeless.opt.lift.accumulate_down`,
Python backend): the lifted backpropagator of a recursion reading elements of a small
float64 array takes the accumulator as a parameter, adds `acc[i] += d` in place and passes
it to its recursive calls; the gradient's entry makes the zeros once. Checked on
recursions not written for the benchmarks, against the same program with the rewrite off
(1e-12), autograd and finite differences; recursions it cannot prove (a large array's
sparse reads, a list of floats) keep their code, mutual recursion, `tl.checkpoint`,
`value_and_grad`, second order and the native backend stay right."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import directional_fd, elementwise_fd, grads_without_step
from research_programs import det_laplace, det_laplace_filter

import tapeless as tl
import tapeless.opt.driver as driver
from tapeless.opt import unwind


@pytest.fixture(autouse=True)
def records_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recursions whose backward pass reads the callee's value are fused into their
    forward pass by default, with no records (`unwind._fuse_all`,
    tests/test_recursion_fuse.py). The records' accumulator tested here is what they
    keep otherwise (second order, under a recursion budget, or with the fusion off)."""
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _grads(monkeypatch, fn, args, argnums=0, changes=True):
    """The gradient's source and value with the rewrite, and the value without it."""
    return grads_without_step(monkeypatch, "accumulate_down", fn, args, argnums, changes)


def _close(got, want, tol=1e-12):
    if isinstance(want, tuple):
        for g, w in zip(got, want, strict=True):
            _close(g, w, tol)
        return
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _backward(source: str, name: str) -> str:
    start = source.index(f"def {name}")
    end = source.find("\ndef ", start + 1)
    return source[start:] if end < 0 else source[start:end]


# --- the determinant, both spellings ----------------------------------------------------


@pytest.mark.parametrize("fn", [det_laplace, det_laplace_filter])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_determinant(monkeypatch, fn, n):
    A = _data((n, n), n)
    source, got, want = _grads(monkeypatch, fn, (A,))
    _close(got, want)
    _close(got, np.linalg.det(A) * np.linalg.inv(A).T, 1e-11)
    name = "B_det_minor_filter" if fn is det_laplace_filter else "B_det_minor"
    body = _backward(source, name)
    assert f"def {name}(record, dout, acc" in body and "] += dout" in body, body
    assert "gadd_owned" not in body and "element_sens_small" not in body, body
    assert f"np.zeros(({n}, {n})" in source


def test_value_and_grad(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = _data((5, 5), 3)
    v, g = tl.value_and_grad(det_laplace)(A)
    assert v == pytest.approx(np.linalg.det(A), rel=1e-12)
    _close(g, np.linalg.det(A) * np.linalg.inv(A).T, 1e-11)


# --- recursions not written for the bench -----------------------------------------------


def pair_sum(A, row, cols):
    """A tree recursion: the sum over the column subsets' paths of products of entries,
    two reads per step, the sensitivity passed down changing per call."""
    if len(cols) == 1:
        return A[cols[0], row]
    total = 0.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        total = total + A[row, cols[k]] * A[cols[k], row] * pair_sum(A, row + 1, rest)
    return total


def pair_loss(A):
    return pair_sum(A, 0, list(range(A.shape[0])))


@pytest.mark.parametrize("n", [2, 4])
def test_tree_sum_of_products(monkeypatch, n):
    A = _data((n, n), 11)
    source, got, want = _grads(monkeypatch, pair_loss, (A,))
    _close(got, want)
    _close(got, autograd.grad(pair_loss)(A))
    assert "def B_pair_sum(record, dout, acc" in source


def split_sum(A, lo, hi):
    """Two recursive calls per level, a base case reading one element, the value of a
    call used twice (squared) on the way up."""
    if hi - lo == 1:
        return A[lo, lo] + 0.5 * A[lo, (lo + 1) % A.shape[0]]
    mid = (lo + hi) // 2
    left = split_sum(A, lo, mid)
    return A[mid, lo] * left * left + split_sum(A, mid, hi)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_two_calls_result_used_twice(monkeypatch, n):
    A = _data((n, n), 5) * 0.5
    fn = lambda a: split_sum(a, 0, a.shape[0])  # noqa: E731
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    got = tl.grad(fn)(A)
    with monkeypatch.context() as m:
        m.setattr(driver, "accumulate_down", lambda root: 0)
        want = tl.grad(fn)(A)
    _close(got, want)
    _close(got, autograd.grad(fn)(A))


def row_rec(A, v, i):
    """Rows of A read whole (row slices), two calls per level."""
    if i >= A.shape[0] - 2:
        return np.dot(A[i], v)
    return np.dot(A[i], v) * row_rec(A, v, i + 1) + np.sum(A[i] * A[i]) + \
        row_rec(A, v * 0.5, i + 2) * 0.25


def _anp_row_rec(A, v, i):
    if i >= A.shape[0] - 2:
        return anp.dot(A[i], v)
    return anp.dot(A[i], v) * _anp_row_rec(A, v, i + 1) + anp.sum(A[i] * A[i]) + \
        _anp_row_rec(A, v * 0.5, i + 2) * 0.25


@pytest.mark.parametrize("n", [1, 4])
def test_row_slices(monkeypatch, n):
    A, v = _data((n, 3), 2), _data(3, 4)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    got = tl.grad(row_rec, argnums=(0, 1))(A, v, 0)
    want = (autograd.grad(_anp_row_rec, 0)(A, v, 0), autograd.grad(_anp_row_rec, 1)(A, v, 0))
    _close(got, want)


def two_arrays(A, B, row, cols):
    """The Laplace expansion reading two matrices at each step."""
    if len(cols) == 1:
        return A[row, cols[0]] * B[cols[0], row]
    total = 0.0
    sign = 1.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        total = total + sign * A[row, cols[k]] * B[row, cols[k]] * \
            two_arrays(A, B, row + 1, rest)
        sign = -sign
    return total


def two_loss(A, B):
    return two_arrays(A, B, 0, list(range(A.shape[0])))


@pytest.mark.parametrize("argnums", [0, 1, (0, 1)])
def test_two_arrays(monkeypatch, argnums):
    A, B = _data((4, 4), 8), _data((4, 4), 9)
    # (one array's sensitivity: passed down; both: the backward pass gives back a pair,
    # left as it is)
    _, got, want = _grads(monkeypatch, two_loss, (A, B), argnums=argnums,
                          changes=argnums != (0, 1))
    _close(got, want)
    ref = autograd.grad(two_loss, argnums)
    if argnums == (0, 1):
        ref = (autograd.grad(two_loss, 0)(A, B), autograd.grad(two_loss, 1)(A, B))
        _close(got, ref)
    else:
        _close(got, ref(A, B))


# --- what is left as it is --------------------------------------------------------------


def test_large_array_keeps_its_sparse_sums(monkeypatch):
    # (one element's sensitivity of a large array is sparse: no owned array to pass down)
    A = _data((70, 70), 1)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    source = tl.grad(det_laplace).source_for(A)
    assert "B_det_minor(record, dout)" in source


def list_det(xs, row, cols, n):
    """A list of floats read by index: its sensitivity is a list, not an array."""
    if len(cols) == 1:
        return xs[row * n + cols[0]]
    total = 0.0
    sign = 1.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        total = total + sign * xs[row * n + cols[k]] * list_det(xs, row + 1, rest, n)
        sign = -sign
    return total


def two_reads_at_the_base(A, row, cols):
    """The base case reads two elements: its sensitivity is sparse (not proven owned,
    `OwnedSlots`), so the backward pass keeps its sums."""
    if len(cols) == 1:
        return A[row, cols[0]] * A[cols[0], row]
    total = 0.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        total = total + A[row, cols[k]] * two_reads_at_the_base(A, row + 1, rest)
    return total


def test_sparse_base_case_is_left(monkeypatch):
    A = _data((4, 4), 17)
    fn = lambda a: two_reads_at_the_base(a, 0, [0, 1, 2, 3])  # noqa: E731
    source, got, want = _grads(monkeypatch, fn, (A,), changes=False)
    assert "def B_two_reads_at_the_base(record, dout):" in source
    _close(got, want)
    _close(got, elementwise_fd(fn, A, 1e-5), 1e-7)


def test_list_of_floats(monkeypatch):
    A = _data((3, 3), 6)
    xs = [float(v) for v in A.ravel()]
    _, got, want = _grads(monkeypatch, lambda v: list_det(v, 0, [0, 1, 2], 3), (xs,),
                          changes=False)
    _close(got, want)
    _close(np.array(got).reshape(3, 3), np.linalg.det(A) * np.linalg.inv(A).T)


# --- mutual recursion, checkpointed recursion, second order, native ----------------------


def even_part(A, i, d):
    if i >= A.shape[0]:
        return d
    return A[i, i] * odd_part(A, i + 1, d * A[i, 0]) + odd_part(A, i + 2, d)


def odd_part(A, i, d):
    if i >= A.shape[0]:
        return d * d
    return A[i, 0] * even_part(A, i + 1, d) - even_part(A, i + 1, d * A[0, i])


@pytest.mark.parametrize("n", [1, 5])
def test_mutual_recursion(monkeypatch, n):
    A = _data((n, n), 12) * 0.7
    fn = lambda a: even_part(a, 0, 1.0)  # noqa: E731
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    _close(tl.grad(fn)(A), autograd.grad(fn)(A))


@pytest.mark.parametrize("levels", [1, 3])
def test_checkpointed_recursion(monkeypatch, levels):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    try:
        from control_programs import det_checkpointed_top
    finally:
        sys.path.pop(0)
    A = _data((5, 5), 13)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    got = tl.grad(det_checkpointed_top(levels))(A)
    _close(got, np.linalg.det(A) * np.linalg.inv(A).T, 1e-11)
    _close(got, tl.grad(det_laplace)(A))


def test_second_order(monkeypatch):
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = _data((4, 4), 14)

    def energy(a):
        g = tl.grad(det_laplace)(a)
        return np.sum(g * g)

    got = tl.grad(energy)(A)

    def ref(a):
        g = autograd.grad(det_laplace)(a)
        return anp.sum(g * g)

    _close(got, autograd.grad(ref)(A), 1e-10)
    u = _data((4, 4), 15)
    assert np.sum(got * u) == pytest.approx(directional_fd(energy, (A,), (0,), (u,)), rel=1e-6)


def test_native_backend_agrees():
    pytest.importorskip("numba")
    A = _data((5, 5), 16)
    _close(tl.grad(det_laplace, backend="native")(A), tl.grad(det_laplace)(A))
    _close(tl.grad(pair_loss, backend="native")(A), tl.grad(pair_loss)(A))


@pytest.mark.parametrize("budget", [0, 3_000])
def test_under_a_memory_budget(budget):
    # (the recursion checkpointed at run time past the budget, `checkpoint_recursion`:
    # what it leaves of the backward recursion, given the array or not, stays right)
    mode, memory = tl.config.loop_checkpoint, tl.config.loop_memory
    tl.config.loop_checkpoint, tl.config.loop_memory = "auto", budget
    try:
        A = _data((5, 5), 18)
        for fn in (det_laplace, det_laplace_filter, pair_loss):
            _close(tl.grad(fn)(A), autograd.grad(fn)(A))
    finally:
        tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory
